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
//! - Failures that share one cause are one finding: without Vdsm there is
//!   one `vdsm` failure instead of a failure per hook link, the sudoers rule
//!   and Vdsm's URI; with xenify linked at no hook point, one `hooks`
//!   failure; on a host that is not a Xen dom0, Xen's HVM support is not
//!   asked; an unpatched Vdsm is one `vdsm-patch` failure whose fix includes
//!   setting the URI.
//! - Vdsm counts as patched when every line xenify's installed patches add
//!   (`/usr/share/doc/xenify/vdsm/*.patch`, or under `/usr/local`) is in the
//!   file it adds it to; so a patch added later is checked as well.
//! - Vdsm's URI is the last `[vars] libvirt_uri` of `/etc/vdsm/vdsm.conf`
//!   and the `*.conf` drop-ins, read in Vdsm's order (the file, then the
//!   drop-ins of `/usr/lib/vdsm`, `/run/vdsm` and `/etc/vdsm` by name).

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;
use xenify::policy::KEYS;
use xenify::report::escape;
use xenify::Policy;

use crate::files;
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

/// The most doctor reads of one host file (`/proc/cpuinfo` of a large host
/// is well under it).
const HOST_FILE_LIMIT: usize = 4 << 20;

/// A host path (absolute, as the host sees it) under the root being checked.
struct Host<'a> {
    root: &'a Path,
}

