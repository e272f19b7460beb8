//! What every fuzz target checks of an outcome: the bytes the plugin would print are exactly
//! one JSON object of the contract's shape, and no error quotes a secret's value.
//!
//! Secret values in the seed corpus hold [`CANARY`]; the targets say where else the canary may
//! legitimately appear (a key, a path, a server's own message), and anywhere else in an error
//! it is a finding.

use nomad_secrets_protocol::fuzzing::{error_json, result_json};
use nomad_secrets_protocol::{Error, Secrets};
use serde_json::Value;

/// The marker the seed corpus puts in secret values.
pub const CANARY: &str = "CANARY";

/// Checks what the plugin would print for `outcome`: a result with exactly these keys and
/// values, or an error; either as one line of JSON.
pub fn check_output(outcome: &Result<Secrets, Error>) {
    let printed = match outcome {
        Ok(secrets) => result_json(secrets),
        Err(error) => error_json(&error.to_string()),
    };
    assert_eq!(printed.matches('\n').count(), 1, "one line: {printed:?}");
    let value: Value = serde_json::from_str(&printed).expect("stdout is JSON");
    match outcome {
        Ok(secrets) => {
            let result = value["result"].as_object().expect("a result object");
            assert_eq!(result.len(), secrets.len(), "every key printed once");
            for (key, secret) in secrets.iter() {
                assert_eq!(result[key].as_str(), Some(secret.expose()), "`{key}` exact");
            }
        }
        Err(error) => {
            assert_eq!(value["error"].as_str(), Some(error.to_string().as_str()));
            assert!(
                !error.message().trim().is_empty(),
                "an error says something"
            );
        }
    }
}

/// Fails when `outcome` is an error that holds the canary once every `allowed` text (what the
/// error may quote: keys, paths, server messages) is taken out of it.
pub fn assert_no_canary(outcome: &Result<Secrets, Error>, allowed: &[&str]) {
    if let Err(error) = outcome {
        let mut text = error.to_string();
        for quoted in allowed.iter().filter(|q| !q.is_empty()) {
            text = text.replace(quoted, "");
        }
        assert!(
            !text.contains(CANARY),
            "an error quotes a secret value: {error}"
        );
    }
}

/// The name in messages such as "the field `NAME` appears twice": the text between the first
/// backtick and `suffix`.
pub fn named<'a>(error: &'a Error, suffix: &str) -> Option<&'a str> {
    let message = error.message();
    let end = message.find(suffix)?;
    let start = message[..end].find('`')? + 1;
    Some(&message[start..end])
}

/// Splits fuzz input into `n` parts at NUL bytes (missing parts are empty).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.splitn(n, |b| *b == 0).collect();
    parts.resize(n, &[]);
    parts
}
