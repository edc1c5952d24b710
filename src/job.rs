//! One input through the pipeline, as the CLI, `check` and the hook run it:
//! decode the bytes, parse, settle the policy for this document, convert
//! the selected passes, and describe the outcome for the report.

use xenify::error::{decode, DEFAULT_SIZE_LIMIT};
use xenify::policy::{PolicyError, Setting};
use xenify::report::{Outcome, Report};
use xenify::{Context, Conversion, Document, Finding, Host, Pass, Point, Policy};

/// What became of one input.
pub struct Job<'a> {
    pub label: String,
    pub outcome: Outcome,
    pub conversion: Option<Conversion<'a>>,
    pub error: Option<String>,
    /// The settings of the policy the passes ran under that are not
    /// defaults, for the report.
    pub settings: Vec<Setting>,
}

/// What a job runs with besides its input.
pub struct Setup<'s> {
    pub passes: &'s [&'s Pass],
    pub host: &'s dyn Host,
    pub point: Point,
}

impl<'a> Job<'a> {
    /// Runs `setup.passes` over `bytes` under the policy `policy` gives for
    /// the parsed document (`check` reads the VM's custom properties there).
    pub fn run(
        label: &str,
        bytes: &'a [u8],
        setup: &Setup,
        policy: impl FnOnce(&Document) -> Result<Policy, PolicyError>,
    ) -> Job<'a> {
        // Debug builds only: lets the tests check that a panic anywhere
        // becomes an internal error and leaves the input alone.
        #[cfg(debug_assertions)]
        if std::env::var_os("XENIFY_TEST_PANIC").is_some() {
            panic!("XENIFY_TEST_PANIC is set");
        }
        let doc = match decode(bytes, DEFAULT_SIZE_LIMIT).and_then(|text| Ok((text, Document::parse(text)?))) {
            Ok(d) => d,
            Err(e) => return Job::failed(label, e.to_string()),
        };
        let (text, doc) = doc;
        let policy = match policy(&doc) {
            Ok(p) => p,
            Err(e) => return Job::failed(label, format!("{e}; the VM was not converted")),
        };
        let context = Context { policy: &policy, host: setup.host, point: setup.point };
        match xenify::convert_selection(text, doc, setup.passes, &context) {
            Ok(c) => Job {
                label: label.to_string(),
                outcome: if c.refused() { Outcome::Refused } else { Outcome::Converted },
                conversion: Some(c),
                error: None,
                settings: policy.settings(),
            },
            Err(e) => Job::failed(label, e.to_string()),
        }
    }

    pub fn failed(label: &str, error: String) -> Job<'a> {
        Job {
            label: label.to_string(),
            outcome: Outcome::Error,
            conversion: None,
            error: Some(error),
            settings: Vec::new(),
        }
    }

    pub fn findings(&self) -> &[Finding] {
        self.conversion.as_ref().map_or(&[], |c| &c.findings)
    }

    pub fn report(&self) -> Report<'_> {
        Report {
            input: &self.label,
            subject: self.conversion.as_ref().map(|c| c.subject.as_str()),
            outcome: self.outcome,
            findings: self.findings(),
            error: self.error.clone(),
            settings: &self.settings,
        }
    }

    /// The conversion, unless a pass refused or an error stopped it.
    pub fn converted(&self) -> Option<&Conversion<'a>> {
        self.conversion.as_ref().filter(|c| !c.refused())
    }

    /// 0 converted, 1 refused, 2 error.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Converted => 0,
            Outcome::Refused => 1,
            Outcome::Error => 2,
        }
    }
}
