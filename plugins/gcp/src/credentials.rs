//! Where the credentials come from, explicitly and in this order, none from a place a job can
//! choose:
//! 1. the job's own access token (`GOOGLE_OAUTH_ACCESS_TOKEN`, as Google's Terraform provider
//!    reads it);
//! 2. the job's own workload identity JWT (`GOOGLE_WORKLOAD_IDENTITY_JWT`, a Nomad workload
//!    identity, say), exchanged at Google's STS through the operator's workload identity
//!    federation settings (`workload_identity_file`: its audience, token URL and service account
//!    to impersonate; its `credential_source` is the job's JWT instead);
//!    a verified Nomad workload identity (`NOMAD_WORKLOAD_IDENTITY`) is exchanged the same way
//!    when the job passes neither;
//! 3. the operator's `credentials_file`: a service-account key (which signs its own tokens: no
//!    token endpoint) or an external-account (workload identity federation) file;
//! 4. the metadata server on GCE (`metadata_endpoint`, or `"off"` on machines that are not).
//!
//! By hand, with no `credentials_file`, the person's application default credentials come
//! before the metadata server (`GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's file).
//!
//! What a job may pass is declared in [`JOB_INPUT`] and checked by the protocol: a job's
//! `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST`, `CLOUDSDK_*`, proxies and CA bundles
//! are refused with the setting to use instead.

use std::path::Path;
use std::sync::Arc;

use google_cloud_auth::credentials::subject_token::{self, SubjectToken, SubjectTokenProvider};
use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag, external_account, mds,
    service_account,
};
use google_cloud_auth::errors::{CredentialsError, SubjectTokenProviderError};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};
use nomad_secrets_net::Budget;
use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Identity, JobInput, Secret, Settings, Variable};

/// The job's own access token.
const JOB_TOKEN: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
/// The job's own workload identity JWT.
const JOB_JWT: &str = "GOOGLE_WORKLOAD_IDENTITY_JWT";
/// Google's STS, where a JWT is exchanged unless the operator's file names another.
const GOOGLE_STS: &str = "https://sts.googleapis.com/v1/token";
/// The only service account impersonation endpoint the SDK can call for an exchanged token.
const IMPERSONATION: &str = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/";

/// Where the network path and trust come from, for refused proxy and CA variables.
const NETWORK: &str =
    "the plugin's network path and trusted CAs are the operator's (`ca_file`, `endpoint_url`)";

