//! Reading inputs with a size bound, reading the policy file, and replacing
//! files atomically: the only file I/O of the conversion, shared by the CLI
//! and the hook (the library reads no files).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use xenify::policy::{PolicyError, Source};
use xenify::Policy;

/// Reads at most `limit + 1` bytes, so that an oversized input is detected
/// without reading all of it.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    read_bounded_into(reader, limit, Vec::new())
}

fn read_bounded_into(reader: impl Read, limit: usize, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    reader.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads the file at `path`, refusing a directory by name.
pub fn read_file(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory, not a file"));
    }
    // The buffer at its final size: no copies while it grows.
    read_bounded_into(file, limit, Vec::with_capacity((meta.len() as usize).min(limit) + 1))
}

/// Applies the policy file at `path` to `policy`. A missing file is no
/// error unless `required` (a path the administrator named rather than the
/// default).
pub fn read_policy(policy: &mut Policy, path: &Path, required: bool) -> Result<(), PolicyError> {
    let name = path.display().to_string();
    match fs::read_to_string(path) {
        Ok(text) => policy.apply_toml(&text, &name),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => Ok(()),
        Err(e) => Err(PolicyError {
            key: String::new(),
            source: Source::File { path: name, line: 0 },
            message: format!("cannot read it: {e}"),
        }),
    }
}

/// What writes the new file's bytes; tests substitute one that fails
/// part-way, as a full disk does.
pub type Writer<'w> = &'w mut dyn FnMut(&mut dyn Write) -> io::Result<()>;

/// Writes what `write` produces to a new file beside `path`, renamed over
/// `path` only once fully written and synced. The mode and owner of an
/// existing `path` are kept. On any failure `path` is untouched and the
/// temporary file is gone.
pub fn replace_with(path: &Path, write: Writer) -> io::Result<()> {
    let existing = match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a directory, not a file")),
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let tmp = temp_path(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let result = (|| {
        write(&mut file)?;
        match &existing {
            Some(m) => {
                // Only root can give a file away; for anyone else it is theirs already.
                let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
                file.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))?;
            }
            None => file.set_permissions(fs::Permissions::from_mode(0o644))?,
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A name beside `path` that no other process uses: the process id and a
/// counter, created with O_EXCL by the caller.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.xenify-{}-{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_write_leaves_the_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("xenify-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
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
}
