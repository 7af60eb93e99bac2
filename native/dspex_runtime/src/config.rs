//! Runtime configuration, and finding the Python environment to run.
//!
//! The interpreter that runs must be the one the NIF was linked against: a venv made by
//! another Python would load C extensions built for another ABI. We check the venv's
//! `pyvenv.cfg` against the linked libpython before initialising anything.

use std::path::{Path, PathBuf};

/// What `DSPex.Native.Application` passes at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// A venv directory or a python executable; `None` fails start-up (it has no default).
    pub python: Option<PathBuf>,
    /// Python worker threads kept ready.
    pub workers: usize,
    /// The most worker threads the pool grows to while calls wait for a free worker.
    pub max_workers: usize,
    /// Jobs (of any kind) that may wait in the queue before calls get `:overloaded`.
    pub queue_size: usize,
    /// The folder holding the `dspex_bridge` package (the app's `priv/python`).
    pub bridge_path: PathBuf,
    /// A tracing filter (`"info"`, `"dspex=debug"`); `None` leaves tracing off.
    pub trace: Option<String>,
    /// Import the LM client stack (litellm) in the background once ready.
    pub warm: bool,
    /// Allow the test-only operations (`test_panic`, `test_eval`). Never in production.
    pub test_hooks: bool,
    /// LM calls each LM and program keeps in its history (DSPy's default is 10,000).
    pub history_size: usize,
    /// The roots `DSPex.Native.Py` may resolve dotted paths under.
    pub importable: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            python: None,
            workers: default_workers(),
            max_workers: 64,
            queue_size: 10_000,
            bridge_path: PathBuf::from("priv/python"),
            trace: None,
            warm: true,
            test_hooks: false,
            history_size: 100,
            importable: vec!["dspy".to_string()],
        }
    }
}

/// LM-bound calls spend most of their time waiting on HTTP with the GIL released, so the
/// pool is wider than the core count; CPU-bound Python is bounded by the GIL either way.
pub fn default_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 4).clamp(4, 32)
}

/// The environment Python will run in.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonEnv {
    /// `<venv>/bin/python`, given to PyConfig so CPython finds the venv.
    pub executable: PathBuf,
    /// The venv's directory (`sys.prefix` once running).
    pub prefix: PathBuf,
    /// `version` from `pyvenv.cfg`, when there is one.
    pub version: Option<String>,
}

/// Resolves a venv directory or python executable to a [`PythonEnv`].
pub fn resolve_python(given: &Path) -> Result<PythonEnv, String> {
    let executable = if given.is_dir() {
        given.join("bin").join("python")
    } else {
        given.to_path_buf()
    };
    if !executable.exists() {
        return Err(format!(
            "no Python environment at {} (looked for {}); create it with `mix dspex_native.setup` or set DSPEX_PYTHON",
            given.display(),
            executable.display()
        ));
    }
    let prefix = executable
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not inside a venv's bin/", executable.display()))?;
    let cfg = prefix.join("pyvenv.cfg");
    let version = std::fs::read_to_string(&cfg)
        .ok()
        .and_then(|text| pyvenv_version(&text));
    Ok(PythonEnv {
        executable,
        prefix,
        version,
    })
}

/// The `version` (or `version_info`) line of a `pyvenv.cfg`.
pub fn pyvenv_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
    })
}

/// Checks that a venv made by Python `venv_version` can run on the linked libpython,
/// whose `Py_GetVersion()` starts with `linked_version`.
pub fn check_version(venv_version: &str, linked_version: &str) -> Result<(), String> {
    let linked = linked_version.split_whitespace().next().unwrap_or("");
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    if major_minor(venv_version) == major_minor(linked) && venv_version.starts_with(linked) {
        Ok(())
    } else {
        Err(format!(
            "the environment was made by Python {venv_version}, but the NIF is linked against \
             libpython {linked}; use a venv made by that Python, or rebuild the NIF with \
             PYO3_PYTHON pointing at the Python that made the environment"
        ))
    }
}

