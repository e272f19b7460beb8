//! The settings file (with the job's environment): any text gives settings or an error naming
//! the file, a line and a key; never a panic, never a value.
#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nomad_secrets_aws::AwsBackend;
use nomad_secrets_file::FileBackend;
use nomad_secrets_fuzz::{CANARY, check_output, parts};
use nomad_secrets_protocol::policy::Caller;
use nomad_secrets_protocol::{Backend, Secrets, Settings};
use nomad_secrets_vault::VaultBackend;

/// Settings whose values are names or patterns, quoted so the bad one can be found: the access
/// policy's rules, the setting names of `job_may_set`, the role patterns of `assume_roles`.
const NAMES: &[&str] = &["allow", "job_may_set", "assume_roles"];

/// What errors may quote: every key of a TOML document, at any depth, and the values of
/// [`NAMES`]. Any other value (an address, a path) never.
fn quotable(value: &toml::Value, in_names: bool, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                out.push(key.clone());
                quotable(value, in_names || NAMES.contains(&key.as_str()), out);
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| quotable(v, in_names, out)),
        toml::Value::String(text) if in_names => out.push(text.clone()),
        _ => {}
    }
}

/// The spans of `message` between backticks.
fn quoted(message: &str) -> impl Iterator<Item = &str> {
    message.split('`').skip(1).step_by(2)
}

fuzz_target!(|data: &[u8]| {
    let [text, env] = parts(data, 2)[..] else {
        unreachable!()
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let env: HashMap<OsString, OsString> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let mut named = Vec::new();
    let parsed = text.parse::<toml::Table>();
    if let Ok(table) = &parsed {
        quotable(&toml::Value::Table(table.clone()), false, &mut named);
    }
    for specs in [
        FileBackend::SETTINGS,
        AwsBackend::SETTINGS,
        VaultBackend::SETTINGS,
    ] {
        let file = Path::new("/opt/nomad/plugins/secrets/plugin.toml");
        match Settings::from_text(file, Some(text), specs, &env) {
            Ok(settings) => {
                let caller = Caller {
                    namespace: "default",
                    job: "web",
                    group: None,
                    task: None,
                };
                let _ = settings.policy().allows(caller, "prod/db");
            }
            Err(error) => {
                check_output(&Err::<Secrets, _>(error.clone()));
                let message = error.to_string();
                // A settings error names the file; a bad value of a job's variable names the
                // variable (the job's to fix, not the file's).
                let names_variable = env
                    .keys()
                    .any(|k| message.contains(&format!("`{}`", k.to_string_lossy())));
                assert!(
                    message.contains(&file.display().to_string()) || names_variable,
                    "{message}"
                );
                // Values never: only when the document parses can keys be told from values.
                if parsed.is_ok() && !env.values().any(|v| v.to_string_lossy().contains(CANARY)) {
                    let mut rest = message.clone();
                    // Longest first, so a key inside a quoted pattern cannot leave a part.
                    named.sort_by_key(|n| std::cmp::Reverse(n.len()));
                    for key in &named {
                        rest = rest.replace(key.as_str(), "");
                    }
                    // A quoted part of a name (a pattern's unknown placeholder) is the
                    // operator's own text too.
                    let parts: Vec<String> = quoted(&rest).map(str::to_owned).collect();
                    for part in parts {
                        if named.iter().any(|n| n.contains(&part)) {
                            rest = rest.replace(&format!("`{part}`"), "");
                        }
                    }
                    assert!(
                        !rest.contains(CANARY),
                        "a settings error quotes a value: {message}"
                    );
                }
            }
        }
    }
});
