//! Verified workload identity: who the job is, proved by the token Nomad signed for it.
//!
//! `NOMAD_NAMESPACE` and `NOMAD_JOB_ID` are set by Nomad, but a job ID says little: Nomad allows
//! `/` in IDs, so an ordinary job may be registered as `victim/dispatch-1700000000-0a1b2c3d` and
//! look like a run of `victim`. A task identity with `env = true` gives the task a JWT that
//! Nomad signed, and a secret's `env {}` may hand it to the plugin:
//!
//! ```hcl
//! identity {
//!   name = "secrets"
//!   aud  = ["nomad-secrets"]
//!   env  = true
//!   ttl  = "1h"
//! }
//! secret "db" {
//!   provider = "aws"
//!   path     = "prod/db"
//!   env { NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}" }
//! }
//! ```
//!
//! When the operator sets `identity_jwks_url` (the agent's `/.well-known/jwks.json`) or
//! `identity_jwks_file`, the token is verified before anything else runs: its signature with the
//! key its `kid` names (RS256 or EdDSA only, the key's type deciding which), `exp` and `nbf`
//! with 30 s of leeway, the audience, the issuer when one is set, and its `nomad_namespace` and
//! `nomad_job_id` against the run's (a dispatched or periodic run's token names its parent, as
//! the run's job identity does). Anything else is denied before any store call, and the error
//! never shows the token. With `identity_required = true`, a run without a token is denied too.
//!
//! The key set is kept in the node cache's folder (when the cache is on) for an hour, and
//! fetched again at once when a token names a key it does not hold (Nomad rotated its keys),
//! at most once a minute; a fetch that fails falls back to the kept set for a day.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::settings::{Key, Settings};

/// The variable of a job's `env {}` that carries its workload identity token.
pub const VARIABLE: &str = "NOMAD_WORKLOAD_IDENTITY";

/// Where the key set is served (the Nomad agent's JWKS endpoint).
pub const JWKS_URL: Key<str> = Key::text(
    "identity_jwks_url",
    "URL of Nomad's key set, e.g. `http://127.0.0.1:4646/.well-known/jwks.json`: job tokens in `NOMAD_WORKLOAD_IDENTITY` are verified with it",
)
.unset("no verification (a job's token is refused)");
/// The key set as a file, for nodes that cannot reach the agent's HTTP API.
pub const JWKS_FILE: Key<Path> = Key::path(
    "identity_jwks_file",
    "Nomad's key set (JWKS JSON) as a file, instead of `identity_jwks_url`",
)
.unset("no verification (a job's token is refused)");
/// The audience a token must name.
pub const AUDIENCE: Key<str> = Key::text(
    "identity_audience",
    "the audience (`aud`) a job's workload identity token must name: its `identity` block's `aud`",
)
.default("nomad-secrets");
/// The issuer a token must name.
pub const ISSUER: Key<str> = Key::text(
    "identity_issuer",
    "the issuer (`iss`) a token must name, when the cluster sets `oidc_issuer`",
)
.unset("not checked");
/// Whether a run without a verified token is denied.
pub const REQUIRED: Key<bool> = Key::flag(
    "identity_required",
    "whether a job must prove who it is with a verified `NOMAD_WORKLOAD_IDENTITY` token",
)
.default("false");
/// The CA that signed the agent's HTTPS certificate.
pub const CA_FILE: Key<Path> = Key::path(
    "identity_ca_file",
    "PEM CA that signed the agent's certificate, for an https `identity_jwks_url` (Nomad's own CA)",
)
.unset("the Mozilla roots");

/// Leeway for `exp` and `nbf`: clocks of servers and clients drift a little.
const LEEWAY: u64 = 30;
/// How long a kept key set is used without asking again.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// How long a kept key set answers while the agent cannot.
const FALL_BACK_FOR: Duration = Duration::from_secs(24 * 3600);
/// The least time between two fetches for an unknown key id.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// A key set larger than this is not Nomad's.
const MAX_KEY_SET: u64 = 1 << 20;

/// Who the job is, as its verified token says.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// `nomad_namespace`.
    pub namespace: String,
    /// `nomad_job_id`: for a dispatched or periodic run, its parent.
    pub job: String,
    /// The task group, from `sub` (`<region>:<namespace>:<job>:<group>:<task>:<identity>`).
    pub group: Option<String>,
    /// `nomad_task`.
    pub task: Option<String>,
    /// `nomad_allocation_id`.
    pub allocation: String,
    token: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("namespace", &self.namespace)
            .field("job", &self.job)
            .field("group", &self.group)
            .field("task", &self.task)
            .field("allocation", &self.allocation)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// The verified token itself, for a store that exchanges it for credentials of the job's
    /// own (an AWS role, a Vault JWT login). Never shown.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The claims Nomad sets that verification reads.
