//! An Azure double on 127.0.0.1, for the azure plugin: Entra ID's token endpoint and Key Vault's
//! secrets API over HTTPS on one port (routed by path), and the VM metadata service (IMDS) over
//! plain HTTP on another. No Key Vault emulator installs here (Azurite emulates storage only), so it follows
//! the documented REST shapes and what `azure_identity` 1.0 and `azure_security_keyvault_secrets`
//! 1.0 send and parse.
//!
//! TLS is mandatory (the SDK refuses `http://` for vaults and authority hosts): a CA made per run
//! signs a server certificate for `*.vault.azure.net`, `127.0.0.1` and `localhost`. A request's
//! `Host` names the vault (`<vault>.vault.azure.net`); any other host (`127.0.0.1:<port>`, an
//! `endpoint_url`) serves the same data. A host starting `nowhere.` gets its connection closed
//! unanswered (real Azure has no such name in DNS).
//!
//! **Entra ID**, `POST /{tenant}/oauth2/v2.0/token`: tenant [`TENANT`], client [`CLIENT_ID`],
//! scope `https://vault.azure.net/.default`, grant `client_credentials`; the client secret
//! [`CLIENT_SECRET`] gives [`TOKEN_SECRET`]; a `jwt-bearer` client assertion equal to
//! [`FEDERATED_TOKEN`] (or one given to [`AzureDouble::accepting`]) gives [`TOKEN_FEDERATED`];
//! an RS256 JWT signed with the key of [`AzureDouble::cert_file`], `x5t` its SHA-1 thumbprint
//! (base64url as RFC 7515 says, or standard base64 as `azure_identity`'s certificate credential
//! sends it), `aud` the token URL, `iss` = `sub` = the client, a `jti` and a live `exp` gives
//! [`TOKEN_CERTIFICATE`]. Errors are Entra's `{error, error_description, error_codes, ...}` with
//! AADSTS codes (90002 tenant, 700016 client, 70011 scope, 7000215 secret, 700027 assertion,
//! 700024 assertion out of its time range); trace ids and timestamps are fixed, for snapshots.
//! As Entra ID's, a description ends in `\r\nTrace ID: ..` lines; `azure_identity` 1.0 borrows
//! it as a `&str`, which serde cannot do for escaped text, so its error quotes the whole
//! description ("invalid type: string .., expected a borrowed string").
//!
//! **IMDS**, `GET /metadata/identity/oauth2/token?api-version=..&resource=https://vault.azure.net`
//! with `Metadata: true`: [`TOKEN_IMDS`], or [`TOKEN_IMDS_USER`] for `client_id` =
//! [`USER_ASSIGNED_CLIENT_ID`] (another identity: 400 "Identity not found"). Numbers are strings,
//! as IMDS sends them.
//!
//! **Key Vault**, `GET /secrets/{name}[/{version}]?api-version=..`: no token is a 401 with the
//! `WWW-Authenticate` challenge the SDK starts with (AKV10000); a token the double did not issue
//! is a 401 too (AKV10032). The SDK then checks that the challenge's resource is a parent domain
//! of the vault's host: an `endpoint_url` of [`AzureDouble::url`] fails that check unless
//! `verify_challenge_resource` is off. Names are case-insensitive. Every value holds `CANARY`.
//!
//! | secret | answer |
//! |---|---|
//! | `db` | `{"username":"app","password":"CANARY-db-password"}` (`application/json`); version [`VERSION`]: `CANARY-db-old` |
//! | `plain` | `CANARY-plain-text`, no content type |
//! | `jobonly` | `CANARY-jobonly`, with [`TOKEN_FEDERATED`] only (else 403 ForbiddenByRbac) |
//! | `imdsonly` | `CANARY-imdsonly`, with an IMDS token only (else 403 ForbiddenByRbac) |
//! | `disabled` | 403 Forbidden, innererror `SecretDisabled` |
//! | `denied` | 403 Forbidden, innererror `ForbiddenByRbac` |
//! | `throttled` | always 429, `Retry-After: 1` |
//! | `throttled-once` | 429 the first time, then `CANARY-after-throttle` |
//! | `flaky` | 503 the first time, then `CANARY-flaky` |
//! | `broken` | 200 `application/json` holding `{"value": ` (cut short) |
//! | `html` | 502 with a proxy's HTML page |
//! | `slow` | `CANARY-slow` after 30 s |
//! | `cert` | PEM (`application/x-pem-file`): PKCS#8 key, leaf, intermediate (Ed25519, the same every run); `kid`, `managed` |
//! | `certpfx` | base64 PKCS#12 (`application/x-pkcs12`, salted anew every run); with `outContentType=application/x-pem-file`, as `cert` |
//! | other names, other versions | 404 SecretNotFound |
//!
//! RSA keys are made with the `openssl` command, as `identity.rs` makes its keys (ring cannot
//! make RSA keys, and Entra ID takes RSA certificates only); so is the PKCS#12.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::http::{Reply, Request, Response, Server, percent_decoded};
use crate::pki::server_config;

