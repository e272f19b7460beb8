//! `vault-kv`'s handling of Vault's answers: the plugin's whole fetch with the job's own token,
//! against an in-memory Vault. Any status and body for the mounts lookup and for the read, any
//! path, `?kv=`, `?mount=` and `?version=`, give exact secrets or one clear error that quotes no
//! secret value, and the plugin asks Vault only for the path the access policy checked.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output, parts};
use nomad_secrets_protocol::{Backend, Error, Request, SecretPath, Secrets, Settings};
use nomad_secrets_vault::VaultBackend;
use nomad_secrets_vault::http::Transport;
use serde_json::Value;

/// Vault's address in the settings.
const ADDRESS: &str = "https://vault.example:8200";

/// One HTTP answer: status and raw body.
struct Canned<'a> {
    status: u16,
    body: &'a str,
}

/// What `fetch <raw>` gives when Vault answers the mounts lookup with `lookup` and the read
/// with `read`; `None` when `raw` is not a path at all. Panics if the plugin asks Vault for
/// any path other than the lookup or the read of the normalised path the access policy checks.
fn fetch(raw: &str, lookup: &Canned, read: &Canned) -> Option<Result<Secrets, Error>> {
    let settings = Settings::from_text(
        Path::new("/opt/nomad/plugins/secrets/vault-kv.toml"),
        Some(&format!("address = \"{ADDRESS}\"\n")),
        VaultBackend::SETTINGS,
        &HashMap::new(),
    )
    .expect("valid settings");
    let path = SecretPath::parse(raw, VaultBackend::OPTIONS).ok()?;
    let checked = match VaultBackend::normalise(path.locator(), &settings) {
        Ok(checked) => checked,
        Err(refused) => return Some(Err(refused)),
    };
    let answers = [
        (lookup.status, lookup.body.to_owned()),
        (read.status, read.body.to_owned()),
    ];
    let transport = Transport::InMemory(Arc::new(move |_method: &str, url: &str| {
        let path = url
            .strip_prefix(&format!("{ADDRESS}/v1/"))
            .unwrap_or_else(|| panic!("asked another host: `{url}`"));
        if path != "auth/token/lookup-self" {
            assert_reads_checked(path, &checked);
        }
        match path.starts_with("sys/internal/ui/mounts/") {
            true => answers[0].clone(),
            false => answers[1].clone(),
        }
    }));
    let env: std::collections::HashMap<_, _> = [("VAULT_TOKEN".into(), "hvs.fuzz".into())].into();
    let input = nomad_secrets_protocol::JobInput::check(
        VaultBackend::NAME,
        "vault-kv.toml",
        VaultBackend::JOB_INPUT,
        &[],
        &[],
        &env,
    )
    .expect("a job's own token is valid input");
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
    Some(VaultBackend::with_transport(transport).fetch(&request))
}

/// The invariant "the policy sees what is read": `url_path` (relative to `/v1/`, encoded) is
/// the mounts lookup of `checked` or a read of `checked` itself (`<mount>/data/<rest>` on v2).
fn assert_reads_checked(url_path: &str, checked: &str) {
    let path = url_path.split('?').next().unwrap_or_default();
    let decoded = decode(path);
    let lookup = decoded.strip_prefix("sys/internal/ui/mounts/");
    let read_v2 = decoded
        .match_indices("/data/")
        .any(|(i, _)| format!("{}/{}", &decoded[..i], &decoded[i + 6..]) == checked);
    let ok = lookup == Some(checked) || decoded == checked || read_v2;
    assert!(
        ok,
        "asked Vault for `{url_path}` while the policy checked `{checked}`"
    );
    assert_eq!(
        nomad_secrets_vault::kv::encoded(&decoded),
        path,
        "every byte outside the unreserved set is encoded"
    );
}

fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Statuses Vault really sends, and a few it does not.
const STATUSES: [u16; 12] = [200, 204, 307, 400, 403, 404, 405, 412, 429, 500, 503, 999];

/// The read's answer without the secret itself (`data`, but for v2's `data.metadata`): what
/// an error may quote, such as `errors`, `warnings` or a deletion time.
fn without_secret(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            if let Some(data) = map.get_mut("data") {
                *data = serde_json::json!({ "metadata": data.get("metadata").cloned() });
            }
            Value::Object(map).to_string()
        }
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let &[a, b, version, kv, ref rest @ ..] = data else {
        return;
    };
    let [locator, mount, lookup, read] = parts(rest, 4)[..] else {
        unreachable!()
    };
    let (Ok(locator), Ok(mount), Ok(lookup_body), Ok(read_body)) = (
        std::str::from_utf8(locator),
        std::str::from_utf8(mount),
        std::str::from_utf8(lookup),
        std::str::from_utf8(read),
    ) else {
        return;
    };
    // `?kv=` as the path gives it (or not), `?mount=` when non-empty.
    let kv = [None, Some(1), Some(2)][kv as usize % 3];
    let mount = (!mount.is_empty()).then_some(mount);
    let lookup = Canned {
        status: STATUSES[a as usize % STATUSES.len()],
        body: lookup_body,
    };
    let read = Canned {
        status: STATUSES[b as usize % STATUSES.len()],
        body: read_body,
    };
    let mut options = Vec::new();
    if version > 0 {
        options.push(format!("version={version}"));
    }
    if let Some(kv) = kv {
        options.push(format!("kv={kv}"));
    }
    if let Some(mount) = mount {
        options.push(format!("mount={mount}"));
    }
    let raw = match options.is_empty() {
        true => locator.to_owned(),
        false => format!("{locator}?{}", options.join("&")),
    };
    let Some(outcome) = fetch(&raw, &lookup, &read) else {
        return;
    };
    check_output(&outcome);
    let quotable = [
        locator,
        mount.unwrap_or_default(),
        lookup_body,
        &without_secret(read_body),
    ]
    .concat();
    if !quotable.contains(CANARY) {
        assert_no_canary(&outcome, &[]);
    }
});
