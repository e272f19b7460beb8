//! What every AWS plugin shares, generic over the service it reads.
//!
//! - [`client`]: one bounded SDK configuration (every network step fits the deadline), the
//!   explicit credentials chain, the region, role assumption; by hand, the AWS CLI's sources.
//! - [`job_env`]: which `AWS_*` variables a job may pass, and the setting to use for the rest.
//! - [`errors`]: messages for what is not the service's own (credentials, STS, TLS, timeouts,
//!   connections, AWS's shared error codes).
//! - Here: the shared settings, `?role=`, ARNs, the runtime, and `check` through STS.
//!
//! A plugin (`aws`, `aws-ssm`) adds only its service's call, its own errors and its paths.
#![deny(missing_docs)]

pub mod client;
pub mod errors;
pub mod job_env;
pub mod throttle;
pub mod transport;

use std::time::Instant;

use std::path::Path;

use nomad_secrets_protocol::{Error, Key, Request, Setting, Settings};

pub use client::{Call, Role, STS, Service, Setup, WebIdentity};
pub use transport::{Answer, Transport};

/// The region; a job's `AWS_REGION` by default.
pub const REGION: Key<str> = Key::text(
    "region",
    "AWS region (else the profile's, else the instance's)",
)
.unset("the profile's, else the instance's")
.job_env("AWS_REGION")
.job_by_default()
.by_hand("AWS_DEFAULT_REGION");
/// The service's endpoint.
pub const ENDPOINT_URL: Key<str> = Key::text(
    "endpoint_url",
    "service endpoint override (FIPS, VPC endpoint, emulator)",
)
.unset("AWS's regional endpoint")
.by_hand("AWS_ENDPOINT_URL");
/// CAs trusted beside the node's store.
pub const CA_FILE: Key<Path> = nomad_secrets_net::CA_FILE
    .described(
        "CA certificates (PEM) trusted beside the node's store: a TLS-inspecting proxy's, a private endpoint's",
    )
    .by_hand("AWS_CA_BUNDLE");
/// The instance metadata endpoint.
pub const IMDS_ENDPOINT: Key<str> = Key::text(
    "imds_endpoint",
    "instance metadata endpoint, or \"off\" on nodes that are not EC2",
)
.unset("`http://169.254.169.254`")
.by_hand("AWS_EC2_METADATA_SERVICE_ENDPOINT");
/// The shared config file.
pub const CONFIG_FILE: Key<Path> = Key::path(
    "config_file",
    "AWS shared config file (profiles, roles, web identity)",
)
.unset("none: never `~/.aws` under Nomad")
.by_hand("AWS_CONFIG_FILE");
/// The shared credentials file.
pub const CREDENTIALS_FILE: Key<Path> =
    Key::path("credentials_file", "AWS shared credentials file")
        .unset("none: never `~/.aws` under Nomad")
        .by_hand("AWS_SHARED_CREDENTIALS_FILE");
/// The roles a path's `?role=` may assume.
pub const ASSUME_ROLES: Key<[String]> = Key::list(
    "assume_roles",
    "role ARNs a path's `?role=` may assume; `*` at the end matches the rest of a role's name (never a `/`)",
)
.unset("no role");
/// STS's endpoint.
pub const STS_ENDPOINT_URL: Key<str> = Key::text(
    "sts_endpoint_url",
    "STS endpoint override for `?role=` (VPC endpoint, emulator)",
)
.unset("AWS's regional STS endpoint")
.by_hand("AWS_ENDPOINT_URL_STS");
/// The role a job's verified workload identity is exchanged for, per job.
pub const IDENTITY_ROLE_ARN: Key<str> = Key::text(
    "identity_role_arn",
    "role a job's verified workload identity is exchanged for at STS (AssumeRoleWithWebIdentity), with `{namespace}` and `{job}` filled in: `arn:aws:iam::123456789012:role/nomad.{namespace}.{job}`; then a run without a verified identity is denied",
)
.unset("the node's credentials for every job");
/// The profile of the shared files.
pub const PROFILE: Key<str> = Key::text("profile", "profile of those files (default: `default`)")
    .unset("`default`")
    .job_env("AWS_PROFILE");

/// The settings every AWS plugin reads (its whole `Backend::SETTINGS` unless it adds some).
pub const SETTINGS: &[Setting] = &[
    REGION.setting,
    ENDPOINT_URL.setting,
    CA_FILE.setting,
    IMDS_ENDPOINT.setting,
    CONFIG_FILE.setting,
    CREDENTIALS_FILE.setting,
    ASSUME_ROLES.setting,
    STS_ENDPOINT_URL.setting,
    IDENTITY_ROLE_ARN.setting,
    PROFILE.setting,
];

