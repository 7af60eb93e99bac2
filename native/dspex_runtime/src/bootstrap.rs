//! Starting the one embedded CPython of this process.
//!
//! Three traps, each reproduced on this project's machines (see the README's architecture):
//! 1. ERTS dlopens NIFs with local symbol scope, so Python's own C extensions cannot see
//!    libpython's symbols; we re-open libpython with RTLD_GLOBAL first.
//! 2. Setting PYTHONHOME aborts the process; PyConfig with `executable` pointed at the venv's
//!    python is how CPython finds the venv, and it reports errors instead of aborting.
//! 3. The initialising thread becomes Python's main thread (signal handlers live there), so
//!    this runs on a thread of our own, never a BEAM scheduler.

use std::ffi::{CStr, CString};
use std::path::Path;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::config::PythonEnv;

/// Re-opens the libpython this library is linked against with `RTLD_GLOBAL`, so that
/// extension modules (`_ctypes`, `pydantic_core`, ...) resolve its symbols.
pub fn promote_libpython() -> Result<String, String> {
    // SAFETY: dladdr only reads the loader's tables for an address inside libpython.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = ffi::Py_GetVersion as *const libc::c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return Err("cannot locate the linked libpython (dladdr failed)".into());
        }
        let path = CStr::from_ptr(info.dli_fname).to_owned();
        let handle = libc::dlopen(
            path.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        );
        if handle.is_null() {
            return Err(format!("cannot promote {path:?} to global symbol scope"));
        }
        Ok(path.to_string_lossy().into_owned())
    }
}

/// Stops OpenSSL from tearing itself down in an `atexit` handler.
///
/// The BEAM exits with `exit()`, which runs `atexit` handlers while Python threads may
/// still be inside OpenSSL (a TLS handshake, litellm's import loading certificates): they
/// then crash the exit with a segfault (reproduced: exit code 139 in about one run in
/// twelve under load). OpenSSL skips that handler if it is initialised with
/// `OPENSSL_INIT_NO_ATEXIT` before anything else initialises it, so do that before Python
/// imports `ssl`. The memory is left to the OS, as for the rest of the exiting process.
pub fn disable_openssl_atexit() {
    const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;
    for name in [c"libcrypto.so.3", c"libcrypto.so.1.1"] {
        // SAFETY: dlopen/dlsym of a library by name; the symbol has this C signature
        // (int OPENSSL_init_crypto(uint64_t opts, const OPENSSL_INIT_SETTINGS *settings)).
        unsafe {
            let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if handle.is_null() {
                continue;
            }
            let init = libc::dlsym(handle, c"OPENSSL_init_crypto".as_ptr());
            if !init.is_null() {
                let init: extern "C" fn(u64, *const libc::c_void) -> libc::c_int =
                    std::mem::transmute(init);
                init(OPENSSL_INIT_NO_ATEXIT, std::ptr::null());
            }
        }
    }
}

/// The version of the linked libpython, e.g. `"3.11.7 (main, ...) [GCC 12.2.0]"`.
pub fn linked_version() -> String {
    // SAFETY: Py_GetVersion returns a static string and may be called before initialisation.
    unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }
        .to_string_lossy()
        .into_owned()
}

fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: reading a status struct returned by CPython.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let msg = if status.err_msg.is_null() {
            "unknown error".to_owned()
        } else {
            CStr::from_ptr(status.err_msg)
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{what}: {msg}"))
    }
}

/// Initialises CPython for `env` on the calling thread, then releases the GIL.
/// May run once per process: CPython cannot be initialised twice.
pub fn initialize(env: &PythonEnv) -> Result<(), String> {
    let executable = CString::new(env.executable.as_os_str().as_encoded_bytes())
        .map_err(|_| "the python path contains a NUL byte".to_owned())?;
    // SAFETY: the documented PyConfig sequence; `config` lives until PyConfig_Clear.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Err("Python was already initialised in this process by someone else".into());
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        // The BEAM owns the process's signals.
        config.install_signal_handlers = 0;
        // Environment variables like PYTHONHOME must not steer (or abort) the embedded VM.
        config.use_environment = 0;
        config.parse_argv = 0;
        let result = check(
            ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, executable.as_ptr()),
            "setting PyConfig.executable",
        )
        .and_then(|()| {
            check(
                ffi::PyConfig_SetBytesString(
                    &mut config,
                    &mut config.program_name,
                    executable.as_ptr(),
                ),
                "setting PyConfig.program_name",
            )
        })
        .and_then(|()| check(ffi::Py_InitializeFromConfig(&config), "initialising Python"));
        ffi::PyConfig_Clear(&mut config);
        result?;
        // Let worker threads take the GIL; this thread attaches again when it needs it.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// Imports the bridge package from `bridge_path` and checks the interpreter is the venv.
pub fn import_bridge<'py>(
    py: Python<'py>,
    env: &PythonEnv,
    bridge_path: &Path,
) -> Result<Bound<'py, PyModule>, String> {
    let sys = py.import("sys").map_err(|e| e.to_string())?;
    let prefix: String = sys
        .getattr("prefix")
        .and_then(|p| p.extract())
        .map_err(|e| e.to_string())?;
    let want = env
        .prefix
        .canonicalize()
        .unwrap_or_else(|_| env.prefix.clone());
    let have = Path::new(&prefix)
        .canonicalize()
        .unwrap_or_else(|_| prefix.clone().into());
    if want != have {
        return Err(format!(
            "Python started with sys.prefix {prefix}, not the environment {}",
            env.prefix.display()
        ));
    }
    let path = sys.getattr("path").map_err(|e| e.to_string())?;
    path.call_method1("insert", (0, bridge_path.to_string_lossy().as_ref()))
        .map_err(|e| e.to_string())?;
    py.import("dspex_bridge").map_err(|e| {
        let missing_dspy = e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py)
            && e.to_string().contains("'dspy'");
        if missing_dspy {
            format!(
                "dspy is not installed in {} ({e}); install the pinned requirements with `mix dspex_native.setup`",
                env.prefix.display()
            )
        } else {
            let tb = e
                .traceback(py)
                .and_then(|tb| tb.format().ok())
                .unwrap_or_default();
            format!("importing the dspex_bridge package from {} failed: {e}\n{tb}", bridge_path.display())
        }
    })
}
