//! The README's tables of passes and loss ids are derived from the library's
//! own lists; these tests fail when either drifts.

mod common;

use xenify::{Loss, ALL};

fn section(readme: &str, name: &str) -> String {
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("<!-- {name}:end -->");
    let from = readme.find(&start).unwrap_or_else(|| panic!("README has no {name} section")) + start.len();
    let to = readme[from..].find(&end).unwrap() + from;
    readme[from..to].to_string()
}

fn readme() -> String {
    std::fs::read_to_string(common::root().join("README.md")).unwrap()
}

#[test]
fn readme_lists_every_pass_in_pipeline_order() {
    let mut table = String::from("| # | pass | what it does |\n| --- | --- | --- |\n");
    for (i, p) in ALL.iter().enumerate() {
        table.push_str(&format!("| {} | `{}` | {} |\n", i + 1, p.name, p.summary.replace('<', "&lt;")));
    }
    let shown = section(&readme(), "passes");
    assert!(
        shown == table,
        "README.md's passes table is not passes::ALL.\n{}\nThe table (between <!-- passes:start --> and <!-- passes:end -->) should read:\n{table}",
        common::adding_a_pass()
    );
}

/// Issue 12 item 9: the checklist the failing tests print names the five places.
#[test]
fn adding_a_pass_lists_five_places() {
    let list = common::adding_a_pass();
    let items: Vec<&str> = list.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(items.len(), 5, "{list}");
    for place in ["src/passes/<name>.rs", "mod <name>;", "`ALL`", "fixtures/passes/<name>/", "README.md"] {
        assert!(list.contains(place), "the checklist does not name {place}: {list}");
    }
    assert!(list.contains("at least two cases"), "{list}");
    let readme = readme();
    assert!(readme.contains("cargo install cargo-insta --locked"), "README must say how to get cargo insta");
    assert!(readme.contains("Every pass folder needs at least two cases"), "README must state the two-case minimum");
}

