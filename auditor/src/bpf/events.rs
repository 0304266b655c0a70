//! The observer's ring buffer: its records decoded into [`Event`]s, and the reader that drains it.

use auditor_common::{event, ArgsEvent, EventHeader, ExecEvent, RefusedEvent};
use aya::maps::{MapData, RingBuf};

/// An event from the ring buffer.
#[derive(Debug, Clone)]
pub enum Event {
    Exec {
        header: EventHeader,
        filename: Vec<u8>,
    },
    Args(Box<ArgsEvent>),
    /// A call a seccomp filter refused (only with `emit_refusals`).
    Refused(RefusedEvent),
    /// Bytes that did not decode (wrong size or kind): a bug, reported, never trusted.
    Malformed {
        len: usize,
        kind: u16,
    },
}

/// Decode one ring buffer record.
pub fn decode_event(bytes: &[u8]) -> Event {
    let kind = bytes
        .get(0..2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .unwrap_or(0);
    match kind {
        event::EXEC if bytes.len() == std::mem::size_of::<ExecEvent>() => {
            // SAFETY: the length matches, ExecEvent is repr(C) of integers and byte arrays
            // only (every bit pattern valid), and read_unaligned copes with any alignment.
            let e: ExecEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let n = (e.len as usize).saturating_sub(1).min(e.filename.len());
            Event::Exec {
                header: e.header,
                filename: e.filename[..n].to_vec(),
            }
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
        _ => Event::Malformed {
            len: bytes.len(),
            kind,
        },
    }
}

/// An argument tuple record, compactly, for saving what was read across a restart
/// ([`decode_args`] reads it back): its bytes up to the strings, then each string slot as the
/// length read (one byte pair) and that many bytes — a few dozen bytes instead of the slots'
/// fixed 768.
pub fn encode_args(e: &ArgsEvent) -> Vec<u8> {
    // SAFETY: ArgsEvent is repr(C), made of integers and byte arrays with explicit padding
    // fields (its size is asserted to be the sum of its fields), so all its bytes are
    // initialised; the slice lives only for this copy.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (e as *const ArgsEvent).cast::<u8>(),
            std::mem::size_of::<ArgsEvent>(),
        )
    };
    let strs = std::mem::offset_of!(ArgsEvent, strs);
    let mut out = bytes[..strs].to_vec();
    // What was read of each string (`str_len`, its NUL included); the rest of a slot is not
    // part of the record.
    for (s, &len) in e.strs.iter().zip(&e.str_len) {
        let n = (len as usize).min(s.len());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&s[..n]);
    }
    out
}

/// Read back what [`encode_args`] wrote; `None` if it does not decode.
pub fn decode_args(bytes: &[u8]) -> Option<ArgsEvent> {
    let strs = std::mem::offset_of!(ArgsEvent, strs);
    let mut full = vec![0u8; std::mem::size_of::<ArgsEvent>()];
    full.get_mut(..strs)?.copy_from_slice(bytes.get(..strs)?);
    let mut at = strs;
    let slot = auditor_common::ARG_STR_LEN;
    for i in 0..auditor_common::ARG_STR_SLOTS {
        let n = usize::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        at += 2;
        if n > slot {
            return None;
        }
        let dst = strs + i * slot;
        full[dst..dst + n].copy_from_slice(bytes.get(at..at + n)?);
        at += n;
    }
    if at != bytes.len() {
        return None;
    }
    match decode_event(&full) {
        Event::Args(a) => Some(*a),
        _ => None,
    }
}

/// Reads the observer's ring buffer. Owns its fd; register it with a reactor for readiness.
pub struct EventReader {
    pub(super) ring: RingBuf<MapData>,
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

impl EventReader {
    /// The ring buffer's fd, borrowed, to register with a reactor for readiness (the reader
    /// keeps owning it: it must outlive the registration).
    pub fn readiness_fd(&self) -> ReadinessFd {
        ReadinessFd(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

/// See [`EventReader::readiness_fd`].
pub struct ReadinessFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for ReadinessFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_records_round_trip_compactly() {
        let mut e = ArgsEvent {
            header: EventHeader {
                kind: event::ARGS,
                group: 2,
                tid: 9,
                tgid: 9,
                exe: 5,
                time_ns: 3,
            },
            hash: 0xdead_beef,
            nr: 133,
            abi: 0,
            _pad: 0,
            flags: 1,
            ret: -1,
            args: [1, 2, 3, 4, 5, 6],
            mem: 7,
            str_len: [10, 0, 4],
            _pad2: 0,
            strs: [[0; auditor_common::ARG_STR_LEN]; auditor_common::ARG_STR_SLOTS],
        };
        e.strs[0][..10].copy_from_slice(b"/dev/null\0");
        e.strs[2][..4].copy_from_slice(b"abc\0");
        let c = encode_args(&e);
        assert!(c.len() < 150, "{} bytes", c.len());
        let back = decode_args(&c).expect("decodes");
        assert_eq!(back.hash, e.hash);
        assert_eq!(back.args, e.args);
        assert_eq!(back.str_len, e.str_len);
        assert_eq!(back.strs, e.strs);
        assert!(decode_args(&c[..c.len() - 1]).is_none());
        let mut long = c.clone();
        long.push(0);
        assert!(decode_args(&long).is_none());
        assert!(decode_args(&[]).is_none());
    }

    #[test]
    fn decodes_exec_events_and_rejects_bad_sizes() {
        let mut e = ExecEvent {
            header: EventHeader {
                kind: event::EXEC,
                group: 3,
                tid: 7,
                tgid: 7,
                exe: 42,
                time_ns: 1,
            },
            len: 8,
            _pad: 0,
            filename: [0; auditor_common::EXEC_NAME_LEN],
        };
        e.filename[..7].copy_from_slice(b"/bin/sh");
        // SAFETY: ExecEvent is plain old data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&e as *const ExecEvent).cast::<u8>(),
                std::mem::size_of::<ExecEvent>(),
            )
        };
        match decode_event(bytes) {
            Event::Exec { header, filename } => {
                assert_eq!(header.tid, 7);
                assert_eq!(header.exe, 42);
                assert_eq!(header.group, 3);
                assert_eq!(filename, b"/bin/sh");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decode_event(&bytes[..10]),
            Event::Malformed { len: 10, .. }
        ));
        assert!(matches!(
            decode_event(&[]),
            Event::Malformed { len: 0, kind: 0 }
        ));
        let mut wrong = bytes.to_vec();
        wrong[0] = 99;
        assert!(matches!(
            decode_event(&wrong),
            Event::Malformed { kind: 99, .. }
        ));
    }
}
