//! A sops-encrypted file read through the `command` plugin, beside `sops decrypt` run alone.
//! A table only: `command` is not a network plugin, so the load suite has no burst of it.

use nomad_secrets_golden::tools::{sops, sops_fixtures};

use super::{Contender, table};
use crate::Result;

/// A sops-encrypted file read through the `command` plugin, beside `sops decrypt` run alone:
/// the plugin's own overhead on a real CLI.
pub(super) fn command_table(report: &mut String, runs: usize, secrets: &std::path::Path) -> Result {
    let work = secrets.join("../command-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let key = sops_fixtures(&work);
    let sops = sops();
    let encrypted = work.join("secrets/db.json");
    let settings = secrets.join("command.toml");
    crate::install::write_settings(
        &settings,
        &format!(
            "command = [\"{}\", \"decrypt\", \"--output-type\", \"json\", \"--\", \"{}/{{path}}\"]\npath_pattern = \"[a-z]+\\\\.json\"\nenv = [\"SOPS_AGE_KEY_FILE={}\", \"SOPS_DISABLE_VERSION_CHECK=1\"]\n",
            sops.display(),
            work.join("secrets").display(),
            key.display()
        ),
    )?;
    let key_env = format!("{}", key.display());
    let contenders = [
        Contender::new(
            "sops decrypt --output-type json (alone)",
            &sops,
            &[
                "decrypt",
                "--output-type",
                "json",
                "--",
                encrypted.to_str().unwrap_or_default(),
            ],
            &[
                ("SOPS_AGE_KEY_FILE", &key_env),
                ("SOPS_DISABLE_VERSION_CHECK", "1"),
            ],
        ),
        Contender::new(
            "command fetch db.json (the same sops, through the plugin)",
            secrets.join("command"),
            &["fetch", "db.json"],
            &[("CPI_OPERATION", "fetch")],
        ),
    ];
    table(
        report,
        "command: a sops-encrypted JSON file (age key)",
        runs,
        &contenders,
    )?;
    Ok(())
}
