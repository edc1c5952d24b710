//! The report of a run, for people (text, one line per finding, the first
//! line saying in plain words what happened) and for machines (JSON, the same
//! data). Both are an interface: the README documents them.

use serde::Serialize;

use crate::finding::{Finding, Kind};
use crate::policy::{Loss, Setting};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Converted,
    Refused,
    Error,
}

/// Where the administrator accepts a loss, which depends on how xenify runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// On the command line: `--accept ID`.
    Cli,
    /// As a Vdsm hook: the policy file and the VM custom property that
    /// lists accepted losses.
    Hook { config: String, property: String },
}

impl Hint {
    /// The exact setting that accepts `loss`.
    pub fn accept(&self, loss: Loss) -> String {
        match self {
            Hint::Cli => format!("to convert without it, pass --accept {loss}"),
            Hint::Hook { config, property } => format!(
                "to start without it, add \"{loss}\" to accept in {config} or set the VM custom property {property}={loss}"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub changed: usize,
    pub removed: usize,
    pub added: usize,
    pub warning: usize,
    pub refused: usize,
}

impl Counts {
    pub fn of(findings: &[Finding]) -> Counts {
        let mut c = Counts::default();
        for f in findings {
            match f.kind {
                Kind::Changed => c.changed += 1,
                Kind::Removed => c.removed += 1,
                Kind::Added => c.added += 1,
                Kind::Warning => c.warning += 1,
                Kind::Refused => c.refused += 1,
            }
        }
        c
    }
}

/// The JSON report, field by field in the documented order.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    outcome: Outcome,
    input: &'a str,
    subject: Option<&'a str>,
    headline: String,
    counts: Counts,
    /// The settings that are not defaults, with where each was set.
    policy: &'a [Setting],
    findings: Vec<JsonFinding<'a>>,
    error: Option<&'a str>,
}

#[derive(Serialize)]
pub struct JsonFinding<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    /// On a refusal with a loss id: the exact setting that accepts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

/// One run over one input.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// The input as the user named it (a path, or `-`).
    pub input: &'a str,
    /// `VM 'name'` or `<disk> device`, when the input could be read.
    pub subject: Option<&'a str>,
    pub outcome: Outcome,
    pub findings: &'a [Finding],
    pub error: Option<String>,
    /// The settings of the policy that are not defaults, with their source.
    pub settings: &'a [Setting],
}

/// The loss ids the refusals ask for, in the order first met.
pub fn refused_losses(findings: &[Finding]) -> Vec<Loss> {
    let mut ids = Vec::new();
    for f in findings.iter().filter(|f| f.kind == Kind::Refused) {
        if let Some(l) = f.accept {
            if !ids.contains(&l) {
                ids.push(l);
            }
        }
    }
    ids
}

impl Report<'_> {
    /// The first line: what happened, in plain words.
    pub fn headline(&self) -> String {
        let subject = self.subject.unwrap_or("the document");
        match self.outcome {
            Outcome::Error => {
                format!("xenify: error: {}: {}", self.input, self.error.as_deref().unwrap_or("unknown error"))
            }
            Outcome::Refused => {
                let refusals = self.findings.iter().filter(|f| f.kind == Kind::Refused).count();
                let losses = refused_losses(self.findings);
                let mut line = format!(
                    "xenify: refused: {subject} cannot run on Xen as it is: {refusals} setting{} cannot be honoured by libvirt's libxl driver",
                    if refusals == 1 { "" } else { "s" }
                );
                if !losses.is_empty() {
                    let ids: Vec<&str> = losses.iter().map(|l| l.id()).collect();
                    line.push_str(&format!(" without accepting the loss of {}", ids.join(", ")));
                }
                line.push_str(&format!("; nothing was written ({})", self.input));
                line
            }
            Outcome::Converted => {
                let c = Counts::of(self.findings);
                if c.changed + c.removed + c.added == 0 {
                    format!("xenify: converted: {subject} ({}) needs no change for Xen", self.input)
                } else {
                    format!(
                        "xenify: converted: {subject} ({}) for Xen: {} changed, {} removed, {} added, {} warning{}",
                        self.input,
                        c.changed,
                        c.removed,
                        c.added,
                        c.warning,
                        if c.warning == 1 { "" } else { "s" }
                    )
                }
            }
        }
    }

    /// The text report: the headline, then one line per finding. A refused
    /// run lists its refusals only, since nothing else took effect.
    pub fn text(&self, hint: &Hint) -> String {
        let mut out = Vec::new();
        let _ = self.write_text(hint, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Report::text`], written line by line: a report of a large domain
    /// need not be held in memory twice.
    pub fn write_text(&self, hint: &Hint, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.headline())?;
        for s in self.settings {
            writeln!(out, "xenify: policy: {} = {} ({})", s.key, s.value, s.source)?;
        }
        let refused = self.outcome == Outcome::Refused;
        for f in self.findings.iter().filter(|f| !refused || f.kind == Kind::Refused) {
            write!(out, "xenify: {}: {}: {}", f.kind, f.path, f.message)?;
            if let (Kind::Refused, Some(l)) = (f.kind, f.accept) {
                write!(out, "; {}", hint.accept(l))?;
            }
            writeln!(out, " [{}]", f.pass)?;
        }
        Ok(())
    }

    /// The JSON report as a value to serialise (fields in documented order).
    pub fn json_report(&self, hint: &Hint) -> JsonReport<'_> {
        let findings = self
            .findings
            .iter()
            .map(|f| JsonFinding {
                finding: f,
                hint: match (f.kind, f.accept) {
                    (Kind::Refused, Some(l)) => Some(hint.accept(l)),
                    _ => None,
                },
            })
            .collect();
        JsonReport {
            outcome: self.outcome,
            input: self.input,
            subject: self.subject,
            headline: self.headline(),
            counts: Counts::of(self.findings),
            policy: self.settings,
            findings,
            error: self.error.as_deref(),
        }
    }

    pub fn json(&self, hint: &Hint) -> String {
        let mut s = serde_json::to_string_pretty(&self.json_report(hint)).unwrap_or_default();
        s.push('\n');
        s
    }
}
