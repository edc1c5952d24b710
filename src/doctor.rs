//! `xenify doctor`: is this host ready to run xenify as a Vdsm hook on Xen?
//! One check per line, each with what to do when it fails. Every check reads
//! files under a root directory (`/` unless `--root`), never runs a program
//! and never changes anything, so tests build fake hosts as directory trees.
//!
//! Decisions where the issue is silent:
//! - A host whose /proc/xen/capabilities lacks `control_d` is a Xen guest,
//!   not a dom0, even though /sys/hypervisor/type says `xen` there too; the
//!   hypervisor type alone counts only when the capabilities file is absent
//!   (xenfs not mounted).
//! - A missing policy file passes: the hook then runs on the defaults.
//! - A hook link "points at this binary" when it resolves, inside the root,
//!   to the same file as the running executable or to a byte-identical copy.
//! - Accepted losses are listed, not failed: accepting them is the
//!   administrator's documented decision.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use xenify::policy::KEYS;
use xenify::Policy;

use crate::hook::{self, DEFAULT_CONFIG, HOOKS_DIR};

/// The outcome of one check.
#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    /// What was found, with the host paths concerned.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

fn pass(check: &str, detail: String) -> Check {
    Check { check: check.to_string(), ok: true, detail, fix: None }
}

fn fail(check: &str, detail: String, fix: String) -> Check {
    Check { check: check.to_string(), ok: false, detail, fix: Some(fix) }
}

/// A host path (absolute, as the host sees it) under the root being checked.
struct Host<'a> {
    root: &'a Path,
}

impl Host<'_> {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> Option<String> {
        fs::read(self.at(path)).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The host paths matching `dir/*/rest` for each entry of `dir`, sorted.
    fn under_each(&self, dir: &str, rest: &str) -> Vec<String> {
        let mut found: Vec<String> = fs::read_dir(self.at(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("{dir}/{}/{rest}", e.file_name().to_string_lossy()))
            .filter(|p| self.at(p).exists())
            .collect();
        found.sort();
        found
    }

    /// Follows symbolic links at `path` inside the root: the host path of
    /// the file it ends at, or why it ends nowhere.
    fn resolve(&self, path: &str) -> Result<String, String> {
        let mut current = path.to_string();
        for _ in 0..16 {
            let meta = fs::symlink_metadata(self.at(&current)).map_err(|_| format!("{current} does not exist"))?;
            if !meta.file_type().is_symlink() {
                return Ok(current);
            }
            let target =
                fs::read_link(self.at(&current)).map_err(|e| format!("cannot read the link {current}: {e}"))?;
            let target = target.to_string_lossy();
            current = if target.starts_with('/') {
                target.into_owned()
            } else {
                let parent = Path::new(&current).parent().unwrap_or(Path::new("/"));
                parent.join(target.as_ref()).to_string_lossy().into_owned()
            };
        }
        Err(format!("{path} is a loop of links"))
    }
}

/// Runs every check against the host at `root` and prints them.
pub fn run(root: &Path, json: bool) -> Result<u8> {
    let exe = std::env::current_exe().unwrap_or_default();
    let checks = checks(root, &exe);
    let failed = checks.iter().filter(|c| !c.ok).count();
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "root": root.display().to_string(),
            "checks": checks,
            "passed": checks.len() - failed,
            "failed": failed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
        if root != Path::new("/") {
            writeln!(out, "checking the host whose root is {}", root.display())?;
        }
        for c in &checks {
            writeln!(out, "{:<4}  {:<width$}  {}", if c.ok { "ok" } else { "FAIL" }, c.check, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "{:<4}  {:<width$}  fix: {}", "", "", fix)?;
            }
        }
        match failed {
            0 => writeln!(out, "doctor: all {} checks passed", checks.len())?,
            n => writeln!(out, "doctor: {n} of {} checks failed", checks.len())?,
        }
    }
    out.flush()?;
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Every check, in the order an administrator fixes them.
pub fn checks(root: &Path, exe: &Path) -> Vec<Check> {
    let host = Host { root };
    let mut checks = vec![dom0(&host), libxl_driver(&host), xl(&host)];
    let vdsm = VdsmUser::read(&host);
    for p in &hook::POINTS {
        checks.push(hook_link(&host, p.name, exe, vdsm.as_ref()));
    }
    checks.push(config(&host));
    checks.push(vdsm_uri(&host));
    checks
}

