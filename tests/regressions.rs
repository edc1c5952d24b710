//! Inputs the fuzzer (fuzz/) found to break an invariant, kept so that the
//! fix stays: each must be refused or converted without a panic, and a
//! conversion must be lossless, idempotent and explain every loss.

mod common;

#[test]
fn fuzzer_findings_stay_fixed() {
    let dir = common::root().join("tests/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let label = common::label(&path);
        seen += 1;
        let Ok(text) = xenify::error::decode(&bytes, xenify::error::DEFAULT_SIZE_LIMIT) else { continue };
        let all: Vec<&xenify::Pass> = xenify::ALL.iter().collect();
        // check() asserts the loss check and idempotence on a conversion.
        let _ = common::check(&label, text, &all, &xenify::Policy::accepting_all());
    }
    assert!(seen >= 12, "the regression inputs are missing");
}
