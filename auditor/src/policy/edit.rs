//! Editing a native policy in place: rules added where they take effect, everything else —
//! comments, order, formatting — kept as the file had it. Pure: text in, text out.

use super::model::parse_native;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("not a native policy (TOML): {0}")]
    Toml(String),
    #[error("the policy does not read before the change: {0}")]
    Before(String),
    #[error("`rule` is not a list of tables ([[rule]])")]
    RuleShape,
    #[error("the policy would not read after the change: {0}")]
    After(String),
    #[error("`{0}` is no syscall auditor knows")]
    UnknownSyscall(String),
}

/// A rule to add: allow these syscalls, saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    pub names: Vec<String>,
    pub comment: String,
}

/// `text` with an `allow` rule per `rules` in front of the others (the first matching rule
/// decides a call that no notify handler takes, so a rule added at the end could be shadowed);
/// the result is checked to read as a policy.
pub fn prepend_allow_rules(text: &str, rules: &[Allow]) -> Result<String, EditError> {
    parse_native(text).map_err(|e| EditError::Before(e.to_string()))?;
    use crate::syscalls::{number, Abi};
    if let Some(n) = rules.iter().flat_map(|r| &r.names).find(|n| {
        [Abi::X86_64, Abi::I386, Abi::X32]
            .iter()
            .all(|&a| number(a, n).is_none())
    }) {
        return Err(EditError::UnknownSyscall(n.clone()));
    }
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Toml(e.to_string()))?;
    let existing = match doc.remove("rule") {
        None => toml_edit::ArrayOfTables::new(),
        Some(toml_edit::Item::ArrayOfTables(a)) => a,
        Some(_) => return Err(EditError::RuleShape),
    };
    let mut all = toml_edit::ArrayOfTables::new();
    for r in rules {
        let mut t = toml_edit::Table::new();
        let mut names = toml_edit::Array::new();
        for n in &r.names {
            names.push(n.as_str());
        }
        t.insert("names", toml_edit::value(names));
        t.insert("action", toml_edit::value("allow"));
        t.insert("comment", toml_edit::value(r.comment.as_str()));
        all.push(t);
    }
    for t in existing.iter() {
        all.push(t.clone());
    }
    doc.insert("rule", toml_edit::Item::ArrayOfTables(all));
    let out = doc.to_string();
    parse_native(&out).map_err(|e| EditError::After(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"# web's policy: reviewed 2026-11-30
version = 1
default_action = "errno"  # refuse the rest
default_errno = "EPERM"

[[rule]]
names = ["read", "write"]
action = "allow"
comment = "i/o"

# mknod only for /dev/null
[[rule]]
names = ["mknod"]
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
"#;

    #[test]
    fn rules_go_first_and_comments_stay() {
        let out = prepend_allow_rules(
            POLICY,
            &[Allow {
                names: vec!["sync".into()],
                comment: "allowed from auditor tui's Drift view by uid 0 at 2026-12-06T05:00:00Z: 3 calls by /bin/busybox".into(),
            }],
        )
        .expect("edited");
        assert!(
            out.starts_with("# web's policy: reviewed 2026-11-30\n"),
            "{out}"
        );
        assert!(
            out.contains("default_action = \"errno\"  # refuse the rest"),
            "{out}"
        );
        assert!(out.contains("# mknod only for /dev/null"), "{out}");
        let p = parse_native(&out).expect("reads");
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].names, vec!["sync".to_owned()]);
        assert!(p.rules[0]
            .comment
            .as_deref()
            .unwrap_or("")
            .contains("Drift view"));
        assert_eq!(
            p.rules[1].names,
            vec!["read".to_owned(), "write".to_owned()]
        );
    }

    #[test]
    fn what_does_not_read_is_refused() {
        let allow = [Allow {
            names: vec!["sync".into()],
            comment: String::new(),
        }];
        assert!(matches!(
            prepend_allow_rules("version = 1\ndefault_action = ", &allow),
            Err(EditError::Before(_))
        ));
        assert!(matches!(
            prepend_allow_rules(
                POLICY,
                &[Allow {
                    names: vec!["no_such_syscall".into()],
                    comment: String::new()
                }]
            ),
            Err(EditError::UnknownSyscall(_))
        ));
        // No rule yet: the first one.
        let out = prepend_allow_rules("version = 1\ndefault_action = \"allow\"\n", &allow)
            .expect("edited");
        assert_eq!(parse_native(&out).expect("reads").rules.len(), 1);
    }
}
