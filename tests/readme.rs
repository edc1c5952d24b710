//! Every example the README shows is what the program prints, and every
//! version and figure it names is the real one: the demo's diff and report
//! (what `make demo` runs), `xenify check`'s table, the hook's refusal, the
//! JSON report, the example commands, the synopsis and option table, the
//! engine-config line, the RPM's version and the minimum Rust version.
//!
//! Each checked block follows a `<!-- checked: NAME -->` line. When a
//! conversion changes, these tests name the README lines to regenerate and
//! print what the program says now.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use xenify::policy::KEYS;
use xenify::Loss;

fn readme() -> String {
    std::fs::read_to_string(common::root().join("README.md")).unwrap()
}

/// The lines of the fenced block after `<!-- checked: NAME -->`, and the
/// README line its first line is on.
fn block(name: &str) -> (Vec<String>, usize) {
    let text = readme();
    let marker = format!("<!-- checked: {name} -->\n");
    let at = text.find(&marker).unwrap_or_else(|| panic!("README.md has no block marked {marker}"));
    let rest = &text[at + marker.len()..];
    let open = rest.find("```").unwrap();
    let body_start = open + rest[open..].find('\n').unwrap() + 1;
    let body_end = body_start + rest[body_start..].find("```").unwrap();
    let line = text[..at + marker.len() + body_start].matches('\n').count() + 1;
    (rest[body_start..body_end].lines().map(str::to_string).collect(), line)
}

