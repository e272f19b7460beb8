//! Where the Vault token comes from, and who owns it.
//!
//! In order, the first that applies:
//! 1. the job's `VAULT_TOKEN`;
//! 2. the job's `VAULT_JWT` (a Nomad workload identity token passed through `env {}`, say),
//!    logged in at `auth/<jwt_mount>/login` with `jwt_role` (the job's `VAULT_JWT_ROLE` by default);
//! 3. the job's `VAULT_ROLE_ID` and `VAULT_SECRET_ID`, logged in at `auth/<approle_mount>/login`;
//! 4. the job's verified workload identity (`NOMAD_WORKLOAD_IDENTITY`, see the protocol's
//!    `identity`), logged in at `auth/<jwt_mount>/login` with `jwt_role` when one is set, at
//!    the operator's address and namespace (the token proves who the job is; it does not let
//!    the job aim it);
//! 5. the operator's `token_file`;
//! 6. the operator's AppRole: `role_id` (or `role_id_file`) and `secret_id_file`.
//!
//! Whoever controls where a credential is sent controls that credential: only with the job's
//! own credentials (1-3) may the job's `VAULT_ADDR` and `VAULT_NAMESPACE` apply. With the
//! operator's (4-5) the address, CA and namespace are the operator's, and a job that sets them is
//! refused. Every other `VAULT_*` variable from a job is refused too (`VAULT_SKIP_VERIFY`
//! included: verification is never disabled).

use std::path::Path;

use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Key, Request, Secret, Variable};
use serde_json::json;

use crate::http::Vault;
use crate::settings::{
    APPROLE_MOUNT, JWT_MOUNT, JWT_ROLE, ROLE_ID, ROLE_ID_FILE, SECRET_ID_FILE, TOKEN_FILE,
};

/// What a job's `env {}` may pass to `vault-kv`, and what each variable is: the job's own
/// token, JWT or AppRole (one of them, whole), and with it only, where it is sent.
pub const JOB_INPUT: &[Variable] = &[
    Variable::credential("VAULT_TOKEN", "token", "the job's own Vault token, used as is")
        .by_hand("the person's token, as for the Vault CLI (else `~/.vault-token`)"),
    Variable::credential(
        "VAULT_JWT",
        "JWT",
        "a JWT (a Nomad workload identity, say) logged in at `auth/<jwt_mount>/login` with `jwt_role`",
    )
    .by_hand("as under Nomad"),
    Variable::credential("VAULT_ROLE_ID", "AppRole", "the job's AppRole role id")
        .by_hand("as under Nomad"),
    Variable::credential("VAULT_SECRET_ID", "AppRole", "the job's AppRole secret id")
        .by_hand("as under Nomad"),
    Variable::aims("VAULT_ADDR", "the Vault the job's own credential is sent to")
        .by_hand("`address`, as for the Vault CLI"),
    Variable::aims(
        "VAULT_NAMESPACE",
        "the namespace the job's own credential logs in and reads in",
    )
    .by_hand("`namespace`, as for the Vault CLI"),
    Variable::refused("VAULT_SKIP_VERIFY", "TLS verification is never disabled")
        .by_hand("refused: TLS verification is never disabled"),
    Variable::refused(
        "VAULT_CACERT",
        "whom the plugin trusts is the operator's `ca_file`",
    )
    .by_hand("`ca_file`, as for the Vault CLI"),
    Variable::refused("VAULT_CAPATH", "whom the plugin trusts is the operator's `ca_file`")
        .by_hand("not read: use VAULT_CACERT"),
    Variable::refused(
        "VAULT_CLIENT_CERT",
        "the node's TLS client certificate is the operator's `client_cert_file`",
    )
    .by_hand("`client_cert_file`, as for the Vault CLI"),
    Variable::refused(
        "VAULT_CLIENT_KEY",
        "the node's TLS client key is the operator's `client_key_file`",
    )
    .by_hand("`client_key_file`, as for the Vault CLI"),
    Variable::refused(
        "VAULT_TLS_SERVER_NAME",
        "the name Vault's certificate is checked against is the operator's `tls_server_name`",
    )
    .by_hand("`tls_server_name`, as for the Vault CLI"),
    Variable::refused("VAULT_*", "only the operator configures this, in vault-kv.toml")
        .by_hand("not read"),
];

