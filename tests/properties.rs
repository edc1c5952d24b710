//! Property tests: domains generated from the element shapes Vdsm and
//! libvirt write (random device mixes, attribute orders, quote styles,
//! whitespace, empty-element forms, comments in odd places, namespace
//! prefixes). For every one: the output parses, a second run changes
//! nothing, `<uuid>` and every element inside `<metadata>` come out
//! byte-identical, everything that is gone has a finding, and nothing xenify
//! converts is left anywhere, in a second copy of `<devices>`, `<os>`,
//! `<clock>` or `<features>` either (libvirt reads such copies as one).

mod common;

use proptest::prelude::*;

/// A small deterministic generator driven by proptest's seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// An element shape: name, attributes, text or children.
struct E {
    name: String,
    attrs: Vec<(String, String)>,
    text: Option<String>,
    kids: Vec<E>,
}

fn e(name: &str, attrs: &[(&str, &str)]) -> E {
    E {
        name: name.into(),
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        text: None,
        kids: Vec::new(),
    }
}

impl E {
    fn kid(mut self, k: E) -> E {
        self.kids.push(k);
        self
    }

    fn text(mut self, t: &str) -> E {
        self.text = Some(t.into());
        self
    }
}

/// Writes `el` in a random but well-formed style.
fn write(g: &mut Gen, el: &E, indent: usize, pretty: bool, out: &mut String) {
    let mut attrs: Vec<&(String, String)> = el.attrs.iter().collect();
    // Attribute order varies.
    for i in (1..attrs.len()).rev() {
        attrs.swap(i, g.below(i + 1));
    }
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in attrs {
        let q = if g.chance(50) { '\'' } else { '"' };
        let space = if g.chance(10) { "\n          " } else { " " };
        let v = escape(v, q);
        out.push_str(&format!("{space}{k}={q}{v}{q}"));
    }
    if g.chance(5) {
        out.push(' ');
    }
    if el.kids.is_empty() && el.text.is_none() {
        out.push_str(if g.chance(60) { "/>" } else { "></" });
        if out.ends_with("></") {
            out.push_str(&el.name);
            out.push('>');
        }
        return;
    }
    out.push('>');
    if let Some(t) = &el.text {
        out.push_str(&escape(t, '<'));
    }
    for k in &el.kids {
        if pretty {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
        }
        if g.chance(4) {
            out.push_str("<!-- vdsm: generated -->");
            if pretty {
                out.push('\n');
                out.push_str(&" ".repeat(indent + 2));
            }
        }
        write(g, k, indent + 2, pretty, out);
    }
    if pretty && !el.kids.is_empty() {
        out.push('\n');
        out.push_str(&" ".repeat(indent));
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

fn escape(s: &str, quote: char) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '\'' if quote == '\'' => o.push_str("&apos;"),
            '"' if quote == '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

const LETTERS: &[&str] = &["a", "b", "c", "d", "e", "f"];

/// One device, in one of the shapes oVirt's domains carry.
fn device(g: &mut Gen, n: usize) -> E {
    let uuid = format!("ua-{n:08x}-1111-4222-8333-{:012x}", g.next() & 0xffff_ffff_ffff);
    match g.below(17) {
        0 | 1 => {
            let bus = g.pick(&["virtio", "scsi", "sata", "ide"]);
            let dev = format!(
                "{}{}",
                if bus == "ide" {
                    "hd"
                } else if bus == "virtio" {
                    "vd"
                } else {
                    "sd"
                },
                g.pick(LETTERS)
            );
            let mut d = e("disk", &[("type", "file"), ("device", "disk"), ("snapshot", "no")])
                .kid(e("target", &[("dev", &dev), ("bus", bus)]))
                .kid(e("source", &[("file", &format!("/rhev/data-center/mnt/x/images/{n}/v{n}"))]))
                .kid(e(
                    "driver",
                    &[
                        ("name", "qemu"),
                        ("type", g.pick(&["raw", "qcow2"])),
                        ("cache", "none"),
                        ("io", "threads"),
                        ("error_policy", "stop"),
                    ],
                ))
                .kid(e("alias", &[("name", &uuid)]));
            if g.chance(50) {
                d = d.kid(e("serial", &[]).text(&format!("{n:08x}")));
            }
            if g.chance(30) {
                d = d.kid(e("boot", &[("order", &format!("{}", 1 + g.below(3)))]));
            }
            if g.chance(20) {
                d = d.kid(e("readonly", &[]));
            }
            d
        }
        2 => {
            let mut c = e("disk", &[("type", "file"), ("device", "cdrom")])
                .kid(e("target", &[("dev", g.pick(&["hdc", "sdc"])), ("bus", g.pick(&["ide", "sata"]))]))
                .kid(e("readonly", &[]));
            c = if g.chance(50) {
                c.kid(e("source", &[("file", ""), ("startupPolicy", "optional")]))
            } else {
                c.kid(e("source", &[("file", "/iso/Fedora &amp; friends.iso"), ("startupPolicy", "optional")]))
            };
            c
        }
        3 | 4 => {
            let mut i = e("interface", &[("type", g.pick(&["bridge", "network"]))])
                .kid(e("mac", &[("address", &format!("00:1a:4a:16:01:{:02x}", n % 256))]))
                .kid(e("model", &[("type", "virtio")]))
                .kid(e("link", &[("state", "up")]))
                .kid(e("alias", &[("name", &uuid)]));
            i = if i.attrs[0].1 == "network" {
                i.kid(e("source", &[("network", "vdsm-ovirtmgmt")]))
            } else {
                i.kid(e("source", &[("bridge", "ovirtmgmt")]))
            };
            if g.chance(50) {
                i = i.kid(e("filterref", &[("filter", "vdsm-no-mac-spoofing")]));
            }
            if g.chance(30) {
                i = i.kid(e("mtu", &[("size", "9000")]));
            }
            if g.chance(30) {
                i = i.kid(e("bandwidth", &[]).kid(e("inbound", &[("average", "1000"), ("burst", "1024")])));
            }
            if g.chance(20) {
                i = i.kid(e("driver", &[("name", "vhost"), ("queues", "4")]));
            }
            i
        }
        5 => e("channel", &[("type", "unix")])
            .kid(e(
                "target",
                &[("type", "virtio"), ("name", g.pick(&["org.qemu.guest_agent.0", "ovirt-guest-agent.0"]))],
            ))
            .kid(e("source", &[("mode", "bind"), ("path", &format!("/var/lib/libvirt/qemu/channels/{n}.sock"))])),
        6 => e("channel", &[("type", "spicevmc")])
            .kid(e("target", &[("type", "virtio"), ("name", "com.redhat.spice.0")])),
        7 => e("controller", &[("type", g.pick(&["usb", "virtio-serial", "scsi", "pci", "ide"])), ("index", "0")]).kid(
            e(
                "address",
                &[("type", "pci"), ("domain", "0x0000"), ("bus", "0x00"), ("slot", "0x05"), ("function", "0x0")],
            ),
        ),
        8 => e("memballoon", &[("model", g.pick(&["virtio", "none"]))]).kid(e("stats", &[("period", "5")])),
        9 => e("video", &[]).kid(e(
            "model",
            &[
                ("type", g.pick(&["qxl", "vga", "cirrus", "virtio"])),
                ("vram", "8192"),
                ("heads", "1"),
                ("ram", "65536"),
            ],
        )),
        10 => {
            let ty = g.pick(&["spice", "vnc"]);
            let mut gr = e("graphics", &[("type", ty), ("port", "-1"), ("autoport", "yes"), ("passwd", "*****")]);
            gr = if g.chance(50) {
                gr.kid(e("listen", &[("type", "network"), ("network", "vdsm-ovirtmgmt")]))
            } else {
                gr.kid(e("listen", &[("type", "address"), ("address", "192.0.2.7")]))
            };
            if ty == "spice" && g.chance(50) {
                gr.attrs.push(("tlsPort".into(), "-1".into()));
                gr = gr.kid(e("channel", &[("name", "main"), ("mode", "secure")]));
            }
            gr
        }
        11 => e(
            "input",
            &[("type", g.pick(&["mouse", "tablet", "keyboard"])), ("bus", g.pick(&["ps2", "usb", "virtio"]))],
        ),
        12 => e("sound", &[("model", g.pick(&["ich6", "ich9", "ac97", "usb"]))]),
        13 => e(g.pick(&["rng", "watchdog", "panic", "smartcard"]), &[("model", "virtio")]),
        14 => {
            e("console", &[("type", "pty")]).kid(e("target", &[("type", g.pick(&["virtio", "serial"])), ("port", "0")]))
        }
        15 => e("hostdev", &[("mode", "subsystem"), ("type", "pci"), ("managed", "no")])
            .kid(e("driver", &[("name", "vfio")]))
            .kid(
                e("source", &[])
                    .kid(e("address", &[("domain", "0x0000"), ("bus", "0x00"), ("slot", "0x19"), ("function", "0x0")])),
            ),
        _ => e("lease", &[])
            .kid(e("key", &[]).text("9eaa286e"))
            .kid(e("lockspace", &[]).text("4f0a775f"))
            .kid(e("target", &[("offset", "1048576"), ("path", "/rhev/data-center/mnt/blockSD/sd/dom_md/xleases")])),
    }
}

fn domain(seed: u64, devices: usize) -> String {
    let mut g = Gen(seed | 1);
    let prefix = g.pick(&["ovirt-vm", "ns0", "vm"]);
    let uuid = format!("{:08x}-ffff-4333-bbbb-{:012x}", g.next() & 0xffff_ffff, g.next() & 0xffff_ffff_ffff);
    let max = g.pick(&["16", "32", "160"]);
    let mut d = e("domain", &[("type", "kvm")])
        .kid(e("name", &[]).text("vm-&-test"))
        .kid(e("uuid", &[]).text(&uuid))
        .kid(e("memory", &[("unit", "KiB")]).text("4194304"))
        .kid(e("currentMemory", &[("unit", "KiB")]).text(g.pick(&["4194304", "2097152"])))
        .kid(e("vcpu", &[("current", "2")]).text(max))
        .kid(
            e("os", &[]).kid(
                e("type", &[("arch", "x86_64"), ("machine", g.pick(&["pc-i440fx-rhel7.6.0", "pc-q35-rhel8.6.0"]))])
                    .text("hvm"),
            ),
        )
        .kid(e("features", &[]).kid(e("acpi", &[])))
        .kid(
            e("clock", &[("offset", "variable"), ("adjustment", "0")])
                .kid(e("timer", &[("name", "rtc"), ("tickpolicy", "catchup")]))
                .kid(e("timer", &[("name", "hpet"), ("present", "no")])),
        );
    if g.chance(70) {
        d = d.kid(
            e("cpu", &[("match", "exact")])
                .kid(e("model", &[]).text("Haswell-noTSX"))
                .kid(e("numa", &[]).kid(e("cell", &[("cpus", "0-1"), ("memory", "4194304")]))),
        );
    }
    let mut devs = e("devices", &[]);
    if g.chance(70) {
        devs = devs.kid(e("emulator", &[]).text("/usr/libexec/qemu-kvm"));
    }
    let mut seen: Vec<String> = Vec::new();
    for n in 0..devices {
        let dev = device(&mut g, n);
        // One console, balloon and (fixed-address) host device, as libvirt allows.
        if ["console", "memballoon", "hostdev"].contains(&dev.name.as_str()) {
            if seen.contains(&dev.name) {
                continue;
            }
            seen.push(dev.name.clone());
        }
        devs = devs.kid(dev);
    }
    // A second copy of what libvirt reads as one (`./devices/*`,
    // `./os/loader[1]`, `./clock/timer`, `./features/*`), each holding
    // something xenify must convert there too.
    if g.chance(25) && devs.kids.len() > 1 {
        let at = 1 + g.below(devs.kids.len() - 1);
        let rest = devs.kids.split_off(at);
        d = d.kid(devs);
        devs = e("devices", &[]);
        devs.kids = rest;
    }
    d = d.kid(devs);
    if g.chance(15) {
        d = d.kid(e("os", &[]).kid(e("loader", &[("readonly", "yes")]).text("/usr/share/seabios/bios-256k.bin")));
    }
    if g.chance(15) {
        d = d.kid(e("clock", &[("offset", "variable")]).kid(e("timer", &[("name", "pit"), ("tickpolicy", "delay")])));
    }
    if g.chance(15) {
        d = d.kid(e("features", &[]).kid(e("kvm", &[]).kid(e("hidden", &[("state", "on")]))));
    }
    let mut meta = e("metadata", &[]);
    let ns = format!("xmlns:{prefix}");
    meta = meta.kid(
        E {
            name: format!("{prefix}:vm"),
            attrs: vec![(ns, "http://ovirt.org/vm/1.0".into())],
            text: None,
            kids: Vec::new(),
        }
        .kid(E { name: format!("{prefix}:clusterVersion"), attrs: vec![], text: Some("4.7".into()), kids: vec![] })
        .kid(E { name: format!("{prefix}:custom"), attrs: vec![], text: None, kids: vec![] }),
    );
    // Metadata sits before or after the devices, as live dumps and engine XML differ.
    if g.chance(50) {
        let at = 2;
        d.kids.insert(at, meta);
    } else {
        d = d.kid(meta);
    }
    let mut out = String::new();
    if g.chance(50) {
        out.push_str("<?xml version='1.0' encoding='utf-8'?>\n");
    }
    if g.chance(20) {
        out.push_str("<!-- generated by the engine -->\n");
    }
    let pretty = g.chance(85);
    write(&mut g, &d, 0, pretty, &mut out);
    out.push('\n');
    out
}

/// What xenify converts wherever it is, left in `out`: a copy of an element
/// libvirt reads as one must be converted like the first.
fn kvm_left(out: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(out) else { return vec!["unparsable".into()] };
    let mut left = Vec::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        let attr = |a: &str| n.attribute(a).unwrap_or("");
        let parent = n.parent_element().map(|p| p.tag_name().name()).unwrap_or("");
        let kvm = match name {
            "timer" => matches!(attr("name"), "rtc" | "pit" | "kvmclock" | "hypervclock"),
            "filterref" | "emulator" | "kvm" | "vmport" => true,
            "model" => parent == "interface" && attr("type") == "virtio",
            "target" => parent == "disk" && attr("bus") == "virtio",
            "loader" => n.text().is_some_and(|t| t.contains("seabios")),
            _ => false,
        };
        if kvm {
            left.push(out[n.range()].to_string());
        }
    }
    left
}

/// The bytes of the first element named `name` (with its end tag).
fn element_bytes<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let n = doc.descendants().find(|n| n.has_tag_name(name))?;
    Some(&text[n.range()])
}

