//! The runtime's configuration from the map `DSPex.Native.Application` passes to `start/1`
//! (values may come from the environment as text).

use std::path::PathBuf;

use dspex_runtime::{Config, Error, Value};

pub(crate) fn from_value(value: &Value) -> Result<Config, Error> {
    let mut config = Config::default();
    // Integers may come from the environment as text ("8").
    let positive = |key: &str| match value.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Int(n)) if *n > 0 => Ok(Some(*n as usize)),
        Some(Value::Str(s)) if s.trim().parse::<usize>().is_ok_and(|n| n > 0) => {
            Ok(s.trim().parse().ok())
        }
        Some(other) => Err(Error::invalid_argument(format!(
            "config {key} must be a positive integer, got {}",
            match other {
                Value::Str(s) => format!("{s:?}"),
                other => other.describe(64),
            }
        ))),
    };
    let text = |key: &str| match value.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid_argument(format!(
            "config {key} must be a string, got {}",
            other.describe(64)
        ))),
    };
    let flag = |key: &str, default: bool| match value.get(key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    };
    if let Some(n) = positive("workers")? {
        config.workers = n;
    }
    if let Some(n) = positive("max_workers")? {
        config.max_workers = n;
    }
    if let Some(n) = positive("queue_size")? {
        config.queue_size = n;
    }
    if let Some(n) = positive("history_size")? {
        config.history_size = n;
    }
    config.python = text("python")?.map(PathBuf::from);
    config.trace = text("trace")?;
    if let Some(path) = text("bridge_path")? {
        config.bridge_path = PathBuf::from(path);
    }
    match value.get("importable") {
        None | Some(Value::Nil) => {}
        Some(Value::List(roots)) => {
            config.importable = roots
                .iter()
                .map(|root| match root {
                    Value::Str(s) | Value::Atom(s) => Ok(s.clone()),
                    other => Err(Error::invalid_argument(format!(
                        "config importable must be a list of module names, got {}",
                        other.describe(64)
                    ))),
                })
                .collect::<Result<_, _>>()?;
        }
        Some(other) => {
            return Err(Error::invalid_argument(format!(
                "config importable must be a list of module names, got {}",
                other.describe(64)
            )))
        }
    }
    config.warm = flag("warm", config.warm);
    config.test_hooks = flag("test_hooks", false);
    Ok(config)
}
