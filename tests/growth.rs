//! Every input under the size limit costs time linear in its size (issue 9,
//! item 4). Each shape below made some part of xenify grow faster than its
//! input: roxmltree's checks (attributes and namespace declarations compared
//! pairwise, namespaces in scope copied onto every element that declares
//! one, prefixes looked up among all in scope, distinct namespaces kept
//! sorted), the numbering of same-name siblings for paths, or a pass over
//! many devices. For each, the conversion of an input of that shape at a
//! size and at eight times that size is timed in the same run, and the
//! growth of the time is set against the growth of the size: about 1 for a
//! linear cost, about 8 for a quadratic one. No absolute time is asserted. `make bench` times the same shapes at full size
//! (`write_worst_shapes`, benches/run.py).

use std::time::{Duration, Instant};

use xenify::doc::{MAX_ATTRIBUTES, MAX_NAMESPACES, MAX_NAMESPACES_IN_SCOPE, MAX_NAMESPACE_NAME};

const HEAD: &str = "<domain type='kvm'><name>s</name><memory>1048576</memory><vcpu>1</vcpu>\
                    <os><type arch='x86_64' machine='pc-i440fx-rhel7.6.0'>hvm</type></os>";

/// `head`, then `unit` as often as fits in `size` bytes, then `tail`.
fn fill(head: &str, unit: &str, tail: &str, size: usize) -> String {
    let n = (size.saturating_sub(head.len() + tail.len()) / unit.len()).max(1);
    let mut s = String::with_capacity(head.len() + unit.len() * n + tail.len());
    s.push_str(head);
    for _ in 0..n {
        s.push_str(unit);
    }
    s.push_str(tail);
    s
}

/// `unit(i)` for i = 0, 1, … as long as it fits in `size` bytes.
fn numbered(head: &str, unit: impl Fn(usize) -> String, tail: &str, size: usize) -> String {
    let mut s = String::from(head);
    let mut i = 0;
    while s.len() + tail.len() < size {
        s.push_str(&unit(i));
        i += 1;
    }
    s.push_str(tail);
    s
}

fn attrs(n: usize, name: impl Fn(usize) -> String) -> String {
    (0..n).map(|i| format!(" {}=''", name(i))).collect()
}

fn declarations(n: usize) -> String {
    (0..n).map(|i| format!(" xmlns:p{i}='urn:p{i}'")).collect()
}

/// Builds a document of a shape at about a size in bytes.
type Shape = Box<dyn Fn(usize) -> String>;

