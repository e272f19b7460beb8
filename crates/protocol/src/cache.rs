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
//!   `cache_max_stale` old. Only a store that was really called and failed so: a stale value is
//!   never served because the deadline left no time to call the store. The store is given up
//!   in time to serve the stale value only when it had at least [`LEAST_STORE_TIME`] to
//!   answer; with a shorter deadline (an operator's, or a job's `SECRETS_DEADLINE`) it is
//!   called as without a cache, and a stale value is served only when it answered, having had
//!   at least that long, that it is unavailable or timed out. A revoked credential or a deleted
//!   secret is then the store's answer, whatever the deadline.
//! - **Single flight.** A lock file per key (`flock`): concurrent fetches of one key wait for the
//!   one that calls the store, then read its entry; when that call fails, each of them gets the
//!   same error (from a failure record written after they started waiting).
//! - **Where.** `cache_dir` (default `/run/nomad-secrets/cache`) must be on a memory-backed
//!   filesystem (tmpfs or ramfs: gone at reboot, never on a disk but for swap), a directory
//!   owned by this user with no group or world access, reached from `/` one folder at a time
//!   through opened handles (`openat` with `O_NOFOLLOW | O_DIRECTORY`): a symlink at any step
//!   is refused, and every folder on the way must belong to root or this user and be writable
//!   by no one else ([`trusted`]). The folder is then used only through its handle (`openat`,
//!   `renameat`), so it cannot be swapped between the checks and the use. Otherwise there is
//!   no cache (fetches go to the store, the audit line says why) and `check` fails. Files are
//!   opened without following symlinks; an entry that is not a regular file of this user, mode
//!   0600, of this format and this key is a miss, never a crash.

use std::ffi::{CString, OsString};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
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
/// The least time the store must have had to answer before its failure (or its silence) lets
/// a stale value be served.
pub(crate) const LEAST_STORE_TIME: Duration = Duration::from_secs(1);

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
    /// The folder's handle: every entry is reached through it, never through its path again.
    dir: OwnedFd,
    /// Its path, for messages.
    shown: PathBuf,
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
            Ok(handle) => Cache::On(Store {
                dir: handle,
                shown: dir,
                ttl,
                max_stale: settings.get(&CACHE_MAX_STALE).unwrap_or_default(),
            }),
            Err(why) => Cache::Unavailable(why),
        }
    }

    /// One line for `check`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Cache::Off => "off (no `cache_ttl`)".to_owned(),
            Cache::Unavailable(why) => {
                format!("FAILED: configured but unusable, fetches go to the store: {why}")
            }
            Cache::On(store) => format!(
                "ttl {}s, stale values up to {}s while the store fails; entries in `{}` (memory-backed, this user's only)",
                store.ttl.as_secs(),
                store.max_stale.as_secs(),
                store.shown.display()
            ),
        }
    }
}

/// The handle of `dir`, or why it cannot hold entries: it is created (mode 0700, missing
/// folders above it 0755) if missing, reached without following a symlink at any step through
/// trusted folders only ([`trusted::open_folder`]), and must be memory-backed and this user's
/// alone.
fn safe_dir(dir: &Path) -> Result<OwnedFd, String> {
    let (handle, meta) = trusted::open_folder(dir, Some((0o755, 0o700)))?;
    let shown = dir.display();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.st_uid != me {
        return Err(format!(
            "`{shown}` is owned by uid {}, not this user ({me})",
            meta.st_uid
        ));
    }
    if meta.st_mode & 0o077 != 0 {
        return Err(format!(
            "`{shown}` has mode {:o}: group or others may enter it (it must be 0700)",
            meta.st_mode & 0o777
        ));
    }
    // SAFETY: a valid descriptor and a zeroed statfs the call fills.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(handle.as_raw_fd(), &mut stat) } != 0 {
        return Err(format!("`{shown}` cannot be examined (statfs failed)"));
    }
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6;
    let kind = stat.f_type as i64;
    if kind != TMPFS && kind != RAMFS {
        return Err(format!(
            "`{shown}` is not on a memory-backed filesystem (tmpfs or ramfs; type {kind:#x}): secrets would reach a disk"
        ));
    }
    Ok(handle)
}