/// The directory (tenant) the double knows.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The application (client) id of the service principal.
pub const CLIENT_ID: &str = "0d3f1b6c-5a7e-4c1f-9f0e-2b8c7e6a1d23";
/// The service principal's client secret.
pub const CLIENT_SECRET: &str = "CANARY-client-secret";
/// A federated assertion the double always accepts (JWT-shaped; its signature is not checked).
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcGkifQ.CANARY-federated";
/// The client id of the VM's user-assigned managed identity.
pub const USER_ASSIGNED_CLIENT_ID: &str = "5e1c9a52-7f0e-4d7e-8a34-9c1b2f3e4d56";
/// An older version of `db`.
pub const VERSION: &str = "4f0e8b2a9c1d4e7f8a6b5c3d2e1f0a9b";

/// The access token for the client secret.
pub const TOKEN_SECRET: &str = "CANARY-token-secret";
/// The access token for a certificate assertion.
pub const TOKEN_CERTIFICATE: &str = "CANARY-token-certificate";
/// The access token for a federated assertion (workload identity).
pub const TOKEN_FEDERATED: &str = "CANARY-token-federated";
/// The access token of the VM's system-assigned identity (IMDS).
pub const TOKEN_IMDS: &str = "CANARY-token-imds";
/// The access token of the VM's user-assigned identity (IMDS).
pub const TOKEN_IMDS_USER: &str = "CANARY-token-imds-user";

/// The client id IMDS reports for the system-assigned identity.
const SYSTEM_ASSIGNED_CLIENT_ID: &str = "9a3e5c1b-2d4f-4e6a-8b0c-7d9e1f3a5b7c";
const RESOURCE: &str = "https://vault.azure.net";
const SCOPE: &str = "https://vault.azure.net/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const BAD: &str = "400 Bad Request";
const UNAUTHORIZED: &str = "401 Unauthorized";

/// A running double; it stops with the test process.
pub struct AzureDouble {
    imds_port: u16,
    state: Arc<State>,
}

struct State {
    port: u16,
    accepted: Vec<String>,
    /// SHA-1 of the client certificate's DER (its `x5t`), and its public key.
    thumbprint: Vec<u8>,
    client_key: jsonwebtoken::DecodingKey,
    /// The `cert` secret's value, and the `certpfx` secret's.
    pem_chain: String,
    pfx: String,
    files: [PathBuf; 3],
    issued: Mutex<Vec<String>>,
    used: Mutex<Vec<String>>,
    served: AtomicUsize,
    seen: Mutex<HashSet<String>>,
}

impl AzureDouble {
    /// Starts the double, writing its files into `dir`: `azure-ca.pem`, `azure-client.pem`,
    /// `azure-client.pfx` (and the `cert` secret's PEM and PKCS#12, from which it reads them).
    pub fn start(dir: &Path) -> AzureDouble {
        AzureDouble::accepting(dir, Vec::new())
    }

    /// Starts the double with Entra ID also accepting `assertions` as federated credentials
    /// (tokens made per test run, such as verified Nomad workload identities).
    pub fn accepting(dir: &Path, assertions: Vec<String>) -> AzureDouble {
        let timeout = Duration::from_secs(10);
        let server = Server::bind().read_timeout(timeout);
        let imds = Server::bind().read_timeout(timeout);
        let imds_port = imds.port();
        let (state, tls) = make(dir, server.port(), assertions);
        let state = Arc::new(state);
        let shared = state.clone();
        server
            .tls(Some(tls))
            .serve(move |request: &Request| route(request, &shared, https));
        let shared = state.clone();
        imds.serve(move |request: &Request| route(request, &shared, metadata));
        AzureDouble { imds_port, state }
    }

    /// `https://127.0.0.1:<port>`: the authority host, and a vault's `endpoint_url`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.state.port)
    }

    /// `127.0.0.1:<port>`, where connections for `<vault>.vault.azure.net` go (`connect_to`).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.state.port)
    }

    /// `http://127.0.0.1:<port>` of IMDS.
    pub fn imds_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.imds_port)
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        &self.state.files[0]
    }

    /// The client certificate's PKCS#8 RSA key, then the certificate (PEM).
    pub fn cert_file(&self) -> &Path {
        &self.state.files[1]
    }

    /// The same key and certificate as PKCS#12 with an empty password, as `azure_identity`'s
    /// `ClientCertificateCredential` reads them.
    pub fn pfx_file(&self) -> &Path {
        &self.state.files[2]
    }

    /// The `cert` secret's PEM blocks (the same every run): the leaf's key, the leaf, the
    /// intermediate.
    pub fn cert_secret_blocks(&self) -> Vec<String> {
        let end = "-----\n";
        let mut blocks = Vec::new();
        let mut rest = self.state.pem_chain.as_str();
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start..];
            let Some(stop) = after.find("-----END ") else {
                break;
            };
            let Some(close) = after[stop + 9..].find(end) else {
                break;
            };
            let length = stop + 9 + close + end.len();
            blocks.push(after[..length].to_owned());
            rest = &after[length..];
        }
        blocks
    }

    /// Key Vault reads answered with a value so far.
    pub fn served(&self) -> usize {
        self.state.served.load(Ordering::Relaxed)
    }

    /// The access token of every Key Vault request that carried one the double issued, in order.
    pub fn tokens_used(&self) -> Vec<String> {
        self.state.used.lock().unwrap().clone()
    }

    /// Every access token Entra ID and IMDS gave out, in order.
    pub fn tokens_issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }
}

