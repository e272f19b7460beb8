//! `cargo xtask leak` and `cargo xtask faults`: the golden tests that prove no plugin leaks a
//! secret or hangs, run on their own and summarised. Each plugin run the tests make is recorded
//! by the harness (`SUITE_REPORT`, one JSON line each); the summary is printed and written to
//! `target/suites/<suite>.txt`, beside `fuzz.txt` and `load.txt`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Result, cargo, moto::target_dir};

/// The harness's own package: the protocol suite and the planted leak.
const HARNESS: &str = "nomad-secrets-golden";

/// Writes `text` to `target/suites/<suite>.txt`.
pub fn record(suite: &str, text: &str) -> Result {
    let dir = target_dir().join("suites");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("{suite}.txt"));
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// One plugin run, as the harness recorded it.
struct Run {
    suite: String,
    case: String,
    fault: Option<String>,
    ms: u64,
    scanned_bytes: u64,
    answer: String,
}

/// `cargo test --workspace`, as `cargo xtask test` runs it, recording every plugin run; then
/// the leak and fault summaries of that one run.
pub fn test_workspace() -> Result {
    let mut command = cargo();
    command.args(["test", "--workspace", "--locked"]);
    let runs = recorded("test", &mut command)?;
    let plugins = crate::plugins::all()?;
    summarise_leak(&runs, &plugins)?;
    summarise_faults(&runs, &plugins)
}

/// Runs the golden tests of `packages` (with `filters` and `env`), recording every plugin run.
fn run_golden(
    name: &str,
    packages: &[&str],
    filters: &[&str],
    env: &[(&str, &str)],
) -> Result<Vec<Run>> {
    crate::moto::run()?;
    let mut command = cargo();
    command.args(["test", "--locked"]);
    for package in packages {
        command.args(["--package", package]);
    }
    command.args(["--test", "golden"]);
    if packages.contains(&"nomad-secrets-golden") {
        command.args(["--test", "protocol"]);
    }
    command.arg("--");
    command.args(filters);
    command.envs(env.iter().copied());
    recorded(name, &mut command)
}

/// Runs `tests` with the harness recording every plugin run into
/// `target/suites/<name>.jsonl` (emptied first), and reads what it recorded.
fn recorded(name: &str, tests: &mut std::process::Command) -> Result<Vec<Run>> {
    let report = target_dir().join("suites").join(format!("{name}.jsonl"));
    std::fs::create_dir_all(report.parent().unwrap()).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&report);
    crate::run(tests.env("SUITE_REPORT", &report))?;
    read_runs(&report)
}

fn read_runs(report: &PathBuf) -> Result<Vec<Run>> {
    // A summary of nothing proves nothing: a missing report is an error, not zero runs.
    let text = std::fs::read_to_string(report).map_err(|e| {
        format!(
            "{}: {e}: the tests recorded no plugin run (is SUITE_REPORT reaching the harness?)",
            report.display()
        )
    })?;
    text.lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{}: {e}", report.display()))?;
            let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
            Ok(Run {
                suite: text("suite"),
                case: text("case"),
                fault: value["fault"].as_str().map(str::to_owned),
                ms: value["ms"].as_u64().unwrap_or(0),
                scanned_bytes: value["scanned_bytes"].as_u64().unwrap_or(0),
                // What the job sees: the error's text, or the answer as printed.
                answer: serde_json::from_str::<serde_json::Value>(&text("answer"))
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| text("answer")),
            })
        })
        .collect()
}

/// `cargo xtask leak`: every golden case of every plugin, each checked for the canary in
/// everything but a fetched result (errors, stderr, `check` output, audit lines), and the
/// harness's proof that the check catches a planted leak.
pub fn leak() -> Result {
    let plugins = crate::plugins::all()?;
    let mut packages = vec![HARNESS];
    packages.extend(plugins.iter().map(|p| p.package.as_str()));
    let runs = run_golden("leak", &packages, &[], &[])?;
    summarise_leak(&runs, &plugins)
}

