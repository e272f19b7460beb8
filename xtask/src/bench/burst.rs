//! The load suite's burst: `BURST` fetches of one plugin started at once, what they cost
//! together, and the check that no network plugin's burst was skipped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// Fetches started at once in a burst.
pub(super) const BURST: usize = 200;

/// [`burst`] of the plugin installed as `secrets/<plugin>`, whose settings become `settings`
/// and an audit log of its own beside the plugin folder (`<plugin>-audit.jsonl`), from which
/// the burst reads each fetch's time and checks one whole line per fetch.
pub(super) fn audited_burst(
    loads: &mut Vec<String>,
    label: &str,
    secrets: &std::path::Path,
    plugin: &str,
    settings: &str,
    paths: &[&str],
    env: &[(&str, &str)],
) -> Result {
    let audit = secrets.join("..").join(format!("{plugin}-audit.jsonl"));
    crate::install::write_settings(
        &secrets.join(format!("{plugin}.toml")),
        &format!("{settings}audit_log = \"{}\"\n", audit.display()),
    )?;
    burst(loads, label, &secrets.join(plugin), paths, env, &audit)
}

/// `BURST` fetches at once, as many allocations starting together would cause. Every one must
/// answer with a result (a timeout would be an error, so none passed the deadline) and leave
/// one whole audit line. Reports the time for all and the burst's memory: the peak of the sum
/// of the live plugin processes' proportional set sizes (PSS: shared pages counted once across
/// them), sampled as fast as /proc allows, and the largest single process's peak RSS (from
/// `wait4`).
fn burst(
    loads: &mut Vec<String>,
    plugin: &str,
    program: &std::path::Path,
    paths: &[&str],
    env: &[(&str, &str)],
    audit: &std::path::Path,
) -> Result {
    use std::io::Read as _;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let _ = std::fs::remove_file(audit);
    let pids: Arc<Mutex<Vec<u32>>> = Arc::default();
    let peak_pss = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pids, peak_pss, stop) = (pids.clone(), peak_pss.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sweeps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let live = pids.lock().unwrap().clone();
                let total: u64 = live.iter().filter_map(|pid| pss_kib(*pid)).sum();
                peak_pss.fetch_max(total, Ordering::Relaxed);
                sweeps += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            sweeps
        })
    };
    let job = [
        ("CPI_OPERATION", "fetch"),
        ("NOMAD_NAMESPACE", "bench"),
        ("NOMAD_JOB_ID", "burst"),
    ];
    let env: Vec<(&str, &str)> = job.into_iter().chain(env.iter().copied()).collect();
    let started = Instant::now();
    let mut children = Vec::new();
    for i in 0..BURST {
        let child = Command::new(program)
            .args(["fetch", paths[i % paths.len()]])
            .env_clear()
            .envs(env.iter().copied())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{plugin}: {e}"))?;
        pids.lock().unwrap().push(child.id());
        children.push(child);
    }
    let mut failures = Vec::new();
    let mut largest_rss_kib = 0;
    for mut child in children {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_end(&mut stdout);
        }
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let (code, max_rss_kib) = wait_with_rusage(child.id())?;
        largest_rss_kib = largest_rss_kib.max(max_rss_kib);
        if code != Some(0) || !stderr.is_empty() || !stdout.starts_with(b"{\"result\"") {
            failures.push(String::from_utf8_lossy(&stdout).into_owned());
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sweeps = sampler.join().unwrap_or(0);
    let peak_mib = peak_pss.load(Ordering::Relaxed) as f64 / 1024.0;
    let lines = std::fs::read_to_string(audit).unwrap_or_default();
    let audited: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let whole = audited.iter().filter(|a| a["outcome"] == "ok").count();
    // Each run's own time, from its start to its answer: under the deadline, or it would have
    // answered with the deadline's error instead of a result.
    let slowest_ms = audited
        .iter()
        .filter_map(|a| a["duration_ms"].as_u64())
        .max()
        .unwrap_or(0);
    loads.push(format!(
        "| {plugin} | {} | {:.0} ms | {slowest_ms} ms | {peak_mib:.1} MiB ({sweeps} samples) | {:.1} MiB | {whole} of {BURST} |\n",
        failures.len(),
        elapsed.as_secs_f64() * 1e3,
        largest_rss_kib as f64 / 1024.0,
    ));
    if !failures.is_empty() || whole != BURST {
        return Err(format!(
            "{plugin}: {} of {BURST} fetches failed, {whole} whole audit lines; first failure: {}",
            failures.len(),
            failures.first().map(String::as_str).unwrap_or("-")
        ));
    }
    Ok(())
}

/// A live process's proportional set size, from `/proc/<pid>/smaps_rollup`.
fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Reaps `pid`; returns its exit code (`None` when a signal ended it) and its peak RSS in KiB.
fn wait_with_rusage(pid: u32) -> Result<(Option<i32>, u64)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, not reaped yet; both pointers are valid for the call.
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if reaped != pid as i32 {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok((code, usage.ru_maxrss as u64))
}

/// Fails when a network plugin's burst did not run (its store could not be started, say): a
/// load suite that skipped one would pass on nothing.
pub(super) fn unburst(loads: &[String]) -> Result {
    let missing: Vec<String> = crate::plugins::all()?
        .into_iter()
        .filter(|plugin| plugin.network)
        .filter(|plugin| {
            !loads
                .iter()
                .any(|row| row.starts_with(&format!("| {} |", plugin.name)))
        })
        .map(|plugin| plugin.name)
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "load: no burst ran for {} (a store that could not start: for aws and aws-ssm, run `cargo xtask moto`)",
            missing.join(", ")
        )),
    }
}
