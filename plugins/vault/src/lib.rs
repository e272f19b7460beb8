//! The `vault-kv` backend: secrets from HashiCorp Vault and OpenBao KV v1 and v2 mounts.
//!
//! Installed as `secrets/vault-kv`, never `secrets/vault`: Nomad routes the provider names
//! `vault` and `nomad` to its built-in providers, so a plugin with either name is never called.
//!
//! `fetch <mount>/<path>[?version=N][&kv=1|2][&mount=<mount>][#key]`. The secret's data is
//! converted by the shared policy (one key per field). See [`auth`] for where the token comes
//! from and who may aim it, [`kv`] for version detection and errors, [`http`] for the bounds.
#![deny(missing_docs)]

pub mod auth;
#[doc(hidden)]
pub mod http;
pub mod kv;
pub mod settings;

use nomad_secrets_protocol::{Backend, Error, Request, Secrets, Setting, Settings};

use crate::auth::Owner;
use crate::http::{Transport, Vault};
use crate::settings::{ADDRESS, AUTH_NAMESPACE, KV_VERSION, NAMESPACE, SECRET_ID_FILE, TOKEN_FILE};
use nomad_secrets_net::rest::{CLIENT_CERT_FILE, CLIENT_KEY_FILE, TLS_SERVER_NAME};

/// The `vault-kv` plugin.
pub struct VaultBackend {
    transport: Transport,
}

impl VaultBackend {
    /// The backend with requests going through `transport` (in memory, for tests and fuzzing).
    pub fn with_transport(transport: Transport) -> VaultBackend {
        VaultBackend { transport }
    }
}

impl Backend for VaultBackend {
    const NAME: &'static str = "vault-kv";
    const SETTINGS: &'static [Setting] = settings::SETTINGS;
    const OPTIONS: &'static [&'static str] = &["version", "kv", "mount"];
    const JOB_INPUT: &'static [nomad_secrets_protocol::Variable] = auth::JOB_INPUT;

    /// `.` and empty segments dropped, `..` refused: the path Vault will read (see
    /// [`kv::normalise`]).
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        kv::normalise(locator, "path")
    }

    fn check(&self, settings: &Settings, deadline: std::time::Instant) -> Result<String, Error> {
        check_vault(&self.transport, settings, deadline)
    }

    /// Requests go over the network, the client set up for the address in use (the
    /// operator's, or a job's own with its own credentials).
    /// A JWT role logs a job's verified identity in (see `auth`).
    fn exchanges_identity(settings: &Settings) -> bool {
        settings.get(&settings::JWT_ROLE).is_some()
    }

    fn new(_settings: &Settings) -> Result<VaultBackend, Error> {
        Ok(VaultBackend::with_transport(Transport::Network))
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let owner = auth::owner(request)?;
        let settings = &request.settings;
        let from_job = |name: &str| match owner {
            Owner::Job => request.env_var(name),
            Owner::Operator => None,
        };
        let job_address = from_job("VAULT_ADDR").filter(|_| !request.manual);
        let address = job_address
            .or(settings.get(&ADDRESS))
            .ok_or_else(|| settings.missing(&ADDRESS, "\"https://vault.service.consul:8200\""))?;
        let job_namespace = from_job("VAULT_NAMESPACE").filter(|_| !request.manual);
        if let Some(chosen) = job_namespace {
            // The secret read is `<namespace>/<path>`, which the policy may deny although it
            // allows `<path>` (in the operator's namespace): it must see the whole of it.
            let chosen = chosen.trim_matches('/');
            let path = VaultBackend::normalise(request.path.locator(), settings)?;
            request.really_reads(&format!("{chosen}/{path}"))?;
        }
        let namespace = from_job("VAULT_NAMESPACE").or(settings.get(&NAMESPACE));
        let auth_namespace = match owner {
            Owner::Job => namespace,
            Owner::Operator => settings.get(&AUTH_NAMESPACE).or(namespace),
        };
        // An address of the job's choosing gets the job's credential only: never the node's
        // TLS client certificate, nor the name the operator verifies the node's Vault by.
        let link_settings = match job_address {
            Some(_) => settings.without(&[
                CLIENT_CERT_FILE.name(),
                CLIENT_KEY_FILE.name(),
                TLS_SERVER_NAME.name(),
            ]),
            None => settings.clone(),
        };
        let vault = Vault::connect(&self.transport, &link_settings, address, request.deadline)?;
        let mut auth = auth::authenticate(request, &vault, auth_namespace)?;
        let path = &request.path;
        let version = match path.option("version") {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0 && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        Error::invalid_path(format!(
                            "`version` must be a positive number, not `{v}`"
                        ))
                    })?,
            ),
        };
        // The job's `?kv=` and `?mount=` are assertions the mounts lookup checks; the
        // operator's `kv_version` decides only where the lookup cannot answer (see [`kv`]).
        let kv = kv_version(path.option("kv"), "`kv`")?;
        let default_kv = kv_version(settings.get(&KV_VERSION), "`kv_version`")?;
        let (locator, mount) = kv::resolve(path.locator(), path.option("mount"))?;
        kv::read(
            &vault,
            &mut auth,
            &kv::Read {
                locator: &locator,
                version,
                kv,
                default_kv,
                mount: mount.as_deref(),
                namespace,
            },
        )
    }
}

