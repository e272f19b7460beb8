//! The node-local cache (`cache_ttl`, `cache_max_stale`), proved on the `probe` backend's
//! `store/` paths, which count their calls and can be made unreachable or denying.
//! Cache folders are made under /dev/shm (tmpfs), as the cache requires memory-backed storage.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nomad_secrets_golden::{Outcome, Plugin, Scratch, nomad_env};

const PROBE: &str = env!("CARGO_BIN_EXE_probe");

/// A store folder (calls, switches), a tmpfs cache folder and an audit log for one test.
struct Setup {
    _scratch: Scratch,
    store: PathBuf,
    cache: PathBuf,
    audit: PathBuf,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let scratch = Scratch::new(label);
        let store = scratch.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let cache = PathBuf::from(format!(
            "/dev/shm/nomad-secrets-test-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&cache);
        let audit = scratch.path().join("audit.jsonl");
        Setup {
            _scratch: scratch,
            store,
            cache,
            audit,
        }
    }

    fn plugin(&self, ttl: &str, max_stale: &str) -> Plugin {
        self.plugin_in(&self.cache, ttl, max_stale)
    }

    fn plugin_in(&self, cache: &Path, ttl: &str, max_stale: &str) -> Plugin {
        self.plugin_with(cache, ttl, max_stale, "")
    }

    /// With `extra` settings lines (a `deadline`, say).
    fn plugin_with(&self, cache: &Path, ttl: &str, max_stale: &str, extra: &str) -> Plugin {
        let settings = format!(
            "store = \"{}\"\ncache_ttl = \"{ttl}\"\ncache_max_stale = \"{max_stale}\"\ncache_dir = \"{}\"\naudit_log = \"{}\"\n{extra}",
            self.store.display(),
            cache.display(),
            self.audit.display()
        );
        Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644)
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.store.join("calls"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The `source` of each audit line so far.
    fn sources(&self) -> Vec<String> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["source"].as_str().unwrap_or("(none)").to_owned()
            })
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

fn env(token: &str) -> BTreeMap<String, String> {
    nomad_env(
        "fetch",
        &[
            ("TOKEN", token),
            ("NOMAD_JOB_ID", "api"),
            ("NOMAD_NAMESPACE", "default"),
        ],
    )
}

fn ok(outcome: &Outcome) -> &str {
    outcome.check_contract("fetch").unwrap();
    assert!(outcome.stdout.starts_with("{\"result\""), "{outcome:?}");
    &outcome.stdout
}

#[test]
fn two_hundred_concurrent_fetches_of_one_secret_cost_one_call() {
    let setup = Setup::new("burst");
    let plugin = setup.plugin("60s", "1h");
    let children: Vec<_> = (0..200)
        .map(|_| {
            plugin
                .command(&["fetch", "store/db"], &env("team-a"))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let outcome = Outcome::wait(child, Duration::from_secs(60));
        assert_eq!(
            ok(&outcome),
            "{\"result\":{\"token\":\"team-a\",\"value\":\"CANARY-stored\"}}\n"
        );
    }
    assert_eq!(setup.calls(), 1, "one call to the store for 200 fetches");
    let sources = setup.sources();
    assert_eq!(sources.iter().filter(|s| *s == "store").count(), 1);
    assert_eq!(sources.iter().filter(|s| *s == "cache").count(), 199);
}

#[test]
fn a_second_identity_is_never_served_the_firsts_value() {
    let setup = Setup::new("identity");
    let plugin = setup.plugin("60s", "1h");
    let first = plugin.run(&["fetch", "store/db"], &env("team-a"));
    assert!(ok(&first).contains("team-a"));
    let second = plugin.run(&["fetch", "store/db"], &env("team-b"));
    assert!(ok(&second).contains("team-b"), "{second:?}");
    // Another job with the node's credentials is another entry too.
    let other_job = nomad_env(
        "fetch",
        &[
            ("TOKEN", "team-a"),
            ("NOMAD_JOB_ID", "web"),
            ("NOMAD_NAMESPACE", "default"),
        ],
    );
    ok(&plugin.run(&["fetch", "store/db"], &other_job));
    assert_eq!(setup.calls(), 3);
    // The same identity again: from the cache.
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 3);
}

#[test]
fn while_the_store_is_down_the_last_value_is_served_up_to_max_stale() {
    let setup = Setup::new("stale");
    let plugin = setup.plugin("1s", "4s");
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    std::fs::write(setup.store.join("down"), "").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Older than the TTL, younger than max_stale: the store is tried, then the stale value.
    let stale = plugin.run(&["fetch", "store/db"], &env("team-a"));
    assert!(ok(&stale).contains("CANARY-stored"));
    assert_eq!(setup.sources().last().unwrap(), "stale-cache");
    std::thread::sleep(Duration::from_millis(3500));
    // Older than max_stale: the store's error.
    let too_old = plugin.run(&["fetch", "store/db"], &env("team-a"));
    too_old.check_contract("fetch").unwrap();
    assert!(too_old.stdout.contains("unreachable"), "{too_old:?}");
    assert_eq!(setup.calls(), 3);
}

#[test]
fn a_denial_is_never_cached_nor_answered_from_the_cache() {
    let setup = Setup::new("denial");
    let plugin = setup.plugin("1s", "1h");
    std::fs::write(setup.store.join("deny"), "").unwrap();
    let denied = plugin.run(&["fetch", "store/db"], &env("team-a"));
    assert!(denied.stdout.contains("denies"), "{denied:?}");
    std::fs::remove_file(setup.store.join("deny")).unwrap();
    // Not cached: the next fetch calls the store and succeeds.
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 2);
    // A good entry exists; once it is past its TTL, a denial is the answer, never the entry.
    std::fs::write(setup.store.join("deny"), "").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let denied = plugin.run(&["fetch", "store/db"], &env("team-a"));
    assert!(denied.stdout.contains("denies"), "{denied:?}");
}

