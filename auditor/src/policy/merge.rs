//! Merging policies: the union of their rules. The first policy is the base: its text (comments,
//! order, layout) is kept when it is native, and rules the others add are appended.

use super::model::{Action, Condition, ModelError, NativeDocument, Policy, Rule};

/// Errors merging policies.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("input {index}: default action {theirs} differs from the first input's {ours}")]
    DefaultAction {
        index: usize,
        ours: String,
        theirs: String,
    },
    #[error("input {index}: `{syscall}` is {theirs} there but {ours} in an earlier input")]
    Conflict {
        index: usize,
        syscall: String,
        ours: String,
        theirs: String,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The rules of `other` that `base` does not have yet, restricted to their new names.
fn missing(base: &Policy, other: &Rule) -> Result<Option<Rule>, (String, Action)> {
    let mut args: Vec<Condition> = other.args.clone();
    args.sort();
    let mut names = Vec::new();
    for n in &other.names {
        let mut present = false;
        for r in &base.rules {
            let mut ra = r.args.clone();
            ra.sort();
            if ra == args && r.names.contains(n) {
                if r.action != other.action {
                    return Err((n.clone(), r.action.clone()));
                }
                present = true;
            }
        }
        if !present {
            names.push(n.clone());
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let mut r = other.clone();
    r.names = names;
    r.origin = None;
    Ok(Some(r))
}

/// Merge `others` into `base`.
pub fn merge(base: &Policy, others: &[Policy]) -> Result<Policy, MergeError> {
    let mut out = base.clone();
    for (i, o) in others.iter().enumerate() {
        check_default(&out, o, i + 2)?;
        for a in &o.architectures {
            if !out.architectures.is_empty() && !out.architectures.contains(a) {
                out.architectures.push(*a);
            }
        }
        for r in &o.rules {
            match missing(&out, r) {
                Ok(Some(r)) => out.rules.push(r),
                Ok(None) => {}
                Err((syscall, ours)) => {
                    return Err(MergeError::Conflict {
                        index: i + 2,
                        syscall,
                        ours: ours.to_string(),
                        theirs: r.action.to_string(),
                    })
                }
            }
        }
    }
    Ok(out)
}

fn check_default(base: &Policy, o: &Policy, index: usize) -> Result<(), MergeError> {
    if base.default_action != o.default_action {
        return Err(MergeError::DefaultAction {
            index,
            ours: base.default_action.to_string(),
            theirs: o.default_action.to_string(),
        });
    }
    Ok(())
}

/// Merge `others` into a native document, keeping its text byte for byte and appending the new
/// rules.
pub fn merge_into_document(doc: &mut NativeDocument, others: &[Policy]) -> Result<(), MergeError> {
    for (i, o) in others.iter().enumerate() {
        check_default(doc.policy(), o, i + 2)?;
        doc.add_architectures(&o.architectures);
        for r in &o.rules {
            match missing(doc.policy(), r) {
                Ok(Some(r)) => doc.push_rule(&r)?,
                Ok(None) => {}
                Err((syscall, ours)) => {
                    return Err(MergeError::Conflict {
                        index: i + 2,
                        syscall,
                        ours: ours.to_string(),
                        theirs: r.action.to_string(),
                    })
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_without_duplicates_and_conflicts_refused() -> Result<(), MergeError> {
        let a = Policy {
            rules: vec![Rule::new(["read", "write"], Action::Allow)],
            ..Policy::default()
        };
        let b = Policy {
            rules: vec![Rule::new(["write", "getpid"], Action::Allow)],
            ..Policy::default()
        };
        let m = merge(&a, &[b])?;
        assert_eq!(m.rules.len(), 2);
        assert_eq!(m.rules[1].names, vec!["getpid"]);
        let c = Policy {
            rules: vec![Rule::new(["read"], Action::KillProcess)],
            ..Policy::default()
        };
        assert!(matches!(merge(&a, &[c]), Err(MergeError::Conflict { .. })));
        let d = Policy {
            default_action: Action::Log,
            ..Policy::default()
        };
        assert!(matches!(
            merge(&a, &[d]),
            Err(MergeError::DefaultAction { .. })
        ));
        Ok(())
    }
}
