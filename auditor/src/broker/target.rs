//! The process behind a notification: its /proc entries, opened once, and copies of what the
//! handlers need (a path from its memory, its credentials, umask, root, cwd, fds).
//!
//! A pid in a notification is only trustworthy while the notification is pending: open what is
//! needed first, then check `SECCOMP_IOCTL_NOTIF_ID_VALID` ([`crate::seccomp::notify::NotifyFd::id_valid`]);
//! the fds then stay bound to the right process even if it dies and the pid is reused.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use crate::seccomp::notify::{NotifyFd, SeccompNotif};

/// Errors reaching the caller's process.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot open /proc/{pid}/{what}")]
    Open {
        pid: u32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/status has no usable `{field}` line")]
    Status { pid: u32, field: &'static str },
}

impl TargetError {
    /// The errno to answer the caller with when the handler cannot proceed.
    pub fn errno(&self) -> i32 {
        match self {
            TargetError::Open { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            TargetError::Status { .. } => libc::EIO,
        }
    }
}

/// Longest path copied from the caller (PATH_MAX, with its NUL).
pub const PATH_MAX: usize = 4096;

/// Credentials and umask of the calling thread, in our (the host's) user namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub tgid: u32,
    /// Real uid and gid.
    pub uid: u32,
    pub gid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    /// Effective, permitted and bounding capabilities (in the caller's own user namespace).
    pub cap_eff: u64,
    pub cap_prm: u64,
    pub cap_bnd: u64,
}

/// `/proc/<tid>`, opened.
#[derive(Debug)]
pub struct Target {
    pub pid: u32,
    dir: OwnedFd,
}

fn cstr(s: &'static str) -> CString {
    // The names below contain no NUL.
    CString::new(s).unwrap_or_default()
}

thread_local! {
    /// `/proc/<tid>` of the caller of the notification this thread serves, as the process
    /// that received the notification opened it ([`with_caller_dir`]).
    static CALLER_DIR: std::cell::RefCell<Option<(u32, OwnedFd)>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with `dir` standing for `/proc/<pid>` wherever this thread looks up the caller of
/// a notification ([`Target::of_caller`]). LXC's seccomp proxy receives notifications itself
/// and sends its own `/proc/<pid>` directory with each: the pid is in LXC's pid namespace,
/// which need not be the agent's, so the agent must never look that pid up in its own /proc.
pub fn with_caller_dir<T>(pid: u32, dir: OwnedFd, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CALLER_DIR.with(|c| c.borrow_mut().take());
        }
    }
    CALLER_DIR.with(|c| *c.borrow_mut() = Some((pid, dir)));
    let _reset = Reset;
    f()
}

