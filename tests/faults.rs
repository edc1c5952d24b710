//! Faults around the hook's file: whatever goes wrong, the file is what
//! Vdsm wrote, no temporary file is left, the exit code is 2, and the
//! message says why. Also: a panic is an internal error, and fifty hooks at
//! once on different files do not interfere.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn domain() -> Vec<u8> {
    std::fs::read(common::root().join("fixtures/domains/vm-sysprep-floppy.xml")).unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The hook as the unprivileged user `nobody` when the tests run as root
/// (root reads and writes everything, so permission faults need another user).
fn hook_as_user(domxml: &Path, extra: &[(&str, &str)]) -> Output {
    let bin = env!("CARGO_BIN_EXE_xenify");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.env("_hook_domxml", domxml)
        .env("XENIFY_CONFIG", "/dev/null")
        .env("xenify_accept", "nwfilter,graphics-security,floppy-media")
        .stdin(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Can the unprivileged user reach the binary (it may sit below a private home)?
fn user_can_run() -> bool {
    let can = !is_root()
        || Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_xenify"), "passes"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !can {
        eprintln!("skipped: the unprivileged user cannot run the test binary here");
    }
    can
}

#[test]
fn a_directory_is_not_a_file() {
    let dir = scratch("dir");
    let sub = dir.join("tmpdomxml");
    std::fs::create_dir(&sub).unwrap();
    let o = hook_as_user(&sub, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read the domain XML: is a directory"), "{}", stderr(&o));
    assert!(sub.is_dir() && entries(&dir) == 1);
}

#[test]
fn an_unreadable_file_is_left_alone() {
    if !user_can_run() {
        return;
    }
    let dir = scratch("unreadable");
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, domain()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = hook_as_user(&path, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read the domain XML: Permission denied"), "{}", stderr(&o));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), domain());
    assert_eq!(entries(&dir), 1);
}

#[test]
fn a_read_only_directory_stops_the_rename_and_the_file_stays() {
    if !user_can_run() {
        return;
    }
    let dir = scratch("readonly");
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, domain()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let o = hook_as_user(&path, &[]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cannot replace the file: Permission denied") && err.contains("left as Vdsm wrote it"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), domain());
    assert_eq!(entries(&dir), 1, "a temporary file was left behind");
}

#[test]
fn a_disk_that_fills_during_the_write_leaves_the_original() {
    // A small tmpfs, where the machine lets the tests mount one (root on
    // Linux); the injected failing writer of src/files.rs covers the rest.
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = scratch("full");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // Room for the original (whole pages) and one more page: the converted
    // copy, several pages long, cannot be written beside it.
    let original = domain();
    let size = original.len().div_ceil(4096) * 4096 + 4096;
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&mnt).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let path = mnt.join("tmpdomxml");
    let result = std::fs::write(&path, &original).map(|()| {
        Command::new(env!("CARGO_BIN_EXE_xenify"))
            .env("_hook_domxml", &path)
            .env("XENIFY_CONFIG", "/dev/null")
            .env("xenify_accept", "nwfilter,graphics-security,floppy-media")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    let after = std::fs::read(&path);
    let left = std::fs::read_dir(&mnt).map(|d| d.count());
    let _ = Command::new("umount").arg(&mnt).status();
    let o = result.unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
    assert_eq!(after.unwrap(), original);
    assert_eq!(left.unwrap(), 1, "a temporary file was left behind");
}

#[test]
fn a_panic_is_an_internal_error_and_the_file_stays() {
    let dir = scratch("panic");
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, domain()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", &path)
        .env("XENIFY_CONFIG", "/dev/null")
        .env("XENIFY_TEST_PANIC", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !cfg!(debug_assertions) {
        return;
    }
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "xenify: internal error while converting {}: XENIFY_TEST_PANIC is set",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked at"), "the raw panic message reached the user: {err}");
    assert_eq!(std::fs::read(&path).unwrap(), domain());
    assert_eq!(entries(&dir), 1);
}

#[test]
fn fifty_hooks_at_once_do_not_interfere() {
    let dir = scratch("parallel");
    let fixtures: Vec<PathBuf> = std::fs::read_dir(common::root().join("fixtures/domains"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    // All in one directory, as Vdsm's mkstemp files are.
    let jobs: Vec<(PathBuf, PathBuf)> =
        (0..50).map(|i| (fixtures[i % fixtures.len()].clone(), dir.join(format!("tmp{i:02}")))).collect();
    for (src, dst) in &jobs {
        std::fs::copy(src, dst).unwrap();
    }
    let children: Vec<_> = jobs
        .iter()
        .map(|(_, dst)| {
            Command::new(env!("CARGO_BIN_EXE_xenify"))
                .env("_hook_domxml", dst)
                .env("XENIFY_CONFIG", "/dev/null")
                .env("xenify_accept", common::ALL_LOSSES)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ((src, dst), child) in jobs.iter().zip(children) {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", dst.display(), stderr(&o));
        let text = std::fs::read_to_string(src).unwrap();
        let expected = xenify::convert_all(&text, &xenify::Policy::accepting_all()).unwrap().output().unwrap();
        assert_eq!(std::fs::read_to_string(dst).unwrap(), expected, "{}", dst.display());
    }
    assert_eq!(entries(&dir), 50, "temporary files were left behind");
}
