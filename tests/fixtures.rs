//! Snapshot tests over the fixtures: each pass alone on its folder of
//! fixtures/passes, and the whole pipeline on fixtures/domains. A snapshot
//! holds the report and a unified diff of input to output.

mod common;

use std::path::Path;

use common::{check, check_on, host_for, label, policy_for, snapshot};
use xenify::policy::Policy;
use xenify::{Pass, ALL};

fn pass_of(path: &Path) -> &'static Pass {
    let name = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    xenify::passes::find(name).unwrap_or_else(|| panic!("fixtures/passes/{name} is not a pass"))
}

#[test]
fn passes() {
    insta::glob!("../fixtures", "passes/*/*.xml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let label = label(path);
        let policy = policy_for(path);
        let c = check_on(&label, &text, &[pass_of(path)], &policy, &host_for(path));
        insta::assert_snapshot!(snapshot(&label, &text, &c, &policy));
    });
}

#[test]
fn domains_accepting_every_loss() {
    let all: Vec<&Pass> = ALL.iter().collect();
    insta::glob!("../fixtures", "domains/*.xml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let label = label(path);
        let policy = Policy::accepting_all();
        let c = check(&label, &text, &all, &policy);
        assert!(
            c.as_ref().is_ok_and(|c| !c.refused()),
            "{label} is not converted although every loss is accepted:\n{}",
            snapshot(&label, &text, &c, &policy)
        );
        insta::assert_snapshot!(snapshot(&label, &text, &c, &policy));
    });
}

#[test]
fn domains_under_the_default_policy() {
    let all: Vec<&Pass> = ALL.iter().collect();
    insta::glob!("../fixtures", "domains/*.xml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let label = label(path);
        let policy = Policy::default();
        let c = check(&label, &text, &all, &policy);
        // The default policy differs only in the losses it refuses: the
        // snapshot is the report, which lists them.
        let mut report = snapshot(&label, &text, &c, &policy);
        if let Some(i) = report.find("\n--- input") {
            report.truncate(i + 1);
        }
        insta::assert_snapshot!(report);
    });
}

#[test]
fn every_pass_has_fixtures_and_a_case_that_changes_nothing() {
    let dir = common::root().join("fixtures/passes");
    let mut folders: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    folders.sort();
    let mut names: Vec<String> = ALL.iter().map(|p| p.name.to_string()).collect();
    names.sort();
    assert_eq!(
        folders,
        names,
        "fixtures/passes must have one folder per pass of passes::ALL.\n{}",
        common::adding_a_pass()
    );
    for pass in ALL {
        let cases: Vec<_> = std::fs::read_dir(dir.join(pass.name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        assert!(cases.len() >= 2, "{}: fewer than two cases.\n{}", pass.name, common::adding_a_pass());
        let unchanged = cases.iter().any(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let policy = policy_for(p);
            let c = xenify::convert(&text, &[pass], &xenify::Context::new(&policy));
            c.is_ok_and(|c| c.output().as_deref() == Some(text.as_str()))
        });
        assert!(unchanged, "{}: no case where nothing may change.\n{}", pass.name, common::adding_a_pass());
    }
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    insta::glob!("../fixtures", "**/*.xml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = xenify::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", label(path)));
        assert_eq!(doc.to_string(), text, "{}", label(path));
    });
}

#[test]
fn a_linux_domain_as_pvh() {
    let path = common::root().join("fixtures/domains/hostedengine-lease.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut policy = Policy::accepting_all();
    policy
        .apply_toml("guest = \"pvh\"\npvh_kernel = \"/usr/lib/grub-xen/grub-i386-xen_pvh.bin\"\n", "pvh.toml")
        .unwrap();
    let all: Vec<&Pass> = ALL.iter().collect();
    let c = check(&label(&path), &text, &all, &policy);
    insta::assert_snapshot!(snapshot(&label(&path), &text, &c, &policy));
}
