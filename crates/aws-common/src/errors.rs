//! Turning the SDK's errors into messages that say what failed and what to do.
//!
//! AWS error messages name the secret, the region and the principal, never a value, so they are
//! quoted. Credential-loading errors are described from what was configured rather than quoted:
//! their text can include profile file contents.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use nomad_secrets_net::{TlsFailure, cause as find, tls_failure};
use nomad_secrets_protocol::{Error, ErrorKind};

use crate::client::Setup;

/// The message for a failed call to `setup.service`. `own` maps the service's own modeled
/// errors (a missing resource, say) and returns `None` for the rest, which get the messages
/// every AWS service shares: STS refusing a role, credentials, timeouts, connections, answers
/// that are not the service's, and the common error codes.
pub fn describe<E, R>(
    error: SdkError<E, R>,
    setup: &Setup,
    own: impl FnOnce(&E, &str) -> Option<Error>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    described(&error, setup, own).because(error)
}

fn described<E, R>(
    error: &SdkError<E, R>,
    setup: &Setup,
    own: impl FnOnce(&E, &str) -> Option<Error>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let file = &setup.settings_name;
    if let (Some(role), Some(refused)) = (&setup.role, find::<AssumeRoleError>(error)) {
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
    if let (Some(role), Some(_)) = (&setup.role, find::<CredentialsError>(error)) {
        let why = match find::<ConnectorError>(error) {
            Some(connector) if connector.is_timeout() => {
                "AWS STS did not answer in time".to_owned()
            }
            Some(connector) => format!("cannot connect to AWS STS: {}", short(connector)),
            None => "the credentials to assume it with could not be loaded".to_owned(),
        };
        return Error::denied(format!("could not assume role `{role}`: {why}")).hint(format!(
            "check `sts_endpoint_url` in {file} and the network, and that the node has credentials"
        ));
    }
    if let Some(credentials) = find::<CredentialsError>(error) {
        return no_credentials(credentials, setup);
    }
    match error {
        SdkError::ServiceError(service) => {
            let error = service.err();
            // Collapsed to one line: some endpoints pad their messages with runs of spaces.
            let message = error
                .message()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end_matches('.')
                .to_owned();
            match own(error, &message) {
                Some(described) => described,
                None => common_code(error.code(), &message, setup),
            }
        }
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
            "`{}` sent an answer that is not a {} response",
            setup.endpoint, setup.service.name
        ))
        .hint(format!(
            "check `{}` in {file}",
            setup.service.endpoint_setting.name()
        )),
        other => Error::unavailable(format!("the request could not be made: {}", short(other))),
    }
}

/// The error codes every AWS service shares.
fn common_code(code: Option<&str>, message: &str, setup: &Setup) -> Error {
    let file = &setup.settings_name;
    match code {
        Some("AccessDeniedException" | "AccessDenied") => {
            Error::denied(format!("access denied: {message}")).hint(format!(
                "grant {} on the {} to the principal named above",
                setup.service.read_action, setup.service.resource
            ))
        }
        Some("ExpiredTokenException" | "ExpiredToken") => Error::denied(format!(
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
        Some(code) if crate::throttle::CODES.contains(&code) => Error::unavailable(format!(
            "AWS {} is throttling: it still answered `{code}` when the run's deadline left no \
             room to wait again ({message})",
            setup.service.name
        ))
        .hint(
            "the operator's `cache_ttl` makes a node ask once per job and secret (and \
             `cache_max_stale` serves the last value while the store throttles); a longer \
             `deadline` (Nomad 2.x allows 60 s) leaves more room to wait; or raise the account's \
             API quota",
        ),
        Some("InternalServerError" | "InternalServiceError" | "InternalFailure") => {
            Error::unavailable(format!(
                "AWS {} failed in `{}`: {message}",
                setup.service.name, setup.region
            ))
            .hint("try again later")
        }
        Some(code) => Error::unavailable(format!("AWS answered `{code}`: {message}")),
        None if message.is_empty() => Error::unavailable(format!(
            "`{}` sent an answer that is not a {} response",
            setup.endpoint, setup.service.name
        ))
        .hint(format!(
            "check `{}` in {file}, and any proxy between this node and AWS",
            setup.service.endpoint_setting.name()
        )),
        None => Error::unavailable(format!("AWS answered with an error: {message}")),
    }
}

/// The message for a failed `check` (STS `GetCallerIdentity`).
pub fn describe_check<E, R>(error: SdkError<E, R>, setup: &Setup) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    described_check(&error, setup).because(error)
}

fn described_check<E, R>(error: &SdkError<E, R>, setup: &Setup) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(credentials) = find::<CredentialsError>(error) {
        return no_credentials(credentials, setup);
    }
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
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
        other => Error::unavailable(format!("STS GetCallerIdentity failed: {}", short(other))),
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
    } else if let Some(failure) = tls_failure(error) {
        let text = match failure {
            TlsFailure::Expired => {
                return Error::denied(format!(
                    "TLS with `{endpoint}` failed: its certificate has expired"
                ))
                .hint("the endpoint's (or a proxy's) certificate must be renewed; if it is current, check this node's clock");
            }
            TlsFailure::Other(text) => text,
        };
        Error::denied(format!("TLS with `{endpoint}` failed: {text}"))
            .hint(format!("the endpoint's certificate must be signed by a CA in the node's trust store (/etc/ssl/certs) or in `ca_file` in {} (a TLS-inspecting proxy's CA, a private endpoint's); `{}` must name the real endpoint", setup.settings_name, setup.service.endpoint_setting.name()))
    } else {
        Error::unavailable(format!("cannot connect to `{endpoint}`: {}", short(error))).hint(
            format!(
                "check `{}` in {}, DNS and the network",
                setup.service.endpoint_setting.name(),
                setup.settings_name
            ),
        )
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
    if setup.manual {
        return Error::denied(format!(
            "no AWS credentials ({why}): AWS_ACCESS_KEY_ID is unset, the profile files (~/.aws, AWS_CONFIG_FILE, or the settings file's) gave none, no web identity or container credentials are set, and {imds}"
        ))
        .hint("configure credentials as for the AWS CLI (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    }
    if let Some(credential) = setup.job_credential {
        return Error::denied(format!(
            "the job's own {credential} gave no AWS credentials ({why}); the node's are never \
             used in their place"
        ))
        .hint(match credential {
            "ECS task role" => {
                "check AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (the task's own, from the ECS agent)"
            }
            _ => "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the secret's env block",
        });
    }
    let profile = match setup.profile {
        true => "the operator's profile file gave none",
        false => "the operator configured no profile file",
    };
    Error::denied(format!(
        "no AWS credentials ({why}): the job's env has no AWS_ACCESS_KEY_ID, {profile}, and {imds}"
    ))
    .hint("give the node an instance role, or set credentials in the operator's `credentials_file`, or pass AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the secret's env block")
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
