//! Edits of the top-level members of a JSON object, spliced into the text
//! Vdsm wrote: a changed member's value is replaced, a new member goes
//! before the closing brace, and every other byte stays as it was (so no
//! number is re-formatted and no key reordered). The text must be valid
//! JSON (checked with serde_json first), and so is the result (checked again).

use std::ops::Range;

use serde_json::Value;

/// A JSON object's text and where each top-level member's value lies.
#[derive(Debug)]
pub struct Object<'a> {
    text: &'a str,
    /// Each member's key and the byte range of its value, in order.
    members: Vec<(String, Range<usize>)>,
    /// The offset of the closing brace.
    close: usize,
    /// The parsed value, to read members by key.
    value: serde_json::Map<String, Value>,
}

impl<'a> Object<'a> {
    pub fn parse(text: &'a str) -> Result<Object<'a>, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("the file is not JSON: {e}"))?;
        let Value::Object(value) = value else {
            return Err("the file holds JSON, but not an object".into());
        };
        let mut scan = Scanner { text: text.as_bytes(), at: 0 };
        scan.space();
        scan.expect(b'{')?;
        let mut members = Vec::new();
        scan.space();
        if scan.peek() == Some(b'}') {
            return Ok(Object { text, members, close: scan.at, value });
        }
        loop {
            scan.space();
            let key_start = scan.at;
            scan.string()?;
            let key: String = serde_json::from_str(&text[key_start..scan.at]).map_err(|e| e.to_string())?;
            scan.space();
            scan.expect(b':')?;
            scan.space();
            let start = scan.at;
            scan.value()?;
            members.push((key, start..scan.at));
            scan.space();
            match scan.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(Object { text, members, close: scan.at - 1, value }),
                _ => return Err(format!("unexpected byte at offset {} of the JSON object", scan.at)),
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key)
    }

    /// The text with `edits` (key, value) applied: members that exist get the
    /// new value (every occurrence of a repeated key), the others are added at
    /// the end in the order given.
    pub fn with(&self, edits: &[(&str, Value)]) -> Result<String, String> {
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut from = 0;
        for (key, range) in &self.members {
            if let Some((_, v)) = edits.iter().find(|(k, _)| k == key) {
                out.push_str(&self.text[from..range.start]);
                out.push_str(&v.to_string());
                from = range.end;
            }
        }
        out.push_str(&self.text[from..self.close]);
        for (key, v) in edits.iter().filter(|(k, _)| !self.value.contains_key(*k)) {
            let separator = if self.members.is_empty() && out.trim_end().ends_with('{') { "" } else { ", " };
            out.push_str(&format!("{separator}{}: {v}", Value::String(key.to_string())));
        }
        out.push_str(&self.text[self.close..]);
        // Never hand Vdsm something json.loads would refuse.
        match serde_json::from_str::<Value>(&out) {
            Ok(Value::Object(m)) if edits.iter().all(|(k, v)| m.get(*k) == Some(v)) => Ok(out),
            _ => Err("editing the JSON object went wrong; the file is left as it was (please report this bug)".into()),
        }
    }
}

struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.at += usize::from(c.is_some());
        c
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.next() {
            Some(got) if got == c => Ok(()),
            _ => Err(format!("expected '{}' at offset {} of the JSON object", c as char, self.at)),
        }
    }

    /// Past a string, its quotes included.
    fn string(&mut self) -> Result<(), String> {
        self.expect(b'"')?;
        loop {
            match self.next() {
                Some(b'\\') => {
                    self.next();
                }
                Some(b'"') => return Ok(()),
                Some(_) => {}
                None => return Err("a JSON string does not end".into()),
            }
        }
    }

    /// Past one value of any kind.
    fn value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        Some(b'"') => self.string()?,
                        Some(b'{' | b'[') => {
                            depth += 1;
                            self.at += 1;
                        }
                        Some(b'}' | b']') => {
                            depth -= 1;
                            self.at += 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        Some(_) => self.at += 1,
                        None => return Err("a JSON value does not end".into()),
                    }
                }
            }
            Some(_) => {
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                    self.at += 1;
                }
                Ok(())
            }
            None => Err("a JSON value is missing".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_edited_values_change_and_new_members_go_last() {
        let text = r#"{"memSize": "3822", "nested": {"a": [1, "}]", {"b": "\"x"}]}, "big": 123456789012345678901234567890, "f": 1e-05}"#;
        let o = Object::parse(text).unwrap();
        assert_eq!(o.get("memSize"), Some(&json!("3822")));
        let out = o.with(&[("memSize", json!("261850")), ("kvmEnabled", json!("true"))]).unwrap();
        assert_eq!(
            out,
            r#"{"memSize": "261850", "nested": {"a": [1, "}]", {"b": "\"x"}]}, "big": 123456789012345678901234567890, "f": 1e-05, "kvmEnabled": "true"}"#
        );
    }

    #[test]
    fn an_empty_object_and_whitespace_are_kept() {
        let o = Object::parse(" {\n} \n").unwrap();
        assert_eq!(o.with(&[("a", json!(1))]).unwrap(), " {\n\"a\": 1} \n");
        let o = Object::parse("{ \"x\" : [ ] ,\"y\":2 }").unwrap();
        assert_eq!(o.with(&[("x", json!(["q"]))]).unwrap(), "{ \"x\" : [\"q\"] ,\"y\":2 }");
    }

    #[test]
    fn a_repeated_key_is_edited_everywhere() {
        let o = Object::parse(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(o.with(&[("a", json!(3))]).unwrap(), r#"{"a": 3, "a": 3}"#);
    }

    #[test]
    fn not_json_or_not_an_object_is_an_error() {
        assert!(Object::parse("{\"a\": ").unwrap_err().starts_with("the file is not JSON"));
        assert!(Object::parse("").unwrap_err().starts_with("the file is not JSON"));
        assert_eq!(Object::parse("[1]").err().unwrap(), "the file holds JSON, but not an object");
    }

    #[test]
    fn escaped_keys_are_compared_decoded() {
        let o = Object::parse(r#"{"mem\u0053ize": "1"}"#).unwrap();
        assert_eq!(o.with(&[("memSize", json!("2"))]).unwrap(), r#"{"mem\u0053ize": "2"}"#);
    }
}
