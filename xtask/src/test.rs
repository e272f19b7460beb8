//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use crate::{Result, cargo};

/// Runs the task.
pub fn run() -> Result {
    crate::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    crate::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "--deny",
        "warnings",
    ]))?;
    crate::moto::run()?;
    crate::run(cargo().args(["test", "--workspace", "--locked"]))?;
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
