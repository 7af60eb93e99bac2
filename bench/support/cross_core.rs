// The host's cross-core round trip: two threads, pinned to CPUs 0 and 1, pass one counter
// back and forth through a shared atomic, each spinning until it is its turn. On a virtual
// machine this moves with where the hypervisor puts the two vCPUs (measured on this
// project's machine kind: ~80 ns, and ~360 ns in episodes of tens of seconds), and every
// figure whose calls cross threads in a few microseconds moves with it.
//
// Built by the bench with `rustc -O` (no crates). Reads a line per sample from stdin and
// answers with the fastest of three batches of 10,000 round trips, in ns ("error ..." when
// the threads cannot be pinned, e.g. on one CPU). Between samples both threads block.
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

extern "C" {
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
}

fn pin(cpu: usize) -> bool {
    let mut mask = [0u64; 16];
    mask[cpu / 64] |= 1 << (cpu % 64);
    unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) == 0 }
}

static TURN: AtomicU64 = AtomicU64::new(0);
const WARM: u64 = 1_000;
const BATCH: u64 = 10_000;
const BATCHES: u64 = 3;

fn wait_for(v: u64) {
    while TURN.load(Ordering::Acquire) != v {
        std::hint::spin_loop();
    }
}

fn main() {
    let (tx, rx) = mpsc::channel::<u64>();
    let (ready_tx, ready_rx) = mpsc::channel::<bool>();
    std::thread::spawn(move || {
        let _ = ready_tx.send(pin(1));
        // The partner answers odd turns with the next even one.
        let mut v = 0;
        while let Ok(n) = rx.recv() {
            for _ in 0..n {
                wait_for(v + 1);
                TURN.store(v + 2, Ordering::Release);
                v += 2;
            }
        }
    });
    let pinned = pin(0) && ready_rx.recv().unwrap_or(false);
    let mut out = std::io::stdout().lock();
    let mut v = 0;
    let mut trips = |n: u64| {
        for _ in 0..n {
            TURN.store(v + 1, Ordering::Release);
            wait_for(v + 2);
            v += 2;
        }
    };
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        if !pinned {
            let _ = writeln!(out, "error: cannot pin threads to CPUs 0 and 1");
            let _ = out.flush();
            continue;
        }
        let _ = tx.send(WARM + BATCH * BATCHES);
        trips(WARM);
        let best = (0..BATCHES)
            .map(|_| {
                let t = Instant::now();
                trips(BATCH);
                t.elapsed().as_nanos() as f64 / BATCH as f64
            })
            .fold(f64::INFINITY, f64::min);
        let _ = writeln!(out, "{best:.1}");
        let _ = out.flush();
    }
}
