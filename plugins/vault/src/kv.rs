//! Reading a KV v1 or v2 secret, and nothing else.
//!
//! **vault-kv reads KV secrets only: no other Vault endpoint is ever reachable.** Every fetch
//! first asks `sys/internal/ui/mounts/<path>` (`data.path` is the mount, `data.type` its
//! engine, `data.options.version == "2"` means v2), whatever `?kv=`, `?mount=` or the
//! operator's `kv_version` say:
//!
//! - **The lookup answers (200):** it decides. The engine must be `kv` (or `generic`, its old
//!   name); a job's `?kv=` and `?mount=` are assertions that must agree with it, and a mismatch
//!   is an invalid-path error naming what the lookup found. The operator's `kv_version` is only
//!   a default for the case below.
//! - **The lookup cannot answer** (403: Vault denies it to a token with no capability on the
//!   mount, or a proxy blocks it; 404: Vault before 0.10): `?mount=` (else the first segment)
//!   and `?kv=` (else `kv_version`, else v2 on a 403 and v1 on a 404) decide, but nothing is
//!   known about the engine there, so the path is held to [`unverified`]'s rules: no segment of
//!   the mount may be one of Vault's own paths ([`SYSTEM_PATHS`]) or a KV v2 API word
//!   ([`KV2_API`]), and a v1 read may hold neither anywhere below the mount. A path prefix can
//!   name a namespace (`team/sys/mounts` is namespace `team`'s `sys/mounts`), so the whole
//!   path is checked, not only its first segment.
//!
//! A v2 read's rest is a secret's name and may start with anything (`data/x` is the secret
//! `data/x`, read at `<mount>/data/data/x`): the plugin inserts `data/` itself, so the rest can
//! never reach another endpoint. The URL is `<mount>/data/<rest>` (v2) or `<mount>/<rest>` (v1),
//! built from the normalised locator that the access policy checked ([`normalise`]), every
//! segment percent-encoded ([`encoded`]) so that `?`, `#` or `%2F` in a name stay in the name.

use nomad_secrets_protocol::{Error, ErrorKind, Secrets};
use serde_json::Value;

use crate::auth::{Auth, sealed};
use crate::http::{Answer, Vault};

/// Vault's own top-level paths, never a KV mount, never (a segment of) an unverified mount, nor
/// anywhere in an unverified v1 path: the system backend, auth methods (tokens, logins), the
/// identity store, the per-token cubbyhole, and the audit devices' reserved path.
pub const SYSTEM_PATHS: &[&str] = &["sys", "auth", "identity", "cubbyhole", "audit"];

/// The words of KV v2's API below its mount (`<mount>/data/<name>`, `metadata/`, ...): an
/// unverified v1 read may not hold them below the mount, so that it can never address a v2
/// secret, its metadata or its versions by their API path.
pub const KV2_API: &[&str] = &[
    "data", "metadata", "delete", "undelete", "destroy", "config", "subkeys",
];

/// Which mount, which version, and how that was learnt.
pub struct Mount {
    /// `secret`, `team/kv` (no trailing slash).
    pub path: String,
    /// 1 or 2.
    pub version: u8,
    /// Set when the version was assumed because the mounts lookup was denied.
    pub assumed: bool,
}

/// What to read.
pub struct Read<'a> {
    /// `<mount>/<path>`, normalised: what the access policy checked.
    pub locator: &'a str,
    /// `?version=N` (v2 only).
    pub version: Option<u64>,
    /// The job's `?kv=1|2`: an assertion when the mounts lookup answers.
    pub kv: Option<u8>,
    /// The operator's `kv_version`: the version when the mounts lookup cannot answer.
    pub default_kv: Option<u8>,
    /// The job's `?mount=`, normalised: an assertion when the mounts lookup answers.
    pub mount: Option<&'a str>,
    /// The namespace reads go to.
    pub namespace: Option<&'a str>,
}

