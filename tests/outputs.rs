//! Where xenify writes (issue 9, items 1, 2 and 5): an output is written
//! into what its path is (a regular file atomically, a device or FIFO as
//! it is, a symbolic link's target) and never replaces anything that is not
//! a regular file; every failure comes before the first write, so nothing
//! is written unless the exit code is 0; and no temporary file left by a
//! killed run can break a later one.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{mkfifo, run_bounded as run, stderr, xenify_bounded as xenify};
use std::time::Duration;

const FLOPPY: &str = "fixtures/domains/vm-sysprep-floppy.xml";
use common::ALL_LOSSES;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenify-outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn domain() -> Vec<u8> {
    std::fs::read(common::root().join(FLOPPY)).unwrap()
}

/// What the conversion of the floppy domain with every loss accepted is.
fn converted() -> String {
    let text = String::from_utf8(domain()).unwrap();
    xenify::convert_all(&text, &xenify::Policy::accepting_all()).unwrap().output().unwrap()
}

fn hook(domxml: &Path) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_xenify"))
        .env("_hook_domxml", domxml)
        .env("XENIFY_CONFIG", "/dev/null")
        .env("xenify_accept", ALL_LOSSES))
}

fn convert_to(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["convert", FLOPPY, "--accept", ALL_LOSSES, "-o", out.to_str().unwrap()];
    args.extend(extra);
    xenify(&args)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A device node made in the scratch directory (root only): the tests never
/// point xenify at the machine's own /dev.
fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
    if !is_root() {
        eprintln!("skipped: making a device node needs root");
        return false;
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let made = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) } == 0;
    if !made {
        eprintln!("skipped: cannot make a device node here");
    }
    made
}

#[test]
fn o_into_a_fifo_writes_into_the_fifo() {
    let dir = scratch("fifo");
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            std::fs::File::open(&fifo).unwrap().read_to_string(&mut s).unwrap();
            s
        })
    };
    // The reader must hold the FIFO open before xenify writes.
    std::thread::sleep(Duration::from_millis(200));
    let o = convert_to(&fifo, &[]);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    // Should xenify not have written, end the reader's wait.
    drop(std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), converted());
    assert_eq!(names(&dir), ["pipe"]);
}