/// Answers with `handler` (HTTPS or IMDS), given the decoded path. A path that does not decode,
/// or a handler's `None`, ends the connection unanswered.
fn route(
    request: &Request,
    state: &State,
    handler: fn(&Request, &str, &State) -> Option<Response>,
) -> Reply {
    let answer = request
        .decoded_path()
        .and_then(|path| handler(request, &path, state));
    answer.map_or(Reply::HangUp, Reply::Send)
}

/// Runs `openssl` with `args`; its stdout.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package `openssl`; .ci/run installs it)");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?}: {error}");
    out.stdout
}

/// Makes the keys and certificates of one double (writing its files into `dir`): its state and
/// its TLS server config.
fn make(dir: &Path, port: u16, accepted: Vec<String>) -> (State, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let params = |common_name: &str, names: &[&str], ca: bool| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, common_name);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p
    };
    let ca = params("azure-double test CA", &[], true);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let names = ["*.vault.azure.net", "127.0.0.1", "localhost"];
    let server = params(names[0], &names, false)
        .signed_by(&server_key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let tls = server_config(vec![server.der().clone()], key);
    // The service principal's certificate: Entra ID takes RSA keys only.
    let genpkey: Vec<&str> = "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
        .split(' ')
        .collect();
    let rsa = openssl(&genpkey);
    let rsa = String::from_utf8(rsa).unwrap();
    let client_key = KeyPair::from_pem(&rsa).unwrap();
    let client = params("nomad-azure-client", &[], false)
        .signed_by(&client_key, &ca)
        .unwrap();
    // The certificate behind the `cert` and `certpfx` secrets (leaf, intermediate, root): the
    // same every run, for snapshots, so Ed25519 keys from fixed seeds, as Ed25519 signs
    // deterministically (Key Vault itself issues RSA and EC certificates).
    let fixed = |seed: u8| {
        let mut pkcs8 =
            b"\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20".to_vec();
        pkcs8.extend([seed; 32]);
        KeyPair::try_from(pkcs8).unwrap()
    };
    let root = params("azure-double Key Vault root CA", &[], true);
    let root = CertifiedIssuer::self_signed(root, fixed(1)).unwrap();
    let intermediate = params("azure-double intermediate CA", &[], true);
    let intermediate = CertifiedIssuer::signed_by(intermediate, fixed(2), &root).unwrap();
    let leaf_key = fixed(3);
    let leaf = params("app.nomad.test", &["app.nomad.test"], false)
        .signed_by(&leaf_key, &intermediate)
        .unwrap();
    let pem_chain = format!(
        "{}{}{}",
        leaf_key.serialize_pem(),
        leaf.pem(),
        intermediate.pem()
    );
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let pkcs12 = |pem: &Path| {
        let pfx = pem.with_extension("pfx");
        let (input, output) = (pem.to_str().unwrap(), pfx.to_str().unwrap());
        openssl(&[
            "pkcs12", "-export", "-in", input, "-passout", "pass:", "-out", output,
        ]);
        pfx
    };
    let ca_file = write("azure-ca.pem", &ca.pem());
    let cert_file = write("azure-client.pem", &format!("{rsa}{}", client.pem()));
    let pfx_file = pkcs12(&cert_file);
    let chain_pfx = pkcs12(&write("azure-cert-secret.pem", &pem_chain));
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, client.der());
    let state = State {
        port,
        accepted,
        thumbprint: sha1.as_ref().to_vec(),
        client_key: jsonwebtoken::DecodingKey::from_rsa_der(client_key.public_key_raw()),
        pem_chain,
        pfx: STANDARD.encode(std::fs::read(chain_pfx).unwrap()),
        files: [ca_file, cert_file, pfx_file],
        issued: Mutex::default(),
        used: Mutex::default(),
        served: AtomicUsize::new(0),
        seen: Mutex::default(),
    };
    (state, tls)
}

/// A JSON answer.
fn reply(status: &str, body: Value) -> Response {
    let content_type = "application/json; charset=utf-8";
    Response::new(status)
        .header("Content-Type", content_type)
        .body(body.to_string())
}

