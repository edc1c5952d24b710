//! A lossless XML document: the input text plus an editable tree of its
//! elements. Writing it back copies every byte that no edit touched straight
//! from the input, so `Document::parse(t)?.to_string() == t` for every input,
//! and an edit changes only its own bytes.
//!
//! roxmltree first checks that the text is well-formed XML, refuses a DTD
//! and gives the line and column of an error; its tree is then dropped. This
//! module scans the (now known good) text itself, because it needs spans
//! roxmltree does not give (the end of a start tag, each attribute with the
//! whitespace before it and its quote) and attributes roxmltree hides
//! (`xmlns`), and keeps per element only what splicing needs. Text and
//! comments between elements are never parsed into nodes: they are the gaps
//! between element spans and are copied as they are. Attributes and children
//! live in two arrays shared by all elements, so an element costs no
//! allocation of its own (docs/performance.md).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::fmt::Write as _;
use std::io;

use crate::error::{Error, Shape};

/// A handle to an element of a [`Document`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct El(u32);

/// Documents with more XML nodes than this are refused: a domain has a few
/// thousand at most, and the bound keeps memory small whatever the input.
pub const MAX_NODES: u32 = 2_000_000;

/// Elements nested deeper than this are refused: no libvirt document comes
/// close, and a bound keeps the recursive writer's stack small.
pub const MAX_DEPTH: usize = 256;

// The bounds below keep every input under the size limit linear in its
// size. roxmltree compares each attribute of an element with every one
// before it (duplicates, by namespace name and local name), each namespace
// declaration with the element's others, and copies every namespace in
// scope onto each element that declares one more; it keeps its distinct
// namespaces in a sorted array. Unbounded, an element with 100,000
// attributes (1.5 MB) took 16 s. A linear pre-scan ([`prescan`]) refuses
// these shapes before roxmltree sees them; libvirt documents use at most
// about 20 attributes on an element and a handful of namespaces.

/// Attributes on one element, namespace declarations included.
pub const MAX_ATTRIBUTES: usize = 256;

/// Namespace declarations in scope at any element.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 32;

/// Different namespace declarations (prefix and name) in one document.
pub const MAX_NAMESPACES: usize = 256;

/// Bytes in one namespace name: roxmltree compares namespace names when it
/// looks for duplicate attributes.
pub const MAX_NAMESPACE_NAME: usize = 512;

/// Byte offsets of an element of the input.
#[derive(Clone, Debug)]
struct Span {
    /// `<` of the start tag.
    start: u32,
    /// End of the tag name.
    name_end: u32,
    /// End of the last attribute (or of the name).
    attrs_end: u32,
    /// `/` of `/>` in an empty-element tag, `>` otherwise.
    tag_end: u32,
    /// Just after the start tag's `>`.
    stag_end: u32,
    /// `<` of the end tag (equal to `end` for an empty-element tag).
    etag_start: u32,
    /// Just after the element.
    end: u32,
    self_closing: bool,
}

/// Byte offsets of an attribute of the input.
#[derive(Clone, Debug)]
struct AttrSpan {
    /// Start of the whitespace before the name.
    lead: u32,
    name_start: u32,
    /// Just after the closing quote.
    end: u32,
    quote: u8,
}

#[derive(Clone, Debug)]
struct Attr<'a> {
    qname: Cow<'a, str>,
    value: Cow<'a, str>,
    raw: Option<AttrSpan>,
    /// The name or value differs from the input.
    edited: bool,
    removed: bool,
}

/// The attributes or children of one element: a run of one of the
/// document's shared arrays, so that an element costs no allocation of its
/// own. An edit that grows a run not at the end of its array moves it there.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    start: u32,
    len: u32,
}

impl Run {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    /// Appends `item` to this run of `array`, first moving the run to the
    /// end of the array unless it is there already.
    fn push<T: Clone>(&mut self, array: &mut Vec<T>, item: T) {
        if self.range().end != array.len() {
            let start = array.len() as u32;
            array.extend_from_within(self.range());
            self.start = start;
        }
        array.push(item);
        self.len += 1;
    }
}

#[derive(Clone, Debug)]
struct Element<'a> {
    parent: Option<El>,
    /// Index into `Document::namespaces`; `None` for libvirt's own elements.
    ns: Option<u16>,
    qname: Cow<'a, str>,
    /// In `Document::attrs`.
    attrs: Run,
    /// Element children in document order (in `Document::kids`), removed
    /// ones included (they keep their place so that paths and gaps stay
    /// those of the input).
    children: Run,
    /// Character data of an element without element children.
    text: Option<Cow<'a, str>>,
    /// `None` for elements a pass added.
    span: Option<Span>,
    removed: bool,
    /// 1-based index among same-name siblings of the input, and whether the
    /// name repeats; filled for a whole family the first time a path needs it.
    sibling: OnceCell<(u32, bool)>,
    /// This element or something inside it was edited.
    dirty: bool,
    /// The attributes were edited.
    tag_dirty: bool,
    /// The text was replaced.
    text_dirty: bool,
}

/// A new element for [`Document::insert`]: name, attributes in order, and
/// either text or child elements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewEl {
    pub qname: String,
    pub attrs: Vec<(String, String)>,
    pub text: Option<String>,
    pub children: Vec<NewEl>,
}

impl NewEl {
    pub fn new(qname: &str) -> NewEl {
        NewEl { qname: qname.to_string(), ..NewEl::default() }
    }

    pub fn attr(mut self, name: &str, value: &str) -> NewEl {
        self.attrs.push((name.to_string(), value.to_string()));
        self
    }

    pub fn text(mut self, text: &str) -> NewEl {
        self.text = Some(text.to_string());
        self
    }

    pub fn child(mut self, child: NewEl) -> NewEl {
        self.children.push(child);
        self
    }
}

/// Where [`Document::insert`] puts a new element among its parent's children.
#[derive(Clone, Copy, Debug)]
pub enum At {
    First,
    Last,
    Before(El),
    After(El),
}

pub struct Document<'a> {
    /// The input without its byte order mark.
    src: &'a str,
    bom: bool,
    els: Vec<Element<'a>>,
    /// Every element's attributes, each element's a contiguous run.
    attrs: Vec<Attr<'a>>,
    /// Every element's children, each element's a contiguous run.
    kids: Vec<El>,
    root: El,
    namespaces: Vec<String>,
    /// Quote of the first attribute in the input, for new attributes of
    /// elements that have none of their own.
    quote: u8,
}

impl<'a> Document<'a> {
    /// Parses UTF-8 text (with or without a byte order mark). A DTD, an
    /// encoding other than UTF-8 in the XML declaration, malformed XML and
    /// nesting deeper than [`MAX_DEPTH`] are errors.
    pub fn parse(text: &'a str) -> Result<Document<'a>, Error> {
        let (bom, src) = match text.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if bom && src.starts_with('\u{feff}') {
            // roxmltree would take the second for the first and pass it on.
            return Err(Error::Malformed {
                line: 1,
                column: 1,
                message: "a second byte order mark (U+FEFF) at the start; a document has at most one".into(),
            });
        }
        check_declaration(src)?;
        let bad_reference = prescan(src)?;
        // roxmltree checks well-formedness (and refuses a DTD before reading
        // it); its tree is dropped before ours is built, so the two never
        // take memory at once.
        let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..Default::default() };
        roxmltree::Document::parse_with_options(src, opts).map_err(|e| xml_error(&e, src))?;
        // roxmltree passes a reference to a surrogate or beyond U+10FFFF on
        // as text; written back, no parser would read it.
        if let Some((offset, why)) = bad_reference {
            let (line, column) = position(src, offset);
            return Err(Error::Malformed { line, column, message: why });
        }
        let mut doc = Document {
            src,
            bom,
            els: Vec::new(),
            attrs: Vec::new(),
            kids: Vec::new(),
            root: El(0),
            namespaces: Vec::new(),
            quote: b'\'',
        };
        doc.build().map_err(|e| match e {
            Some((offset, None)) => Error::TooDeep { line: line_of(src, offset), limit: MAX_DEPTH },
            Some((offset, Some(name))) => Error::Malformed {
                line: line_of(src, offset),
                column: 0,
                message: format!("'{name}' is not a valid name (an empty namespace prefix)"),
            },
            None => Error::Malformed { line: 0, column: 0, message: "xenify could not scan this document".into() },
        })?;
        Ok(doc)
    }

