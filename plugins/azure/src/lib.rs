//! The `azure` backend: secrets from Azure Key Vault, with Microsoft's official Rust SDK.
//!
//! `fetch [<vault>/]<name>[?version=<32 hex>][#key]`: the vault's name (or the operator's
//! default `vault`, or the vault at `endpoint_url`), the secret's, a version (default the
//! latest). A JSON object gives one key per field, other text `value` (the shared conversion
//! policy); a certificate's secret (`application/x-pem-file`, or `application/x-pkcs12`, which
//! Key Vault converts to PEM when asked) gives `certificate`, `private_key` and `chain` as PEM
//! text, the way a task writes them to files. See [`credentials`] for where credentials come
//! from and what a job may set, [`names`] for paths, [`transport`] for how calls reach Azure
//! (or an in-memory one, in tests and fuzzing).
//!
//! Bounded in time: the SDK's own retries (about 82 s by default, 72 s more for IMDS) are off;
//! every call goes through the shared retry loop under the run's [`Budget`], and the whole
//! fetch ends 300 ms before the deadline.
#![deny(missing_docs)]

pub mod credentials;
mod errors;
pub mod names;
pub mod transport;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport as SdkTransport};
use azure_security_keyvault_secrets::models::{ContentType, Secret, SecretClientGetSecretOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use nomad_secrets_net::Budget;
use nomad_secrets_net::runtime::Bound;
use nomad_secrets_protocol::{
    Backend, Error, ErrorKind, Key, Request, Secret as Value, Secrets, Setting, Settings,
};

use crate::credentials::Source;
use crate::names::Name;
use crate::transport::Transport;

/// The `azure` plugin.
pub struct AzureBackend {
    transport: Transport,
}

impl AzureBackend {
    /// The plugin, its calls to Azure going through `transport`.
    pub fn with_transport(transport: Transport) -> AzureBackend {
        AzureBackend { transport }
    }
}

/// The vault of paths that name none.
pub const VAULT: Key<str> = Key::text("vault", "vault of paths that name none (e.g. `prod-kv`)")
    .unset("paths must name their vault");
/// The vaults' DNS suffix.
pub const VAULT_SUFFIX: Key<str> = Key::text(
    "vault_suffix",
    "DNS suffix of vaults: `vault.usgovcloudapi.net`, `vault.azure.cn` in sovereign clouds",
)
.unset("`vault.azure.net`");
/// The one vault's URL.
pub const ENDPOINT_URL: Key<str> = Key::text(
    "endpoint_url",
    "URL of the one vault this node reads (a private endpoint under another name); trusted as the vault: its authentication challenge is not checked against the vaults' domain",
)
.unset("`https://<vault>.<vault_suffix>`");
/// Entra ID's login host.
pub const AUTHORITY_HOST: Key<str> = Key::text(
    "authority_host",
    "Entra ID's login host (`https://login.microsoftonline.us`, `https://login.chinacloudapi.cn` in sovereign clouds)",
)
.unset("`https://login.microsoftonline.com`");
/// The app's tenant.
pub const TENANT_ID: Key<str> = Key::text(
    "tenant_id",
    "Entra ID tenant of the app whose client secret, certificate or federated credentials are used",
);
/// The app (or user-assigned managed identity).
pub const CLIENT_ID: Key<str> = Key::text(
    "client_id",
    "client id of the app registration (with a client secret, certificate or federated credentials), else of the user-assigned managed identity",
)
.unset("the system-assigned managed identity");
/// The app's client secret.
pub const CLIENT_SECRET_FILE: Key<Path> =
    Key::path("client_secret_file", "file holding the app's client secret");
/// The app's certificate and key.
pub const CLIENT_CERTIFICATE_FILE: Key<Path> = Key::path(
    "client_certificate_file",
    "PEM file holding the app's certificate and its RSA private key",
);
/// CAs trusted beside the node's store.
pub const CA_FILE: Key<Path> = nomad_secrets_net::CA_FILE;
/// Where IMDS is.
pub const IMDS_ENDPOINT: Key<str> = Key::text(
    "imds_endpoint",
    "Azure's instance metadata service, for the managed identity, or \"off\" on machines that are not Azure VMs",
)
.unset("`http://169.254.169.254`");
/// Where the vaults' connections go.
pub const CONNECT_TO: Key<str> = Key::text(
    "connect_to",
    "`<host>:<port>` every connection to a vault (`*.<vault_suffix>`) goes to, TLS still verifying the vault's name (a private endpoint without DNS)",
)
.unset("the address the vault's name resolves to");

/// The vaults' DNS suffix, the default filled in.
pub(crate) fn vault_suffix(settings: &Settings) -> &str {
    settings.get(&VAULT_SUFFIX).unwrap_or("vault.azure.net")
}

/// Entra ID's login host, the default filled in.
pub(crate) fn authority_host(settings: &Settings) -> &str {
    settings
        .get(&AUTHORITY_HOST)
        .unwrap_or("https://login.microsoftonline.com")
}

impl Backend for AzureBackend {
    const NAME: &'static str = "azure";
    const SETTINGS: &'static [Setting] = &[
        VAULT.setting,
        VAULT_SUFFIX.setting,
        ENDPOINT_URL.setting,
        AUTHORITY_HOST.setting,
        TENANT_ID.setting,
        CLIENT_ID.setting,
        CLIENT_SECRET_FILE.setting,
        CLIENT_CERTIFICATE_FILE.setting,
        CA_FILE.setting,
        IMDS_ENDPOINT.setting,
        CONNECT_TO.setting,
    ];
    const OPTIONS: &'static [&'static str] = &["version"];
    const JOB_INPUT: &'static [nomad_secrets_protocol::Variable] = credentials::JOB_INPUT;

    /// `<vault>/<secret>`, lower case, the default vault filled in.
    fn normalise(locator: &str, settings: &Settings) -> Result<String, Error> {
        Ok(name_of(locator, settings)?.normalised())
    }

    /// A verified workload identity is a federated client assertion for the operator's app
    /// when the app is named by its ids alone (no secret, no certificate: federation is its
    /// only way in); otherwise it proves who the job is and the node's credentials read.
    fn exchanges_identity(settings: &Settings) -> bool {
        credentials::federation_only(settings)
    }

    fn new(_settings: &Settings) -> Result<AzureBackend, Error> {
        Ok(AzureBackend::with_transport(Transport::https()))
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let name = name_of(request.path.locator(), &request.settings)?;
        let version = names::version(request.path.option("version"))?;
        block_on(
            read(&self.transport, request, &name, version.as_deref()),
            request.deadline,
        )
    }

    /// Gets a token with the node's credentials and asks the default vault for a secret that
    /// cannot exist: an answer of "not found" proves the credentials, the vault and the right to
    /// read, without reading a value.
    fn check(&self, settings: &Settings, deadline: Instant) -> Result<String, Error> {
        let vault = match (settings.get(&VAULT), settings.get(&ENDPOINT_URL)) {
            (None, None) => return Err(settings.missing(&VAULT, "\"prod-kv\"")),
            (vault, _) => vault,
        };
        let name = names::parse(
            "nomad-secrets-check",
            vault,
            settings.get(&ENDPOINT_URL).is_some(),
        )?;
        block_on(
            async {
                let budget = Budget::new(deadline);
                let options = client_options(&self.transport, settings, budget)?;
                let input = nomad_secrets_protocol::JobInput::by_hand(&Default::default());
                let (credential, source) =
                    credentials::credential(settings, &input, None, &options)?;
                let client = secret_client(settings, &name, credential, options)?;
                let what = name.normalised();
                match get(&client, &name.secret, None, false).await {
                    Ok(_) => Ok(format!(
                        "credentials work ({}): the vault answers",
                        source.used
                    )),
                    Err(e) => {
                        let error = errors::describe(&e, &what, false, &source);
                        match error.kind() {
                            ErrorKind::NotFound => Ok(format!(
                                "credentials work ({}): the vault `{}` answers, and may be read",
                                source.used,
                                name.vault.as_deref().unwrap_or("at `endpoint_url`")
                            )),
                            _ => Err(error),
                        }
                    }
                }
            },
            deadline,
        )
    }
}

