// Link against the Python that PYO3_PYTHON names (the project's venv), with an rpath to its
// libpython: without one the loader silently picks the system's libpython instead.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
