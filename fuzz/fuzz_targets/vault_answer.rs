//! `vault-kv`'s handling of Vault's answers: any status and body for the mounts lookup and for
//! the read, any path, `?kv=` and `?mount=`, give exact secrets or one clear error that quotes
//! no secret value, and the plugin asks Vault only for the path the access policy checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output, parts};
use nomad_secrets_vault::fuzzing::{Canned, kv_answers};
use serde_json::Value;

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
    let version = (version > 0).then_some(u64::from(version));
    let outcome = kv_answers(locator, version, kv, mount, &lookup, &read);
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