/// Checks that dspy is installed in the venv (as a package or its dist-info, in its
/// site-packages or a folder a `.pth` file there adds), so a venv without it fails the
/// start instead of a running runtime that refuses every call.
pub fn check_dspy(env: &PythonEnv, version: &str) -> Result<(), String> {
    let major_minor: Vec<&str> = version.split('.').take(2).collect();
    let site = env
        .prefix
        .join("lib")
        .join(format!("python{}", major_minor.join(".")))
        .join("site-packages");
    if std::iter::once(site.clone())
        .chain(pth_folders(&site))
        .any(|folder| has_dspy(&folder))
    {
        Ok(())
    } else {
        Err(format!(
            "dspy is not installed in {} (no dspy in {}); install the pinned requirements \
             with `mix dspex_native.setup`",
            env.prefix.display(),
            site.display()
        ))
    }
}

fn has_dspy(folder: &Path) -> bool {
    folder.join("dspy").is_dir()
        || std::fs::read_dir(folder).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("dspy-") && name.ends_with(".dist-info")
            })
        })
}

/// The folders the `.pth` files in `site` add to `sys.path` (their lines that are paths).
fn pth_folders(site: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(site) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pth"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("import"))
                .map(|l| site.join(l))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_from_pyvenv_cfg() {
        let text = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n";
        assert_eq!(pyvenv_version(text).as_deref(), Some("3.11.7"));
        assert_eq!(
            pyvenv_version("version_info = 3.12.1.final.0").as_deref(),
            Some("3.12.1.final.0")
        );
        assert_eq!(pyvenv_version("home = /x"), None);
    }

    #[test]
    fn version_check_accepts_the_same_release_only() {
        assert!(check_version("3.11.7", "3.11.7 (main, Nov 2026) [GCC 12]").is_ok());
        let err = check_version("3.11.2", "3.11.7 (main)").unwrap_err();
        assert!(err.contains("3.11.2") && err.contains("3.11.7"), "{err}");
        assert!(check_version("3.12.1", "3.11.7").is_err());
    }

    #[test]
    fn resolve_reports_a_missing_environment() {
        let err = resolve_python(Path::new("/nonexistent/venv")).unwrap_err();
        assert!(err.contains("/nonexistent/venv"), "{err}");
    }

    #[test]
    fn resolve_accepts_a_venv_directory_and_reads_its_version() {
        let dir = std::env::temp_dir().join(format!("dspex-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/python"), "").unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), "version = 3.11.7\n").unwrap();
        let env = resolve_python(&dir).unwrap();
        assert_eq!(env.executable, dir.join("bin/python"));
        assert_eq!(env.prefix, dir);
        assert_eq!(env.version.as_deref(), Some("3.11.7"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_venv_without_dspy_is_refused_and_one_with_it_accepted() {
        let dir = std::env::temp_dir().join(format!("dspex-dspy-test-{}", std::process::id()));
        let site = dir.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        let env = PythonEnv {
            executable: dir.join("bin/python"),
            prefix: dir.clone(),
            version: Some("3.11.7".into()),
        };
        let err = check_dspy(&env, "3.11.7").unwrap_err();
        assert!(err.contains("dspy is not installed"), "{err}");
        // A folder a .pth file adds counts, as Python's site module reads it.
        let other = dir.join("other");
        std::fs::create_dir_all(other.join("dspy")).unwrap();
        std::fs::write(
            site.join("more.pth"),
            format!("# a comment\n{}\n", other.display()),
        )
        .unwrap();
        assert!(check_dspy(&env, "3.11.7").is_ok());
        std::fs::remove_file(site.join("more.pth")).unwrap();
        std::fs::create_dir_all(site.join("dspy-3.4.1.dist-info")).unwrap();
        assert!(check_dspy(&env, "3.11.7").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_pool_is_wider_than_the_cores_but_bounded() {
        let n = default_workers();
        assert!((4..=32).contains(&n));
    }
}