/// How the token was obtained, which decides how to get a fresh one.
pub enum Source {
    /// A token given as is, by the job: cannot be renewed here.
    JobToken,
    /// A token read from the operator's file: read again on "invalid token".
    TokenFile(std::path::PathBuf),
    /// A login that can be repeated on "invalid token".
    Login(Login),
}

/// A login request.
pub struct Login {
    /// `approle` or `jwt`, for messages.
    pub method: &'static str,
    /// `auth/<mount>/login`.
    pub path: String,
    /// The request body (holds the credential).
    pub body: Secret,
}

/// A token and where it came from.
pub struct Auth {
    /// The token.
    pub token: Secret,
    /// Where it came from.
    pub source: Source,
}

/// Who owns the credentials: the job (which may then aim them) or the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The job's env carries them.
    Job,
    /// The operator's settings carry them.
    Operator,
}

/// Who owns the credentials of this request. Under Nomad the protocol has checked the job's
/// input against [`JOB_INPUT`]: a job credential is complete, and `VAULT_ADDR` or
/// `VAULT_NAMESPACE` come only with one. By hand there is no job: the person's `VAULT_*`
/// variables apply as for the Vault CLI (the protocol has put `VAULT_ADDR`, `VAULT_CACERT`,
/// ... into the settings), except one.
pub fn owner(request: &Request) -> Result<Owner, Error> {
    if request.manual {
        if request.env_var("VAULT_SKIP_VERIFY").is_some() {
            return Err(Error::settings(
                "`VAULT_SKIP_VERIFY` is set, but this plugin never disables TLS verification",
            )
            .hint("unset it, and point VAULT_CACERT at the CA that signs Vault's certificate"));
        }
        let person = ["VAULT_TOKEN", "VAULT_JWT", "VAULT_ROLE_ID"]
            .iter()
            .any(|v| request.env_var(v).is_some());
        return Ok(if person { Owner::Job } else { Owner::Operator });
    }
    Ok(match request.input.credential() {
        Some(_) => Owner::Job,
        None => Owner::Operator,
    })
}

/// Gets a token from the first source that applies.
pub fn authenticate(
    request: &Request,
    vault: &Vault,
    namespace: Option<&str>,
) -> Result<Auth, Error> {
    let settings = &request.settings;
    let mount = |key: &Key<str>| {
        let mount = settings.get(key).expect("auth mounts have defaults");
        mount.trim_matches('/').to_owned()
    };
    let source = if let Some(token) = request.env_var("VAULT_TOKEN") {
        return Ok(Auth {
            token: Secret::new(token),
            source: Source::JobToken,
        });
    } else if let Some(jwt) = request.env_var("VAULT_JWT") {
        let role = settings.get(&JWT_ROLE).ok_or_else(|| {
            Error::settings(match request.manual {
                false => "JWT login needs a role: set `VAULT_JWT_ROLE` in the secret's env block, or `jwt_role` in vault-kv.toml",
                true => "JWT login needs a role: export VAULT_JWT_ROLE, or set `jwt_role` in vault-kv.toml",
            })
        })?;
        Source::Login(Login {
            method: "jwt",
            path: format!("auth/{}/login", mount(&JWT_MOUNT)),
            body: Secret::new(json!({ "role": role, "jwt": jwt }).to_string()),
        })
    } else if let (Some(role_id), Some(secret_id)) = (
        request.env_var("VAULT_ROLE_ID"),
        request.env_var("VAULT_SECRET_ID"),
    ) {
        Source::Login(approle(&mount(&APPROLE_MOUNT), role_id, secret_id))
    } else if let (Some(identity), Some(role)) = (&request.identity, settings.get(&JWT_ROLE)) {
        // The job's verified workload identity, at the operator's address: Vault's role
        // checks its claims, so each job gets the policies bound to it.
        Source::Login(Login {
            method: "jwt",
            path: format!("auth/{}/login", mount(&JWT_MOUNT)),
            body: Secret::new(json!({ "role": role, "jwt": identity.token() }).to_string()),
        })
    } else if let Some(file) = request.manual.then(|| person_token_file(request)).flatten() {
        Source::TokenFile(file)
    } else if let Some(file) = settings.get(&TOKEN_FILE) {
        Source::TokenFile(file.to_owned())
    } else if let Some(secret_id_file) = settings.get(&SECRET_ID_FILE) {
        let role_id = match (settings.get(&ROLE_ID), settings.get(&ROLE_ID_FILE)) {
            (Some(id), _) => id.to_owned(),
            (None, Some(file)) => read_credential(file, "role_id_file")?.expose().to_owned(),
            (None, None) => {
                return Err(Error::settings(
                    "AppRole needs `role_id` or `role_id_file` beside `secret_id_file` in vault-kv.toml",
                ));
            }
        };
        let secret_id = read_credential(secret_id_file, "secret_id_file")?;
        Source::Login(approle(
            &mount(&APPROLE_MOUNT),
            &role_id,
            secret_id.expose(),
        ))
    } else if request.manual {
        return Err(Error::denied("no Vault credentials: VAULT_TOKEN is unset, there is no ~/.vault-token, and the settings file sets no `token_file` or AppRole")
            .hint("export VAULT_TOKEN, or log in with `vault login` (or `bao login`), as for the Vault CLI"));
    } else {
        return Err(Error::denied("no Vault credentials: the job's env has no VAULT_TOKEN, VAULT_JWT or AppRole ids, and the operator set no `token_file` or AppRole in vault-kv.toml")
            .hint("pass the job's own credentials in the secret's env block, or ask the operator to configure the node's"));
    };
    let token = fresh_token(&source, vault, namespace)?;
    Ok(Auth { token, source })
}

