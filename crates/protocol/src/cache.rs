//! The node-local cache: one call to the store per secret on a mass start, the last good value
//! while the store is down. Off unless the operator sets `cache_ttl`.
//!
//! - **What is shared.** An entry's key is the plugin, its settings file (path and content), the
//!   run's namespace and job (as Nomad identifies it), the normalised path and its options, and
//!   a digest of every variable the job passed (its own credentials, region, role...). Two jobs,
//!   or one job with two sets of credentials, never share an entry. The access policy is
//!   checked before the cache is consulted.
//! - **What is kept.** Successes only. A denial, a not-found or a bad path is never cached and
//!   never answered from the cache: when the store answers so, that is the answer.
//! - **Stale values.** When the store fails in a way that says nothing about the caller's right
//!   to the secret (unreachable, 5xx, throttled, no answer in time: [`ErrorKind::Unavailable`]
//!   and [`ErrorKind::Timeout`]), the last good value is served if it is at most
//!   `cache_max_stale` old. A store call that would run past the deadline is given up in time
//!   for that.
//! - **Single flight.** A lock file per key (`flock`): concurrent fetches of one key wait for the
//!   one that calls the store, then read its entry; when that call fails, each of them gets the
//!   same error (from a failure record written after they started waiting).
//! - **Where.** `cache_dir` (default `/run/nomad-secrets/cache`) must be on a memory-backed
//!   filesystem (tmpfs or ramfs: gone at reboot, never on a disk but for swap), a directory (not
//!   a symlink) owned by this user with no group or world access; otherwise there is no cache
//!   (fetches go to the store) and `check` says why. Files are opened without following
//!   symlinks; an entry that is not a regular file of this user, mode 0600, of this format and
//!   this key is a miss, never a crash.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::settings::{CACHE_DIR, CACHE_MAX_STALE, CACHE_TTL};
use crate::{Error, ErrorKind, Secret, Secrets, Settings};

/// The cache folder when the operator names none.
pub(crate) const DEFAULT_DIR: &str = "/run/nomad-secrets/cache";
/// The first line of every entry: the format and its version.
const MAGIC: &str = "nomad-secrets-cache 1";
/// Entries larger than this are not ours.
const MAX_ENTRY: u64 = 4 << 20;
/// Kept back before the deadline when a stale value could be served instead.
const STALE_MARGIN: Duration = Duration::from_millis(500);

/// The cache as configured for this run.
pub(crate) enum Cache {
    /// `cache_ttl` is not set.
    Off,
    /// Configured, but the folder cannot be used safely: why.
    Unavailable(String),
    /// In use.
    On(Store),
}

/// A usable cache folder and its limits.
pub(crate) struct Store {
    dir: PathBuf,
    ttl: Duration,
    max_stale: Duration,
}

/// Where a fetch's answer came from, for the audit line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// The store was called.
    Store,
    /// A fresh entry.
    Cache { age: Duration },
    /// A stale entry, because the store failed.
    Stale { age: Duration },
    /// The failure of the call another fetch made while this one waited.
    SharedFailure,
}

/// The parts of a cache key.
pub(crate) struct KeyParts<'a> {
    pub plugin: &'a str,
    pub settings: &'a Settings,
    pub namespace: &'a str,
    pub job: &'a str,
    pub normalised: &'a str,
    pub options: Vec<(&'a str, &'a str)>,
    pub env: &'a std::collections::HashMap<OsString, OsString>,
}

/// An entry's key: a SHA-256 digest of its parts.
pub(crate) struct Key(String);

