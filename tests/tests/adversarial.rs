//! The adversarial suite: every plugin of the workspace, every variable a job may pass and every
//! one it might try, run as Nomad runs a fetch, against recording servers on loopback.
//!
//! Nothing here names a plugin: the plugins are the workspace's `plugins/*` packages, what each
//! declares a job may pass comes from the binary itself (`<plugin> --help --job-input`, the
//! protocol's job-input model), and the operator's side is `tests/adversarial/<plugin>.toml`
//! (settings whose credentials carry canaries and whose store is the recorder `[OPERATOR]`).
//! A new backend gets the suite by adding that file.
//!
//! For each operator set-up, a baseline run (the job passes nothing) must show the operator's
//! canary at the operator's recorder: the suite can see a credential on the wire. Then every
//! variable is set to a destination of the job's (the recorder `[JOB]`), alone, next to half of
//! each of the job's credentials, and next to each whole one. Whatever happens:
//! - stdout is one protocol answer, stderr is empty, the exit status 0;
//! - no canary of the node's credentials and no request for the node's identity (a metadata
//!   token, an instance role) ever reaches the job's destination;
//! - without a whole credential of the job's own, the job's destination gets no connection
//!   at all;
//! - an error that no server caused says why: it names the variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nomad_secrets_golden::recorder::{Canned, Recorder};
use nomad_secrets_golden::{Outcome, Plugin, Scratch};
use serde_json::Value;

/// What no job-chosen destination may ever see: the node's credentials' canaries, and the
/// requests that ask for the node's identity.
const NEVER_AT_THE_JOBS: &[&str] = &[
    "CANARY-NODE",
    "CANARYNODE",
    "/latest/api/token",
    "X-aws-ec2-metadata-token",
    "Metadata-Flavor",
    "computeMetadata",
    "/metadata/identity/oauth2/token",
];

