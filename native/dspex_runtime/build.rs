// Link against the libpython of the build Python that PYO3_PYTHON names, with an rpath to it:
// without one the loader silently picks the system's libpython instead. Which venv runs is
// decided at run time (Config::python), so nothing about it is baked in here.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