/// `?kv=` or `kv_version`: 1, 2 or unset.
fn kv_version(value: Option<&str>, what: &str) -> Result<Option<u8>, Error> {
    match value {
        None => Ok(None),
        Some("1") => Ok(Some(1)),
        Some("2") => Ok(Some(2)),
        Some(other) => Err(Error::invalid_path(format!(
            "{what} must be 1 or 2, not `{other}`"
        ))),
    }
}

/// `check`: Vault answers `sys/health` (reachable, initialised, unsealed), and the node's own
/// credentials, if the operator configured any, log in and pass `auth/token/lookup-self`. The
/// report names the token's display name, policies and TTL, never the token.
fn check_vault(
    transport: &Transport,
    settings: &Settings,
    deadline: std::time::Instant,
) -> Result<String, Error> {
    let address = settings
        .get(&ADDRESS)
        .ok_or_else(|| settings.missing(&ADDRESS, "\"https://vault.service.consul:8200\""))?;
    let vault = Vault::connect(transport, settings, address, deadline)?;
    let health = vault.call("GET", "sys/health", None, None, None)?;
    let state = match health.status {
        200 => "active",
        429 | 472 | 473 => "standby",
        501 => {
            return Err(Error::unavailable(format!(
                "Vault at `{address}` is not initialised"
            )));
        }
        503 => return Err(auth::sealed(&vault.address)),
        status => {
            return Err(Error::unavailable(format!(
                "Vault at `{address}` answered sys/health with HTTP {status}"
            )));
        }
    };
    let version = health.body["version"].as_str().unwrap_or("?");
    let reached = format!("Vault {version} at `{address}` is reachable ({state}, unsealed)");
    let node_credentials =
        settings.get(&TOKEN_FILE).is_some() || settings.get(&SECRET_ID_FILE).is_some();
    if !node_credentials {
        return Ok(format!(
            "{reached}; no node credentials configured: jobs must bring their own"
        ));
    }
    let request = Request {
        path: nomad_secrets_protocol::SecretPath::parse("check", &[])?,
        settings: settings.clone(),
        env: Default::default(),
        input: Default::default(),
        deadline,
        manual: true,
        namespace: String::new(),
        job: String::new(),
        instance: String::new(),
        identity: None,
    };
    let namespace = settings.get(&NAMESPACE);
    let login_namespace = settings.get(&AUTH_NAMESPACE).or(namespace);
    let auth = auth::authenticate(&request, &vault, login_namespace)?;
    let me = vault.call(
        "GET",
        "auth/token/lookup-self",
        Some(auth.token.expose()),
        namespace,
        None,
    )?;
    if me.status != 200 {
        return Err(Error::denied(format!(
            "the node's token does not pass lookup-self (HTTP {}): {}",
            me.status,
            me.errors()
        )));
    }
    let data = &me.body["data"];
    let policies: Vec<&str> = data["policies"]
        .as_array()
        .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    Ok(format!(
        "{reached}; the node's credentials work: token `{}`, policies {}, {}",
        data["display_name"].as_str().unwrap_or("?"),
        policies.join(", "),
        ttl(data["ttl"].as_u64().unwrap_or(0))
    ))
}

/// A token's TTL for people, to the nearest hour (or minute): the seconds tick while one reads.
fn ttl(seconds: u64) -> String {
    match seconds {
        0 => "no expiry (ttl 0)".to_owned(),
        s if s < 3600 => format!("expires in about {} min", (s + 30) / 60),
        s => format!("expires in about {} h", (s + 1800) / 3600),
    }
}
