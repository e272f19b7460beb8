//! A Secrets Manager client whose every network step is bounded to fit the run's deadline.
//!
//! The SDK's defaults overrun Nomad 1.11's 10 s kill (measured: 10 to 11 s against an endpoint
//! that drops packets, no limit at all against one that accepts and never answers, 1 to 3 s of
//! IMDS probing on a machine that is not EC2). Here:
//! - IMDS (region and instance-role credentials): 300 ms to connect, 1 s to read, one attempt;
//!   `imds_endpoint = "off"` skips it entirely.
//! - Credentials must load within 2 s, the region is resolved once and handed to every provider.
//! - The shared [`Budget`]: each HTTP attempt 1 s to connect, 3 s in all; at most 3 attempts
//!   with backoff (throttling included), and the whole operation ends 300 ms before the deadline.
//! - Under Nomad no environment is read except the job's permitted variables (see `job_env`);
//!   by hand, the person's `AWS_*` variables and `~/.aws` apply as for the AWS CLI, with the
//!   settings file as defaults.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::ProvideRegion as _;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_sts::config::{IdentityCache, Region, SharedAsyncSleep};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::SdkConfig;
use nomad_secrets_net::Budget;
use nomad_secrets_protocol::{Error, Key, Settings};

use crate::Transport;

/// Loading credentials from any provider.
const CREDENTIALS: Duration = Duration::from_secs(2);

/// One AWS service a plugin calls, for its endpoint and for messages.
pub struct Service {
    /// Its endpoint prefix: `https://<prefix>.<region>.amazonaws.com`.
    pub endpoint_prefix: &'static str,
    /// Its name in messages (`Secrets Manager`).
    pub name: &'static str,
    /// The IAM action a read needs, named in access-denied hints.
    pub read_action: &'static str,
    /// What it holds, in messages (`secret`, `parameter`).
    pub resource: &'static str,
    /// The setting that overrides its endpoint.
    pub endpoint_setting: &'static Key<str>,
    /// What follows `AWS_ENDPOINT_URL_` for it, honoured by hand only (`SECRETS_MANAGER`).
    pub endpoint_variable: &'static str,
}

/// STS, for `check` (GetCallerIdentity).
pub const STS: Service = Service {
    endpoint_prefix: "sts",
    name: "STS",
    read_action: "sts:GetCallerIdentity",
    resource: "caller identity",
    endpoint_setting: &crate::STS_ENDPOINT_URL,
    endpoint_variable: "STS",
};

/// What was configured, for requests and for error messages.
pub struct Setup {
    /// The service called.
    pub service: &'static Service,
    /// The region used.
    pub region: String,
    /// Where requests go, for messages: the override, or the regional AWS endpoint.
    pub endpoint: String,
    /// The IMDS endpoint, or `None` when IMDS is off.
    pub imds: Option<String>,
    /// Whether a profile file is configured.
    pub profile: bool,
    /// The role assumed, if any.
    pub role: Option<String>,
    /// Set when the region came from the secret's ARN and the operator's `endpoint_url`
    /// (regional) may not serve it: the endpoint, for messages.
    pub regional_override: Option<String>,
    /// The settings file's name (`aws.toml`), for hints.
    pub settings_name: String,
    /// Run by hand: the person's environment and `~/.aws` apply, and messages speak to them.
    pub manual: bool,
    /// The job's own credential in use, if any (see `job_env`), for messages.
    pub job_credential: Option<&'static str>,
    /// The run's deadline: a throttled call is retried until its budget runs out (see
    /// `throttle`).
    pub deadline: Instant,
}

/// A role to assume with the node's (or job's) credentials, allowed by the operator.
pub struct Role {
    /// The role's ARN.
    pub arn: String,
    /// The STS session name: names the Nomad namespace and job in CloudTrail.
    pub session_name: String,
}

/// The role a job's verified workload identity is exchanged for at STS
/// (`AssumeRoleWithWebIdentity`), from the operator's `identity_role_arn`.
pub struct WebIdentity {
    /// The role, and the session name that names the job in CloudTrail.
    pub role: Role,
    /// The verified token (never shown).
    pub token: nomad_secrets_protocol::Secret,
}

/// What one call needs besides the settings.
pub struct Call<'a> {
    /// The service.
    pub service: &'static Service,
    /// The role to assume first, if the operator allowed it.
    pub role: Option<&'a Role>,
    /// The region of a resource asked for by ARN: it wins over every other source.
    pub arn_region: Option<&'a str>,
    /// Run by hand rather than by Nomad.
    pub manual: bool,
    /// The job's own complete credential, if it passed one (see `job_env`): then the only
    /// source of credentials.
    pub job_credential: Option<&'static str>,
    /// The role of the job's verified workload identity: then the only source of credentials.
    pub web_identity: Option<&'a WebIdentity>,
}

