//! What every network plugin shares, whatever its HTTP client (the AWS SDK's, Google's, ureq):
//! - [`Budget`]: how a fetch spends its deadline on the network (attempts, each attempt's bound,
//!   the backoff, the margin kept to print the answer), the same for every backend;
//! - [`operator_cas`]: the operator's CA file, read and checked before any request, so that a
//!   file holding no certificate is a settings error naming the file, never a client's panic or
//!   a silent trust of nothing;
//! - [`rest`] (feature `rest`): the HTTP client of REST backends, set up from the operator's TLS
//!   settings, its failures classified by type, and the retry loop under the [`Budget`];
//! - [`runtime`] (feature `runtime`): `block_on`, how a plugin runs an async SDK's call under
//!   the deadline;
//! - [`roots`]: the node's CA bundle, read once and only when a TLS connection needs it;
//! - [`tls_failure`]: the TLS failure behind a connection error, found by type in the error's
//!   source chain (rustls's own error, or the I/O error a TLS stream wraps it in), never by
//!   matching words in a message; [`cause`] for any other type (an SDK's credentials error).
#![deny(missing_docs)]

#[cfg(feature = "rest")]
pub mod rest;
pub mod roots;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod throttle;

use std::error::Error as StdError;
use std::path::Path;
use std::time::{Duration, Instant};

use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Key};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{CertificateError, RootCertStore};

/// The operator's CA file, read with [`operator_cas`]; each backend words what it trusts it for
/// ([`Key::described`]) and which of its CLI's variables names it by hand.
pub const CA_FILE: Key<Path> = Key::path(
    "ca_file",
    "PEM file of CAs trusted beside the node's store (a TLS-inspecting proxy's, a private endpoint's)",
)
.unset("the node's CA store only");

/// How a fetch spends the time before its deadline on the network. Every call gets at most
/// [`Budget::ATTEMPTS`] attempts (token fetches and throttled answers included), each bounded
/// by [`Budget::ATTEMPT`] and by what is left, with a backoff of 100 ms doubling to at most 1 s
/// between them, and all of it ends [`Budget::MARGIN`] before the deadline so that the plugin,
/// not Nomad's kill, has the last word. The HTTP clients' own defaults run for 47 s (Google's)
/// or without limit (the AWS SDK against an endpoint that never answers).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    /// Attempts of one call at most.
    pub const ATTEMPTS: u32 = 3;
    /// One attempt at most: connect, send, last byte of the answer.
    pub const ATTEMPT: Duration = Duration::from_secs(3);
    /// Connecting at most, within an attempt.
    pub const CONNECT: Duration = Duration::from_secs(1);
    /// Kept back before the deadline for the answer to be printed.
    pub const MARGIN: Duration = Duration::from_millis(300);
    /// The first wait between attempts (then doubled).
    pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    /// The longest wait between attempts.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
    /// Least time an attempt needs for an answer; a retry is not started with less.
    const LEAST_ATTEMPT: Duration = Duration::from_millis(200);

    /// The budget of a fetch that must answer by `deadline`.
    pub fn new(deadline: Instant) -> Budget {
        Budget { deadline }
    }

    /// What is left for the network: everything up to [`Budget::MARGIN`] before the deadline.
    pub fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Self::MARGIN)
    }

    /// The bound of the next attempt: [`Budget::ATTEMPT`], or what is left if less.
    pub fn attempt(&self) -> Duration {
        self.left().min(Self::ATTEMPT)
    }

    /// The wait after failed attempt `attempt` (1 for the first).
    pub fn backoff(attempt: u32) -> Duration {
        Self::FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(Self::MAX_BACKOFF)
    }

    /// The wait before retrying after failed attempt `attempt`, if a retry is allowed and fits:
    /// attempts remain, and after the wait there is still time for an answer.
    pub fn retry_after(&self, attempt: u32) -> Option<Duration> {
        let wait = Self::backoff(attempt);
        (attempt < Self::ATTEMPTS && self.left() >= wait + Self::LEAST_ATTEMPT).then_some(wait)
    }
}

/// The PEM text of the operator's CA file (setting `setting`), once it is known to hold at
/// least one certificate and every certificate in it parses.
pub fn operator_cas(setting: &str, file: &Path) -> Result<Vec<u8>, Error> {
    let shown = file.display();
    let pem = std::fs::read(file).map_err(|e| unreadable(setting, file, &e))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::settings(format!("`{setting}` `{shown}` is not valid PEM")))?;
    if certificates.is_empty() {
        return Err(Error::settings(format!(
            "`{setting}` `{shown}` holds no PEM certificate"
        )));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|e| {
            Error::settings(format!(
                "`{setting}` `{shown}` holds a certificate that cannot be parsed: {e}"
            ))
        })?;
    }
    Ok(pem)
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer's certificate has expired (or this node's clock is wrong).
    Expired,
    /// Anything else, in rustls's words, lower case: `invalid peer certificate: unknownissuer`.
    Other(String),
}

/// The TLS failure behind `error`, if one is in its source chain.
pub fn tls_failure(error: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let tls = cause::<rustls::Error>(error)?;
    Some(match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => TlsFailure::Expired,
        other => TlsFailure::Other(other.to_string().to_lowercase()),
    })
}

/// The first error of type `E` in `error`'s source chain, `error` included, I/O errors'
/// payloads included (the protocol crate's [`find_cause`](nomad_secrets_protocol::find_cause)).
pub use nomad_secrets_protocol::find_cause as cause;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection failed")
        }
    }

    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn finds_rustls_inside_an_io_error_deep_in_the_chain() {
        // As hyper reports a failed TLS handshake: an I/O error whose payload is tokio-rustls's
        // I/O error, whose payload is rustls's.
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        let error = Wrapper(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            expired,
        )));
        assert_eq!(tls_failure(&error), Some(TlsFailure::Expired));
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let error = Wrapper(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            unknown,
        ));
        assert_eq!(
            tls_failure(&error),
            Some(TlsFailure::Other(
                "invalid peer certificate: unknownissuer".into()
            ))
        );
    }

    #[test]
    fn a_budget_retries_only_while_attempts_and_time_remain() {
        let far = Budget::new(Instant::now() + Duration::from_secs(60));
        assert_eq!(far.attempt(), Budget::ATTEMPT);
        assert_eq!(far.retry_after(1), Some(Duration::from_millis(100)));
        assert_eq!(far.retry_after(2), Some(Duration::from_millis(200)));
        assert_eq!(far.retry_after(Budget::ATTEMPTS), None);
        assert_eq!(Budget::backoff(10), Budget::MAX_BACKOFF);
        let near = Budget::new(Instant::now() + Duration::from_millis(400));
        assert!(near.attempt() <= Duration::from_millis(100));
        assert_eq!(near.retry_after(1), None);
        let past = Budget::new(Instant::now());
        assert_eq!(past.left(), Duration::ZERO);
    }

    #[test]
    fn words_alone_are_not_a_tls_failure() {
        let error = Wrapper(std::io::Error::other(
            "tls handshake certificate expired (only words)",
        ));
        assert_eq!(tls_failure(&error), None);
    }

    #[test]
    fn a_file_without_certificates_is_a_settings_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-a-ca.pem");
        std::fs::write(&file, "just text\n").unwrap();
        let error = operator_cas("ca_file", &file).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        assert!(error.contains("not-a-ca.pem"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
