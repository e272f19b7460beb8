//! The `command` plugin run exactly as Nomad runs it, with real CLIs (sops with an age key,
//! `pass` with a GnuPG key made for the run) and scripted stand-ins for what proves the
//! protocol's promises: a CLI that hangs, forks a helper holding stdout, floods stdout, quotes
//! a canary on stderr and fails, exits 0 with invalid output, or is killed by a signal.

use std::path::Path;
use std::time::{Duration, Instant};

use nomad_secrets_golden::tools::{pass_fixtures, sops, sops_fixtures, stop_gpg_agent};
use nomad_secrets_golden::{NOMAD_KILL, Plugin, Scratch, Suite, nomad_env};

const COMMAND: &str = env!("CARGO_BIN_EXE_command");

fn scripts() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/command").to_owned()
}

#[test]
fn golden_cases() {
    let scratch = Scratch::new("command-tools");
    let age_key = sops_fixtures(scratch.path());
    let (gnupg, store) = pass_fixtures(scratch.path());
    let token = scratch.path().join("token");
    std::fs::write(&token, "CANARY-operator-token\n").unwrap();
    Suite::new("command", COMMAND, "command")
        .placeholder("[SOPS]", sops().to_str().unwrap())
        .placeholder("[AGE_KEY]", age_key.to_str().unwrap())
        .placeholder(
            "[SECRETS]",
            scratch.path().join("secrets").to_str().unwrap(),
        )
        .placeholder("[GNUPGHOME]", gnupg.to_str().unwrap())
        .placeholder("[PASS_STORE]", store.to_str().unwrap())
        .placeholder("[TOKEN_FILE]", token.to_str().unwrap())
        .placeholder("[SCRIPTS]", &scripts())
        .run();
    stop_gpg_agent(&gnupg);
}

