//! The only module that uses aya: load auditor's eBPF programs, attach them to raw tracepoints
//! (no tracefs needed), and read what they recorded as plain data.

mod batch;
pub mod btf;
mod events;
pub mod exec_watch;
pub mod pin;
mod snapshot;
mod tasks;

pub use events::{decode_args, decode_event, encode_args, Event, EventReader, ReadinessFd};
pub use exec_watch::ExecWatch;
pub use snapshot::Snapshot;

use auditor_common::{
    argspec, counters, names, slot, CgroupFilter, Offsets, OutcomeKey, Settings, SysKey, SysStat,
};
use aya::{
    maps::{Array, Map, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{links::FdLink, RawTracePoint},
    Ebpf, EbpfLoader,
};

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/auditor"));

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("auditor was built without its eBPF programs (AYA_BUILD_SKIP); rebuild without it")]
    NoObject,
    #[error("reading kernel structure offsets: {0}")]
    Btf(#[from] btf::BtfError),
    #[error("cannot read {what}: {source}")]
    Proc {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "loading the eBPF programs failed: {source}\n  (auditor needs root or CAP_BPF+CAP_PERFMON, \
         and a kernel with BPF, raw tracepoints and BTF: `auditor doctor` shows what this host \
         lacks)"
    )]
    Load {
        #[source]
        source: aya::EbpfError,
    },
    #[error("eBPF program `{name}`: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("pinning under bpffs, {path}: {msg}")]
    Pin {
        path: std::path::PathBuf,
        msg: String,
    },
    #[error(
        "{dir} holds eBPF programs of another auditor build ({theirs}; this build's is {ours}); \
         stop the daemon, then run `auditor daemon --uninstall` of the build that pinned them (it \
         writes their containers' observations), or this build's `auditor daemon --uninstall \
         --force` (their counts are lost)"
    )]
    ForeignPins {
        dir: std::path::PathBuf,
        theirs: String,
        ours: String,
    },
    #[error("eBPF program `{0}` missing from the object")]
    MissingProgram(&'static str),
    #[error("eBPF map `{0}` missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("mapping eBPF map `{name}`: {source}")]
    Mmap {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("thread id {tid} is beyond kernel.pid_max ({pid_max}) at load time")]
    TidOutOfRange { tid: u32, pid_max: u32 },
    #[error("group {group} is beyond the {groups} groups the observer was loaded with")]
    GroupOutOfRange { group: u32, groups: u32 },
    #[error("this process is not in the host's pid namespace, so the kernel's thread ids are not the ones it sees")]
    ForeignPidNamespace,
    #[error("a PREEMPT_RT kernel can preempt a BPF program, so a counter's single-writer guarantee does not hold")]
    PreemptRt,
}

fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> BpfError {
    move |source| BpfError::Map { name, source }
}

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct ObserverConfig {
    /// Track every task in this cgroup v2 subtree.
    pub cgroup: Option<CgroupFilter>,
    /// Argument capture specs: (abi, nr, spec), see `auditor_common::argspec`.
    pub arg_specs: Vec<(u8, u16, u32)>,
    /// Emit an [`Event::Refused`] for every call a seccomp filter refuses (enforcement's audit
    /// log); refusals are always counted either way.
    pub emit_refusals: bool,
    /// Number of groups kept apart (0 or 1: one, group 0); see `auditor_common::slot::group`.
    pub groups: u32,
    /// Adopt tasks that exec in cgroups registered with [`Observer::adopt_cgroup`] (`auditor
    /// daemon`).
    pub cgroup_groups: bool,
    /// Adopt tasks that exec in mount namespaces registered with [`Observer::adopt_mntns`].
    pub mntns_groups: bool,
}

/// auditor's observer programs, loaded and attached. Dropping it detaches them, unless they are
/// pinned (see [`Observer::load_pinned`]).
pub struct Observer {
    /// The maps user space reads and writes, by name ([`OBSERVER_MAPS`]).
    maps: std::collections::HashMap<&'static str, Map>,
    /// The attached programs' links, in [`names::OBSERVER_PROGRAMS`]' order: each keeps its
    /// program attached while open or pinned. Dropped last first (see `Drop`).
    _links: Vec<FdLink>,
    pid_max: u32,
    groups: u32,
    /// Where the programs, links and maps are pinned.
    pinned: Option<std::path::PathBuf>,
}