#[derive(Deserialize)]
struct Claims {
    nomad_namespace: Option<String>,
    nomad_job_id: Option<String>,
    #[serde(default)]
    nomad_allocation_id: String,
    nomad_task: Option<String>,
    sub: Option<String>,
}

/// Verifies the job's `token` (its `NOMAD_WORKLOAD_IDENTITY`, if it passed one) for the run of
/// `job` (its job identity) in `namespace`. `Ok(None)` when there is nothing to verify and the
/// operator does not require it.
pub(crate) fn verify(
    settings: &Settings,
    token: Option<&str>,
    namespace: &str,
    instance: &str,
    deadline: Instant,
) -> Result<Option<Identity>, Error> {
    let source = source(settings)?;
    let required = settings.get(&REQUIRED).unwrap_or(false);
    let file = settings.file().display();
    let (source, token) = match (source, token) {
        (_, None) if required => {
            return Err(Error::denied(format!(
                "the operator's `{file}` requires a verified workload identity, and the job's \
                 env has no `{VARIABLE}`"
            ))
            .hint(format!(
                "give the task an identity with `env = true` and pass it in the secret's env \
                 block: {VARIABLE} = \"${{NOMAD_TOKEN_<identity name>}}\""
            )));
        }
        (_, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(Error::settings(format!(
                "the job's env sets `{VARIABLE}`, but `{file}` sets neither `identity_jwks_url` \
                 nor `identity_jwks_file`: the token cannot be verified"
            ))
            .hint(
                "ask the operator to set identity_jwks_url (the agent's /.well-known/jwks.json), \
                 or remove the variable",
            ));
        }
        (Some(source), Some(token)) => (source, token),
    };
    let (header, kid) = header_and_kid(token)?;
    let key = source.key(settings, &kid, deadline)?;
    let expected = Expected {
        audience: settings
            .get(&AUDIENCE)
            .expect("`identity_audience` has a default"),
        issuer: settings.get(&ISSUER),
        namespace,
        instance,
    };
    checked(token, &header, &kid, &key, &expected).map(Some)
}

/// What a token must say besides being signed by the cluster.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// `identity_audience`.
    pub audience: &'a str,
    /// `identity_issuer`, if set.
    pub issuer: Option<&'a str>,
    /// The run's namespace (`NOMAD_NAMESPACE`).
    pub namespace: &'a str,
    /// The run's own job ID (`NOMAD_JOB_ID`): the token names it, or for a dispatched or
    /// periodic run its immediate parent.
    pub instance: &'a str,
}

/// Verifies `token` against the JWKS document `key_set` alone (nothing fetched or kept): what
/// a run does once it holds the key set, for fuzz targets and tests.
pub fn verify_with_key_set(
    token: &str,
    key_set: &str,
    expected: &Expected,
) -> Result<Identity, Error> {
    let (header, kid) = header_and_kid(token)?;
    let key = find(key_set, &kid)?
        .ok_or_else(|| refused(format!("its key `{kid}` is not in the key set")))?;
    checked(token, &header, &kid, &key, expected)
}

/// The token's header and the key id it names.
fn header_and_kid(token: &str) -> Result<(jsonwebtoken::Header, String), Error> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        refused(match named_algorithm(token) {
            Some(alg) => format!("its algorithm `{alg}` is not RS256 or EdDSA"),
            None => format!(
                "it is not a JWT with a header this plugin accepts ({})",
                reason(&e)
            ),
        })
    })?;
    let kid = header
        .kid
        .clone()
        .ok_or_else(|| refused("its header names no key (`kid`)".to_owned()))?;
    Ok((header, kid))
}

