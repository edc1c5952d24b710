//! The Vdsm hook: the only module that knows Vdsm. Vdsm runs every
//! executable in a hook directory with no arguments and no stdin, naming in
//! `_hook_domxml` a file that holds the domain (or device) XML; the hook
//! rewrites that file, and its stderr becomes the VM's error message when it
//! fails. Exit 0 means success; 2 means failure and skips the later hooks.
//! Codes above 2 are reserved, and 1 would let later hooks run on a domain
//! xenify refused, so xenify uses only 0 and 2 there.
//!
//! At the JSON points (`after_get_caps`, `after_get_stats`) Vdsm names a
//! JSON file in `_hook_json` instead; the host-capabilities job (`caps`)
//! decides its content, and this module reads and replaces the file. Vdsm
//! uses the file whatever the hook exits with, so a failure there exits 1:
//! the file is as Vdsm wrote it, and later hooks still run.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use xenify::error::DEFAULT_SIZE_LIMIT;
use xenify::policy::{PolicyError, Raw, Source};
use xenify::report::{escape, Hint, Outcome};
use xenify::{Pass, Point, Policy, ALL};

use crate::job::{Job, Setup};
use crate::{caps, files, host};

/// The variable in which Vdsm names the XML file.
pub const DOMXML_VAR: &str = "_hook_domxml";

/// The variable in which Vdsm names the JSON file at the JSON points.
pub const JSON_VAR: &str = "_hook_json";

/// Names another policy file than the default.
pub const CONFIG_VAR: &str = "XENIFY_CONFIG";

/// Where the hook looks for the policy file.
pub const DEFAULT_CONFIG: &str = "/etc/xenify/xenify.toml";

/// Where Vdsm looks for hooks (vdsm-hooks.md §1.1).
pub const HOOKS_DIR: &str = "/usr/libexec/vdsm/hooks";

/// The prefix of per-VM settings: Vdsm exports each VM custom property as
/// an environment variable named exactly like the property.
pub const PROPERTY_PREFIX: &str = "xenify_";

/// Success and failure as Vdsm reads them.
const OK: u8 = 0;
const FAIL: u8 = 2;
/// A JSON point's failure: logged by Vdsm, which runs the next hooks.
const JSON_FAIL: u8 = 1;

/// A hook point xenify is installed at.
pub struct HookPoint {
    pub name: &'static str,
    /// What the point tells the passes.
    pub point: Point,
    /// What Vdsm hands the hook there and does with its output (man page).
    pub doc: &'static str,
}

/// The hook points xenify is installed at: those whose output Vdsm uses
/// (vdsm-hooks.md §1.5). The migration destination and dehibernate points
/// are not here: Vdsm ignores what a hook writes there, so converting would
/// only pretend.
pub const POINTS: [HookPoint; 6] = [
    HookPoint {
        name: "before_vm_start",
        point: Point::Start,
        doc: "The whole domain, before Vdsm defines it: the main conversion.",
    },
    HookPoint {
        name: "before_device_create",
        point: Point::DeviceCreate,
        doc: "One non-disk device with custom properties, before before_vm_start; Vdsm puts the result back at the end of <devices>.",
    },
    HookPoint {
        name: "before_nic_hotplug",
        point: Point::Attach,
        doc: "The <interface> being hot-plugged, before attachDevice.",
    },
    HookPoint {
        name: "before_disk_hotplug",
        point: Point::Attach,
        doc: "The <disk> being hot-plugged, before attachDevice.",
    },
    HookPoint {
        name: "before_update_device",
        point: Point::Update,
        doc: "A NIC whose link, network, MTU or filter changes, before updateDeviceFlags.",
    },
    HookPoint {
        name: "before_memory_hotplug",
        point: Point::Attach,
        doc: "The <memory> device being hot-plugged, before attachDevice.",
    },
];

/// A JSON hook point xenify is installed at: the host-capabilities job.
pub struct JsonPoint {
    pub name: &'static str,
    pub doc: &'static str,
}

/// Where Vdsm hands the host's capabilities and statistics to hooks
/// (vdsm-hooks.md §1.5) and uses what they write.
pub const JSON_POINTS: [JsonPoint; 2] = [
    JsonPoint {
        name: "after_get_caps",
        doc: "The host's capabilities, before the Engine reads them: on a Xen dom0, hardware virtualization, CPU models, machine types and the machine's memory.",
    },
    JsonPoint {
        name: "after_get_stats",
        doc: "The host's statistics, at every poll: on a Xen dom0, memFree becomes Xen's free memory.",
    },
];

