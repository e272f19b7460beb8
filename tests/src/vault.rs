//! A Vault HTTP API double on 127.0.0.1 (plain HTTP or TLS with a CA made per run), for the
//! vault-kv plugin: no Vault or OpenBao server can be installed here.
//!
//! It answers with the shapes and status codes of `shared/vault-api/` (Vault's docs and code):
//! the usual envelope, `{"errors":[...]}` bodies with go-multierror text, the mounts lookup,
//! the 404 forms of KV v2 (absent, deleted, destroyed, v1 path on a v2 mount, no handler), 403
//! "permission denied" vs "permission denied + invalid token", 429, 503 sealed, a standby's 307.
//! It checks what the plugin sends: `X-Vault-Request: true` on every request (as Vault Agent
//! with `require_request_header` does), the token, and the namespace of logins and of reads.
//!
//! Faults: `secret/half` sends half an answer and closes, `secret/huge` a 5 MB answer,
//! `secret/html` an HTML page with a 200, `secret/garbled` broken JSON as application/json.
//!
//! Data (namespace root unless said): KV v2 at `secret/` (`db` with versions 1 and 2, `deleted`,
//! `destroyed`, `flaky` (503 twice), `limited` (429), `slow` (5 s), `standby` (307 to the same path on `localhost`), `elsewhere` (307 to `db`),
//! `rotate` (refuses the first AppRole token as invalid)); KV v1 at `kv1/` (`app`); `old/` where
//! the mounts lookup is 404, as on old servers; `cubby/` of type cubbyhole; in namespace
//! `team-a/`, KV v2 `secret/team`. Tokens: `root-token` (all), `narrow-token` (may not read the
//! mounts lookup), `expired-token` (invalid), `expiring-token` (valid for the mounts lookup,
//! invalid by the read that follows), AppRole `node-role`/`CANARY-secret-id` and JWT role
//! `nomad` with jwt `header.CANARY-claims.signature`; AppRole `ns-role` logs in only in
//! namespace `auth-ns/` and its token reads only in `team-a/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Reply, Request, Response, Server, percent_decoded};
use crate::pki::PkiMaterial;

/// How the double listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP.
    Http,
    /// TLS with a server certificate for `localhost`, `127.0.0.1` and `vault.test` (a name no DNS
    /// resolves, to prove `tls_server_name`).
    Tls,
    /// TLS that also requires a client certificate signed by the same CA.
    MutualTls,
    /// TLS with a certificate signed by the same CA for the same names, expired in 2021.
    ExpiredTls,
    /// Plain HTTP, sealed: every request gets 503.
    Sealed,
}

/// A running double.
pub struct VaultDouble {
    url: String,
    /// Requests served, by path.
    served: Arc<AtomicUsize>,
}

struct State {
    logins: AtomicUsize,
    flaky: AtomicUsize,
    port: u16,
}

impl VaultDouble {
    /// Starts a double; TLS modes need `pki` (made by [`crate::pki::pki`]).
    pub fn start(mode: Mode, pki: Option<&PkiMaterial>) -> VaultDouble {
        let tls = match mode {
            Mode::Tls => Some(pki.expect("TLS needs PKI").tls_config()),
            Mode::MutualTls => Some(pki.expect("mTLS needs PKI").mutual_tls_config()),
            Mode::ExpiredTls => Some(pki.expect("TLS needs PKI").expired_tls_config()),
            _ => None,
        };
        let server = Server::bind()
            .tls(tls)
            .read_timeout(Duration::from_secs(10));
        let url = server.url();
        let served = Arc::new(AtomicUsize::new(0));
        let state = State {
            logins: AtomicUsize::new(0),
            flaky: AtomicUsize::new(0),
            port: server.port(),
        };
        let counter = served.clone();
        server.serve(move |request: &Request| {
            // Vault decodes `%XX` in the path before routing; a path that does not decode ends
            // the connection unanswered.
            let Some(path) = percent_decoded(request.path.trim_start_matches("/v1/")) else {
                return Reply::HangUp;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            handle(request, &path, mode, &state)
        });
        VaultDouble { url, served }
    }

    /// `http(s)://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

/// Faults that break HTTP itself, else [`answer`].
fn handle(request: &Request, path: &str, mode: Mode, state: &State) -> Reply {
    match path {
        "secret/data/half" => Reply::raw(|stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"data\": {\"data\": {\"pass");
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(100));
        }),
        "secret/data/huge" => {
            let filler = "x".repeat(5 << 20);
            let body = format!("{{\"data\":{{\"data\":{{\"big\":\"CANARY{filler}\"}}}}}}");
            send_200("application/json", body).then_close().into()
        }
        "secret/data/garbled" => {
            let body = "{\"data\": {\"data\": {\"password\": \"CANARY-garbled\", }}";
            send_200("application/json", body).into()
        }
        "secret/data/html" => {
            let body = "<html><body>CANARY proxy login</body></html>";
            send_200("text/html", body).into()
        }
        _ => answer(request, path, mode, state).into(),
    }
}

