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

// ---------------------------------------------------------------------------------------------
// Parsing

/// Parse a native policy.
pub fn parse_native(text: &str) -> Result<Policy, ModelError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| ModelError::Syntax {
        location: Location::of_span(text, e.span()),
        message: format!(
            "not valid TOML: {}",
            e.message().trim_end().replace('\n', "; ")
        ),
    })?;
    Reader { text }.policy(doc.as_table())
}

struct Reader<'a> {
    text: &'a str,
}

fn invalid(location: Location, message: impl Into<String>, fix: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        location,
        message: message.into(),
        fix: fix.into(),
    }
}

const TOP_FIELDS: &[&str] = &[
    "version",
    "default_action",
    "default_errno",
    "architectures",
    "rule",
    "listener_path",
    "listener_metadata",
    "flags",
];
const RULE_FIELDS: &[&str] = &[
    "name",
    "names",
    "action",
    "errno",
    "handler",
    "params",
    "args",
    "comment",
    "provenance",
];
const ARG_FIELDS: &[&str] = &["index", "op", "value", "mask"];
const PROVENANCE_FIELDS: &[&str] = &["inputs", "of", "calls", "executables"];

enum Node<'t> {
    Table(&'t toml_edit::Table),
    Inline(&'t toml_edit::InlineTable),
}

impl<'a> Reader<'a> {
    fn loc(&self, span: Option<Range<usize>>) -> Location {
        Location::of_span(self.text, span)
    }

    fn item_loc(&self, item: &toml_edit::Item) -> Location {
        self.loc(item.span())
    }

    fn value_loc(&self, v: &toml_edit::Value) -> Location {
        self.loc(v.span())
    }

    /// Keys of a table or inline table, each with its location; rejects keys not in `known`.
    fn fields<'t>(
        &self,
        node: &Node<'t>,
        known: &[&str],
        what: &str,
    ) -> Result<BTreeMap<String, (Location, Field<'t>)>, ModelError> {
        let mut out = BTreeMap::new();
        let entries: Vec<(String, Location, Field<'t>)> = match node {
            Node::Table(t) => t
                .iter()
                .filter_map(|(k, _)| t.get_key_value(k))
                .map(|(k, i)| (k.get().to_owned(), self.loc(k.span()), Field::Item(i)))
                .collect(),
            Node::Inline(t) => t
                .iter()
                .filter_map(|(k, _)| t.get_key_value(k))
                .map(|(k, v)| (k.get().to_owned(), self.loc(k.span()), Field::Item(v)))
                .collect(),
        };
        for (key, loc, field) in entries {
            if !known.contains(&key.as_str()) {
                let fix = match suggest(&key, known) {
                    Some(s) => format!("did you mean `{s}`? known fields: {}", known.join(", ")),
                    None => format!("known fields: {}", known.join(", ")),
                };
                return Err(invalid(
                    loc,
                    format!("unknown field `{key}` in {what}"),
                    fix,
                ));
            }
            out.insert(key, (loc, field));
        }
        Ok(out)
    }

    fn policy(&self, root: &toml_edit::Table) -> Result<Policy, ModelError> {
        let start = Location { line: 1, column: 1 };
        let f = self.fields(&Node::Table(root), TOP_FIELDS, "the policy")?;
        let mut policy = Policy::default();

        match f.get("version") {
            None => {
                return Err(invalid(
                    start,
                    "missing `version`",
                    format!("add `version = {VERSION}` at the top"),
                ))
            }
            Some((_, v)) => {
                let (loc, n) = self.int(v, "version")?;
                if n != VERSION {
                    return Err(invalid(
                        loc,
                        format!("policy version {n} is not supported"),
                        format!("this auditor reads version {VERSION}"),
                    ));
                }
            }
        }

        let default_errno = match f.get("default_errno") {
            Some((_, v)) => Some(self.errno(v)?),
            None => None,
        };
        match f.get("default_action") {
            None => {
                return Err(invalid(
                    start,
                    "missing `default_action`",
                    "add e.g. `default_action = \"errno\"` and `default_errno = \"EPERM\"`",
                ))
            }
            Some((_, v)) => {
                let (loc, kind) = self.string(v, "default_action")?;
                policy.default_location = Some(loc);
                policy.default_action =
                    self.action(loc, &kind, default_errno, None, None, "default_errno")?;
                if let (Some(_), false) = (default_errno, kind == "errno") {
                    return Err(invalid(
                        loc,
                        "`default_errno` is set but `default_action` is not \"errno\"",
                        "remove `default_errno` or set `default_action = \"errno\"`",
                    ));
                }
            }
        }

        if let Some((_, v)) = f.get("architectures") {
            for (loc, s) in self.strings(v, "architectures")? {
                let arch = Arch::from_native(&s).ok_or_else(|| {
                    let known: Vec<&str> = Arch::all().map(Arch::as_str).collect();
                    invalid(
                        loc,
                        format!("unknown architecture `{s}`"),
                        match suggest(&s, &known) {
                            Some(x) => format!("did you mean `{x}`?"),
                            None => format!("known: {}", known.join(", ")),
                        },
                    )
                })?;
                if !policy.architectures.contains(&arch) {
                    policy.architectures.push(arch);
                }
            }
        }
        if let Some((_, v)) = f.get("listener_path") {
            policy.listener_path = Some(self.string(v, "listener_path")?.1);
        }
        if let Some((_, v)) = f.get("listener_metadata") {
            policy.listener_metadata = Some(self.string(v, "listener_metadata")?.1);
        }
        if let Some((_, v)) = f.get("flags") {
            policy.flags = self
                .strings(v, "flags")?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
        }

        if let Some((loc, field)) = f.get("rule") {
            let tables = match field {
                Field::Item(toml_edit::Item::ArrayOfTables(a)) => a,
                _ => {
                    return Err(invalid(
                        *loc,
                        "`rule` must be an array of tables",
                        "write each rule as a `[[rule]]` section",
                    ))
                }
            };
            for t in tables.iter() {
                policy.rules.push(self.rule(t)?);
            }
        }
        Ok(policy)
    }

    fn rule(&self, t: &toml_edit::Table) -> Result<Rule, ModelError> {
        let at = self.loc(t.span());
        let f = self.fields(&Node::Table(t), RULE_FIELDS, "a rule")?;
        let mut names = Vec::new();
        let mut name_locs = Vec::new();
        match (f.get("name"), f.get("names")) {
            (Some((loc, _)), Some(_)) => {
                return Err(invalid(
                    *loc,
                    "a rule has both `name` and `names`",
                    "keep one: `name = \"x\"` for one syscall, `names = [..]` for a group",
                ))
            }
            (Some((_, v)), None) => {
                let (loc, s) = self.string(v, "name")?;
                names.push(s);
                name_locs.push(loc);
            }
            (None, Some((_, v))) => {
                let list = self.strings(v, "names")?;
                if list.is_empty() {
                    return Err(invalid(
                        self.field_loc(v),
                        "`names` is empty",
                        "list at least one syscall, or delete the rule",
                    ));
                }
                for (loc, s) in list {
                    names.push(s);
                    name_locs.push(loc);
                }
            }
            (None, None) => {
                return Err(invalid(
                    at,
                    "a rule without `name` or `names`",
                    "add `names = [\"...\"]`",
                ))
            }
        }
        for (n, loc) in names.iter().zip(&name_locs) {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(invalid(
                    *loc,
                    format!("`{n}` is not a syscall name"),
                    "syscall names are letters, digits and `_`",
                ));
            }
        }

        let errno = match f.get("errno") {
            Some((_, v)) => Some(self.errno(v)?),
            None => None,
        };
        let handler = match f.get("handler") {
            Some((_, v)) => Some(self.string(v, "handler")?),
            None => None,
        };
        let params = match f.get("params") {
            Some((loc, v)) => Some((*loc, self.params(v)?)),
            None => None,
        };
        let action = match f.get("action") {
            None => {
                return Err(invalid(
                    at,
                    "a rule without `action`",
                    "add e.g. `action = \"allow\"`",
                ))
            }
            Some((_, v)) => {
                let (loc, kind) = self.string(v, "action")?;
                self.action(loc, &kind, errno, handler, params, "errno")?
            }
        };

        let mut args = Vec::new();
        if let Some((_, v)) = f.get("args") {
            let arr = match v.value().and_then(|v| v.as_array()) {
                Some(a) => a,
                None => {
                    return Err(invalid(
                        self.field_loc(v),
                        "`args` must be an array of inline tables",
                        "e.g. `args = [{ index = 0, op = \"==\", value = 1 }]`",
                    ))
                }
            };
            for item in arr.iter() {
                args.push(self.condition(item)?);
            }
            if args.len() > 6 {
                return Err(invalid(
                    self.field_loc(v),
                    "more than six argument conditions",
                    "a syscall has at most six arguments",
                ));
            }
        }
        let comment = match f.get("comment") {
            Some((_, v)) => Some(self.string(v, "comment")?.1),
            None => None,
        };
        let provenance = match f.get("provenance") {
            Some((_, v)) => Some(self.provenance(v)?),
            None => None,
        };
        Ok(Rule {
            names,
            action,
            args,
            comment,
            provenance,
            origin: Some(Origin {
                rule: at,
                names: name_locs,
            }),
        })
    }

    fn action(
        &self,
        loc: Location,
        kind: &str,
        errno: Option<(Location, u32)>,
        handler: Option<(Location, String)>,
        params: Option<(Location, Params)>,
        errno_key: &str,
    ) -> Result<Action, ModelError> {
        let action = match kind {
            "allow" => Action::Allow,
            "errno" => match errno {
                Some((_, n)) => Action::Errno(n),
                None => {
                    return Err(invalid(
                        loc,
                        format!("action \"errno\" without `{errno_key}`"),
                        format!("add `{errno_key} = \"EPERM\"` (a name or a number)"),
                    ))
                }
            },
            "kill-process" => Action::KillProcess,
            "kill-thread" => Action::KillThread,
            "trap" => Action::Trap,
            "log" => Action::Log,
            "notify" => Action::Notify(Notify {
                handler: handler.clone().map(|h| h.1),
                params: params.clone().map(|p| p.1).unwrap_or_default(),
            }),
            other => {
                let known = [
                    "allow",
                    "errno",
                    "kill-process",
                    "kill-thread",
                    "trap",
                    "log",
                    "notify",
                ];
                return Err(invalid(
                    loc,
                    format!("unknown action \"{other}\""),
                    match suggest(other, &known) {
                        Some(s) => format!("did you mean \"{s}\"?"),
                        None => format!("one of: {}", known.join(", ")),
                    },
                ));
            }
        };
        if let (Some((l, _)), false) = (errno, kind == "errno") {
            return Err(invalid(
                l,
                format!("`{errno_key}` only goes with action \"errno\""),
                "remove it, or set the action to \"errno\"",
            ));
        }
        if kind != "notify" {
            if let Some((l, _)) = handler.as_ref() {
                return Err(invalid(
                    *l,
                    "`handler` only goes with action \"notify\"",
                    "remove it",
                ));
            }
            if let Some((l, _)) = params.as_ref() {
                return Err(invalid(
                    *l,
                    "`params` only goes with action \"notify\"",
                    "remove it",
                ));
            }
        }
        Ok(action)
    }

    fn condition(&self, v: &toml_edit::Value) -> Result<Condition, ModelError> {
        let loc = self.value_loc(v);
        let t = v.as_inline_table().ok_or_else(|| {
            invalid(
                loc,
                "an argument condition must be an inline table",
                "e.g. `{ index = 0, op = \"==\", value = 1 }`",
            )
        })?;
        let f = self.fields(&Node::Inline(t), ARG_FIELDS, "an argument condition")?;
        let need = |k: &str| {
            f.get(k).ok_or_else(|| {
                invalid(
                    loc,
                    format!("argument condition without `{k}`"),
                    "conditions need `index`, `op` and `value`",
                )
            })
        };
        let (iloc, index) = self.int(&need("index")?.1, "index")?;
        if !(0..=5).contains(&index) {
            return Err(invalid(
                iloc,
                format!("argument index {index} out of range"),
                "syscall arguments are numbered 0 to 5",
            ));
        }
        let (oloc, op) = self.string(&need("op")?.1, "op")?;
        let (_, value) = self.u64(&need("value")?.1, "value")?;
        let mask = match f.get("mask") {
            Some((_, m)) => Some(self.u64(m, "mask")?),
            None => None,
        };
        let op = match (op.as_str(), mask) {
            ("masked-equal", Some((_, mask))) => Op::MaskedEq { mask },
            ("masked-equal", None) => {
                return Err(invalid(
                    oloc,
                    "\"masked-equal\" without `mask`",
                    "add `mask = 0x...`: the condition is (arg & mask) == value",
                ))
            }
            (_, Some((mloc, _))) => {
                return Err(invalid(
                    mloc,
                    "`mask` only goes with op \"masked-equal\"",
                    "remove it or change the op",
                ))
            }
            ("==", None) => Op::Eq,
            ("!=", None) => Op::Ne,
            ("<", None) => Op::Lt,
            ("<=", None) => Op::Le,
            (">", None) => Op::Gt,
            (">=", None) => Op::Ge,
            (other, None) => {
                return Err(invalid(
                    oloc,
                    format!("unknown op \"{other}\""),
                    "one of: ==, !=, <, <=, >, >=, masked-equal",
                ))
            }
        };
        Ok(Condition {
            index: index as u8,
            op,
            value,
        })
    }

    fn provenance(&self, field: &Field<'_>) -> Result<Provenance, ModelError> {
        let loc = self.field_loc(field);
        let node = match field {
            Field::Item(toml_edit::Item::Table(t)) => Node::Table(t),
            Field::Item(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => {
                Node::Inline(t)
            }
            _ => {
                return Err(invalid(
                    loc,
                    "`provenance` must be a table",
                    "e.g. `provenance = { inputs = 1, of = 1, calls = 10 }`",
                ))
            }
        };
        let f = self.fields(&node, PROVENANCE_FIELDS, "provenance")?;
        let mut p = Provenance::default();
        if let Some((_, v)) = f.get("inputs") {
            p.inputs = u32::try_from(self.u64(v, "inputs")?.1).unwrap_or(u32::MAX);
        }
        if let Some((_, v)) = f.get("of") {
            p.of = u32::try_from(self.u64(v, "of")?.1).unwrap_or(u32::MAX);
        }
        if let Some((_, v)) = f.get("calls") {
            p.calls = self.u64(v, "calls")?.1;
        }
        if let Some((_, v)) = f.get("executables") {
            p.executables = self
                .strings(v, "executables")?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
        }
        Ok(p)
    }

    fn params(&self, field: &Field<'_>) -> Result<Params, ModelError> {
        let loc = self.field_loc(field);
        let mut out = Params::new();
        let pairs: Vec<(String, &toml_edit::Value)> = match field {
            Field::Item(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => {
                t.iter().map(|(k, v)| (k.to_owned(), v)).collect()
            }
            Field::Item(toml_edit::Item::Table(t)) => {
                let mut v = Vec::new();
                for (k, item) in t.iter() {
                    match item.as_value() {
                        Some(x) => v.push((k.to_owned(), x)),
                        None => {
                            return Err(invalid(
                                self.item_loc(item),
                                format!("parameter `{k}` must be a value"),
                                "use strings, integers, booleans or arrays",
                            ))
                        }
                    }
                }
                v
            }
            _ => {
                return Err(invalid(
                    loc,
                    "`params` must be a table",
                    "e.g. `params = { devices = [\"c 1:3\"] }`",
                ))
            }
        };
        for (k, v) in pairs {
            out.insert(k, self.param(v)?);
        }
        Ok(out)
    }

    fn param(&self, v: &toml_edit::Value) -> Result<ParamValue, ModelError> {
        Ok(match v {
            toml_edit::Value::String(s) => ParamValue::Str(s.value().clone()),
            toml_edit::Value::Integer(i) => ParamValue::Int(*i.value()),
            toml_edit::Value::Boolean(b) => ParamValue::Bool(*b.value()),
            toml_edit::Value::Array(a) => {
                ParamValue::List(a.iter().map(|x| self.param(x)).collect::<Result<_, _>>()?)
            }
            _ => {
                return Err(invalid(
                    self.value_loc(v),
                    "handler parameters are strings, integers, booleans or arrays of them",
                    "",
                ))
            }
        })
    }

    fn field_loc(&self, f: &Field<'_>) -> Location {
        match f {
            Field::Item(i) => self.item_loc(i),
        }
    }

    fn string(&self, f: &Field<'_>, key: &str) -> Result<(Location, String), ModelError> {
        let loc = self.field_loc(f);
        match f.value().and_then(|v| v.as_str()) {
            Some(s) => Ok((loc, s.to_owned())),
            None => Err(invalid(
                loc,
                format!("`{key}` must be a string"),
                format!("write it in quotes: {key} = \"...\""),
            )),
        }
    }

    fn strings(&self, f: &Field<'_>, key: &str) -> Result<Vec<(Location, String)>, ModelError> {
        let loc = self.field_loc(f);
        let arr = f.value().and_then(|v| v.as_array()).ok_or_else(|| {
            invalid(
                loc,
                format!("`{key}` must be an array of strings"),
                format!("e.g. {key} = [\"a\", \"b\"]"),
            )
        })?;
        arr.iter()
            .map(|v| match v.as_str() {
                Some(s) => Ok((self.value_loc(v), s.to_owned())),
                None => Err(invalid(
                    self.value_loc(v),
                    format!("`{key}` must contain only strings"),
                    "put each entry in quotes",
                )),
            })
            .collect()
    }

    fn int(&self, f: &Field<'_>, key: &str) -> Result<(Location, i64), ModelError> {
        let loc = self.field_loc(f);
        match f.value().and_then(|v| v.as_integer()) {
            Some(n) => Ok((loc, n)),
            None => Err(invalid(loc, format!("`{key}` must be an integer"), "")),
        }
    }

    /// A non-negative integer; TOML integers are i64, so values above i64::MAX are written as
    /// strings ("0xffffffffffffffff").
    fn u64(&self, f: &Field<'_>, key: &str) -> Result<(Location, u64), ModelError> {
        let loc = self.field_loc(f);
        let v = f.value();
        if let Some(n) = v.and_then(|v| v.as_integer()) {
            return u64::try_from(n).map(|n| (loc, n)).map_err(|_| {
                invalid(loc, format!("`{key}` must not be negative"), "write a negative 64-bit value as its two's complement, e.g. \"0xffffffffffffffff\"")
            });
        }
        if let Some(s) = v.and_then(|v| v.as_str()) {
            if let Some(n) = parse_u64(s) {
                return Ok((loc, n));
            }
        }
        Err(invalid(
            loc,
            format!("`{key}` must be a non-negative integer"),
            "e.g. 1, 0x10, 0o644, or a string \"0xffffffffffffffff\" above 2^63",
        ))
    }

    fn errno(&self, f: &Field<'_>) -> Result<(Location, u32), ModelError> {
        let loc = self.field_loc(f);
        let v = f.value();
        if let Some(n) = v.and_then(|v| v.as_integer()) {
            return match u32::try_from(n) {
                Ok(n) if (1..=4095).contains(&n) => Ok((loc, n)),
                _ => Err(invalid(
                    loc,
                    format!("errno {n} out of range"),
                    "an errno is 1 to 4095, or a name like \"EPERM\"",
                )),
            };
        }
        if let Some(s) = v.and_then(|v| v.as_str()) {
            return parse_errno(s)
                .map(|n| (loc, n))
                .ok_or_else(|| invalid(loc, format!("unknown errno name \"{s}\""), errno_fix(s)));
        }
        Err(invalid(
            loc,
            "an errno must be a name (\"EPERM\") or a number (1)",
            "",
        ))
    }
}

/// How to fix an unknown errno name.
pub(crate) fn errno_fix(s: &str) -> String {
    let upper = s.to_ascii_uppercase();
    if upper != s && crate::syscalls::errno_number(&upper).is_some() {
        return format!("errno names are upper-case: did you mean \"{upper}\"?");
    }
    "use a name such as \"EPERM\", \"EACCES\", \"ENOSYS\", or the number".to_owned()
}

/// An errno by name or decimal number.
pub fn parse_errno(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=4095).contains(&n).then_some(n);
    }
    crate::syscalls::errno_number(s)
}

