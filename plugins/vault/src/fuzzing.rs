//! Entry points for the fuzz targets in `fuzz/` (built only with `--cfg fuzzing`): the plugin's
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

/// What `fetch <locator>[?version=N]` gives when Vault answers the mounts lookup with `lookup`
/// and the read with `read`.
pub fn kv_answers(
    locator: &str,
    version: Option<u64>,
    lookup: &Canned,
    read: &Canned,
) -> Result<Secrets, Error> {
    let address = "https://vault.example:8200";
    let get = |path: &str| {
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
        locator: locator.trim_matches('/'),
        version,
        kv: None,
        mount: None,
        namespace: None,
    };
    match attempt(&get, &read, address) {
        Ok(secrets) => Ok(secrets),
        Err(Retry::Failed(error)) => Err(error),
        Err(Retry::InvalidToken) => Err(Error::denied("invalid token")),
    }
}
