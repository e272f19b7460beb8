//! Keys and certificates made per test run, and the rustls server configurations that serve
//! them: the TLS of the Vault double, of the recorder, and of any test that needs an endpoint a
//! private CA vouches for. Nothing is kept between runs, so no key is ever committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files a test hands the plugin.
pub struct Pki {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// Another CA, which signed nothing here.
    pub wrong_ca: PathBuf,
    /// Client certificate and key, for mTLS.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
}

/// Keys and certificates made for one test run.
pub struct PkiMaterial {
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    expired_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

/// Makes a CA, a server certificate for `localhost`/`127.0.0.1`, a client certificate, and an
/// unrelated CA; writes the PEM files the plugin reads into `dir`.
pub fn pki(dir: &Path) -> (PkiMaterial, Pki) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca_params = {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "vault-double test CA");
        p
    };
    let ca = CertifiedIssuer::self_signed(ca_params.clone(), KeyPair::generate().unwrap()).unwrap();
    let wrong = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "vault.test".to_string(),
    ];
    let server = CertificateParams::new(names.clone())
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let expired = {
        let mut p = CertificateParams::new(names).unwrap();
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        p.signed_by(&server_key, &ca).unwrap()
    };
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["nomad-client".to_string()]).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "nomad-client");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = Pki {
        ca: write("ca.pem", ca.pem()),
        wrong_ca: write("wrong-ca.pem", wrong.pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    };
    let material = PkiMaterial {
        ca_der: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        expired_chain: vec![expired.der().clone()],
        server_key: PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    };
    (material, files)
}

impl PkiMaterial {
    /// A TLS server's configuration with the certificate for `localhost`, `127.0.0.1` and
    /// `vault.test`, signed by the run's CA (for other servers that need TLS: the recorder's).
    pub fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        config(self.server_chain.clone(), self.server_key.clone_key(), None)
    }

    /// The same, also requiring a client certificate the run's CA signed (mTLS).
    pub fn mutual_tls_config(&self) -> Arc<rustls::ServerConfig> {
        let (chain, key) = (self.server_chain.clone(), self.server_key.clone_key());
        config(chain, key, Some(&self.ca_der))
    }

    /// The same names and CA, with a certificate that expired in 2021.
    pub fn expired_tls_config(&self) -> Arc<rustls::ServerConfig> {
        config(
            self.expired_chain.clone(),
            self.server_key.clone_key(),
            None,
        )
    }
}

/// A TLS server config (ring, no client authentication) serving `chain` with `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    config(chain, key, None)
}

/// Serves `chain` with `key`; with `client_ca`, requires a client certificate it signed.
fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&CertificateDer<'static>>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}
