//! A GCE metadata server, an STS and a Secret Manager double on 127.0.0.1, for what drongo cannot
//! do. They follow the documented shapes: the metadata token endpoint answers only with
//! `Metadata-Flavor: Google`; the STS (`POST /v1/token`, RFC 8693 token exchange, form-encoded)
//! answers `{access_token, issued_token_type, token_type, expires_in}` or an OAuth error
//! `{error, error_description}`; Secret Manager errors are `{"error": {code, message, status}}`.
//!
//! | path (after `/v1/projects/acme/secrets/`) | answer |
//! |---|---|
//! | `denied/versions/latest:access` | 403 PERMISSION_DENIED naming the permission |
//! | `quota/versions/latest:access` | 429 RESOURCE_EXHAUSTED |
//! | `quota-twice/versions/latest:access` | 429 RESOURCE_EXHAUSTED twice (per double), then the secret |
//! | `badcrc/versions/latest:access` | a payload whose `dataCrc32c` does not match |
//! | `goodcrc/versions/latest:access` | `123456789` with its right `dataCrc32c` (the published check value) |
//! | `mds/versions/latest:access` | the secret, only with the metadata server's token |
//! | `wif/versions/latest:access` | the secret, only with the token the STS gave for [`WIF_JWT`] |
//!
//! `/computeMetadata/v1/instance/service-accounts/default/token` gives the metadata token;
//! `/v1/token` exchanges exactly [`WIF_JWT`] for [`WIF_AUDIENCE`] (any other JWT or audience is
//! `invalid_grant`), and only for a token-exchange grant of a JWT asking for an access token.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::http::{Request, Response, Server};

/// The token the metadata double hands out.
pub const MDS_TOKEN: &str = "ya29.CANARY-from-metadata";
/// The workload identity JWT the STS double accepts (its shape, not a real signature).
pub const WIF_JWT: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJub21hZF9qb2JfaWQiOiJhcGkifQ.CANARY-wif-signature";
/// The pool provider the STS double exchanges for.
pub const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/nomad/providers/nomad";
/// The token the STS double gives for [`WIF_JWT`].
const STS_TOKEN: &str = "ya29.CANARY-from-sts";

/// A running double; it stops with the test process.
pub struct GcpFaults {
    url: String,
}

impl GcpFaults {
    /// Starts the double.
    pub fn start() -> GcpFaults {
        GcpFaults::accepting(Vec::new())
    }

    /// Starts the double with its STS also accepting `jwts` (tokens made per test run, such
    /// as verified Nomad workload identities).
    pub fn accepting(jwts: Vec<String>) -> GcpFaults {
        let server = Server::bind();
        let url = server.url();
        // The `quota-twice` reads answered 429 so far.
        let throttled = AtomicU32::new(0);
        server.serve(move |request: &Request| {
            let (status, answer) = match request.target.as_str() {
                "/v1/token" => exchange(&String::from_utf8_lossy(&request.body), &jwts),
                _ => answer(
                    &request.path,
                    request.header("metadata-flavor"),
                    request.header("authorization"),
                    &throttled,
                ),
            };
            Response::new(status)
                .header("Content-Type", "application/json")
                .header("Metadata-Flavor", "Google")
                .body(answer)
        });
        GcpFaults { url }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The STS's token exchange: the form's fields checked as Google's STS documents them.
fn exchange(form: &str, accepted: &[String]) -> (&'static str, String) {
    let fields: Vec<(String, String)> = form
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let refused = |description: &str| {
        (
            "400 Bad Request",
            serde_json::json!({"error": "invalid_grant", "error_description": description})
                .to_string(),
        )
    };
    if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        || field("subject_token_type") != Some("urn:ietf:params:oauth:token-type:jwt")
        || field("requested_token_type") != Some("urn:ietf:params:oauth:token-type:access_token")
    {
        return refused("not a token exchange of a JWT for an access token");
    }
    if field("audience") != Some(WIF_AUDIENCE) {
        return refused("The audience in ID Token does not match the expected audience.");
    }
    let subject = field("subject_token").unwrap_or_default();
    if subject != WIF_JWT && !accepted.iter().any(|jwt| jwt == subject) {
        return refused("ID Token issued at 0 is stale to sign-in.");
    }
    (
        "200 OK",
        serde_json::json!({
            "access_token": STS_TOKEN,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        })
        .to_string(),
    )
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(code: u16, status: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message, "status": status}}).to_string()
}

fn payload(name: &str, data: &[u8], crc: Option<i64>) -> String {
    use base64::Engine as _;
    let mut payload =
        serde_json::json!({"data": base64::engine::general_purpose::STANDARD.encode(data)});
    if let Some(crc) = crc {
        payload["dataCrc32c"] = crc.to_string().into();
    }
    serde_json::json!({"name": format!("projects/acme/secrets/{name}/versions/1"), "payload": payload}).to_string()
}

fn answer(
    path: &str,
    flavor: Option<&str>,
    authorization: Option<&str>,
    throttled: &AtomicU32,
) -> (&'static str, String) {
    if path.starts_with("/computeMetadata/") {
        if flavor != Some("Google") {
            return (
                "403 Forbidden",
                "Missing Metadata-Flavor:Google header.".into(),
            );
        }
        return match path {
            "/computeMetadata/v1/instance/service-accounts/default/token" => (
                "200 OK",
                serde_json::json!({"access_token": MDS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
            ),
            "/computeMetadata/v1/project/project-id" => ("200 OK", "acme".into()),
            _ => ("404 Not Found", "Not Found".into()),
        };
    }
    let secret = path
        .strip_prefix("/v1/projects/acme/secrets/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let data = b"{\"password\":\"CANARY-gcp-double\"}";
    match secret {
        "denied" => (
            "403 Forbidden",
            error(
                403,
                "PERMISSION_DENIED",
                "Permission 'secretmanager.versions.access' denied for resource 'projects/acme/secrets/denied/versions/latest' (or it may not exist).",
            ),
        ),
        "quota-twice" if throttled.fetch_add(1, Ordering::SeqCst) >= 2 => {
            ("200 OK", payload(secret, data, None))
        }
        "quota" | "quota-twice" => (
            "429 Too Many Requests",
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute' of service 'secretmanager.googleapis.com' for consumer 'project_number:123456789'.",
            ),
        ),
        "badcrc" => ("200 OK", payload(secret, data, Some(12345))),
        // CRC32C's published check value: "123456789" gives 0xE3069283.
        "goodcrc" => ("200 OK", payload(secret, b"123456789", Some(0xE306_9283))),
        "mds" if authorization == Some(&format!("Bearer {MDS_TOKEN}")) => {
            ("200 OK", payload(secret, data, None))
        }
        "wif" if authorization == Some(&format!("Bearer {STS_TOKEN}")) => {
            ("200 OK", payload(secret, data, None))
        }
        "mds" | "wif" => (
            "401 Unauthorized",
            error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
        _ => (
            "404 Not Found",
            error(
                404,
                "NOT_FOUND",
                "Secret [projects/acme/secrets/x] not found or has no versions.",
            ),
        ),
    }
}
