//! The records of LXC's seccomp notify proxy protocol (see the parent module's docs), parsed
//! and built without I/O: what arrives on the socket is checked here, byte by byte, before
//! anything acts on it.

use crate::seccomp::notify::{
    Response, SeccompData, SeccompNotif, SeccompNotifResp, SeccompNotifSizes,
};

/// `struct seccomp_notify_proxy_msg`: u64 reserved, pid_t monitor, pid_t init, three u16
/// sizes, 2 bytes of padding, u64 cookie length.
pub const HEADER_LEN: usize = 32;
const NOTIF_LEN: usize = std::mem::size_of::<SeccompNotif>();
const RESP_LEN: usize = std::mem::size_of::<SeccompNotifResp>();
/// What we accept as a cookie: a policy name is at most [`MAX_NAME_LEN`](crate::agent::policies::MAX_NAME_LEN)
/// bytes; a longer cookie is refused by name, a far longer one by length.
pub const MAX_COOKIE_LEN: usize = 4096;
/// `/proc/PID`, `/proc/PID/mem`, the notify fd.
pub const EXPECTED_FDS: usize = 3;

/// Why a record from LXC was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the record is longer than any LXC sends (over {max} bytes): truncated")]
    Truncated { max: usize },
    #[error("the record's fds did not fit (MSG_CTRUNC): more fds than LXC sends")]
    ControlTruncated,
    #[error("{got} bytes: shorter than the {HEADER_LEN}-byte header")]
    ShortHeader { got: usize },
    #[error("the header's reserved field is {0:#x}, not 0")]
    Reserved(u64),
    #[error(
        "the header gives struct sizes notif={notif} resp={resp} data={data}; this kernel's are \
         {kernel_notif}/{kernel_resp}/{kernel_data}"
    )]
    Sizes {
        notif: u16,
        resp: u16,
        data: u16,
        kernel_notif: u16,
        kernel_resp: u16,
        kernel_data: u16,
    },
    #[error("cookie length {0} is over {MAX_COOKIE_LEN} bytes")]
    CookieTooLong(u64),
    #[error("{got} bytes, but the header announces {expected}")]
    Length { got: usize, expected: usize },
    #[error("the cookie is not UTF-8")]
    CookieUtf8,
    #[error("the prefilled response is for notification {resp}, the request is {notif}")]
    IdMismatch { notif: u64, resp: u64 },
    #[error("{got} fds attached, LXC sends {EXPECTED_FDS} (/proc/PID, /proc/PID/mem, notify fd)")]
    Fds { got: usize },
    #[error("the third fd is `{0}`, not a seccomp notify fd")]
    NotNotifyFd(String),
    #[error("the connection closed")]
    Closed,
}

/// The header of a proxy record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub reserved: u64,
    pub monitor_pid: i32,
    pub init_pid: i32,
    pub sizes: SeccompNotifSizes,
    pub cookie_len: u64,
}

/// One parsed, size-checked record (without its fds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub notif: SeccompNotif,
    pub resp: SeccompNotifResp,
    /// The cookie: the policy's name (untrusted); empty for none.
    pub cookie: String,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_ne_bytes(a)
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(a)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

impl Header {
    /// Decode the first [`HEADER_LEN`] bytes of `b` (which must be that long).
    fn decode(b: &[u8]) -> Header {
        Header {
            reserved: u64_at(b, 0),
            monitor_pid: u32_at(b, 8) as i32,
            init_pid: u32_at(b, 12) as i32,
            sizes: SeccompNotifSizes {
                seccomp_notif: u16_at(b, 16),
                seccomp_notif_resp: u16_at(b, 18),
                seccomp_data: u16_at(b, 20),
            },
            cookie_len: u64_at(b, 24),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reserved.to_ne_bytes());
        out.extend_from_slice(&self.monitor_pid.to_ne_bytes());
        out.extend_from_slice(&self.init_pid.to_ne_bytes());
        out.extend_from_slice(&self.sizes.seccomp_notif.to_ne_bytes());
        out.extend_from_slice(&self.sizes.seccomp_notif_resp.to_ne_bytes());
        out.extend_from_slice(&self.sizes.seccomp_data.to_ne_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.cookie_len.to_ne_bytes());
    }
}

fn decode_notif(b: &[u8]) -> SeccompNotif {
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64_at(b, 32 + 8 * i);
    }
    SeccompNotif {
        id: u64_at(b, 0),
        pid: u32_at(b, 8),
        flags: u32_at(b, 12),
        data: SeccompData {
            nr: u32_at(b, 16) as i32,
            arch: u32_at(b, 20),
            instruction_pointer: u64_at(b, 24),
            args,
        },
    }
}

fn encode_notif(n: &SeccompNotif, out: &mut Vec<u8>) {
    out.extend_from_slice(&n.id.to_ne_bytes());
    out.extend_from_slice(&n.pid.to_ne_bytes());
    out.extend_from_slice(&n.flags.to_ne_bytes());
    out.extend_from_slice(&n.data.nr.to_ne_bytes());
    out.extend_from_slice(&n.data.arch.to_ne_bytes());
    out.extend_from_slice(&n.data.instruction_pointer.to_ne_bytes());
    for a in n.data.args {
        out.extend_from_slice(&a.to_ne_bytes());
    }
}