/// Reads the secret, renewing the token once on "invalid token".
pub fn read(vault: &Vault, auth: &mut Auth, read: &Read) -> Result<Secrets, Error> {
    let mut renewed = false;
    loop {
        let token = auth.token.expose();
        let get = |path: &str| vault.call("GET", path, Some(token), read.namespace, None);
        match attempt(&get, read, &vault.address) {
            Err(Retry::InvalidToken) if !renewed && auth.renew(vault, read.namespace)? => {
                renewed = true
            }
            Err(Retry::InvalidToken) => {
                return Err(Error::denied(
                    "Vault says the token is invalid (expired, revoked or unknown)",
                )
                .hint("pass a fresh token, or check the operator's token file or AppRole"));
            }
            Err(Retry::Rejected(_)) if !renewed && auth.renew(vault, read.namespace)? => {
                renewed = true
            }
            Err(Retry::Rejected(path)) => {
                return Err(Error::denied(format!(
                    "Vault denied reading `{path}`, and the token may not even look itself up: it is most likely expired, revoked or unknown (or it lacks the `default` policy)"
                ))
                .hint("pass a fresh token, or check the operator's token file or AppRole"));
            }
            Err(Retry::Failed(error)) => return Err(error),
            Ok(secrets) => return Ok(secrets),
        }
    }
}

/// Why an attempt did not give secrets.
pub enum Retry {
    /// Vault says the token is invalid: a fresh login may help.
    InvalidToken,
    /// A plain "permission denied" for the read and for `auth/token/lookup-self` too: servers
    /// (OpenBao) that never say "invalid token" answer a revoked or unknown token so. The path.
    Rejected(String),
    /// Anything else, final.
    Failed(Error),
}

impl From<Error> for Retry {
    fn from(error: Error) -> Self {
        Retry::Failed(error)
    }
}

/// One read: the mounts lookup, then the secret. `get` sends a GET to a path under `/v1/`;
/// `address` is Vault's, for messages.
pub fn attempt(
    get: &dyn Fn(&str) -> Result<Answer, Error>,
    read: &Read,
    address: &str,
) -> Result<Secrets, Retry> {
    let lookup = format!("sys/internal/ui/mounts/{}", encoded(read.locator));
    let answer = get(&lookup)?;
    if answer.invalid_token() {
        return Err(Retry::InvalidToken);
    }
    confirm_when_throttled(get, &answer)?;
    let mount = detect(&answer, read, address)?;
    let rest = below(read.locator, &mount.path).unwrap_or_default();
    if rest.is_empty() {
        return Err(Error::invalid_path(format!(
            "`{}` names the mount `{}` itself, not a secret in it",
            read.locator, mount.path
        ))
        .into());
    }
    if mount.version != 2 && read.version.is_some() {
        return Err(Error::invalid_path(format!(
            "`{}` is a KV v1 mount, which has no versions",
            mount.path
        ))
        .hint("remove `?version=`, or use `?kv=2` if the mount is really v2")
        .into());
    }
    // `path` is Vault's API path as messages show it; the URL gets it percent-encoded.
    let path = api_path(read.locator, &mount)?;
    let shown = read.locator;
    let query = match (mount.version, read.version) {
        (2, Some(v)) => format!("?version={v}"),
        _ => String::new(),
    };
    let answer = get(&format!("{}{query}", encoded(&path)))?;
    if answer.invalid_token() {
        return Err(Retry::InvalidToken);
    }
    confirm_when_throttled(get, &answer)?;
    let assumed = match mount.assumed {
        true => {
            " (KV v2 was assumed: the token may not read sys/internal/ui/mounts; add `?kv=1` for a v1 mount)"
        }
        false => "",
    };
    match answer.status {
        200 => {
            let data = match mount.version {
                2 => &answer.body["data"]["data"],
                _ => &answer.body["data"],
            };
            match data {
                Value::Object(_) => Ok(Secrets::from_json(raw_data(&answer.text, mount.version))?),
                _ => Err(Error::invalid_secret(format!(
                    "Vault's answer for `{shown}` holds no data{assumed}"
                ))
                .into()),
            }
        }
        404 => Err(not_found(&answer, shown, read.version, &mount, assumed).into()),
        // Every token may look itself up (the `default` policy): one that may not is not a
        // token Vault knows.
        403 if get("auth/token/lookup-self").is_ok_and(|me| me.status == 403) => {
            Err(Retry::Rejected(path))
        }
        _ => Err(failure(&answer, &format!("{path}{query}"), address, assumed).into()),
    }
}

