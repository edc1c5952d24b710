//! `xenify check`: one row per file, a summary that counts right, JSON that
//! says the same as the table, and exit 0 only when every file converts.

mod common;

use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenify")).arg("check").args(args).current_dir(common::root()).output().unwrap()
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
    let all = "nwfilter,link-state,vlan,graphics-security,floppy-media,secure-boot,tpm,scsi-passthrough";
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
