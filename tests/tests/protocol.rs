//! The protocol's promises, proved on the `probe` backend run as Nomad runs plugins.

use std::time::{Duration, Instant};

use nomad_secrets_golden::{Outcome, Plugin, Scratch, Suite, nomad_env};

const PROBE: &str = env!("CARGO_BIN_EXE_probe");

#[test]
fn golden_cases() {
    let audit = Scratch::new("audit");
    Suite::new("probe", PROBE, "probe")
        .placeholder("[AUDIT]", audit.path().to_str().unwrap())
        .placeholder("[TMP]", std::env::temp_dir().to_str().unwrap())
        .run();
}

#[test]
fn sigterm_ends_a_stuck_fetch_with_a_protocol_error() {
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some("deadline = \"60s\""), 0o644);
    let scratch = Scratch::new("sigterm");
    let marker = scratch.path().join("started");
    let path = format!("hang?marker={}", marker.display());
    let child = plugin
        .command(&["fetch", &path], &nomad_env("fetch", &[]))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the probe never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let outcome = Outcome::wait(child, Duration::from_secs(20));
    outcome.check_contract("fetch").unwrap();
    assert_eq!(
        outcome
            .stdout
            .replace(&marker.display().to_string(), "[MARKER]"),
        "{\"error\":\"fetch `hang?marker=[MARKER]`: stopped by SIGTERM before the backend answered \
         (hint: Nomad sends SIGTERM when its fetch timeout passes; keep `deadline` below it so the \
         plugin reports the cause itself)\"}\n"
    );
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let plugin = Plugin::install(PROBE.as_ref(), "probe", None, 0o644);
    let env = nomad_env("fetch", &[("NOMAD_JOB_ID", "api")]);
    let children: Vec<_> = (0..48)
        .map(|i| {
            let path = format!("echo/{i}#locator");
            (i, plugin.command(&["fetch", &path], &env).spawn().unwrap())
        })
        .collect();
    for (i, child) in children {
        let outcome = Outcome::wait(child, Duration::from_secs(60));
        outcome.check_contract("fetch").unwrap();
        assert_eq!(
            outcome.stdout,
            format!("{{\"result\":{{\"locator\":\"echo/{i}\"}}}}\n")
        );
    }
}

#[test]
fn concurrent_fetches_write_every_audit_line_whole() {
    let scratch = Scratch::new("audit-burst");
    let log = scratch.path().join("audit.jsonl");
    let settings = format!("audit_log = \"{}\"\n", log.display());
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[("NOMAD_NAMESPACE", "load"), ("NOMAD_JOB_ID", "burst")],
    );
    let children: Vec<_> = (0..100)
        .map(|i| {
            let path = format!("echo/{i}/{}#locator", "x".repeat(i * 3));
            plugin.command(&["fetch", &path], &env).spawn().unwrap()
        })
        .collect();
    for child in children {
        Outcome::wait(child, Duration::from_secs(60))
            .check_contract("fetch")
            .unwrap();
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seen: Vec<usize> = text
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            assert_eq!(value["outcome"], "ok");
            assert_eq!(value["job"], "burst");
            let path = value["path"].as_str().unwrap();
            path.split('/').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..100).collect::<Vec<_>>(),
        "one line per fetch, none lost"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the audit log is the operator's alone");
}

#[test]
fn the_canary_check_catches_a_planted_leak() {
    let scratch = Scratch::new("leak");
    let log = scratch.path().join("audit.jsonl");
    let settings = format!("audit_log = \"{}\"\n", log.display());
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let leaked = plugin.run(&["fetch", "leak"], &nomad_env("fetch", &[]));
    leaked.check_contract("fetch").unwrap();
    let caught = leaked.check_no_canary().unwrap_err();
    assert_eq!(caught, "stdout that is not a result holds `CANARY`");
    // `cargo xtask leak` fails unless it sees that this proof ran.
    nomad_secrets_golden::record_run("probe", "planted-leak", None, &leaked, Duration::ZERO);
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(
        audit.contains("CANARY-planted-leak"),
        "the audit line carries the leak too"
    );
    let by_hand = plugin.run(&["fetch", "leak"], &Default::default());
    assert!(
        by_hand.check_no_canary().is_err(),
        "stderr by hand is scanned too"
    );
    let clean = plugin.run(&["fetch", "tricky"], &nomad_env("fetch", &[]));
    assert_eq!(clean.check_no_canary(), Ok(()), "a result may hold secrets");
}