/// The worst shapes, each as a function from a size in bytes to a document
/// of about that size. A shape with a limit is built both past it (refused)
/// and at it (converted).
pub fn shapes() -> Vec<(&'static str, Shape)> {
    let devices = |unit: &'static str| -> Shape {
        Box::new(move |size| fill(&format!("{HEAD}<devices>"), unit, "</devices></domain>", size))
    };
    vec![
        // One element with ever more attributes: 16 s for 100,000 before the limit.
        ("attributes on one element", Box::new(|size| numbered("<domain type='kvm'", |i| format!(" a{i}=''"), "/>", size))),
        ("elements with the most attributes", Box::new(|size| {
            fill(HEAD, &format!("<a{}/>", attrs(MAX_ATTRIBUTES, |i| format!("a{i}"))), "</domain>", size)
        })),
        ("long attribute names", Box::new(|size| {
            fill(HEAD, &format!("<a{}/>", attrs(MAX_ATTRIBUTES, |i| format!("{}{i:03}", "n".repeat(100)))), "</domain>", size)
        })),
        ("prefixed attributes, long namespace name", Box::new(|size| {
            let head = HEAD.replacen("<domain type='kvm'", &format!("<domain type='kvm' xmlns:p='urn:{}'", "u".repeat(MAX_NAMESPACE_NAME - 4)), 1);
            fill(&head, &format!("<a{}/>", attrs(MAX_ATTRIBUTES, |i| format!("p:a{i}"))), "</domain>", size)
        })),
        ("namespace declarations on one element", Box::new(|size| numbered("<domain", |i| format!(" xmlns:p{i}='urn:p{i}'"), "/>", size))),
        ("namespaces in scope, each child declaring one more", Box::new(|size| {
            let head = HEAD.replacen("<domain type='kvm'", &format!("<domain type='kvm'{}", declarations(MAX_NAMESPACES_IN_SCOPE - 1)), 1);
            fill(&head, "<a xmlns:q='urn:q'/>", "</domain>", size)
        })),
        ("prefixed names among many namespaces in scope", Box::new(|size| {
            let head = HEAD.replacen("<domain type='kvm'", &format!("<domain type='kvm'{}", declarations(MAX_NAMESPACES_IN_SCOPE)), 1);
            fill(&head, &format!("<p{}:a/>", MAX_NAMESPACES_IN_SCOPE - 1), "</domain>", size)
        })),
        ("distinct namespaces", Box::new(|size| numbered(HEAD, |i| format!("<a xmlns:q='urn:{i}'/>"), "</domain>", size))),
        ("distinct namespaces up to the limit, then repeated", Box::new(|size| {
            let head: String = (0..MAX_NAMESPACES).map(|i| format!("<a xmlns:q='urn:{i}'/>")).collect();
            fill(&format!("{HEAD}{head}"), "<a xmlns:q='urn:0'/>", "</domain>", size)
        })),
        ("QEMU elements with distinct names", Box::new(|size| {
            let head = "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>s</name>";
            numbered(head, |i| format!("<qemu:c{i}/>"), "</domain>", size)
        })),
        ("devices with distinct names", Box::new(|size| numbered(&format!("{HEAD}<devices>"), |i| format!("<x{i}/>"), "</devices></domain>", size))),
        ("elements 250 deep with long names", Box::new(|size| {
            let open: String = (0..250).map(|i| format!("<{}{i}>", "x".repeat(100))).collect();
            let close: String = (0..250).rev().map(|i| format!("</{}{i}>", "x".repeat(100))).collect();
            fill(&format!("{HEAD}<metadata>"), &format!("{open}{close}"), "</metadata></domain>", size)
        })),
        ("text in many pieces", Box::new(|size| fill(&format!("{HEAD}<description>"), "a&amp;<![CDATA[b]]><!--c-->&#x41;", "</description></domain>", size))),
        ("one long attribute value of references", Box::new(|size| fill(&format!("{HEAD}<devices><disk type='file' device='disk'><source file='"), "&#x41;&amp;", "'/><target dev='vda' bus='virtio'/></disk></devices></domain>", size))),
        ("virtio disks", devices("<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file='/i/x.img'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>")),
        ("filtered NICs", devices("<interface type='bridge'><mac address='00:1a:4a:16:01:01'/><source bridge='ovirtmgmt'/><model type='virtio'/><filterref filter='vdsm-no-mac-spoofing'/><link state='up'/></interface>")),
        ("SPICE consoles", devices("<graphics type='spice' port='-1' autoport='yes' tlsPort='-1'><listen type='network' network='vdsm-ovirtmgmt'/><channel name='main' mode='secure'/></graphics>")),
        ("guest-agent channels", devices("<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channels/x'/><target type='virtio' name='ovirt-guest-agent.0'/></channel>")),
    ]
}

/// The cost of one conversion of `text` (refused or not), written out.
fn cost(text: &str) -> Duration {
    let policy = xenify::Policy::accepting_all();
    let start = Instant::now();
    if let Ok(c) = xenify::convert_all(text, &policy) {
        let mut sink = std::io::sink();
        c.write_output(&mut sink).unwrap();
        let paths: usize = c.findings.iter().map(|f| f.path.len() + f.message.len()).sum();
        std::hint::black_box(paths);
    }
    start.elapsed()
}

/// The least of `runs` costs: the neighbours' load only ever adds time.
fn least(text: &str, runs: usize) -> Duration {
    (0..runs).map(|_| cost(text)).min().unwrap()
}