/// A 200 with `body` as `content_type`, whatever the body is.
fn send_200(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    let response = Response::new("200 OK").header("Content-Type", content_type);
    response.body(body)
}

/// Vault's answer with a JSON `body` (none for `Null`).
fn plain(status: &str, body: Value) -> Response {
    let text = if body.is_null() {
        String::new()
    } else {
        format!("{body}\n")
    };
    Response::new(status)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(text)
}

fn envelope(data: Value) -> Value {
    json!({"request_id": "d0c2a1b4-0000-4000-8000-000000000000", "lease_id": "", "renewable": false,
           "lease_duration": 0, "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": "kv"})
}

fn errors(text: &str) -> Value {
    json!({ "errors": [text] })
}

const DENIED: &str = "1 error occurred:\n\t* permission denied\n\n";
const INVALID: &str = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n";

fn kv2_mount(path: &str) -> Value {
    envelope(
        json!({"accessor": "kv_aedd93c1", "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
        "description": "key/value secret storage", "local": false, "options": {"version": "2"}, "path": path,
        "plugin_version": "", "running_plugin_version": "v0.13.0+builtin", "seal_wrap": false, "type": "kv",
        "uuid": "8074a73f-6921-c0cd-589a-016405dc46ec"}),
    )
}

fn metadata(version: u64, deleted: bool, destroyed: bool) -> Value {
    json!({"created_time": "2026-11-01T10:00:00.000000000Z", "custom_metadata": null,
           "deletion_time": if deleted { "2026-11-02T10:00:00.000000000Z" } else { "" },
           "destroyed": destroyed, "version": version})
}

