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
//! - **Spread and early refresh.** An entry is fresh for `cache_ttl` times a factor drawn when
//!   it is written, between 0.85 and 1 ([`SPREAD_FROM`]), and kept with it: entries written
//!   together (a mass start, on one node or across a fleet) do not expire together. In the
//!   last tenth of that life ([`REFRESH_FROM`]) one fetch, the one that gets the key's lock
//!   without waiting, refreshes the entry from the store, while every other fetch is answered
//!   from the entry, never waiting; if the store is unavailable or silent, the refreshing
//!   fetch is answered from the entry too (it is still fresh). The audit line's `cache` says
//!   `refresh` (`source` `store`) or `refresh failed` (`source` `cache`).
//! - **Bounded.** A folder holds at most `cache_max_entries` keys and `cache_max_bytes` bytes
//!   (a key's entry and failure record; lock files hold nothing). Every writer takes a
//!   folder-wide lock before it installs an entry, so the bound holds at every moment, with
//!   any number of plugin processes writing at once. Under it, the folder's tally (kept in the
//!   lock file) says whether the entry fits; when it does not, or the last scan is over
//!   [`SCAN_EVERY_MS`] old, the folder is scanned: what no fetch can use any more is swept
//!   (older than `cache_ttl + cache_max_stale` and a minute), and if the folder is still
//!   full, the least recently used keys are evicted down to nine tenths of the bound (so the
//!   next writes need no scan). A hit marks its entry used (its access time, set through the
//!   handle already open; the write time stays); a key being fetched or refreshed (its lock
//!   held) is never evicted. An entry that cannot fit, or whose writer cannot get the
//!   folder's lock before its deadline, is not written.
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

use crate::settings::{self, CACHE_DIR, CACHE_MAX_STALE, CACHE_TTL};
use crate::{Error, ErrorKind, Secret, Secrets, Settings};

/// The cache folder when the operator names none.
pub(crate) const DEFAULT_DIR: &str = "/run/nomad-secrets/cache";
/// The most keys a cache folder holds.
pub const CACHE_MAX_ENTRIES: settings::Key<u64> = settings::Key::size(
    "cache_max_entries",
    "the most entries (one per job, path and credentials) a cache folder holds; past it the least recently used go first. 10000: a busy client's secrets (hundreds of allocations, a few secrets each) many times over, yet a folder scanned in tens of milliseconds (at most every 10 s, or tenth of the bound written)",
)
.default("10000");
/// The most bytes a cache folder's entries hold.
pub const CACHE_MAX_BYTES: settings::Key<u64> = settings::Key::size(
    "cache_max_bytes",
    "the most bytes a cache folder's entries hold (memory, on tmpfs); past it the least recently used go first. 64MiB: 10000 entries of over 6 KiB (most are under 1 KiB), a small share of a client's memory",
)
.default("64MiB");
/// `cache_max_entries` when unset.
const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// `cache_max_bytes` when unset.
const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// The first line of every entry: the format and its version (2: with the entry's freshness).
const MAGIC: &str = "nomad-secrets-cache 2";
/// An entry is fresh for `cache_ttl` times a factor drawn at write time, uniformly between
/// this many thousandths and 1.
pub(crate) const SPREAD_FROM: u64 = 850;
/// From this many thousandths of an entry's freshness on, one fetch refreshes it early.
pub(crate) const REFRESH_FROM: u64 = 900;
/// The folder-wide lock of writers, which also holds the folder's tally (its name ends as
/// no entry's does: the sweep leaves it).
const FOLDER_LOCK: &str = "folder.flock";
/// The folder is scanned (swept, its tally recounted) at least this often while it is
/// written.
const SCAN_EVERY_MS: u128 = 10_000;
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
    max_entries: u64,
    max_bytes: u64,
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
    /// A fresh entry in the last part of its life, `age` old, refreshed early by this fetch:
    /// `answered` when the store's answer is the answer (else the store was unavailable or
    /// silent, and the entry answered).
    Refresh { age: Duration, answered: bool },
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
                max_entries: settings
                    .get(&CACHE_MAX_ENTRIES)
                    .unwrap_or(DEFAULT_MAX_ENTRIES),
                max_bytes: settings.get(&CACHE_MAX_BYTES).unwrap_or(DEFAULT_MAX_BYTES),
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
                "ttl {}s, stale values up to {}s while the store fails; at most {} entries and {} bytes in `{}` (memory-backed, this user's only)",
                store.ttl.as_secs(),
                store.max_stale.as_secs(),
                store.max_entries,
                store.max_bytes,
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

/// An entry as read: what it holds, when it was written, how long it is fresh, and its open
/// handle (a hit marks the entry used through it).
struct Entry {
    written: u128,
    /// The entry's own freshness: `cache_ttl` spread when it was written, never more than the
    /// `cache_ttl` of now.
    fresh: Duration,
    record: Record,
    file: std::fs::File,
}

