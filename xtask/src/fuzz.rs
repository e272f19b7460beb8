//! `cargo xtask fuzz [--seconds N] [--target NAME]... [--save]`: coverage-guided fuzzing of
//! every target in `fuzz/fuzz_targets/` with libFuzzer, on the stable toolchain.
//!
//! The targets are built with SanitizerCoverage (the flags `cargo fuzz` passes, all stable) and
//! `--cfg fuzzing`, into `target/fuzz`. Each runs for N seconds (default 60) from its seed corpus
//! `fuzz/corpus/<target>` (read only) plus a working corpus in `target/fuzz/corpus/<target>`
//! that persists between runs (libFuzzer reads corpus folders recursively). `--save` replaces
//! `fuzz/corpus/<target>/found/` with a minimal set of inputs covering all that the seeds and
//! the runs reached, to be committed. A panic, a failed check, a timeout (10 s for one input) or
//! 2 GiB of memory is a finding: its input is kept under `target/fuzz/artifacts/<target>/` and
//! the task fails once every target has run. The executions and time of each target are
//! printed and written to `target/suites/fuzz.txt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Result, cargo, host_triple, moto::target_dir, root};

/// SanitizerCoverage as `cargo fuzz` configures it (no address sanitizer: that needs nightly,
/// and the plugins' own code is safe Rust but for a few system calls).
const COVERAGE: &str = "--cfg fuzzing -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cdebug-assertions -Coverflow-checks";

/// What one target's run came to.
struct Run {
    target: String,
    executions: u64,
    seconds: u64,
    coverage: String,
    finding: Option<String>,
}

/// Runs the task.
pub fn run(args: &[String]) -> Result {
    let mut seconds = 60;
    let mut only = Vec::new();
    let mut save = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--seconds needs a whole number")?
            }
            "--target" => only.push(args.next().ok_or("--target needs a name")?.clone()),
            "--save" => save = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let targets = targets(&only)?;
    let binaries = build()?;
    let work = target_dir().join("fuzz");
    let mut runs = Vec::new();
    for target in &targets {
        let run = fuzz(target, &binaries.join(target), &work, seconds)?;
        if save {
            merge(target, &binaries.join(target), &work)?;
        }
        runs.push(run);
    }
    let report = report(&runs, seconds);
    print!("{report}");
    crate::suites::record("fuzz", &report)?;
    let findings: Vec<&Run> = runs.iter().filter(|r| r.finding.is_some()).collect();
    match findings.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{} fuzz target(s) found a failure:\n{}",
            findings.len(),
            findings
                .iter()
                .map(|r| format!("- {}: {}", r.target, r.finding.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// Every target in `fuzz/fuzz_targets/`, or those asked for.
fn targets(only: &[String]) -> Result<Vec<String>> {
    let dir = root().join("fuzz/fuzz_targets");
    let mut all: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    all.sort();
    for name in only {
        if !all.contains(name) {
            return Err(format!(
                "no fuzz target `{name}`; there are: {}",
                all.join(", ")
            ));
        }
    }
    Ok(match only.is_empty() {
        true => all,
        false => only.to_vec(),
    })
}

/// Builds every target with coverage instrumentation; returns the folder of the binaries.
fn build() -> Result<PathBuf> {
    let host = host_triple()?;
    let target = target_dir().join("fuzz");
    let mut command = cargo();
    // Built by rustc alone, even when `cargo xtask test` lints its other builds.
    for variable in crate::test::LINT_VARIABLES {
        command.env_remove(variable);
    }
    command
        .current_dir(root().join("fuzz"))
        .args([
            "build",
            "--release",
            "--locked",
            "--bins",
            "--target",
            &host,
        ])
        .arg("--target-dir")
        .arg(&target);
    // Only the target's code: build scripts and proc-macros run uninstrumented.
    crate::for_target_only(&mut command, &host, COVERAGE);
    crate::run(&mut command)?;
    Ok(target.join(host).join("release"))
}

/// Runs one target for `seconds`.
fn fuzz(target: &str, binary: &Path, work: &Path, seconds: u64) -> Result<Run> {
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    let logs = work.join("logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log = logs.join(format!("{target}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    println!("fuzz: {target} for {seconds} s");
    let status = Command::new(binary)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-dict={}", root().join("fuzz/fuzz.dict").display()))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(root().join("fuzz/corpus").join(target))
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let executions = stat(&text, "stat::number_of_executed_units:").unwrap_or(0);
    let seconds = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Done ")?
                .split(" in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(seconds);
    let coverage = text
        .lines()
        .rev()
        .find_map(|l| l.split_once("cov: ").map(|(_, rest)| rest))
        .map(|rest| {
            // "1450 ft: 5440 corp: 120/4Kb ...": edges covered, features, corpus entries.
            let words: Vec<&str> = rest.split_whitespace().collect();
            let corpus = words
                .get(4)
                .and_then(|c| c.split('/').next())
                .unwrap_or("?");
            format!(
                "{} edges, {} features, {corpus} inputs",
                words.first().unwrap_or(&"?"),
                words.get(2).unwrap_or(&"?")
            )
        })
        .unwrap_or_default();
    let finding = (!status.success()).then(|| {
        let what = text
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"))
            .unwrap_or("the target failed");
        let detail = text
            .lines()
            .skip_while(|l| !l.contains("panicked at"))
            .nth(1)
            .unwrap_or_default();
        let input = text
            .lines()
            .find_map(|l| {
                l.split_once("Test unit written to ")
                    .map(|(_, p)| p.to_owned())
            })
            .unwrap_or_else(|| "no input saved".into());
        format!(
            "{what} {detail} (input: {input}; log: {}; rerun: {} {input})",
            log.display(),
            binary.display()
        )
    });
    Ok(Run {
        target: target.into(),
        executions,
        seconds,
        coverage,
        finding,
    })
}

/// Replaces `fuzz/corpus/<target>/found/` with the smallest set of inputs (libFuzzer's set
/// cover merge) that keeps the coverage of the seeds, the previous finds and this run's corpus.
/// The hand-written seeds beside it stay as they are.
fn merge(target: &str, binary: &Path, work: &Path) -> Result {
    let seeds = root().join("fuzz/corpus").join(target);
    let found = seeds.join("found");
    let fresh = work.join("merge").join(target);
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| format!("{}: {e}", fresh.display()))?;
    crate::run(
        Command::new(binary)
            .arg("-set_cover_merge=1")
            .arg(&fresh)
            .arg(&seeds)
            .arg(work.join("corpus").join(target))
            .stderr(Stdio::null()),
    )?;
    let _ = std::fs::remove_dir_all(&found);
    std::fs::create_dir_all(&found).map_err(|e| format!("{}: {e}", found.display()))?;
    for entry in std::fs::read_dir(&fresh).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), found.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A number from libFuzzer's final statistics.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The table printed and recorded.
fn report(runs: &[Run], asked: u64) -> String {
    let mut out = format!(
        "fuzz: {} target(s), {asked} s each, libFuzzer with SanitizerCoverage\n\n",
        runs.len()
    );
    out.push_str(&format!(
        "{:<14} {:>12} {:>8} {:>10}  {:<40} {}\n",
        "target", "executions", "seconds", "exec/s", "coverage at the end", "finding"
    ));
    for run in runs {
        out.push_str(&format!(
            "{:<14} {:>12} {:>8} {:>10}  {:<40} {}\n",
            run.target,
            run.executions,
            run.seconds,
            run.executions / run.seconds.max(1),
            run.coverage,
            run.finding
                .as_deref()
                .map_or("none", |_| "FAILED (see below)")
        ));
    }
    out
}