/// The binary as the README's examples call it, from the project root, on a
/// host without a policy file (the machine's own /etc/xenify must not count).
fn xenify(args: &[String], stdin: Option<&Path>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xenify"))
        .args(args)
        .current_dir(common::root())
        .env("XENIFY_CONFIG", "/dev/null")
        .env_remove("_hook_domxml")
        .stdin(stdin.map_or(Stdio::null(), |p| std::fs::File::open(common::root().join(p)).unwrap().into()))
        .output()
        .unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The arguments of `make demo`'s xenify command, from the Makefile.
fn demo_args() -> Vec<String> {
    let makefile = std::fs::read_to_string(common::root().join("Makefile")).unwrap();
    let demo = makefile.lines().find_map(|l| l.strip_prefix("DEMO")?.trim_start().strip_prefix(":=")).unwrap().trim();
    let recipe =
        makefile.split("\ndemo: build\n").nth(1).expect("the Makefile has a demo target").lines().next().unwrap();
    let args = recipe.trim().strip_prefix("$(XENIFY_BIN) ").expect("demo runs $(XENIFY_BIN)");
    words(&args.replace("$(DEMO)", demo))
}

/// Fails listing the README lines (from `line` on) that are not what the
/// program printed, with what it printed.
fn assert_lines(name: &str, line: usize, missing: &[String], actual: &str) {
    assert!(
        missing.is_empty(),
        "README.md's block `{name}` (line {line}) no longer matches what the program prints; regenerate these \
         lines:\n{}\n--- what the program prints now ---\n{actual}",
        missing.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    );
}

/// A README line matches an output line exactly, or, with an ellipsis,
/// by what comes before and after it.
fn matches(readme: &str, actual: &str) -> bool {
    match readme.split_once('…') {
        Some((head, tail)) if !actual.contains('…') => actual.starts_with(head) && actual.ends_with(tail),
        _ => readme == actual,
    }
}

#[test]
fn the_demo_command_is_the_one_make_demo_runs() {
    let args = demo_args().join(" ");
    assert!(
        readme().contains(&format!("which runs `xenify {args}`")),
        "README.md must say that make demo runs `xenify {args}`"
    );
}

#[test]
fn the_demo_diff_is_an_excerpt_of_what_make_demo_prints() {
    let o = xenify(&demo_args(), None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let diff = String::from_utf8(o.stdout).unwrap();
    let actual: Vec<&str> = diff.lines().collect();
    let (excerpt, line) = block("demo-diff");
    // In order: each README line is found after the one before it.
    let mut next = 0;
    let mut missing = Vec::new();
    for l in &excerpt {
        match actual[next..].iter().position(|a| a == l) {
            Some(i) => next += i + 1,
            None => missing.push(l.clone()),
        }
    }
    assert_lines("demo-diff", line, &missing, &diff);
}

#[test]
fn the_demo_report_lines_are_what_make_demo_prints() {
    let o = xenify(&demo_args(), None);
    let report = String::from_utf8(o.stderr).unwrap();
    let actual: Vec<&str> = report.lines().collect();
    let (excerpt, line) = block("demo-report");
    let mut missing = Vec::new();
    // The headline with its figures exactly; the findings as an excerpt.
    if excerpt[0] != actual[0] {
        missing.push(excerpt[0].clone());
    }
    for l in &excerpt[1..] {
        if !actual.iter().any(|a| matches(l, a)) {
            missing.push(l.clone());
        }
    }
    assert_lines("demo-report", line, &missing, &report);
}

#[test]
fn the_check_table_is_what_check_prints() {
    let (lines, line) = block("check-table");
    let command = lines[0].strip_prefix("$ xenify ").expect("the block starts with the command");
    let o = xenify(&words(command), None);
    let out = String::from_utf8(o.stdout).unwrap();
    let shown = lines[1..].join("\n") + "\n";
    let missing: Vec<String> = lines[1..]
        .iter()
        .zip(out.lines().chain(std::iter::repeat("")))
        .filter(|(r, a)| r != a)
        .map(|(r, _)| r.clone())
        .collect();
    let missing = if missing.is_empty() && shown != out { vec!["(the end of the table)".into()] } else { missing };
    assert_lines("check-table", line + 1, &missing, &out);
    // The JSON shape the README gives is the one check prints.
    let mut json_args = words(command);
    json_args.extend(["--report".into(), "json".into()]);
    let json: serde_json::Value = serde_json::from_slice(&xenify(&json_args, None).stdout).unwrap();
    let text = readme();
    let shape = text.lines().find(|l| l.contains("`--report json` prints the same there as `{\"files\"")).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<String>>();
    let quoted = |s: &str| -> BTreeSet<String> { s.split('"').skip(1).step_by(2).map(str::to_string).collect() };
    let files_part = shape.split("[{").nth(1).unwrap().split("}]").next().unwrap();
    let summary_part = shape.split("\"summary\": {").nth(1).unwrap().split(": {id").next().unwrap();
    assert_eq!(quoted(files_part), keys(&json["files"][0]), "README's check JSON: files[]");
    assert_eq!(quoted(summary_part), keys(&json["summary"]), "README's check JSON: summary");
}

#[test]
fn the_hook_refusal_is_what_the_hook_prints() {
    let (lines, line) = block("hook-refusal");
    let dir = std::env::temp_dir().join(format!("xenify-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Vdsm's temporary file, and a policy file that accepts nothing where the
    // README shows the default one.
    let name = lines[0].rsplit("(/tmp/").next().unwrap().trim_end_matches(')');
    let domxml = dir.join(name);
    std::fs::copy(common::root().join("fixtures/domains/hostedengine-lease.xml"), &domxml).unwrap();
    let config = dir.join("xenify.toml");
    std::fs::write(&config, "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", &domxml)
        .env("XENIFY_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr)
        .unwrap()
        .replace(config.to_str().unwrap(), "/etc/xenify/xenify.toml")
        .replace(dir.to_str().unwrap(), "/tmp");
    let missing: Vec<String> = lines
        .iter()
        .zip(err.lines().chain(std::iter::repeat("")))
        .filter(|(r, a)| r != a)
        .map(|(r, _)| r.clone())
        .collect();
    assert_lines("hook-refusal", line, &missing, &err);
    assert_eq!(err.lines().count(), lines.len(), "README's hook-refusal block (line {line}):\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_json_report_is_what_convert_prints() {
    let text = readme();
    let command = text
        .lines()
        .find_map(|l| l.split("with `xenify ").nth(1)?.split("` (excerpt of `findings`)").next())
        .expect("README names the command of its JSON example");
    let o = xenify(&words(command), None);
    let actual_text = String::from_utf8(o.stderr).unwrap();
    let actual: serde_json::Value = serde_json::from_str(&actual_text).unwrap();
    let (lines, line) = block("json-report");
    let shown_text = lines.join("\n");
    let shown: serde_json::Value = serde_json::from_str(&shown_text).unwrap();
    // The fields in the same order (two-space indented keys are top-level).
    let top = |t: &str| -> Vec<String> {
        t.lines().filter_map(|l| l.strip_prefix("  \"")?.split('"').next().map(str::to_string)).collect()
    };
    assert_eq!(top(&shown_text), top(&actual_text), "README.md's JSON report (line {line}): the fields");
    let mut missing = Vec::new();
    for (k, v) in shown.as_object().unwrap() {
        if k == "findings" {
            for f in v.as_array().unwrap() {
                if !actual["findings"].as_array().unwrap().contains(f) {
                    missing.push(format!("finding {f}"));
                }
            }
        } else if actual[k] != *v {
            missing.push(format!("\"{k}\": {v}"));
        }
    }
    assert_lines("json-report", line, &missing, &actual_text);
}

#[test]
fn the_example_commands_run() {
    let (lines, _) = block("commands");
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        // `virsh dumpxml myvm | xenify …` reads a domain on stdin; `vm.xml` is a domain file.
        let (stdin, command) = match l.split_once(" | ") {
            Some((_, cmd)) => (Some(Path::new("fixtures/domains/hostedengine-lease.xml")), cmd),
            None => (None, l.as_str()),
        };
        let command = command.split(" > ").next().unwrap();
        // `-o FILE` writes into a scratch directory, not the project.
        let out = std::env::temp_dir().join(format!("xenify-readme-commands-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let mut args: Vec<String> = words(command.strip_prefix("xenify ").unwrap())
            .into_iter()
            .map(|w| if w == "vm.xml" { "fixtures/domains/hostedengine-lease.xml".into() } else { w })
            .collect();
        if let Some(i) = args.iter().position(|w| w == "-o") {
            args[i + 1] = out.join(&args[i + 1]).display().to_string();
        }
        let o = xenify(&args, stdin);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(matches!(o.status.code(), Some(0 | 1)), "README's `{l}`: exit {:?}: {err}", o.status.code());
        assert!(err.starts_with("xenify: converted:") || err.starts_with("xenify: refused:"), "`{l}`: {err}");
    }
    // The --diff example prints a diff.
    let diff = lines.iter().find(|l| l.contains("--diff")).unwrap();
    let args: Vec<String> = words(diff.strip_prefix("xenify ").unwrap())
        .into_iter()
        .map(|w| if w == "vm.xml" { "fixtures/domains/hostedengine-lease.xml".into() } else { w })
        .collect();
    let o = xenify(&args, None);
    assert_eq!(o.status.code(), Some(0), "`{diff}`: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8(o.stdout).unwrap().starts_with("--- a/"), "`{diff}` prints no diff");
}

/// The visible subcommands, as `xenify --help` lists them.
fn subcommands() -> BTreeSet<String> {
    let help = String::from_utf8(xenify(&["--help".into()], None).stdout).unwrap();
    let commands = help.split("Commands:\n").nth(1).unwrap().split("\n\n").next().unwrap();
    commands.lines().filter_map(|l| l.split_whitespace().next()).filter(|c| *c != "help").map(str::to_string).collect()
}

#[test]
fn the_synopsis_lists_every_command() {
    let text = readme();
    let section = text.split("## Command line\n").nth(1).unwrap();
    let synopsis = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let listed: BTreeSet<String> = synopsis
        .lines()
        .filter_map(|l| l.strip_prefix("xenify ")?.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert_eq!(listed, subcommands(), "README's synopsis (## Command line) and `xenify --help`");
}

#[test]
fn the_option_table_lists_every_option_of_convert_and_check() {
    let text = readme();
    let section = text.split("## Command line\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut listed = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split(" | ").next().unwrap();
        listed.extend(
            first.split('`').skip(1).step_by(2).filter_map(|c| c.split_whitespace().next()).map(str::to_string),
        );
    }
    let mut options = BTreeSet::new();
    for command in ["convert", "check"] {
        let help = String::from_utf8(xenify(&[command.into(), "--help".into()], None).stdout).unwrap();
        // Option lines start with `-x` or `--x` (possible values are listed as `- value`).
        for l in help.lines().map(str::trim_start).filter(|l| l.starts_with('-') && !l.starts_with("- ")) {
            let flag = l.split([' ', ',', '=']).next().unwrap();
            if flag != "-h" && flag != "--help" {
                options.insert(flag.to_string());
            }
        }
    }
    assert_eq!(listed, options, "README's option table and `xenify convert|check --help`");
}

/// A regular expression of the engine-config line, as the values it allows.
fn allowed(regex: &str, candidates: &[&str]) -> Vec<String> {
    let body = regex.strip_prefix('^').unwrap().strip_suffix('$').unwrap();
    if let Some(alternatives) = body.strip_prefix('(').and_then(|b| b.strip_suffix(')')) {
        return alternatives.split('|').map(str::to_string).collect();
    }
    // `[…]*`: a character class, repeated.
    let class = body.strip_prefix('[').unwrap().strip_suffix("]*").unwrap();
    let chars: Vec<char> = class.chars().collect();
    let ok = |c: char| {
        let mut i = 0;
        while i < chars.len() {
            if i + 2 < chars.len() && chars[i + 1] == '-' {
                if (chars[i]..=chars[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if chars[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    };
    candidates.iter().filter(|c| c.chars().all(ok)).map(|c| c.to_string()).collect()
}

#[test]
fn the_engine_config_line_allows_every_value_of_its_keys() {
    let text = readme();
    let line = text.lines().find(|l| l.starts_with("engine-config -s UserDefinedVMProperties=")).unwrap();
    let value = line.split('\'').nth(1).unwrap();
    let ids: Vec<&str> = Loss::ALL.iter().map(|l| l.id()).collect();
    let all_ids = ids.join(",");
    for property in value.split(';') {
        let (name, regex) = property.split_once('=').unwrap();
        let key =
            KEYS.iter().find(|k| Some(k.name) == name.strip_prefix("xenify_")).unwrap_or_else(|| panic!("{name}"));
        if key.name == "accept" {
            let mut candidates = ids.clone();
            candidates.push(&all_ids);
            assert_eq!(allowed(regex, &candidates).len(), candidates.len(), "{name}={regex} refuses a loss id list");
        } else {
            let values: Vec<String> = key.values.split(" | ").map(|v| v.trim_matches('"').to_string()).collect();
            assert_eq!(allowed(regex, &[]), values, "{name}={regex} and the values of {}", key.name);
        }
    }
}

#[test]
fn the_rpm_example_names_this_version() {
    let text = readme();
    let line = text.lines().find(|l| l.starts_with("dnf install ./target/rpm/RPMS/")).unwrap();
    let expected = format!("vdsm-hook-xenify-{}-1.", env!("CARGO_PKG_VERSION"));
    assert!(line.contains(&expected), "README's `{line}` is not version {}", env!("CARGO_PKG_VERSION"));
}

#[test]
fn make_build_says_where_the_binary_is() {
    let makefile = std::fs::read_to_string(common::root().join("Makefile")).unwrap();
    let bin = makefile.lines().find_map(|l| l.strip_prefix("XENIFY_BIN ?= ")).unwrap();
    assert_eq!(bin, "$(or $(CARGO_TARGET_DIR),target)/release/xenify", "the Makefile moved the binary: update README");
    let build = makefile.split("\nbuild:\n").nth(1).unwrap().split("\n\n").next().unwrap();
    assert!(build.contains("@echo \"xenify: the binary is $(XENIFY_BIN)\""), "make build must say where the binary is");
    assert!(
        readme()
            .contains("`make build` builds the release binary, `target/release/xenify` (or under `$CARGO_TARGET_DIR`"),
        "README must say where `make build` puts the binary"
    );
}

fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The minimum Rust version is the highest `rust-version` among the locked
/// packages this platform builds for `make test` (dependencies and
/// dev-dependencies); Cargo.toml and the README say that one. (That the
/// crate's own code needs no later compiler was checked with that
/// toolchain and clippy's `incompatible_msrv`, which reads Cargo.toml.)
#[test]
fn the_rust_version_is_the_locked_minimum() {
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host])
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let built: BTreeSet<&str> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let (needed, by) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| built.contains(p["id"].as_str().unwrap()) && p["name"] != "xenify")
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str().unwrap().to_string())))
        .max()
        .unwrap();
    let declared = env!("CARGO_PKG_RUST_VERSION");
    assert_eq!(version(declared), needed, "Cargo.toml's rust-version is {declared}, but {by} needs {needed:?}");
    let text = readme();
    assert!(
        text.contains(&format!("On a machine with a Rust toolchain ({declared} or later)")),
        "README must name Rust {declared}"
    );
}
