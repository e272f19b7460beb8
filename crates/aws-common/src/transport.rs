//! How an AWS plugin's requests reach AWS: the node's HTTPS client (rustls with ring, the
//! node's CAs and the operator's `ca_file`), or an in-memory one that answers each request
//! itself, for tests and fuzz targets that run the plugin's whole fetch without a network.

use std::path::Path;
use std::sync::Arc;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
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
    /// `SSL_CERT_FILE` is refused in `job_env`). Rustls with ring, not aws-lc, whose jitter
    /// entropy cost 37 ms of CPU per process.
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

fn tls_client(ca_file: Option<&Path>) -> Result<SharedHttpClient, Error> {
    let mut builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    if let Some(file) = ca_file {
        let trust = tls::TrustStore::default().with_pem_certificate(
            nomad_secrets_net::operator_cas(crate::CA_FILE.name(), file)?,
        );
        let context = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| Error::settings(format!("`ca_file` `{}`: {e}", file.display())))?;
        builder = builder.tls_context(context);
    }
    Ok(builder.build_https())
}