/// What a job's `env {}` may pass to `gcp`: its own access token or workload identity JWT (one
/// of them), and the project where the operator allows. Everything that would make root read a
/// file of the job's choice, send the node's token elsewhere, or change whom the plugin trusts
/// is refused with the setting to use instead.
pub const JOB_INPUT: &[Variable] = &[
    Variable::credential(JOB_TOKEN, "access token", "the job's own OAuth access token, used as is")
        .by_hand("as under Nomad (as Google's Terraform provider reads it)"),
    Variable::credential(
        JOB_JWT,
        "workload identity JWT",
        "the job's own JWT, exchanged at the STS through the operator's `workload_identity_file`",
    )
    .by_hand("as under Nomad"),
    Variable::refused(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "the operator sets `credentials_file` in the settings file",
    )
    .by_hand("the credentials file, as for gcloud and Google's libraries (when `credentials_file` is unset)"),
    Variable::refused(
        "GCE_METADATA_HOST",
        "the operator sets `metadata_endpoint` in the settings file",
    )
    .by_hand("not read: `metadata_endpoint` decides"),
    Variable::refused(
        "GCE_METADATA_IP",
        "the operator sets `metadata_endpoint` in the settings file",
    )
    .by_hand("not read: `metadata_endpoint` decides"),
    Variable::refused("GCE_*", "the operator sets `metadata_endpoint` in the settings file")
        .by_hand("not read"),
    Variable::refused("GOOGLE_*", "only the operator configures this, in the settings file")
        .by_hand("not read"),
    Variable::refused("CLOUDSDK_*", "only the operator configures this, in the settings file")
        .by_hand("`CLOUDSDK_CORE_PROJECT`: the project, as for gcloud; others not read"),
    Variable::refused("GCLOUD_*", "only the operator configures this, in the settings file")
        .by_hand("not read"),
    Variable::refused("HTTPS_PROXY", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("HTTP_PROXY", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("https_proxy", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("http_proxy", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("SSL_CERT_FILE", NETWORK)
        .by_hand("the CA bundle, beside the operator's `ca_file`"),
    Variable::refused("SSL_CERT_DIR", NETWORK)
        .by_hand("the CA folder, beside the operator's `ca_file`"),
];

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

/// The job's workload identity JWT, handed to the STS exchange as is.
#[derive(Debug)]
struct JobJwt(Secret);

/// Never happens: the JWT is already in hand.
#[derive(Debug)]
enum NoFailure {}

impl std::fmt::Display for NoFailure {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for NoFailure {}

impl SubjectTokenProviderError for NoFailure {
    fn is_transient(&self) -> bool {
        match *self {}
    }
}

impl SubjectTokenProvider for JobJwt {
    type Error = NoFailure;

    async fn subject_token(&self) -> Result<SubjectToken, NoFailure> {
        Ok(subject_token::Builder::new(self.0.expose()).build())
    }
}

/// The operator's workload identity federation settings, from an external-account file.
#[derive(Debug, PartialEq)]
pub struct Federation {
    /// The workload identity pool provider: `//iam.googleapis.com/projects/.../providers/...`.
    pub audience: String,
    /// The JWT's token type at the STS.
    pub subject_token_type: String,
    /// The STS token endpoint.
    pub token_url: String,
    /// The service account whose token the exchanged one buys, if any.
    pub impersonate: Option<String>,
}

impl Federation {
    /// Reads the operator's `workload_identity_file` (setting `setting`).
    pub fn from_file(setting: &str, file: &Path) -> Result<Federation, Error> {
        let shown = file.display();
        let text = std::fs::read_to_string(file).map_err(|e| unreadable(setting, file, &e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| Error::settings(format!("`{setting}` `{shown}` is not JSON")))?;
        Federation::from_json(&json).map_err(|why| {
            Error::settings(format!("`{setting}` `{shown}`: {why}")).hint(
                "use the file `gcloud iam workload-identity-pools create-cred-config` writes for the pool's provider",
            )
        })
    }

    fn from_json(json: &serde_json::Value) -> Result<Federation, String> {
        if json["type"].as_str() != Some("external_account") {
            return Err("its `type` is not `external_account`".into());
        }
        let text = |field: &str| json[field].as_str().filter(|v| !v.is_empty());
        let audience = text("audience").ok_or("it has no `audience`")?.to_owned();
        let impersonate = match text("service_account_impersonation_url") {
            None => None,
            Some(url) => {
                let account = url
                    .strip_prefix(IMPERSONATION)
                    .and_then(|rest| rest.strip_suffix(":generateAccessToken"))
                    .filter(|a| !a.is_empty() && !a.contains(['/', '?', '#']))
                    .ok_or_else(|| {
                        format!("`service_account_impersonation_url` must be `{IMPERSONATION}<email>:generateAccessToken`")
                    })?;
                Some(account.to_owned())
            }
        };
        Ok(Federation {
            audience,
            subject_token_type: text("subject_token_type")
                .unwrap_or("urn:ietf:params:oauth:token-type:jwt")
                .to_owned(),
            token_url: text("token_url").unwrap_or(GOOGLE_STS).to_owned(),
            impersonate,
        })
    }

    /// Credentials that exchange `jwt` at the STS on first use.
    fn credentials(&self, jwt: &str) -> Result<Credentials, Error> {
        let mut builder =
            external_account::ProgrammaticBuilder::new(Arc::new(JobJwt(Secret::new(jwt))))
                .with_audience(&self.audience)
                .with_subject_token_type(&self.subject_token_type)
                .with_token_url(&self.token_url)
                .with_retry_policy(Aip194Strict.with_attempt_limit(Budget::ATTEMPTS))
                .with_backoff_policy(crate::backoff());
        if let Some(account) = &self.impersonate {
            builder = builder.with_target_principal(account);
        }
        builder.build().map_err(|_| {
            Error::settings("the workload identity federation settings are not usable")
                .hint("check `workload_identity_file`")
        })
    }
}

/// Where the credentials came from, for messages.
pub struct Source {
    /// What was used.
    pub used: &'static str,
    /// Every source tried, in order, for the no-credentials message.
    pub tried: String,
    /// The STS endpoint, when a job's JWT is exchanged there.
    pub exchange: Option<String>,
}

/// The credentials of a request whose job input is `input` (for `check`, the node's: an empty
/// input). Under Nomad the protocol has checked the input: a job token or JWT that is present
/// is usable, and there is at most one.
/// A job's verified workload identity (`identity`) is exchanged like its own JWT when the
/// operator set `workload_identity_file` and the job passed no credential of its own.
pub fn credentials(
    settings: &Settings,
    input: &JobInput,
    identity: Option<&Identity>,
) -> Result<(Credentials, Source), Error> {
    let job_token = input.get(JOB_TOKEN);
    let verified = identity
        .filter(|_| job_token.is_none() && settings.get(&crate::WORKLOAD_IDENTITY_FILE).is_some())
        .map(Identity::token);
    let job_jwt = input.get(JOB_JWT).or(verified);
    let file = settings.get(&crate::CREDENTIALS_FILE);
    let metadata = match settings.get(&crate::METADATA_ENDPOINT) {
        Some("off") => None,
        Some(endpoint) => Some(endpoint.to_owned()),
        None => Some("http://metadata.google.internal".to_owned()),
    };
    let tried = format!(
        "the job passed no {JOB_TOKEN} or {JOB_JWT}; {}; {}",
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
            exchange: None,
        };
        return Ok((Credentials::from(AccessToken(Secret::new(token))), source));
    }
    if let Some(jwt) = job_jwt {
        let Some(file) = settings.get(&crate::WORKLOAD_IDENTITY_FILE) else {
            return Err(Error::settings(format!(
                "the job passed {JOB_JWT}, but the operator set no `workload_identity_file` to exchange it with"
            ))
            .hint("the operator sets `workload_identity_file` in gcp.toml (the pool provider's external-account file), or the job passes GOOGLE_OAUTH_ACCESS_TOKEN instead"));
        };
        let federation = Federation::from_file("workload_identity_file", file)?;
        let source = Source {
            used: "the job's workload identity JWT",
            tried,
            exchange: Some(federation.token_url.clone()),
        };
        return Ok((federation.credentials(jwt)?, source));
    }
    let by_hand_file = match (input.manual(), file) {
        (true, None) => adc_file(input),
        _ => None,
    };
    if let Some(adc) = by_hand_file {
        // By hand, as gcloud and Google's libraries: GOOGLE_APPLICATION_CREDENTIALS, else the
        // file `gcloud auth application-default login` writes.
        let built = google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|_| {
                Error::settings(format!(
                    "the application default credentials `{}` are not usable",
                    adc.display()
                ))
                .hint("run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a key file")
            })?;
        return Ok((
            built,
            Source {
                used: "your application default credentials",
                tried,
                exchange: None,
            },
        ));
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
                .with_retry_policy(Aip194Strict.with_attempt_limit(Budget::ATTEMPTS))
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
                exchange: None,
            },
        ));
    }
    let Some(endpoint) = metadata else {
        return Err(no_credentials(&tried));
    };
    let built = mds::Builder::default()
        .with_endpoint(endpoint)
        .with_retry_policy(Aip194Strict.with_attempt_limit(Budget::ATTEMPTS))
        .with_backoff_policy(crate::backoff())
        .build()
        .map_err(|_| Error::settings("`metadata_endpoint` is not a valid URL"))?;
    Ok((
        built,
        Source {
            used: "the metadata server",
            tried,
            exchange: None,
        },
    ))
}

/// By hand: the application default credentials file, if there is one: the person's
/// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file under their home.
fn adc_file(input: &JobInput) -> Option<std::path::PathBuf> {
    if let Some(file) = input.get("GOOGLE_APPLICATION_CREDENTIALS") {
        return Some(file.into());
    }
    let home = input.get("HOME").filter(|h| h.starts_with('/'))?;
    let file = Path::new(home).join(".config/gcloud/application_default_credentials.json");
    file.is_file().then_some(file)
}

/// The error when no source gave credentials.
pub fn no_credentials(tried: &str) -> Error {
    Error::denied(format!("no GCP credentials: {tried}")).hint(
        "pass the job's own GOOGLE_OAUTH_ACCESS_TOKEN or (with the operator's `workload_identity_file`) GOOGLE_WORKLOAD_IDENTITY_JWT, or ask the operator to set `credentials_file`, or run on GCE with a service account",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_federation_file_gives_its_audience_token_url_and_account() {
        let federation = Federation::from_json(&json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/n",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.example/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/app@acme.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": {"file": "/ignored"},
        }))
        .unwrap();
        assert_eq!(federation.token_url, "https://sts.example/v1/token");
        assert_eq!(
            federation.impersonate.as_deref(),
            Some("app@acme.iam.gserviceaccount.com")
        );
    }

    #[test]
    fn defaults_are_google_sts_and_a_jwt() {
        let federation =
            Federation::from_json(&json!({"type": "external_account", "audience": "//a"})).unwrap();
        assert_eq!(federation.token_url, GOOGLE_STS);
        assert_eq!(
            federation.subject_token_type,
            "urn:ietf:params:oauth:token-type:jwt"
        );
        assert_eq!(federation.impersonate, None);
    }

    #[test]
    fn refuses_what_is_not_a_federation_of_google() {
        for (config, why) in [
            (
                json!({"type": "service_account", "audience": "//a"}),
                "type",
            ),
            (json!({"type": "external_account"}), "audience"),
            (
                json!({"type": "external_account", "audience": "//a", "service_account_impersonation_url": "https://evil.example/v1/projects/-/serviceAccounts/a@b:generateAccessToken"}),
                "service_account_impersonation_url",
            ),
            (
                json!({"type": "external_account", "audience": "//a", "service_account_impersonation_url": format!("{IMPERSONATION}a/../b:generateAccessToken")}),
                "service_account_impersonation_url",
            ),
        ] {
            let error = Federation::from_json(&config).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }
}