    /// Builds the element tree by scanning the (well-formed) text: every
    /// markup construct starts with `<`. Fails with the offset of an element
    /// nested deeper than [`MAX_DEPTH`], or of a name with an empty prefix
    /// (`:bus`, which roxmltree lets through but which would match no name
    /// a pass looks for), or `None` if the text is not what roxmltree accepted.
    #[allow(clippy::type_complexity)]
    fn build(&mut self) -> Result<(), Option<(usize, Option<String>)>> {
        let src = self.src;
        // The open elements, each with the length of `scope` before its
        // namespace declarations.
        let mut open: Vec<(El, usize)> = Vec::new();
        // In-scope namespace declarations: prefix ("" for the default) and URI.
        let mut scope: Vec<(&'a str, Option<u16>)> = Vec::new();
        let mut first_quote = None;
        // Every element starts with a `<`: that bound, with room for the
        // elements passes add, spares the arena the copy (and the doubled
        // memory) of growing. Capacity never written to is never resident.
        let bytes = src.as_bytes();
        let marks = memchr::memchr_iter(b'<', bytes).count();
        self.els.reserve_exact(marks + marks / 8 + 64);
        let mut i = 0;
        while let Some(k) = memchr::memchr(b'<', &bytes[i..]) {
            let p = i + k;
            let rest = &src[p..];
            // The end is searched after the opening: `<!-->` opens a
            // comment, it does not close one.
            let skip = |open: usize, end: &str| {
                let after = &rest.as_bytes()[open..];
                let found = match end.as_bytes() {
                    [one] => memchr::memchr(*one, after),
                    _ => memchr::memmem::find(after, end.as_bytes()),
                };
                found.map(|e| p + open + e + end.len()).ok_or(None)
            };
            if rest.starts_with("<!--") {
                i = skip(4, "-->")?;
            } else if rest.starts_with("<![CDATA[") {
                i = skip(9, "]]>")?;
            } else if rest.starts_with("<?") {
                i = skip(2, "?>")?;
            } else if rest.starts_with("<!") {
                i = skip(1, ">")?;
            } else if rest.starts_with("</") {
                let end = skip(1, ">")?;
                let (e, mark) = open.pop().ok_or(None)?;
                scope.truncate(mark);
                let el = &mut self.els[e.0 as usize];
                let sp = el.span.as_mut().ok_or(None)?;
                sp.etag_start = p as u32;
                sp.end = end as u32;
                if el.children.len == 0 {
                    let raw = &src[sp.stag_end as usize..p];
                    el.text =
                        Some(if any_byte(raw, b"<&\r") { Cow::Owned(decode_text(raw)) } else { Cow::Borrowed(raw) });
                }
                i = end;
            } else {
                if open.len() >= MAX_DEPTH {
                    return Err(Some((p, None)));
                }
                let mut el = scan_start_tag(src, p, &mut self.attrs).ok_or(None)?;
                let own = &self.attrs[el.attrs.range()];
                let bad_name = |n: &str| n.starts_with(':') || n.ends_with(':');
                if let Some(n) = std::iter::once(&*el.qname).chain(own.iter().map(|a| &*a.qname)).find(|n| bad_name(n))
                {
                    return Err(Some((p, Some(n.to_string()))));
                }
                let sp = el.span.as_ref().ok_or(None)?;
                let (self_closing, stag_end) = (sp.self_closing, sp.stag_end as usize);
                if first_quote.is_none() {
                    first_quote = own.first().and_then(|a| a.raw.as_ref()).map(|r| r.quote);
                }
                let mark = scope.len();
                for k in el.attrs.range() {
                    let a = &self.attrs[k];
                    // Scanned names borrow from the input, so they live as long as it.
                    let Cow::Borrowed(q) = &a.qname else { continue };
                    let q: &'a str = q;
                    let prefix = match q {
                        "xmlns" => "",
                        q => match q.strip_prefix("xmlns:") {
                            Some(prefix) => prefix,
                            None => continue,
                        },
                    };
                    // An empty URI undeclares the prefix.
                    let uri = (!a.value.is_empty()).then(|| a.value.to_string());
                    scope.push((prefix, uri.map(|u| self.intern(&u))));
                }
                let prefix = el.qname.split_once(':').map_or("", |(p, _)| p);
                let ns = scope.iter().rev().find(|(p, _)| *p == prefix).and_then(|(_, u)| *u);
                let id = El(self.els.len() as u32);
                let parent = open.last().map(|(e, _)| *e);
                el.parent = parent;
                el.ns = ns;
                if let Some(p) = parent {
                    let parent = &mut self.els[p.0 as usize];
                    parent.children.len += 1;
                    // An element with element children has no text of its own.
                    parent.text = None;
                }
                self.els.push(el);
                if self_closing {
                    scope.truncate(mark);
                } else {
                    open.push((id, mark));
                }
                i = stag_end;
            }
        }
        if self.els.is_empty() || !open.is_empty() {
            return Err(None);
        }
        self.quote = first_quote.unwrap_or(b'\'');
        self.gather_children();
        Ok(())
    }

    /// Lays the children out in `kids`, each element's contiguously in
    /// document order. The scan counted them; here each element's run gets
    /// its offset, then every element is put in its parent's run.
    fn gather_children(&mut self) {
        let mut next = 0;
        for el in &mut self.els {
            el.children.start = next;
            next += el.children.len;
            el.children.len = 0;
        }
        self.kids = vec![El(0); next as usize];
        for i in 0..self.els.len() {
            if let Some(p) = self.els[i].parent {
                let run = &mut self.els[p.0 as usize].children;
                self.kids[(run.start + run.len) as usize] = El(i as u32);
                run.len += 1;
            }
        }
    }

    fn attrs_of(&self, e: El) -> &[Attr<'a>] {
        &self.attrs[self.el(e).attrs.range()]
    }

    fn attrs_of_mut(&mut self, e: El) -> &mut [Attr<'a>] {
        let run = self.el(e).attrs;
        &mut self.attrs[run.range()]
    }

    fn kids_of(&self, e: El) -> &[El] {
        &self.kids[self.el(e).children.range()]
    }

    /// Appends `a` to the attributes of `e`.
    fn push_attr(&mut self, e: El, a: Attr<'a>) {
        let run = &mut self.els[e.0 as usize].attrs;
        run.push(&mut self.attrs, a);
    }

    /// Puts child `c` of `e` at `index` of its children.
    fn insert_kid(&mut self, e: El, index: usize, c: El) {
        let run = &mut self.els[e.0 as usize].children;
        run.push(&mut self.kids, c);
        self.kids[run.range()][index..].rotate_right(1);
    }

    fn intern(&mut self, ns: &str) -> u16 {
        match self.namespaces.iter().position(|n| n == ns) {
            Some(i) => i as u16,
            None => {
                self.namespaces.push(ns.to_string());
                (self.namespaces.len() - 1) as u16
            }
        }
    }

    fn el(&self, e: El) -> &Element<'a> {
        &self.els[e.0 as usize]
    }

