//! The file I/O of the conversion, shared by the CLI, the hook and `check`
//! (the library reads no files). Reads are bounded and never wait; writes go
//! into what a path is and never replace anything but a regular file.
//!
//! - A named input is read if it is a regular file or a character device
//!   (`/dev/null` as an empty policy), opened and read with O_NONBLOCK so
//!   that a terminal with nothing to read is an error, not a wait. A FIFO,
//!   socket or block device is refused by kind: a FIFO nobody writes would
//!   block forever (stdin stays the way to pipe a document in). Every read
//!   stops at its bound plus one byte.
//! - An output is resolved before anything is written ([`Dest::resolve`]).
//!   Symbolic links are followed to their target. A regular file, or a path
//!   that does not exist yet, is replaced atomically: a temporary file in
//!   the same directory, written, synced, then renamed, keeping the mode and
//!   owner. A character device or FIFO is written into as it is (a FIFO
//!   nobody reads is an error, not a wait). A directory, socket or block
//!   device is refused. [`Dest::stage`] does all that can fail and
//!   [`Staged::commit`] only renames (or writes into the device), so a caller
//!   with several outputs stages them all before it commits the first.
//! - Temporary files are `.NAME.xenify-PID-N.tmp`, created exclusively (if
//!   a leftover holds that name the next N is tried) and locked with
//!   flock(2) while they exist. A run killed during its write (Vdsm kills
//!   with SIGKILL) leaves one behind; every later write into the same
//!   directory removes leftovers that are its user's, older than
//!   [`STALE_AFTER`] and unlocked, so never one a running xenify is writing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xenify::policy::{PolicyError, Source};
use xenify::Policy;

/// The policy file's bound: a policy is a few KiB, and `/dev/zero` must not
/// be read to the end.
pub const POLICY_LIMIT: usize = 1 << 20;

/// A temporary file this old and unlocked is a leftover of a killed run. A
/// live writer locks its file the moment it creates it; the age covers that
/// moment, and writers of versions that did not lock.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Reads at most `limit + 1` bytes, so that an oversized input is detected
/// without reading all of it.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    read_bounded_into(reader, limit, Vec::new())
}

fn read_bounded_into(reader: impl Read, limit: usize, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    reader.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// What a file type is, for messages: "a FIFO (named pipe)".
fn what(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

fn not_regular(t: fs::FileType) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("is {}, not a regular file", what(t)))
}

/// Opens a named input without waiting: O_NONBLOCK keeps open(2) of a FIFO
/// from waiting for a writer (it is then refused) and a read of a terminal
/// from waiting for input; on a regular file it changes nothing.
fn open_input(path: &Path) -> io::Result<File> {
    let file =
        OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(|e| {
            match fs::metadata(path) {
                // open(2) of a socket fails with ENXIO, which says nothing useful.
                Ok(m) if m.file_type().is_socket() => not_regular(m.file_type()),
                _ => e,
            }
        })?;
    let t = file.metadata()?.file_type();
    if t.is_file() || t.is_char_device() {
        Ok(file)
    } else {
        Err(not_regular(t))
    }
}

/// Reads the file at `path`, at most `limit + 1` bytes: a regular file, or
/// a character device that has the bytes ready. Anything else is refused.
pub fn read_file(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = open_input(path)?;
    let meta = file.metadata()?;
    // The buffer at its final size: no copies while it grows.
    let capacity = if meta.is_file() { (meta.len() as usize).min(limit) + 1 } else { 0 };
    read_bounded_into(&file, limit, Vec::with_capacity(capacity)).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(e.kind(), "is a character device with nothing to read; xenify does not wait for input")
        } else {
            e
        }
    })
}

