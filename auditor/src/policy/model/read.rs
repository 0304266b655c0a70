//! Reading the native format: TOML parsed by `toml_edit`, then checked field by field into a
//! [`Policy`], every error located (line:column of the key or value) and with a fix.

use std::collections::BTreeMap;
use std::ops::Range;

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
    Reader { text }.policy(doc.as_table())
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
