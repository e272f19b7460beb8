//! `cargo xtask moto`: installs the test servers and tools (moto, sops, OpenBao) into
//! `target/moto-venv` for the tests.
//!
//! Pinned in `tests/moto/requirements.txt`; reinstalled only when that file changes.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, root};

/// Runs the task.
pub fn run() -> Result {
    let venv = target_dir().join("moto-venv");
    let requirements = root().join("tests/moto/requirements.txt");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .ok_or("python3 is needed for the moto AWS emulator")?;
    crate::run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    crate::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    println!("moto installed in {}", venv.display());
    Ok(())
}

/// The cargo target folder.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}
