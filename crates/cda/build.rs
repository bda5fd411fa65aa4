//! Link libxml2, used by `XsdValidator` for XSD validation.
//!
//! No pkg-config or bindgen: the few functions used are declared by hand in `src/xsd.rs`, and the
//! library is the system one (Debian package `libxml2-dev`, which `tests/setup.sh` installs).
//! `RELAIS_LIBXML2_LIB_DIR` may name a non-standard directory holding `libxml2.so`.

fn main() {
    println!("cargo:rerun-if-env-changed=RELAIS_LIBXML2_LIB_DIR");
    if let Some(dir) = std::env::var_os("RELAIS_LIBXML2_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir.to_string_lossy());
    }
    println!("cargo:rustc-link-lib=xml2");
}
