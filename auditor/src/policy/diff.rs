//! What changed between two policies, rule by rule: per syscall and argument conditions, which
//! action each policy gives. Comments, provenance and rule grouping do not count as changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{Action, Condition, Policy};

/// One syscall (with conditions) whose treatment differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub syscall: String,
    pub args: Vec<Condition>,
    /// `None`: the policy has no rule for it (the default action applies).
    pub before: Option<Action>,
    pub after: Option<Action>,
}

/// The differences between two policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub default_action: Option<(Action, Action)>,
    pub architectures: Option<(Vec<String>, Vec<String>)>,
    pub added: Vec<Change>,
    pub removed: Vec<Change>,
    pub changed: Vec<Change>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.default_action.is_none()
            && self.architectures.is_none()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }

    /// For a terminal: `+` added, `-` removed, `~` changed.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some((a, b)) = &self.default_action {
            let _ = writeln!(s, "~ default action: {a} -> {b}");
        }
        if let Some((a, b)) = &self.architectures {
            let _ = writeln!(
                s,
                "~ architectures: [{}] -> [{}]",
                a.join(", "),
                b.join(", ")
            );
        }
        let label = |c: &Change| {
            if c.args.is_empty() {
                c.syscall.clone()
            } else {
                let conds: Vec<String> = c.args.iter().map(ToString::to_string).collect();
                format!("{} when {}", c.syscall, conds.join(" && "))
            }
        };
        let act = |a: &Option<Action>| {
            a.as_ref()
                .map_or_else(|| "(default)".to_owned(), ToString::to_string)
        };
        for c in &self.added {
            let _ = writeln!(s, "+ {}: {}", label(c), act(&c.after));
        }
        for c in &self.removed {
            let _ = writeln!(s, "- {}: {}", label(c), act(&c.before));
        }
        for c in &self.changed {
            let _ = writeln!(s, "~ {}: {} -> {}", label(c), act(&c.before), act(&c.after));
        }
        if self.is_empty() {
            s.push_str("no differences\n");
        }
        s
    }

    /// For tools.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let act = |a: &Option<Action>| a.as_ref().map(ToString::to_string);
        let change = |c: &Change| {
            json!({
                "syscall": c.syscall,
                "args": c.args.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "before": act(&c.before),
                "after": act(&c.after),
            })
        };
        json!({
            "default_action": self.default_action.as_ref().map(|(a, b)| json!({"before": a.to_string(), "after": b.to_string()})),
            "architectures": self.architectures.as_ref().map(|(a, b)| json!({"before": a, "after": b})),
            "added": self.added.iter().map(change).collect::<Vec<_>>(),
            "removed": self.removed.iter().map(change).collect::<Vec<_>>(),
            "changed": self.changed.iter().map(change).collect::<Vec<_>>(),
        })
    }
}

type Key = (String, Vec<Condition>);

fn index(p: &Policy) -> BTreeMap<Key, Action> {
    let mut m = BTreeMap::new();
    for r in &p.rules {
        let mut args = r.args.clone();
        args.sort();
        for n in &r.names {
            m.entry((n.clone(), args.clone()))
                .or_insert_with(|| r.action.clone());
        }
    }
    m
}

/// Compare `a` (before) with `b` (after).
pub fn diff(a: &Policy, b: &Policy) -> Diff {
    let mut d = Diff::default();
    if a.default_action != b.default_action {
        d.default_action = Some((a.default_action.clone(), b.default_action.clone()));
    }
    let arches = |p: &Policy| {
        p.architectures
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    if arches(a) != arches(b) {
        d.architectures = Some((arches(a), arches(b)));
    }
    let (ia, ib) = (index(a), index(b));
    for ((name, args), act) in &ib {
        match ia.get(&(name.clone(), args.clone())) {
            None => d.added.push(Change {
                syscall: name.clone(),
                args: args.clone(),
                before: None,
                after: Some(act.clone()),
            }),
            Some(old) if old != act => d.changed.push(Change {
                syscall: name.clone(),
                args: args.clone(),
                before: Some(old.clone()),
                after: Some(act.clone()),
            }),
            Some(_) => {}
        }
    }
    for ((name, args), act) in &ia {
        if !ib.contains_key(&(name.clone(), args.clone())) {
            d.removed.push(Change {
                syscall: name.clone(),
                args: args.clone(),
                before: Some(act.clone()),
                after: None,
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Rule, EPERM};

    #[test]
    fn added_removed_changed() {
        let a = Policy {
            rules: vec![Rule::new(["read", "write", "ptrace"], Action::Allow)],
            ..Policy::default()
        };
        let b = Policy {
            rules: vec![
                Rule::new(["read", "getpid"], Action::Allow),
                Rule::new(["ptrace"], Action::Errno(EPERM + 12)),
            ],
            ..Policy::default()
        };
        let d = diff(&a, &b);
        assert_eq!(
            d.added
                .iter()
                .map(|c| c.syscall.as_str())
                .collect::<Vec<_>>(),
            ["getpid"]
        );
        assert_eq!(
            d.removed
                .iter()
                .map(|c| c.syscall.as_str())
                .collect::<Vec<_>>(),
            ["write"]
        );
        assert_eq!(d.changed.len(), 1);
        let text = d.render();
        assert!(text.contains("+ getpid: allow"), "{text}");
        assert!(text.contains("- write: allow"), "{text}");
        assert!(text.contains("~ ptrace: allow -> errno EACCES"), "{text}");
        assert_eq!(d.to_json()["added"][0]["syscall"], "getpid");
        assert!(diff(&a, &a).is_empty());
    }
}
