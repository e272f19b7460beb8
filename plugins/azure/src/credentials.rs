//! Where the credentials come from, explicitly and in this order, none from a place a job can
//! choose:
//! 1. the job's own federated token: a JWT of another issuer (`AZURE_FEDERATED_TOKEN`), else its
//!    verified Nomad workload identity (`NOMAD_WORKLOAD_IDENTITY`) where the operator names the
//!    app by `tenant_id` and `client_id` alone, as a client assertion for that app (Entra
//!    workload identity federation: the app's federated credentials decide which tokens it
//!    trusts). Where the operator gave the app a secret or certificate, a verified identity
//!    proves who the job is (policy, audit) and the node's credentials read;
//! 2. the operator's client secret (`client_secret_file`) for `tenant_id` and `client_id`;
//! 3. the operator's certificate (`client_certificate_file`: the certificate and its private
//!    key, PEM), whose signed assertion proves the app, as `az login --service-principal
//!    --certificate` does;
//! 4. by hand, the Azure CLI's login when `az` is on the PATH;
//! 5. the node's managed identity (IMDS at `imds_endpoint`; user-assigned with `client_id`; by
//!    hand, App Service and Arc's endpoints as the SDK knows them).
//!
//! What a job may pass is declared in [`JOB_INPUT`] and checked by the protocol: `AZURE_*`
//! (other than its own token), `IDENTITY_*`, `MSI_*`, `IMDS_ENDPOINT`, proxies and CA stores
//! would aim the node's identity elsewhere, and are refused with the setting to use instead.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_identity::{
    AzureCliCredential, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Identity, JobInput, Secret, Settings, Variable};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{CLIENT_CERTIFICATE_FILE, CLIENT_ID, CLIENT_SECRET_FILE, IMDS_ENDPOINT, TENANT_ID};

/// The job's own federated token, of an issuer other than Nomad.
const JOB_TOKEN: &str = "AZURE_FEDERATED_TOKEN";

/// Where the network path and trust come from, for refused proxy and CA variables.
const NETWORK: &str = "the plugin's network path and trusted CAs are the operator's (`ca_file`, `connect_to`, `endpoint_url`)";
/// Where the node's managed identity is reached, for refused managed identity variables.
const MANAGED: &str =
    "the node's managed identity is the operator's (`imds_endpoint`, `client_id`)";

