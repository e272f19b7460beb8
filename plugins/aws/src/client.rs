//! A Secrets Manager client whose every network step is bounded to fit the run's deadline.
//!
//! The SDK's defaults overrun Nomad 1.11's 10 s kill (measured: 10 to 11 s against an endpoint
//! that drops packets, no limit at all against one that accepts and never answers, 1 to 3 s of
//! IMDS probing on a machine that is not EC2). Here:
//! - IMDS (region and instance-role credentials): 300 ms to connect, 1 s to read, one attempt;
//!   `imds_endpoint = "off"` skips it entirely.
//! - Credentials must load within 2 s, the region is resolved once and handed to every provider.
//! - Each HTTP attempt: 1 s to connect, 3 s in all; at most 3 attempts with backoff (throttling
//!   included), and the whole operation ends 300 ms before the deadline.
//! - No environment is read except the job's permitted variables (see `job_env`).

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
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_secretsmanager::config::{IdentityCache, Region, SharedAsyncSleep};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::SdkConfig;
use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Settings};

/// Connecting to any endpoint.
const CONNECT: Duration = Duration::from_secs(1);
/// One HTTP attempt, connect to last byte.
const ATTEMPT: Duration = Duration::from_secs(3);
/// Attempts per request, throttling and 5xx included.
pub const ATTEMPTS: u32 = 3;
/// Loading credentials from any provider.
const CREDENTIALS: Duration = Duration::from_secs(2);
/// Time kept back before the deadline for the answer to be printed.
const MARGIN: Duration = Duration::from_millis(300);

/// What the operator configured, for requests and for error messages.
pub struct Setup {
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
}

/// A role to assume with the node's (or job's) credentials, allowed by the operator.
pub struct Role {
    /// The role's ARN.
    pub arn: String,
    /// The STS session name: names the Nomad namespace and job in CloudTrail.
    pub session_name: String,
}

/// Builds the client; resolves the region first (which may ask IMDS). `arn_region`, the region
/// of a secret asked for by ARN, wins over every other source.
pub async fn build(
    settings: &Settings,
    deadline: Instant,
    role: Option<&Role>,
    arn_region: Option<&str>,
) -> Result<(aws_sdk_secretsmanager::Client, Setup), Error> {
    let base = base(settings, deadline, role, arn_region).await?;
    let endpoint_url = settings.text("endpoint_url");
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&base.sdk);
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url);
    }
    let mut setup = base.setup(endpoint_url, "secretsmanager", role);
    if arn_region.is_some() && settings.text("region") != arn_region {
        setup.regional_override = endpoint_url.map(str::to_owned);
    }
    Ok((
        aws_sdk_secretsmanager::Client::from_conf(config.build()),
        setup,
    ))
}

/// An STS client with the same region, credentials and bounds, for `check`.
pub async fn sts(
    settings: &Settings,
    deadline: Instant,
) -> Result<(aws_sdk_sts::Client, Setup), Error> {
    let base = base(settings, deadline, None, None).await?;
    let endpoint_url = settings.text("sts_endpoint_url");
    let mut config = aws_sdk_sts::config::Builder::from(&base.sdk);
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url);
    }
    let setup = base.setup(endpoint_url, "sts", None);
    Ok((aws_sdk_sts::Client::from_conf(config.build()), setup))
}

/// What every client is built from: one bounded configuration, and facts for messages.
struct Base {
    sdk: SdkConfig,
    region: Region,
    imds: Option<String>,
    profile: bool,
}

impl Base {
    fn setup(self, endpoint_url: Option<&str>, service: &str, role: Option<&Role>) -> Setup {
        let region = self.region;
        Setup {
            region: region.to_string(),
            endpoint: endpoint_url
                .map(str::to_owned)
                .unwrap_or_else(|| format!("https://{service}.{region}.amazonaws.com")),
            imds: self.imds,
            profile: self.profile,
            role: role.map(|r| r.arn.clone()),
            regional_override: None,
        }
    }
}

/// The configuration every client (and the assume-role STS client) starts from.
pub(crate) fn bounded(
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
                .with_max_attempts(ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT)
                .operation_attempt_timeout(ATTEMPT.min(remaining))
                .operation_timeout(remaining)
                .build(),
        )
}

