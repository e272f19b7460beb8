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
