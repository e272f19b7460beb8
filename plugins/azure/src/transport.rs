//! How every call of the SDK reaches Azure: this plugin's own HTTP client, plugged in as the
//! SDK's `HttpClient` (Key Vault's and the credentials' token endpoints alike), or an in-memory
//! Azure that answers each call itself, for tests and fuzz targets that run the whole fetch.
//!
//! Over HTTPS it is blocking ureq on rustls with ring (no C crypto build), run on the async
//! runtime's blocking pool: it trusts the node's CA bundle and the operator's `ca_file` beside
//! it, reads no proxy from the environment, follows no redirect, and sends each call with the
//! shared retry loop of `crates/net` under the run's [`Budget`] (5xx and lost connections:
//! at most three attempts; 429: full-jitter waits while the budget has room). The SDK's own
//! retries are off, so calls are never multiplied.
//!
//! Two operator settings aim it: `connect_to` (connections for the vaults' names go to that
//! address while TLS still verifies the vault's name: a private endpoint without DNS, a test
//! double) and `imds_endpoint` (where the managed identity's calls to IMDS go, or `off`).

use std::io::Read as _;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::Headers;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, StatusCode};
use nomad_secrets_net::rest::{self, ConnectTo, Failure, Hosts, Retry};
use nomad_secrets_net::{Budget, CA_FILE, TlsFailure, operator_cas};
use nomad_secrets_protocol::{Error, ErrorKind, Settings};
use ureq::tls::{RootCerts, TlsConfig};

use crate::{CONNECT_TO, IMDS_ENDPOINT};

/// The address the SDK gives IMDS (Azure's instance metadata service).
const IMDS_HOST: &str = "169.254.169.254";
/// No Key Vault or token answer is that large (a secret holds at most 25 KB).
const MAX_BODY: u64 = 1 << 20;

/// One call as an in-memory Azure sees it.
#[derive(Clone, Debug)]
pub struct Call {
    /// `GET`, `POST`.
    pub method: String,
    /// The whole URL.
    pub url: String,
    /// Whether it carries a bearer token.
    pub authorized: bool,
}

/// One answer of an in-memory Azure.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers (`WWW-Authenticate` for the challenge, say).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// An in-memory Azure: its answer to each call.
pub type Answering = Arc<dyn Fn(&Call) -> Answer + Send + Sync>;

/// How calls reach Azure.
#[derive(Clone)]
pub struct Transport {
    link: Link,
}

#[derive(Clone)]
enum Link {
    Https,
    InMemory(Answering),
}

impl Transport {
    /// The plugin's HTTPS client, set up from the settings when a fetch runs.
    pub fn https() -> Transport {
        Transport { link: Link::Https }
    }

    /// Answers every call with `answer(call)`, at once and without retries.
    pub fn in_memory(answer: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> Transport {
        Transport {
            link: Link::InMemory(Arc::new(answer)),
        }
    }

    /// The SDK's HTTP client for a run with `settings`, bounded by `budget`.
    pub(crate) fn client(
        &self,
        settings: &Settings,
        budget: Budget,
    ) -> Result<Arc<dyn HttpClient>, Error> {
        let imds = match settings.get(&IMDS_ENDPOINT) {
            Some("off") => None,
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None => Some(format!("http://{IMDS_HOST}")),
        };
        let sender = match &self.link {
            Link::InMemory(answer) => Sender::InMemory(answer.clone()),
            Link::Https => Sender::Agent(agent(settings)?),
        };
        Ok(Arc::new(Client {
            sender,
            imds,
            budget,
        }))
    }
}

/// The SDK's `HttpClient`.
struct Client {
    sender: Sender,
    /// Where IMDS calls go; `None`: managed identity is off.
    imds: Option<String>,
    budget: Budget,
}

#[derive(Clone)]
enum Sender {
    Agent(ureq::Agent),
    InMemory(Answering),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("azure transport")
    }
}

