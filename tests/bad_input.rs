//! The README's bad-input table, row by row, against the built binary: the
//! documented exit code, a message that names the file and says what is
//! wrong, and the input byte-identical afterwards, both from the command
//! line (`convert --in-place`) and as a Vdsm hook.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::ALL_LOSSES;

/// A small realistic domain to damage.
fn domain() -> Vec<u8> {
    std::fs::read(common::root().join("fixtures/domains/vm-hibernated.xml")).unwrap()
}

struct Case {
    /// The first column of the README table.
    name: &'static str,
    input: Vec<u8>,
    /// Exit code of `xenify convert`; the hook exits 2 whenever this is not 0.
    code: i32,
    /// What stderr says (besides the file name) when it is not converted.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let d = domain();
    let utf16: Vec<u8> = {
        let mut v = vec![0xff, 0xfe];
        for u in String::from_utf8(d.clone()).unwrap().encode_utf16() {
            v.extend(u.to_le_bytes());
        }
        v
    };
    let big_comment = format!("<!-- {} -->\n", "x".repeat(17 * 1024 * 1024));
    let mut huge = d.clone();
    huge.extend(big_comment.as_bytes());
    let deep = format!("<domain type='kvm'>{}{}</domain>", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let mut disks = String::from(
        "<domain type='kvm'><name>many</name><uuid>6f3a7b8e-2c4d-4e5f-9a1b-0c2d3e4f5a6b</uuid><memory>4194304</memory>\
         <vcpu>2</vcpu><os><type arch='x86_64' machine='pc-i440fx-rhel7.6.0'>hvm</type></os><devices>\n",
    );
    for i in 0..10_000 {
        disks.push_str(&format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file='/rhev/images/{i}.img'/><target dev='vd{}' bus='virtio'/></disk>\n",
            xenify_letters(i)
        ));
    }
    disks.push_str("</devices></domain>\n");
    let many_attributes = format!(
        "<domain type='kvm'{}><name>a</name></domain>",
        (0..100_000).map(|i| format!(" a{i}='x'")).collect::<String>()
    );
    let many_namespaces = format!(
        "<domain type='kvm'{}><name>a</name></domain>",
        (0..100_000).map(|i| format!(" xmlns:p{i}='urn:p{i}'")).collect::<String>()
    );
    let distinct_namespaces = format!(
        "<domain type='kvm'><name>a</name><metadata>{}</metadata></domain>",
        (0..100_000).map(|i| format!("<m xmlns:p='urn:{i}'/>")).collect::<String>()
    );
    let long_namespace = format!("<domain type='kvm' xmlns:p='urn:{}'><name>a</name></domain>", "u".repeat(1 << 20));
    let mut distinct_devices = String::from(
        "<domain type='kvm'><name>many</name><memory>4194304</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64' machine='pc-i440fx-rhel7.6.0'>hvm</type></os><devices>\n",
    );
    for i in 0..50_000 {
        distinct_devices.push_str(&format!("<device{i}/>\n"));
    }
    distinct_devices.push_str("</devices></domain>\n");
    let with = |needle: &str, replacement: &str| {
        let text = String::from_utf8(d.clone()).unwrap();
        assert!(text.contains(needle), "{needle}");
        text.replacen(needle, replacement, 1).into_bytes()
    };
    let mut double_bom = "\u{feff}\u{feff}".as_bytes().to_vec();
    double_bom.extend(&d);
    let mut latin1 = d.clone();
    let at = latin1.windows(6).position(|w| w == b"<name>").unwrap() + 6;
    latin1.insert(at, 0xe9);
    vec![
        Case { name: "empty file", input: Vec::new(), code: 2, says: "the document is empty" },
        Case { name: "whitespace only", input: b" \n\t\n".to_vec(), code: 2, says: "the document is empty" },
        Case { name: "truncated XML", input: d[..d.len() / 2].to_vec(), code: 2, says: "malformed XML" },
        Case { name: "binary", input: (0..=255u8).cycle().take(4096).collect(), code: 2, says: "is not UTF-8" },
        Case { name: "JSON", input: br#"{"domain": {"type": "kvm"}}"#.to_vec(), code: 2, says: "this is not XML" },
        Case {
            name: "DTD",
            input: b"<?xml version='1.0'?>\n<!DOCTYPE domain SYSTEM 'domain.dtd'>\n<domain type='kvm'/>".to_vec(),
            code: 2,
            says: "has a DTD",
        },
        Case {
            name: "internal entities",
            input: b"<!DOCTYPE domain [<!ENTITY n 'web01'>]>\n<domain type='kvm'><name>&n;</name></domain>".to_vec(),
            code: 2,
            says: "has a DTD",
        },
        Case {
            name: "entity expansion bomb",
            input: b"<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>\
                <!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY e '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>\n\
                <domain>&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;</domain>"
                .to_vec(),
            code: 2,
            says: "has a DTD",
        },
        Case {
            name: "external entity",
            input: b"<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n<domain type='kvm'><name>&x;</name></domain>"
                .to_vec(),
            code: 2,
            says: "has a DTD",
        },
        Case { name: "non-UTF-8 bytes", input: latin1, code: 2, says: "is not UTF-8: byte 0xe9" },
        Case { name: "UTF-16", input: utf16, code: 2, says: "UTF-16" },
        Case {
            name: "declared encoding other than UTF-8",
            input: b"<?xml version='1.0' encoding='ISO-8859-1'?><domain type='kvm'/>".to_vec(),
            code: 2,
            says: "names encoding 'ISO-8859-1'",
        },
        Case {
            name: "wrong root <network>",
            input: b"<network><name>default</name><bridge name='virbr0'/></network>".to_vec(),
            code: 2,
            says: "the root element is <network>",
        },
        Case {
            name: "wrong root <pool>",
            input: b"<pool type='dir'><name>images</name><target><path>/var/lib/images</path></target></pool>".to_vec(),
            code: 2,
            says: "the root element is <pool>",
        },
        Case {
            name: "two root elements",
            input: b"<domain type='kvm'><name>a</name></domain>\n<domain type='kvm'><name>b</name></domain>\n".to_vec(),
            code: 2,
            says: "a second root element",
        },
        Case {
            name: "domain with no <devices>",
            input: b"<domain type='kvm'><name>bare</name><memory>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>".to_vec(),
            code: 0,
            says: "",
        },
        Case { name: "huge document (over 16 MiB)", input: huge, code: 2, says: "larger than the limit of 16777216 bytes" },
        Case { name: "deep nesting (100,000 levels)", input: deep.into_bytes(), code: 2, says: "nested deeper than 256 levels" },
        Case { name: "10,000 disks", input: disks.into_bytes(), code: 1, says: "refused" },
        Case {
            name: "an element with 100,000 attributes",
            input: many_attributes.into_bytes(),
            code: 2,
            says: "an element with more than 256 attributes (at line 1); this is not a libvirt document",
        },
        Case {
            name: "100,000 namespace declarations on one element",
            input: many_namespaces.into_bytes(),
            code: 2,
            says: "more than 32 namespace declarations in scope (at line 1)",
        },
        Case {
            name: "100,000 different namespace declarations",
            input: distinct_namespaces.into_bytes(),
            code: 2,
            says: "more than 256 different namespace declarations (at line 1)",
        },
        Case {
            name: "a 1 MiB namespace name",
            input: long_namespace.into_bytes(),
            code: 2,
            says: "a namespace name longer than 512 bytes (at line 1)",
        },
        Case { name: "50,000 devices with distinct names", input: distinct_devices.into_bytes(), code: 0, says: "" },
        Case {
            name: "character reference to a surrogate",
            input: with("<name>a2</name>", "<name>a2&#xD800;</name>"),
            code: 2,
            says: "malformed XML at line 2, column 11: the character reference '&#xD800;' is a UTF-16 surrogate",
        },
        Case {
            name: "character reference beyond U+10FFFF",
            input: with("type='kvm'", "type='kvm&#x110000;'"),
            code: 2,
            says: "malformed XML at line 1, column 18: the character reference '&#x110000;' is beyond U+10FFFF",
        },
        Case {
            name: "two byte order marks",
            input: double_bom,
            code: 2,
            says: "malformed XML at line 1, column 1: a second byte order mark (U+FEFF)",
        },
        Case {
            name: "default namespace on <domain>",
            input: with("<domain ", "<domain xmlns=\"http://example.org/not-libvirt\" "),
            code: 2,
            says: "the root element <domain> is in the namespace 'http://example.org/not-libvirt'",
        },
        Case {
            name: "odd quoting and entities in values",
            input: std::fs::read(common::root().join("tests/data/odd-quoting.xml")).unwrap(),
            code: 0,
            says: "",
        },
    ]
}

fn xenify_letters(mut i: usize) -> String {
    let mut s = Vec::new();
    i += 1;
    while i > 0 {
        i -= 1;
        s.push(b'a' + (i % 26) as u8);
        i /= 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let dir = std::env::temp_dir().join(format!("xenify-bad-{}-{slug}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], hook: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenify"));
    cmd.args(args).stdin(Stdio::null()).env("XENIFY_CONFIG", "/dev/null").env_remove("_hook_domxml");
    if let Some(p) = hook {
        cmd.env("_hook_domxml", p).env("xenify_accept", ALL_LOSSES);
    }
    cmd.output().unwrap()
}

#[test]
fn every_row_of_the_bad_input_table() {
    for case in cases() {
        let dir = scratch(case.name);
        let path = dir.join("input.xml");
        // The command line.
        std::fs::write(&path, &case.input).unwrap();
        let o = run(&["convert", path.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(case.code), "{}: {err}", case.name);
        if case.code != 0 {
            let first = err.lines().next().unwrap_or("");
            assert!(
                first.contains(&path.display().to_string()),
                "{}: the message does not name the file: {first}",
                case.name
            );
            assert!(first.contains(case.says), "{}: {first}", case.name);
            assert!(std::fs::read(&path).unwrap() == case.input, "{}: the input changed", case.name);
        } else {
            let out = std::fs::read_to_string(&path).unwrap();
            assert!(out.contains("type='xen'") || out.contains("type=\"xen\""), "{}", case.name);
        }
        // The hook: exit 2 for anything that does not convert, file untouched.
        std::fs::write(&path, &case.input).unwrap();
        let o = run(&[], Some(&path));
        let err = String::from_utf8_lossy(&o.stderr);
        if case.code == 0 {
            assert_eq!(o.status.code(), Some(0), "{} (hook): {err}", case.name);
        } else {
            assert_eq!(o.status.code(), Some(2), "{} (hook): {err}", case.name);
            assert!(err.lines().next().unwrap_or("").contains(case.says), "{} (hook): {err}", case.name);
            assert!(std::fs::read(&path).unwrap() == case.input, "{} (hook): the input changed", case.name);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "{}: temporary files left behind", case.name);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_readme_table_has_a_row_for_every_case() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    for case in cases() {
        assert!(readme.contains(&format!("| {} |", case.name)), "README lacks the bad-input row '{}'", case.name);
    }
}

#[test]
fn a_domain_cut_at_every_97th_byte_never_panics() {
    let d = domain();
    let lib = |bytes: &[u8]| {
        let Ok(text) = xenify::error::decode(bytes, xenify::error::DEFAULT_SIZE_LIMIT) else { return };
        let _ = xenify::convert_all(text, &xenify::Policy::accepting_all());
    };
    for cut in (0..d.len()).step_by(97) {
        // In the library, where a panic fails the test...
        lib(&d[..cut]);
    }
    // ...and through the binary for a sample of cuts: exit 0 or 2, never an internal error.
    let dir = scratch("cuts");
    let path = dir.join("cut.xml");
    for cut in (0..d.len()).step_by(97 * 7) {
        std::fs::write(&path, &d[..cut]).unwrap();
        let o = run(&["convert", path.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(matches!(o.status.code(), Some(0 | 2)), "cut at {cut}: {err}");
        assert!(!err.contains("internal error"), "cut at {cut}: {err}");
    }
}

#[test]
fn odd_quoting_and_entities_are_read_and_written_once() {
    let text = std::fs::read_to_string(common::root().join("tests/data/odd-quoting.xml")).unwrap();
    let c = xenify::convert_all(&text, &xenify::Policy::accepting_all()).unwrap();
    let out = c.output().unwrap();
    // A model written with a character reference is read as 'virtio' and rewritten.
    assert!(out.contains("<model type='e1000'/>"), "{out}");
    // An untouched value keeps its references byte for byte.
    assert!(out.contains("file='/rhev/images/o&apos;brien&#x27;s \"lab\".img'"), "{out}");
    // A value that is rewritten is escaped once, for its own quote.
    assert!(out.contains("bridge=\"o'net\""), "{out}");
    assert!(out.contains("<source bridge='lab&amp;test'/>"), "{out}");
    assert!(!out.contains("&amp;amp;") && !out.contains("&amp;apos;"), "{out}");
}

/// Writes every case's input to `XENIFY_BAD_DIR` (one file per row, named
/// after it), to measure the table's time and memory figures with the
/// release binary: see the README.
#[test]
#[ignore]
fn write_cases() {
    let dir = PathBuf::from(std::env::var_os("XENIFY_BAD_DIR").expect("XENIFY_BAD_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, case) in cases().into_iter().enumerate() {
        let slug: String = case.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        std::fs::write(dir.join(format!("{i:02}-{slug}.xml")), &case.input).unwrap();
    }
}
