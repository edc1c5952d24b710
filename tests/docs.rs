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
