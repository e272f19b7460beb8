//! The node's CA store, for HTTP clients that verify with rustls: read once per process, from
//! one bundle, and only when a TLS connection needs it.
//!
//! rustls-native-certs (what the AWS SDK and Google's clients load by default) reads the
//! distribution's bundle *and* every file of its hashed folder: on Debian that is 150 files
//! opened and every root decoded twice, about half of an `aws fetch`'s CPU, even when the
//! endpoint is plain HTTP. The bundle alone holds the same roots: `update-ca-certificates` and
//! `update-ca-trust` write the folder and the bundle from one list.
//!
//! Where the environment names a store (`SSL_CERT_FILE`, `SSL_CERT_DIR`: by hand only, as
//! Nomad's plugins refuse them from a job), [`node_bundle`] gives `None` and the client loads
//! the store as rustls-native-certs does, as before.

use std::sync::OnceLock;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The bundle files Linux distributions keep, in the order OpenSSL's probe looks for them
/// (openssl-probe 0.2, which rustls-native-certs follows): the first that exists is the node's.
pub const NODE_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
    "/opt/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/certs/cacert.pem",
];

/// The environment variables with which a person running a plugin by hand names another store.
const STORE_VARIABLES: &[&str] = &["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The node's bundle as PEM text: the certificates of the first of [`NODE_BUNDLES`] that
/// exists, those that rustls accepts as trust anchors (as rustls-native-certs keeps what parses
/// and skips the rest), in the bundle's own words. Read and checked on the first call only.
/// `None` where the environment names a store, or no bundle exists or holds a usable root:
/// then the client's own loading of the native store applies.
pub fn node_bundle() -> Option<&'static [u8]> {
    static BUNDLE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BUNDLE
        .get_or_init(|| {
            if STORE_VARIABLES
                .iter()
                .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
            {
                return None;
            }
            let text = NODE_BUNDLES
                .iter()
                .find_map(|file| std::fs::read(file).ok())?;
            let kept = usable(&text);
            (!kept.is_empty()).then_some(kept)
        })
        .as_deref()
}

/// The certificate blocks of `pem` that decode and that rustls accepts as trust anchors, each
/// as written, so that a client parsing the result strictly cannot fail on any of them.
fn usable(pem: &[u8]) -> Vec<u8> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut kept = Vec::with_capacity(pem.len());
    let mut rest = pem;
    let mut scratch = RootCertStore::empty();
    while let Some(start) = find(rest, BEGIN) {
        let Some(length) = find(&rest[start..], END) else {
            break;
        };
        let end = start + length + END.len();
        let block = &rest[start..end];
        let accepted = CertificateDer::from_pem_slice(block)
            .ok()
            .is_some_and(|der| scratch.add(der).is_ok());
        if accepted {
            kept.extend_from_slice(block);
            kept.push(b'\n');
        }
        rest = &rest[end..];
    }
    kept
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_certificates_that_parse_and_drops_the_rest() {
        let Some(file) = NODE_BUNDLES
            .iter()
            .find(|f| std::path::Path::new(f).is_file())
        else {
            return; // a machine without a CA bundle: nothing to read
        };
        let text = std::fs::read(file).unwrap();
        let all = CertificateDer::pem_slice_iter(&text)
            .filter_map(Result::ok)
            .count();
        let kept = usable(&text);
        let parsed = CertificateDer::pem_slice_iter(&kept)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(!parsed.is_empty() && parsed.len() <= all);
        let mut roots = RootCertStore::empty();
        for certificate in parsed {
            roots.add(certificate).unwrap();
        }

        // A block that is not a certificate, and one cut short, are left out.
        let first = CertificateDer::pem_slice_iter(&kept)
            .next()
            .unwrap()
            .unwrap();
        let garbled =
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\nbetween\n".to_vec();
        let mut mixed = garbled.clone();
        mixed.extend_from_slice(&kept[..find(&kept, b"-----END CERTIFICATE-----").unwrap() + 25]);
        mixed.extend_from_slice(b"\n-----BEGIN CERTIFICATE-----\nMII");
        let only = usable(&mixed);
        let left = CertificateDer::pem_slice_iter(&only)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(left, vec![first]);
    }
}