/// Issue 12 item 4: the rule by which policy sources combine is stated in
/// the same words in the README, xenify.toml(5) and the shipped file.
#[test]
fn the_merge_rule_is_stated_in_the_same_words_everywhere() {
    let rule = xenify::policy::MERGE_RULE;
    let readme = readme();
    let quoted = readme.split("<!-- checked: merge-rule -->\n").nth(1).expect("README quotes the merge rule");
    assert_eq!(quoted.lines().next().unwrap(), format!("> {rule}"));
    let shipped = std::fs::read_to_string(common::root().join("hooks/xenify.toml")).unwrap();
    assert!(
        shipped.contains(&xenify::policy::wrap_comment(rule, 80)),
        "hooks/xenify.toml does not state the merge rule"
    );
    let dir = generated("man", "rule");
    // roff escapes: \- for a hyphen, \*(Aq for an apostrophe.
    let page = std::fs::read_to_string(dir.join("xenify.toml.5")).unwrap().replace("\\-", "-").replace("\\*(Aq", "'");
    assert!(page.contains(rule), "xenify.toml(5) does not state the merge rule");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 12 item 9: the fuzz target is formatted as rustfmt.toml says. It is
/// its own workspace, so `cargo fmt` at the top never reaches it.
#[test]
fn the_fuzz_target_is_formatted() {
    let root = common::root();
    let mut files = Vec::new();
    for e in std::fs::read_dir(root.join("fuzz/fuzz_targets")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
    assert_formatted(
        std::process::Command::new("rustfmt").args(["--check", "--edition", "2021"]).args(&files).current_dir(&root),
        "cd fuzz && cargo fmt",
    );
}

/// Runs a `--check` formatter and fails with what it would change.
fn assert_formatted(cmd: &mut std::process::Command, fix: &str) {
    let out = cmd.output().expect("rustfmt is needed (rustup component add rustfmt)");
    assert!(
        out.status.success(),
        "not formatted ({fix}), or rustfmt is missing (rustup component add rustfmt):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_list_of_all_loss_ids_is_complete() {
    // Runs that accept every loss (make interop, make bench, the tests)
    // name the ids: each list must hold every id Loss::ALL has.
    let ids: Vec<&str> = Loss::ALL.iter().map(|l| l.id()).collect();
    assert_eq!(common::ALL_LOSSES.split(',').collect::<Vec<_>>(), ids, "tests/common/mod.rs");
    for (file, quoted) in [
        ("Makefile", false),
        ("tests/interop/vdsm.py", false),
        ("benches/run.py", false),
        ("fixtures/interop-pvh.toml", true),
    ] {
        let text = std::fs::read_to_string(common::root().join(file)).unwrap();
        let list =
            if quoted { ids.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ") } else { ids.join(",") };
        assert!(text.contains(&list), "{file} does not accept every loss id: {list}");
    }
}

#[test]
fn the_crate_is_formatted() {
    assert_formatted(
        std::process::Command::new(env!("CARGO")).args(["fmt", "--check"]).current_dir(common::root()),
        "cargo fmt",
    );
}

#[test]
fn readme_lists_every_loss_id() {
    let mut table = String::from("| id | what accepting it costs |\n| --- | --- |\n");
    for l in Loss::ALL {
        table.push_str(&format!("| `{}` | {} |\n", l.id(), l.consequence()));
    }
    assert_eq!(section(&readme(), "losses"), table);
}

#[test]
fn readme_documents_every_policy_key() {
    let readme = readme();
    for k in xenify::policy::KEYS {
        assert!(readme.contains(&format!("| `{}` |", k.name)), "README does not document policy key {}", k.name);
    }
}

#[test]
fn the_shipped_policy_file_is_the_generated_one() {
    let shipped = std::fs::read_to_string(common::root().join("hooks/xenify.toml")).unwrap();
    assert_eq!(shipped, xenify::policy::default_file(), "regenerate with: xenify generate config > hooks/xenify.toml");
}

fn generated(what: &str, name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("generated-{what}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_xenify")).args(["generate", what]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// The page as `man -l` shows it, plain text.
fn render_man(page: &std::path::Path) -> String {
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man(1) is needed to render the generated pages");
    assert!(out.status.success(), "man -l {}: {}", page.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // Drop overstrike bold/underline, should the pager keep it.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn man_pages_cover_every_subcommand_key_and_loss_id() {
    let dir = generated("man", "pages");
    let mut pages: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "xenify-check.1",
            "xenify-convert.1",
            "xenify-doctor.1",
            "xenify-hook.1",
            "xenify-passes.1",
            "xenify.1",
            "xenify.toml.5"
        ]
    );
    let top = render_man(&dir.join("xenify.1"));
    for sub in ["convert", "passes", "check", "hook", "doctor"] {
        assert!(top.contains(&format!("xenify-{sub}(1)")), "xenify(1) does not point at xenify-{sub}(1)");
    }
    assert!(!top.contains("generate"), "the hidden generate command stays out of the manual");
    assert!(top.contains("EXIT STATUS") && top.contains("/usr/libexec/vdsm/hooks/POINT/50_xenify"));
    let convert = render_man(&dir.join("xenify-convert.1"));
    for flag in
        ["--only", "--skip", "--accept", "--config", "--set", "--report", "--report-file", "--in-place", "--diff"]
    {
        assert!(convert.contains(flag), "xenify-convert(1) lacks {flag}");
    }
    // Issue 12 item 8: the synopsis names each option's value.
    let synopsis: String =
        convert.split("DESCRIPTION").next().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    for usage in
        ["[-o|--output OUTPUT]", "[--only PASS,…]", "[--accept ID,…]", "[--set KEY=VALUE]", "[--in-place]", "[INPUT]"]
    {
        assert!(synopsis.contains(usage), "xenify-convert(1)'s synopsis lacks {usage}: {synopsis}");
    }
    // The hook's exit codes are its own: 0 and 2, and 1 only at the JSON points.
    let hook = render_man(&dir.join("xenify-hook.1"));
    let status = hook.split("EXIT STATUS").nth(1).unwrap().split("SEE ALSO").next().unwrap();
    let codes: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("       ")?.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["0", "1", "2"], "xenify-hook(1) EXIT STATUS: {status}");
    let squeezed = status.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(squeezed.contains("1 Only at the JSON points"), "xenify-hook(1) EXIT STATUS: {status}");
    let config = render_man(&dir.join("xenify.toml.5"));
    let squeezed = config.split_whitespace().collect::<Vec<_>>().join(" ");
    for k in xenify::policy::KEYS {
        assert!(config.contains(&format!("{} = {}", k.name, k.values)), "xenify.toml(5) lacks key {}", k.name);
    }
    for l in Loss::ALL {
        assert!(config.contains(&format!("\n       {}", l.id())), "xenify.toml(5) lacks loss id {}", l.id());
        let first_words: String = l.consequence().split(' ').skip(1).take(4).collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(&first_words), "xenify.toml(5) lacks what accepting {} costs", l.id());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// What bash offers for `xenify WORDS…` with the generated completion.
fn complete_bash(dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _xenify xenify '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        dir.join("xenify.bash").display(),
        array.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = std::process::Command::new("bash").args(["--norc", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn bash_loads_the_generated_completion() {
    let dir = generated("completions", "bash");
    for file in ["xenify.bash", "_xenify", "xenify.fish"] {
        assert!(dir.join(file).is_file(), "no {file}");
    }
    let script = format!("source {}; complete -p xenify", dir.join("xenify.bash").display());
    let out = std::process::Command::new("bash").args(["--norc", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("complete ") && stdout.trim_end().ends_with("-F _xenify xenify"), "{stdout}");
    assert_eq!(complete_bash(&dir, &["xenify", "con"]), ["convert"]);
    // Issue 12 item 8: the hidden generate is not offered; loss ids and pass
    // names are.
    let commands = complete_bash(&dir, &["xenify", ""]);
    assert!(commands.contains(&"doctor".to_string()) && !commands.contains(&"generate".to_string()), "{commands:?}");
    let ids: Vec<&str> = Loss::ALL.iter().map(|l| l.id()).collect();
    assert_eq!(complete_bash(&dir, &["xenify", "convert", "--accept", ""]), ids);
    assert_eq!(complete_bash(&dir, &["xenify", "check", "x.xml", "--accept", "graphics-"]), ["graphics-security"]);
    let names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
    for flag in ["--only", "--skip"] {
        assert_eq!(complete_bash(&dir, &["xenify", "convert", flag, ""]), names, "{flag}");
    }
    for file in ["_xenify", "xenify.fish"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(!text.contains("generate"), "{file} offers the hidden generate");
        assert!(text.contains("graphics-security") && text.contains("remove-virtio-serial"), "{file}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 12 item 8: `check --help` says where the table goes.
#[test]
fn check_help_says_the_table_goes_to_stdout() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xenify")).args(["check", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("Prints on stdout a table"), "{help}");
    assert!(help.contains("Format of the table on stdout"), "{help}");
    assert!(!help.contains("on stderr"), "{help}");
}
