//! Mount options per file-system type: what each documents for ordinary use, checked before
//! any option reaches the kernel; options that name another device are always refused.

use std::ffi::CString;

/// Mount options that make the file system open another device (multi-device file systems,
/// external journals and logs): always refused. The kernel would resolve the path the option
/// names in the helper's context and open a host block device.
const DEVICE_OPTIONS: &[&str] = &["journal_dev", "journal_path", "logdev", "rtdev", "device"];

/// Options the kernel itself parses out of any file system's data (`vfs_parse_sb_flag`); the
/// per-mount ones (noatime, nosuid, …) are mount flags, never data.
const GENERIC_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
];

/// The options auditor passes on, per file-system type: those the file system's documentation
/// (Documentation/filesystems/*.rst, `man 5 ext4`, `man 5 xfs`) gives for ordinary use. Left
/// out: options that name a file or device (`journal_path`, `usrjquota=`, `logdev=`), debugging
/// and fault injection (`debug`, `abort`, `fault_injection=`, `test_dummy_encryption`), DAX,
/// and `errors=panic` (which lets a crafted image panic the host). `key=` takes a value.
const FS_OPTIONS: &[(&[&str], &[&str])] = &[
    (
        &["ext2", "ext3", "ext4"],
        &[
            "acl",
            "noacl",
            "user_xattr",
            "nouser_xattr",
            "barrier",
            "nobarrier",
            "barrier=",
            "commit=",
            "data=",
            "data_err=",
            "errors=",
            "discard",
            "nodiscard",
            "delalloc",
            "nodelalloc",
            "auto_da_alloc",
            "noauto_da_alloc",
            "auto_da_alloc=",
            "block_validity",
            "noblock_validity",
            "dioread_lock",
            "dioread_nolock",
            "init_itable",
            "init_itable=",
            "noinit_itable",
            "journal_checksum",
            "nojournal_checksum",
            "journal_async_commit",
            "journal_ioprio=",
            "noload",
            "norecovery",
            "inode_readahead_blks=",
            "stripe=",
            "max_batch_time=",
            "min_batch_time=",
            "nombcache",
            "no_mbcache",
            "grpid",
            "bsdgroups",
            "nogrpid",
            "sysvgroups",
            "resgid=",
            "resuid=",
            "sb=",
            "i_version",
            "nouid32",
            "quota",
            "noquota",
            "usrquota",
            "grpquota",
            "prjquota",
            "prefetch_block_bitmaps",
            "mb_optimize_scan=",
            "bh",
            "nobh",
            "oldalloc",
            "orlov",
        ],
    ),
    (
        &["xfs"],
        &[
            "allocsize=",
            "attr2",
            "noattr2",
            "discard",
            "nodiscard",
            "grpid",
            "bsdgroups",
            "nogrpid",
            "sysvgroups",
            "filestreams",
            "ikeep",
            "noikeep",
            "inode32",
            "inode64",
            "largeio",
            "nolargeio",
            "noalign",
            "norecovery",
            "nouuid",
            "noquota",
            "uquota",
            "usrquota",
            "uqnoenforce",
            "quota",
            "gquota",
            "grpquota",
            "gqnoenforce",
            "pquota",
            "prjquota",
            "pqnoenforce",
            "qnoenforce",
            "sunit=",
            "swidth=",
            "swalloc",
            "wsync",
            "logbufs=",
            "logbsize=",
        ],
    ),
    (
        &["btrfs"],
        &[
            "subvol=",
            "subvolid=",
            "compress",
            "compress=",
            "compress-force",
            "compress-force=",
            "ssd",
            "nossd",
            "ssd_spread",
            "nossd_spread",
            "space_cache",
            "space_cache=",
            "nospace_cache",
            "autodefrag",
            "noautodefrag",
            "commit=",
            "discard",
            "discard=",
            "nodiscard",
            "datacow",
            "nodatacow",
            "datasum",
            "nodatasum",
            "flushoncommit",
            "noflushoncommit",
            "barrier",
            "nobarrier",
            "max_inline=",
            "thread_pool=",
            "skip_balance",
            "user_subvol_rm_allowed",
            "acl",
            "noacl",
        ],
    ),
    (
        &["f2fs"],
        &[
            "background_gc=",
            "disable_roll_forward",
            "norecovery",
            "discard",
            "nodiscard",
            "heap",
            "noheap",
            "user_xattr",
            "nouser_xattr",
            "acl",
            "noacl",
            "active_logs=",
            "disable_ext_identify",
            "inline_xattr",
            "noinline_xattr",
            "inline_xattr_size=",
            "inline_data",
            "noinline_data",
            "inline_dentry",
            "noinline_dentry",
            "flush_merge",
            "noflush_merge",
            "barrier",
            "nobarrier",
            "fastboot",
            "extent_cache",
            "noextent_cache",
            "data_flush",
            "mode=",
            "io_bits=",
            "usrquota",
            "grpquota",
            "prjquota",
            "quota",
            "noquota",
            "alloc_mode=",
            "fsync_mode=",
            "compress_algorithm=",
            "compress_log_size=",
            "compress_extension=",
            "nocompress_extension=",
            "compress_chksum",
            "compress_mode=",
            "compress_cache",
            "checkpoint=",
            "checkpoint_merge",
            "nocheckpoint_merge",
            "gc_merge",
            "nogc_merge",
            "discard_unit=",
            "memory=",
            "age_extent_cache",
            "errors=",
        ],
    ),
    (
        &["vfat", "msdos", "fat"],
        &[
            "uid=",
            "gid=",
            "umask=",
            "dmask=",
            "fmask=",
            "allow_utime=",
            "codepage=",
            "iocharset=",
            "shortname=",
            "utf8",
            "utf8=",
            "uni_xlate",
            "nonumtail",
            "tz=",
            "time_offset=",
            "quiet",
            "showexec",
            "usefree",
            "flush",
            "sys_immutable",
            "errors=",
            "discard",
            "dos1xfloppy",
            "check=",
            "rodir",
        ],
    ),
    (
        &["exfat"],
        &[
            "uid=",
            "gid=",
            "umask=",
            "dmask=",
            "fmask=",
            "allow_utime=",
            "iocharset=",
            "errors=",
            "discard",
            "keep_last_dots",
            "sys_tz",
            "time_offset=",
        ],
    ),
];

