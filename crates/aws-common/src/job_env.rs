//! Which `AWS_*` variables a job's `env {}` may pass to the SDK.
//!
//! The plugin runs as the Nomad agent's user (usually root) with the node's credentials. A job
//! may bring its own credentials and choose its region, but it may not choose where credentials
//! are sent (endpoints, container-credential URLs) or make the plugin read files (credential,
//! config and token files): those are the operator's settings. Any other `AWS_*` variable is an
//! error naming the setting to use instead, never silently ignored.

use std::collections::HashMap;
use std::ffi::OsString;

use nomad_secrets_protocol::Error;

/// Variables a job may set, read by the SDK from the environment as usual.
const JOB_MAY_PASS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    // A relative URI goes to the fixed ECS agent address 169.254.170.2.
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// Variables outside `AWS_*` that the TLS stack reads: which CAs the plugin trusts is the
/// node's trust store, not the job's (a job's CA plus its DNS would see every secret).
const TRUST_VARIABLES: &[&str] = &["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Variables read by the protocol's settings (allowed or refused there).
const SETTINGS_VARIABLES: &[&str] = &["AWS_REGION", "AWS_PROFILE"];

/// What to say about a refused variable: the operator setting (in `file`) that replaces it.
fn instead(variable: &str, file: &str) -> String {
    let said = match variable {
        v if v.starts_with("AWS_ENDPOINT_URL") => "the operator sets `endpoint_url` in aws.toml",
        "AWS_DEFAULT_REGION" => "use `AWS_REGION`",
        "AWS_CONFIG_FILE" => "the operator sets `config_file` in aws.toml",
        "AWS_SHARED_CREDENTIALS_FILE" => "the operator sets `credentials_file` in aws.toml",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT" | "AWS_EC2_METADATA_DISABLED" => {
            "the operator sets `imds_endpoint` in aws.toml"
        }
        "SSL_CERT_FILE" | "SSL_CERT_DIR" => {
            "the plugin trusts the node's CA store (/etc/ssl/certs), which the operator manages"
        }
        "AWS_WEB_IDENTITY_TOKEN_FILE" | "AWS_ROLE_ARN" | "AWS_ROLE_SESSION_NAME" => {
            "web identity and roles come from a profile in the operator's `config_file`"
        }
        _ => "only the operator configures this, in aws.toml",
    };
    said.replace("aws.toml", file)
}

/// Fails on the first `AWS_*` or trust-store variable (in name order) that a job may not set;
/// `file` is the settings file's name, for the hint.
pub fn check(env: &HashMap<OsString, OsString>, file: &str) -> Result<(), Error> {
    let mut names: Vec<&str> = env.keys().filter_map(|k| k.to_str()).collect();
    names.sort_unstable();
    for name in names {
        let is_aws = name.starts_with("AWS_");
        let refused =
            (is_aws && !JOB_MAY_PASS.contains(&name) && !SETTINGS_VARIABLES.contains(&name))
                || TRUST_VARIABLES.contains(&name);
        if refused {
            return Err(Error::settings(format!(
                "the job's env sets `{name}`, which a job may not set: it decides where \
                 credentials are sent or which files the plugin reads"
            ))
            .hint(format!(
                "remove it from the secret's env block; {}",
                instead(name, file)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(names: &[&str]) -> HashMap<OsString, OsString> {
        names.iter().map(|n| (n.into(), "x".into())).collect()
    }

    #[test]
    fn the_jobs_own_credentials_and_region_pass() {
        let ok = env(&[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "NOMAD_JOB_ID",
            "DB",
        ]);
        assert!(check(&ok, "aws.toml").is_ok());
    }

    #[test]
    fn redirections_and_files_are_refused_with_the_setting_to_use() {
        for (name, hint) in [
            (
                "AWS_ENDPOINT_URL",
                "the operator sets `endpoint_url` in aws.toml",
            ),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                "the operator sets `endpoint_url` in aws.toml",
            ),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "only the operator configures this, in aws.toml",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "only the operator configures this, in aws.toml",
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "the operator sets `credentials_file` in aws.toml",
            ),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "web identity and roles come from a profile in the operator's `config_file`",
            ),
            (
                "SSL_CERT_FILE",
                "the plugin trusts the node's CA store (/etc/ssl/certs), which the operator manages",
            ),
            (
                "SSL_CERT_DIR",
                "the plugin trusts the node's CA store (/etc/ssl/certs), which the operator manages",
            ),
        ] {
            let error = check(&env(&[name]), "aws.toml").unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("the job's env sets `{name}`")),
                "{error}"
            );
            assert!(error.ends_with(&format!("; {hint})")), "{error}");
        }
    }
}
