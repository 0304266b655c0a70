//! Unit tests of the OCI agent: the runtime's message, policy choice, hostile clients.

use super::*;
use std::os::unix::fs::MetadataExt as _;

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

fn message(fds: &[&str], metadata: &str, annotations: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.0.2","fds":{},"pid":42,"metadata":{},"state":{{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{annotations}}},"extra":1}}"#,
        serde_json::to_string(fds).unwrap(),
        serde_json::to_string(metadata).unwrap(),
    )
}

/// Whether every write end of the pipe whose read end is `r` is closed (POLLHUP): a test
/// of "closed" that fd-number reuse by tests running beside it cannot fool.
fn writers_closed(r: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLHUP != 0
}

#[test]
fn policy_name_prefers_metadata_then_annotation_only_when_allowed() {
    let m: ProcessState =
        serde_json::from_str(&message(&[], "web", r#"{"org.auditor.policy":"db"}"#)).unwrap();
    assert_eq!(m.policy_name(false), (Some("web"), NameSource::Metadata));
    assert_eq!(m.policy_name(true), (Some("web"), NameSource::Metadata));
    let m: ProcessState =
        serde_json::from_str(&message(&[], " ", r#"{"org.auditor.policy":"db"}"#)).unwrap();
    assert_eq!(m.policy_name(true), (Some("db"), NameSource::Annotation));
    // Without --policy-from-annotation the workload's annotation picks nothing.
    assert_eq!(m.policy_name(false), (None, NameSource::AnnotationIgnored));
    let m: ProcessState = serde_json::from_str(&message(&[], "", "{}")).unwrap();
    assert_eq!(m.policy_name(true), (None, NameSource::Default));
    assert_eq!(m.policy_name(false), (None, NameSource::Default));
}

#[test]
fn fds_must_match_their_names() {
    // Wrong count: every fd received is closed.
    let ((r1, w1), (r2, w2)) = (pipe(), pipe());
    let e = parse(message(&["seccompFd"], "", "{}").as_bytes(), vec![w1, w2]).unwrap_err();
    assert!(
        matches!(
            e,
            OciError::FdCount {
                names: 1,
                received: 2
            }
        ),
        "{e}"
    );
    assert!(writers_closed(&r1) && writers_closed(&r2));
    // No seccompFd.
    let (r, _w) = pipe();
    let e = parse(message(&["other"], "", "{}").as_bytes(), vec![r]).unwrap_err();
    assert!(matches!(e, OciError::SeccompFdCount { count: 0 }), "{e}");
    // Two.
    let (r, w) = pipe();
    let e = parse(
        message(&["seccompFd", "seccompFd"], "", "{}").as_bytes(),
        vec![r, w],
    )
    .unwrap_err();
    assert!(matches!(e, OciError::SeccompFdCount { count: 2 }), "{e}");
    // No fd at all.
    let e = parse(message(&["seccompFd"], "", "{}").as_bytes(), vec![]).unwrap_err();
    assert!(
        matches!(
            e,
            OciError::FdCount {
                names: 1,
                received: 0
            }
        ),
        "{e}"
    );
    // A pipe named seccompFd is not a listener; the other fd is closed too.
    let ((r1, w1), (r2, w2)) = (pipe(), pipe());
    let e = parse(
        message(&["seccompFd", "extra"], "", "{}").as_bytes(),
        vec![w1, w2],
    )
    .unwrap_err();
    assert!(
        matches!(&e, OciError::NotListener { what } if what.starts_with("pipe:")),
        "{e}"
    );
    assert!(writers_closed(&r1) && writers_closed(&r2));
}

#[test]
fn a_message_ends_with_its_json_value() {
    assert!(!complete(b"").unwrap());
    assert!(!complete(b"{\"a\": [1, ").unwrap());
    assert!(complete(b"{\"a\": [1]}").unwrap());
    assert!(complete(b" {\"a\": [1]}\n").unwrap());
    assert!(matches!(complete(b"{\"a\": 1} x"), Err(OciError::Trailing)));
    assert!(matches!(complete(b"garbage"), Err(OciError::Json(_))));
}

#[test]
fn garbage_and_bad_ids_are_refused() {
    for bad in [
        "",
        "garbage",
        "{}",
        r#"{"ociVersion":"1","pid":"x","state":{"id":"a"}}"#,
    ] {
        assert!(
            matches!(parse(bad.as_bytes(), vec![]), Err(OciError::Json(_))),
            "{bad:?}"
        );
    }
    let m = message(&[], "", "{}").replace("\"c1\"", "\"a\\nb\"");
    assert!(matches!(
        parse(m.as_bytes(), vec![]),
        Err(OciError::BadId { .. })
    ));
    let m = message(&[], "", "{}").replace("\"c1\"", "\"\"");
    assert!(matches!(
        parse(m.as_bytes(), vec![]),
        Err(OciError::BadId { .. })
    ));
}

#[test]
fn the_socket_directory_must_be_roots_alone() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_dir(&t.path().join("a.sock")).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A missing directory is created root-only.
    let sock = t.path().join("sub/a.sock");
    check_dir(&sock).unwrap();
    let m = std::fs::metadata(t.path().join("sub")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o700);
}

#[tokio::test]
async fn a_stale_socket_is_replaced_a_live_one_is_not_and_hostile_clients_are_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("agent.sock");
    // Stale: bound, then its listener closed.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let (l, file) = bind(&sock).unwrap();
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    // Live: refused.
    assert!(matches!(bind(&sock), Err(OciError::InUse { .. })));
    drop((l, file));
    assert!(!sock.exists(), "the agent removes its socket");
    // Not a socket: left alone.
    std::fs::write(&sock, "x").unwrap();
    assert!(matches!(bind(&sock), Err(OciError::NotASocket { .. })));
    std::fs::remove_file(&sock).unwrap();

    // Hostile clients end their own connection only.
    let pdir = t.path().join("policies");
    std::fs::create_dir(&pdir).unwrap();
    let ctx = Arc::new(super::super::Context {
        policies: super::super::policies::PolicyDir::open(&pdir, Default::default()).unwrap(),
        audit: None,
        live: None,
        policy_from_annotation: false,
        metrics: None,
        store: None,
        reload: Default::default(),
        reloads: Default::default(),
        mode: Default::default(),
        prompts: Arc::new(super::super::prompts::PromptRouter::new(
            std::time::Duration::from_secs(30),
        )),
        flood_rate: crate::broker::DEFAULT_FLOOD_RATE,
    });
    let cancel = CancellationToken::new();
    let server = tokio::spawn({
        let (sock, cancel) = (sock.clone(), cancel.clone());
        async move { serve(&sock, ctx, cancel).await }
    });
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    use tokio::io::AsyncWriteExt as _;
    // Garbage, then close.
    let mut c = UnixStream::connect(&sock).await.unwrap();
    c.write_all(b"\x00garbage{{{").await.unwrap();
    drop(c);
    // Too large.
    let mut c = UnixStream::connect(&sock).await.unwrap();
    let big = vec![b' '; MAX_MESSAGE + 10];
    let _ = c.write_all(&big).await;
    drop(c);
    // A slow client holds its connection; the server still accepts others.
    let _slow = UnixStream::connect(&sock).await.unwrap();
    let c = UnixStream::connect(&sock).await.unwrap();
    drop(c);
    assert!(
        !server.is_finished(),
        "the agent stopped after hostile clients"
    );
    cancel.cancel();
    server.await.unwrap().unwrap();
}