    fn el_mut(&mut self, e: El) -> &mut Element<'a> {
        &mut self.els[e.0 as usize]
    }

    // ----- reading -----

    pub fn root(&self) -> El {
        self.root
    }

    /// The qualified name as written (`disk`, `ovirt-vm:vm`).
    pub fn qname(&self, e: El) -> &str {
        &self.el(e).qname
    }

    /// The local name (`vm` for `ovirt-vm:vm`).
    pub fn local(&self, e: El) -> &str {
        let q = &self.el(e).qname;
        q.rsplit(':').next().unwrap_or(q)
    }

    pub fn namespace(&self, e: El) -> Option<&str> {
        self.el(e).ns.map(|i| self.namespaces[i as usize].as_str())
    }

    /// Is `e` the libvirt element `name` (no namespace)?
    pub fn is(&self, e: El, name: &str) -> bool {
        let el = self.el(e);
        el.ns.is_none() && el.qname == name
    }

    pub fn parent(&self, e: El) -> Option<El> {
        self.el(e).parent
    }

    /// Was `e` or one of its ancestors removed?
    pub fn is_removed(&self, e: El) -> bool {
        let mut cur = Some(e);
        while let Some(c) = cur {
            if self.el(c).removed {
                return true;
            }
            cur = self.el(c).parent;
        }
        false
    }

    /// Was `e` in the input (rather than added by a pass)?
    pub fn is_original(&self, e: El) -> bool {
        self.el(e).span.is_some()
    }

    /// The children of `e` that are still there, in order.
    pub fn children(&self, e: El) -> impl Iterator<Item = El> + '_ {
        self.kids_of(e).iter().copied().filter(move |c| !self.el(*c).removed)
    }

    /// The children `e` had in the input, removed ones included.
    pub fn children_in_input(&self, e: El) -> impl Iterator<Item = El> + '_ {
        self.kids_of(e).iter().copied().filter(move |c| self.el(*c).span.is_some())
    }

    /// The remaining libvirt children of `e` named `name`.
    pub fn children_named<'s>(&'s self, e: El, name: &'s str) -> impl Iterator<Item = El> + 's {
        self.children(e).filter(move |c| self.is(*c, name))
    }

    /// The first remaining libvirt child of `e` named `name`.
    pub fn child(&self, e: El, name: &str) -> Option<El> {
        self.children_named(e, name).next()
    }

    /// The remaining elements at `names`, a path of libvirt child names from `e`.
    pub fn find(&self, e: El, names: &[&str]) -> Option<El> {
        names.iter().try_fold(e, |cur, name| self.child(cur, name))
    }

    pub fn attr(&self, e: El, name: &str) -> Option<&str> {
        self.attrs_of(e).iter().find(|a| !a.removed && a.qname == name).map(|a| &*a.value)
    }

    /// The attributes of `e` that are still there, as (qualified name, value).
    pub fn attrs(&self, e: El) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.attrs_of(e).iter().filter(|a| !a.removed).map(|a| (&*a.qname, &*a.value))
    }

    /// The character data of an element without element children.
    pub fn text(&self, e: El) -> Option<&str> {
        self.el(e).text.as_deref()
    }

    /// All remaining elements in document order.
    pub fn descendants(&self, e: El) -> Vec<El> {
        let mut out = Vec::new();
        let mut stack = vec![e];
        while let Some(c) = stack.pop() {
            out.push(c);
            let kids: Vec<El> = self.children(c).collect();
            stack.extend(kids.into_iter().rev());
        }
        out
    }

    /// The XPath-style path of `e` in the input, `/domain/devices/disk[2]/target`.
    /// Indexes are 1-based among same-name siblings; they are written for
    /// children of `<devices>` and wherever a name repeats. An element a pass
    /// added has the path of its parent.
    pub fn path(&self, e: El) -> String {
        let mut out = String::with_capacity(64);
        self.push_path(e, &mut out);
        out
    }

    fn push_path(&self, e: El, out: &mut String) {
        // An added element has the path of its nearest input ancestor (and
        // everything above an input element is from the input too).
        let mut cur = e;
        while self.el(cur).span.is_none() {
            match self.el(cur).parent {
                Some(p) => cur = p,
                None => return,
            }
        }
        self.push_input_path(cur, out);
    }

    fn push_input_path(&self, e: El, out: &mut String) {
        if let Some(p) = self.el(e).parent {
            self.push_input_path(p, out);
        }
        out.push('/');
        self.push_segment(e, out);
    }

    /// The path of attribute `name` of `e`.
    pub fn attr_path(&self, e: El, name: &str) -> String {
        let mut out = String::with_capacity(64);
        self.push_path(e, &mut out);
        out.push_str("/@");
        out.push_str(name);
        out
    }

    fn push_segment(&self, e: El, out: &mut String) {
        let el = self.el(e);
        out.push_str(&el.qname);
        let Some(p) = el.parent else { return };
        if el.sibling.get().is_none() {
            self.number_children(p);
        }
        let (index, repeated) = el.sibling.get().copied().unwrap_or((1, false));
        if repeated || self.is(p, "devices") {
            let _ = write!(out, "[{index}]");
        }
    }

    /// Numbers the input children of `p` among their same-name siblings.
    fn number_children(&self, p: El) {
        // First how often each name occurs, then each child's rank. A parent
        // has few distinct child names, where a list beats a hash map; past
        // a few dozen the list would make numbering quadratic in the
        // children (50,000 differently named ones took seconds).
        const LIST: usize = 32;
        // A name, and how many siblings have it and how many were ranked.
        type Name<'s> = (&'s str, Option<u16>);
        let key = |k: El| (&*self.el(k).qname, self.el(k).ns);
        let mut list: Vec<(Name, (u32, u32))> = Vec::new();
        let mut map: std::collections::HashMap<Name, (u32, u32)> = std::collections::HashMap::new();
        for k in self.children_in_input(p) {
            if !map.is_empty() {
                map.entry(key(k)).or_default().0 += 1;
            } else if let Some(c) = list.iter_mut().find(|c| c.0 == key(k)) {
                c.1 .0 += 1;
            } else if list.len() < LIST {
                list.push((key(k), (1, 0)));
            } else {
                map.extend(list.drain(..));
                map.insert(key(k), (1, 0));
            }
        }
        for k in self.children_in_input(p) {
            let count = if map.is_empty() {
                list.iter_mut().find(|c| c.0 == key(k)).map(|c| &mut c.1)
            } else {
                map.get_mut(&key(k))
            };
            if let Some((total, rank)) = count {
                *rank += 1;
                let _ = self.el(k).sibling.set((*rank, *total > 1));
            }
        }
    }

    // ----- editing -----

    fn touch(&mut self, e: El) {
        let mut cur = Some(e);
        while let Some(c) = cur {
            let el = self.el_mut(c);
            if el.dirty {
                break;
            }
            el.dirty = true;
            cur = el.parent;
        }
    }

    /// Removes `e` (with its whole line when it stands alone on one).
    pub fn remove(&mut self, e: El) {
        if self.el(e).span.is_none() {
            // An added element leaves no gap: its parent's run closes up.
            if let Some(p) = self.el(e).parent {
                let run = self.el(p).children;
                let kids = &mut self.kids[run.range()];
                if let Some(i) = kids.iter().position(|c| *c == e) {
                    kids[i..].rotate_left(1);
                    self.el_mut(p).children.len -= 1;
                }
            }
        }
        self.el_mut(e).removed = true;
        if let Some(p) = self.el(e).parent {
            self.touch(p);
        }
    }

    /// Sets attribute `name`, adding it after the others if absent. Returns
    /// whether anything changed.
    pub fn set_attr(&mut self, e: El, name: &str, value: &str) -> bool {
        match self.attrs_of_mut(e).iter_mut().find(|a| !a.removed && a.qname == name) {
            Some(a) if a.value == value => return false,
            Some(a) => {
                a.value = Cow::Owned(value.to_string());
                a.edited = true;
            }
            None => self.push_attr(
                e,
                Attr {
                    qname: Cow::Owned(name.to_string()),
                    value: Cow::Owned(value.to_string()),
                    raw: None,
                    edited: true,
                    removed: false,
                },
            ),
        }
        self.el_mut(e).tag_dirty = true;
        self.touch(e);
        true
    }

    /// Renames attribute `old` to `new` in place, keeping its value unless
    /// `value` is given. Returns whether the attribute was there.
    pub fn rename_attr(&mut self, e: El, old: &str, new: &str, value: Option<&str>) -> bool {
        let Some(a) = self.attrs_of_mut(e).iter_mut().find(|a| !a.removed && a.qname == old) else {
            return false;
        };
        a.qname = Cow::Owned(new.to_string());
        if let Some(v) = value {
            a.value = Cow::Owned(v.to_string());
        }
        a.edited = true;
        self.el_mut(e).tag_dirty = true;
        self.touch(e);
        true
    }

    /// Removes attribute `name`. Returns whether it was there.
    pub fn remove_attr(&mut self, e: El, name: &str) -> bool {
        let attrs = self.attrs_of_mut(e);
        let Some(i) = attrs.iter().position(|a| !a.removed && a.qname == name) else {
            return false;
        };
        if attrs[i].raw.is_some() {
            attrs[i].removed = true;
        } else {
            // An added attribute leaves no trace: the run closes up.
            attrs[i..].rotate_left(1);
            self.el_mut(e).attrs.len -= 1;
        }
        self.el_mut(e).tag_dirty = true;
        self.touch(e);
        true
    }

    /// Replaces the character data of an element whose children, if any,
    /// have all been removed (the text takes the whole content).
    pub fn set_text(&mut self, e: El, text: &str) -> bool {
        if self.children(e).next().is_some() {
            return false;
        }
        let el = self.el_mut(e);
        if el.text.as_deref() == Some(text) && el.children.len == 0 {
            return false;
        }
        el.text = Some(Cow::Owned(text.to_string()));
        el.text_dirty = true;
        self.touch(e);
        true
    }

    /// Adds `new` (and its children) under `parent` at `at`, indented like
    /// its neighbours and quoted like its parent. Returns the new element.
    pub fn insert(&mut self, parent: El, at: At, new: &NewEl) -> El {
        let id = El(self.els.len() as u32);
        // A prefixed name is in the namespace its own xmlns declares.
        let ns = new.qname.split_once(':').and_then(|(prefix, _)| {
            let decl = format!("xmlns:{prefix}");
            new.attrs.iter().find(|(k, _)| *k == decl).map(|(_, uri)| uri.clone())
        });
        let ns = ns.map(|uri| self.intern(&uri));
        let attrs = Run { start: self.attrs.len() as u32, len: new.attrs.len() as u32 };
        self.attrs.extend(new.attrs.iter().map(|(k, v)| Attr {
            qname: Cow::Owned(k.clone()),
            value: Cow::Owned(v.clone()),
            raw: None,
            edited: true,
            removed: false,
        }));
        self.els.push(Element {
            parent: Some(parent),
            ns,
            qname: Cow::Owned(new.qname.clone()),
            attrs,
            children: Run { start: self.kids.len() as u32, len: 0 },
            text: new.text.clone().map(Cow::Owned),
            span: None,
            removed: false,
            sibling: OnceCell::new(),
            dirty: true,
            tag_dirty: true,
            text_dirty: true,
        });
        let kids = self.kids_of(parent);
        let index = match at {
            At::First => 0,
            At::Last => kids.len(),
            At::Before(s) => kids.iter().position(|c| *c == s).unwrap_or(kids.len()),
            At::After(s) => kids.iter().position(|c| *c == s).map_or(kids.len(), |i| i + 1),
        };
        self.insert_kid(parent, index, id);
        // Text and children do not mix in libvirt XML.
        self.el_mut(parent).text = None;
        self.touch(parent);
        for child in &new.children {
            self.insert(id, At::Last, child);
        }
        id
    }

    // ----- writing -----

    /// Whitespace before `e` on its line, if `e` starts a line.
    fn indent_of(&self, e: El) -> Option<Cow<'a, str>> {
        match &self.el(e).span {
            Some(sp) => {
                let before = &self.src[..(sp.start as usize)];
                let ws = before.len() - before.trim_end_matches([' ', '\t']).len();
                let line_start = (sp.start as usize) - ws;
                if line_start == 0 || before.as_bytes()[line_start - 1] == b'\n' {
                    Some(Cow::Borrowed(&self.src[line_start..(sp.start as usize)]))
                } else {
                    None
                }
            }
            None => self.child_indent(self.el(e).parent?).map(Cow::Owned),
        }
    }

    /// Indentation for a new child line of `p`: that of its first input
    /// child that starts a line; none (inline) if its children share lines;
    /// for a childless `p`, its own plus one step.
    fn child_indent(&self, p: El) -> Option<String> {
        let mut any = false;
        for c in self.children_in_input(p) {
            any = true;
            if let Some(i) = self.indent_of(c) {
                return Some(i.into_owned());
            }
        }
        if any {
            return None;
        }
        let own = self.indent_of(p)?;
        Some(format!("{}{}", own, self.indent_step()?))
    }

    /// One step of indentation, from the root's input children; none when
    /// the document is written on one line.
    fn indent_step(&self) -> Option<String> {
        let root_indent = self.indent_of(self.root).unwrap_or_default();
        for c in self.children_in_input(self.root) {
            if let Some(i) = self.indent_of(c).filter(|i| i.len() > root_indent.len()) {
                return Some(i[root_indent.len()..].to_string());
            }
        }
        self.src.contains('\n').then(|| "  ".to_string())
    }

    fn quote_of(&self, e: El) -> u8 {
        let mut cur = Some(e);
        while let Some(c) = cur {
            if let Some(q) = self.attrs_of(c).iter().find_map(|a| a.raw.as_ref().map(|r| r.quote)) {
                return q;
            }
            cur = self.el(c).parent;
        }
        self.quote
    }

    fn write(&self, out: &mut Out) {
        let root = self.el(self.root).span.as_ref().expect("the root is from the input");
        if self.bom {
            out.push('\u{feff}');
        }
        out.push_str(&self.src[..(root.start as usize)]);
        self.write_el(self.root, out);
        out.push_str(&self.src[(root.end as usize)..]);
    }

    fn write_el(&self, e: El, out: &mut Out) {
        let el = self.el(e);
        let Some(sp) = &el.span else {
            return self.write_new(e, out);
        };
        if !el.dirty {
            out.push_str(&self.src[(sp.start as usize)..(sp.end as usize)]);
            return;
        }
        let src = self.src;
        if el.tag_dirty {
            out.push_str(&src[(sp.start as usize)..(sp.name_end as usize)]);
            let quote = self.quote_of(e);
            for a in self.attrs_of(e).iter().filter(|a| !a.removed) {
                match &a.raw {
                    Some(r) if !a.edited => out.push_str(&src[(r.lead as usize)..(r.end as usize)]),
                    Some(r) => {
                        out.push_str(&src[(r.lead as usize)..(r.name_start as usize)]);
                        push_attr(out, &a.qname, &a.value, r.quote);
                    }
                    None => {
                        out.push(' ');
                        push_attr(out, &a.qname, &a.value, quote);
                    }
                }
            }
            out.push_str(&src[(sp.attrs_end as usize)..(sp.tag_end as usize)]);
        } else {
            out.push_str(&src[(sp.start as usize)..(sp.tag_end as usize)]);
        }

        if el.text_dirty {
            let text = el.text.as_deref().unwrap_or("");
            if text.is_empty() && sp.self_closing {
                out.push_str("/>");
            } else {
                out.push('>');
                push_escaped(out, text, None);
                self.push_end_tag(e, out);
            }
            return;
        }
        let kept = self.kids_of(e).iter().any(|c| !self.el(*c).removed);
        if sp.self_closing && !kept {
            out.push_str("/>");
            return;
        }
        if !kept && self.only_space_besides_children(e) {
            // Everything inside went: close the element as `<x/>`, the
            // shape libvirt itself writes.
            out.push_str("/>");
            return;
        }
        out.push('>');
        let mut pos = sp.stag_end as usize;
        let mut new_since_last = false;
        let indent = self.child_indent(e);
        for &c in self.kids_of(e) {
            let child = self.el(c);
            match &child.span {
                Some(csp) => {
                    let gap = &src[pos..(csp.start as usize)];
                    if child.removed {
                        out.push_str(self.gap_before_removed(gap, csp.end as usize, sp.etag_start as usize));
                    } else {
                        out.push_str(gap);
                        self.write_el(c, out);
                    }
                    pos = csp.end as usize;
                    new_since_last = false;
                }
                None => {
                    if let Some(i) = &indent {
                        out.push('\n');
                        out.push_str(i);
                    }
                    self.write_new(c, out);
                    new_since_last = true;
                }
            }
        }
        let tail_end = if sp.self_closing { pos } else { sp.etag_start as usize };
        let tail = &src[pos.min(tail_end)..tail_end];
        if new_since_last && !tail.contains('\n') {
            if let Some(own) = self.indent_of(e) {
                out.push('\n');
                out.push_str(&own);
            }
        }
        out.push_str(tail);
        if sp.self_closing {
            self.push_end_tag(e, out);
        } else {
            out.push_str(&src[(sp.etag_start as usize)..(sp.end as usize)]);
        }
    }

    fn push_end_tag(&self, e: El, out: &mut Out) {
        let el = self.el(e);
        match &el.span {
            Some(sp) if !sp.self_closing => out.push_str(&self.src[(sp.etag_start as usize)..(sp.end as usize)]),
            _ => {
                out.push_str("</");
                out.push_str(&el.qname);
                out.push('>');
            }
        }
    }

    /// Is the content of `e`, its element children left out, only whitespace?
    fn only_space_besides_children(&self, e: El) -> bool {
        let el = self.el(e);
        let Some(sp) = &el.span else { return false };
        let mut pos = sp.stag_end as usize;
        for c in self.kids_of(e) {
            if let Some(csp) = &self.el(*c).span {
                if !self.src[pos..(csp.start as usize)].trim().is_empty() {
                    return false;
                }
                pos = csp.end as usize;
            }
        }
        self.src[pos..(sp.etag_start as usize)].trim().is_empty()
    }

    /// The part of `gap` to keep before a removed element that ends at
    /// `end`: if the element stood alone on its line, the line goes too.
    fn gap_before_removed<'s>(&self, gap: &'s str, end: usize, limit: usize) -> &'s str {
        let trimmed = gap.trim_end_matches([' ', '\t']);
        if !trimmed.ends_with('\n') {
            return gap;
        }
        let after = &self.src[end..limit];
        let rest = after.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with('\n') || rest.starts_with("\r\n") {
            let cut = trimmed.len() - 1;
            let cut = if trimmed[..cut].ends_with('\r') { cut - 1 } else { cut };
            &gap[..cut]
        } else {
            gap
        }
    }

    fn write_new(&self, e: El, out: &mut Out) {
        let el = self.el(e);
        let quote = self.quote_of(e);
        out.push('<');
        out.push_str(&el.qname);
        for a in self.attrs_of(e).iter().filter(|a| !a.removed) {
            out.push(' ');
            push_attr(out, &a.qname, &a.value, quote);
        }
        let kids: Vec<El> = self.children(e).collect();
        if kids.is_empty() {
            match el.text.as_deref() {
                Some(t) if !t.is_empty() => {
                    out.push('>');
                    push_escaped(out, t, None);
                    self.push_end_tag(e, out);
                }
                _ => out.push_str("/>"),
            }
            return;
        }
        out.push('>');
        let indent = self.child_indent(e);
        for c in kids {
            if let Some(i) = &indent {
                out.push('\n');
                out.push_str(i);
            }
            self.write_new(c, out);
        }
        if let Some(own) = self.indent_of(e) {
            out.push('\n');
            out.push_str(&own);
        }
        self.push_end_tag(e, out);
    }
}

