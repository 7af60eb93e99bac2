//! The job queue, and when a job wakes a sleeping worker.
//!
//! A worker that just finished a job polls the queue for a short while (see
//! `workers::poll_for_jobs`); only jobs that the polling workers cannot take ring the bell
//! that sleeping workers wait on. Had sleepers waited on the queue itself, every job would wake
//! one of them even with a worker polling: the BEAM thread paid for the wake-up, the woken
//! worker often took the job, and a caller's calls spread over every worker, each starting
//! on cold caches (Predict ~260 µs on the worker instead of ~235).
//!
//! No job is left waiting with a worker asleep: a job is pushed and then the pollers are
//! counted, and a poller stops counting itself and then looks at the queue, each step
//! sequentially consistent. Whichever comes second sees the other: the pusher sees no
//! poller and rings, or the former poller finds the job.

use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::job::Job;

pub(crate) struct JobQueue {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    /// Workers polling the queue, who will see a job pushed now without being woken.
    polling: AtomicUsize,
    bell_tx: Sender<()>,
    bell_rx: Receiver<()>,
}

impl JobQueue {
    /// A queue of at most `capacity` jobs, for at most `workers` sleeping workers.
    pub(crate) fn new(capacity: usize, workers: usize) -> JobQueue {
        let (tx, rx) = bounded(capacity.max(1));
        // One ring per sleeper is enough: a ring that finds the bell full is not lost.
        let (bell_tx, bell_rx) = bounded(workers.max(1));
        JobQueue {
            tx,
            rx,
            polling: AtomicUsize::new(0),
            bell_tx,
            bell_rx,
        }
    }

    /// Queues a job (never blocks), waking a sleeping worker if no poller is free for it.
    pub(crate) fn push(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.tx.try_send(job)?;
        self.ring_if_unserved();
        Ok(())
    }

    /// The next job, if any. Taking one may leave others no poller will take: then it
    /// wakes a sleeper for them (a burst of jobs wakes workers one after another).
    pub(crate) fn take(&self) -> Option<Job> {
        let job = self.rx.try_recv().ok()?;
        self.ring_if_unserved();
        Some(job)
    }

    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The calling worker polls: jobs pushed from now on count on it.
    pub(crate) fn start_polling(&self) {
        self.polling.fetch_add(1, Ordering::SeqCst);
    }

    /// The calling worker stops polling (it took a job, or it goes to sleep). A job pushed
    /// while it polled did not ring: one it does not run now wakes a sleeper here, so it must
    /// not sleep before it has looked at the queue once more.
    pub(crate) fn stop_polling(&self) {
        self.polling.fetch_sub(1, Ordering::SeqCst);
        self.ring_if_unserved();
    }

    /// Whether jobs wait that no polling worker will take: what a woken worker checks
    /// before it competes for them.
    pub(crate) fn unserved(&self) -> bool {
        fence(Ordering::SeqCst);
        self.rx.len() > self.polling.load(Ordering::SeqCst)
    }

    /// What sleeping workers wait on.
    pub(crate) fn bell(&self) -> &Receiver<()> {
        &self.bell_rx
    }

    fn ring_if_unserved(&self) {
        if self.unserved() {
            let _ = self.bell_tx.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;
    use crate::job::Target;
    use crate::op::GlobalOp;
    use crate::value::Value;
    use std::time::Instant;

    fn job() -> Job {
        Job {
            target: Target::Global(GlobalOp::Ping),
            args: Value::Nil,
            gate: Gate::new(),
            deliver: Box::new(|_, _| {}),
            to_caller: None,
            enqueued: Instant::now(),
        }
    }

    #[test]
    fn a_job_with_no_poller_rings_and_one_a_poller_takes_does_not() {
        let q = JobQueue::new(8, 4);
        q.push(job()).unwrap();
        assert_eq!(
            q.bell().try_recv(),
            Ok(()),
            "nobody polls: a sleeper is woken"
        );
        q.take().unwrap();
        q.start_polling();
        q.push(job()).unwrap();
        assert!(!q.unserved(), "the poller will take it");
        q.take().unwrap();
        q.stop_polling();
        assert!(
            q.bell().try_recv().is_err(),
            "the poller took it: nobody was woken"
        );
    }

    #[test]
    fn jobs_beyond_the_pollers_each_wake_a_sleeper() {
        let q = JobQueue::new(8, 4);
        q.start_polling();
        for _ in 0..3 {
            q.push(job()).unwrap();
        }
        assert_eq!(
            q.bell().try_iter().count(),
            2,
            "one poller, three jobs: two rings"
        );
    }

    #[test]
    fn a_poller_that_stops_rings_for_the_jobs_it_leaves() {
        let q = JobQueue::new(8, 4);
        q.start_polling();
        q.push(job()).unwrap();
        q.push(job()).unwrap();
        assert_eq!(q.bell().try_iter().count(), 1);
        q.take().unwrap();
        q.stop_polling();
        assert_eq!(
            q.bell().try_iter().count(),
            1,
            "the second job has nobody now"
        );
        assert!(q.unserved());
    }

    #[test]
    fn the_bell_holds_at_most_one_ring_per_worker() {
        let q = JobQueue::new(64, 2);
        for _ in 0..10 {
            q.push(job()).unwrap();
        }
        assert_eq!(q.bell().try_iter().count(), 2);
    }

    #[test]
    fn racing_pushes_and_a_poller_going_to_sleep_never_strand_a_job() {
        // A pusher, and a poller that gives up and goes to sleep: either the poller's last
        // look finds the job or the job rang.
        for _ in 0..2_000 {
            let q = std::sync::Arc::new(JobQueue::new(4, 1));
            q.start_polling();
            let pusher = {
                let q = q.clone();
                std::thread::spawn(move || q.push(job()).unwrap())
            };
            q.stop_polling();
            let rang = q.bell().try_recv().is_ok();
            let found = !rang && q.take().is_some();
            pusher.join().unwrap();
            let rang = rang || q.bell().try_recv().is_ok();
            assert!(found || rang, "a job was stranded");
        }
    }
}
