//! The native format's shape, read by serde through `toml_edit`'s deserializer: which tables a
//! policy has and which keys each may hold, every value kept with its span. Values stay loosely
//! typed ([`Val`]) so that `read` can say in the policy's own words what a wrong one should be;
//! a wrong shape (an unknown key, a rule that is not a table) becomes the same kind of located
//! error here, in [`shape_error`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_spanned::Spanned;

use super::read::{invalid, suggest};
use super::{Location, ModelError};

/// Any TOML value, with the span of every value inside it.
#[derive(Debug)]
pub(super) enum Val {
    Int(i64),
    Str(String),
    Bool(bool),
    /// A float: never valid in a policy.
    Float,
    List(Vec<Spanned<Val>>),
    /// A table, inline or not (a datetime arrives as a table too, and is refused as one).
    Table(Vec<(String, Spanned<Val>)>),
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TOML value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
                i64::try_from(v)
                    .map(Val::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Val, E> {
                Ok(Val::Bool(v))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Val, E> {
                Ok(Val::Float)
            }
            fn visit_str<E>(self, v: &str) -> Result<Val, E> {
                Ok(Val::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Val, E> {
                Ok(Val::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Val::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Val::Table(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole document. Field order is [`POLICY_FIELDS`]' order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "the policy's top-level table")]
pub(super) struct RawPolicy {
    pub version: Option<Spanned<Val>>,
    pub default_action: Option<Spanned<Val>>,
    pub default_errno: Option<Spanned<Val>>,
    pub architectures: Option<Spanned<Val>>,
    pub rule: Option<Spanned<List<RawRule>>>,
    pub listener_path: Option<Spanned<Val>>,
    pub listener_metadata: Option<Spanned<Val>>,
    pub flags: Option<Spanned<Val>>,
}

/// One `[[rule]]`. Field order is [`RULE_FIELDS`]' order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule table")]
pub(super) struct RawRule {
    pub name: Option<Spanned<Val>>,
    pub names: Option<Spanned<Val>>,
    pub action: Option<Spanned<Val>>,
    pub errno: Option<Spanned<Val>>,
    pub handler: Option<Spanned<Val>>,
    pub params: Option<Spanned<Val>>,
    pub args: Option<Spanned<List<RawCondition>>>,
    pub comment: Option<Spanned<Val>>,
    pub provenance: Option<Spanned<RawProvenance>>,
}

/// One entry of a rule's `args`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an argument condition table")]
pub(super) struct RawCondition {
    pub index: Option<Spanned<Val>>,
    pub op: Option<Spanned<Val>>,
    pub value: Option<Spanned<Val>>,
    pub mask: Option<Spanned<Val>>,
}

/// A rule's `provenance`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a provenance table")]
pub(super) struct RawProvenance {
    pub inputs: Option<Spanned<Val>>,
    pub of: Option<Spanned<Val>>,
    pub calls: Option<Spanned<Val>>,
    pub executables: Option<Spanned<Val>>,
}

pub(super) const POLICY_FIELDS: &[&str] = &[
    "version",
    "default_action",
    "default_errno",
    "architectures",
    "rule",
    "listener_path",
    "listener_metadata",
    "flags",
];
pub(super) const RULE_FIELDS: &[&str] = &[
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
pub(super) const CONDITION_FIELDS: &[&str] = &["index", "op", "value", "mask"];
pub(super) const PROVENANCE_FIELDS: &[&str] = &["inputs", "of", "calls", "executables"];

/// The tables with a fixed set of keys, as an unknown key's error names them.
const TABLES: &[(&str, &[&str])] = &[
    ("the policy", POLICY_FIELDS),
    ("a rule", RULE_FIELDS),
    ("an argument condition", CONDITION_FIELDS),
    ("provenance", PROVENANCE_FIELDS),
];

/// A list of tables (`[[rule]]` sections, `args = [{ .. }]`), each with its span.
pub(super) struct List<T>(pub Vec<Spanned<T>>);

/// What a [`List`] of `T` is called when the value is something else.
pub(super) trait Listed {
    const LIST: &'static str;
}

impl Listed for RawRule {
    const LIST: &'static str = "an array of rule tables";
}

impl Listed for RawCondition {
    const LIST: &'static str = "an array of argument condition tables";
}

impl<'de, T: Deserialize<'de> + Listed> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Listed> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::LIST)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(List(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A value of the wrong shape, by what serde expected there: (expected, message, fix).
const SHAPES: &[(&str, &str, &str)] = &[
    (
        RawRule::LIST,
        "`rule` must be an array of tables",
        "write each rule as a `[[rule]]` section",
    ),
    (
        "a rule table",
        "`rule` must be an array of tables",
        "write each rule as a `[[rule]]` section",
    ),
    (
        RawCondition::LIST,
        "`args` must be an array of inline tables",
        "e.g. `args = [{ index = 0, op = \"==\", value = 1 }]`",
    ),
    (
        "an argument condition table",
        "an argument condition must be an inline table",
        "e.g. `{ index = 0, op = \"==\", value = 1 }`",
    ),
    (
        "a provenance table",
        "`provenance` must be a table",
        "e.g. `provenance = { inputs = 1, of = 1, calls = 10 }`",
    ),
];

/// serde's error about the document's shape, as a located policy error with a fix.
pub(super) fn shape_error(text: &str, e: &toml_edit::de::Error) -> ModelError {
    let location = Location::of_span(text, e.span());
    let message = e.message().trim_end();
    if let Some((key, what, known)) = unknown_field(message) {
        let fix = match suggest(key, known) {
            Some(s) => format!("did you mean `{s}`? known fields: {}", known.join(", ")),
            None => format!("known fields: {}", known.join(", ")),
        };
        return invalid(location, format!("unknown field `{key}` in {what}"), fix);
    }
    for (expected, msg, fix) in SHAPES {
        if message.ends_with(&format!("expected {expected}")) {
            return invalid(location, *msg, *fix);
        }
    }
    invalid(location, message.replace('\n', "; "), "")
}

/// The key, the table's name and its known keys, if `message` is serde's unknown-field error
/// for one of [`TABLES`]. Each candidate is compared with the message serde itself writes for
/// that table, so that the text is never guessed.
fn unknown_field(message: &str) -> Option<(&str, &'static str, &'static [&'static str])> {
    const MARK: &str = "\u{0}";
    TABLES.iter().find_map(|&(what, known)| {
        let template = <toml_edit::de::Error as de::Error>::unknown_field(MARK, known);
        let (prefix, suffix) = template.message().trim_end().split_once(MARK)?;
        let key = message.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Some((key, what, known))
    })
}
