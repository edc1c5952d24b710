//! `make install` and `make uninstall`, through the script they run
//! (packaging/install.sh) with the binary cargo built, so that no cargo build
//! runs inside `cargo test`; and the hook points and version that the
//! Makefile, the RPM spec, hooks/README.md and the binary must agree on.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const XENIFY: &str = env!("CARGO_BIN_EXE_xenify");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An empty directory of its own for each test, removed when it goes out of
/// scope.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xenify-install-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel.trim_start_matches('/'))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `HOOK_POINTS` of the Makefile, continuation lines joined.
fn makefile_points() -> Vec<String> {
    let makefile = read("Makefile");
    let mut value = String::new();
    for line in makefile.lines().skip_while(|l| !l.starts_with("HOOK_POINTS")) {
        let line = line.split_once(":=").map_or(line, |(_, v)| v);
        value.push_str(line.trim_end_matches('\\'));
        value.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    value.split_whitespace().map(String::from).collect()
}

/// Runs packaging/install.sh as `make install` would, into `destdir`, with
/// the defaults for every path.
fn script(action: &str, destdir: &Path) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join("packaging/install.sh")).arg(action);
    for var in [
        "PREFIX",
        "BINDIR",
        "MANDIR",
        "BASHCOMPDIR",
        "ZSHCOMPDIR",
        "FISHCOMPDIR",
        "SYSCONFDIR",
        "DOCDIR",
        "VDSM_HOOKS_DIR",
        "MANIFEST",
        "CONFIG_SRC",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DESTDIR", destdir).env("XENIFY_BIN", XENIFY).env("HOOK_POINTS", makefile_points().join(" "));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "install.sh {action} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every path under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_lays_out_the_binary_links_config_man_pages_and_completions() {
    let d = Scratch::new();
    script("install", &d.0);

    let bin = d.path("/usr/bin/xenify");
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{}", bin.display());
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(XENIFY).unwrap());

    let points = makefile_points();
    assert_eq!(points.len(), 8, "{points:?}");
    for point in &points {
        let link = d.path(&format!("/usr/libexec/vdsm/hooks/{point}/50_xenify"));
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(target, Path::new("/usr/bin/xenify"), "{}", link.display());
    }

    let config = d.path("/etc/xenify/xenify.toml");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), read("hooks/xenify.toml"));
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o644);

    for page in ["/usr/share/man/man1/xenify.1.gz", "/usr/share/man/man5/xenify.toml.5.gz"] {
        let bytes = std::fs::read(d.path(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert_eq!(bytes[..2], [0x1f, 0x8b], "{page} is not gzip");
    }
    // The sudoers rule of after_get_caps, read-only as sudo wants it.
    let sudoers = d.path("/etc/sudoers.d/50_vdsm_hook_xenify");
    assert_eq!(
        std::fs::read(&sudoers).unwrap(),
        std::fs::read(root().join("packaging/sudoers/50_vdsm_hook_xenify")).unwrap()
    );
    assert_eq!(std::fs::metadata(&sudoers).unwrap().permissions().mode() & 0o777, 0o440);
    // Every Vdsm patch, byte for byte, with the documentation.
    let mut shipped: Vec<String> = std::fs::read_dir(root().join("packaging/vdsm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".patch"))
        .collect();
    shipped.sort();
    assert!(shipped.len() >= 3, "{shipped:?}");
    for name in &shipped {
        let installed = d.path(&format!("/usr/share/doc/xenify/vdsm/{name}"));
        assert_eq!(read_bytes(&installed), std::fs::read(root().join("packaging/vdsm").join(name)).unwrap());
    }

    let bash = std::fs::read_to_string(d.path("/usr/share/bash-completion/completions/xenify")).unwrap();
    assert!(bash.contains("xenify"), "{bash}");
    assert!(d.path("/usr/share/zsh/site-functions/_xenify").is_file());
    assert!(d.path("/usr/share/fish/vendor_completions.d/xenify.fish").is_file());
}

#[test]
fn a_second_install_keeps_the_administrators_config() {
    let d = Scratch::new();
    script("install", &d.0);
    let config = d.path("/etc/xenify/xenify.toml");
    std::fs::write(&config, "guest = \"pvh\"\n").unwrap();

    let out = script("install", &d.0);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "guest = \"pvh\"\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kept /etc/xenify/xenify.toml"), "{stdout}");

    // Edited after install wrote it: uninstall keeps it, and its directory.
    let out = script("uninstall", &d.0);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "guest = \"pvh\"\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kept /etc/xenify/xenify.toml: changed since install"), "{stdout}");
    assert_eq!(tree(&d.0), ["etc", "etc/xenify", "etc/xenify/xenify.toml"]);
}

#[test]
fn uninstall_removes_all_that_install_added() {
    let d = Scratch::new();
    script("install", &d.0);
    script("install", &d.0);
    assert!(d.path("/usr/share/xenify/installed").is_file());
    script("uninstall", &d.0);
    assert_eq!(tree(&d.0), Vec::<String>::new());
    assert!(d.0.is_dir());
}

#[test]
fn uninstall_leaves_what_was_there_before_install() {
    let d = Scratch::new();
    std::fs::create_dir_all(d.path("/usr/libexec/vdsm/hooks/before_vm_start")).unwrap();
    std::fs::create_dir_all(d.path("/etc/xenify")).unwrap();
    std::fs::write(d.path("/etc/xenify/xenify.toml"), "").unwrap();
    let before = tree(&d.0);

    script("install", &d.0);
    assert!(d.path("/usr/libexec/vdsm/hooks/before_vm_start/50_xenify").is_symlink());
    assert_eq!(std::fs::read_to_string(d.path("/etc/xenify/xenify.toml")).unwrap(), "");
    script("uninstall", &d.0);
    assert_eq!(tree(&d.0), before);
}

/// The rows of the table under "## The eight points".
fn readme_points() -> Vec<String> {
    let readme = read("hooks/README.md");
    let section = readme.split("## The eight points").nth(1).expect("hooks/README.md: no '## The eight points'");
    let section = section.split("\n## ").next().unwrap();
    section.lines().filter_map(|l| l.strip_prefix("| `")).map(|l| l.split('`').next().unwrap().to_string()).collect()
}

/// The hook links in the spec's %files.
fn spec_points() -> Vec<String> {
    read("packaging/xenify.spec")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("/usr/libexec/vdsm/hooks/")?.strip_suffix("/50_xenify"))
        .map(String::from)
        .collect()
}

#[test]
fn the_hook_points_agree_in_the_binary_makefile_spec_and_readme() {
    let out = Command::new(XENIFY).args(["generate", "hook-points"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let binary: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(binary.len(), 8, "{binary:?}");
    assert_eq!(makefile_points(), binary, "HOOK_POINTS in the Makefile");
    assert_eq!(spec_points(), binary, "%files in packaging/xenify.spec");
    assert_eq!(readme_points(), binary, "the table in hooks/README.md");
}

#[test]
fn the_spec_version_is_cargos() {
    let spec = read("packaging/xenify.spec");
    let version = spec.lines().find_map(|l| l.strip_prefix("Version:")).expect("packaging/xenify.spec: no Version:");
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
}
