//! Running the CLI: bounded in time and output, and never outliving the plugin.
//!
//! The CLI gets stdin from /dev/null, stdout and stderr as pipes of ours (never Nomad's), and a
//! process group of its own. Three threads report to the fetch thread: one reads stdout (at
//! most `max_output` bytes), one keeps the first line of stderr and drains the rest, one waits
//! for the exit. When the CLI exits, its whole group is killed, so a grandchild left holding the
//! stdout pipe cannot keep the fetch waiting; the group is killed too at the deadline, when the
//! output is too large, and (through the protocol's exit hook) whenever the plugin exits, on
//! SIGTERM included. The CLI's stderr is never printed: CLIs quote what they were given.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nomad_secrets_protocol::{Error, ErrorKind, Settings};

/// Time kept back before the deadline for the answer to be printed.
const MARGIN: Duration = Duration::from_millis(300);
/// How much of stderr is kept, for its first line.
const STDERR_KEPT: usize = 4096;

/// The process group of the running CLI (0: none), for the exit hook.
static GROUP: AtomicI32 = AtomicI32::new(0);

/// Kills the running CLI's process group, if any.
fn kill_group() {
    let group = GROUP.swap(0, Ordering::SeqCst);
    if group > 0 {
        // SAFETY: a signal to a process group we created; no memory is involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// One run of the CLI.
pub struct Run<'a> {
    /// The argv, program first (absolute).
    pub argv: &'a [String],
    /// Its whole environment.
    pub env: &'a BTreeMap<OsString, OsString>,
    /// Its working folder (default `/`).
    pub working_dir: Option<&'a Path>,
    /// Largest stdout accepted.
    pub max_output: u64,
    /// The run's deadline.
    pub deadline: Instant,
}

/// Why a run gave no output.
#[derive(Debug)]
pub enum Failure {
    /// The program could not be started.
    Start(std::io::ErrorKind),
    /// It exited non-zero or was killed by a signal; the first line of stderr.
    Status(ExitStatus, String),
    /// It printed more than `max_output`.
    TooLarge,
    /// It did not finish before the deadline.
    Deadline,
    /// It exited, but something it started kept its stdout open past the deadline.
    HeldOpen,
}

enum Event {
    Stdout(Vec<u8>),
    TooLarge,
    Exited(std::io::Result<ExitStatus>),
}

/// Runs the CLI to its end; its stdout on success (exit 0).
pub fn run(run: &Run) -> Result<Vec<u8>, Failure> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| nomad_secrets_protocol::on_exit(kill_group));
    let mut child = Command::new(&run.argv[0])
        .args(&run.argv[1..])
        .env_clear()
        .envs(run.env)
        .current_dir(run.working_dir.unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Start(e.kind()))?;
    GROUP.store(child.id() as i32, Ordering::SeqCst);
    let (events, inbox) = mpsc::channel();
    let mut stdout = child.stdout.take().expect("piped");
    let limit = run.max_output;
    let sender = events.clone();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = (&mut stdout).take(limit + 1).read_to_end(&mut bytes);
        let _ = match read {
            Ok(_) if bytes.len() as u64 > limit => sender.send(Event::TooLarge),
            _ => sender.send(Event::Stdout(bytes)),
        };
    });
    let mut stderr = child.stderr.take().expect("piped");
    let (first_line, kept) = mpsc::channel();
    std::thread::spawn(move || {
        let mut head = Vec::new();
        let _ = (&mut stderr)
            .take(STDERR_KEPT as u64)
            .read_to_end(&mut head);
        let line = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>();
        let _ = first_line.send(line);
        // Drain the rest so the CLI never blocks on a full stderr pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
    });
    std::thread::spawn(move || {
        let _ = events.send(Event::Exited(child.wait()));
    });

    let stop = run.deadline.checked_sub(MARGIN).unwrap_or(run.deadline);
    let mut output = None;
    let mut status = None;
    let result = loop {
        if let (Some(_), Some(status)) = (&output, status) {
            break Ok(status);
        }
        let left = stop.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(left) {
            Ok(Event::Stdout(bytes)) => output = Some(bytes),
            Ok(Event::TooLarge) => break Err(Failure::TooLarge),
            Ok(Event::Exited(Ok(exited))) => {
                status = Some(exited);
                // Whatever it left behind goes with it: the stdout pipe then ends.
                kill_group();
            }
            Ok(Event::Exited(Err(e))) => break Err(Failure::Start(e.kind())),
            Err(_) if status.is_some() => break Err(Failure::HeldOpen),
            Err(_) => break Err(Failure::Deadline),
        }
    };
    kill_group();
    let status = result?;
    if status.success() {
        return Ok(output.unwrap_or_default());
    }
    let line = kept
        .recv_timeout(Duration::from_millis(50))
        .unwrap_or_default();
    Err(Failure::Status(status, line))
}

impl Failure {
    /// The message for the job: what happened, never what the CLI wrote (unless the operator
    /// allows the first line of its stderr).
    pub fn into_error(self, run: &Run, settings: &Settings) -> Error {
        let program = Path::new(&run.argv[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = settings.file().display();
        match self {
            Failure::Start(kind) => Error::settings(format!(
                "cannot start `{}`: {}",
                run.argv[0],
                match kind {
                    std::io::ErrorKind::NotFound => "no such file".to_owned(),
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied (is it executable?)".to_owned()
                    }
                    other => std::io::Error::from(other).to_string().to_lowercase(),
                }
            ))
            .hint(format!("check `command` in `{file}`")),
            Failure::Status(status, line) => {
                let how = match (status.code(), status.signal()) {
                    (Some(code), _) => format!("exited with status {code}"),
                    (None, Some(signal)) => format!("was killed by signal {signal}"),
                    (None, None) => "failed".to_owned(),
                };
                let shown = match settings.get(&crate::STDERR_FIRST_LINE) {
                    Some(true) if !line.is_empty() => format!(": {line}"),
                    _ => String::new(),
                };
                Error::unavailable(format!("`{program}` {how}{shown}")).hint(match shown.is_empty() {
                    true => format!("its stderr is not shown (it may quote secrets); run the command by hand on the node, or set `stderr_first_line = true` in `{file}` if it never holds one"),
                    false => "see the command's own documentation for that message".to_owned(),
                })
            }
            Failure::TooLarge => Error::invalid_secret(format!(
                "`{program}` printed more than {} bytes (`max_output`)",
                run.max_output
            ))
            .hint(format!("raise `max_output` in `{file}` if that is expected")),
            Failure::Deadline => Error::new(
                ErrorKind::Timeout,
                format!("`{program}` did not finish in time; it and everything it started were killed"),
            )
            .hint("check that the command can reach its service, or raise `deadline`"),
            Failure::HeldOpen => Error::new(
                ErrorKind::Timeout,
                format!("`{program}` exited, but a process it started outside its group kept its output open"),
            )
            .hint("the command leaves a daemon behind; configure it not to, or start that daemon separately"),
        }
    }
}
