//! `azure`'s handling of Key Vault's answers: the plugin's whole fetch through Microsoft's SDK
//! (its challenge, Entra ID's token, the read), against an in-memory Azure. Any path,
//! `?version=`, status and body of the read give exact secrets or one clear error that quotes
//! no secret value, and the plugin asks Key Vault only for the secret the access policy checked.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nomad_secrets_azure::AzureBackend;
use nomad_secrets_azure::transport::{Answer, Transport};
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output, parts};
use nomad_secrets_protocol::{Backend, Error, Request, SecretPath, Secrets, Settings};
use serde_json::Value;

/// The operator's settings: a default vault, the app's client secret.
fn settings() -> Settings {
    let secret = std::env::temp_dir().join("azure-answer-fuzz-client-secret");
    if !secret.exists() {
        std::fs::write(&secret, "fuzz-client-secret\n").expect("a scratch file");
    }
    Settings::from_text(
        Path::new("/opt/nomad/plugins/secrets/azure.toml"),
        Some(&format!(
            "vault = \"prod-kv\"\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nclient_id = \"app\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        )),
        AzureBackend::SETTINGS,
        &HashMap::new(),
    )
    .expect("valid settings")
}

fn json(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// What `fetch <raw>` gives when Key Vault answers the read with `status` and `body`; `None`
/// when `raw` is not a path at all.
fn fetch(raw: &str, status: u16, body: &str) -> Option<Result<Secrets, Error>> {
    let settings = settings();
    let path = SecretPath::parse(raw, AzureBackend::OPTIONS).ok()?;
    let checked = match AzureBackend::normalise(path.locator(), &settings) {
        Ok(checked) => checked,
        Err(refused) => return Some(Err(refused)),
    };
    let (vault, secret) = checked.split_once('/').expect("a default vault");
    let host = format!("https://{vault}.vault.azure.net/secrets/{secret}/");
    let body = body.to_owned();
    let transport = Transport::in_memory(move |call| {
        if call.url.starts_with("https://login.microsoftonline.com/") {
            return json(
                200,
                &[],
                r#"{"token_type":"Bearer","expires_in":3599,"access_token":"t"}"#,
            );
        }
        assert!(
            call.url.starts_with(&host),
            "asked for `{}` while the policy checked `{host}`",
            call.url
        );
        if !call.authorized {
            let challenge = r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#;
            return json(401, &[("www-authenticate", challenge)], "{}");
        }
        json(status, &[("content-type", "application/json")], &body)
    });
    let env = HashMap::new();
    let input = nomad_secrets_protocol::JobInput::check(
        AzureBackend::NAME,
        "azure.toml",
        AzureBackend::JOB_INPUT,
        &[],
        &[],
        &env,
    )
    .expect("no job input is valid input");
    let request = Request {
        path,
        settings,
        env,
        input,
        deadline: Instant::now() + Duration::from_secs(5),
        manual: false,
        namespace: "default".into(),
        job: "fuzz".into(),
        instance: "fuzz".into(),
        identity: None,
    };
    Some(AzureBackend::with_transport(transport).fetch(&request))
}

/// Statuses Key Vault really sends, and a few it does not.
const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 409, 429, 500, 503, 999];

/// The answer without the secret's value: what an error may quote (Key Vault's error message,
/// the content type, the id).
fn without_value(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            map.remove("value");
            Value::Object(map).to_string()
        }
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let &[status, ref rest @ ..] = data else {
        return;
    };
    let [locator, version, body] = parts(rest, 3)[..] else {
        unreachable!()
    };
    let (Ok(locator), Ok(version), Ok(body)) = (
        std::str::from_utf8(locator),
        std::str::from_utf8(version),
        std::str::from_utf8(body),
    ) else {
        return;
    };
    let raw = match version.is_empty() {
        true => locator.to_owned(),
        false => format!("{locator}?version={version}"),
    };
    let status = STATUSES[status as usize % STATUSES.len()];
    let Some(outcome) = fetch(&raw, status, body) else {
        return;
    };
    check_output(&outcome);
    let quotable = [locator, version, &without_value(body)].concat();
    if !quotable.contains(CANARY) {
        assert_no_canary(&outcome, &[]);
    }
});
