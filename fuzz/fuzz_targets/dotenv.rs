//! `file`'s .env format: any text gives keys and values or an error that names a line (and at
//! most a key), never a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{assert_no_canary, check_output, named};
use nomad_secrets_protocol::dotenv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let outcome = dotenv::parse(text);
    check_output(&outcome);
    match &outcome {
        Err(error) => assert_no_canary(&outcome, &[named(error, "` is set twice").unwrap_or("")]),
        Ok(secrets) => {
            for key in secrets.keys() {
                assert!(text.contains(key), "keys come from the file");
            }
        }
    }
});
