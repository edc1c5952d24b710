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

pub use doc::{Document, El};
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

/// Parses `text`, checks its root against `context.point`, runs exactly
/// `passes` and writes the result unless a pass refused. The snapshot tests
/// run one pass this way; the binary runs a selection of the pipeline with
/// [`convert_selection`].
pub fn convert<'a>(text: &'a str, passes: &[&Pass], context: &Context) -> Result<Conversion<'a>, Error> {
    convert_parsed(Document::parse(text)?, passes, context)
}

/// [`convert`] on a document already parsed.
pub fn convert_parsed<'a>(mut doc: Document<'a>, passes: &[&Pass], context: &Context) -> Result<Conversion<'a>, Error> {
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

/// Runs `passes`, a selection of [`ALL`] (`--only`, `--skip`), over `doc`,
/// which was parsed from `text`, and accounts for the passes left out: the
/// whole pipeline runs on a scratch copy of the input, and
///
/// - a refusal by a left-out pass is a refusal of this run too (leaving a
///   pass out must not let through a control it would have refused to
///   drop, such as SPICE TLS), reported under that pass's name;
/// - a left-out pass that would have edited the document gets a warning
///   that says how much, since the output still holds what it would have
///   converted.
///
/// Passes stay pure: nothing here but running them twice.
pub fn convert_selection<'a>(
    text: &'a str,
    doc: Document<'a>,
    passes: &[&Pass],
    context: &Context,
) -> Result<Conversion<'a>, Error> {
    let root = doc.path(doc.root());
    let mut c = convert_parsed(doc, passes, context)?;
    let left_out: Vec<&Pass> = ALL.iter().filter(|p| !passes.iter().any(|q| q.name == p.name)).collect();
    if left_out.is_empty() {
        return Ok(c);
    }
    let full = convert(text, &ALL.iter().collect::<Vec<_>>(), context)?;
    for pass in left_out {
        let mine: Vec<&Finding> = full.findings.iter().filter(|f| f.pass == pass.name).collect();
        for f in mine.iter().filter(|f| f.kind == Kind::Refused) {
            c.findings.push(Finding {
                message: format!("this pass was left out of the run, but it refuses the document: {}", f.message),
                ..(*f).clone()
            });
            c.refused = true;
        }
        let count = |k: Kind| mine.iter().filter(|f| f.kind == k).count();
        let (changed, removed, added) = (count(Kind::Changed), count(Kind::Removed), count(Kind::Added));
        if let Some(first) = mine.iter().find(|f| f.kind.is_edit()) {
            c.findings.push(Finding {
                pass: pass.name,
                kind: Kind::Warning,
                path: root.clone(),
                message: format!(
                    "this pass was left out of the run: it would have changed {changed}, removed {removed} and added {added} (the first at {}), so the output still has what libxl ignores or rejects there",
                    first.path
                ),
                accept: None,
            });
        }
    }
    Ok(c)
}

/// The namespace of oVirt's VM metadata.
pub const OVIRT_VM_NS: &str = "http://ovirt.org/vm/1.0";

/// The VM custom properties the engine wrote into the domain:
/// `<metadata><ovirt-vm:vm><ovirt-vm:custom><ovirt-vm:NAME>VALUE`, read as
/// Vdsm reads them (`metadata.py`: the leaf children, by local name), which
/// is what Vdsm exports to hooks as environment variables. Empty for a
/// device document or a domain without them.
pub fn custom_properties(doc: &Document) -> Vec<(String, String)> {
    let in_ns = |e: El, name: &str| doc.namespace(e) == Some(OVIRT_VM_NS) && doc.local(e) == name;
    let root = doc.root();
    let Some(metadata) = doc.is(root, "domain").then(|| doc.child(root, "metadata")).flatten() else {
        return Vec::new();
    };
    let Some(custom) =
        doc.children(metadata).find(|e| in_ns(*e, "vm")).and_then(|vm| doc.children(vm).find(|e| in_ns(*e, "custom")))
    else {
        return Vec::new();
    };
    doc.children(custom)
        .filter(|e| matches!(doc.namespace(*e), None | Some(OVIRT_VM_NS)) && doc.children(*e).next().is_none())
        .map(|e| (doc.local(e).to_string(), doc.text(e).unwrap_or("").to_string()))
        .collect()
}
