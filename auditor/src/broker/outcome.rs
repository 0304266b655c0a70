//! What the broker did with a call: the verdict, the answer to the kernel, what a handler
//! decoded; and the answer a policy action gives when no handler serves the call.

use std::collections::BTreeMap;

use crate::policy::model::Action;
use crate::seccomp::notify::Response;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Every refusal became a notification in the filter; the broker records it and answers
    /// CONTINUE (no security decision is made, so CONTINUE is safe).
    Complain,
}

/// What happened to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    Emulated,
    /// Complain mode: the policy would refuse it; it was allowed.
    Complain,
    /// The caller went away (killed) before it could be answered.
    Gone,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Emulated => "emulated",
            Verdict::Complain => "complain",
            Verdict::Gone => "gone",
        }
    }
}

/// A handler's answer and what it decoded, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub response: Response,
    pub decoded: BTreeMap<String, String>,
}

impl Outcome {
    pub fn new(verdict: Verdict, response: Response) -> Outcome {
        Outcome {
            verdict,
            response,
            decoded: BTreeMap::new(),
        }
    }

    pub fn detail(&mut self, key: &str, value: String) {
        self.decoded.insert(key.to_owned(), value);
    }
}

/// The policy's action in words, for the log.
pub(super) fn action_text(a: &Action) -> String {
    a.to_string()
}

pub(super) fn result_text(r: Response) -> String {
    ResultText(r).to_string()
}

/// What the caller got, in words: "continue", "0", "-EPERM", …
pub(super) struct ResultText(pub(super) Response);

impl std::fmt::Display for ResultText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Response::Continue => f.write_str("continue"),
            Response::Value(v) => write!(f, "{v}"),
            Response::Errno(e) => match crate::syscalls::errno_name(e.unsigned_abs()) {
                Some(n) => write!(f, "-{n}"),
                None => write!(f, "-{e}"),
            },
        }
    }
}

/// A call no handler serves: what the policy's action says (complain mode: refusals are
/// turned into CONTINUE by the caller).
pub(super) fn plain(action: &Action, known: bool) -> Outcome {
    match action {
        Action::Allow | Action::Log => Outcome::new(Verdict::Allowed, Response::Continue),
        Action::Errno(e) => Outcome::new(
            Verdict::Denied,
            Response::Errno(i32::try_from(*e).unwrap_or(libc::EPERM)),
        ),
        // In enforce mode the filter itself kills or traps; reaching the broker with these
        // means the user-space match and the filter disagree: refuse.
        Action::KillProcess | Action::KillThread | Action::Trap => {
            Outcome::new(Verdict::Denied, Response::Errno(libc::EPERM))
        }
        Action::Notify(_) => Outcome::new(
            Verdict::Denied,
            Response::Errno(if known { libc::EPERM } else { libc::ENOSYS }),
        ),
    }
}
