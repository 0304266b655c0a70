//! `emulate-mount` through FUSE (`fuse = { ext4 = "fuse2fs" }`): the file-system type is
//! served by a FUSE program from the container's own root file system, as LXD/Incus do, so an
//! untrusted image is parsed by a process in the container's context instead of the host
//! kernel's driver — the host never mounts it.
//!
//! The FUSE server is started by a helper that takes the caller's place as far as the kernel
//! can tell: it joins the caller's cgroups (v2, and v1 where it can) and its cgroup, ipc, uts,
//! net, pid, mount and user namespaces, chroots to its root, takes its uid and gid (as seen in
//! its user namespace), its capability bounding, permitted and effective sets, and its cwd.
//! The server itself (a child, so that it is in the caller's pid namespace) gets no new
//! privileges and the container's own policy as a seccomp filter, with nothing behind its
//! notify rules: its own `mount` of the FUSE file system goes to the kernel, which allows it
//! for a user namespace's root with `/dev/fuse` (the container needs the device), and every
//! other call the policy would have emulated is refused ([`crate::policy::handlers::for_fuse_server`]).
//! The server daemonizes once mounted; it lives in the container's pid namespace and cgroups,
//! so it ends with the container. The mount call returns once the server's foreground process
//! has exited: 0 if it mounted, ENODEV if the program is not in the container, EIO otherwise
//! (its error output is in the audit record).

use std::ffi::CString;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt as _;

use crate::broker::sys;
use crate::broker::target::{Creds, Target};
use crate::policy::model::Policy;
use crate::seccomp::notify::{SockFilter, SockFprog};

/// The namespaces joined, in order (the user namespace last: joining it gives the helper the
/// capabilities it needs inside, and it is the one that decides the mount).
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("ns/cgroup", libc::CLONE_NEWCGROUP),
    ("ns/ipc", libc::CLONE_NEWIPC),
    ("ns/uts", libc::CLONE_NEWUTS),
    ("ns/net", libc::CLONE_NEWNET),
    ("ns/pid", libc::CLONE_NEWPID),
    ("ns/mnt", libc::CLONE_NEWNS),
    ("ns/user", libc::CLONE_NEWUSER),
];

/// Where a program name is looked up in the container's root.
const SEARCH: [&str; 4] = ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"];

/// The server's exit status when no candidate could be executed (ENOENT).
const NOT_FOUND: i32 = 126;

/// The longest error output kept for the audit record.
const STDERR_MAX: usize = 2048;

/// A FUSE server to start for one mount call.
pub(super) struct FuseServer {
    namespaces: Vec<(OwnedFd, libc::c_int)>,
    root: OwnedFd,
    cwd: OwnedFd,
    /// `cgroup.procs` of the caller's cgroups, open for writing; `true`: the v2 one (must work).
    cgroups: Vec<(OwnedFd, bool)>,
    uid: u32,
    gid: u32,
    /// Bounding, permitted, effective.
    caps: (u64, u64, u64),
    filter: Vec<SockFilter>,
    candidates: Vec<CString>,
    argv: Vec<CString>,
}

/// Why the server could not be prepared.
pub(super) type Refusal = (i32, String);

