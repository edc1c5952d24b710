//! The command line: one clap definition drives parsing and `--help`; the
//! pass names of `--only`/`--skip` and the loss ids of `--accept` are
//! checked against the library's own lists.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use xenify::error::DEFAULT_SIZE_LIMIT;
use xenify::policy::{PolicyError, Raw, Source};
use xenify::report::Hint;
use xenify::{Loss, Pass, Point, Policy, ALL};

use crate::job::{Job, Setup};
use crate::{files, hook, host};

#[derive(Parser, Debug)]
#[command(
    name = "xenify",
    version,
    about = "Convert oVirt/KVM libvirt domain XML into XML that libvirt's libxl (Xen) driver accepts",
    long_about = "Convert oVirt/KVM libvirt domain XML into XML that libvirt's libxl (Xen) driver accepts, \
changing nothing else and reporting every change.\n\n\
Run with no arguments and $_hook_domxml set, xenify acts as a Vdsm hook (see `xenify hook --help`).\n\n\
Exit codes: 0 converted (warnings allowed), 1 refused, 2 usage, I/O or parse error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert one domain or device document (stdin to stdout by default)
    Convert(ConvertArgs),
    /// List the passes in pipeline order
    Passes,
    /// Check many domains at once: which convert, and what stops the others
    #[command(long_about = "Check many domains at once, in one process, writing nothing, under the policy the \
hook would use on this host: the policy file ($XENIFY_CONFIG or /etc/xenify/xenify.toml, or --config FILE), \
then each VM's custom properties xenify_<key> from its <ovirt-vm:custom> metadata, then --set and --accept. \
Prints on stdout a table of file, outcome (converts, converts with warnings, refused, error), counts of \
changes and warnings, and the loss ids or errors that stop it, then a summary line; `--report json` prints \
the same as data on stdout. A directory means every *.xml below it; finding no file is an error. Exit 0 only \
if every file converts, 1 otherwise, 2 on a usage error or when there is nothing to check.")]
    Check(CheckArgs),
    /// Run as a Vdsm hook: rewrite the file named by $_hook_domxml in place
    #[command(long_about = "Run as a Vdsm hook: read the file named by the environment variable _hook_domxml, \
convert it, and replace it atomically only on success. The report goes to stderr, which Vdsm logs and, on \
failure, shows as the VM's error. Exit 0 on success, 2 on a refusal or any error (Vdsm then aborts the \
start). Reads no stdin. Installed as a link in /usr/libexec/vdsm/hooks/before_vm_start/, xenify runs this \
mode by itself. Installed in after_get_caps/ or after_get_stats/, it reads the JSON file named by \
_hook_json instead and, on a Xen dom0, makes the host's capabilities or statistics true for oVirt Engine \
(exit 1 on an error, the file left as Vdsm wrote it).")]
    Hook,
    /// Check that this host can run xenify as a Vdsm hook on Xen
    #[command(long_about = "Check that this host can run xenify as a Vdsm hook on Xen, one line per check \
with what to do when it fails: a Xen dom0 whose Xen runs HVM guests (so that, through the after_get_caps hook, \
oVirt Engine sees hardware virtualization); libvirt's libxl driver and Xen's xl installed; the hook links in \
place, pointing at this binary and executable by the vdsm user; the sudoers rule of after_get_caps; Vdsm \
patched with xenify's patches and set to a Xen URI (with the commands, when not); the policy file parses (and \
which non-default values and accepted losses it puts in force). Failures with one cause are one line. Only \
reads files, under --root. Exit 0 only when every check passes, 1 otherwise, 2 when the root does not exist.")]
    Doctor(DoctorArgs),
    /// Write files derived from this program (packaging uses it)
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generated,
    },
}

#[derive(Subcommand, Debug)]
pub enum Generated {
    /// The commented default policy file, on stdout
    Config,
    /// The man pages: xenify(1), one page per subcommand, xenify.toml(5)
    Man { dir: PathBuf },
    /// Shell completions for bash, zsh and fish
    Completions { dir: PathBuf },
    /// The Vdsm hook points a link to xenify belongs in, one per line
    HookPoints,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Check the host whose root file system is at DIR instead of /
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Report format on stdout
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,
}

