//! Findings: what a pass changed, removed, added, warned about or refused,
//! each with the path, in the input document, of what it concerns.

use std::fmt;

use serde::Serialize;

use crate::policy::Loss;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Rewritten in place.
    Changed,
    /// An element or attribute dropped.
    Removed,
    /// An element or attribute the input did not have.
    Added,
    /// Left alone (or changed), but the administrator must know.
    Warning,
    /// The document cannot be made Xen-safe under the policy: nothing is written.
    Refused,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Changed => "changed",
            Kind::Removed => "removed",
            Kind::Added => "added",
            Kind::Warning => "warning",
            Kind::Refused => "refused",
        }
    }

    /// Does a finding of this kind mean the output differs from the input?
    pub fn is_edit(self) -> bool {
        matches!(self, Kind::Changed | Kind::Removed | Kind::Added)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The pass that made it.
    pub pass: &'static str,
    pub kind: Kind,
    /// XPath-style path in the input: `/domain/devices/disk[1]/driver/@cache`.
    pub path: String,
    pub message: String,
    /// The loss id a refusal asks to accept, or that an accepted removal used.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "loss_id")]
    pub accept: Option<Loss>,
}

fn loss_id<S: serde::Serializer>(loss: &Option<Loss>, s: S) -> Result<S::Ok, S::Error> {
    match loss {
        Some(l) => s.serialize_str(l.id()),
        None => s.serialize_none(),
    }
}
