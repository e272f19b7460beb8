//! Verified workload identity, on the `probe` backend (whose `store/` paths count their calls,
//! so "denied before any store call" is proved, not assumed) with a key set served on loopback
//! and keys made per run. Every plugin runs the same verification: it is the protocol's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nomad_secrets_golden::identity::{self, Signer, claims, key_set};
use nomad_secrets_golden::recorder::{Canned, Recorder};
use nomad_secrets_golden::{Outcome, Plugin, Scratch, nomad_env};
use serde_json::{Value, json};

const PROBE: &str = env!("CARGO_BIN_EXE_probe");
const JWKS: &str = "/.well-known/jwks.json";

/// The cluster's keys, made once per test binary (RSA generation takes a moment).
struct Keys {
    rsa: Signer,
    ed: Signer,
    rotated: Signer,
    stranger: Signer,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: Signer::rsa("rsa-1"),
        ed: Signer::ed25519("ed-1"),
        rotated: Signer::ed25519("ed-2"),
        stranger: Signer::ed25519("rsa-1"),
    })
}

/// A node: the key set server, a store folder, a tmpfs cache folder and an audit log.
struct Node {
    server: Recorder,
    scratch: Scratch,
    cache: PathBuf,
}

impl Node {
    fn new(label: &str, signers: &[&Signer]) -> Node {
        let server = Recorder::start(vec![]);
        let node = Node {
            server,
            scratch: Scratch::new(label),
            cache: PathBuf::from(format!(
                "/dev/shm/nomad-secrets-identity-{label}-{}",
                std::process::id()
            )),
        };
        let _ = std::fs::remove_dir_all(&node.cache);
        std::fs::create_dir_all(node.store()).unwrap();
        node.serve(signers);
        node
    }

    fn serve(&self, signers: &[&Signer]) {
        self.server.answer(vec![Canned {
            matches: JWKS,
            status: 200,
            body: key_set(signers),
        }]);
    }

    fn store(&self) -> PathBuf {
        self.scratch.path().join("store")
    }

    fn audit(&self) -> PathBuf {
        self.scratch.path().join("audit.jsonl")
    }

