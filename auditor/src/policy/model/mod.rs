//! The native policy: what a seccomp filter should do, in a form a person can read and review.
//!
//! Format: TOML, `version = 1`. It is parsed strictly (unknown fields, wrong types and duplicate
//! keys are errors with line and column) and rewritten with `toml_edit`, so that the comments a
//! reviewer adds survive `auditor merge` and any later write-back. Example:
//!
//! ```toml
//! version = 1
//! default_action = "errno"
//! default_errno = "EPERM"
//! architectures = ["x86_64", "x86", "x32"]
//!
//! [[rule]]
//! names = ["read", "write", "exit_group"]
//! action = "allow"
//! comment = "observed succeeding"
//! provenance = { inputs = 2, of = 2, calls = 1234, executables = ["/bin/sh"] }
//!
//! [[rule]]
//! name = "mknodat"
//! action = "notify"
//! handler = "emulate-mknod"
//! params = { devices = ["c 1:3", "c 1:5"] }
//! args = [{ index = 2, op = "masked-equal", mask = 0o170000, value = 0o020000 }]
//! ```
//!
//! Semantics are libseccomp's: conditions within one rule must all hold (AND); several rules for
//! one syscall are alternatives (OR); a rule without conditions decides the whole syscall, so
//! other rules for that syscall are unreachable (`auditor check` says so).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use crate::syscalls::Abi;

/// The native format's version this code reads and writes.
pub const VERSION: i64 = 1;

