//! `probe`: a backend that misbehaves on request, to test the protocol's guards.
//!
//! | locator      | behaviour                                                        |
//! |--------------|------------------------------------------------------------------|
//! | `echo/...`   | returns the locator, options, key and `NOMAD_*` it was given       |
//! | `hang`       | never returns (`?marker=<file>` is created first)                |
//! | `panic`      | panics with a message that holds a secret-looking canary         |
//! | `panic-thread` | panics on a thread of its own                                  |
//! | `stderr`     | writes to stderr like a chatty library, then succeeds            |
//! | `fail`       | returns an error                                                 |
//! | `leak`       | returns an error that quotes a canary: a planted leak            |
//! | `empty`      | returns no keys                                                  |
//! | `tricky`     | returns values that need JSON escaping                           |
//! | `json/<name>` | converts a canned JSON text by the shared policy: `exponent` (`{"n": 1E5}`), `deep` and `deep-text` (an object 200 levels deep, strict and lenient) |
//! | `store/<name>` | a store for the cache's tests, in the folder `store` names: each call appends a line to `<store>/calls`, waits 300 ms, and answers `{"token": <the job's TOKEN>, "value": "CANARY-stored"}`; `<store>/down` makes it fail as unreachable, `<store>/deny` as denied |
#![allow(
    clippy::print_stderr,
    reason = "the `stderr` case imitates a library that prints"
)]

use std::path::Path;

use nomad_secrets_protocol::{
    Backend, Error, Key, Request, Secret, Secrets, Setting, Settings, Variable,
};

struct Probe;

/// The folder of the `store/` paths.
const STORE: Key<Path> = Key::path(
    "store",
    "the folder of the `store/` paths' calls and switches",
);

impl Backend for Probe {
    const NAME: &'static str = "probe";
    const SETTINGS: &'static [Setting] = &[STORE.setting];
    const OPTIONS: &'static [&'static str] = &["marker", "version"];
    /// `TOKEN` is a job's own credential for the `store/` paths (the cache keys on it); the
    /// others reach the backend to show what arrives.
    const JOB_INPUT: &'static [Variable] = &[
        Variable::credential("TOKEN", "token", "the job's token for `store/` paths"),
        Variable::passed_through("DB_HOST", "shows that a job's variable arrives"),
        Variable::passed_through(
            "RUST_BACKTRACE",
            "shows that a panic never prints a backtrace",
        ),
    ];

    fn new(_settings: &Settings) -> Result<Probe, Error> {
        Ok(Probe)
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let path = &request.path;
        let mut secrets = Secrets::new();
        let locator = path.locator();
        match locator {
            "hang" => {
                if let Some(marker) = path.option("marker") {
                    std::fs::write(marker, "started")
                        .map_err(|e| Error::unavailable(e.to_string()))?;
                }
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            "panic" => panic!("CANARY-panic-payload"),
            "panic-thread" => {
                let _ = std::thread::spawn(|| panic!("CANARY-thread-payload")).join();
                loop {
                    std::thread::park();
                }
            }
            "stderr" => {
                eprintln!("WARN some library: library chatter");
                secrets.insert("ok", Secret::new("yes"))?;
            }
            "fail" => return Err(Error::unavailable("the backend is down").hint("try later")),
            // A deliberate leak, to prove the canary check catches one (never used as a case).
            "leak" => return Err(Error::unavailable("could not parse CANARY-planted-leak")),
            "empty" => {}
            "tricky" => {
                secrets.insert("quote", Secret::new("a\"b\\c"))?;
                secrets.insert("control", Secret::new("tab\tnl\nnul\u{0}bell\u{7}"))?;
                secrets.insert("unicode", Secret::new("é 中 🦀 \u{2028}"))?;
                secrets.insert("html", Secret::new("<script>&</script>"))?;
            }
            echo if echo.starts_with("echo/") => {
                secrets.insert("locator", Secret::new(locator))?;
                for name in ["version", "marker"] {
                    if let Some(value) = path.option(name) {
                        secrets.insert(format!("option_{name}"), Secret::new(value))?;
                    }
                }
                for name in ["NOMAD_JOB_ID", "NOMAD_NAMESPACE", "HOME", "PATH"] {
                    let value = request.env_var(name).unwrap_or("(unset)");
                    secrets.insert(name, Secret::new(value))?;
                }
                secrets.insert("env_count", Secret::new(request.env.len().to_string()))?;
            }
            "json/exponent" => {
                return Secrets::from_json(r#"{"n": 1E5, "small": -2.50e-3, "o": {"m": 1E+2}}"#);
            }
            "json/deep" | "json/deep-text" => {
                let depth = 200;
                let text = format!(
                    r#"{{"user": "CANARY-deep", "a": {}"CANARY-inner"{}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                );
                return match locator {
                    "json/deep" => Secrets::from_json(&text),
                    _ => Secrets::from_text_or_json_object(text),
                };
            }
            stored if stored.starts_with("store/") => {
                use std::io::Write as _;
                let store = request
                    .settings
                    .get(&STORE)
                    .ok_or_else(|| Error::settings("`store` is not set"))?;
                let mut calls = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(store.join("calls"))
                    .map_err(|e| Error::unavailable(e.to_string()))?;
                calls
                    .write_all(format!("{locator}\n").as_bytes())
                    .map_err(|e| Error::unavailable(e.to_string()))?;
                std::thread::sleep(std::time::Duration::from_millis(300));
                if store.join("down").exists() {
                    return Err(Error::unavailable("the store is unreachable"));
                }
                if store.join("deny").exists() {
                    return Err(Error::denied("the store denies this token"));
                }
                let token = request.env_var("TOKEN").unwrap_or("(none)");
                secrets.insert("token", Secret::new(token))?;
                secrets.insert("value", Secret::new("CANARY-stored"))?;
            }
            _ => return Err(Error::not_found(format!("the probe has no `{locator}`"))),
        }
        Ok(secrets)
    }
}

fn main() {
    nomad_secrets_protocol::main::<Probe>()
}