impl Target {
    /// The caller of a notification: `/proc/<pid>` — or the directory [`with_caller_dir`]
    /// gave for it (the pid is then only a name in another pid namespace).
    pub fn of_caller(pid: u32) -> Result<Target, TargetError> {
        let given = CALLER_DIR.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(p, _)| *p == pid)
                .map(|(_, d)| d.try_clone())
        });
        match given {
            Some(dir) => Ok(Target {
                pid,
                dir: dir.map_err(|source| TargetError::Open {
                    pid,
                    what: "",
                    source,
                })?,
            }),
            None => Target::open(pid),
        }
    }

    /// The caller's file descriptor `fd`, as an `O_PATH` handle opened through
    /// `/proc/<tid>/fd/<fd>` (bound to this task: a pid reused meanwhile cannot lend its fd).
    pub fn fd_handle(&self, fd: i32, flags: libc::c_int) -> Result<OwnedFd, TargetError> {
        let name = CString::new(format!("fd/{fd}")).unwrap_or_default();
        // SAFETY: dirfd is ours, name is NUL-terminated; the result is a new fd we own.
        let r = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            // A descriptor the caller does not have is EBADF to it.
            let source = if e.raw_os_error() == Some(libc::ENOENT) {
                std::io::Error::from_raw_os_error(libc::EBADF)
            } else {
                e
            };
            return Err(TargetError::Open {
                pid: self.pid,
                what: "fd",
                source,
            });
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }

    /// `/proc/<tid>/fdinfo/<fd>`'s text (EBADF: the caller has no such fd).
    pub fn fdinfo(&self, fd: i32) -> Result<String, TargetError> {
        let name = CString::new(format!("fdinfo/{fd}")).unwrap_or_default();
        let err = |source: std::io::Error| TargetError::Open {
            pid: self.pid,
            what: "fdinfo",
            source,
        };
        // SAFETY: dirfd is ours, name is NUL-terminated; the result is a new fd we own.
        let r = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return Err(err(if e.raw_os_error() == Some(libc::ENOENT) {
                std::io::Error::from_raw_os_error(libc::EBADF)
            } else {
                e
            }));
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let f = File::from(unsafe { OwnedFd::from_raw_fd(r) });
        std::io::read_to_string(f).map_err(err)
    }

    /// Open `/proc/<pid>` (pid as the notification gives it: the calling thread).
    pub fn open(pid: u32) -> Result<Target, TargetError> {
        let path = CString::new(format!("/proc/{pid}")).unwrap_or_default();
        // SAFETY: a NUL-terminated path; the result is a new fd we own.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(TargetError::Open {
                pid,
                what: "",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Target { pid, dir })
    }

    /// Open an entry below `/proc/<pid>`.
    pub fn open_at(&self, what: &'static str, flags: libc::c_int) -> Result<OwnedFd, TargetError> {
        let name = cstr(what);
        // SAFETY: dirfd is ours, name is NUL-terminated; the result is a new fd we own.
        let fd =
            unsafe { libc::openat(self.dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(TargetError::Open {
                pid: self.pid,
                what,
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Its memory, for [`read_cstring`].
    pub fn mem(&self) -> Result<File, TargetError> {
        self.open_at("mem", libc::O_RDONLY).map(File::from)
    }

    /// Its memory, writable (for a call whose answer the kernel would write there).
    pub fn mem_rw(&self) -> Result<File, TargetError> {
        self.open_at("mem", libc::O_RDWR).map(File::from)
    }

    /// The text of an entry below `/proc/<pid>` (`status`, `cgroup`, `mountinfo`, …).
    pub fn read_text(&self, what: &'static str) -> Result<String, TargetError> {
        let fd = self.open_at(what, libc::O_RDONLY)?;
        std::io::read_to_string(File::from(fd)).map_err(|source| TargetError::Open {
            pid: self.pid,
            what,
            source,
        })
    }

    /// A namespace's identity: device and inode of its `ns/<kind>` link (`what` = `ns/pid`, …).
    pub fn ns_id(&self, what: &'static str) -> Result<(u64, u64), TargetError> {
        let fd = self.open_at(what, libc::O_RDONLY)?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| TargetError::Open {
            pid: self.pid,
            what,
            source: std::io::Error::from_raw_os_error(e as i32),
        })?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Credentials and umask from `/proc/<pid>/status`.
    pub fn creds(&self) -> Result<Creds, TargetError> {
        let text = self.read_text("status")?;
        parse_status(&text).map_err(|field| TargetError::Status {
            pid: self.pid,
            field,
        })
    }
}

/// The fields of `/proc/PID/status` the handlers need.
pub fn parse_status(text: &str) -> Result<Creds, &'static str> {
    let field = |name: &'static str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .ok_or(name)
    };
    let nums = |name: &'static str| -> Result<Vec<u32>, &'static str> {
        field(name)?
            .split_whitespace()
            .map(|n| n.parse().map_err(|_| name))
            .collect()
    };
    let caps = |name: &'static str| u64::from_str_radix(field(name)?, 16).map_err(|_| name);
    let tgid = *nums("Tgid")?.first().ok_or("Tgid")?;
    // Uid/Gid: real, effective, saved, filesystem.
    let (uids, gids) = (nums("Uid")?, nums("Gid")?);
    Ok(Creds {
        tgid,
        uid: *uids.first().ok_or("Uid")?,
        gid: *gids.first().ok_or("Gid")?,
        fsuid: *uids.get(3).ok_or("Uid")?,
        fsgid: *gids.get(3).ok_or("Gid")?,
        groups: nums("Groups")?,
        umask: u32::from_str_radix(field("Umask")?, 8).map_err(|_| "Umask")?,
        cap_eff: caps("CapEff")?,
        cap_prm: caps("CapPrm")?,
        cap_bnd: caps("CapBnd")?,
    })
}

/// Copy a NUL-terminated string from the caller's memory at `addr`: at most [`PATH_MAX`]
/// bytes, once. Errors are the errno the kernel would give the caller (EFAULT, ENAMETOOLONG).
pub fn read_cstring(mem: &File, addr: u64) -> Result<CString, i32> {
    let mut out = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let mut at = addr;
    while out.len() < PATH_MAX {
        // Stop each read at a page boundary: a partial read is all an unmapped page gives.
        let to_page = 4096 - (at % 4096) as usize;
        let want = buf.len().min(to_page).min(PATH_MAX - out.len());
        let n = match mem.read_at(&mut buf[..want], at) {
            Ok(0) | Err(_) => return Err(libc::EFAULT),
            Ok(n) => n,
        };
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return CString::new(out).map_err(|_| libc::EFAULT);
        }
        out.extend_from_slice(&buf[..n]);
        at = at.checked_add(n as u64).ok_or(libc::EFAULT)?;
    }
    Err(libc::ENAMETOOLONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tsh\nUmask:\t0027\nState:\tS\nTgid:\t42\nPid:\t43\nUid:\t100000\t100000\t100000\t100001\nGid:\t100000\t100000\t100000\t100002\nGroups:\t100005 100006 \nCapPrm:\t0000000000200001\nCapEff:\t0000000000200000\nCapBnd:\t000001ffffffffff\n";
        let c = parse_status(text);
        assert_eq!(
            c,
            Ok(Creds {
                tgid: 42,
                uid: 100000,
                gid: 100000,
                fsuid: 100001,
                fsgid: 100002,
                groups: vec![100005, 100006],
                umask: 0o027,
                cap_eff: 1 << 21,
                cap_prm: (1 << 21) | 1,
                cap_bnd: 0x1ff_ffff_ffff,
            })
        );
        assert_eq!(parse_status("Tgid: 1\n"), Err("Uid"));
    }

    #[test]
    fn copies_a_string_once_and_stops_at_faults() -> Result<(), Box<dyn std::error::Error>> {
        let mem = File::open("/proc/self/mem")?;
        let s = CString::new("/dev/null")?;
        let got = read_cstring(&mem, s.as_ptr() as u64);
        assert_eq!(got.as_deref(), Ok(s.as_c_str()));
        assert_eq!(read_cstring(&mem, 8), Err(libc::EFAULT));
        let long = CString::new(vec![b'a'; PATH_MAX + 10])?;
        assert_eq!(
            read_cstring(&mem, long.as_ptr() as u64),
            Err(libc::ENAMETOOLONG)
        );
        Ok(())
    }

    #[test]
    fn reads_our_own_creds() -> Result<(), TargetError> {
        let t = Target::open(std::process::id())?;
        let c = t.creds()?;
        assert_eq!(c.tgid, std::process::id());
        assert!(ExeLink::of(&t).is_ok_and(|l| l.read_into(&mut [0; EXE_LINK_MAX]).is_some()));
        Ok(())
    }
}

/// What an emulation needs of its caller: opened all at once, then the notification is
/// checked to be still pending, so that every fd is bound to the caller even if it dies now
/// and its pid is reused.
pub struct Caller {
    pub mem: File,
    pub creds: Creds,
    pub root: OwnedFd,
    pub cwd: OwnedFd,
    pub mntns: OwnedFd,
    /// Only when asked for (`with_userns`).
    pub userns: Option<OwnedFd>,
    /// Its `/proc/TID`, for what a handler takes later (a dirfd or fd of the caller's).
    pub target: Target,
}

/// Why [`open_caller`] has no caller.
pub enum Unreachable {
    /// The notification is no longer pending: nothing to answer.
    Gone,
    /// The caller is there but cannot be reached (answer with the error's errno).
    Failed(TargetError),
}

/// Open the caller of notification `n` (see [`Caller`]).
pub fn open_caller(
    fd: &NotifyFd,
    n: &SeccompNotif,
    with_userns: bool,
) -> Result<Caller, Unreachable> {
    let opened = (|| -> Result<Caller, TargetError> {
        let t = Target::of_caller(n.pid)?;
        Ok(Caller {
            mem: t.mem()?,
            creds: t.creds()?,
            root: t.open_at("root", libc::O_PATH | libc::O_DIRECTORY)?,
            cwd: t.open_at("cwd", libc::O_PATH | libc::O_DIRECTORY)?,
            mntns: t.open_at("ns/mnt", libc::O_RDONLY)?,
            userns: if with_userns {
                Some(t.open_at("ns/user", libc::O_RDONLY)?)
            } else {
                None
            },
            target: t,
        })
    })();
    if !fd.id_valid(n.id) {
        return Err(Unreachable::Gone);
    }
    opened.map_err(Unreachable::Failed)
}

/// A task's `/proc/TID/exe` link itself, opened `O_PATH`: read again without a path walk. It
/// stays bound to its task: once that task is gone, reading fails (a reused tid never reads
/// another process's link), and an exec shows at once (the link is read every time).
pub struct ExeLink(OwnedFd);

impl ExeLink {
    pub fn of(t: &Target) -> Result<ExeLink, TargetError> {
        t.open_at("exe", libc::O_PATH | libc::O_NOFOLLOW)
            .map(ExeLink)
    }

    /// The executable's path (best effort, for records), read into `buf`: the link's bytes, or
    /// `None` if it cannot be read (the task is gone) or is longer than `buf`.
    pub fn read_into<'b>(&self, buf: &'b mut [u8; EXE_LINK_MAX]) -> Option<&'b [u8]> {
        // SAFETY: an empty path with an O_PATH|O_NOFOLLOW fd reads the link the fd is;
        // readlinkat writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::readlinkat(
                self.0.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).ok().filter(|&n| n < buf.len())?;
        Some(&buf[..n])
    }
}