impl FuseServer {
    /// Gather what the server needs of the caller (through `target`, bound to it; `creds` as
    /// the handler read them), and the filter of `policy` for it.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pieces of the caller emulate() already took apart"
    )]
    pub(super) fn prepare(
        target: &Target,
        creds: &Creds,
        root: OwnedFd,
        cwd: OwnedFd,
        program: &str,
        source: &CString,
        mountpoint: &CString,
        options: &str,
        policy: &Policy,
    ) -> Result<FuseServer, Refusal> {
        let fail = |what: &str, e: String| (libc::EIO, format!("{what}: {e}"));
        let mut namespaces = Vec::new();
        for (what, kind) in NAMESPACES {
            let theirs = target
                .open_at(what, libc::O_RDONLY)
                .map_err(|e| (e.errno(), e.to_string()))?;
            let ours = std::fs::metadata(format!("/proc/self/{what}"))
                .map_err(|e| fail(what, e.to_string()))?;
            let st =
                nix::sys::stat::fstat(theirs.as_raw_fd()).map_err(|e| fail(what, e.to_string()))?;
            if (st.st_dev, st.st_ino) != (ours.dev(), ours.ino()) {
                namespaces.push((theirs, kind));
            }
        }
        let uid = inside(&read(target, "uid_map")?, creds.uid)
            .ok_or_else(|| (libc::EPERM, "the caller's uid has no mapping".to_owned()))?;
        let gid = inside(&read(target, "gid_map")?, creds.gid)
            .ok_or_else(|| (libc::EPERM, "the caller's gid has no mapping".to_owned()))?;
        let caps = (creds.cap_bnd, creds.cap_prm, creds.cap_eff);
        let cgroups = cgroup_procs(&read(target, "cgroup")?)?;
        let server_policy = crate::policy::handlers::for_fuse_server(policy);
        let filter = crate::seccomp::compile::compile(&server_policy)
            .and_then(|c| crate::seccomp::compile::export_bpf(&c))
            .map_err(|e| fail("the container's policy for the FUSE server", e.to_string()))
            .and_then(|bpf| {
                crate::seccomp::program::Filter::from_bpf(&bpf)
                    .and_then(|f| f.program())
                    .map_err(|e| fail("the FUSE server's filter", e.to_string()))
            })?;
        let cstr = |s: &str| CString::new(s).map_err(|_| (libc::EINVAL, "a NUL byte".to_owned()));
        let candidates = if program.starts_with('/') {
            vec![cstr(program)?]
        } else {
            SEARCH
                .iter()
                .map(|d| cstr(&format!("{d}{program}")))
                .collect::<Result<_, _>>()?
        };
        let argv = vec![
            cstr(program)?,
            source.clone(),
            mountpoint.clone(),
            cstr("-o")?,
            cstr(options)?,
        ];
        Ok(FuseServer {
            namespaces,
            root,
            cwd,
            cgroups,
            uid,
            gid,
            caps,
            filter,
            candidates,
            argv,
        })
    }

    /// Start the server and wait for its foreground process. Returns the errno for the caller
    /// (0: mounted) and the server's error output.
    pub(super) fn run(&self) -> Result<(i32, String), sys::HelperError> {
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| sys::HelperError::Start(std::io::Error::from(e)))?;
        let out_w_raw = out_w.as_raw_fd();
        let mut keep: Vec<RawFd> = vec![self.root.as_raw_fd(), self.cwd.as_raw_fd(), out_w_raw];
        keep.extend(self.namespaces.iter().map(|(fd, _)| fd.as_raw_fd()));
        keep.extend(self.cgroups.iter().map(|(fd, _)| fd.as_raw_fd()));
        let prog = SockFprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr(),
        };
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let argv = ptrs(&self.argv);
        let path = CString::new("PATH=/usr/sbin:/usr/bin:/sbin:/bin").unwrap_or_default();
        let envp = [path.as_ptr(), std::ptr::null()];
        let candidates: Vec<*const libc::c_char> =
            self.candidates.iter().map(|c| c.as_ptr()).collect();
        let (uid, gid) = (self.uid, self.gid);
        let (bnd, prm, eff) = self.caps;
        let root = self.root.as_raw_fd();
        let cwd = self.cwd.as_raw_fd();
        let namespaces: Vec<(RawFd, libc::c_int)> = self
            .namespaces
            .iter()
            .map(|(fd, k)| (fd.as_raw_fd(), *k))
            .collect();
        let cgroups: Vec<(RawFd, bool)> = self
            .cgroups
            .iter()
            .map(|(fd, v2)| (fd.as_raw_fd(), *v2))
            .collect();
        let child = move || -> i32 {
            // SAFETY: raw syscalls on data prepared before the fork (fork_helper's contract).
            unsafe {
                serve(
                    &cgroups,
                    &namespaces,
                    root,
                    cwd,
                    uid,
                    gid,
                    (bnd, prm, eff),
                    &prog,
                    &candidates,
                    &argv,
                    &envp,
                    out_w_raw,
                )
            }
        };
        // SAFETY: `child` makes only raw syscalls on data prepared above and returns.
        let r = unsafe { sys::fork_helper(&keep, child) };
        drop(out_w);
        let mut text = Vec::new();
        let _ = nix::fcntl::fcntl(
            out_r.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let _ = std::fs::File::from(out_r)
            .take(STDERR_MAX as u64)
            .read_to_end(&mut text);
        r.map(|e| (e, String::from_utf8_lossy(&text).trim().to_owned()))
    }
}