/// Values an option may take when the file system documents a closed set worth restricting.
fn value_allowed(key: &str, value: &str) -> bool {
    match key {
        // errors=panic would let a crafted image panic the host.
        "errors" => matches!(value, "continue" | "remount-ro"),
        "data" => matches!(value, "ordered" | "journal" | "writeback"),
        "data_err" => matches!(value, "ignore" | "abort"),
        // A path inside the file system itself.
        "subvol" => !value.split('/').any(|c| c == ".."),
        // Anything else that looks like a path names something outside the file system.
        _ => !value.contains('/'),
    }
}

/// Check mount data against what `fstype` allows; the offending option (with why) otherwise.
/// Runs before any option reaches the kernel: btrfs acts on `device=` while it parses options.
pub(super) fn check_options(fstype: &str, data: &[u8]) -> Result<(), String> {
    let specific = FS_OPTIONS
        .iter()
        .find(|(types, _)| types.contains(&fstype))
        .map_or(&[][..], |(_, opts)| *opts);
    for opt in data.split(|&b| b == b',').filter(|o| !o.is_empty()) {
        let opt = std::str::from_utf8(opt).map_err(|_| "an option that is not UTF-8".to_owned())?;
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        if DEVICE_OPTIONS.contains(&key) {
            return Err(format!("option `{key}` names another device"));
        }
        let known = match value {
            None => GENERIC_OPTIONS.contains(&key) || specific.contains(&key),
            Some(_) => specific.iter().any(|o| o.strip_suffix('=') == Some(key)),
        };
        if !known {
            return Err(format!(
                "option `{key}` is not among those allowed for {fstype}"
            ));
        }
        if let Some(v) = value {
            if !value_allowed(key, v) {
                return Err(format!("option `{key}={v}` is not allowed"));
            }
        }
    }
    Ok(())
}

/// Mount data (`a,b=c`) as parameters: a key alone is a flag, `key=value` a string.
pub(super) fn split_options(data: &[u8]) -> Vec<(CString, Option<CString>)> {
    data.split(|&b| b == b',')
        .filter(|o| !o.is_empty())
        .filter_map(|o| match o.iter().position(|&b| b == b'=') {
            Some(i) => Some((
                CString::new(&o[..i]).ok()?,
                Some(CString::new(&o[i + 1..]).ok()?),
            )),
            None => Some((CString::new(o).ok()?, None)),
        })
        .collect()
}