#[test]
fn every_shape_costs_time_linear_in_its_size() {
    const SMALL: usize = 32 * 1024;
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for (name, build) in shapes() {
        let (small, large) = (build(SMALL), build(8 * SMALL));
        assert!(large.len() < xenify::error::DEFAULT_SIZE_LIMIT);
        // Warm up (page faults, allocator), then alternate.
        cost(&small);
        let (s, l) = (least(&small, 5), least(&large, 3));
        // The growth of the cost over the growth of the size: about 1 when
        // linear (less where a fixed cost dominates the small size), about
        // 8 when quadratic. The margin absorbs a noisy machine.
        let growth = (l.as_secs_f64() / s.as_secs_f64().max(1e-6)) / (large.len() as f64 / small.len() as f64);
        report.push(format!(
            "{name}: {s:?} for {} bytes, {l:?} for {} bytes: growth {growth:.2}",
            small.len(),
            large.len()
        ));
        if growth > 3.0 {
            failed.push(name);
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failed.is_empty(), "superlinear: {failed:?}\n{}", report.join("\n"));
}

#[test]
fn the_limits_refuse_what_no_libvirt_document_has_and_no_more() {
    let check = |text: String| xenify::convert_all(&text, &xenify::Policy::accepting_all()).map(|_| ());
    let over = |e: Result<(), xenify::Error>, says: &str| {
        let msg = e.expect_err("accepted past its limit").to_string();
        assert!(msg.contains(says) && msg.contains("this is not a libvirt document"), "{msg}");
    };
    let at = |n: usize| format!("<domain type='kvm'{}><name>s</name></domain>", attrs(n - 1, |i| format!("a{i}")));
    check(at(MAX_ATTRIBUTES)).unwrap();
    over(check(at(MAX_ATTRIBUTES + 1)), &format!("an element with more than {MAX_ATTRIBUTES} attributes (at line 1)"));
    let scope = |n: usize| format!("<domain type='kvm'{}><name>s</name></domain>", declarations(n));
    check(scope(MAX_NAMESPACES_IN_SCOPE)).unwrap();
    over(
        check(scope(MAX_NAMESPACES_IN_SCOPE + 1)),
        &format!("more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations in scope"),
    );
    // In scope, not in the document: siblings each declaring theirs are fine.
    let siblings: String = (0..2 * MAX_NAMESPACES_IN_SCOPE).map(|i| format!("<m{i} xmlns:p='urn:p'/>")).collect();
    check(format!("<domain type='kvm'><name>s</name><metadata>{siblings}</metadata></domain>")).unwrap();
    let distinct = |n: usize| {
        let d: String = (0..n).map(|i| format!("<m xmlns:p='urn:{i}'/>")).collect();
        format!("<domain type='kvm'><name>s</name><metadata>{d}</metadata></domain>")
    };
    check(distinct(MAX_NAMESPACES)).unwrap();
    over(check(distinct(MAX_NAMESPACES + 1)), &format!("more than {MAX_NAMESPACES} different namespace declarations"));
    let uri = |n: usize| format!("<domain type='kvm' xmlns:p='{}'><name>s</name></domain>", "u".repeat(n));
    check(uri(MAX_NAMESPACE_NAME)).unwrap();
    over(check(uri(MAX_NAMESPACE_NAME + 1)), &format!("a namespace name longer than {MAX_NAMESPACE_NAME} bytes"));
    // The line is where the shape is.
    over(
        check(format!("<domain type='kvm'>\n\n<name{}/></domain>", attrs(MAX_ATTRIBUTES + 1, |i| format!("a{i}")))),
        "(at line 3)",
    );
}

/// Writes the shapes at `XENIFY_SHAPES_SIZE` bytes (default 4 MiB) and at an
/// eighth of it into `XENIFY_SHAPES_DIR`, for `make bench`.
#[test]
#[ignore]
fn write_worst_shapes() {
    let dir = std::path::PathBuf::from(std::env::var_os("XENIFY_SHAPES_DIR").expect("XENIFY_SHAPES_DIR"));
    let size: usize = std::env::var("XENIFY_SHAPES_SIZE").map_or(4 << 20, |s| s.parse().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, build)) in shapes().into_iter().enumerate() {
        let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        for (tag, s) in [("small", size / 8), ("large", size)] {
            std::fs::write(dir.join(format!("{i:02}-{slug}.{tag}.xml")), build(s)).unwrap();
        }
    }
}
