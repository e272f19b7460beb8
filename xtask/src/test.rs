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
    // The entry points the fuzz targets call exist only with `--cfg fuzzing`: lint them too.
    let host = crate::host_triple()?;
    let mut fuzzing = cargo();
    fuzzing
        .args(["clippy", "--locked", "--target", &host, "--target-dir"])
        .arg(crate::moto::target_dir().join("fuzz-clippy"))
        .args(["--package", "nomad-secrets-protocol"]);
    // Only plugins with fuzz entry points (`src/fuzzing.rs`) have code under `cfg(fuzzing)`.
    for plugin in crate::plugins::all()? {
        if plugin.dir.join("src/fuzzing.rs").exists() {
            fuzzing.args(["--package", &plugin.package]);
        }
    }
    fuzzing.args(["--", "--deny", "warnings"]);
    crate::for_target_only(&mut fuzzing, &host, "--cfg fuzzing");
    crate::run(&mut fuzzing)?;
    // Every plugin has its cases, settings, docs and fuzz targets; every doc link resolves.
    crate::tidy::run()?;
    crate::moto::run()?;
    // Every test, the leak check and the fault matrix among them, then their summaries.
    crate::suites::test_workspace()?;
    // A short fuzz pass: each target from its committed corpus, 10 s.
    crate::fuzz::run(&["--seconds".into(), "10".into()])?;
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