/// One request, owned, for the blocking pool.
struct Outgoing {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[async_trait]
impl HttpClient for Client {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = self.aimed(request.url().as_str()).map_err(into_sdk)?;
        let body = match request.body() {
            azure_core::http::Body::Bytes(bytes) => bytes.to_vec(),
            // The SDK streams only uploads, which this plugin never makes.
            azure_core::http::Body::SeekableStream(_) => {
                return Err(into_sdk(Error::unavailable(
                    "the Azure SDK asked to stream a request body, which this plugin never sends",
                )));
            }
        };
        let outgoing = Outgoing {
            method: request.method().as_ref().to_owned(),
            url,
            headers: request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_str().to_owned()))
                .collect(),
            body,
        };
        let (sender, budget) = (self.sender.clone(), self.budget);
        let answer = tokio::task::spawn_blocking(move || send(&sender, &outgoing, &budget))
            .await
            .map_err(|_| into_sdk(Error::unavailable("the HTTP call was cut short")))?
            .map_err(into_sdk)?;
        let mut headers = Headers::new();
        for (name, value) in answer.headers {
            headers.insert(name.to_ascii_lowercase(), value);
        }
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(answer.status),
            headers,
            answer.body,
        ))
    }
}

impl Client {
    /// The URL to send to: IMDS's address replaced by the operator's `imds_endpoint`.
    fn aimed(&self, url: &str) -> Result<String, Error> {
        let Some(rest) = url.strip_prefix(&format!("http://{IMDS_HOST}")) else {
            return Ok(url.to_owned());
        };
        match &self.imds {
            Some(imds) => Ok(format!("{imds}{rest}")),
            None => Err(Error::unavailable(
                "managed identity needs IMDS, which the operator turned off (`imds_endpoint = \"off\"`)",
            )
            .hint("set `client_secret_file` or `client_certificate_file` with `tenant_id` and `client_id`, or pass a workload identity")),
        }
    }
}

/// Sends `call` with the shared retry loop (never retried in memory: the answer would not
/// change).
fn send(sender: &Sender, call: &Outgoing, budget: &Budget) -> Result<Answer, Error> {
    let agent = match sender {
        Sender::Agent(agent) => agent,
        Sender::InMemory(answer) => {
            return Ok(answer(&Call {
                method: call.method.clone(),
                url: call.url.clone(),
                authorized: call
                    .headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("authorization")),
            }));
        }
    };
    let answer = rest::retrying(
        budget,
        || once(agent, call, budget),
        |outcome| match outcome {
            Ok(answer) if answer.status == 429 => Retry::Throttled,
            Ok(answer) if matches!(answer.status, 500 | 502 | 503 | 504) => Retry::Transient,
            Err(error) if error.kind() == ErrorKind::Unavailable => Retry::Transient,
            _ => Retry::Answer,
        },
    )?;
    refused_token(call, &answer).map_or(Ok(answer), Err)
}

