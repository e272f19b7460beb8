//! The `aws-ssm` backend: parameters from AWS Systems Manager Parameter Store.
//!
//! `fetch <name or ARN>[?version=N|label=L][&role=<arn>][#key]` reads one parameter,
//! SecureStrings decrypted: a String or SecureString by the shared conversion policy (a JSON
//! object gives its fields, other text `value`), a StringList as written, in `value`.
//! `fetch /app/prod/` (a path ending in `/`) reads every parameter beneath it, recursively, one
//! key per parameter (see [`keys`] for how names become keys).
//!
//! Everything that is not Parameter Store's own (the bounded SDK configuration, credentials,
//! region, `?role=`, what a job may set, the shared AWS errors) is `nomad_secrets_aws_common`'s.
#![deny(missing_docs)]

mod errors;
pub mod keys;
pub mod names;

use nomad_secrets_aws_common::throttle::patiently;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use nomad_secrets_aws_common::{Service, Setup, Transport};
use nomad_secrets_protocol::{Backend, Error, Request, Secret, Secrets, Setting, Settings};

use crate::names::Target;

/// The `aws-ssm` plugin.
pub struct SsmBackend {
    transport: Transport,
}

impl SsmBackend {
    /// The backend with requests going through `transport` (in memory, for tests and fuzzing).
    pub fn with_transport(transport: Transport) -> SsmBackend {
        SsmBackend { transport }
    }
}

/// Parameter Store, for endpoints and messages.
pub const PARAMETER_STORE: Service = Service {
    endpoint_prefix: "ssm",
    name: "Parameter Store",
    read_action: "ssm:GetParameter",
    resource: "parameter",
    endpoint_setting: &nomad_secrets_aws_common::ENDPOINT_URL,
    endpoint_variable: "SSM",
};

/// GetParametersByPath's largest page.
const PAGE: i32 = 10;
/// A page is asked for only while this much time is left before the deadline.
const PAGE_BUDGET: Duration = Duration::from_millis(1500);

impl Backend for SsmBackend {
    const NAME: &'static str = "aws-ssm";
    const SETTINGS: &'static [Setting] = nomad_secrets_aws_common::SETTINGS;
    const OPTIONS: &'static [&'static str] = &["version", "label", "role"];
    const JOB_INPUT: &'static [nomad_secrets_protocol::Variable] =
        nomad_secrets_aws_common::job_env::JOB_INPUT;

    /// The name as it will be read (see [`names::normalise`]): a hierarchy is checked on its
    /// prefix here, and each parameter beneath it again once it is known.
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        names::normalise(locator)
    }

    /// Requests go to AWS over HTTPS with the node's CAs and the operator's `ca_file`.
    fn exchanges_identity(settings: &Settings) -> bool {
        nomad_secrets_aws_common::exchanges_identity(settings)
    }

    fn new(settings: &Settings) -> Result<SsmBackend, Error> {
        Transport::https(settings).map(SsmBackend::with_transport)
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let target = names::target(
            request.path.locator(),
            request.path.option("version"),
            request.path.option("label"),
        )?;
        nomad_secrets_aws_common::block_on(read(&self.transport, request, &target))
    }

    /// STS `GetCallerIdentity`: proves the region, the endpoint and the node's credentials
    /// without reading a parameter.
    fn check(&self, settings: &Settings, deadline: Instant) -> Result<String, Error> {
        nomad_secrets_aws_common::check(&self.transport, settings, deadline)
    }
}

async fn read(transport: &Transport, request: &Request, target: &Target) -> Result<Secrets, Error> {
    let (sdk, setup) =
        nomad_secrets_aws_common::config_for(transport, request, &PARAMETER_STORE).await?;
    let client = aws_sdk_ssm::Client::new(&sdk);
    match target {
        Target::One { name, selector } => get_parameter(&client, name, selector, &setup).await,
        Target::Beneath { prefix } => {
            get_parameters_by_path(&client, prefix, request, &setup).await
        }
    }
}

/// `GetParameter`, decrypted, with the version or label as the name's selector.
async fn get_parameter(
    client: &aws_sdk_ssm::Client,
    name: &str,
    selector: &Option<String>,
    setup: &Setup,
) -> Result<Secrets, Error> {
    let asked = match selector {
        Some(selector) => format!("{name}:{selector}"),
        None => name.to_owned(),
    };
    let output = patiently(setup.deadline, || {
        client
            .get_parameter()
            .name(&asked)
            .with_decryption(true)
            .send()
    })
    .await
    .map_err(|e| errors::describe(e, name, selector.as_deref(), setup))?;
    let parameter = output.parameter().ok_or_else(|| {
        Error::unavailable(format!(
            "`{}` answered without the parameter `{name}`",
            setup.endpoint
        ))
    })?;
    let value = parameter.value().unwrap_or_default().to_owned();
    match parameter.r#type() {
        // A StringList is comma-separated text: given as written, never split.
        Some(ParameterType::StringList) => {
            let mut secrets = Secrets::new();
            secrets.insert("value", Secret::new(value))?;
            Ok(secrets)
        }
        _ => Secrets::from_text_or_json_object(value),
    }
}

/// `GetParametersByPath`, recursive and decrypted, page after page while the deadline allows;
/// every parameter is checked against the access policy before its value is kept.
async fn get_parameters_by_path(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    request: &Request,
    setup: &Setup,
) -> Result<Secrets, Error> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut next_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let left = request.deadline.saturating_duration_since(Instant::now());
        if pages > 0 && left < PAGE_BUDGET {
            return Err(Error::unavailable(format!(
                "more parameters beneath `{prefix}` than one fetch can read before its deadline ({} read in {pages} pages of {PAGE})",
                found.len()
            ))
            .hint("read a narrower prefix, or ask the operator to raise `deadline`"));
        }
        let token = next_token.take();
        let page = patiently(setup.deadline, || {
            client
                .get_parameters_by_path()
                .path(prefix)
                .recursive(true)
                .with_decryption(true)
                .max_results(PAGE)
                .set_next_token(token.clone())
                .send()
        })
        .await
        .map_err(|e| errors::describe_path(e, prefix, setup))?;
        pages += 1;
        for parameter in page.parameters() {
            let name = parameter.name().unwrap_or_default();
            request.check_policy(name).map_err(|denied| {
                denied.hint(format!(
                    "the policy allows `{prefix}` but not every parameter beneath it: read the allowed ones by name or by a narrower prefix"
                ))
            })?;
            found.push((
                name.to_owned(),
                parameter.value().unwrap_or_default().to_owned(),
            ));
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    if found.is_empty() {
        return Err(Error::not_found(format!(
            "no parameter beneath `{prefix}` in region `{}`",
            setup.region
        ))
        .hint("a hierarchy path names the parameters under it; check the prefix and the region"));
    }
    keys::secrets(prefix, found)
}
