//! Scheduling: the worker threads, how they take jobs and releases, and the pool's elastic
//! growth.
//!
//! Workers take releases first, so a release never waits behind executions. An idle worker
//! polls the queue briefly before sleeping, and a worker takes jobs only while it holds the
//! GIL, running them back to back. When jobs stall with every worker busy (LM calls waiting
//! on HTTP with the GIL released), the control thread calls [`grow_if_stalled`]; workers
//! beyond the minimum retire after a while without work.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::select;
use pyo3::prelude::*;

use crate::bridge;
use crate::error::Error;
use crate::events::{self, Event};
use crate::gate::{millis, Timing};
use crate::job::Job;
use crate::pool::{Pool, Status};
use crate::releases::Release;
use crate::thread_state::KeptThreadState;

/// How long an idle worker polls for the next job before sleeping.
const SPIN: Duration = Duration::from_micros(200);

/// How long jobs may wait with every worker busy and none taken before the pool grows.
pub const GROW_AFTER: Duration = Duration::from_millis(2);

/// How long a worker keeps running queued jobs under one GIL hold: Python's own switch
/// interval, after which a thread waiting for the GIL asks for it anyway.
const BATCH: Duration = Duration::from_millis(5);

/// The most workers added at one check.
const GROW_STEP: usize = 8;

/// How long a worker beyond the minimum stays idle before it retires.
const RETIRE_AFTER: Duration = Duration::from_secs(10);

/// Starts the workers kept ready.
pub fn spawn_all(pool: &'static Pool) {
    for _ in 0..pool.workers {
        spawn(pool);
    }
}

/// Starts one worker; false if the thread could not be started.
fn spawn(pool: &'static Pool) -> bool {
    let n = pool.next_worker.fetch_add(1, Ordering::Relaxed);
    // Counted before the thread runs, so a burst of growth cannot overshoot.
    pool.workers_alive.fetch_add(1, Ordering::AcqRel);
    // A new worker is not idle until its thread runs: the stall clock starts now, or jobs
    // queued while Python boots (`await_ready`'s ping) grew the pool the moment it started.
    pool.last_dequeue
        .store(pool.epoch.elapsed().as_nanos() as u64, Ordering::Release);
    let spawned = std::thread::Builder::new()
        .name(format!("dspex-worker-{n}"))
        .spawn(move || serve(pool, n));
    if let Err(e) = spawned {
        pool.workers_alive.fetch_sub(1, Ordering::AcqRel);
        tracing::error!(error = %e, "could not start a worker thread");
        return false;
    }
    true
}

/// Grows the pool when jobs wait, no worker is idle and none has taken a job for a
/// while: the workers are blocked in long calls (LM calls wait on HTTP with the GIL
/// released), so another thread means another call in flight. Work that keeps the
/// queue moving (short GIL-bound jobs) does not grow the pool: more threads would only
/// fight over the GIL.
pub fn grow_if_stalled(pool: &'static Pool) {
    let now = pool.epoch.elapsed().as_nanos() as u64;
    let stalled = now.saturating_sub(pool.last_dequeue.load(Ordering::Acquire))
        > GROW_AFTER.as_nanos() as u64;
    let waiting = pool.jobs.len();
    if waiting == 0 || !stalled || pool.workers_idle.load(Ordering::Acquire) > 0 {
        return;
    }
    let room = pool.max_workers
        - pool
            .workers_alive
            .load(Ordering::Acquire)
            .min(pool.max_workers);
    let added = (0..waiting.min(room).min(GROW_STEP))
        .filter(|_| spawn(pool))
        .count();
    if added > 0 {
        events::emit(Event::PoolGrew {
            added,
            alive: pool.workers_alive.load(Ordering::Acquire),
        });
    }
}

fn serve(pool: &'static Pool, n: usize) {
    // Counts this worker out however it ends (retiring, or a panic that escaped).
    let mut alive = Alive {
        count: &pool.workers_alive,
        counted: true,
    };
    // Python never started: nothing to keep (queued jobs are answered :not_started).
    let kept = pool.engine.get().map(|_| KeptThreadState::keep());
    tracing::debug!(worker = n, "worker started");
    // Workers beyond the minimum retire after a while without work.
    let extra = n >= pool.workers;
    let releases = pool.releases.receiver();
    // Counted as polling since it delivered its last answer (see `run_jobs`).
    let mut polling = false;
    // Whether to poll before sleeping: not after a wake-up that found nothing to do.
    let mut poll = true;
    loop {
        // Releases first: freeing memory must not wait behind executions.
        if let Ok(object) = releases.try_recv() {
            if std::mem::take(&mut polling) {
                pool.jobs.stop_polling();
            }
            release(pool, object);
            continue;
        }
        pool.workers_idle.fetch_add(1, Ordering::AcqRel);
        if std::mem::replace(&mut poll, true) && poll_for_jobs(pool, polling) {
            pool.workers_idle.fetch_sub(1, Ordering::AcqRel);
            polling = run_jobs(pool, true);
            continue;
        }
        polling = false;
        let timeout = if extra {
            RETIRE_AFTER
        } else {
            Duration::from_secs(3600)
        };
        let mut retire = false;
        select! {
            recv(releases) -> msg => {
                pool.workers_idle.fetch_sub(1, Ordering::AcqRel);
                if let Ok(object) = msg { release(pool, object) }
            }
            recv(pool.jobs.bell()) -> _ => {
                pool.workers_idle.fetch_sub(1, Ordering::AcqRel);
                if pool.jobs.unserved() {
                    polling = run_jobs(pool, false);
                } else {
                    // A poller counted on takes the job. Back to sleep without polling:
                    // the newest poller takes over from the older, and this one would
                    // take the caller's next job from the worker whose caches it warmed.
                    poll = false;
                }
            }
            default(timeout) => {
                pool.workers_idle.fetch_sub(1, Ordering::AcqRel);
                if let Some(left) = extra.then(|| retire_one(pool)).flatten() {
                    alive.counted = false;
                    retire = true;
                    events::emit(Event::PoolShrank { alive: left });
                }
            }
        }
        if retire {
            break;
        }
    }
    tracing::debug!(worker = n, "worker retired");
    drop(kept);
}

