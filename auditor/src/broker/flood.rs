//! A listener that floods its broker thread is served from idle CPU time (the agents' brokers,
//! see [`super::Broker::with_flood_yield`]).
//!
//! The CPU a broker thread spends on a container's notifications is auditor's, not the
//! container's: it escapes the container's CPU limits, and a container calling notified
//! syscalls back to back keeps a CPU busy on its behalf. While a listener notifies faster than
//! its rate ([`DEFAULT_FLOOD_RATE`] unless the agent is told otherwise), its broker thread
//! runs `SCHED_IDLE` (see [`super::sys::Policy`]): it still answers every call, as fast as an
//! idle CPU allows, but any other thread that wants a CPU — another container's broker thread,
//! another container, the host — runs first, and a CPU that runs only it counts as idle when
//! the scheduler places a woken thread. Measured
//! (`cargo xtask bench-fleet`, noisy neighbour): a quiet container's p99 beside a flooding one
//! falls by about a third. Once a window's rate falls below half of it, the thread's own policy
//! comes back.
//!
//! The decision is pure (this module); [`super::sys`] applies it.

use std::time::{Duration, Instant};

/// How long the rate is measured over before it is judged.
pub(super) const WINDOW: Duration = Duration::from_millis(100);
/// Notifications per second above which a listener floods, unless the agent is told otherwise
/// (a busy service makes a few thousand notified calls a second at most; a tight loop makes
/// hundreds of thousands).
pub const DEFAULT_FLOOD_RATE: u64 = 20_000;

/// The rate of one listener's notifications, window by window.
#[derive(Debug)]
pub(super) struct Flood {
    rate: u64,
    since: Instant,
    calls: u64,
    flooding: bool,
}

impl Flood {
    /// Flooding above `rate` notifications a second (0: never).
    pub(super) fn new(now: Instant, rate: u64) -> Flood {
        Flood {
            rate,
            since: now,
            calls: 0,
            flooding: false,
        }
    }

    /// Count a notification received at `now`. `Some(flooding)` when the listener starts
    /// (`true`) or stops (`false`) flooding: at the end of a window (the first call at least
    /// [`WINDOW`] after its start, so a window that includes a quiet spell counts it), above
    /// the rate to start, below half of it to stop. Never with a rate of 0.
    pub(super) fn note(&mut self, now: Instant) -> Option<bool> {
        if self.rate == 0 {
            return None;
        }
        self.calls += 1;
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < WINDOW {
            return None;
        }
        let per_sec_x_elapsed = u128::from(self.calls) * 1_000_000_000;
        let limit = if self.flooding {
            self.rate / 2
        } else {
            self.rate
        };
        let flooding = per_sec_x_elapsed > u128::from(limit) * elapsed.as_nanos();
        self.since = now;
        self.calls = 0;
        (flooding != self.flooding).then(|| {
            self.flooding = flooding;
            flooding
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `calls` notifications evenly over `over`, from `t`; the changes seen, and the end.
    fn feed(f: &mut Flood, t: Instant, calls: u64, over: Duration) -> (Vec<bool>, Instant) {
        let step = over / u32::try_from(calls).expect("calls");
        let mut changes = Vec::new();
        let mut now = t;
        for _ in 0..calls {
            now += step;
            changes.extend(f.note(now));
        }
        (changes, now)
    }

    #[test]
    fn a_flood_is_seen_after_a_window_and_its_end_after_another() {
        let t = Instant::now();
        let mut f = Flood::new(t, DEFAULT_FLOOD_RATE);
        // 5 000/s for a second: never a flood.
        let (c, t) = feed(&mut f, t, 5_000, Duration::from_secs(1));
        assert_eq!(c, Vec::<bool>::new());
        // 250 000/s: a flood from the first whole window on, said once.
        let (c, t) = feed(&mut f, t, 100_000, Duration::from_millis(400));
        assert_eq!(c, vec![true]);
        // 15 000/s: above half the limit, still a flood (no flapping at the boundary).
        let (c, t) = feed(&mut f, t, 6_000, Duration::from_millis(400));
        assert_eq!(c, Vec::<bool>::new());
        // 1 000/s: over.
        let (c, _) = feed(&mut f, t, 400, Duration::from_millis(400));
        assert_eq!(c, vec![false]);
    }

    #[test]
    fn a_rate_of_zero_never_floods() {
        let t = Instant::now();
        let mut f = Flood::new(t, 0);
        let (c, _) = feed(&mut f, t, 100_000, Duration::from_millis(200));
        assert_eq!(c, Vec::<bool>::new());
    }

    #[test]
    fn a_quiet_spell_ends_a_flood_at_the_next_call() {
        let t = Instant::now();
        let mut f = Flood::new(t, DEFAULT_FLOOD_RATE);
        let (c, t) = feed(&mut f, t, 50_000, Duration::from_millis(200));
        assert_eq!(c, vec![true]);
        // Nothing for ten seconds, then one call: the window with the quiet spell ends it.
        assert_eq!(f.note(t + Duration::from_secs(10)), Some(false));
    }

    #[test]
    fn a_burst_shorter_than_a_window_after_a_quiet_spell_is_no_flood() {
        let t = Instant::now();
        let mut f = Flood::new(t, DEFAULT_FLOOD_RATE);
        // Quiet for a second (one call), then 1 500 calls within 50 ms, then quiet again.
        assert_eq!(f.note(t + Duration::from_secs(1)), None);
        let (c, t) = feed(
            &mut f,
            t + Duration::from_secs(1),
            1_500,
            Duration::from_millis(50),
        );
        assert_eq!(c, Vec::<bool>::new());
        assert_eq!(f.note(t + Duration::from_secs(2)), None);
    }
}
