//! Builds the fake vendor libraries (the cdylib crates under `fakes/`) that accelerator tests and
//! benches load through the real loading code, once per process, into `target/fakes`.
//!
//! A separate target directory keeps this nested `cargo build` from waiting on the lock of the
//! build that is running the tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Builds workspace package `package` (e.g. `fake_nvml`) and returns the path of its shared
/// library. Panics with cargo's output if the build fails: a test cannot go on without it.
pub fn fake_library(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = manifest_dir.join("target/fakes");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .current_dir(&manifest_dir)
        .args(["build", "--quiet", "--package", package, "--target-dir"])
        .arg(&target_dir)
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build {package}: {e}"));
    assert!(
        output.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = format!(
        "{}{package}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = target_dir.join("debug").join(file);
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(package.to_string(), path.clone());
    path
}