fn release(pool: &Pool, object: Release) {
    let release = pool.engine.get().map(|engine| &engine.release);
    pool.releases.run(release, object);
}

/// Lets an idle extra worker go, never below the minimum: the workers left, if it may.
fn retire_one(pool: &Pool) -> Option<usize> {
    pool.workers_alive
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
            (live > pool.workers).then(|| live - 1)
        })
        .ok()
        .map(|live| live - 1)
}

/// One idle worker at a time polls the queue for a short while before sleeping: a
/// caller making calls back to back then finds a worker awake instead of paying for a
/// thread wake-up (several microseconds) on every call. The newest idle worker polls and
/// an older poller stops: the worker that just ran the caller's last job runs its next
/// one, on caches that job left warm (two workers taking turns: Predict ~290 µs, not ~250).
/// Bounded, yielding the core on each turn, and never more than one polling thread, so
/// an idle pool costs no CPU.
///
/// `counted`: the worker already counts as polling. True when jobs wait: the worker is then
/// still counted as polling (no job rings for it) until [`run_jobs`] has taken the first.
/// False when it may sleep (it has stopped polling, and any job pushed meanwhile rang).
fn poll_for_jobs(pool: &Pool, counted: bool) -> bool {
    let ticket = pool.poll_ticket.fetch_add(1, Ordering::AcqRel) + 1;
    let deadline = Instant::now() + SPIN;
    if !counted {
        pool.jobs.start_polling();
    }
    while Instant::now() < deadline && pool.poll_ticket.load(Ordering::Acquire) == ticket {
        if !pool.jobs.is_empty() {
            return true;
        }
        if !pool.releases.is_empty() {
            break;
        }
        // Yield rather than burn the core: on a 2-core machine the thread that would
        // submit the next job (a BEAM scheduler) or a job's own Python may need it.
        std::thread::yield_now();
    }
    pool.jobs.stop_polling();
    false
}

/// Takes queued jobs and runs them, one after another under one GIL hold, for up to
/// [`BATCH`]. A job is taken only once the GIL is held: a worker that took one and then
/// waited for the GIL would make every job a GIL hand-off between threads (a thread
/// wake-up, cold caches), where the holder could have run it at once. While the holder
/// runs a job that releases the GIL (an LM call waiting on HTTP), a waiting worker gets
/// the GIL and takes the next job. Finds nothing when another worker took it first.
///
/// `polling`: the worker is still counted as polling (see [`poll_for_jobs`]), until its first
/// take. It counts as polling again from just before it delivers an answer: the caller's next
/// job, pushed the moment the answer arrives, must not ring for a sleeper (which would then
/// run it on cold caches) while this worker is on its way back to the queue. Returns whether
/// it still counts as polling.
fn run_jobs(pool: &Pool, polling: bool) -> bool {
    let Some(engine) = pool.engine.get() else {
        let first = pool.jobs.take();
        if polling {
            pool.jobs.stop_polling();
        }
        for job in first
            .into_iter()
            .chain(std::iter::from_fn(|| pool.jobs.take()))
        {
            refuse(pool, job);
        }
        return false;
    };
    let polling = Cell::new(polling);
    let stop_polling = || {
        if polling.replace(false) {
            pool.jobs.stop_polling();
        }
    };
    Python::attach(|py| {
        let batch = Instant::now();
        let mut next = pool.jobs.take();
        stop_polling();
        while let Some(job) = next.take() {
            pool.last_dequeue
                .store(pool.epoch.elapsed().as_nanos() as u64, Ordering::Release);
            let answering = || {
                pool.jobs.start_polling();
                polling.set(true);
            };
            if bridge::run_job(py, engine, job, answering) {
                pool.jobs_done.fetch_add(1, Ordering::Relaxed);
            }
            if batch.elapsed() >= BATCH || !pool.releases.is_empty() {
                break;
            }
            next = pool.jobs.take();
            if next.is_some() {
                stop_polling();
            }
        }
    });
    polling.get()
}

/// Answers a job when Python never started.
fn refuse(pool: &Pool, job: Job) {
    let why = match pool.status() {
        Status::Failed(why) => why,
        _ => "the runtime is not ready".to_owned(),
    };
    let Job {
        gate,
        deliver,
        enqueued,
        ..
    } = job;
    if gate.start() {
        let timing = Timing {
            queue_ms: millis(enqueued.elapsed()),
            python_ms: 0.0,
        };
        gate.deliver(deliver, Err(Error::not_started(why)), timing);
    }
}

/// Decrements the live-worker count when a worker ends, unless `retire_one` already did.
struct Alive<'a> {
    count: &'a AtomicUsize,
    counted: bool,
}

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
