//! The xenify binary: the command line and the Vdsm hook around the library.
//! Errors become a message on stderr and an exit code here, and a panic
//! anywhere becomes an internal error that names the input; the input is
//! never half-written because every write is an atomic replace.

use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use xenify::report::escape;

mod caps;
mod check;
mod cli;
mod doctor;
mod files;
mod generate;
mod hook;
mod host;
mod job;

static CURRENT_INPUT: Mutex<String> = Mutex::new(String::new());
static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());

/// Names the input being processed, for the report of a panic.
pub fn set_current_input(label: &str) {
    if let Ok(mut c) = CURRENT_INPUT.lock() {
        *c = label.to_string();
    }
}

fn main() -> ExitCode {
    // Vdsm runs hooks with no arguments; `xenify` alone with either variable set is a hook.
    let hook_mode = std::env::args_os().len() == 1
        && (std::env::var_os(hook::DOMXML_VAR).is_some() || std::env::var_os(hook::JSON_VAR).is_some());
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = format!("{what}{at}");
        }
    }));
    let result = std::panic::catch_unwind(|| if hook_mode { hook::run() } else { cli::run(cli::Cli::parse()) });
    match result {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            eprintln!("{}", escape(&format!("xenify: error: {e:#}")));
            ExitCode::from(2)
        }
        Err(_) => {
            let input = CURRENT_INPUT.lock().map(|c| c.clone()).unwrap_or_default();
            let input = if input.is_empty() { "the input".to_string() } else { input };
            let what = PANIC_MESSAGE.lock().map(|m| m.clone()).unwrap_or_default();
            eprintln!(
                "{}",
                escape(&format!(
                    "xenify: internal error while converting {input}: {what}; nothing was written (please report this bug)"
                ))
            );
            ExitCode::from(2)
        }
    }
}