/// The name `job_env` gives the job's access keys.
const JOB_KEYS: &str = "access keys";

/// A source that never has credentials: the start of a chain of the operator's sources.
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "the job passed no credentials of its own",
            ),
        ))
    }
}

/// Credentials from STS for the job's verified workload identity: the SDK's own
/// `AssumeRoleWithWebIdentity` call (unsigned, as STS wants it), with the token in memory
/// rather than in a file.
#[derive(Debug)]
struct WorkloadIdentity {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    token: nomad_secrets_protocol::Secret,
}

impl aws_credential_types::provider::ProvideCredentials for WorkloadIdentity {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        use aws_credential_types::provider::error::CredentialsError;
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let answer = self
                .sts
                .assume_role_with_web_identity()
                .role_arn(&self.role_arn)
                .role_session_name(&self.session_name)
                .web_identity_token(self.token.expose())
                .send()
                .await
                .map_err(CredentialsError::provider_error)?;
            let given = answer
                .credentials
                .ok_or_else(|| CredentialsError::unhandled("STS answered without credentials"))?;
            let expiry = std::time::SystemTime::try_from(given.expiration).ok();
            Ok(aws_credential_types::Credentials::new(
                given.access_key_id,
                given.secret_access_key,
                Some(given.session_token),
                expiry,
                "NomadWorkloadIdentity",
            ))
        })
    }
}

/// The bounded configuration for `call.service` (its endpoint override included) and the facts
/// for messages; resolves the region first, which may ask IMDS.
pub async fn config(
    transport: &Transport,
    settings: &Settings,
    deadline: Instant,
    call: &Call<'_>,
) -> Result<(SdkConfig, Setup), Error> {
    let plan = Plan::new(settings, call.service, call.manual);
    let region = call.arn_region.or(plan.region.as_deref());
    if let Some(region) = region.filter(|r| !is_region(r)) {
        let from = match call.arn_region {
            Some(_) => "the secret's ARN names",
            None => "the region (the job's `AWS_REGION` or the operator's `region`) is",
        };
        return Err(Error::settings(format!(
            "{from} `{region}`, which is not an AWS region name: it would become part of the \
             endpoint's host name"
        ))
        .hint("an AWS region is lowercase letters, digits and dashes, like `eu-west-1`"));
    }
    let base = base(transport, settings, &plan, deadline, call, region).await?;
    let mut sdk = base.sdk.into_builder();
    if let Some(url) = &plan.endpoint_url {
        sdk = sdk.endpoint_url(url);
    }
    let region = base.region.to_string();
    let regional_override = match call.arn_region {
        Some(arn_region) if plan.region.as_deref() != Some(arn_region) => plan.endpoint_url.clone(),
        _ => None,
    };
    let setup = Setup {
        service: call.service,
        endpoint: plan.endpoint_url.clone().unwrap_or_else(|| {
            format!(
                "https://{}.{region}.amazonaws.com",
                call.service.endpoint_prefix
            )
        }),
        region,
        imds: plan.imds,
        profile: plan.files.is_some(),
        role: call.role.map(|r| r.arn.clone()),
        regional_override,
        settings_name: settings_name(settings),
        manual: call.manual,
        job_credential: match call.web_identity {
            Some(_) => Some("workload identity"),
            None => call.job_credential,
        },
        deadline,
    };
    Ok((sdk.build(), setup))
}

/// Whether `region` has the shape of an AWS region (`eu-west-1`, `us-gov-west-1`): it is put
/// in the endpoint's host name, so nothing else may pass (a `/` or `.` would aim the node's
/// signed request at another host).
pub fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The settings file's name, for hints (`aws.toml`).
pub fn settings_name(settings: &Settings) -> String {
    settings
        .file()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the settings file".to_owned())
}

/// Where each piece of configuration comes from. Under Nomad: the operator's settings only (the
/// job's permitted variables are already in them). By hand: the person's environment and
/// `~/.aws` as the AWS CLI reads them, with the settings file as defaults.
struct Plan {
    region: Option<String>,
    endpoint_url: Option<String>,
    imds: Option<String>,
    files: Option<EnvConfigFiles>,
    profile: String,
    manual: bool,
}

