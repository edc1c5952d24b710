//! xenify at Vdsm's JSON hook points, `after_get_caps` and `after_get_stats`,
//! as Vdsm runs it: a link named `50_xenify` in the point's directory, the
//! JSON file in `$_hook_json`, the host's files under `$XENIFY_ROOT` and a
//! fake `xl` first on `PATH`. The hosts are the fake dom0s of
//! fixtures/hosts, with what the patched Vdsm reported for them before any
//! hook (`caps-vdsm.json`, `stats-vdsm.json`); expected values come from the
//! host's own files, never from the code under test.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const XENIFY: &str = env!("CARGO_BIN_EXE_xenify");

fn hosts() -> Vec<PathBuf> {
    let mut hosts: Vec<PathBuf> = std::fs::read_dir(common::root().join("fixtures/hosts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("xl-info").is_file())
        .collect();
    hosts.sort();
    assert!(hosts.len() >= 3, "{hosts:?}");
    hosts
}

fn xl_field(host: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(host.join("xl-info")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("{}: no {key}", host.display()))
}

/// dom0's MemTotal in MiB.
fn dom0_mib(root: &Path) -> u64 {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).unwrap();
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

/// A scratch directory with a hooks directory, a bin directory for the fake
/// `xl`, and the JSON file.
struct Run {
    dir: PathBuf,
}

impl Run {
    fn new(point: &str) -> Run {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("caps-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("hooks").join(point)).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(XENIFY, dir.join("hooks").join(point).join("50_xenify")).unwrap();
        Run { dir }
    }

    /// A fake `xl` that prints `xl_info` for `xl info`, or fails with `failure`.
    fn xl(&self, xl_info: Option<&str>, failure: &str) -> &Self {
        let script = match xl_info {
            Some(text) => {
                std::fs::write(self.dir.join("xl-info"), text).unwrap();
                format!("#!/bin/sh\n[ \"$*\" = info ] || exit 1\ncat '{}'\n", self.dir.join("xl-info").display())
            }
            None => format!("#!/bin/sh\necho '{failure}' >&2\nexit 1\n"),
        };
        let xl = self.dir.join("bin/xl");
        std::fs::write(&xl, script).unwrap();
        std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// Runs the hook on `json` with the host root `root`; returns the
    /// process output and the file afterwards.
    fn hook(&self, point: &str, root: &Path, json: &[u8], env: &[(&str, &str)]) -> (Output, Vec<u8>) {
        let file = self.dir.join("hook.json");
        std::fs::write(&file, json).unwrap();
        let mut cmd = Command::new(self.dir.join("hooks").join(point).join("50_xenify"));
        cmd.env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.join("bin").display()))
            .env("_hook_json", &file)
            .env("XENIFY_ROOT", root);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out, std::fs::read(&file).unwrap())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn parse(bytes: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(bytes).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies a host's root into the run's directory, to add or remove files.
fn copy_root(run: &Run, host: &Path) -> PathBuf {
    let to = run.dir.join("root");
    let status = Command::new("cp").arg("-r").arg(host.join("root")).arg(&to).status().unwrap();
    assert!(status.success());
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&to).status();
    to
}

#[test]
fn on_each_dom0_the_engine_gets_the_machine_hvm_its_cpu_models_and_the_machine_types() {
    for host in hosts() {
        let run = Run::new("after_get_caps");
        run.xl(Some(&std::fs::read_to_string(host.join("xl-info")).unwrap()), "");
        let input = read(&host.join("caps-vdsm.json"));
        let (out, output) = run.hook("after_get_caps", &host.join("root"), &input, &[]);
        let name = host.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("xenify: after_get_caps: Xen 4.17 dom0, HVM on "), "{name}: {}", stderr(&out));
        let before = parse(&input);
        let after = parse(&output);

        assert_eq!(after["kvmEnabled"], "true", "{name}");
        assert_eq!(after["memSize"], Value::String(xl_field(&host, "total_memory")), "{name}");
        let reserved: u64 = before["reservedMem"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            after["reservedMem"],
            Value::String((reserved + dom0_mib(&host.join("root"))).to_string()),
            "{name}"
        );

        // The flags of the cluster made for this host's CPU family are all there,
        // and Vdsm's own flags are kept, first and in order.
        let flags: Vec<&str> = after["cpuFlags"].as_str().unwrap().split(',').collect();
        let cluster: Value = serde_json::from_slice(&read(&host.join("cluster.json"))).unwrap();
        for f in cluster["cpu_flags"].as_str().unwrap().split(',') {
            assert!(flags.contains(&f), "{name}: no {f} in {flags:?}");
        }
        let vdsm_flags: Vec<&str> = before["cpuFlags"].as_str().unwrap().split(',').collect();
        assert_eq!(flags[..vdsm_flags.len()], vdsm_flags[..], "{name}");
        let vendor_flag = if flags.contains(&"svm") { "svm" } else { "vmx" };
        assert!(!(flags.contains(&"svm") && flags.contains(&"vmx")), "{name}");
        assert!(std::fs::read_to_string(host.join("root/proc/cpuinfo")).unwrap().contains(if vendor_flag == "svm" {
            "AuthenticAMD"
        } else {
            "GenuineIntel"
        }));

        let machines: Vec<&str> =
            after["emulatedMachines"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for m in before["emulatedMachines"].as_array().unwrap() {
            assert!(machines.contains(&m.as_str().unwrap()), "{name}: Vdsm's {m} is gone");
        }
        for m in ["pc-i440fx-rhel7.6.0", "pc-i440fx-2.12", "pc-q35-rhel8.6.0", "pc-q35-4.1"] {
            assert!(machines.contains(&m), "{name}: no {m}");
        }

        // Nothing else changed, and no key went missing.
        let edited: BTreeSet<&str> = ["kvmEnabled", "memSize", "reservedMem", "cpuFlags", "emulatedMachines"].into();
        assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "{name}");
        for (k, v) in &before {
            if !edited.contains(k.as_str()) {
                assert_eq!(&after[k], v, "{name}: {k} changed");
            }
        }
    }
}

#[test]
fn the_models_follow_each_cpu_generation() {
    let model_flags = |host: &str| -> Vec<String> {
        let host = common::root().join("fixtures/hosts").join(host);
        let run = Run::new("after_get_caps");
        run.xl(Some(&std::fs::read_to_string(host.join("xl-info")).unwrap()), "");
        let (out, output) = run.hook("after_get_caps", &host.join("root"), &read(&host.join("caps-vdsm.json")), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let caps = parse(&output);
        caps["cpuFlags"]
            .as_str()
            .unwrap()
            .split(',')
            .filter_map(|f| f.strip_prefix("model_"))
            .map(String::from)
            .collect()
    };
    let has = |models: &[String], m: &str| models.iter().any(|x| x == m);
    // Haswell-EP with TSX off: Haswell-noTSX and its IBRS variant, nothing newer, no TSX model.
    let haswell = model_flags("xen-dom0-haswell");
    assert!(has(&haswell, "Haswell-noTSX") && has(&haswell, "Haswell-noTSX-IBRS"), "{haswell:?}");
    assert!(!has(&haswell, "Haswell") && !has(&haswell, "Broadwell-noTSX"), "{haswell:?}");
    // Ice Lake-SP without TSX or MPX: Icelake-Server-noTSX (its MPX is Xen's opt-in only,
    // its LA57 never offered) and what it contains, but not Cooperlake (no avx512_bf16 in
    // dom0, which Xen would show it) and no TSX model.
    let icelake = model_flags("xen-dom0-icelake");
    for m in ["Icelake-Server-noTSX", "Cascadelake-Server-noTSX", "Skylake-Server-noTSX-IBRS"] {
        assert!(has(&icelake, m), "{m}: {icelake:?}");
    }
    for m in ["Cooperlake", "Icelake-Server", "Skylake-Server", "EPYC"] {
        assert!(!has(&icelake, m), "{m}: {icelake:?}");
    }
    // EPYC Rome: the EPYC models (OSVW and the SVM leaf are Xen's to withhold), no Intel.
    let rome = model_flags("xen-dom0-epyc-rome");
    for m in ["EPYC", "EPYC-IBPB", "EPYC-Rome"] {
        assert!(has(&rome, m), "{m}: {rome:?}");
    }
    assert!(!has(&rome, "EPYC-Milan") && !has(&rome, "Opteron_G4"), "{rome:?}");
    assert!(!rome.iter().any(|m| m.starts_with("Nehalem") || m.starts_with("Skylake")), "{rome:?}");
}

/// The Haswell-EP host: its root, `xl info` and what Vdsm reported.
fn haswell() -> (PathBuf, String, Vec<u8>) {
    let host = common::root().join("fixtures/hosts/xen-dom0-haswell");
    let xl = std::fs::read_to_string(host.join("xl-info")).unwrap();
    let caps = read(&host.join("caps-vdsm.json"));
    (host, xl, caps)
}

#[test]
fn a_host_that_is_not_a_dom0_keeps_vdsms_answer_byte_for_byte() {
    let (host, xl, caps) = haswell();
    // (case, files to write under the root, what stderr says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        ("kvm", &[], "not a Xen dom0: cannot read /proc/xen/capabilities: No such file or directory"),
        ("domu", &[("proc/xen/capabilities", ""), ("sys/hypervisor/type", "xen\n")], "lacks control_d (a Xen guest)"),
        ("no-xenfs", &[("sys/hypervisor/type", "xen\n")], "does not tell dom0 from a guest"),
    ];
    for (name, files, why) in cases {
        let run = Run::new("after_get_caps");
        run.xl(Some(&xl), "");
        let root = copy_root(&run, &host);
        std::fs::remove_dir_all(root.join("proc/xen")).unwrap();
        std::fs::remove_file(root.join("sys/hypervisor/type")).unwrap();
        for (path, text) in files {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let (out, output) = run.hook("after_get_caps", &root, &caps, &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(output, caps, "{name}");
        assert!(stderr(&out).contains(why), "{name}: {}", stderr(&out));
        assert!(stderr(&out).trim_end().ends_with("capabilities left as Vdsm reported them"), "{name}");
    }
}

#[test]
fn every_error_leaves_the_file_byte_for_byte_and_exits_1() {
    let (host, xl, caps) = haswell();
    let xl_with = |from: &str, to: &str| {
        assert!(xl.contains(from), "{from}");
        xl.replacen(from, to, 1)
    };
    let hw_caps = xl.lines().find(|l| l.starts_with("hw_caps")).unwrap().to_string();
    let old_xen = xl_with("xen_minor              : 17", "xen_minor              : 6");
    let bad_caps = xl_with(&hw_caps, "hw_caps                : bfebfbff:zz");
    let no_total = xl.lines().filter(|l| !l.starts_with("total_memory")).collect::<Vec<_>>().join("\n");
    // (case, xl info or None for an xl that fails, input, extra setup, what stderr says)
    type Case = (&'static str, Option<String>, Vec<u8>, fn(&Path), &'static str);
    let cases: Vec<Case> = vec![
        ("xl fails", None, caps.clone(), |_| {}, "info` failed: xencall: error: Could not obtain handle"),
        ("old Xen", Some(old_xen), caps.clone(), |_| {}, "Xen 4.6 lists hw_caps in an older layout"),
        (
            "bad hw_caps",
            Some(bad_caps),
            caps.clone(),
            |_| {},
            "hw_caps 'bfebfbff:zz' is not a list of hexadecimal words",
        ),
        ("no total_memory", Some(no_total), caps.clone(), |_| {}, "xl info has no total_memory"),
        ("not JSON", Some(xl.clone()), b"{\"memSize\": ".to_vec(), |_| {}, "the file is not JSON"),
        ("an array", Some(xl.clone()), b"[1, 2]".to_vec(), |_| {}, "the file holds JSON, but not an object"),
        (
            "no cpuinfo",
            Some(xl.clone()),
            caps.clone(),
            |r| std::fs::remove_file(r.join("proc/cpuinfo")).unwrap(),
            "cannot read /proc/cpuinfo",
        ),
        (
            "bad policy",
            Some(xl.clone()),
            caps.clone(),
            |r| {
                std::fs::create_dir_all(r.join("etc/xenify")).unwrap();
                std::fs::write(r.join("etc/xenify/xenify.toml"), "machine_types = [\"xenfv\"]\n").unwrap();
            },
            "xenify.toml line 1: machine_types: 'xenfv' is neither an i440fx nor a q35 machine type",
        ),
    ];
    for (name, xl_info, input, setup, why) in cases {
        let run = Run::new("after_get_caps");
        run.xl(
            xl_info.as_deref(),
            "xencall: error: Could not obtain handle on privileged command interface: Permission denied",
        );
        let root = copy_root(&run, &host);
        setup(&root);
        let (out, output) = run.hook("after_get_caps", &root, &input, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(output, input, "{name}");
        let err = stderr(&out);
        assert!(err.starts_with("xenify: after_get_caps: error: "), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    // No xl on PATH at all, and a named policy file that does not exist.
    let run = Run::new("after_get_caps");
    let (out, output) = run.hook("after_get_caps", &host.join("root"), &caps, &[]);
    assert_eq!((out.status.code(), output == caps), (Some(1), true));
    assert!(stderr(&out).contains("Xen's xl is not on PATH"), "{}", stderr(&out));
    run.xl(Some(&xl), "");
    let (out, output) =
        run.hook("after_get_caps", &host.join("root"), &caps, &[("XENIFY_CONFIG", "/nonexistent/x.toml")]);
    assert_eq!((out.status.code(), output == caps), (Some(1), true));
    assert!(stderr(&out).contains("/nonexistent/x.toml"), "{}", stderr(&out));
}

#[test]
fn an_xl_that_fails_is_quoted() {
    let (host, _, caps) = haswell();
    let run = Run::new("after_get_caps");
    run.xl(None, "xencall: error: Could not obtain handle on privileged command interface: Permission denied");
    let (out, _) = run.hook("after_get_caps", &host.join("root"), &caps, &[]);
    let err = stderr(&out);
    assert!(err.contains("info` failed: xencall: error: Could not obtain handle"), "{err}");
}

#[test]
fn without_hvm_only_the_memory_is_corrected() {
    let (host, xl, caps) = haswell();
    let virt = xl.lines().find(|l| l.starts_with("virt_caps")).unwrap().to_string();
    let run = Run::new("after_get_caps");
    run.xl(Some(&xl.replacen(&virt, "virt_caps              : pv pv_directio", 1)), "");
    let (out, output) = run.hook("after_get_caps", &host.join("root"), &caps, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("runs no HVM guests on this host (virt_caps: pv pv_directio): kvmEnabled stays false")
    );
    let (before, after) = (parse(&caps), parse(&output));
    assert_eq!(after["kvmEnabled"], before["kvmEnabled"]);
    assert_eq!(after["cpuFlags"], before["cpuFlags"]);
    assert_eq!(after["emulatedMachines"], before["emulatedMachines"]);
    assert_eq!(after["memSize"], Value::String(xl_field(&host, "total_memory")));
}

#[test]
fn the_policy_restricts_the_machine_types_and_the_balloon_counts_for_dom0() {
    let (host, xl, caps) = haswell();
    let run = Run::new("after_get_caps");
    run.xl(Some(&xl), "");
    let root = copy_root(&run, &host);
    std::fs::create_dir_all(root.join("etc/xenify")).unwrap();
    std::fs::write(
        root.join("etc/xenify/xenify.toml"),
        "machine_types = [\"pc-i440fx-2.12\", \"pc-i440fx-rhel7.6.0\"]\n",
    )
    .unwrap();
    // What dom0's balloon driver holds (more than MemTotal shows).
    let kb = dom0_mib(&root) * 1024 + 300 * 1024;
    let balloon = root.join("sys/devices/system/xen_memory/xen_memory0/info");
    std::fs::create_dir_all(&balloon).unwrap();
    std::fs::write(balloon.join("current_kb"), format!("{kb}\n")).unwrap();
    let (out, output) = run.hook("after_get_caps", &root, &caps, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (before, after) = (parse(&caps), parse(&output));
    let mut expected = before["emulatedMachines"].as_array().unwrap().clone();
    expected.extend([Value::from("pc-i440fx-2.12"), Value::from("pc-i440fx-rhel7.6.0")]);
    assert_eq!(after["emulatedMachines"], Value::Array(expected));
    let reserved: u64 = before["reservedMem"].as_str().unwrap().parse().unwrap();
    assert_eq!(after["reservedMem"], Value::String((reserved + kb / 1024).to_string()));
    assert!(stderr(&out).contains("/sys/devices/system/xen_memory/xen_memory0/info/current_kb"), "{}", stderr(&out));
}

#[test]
fn after_get_stats_reports_xens_free_memory_and_nothing_else() {
    for host in hosts() {
        let run = Run::new("after_get_stats");
        let input = read(&host.join("stats-vdsm.json"));
        let (out, output) = run.hook("after_get_stats", &host.join("root"), &input, &[]);
        let name = host.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{name}: quiet at every poll");
        let (before, after) = (parse(&input), parse(&output));
        let free: u64 = before["numaNodeMemFree"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n["memFree"].as_str().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(after["memFree"], Value::from(free), "{name}");
        // Xen's free memory, within what splitting it into nodes rounds away.
        let xen: u64 = xl_field(&host, "free_memory").parse().unwrap();
        assert!(xen.abs_diff(free) <= 2, "{name}: {free} vs {xen}");
        // Every other byte is Vdsm's: the text differs only in memFree's value.
        let (a, b) = (String::from_utf8(input.clone()).unwrap(), String::from_utf8(output.clone()).unwrap());
        let old = format!("\"memFree\": {}", before["memFree"]);
        assert_eq!(b, a.replacen(&old, &format!("\"memFree\": {free}"), 1), "{name}");
    }
}

#[test]
fn after_get_stats_leaves_the_file_when_it_cannot_help() {
    let host = common::root().join("fixtures/hosts/xen-dom0-icelake");
    let stats = read(&host.join("stats-vdsm.json"));
    // Not a dom0: silent about the reason only when there is nothing to say.
    let run = Run::new("after_get_stats");
    let (out, output) = run.hook("after_get_stats", &run.dir.join("no-root"), &stats, &[]);
    assert_eq!((out.status.code(), output == stats), (Some(0), true));
    assert!(stderr(&out).contains("not a Xen dom0"), "{}", stderr(&out));
    // An unpatched Vdsm reports no numaNodeMemFree on a dom0.
    let mut without: serde_json::Map<String, Value> = parse(&stats);
    without.remove("numaNodeMemFree");
    let input = serde_json::to_vec(&without).unwrap();
    let (out, output) = run.hook("after_get_stats", &host.join("root"), &input, &[]);
    assert_eq!((out.status.code(), output == input), (Some(1), true));
    assert!(stderr(&out).contains("Vdsm reported no numaNodeMemFree (is Vdsm patched with packaging/vdsm/0003?)"));
    // Already right: nothing written, nothing said.
    let once = run.hook("after_get_stats", &host.join("root"), &stats, &[]).1;
    let (out, twice) = run.hook("after_get_stats", &host.join("root"), &once, &[]);
    assert_eq!((out.status.code(), twice == once, stderr(&out)), (Some(0), true, String::new()));
}

#[test]
fn a_json_file_outside_a_json_point_is_refused() {
    let run = Run::new("after_vm_start");
    let (out, output) = run.hook("after_vm_start", &run.dir, b"{}", &[]);
    assert_eq!((out.status.code(), output), (Some(1), b"{}".to_vec()));
    assert!(stderr(&out).contains("$_hook_json is set, but xenify tells a JSON hook point by the directory it runs from (after_get_caps, after_get_stats), and this one is 'after_vm_start'"), "{}", stderr(&out));
}

#[test]
fn the_readme_log_line_is_the_haswell_hosts() {
    let (host, xl, caps) = haswell();
    let run = Run::new("after_get_caps");
    run.xl(Some(&xl), "");
    let (out, _) = run.hook("after_get_caps", &host.join("root"), &caps, &[]);
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let line = readme
        .split("<!-- caps-log:start -->\n```\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- caps-log:end -->").next())
        .expect("README has no after_get_caps log line");
    assert_eq!(line, stderr(&out));
}
