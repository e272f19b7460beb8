//! The HTTP client of REST backends (vault-kv today; the next ones, such as 1Password Connect or
//! Azure Key Vault, the same): blocking ureq over rustls with ring, set up from the operator's
//! settings, and its failures classified by type. Requests are bounded by the fetch's
//! [`Budget`](crate::Budget).
//!
//! The settings it reads are the same in every backend that uses it: `ca_file` (the only CAs
//! trusted, else Mozilla's roots), `client_cert_file` and `client_key_file` (mTLS, both or
//! neither), `tls_server_name` (the name TLS verifies, while connections go to the address's
//! host).

use std::path::Path;
use std::sync::Arc;

use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Key, Settings};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::{Budget, CA_FILE, TlsFailure, operator_cas, tls_failure};

/// The client certificate chain for mTLS.
pub const CLIENT_CERT_FILE: Key<Path> =
    Key::path("client_cert_file", "PEM client certificate chain, for mTLS")
        .unset("no client certificate");
/// Its private key.
pub const CLIENT_KEY_FILE: Key<Path> = Key::path(
    "client_key_file",
    "PEM private key of the client certificate",
);
/// The name TLS verifies, where the address is an IP or another name.
pub const TLS_SERVER_NAME: Key<str> = Key::text(
    "tls_server_name",
    "name to verify the server's certificate against, when the address is an IP or another name",
)
.unset("the address's host");

/// The agent for the endpoint at `address` (the value of setting `address_setting`, for
/// messages), and the address to put in URLs: with `tls_server_name`, requests name that host
/// (so TLS verifies it) while the resolver connects to `address`'s host. Statuses are answers,
/// not errors; redirects are the caller's to follow; no proxy is read from the environment.
pub fn agent(
    settings: &Settings,
    address_setting: &str,
    address: &str,
    user_agent: &str,
) -> Result<(ureq::Agent, String), Error> {
    let mut tls = TlsConfig::builder();
    if let Some(ca) = settings.get(&CA_FILE) {
        let pem = operator_cas(CA_FILE.name(), ca)?;
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certificates(&pem))));
    }
    match (
        settings.get(&CLIENT_CERT_FILE),
        settings.get(&CLIENT_KEY_FILE),
    ) {
        (Some(cert), Some(key)) => {
            let chain = certificates(&operator_cas(CLIENT_CERT_FILE.name(), cert)?);
            let key_pem =
                std::fs::read(key).map_err(|e| unreadable(CLIENT_KEY_FILE.name(), key, &e))?;
            let key = PrivateKey::from_pem(&key_pem).map_err(|_| {
                Error::settings(format!(
                    "`client_key_file` `{}` holds no PEM private key",
                    key.display()
                ))
            })?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => {
            return Err(Error::settings(
                "mTLS needs both `client_cert_file` and `client_key_file`",
            ));
        }
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(user_agent)
        .build();
    let Some(name) = settings.get(&TLS_SERVER_NAME) else {
        return Ok((config.new_agent(), address.to_owned()));
    };
    let real: ureq::http::Uri = address.parse().map_err(|_| {
        Error::settings(format!(
            "`{address_setting}` `{address}` is not a valid URL"
        ))
    })?;
    let (Some(host), Some("https")) = (real.host(), real.scheme_str()) else {
        return Err(Error::settings(format!(
            "`tls_server_name` needs an https `{address_setting}`"
        )));
    };
    let named = address.replacen(host, name, 1);
    let resolver = ConnectTo {
        hosts: Hosts::Named(name.to_owned()),
        real,
    };
    let connector = ureq::unversioned::transport::DefaultConnector::default();
    Ok((ureq::Agent::with_parts(config, connector, resolver), named))
}

/// Resolves some hosts as another address (the operator's), so that connections go there
/// while TLS verifies the name requested; every other host as usual.
#[derive(Debug)]
pub struct ConnectTo {
    /// The hosts that connect elsewhere.
    pub hosts: Hosts,
    /// Where they connect: a URI whose host and port are resolved instead.
    pub real: ureq::http::Uri,
}

/// Which hosts a [`ConnectTo`] sends elsewhere.
#[derive(Debug)]
pub enum Hosts {
    /// This name exactly.
    Named(String),
    /// Every name ending with this suffix (`.vault.azure.net`), in any case.
    EndingWith(String),
}

impl Hosts {
    fn holds(&self, host: &str) -> bool {
        match self {
            Hosts::Named(name) => host == name,
            Hosts::EndingWith(suffix) => host.to_ascii_lowercase().ends_with(suffix.as_str()),
        }
    }
}

impl ureq::unversioned::resolver::Resolver for ConnectTo {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let default = ureq::unversioned::resolver::DefaultResolver::default();
        match uri.host().is_some_and(|host| self.hosts.holds(host)) {
            true => default.resolve(&self.real, config, timeout),
            false => default.resolve(uri, config, timeout),
        }
    }
}