#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Run only these passes (comma-separated; they keep pipeline order); a pass left out that would
    /// refuse the document still refuses it
    #[arg(long, value_name = "PASS,…", value_delimiter = ',', value_parser = pass_names(), hide_possible_values = true)]
    pub only: Vec<&'static Pass>,
    /// Skip these passes (comma-separated; see `xenify passes`); a skipped pass that would refuse the
    /// document still refuses it
    #[arg(long, value_name = "PASS,…", value_delimiter = ',', value_parser = pass_names(), hide_possible_values = true)]
    pub skip: Vec<&'static Pass>,
    /// Accept the loss of a control Xen cannot honour (repeatable or comma-separated; adds to the
    /// policy's accept, see xenify.toml(5))
    #[arg(long, value_name = "ID,…", value_delimiter = ',', value_parser = loss_ids())]
    pub accept: Vec<Loss>,
    /// Set a policy key, overriding the file (repeatable): --set nic_model=netfront
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    pub set: Vec<(String, String)>,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The document to convert; `-` or nothing for stdin
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
    /// Write the result here instead of stdout: a file is replaced atomically (through a link, its
    /// target); a character device or FIFO is written into; anything else is refused
    #[arg(short, long, value_name = "OUTPUT", conflicts_with = "in_place")]
    pub output: Option<PathBuf>,
    /// Replace INPUT, a regular file (through a link, its target), atomically with the result
    #[arg(long)]
    pub in_place: bool,
    /// Print a unified diff of input to output on stdout instead of the document; writes no file, so
    /// it cannot be combined with -o or --in-place
    #[arg(long, conflicts_with_all = ["output", "in_place"])]
    pub diff: bool,
    /// Read the policy from this TOML file (see xenify.toml(5)); without it, convert uses the defaults
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Report format on stderr
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,
    /// Also write the report as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Domain files, or directories to search for *.xml
    #[arg(value_name = "FILE", required = true)]
    pub paths: Vec<PathBuf>,
    /// Read the policy from this TOML file instead of the hook's ($XENIFY_CONFIG or
    /// /etc/xenify/xenify.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Format of the table on stdout: text, or the same as JSON
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,
    /// Also write the table as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// Pass names, offered by the shell completions and checked by clap.
fn pass_names() -> impl TypedValueParser<Value = &'static Pass> {
    PossibleValuesParser::new(ALL.iter().map(|p| PossibleValue::new(p.name).help(p.summary)))
        .map(|name| xenify::passes::find(&name).expect("a possible value is a pass"))
}

/// Loss ids, offered by the shell completions and checked by clap.
fn loss_ids() -> impl TypedValueParser<Value = Loss> {
    PossibleValuesParser::new(Loss::ALL.iter().map(|l| PossibleValue::new(l.id()).help(l.consequence())))
        .map(|id| id.parse::<Loss>().expect("a possible value is a loss id"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

impl PipelineArgs {
    /// The passes to run, in pipeline order.
    pub fn passes(&self) -> Vec<&'static Pass> {
        ALL.iter()
            .filter(|p| self.only.is_empty() || self.only.iter().any(|o| o.name == p.name))
            .filter(|p| !self.skip.iter().any(|s| s.name == p.name))
            .collect()
    }

    /// Applies `--set`, then `--accept`, over `policy` (policy::MERGE_RULE).
    pub fn apply(&self, policy: &mut Policy) -> Result<(), PolicyError> {
        for (key, value) in &self.set {
            policy.set(key, Raw::Text(value.clone()), Source::Flag { name: format!("--set {key}") })?;
        }
        if !self.accept.is_empty() {
            let ids: Vec<&str> = self.accept.iter().map(|l| l.id()).collect();
            policy.set("accept", Raw::Text(ids.join(",")), Source::Flag { name: "--accept".into() })?;
        }
        Ok(())
    }
}

/// The policy file `config`, read as `--config` names it (it must exist).
fn config_policy(config: &Path) -> Result<Policy> {
    let mut policy = Policy::default();
    files::read_policy(&mut policy, config, true)?;
    Ok(policy)
}

pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Passes => {
            let width = ALL.iter().map(|p| p.name.len()).max().unwrap_or(0);
            let mut out = String::new();
            for p in ALL {
                out.push_str(&format!("{:width$}  {}\n", p.name, p.summary));
            }
            io::stdout().write_all(out.as_bytes())?;
            Ok(0)
        }
        Command::Convert(args) => convert(args),
        Command::Check(args) => {
            // What the hook would read on this host, unless --config names another file.
            let file = match &args.config {
                Some(path) => config_policy(path)?,
                None => hook::file_policy(std::env::var_os(hook::CONFIG_VAR).as_deref())?,
            };
            let passes = args.pipeline.passes();
            let setup = Setup { passes: &passes, host: &host::System, point: Point::Unknown };
            let policy_of = |doc: &xenify::Document| {
                let properties = xenify::custom_properties(doc).into_iter().map(|(k, v)| (k, v.into()));
                let mut policy = hook::vm_policy(&file, properties)?;
                args.pipeline.apply(&mut policy)?;
                Ok(policy)
            };
            let json = args.report == ReportFormat::Json;
            crate::check::run(&args.paths, &setup, &policy_of, json, args.report_file.as_deref())
        }
        Command::Hook => crate::hook::run(),
        Command::Doctor(args) => crate::doctor::run(&args.root, args.report == ReportFormat::Json),
        Command::Generate { what } => {
            match what {
                Generated::Config => io::stdout().write_all(xenify::policy::default_file().as_bytes())?,
                Generated::Man { dir } => crate::generate::man(&dir)?,
                Generated::Completions { dir } => crate::generate::completions(&dir)?,
                Generated::HookPoints => io::stdout().write_all(
                    crate::hook::point_names().iter().map(|p| format!("{p}\n")).collect::<String>().as_bytes(),
                )?,
            }
            Ok(0)
        }
    }
}

