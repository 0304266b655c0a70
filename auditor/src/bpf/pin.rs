//! Pinning the observer under bpffs, so that its programs keep counting and its maps keep what
//! they counted while no process holds them (`auditor daemon` restarting), and adopting it again.
//!
//! Layout: `/sys/fs/bpf/auditor/<instance>/obj-<object id>/` holds one pin per map (by its
//! name), `prog_<name>` per program and `link_<name>` per attachment. The object id names the
//! build of the eBPF programs, so that a daemon of another build refuses what it cannot read.
//! The instance directory appears whole or not at all: it is filled under a temporary name and
//! renamed.

use std::path::{Path, PathBuf};

use auditor_common::{argspec, counters, hash, names};
use aya::maps::{Map, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::RawTracePoint;

use super::{BpfError, Observer, ObserverConfig, OBJECT, OBSERVER_MAPS};

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The directory of instance `instance`'s pins.
pub fn instance_dir(instance: &str) -> PathBuf {
    Path::new(BPFFS).join("auditor").join(instance)
}

/// This build's eBPF object as a short id: the programs and the layout of every map and record
/// shared with them.
pub fn object_id() -> String {
    let mut h = hash::FNV64_OFFSET;
    for &b in OBJECT {
        h = hash::fnv64_byte(h, b);
    }
    for n in [
        std::mem::size_of::<auditor_common::ArgsEvent>(),
        std::mem::size_of::<auditor_common::ExecEvent>(),
        std::mem::size_of::<auditor_common::SysStat>(),
        std::mem::size_of::<auditor_common::SysKey>(),
        std::mem::size_of::<auditor_common::OutcomeKey>(),
        counters::COUNT as usize,
        argspec::TABLE_LEN as usize,
    ] {
        h = hash::fnv64_u64(h, n as u64);
    }
    format!("{h:016x}")
}

fn pin_err(path: &Path, e: impl std::fmt::Display) -> BpfError {
    BpfError::Pin {
        path: path.to_owned(),
        msg: e.to_string(),
    }
}

/// What an instance directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// Nothing: no directory.
    Nothing,
    /// This build's pins.
    Ours,
    /// Pins of another build (its object id), or something that is not auditor's.
    Other(String),
}

/// What `dir` (an instance directory) holds.
pub fn inspect(dir: &Path) -> Result<Pinned, BpfError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pinned::Nothing),
        Err(e) => return Err(pin_err(dir, e)),
    };
    let ours = format!("obj-{}", object_id());
    let mut other = None;
    for e in entries {
        let name = e.map_err(|e| pin_err(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if *name == ours {
            return Ok(Pinned::Ours);
        }
        other.get_or_insert_with(|| {
            name.strip_prefix("obj-")
                .map_or_else(|| format!("not auditor's: {name}"), str::to_owned)
        });
    }
    Ok(Pinned::Other(
        other.unwrap_or_else(|| "an empty directory".into()),
    ))
}

/// Mount bpffs at [`BPFFS`] unless it is there.
fn ensure_bpffs() -> Result<(), BpfError> {
    let root = Path::new(BPFFS);
    if nix::sys::statfs::statfs(root).is_ok_and(|s| s.filesystem_type().0 == libc::BPF_FS_MAGIC) {
        return Ok(());
    }
    std::fs::create_dir_all(root).map_err(|e| pin_err(root, e))?;
    nix::mount::mount(
        Some("bpf"),
        root,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(|e| pin_err(root, format!("mounting bpffs: {e}")))?;
    tracing::info!(path = BPFFS, "mounted bpffs");
    Ok(())
}

/// Remove the pins in instance directory `dir`: programs no process holds detach, and maps no
/// program or process holds are freed.
pub fn remove(dir: &Path) -> Result<(), BpfError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pin_err(dir, e)),
    }
}