fn dom0(host: &Host) -> Check {
    const NAME: &str = "xen-dom0";
    const CAPS: &str = "/proc/xen/capabilities";
    const TYPE: &str = "/sys/hypervisor/type";
    let fix = "boot the host into Xen (the hypervisor entry in the boot menu); xenify's output only runs on a Xen dom0";
    match host.read(CAPS) {
        Some(caps) if caps.contains("control_d") => pass(NAME, format!("Xen dom0 ({CAPS} says control_d)")),
        Some(_) => fail(NAME, format!("a Xen guest, not a dom0 ({CAPS} lacks control_d)"), fix.to_string()),
        None => match host.read(TYPE) {
            Some(t) if t.trim() == "xen" => {
                pass(NAME, format!("running on Xen ({TYPE} is xen; {CAPS} is absent, xenfs is not mounted)"))
            }
            Some(t) => fail(NAME, format!("not Xen: {TYPE} is '{}'", t.trim()), fix.to_string()),
            None => fail(NAME, format!("not Xen: neither {CAPS} nor {TYPE} exists"), fix.to_string()),
        },
    }
}

const LIBXL_MODULE: &str = "libvirt/connection-driver/libvirt_driver_libxl.so";

fn libxl_driver(host: &Host) -> Check {
    const NAME: &str = "libxl-driver";
    let mut found: Vec<String> = ["/usr/lib64", "/usr/lib"]
        .iter()
        .map(|d| format!("{d}/{LIBXL_MODULE}"))
        .filter(|p| host.at(p).is_file())
        .collect();
    found.extend(host.under_each("/usr/lib", LIBXL_MODULE));
    match found.first() {
        Some(p) => pass(NAME, format!("libvirt's libxl driver is installed ({p})")),
        None => fail(
            NAME,
            format!(
                "libvirt's libxl driver is not installed (no {LIBXL_MODULE} under /usr/lib64, /usr/lib or /usr/lib/*)"
            ),
            "install libvirt-daemon-driver-libxl (Enterprise Linux) or libvirt-daemon-driver-xen (Debian)".into(),
        ),
    }
}

fn xl(host: &Host) -> Check {
    const NAME: &str = "xl";
    match ["/usr/sbin/xl", "/usr/bin/xl", "/usr/local/sbin/xl"].iter().find(|p| host.at(p).is_file()) {
        Some(p) => pass(NAME, format!("Xen's xl is installed ({p})")),
        None => fail(
            NAME,
            "Xen's xl is not installed (no /usr/sbin/xl, /usr/bin/xl or /usr/local/sbin/xl)".into(),
            "install Xen's tools (xen-runtime on Enterprise Linux, xen-utils on Debian)".into(),
        ),
    }
}

/// The vdsm user, from the host's /etc/passwd and /etc/group.
struct VdsmUser {
    uid: u32,
    gids: Vec<u32>,
}

impl VdsmUser {
    fn read(host: &Host) -> Option<VdsmUser> {
        let passwd = host.read("/etc/passwd")?;
        let fields: Vec<&str> = passwd.lines().find(|l| l.starts_with("vdsm:"))?.split(':').collect();
        let uid = fields.get(2)?.parse().ok()?;
        let mut gids = vec![fields.get(3)?.parse().ok()?];
        for line in host.read("/etc/group").unwrap_or_default().lines() {
            let g: Vec<&str> = line.split(':').collect();
            if g.get(3).is_some_and(|members| members.split(',').any(|m| m == "vdsm")) {
                gids.extend(g.get(2).and_then(|id| id.parse::<u32>().ok()));
            }
        }
        Some(VdsmUser { uid, gids })
    }

