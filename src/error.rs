//! Why a document could not be read. A refusal (the document is fine but
//! cannot be made Xen-safe) is not an error: it is a finding.

use std::fmt;

/// Documents larger than this are refused before parsing: a domain is a few
/// tens of KiB, and the bound keeps a hook's memory small whatever it is fed.
pub const DEFAULT_SIZE_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    TooLarge {
        size: usize,
        limit: usize,
    },
    Empty,
    Encoding(String),
    Dtd,
    NoRoot,
    Malformed {
        line: u32,
        column: u32,
        message: String,
    },
    TooManyNodes {
        limit: u32,
    },
    TooDeep {
        line: u32,
        limit: usize,
    },
    /// A shape no libvirt document has, refused before the well-formedness
    /// check, whose cost would grow faster than the input with it.
    Shape {
        line: u32,
        shape: Shape,
        limit: usize,
    },
    WrongRoot {
        name: String,
    },
    /// A root element in a namespace: libvirt's elements have none.
    ForeignRoot {
        name: String,
        namespace: String,
    },
    /// A root that does not fit where the document comes from (a device at
    /// a VM start, a domain at a hot-plug).
    Unexpected {
        name: String,
        expected: &'static str,
    },
}

/// The shapes [`Error::Shape`] bounds (limits in `doc.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Attributes (namespace declarations included) on one element.
    Attributes,
    /// Namespace declarations in scope at one element.
    NamespacesInScope,
    /// Different namespace declarations (prefix and name) in the document.
    Namespaces,
    /// Bytes in one namespace name (URI).
    NamespaceName,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge { limit, .. } => {
                write!(f, "the document is larger than the limit of {limit} bytes ({} MiB); nothing was parsed", limit >> 20)
            }
            Error::Empty => write!(f, "the document is empty"),
            Error::Encoding(why) => write!(f, "{why}"),
            Error::Dtd => write!(
                f,
                "the document has a DTD (<!DOCTYPE>); xenify refuses DTDs and expands no entities, and libvirt writes none"
            ),
            Error::NoRoot => write!(f, "no root element: this is not XML"),
            Error::Malformed { line: 0, message, .. } => write!(f, "malformed XML: {message}"),
            Error::Malformed { line, column: 0, message } => write!(f, "malformed XML at line {line}: {message}"),
            Error::Malformed { line, column, message } => write!(f, "malformed XML at line {line}, column {column}: {message}"),
            Error::TooManyNodes { limit } => {
                write!(f, "the document has more than {limit} XML nodes; this is not a libvirt document")
            }
            Error::TooDeep { line, limit } => {
                write!(f, "elements nested deeper than {limit} levels (at line {line}); this is not a libvirt document")
            }
            Error::Shape { line, shape, limit } => {
                let what = match shape {
                    Shape::Attributes => format!("an element with more than {limit} attributes"),
                    Shape::NamespacesInScope => format!("more than {limit} namespace declarations in scope"),
                    Shape::Namespaces => format!("more than {limit} different namespace declarations"),
                    Shape::NamespaceName => format!("a namespace name longer than {limit} bytes"),
                };
                write!(f, "{what} (at line {line}); this is not a libvirt document")
            }
            Error::ForeignRoot { name, namespace } => write!(
                f,
                "the root element <{name}> is in the namespace '{namespace}'; libvirt's <domain> and device elements are in no namespace"
            ),
            Error::Unexpected { name, expected } => {
                write!(f, "the root element is <{name}>, but this hook point hands over {expected}")
            }
            Error::WrongRoot { name } => write!(
                f,
                "the root element is <{name}>, not <domain> or a device element (<disk>, <interface>, <hostdev>, …)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Checks raw bytes before parsing: size, then encoding. UTF-8 with or
/// without a byte order mark is accepted; UTF-16 and anything else is not.
pub fn decode(bytes: &[u8], limit: usize) -> Result<&str, Error> {
    if bytes.len() > limit {
        return Err(Error::TooLarge { size: bytes.len(), limit });
    }
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) || looks_utf16(bytes) {
        return Err(Error::Encoding(
            "the document is UTF-16; xenify reads UTF-8 only (libvirt and Vdsm write UTF-8)".into(),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        Error::Encoding(format!(
            "the document is not UTF-8: byte 0x{:02x} at offset {at} (line {line}) is not valid UTF-8",
            bytes[at]
        ))
    })?;
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(Error::Empty);
    }
    Ok(text)
}

/// UTF-16 without a byte order mark: `<` next to a NUL byte at the start.
fn looks_utf16(bytes: &[u8]) -> bool {
    matches!(bytes, [b'<', 0, ..] | [0, b'<', ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_size_then_encoding() {
        assert_eq!(decode(b"<a/>", 3), Err(Error::TooLarge { size: 4, limit: 3 }));
        assert_eq!(decode(b" \n\t", 100), Err(Error::Empty));
        assert!(matches!(decode(b"\xff\xfe<\0a\0", 100), Err(Error::Encoding(m)) if m.contains("UTF-16")));
        assert!(matches!(decode(b"<a>\xe9</a>", 100), Err(Error::Encoding(m)) if m.contains("offset 3")));
        assert_eq!(decode("\u{feff}<a/>".as_bytes(), 100), Ok("\u{feff}<a/>"));
    }
}