/// The parts of an ARN, `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// `secretsmanager`, `ssm`.
    pub service: &'a str,
    /// The resource's region.
    pub region: &'a str,
    /// The owning account.
    pub account: &'a str,
    /// What follows the account (`secret:prod/db-AbCdEf`, `parameter/app/db`).
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `id` as an ARN of `service` with a region, or `None` when it is not one (a name).
    pub fn parse(id: &'a str, service: &str) -> Option<Arn<'a>> {
        let mut parts = id.splitn(6, ':');
        let arn = Arn {
            partition: parts.next().filter(|p| *p == "arn").and(parts.next())?,
            service: parts.next().filter(|s| *s == service)?,
            region: parts.next().filter(|r| !r.is_empty())?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        Some(arn)
    }
}

/// The `?role=` of the path, if the operator's `assume_roles` allows it. A job must not pick any
/// role the node's credentials can assume: that would let every job act as every role.
pub fn allowed_role(request: &Request) -> Result<Option<Role>, Error> {
    let Some(arn) = request.path.option("role") else {
        return Ok(None);
    };
    let allowed = request.settings.get(&ASSUME_ROLES);
    // `*` stands for the rest of the role's name, never for a role path: `role/team-a-*` must
    // not allow `role/team-a-/admin` (a role `admin` under the path `/team-a-/`).
    let matches = |pattern: &String| match pattern.strip_suffix('*') {
        Some(prefix) => arn
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.contains('/')),
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

/// Whether the operator gives each job a role of its own (`identity_role_arn`): then a run
/// without a verified identity is denied, never served with the node's credentials.
pub fn exchanges_identity(settings: &Settings) -> bool {
    settings.get(&IDENTITY_ROLE_ARN).is_some()
}

/// A template that gives two jobs one role is refused: both placeholders, with a character a
/// Nomad namespace cannot hold (namespaces are `[a-zA-Z0-9-]`) between them, so that
/// namespace `prod-db`, job `api` never fills in as namespace `prod`, job `db-api`.
fn check_role_template(template: &str) -> Result<(), Error> {
    let refuse = |why: &str| {
        Err(
            Error::settings(format!("`identity_role_arn` `{template}` {why}")).hint(
                "write it like `arn:aws:iam::123456789012:role/nomad.{namespace}.{job}`: `.` \
             cannot be part of a namespace, so every job fills in a role of its own",
            ),
        )
    };
    let (Some(ns), Some(job)) = (template.find("{namespace}"), template.find("{job}")) else {
        return refuse(
            "must name both {namespace} and {job}: jobs of one name in two namespaces are two jobs",
        );
    };
    let between = match ns < job {
        true => &template[ns + "{namespace}".len()..job],
        false => &template[job + "{job}".len()..ns],
    };
    if !between
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '-'))
    {
        return refuse(
            "puts {namespace} and {job} side by side with only letters, digits or `-` between \
             them: two jobs could fill in the same role",
        );
    }
    Ok(())
}

/// The role of the job's verified workload identity, when the operator set `identity_role_arn`
/// and the job proved who it is (and passed no credential of its own, which wins).
pub fn identity_role(request: &Request) -> Result<Option<WebIdentity>, Error> {
    let (Some(template), Some(identity)) = (
        request.settings.get(&IDENTITY_ROLE_ARN),
        request.identity.as_ref(),
    ) else {
        return Ok(None);
    };
    if request.input.credential().is_some() {
        return Ok(None);
    }
    check_role_template(template)?;
    // IAM's characters for role names; anything else (a `/` in a job ID) would name a role
    // under another path, or a different role.
    let fits = |value: &str| {
        !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    };
    for (placeholder, value) in [
        ("{namespace}", &identity.namespace),
        ("{job}", &identity.job),
    ] {
        if template.contains(placeholder) && !fits(value) {
            return Err(Error::denied(format!(
                "`identity_role_arn` puts {placeholder} in a role name, and `{value}` holds \
                 characters an IAM role name cannot (only letters, digits and +=,.@_-)"
            ))
            .hint("ask the operator for a role for this job, or rename the job"));
        }
    }
    let arn = template
        .replace("{namespace}", &identity.namespace)
        .replace("{job}", &identity.job);
    Ok(Some(WebIdentity {
        role: Role {
            arn,
            session_name: session_name(request),
        },
        token: nomad_secrets_protocol::Secret::new(identity.token()),
    }))
}

/// The STS session name, so that CloudTrail (and IAM conditions on `sts:RoleSessionName`) say
/// which job read the secret, unambiguously: `nomad.<namespace>.<job ID>` when that fits STS's
/// 64 characters of `[A-Za-z0-9+=,.@_-]` (a Nomad namespace holds no `.`, so the first `.` after
/// `nomad.` ends it), else the same cut short, its characters outside the set as `_`, and
/// `=<digest>` of the namespace and ID (a name as written never holds `=`). A dispatched or
/// periodic run's own ID (its parent's is in it, before the first `/`).
pub fn session_name(request: &Request) -> String {
    let job = match request.instance.is_empty() {
        true => &request.job,
        false => &request.instance,
    };
    session_name_of(&request.namespace, job)
}

