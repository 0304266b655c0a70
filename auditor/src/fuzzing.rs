//! The entry points of the fuzz targets (`fuzz/fuzz_targets/`, run by `cargo xtask fuzz`):
//! one per parser of input from outside auditor — native policies, OCI/Docker JSON profiles,
//! LXC's seccomp proxy records, the OCI agent's messages, the daemon's requests and hook
//! input, the live session's messages, observation files. Each must return (an error is fine)
//! for any bytes: never panic, never hang. The unit tests replay the committed corpus
//! (`fuzz/corpus/TARGET/`) through the same functions, so every input a fuzzer once found
//! interesting stays tested without a fuzzer.

use crate::seccomp::notify::SeccompNotifSizes;

/// A fuzz target: its name (the directory of its corpus) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("native_policy", native_policy),
    ("oci_import", oci_import),
    ("lxc_record", lxc_record),
    ("agent_message", agent_message),
    ("daemon_protocol", daemon_protocol),
    ("session_protocol", session_protocol),
    ("observation", observation),
];

/// A native (TOML) policy. What parses must write back and parse to the same policy.
pub fn native_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = crate::policy::model::parse_native(text) {
        let again = crate::policy::model::to_native(&p);
        // Where each rule was read from differs between the two texts; nothing else may.
        let rules = |p: &crate::policy::model::Policy| {
            let mut r = p.rules.clone();
            r.iter_mut().for_each(|r| r.origin = None);
            r
        };
        match crate::policy::model::parse_native(&again) {
            Ok(q) => {
                assert_eq!(
                    rules(&p),
                    rules(&q),
                    "a policy written back reads differently:\n{again}"
                );
                assert_eq!(p.default_action, q.default_action, "{again}");
                assert_eq!(p.architectures, q.architectures, "{again}");
            }
            Err(e) => panic!("a policy written back does not parse ({e}):\n{again}"),
        }
    }
}

/// An OCI/Docker seccomp profile (or a native policy: `import` takes either).
pub fn oci_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::policy::formats::import(text, &crate::policy::formats::ImportOptions::default());
}

/// One record from LXC's seccomp notify proxy, with the sizes of this kernel.
pub fn lxc_record(data: &[u8]) {
    const KERNEL: SeccompNotifSizes = SeccompNotifSizes {
        seccomp_notif: 80,
        seccomp_notif_resp: 24,
        seccomp_data: 64,
    };
    let _ = crate::agent::lxc::parse(data, KERNEL);
}

/// The JSON message runc and crun send the OCI agent, and the policy name it asks for.
pub fn agent_message(data: &[u8]) {
    if let Ok(m) = crate::agent::oci::parse_message(data) {
        for allowed in [false, true] {
            let (name, _) = m.policy_name(allowed);
            let _ = crate::agent::policies::validate_name(name);
        }
    }
}

/// A request on the daemon's socket, and the OCI state a hook reads on stdin.
pub fn daemon_protocol(data: &[u8]) {
    let _ = crate::daemon::protocol::parse_request(data);
    let _ = crate::daemon::protocol::parse_state(data);
}

/// A line on a live session's socket, either way.
pub fn session_protocol(data: &[u8]) {
    let _ = serde_json::from_slice::<crate::session::protocol::ClientMessage>(data);
    let _ = serde_json::from_slice::<crate::session::protocol::Message>(data);
}

/// An observation file (`auditor learn -o`), as `generate` and `merge` read it.
pub fn observation(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::observe::parse(std::path::Path::new("fuzz-input.json"), text);
}

#[cfg(test)]
mod tests {
    /// Replay the committed corpus of every target (crashes the fuzzers found stay here too).
    #[test]
    fn the_committed_fuzz_corpus_replays_cleanly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let mut seen = 0;
        for (name, run) in super::TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for e in entries.flatten() {
                // A file gone meanwhile: a fuzzer running beside the tests reduced it.
                let Ok(data) = std::fs::read(e.path()) else {
                    continue;
                };
                let r = std::panic::catch_unwind(|| run(&data));
                assert!(r.is_ok(), "{name}: {} makes it panic", e.path().display());
                seen += 1;
            }
        }
        assert!(
            seen >= super::TARGETS.len(),
            "the corpus is missing ({seen} inputs)"
        );
    }
}
