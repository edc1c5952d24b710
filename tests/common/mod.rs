//! Helpers shared by the integration tests: the one place that runs the
//! library on a fixture, and an independent check that nothing disappears
//! from a document without a finding.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use xenify::policy::Policy;
use xenify::report::{Hint, Outcome, Report};
use xenify::{Context, Conversion, Finding, Host, Kind, Pass, Point};

/// Every loss id, for runs that accept them all (a test in docs.rs checks
/// it and the other copies against `Loss::ALL`).
pub const ALL_LOSSES: &str = "nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What adding a pass takes, as ARCHITECTURE.md lists it: the tests that
/// compare `passes::ALL` with the README and the fixtures print it.
pub fn adding_a_pass() -> String {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = "<!-- adding-a-pass:start -->\n";
    let from = text.find(start).expect("ARCHITECTURE.md lists what adding a pass takes") + start.len();
    let to = from + text[from..].find("<!-- adding-a-pass:end -->").unwrap();
    format!("Adding a pass touches five places (ARCHITECTURE.md, \"Adding a pass\"):\n{}", &text[from..to])
}

/// The policy of a fixture: its sibling `<case>.toml`, if any.
pub fn policy_for(fixture: &Path) -> Policy {
    let mut policy = Policy::default();
    let toml = fixture.with_extension("toml");
    if let Ok(text) = std::fs::read_to_string(&toml) {
        policy.apply_toml(&text, &label(&toml)).expect("fixture policy");
    }
    policy
}

/// A host whose bridges and their IPv4 addresses come from a table.
pub struct FakeHost(pub Vec<(String, Ipv4Addr)>);

impl Host for FakeHost {
    fn bridge_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }
}

/// The host of a fixture: its sibling `<case>.bridges`, lines of
/// `BRIDGE ADDRESS`, if any; else a host without bridges.
pub fn host_for(fixture: &Path) -> FakeHost {
    let text = std::fs::read_to_string(fixture.with_extension("bridges")).unwrap_or_default();
    FakeHost(
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(b, a)| (b.trim().to_string(), a.trim().parse().expect("an IPv4 address")))
            .collect(),
    )
}

/// The path of a fixture relative to the project, for stable snapshots.
pub fn label(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Runs `passes` over `text` and checks what must hold for every input:
/// the report explains every element and attribute that is gone, and the
/// output run through the same passes again changes nothing.
pub fn check<'a>(
    label: &str,
    text: &'a str,
    passes: &[&Pass],
    policy: &Policy,
) -> Result<Conversion<'a>, xenify::Error> {
    check_on(label, text, passes, policy, &FakeHost(Vec::new()))
}

/// [`check`] on a given host.
pub fn check_on<'a>(
    label: &str,
    text: &'a str,
    passes: &[&Pass],
    policy: &Policy,
    host: &dyn Host,
) -> Result<Conversion<'a>, xenify::Error> {
    let context = Context { policy, host, point: Point::Unknown };
    let c = xenify::convert(text, passes, &context)?;
    if let Some(out) = &c.output() {
        let missing = unexplained_losses(text, out, &c.findings);
        assert!(missing.is_empty(), "{label}: gone without a finding: {missing:#?}");
        let again = xenify::convert(out, passes, &context).unwrap_or_else(|e| panic!("{label} (second run): {e}"));
        assert_eq!(again.output().as_deref(), Some(out.as_str()), "{label}: a second run changed the output");
        let edits: Vec<&Finding> = again.findings.iter().filter(|f| f.kind.is_edit()).collect();
        assert!(edits.is_empty(), "{label}: a second run reported edits: {edits:#?}");
    }
    Ok(c)
}

/// The snapshot text of a run: the report, then the unified diff; or the
/// error, as the binary would print it.
pub fn snapshot(label: &str, text: &str, c: &Result<Conversion<'_>, xenify::Error>, policy: &Policy) -> String {
    let c = match c {
        Ok(c) => c,
        Err(e) => return format!("xenify: error: {label}: {e}\n"),
    };
    let report = Report {
        input: label,
        subject: Some(&c.subject),
        outcome: if c.refused() { Outcome::Refused } else { Outcome::Converted },
        findings: &c.findings,
        error: None,
        settings: &policy.settings(),
    };
    let mut s = report.text(&Hint::cli(policy));
    if let Some(out) = &c.output() {
        let diff = xenify::diff::unified(text, out, "input", "output");
        s.push('\n');
        s.push_str(if diff.is_empty() { "(no change)\n" } else { &diff });
    }
    s
}

// ----- the loss check -----

/// An element as the check sees it: name, attributes, text, children.
#[derive(Debug)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

