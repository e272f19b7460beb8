//! The `gcp` backend: secrets from Google Cloud Secret Manager, with Google's official Rust SDK.
//!
//! `fetch <secret>`, `fetch projects/<p>/secrets/<s>` or `fetch projects/<p>/locations/<r>/secrets/<s>`
//! (regional secrets), `?version=N` (default `latest`), `#key`. The payload gives the shared
//! conversion policy (a JSON object its fields, text `value`, bytes that are not UTF-8
//! `value_base64`), after its CRC32C checksum is verified when the answer carries one. See
//! [`credentials`] for where credentials come from and what a job may set, [`names`] for paths,
//! [`transport`] for how calls reach Secret Manager (or an in-memory one, in tests and fuzzing).
//!
//! Bounded in time: the SDK's default retry policies give up only after 47 s (metadata server
//! unreachable) to 54 s (endpoint refusing); here the shared [`Budget`] applies: every attempt
//! gets at most 3 s, at most 3 attempts, the token source the same, and the whole call ends
//! 300 ms before the deadline. A throttled call is waited out within that budget ([`retry`]).
#![deny(missing_docs)]

pub mod credentials;
mod errors;
pub mod names;
mod retry;
pub mod transport;

use std::path::Path;
use std::time::Instant;

use google_cloud_gax::options::RequestOptionsBuilder as _;
use nomad_secrets_net::Budget;
use nomad_secrets_net::runtime::Bound;
use nomad_secrets_protocol::{Backend, Error, ErrorKind, Key, Request, Secrets, Setting, Settings};

use crate::transport::Transport;

/// The `gcp` plugin.
pub struct GcpBackend {
    transport: Transport,
}

impl GcpBackend {
    /// The plugin, its calls to Secret Manager going through `transport`.
    pub fn with_transport(transport: Transport) -> GcpBackend {
        GcpBackend { transport }
    }
}

/// The project of short names.
pub const PROJECT: Key<str> = Key::text("project", "project of secrets named without one")
    .job_env("GOOGLE_CLOUD_PROJECT")
    .by_hand("CLOUDSDK_CORE_PROJECT");
/// Secret Manager's endpoint.
pub const ENDPOINT_URL: Key<str> = Key::text(
    "endpoint_url",
    "Secret Manager endpoint (private endpoints, emulators); regional secrets use secretmanager.<region>.rep.googleapis.com",
)
.unset("`https://secretmanager.googleapis.com` (regional: `secretmanager.<r>.rep.googleapis.com`)");
/// The node's credentials file.
pub const CREDENTIALS_FILE: Key<Path> = Key::path(
    "credentials_file",
    "service-account key or external-account (workload identity federation) JSON file",
);
/// The metadata server.
pub const METADATA_ENDPOINT: Key<str> = Key::text(
    "metadata_endpoint",
    "GCE metadata server, or \"off\" on machines that are not GCE",
)
.unset("`http://metadata.google.internal`");
/// The federation that exchanges a job's JWT.
pub const WORKLOAD_IDENTITY_FILE: Key<Path> = Key::path(
    "workload_identity_file",
    "external-account JSON file of the workload identity pool provider that exchanges a job's GOOGLE_WORKLOAD_IDENTITY_JWT",
);
/// CAs trusted beside the node's store.
pub const CA_FILE: Key<Path> = nomad_secrets_net::CA_FILE;

impl Backend for GcpBackend {
    const NAME: &'static str = "gcp";
    const SETTINGS: &'static [Setting] = &[
        PROJECT.setting,
        ENDPOINT_URL.setting,
        CREDENTIALS_FILE.setting,
        METADATA_ENDPOINT.setting,
        WORKLOAD_IDENTITY_FILE.setting,
        CA_FILE.setting,
    ];
    const OPTIONS: &'static [&'static str] = &["version"];
    const JOB_INPUT: &'static [nomad_secrets_protocol::Variable] = credentials::JOB_INPUT;

    /// The full resource name, the project of a short name filled in from the settings.
    fn normalise(locator: &str, settings: &Settings) -> Result<String, Error> {
        Ok(names::parse(locator, settings.get(&PROJECT))?.full)
    }

    /// Everything it needs is read from the request's settings when it runs.
    /// The operator's federation file exchanges a job's verified identity (see `credentials`).
    fn exchanges_identity(settings: &Settings) -> bool {
        settings.get(&WORKLOAD_IDENTITY_FILE).is_some()
    }

    fn new(_settings: &Settings) -> Result<GcpBackend, Error> {
        Ok(GcpBackend::with_transport(Transport::https()))
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        trust_stores(&request.settings)?;
        let name = names::parse(request.path.locator(), request.settings.get(&PROJECT))?;
        let version = names::version(request.path.option("version"))?;
        block_on(
            access(&self.transport, request, &name, &version),
            request.deadline,
        )
    }

    /// Gets a token from the node's credentials and lists one secret name of the project: proves
    /// the credentials, the endpoint and the project without reading a secret's value.
    fn check(&self, settings: &Settings, deadline: Instant) -> Result<String, Error> {
        trust_stores(settings)?;
        block_on(
            async {
                let (credentials, source) =
                    credentials::credentials(settings, &Default::default(), None)?;
                let client = self.transport.client(settings, None, credentials).await?;
                let (retry, backoff) = retry::policies(Budget::new(deadline));
                let project = settings
                    .get(&PROJECT)
                    .ok_or_else(|| settings.missing(&PROJECT, "\"acme-prod\""))?;
                client
                    .list_secrets()
                    .set_parent(format!("projects/{project}"))
                    .set_page_size(1)
                    .with_attempt_timeout(Budget::ATTEMPT)
                    .with_retry_policy(retry)
                    .with_backoff_policy(backoff)
                    .send()
                    .await
                    .map_err(|e| {
                        errors::describe(&e, &format!("projects/{project}"), &source).because(e)
                    })?;
                Ok(format!(
                    "credentials work ({}): Secret Manager lists the secrets of project `{project}`",
                    source.used
                ))
            },
            deadline,
        )
    }
}

