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

/// Every key of a TOML document, at any depth: errors may name them.
fn keys(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                out.push(key.clone());
                keys(value, out);
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
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
        keys(&toml::Value::Table(table.clone()), &mut named);
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
                };
                let _ = settings.policy().allows(caller, "prod/db");
            }
            Err(error) => {
                check_output(&Err::<Secrets, _>(error.clone()));
                let message = error.to_string();
                assert!(message.contains(&file.display().to_string()), "{message}");
                // Values never: only when the document parses can keys be told from values.
                if parsed.is_ok() && !env.values().any(|v| v.to_string_lossy().contains(CANARY)) {
                    let mut rest = message.clone();
                    for key in &named {
                        rest = rest.replace(key.as_str(), "");
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
