//! xenify rewrites the libvirt domain XML that oVirt's Vdsm writes for KVM
//! into XML that libvirt's libxl (Xen) driver accepts and that means what the
//! original meant, changing nothing else, with a report of every change.
//!
//! The library is pure: text in, text and findings out. Reading files, the
//! environment and the command line belongs to the binary (`cli`, `hook`).

pub mod diff;
pub mod doc;
pub mod error;
pub mod finding;
pub mod passes;
pub mod policy;
pub mod report;

pub use doc::Document;
pub use error::Error;
pub use finding::{Finding, Kind};
pub use passes::{Context, Host, NoHost, Pass, Point, ALL};
pub use policy::{Loss, Policy};

/// The result of running the pipeline over a readable document: the
/// edited document (written out only on request, and only if no pass
/// refused) and the findings.
pub struct Conversion<'a> {
    document: Document<'a>,
    refused: bool,
    pub findings: Vec<Finding>,
    /// The domain's `<name>`, or the device element's name.
    pub subject: String,
}

impl Conversion<'_> {
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Does the output differ from the input?
    pub fn changed(&self) -> bool {
        !self.refused && self.document.is_edited()
    }

    /// The converted document; `None` when a pass refused.
    pub fn output(&self) -> Option<String> {
        (!self.refused).then(|| self.document.to_string())
    }

    /// Writes the converted document to `w` in chunks; nothing when a pass refused.
    pub fn write_output(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        if self.refused {
            return Ok(());
        }
        self.document.write_to(w)
    }
}

/// Parses `text`, checks its root against `context.point`, runs `passes`
/// and writes the result unless a pass refused.
pub fn convert<'a>(text: &'a str, passes: &[&Pass], context: &Context) -> Result<Conversion<'a>, Error> {
    let mut doc = Document::parse(text)?;
    let root = doc.root();
    if let Some(namespace) = doc.namespace(root) {
        return Err(Error::ForeignRoot { name: doc.qname(root).to_string(), namespace: namespace.to_string() });
    }
    let domain = doc.is(root, "domain");
    let device = doc.namespace(root).is_none() && passes::is_device_element(doc.local(root));
    let subject = match (domain, device, context.point) {
        (true, _, Point::Unknown | Point::Start) => {
            let name = doc.child(root, "name").and_then(|n| doc.text(n)).unwrap_or("").trim();
            format!("VM '{name}'")
        }
        (false, true, p) if p != Point::Start => format!("<{}> device", doc.local(root)),
        (_, _, Point::Unknown) => return Err(Error::WrongRoot { name: doc.qname(root).to_string() }),
        (_, _, p) => {
            let expected = if p == Point::Start { "<domain>" } else { "one device element" };
            return Err(Error::Unexpected { name: doc.qname(root).to_string(), expected });
        }
    };
    let findings = passes::run(&mut doc, passes, context);
    let refused = findings.iter().any(|f| f.kind == Kind::Refused);
    Ok(Conversion { document: doc, refused, findings, subject })
}

/// `convert` with every pass.
pub fn convert_all<'a>(text: &'a str, policy: &Policy) -> Result<Conversion<'a>, Error> {
    let passes: Vec<&Pass> = ALL.iter().collect();
    convert(text, &passes, &Context::new(policy))
}
