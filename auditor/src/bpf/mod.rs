//! The only module that uses aya: load auditor's eBPF programs, attach them to raw tracepoints
//! (no tracefs needed), and read what they recorded as plain data.

pub mod btf;

use std::collections::HashMap;

use auditor_common::{
    argspec, counters, event, names, slot, ArgsEvent, CgroupFilter, EventHeader, ExecEvent,
    Offsets, OutcomeKey, RefusedEvent, Settings, SysKey, SysStat,
};
use aya::{
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::RawTracePoint,
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
         and a kernel with BPF, raw tracepoints and BTF)"
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
    #[error("thread id {tid} is beyond kernel.pid_max ({pid_max}) at load time")]
    TidOutOfRange { tid: u32, pid_max: u32 },
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
}

/// auditor's observer programs, loaded and attached. Dropping it detaches them.
pub struct Observer {
    ebpf: Ebpf,
    pid_max: u32,
}

/// Everything the maps hold at one moment, as plain data.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (abi, nr) with calls, one value per possible CPU.
    pub calls: Vec<(u8, u16, Vec<SysStat>)>,
    /// Calls per (executable, abi, nr), summed over CPUs, runs still pending included.
    pub exe_calls: Vec<(SysKey, u64)>,
    pub outcomes: Vec<(OutcomeKey, u64)>,
    /// Summed over CPUs, indexed by `auditor_common::counters`.
    pub counters: Vec<u64>,
    /// (argspec index, failed reads).
    pub arg_read_fails: Vec<(u32, u64)>,
    /// Argument tuple hash -> calls.
    pub args_seen: HashMap<u64, u64>,
    /// Executable id -> execs.
    pub exes_seen: HashMap<u32, u64>,
}

impl Snapshot {
    pub fn counter(&self, idx: u32) -> u64 {
        self.counters.get(idx as usize).copied().unwrap_or(0)
    }
}

/// An event from the ring buffer.
#[derive(Debug, Clone)]
pub enum Event {
    Exec { header: EventHeader, filename: Vec<u8> },
    Args(Box<ArgsEvent>),
    /// A call a seccomp filter refused (only with `emit_refusals`).
    Refused(RefusedEvent),
    /// Bytes that did not decode (wrong size or kind): a bug, reported, never trusted.
    Malformed { len: usize, kind: u32 },
}

/// Decode one ring buffer record.
pub fn decode_event(bytes: &[u8]) -> Event {
    let kind = bytes
        .get(0..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    match kind {
        event::EXEC if bytes.len() == std::mem::size_of::<ExecEvent>() => {
            // SAFETY: the length matches, ExecEvent is repr(C) of integers and byte arrays
            // only (every bit pattern valid), and read_unaligned copes with any alignment.
            let e: ExecEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let n = (e.len as usize).saturating_sub(1).min(e.filename.len());
            Event::Exec { header: e.header, filename: e.filename[..n].to_vec() }
        }
        event::ARGS if bytes.len() == std::mem::size_of::<ArgsEvent>() => {
            // SAFETY: as above, for ArgsEvent.
            let e: ArgsEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            Event::Args(Box::new(e))
        }
        event::REFUSED if bytes.len() == std::mem::size_of::<RefusedEvent>() => {
            // SAFETY: as above, for RefusedEvent.
            Event::Refused(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
        }
        _ => Event::Malformed { len: bytes.len(), kind },
    }
}

fn read_pid_max() -> Result<u32, BpfError> {
    let s = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .map_err(|source| BpfError::Proc { what: "/proc/sys/kernel/pid_max", source })?;
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
        _pad: 0,
    })
}

fn load_object(offsets: &Offsets, cgroup: &CgroupFilter, settings: &Settings) -> Result<Ebpf, BpfError> {
    if OBJECT.is_empty() {
        return Err(BpfError::NoObject);
    }
    // Raise RLIMIT_MEMLOCK for kernels that still charge BPF memory to it (< 5.11).
    let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid, initialised struct; failure only matters on old kernels.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) };
    EbpfLoader::new()
        .override_global(names::GLOBAL_OFFSETS, offsets, true)
        .override_global(names::GLOBAL_CGROUP, cgroup, true)
        .override_global(names::GLOBAL_SETTINGS, settings, true)
        .map_max_entries(names::MAP_TASKS, offsets.pid_max.max(1))
        .map_max_entries(names::MAP_PENDING, offsets.pid_max.max(1))
        .load(OBJECT)
        .map_err(|source| BpfError::Load { source })
}

fn attach(ebpf: &mut Ebpf, programs: &[(&'static str, &'static str)]) -> Result<(), BpfError> {
    for &(name, tp) in programs {
        let prog: &mut RawTracePoint = ebpf
            .program_mut(name)
            .ok_or(BpfError::MissingProgram(name))?
            .try_into()
            .map_err(|source| BpfError::Program { name, source })?;
        prog.load().map_err(|source| BpfError::Program { name, source })?;
        prog.attach(tp).map_err(|source| BpfError::Program { name, source })?;
    }
    Ok(())
}