fn name_of(locator: &str, settings: &Settings) -> Result<Name, Error> {
    names::parse(
        locator,
        settings.get(&VAULT),
        settings.get(&ENDPOINT_URL).is_some(),
    )
}

/// Reads the secret, converting a PKCS#12 certificate to PEM on Key Vault's side.
async fn read(
    transport: &Transport,
    request: &Request,
    name: &Name,
    version: Option<&str>,
) -> Result<Secrets, Error> {
    let settings = &request.settings;
    let budget = Budget::new(request.deadline);
    let options = client_options(transport, settings, budget)?;
    let (credential, source) = credentials::credential(
        settings,
        &request.input,
        request.identity.as_ref(),
        &options,
    )?;
    let client = secret_client(settings, name, credential, options)?;
    let what = match version {
        Some(version) => format!("{} version {version}", name.normalised()),
        None => name.normalised(),
    };
    let mut secret = answered(
        get(&client, &name.secret, version, false).await,
        &what,
        version,
        &source,
    )?;
    if secret.content_type.as_deref() == Some(PKCS12) {
        // The same version, converted by Key Vault: never a newer one written meanwhile.
        let read = version_of(&secret).or(version.map(str::to_owned));
        secret = answered(
            get(&client, &name.secret, read.as_deref(), true).await,
            &what,
            version,
            &source,
        )?;
    }
    to_secrets(secret, &what)
}

