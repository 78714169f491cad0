// Links libfastinval.so: FASTINVAL_LIB_DIR, or the repository's artifacts/native (native/build.sh puts it there).
use std::env;
use std::path::PathBuf;

fn main() {
    let dir = match env::var("FASTINVAL_LIB_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../../artifacts/native"),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-env-changed=FASTINVAL_LIB_DIR");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=fastinval");
    // Test and example binaries find the library without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