/// `application/x-www-form-urlencoded` fields (also a query string); broken escapes are dropped.
fn form(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |t: &str| percent_decoded(&t.replace('+', " "));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The HTTPS port: Entra ID's token endpoint, else Key Vault.
fn https(request: &Request, path: &str, state: &State) -> Option<Response> {
    match path.strip_suffix("/oauth2/v2.0/token") {
        Some(tenant) => Some(entra(request, tenant.trim_start_matches('/'), state)),
        None => key_vault(request, path, state),
    }
}

/// An Entra ID error, with the fixed trace details real ones end with.
fn entra_error(status: &str, error: &str, code: u32, text: &str) -> Response {
    let (trace, correlation) = (
        "5d1c3b7a-9e2f-4a6b-8c0d-1e2f3a4b5c00",
        "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
    );
    let timestamp = "2026-11-23 10:00:00Z";
    reply(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn entra(request: &Request, tenant: &str, state: &State) -> Response {
    if tenant != TENANT {
        let text = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        );
        return entra_error(BAD, "invalid_request", 90002, &text);
    }
    let content_type = request.header("Content-Type").unwrap_or_default();
    let fields = match content_type.starts_with("application/x-www-form-urlencoded") {
        true => form(&request.body),
        false => Vec::new(),
    };
    let get = |name: &str| field(&fields, name).unwrap_or_default();
    let grant = get("grant_type");
    if grant != "client_credentials" {
        let text = format!("The app requested an unsupported grant type '{grant}'.");
        return entra_error(BAD, "unsupported_grant_type", 70003, &text);
    }
    let client = get("client_id");
    if client != CLIENT_ID {
        let text = format!(
            "Application with identifier '{client}' was not found in the directory '{TENANT}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        );
        return entra_error(BAD, "unauthorized_client", 700016, &text);
    }
    let scope = get("scope");
    if scope != SCOPE {
        let text = format!(
            "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        );
        return entra_error(BAD, "invalid_scope", 70011, &text);
    }
    let token = match (get("client_secret"), get("client_assertion")) {
        (CLIENT_SECRET, "") => TOKEN_SECRET,
        (secret, "") if !secret.is_empty() => {
            let text = format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."
            );
            return entra_error(UNAUTHORIZED, "invalid_client", 7000215, &text);
        }
        ("", assertion) if !assertion.is_empty() && get("client_assertion_type") == JWT_BEARER => {
            match assertion == FEDERATED_TOKEN || state.accepted.iter().any(|a| a == assertion) {
                true => TOKEN_FEDERATED,
                false => match check_assertion(assertion, state) {
                    Ok(()) => TOKEN_CERTIFICATE,
                    Err(refusal) => return refusal,
                },
            }
        }
        _ => {
            let text = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
            return entra_error(UNAUTHORIZED, "invalid_client", 7000218, text);
        }
    };
    state.issued.lock().unwrap().push(token.to_owned());
    let answer = json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token});
    reply("200 OK", answer)
}

/// Checks a certificate credential's assertion as Entra ID does.
fn check_assertion(assertion: &str, state: &State) -> Result<(), Response> {
    use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
    let failed = |reason: &str| {
        let text = format!("Client assertion failed signature validation. [Reason - {reason}]");
        entra_error(UNAUTHORIZED, "invalid_client", 700027, &text)
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| failed("Malformed JWT."))?;
    let thumbprint = &state.thumbprint;
    let known = [
        URL_SAFE_NO_PAD.encode(thumbprint),
        STANDARD.encode(thumbprint),
    ];
    if header.alg != Algorithm::RS256 || !header.x5t.is_some_and(|t| known.contains(&t)) {
        return Err(failed("The key was not found."));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    let port = state.port;
    validation.set_audience(&[format!(
        "https://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token"
    )]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.sub = Some(CLIENT_ID.to_owned());
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.validate_nbf = true;
    let decoded = jsonwebtoken::decode::<Value>(assertion, &state.client_key, &validation);
    let reason = match decoded.map_err(|e| e.into_kind()) {
        Ok(data) if data.claims["jti"].as_str().is_some_and(|j| !j.is_empty()) => return Ok(()),
        Ok(_) => "The assertion has no jti claim.".to_owned(),
        Err(ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature) => {
            let now = now();
            let text = format!(
                "Client assertion is not within its valid time range. Current time: {now}."
            );
            return Err(entra_error(UNAUTHORIZED, "invalid_client", 700024, &text));
        }
        Err(ErrorKind::InvalidSignature) => "The signature does not verify.".to_owned(),
        Err(kind) => format!("The claims are not valid ({kind:?})."),
    };
    Err(failed(&reason))
}

/// IMDS's managed identity token endpoint.
fn metadata(request: &Request, path: &str, state: &State) -> Option<Response> {
    let refuse = |error: &str, description: &str| {
        reply(
            BAD,
            json!({"error": error, "error_description": description}),
        )
    };
    if path != "/metadata/identity/oauth2/token" {
        return Some(reply("404 Not Found", json!({"error": "Not found"})));
    }
    if !request
        .header("Metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Some(refuse(
            "invalid_request",
            "Required metadata header not specified",
        ));
    }
    let query = form(request.query.as_bytes());
    let get = |name: &str| field(&query, name);
    if get("api-version").is_none() {
        let text = "Required query variable 'api-version' is missing";
        return Some(refuse("invalid_request", text));
    }
    let resource = get("resource").unwrap_or_default();
    if resource != RESOURCE {
        let text = format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {TENANT}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        );
        return Some(refuse("invalid_resource", &text));
    }
    let (token, client_id) = match (get("client_id"), get("object_id"), get("msi_res_id")) {
        (None, None, None) => (TOKEN_IMDS, SYSTEM_ASSIGNED_CLIENT_ID),
        (Some(USER_ASSIGNED_CLIENT_ID), None, None) => (TOKEN_IMDS_USER, USER_ASSIGNED_CLIENT_ID),
        _ => return Some(refuse("invalid_request", "Identity not found")),
    };
    state.issued.lock().unwrap().push(token.to_owned());
    let now = now();
    Some(reply(
        "200 OK",
        json!({"access_token": token, "client_id": client_id, "expires_in": "86399",
            "expires_on": (now + 86399).to_string(), "ext_expires_in": "86399",
            "not_before": now.to_string(), "resource": RESOURCE, "token_type": "Bearer"}),
    ))
}