fn session_name_of(namespace: &str, job: &str) -> String {
    use sha2::{Digest as _, Sha256};
    const MAX: usize = 64;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+,.@_-".contains(c);
    let namespace = match namespace {
        "" => "default",
        namespace => namespace,
    };
    let name = |job: &str| -> String {
        let job = if job.is_empty() { "unknown" } else { job };
        let plain = format!("nomad.{namespace}.{job}");
        let namespace_plain = namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if namespace_plain && job.chars().all(allowed) && plain.len() <= MAX {
            return plain;
        }
        let digest = Sha256::digest(format!("{namespace}\0{job}").as_bytes());
        let digest: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let shown: String = plain
            .chars()
            .map(|c| if allowed(c) { c } else { '_' })
            .take(MAX - 1 - digest.len())
            .collect();
        format!("{shown}={digest}")
    };
    name(job)
}

/// Runs `future` with the shared [`block_on`](nomad_secrets_net::runtime::block_on). Not cut
/// there: the SDK's own operation timeouts, set from the same budget (see `client`), end the
/// call in time and name the endpoint that did not answer.
pub fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    nomad_secrets_net::runtime::block_on(future, nomad_secrets_net::runtime::Bound::Client)
}

/// The bounded configuration for one fetch of `service`: the `?role=` the operator allows, the
/// region of a full ARN of the service (the SDK would send it to the client's region
/// regardless), and the person's sources when run by hand.
pub async fn config_for(
    transport: &Transport,
    request: &Request,
    service: &'static Service,
) -> Result<(aws_types::SdkConfig, Setup), Error> {
    let role = allowed_role(request)?;
    if let Some(uri) = request
        .input
        .get(job_env::RELATIVE_URI)
        .filter(|_| !request.manual)
    {
        // The SDK appends it to the ECS agent's address: anything but a path would aim it.
        if !uri.starts_with('/') || uri.starts_with("//") || uri.contains(['@', '\\', '#', '?']) {
            return Err(Error::settings(format!(
                "the job's env sets `{}` to something that is not a path: it is appended to \
                 the ECS agent's address 169.254.170.2, and may not aim anywhere else",
                job_env::RELATIVE_URI
            ))
            .hint("pass the task's own relative URI, like `/v2/credentials/<id>`"));
        }
    }
    let web_identity = identity_role(request)?;
    let arn = Arn::parse(request.path.locator(), service.endpoint_prefix);
    let call = Call {
        service,
        role: role.as_ref(),
        arn_region: arn.map(|arn| arn.region),
        manual: request.manual,
        job_credential: request.input.credential(),
        web_identity: web_identity.as_ref(),
    };
    client::config(transport, &request.settings, request.deadline, &call).await
}

/// `check` for every AWS plugin: STS `GetCallerIdentity` proves the region, the endpoint and the
/// node's credentials without reading a secret, and says whose credentials they are.
pub fn check(
    transport: &Transport,
    settings: &Settings,
    deadline: Instant,
) -> Result<String, Error> {
    block_on(async {
        let call = Call {
            service: &STS,
            role: None,
            arn_region: None,
            manual: false,
            job_credential: None,
            web_identity: None,
        };
        let (sdk, setup) = client::config(transport, settings, deadline, &call).await?;
        let me = aws_sdk_sts::Client::new(&sdk)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_tell_every_job_apart() {
        assert_eq!(session_name_of("prod", "api"), "nomad.prod.api");
        // These were both `nomad-prod-eu-api`.
        assert_ne!(
            session_name_of("prod-eu", "api"),
            session_name_of("prod", "eu-api")
        );
        // `eu api` and `eu_api` were the same name; a name as written never holds `=`.
        let spaced = session_name_of("prod", "eu api");
        assert!(spaced.starts_with("nomad.prod.eu_api="), "{spaced}");
        assert_ne!(spaced, session_name_of("prod", "eu_api"));
        assert_ne!(session_name_of("p", "x=1"), session_name_of("p", "x_1"));
        let long = "j".repeat(80);
        let (a, b) = (format!("{long}a"), format!("{long}b"));
        assert_ne!(session_name_of("p", &a), session_name_of("p", &b));
        for name in [session_name_of("p", &a), spaced] {
            assert!(name.len() <= 64, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
            );
        }
    }

    #[test]
    fn arns_give_their_parts_names_give_none() {
        let arn = Arn::parse(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
            "secretsmanager",
        )
        .unwrap();
        assert_eq!(
            (arn.partition, arn.region, arn.account, arn.resource),
            ("aws", "eu-west-1", "123456789012", "secret:prod/db-AbCdEf")
        );
        for not_one in [
            "prod/db",
            "arn:aws:ssm:eu-west-1:1:parameter/x",
            "arn:aws:secretsmanager::1:secret:x",
            "arn:aws:secretsmanager:eu-west-1",
            "arn",
        ] {
            assert_eq!(Arn::parse(not_one, "secretsmanager"), None, "{not_one}");
        }
    }
}