/// The helper's side: join, become the caller, fork the server, wait for its foreground
/// process.
///
/// # Safety
/// Only in the forked helper: raw syscalls on data prepared before the fork.
#[allow(
    clippy::too_many_arguments,
    reason = "the helper's prepared data, unpacked"
)]
unsafe fn serve(
    cgroups: &[(RawFd, bool)],
    namespaces: &[(RawFd, libc::c_int)],
    root: RawFd,
    cwd: RawFd,
    uid: u32,
    gid: u32,
    (bnd, prm, eff): (u64, u64, u64),
    prog: &SockFprog,
    candidates: &[*const libc::c_char],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char; 2],
    out: RawFd,
) -> i32 {
    // SAFETY: raw syscalls with pointers to live data prepared before the fork, in the
    // single-threaded helper.
    unsafe {
        for &(fd, v2) in cgroups {
            // "0" moves the writer.
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 && v2 {
                return sys::errno();
            }
        }
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0 {
            return sys::errno();
        }
        for &(fd, kind) in namespaces {
            if kind == libc::CLONE_NEWUSER {
                continue;
            }
            if libc::setns(fd, kind) != 0 {
                return sys::errno();
            }
        }
        if libc::fchdir(root) != 0 || libc::chroot(c".".as_ptr()) != 0 {
            return sys::errno();
        }
        for &(fd, kind) in namespaces {
            if kind == libc::CLONE_NEWUSER && libc::setns(fd, kind) != 0 {
                return sys::errno();
            }
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
        {
            return sys::errno();
        }
        for cap in 0..64u64 {
            if bnd & (1 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                && sys::errno() != libc::EINVAL
            {
                return sys::errno();
            }
        }
        if let Err(e) = sys::set_caps_full(eff, prm) {
            return e;
        }
        if libc::fchdir(cwd) != 0 {
            return sys::errno();
        }
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
        if pid < 0 {
            return sys::errno();
        }
        if pid == 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::dup2(out, 1);
            libc::dup2(out, 2);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || crate::seccomp::notify::install_filter_raw(prog, 0) < 0
            {
                libc::_exit(127);
            }
            let mut code = NOT_FOUND;
            for &c in candidates {
                libc::execve(c, argv.as_ptr(), envp.as_ptr());
                if sys::errno() != libc::ENOENT {
                    code = 127;
                }
            }
            libc::_exit(code);
        }
        let mut status = 0;
        loop {
            let r = libc::wait4(pid as libc::pid_t, &mut status, 0, std::ptr::null_mut());
            if r >= 0 {
                break;
            }
            if sys::errno() != libc::EINTR {
                return libc::EIO;
            }
        }
        if libc::WIFEXITED(status) {
            match libc::WEXITSTATUS(status) {
                0 => 0,
                NOT_FOUND => libc::ENODEV,
                _ => libc::EIO,
            }
        } else {
            libc::EIO
        }
    }
}

fn read(t: &Target, what: &'static str) -> Result<String, Refusal> {
    t.read_text(what).map_err(|e| (e.errno(), e.to_string()))
}

/// A host id as the user namespace of a `uid_map`/`gid_map` (read from the host) sees it.
pub fn inside(map: &str, host: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (ins, out, count) = (f.next()??, f.next()??, f.next()??);
        let host = u64::from(host);
        (out <= host && host < out + count).then(|| u32::try_from(ins + host - out).ok())?
    })
}

/// `cgroup.procs` of each of the caller's cgroups (`/proc/<tid>/cgroup`), open for writing:
/// the v2 one under the host's cgroup2 mount (required, unless it is the root), the v1 ones
/// under `/sys/fs/cgroup/<controllers>` where they exist.
fn cgroup_procs(text: &str) -> Result<Vec<(OwnedFd, bool)>, Refusal> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim();
        if path.ends_with(" (deleted)") {
            continue;
        }
        let v2 = controllers.is_empty();
        let base = if v2 {
            match crate::host::cgroup::mount_point() {
                Some(m) => m,
                None => continue,
            }
        } else {
            std::path::Path::new("/sys/fs/cgroup")
                .join(controllers.strip_prefix("name=").unwrap_or(controllers))
        };
        let Some(dir) = crate::host::cgroup::dir_of(&base, path) else {
            continue;
        };
        if v2 && dir == base {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        match std::fs::OpenOptions::new().write(true).open(&procs) {
            Ok(f) => out.push((OwnedFd::from(f), v2)),
            Err(e) if v2 => {
                return Err((
                    e.raw_os_error().unwrap_or(libc::EIO),
                    format!("cannot join the caller's cgroup {}: {e}", procs.display()),
                ))
            }
            Err(_) => {}
        }
    }
    Ok(out)
}