impl Document<'_> {
    /// Was anything edited? If not, the output is the input.
    pub fn is_edited(&self) -> bool {
        self.el(self.root).dirty
    }

    /// Writes the document to `w` in chunks, without holding all of it.
    pub fn write_to(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let mut out = Out { buf: String::with_capacity(Out::CHUNK + 4096), sink: Some(w), err: None };
        self.write(&mut out);
        out.flush();
        out.err.map_or(Ok(()), Err)
    }
}

impl fmt::Display for Document<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Out { buf: String::with_capacity(self.src.len() + 256), sink: None, err: None };
        self.write(&mut out);
        f.write_str(&out.buf)
    }
}

/// Where the writer puts text: a string (for `to_string`), or a buffer
/// flushed to a sink every [`Out::CHUNK`] bytes (for `write_to`).
struct Out<'w> {
    buf: String,
    sink: Option<&'w mut dyn io::Write>,
    err: Option<io::Error>,
}

impl Out<'_> {
    const CHUNK: usize = 1 << 16;

    fn push_str(&mut self, s: &str) {
        self.buf.push_str(s);
        if self.sink.is_some() && self.buf.len() >= Self::CHUNK {
            self.flush();
        }
    }

    fn push(&mut self, c: char) {
        self.buf.push(c);
    }

    fn flush(&mut self) {
        if let Some(w) = self.sink.as_mut() {
            if self.err.is_none() {
                if let Err(e) = w.write_all(self.buf.as_bytes()) {
                    self.err = Some(e);
                }
            }
            self.buf.clear();
        }
    }
}

