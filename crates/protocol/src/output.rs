//! The only code that writes to stdout or stderr, or chooses the exit status.
//!
//! Exactly one of [`Output`]'s finishing calls runs per process: the first one writes and exits;
//! any later one (a panic racing a timeout, say) waits for the process to end. So stdout always
//! holds exactly one JSON value.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the one that prints"
)]

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Secrets;

/// Set by the first finishing call.
static FINISHED: AtomicBool = AtomicBool::new(false);

/// Who started us, which decides how failures are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `CPI_OPERATION` is set: errors are `{"error":...}` with exit status 0, because Nomad
    /// discards the output of a non-zero exit; stderr stays empty, because Nomad crashes on it.
    Nomad,
    /// Run by hand: the same JSON on stdout, a readable line on stderr, and a non-zero status
    /// so that scripts notice.
    Manual,
}

/// Exit status of a failed run by hand.
const EXIT_ERROR: i32 = 1;
/// Exit status of a command line that is not `fingerprint` or `fetch <path>`, by hand.
const EXIT_USAGE: i32 = 2;

/// The fingerprint answer: Nomad needs `type` to be `secrets` and `version` to parse as a version.
pub(crate) fn fingerprint_json() -> &'static str {
    concat!(
        r#"{"type":"secrets","version":""#,
        env!("CARGO_PKG_VERSION"),
        "\"}\n"
    )
}

/// `{"result":{...}}`: every value a JSON string, keys in order.
pub fn result_json(secrets: &Secrets) -> String {
    let mut json = String::from(r#"{"result":{"#);
    for (i, (key, value)) in secrets.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&json_string(key));
        json.push(':');
        json.push_str(&json_string(value.expose()));
    }
    json.push_str("}}\n");
    json
}

/// `{"error":"..."}`.
pub fn error_json(message: &str) -> String {
    format!("{{\"error\":{}}}\n", json_string(message))
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// Ends the process with the fingerprint.
pub(crate) fn fingerprint() -> ! {
    finish(fingerprint_json().as_bytes(), None, 0)
}

/// Ends the process with a result.
pub(crate) fn result(secrets: &Secrets) -> ! {
    finish(result_json(secrets).as_bytes(), None, 0)
}

/// Ends the process with an error; `usage` marks a bad command line.
pub(crate) fn error(mode: Mode, plugin: &str, message: &str, usage: bool) -> ! {
    let json = error_json(message);
    match mode {
        Mode::Nomad => finish(json.as_bytes(), None, 0),
        Mode::Manual => {
            let status = if usage { EXIT_USAGE } else { EXIT_ERROR };
            let line = format!("{plugin}: {message}\n");
            finish(json.as_bytes(), Some(&line), status)
        }
    }
}

/// Ends the process with `check`'s report: exit 0 when everything checked out, 1 otherwise.
pub(crate) fn report(text: &str, ok: bool) -> ! {
    finish(text.as_bytes(), None, if ok { 0 } else { EXIT_ERROR })
}

/// Ends the process with a text for people (`--help`), never under Nomad.
/// Work to do before the process exits, whichever way it ends (an answer, the deadline,
/// SIGTERM, a panic).
static ON_EXIT: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Registers `hook` to run just before the process exits, on every path: the protocol exits on
/// the deadline or SIGTERM without waiting for the backend's thread, so a backend that starts
/// processes kills them here (it must not block or print).
pub fn on_exit(hook: fn()) {
    if let Ok(mut hooks) = ON_EXIT.lock() {
        hooks.push(hook);
    }
}

pub(crate) fn help(text: &str) -> ! {
    finish(text.as_bytes(), None, 0)
}

/// Under Nomad, points stderr at /dev/null before anything can write to it: a run that exits 0
/// with anything on stderr crashes the Nomad agent, and no library we link may ever cause that.
pub(crate) fn silence_stderr() {
    // SAFETY: plain libc calls on a constant path and valid descriptors; failures leave fd 2 as
    // it was, which our own code never writes to under Nomad anyway.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, libc::STDERR_FILENO);
            libc::close(null);
        }
    }
}

fn finish(stdout: &[u8], stderr: Option<&str>, status: i32) -> ! {
    if FINISHED.swap(true, Ordering::SeqCst) {
        // Another thread is already writing the one answer and will exit the process.
        loop {
            std::thread::park();
        }
    }
    // Never blocks: a hook registration in progress on a stuck thread is skipped.
    if let Ok(hooks) = ON_EXIT.try_lock() {
        for hook in hooks.iter() {
            hook();
        }
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_all(stdout).and_then(|()| out.flush());
    if let Some(text) = stderr {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    std::process::exit(if written.is_ok() { status } else { EXIT_ERROR })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn fingerprint_is_exact() {
        assert_eq!(
            fingerprint_json(),
            format!(
                "{{\"type\":\"secrets\",\"version\":\"{}\"}}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let value: serde_json::Value = serde_json::from_str(fingerprint_json()).unwrap();
        assert_eq!(value["type"], "secrets");
    }

    #[test]
    fn result_is_exact_and_escaped() {
        let mut secrets = Secrets::new();
        secrets
            .insert("b", Secret::new("line\n\"q\" \\ é \u{1}"))
            .unwrap();
        secrets.insert("a", Secret::new("")).unwrap();
        assert_eq!(
            result_json(&secrets),
            "{\"result\":{\"a\":\"\",\"b\":\"line\\n\\\"q\\\" \\\\ é \\u0001\"}}\n"
        );
    }

    #[test]
    fn error_is_exact() {
        assert_eq!(
            error_json("no \"x\"\tthere"),
            "{\"error\":\"no \\\"x\\\"\\tthere\"}\n"
        );
    }

    #[test]
    fn result_decodes_as_nomad_decodes_it() {
        // Nomad reads {result: map[string]string, error: *string}: every value a string, no error.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Response {
            result: std::collections::BTreeMap<String, String>,
        }
        let mut secrets = Secrets::new();
        secrets.insert("k", Secret::new("v")).unwrap();
        let response: Response = serde_json::from_str(&result_json(&secrets)).unwrap();
        assert_eq!(response.result["k"], "v");
    }
}