/// Checks `token`'s signature with `key` (the one its header's `kid` names), its times and
/// claims against `expected`.
fn checked(
    token: &str,
    header: &jsonwebtoken::Header,
    kid: &str,
    key: &Jwk,
    expected: &Expected,
) -> Result<Identity, Error> {
    let Expected {
        audience,
        issuer,
        namespace,
        instance,
    } = *expected;
    let algorithm = algorithm_of(key).ok_or_else(|| {
        refused(format!(
            "key `{kid}` of the key set is neither RSA nor Ed25519"
        ))
    })?;
    if header.alg != algorithm {
        return Err(refused(format!(
            "it is signed with {:?}, but key `{kid}` is a {algorithm:?} key",
            header.alg
        )));
    }
    let decoding = DecodingKey::from_jwk(key)
        .map_err(|e| refused(format!("key `{kid}` is not usable ({})", reason(&e))))?;
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY;
    validation.validate_nbf = true;
    validation.set_audience(&[audience]);
    // A token without `exp` (an identity without `ttl`) would prove who the job is forever,
    // to whoever ever saw it: refused.
    let mut required_claims: HashSet<String> = ["aud".to_owned(), "exp".to_owned()].into();
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required_claims.insert("iss".to_owned());
    }
    validation.required_spec_claims = required_claims;
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as Kind;
            let why = match e.kind() {
                Kind::ExpiredSignature => "it has expired".to_owned(),
                Kind::ImmatureSignature => "it is not valid yet (`nbf`)".to_owned(),
                Kind::InvalidAudience => format!("its audience is not `{audience}`"),
                Kind::InvalidIssuer => {
                    format!("its issuer is not `{}`", issuer.unwrap_or_default())
                }
                Kind::MissingRequiredClaim(claim) if claim == "exp" => "it has no `exp`: it \
                    would never expire (give the task's identity block a `ttl`)"
                    .to_owned(),
                Kind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
                Kind::InvalidSignature => format!("its signature does not match key `{kid}`"),
                _ => reason(&e),
            };
            refused(why)
        })?
        .claims;
    let (Some(token_namespace), Some(token_job)) = (&claims.nomad_namespace, &claims.nomad_job_id)
    else {
        return Err(refused(
            "it has no `nomad_namespace` or `nomad_job_id` claim: it is not a Nomad workload identity"
                .to_owned(),
        ));
    };
    // Nomad signs a dispatched or periodic run's identity with its immediate parent's ID: one
    // suffix, never more (a job registered as `victim/dispatch-...` is its own parent, and its
    // children name it, not `victim`).
    let own = token_job == instance || crate::policy::parent_of(instance) == Some(token_job);
    if token_namespace != namespace || !own {
        return Err(Error::denied(format!(
            "the job's workload identity is namespace `{token_namespace}`, job `{token_job}`, \
             but this run is namespace `{namespace}`, job `{instance}`: a token proves only \
             the job it was made for"
        ))
        .hint(format!(
            "pass the task's own token ({VARIABLE} = \"${{NOMAD_TOKEN_<identity name>}}\")"
        )));
    }
    let group = claims.sub.as_deref().and_then(|sub| {
        group_of(
            sub,
            token_namespace,
            token_job,
            claims.nomad_task.as_deref(),
        )
    });
    Ok(Identity {
        namespace: token_namespace.clone(),
        job: token_job.clone(),
        group,
        task: claims.nomad_task,
        allocation: claims.nomad_allocation_id,
        token: token.to_owned(),
    })
}

/// For `check`: what verification would use, the key set fetched now; `None` when it is off
/// and not required.
pub(crate) fn describe(settings: &Settings, deadline: Instant) -> Result<Option<String>, Error> {
    let required = settings.get(&REQUIRED).unwrap_or(false);
    let (text, from) = match source(settings)? {
        None if required => {
            return Err(Error::settings(
                "`identity_required` is true, but neither `identity_jwks_url` nor \
                 `identity_jwks_file` is set: every fetch would be denied",
            ));
        }
        None => return Ok(None),
        Some(Source::File(path)) => (read_file(path)?, format!("`{}`", path.display())),
        Some(Source::Url(url)) => (fetch(settings, url, deadline)?, format!("`{url}`")),
    };
    let usable = usable_keys(&text)?;
    if usable.is_empty() {
        return Err(Error::unavailable(format!(
            "the key set from {from} holds no RSA or Ed25519 key with a `kid`"
        )));
    }
    Ok(Some(format!(
        "{} key(s) ({}) from {from}; audience `{}`{}; {}",
        usable.len(),
        usable.join(", "),
        settings.get(&AUDIENCE).unwrap_or_default(),
        settings
            .get(&ISSUER)
            .map(|i| format!(", issuer `{i}`"))
            .unwrap_or_default(),
        match required {
            true => "required: runs without a valid token are denied",
            false => "optional: runs without a token are served by the policy alone",
        }
    )))
}

/// The keys of a JWKS document: each entry that reads as a JWK (others are passed over).
fn keys_of(text: &str) -> Result<Vec<Jwk>, Error> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_str(text).map_err(|e| {
        Error::unavailable(format!("the identity key set is not a JWKS document ({e})"))
    })?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
        .collect())
}

