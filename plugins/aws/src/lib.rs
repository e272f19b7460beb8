//! The `aws` backend: secrets from AWS Secrets Manager.
//!
//! `fetch <secret-id>[?stage=<label>|version_id=<id>][#key]`, where the id is a name or a full
//! ARN (cross-account ARNs included). `SecretString` holding a JSON object gives one key per
//! field; any other string gives `value`; `SecretBinary` gives `value_base64`.
//!
//! Region: the job's `AWS_REGION` (unless the operator's `job_may_set` leaves it out), else the
//! operator's `region`, else the profile's, else the instance's (IMDS). Credentials, in order:
//! the job's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`; the operator's
//! `credentials_file`/`config_file` profile (static keys, web identity, assume-role with a source
//! profile or `credential_source = Ec2InstanceMetadata`); ECS container credentials; the
//! instance role (IMDSv2). See [`client`] for the time bounds and [`job_env`] for what a job may set.
#![deny(missing_docs)]

pub mod client;
mod errors;
pub mod job_env;

use nomad_secrets_protocol::{Backend, Error, Kind, Request, Secrets, Setting};

use crate::errors::Asked;

/// The `aws` plugin.
pub struct AwsBackend;

impl Backend for AwsBackend {
    const NAME: &'static str = "aws";
    const SETTINGS: &'static [Setting] = &[
        Setting {
            name: "region",
            kind: Kind::Text,
            default: None,
            job_env: Some("AWS_REGION"),
            job_by_default: true,
            doc: "AWS region (else the profile's, else the instance's)",
        },
        Setting {
            name: "endpoint_url",
            kind: Kind::Text,
            default: None,
            job_env: None,
            job_by_default: false,
            doc: "Secrets Manager endpoint override (FIPS, VPC endpoint, emulator)",
        },
        Setting {
            name: "imds_endpoint",
            kind: Kind::Text,
            default: None,
            job_env: None,
            job_by_default: false,
            doc: "instance metadata endpoint, or \"off\" on nodes that are not EC2",
        },
        Setting {
            name: "config_file",
            kind: Kind::AbsolutePath,
            default: None,
            job_env: None,
            job_by_default: false,
            doc: "AWS shared config file (profiles, roles, web identity)",
        },
        Setting {
            name: "credentials_file",
            kind: Kind::AbsolutePath,
            default: None,
            job_env: None,
            job_by_default: false,
            doc: "AWS shared credentials file",
        },
        Setting {
            name: "profile",
            kind: Kind::Text,
            default: None,
            job_env: Some("AWS_PROFILE"),
            job_by_default: false,
            doc: "profile of those files (default: `default`)",
        },
    ];
    const OPTIONS: &'static [&'static str] = &["stage", "version_id"];

    fn fetch(request: &Request) -> Result<Secrets, Error> {
        job_env::check(&request.env)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unavailable(format!("cannot start the async runtime: {e}")))?;
        let result = runtime.block_on(get_secret_value(request));
        // A task stuck in a DNS lookup must not keep the process alive.
        runtime.shutdown_background();
        result
    }
}

async fn get_secret_value(request: &Request) -> Result<Secrets, Error> {
    let (client, setup) = client::build(&request.settings, request.deadline).await?;
    let asked = Asked {
        id: request.path.locator(),
        stage: request.path.option("stage"),
        version_id: request.path.option("version_id"),
    };
    let output = client
        .get_secret_value()
        .secret_id(asked.id)
        .set_version_stage(asked.stage.map(str::to_owned))
        .set_version_id(asked.version_id.map(str::to_owned))
        .send()
        .await
        .map_err(|e| errors::describe(e, &asked, &setup))?;
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
