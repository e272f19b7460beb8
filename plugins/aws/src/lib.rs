//! The `aws` backend: secrets from AWS Secrets Manager.
//!
//! `fetch <secret-id>[?stage=<label>|version_id=<id>][&role=<arn>][#key]`, where the id is a name or a full
//! ARN (cross-account ARNs included). `SecretString` holding a JSON object gives one key per
//! field; any other string gives `value`; `SecretBinary` gives `value_base64`.
//!
//! Region: the job's `AWS_REGION` (unless the operator's `job_may_set` leaves it out), else the
//! operator's `region`, else the profile's, else the instance's (IMDS). Credentials, in order:
//! the job's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`; the operator's
//! `credentials_file`/`config_file` profile (static keys, web identity, assume-role with a source
//! profile or `credential_source = Ec2InstanceMetadata`); ECS container credentials; the
//! instance role (IMDSv2). With `?role=<arn>` those credentials assume that role first, if the
//! operator's `assume_roles` lists it. A full ARN is read in its own region. The time bounds,
//! the credentials chain and what a job may set are `nomad_secrets_aws_common`'s, shared with
//! `aws-ssm`; this crate holds only what is Secrets Manager's.
#![deny(missing_docs)]

mod errors;
#[doc(hidden)]
use nomad_secrets_aws_common::throttle::patiently;
use nomad_secrets_aws_common::{Service, Setup, Transport};
use nomad_secrets_protocol::{Backend, Error, Request, Secrets, Setting, Settings};

use crate::errors::Asked;

/// The `aws` plugin.
pub struct AwsBackend {
    transport: Transport,
}

impl AwsBackend {
    /// The backend with requests going through `transport` (in memory, for tests and fuzzing).
    pub fn with_transport(transport: Transport) -> AwsBackend {
        AwsBackend { transport }
    }
}

/// Secrets Manager, for endpoints and messages.
pub const SECRETS_MANAGER: Service = Service {
    endpoint_prefix: "secretsmanager",
    name: "Secrets Manager",
    read_action: "secretsmanager:GetSecretValue",
    resource: "secret",
    endpoint_setting: &nomad_secrets_aws_common::ENDPOINT_URL,
    endpoint_variable: "SECRETS_MANAGER",
};

/// Secrets Manager's largest secret value: anything larger did not come from it.
const MAX_SECRET: usize = 65_536;

impl Backend for AwsBackend {
    const NAME: &'static str = "aws";
    const SETTINGS: &'static [Setting] = nomad_secrets_aws_common::SETTINGS;
    const OPTIONS: &'static [&'static str] = &["stage", "version_id", "role"];
    const JOB_INPUT: &'static [nomad_secrets_protocol::Variable] =
        nomad_secrets_aws_common::job_env::JOB_INPUT;

    /// The id as written: Secrets Manager names are opaque strings (`a/../b` and `a//b` are
    /// names of their own, never resolved as paths), sent in a JSON body rather than a URL, so
    /// what the policy matches is exactly what AWS looks up. An ARN and the name of the same
    /// secret are different texts: a rule for one does not allow the other (README).
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        Ok(locator.to_owned())
    }

    /// Requests go to AWS over HTTPS with the node's CAs and the operator's `ca_file`.
    fn exchanges_identity(settings: &Settings) -> bool {
        nomad_secrets_aws_common::exchanges_identity(settings)
    }

    fn new(settings: &Settings) -> Result<AwsBackend, Error> {
        Transport::https(settings).map(AwsBackend::with_transport)
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        nomad_secrets_aws_common::block_on(get_secret_value(&self.transport, request))
    }

    /// STS `GetCallerIdentity`: proves the region, the endpoint and the node's credentials
    /// without reading a secret, and says whose credentials they are.
    fn check(&self, settings: &Settings, deadline: std::time::Instant) -> Result<String, Error> {
        nomad_secrets_aws_common::check(&self.transport, settings, deadline)
    }
}

async fn get_secret_value(transport: &Transport, request: &Request) -> Result<Secrets, Error> {
    let (sdk, setup) =
        nomad_secrets_aws_common::config_for(transport, request, &SECRETS_MANAGER).await?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let asked = Asked {
        id: request.path.locator(),
        stage: request.path.option("stage"),
        version_id: request.path.option("version_id"),
    };
    read_secret(&client, &asked, &setup, request.settings.file()).await
}

/// Sends `GetSecretValue` and turns the answer (or the failure) into secrets or one error:
/// everything the plugin does with what the endpoint sent. `settings_file` is named in hints.
async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    asked: &Asked<'_>,
    setup: &Setup,
    settings_file: &std::path::Path,
) -> Result<Secrets, Error> {
    // AWSCURRENT is what AWS reads when neither is given, but only a request that names it
    // passes a resource policy with a `secretsmanager:VersionStage` condition.
    let stage = match (asked.stage, asked.version_id) {
        (None, None) => Some("AWSCURRENT"),
        (stage, _) => stage,
    };
    let output = patiently(setup.deadline, || {
        client
            .get_secret_value()
            .secret_id(asked.id)
            .set_version_stage(stage.map(str::to_owned))
            .set_version_id(asked.version_id.map(str::to_owned))
            .send()
    })
    .await
    .map_err(|e| errors::describe(e, asked, setup))?;
    let size = output.secret_string.as_ref().map_or(0, String::len)
        + output
            .secret_binary
            .as_ref()
            .map_or(0, |b| b.as_ref().len());
    if size > MAX_SECRET {
        return Err(Error::invalid_secret(format!(
            "the answer for `{}` holds {size} bytes, more than Secrets Manager's {MAX_SECRET}-byte maximum",
            asked.id
        ))
        .hint(format!("check `endpoint_url` in `{}`: it may not point at Secrets Manager", settings_file.display())));
    }
    if let Some(text) = output.secret_string {
        Secrets::from_text_or_json_object(text)
    } else if let Some(binary) = output.secret_binary {
        Ok(Secrets::binary(binary.as_ref()))
    } else {
        Err(Error::not_found(format!(
            "secret `{}` has neither a string nor a binary value",
            asked.id
        )))
    }
}