/// Resolves the region (which may ask IMDS) and assembles the credentials chain.
async fn base(
    settings: &Settings,
    deadline: Instant,
    role: Option<&Role>,
    arn_region: Option<&str>,
) -> Result<Base, Error> {
    let http = tls_client(settings)?;
    let provider = ProviderConfig::without_region()
        .with_http_client(http.clone())
        .with_sleep_impl(TokioSleep::new());
    let imds_endpoint = match settings.text("imds_endpoint") {
        Some("off") => None,
        Some(endpoint) => Some(endpoint.to_owned()),
        None => Some("http://169.254.169.254".to_owned()),
    };
    let imds = match &imds_endpoint {
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
    let profile_files = profile_files(settings);
    let profile_name = settings.text("profile").unwrap_or("default").to_owned();

    let region = match arn_region.or(settings.text("region")) {
        Some(region) => Some(Region::new(region.to_owned())),
        None => {
            let mut found = None;
            if let Some(files) = &profile_files {
                found = ProfileFileRegionProvider::builder()
                    .configure(&provider)
                    .profile_files(files.clone())
                    .profile_name(&profile_name)
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
        return Err(Error::settings("no AWS region: the job sets no `AWS_REGION`, the operator set no `region`, and the instance metadata service did not give one")
            .hint("add `AWS_REGION = \"us-east-1\"` (for example) to the secret's env block, or `region` to aws.toml"));
    };
    let provider = provider.with_region(Some(region.clone()));

    let mut chain = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    );
    if let Some(files) = &profile_files {
        chain = chain.or_else(
            "Profile",
            ProfileFileCredentialsProvider::builder()
                .configure(&provider)
                .profile_files(files.clone())
                .profile_name(&profile_name)
                .build(),
        );
    }
    chain = chain.or_else(
        "EcsContainer",
        EcsCredentialsProvider::builder()
            .configure(&provider)
            .build(),
    );
    if let Some(imds) = &imds {
        chain = chain.or_else(
            "Ec2InstanceMetadata",
            ImdsCredentialsProvider::builder()
                .configure(&provider)
                .imds_client(imds.clone())
                .build(),
        );
    }

    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(MARGIN)
        .max(Duration::from_millis(100));
    let credentials = match role {
        None => SharedCredentialsProvider::new(chain),
        Some(role) => {
            let chain = SharedCredentialsProvider::new(chain);
            let mut sts = bounded(&region, chain, &http, remaining);
            if let Some(url) = settings.text("sts_endpoint_url") {
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
    Ok(Base {
        sdk: bounded(&region, credentials, &http, remaining).build(),
        region,
        imds: imds_endpoint,
        profile: profile_files.is_some(),
    })
}

/// HTTPS with rustls and ring: no aws-lc (its jitter entropy cost 37 ms of CPU per process).
/// Trusts the node's CA store, plus the operator's `ca_file` (a TLS-inspecting proxy's or a
/// private endpoint's CA), never a job's: `SSL_CERT_FILE` is refused in `job_env`.
fn tls_client(settings: &Settings) -> Result<SharedHttpClient, Error> {
    let mut builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    if let Some(file) = settings.path("ca_file") {
        let trust = tls::TrustStore::default().with_pem_certificate(operator_cas(file)?);
        let context = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| Error::settings(format!("`ca_file` `{}`: {e}", file.display())))?;
        builder = builder.tls_context(context);
    }
    Ok(builder.build_https())
}

/// The PEM text of `ca_file`, checked here: the SDK parses it later and panics on a bad one.
fn operator_cas(file: &Path) -> Result<Vec<u8>, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let shown = file.display();
    let pem = std::fs::read(file).map_err(|e| unreadable("ca_file", file, &e))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::settings(format!("`ca_file` `{shown}` is not valid PEM")))?;
    if certificates.is_empty() {
        return Err(Error::settings(format!(
            "`ca_file` `{shown}` holds no PEM certificate"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|e| {
            Error::settings(format!(
                "`ca_file` `{shown}` holds a certificate that cannot be parsed: {e}"
            ))
        })?;
    }
    Ok(pem)
}

/// The operator's config and credentials files, if any; never `~/.aws` (Nomad sets no `HOME`,
/// and a job must not pick the file).
fn profile_files(settings: &Settings) -> Option<EnvConfigFiles> {
    let config = settings.path("config_file");
    let credentials = settings.path("credentials_file");
    if config.is_none() && credentials.is_none() {
        return None;
    }
    let mut files = EnvConfigFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false);
    let add = |files: aws_runtime::env_config::file::Builder, kind, path: Option<&Path>| match path
    {
        Some(path) => files.with_file(kind, path),
        None => files,
    };
    files = add(files, EnvConfigFileKind::Config, config);
    files = add(files, EnvConfigFileKind::Credentials, credentials);
    Some(files.build())
}
