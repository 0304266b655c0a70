//! Reading a run of a per-CPU array's entries with one `bpf(BPF_MAP_LOOKUP_BATCH)` (Linux 5.6)
//! instead of one lookup syscall per entry: the per-syscall statistics are thousands of
//! entries per group (every ABI's every number), read whenever a progress line or a live view
//! counts the distinct syscalls (4 times a second). aya has no batch operations, so this is the
//! one raw `bpf(2)` call of the module.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::MapData;

/// `BPF_MAP_LOOKUP_BATCH` (`enum bpf_cmd` in `linux/bpf.h`).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The kernel's own "not supported" (`include/linux/errno.h`), which `bpf(2)` returns for a
/// map type without the operation.
const ENOTSUPP: i32 = 524;

/// The `batch` member of `union bpf_attr`: what every `BPF_MAP_*_BATCH` command takes.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The values of entries `first..first + len` of the per-CPU array `map` whose values are
/// `value_size` bytes, `cpus` (possible CPUs) values per entry: entry `i`'s CPU `c` value
/// starts at `((i - first) * cpus + c) * stride` with `stride` the value size rounded up to 8
/// bytes, as the kernel lays them out. `Err` of kind `Unsupported` when the kernel has no batch
/// lookup for this map (before 5.6) or read fewer entries than asked (the run passes the
/// array's end): the caller then looks entries up one by one.
pub(super) fn percpu_array_values(
    map: &MapData,
    first: u32,
    len: u32,
    value_size: usize,
    cpus: usize,
) -> io::Result<(Vec<u8>, usize)> {
    let stride = value_size.div_ceil(8) * 8;
    let n = len as usize;
    let mut keys = vec![0u32; n];
    let mut values = vec![0u8; n * cpus * stride];
    // The batch starts after `in_batch`'s key (none: at the array's start).
    let before = first.checked_sub(1);
    let mut before_key = before.unwrap_or(0);
    let mut out_key = 0u32;
    let mut attr = BatchAttr {
        in_batch: before.map_or(0, |_| std::ptr::from_mut(&mut before_key) as u64),
        out_batch: std::ptr::from_mut(&mut out_key) as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count: len,
        map_fd: u32::try_from(map.fd().as_fd().as_raw_fd())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        ..BatchAttr::default()
    };
    // SAFETY: `attr` is a `bpf_attr` batch member of the size passed; the kernel writes at
    // most `count` keys (4 bytes each, the array's key size) into `keys`, `count` values of
    // `cpus * stride` bytes into `values` (both sized for `len` = `count` entries), one key into
    // `out_key`, and reads one key from `before_key`; all outlive the call, and `count` is
    // written back into `attr`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_BATCH,
            std::ptr::from_mut(&mut attr),
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // The array ended first (`count` says how many entries were read): short, below.
            Some(libc::ENOENT) => {}
            Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, e));
            }
            _ => return Err(e),
        }
    }
    let got = attr.count as usize;
    if got != n {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("a batch lookup read {got} of {n} entries"),
        ));
    }
    // An array's batch runs through consecutive keys; anything else is not what was asked.
    if keys.iter().zip(first..).any(|(&k, want)| k != want) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a batch lookup returned keys out of order",
        ));
    }
    Ok((values, stride))
}
