//! The optional audit log: one JSON line per fetch, never a secret value.
//!
//! ```json
//! {"time":"2026-11-23T06:00:00.123Z","plugin":"file","namespace":"payments","job":"api",
//!  "path":"db.json#password","decision":"allowed","outcome":"ok","keys":1,"duration_ms":2}
//! ```
//!
//! `job` is the job as Nomad identifies it (a dispatched or periodic run's parent, see
//! [`crate::policy::job_identity`]); such a run's own `NOMAD_JOB_ID` follows as `job_instance`.
//! With a cache configured, `source` says where the answer came from: `store`, `cache` or
//! `stale-cache` (the store was failing), with `cache_age_ms`, or `shared-failure` (the failure
//! of the call another fetch made while this one waited); `cache` says why the cache could not
//! be used, if it could not.
//! `decision` is `allowed` or `denied` by the access policy, or `unchecked` when the run failed
//! before the policy could be consulted (a bad path, say); `outcome` is `ok` or the error's kind,
//! and `error` its message (messages never hold values). Each line is one `write` to a file
//! opened with `O_APPEND`, so concurrent fetches never interleave or tear lines. The file is
//! created with mode 0600 and never followed through a symlink. When `audit_required` is true
//! (the default) a fetch whose line cannot be written fails, and its result is withheld.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Error, ErrorKind, Secrets};

/// What the line of this run will say, known once the settings are read.
#[derive(Clone, Debug)]
pub(crate) struct Audit {
    pub log: PathBuf,
    pub required: bool,
    pub plugin: &'static str,
    pub namespace: String,
    /// The job as Nomad identifies it: a dispatched or periodic run's parent.
    pub job: String,
    /// `NOMAD_JOB_ID` itself, written beside `job` when it differs (a dispatched run's own ID).
    pub instance: String,
    pub path: String,
    pub decision: &'static str,
    /// Where the answer came from, when a cache is configured (`source`, `cache_age_ms`, or
    /// why the cache could not be used).
    pub cache: Option<serde_json::Value>,
}

/// The run's audit context, if the operator set `audit_log`.
pub(crate) static CURRENT: Mutex<Option<Audit>> = Mutex::new(None);

/// Records the run's decision.
pub(crate) fn decided(decision: &'static str) {
    if let Ok(mut current) = CURRENT.lock() {
        if let Some(audit) = current.as_mut() {
            audit.decision = decision;
        }
    }
}

/// Records where the answer came from (the cache's part of the line).
pub(crate) fn cached(fields: serde_json::Value) {
    if let Ok(mut current) = CURRENT.lock() {
        if let Some(audit) = current.as_mut() {
            audit.cache = Some(fields);
        }
    }
}

/// Writes the run's line, if there is an audit log; a required line that cannot be written
/// turns the outcome into an error.
pub(crate) fn finish(outcome: Result<Secrets, Error>, started: Instant) -> Result<Secrets, Error> {
    let audit = CURRENT.lock().ok().and_then(|c| c.clone());
    let Some(audit) = audit else {
        return outcome;
    };
    let written = audit.write(outcome_fields(&outcome), started.elapsed());
    match (written, audit.required) {
        (Err(e), true) => Err(Error::unavailable(format!(
            "could not write the audit log `{}`: {}",
            audit.log.display(),
            e.to_string()
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase()
        ))
        .hint("the operator requires an audit line for every fetch (`audit_required`); check the log's folder and permissions")),
        _ => outcome,
    }
}

/// Writes a line for a run that panicked (from the panic hook; never blocks on the lock).
pub(crate) fn panicked(started: Instant) {
    let audit = CURRENT.try_lock().ok().and_then(|c| c.clone());
    if let Some(audit) = audit {
        let fields = serde_json::json!({"outcome": "internal", "error": "the plugin panicked"});
        let _ = audit.write(fields, started.elapsed());
    }
}

impl Audit {
    fn write(&self, outcome: serde_json::Value, duration: Duration) -> std::io::Result<()> {
        let mut line = serde_json::json!({
            "time": rfc3339(SystemTime::now()),
            "plugin": self.plugin,
            "namespace": self.namespace,
            "job": self.job,
            "path": cut(&self.path),
            "decision": self.decision,
        });
        if let Some(line) = line.as_object_mut() {
            if self.instance != self.job {
                line.insert("job_instance".into(), self.instance.clone().into());
            }
            if let Some(serde_json::Value::Object(cache)) = &self.cache {
                line.extend(cache.clone());
            }
        }
        if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), outcome) {
            line.extend(fields);
            line.insert("duration_ms".into(), (duration.as_millis() as u64).into());
        }
        let mut text = line.to_string();
        text.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.log)?;
        // One write: O_APPEND makes it land whole at the end, whatever other fetches do.
        let written = file.write(text.as_bytes())?;
        if written != text.len() {
            return Err(std::io::Error::other("the line was written only in part"));
        }
        Ok(())
    }
}

fn outcome_fields(outcome: &Result<Secrets, Error>) -> serde_json::Value {
    match outcome {
        Ok(secrets) => serde_json::json!({"outcome": "ok", "keys": secrets.len()}),
        Err(error) => {
            serde_json::json!({"outcome": kind_name(error.kind()), "error": error.to_string()})
        }
    }
}

pub(crate) fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Usage => "usage",
        ErrorKind::InvalidPath => "invalid_path",
        ErrorKind::Settings => "settings",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Denied => "denied",
        ErrorKind::InvalidSecret => "invalid_secret",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Internal => "internal",
    }
}

/// A path as logged: at most 512 characters, so a line stays one small write.
fn cut(path: &str) -> String {
    path.chars().take(512).collect()
}

/// `2026-11-23T06:00:00.123Z` (UTC), without a date library.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let at = |secs: u64, millis: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_392_000, 999), "2026-11-23T00:00:00.999Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z");
    }
}