/// A 429 says nothing of the token: Vault applies rate-limit quotas before it checks one, and
/// anyone who can reach Vault (the job's own task) can exhaust a quota. Throttling is an
/// outage only for a token Vault still knows (`auth/token/lookup-self`, which every token may
/// call); otherwise it is a denial, so that the node-local cache never serves a stale value to
/// a revoked credential.
fn confirm_when_throttled(
    get: &dyn Fn(&str) -> Result<Answer, Error>,
    answer: &Answer,
) -> Result<(), Error> {
    if answer.status != 429 {
        return Ok(());
    }
    match get("auth/token/lookup-self").map(|me| me.status) {
        Ok(200) => Ok(()),
        confirmed => Err(Error::denied(format!(
            "Vault is throttling (HTTP 429) and would not confirm the token ({}): no value is \
             served for a credential that cannot be confirmed",
            match confirmed {
                Ok(status) => format!("lookup-self answered HTTP {status}"),
                Err(_) => "lookup-self failed".to_owned(),
            }
        ))
        .hint("the operator's `cache_ttl` makes a node ask once per job and secret, and a longer `deadline` leaves more room to wait; check that the token is still valid")),
    }
}

/// The mount and version of `read`: the mounts lookup's answer when it has one (the job's
/// `?kv=` and `?mount=` must agree with it), else what the job or the operator says, held to
/// [`unverified`]'s rules.
fn detect(answer: &Answer, read: &Read, address: &str) -> Result<Mount, Error> {
    let locator = read.locator;
    match answer.status {
        200 => {
            let data = &answer.body["data"];
            let path = data["path"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned();
            let usable = !path.is_empty() && below(locator, &path).is_some();
            match data["type"].as_str() {
                Some("kv" | "generic") => {}
                Some(kind) if usable => {
                    return Err(Error::invalid_path(format!(
                        "`{path}` is a `{kind}` secrets engine, not KV"
                    ))
                    .hint("this plugin reads KV v1 and v2 mounts only"));
                }
                Some(kind) => {
                    return Err(Error::invalid_path(format!(
                        "`{locator}` is not in a KV mount: Vault's mount lookup names a `{kind}` engine"
                    ))
                    .hint("this plugin reads KV v1 and v2 mounts only"));
                }
                None => {
                    return Err(Error::unavailable(format!(
                        "Vault's mount lookup for `{locator}` names no engine type"
                    )));
                }
            }
            if !usable {
                return Err(Error::unavailable(format!(
                    "Vault's mount lookup for `{locator}` gave no usable mount path"
                )));
            }
            let version = match data["options"]["version"].as_str() {
                Some("2") => 2,
                _ => 1,
            };
            if let Some(said) = read.kv.filter(|said| *said != version) {
                return Err(Error::invalid_path(format!(
                    "`?kv={said}` says KV v{said}, but Vault's mount lookup found `{path}` to be a KV v{version} mount"
                ))
                .hint(match version {
                    2 => "remove `?kv=`: the version is detected; write the secret's name below the mount (the plugin adds `data/`)",
                    _ => "remove `?kv=`: the version is detected",
                }));
            }
            if let Some(said) = read.mount.filter(|said| *said != path) {
                return Err(Error::invalid_path(format!(
                    "`?mount={said}` does not agree with Vault's mount lookup, which found the mount `{path}`"
                ))
                .hint("remove `?mount=`: the mount is detected"));
            }
            Ok(Mount {
                path,
                version,
                assumed: false,
            })
        }
        status @ (403 | 404) => {
            let assumed = status == 403 && read.kv.is_none() && read.default_kv.is_none();
            let version = read
                .kv
                .or(read.default_kv)
                .unwrap_or(if status == 403 { 2 } else { 1 });
            let path = read
                .mount
                .map(str::to_owned)
                .unwrap_or_else(|| first_segment(locator));
            let mount = Mount {
                path,
                version,
                assumed,
            };
            unverified(locator, &mount, status)?;
            Ok(mount)
        }
        _ => Err(failure(
            answer,
            &format!("sys/internal/ui/mounts/{locator}"),
            address,
            "",
        )),
    }
}

/// The rules for a mount and version that the mounts lookup did not confirm (it answered
/// `status`, 403 or 404): no segment of the mount is one of [`SYSTEM_PATHS`] or [`KV2_API`],
/// and for v1 no segment below it either. Vault routes a leading run of segments that name
/// namespaces to those namespaces, so any segment could begin Vault's own paths.
pub fn unverified(locator: &str, mount: &Mount, status: u16) -> Result<(), Error> {
    let why = match status {
        404 => "Vault's mount lookup is not served here (HTTP 404)",
        _ => "Vault denied the mount lookup (HTTP 403)",
    };
    let hint = match status {
        404 => "this Vault cannot say what is mounted there: fix the path",
        _ => {
            "the mount could not be checked: give the token a capability on the mount (Vault then answers sys/internal/ui/mounts), or fix the path"
        }
    };
    let rest = below(locator, &mount.path).unwrap_or_default();
    let rest: Vec<&str> = match mount.version {
        2 => Vec::new(),
        _ => rest.split('/').collect(),
    };
    for segment in mount.path.split('/').chain(rest.iter().copied()) {
        if SYSTEM_PATHS.contains(&segment) {
            return Err(Error::invalid_path(format!(
                "`{locator}` would be read under `{segment}/`, one of Vault's own paths ({}), and {why}: vault-kv reads KV secrets only",
                SYSTEM_PATHS.join(", ")
            ))
            .hint(hint));
        }
    }
    let words = mount.path.split('/').chain(rest.iter().copied());
    for segment in words {
        if KV2_API.contains(&segment) {
            return Err(Error::invalid_path(format!(
                "`{locator}` read as KV v{} at the mount `{}` would address `{segment}/`, a KV v2 API path, and {why}: a v2 secret is named without it",
                mount.version, mount.path
            ))
            .hint("for a v2 secret, write `<mount>/<name>` (the plugin adds `data/`) without `?kv=1`"));
        }
    }
    Ok(())
}

/// Vault's API path for reading `locator` from `mount`: `<mount>/data/<rest>` (v2) or
/// `<mount>/<rest>` (v1), where `<mount>/<rest>` is exactly `locator`, the normalised path the
/// access policy checked. Refused, never sent, if it were anything else.
pub fn api_path(locator: &str, mount: &Mount) -> Result<String, Error> {
    let rest = below(locator, &mount.path)
        .filter(|rest| !rest.is_empty())
        .ok_or_else(|| {
            Error::invalid_path(format!(
                "`{locator}` is not below the mount `{}`",
                mount.path
            ))
        })?;
    let path = match mount.version {
        2 => format!("{}/data/{rest}", mount.path),
        _ => format!("{}/{rest}", mount.path),
    };
    let checked = normalise(locator, "path").is_ok_and(|normal| normal == locator);
    if !checked {
        return Err(Error::invalid_path(format!(
            "`{locator}` is not a normalised Vault path"
        )));
    }
    Ok(path)
}

/// What `locator` names beneath `mount`, when `mount` is a whole-segment prefix of it:
/// `secret/db` is beneath `secret`, never beneath `sec`. `Some("")` is the mount itself.
pub fn below<'a>(locator: &'a str, mount: &str) -> Option<&'a str> {
    match locator.strip_prefix(mount)? {
        "" => Some(""),
        rest => rest.strip_prefix('/'),
    }
}

