//! Struct member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! aya's Rust eBPF programs have no CO-RE relocations, so user space resolves the few offsets
//! they need and passes them in a global. aya-obj parses BTF but keeps struct members private,
//! so this reads just what is needed: the type section's STRUCT/UNION records and their members
//! (Documentation/bpf/btf.rst; the record layout is kernel UAPI, `include/uapi/linux/btf.h`).

use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read {path}: {source} (auditor needs a kernel built with CONFIG_DEBUG_INFO_BTF)"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF: struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
}

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    type_id: u32,
    /// Bit offset.
    offset: u32,
}

#[derive(Debug, Clone)]
struct Composite {
    members: Vec<Member>,
}

/// The struct and union types of a BTF blob, by id, with their names.
pub struct Btf {
    strings: Vec<u8>,
    /// type id -> composite (struct/union) record.
    composites: HashMap<u32, Composite>,
    /// struct name -> type id (first complete struct of that name).
    structs_by_name: HashMap<String, u32>,
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, BtfError> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, BtfError> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// The running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parse a little-endian BTF blob.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if u16_at(data, 0)? != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();
        let mut btf = Btf {
            strings,
            composites: HashMap::new(),
            structs_by_name: HashMap::new(),
        };
        let mut o = 0usize;
        let mut id = 1u32;
        while o < types.len() {
            let name_off = u32_at(types, o)?;
            let info = u32_at(types, o + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            o += 12;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                _ => 0,
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let mo = o + 12 * m;
                    let raw_off = u32_at(types, mo + 8)?;
                    members.push(Member {
                        name: u32_at(types, mo)?,
                        type_id: u32_at(types, mo + 4)?,
                        offset: if kind_flag {
                            raw_off & 0x00ff_ffff
                        } else {
                            raw_off
                        },
                    });
                }
                if kind == KIND_STRUCT && name_off != 0 {
                    let name = btf.string(name_off)?.to_owned();
                    btf.structs_by_name.entry(name).or_insert(id);
                }
                btf.composites.insert(id, Composite { members });
            }
            o += extra;
            id += 1;
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> Result<&str, BtfError> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or(BtfError::Malformed("string offset out of bounds"))?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).map_err(|_| BtfError::Malformed("non-UTF-8 name"))
    }

    /// Byte offset of `member` in `struct strukt`, looking through anonymous struct/union
    /// members as C does.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        self.find(id, member, 0)?
            .map(|bits| bits / 8)
            .ok_or_else(|| BtfError::NoMember {
                strukt: strukt.into(),
                member: member.into(),
            })
    }

    fn find(&self, id: u32, member: &str, depth: u32) -> Result<Option<u32>, BtfError> {
        if depth > 8 {
            return Ok(None);
        }
        let Some(c) = self.composites.get(&id) else {
            return Ok(None);
        };
        for m in &c.members {
            if m.name != 0 {
                if self.string(m.name)? == member {
                    return Ok(Some(m.offset));
                }
            } else if let Some(inner) = self.find(m.type_id, member, depth + 1)? {
                return Ok(Some(m.offset + inner));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: struct s { int a; union { int b; long c; }; }.
    fn blob() -> Vec<u8> {
        let strings = b"\0s\0a\0b\0c\0int\0".to_vec();
        let mut t = Vec::new();
        let mut push = |v: u32| t.extend_from_slice(&v.to_le_bytes());
        // id 1: int (name "int" at 9), size 4, INT extra
        push(9);
        push(KIND_INT << 24);
        push(4);
        push(32);
        // id 2: union {b @0, c @0}, size 8
        push(0);
        push((KIND_UNION << 24) | 2);
        push(8);
        push(5);
        push(1);
        push(0);
        push(7);
        push(1);
        push(0);
        // id 3: struct s {a @0, <anon union> @64 bits}
        push(1);
        push((KIND_STRUCT << 24) | 2);
        push(16);
        push(3);
        push(1);
        push(0);
        push(0);
        push(2);
        push(64);
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.push(1);
        b.push(0);
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(t.len() as u32).to_le_bytes());
        b.extend_from_slice(&(t.len() as u32).to_le_bytes());
        b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_direct_and_anonymous_members() -> Result<(), BtfError> {
        let btf = Btf::parse(&blob())?;
        assert_eq!(btf.member_offset("s", "a")?, 0);
        assert_eq!(btf.member_offset("s", "b")?, 8);
        assert_eq!(btf.member_offset("s", "c")?, 8);
        assert!(matches!(
            btf.member_offset("s", "zz"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("t", "a"),
            Err(BtfError::NoStruct(_))
        ));
        Ok(())
    }

    #[test]
    fn truncated_blob_is_an_error_not_a_panic() {
        let b = blob();
        for n in 0..b.len() {
            let _ = Btf::parse(&b[..n]);
        }
    }

    #[test]
    fn running_kernel_has_the_offsets_auditor_needs() -> Result<(), BtfError> {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Ok(());
        }
        let btf = Btf::from_sys_fs()?;
        let pid = btf.member_offset("task_struct", "pid")?;
        let tgid = btf.member_offset("task_struct", "tgid")?;
        assert_eq!(tgid, pid + 4, "pid and tgid are adjacent in task_struct");
        btf.member_offset("linux_binprm", "filename")?;
        btf.member_offset("thread_info", "status")?;
        Ok(())
    }
}
