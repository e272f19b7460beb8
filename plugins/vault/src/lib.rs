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
pub mod fuzzing;
pub mod http;
pub mod kv;

use nomad_secrets_protocol::{Backend, Error, Kind, Request, Secrets, Setting, Settings};

use crate::auth::Owner;
use crate::http::Vault;
use nomad_secrets_net::rest;

/// The `vault-kv` plugin.
pub struct VaultBackend;

/// What Vault's request log shows for this plugin.
const USER_AGENT: &str = "nomad-secrets-vault-kv";

impl Backend for VaultBackend {
    const NAME: &'static str = "vault-kv";
    const SETTINGS: &'static [Setting] = &[
        Setting::operator(
            "address",
            Kind::Text,
            "Vault's address, like https://vault.service.consul:8200",
        )
        .by_hand("VAULT_ADDR"),
        Setting::operator(
            "namespace",
            Kind::Text,
            "namespace for reads (Vault Enterprise, HCP, OpenBao)",
        )
        .by_hand("VAULT_NAMESPACE"),
        Setting::operator(
            "auth_namespace",
            Kind::Text,
            "namespace for logins (default: `namespace`)",
        ),
        Setting::operator(
            "ca_file",
            Kind::AbsolutePath,
            "PEM file of the CA(s) that sign Vault's certificate",
        )
        .by_hand("VAULT_CACERT"),
        Setting::operator(
            "client_cert_file",
            Kind::AbsolutePath,
            "PEM client certificate chain, for mTLS",
        )
        .by_hand("VAULT_CLIENT_CERT"),
        Setting::operator(
            "client_key_file",
            Kind::AbsolutePath,
            "PEM private key of the client certificate",
        )
        .by_hand("VAULT_CLIENT_KEY"),
        Setting::operator(
            "token_file",
            Kind::AbsolutePath,
            "file holding the node's Vault token",
        ),
        Setting::operator("role_id", Kind::Text, "AppRole role id of the node"),
        Setting::operator(
            "role_id_file",
            Kind::AbsolutePath,
            "file holding the AppRole role id",
        ),
        Setting::operator(
            "secret_id_file",
            Kind::AbsolutePath,
            "file holding the AppRole secret id",
        ),
        Setting::operator(
            "approle_mount",
            Kind::Text,
            "AppRole auth mount (default `approle`)",
        ),
        Setting::operator("jwt_mount", Kind::Text, "JWT auth mount (default `jwt`)"),
        Setting {
            name: "jwt_role",
            kind: Kind::Text,
            default: None,
            job_env: Some("VAULT_JWT_ROLE"),
            job_by_default: true,
            by_hand_env: None,
            doc: "JWT auth role (Vault checks the token's claims against it)",
        },
        Setting::operator(
            "kv_version",
            Kind::Text,
            "\"1\" or \"2\" to skip the mount lookup for every path",
        ),
        Setting::operator(
            "tls_server_name",
            Kind::Text,
            "name to verify Vault's certificate against, when `address` is an IP or another name",
        )
        .by_hand("VAULT_TLS_SERVER_NAME"),
    ];
    const OPTIONS: &'static [&'static str] = &["version", "kv", "mount"];

    /// `.` and empty segments dropped, `..` refused: the path Vault will read (see
    /// [`kv::normalise`]).
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        kv::normalise(locator, "path")
    }

    fn check(settings: &Settings, deadline: std::time::Instant) -> Result<String, Error> {
        check_vault(settings, deadline)
    }

    fn fetch(request: &Request) -> Result<Secrets, Error> {
        let owner = auth::check_job_env(request)?;
        let settings = &request.settings;
        let from_job = |name: &str| match owner {
            Owner::Job => request.env_var(name),
            Owner::Operator => None,
        };
        let address = from_job("VAULT_ADDR")
            .or(settings.text("address"))
            .ok_or_else(|| settings.missing("address", "\"https://vault.service.consul:8200\""))?;
        let namespace = from_job("VAULT_NAMESPACE").or(settings.text("namespace"));
        let auth_namespace = match owner {
            Owner::Job => namespace,
            Owner::Operator => settings.text("auth_namespace").or(namespace),
        };
        let (agent, base) = rest::agent(settings, "address", address, USER_AGENT)?;
        let vault = Vault::new(agent, address, &base, request.deadline);
        let mut auth = auth::authenticate(request, &vault, auth_namespace)?;
        let path = &request.path;
        let version = match path.option("version") {
            None => None,
            Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                Error::invalid_path(format!("`version` must be a positive number, not `{v}`"))
            })?),
        };
        let kv = match path.option("kv").or(settings.text("kv_version")) {
            None => None,
            Some("1") => Some(1),
            Some("2") => Some(2),
            Some(other) => {
                return Err(Error::invalid_path(format!(
                    "`kv` must be 1 or 2, not `{other}`"
                )));
            }
        };
        if path.option("mount").is_some() && kv.is_none() {
            return Err(Error::invalid_path(
                "`mount` needs `kv=1` or `kv=2` beside it",
            ));
        }
        let (locator, mount) = kv::resolve(path.locator(), path.option("mount"))?;
        kv::read(
            &vault,
            &mut auth,
            &kv::Read {
                locator: &locator,
                version,
                kv,
                mount: mount.as_deref(),
                namespace,
            },
        )
    }
}

/// `check`: Vault answers `sys/health` (reachable, initialised, unsealed), and the node's own
/// credentials, if the operator configured any, log in and pass `auth/token/lookup-self`. The
/// report names the token's display name, policies and TTL, never the token.
fn check_vault(settings: &Settings, deadline: std::time::Instant) -> Result<String, Error> {
    let address = settings
        .text("address")
        .ok_or_else(|| settings.missing("address", "\"https://vault.service.consul:8200\""))?;
    let (agent, base) = rest::agent(settings, "address", address, USER_AGENT)?;
    let vault = Vault::new(agent, address, &base, deadline);
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
    let node_credentials = ["token_file", "secret_id_file"]
        .iter()
        .any(|name| settings.path(name).is_some());
    if !node_credentials {
        return Ok(format!(
            "{reached}; no node credentials configured: jobs must bring their own"
        ));
    }
    let request = Request {
        path: nomad_secrets_protocol::SecretPath::parse("check", &[])?,
        settings: settings.clone(),
        env: Default::default(),
        deadline,
        manual: true,
        namespace: String::new(),
        job: String::new(),
        instance: String::new(),
    };
    let namespace = settings.text("namespace");
    let login_namespace = settings.text("auth_namespace").or(namespace);
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
