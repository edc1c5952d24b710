//! `xenify doctor --root`: fake hosts built as directory trees (a Xen dom0
//! ready for xenify, a KVM oVirt host, a half-installed dom0), with the
//! verdict of every check asserted.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const POINTS: [&str; 6] = [
    "before_vm_start",
    "before_device_create",
    "before_nic_hotplug",
    "before_disk_hotplug",
    "before_update_device",
    "before_memory_hotplug",
];

/// Vdsm's module as shipped: the URI is a literal (vdsm-hooks.md §1.4).
const STOCK_VDSM: &str = "def get():\n    conn = open_connection('qemu:///system', SASL_USERNAME, password)\n";
const PATCHED_VDSM: &str = "def get():\n    conn = open_connection('xen:///system', SASL_USERNAME, password)\n";

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

    /// A Xen dom0 with libvirt's libxl driver, xl, Vdsm and its user.
    fn dom0(&self) -> &Self {
        self.file("/proc/xen/capabilities", "control_d\n")
            .file("/sys/hypervisor/type", "xen\n")
            .file("/usr/lib64/libvirt/connection-driver/libvirt_driver_libxl.so", "")
            .file("/usr/sbin/xl", "")
            .vdsm(PATCHED_VDSM)
    }

    fn vdsm(&self, module: &str) -> &Self {
        self.file("/usr/lib/python3.9/site-packages/vdsm/common/libvirtconnection.py", module)
            .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nvdsm:x:36:36:Node Virtualization Manager:/var/lib/vdsm:/sbin/nologin\n")
            .file("/etc/group", "root:x:0:\nkvm:x:36:qemu,sanlock\nqemu:x:107:vdsm,sanlock\n");
        for p in POINTS {
            self.dir(&format!("/usr/libexec/vdsm/hooks/{p}"));
        }
        self
    }

    /// The links `make install` creates.
    fn hooks(&self) -> &Self {
        self.binary();
        for p in POINTS {
            self.link(&format!("/usr/libexec/vdsm/hooks/{p}/50_xenify"), "/usr/bin/xenify");
        }
        self
    }

    fn doctor(&self) -> (i32, Checks, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_xenify"))
            .args(["doctor", "--report", "json", "--root"])
            .arg(&self.root)
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
        let text =
            Command::new(env!("CARGO_BIN_EXE_xenify")).args(["doctor", "--root"]).arg(&self.root).output().unwrap();
        (out.status.code().unwrap(), checks, String::from_utf8(text.stdout).unwrap())
    }
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
    assert_eq!(checks.len(), 3 + POINTS.len() + 2);
    assert!(checks.values().all(|c| c.0 && c.2.is_none()), "{text}");
    assert!(checks["xen-dom0"].1.contains("control_d"));
    assert!(checks["libxl-driver"].1.contains("/usr/lib64/libvirt/connection-driver/libvirt_driver_libxl.so"));
    assert!(checks["hook before_vm_start"].1.contains("-> /usr/bin/xenify, executable by vdsm"));
    // Only what differs from the defaults, and the accepted loss.
    assert!(
        checks["config"].1.ends_with("parses: nic_model = \"netfront\"; accepted losses: nwfilter"),
        "{}",
        checks["config"].1
    );
    assert!(text.ends_with("doctor: all 11 checks passed\n"), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("ok") || l.starts_with("checking") || l.starts_with("doctor:")),
        "{text}"
    );
}

#[test]
fn a_kvm_ovirt_host_fails_xen_libxl_the_links_and_the_uri() {
    let host = FakeHost::new("kvm");
    host.vdsm(STOCK_VDSM).file("/usr/lib64/libvirt/connection-driver/libvirt_driver_qemu.so", "");
    let (code, checks, text) = host.doctor();
    assert_eq!(code, 1);
    let failed: Vec<String> = checks.iter().filter(|(_, c)| !c.0).map(|(k, _)| k.clone()).collect();
    let mut expected: Vec<String> = ["xen-dom0", "libxl-driver", "xl", "vdsm-uri"].map(String::from).to_vec();
    expected.extend(POINTS.iter().map(|p| format!("hook {p}")));
    expected.sort();
    assert_eq!(failed, expected, "{text}");
    assert!(checks["config"].0, "no policy file: the defaults");
    assert!(checks["xen-dom0"].1.contains("neither /proc/xen/capabilities nor /sys/hypervisor/type"));
    let uri = &checks["vdsm-uri"];
    assert!(
        uri.1.contains("qemu:///system")
            && uri.1.contains("/usr/lib/python3.9/site-packages/vdsm/common/libvirtconnection.py")
    );
    assert!(uri.2.as_deref().unwrap().contains("xen:///system"));
    assert!(checks["hook before_nic_hotplug"].1.contains("50_xenify is missing"));
    // Each failure is followed by what to do.
    assert!(text.contains("fix: install libvirt-daemon-driver-libxl"), "{text}");
    assert!(text.ends_with("doctor: 10 of 11 checks failed\n"), "{text}");
}

#[test]
fn a_half_installed_dom0_names_each_broken_piece() {
    let host = FakeHost::new("half");
    host.file("/proc/xen/capabilities", "control_d\n")
        .file("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_libxl.so", "")
        .vdsm(STOCK_VDSM)
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
    assert!(!v["xl"]);
    assert!(v["hook before_vm_start"], "{text}");
    assert!(v["hook before_device_create"], "a relative link resolves inside the root: {text}");
    assert!(checks["hook before_nic_hotplug"]
        .1
        .contains("leads to /usr/local/bin/xenify-old, which is not this xenify"));
    assert!(checks["hook before_disk_hotplug"].1.contains("/usr/bin/gone does not exist"), "{text}");
    let update = &checks["hook before_update_device"];
    assert!(!update.0 && update.1.contains("/opt/xenify (mode 700) is not executable by the vdsm user"), "{text}");
    assert_eq!(update.2.as_deref(), Some("chmod 0755 /opt/xenify"));
    assert!(checks["hook before_memory_hotplug"].1.contains("does not exist: Vdsm is not installed"));
    let config = &checks["config"];
    assert!(
        !config.0 && config.1.contains("/etc/xenify/xenify.toml line 1") && config.1.contains("guest"),
        "{}",
        config.1
    );
    assert!(!v["vdsm-uri"]);
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