fn answer(request: &Request, path: &str, mode: Mode, state: &State) -> Response {
    if mode == Mode::Sealed {
        return plain("503 Service Unavailable", errors("Vault is sealed"));
    }
    if request.header("X-Vault-Request") != Some("true") {
        return plain(
            "412 Precondition Failed",
            errors("missing 'X-Vault-Request' header"),
        );
    }
    let namespace = request
        .header("X-Vault-Namespace")
        .unwrap_or("")
        .trim_matches('/');
    if path == "sys/health" {
        // Documented shape (Vault API docs, sys/health): unauthenticated, 200 when active.
        return plain(
            "200 OK",
            json!({"initialized": true, "sealed": false, "standby": false,
            "performance_standby": false, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": 1795392000,
            "version": "1.17.0", "cluster_name": "vault-cluster-double", "cluster_id": "00af5aa8-c87d-b5fc-e82e-97cd8dfaf731"}),
        );
    }
    if request.method == "POST" && path.starts_with("auth/") {
        return login(request, path, namespace, state);
    }
    let token = request.header("X-Vault-Token").unwrap_or("");
    let valid = match token {
        "root-token" | "narrow-token" | "jwt-token" => namespace.is_empty(),
        "ns-approle-token" => namespace == "team-a",
        t if t.starts_with("approle-token-") => namespace.is_empty(),
        // Its TTL runs out between the mounts lookup and the read.
        "expiring-token" => path.starts_with("sys/internal/ui/mounts/"),
        _ => false,
    };
    if !valid {
        return plain("403 Forbidden", errors(INVALID));
    }
    if let Some(rest) = path.strip_prefix("sys/internal/ui/mounts/") {
        if token == "narrow-token" {
            return plain(
                "403 Forbidden",
                errors(&format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{rest}/\""
                )),
            );
        }
        let mount = rest.split('/').next().unwrap_or("");
        return match mount {
            "secret" => plain("200 OK", kv2_mount("secret/")),
            "kv1" => plain(
                "200 OK",
                envelope(
                    json!({"type": "kv", "options": null, "path": "kv1/", "description": "v1"}),
                ),
            ),
            "cubby" => plain(
                "200 OK",
                envelope(json!({"type": "cubbyhole", "options": null, "path": "cubby/"})),
            ),
            "old" => plain("404 Not Found", errors("")),
            _ => plain(
                "403 Forbidden",
                errors(&format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{rest}/\""
                )),
            ),
        };
    }
    if namespace == "team-a" {
        return match path {
            "secret/data/team" => plain(
                "200 OK",
                envelope(
                    json!({"data": {"token": "CANARY-team-a"}, "metadata": metadata(1, false, false)}),
                ),
            ),
            _ => plain("404 Not Found", json!({"errors": []})),
        };
    }
    let version: Option<u64> = request
        .query
        .strip_prefix("version=")
        .and_then(|v| v.parse().ok());
    match path {
        "auth/token/lookup-self" => plain(
            "200 OK",
            json!({"data": {"accessor": "8609694a-cdbc-db9b-d345-e782dbb562ed",
            "creation_time": 1795392000, "creation_ttl": 2764800, "display_name": format!("double-{}", token.split('-').next().unwrap_or("")),
            "entity_id": "7d2e3179-f69b-450c-7179-ac8ee8bd8ca9", "expire_time": "2026-12-25T00:00:00Z", "explicit_max_ttl": 0,
            "id": token, "identity_policies": [], "issue_time": "2026-11-23T00:00:00Z", "meta": null, "num_uses": 0,
            "orphan": true, "path": "auth/token/create", "policies": ["default", "nomad-node"], "renewable": true,
            "ttl": 2764790, "type": "service"}}),
        ),
        "secret/data/db" => match version.unwrap_or(2) {
            1 => plain(
                "200 OK",
                envelope(
                    json!({"data": {"password": "CANARY-v1"}, "metadata": metadata(1, false, false)}),
                ),
            ),
            2 => plain(
                "200 OK",
                envelope(
                    json!({"data": {"username": "app", "password": "CANARY-v2", "port": 5432, "tls": {"verify": true}}, "metadata": metadata(2, false, false)}),
                ),
            ),
            _ => plain("404 Not Found", json!({"errors": []})),
        },
        "secret/data/deleted" => plain(
            "404 Not Found",
            envelope(json!({"data": null, "metadata": metadata(3, true, false)})),
        ),
        "secret/data/destroyed" => plain(
            "404 Not Found",
            envelope(json!({"data": null, "metadata": metadata(4, false, true)})),
        ),
        "secret/data/flaky" if state.flaky.fetch_add(1, Ordering::Relaxed) % 3 < 2 => plain(
            "503 Service Unavailable",
            errors(
                "1 error occurred:\n\t* local node not active but active cluster node not found\n\n",
            ),
        ),
        "secret/data/flaky" => plain(
            "200 OK",
            envelope(
                json!({"data": {"ok": "CANARY-after-retries"}, "metadata": metadata(1, false, false)}),
            ),
        ),
        "secret/data/limited" => plain(
            "429 Too Many Requests",
            errors("request path \"secret/data/limited\": rate limit quota exceeded"),
        ),
        "secret/data/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            plain(
                "200 OK",
                envelope(
                    json!({"data": {"late": "CANARY-late"}, "metadata": metadata(1, false, false)}),
                ),
            )
        }
        // The active node is the same double reached as `localhost`: a standby redirects the
        // same path to another host.
        "secret/data/standby"
            if request
                .header("Host")
                .is_some_and(|h| h.starts_with("localhost")) =>
        {
            plain(
                "200 OK",
                envelope(
                    json!({"data": {"username": "app-from-active"}, "metadata": metadata(1, false, false)}),
                ),
            )
        }
        "secret/data/standby" => plain("307 Temporary Redirect", Value::Null).header(
            "Location",
            &format!("http://localhost:{}/v1/secret/data/standby", state.port),
        ),
        // A redirect to another path, as Vault answers a path it cleans: never followed.
        "secret/data/elsewhere" => plain("307 Temporary Redirect", Value::Null).header(
            "Location",
            &format!("http://127.0.0.1:{}/v1/secret/data/db", state.port),
        ),
        "secret/data/rotate" if token == "approle-token-1" => {
            plain("403 Forbidden", errors(INVALID))
        }
        "secret/data/rotate" => plain(
            "200 OK",
            envelope(
                json!({"data": {"rotated": "CANARY-rotated"}, "metadata": metadata(1, false, false)}),
            ),
        ),
        "secret/data/forbidden" => plain("403 Forbidden", errors(DENIED)),
        "secret/data/odd name?#%" => plain(
            "200 OK",
            envelope(
                json!({"data": {"password": "CANARY-odd-name"}, "metadata": metadata(1, false, false)}),
            ),
        ),
        p if p.starts_with("secret/data/") => plain("404 Not Found", json!({"errors": []})),
        p if p.starts_with("secret/") => plain(
            "404 Not Found",
            json!({"request_id": "0b7b0d9e-5a3c-2f4e-8e3b-7d5f3c2a1b00", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "wrap_info": null,
            "warnings": ["Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."], "auth": null, "mount_type": ""}),
        ),
        "kv1/app" | "old/app" => plain(
            "200 OK",
            json!({"auth": null, "data": {"api_key": "CANARY-v1-key", "ttl": "1h"}, "lease_duration": 3600, "lease_id": "", "renewable": false}),
        ),
        "cubby/thing" => plain("200 OK", envelope(json!({"x": "y"}))),
        p if p.starts_with("kv1/") || p.starts_with("old/") => {
            plain("404 Not Found", json!({"errors": []}))
        }
        p => plain(
            "404 Not Found",
            errors(&format!(
                "no handler for route \"{p}\". route entry not found."
            )),
        ),
    }
}

