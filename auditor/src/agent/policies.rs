//! The agent's policy directory: which native or OCI policy serves a container.
//!
//! A container names its policy (OCI `listenerMetadata`, an annotation, LXC's notify cookie);
//! that name is untrusted input from the runtime's configuration. It must be a plain file name
//! stem — letters, digits, `.`, `_`, `-`, not starting with `.` — and resolves to `NAME.toml`
//! (native) or `NAME.json` (OCI) directly inside the directory, never through a symlink that
//! leaves it. A container that names none gets the policy called `default`.

use std::path::{Path, PathBuf};

use crate::broker::decide::{DecideError, Decider};
use crate::policy::check::{self, Severity};
use crate::policy::formats::{self, FormatError, ImportOptions};
use crate::policy::model::Policy;
use crate::policy::MAX_INPUT_BYTES;

/// The policy for containers that name none.
pub const DEFAULT_NAME: &str = "default";
/// Longest accepted policy name.
pub const MAX_NAME_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum PolicyDirError {
    #[error("policy directory {}: {err} (create it, or pass --policy-dir)", dir.display())]
    Dir { dir: PathBuf, err: std::io::Error },
    #[error("policy name {name:?} is not allowed: {why} (use letters, digits, '.', '_', '-'; at most {MAX_NAME_LEN} characters)")]
    BadName { name: String, why: &'static str },
    #[error("no policy {name:?} in {}: expected {name}.toml or {name}.json there", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("policy {name:?}: both {name}.toml and {name}.json exist in {}; keep one", dir.display())]
    Ambiguous { name: String, dir: PathBuf },
    #[error("{}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}: the file is larger than {} MiB", path.display(), MAX_INPUT_BYTES / (1024 * 1024))]
    TooLarge { path: PathBuf },
    #[error("{}: {err}", path.display())]
    Format {
        path: PathBuf,
        err: Box<FormatError>,
    },
    #[error("{}: {first} ({errors} error(s); run `auditor check {}`)", path.display(), path.display())]
    Check {
        path: PathBuf,
        errors: usize,
        first: String,
    },
    #[error("{}: {err}", path.display())]
    Decide {
        path: PathBuf,
        err: Box<DecideError>,
    },
}

/// A policy ready to serve a container.
pub struct Loaded {
    /// The name it was looked up by.
    pub name: String,
    pub path: PathBuf,
    pub policy: Policy,
    pub decider: Decider,
    /// SHA-256 of the file's bytes (hex): tells a changed policy across a handover.
    pub digest: String,
}

/// The directory of policies, `--policy-dir`.
#[derive(Clone, Debug)]
pub struct PolicyDir {
    dir: PathBuf,
    import: ImportOptions,
}

/// Check an untrusted policy name; `None`/empty means [`DEFAULT_NAME`].
pub fn validate_name(name: Option<&str>) -> Result<&str, PolicyDirError> {
    let name = match name.map(str::trim) {
        None | Some("") => return Ok(DEFAULT_NAME),
        Some(n) => n,
    };
    let bad = |why| {
        Err(PolicyDirError::BadName {
            name: name.chars().take(MAX_NAME_LEN + 8).collect(),
            why,
        })
    };
    if name.len() > MAX_NAME_LEN {
        return bad("too long");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if name.contains("..") {
        return bad("it contains '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("it has a character other than a letter, digit, '.', '_' or '-'");
    }
    Ok(name)
}

impl PolicyDir {
    /// Open the directory (it must exist and be a directory).
    pub fn open(dir: &Path, import: ImportOptions) -> Result<PolicyDir, PolicyDirError> {
        let dir = dir.canonicalize().map_err(|err| PolicyDirError::Dir {
            dir: dir.to_owned(),
            err,
        })?;
        if !dir.is_dir() {
            return Err(PolicyDirError::Dir {
                dir,
                err: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        Ok(PolicyDir { dir, import })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file a (validated) name resolves to.
    pub fn resolve(&self, name: Option<&str>) -> Result<(String, PathBuf), PolicyDirError> {
        let name = validate_name(name)?;
        let found: Vec<PathBuf> = ["toml", "json"]
            .iter()
            .map(|ext| self.dir.join(format!("{name}.{ext}")))
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect();
        let path = match found.as_slice() {
            [] => {
                return Err(PolicyDirError::NotFound {
                    name: name.to_owned(),
                    dir: self.dir.clone(),
                })
            }
            [p] => p.clone(),
            _ => {
                return Err(PolicyDirError::Ambiguous {
                    name: name.to_owned(),
                    dir: self.dir.clone(),
                })
            }
        };
        // A symlink may point elsewhere: what it resolves to must still be in the directory.
        let real = path.canonicalize().map_err(|err| PolicyDirError::Read {
            path: path.clone(),
            err,
        })?;
        if real.parent() != Some(self.dir.as_path()) {
            return Err(PolicyDirError::BadName {
                name: name.to_owned(),
                why: "its file is a symlink that leaves the policy directory",
            });
        }
        Ok((name.to_owned(), real))
    }

    /// Look up, read, check and prepare a policy. Read afresh on every call, so that a
    /// policy edited on disk serves the next container.
    pub fn load(&self, name: Option<&str>) -> Result<Loaded, PolicyDirError> {
        let (name, path) = self.resolve(name)?;
        let read = |err| PolicyDirError::Read {
            path: path.clone(),
            err,
        };
        let Some(bytes) = crate::fsutil::read_capped(&path, MAX_INPUT_BYTES).map_err(read)? else {
            return Err(PolicyDirError::TooLarge { path });
        };
        let digest = {
            use sha2::Digest as _;
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        let policy =
            formats::import(&text, &self.import).map_err(|err| PolicyDirError::Format {
                path: path.clone(),
                err: Box::new(err),
            })?;
        // A default of notify makes the policy interactive (see `agent::prompts`), checked as
        // `enforce --interactive` checks it (native, so that always answers can be written).
        let options = check::CheckOptions {
            interactive: policy.default_action.is_notify(),
        };
        let errors: Vec<_> = check::check_with(&policy, options)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        if let Some(first) = errors.first() {
            return Err(PolicyDirError::Check {
                path,
                errors: errors.len(),
                first: first.to_string(),
            });
        }
        let decider = Decider::new(policy.clone()).map_err(|err| PolicyDirError::Decide {
            path: path.clone(),
            err: Box::new(err),
        })?;
        Ok(Loaded {
            name,
            path,
            policy,
            decider,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_stems() {
        assert_eq!(validate_name(None).unwrap(), "default");
        assert_eq!(validate_name(Some("")).unwrap(), "default");
        assert_eq!(validate_name(Some("web-1.v2_x")).unwrap(), "web-1.v2_x");
        for bad in [
            "../etc/passwd",
            "a/b",
            ".hidden",
            "..",
            "a..b",
            "web..",
            "a b",
            "nul\0",
            "é",
        ] {
            assert!(
                matches!(
                    validate_name(Some(bad)),
                    Err(PolicyDirError::BadName { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(validate_name(Some(&"a".repeat(MAX_NAME_LEN + 1))).is_err());
    }

    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PolicyDir) {
        let t = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(t.path().join(name), text).unwrap();
        }
        let d = PolicyDir::open(t.path(), ImportOptions::default()).unwrap();
        (t, d)
    }

    const POLICY: &str = "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n\n[[rule]]\nnames = [\"read\"]\naction = \"allow\"\n";

    #[test]
    fn loads_by_name_and_default() {
        let (_t, d) = dir_with(&[("default.toml", POLICY), ("web.toml", POLICY)]);
        assert_eq!(d.load(None).unwrap().name, "default");
        let l = d.load(Some("web")).unwrap();
        assert_eq!(l.name, "web");
        assert!(l.path.ends_with("web.toml"));
        assert!(matches!(
            d.load(Some("db")),
            Err(PolicyDirError::NotFound { .. })
        ));
    }

    #[test]
    fn refuses_symlinks_out_and_ambiguity() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.toml"), POLICY).unwrap();
        let (t, d) = dir_with(&[("both.toml", POLICY), ("both.json", "{}")]);
        std::os::unix::fs::symlink(outside.path().join("x.toml"), t.path().join("esc.toml"))
            .unwrap();
        assert!(matches!(
            d.load(Some("esc")),
            Err(PolicyDirError::BadName { .. })
        ));
        assert!(matches!(
            d.load(Some("both")),
            Err(PolicyDirError::Ambiguous { .. })
        ));
    }

    #[test]
    fn a_broken_policy_says_where() {
        let (_t, d) = dir_with(&[(
            "bad.toml",
            "version = 1\ndefault_action = \"errno\"\nbogus = 3\n",
        )]);
        let e = d.load(Some("bad")).err().expect("must fail").to_string();
        assert!(e.contains("bad.toml"), "{e}");
    }
}