/// What a job's `env {}` may pass to `azure`: its own federated token. Everything that would
/// aim the node's identity elsewhere, choose the app or tenant, or change whom the plugin
/// trusts is refused with the setting to use instead.
pub const JOB_INPUT: &[Variable] = &[
    Variable::credential(
        JOB_TOKEN,
        "federated token",
        "the job's own JWT (of an issuer the operator's app trusts), a client assertion for the operator's `tenant_id` and `client_id`",
    )
    .by_hand("as under Nomad (the variable the Azure SDKs' workload identity reads a file's name from is AZURE_FEDERATED_TOKEN_FILE)"),
    Variable::refused("AZURE_CLIENT_ID", "the operator sets `client_id` in the settings file")
        .by_hand("not read: `client_id` decides"),
    Variable::refused("AZURE_TENANT_ID", "the operator sets `tenant_id` in the settings file")
        .by_hand("not read: `tenant_id` decides"),
    Variable::refused(
        "AZURE_CLIENT_SECRET",
        "the operator sets `client_secret_file` in the settings file",
    )
    .by_hand("not read: `client_secret_file` decides"),
    Variable::refused(
        "AZURE_AUTHORITY_HOST",
        "the operator sets `authority_host` in the settings file",
    )
    .by_hand("not read: `authority_host` decides"),
    Variable::refused("AZURE_*", "only the operator configures this, in the settings file")
        .by_hand("`AZURE_CONFIG_DIR`: the Azure CLI's login, as for `az`; others not read"),
    Variable::refused("IDENTITY_ENDPOINT", MANAGED)
        .by_hand("App Service's managed identity endpoint, as the SDK reads it"),
    Variable::refused("IDENTITY_HEADER", MANAGED)
        .by_hand("App Service's managed identity header, as the SDK reads it"),
    Variable::refused("IDENTITY_*", MANAGED).by_hand("as the SDK reads them"),
    Variable::refused("MSI_*", MANAGED).by_hand("as the SDK reads them"),
    Variable::refused("IMDS_ENDPOINT", MANAGED).by_hand("as the SDK reads it (Arc)"),
    Variable::refused("HTTPS_PROXY", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("HTTP_PROXY", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("https_proxy", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("http_proxy", NETWORK).by_hand("not read: no proxy is used"),
    Variable::refused("SSL_CERT_FILE", NETWORK)
        .by_hand("the CA bundle, beside the operator's `ca_file`"),
    Variable::refused("SSL_CERT_DIR", NETWORK).by_hand("not read"),
];

/// Whether the operator names an app by its ids alone: federation is then its only way in, and
/// a verified workload identity is exchanged for it.
pub fn federation_only(settings: &Settings) -> bool {
    settings.get(&TENANT_ID).is_some()
        && settings.get(&CLIENT_ID).is_some()
        && settings.get(&CLIENT_SECRET_FILE).is_none()
        && settings.get(&CLIENT_CERTIFICATE_FILE).is_none()
}

/// Which credentials a call used, for messages.
#[derive(Clone, Debug)]
pub struct Source {
    /// In words: "the operator's client secret for app `...`".
    pub used: String,
    /// The token endpoint's host when a token comes from Entra ID (else IMDS or the CLI).
    pub entra: bool,
}

/// The credential for a run, with its description.
pub fn credential(
    settings: &Settings,
    input: &JobInput,
    identity: Option<&Identity>,
    options: &ClientOptions,
) -> Result<(Arc<dyn TokenCredential>, Source), Error> {
    let job_token = input
        .get(JOB_TOKEN)
        .map(|token| (token, "the job's federated token"))
        .or_else(|| {
            identity
                .filter(|_| federation_only(settings))
                .map(|identity| (identity.token(), "the job's workload identity"))
        });
    if let Some((token, what)) = job_token {
        let (tenant, client) = app(settings, what)?;
        let credential =
            assertion_credential(&tenant, &client, Federated(Secret::new(token)), options)?;
        return Ok((
            credential,
            source(format!("{what}, federated for app `{client}`"), true),
        ));
    }
    if let Some(file) = settings.get(&CLIENT_SECRET_FILE) {
        let (tenant, client) = app(settings, "a client secret")?;
        let secret = std::fs::read_to_string(file)
            .map_err(|e| unreadable(CLIENT_SECRET_FILE.name(), file, &e))?;
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(Error::settings(format!(
                "`client_secret_file` `{}` is empty",
                file.display()
            )));
        }
        let credential = ClientSecretCredential::new(
            &tenant,
            client.clone(),
            secret.to_owned().into(),
            Some(ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        )
        .map_err(|_| invalid_app(&tenant))?;
        return Ok((
            credential,
            source(
                format!("the operator's client secret for app `{client}`"),
                true,
            ),
        ));
    }
    if let Some(file) = settings.get(&CLIENT_CERTIFICATE_FILE) {
        let (tenant, client) = app(settings, "a certificate")?;
        let signer = CertificateAssertion::from_file(file, &tenant, &client, settings)?;
        let credential = assertion_credential(&tenant, &client, signer, options)?;
        return Ok((
            credential,
            source(
                format!("the operator's certificate for app `{client}`"),
                true,
            ),
        ));
    }
    if input.manual() && on_path("az") {
        let credential = AzureCliCredential::new(None)
            .map_err(|_| Error::settings("cannot use the Azure CLI's login"))?;
        return Ok((
            credential,
            source("the Azure CLI's login (`az login`)".into(), false),
        ));
    }
    if settings.get(&IMDS_ENDPOINT) == Some("off") {
        return Err(no_credentials());
    }
    let user_assigned = settings.get(&CLIENT_ID).map(str::to_owned);
    let used = match &user_assigned {
        Some(client) => format!("the node's user-assigned managed identity `{client}`"),
        None => "the node's managed identity".to_owned(),
    };
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: user_assigned.map(UserAssignedId::ClientId),
        client_options: options.clone(),
    }))
    .map_err(|_| Error::settings("cannot set up the managed identity credential"))?;
    Ok((credential, source(used, false)))
}

fn source(used: String, entra: bool) -> Source {
    Source { used, entra }
}