impl Drop for Observer {
    /// Detach the syscall hooks (attached last) before the `sched_process_exit` hook: their
    /// thread-id memo is only sound while every exit bumps its generation (see the eBPF
    /// crate's `maps::current_tid`).
    fn drop(&mut self) {
        while self._links.pop().is_some() {}
    }
}

/// The maps of the observer that user space uses, and pins.
const OBSERVER_MAPS: [&str; 13] = [
    names::MAP_TASKS,
    names::MAP_CALLS,
    names::MAP_PENDING,
    names::MAP_EXE_CALLS,
    names::MAP_OUTCOMES,
    names::MAP_COUNTERS,
    names::MAP_ARG_READ_FAILS,
    names::MAP_ARG_SPECS,
    names::MAP_ARGS_SEEN,
    names::MAP_EXES_SEEN,
    names::MAP_CGROUP_GROUPS,
    names::MAP_MNTNS_GROUPS,
    names::MAP_EVENTS,
];

fn read_pid_max() -> Result<u32, BpfError> {
    let s =
        std::fs::read_to_string("/proc/sys/kernel/pid_max").map_err(|source| BpfError::Proc {
            what: "/proc/sys/kernel/pid_max",
            source,
        })?;
    s.trim().parse().map_err(|_| BpfError::Proc {
        what: "/proc/sys/kernel/pid_max",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
    })
}

/// Kernel structure offsets for this kernel.
pub fn kernel_offsets() -> Result<Offsets, BpfError> {
    let b = btf::Btf::from_sys_fs()?;
    Ok(Offsets {
        task_pid: b.member_offset("task_struct", "pid")?,
        task_tgid: b.member_offset("task_struct", "tgid")?,
        task_ti_status: b.member_offset("task_struct", "thread_info")?
            + b.member_offset("thread_info", "status")?,
        bprm_filename: b.member_offset("linux_binprm", "filename")?,
        pid_max: read_pid_max()?,
        task_nsproxy: b.member_offset("task_struct", "nsproxy")?,
        nsproxy_mnt_ns: b.member_offset("nsproxy", "mnt_ns")?,
        mnt_ns_inum: b.member_offset("mnt_namespace", "ns")?
            + b.member_offset("ns_common", "inum")?,
    })
}

fn load_object(
    offsets: &Offsets,
    cgroup: &CgroupFilter,
    settings: &Settings,
) -> Result<Ebpf, BpfError> {
    let groups = settings.groups.max(1);
    if OBJECT.is_empty() {
        return Err(BpfError::NoObject);
    }
    // Raise RLIMIT_MEMLOCK for kernels that still charge BPF memory to it (< 5.11).
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid, initialised struct; failure only matters on old kernels.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) };
    let object = object_for_this_kernel();
    let mut loader = loader_without_kernel_btf();
    let ebpf = loader
        .btf(None)
        .override_global(names::GLOBAL_OFFSETS, offsets, true)
        .override_global(names::GLOBAL_CGROUP, cgroup, true)
        .override_global(names::GLOBAL_SETTINGS, settings, true)
        .map_max_entries(names::MAP_TASKS, offsets.pid_max.max(1))
        .map_max_entries(names::MAP_PENDING, offsets.pid_max.max(1))
        .map_max_entries(names::MAP_CALLS, groups * argspec::TABLE_LEN)
        .map_max_entries(names::MAP_ARG_READ_FAILS, groups * argspec::TABLE_LEN)
        .map_max_entries(names::MAP_COUNTERS, groups * counters::COUNT)
        .load(&object)
        .map_err(|source| BpfError::Load { source });
    drop(loader);
    drop(object);
    // What the object's and the BTF parses freed goes back to the system, not only to the heap.
    // SAFETY: malloc_trim only releases free memory of glibc's heap; it touches no live object.
    unsafe { libc::malloc_trim(0) };
    ebpf
}