/// Callers' `/proc/TID/exe` links kept open, at most this many (each is an fd).
const EXE_CACHE_MAX: usize = 128;

/// The longest executable path read (PATH_MAX); a longer link reads as unknown.
pub const EXE_LINK_MAX: usize = 4096;

/// The executables of callers, for records: a kept [`ExeLink`] per thread, read with one
/// `readlinkat` instead of an open, a path walk, a readlink and a close. Exact: the link stays
/// bound to its task, so a reused tid never reads another process's link (it fails, and the
/// link is reopened).
///
/// With the exec watch ([`ExeCache::watching`]), a thread's last reading is reused, with no
/// syscall at all, for as long as the generation of its thread-id slot is the one read before
/// that reading: any exec or exit of a thread of that slot changes it, and a call that follows
/// an exec always sees the change (see [`crate::bpf::ExecWatch`]). Without it (no BPF, or no
/// audit log), the link is read on every call.
///
/// Allocation-free on the broker's hot path: the link is read into a buffer on the stack and,
/// when it is what the tid's last reading was, that reading's shared string is handed out
/// again (a reference count, no copy); only a new executable allocates.
#[derive(Default)]
pub struct ExeCache {
    dirs: std::sync::Mutex<std::collections::HashMap<u32, ExeEntry>>,
    watch: Option<&'static crate::bpf::ExecWatch>,
    /// Links read (not reused), for tests and benchmarks.
    reads: std::sync::atomic::AtomicU64,
}