/// A token endpoint's refusal (Entra ID's or IMDS's), said by its codes: the SDK reads Entra
/// ID's error bodies with borrowed strings, which fail on the escapes its descriptions hold,
/// and would lose the codes. Never quoted: the description can echo the request.
fn refused_token(call: &Outgoing, answer: &Answer) -> Option<Error> {
    if answer.status < 400 || answer.status == 429 || answer.status >= 500 {
        return None;
    }
    let path = call.url.split('?').next().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let error = json["error"]
        .as_str()
        .filter(|e| e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let error = error.map(|e| format!(": {e}")).unwrap_or_default();
    let status = answer.status;
    if path.ends_with("/oauth2/v2.0/token") {
        let codes: Vec<String> = json["error_codes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_u64)
            .map(|code| format!("AADSTS{code}"))
            .collect();
        let codes = match codes.is_empty() {
            true => String::new(),
            false => format!(", {}", codes.join(", ")),
        };
        return Some(Error::denied(format!(
            "Entra ID refused the credentials (HTTP {status}{codes}{error})"
        ))
        .hint("look the code up in Entra ID's error reference; check `tenant_id`, `client_id`, the client secret's or certificate's expiry, and for a job's token the app's federated credentials (issuer, subject, audience)"));
    }
    if path.ends_with("/metadata/identity/oauth2/token") {
        return Some(Error::denied(format!(
            "IMDS refused a token for the managed identity (HTTP {status}{error})"
        ))
        .hint("check that the identity is assigned to this VM (`client_id` for a user-assigned one), or set `imds_endpoint = \"off\"` on machines that are not Azure VMs"));
    }
    None
}

/// One attempt, bounded by the budget.
fn once(agent: &ureq::Agent, call: &Outgoing, budget: &Budget) -> Result<Answer, Error> {
    let host = host_of(&call.url);
    let attempt = budget.attempt();
    if attempt.is_zero() {
        return Err(timed_out(host));
    }
    let mut request = ureq::http::Request::builder()
        .method(call.method.as_str())
        .uri(&call.url);
    for (name, value) in &call.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(call.body.clone())
        .map_err(|e| Error::invalid_path(format!("cannot build a request for `{host}`: {e}")))?;
    let request = agent
        .configure_request(request)
        .timeout_global(Some(attempt))
        .build();
    let mut response = agent
        .run(request)
        .map_err(|e| transport_error(host, &e).because(e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            Error::unavailable(format!(
                "`{host}` closed the connection in the middle of its answer"
            ))
            .because(e)
        })?;
    if body.len() as u64 > MAX_BODY {
        return Err(Error::invalid_secret(format!(
            "`{host}` answered with more than 1 MiB; no Key Vault or token answer is that large"
        ))
        .hint(
            "check `endpoint_url`, `connect_to` and `authority_host`: they may not point at Azure",
        ));
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The host (and port) of `url`, for messages.
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

fn timed_out(host: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("no answer from `{host}` in time"),
    )
    .hint("check that this node can reach Azure (firewall, private endpoints, `connect_to`)")
}

/// What failed on the way, said by type.
fn transport_error(host: &str, error: &ureq::Error) -> Error {
    match rest::failure(error) {
        Failure::Tls(TlsFailure::Expired) => Error::denied(format!(
            "TLS with `{host}` failed: its certificate has expired"
        ))
        .hint("the endpoint's (or a proxy's) certificate must be renewed; if it is current, check this node's clock"),
        Failure::Tls(TlsFailure::Other(text)) => Error::denied(format!(
            "TLS with `{host}` failed: {text}"
        ))
        .hint("its certificate must be signed by a CA in the node's store or in `ca_file` in azure.toml (a TLS-inspecting proxy's, a private endpoint's)"),
        Failure::TlsSetup(why) => Error::denied(format!("TLS with `{host}` failed: {why}"))
            .hint("check `ca_file` in azure.toml"),
        Failure::Timeout => timed_out(host),
        Failure::Disconnected => Error::unavailable(format!(
            "`{host}` closed the connection in the middle of its answer"
        ))
        .hint("try again; if it persists, check any proxy on the way"),
        Failure::Connect(why) => Error::unavailable(format!("cannot connect to `{host}`: {why}"))
            .hint("check the network, `connect_to` and `endpoint_url`"),
        Failure::HostNotFound => Error::not_found(format!(
            "`{host}` does not resolve: no such vault (or endpoint) exists, or DNS cannot see it"
        ))
        .hint("check the vault's name; for a private endpoint, the node's DNS or `connect_to`"),
        Failure::Other(why) => Error::unavailable(format!("the request to `{host}` failed: {why}")),
    }
}

/// Our error, carried through the SDK as the source of its own (found again in `errors`).
fn into_sdk(error: Error) -> azure_core::Error {
    let message = error.to_string();
    azure_core::Error::with_error(azure_core::error::ErrorKind::Io, error, message)
}

/// The HTTPS agent: the node's CAs and the operator's beside them, no proxy, no redirect,
/// statuses as answers, and `connect_to` for the vaults' names.
fn agent(settings: &Settings) -> Result<ureq::Agent, Error> {
    let mut pem = match nomad_secrets_net::roots::node_bundle() {
        Some(bundle) => bundle.to_vec(),
        // By hand, with `SSL_CERT_FILE`: that file, as the person's tools read it.
        None => std::env::var_os("SSL_CERT_FILE")
            .and_then(|file| std::fs::read(file).ok())
            .unwrap_or_default(),
    };
    if let Some(file) = settings.get(&CA_FILE) {
        pem.extend_from_slice(&operator_cas(CA_FILE.name(), file)?);
    }
    let roots = rest::certificates(&pem);
    let roots = match roots.is_empty() {
        true => RootCerts::WebPki,
        false => RootCerts::Specific(Arc::new(roots)),
    };
    let config = ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("nomad-secrets-azure/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ureq::unversioned::transport::DefaultConnector::default();
    Ok(match settings.get(&CONNECT_TO) {
        None => ureq::Agent::with_parts(
            config,
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        ),
        // The vaults' names (`*.<vault_suffix>`) connect to the operator's address.
        Some(address) => {
            let real = format!("https://{address}").parse().map_err(|_| {
                Error::settings(format!("`connect_to` `{address}` is not `<host>:<port>`"))
            })?;
            let hosts = Hosts::EndingWith(format!(".{}", crate::vault_suffix(settings)));
            ureq::Agent::with_parts(config, connector, ConnectTo { hosts, real })
        }
    })
}