/// A position in a source text, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column (in characters) of byte `offset` in `text`.
    pub fn at(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Location { line, column }
    }

    fn of_span(text: &str, span: Option<Range<usize>>) -> Self {
        span.map_or(Location { line: 1, column: 1 }, |s| {
            Location::at(text, s.start)
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Errors reading a native policy. Each says where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The text is not valid TOML (this includes duplicate keys).
    #[error("{location}: {message}")]
    Syntax { location: Location, message: String },
    /// Valid TOML that is not a valid policy.
    #[error("{location}: {message}{}", fix_suffix(.fix))]
    Invalid {
        location: Location,
        message: String,
        fix: String,
    },
}

impl ModelError {
    /// Where in the text the problem is.
    pub fn location(&self) -> Location {
        match self {
            ModelError::Syntax { location, .. } | ModelError::Invalid { location, .. } => *location,
        }
    }
}

pub(crate) fn fix_suffix(fix: &str) -> String {
    if fix.is_empty() {
        String::new()
    } else {
        format!(" ({fix})")
    }
}

/// An architecture a filter covers. The names are libseccomp's, without the `SCMP_ARCH_` prefix,
/// lower-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
    S390x,
    S390,
    Ppc64le,
    Ppc64,
    Ppc,
    Mips,
    Mipsel,
    Mips64,
    Mipsel64,
    Mips64n32,
    Mipsel64n32,
}

/// (arch, native name, OCI name, Go's GOARCH as Docker's `includes.arches` spells it).
const ARCHES: &[(Arch, &str, &str, &str)] = &[
    (Arch::X86_64, "x86_64", "SCMP_ARCH_X86_64", "amd64"),
    (Arch::X86, "x86", "SCMP_ARCH_X86", "x86"),
    (Arch::X32, "x32", "SCMP_ARCH_X32", "x32"),
    (Arch::Aarch64, "aarch64", "SCMP_ARCH_AARCH64", "arm64"),
    (Arch::Arm, "arm", "SCMP_ARCH_ARM", "arm"),
    (Arch::Riscv64, "riscv64", "SCMP_ARCH_RISCV64", "riscv64"),
    (Arch::S390x, "s390x", "SCMP_ARCH_S390X", "s390x"),
    (Arch::S390, "s390", "SCMP_ARCH_S390", "s390"),
    (Arch::Ppc64le, "ppc64le", "SCMP_ARCH_PPC64LE", "ppc64le"),
    (Arch::Ppc64, "ppc64", "SCMP_ARCH_PPC64", "ppc64"),
    (Arch::Ppc, "ppc", "SCMP_ARCH_PPC", "ppc"),
    (Arch::Mips, "mips", "SCMP_ARCH_MIPS", "mips"),
    (Arch::Mipsel, "mipsel", "SCMP_ARCH_MIPSEL", "mipsle"),
    (Arch::Mips64, "mips64", "SCMP_ARCH_MIPS64", "mips64"),
    (Arch::Mipsel64, "mipsel64", "SCMP_ARCH_MIPSEL64", "mips64le"),
    (
        Arch::Mips64n32,
        "mips64n32",
        "SCMP_ARCH_MIPS64N32",
        "mips64n32",
    ),
    (
        Arch::Mipsel64n32,
        "mipsel64n32",
        "SCMP_ARCH_MIPSEL64N32",
        "mips64len32",
    ),
];

impl Arch {
    /// Every architecture auditor knows, in a stable order.
    pub fn all() -> impl Iterator<Item = Arch> {
        ARCHES.iter().map(|a| a.0)
    }
    fn row(self) -> &'static (Arch, &'static str, &'static str, &'static str) {
        // Every variant has a row; the fallback is unreachable but keeps this total.
        ARCHES.iter().find(|r| r.0 == self).unwrap_or(&ARCHES[0])
    }
    /// The native (and LXC, systemd) spelling.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }
    /// The OCI spelling (`SCMP_ARCH_X86_64`).
    pub fn oci_name(self) -> &'static str {
        self.row().2
    }
    /// The spelling Docker's profile uses in `includes.arches` (Go's GOARCH).
    pub fn docker_name(self) -> &'static str {
        self.row().3
    }
    pub fn from_native(s: &str) -> Option<Arch> {
        ARCHES.iter().find(|r| r.1 == s).map(|r| r.0)
    }
    pub fn from_oci(s: &str) -> Option<Arch> {
        ARCHES.iter().find(|r| r.2 == s).map(|r| r.0)
    }
    /// From `uname -m`.
    pub fn from_uname(machine: &str) -> Option<Arch> {
        Some(match machine {
            "x86_64" => Arch::X86_64,
            "i386" | "i486" | "i586" | "i686" => Arch::X86,
            "aarch64" | "arm64" => Arch::Aarch64,
            "riscv64" => Arch::Riscv64,
            "s390x" => Arch::S390x,
            "ppc64le" => Arch::Ppc64le,
            "ppc64" => Arch::Ppc64,
            m if m.starts_with("arm") => Arch::Arm,
            _ => return None,
        })
    }
    /// The ABI auditor's syscall table has for this architecture, if any.
    pub fn abi(self) -> Option<Abi> {
        match self {
            Arch::X86_64 => Some(Abi::X86_64),
            Arch::X86 => Some(Abi::I386),
            Arch::X32 => Some(Abi::X32),
            _ => None,
        }
    }
    pub fn from_abi(abi: Abi) -> Arch {
        match abi {
            Abi::X86_64 => Arch::X86_64,
            Abi::I386 => Arch::X86,
            Abi::X32 => Arch::X32,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison of one syscall argument with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

impl Op {
    /// The native spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::MaskedEq { .. } => "masked-equal",
        }
    }
}

/// One argument condition: `args[index] op value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Condition {
    /// 0..=5.
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Op::MaskedEq { mask } => {
                write!(f, "arg{} & {:#x} == {:#x}", self.index, mask, self.value)
            }
            op => write!(f, "arg{} {} {:#x}", self.index, op.as_str(), self.value),
        }
    }
}

/// A value in a notify handler's parameters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParamValue {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<ParamValue>),
    /// An inline table (`fuse = { ext4 = "fuse2fs" }`).
    Table(BTreeMap<String, ParamValue>),
}

impl ParamValue {
    /// A list of strings.
    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> ParamValue {
        ParamValue::List(
            items
                .into_iter()
                .map(|s| ParamValue::Str(s.into()))
                .collect(),
        )
    }
}

/// A notify handler's parameters, by name.
pub type Params = BTreeMap<String, ParamValue>;

/// Hand the syscall to the broker's handler.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Notify {
    /// The handler's name in [`crate::policy::handlers`]; `None` (an imported `SCMP_ACT_NOTIFY`)
    /// means the registry's default handler for the syscall.
    pub handler: Option<String>,
    pub params: Params,
}