/// `path` for a URL: each segment percent-encoded (all but RFC 3986's unreserved characters),
/// so `?`, `#`, `%` and spaces in a secret's name stay part of its name.
pub fn encoded(path: &str) -> String {
    let mut url = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                url.push(byte as char)
            }
            _ => url.push_str(&format!("%{byte:02X}")),
        }
    }
    url
}

/// The path Vault will read for a job's `<mount>/<path>`: `.` and empty segments dropped, `..`
/// refused. Vault cleans paths itself and answers a redirect to the cleaned one, so a path
/// sent as written could name another secret than the one the access policy saw.
pub fn normalise(locator: &str, what: &str) -> Result<String, Error> {
    let mut segments = Vec::new();
    for segment in locator.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid_path(format!(
                    "the {what} has a `..` segment: Vault paths cannot step up a level"
                ))
                .hint("write the path from the mount down, without `..`"));
            }
            segment => segments.push(segment),
        }
    }
    if segments.is_empty() {
        return Err(Error::invalid_path(format!("the {what} is empty"))
            .hint("write <mount>/<path>, like secret/db"));
    }
    Ok(segments.join("/"))
}

/// The normalised path and `?mount=` of a fetch: the path the access policy checks, and a mount
/// that is its first whole segments.
pub fn resolve(locator: &str, mount: Option<&str>) -> Result<(String, Option<String>), Error> {
    let locator = normalise(locator, "path")?;
    let Some(mount) = mount else {
        return Ok((locator, None));
    };
    let mount = normalise(mount, "`mount`")?;
    if below(&locator, &mount).is_none() {
        return Err(Error::invalid_path(format!(
            "the path does not start with the mount `{mount}`"
        ))
        .hint("the mount is the path's first whole segments, like `team/kv` of `team/kv/db`"));
    }
    Ok((locator, Some(mount)))
}