/// The object as this kernel should load it: as built (the maps of
/// [`names::RUNTIME_ALLOCATED_MAPS`] allocate their elements when a key is first inserted),
/// or, before Linux 6.1 — where a tracing program allocating a hash map element could
/// deadlock, and PREEMPT_RT refused it — with those maps preallocated again.
fn object_for_this_kernel() -> std::borrow::Cow<'static, [u8]> {
    if allocates_in_tracing_programs() {
        return std::borrow::Cow::Borrowed(OBJECT);
    }
    match preallocated(OBJECT, &names::RUNTIME_ALLOCATED_MAPS) {
        Ok(patched) => std::borrow::Cow::Owned(patched),
        Err(why) => {
            tracing::warn!("cannot preallocate the hash maps for this kernel (< 6.1): {why}");
            std::borrow::Cow::Borrowed(OBJECT)
        }
    }
}

/// Whether this kernel allocates hash map elements safely in a tracing program (Linux 6.1: the
/// BPF memory allocator).
fn allocates_in_tracing_programs() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 1, 0))
}

/// `elf` with `BPF_F_NO_PREALLOC` cleared in the definitions of the per-CPU hash maps `maps`
/// (each a `struct bpf_map_def` in the `maps` section: type, key size, value size, max
/// entries, flags, as aya-ebpf lays it out).
fn preallocated(elf: &[u8], maps: &[&str]) -> Result<Vec<u8>, String> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
    const BPF_F_NO_PREALLOC: u32 = 1;
    let file = object::File::parse(elf).map_err(|e| format!("parsing the object: {e}"))?;
    let section = file
        .section_by_name("maps")
        .ok_or("the object has no `maps` section")?;
    let (start, size) = section
        .file_range()
        .ok_or("the `maps` section has no bytes")?;
    let mut out = elf.to_vec();
    for &name in maps {
        let symbol = file
            .symbols()
            .find(|s| s.name() == Ok(name) && s.section_index() == Some(section.index()))
            .ok_or_else(|| format!("no map `{name}` in the object"))?;
        let at = usize::try_from(symbol.address())
            .ok()
            .filter(|&a| (a as u64) + 20 <= size)
            .ok_or_else(|| format!("map `{name}` lies outside its section"))?
            + usize::try_from(start).map_err(|_| "section offset")?;
        let word = |i: usize| {
            u32::from_ne_bytes(out[at + 4 * i..at + 4 * i + 4].try_into().unwrap_or([0; 4]))
        };
        if word(0) != BPF_MAP_TYPE_PERCPU_HASH {
            return Err(format!(
                "map `{name}` is not a per-CPU hash map (type {})",
                word(0)
            ));
        }
        let flags = word(4) & !BPF_F_NO_PREALLOC;
        out[at + 16..at + 20].copy_from_slice(&flags.to_ne_bytes());
    }
    Ok(out)
}

/// An [`EbpfLoader`] that has not parsed the kernel's BTF.
///
/// auditor's programs are raw tracepoints without CO-RE relocations (kernel structure offsets
/// come from [`kernel_offsets`] as globals), so aya needs no kernel BTF to load them. But aya
/// 0.14's `EbpfLoader::new` always parses `/sys/kernel/btf/vmlinux` (5 MB on this kind of
/// host: 14.6 MiB of heap and ~10 ms), and offers no way to be given none before it does. So
/// the loader is made where that file reads empty ([`without_kernel_btf`]). Whatever fails on
/// the way (no CAP_SYS_ADMIN, a read-only `/sys`), it is made the ordinary way: only memory and
/// time are at stake.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    without_kernel_btf(EbpfLoader::new).unwrap_or_else(|why| {
        tracing::debug!("aya parses the kernel's BTF, which auditor does not need ({why})");
        EbpfLoader::new()
    })
}

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Run `f` in a thread of its own that sees `/sys/kernel/btf/vmlinux` empty: the thread
/// unshares its file-system context and mount namespace, makes every mount a slave (nothing it
/// mounts reaches the host), binds `/dev/null` over the file, runs `f` and ends; its namespace
/// goes with it. Nothing else in the process sees any of it.
fn without_kernel_btf<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("unshare: {e}"))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .map_err(|e| format!("making / a slave mount: {e}"))?;
            mount(
                Some("/dev/null"),
                VMLINUX_BTF,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("binding /dev/null over {VMLINUX_BTF}: {e}"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err("the loader thread panicked".to_owned()))
    })
}

