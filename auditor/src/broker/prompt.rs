//! Interactive decisions (`auditor enforce --interactive`): calls no rule of the policy decides
//! are held and shown to a person as prompts, who answers allow or deny, once or always.
//!
//! - **Identical calls** are shown once: calls are identical when they come from the same
//!   process (thread group id), in the same ABI (`AUDIT_ARCH_*`), with the same syscall number
//!   and the same argument registers, compared as numbers (a pointer argument is its
//!   address; what it points to is never read); registers the syscall does not take are
//!   zeroed by the caller first ([`crate::syscalls::arity`]). One answer answers all of them.
//! - **Scalars only**: the person sees the syscall and its argument registers; allow answers
//!   CONTINUE, which is safe because no pointed-to contents were judged (the kernel then checks
//!   what it always checks).
//! - **Timeout**: a prompt nobody answers within the timeout is denied with EPERM.
//! - **Bounded**: at most `max_held` calls are held at once; a call beyond is denied with EPERM
//!   at once and counted ([`Prompts::overflow`]).
//! - **Always**: an always answer is a rule for the syscall (whatever its arguments, in every
//!   process) that takes effect at once, for later calls and for other pending prompts of that
//!   syscall, and is written back to the policy file by [`append_always`].
//!
//! [`Prompts`] is the state, pure and synchronous (the broker loop drives it and does the
//! I/O); [`append_always`] is the policy rewrite, text in and text out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::policy::check;
use crate::policy::model::{
    parse_native, rule_to_native, Action, ModelError, NativeDocument, Rule,
};
use crate::session::protocol::Choice;

/// How long a prompt waits for an answer before it denies.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls held at once (they are blocked threads of the workload); beyond, calls are denied.
pub const MAX_HELD: usize = 256;

/// The errno of a deny answer, of a timeout and of an overflow.
pub const DENY_ERRNO: i32 = libc::EPERM;

/// Which calls one prompt stands for (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The calling process (thread group id).
    pub pid: u32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    pub nr: i32,
    pub args: [u64; 6],
}

impl Key {
    /// What an always answer covers: the syscall in this ABI.
    fn syscall(&self) -> (u32, i32) {
        (self.arch, self.nr)
    }
}

/// A prompt waiting for its answer, and the calls it holds.
#[derive(Debug)]
pub struct Pending<T> {
    pub id: u64,
    pub key: Key,
    pub deadline: Instant,
    pub calls: Vec<T>,
}

/// What became of a call offered to [`Prompts::hold`].
#[derive(Debug, PartialEq, Eq)]
pub enum Hold<T> {
    /// Held under a new prompt: show it.
    New(u64),
    /// Held under the pending prompt for identical calls (shown already).
    Joined(u64),
    /// An earlier always answer decides it: answer at once (`true`: allow).
    Decided { allow: bool, call: T },
    /// Too many calls held: deny at once (counted).
    Full(T),
}

/// The calls a closed prompt held.
#[derive(Debug)]
pub struct Closed<T> {
    pub id: u64,
    pub key: Key,
    pub calls: Vec<T>,
}

/// The prompts of one broker.
#[derive(Debug)]
pub struct Prompts<T> {
    timeout: Duration,
    max_held: usize,
    pending: BTreeMap<u64, Pending<T>>,
    by_key: HashMap<Key, u64>,
    held: usize,
    next_id: u64,
    /// (arch, nr) -> allow, from always answers.
    always: HashMap<(u32, i32), bool>,
    /// Calls denied because `max_held` were held already.
    pub overflow: u64,
}

impl<T> Prompts<T> {
    pub fn new(timeout: Duration, max_held: usize) -> Prompts<T> {
        Prompts {
            timeout,
            max_held,
            pending: BTreeMap::new(),
            by_key: HashMap::new(),
            held: 0,
            next_id: 1,
            always: HashMap::new(),
            overflow: 0,
        }
    }