    fn can_execute(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if self.gids.contains(&meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

fn hook_link(host: &Host, point: &str, exe: &Path, vdsm: Option<&VdsmUser>) -> Check {
    let name = format!("hook {point}");
    let dir = format!("{HOOKS_DIR}/{point}");
    let link = format!("{dir}/{}", hook::LINK_NAME);
    let exe_shown = exe.display();
    let install = "install the vdsm-hook-xenify package, or run `make install` from the source";
    if !host.at(&dir).is_dir() {
        return fail(
            &name,
            format!("{dir} does not exist: Vdsm is not installed"),
            format!("install vdsm, then {install}"),
        );
    }
    if fs::symlink_metadata(host.at(&link)).is_err() {
        return fail(
            &name,
            format!("{link} is missing, so Vdsm will not run xenify at {point}"),
            format!("{install}, or: ln -s {exe_shown} {link}"),
        );
    }
    let target = match host.resolve(&link) {
        Ok(t) => t,
        Err(why) => return fail(&name, format!("{link} leads nowhere: {why}"), format!("ln -sf {exe_shown} {link}")),
    };
    let Ok(meta) = fs::metadata(host.at(&target)) else {
        return fail(
            &name,
            format!("{link} leads to {target}, which cannot be read"),
            format!("ln -sf {exe_shown} {link}"),
        );
    };
    if !meta.is_file() || !same_file(&host.at(&target), &meta, exe) {
        return fail(
            &name,
            format!("{link} leads to {target}, which is not this xenify ({exe_shown})"),
            format!("ln -sf {exe_shown} {link}, or reinstall so that both are the same version"),
        );
    }
    let Some(vdsm) = vdsm else {
        return fail(
            &name,
            format!("{link} leads to {target}, but there is no vdsm user in /etc/passwd"),
            format!("install vdsm, then {install}"),
        );
    };
    if !vdsm.can_execute(&meta) {
        return fail(
            &name,
            format!(
                "{target} (mode {:o}) is not executable by the vdsm user, so Vdsm skips the hook",
                meta.mode() & 0o7777
            ),
            format!("chmod 0755 {target}"),
        );
    }
    pass(&name, format!("{link} -> {target}, executable by vdsm"))
}

/// Whether `path` is the running executable, or a byte-identical copy.
fn same_file(path: &Path, meta: &fs::Metadata, exe: &Path) -> bool {
    let Ok(exe_meta) = fs::metadata(exe) else { return false };
    if meta.dev() == exe_meta.dev() && meta.ino() == exe_meta.ino() {
        return true;
    }
    meta.len() == exe_meta.len() && matches!((fs::read(path), fs::read(exe)), (Ok(a), Ok(b)) if a == b)
}

fn config(host: &Host) -> Check {
    const NAME: &str = "config";
    let Some(text) = host.read(DEFAULT_CONFIG) else {
        return pass(
            NAME,
            format!("{DEFAULT_CONFIG} is absent: the built-in defaults are in force, no loss is accepted"),
        );
    };
    let mut policy = Policy::default();
    if let Err(e) = policy.apply_toml(&text, DEFAULT_CONFIG) {
        return fail(
            NAME,
            format!("{e}; every VM start would fail"),
            "correct the key it names (see xenify.toml(5))".into(),
        );
    }
    let defaults = Policy::default();
    let changed: Vec<String> = KEYS
        .iter()
        .filter(|k| k.name != "accept" && policy.value_of(k.name) != defaults.value_of(k.name))
        .map(|k| format!("{} = {}", k.name, policy.value_of(k.name)))
        .collect();
    let accepted: Vec<&str> = policy.accept.iter().map(|l| l.id()).collect();
    let settings = if changed.is_empty() { "defaults only".to_string() } else { changed.join(", ") };
    let losses = if accepted.is_empty() {
        "no loss accepted".to_string()
    } else {
        format!("accepted losses: {}", accepted.join(", "))
    };
    pass(NAME, format!("{DEFAULT_CONFIG} parses: {settings}; {losses}"))
}

fn vdsm_uri(host: &Host) -> Check {
    const NAME: &str = "vdsm-uri";
    const MODULE: &str = "vdsm/common/libvirtconnection.py";
    let mut found = Vec::new();
    for lib in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
        for packages in ["site-packages", "dist-packages"] {
            found.extend(host.under_each(lib, &format!("{packages}/{MODULE}")).into_iter().filter(|p| {
                p.strip_prefix(lib).is_some_and(|rest| rest.trim_start_matches('/').starts_with("python3"))
            }));
        }
    }
    let Some(path) = found.first() else {
        return fail(
            NAME,
            format!("Vdsm is not installed (no {MODULE} in a python3 site-packages)"),
            "install vdsm; xenify is a Vdsm hook".into(),
        );
    };
    let text = host.read(path).unwrap_or_default();
    if text.contains("'qemu:///system'") || text.contains("\"qemu:///system\"") {
        return fail(
            NAME,
            format!("Vdsm connects only to qemu:///system ({path}): converted VMs are still defined on the QEMU driver, which rejects type='xen'"),
            "Vdsm itself must connect to xen:///system (its libvirt connection and migration URIs); the hook alone cannot change that".into(),
        );
    }
    pass(NAME, format!("{path} does not hard-wire qemu:///system"))
}