impl Entry {
    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.written) as u64)
    }

    /// Its secrets and age, if it holds secrets and is fresh; `due` when it is in the last
    /// part of its life, where one fetch refreshes it.
    fn fresh(&self) -> Option<(Secrets, Duration, bool)> {
        let Record::Good(secrets) = &self.record else {
            return None;
        };
        let age = self.age();
        let due = age.as_millis() * 1000 > self.fresh.as_millis() * u128::from(REFRESH_FROM);
        (age <= self.fresh).then(|| (secrets.clone(), age, due))
    }

    /// Marks the entry used now (its access time; the write time stays), so that the least
    /// recently used entries are evicted first. Through the handle already open: no path is
    /// looked up again.
    fn touch(&self) {
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        // SAFETY: a valid descriptor and two timespecs; a failure only loses the mark.
        unsafe { libc::futimens(self.file.as_raw_fd(), times.as_ptr()) };
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Eight random bytes from the kernel (`getrandom`, else `/dev/urandom`), mixed with the time
/// and process so that a failure of both still differs between processes.
fn random() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: a buffer of 8 bytes owned here; the result is checked.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
    if got != 8 {
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from_le_bytes(bytes) ^ u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

/// `ttl` times a factor drawn uniformly from [`SPREAD_FROM`]/1000 to 1: an entry's freshness.
fn spread(ttl: Duration) -> Duration {
    let millionths = u128::from(SPREAD_FROM) * 1000 + u128::from(random() % 150_001);
    let millionths = millionths.min(1_000_000);
    Duration::from_millis((ttl.as_millis() * millionths / 1_000_000) as u64)
}

/// A file's last use for eviction: its access time (a hit sets it) or, if later, its write.
fn last_use(meta: &std::fs::Metadata) -> i128 {
    let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    ns(meta.atime(), meta.atime_nsec()).max(ns(meta.mtime(), meta.mtime_nsec()))
}

/// The folder's tally in its lock file: keys, bytes, and when it was last scanned (ms);
/// `None` if it holds none (a new folder) or anything else.
fn tally(folder: &std::fs::File) -> Option<(u64, u64, u128)> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = [0u8; 80];
    let read = folder.read_at(&mut buffer, 0).ok()?;
    let text = std::str::from_utf8(&buffer[..read]).ok()?;
    let mut fields = text.strip_suffix('\n')?.split(' ');
    let tally = (
        fields.next()?.parse().ok()?,
        fields.next()?.parse().ok()?,
        fields.next()?.parse().ok()?,
    );
    fields.next().is_none().then_some(tally)
}

/// Rewrites the folder's tally; a failure leaves one a later writer will not trust (a
/// short or garbled line) or an old one, and so a scan.
fn set_tally(folder: &std::fs::File, count: u64, bytes: u64, scanned: u128) {
    use std::os::unix::fs::FileExt as _;
    let text = format!("{count} {bytes} {scanned}\n");
    if folder.set_len(0).is_ok() {
        let _ = folder.write_all_at(text.as_bytes(), 0);
    }
}

/// What one key holds in the folder, as the bound counts it.
#[derive(Default)]
struct Held {
    bytes: u64,
    used: i128,
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

    /// Removes `name` from the cache folder, through its handle; a failure leaves it.
    fn remove(&self, name: &str) {
        if let Ok(name) = CString::new(name) {
            // SAFETY: a valid directory descriptor and C string.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        }
    }

    /// The record in `<key>.<kind>`; `None` for anything that is not this user's own,
    /// well-formed record of this key.
    fn read(&self, key: &Key, kind: &str) -> Option<Entry> {
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
        let mut lines = text.splitn(6, '\n');
        if lines.next()? != MAGIC || lines.next()? != key.0 {
            return None;
        }
        let written: u128 = lines.next()?.parse().ok()?;
        let fresh: u64 = lines.next()?.parse().ok()?;
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
        Some(Entry {
            written,
            fresh: Duration::from_millis(fresh).min(self.ttl),
            record,
            file,
        })
    }

    /// Writes `<key>.<kind>` now, fresh for a spread `cache_ttl`.
    fn write(&self, key: &Key, kind: &str, record: &Record, deadline: Instant) {
        self.write_as_of(key, kind, record, now_ms(), spread(self.ttl), deadline);
    }

    /// Writes `<key>.<kind>` whole (a new file renamed into place), mode 0600, as written at
    /// `written` and fresh for `fresh`, once the folder has room for it within its bounds
    /// (the least recently used entries evicted); not at all if it cannot have room, or the
    /// folder's lock cannot be had before `deadline`.
    fn write_as_of(
        &self,
        key: &Key,
        kind: &str,
        record: &Record,
        written: u128,
        fresh: Duration,
        deadline: Instant,
    ) {
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
        let text = format!(
            "{MAGIC}\n{}\n{written}\n{}\n{what}\n{body}",
            key.0,
            fresh.as_millis()
        );
        let size = text.len() as u64;
        if size > MAX_ENTRY || size > self.max_bytes {
            return;
        }
        let temporary = format!(".{}.{}.{kind}", key.0, std::process::id());
        let written = self
            .open_at(&temporary, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        let installed = written.is_ok()
            && match self.folder_lock(deadline) {
                // Held until the entry is in place: no other writer counts or evicts meanwhile,
                // so the bound holds at every moment, whatever runs at once.
                Some(folder) => {
                    self.make_room(&folder, &key.0, kind, size) && {
                        #[cfg(test)]
                        std::thread::sleep(Duration::from_micros(
                            bounded::WRITE_PAUSE_US.load(std::sync::atomic::Ordering::Relaxed),
                        ));
                        self.rename(&temporary, &format!("{}.{kind}", key.0))
                    }
                }
                None => false,
            };
        if !installed {
            self.remove(&temporary);
        }
    }

    /// Renames the temporary `from` to `to` within the folder.
    fn rename(&self, from: &str, to: &str) -> bool {
        let (Ok(from), Ok(to)) = (CString::new(from), CString::new(to)) else {
            return false;
        };
        let dir = self.dir.as_raw_fd();
        // SAFETY: a valid directory descriptor and C strings.
        unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) == 0 }
    }

    /// The folder-wide lock every writer holds while it counts, evicts and installs an entry;
    /// `None` if it cannot be had before `deadline` (the entry is then not written: a fetch
    /// with its answer never waits past its deadline for the cache).
    fn folder_lock(&self, deadline: Instant) -> Option<std::fs::File> {
        let file = self
            .open_at(FOLDER_LOCK, libc::O_RDWR | libc::O_CREAT)
            .ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
            return None;
        }
        let give_up = deadline.checked_sub(STALE_MARGIN).unwrap_or(deadline);
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a descriptor we own; never blocks.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(file);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK)
                || Instant::now() + pause > give_up
            {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Under the folder lock (`folder`), before `<own>.<kind>` (of `size` bytes) is
    /// installed: whether the folder has room for it within its bounds, made if need be.
    ///
    /// The folder's tally (keys and bytes, kept in the lock file and updated by every
    /// writer under the lock, before the entry is installed: a writer stopped midway leaves
    /// it too high, never too low) answers when the entry fits and the last scan is recent;
    /// otherwise the folder is scanned ([`Store::scan`]: the sweep, the eviction) and the
    /// tally rewritten. So a write at the bound costs a scan about once per tenth of the
    /// bound written, and the sweep runs at least every [`SCAN_EVERY_MS`] of writes.
    fn make_room(&self, folder: &std::fs::File, own: &str, kind: &str, size: u64) -> bool {
        let now = now_ms();
        let own_old = self.size_of(&format!("{own}.{kind}"));
        let other = if kind == "entry" { "failed" } else { "entry" };
        let new_key = own_old.is_none() && self.size_of(&format!("{own}.{other}")).is_none();
        if let Some((count, bytes, scanned)) = tally(folder) {
            let count = count + u64::from(new_key);
            let bytes = (bytes + size).saturating_sub(own_old.unwrap_or(0));
            let recent = scanned <= now && now - scanned < SCAN_EVERY_MS;
            if recent && count <= self.max_entries && bytes <= self.max_bytes {
                set_tally(folder, count, bytes, scanned);
                return true;
            }
        }
        match self.scan(own, kind, size) {
            Some((count, bytes)) => {
                set_tally(folder, count, bytes, now);
                true
            }
            None => {
                // Not installed: the next writer scans again.
                set_tally(folder, 0, 0, 0);
                false
            }
        }
    }

    /// The size of `name` in the folder, if it is a regular file (never through a symlink).
    fn size_of(&self, name: &str) -> Option<u64> {
        let name = CString::new(name).ok()?;
        // SAFETY: a valid directory descriptor, C string and a zeroed stat the call fills.
        let mut meta: libc::stat = unsafe { std::mem::zeroed() };
        let found = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                &mut meta,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } == 0;
        (found && meta.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(meta.st_size as u64)
    }

    /// The scan of the folder, under its lock, before `<own>.<kind>` (of `size` bytes) is
    /// installed: sweeps what no fetch can use any more, then, if the folder would be over
    /// `cache_max_entries` keys or `cache_max_bytes` bytes with it, evicts the least recently
    /// used keys until it holds at most nine tenths of either (room for the next writes
    /// without a scan). The keys and bytes with the new entry; `None` when it cannot fit
    /// (every other key is in use), so nothing is written.
    ///
    /// A key counts once, with the bytes of its entry and failure record; locks hold nothing
    /// and are not counted. Evicting a key removes its entry, failure record and lock, never
    /// a key whose lock a fetch holds (it is being fetched or refreshed: in use).
    fn scan(&self, own: &str, kind: &str, size: u64) -> Option<(u64, u64)> {
        let limit = self.ttl + self.max_stale + Duration::from_secs(60);
        let folder = format!("/proc/self/fd/{}", self.dir.as_raw_fd());
        let Ok(names) = std::fs::read_dir(&folder) else {
            return None;
        };
        let now = SystemTime::now();
        let older = |meta: &std::fs::Metadata, than: Duration| {
            meta.modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > than)
        };
        let mut held: std::collections::HashMap<String, Held> = Default::default();
        let mut own_bytes = size;
        for found in names.flatten() {
            let name = found.file_name();
            let Some(name) = name.to_str() else { continue };
            // Its own status (`fstatat` in the folder, never following a symlink).
            let Ok(meta) = found.metadata() else {
                continue;
            };
            if name.starts_with('.') {
                // A temporary file a stopped writer left (it holds values too).
                if older(&meta, Duration::from_secs(60)) {
                    self.remove(name);
                }
                continue;
            }
            let Some((stem, suffix)) = name.rsplit_once('.') else {
                continue;
            };
            if !matches!(suffix, "entry" | "failed" | "lock") {
                continue;
            }
            if older(&meta, limit) {
                // Past any use: `cache_ttl + cache_max_stale`, with a minute's margin.
                if suffix != "lock" || self.try_lock_named(name).is_some() {
                    self.remove(name);
                }
                continue;
            }
            if suffix == "lock" {
                continue;
            }
            if stem == own {
                if suffix != kind {
                    own_bytes += meta.len();
                }
                continue;
            }
            let key = held.entry(stem.to_owned()).or_default();
            key.bytes += meta.len();
            key.used = key.used.max(last_use(&meta));
        }
        let mut count = held.len() as u64 + 1;
        let mut bytes = held.values().map(|key| key.bytes).sum::<u64>() + own_bytes;
        let fits = |count: u64, bytes: u64| count <= self.max_entries && bytes <= self.max_bytes;
        if fits(count, bytes) {
            return Some((count, bytes));
        }
        if own_bytes > self.max_bytes {
            return None;
        }
        let (room_entries, room_bytes) = (
            self.max_entries - self.max_entries / 10,
            self.max_bytes - self.max_bytes / 10,
        );
        let mut order: Vec<(String, Held)> = held.into_iter().collect();
        order.sort_unstable_by(|a, b| (a.1.used, &a.0).cmp(&(b.1.used, &b.0)));
        for (stem, key) in order {
            if count <= room_entries && bytes <= room_bytes {
                break;
            }
            if self.evict(&stem) {
                count -= 1;
                bytes -= key.bytes;
            }
        }
        fits(count, bytes).then_some((count, bytes))
    }

    /// Removes the key `stem` (entry, failure record, lock) unless a fetch holds its lock.
    fn evict(&self, stem: &str) -> bool {
        let lock = format!("{stem}.lock");
        let held = match self.open_at(&lock, libc::O_RDWR) {
            Ok(file) => {
                // SAFETY: flock on a descriptor we own; never blocks.
                match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
                    0 => Some(file),
                    _ => return false,
                }
            }
            Err(_) => None,
        };
        self.remove(&format!("{stem}.entry"));
        self.remove(&format!("{stem}.failed"));
        if held.is_some() {
            self.remove(&lock);
        }
        true
    }

    /// The lock file `name`, locked, if no one holds it; for the sweep.
    fn try_lock_named(&self, name: &str) -> Option<std::fs::File> {
        let file = self.open_at(name, libc::O_RDWR).ok()?;
        // SAFETY: flock on a descriptor we own; never blocks.
        (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0)
            .then_some(file)
    }

    /// Holds the key's lock until dropped (other fetches of the key wait in `lock`); with
    /// `wait` false, `None` at once when another fetch holds it.
    fn lock(&self, key: &Key, wait: bool) -> Option<std::fs::File> {
        let file = self
            .open_at(&format!("{}.lock", key.0), libc::O_RDWR | libc::O_CREAT)
            .ok()?;
        let meta = file.metadata().ok()?;
        // SAFETY: geteuid has no preconditions.
        if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
            return None;
        }
        let how = match wait {
            true => libc::LOCK_EX,
            false => libc::LOCK_EX | libc::LOCK_NB,
        };
        // SAFETY: flock on a descriptor we own; blocks (when asked to) until the lock is ours.
        (unsafe { libc::flock(file.as_raw_fd(), how) } == 0).then_some(file)
    }

    /// The secrets of `key`: from a fresh entry, from the store (`fetch`, run at most once per
    /// key at a time on this node), or from a stale entry when the store fails. A fresh entry
    /// in the last part of its life is refreshed by the one fetch that gets its lock without
    /// waiting; the others are answered from it meanwhile.
    pub(crate) fn through(
        &self,
        key: &Key,
        started_ms: u128,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Secrets, Error> + Send + 'static,
    ) -> (Result<Secrets, Error>, Served) {
        let now = now_ms();
        if let Some(entry) = self.read(key, "entry") {
            if let Some((secrets, age, due)) = entry.fresh() {
                entry.touch();
                if !due {
                    return (Ok(secrets), Served::Cache { age });
                }
                return self.refresh(key, secrets, age, deadline, fetch);
            }
        }
        let _lock = self.lock(key, true);
        let entry = self.read(key, "entry");
        if let Some((secrets, age, _)) = entry.as_ref().and_then(Entry::fresh) {
            entry.as_ref().map(Entry::touch);
            return (Ok(secrets), Served::Cache { age });
        }
        if let Some(failure) = self.read(key, "failed") {
            // Written by the fetch this one waited for.
            let written = failure.written;
            if let Record::Failed(kind, message) = failure.record {
                if written >= started_ms
                    && written <= now_ms()
                    && now.saturating_sub(written) < 60_000
                {
                    return (Err(Error::new(kind, message)), Served::SharedFailure);
                }
            }
        }
        let stale = match entry {
            Some(entry) if entry.age() <= self.max_stale => match &entry.record {
                Record::Good(secrets) => Some((secrets.clone(), entry.age(), entry)),
                Record::Failed(..) => None,
            },
            _ => None,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (outcome, stale) = match stale {
            None => (fetch(), None),
            // Time enough to call the store and still serve the stale value if it does not
            // answer: the store gets all but the margin, at least LEAST_STORE_TIME.
            Some(stale) if left >= LEAST_STORE_TIME + STALE_MARGIN => {
                // A thread that cannot start is an internal error: the store was not
                // called, so no stale value for that.
                let outcome = within(fetch, left - STALE_MARGIN).unwrap_or_else(Err);
                (outcome, Some(stale))
            }
            // Too little time: the store is called as without a cache, and its own failure
            // counts only if it had LEAST_STORE_TIME to answer; its silence is the run's
            // timeout, never a stale value.
            Some(stale) => (fetch(), (left >= LEAST_STORE_TIME).then_some(stale)),
        };
        match outcome {
            Ok(secrets) => {
                self.write(key, "entry", &Record::Good(secrets.clone()), deadline);
                (Ok(secrets), Served::Store)
            }
            Err(error) => match stale {
                Some((secrets, age, entry))
                    if matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) =>
                {
                    entry.touch();
                    (Ok(secrets), Served::Stale { age })
                }
                _ => {
                    let message = error.to_string();
                    self.write(
                        key,
                        "failed",
                        &Record::Failed(error.kind(), message),
                        deadline,
                    );
                    (Err(error), Served::Store)
                }
            },
        }
    }

    /// Early refresh of a fresh entry in the last part of its life (`cached`, `age` old): by
    /// this fetch if it gets the key's lock without waiting and the entry is still due, with
    /// the store given all but a margin of the time left; the cached value is the answer when
    /// another fetch holds the lock, when there is too little time, or when the store is
    /// unavailable or silent (the entry is still fresh). Any other failure of the store (a
    /// denial, a deleted secret) is the answer, as without a cache.
    fn refresh(
        &self,
        key: &Key,
        cached: Secrets,
        age: Duration,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Secrets, Error> + Send + 'static,
    ) -> (Result<Secrets, Error>, Served) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < LEAST_STORE_TIME + STALE_MARGIN {
            return (Ok(cached), Served::Cache { age });
        }
        let Some(_lock) = self.lock(key, false) else {
            return (Ok(cached), Served::Cache { age });
        };
        // Refreshed by another fetch between the first read and the lock: nothing to do.
        if let Some(entry) = self.read(key, "entry") {
            if let Some((secrets, age, false)) = entry.fresh() {
                return (Ok(secrets), Served::Cache { age });
            }
        }
        match within(fetch, left - STALE_MARGIN) {
            Ok(Ok(secrets)) => {
                self.write(key, "entry", &Record::Good(secrets.clone()), deadline);
                (
                    Ok(secrets),
                    Served::Refresh {
                        age,
                        answered: true,
                    },
                )
            }
            Ok(Err(error))
                if !matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) =>
            {
                let message = error.to_string();
                self.write(
                    key,
                    "failed",
                    &Record::Failed(error.kind(), message),
                    deadline,
                );
                (
                    Err(error),
                    Served::Refresh {
                        age,
                        answered: true,
                    },
                )
            }
            Ok(Err(_)) | Err(_) => (
                Ok(cached),
                Served::Refresh {
                    age,
                    answered: false,
                },
            ),
        }
    }
}