/// An I/O error's text without its `(os error N)`, for messages.
pub(crate) fn lower(error: &std::io::Error) -> String {
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
    /// Opens `name` in the cache folder, through its handle, never following a symlink.
    fn open_at(&self, name: &str, flags: libc::c_int) -> std::io::Result<std::fs::File> {
        let name = CString::new(name).map_err(std::io::Error::other)?;
        // SAFETY: a valid directory descriptor and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// The record in `<key>.<kind>`, and when it was written; `None` for anything that is not
    /// this user's own, well-formed record of this key.
    fn read(&self, key: &Key, kind: &str) -> Option<(u128, Record)> {
        let mut file = self
            .open_at(
                &format!("{}.{kind}", key.0),
                libc::O_RDONLY | libc::O_NONBLOCK,
            )
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
        let temporary = format!(".{}.{}.{kind}", key.0, std::process::id());
        let written = self
            .open_at(&temporary, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        let (Ok(from), Ok(to)) = (
            CString::new(temporary),
            CString::new(format!("{}.{kind}", key.0)),
        ) else {
            return;
        };
        let dir = self.dir.as_raw_fd();
        // SAFETY: a valid directory descriptor and C strings; failures leave no entry.
        unsafe {
            match written {
                Ok(()) => {
                    if libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) != 0 {
                        libc::unlinkat(dir, from.as_ptr(), 0);
                    }
                }
                Err(_) => {
                    libc::unlinkat(dir, from.as_ptr(), 0);
                }
            }
        }
        self.sweep();
    }

    /// Removes what no fetch can use any more: entries (and their locks) older than
    /// `cache_ttl + cache_max_stale`, with a minute's margin, and temporary files a stopped
    /// writer left (they hold values too). Run after each write, so the folder holds at most
    /// what was written within that window, never every value ever fetched until reboot.
    fn sweep(&self) {
        let limit = self.ttl + self.max_stale + Duration::from_secs(60);
        let folder = format!("/proc/self/fd/{}", self.dir.as_raw_fd());
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let temporary = name.starts_with('.');
            let ours = temporary
                || [".entry", ".failed", ".lock"]
                    .iter()
                    .any(|kind| name.ends_with(kind));
            let old_after = match temporary {
                true => Duration::from_secs(60),
                false => limit,
            };
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > old_after);
            if ours && stale {
                if let Ok(name) = CString::new(name) {
                    // SAFETY: a valid directory descriptor and C string; a failure leaves it.
                    unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
                }
            }
        }
    }

    /// Holds the key's lock until dropped (other fetches of the key wait in `lock`).
    fn lock(&self, key: &Key) -> Option<std::fs::File> {
        let file = self
            .open_at(&format!("{}.lock", key.0), libc::O_RDWR | libc::O_CREAT)
            .ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
            return None;
        }
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
        let left = deadline.saturating_duration_since(Instant::now());
        let (outcome, stale) = match stale {
            None => (fetch(), None),
            // Time enough to call the store and still serve the stale value if it does not
            // answer: the store gets all but the margin, at least LEAST_STORE_TIME.
            Some(stale) if left >= LEAST_STORE_TIME + STALE_MARGIN => {
                let (sender, receiver) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("store".into())
                    .spawn(move || {
                        let _ = sender.send(fetch());
                    });
                let outcome = match spawned {
                    Ok(_) => receiver
                        .recv_timeout(left - STALE_MARGIN)
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorKind::Timeout,
                                "the store did not answer in time",
                            ))
                        }),
                    // The store was not called: no stale value for that.
                    Err(e) => Err(Error::new(
                        ErrorKind::Internal,
                        format!("cannot start the store thread: {e}"),
                    )),
                };
                (outcome, Some(stale))
            }
            // Too little time: the store is called as without a cache, and its own failure
            // counts only if it had LEAST_STORE_TIME to answer; its silence is the run's
            // timeout, never a stale value.
            Some(stale) => (fetch(), (left >= LEAST_STORE_TIME).then_some(stale)),
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

