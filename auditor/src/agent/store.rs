//! systemd's file-descriptor store: a crashed agent restarted by systemd gets its listeners
//! back.
//!
//! Under systemd (`NOTIFY_SOCKET` set, `FileDescriptorStoreMax=` in the unit), the agent
//! stores every listener it serves (`FDSTORE=1`, `FDNAME=auditor-l<slot>`) and removes it when
//! its container ends (`FDSTOREREMOVE=1`). Two memfds go into the store beside them:
//! `auditor-state`, the JSON of every stored listener's container and policy (written in
//! alternate halves, a header naming the current one, so a crash mid-write leaves the last
//! whole document), and `auditor-ids`, one 64-bit slot per listener where the broker stores the
//! id of every notification it receives — a plain store into shared memory, nothing on the
//! hot path. A restarted agent finds them in `LISTEN_FDS`/`LISTEN_FDNAMES`, answers ENOSYS to
//! the notifications the dead agent received and never answered (ids are sequential per
//! filter: `SECCOMP_IOCTL_NOTIF_ID_VALID` around the last one received says which are still
//! waiting; a call the kernel queued but nobody received is not valid and is served as usual),
//! and serves the listeners again. Without the store a crash still fails closed (ENOSYS).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::oci::handover::Handed;
use crate::seccomp::notify::{NotifyFd, Response};

/// Names of the store's own memfds and the prefix of listeners' names.
pub const IDS_NAME: &str = "auditor-ids";
pub const STATE_NAME: &str = "auditor-state";
pub const LISTENER_PREFIX: &str = "auditor-l";
/// Listeners one agent stores at most (more are served, unstored).
pub const SLOTS: usize = 4096;
/// Each half of the state memfd (sparse: only what is written takes memory).
const HALF: u64 = 8 << 20;
/// Ids probed below the last one received (an emulation may have waited while thousands of
/// later calls were answered) and above it (received, not yet checkpointed).
const BELOW: u64 = 1 << 16;
const ABOVE: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the fd store's memfd: {0}")]
    Memfd(#[source] nix::Error),
    #[error("cannot map the notification ids: {0}")]
    Map(#[source] nix::Error),
    #[error("cannot write the fd store's state: {0}")]
    Write(#[source] nix::Error),
    #[error("cannot tell the service manager: {0}")]
    Notify(#[source] std::io::Error),
}

/// The shared mapping of `auditor-ids`.
struct IdMap {
    ptr: std::ptr::NonNull<AtomicU64>,
}

// SAFETY: the mapping is only accessed through atomics and lives as long as the IdMap.
unsafe impl Send for IdMap {}
// SAFETY: as above.
unsafe impl Sync for IdMap {}

impl IdMap {
    fn map(fd: BorrowedFd<'_>) -> Result<IdMap, StoreError> {
        let len = std::num::NonZeroUsize::new(SLOTS * 8).expect("non-zero");
        // SAFETY: a fresh shared mapping of a memfd of at least `len` bytes; nothing else in
        // this process maps it; it is unmapped on drop.
        let ptr = unsafe {
            nix::sys::mman::mmap(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }
        .map_err(StoreError::Map)?;
        Ok(IdMap { ptr: ptr.cast() })
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < SLOTS);
        // SAFETY: `i` is within the mapping of SLOTS u64s, which is 8-aligned (page-aligned).
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

impl Drop for IdMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer referenced (the IdMap is last).
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), SLOTS * 8) };
    }
}

/// Where one listener's broker checkpoints the ids it receives.
#[derive(Clone)]
pub struct IdSlot {
    map: Arc<IdMap>,
    index: usize,
}

impl IdSlot {
    /// Record notification `id` as received.
    #[inline]
    pub fn store(&self, id: u64) {
        self.map.slot(self.index).store(id, Ordering::Release);
    }
}

impl std::fmt::Debug for IdSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdSlot({})", self.index)
    }
}

/// The state document: every stored listener by slot.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    listeners: BTreeMap<u32, Handed>,
}

/// A listener a restarted agent found in the store.
pub struct Recovered {
    pub slot: u32,
    pub handed: Handed,
    pub fd: OwnedFd,
    /// Notifications the dead agent had received and not answered: answered ENOSYS here.
    pub stale: usize,
}

/// The agent's side of the fd store.
pub struct Store {
    ids: Arc<IdMap>,
    ids_fd: OwnedFd,
    state_fd: OwnedFd,
    inner: Mutex<(u64, State)>,
    recovered: Mutex<Vec<Recovered>>,
}

fn notify(state: &[sd_notify::NotifyState<'_>], fds: &[BorrowedFd<'_>]) -> Result<(), StoreError> {
    sd_notify::notify_with_fds(false, state, fds).map_err(StoreError::Notify)
}

/// Store `fd` under `name` (`FDSTORE=1`).
fn store_fd(name: &str, fd: BorrowedFd<'_>) -> Result<(), StoreError> {
    notify(
        &[
            sd_notify::NotifyState::FdStore,
            sd_notify::NotifyState::FdName(name),
        ],
        &[fd],
    )
}