const PKCS12: &str = "application/x-pkcs12";
const PEM: &str = "application/x-pem-file";

fn answered(
    result: azure_core::Result<Secret>,
    what: &str,
    version: Option<&str>,
    source: &Source,
) -> Result<Secret, Error> {
    result.map_err(|e| errors::describe(&e, what, version.is_some(), source))
}

async fn get(
    client: &SecretClient,
    secret: &str,
    version: Option<&str>,
    as_pem: bool,
) -> azure_core::Result<Secret> {
    let options = SecretClientGetSecretOptions {
        secret_version: version.map(str::to_owned),
        out_content_type: as_pem.then_some(ContentType::Pem),
        ..Default::default()
    };
    client.get_secret(secret, Some(options)).await?.into_model()
}

/// The version a secret's id names (`https://<vault>/secrets/<name>/<version>`).
fn version_of(secret: &Secret) -> Option<String> {
    let id = secret.id.as_deref()?;
    let version = id.rsplit('/').next()?;
    names::version(Some(version)).ok().flatten()
}

/// The secret's value as the task sees it.
fn to_secrets(secret: Secret, what: &str) -> Result<Secrets, Error> {
    if secret.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return Err(
            Error::not_found(format!("`{what}` is disabled in Key Vault")).hint(
                "enable the secret (or this version), or read another version with `?version=`",
            ),
        );
    }
    let value = secret.value.ok_or_else(|| {
        Error::invalid_secret(format!("Key Vault answered `{what}` without a value"))
    })?;
    match secret.content_type.as_deref() {
        Some(PEM) => certificate(&value, what),
        Some(PKCS12) => Err(Error::invalid_secret(format!(
            "Key Vault did not convert the PKCS#12 certificate `{what}` to PEM"
        ))
        .hint("check that the secret backs a Key Vault certificate")),
        _ => Secrets::from_text_or_json_object(value),
    }
}

/// A certificate's PEM text as `private_key`, `certificate` (the first certificate: the
/// leaf, as Key Vault writes it) and `chain` (the others, possibly none).
fn certificate(pem: &str, what: &str) -> Result<Secrets, Error> {
    let (mut key, mut leaf, mut chain) = (String::new(), None::<String>, String::new());
    for (label, block) in pem_blocks(pem) {
        let block = format!("{block}\n");
        match label {
            "CERTIFICATE" if leaf.is_none() => leaf = Some(block),
            "CERTIFICATE" => chain.push_str(&block),
            l if l.ends_with("PRIVATE KEY") => key.push_str(&block),
            _ => {}
        }
    }
    let (Some(leaf), false) = (leaf, key.is_empty()) else {
        return Err(Error::invalid_secret(format!(
            "the certificate `{what}` is not a PEM private key with its certificate"
        ))
        .hint("a Key Vault certificate's secret holds both; read the certificate's secret, not its key or certificate object"));
    };
    let mut secrets = Secrets::new();
    secrets.insert("certificate", Value::new(leaf))?;
    secrets.insert("private_key", Value::new(key))?;
    secrets.insert("chain", Value::new(chain))?;
    Ok(secrets)
}

