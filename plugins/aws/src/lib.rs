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
//! operator's `assume_roles` lists it. See [`client`] for the time bounds and [`job_env`] for
//! what a job may set.
#![deny(missing_docs)]

pub mod client;
mod errors;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod job_env;

use std::time::Instant;

use nomad_secrets_protocol::{Backend, Error, Kind, Request, Secrets, Setting, Settings};

use crate::client::Role;
use crate::errors::Asked;

/// The `aws` plugin.
pub struct AwsBackend;

/// Secrets Manager's largest secret value: anything larger did not come from it.
const MAX_SECRET: usize = 65_536;

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
        Setting::operator(
            "endpoint_url",
            Kind::Text,
            "Secrets Manager endpoint override (FIPS, VPC endpoint, emulator)",
        ),
        Setting::operator(
            "ca_file",
            Kind::AbsolutePath,
            "CA certificates (PEM) trusted beside the node's store: a TLS-inspecting proxy's, a private endpoint's",
        ),
        Setting::operator(
            "imds_endpoint",
            Kind::Text,
            "instance metadata endpoint, or \"off\" on nodes that are not EC2",
        ),
        Setting::operator(
            "config_file",
            Kind::AbsolutePath,
            "AWS shared config file (profiles, roles, web identity)",
        ),
        Setting::operator(
            "credentials_file",
            Kind::AbsolutePath,
            "AWS shared credentials file",
        ),
        Setting::operator(
            "assume_roles",
            Kind::List,
            "role ARNs a path's `?role=` may assume; `*` at the end matches a prefix",
        ),
        Setting::operator(
            "sts_endpoint_url",
            Kind::Text,
            "STS endpoint override for `?role=` (VPC endpoint, emulator)",
        ),
        Setting {
            name: "profile",
            kind: Kind::Text,
            default: None,
            job_env: Some("AWS_PROFILE"),
            job_by_default: false,
            doc: "profile of those files (default: `default`)",
        },
    ];
    const OPTIONS: &'static [&'static str] = &["stage", "version_id", "role"];

    fn fetch(request: &Request) -> Result<Secrets, Error> {
        job_env::check(&request.env)?;
        block_on(get_secret_value(request))
    }

    /// STS `GetCallerIdentity`: proves the region, the endpoint and the node's credentials
    /// without reading a secret, and says whose credentials they are.
    fn check(settings: &Settings, deadline: Instant) -> Result<String, Error> {
        block_on(async {
            let (sts, setup) = client::sts(settings, deadline).await?;
            let me = sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| errors::describe_check(e, &setup))?;
            Ok(format!(
                "credentials work: AWS STS says they are `{}` (account {}); region `{}`",
                me.arn().unwrap_or("?"),
                me.account().unwrap_or("?"),
                setup.region
            ))
        })
    }
}

/// Runs `future` on a current-thread runtime that is shut down without waiting: a task stuck
/// in a DNS lookup must not keep the process alive.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::unavailable(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(future);
    runtime.shutdown_background();
    result
}

/// The `?role=` of the path, if the operator's `assume_roles` allows it. A job must not pick any
/// role the node's credentials can assume: that would let every job act as every role.
fn allowed_role(request: &Request) -> Result<Option<Role>, Error> {
    let Some(arn) = request.path.option("role") else {
        return Ok(None);
    };
    let allowed = request.settings.list("assume_roles");
    let matches = |pattern: &String| match pattern.strip_suffix('*') {
        Some(prefix) => arn.starts_with(prefix),
        None => arn == pattern,
    };
    if !allowed.iter().any(matches) {
        let why = match allowed {
            [] => "the operator allows no role to be assumed".to_owned(),
            _ => format!("role `{arn}` is not in the operator's `assume_roles`"),
        };
        return Err(Error::denied(why).hint(format!(
            "the operator lists the roles jobs may assume in `assume_roles` in `{}`",
            request.settings.file().display()
        )));
    }
    Ok(Some(Role {
        arn: arn.to_owned(),
        session_name: session_name(request),
    }))
}

/// `nomad-<namespace>-<job ID>`, within STS's 64 characters of `[A-Za-z0-9+=,.@_-]`, so
/// CloudTrail shows which job read the secret: a dispatched or periodic run's own ID when it
/// fits, else its parent's (the identity the access policy used).
fn session_name(request: &Request) -> String {
    let name = |job: &str| -> String {
        let namespace = match request.namespace.as_str() {
            "" => "default",
            namespace => namespace,
        };
        let job = if job.is_empty() { "unknown" } else { job };
        format!("nomad-{namespace}-{job}")
            .chars()
            .map(|c| match c {
                c if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) => c,
                _ => '_',
            })
            .collect()
    };
    let instance = name(&request.instance);
    if instance.len() <= 64 {
        return instance;
    }
    name(&request.job).chars().take(64).collect()
}

/// The region a full Secrets Manager ARN names (`arn:<partition>:secretsmanager:<region>:...`).
/// The SDK sends every request to the client's region whatever the ARN says, so a secret of
/// another region would be looked up where it is not.
fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_partition), Some("secretsmanager"), Some(region))
            if !region.is_empty() =>
        {
            Some(region)
        }
        _ => None,
    }
}

async fn get_secret_value(request: &Request) -> Result<Secrets, Error> {
    let role = allowed_role(request)?;
    let region = arn_region(request.path.locator());
    let (client, setup) =
        client::build(&request.settings, request.deadline, role.as_ref(), region).await?;
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
    setup: &client::Setup,
    settings_file: &std::path::Path,
) -> Result<Secrets, Error> {
    // AWSCURRENT is what AWS reads when neither is given, but only a request that names it
    // passes a resource policy with a `secretsmanager:VersionStage` condition.
    let stage = match (asked.stage, asked.version_id) {
        (None, None) => Some("AWSCURRENT"),
        (stage, _) => stage,
    };
    let output = client
        .get_secret_value()
        .secret_id(asked.id)
        .set_version_stage(stage.map(str::to_owned))
        .set_version_id(asked.version_id.map(str::to_owned))
        .send()
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
