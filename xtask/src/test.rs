//! `cargo xtask test`: everything CI checks, in the order that fails fastest: format, lints,
//! every test (with the leak and fault summaries), a short fuzz pass, the fingerprint memory
//! bound, the demo.
//!
//! Clippy runs inside the builds the tests need rather than as a build of its own: the
//! workspace's crates are compiled by `clippy-driver` (as `cargo clippy` itself does it, with
//! `RUSTC_WORKSPACE_WRAPPER`), warnings denied, so the dependencies (three SDKs) are compiled
//! once for lints and tests, not checked once more. The release build and the fuzz build are
//! compiled by rustc alone.

use std::path::PathBuf;

use crate::{Result, cargo};

/// The variables that make a cargo build lint the workspace's crates with clippy.
pub const LINT_VARIABLES: [&str; 2] = ["RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"];

/// Runs the task.
pub fn run() -> Result {
    let driver = clippy_driver()?;
    // SAFETY: xtask has started no thread yet; the variables are inherited by every cargo it
    // runs from here on (the tidy build, the tests), and removed for the release and fuzz builds.
    unsafe {
        std::env::set_var(LINT_VARIABLES[0], &driver);
        // clippy-driver's own encoding of `cargo clippy -- --deny warnings`.
        std::env::set_var(LINT_VARIABLES[1], "--deny=warnings__CLIPPY_HACKERY__");
    }
    crate::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    crate::run(cargo().args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--all",
        "--",
        "--check",
    ]))?;
    // Every plugin has its cases, settings, docs and fuzz targets; every doc link resolves.
    crate::tidy::run()?;
    crate::moto::run()?;
    // Every test, the leak check and the fault matrix among them, then their summaries.
    crate::suites::test_workspace()?;
    // A short fuzz pass: each target from its committed corpus, 10 s. Meanwhile the release
    // build for the fingerprint gate uses what the fuzzing leaves of the CPU (libFuzzer runs on
    // one core; the build's link steps often do too); its output goes to a log.
    let log_path = crate::moto::target_dir().join("release-build.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let (mut release, _) = crate::release_build()?;
    release
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let mut release = release
        .spawn()
        .map_err(|e| format!("cannot start the release build: {e}"))?;
    let fuzzed = crate::fuzz::run(&["--seconds".into(), "10".into()]);
    if fuzzed.is_err() {
        let _ = release.kill();
    }
    let built = release.wait().map_err(|e| e.to_string())?;
    fuzzed?;
    if !built.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(format!(
            "the release build failed ({built}); its output ({}):\n{text}",
            log_path.display()
        ));
    }
    // Memory is not wall-clock time: the fingerprint's peak RSS is stable enough to gate on.
    crate::bench::run(&[
        "--fingerprint-only".into(),
        "--check".into(),
        "--runs".into(),
        "20".into(),
    ])?;
    // The README's first command must keep working.
    crate::demo::run()
}

/// The toolchain's `clippy-driver`, beside its `rustc`.
fn clippy_driver() -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let driver = PathBuf::from(sysroot).join("bin/clippy-driver");
    match driver.exists() {
        true => Ok(driver),
        false => Err(format!(
            "no clippy in this toolchain ({} is missing): run `rustup component add clippy`",
            driver.display()
        )),
    }
}