/// The PEM blocks of `text`, in order: each one's label (`CERTIFICATE`, `PRIVATE KEY`) and
/// its text from `-----BEGIN` to the end of its `-----END` line's marker.
pub(crate) fn pem_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start..];
        let label_end = after.find("-----\n").or_else(|| after.find("-----\r\n"))?;
        let label = &after[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let length = after.find(&end_marker)? + end_marker.len();
        rest = &after[length..];
        Some((label, &after[..length]))
    })
}

/// The SDK's options: this plugin's HTTP client, no retries of the SDK's own (the transport
/// retries under the budget), the operator's Entra ID host.
fn client_options(
    transport: &Transport,
    settings: &Settings,
    budget: Budget,
) -> Result<ClientOptions, Error> {
    let client = transport.client(settings, budget)?;
    let host = authority_host(settings);
    if !host.starts_with("https://") {
        return Err(Error::settings(format!(
            "`authority_host` `{host}` must be an https URL"
        )));
    }
    let mut custom = CustomConfiguration::default();
    custom.authority_host = host.to_owned();
    let cloud = CloudConfiguration::from(custom);
    Ok(ClientOptions {
        transport: Some(SdkTransport::new(client)),
        retry: RetryOptions::none(),
        cloud: Some(Arc::new(cloud)),
        ..Default::default()
    })
}

fn secret_client(
    settings: &Settings,
    name: &Name,
    credential: Arc<dyn TokenCredential>,
    options: ClientOptions,
) -> Result<SecretClient, Error> {
    let (url, verify) = match (settings.get(&ENDPOINT_URL), &name.vault) {
        (Some(url), _) => (url.to_owned(), false),
        (None, Some(vault)) => (format!("https://{vault}.{}", vault_suffix(settings)), true),
        (None, None) => return Err(settings.missing(&VAULT, "\"prod-kv\"")),
    };
    // The SDK sends no token to a plain-HTTP endpoint: refused here, with a clear error.
    if !url.starts_with("https://") {
        return Err(
            Error::settings(format!("`endpoint_url` `{url}` must be an https URL")).hint(
                "Key Vault is served over HTTPS only, and the Azure SDK sends tokens over TLS only",
            ),
        );
    }
    SecretClient::new(
        &url,
        credential,
        Some(SecretClientOptions {
            client_options: options,
            verify_challenge_resource: Some(verify),
            ..Default::default()
        }),
    )
    .map_err(|_| Error::settings(format!("cannot set up a Key Vault client for `{url}`")))
}

