//! Parameter Store's own errors; everything else is `nomad_secrets_aws_common::errors`'.

use aws_sdk_ssm::error::SdkError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathError;
use nomad_secrets_aws_common::Setup;
use nomad_secrets_protocol::Error;

/// The message for a failed `GetParameter` of `name` (with `selector`, if any).
pub fn describe<R: std::fmt::Debug + Send + Sync + 'static>(
    error: SdkError<GetParameterError, R>,
    name: &str,
    selector: Option<&str>,
    setup: &Setup,
) -> Error {
    nomad_secrets_aws_common::errors::describe(error, setup, |error, message| {
        let region = &setup.region;
        let what = match selector {
            Some(s) if s.starts_with(|c: char| c.is_ascii_digit()) => format!("version {s}"),
            Some(s) => format!("label `{s}`"),
            None => "version".to_owned(),
        };
        Some(match error {
            // Asked with a selector, "not found" may be the version or label as well.
            GetParameterError::ParameterNotFound(_) if selector.is_some() => Error::not_found(
                format!("parameter `{name}` has no {what} in region `{region}` (or there is no such parameter)"),
            )
            .hint("list its versions and labels with `aws ssm get-parameter-history`"),
            GetParameterError::ParameterNotFound(_) => {
                Error::not_found(format!("no parameter `{name}` in region `{region}`")).hint(
                    match setup.regional_override.as_deref() {
                        Some(endpoint) => format!("the region is the ARN's; the operator's `endpoint_url` `{endpoint}` is regional and may not serve it"),
                        None => "check the name (names are case-sensitive) and the region".to_owned(),
                    },
                )
            }
            GetParameterError::ParameterVersionNotFound(_) => {
                Error::not_found(format!(
                    "parameter `{name}` has no {what} in region `{region}`"
                ))
                .hint("list its versions and labels with `aws ssm get-parameter-history`")
            }
            GetParameterError::InvalidKeyId(_) => kms(name, message),
            _ => return kms_denied(error_code(error), name, message),
        })
    })
}

/// The message for a failed `GetParametersByPath` of `prefix`.
pub fn describe_path<R: std::fmt::Debug + Send + Sync + 'static>(
    error: SdkError<GetParametersByPathError, R>,
    prefix: &str,
    setup: &Setup,
) -> Error {
    nomad_secrets_aws_common::errors::describe(error, setup, |error, message| match error {
        GetParametersByPathError::InvalidKeyId(_) => Some(kms(prefix, message)),
        GetParametersByPathError::InvalidFilterValue(_) => Some(Error::invalid_path(format!(
            "Parameter Store refused the path `{prefix}`: {message}"
        ))),
        _ => kms_denied(error_code(error), prefix, message),
    })
}

fn error_code(error: &impl aws_sdk_ssm::error::ProvideErrorMetadata) -> Option<&str> {
    error.code()
}

/// A SecureString's KMS key that cannot be used.
fn kms(what: &str, message: &str) -> Error {
    Error::denied(format!("AWS KMS refused to decrypt `{what}`: {message}"))
        .hint("the credentials need kms:Decrypt on the SecureString's KMS key")
}

/// Access denied for `kms:Decrypt` rather than for Parameter Store itself.
fn kms_denied(code: Option<&str>, what: &str, message: &str) -> Option<Error> {
    (code == Some("AccessDeniedException") && message.contains("kms:Decrypt"))
        .then(|| kms(what, message))
}
