//! The report of a run, for people (text, one line per finding, the first
//! line saying in plain words what happened) and for machines (JSON, the same
//! data). Both are an interface: the README documents them.

use std::borrow::Cow;

use serde::Serialize;

use crate::finding::{Finding, Kind};
use crate::policy::{Loss, Policy, Setting, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Converted,
    Refused,
    Error,
}

/// Where the administrator accepts a loss, which depends on how xenify runs,
/// and what that setting already holds: a hint names the whole value that
/// lets the run through, so following it never takes back an earlier
/// acceptance (a custom property is one value: setting it replaces it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// On the command line: `--accept`, with what `--accept` and
    /// `--set accept=` already accept.
    Cli { accepted: Vec<Loss> },
    /// As a Vdsm hook: the policy file and the VM custom property that
    /// lists accepted losses, with what that property already accepts.
    Hook { config: String, property: String, accepted: Vec<Loss> },
}

impl Hint {
    /// The command line's hint under `policy`.
    pub fn cli(policy: &Policy) -> Hint {
        Hint::Cli { accepted: policy.accepted_from(|s| matches!(s, Source::Flag { .. })) }
    }

    /// The hook's hint under `policy`: `config` is the policy file in force,
    /// `property` the custom property that holds accepted losses.
    pub fn hook(config: String, property: String, policy: &Policy) -> Hint {
        let accepted = policy.accepted_from(|s| matches!(s, Source::Property { name } if *name == property));
        Hint::Hook { config, property, accepted }
    }

    fn verb(&self) -> &'static str {
        match self {
            Hint::Cli { .. } => "convert",
            Hint::Hook { .. } => "start",
        }
    }

    /// The exact setting that accepts every loss in `refused` (all that a
    /// run refused), keeping what the same setting already accepts.
    pub fn setting(&self, refused: &[Loss]) -> String {
        let join = |already: &[Loss]| {
            let mut all: Vec<&str> = already.iter().map(|l| l.id()).collect();
            for l in refused {
                if !all.contains(&l.id()) {
                    all.push(l.id());
                }
            }
            all.join(",")
        };
        match self {
            Hint::Cli { accepted } => format!("pass --accept {}", join(accepted)),
            Hint::Hook { config, property, accepted } => {
                let quoted: Vec<String> = refused.iter().map(|l| format!("\"{l}\"")).collect();
                format!(
                    "add {} to accept in {config} or set the VM custom property {property}={}",
                    quoted.join(", "),
                    join(accepted)
                )
            }
        }
    }

    /// A refusal's hint: the setting that accepts every loss the run refused.
    pub fn accept(&self, refused: &[Loss]) -> String {
        format!("to {} without it, {}", self.verb(), self.setting(refused))
    }
}

/// `s` with every control character (a newline above all) and Unicode line
/// or paragraph separator written as an escape, so that text from the
/// document, a path or the environment cannot start a line of its own in a
/// report or in vdsm.log.
pub fn escape(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !s.contains(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
    /// The first line: what happened, in plain words. It is what oVirt shows
    /// when the hook stops a VM, so a refusal says why there: the first
    /// reason no setting accepts, and the exact setting that accepts the
    /// losses.
    pub fn headline(&self, hint: &Hint) -> String {
        let subject = self.subject.unwrap_or("the document");
        let line = match self.outcome {
            Outcome::Error => {
                format!("xenify: error: {}: {}", self.input, self.error.as_deref().unwrap_or("unknown error"))
            }
            Outcome::Refused => {
                let plain: Vec<&Finding> =
                    self.findings.iter().filter(|f| f.kind == Kind::Refused && f.accept.is_none()).collect();
                let losses = refused_losses(self.findings);
                let ids: Vec<&str> = losses.iter().map(|l| l.id()).collect();
                let mut line = format!("xenify: refused: {subject} cannot run on Xen");
                if let Some(first) = plain.first() {
                    line.push_str(&format!(": {}", first.message));
                    if plain.len() > 1 {
                        let more = plain.len() - 1;
                        line.push_str(&format!(" (and {more} more reason{} below)", if more == 1 { "" } else { "s" }));
                    }
                    if !losses.is_empty() {
                        line.push_str(&format!("; it also needs the loss of {} accepted", ids.join(", ")));
                    }
                } else if !losses.is_empty() {
                    line.push_str(&format!(
                        " unless the loss of {} is accepted: to {} it, {}",
                        ids.join(", "),
                        hint.verb(),
                        hint.setting(&losses)
                    ));
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
        };
        escape(&line).into_owned()
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
        writeln!(out, "{}", self.headline(hint))?;
        for s in self.settings {
            writeln!(out, "{}", escape(&format!("xenify: policy: {} = {} ({})", s.key, s.value, s.source)))?;
        }
        let refused = self.outcome == Outcome::Refused;
        let losses = refused_losses(self.findings);
        let mut line = String::new();
        for f in self.findings.iter().filter(|f| !refused || f.kind == Kind::Refused) {
            line.clear();
            line.push_str(&format!("xenify: {}: {}: {}", f.kind, f.path, f.message));
            if let (Kind::Refused, Some(_)) = (f.kind, f.accept) {
                line.push_str(&format!("; {}", hint.accept(&losses)));
            }
            line.push_str(&format!(" [{}]", f.pass));
            writeln!(out, "{}", escape(&line))?;
        }
        Ok(())
    }

    /// The JSON report as a value to serialise (fields in documented order).
    pub fn json_report(&self, hint: &Hint) -> JsonReport<'_> {
        let losses = refused_losses(self.findings);
        let findings = self
            .findings
            .iter()
            .map(|f| JsonFinding {
                finding: f,
                hint: match (f.kind, f.accept) {
                    (Kind::Refused, Some(_)) => Some(hint.accept(&losses)),
                    _ => None,
                },
            })
            .collect();
        JsonReport {
            outcome: self.outcome,
            input: self.input,
            subject: self.subject,
            headline: self.headline(hint),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_writes_control_characters_and_line_separators_as_escapes() {
        assert!(matches!(escape("VM 'web01' (/tmp/x)"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape("a\u{1b}[2J\u{85}\u{2028}\u{2029}\u{7f}"), "a\\u{1b}[2J\\u{85}\\u{2028}\\u{2029}\\u{7f}");
        assert_eq!(escape("é → ü"), "é → ü");
    }

    #[test]
    fn a_hint_keeps_what_its_setting_already_accepts() {
        let refused = [Loss::GraphicsSecurity, Loss::Nwfilter];
        let hook = |accepted: Vec<Loss>| Hint::Hook {
            config: "/etc/xenify/xenify.toml".into(),
            property: "xenify_accept".into(),
            accepted,
        };
        assert_eq!(
            hook(vec![Loss::Tpm, Loss::Nwfilter]).setting(&refused),
            "add \"graphics-security\", \"nwfilter\" to accept in /etc/xenify/xenify.toml or set the VM custom property xenify_accept=tpm,nwfilter,graphics-security"
        );
        assert_eq!(
            Hint::Cli { accepted: vec![Loss::Vlan] }.accept(&refused),
            "to convert without it, pass --accept vlan,graphics-security,nwfilter"
        );
    }
}
