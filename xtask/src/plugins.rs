//! The plugins the workspace ships, read from `cargo metadata`: no list of names lives here.
//!
//! A plugin is a workspace package under `plugins/` with one binary target; it is installed
//! as `secrets/<binary name>`. What the tooling needs beyond that, each plugin declares in its
//! own `Cargo.toml`, all optional:
//!
//! ```toml
//! [package.metadata.nomad-secrets]
//! suite = "vault"                # golden suite tests/cases/<suite>.toml (default: the binary name)
//! fingerprint-rss-ratio = 1.5    # fingerprint peak RSS bound, relative to /bin/echo (default 1.2)
//! network = true                 # has fault cases (`cargo xtask faults` runs them)
//! fuzz-targets = ["vault_answer"]
//! ```
//!
//! The example settings are `examples/settings/<name>.toml`; `cargo xtask tidy` says what a
//! plugin is missing.

use std::path::PathBuf;

use crate::{Result, cargo, root};

/// One plugin, as its manifest declares it.
#[derive(Clone, Debug)]
pub struct Plugin {
    /// The package name (`nomad-secrets-aws`).
    pub package: String,
    /// The binary's name, which is the installed name (`secrets/<name>`).
    pub name: String,
    /// The package's folder.
    pub dir: PathBuf,
    /// The golden suite: `tests/cases/<suite>.toml` and `tests/cases/<suite>/`.
    pub suite: String,
    /// The fingerprint's peak RSS bound, relative to `/bin/echo`'s.
    pub fingerprint_rss_ratio: f64,
    /// Whether it talks to a network (then it must have fault cases).
    pub network: bool,
    /// Its fuzz targets in `fuzz/fuzz_targets/`.
    pub fuzz_targets: Vec<String>,
}

impl Plugin {
    /// `examples/settings/<name>.toml`.
    pub fn example_settings(&self) -> PathBuf {
        root()
            .join("examples/settings")
            .join(format!("{}.toml", self.name))
    }
}

/// The default bound, the target for every plugin.
pub const FINGERPRINT_RSS_RATIO: f64 = 1.2;

/// Every plugin, in name order.
///
/// Outside CI, a new plugin (a workspace member Cargo.lock does not list yet) gets its entry
/// in the lock file here, so that the `--locked` builds that follow accept it; in CI a stale
/// lock file is an error.
pub fn all() -> Result<Vec<Plugin>> {
    let metadata = |locked: bool| {
        let mut command = cargo();
        command.args(["metadata", "--format-version", "1", "--no-deps"]);
        if locked {
            command.arg("--locked");
        }
        command
            .output()
            .map_err(|e| format!("cannot run cargo metadata: {e}"))
    };
    let mut output = metadata(true)?;
    let stale_lock =
        String::from_utf8_lossy(&output.stderr).contains("cannot update the lock file");
    if !output.status.success() && stale_lock && std::env::var_os("CI").is_none() {
        output = metadata(false)?;
        if output.status.success() {
            eprintln!(
                "xtask: Cargo.lock now lists a new workspace member; commit it with the plugin"
            );
        }
    }
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))?;
    let plugins_dir = root().join("plugins");
    let mut plugins = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().map(PathBuf::from).unwrap_or_default();
        if dir.parent() != Some(plugins_dir.as_path()) {
            continue;
        }
        let package_name = package["name"].as_str().unwrap_or_default().to_owned();
        let binaries: Vec<&str> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str())
            .collect();
        let [name] = binaries[..] else {
            return Err(format!(
                "{package_name}: a plugin has exactly one binary target, its installed name; it has {}",
                binaries.len()
            ));
        };
        let declared = &package["metadata"]["nomad-secrets"];
        plugins.push(Plugin {
            package: package_name,
            name: name.to_owned(),
            dir,
            suite: declared["suite"].as_str().unwrap_or(name).to_owned(),
            fingerprint_rss_ratio: declared["fingerprint-rss-ratio"]
                .as_f64()
                .unwrap_or(FINGERPRINT_RSS_RATIO),
            network: declared["network"].as_bool().unwrap_or(false),
            fuzz_targets: declared["fuzz-targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    if plugins.is_empty() {
        return Err("cargo metadata lists no package under plugins/".into());
    }
    Ok(plugins)
}
