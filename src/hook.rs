//! The Vdsm hook: the only module that knows Vdsm. Vdsm runs every
//! executable in a hook directory with no arguments and no stdin, naming in
//! `_hook_domxml` a file that holds the domain (or device) XML; the hook
//! rewrites that file, and its stderr becomes the VM's error message when it
//! fails. Exit 0 means success; 2 means failure and skips the later hooks.
//! Codes above 2 are reserved, and 1 would let later hooks run on a domain
//! xenify refused, so xenify uses only 0 and 2.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use xenify::error::DEFAULT_SIZE_LIMIT;
use xenify::policy::{PolicyError, Raw, Source, DEFAULT_CONFIG};
use xenify::report::{Hint, Outcome};
use xenify::{Context, Pass, Point, Policy, ALL};

use crate::job::Job;
use crate::{files, host};

/// The variable in which Vdsm names the XML file.
pub const DOMXML_VAR: &str = "_hook_domxml";

/// Names another policy file than the default.
pub const CONFIG_VAR: &str = "XENIFY_CONFIG";

/// The prefix of per-VM settings: Vdsm exports each VM custom property as
/// an environment variable named exactly like the property.
pub const PROPERTY_PREFIX: &str = "xenify_";

/// Success and failure as Vdsm reads them.
const OK: u8 = 0;
const FAIL: u8 = 2;

/// The hook points xenify is installed at: those whose output Vdsm uses
/// (vdsm-hooks.md §1.5), with what each hands the hook. The migration
/// destination and dehibernate points are not here: Vdsm ignores what a
/// hook writes there, so converting would only pretend.
pub const POINTS: [(&str, Point); 6] = [
    ("before_vm_start", Point::Start),
    ("before_device_create", Point::DeviceCreate),
    ("before_nic_hotplug", Point::Attach),
    ("before_disk_hotplug", Point::Attach),
    ("before_update_device", Point::Update),
    ("before_memory_hotplug", Point::Attach),
];

/// The name of the link in each hook directory; Vdsm runs hooks in the
/// lexical order of their names, and 50_ leaves room on both sides.
pub const LINK_NAME: &str = "50_xenify";

/// The hook point, from the directory Vdsm started the binary from
/// (`/usr/libexec/vdsm/hooks/before_nic_hotplug/50_xenify`), and its name.
pub fn point() -> (Point, String) {
    let argv0 = std::env::args_os().next().map(PathBuf::from).unwrap_or_default();
    let dir = argv0.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
    let point = POINTS.iter().find(|(name, _)| *name == dir).map_or(Point::Unknown, |(_, p)| *p);
    (point, dir)
}

/// The policy file (`$XENIFY_CONFIG`, else the default if it exists), then
/// the VM's custom properties `xenify_<key>`.
fn policy() -> Result<Policy, PolicyError> {
    let mut policy = Policy::default();
    match std::env::var_os(CONFIG_VAR) {
        Some(p) => policy.apply_file(&PathBuf::from(p), true)?,
        None => policy.apply_file(&PathBuf::from(DEFAULT_CONFIG), false)?,
    }
    let mut props: Vec<(String, std::ffi::OsString)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k.starts_with(PROPERTY_PREFIX))
        .collect();
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

pub fn run() -> Result<u8> {
    let config = std::env::var(CONFIG_VAR).unwrap_or_else(|_| DEFAULT_CONFIG.to_string());
    let hint = Hint::Hook { config };
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
    let read = files::read_file(&path, DEFAULT_SIZE_LIMIT);
    let policy = policy();
    let job = match (&read, &policy) {
        (Err(e), _) => Job::failed(&label, format!("cannot read the domain XML: {e}")),
        (_, Err(e)) => Job::failed(&label, format!("{e}; the VM was not converted")),
        (Ok(bytes), Ok(policy)) => {
            let passes: Vec<&Pass> = ALL.iter().collect();
            let context = Context { policy, host: &host::System, point: point().0 };
            let job = Job::run(&label, bytes, &passes, &context);
            match job.converted() {
                Some(c) if c.changed() => match files::replace_with(&path, &mut |w| c.write_output(w)) {
                    Ok(()) => job,
                    Err(e) => Job::failed(&label, format!("cannot replace the file: {e}; it is left as Vdsm wrote it")),
                },
                _ => job,
            }
        }
    };
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    let _ = job.report().write_text(&hint, &mut err).and_then(|()| err.flush());
    let code = if job.outcome == Outcome::Converted { OK } else { FAIL };
    // The process ends here: freeing the document piece by piece would only
    // cost time.
    std::mem::forget(job);
    std::mem::forget(read);
    Ok(code)
}
