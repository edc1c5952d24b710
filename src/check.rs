//! `xenify check`: the migration-planning view. Many domains in one
//! process, nothing written: per file, whether it converts, how much
//! changes, and the loss ids or errors that stop it; then a summary that
//! counts, per loss id, the VMs it blocks.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use xenify::error::DEFAULT_SIZE_LIMIT;
use xenify::policy::PolicyError;
use xenify::report::{escape, refused_losses, Counts, Outcome};
use xenify::{Document, Kind, Policy};

use crate::files;
use crate::job::{Job, Setup};

/// What `check` says of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "converts")]
    Converts,
    #[serde(rename = "converts with warnings")]
    ConvertsWithWarnings,
    #[serde(rename = "refused")]
    Refused,
    #[serde(rename = "error")]
    Error,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Converts => "converts",
            Verdict::ConvertsWithWarnings => "converts with warnings",
            Verdict::Refused => "refused",
            Verdict::Error => "error",
        }
    }
}

/// One file's line of the table.
#[derive(Serialize)]
pub struct Row {
    pub file: String,
    pub outcome: Verdict,
    pub subject: Option<String>,
    pub changes: usize,
    pub warnings: usize,
    /// Loss ids to accept before it converts.
    pub losses: Vec<String>,
    /// Refusals no setting accepts, and errors: what stops it otherwise.
    pub problems: Vec<String>,
}

#[derive(Serialize, Default, PartialEq, Debug)]
pub struct Summary {
    pub files: usize,
    pub converts: usize,
    pub with_warnings: usize,
    pub refused: usize,
    pub errors: usize,
    /// For each loss id, how many files it alone or with others stops.
    pub losses: BTreeMap<String, usize>,
}

/// What `check` found to read: a file, or a directory it could not list
/// (which gets an error row of its own, and the run goes on).
pub enum Found {
    File(PathBuf),
    Unlisted(PathBuf, std::io::Error),
}

/// The paths named, with every directory among them replaced by the `*.xml`
/// files below it, sorted within each directory. A path named is followed,
/// a link to a directory included. Inside a directory, symbolic links are
/// not followed (as `grep -r` and `find` do not): libvirt's autostart
/// directory holds links to the domains beside it, and links can loop
/// (`sub/up -> ..`). Each directory is read once, so neither a bind mount
/// nor a directory named twice repeats or loops.
pub fn collect(paths: &[PathBuf]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &m, &mut seen, &mut out),
            _ => out.push(Found::File(p.clone())),
        }
    }
    out
}

