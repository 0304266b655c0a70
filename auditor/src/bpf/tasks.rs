//! Arrays of u64 read through a shared read-only mapping of the map (`BPF_F_MMAPABLE`): a
//! snapshot scans every possible thread id of TASKS without a syscall per entry, and the broker
//! reads an exec generation (EXEC_GEN) without any syscall.

use std::os::fd::{AsFd as _, AsRawFd as _};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use aya::maps::Map;

use super::BpfError;

/// A read-only mapping of an array of u64 (TASKS, EXEC_GEN); unmapped on drop.
pub(super) struct ArrayView {
    ptr: NonNull<AtomicU64>,
    entries: usize,
    len: usize,
}

// SAFETY: the view is a read-only mapping that only atomics read; it may be shared and sent
// between threads like an `&[AtomicU64]`.
unsafe impl Send for ArrayView {}
// SAFETY: as above.
unsafe impl Sync for ArrayView {}

impl ArrayView {
    /// Map the loaded array `name` (`map`), whose values must be u64.
    pub(super) fn of(map: &Map, name: &'static str) -> Result<ArrayView, BpfError> {
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
        Ok(ArrayView { ptr, entries, len })
    }

    /// Every slot, by thread id. The programs update slots as threads run: each is read
    /// atomically, the whole is not one instant (as with one lookup per entry).
    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots().iter().map(|s| s.load(Ordering::Relaxed))
    }

    /// Value `i`, if the array has it.
    pub(super) fn get(&self, i: usize) -> Option<u64> {
        self.slots().get(i).map(|s| s.load(Ordering::Acquire))
    }

    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `entries` 8-byte, 8-aligned (page-aligned start) values for
        // as long as `self` lives; the kernel writes them concurrently, hence atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.entries) }
    }
}

impl Drop for ArrayView {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `of` made; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