/// Whether the kernel is PREEMPT_RT (`/sys/kernel/realtime` reads 1): there a BPF program runs
/// with migration, not preemption, disabled, so two programs on one CPU could interleave their
/// read and write of one per-CPU value.
pub(crate) fn preempt_rt() -> bool {
    std::fs::read_to_string("/sys/kernel/realtime").is_ok_and(|s| s.trim() == "1")
}

/// Load and attach `programs` in order; their links, which keep them attached while open.
fn attach(
    ebpf: &mut Ebpf,
    programs: &[(&'static str, &'static str)],
) -> Result<Vec<FdLink>, BpfError> {
    let mut links = Vec::with_capacity(programs.len());
    for &(name, tp) in programs {
        let prog: &mut RawTracePoint = ebpf
            .program_mut(name)
            .ok_or(BpfError::MissingProgram(name))?
            .try_into()
            .map_err(|source| BpfError::Program { name, source })?;
        prog.load()
            .map_err(|source| BpfError::Program { name, source })?;
        let id = prog
            .attach(tp)
            .map_err(|source| BpfError::Program { name, source })?;
        let link = prog
            .take_link(id)
            .map_err(|source| BpfError::Program { name, source })?;
        links.push(FdLink::from(link));
    }
    Ok(links)
}

impl Observer {
    /// Load and attach the observer. Nothing is tracked until [`Observer::track`] (or a cgroup
    /// filter) says so.
    pub fn load(config: &ObserverConfig) -> Result<Self, BpfError> {
        let (observer, _) = Self::load_object(config)?;
        Ok(observer)
    }

    /// [`Observer::load`], and the loaded object (its programs, to pin them).
    fn load_object(config: &ObserverConfig) -> Result<(Self, Ebpf), BpfError> {
        let offsets = kernel_offsets()?;
        let cgroup = config.cgroup.unwrap_or_default();
        let groups = config.groups.clamp(1, slot::MAX_GROUPS);
        let settings = Settings {
            emit_refusals: u32::from(config.emit_refusals),
            groups,
            cgroup_groups: u32::from(config.cgroup_groups),
            mntns_groups: u32::from(config.mntns_groups),
            tid_memo: u32::from(!preempt_rt()),
        };
        let mut ebpf = load_object(&offsets, &cgroup, &settings)?;
        {
            let map = ebpf
                .map_mut(names::MAP_ARG_SPECS)
                .ok_or(BpfError::MissingMap(names::MAP_ARG_SPECS))?;
            let mut specs: Array<&mut MapData, u32> =
                Array::try_from(map).map_err(map_err(names::MAP_ARG_SPECS))?;
            for &(abi, nr, spec) in &config.arg_specs {
                if nr < auditor_common::abi::MAX_NR && abi < auditor_common::abi::COUNT {
                    specs
                        .set(argspec::index(abi, nr), spec, 0)
                        .map_err(map_err(names::MAP_ARG_SPECS))?;
                }
            }
        }
        // Lifecycle hooks first, so that a fork between attaching sys_enter and sched_process_fork
        // cannot escape.
        let links = attach(&mut ebpf, &names::OBSERVER_PROGRAMS)?;
        let mut maps = std::collections::HashMap::new();
        for name in OBSERVER_MAPS {
            maps.insert(name, ebpf.take_map(name).ok_or(BpfError::MissingMap(name))?);
        }
        Ok((
            Observer {
                maps,
                _links: links,
                pid_max: offsets.pid_max,
                groups,
                pinned: None,
            },
            ebpf,
        ))
    }

