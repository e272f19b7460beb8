//! Turning the SDK's errors into messages that say what failed and what to do.
//!
//! AWS error messages name the secret, the region and the principal, never a value, so they are
//! quoted. Credential-loading errors are described from what was configured rather than quoted:
//! their text can include profile file contents.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use nomad_secrets_protocol::{Error, ErrorKind};

use crate::client::Setup;

/// What was asked, for messages.
pub struct Asked<'a> {
    /// The secret id (name or ARN).
    pub id: &'a str,
    /// The version stage asked for, if any.
    pub stage: Option<&'a str>,
    /// The version id asked for, if any.
    pub version_id: Option<&'a str>,
}

/// The message for a failed `GetSecretValue`.
pub fn describe<R: std::fmt::Debug + 'static>(
    error: SdkError<GetSecretValueError, R>,
    asked: &Asked,
    setup: &Setup,
) -> Error {
    if let (Some(role), Some(refused)) = (&setup.role, find::<AssumeRoleError>(&error)) {
        let what = match refused.code() {
            Some(code) => format!("{code}: {}", refused.message().unwrap_or("")),
            None => refused.message().unwrap_or("no reason given").to_owned(),
        };
        return Error::denied(format!(
            "AWS STS did not let the plugin assume role `{role}`: {what}"
        ))
        .hint(
            "the role's trust policy must allow the node's (or the job's) credentials to assume it",
        );
    }
    if let (Some(role), Some(_)) = (&setup.role, find::<CredentialsError>(&error)) {
        let why = match find::<ConnectorError>(&error) {
            Some(connector) if connector.is_timeout() => {
                "AWS STS did not answer in time".to_owned()
            }
            Some(connector) => format!("cannot connect to AWS STS: {}", short(connector)),
            None => "the credentials to assume it with could not be loaded".to_owned(),
        };
        return Error::denied(format!("could not assume role `{role}`: {why}"))
            .hint("check `sts_endpoint_url` in aws.toml and the network, and that the node has credentials");
    }
    if let Some(credentials) = find::<CredentialsError>(&error) {
        return no_credentials(credentials, setup);
    }
    match error {
        SdkError::ServiceError(service) => service_error(service.into_err(), asked, setup),
        SdkError::TimeoutError(_) => Error::new(
            ErrorKind::Timeout,
            format!("no answer from `{}` in time", setup.endpoint),
        )
        .hint(
            "check that this node can reach the endpoint (security groups, VPC endpoints, proxies)",
        ),
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => connection_error(connector, setup),
            None => Error::unavailable(format!("the request to `{}` failed", setup.endpoint)),
        },
        SdkError::ResponseError(_) => Error::unavailable(format!(
            "`{}` sent an answer that is not a Secrets Manager response",
            setup.endpoint
        ))
        .hint("check `endpoint_url` in aws.toml"),
        other => Error::unavailable(format!("the request could not be made: {}", short(&other))),
    }
}

/// The message for a failed `check` (STS `GetCallerIdentity`).
pub fn describe_check<E, R>(error: SdkError<E, R>, setup: &Setup) -> Error
where
    E: std::error::Error + aws_sdk_sts::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(credentials) = find::<CredentialsError>(&error) {
        return no_credentials(credentials, setup);
    }
    match error {
        SdkError::ServiceError(service) => {
            let e = service.into_err();
            Error::denied(format!(
                "STS at `{}` refused the credentials: {}: {}",
                setup.endpoint,
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            ))
        }
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => connection_error(connector, setup),
            None => Error::unavailable(format!("the request to `{}` failed", setup.endpoint)),
        },
        other => Error::unavailable(format!("STS GetCallerIdentity failed: {}", short(&other))),
    }
}