async fn access(
    transport: &Transport,
    request: &Request,
    name: &names::Name,
    version: &str,
) -> Result<Secrets, Error> {
    let (credentials, source) =
        credentials::credentials(&request.settings, &request.input, request.identity.as_ref())?;
    let client = transport
        .client(&request.settings, name.region.as_deref(), credentials)
        .await?;
    let full = format!("{}/versions/{version}", name.full);
    let (retry, backoff) = retry::policies(Budget::new(request.deadline));
    let answer = client
        .access_secret_version()
        .set_name(&full)
        .with_attempt_timeout(Budget::ATTEMPT)
        .with_retry_policy(retry)
        .with_backoff_policy(backoff)
        .send()
        .await
        .map_err(|e| errors::describe(&e, &full, &source).because(e))?;
    let payload = answer.payload.ok_or_else(|| {
        Error::invalid_secret(format!(
            "Secret Manager answered `{full}` without a payload"
        ))
    })?;
    if let Some(expected) = payload.data_crc32c {
        let actual = i64::from(crc32c(&payload.data));
        if actual != expected {
            return Err(Error::invalid_secret(format!(
                "the payload of `{full}` does not match its CRC32C checksum: it was corrupted on the way"
            ))
            .hint("try again; if it persists, check any proxy between this node and Google"));
        }
    }
    match String::from_utf8(payload.data.to_vec()) {
        Ok(text) => Secrets::from_text_or_json_object(text),
        Err(bytes) => Ok(Secrets::from_bytes(bytes.into_bytes())),
    }
}

/// Where Linux distributions keep the node's CA store, first found first.
const NODE_CA_DIRS: &[&str] = &[
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust/extracted/pem",
];

/// Points Google's HTTP clients at the CA store. They take no CA list: they trust what
/// rustls-native-certs loads, which is `SSL_CERT_FILE` and `SSL_CERT_DIR` when this process's
/// environment has them, and otherwise the distribution's bundle *and* every file of its hashed
/// folder (150 files on Debian, every root decoded twice: see `nomad_secrets_net::roots`).
/// Under Nomad that environment is the job's, and a job that sets either is refused (see
/// [`credentials::JOB_INPUT`]); by hand it is the person's, which is kept.
/// - Without `ca_file`: the node's bundle alone, the same roots read once (still only when a
///   TLS connection needs them).
/// - With `ca_file`: that file, beside the node's folder.
fn trust_stores(settings: &Settings) -> Result<(), Error> {
    let ca_file = settings.get(&CA_FILE);
    if let Some(file) = ca_file {
        nomad_secrets_net::operator_cas(CA_FILE.name(), file)?;
    }
    let set = store_variables(
        ca_file,
        |name| std::env::var_os(name),
        |path| std::path::Path::new(path).exists(),
    );
    for (name, value) in set {
        // SAFETY: the only threads of this process at this point wait on a channel or a
        // signal and read no environment; the SDK's threads start later, in `block_on`.
        unsafe { std::env::set_var(name, value) };
    }
    Ok(())
}

/// The store variables [`trust_stores`] sets, given the operator's `ca_file`, the process's
/// environment (`var`) and which paths exist.
fn store_variables(
    ca_file: Option<&Path>,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
    exists: impl Fn(&str) -> bool,
) -> Vec<(&'static str, std::ffi::OsString)> {
    let named = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    match ca_file {
        Some(file) => {
            let node_folder = var("SSL_CERT_DIR")
                .or_else(|| NODE_CA_DIRS.iter().find(|dir| exists(dir)).map(Into::into));
            let mut set = vec![("SSL_CERT_FILE", file.as_os_str().to_owned())];
            set.extend(node_folder.map(|dir| ("SSL_CERT_DIR", dir)));
            set
        }
        None if named("SSL_CERT_FILE") || named("SSL_CERT_DIR") => Vec::new(),
        None => nomad_secrets_net::roots::NODE_BUNDLES
            .iter()
            .find(|bundle| exists(bundle))
            .map(|bundle| ("SSL_CERT_FILE", (*bundle).into()))
            .into_iter()
            .collect(),
    }
}

