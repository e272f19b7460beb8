//! `aws-ssm`'s names and hierarchy keys: any path is refused or accepted as a name Parameter
//! Store can hold; any set of parameters beneath a prefix gives one interpolable key each, or
//! an error naming two parameters and no value.
#![no_main]

// The modules alone, not the plugin: the plugin crate would bring the Parameter Store SDK (one
// of AWS's largest) into every fuzz build; these depend only on the protocol and shared AWS crates.
#[path = "../../plugins/aws-ssm/src/keys.rs"]
mod keys;
#[path = "../../plugins/aws-ssm/src/names.rs"]
#[allow(dead_code)]
mod names;

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output, parts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let prefix = lines.next().unwrap_or_default();
    if let Ok(name) = names::normalise(prefix) {
        assert_eq!(name, prefix, "names are matched as written");
        let body = name.strip_prefix("arn:").map_or(name.as_str(), |_| "");
        assert!(
            body.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)),
            "accepted `{name}`"
        );
        assert!(!body.contains("//") && !body.contains("/../") && !body.contains("/./"));
    }
    let found: Vec<(String, String)> = lines
        .filter_map(|line| {
            let [name, value] = parts(line.as_bytes(), 2)[..] else {
                return None;
            };
            Some((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ))
        })
        .collect();
    let outcome = keys::secrets(prefix, found.clone());
    check_output(&outcome);
    match &outcome {
        Ok(secrets) => {
            assert_eq!(secrets.len(), found.len(), "one key per parameter");
            for key in secrets.keys() {
                assert!(
                    key.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                    "key `{key}` cannot be interpolated"
                );
            }
        }
        Err(_) => {
            let names: String = found.iter().map(|(n, _)| n.as_str()).collect();
            if !names.contains(CANARY) && !prefix.contains(CANARY) {
                assert_no_canary(&outcome, &[]);
            }
        }
    }
});
