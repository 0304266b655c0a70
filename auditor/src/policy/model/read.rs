//! Reading the native format: serde gives the document's shape (`shape`), then each value is
//! checked into a [`Policy`], every error located (line:column of the key or value) and with a
//! fix.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::shape::{shape_error, RawCondition, RawPolicy, RawProvenance, RawRule, Val};
use super::{
    Action, Arch, Condition, Location, ModelError, Notify, Op, Origin, ParamValue, Params, Policy,
    Provenance, Rule, VERSION,
};

/// Parse a native policy.
pub fn parse_native(text: &str) -> Result<Policy, ModelError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| ModelError::Syntax {
        location: Location::of_span(text, e.span()),
        message: format!(
            "not valid TOML: {}",
            e.message().trim_end().replace('\n', "; ")
        ),
    })?;
    let raw = RawPolicy::deserialize(toml_edit::de::Deserializer::from(doc))
        .map_err(|e| shape_error(text, &e))?;
    Reader { text }.policy(raw)
}

struct Reader<'a> {
    text: &'a str,
}

pub(super) fn invalid(
    location: Location,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> ModelError {
    ModelError::Invalid {
        location,
        message: message.into(),
        fix: fix.into(),
    }
}

type Value = Spanned<Val>;

impl Reader<'_> {
    fn loc<T>(&self, v: &Spanned<T>) -> Location {
        Location::of_span(self.text, Some(v.span()))
    }

    fn policy(&self, raw: RawPolicy) -> Result<Policy, ModelError> {
        let start = Location { line: 1, column: 1 };
        let mut policy = Policy::default();

        match &raw.version {
            None => {
                return Err(invalid(
                    start,
                    "missing `version`",
                    format!("add `version = {VERSION}` at the top"),
                ))
            }
            Some(v) => {
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

        let default_errno = raw
            .default_errno
            .as_ref()
            .map(|v| self.errno(v))
            .transpose()?;
        match &raw.default_action {
            None => {
                return Err(invalid(
                    start,
                    "missing `default_action`",
                    "add e.g. `default_action = \"errno\"` and `default_errno = \"EPERM\"`",
                ))
            }
            Some(v) => {
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

        if let Some(v) = &raw.architectures {
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
        if let Some(v) = &raw.listener_path {
            policy.listener_path = Some(self.string(v, "listener_path")?.1);
        }
        if let Some(v) = &raw.listener_metadata {
            policy.listener_metadata = Some(self.string(v, "listener_metadata")?.1);
        }
        if let Some(v) = &raw.flags {
            policy.flags = self
                .strings(v, "flags")?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
        }
        if let Some(rules) = raw.rule {
            for rule in &rules.get_ref().0 {
                policy.rules.push(self.rule(rule)?);
            }
        }
        Ok(policy)
    }

    fn rule(&self, raw: &Spanned<RawRule>) -> Result<Rule, ModelError> {
        let at = self.loc(raw);
        let r = raw.get_ref();
        let mut names = Vec::new();
        let mut name_locs = Vec::new();
        match (&r.name, &r.names) {
            (Some(v), Some(_)) => {
                return Err(invalid(
                    self.loc(v),
                    "a rule has both `name` and `names`",
                    "keep one: `name = \"x\"` for one syscall, `names = [..]` for a group",
                ))
            }
            (Some(v), None) => {
                let (loc, s) = self.string(v, "name")?;
                names.push(s);
                name_locs.push(loc);
            }
            (None, Some(v)) => {
                let list = self.strings(v, "names")?;
                if list.is_empty() {
                    return Err(invalid(
                        self.loc(v),
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

        let errno = r.errno.as_ref().map(|v| self.errno(v)).transpose()?;
        let handler = r
            .handler
            .as_ref()
            .map(|v| self.string(v, "handler"))
            .transpose()?;
        let params = match &r.params {
            Some(v) => Some((self.loc(v), self.params(v)?)),
            None => None,
        };
        let action = match &r.action {
            None => {
                return Err(invalid(
                    at,
                    "a rule without `action`",
                    "add e.g. `action = \"allow\"`",
                ))
            }
            Some(v) => {
                let (loc, kind) = self.string(v, "action")?;
                self.action(loc, &kind, errno, handler, params, "errno")?
            }
        };

        let mut args = Vec::new();
        if let Some(list) = &r.args {
            for c in &list.get_ref().0 {
                args.push(self.condition(c)?);
            }
            if args.len() > 6 {
                return Err(invalid(
                    self.loc(list),
                    "more than six argument conditions",
                    "a syscall has at most six arguments",
                ));
            }
        }
        let comment = match &r.comment {
            Some(v) => Some(self.string(v, "comment")?.1),
            None => None,
        };
        let provenance = match &r.provenance {
            Some(p) => Some(self.provenance(p.get_ref())?),
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

    fn condition(&self, raw: &Spanned<RawCondition>) -> Result<Condition, ModelError> {
        let loc = self.loc(raw);
        let c = raw.get_ref();
        fn need<'v>(v: &'v Option<Value>, k: &str, loc: Location) -> Result<&'v Value, ModelError> {
            v.as_ref().ok_or_else(|| {
                invalid(
                    loc,
                    format!("argument condition without `{k}`"),
                    "conditions need `index`, `op` and `value`",
                )
            })
        }
        let (iloc, index) = self.int(need(&c.index, "index", loc)?, "index")?;
        if !(0..=5).contains(&index) {
            return Err(invalid(
                iloc,
                format!("argument index {index} out of range"),
                "syscall arguments are numbered 0 to 5",
            ));
        }
        let (oloc, op) = self.string(need(&c.op, "op", loc)?, "op")?;
        let (_, value) = self.u64(need(&c.value, "value", loc)?, "value")?;
        let mask = c.mask.as_ref().map(|m| self.u64(m, "mask")).transpose()?;
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

    fn provenance(&self, raw: &RawProvenance) -> Result<Provenance, ModelError> {
        let mut p = Provenance::default();
        if let Some(v) = &raw.inputs {
            p.inputs = u32::try_from(self.u64(v, "inputs")?.1).unwrap_or(u32::MAX);
        }
        if let Some(v) = &raw.of {
            p.of = u32::try_from(self.u64(v, "of")?.1).unwrap_or(u32::MAX);
        }
        if let Some(v) = &raw.calls {
            p.calls = self.u64(v, "calls")?.1;
        }
        if let Some(v) = &raw.executables {
            p.executables = self
                .strings(v, "executables")?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
        }
        Ok(p)
    }

    fn params(&self, v: &Value) -> Result<Params, ModelError> {
        let Val::Table(pairs) = v.get_ref() else {
            return Err(invalid(
                self.loc(v),
                "`params` must be a table",
                "e.g. `params = { devices = [\"c 1:3\"] }`",
            ));
        };
        let mut out = Params::new();
        for (k, v) in pairs {
            out.insert(k.clone(), self.param(v)?);
        }
        Ok(out)
    }

    fn param(&self, v: &Value) -> Result<ParamValue, ModelError> {
        Ok(match v.get_ref() {
            Val::Str(s) => ParamValue::Str(s.clone()),
            Val::Int(i) => ParamValue::Int(*i),
            Val::Bool(b) => ParamValue::Bool(*b),
            Val::List(a) => {
                ParamValue::List(a.iter().map(|x| self.param(x)).collect::<Result<_, _>>()?)
            }
            Val::Table(pairs) => ParamValue::Table(
                pairs
                    .iter()
                    .map(|(k, x)| Ok((k.clone(), self.param(x)?)))
                    .collect::<Result<_, ModelError>>()?,
            ),
            Val::Float => {
                return Err(invalid(
                    self.loc(v),
                    "handler parameters are strings, integers, booleans, arrays or tables of them",
                    "",
                ))
            }
        })
    }

    fn string(&self, v: &Value, key: &str) -> Result<(Location, String), ModelError> {
        let loc = self.loc(v);
        match v.get_ref() {
            Val::Str(s) => Ok((loc, s.clone())),
            _ => Err(invalid(
                loc,
                format!("`{key}` must be a string"),
                format!("write it in quotes: {key} = \"...\""),
            )),
        }
    }

    fn strings(&self, v: &Value, key: &str) -> Result<Vec<(Location, String)>, ModelError> {
        let Val::List(items) = v.get_ref() else {
            return Err(invalid(
                self.loc(v),
                format!("`{key}` must be an array of strings"),
                format!("e.g. {key} = [\"a\", \"b\"]"),
            ));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                Val::Str(s) => Ok((self.loc(item), s.clone())),
                _ => Err(invalid(
                    self.loc(item),
                    format!("`{key}` must contain only strings"),
                    "put each entry in quotes",
                )),
            })
            .collect()
    }

    fn int(&self, v: &Value, key: &str) -> Result<(Location, i64), ModelError> {
        let loc = self.loc(v);
        match v.get_ref() {
            Val::Int(n) => Ok((loc, *n)),
            _ => Err(invalid(loc, format!("`{key}` must be an integer"), "")),
        }
    }

    /// A non-negative integer; TOML integers are i64, so values above i64::MAX are written as
    /// strings ("0xffffffffffffffff").
    fn u64(&self, v: &Value, key: &str) -> Result<(Location, u64), ModelError> {
        let loc = self.loc(v);
        match v.get_ref() {
            Val::Int(n) => u64::try_from(*n).map(|n| (loc, n)).map_err(|_| {
                invalid(
                    loc,
                    format!("`{key}` must not be negative"),
                    "write a negative 64-bit value as its two's complement, e.g. \"0xffffffffffffffff\"",
                )
            }),
            Val::Str(s) if let Some(n) = parse_u64(s) => Ok((loc, n)),
            _ => Err(invalid(
                loc,
                format!("`{key}` must be a non-negative integer"),
                "e.g. 1, 0x10, 0o644, or a string \"0xffffffffffffffff\" above 2^63",
            )),
        }
    }

    fn errno(&self, v: &Value) -> Result<(Location, u32), ModelError> {
        let loc = self.loc(v);
        match v.get_ref() {
            Val::Int(n) => match u32::try_from(*n) {
                Ok(n) if (1..=4095).contains(&n) => Ok((loc, n)),
                _ => Err(invalid(
                    loc,
                    format!("errno {n} out of range"),
                    "an errno is 1 to 4095, or a name like \"EPERM\"",
                )),
            },
            Val::Str(s) => parse_errno(s)
                .map(|n| (loc, n))
                .ok_or_else(|| invalid(loc, format!("unknown errno name \"{s}\""), errno_fix(s))),
            _ => Err(invalid(
                loc,
                "an errno must be a name (\"EPERM\") or a number (1)",
                "",
            )),
        }
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
