//! What every network plugin shares, whatever its HTTP client (the AWS SDK's, Google's, ureq):
//! - [`operator_cas`]: the operator's CA file, read and checked before any request, so that a
//!   file holding no certificate is a settings error naming the file, never a client's panic or
//!   a silent trust of nothing;
//! - [`tls_failure`]: the TLS failure behind a connection error, found by type in the error's
//!   source chain (rustls's own error, or the I/O error a TLS stream wraps it in), never by
//!   matching words in a message; [`cause`] for any other type (an SDK's credentials error).
#![deny(missing_docs)]

use std::error::Error as StdError;
use std::path::Path;

use nomad_secrets_protocol::Error;
use nomad_secrets_protocol::settings::unreadable;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{CertificateError, RootCertStore};

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

/// The first error of type `E` in `error`'s source chain, `error` included.
pub fn cause<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = match error.downcast_ref::<std::io::Error>() {
            // An I/O error's `source()` skips its payload (a TLS stream puts rustls's error
            // there, hyper wraps that I/O error in another): the payload is the next link.
            Some(io) => match io.get_ref() {
                Some(payload) => Some(payload as &(dyn StdError + 'static)),
                None => io.source(),
            },
            None => error.source(),
        };
    }
    None
}

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