    fn map(&self, name: &'static str) -> Result<&Map, BpfError> {
        self.maps.get(name).ok_or(BpfError::MissingMap(name))
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, BpfError> {
        self.maps.get_mut(name).ok_or(BpfError::MissingMap(name))
    }

    /// Number of groups this observer keeps apart.
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// Start tracking thread `tid` with executable id `exe` and `flags` from
    /// `auditor_common::slot` (FRESH for a running thread, WAIT_EXEC for auditor's launcher).
    pub fn track(&mut self, tid: u32, exe: u32, flags: u64) -> Result<(), BpfError> {
        self.track_in(0, tid, exe, flags)
    }

    /// [`Observer::track`] in group `group`.
    pub fn track_in(&mut self, group: u32, tid: u32, exe: u32, flags: u64) -> Result<(), BpfError> {
        if tid >= self.pid_max {
            return Err(BpfError::TidOutOfRange {
                tid,
                pid_max: self.pid_max,
            });
        }
        self.check_group(group)?;
        let map = self.map_mut(names::MAP_TASKS)?;
        let mut tasks: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(map_err(names::MAP_TASKS))?;
        tasks
            .set(tid, slot::new_in(group, exe, flags), 0)
            .map_err(map_err(names::MAP_TASKS))?;
        self.clear_pending(tid)
    }

    /// The group of thread `tid` if it is tracked.
    pub fn group_of(&self, tid: u32) -> Result<Option<u32>, BpfError> {
        if tid >= self.pid_max {
            return Ok(None);
        }
        let map = self.map(names::MAP_TASKS)?;
        let tasks: Array<&MapData, u64> =
            Array::try_from(map).map_err(map_err(names::MAP_TASKS))?;
        let s = tasks.get(&tid, 0).map_err(map_err(names::MAP_TASKS))?;
        Ok((s != 0).then(|| slot::group(s)))
    }

    fn check_group(&self, group: u32) -> Result<(), BpfError> {
        if group >= self.groups {
            return Err(BpfError::GroupOutOfRange {
                group,
                groups: self.groups,
            });
        }
        Ok(())
    }

    /// Adopt every untracked task that execs in the cgroup v2 with id `cgroup_id` into `group`
    /// (needs `cgroup_groups` at load).
    pub fn adopt_cgroup(&mut self, cgroup_id: u64, group: u32) -> Result<(), BpfError> {
        self.check_group(group)?;
        let name = names::MAP_CGROUP_GROUPS;
        let map = self.map_mut(name)?;
        let mut m: aya::maps::HashMap<&mut MapData, u64, u32> =
            aya::maps::HashMap::try_from(map).map_err(map_err(name))?;
        m.insert(cgroup_id, group, 0).map_err(map_err(name))
    }

    /// Adopt every untracked task that execs in the mount namespace with inode number `inum`
    /// into `group` (needs `mntns_groups` at load).
    pub fn adopt_mntns(&mut self, inum: u32, group: u32) -> Result<(), BpfError> {
        self.check_group(group)?;
        let name = names::MAP_MNTNS_GROUPS;
        let map = self.map_mut(name)?;
        let mut m: aya::maps::HashMap<&mut MapData, u32, u32> =
            aya::maps::HashMap::try_from(map).map_err(map_err(name))?;
        m.insert(inum, group, 0).map_err(map_err(name))
    }

    /// Stop adopting tasks of a mount namespace.
    pub fn forget_mntns(&mut self, inum: u32) -> Result<(), BpfError> {
        let name = names::MAP_MNTNS_GROUPS;
        let map = self.map_mut(name)?;
        let mut m: aya::maps::HashMap<&mut MapData, u32, u32> =
            aya::maps::HashMap::try_from(map).map_err(map_err(name))?;
        match m.remove(&inum) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(BpfError::Map { name, source: e }),
        }
    }

    /// Stop adopting threads of a cgroup.
    pub fn forget_cgroup(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let name = names::MAP_CGROUP_GROUPS;
        let map = self.map_mut(name)?;
        let mut m: aya::maps::HashMap<&mut MapData, u64, u32> =
            aya::maps::HashMap::try_from(map).map_err(map_err(name))?;
        match m.remove(&cgroup_id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(BpfError::Map { name, source: e }),
        }
    }

