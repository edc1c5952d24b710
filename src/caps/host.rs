//! What the caps hooks read of the host: files under a root (`/`, or
//! `$XENIFY_ROOT` for a fake host) that the `vdsm` user may read, and `xl
//! info`, the one fact source that needs root (Xen's hypercall interface is
//! root's): run from `PATH` as the hook's user, and through `sudo -n` with
//! the rule xenify ships (`/etc/sudoers.d/50_vdsm_hook_xenify`) when that
//! user may not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file that says a Linux kernel runs as Xen's control domain.
pub const XEN_CAPABILITIES: &str = "/proc/xen/capabilities";
/// The hypervisor's type, `xen` under Xen (dom0 and guests alike).
pub const HYPERVISOR_TYPE: &str = "/sys/hypervisor/type";
/// What dom0's balloon driver holds of Xen's memory, in KiB.
pub const DOM0_CURRENT_KB: &str = "/sys/devices/system/xen_memory/xen_memory0/info/current_kb";

/// A host's root file system.
pub struct Root(pub PathBuf);

impl Root {
    /// The path of a host file under the root.
    pub fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    /// A host file's text; the error names the file as the host knows it.
    pub fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read(self.at(path))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("cannot read {path}: {}", io_reason(&e)))
    }
}

fn io_reason(e: &std::io::Error) -> String {
    // "No such file or directory (os error 2)" without the number.
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

/// Whether the host is a Xen dom0: `Err` says why not.
pub fn dom0(root: &Root) -> Result<(), String> {
    match root.read(XEN_CAPABILITIES) {
        Ok(caps) if caps.split_whitespace().any(|c| c == "control_d") => Ok(()),
        Ok(_) => Err(format!("not a Xen dom0: {XEN_CAPABILITIES} lacks control_d (a Xen guest)")),
        Err(why) => match root.read(HYPERVISOR_TYPE) {
            Ok(t) if t.trim() == "xen" => Err(format!(
                "not known to be a Xen dom0: {why} (is xenfs mounted on /proc/xen?), and {HYPERVISOR_TYPE} alone does not tell dom0 from a guest"
            )),
            _ => Err(format!("not a Xen dom0: {why}")),
        },
    }
}

/// `xl info`'s fields.
#[derive(Clone, Debug, Default)]
pub struct XlInfo(pub BTreeMap<String, String>);

impl XlInfo {
    pub fn parse(text: &str) -> XlInfo {
        XlInfo(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.0.get(key).map(String::as_str).ok_or_else(|| format!("xl info has no {key}"))
    }

    pub fn number(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key)?;
        v.parse().map_err(|_| format!("xl info's {key} '{v}' is not a number"))
    }

    /// Xen's version as (major, minor).
    pub fn version(&self) -> Result<(u64, u64), String> {
        Ok((self.number("xen_major")?, self.number("xen_minor")?))
    }

    /// Whether Xen runs HVM guests on this host: `hvm` among `virt_caps`
    /// (Xen 4.13 and later), else an `hvm-` entry among `xen_caps`.
    pub fn hvm(&self) -> bool {
        match self.0.get("virt_caps") {
            Some(v) => v.split_whitespace().any(|c| c == "hvm"),
            None => self.0.get("xen_caps").is_some_and(|c| xen_caps_hvm(c)),
        }
    }
}

/// Whether a Xen capabilities string (`xen-3.0-x86_64 hvm-3.0-x86_64 …`)
/// offers 64-bit HVM guests.
pub fn xen_caps_hvm(caps: &str) -> bool {
    caps.split_whitespace().any(|c| c == "hvm-3.0-x86_64")
}

/// Runs `xl info` (the `xl` on `PATH`): directly, and if that fails for a
/// user other than root, through `sudo -n` with xl's absolute path, which is
/// what the shipped sudoers rule allows.
pub fn run_xl_info() -> Result<String, String> {
    let Some(xl) = find_in_path("xl") else {
        return Err("Xen's xl is not on PATH".into());
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    xl_info_as(&xl, root, Path::new("sudo"))
}

/// `xl info` with this `xl`, as root or (through `sudo`) not.
fn xl_info_as(xl: &Path, root: bool, sudo: &Path) -> Result<String, String> {
    let direct_err = match output(Command::new(xl).arg("info")) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    if root {
        return Err(format!("`{} info` failed: {direct_err}", xl.display()));
    }
    output(Command::new(sudo).arg("-n").arg(xl).arg("info")).map_err(|sudo_err| {
        format!(
            "`{xl} info` needs root and failed: {direct_err}; `sudo -n {xl} info` failed too: {sudo_err} (install the sudoers rule /etc/sudoers.d/50_vdsm_hook_xenify, which allows the vdsm user `{xl} info`)",
            xl = xl.display()
        )
    })
}

fn output(cmd: &mut Command) -> Result<String, String> {
    match cmd.stdin(std::process::Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            Err(format!("{} ({})", first.trim(), out.status))
        }
        Err(e) => Err(io_reason(&e)),
    }
}

/// The first executable `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// dom0's CPU vendor and flags, from its `/proc/cpuinfo` (the first CPU's).
pub fn cpuinfo(root: &Root) -> Result<(String, Vec<String>), String> {
    let text = root.read("/proc/cpuinfo")?;
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let vendor = field("vendor_id").ok_or("/proc/cpuinfo has no vendor_id (not an x86 host?)")?;
    let flags = field("flags").ok_or("/proc/cpuinfo has no flags")?;
    Ok((vendor, flags.split_whitespace().map(String::from).collect()))
}

/// The memory dom0 holds, in MiB, and the file that says so: what its
/// balloon driver holds of Xen's memory if the kernel shows it, else its
/// `MemTotal` (somewhat less: the kernel keeps some for itself).
pub fn dom0_memory_mib(root: &Root) -> Result<(u64, &'static str), String> {
    if let Ok(text) = root.read(DOM0_CURRENT_KB) {
        if let Ok(kb) = text.trim().parse::<u64>() {
            return Ok((kb / 1024, DOM0_CURRENT_KB));
        }
    }
    let meminfo = root.read("/proc/meminfo")?;
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("/proc/meminfo has no MemTotal")?;
    Ok((kb / 1024, "/proc/meminfo"))
}

/// The root named by `$XENIFY_ROOT`, else `/`.
pub fn root_from_env(var: &str) -> Root {
    Root(std::env::var_os(var).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from("/"), PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_info_fields_and_hvm() {
        let info = XlInfo::parse(
            "host : h\nvirt_caps              : pv hvm hvm_directio\nxen_major : 4\nxen_minor : 17\ncc_compile_domain      : \n",
        );
        assert_eq!(info.version().unwrap(), (4, 17));
        assert!(info.hvm());
        assert_eq!(info.get("cc_compile_domain").unwrap(), "");
        assert_eq!(info.get("nope").unwrap_err(), "xl info has no nope");
        assert!(!XlInfo::parse("virt_caps : pv hvm_directio\n").hvm());
        assert!(XlInfo::parse("xen_caps : xen-3.0-x86_64 hvm-3.0-x86_64\n").hvm());
        assert!(!XlInfo::parse("xen_caps : xen-3.0-x86_64\n").hvm());
        assert!(XlInfo::parse("total_memory : lots\n").number("total_memory").unwrap_err().contains("'lots'"));
    }

    /// Writes an executable shell script.
    fn script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_user_other_than_root_runs_xl_info_through_sudo_n_with_xls_path() {
        let dir = std::env::temp_dir().join(format!("xenify-xl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (xl, sudo, bad_sudo) = (dir.join("xl"), dir.join("sudo"), dir.join("bad-sudo"));
        script(&xl, "echo 'xencall: error: Could not obtain handle on privileged command interface: Permission denied' >&2\nexit 1\n");
        // The sudoers rule allows exactly `sudo -n /usr/sbin/xl info`: check the words.
        script(&sudo, &format!("[ \"$*\" = \"-n {} info\" ] || exit 9\necho 'xen_major : 4'\n", xl.display()));
        script(&bad_sudo, "echo 'sudo: a password is required' >&2\nexit 1\n");
        assert_eq!(xl_info_as(&xl, false, &sudo).unwrap(), "xen_major : 4\n");
        let as_root = xl_info_as(&xl, true, &sudo).unwrap_err();
        assert!(as_root.ends_with("info` failed: xencall: error: Could not obtain handle on privileged command interface: Permission denied (exit status: 1)"), "{as_root}");
        let refused = xl_info_as(&xl, false, &bad_sudo).unwrap_err();
        assert!(
            refused.contains("needs root and failed: xencall")
                && refused.contains("sudo: a password is required (exit status: 1)")
                && refused.contains("/etc/sudoers.d/50_vdsm_hook_xenify"),
            "{refused}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
