//! What xenify reads (issue 9, item 3, and issue 12, item 5): nothing a
//! user can name makes it wait or read without end. A FIFO, socket or block
//! device is refused by kind, a character device is read without blocking,
//! every read is bounded (the policy file too), and `check` visits each
//! directory once, does not follow symbolic links inside directories, and
//! gives a file or directory it cannot read its own error row.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{mkfifo, run_bounded as run, stderr, xenify_bounded as xenify};

use common::ALL_LOSSES;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-inputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::root().join("fixtures/domains").join(name)).unwrap()
}

fn hook(domxml: &Path, config: &str) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", domxml)
        .env("XENIFY_CONFIG", config)
        .env("xenify_accept", ALL_LOSSES))
}

/// A pseudo-terminal that nobody types into: reading it would wait forever.
/// Returns the master (kept open) and the path of the terminal.
fn silent_terminal() -> (std::fs::File, PathBuf) {
    // SAFETY: plain libc calls on a descriptor this function owns.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(fd)).to_string_lossy().into_owned();
        (std::os::fd::FromRawFd::from_raw_fd(fd), PathBuf::from(name))
    }
}

#[test]
fn a_fifo_named_as_the_input_is_refused_at_once() {
    let dir = scratch("fifo-input");
    let fifo = dir.join("vm.xml");
    mkfifo(&fifo);
    let o = xenify(&["convert", fifo.to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("cannot read {}: is a FIFO", fifo.display())), "{err}");
    // A writer that never writes changes nothing.
    let writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let o = xenify(&["convert", fifo.to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    drop(writer);
    // stdin stays the filter's input, a pipe included.
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .args(["convert", "--accept", ALL_LOSSES])
        .env("XENIFY_CONFIG", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &fixture("vm-sysprep-floppy.xml")).unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
}

#[test]
fn a_silent_terminal_named_as_the_input_is_an_error_not_a_wait() {
    let (_master, tty) = silent_terminal();
    let o = xenify(&["convert", tty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to read"), "{}", stderr(&o));
    let o = xenify(&["convert", "fixtures/domains/vm-sysprep-floppy.xml", "--config", tty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to read"), "{}", stderr(&o));
}

#[test]
fn a_fifo_as_the_hooks_file_or_policy_is_refused_at_once() {
    let dir = scratch("fifo-hook");
    let fifo = dir.join("tmpdomxml");
    mkfifo(&fifo);
    let o = hook(&fifo, "/dev/null");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));

    let domxml = dir.join("tmpreal");
    std::fs::write(&domxml, fixture("vm-sysprep-floppy.xml")).unwrap();
    let policy = dir.join("xenify.toml");
    mkfifo(&policy);
    let o = hook(&domxml, policy.to_str().unwrap());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&domxml).unwrap(), fixture("vm-sysprep-floppy.xml"));

    let o = xenify(&["convert", "fixtures/domains/vm-sysprep-floppy.xml", "--config", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a FIFO"), "{}", stderr(&o));
}

#[test]
fn an_endless_policy_file_is_read_only_up_to_its_bound() {
    let o = xenify(&["convert", "fixtures/domains/vm-sysprep-floppy.xml", "--config", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than the limit of 1 MiB"), "{}", stderr(&o));
    let dir = scratch("zero-policy");
    let domxml = dir.join("tmpdomxml");
    std::fs::write(&domxml, fixture("vm-sysprep-floppy.xml")).unwrap();
    let o = hook(&domxml, "/dev/zero");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than the limit of 1 MiB"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&domxml).unwrap(), fixture("vm-sysprep-floppy.xml"));
    // An ordinary policy file just over the bound is refused the same way.
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(1 << 20))).unwrap();
    let o = xenify(&["convert", "fixtures/domains/vm-sysprep-floppy.xml", "--config", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than the limit of 1 MiB"), "{}", stderr(&o));
}

/// `xenify check` over `args`, as JSON: (file, outcome, problems) per row.
fn check(args: &[&str]) -> (Option<i32>, Vec<(String, String, String)>) {
    let mut all = vec!["check", "--report", "json"];
    all.extend(args);
    let o = xenify(&all);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stderr(&o), String::from_utf8_lossy(&o.stdout)));
    let rows = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let problems: Vec<&str> = r["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            (r["file"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string(), problems.join("; "))
        })
        .collect();
    (o.status.code(), rows)
}

fn two_domains(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.xml"), fixture("vm-sysprep-floppy.xml")).unwrap();
    std::fs::write(dir.join("sub/b.xml"), fixture("already-xen.xml")).unwrap();
}

#[test]
fn check_does_not_follow_links_inside_directories() {
    let dir = scratch("check-links");
    two_domains(&dir);
    // Two links to the directory itself (each level doubles the paths a
    // walk that follows them sees, without end) and one back up.
    std::os::unix::fs::symlink(".", dir.join("again")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("more")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    // A link to a domain file, as libvirt's autostart directory holds.
    std::os::unix::fs::symlink("a.xml", dir.join("autostart.xml")).unwrap();
    let (code, rows) = check(&[dir.to_str().unwrap(), "--accept", ALL_LOSSES]);
    let files: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let a = dir.join("a.xml").display().to_string();
    let b = dir.join("sub/b.xml").display().to_string();
    assert_eq!(files, [a.as_str(), b.as_str()], "each domain once, links inside the directory not followed");
    assert_eq!(code, Some(0));
    // A link named on the command line is followed.
    let link = scratch("check-links-named").join("named");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let (_, rows) = check(&[link.to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    // A directory named twice, or inside another named one, is read once.
    let (_, rows) = check(&[dir.to_str().unwrap(), dir.join("sub").to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(rows.len(), 2, "{rows:?}");
}

#[test]
fn check_gives_a_fifo_its_own_row_and_goes_on() {
    let dir = scratch("check-fifo");
    two_domains(&dir);
    mkfifo(&dir.join("pipe.xml"));
    let (code, rows) = check(&[dir.to_str().unwrap(), "--accept", ALL_LOSSES]);
    assert_eq!(code, Some(1));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let fifo = rows.iter().find(|r| r.0.ends_with("pipe.xml")).unwrap();
    assert_eq!(fifo.1, "error");
    assert!(fifo.2.contains("is a FIFO"), "{fifo:?}");
    assert_eq!(rows.iter().filter(|r| r.1.starts_with("converts")).count(), 2, "{rows:?}");
    // Named on the command line, the same.
    let (_, rows) = check(&[dir.join("pipe.xml").to_str().unwrap()]);
    assert!(rows[0].2.contains("is a FIFO"), "{rows:?}");
}

#[test]
fn check_gives_an_unreadable_directory_its_own_row_and_goes_on() {
    let dir = scratch("check-unreadable");
    two_domains(&dir);
    std::fs::create_dir(dir.join("locked")).unwrap();
    std::fs::write(dir.join("locked/c.xml"), fixture("already-xen.xml")).unwrap();
    std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(dir.join("secret.xml"), fixture("already-xen.xml")).unwrap();
    std::fs::set_permissions(dir.join("secret.xml"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    // Root reads everything: run as nobody then, if nobody can run the binary.
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_xenify")];
    if root && !Command::new("setpriv").args(nobody).arg("passes").output().is_ok_and(|o| o.status.success()) {
        std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("skipped: the unprivileged user cannot run the test binary here");
        return;
    }
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(nobody);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_xenify"))
    };
    let o = run(cmd
        .args(["check", "--report", "json", "--accept", ALL_LOSSES])
        .arg(&dir)
        .env("XENIFY_CONFIG", "/dev/null"));
    std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = json["files"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["file"] == dir.join(name).display().to_string())
            .unwrap_or_else(|| panic!("no row for {name}: {json}"))
    };
    assert_eq!(row("locked")["outcome"], "error");
    assert!(row("locked")["problems"][0].as_str().unwrap().contains("cannot list it: Permission denied"), "{json}");
    assert_eq!(row("secret.xml")["outcome"], "error");
    assert_eq!(row("a.xml")["outcome"], "converts with warnings");
    assert_eq!(row("sub/b.xml")["outcome"], "converts");
    assert_eq!(json["summary"]["files"], 4);
    assert_eq!(json["summary"]["errors"], 2);
}
