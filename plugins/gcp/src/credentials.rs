//! Where the credentials come from, explicitly and in this order, none from a place a job can
//! choose:
//! 1. the job's own access token (`GOOGLE_OAUTH_ACCESS_TOKEN`, as Google's Terraform provider
//!    reads it);
//! 2. the operator's `credentials_file`: a service-account key (which signs its own tokens: no
//!    token endpoint) or an external-account (workload identity federation) file;
//! 3. the metadata server on GCE (`metadata_endpoint`, or `"off"` on machines that are not).
//!
//! A job's `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST`, `CLOUDSDK_*`, proxies and CA
//! bundles are refused with the setting to use instead: they would make root read a file of the
//! job's choice, send the node's token elsewhere, or change whom the plugin trusts.

use std::collections::HashMap;
use std::ffi::OsString;

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag, external_account, mds,
    service_account,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};
use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Request, Secret, Settings};

/// Variables a job may set: its own token, and the project (through `job_may_set`).
const JOB_MAY_PASS: &[&str] = &["GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_CLOUD_PROJECT"];

/// Refuses what a job may not set (by hand everything is the person's own).
pub fn check_job_env(request: &Request) -> Result<(), Error> {
    if request.manual {
        return Ok(());
    }
    let mut names: Vec<&str> = request.env.keys().filter_map(|k| k.to_str()).collect();
    names.sort_unstable();
    for name in names {
        let upper = name.to_ascii_uppercase();
        let ours = upper.starts_with("GOOGLE_")
            || upper.starts_with("GCE_")
            || upper.starts_with("CLOUDSDK_")
            || upper.starts_with("GCLOUD_");
        let trust =
            upper.ends_with("_PROXY") || upper == "SSL_CERT_FILE" || upper == "SSL_CERT_DIR";
        if (ours && !JOB_MAY_PASS.contains(&name)) || trust {
            let instead = match upper.as_str() {
                "GOOGLE_APPLICATION_CREDENTIALS" => {
                    "the operator sets `credentials_file` in gcp.toml"
                }
                u if u.starts_with("GCE_METADATA") => {
                    "the operator sets `metadata_endpoint` in gcp.toml"
                }
                u if u.ends_with("_PROXY") || u.starts_with("SSL_CERT") => {
                    "the plugin's network path and trusted CAs are the operator's (`ca_file`, `endpoint_url`)"
                }
                _ => "only the operator configures this, in gcp.toml",
            };
            return Err(Error::settings(format!(
                "the job's env sets `{name}`, which a job may not set: it decides which file root reads, where the node's token is sent, or whom the plugin trusts"
            ))
            .hint(format!("remove it from the secret's env block; {instead}")));
        }
    }
    Ok(())
}

/// A bearer token given as is (the job's own): never refreshed.
#[derive(Debug)]
struct AccessToken(Secret);

impl CredentialsProvider for AccessToken {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, CredentialsError> {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", self.0.expose()))
            .map_err(|_| {
                CredentialsError::from_msg(
                    false,
                    "the job's access token is not a valid header value",
                )
            })?;
        value.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// Where the credentials came from, for messages.
pub struct Source {
    /// What was used.
    pub used: &'static str,
    /// Every source tried, in order, for the no-credentials message.
    pub tried: String,
}

/// The credentials of `request` (or, for `check`, of the node: `env` empty).
pub fn credentials(
    settings: &Settings,
    env: &HashMap<OsString, OsString>,
    attempts: u32,
) -> Result<(Credentials, Source), Error> {
    let job_token = env
        .get(&OsString::from("GOOGLE_OAUTH_ACCESS_TOKEN"))
        .and_then(|v| v.to_str())
        .filter(|v| !v.is_empty());
    let file = settings.path("credentials_file");
    let metadata = match settings.text("metadata_endpoint") {
        Some("off") => None,
        Some(endpoint) => Some(endpoint.to_owned()),
        None => Some("http://metadata.google.internal".to_owned()),
    };
    let tried = format!(
        "the job's GOOGLE_OAUTH_ACCESS_TOKEN is unset; {}; {}",
        match file {
            Some(f) => format!("`credentials_file` `{}` gave none", f.display()),
            None => "no `credentials_file` is set".to_owned(),
        },
        match &metadata {
            Some(m) => format!("the metadata server at `{m}` gave none"),
            None => "the metadata server is off (`metadata_endpoint = \"off\"`)".to_owned(),
        }
    );
    if let Some(token) = job_token {
        let source = Source {
            used: "the job's access token",
            tried,
        };
        return Ok((Credentials::from(AccessToken(Secret::new(token))), source));
    }
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).map_err(|e| unreadable("credentials_file", file, &e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            Error::settings(format!(
                "`credentials_file` `{}` is not JSON",
                file.display()
            ))
        })?;
        let built = match json["type"].as_str() {
            Some("service_account") => service_account::Builder::new(json).build(),
            Some("external_account") => external_account::Builder::new(json)
                .with_retry_policy(Aip194Strict.with_attempt_limit(attempts))
                .with_backoff_policy(crate::backoff())
                .build(),
            _ => {
                return Err(Error::settings(format!(
                    "`credentials_file` `{}` is neither a service-account key nor an external-account file (its `type`)",
                    file.display()
                )));
            }
        }
        // Described, never quoted: the error could hold the file's content.
        .map_err(|_| {
            Error::settings(format!(
                "`credentials_file` `{}` is not a valid credentials file",
                file.display()
            ))
        })?;
        return Ok((
            built,
            Source {
                used: "the operator's credentials file",
                tried,
            },
        ));
    }
    let Some(endpoint) = metadata else {
        return Err(no_credentials(&tried));
    };
    let built = mds::Builder::default()
        .with_endpoint(endpoint)
        .with_retry_policy(Aip194Strict.with_attempt_limit(attempts))
        .with_backoff_policy(crate::backoff())
        .build()
        .map_err(|_| Error::settings("`metadata_endpoint` is not a valid URL"))?;
    Ok((
        built,
        Source {
            used: "the metadata server",
            tried,
        },
    ))
}

/// The error when no source gave credentials.
pub fn no_credentials(tried: &str) -> Error {
    Error::denied(format!("no GCP credentials: {tried}")).hint(
        "pass the job's own GOOGLE_OAUTH_ACCESS_TOKEN, or ask the operator to set `credentials_file`, or run on GCE with a service account",
    )
}
