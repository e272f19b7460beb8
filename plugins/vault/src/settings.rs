//! What an operator may set in `vault-kv.toml`, each with the type it reads as. By hand, the
//! Vault CLI's own variables (`VAULT_ADDR`, `VAULT_CACERT`...) stand in for them.

use std::path::Path;

use nomad_secrets_net::rest::{CLIENT_CERT_FILE, CLIENT_KEY_FILE, TLS_SERVER_NAME};
use nomad_secrets_protocol::{Key, Setting};

/// Vault's address.
pub const ADDRESS: Key<str> = Key::text(
    "address",
    "Vault's address, like https://vault.service.consul:8200",
)
.unset("(required)")
.by_hand("VAULT_ADDR");
/// The namespace of reads.
pub const NAMESPACE: Key<str> = Key::text(
    "namespace",
    "namespace for reads (Vault Enterprise, HCP, OpenBao)",
)
.by_hand("VAULT_NAMESPACE");
/// The namespace of logins.
pub const AUTH_NAMESPACE: Key<str> = Key::text(
    "auth_namespace",
    "namespace for logins (default: `namespace`)",
)
.unset("`namespace`");
/// The CAs that sign Vault's certificate.
pub const CA_FILE: Key<Path> = nomad_secrets_net::CA_FILE
    .described("PEM file of the CA(s) that sign Vault's certificate")
    .unset("Mozilla's roots")
    .by_hand("VAULT_CACERT");
/// The node's token.
pub const TOKEN_FILE: Key<Path> = Key::path("token_file", "file holding the node's Vault token");
/// The node's AppRole role id.
pub const ROLE_ID: Key<str> = Key::text("role_id", "AppRole role id of the node");
/// ... or the file holding it.
pub const ROLE_ID_FILE: Key<Path> = Key::path("role_id_file", "file holding the AppRole role id");
/// The node's AppRole secret id.
pub const SECRET_ID_FILE: Key<Path> =
    Key::path("secret_id_file", "file holding the AppRole secret id");
/// Where AppRole is mounted.
pub const APPROLE_MOUNT: Key<str> =
    Key::text("approle_mount", "AppRole auth mount (default `approle`)").default("approle");
/// Where JWT auth is mounted.
pub const JWT_MOUNT: Key<str> =
    Key::text("jwt_mount", "JWT auth mount (default `jwt`)").default("jwt");
/// The JWT role; a job's `VAULT_JWT_ROLE` by default.
pub const JWT_ROLE: Key<str> = Key::text(
    "jwt_role",
    "JWT auth role (Vault checks the token's claims against it)",
)
.job_env("VAULT_JWT_ROLE")
.job_by_default();
/// The KV version of every mount, skipping the lookup.
pub const KV_VERSION: Key<str> = Key::text(
    "kv_version",
    "\"1\" or \"2\": the KV version when Vault's mount lookup cannot answer (403/404); the lookup wins when it answers",
)
.unset("detected per mount");

/// Everything `vault-kv.toml` may set besides the common settings.
pub const SETTINGS: &[Setting] = &[
    ADDRESS.setting,
    NAMESPACE.setting,
    AUTH_NAMESPACE.setting,
    CA_FILE.setting,
    CLIENT_CERT_FILE.by_hand("VAULT_CLIENT_CERT").setting,
    CLIENT_KEY_FILE.by_hand("VAULT_CLIENT_KEY").setting,
    TOKEN_FILE.setting,
    ROLE_ID.setting,
    ROLE_ID_FILE.setting,
    SECRET_ID_FILE.setting,
    APPROLE_MOUNT.setting,
    JWT_MOUNT.setting,
    JWT_ROLE.setting,
    KV_VERSION.setting,
    TLS_SERVER_NAME
        .described(
            "name to verify Vault's certificate against, when `address` is an IP or another name",
        )
        .by_hand("VAULT_TLS_SERVER_NAME")
        .setting,
];
