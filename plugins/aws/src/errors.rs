//! Secrets Manager's own errors; everything else is `nomad_secrets_aws_common::errors`'.

use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use nomad_secrets_aws_common::Setup;
use nomad_secrets_protocol::Error;

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
pub fn describe<R: std::fmt::Debug + Send + Sync + 'static>(
    error: SdkError<GetSecretValueError, R>,
    asked: &Asked,
    setup: &Setup,
) -> Error {
    nomad_secrets_aws_common::errors::describe(error, setup, |error, message| {
        service_error(error, message, asked, setup)
    })
}

fn service_error(
    error: &GetSecretValueError,
    message: &str,
    asked: &Asked,
    setup: &Setup,
) -> Option<Error> {
    let region = &setup.region;
    let id = asked.id;
    let file = &setup.settings_name;
    Some(match error {
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
                    .hint(match setup.manual {
                        false => format!("check the name or ARN, and the region (the job's AWS_REGION or `region` in {file})"),
                        true => "check the name or ARN, and the region (AWS_REGION, or the profile's)".to_owned(),
                    }),
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
            if message.contains("deletion") || message.contains("marked deleted") =>
        {
            Error::not_found(format!("secret `{id}` is scheduled for deletion"))
                .hint("restore it with `aws secretsmanager restore-secret`, or use another secret")
        }
        GetSecretValueError::InvalidRequestException(_)
        | GetSecretValueError::InvalidParameterException(_) => {
            Error::invalid_path(format!("AWS refused the request for `{id}`: {message}"))
        }
        _ => return None,
    })
}