impl Observer {
    /// Load and attach the observer. Nothing is tracked until [`Observer::track`] (or a cgroup
    /// filter) says so.
    pub fn load(config: &ObserverConfig) -> Result<Self, BpfError> {
        let offsets = kernel_offsets()?;
        let cgroup = config.cgroup.unwrap_or_default();
        let settings = Settings { emit_refusals: u32::from(config.emit_refusals), _pad: 0 };
        let mut ebpf = load_object(&offsets, &cgroup, &settings)?;
        {
            let map = ebpf.map_mut(names::MAP_ARG_SPECS).ok_or(BpfError::MissingMap(names::MAP_ARG_SPECS))?;
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
        attach(&mut ebpf, &names::OBSERVER_PROGRAMS)?;
        Ok(Observer { ebpf, pid_max: offsets.pid_max })
    }

    /// Start tracking thread `tid` with executable id `exe` and `flags` from
    /// `auditor_common::slot` (FRESH for a running thread, WAIT_EXEC for auditor's launcher).
    pub fn track(&mut self, tid: u32, exe: u32, flags: u64) -> Result<(), BpfError> {
        if tid >= self.pid_max {
            return Err(BpfError::TidOutOfRange { tid, pid_max: self.pid_max });
        }
        let map = self.ebpf.map_mut(names::MAP_TASKS).ok_or(BpfError::MissingMap(names::MAP_TASKS))?;
        let mut tasks: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err(names::MAP_TASKS))?;
        tasks.set(tid, slot::new(exe, flags), 0).map_err(map_err(names::MAP_TASKS))?;
        self.clear_pending(tid)
    }

    fn clear_pending(&mut self, tid: u32) -> Result<(), BpfError> {
        let map = self.ebpf.map_mut(names::MAP_PENDING).ok_or(BpfError::MissingMap(names::MAP_PENDING))?;
        let mut pending: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err(names::MAP_PENDING))?;
        pending.set(tid, 0, 0).map_err(map_err(names::MAP_PENDING))
    }

    /// Stop tracking thread `tid`.
    pub fn untrack(&mut self, tid: u32) -> Result<(), BpfError> {
        if tid >= self.pid_max {
            return Ok(());
        }
        let map = self.ebpf.map_mut(names::MAP_TASKS).ok_or(BpfError::MissingMap(names::MAP_TASKS))?;
        let mut tasks: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err(names::MAP_TASKS))?;
        tasks.set(tid, 0, 0).map_err(map_err(names::MAP_TASKS))?;
        self.clear_pending(tid)
    }

    /// Take the ring buffer (once) for an event reader.
    pub fn take_events(&mut self) -> Result<EventReader, BpfError> {
        let map = self.ebpf.take_map(names::MAP_EVENTS).ok_or(BpfError::MissingMap(names::MAP_EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(map_err(names::MAP_EVENTS))?;
        Ok(EventReader { ring })
    }

    /// Sum of the `syscalls` counter: cheap, for progress display.
    pub fn counters(&self) -> Result<Vec<u64>, BpfError> {
        let map = self.ebpf.map(names::MAP_COUNTERS).ok_or(BpfError::MissingMap(names::MAP_COUNTERS))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(map_err(names::MAP_COUNTERS))?;
        let mut out = vec![0u64; counters::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let v = arr.get(&(i as u32), 0).map_err(map_err(names::MAP_COUNTERS))?;
            *slot = v.iter().sum();
        }
        Ok(out)
    }

    /// Number of distinct syscalls (per ABI) recorded so far.
    pub fn distinct_syscalls(&self) -> Result<usize, BpfError> {
        Ok(self.calls()?.len())
    }

    fn calls(&self) -> Result<Vec<(u8, u16, Vec<SysStat>)>, BpfError> {
        let map = self.ebpf.map(names::MAP_CALLS).ok_or(BpfError::MissingMap(names::MAP_CALLS))?;
        let calls: PerCpuArray<&MapData, SysStat> =
            PerCpuArray::try_from(map).map_err(map_err(names::MAP_CALLS))?;
        let max = u32::from(auditor_common::abi::MAX_NR);
        let mut out = Vec::new();
        for (i, v) in calls.iter().enumerate() {
            let v = v.map_err(map_err(names::MAP_CALLS))?;
            if v.iter().any(|s| s.count > 0) {
                let i = i as u32;
                out.push(((i / max) as u8, (i % max) as u16, v.iter().copied().collect()));
            }
        }
        Ok(out)
    }

    /// Read everything the maps hold.
    pub fn snapshot(&self) -> Result<Snapshot, BpfError> {
        let get = |name: &'static str| self.ebpf.map(name).ok_or(BpfError::MissingMap(name));
        let mut snap = Snapshot { counters: self.counters()?, ..Default::default() };

        snap.calls = self.calls()?;
        let exe_calls: PerCpuHashMap<&MapData, SysKey, u64> =
            PerCpuHashMap::try_from(get(names::MAP_EXE_CALLS)?).map_err(map_err(names::MAP_EXE_CALLS))?;
        let mut per_exe: HashMap<SysKey, u64> = HashMap::new();
        for item in exe_calls.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_EXE_CALLS))?;
            *per_exe.entry(k).or_default() += v.iter().sum::<u64>();
        }
        // Runs of live threads not yet flushed (a thread still looping on one syscall).
        let tasks: Array<&MapData, u64> =
            Array::try_from(get(names::MAP_TASKS)?).map_err(map_err(names::MAP_TASKS))?;
        let pending: Array<&MapData, u64> =
            Array::try_from(get(names::MAP_PENDING)?).map_err(map_err(names::MAP_PENDING))?;
        for (tid, s) in tasks.iter().enumerate() {
            let s = s.map_err(map_err(names::MAP_TASKS))?;
            if s == 0 {
                continue;
            }
            let n = pending.get(&(tid as u32), 0).map_err(map_err(names::MAP_PENDING))?;
            let last = slot::last(s);
            if n > 0 && u64::from(slot::last_nr(last)) != slot::NR_NONE {
                let k = SysKey { exe: slot::exe(s), nr: slot::last_nr(last), abi: slot::last_abi(last), _pad: 0 };
                *per_exe.entry(k).or_default() += n;
            }
        }
        snap.exe_calls = per_exe.into_iter().collect();
        let outcomes: PerCpuHashMap<&MapData, OutcomeKey, u64> =
            PerCpuHashMap::try_from(get(names::MAP_OUTCOMES)?).map_err(map_err(names::MAP_OUTCOMES))?;
        for item in outcomes.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_OUTCOMES))?;
            snap.outcomes.push((k, v.iter().sum()));
        }
        let fails: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(get(names::MAP_ARG_READ_FAILS)?).map_err(map_err(names::MAP_ARG_READ_FAILS))?;
        for (i, v) in fails.iter().enumerate() {
            let v: u64 = v.map_err(map_err(names::MAP_ARG_READ_FAILS))?.iter().sum();
            if v > 0 {
                snap.arg_read_fails.push((i as u32, v));
            }
        }
        let args: PerCpuHashMap<&MapData, u64, u64> =
            PerCpuHashMap::try_from(get(names::MAP_ARGS_SEEN)?).map_err(map_err(names::MAP_ARGS_SEEN))?;
        for item in args.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_ARGS_SEEN))?;
            snap.args_seen.insert(k, v.iter().sum());
        }
        let exes: PerCpuHashMap<&MapData, u32, u64> =
            PerCpuHashMap::try_from(get(names::MAP_EXES_SEEN)?).map_err(map_err(names::MAP_EXES_SEEN))?;
        for item in exes.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_EXES_SEEN))?;
            snap.exes_seen.insert(k, v.iter().sum());
        }
        Ok(snap)
    }
}