fn login(request: &Request, path: &str, namespace: &str, state: &State) -> Response {
    let ok = |token: String| {
        plain(
            "200 OK",
            json!({"auth": {"renewable": true, "lease_duration": 1200, "metadata": null, "token_policies": ["default"],
            "accessor": "fd6c9a00-d2dc-3b11-0be5-af7ae0e1d374", "client_token": token}, "warnings": null, "wrap_info": null,
            "data": null, "lease_duration": 0, "renewable": false, "lease_id": ""}),
        )
    };
    let bad = |text: &str| plain("400 Bad Request", errors(text));
    let body = request.json();
    match path {
        "auth/approle/login" => match (
            body["role_id"].as_str(),
            body["secret_id"].as_str(),
            namespace,
        ) {
            (Some("node-role"), Some("CANARY-secret-id"), "") => {
                let n = state.logins.fetch_add(1, Ordering::Relaxed) + 1;
                ok(format!("approle-token-{n}"))
            }
            (Some("ns-role"), Some("CANARY-secret-id"), "auth-ns") => ok("ns-approle-token".into()),
            _ => bad("invalid role or secret ID"),
        },
        "auth/jwt/login" => match (body["role"].as_str(), body["jwt"].as_str()) {
            (Some("nomad"), Some("header.CANARY-claims.signature")) => ok("jwt-token".into()),
            _ => bad("error validating token: invalid audience (aud) claim"),
        },
        p => plain(
            "404 Not Found",
            errors(&format!(
                "no handler for route \"{p}\". route entry not found."
            )),
        ),
    }
}