/// What the filter does with a call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    /// Fail the call with this errno (1..=4095).
    Errno(u32),
    KillProcess,
    KillThread,
    Trap,
    Log,
    Notify(Notify),
}

impl Action {
    /// The native spelling of the action's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Errno(_) => "errno",
            Action::KillProcess => "kill-process",
            Action::KillThread => "kill-thread",
            Action::Trap => "trap",
            Action::Log => "log",
            Action::Notify(_) => "notify",
        }
    }
    pub fn is_notify(&self) -> bool {
        matches!(self, Action::Notify(_))
    }
}

/// `EPERM` or the number when the name is unknown.
pub fn errno_display(n: u32) -> String {
    crate::syscalls::errno_name(n).map_or_else(|| n.to_string(), str::to_owned)
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Errno(n) => write!(f, "errno {}", errno_display(*n)),
            Action::Notify(Notify {
                handler: Some(h), ..
            }) => write!(f, "notify {h}"),
            a => f.write_str(a.kind()),
        }
    }
}

/// Where a rule came from: which observations needed it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Provenance {
    /// Observation files that needed the rule …
    pub inputs: u32,
    /// … out of this many merged.
    pub of: u32,
    /// Calls observed.
    pub calls: u64,
    pub executables: Vec<String>,
}

/// One rule: these syscalls, when all conditions hold, get this action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Condition>,
    pub comment: Option<String>,
    pub provenance: Option<Provenance>,
    /// Where the rule, and each of its names, stand in the source (not part of equality in
    /// [`Rule::same_effect`]).
    pub origin: Option<Origin>,
}

/// Source positions of a rule read from a file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    pub rule: Location,
    /// One per entry of [`Rule::names`].
    pub names: Vec<Location>,
}

impl Rule {
    /// A rule for some syscalls, without conditions.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I, action: Action) -> Self {
        Rule {
            names: names.into_iter().map(Into::into).collect(),
            action,
            args: Vec::new(),
            comment: None,
            provenance: None,
            origin: None,
        }
    }
    pub fn with_args(mut self, args: Vec<Condition>) -> Self {
        self.args = args;
        self
    }
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// Same syscalls, action and conditions (comments, provenance and origin aside).
    pub fn same_effect(&self, other: &Rule) -> bool {
        let mut a = self.names.clone();
        let mut b = other.names.clone();
        a.sort();
        b.sort();
        a == b && self.action == other.action && self.args == other.args
    }
    /// Where name number `i` stands, or the rule's own location.
    pub fn name_location(&self, i: usize) -> Option<Location> {
        self.origin
            .as_ref()
            .map(|o| o.names.get(i).copied().unwrap_or(o.rule))
    }
}

/// Which format a policy was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SourceFormat {
    #[default]
    Native,
    Oci,
}

/// A complete policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub default_action: Action,
    /// Empty: the native architecture only (what libseccomp does by default).
    pub architectures: Vec<Arch>,
    pub rules: Vec<Rule>,
    /// OCI `listenerPath`: where the runtime sends the notify fd.
    pub listener_path: Option<String>,
    /// OCI `listenerMetadata`.
    pub listener_metadata: Option<String>,
    /// OCI `flags` (`SECCOMP_FILTER_FLAG_*`), kept for round trips.
    pub flags: Vec<String>,
    pub source: SourceFormat,
    /// Where the default action is written, for messages.
    pub default_location: Option<Location>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_action: Action::Errno(EPERM),
            architectures: Vec::new(),
            rules: Vec::new(),
            listener_path: None,
            listener_metadata: None,
            flags: Vec::new(),
            source: SourceFormat::Native,
            default_location: None,
        }
    }
}

pub const EPERM: u32 = libc::EPERM as u32;
pub const EACCES: u32 = libc::EACCES as u32;
pub const ENOSYS: u32 = libc::ENOSYS as u32;

impl Policy {
    /// Every (rule index, name) pair.
    pub fn names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.names.iter().map(move |n| (i, n.as_str())))
    }
}

mod document;
mod read;
mod shape;
mod write;

pub use document::NativeDocument;
pub use read::{parse_errno, parse_native, parse_u64, suggest};
pub use write::{rule_to_native, to_native};

#[cfg(test)]
mod tests;