    /// Number prompts from `base + 1` on: an agent serves many brokers on one session, whose
    /// prompt ids must not meet (see `agent::prompts`).
    pub fn with_id_base(mut self, base: u64) -> Prompts<T> {
        self.next_id = base + 1;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Prompts waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Calls held.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn get(&self, id: u64) -> Option<&Pending<T>> {
        self.pending.get(&id)
    }

    /// The earliest deadline of a pending prompt.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// An always answer given for this syscall, if any (`true`: allow).
    pub fn always(&self, arch: u32, nr: i32) -> Option<bool> {
        self.always.get(&(arch, nr)).copied()
    }

    /// Offer a call that no rule decides.
    pub fn hold(&mut self, key: Key, call: T, now: Instant) -> Hold<T> {
        if let Some(allow) = self.always(key.arch, key.nr) {
            return Hold::Decided { allow, call };
        }
        if self.held >= self.max_held {
            self.overflow += 1;
            return Hold::Full(call);
        }
        self.held += 1;
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(p) = self.pending.get_mut(&id) {
                p.calls.push(call);
                return Hold::Joined(id);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_key.insert(key, id);
        self.pending.insert(
            id,
            Pending {
                id,
                key,
                deadline: now + self.timeout,
                calls: vec![call],
            },
        );
        Hold::New(id)
    }

    fn close(&mut self, id: u64) -> Option<Closed<T>> {
        let p = self.pending.remove(&id)?;
        self.by_key.remove(&p.key);
        self.held -= p.calls.len();
        Some(Closed {
            id,
            key: p.key,
            calls: p.calls,
        })
    }

    /// Answer prompt `id`. An always answer also answers the other pending prompts of the same
    /// syscall, and decides its later calls. Empty when `id` is not pending (answered already,
    /// timed out, or never shown).
    pub fn answer(&mut self, id: u64, choice: Choice) -> Vec<Closed<T>> {
        let Some(first) = self.close(id) else {
            return Vec::new();
        };
        let mut out = vec![first];
        if choice.always() {
            let syscall = out[0].key.syscall();
            self.always.insert(syscall, choice.allows());
            let same: Vec<u64> = self
                .pending
                .values()
                .filter(|p| p.key.syscall() == syscall)
                .map(|p| p.id)
                .collect();
            out.extend(same.into_iter().filter_map(|i| self.close(i)));
        }
        out
    }

    /// Close the prompts whose deadline has passed (they are denied).
    pub fn expire(&mut self, now: Instant) -> Vec<Closed<T>> {
        let due: Vec<u64> = self
            .pending
            .values()
            .filter(|p| p.deadline <= now)
            .map(|p| p.id)
            .collect();
        due.into_iter().filter_map(|i| self.close(i)).collect()
    }

    /// Close every prompt (the broker is stopping: they are denied).
    pub fn drain(&mut self) -> Vec<Closed<T>> {
        let all: Vec<u64> = self.pending.keys().copied().collect();
        all.into_iter().filter_map(|i| self.close(i)).collect()
    }
}

/// Errors writing an always answer back to the policy.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    #[error("cannot read the policy {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the policy {path} no longer parses, so the rule was not added (it still applies until auditor exits): {source}")]
    Parse {
        path: String,
        #[source]
        source: ModelError,
    },
    #[error("the policy {path} would not pass its check with the new rule for `{syscall}`, so it was not added (it still applies until auditor exits): {problems}")]
    Check {
        path: String,
        syscall: String,
        problems: String,
    },
    #[error("cannot write the policy {path}")]
    Write {
        path: String,
        #[source]
        source: crate::fsutil::FsError,
    },
}

/// The rule an always answer adds: the syscall, whatever its arguments, allowed or denied with
/// EPERM; its comment says who decided and when.
pub fn always_rule(syscall: &str, allow: bool, by: &str, when: &str, asked_by: &str) -> Rule {
    let (action, verb) = if allow {
        (Action::Allow, "allowed")
    } else {
        (Action::Errno(DENY_ERRNO.unsigned_abs()), "denied (EPERM)")
    };
    Rule::new([syscall], action).with_comment(format!(
        "{verb} always by {by} at {when}, answering a prompt of {asked_by}"
    ))
}

/// The policy text `text` with `rule` appended; everything already there (comments, blank
/// lines, key order, the file's last comment) stays byte for byte. The result must parse to
/// the same policy plus the rule, and pass the interactive check.
pub fn append_always(text: &str, path: &str, rule: &Rule) -> Result<String, WritebackError> {
    let parse_err = |source| WritebackError::Parse {
        path: path.to_owned(),
        source,
    };
    let before = parse_native(text).map_err(parse_err)?;
    // A `[[rule]]` section at the very end: the text before it is not touched at all (a
    // rewrite of the document would move the file's trailing comments below the new rule).
    let mut new = text.to_owned();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    new.push('\n');
    new.push_str(&rule_to_native(rule));
    let after = match parse_native(&new) {
        Ok(p) => p,
        // The file's last table is not where a rule may follow (e.g. `rule` written as an
        // inline array): let the document editor place it.
        Err(_) => {
            let mut doc = NativeDocument::parse(text).map_err(parse_err)?;
            doc.push_rule(rule).map_err(parse_err)?;
            new = doc.render();
            parse_native(&new).map_err(parse_err)?
        }
    };
    let added = after.rules.len() == before.rules.len() + 1
        && after.rules.last().is_some_and(|r| r.same_effect(rule))
        && after.default_action == before.default_action;
    if !added {
        return Err(WritebackError::Check {
            path: path.to_owned(),
            syscall: rule.names.join(", "),
            problems: "internal: the appended text does not read back as the rule".into(),
        });
    }
    let problems = check::validate_with(&after, check::CheckOptions { interactive: true });
    if !problems.is_empty() {
        return Err(WritebackError::Check {
            path: path.to_owned(),
            syscall: rule.names.join(", "),
            problems: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(new)
}

/// Read the policy file, append the rule, write it back atomically. Serialised by the caller's
/// lock: two answers in a row must not lose one another's rule.
pub fn write_always(
    path: &std::path::Path,
    rule: &Rule,
    lock: &std::sync::Mutex<()>,
) -> Result<(), WritebackError> {
    let _guard = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| WritebackError::Read {
        path: shown.clone(),
        source,
    })?;
    let new = append_always(&text, &shown, rule)?;
    crate::fsutil::write_atomic(path, new.as_bytes()).map_err(|source| WritebackError::Write {
        path: shown,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32, nr: i32, a0: u64) -> Key {
        Key {
            pid,
            arch: crate::syscalls::AUDIT_ARCH_X86_64,
            nr,
            args: [a0, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn identical_calls_share_one_prompt_and_one_answer_answers_all() {
        let mut p: Prompts<&str> = Prompts::new(DEFAULT_TIMEOUT, 8);
        let now = Instant::now();
        assert_eq!(p.hold(key(1, 110, 0), "a", now), Hold::New(1));
        // Same process, syscall and arguments (another thread of it): the same prompt.
        assert_eq!(p.hold(key(1, 110, 0), "b", now), Hold::Joined(1));
        // Another argument value, another process: prompts of their own.
        assert_eq!(p.hold(key(1, 110, 5), "c", now), Hold::New(2));
        assert_eq!(p.hold(key(2, 110, 0), "d", now), Hold::New(3));
        assert_eq!((p.pending(), p.held()), (3, 4));
        let closed = p.answer(1, Choice::AllowOnce);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].calls, vec!["a", "b"]);
        assert_eq!((p.pending(), p.held()), (2, 2));
        // Answered already: nothing more to answer.
        assert!(p.answer(1, Choice::DenyOnce).is_empty());
        // Once: a later identical call prompts again.
        assert_eq!(p.hold(key(1, 110, 0), "e", now), Hold::New(4));
    }

    #[test]
    fn an_always_answer_closes_the_syscalls_other_prompts_and_decides_later_calls() {
        let mut p: Prompts<u32> = Prompts::new(DEFAULT_TIMEOUT, 8);
        let now = Instant::now();
        p.hold(key(1, 39, 0), 1, now);
        p.hold(key(2, 39, 0), 2, now);
        p.hold(key(1, 110, 0), 3, now);
        let closed = p.answer(2, Choice::DenyAlways);
        let ids: Vec<u64> = closed.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(p.pending(), 1);
        assert_eq!(
            p.always(crate::syscalls::AUDIT_ARCH_X86_64, 39),
            Some(false)
        );
        assert_eq!(
            p.hold(key(9, 39, 7), 4, now),
            Hold::Decided {
                allow: false,
                call: 4
            }
        );
        // Another ABI is another syscall.
        let mut k = key(9, 39, 7);
        k.arch = crate::syscalls::AUDIT_ARCH_I386;
        assert!(matches!(p.hold(k, 5, now), Hold::New(_)));
    }

    #[test]
    fn prompts_time_out_in_deadline_order_and_only_when_due() {
        let mut p: Prompts<u32> = Prompts::new(Duration::from_secs(30), 8);
        let t0 = Instant::now();
        p.hold(key(1, 1, 0), 1, t0);
        p.hold(key(1, 2, 0), 2, t0 + Duration::from_secs(10));
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert!(p.expire(t0 + Duration::from_secs(29)).is_empty());
        let gone = p.expire(t0 + Duration::from_secs(30));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].calls, vec![1]);
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(40)));
        // A joined call does not extend its prompt's deadline.
        p.hold(key(1, 2, 0), 3, t0 + Duration::from_secs(39));
        let gone = p.expire(t0 + Duration::from_secs(40));
        assert_eq!(gone[0].calls, vec![2, 3]);
        assert_eq!((p.pending(), p.held()), (0, 0));
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn beyond_the_bound_calls_are_refused_and_counted() {
        let mut p: Prompts<u32> = Prompts::new(DEFAULT_TIMEOUT, 2);
        let now = Instant::now();
        p.hold(key(1, 1, 0), 1, now);
        p.hold(key(1, 1, 0), 2, now);
        assert_eq!(p.hold(key(1, 1, 0), 3, now), Hold::Full(3));
        assert_eq!(p.hold(key(1, 2, 0), 4, now), Hold::Full(4));
        assert_eq!(p.overflow, 2);
        assert_eq!(p.drain().len(), 1);
        assert_eq!(p.held(), 0);
        assert!(matches!(p.hold(key(1, 2, 0), 5, now), Hold::New(_)));
    }

    const POLICY: &str = r#"# Reviewed by the platform team.
version = 1
default_action = "errno"   # refuse what we did not see
default_errno = "EPERM"

# The basics.
[[rule]]
names = ["read", "write", "exit_group"]
action = "allow"
# trailing comment
"#;

    #[test]
    fn an_always_answer_is_appended_and_everything_else_is_kept_byte_for_byte(
    ) -> Result<(), WritebackError> {
        let rule = always_rule(
            "getppid",
            true,
            "in-process UI",
            "2026-11-29T05:00:00Z",
            "auditor enforce --interactive",
        );
        let new = append_always(POLICY, "p.toml", &rule)?;
        assert!(new.starts_with(POLICY), "{new}");
        let added = &new[POLICY.len()..];
        assert!(added.contains("name = \"getppid\""), "{added}");
        assert!(added.contains("action = \"allow\""), "{added}");
        assert!(
            added.contains("allowed always by in-process UI at 2026-11-29T05:00:00Z"),
            "{added}"
        );
        let p =
            crate::policy::model::parse_native(&new).map_err(|source| WritebackError::Parse {
                path: "p.toml".into(),
                source,
            })?;
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[1].names, vec!["getppid"]);
        // A deny is an errno rule; a second answer appends after the first.
        let deny = always_rule(
            "uname",
            false,
            "uid 0 (root) pid 7",
            "2026-11-29T05:00:01Z",
            "auditor enforce --interactive",
        );
        let newer = append_always(&new, "p.toml", &deny)?;
        assert!(newer.starts_with(&new));
        assert!(newer[new.len()..].contains("errno = \"EPERM\""), "{newer}");
        Ok(())
    }

    #[test]
    fn a_rule_that_would_break_the_policy_is_not_written() {
        assert!(matches!(
            append_always(
                "not toml [",
                "p.toml",
                &always_rule("getppid", true, "x", "y", "auditor enforce --interactive")
            ),
            Err(WritebackError::Parse { .. })
        ));
        // A name no kernel knows fails the check.
        let e = append_always(
            POLICY,
            "p.toml",
            &always_rule(
                "no_such_call",
                true,
                "x",
                "y",
                "auditor enforce --interactive",
            ),
        );
        assert!(matches!(e, Err(WritebackError::Check { .. })), "{e:?}");
    }

    #[test]
    fn the_write_is_atomic_and_serialised() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.toml");
        std::fs::write(&path, POLICY)?;
        let lock = std::sync::Mutex::new(());
        write_always(
            &path,
            &always_rule("getppid", true, "a", "t", "auditor enforce --interactive"),
            &lock,
        )?;
        write_always(
            &path,
            &always_rule("uname", false, "b", "t", "auditor enforce --interactive"),
            &lock,
        )?;
        let text = std::fs::read_to_string(&path)?;
        assert!(text.starts_with(POLICY));
        assert!(text.contains("getppid") && text.contains("uname"));
        assert!(write_always(
            &dir.path().join("missing.toml"),
            &always_rule("getppid", true, "a", "t", "auditor enforce --interactive"),
            &lock
        )
        .is_err());
        Ok(())
    }
}