/// The shared budget's backoff: 100 ms, then 200 ms, at most 1 s (the SDK's default starts at 1 s).
pub(crate) fn backoff() -> google_cloud_gax::exponential_backoff::ExponentialBackoff {
    google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder::new()
        .with_initial_delay(Budget::FIRST_BACKOFF)
        .with_maximum_delay(Budget::MAX_BACKOFF)
        .clamp()
}

/// Runs `future` with the shared [`block_on`](nomad_secrets_net::runtime::block_on), cut when
/// the deadline's [`Budget`] is spent: Google's retry loop and token sources have no bound of
/// their own that covers a whole call.
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, Error>>,
    deadline: Instant,
) -> Result<T, Error> {
    // Built without aws-lc: every TLS client here (Secret Manager's, the token sources') uses
    // ring, installed before the first is made.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bound = Bound::Budget {
        deadline,
        timed_out: || {
            Error::new(
                ErrorKind::Timeout,
                "Secret Manager (or the credentials' token source) did not answer in time",
            )
            .hint("check that this node can reach Google's endpoints, or `endpoint_url` and `metadata_endpoint`")
        },
    };
    nomad_secrets_net::runtime::block_on(future, bound)
}

/// CRC32C (Castagnoli), the checksum Secret Manager gives a payload.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use nomad_secrets_protocol::{JobInput, SecretPath};

    use super::*;
    use crate::transport::Answer;

    #[test]
    fn the_clients_read_the_node_bundle_alone_unless_a_store_is_named() {
        let debian =
            |path: &str| ["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs"].contains(&path);
        let nothing = |_: &str| None;
        // Under Nomad (no store named): the bundle alone, never the hashed folder.
        assert_eq!(
            store_variables(None, nothing, debian),
            vec![("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt".into())]
        );
        // By hand, a person's store is theirs.
        let person = |name: &str| (name == "SSL_CERT_DIR").then(|| "/home/me/cas".into());
        assert_eq!(store_variables(None, person, debian), vec![]);
        // The operator's CA file beside the node's folder.
        assert_eq!(
            store_variables(Some(Path::new("/etc/nomad/ca.pem")), nothing, debian),
            vec![
                ("SSL_CERT_FILE", "/etc/nomad/ca.pem".into()),
                ("SSL_CERT_DIR", "/etc/ssl/certs".into())
            ]
        );
        // No bundle anywhere: the SDK's own search.
        assert_eq!(store_variables(None, nothing, |_| false), vec![]);
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }

    /// `fetch <raw>` with the job's own access token, against a Secret Manager that answers
    /// `answer` about the one name it must be asked for.
    fn fetch(raw: &str, asked: &'static str, answer: Answer) -> Result<Secrets, Error> {
        let settings = Settings::from_text(
            Path::new("/opt/nomad/plugins/secrets/gcp.toml"),
            Some("project = \"acme\"\n"),
            GcpBackend::SETTINGS,
            &HashMap::new(),
        )?;
        let env: HashMap<_, _> = [("GOOGLE_OAUTH_ACCESS_TOKEN".into(), "ya29.test".into())].into();
        let input = JobInput::check("gcp", "gcp.toml", GcpBackend::JOB_INPUT, &[], &[], &env)?;
        let request = Request {
            path: SecretPath::parse(raw, GcpBackend::OPTIONS)?,
            settings,
            env,
            input,
            deadline: Instant::now() + Duration::from_secs(5),
            manual: false,
            namespace: "default".into(),
            job: "test".into(),
            instance: "test".into(),
            identity: None,
        };
        let transport = Transport::in_memory(move |name| {
            assert_eq!(name, asked);
            answer.clone()
        });
        GcpBackend::with_transport(transport).fetch(&request)
    }

    #[test]
    fn the_whole_fetch_runs_against_an_in_memory_secret_manager() {
        let data = br#"{"password":"CANARY"}"#.to_vec();
        let crc32c = Some(i64::from(crc32c(&data)));
        let good = Answer::Payload {
            data: data.clone(),
            crc32c,
        };
        let secrets = fetch("db?version=3", "projects/acme/secrets/db/versions/3", good).unwrap();
        assert_eq!(secrets.len(), 1);
        let corrupted = Answer::Payload {
            data,
            crc32c: crc32c.map(|c| c + 1),
        };
        let error = fetch("db", "projects/acme/secrets/db/versions/latest", corrupted);
        assert_eq!(error.unwrap_err().kind(), ErrorKind::InvalidSecret);
        let missing = Answer::Refused {
            code: 5,
            message: "Secret [projects/1/secrets/db] not found or has no versions.".into(),
        };
        let regional = "projects/p/locations/europe-west1/secrets/db";
        let error = fetch(
            regional,
            "projects/p/locations/europe-west1/secrets/db/versions/latest",
            missing,
        );
        assert_eq!(error.unwrap_err().kind(), ErrorKind::NotFound);
        let proxy = Answer::Http {
            status: 502,
            body: b"<html>bad gateway</html>".to_vec(),
        };
        let error = fetch("db", "projects/acme/secrets/db/versions/latest", proxy).unwrap_err();
        assert!(error.to_string().contains("HTTP 502"), "{error}");
    }
}