/// The algorithm a key verifies: RS256 for RSA, EdDSA for Ed25519, nothing for any other.
fn algorithm_of(key: &Jwk) -> Option<Algorithm> {
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// The ids of the keys verification can use.
fn usable_keys(text: &str) -> Result<Vec<String>, Error> {
    Ok(keys_of(text)?
        .into_iter()
        .filter(|key| algorithm_of(key).is_some())
        .filter_map(|key| key.common.key_id)
        .collect())
}

/// The task group in `sub`, `<region>:<namespace>:<job>:<group>:<workload>:<identity>`; `None`
/// when `sub` is not of that shape for this namespace, job and task.
fn group_of(sub: &str, namespace: &str, job: &str, task: Option<&str>) -> Option<String> {
    let (_region, rest) = sub.split_once(':')?;
    let rest = rest.strip_prefix(&format!("{namespace}:{job}:"))?;
    let mut parts = rest.rsplitn(3, ':');
    let (_identity, workload, group) = (parts.next()?, parts.next()?, parts.next()?);
    let fits = !group.is_empty() && task.is_none_or(|task| task == workload);
    fits.then(|| group.to_owned())
}

/// The `alg` a token's header names, when the library refuses it outright (`none`, say); at
/// most 16 characters of it, so that nothing long from the token is echoed.
fn named_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let alg = value.get("alg")?.as_str()?;
    let plain = alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric());
    plain.then(|| alg.to_owned())
}

/// A token that does not verify: denied, naming why, never showing it.
fn refused(why: String) -> Error {
    Error::denied(format!(
        "the job's `{VARIABLE}` is not a valid workload identity: {why}"
    ))
    .hint("pass the task's own, current token; the operator's identity_* settings say what is checked")
}

/// The library's account of an error, without any part of the token.
fn reason(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as Kind;
    match error.kind() {
        Kind::InvalidToken => "not three base64url parts".to_owned(),
        Kind::InvalidAlgorithm | Kind::InvalidAlgorithmName => {
            "its algorithm is not RS256 or EdDSA".to_owned()
        }
        Kind::Base64(_) => "bad base64url".to_owned(),
        Kind::Json(_) | Kind::Utf8(_) => "its JSON does not read".to_owned(),
        Kind::InvalidRsaKey(_) | Kind::InvalidEcdsaKey | Kind::InvalidKeyFormat => {
            "the key does not read".to_owned()
        }
        other => format!("{other:?}"),
    }
}

/// Whether the operator configured verification (a key set).
pub(crate) fn configured(settings: &Settings) -> bool {
    settings.get(&JWKS_URL).is_some() || settings.get(&JWKS_FILE).is_some()
}

/// Where the key set comes from.
enum Source<'a> {
    Url(&'a str),
    File(&'a Path),
}

fn source(settings: &Settings) -> Result<Option<Source<'_>>, Error> {
    match (settings.get(&JWKS_URL), settings.get(&JWKS_FILE)) {
        (Some(_), Some(_)) => Err(Error::settings(format!(
            "`{}` sets both `identity_jwks_url` and `identity_jwks_file`",
            settings.file().display()
        ))
        .hint("keep one of them")),
        (Some(url), None) => Ok(Some(Source::Url(url))),
        (None, Some(file)) => Ok(Some(Source::File(file))),
        (None, None) => Ok(None),
    }
}

impl Source<'_> {
    /// The key `kid` names, from the kept set or a fresh one.
    fn key(&self, settings: &Settings, kid: &str, deadline: Instant) -> Result<Jwk, Error> {
        let unknown =
            |fetched: &str| refused(format!("its key `{kid}` is not in the key set ({fetched})"));
        match self {
            Source::File(path) => {
                let text = read_file(path)?;
                find(&text, kid)?.ok_or_else(|| unknown(&format!("`{}`", path.display())))
            }
            Source::Url(url) => {
                let kept = KeptSet::open(settings, url);
                let now = SystemTime::now();
                if let Some((text, fetched)) = kept.as_ref().and_then(KeptSet::read) {
                    let age = now.duration_since(fetched).unwrap_or_default();
                    if age < KEEP_FOR {
                        if let Some(key) = find(&text, kid).ok().flatten() {
                            return Ok(key);
                        }
                        if age < REFETCH_AFTER {
                            return Err(unknown(&format!(
                                "fetched {}s ago; fetched again at most once a minute",
                                age.as_secs()
                            )));
                        }
                    }
                }
                let text = match fetch(settings, url, deadline) {
                    Ok(text) => text,
                    Err(error) => {
                        let fallback = kept.as_ref().and_then(KeptSet::read).filter(|(_, at)| {
                            now.duration_since(*at).unwrap_or_default() < FALL_BACK_FOR
                        });
                        return match fallback.and_then(|(text, _)| find(&text, kid).ok()?) {
                            Some(key) => Ok(key),
                            None => Err(error),
                        };
                    }
                };
                let key = find(&text, kid)?;
                if let Some(kept) = &kept {
                    kept.write(&text);
                }
                key.ok_or_else(|| unknown(&format!("as `{url}` serves it now")))
            }
        }
    }
}