/// Applies the policy file at `path` to `policy`. A missing file is no
/// error unless `required` (a path the administrator named rather than the
/// default).
pub fn read_policy(policy: &mut Policy, path: &Path, required: bool) -> Result<(), PolicyError> {
    let name = path.display().to_string();
    let fail = |message: String| PolicyError {
        key: String::new(),
        source: Source::File { path: name.clone(), line: 0 },
        message: format!("cannot read it: {message}"),
    };
    let bytes = match read_file(path, POLICY_LIMIT) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => return Ok(()),
        Err(e) => return Err(fail(e.to_string())),
    };
    if bytes.len() > POLICY_LIMIT {
        return Err(fail(format!(
            "it is larger than the limit of {} MiB; a policy file is a few KiB",
            POLICY_LIMIT >> 20
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("it is not UTF-8".into()))?;
    policy.apply_toml(&text, &name)
}

/// What writes an output's bytes; tests substitute one that fails
/// part-way, as a full disk does.
pub type Writer<'w> = &'w mut dyn FnMut(&mut dyn Write) -> io::Result<()>;

/// Where an output goes, decided before anything is written.
#[derive(Debug)]
pub struct Dest {
    /// The path to write: the named one, or where its links lead.
    path: PathBuf,
    kind: DestKind,
}

#[derive(Debug)]
enum DestKind {
    /// A regular file (its metadata), or none yet: replaced atomically.
    File(Option<fs::Metadata>),
    /// A character device or FIFO: written into.
    Stream,
}

impl Dest {
    /// Resolves an output path: see the module comment.
    pub fn resolve(path: &Path) -> io::Result<Dest> {
        // First what the path leads to as open(2) sees it: /dev/stdout leads
        // through /proc/self/fd/1 to a pipe whose link text is no path.
        match fs::metadata(path) {
            Ok(m) if m.is_file() => Dest::regular(path, &m),
            Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => {
                Ok(Dest { path: path.to_path_buf(), kind: DestKind::Stream })
            }
            Ok(m) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "is {}; xenify writes only into a regular file, a character device or a FIFO",
                    what(m.file_type())
                ),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match follow_links(path)? {
                // A link whose target does not exist yet: the target is created.
                (target, None) => Ok(Dest { path: target, kind: DestKind::File(None) }),
                (_, Some(_)) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// An existing regular file, which `--in-place` and the hook read and
    /// then replace.
    pub fn existing(path: &Path) -> io::Result<Dest> {
        let m = fs::metadata(path)?;
        if !m.is_file() {
            return Err(not_regular(m.file_type()));
        }
        Dest::regular(path, &m)
    }

    /// The regular file `path` leads to, `m` its metadata: links are
    /// followed so that the rename replaces the target, not the link.
    fn regular(path: &Path, m: &fs::Metadata) -> io::Result<Dest> {
        match follow_links(path)? {
            (target, Some(t)) if (t.dev(), t.ino()) == (m.dev(), m.ino()) => {
                Ok(Dest { path: target, kind: DestKind::File(Some(t)) })
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot tell which file its links lead to")),
        }
    }

    /// The path that is read and written: the target of a link.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything but the last step: the bytes `write` produces go to a
    /// synced temporary file beside the destination (for a device or FIFO,
    /// it is opened and the bytes are kept). Nothing is replaced until
    /// [`Staged::commit`]; dropping the result removes the temporary file.
    pub fn stage(&self, write: Writer) -> io::Result<Staged> {
        match &self.kind {
            DestKind::Stream => {
                let file = open_stream(&self.path)?;
                let mut bytes = Vec::new();
                write(&mut bytes)?;
                Ok(Staged(Some(Pending::Stream { file, bytes })))
            }
            DestKind::File(existing) => {
                let (tmp, file) = create_temp(&self.path)?;
                let mut staged = Staged(Some(Pending::Temp { tmp, dest: self.path.clone(), file }));
                let Some(Pending::Temp { file, .. }) = &mut staged.0 else { unreachable!() };
                write(file)?;
                match existing {
                    Some(m) => {
                        // Only root can give a file away; for anyone else it is theirs already.
                        let _ = std::os::unix::fs::fchown(&*file, Some(m.uid()), Some(m.gid()));
                        file.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))?;
                    }
                    None => file.set_permissions(fs::Permissions::from_mode(0o644))?,
                }
                file.sync_all()?;
                Ok(staged)
            }
        }
    }
}

/// An output written but not yet in place.
pub struct Staged(Option<Pending>);

enum Pending {
    /// The temporary file, locked while it exists.
    Temp {
        tmp: PathBuf,
        dest: PathBuf,
        file: File,
    },
    Stream {
        file: File,
        bytes: Vec<u8>,
    },
}

impl Staged {
    /// Puts the output in place: a rename, or the write into the device.
    pub fn commit(mut self) -> io::Result<()> {
        match self.0.take() {
            Some(Pending::Temp { tmp, dest, file }) => {
                let renamed = fs::rename(&tmp, &dest);
                if renamed.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                drop(file);
                renamed
            }
            Some(Pending::Stream { mut file, bytes }) => file.write_all(&bytes).and_then(|()| file.flush()),
            None => Ok(()),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(Pending::Temp { tmp, .. }) = self.0.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Replaces the regular file `path` (following links) with what `write`
/// produces, atomically. On any failure `path` is untouched and the
/// temporary file is gone.
pub fn replace_with(path: &Path, write: Writer) -> io::Result<()> {
    Dest::existing(path)?.stage(write)?.commit()
}

/// Follows symbolic links from `path` to what they lead to, which need not
/// exist (a link to a file not written yet): the path and its metadata.
fn follow_links(path: &Path) -> io::Result<(PathBuf, Option<fs::Metadata>)> {
    let mut p = path.to_path_buf();
    // As many links as the kernel follows before ELOOP.
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                // A relative target is relative to the link's directory; an
                // absolute one replaces the path.
                p = p.parent().map_or_else(|| target.clone(), |dir| dir.join(&target));
            }
            Ok(m) => return Ok((p, Some(m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((p, None)),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Opens a character device or FIFO for writing, without creating or
/// truncating anything, and without waiting for a FIFO's reader.
fn open_stream(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(
        |e| match e.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(io::ErrorKind::BrokenPipe, "no process is reading the FIFO"),
            _ => e,
        },
    )?;
    // Replaced by something else since it was resolved: write nothing.
    let t = file.metadata()?.file_type();
    if !(t.is_char_device() || t.is_fifo()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("became {} while xenify ran", what(t))));
    }
    // From here on writes wait for the reader to drain the pipe, as any
    // writer's do.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Creates and locks a temporary file beside `dest`, first removing stale
/// ones there. Its name never collides with a leftover: O_EXCL refuses an
/// existing name, and then the next one is tried.
fn create_temp(dest: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    remove_stale(dir);
    let name = short_name(dest);
    let pid = std::process::id();
    for _ in 0..10_000 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.xenify-{pid}-{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
            Ok(file) => {
                // A cleaner that opened the file in the instant before this
                // lock sees it young and leaves it.
                // SAFETY: flock on a descriptor this function owns.
                unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "every temporary file name beside it is taken"))
}

/// The file name of `path` cut to at most 100 bytes, so that the temporary
/// name stays within the 255 bytes a name may have.
fn short_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut end = name.len().min(100);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Is `name` one of xenify's temporary file names, `.NAME.xenify-PID-N.tmp`?
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return false };
    let Some((_, ids)) = rest.rsplit_once(".xenify-") else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    ids.split_once('-').is_some_and(|(pid, n)| digits(pid) && digits(n))
}

/// Removes the temporary files in `dir` that killed runs left: ours (same
/// user), regular files (never through a link), older than [`STALE_AFTER`],
/// and unlocked (no running xenify holds them). Best effort: whatever cannot
/// be checked is left.
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
        else {
            continue;
        };
        let Ok(m) = file.metadata() else { continue };
        let old = m.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= STALE_AFTER);
        if !m.is_file() || m.uid() != me || !old {
            continue;
        }
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        // Still the file that was checked under that name.
        if fs::symlink_metadata(&path).is_ok_and(|now| (now.dev(), now.ino()) == (m.dev(), m.ino())) {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenify-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failing_write_leaves_the_file_and_no_temporary() {
        let dir = scratch("failing");
        let path = dir.join("domxml");
        fs::write(&path, b"original").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = replace_with(&path, &mut |f| {
            f.write_all(b"new")?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device"))
        });
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs::read(&path).unwrap(), b"original");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        replace_with(&path, &mut |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staged_output_replaces_nothing_until_committed() {
        let dir = scratch("staged");
        let path = dir.join("out.xml");
        fs::write(&path, b"original").unwrap();
        let dest = Dest::resolve(&path).unwrap();
        let staged = dest.stage(&mut |w| w.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"original");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        drop(staged);
        assert_eq!(fs::read(&path).unwrap(), b"original");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "dropping a staged output leaves its temporary file");
        dest.stage(&mut |w| w.write_all(b"new")).unwrap().commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftovers_under_the_next_names_do_not_stop_a_write() {
        let dir = scratch("collide");
        let path = dir.join("domxml");
        fs::write(&path, b"original").unwrap();
        // Young leftovers (not yet stale) under every name this process
        // would try next: a killed run of the same process id left them.
        // (This test binary writes a handful of files before, so its counter
        // is well below 200.)
        let pid = std::process::id();
        for n in 0..200 {
            fs::write(dir.join(format!(".domxml.xenify-{pid}-{n}.tmp")), b"half").unwrap();
        }
        replace_with(&path, &mut |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_are_recognised_and_stay_short() {
        assert!(is_temp_name(".vm.xml.xenify-123-0.tmp"));
        assert!(is_temp_name(".a.xenify-b.xenify-1-22.tmp"));
        for not in [
            "vm.xml.xenify-1-0.tmp",
            ".vm.xml.xenify-1-.tmp",
            ".vm.xml.xenify-x-0.tmp",
            ".vm.xml.tmp",
            ".vm.xenify-1-0.tmpx",
        ] {
            assert!(!is_temp_name(not), "{not}");
        }
        let long = PathBuf::from(format!("/d/{}", "é".repeat(200)));
        let name = short_name(&long);
        assert!(name.len() <= 100 && name.chars().all(|c| c == 'é'));
    }
}