/// Runs `future` with the shared [`block_on`](nomad_secrets_net::runtime::block_on), cut when
/// the deadline's [`Budget`] is spent.
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, Error>>,
    deadline: Instant,
) -> Result<T, Error> {
    let bound = Bound::Budget {
        deadline,
        timed_out: || {
            Error::new(
                ErrorKind::Timeout,
                "Key Vault (or the credentials' token endpoint) did not answer in time",
            )
            .hint("check that this node can reach the vault and Entra ID, or `connect_to`, `endpoint_url` and `imds_endpoint`")
        },
    };
    nomad_secrets_net::runtime::block_on(future, bound)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use nomad_secrets_protocol::{JobInput, SecretPath};

    use super::*;
    use crate::transport::{Answer, Call};

    const CHALLENGE: &str = r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#;

    fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// An in-memory Azure: the challenge, Entra ID's token, then `secret` for every read.
    fn azure(secret: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> Transport {
        Transport::in_memory(move |call| {
            if call.url.contains("/oauth2/v2.0/token") {
                return json(
                    200,
                    r#"{"token_type":"Bearer","expires_in":3599,"access_token":"t"}"#,
                );
            }
            if !call.authorized {
                let mut answer = json(
                    401,
                    r#"{"error":{"code":"Unauthorized","message":"AKV10000"}}"#,
                );
                answer
                    .headers
                    .push(("www-authenticate".into(), CHALLENGE.into()));
                return answer;
            }
            secret(call)
        })
    }

    fn fetch(raw: &str, transport: Transport) -> Result<Secrets, Error> {
        let dir = std::env::temp_dir().join(format!("azure-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join("client-secret");
        std::fs::write(&secret_file, "CANARY-client-secret\n").unwrap();
        let settings = Settings::from_text(
            Path::new("/opt/nomad/plugins/secrets/azure.toml"),
            Some(&format!(
                "tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nclient_id = \"app\"\nclient_secret_file = \"{}\"\n",
                secret_file.display()
            )),
            AzureBackend::SETTINGS,
            &HashMap::new(),
        )?;
        let env = HashMap::new();
        let input = JobInput::check(
            "azure",
            "azure.toml",
            AzureBackend::JOB_INPUT,
            &[],
            &[],
            &env,
        )?;
        let request = Request {
            path: SecretPath::parse(raw, AzureBackend::OPTIONS)?,
            settings,
            env,
            input,
            deadline: Instant::now() + Duration::from_secs(5),
            manual: false,
            namespace: "default".into(),
            job: "test".into(),
            instance: "test".into(),
            identity: None,
        };
        AzureBackend::with_transport(transport).fetch(&request)
    }

    #[test]
    fn the_whole_fetch_runs_against_an_in_memory_azure() {
        let secrets = fetch(
            "prod-kv/DB",
            azure(|call| {
                assert!(call.url.starts_with("https://prod-kv.vault.azure.net/secrets/db/?api-version="), "{}", call.url);
                json(200, r#"{"value":"{\"password\":\"CANARY\"}","id":"https://prod-kv.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef"}"#)
            }),
        )
        .unwrap();
        assert_eq!(secrets.get("password").unwrap().expose(), "CANARY");
        let missing = fetch(
            "prod-kv/db?version=0123456789abcdef0123456789abcdef",
            azure(|_| json(404, r#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) db/0123 was not found"}}"#)),
        )
        .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert!(missing.to_string().contains("no such version"), "{missing}");
        let disabled = fetch(
            "prod-kv/db",
            azure(|_| json(403, r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#)),
        )
        .unwrap_err();
        assert!(disabled.to_string().contains("disabled"), "{disabled}");
        let denied = fetch(
            "prod-kv/db",
            azure(|_| json(403, r#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#)),
        )
        .unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::Denied);
        let proxy = fetch(
            "prod-kv/db",
            azure(|_| json(502, "<html>bad gateway</html>")),
        )
        .unwrap_err();
        assert!(proxy.to_string().contains("HTTP 502"), "{proxy}");
    }

    #[test]
    fn a_certificate_gives_its_parts_as_pem_and_pkcs12_is_converted_by_key_vault() {
        let pem = "-----BEGIN PRIVATE KEY-----\nCANARYkey\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
        let body = serde_json::json!({"value": pem, "contentType": PEM, "id": "https://kv1.vault.azure.net/secrets/tls/0123456789abcdef0123456789abcdef"}).to_string();
        let pfx = serde_json::json!({"value": "MIIK", "contentType": PKCS12, "id": "https://kv1.vault.azure.net/secrets/tls/0123456789abcdef0123456789abcdef"}).to_string();
        let secrets = fetch(
            "kv1/tls",
            azure(
                move |call| match call.url.contains("outContentType=application%2Fx-pem-file") {
                    true => {
                        assert!(
                            call.url
                                .contains("/secrets/tls/0123456789abcdef0123456789abcdef?"),
                            "{}",
                            call.url
                        );
                        json(200, &body)
                    }
                    false => json(200, &pfx),
                },
            ),
        )
        .unwrap();
        assert_eq!(
            secrets.get("private_key").unwrap().expose(),
            "-----BEGIN PRIVATE KEY-----\nCANARYkey\n-----END PRIVATE KEY-----\n"
        );
        assert_eq!(
            secrets.get("certificate").unwrap().expose(),
            "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            secrets.get("chain").unwrap().expose(),
            "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
        );
    }
}
