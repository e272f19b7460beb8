//! `cargo xtask dist`: `target/dist/nomad-secrets-<version>-<arch>-linux.tar.gz` and its SHA256SUMS.
//!
//! The archive holds `secrets/<plugin>` for every plugin (ready to unpack into a Nomad client's
//! `common_plugin_dir`), the example settings files, the README and the architecture doc.

use std::process::Command;

use crate::{Result, root};

/// Runs the task.
pub fn run() -> Result {
    let built = crate::build_release()?;
    let name = format!(
        "nomad-secrets-{}-{}-linux",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    let dist = crate::moto::target_dir().join("dist");
    let stage = dist.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    crate::install::install(&stage, &built)?;
    std::fs::create_dir_all(stage.join("examples")).map_err(|e| e.to_string())?;
    let mut files = vec![
        (root().join("README.md"), stage.join("README.md")),
        (
            root().join("ARCHITECTURE.md"),
            stage.join("ARCHITECTURE.md"),
        ),
    ];
    for plugin in crate::plugins::all()? {
        let settings = plugin.example_settings();
        let shipped = stage.join(format!("examples/{}.toml", plugin.name));
        files.push((settings, shipped));
    }
    for (from, to) in files {
        std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let archive = format!("{name}.tar.gz");
    crate::run(Command::new("tar").current_dir(&dist).args([
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-czf",
        &archive,
        &name,
    ]))?;
    let sums = Command::new("sha256sum")
        .current_dir(&dist)
        .arg(&archive)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    std::fs::write(dist.join("SHA256SUMS"), &sums.stdout).map_err(|e| e.to_string())?;
    println!("{}", dist.join(&archive).display());
    print!("{}", String::from_utf8_lossy(&sums.stdout));
    Ok(())
}
