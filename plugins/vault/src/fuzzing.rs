//! Entry points for the fuzz targets in `fuzz/` (always compiled, so the lints see them): the plugin's
//! handling of whatever Vault answers (body parsing, mount detection, the KV read, the error
//! messages), with the answers handed over in memory instead of from a network.

use nomad_secrets_protocol::{Error, Secrets};

use crate::http::Answer;
use crate::kv::{Read, Retry, attempt};

/// One HTTP answer: status and raw body.
pub struct Canned<'a> {
    /// HTTP status.
    pub status: u16,
    /// The body as sent.
    pub body: &'a str,
}

/// What `fetch <locator>[?version=N][&kv=K][&mount=M]` gives when Vault answers the mounts
/// lookup with `lookup` and the read with `read`. Panics if the plugin asks Vault for any path
/// other than the lookup or the read of the normalised path the access policy checked.
pub fn kv_answers(
    locator: &str,
    version: Option<u64>,
    kv: Option<u8>,
    mount: Option<&str>,
    lookup: &Canned,
    read: &Canned,
) -> Result<Secrets, Error> {
    let address = "https://vault.example:8200";
    let (locator, mount) = crate::kv::resolve(locator, mount)?;
    let checked = locator.clone();
    let get = |path: &str| {
        if path != "auth/token/lookup-self" {
            assert_reads_checked(path, &checked);
        }
        let canned = match path.starts_with("sys/internal/ui/mounts/") {
            true => lookup,
            false => read,
        };
        Answer::parse(
            canned.status,
            canned.body,
            Some("application/json"),
            None,
            address,
        )
    };
    let read = Read {
        locator: &locator,
        version,
        kv: kv.or(mount.as_ref().map(|_| 2)),
        mount: mount.as_deref(),
        namespace: None,
    };
    match attempt(&get, &read, address) {
        Ok(secrets) => Ok(secrets),
        Err(Retry::Failed(error)) => Err(error),
        Err(Retry::InvalidToken | Retry::Rejected(_)) => Err(Error::denied("invalid token")),
    }
}

/// The invariant "the policy sees what is read": `url_path` (relative to `/v1/`, encoded) is
/// the mounts lookup of `checked` or a read of `checked` itself (`<mount>/data/<rest>` on v2).
fn assert_reads_checked(url_path: &str, checked: &str) {
    let path = url_path.split('?').next().unwrap_or_default();
    let decoded = decode(path);
    let lookup = decoded.strip_prefix("sys/internal/ui/mounts/");
    let read_v2 = decoded
        .match_indices("/data/")
        .any(|(i, _)| format!("{}/{}", &decoded[..i], &decoded[i + 6..]) == checked);
    let ok = lookup == Some(checked) || decoded == checked || read_v2;
    assert!(
        ok,
        "asked Vault for `{url_path}` while the policy checked `{checked}`"
    );
    assert_eq!(
        crate::kv::encoded(&decoded),
        path,
        "every byte outside the unreserved set is encoded"
    );
}

fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