/// Files kept beside the entries that are not entries (the identity key set), reached through
/// the same trusted handle. Their names must not end as entries' do, so the sweep leaves them.
impl Store {
    /// The bytes of `name` and when it was written, if it is this user's regular file of at
    /// most `limit` bytes.
    pub(crate) fn read_file(&self, name: &str, limit: u64) -> Option<(Vec<u8>, SystemTime)> {
        let file = self.open_at(name, libc::O_RDONLY | libc::O_NONBLOCK).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > limit {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(limit).read_to_end(&mut bytes).ok()?;
        Some((bytes, meta.modified().ok()?))
    }

    /// Replaces `name` whole (a new file renamed into place, mode 0600); a failure leaves the
    /// old one.
    pub(crate) fn write_file(&self, name: &str, bytes: &[u8]) {
        let temporary = format!(".{name}.{}", std::process::id());
        let written = self
            .open_at(&temporary, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
            .and_then(|mut file| file.write_all(bytes));
        let (Ok(from), Ok(to)) = (CString::new(temporary), CString::new(name)) else {
            return;
        };
        let dir = self.dir.as_raw_fd();
        // SAFETY: a valid directory descriptor and C strings; failures leave the old file.
        unsafe {
            if written.is_err() || libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) != 0 {
                libc::unlinkat(dir, from.as_ptr(), 0);
            }
        }
    }
}

/// Folders reached without trusting their paths: the cache folder, the audit log's folder.
///
/// A folder is opened from `/` one component at a time, each with `openat(parent, name,
/// O_PATH | O_DIRECTORY | O_NOFOLLOW)`, so no symlink is followed at any step and what is
/// checked is what is used (through the handle, never the path again). Every folder on the
/// way, `/` included, must belong to root or this (effective) user, and no one else may write
/// it: its group and other write bits are off, with one exception, a sticky folder (`/tmp`,
/// `/dev/shm`): there only an entry's owner (or root) may rename or remove the entry, so the
/// next folder, which must itself be root's or this user's, cannot be swapped or moved away by
/// anyone else; another user can at most create a missing name first, which the owner check
/// then refuses. The path must be absolute; a `..` goes back to the folder walked before.
pub(crate) mod trusted {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    use std::path::{Component, Path, PathBuf};

    /// `path`'s handle and status, once every folder from `/` down to it is trusted; with
    /// `create = Some((above, last))`, missing folders are made with mode `above`, and `path`
    /// itself with mode `last`. The error names the folder at fault and why.
    pub(crate) fn open_folder(
        path: &Path,
        create: Option<(u32, u32)>,
    ) -> Result<(OwnedFd, libc::stat), String> {
        if !path.is_absolute() {
            return Err(format!("`{}` is not an absolute path", path.display()));
        }
        let root = CString::new("/").expect("no NUL");
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                root.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err("`/` cannot be opened".into());
        }
        // SAFETY: a descriptor just opened and owned by nothing else.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        let shown = PathBuf::from("/");
        let meta = trusted_folder(&root, &shown)?;
        // The folders walked so far: `..` goes back to the one before (no symlink was
        // followed, so that is the real parent, already checked).
        let mut walked = vec![(root, meta, shown)];
        let components: Vec<Component> = path.components().collect();
        let last = components.len().saturating_sub(1);
        for (i, component) in components.into_iter().enumerate() {
            let name = match component {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
                Component::ParentDir => {
                    if walked.len() > 1 {
                        walked.pop();
                    }
                    continue;
                }
                Component::Normal(name) => name,
            };
            let (parent, _, parent_shown) = walked.last().expect("`/` is never popped");
            let shown = parent_shown.join(name);
            let c_name = CString::new(name.as_encoded_bytes())
                .map_err(|_| format!("`{}` holds a NUL byte", path.display()))?;
            let mode = create.map(|(above, end)| if i == last { end } else { above });
            let handle = open_child(parent, &c_name, &shown, mode)?;
            let meta = trusted_folder(&handle, &shown)?;
            walked.push((handle, meta, shown));
        }
        let (handle, meta, _) = walked.pop().expect("`/` is never popped");
        Ok((handle, meta))
    }

