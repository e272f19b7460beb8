//! The SDK's failures as messages. Key Vault's own error bodies name the secret and, for a
//! denial, the action and the caller's ids, never a value, so their message is quoted (on one
//! line); Entra ID's answers are described by their `AADSTS` codes, never quoted (they can echo
//! the request). Failures on the way (TLS, DNS, time) are this plugin's own errors, carried
//! through the SDK and found again by type.

use azure_core::error::ErrorKind as SdkKind;
use azure_core::http::StatusCode;
use nomad_secrets_protocol::{Error, ErrorKind, find_cause};

use crate::credentials::Source;

/// Key Vault's error body: `{"error": {"code", "message", "innererror": {"code"}}}`.
struct KeyVaultError {
    code: String,
    inner: String,
    message: String,
}

impl KeyVaultError {
    fn parse(body: &[u8]) -> Option<KeyVaultError> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = json.get("error")?;
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        Some(KeyVaultError {
            code: text(&error["code"]),
            inner: text(&error["innererror"]["code"]),
            message: error["message"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

/// The message for a failed read of `what` (`<vault>/<secret>[ version <v>]`).
pub fn describe(error: &azure_core::Error, what: &str, versioned: bool, source: &Source) -> Error {
    if let Some(ours) = find_cause::<Error>(error) {
        return ours.clone();
    }
    match error.kind() {
        SdkKind::Credential => return credential_failure(error, source),
        SdkKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let body = raw_response.as_ref().map(|r| r.body().as_ref().to_vec());
            let parsed = body.as_deref().and_then(KeyVaultError::parse);
            return answer(*status, parsed, what, versioned, source);
        }
        _ => {}
    }
    // The SDK's own checks before or around a call: the vault's challenge naming another
    // resource than the vault's (refused, so that no token for another service is ever sent
    // there), an answer that is not Key Vault's JSON.
    match error.kind() {
        SdkKind::DataConversion => Error::unavailable(format!(
            "the answer about `{what}` is not Key Vault's: it cannot be read as one"
        ))
        .hint("check `endpoint_url` and `connect_to`: a proxy or another service may be answering"),
        _ => Error::denied(format!(
            "the vault's authentication challenge for `{what}` was refused: it names no resource of the vault's domain, so no token is sent"
        ))
        .hint("check the vault's name and `vault_suffix`; with `endpoint_url`, the operator's URL is trusted as the vault"),
    }
}

fn answer(
    status: StatusCode,
    parsed: Option<KeyVaultError>,
    what: &str,
    versioned: bool,
    source: &Source,
) -> Error {
    let status = u16::from(status);
    let Some(parsed) = parsed else {
        return Error::unavailable(format!(
            "the vault answered HTTP {status} about `{what}`, not as Key Vault would"
        ))
        .hint("check `endpoint_url` and `connect_to`: a proxy may be answering instead");
    };
    let message = &parsed.message;
    match (status, parsed.code.as_str(), parsed.inner.as_str()) {
        (404, _, _) if versioned => Error::not_found(format!(
            "Key Vault has no such version of `{what}`: {message}"
        ))
        .hint("leave `?version` out for the latest, or check the version id"),
        (404, _, _) => Error::not_found(format!("Key Vault has no secret `{what}`: {message}"))
            .hint("check the secret's and the vault's names"),
        (403, _, "SecretDisabled") => Error::not_found(format!(
            "`{what}` is disabled in Key Vault: {message}"
        ))
        .hint("enable the secret (or this version), or read another version with `?version=`"),
        (403, _, _) => Error::denied(format!(
            "Key Vault denied reading `{what}` to {}: {message}",
            source.used
        ))
        .hint("grant the role \"Key Vault Secrets User\" (or an access policy with secret `get`) on the vault or the secret to that principal"),
        (401, _, _) => Error::denied(format!(
            "Key Vault did not accept the token of {} for `{what}`: {message}",
            source.used
        ))
        .hint("the vault must be in the app's tenant (`tenant_id`); check `authority_host` for sovereign clouds"),
        (429, _, _) => Error::unavailable(format!(
            "Key Vault is throttling: it still refused `{what}` when the run's deadline left no room to wait again: {message}"
        ))
        .hint("the operator's `cache_ttl` makes a node ask once per job and secret; a longer `deadline` (Nomad 2.x allows 60 s) leaves more room to wait; Key Vault's limits are per vault"),
        (400, code, _) => Error::invalid_path(format!(
            "Key Vault refused the request for `{what}` ({code}): {message}"
        )),
        (status, code, _) => Error::unavailable(format!(
            "Key Vault failed reading `{what}` (HTTP {status}, {code}): {message}"
        ))
        .hint("try again later"),
    }
}

/// A token could not be had: described by Entra ID's error codes, never its words.
fn credential_failure(error: &azure_core::Error, source: &Source) -> Error {
    let mut codes = None;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(sdk) = current.downcast_ref::<azure_core::Error>()
            && let SdkKind::HttpResponse {
                status, error_code, ..
            } = sdk.kind()
        {
            codes = Some((u16::from(*status), error_code.clone()));
            break;
        }
        next = current.source();
    }
    let used = &source.used;
    match (codes, source.entra) {
        (Some((status, Some(codes))), true) => {
            let codes = codes
                .split(',')
                .map(|code| format!("AADSTS{code}"))
                .collect::<Vec<_>>()
                .join(", ");
            Error::denied(format!(
                "Entra ID refused {used} (HTTP {status}, {codes})"
            ))
            .hint("look the code up in Entra ID's error reference; check `tenant_id`, `client_id`, the secret's or certificate's expiry, and for a job's token the app's federated credentials (issuer, subject, audience)")
        }
        (Some((status, _)), true) => Error::denied(format!(
            "Entra ID refused {used} (HTTP {status})"
        ))
        .hint("check `tenant_id`, `client_id` and `authority_host`"),
        (Some((status, _)), false) => Error::denied(format!(
            "no token from {used} (HTTP {status})"
        ))
        .hint("check that the identity exists and is assigned to this machine (`client_id` for a user-assigned one)"),
        (None, _) => Error::new(
            ErrorKind::Unavailable,
            format!("no token from {used}"),
        )
        .hint("check that this node can reach Entra ID (`authority_host`) or IMDS (`imds_endpoint`)"),
    }
}