/// The operator's `tenant_id` and `client_id`, which `what` needs.
fn app(settings: &Settings, what: &str) -> Result<(String, String), Error> {
    let tenant = settings
        .get(&TENANT_ID)
        .ok_or_else(|| {
            Error::settings(format!(
                "{what} needs the operator's `tenant_id` (the Entra ID tenant of the app)"
            ))
        })?
        .to_owned();
    let client = settings
        .get(&CLIENT_ID)
        .ok_or_else(|| {
            Error::settings(format!(
                "{what} needs the operator's `client_id` (the app registration's client id)"
            ))
        })?
        .to_owned();
    Ok((tenant, client))
}

fn invalid_app(tenant: &str) -> Error {
    Error::settings(format!(
        "`tenant_id` `{tenant}` is not a tenant id (a GUID, or a domain such as contoso.onmicrosoft.com)"
    ))
}

fn assertion_credential<C: ClientAssertion + 'static>(
    tenant: &str,
    client: &str,
    assertion: C,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, Error> {
    let credential = ClientAssertionCredential::new(
        tenant.to_owned(),
        client.to_owned(),
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: options.clone(),
        }),
    )
    .map_err(|_| invalid_app(tenant))?;
    Ok(credential)
}

/// No credentials: what to set.
pub fn no_credentials() -> Error {
    Error::denied("no Azure credentials: the job passed no workload identity, and the operator set no client secret, certificate or managed identity")
        .hint("set `tenant_id`, `client_id` and `client_secret_file` (or `client_certificate_file`) in azure.toml, or run the node with a managed identity")
}

/// Whether `program` is an executable on the PATH (by hand only).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The job's token, handed to Entra ID as is.
#[derive(Debug)]
struct Federated(Secret);

#[async_trait]
impl ClientAssertion for Federated {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.expose().to_owned())
    }
}

/// Signs a client assertion with the operator's certificate: RS256, the certificate's SHA-1
/// thumbprint as `x5t`, for Entra ID's token endpoint, valid for ten minutes.
struct CertificateAssertion {
    key: jsonwebtoken::EncodingKey,
    thumbprint: String,
    audience: String,
    client: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    fn from_file(
        file: &std::path::Path,
        tenant: &str,
        client: &str,
        settings: &Settings,
    ) -> Result<CertificateAssertion, Error> {
        let setting = CLIENT_CERTIFICATE_FILE.name();
        let shown = file.display();
        let pem = std::fs::read(file).map_err(|e| unreadable(setting, file, &e))?;
        let certificate = CertificateDer::pem_slice_iter(&pem)
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| {
                Error::settings(format!("`{setting}` `{shown}` holds no PEM certificate"))
                    .hint("the file holds the app's certificate and its private key, PEM, as `az ad sp create-for-rbac --create-cert` writes it")
            })?;
        let key = match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_)) => rsa_key(&pem),
            _ => None,
        };
        let key = key.ok_or_else(|| {
            Error::settings(format!("`{setting}` `{shown}` holds no RSA private key in PEM"))
                .hint("the file holds the app's certificate and its RSA private key, PEM, as Entra ID's certificate credentials are")
        })?;
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &certificate);
        let assertion = CertificateAssertion {
            key,
            thumbprint: base64_url(digest.as_ref()),
            audience: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                crate::authority_host(settings).trim_end_matches('/')
            ),
            client: client.to_owned(),
        };
        // Signed once here, so that a key ring cannot use is a settings error now.
        assertion.signed().map_err(|_| {
            Error::settings(format!(
                "`{setting}` `{shown}`: its private key cannot sign (an RSA key of 2048 bits or more)"
            ))
        })?;
        Ok(assertion)
    }

    /// A fresh assertion: RS256, `x5t`, ten minutes.
    fn signed(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut id = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(self.thumbprint.clone());
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client,
            "sub": self.client,
            "jti": base64_url(&id),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// The RSA key of a PEM text that holds a certificate too: its private key block alone, which
/// jsonwebtoken reads as PKCS#1 or PKCS#8.
fn rsa_key(pem: &[u8]) -> Option<jsonwebtoken::EncodingKey> {
    let text = std::str::from_utf8(pem).ok()?;
    crate::pem_blocks(text)
        .filter(|(label, _)| matches!(*label, "PRIVATE KEY" | "RSA PRIVATE KEY"))
        .find_map(|(_, block)| jsonwebtoken::EncodingKey::from_rsa_pem(block.as_bytes()).ok())
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.signed().map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "cannot sign the certificate's assertion with its private key",
            )
        })
    }
}
