//! Writing the native format: a [`Policy`] rendered as TOML laid out for review.

use super::{Action, Condition, Op, ParamValue, Policy, Rule, VERSION};

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
        ParamValue::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), param_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
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