/// A CLI that starts a helper holding stdout and exits: the answer comes at once, and the
/// helper is gone with the run (nothing of the process group survives it).
#[test]
fn a_helper_holding_stdout_neither_delays_the_answer_nor_survives() {
    let settings = format!(
        "command = [\"{}/grandchild.sh\", \"{{path}}\"]\npath_pattern = \"[0-9]+\"\n",
        scripts()
    );
    let plugin = Plugin::install(Path::new(COMMAND), "helper", Some(&settings), 0o644);
    let started = Instant::now();
    // The helper sleeps 611 s: a number no other test uses, to look for it afterwards.
    let outcome = plugin.run(&["fetch", "611"], &nomad_env("fetch", &[]));
    outcome.check_contract("fetch").unwrap();
    assert_eq!(
        outcome.stdout,
        "{\"result\":{\"token\":\"CANARY-grandchild\"}}\n"
    );
    assert!(
        started.elapsed() < NOMAD_KILL,
        "the helper's sleep held the answer"
    );
    let survivors = std::process::Command::new("pgrep")
        .args(["-f", "sleep 611"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(survivors.trim().is_empty(), "left running: {survivors}");
}

/// A CLI that leaves a helper holding its stdout outside its process group (`script`): the
/// fetch answers as soon as the CLI exits, well before the 8 s deadline, and no process of the
/// helper's (found by `marker`, the sleep's length, in its argv) is left afterwards.
fn assert_answers_at_once_and_leaves_nothing(script: &str, marker: &str, token: &str) {
    let settings = format!(
        "command = [\"{}/{script}\", \"{{path}}\"]\npath_pattern = \"[0-9.]+\"\ndeadline = \"8s\"\n",
        scripts()
    );
    let name = script.trim_end_matches(".sh");
    let plugin = Plugin::install(Path::new(COMMAND), name, Some(&settings), 0o644);
    let started = Instant::now();
    let outcome = plugin.run(&["fetch", marker], &nomad_env("fetch", &[]));
    let took = started.elapsed();
    // Whatever happened, nothing of the run may be left behind.
    let survivors = survivors(marker);
    outcome.check_contract("fetch").unwrap();
    assert_eq!(
        outcome.stdout,
        format!("{{\"result\":{{\"token\":\"{token}\"}}}}\n")
    );
    assert!(
        took < Duration::from_secs(4),
        "{script}: answered after {took:?}, so a helper held the answer towards the deadline"
    );
    assert!(survivors.is_empty(), "{script}: left running: {survivors}");
}

/// The processes whose command line holds `marker`, once none has been seen for a moment or
/// after 3 s (a process killed a moment ago may still be listed while it dies).
fn survivors(marker: &str) -> String {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let found = std::process::Command::new("pgrep")
            .args(["-a", "-f", marker])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .expect("pgrep (procps) is installed");
        if found.is_empty() || Instant::now() >= until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A helper started with `setsid`: out of the CLI's group, so only the plugin's subreaping finds
/// it.
#[test]
fn a_helper_in_its_own_session_neither_delays_the_answer_nor_survives() {
    assert_answers_at_once_and_leaves_nothing("setsid-helper.sh", "613.0417", "CANARY-setsid");
}

/// A daemon made by a double fork in its own session, and a helper whose own child holds
/// stdout: both gone, the second found only once its parent is killed.
#[test]
fn a_double_forked_daemon_neither_delays_the_answer_nor_survives() {
    assert_answers_at_once_and_leaves_nothing("double-fork.sh", "614.0417", "CANARY-double-fork");
}

/// SIGTERM (Nomad's timeout) while the CLI hangs: one protocol error at once, and the CLI is
/// killed with its group.
#[test]
fn sigterm_mid_fetch_kills_the_cli_too() {
    let settings = format!(
        "command = [\"{}/hang.sh\", \"{{path}}\"]\npath_pattern = \"[0-9]+\"\ndeadline = \"30s\"\n",
        scripts()
    );
    let plugin = Plugin::install(Path::new(COMMAND), "hangs", Some(&settings), 0o644);
    plugin.assert_sigterm_mid_fetch("command", "612", &nomad_env("fetch", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let survivors = std::process::Command::new("pgrep")
        .args(["-f", "sleep 612"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(survivors.trim().is_empty(), "left running: {survivors}");
}

/// A CLI that hangs after starting a helper in a session of its own: at the deadline, and on
/// SIGTERM (Nomad's timeout), the helper is killed with the CLI, though not in its group.
#[test]
fn a_helper_in_its_own_session_goes_at_the_deadline_and_on_sigterm() {
    let settings = format!(
        "command = [\"{}/setsid-hang.sh\", \"{{path}}\"]\npath_pattern = \"[0-9.]+\"\ndeadline = \"2s\"\n",
        scripts()
    );
    let plugin = Plugin::install(Path::new(COMMAND), "setsid-hang", Some(&settings), 0o644);
    let outcome = plugin.run(&["fetch", "615.0417"], &nomad_env("fetch", &[]));
    let survivors_at_deadline = survivors("615.0417");
    outcome.check_contract("fetch").unwrap();
    assert!(
        outcome.stdout.contains("did not finish in time"),
        "{outcome:?}"
    );
    assert!(
        survivors_at_deadline.is_empty(),
        "left running after the deadline: {survivors_at_deadline}"
    );

    let settings = settings.replace("deadline = \"2s\"", "deadline = \"30s\"");
    let plugin = Plugin::install(Path::new(COMMAND), "setsid-hang", Some(&settings), 0o644);
    plugin.assert_sigterm_mid_fetch("command", "616.0417", &nomad_env("fetch", &[]));
    let survivors_at_sigterm = survivors("616.0417");
    assert!(
        survivors_at_sigterm.is_empty(),
        "left running after SIGTERM: {survivors_at_sigterm}"
    );
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let scratch = Scratch::new("command-concurrent");
    let age_key = sops_fixtures(scratch.path());
    let settings = format!(
        "command = [\"{}\", \"decrypt\", \"--output-type\", \"json\", \"--\", \"{}/secrets/{{path}}\"]\npath_pattern = \"[a-z]+\\\\.json\"\nenv = [\"SOPS_AGE_KEY_FILE={}\", \"SOPS_DISABLE_VERSION_CHECK=1\"]\n",
        sops().display(),
        scratch.path().display(),
        age_key.display()
    );
    let plugin = Plugin::install(Path::new(COMMAND), "sops", Some(&settings), 0o644);
    plugin.assert_concurrent_fetches(
        &["db.json", "db.json#password"],
        &nomad_env("fetch", &[]),
        40,
    );
}