impl Plan {
    fn new(settings: &Settings, service: &Service, manual: bool) -> Plan {
        // By hand the protocol has already put the AWS CLI's variables into the settings
        // (AWS_REGION over AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_CA_BUNDLE, ...); what is
        // left is what no single setting holds.
        let var = |name: &str| match manual {
            true => std::env::var(name).ok().filter(|v| !v.is_empty()),
            false => None,
        };
        let imds_disabled =
            var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let imds = match settings.get(&crate::IMDS_ENDPOINT) {
            _ if imds_disabled => None,
            Some("off") => None,
            Some(endpoint) => Some(endpoint.to_owned()),
            None => Some("http://169.254.169.254".to_owned()),
        };
        let region = settings.get(&crate::REGION).map(str::to_owned);
        let endpoint_url = var(&format!("AWS_ENDPOINT_URL_{}", service.endpoint_variable))
            .or_else(|| settings.get(service.endpoint_setting).map(str::to_owned));
        let files = profile_files(settings, manual);
        Plan {
            region,
            endpoint_url,
            imds,
            files,
            profile: settings
                .get(&crate::PROFILE)
                .unwrap_or("default")
                .to_owned(),
            manual,
        }
    }
}

/// The configuration every client (and the assume-role STS client) starts from.
pub fn bounded(
    region: &Region,
    credentials: SharedCredentialsProvider,
    http: &SharedHttpClient,
    remaining: Duration,
) -> aws_types::sdk_config::Builder {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.clone())
        .credentials_provider(credentials)
        .http_client(http.clone())
        .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
        .time_source(SharedTimeSource::default())
        .identity_cache(IdentityCache::lazy().load_timeout(CREDENTIALS).build())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(Budget::ATTEMPTS)
                .with_initial_backoff(Budget::FIRST_BACKOFF)
                .with_max_backoff(Budget::MAX_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Budget::CONNECT)
                .operation_attempt_timeout(Budget::ATTEMPT.min(remaining))
                .operation_timeout(remaining)
                .build(),
        )
}

/// What every client is built from: one bounded configuration and its region.
struct Base {
    sdk: SdkConfig,
    region: Region,
}