impl Observer {
    /// [`Observer::load`], and pin programs, links and maps in instance directory `dir`, which
    /// must not exist (see [`inspect`]).
    pub fn load_pinned(config: &ObserverConfig, dir: &Path) -> Result<Self, BpfError> {
        ensure_bpffs()?;
        let (mut observer, mut ebpf) = Observer::load_object(config)?;
        let parent = dir.parent().ok_or_else(|| pin_err(dir, "no parent"))?;
        std::fs::create_dir_all(parent).map_err(|e| pin_err(parent, e))?;
        // bpffs refuses names with a dot.
        let tmp = parent.join(format!(
            "_new-{}-{}",
            std::process::id(),
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = remove(&tmp);
        let pin = |observer: &mut Observer, ebpf: &mut aya::Ebpf| -> Result<(), BpfError> {
            let objdir = tmp.join(format!("obj-{}", object_id()));
            std::fs::create_dir_all(&objdir).map_err(|e| pin_err(&objdir, e))?;
            for (name, map) in &observer.maps {
                let p = objdir.join(name);
                map.pin(&p).map_err(|e| pin_err(&p, e))?;
            }
            for &(name, _) in &names::OBSERVER_PROGRAMS {
                let p = objdir.join(format!("prog_{name}"));
                let prog: &mut RawTracePoint = ebpf
                    .program_mut(name)
                    .ok_or(BpfError::MissingProgram(name))?
                    .try_into()
                    .map_err(|source| BpfError::Program { name, source })?;
                prog.pin(&p).map_err(|e| pin_err(&p, e))?;
            }
            let links = std::mem::take(&mut observer._links);
            for (link, &(name, _)) in links.into_iter().zip(&names::OBSERVER_PROGRAMS) {
                let p = objdir.join(format!("link_{name}"));
                let pinned = link.pin(&p).map_err(|e| pin_err(&p, e))?;
                observer._links.push(FdLink::from(pinned));
            }
            std::fs::rename(&tmp, dir).map_err(|e| pin_err(dir, e))
        };
        if let Err(e) = pin(&mut observer, &mut ebpf) {
            let _ = remove(&tmp);
            return Err(e);
        }
        observer.pinned = Some(dir.to_owned());
        Ok(observer)
    }

    /// The observer pinned in instance directory `dir` by a process that has gone: its
    /// programs kept counting meanwhile.
    pub fn adopt(dir: &Path) -> Result<Self, BpfError> {
        match inspect(dir)? {
            Pinned::Ours => {}
            Pinned::Nothing => return Err(pin_err(dir, "nothing is pinned there")),
            Pinned::Other(theirs) => {
                return Err(BpfError::ForeignPins {
                    dir: dir.to_owned(),
                    theirs,
                    ours: object_id(),
                })
            }
        }
        let objdir = dir.join(format!("obj-{}", object_id()));
        let mut maps = std::collections::HashMap::new();
        let mut entries = |name: &'static str| -> Result<u32, BpfError> {
            let p = objdir.join(name);
            let data = MapData::from_pin(&p).map_err(|e| pin_err(&p, e))?;
            let n = data
                .info()
                .map_err(|source| BpfError::Map { name, source })?
                .max_entries();
            maps.insert(
                name,
                Map::from_map_data(data).map_err(|source| BpfError::Map { name, source })?,
            );
            Ok(n)
        };
        let mut sizes = std::collections::HashMap::new();
        for name in OBSERVER_MAPS {
            sizes.insert(name, entries(name)?);
        }
        let counters_len = sizes[names::MAP_COUNTERS];
        let groups = counters_len / counters::COUNT;
        if groups == 0
            || !counters_len.is_multiple_of(counters::COUNT)
            || sizes[names::MAP_CALLS] != groups * argspec::TABLE_LEN
        {
            return Err(pin_err(
                &objdir,
                "the pinned maps' sizes do not match each other: not auditor's layout",
            ));
        }
        let mut links = Vec::new();
        for &(name, _) in &names::OBSERVER_PROGRAMS {
            let p = objdir.join(format!("link_{name}"));
            let link = PinnedLink::from_pin(&p).map_err(|e| pin_err(&p, e))?;
            links.push(FdLink::from(link));
        }
        Ok(Observer {
            maps,
            _links: links,
            pid_max: sizes[names::MAP_TASKS],
            groups,
            pinned: Some(dir.to_owned()),
        })
    }

    /// Where this observer is pinned.
    pub fn pinned(&self) -> Option<&Path> {
        self.pinned.as_deref()
    }

    /// Remove the pins: the programs detach when this observer is dropped.
    pub fn unpin(&mut self) -> Result<(), BpfError> {
        if let Some(dir) = self.pinned.take() {
            remove(&dir)?;
        }
        Ok(())
    }
}
