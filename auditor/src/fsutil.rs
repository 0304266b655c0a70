//! Files that matter are written atomically: a temporary file in the same directory, fsync,
//! rename over the target.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
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

/// Write `data` to `path` atomically (see the module doc); a replaced file keeps its mode
/// and owner.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A file that is replaced keeps its mode and owner (a policy file that runc reads stays
    // readable); a new one gets 0666 less the umask, as a shell redirection would.
    let existing = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file);
    let mut tmp = tempfile::Builder::new()
        .prefix(".auditor-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    if let Some(m) = &existing {
        let f = tmp.as_file();
        if (m.uid(), m.gid())
            != (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        {
            // Best effort: only root may give a file away.
            let _ = std::os::unix::fs::fchown(f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Read `path` whole, but never more than `limit` bytes: `Ok(None)` when it holds more (a
/// file that grows while it is read, or a device, is bounded too).
pub fn read_capped(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Check early that `path` can be written atomically (its directory exists and is writable), so
/// that a long learning run does not end in an unwritable output.
pub fn check_writable(path: &Path) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    tempfile::Builder::new()
        .prefix(".auditor-")
        .tempfile_in(dir)
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt as _;

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
    fn a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("policy.toml");
        std::fs::write(&p, "old")?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))?;
        write_atomic(&p, b"new")?;
        assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read(&p)?, b"new");
        // A new file: 0666 less the umask (read back by creating a probe the same way).
        let fresh = dir.path().join("fresh.json");
        write_atomic(&fresh, b"x")?;
        let probe = dir.path().join("probe");
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&probe)?,
        );
        assert_eq!(
            std::fs::metadata(&fresh)?.permissions().mode() & 0o7777,
            std::fs::metadata(&probe)?.permissions().mode() & 0o7777
        );
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