fn tree(text: &str) -> Node {
    let doc = roxmltree::Document::parse(text.trim_start_matches('\u{feff}')).expect("well-formed");
    fn build(n: roxmltree::Node) -> Node {
        let name = match n.tag_name().namespace().and_then(|ns| n.lookup_prefix(ns)) {
            Some(p) if !p.is_empty() => format!("{p}:{}", n.tag_name().name()),
            _ => n.tag_name().name().to_string(),
        };
        let attrs = n.attributes().map(|a| (qualified(&n, a), a.value().to_string())).collect();
        let text = n.children().filter(|c| c.is_text()).map(|c| c.text().unwrap_or("")).collect::<String>();
        let children = n.children().filter(|c| c.is_element()).map(build).collect();
        Node { name, attrs, text: text.trim().to_string(), children }
    }
    build(doc.root_element())
}

fn qualified(n: &roxmltree::Node, a: roxmltree::Attribute) -> String {
    match a.namespace().and_then(|ns| n.lookup_prefix(ns)) {
        Some(p) if !p.is_empty() => format!("{p}:{}", a.name()),
        _ => a.name().to_string(),
    }
}

/// Every element's signature in a subtree, for similarity.
fn signatures(n: &Node, out: &mut HashMap<String, usize>) {
    let mut attrs = n.attrs.clone();
    attrs.sort();
    *out.entry(format!("{}{:?}{}", n.name, attrs, n.text)).or_default() += 1;
    for c in &n.children {
        signatures(c, out);
    }
}

fn similarity(a: &Node, b: &Node) -> usize {
    let (mut sa, mut sb) = (HashMap::new(), HashMap::new());
    signatures(a, &mut sa);
    signatures(b, &mut sb);
    1 + sa.iter().map(|(k, v)| (*v).min(*sb.get(k).unwrap_or(&0))).sum::<usize>()
        + a.attrs.iter().filter(|x| b.attrs.contains(x)).count()
}

/// Aligns two child lists in order, pairing same-name elements so that the
/// total similarity is largest; children of `a` in `gone` (reported removed)
/// are not paired. Returns, per child of `a`, its partner in `b`.
fn align(a: &[Node], b: &[Node], gone: &[bool]) -> Vec<Option<usize>> {
    let (n, m) = (a.len(), b.len());
    let mut best = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let mut v = best[i + 1][j].max(best[i][j + 1]);
            if a[i].name == b[j].name && !gone[i] {
                v = v.max(similarity(&a[i], &b[j]) + best[i + 1][j + 1]);
            }
            best[i][j] = v;
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut pairs = vec![None; n];
    while i < n && j < m {
        if a[i].name == b[j].name && !gone[i] && best[i][j] == similarity(&a[i], &b[j]) + best[i + 1][j + 1] {
            pairs[i] = Some(j);
            i += 1;
            j += 1;
        } else if best[i][j] == best[i + 1][j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// The input paths of elements and attributes that are not in the output
/// and that no finding explains (at the same path, or by a removed ancestor).
pub fn unexplained_losses(input: &str, output: &str, findings: &[Finding]) -> Vec<String> {
    let (a, b) = (tree(input), tree(output));
    let mut gone = Vec::new();
    let root = format!("/{}", a.name);
    let removed: Vec<&str> = findings.iter().filter(|f| f.kind == Kind::Removed).map(|f| f.path.as_str()).collect();
    walk(&a, &b, &root, &removed, &mut gone);
    gone.retain(|p| {
        !findings.iter().any(|f| f.path == *p || (f.kind == Kind::Removed && p.starts_with(&format!("{}/", f.path))))
    });
    gone
}

fn walk(a: &Node, b: &Node, path: &str, removed: &[&str], gone: &mut Vec<String>) {
    for (k, _) in &a.attrs {
        if !b.attrs.iter().any(|(kb, _)| kb == k) {
            gone.push(format!("{path}/@{k}"));
        }
    }
    let paths: Vec<String> = a
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let same = a.children.iter().filter(|s| s.name == c.name).count();
            let index = a.children[..=i].iter().filter(|s| s.name == c.name).count();
            let seg = if same > 1 || a.name == "devices" { format!("{}[{index}]", c.name) } else { c.name.clone() };
            format!("{path}/{seg}")
        })
        .collect();
    let reported: Vec<bool> = paths.iter().map(|p| removed.contains(&p.as_str())).collect();
    let pairs = align(&a.children, &b.children, &reported);
    for (i, c) in a.children.iter().enumerate() {
        match pairs[i] {
            Some(j) => walk(c, &b.children[j], &paths[i], removed, gone),
            None => gone.push(paths[i].clone()),
        }
    }
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// Runs `cmd` with a deadline: a run that outlives it is killed and the
/// test fails instead of hanging the suite.
pub fn run_bounded(cmd: &mut std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("xenify hung and was killed: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The binary on the command line, with a deadline, from the project root,
/// with no hook variable and an empty policy file.
pub fn xenify_bounded(args: &[&str]) -> std::process::Output {
    run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_xenify"))
            .args(args)
            .current_dir(root())
            .env_remove("_hook_domxml")
            .env("XENIFY_CONFIG", "/dev/null"),
    )
}