fn metadata_children(text: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(text) else { return Vec::new() };
    let Some(meta) = doc.descendants().find(|n| n.has_tag_name("metadata")) else { return Vec::new() };
    meta.children().filter(|c| c.is_element()).map(|c| text[c.range()].to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn generated_domains_convert_losslessly_and_honestly(seed in any::<u64>(), devices in 0usize..14) {
        let text = domain(seed, devices);
        prop_assert!(roxmltree::Document::parse(&text).is_ok(), "the generator wrote bad XML:\n{text}");
        // The document round-trips unchanged through the parser.
        prop_assert_eq!(xenify::Document::parse(&text).unwrap().to_string(), text.clone());
        let all: Vec<&xenify::Pass> = xenify::ALL.iter().collect();
        let c = common::check("generated", &text, &all, &xenify::Policy::accepting_all())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let Some(out) = c.output() else { return Ok(()) };
        prop_assert!(roxmltree::Document::parse(&out).is_ok(), "output does not parse:\n{out}");
        let left = kvm_left(&out);
        prop_assert!(left.is_empty(), "left unconverted: {:?}\n{}", left, out);
        prop_assert_eq!(element_bytes(&out, "uuid"), element_bytes(&text, "uuid"));
        let before = metadata_children(&text);
        let after = metadata_children(&out);
        for m in &before {
            prop_assert!(after.contains(m), "metadata changed: {}\n{}", m, out);
        }
    }
}

#[test]
fn the_generator_covers_what_it_claims() {
    // Quote styles, comments, both metadata positions and removals all occur.
    let docs: Vec<String> = (1..200u64).map(|s| domain(s * 7919, 10)).collect();
    assert!(docs.iter().any(|d| d.contains("='")) && docs.iter().any(|d| d.contains("=\"")));
    assert!(docs.iter().any(|d| d.contains("<!-- vdsm: generated -->")));
    assert!(docs.iter().any(|d| d.contains("ns0:vm")) && docs.iter().any(|d| d.contains("ovirt-vm:vm")));
    // Second copies of what libvirt reads as one.
    for twice in ["devices", "os", "clock", "features"] {
        let copies = |d: &String| {
            let doc = roxmltree::Document::parse(d).unwrap();
            doc.root_element().children().filter(|c| c.has_tag_name(twice)).count()
        };
        assert!(docs.iter().any(|d| copies(d) > 1), "no second <{twice}>");
    }
    let refused =
        docs.iter().filter(|d| xenify::convert_all(d, &xenify::Policy::accepting_all()).unwrap().refused()).count();
    assert!(refused < docs.len() / 2, "most generated domains should convert ({refused} refused)");
}

/// Writes generated domains to $XENIFY_GENERATE_DIR for a manual run of the
/// oracle over them (`make interop` covers the fixtures).
#[test]
#[ignore]
fn write_generated_domains() {
    let dir = std::env::var("XENIFY_GENERATE_DIR").unwrap_or_else(|_| "/tmp/xenify-generated".into());
    std::fs::create_dir_all(&dir).unwrap();
    for seed in 1..=300u64 {
        std::fs::write(
            format!("{dir}/gen-{seed:03}.xml"),
            domain(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), (seed % 14) as usize),
        )
        .unwrap();
    }
}