/// The certificates of a PEM text (one already checked by [`operator_cas`], or a CA bundle),
/// as ureq takes them; other blocks are skipped.
pub fn certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect()
}

/// Why a request got no HTTP answer, decided by the error's type, never its words.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The attempt's time ran out.
    Timeout,
    /// The TLS handshake failed (rustls's error, found in the chain).
    Tls(TlsFailure),
    /// The TLS configuration itself was refused: ureq's words.
    TlsSetup(String),
    /// The server closed the connection in the middle of its answer.
    Disconnected,
    /// No connection: the system's words, lower case (`connection refused`).
    Connect(String),
    /// The host name does not resolve.
    HostNotFound,
    /// Anything else: ureq's words.
    Other(String),
}

/// What `error` means for the caller.
pub fn failure(error: &ureq::Error) -> Failure {
    // rustls failures reach ureq inside I/O errors.
    let tls = match error {
        ureq::Error::Io(io) => tls_failure(io),
        other => tls_failure(other),
    };
    if let Some(tls) = tls {
        return Failure::Tls(tls);
    }
    match error {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Failure::Disconnected
        }
        ureq::Error::Io(io) => Failure::Connect(
            io.to_string()
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase(),
        ),
        ureq::Error::HostNotFound => Failure::HostNotFound,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Failure::TlsSetup(error.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// Reads a PEM file an operator named (for backends with other PEM settings).
pub fn read_pem(setting: &str, file: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(file).map_err(|e| unreadable(setting, file, &e))
}

/// Sends one call with the shared [`Budget`]'s retries: `attempt` sends it once (bounded by
/// [`Budget::attempt`], and following a redirect itself if the backend allows one: that is not
/// another attempt); an outcome that `transient` accepts is tried again after the budget's
/// backoff while attempts and time remain ([`Budget::retry_after`]), anything else is the
/// answer. What is transient is the backend's to say (statuses such as 429 or 503, an
/// [`ErrorKind::Unavailable`](nomad_secrets_protocol::ErrorKind::Unavailable) error), and so is
/// never retrying at all (an in-memory store, whose answer would not change).
///
/// A [`Retry::Throttled`] outcome (HTTP 429, a rate-limit quota) is not a failure but the
/// store asking callers to spread out: it is tried again after a full-jitter wait
/// ([`crate::throttle`]) for as long as the budget has room, and does not use up attempts.
pub fn retrying<T>(
    budget: &Budget,
    mut attempt: impl FnMut() -> Result<T, Error>,
    retry: impl Fn(&Result<T, Error>) -> Retry,
) -> Result<T, Error> {
    let (mut attempts, mut throttled) = (0, 0);
    loop {
        let outcome = attempt();
        let wait = match retry(&outcome) {
            Retry::Answer => None,
            Retry::Transient => {
                attempts += 1;
                budget.retry_after(attempts)
            }
            Retry::Throttled => {
                throttled += 1;
                crate::throttle::wait(budget, throttled)
            }
        };
        match wait {
            Some(wait) => std::thread::sleep(wait),
            None => return outcome,
        }
    }
}

/// What [`retrying`] does with an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// It is the answer.
    Answer,
    /// A transient failure (a 5xx, no answer): tried again within [`Budget::ATTEMPTS`].
    Transient,
    /// The store throttles: tried again after a full-jitter wait while the budget has room.
    Throttled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn failures_are_told_apart_by_type() {
        let io = |kind, text: &str| ureq::Error::Io(IoError::new(kind, text.to_owned()));
        assert_eq!(
            failure(&io(ErrorKind::UnexpectedEof, "Peer disconnected")),
            Failure::Disconnected
        );
        assert_eq!(
            failure(&io(
                ErrorKind::ConnectionRefused,
                "Connection refused (os error 111)"
            )),
            Failure::Connect("connection refused".into())
        );
        assert_eq!(
            failure(&ureq::Error::Timeout(ureq::Timeout::Global)),
            Failure::Timeout
        );
        assert_eq!(failure(&ureq::Error::HostNotFound), Failure::HostNotFound);
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(
            failure(&ureq::Error::Io(IoError::new(
                ErrorKind::InvalidData,
                expired
            ))),
            Failure::Tls(TlsFailure::Expired)
        );
        // Words that sound like TLS do not make a TLS failure.
        assert_eq!(
            failure(&io(ErrorKind::Other, "tls handshake certificate")),
            Failure::Connect("tls handshake certificate".into())
        );
    }

    #[test]
    fn retries_what_is_transient_while_the_budget_allows() {
        use std::time::{Duration, Instant};
        let far = Budget::new(Instant::now() + Duration::from_secs(60));
        let mut sent = 0;
        let outcome = retrying(
            &far,
            || {
                sent += 1;
                Err::<(), _>(Error::unavailable("refused"))
            },
            |_| Retry::Transient,
        );
        assert!(outcome.is_err());
        assert_eq!(sent, Budget::ATTEMPTS);
        let mut sent = 0;
        let outcome = retrying(
            &far,
            || {
                sent += 1;
                Ok::<_, Error>(if sent < 2 { 503 } else { 200 })
            },
            |outcome| match outcome {
                Ok(503) => Retry::Transient,
                _ => Retry::Answer,
            },
        );
        assert_eq!((outcome.unwrap(), sent), (200, 2));
        let mut sent = 0;
        let outcome = retrying(
            &far,
            || {
                sent += 1;
                Ok::<_, Error>(404)
            },
            |outcome| match outcome {
                Ok(503) => Retry::Transient,
                _ => Retry::Answer,
            },
        );
        assert_eq!((outcome.unwrap(), sent), (404, 1));
        // No time left for another attempt: the first outcome is the answer.
        let near = Budget::new(Instant::now() + Duration::from_millis(350));
        let mut sent = 0;
        let _ = retrying(
            &near,
            || {
                sent += 1;
                Ok::<_, Error>(503)
            },
            |_| Retry::Transient,
        );
        assert_eq!(sent, 1);
    }

    #[test]
    fn throttling_is_waited_out_beyond_the_attempts_while_the_budget_allows() {
        use std::time::{Duration, Instant};
        let far = Budget::new(Instant::now() + Duration::from_secs(60));
        let mut sent = 0;
        let outcome = retrying(
            &far,
            || {
                sent += 1;
                Ok::<_, Error>(if sent <= 5 { 429 } else { 200 })
            },
            |outcome| match outcome {
                Ok(429) => Retry::Throttled,
                _ => Retry::Answer,
            },
        );
        assert_eq!(
            (outcome.unwrap(), sent),
            (200, 6),
            "more rounds than ATTEMPTS"
        );
        // Until the budget runs out, then the throttled answer is the answer.
        let soon = Budget::new(Instant::now() + Duration::from_millis(1500));
        let started = Instant::now();
        let outcome = retrying(&soon, || Ok::<_, Error>(429), |_| Retry::Throttled);
        assert_eq!(outcome.unwrap(), 429);
        assert!(started.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn mtls_needs_both_files() {
        let settings = Settings::from_text(
            Path::new("/opt/plugins/secrets/x.toml"),
            Some("client_cert_file = \"/etc/ssl/cert.pem\"\n"),
            &[
                CA_FILE.setting,
                CLIENT_CERT_FILE.setting,
                CLIENT_KEY_FILE.setting,
                TLS_SERVER_NAME.setting,
            ],
            &Default::default(),
        )
        .unwrap();
        let error = agent(&settings, "address", "https://vault:8200", "test")
            .unwrap_err()
            .to_string();
        assert!(error.contains("both"), "{error}");
    }
}
