//! Vault's HTTP API, bounded by the run's deadline (the shared [`Budget`]).
//!
//! Every request carries `X-Vault-Request: true` (required by Vault Agent/Proxy with
//! `require_request_header`) and, when set, `X-Vault-Token` and `X-Vault-Namespace`. Retried
//! by the shared loop ([`rest::retrying`]) with the budget's backoff, as Vault's own client
//! does: connection errors, 412 (Enterprise eventual consistency), 429 (rate-limit quota) and
//! 500/502/503/504; never 501, 400, 403, 404 or 405.
//! A standby node's 307 is followed once, same method and body. Bodies are read up to 1 MiB.

use std::sync::Arc;
use std::time::Instant;

use nomad_secrets_net::rest::{self, Failure, Retry};
use nomad_secrets_net::{Budget, TlsFailure};
use nomad_secrets_protocol::{Error, ErrorKind, Settings};
use serde_json::Value;
use ureq::Agent;

use crate::settings::ADDRESS;

/// Largest response body read.
const MAX_BODY: u64 = 1 << 20;

/// What Vault's request log shows for this plugin.
const USER_AGENT: &str = "nomad-secrets-vault-kv";

/// An in-memory Vault: the status and body it answers a request with, given the method and the
/// URL (the address's, then `/v1/...`).
pub type Answering = Arc<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

/// How requests reach Vault.
#[derive(Clone)]
pub enum Transport {
    /// HTTPS (or HTTP) through the REST client of `crates/net`, set up for the address in use
    /// from the operator's TLS settings.
    Network,
    /// Every request answered at once, as JSON, without retries (the answer would not change):
    /// for tests and fuzz targets that run the whole fetch without a network.
    InMemory(Answering),
}

/// Where one request goes.
enum Link {
    Agent(Agent),
    InMemory(Answering),
}

/// A Vault server as the operator (or the job's own credentials) configured it.
pub struct Vault {
    link: Link,
    /// The operator's `address` (or the job's), for messages.
    pub address: String,
    /// Where requests go: the address, with `tls_server_name` as host when set.
    base: String,
    budget: Budget,
}

/// One answer: status and JSON body (`Null` when empty or not JSON).
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
    /// The body as Vault wrote it: a secret's values are cut out of it as written (a parsed
    /// number would be re-spelled: `1E5` as `1e+5`).
    pub text: String,
}