fn push_attr(out: &mut Out, name: &str, value: &str, quote: u8) {
    out.push_str(name);
    out.push('=');
    out.push(quote as char);
    push_escaped(out, value, Some(quote));
    out.push(quote as char);
}

/// Escapes `s` for text (`quote` = None) or for an attribute value quoted by
/// `quote`, where whitespace other than spaces is written as a character
/// reference so that attribute-value normalisation leaves it alone.
fn push_escaped(out: &mut Out, s: &str, quote: Option<u8>) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' if quote == Some(b'\'') => out.push_str("&apos;"),
            '"' if quote == Some(b'"') => out.push_str("&quot;"),
            '\t' if quote.is_some() => out.push_str("&#9;"),
            '\n' if quote.is_some() => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// The linear pre-scan before roxmltree: refuses the shapes the `MAX_*`
/// bounds exclude, and finds the first character reference to something
/// that is not an XML character (reported only once roxmltree has found
/// the text well-formed, so that an earlier syntax error is reported
/// first). It reads markup as roxmltree does and stops, leaving the error
/// to roxmltree, wherever the text stops being XML: roxmltree never gets
/// further than that, so everything it processes has been counted.
fn prescan(src: &str) -> Result<Option<(usize, String)>, Error> {
    let b = src.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let shape = |offset: usize, shape: Shape, limit: usize| Error::Shape { line: line_of(src, offset), shape, limit };
    // Per open element, how many namespaces it declares.
    let mut open: Vec<usize> = Vec::new();
    let mut in_scope = 0;
    let mut declared: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    let mut bad = None;
    // Most documents have no character reference at all: one SIMD search
    // spares them a search per text and attribute value.
    let references = memchr::memmem::find(b, b"&#").is_some();
    let mut i = 0;
    let after = |from: usize, end: &[u8]| {
        let found = match end {
            [one] => memchr::memchr(*one, &b[from..]),
            _ => memchr::memmem::find(&b[from..], end),
        };
        found.map(|k| from + k + end.len())
    };
    while let Some(k) = memchr::memchr(b'<', &b[i..]) {
        if references && bad.is_none() {
            bad = bad_reference(src, i, i + k);
        }
        let p = i + k;
        let rest = &b[p..];
        let next = if rest.starts_with(b"<!--") {
            after(p + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            after(p + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            after(p + 2, b"?>")
        } else if rest.starts_with(b"<!") {
            // A DTD: roxmltree refuses it before reading it.
            None
        } else if rest.starts_with(b"</") {
            in_scope -= open.pop().unwrap_or(0);
            after(p + 2, b">")
        } else {
            if open.len() >= MAX_DEPTH {
                return Err(Error::TooDeep { line: line_of(src, p), limit: MAX_DEPTH });
            }
            let mut j = p + 1;
            while j < b.len() && !is_space(b[j]) && b[j] != b'>' && b[j] != b'/' {
                j += 1;
            }
            let (mut attributes, mut declares) = (0, 0);
            let end = loop {
                while j < b.len() && is_space(b[j]) {
                    j += 1;
                }
                match b.get(j) {
                    None => break None,
                    Some(b'>') => break Some((j + 1, false)),
                    Some(b'/') => break (b.get(j + 1) == Some(&b'>')).then_some((j + 2, true)),
                    Some(_) => {}
                }
                let name_start = j;
                while j < b.len() && !is_space(b[j]) && !matches!(b[j], b'=' | b'>' | b'/') {
                    j += 1;
                }
                let name = &src[name_start..j];
                while j < b.len() && is_space(b[j]) {
                    j += 1;
                }
                if b.get(j) != Some(&b'=') {
                    break None;
                }
                j += 1;
                while j < b.len() && is_space(b[j]) {
                    j += 1;
                }
                let Some(&quote @ (b'\'' | b'"')) = b.get(j) else { break None };
                let Some(len) = memchr::memchr(quote, &b[j + 1..]) else { break None };
                let value = &src[j + 1..j + 1 + len];
                if references && bad.is_none() {
                    bad = bad_reference(src, j + 1, j + 1 + len);
                }
                j += len + 2;
                attributes += 1;
                if attributes > MAX_ATTRIBUTES {
                    return Err(shape(name_start, Shape::Attributes, MAX_ATTRIBUTES));
                }
                if name == "xmlns" || name.starts_with("xmlns:") {
                    declares += 1;
                    in_scope += 1;
                    if in_scope > MAX_NAMESPACES_IN_SCOPE {
                        return Err(shape(name_start, Shape::NamespacesInScope, MAX_NAMESPACES_IN_SCOPE));
                    }
                    if value.len() > MAX_NAMESPACE_NAME {
                        return Err(shape(name_start, Shape::NamespaceName, MAX_NAMESPACE_NAME));
                    }
                    if declared.insert((name, value)) && declared.len() > MAX_NAMESPACES {
                        return Err(shape(name_start, Shape::Namespaces, MAX_NAMESPACES));
                    }
                }
            };
            match end {
                Some((next, true)) => {
                    in_scope -= declares;
                    Some(next)
                }
                Some((next, false)) => {
                    open.push(declares);
                    Some(next)
                }
                None => None,
            }
        };
        match next {
            Some(n) => i = n,
            None => return Ok(bad),
        }
    }
    Ok(bad)
}

/// The first character reference in `src[from..to]` (text or an attribute
/// value) to a code point that is not an XML character, with its offset and
/// what is wrong. Malformed references are roxmltree's to report.
fn bad_reference(src: &str, from: usize, to: usize) -> Option<(usize, String)> {
    let b = &src.as_bytes()[..to];
    let mut i = from;
    while let Some(k) = memchr::memchr(b'&', &b[i..]) {
        let at = i + k;
        i = at + 1;
        let Some(digits) = b[at + 1..].strip_prefix(b"#") else { continue };
        let (hex, digits) = match digits.strip_prefix(b"x") {
            Some(d) => (true, d),
            None => (false, digits),
        };
        let len = digits.iter().take_while(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }).count();
        if len == 0 || digits.get(len) != Some(&b';') {
            continue;
        }
        // Leading zeros do not count against the value; more digits than
        // U+10FFFF has overflow nothing.
        let value = digits[..len].iter().fold(0u64, |v, d| {
            let d = (*d as char).to_digit(16).unwrap_or(0) as u64;
            (v * if hex { 16 } else { 10 } + d).min(u64::from(u32::MAX) + 1)
        });
        let xml_char = matches!(value, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        if !xml_char {
            let text = &src[at..at + 2 + usize::from(hex) + len + 1];
            let why = match value {
                0xD800..=0xDFFF => "a UTF-16 surrogate, not a character",
                0x110000.. => "beyond U+10FFFF, the last Unicode character",
                _ => "not a character XML allows",
            };
            return Some((at, format!("the character reference '{text}' is {why}")));
        }
    }
    None
}

/// The 1-based line and column (in characters) of a byte offset.
fn position(src: &str, offset: usize) -> (u32, u32) {
    let before = &src[..offset.min(src.len())];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (line_of(src, offset), before[line_start..].chars().count() as u32 + 1)
}

/// The XML declaration may name only UTF-8: the text is already a Rust string.
fn check_declaration(src: &str) -> Result<(), Error> {
    let Some(rest) = src.strip_prefix("<?xml") else {
        return Ok(());
    };
    let Some(end) = rest.find("?>") else {
        return Ok(());
    };
    let decl = &rest[..end];
    let Some(i) = decl.find("encoding") else {
        return Ok(());
    };
    let after = decl[i + "encoding".len()..].trim_start().trim_start_matches('=').trim_start();
    let quote = after.chars().next().unwrap_or('"');
    let name = after.get(1..).unwrap_or("").split(quote).next().unwrap_or("");
    if name.eq_ignore_ascii_case("utf-8") || name.eq_ignore_ascii_case("utf8") {
        Ok(())
    } else {
        Err(Error::Encoding(format!("the XML declaration names encoding '{name}'; xenify reads UTF-8 only")))
    }
}

fn xml_error(e: &roxmltree::Error, src: &str) -> Error {
    let pos = e.pos();
    let mut message = strip_position(&e.to_string());
    match e {
        roxmltree::Error::DtdDetected => return Error::Dtd,
        roxmltree::Error::NoRootNode => return Error::NoRoot,
        roxmltree::Error::NodesLimitReached => return Error::TooManyNodes { limit: MAX_NODES },
        roxmltree::Error::UnknownToken(_) => {
            // Say what roxmltree's "unknown token" was, where it helps.
            let at = src
                .lines()
                .nth(pos.row.saturating_sub(1) as usize)
                .and_then(|l| l.chars().nth(pos.col.saturating_sub(1) as usize));
            let first = src.trim_start().chars().next();
            let offset = offset_of(src, pos.row, pos.col);
            let root_ended = || roxmltree::Document::parse(&src[..offset]).is_ok();
            if src.trim_start().len() == src.len() - offset {
                message = format!("this is not XML: it starts with '{}'", first.unwrap_or(' '));
            } else if at == Some('<') && root_ended() {
                message = "markup after the root element ended (a second root element?)".to_string();
            }
        }
        _ => {}
    }
    Error::Malformed { line: pos.row, column: pos.col, message }
}

/// The byte offset of a 1-based line and (character) column.
fn offset_of(src: &str, row: u32, col: u32) -> usize {
    let mut offset = 0;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        if i + 1 == row as usize {
            return offset + line.char_indices().nth(col.saturating_sub(1) as usize).map_or(line.len(), |(b, _)| b);
        }
        offset += line.len();
    }
    src.len()
}

/// roxmltree's messages end in " at 3:7"; the position is reported apart.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at ") {
        Some(i) if msg[i + 4..].chars().all(|c| c.is_ascii_digit() || c == ':') => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// Whether `s` holds any of the ASCII bytes `set`: a byte loop the compiler
/// vectorises, where a `char` pattern decodes every character.
fn any_byte(s: &str, set: &[u8]) -> bool {
    s.bytes().any(|b| set.contains(&b))
}

/// Scans the start tag at `start` (its `<`) in well-formed text.
/// Its attributes are appended to `attrs`.
fn scan_start_tag<'a>(src: &'a str, start: usize, attrs: &mut Vec<Attr<'a>>) -> Option<Element<'a>> {
    let b = src.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = start + 1;
    while i < b.len() && !is_space(b[i]) && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name_end = i;
    let qname = &src[start + 1..name_end];
    let first_attr = attrs.len();
    let mut attrs_end = name_end;
    let (tag_end, self_closing) = loop {
        let lead = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        match b.get(i)? {
            b'>' => break (i, false),
            b'/' => break (i, true),
            _ => {}
        }
        let name_start = i;
        while i < b.len() && !is_space(b[i]) && b[i] != b'=' {
            i += 1;
        }
        let name = &src[name_start..i];
        while i < b.len() && b[i] != b'\'' && b[i] != b'"' {
            i += 1;
        }
        let quote = *b.get(i)?;
        let value_start = i + 1;
        let value_len = memchr::memchr(quote, &b[value_start..])?;
        let raw_value = &src[value_start..value_start + value_len];
        i = value_start + value_len + 1;
        attrs_end = i;
        let value =
            if any_byte(raw_value, b"&\t\n\r") { Cow::Owned(decode_attr(raw_value)) } else { Cow::Borrowed(raw_value) };
        attrs.push(Attr {
            qname: Cow::Borrowed(name),
            value,
            raw: Some(AttrSpan { lead: lead as u32, name_start: name_start as u32, end: i as u32, quote }),
            edited: false,
            removed: false,
        });
    };
    let stag_end = if self_closing { tag_end + 2 } else { tag_end + 1 };
    Some(Element {
        parent: None,
        ns: None,
        qname: Cow::Borrowed(qname),
        attrs: Run { start: first_attr as u32, len: (attrs.len() - first_attr) as u32 },
        // Counted during the scan, laid out after it.
        children: Run::default(),
        text: None,
        // The end tag is filled in when the scan reaches it.
        span: Some(Span {
            start: start as u32,
            name_end: name_end as u32,
            attrs_end: attrs_end as u32,
            tag_end: tag_end as u32,
            stag_end: stag_end as u32,
            etag_start: stag_end as u32,
            end: stag_end as u32,
            self_closing,
        }),
        removed: false,
        sibling: OnceCell::new(),
        dirty: false,
        tag_dirty: false,
        text_dirty: false,
    })
}

/// Decodes character data as an XML parser does: references resolved,
/// CDATA sections unwrapped, comments and processing instructions left out,
/// line ends normalised to `\n`.
fn decode_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['<', '&', '\r']) {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        let (skip, text): (usize, &str) = if let Some(cdata) = r.strip_prefix("<![CDATA[") {
            let end = cdata.find("]]>").unwrap_or(cdata.len());
            (9 + end + 3, &cdata[..end])
        } else if r.starts_with("<!--") {
            (r[4..].find("-->").map_or(r.len(), |e| 4 + e + 3), "")
        } else if r.starts_with("<?") {
            (r[2..].find("?>").map_or(r.len(), |e| 2 + e + 2), "")
        } else if r.starts_with("\r\n") {
            (2, "\n")
        } else if r.starts_with('\r') {
            (1, "\n")
        } else if r.starts_with('&') {
            let end = r.find(';').unwrap_or(r.len() - 1);
            match reference(&r[1..end]) {
                Some(c) => {
                    out.push(c);
                    (end + 1, "")
                }
                None => (end + 1, &r[..end + 1]),
            }
        } else {
            (1, "<")
        };
        out.push_str(&text.replace("\r\n", "\n"));
        rest = &r[skip.min(r.len())..];
    }
    out.push_str(rest);
    out
}

