//! Entry points for the fuzz targets in `fuzz/` (always compiled, so the lints see them): the plugin's
//! whole handling of whatever an endpoint answers (the SDK's parsing, the error messages, the
//! conversion), with the answer handed over in memory instead of from a network.

use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::config::Region;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use nomad_secrets_protocol::{Error, Secrets};

use nomad_secrets_aws_common::Setup;
use nomad_secrets_aws_common::client::bounded;

use crate::errors::Asked;

/// An HTTP client that answers every request with the same status, content type and body.
#[derive(Debug, Clone)]
struct Canned {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl HttpConnector for Canned {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(self.status, SdkBody::from(self.body.clone()));
        response
            .headers_mut()
            .insert("content-type", self.content_type);
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// What `fetch prod/db` gives when Secrets Manager answers `status` with `body`.
/// Statuses that are not HTTP statuses are read as 200. Retries are off: every attempt would
/// get the same answer.
pub fn get_secret_value_answer(
    status: u16,
    content_type: &'static str,
    body: &[u8],
) -> Result<Secrets, Error> {
    let http = SharedHttpClient::new(Canned {
        status: StatusCode::try_from(status).unwrap_or(StatusCode::try_from(200).unwrap()),
        content_type,
        body: body.to_vec(),
    });
    let credentials =
        SharedCredentialsProvider::new(Credentials::new("AKIDFUZZ", "fuzz", None, None, "fuzz"));
    let region = Region::new("us-east-1");
    let config = bounded(&region, credentials, &http, Duration::from_secs(5))
        .retry_config(RetryConfig::disabled())
        .build();
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let setup = Setup {
        service: &crate::SECRETS_MANAGER,
        settings_name: "aws.toml".into(),
        manual: false,
        region: "us-east-1".into(),
        endpoint: "https://secretsmanager.us-east-1.amazonaws.com".into(),
        imds: None,
        profile: false,
        role: None,
        regional_override: None,
    };
    let asked = Asked {
        id: "prod/db",
        stage: None,
        version_id: None,
    };
    let settings_file = Path::new("/opt/nomad/plugins/secrets/aws.toml");
    nomad_secrets_aws_common::block_on(crate::read_secret(&client, &asked, &setup, settings_file))
}