/// Reads the observer's ring buffer. Owns its fd; register it with a reactor for readiness.
pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl EventReader {
    /// Drain every record available now.
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        while let Some(item) = self.ring.next() {
            out.push(decode_event(&item));
        }
    }
}

impl std::os::fd::AsRawFd for EventReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

/// Empty programs on the syscall hooks: the benchmark's floor.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    pub fn load() -> Result<Self, BpfError> {
        let offsets = kernel_offsets()?;
        let mut ebpf = load_object(&offsets, &CgroupFilter::default(), &Settings::default())?;
        attach(&mut ebpf, &names::FLOOR_PROGRAMS)?;
        Ok(Floor { _ebpf: ebpf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_exec_events_and_rejects_bad_sizes() {
        let mut e = ExecEvent {
            header: EventHeader { kind: event::EXEC, tid: 7, tgid: 7, exe: 42, time_ns: 1 },
            len: 8,
            _pad: 0,
            filename: [0; auditor_common::EXEC_NAME_LEN],
        };
        e.filename[..7].copy_from_slice(b"/bin/sh");
        // SAFETY: ExecEvent is plain old data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts((&e as *const ExecEvent).cast::<u8>(), std::mem::size_of::<ExecEvent>())
        };
        match decode_event(bytes) {
            Event::Exec { header, filename } => {
                assert_eq!(header.tid, 7);
                assert_eq!(header.exe, 42);
                assert_eq!(filename, b"/bin/sh");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(decode_event(&bytes[..10]), Event::Malformed { len: 10, .. }));
        assert!(matches!(decode_event(&[]), Event::Malformed { len: 0, kind: 0 }));
        let mut wrong = bytes.to_vec();
        wrong[0] = 99;
        assert!(matches!(decode_event(&wrong), Event::Malformed { kind: 99, .. }));
    }
}