fn decode_resp(b: &[u8]) -> SeccompNotifResp {
    SeccompNotifResp {
        id: u64_at(b, 0),
        val: u64_at(b, 8) as i64,
        error: u32_at(b, 16) as i32,
        flags: u32_at(b, 20),
    }
}

fn encode_resp(r: &SeccompNotifResp, out: &mut Vec<u8>) {
    out.extend_from_slice(&r.id.to_ne_bytes());
    out.extend_from_slice(&r.val.to_ne_bytes());
    out.extend_from_slice(&r.error.to_ne_bytes());
    out.extend_from_slice(&r.flags.to_ne_bytes());
}

/// The buffer a record is received into: one byte more than the longest valid record, so that
/// a longer one shows as truncated even where the kernel does not say so.
pub const RECV_BUF_LEN: usize = HEADER_LEN + NOTIF_LEN + RESP_LEN + MAX_COOKIE_LEN + 1;

/// Parse and check one record. `kernel`: this kernel's struct sizes, which equal ours
/// ([`check_sizes`](crate::seccomp::notify::check_sizes)); LXC sends the kernel's, so any other value is not LXC's.
pub fn parse(b: &[u8], kernel: SeccompNotifSizes) -> Result<Message, MessageError> {
    if b.len() < HEADER_LEN {
        return Err(MessageError::ShortHeader { got: b.len() });
    }
    let header = Header::decode(b);
    if header.reserved != 0 {
        return Err(MessageError::Reserved(header.reserved));
    }
    if header.sizes != kernel
        || usize::from(header.sizes.seccomp_notif) != NOTIF_LEN
        || usize::from(header.sizes.seccomp_notif_resp) != RESP_LEN
    {
        return Err(MessageError::Sizes {
            notif: header.sizes.seccomp_notif,
            resp: header.sizes.seccomp_notif_resp,
            data: header.sizes.seccomp_data,
            kernel_notif: kernel.seccomp_notif,
            kernel_resp: kernel.seccomp_notif_resp,
            kernel_data: kernel.seccomp_data,
        });
    }
    let cookie_len = match usize::try_from(header.cookie_len) {
        Ok(n) if n <= MAX_COOKIE_LEN => n,
        _ => return Err(MessageError::CookieTooLong(header.cookie_len)),
    };
    let expected = HEADER_LEN + NOTIF_LEN + RESP_LEN + cookie_len;
    if b.len() != expected {
        return Err(MessageError::Length {
            got: b.len(),
            expected,
        });
    }
    let notif = decode_notif(&b[HEADER_LEN..HEADER_LEN + NOTIF_LEN]);
    let resp = decode_resp(&b[HEADER_LEN + NOTIF_LEN..HEADER_LEN + NOTIF_LEN + RESP_LEN]);
    if resp.id != notif.id {
        return Err(MessageError::IdMismatch {
            notif: notif.id,
            resp: resp.id,
        });
    }
    let cookie = std::str::from_utf8(&b[HEADER_LEN + NOTIF_LEN + RESP_LEN..])
        .map_err(|_| MessageError::CookieUtf8)?
        .to_owned();
    Ok(Message {
        header,
        notif,
        resp,
        cookie,
    })
}

