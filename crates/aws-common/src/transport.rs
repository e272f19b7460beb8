//! How an AWS plugin's requests reach AWS: the node's HTTPS client (rustls with ring, the
//! node's CAs and the operator's `ca_file`), or an in-memory one that answers each request
//! itself, for tests and fuzz targets that run the plugin's whole fetch without a network.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use nomad_secrets_protocol::{Error, Settings};

/// One answer of an in-memory transport: status, `Content-Type` and body.
pub struct Answer {
    /// The HTTP status; one that is not a status reads as 200.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body as sent.
    pub body: Vec<u8>,
}

/// The HTTP client every SDK client of one fetch shares (the service's, STS's, IMDS's).
#[derive(Clone, Debug)]
pub struct Transport {
    pub(crate) http: SharedHttpClient,
    /// False in memory: an answer that does not change is not worth waiting to ask again.
    pub(crate) retries: bool,
}

impl Transport {
    /// HTTPS trusting the node's CA store plus the operator's `ca_file` (never a job's:
    /// `SSL_CERT_FILE` is refused in `job_env`), and plain HTTP for `http://` endpoints. Rustls
    /// with ring, not aws-lc, whose jitter entropy cost 37 ms of CPU per process. The `ca_file`
    /// is checked here; the node's store is read on the first HTTPS request only.
    pub fn https(settings: &Settings) -> Result<Transport, Error> {
        Ok(Transport {
            http: tls_client(settings.get(&crate::CA_FILE))?,
            retries: true,
        })
    }

    /// Answers every request with `answer(request)`, at once and without retries.
    pub fn in_memory(answer: impl Fn(&HttpRequest) -> Answer + Send + Sync + 'static) -> Transport {
        Transport {
            http: SharedHttpClient::new(InMemory(Arc::new(answer))),
            retries: false,
        }
    }
}

type Answering = Arc<dyn Fn(&HttpRequest) -> Answer + Send + Sync>;

#[derive(Clone)]
struct InMemory(Answering);

impl std::fmt::Debug for InMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InMemory")
    }
}

impl HttpConnector for InMemory {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let answer = (self.0)(&request);
        let status = StatusCode::try_from(answer.status)
            .unwrap_or(StatusCode::try_from(200).expect("200 is a status"));
        let mut response = HttpResponse::new(status, SdkBody::from(answer.body));
        response
            .headers_mut()
            .insert("content-type", answer.content_type);
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for InMemory {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// HTTP for `http://` endpoints (moto, a local proxy, IMDS) and HTTPS for the rest, the TLS
/// client set up on the first `https://` request only: the SDK's own loads and parses the
/// node's whole CA store (150 files on Debian, every root twice) when a client is built, which
/// was half of a fetch's CPU against a plain-HTTP endpoint.
#[derive(Debug)]
struct LazyTls {
    plain: SharedHttpClient,
    /// The operator's `ca_file`, checked.
    operator: Option<Vec<u8>>,
    tls: OnceLock<SharedHttpClient>,
}

impl LazyTls {
    /// The HTTPS client: rustls with ring, trusting the node's bundle (read once per process,
    /// see [`nomad_secrets_net::roots`]) and the operator's CAs beside it.
    fn tls(&self) -> &SharedHttpClient {
        self.tls.get_or_init(|| {
            let mut trust = match nomad_secrets_net::roots::node_bundle() {
                Some(bundle) => tls::TrustStore::empty().with_pem_certificate(bundle),
                // The environment names a store (by hand), or no bundle: the SDK's own loading.
                None => tls::TrustStore::default(),
            };
            if let Some(operator) = &self.operator {
                trust = trust.with_pem_certificate(operator.clone());
            }
            let builder = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
            match tls::TlsContext::builder().with_trust_store(trust).build() {
                Ok(context) => builder.tls_context(context).build_https(),
                // Never in this version (building a context only stores it); the SDK's
                // defaults rather than no client.
                Err(_) => builder.build_https(),
            }
        })
    }
}

/// The shared [`LazyTls`].
#[derive(Clone, Debug)]
struct Https(Arc<LazyTls>);

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ByScheme {
            client: self.0.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.plain.connector_metadata()
    }
}

/// A connector that sends each request through the plain or the TLS client by its URL's scheme;
/// each client keeps its connectors (and their connection pools) per settings.
#[derive(Debug)]
struct ByScheme {
    client: Arc<LazyTls>,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for ByScheme {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let plain = request
            .uri()
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        let client = match plain {
            true => &self.client.plain,
            false => self.client.tls(),
        };
        client
            .http_connector(&self.settings, &self.components)
            .call(request)
    }
}

fn tls_client(ca_file: Option<&Path>) -> Result<SharedHttpClient, Error> {
    let operator = match ca_file {
        Some(file) => Some(nomad_secrets_net::operator_cas(
            crate::CA_FILE.name(),
            file,
        )?),
        None => None,
    };
    Ok(SharedHttpClient::new(Https(Arc::new(LazyTls {
        plain: aws_smithy_http_client::Builder::new().build_http(),
        operator,
        tls: OnceLock::new(),
    }))))
}