fn first_segment(locator: &str) -> String {
    locator.split('/').next().unwrap_or_default().to_owned()
}

fn not_found(
    answer: &Answer,
    shown: &str,
    version: Option<u64>,
    mount: &Mount,
    assumed: &str,
) -> Error {
    let errors = answer.errors();
    if errors.contains("no handler for route") {
        return Error::new(
            ErrorKind::Settings,
            format!("no secrets engine is mounted at `{}`{assumed}", mount.path),
        )
        .hint("check the mount in the secret's path (the first segments, such as `secret/`)");
    }
    let metadata = &answer.body["data"]["metadata"];
    if metadata.is_object() {
        let which = metadata["version"]
            .as_u64()
            .map(|v| format!("version {v} of "))
            .unwrap_or_default();
        if metadata["destroyed"].as_bool() == Some(true) {
            return Error::not_found(format!("{which}secret `{shown}` was destroyed"))
                .hint("its data is gone for good; read another version with `?version=N`");
        }
        if let Some(time) = metadata["deletion_time"].as_str().filter(|t| !t.is_empty()) {
            return Error::not_found(format!("{which}secret `{shown}` was deleted at {time}"))
                .hint(
                    "`vault kv undelete` can restore it, or read another version with `?version=N`",
                );
        }
    }
    let warnings = answer.body["warnings"].to_string();
    if warnings.contains("Invalid path for a versioned K/V") {
        return Error::invalid_path(format!(
            "`{shown}` is read as KV v1, but `{}` is a versioned (v2) mount",
            mount.path
        ))
        .hint("remove `?kv=1`, or use `?kv=2`");
    }
    match version {
        Some(v) => Error::not_found(format!("no version {v} of secret `{shown}`{assumed}")),
        None => Error::not_found(format!("no secret `{shown}`{assumed}"))
            .hint("check the path; `vault kv list` shows what exists"),
    }
}

fn failure(answer: &Answer, path: &str, address: &str, assumed: &str) -> Error {
    let errors = answer.errors();
    match answer.status {
        403 => Error::denied(format!("Vault denied reading `{path}`: {errors}{assumed}"))
            .hint("the token's policy needs `read` on that path"),
        503 if errors.contains("sealed") => sealed(address),
        400 => Error::invalid_path(format!("Vault refused the request for `{path}`: {errors}")),
        429 => Error::unavailable(format!(
            "Vault is throttling: its rate limit still refused `{path}` when the run's deadline \
             left no room to wait again: {errors}"
        ))
        .hint(
            "the operator's `cache_ttl` makes a node ask once per job and secret; a longer \
             `deadline` (Nomad 2.x allows 60 s) leaves more room to wait; or raise the \
             rate-limit quota",
        ),
        301 | 302 | 303 | 307 | 308 => Error::unavailable(format!(
            "Vault (or what answers at `{address}`) redirected the read of `{path}` to another path, which is never followed: the access policy checked this one"
        ))
        .hint("check that `address` names Vault itself, not a proxy that rewrites paths"),
        status => Error::unavailable(format!(
            "Vault answered HTTP {status} for `{path}`: {errors}"
        ))
        .hint("try again later; if it persists, check Vault's logs"),
    }
}

/// The secret's data as Vault wrote it (`.data.data` on v2, `.data` on v1), so the shared
/// policy converts each field from its own text (a parsed number would be re-spelled: `1E5` as
/// `1e+5`). `text` is an answer whose data was checked to be an object.
fn raw_data(text: &str, version: u8) -> &str {
    let outer = data_field(text);
    match version {
        2 => outer.and_then(data_field),
        _ => outer,
    }
    .unwrap_or("null")
}

