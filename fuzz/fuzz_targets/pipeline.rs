//! Arbitrary bytes through the whole xenify pipeline, every loss accepted.
//!
//! Checks, for every input that decodes as text:
//! - no panic anywhere in decode, parse, the passes or serialisation;
//! - the parser round-trips losslessly: `Document::parse(t).to_string() == t`;
//! - a converted output parses again, and converting it again gives the
//!   same output back (the pipeline is idempotent);
//! - the chunked writer (`Conversion::write_output`) writes the same bytes
//!   as `Conversion::output`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = xenify::error::decode(data, xenify::error::DEFAULT_SIZE_LIMIT) else { return };

    if let Ok(doc) = xenify::Document::parse(text) {
        assert_eq!(doc.to_string(), text, "parse + serialise is not lossless");
    }

    let policy = xenify::Policy::accepting_all();
    let Ok(c) = xenify::convert_all(text, &policy) else { return };
    let output = c.output();
    let mut written = Vec::new();
    c.write_output(&mut written).expect("writing to a Vec cannot fail");
    assert_eq!(written, output.as_deref().unwrap_or("").as_bytes(), "write_output and output disagree");
    if let Some(out) = output {
        if let Err(e) = xenify::Document::parse(&out) {
            panic!("the output does not parse again: {e}\n--- output ---\n{out}");
        }
        let again = xenify::convert_all(&out, &policy).expect("output parses");
        assert_eq!(again.output().as_deref(), Some(out.as_str()), "converting the output again changed it");
    }
});
