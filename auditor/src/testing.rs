//! What the unit tests share.

/// Whether this is CI (`CI` is `true` or `1`), where a privileged test may not skip.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether privileged test `test` can run: `ready` (root and whatever `needs` names). If not,
/// a skip said on stderr, and a failure under CI.
pub(crate) fn privileged(test: &str, ready: bool, needs: &str) -> bool {
    if ready {
        return true;
    }
    assert!(!ci(), "{test}: needs {needs}; CI=true forbids skipping");
    eprintln!("SKIP {test}: needs {needs}");
    false
}

/// Whether this process runs as root.
pub(crate) fn root() -> bool {
    nix::unistd::geteuid().is_root()
}
