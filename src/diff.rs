//! Unified diffs of input to output, for `--diff` and the snapshots.

use std::time::Duration;

/// How long the line diff may search for the smallest diff. Myers' diff
/// costs time in proportion to the input times the number of changed lines,
/// so a 16 MiB domain changed on every other line would take many minutes;
/// past this deadline the rest is written as larger hunks, still a correct
/// diff, and the cost stays linear. A real domain's diff takes well under a
/// millisecond.
pub const DEADLINE: Duration = Duration::from_millis(500);

/// A unified diff with three lines of context; empty when nothing changed.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::configure()
        .timeout(DEADLINE)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .missing_newline_hint(true)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a unified diff to `old`: what `patch` would make of it.
    fn apply(old: &str, diff: &str) -> String {
        let old: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut at = 0;
        let mut lines = diff.split_inclusive('\n').skip(2).peekable();
        while let Some(header) = lines.next() {
            let from: usize = header.trim_start_matches("@@ -").split([',', ' ']).next().unwrap().parse().unwrap();
            // A hunk of an empty range names the line before it.
            let start = from.saturating_sub(1);
            out.extend(old[at..start].iter().copied());
            at = start;
            while let Some(l) = lines.next_if(|l| !l.starts_with("@@")) {
                let no_newline = lines.next_if(|n| n.starts_with('\\')).is_some();
                let text = if no_newline { l[1..].trim_end_matches('\n') } else { &l[1..] };
                match &l[..1] {
                    " " => {
                        out.push_str(text);
                        at += 1;
                    }
                    "-" => at += 1,
                    _ => out.push_str(text),
                }
            }
        }
        out.extend(old[at..].iter().copied());
        out
    }

    #[test]
    fn a_diff_applies_to_its_input() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nB\nc\nd\ne\nf\ng\nh\nI\nj\nk";
        assert_eq!(apply(old, &unified(old, new, "a", "b")), new);
    }

    #[test]
    fn a_document_changed_throughout_still_gets_a_correct_diff() {
        // Every other line changed, 20,000 lines: past the deadline, where
        // the rest is written as larger hunks.
        let old: String = (0..20_000).map(|i| format!("<disk n='{}'/>\n", i % 7)).collect();
        let new: String =
            (0..20_000).map(|i| format!("<disk n='{}'/>\n", if i % 2 == 0 { 7 } else { i % 7 })).collect();
        let diff = unified(&old, &new, "a/x", "b/x");
        assert_eq!(apply(&old, &diff), new);
    }
}
