//! The path grammar `<locator>[?opt=v&...][#key]`, with the option sets of plugins the fuzz
//! build links anyway (the grammar is the same for every set): any text parses or gives an
//! error; nothing panics, and a parsed path has a locator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_aws::AwsBackend;
use nomad_secrets_file::FileBackend;
use nomad_secrets_fuzz::check_output;
use nomad_secrets_protocol::{Backend, SecretPath, Secrets};
use nomad_secrets_vault::VaultBackend;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for options in [
        FileBackend::OPTIONS,
        AwsBackend::OPTIONS,
        VaultBackend::OPTIONS,
    ] {
        match SecretPath::parse(raw, options) {
            Ok(path) => {
                assert!(!path.locator().is_empty(), "a path names a secret");
                assert!(path.key().is_none_or(|k| !k.is_empty()), "no empty key");
                for option in options {
                    assert!(path.option(option).is_none_or(|v| !v.is_empty()));
                }
            }
            Err(error) => check_output(&Err::<Secrets, _>(error)),
        }
    }
});
