//! `xenify doctor --root`: fake hosts built as directory trees (a Xen dom0
//! ready for xenify, a KVM oVirt host, a half-installed dom0, hosts without
//! Vdsm or with an unpatched one), with the verdict of every check asserted.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

const POINTS: [&str; 8] = [
    "before_vm_start",
    "before_device_create",
    "before_nic_hotplug",
    "before_disk_hotplug",
    "before_update_device",
    "before_memory_hotplug",
    "after_get_caps",
    "after_get_stats",
];

const SITE: &str = "/usr/lib/python3.9/site-packages";
const PATCH_DIR: &str = "/usr/share/doc/xenify/vdsm";

/// The shipped Vdsm patches, by file name.
fn patches() -> Vec<(String, String)> {
    let dir = common::root().join("packaging/vdsm");
    let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    found.sort();
    found
}

/// The Vdsm files a patch touches, as the hunks show them: before the patch
/// (context and removed lines) or after it (context and added lines).
fn image(patch: &str, after: bool) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in patch.lines() {
        if let Some(path) = line.strip_prefix("+++ b/lib/") {
            files.push((path.to_string(), String::new()));
        } else if line.starts_with("--- ")
            || line.starts_with("diff ")
            || line.starts_with("index ")
            || line.starts_with("@@")
        {
            continue;
        } else if let Some((_, text)) = files.last_mut() {
            let keep = match line.chars().next() {
                Some(' ') => true,
                Some('+') => after,
                Some('-') => !after,
                _ => false,
            };
            if keep {
                text.push_str(&line[1..]);
                text.push('\n');
            }
        }
    }
    files
}

/// Each check's verdict, detail and fix, by name.
type Checks = BTreeMap<String, (bool, String, Option<String>)>;

struct FakeHost {
    root: PathBuf,
}