impl Answer {
    /// Reads a response body: JSON, or nothing (`Null`); anything else is an error naming the
    /// content type (a proxy's HTML page, say), never the body. A 307's `location` becomes the
    /// body's `location`.
    pub fn parse(
        status: u16,
        text: &str,
        content_type: Option<&str>,
        location: Option<String>,
        address: &str,
    ) -> Result<Answer, Error> {
        let mut body: Value = match serde_json::from_str(text) {
            Ok(body) => body,
            Err(_) if text.trim().is_empty() => Value::Null,
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "Vault at `{address}` answered HTTP {status} with something that is not JSON (Content-Type: {})",
                    content_type.unwrap_or("none")
                ))
                .hint("check `address`: a proxy or load balancer may be answering instead of Vault"));
            }
        };
        if let (307, Some(location)) = (status, location) {
            body = serde_json::json!({ "location": location });
        }
        Ok(Answer {
            status,
            body,
            text: text.to_owned(),
        })
    }

    /// Vault's `errors` array, joined: go-multierror text flattened to one line.
    pub fn errors(&self) -> String {
        let list = self.body["errors"].as_array().cloned().unwrap_or_default();
        list.iter()
            .filter_map(Value::as_str)
            .flat_map(|e| e.lines())
            .map(|l| l.trim().trim_start_matches("* ").trim())
            .filter(|l| !l.is_empty() && !l.ends_with("occurred:"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// True for a 403 whose errors include "invalid token" (expired, revoked, unknown).
    pub fn invalid_token(&self) -> bool {
        self.status == 403 && self.errors().contains("invalid token")
    }
}

impl Vault {
    /// The Vault at `address` through `transport` (with the TLS settings of `settings`), every
    /// request ending by `deadline`.
    pub fn connect(
        transport: &Transport,
        settings: &Settings,
        address: &str,
        deadline: Instant,
    ) -> Result<Vault, Error> {
        let (link, base) = match transport {
            Transport::Network => {
                let (agent, base) = rest::agent(settings, ADDRESS.name(), address, USER_AGENT)?;
                (Link::Agent(agent), base)
            }
            Transport::InMemory(answer) => (Link::InMemory(answer.clone()), address.to_owned()),
        };
        Ok(Vault {
            link,
            address: address.trim_end_matches('/').to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            budget: Budget::new(deadline),
        })
    }

    /// Sends one request with retries; `path` is relative to `/v1/`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Error> {
        let mut url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut redirected = false;
        let send = || loop {
            let answer = self.once(method, &url, token, namespace, body);
            if let Ok(answer) = &answer
                && answer.status == 307
                && !redirected
            {
                // A standby sends the same request to the active node: another host, the
                // same path. A redirect to another path (Vault cleaning one, or anything
                // else) is never followed: the access policy checked this one. Following it
                // is the same attempt.
                let same_path = |location: &&str| path_of(location) == path_of(&url);
                if let Some(location) = answer.body["location"].as_str().filter(same_path) {
                    url = location.to_owned();
                    redirected = true;
                    continue;
                }
            }
            return answer;
        };
        // In memory, an answer would not change: never retried.
        let retries = matches!(self.link, Link::Agent(_));
        rest::retrying(&self.budget, send, |answer| match answer {
            _ if !retries => Retry::Answer,
            // A rate-limit quota: the store asks callers to spread out.
            Ok(answer) if answer.status == 429 => Retry::Throttled,
            Ok(answer) if matches!(answer.status, 412 | 500 | 502 | 503 | 504) => Retry::Transient,
            Err(error) if error.kind() == ErrorKind::Unavailable => Retry::Transient,
            _ => Retry::Answer,
        })
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Error> {
        let attempt = self.budget.attempt();
        if attempt.is_zero() {
            return Err(self.timeout());
        }
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("X-Vault-Request", "true")
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        let payload = body.map(Value::to_string).unwrap_or_default();
        let request = request
            .body(payload)
            .map_err(|e| Error::invalid_path(format!("cannot build a request for `{url}`: {e}")))?;
        let agent = match &self.link {
            Link::Agent(agent) => agent,
            Link::InMemory(answer) => {
                let (status, text) = answer(method, url);
                let json = Some("application/json");
                return Answer::parse(status, &text, json, None, &self.address);
            }
        };
        let request = agent
            .configure_request(request)
            .timeout_global(Some(attempt))
            .build();
        let mut response = agent.run(request).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .map(str::to_owned);
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Error::invalid_secret(format!(
                    "Vault at `{}` answered with more than 1 MiB; no KV secret is that large",
                    self.address
                ))
                .hint("check `address`: it may not point at Vault"),
                other => self.transport_error(other),
            })?;
        Answer::parse(
            status,
            &text,
            content_type.as_deref(),
            location,
            &self.address,
        )
    }

    fn timeout(&self) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!("no answer from Vault at `{}` in time", self.address),
        )
        .hint("check that this node can reach Vault (address, firewall, load balancer)")
    }

    /// What failed on the way to Vault, said by type; the error is kept as the cause.
    fn transport_error(&self, error: ureq::Error) -> Error {
        self.describe_transport(&error).because(error)
    }

    fn describe_transport(&self, error: &ureq::Error) -> Error {
        let address = &self.address;
        match rest::failure(error) {
            Failure::Tls(TlsFailure::Expired) => Error::denied(format!(
                "TLS with Vault at `{address}` failed: Vault's certificate has expired"
            ))
            .hint("Vault's operators must renew its certificate; if it is current, check this node's clock"),
            Failure::Tls(TlsFailure::Other(text)) => Error::denied(format!(
                "TLS with Vault at `{address}` failed: {text}"
            ))
            .hint("set `ca_file` to the CA that signed Vault's certificate; if Vault requires client certificates, set `client_cert_file` and `client_key_file`"),
            Failure::Timeout => self.timeout(),
            Failure::Disconnected => Error::unavailable(format!("Vault at `{address}` closed the connection in the middle of its answer"))
                .hint("try again; if it persists, check Vault and any proxy in front of it"),
            Failure::Connect(why) => Error::unavailable(format!(
                "cannot connect to Vault at `{address}`: {why}"
            ))
            .hint("check `address` in vault-kv.toml, DNS and the network"),
            Failure::HostNotFound => Error::unavailable(format!(
                "cannot resolve the host of Vault's address `{address}`"
            ))
            .hint("check `address` in vault-kv.toml and DNS"),
            Failure::TlsSetup(why) => Error::denied(format!(
                "TLS with Vault at `{address}` failed: {why}"
            ))
            .hint("check `ca_file` (the CA that signed Vault's certificate), the client certificate, and the host name in `address`"),
            Failure::Other(why) => Error::unavailable(format!("the request to Vault at `{address}` failed: {why}")),
        }
    }
}

/// What follows `scheme://authority` in `url`: the path and query.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("", |i| &rest[i..])
}
