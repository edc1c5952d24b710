//! The Vdsm hook: the file `_hook_domxml` names is replaced only on success;
//! on a refusal or any error it is byte-identical to what Vdsm wrote, the
//! exit code is 2 and stderr says why in its first line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-hook-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary as Vdsm does: no arguments, the variable set, plus the
/// VM custom properties `props`. The policy file is an empty one of the
/// test's own, so the machine's /etc/xenify does not matter.
fn hook_with(domxml: &Path, args: &[&str], props: &[(&str, &str)]) -> Output {
    let empty = domxml.with_file_name("empty.toml");
    if !empty.exists() {
        std::fs::write(&empty, "").unwrap();
    }
    hook_with_config(domxml, &empty, args, props)
}

/// The same with the policy file `config`.
fn hook_with_config(domxml: &Path, config: &Path, args: &[&str], props: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenify"));
    cmd.args(args).env("_hook_domxml", domxml).env("XENIFY_CONFIG", config).stdin(Stdio::null());
    for (k, v) in props {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn hook(domxml: &Path, args: &[&str]) -> Output {
    hook_with(domxml, args, &[])
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::root().join("fixtures/domains").join(name)).unwrap()
}

/// The files in `dir` but the test's own policy file.
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "empty.toml").count()
}

#[test]
fn success_replaces_the_file_with_the_conversion() {
    let dir = scratch("ok");
    let path = dir.join("tmpabc123");
    let input = fixture("vm-sysprep-floppy.xml");
    std::fs::write(&path, &input).unwrap();
    let mut policy = xenify::Policy::default();
    policy.accept.extend([xenify::Loss::Nwfilter, xenify::Loss::GraphicsSecurity, xenify::Loss::FloppyMedia]);
    let expected = xenify::convert_all(std::str::from_utf8(&input).unwrap(), &policy).unwrap().output().unwrap();
    let o = hook_with(&path, &[], &[("xenify_accept", "nwfilter,graphics-security,floppy-media")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    assert!(err.starts_with("xenify: converted: VM 'windows_10'"), "{err}");
    assert_eq!(files_in(&dir), 1, "temporary files left behind");
    // Run again on its own output: nothing to do, the file is not rewritten.
    let o = hook_with(&path, &[], &[("xenify_accept", "nwfilter,graphics-security,floppy-media")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
}

#[test]
fn the_policy_file_and_custom_properties_set_the_policy() {
    let dir = scratch("policy");
    let path = dir.join("tmpdomxml");
    let input = fixture("vm-sysprep-floppy.xml");
    std::fs::write(&path, &input).unwrap();
    let config = dir.join("xenify.toml");
    std::fs::write(
        &config,
        "accept = [\"nwfilter\", \"graphics-security\", \"floppy-media\"]\nnic_model = \"rtl8139\"\n",
    )
    .unwrap();
    let run = |props: &[(&str, &str)]| hook_with_config(&path, &config, &[], props);
    // A custom property overrides the file for this VM.
    let o = run(&[("xenify_nic_model", "netfront")]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&path).unwrap().contains("<model type=\"netfront\"/>"));
    // A bad value is an error naming the property; the file stays as it was.
    std::fs::write(&path, &input).unwrap();
    let o = run(&[("xenify_max_vcpus", "1000")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("VM custom property xenify_max_vcpus: max_vcpus: 1000 is out of range"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), input);
    // So is an unknown one: nothing is ignored.
    let o = run(&[("xenify_nic", "e1000")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("xenify_nic: nic: unknown key"));
    assert_eq!(std::fs::read(&path).unwrap(), input);
    // A bad policy file names the file and the line.
    std::fs::write(&config, "\nqcow2 = \"maybe\"\n").unwrap();
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains(&format!("{} line 2: qcow2: 'maybe' is not one of", config.display())));
    assert_eq!(std::fs::read(&path).unwrap(), input);
}

#[test]
fn refusal_leaves_the_file_byte_identical_and_exits_2() {
    let dir = scratch("refused");
    let path = dir.join("tmpdomxml");
    let original = fixture("vm-sysprep-floppy.xml");
    std::fs::write(&path, &original).unwrap();
    for args in [&[][..], &["hook"][..]] {
        let o = hook(&path, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(std::fs::read(&path).unwrap(), original);
        let err = String::from_utf8_lossy(&o.stderr);
        // Line 1, which the engine shows, says what stops the VM and the
        // exact setting that starts it; the hint names the policy file in force.
        let config = dir.join("empty.toml");
        let setting = format!(
            "add \"floppy-media\", \"nwfilter\", \"graphics-security\" to accept in {} or set the VM custom property xenify_accept=floppy-media,nwfilter,graphics-security",
            config.display()
        );
        let first = err.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "xenify: refused: VM 'windows_10' cannot run on Xen unless the loss of floppy-media, nwfilter, graphics-security is accepted: to start it, {setting}; nothing was written ({})",
                path.display()
            )
        );
        for line in err.lines().skip(1) {
            assert!(line.contains(&format!("; to start without it, {setting} [")), "{line}");
        }
    }
}

/// Issue 12 item 4: with xenify_accept=nwfilter set, the hint proposed
/// xenify_accept=graphics-security, which would have taken nwfilter back.
#[test]
fn the_hint_keeps_what_the_custom_property_already_accepts() {
    let dir = scratch("hint-keeps");
    let path = dir.join("tmpdomxml");
    let original = fixture("hostedengine-lease.xml");
    std::fs::write(&path, &original).unwrap();
    let o = hook_with(&path, &[], &[("xenify_accept", "nwfilter")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap();
    assert!(first.contains("unless the loss of graphics-security is accepted"), "{first}");
    assert!(first.contains("set the VM custom property xenify_accept=nwfilter,graphics-security;"), "{first}");
    assert!(err.contains("xenify: policy: accept = [\"nwfilter\"] (VM custom property xenify_accept)"), "{err}");
    // Following the hint starts the VM.
    let o = hook_with(&path, &[], &[("xenify_accept", "nwfilter,graphics-security")]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The policy file's accept and the VM's xenify_accept add up
/// (policy::MERGE_RULE); the file's own other keys are overridden.
#[test]
fn a_custom_property_adds_to_the_policy_files_accept() {
    let dir = scratch("accept-union");
    let path = dir.join("tmpdomxml");
    let original = fixture("hostedengine-lease.xml");
    std::fs::write(&path, &original).unwrap();
    let config = dir.join("xenify.toml");
    std::fs::write(&config, "accept = [\"nwfilter\"]\nnic_model = \"rtl8139\"\n").unwrap();
    let o = hook_with_config(&path, &config, &[], &[("xenify_accept", "graphics-security")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("xenify: policy: accept = [\"nwfilter\"] ({} line 1)", config.display())), "{err}");
    assert!(
        err.contains("xenify: policy: accept = [\"graphics-security\"] (VM custom property xenify_accept)"),
        "{err}"
    );
    // Without the property, the hint adds to what the file accepts.
    std::fs::write(&path, &original).unwrap();
    let o = hook_with_config(&path, &config, &[], &[]);
    assert_eq!(o.status.code(), Some(2));
    let first = String::from_utf8_lossy(&o.stderr).lines().next().unwrap().to_string();
    assert!(
        first.contains(&format!(
            "add \"graphics-security\" to accept in {} or set the VM custom property xenify_accept=graphics-security;",
            config.display()
        )),
        "{first}"
    );
}

/// Issue 12 item 6: line 1 of a refusal that no setting accepts says why.
#[test]
fn line_one_says_why_the_vm_cannot_start() {
    let dir = scratch("why");
    let path = dir.join("tmpdomxml");
    for (fixture, why) in [
        ("domain-type-to-xen/aarch64-refused.xml", "architecture 'aarch64': xenify converts x86 guests"),
        ("fix-cdroms/third-cdrom-refused.xml", "a third CD-ROM: libxl emulates CD-ROMs on IDE only"),
        ("memory-to-xen/below-min-memory-refused.xml", "64 MiB of memory is below the policy's min_memory_mib"),
        ("disks-to-xen-pv/gluster-disk-refused.xml", "network disk with protocol 'gluster'"),
        ("interfaces-to-xen-pv/direct-interface-refused.xml", "interface type 'direct'"),
        ("os-to-xen/pvh-without-kernel-refused.xml", "a PVH guest needs a kernel to boot"),
    ] {
        let input = std::fs::read(common::root().join("fixtures/passes").join(fixture)).unwrap();
        std::fs::write(&path, &input).unwrap();
        let guest = if fixture.starts_with("os-to-xen") { "pvh" } else { "hvm" };
        let o = hook_with(&path, &[], &[("xenify_guest", guest), ("xenify_accept", "nwfilter,graphics-security")]);
        assert_eq!(o.status.code(), Some(2), "{fixture}");
        let err = String::from_utf8_lossy(&o.stderr);
        let first = err.lines().next().unwrap();
        assert!(
            first.starts_with("xenify: refused: VM '") && first.contains(&format!("cannot run on Xen: {why}")),
            "{fixture}: {first}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), input, "{fixture}");
    }
}

/// Issue 12 item 6: a newline in the VM's name (or anything else the
/// report quotes) cannot forge a line of the report or of vdsm.log.
#[test]
fn control_characters_from_the_document_are_escaped() {
    let dir = scratch("forge");
    let path = dir.join("tmp\nxenify: converted: forged");
    let domain = "<domain type='kvm'><name>vm&#10;xenify: converted: VM 'forged'&#13;&#x85;&#x2028;&#9;end</name>\
        <memory>1048576</memory><vcpu>1</vcpu><os><type arch='aarch64'>hvm</type></os>\
        <devices><interface type='bridge'><source bridge='b&#10;xenify: x'/>\
        <filterref filter='f&#10;xenify: converted: forged'/></interface></devices></domain>";
    std::fs::write(&path, domain).unwrap();
    let o = hook(&path, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines.iter().all(|l| !l.contains(['\r', '\t', '\u{85}', '\u{2028}'])), "{err:?}");
    assert!(
        lines[0].starts_with(
            "xenify: refused: VM 'vm\\nxenify: converted: VM 'forged'\\r\\u{85}\\u{2028}\\tend' cannot run"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("tmp\\nxenify: converted: forged)"), "{}", lines[0]);
    assert!(lines[2].contains("network filter 'f\\nxenify: converted: forged'"), "{}", lines[2]);
}

#[test]
fn malformed_xml_leaves_the_file_and_exits_2() {
    let dir = scratch("malformed");
    let path = dir.join("tmpdomxml");
    let original = b"<domain type='kvm'><name>vm</name><devices></domain>".to_vec();
    std::fs::write(&path, &original).unwrap();
    let o = hook(&path, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("xenify: error: {}: malformed XML", path.display())), "{err}");
}

#[test]
fn missing_file_and_missing_variable_exit_2() {
    let dir = scratch("missing");
    let path = dir.join("gone");
    let o = hook(&path, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&path.display().to_string()));
    assert!(!path.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_xenify")).arg("hook").env_remove("_hook_domxml").output().unwrap();
    assert_eq!(files_in(&dir), 0);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("$_hook_domxml is not set"));
}

#[test]
fn the_hook_never_reads_stdin() {
    let dir = scratch("stdin");
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, fixture("vm-sysprep-floppy.xml")).unwrap();
    // A pipe that is never written to nor closed: a hook reading it would hang.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", &path)
        .env("XENIFY_CONFIG", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the hook waited on stdin");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(2));
}

#[test]
fn the_console_listens_on_the_address_of_the_vdsm_network_bridge_of_this_host() {
    // vdsm-lo names the bridge "lo", which every Linux host has, at 127.0.0.1.
    let dir = scratch("bridge");
    let path = dir.join("tmpdomxml");
    let domain = "<domain type='kvm'><name>vm</name><uuid>0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d</uuid>\
        <memory>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>\
        <graphics type='vnc' port='-1' autoport='yes'><listen type='network' network='vdsm-lo'/></graphics>\
        <graphics type='vnc' port='-1' autoport='yes'><listen type='network' network='vdsm-no-such-bridge'/></graphics>\
        </devices></domain>";
    std::fs::write(&path, domain).unwrap();
    let o = hook(&path, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = std::fs::read_to_string(&path).unwrap();
    assert!(out.contains("<listen type='address' address='127.0.0.1'/>"), "{out}");
    // A custom property gives the address where the host has none (the
    // second console is removed, libxl enables one: only the first counts).
    std::fs::write(&path, domain.replace("vdsm-lo", "vdsm-no-such-bridge0")).unwrap();
    let o = hook_with(&path, &[], &[("xenify_graphics_listen", "192.0.2.44")]);
    assert_eq!(o.status.code(), Some(0));
    let out = std::fs::read_to_string(&path).unwrap();
    assert!(out.contains("address='192.0.2.44'"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("xenify: policy: graphics_listen = \"192.0.2.44\" (VM custom property xenify_graphics_listen)"),
        "{err}"
    );
}

#[test]
fn bad_loss_ids_and_wrong_types_in_properties_are_errors_and_leave_the_file() {
    let dir = scratch("badprops");
    let path = dir.join("tmpdomxml");
    let input = fixture("vm-sysprep-floppy.xml");
    for (var, value, says) in [
        ("xenify_accept", "nwfilter,spoofing", "xenify_accept: accept: unknown loss id 'spoofing'"),
        ("xenify_max_vcpus", "many", "xenify_max_vcpus: max_vcpus: expected an integer"),
        (
            "xenify_graphics_listen",
            "not-an-ip",
            "xenify_graphics_listen: graphics_listen: 'not-an-ip' is not an IP address",
        ),
        ("xenify_guest", "pv", "xenify_guest: guest: 'pv' is not one of"),
    ] {
        std::fs::write(&path, &input).unwrap();
        let o = hook_with(&path, &[], &[(var, value)]);
        assert_eq!(o.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.lines().next().unwrap().contains(says), "{var}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), input, "{var}");
    }
    // A wrong type in the policy file names the file and the line.
    let config = dir.join("bad.toml");
    std::fs::write(&config, "accept = [\"nwfilter\"]\nmax_vcpus = \"64\"\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", &path)
        .env("XENIFY_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{} line 2: max_vcpus: expected an integer", config.display())), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), input);
}

#[test]
fn the_hook_point_decides_what_the_document_may_be() {
    let dir = scratch("points");
    let point = dir.join("hooks").join("before_vm_start");
    std::fs::create_dir_all(&point).unwrap();
    let link = point.join("50_xenify");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_xenify"), &link).unwrap();
    let path = dir.join("tmpdomxml");
    let nic = "<interface type='bridge'><source bridge='ovirtmgmt'/><model type='virtio'/></interface>";
    std::fs::write(&path, nic).unwrap();
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    let o = Command::new(&link)
        .env("_hook_domxml", &path)
        .env("XENIFY_CONFIG", dir.join("empty.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("the root element is <interface>, but this hook point hands over <domain>"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), nic);
}