/// A Key Vault error, with the headers every Key Vault answer has.
fn vault_error(status: &str, code: &str, message: &str) -> Response {
    vault_reply(status, json!({"error": {"code": code, "message": message}}))
}

fn vault_reply(status: &str, body: Value) -> Response {
    vault_headers(reply(status, body))
}

/// The headers every Key Vault answer has.
fn vault_headers(response: Response) -> Response {
    response
        .header("Cache-Control", "no-cache")
        .header("x-ms-request-id", "3c1f7e2a-8b4d-4f6e-9a0c-2d5e8f1b4a7c")
        .header("x-ms-keyvault-region", "westeurope")
        .header("x-ms-keyvault-service-version", "1.9.2588.1")
}

fn key_vault(request: &Request, path: &str, state: &State) -> Option<Response> {
    let host = request
        .header("Host")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let hostname = host.split(':').next().unwrap_or_default();
    if hostname.starts_with("nowhere.") {
        return None;
    }
    let (vault, base) = match hostname.strip_suffix(".vault.azure.net") {
        Some(vault) => (vault, format!("https://{hostname}")),
        None => (host.as_str(), format!("https://{host}")),
    };
    let challenge = |message: &str| {
        let authority = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"{RESOURCE}\""
        );
        vault_error(UNAUTHORIZED, "Unauthorized", message).header("WWW-Authenticate", &authority)
    };
    let Some(authorization) = request.header("Authorization") else {
        return Some(challenge(
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if !state.issued.lock().unwrap().iter().any(|t| t == token) {
        return Some(challenge(&format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{TENANT}/, found https://sts.windows.net/00000000-0000-0000-0000-000000000000/."
        )));
    }
    state.used.lock().unwrap().push(token.to_owned());
    let query = form(request.query.as_bytes());
    if field(&query, "api-version").is_none_or(str::is_empty) {
        let message = "The request URI contains an invalid or missing API version";
        return Some(vault_error(BAD, "BadParameter", message));
    }
    let rest = path.strip_prefix("/secrets/").unwrap_or_default();
    let (name, version) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = |text: &str| text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name.is_empty() || name.len() > 127 || !valid(name) || !valid(version) {
        let message = format!("The request URI contains an invalid name: {rest}");
        return Some(vault_error(BAD, "BadParameter", &message));
    }
    let pem = field(&query, "outContentType") == Some("application/x-pem-file");
    let secret = Secret {
        vault,
        base: &base,
        name,
        version: &version.to_ascii_lowercase(),
        token,
    };
    Some(secret.answer(state, pem))
}

const DB: &str = r#"{"username":"app","password":"CANARY-db-password"}"#;
const DB_OLD: &str = r#"{"username":"app","password":"CANARY-db-old"}"#;
const DISABLED: &str = "Operation get is not allowed on a disabled secret.";
const UNAVAILABLE: &str = "503 Service Unavailable";
const RETRY: &str = "The service is temporarily unavailable. Please retry.";
const PROXY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
    <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// One secret read, authorized.
struct Secret<'a> {
    vault: &'a str,
    base: &'a str,
    /// As the request wrote it.
    name: &'a str,
    version: &'a str,
    token: &'a str,
}

