//! Start-up and memory: `auditor learn -- true` from start to exit (loading and attaching the
//! eBPF programs is on every user's path) beside `strace -f -c true`, with the peak RSS of each;
//! medians of `reps` runs. Targets: learn under 150 ms, its peak RSS at most 20 MiB.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::report::median;
use crate::util::{have, phase};

const WALL_TARGET_MS: f64 = 150.0;
const RSS_TARGET_MIB: f64 = 20.0;

/// Run `cmd` to its end: wall time (ms), peak RSS of it and its waited-for children (MiB).
fn timed(cmd: &mut Command) -> anyhow::Result<(f64, f64, ExitStatus)> {
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and rusage are valid and writable for the call; the pid is our child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    // Reaped with wait4: `child` must not be waited for again (it is not: dropped unwaited).
    drop(child);
    let wall = t.elapsed().as_secs_f64() * 1e3;
    Ok((
        wall,
        rusage.ru_maxrss as f64 / 1024.0,
        ExitStatus::from_raw(status),
    ))
}

/// Run it.
pub fn run_startup(bin: &Path, reps: usize) -> anyhow::Result<()> {
    phase(
        "bench: start-up and memory of `auditor learn -- true`",
        || {
            let dir = tempfile::tempdir()?;
            let out = dir.path().join("obs.json");
            let strace = have("strace");
            let (mut a_wall, mut a_rss, mut s_wall, mut s_rss) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..reps {
                let (w, r, st) = timed(
                    Command::new(bin)
                        .args(["learn", "--no-progress", "-o"])
                        .arg(&out)
                        .args(["--", "true"]),
                )?;
                if !st.success() {
                    bail!("auditor learn -- true failed ({st})");
                }
                a_wall.push(w);
                a_rss.push(r);
                if strace {
                    let (w, r, _) = timed(Command::new("strace").args([
                        "-f",
                        "-c",
                        "-o",
                        "/dev/null",
                        "true",
                    ]))?;
                    s_wall.push(w);
                    s_rss.push(r);
                }
            }
            let (w, r) = (median(&a_wall), median(&a_rss));
            let spread = |v: &[f64]| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{lo:.0}–{hi:.0}")
            };
            eprintln!("\nstart-up, median of {reps} runs:");
            eprintln!(
            "  auditor learn -- true   {w:>6.1} ms (range {} ms; target ≤ {WALL_TARGET_MS} ms: {})  peak RSS {r:.1} MiB (target ≤ {RSS_TARGET_MIB} MiB: {})",
            spread(&a_wall),
            if w <= WALL_TARGET_MS { "met" } else { "MISSED" },
            if r <= RSS_TARGET_MIB { "met" } else { "MISSED" },
        );
            if strace {
                let (sw, sr) = (median(&s_wall), median(&s_rss));
                eprintln!(
                "  strace -f -c true       {sw:>6.1} ms  peak RSS {sr:.1} MiB  (auditor/strace: {:.1}× the time)",
                w / sw
            );
            }
            Ok(())
        },
    )
}
