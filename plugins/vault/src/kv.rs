//! Reading a KV v1 or v2 secret.
//!
//! The mount and its version come from `sys/internal/ui/mounts/<path>` (`data.path` is the
//! mount, `data.options.version == "2"` means v2), unless the path says `?kv=1|2` (and
//! optionally `mount=`), or the operator's `kv_version` does. When that lookup is denied (narrow
//! tokens often may not read it), the first path segment is taken as a v2 mount and the errors
//! say so; on a 404 (old servers) as a v1 mount.

use nomad_secrets_protocol::{Error, ErrorKind, Secrets};
use serde_json::Value;

use crate::auth::{Auth, sealed};
use crate::http::{Answer, Vault};

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
    /// `<mount>/<path>`, as the job wrote it.
    pub locator: &'a str,
    /// `?version=N` (v2 only).
    pub version: Option<u64>,
    /// `?kv=1|2` or the operator's `kv_version`.
    pub kv: Option<u8>,
    /// `?mount=` with `kv`.
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

/// One read: the mounts lookup (unless the version is known), then the secret. `get` sends a
/// GET to a path under `/v1/`; `address` is Vault's, for messages.
pub fn attempt(
    get: &dyn Fn(&str) -> Result<Answer, Error>,
    read: &Read,
    address: &str,
) -> Result<Secrets, Retry> {
    let mount = match read.kv {
        Some(version) => Mount {
            path: read
                .mount
                .map(str::to_owned)
                .unwrap_or_else(|| first_segment(read.locator)),
            version,
            assumed: false,
        },
        None => {
            let lookup = format!("sys/internal/ui/mounts/{}", encoded(read.locator));
            let answer = get(&lookup)?;
            if answer.invalid_token() {
                return Err(Retry::InvalidToken);
            }
            detect(&answer, read.locator, address)?
        }
    };
    let rest = below(read.locator, &mount.path).unwrap_or_default();
    if rest.is_empty() {
        return Err(Error::invalid_path(format!(
            "`{}` names the mount `{}` itself, not a secret in it",
            read.locator, mount.path
        ))
        .into());
    }
    // `path` is Vault's API path as messages show it; the URL gets it percent-encoded.
    let (path, query, shown) = match mount.version {
        2 => {
            let query = read
                .version
                .map(|v| format!("?version={v}"))
                .unwrap_or_default();
            (
                format!("{}/data/{rest}", mount.path),
                query,
                format!("{}/{rest}", mount.path),
            )
        }
        _ => {
            if read.version.is_some() {
                return Err(Error::invalid_path(format!(
                    "`{}` is a KV v1 mount, which has no versions",
                    mount.path
                ))
                .hint("remove `?version=`, or use `?kv=2` if the mount is really v2")
                .into());
            }
            (
                format!("{}/{rest}", mount.path),
                String::new(),
                format!("{}/{rest}", mount.path),
            )
        }
    };
    let answer = get(&format!("{}{query}", encoded(&path)))?;
    if answer.invalid_token() {
        return Err(Retry::InvalidToken);
    }
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
                Value::Object(_) => Ok(Secrets::from_json(&data.to_string())?),
                _ => Err(Error::invalid_secret(format!(
                    "Vault's answer for `{shown}` holds no data{assumed}"
                ))
                .into()),
            }
        }
        404 => Err(not_found(&answer, &shown, read.version, &mount, assumed).into()),
        // Every token may look itself up (the `default` policy): one that may not is not a
        // token Vault knows.
        403 if get("auth/token/lookup-self").is_ok_and(|me| me.status == 403) => {
            Err(Retry::Rejected(path))
        }
        _ => Err(failure(&answer, &format!("{path}{query}"), address, assumed).into()),
    }
}

/// Reads the mounts lookup's answer.
fn detect(answer: &Answer, locator: &str, address: &str) -> Result<Mount, Error> {
    match answer.status {
        200 => {
            let data = &answer.body["data"];
            let path = data["path"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned();
            if path.is_empty() || below(locator, &path).is_none() {
                return Err(Error::unavailable(format!(
                    "Vault's mount lookup for `{locator}` gave no usable mount path"
                )));
            }
            let kind = data["type"].as_str().unwrap_or("kv");
            if kind != "kv" && kind != "generic" {
                return Err(Error::invalid_path(format!(
                    "`{path}` is a `{kind}` secrets engine, not KV"
                ))
                .hint("this plugin reads KV v1 and v2 mounts only"));
            }
            let version = match data["options"]["version"].as_str() {
                Some("2") => 2,
                _ => 1,
            };
            Ok(Mount {
                path,
                version,
                assumed: false,
            })
        }
        403 => Ok(Mount {
            path: first_segment(locator),
            version: 2,
            assumed: true,
        }),
        404 => Ok(Mount {
            path: first_segment(locator),
            version: 1,
            assumed: false,
        }),
        _ => Err(failure(
            answer,
            &format!("sys/internal/ui/mounts/{locator}"),
            address,
            "",
        )),
    }
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
            "Vault's rate limit refused `{path}` after retries: {errors}"
        ))
        .hint("many fetches at once; try again, or raise the rate-limit quota"),
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