#[test]
fn o_into_a_fifo_nobody_reads_is_an_error_not_a_wait() {
    let dir = scratch("fifo-unread");
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    let o = convert_to(&fifo, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no process is reading the FIFO"), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(&dir), ["pipe"]);
}

#[test]
fn o_into_a_character_device_writes_into_the_device() {
    let dir = scratch("chardev");
    let null = dir.join("null");
    if !mknod(&null, libc::S_IFCHR, 1, 3) {
        return;
    }
    let o = convert_to(&null, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let meta = std::fs::symlink_metadata(&null).unwrap();
    assert!(meta.file_type().is_char_device(), "the device node was replaced by a regular file");
    assert_eq!(meta.rdev(), libc::makedev(1, 3));
    assert_eq!(names(&dir), ["null"]);
    // The report file is an output too.
    let out = dir.join("out.xml");
    let o = convert_to(&out, &["--report-file", null.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_char_device());
}

#[test]
fn o_refuses_what_it_cannot_write_into_and_leaves_it() {
    let dir = scratch("refused");
    let sock = dir.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = convert_to(&sock, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a socket"), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = convert_to(&sub, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    let block = dir.join("block");
    if mknod(&block, libc::S_IFBLK, 7, 200) {
        let o = convert_to(&block, &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("is a block device"), "{}", stderr(&o));
        assert!(std::fs::symlink_metadata(&block).unwrap().file_type().is_block_device());
    }
    let mut left = names(&dir);
    left.retain(|n| n != "block");
    assert_eq!(left, ["sock", "sub"]);
}

#[test]
fn o_through_a_symbolic_link_writes_its_target_and_keeps_the_link() {
    let dir = scratch("link");
    std::fs::create_dir(dir.join("real")).unwrap();
    let target = dir.join("real/vm.xml");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    // A relative link, and a link to that link.
    std::os::unix::fs::symlink("real/vm.xml", dir.join("link.xml")).unwrap();
    std::os::unix::fs::symlink("link.xml", dir.join("link2.xml")).unwrap();
    let o = convert_to(&dir.join("link2.xml"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), converted());
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o640, "the target's mode was not kept");
    assert_eq!(std::fs::read_link(dir.join("link.xml")).unwrap(), Path::new("real/vm.xml"));
    assert_eq!(std::fs::read_link(dir.join("link2.xml")).unwrap(), Path::new("link.xml"));
    assert_eq!(names(&dir.join("real")), ["vm.xml"], "a temporary file was left beside the target");
    // A link whose target does not exist yet: the target is created.
    std::os::unix::fs::symlink("real/new.xml", dir.join("dangling.xml")).unwrap();
    let o = convert_to(&dir.join("dangling.xml"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.join("real/new.xml")).unwrap(), converted());
    assert!(std::fs::symlink_metadata(dir.join("dangling.xml")).unwrap().file_type().is_symlink());
    // A loop of links is an error, not a hang.
    std::os::unix::fs::symlink("loop-b", dir.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", dir.join("loop-b")).unwrap();
    let o = convert_to(&dir.join("loop-a"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(dir.join("loop-a")).unwrap().file_type().is_symlink());
}

#[test]
fn in_place_and_the_hook_through_a_symbolic_link_replace_the_target() {
    for how in ["in-place", "hook"] {
        let dir = scratch(&format!("inplace-link-{how}"));
        let target = dir.join("vm.xml");
        std::fs::write(&target, domain()).unwrap();
        let link = dir.join("tmpdomxml");
        std::os::unix::fs::symlink("vm.xml", &link).unwrap();
        let o = match how {
            "hook" => hook(&link),
            _ => xenify(&["convert", link.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES]),
        };
        assert_eq!(o.status.code(), Some(0), "{how}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), converted(), "{how}");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{how}: the link was replaced");
        assert_eq!(names(&dir), ["tmpdomxml", "vm.xml"], "{how}");
    }
}

#[test]
fn in_place_and_the_hook_refuse_a_fifo_at_once() {
    for how in ["in-place", "hook"] {
        let dir = scratch(&format!("inplace-fifo-{how}"));
        let fifo = dir.join("tmpdomxml");
        mkfifo(&fifo);
        let o = match how {
            "hook" => hook(&fifo),
            _ => xenify(&["convert", fifo.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES]),
        };
        assert_eq!(o.status.code(), Some(2), "{how}: {}", stderr(&o));
        assert!(stderr(&o).contains("is a FIFO"), "{how}: {}", stderr(&o));
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(names(&dir), ["tmpdomxml"]);
    }
}

#[test]
fn a_report_file_that_cannot_be_written_stops_the_run_before_any_write() {
    let dir = scratch("report");
    let bad_report = dir.join("no-such-dir/report.json");
    // -o: the output is not created.
    let out = dir.join("out.xml");
    let o = convert_to(&out, &["--report-file", bad_report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write the report to"), "{}", stderr(&o));
    assert!(!out.exists(), "the output was written although the run failed");
    // --in-place: the input is untouched.
    let input = dir.join("in.xml");
    std::fs::write(&input, domain()).unwrap();
    let o = xenify(&[
        "convert",
        input.to_str().unwrap(),
        "--in-place",
        "--accept",
        ALL_LOSSES,
        "--report-file",
        bad_report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).unwrap(), domain(), "the input was replaced although the run failed");
    // stdout: nothing printed.
    let o = xenify(&["convert", FLOPPY, "--accept", ALL_LOSSES, "--report-file", bad_report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "the document was printed although the run failed");
    assert_eq!(names(&dir), ["in.xml"]);
}

#[test]
fn the_report_file_says_what_happened() {
    let dir = scratch("report-ok");
    let report = dir.join("report.json");
    let out = dir.join("out.xml");
    let o = convert_to(&out, &["--report-file", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["outcome"], "converted");
    // The output cannot be written (its directory is gone): the report says so.
    let gone = dir.join("gone/out.xml");
    let o = convert_to(&gone, &["--report-file", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["outcome"], "error", "{json}");
    assert!(json["error"].as_str().unwrap().contains("gone/out.xml"), "{json}");
    assert_eq!(names(&dir), ["out.xml", "report.json"]);
}

#[test]
fn a_file_name_near_the_length_limit_can_be_replaced() {
    let dir = scratch("long");
    // 255 bytes, the most a file name may have: the temporary file beside it
    // needs a shorter name of its own.
    let name = format!("{}.xml", "v".repeat(251));
    let path = dir.join(&name);
    std::fs::write(&path, domain()).unwrap();
    let o = xenify(&["convert", path.to_str().unwrap(), "--in-place", "--accept", ALL_LOSSES]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), converted());
    assert_eq!(names(&dir), [name]);
}

#[test]
fn leftover_temporary_files_never_break_a_run_and_do_not_accumulate() {
    let dir = scratch("leftovers");
    let path = dir.join("tmpdomxml");
    std::fs::write(&path, domain()).unwrap();
    // What a run killed during its write (Vdsm kills with SIGKILL) leaves:
    // old ones, of every process id a later hook could get...
    let max_pid: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").map_or(32768, |s| s.trim().parse().unwrap());
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut made = 0;
    // Every pid is too many files; the pids the next few children get are
    // the ones after this process's most recent child.
    let mut probe = Command::new("true").spawn().unwrap();
    let next = probe.id();
    probe.wait().unwrap();
    for pid in (next..next + 400).map(|p| p % max_pid) {
        for n in 0..2 {
            let f = dir.join(format!(".tmpdomxml.xenify-{pid}-{n}.tmp"));
            std::fs::write(&f, "half a domain").unwrap();
            std::fs::File::options().write(true).open(&f).unwrap().set_modified(old).unwrap();
            made += 1;
        }
    }
    // ...and one that a running xenify is writing right now: young, and locked.
    let busy = dir.join(".other.xml.xenify-1-0.tmp");
    let busy_file = std::fs::File::create(&busy).unwrap();
    // SAFETY: flock on a file descriptor we own.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&busy_file), libc::LOCK_EX) }, 0);
    // An old one that is locked is also being written (a slow disk).
    let slow = dir.join(".slow.xml.xenify-2-0.tmp");
    let slow_file = std::fs::File::create(&slow).unwrap();
    slow_file.set_modified(old).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&slow_file), libc::LOCK_EX) }, 0);
    // Files that only look like ours are not touched.
    std::fs::write(dir.join("notes.xenify-1-1.tmp"), "mine").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join(".link.xenify-3-0.tmp")).unwrap();
    let o = hook(&path);
    assert_eq!(o.status.code(), Some(0), "{} leftovers: {}", made, stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), converted());
    assert_eq!(
        names(&dir),
        [
            ".link.xenify-3-0.tmp",
            ".other.xml.xenify-1-0.tmp",
            ".slow.xml.xenify-2-0.tmp",
            "notes.xenify-1-1.tmp",
            "tmpdomxml"
        ],
        "stale temporary files were left, or live ones removed"
    );
    drop(busy_file);
    drop(slow_file);
}

/// The command lines of the README's "Command line" section, run as
/// written: `virsh dumpxml myvm` and `vm.xml` stand for the demo domain.
#[test]
fn the_readmes_examples_work_as_written() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let section = &readme[readme.find("\n## Command line").unwrap()..];
    let section = &section[..section[1..].find("\n## ").unwrap()];
    let examples: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("virsh dumpxml myvm | xenify convert") || l.starts_with("xenify convert vm.xml"))
        .collect();
    assert_eq!(examples.len(), 3, "{examples:?}");
    // The filter in "Vdsm still talks to qemu:///system", up to its `&&`.
    let filter =
        readme.split('`').find(|s| s.starts_with("virsh dumpxml myvm | xenify") && s.contains("&& virsh")).unwrap();
    let demo = common::root().join("fixtures/domains/hostedengine-lease.xml");
    let bin = Path::new(env!("CARGO_BIN_EXE_xenify")).parent().unwrap();
    for example in examples.iter().copied().chain([filter.split(" && ").next().unwrap()]) {
        let dir = scratch("readme");
        std::fs::copy(&demo, dir.join("vm.xml")).unwrap();
        let line = example.replace("virsh dumpxml myvm |", "cat vm.xml |");
        let o = run(Command::new("sh")
            .args(["-c", &line])
            .current_dir(&dir)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("XENIFY_CONFIG", "/dev/null"));
        assert_eq!(o.status.code(), Some(0), "{example}: {}", stderr(&o));
        if let Some(out) = line.split(" -o ").nth(1) {
            let out = std::fs::read_to_string(dir.join(out.trim())).unwrap();
            assert!(out.contains("<domain type=\"xen\""), "{example}");
        } else {
            let diff = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                diff.starts_with("--- a/vm.xml\n+++ b/vm.xml\n")
                    && diff.lines().any(|l| l.starts_with('+') && l.contains("<target ")),
                "{example}: {diff}"
            );
        }
    }
}