/// A secret's current version: 32 hex digits of its name's SHA-256.
fn current_version(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Secret<'_> {
    fn answer(&self, state: &State, pem: bool) -> Response {
        let name = self.name.to_ascii_lowercase();
        let allowed = match name.as_str() {
            "jobonly" => self.token == TOKEN_FEDERATED,
            "imdsonly" => [TOKEN_IMDS, TOKEN_IMDS_USER].contains(&self.token),
            "denied" => false,
            _ => true,
        };
        if !allowed {
            return self.forbidden_by_rbac();
        }
        let current = current_version(&name);
        let json = Some("application/json");
        if name == "db" && self.version == VERSION {
            return self.value(state, DB_OLD, json, VERSION);
        }
        if !self.version.is_empty() && self.version != current {
            return self.not_found();
        }
        let first_time = || state.seen.lock().unwrap().insert(name.clone());
        let value = |value: &str, content_type: Option<&str>| {
            self.value(state, value, content_type, &current)
        };
        match name.as_str() {
            "db" => value(DB, json),
            "plain" => value("CANARY-plain-text", None),
            "jobonly" => value("CANARY-jobonly", None),
            "imdsonly" => value("CANARY-imdsonly", None),
            "disabled" => forbidden(DISABLED, "SecretDisabled"),
            "throttled" => self.throttled(),
            "throttled-once" if first_time() => self.throttled(),
            "throttled-once" => value("CANARY-after-throttle", None),
            "flaky" if first_time() => vault_error(UNAVAILABLE, "ServiceUnavailable", RETRY),
            "flaky" => value("CANARY-flaky", None),
            "broken" => {
                let json = Response::new("200 OK").header("Content-Type", "application/json");
                vault_headers(json).body("{\"value\": ")
            }
            "html" => Response::new("502 Bad Gateway")
                .header("Content-Type", "text/html")
                .body(PROXY_PAGE),
            "slow" => {
                std::thread::sleep(Duration::from_secs(30));
                value("CANARY-slow", None)
            }
            "cert" => value(&state.pem_chain, Some("application/x-pem-file")),
            "certpfx" if pem => value(&state.pem_chain, Some("application/x-pem-file")),
            "certpfx" => value(&state.pfx, Some("application/x-pkcs12")),
            _ => self.not_found(),
        }
    }

    fn value(
        &self,
        state: &State,
        value: &str,
        content_type: Option<&str>,
        version: &str,
    ) -> Response {
        let name = self.name.to_ascii_lowercase();
        let mut body = json!({
            "value": value,
            "id": format!("{}/secrets/{name}/{version}", self.base),
            "attributes": {"enabled": true, "created": 1700000000, "updated": 1700000000,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        });
        if let Some(content_type) = content_type {
            body["contentType"] = content_type.into();
        }
        if name.starts_with("cert") {
            body["kid"] = format!("{}/keys/{name}/{version}", self.base).into();
            body["managed"] = true.into();
        }
        state.served.fetch_add(1, Ordering::Relaxed);
        vault_reply("200 OK", body)
    }

    fn not_found(&self) -> Response {
        let id = match self.version {
            "" => self.name.to_owned(),
            version => format!("{}/{version}", self.name),
        };
        let message = format!(
            "A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        );
        vault_error("404 Not Found", "SecretNotFound", &message)
    }

    fn throttled(&self) -> Response {
        let message = "Request was not allowed because of throttling.";
        vault_error("429 Too Many Requests", "Throttled", message).header("Retry-After", "1")
    }

    fn forbidden_by_rbac(&self) -> Response {
        let appid = match self.token {
            TOKEN_IMDS => SYSTEM_ASSIGNED_CLIENT_ID,
            TOKEN_IMDS_USER => USER_ASSIGNED_CLIENT_ID,
            _ => CLIENT_ID,
        };
        let vault = self.vault;
        let name = self.name;
        let message = format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={appid};oid=6d1e3f5a-7b9c-4d2e-8f0a-1b3c5d7e9f20;iss=https://sts.windows.net/{TENANT}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/nomad/providers/microsoft.keyvault/vaults/{vault}/secrets/{name}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {vault};location=westeurope\r\n"
        );
        forbidden(&message, "ForbiddenByRbac")
    }
}

/// A Key Vault 403 with its inner error code.
fn forbidden(message: &str, inner: &str) -> Response {
    let error = json!({"code": "Forbidden", "message": message, "innererror": {"code": inner}});
    vault_reply("403 Forbidden", json!({ "error": error }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Read, Write};
    use std::net::TcpStream;

    type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// One keep-alive connection to the double.
    struct Client<S: Read + Write> {
        stream: BufReader<S>,
        host: String,
    }

    /// A TLS connection to the double that verifies `host` (SNI and `Host` both).
    fn tls(double: &AzureDouble, host: &str) -> Client<Tls> {
        use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(double.ca_file()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(double.address()).unwrap();
        let stream = BufReader::new(rustls::StreamOwned::new(connection, tcp));
        Client {
            stream,
            host: host.into(),
        }
    }

    impl<S: Read + Write> Client<S> {
        /// Sends `line` (method and target), `headers` (each ending in CRLF) and `body`; the
        /// status, the head lowercased, and the body.
        fn send(&mut self, line: &str, headers: &str, body: &str) -> (u16, String, String) {
            let request = format!(
                "{line} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                self.host,
                body.len()
            );
            self.stream.get_mut().write_all(request.as_bytes()).unwrap();
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                assert!(self.stream.read_line(&mut head).unwrap() > 0, "closed");
            }
            let head = head.to_ascii_lowercase();
            let status = head[9..12].parse().unwrap();
            let length = head.split("content-length: ").nth(1).unwrap();
            let length: usize = length.split("\r\n").next().unwrap().parse().unwrap();
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body).unwrap();
            (status, head, String::from_utf8(body).unwrap())
        }

        fn get(&mut self, path: &str, token: &str) -> (u16, Value) {
            let auth = format!("Authorization: Bearer {token}\r\n");
            let separator = if path.contains('?') { '&' } else { '?' };
            let target = format!("GET {path}{separator}api-version=2025-07-01");
            let (status, _, body) = self.send(&target, &auth, "");
            (status, serde_json::from_str(&body).unwrap_or(Value::Null))
        }
    }

    /// Asks Entra ID for a token with `form`; the status and the answer.
    fn token(double: &AzureDouble, tenant: &str, form: &str) -> (u16, Value) {
        let line = format!("POST /{tenant}/oauth2/v2.0/token");
        let headers = "Content-Type: application/x-www-form-urlencoded\r\n";
        let (status, _, body) = tls(double, "127.0.0.1").send(&line, headers, form);
        (status, serde_json::from_str(&body).unwrap())
    }

    fn secret_form(secret: &str) -> String {
        format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&scope=https%3A%2F%2Fvault.azure.net%2F.default&client_secret={secret}"
        )
    }

    fn assertion_form(assertion: &str) -> String {
        format!(
            "client_assertion={assertion}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_id={CLIENT_ID}&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        )
    }

    #[test]
    fn challenge_then_reads_with_a_client_secret() {
        let dir = crate::Scratch::new("azure-double");
        let double = AzureDouble::start(dir.path());
        let mut vault = tls(&double, "myvault.vault.azure.net");
        let (status, head, body) = vault.send("GET /secrets/db/?api-version=2025-07-01", "", "");
        assert_eq!(status, 401);
        let challenge = format!(
            "www-authenticate: bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\"\r\n"
        );
        assert!(head.contains(&challenge), "{head}");
        assert!(body.contains("AKV10000"), "{body}");

        let (status, answer) = token(&double, TENANT, &secret_form(CLIENT_SECRET));
        assert_eq!(status, 200);
        assert_eq!(answer["access_token"], TOKEN_SECRET);
        // The same connection, kept alive.
        let (status, secret) = vault.get("/secrets/db/", TOKEN_SECRET);
        assert_eq!(status, 200);
        assert_eq!(
            secret["value"],
            r#"{"username":"app","password":"CANARY-db-password"}"#
        );
        let id = secret["id"].as_str().unwrap();
        let prefix = "https://myvault.vault.azure.net/secrets/db/";
        assert!(
            id.starts_with(prefix) && id.len() == prefix.len() + 32,
            "{id}"
        );
        let (_, old) = vault.get(&format!("/secrets/DB/{VERSION}"), TOKEN_SECRET);
        assert!(old["value"].as_str().unwrap().contains("CANARY-db-old"));

        let (status, missing) = vault.get("/secrets/nope", TOKEN_SECRET);
        assert_eq!(
            (status, &missing["error"]["code"]),
            (404, &json!("SecretNotFound"))
        );
        let zeros = "0".repeat(32);
        let (_, missing) = vault.get(&format!("/secrets/db/{zeros}"), TOKEN_SECRET);
        let message = missing["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("A secret with (name/id) db/{zeros} was not")));
        let (status, denied) = vault.get("/secrets/jobonly", TOKEN_SECRET);
        assert_eq!(status, 403);
        assert_eq!(denied["error"]["innererror"]["code"], "ForbiddenByRbac");
        let (status, unknown) = vault.get("/secrets/db", "not-issued");
        assert_eq!(status, 401);
        assert!(unknown.to_string().contains("AKV10032"));
        assert_eq!(double.served(), 2);
        assert_eq!(double.tokens_used(), vec![TOKEN_SECRET; 5]);

        // Throttled once, then served; an `endpoint_url` host serves the same data.
        let mut endpoint = tls(&double, "127.0.0.1");
        assert_eq!(endpoint.get("/secrets/throttled-once", TOKEN_SECRET).0, 429);
        let (status, secret) = endpoint.get("/secrets/throttled-once", TOKEN_SECRET);
        assert_eq!(
            (status, &secret["value"]),
            (200, &json!("CANARY-after-throttle"))
        );
        let (_, pfx) = endpoint.get("/secrets/certpfx", TOKEN_SECRET);
        assert_eq!(pfx["contentType"], "application/x-pkcs12");
        let der = STANDARD.decode(pfx["value"].as_str().unwrap()).unwrap();
        let file = dir.path().join("certpfx.pfx");
        std::fs::write(&file, der).unwrap();
        let path = file.to_str().unwrap();
        let parsed = openssl(&["pkcs12", "-in", path, "-passin", "pass:", "-nodes"]);
        let parsed = String::from_utf8(parsed).unwrap();
        assert_eq!(
            parsed.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{parsed}"
        );
        assert!(parsed.contains("-----BEGIN PRIVATE KEY-----"));
        let pem_out = "/secrets/certpfx?outContentType=application%2Fx-pem-file";
        let (_, pem) = endpoint.get(pem_out, TOKEN_SECRET);
        assert_eq!(pem["contentType"], "application/x-pem-file");
        let text = pem["value"].as_str().unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    }

    #[test]
    fn entra_refuses_what_it_does_not_know() {
        let dir = crate::Scratch::new("azure-double");
        let double = AzureDouble::start(dir.path());
        let code = |tenant: &str, form: &str| {
            let (status, answer) = token(&double, tenant, form);
            (status, answer["error_codes"][0].as_u64().unwrap())
        };
        let right = secret_form(CLIENT_SECRET);
        assert_eq!(code(TENANT, &secret_form("wrong")), (401, 7000215));
        let other = "00000000-0000-0000-0000-000000000000";
        assert_eq!(code(other, &right), (400, 90002));
        let graph = right.replace("vault.azure.net", "graph.microsoft.com");
        assert_eq!(code(TENANT, &graph), (400, 70011));
        assert_eq!(
            code(TENANT, &right.replace(CLIENT_ID, other)),
            (400, 700016)
        );
        assert!(double.tokens_issued().is_empty());
        // The `cert` secret is the same every run, for snapshots.
        let again = crate::Scratch::new("azure-double");
        assert_eq!(
            AzureDouble::start(again.path()).state.pem_chain,
            double.state.pem_chain
        );
    }

    #[test]
    fn certificate_and_federated_assertions() {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let dir = crate::Scratch::new("azure-double");
        let double = AzureDouble::accepting(dir.path(), vec!["nomad.CANARY.jwt".into()]);
        let pem = std::fs::read(double.cert_file()).unwrap();
        let key = EncodingKey::from_rsa_pem(&pem).unwrap();
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
        let pfx = double.pfx_file().to_str().unwrap();
        let parsed = openssl(&[
            "pkcs12", "-in", pfx, "-passin", "pass:", "-nodes", "-nokeys",
        ]);
        assert!(
            String::from_utf8(parsed)
                .unwrap()
                .contains("nomad-azure-client")
        );
        let audience = format!("{}/{TENANT}/oauth2/v2.0/token", double.url());
        let sign = |x5t: String, exp: u64| {
            let mut header = Header::new(Algorithm::RS256);
            header.x5t = Some(x5t);
            let claims = json!({"aud": audience, "iss": CLIENT_ID, "sub": CLIENT_ID,
                "jti": "7c0e", "nbf": now() - 5, "exp": exp});
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        let issued = |assertion: &str| {
            let (status, answer) = token(&double, TENANT, &assertion_form(assertion));
            let code = answer["error_codes"][0].as_u64().unwrap_or_default();
            (
                status,
                answer["access_token"]
                    .as_str()
                    .unwrap_or(&code.to_string())
                    .to_owned(),
            )
        };
        let thumbprint = URL_SAFE_NO_PAD.encode(sha1);
        let good = sign(thumbprint.clone(), now() + 300);
        assert_eq!(issued(&good), (200, TOKEN_CERTIFICATE.into()));
        // As azure_identity's certificate credential writes the thumbprint.
        let padded = sign(STANDARD.encode(sha1), now() + 300);
        assert_eq!(issued(&padded), (200, TOKEN_CERTIFICATE.into()));
        let tampered = format!("{}AAAA", &good[..good.len() - 4]);
        assert_eq!(issued(&tampered), (401, "700027".into()));
        let unknown_key = sign("bm90IGl0".into(), now() + 300);
        assert_eq!(issued(&unknown_key), (401, "700027".into()));
        assert_eq!(
            issued(&sign(thumbprint, now() - 600)),
            (401, "700024".into())
        );
        assert_eq!(issued(FEDERATED_TOKEN), (200, TOKEN_FEDERATED.into()));
        assert_eq!(issued("nomad.CANARY.jwt"), (200, TOKEN_FEDERATED.into()));
        assert_eq!(issued("not.accepted.jwt"), (401, "700027".into()));

        let mut vault = tls(&double, "team.vault.azure.net");
        let (status, secret) = vault.get("/secrets/JobOnly", TOKEN_FEDERATED);
        assert_eq!((status, &secret["value"]), (200, &json!("CANARY-jobonly")));
        assert_eq!(vault.get("/secrets/jobonly", TOKEN_CERTIFICATE).0, 403);
        let used = double.tokens_used();
        assert_eq!(used, vec![TOKEN_FEDERATED, TOKEN_CERTIFICATE]);
    }

    #[test]
    fn imds_needs_its_header() {
        let dir = crate::Scratch::new("azure-double");
        let double = AzureDouble::start(dir.path());
        let ask = |query: &str, header: &str| {
            let tcp = TcpStream::connect(double.imds_url().trim_start_matches("http://"));
            let host = "169.254.169.254".to_owned();
            let mut imds = Client {
                stream: BufReader::new(tcp.unwrap()),
                host,
            };
            let line = format!(
                "GET /metadata/identity/oauth2/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net{query}"
            );
            let (status, _, body) = imds.send(&line, header, "");
            (status, serde_json::from_str::<Value>(&body).unwrap())
        };
        let (status, refused) = ask("", "");
        assert_eq!(status, 400);
        let description = &refused["error_description"];
        assert_eq!(description, "Required metadata header not specified");
        let (status, answer) = ask("", "metadata: true\r\n");
        assert_eq!((status, &answer["access_token"]), (200, &json!(TOKEN_IMDS)));
        let expires_on: u64 = answer["expires_on"].as_str().unwrap().parse().unwrap();
        assert!(expires_on > now());
        let user = format!("&client_id={USER_ASSIGNED_CLIENT_ID}");
        let (_, answer) = ask(&user, "Metadata: true\r\n");
        assert_eq!(answer["access_token"], TOKEN_IMDS_USER);
        let other = "&client_id=11111111-2222-3333-4444-555555555555";
        let (status, refused) = ask(other, "Metadata: true\r\n");
        assert_eq!(
            (status, &refused["error_description"]),
            (400, &json!("Identity not found"))
        );

        let mut vault = tls(&double, "myvault.vault.azure.net");
        let (_, secret) = vault.get("/secrets/imdsonly", TOKEN_IMDS);
        assert_eq!(secret["value"], "CANARY-imdsonly");
        assert_eq!(vault.get("/secrets/imdsonly", TOKEN_IMDS_USER).0, 200);
        assert_eq!(double.tokens_issued(), vec![TOKEN_IMDS, TOKEN_IMDS_USER]);
    }
}
