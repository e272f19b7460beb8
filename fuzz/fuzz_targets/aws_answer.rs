//! `aws`'s handling of Secrets Manager's answer, through the SDK's own parsing: any status,
//! content type and body give exact secrets or one clear error that quotes no secret value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_aws::fuzzing::get_secret_value_answer;
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output};
use serde_json::Value;

/// Statuses Secrets Manager (or something in front of it) may send.
const STATUSES: [u16; 10] = [200, 200, 400, 403, 404, 408, 429, 500, 502, 503];
/// Content types: the API's own, and what proxies put in front of it send.
const CONTENT_TYPES: [&str; 4] = [
    "application/x-amz-json-1.1",
    "application/json",
    "text/html",
    "text/plain",
];

/// The answer without the secret fields: what an error may quote (AWS's own `message`).
fn without_secret(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            map.remove("SecretString");
            map.remove("SecretBinary");
            Value::Object(map).to_string()
        }
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [status, content_type, body @ ..] = data else {
        return;
    };
    let outcome = get_secret_value_answer(
        STATUSES[*status as usize % STATUSES.len()],
        CONTENT_TYPES[*content_type as usize % CONTENT_TYPES.len()],
        body,
    );
    check_output(&outcome);
    if let Ok(secrets) = &outcome {
        // The SDK's JSON reader is more lenient than serde_json (numbers such as `1.`), so
        // exactness is checked where both read the answer.
        let answer: Value = serde_json::from_slice(body).unwrap_or_default();
        if let Some(text) = answer["SecretString"].as_str() {
            let from_text = nomad_secrets_protocol::Secrets::from_text_or_json_object(text.into());
            assert!(
                from_text.unwrap().iter().eq(secrets.iter()),
                "SecretString exact"
            );
        }
    }
    if !without_secret(body).contains(CANARY) {
        assert_no_canary(&outcome, &[]);
    }
});
