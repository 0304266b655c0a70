//! Reading the observer's maps: counters, per-syscall statistics and everything else at one
//! moment, as plain data ([`Snapshot`]).

use std::collections::HashMap;

use auditor_common::{argspec, counters, names, slot, OutcomeKey, SysKey, SysStat};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap};

use super::{map_err, BpfError, Observer};

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

impl Observer {
    /// The counters of group 0, summed over CPUs: cheap, for progress display.
    pub fn counters(&self) -> Result<Vec<u64>, BpfError> {
        self.counters_of(0)
    }

    /// The counters of `group`, summed over CPUs. `TASKS_EXITED` is read first, so that a
    /// thread counted as exited is always counted as forked or adopted too: live threads
    /// (initial + forked + adopted - exited) are never under-counted by a concurrent fork.
    pub fn counters_of(&self, group: u32) -> Result<Vec<u64>, BpfError> {
        self.check_group(group)?;
        let map = self.map(names::MAP_COUNTERS)?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(names::MAP_COUNTERS))?;
        let mut out = vec![0u64; counters::COUNT as usize];
        let order = std::iter::once(counters::TASKS_EXITED)
            .chain((0..counters::COUNT).filter(|&i| i != counters::TASKS_EXITED));
        for i in order {
            let v = arr
                .get(&counters::index(group, i), 0)
                .map_err(map_err(names::MAP_COUNTERS))?;
            out[i as usize] = v.iter().sum();
        }
        Ok(out)
    }

    /// `group`'s task counts (forked, adopted, exited), summed over CPUs: what telling whether a
    /// container ended needs, in three lookups instead of every counter's (the daemon asks for
    /// every tracked container 20 times a second). Exits are read first, as in
    /// [`Observer::counters_of`], so that a task's exit is never seen without its birth.
    pub fn task_counts_of(&self, group: u32) -> Result<(u64, u64, u64), BpfError> {
        self.check_group(group)?;
        let map = self.map(names::MAP_COUNTERS)?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(names::MAP_COUNTERS))?;
        let get = |i: u32| -> Result<u64, BpfError> {
            Ok(arr
                .get(&counters::index(group, i), 0)
                .map_err(map_err(names::MAP_COUNTERS))?
                .iter()
                .sum())
        };
        let exited = get(counters::TASKS_EXITED)?;
        let forked = get(counters::TASKS_FORKED)?;
        let adopted = get(counters::TASKS_ADOPTED)?;
        Ok((forked, adopted, exited))
    }

    /// Number of distinct syscalls (per ABI) recorded so far in group 0.
    pub fn distinct_syscalls(&self) -> Result<usize, BpfError> {
        self.distinct_syscalls_in(0)
    }

    /// Number of distinct syscalls (per ABI) recorded so far in `group`: one lookup per
    /// possible syscall.
    pub fn distinct_syscalls_in(&self, group: u32) -> Result<usize, BpfError> {
        self.check_group(group)?;
        Ok(self.calls(group)?.len())
    }

    /// Failed calls (an error returned) per group, summed over CPUs: one pass over the
    /// outcomes table.
    pub fn failures_by_group(&self) -> Result<HashMap<u32, u64>, BpfError> {
        let outcomes: PerCpuHashMap<&MapData, OutcomeKey, u64> =
            PerCpuHashMap::try_from(self.map(names::MAP_OUTCOMES)?)
                .map_err(map_err(names::MAP_OUTCOMES))?;
        let mut out = HashMap::new();
        for item in outcomes.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_OUTCOMES))?;
            if k.kind == auditor_common::outcome::FAILED {
                *out.entry(k.group).or_default() += v.iter().sum::<u64>();
            }
        }
        Ok(out)
    }

    /// `group`'s (abi, nr) with calls, one value per possible CPU: one batch lookup of the
    /// group's whole table (see [`super::batch`]), or one lookup per entry where the kernel
    /// has no batch lookup.
    pub(super) fn calls(&self, group: u32) -> Result<Vec<(u8, u16, Vec<SysStat>)>, BpfError> {
        let map = self.map(names::MAP_CALLS)?;
        let base = argspec::group_index(group, 0, 0);
        if let aya::maps::Map::PerCpuArray(data) = map {
            let cpus = aya::util::nr_cpus().map_err(|(_, source)| BpfError::Proc {
                what: "the possible CPUs",
                source,
            })?;
            match super::batch::percpu_array_values(
                data,
                base,
                argspec::TABLE_LEN,
                std::mem::size_of::<SysStat>(),
                cpus,
            ) {
                Ok((values, stride)) => {
                    let mut out = Vec::new();
                    for (i, v) in (0u32..).zip(values.chunks_exact(cpus * stride)) {
                        keep_called(&mut out, i, v.chunks_exact(stride).map(sys_stat).collect());
                    }
                    return Ok(out);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                Err(source) => {
                    return Err(BpfError::Proc {
                        what: "the per-syscall statistics (batch lookup)",
                        source,
                    })
                }
            }
        }
        self.calls_one_by_one(group)
    }

    /// [`Observer::calls`] with one lookup per entry (kernels before 5.6).
    pub(super) fn calls_one_by_one(
        &self,
        group: u32,
    ) -> Result<Vec<(u8, u16, Vec<SysStat>)>, BpfError> {
        let map = self.map(names::MAP_CALLS)?;
        let calls: PerCpuArray<&MapData, SysStat> =
            PerCpuArray::try_from(map).map_err(map_err(names::MAP_CALLS))?;
        let base = argspec::group_index(group, 0, 0);
        let mut out = Vec::new();
        for i in 0..argspec::TABLE_LEN {
            let v = calls
                .get(&(base + i), 0)
                .map_err(map_err(names::MAP_CALLS))?;
            keep_called(&mut out, i, v.iter().copied().collect());
        }
        Ok(out)
    }

    /// Read everything the maps hold (group 0).
    pub fn snapshot(&self) -> Result<Snapshot, BpfError> {
        self.snapshot_of(0)
    }

    /// Read everything the maps hold for `group`. Argument tuples are keyed by hash only:
    /// `args_seen` holds every group's, the caller picks those of its events.
    pub fn snapshot_of(&self, group: u32) -> Result<Snapshot, BpfError> {
        let get = |name: &'static str| self.map(name);
        let mut snap = Snapshot {
            counters: self.counters_of(group)?,
            ..Default::default()
        };

        let exe_calls: PerCpuHashMap<&MapData, SysKey, u64> =
            PerCpuHashMap::try_from(get(names::MAP_EXE_CALLS)?)
                .map_err(map_err(names::MAP_EXE_CALLS))?;
        let mut per_exe: HashMap<SysKey, u64> = HashMap::new();
        for item in exe_calls.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_EXE_CALLS))?;
            if k.group == group {
                *per_exe.entry(k).or_default() += v.iter().sum::<u64>();
            }
        }
        // Runs of live threads not yet flushed (a thread still looping on one syscall).
        let tasks = super::tasks::ArrayView::of(self.map(names::MAP_TASKS)?, names::MAP_TASKS)?;
        let pending: Array<&MapData, u64> =
            Array::try_from(get(names::MAP_PENDING)?).map_err(map_err(names::MAP_PENDING))?;
        for (tid, s) in tasks.iter().enumerate() {
            if s == 0 || slot::group(s) != group {
                continue;
            }
            let n = pending
                .get(&(tid as u32), 0)
                .map_err(map_err(names::MAP_PENDING))?;
            let last = slot::last(s);
            if n > 0 && u64::from(slot::last_nr(last)) != slot::NR_NONE {
                let k = SysKey {
                    exe: slot::exe(s),
                    nr: slot::last_nr(last),
                    abi: slot::last_abi(last),
                    _pad: 0,
                    group,
                };
                *per_exe.entry(k).or_default() += n;
            }
        }
        snap.exe_calls = per_exe.into_iter().collect();
        // The per-syscall counts after the per-executable ones: a call is counted in its run
        // (PENDING) before CALLS, so a snapshot taken while the workload runs never lists a
        // syscall under an executable with no count of its own.
        snap.calls = self.calls(group)?;
        let outcomes: PerCpuHashMap<&MapData, OutcomeKey, u64> =
            PerCpuHashMap::try_from(get(names::MAP_OUTCOMES)?)
                .map_err(map_err(names::MAP_OUTCOMES))?;
        for item in outcomes.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_OUTCOMES))?;
            if k.group == group {
                snap.outcomes.push((k, v.iter().sum()));
            }
        }
        let fails: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(get(names::MAP_ARG_READ_FAILS)?)
                .map_err(map_err(names::MAP_ARG_READ_FAILS))?;
        let base = argspec::group_index(group, 0, 0);
        for i in 0..argspec::TABLE_LEN {
            let v: u64 = fails
                .get(&(base + i), 0)
                .map_err(map_err(names::MAP_ARG_READ_FAILS))?
                .iter()
                .sum();
            if v > 0 {
                snap.arg_read_fails.push((i, v));
            }
        }
        let args: PerCpuHashMap<&MapData, u64, u64> =
            PerCpuHashMap::try_from(get(names::MAP_ARGS_SEEN)?)
                .map_err(map_err(names::MAP_ARGS_SEEN))?;
        for item in args.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_ARGS_SEEN))?;
            snap.args_seen.insert(k, v.iter().sum());
        }
        let exes: PerCpuHashMap<&MapData, u64, u64> =
            PerCpuHashMap::try_from(get(names::MAP_EXES_SEEN)?)
                .map_err(map_err(names::MAP_EXES_SEEN))?;
        for item in exes.iter() {
            let (k, v) = item.map_err(map_err(names::MAP_EXES_SEEN))?;
            if (k >> 32) as u32 == group {
                snap.exes_seen.insert(k as u32, v.iter().sum());
            }
        }
        Ok(snap)
    }
}

/// Keep entry `i` of a group's table (ABI `i / MAX_NR`, number `i % MAX_NR`) if any CPU
/// counted a call of it.
fn keep_called(out: &mut Vec<(u8, u16, Vec<SysStat>)>, i: u32, stats: Vec<SysStat>) {
    let max = u32::from(auditor_common::abi::MAX_NR);
    if stats.iter().any(|s| s.count > 0) {
        out.push(((i / max) as u8, (i % max) as u16, stats));
    }
}

/// A [`SysStat`] from the bytes the kernel copied (native endianness, its field order).
fn sys_stat(b: &[u8]) -> SysStat {
    let word = |i: usize| {
        b.get(i * 8..i * 8 + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_ne_bytes)
    };
    SysStat {
        count: word(0),
        first_seen_ns: word(1),
    }
}