    /// The probe with verification on, `required`, and `extra` settings lines.
    fn plugin(&self, extra: &str) -> Plugin {
        let settings = format!(
            "store = \"{}\"\naudit_log = \"{}\"\nidentity_jwks_url = \"{}{JWKS}\"\n\
             identity_required = true\n{extra}",
            self.store().display(),
            self.audit().display(),
            self.server.url(),
        );
        Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644)
    }

    /// The same with the node cache on (the key set is kept there).
    fn cached_plugin(&self, extra: &str) -> Plugin {
        self.plugin(&format!(
            "cache_ttl = \"1m\"\ncache_dir = \"{}\"\n{extra}",
            self.cache.display()
        ))
    }

    fn store_calls(&self) -> usize {
        std::fs::read_to_string(self.store().join("calls"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn key_set_fetches(&self) -> usize {
        self.server
            .received()
            .matches(&format!("GET {JWKS}"))
            .count()
    }

    fn last_audit(&self) -> Value {
        let text = std::fs::read_to_string(self.audit()).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

/// Fetches `path` as job `job` of `namespace`, passing `token` (if any).
fn fetch(plugin: &Plugin, path: &str, namespace: &str, job: &str, token: Option<&str>) -> Outcome {
    let mut env: BTreeMap<String, String> = nomad_env("fetch", &[]);
    env.insert("NOMAD_NAMESPACE".into(), namespace.into());
    env.insert("NOMAD_JOB_ID".into(), job.into());
    if let Some(token) = token {
        env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token.into());
    }
    let outcome = plugin.run(&["fetch", path], &env);
    if let Some(token) = token {
        let signature = token.rsplit('.').next().unwrap_or_default();
        for shown in [&outcome.stdout, &outcome.stderr] {
            assert!(
                !shown.contains(token) && (signature.len() < 8 || !shown.contains(signature)),
                "the token leaked: {shown}"
            );
        }
    }
    assert_eq!(outcome.status, "0", "{outcome:?}");
    outcome
}

fn answer(outcome: &Outcome) -> Value {
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|_| panic!("not JSON: {outcome:?}"))
}

/// Asserts a denial whose message holds `says`, and that the store was never called.
#[track_caller]
fn assert_denied(node: &Node, outcome: &Outcome, says: &str) {
    let error = answer(outcome)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {outcome:?}"))
        .to_owned();
    assert!(error.contains(says), "expected {says:?} in: {error}");
    assert_eq!(node.store_calls(), 0, "the store was called: {error}");
}

#[test]
fn a_good_token_serves_its_job_and_the_audit_line_says_so() {
    let keys = keys();
    let node = Node::new("good", &[&keys.rsa, &keys.ed]);
    let plugin = node.plugin("");
    for signer in [&keys.rsa, &keys.ed] {
        let token = signer.sign(&claims("payments", "api"));
        let out = fetch(&plugin, "store/db", "payments", "api", Some(&token));
        assert_eq!(answer(&out)["result"]["value"], "CANARY-stored", "{out:?}");
    }
    assert_eq!(node.store_calls(), 2);
    let line = node.last_audit();
    assert_eq!(line["identity"], "verified", "{line}");
    assert_eq!(line["group"], "web");
    assert_eq!(line["task"], "server");
    assert!(
        !line.to_string().contains("eyJ"),
        "the audit line holds a token: {line}"
    );
}

#[test]
fn required_identity_denies_a_run_without_a_token() {
    let node = Node::new("missing", &[&keys().rsa]);
    let out = fetch(&node.plugin(""), "store/db", "payments", "api", None);
    assert_denied(&node, &out, "requires a verified workload identity");
    assert_eq!(node.last_audit()["decision"], "denied");
}

#[test]
fn a_token_proves_only_its_own_job() {
    let keys = keys();
    let node = Node::new("foreign", &[&keys.rsa]);
    let plugin = node.plugin("");
    let other_job = keys.rsa.sign(&claims("payments", "billing"));
    let out = fetch(&plugin, "store/db", "payments", "api", Some(&other_job));
    assert_denied(
        &node,
        &out,
        "job `billing`, but this run is namespace `payments`, job `api`",
    );
    let other_namespace = keys.rsa.sign(&claims("search", "api"));
    let out = fetch(
        &plugin,
        "store/db",
        "payments",
        "api",
        Some(&other_namespace),
    );
    assert_denied(&node, &out, "namespace `search`");
}

#[test]
fn a_dispatched_child_shows_its_parents_token_and_a_lookalike_cannot() {
    let keys = keys();
    let node = Node::new("dispatch", &[&keys.rsa]);
    let plugin = node.plugin(
        "[[allow]]\nnamespace = \"default\"\njob = \"victim\"\npaths = [\"store/*\"]\n\
         [[allow]]\nnamespace = \"default\"\njob = \"batch\"\npaths = [\"echo/*\"]\n",
    );
    // Nomad signs a dispatched run's identity with its parent's ID.
    let child = "batch/dispatch-1700000000-0a1b2c3d";
    let parent_token = keys.rsa.sign(&claims("default", "batch"));
    let out = fetch(&plugin, "echo/x", "default", child, Some(&parent_token));
    assert!(answer(&out)["result"].is_object(), "{out:?}");
    assert_eq!(node.last_audit()["job"], "batch");
    // An ordinary job registered with a child-looking ID has a token naming that ID: it is
    // that job, not `victim`, and without a token it is not served at all.
    let lookalike = "victim/dispatch-1700000000-0a1b2c3d";
    let own = keys.rsa.sign(&claims("default", lookalike));
    let out = fetch(&plugin, "store/db", "default", lookalike, Some(&own));
    assert_denied(&node, &out, "access policy");
    assert_eq!(node.last_audit()["job"], lookalike);
    let out = fetch(&plugin, "store/db", "default", lookalike, None);
    assert_denied(&node, &out, "requires a verified workload identity");
    // Its children name it, their immediate parent, never `victim`.
    let grandchild = format!("{lookalike}/dispatch-1800000000-deadbeef");
    let out = fetch(&plugin, "store/db", "default", &grandchild, Some(&own));
    assert_denied(&node, &out, "access policy");
    let out = fetch(
        &plugin,
        "store/db",
        "default",
        &grandchild,
        Some(&keys.rsa.sign(&claims("default", "victim"))),
    );
    assert_denied(&node, &out, "a token proves only the job it was made for");
}

#[test]
fn a_nested_run_shows_its_immediate_parents_token() {
    let keys = keys();
    let node = Node::new("nested", &[&keys.rsa]);
    let plugin = node.plugin("");
    // A periodic launch of a dispatched periodic job: Nomad signs its immediate parent.
    let parent = "batch/dispatch-1700000000-0a1b2c3d";
    let run = format!("{parent}/periodic-1700000100");
    let token = keys.rsa.sign(&claims("default", parent));
    let out = fetch(&plugin, "echo/x", "default", &run, Some(&token));
    assert!(answer(&out)["result"].is_object(), "{out:?}");
    assert_eq!(node.last_audit()["job"], parent);
}

#[test]
fn time_audience_and_issuer_are_checked() {
    let keys = keys();
    let node = Node::new("claims", &[&keys.rsa]);
    let plugin = node.plugin("identity_issuer = \"https://nomad.example\"");
    let with = |changes: Value| {
        let mut c = claims("payments", "api");
        c["iss"] = json!("https://nomad.example");
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => c.as_object_mut().unwrap().remove(k),
                v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        keys.rsa.sign(&c)
    };
    let now = identity::now();
    let cases = [
        (json!({}), None),
        (json!({"exp": now - 120}), Some("it has expired")),
        (json!({"nbf": now + 600}), Some("not valid yet")),
        (
            json!({"aud": ["vault.io"]}),
            Some("its audience is not `nomad-secrets`"),
        ),
        (json!({"aud": null}), Some("it has no `aud` claim")),
        (
            json!({"iss": "https://evil.example"}),
            Some("its issuer is not"),
        ),
        (json!({"iss": null}), Some("it has no `iss` claim")),
        (
            json!({"nomad_job_id": null}),
            Some("not a Nomad workload identity"),
        ),
        // Within the 30 s leeway: clocks drift.
        (json!({"exp": now - 5}), None),
    ];
    for (changes, denied) in cases {
        let out = fetch(
            &plugin,
            "store/db",
            "payments",
            "api",
            Some(&with(changes.clone())),
        );
        match denied {
            Some(says) => assert_denied(&node, &out, says),
            None => assert!(answer(&out)["result"].is_object(), "{changes}: {out:?}"),
        }
        std::fs::remove_file(node.store().join("calls")).ok();
    }
}

#[test]
fn forged_tokens_are_denied() {
    let keys = keys();
    let node = Node::new("forged", &[&keys.rsa]);
    let plugin = node.plugin("");
    let good = claims("payments", "api");
    let mut elevated = good.clone();
    elevated["nomad_job_id"] = json!("admin");
    let cases = [
        (
            identity::unsigned(&good),
            "its algorithm `none` is not RS256 or EdDSA",
        ),
        (
            keys.rsa.forge_hs256(&good),
            "signed with HS256, but key `rsa-1` is a RS256 key",
        ),
        (
            identity::tampered(&keys.rsa.sign(&good), &elevated),
            "its signature does not match key `rsa-1`",
        ),
        // Signed by a key that is not the cluster's, naming the cluster's key id.
        (
            keys.stranger.sign(&good),
            "signed with EdDSA, but key `rsa-1` is a RS256 key",
        ),
        ("not-a-jwt".to_owned(), "not three base64url parts"),
    ];
    for (token, says) in cases {
        let out = fetch(&plugin, "store/db", "payments", "api", Some(&token));
        assert_denied(&node, &out, says);
    }
}

#[test]
fn a_token_in_another_variable_is_refused() {
    let keys = keys();
    let node = Node::new("variable", &[&keys.rsa]);
    let token = keys.rsa.sign(&claims("payments", "api"));
    let mut env = nomad_env("fetch", &[("NOMAD_TOKEN", &token)]);
    env.insert("NOMAD_NAMESPACE".into(), "payments".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let out = node.plugin("").run(&["fetch", "store/db"], &env);
    assert!(!out.stdout.contains(&token));
    assert_denied(&node, &out, "`NOMAD_TOKEN`");
}

#[test]
fn without_verification_configured_a_token_is_an_error_not_ignored() {
    let keys = keys();
    let scratch = Scratch::new("unconfigured");
    let settings = format!("store = \"{}\"\n", scratch.path().display());
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let token = keys.rsa.sign(&claims("payments", "api"));
    let out = fetch(&plugin, "echo/x", "payments", "api", Some(&token));
    let error = answer(&out)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("cannot be verified"), "{error}");
}

#[test]
fn an_unknown_key_is_fetched_again_at_most_once_a_minute() {
    let keys = keys();
    let node = Node::new("rotation", &[&keys.ed]);
    let plugin = node.cached_plugin("");
    let good = |signer: &Signer| signer.sign(&claims("payments", "api"));
    // The first run fetches the set and keeps it; the next uses the kept one.
    assert!(
        answer(&fetch(
            &plugin,
            "echo/a",
            "payments",
            "api",
            Some(&good(&keys.ed))
        ))["result"]
            .is_object()
    );
    assert!(
        answer(&fetch(
            &plugin,
            "echo/b",
            "payments",
            "api",
            Some(&good(&keys.ed))
        ))["result"]
            .is_object()
    );
    assert_eq!(node.key_set_fetches(), 1);
    // The cluster rotates: a token names a key the kept set lacks. Within a minute of the last
    // fetch it is not asked for again (a flood of bad kids must not flood the agent).
    node.serve(&[&keys.ed, &keys.rotated]);
    let out = fetch(
        &plugin,
        "store/db",
        "payments",
        "api",
        Some(&good(&keys.rotated)),
    );
    assert_denied(&node, &out, "its key `ed-2` is not in the key set");
    assert_eq!(node.key_set_fetches(), 1);
    // A minute later it is: the new key verifies.
    let kept: Vec<PathBuf> = std::fs::read_dir(&node.cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("identity-keys-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(90);
    std::fs::File::options()
        .write(true)
        .open(&kept[0])
        .unwrap()
        .set_modified(minute_ago)
        .unwrap();
    let out = fetch(
        &plugin,
        "echo/c",
        "payments",
        "api",
        Some(&good(&keys.rotated)),
    );
    assert!(answer(&out)["result"].is_object(), "{out:?}");
    assert_eq!(node.key_set_fetches(), 2);
}

#[test]
fn a_hanging_key_set_server_cannot_hold_the_run_past_its_deadline() {
    let keys = keys();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{JWKS}", listener.local_addr().unwrap());
    let scratch = Scratch::new("hang");
    let settings = format!(
        "store = \"{}\"\nidentity_jwks_url = \"{url}\"\ndeadline = \"2s\"\n",
        scratch.path().display()
    );
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let token = keys.rsa.sign(&claims("payments", "api"));
    let started = Instant::now();
    let out = fetch(&plugin, "echo/x", "payments", "api", Some(&token));
    let error = answer(&out)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("identity key set") || error.contains("2s"),
        "{error}"
    );
    // Wide margin: the point is that it ends near the deadline, not at the harness's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[test]
fn policy_rules_may_name_a_group_and_task_only_a_token_proves() {
    let keys = keys();
    let node = Node::new("group", &[&keys.rsa]);
    let rules = "identity_required = false\n\
                 [[allow]]\nnamespace = \"payments\"\njob = \"api\"\ngroup = \"web\"\ntask = \"server\"\npaths = [\"store/*\"]\n";
    // `identity_required` is set twice otherwise: write the settings by hand.
    let settings = format!(
        "store = \"{}\"\naudit_log = \"{}\"\nidentity_jwks_url = \"{}{JWKS}\"\n{rules}",
        node.store().display(),
        node.audit().display(),
        node.server.url(),
    );
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let out = fetch(&plugin, "store/db", "payments", "api", None);
    assert_denied(&node, &out, "access policy");
    let mut sidecar = claims("payments", "api");
    sidecar["nomad_task"] = json!("sidecar");
    sidecar["sub"] = json!("global:payments:api:web:sidecar:secrets");
    let out = fetch(
        &plugin,
        "store/db",
        "payments",
        "api",
        Some(&keys.rsa.sign(&sidecar)),
    );
    assert_denied(&node, &out, "access policy");
    let token = keys.rsa.sign(&claims("payments", "api"));
    let out = fetch(&plugin, "store/db", "payments", "api", Some(&token));
    assert_eq!(answer(&out)["result"]["value"], "CANARY-stored", "{out:?}");
}

#[test]
fn check_reports_the_key_set_or_why_verification_cannot_work() {
    let keys = keys();
    let node = Node::new("check", &[&keys.rsa, &keys.ed]);
    let out = node.plugin("").run(&["check"], &BTreeMap::new());
    assert!(
        out.stdout
            .contains("identity  2 key(s) (rsa-1, ed-1) from `http://127.0.0.1:")
            && out
                .stdout
                .contains("required: runs without a valid token are denied"),
        "{out:?}"
    );
    let scratch = Scratch::new("check-required");
    let settings = format!(
        "store = \"{}\"\nidentity_required = true\n",
        scratch.path().display()
    );
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let out = plugin.run(&["check"], &BTreeMap::new());
    assert!(
        out.stdout
            .contains("identity  FAILED: `identity_required` is true"),
        "{out:?}"
    );
    assert_ne!(out.status, "0", "a failed check exits non-zero: {out:?}");
}