impl Key {
    pub(crate) fn new(parts: &KeyParts) -> Key {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(parts.plugin.as_bytes());
        field(parts.settings.file().as_os_str().as_encoded_bytes());
        field(&std::fs::read(parts.settings.file()).unwrap_or_default());
        field(parts.namespace.as_bytes());
        field(parts.job.as_bytes());
        field(parts.normalised.as_bytes());
        let mut options = parts.options.clone();
        options.sort_unstable();
        for (name, value) in options {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        let mut env: Vec<(&OsString, &OsString)> = parts
            .env
            .iter()
            .filter(|(name, _)| *name != "NOMAD_JOB_ID" && *name != "NOMAD_NAMESPACE")
            .collect();
        env.sort_unstable();
        for (name, value) in env {
            field(name.as_encoded_bytes());
            field(value.as_encoded_bytes());
        }
        Key(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl Cache {
    /// The cache of `settings`, creating its folder if needed.
    pub(crate) fn open(settings: &Settings) -> Cache {
        let Some(ttl) = settings.get(&CACHE_TTL) else {
            return Cache::Off;
        };
        let dir = settings
            .get(&CACHE_DIR)
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        match safe_dir(&dir) {
            Ok(()) => Cache::On(Store {
                dir,
                ttl,
                max_stale: settings.get(&CACHE_MAX_STALE).unwrap_or_default(),
            }),
            Err(why) => Cache::Unavailable(format!("`{}` {why}", dir.display())),
        }
    }

    /// One line for `check`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Cache::Off => "off (no `cache_ttl`)".to_owned(),
            Cache::Unavailable(why) => {
                format!("UNAVAILABLE, fetches go to the store: {why}")
            }
            Cache::On(store) => format!(
                "ttl {}s, stale values up to {}s while the store fails; entries in `{}` (memory-backed, this user's only)",
                store.ttl.as_secs(),
                store.max_stale.as_secs(),
                store.dir.display()
            ),
        }
    }
}

/// Why `dir` cannot hold entries, if it cannot: it is created (mode 0700) if missing, never
/// followed through a symlink, and must be memory-backed and this user's alone.
fn safe_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| format!("cannot be created: {}", lower(&e)))?;
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot be created: {}", lower(&e))),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| lower(&e))?;
    if meta.file_type().is_symlink() {
        return Err("is a symlink: refused".into());
    }
    if !meta.is_dir() {
        return Err("is not a folder".into());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "is owned by uid {}, not this user ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "has mode {:o}: group or others may enter it (it must be 0700)",
            meta.mode() & 0o777
        ));
    }
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "holds a NUL byte".to_owned())?;
    // SAFETY: a valid C string and a zeroed statfs the call fills.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err("cannot be examined (statfs failed)".into());
    }
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6;
    let kind = stat.f_type as i64;
    if kind != TMPFS && kind != RAMFS {
        return Err(format!(
            "is not on a memory-backed filesystem (tmpfs or ramfs; type {kind:#x}): secrets would reach a disk"
        ));
    }
    Ok(())
}

