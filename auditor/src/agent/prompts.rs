//! Interactive policies in the agent: a container whose policy's default action is `notify`
//! has the calls no rule decides held and shown as prompts on the agent's live session (as
//! `enforce --interactive` does), each naming its container; `auditor tui` answers them.
//!
//! One session serves every container, so prompt ids must not meet: each broker gets its own
//! range (`broker << 32`, see [`PromptRouter::register`]), and the router sends each answer to
//! the broker whose range holds its id. An answer for a broker that has ended, or for an id in
//! no range, is logged and dropped (its prompt is gone: answered by its timeout).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::session::Answer;

/// Bits of a prompt id that number prompts within one broker.
const LOCAL_BITS: u32 = 32;

/// Brokers numbered at most this high (ids stay below 2^53, exact in every JSON reader).
const MAX_BROKERS: u64 = (1 << (53 - LOCAL_BITS)) - 1;

/// Answers queued for one broker before more are dropped (a person answers a few a second).
const QUEUE: usize = 64;

/// LXC's proxy answers ENOSYS itself when the agent has not answered within 30 s: its prompts
/// time out before that.
pub const LXC_MAX_TIMEOUT: Duration = Duration::from_secs(25);

/// Where answers go: one route per interactive broker.
pub struct PromptRouter {
    /// How long a prompt waits (runc and crun containers; LXC's are capped, see
    /// [`LXC_MAX_TIMEOUT`]).
    pub timeout: Duration,
    next: AtomicU64,
    routes: Mutex<HashMap<u64, mpsc::Sender<Answer>>>,
    arity: OnceLock<crate::syscalls::arity::Arity>,
}

/// One broker's place in the router: its id range and its answers; dropping it (the broker
/// has ended) unregisters it.
pub struct Route {
    pub id_base: u64,
    pub answers: Option<mpsc::Receiver<Answer>>,
    broker: u64,
    router: Arc<PromptRouter>,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.router.lock().remove(&self.broker);
    }
}

impl PromptRouter {
    pub fn new(timeout: Duration) -> PromptRouter {
        PromptRouter {
            timeout,
            next: AtomicU64::new(0),
            routes: Mutex::new(HashMap::new()),
            arity: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Answer>>> {
        // Each step is one map update: a panic leaves it consistent.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new broker's route: prompt ids above `id_base`, answers on `answers` (taken by the
    /// broker; the route stays registered as long as it is kept).
    pub fn register(self: &Arc<Self>) -> Route {
        // Numbers wrap long after any broker using an old one has ended (2^21 brokers).
        let broker = self.next.fetch_add(1, Ordering::Relaxed) % MAX_BROKERS + 1;
        let (tx, answers) = mpsc::channel(QUEUE);
        self.lock().insert(broker, tx);
        Route {
            id_base: broker << LOCAL_BITS,
            answers: Some(answers),
            broker,
            router: self.clone(),
        }
    }

    /// Send a client's answer to the broker whose prompt it answers.
    pub fn route(&self, a: Answer) {
        let broker = a.id >> LOCAL_BITS;
        let tx = self.lock().get(&broker).cloned();
        match tx {
            Some(tx) => {
                let id = a.id;
                if tx.try_send(a).is_err() {
                    tracing::warn!(
                        id,
                        "agent: an answer was dropped (too many at once for one container)"
                    );
                }
            }
            None => {
                tracing::debug!(
                    id = a.id,
                    "agent: an answer for a prompt whose container is no longer served"
                )
            }
        }
    }

    /// Routes registered (brokers serving interactive policies).
    pub fn routes(&self) -> usize {
        self.lock().len()
    }

    /// Which registers each syscall takes (read from tracefs once, when the first interactive
    /// container is served); without it prompts compare all six registers.
    pub fn arity(&self) -> crate::syscalls::arity::Arity {
        self.arity
            .get_or_init(|| match crate::syscalls::arity::Arity::load() {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "agent: prompts compare all six argument registers, so calls that differ only in leftovers get prompts of their own");
                    Default::default()
                }
            })
            .clone()
    }

    /// Route every answer of `answers` (the live session's) until it closes.
    pub async fn run(self: Arc<Self>, mut answers: mpsc::Receiver<Answer>) {
        while let Some(a) = answers.recv().await {
            self.route(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Choice;

    fn answer(id: u64) -> Answer {
        Answer {
            id,
            choice: Choice::AllowOnce,
            by: "test".into(),
        }
    }

    #[test]
    fn answers_reach_the_broker_whose_range_holds_their_id() {
        let r = Arc::new(PromptRouter::new(Duration::from_secs(30)));
        let mut a = r.register();
        let mut b = r.register();
        let (mut rx_a, mut rx_b) = (a.answers.take().unwrap(), b.answers.take().unwrap());
        assert_ne!(a.id_base, b.id_base);
        assert_eq!(r.routes(), 2);
        r.route(answer(b.id_base + 1));
        r.route(answer(a.id_base + 7));
        // An id in no range (enforce's numbering, or a forged one) reaches nobody.
        r.route(answer(3));
        assert_eq!(rx_a.try_recv().map(|x| x.id).ok(), Some(a.id_base + 7));
        assert_eq!(rx_b.try_recv().map(|x| x.id).ok(), Some(b.id_base + 1));
        assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
        // A broker that ended takes no answers; the others still do.
        let base_b = b.id_base;
        drop(b);
        assert_eq!(r.routes(), 1);
        r.route(answer(base_b + 2));
        assert!(rx_b.try_recv().is_err());
        r.route(answer(a.id_base + 8));
        assert_eq!(rx_a.try_recv().map(|x| x.id).ok(), Some(a.id_base + 8));
    }

    #[test]
    fn ids_stay_exact_in_json_and_ranges_do_not_overlap() {
        let r = Arc::new(PromptRouter::new(Duration::from_secs(30)));
        r.next.store(MAX_BROKERS - 1, Ordering::Relaxed);
        let last = r.register();
        let wrapped = r.register();
        assert!(last.id_base + u64::from(u32::MAX) < 1 << 53);
        assert_eq!(wrapped.id_base, 1 << LOCAL_BITS);
    }
}
