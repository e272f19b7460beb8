//! Workload identity verification: any token against a fixed key set (an Ed25519 and an RSA
//! public key; the corpus holds tokens their private halves signed, which were then thrown
//! away). A token that verifies is for exactly the expected namespace and job; nothing panics;
//! no error quotes the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_protocol::identity::{Expected, verify_with_key_set};

const KEY_SET: &str = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "ed", "x": "UXuiJnQhQDTNO2cSDhHEP9EdH-hzQzKJ-7DyEpI6pVc"}, {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa", "n": "lQ807_Li998XQMpiMFciy1YqCpa8fkWhteXuvGuIy_mhSv78x8ru8SX1i7UsG0z9akJeSjHpxAblDMVJMvou5CBno8YAsEtSaKfviS8arPmz_UjVyujcIjQhN1oOPaajj5GoR5jL1P96VCtfR3knK_l4wMeAxGQGaw0FjBA__M2R9T6w4CR2htd753PPm79wP5GZT9z9dwq4CiICx7Jaa1TcwGPwKpIkbiqaj_vBi6AwPXOPtb24BakREbhecjOogXM58DdZ9G0dq3spyf8FWlC8svWtPU8psmODz4wPQVoTx8VsalwrLyTQwEZ7LgWZN_xAtFJHqEQR1p--4WTU9w", "e": "AQAB"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let expected = Expected {
        audience: "nomad-secrets",
        issuer: None,
        namespace: "default",
        instance: "api",
    };
    match verify_with_key_set(token, KEY_SET, &expected) {
        Ok(identity) => {
            assert_eq!(identity.namespace, "default");
            assert_eq!(identity.job, "api");
        }
        Err(error) => {
            // What a token is made of: base64url runs between dots. Only such runs can be a
            // token's text; anything else the fuzzer writes may spell out the message's own
            // words (`NOMAD_WORKLOAD_IDENTITY`).
            let base64url = |text: &str| {
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let shown = format!("{error} {error:?}");
            for part in token.split('.').filter(|p| p.len() >= 24 && base64url(p)) {
                // The header's `kid` is named ("key `<kid>`"); a crafted one may equal a part.
                let named = shown.replace(&format!("key `{part}`"), "");
                assert!(
                    !named.contains(part),
                    "a part of the token is quoted: {shown}"
                );
            }
        }
    }
});
