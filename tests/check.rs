//! `xenify check`: one row per file, a summary that counts right, JSON that
//! says the same as the table, and exit 0 only when every file converts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `xenify check` on a host whose policy file is empty (the machine's own
/// /etc/xenify must not matter).
fn check(args: &[&str]) -> Output {
    check_with_config(Path::new("/dev/null"), args)
}

/// `xenify check` on a host whose policy file is `config` ($XENIFY_CONFIG).
fn check_with_config(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenify"))
        .arg("check")
        .args(args)
        .current_dir(common::root())
        .env("XENIFY_CONFIG", config)
        .env_remove("_hook_domxml")
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo domain with VM custom properties in its metadata, as the engine
/// writes them (`<ovirt-vm:custom><ovirt-vm:NAME>VALUE</ovirt-vm:NAME>`).
fn with_custom_properties(props: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(common::root().join("fixtures/domains/hostedengine-lease.xml")).unwrap();
    let inner: String = props.iter().map(|(k, v)| format!("\n        <ovirt-vm:{k}>{v}</ovirt-vm:{k}>")).collect();
    let empty = "<ovirt-vm:custom></ovirt-vm:custom>";
    assert!(text.contains(empty));
    text.replacen(empty, &format!("<ovirt-vm:custom>{inner}\n      </ovirt-vm:custom>"), 1)
}

/// The hook's exit code and first line on `domain`, as Vdsm runs it with
/// `config` and the VM custom properties `props` in its environment.
fn hook(domain: &str, dir: &Path, config: &Path, props: &[(&str, &str)]) -> (i32, String) {
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, domain).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenify"));
    cmd.env("_hook_domxml", &path).env("XENIFY_CONFIG", config).stdin(Stdio::null());
    for (k, v) in props {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (o.status.code().unwrap(), String::from_utf8(o.stderr).unwrap())
}

#[test]
fn a_directory_gives_one_row_per_domain_and_a_summary() {
    let o = check(&["fixtures/domains"]);
    assert_eq!(o.status.code(), Some(1), "some fixture domains need accepted losses");
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let files: Vec<_> = std::fs::read_dir(common::root().join("fixtures/domains"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "xml"))
        .collect();
    assert!(lines[0].starts_with("FILE") && lines[0].contains("OUTCOME") && lines[0].ends_with("WHAT STOPS IT"));
    let rows = &lines[1..=files.len()];
    assert!(rows.iter().all(|r| r.starts_with("fixtures/domains/")), "{out}");
    // Columns are aligned: the outcome starts at the same place in every row.
    let col = lines[0].find("OUTCOME").unwrap();
    for r in rows {
        assert!(["converts", "refused", "error"].iter().any(|o| r[col..].starts_with(o)), "{r}");
    }
    let floppy = rows.iter().find(|r| r.contains("vm-sysprep-floppy")).unwrap();
    assert!(floppy.ends_with("accept floppy-media, nwfilter, graphics-security"), "{floppy}");
    let summary = lines.last().unwrap();
    let converting = rows.iter().filter(|r| r[col..].starts_with("converts")).count();
    assert!(summary.starts_with(&format!("{} files: {converting} convert", files.len())), "{summary}");
}

#[test]
fn json_says_what_the_table_says() {
    let table = String::from_utf8(check(&["fixtures/domains", "fixtures/passes/disks-to-xen-pv"]).stdout).unwrap();
    let o = check(&["fixtures/domains", "fixtures/passes/disks-to-xen-pv", "--report", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = json["files"].as_array().unwrap();
    let table_rows: Vec<&str> = table.lines().skip(1).take(rows.len()).collect();
    for (row, line) in rows.iter().zip(table_rows) {
        let fields: Vec<&str> = line.split("  ").map(str::trim).filter(|f| !f.is_empty()).collect();
        assert_eq!(fields[0], row["file"]);
        assert_eq!(fields[1], row["outcome"]);
        assert_eq!(fields[2], row["changes"].to_string());
        assert_eq!(fields[3], row["warnings"].to_string());
        for l in row["losses"].as_array().unwrap() {
            assert!(line.contains(l.as_str().unwrap()), "{line}");
        }
    }
    let s = &json["summary"];
    assert_eq!(s["files"].as_u64().unwrap() as usize, rows.len());
    let refused = rows.iter().filter(|r| r["outcome"] == "refused").count();
    assert_eq!(s["refused"].as_u64().unwrap() as usize, refused);
    assert_eq!(
        s["losses"]["nwfilter"].as_u64().unwrap() as usize,
        rows.iter().filter(|r| r["losses"].as_array().unwrap().iter().any(|l| l == "nwfilter")).count()
    );
}

#[test]
fn exit_0_only_when_every_file_converts() {
    let all = common::ALL_LOSSES;
    let o = check(&["fixtures/domains", "--accept", all]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = check(&["fixtures/domains/already-xen.xml", "fixtures/does-not-exist.xml"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("fixtures/does-not-exist.xml") && out.contains("error"), "{out}");
    assert!(out.trim_end().ends_with("2 files: 1 converts (0 with warnings), 0 refused, 1 error"), "{out}");
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(2), "no file is a usage error");
}

/// Issue 12 item 5: check ignored the host's policy file and the VM's own
/// custom properties, so it did not predict the hook.
#[test]
fn check_predicts_the_hook_from_the_policy_file_and_the_vms_custom_properties() {
    let dir = scratch("predict");
    let config = dir.join("xenify.toml");
    std::fs::write(&config, "accept = [\"nwfilter\"]\n").unwrap();
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("xenify_accept", "graphics-security")],
        &[("xenify_accept", "graphics-security"), ("xenify_nic_model", "netfront"), ("other_hook_property", "x")],
        &[("xenify_max_vcpus", "500")],
    ];
    for props in cases {
        let domain = with_custom_properties(props);
        let file = dir.join("vm.xml");
        std::fs::write(&file, &domain).unwrap();
        let o = check_with_config(&config, &[file.to_str().unwrap(), "--report", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let row = &json["files"][0];
        let (code, err) = hook(&domain, &dir, &config, props);
        let predicted = match row["outcome"].as_str().unwrap() {
            "converts" | "converts with warnings" => 0,
            _ => 2,
        };
        assert_eq!(predicted, code, "{props:?}: check said {row}, the hook said {err}");
        for l in row["losses"].as_array().unwrap() {
            assert!(err.lines().next().unwrap().contains(l.as_str().unwrap()), "{props:?}: {err}");
        }
        if props.iter().any(|(k, _)| *k == "xenify_max_vcpus") {
            let problem = row["problems"][0].as_str().unwrap();
            assert!(problem.contains("VM custom property xenify_max_vcpus: max_vcpus: 500 is out of range"), "{row}");
            assert_eq!(row["outcome"], "error");
        }
    }
    // The policy file alone: graphics-security is what stops it.
    let file = dir.join("vm.xml");
    std::fs::write(&file, with_custom_properties(&[])).unwrap();
    let o = check_with_config(&config, &[file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.lines().nth(1).unwrap().ends_with("accept graphics-security"), "{out}");
    // The property, from the metadata, accepts the rest.
    std::fs::write(&file, with_custom_properties(&[("xenify_accept", "graphics-security")])).unwrap();
    let o = check_with_config(&config, &[file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // --config names another policy file instead of the host's.
    let other = dir.join("other.toml");
    std::fs::write(&other, "").unwrap();
    let o = check_with_config(&config, &[file.to_str().unwrap(), "--config", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8(o.stdout).unwrap().contains("accept nwfilter"));
    // A policy file the hook could not read is an error for check too.
    let o = check_with_config(&dir.join("missing.toml"), &[file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.toml"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Issue 12 item 5: nothing to check printed "0 files" and exited 0.
#[test]
fn nothing_to_check_is_an_error() {
    let dir = scratch("empty");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/notes.txt"), "not a domain").unwrap();
    let o = check(&[dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err, format!("xenify: error: nothing to check: no *.xml file in {}\n", dir.display()));
}

/// Issue 12 item 6: a file name cannot forge a row of the table.
#[test]
fn a_newline_in_a_file_name_stays_in_its_row() {
    let dir = scratch("forge");
    let name = dir.join("vm\nforged  converts  0  0.xml");
    std::fs::copy(common::root().join("fixtures/domains/already-xen.xml"), &name).unwrap();
    let o = check(&[dir.to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("vm\\nforged  converts  0  0.xml  converts"), "{out}");
}
