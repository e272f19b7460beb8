//! How the plugin's calls reach Secret Manager: Google's client over HTTPS (with the
//! credentials' token sources), or an in-memory Secret Manager that answers each call itself,
//! for tests and fuzz targets that run the plugin's whole fetch without a network.
//!
//! The seam is the SDK's own: a client made from a stub ([`SecretManagerService::from_stub`])
//! runs every request builder, option and error path of the real one but the HTTP exchange, so
//! the plugin's code is the same for both. In memory, the credentials are made as usual but
//! never asked for a token.

use std::sync::Arc;

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::{Code, Status};
use google_cloud_gax::options::RequestOptions;
use google_cloud_gax::response::Response;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model;
use google_cloud_secretmanager_v1::stub;
use nomad_secrets_net::Budget;
use nomad_secrets_protocol::{Error, Settings};

use crate::ENDPOINT_URL;

/// One answer of an in-memory Secret Manager.
#[derive(Clone, Debug)]
pub enum Answer {
    /// The version's payload, with the CRC32C checksum the answer carries (if any).
    Payload {
        /// The bytes as stored.
        data: Vec<u8>,
        /// The checksum as sent (it may be wrong: the plugin checks it).
        crc32c: Option<i64>,
    },
    /// An answer without a payload.
    NoPayload,
    /// A refusal: a gRPC status code (5 not found, 7 permission denied...; any number) and
    /// Google's message.
    Refused {
        /// The status code, as a number.
        code: i32,
        /// The message, as Google words it.
        message: String,
    },
    /// An HTTP answer that is not Secret Manager's (a proxy's page).
    Http {
        /// The HTTP status.
        status: u16,
        /// The body.
        body: Vec<u8>,
    },
}

/// An in-memory Secret Manager: its answer to a call about `name` (a version's full name for
/// a read, `projects/<p>` for `check`'s listing).
pub type Answering = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// How calls reach Secret Manager.
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
    /// Google's client over HTTPS: the endpoint of the settings (or of a regional secret), the
    /// node's CAs and the operator's `ca_file`, the credentials' token sources.
    pub fn https() -> Transport {
        Transport { link: Link::Https }
    }

    /// Answers every call with `answer(name)`, at once and without retries.
    pub fn in_memory(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Transport {
        Transport {
            link: Link::InMemory(Arc::new(answer)),
        }
    }

    /// The client for `region` (regional secrets have their own endpoint).
    pub(crate) async fn client(
        &self,
        settings: &Settings,
        region: Option<&str>,
        credentials: Credentials,
    ) -> Result<SecretManagerService, Error> {
        if let Link::InMemory(answer) = &self.link {
            return Ok(SecretManagerService::from_stub(InMemory(answer.clone())));
        }
        let endpoint = match (settings.get(&ENDPOINT_URL), region) {
            (Some(url), _) => url.to_owned(),
            (None, Some(region)) => format!("https://secretmanager.{region}.rep.googleapis.com"),
            (None, None) => "https://secretmanager.googleapis.com".to_owned(),
        };
        SecretManagerService::builder()
            .with_endpoint(endpoint)
            .with_credentials(credentials)
            .with_retry_policy(Aip194Strict.with_attempt_limit(Budget::ATTEMPTS))
            .with_backoff_policy(crate::backoff())
            .build()
            .await
            .map_err(|_| {
                Error::settings("cannot set up the Secret Manager client (check `endpoint_url`)")
            })
    }
}

/// The stub behind an in-memory client.
struct InMemory(Answering);

impl std::fmt::Debug for InMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InMemory")
    }
}

impl InMemory {
    /// The answer about `name`: a payload (or none), or the error the client would give.
    fn ask(&self, name: &str) -> Result<Option<model::SecretPayload>, GaxError> {
        match (self.0)(name) {
            Answer::Payload { data, crc32c } => Ok(Some(
                model::SecretPayload::new()
                    .set_data(data)
                    .set_or_clear_data_crc32c(crc32c),
            )),
            Answer::NoPayload => Ok(None),
            Answer::Refused { code, message } => Err(GaxError::service(
                Status::default()
                    .set_code(Code::from(code))
                    .set_message(message),
            )),
            Answer::Http { status, body } => {
                Err(GaxError::http(status, http::HeaderMap::new(), body.into()))
            }
        }
    }
}

impl stub::SecretManagerService for InMemory {
    fn access_secret_version(
        &self,
        request: model::AccessSecretVersionRequest,
        _options: RequestOptions,
    ) -> impl Future<Output = google_cloud_gax::Result<Response<model::AccessSecretVersionResponse>>>
    + Send {
        let answer = self.ask(&request.name).map(|payload| {
            Response::from(
                model::AccessSecretVersionResponse::new()
                    .set_name(request.name)
                    .set_or_clear_payload(payload),
            )
        });
        std::future::ready(answer)
    }

    fn list_secrets(
        &self,
        request: model::ListSecretsRequest,
        _options: RequestOptions,
    ) -> impl Future<Output = google_cloud_gax::Result<Response<model::ListSecretsResponse>>> + Send
    {
        let answer = self
            .ask(&request.parent)
            .map(|_| Response::from(model::ListSecretsResponse::new()));
        std::future::ready(answer)
    }
}
