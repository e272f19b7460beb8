//! Workload identity verification: any token against a fixed key set (an Ed25519 and an RSA
//! public key; the corpus holds tokens their private halves signed, which were then thrown
//! away). A token that verifies is for exactly the expected namespace and job; nothing panics;
//! no error quotes the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_protocol::identity::{Expected, verify_with_key_set};

const KEY_SET: &str = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "ed", "x": "P3iBWj0JjzckpAHgVM25YzvBJQEg-3RFzAt4wu9tN5c"}, {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa", "n": "xwmoqZiNvpyRrWWMrIa3PbnYzeGd0b98-ezhnE5ORUaZalz3aN533_-xaolZnyaYp_TVLEKnfuXzhMqwbZhjIkzqBMyRhkz9z2gHEasdyVLuCgBSP7hJ_jHEjwyG4hG1p3OYI0h9Qd0KGsoWu2OP73agsHX4cahD6BIVAkhRtoZj5I8-qWX92WccTH133yFHaT6d_NxDMRccF7NfN_B9cMmxm4D8iQtLSgDW1nsyoMW0-loZOnArfC33iNGy8uXalki9kCYVgPfSvmSbUvK3rTylV8rI1MwdFOwmspCXm36KzLzwQA8xrCe10WlX2EH008AApYDsdjv7_rbICPz1_w", "e": "AQAB"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let expected = Expected {
        audience: "nomad-secrets",
        issuer: None,
        namespace: "default",
        job: "api",
    };
    match verify_with_key_set(token, KEY_SET, &expected) {
        Ok(identity) => {
            assert_eq!(identity.namespace, "default");
            assert_eq!(identity.job, "api");
        }
        Err(error) => {
            let shown = format!("{error} {error:?}");
            if token.len() >= 12 {
                assert!(!shown.contains(token), "the token is quoted: {shown}");
            }
            for part in token.split('.').filter(|p| p.len() >= 24) {
                assert!(
                    !shown.contains(part),
                    "a part of the token is quoted: {shown}"
                );
            }
        }
    }
});