impl Host<'_> {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// A host file's text, bounded and without blocking (a FIFO in a fake
    /// root is refused, not waited on), as the conversion reads its input.
    fn read(&self, path: &str) -> Option<String> {
        files::read_file(&self.at(path), HOST_FILE_LIMIT).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
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
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "the root {} is not a directory: --root names the root file system of the host to check",
            root.display()
        ),
        Err(_) => {
            bail!("the root {} does not exist: --root names the root file system of the host to check", root.display())
        }
    }
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
            writeln!(out, "checking the host whose root is {}", escape(&root.display().to_string()))?;
        }
        for c in &checks {
            // What the host's files say goes through escape: a newline in a
            // path must not forge a line of the report.
            writeln!(out, "{:<4}  {:<width$}  {}", if c.ok { "ok" } else { "FAIL" }, c.check, escape(&c.detail))?;
            // A fix of several commands is one per line.
            for (i, line) in c.fix.iter().flat_map(|f| f.lines()).enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                writeln!(out, "{:<4}  {:<width$}  {lead}{}", "", "", escape(line))?;
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

/// Every check, in the order an administrator fixes them; failures that
/// share a cause are one check (the module comment says which).
pub fn checks(root: &Path, exe: &Path) -> Vec<Check> {
    let host = Host { root };
    let dom0 = dom0(&host);
    let is_dom0 = dom0.ok;
    let mut checks = vec![dom0];
    if is_dom0 {
        checks.push(hvm(&host));
    }
    checks.push(libxl_driver(&host));
    checks.push(xl(&host));
    match Vdsm::find(&host) {
        None => checks.push(fail(
            "vdsm",
            format!(
                "Vdsm is not installed: no {HOOKS_DIR} and no {LIBVIRTCONNECTION} in a python3 site-packages, so xenify's hook links, its sudoers rule and Vdsm's libvirt URI are not checked"
            ),
            "install vdsm (adding the host in oVirt Engine does), then the vdsm-hook-xenify package".into(),
        )),
        Some(vdsm) => {
            let user = VdsmUser::read(&host);
            let links: Vec<Check> = hook::point_names().iter().map(|p| hook_link(&host, p, exe, user.as_ref())).collect();
            if links.iter().all(|c| !c.ok && c.detail.contains(" is missing,")) {
                checks.push(fail(
                    "hooks",
                    format!(
                        "xenify is not installed as a Vdsm hook: no {} in any of the {} hook directories ({})",
                        hook::LINK_NAME,
                        links.len(),
                        hook::point_names().join(", ")
                    ),
                    "install the vdsm-hook-xenify package, or run `make install` from the source".into(),
                ));
            } else {
                checks.extend(links);
            }
            checks.push(sudoers(&host));
            checks.extend(vdsm.checks(&host));
        }
    }
    checks.push(config(&host));
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
            format!("{dir} does not exist (Vdsm makes one for each hook point it knows)"),
            format!("reinstall vdsm, then {install}"),
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

fn hvm(host: &Host) -> Check {
    const NAME: &str = "hvm";
    const CAPS: &str = "/sys/hypervisor/properties/capabilities";
    match host.read(CAPS) {
        Some(caps) if crate::caps::host::xen_caps_hvm(&caps) => pass(
            NAME,
            format!("Xen runs HVM guests ({CAPS} lists hvm-3.0-x86_64): through the after_get_caps hook the Engine sees hardware virtualization"),
        ),
        Some(caps) => fail(
            NAME,
            format!("Xen runs no HVM guests here ({CAPS} is '{}'): the Engine will see no hardware virtualization and refuse the host", caps.trim()),
            "enable the CPU's virtualization extensions (Intel VT-x or AMD-V) in the firmware setup and reboot".into(),
        ),
        None => fail(
            NAME,
            format!("{CAPS} is missing, so Xen's HVM support is unknown (a dom0 kernel without CONFIG_XEN_SYS_HYPERVISOR?)"),
            "run `xl info` as root: its virt_caps must list hvm, else enable Intel VT-x or AMD-V in the firmware".into(),
        ),
    }
}

/// The sudoers rule that lets after_get_caps run `xl info` as root.
const SUDOERS: &str = "/etc/sudoers.d/50_vdsm_hook_xenify";

fn sudoers(host: &Host) -> Check {
    const NAME: &str = "sudoers";
    let fix = "install the vdsm-hook-xenify package, or run `make install` from the source".to_string();
    match fs::metadata(host.at(SUDOERS)) {
        Err(_) => fail(
            NAME,
            format!("{SUDOERS} is missing: the after_get_caps hook cannot run `xl info` as the vdsm user, so the Engine will not see the host's CPU models"),
            fix,
        ),
        Ok(m) if m.mode() & 0o022 != 0 || !m.is_file() => fail(
            NAME,
            format!("{SUDOERS} (mode {:o}) may be written by others, so sudo ignores it", m.mode() & 0o7777),
            format!("chmod 0440 {SUDOERS}"),
        ),
        Ok(_) => match host.read(SUDOERS) {
            Some(text) if !text.contains("xl info") => {
                fail(NAME, format!("{SUDOERS} does not allow `xl info`"), format!("reinstall it: {fix}"))
            }
            _ => pass(NAME, format!("{SUDOERS} lets the vdsm user run `xl info` as root")),
        },
    }
}

/// Vdsm's module that opens the libvirt connection.
const LIBVIRTCONNECTION: &str = "vdsm/common/libvirtconnection.py";

/// Where xenify's Vdsm patches are installed (RPM, then `make install
/// PREFIX=/usr/local`).
const PATCH_DIRS: [&str; 2] = ["/usr/share/doc/xenify/vdsm", "/usr/local/share/doc/xenify/vdsm"];

/// An installed Vdsm: the python3 site-packages that holds it.
struct Vdsm {
    site: String,
}

impl Vdsm {
    fn find(host: &Host) -> Option<Vdsm> {
        let mut found = Vec::new();
        for lib in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
            for packages in ["site-packages", "dist-packages"] {
                found.extend(host.under_each(lib, &format!("{packages}/{LIBVIRTCONNECTION}")).into_iter().filter(
                    |p| p.strip_prefix(lib).is_some_and(|rest| rest.trim_start_matches('/').starts_with("python3")),
                ));
            }
        }
        match found.first() {
            Some(p) => Some(Vdsm { site: p.trim_end_matches(LIBVIRTCONNECTION).trim_end_matches('/').to_string() }),
            None if host.at(HOOKS_DIR).is_dir() => Some(Vdsm { site: String::new() }),
            None => None,
        }
    }

    /// `vdsm-patch`, then `vdsm-uri` once the patches are applied.
    fn checks(&self, host: &Host) -> Vec<Check> {
        if self.site.is_empty() {
            return vec![fail(
                "vdsm-patch",
                format!(
                    "{HOOKS_DIR} exists but {LIBVIRTCONNECTION} is in no python3 site-packages: Vdsm is half installed"
                ),
                "reinstall vdsm".into(),
            )];
        }
        let Some((dir, patches)) = PATCH_DIRS.iter().find_map(|d| {
            let mut found: Vec<String> = fs::read_dir(host.at(d))
                .ok()?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".patch"))
                .collect();
            found.sort();
            (!found.is_empty()).then(|| (d.to_string(), found))
        }) else {
            return vec![fail(
                "vdsm-patch",
                format!(
                    "xenify's Vdsm patches are not installed (no *.patch in {}), so whether Vdsm is patched is unknown",
                    PATCH_DIRS.join(" or ")
                ),
                "install the vdsm-hook-xenify package, or run `make install` from the source".into(),
            )];
        };
        let unapplied: Vec<&String> = patches.iter().filter(|p| !self.applied(host, &format!("{dir}/{p}"))).collect();
        let uri_fix = "set `libvirt_uri = xen:///system` under [vars] in /etc/vdsm/vdsm.conf (or a file in /etc/vdsm/vdsm.conf.d/), then `systemctl restart vdsmd`";
        if !unapplied.is_empty() {
            let commands: Vec<String> =
                unapplied.iter().map(|p| format!("patch -p2 -d {} < {dir}/{p}", self.site)).collect();
            let names: Vec<&str> = unapplied.iter().map(|p| p.as_str()).collect();
            return vec![fail(
                "vdsm-patch",
                format!(
                    "Vdsm in {} lacks xenify's {} ({}), which a Xen host needs: each one's header says why",
                    self.site,
                    if names.len() == 1 { "patch" } else { "patches" },
                    names.join(", ")
                ),
                format!("{}\nthen {uri_fix}", commands.join("\n")),
            )];
        }
        vec![
            pass("vdsm-patch", format!("Vdsm in {} has xenify's patches ({})", self.site, patches.join(", "))),
            vdsm_uri(host, uri_fix),
        ]
    }

    /// Whether every line `patch` adds is in the file it adds it to.
    fn applied(&self, host: &Host, patch: &str) -> bool {
        let text = host.read(patch).unwrap_or_default();
        let mut target: Option<Vec<String>> = None;
        let mut any = false;
        for line in text.lines() {
            if let Some(path) = line.strip_prefix("+++ ") {
                // a/lib/vdsm/… with -p2 is vdsm/… under site-packages.
                let rel: String =
                    path.split_whitespace().next().unwrap_or("").splitn(3, '/').nth(2).unwrap_or("").into();
                let file = host.read(&format!("{}/{rel}", self.site));
                target = Some(file.unwrap_or_default().lines().map(|l| l.trim().to_string()).collect());
            } else if let (Some(added), Some(lines)) = (line.strip_prefix('+'), &target) {
                let added = added.trim();
                if !added.is_empty() {
                    any = true;
                    if !lines.iter().any(|l| l == added) {
                        return false;
                    }
                }
            }
        }
        any
    }
}

