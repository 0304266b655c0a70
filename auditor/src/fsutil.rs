//! Files that matter are written atomically: a temporary file in the same directory, fsync,
//! rename over the target.

use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot write {path}: {source} (check that the directory exists and is writable)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Write `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    let err = |source| FsError::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".auditor-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Check early that `path` can be written atomically (its directory exists and is writable), so
/// that a long learning run does not end in an unwritable output.
pub fn check_writable(path: &Path) -> Result<(), FsError> {
    let err = |source| FsError::Write { path: path.to_owned(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory")));
    }
    tempfile::Builder::new().prefix(".auditor-").tempfile_in(dir).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("out.json");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p)?, b"two");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let e = check_writable(Path::new("/nonexistent-dir/x.json"));
        assert!(e.is_err());
        let e = check_writable(Path::new("/tmp"));
        assert!(e.is_err(), "a directory is not a file to write");
    }
}