/// Every hook point xenify is installed at, in the order of the lists that
/// install it (the domain points, then the JSON points).
pub fn point_names() -> Vec<&'static str> {
    POINTS.iter().map(|p| p.name).chain(JSON_POINTS.iter().map(|p| p.name)).collect()
}

/// The name of the link in each hook directory; Vdsm runs hooks in the
/// lexical order of their names, and 50_ leaves room on both sides.
pub const LINK_NAME: &str = "50_xenify";

/// The hook point, from the directory Vdsm started the binary from
/// (`/usr/libexec/vdsm/hooks/before_nic_hotplug/50_xenify`).
fn point() -> Point {
    let dir = point_dir();
    POINTS.iter().find(|p| dir.as_deref() == Some(p.name)).map_or(Point::Unknown, |p| p.point)
}

/// The name of the directory the binary was started from.
fn point_dir() -> Option<String> {
    let argv0 = std::env::args_os().next().map(PathBuf::from).unwrap_or_default();
    argv0.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned())
}

/// The policy file the hook reads: `config` (the value of
/// `$XENIFY_CONFIG`), which must then exist, else [`DEFAULT_CONFIG`] if it
/// exists. `xenify check` reads the same, to predict the hook.
pub fn file_policy(config: Option<&OsStr>) -> Result<Policy, PolicyError> {
    file_policy_at(config, Path::new(DEFAULT_CONFIG))
}

/// [`file_policy`] with the default file at `default` (the caps job reads
/// the one of the host it describes, under `$XENIFY_ROOT`).
fn file_policy_at(config: Option<&OsStr>, default: &Path) -> Result<Policy, PolicyError> {
    let mut policy = Policy::default();
    match config {
        Some(p) => files::read_policy(&mut policy, Path::new(p), true)?,
        None => files::read_policy(&mut policy, default, false)?,
    }
    Ok(policy)
}

/// The policy file's name for hints: the one [`file_policy`] reads.
pub fn config_name(config: Option<&OsStr>) -> String {
    config.map_or(DEFAULT_CONFIG.into(), |c| c.to_string_lossy().into_owned())
}

/// The policy one VM runs under: `file` (from [`file_policy`]), then the VM's
/// custom properties named `xenify_<key>`, in name order (others are not
/// xenify's). The hook takes them from its environment, where Vdsm exports
/// them; `xenify check` from the domain's metadata, where the engine wrote
/// them. This one function layers them for both (policy::MERGE_RULE).
pub fn vm_policy(
    file: &Policy,
    properties: impl IntoIterator<Item = (String, OsString)>,
) -> Result<Policy, PolicyError> {
    let mut policy = file.clone();
    let mut props: Vec<(String, OsString)> =
        properties.into_iter().filter(|(k, _)| k.starts_with(PROPERTY_PREFIX)).collect();
    props.sort();
    for (name, value) in props {
        let key = name[PROPERTY_PREFIX.len()..].to_string();
        let source = Source::Property { name };
        let Some(value) = value.to_str() else {
            return Err(PolicyError { key, source, message: "the value is not UTF-8".into() });
        };
        policy.set(&key, Raw::Text(value.to_string()), source)?;
    }
    Ok(policy)
}

/// The hook's hint: where this host's policy file and the VM's property are.
pub fn hint(config: Option<&OsStr>, policy: &Policy) -> Hint {
    Hint::hook(config_name(config), format!("{PROPERTY_PREFIX}accept"), policy)
}

