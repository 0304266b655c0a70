//! The daemon's live session (`auditor tui`): how far each container's learning is, read once a
//! second by a thread of its own through a second handle on the pinned maps, so that the
//! daemon's loop never waits for it. Counters are cheap (a few lookups per container); the
//! distinct-syscall count costs one lookup per possible syscall, so it is read only for a
//! container whose calls changed, and every ten seconds at most while nobody watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditor_common::counters;

use crate::bpf::Observer;
use crate::session::protocol::{ContainerLearning, Learning};
use crate::session::publisher::Event;
use crate::session::SessionSender;

/// How long a container that ended stays on the list.
const ENDED_KEPT: Duration = Duration::from_secs(60);
/// The growth history: one sample per this, this many of them.
const GROWTH_STEP: Duration = Duration::from_secs(10);
const GROWTH_SAMPLES: usize = 18;
/// While nobody watches, the distinct count is refreshed at most this often.
const UNWATCHED_SCAN: Duration = Duration::from_secs(10);

/// Who a tracked container is, as the loop tells the reader.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub id: String,
    pub name: Option<String>,
    pub engine: Option<String>,
    pub runtime: Option<String>,
    pub image: Option<String>,
    pub started_at: String,
    pub output: String,
}

/// The loop's containers: those tracked by group, and the ids of those that ended.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub tracked: BTreeMap<u32, Meta>,
    pub ended: Vec<String>,
}

pub type Shared = Arc<Mutex<Registry>>;

/// What the reader knows of one container.
struct Seen {
    meta: Meta,
    calls: u64,
    distinct: u64,
    failures: u64,
    lost: u64,
    /// The calls at the last distinct count.
    scanned_calls: u64,
    scanned: Option<Instant>,
    last_new: Instant,
    /// (when, distinct) every [`GROWTH_STEP`], oldest first.
    samples: VecDeque<(Instant, u64)>,
    ended: Option<Instant>,
}

impl Seen {
    fn row(&self, now: Instant) -> ContainerLearning {
        let minute_ago = self
            .samples
            .iter()
            .find(|(t, _)| now.duration_since(*t) <= Duration::from_secs(60))
            .map_or(0, |&(_, d)| d);
        let mut growth: Vec<u64> = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| b.1.saturating_sub(a.1))
            .collect();
        if let Some(&(_, last)) = self.samples.back() {
            growth.push(self.distinct.saturating_sub(last));
        }
        ContainerLearning {
            id: self.meta.id.clone(),
            name: self.meta.name.clone(),
            engine: self.meta.engine.clone(),
            runtime: self.meta.runtime.clone(),
            image: self.meta.image.clone(),
            started_at: self.meta.started_at.clone(),
            calls: self.calls,
            distinct: self.distinct,
            failures: self.failures,
            lost: self.lost,
            new_last_minute: self.distinct.saturating_sub(minute_ago),
            stable_s: now.duration_since(self.last_new).as_secs(),
            growth,
            ended: self.ended.is_some(),
            output: self.meta.output.clone(),
        }
    }
}

/// The reader thread; stops when `stop` is set.
pub fn spawn(
    pins: PathBuf,
    shared: Shared,
    sender: SessionSender,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("auditor-live".into())
        .spawn(move || {
            let observer = match Observer::adopt(&pins) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "live session: cannot open the pinned maps; the TUI shows no progress");
                    return;
                }
            };
            let mut seen: HashMap<String, Seen> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let watched = sender.has_clients();
                let registry = shared.lock().map(|r| r.clone()).unwrap_or_default();
                let learning = sample(&observer, &registry, &mut seen, watched, Instant::now());
                if watched {
                    sender.send(Event::Learning(learning));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
}

/// Read every tracked container's counts into `seen`; the rows to show.
fn sample(
    observer: &Observer,
    registry: &Registry,
    seen: &mut HashMap<String, Seen>,
    watched: bool,
    now: Instant,
) -> Learning {
    let failures = if watched {
        observer.failures_by_group().unwrap_or_default()
    } else {
        HashMap::new()
    };
    for (&group, meta) in &registry.tracked {
        let s = seen.entry(meta.id.clone()).or_insert_with(|| Seen {
            meta: meta.clone(),
            calls: 0,
            distinct: 0,
            failures: 0,
            lost: 0,
            scanned_calls: 0,
            scanned: None,
            last_new: now,
            samples: VecDeque::new(),
            ended: None,
        });
        s.meta = meta.clone();
        let Ok(c) = observer.counters_of(group) else {
            continue;
        };
        s.calls = c[counters::SYSCALLS as usize];
        s.lost = crate::observe::build::LOSS_COUNTERS
            .iter()
            .map(|&i| c[i as usize])
            .sum();
        if let Some(&f) = failures.get(&group) {
            s.failures = f;
        }
        let due = watched
            || s.scanned
                .is_none_or(|t| now.duration_since(t) >= UNWATCHED_SCAN);
        if s.calls != s.scanned_calls && due {
            if let Ok(d) = observer.distinct_syscalls_in(group) {
                if d as u64 > s.distinct {
                    s.last_new = now;
                }
                s.distinct = d as u64;
                s.scanned = Some(now);
                s.scanned_calls = s.calls;
            }
        }
        if s.samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= GROWTH_STEP)
        {
            if s.samples.len() == GROWTH_SAMPLES {
                s.samples.pop_front();
            }
            s.samples.push_back((now, s.distinct));
        }
    }
    for id in &registry.ended {
        if let Some(s) = seen.get_mut(id) {
            s.ended.get_or_insert(now);
        }
    }
    // Those no longer tracked and not said to have ended (refused, or dropped) go at once.
    seen.retain(|id, s| {
        let tracked = registry.tracked.values().any(|m| &m.id == id);
        match s.ended {
            Some(t) => !tracked || now.duration_since(t) < ENDED_KEPT,
            None => tracked,
        }
    });
    let mut containers: Vec<ContainerLearning> = seen.values().map(|s| s.row(now)).collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    Learning { containers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(distinct: u64, samples: &[(u64, u64)], now: Instant) -> Seen {
        Seen {
            meta: Meta {
                id: "c1".into(),
                ..Default::default()
            },
            calls: 10,
            distinct,
            failures: 0,
            lost: 0,
            scanned_calls: 10,
            scanned: Some(now),
            last_new: now - Duration::from_secs(75),
            samples: samples
                .iter()
                .map(|&(ago, d)| (now - Duration::from_secs(ago), d))
                .collect(),
            ended: None,
        }
    }

    #[test]
    fn a_row_says_growth_and_how_long_nothing_new_appeared() {
        let now = Instant::now();
        let r = seen(12, &[(90, 3), (80, 5), (50, 9), (10, 12)], now).row(now);
        assert_eq!(r.growth, vec![2, 4, 3, 0]);
        // 60 s ago the first sample within the minute said 9.
        assert_eq!(r.new_last_minute, 3);
        assert_eq!(r.stable_s, 75);
        assert!(!r.ended);
        let r = seen(4, &[], now).row(now);
        assert!(r.growth.is_empty());
        assert_eq!(r.new_last_minute, 4);
    }
}