/// Vdsm's `[vars] libvirt_uri`, as Vdsm reads its configuration.
fn vdsm_uri(host: &Host, fix: &str) -> Check {
    const NAME: &str = "vdsm-uri";
    let mut files = vec!["/etc/vdsm/vdsm.conf".to_string()];
    let mut dropins: Vec<(String, String)> = Vec::new();
    for dir in ["/usr/lib/vdsm/vdsm.conf.d", "/run/vdsm/vdsm.conf.d", "/etc/vdsm/vdsm.conf.d"] {
        for entry in fs::read_dir(host.at(dir)).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                dropins.push((name.clone(), format!("{dir}/{name}")));
            }
        }
    }
    dropins.sort();
    files.extend(dropins.into_iter().map(|(_, p)| p));
    let mut uri = None;
    for file in &files {
        let mut in_vars = false;
        for line in host.read(file).unwrap_or_default().lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_vars = line == "[vars]";
            } else if let Some((k, v)) = line.split_once(['=', ':']) {
                if in_vars && k.trim() == "libvirt_uri" {
                    uri = Some((v.trim().to_string(), file.clone()));
                }
            }
        }
    }
    match uri {
        Some((u, file)) if u.split(':').next().unwrap_or("").split('+').next() == Some("xen") => {
            pass(NAME, format!("Vdsm connects to {u} ({file}): libvirt's libxl driver"))
        }
        Some((u, file)) => fail(
            NAME,
            format!("Vdsm connects to {u} ({file}), not to libvirt's libxl driver"),
            fix.to_string(),
        ),
        None => fail(
            NAME,
            "Vdsm connects to qemu:///system: [vars] libvirt_uri is set in neither /etc/vdsm/vdsm.conf nor a vdsm.conf.d drop-in".into(),
            fix.to_string(),
        ),
    }
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