pub fn run() -> Result<u8> {
    let dir = point_dir();
    if let Some(p) = JSON_POINTS.iter().find(|p| dir.as_deref() == Some(p.name)) {
        return Ok(run_json(p));
    }
    if std::env::var_os(DOMXML_VAR).is_none() && std::env::var_os(JSON_VAR).is_some() {
        let names: Vec<&str> = JSON_POINTS.iter().map(|p| p.name).collect();
        eprintln!(
            "xenify: error: ${JSON_VAR} is set, but xenify tells a JSON hook point by the directory it runs from ({}), and this one is '{}'",
            names.join(", "),
            dir.unwrap_or_default()
        );
        return Ok(JSON_FAIL);
    }
    let config = std::env::var_os(CONFIG_VAR);
    let path = match std::env::var_os(DOMXML_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            eprintln!(
                "xenify: error: ${DOMXML_VAR} is not set: `xenify hook` runs under Vdsm, which names the domain XML file there; use `xenify convert` by hand"
            );
            return Ok(FAIL);
        }
    };
    let label = path.display().to_string();
    crate::set_current_input(&label);
    // A link is followed: the file it leads to is read and replaced.
    let read = files::Dest::existing(&path)
        .and_then(|dest| files::read_file(dest.path(), DEFAULT_SIZE_LIMIT).map(|bytes| (dest, bytes)));
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v)));
    let policy = file_policy(config.as_deref()).and_then(|file| vm_policy(&file, env));
    let job = match (&read, &policy) {
        (Err(e), _) => Job::failed(&label, format!("cannot read the domain XML: {e}")),
        (_, Err(e)) => Job::failed(&label, format!("{e}; the VM was not converted")),
        (Ok((dest, bytes)), Ok(policy)) => {
            let passes: Vec<&Pass> = ALL.iter().collect();
            let setup = Setup { passes: &passes, host: &host::System, point: point() };
            let job = Job::run(&label, bytes, &setup, |_| Ok(policy.clone()));
            match job.converted() {
                Some(c) if c.changed() => {
                    match dest.stage(&mut |w| c.write_output(w)).and_then(files::Staged::commit) {
                        Ok(()) => job,
                        Err(e) => {
                            Job::failed(&label, format!("cannot replace the file: {e}; it is left as Vdsm wrote it"))
                        }
                    }
                }
                _ => job,
            }
        }
    };
    let hint = hint(config.as_deref(), policy.as_ref().unwrap_or(&Policy::default()));
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    let _ = job.report().write_text(&hint, &mut err).and_then(|()| err.flush());
    let code = if job.outcome == Outcome::Converted { OK } else { FAIL };
    // The process ends here: freeing the document piece by piece would only
    // cost time.
    std::mem::forget(job);
    std::mem::forget(read);
    Ok(code)
}

/// A JSON hook point: reads `$_hook_json`, lets the caps job decide, and
/// replaces the file only when it changed and is valid JSON.
fn run_json(point: &JsonPoint) -> u8 {
    let name = point.name;
    let fail = |why: String| {
        eprintln!("xenify: {name}: error: {}", escape(&why));
        JSON_FAIL
    };
    let path = match std::env::var_os(JSON_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            return fail(format!(
                "${JSON_VAR} is not set: xenify runs at {name} under Vdsm, which names the JSON file there"
            ))
        }
    };
    crate::set_current_input(&path.display().to_string());
    let text = match files::read_file(&path, DEFAULT_SIZE_LIMIT).map(String::from_utf8) {
        Ok(Ok(t)) => t,
        Ok(Err(_)) => return fail(format!("{} is not UTF-8; it is left as Vdsm wrote it", path.display())),
        Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
    };
    let root = caps::host::root_from_env(caps::ROOT_VAR);
    let outcome = if name == "after_get_stats" {
        caps::after_get_stats(&text, &root)
    } else {
        match caps_policy(&root) {
            Ok(policy) => caps::after_get_caps(
                &text,
                &caps::Sources { root: &root, xl_info: &caps::host::run_xl_info, machine_types: &policy.machine_types },
            ),
            Err(e) => caps::Outcome::Failed(format!("{e}; capabilities left as Vdsm reported them")),
        }
    };
    match outcome {
        caps::Outcome::Changed { text, summary } => {
            if let Err(e) = files::replace_with(&path, &mut |w| w.write_all(text.as_bytes())) {
                return fail(format!("cannot replace {}: {e}; it is left as Vdsm wrote it", path.display()));
            }
            if !summary.is_empty() {
                eprintln!("xenify: {name}: {}", escape(&summary));
            }
            OK
        }
        caps::Outcome::Skipped(why) => {
            if !why.is_empty() {
                eprintln!("xenify: {name}: {}", escape(&why));
            }
            OK
        }
        caps::Outcome::Failed(why) => fail(why),
    }
}

/// The policy of the caps job: `$XENIFY_CONFIG`, else the host's
/// `/etc/xenify/xenify.toml` under the root being described.
fn caps_policy(root: &caps::host::Root) -> Result<Policy, PolicyError> {
    file_policy_at(std::env::var_os(CONFIG_VAR).as_deref(), &root.at(DEFAULT_CONFIG))
}
