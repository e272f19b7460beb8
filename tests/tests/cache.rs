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
