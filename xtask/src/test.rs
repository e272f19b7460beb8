//! `cargo xtask test`: everything CI checks, in the order that fails fastest: format, lints,
//! every test (with the leak and fault summaries), a short fuzz pass, the fingerprint memory
//! bound, the demo.

use crate::{Result, cargo};

/// Runs the task.
pub fn run() -> Result {
    crate::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    crate::run(cargo().args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--all",
        "--",
        "--check",
    ]))?;
    crate::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "--deny",
        "warnings",
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
