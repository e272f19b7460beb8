//! The JSON conversion policy (`file`'s json format, Vault's data, Secrets Manager's
//! SecretString): any bytes give exact results or an error naming no value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{assert_no_canary, check_output, named};
use nomad_secrets_protocol::Secrets;
use nomad_secrets_protocol::convert::json_text;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        check_output(&Ok(Secrets::from_bytes(data.to_vec())));
        return;
    };
    let outcome = Secrets::from_json(text);
    check_output(&outcome);
    match &outcome {
        // A duplicate field is named by its key; keys are not secret.
        Err(error) => assert_no_canary(&outcome, &[named(error, "` appears twice").unwrap_or("")]),
        Ok(secrets) => {
            // Exact: every field of an object (or the one value) as the policy says.
            let value: Value = serde_json::from_str(text).expect("accepted text is JSON");
            match value {
                Value::Object(map) if text.trim_start().starts_with('{') => {
                    assert_eq!(map.len(), secrets.len());
                    for (key, field) in map {
                        let secret = secrets.get(&key).expect("every field kept");
                        assert_same(secret.expose(), field);
                    }
                }
                other => {
                    assert_eq!(secrets.len(), 1);
                    assert_same(secrets.get("value").unwrap().expose(), other);
                }
            }
        }
    }
    let lenient = Secrets::from_text_or_json_object(text.to_owned());
    check_output(&lenient);
    // Any text is a secret, but for an object with a field given twice or nested too deep: an
    // error, as for every JSON secret (naming the field, never a value).
    let lenient = match lenient {
        Err(error) => {
            assert!(
                error.to_string().contains("appears twice")
                    || error.to_string().contains("nested deeper than"),
                "only a duplicated field or too deep a nesting fails: {error}"
            );
            assert_no_canary(
                &Err(error.clone()),
                &[named(&error, "` appears twice").unwrap_or("")],
            );
            return;
        }
        Ok(lenient) => lenient,
    };
    match outcome {
        Ok(strict) if text.trim_start().starts_with('{') => {
            assert!(
                lenient.iter().eq(strict.iter()),
                "an object gives its fields"
            );
        }
        _ => assert_eq!(lenient.get("value").map(|s| s.expose()), Some(text)),
    }
});

/// A result value says what the parsed `field` says: strings and null exactly as the policy
/// converts them; numbers, booleans, objects and arrays as JSON text of the same value (the
/// text as written, which a parser's re-printing may spell otherwise: `1E5`, `1e+5`).
fn assert_same(result: &str, field: Value) {
    match field {
        Value::String(_) | Value::Null => assert_eq!(result, json_text(field)),
        other => {
            let reread: Value = serde_json::from_str(result).expect("a value's text is JSON");
            assert_eq!(reread, other, "the value's text means the value");
            assert!(!result.contains(['\n', '\r', '\t']), "no white space kept");
        }
    }
}