impl Auth {
    /// After an "invalid token" answer: a new token, once, where the source allows.
    pub fn renew(&mut self, vault: &Vault, namespace: Option<&str>) -> Result<bool, Error> {
        if matches!(self.source, Source::JobToken) {
            return Ok(false);
        }
        self.token = fresh_token(&self.source, vault, namespace)?;
        Ok(true)
    }
}

/// `~/.vault-token`, where `vault login` leaves the person's token, if it exists.
fn person_token_file(request: &Request) -> Option<std::path::PathBuf> {
    let home = request.env_var("HOME").filter(|h| h.starts_with('/'))?;
    let file = Path::new(home).join(".vault-token");
    file.is_file().then_some(file)
}

fn approle(mount: &str, role_id: &str, secret_id: &str) -> Login {
    Login {
        method: "approle",
        path: format!("auth/{mount}/login"),
        body: Secret::new(json!({ "role_id": role_id, "secret_id": secret_id }).to_string()),
    }
}

fn fresh_token(source: &Source, vault: &Vault, namespace: Option<&str>) -> Result<Secret, Error> {
    match source {
        Source::JobToken => unreachable!("a job's token is used as is"),
        Source::TokenFile(file) => read_credential(file, "token_file"),
        Source::Login(login) => {
            let body: serde_json::Value =
                serde_json::from_str(login.body.expose()).unwrap_or_default();
            let answer = vault.call("POST", &login.path, None, namespace, Some(&body))?;
            match answer.status {
                200 => answer.body["auth"]["client_token"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .map(Secret::new)
                    .ok_or_else(|| {
                        Error::unavailable(format!(
                            "Vault's {} login answer has no client token",
                            login.method
                        ))
                    }),
                503 if answer.errors().contains("sealed") => Err(sealed(&vault.address)),
                status => Err(Error::denied(format!(
                    "Vault refused the {} login at `{}` (HTTP {status}): {}",
                    login.method,
                    login.path,
                    answer.errors()
                ))
                .hint(match login.method {
                    "jwt" => {
                        "check the JWT, its audience and bound claims, and `jwt_role`/`jwt_mount`"
                    }
                    _ => "check the role id and secret id, and `approle_mount`",
                })),
            }
        }
    }
}

/// Reads a credential file: trimmed, non-empty, at most 64 KiB. Errors never show its content.
fn read_credential(file: &Path, setting: &str) -> Result<Secret, Error> {
    let shown = file.display();
    let metadata = std::fs::metadata(file).map_err(|e| unreadable(setting, file, &e))?;
    if metadata.len() > 64 << 10 {
        return Err(Error::settings(format!(
            "`{setting}` `{shown}` is larger than 64 KiB"
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| unreadable(setting, file, &e))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(Error::settings(format!("`{setting}` `{shown}` is empty")));
    }
    Ok(Secret::new(value))
}

/// The error for a sealed Vault.
pub fn sealed(address: &str) -> Error {
    Error::unavailable(format!("Vault at `{address}` is sealed"))
        .hint("an operator must unseal it (or the address points at a node that is not unsealed)")
}
