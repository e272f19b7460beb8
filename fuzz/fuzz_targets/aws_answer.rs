//! `aws`'s handling of Secrets Manager's answer: the plugin's whole fetch of `prod/db` (the SDK
//! configuration, the SDK's own parsing, the error messages, the conversion) with an in-memory
//! transport answering any status, content type and body. Each gives exact secrets or one clear
//! error that quotes no secret value.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nomad_secrets_aws::AwsBackend;
use nomad_secrets_aws_common::{Answer, Transport};
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output};
use nomad_secrets_protocol::{Backend, Error, Request, SecretPath, Secrets, Settings};
use serde_json::Value;

/// The node's credentials, as the environment gives them.
static CREDENTIALS: Once = Once::new();

/// What `fetch prod/db` gives when every request is answered with `status`, `content_type` and
/// `body`, by a node whose settings name the region and turn IMDS off.
fn fetch(status: u16, content_type: &'static str, body: &[u8]) -> Result<Secrets, Error> {
    CREDENTIALS.call_once(|| {
        // SAFETY: the first iteration, before any runtime or other thread exists.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFUZZ");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "fuzz");
        }
    });
    let body = body.to_vec();
    let transport = Transport::in_memory(move |_| Answer {
        status,
        content_type,
        body: body.clone(),
    });
    let settings = Settings::from_text(
        Path::new("/opt/nomad/plugins/secrets/aws.toml"),
        Some("region = \"us-east-1\"\nimds_endpoint = \"off\"\n"),
        AwsBackend::SETTINGS,
        &HashMap::new(),
    )
    .expect("valid settings");
    let request = Request {
        path: SecretPath::parse("prod/db", AwsBackend::OPTIONS).expect("a valid path"),
        settings,
        env: HashMap::new(),
        input: Default::default(),
        deadline: Instant::now() + Duration::from_secs(5),
        manual: false,
        namespace: "default".into(),
        job: "fuzz".into(),
        instance: "fuzz".into(),
        identity: None,
    };
    AwsBackend::with_transport(transport).fetch(&request)
}

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
    let outcome = fetch(
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