/// Drop every fd stored under `name` (`FDSTOREREMOVE=1`).
fn unstore(name: &str) -> Result<(), StoreError> {
    notify(
        &[
            sd_notify::NotifyState::FdStoreRemove,
            sd_notify::NotifyState::FdName(name),
        ],
        &[],
    )
}

/// The name a listener in `slot` is stored under.
pub fn listener_name(slot: u32) -> String {
    format!("{LISTENER_PREFIX}{slot}")
}

fn memfd(name: &str, size: u64) -> Result<OwnedFd, StoreError> {
    let name = std::ffi::CString::new(name).expect("no NUL");
    let fd = nix::sys::memfd::memfd_create(&name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(StoreError::Memfd)?;
    nix::unistd::ftruncate(&fd, size as i64).map_err(StoreError::Memfd)?;
    Ok(fd)
}

/// The last whole state document of `fd`.
fn read_state(fd: BorrowedFd<'_>) -> Option<State> {
    let mut head = [0u8; 8];
    nix::sys::uio::pread(fd, &mut head, 0).ok()?;
    let half = u64::from_le_bytes(head) & 1;
    let base = 8 + half * HALF;
    let mut len = [0u8; 8];
    nix::sys::uio::pread(fd, &mut len, base as i64).ok()?;
    let len = u64::from_le_bytes(len);
    if len > HALF - 8 {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    let n = nix::sys::uio::pread(fd, &mut buf, (base + 8) as i64).ok()?;
    serde_json::from_slice(&buf[..n]).ok()
}

/// Answer ENOSYS to every notification of `fd` received and not answered around id `last`.
pub fn answer_stale(fd: &NotifyFd, last: u64) -> usize {
    let mut answered = 0;
    let mut id = last.wrapping_sub(BELOW);
    for _ in 0..=(BELOW + ABOVE) {
        if fd.id_valid(id) && fd.send(id, Response::Errno(libc::ENOSYS)).is_ok() {
            answered += 1;
        }
        id = id.wrapping_add(1);
    }
    answered
}

impl Store {
    /// The store of an agent under systemd (`NOTIFY_SOCKET` set), with what the service
    /// manager passed back (`stored`: the named fds of `LISTEN_FDS`): the listeners of an
    /// agent before it, their stale notifications answered. `None` without a service manager.
    pub fn open(stored: Vec<(String, OwnedFd)>) -> Result<Option<Store>, StoreError> {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            if !stored.is_empty() {
                tracing::warn!(
                    count = stored.len(),
                    "fds passed back without NOTIFY_SOCKET: not served (their calls fail with ENOSYS)"
                );
            }
            return Ok(None);
        }
        let mut ids_fd = None;
        let mut state_fd = None;
        let mut listeners = BTreeMap::new();
        for (name, fd) in stored {
            if name == IDS_NAME {
                ids_fd = Some(fd);
            } else if name == STATE_NAME {
                state_fd = Some(fd);
            } else if let Some(slot) = name
                .strip_prefix(LISTENER_PREFIX)
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|s| (*s as usize) < SLOTS)
            {
                listeners.insert(slot, fd);
            } else {
                tracing::warn!(name = %name, "a stored fd of another name; closed");
            }
        }
        let previous = match (&ids_fd, &state_fd) {
            (Some(i), Some(s)) => Some((IdMap::map(i.as_fd())?, read_state(s.as_fd()))),
            _ => None,
        };
        let mut recovered = Vec::new();
        let mut state = State {
            version: 1,
            ..State::default()
        };
        if let Some((ids, doc)) = &previous {
            let doc = doc.as_ref();
            for (slot, fd) in listeners {
                let Some(h) = doc.and_then(|d| d.listeners.get(&slot)) else {
                    tracing::error!(slot, "a stored listener without its container in the store's state: closed (its calls fail with ENOSYS)");
                    let _ = unstore(&listener_name(slot));
                    continue;
                };
                if crate::seccomp::notify::check_listener(fd.as_fd()).is_err() {
                    tracing::error!(slot, container = %h.id, "a stored fd is not a seccomp listener; closed");
                    continue;
                }
                let nfd = NotifyFd::new(fd);
                let last = ids.slot(slot as usize).load(Ordering::Acquire);
                let stale = answer_stale(&nfd, last);
                state.listeners.insert(slot, h.clone());
                recovered.push(Recovered {
                    slot,
                    handed: h.clone(),
                    fd: nfd.into_owned(),
                    stale,
                });
            }
        } else if !listeners.is_empty() {
            tracing::error!(
                count = listeners.len(),
                "stored listeners without the store's state: closed (their calls fail with ENOSYS)"
            );
        }
        // Fresh memfds for this agent (a successor's replace its predecessor's).
        let ids_new = memfd(IDS_NAME, (SLOTS * 8) as u64)?;
        let state_new = memfd(STATE_NAME, 8 + 2 * HALF)?;
        let ids = Arc::new(IdMap::map(ids_new.as_fd())?);
        if let Some((old, _)) = &previous {
            for r in &recovered {
                let i = r.slot as usize;
                ids.slot(i)
                    .store(old.slot(i).load(Ordering::Acquire), Ordering::Release);
            }
        }
        let store = Store {
            ids,
            ids_fd: ids_new,
            state_fd: state_new,
            inner: Mutex::new((0, state)),
            recovered: Mutex::new(recovered),
        };
        store.write()?;
        for name in [IDS_NAME, STATE_NAME] {
            unstore(name)?;
        }
        store_fd(IDS_NAME, store.ids_fd.as_fd())?;
        store_fd(STATE_NAME, store.state_fd.as_fd())?;
        Ok(Some(store))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, State)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write the state document into the half not in use, then name it current.
    fn write(&self) -> Result<(), StoreError> {
        let mut g = self.lock();
        let doc = serde_json::to_vec(&g.1).unwrap_or_default();
        if doc.len() as u64 > HALF - 8 {
            tracing::warn!("fd store state too large; not updated");
            return Ok(());
        }
        let next = g.0.wrapping_add(1);
        let base = 8 + (next & 1) * HALF;
        let fd = self.state_fd.as_fd();
        nix::sys::uio::pwrite(fd, &(doc.len() as u64).to_le_bytes(), base as i64)
            .map_err(StoreError::Write)?;
        nix::sys::uio::pwrite(fd, &doc, (base + 8) as i64).map_err(StoreError::Write)?;
        nix::sys::uio::pwrite(fd, &next.to_le_bytes(), 0).map_err(StoreError::Write)?;
        g.0 = next;
        Ok(())
    }

    /// The listeners a restarted agent found (once).
    pub fn take_recovered(&self) -> Vec<Recovered> {
        std::mem::take(
            &mut *self
                .recovered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Store listener `fd` of `h`: in `slot` when it has one (recovered, or handed over by an
    /// agent that stored it: already in the store), else in a free one. The slot, and where
    /// its broker checkpoints; `None` when every slot is taken or the manager refused.
    pub fn add(&self, fd: BorrowedFd<'_>, h: &Handed, slot: Option<u32>) -> Option<(u32, IdSlot)> {
        let (slot, new) = {
            let mut g = self.lock();
            let (slot, new) = match slot {
                Some(s) if (s as usize) < SLOTS => (s, false),
                _ => {
                    let free = (0..SLOTS as u32).find(|s| !g.1.listeners.contains_key(s))?;
                    (free, true)
                }
            };
            g.1.listeners.insert(slot, h.clone());
            (slot, new)
        };
        if new {
            self.ids.slot(slot as usize).store(0, Ordering::Release);
            let name = listener_name(slot);
            // Whatever an earlier listener of this slot left.
            let _ = unstore(&name);
            if let Err(e) = store_fd(&name, fd) {
                tracing::warn!(container = %h.id, error = %e, "cannot store the listener with the service manager");
                self.lock().1.listeners.remove(&slot);
                return None;
            }
        }
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, "fd store state not updated");
        }
        Some((
            slot,
            IdSlot {
                map: self.ids.clone(),
                index: slot as usize,
            },
        ))
    }

    /// The listener in `slot` ended: out of the store.
    pub fn remove(&self, slot: u32) {
        self.lock().1.listeners.remove(&slot);
        let _ = unstore(&listener_name(slot));
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, "fd store state not updated");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_torn_write() {
        let fd = memfd("t", 8 + 2 * HALF).unwrap();
        let ids_fd = memfd("i", (SLOTS * 8) as u64).unwrap();
        let store = Store {
            ids: Arc::new(IdMap::map(ids_fd.as_fd()).unwrap()),
            ids_fd,
            state_fd: fd,
            inner: Mutex::new((0, State::default())),
            recovered: Mutex::new(Vec::new()),
        };
        let h = Handed {
            id: "c".into(),
            pid: 1,
            requested: None,
            source: "default".into(),
            policy: "default".into(),
            digest: "d".into(),
            counts: [0; 6],
            slot: Some(3),
            runtime: None,
            who: None,
        };
        store.lock().1.listeners.insert(3, h.clone());
        store.write().unwrap();
        assert_eq!(read_state(store.state_fd.as_fd()).unwrap().listeners[&3], h);
        // A write torn before its header flips: the previous document still reads.
        let g = store.lock().0;
        let base = 8 + ((g + 1) & 1) * HALF;
        nix::sys::uio::pwrite(store.state_fd.as_fd(), b"\xff\xff\xff\xff", base as i64).unwrap();
        assert_eq!(read_state(store.state_fd.as_fd()).unwrap().listeners[&3], h);
        // The slots are shared memory.
        let slot = IdSlot {
            map: store.ids.clone(),
            index: 7,
        };
        slot.store(99);
        let other = IdMap::map(store.ids_fd.as_fd()).unwrap();
        assert_eq!(other.slot(7).load(Ordering::Acquire), 99);
    }
}
