//! Events the runtime reports outside any job: Python ready (with its start-up timings),
//! the LM client stack warm, the pool growing or shrinking, trace lines. Whoever subscribes
//! a [`Sink`] gets them; the NIF forwards them to an Elixir process, which turns them into
//! `:telemetry` events and Logger lines.
//!
//! Emitting never blocks and never waits for the subscriber, so a Python worker or a
//! traced thread can emit at any time: events go into a bounded queue (dropped, and
//! counted, when it is full), and the subscriber is woken only when the queue goes from
//! idle to non-empty; it then [`take`]s what waits. One wake-up per batch, however many
//! events, and nothing is sent to a subscriber that has not taken the last batch yet.
//! Events emitted before anyone subscribes wait in the queue for the first subscriber.
//!
//! Times are float milliseconds, the protocol's one time unit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

/// Events that may wait for the subscriber; more are dropped and counted.
pub const CAPACITY: usize = 1024;

/// What the runtime reports outside any job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Python is ready: the interpreter is up and DSPy imported.
    Ready(Ready),
    /// The LM client stack (litellm) was imported in the background; `error` if it failed.
    Warm { millis: f64, error: Option<String> },
    /// The pool added `added` workers while calls waited; `alive` now.
    PoolGrew { added: usize, alive: usize },
    /// An idle extra worker retired; `alive` now.
    PoolShrank { alive: usize },
    /// A line of the optional trace (`DSPEX_TRACE`), formatted.
    Trace {
        level: Level,
        target: String,
        message: String,
    },
}

/// Start-up, from `start` to ready, in milliseconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ready {
    pub total_ms: f64,
    /// Initialising CPython in the venv.
    pub init_ms: f64,
    /// Importing `dspex_bridge`, and with it DSPy.
    pub import_ms: f64,
    pub python_version: String,
    pub dspy_version: String,
    /// The venv's prefix (`sys.prefix`).
    pub venv: String,
}

/// A trace line's level, named as Logger names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Where events go: told when some wait, it must not block.
pub trait Sink: Send + Sync {
    /// Events wait: the subscriber should [`take`] them. False if the subscriber is gone
    /// (the events then wait for the next one).
    fn wake(&self) -> bool;
}

/// What [`take`] found: the events, how many were dropped (queue full) since last time,
/// and whether more wait (take again: a wake-up from a BEAM thread cannot be sent).
#[derive(Debug, Default, PartialEq)]
pub struct Taken {
    pub events: Vec<Event>,
    pub dropped: u64,
    pub more: bool,
}

pub(crate) struct Queue {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    dropped: AtomicU64,
    /// The subscriber was woken and has not taken since: no need to wake it again.
    rung: AtomicBool,
    sink: Mutex<Option<Arc<dyn Sink>>>,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        let (tx, rx) = bounded(capacity);
        Queue {
            tx,
            rx,
            dropped: AtomicU64::new(0),
            rung: AtomicBool::new(false),
            sink: Mutex::new(None),
        }
    }

    pub(crate) fn emit(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.ring();
    }

    /// Wakes the subscriber unless it was woken already and has not taken since.
    fn ring(&self) {
        if self.rung.swap(true, Ordering::AcqRel) {
            return;
        }
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Nobody (alive) to wake: the next subscriber is.
        if !sink.is_some_and(|s| s.wake()) {
            self.rung.store(false, Ordering::Release);
        }
    }

    /// Whether events wait (the subscriber was woken for them, if it could be).
    pub(crate) fn subscribe(&self, sink: Arc<dyn Sink>) -> bool {
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        self.rung.store(false, Ordering::Release);
        let waiting = !self.rx.is_empty() || self.dropped.load(Ordering::Relaxed) > 0;
        if waiting {
            self.ring();
        }
        waiting
    }

    pub(crate) fn take(&self, max: usize) -> Taken {
        // Cleared before draining: an event emitted after the drain wakes the subscriber
        // again, one emitted before it is in this batch.
        self.rung.store(false, Ordering::Release);
        let events: Vec<Event> = self.rx.try_iter().take(max).collect();
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let more = !self.rx.is_empty();
        if more {
            // More than `max` waited: come back for the rest.
            self.ring();
        }
        Taken {
            events,
            dropped,
            more,
        }
    }
}

static QUEUE: LazyLock<Queue> = LazyLock::new(|| Queue::new(CAPACITY));

/// Whether jobs report each LM call to their caller (set by the subscriber; see
/// `dspex_bridge.observe`).
static LM_CALLS: AtomicBool = AtomicBool::new(false);