fn lower(error: &std::io::Error) -> String {
    error
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// What an entry holds.
enum Record {
    Good(Secrets),
    Failed(ErrorKind, String),
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Store {
    fn file(&self, key: &Key, kind: &str) -> PathBuf {
        self.dir.join(format!("{}.{kind}", key.0))
    }

    /// The record in `<key>.<kind>`, and when it was written; `None` for anything that is not
    /// this user's own, well-formed record of this key.
    fn read(&self, key: &Key, kind: &str) -> Option<(u128, Record)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(self.file(key, kind))
            .ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 || meta.len() > MAX_ENTRY
        {
            return None;
        }
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        let mut lines = text.splitn(5, '\n');
        if lines.next()? != MAGIC || lines.next()? != key.0 {
            return None;
        }
        let written: u128 = lines.next()?.parse().ok()?;
        let what = lines.next()?;
        let body = lines.next()?;
        let record = match what {
            "ok" => {
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(body).ok()?;
                let mut secrets = Secrets::new();
                for (name, value) in map {
                    secrets.insert(name, Secret::new(value)).ok()?;
                }
                Record::Good(secrets)
            }
            failed => Record::Failed(kind_from(failed.strip_prefix("failed ")?)?, body.to_owned()),
        };
        Some((written, record))
    }

    /// Writes `<key>.<kind>` whole (a new file renamed into place), mode 0600.
    fn write(&self, key: &Key, kind: &str, record: &Record) {
        let (what, body) = match record {
            Record::Good(secrets) => {
                let map: std::collections::BTreeMap<&str, &str> =
                    secrets.iter().map(|(k, v)| (k, v.expose())).collect();
                (
                    "ok".to_owned(),
                    serde_json::to_string(&map).unwrap_or_default(),
                )
            }
            Record::Failed(kind, message) => {
                (format!("failed {}", kind_name(*kind)), message.clone())
            }
        };
        let text = format!("{MAGIC}\n{}\n{}\n{what}\n{body}", key.0, now_ms());
        let temporary = self
            .dir
            .join(format!(".{}.{}.{kind}", key.0, std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temporary)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        match written {
            Ok(()) => {
                let _ = std::fs::rename(&temporary, self.file(key, kind));
            }
            Err(_) => {
                let _ = std::fs::remove_file(&temporary);
            }
        }
    }

    /// Holds the key's lock until dropped (other fetches of the key wait in `lock`).
    fn lock(&self, key: &Key) -> Option<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.file(key, "lock"))
            .ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
            return None;
        }
        use std::os::fd::AsRawFd as _;
        // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
        (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(file)
    }

    /// The secrets of `key`: from a fresh entry, from the store (`fetch`, run at most once per
    /// key at a time on this node), or from a stale entry when the store fails.
    pub(crate) fn through(
        &self,
        key: &Key,
        started_ms: u128,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Secrets, Error> + Send + 'static,
    ) -> (Result<Secrets, Error>, Served) {
        let now = now_ms();
        let age = |written: u128| Duration::from_millis(now_ms().saturating_sub(written) as u64);
        let fresh = |entry: &Option<(u128, Record)>| match entry {
            Some((written, Record::Good(secrets))) if age(*written) <= self.ttl => {
                Some((secrets.clone(), age(*written)))
            }
            _ => None,
        };
        let entry = self.read(key, "entry");
        if let Some((secrets, age)) = fresh(&entry) {
            return (Ok(secrets), Served::Cache { age });
        }
        let _lock = self.lock(key);
        let entry = self.read(key, "entry");
        if let Some((secrets, age)) = fresh(&entry) {
            return (Ok(secrets), Served::Cache { age });
        }
        if let Some((written, Record::Failed(kind, message))) = self.read(key, "failed") {
            // Written by the fetch this one waited for.
            if written >= started_ms && written <= now_ms() && now.saturating_sub(written) < 60_000
            {
                return (Err(Error::new(kind, message)), Served::SharedFailure);
            }
        }
        let stale = match entry {
            Some((written, Record::Good(secrets))) if age(written) <= self.max_stale => {
                Some((secrets, age(written)))
            }
            _ => None,
        };
        let outcome = match &stale {
            None => fetch(),
            // Leave time to serve the stale value if the store does not answer.
            Some(_) => {
                let (sender, receiver) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("store".into())
                    .spawn(move || {
                        let _ = sender.send(fetch());
                    });
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(STALE_MARGIN);
                match (spawned, receiver.recv_timeout(wait)) {
                    (Ok(_), Ok(outcome)) => outcome,
                    _ => Err(Error::new(
                        ErrorKind::Timeout,
                        "the store did not answer in time",
                    )),
                }
            }
        };
        match outcome {
            Ok(secrets) => {
                self.write(key, "entry", &Record::Good(secrets.clone()));
                (Ok(secrets), Served::Store)
            }
            Err(error) => match stale {
                Some((secrets, age))
                    if matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) =>
                {
                    (Ok(secrets), Served::Stale { age })
                }
                _ => {
                    let message = error.to_string();
                    self.write(key, "failed", &Record::Failed(error.kind(), message));
                    (Err(error), Served::Store)
                }
            },
        }
    }
}

/// The audit log's name of a kind, and back.
fn kind_name(kind: ErrorKind) -> &'static str {
    crate::audit::kind_name(kind)
}

fn kind_from(name: &str) -> Option<ErrorKind> {
    [
        ErrorKind::Usage,
        ErrorKind::InvalidPath,
        ErrorKind::Settings,
        ErrorKind::NotFound,
        ErrorKind::Denied,
        ErrorKind::InvalidSecret,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ]
    .into_iter()
    .find(|kind| kind_name(*kind) == name)
}
