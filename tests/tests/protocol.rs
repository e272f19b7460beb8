//! The protocol's promises, proved on the `probe` backend run as Nomad runs plugins.

use std::os::unix::fs::OpenOptionsExt as _;
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

/// A plugin whose audit log is `log` (required), and one fetch of `echo/x` through it.
fn audited_fetch(log: &std::path::Path) -> Outcome {
    let settings = format!("audit_log = \"{}\"\ndeadline = \"2s\"\n", log.display());
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let child = plugin
        .command(&["fetch", "echo/x#locator"], &nomad_env("fetch", &[]))
        .spawn()
        .unwrap();
    let outcome = Outcome::wait(child, Duration::from_secs(15));
    outcome.check_contract("fetch").unwrap();
    outcome
}

/// The error of a fetch whose required audit line was refused, with the log's path masked.
fn refused_log(log: &std::path::Path) -> String {
    let outcome = audited_fetch(log);
    assert!(outcome.stdout.starts_with("{\"error\""), "{outcome:?}");
    let shown = log.display().to_string();
    assert!(
        outcome.stdout.contains(&shown),
        "names the log: {outcome:?}"
    );
    outcome.stdout.replace(&shown, "[LOG]")
}

#[test]
fn an_audit_log_that_is_a_fifo_never_blocks_the_fetch() {
    let scratch = Scratch::new("audit-fifo");
    let log = scratch.path().join("audit.jsonl");
    let c_log = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_log.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    let error = refused_log(&log);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the fetch waited on the FIFO"
    );
    assert!(
        error.contains("could not write the audit log `[LOG]`: it is not a regular file (a FIFO or a socket): refused"),
        "{error}"
    );
    // With a reader at the other end, the open succeeds: still refused, not written to.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&log)
        .unwrap();
    let error = refused_log(&log);
    assert!(
        error.contains("`[LOG]`: it is not a regular file: refused"),
        "{error}"
    );
    drop(reader);
}

#[test]
fn an_audit_log_others_could_write_or_own_is_refused() {
    use std::os::unix::fs::{PermissionsExt as _, chown};
    let scratch = Scratch::new("audit-trust");
    let log = scratch.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();

    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o664)).unwrap();
    let error = refused_log(&log);
    assert!(
        error.contains("it has mode 664: group or others may write it: refused"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "nothing appended"
    );

    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(&log, Some(1000), Some(1000)).unwrap();
    let error = refused_log(&log);
    assert!(error.contains("it is owned by uid 1000"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "nothing appended"
    );

    // A second name for another file (a hard link, as into /etc from a sticky /tmp).
    std::fs::remove_file(&log).unwrap();
    let other = scratch.path().join("other");
    std::fs::write(&other, "").unwrap();
    std::fs::hard_link(&other, &log).unwrap();
    let error = refused_log(&log);
    assert!(error.contains("it has 2 hard links: refused"), "{error}");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "");

    // A folder on the way that another user owns, or a group may write.
    let theirs = scratch.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(1000), Some(1000)).unwrap();
    let error = refused_log(&theirs.join("audit.jsonl"));
    assert!(error.contains("theirs` is owned by uid 1000"), "{error}");
    let group = scratch.path().join("group");
    std::fs::create_dir(&group).unwrap();
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o775)).unwrap();
    let error = refused_log(&group.join("audit.jsonl"));
    assert!(error.contains("group` has mode 775"), "{error}");
}

#[test]
fn a_symlink_on_the_audit_logs_path_is_never_followed() {
    let scratch = Scratch::new("audit-link");
    let real = scratch.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = scratch.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let error = refused_log(&link.join("audit.jsonl"));
    assert!(error.contains("link` is a symlink: refused"), "{error}");
    assert!(
        !real.join("audit.jsonl").exists(),
        "nothing written through it"
    );
    // The last component too.
    std::os::unix::fs::symlink(real.join("target"), real.join("audit.jsonl")).unwrap();
    let error = refused_log(&real.join("audit.jsonl"));
    assert!(error.contains("it is a symlink: refused"), "{error}");
    assert!(!real.join("target").exists());
    // A trusted log is written, mode 0600.
    let good = real.join("good.jsonl");
    let outcome = audited_fetch(&good);
    assert!(outcome.stdout.starts_with("{\"result\""), "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&good).unwrap().lines().count(), 1);
}

#[test]
fn the_audit_line_records_what_was_read_beside_what_was_written() {
    let scratch = Scratch::new("audit-read");
    let log = scratch.path().join("audit.jsonl");
    let settings = format!("audit_log = \"{}\"\n", log.display());
    let plugin = Plugin::install(PROBE.as_ref(), "probe", Some(&settings), 0o644);
    let outcome = plugin.run(
        &["fetch", "echo/%74eam-a/db?version=2#locator"],
        &nomad_env("fetch", &[]),
    );
    assert!(outcome.stdout.starts_with("{\"result\""), "{outcome:?}");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["path"], "echo/%74eam-a/db?version=2#locator");
    assert_eq!(line["read"], "echo/team-a/db");
}
