//! The optional audit log: one JSON line per fetch, never a secret value.
//!
//! ```json
//! {"time":"2026-11-23T06:00:00.123Z","plugin":"file","namespace":"payments","job":"api",
//!  "path":"db.json#password","read":"db.json","decision":"allowed","outcome":"ok","keys":1,
//!  "duration_ms":2}
//! ```
//!
//! `job` is the job as Nomad identifies it (a dispatched or periodic run's parent, see
//! [`crate::policy::job_identity`]); such a run's own `NOMAD_JOB_ID` follows as `job_instance`.
//! `path` is the path as the job wrote it; `read` is what the backend really reads (its
//! normalised locator, the text the access policy matched: `%74eam-a/./db.json` is read as
//! `team-a/db.json`), present once the path could be parsed, so that lines can be searched by
//! what was read.
//! When the job proved who it is with a verified workload identity, `identity` is `verified`,
//! with the token's `group`, `task` and `allocation`.
//! With a cache configured, `source` says where the answer came from: `store`, `cache` or
//! `stale-cache` (the store was failing), with `cache_age_ms`, or `shared-failure` (the failure
//! of the call another fetch made while this one waited); `cache` says why the cache could not
//! be used, if it could not.
//! `decision` is `allowed` or `denied` by the access policy, or `unchecked` when the run failed
//! before the policy could be consulted (a bad path, say); `outcome` is `ok` or the error's kind,
//! and `error` its message (messages never hold values). Each line is one `write` to a file
//! opened with `O_APPEND`, so concurrent fetches never interleave or tear lines.
//!
//! The log is trusted as the cache folder is ([`crate::cache::trusted`]): its folder is reached
//! from `/` one step at a time without following a symlink, through folders that only root or
//! this user can change; the file is opened from that handle with `O_NOFOLLOW | O_NONBLOCK`
//! (a FIFO can never block a fetch past its deadline or SIGTERM), created with mode 0600 if
//! missing, and used only if it is then a regular file of root's or this user's, with one
//! link, that neither group nor others may write. A refused log is an audit failure: when
//! `audit_required` is true (the default) the fetch fails, naming the log and why, and its
//! result is withheld.

use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::path::{Path, PathBuf};
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
    /// The backend's normalised locator: what is really read.
    pub read: Option<String>,
    pub decision: &'static str,
    /// Where the answer came from, when a cache is configured (`source`, `cache_age_ms`, or
    /// why the cache could not be used).
    pub cache: Option<serde_json::Value>,
    /// The verified workload identity's group and task, when the job proved who it is.
    pub identity: Option<serde_json::Value>,
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

/// Records what the backend will really read (its normalised locator).
pub(crate) fn read(normalised: &str) {
    if let Ok(mut current) = CURRENT.lock() {
        if let Some(audit) = current.as_mut() {
            audit.read = Some(normalised.to_owned());
        }
    }
}

/// Records the job's verified workload identity.
pub(crate) fn verified(identity: &crate::Identity) {
    if let Ok(mut current) = CURRENT.lock() {
        if let Some(audit) = current.as_mut() {
            audit.job = identity.job.clone();
            audit.identity = Some(serde_json::json!({
                "identity": "verified",
                "group": identity.group,
                "task": identity.task,
                "allocation": identity.allocation,
            }));
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
        (Err(why), true) => Err(Error::unavailable(format!(
            "could not write the audit log `{}`: {why}",
            audit.log.display(),
        ))
        .hint("the operator requires an audit line for every fetch (`audit_required`); the log and every folder above it must be root's or this user's, writable by no one else, reached through no symlink")),
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
    fn write(&self, outcome: serde_json::Value, duration: Duration) -> Result<(), String> {
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
            if let Some(read) = &self.read {
                line.insert("read".into(), cut(read).into());
            }
            if let Some(serde_json::Value::Object(identity)) = &self.identity {
                line.extend(identity.clone());
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
        let mut file = open_log(&self.log)?;
        // One write: O_APPEND makes it land whole at the end, whatever other fetches do.
        let written = file
            .write(text.as_bytes())
            .map_err(|e| crate::cache::lower(&e))?;
        if written != text.len() {
            return Err("the line was written only in part".into());
        }
        Ok(())
    }
}

/// The log at `path`, opened for appending if it can be trusted (see the module's docs); the
/// error says why not.
fn open_log(path: &Path) -> Result<std::fs::File, String> {
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return Err("it names no file".into());
    };
    let (folder, _) = crate::cache::trusted::open_folder(folder, None)?;
    let name = CString::new(name.as_encoded_bytes()).map_err(|_| "it holds a NUL byte")?;
    // SAFETY: a valid directory descriptor and C string; the result is checked.
    let fd = unsafe {
        libc::openat(
            folder.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CREAT
                | libc::O_NONBLOCK
                | libc::O_NOFOLLOW
                | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::ELOOP) => "it is a symlink: refused".into(),
            // A FIFO without a reader (or a socket): never waited for.
            Some(libc::ENXIO) => "it is not a regular file (a FIFO or a socket): refused".into(),
            _ => crate::cache::lower(&error),
        });
    }
    // SAFETY: a descriptor just opened and owned by nothing else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let meta = crate::cache::trusted::status(&file)?;
    if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("it is not a regular file: refused".into());
    }
    crate::cache::trusted::trusted_owner(&meta).map_err(|why| format!("it {why}: refused"))?;
    if meta.st_mode & 0o022 != 0 {
        return Err(format!(
            "it has mode {:o}: group or others may write it: refused",
            meta.st_mode & 0o7777
        ));
    }
    if meta.st_nlink != 1 {
        return Err(format!(
            "it has {} hard links: refused (a link could aim the lines at another file)",
            meta.st_nlink
        ));
    }
    Ok(file)
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