/// A thread's last reading of its executable.
struct Reading {
    when: std::time::Instant,
    exe: Arc<str>,
    /// The exec watch's generation of the thread's slot, read before the link was.
    generation: Option<u64>,
}

/// A kept `/proc/TID/exe` link and its last reading.
type ExeEntry = (ExeLink, Option<Reading>);

impl ExeCache {
    /// A cache that reuses readings while the exec watch says they hold (where it loads).
    pub fn watching() -> ExeCache {
        ExeCache {
            watch: crate::bpf::ExecWatch::shared(),
            ..ExeCache::default()
        }
    }

    /// Whether readings are reused on the exec watch's word.
    pub fn is_watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Links read so far (each reuse of a reading is not one).
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The executable of thread `tid` now (`now`: the caller's reading of the clock), if it
    /// can be read.
    pub fn exe(&self, tid: u32, now: std::time::Instant) -> Option<Arc<str>> {
        self.read(tid, now, None)
    }

    /// Like [`ExeCache::exe`], but a reading younger than `max_age` is reused: for the live
    /// view only (it may lag an exec by up to `max_age`), never for the audit log.
    pub fn exe_recent(
        &self,
        tid: u32,
        now: std::time::Instant,
        max_age: std::time::Duration,
    ) -> Option<Arc<str>> {
        self.read(tid, now, Some(max_age))
    }

    fn read(
        &self,
        tid: u32,
        now: std::time::Instant,
        max_age: Option<std::time::Duration>,
    ) -> Option<Arc<str>> {
        let mut dirs = self
            .dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read before the link: an exec between the two only costs the next call a reading.
        let generation = self.watch.map(|w| w.generation(tid));
        if let Some((link, last)) = dirs.get_mut(&tid) {
            if let Some(r) = &*last {
                let young = max_age.is_some_and(|age| now.duration_since(r.when) < age);
                if young || (generation.is_some() && r.generation == generation) {
                    return Some(r.exe.clone());
                }
            }
            // Past the reuse only (with the watch, the rare case): 4 KiB to clear.
            let mut buf = [0u8; EXE_LINK_MAX];
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(bytes) = link.read_into(&mut buf) {
                let exe = match last.take() {
                    Some(r) if r.exe.as_bytes() == bytes => r.exe,
                    _ => Arc::from(String::from_utf8_lossy(bytes)),
                };
                *last = Some(Reading {
                    when: now,
                    exe: exe.clone(),
                    generation,
                });
                return Some(exe);
            }
            dirs.remove(&tid);
        }
        let link = ExeLink::of(&Target::of_caller(tid).ok()?).ok()?;
        let mut buf = [0u8; EXE_LINK_MAX];
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let exe: Arc<str> = Arc::from(String::from_utf8_lossy(link.read_into(&mut buf)?));
        if dirs.len() >= EXE_CACHE_MAX {
            dirs.clear();
        }
        let reading = Reading {
            when: now,
            exe: exe.clone(),
            generation,
        };
        dirs.insert(tid, (link, Some(reading)));
        Some(exe)
    }
}

#[cfg(test)]
mod exe_cache_tests {
    use super::*;

