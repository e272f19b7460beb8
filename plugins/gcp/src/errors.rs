//! Secret Manager's failures as messages. GCP's own messages name the resource and, for a
//! denial, the permission; never a value, so they are quoted. Credential errors are described,
//! not quoted (their text can hold a token endpoint's answer).

use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use nomad_secrets_net::{TlsFailure, cause, tls_failure};
use nomad_secrets_protocol::{Error, ErrorKind};

use crate::credentials::Source;

/// The message for a failed call about `what`.
pub fn describe(error: &GaxError, what: &str, source: &Source) -> Error {
    // Secret Manager's endpoint, or a token endpoint on the way (the STS, the metadata server).
    match tls_failure(error) {
        Some(TlsFailure::Expired) => return Error::denied(format!(
            "TLS failed while reading `{what}`: the server's certificate has expired"
        ))
        .hint("the endpoint's (or a proxy's) certificate must be renewed; if it is current, check this node's clock"),
        Some(TlsFailure::Other(text)) => return Error::denied(format!(
            "TLS failed while reading `{what}`: {text}"
        ))
        .hint("the endpoint's certificate must be signed by a CA in the node's trust store (/etc/ssl/certs) or in `ca_file` in gcp.toml (a TLS-inspecting proxy's CA, a private endpoint's); `endpoint_url` must name the real endpoint"),
        None => {}
    }
    if error.is_authentication() {
        if let Some(sts) = &source.exchange {
            // Described, never quoted: the STS's answer can quote the JWT's claims.
            let transient = cause::<CredentialsError>(error).is_some_and(|e| e.is_transient());
            return match transient {
                true => Error::unavailable(format!("cannot exchange the job's workload identity JWT at `{sts}`: the STS did not answer"))
                    .hint("check that this node can reach the STS (`token_url` in `workload_identity_file`)"),
                false => Error::denied(format!("the STS at `{sts}` refused to exchange the job's workload identity JWT for a Google token"))
                    .hint("check the JWT's issuer, audience and expiry against the workload identity pool provider (`audience` in `workload_identity_file`) and its attribute condition"),
            };
        }
        return crate::credentials::no_credentials(&source.tried);
    }
    if error.is_timeout() {
        return Error::new(
            ErrorKind::Timeout,
            format!("no answer from Secret Manager about `{what}` in time"),
        )
        .hint("check that this node can reach the endpoint (firewall, private access, proxies)");
    }
    if let Some(status) = error.status() {
        let message = status
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        return match status.code {
            Code::NotFound => Error::not_found(format!("Secret Manager has no `{what}`: {message}"))
                .hint("check the secret, its version and the project"),
            Code::FailedPrecondition => Error::not_found(format!(
                "`{what}` cannot be read: {message}"
            ))
            .hint("a disabled version can be enabled again; a destroyed one is gone: read another version with `?version=N`"),
            Code::PermissionDenied => Error::denied(format!("permission denied for `{what}`: {message}"))
                .hint(format!("grant roles/secretmanager.secretAccessor on the secret to the principal of {}", source.used)),
            Code::Unauthenticated => Error::denied(format!("Google rejected the credentials ({}): {message}", source.used))
                .hint("the access token may have expired; a job's GOOGLE_OAUTH_ACCESS_TOKEN must be fresh"),
            Code::ResourceExhausted => Error::unavailable(format!(
                "Secret Manager is throttling: it still answered RESOURCE_EXHAUSTED about `{what}` when the run's deadline left no room to wait again ({message})"
            ))
            .hint(crate::retry::THROTTLED_HINT),
            Code::InvalidArgument => Error::invalid_path(format!("Secret Manager refused `{what}`: {message}")),
            code => Error::unavailable(format!("Secret Manager failed ({code:?}): {message}"))
                .hint("try again later"),
        };
    }
    if crate::retry::is_throttled(error) {
        return Error::unavailable(format!(
            "the endpoint answered HTTP 429 (too many requests) about `{what}` until the run's deadline left no room to wait again"
        ))
        .hint(crate::retry::THROTTLED_HINT);
    }
    if let Some(status) = error.http_status_code() {
        return Error::unavailable(format!(
            "the endpoint answered HTTP {status} for `{what}`, not as Secret Manager would"
        ))
        .hint("check `endpoint_url`: a proxy may be answering instead");
    }
    if error.is_connect() || error.is_io() || error.is_transport() {
        return Error::unavailable(format!("cannot reach Secret Manager about `{what}`"))
            .hint("check `endpoint_url`, DNS and the network");
    }
    Error::unavailable(format!("the request for `{what}` failed"))
}
