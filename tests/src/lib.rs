//! Golden-output tests: run a real plugin binary exactly as the Nomad client does.
//!
//! A [`Plugin`] is a built binary copied into a scratch `secrets/` folder with its settings file
//! beside it, as `cargo xtask install` would leave it. [`Plugin::run`] starts it with a cleared
//! environment, argv `[<path>, op, ...]`, stdin `/dev/null` and `/` as working directory.
//!
//! [`Suite`] runs the cases of `cases/<suite>.toml` and compares each [`Outcome`] (exit status,
//! stdout and stderr together) with `cases/<suite>/<case>.snap`. `BLESS=1` rewrites the snapshots;
//! review the diff before committing it. Every case run as Nomad would is also checked against
//! the contract itself (see [`Outcome::check_contract`]), whatever its snapshot says.
#![deny(missing_docs)]

pub mod aws_faults;
pub mod azure;
pub mod drongo;
pub mod gcp_faults;
pub mod http;
pub mod identity;
pub mod imds;
pub mod moto;
pub mod openbao;
pub mod pki;
pub mod recorder;
pub mod server;
pub mod tools;
pub mod vault;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

/// The marker every test secret carries (see [`Outcome::check_no_canary`]).
pub const CANARY: &str = "CANARY";

/// When the Nomad client kills a plugin (Nomad 1.11): every fault must end before it.
pub const NOMAD_KILL: Duration = Duration::from_secs(10);

/// True when `GOLDEN_CASES=faults` (`cargo xtask faults`): suites run their fault cases only,
/// and checks that need every case are skipped.
pub fn only_faults() -> bool {
    std::env::var_os("GOLDEN_CASES").is_some_and(|v| v == "faults")
}

