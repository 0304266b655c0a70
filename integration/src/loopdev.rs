//! Loop devices for the mount tests: attached to an image in a test's scratch directory, detached
//! on drop; devices left by an earlier run of the same test (same image name) are detached first.
use std::path::Path;
use std::process::Command;

/// A loop device, detached on drop.
pub struct LoopDevice(pub String);

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).output();
    }
}

/// Run a tool that must succeed; its standard output.
pub fn run_tool(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run tool");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Detach the loop devices whose backing file's name ends with `name`.
pub fn clear_stale_loop_devices(name: &str) {
    let Ok(o) = Command::new("losetup")
        .args(["--list", "--noheadings", "--raw", "-O", "NAME,BACK-FILE"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some((dev, back)) = line.split_once(' ') {
            if back.ends_with(name) {
                let _ = Command::new("losetup").args(["-d", dev]).output();
            }
        }
    }
}

/// A sparse image of `size` bytes at `image`, attached to a new loop device.
#[allow(
    dead_code,
    reason = "each test file that includes this module uses a different part"
)]
pub fn attach_new(image: &Path, size: u64) -> LoopDevice {
    if let Some(name) = image.file_name().and_then(|n| n.to_str()) {
        clear_stale_loop_devices(name);
    }
    std::fs::File::create(image)
        .and_then(|f| f.set_len(size))
        .expect("image file");
    LoopDevice(
        run_tool(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image),
        )
        .trim()
        .to_owned(),
    )
}