/// The character an entity or character reference (without `&` and `;`) stands for.
fn reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => name
            .strip_prefix("#x")
            .map(|h| u32::from_str_radix(h, 16))
            .or_else(|| name.strip_prefix('#').map(|d| d.parse::<u32>()))
            .and_then(Result::ok)
            .and_then(char::from_u32),
    }
}

fn line_of(src: &str, offset: usize) -> u32 {
    src[..offset.min(src.len())].matches('\n').count() as u32 + 1
}

/// Decodes an attribute value the way an XML parser does: references
/// resolved, literal tabs and line ends turned into spaces. roxmltree has
/// already rejected anything malformed and there is no DTD, so only the five
/// predefined entities and character references can occur.
fn decode_attr(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '\t', '\n', '\r']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if c != b'&' {
            // "\r\n" is one line end.
            out.push(' ');
            rest = if rest[i..].starts_with("\r\n") { &rest[i + 2..] } else { &rest[i + 1..] };
            continue;
        }
        let end = rest[i..].find(';').map_or(rest.len(), |k| i + k);
        let ch = reference(&rest[i + 1..end]);
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..(end + 1).min(rest.len())]),
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_comment_opened_by_lt_bang_dash_dash_gt_hides_what_follows() {
        // `<!-->` opens a comment; its end is searched after the opening.
        let doc = Document::parse("<a><!--><b/>--><c/></a>").unwrap();
        let kids: Vec<&str> = doc.children(doc.root()).map(|c| doc.qname(c)).collect();
        assert_eq!(kids, ["c"]);
    }
    use super::*;

    fn edit(src: &str, f: impl FnOnce(&mut Document)) -> String {
        let mut doc = Document::parse(src).unwrap();
        f(&mut doc);
        doc.to_string()
    }

    #[test]
    fn round_trip_keeps_every_byte() {
        let src = "\u{feff}<?xml version='1.0' encoding='UTF-8'?>\n<!-- c -->\n<a x = \"1\"\n   y='&apos;'><b/>\r\n<![CDATA[<x>]]><c>&amp;</c></a>\n";
        assert_eq!(Document::parse(src).unwrap().to_string(), src);
    }

    #[test]
    fn removing_an_element_takes_its_line() {
        let src = "<a>\n  <b/>\n  <c/>\n  <d/>\n</a>";
        let out = edit(src, |d| {
            let c = d.child(d.root(), "c").unwrap();
            d.remove(c)
        });
        assert_eq!(out, "<a>\n  <b/>\n  <d/>\n</a>");
    }

    #[test]
    fn removing_an_element_inline_leaves_the_line() {
        let out = edit("<a><b/><c/></a>", |d| {
            let b = d.child(d.root(), "b").unwrap();
            d.remove(b)
        });
        assert_eq!(out, "<a><c/></a>");
    }

    #[test]
    fn removing_every_child_closes_the_element() {
        let out = edit("<a>\n  <b>\n    <c/>\n  </b>\n</a>", |d| {
            let c = d.find(d.root(), &["b", "c"]).unwrap();
            d.remove(c)
        });
        assert_eq!(out, "<a>\n  <b/>\n</a>");
    }

    #[test]
    fn attribute_edits_keep_quotes_and_neighbours() {
        let src = "<a>\n  <d x=\"1\"\n     y='2' z=\"3\"/>\n</a>";
        let out = edit(src, |d| {
            let e = d.child(d.root(), "d").unwrap();
            d.set_attr(e, "y", "it's");
            d.remove_attr(e, "z");
            d.set_attr(e, "w", "<new>");
        });
        assert_eq!(out, "<a>\n  <d x=\"1\"\n     y='it&apos;s' w=\"&lt;new&gt;\"/>\n</a>");
    }

    #[test]
    fn entities_in_values_are_read_decoded_and_not_escaped_twice() {
        let src = "<a n='&apos;x&#x27;' m=\"&amp;\"/>";
        let out = edit(src, |d| {
            let r = d.root();
            assert_eq!(d.attr(r, "n"), Some("'x'"));
            let m = d.attr(r, "m").unwrap().to_string();
            d.set_attr(r, "m", &m);
            d.set_attr(r, "n", "'y'");
        });
        assert_eq!(out, "<a n='&apos;y&apos;' m=\"&amp;\"/>");
    }

    #[test]
    fn new_elements_take_the_indentation_of_their_neighbours() {
        let src =
            "<domain>\n    <features>\n        <acpi/>\n    </features>\n    <cputune></cputune>\n    <x/>\n</domain>";
        let out = edit(src, |d| {
            let r = d.root();
            let f = d.child(r, "features").unwrap();
            d.insert(f, At::Last, &NewEl::new("apic"));
            let c = d.child(r, "cputune").unwrap();
            d.insert(c, At::Last, &NewEl::new("shares").text("10"));
            let x = d.child(r, "x").unwrap();
            d.insert(x, At::Last, &NewEl::new("m").child(NewEl::new("n").attr("k", "v")));
        });
        assert_eq!(
            out,
            "<domain>\n    <features>\n        <acpi/>\n        <apic/>\n    </features>\n    <cputune>\n        <shares>10</shares>\n    </cputune>\n    <x>\n        <m>\n            <n k='v'/>\n        </m>\n    </x>\n</domain>"
        );
    }

    #[test]
    fn paths_index_repeated_names_and_devices() {
        let src = "<domain><devices><disk><target/></disk><disk/><emulator/></devices><os><boot/></os></domain>";
        let doc = Document::parse(src).unwrap();
        let devices = doc.child(doc.root(), "devices").unwrap();
        let disks: Vec<El> = doc.children_named(devices, "disk").collect();
        let target = doc.child(disks[0], "target").unwrap();
        assert_eq!(doc.path(target), "/domain/devices/disk[1]/target");
        assert_eq!(doc.path(disks[1]), "/domain/devices/disk[2]");
        assert_eq!(doc.path(doc.child(devices, "emulator").unwrap()), "/domain/devices/emulator[1]");
        assert_eq!(doc.attr_path(doc.find(doc.root(), &["os", "boot"]).unwrap(), "dev"), "/domain/os/boot/@dev");
    }

    #[test]
    fn text_and_namespaces_are_read_as_an_xml_parser_reads_them() {
        let src = "<d xmlns:q='urn:q'><a>x&lt;<![CDATA[<y>]]><!-- c -->z&#x41;\r\n</a><q:b/><c xmlns='urn:c'><e/></c><f/></d>";
        let doc = Document::parse(src).unwrap();
        let r = doc.root();
        let a = doc.child(r, "a").unwrap();
        assert_eq!(
            doc.text(a),
            roxmltree::Document::parse(src)
                .unwrap()
                .root_element()
                .first_element_child()
                .map(|n| { n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect::<String>() })
                .as_deref()
        );
        assert_eq!(doc.text(a), Some("x<<y>zA\n"));
        let kids: Vec<El> = doc.children(r).collect();
        assert_eq!(doc.namespace(kids[1]), Some("urn:q"));
        assert_eq!(doc.namespace(kids[2]), Some("urn:c"));
        assert_eq!(doc.namespace(doc.children(kids[2]).next().unwrap()), Some("urn:c"));
        assert_eq!(doc.namespace(kids[3]), None);
        assert!(doc.is(kids[3], "f") && !doc.is(kids[2], "c"));
    }

    #[test]
    fn references_to_no_character_are_malformed_wherever_they_are() {
        let refused = |src: &str| match Document::parse(src) {
            Err(Error::Malformed { line, column, message }) => (line, column, message),
            other => panic!("{src}: {:?}", other.map(|d| d.to_string())),
        };
        // In text beside elements, in an attribute, decimal, with leading zeros.
        assert_eq!(refused("<a>\n x&#xDFFF;<b/></a>").0, 2);
        assert_eq!(refused("<a b='&#55296;'/>").1, 7);
        assert!(refused("<a>&#x00110000;</a>").2.contains("'&#x00110000;' is beyond U+10FFFF"));
        // What is no reference, or a reference to a character, is fine.
        for ok in [
            "<a>&#x0000000041;&#9;&#xFFFD;&#x10FFFF;</a>",
            "<a><!-- &#xD800; --><![CDATA[&#xD800;]]></a>",
            "<a>&amp;#xD800;</a>",
        ] {
            assert!(Document::parse(ok).is_ok(), "{ok}");
        }
        // An earlier syntax error is reported first.
        assert!(refused("<a><b></a>&#xD800;").2.contains("expected 'b' tag"));
    }

    #[test]
    fn a_second_byte_order_mark_is_malformed() {
        assert!(matches!(Document::parse("\u{feff}\u{feff}<a/>"), Err(Error::Malformed { line: 1, column: 1, .. })));
        assert!(Document::parse("\u{feff}<a/>").is_ok());
    }

    #[test]
    fn refuses_dtd_other_encodings_and_deep_nesting() {
        assert!(matches!(Document::parse("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>"), Err(Error::Dtd)));
        assert!(matches!(Document::parse("<?xml version='1.0' encoding='ISO-8859-1'?><a/>"), Err(Error::Encoding(_))));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(Document::parse(&deep), Err(Error::TooDeep { .. })));
    }
}