impl FakeHost {
    fn new(name: &str) -> FakeHost {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("doctor-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeHost { root }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn file(&self, path: &str, text: &str) -> &Self {
        let p = self.at(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn dir(&self, path: &str) -> &Self {
        std::fs::create_dir_all(self.at(path)).unwrap();
        self
    }

    fn link(&self, path: &str, target: &str) -> &Self {
        let p = self.at(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    fn mode(&self, path: &str, mode: u32) -> &Self {
        std::fs::set_permissions(self.at(path), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// This xenify at /usr/bin/xenify (a hard link: the same file).
    fn binary(&self) -> &Self {
        let p = self.at("/usr/bin/xenify");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::hard_link(env!("CARGO_BIN_EXE_xenify"), &p)
            .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_xenify"), &p).map(|_| ()))
            .unwrap();
        self
    }

    /// A Xen dom0 with HVM, libvirt's libxl driver, xl, and Vdsm patched
    /// and set to xen:///system.
    fn dom0(&self) -> &Self {
        self.xen().vdsm(true).file(
            "/etc/vdsm/vdsm.conf",
            "[vars]\nssl = true\nlibvirt_uri = xen:///system\n\n[addresses]\nmanagement_port = 54321\n",
        )
    }

    /// Xen with HVM, libvirt's libxl driver and xl: a dom0 before Vdsm.
    fn xen(&self) -> &Self {
        self.file("/proc/xen/capabilities", "control_d\n")
            .file("/sys/hypervisor/type", "xen\n")
            .file(
                "/sys/hypervisor/properties/capabilities",
                "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64\n",
            )
            .file("/usr/lib64/libvirt/connection-driver/libvirt_driver_libxl.so", "")
            .file("/usr/sbin/xl", "")
    }

    /// Vdsm, its user and hook directories, with every shipped patch applied or none.
    fn vdsm(&self, patched: bool) -> &Self {
        for (_, patch) in patches() {
            for (path, text) in image(&patch, patched) {
                let at = format!("{SITE}/{path}");
                let old = std::fs::read_to_string(self.at(&at)).unwrap_or_default();
                self.file(&at, &(old + &text));
            }
        }
        self.file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nvdsm:x:36:36:Node Virtualization Manager:/var/lib/vdsm:/sbin/nologin\n",
        )
        .file("/etc/group", "root:x:0:\nkvm:x:36:qemu,sanlock\nqemu:x:107:vdsm,sanlock\n");
        for p in POINTS {
            self.dir(&format!("/usr/libexec/vdsm/hooks/{p}"));
        }
        self
    }

    /// What `make install` installs: the links, the sudoers rule, the patches.
    fn hooks(&self) -> &Self {
        self.binary();
        for p in POINTS {
            self.link(&format!("/usr/libexec/vdsm/hooks/{p}/50_xenify"), "/usr/bin/xenify");
        }
        self.sudoers();
        self.patches()
    }

    fn sudoers(&self) -> &Self {
        let rule = std::fs::read_to_string(common::root().join("packaging/sudoers/50_vdsm_hook_xenify")).unwrap();
        self.file("/etc/sudoers.d/50_vdsm_hook_xenify", &rule).mode("/etc/sudoers.d/50_vdsm_hook_xenify", 0o440)
    }

    fn patches(&self) -> &Self {
        for (name, text) in patches() {
            self.file(&format!("{PATCH_DIR}/{name}"), &text);
        }
        self
    }

    fn doctor(&self) -> (i32, Checks, String) {
        doctor_at(&self.root)
    }
}

fn doctor_at(root: &Path) -> (i32, Checks, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .args(["doctor", "--report", "json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let fix = c["fix"].as_str().map(String::from);
            (
                c["check"].as_str().unwrap().to_string(),
                (c["ok"].as_bool().unwrap(), c["detail"].as_str().unwrap().to_string(), fix),
            )
        })
        .collect();
    let text = Command::new(env!("CARGO_BIN_EXE_xenify")).args(["doctor", "--root"]).arg(root).output().unwrap();
    (out.status.code().unwrap(), checks, String::from_utf8(text.stdout).unwrap())
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn verdicts(checks: &Checks) -> Vec<(String, bool)> {
    checks.iter().map(|(k, v)| (k.clone(), v.0)).collect()
}

#[test]
fn a_ready_dom0_passes_every_check() {
    let host = FakeHost::new("ready");
    host.dom0()
        .hooks()
        .file("/etc/xenify/xenify.toml", "guest = \"hvm\"\nnic_model = \"netfront\"\naccept = [\"nwfilter\"]\n");
    let (code, checks, text) = host.doctor();
    assert_eq!(code, 0, "{text}");
    // xen-dom0, hvm, libxl-driver, xl, a hook per point, sudoers, vdsm-patch, vdsm-uri, config.
    assert_eq!(checks.len(), 4 + POINTS.len() + 4, "{text}");
    assert!(checks.values().all(|c| c.0 && c.2.is_none()), "{text}");
    assert!(checks["xen-dom0"].1.contains("control_d"));
    assert!(checks["hvm"].1.contains("lists hvm-3.0-x86_64"));
    assert!(checks["libxl-driver"].1.contains("/usr/lib64/libvirt/connection-driver/libvirt_driver_libxl.so"));
    assert!(checks["hook before_vm_start"].1.contains("-> /usr/bin/xenify, executable by vdsm"));
    assert!(checks["hook after_get_caps"].1.contains("-> /usr/bin/xenify, executable by vdsm"));
    assert!(checks["sudoers"].1.contains("lets the vdsm user run `xl info` as root"));
    let names: Vec<String> = patches().into_iter().map(|(n, _)| n).collect();
    assert_eq!(checks["vdsm-patch"].1, format!("Vdsm in {SITE} has xenify's patches ({})", names.join(", ")));
    assert_eq!(checks["vdsm-uri"].1, "Vdsm connects to xen:///system (/etc/vdsm/vdsm.conf): libvirt's libxl driver");
    // Only what differs from the defaults, and the accepted loss.
    assert!(
        checks["config"].1.ends_with("parses: nic_model = \"netfront\"; accepted losses: nwfilter"),
        "{}",
        checks["config"].1
    );
    assert!(text.ends_with(&format!("doctor: all {} checks passed\n", checks.len())), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("ok") || l.starts_with("checking") || l.starts_with("doctor:")),
        "{text}"
    );
}

#[test]
fn a_kvm_ovirt_host_fails_xen_libxl_the_hooks_and_vdsm_each_once() {
    let host = FakeHost::new("kvm");
    host.vdsm(false).file("/usr/lib64/libvirt/connection-driver/libvirt_driver_qemu.so", "");
    let (code, checks, text) = host.doctor();
    assert_eq!(code, 1);
    let failed: Vec<String> = checks.iter().filter(|(_, c)| !c.0).map(|(k, _)| k.clone()).collect();
    // One finding per cause: not a dom0 (so no HVM question), no libxl, no xl,
    // xenify linked nowhere, no sudoers rule, no patches.
    let expected = ["hooks", "libxl-driver", "sudoers", "vdsm-patch", "xen-dom0", "xl"];
    assert_eq!(failed, expected, "{text}");
    assert!(!checks.contains_key("hvm") && !checks.contains_key("vdsm-uri"), "{text}");
    assert!(checks["config"].0, "no policy file: the defaults");
    assert!(checks["xen-dom0"].1.contains("neither /proc/xen/capabilities nor /sys/hypervisor/type"));
    assert!(checks["hooks"]
        .1
        .starts_with("xenify is not installed as a Vdsm hook: no 50_xenify in any of the 8 hook directories"));
    assert!(checks["vdsm-patch"].1.contains("xenify's Vdsm patches are not installed"), "{text}");
    // Each failure is followed by what to do.
    assert!(text.contains("fix: install libvirt-daemon-driver-libxl"), "{text}");
    assert!(text.ends_with(&format!("doctor: 6 of {} checks failed\n", checks.len())), "{text}");
}

#[test]
fn without_vdsm_one_finding_says_so() {
    let host = FakeHost::new("no-vdsm");
    host.file("/proc/xen/capabilities", "control_d\n")
        .file("/sys/hypervisor/properties/capabilities", "xen-3.0-x86_64 hvm-3.0-x86_64\n")
        .file("/usr/sbin/xl", "");
    let (code, checks, text) = host.doctor();
    assert_eq!(code, 1);
    let failed: Vec<&String> = checks.iter().filter(|(_, c)| !c.0).map(|(k, _)| k).collect();
    assert_eq!(failed, ["libxl-driver", "vdsm"], "{text}");
    assert!(checks["vdsm"].1.starts_with("Vdsm is not installed"), "{text}");
    assert_eq!(text.matches("Vdsm is not installed").count(), 1, "{text}");
    assert!(!text.contains("hook before_vm_start"), "{text}");
}

#[test]
fn an_unpatched_or_unset_vdsm_is_told_how_with_the_installed_patches() {
    // Stock Vdsm, xenify installed: each patch to apply, in order, with its path.
    let host = FakeHost::new("stock");
    host.file("/proc/xen/capabilities", "control_d\n").vdsm(false).hooks();
    let (_, checks, text) = host.doctor();
    let patch = &checks["vdsm-patch"];
    assert!(!patch.0 && patch.1.contains("which a Xen host needs: each one's header says why"), "{text}");
    let fix = patch.2.as_deref().unwrap();
    for (name, _) in patches() {
        assert!(fix.contains(&format!("patch -p2 -d {SITE} < {PATCH_DIR}/{name}")), "{fix}");
    }
    assert!(fix.ends_with("\nthen set `libvirt_uri = xen:///system` under [vars] in /etc/vdsm/vdsm.conf (or a file in /etc/vdsm/vdsm.conf.d/), then `systemctl restart vdsmd`"), "{fix}");
    assert_eq!(fix.lines().count(), patches().len() + 1, "one command per line: {fix}");
    assert!(!checks.contains_key("vdsm-uri"), "folded into vdsm-patch: {text}");

    // All but the last patch applied: only that one is named.
    let (last, text_last) = patches().pop().unwrap();
    let partial = FakeHost::new("partial");
    partial.file("/proc/xen/capabilities", "control_d\n").vdsm(true).hooks();
    for (path, before) in image(&text_last, false) {
        let at = format!("{SITE}/{path}");
        let after: String = image(&text_last, true).into_iter().find(|(p, _)| *p == path).unwrap().1;
        let all = std::fs::read_to_string(partial.at(&at)).unwrap();
        partial.file(&at, &all.replacen(&after, &before, 1));
    }
    let (_, checks, text) = partial.doctor();
    let patch = &checks["vdsm-patch"];
    assert!(patch.1.contains(&format!("lacks xenify's patch ({last})")), "{text}");
    assert_eq!(patch.2.as_deref().unwrap().matches("patch -p2").count(), 1, "{text}");

    // Patched but not set: the URI is the default; a drop-in sets it, and the last file wins.
    let unset = FakeHost::new("unset");
    unset
        .file("/proc/xen/capabilities", "control_d\n")
        .vdsm(true)
        .hooks()
        .file("/etc/vdsm/vdsm.conf", "[vars]\nssl = true\n");
    let (_, checks, text) = unset.doctor();
    assert!(checks["vdsm-patch"].0, "{text}");
    let uri = &checks["vdsm-uri"];
    assert!(
        !uri.0 && uri.1.starts_with("Vdsm connects to qemu:///system: [vars] libvirt_uri is set in neither"),
        "{text}"
    );
    unset.file("/etc/vdsm/vdsm.conf.d/50-xen.conf", "[vars]\nlibvirt_uri = xen:///system\n");
    let (_, checks, _) = unset.doctor();
    assert_eq!(
        checks["vdsm-uri"].1,
        "Vdsm connects to xen:///system (/etc/vdsm/vdsm.conf.d/50-xen.conf): libvirt's libxl driver"
    );
    unset.file("/etc/vdsm/vdsm.conf.d/90-back.conf", "[vars]\nlibvirt_uri: qemu:///system\n");
    let (_, checks, _) = unset.doctor();
    assert!(!checks["vdsm-uri"].0 && checks["vdsm-uri"].1.contains("(/etc/vdsm/vdsm.conf.d/90-back.conf)"));
}

#[test]
fn a_missing_root_is_a_usage_error() {
    for (root, why) in [("/nonexistent/xenify-root", "does not exist"), ("/etc/hostname", "is not a directory")] {
        let out = Command::new(env!("CARGO_BIN_EXE_xenify")).args(["doctor", "--root", root]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{root}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err,
            format!("xenify: error: the root {root} {why}: --root names the root file system of the host to check\n")
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn hvm_and_the_sudoers_rule_are_judged() {
    let host = FakeHost::new("no-vtx");
    host.dom0()
        .hooks()
        .file("/sys/hypervisor/properties/capabilities", "xen-3.0-x86_64\n")
        .mode("/etc/sudoers.d/50_vdsm_hook_xenify", 0o666);
    let (_, checks, text) = host.doctor();
    let hvm = &checks["hvm"];
    assert!(!hvm.0 && hvm.1.contains("Xen runs no HVM guests here"), "{text}");
    assert!(hvm.2.as_deref().unwrap().contains("Intel VT-x or AMD-V"), "{text}");
    let sudoers = &checks["sudoers"];
    assert!(!sudoers.0 && sudoers.1.contains("(mode 666) may be written by others, so sudo ignores it"), "{text}");
    std::fs::remove_file(host.at("/etc/sudoers.d/50_vdsm_hook_xenify")).unwrap();
    let (_, checks, _) = host.doctor();
    assert!(checks["sudoers"].1.contains("is missing: the after_get_caps hook cannot run `xl info`"));
}

#[test]
fn a_half_installed_dom0_names_each_broken_piece() {
    let host = FakeHost::new("half");
    host.file("/proc/xen/capabilities", "control_d\n")
        .file("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_libxl.so", "")
        .vdsm(false)
        .binary()
        .file("/usr/local/bin/xenify-old", "#!/bin/sh\n")
        .mode("/usr/local/bin/xenify-old", 0o755)
        .file("/opt/xenify", "")
        .link("/usr/libexec/vdsm/hooks/before_vm_start/50_xenify", "/usr/bin/xenify")
        .link("/usr/libexec/vdsm/hooks/before_device_create/50_xenify", "../../../../bin/xenify")
        .link("/usr/libexec/vdsm/hooks/before_nic_hotplug/50_xenify", "/usr/local/bin/xenify-old")
        .link("/usr/libexec/vdsm/hooks/before_disk_hotplug/50_xenify", "/usr/bin/gone")
        .file("/etc/xenify/xenify.toml", "guest = \"pvm\"\n");
    std::fs::remove_dir(host.at("/usr/libexec/vdsm/hooks/before_memory_hotplug")).unwrap();
    // A copy of this binary, readable by root only: Vdsm would skip it.
    std::fs::copy(env!("CARGO_BIN_EXE_xenify"), host.at("/opt/xenify")).unwrap();
    host.mode("/opt/xenify", 0o700).link("/usr/libexec/vdsm/hooks/before_update_device/50_xenify", "/opt/xenify");
    let (code, checks, text) = host.doctor();
    assert_eq!(code, 1);
    let v: BTreeMap<String, bool> = verdicts(&checks).into_iter().collect();
    assert!(v["xen-dom0"] && v["libxl-driver"], "{text}");
    assert!(!v["xl"] && !v["hvm"], "{text}");
    assert!(v["hook before_vm_start"], "{text}");
    assert!(v["hook before_device_create"], "a relative link resolves inside the root: {text}");
    assert!(checks["hook before_nic_hotplug"]
        .1
        .contains("leads to /usr/local/bin/xenify-old, which is not this xenify"));
    assert!(checks["hook before_disk_hotplug"].1.contains("/usr/bin/gone does not exist"), "{text}");
    let update = &checks["hook before_update_device"];
    assert!(!update.0 && update.1.contains("/opt/xenify (mode 700) is not executable by the vdsm user"), "{text}");
    assert_eq!(update.2.as_deref(), Some("chmod 0755 /opt/xenify"));
    assert!(checks["hook before_memory_hotplug"]
        .1
        .contains("does not exist (Vdsm makes one for each hook point it knows)"));
    assert!(checks["hook after_get_caps"].1.contains("50_xenify is missing"), "{text}");
    let config = &checks["config"];
    assert!(
        !config.0 && config.1.contains("/etc/xenify/xenify.toml line 1") && config.1.contains("guest"),
        "{}",
        config.1
    );
    assert!(!v["vdsm-patch"] && !v["sudoers"]);
}

#[test]
fn a_xen_guest_is_not_a_dom0_and_the_hypervisor_type_counts_without_xenfs() {
    let guest = FakeHost::new("domu");
    guest.file("/proc/xen/capabilities", "\n").file("/sys/hypervisor/type", "xen\n");
    let (_, checks, _) = guest.doctor();
    assert!(!checks["xen-dom0"].0 && checks["xen-dom0"].1.contains("a Xen guest, not a dom0"));

    let no_xenfs = FakeHost::new("no-xenfs");
    no_xenfs.file("/sys/hypervisor/type", "xen\n");
    let (_, checks, _) = no_xenfs.doctor();
    assert!(checks["xen-dom0"].0, "{:?}", checks["xen-dom0"]);
}

#[test]
fn a_fifo_in_the_root_is_not_waited_on() {
    // A fake root is the user's: a FIFO where a host file belongs must not
    // stop doctor, which reads host files as xenify reads its inputs.
    let host = FakeHost::new("fifo");
    host.dir("/proc/xen");
    let fifo = host.root.join("proc/xen/capabilities");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (tx, rx) = std::sync::mpsc::channel();
    let root = host.root.clone();
    std::thread::spawn(move || tx.send(doctor_at(&root)).unwrap());
    let (code, checks, _) = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("doctor waits on a FIFO");
    assert_eq!(code, 1);
    assert!(!checks["xen-dom0"].0, "{:?}", checks["xen-dom0"]);
}

#[test]
fn executable_by_vdsm_follows_owner_group_and_other_bits() {
    use std::os::unix::fs::MetadataExt;
    let host = FakeHost::new("modes");
    host.dom0();
    // A copy, so that changing its mode leaves the test binary alone.
    let binary = host.at("/usr/bin/xenify");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_xenify"), &binary).unwrap();
    host.link("/usr/libexec/vdsm/hooks/before_vm_start/50_xenify", "/usr/bin/xenify");
    let meta = std::fs::metadata(&binary).unwrap();
    let (uid, gid) = (meta.uid(), meta.gid());
    let (other_uid, other_gid) = (uid.wrapping_add(4242), gid.wrapping_add(4242));
    // (mode, vdsm's uid, its primary group, the group listing vdsm, executable?)
    let cases = [
        (0o750, other_uid, gid, other_gid, true),
        (0o750, other_uid, other_gid, gid, true),
        (0o750, other_uid, other_gid, other_gid, false),
        (0o701, other_uid, other_gid, other_gid, true),
        (0o670, uid, gid, gid, false),
        (0o700, uid, other_gid, other_gid, true),
    ];
    for (mode, vdsm_uid, primary, member_of, ok) in cases {
        host.mode("/usr/bin/xenify", mode)
            .file("/etc/passwd", &format!("vdsm:x:{vdsm_uid}:{primary}::/var/lib/vdsm:/sbin/nologin\n"))
            .file("/etc/group", &format!("somegroup:x:{member_of}:qemu,vdsm\n"));
        let (_, checks, text) = host.doctor();
        assert_eq!(
            checks["hook before_vm_start"].0, ok,
            "mode {mode:o}, vdsm {vdsm_uid}:{primary}+{member_of}, file {uid}:{gid}: {text}"
        );
    }
}

/// The host of README's doctor example: a dom0 with xenify installed and Vdsm not patched yet.
#[test]
fn the_readme_example_is_what_doctor_says() {
    let host = FakeHost::new("readme");
    host.xen().vdsm(false).hooks();
    let (code, _, text) = host.doctor();
    assert_eq!(code, 1);
    let said: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- doctor:start -->\n```\n$ xenify doctor\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- doctor:end -->").next())
        .expect("README has no doctor example");
    assert_eq!(block, said, "README's doctor example; the host says:\n{said}");
}
