//! The measurement every table shares: a contender's wall time and peak RSS, run after run,
//! and the table of medians written to the report.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

pub(super) struct Contender {
    pub(super) label: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Contender {
    pub(super) fn new(
        label: &str,
        program: impl Into<PathBuf>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Contender {
            label: label.into(),
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The same run under another label.
    #[cfg_attr(not(feature = "servers"), allow(dead_code))]
    pub(super) fn clone_as(&self, label: &str) -> Contender {
        Contender {
            label: label.to_owned(),
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
        }
    }

    pub(super) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// One untraced run's wall time, spawn to exit.
    fn wall(&self) -> Result<Duration> {
        let started = Instant::now();
        let status = self
            .command()
            .status()
            .map_err(|e| format!("{}: {e}", self.label))?;
        let wall = started.elapsed();
        match status.success() {
            true => Ok(wall),
            false => Err(format!("{} failed: {status}", self.label)),
        }
    }

    /// One traced run's peak RSS in KiB: `VmHWM` read at the exit stop.
    ///
    /// `ru_maxrss` would be wrong here: it counts the memory of the process that forked the
    /// child (the address space replaced at exec), so every small program would look as large
    /// as this xtask. `VmHWM` covers only the program's own address space.
    fn peak_rss_kib(&self) -> Result<u64> {
        let mut command = self.command();
        // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe and touches no Rust state.
        unsafe {
            use std::os::unix::process::CommandExt as _;
            command.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", self.label))?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        let mut peak = None;
        // SAFETY: waitpid/ptrace on our own traced child, with valid out-pointers.
        unsafe {
            // Stopped by SIGTRAP right after exec: ask to stop again when it exits.
            libc::waitpid(pid, &mut status, 0);
            libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, libc::PTRACE_O_TRACEEXIT);
            libc::ptrace(libc::PTRACE_CONT, pid, 0, 0);
            loop {
                if libc::waitpid(pid, &mut status, 0) < 0
                    || libc::WIFEXITED(status)
                    || libc::WIFSIGNALED(status)
                {
                    break;
                }
                if status >> 8 == (libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8)) {
                    peak = vm_hwm_kib(pid);
                }
                let signal = match libc::WSTOPSIG(status) {
                    libc::SIGTRAP => 0,
                    other => other,
                };
                libc::ptrace(libc::PTRACE_CONT, pid, 0, signal);
            }
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(format!("{} did not exit 0 (status {status})", self.label));
        }
        peak.ok_or_else(|| format!("{}: no VmHWM at exit", self.label))
    }
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) struct Row {
    pub(super) label: String,
    wall: Duration,
    pub(super) rss_kib: u64,
}

/// Measures `contenders` `runs` times each, interleaved, and appends a table to `report`.
pub(super) fn table(
    report: &mut String,
    title: &str,
    runs: usize,
    contenders: &[Contender],
) -> Result<Vec<Row>> {
    let mut samples: Vec<Vec<(Duration, u64)>> = vec![Vec::with_capacity(runs); contenders.len()];
    for contender in contenders {
        contender.wall()?; // warm the page cache
    }
    for _ in 0..runs {
        for (i, contender) in contenders.iter().enumerate() {
            samples[i].push((contender.wall()?, contender.peak_rss_kib()?));
        }
    }
    let rows: Vec<Row> = contenders
        .iter()
        .zip(samples)
        .map(|(contender, mut samples)| {
            samples.sort_by_key(|(wall, _)| *wall);
            let wall = samples[samples.len() / 2].0;
            let mut rss: Vec<u64> = samples.iter().map(|(_, rss)| *rss).collect();
            rss.sort();
            Row {
                label: contender.label.clone(),
                wall,
                rss_kib: rss[rss.len() / 2],
            }
        })
        .collect();
    report.push_str(&format!(
        "## {title}\n\n{runs} runs each, medians; ratios to the first row.\n\n\
         | contender | wall | ratio | peak RSS | ratio |\n|---|---:|---:|---:|---:|\n"
    ));
    for row in &rows {
        report.push_str(&format!(
            "| {} | {:.2} ms | {:.2} | {:.2} MiB | {:.2} |\n",
            row.label,
            row.wall.as_secs_f64() * 1e3,
            row.wall.as_secs_f64() / rows[0].wall.as_secs_f64(),
            row.rss_kib as f64 / 1024.0,
            row.rss_kib as f64 / rows[0].rss_kib as f64,
        ));
    }
    report.push('\n');
    Ok(rows)
}
