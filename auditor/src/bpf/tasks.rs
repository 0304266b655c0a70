//! The per-thread TASKS array, read through a shared read-only mapping of the map
//! (`BPF_F_MMAPABLE`): a snapshot scans every possible thread id without a syscall per entry.

use std::os::fd::{AsFd as _, AsRawFd as _};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use auditor_common::names;
use aya::maps::Map;

use super::BpfError;

/// A read-only mapping of TASKS; unmapped on drop.
pub(super) struct TasksView {
    ptr: NonNull<AtomicU64>,
    entries: usize,
    len: usize,
}

impl TasksView {
    /// Map the loaded TASKS array.
    pub(super) fn of(map: &Map) -> Result<TasksView, BpfError> {
        let name = names::MAP_TASKS;
        let data = match map {
            Map::Array(data) => data,
            _ => return Err(BpfError::MissingMap(name)),
        };
        let info = data
            .info()
            .map_err(|source| BpfError::Map { name, source })?;
        let entries = info.max_entries() as usize;
        if info.value_size() as usize != std::mem::size_of::<u64>() {
            return Err(BpfError::Mmap {
                name,
                source: std::io::Error::other(format!("value size {} is not 8", info.value_size())),
            });
        }
        // SAFETY: sysconf has no memory preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = (entries * 8).div_ceil(page) * page;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh read-only shared mapping of the map's fd at offset 0, of at most the
        // size the kernel made mmapable (the value area rounded up to pages); nothing else is
        // mapped or aliased by it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(BpfError::Mmap {
                name,
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU64>()).ok_or(BpfError::Mmap {
            name,
            source: std::io::Error::other("mmap returned NULL"),
        })?;
        Ok(TasksView { ptr, entries, len })
    }

    /// Every slot, by thread id. The programs update slots as threads run: each is read
    /// atomically, the whole is not one instant (as with one lookup per entry).
    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        // SAFETY: the mapping holds `entries` 8-byte, 8-aligned (page-aligned start) values for
        // as long as `self` lives; the kernel writes them concurrently, hence atomics.
        let slots = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.entries) };
        slots.iter().map(|s| s.load(Ordering::Relaxed))
    }
}

impl Drop for TasksView {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `of` made; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