    /// The folder `name` in `parent`, never through a symlink; made with `mode` if missing and
    /// `mode` is given.
    fn open_child(
        parent: &OwnedFd,
        name: &CString,
        shown: &Path,
        mode: Option<u32>,
    ) -> Result<OwnedFd, String> {
        let open = || {
            // SAFETY: a valid directory descriptor and C string; the result is checked.
            let fd = unsafe {
                libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            // SAFETY: a descriptor just opened and owned by nothing else.
            (fd >= 0)
                .then(|| unsafe { OwnedFd::from_raw_fd(fd) })
                .ok_or_else(std::io::Error::last_os_error)
        };
        let opened = match (open(), mode) {
            (Err(e), Some(mode)) if e.raw_os_error() == Some(libc::ENOENT) => {
                // SAFETY: a valid directory descriptor and C string.
                let made = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), mode) };
                let error = std::io::Error::last_os_error();
                if made != 0 && error.raw_os_error() != Some(libc::EEXIST) {
                    return Err(format!(
                        "`{}` cannot be created: {}",
                        shown.display(),
                        super::lower(&error)
                    ));
                }
                open()
            }
            (opened, _) => opened,
        };
        opened.map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("`{}` is a symlink: refused", shown.display()),
            Some(libc::ENOTDIR) => {
                // SAFETY: a valid directory descriptor and C string; a zeroed stat it fills.
                let mut stat: libc::stat = unsafe { std::mem::zeroed() };
                let link = unsafe {
                    libc::fstatat(
                        parent.as_raw_fd(),
                        name.as_ptr(),
                        &mut stat,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                } == 0
                    && stat.st_mode & libc::S_IFMT == libc::S_IFLNK;
                match link {
                    true => format!("`{}` is a symlink: refused", shown.display()),
                    false => format!("`{}` is not a folder", shown.display()),
                }
            }
            _ => format!("`{}`: {}", shown.display(), super::lower(&e)),
        })
    }

    /// The status of the folder `handle`, if it is one that only root or this user can change.
    fn trusted_folder(handle: &OwnedFd, shown: &Path) -> Result<libc::stat, String> {
        let meta = status(handle).map_err(|e| format!("`{}`: {e}", shown.display()))?;
        if meta.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(format!("`{}` is not a folder", shown.display()));
        }
        trusted_owner(&meta).map_err(|why| format!("`{}` {why}", shown.display()))?;
        let sticky = meta.st_mode & libc::S_ISVTX != 0;
        if meta.st_mode & 0o022 != 0 && !sticky {
            return Err(format!(
                "`{}` has mode {:o}: others may write it, and so swap what is below it",
                shown.display(),
                meta.st_mode & 0o7777
            ));
        }
        Ok(meta)
    }

    /// `fstat` of a descriptor.
    pub(crate) fn status(handle: &impl std::os::fd::AsRawFd) -> Result<libc::stat, String> {
        // SAFETY: a valid descriptor and a zeroed stat the call fills.
        let mut meta: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(handle.as_raw_fd(), &mut meta) } != 0 {
            return Err(super::lower(&std::io::Error::last_os_error()));
        }
        Ok(meta)
    }

    /// `Ok` when root or this user owns what `meta` describes; the error completes "`path` ...".
    pub(crate) fn trusted_owner(meta: &libc::stat) -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        match meta.st_uid {
            0 => Ok(()),
            uid if uid == me => Ok(()),
            uid => Err(format!(
                "is owned by uid {uid}, not root or this user ({me})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::trusted::open_folder;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn folders_are_walked_without_following_symlinks() {
        let base = std::env::temp_dir().join(format!("trusted-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("real/inner")).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();

        assert!(open_folder(&base.join("real/inner"), None).is_ok());
        assert!(open_folder(&base.join("real/inner/../inner/."), None).is_ok());
        let error = open_folder(&base.join("link/inner"), None).unwrap_err();
        assert!(error.ends_with("link` is a symlink: refused"), "{error}");
        let error = open_folder(&base.join("link"), None).unwrap_err();
        assert!(error.ends_with("link` is a symlink: refused"), "{error}");
        let error = open_folder(std::path::Path::new("relative/x"), None).unwrap_err();
        assert_eq!(error, "`relative/x` is not an absolute path");
        let error = open_folder(&base.join("missing"), None).unwrap_err();
        assert!(
            error.ends_with("missing`: no such file or directory"),
            "{error}"
        );

        // Made when missing, with the modes asked for.
        let (_, meta) = open_folder(&base.join("new/cache"), Some((0o755, 0o700))).unwrap();
        assert_eq!(meta.st_mode & 0o777, 0o700);

        // A folder others may write (not sticky) is not trusted below it.
        std::fs::set_permissions(base.join("real"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let error = open_folder(&base.join("real/inner"), None).unwrap_err();
        assert!(
            error.contains("real` has mode 777: others may write it"),
            "{error}"
        );
        // Sticky (as /tmp): trusted, since no one else can move what is in it.
        std::fs::set_permissions(base.join("real"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        assert!(open_folder(&base.join("real/inner"), None).is_ok());
        let _ = std::fs::remove_dir_all(&base);
    }
}