/// Variables any job might try on any plugin, besides those the plugin declares.
const MIGHT_TRY: &[&str] = &[
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Not LD_PRELOAD: release plugins are static, with no loader to read it (the debug builds
    // these tests run are not, and their loader writes to stderr).
    "VAULT_ADDR",
    "VAULT_AGENT_ADDR",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_REGION",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
    "IMDS_ENDPOINT",
    "AZURE_AUTHORITY_HOST",
    "NOMAD_ADDR",
    "SECRETS_DEADLINE",
    "SECRETS_CACHE_DIR",
    "OP_CONNECT_HOST",
];

/// One plugin's operator side, from `tests/adversarial/<plugin>.toml`.
#[derive(serde::Deserialize)]
struct Profile {
    path: String,
    operator: Vec<Operator>,
}

#[derive(serde::Deserialize)]
struct Operator {
    name: String,
    settings: String,
    /// What the operator's recorder must see in the baseline run ("" for plugins that send
    /// nothing anywhere).
    baseline: String,
}

/// One declared variable, as `--help --job-input` prints it.
#[derive(Clone)]
struct Declared {
    name: String,
    meaning: String,
    credential: Option<String>,
    required: bool,
}

#[test]
fn no_job_variable_aims_the_nodes_credentials() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binaries = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned();
    let plugins = workspace_plugins(&root);
    assert!(plugins.len() >= 6, "the workspace's plugins: {plugins:?}");
    let mut violations = Vec::new();
    let mut runs = 0;
    for name in &plugins {
        let binary = binaries.join(name);
        assert!(
            binary.is_file(),
            "{} is not built: run the suite with `cargo test --workspace`",
            binary.display()
        );
        let profile = root.join(format!("tests/adversarial/{name}.toml"));
        let text = std::fs::read_to_string(&profile).unwrap_or_else(|_| {
            panic!(
                "plugin `{name}` has no {}: say what its operator's settings are (canary \
                 credentials, the store at [OPERATOR])",
                profile.display()
            )
        });
        let profile: Profile = toml::from_str(&text).expect("a valid profile");
        let declared = declarations(&binary);
        for operator in &profile.operator {
            runs += attack(
                name,
                &binary,
                &profile.path,
                operator,
                &declared,
                &mut violations,
            );
        }
    }
    assert!(runs > 500, "only {runs} runs: the suite did not run");
    assert!(
        violations.is_empty(),
        "{} of {runs} hostile runs broke isolation:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Runs every hostile environment against one operator set-up; returns the number of runs.
fn attack(
    plugin: &str,
    binary: &Path,
    path: &str,
    operator: &Operator,
    declared: &[Declared],
    violations: &mut Vec<String>,
) -> usize {
    let scratch = Scratch::new(&format!("adversarial-{plugin}"));
    let files = write_canaries(scratch.path());
    let metadata_token = Canned {
        matches: "computeMetadata/v1/instance/service-accounts/default/token",
        status: 200,
        body: r#"{"access_token":"CANARY-NODE-TOKEN","expires_in":3600,"token_type":"Bearer"}"#
            .to_owned(),
    };
    // Azure's: Key Vault's challenge (a 401 carries it), then IMDS's token.
    let challenge = Canned {
        matches: "GET /secrets/",
        status: 401,
        body: r#"{"error":{"code":"Unauthorized","message":"AKV10000"}}"#.to_owned(),
    };
    let imds_token = Canned {
        matches: "/metadata/identity/oauth2/token",
        status: 200,
        body: r#"{"access_token":"CANARY-NODE-TOKEN","expires_in":"3599","expires_on":"4102444800","resource":"https://vault.azure.net","token_type":"Bearer"}"#.to_owned(),
    };
    let canned = vec![metadata_token, challenge, imds_token];
    let ours = Recorder::start(canned.clone());
    let jobs = Recorder::start(canned);
    // The operator's store over TLS, for clients that send credentials only over TLS.
    let (pki, pki_files) = nomad_secrets_golden::pki::pki(scratch.path());
    let ours_tls = ours.with_tls(pki.tls_config());
    let mut settings = operator
        .settings
        .replace("[OPERATOR_TLS]", &ours_tls)
        .replace("[OPERATOR_CA]", &pki_files.ca.display().to_string())
        .replace("[OPERATOR]", &ours.url())
        .replace("[FILES]", &files.display().to_string());
    for (placeholder, file) in [
        ("[TOKEN_FILE]", "token"),
        ("[SECRET_ID_FILE]", "secret-id"),
        ("[AWS_CREDENTIALS_FILE]", "aws-credentials"),
    ] {
        settings = settings.replace(placeholder, &files.join(file).display().to_string());
    }
    settings.push_str("\ndeadline = \"3s\"\n");
    let installed = Plugin::install(binary, plugin, Some(&settings), 0o644);
    let case = format!("{plugin} ({})", operator.name);

    let baseline = fetch(&installed, path, &BTreeMap::new());
    if !ours.received().contains(&operator.baseline) {
        violations.push(format!(
            "{case}: the baseline run never showed `{}` at the operator's store, so this \
             suite could not see a leak (answer: {})",
            operator.baseline, baseline.stdout
        ));
    }
    check_answer(&case, "no job variables", &baseline, violations);

    let mut runs = 1;
    for (context_name, context, whole) in contexts(declared) {
        for variable in variables(declared) {
            if context.contains_key(&variable) || variable.starts_with("NOMAD_") {
                continue;
            }
            let mut env = context.clone();
            let aimed = match variable.contains("HOST") || variable.ends_with("_IP") {
                true => jobs.host_port(),
                false => jobs.url(),
            };
            env.insert(variable.clone(), aimed);
            jobs.clear();
            let outcome = fetch(&installed, path, &env);
            runs += 1;
            let what = format!("`{variable}` aimed at the job's server, {context_name}");
            check_answer(&case, &what, &outcome, violations);
            let seen = jobs.received();
            for never in NEVER_AT_THE_JOBS {
                if seen.contains(never) {
                    violations.push(format!(
                        "{case}: {what}: the job's server saw `{never}` (answer: {})",
                        outcome.stdout.trim()
                    ));
                }
            }
            if !whole && jobs.connections() > 0 {
                violations.push(format!(
                    "{case}: {what}: the job's server got a connection though the job passed no \
                     whole credential of its own (answer: {})",
                    outcome.stdout.trim()
                ));
            }
            let error = error_of(&outcome);
            let names_why = env.keys().any(|name| error.contains(name.as_str()));
            if !error.is_empty() && jobs.connections() == 0 && ours.connections() == 0 && !names_why
            {
                violations.push(format!(
                    "{case}: {what}: refused without naming the variable: {error}"
                ));
            }
            ours.clear();
        }
    }
    runs + identity_comes_first(plugin, binary, path, &settings, &ours, violations)
}

/// With `identity_required`, the same operator set-up denies a run without a token, and a
/// token of another job, before its backend reaches the store; the right job's token gets
/// through to the store. The key set and token are `examples/identity`'s (job `demo`).
fn identity_comes_first(
    plugin: &str,
    binary: &Path,
    path: &str,
    settings: &str,
    ours: &Recorder,
    violations: &mut Vec<String>,
) -> usize {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/identity");
    let token = std::fs::read_to_string(examples.join("demo.jwt")).unwrap();
    let settings = format!(
        "{settings}identity_jwks_file = \"{}\"\nidentity_required = true\n",
        examples.join("jwks.json").display()
    );
    let installed = Plugin::install(binary, plugin, Some(&settings), 0o644);
    let runs = [
        ("demo", None, Some("requires a verified workload identity")),
        (
            "other",
            Some(token.trim()),
            Some("a token proves only the job"),
        ),
        ("demo", Some(token.trim()), None),
    ];
    for (job, token, denied) in runs {
        let mut env: BTreeMap<String, String> = [
            ("CPI_OPERATION", "fetch"),
            ("NOMAD_NAMESPACE", "default"),
            ("NOMAD_JOB_ID", job),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(token) = token {
            env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token.to_owned());
        }
        ours.clear();
        let child = installed.command(&["fetch", path], &env).spawn().unwrap();
        let outcome = Outcome::wait(child, Duration::from_secs(15));
        let case = format!("{plugin} with identity_required, job `{job}`");
        check_answer(&case, "identity", &outcome, violations);
        let error = error_of(&outcome);
        match denied {
            Some(says) if !error.contains(says) || ours.connections() > 0 => {
                violations.push(format!(
                    "{case}: expected a denial saying `{says}` before any store call \
                     ({} connections): {}",
                    ours.connections(),
                    outcome.stdout.trim()
                ));
            }
            None if error.contains("workload identity") => violations.push(format!(
                "{case}: the job's own token was not accepted: {error}"
            )),
            _ => {}
        }
    }
    runs.len()
}

/// The job's credential contexts: none, each half credential (one required part of a pair,
/// or an optional part alone), each whole one. `true` marks a whole credential.
fn contexts(declared: &[Declared]) -> Vec<(String, BTreeMap<String, String>, bool)> {
    let mut list = vec![(
        "with no credential of its own".to_owned(),
        BTreeMap::new(),
        false,
    )];
    let mut credentials: BTreeMap<&str, Vec<&Declared>> = BTreeMap::new();
    for d in declared {
        if let Some(credential) = &d.credential {
            credentials.entry(credential).or_default().push(d);
        }
    }
    let value = |d: &Declared| format!("job-credential-{}", d.name.to_ascii_lowercase());
    for (credential, parts) in credentials {
        let required: Vec<&&Declared> = parts.iter().filter(|d| d.required).collect();
        for part in &parts {
            if part.required && required.len() < 2 {
                continue;
            }
            list.push((
                format!("with only `{}` of its {credential}", part.name),
                BTreeMap::from([(part.name.clone(), value(part))]),
                false,
            ));
        }
        list.push((
            format!("with its whole {credential}"),
            required
                .iter()
                .map(|d| (d.name.clone(), value(d)))
                .collect(),
            true,
        ));
    }
    list
}

/// Every variable to try: the declared ones (a family `X_*` as `X_PROBE`) and [`MIGHT_TRY`].
fn variables(declared: &[Declared]) -> Vec<String> {
    let mut names: Vec<String> = declared
        .iter()
        .filter(|d| d.meaning != "credential")
        .map(|d| d.name.replace('*', "_PROBE"))
        .chain(MIGHT_TRY.iter().map(|n| (*n).to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A fetch as Nomad runs it, as job `api` of namespace `default`.
fn fetch(plugin: &Plugin, path: &str, job: &BTreeMap<String, String>) -> Outcome {
    let mut env = job.clone();
    env.insert("CPI_OPERATION".into(), "fetch".into());
    env.insert("NOMAD_NAMESPACE".into(), "default".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let child = plugin.command(&["fetch", path], &env).spawn().unwrap();
    Outcome::wait(child, Duration::from_secs(15))
}

/// The protocol's rules for any answer: one JSON value with a string result map or an error,
/// exit status 0, nothing on stderr.
fn check_answer(case: &str, what: &str, outcome: &Outcome, violations: &mut Vec<String>) {
    let answer: Option<Value> = serde_json::from_str(outcome.stdout.trim()).ok();
    let shaped = match &answer {
        Some(Value::Object(map)) if map.len() == 1 => {
            map.get("error").is_some_and(Value::is_string)
                || map
                    .get("result")
                    .and_then(Value::as_object)
                    .is_some_and(|r| r.values().all(Value::is_string))
        }
        _ => false,
    };
    if !shaped || outcome.status != "0" || !outcome.stderr.is_empty() {
        violations.push(format!(
            "{case}: {what}: not a protocol answer: status {}, stdout {:?}, stderr {:?}",
            outcome.status, outcome.stdout, outcome.stderr
        ));
    }
}

/// The error text of an answer, or "" for a result.
fn error_of(outcome: &Outcome) -> String {
    serde_json::from_str::<Value>(outcome.stdout.trim())
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The node's credentials, each with a canary, and a folder of secrets for `file`.
fn write_canaries(dir: &Path) -> PathBuf {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("token", "CANARY-NODE-TOKEN\n");
    write("secret-id", "CANARY-NODE-SECRET-ID\n");
    write(
        "aws-credentials",
        "[default]\naws_access_key_id = AKIACANARYNODE000000\naws_secret_access_key = CANARY-NODE-SECRET-KEY\n",
    );
    write("db.json", "{\"password\":\"a-value\"}\n");
    dir.to_owned()
}

/// What a plugin declares a job may pass.
fn declarations(binary: &Path) -> Vec<Declared> {
    let output = std::process::Command::new(binary)
        .args(["--help", "--job-input"])
        .env_clear()
        .output()
        .expect("run the plugin");
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "`{} --help --job-input` is not a JSON list",
            binary.display()
        )
    });
    list.iter()
        .map(|d| Declared {
            name: d["name"].as_str().unwrap().to_owned(),
            meaning: d["meaning"].as_str().unwrap().to_owned(),
            credential: d["credential"].as_str().map(str::to_owned),
            required: d["required"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// The binary names of the workspace's `plugins/*` packages.
fn workspace_plugins(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let toml: toml::Table = toml::from_str(&text).unwrap();
        let bin = toml
            .get("bin")
            .and_then(|b| b.as_array())
            .and_then(|b| b.first())
            .and_then(|b| b.get("name"))
            .and_then(|n| n.as_str());
        let package = toml["package"]["name"].as_str().unwrap();
        let name = bin.unwrap_or_else(|| package.trim_start_matches("nomad-secrets-"));
        names.push(name.to_owned());
    }
    names.sort();
    names
}