/// The reply record: the header and request echoed, the response filled in; exactly the
/// length LXC reads.
pub fn reply(m: &Message, r: Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + NOTIF_LEN + RESP_LEN);
    m.header.encode(&mut out);
    encode_notif(&m.notif, &mut out);
    encode_resp(&r.to_raw(m.notif.id), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::notify::SECCOMP_USER_NOTIF_FLAG_CONTINUE;

    const KERNEL: SeccompNotifSizes = SeccompNotifSizes {
        seccomp_notif: 80,
        seccomp_notif_resp: 24,
        seccomp_data: 64,
    };

    fn notif() -> SeccompNotif {
        SeccompNotif {
            id: 0x1122_3344_5566_7788,
            pid: 4242,
            flags: 0,
            data: SeccompData {
                nr: 133,
                arch: crate::syscalls::AUDIT_ARCH_X86_64,
                instruction_pointer: 0x7fff_0000_1234,
                args: [1, 2, 0o20644, 0x103, 5, 6],
            },
        }
    }

    /// A record as LXC 5.0.2 builds it.
    fn record(header: Header, n: &SeccompNotif, resp_id: u64, cookie: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        header.encode(&mut b);
        encode_notif(n, &mut b);
        encode_resp(
            &SeccompNotifResp {
                id: resp_id,
                ..Default::default()
            },
            &mut b,
        );
        b.extend_from_slice(cookie);
        b
    }

    fn header(cookie_len: u64) -> Header {
        Header {
            reserved: 0,
            monitor_pid: 100,
            init_pid: 101,
            sizes: KERNEL,
            cookie_len,
        }
    }

    #[test]
    fn header_layout_is_lxcs() {
        let mut b = Vec::new();
        header(7).encode(&mut b);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(&b[8..12], &100i32.to_ne_bytes());
        assert_eq!(&b[16..18], &80u16.to_ne_bytes());
        assert_eq!(&b[24..32], &7u64.to_ne_bytes());
        assert_eq!(Header::decode(&b), header(7));
    }

    #[test]
    fn parses_a_record_with_and_without_cookie() {
        let n = notif();
        let m = parse(&record(header(6), &n, n.id, b"mknod1"), KERNEL).expect("valid");
        assert_eq!(m.notif, n);
        assert_eq!(m.resp.id, n.id);
        assert_eq!(m.cookie, "mknod1");
        assert_eq!((m.header.monitor_pid, m.header.init_pid), (100, 101));
        let m = parse(&record(header(0), &n, n.id, b""), KERNEL).expect("valid");
        assert_eq!(m.cookie, "");
    }

    #[test]
    fn reply_is_exactly_what_lxc_reads() {
        let n = notif();
        let m = parse(&record(header(6), &n, n.id, b"mknod1"), KERNEL).expect("valid");
        for (r, val, error, flags) in [
            (Response::Value(0), 0, 0, 0),
            (Response::Value(17), 17, 0, 0),
            (Response::Errno(libc::EPERM), 0, -libc::EPERM, 0),
            (Response::Continue, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE),
        ] {
            let b = reply(&m, r);
            assert_eq!(b.len(), HEADER_LEN + 80 + 24, "no cookie in the reply");
            assert_eq!(Header::decode(&b), m.header);
            assert_eq!(decode_notif(&b[HEADER_LEN..]), n);
            let resp = decode_resp(&b[HEADER_LEN + 80..]);
            assert_eq!(
                resp,
                SeccompNotifResp {
                    id: n.id,
                    val,
                    error,
                    flags
                }
            );
        }
    }

    #[test]
    fn hostile_sizes_and_lengths_are_rejected() {
        let n = notif();
        let good = record(header(3), &n, n.id, b"abc");
        // Every truncation of a valid record.
        for cut in 0..good.len() {
            let e = parse(&good[..cut], KERNEL).expect_err("truncated");
            assert!(
                matches!(
                    e,
                    MessageError::ShortHeader { .. } | MessageError::Length { .. }
                ),
                "{cut}: {e:?}"
            );
        }
        // Trailing bytes beyond the announced cookie.
        let mut long = good.clone();
        long.push(b'x');
        assert_eq!(
            parse(&long, KERNEL),
            Err(MessageError::Length {
                got: good.len() + 1,
                expected: good.len()
            })
        );
        // Cookie lengths that overflow or exceed the limit.
        for len in [
            u64::MAX,
            u64::MAX - 100,
            (MAX_COOKIE_LEN + 1) as u64,
            1 << 40,
        ] {
            let b = record(header(len), &n, n.id, b"abc");
            assert_eq!(parse(&b, KERNEL), Err(MessageError::CookieTooLong(len)));
        }
        // Sizes other than the kernel's, bigger or smaller.
        for (a, r, d) in [
            (0, 24, 64),
            (0xffff, 24, 64),
            (80, 0xffff, 64),
            (80, 24, 0),
            (88, 24, 64),
            (80, 16, 64),
        ] {
            let mut h = header(3);
            h.sizes = SeccompNotifSizes {
                seccomp_notif: a,
                seccomp_notif_resp: r,
                seccomp_data: d,
            };
            assert!(
                matches!(
                    parse(&record(h, &n, n.id, b"abc"), KERNEL),
                    Err(MessageError::Sizes { .. })
                ),
                "{a}/{r}/{d}"
            );
        }
        // A kernel whose structs differ from ours (the message agrees with it): still refused.
        let odd = SeccompNotifSizes {
            seccomp_notif: 88,
            ..KERNEL
        };
        let mut h = header(0);
        h.sizes = odd;
        assert!(matches!(
            parse(&record(h, &n, n.id, b""), odd),
            Err(MessageError::Sizes { .. })
        ));
        // Reserved field set.
        let mut h = header(3);
        h.reserved = 1;
        assert_eq!(
            parse(&record(h, &n, n.id, b"abc"), KERNEL),
            Err(MessageError::Reserved(1))
        );
        // Response prefilled for another notification.
        assert_eq!(
            parse(&record(header(3), &n, 9, b"abc"), KERNEL),
            Err(MessageError::IdMismatch {
                notif: n.id,
                resp: 9
            })
        );
        // A cookie that is not text.
        assert_eq!(
            parse(&record(header(2), &n, n.id, &[0xff, 0xfe]), KERNEL),
            Err(MessageError::CookieUtf8)
        );
        // Garbage of every small length never panics.
        let mut x: u32 = 12345;
        for len in 0..400 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&junk, KERNEL);
        }
    }
}
