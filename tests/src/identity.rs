//! Nomad workload identities made per test run: RSA and Ed25519 keys (made by `openssl`), the
//! key set as a Nomad agent serves it at `/.well-known/jwks.json`, and tokens with Nomad's
//! claim set, signed properly or forged in the ways an attacker would try.

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::Scratch;

/// A signing key of the test cluster and its public half.
pub struct Signer {
    /// The key id Nomad puts in `kid`.
    pub kid: String,
    algorithm: Algorithm,
    private: EncodingKey,
    /// The public key as a JWK.
    pub jwk: Value,
    /// The public key in PEM, what an algorithm-confusion attack signs with.
    pub public_pem: Vec<u8>,
}

/// Runs `openssl` with `args`; its stdout.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package `openssl`; .ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Signer {
    /// A new 2048-bit RSA key (RS256, as Nomad signs by default).
    pub fn rsa(kid: &str) -> Signer {
        let scratch = Scratch::new("rsa-key");
        let key = scratch.path().join("key.pem");
        let key = key.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key,
        ]);
        let modulus = String::from_utf8(openssl(&["rsa", "-in", key, "-noout", "-modulus"]))
            .unwrap()
            .trim()
            .strip_prefix("Modulus=")
            .expect("openssl prints Modulus=<hex>")
            .to_owned();
        let n: Vec<u8> = (0..modulus.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&modulus[i..i + 2], 16).unwrap())
            .collect();
        let pem = std::fs::read(key).unwrap();
        Signer {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            private: EncodingKey::from_rsa_pem(&pem).expect("an RSA key in PEM"),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": B64.encode(&n), "e": "AQAB",
            }),
            public_pem: openssl(&["pkey", "-in", key, "-pubout"]),
        }
    }

    /// A new Ed25519 key (EdDSA, what Nomad signs with when the cluster has no RSA key).
    pub fn ed25519(kid: &str) -> Signer {
        let scratch = Scratch::new("ed-key");
        let key = scratch.path().join("key.pem");
        let key = key.to_str().unwrap();
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", key]);
        let der = openssl(&["pkey", "-in", key, "-pubout", "-outform", "DER"]);
        let x = &der[der.len() - 32..];
        let pem = std::fs::read(key).unwrap();
        Signer {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            private: EncodingKey::from_ed_pem(&pem).expect("an Ed25519 key in PEM"),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": B64.encode(x),
            }),
            public_pem: openssl(&["pkey", "-in", key, "-pubout"]),
        }
    }

    /// A token with `claims`, signed with this key and naming it.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.private).expect("sign a token")
    }

    /// A forgery: HS256 with this key's public PEM as the HMAC secret, naming this key (the
    /// algorithm-confusion attack on verifiers that let the token pick the algorithm).
    pub fn forge_hs256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&self.public_pem)).unwrap()
    }
}

/// The key set document of `signers`, as the agent serves it.
pub fn key_set(signers: &[&Signer]) -> String {
    json!({ "keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Nomad's claims for task `server` of group `web` of `job` in `namespace`, audience
/// `nomad-secrets`, valid for an hour from now.
pub fn claims(namespace: &str, job: &str) -> Value {
    let now = now();
    json!({
        "nomad_namespace": namespace,
        "nomad_job_id": job,
        "nomad_allocation_id": "5c6328f7-48c5-4d03-bada-91ef2e904d0d",
        "nomad_task": "server",
        "sub": format!("global:{namespace}:{job}:web:server:secrets"),
        "aud": ["nomad-secrets"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    })
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", B64.encode(claims.to_string()))
}

/// `token` with its payload replaced by `claims`, its signature kept.
pub fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    )
}
