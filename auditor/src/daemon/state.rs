//! The daemon's registry, kept beside its pinned eBPF programs so that a restarted daemon goes
//! on learning the containers the kernel side kept counting: which container each group is,
//! how it is recognised, where its observation goes, and what the previous daemon had already
//! read from the ring buffer (executable names, argument tuples: the kernel sends each once).
//!
//! Written atomically at every registration and end, every second while the ring buffer
//! brings something new, and at a clean stop. Pure data: reading and writing it does no I/O
//! beyond the one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where state files go (tmpfs: like the pins, they do not outlive a reboot).
pub const STATE_DIR: &str = "/run/auditor/daemon";
/// The version of this file's layout.
pub const FORMAT: u32 = 2;
/// The largest state file read (64 containers' worth of argument tuples, with room).
const MAX_STATE: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {msg}")]
    Read { path: PathBuf, msg: String },
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
    #[error(
        "instance name {0:?}: give 1 to 64 letters, digits, `-` or `_`, starting with a letter or digit"
    )]
    Instance(String),
}

/// One daemon's registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// The eBPF object id of the build that pinned the programs (`bpf::pin::object_id`).
    pub object: String,
    pub socket: PathBuf,
    /// Set by a daemon that stopped cleanly, having saved all it read; unset while one runs.
    pub clean: bool,
    /// Ring buffer records of no tracked container, over the daemon's restarts.
    pub orphan_events: u64,
    /// Groups that could not be reset, never to be reused.
    #[serde(default)]
    pub retired: Vec<u32>,
    pub containers: Vec<Saved>,
}

/// One tracked container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub group: u32,
    pub id: String,
    pub runtime: Option<String>,
    pub engine: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub pid: u32,
    /// Its own cgroup v2 directory and id.
    pub cgroup: Option<(PathBuf, u64)>,
    pub mntns: Option<u32>,
    pub initial_tids: Vec<u32>,
    /// Its observation file.
    pub output: PathBuf,
    /// Registration time, ms since the Unix epoch.
    pub started_ms: u64,
    pub start_boot_ns: u64,
    pub initial_threads: u64,
    #[serde(default)]
    pub initial_exes: Vec<u32>,
    #[serde(default)]
    pub exe_names: BTreeMap<u32, String>,
    /// Argument tuple records as the ring buffer carried them, hexadecimal.
    #[serde(default)]
    pub args_events: Vec<String>,
    #[serde(default)]
    pub malformed_events: u64,
}

/// The instance a socket's daemon is, unless named: `default` for the default socket, else
/// one derived from the socket's path (two daemons on two sockets never share pins).
pub fn instance_of(socket: &Path, default_socket: &Path) -> String {
    if socket == default_socket {
        return "default".into();
    }
    let mut h = auditor_common::hash::FNV64_OFFSET;
    for &b in socket.as_os_str().as_encoded_bytes() {
        h = auditor_common::hash::fnv64_byte(h, b);
    }
    format!("sock-{h:016x}")
}

/// Check a name given with `--instance`: it names a file and a bpffs directory.
pub fn check_instance(name: &str) -> Result<(), StateError> {
    // (bpffs refuses names with a dot.)
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StateError::Instance(name.to_owned()))
    }
}

/// The state file of `instance` in `dir`.
pub fn path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.json"))
}

/// Read a state file: `None` if there is none.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let err = |msg: String| StateError::Read {
        path: path.to_owned(),
        msg,
    };
    let bytes = match crate::fsutil::read_capped(path, MAX_STATE) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(err(format!("larger than {MAX_STATE} bytes"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    if state.format != FORMAT {
        return Err(err(format!(
            "layout version {} (this build reads {FORMAT})",
            state.format
        )));
    }
    Ok(Some(state))
}

/// Write a state file atomically, root-only.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| StateError::Read {
                path: dir.to_owned(),
                msg: format!("creating the state directory: {e}"),
            })?;
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    let text = serde_json::to_vec(state).map_err(|e| StateError::Read {
        path: path.to_owned(),
        msg: e.to_string(),
    })?;
    crate::fsutil::write_atomic(path, &text)?;
    Ok(())
}

/// Bytes as lowercase hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hexadecimal back to bytes; `None` if it is not.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_bad_one_says_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path(), "default");
        assert!(load(&p).expect("absent").is_none());
        let state = State {
            format: FORMAT,
            object: "0123".into(),
            containers: vec![Saved {
                group: 3,
                id: "c1".into(),
                cgroup: Some(("/sys/fs/cgroup/x".into(), 42)),
                exe_names: [(7, "/bin/sh".to_owned())].into(),
                args_events: vec![to_hex(&[0, 1, 0xab, 0xff])],
                ..Default::default()
            }],
            ..Default::default()
        };
        save(&p, &state).expect("save");
        let back = load(&p).expect("load").expect("present");
        assert_eq!(back.containers[0].cgroup, state.containers[0].cgroup);
        assert_eq!(
            from_hex(&back.containers[0].args_events[0]),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);

        std::fs::write(&p, b"{\"format\":1,").expect("write");
        let e = load(&p).expect_err("truncated").to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        std::fs::write(
            &p,
            serde_json::to_vec(&State { format: 9, ..state }).expect("json"),
        )
        .expect("write");
        let e = load(&p).expect_err("other layout").to_string();
        assert!(e.contains("layout version 9"), "{e}");
    }

    #[test]
    fn instance_names_are_checked_and_derived_per_socket() {
        let default = Path::new("/run/auditor/daemon.sock");
        assert_eq!(instance_of(default, default), "default");
        let a = instance_of(Path::new("/tmp/a/daemon.sock"), default);
        let b = instance_of(Path::new("/tmp/b/daemon.sock"), default);
        assert_ne!(a, b);
        check_instance(&a).expect("derived names are valid");
        for bad in ["", ".x", "a/b", "..", "a.b", "_x", &"x".repeat(65), "a b"] {
            assert!(check_instance(bad).is_err(), "{bad:?}");
        }
        check_instance("node-1_a").expect("valid");
    }
}