/// The key `kid` of a JWKS document; keys of other types are passed over, not errors.
fn find(text: &str, kid: &str) -> Result<Option<Jwk>, Error> {
    Ok(keys_of(text)?
        .into_iter()
        .find(|key| key.common.key_id.as_deref() == Some(kid)))
}

fn read_file(path: &Path) -> Result<String, Error> {
    let unreadable = |why: String| {
        Error::settings(format!(
            "`identity_jwks_file` `{}` cannot be read: {why}",
            path.display()
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if meta.len() > MAX_KEY_SET {
        return Err(unreadable("it is larger than 1 MiB".to_owned()));
    }
    std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))
}

/// GETs the key set, within the run's deadline.
fn fetch(settings: &Settings, url: &str, deadline: Instant) -> Result<String, Error> {
    use ureq::tls::{RootCerts, TlsConfig};
    let failed = |why: String| {
        Error::unavailable(format!(
            "cannot fetch the identity key set from `{url}`: {why}"
        ))
        .hint("check identity_jwks_url: it is the Nomad agent's /.well-known/jwks.json")
    };
    let mut tls = TlsConfig::builder();
    if let Some(ca) = settings.get(&CA_FILE) {
        let pem = std::fs::read(ca).map_err(|e| {
            Error::settings(format!(
                "`identity_ca_file` `{}` cannot be read: {e}",
                ca.display()
            ))
        })?;
        let roots: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        if roots.is_empty() {
            return Err(Error::settings(format!(
                "`identity_ca_file` `{}` holds no PEM certificate",
                ca.display()
            )));
        }
        tls = tls.root_certs(RootCerts::Specific(std::sync::Arc::new(roots)));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(failed("no time left before the deadline".to_owned()));
    }
    let agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(left))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Timeout(_) => failed("timed out (the run's deadline)".to_owned()),
        other => failed(other.to_string()),
    })?;
    if response.status() != 200 {
        return Err(failed(format!("HTTP {}", response.status().as_u16())));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_KEY_SET)
        .read_to_string()
        .map_err(|e| failed(e.to_string()))
}

/// The key set kept in the node cache's folder.
struct KeptSet {
    store: crate::cache::Store,
    name: String,
}

impl KeptSet {
    fn open(settings: &Settings, url: &str) -> Option<KeptSet> {
        let crate::cache::Cache::On(store) = crate::cache::Cache::open(settings) else {
            return None;
        };
        let digest = Sha256::digest(url.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(KeptSet {
            store,
            name: format!("identity-keys-{hex}.json"),
        })
    }

    /// The kept text and when it was fetched.
    fn read(&self) -> Option<(String, SystemTime)> {
        let (bytes, modified) = self.store.read_file(&self.name, MAX_KEY_SET)?;
        Some((String::from_utf8(bytes).ok()?, modified))
    }

    fn write(&self, text: &str) {
        self.store.write_file(&self.name, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_comes_from_sub() {
        let group = |sub, task| group_of(sub, "payments", "api", task);
        assert_eq!(
            group("global:payments:api:web:server:secrets", Some("server")),
            Some("web".to_owned())
        );
        assert_eq!(
            group("global:payments:api:web:server:secrets", Some("other")),
            None
        );
        assert_eq!(group("global:other:api:web:server:secrets", None), None);
        assert_eq!(group("global:payments:api:server:secrets", None), None);
        assert_eq!(
            group("eu:payments:api:a:b:server:secrets", Some("server")),
            Some("a:b".to_owned())
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let identity = Identity {
            namespace: "n".into(),
            job: "j".into(),
            group: None,
            task: None,
            allocation: String::new(),
            token: "eyJ-secret-token".into(),
        };
        assert!(!format!("{identity:?}").contains("eyJ-secret"));
    }
}