/// `fetch`'s answer, run on its own thread and given up after `budget` (a timeout error);
/// `Err` when the thread cannot be started (the store was not called).
fn within(
    fetch: impl FnOnce() -> Result<Secrets, Error> + Send + 'static,
    budget: Duration,
) -> Result<Result<Secrets, Error>, Error> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let _ = sender.send(fetch());
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start the store thread: {e}"),
            )
        })?;
    Ok(receiver.recv_timeout(budget).unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Timeout,
            "the store did not answer in time",
        ))
    }))
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
        if written.is_err() || !self.rename(&temporary, name) {
            self.remove(&temporary);
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

#[cfg(test)]
mod bounded {
    //! The bound, the sweep, the spread and the early refresh, on a tmpfs folder.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    const TTL: Duration = Duration::from_secs(60);
    /// A pause between making room and installing an entry, to widen the window in which
    /// writers without the folder lock would overshoot the bound.
    pub(super) static WRITE_PAUSE_US: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0);

    /// A store in a fresh folder under /dev/shm, removed when dropped.
    struct Folder {
        store: Store,
        path: PathBuf,
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    fn folder(label: &str, max_entries: u64, max_bytes: u64) -> Folder {
        let path = PathBuf::from(format!(
            "/dev/shm/nomad-secrets-unit-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        let dir = safe_dir(&path).expect("a tmpfs folder");
        Folder {
            store: Store {
                dir,
                shown: path.clone(),
                ttl: TTL,
                max_stale: TTL,
                max_entries,
                max_bytes,
            },
            path,
        }
    }

    fn key(n: usize) -> Key {
        Key(format!("{n:064x}"))
    }

    fn secrets(value: &str) -> Secrets {
        let mut secrets = Secrets::new();
        secrets.insert("value", Secret::new(value)).unwrap();
        secrets
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// Fetches `n` through the cache; the store answers `value`.
    fn fetch(store: &Store, n: usize, value: &str) -> Served {
        let value = value.to_owned();
        let (outcome, served) =
            store.through(&key(n), now_ms(), later(), move || Ok(secrets(&value)));
        outcome.unwrap();
        served
    }

    /// The keys with an entry in the folder, in order.
    fn entries(folder: &Folder) -> Vec<usize> {
        let mut keys: Vec<usize> = std::fs::read_dir(&folder.path)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                usize::from_str_radix(name.strip_suffix(".entry")?, 16).ok()
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    /// The bytes of the entries and failure records in the folder.
    fn bytes(folder: &Folder) -> u64 {
        std::fs::read_dir(&folder.path)
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".entry") || name.ends_with(".failed")
            })
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    /// Longer than the filesystem clock's tick, so that uses are ordered.
    fn tick() {
        std::thread::sleep(Duration::from_millis(25));
    }

    /// A hit of `n` from a fresh entry.
    fn hit(store: &Store, n: usize) {
        let (_, served) = store.through(&key(n), now_ms(), later(), || panic!("a hit"));
        assert!(matches!(served, Served::Cache { .. }), "{served:?}");
        tick();
    }

    /// A stale value of `n` served, the store being down.
    fn stale(store: &Store, n: usize) {
        let (outcome, served) = store.through(&key(n), now_ms(), later(), || {
            Err(Error::unavailable("down"))
        });
        assert!(outcome.is_ok(), "{outcome:?}");
        assert!(matches!(served, Served::Stale { .. }), "{served:?}");
        tick();
    }

    #[test]
    fn past_the_bound_the_least_recently_used_go_first() {
        let folder = folder("lru", 3, 1 << 20);
        let store = &folder.store;
        for n in 1..=3 {
            assert_eq!(fetch(store, n, "v"), Served::Store);
            tick();
        }
        // Every hit is a use, not only the first after a write (which `relatime` would
        // mark by itself): 1 is now the most recent, 2 the least.
        for n in [1, 2, 3, 1] {
            hit(store, n);
        }
        assert_eq!(fetch(store, 4, "v"), Served::Store);
        assert_eq!(entries(&folder), [1, 3, 4]);
        assert!(
            !folder.path.join(format!("{}.lock", key(2).0)).exists(),
            "an evicted key's lock goes with it"
        );
        tick();
        // 2 is gone: a miss, written back, evicting 3 (used before 1 and 4).
        assert_eq!(fetch(store, 2, "v"), Served::Store);
        assert_eq!(entries(&folder), [1, 2, 4]);
        tick();

        // A stale value served is a use too.
        let old = now_ms() - 30_000;
        let good = Record::Good(secrets("v"));
        store.write_as_of(&key(2), "entry", &good, old, TTL / 6, later());
        tick();
        stale(store, 2);
        hit(store, 1);
        hit(store, 4);
        stale(store, 2);
        assert_eq!(fetch(store, 5, "v"), Served::Store);
        assert_eq!(entries(&folder), [2, 4, 5]);
    }

    #[test]
    fn a_key_being_fetched_is_not_evicted() {
        let folder = folder("inuse", 2, 1 << 20);
        let store = &folder.store;
        fetch(store, 1, "v");
        tick();
        fetch(store, 2, "v");
        tick();
        // 1 is the least recently used, but a fetch holds its lock: 2 goes instead.
        let held = store.lock(&key(1), false).unwrap();
        fetch(store, 3, "v");
        assert_eq!(entries(&folder), [1, 3]);
        drop(held);
        // With every other key in use, nothing is evicted and the new entry is not written.
        let one = store.lock(&key(1), false).unwrap();
        let three = store.lock(&key(3), false).unwrap();
        assert_eq!(fetch(store, 4, "v"), Served::Store);
        assert_eq!(entries(&folder), [1, 3]);
        drop((one, three));
    }

    #[test]
    fn the_byte_bound_holds() {
        let folder = folder("bytes", 100, 1000);
        let store = &folder.store;
        let value = "x".repeat(300);
        for n in 1..=6 {
            fetch(store, n, &value);
            assert!(bytes(&folder) <= 1000, "{} bytes", bytes(&folder));
            tick();
        }
        // About 420 bytes an entry: the two most recent fit.
        assert_eq!(entries(&folder), [5, 6]);
        // An entry larger than the whole bound is never written, and evicts nothing.
        assert_eq!(fetch(store, 7, &"y".repeat(2000)), Served::Store);
        assert_eq!(entries(&folder), [5, 6]);
        assert_eq!(fetch(store, 7, &"y".repeat(2000)), Served::Store);
    }

    #[test]
    fn what_no_fetch_can_use_is_swept_other_files_are_left() {
        let folder = folder("sweep", 100, 1 << 20);
        let store = &folder.store;
        // Usable up to ttl + max_stale; swept a minute after that.
        let limit = TTL + TTL + Duration::from_secs(60);
        let plant = |name: &str, age: Duration| {
            let path = folder.path.join(name);
            std::fs::write(&path, "x").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
        };
        let past = limit + Duration::from_secs(5);
        let within = limit - Duration::from_secs(5);
        plant(&format!("{}.entry", key(1).0), past);
        plant(&format!("{}.failed", key(1).0), past);
        plant(&format!("{}.lock", key(1).0), past);
        plant(&format!("{}.entry", key(2).0), within);
        plant(&format!("{}.lock", key(3).0), past);
        plant(&format!(".{}.77.entry", key(4).0), Duration::from_secs(61));
        plant(&format!(".{}.78.entry", key(5).0), Duration::from_secs(30));
        plant("jwks.json", past);
        // A fetch holds 3's old lock: it stays.
        let held = store.lock(&key(3), false).unwrap();
        fetch(store, 6, "v");
        drop(held);
        let mut left: Vec<String> = std::fs::read_dir(&folder.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort_unstable();
        let mut expected = vec![
            format!("{}.entry", key(2).0),
            format!("{}.lock", key(3).0),
            format!(".{}.78.entry", key(5).0),
            format!("{}.entry", key(6).0),
            format!("{}.lock", key(6).0),
            "jwks.json".to_owned(),
            FOLDER_LOCK.to_owned(),
        ];
        expected.sort_unstable();
        assert_eq!(left, expected);
    }

    #[test]
    fn the_tally_follows_the_folder_and_an_old_one_is_recounted() {
        let folder = folder("tally", 100, 1 << 20);
        let store = &folder.store;
        let counted = || {
            let lock = store.open_at(FOLDER_LOCK, libc::O_RDWR).unwrap();
            let (count, bytes, _) = tally(&lock).unwrap();
            (count, bytes)
        };
        let actual = || (entries(&folder).len() as u64, bytes(&folder));
        for n in 0..5 {
            fetch(store, n, &"v".repeat(n * 10));
        }
        assert_eq!(counted(), actual());
        // A failure beside an entry, an entry replaced by a larger one: one key each.
        let failed = Record::Failed(ErrorKind::Unavailable, "down".into());
        store.write(&key(1), "failed", &failed, later());
        store.write(&key(2), "entry", &Record::Good(secrets("longer")), later());
        let (count, bytes) = counted();
        assert_eq!(count, 5);
        assert_eq!(bytes, actual().1);

        // Files the tally does not know of (planted, or left by a stopped writer) are
        // counted at the next scan: at once when the tally is old.
        std::fs::write(folder.path.join(format!("{}.entry", key(9).0)), "x").unwrap();
        fetch(store, 6, "v");
        assert_eq!(counted().0, 6, "a recent tally is trusted");
        let lock = store.open_at(FOLDER_LOCK, libc::O_RDWR).unwrap();
        let (count, bytes, scanned) = tally(&lock).unwrap();
        set_tally(&lock, count, bytes, scanned - SCAN_EVERY_MS - 1);
        fetch(store, 7, "v");
        assert_eq!(counted(), (8, actual().1));
        // Garbage is no tally: a scan.
        std::fs::write(folder.path.join(FOLDER_LOCK), "1 2\n").unwrap();
        fetch(store, 8, "v");
        assert_eq!(counted(), (9, actual().1));
    }

    #[test]
    fn concurrent_writers_never_exceed_the_bound() {
        let folder = Arc::new(folder("concurrent", 5, 1 << 20));
        WRITE_PAUSE_US.store(2000, Ordering::Relaxed);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (folder, done) = (folder.clone(), done.clone());
            std::thread::spawn(move || {
                let mut most = 0;
                let mut looks = 0;
                while !done.load(Ordering::SeqCst) {
                    most = most.max(entries(&folder).len());
                    looks += 1;
                }
                (most, looks)
            })
        };
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let folder = folder.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        fetch(&folder.store, t * 100 + n, "v");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        WRITE_PAUSE_US.store(0, Ordering::Relaxed);
        let (most, looks) = watcher.join().unwrap();
        assert!(looks > 10, "the watcher looked {looks} times");
        assert!(most <= 5, "{most} entries at once, bound 5");
        assert_eq!(entries(&folder).len(), 5);
    }

    #[test]
    fn entries_written_together_expire_apart_within_the_spread() {
        let low = TTL * SPREAD_FROM as u32 / 1000;
        let draws: Vec<Duration> = (0..10_000).map(|_| spread(TTL)).collect();
        assert!(draws.iter().all(|d| (low..=TTL).contains(d)));
        let least = draws.iter().min().unwrap();
        let most = draws.iter().max().unwrap();
        assert!(*least < low + TTL / 100, "{least:?}: the low end is drawn");
        assert!(*most > TTL - TTL / 100, "{most:?}: the high end is drawn");

        let folder = folder("spread", 100, 1 << 20);
        let store = &folder.store;
        for n in 0..40 {
            fetch(store, n, "v");
        }
        let mut expiries: Vec<u128> = (0..40)
            .map(|n| {
                let entry = store.read(&key(n), "entry").unwrap();
                assert!((low..=TTL).contains(&entry.fresh), "{:?}", entry.fresh);
                entry.written + entry.fresh.as_millis()
            })
            .collect();
        expiries.sort_unstable();
        expiries.dedup();
        assert!(
            expiries.len() >= 30,
            "{} distinct expiries of 40",
            expiries.len()
        );

        // An entry is fresh for its own spread ttl, not the setting's.
        let fresh = TTL * 9 / 10;
        let written = now_ms() - (fresh + Duration::from_secs(1)).as_millis();
        store.write_as_of(
            &key(50),
            "entry",
            &Record::Good(secrets("old")),
            written,
            fresh,
            later(),
        );
        let (outcome, served) = store.through(&key(50), now_ms(), later(), || Ok(secrets("new")));
        assert_eq!(served, Served::Store);
        assert_eq!(outcome.unwrap().get("value").unwrap().expose(), "new");
    }

    /// Writes key 1 as `age` thousandths of its freshness (the whole ttl) old.
    fn aged(store: &Store, thousandths: u128) {
        let written = now_ms() - TTL.as_millis() * thousandths / 1000;
        store.write_as_of(
            &key(1),
            "entry",
            &Record::Good(secrets("old")),
            written,
            TTL,
            later(),
        );
    }

    #[test]
    fn in_the_refresh_window_one_fetch_calls_the_store_the_others_the_cache() {
        let folder = Arc::new(folder("refresh", 100, 1 << 20));
        // Before the window: no call.
        aged(&folder.store, 850);
        let (_, served) = folder.store.through(&key(1), now_ms(), later(), || {
            panic!("the store is not called before the window")
        });
        assert!(matches!(served, Served::Cache { .. }), "{served:?}");

        aged(&folder.store, 950);
        let calls = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let fetches: Vec<_> = (0..8)
            .map(|_| {
                let (folder, calls, start) = (folder.clone(), calls.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let counted = calls.clone();
                    let (outcome, served) =
                        folder.store.through(&key(1), now_ms(), later(), move || {
                            counted.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(300));
                            Ok(secrets("new"))
                        });
                    let value = outcome.unwrap().get("value").unwrap().expose().to_owned();
                    (served, value)
                })
            })
            .collect();
        let answers: Vec<(Served, String)> =
            fetches.into_iter().map(|f| f.join().unwrap()).collect();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{answers:?}");
        let refreshed: Vec<_> = answers
            .iter()
            .filter(|(served, _)| matches!(served, Served::Refresh { answered: true, .. }))
            .collect();
        assert_eq!(refreshed.len(), 1, "{answers:?}");
        assert_eq!(refreshed[0].1, "new");
        assert!(
            answers
                .iter()
                .filter(|(served, _)| !matches!(served, Served::Refresh { .. }))
                .all(|(served, _)| matches!(served, Served::Cache { .. })),
            "{answers:?}"
        );
        // The entry is new: fresh, out of the window.
        let (_, age, due) = folder
            .store
            .read(&key(1), "entry")
            .unwrap()
            .fresh()
            .unwrap();
        assert!(age < TTL / 2 && !due);
    }

    #[test]
    fn a_refresh_never_waits_and_a_failing_store_leaves_the_entry() {
        let folder = folder("refresh-fails", 100, 1 << 20);
        let store = &folder.store;
        aged(store, 950);
        // Another fetch holds the key's lock: answered from the entry at once.
        let held = store.lock(&key(1), false).unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let answer = store.through(&key(1), now_ms(), later(), || {
                    panic!("the store is not called while another fetch refreshes")
                });
                let _ = sender.send(answer);
            });
            // Never waiting for the lock (a wide margin, not a timing).
            let answer = receiver.recv_timeout(Duration::from_secs(10));
            drop(held);
            let (outcome, served) = answer.expect("answered without waiting for the lock");
            assert!(matches!(served, Served::Cache { .. }), "{served:?}");
            assert_eq!(outcome.unwrap().get("value").unwrap().expose(), "old");
        });
        // Too little time left to call the store: the entry answers.
        let soon = Instant::now() + Duration::from_millis(900);
        let (_, served) = store.through(&key(1), now_ms(), soon, || panic!("no time"));
        assert!(matches!(served, Served::Cache { .. }), "{served:?}");
        // The store is down: the entry, still fresh, answers; it is not replaced.
        let (outcome, served) = store.through(&key(1), now_ms(), later(), || {
            Err(Error::unavailable("down"))
        });
        assert_eq!(
            served,
            Served::Refresh {
                age: match served {
                    Served::Refresh { age, .. } => age,
                    _ => Duration::ZERO,
                },
                answered: false
            }
        );
        assert_eq!(outcome.unwrap().get("value").unwrap().expose(), "old");
        assert!(store.read(&key(1), "entry").unwrap().fresh().unwrap().2);
        // The store denies: that is the answer, as without a cache.
        let (outcome, served) =
            store.through(&key(1), now_ms(), later(), || Err(Error::denied("revoked")));
        assert!(matches!(served, Served::Refresh { answered: true, .. }));
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Denied);
    }
}
