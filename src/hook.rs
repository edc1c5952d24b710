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
use xenify::report::{Hint, Outcome};
use xenify::{NoHost, Pass, Policy, ALL};

use crate::files;
use crate::job::Job;

/// The variable in which Vdsm names the XML file.
pub const DOMXML_VAR: &str = "_hook_domxml";

/// Where the policy file lives on a host.
pub const DEFAULT_CONFIG: &str = "/etc/xenify/xenify.toml";

/// Success and failure as Vdsm reads them.
const OK: u8 = 0;
const FAIL: u8 = 2;

pub fn run() -> Result<u8> {
    let hint = Hint::Hook { config: DEFAULT_CONFIG.to_string() };
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
    let job = match files::read_file(&path, DEFAULT_SIZE_LIMIT) {
        Ok(bytes) => {
            let passes: Vec<&Pass> = ALL.iter().collect();
            let job = Job::run(&label, &bytes, &passes, &Policy::default(), &NoHost);
            match job.output() {
                Some(out) if out.as_bytes() != bytes.as_slice() => match files::replace(&path, out.as_bytes()) {
                    Ok(()) => job,
                    Err(e) => Job::failed(&label, format!("cannot replace the file: {e}; it is left as Vdsm wrote it")),
                },
                _ => job,
            }
        }
        Err(e) => Job::failed(&label, format!("cannot read the domain XML: {e}")),
    };
    let _ = std::io::stderr().write_all(job.report().text(&hint).as_bytes());
    Ok(if job.outcome == Outcome::Converted { OK } else { FAIL })
}
