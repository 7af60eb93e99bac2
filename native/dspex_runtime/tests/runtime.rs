//! The runtime against the real embedded Python and DSPy (DummyLM), without a BEAM.
//! One process holds one interpreter, so every test shares the pool started here.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_runtime::{Config, Error, GlobalOp, Op, Reason, SessionCell, Status, Value};

fn pool() -> &'static dspex_runtime::Pool {
    let bridge = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../priv/python");
    // The venv to run is a run-time setting: `make test-rust` passes it as DSPEX_PYTHON.
    dspex_runtime::start(Config {
        python: std::env::var_os("DSPEX_PYTHON").map(PathBuf::from),
        workers: 4,
        bridge_path: bridge,
        warm: false,
        ..Config::default()
    })
    .expect("the runtime starts")
}

fn waiter() -> (dspex_runtime::Deliver, mpsc::Receiver<Result<Value, Error>>) {
    let (tx, rx) = mpsc::channel();
    (Box::new(move |r, _| drop(tx.send(r))), rx)
}

const WAIT: Duration = Duration::from_secs(60);

fn global(op: GlobalOp, args: Value) -> Result<Value, Error> {
    pool();
    let (deliver, rx) = waiter();
    dspex_runtime::submit_global_op(op, args, deliver)?;
    rx.recv_timeout(WAIT).expect("no answer")
}

fn open(name: &str, lm: Value) -> Arc<SessionCell> {
    pool();
    let (deliver, rx) = waiter();
    let (cell, _gate) = dspex_runtime::open_session(name.into(), lm, deliver).unwrap();
    rx.recv_timeout(WAIT).expect("no answer").unwrap();
    cell
}

fn call(cell: &Arc<SessionCell>, op: &str, args: Value) -> Result<Value, Error> {
    let op = Op::from_name(op)?;
    let (deliver, rx) = waiter();
    dspex_runtime::submit_session_op(cell, op, args, deliver, None)?;
    rx.recv_timeout(WAIT).expect("no answer")
}

fn dummy(answer: &str) -> Value {
    Value::map([
        ("kind", Value::str("dummy")),
        (
            "answers",
            Value::map([("", Value::map([("answer", Value::str(answer))]))]),
        ),
    ])
}

fn create(cell: &Arc<SessionCell>, id: &str) -> Result<Value, Error> {
    call(
        cell,
        "create_program",
        Value::map([
            ("id", Value::str(id)),
            ("signature", Value::str("question -> answer")),
            ("module", Value::str("predict")),
        ]),
    )
}

fn python_counts() -> (i64, i64) {
    let stats = global(GlobalOp::Stats, Value::map([("gc", Value::Bool(true))])).unwrap();
    let get = |k| match stats.get(k) {
        Some(Value::Int(n)) => *n,
        other => panic!("{k}: {other:?}"),
    };
    (get("sessions"), get("programs"))
}

#[test]
fn ping_round_trips_every_value_kind() {
    let value = Value::map([
        ("nil", Value::Nil),
        ("bool", Value::Bool(true)),
        ("int", Value::Int(-42)),
        ("float", Value::Float(1.5)),
        ("atom", Value::Atom("ok".into())),
        ("list", Value::List(vec![Value::Int(1), Value::str("two")])),
        (
            "tuple",
            Value::Tuple(vec![Value::Atom("a".into()), Value::Nil]),
        ),
        ("unicode", Value::str("héllo ✓")),
    ]);
    assert_eq!(global(GlobalOp::Ping, value.clone()).unwrap(), value);
    assert_eq!(pool().status(), Status::Ready);
}

#[test]
fn two_sessions_same_program_id_answer_with_their_own_lm() {
    let a = open("a", dummy("from a"));
    let b = open("b", dummy("from b"));
    create(&a, "prog_1").unwrap();
    create(&b, "prog_1").unwrap();
    let inputs = Value::map([
        ("id", Value::str("prog_1")),
        ("inputs", Value::map([("question", Value::str("who?"))])),
    ]);
    let ra = call(&a, "execute", inputs.clone()).unwrap();
    let rb = call(&b, "execute", inputs).unwrap();
    assert_eq!(ra.get("answer"), Some(&Value::str("from a")));
    assert_eq!(rb.get("answer"), Some(&Value::str("from b")));
    let err = create(&a, "prog_1").unwrap_err();
    assert_eq!(err.reason, Reason::AlreadyExists);
}