    /// Forget everything group `group` recorded, so that it can serve another container. Call
    /// it only when no thread of the group is alive.
    pub fn reset_group(&mut self, group: u32) -> Result<(), BpfError> {
        self.check_group(group)?;
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| BpfError::Proc {
            what: "possible CPUs",
            source: e,
        })?;
        {
            let name = names::MAP_CALLS;
            let map = self.map_mut(name)?;
            let mut a: PerCpuArray<&mut MapData, SysStat> =
                PerCpuArray::try_from(map).map_err(map_err(name))?;
            for i in argspec::group_index(group, 0, 0)..argspec::group_index(group + 1, 0, 0) {
                let v = a.get(&i, 0).map_err(map_err(name))?;
                if v.iter().any(|s| s.count > 0) {
                    let zero = aya::maps::PerCpuValues::try_from(vec![SysStat::default(); ncpus])
                        .map_err(|source| BpfError::Proc {
                        what: "possible CPUs",
                        source,
                    })?;
                    a.set(i, zero, 0).map_err(map_err(name))?;
                }
            }
        }
        for (name, from, to) in [
            (
                names::MAP_ARG_READ_FAILS,
                argspec::group_index(group, 0, 0),
                argspec::group_index(group + 1, 0, 0),
            ),
            (
                names::MAP_COUNTERS,
                counters::index(group, 0),
                counters::index(group + 1, 0),
            ),
        ] {
            let map = self.map_mut(name)?;
            let mut a: PerCpuArray<&mut MapData, u64> =
                PerCpuArray::try_from(map).map_err(map_err(name))?;
            for i in from..to {
                let v = a.get(&i, 0).map_err(map_err(name))?;
                if v.iter().any(|&n| n > 0) {
                    let zero =
                        aya::maps::PerCpuValues::try_from(vec![0u64; ncpus]).map_err(|source| {
                            BpfError::Proc {
                                what: "possible CPUs",
                                source,
                            }
                        })?;
                    a.set(i, zero, 0).map_err(map_err(name))?;
                }
            }
        }
        remove_keys::<SysKey>(self, names::MAP_EXE_CALLS, |k| k.group == group)?;
        remove_keys::<OutcomeKey>(self, names::MAP_OUTCOMES, |k| k.group == group)?;
        remove_keys::<u64>(self, names::MAP_EXES_SEEN, |k| (k >> 32) as u32 == group)?;
        // Argument tuples are keyed by a hash: the daemon passes the ones it read.
        Ok(())
    }

    /// Forget argument tuples (by hash) that a finished group recorded.
    pub fn forget_args(&mut self, hashes: &[u64]) -> Result<(), BpfError> {
        let name = names::MAP_ARGS_SEEN;
        let map = self.map_mut(name)?;
        let mut m: PerCpuHashMap<&mut MapData, u64, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err(name))?;
        for h in hashes {
            match m.remove(h) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(BpfError::Map { name, source: e }),
            }
        }
        Ok(())
    }

    fn clear_pending(&mut self, tid: u32) -> Result<(), BpfError> {
        let map = self.map_mut(names::MAP_PENDING)?;
        let mut pending: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(map_err(names::MAP_PENDING))?;
        pending.set(tid, 0, 0).map_err(map_err(names::MAP_PENDING))
    }

    /// Stop tracking thread `tid`.
    pub fn untrack(&mut self, tid: u32) -> Result<(), BpfError> {
        if tid >= self.pid_max {
            return Ok(());
        }
        let map = self.map_mut(names::MAP_TASKS)?;
        let mut tasks: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(map_err(names::MAP_TASKS))?;
        tasks.set(tid, 0, 0).map_err(map_err(names::MAP_TASKS))?;
        self.clear_pending(tid)
    }

    /// Take the ring buffer (once) for an event reader.
    pub fn take_events(&mut self) -> Result<EventReader, BpfError> {
        let map = self
            .maps
            .remove(names::MAP_EVENTS)
            .ok_or(BpfError::MissingMap(names::MAP_EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(map_err(names::MAP_EVENTS))?;
        Ok(EventReader { ring })
    }
}

/// Remove the keys of a per-CPU hash map that `matches` selects.
fn remove_keys<K: aya::Pod + Eq + std::hash::Hash>(
    observer: &mut Observer,
    name: &'static str,
    matches: impl Fn(&K) -> bool,
) -> Result<(), BpfError> {
    let map = observer.map_mut(name)?;
    let mut m: PerCpuHashMap<&mut MapData, K, u64> =
        PerCpuHashMap::try_from(map).map_err(map_err(name))?;
    let mut doomed = Vec::new();
    for k in m.keys() {
        let k = k.map_err(map_err(name))?;
        if matches(&k) {
            doomed.push(k);
        }
    }
    for k in doomed {
        match m.remove(&k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(BpfError::Map { name, source: e }),
        }
    }
    Ok(())
}

/// Empty programs on the syscall hooks: the benchmark's floor.
pub struct Floor {
    _ebpf: Ebpf,
    _links: Vec<FdLink>,
}

impl Floor {
    pub fn load() -> Result<Self, BpfError> {
        let offsets = kernel_offsets()?;
        let mut ebpf = load_object(&offsets, &CgroupFilter::default(), &Settings::default())?;
        let links = attach(&mut ebpf, &names::FLOOR_PROGRAMS)?;
        Ok(Floor {
            _ebpf: ebpf,
            _links: links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(path: &str) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// The masked thread sees the file empty; the rest of the process, and the host, do not.
    #[test]
    fn kernel_btf_is_hidden_from_the_loader_thread_only() {
        let ready = crate::testing::root() && size(VMLINUX_BTF) > 0;
        if !crate::testing::privileged(
            "kernel_btf_is_hidden_from_the_loader_thread_only",
            ready,
            &format!("root and {VMLINUX_BTF}"),
        ) {
            return;
        }
        let before = size(VMLINUX_BTF);
        let inside = without_kernel_btf(|| {
            (
                size(VMLINUX_BTF),
                std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default(),
            )
        })
        .expect("mask the kernel BTF");
        assert_eq!(inside.0, 0, "the loader thread reads an empty file");
        assert!(inside.1.contains(" /sys/kernel/btf/vmlinux "));
        assert_eq!(size(VMLINUX_BTF), before, "this thread still reads it");
        let host = std::fs::read_to_string("/proc/1/mountinfo").expect("mountinfo of pid 1");
        assert!(
            !host.contains(" /sys/kernel/btf/vmlinux "),
            "the bind mount must not reach the host"
        );
        let ours = std::fs::read_to_string("/proc/self/mountinfo").expect("own mountinfo");
        assert!(!ours.contains(" /sys/kernel/btf/vmlinux "));
    }

    /// The loader made that way loads auditor's programs: they need no kernel BTF.
    #[test]
    fn programs_load_without_kernel_btf() {
        let ready = crate::testing::root() && !OBJECT.is_empty();
        if !crate::testing::privileged(
            "programs_load_without_kernel_btf",
            ready,
            "root and the eBPF object",
        ) {
            return;
        }
        let mut loader = without_kernel_btf(EbpfLoader::new).expect("mask the kernel BTF");
        let offsets = kernel_offsets().expect("offsets");
        let mut ebpf = loader
            .btf(None)
            .override_global(names::GLOBAL_OFFSETS, &offsets, true)
            .map_max_entries(names::MAP_TASKS, offsets.pid_max.max(1))
            .map_max_entries(names::MAP_PENDING, offsets.pid_max.max(1))
            .load(OBJECT)
            .expect("load the object");
        for &(name, _) in &names::OBSERVER_PROGRAMS {
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .expect("program")
                .try_into()
                .expect("raw tracepoint");
            prog.load().expect("verifier accepts it");
        }
    }

    /// The per-syscall statistics read with one batch lookup are what one lookup per entry
    /// reads, in group 0 (the table's start) and in a later group (a batch that starts inside
    /// the array).
    #[test]
    fn a_batch_lookup_of_the_syscall_table_reads_what_lookups_one_by_one_read() {
        let ready = crate::testing::root() && !OBJECT.is_empty();
        if !crate::testing::privileged(
            "a_batch_lookup_of_the_syscall_table_reads_what_lookups_one_by_one_read",
            ready,
            "root and the eBPF object",
        ) {
            return;
        }
        let mut observer = Observer::load(&ObserverConfig {
            groups: 3,
            ..ObserverConfig::default()
        })
        .expect("load the observer");
        for group in [0, 2] {
            let (tx, rx) = std::sync::mpsc::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                tx.send(u32::try_from(tid).expect("tid")).expect("send");
                go_rx.recv().expect("go");
                for _ in 0..7 + group {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::getppid() };
                }
            });
            let tid = rx.recv().expect("tid");
            observer
                .track_in(group, tid, 0, slot::FRESH)
                .expect("track");
            go_tx.send(()).expect("go");
            t.join().expect("thread");
            observer.untrack(tid).expect("untrack");
            let batch = observer.calls(group).expect("batch lookup");
            let one_by_one = observer.calls_one_by_one(group).expect("lookups");
            assert_eq!(
                batch
                    .iter()
                    .map(|(a, n, v)| (*a, *n, v.clone()))
                    .collect::<Vec<_>>(),
                one_by_one,
                "group {group}"
            );
            let getppid: u64 = batch
                .iter()
                .filter(|(abi, nr, _)| *abi == auditor_common::abi::X86_64 && *nr == 110)
                .flat_map(|(_, _, v)| v.iter().map(|s| s.count))
                .sum();
            assert!(getppid >= u64::from(7 + group), "group {group}: {batch:?}");
        }
    }

    /// The flags of every map as the kernel made it, by name.
    fn map_flags(ebpf: &Ebpf) -> std::collections::BTreeMap<String, u32> {
        ebpf.maps()
            .filter_map(|(name, map)| {
                let data = match map {
                    Map::PerCpuHashMap(d)
                    | Map::Array(d)
                    | Map::PerCpuArray(d)
                    | Map::HashMap(d)
                    | Map::RingBuf(d) => d,
                    _ => return None,
                };
                Some((name.to_owned(), data.info().expect("map info").map_flags()))
            })
            .collect()
    }

    /// Loaded as built, the per-CPU hash maps allocate their elements at run time on this
    /// kernel (≥ 6.1); with the older kernels' patch they are preallocated again, nothing else
    /// changes, and the verifier accepts the programs both ways.
    #[test]
    fn hash_maps_are_allocated_at_run_time_and_preallocated_for_older_kernels() {
        let test = "hash_maps_are_allocated_at_run_time_and_preallocated_for_older_kernels";
        let ready = crate::testing::root() && !OBJECT.is_empty() && allocates_in_tracing_programs();
        if !crate::testing::privileged(test, ready, "root, the eBPF object and Linux 6.1") {
            return;
        }
        let offsets = kernel_offsets().expect("offsets");
        let patched = preallocated(OBJECT, &names::RUNTIME_ALLOCATED_MAPS).expect("patch");
        let as_built = object_for_this_kernel();
        assert!(matches!(as_built, std::borrow::Cow::Borrowed(_)));
        let mut flags = Vec::new();
        for (object, runtime) in [(&as_built[..], true), (&patched[..], false)] {
            let mut ebpf = EbpfLoader::new()
                .btf(None)
                .override_global(names::GLOBAL_OFFSETS, &offsets, true)
                .map_max_entries(names::MAP_TASKS, offsets.pid_max.max(1))
                .map_max_entries(names::MAP_PENDING, offsets.pid_max.max(1))
                .load(object)
                .expect("load the object");
            let these = map_flags(&ebpf);
            for name in names::RUNTIME_ALLOCATED_MAPS {
                assert_eq!(
                    these[name] & 1 != 0,
                    runtime,
                    "{name}: BPF_F_NO_PREALLOC expected {runtime}"
                );
            }
            flags.push(these);
            for &(name, _) in &names::OBSERVER_PROGRAMS {
                let prog: &mut RawTracePoint = ebpf
                    .program_mut(name)
                    .expect("program")
                    .try_into()
                    .expect("raw tracepoint");
                prog.load().expect("verifier accepts it");
            }
        }
        let (built, old) = (&flags[0], &flags[1]);
        assert!(
            built.len() > names::RUNTIME_ALLOCATED_MAPS.len(),
            "{built:?}"
        );
        for (name, f) in built {
            if !names::RUNTIME_ALLOCATED_MAPS.contains(&name.as_str()) {
                assert_eq!(
                    old.get(name),
                    Some(f),
                    "{name}: another map's flags changed"
                );
            }
        }
        assert!(
            preallocated(OBJECT, &[names::MAP_TASKS]).is_err(),
            "an array is not patched"
        );
        assert!(preallocated(OBJECT, &["NO_SUCH_MAP"]).is_err());
        assert!(preallocated(b"not an ELF", &names::RUNTIME_ALLOCATED_MAPS).is_err());
    }
}