#[test]
fn entries_planted_or_corrupted_by_another_user_are_ignored() {
    let setup = Setup::new("planted");
    let plugin = setup.plugin("60s", "1h");
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    let entry = std::fs::read_dir(&setup.cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "entry"))
        .expect("an entry was written");
    assert_eq!(
        std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Another user's file (as if planted by uid 1000): a miss.
    std::os::unix::fs::chown(&entry, Some(1000), Some(1000)).unwrap();
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 2);
    // Our own file, but garbage: a miss, never a crash.
    std::fs::write(&entry, b"nomad-secrets-cache 1\n\xff\xfe garbage").unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 3);
    // Readable by others: a miss.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 4);
}

#[test]
fn a_cache_folder_that_is_a_symlink_or_on_disk_is_refused() {
    let setup = Setup::new("symlink");
    std::fs::create_dir_all(&setup.cache).unwrap();
    let link = setup.cache.with_extension("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&setup.cache, &link).unwrap();
    let plugin = setup.plugin_in(&link, "60s", "1h");
    for _ in 0..2 {
        ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    }
    assert_eq!(setup.calls(), 2, "no cache through a symlink");
    let audit = std::fs::read_to_string(&setup.audit).unwrap();
    assert!(audit.contains("is a symlink: refused"), "{audit}");
    let check = plugin.run(&["check"], &BTreeMap::new());
    assert!(check.stdout.contains("cache     FAILED"), "{check:?}");
    assert_ne!(
        check.status, "0",
        "check fails when the cache cannot be used"
    );
    let _ = std::fs::remove_file(&link);

    // A folder on a disk (the scratch folder is not tmpfs here): no cache either.
    let on_disk = setup.store.join("cache");
    let plugin = setup.plugin_in(&on_disk, "60s", "1h");
    let check = plugin.run(&["check"], &BTreeMap::new());
    if check.stdout.contains("memory-backed filesystem") {
        ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
        ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
        assert_eq!(setup.calls(), 4);
    }
}

#[test]
fn check_shows_the_cache() {
    let setup = Setup::new("check");
    let plugin = setup.plugin("30s", "2h");
    let check = plugin.run(&["check"], &BTreeMap::new());
    assert!(
        check
            .stdout
            .contains("cache     ttl 30s, stale values up to 7200s"),
        "{check:?}"
    );
    assert!(check.stdout.contains(setup.cache.to_str().unwrap()));
}

/// A folder under /dev/shm removed at the end of a test.
struct ShmDir(PathBuf);

impl ShmDir {
    fn new(label: &str) -> ShmDir {
        let path = PathBuf::from(format!(
            "/dev/shm/nomad-secrets-test-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
        ShmDir(path)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Two fetches through a plugin whose cache folder is `cache`: both call the store, the audit
/// says why, and `check` fails.
fn refused(setup: &Setup, cache: &Path, why: &str) {
    let plugin = setup.plugin_in(cache, "60s", "1h");
    let before = setup.calls();
    for _ in 0..2 {
        ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    }
    assert_eq!(
        setup.calls(),
        before + 2,
        "no cache in `{}`",
        cache.display()
    );
    let audit = std::fs::read_to_string(&setup.audit).unwrap();
    let last = audit.lines().last().unwrap();
    assert!(last.contains(why), "{last}");
    let check = plugin.run(&["check"], &BTreeMap::new());
    assert!(check.stdout.contains("cache     FAILED"), "{check:?}");
    assert!(check.stdout.contains(why), "{check:?}");
    assert_ne!(check.status, "0", "{check:?}");
}

#[test]
fn a_cache_folder_below_a_folder_another_user_controls_is_refused() {
    use std::os::unix::fs::{PermissionsExt as _, chown, symlink};
    let setup = Setup::new("ancestors");

    // A parent folder another local user owns: they could swap the cache folder.
    let theirs = ShmDir::new("theirs");
    std::fs::create_dir(&theirs.0).unwrap();
    std::fs::set_permissions(&theirs.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&theirs.0, Some(1000), Some(1000)).unwrap();
    refused(&setup, &theirs.0.join("cache"), "is owned by uid 1000");

    // A parent folder a group may write (and not sticky).
    let shared = ShmDir::new("group");
    std::fs::create_dir(&shared.0).unwrap();
    std::fs::set_permissions(&shared.0, std::fs::Permissions::from_mode(0o775)).unwrap();
    refused(&setup, &shared.0.join("cache"), "others may write it");

    // A symlink above the cache folder (not only the folder itself) is never followed.
    let real = ShmDir::new("real");
    std::fs::create_dir(&real.0).unwrap();
    let link = ShmDir::new("link");
    symlink(&real.0, &link.0).unwrap();
    refused(&setup, &link.0.join("cache"), "is a symlink: refused");
    assert!(
        !real.0.join("cache").exists(),
        "nothing is created through the symlink"
    );

    // A folder of root's or ours, below the sticky /dev/shm: used.
    let mine = ShmDir::new("mine");
    std::fs::create_dir(&mine.0).unwrap();
    std::fs::set_permissions(&mine.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = setup.plugin_in(&mine.0.join("a/cache"), "60s", "1h");
    let before = setup.calls();
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), before + 1, "cached");
    let check = plugin.run(&["check"], &BTreeMap::new());
    assert_eq!(check.status, "0", "{check:?}");
}

#[test]
fn a_short_deadline_never_serves_a_stale_value_without_asking_the_store() {
    let setup = Setup::new("short");
    // 700 ms: the probe's store takes 300 ms, so there is time to call it, but not the 1.5 s
    // that racing it against a stale value needs.
    let plugin = setup.plugin_with(&setup.cache, "1s", "1h", "deadline = \"700ms\"\n");
    let stored = (0..5).any(|_| {
        let first = plugin.run(&["fetch", "store/db"], &env("team-a"));
        first.stdout.starts_with("{\"result\"")
    });
    assert!(stored, "a first fetch filled the cache");

    // The token is revoked: once the entry is past its TTL, the store's denial is the answer.
    std::fs::write(setup.store.join("deny"), "").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let before = setup.calls();
    let revoked = plugin.run(&["fetch", "store/db"], &env("team-a"));
    revoked.check_contract("fetch").unwrap();
    assert!(
        !revoked.stdout.contains("CANARY-stored"),
        "a stale value without asking the store: {revoked:?}"
    );
    assert_eq!(setup.calls(), before + 1, "the store was called");
    assert_ne!(setup.sources().last().unwrap(), "stale-cache");

    // The store is down: with less than a second to answer, its failure is not enough for a
    // stale value either (a store with no time may fail without having been asked).
    std::fs::remove_file(setup.store.join("deny")).unwrap();
    std::fs::write(setup.store.join("down"), "").unwrap();
    let down = plugin.run(&["fetch", "store/db"], &env("team-a"));
    down.check_contract("fetch").unwrap();
    assert!(!down.stdout.contains("CANARY-stored"), "{down:?}");
    assert_ne!(setup.sources().last().unwrap(), "stale-cache");
}

#[test]
fn entries_past_their_usable_age_are_swept_not_kept_until_reboot() {
    let setup = Setup::new("sweep");
    let plugin = setup.plugin("60s", "60s");
    ok(&plugin.run(&["fetch", "store/first"], &env("team-a")));
    // What an old fetch and a writer stopped mid-write would have left.
    let days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    let minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    for (name, when) in [
        ("0123abcd.entry", days_ago),
        ("0123abcd.lock", days_ago),
        (".4567ef.999.entry", minutes_ago),
    ] {
        let file = std::fs::File::create(setup.cache.join(name)).unwrap();
        file.set_modified(when).unwrap();
        std::fs::set_permissions(
            setup.cache.join(name),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    // The folder is swept when it is scanned: at least every 10 s while it is written (the
    // folder's tally in `folder.flock` says when it last was); as if that were long ago.
    let tally = setup.cache.join("folder.flock");
    let text = std::fs::read_to_string(&tally).unwrap();
    let fields: Vec<&str> = text.trim_end().split(' ').collect();
    assert_eq!(fields.len(), 3, "{text:?}");
    std::fs::write(&tally, format!("{} {} 0\n", fields[0], fields[1])).unwrap();
    let before = std::fs::read_dir(&setup.cache).unwrap().count();
    ok(&plugin.run(&["fetch", "store/second"], &env("team-a")));
    let left: Vec<String> = std::fs::read_dir(&setup.cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for gone in ["0123abcd.entry", "0123abcd.lock", ".4567ef.999.entry"] {
        assert!(!left.contains(&gone.to_owned()), "{gone} swept: {left:?}");
    }
    assert!(before >= 5, "the planted files were there: {before}");
    assert!(
        left.iter().filter(|n| n.ends_with(".entry")).count() == 2,
        "both fresh entries kept: {left:?}"
    );
}

impl Setup {
    /// Every audit line so far.
    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The store's calls so far, by path.
    fn called(&self) -> Vec<String> {
        std::fs::read_to_string(self.store.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The entries in the cache folder: path, bytes, when written and how long fresh (ms).
    fn entries(&self) -> Vec<(PathBuf, u64, u128, u128)> {
        let Ok(names) = std::fs::read_dir(&self.cache) else {
            return Vec::new();
        };
        names
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "entry" || e == "failed"))
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .filter_map(|path| {
                // Read as the cache writes it: format, key, written, fresh (ms), ...
                let text = std::fs::read_to_string(&path).ok()?;
                let lines: Vec<&str> = text.splitn(6, '\n').collect();
                assert_eq!(lines[0], "nomad-secrets-cache 2", "{text}");
                Some((
                    path.clone(),
                    text.len() as u64,
                    lines[2].parse().unwrap(),
                    lines[3].parse().unwrap(),
                ))
            })
            .collect()
    }

    /// Rewrites the one entry as written `age` ago, keeping its freshness; its freshness.
    fn age_entry(&self, thousandths_of_fresh: u128) -> u128 {
        let entries = self.entries();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let (path, _, _, fresh) = &entries[0];
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.splitn(6, '\n').map(str::to_owned).collect();
        lines[2] = (now_ms() - fresh * thousandths_of_fresh / 1000).to_string();
        std::fs::write(path, lines.join("\n")).unwrap();
        *fresh
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Longer than the filesystem clock's tick, so that uses are ordered.
fn tick() {
    std::thread::sleep(Duration::from_millis(30));
}

#[test]
fn past_cache_max_entries_the_least_recently_used_entry_goes() {
    let setup = Setup::new("lru");
    let plugin = setup.plugin_with(&setup.cache, "5m", "1h", "cache_max_entries = 3\n");
    let fetch = |path: &str| {
        ok(&plugin.run(&["fetch", path], &env("team-a")));
        assert!(setup.entries().len() <= 3, "{:?}", setup.entries());
        tick();
    };
    for path in ["store/a", "store/b", "store/c"] {
        fetch(path);
    }
    // Hits, each a use (a's twice): b is now the least recently used.
    for path in ["store/a", "store/b", "store/c", "store/a"] {
        fetch(path);
    }
    fetch("store/d");
    assert_eq!(setup.called(), ["store/a", "store/b", "store/c", "store/d"]);
    // a, c and d are cached; b was evicted and is fetched again.
    for path in ["store/a", "store/c", "store/d", "store/b"] {
        fetch(path);
    }
    assert_eq!(
        setup.called(),
        ["store/a", "store/b", "store/c", "store/d", "store/b"]
    );
    // ... evicting a, used before c and d.
    fetch("store/a");
    assert_eq!(setup.called().len(), 6);
    assert_eq!(setup.entries().len(), 3);
}

#[test]
fn the_byte_bound_holds_whatever_the_entries_sizes() {
    let setup = Setup::new("bytes");
    let plugin = setup.plugin_with(&setup.cache, "5m", "1h", "cache_max_bytes = 2500\n");
    // The token is in the answer: entries of about 1.2 KB, of which two fit.
    let big = "t".repeat(1000);
    for path in ["store/a", "store/b", "store/c", "store/d"] {
        ok(&plugin.run(&["fetch", path], &env(&big)));
        let bytes: u64 = setup.entries().iter().map(|e| e.1).sum();
        assert!(bytes <= 2500, "{bytes} bytes in the folder");
        tick();
    }
    assert_eq!(setup.entries().len(), 2);
    for path in ["store/c", "store/d"] {
        ok(&plugin.run(&["fetch", path], &env(&big)));
    }
    assert_eq!(setup.calls(), 4, "the last two are cached");
    // An answer larger than the whole bound is served, never cached.
    let huge = "h".repeat(3000);
    for _ in 0..2 {
        assert!(ok(&plugin.run(&["fetch", "store/e"], &env(&huge))).contains(&huge));
    }
    assert_eq!(setup.calls(), 6);
    assert_eq!(setup.entries().len(), 2);
}

#[test]
fn concurrent_plugin_processes_never_exceed_the_bound() {
    let setup = Setup::new("bound");
    let plugin = setup.plugin_with(&setup.cache, "5m", "1h", "cache_max_entries = 5\n");
    let cache = setup.cache.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut most, mut looks) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let count = std::fs::read_dir(&cache)
                    .map(|names| {
                        names
                            .flatten()
                            .filter(|e| {
                                let name = e.file_name().to_string_lossy().into_owned();
                                !name.starts_with('.') && name.ends_with(".entry")
                            })
                            .count()
                    })
                    .unwrap_or(0);
                most = most.max(count);
                looks += 1;
            }
            (most, looks)
        })
    };
    let children: Vec<_> = (0..40)
        .map(|n| {
            plugin
                .command(&["fetch", &format!("store/{n}")], &env("team-a"))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(&Outcome::wait(child, Duration::from_secs(60)));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (most, looks) = watcher.join().unwrap();
    assert!(looks > 10, "the folder was looked at {looks} times");
    assert!(most <= 5, "{most} entries at once; the bound is 5");
    assert_eq!(setup.entries().len(), 5);
    assert_eq!(setup.calls(), 40);
}

#[test]
fn entries_written_together_expire_apart_within_the_spread() {
    let setup = Setup::new("spread");
    let plugin = setup.plugin("5m", "1h");
    let children: Vec<_> = (0..20)
        .map(|n| {
            plugin
                .command(&["fetch", &format!("store/{n}")], &env("team-a"))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(&Outcome::wait(child, Duration::from_secs(60)));
    }
    let entries = setup.entries();
    assert_eq!(entries.len(), 20);
    // Fresh for 85% to 100% of the 5 minutes, each its own.
    for (path, _, _, fresh) in &entries {
        assert!(
            (255_000..=300_000).contains(fresh),
            "{}: fresh for {fresh} ms",
            path.display()
        );
    }
    let mut expiries: Vec<u128> = entries.iter().map(|e| e.2 + e.3).collect();
    expiries.sort_unstable();
    expiries.dedup();
    assert!(
        expiries.len() >= 15,
        "{} distinct expiries of 20",
        expiries.len()
    );
}

#[test]
fn in_the_refresh_window_one_fetch_refreshes_the_others_are_served_from_the_cache() {
    let setup = Setup::new("refresh");
    let plugin = setup.plugin("5m", "1h");
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    // Before the last tenth of its life: from the cache, no call.
    setup.age_entry(850);
    ok(&plugin.run(&["fetch", "store/db"], &env("team-a")));
    assert_eq!(setup.calls(), 1);

    // In it (well within: the window is at least 25 s long): 20 fetches at once.
    let fresh = setup.age_entry(930);
    let before = now_ms();
    let children: Vec<_> = (0..20)
        .map(|_| {
            plugin
                .command(&["fetch", "store/db"], &env("team-a"))
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert!(ok(&Outcome::wait(child, Duration::from_secs(60))).contains("CANARY-stored"));
    }
    assert_eq!(setup.calls(), 2, "exactly one store call among 20 fetches");
    let lines = setup.audit_lines();
    let last: Vec<(String, String)> = lines[lines.len() - 20..]
        .iter()
        .map(|line| {
            let field = |name: &str| line[name].as_str().unwrap_or("").to_owned();
            (field("source"), field("cache"))
        })
        .collect();
    let refreshes = last
        .iter()
        .filter(|l| *l == &("store".to_owned(), "refresh".to_owned()))
        .count();
    let cached = last
        .iter()
        .filter(|l| *l == &("cache".to_owned(), String::new()))
        .count();
    assert_eq!((refreshes, cached), (1, 19), "{last:?}");
    // The entry is new, with its own spread.
    let entries = setup.entries();
    assert!(entries[0].2 >= before, "rewritten");
    assert!(entries[0].2 + entries[0].3 > before + fresh / 2);

    // The store is down: the refreshing fetch is answered from the entry, still fresh.
    std::fs::write(setup.store.join("down"), "").unwrap();
    setup.age_entry(950);
    let answer = plugin.run(&["fetch", "store/db"], &env("team-a"));
    assert!(ok(&answer).contains("CANARY-stored"));
    let line = setup.audit_lines().pop().unwrap();
    assert_eq!(line["source"], "cache", "{line}");
    assert_eq!(line["cache"], "refresh failed", "{line}");
    assert_eq!(setup.calls(), 3);
}