#[test]
fn closing_refuses_calls_and_frees_python_objects() {
    let cell = open("closing", dummy("x"));
    create(&cell, "p").unwrap();
    cell.close();
    let err = create(&cell, "q").unwrap_err();
    assert_eq!(err.reason, Reason::Closed);
    assert!(err.message.contains("closing"), "{}", err.message);
}

#[test]
fn dropped_sessions_are_released_by_the_pool() {
    // Other tests run in parallel: count only what this test's sessions add.
    let cells: Vec<_> = (0..20)
        .map(|i| open(&format!("gc{i}"), dummy("x")))
        .collect();
    for c in &cells {
        create(c, "p").unwrap();
    }
    let before = pool().stats().releases_done;
    drop(cells);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool().stats().releases_done < before + 20 {
        assert!(Instant::now() < deadline, "releases did not run");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn python_errors_carry_type_and_traceback() {
    let cell = open("errors", Value::Nil);
    create(&cell, "p").unwrap();
    let err = call(
        &cell,
        "execute",
        Value::map([
            ("id", Value::str("p")),
            ("inputs", Value::map([("question", Value::str("q"))])),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.reason, Reason::NoLm);
    let err = call(&cell, "no_such_op", Value::map::<&str>([])).unwrap_err();
    assert_eq!(err.reason, Reason::InvalidArgument);
    let (_, programs) = python_counts();
    assert!(programs >= 1);
}

#[test]
fn big_maps_round_trip() {
    let map = Value::Map((0..5000).map(|i| (Value::Int(i), Value::Int(i))).collect());
    assert_eq!(global(GlobalOp::Ping, map.clone()).unwrap(), map);
}

/// Python that prints until its job is cancelled, then prints and calls Elixir once more
/// from `finally` (both must be stopped at the gate); `Probe` tells when that has run.
const CHATTY: &str = r#"
import dspy
from dspex_bridge import hooks

FINISHED = []

class Chatty(dspy.Module):
    def forward(self):
        try:
            while True:
                print("tick")
        finally:
            print("after the cancel")
            try:
                hooks.call_elixir({"key": "late", "args": {}}, 5.0)
            except Exception as exc:
                FINISHED.append(str(exc))

class Probe(dspy.Module):
    def forward(self):
        return dspy.Prediction(finished=list(FINISHED))
"#;

#[test]
fn after_a_cancel_nothing_more_reaches_the_caller() {
    use dspex_runtime::{Outbound, ToCaller};
    use std::sync::Mutex;

    let cell = open("gated", Value::Nil);
    let load = Value::map([
        ("name", Value::str("chatty")),
        ("source", Value::str(CHATTY)),
    ]);
    call(&cell, "load_module", load).unwrap();
    for class in ["Chatty", "Probe"] {
        let module = Value::List(vec![Value::str("custom"), Value::str(class)]);
        let args = Value::map([("id", Value::str(class)), ("module", module)]);
        call(&cell, "create_program", args).unwrap();
    }
    let execute =
        |id: &str| Value::map([("id", Value::str(id)), ("inputs", Value::Map(Vec::new()))]);

    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    let to_caller: ToCaller = Arc::new(move |o: Outbound| record.lock().unwrap().push(o));
    let (deliver, answers) = waiter();
    let gate = dspex_runtime::submit_session_op(
        &cell,
        Op::Execute,
        execute("Chatty"),
        deliver,
        Some(to_caller),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while sent.lock().unwrap().len() < 10 {
        assert!(Instant::now() < deadline, "no output arrived");
        std::thread::sleep(Duration::from_millis(1));
    }

    gate.cancel();
    pool().interrupt(gate.clone());
    let at_cancel = sent.lock().unwrap().len();

    // Wait until the job's finally block has run (it records how its call back failed).
    let finished = loop {
        let probe = call(&cell, "execute", execute("Probe")).unwrap();
        match probe.get("finished") {
            Some(Value::List(items)) if !items.is_empty() => break items.clone(),
            _ => assert!(Instant::now() < deadline, "the job never finished"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        finished,
        vec![Value::str("the call was cancelled: its caller gave up")]
    );
    let sent = sent.lock().unwrap();
    assert_eq!(
        sent.len(),
        at_cancel,
        "sent after the cancel: {:?}",
        &sent[at_cancel..]
    );
    assert!(sent
        .iter()
        .all(|o| matches!(o, Outbound::Output(v) if v.get("text") != Some(&Value::str("after the cancel")))));
    assert!(
        answers.try_recv().is_err(),
        "the answer came after the cancel"
    );
}

#[test]
fn rust_and_python_name_the_same_session_operations() {
    use pyo3::prelude::*;
    use std::collections::BTreeSet;

    global(GlobalOp::Ping, Value::Nil).unwrap(); // Python is up.
    let python: BTreeSet<String> = Python::attach(|py| -> PyResult<_> {
        let ops = py.import("dspex_bridge.session")?.getattr("OPS")?;
        ops.try_iter()?.map(|k| k?.extract::<String>()).collect()
    })
    .unwrap();
    let rust: BTreeSet<String> = Op::ALL.iter().map(|op| op.name().to_owned()).collect();
    assert_eq!(rust, python);
}

#[test]
fn rust_knows_every_reason_python_returns() {
    use pyo3::prelude::*;

    global(GlobalOp::Ping, Value::Nil).unwrap();
    let python: Vec<String> = Python::attach(|py| -> PyResult<_> {
        let reasons = py.import("dspex_bridge.errors")?.getattr("REASONS")?;
        reasons
            .try_iter()?
            .map(|k| k?.extract::<String>())
            .collect()
    })
    .unwrap();
    for name in python {
        assert_eq!(
            Reason::from_name(&name).name(),
            name,
            "{name} is not a Reason"
        );
    }
}

#[test]
fn test_hooks_are_refused_unless_enabled() {
    let err = global(GlobalOp::TestPanic, Value::Nil).unwrap_err();
    assert_eq!(err.reason, Reason::InvalidArgument);
    assert!(err.message.contains("test_panic"), "{}", err.message);
}

#[test]
fn an_answer_says_how_long_it_waited_and_ran() {
    let cell = open("timed", dummy("x"));
    create(&cell, "p").unwrap();
    let (tx, rx) = mpsc::channel();
    let deliver: dspex_runtime::Deliver = Box::new(move |r, timing| drop(tx.send((r, timing))));
    let args = Value::map([
        ("id", Value::str("p")),
        ("inputs", Value::map([("question", Value::str("?"))])),
    ]);
    let started = Instant::now();
    dspex_runtime::submit_session_op(&cell, Op::Execute, args, deliver, None).unwrap();
    let (result, timing) = rx.recv_timeout(WAIT).expect("no answer");
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    assert!(result.is_ok(), "{result:?}");
    // A DummyLM Predict costs about a millisecond of Python.
    assert!(
        timing.queue_ms >= 0.0 && timing.python_ms > 0.1,
        "{timing:?}"
    );
    assert!(
        timing.queue_ms + timing.python_ms <= elapsed,
        "{timing:?} > {elapsed} ms"
    );
}

#[test]
fn a_subscriber_gets_the_start_up_report() {
    use dspex_runtime::{Event, Sink};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl Sink for Counting {
        fn wake(&self) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            true
        }
    }

    assert_eq!(global(GlobalOp::Ping, Value::Nil), Ok(Value::Nil));
    let sink = Arc::new(Counting(AtomicUsize::new(0)));
    assert!(dspex_runtime::subscribe_events(sink.clone()), "events wait");
    assert!(sink.0.load(Ordering::SeqCst) >= 1, "woken: events waited");
    let taken = dspex_runtime::take_events(usize::MAX);
    let ready = taken
        .events
        .iter()
        .find_map(|e| match e {
            Event::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a Ready event");
    assert!(ready.python_version.starts_with("3."), "{ready:?}");
    assert!(!ready.dspy_version.is_empty(), "{ready:?}");
    assert!(
        std::path::Path::new(&ready.venv)
            .join("pyvenv.cfg")
            .exists(),
        "{ready:?}"
    );
    assert!(ready.init_ms > 0.0 && ready.import_ms > 0.0, "{ready:?}");
    assert!(
        ready.total_ms >= ready.init_ms + ready.import_ms,
        "{ready:?}"
    );
}
