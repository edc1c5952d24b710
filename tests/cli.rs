//! The command line: `passes`, the checks on `--only`/`--skip`/`--accept`,
//! exit codes, what is written (and what is not), the JSON report.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use xenify::ALL;

const FLOPPY: &str = "fixtures/domains/vm-sysprep-floppy.xml";
use common::ALL_LOSSES;

fn xenify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenify"))
        .args(args)
        .current_dir(common::root())
        .env_remove("_hook_domxml")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn passes_lists_every_pass_in_pipeline_order() {
    let o = xenify(&["passes"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<(String, String)> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, summary) = l.split_once("  ").unwrap();
            (name.to_string(), summary.trim().to_string())
        })
        .collect();
    let expected: Vec<(String, String)> = ALL.iter().map(|p| (p.name.to_string(), p.summary.to_string())).collect();
    assert_eq!(lines, expected);
}

#[test]
fn unknown_pass_names_are_usage_errors_listing_the_passes() {
    for flag in ["--only", "--skip"] {
        let o = xenify(&["convert", FLOPPY, flag, "os-to-xen,no-such-pass"]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let err = stderr(&o);
        assert!(err.contains(&format!("invalid value 'no-such-pass' for '{flag} <PASS,…>'")), "{err}");
        for p in ALL {
            assert!(err.contains(p.name), "{flag}: {} not listed in: {err}", p.name);
        }
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn unknown_loss_ids_are_usage_errors() {
    let o = xenify(&["convert", FLOPPY, "--accept", "nwfilter,spoofing"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("invalid value 'spoofing' for '--accept <ID,…>'"), "{err}");
    for l in xenify::Loss::ALL {
        assert!(err.contains(l.id()), "{l} not listed in: {err}");
    }
}

#[test]
fn only_and_skip_choose_the_passes_that_run() {
    let o = xenify(&[
        "convert",
        FLOPPY,
        "--only",
        "domain-type-to-xen,clock-to-xen",
        "--accept",
        ALL_LOSSES,
        "--report",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let findings = report["findings"].as_array().unwrap();
    // Edits come from the passes that ran only; the others get one warning each.
    let edits: Vec<&str> =
        findings.iter().filter(|f| f["kind"] != "warning").map(|f| f["pass"].as_str().unwrap()).collect();
    assert!(edits.iter().all(|p| *p == "domain-type-to-xen" || *p == "clock-to-xen"), "{edits:?}");
    assert!(edits.contains(&"clock-to-xen"));
    let o = xenify(&["convert", FLOPPY, "--skip", "clock-to-xen", "--accept", ALL_LOSSES, "--diff"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let diff = String::from_utf8(o.stdout).unwrap();
    assert!(!diff.contains("timer"), "clock-to-xen ran although skipped: {diff}");
}

/// Issue 12 item 3: skipping the passes that refuse once let SPICE TLS and
/// NIC filters through with "converted".
#[test]
fn a_left_out_pass_that_refuses_refuses_the_run() {
    let skip = "remove-floppies,interfaces-to-xen-pv,graphics-to-xen";
    let dir = scratch("skip");
    let output = dir.join("out.xml");
    let o = xenify(&["convert", FLOPPY, "--skip", skip, "-o", output.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!output.exists(), "a run refused by a skipped pass wrote its output");
    let err = stderr(&o);
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("xenify: refused: VM 'windows_10' cannot run on Xen unless"), "{first}");
    for (pass, path) in [
        ("remove-floppies", "/domain/devices/disk[2]"),
        ("interfaces-to-xen-pv", "/domain/devices/interface[1]/filterref"),
        ("graphics-to-xen", "/domain/devices/graphics[1]"),
    ] {
        let line = err.lines().find(|l| l.ends_with(&format!("[{pass}]"))).unwrap_or_else(|| panic!("{pass}: {err}"));
        assert!(
            line.starts_with(&format!("xenify: refused: {path}: this pass was left out of the run, but it refuses")),
            "{line}"
        );
    }
    // --only leaves out every other pass: the same refusals.
    let o = xenify(&["convert", FLOPPY, "--only", "domain-type-to-xen", "--report", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let refused: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "refused")
        .map(|f| f["pass"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["remove-floppies", "interfaces-to-xen-pv", "graphics-to-xen"]);
    // A refusal no setting accepts stays one when its pass is left out.
    let aarch64 = "fixtures/passes/domain-type-to-xen/aarch64-refused.xml";
    let o = xenify(&["convert", aarch64, "--skip", "domain-type-to-xen"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).lines().next().unwrap().contains("architecture 'aarch64'"), "{}", stderr(&o));
}

#[test]
fn a_left_out_pass_that_would_change_something_says_so() {
    let skip = "remove-floppies,interfaces-to-xen-pv,graphics-to-xen";
    let o = xenify(&["convert", FLOPPY, "--skip", skip, "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("tlsPort="), "the skipped graphics-to-xen ran after all");
    for pass in skip.split(',') {
        let line = err
            .lines()
            .find(|l| {
                l.starts_with("xenify: warning: /domain: this pass was left out") && l.ends_with(&format!("[{pass}]"))
            })
            .unwrap_or_else(|| panic!("no warning for {pass}: {err}"));
        assert!(line.contains("it would have changed"), "{line}");
    }
    assert!(err.contains("removed 11 and added 2 (the first at /domain/devices/graphics[1]/@tlsPort)"), "{err}");
    // A pass left out that would change nothing is not mentioned.
    let o = xenify(&["convert", FLOPPY, "--skip", "features-to-xen", "--accept", ALL_LOSSES]);
    let err = stderr(&o);
    assert!(err.contains("[features-to-xen]") && err.contains("left out"), "{err}");
    let o = xenify(&["convert", "fixtures/domains/already-xen.xml", "--skip", "features-to-xen"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("left out"), "{}", stderr(&o));
}

#[test]
fn diff_with_an_output_file_is_a_usage_error() {
    let dir = scratch("diff-write");
    let input = dir.join("in.xml");
    let original = std::fs::read(common::root().join(FLOPPY)).unwrap();
    std::fs::write(&input, &original).unwrap();
    let output = dir.join("out.xml");
    for args in [&["-o", output.to_str().unwrap()][..], &["--in-place"][..]] {
        let mut all = vec!["convert", input.to_str().unwrap(), "--diff", "--accept", ALL_LOSSES];
        all.extend_from_slice(args);
        let o = xenify(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("'--diff' cannot be used with"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(!output.exists());
        assert_eq!(std::fs::read(&input).unwrap(), original);
    }
}

#[test]
fn exit_codes_and_output() {
    // Refused: exit 1, nothing on stdout, every refusal reported with its loss id.
    let o = xenify(&["convert", FLOPPY]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.lines().next().unwrap().starts_with("xenify: refused: VM 'windows_10' cannot run on Xen"), "{err}");
    // Every hint names the one value that converts the VM: all its losses.
    for l in err.lines().skip(1) {
        assert!(l.contains("; to convert without it, pass --accept floppy-media,nwfilter,graphics-security ["), "{l}");
    }
    assert_eq!(err.lines().count(), 4, "{err}");
    // Converted: exit 0, the document on stdout.
    let o = xenify(&["convert", FLOPPY, "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("<domain type=\"xen\""));
    // Stdin to stdout gives the same document.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .args(["convert", "--accept", ALL_LOSSES])
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(common::root().join(FLOPPY)).unwrap()).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(String::from_utf8(piped.stdout).unwrap(), out);
    // Errors: exit 2.
    let o = xenify(&["convert", "fixtures/no-such-file.xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("fixtures/no-such-file.xml"), "{}", stderr(&o));
    let dir = scratch("bad");
    let bad = dir.join("bad.xml");
    std::fs::write(&bad, "<domain type='kvm'><name>x</name>").unwrap();
    let o = xenify(&["convert", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("malformed XML"), "{}", stderr(&o));
    std::fs::write(&bad, "<network><name>default</name></network>").unwrap();
    let o = xenify(&["convert", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("the root element is <network>"), "{}", stderr(&o));
    let o = xenify(&["convert", "--in-place"]);
    assert_eq!(o.status.code(), Some(2), "--in-place with stdin");
    let o = xenify(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "unknown subcommand");
}

#[test]
fn nothing_is_written_unless_converted() {
    let dir = scratch("write");
    let input = dir.join("in.xml");
    let original = std::fs::read(common::root().join(FLOPPY)).unwrap();
    std::fs::write(&input, &original).unwrap();
    let output = dir.join("out.xml");
    let o = xenify(&["convert", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!output.exists(), "a refused run wrote its output");
    let o = xenify(&["convert", input.to_str().unwrap(), "--in-place"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&input).unwrap(), original, "a refused run changed its input");
    let o = xenify(&["convert", input.to_str().unwrap(), "-o", output.to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(0));
    let converted = std::fs::read_to_string(&output).unwrap();
    let o = xenify(&["convert", input.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&input).unwrap(), converted);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "temporary files left behind");
}

#[test]
fn diff_prints_a_unified_diff_of_input_to_output() {
    let o = xenify(&["convert", FLOPPY, "--accept", ALL_LOSSES, "--diff"]);
    assert_eq!(o.status.code(), Some(0));
    let diff = String::from_utf8(o.stdout).unwrap();
    assert!(diff.starts_with(&format!("--- a/{FLOPPY}\n+++ b/{FLOPPY}\n@@ ")), "{diff}");
    assert!(diff.contains("\n-<domain type=\"kvm\"") && diff.contains("\n+<domain type=\"xen\""), "{diff}");
    let o = xenify(&["convert", FLOPPY, "--diff"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "a refused run prints no diff");
}

#[test]
fn json_report_on_stderr_and_in_a_file() {
    let dir = scratch("json");
    let file = dir.join("report.json");
    let o = xenify(&["convert", FLOPPY, "--report", "json", "--report-file", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let on_stderr: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    let in_file: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(on_stderr, in_file);
    assert_eq!(in_file["outcome"], "refused");
    let findings = in_file["findings"].as_array().unwrap();
    for f in findings {
        for key in ["pass", "kind", "path", "message"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
    }
    let refusals: Vec<&serde_json::Value> = findings.iter().filter(|f| f["kind"] == "refused").collect();
    let ids: Vec<&str> = refusals.iter().map(|f| f["accept"].as_str().unwrap()).collect();
    assert_eq!(ids, ["floppy-media", "nwfilter", "graphics-security"]);
    assert_eq!(refusals[1]["path"], "/domain/devices/interface[1]/filterref");
    assert_eq!(in_file["counts"]["refused"], 3);

    let o = xenify(&["convert", "fixtures/none.xml", "--report", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(err["outcome"], "error");
    assert!(err["error"].as_str().unwrap().contains("fixtures/none.xml"));
}

#[test]
fn config_file_sets_the_policy() {
    let dir = scratch("config");
    let config = dir.join("xenify.toml");
    std::fs::write(
        &config,
        format!("accept = {:?}\nnic_model = \"rtl8139\"\n", ALL_LOSSES.split(',').collect::<Vec<_>>()),
    )
    .unwrap();
    let o = xenify(&["convert", FLOPPY, "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8(o.stdout).unwrap().contains("<model type=\"rtl8139\"/>"));
    std::fs::write(&config, "nic_model = 7\n").unwrap();
    let o = xenify(&["convert", FLOPPY, "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 1: nic_model: expected a string"), "{}", stderr(&o));
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

/// Issue 12 item 4: `--accept` replaced the file's accept, and `--accept`
/// with `--set accept=` dropped one; every source adds (MERGE_RULE).
#[test]
fn every_source_of_accept_adds_to_the_others() {
    let dir = scratch("accept-sources");
    let config = dir.join("xenify.toml");
    std::fs::write(&config, "accept = [\"floppy-media\"]\n").unwrap();
    let c = config.to_str().unwrap();
    let o = xenify(&["convert", FLOPPY, "--config", c, "--set", "accept=nwfilter", "--accept", "graphics-security"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for line in [
        format!("xenify: policy: accept = [\"floppy-media\"] ({c} line 1)"),
        "xenify: policy: accept = [\"nwfilter\"] (command-line flag --set accept)".to_string(),
        "xenify: policy: accept = [\"graphics-security\"] (command-line flag --accept)".to_string(),
    ] {
        assert!(err.contains(&line), "{line} not in {err}");
    }
    // The hint repeats what the command line already accepts, not the file.
    let o = xenify(&["convert", FLOPPY, "--config", c, "--accept", "nwfilter"]);
    assert_eq!(o.status.code(), Some(1));
    let first = stderr(&o).lines().next().unwrap().to_string();
    assert!(first.contains("unless the loss of graphics-security is accepted: to convert it, pass --accept nwfilter,graphics-security;"), "{first}");
}

/// Issue 12 item 8: policy values in JSON are typed.
#[test]
fn json_policy_values_are_typed() {
    let o = xenify(&[
        "convert",
        FLOPPY,
        "--set",
        "max_vcpus=64",
        "--set",
        "nic_model=netfront",
        "--accept",
        "nwfilter,tpm",
        "--report",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(
        report["policy"],
        serde_json::json!([
            { "key": "nic_model", "value": "netfront", "source": "command-line flag --set nic_model" },
            { "key": "max_vcpus", "value": 64, "source": "command-line flag --set max_vcpus" },
            { "key": "accept", "value": ["nwfilter", "tpm"], "source": "command-line flag --accept" },
        ])
    );
}
