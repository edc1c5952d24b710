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
    assert_eq!(section(&readme(), "passes"), table);
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

#[test]
fn bash_loads_the_generated_completion() {
    let dir = generated("completions", "bash");
    for file in ["xenify.bash", "_xenify", "xenify.fish"] {
        assert!(dir.join(file).is_file(), "no {file}");
    }
    let script = format!(
        "source {}; complete -p xenify; COMP_WORDS=(xenify con); COMP_CWORD=1; COMP_LINE='xenify con'; COMP_POINT=10; \
         _xenify xenify con xenify; echo \"${{COMPREPLY[@]}}\"",
        dir.join("xenify.bash").display()
    );
    let out = std::process::Command::new("bash").args(["--norc", "-c", &script]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.starts_with("complete ") && stdout.lines().next().unwrap().ends_with("-F _xenify xenify"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("convert"), "completing `xenify con`: {stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