/// `123`, `0x7b`, `0o173`, `0b1111011`, with optional `_` separators.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = s.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else {
        s.parse().ok()
    }
}

/// The closest of `known` to `word`, if close enough to be a plausible typo.
pub fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (*k, strsim::damerau_levenshtein(word, k)))
        .filter(|(k, d)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

enum Field<'t> {
    Item(&'t toml_edit::Item),
}

impl<'t> Field<'t> {
    fn value(&self) -> Option<&'t toml_edit::Value> {
        match self {
            Field::Item(i) => i.as_value(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Render a policy as native TOML, laid out for review: one `[[rule]]` per rule, long name lists
/// wrapped, numbers in the base a reader expects (flags and masks in hex, modes in octal).
pub fn to_native(policy: &Policy) -> String {
    let mut out = String::new();
    out.push_str("# auditor seccomp policy (native format, see `auditor check --help`).\n");
    out.push_str("# Comments you add here are kept when auditor rewrites this file.\n");
    out.push_str(&format!("version = {VERSION}\n"));
    match &policy.default_action {
        Action::Errno(n) => {
            out.push_str("default_action = \"errno\"\n");
            out.push_str(&format!("default_errno = {}\n", errno_value(*n)));
        }
        a => out.push_str(&format!("default_action = {}\n", quote(a.kind()))),
    }
    if !policy.architectures.is_empty() {
        let list: Vec<String> = policy
            .architectures
            .iter()
            .map(|a| quote(a.as_str()))
            .collect();
        out.push_str(&format!("architectures = [{}]\n", list.join(", ")));
    }
    if let Some(p) = &policy.listener_path {
        out.push_str(&format!("listener_path = {}\n", quote(p)));
    }
    if let Some(m) = &policy.listener_metadata {
        out.push_str(&format!("listener_metadata = {}\n", quote(m)));
    }
    if !policy.flags.is_empty() {
        let list: Vec<String> = policy.flags.iter().map(|f| quote(f)).collect();
        out.push_str(&format!("flags = [{}]\n", list.join(", ")));
    }
    for rule in &policy.rules {
        out.push('\n');
        out.push_str(&rule_to_native(rule));
    }
    out
}

/// One `[[rule]]` section.
pub fn rule_to_native(rule: &Rule) -> String {
    let mut out = String::from("[[rule]]\n");
    if let Some(c) = &rule.comment {
        out.push_str(&format!("comment = {}\n", quote(c)));
    }
    if rule.names.len() == 1 {
        out.push_str(&format!("name = {}\n", quote(&rule.names[0])));
    } else {
        out.push_str(&wrapped_list("names", &rule.names));
    }
    out.push_str(&format!("action = {}\n", quote(rule.action.kind())));
    match &rule.action {
        Action::Errno(n) => out.push_str(&format!("errno = {}\n", errno_value(*n))),
        Action::Notify(n) => {
            if let Some(h) = &n.handler {
                out.push_str(&format!("handler = {}\n", quote(h)));
            }
            if !n.params.is_empty() {
                let items: Vec<String> = n
                    .params
                    .iter()
                    .map(|(k, v)| format!("{} = {}", key(k), param_value(v)))
                    .collect();
                out.push_str(&format!("params = {{ {} }}\n", items.join(", ")));
            }
        }
        _ => {}
    }
    if !rule.args.is_empty() {
        let conds: Vec<String> = rule
            .args
            .iter()
            .map(|c| condition_to_native(c, &rule.names))
            .collect();
        if conds.len() == 1 {
            out.push_str(&format!("args = [{}]\n", conds[0]));
        } else {
            out.push_str("args = [\n");
            for c in conds {
                out.push_str(&format!("    {c},\n"));
            }
            out.push_str("]\n");
        }
    }
    if let Some(p) = &rule.provenance {
        let mut items = vec![
            format!("inputs = {}", p.inputs),
            format!("of = {}", p.of),
            format!("calls = {}", p.calls),
        ];
        if !p.executables.is_empty() {
            let list: Vec<String> = p.executables.iter().map(|e| quote(e)).collect();
            items.push(format!("executables = [{}]", list.join(", ")));
        }
        out.push_str(&format!("provenance = {{ {} }}\n", items.join(", ")));
    }
    out
}

fn condition_to_native(c: &Condition, names: &[String]) -> String {
    // mknod modes read best in octal; everything else (flags, requests, masks) in hex, small
    // constants (socket domains, options) in decimal.
    let is_mode = names.iter().all(|n| n == "mknod" || n == "mknodat")
        && matches!(c.op, Op::MaskedEq { mask } if mask == 0o170000);
    // mknod's dev argument reads best in hex (0x103 is 1:3).
    let is_dev = names.iter().all(|n| n == "mknod" || n == "mknodat")
        && c.index
            == if names.iter().any(|n| n == "mknod") {
                2
            } else {
                3
            };
    let num = |v: u64| {
        if v > i64::MAX as u64 {
            format!("\"{v:#x}\"")
        } else if is_dev && !is_mode {
            format!("{v:#x}")
        } else if is_mode {
            format!("0o{v:06o}")
        } else if v >= 0x1000 {
            format!("{v:#x}")
        } else {
            v.to_string()
        }
    };
    match c.op {
        Op::MaskedEq { mask } => format!(
            "{{ index = {}, op = \"masked-equal\", mask = {}, value = {} }}",
            c.index,
            num(mask),
            num(c.value)
        ),
        op => format!(
            "{{ index = {}, op = {}, value = {} }}",
            c.index,
            quote(op.as_str()),
            num(c.value)
        ),
    }
}

fn wrapped_list(key: &str, items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    let one_line = format!("{key} = [{}]\n", quoted.join(", "));
    if one_line.len() <= 100 {
        return one_line;
    }
    let mut out = format!("{key} = [\n");
    let mut line = String::from("   ");
    for q in quoted {
        if line.len() + q.len() + 2 > 100 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from("   ");
        }
        line.push(' ');
        line.push_str(&q);
        line.push(',');
    }
    out.push_str(line.trim_end());
    out.push_str("\n]\n");
    out
}

fn errno_value(n: u32) -> String {
    match crate::syscalls::errno_name(n) {
        Some(name) => quote(name),
        None => n.to_string(),
    }
}

fn param_value(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => quote(s),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::List(l) => {
            let items: Vec<String> = l.iter().map(param_value).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Rewriting with comments kept

/// A native policy together with its document, so that auditor can change it without losing
/// what a person wrote: comments, blank lines, the order and spelling of keys.
#[derive(Debug, Clone)]
pub struct NativeDocument {
    doc: toml_edit::DocumentMut,
    policy: Policy,
}

impl NativeDocument {
    /// Parse (strictly, like [`parse_native`]) and keep the document for rewriting.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let policy = parse_native(text)?;
        let doc = toml_edit::Document::parse(text.to_owned())
            .map_err(|e| ModelError::Syntax {
                location: Location::of_span(text, e.span()),
                message: e.message().to_owned(),
            })?
            .into_mut();
        Ok(NativeDocument { doc, policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Append a rule at the end; everything already in the document stays as written.
    pub fn push_rule(&mut self, rule: &Rule) -> Result<(), ModelError> {
        let snippet = rule_to_native(rule);
        let parsed: toml_edit::DocumentMut =
            snippet
                .parse()
                .map_err(|e: toml_edit::TomlError| ModelError::Syntax {
                    location: Location::default(),
                    message: format!("internal: rendered rule does not parse: {}", e.message()),
                })?;
        let mut table = parsed
            .get("rule")
            .and_then(|i| i.as_array_of_tables())
            .and_then(|a| a.get(0))
            .cloned()
            .ok_or_else(|| ModelError::Syntax {
                location: Location::default(),
                message: "internal: rendered rule has no [[rule]] table".to_owned(),
            })?;
        // A blank line before each new section, like the rest of a generated file; the table's
        // position is assigned when it is inserted.
        table.decor_mut().set_prefix("\n");
        table.set_position(None);
        let root = self.doc.as_table_mut();
        match root.get_mut("rule") {
            Some(toml_edit::Item::ArrayOfTables(a)) => a.push(table),
            Some(_) => {
                return Err(invalid(
                    Location::default(),
                    "`rule` is not an array of tables",
                    "",
                ));
            }
            None => {
                let mut a = toml_edit::ArrayOfTables::new();
                a.push(table);
                root.insert("rule", toml_edit::Item::ArrayOfTables(a));
            }
        }
        let mut r = rule.clone();
        r.origin = None;
        self.policy.rules.push(r);
        Ok(())
    }

    /// Add architectures the policy does not list yet, at the end of its list.
    pub fn add_architectures(&mut self, arches: &[Arch]) {
        let new: Vec<Arch> = arches
            .iter()
            .copied()
            .filter(|a| !self.policy.architectures.contains(a))
            .collect();
        if new.is_empty() || self.policy.architectures.is_empty() {
            // An empty list means "native only"; adding to it would narrow what the policy
            // covers, so leave it.
            return;
        }
        if let Some(arr) = self
            .doc
            .get_mut("architectures")
            .and_then(|i| i.as_array_mut())
        {
            for a in &new {
                arr.push(a.as_str());
            }
            self.policy.architectures.extend(new);
        }
    }

    /// The document's text.
    pub fn render(&self) -> String {
        self.doc.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# A reviewed policy.
version = 1
default_action = "errno"
default_errno = "EPERM"   # the safe answer
architectures = ["x86_64"]

# The basics.
[[rule]]
names = ["read", "write"]
action = "allow"

[[rule]]
name = "socket"
action = "allow"
args = [{ index = 0, op = "==", value = 1 }]
comment = "AF_UNIX only"

[[rule]]
name = "mknodat"
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
args = [{ index = 2, op = "masked-equal", mask = 0o170000, value = 0o020000 }]
provenance = { inputs = 1, of = 2, calls = 3, executables = ["/bin/mknod"] }
"#;

    #[test]
    fn parses_a_policy() -> Result<(), ModelError> {
        let p = parse_native(SAMPLE)?;
        assert_eq!(p.default_action, Action::Errno(EPERM));
        assert_eq!(p.architectures, vec![Arch::X86_64]);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(
            p.rules[1].args,
            vec![Condition {
                index: 0,
                op: Op::Eq,
                value: 1
            }]
        );
        assert_eq!(p.rules[1].comment.as_deref(), Some("AF_UNIX only"));
        let Action::Notify(n) = &p.rules[2].action else {
            panic!("not notify")
        };
        assert_eq!(n.handler.as_deref(), Some("emulate-mknod"));
        assert_eq!(
            n.params.get("devices"),
            Some(&ParamValue::strings(["c 1:3"]))
        );
        assert_eq!(p.rules[2].args[0].op, Op::MaskedEq { mask: 0o170000 });
        assert_eq!(p.rules[2].provenance.as_ref().map(|p| p.calls), Some(3));
        assert_eq!(
            p.rules[0].name_location(1),
            Some(Location {
                line: 9,
                column: 18
            })
        );
        Ok(())
    }

    #[test]
    fn render_then_parse_is_identity() -> Result<(), ModelError> {
        let p = parse_native(SAMPLE)?;
        let again = parse_native(&to_native(&p))?;
        assert_eq!(p.rules.len(), again.rules.len());
        for (a, b) in p.rules.iter().zip(&again.rules) {
            assert!(a.same_effect(b), "{a:?} != {b:?}");
            assert_eq!(a.comment, b.comment);
            assert_eq!(a.provenance, b.provenance);
        }
        assert_eq!(p.default_action, again.default_action);
        Ok(())
    }

    fn err(text: &str) -> String {
        match parse_native(text) {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_fields_are_located_errors() {
        let e = err("version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = \"read\"\nacton = \"allow\"\n");
        assert!(e.starts_with("5:1: unknown field `acton` in a rule"), "{e}");
        assert!(e.contains("did you mean `action`?"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = err("version = 1\ndefault_action = \"allow\"\ndefault_action = \"log\"\n");
        assert!(e.starts_with("3:"), "{e}");
        assert!(e.to_lowercase().contains("duplicate"), "{e}");
    }

    #[test]
    fn bad_values_are_located_errors() {
        let e = err("version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPREM\"\n");
        assert!(e.starts_with("3:17: unknown errno name \"EPREM\""), "{e}");
        let e = err("version = 2\ndefault_action = \"allow\"\n");
        assert!(e.starts_with("1:11: policy version 2"), "{e}");
        let e = err("version = 1\ndefault_action = \"alow\"\n");
        assert!(e.contains("did you mean \"allow\""), "{e}");
        let e = err("version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = \"x\"\naction = \"allow\"\nargs = [{ index = 6, op = \"==\", value = 1 }]\n");
        assert!(e.contains("argument index 6 out of range"), "{e}");
        let e = err(
            "version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = 3\naction = \"allow\"\n",
        );
        assert!(e.starts_with("4:8: `name` must be a string"), "{e}");
        let e = err("");
        assert!(e.contains("missing `version`"), "{e}");
    }

    #[test]
    fn push_rule_keeps_the_text_before_it() -> Result<(), ModelError> {
        let mut d = NativeDocument::parse(SAMPLE)?;
        d.push_rule(&Rule::new(["getpid"], Action::Allow).with_comment("new"))?;
        let out = d.render();
        assert!(out.starts_with(SAMPLE), "{out}");
        let p = parse_native(&out)?;
        assert_eq!(p.rules.len(), 4);
        Ok(())
    }
}
