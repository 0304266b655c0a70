//! Unit tests of spawning: path resolution, held children, standard streams, unsearchable
//! directories.

use super::*;

#[test]
fn names_the_directory_the_mapped_root_cannot_search() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = tempfile::tempdir().expect("tempdir");
    let closed = t.path().join("closed");
    std::fs::create_dir_all(closed.join("bin")).expect("mkdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let prog = closed.join("bin/prog");
    let (dir, mode, _) = unsearchable(&prog, 100_000, 100_000).expect("unreachable");
    assert_eq!((dir, mode), (closed.clone(), 0o700));
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    assert_eq!(unsearchable(&prog, 100_000, 100_000), None);
    // Its owner may search it.
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&closed).expect("stat"));
    assert_eq!(unsearchable(&prog, owner, u32::MAX), None);
}

#[test]
fn resolves_through_path_and_rejects_missing() {
    let c = Command::new(&["sh".into(), "-c".into(), "true".into()]);
    assert!(c.is_ok_and(|c| c.path.is_absolute()));
    assert!(matches!(
        Command::new(&["no-such-command-xyz".into()]),
        Err(LaunchError::NotFound(_))
    ));
    assert!(matches!(Command::new(&[]), Err(LaunchError::Empty)));
    assert!(matches!(
        Command::new(&["/etc/passwd".into()]),
        Err(LaunchError::NotFound(_))
    ));
}

#[test]
fn held_child_runs_only_after_release_and_reports_status() -> Result<(), LaunchError> {
    let cmd = Command::new(&["sh".into(), "-c".into(), "exit 7".into()])?;
    let held = spawn_held(&cmd)?;
    let child = held.release()?;
    assert_eq!(child.wait()?, Exit::Code(7));
    Ok(())
}

#[test]
fn stdio_goes_where_options_say() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("out.log");
    let cmd = Command::new(&[
        "sh".into(),
        "-c".into(),
        "read x || echo eof; echo out; echo err >&2".into(),
    ])?;
    let options = Options {
        stdio: Some(Stdio {
            stdin: std::fs::File::open("/dev/null")?.into(),
            output: std::fs::File::create(&log)?.into(),
        }),
        ..Options::default()
    };
    let child = spawn_held_with(&cmd, &options)?.release()?;
    assert_eq!(child.wait()?, Exit::Code(0));
    assert_eq!(std::fs::read_to_string(&log)?, "eof\nout\nerr\n");
    Ok(())
}

#[test]
fn abandoned_child_never_runs() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("ran");
    let cmd = Command::new(&[
        "sh".into(),
        "-c".into(),
        format!("touch {}", marker.display()),
    ])?;
    spawn_held(&cmd)?.abort();
    assert!(!marker.exists());
    Ok(())
}