/// Appends one JSON line about a plugin run to the file named by `SUITE_REPORT`, if set: what
/// `cargo xtask leak` and `cargo xtask faults` summarise. One `write` per line, `O_APPEND`, so
/// test binaries running at once do not interleave.
pub fn record_run(
    suite: &str,
    case: &str,
    fault: Option<&str>,
    outcome: &Outcome,
    elapsed: Duration,
) {
    use std::io::Write as _;
    let Some(report) = std::env::var_os("SUITE_REPORT") else {
        return;
    };
    let line = serde_json::json!({
        "suite": suite,
        "case": case,
        "fault": fault,
        "ms": elapsed.as_millis() as u64,
        "scanned_bytes": outcome.scanned().len(),
        "answer": outcome.stdout.lines().next().unwrap_or_default(),
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&report)
        .expect("open SUITE_REPORT");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write SUITE_REPORT");
}

/// A scratch folder, removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new empty folder under the system's temp dir.
    pub fn new(label: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("nomad-secrets-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch folder");
        Scratch { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A plugin installed in a scratch `secrets/` folder.
pub struct Plugin {
    _scratch: Scratch,
    executable: PathBuf,
}

impl Plugin {
    /// Copies `binary` to `<scratch>/secrets/<name>` and writes `settings` (if any) beside it as
    /// `<name>.toml` with `settings_mode`.
    pub fn install(
        binary: &Path,
        name: &str,
        settings: Option<&str>,
        settings_mode: u32,
    ) -> Plugin {
        let scratch = Scratch::new(name);
        let dir = scratch.path().join("secrets");
        std::fs::create_dir_all(&dir).unwrap();
        let executable = dir.join(name);
        if std::fs::hard_link(binary, &executable).is_err() {
            std::fs::copy(binary, &executable).expect("copy the plugin binary");
        }
        if let Some(settings) = settings {
            let file = dir.join(format!("{name}.toml"));
            std::fs::write(&file, settings).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(settings_mode))
                .unwrap();
        }
        Plugin {
            _scratch: scratch,
            executable,
        }
    }

    /// The installed executable.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// A command set up as Nomad sets it up: cleared environment, exact argv. A U+FFFD in a
    /// value becomes the byte 0xFF, so that cases can pass values that are not UTF-8 (a
    /// TOML case file cannot hold one).
    pub fn command(&self, args: &[&str], env: &BTreeMap<String, String>) -> Command {
        use std::os::unix::ffi::OsStringExt as _;
        let mut command = Command::new(&self.executable);
        let raw = env.iter().map(|(name, value)| {
            let parts: Vec<&[u8]> = value.split('\u{fffd}').map(str::as_bytes).collect();
            (name, OsString::from_vec(parts.join(&0xff)))
        });
        command
            .args(args)
            .env_clear()
            .envs(raw)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Fetches each of `paths` once, then `count` fetches of them at once (round robin), and
    /// asserts that every concurrent run keeps the contract, answers with a result, and prints
    /// exactly what the lone run of its path printed.
    pub fn assert_concurrent_fetches(
        &self,
        paths: &[&str],
        env: &BTreeMap<String, String>,
        count: usize,
    ) {
        let expected: Vec<Outcome> = paths.iter().map(|p| self.run(&["fetch", p], env)).collect();
        let children: Vec<_> = (0..count)
            .map(|i| {
                let which = i % paths.len();
                let child = self.command(&["fetch", paths[which]], env).spawn().unwrap();
                (which, child)
            })
            .collect();
        for (which, child) in children {
            let outcome = Outcome::wait(child, Duration::from_secs(60));
            outcome.check_contract("fetch").unwrap();
            assert!(outcome.stdout.starts_with("{\"result\""), "{outcome:?}");
            assert_eq!(outcome, expected[which]);
        }
    }

    /// Starts a run, sends `signal` after `delay`, and collects what it printed.
    pub fn run_and_signal(
        &self,
        args: &[&str],
        env: &BTreeMap<String, String>,
        delay: Duration,
        signal: i32,
    ) -> Outcome {
        let child = self.command(args, env).spawn().expect("start the plugin");
        std::thread::sleep(delay);
        // SAFETY: a signal to our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, signal) };
        Outcome::wait(child, Duration::from_secs(30))
    }

    /// Starts `fetch <path>` (which must not be able to finish within a second), sends SIGTERM
    /// after 500 ms as Nomad does at its fetch timeout, records the run as a fault of `suite`,
    /// and asserts it ended at once in the protocol's SIGTERM error.
    pub fn assert_sigterm_mid_fetch(
        &self,
        suite: &str,
        path: &str,
        env: &BTreeMap<String, String>,
    ) {
        let started = std::time::Instant::now();
        let outcome = self.run_and_signal(
            &["fetch", path],
            env,
            Duration::from_millis(500),
            libc::SIGTERM,
        );
        record_run(
            suite,
            "sigterm-mid-fetch",
            Some("SIGTERM in the middle of a fetch"),
            &outcome,
            started.elapsed(),
        );
        outcome.check_contract("fetch").unwrap();
        assert!(
            outcome
                .stdout
                .contains("stopped by SIGTERM before the backend answered"),
            "{outcome:?}"
        );
    }

    /// Runs to completion (killed after `limit`, so a hung plugin fails the test, not the suite).
    pub fn run(&self, args: &[&str], env: &BTreeMap<String, String>) -> Outcome {
        let child = self.command(args, env).spawn().expect("start the plugin");
        Outcome::wait(child, Duration::from_secs(30))
    }
}

/// The environment Nomad gives `fetch`: `CPI_OPERATION` plus the job's `env {}` entries.
pub fn nomad_env(operation: &str, job: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = job
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("CPI_OPERATION".into(), operation.into());
    env
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit status, or `signal N`.
    pub status: String,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Outcome {
    /// Waits for `child`, killing it after `limit`. Its pipes are drained meanwhile, so a
    /// large answer cannot block it.
    pub fn wait(mut child: std::process::Child, limit: Duration) -> Outcome {
        fn drain<R: std::io::Read + Send + 'static>(
            pipe: Option<R>,
        ) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the plugin") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                break child.wait().expect("wait for the killed plugin");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        use std::os::unix::process::ExitStatusExt as _;
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => "unknown".into(),
        };
        Outcome {
            status,
            stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        }
    }

    /// The snapshot text, with `replacements` (real text -> placeholder) applied.
    pub fn render(&self, replacements: &[(String, String)]) -> String {
        let mut text = format!(
            "status: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.status,
            ensure_newline(&self.stdout),
            ensure_newline(&self.stderr)
        );
        for (real, placeholder) in replacements {
            text = text.replace(real, placeholder);
        }
        mask_times(&text)
    }

    /// Every secret in the fixtures holds `CANARY`: it may appear in a fetched result, and
    /// nowhere else: not in an error, on stderr, or in any other stdout (`check`, `--help`).
    pub fn check_no_canary(&self) -> Result<(), String> {
        for (place, text) in [
            ("stdout that is not a result", self.not_result()),
            ("stderr", &self.stderr),
        ] {
            if text.contains(CANARY) {
                return Err(format!("{place} holds `{CANARY}`"));
            }
        }
        Ok(())
    }

    /// Stdout unless it is a fetched result.
    fn not_result(&self) -> &str {
        let parsed = serde_json::from_str::<serde_json::Value>(&self.stdout).ok();
        match parsed.as_ref().is_some_and(|v| v.get("result").is_some()) {
            true => "",
            false => &self.stdout,
        }
    }

    /// Everything [`Outcome::check_no_canary`] scans.
    pub fn scanned(&self) -> String {
        format!("{}{}", self.not_result(), self.stderr)
    }

    /// Checks what the Nomad client requires of a run it started, whatever the case:
    /// exit 0, nothing on stderr, and stdout exactly one JSON value that is either
    /// `{"result":{string:string}}` or `{"error":"..."}` (or the fingerprint).
    pub fn check_contract(&self, operation: &str) -> Result<(), String> {
        if self.status != "0" {
            return Err(format!(
                "exit status {} (Nomad discards the output)",
                self.status
            ));
        }
        if !self.stderr.is_empty() {
            return Err("stderr is not empty (crashes the Nomad agent)".into());
        }
        let value: serde_json::Value = serde_json::from_str(&self.stdout)
            .map_err(|e| format!("stdout is not exactly one JSON value: {e}"))?;
        let is_error = value.get("error").is_some();
        match operation {
            "fingerprint" if !is_error => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                #[allow(dead_code, reason = "fields are checked by deserializing")]
                struct Fingerprint {
                    r#type: String,
                    version: String,
                }
                let fingerprint: Fingerprint =
                    serde_json::from_value(value).map_err(|e| e.to_string())?;
                if fingerprint.r#type != "secrets" || !go_version_ok(&fingerprint.version) {
                    return Err("bad fingerprint".into());
                }
            }
            _ => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                #[allow(dead_code, reason = "the result's shape is checked by deserializing")]
                enum Response {
                    #[serde(rename = "result")]
                    Result(BTreeMap<String, String>),
                    #[serde(rename = "error")]
                    Error(String),
                }
                let response: Response = serde_json::from_value(value).map_err(|e| {
                    format!("not {{result:{{string:string}}}} nor {{error:string}}: {e}")
                })?;
                if let Response::Error(message) = response {
                    if message.is_empty() {
                        return Err("empty error message".into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Accepts what hashicorp/go-version's `NewVersion` accepts, for the versions we produce:
/// optional `v`, dotted numbers, optional `-pre` and `+meta`.
pub fn go_version_ok(version: &str) -> bool {
    let core = version.strip_prefix('v').unwrap_or(version);
    let core = core.split(['-', '+']).next().unwrap_or("");
    !core.is_empty()
        && core
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

fn ensure_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n[no newline at end]\n")
    }
}

/// `text` with every RFC 3339 time (`2026-11-29T19:46:35.807431288Z`, as a real server's
/// deletion times) written `[TIME]`, so snapshots do not depend on when they ran.
pub fn mask_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let matches_at = |i: usize| {
        bytes.len() >= i + shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                s => s == b,
            })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if matches_at(i) {
            let mut end = i + shape.len();
            if bytes.get(end) == Some(&b'.') {
                end += 1;
                while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
            }
            if bytes.get(end) == Some(&b'Z') {
                end += 1;
            }
            out.push_str("[TIME]");
            i = end;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// One case of a suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Also the snapshot's file name.
    pub name: String,
    /// What the case proves, for readers.
    pub about: String,
    /// argv after the executable; `["fetch", "<path>"]` when only `path` is given.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Shorthand for `args = ["fetch", path]`.
    #[serde(default)]
    pub path: Option<String>,
    /// The job's `env {}` entries (and `NOMAD_*` as Nomad sets them).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run as Nomad does (`CPI_OPERATION` set to the command) unless false.
    #[serde(default = "yes")]
    pub nomad: bool,
    /// `CPI_OPERATION` when it should differ from the command.
    #[serde(default)]
    pub operation: Option<String>,
    /// The settings file's text, replacing the suite's default; `[ROOT]`-style placeholders work.
    #[serde(default)]
    pub settings: Option<String>,
    /// The settings file's mode (default 0644).
    #[serde(default)]
    pub settings_mode: Option<u32>,
    /// Install no settings file at all.
    #[serde(default)]
    pub no_settings: bool,
    /// Suite-level environment entries this case goes without.
    #[serde(default)]
    pub unset: Vec<String>,
    /// The fault this case injects (`cargo xtask faults` runs these): it must end in one
    /// protocol error before Nomad's kill.
    #[serde(default)]
    pub fault: Option<String>,
    /// An audit log the case writes (placeholders allowed): its lines are appended to the
    /// snapshot, with `time` and `duration_ms` masked, and the file is removed.
    #[serde(default)]
    pub audit_log: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    /// Settings used by cases that do not give their own.
    settings: Option<String>,
    /// Environment entries every case gets (a case's own `env` wins, `unset` removes).
    #[serde(default)]
    env: BTreeMap<String, String>,
    case: Vec<Case>,
}

/// The lines of an audit log, each checked to be one JSON object, with the run-dependent
/// `time` and `duration_ms` masked.
pub fn audit_lines(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return "(no audit log)\n".into();
    };
    let mut out = String::new();
    for line in text.lines() {
        let mut value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"));
        let fields = value.as_object_mut().expect("an audit line is an object");
        let time = fields["time"].as_str().unwrap_or_default();
        assert!(time.len() == 24 && time.ends_with('Z'), "bad time {time}");
        fields.insert("time".into(), "[TIME]".into());
        assert!(fields["duration_ms"].is_u64(), "bad duration");
        fields.insert("duration_ms".into(), "[MS]".into());
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

/// The folder that holds the case files.
pub fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// The cases of one plugin, run against its built binary.
pub struct Suite {
    name: String,
    binary: PathBuf,
    plugin: String,
    /// placeholder -> real text, applied to settings, args and env before running, and in
    /// reverse to the output.
    placeholders: Vec<(String, String)>,
}

impl Suite {
    /// The suite `cases/<name>.toml` for the binary `binary` installed as `plugin`.
    pub fn new(name: &str, binary: &str, plugin: &str) -> Suite {
        Suite {
            name: name.into(),
            binary: binary.into(),
            plugin: plugin.into(),
            placeholders: vec![("[VERSION]".into(), env!("CARGO_PKG_VERSION").into())],
        }
    }

    /// Replaces `placeholder` with `real` in the inputs and `real` with `placeholder` in outputs.
    /// Placeholders apply in the order they are added: add the longer text first.
    #[must_use]
    pub fn placeholder(mut self, placeholder: &str, real: &str) -> Suite {
        self.placeholders.push((placeholder.into(), real.into()));
        self
    }

    fn fill(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (placeholder, real) in &self.placeholders {
            text = text.replace(placeholder, real);
        }
        text
    }

    /// Runs every case; panics with a summary of the ones that differ.
    pub fn run(&self) {
        let file = cases_dir().join(format!("{}.toml", self.name));
        let text = std::fs::read_to_string(&file).expect("read the suite file");
        let suite: SuiteFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
        let snapshots = cases_dir().join(&self.name);
        std::fs::create_dir_all(&snapshots).unwrap();
        let mut failures = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let only_faults = only_faults();
        for case in &suite.case {
            assert!(
                seen.insert(case.name.clone()),
                "case `{}` is defined twice",
                case.name
            );
            if only_faults && case.fault.is_none() {
                continue;
            }
            let started = std::time::Instant::now();
            let (outcome, plugin_dir) = self.run_case(case, &suite);
            let elapsed = started.elapsed();
            record_run(
                &self.name,
                &case.name,
                case.fault.as_deref(),
                &outcome,
                elapsed,
            );
            if case.fault.is_some() {
                if !outcome.stdout.starts_with("{\"error\":") {
                    failures.push(format!(
                        "fault case `{}` did not end in an error",
                        case.name
                    ));
                }
                if elapsed >= NOMAD_KILL {
                    failures.push(format!(
                        "fault case `{}` took {elapsed:?}: Nomad would have killed it",
                        case.name
                    ));
                }
            }
            let mut real_to_placeholder = vec![(plugin_dir, "[PLUGINS]".to_owned())];
            real_to_placeholder.extend(
                self.placeholders
                    .iter()
                    .map(|(p, r)| (r.clone(), p.clone())),
            );
            let mut actual = outcome.render(&real_to_placeholder);
            if let Some(log) = &case.audit_log {
                let log = self.fill(log);
                let mut audit = audit_lines(Path::new(&log));
                if audit.contains(CANARY) {
                    failures.push(format!(
                        "case `{}` leaks a secret into its audit log:\n{audit}",
                        case.name
                    ));
                }
                for (real, placeholder) in &real_to_placeholder {
                    audit = audit.replace(real.as_str(), placeholder);
                }
                actual.push_str("----- audit -----\n");
                actual.push_str(&audit);
                let _ = std::fs::remove_file(&log);
            }
            let snapshot = snapshots.join(format!("{}.snap", case.name));
            let expected = std::fs::read_to_string(&snapshot).ok();
            if expected.as_deref() != Some(actual.as_str()) {
                if bless {
                    std::fs::write(&snapshot, &actual).unwrap();
                } else {
                    failures.push(format!(
                        "case `{}` ({}):\n--- expected ({}) ---\n{}--- actual ---\n{}",
                        case.name,
                        case.about,
                        snapshot.display(),
                        expected.unwrap_or_else(|| "(no snapshot yet)\n".into()),
                        actual
                    ));
                }
            }
            if let Err(leak) = outcome.check_no_canary() {
                failures.push(format!(
                    "case `{}` leaks a secret: {leak}\n{actual}",
                    case.name
                ));
            }
            if case.nomad {
                let operation = case
                    .args
                    .as_ref()
                    .and_then(|a| a.first().cloned())
                    .unwrap_or_else(|| "fetch".into());
                if let Err(problem) = outcome.check_contract(&operation) {
                    failures.push(format!(
                        "case `{}` breaks the Nomad contract: {problem}\n{actual}",
                        case.name
                    ));
                }
            }
        }
        let known: Vec<String> = suite
            .case
            .iter()
            .map(|c| format!("{}.snap", c.name))
            .collect();
        for entry in std::fs::read_dir(&snapshots).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                failures.push(format!("snapshot `{name}` has no case; delete it"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed (BLESS=1 rewrites snapshots; review the diff):\n\n{}",
            failures.len(),
            suite.case.len(),
            failures.join("\n")
        );
    }

    /// Runs one case; returns what it did and the folder the plugin was installed in.
    fn run_case(&self, case: &Case, suite: &SuiteFile) -> (Outcome, String) {
        let default_settings = suite.settings.as_deref();
        let settings = match case.no_settings {
            true => None,
            false => case
                .settings
                .as_deref()
                .or(default_settings)
                .map(|s| self.fill(s)),
        };
        let plugin = Plugin::install(
            &self.binary,
            &self.plugin,
            settings.as_deref(),
            case.settings_mode.unwrap_or(0o644),
        );
        let args: Vec<String> = match (&case.args, &case.path) {
            (Some(args), None) => args.iter().map(|a| self.fill(a)).collect(),
            (None, Some(path)) => vec!["fetch".into(), self.fill(path)],
            _ => panic!(
                "case `{}` needs exactly one of `args` and `path`",
                case.name
            ),
        };
        let mut env: BTreeMap<String, String> = suite
            .env
            .iter()
            .chain(&case.env)
            .filter(|(k, _)| !case.unset.contains(k))
            .map(|(k, v)| (k.clone(), self.fill(v)))
            .collect();
        if case.nomad {
            let operation = case
                .operation
                .clone()
                .or_else(|| args.first().cloned())
                .unwrap_or_default();
            env.insert("CPI_OPERATION".into(), operation);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let dir = plugin.executable().parent().unwrap().display().to_string();
        (plugin.run(&argv, &env), dir)
    }
}

/// An `OsString` helper for tests that build environments by hand.
pub fn os(text: &str) -> OsString {
    OsString::from(text)
}