/// Resolves the region (which may ask IMDS) and assembles the credentials chain for `call`
/// (its role, the job's credential or verified identity).
async fn base(
    transport: &Transport,
    settings: &Settings,
    plan: &Plan,
    deadline: Instant,
    call: &Call<'_>,
    region: Option<&str>,
) -> Result<Base, Error> {
    let (role, job_credential, web_identity) = (call.role, call.job_credential, call.web_identity);
    let http = &transport.http;
    let provider = ProviderConfig::without_region()
        .with_http_client(http.clone())
        .with_sleep_impl(TokioSleep::new());
    let imds = match &plan.imds {
        Some(endpoint) => Some(
            imds::Client::builder()
                .configure(&provider)
                .endpoint(endpoint)
                .map_err(|e| Error::settings(format!("`imds_endpoint` is not a valid URL: {e}")))?
                .connect_timeout(Duration::from_millis(300))
                .read_timeout(Duration::from_secs(1))
                .max_attempts(1)
                .build(),
        ),
        None => None,
    };
    let region = match region {
        Some(region) => Some(Region::new(region.to_owned())),
        None => {
            let mut found = None;
            if let Some(files) = &plan.files {
                found = ProfileFileRegionProvider::builder()
                    .configure(&provider)
                    .profile_files(files.clone())
                    .profile_name(&plan.profile)
                    .build()
                    .region()
                    .await;
            }
            if found.is_none() {
                if let Some(imds) = &imds {
                    found = ImdsRegionProvider::builder()
                        .imds_client(imds.clone())
                        .build()
                        .region()
                        .await;
                }
            }
            found
        }
    };
    let Some(region) = region else {
        let file = settings_name(settings);
        return Err(match plan.manual {
            false => Error::settings("no AWS region: the job sets no `AWS_REGION`, the operator set no `region`, and the instance metadata service did not give one")
                .hint(format!("add `AWS_REGION = \"us-east-1\"` (for example) to the secret's env block, or `region` to {file}")),
            true => Error::settings(format!("no AWS region: `AWS_REGION` and `AWS_DEFAULT_REGION` are unset, {file} sets no `region`, the profile `{}` has none, and the instance metadata service did not give one", plan.profile))
                .hint("export AWS_REGION=us-east-1 (for example), as for the AWS CLI"),
        });
    };
    let provider = provider.with_region(Some(region.clone()));

    // Under Nomad the job's own credential, when it passed one (the protocol checked it is
    // whole), is the only source: a job credential that fails never becomes the node's. Without
    // one, only the operator's sources. By hand, the AWS CLI's chain.
    let environment = || EnvironmentVariableCredentialsProvider::new();
    let ecs = || {
        EcsCredentialsProvider::builder()
            .configure(&provider)
            .build()
    };
    let remaining = Budget::new(deadline).left().max(Duration::from_millis(100));
    let sts_config = || {
        let mut sts = bounded(
            &region,
            SharedCredentialsProvider::new(NoCredentials),
            http,
            remaining,
        );
        if !transport.retries {
            sts = sts.retry_config(RetryConfig::disabled());
        }
        if let Some(url) = settings.get(&crate::STS_ENDPOINT_URL) {
            sts = sts.endpoint_url(url);
        }
        sts
    };
    let mut chain = match (plan.manual, job_credential) {
        _ if web_identity.is_some() => {
            let web = web_identity.expect("matched");
            CredentialsProviderChain::first_try(
                "NomadWorkloadIdentity",
                WorkloadIdentity {
                    sts: aws_sdk_sts::Client::new(&sts_config().build()),
                    role_arn: web.role.arn.clone(),
                    session_name: web.role.session_name.clone(),
                    token: web.token.clone(),
                },
            )
        }
        (false, Some(JOB_KEYS)) => {
            CredentialsProviderChain::first_try("Environment", environment())
        }
        (false, Some(_)) => CredentialsProviderChain::first_try("EcsContainer", ecs()),
        (true, _) => CredentialsProviderChain::first_try("Environment", environment()),
        (false, None) => CredentialsProviderChain::first_try("None", NoCredentials),
    };
    let operators = (plan.manual || job_credential.is_none()) && web_identity.is_none();
    if let Some(files) = plan.files.as_ref().filter(|_| operators) {
        chain = chain.or_else(
            "Profile",
            ProfileFileCredentialsProvider::builder()
                .configure(&provider)
                .profile_files(files.clone())
                .profile_name(&plan.profile)
                .build(),
        );
    }
    if plan.manual {
        // By hand, as the AWS CLI: AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN.
        chain = chain
            .or_else(
                "WebIdentityToken",
                WebIdentityTokenCredentialsProvider::builder()
                    .configure(&provider)
                    .build(),
            )
            .or_else("EcsContainer", ecs());
    }
    if let Some(imds) = imds.as_ref().filter(|_| operators) {
        chain = chain.or_else(
            "Ec2InstanceMetadata",
            ImdsCredentialsProvider::builder()
                .configure(&provider)
                .imds_client(imds.clone())
                .build(),
        );
    }

    let credentials = match role {
        None => SharedCredentialsProvider::new(chain),
        Some(role) => {
            let chain = SharedCredentialsProvider::new(chain);
            let mut sts = bounded(&region, chain, http, remaining);
            if !transport.retries {
                sts = sts.retry_config(RetryConfig::disabled());
            }
            if let Some(url) = settings.get(&crate::STS_ENDPOINT_URL) {
                sts = sts.endpoint_url(url);
            }
            SharedCredentialsProvider::new(
                AssumeRoleProvider::builder(&role.arn)
                    .session_name(&role.session_name)
                    .configure(&sts.build())
                    .build()
                    .await,
            )
        }
    };
    let mut sdk = bounded(&region, credentials, http, remaining);
    if !transport.retries {
        sdk = sdk.retry_config(RetryConfig::disabled());
    }
    Ok(Base {
        sdk: sdk.build(),
        region,
    })
}

/// The operator's config and credentials files, if any; under Nomad never `~/.aws` (Nomad sets
/// no `HOME`, and a job must not pick the file). By hand, `~/.aws/config` and
/// `~/.aws/credentials` stand in for the ones not set, as for the AWS CLI.
fn profile_files(settings: &Settings, manual: bool) -> Option<EnvConfigFiles> {
    let config = settings.get(&crate::CONFIG_FILE);
    let credentials = settings.get(&crate::CREDENTIALS_FILE);
    if config.is_none() && credentials.is_none() && !manual {
        return None;
    }
    let mut files = EnvConfigFiles::builder()
        .include_default_config_file(manual && config.is_none())
        .include_default_credentials_file(manual && credentials.is_none());
    let add = |files: aws_runtime::env_config::file::Builder, kind, path: Option<&Path>| match path
    {
        Some(path) => files.with_file(kind, path),
        None => files,
    };
    files = add(files, EnvConfigFileKind::Config, config);
    files = add(files, EnvConfigFileKind::Credentials, credentials);
    Some(files.build())
}