    #[test]
    fn follows_exec_and_forgets_the_dead() {
        let cache = ExeCache::default();
        let me = std::process::id();
        let mine = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(
            cache.exe(me, std::time::Instant::now()).as_deref(),
            Some(mine.display().to_string().as_str())
        );
        assert_eq!(
            cache.exe(me, std::time::Instant::now()).as_deref(),
            Some(mine.display().to_string().as_str())
        );
        // A child that execs: the cached directory shows the new executable.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read x; exec /bin/sleep 5"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let before = cache.exe(pid, std::time::Instant::now()).unwrap();
        assert!(
            before.ends_with("sh") || before.contains("dash") || before.contains("bash"),
            "{before}"
        );
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !cache
            .exe(pid, std::time::Instant::now())
            .unwrap_or_default()
            .ends_with("sleep")
        {
            assert!(std::time::Instant::now() < deadline, "exec not seen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // A recent reading is reused (for the live view only).
        let t0 = std::time::Instant::now();
        let recent = cache.exe_recent(
            pid,
            std::time::Instant::now(),
            std::time::Duration::from_secs(60),
        );
        assert!(recent.unwrap().ends_with("sleep"));
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        // Reaped: the kept directory no longer reads, and nothing else is read in its place.
        assert_eq!(cache.exe(pid, std::time::Instant::now()), None);
    }

    /// With the exec watch, a reading is reused without a syscall until the thread execs (the
    /// first call after that reads the new executable) or exits.
    #[test]
    fn a_watching_cache_reuses_readings_until_an_exec_or_an_exit() {
        let cache = ExeCache::watching();
        if !crate::testing::privileged(
            "a_watching_cache_reuses_readings_until_an_exec_or_an_exit",
            cache.is_watching(),
            "the exec watch (root and BPF)",
        ) {
            return;
        }
        let now = std::time::Instant::now;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read x; exec /bin/sleep 5"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let first = cache.exe(pid, now()).unwrap();
        let reads = cache.reads();
        for _ in 0..1000 {
            assert_eq!(cache.exe(pid, now()).as_deref(), Some(&*first));
        }
        // Threads elsewhere on the host that share the slot and exec or exit meanwhile cost a
        // reading each: a handful at most in a loop this short.
        assert!(
            cache.reads() - reads <= 3,
            "{} readings",
            cache.reads() - reads
        );
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        // Until sleep sleeps: a call of the new program, as a notified one would be. (Its
        // /proc link changes inside exec, a little before the exec tracepoint the watch counts;
        // no call of the new program comes in between.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let sleeping = || {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.ends_with("sleep"))
                && std::fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| {
                    // clock_nanosleep, nanosleep
                    s.starts_with("230 ") || s.starts_with("35 ")
                })
        };
        while !sleeping() {
            assert!(std::time::Instant::now() < deadline, "exec not seen");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The first call after the exec names the new executable.
        assert!(cache.exe(pid, now()).unwrap().ends_with("sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(cache.exe(pid, now()), None);
    }
}