/// Reports `event` to the subscriber; never blocks.
pub fn emit(event: Event) {
    QUEUE.emit(event);
}

/// Makes `sink` the subscriber (replacing any other), woken at once if events wait;
/// returns whether some do.
pub fn subscribe(sink: Arc<dyn Sink>) -> bool {
    QUEUE.subscribe(sink)
}

/// Takes up to `max` waiting events, oldest first, and the count of those dropped.
pub fn take(max: usize) -> Taken {
    QUEUE.take(max)
}

/// Whether a job reports each of its LM calls to its caller (model, tokens, cost).
pub fn report_lm_calls(on: bool) {
    LM_CALLS.store(on, Ordering::Relaxed);
}

pub(crate) fn lm_calls_reported() -> bool {
    LM_CALLS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counting {
        wakes: AtomicUsize,
        alive: bool,
    }

    impl Sink for Counting {
        fn wake(&self) -> bool {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.alive
        }
    }

    fn sink(alive: bool) -> Arc<Counting> {
        Arc::new(Counting {
            wakes: AtomicUsize::new(0),
            alive,
        })
    }

    fn warm(n: usize) -> Event {
        Event::Warm {
            millis: n as f64,
            error: None,
        }
    }

    #[test]
    fn one_wake_per_batch_until_taken() {
        let queue = Queue::new(8);
        let s = sink(true);
        queue.subscribe(s.clone());
        assert_eq!(s.wakes.load(Ordering::SeqCst), 0, "nothing waits yet");
        for n in 0..3 {
            queue.emit(warm(n));
        }
        assert_eq!(s.wakes.load(Ordering::SeqCst), 1);
        let taken = queue.take(100);
        assert_eq!(taken.events, vec![warm(0), warm(1), warm(2)]);
        assert_eq!(taken.dropped, 0);
        queue.emit(warm(3));
        assert_eq!(s.wakes.load(Ordering::SeqCst), 2, "taken, so woken again");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let queue = Queue::new(2);
        let s = sink(true);
        queue.subscribe(s.clone());
        for n in 0..5 {
            queue.emit(warm(n));
        }
        let taken = queue.take(100);
        assert_eq!(taken.events, vec![warm(0), warm(1)]);
        assert_eq!(taken.dropped, 3);
        assert_eq!(queue.take(100), Taken::default(), "counted once");
    }

    #[test]
    fn events_wait_for_the_first_subscriber() {
        let queue = Queue::new(8);
        let s = sink(true);
        assert!(!Queue::new(8).subscribe(s.clone()), "nothing waits");
        queue.emit(warm(1));
        assert!(queue.subscribe(s.clone()));
        assert_eq!(s.wakes.load(Ordering::SeqCst), 1, "woken as it subscribes");
        assert_eq!(queue.take(100).events, vec![warm(1)]);
    }

    #[test]
    fn a_subscriber_that_is_gone_leaves_the_events_to_the_next() {
        let queue = Queue::new(8);
        let gone = sink(false);
        queue.subscribe(gone.clone());
        queue.emit(warm(1));
        queue.emit(warm(2));
        assert_eq!(
            gone.wakes.load(Ordering::SeqCst),
            2,
            "tried again: nobody took"
        );
        let next = sink(true);
        queue.subscribe(next.clone());
        assert_eq!(next.wakes.load(Ordering::SeqCst), 1);
        assert_eq!(queue.take(100).events.len(), 2);
    }

    #[test]
    fn a_batch_larger_than_max_wakes_for_the_rest() {
        let queue = Queue::new(8);
        let s = sink(true);
        queue.subscribe(s.clone());
        for n in 0..5 {
            queue.emit(warm(n));
        }
        let first = queue.take(2);
        assert_eq!((first.events.len(), first.more), (2, true));
        assert_eq!(s.wakes.load(Ordering::SeqCst), 2, "woken for the other 3");
        assert_eq!(queue.take(10).events.len(), 3);
    }

    #[test]
    fn emitting_from_many_threads_loses_nothing_that_fits() {
        let queue = Arc::new(Queue::new(CAPACITY));
        let s = sink(true);
        queue.subscribe(s.clone());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let queue = queue.clone();
                std::thread::spawn(move || (0..100).for_each(|n| queue.emit(warm(t * 100 + n))))
            })
            .collect();
        let mut seen = 0;
        while seen < 800 {
            seen += queue.take(64).events.len();
            if threads.iter().all(|t| t.is_finished()) && queue.rx.is_empty() {
                break;
            }
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
        seen += queue.take(CAPACITY).events.len();
        assert_eq!(seen, 800);
    }
}