/// The text of the `data` field of the JSON object `text`, as written.
fn data_field(text: &str) -> Option<&str> {
    let fields: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(text).ok()?;
    fields.get("data").map(|raw| raw.get())
}

#[cfg(test)]
mod tests {

    #[test]
    fn vault_numbers_as_written() {
        let v2 =
            r#"{"request_id":"x","data":{"data":{"n":1E5,"p":1.50,"o":{"a": 2E1}},"metadata":{}}}"#;
        let secrets = Secrets::from_json(raw_data(v2, 2)).unwrap();
        assert_eq!(secrets.get("n").unwrap().expose(), "1E5");
        assert_eq!(secrets.get("p").unwrap().expose(), "1.50");
        assert_eq!(secrets.get("o").unwrap().expose(), r#"{"a":2E1}"#);
        let v1 = r#"{"data":{"n":-0.0}}"#;
        let secrets = Secrets::from_json(raw_data(v1, 1)).unwrap();
        assert_eq!(secrets.get("n").unwrap().expose(), "-0.0");
    }

    use std::cell::RefCell;

    use super::*;

    #[test]
    fn throttling_is_an_outage_only_for_a_token_vault_still_knows() {
        let throttled = Answer::parse(
            429,
            r#"{"errors":["rate limit quota exceeded"]}"#,
            None,
            None,
            "x",
        )
        .unwrap();
        for (me, outage) in [(200, true), (403, false), (429, false)] {
            let get = |path: &str| {
                assert_eq!(path, "auth/token/lookup-self");
                Answer::parse(me, "{}", None, None, "x")
            };
            let result = confirm_when_throttled(&get, &throttled);
            assert_eq!(result.is_ok(), outage, "lookup-self {me}");
            if let Err(error) = result {
                assert_eq!(error.kind(), ErrorKind::Denied, "never stale-served");
            }
        }
        let fine = Answer::parse(200, "{}", None, None, "x").unwrap();
        let never = |_: &str| -> Result<Answer, Error> { panic!("no lookup without a 429") };
        assert!(confirm_when_throttled(&never, &fine).is_ok());
    }

    const V2: &str = r#"{"data":{"type":"kv","path":"secret/","options":{"version":"2"}}}"#;
    const V1: &str = r#"{"data":{"type":"kv","path":"kv1/","options":{"version":"1"}}}"#;
    const DENIED: &str = r#"{"errors":["preflight capability check returned 403"]}"#;

    /// What `attempt` asks Vault (paths under `/v1/`) and gives, for `raw` (`locator`, `?kv=`,
    /// `?mount=`) when the mounts lookup answers `lookup` and every read answers a secret.
    fn run(
        locator: &str,
        kv: Option<u8>,
        mount: Option<&str>,
        lookup: (u16, &str),
    ) -> (Vec<String>, Result<(), String>) {
        let (locator, mount) = resolve(locator, mount).unwrap();
        let sent = RefCell::new(Vec::new());
        let get = |path: &str| {
            sent.borrow_mut().push(path.to_owned());
            let (status, body) = match path.starts_with("sys/internal/ui/mounts/") {
                true => lookup,
                false => (200, r#"{"data":{"data":{"k":"v"},"k":"v"}}"#),
            };
            Answer::parse(status, body, None, None, "http://vault")
        };
        let read = Read {
            locator: &locator,
            version: None,
            kv,
            default_kv: None,
            mount: mount.as_deref(),
            namespace: None,
        };
        let outcome = match attempt(&get, &read, "http://vault") {
            Ok(_) => Ok(()),
            Err(Retry::Failed(error)) => Err(error.to_string()),
            Err(_) => Err("retry".into()),
        };
        (sent.into_inner(), outcome)
    }

    fn reads(sent: &[String]) -> Vec<&str> {
        sent.iter()
            .map(String::as_str)
            .filter(|p| !p.starts_with("sys/internal/ui/mounts/"))
            .collect()
    }

    #[test]
    fn the_lookup_always_runs_and_decides() {
        let (sent, outcome) = run("secret/db", Some(2), Some("secret"), (200, V2));
        assert_eq!(sent, ["sys/internal/ui/mounts/secret/db", "secret/data/db"]);
        assert!(outcome.is_ok());
        let (sent, outcome) = run("kv1/data/x", None, None, (200, V1));
        assert_eq!(
            reads(&sent),
            ["kv1/data/x"],
            "a verified v1 mount's secret `data/x`"
        );
        assert!(outcome.is_ok());
    }

    #[test]
    fn kv_and_mount_that_disagree_with_the_lookup_send_nothing_more() {
        for (locator, kv, mount) in [
            ("secret/data/top", Some(1), None),
            ("secret/metadata/top", Some(1), None),
            ("secret/db", None, Some("secret/db")),
        ] {
            let (sent, outcome) = run(locator, kv, mount, (200, V2));
            assert!(reads(&sent).is_empty(), "{locator}: {sent:?}");
            assert!(outcome.unwrap_err().contains("mount lookup"), "{locator}");
        }
    }

    #[test]
    fn engines_that_are_not_kv_are_never_read() {
        for (locator, body) in [
            (
                "auth/token/lookup-self",
                r#"{"data":{"type":"token","path":"token/"}}"#,
            ),
            ("sys/mounts", r#"{"data":{"type":"system","path":"sys/"}}"#),
            (
                "cubbyhole/x",
                r#"{"data":{"type":"cubbyhole","path":"cubbyhole/"}}"#,
            ),
            ("secret/x", r#"{"data":{"path":"secret/"}}"#),
        ] {
            for kv in [None, Some(1), Some(2)] {
                let (sent, outcome) = run(locator, kv, None, (200, body));
                assert!(reads(&sent).is_empty(), "{locator}: {sent:?}");
                assert!(outcome.is_err());
            }
        }
    }

    #[test]
    fn unverified_reads_never_reach_system_paths_or_the_v2_api() {
        let refused = [
            ("auth/token/lookup-self", Some(1), None),
            ("auth/token/lookup-self", Some(2), Some("auth")),
            ("auth/token/lookup-self", Some(1), Some("auth/token")),
            ("sys/mounts", Some(1), None),
            ("cubbyhole/x", Some(1), None),
            ("identity/entity/id/x", None, None),
            ("team/sys/mounts", Some(1), None),
            ("team/auth/token/lookup-self", Some(1), None),
            ("team/sys/x", Some(2), Some("team/sys")),
            ("secret/data/top", Some(1), None),
            ("secret/metadata/top", Some(1), None),
            ("secret/data/top", Some(1), Some("secret/data")),
            ("secret/metadata/top", Some(2), Some("secret/metadata")),
            ("team/secret/data/db", Some(1), None),
        ];
        for status in [403, 404] {
            for (locator, kv, mount) in refused {
                let (sent, outcome) = run(locator, kv, mount, (status, DENIED));
                assert!(
                    reads(&sent).is_empty(),
                    "{locator} {kv:?} {mount:?}: {sent:?}"
                );
                assert!(outcome.is_err());
            }
        }
    }

    #[test]
    fn unverified_reads_of_kv_secrets_still_work() {
        let (sent, outcome) = run("kv1/app", Some(1), None, (403, DENIED));
        assert_eq!(reads(&sent), ["kv1/app"]);
        assert!(outcome.is_ok());
        let (sent, _) = run("secret/db", None, None, (403, DENIED));
        assert_eq!(reads(&sent), ["secret/data/db"]);
        let (sent, _) = run("team/kv/data/x", Some(2), Some("team/kv"), (403, DENIED));
        assert_eq!(
            reads(&sent),
            ["team/kv/data/data/x"],
            "a v2 name may start with `data`"
        );
        let (sent, _) = run("old/app", None, None, (404, ""));
        assert_eq!(reads(&sent), ["old/app"]);
    }

    #[test]
    fn what_is_sent_is_the_checked_path_encoded() {
        let (sent, _) = run("secret/a?b#c%2Fd e", None, None, (200, V2));
        assert_eq!(
            sent,
            [
                "sys/internal/ui/mounts/secret/a%3Fb%23c%252Fd%20e",
                "secret/data/a%3Fb%23c%252Fd%20e"
            ]
        );
        let mount = Mount {
            path: "secret".into(),
            version: 2,
            assumed: false,
        };
        assert!(api_path("secret/../x", &mount).is_err());
        assert!(api_path("secret", &mount).is_err());
        assert_eq!(api_path("secret/a/b", &mount).unwrap(), "secret/data/a/b");
    }
}