/// Prints and records what the leak check scanned; fails when a plugin's suite, the protocol
/// suite or the planted leak did not run.
fn summarise_leak(runs: &[Run], plugins: &[crate::plugins::Plugin]) -> Result {
    let mut per_suite: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for run in runs {
        let entry = per_suite.entry(&run.suite).or_default();
        entry.0 += 1;
        entry.1 += run.scanned_bytes;
    }
    let mut text = String::from(
        "leak: every plugin run of the golden suites scanned for the canary outside fetched results\n\n",
    );
    text.push_str(&format!(
        "{:<8} {:>6} {:>14}\n",
        "suite", "runs", "bytes scanned"
    ));
    for (suite, (count, bytes)) in &per_suite {
        text.push_str(&format!("{suite:<8} {count:>6} {bytes:>14}\n"));
    }
    let mut missing: Vec<&str> = plugins
        .iter()
        .map(|p| p.suite.as_str())
        .chain(["probe"])
        .filter(|suite| !per_suite.contains_key(suite))
        .collect();
    if !runs.iter().any(|r| r.case == PLANTED_LEAK) {
        missing.push(PLANTED_LEAK);
    }
    if !missing.is_empty() {
        return Err(format!(
            "leak: nothing was recorded for {}: the check cannot say they do not leak",
            missing.join(", ")
        ));
    }
    text.push_str(&format!(
        "\n{} runs, canary found: none (a run that leaked fails its test); the planted leak \
         (tests/tests/protocol.rs) was caught\n",
        runs.len()
    ));
    print!("{text}");
    record("leak", &text)
}

/// The case name under which tests/tests/protocol.rs records its planted leak.
const PLANTED_LEAK: &str = "planted-leak";

/// `cargo xtask faults`: only the fault cases of the network plugins (each must end in one
/// protocol error before Nomad's 10 s kill, stderr empty, no canary) and SIGTERM mid-fetch.
pub fn faults() -> Result {
    let plugins: Vec<_> = crate::plugins::all()?
        .into_iter()
        .filter(|p| p.network)
        .collect();
    let packages: Vec<&str> = plugins.iter().map(|p| p.package.as_str()).collect();
    let runs = run_golden(
        "faults",
        &packages,
        &["golden_cases", "sigterm", "expire"],
        &[("GOLDEN_CASES", "faults")],
    )?;
    summarise_faults(&runs, &plugins)
}

/// Prints and records the fault matrix; fails when a network plugin recorded no fault.
fn summarise_faults(runs: &[Run], plugins: &[crate::plugins::Plugin]) -> Result {
    let mut text = String::from(
        "faults: each ends in one protocol error before Nomad's 10 s kill, with an empty stderr\n\n",
    );
    text.push_str(&format!(
        "{:<6} {:<44} {:>7}  {}\n",
        "plugin", "fault", "ms", "what the job sees"
    ));
    let mut faults: Vec<&Run> = runs.iter().filter(|r| r.fault.is_some()).collect();
    faults.sort_by(|a, b| (&a.suite, &a.fault).cmp(&(&b.suite, &b.fault)));
    for run in &faults {
        let answer: String = run.answer.chars().take(110).collect();
        text.push_str(&format!(
            "{:<6} {:<44} {:>7}  {answer}  ({})\n",
            run.suite,
            run.fault.as_deref().unwrap_or_default(),
            run.ms,
            run.case,
        ));
    }
    let silent: Vec<&str> = plugins
        .iter()
        .filter(|p| p.network && !faults.iter().any(|r| r.suite == p.suite))
        .map(|p| p.name.as_str())
        .collect();
    if !silent.is_empty() {
        return Err(format!(
            "faults: no fault case of {} ran: the matrix cannot say they end in time",
            silent.join(", ")
        ));
    }
    text.push_str(&format!(
        "\n{} faults, all ended in a protocol error in time (the tests fail otherwise); \
         slowest {} ms\n",
        faults.len(),
        faults.iter().map(|r| r.ms).max().unwrap_or(0)
    ));
    print!("{text}");
    record("faults", &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_report_is_an_error_not_zero_runs() {
        let missing = PathBuf::from("/nonexistent/suites/test.jsonl");
        assert!(read_runs(&missing).is_err());
    }

    #[test]
    fn summaries_fail_when_a_plugin_or_the_planted_leak_did_not_run() {
        let plugin = crate::plugins::Plugin {
            package: "nomad-secrets-x".into(),
            name: "x".into(),
            dir: PathBuf::from("/plugins/x"),
            suite: "x".into(),
            fingerprint_rss_ratio: 1.2,
            network: true,
            fuzz_targets: vec![],
        };
        let run = |suite: &str, case: &str, fault: Option<&str>| Run {
            suite: suite.into(),
            case: case.into(),
            fault: fault.map(str::to_owned),
            ms: 1,
            scanned_bytes: 1,
            answer: String::new(),
        };
        let plugins = [plugin];
        assert!(summarise_leak(&[], &plugins).is_err());
        assert!(summarise_leak(&[run("probe", PLANTED_LEAK, None)], &plugins).is_err());
        assert!(summarise_faults(&[], &plugins).is_err());
        assert!(summarise_faults(&[run("x", "c", None)], &plugins).is_err());
    }
}
