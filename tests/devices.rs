//! Device documents through the binary, as Vdsm runs it at the hot-plug
//! hook points: a link named `50_xenify` in a directory named after the
//! point, `_hook_domxml` naming the file. The snapshot holds the exit code,
//! the report and a diff of the file; a refusal or error leaves the file as
//! it was.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

fn run_at_hook_point(fixture: &Path) -> String {
    let point = fixture.parent().and_then(|p| p.file_name()).unwrap().to_string_lossy().into_owned();
    let case = fixture.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = std::env::temp_dir().join(format!("xenify-devices-{}-{point}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let hooks = dir.join("hooks").join(&point);
    std::fs::create_dir_all(&hooks).unwrap();
    let link = hooks.join("50_xenify");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_xenify"), &link).unwrap();
    let domxml = dir.join("tmpdomxml");
    let input = std::fs::read_to_string(fixture).unwrap();
    std::fs::write(&domxml, &input).unwrap();
    let toml = fixture.with_extension("toml");
    let config = if toml.exists() { toml } else { dir.join("empty.toml") };
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    let o = Command::new(&link)
        .env("_hook_domxml", &domxml)
        .env("XENIFY_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = o.status.code().unwrap();
    assert!(code == 0 || code == 2, "{case}: exit {code}");
    let output = std::fs::read_to_string(&domxml).unwrap();
    if code != 0 {
        assert_eq!(output, input, "{case}: the file changed although the hook failed");
    }
    let stderr = String::from_utf8_lossy(&o.stderr)
        .replace(&domxml.display().to_string(), "$_hook_domxml")
        .replace(&config.display().to_string(), "$XENIFY_CONFIG")
        .replace(&common::root().display().to_string(), ".");
    let diff = xenify::diff::unified(&input, &output, "input", "output");
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "hook point: {point}\nexit: {code}\n{stderr}\n{}",
        if diff.is_empty() { "(file unchanged)\n" } else { &diff }
    )
}

#[test]
fn devices_at_their_hook_points() {
    insta::glob!("../fixtures", "devices/*/*.xml", |path| {
        insta::assert_snapshot!(run_at_hook_point(path));
    });
}