fn walk(dir: &Path, meta: &std::fs::Metadata, seen: &mut HashSet<(u64, u64)>, out: &mut Vec<Found>) {
    if !seen.insert((meta.dev(), meta.ino())) {
        return;
    }
    // The entry's type comes with the directory listing: no stat per file.
    let listing = std::fs::read_dir(dir).and_then(|entries| {
        entries.map(|e| e.and_then(|e| Ok((e.path(), e.file_type()?)))).collect::<std::io::Result<Vec<_>>>()
    });
    let mut entries = match listing {
        Ok(entries) => entries,
        Err(e) => return out.push(Found::Unlisted(dir.to_path_buf(), e)),
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in entries {
        if kind.is_dir() {
            match std::fs::symlink_metadata(&path) {
                Ok(m) => walk(&path, &m, seen, out),
                Err(e) => out.push(Found::Unlisted(path, e)),
            }
        } else if !kind.is_symlink() && path.extension().is_some_and(|x| x == "xml") {
            out.push(Found::File(path));
        }
    }
}

/// The row of a directory that could not be listed.
pub fn unlisted_row(path: &Path, e: &std::io::Error) -> Row {
    Row {
        file: path.display().to_string(),
        outcome: Verdict::Error,
        subject: None,
        changes: 0,
        warnings: 0,
        losses: Vec::new(),
        problems: vec![format!("cannot list it: {e}")],
    }
}

/// The policy of one document: the hook's layering (hook::vm_policy) with
/// the VM's own custom properties, then the command line's flags.
pub type PolicyOf<'p> = dyn Fn(&Document) -> Result<Policy, PolicyError> + 'p;

pub fn row(path: &Path, setup: &Setup, policy_of: &PolicyOf) -> Row {
    let file = path.display().to_string();
    let read = files::read_file(path, DEFAULT_SIZE_LIMIT);
    let job = match &read {
        Ok(bytes) => Job::run(&file, bytes, setup, policy_of),
        Err(e) => Job::failed(&file, format!("cannot read: {e}")),
    };
    let findings = job.findings();
    let counts = Counts::of(findings);
    let outcome = match job.outcome {
        Outcome::Converted if counts.warning > 0 => Verdict::ConvertsWithWarnings,
        Outcome::Converted => Verdict::Converts,
        Outcome::Refused => Verdict::Refused,
        Outcome::Error => Verdict::Error,
    };
    let mut problems: Vec<String> = findings
        .iter()
        .filter(|f| f.kind == Kind::Refused && f.accept.is_none())
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect();
    problems.extend(job.error.clone());
    Row {
        file,
        outcome,
        subject: job.conversion.as_ref().map(|c| c.subject.clone()),
        changes: counts.changed + counts.removed + counts.added,
        warnings: counts.warning,
        losses: refused_losses(findings).iter().map(|l| l.id().to_string()).collect(),
        problems,
    }
}

pub fn summarise(rows: &[Row]) -> Summary {
    let mut s = Summary { files: rows.len(), ..Summary::default() };
    for r in rows {
        match r.outcome {
            Verdict::Converts => s.converts += 1,
            Verdict::ConvertsWithWarnings => {
                s.converts += 1;
                s.with_warnings += 1;
            }
            Verdict::Refused => s.refused += 1,
            Verdict::Error => s.errors += 1,
        }
        for l in &r.losses {
            *s.losses.entry(l.clone()).or_default() += 1;
        }
    }
    s
}

/// The table: aligned columns, one row per file, then the summary line.
pub fn table(rows: &[Row], summary: &Summary) -> String {
    let stops = |r: &Row| {
        let mut parts = Vec::new();
        if !r.losses.is_empty() {
            parts.push(format!("accept {}", r.losses.join(", ")));
        }
        parts.extend(r.problems.iter().map(|p| shorten(p, 100)));
        parts.join("; ")
    };
    let header = ["FILE", "OUTCOME", "CHANGES", "WARNINGS", "WHAT STOPS IT"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                escape(&r.file).into_owned(),
                r.outcome.as_str().to_string(),
                r.changes.to_string(),
                r.warnings.to_string(),
                escape(&stops(r)).into_owned(),
            ]
        })
        .collect();
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2), width(3)];
    let mut out = String::new();
    let mut line = |c: [&str; 5]| {
        let s = format!(
            "{:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
    out.push('\n');
    out.push_str(&summary_line(summary));
    out.push('\n');
    out
}

pub fn summary_line(s: &Summary) -> String {
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{}: {} ({} with warnings), {} refused, {}",
        plural(s.files, "file", "files"),
        plural(s.converts, "converts", "convert"),
        s.with_warnings,
        s.refused,
        plural(s.errors, "error", "errors")
    );
    if !s.losses.is_empty() {
        let mut losses: Vec<(&String, &usize)> = s.losses.iter().collect();
        losses.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = losses.iter().map(|(id, n)| format!("{id} ({n})")).collect();
        line.push_str(&format!("; losses blocking VMs: {}", list.join(", ")));
    }
    line
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max - 1).collect();
    format!("{cut}…")
}

#[derive(Serialize)]
struct Json<'a> {
    files: &'a [Row],
    summary: &'a Summary,
}

/// Runs the check and prints the table or the JSON on stdout, and the JSON
/// to `report_file` too if given. Exit 0 only when every file converts.
pub fn run(
    paths: &[PathBuf],
    setup: &Setup,
    policy_of: &PolicyOf,
    json: bool,
    report_file: Option<&Path>,
) -> Result<u8> {
    let found = collect(paths);
    if found.is_empty() {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!("nothing to check: no *.xml file in {}", named.join(", "));
    }
    let rows: Vec<Row> = found
        .iter()
        .map(|f| match f {
            Found::File(p) => row(p, setup, policy_of),
            Found::Unlisted(p, e) => unlisted_row(p, e),
        })
        .collect();
    let summary = summarise(&rows);
    let data = (json || report_file.is_some())
        .then(|| serde_json::to_string_pretty(&Json { files: &rows, summary: &summary }).map(|s| s + "\n"))
        .transpose()?;
    let text = match &data {
        Some(d) if json => d.clone(),
        _ => table(&rows, &summary),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    if let (Some(path), Some(d)) = (report_file, &data) {
        files::Dest::resolve(path)
            .and_then(|dest| dest.stage(&mut |w| w.write_all(d.as_bytes()))?.commit())
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(if summary.converts == summary.files { 0 } else { 1 })
}