/// Converts one document. Every failure comes before the first write: the
/// outputs are resolved first, then written to temporary files (the report
/// file too), and only then put in place, the report file before the
/// document, so a run that exits non-zero has replaced nothing.
fn convert(args: ConvertArgs) -> Result<u8> {
    let stdin = args.input.as_ref().is_none_or(|p| p.as_os_str() == "-");
    if args.in_place && stdin {
        bail!("--in-place needs an INPUT file, not stdin");
    }
    let path = args.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    let label = path.display().to_string();
    // Where the document goes: resolved before anything is read. --in-place
    // reads and replaces the file its links lead to.
    let dest = if args.diff {
        Ok(None)
    } else if args.in_place {
        files::Dest::existing(&path).map(Some).map_err(|e| anyhow::anyhow!("cannot read {label}: {e}"))
    } else if let Some(o) = &args.output {
        files::Dest::resolve(o).map(Some).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", o.display()))
    } else {
        Ok(None)
    };
    let bytes = match &dest {
        Err(e) => Err(anyhow::anyhow!("{e}")),
        Ok(Some(d)) if args.in_place => {
            files::read_file(d.path(), DEFAULT_SIZE_LIMIT).with_context(|| format!("cannot read {label}"))
        }
        Ok(_) if stdin => files::read_bounded(io::stdin().lock(), DEFAULT_SIZE_LIMIT).context("cannot read stdin"),
        Ok(_) => files::read_file(&path, DEFAULT_SIZE_LIMIT).with_context(|| format!("cannot read {label}")),
    };
    let mut policy = match &args.config {
        Some(path) => config_policy(path)?,
        None => Policy::default(),
    };
    args.pipeline.apply(&mut policy)?;
    let passes = args.pipeline.passes();
    let setup = Setup { passes: &passes, host: &host::System, point: Point::Unknown };
    let mut job = match &bytes {
        Ok(b) => Job::run(&label, b, &setup, |_| Ok(policy.clone())),
        Err(e) => Job::failed(&label, format!("{e:#}")),
    };
    let hint = Hint::cli(&policy);
    let cannot = match &args.output {
        Some(o) if !args.in_place => format!("cannot write {}", o.display()),
        _ => format!("cannot replace {label}"),
    };
    // The document into a temporary file beside its destination.
    let staged = match (job.converted(), &dest) {
        (Some(c), Ok(Some(d))) if !args.in_place || c.changed() => {
            Some(d.stage(&mut |w| c.write_output(w)).map_err(|e| format!("{cannot}: {e}")))
        }
        _ => None,
    };
    let staged = match staged {
        Some(Err(e)) => {
            job = Job::failed(&label, e);
            None
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    // The report file, which says how the run ended, is in place before the
    // document: if it cannot be written, nothing is.
    if let Some(p) = &args.report_file {
        let json = job.report().json(&hint);
        let written = files::Dest::resolve(p)
            .and_then(|d| d.stage(&mut |w| w.write_all(json.as_bytes())))
            .and_then(files::Staged::commit);
        if let Err(e) = written {
            drop(staged);
            let why = format!("cannot write the report to {}: {e}; nothing was written", p.display());
            report_on_stderr(&Job::failed(&label, why), &hint, &args);
            return Ok(2);
        }
    }
    let written = match job.converted() {
        None => Ok(()),
        Some(c) if args.diff => {
            let input = String::from_utf8_lossy(bytes.as_deref().unwrap_or_default());
            let output = c.output().unwrap_or_default();
            let name = if stdin { "stdin" } else { label.as_str() };
            let diff = xenify::diff::unified(&input, &output, &format!("a/{name}"), &format!("b/{name}"));
            io::stdout().write_all(diff.as_bytes()).context("cannot write to stdout")
        }
        Some(_) if args.in_place || args.output.is_some() => match staged {
            Some(s) => s.commit().context(cannot),
            // --in-place and nothing changed.
            None => Ok(()),
        },
        Some(c) => {
            let mut out = io::stdout().lock();
            c.write_output(&mut out).and_then(|()| out.flush()).context("cannot write to stdout")
        }
    };
    if let Err(e) = written {
        job = Job::failed(&label, format!("{e:#}"));
        // The report file says the run converted: it must say what happened.
        if let Some(p) = &args.report_file {
            let json = job.report().json(&hint);
            if let Err(e) =
                files::Dest::resolve(p).and_then(|d| d.stage(&mut |w| w.write_all(json.as_bytes()))?.commit())
            {
                let why = format!("cannot write the report to {}: {e}", p.display());
                eprintln!("xenify: error: {}", xenify::report::escape(&why));
            }
        }
    }
    report_on_stderr(&job, &hint, &args);
    Ok(job.exit_code())
}

/// The report on stderr, as text or JSON. A failure to write it changes
/// nothing: there is nowhere left to say so, and the outputs are in place.
fn report_on_stderr(job: &Job, hint: &Hint, args: &ConvertArgs) {
    let r = job.report();
    let mut err = io::BufWriter::new(io::stderr().lock());
    let _ = match args.report {
        ReportFormat::Text => r.write_text(hint, &mut err),
        ReportFormat::Json => err.write_all(r.json(hint).as_bytes()),
    }
    .and_then(|()| err.flush());
}