fn service_error(error: GetSecretValueError, asked: &Asked, setup: &Setup) -> Error {
    // Collapsed to one line: some endpoints pad their messages with runs of spaces.
    let message = error
        .message()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches('.')
        .to_owned();
    let region = &setup.region;
    let id = asked.id;
    match &error {
        GetSecretValueError::ResourceNotFoundException(_) => {
            let version = match (asked.version_id, asked.stage) {
                (Some(version), _) => Some(format!("version id `{version}`")),
                (None, Some(stage)) => Some(format!("version with stage `{stage}`")),
                (None, None) => None,
            };
            match version {
                None if setup.regional_override.is_some() => Error::not_found(format!(
                    "no secret `{id}` in region `{region}`, the ARN's region"
                ))
                .hint(format!(
                    "the operator's `endpoint_url` `{}` is regional and may not serve `{region}`: fetch by name through it, or use an endpoint of the ARN's region",
                    setup.regional_override.as_deref().unwrap_or_default()
                )),
                None => Error::not_found(format!("no secret `{id}` in region `{region}`"))
                    .hint("check the name or ARN, and the region (the job's AWS_REGION or `region` in aws.toml)"),
                Some(version) => Error::not_found(format!(
                    "no {version} of secret `{id}` in region `{region}` (or no such secret)"
                ))
                .hint("list the versions with `aws secretsmanager list-secret-version-ids`"),
            }
        }
        GetSecretValueError::DecryptionFailure(_) => Error::denied(format!(
            "AWS KMS could not decrypt secret `{id}`: {message}"
        ))
        .hint("the credentials need kms:Decrypt on the secret's KMS key"),
        GetSecretValueError::InvalidRequestException(_)
            if message.contains("deletion") || message.contains("marked deleted") => {
            Error::not_found(format!("secret `{id}` is scheduled for deletion"))
                .hint("restore it with `aws secretsmanager restore-secret`, or use another secret")
        }
        GetSecretValueError::InvalidRequestException(_)
        | GetSecretValueError::InvalidParameterException(_) => {
            Error::invalid_path(format!("AWS refused the request for `{id}`: {message}"))
        }
        GetSecretValueError::InternalServiceError(_) => Error::unavailable(format!(
            "AWS Secrets Manager failed in `{region}`: {message}"
        ))
        .hint("try again later"),
        _ => match error.code() {
            Some("AccessDeniedException") => Error::denied(format!("access denied: {message}"))
                .hint("grant secretsmanager:GetSecretValue on the secret to the principal named above"),
            Some("ExpiredTokenException") => Error::denied(format!(
                "AWS rejected the credentials as expired: {message}"
            ))
            .hint("session credentials end with their session: a job's AWS_SESSION_TOKEN must be renewed with its keys; the node's own are loaded afresh at every fetch, so check that their source (a profile's session, the container or instance role) is current and that the node's clock is right"),
            Some(
                "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch",
            ) => Error::denied(format!("AWS rejected the credentials: {message}"))
                .hint("check the access key, secret key and session token, and their expiry"),
            Some("ThrottlingException") => Error::unavailable(format!(
                "AWS throttled the request {} times: {message}",
                crate::client::ATTEMPTS
            ))
            .hint("many fetches at once; try again, or raise the account's API quota"),
            Some(code) => Error::unavailable(format!("AWS answered `{code}`: {message}")),
            None if message.is_empty() => Error::unavailable(format!(
                "`{}` sent an answer that is not a Secrets Manager response",
                setup.endpoint
            ))
            .hint("check `endpoint_url` in aws.toml, and any proxy between this node and AWS"),
            None => Error::unavailable(format!("AWS answered with an error: {message}")),
        },
    }
}

fn connection_error(error: &ConnectorError, setup: &Setup) -> Error {
    let endpoint = &setup.endpoint;
    if error.is_timeout() {
        Error::new(
            ErrorKind::Timeout,
            format!("no answer from `{endpoint}` in time"),
        )
        .hint(
            "check that this node can reach the endpoint (security groups, VPC endpoints, proxies)",
        )
    } else if is_tls(&short(error)) {
        let text = short(error);
        if text.contains("certificate expired") {
            return Error::denied(format!(
                "TLS with `{endpoint}` failed: its certificate has expired"
            ))
            .hint("the endpoint's (or a proxy's) certificate must be renewed; if it is current, check this node's clock");
        }
        Error::denied(format!("TLS with `{endpoint}` failed: {text}"))
            .hint("the endpoint's certificate must be signed by a CA in the node's trust store (/etc/ssl/certs) or in `ca_file` in aws.toml (a TLS-inspecting proxy's CA, a private endpoint's); `endpoint_url` must name the real endpoint")
    } else {
        Error::unavailable(format!("cannot connect to `{endpoint}`: {}", short(error)))
            .hint("check `endpoint_url` in aws.toml, DNS and the network")
    }
}

fn no_credentials(error: &CredentialsError, setup: &Setup) -> Error {
    let why = match error {
        CredentialsError::ProviderTimedOut(_) => "loading them timed out",
        CredentialsError::InvalidConfiguration(_) => "the configuration is invalid",
        CredentialsError::ProviderError(_) => "a provider failed",
        _ => "none of the sources had any",
    };
    let imds = match &setup.imds {
        Some(endpoint) => format!(
            "the instance metadata service at `{endpoint}` gave none (not an EC2 instance, or no instance role?)"
        ),
        None => "the instance metadata service is off (`imds_endpoint = \"off\"`)".to_owned(),
    };
    let profile = match setup.profile {
        true => "the operator's profile file gave none",
        false => "the operator configured no profile file",
    };
    Error::denied(format!(
        "no AWS credentials ({why}): the job's env has no AWS_ACCESS_KEY_ID, {profile}, and {imds}"
    ))
    .hint("give the node an instance role, or set credentials in the operator's `credentials_file`, or pass AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the secret's env block")
}

/// Whether a connection failure's text is rustls's: a certificate or handshake failure.
fn is_tls(text: &str) -> bool {
    ["certificate", "handshake", "tls"]
        .iter()
        .any(|word| text.contains(word))
}

/// The first error of type `E` in `error`'s source chain.
fn find<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The innermost cause's text, which names the failure (`Connection refused`), on one line.
fn short(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = current.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_lowercase(),
        None => text.lines().next().unwrap_or("").to_lowercase(),
    }
}
