//! Running the CLI: bounded in time and output, and never outliving the fetch.
//!
//! The CLI gets stdin from /dev/null, stdout and stderr as pipes of ours (never Nomad's), and a
//! process group of its own. The plugin makes itself a child subreaper first
//! (`PR_SET_CHILD_SUBREAPER`), so that whatever the CLI starts and leaves behind, in its group
//! or in a session of its own (`setsid`, a double fork), becomes the plugin's child instead of
//! init's. The fetch thread reads both pipes itself (stdout up to `max_output` bytes, the first
//! line of stderr, the rest drained) and answers as soon as the CLI itself has exited: what it
//! wrote is then in the pipe, read without blocking, and nothing a helper holding the pipe open
//! does can delay the answer. The run then ends the same way whatever ended it (exit, the
//! deadline, too much output, and through the protocol's exit hook every exit of the plugin,
//! SIGTERM included): the CLI's process group is killed, then every remaining child of the
//! plugin, again and again as orphans reparent to it, and reaped. The CLI's stderr is never
//! printed: CLIs quote what they were given.
//!
//! The plugin runs one CLI at a time, and every process it starts is that CLI or one of its
//! descendants: whatever is left a child of the plugin when a run ends is killed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nomad_secrets_protocol::{Error, ErrorKind, Settings};

/// Time kept back before the deadline for the answer to be printed.
const MARGIN: Duration = Duration::from_millis(300);
/// How much of stderr is kept, for its first line.
const STDERR_KEPT: usize = 4096;
/// How often the fetch thread looks whether the CLI has exited while its pipes are quiet, where
/// the kernel cannot say so (no pidfd).
const TICK: Duration = Duration::from_millis(5);
/// How long killing what is left may take at most (processes forking as fast as they die).
const KILLING: Duration = Duration::from_millis(500);
/// How much of stderr beyond its head one read of it drops at most.
const DROPPED: usize = 1 << 20;

/// The process group of the running CLI (0: none), for the exit hook.
static GROUP: AtomicI32 = AtomicI32::new(0);
/// Whether a CLI was started and what it left may not have been killed yet, for the exit hook.
static LIVE: AtomicBool = AtomicBool::new(false);

/// Kills the running CLI's process group, if any.
fn kill_group() {
    let group = GROUP.swap(0, Ordering::SeqCst);
    if group > 0 {
        // SAFETY: a signal to a process group we created; no memory is involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// The exit hook: the group, then every child left (as subreaper, the CLI's orphans are ours).
/// Never reaps (the fetch thread may be reaping) and never blocks for long.
fn kill_all_at_exit() {
    if LIVE.load(Ordering::SeqCst) {
        kill_group();
        kill_children(false);
    }
}

/// Kills every child of this process until none is left alive (orphans of the killed reparent
/// to us and are found on the next pass), bounded by [`KILLING`]; with `reap`, collects the dead
/// too. Only children are signalled, never deeper descendants: a child's PID cannot be reused
/// before we reap it, so no unrelated process can be hit.
fn kill_children(reap: bool) {
    let ours = std::process::id() as i32;
    let until = Instant::now() + KILLING;
    loop {
        let children = children_of(ours);
        let mut alive = false;
        for &(pid, zombie) in &children {
            if !zombie {
                alive = true;
                // SAFETY: a signal to our own child process; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if reap {
            for &(pid, _) in &children {
                // SAFETY: reaps our own child if it is dead; a null status pointer is allowed.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
        if !alive || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The processes whose parent is `parent`, each with whether it is a zombie, from
/// `/proc/<pid>/stat` (nothing when /proc cannot be read).
fn children_of(parent: i32) -> Vec<(i32, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (state, ppid) = parse_stat(&stat)?;
            (ppid == parent).then_some((pid, state == 'Z' || state == 'X'))
        })
        .collect()
}

/// The state and parent PID of a `/proc/<pid>/stat` line: `pid (comm) S ppid ...`, where
/// `comm` may hold spaces and parentheses (so the last `)` ends it).
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Makes this process the reaper of its descendants' orphans (once; a failure leaves them to
/// init, and only the process group is then killed for sure).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments only; it changes no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        nomad_secrets_protocol::on_exit(kill_all_at_exit);
    });
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
}

/// One of the CLI's pipes, read without blocking.
struct Pipe {
    file: std::fs::File,
    /// Until end of file (all writers gone) or the run's end.
    open: bool,
}

impl Pipe {
    fn new(fd: impl Into<std::os::fd::OwnedFd>) -> Pipe {
        let file = std::fs::File::from(fd.into());
        // SAFETY: fcntl on a descriptor we own, integer arguments only.
        unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Pipe { file, open: true }
    }

    /// Reads what the pipe holds now, without waiting: appended to `kept` up to `keep` bytes in
    /// all, the rest read and dropped when `drop_rest`, or left in the pipe.
    /// At most [`DROPPED`] bytes are dropped per call, so that a flood cannot keep the caller
    /// from its deadline.
    fn drain(&mut self, kept: &mut Vec<u8>, keep: usize, drop_rest: bool) {
        let mut buffer = [0u8; 16 << 10];
        let mut dropped = 0;
        while self.open {
            let room = keep.saturating_sub(kept.len());
            if room == 0 && (!drop_rest || dropped >= DROPPED) {
                return;
            }
            let want = match room {
                0 => buffer.len(),
                room => room.min(buffer.len()),
            };
            match self.file.read(&mut buffer[..want]) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    dropped += n.saturating_sub(room);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.open = false,
            }
        }
    }
}

/// Waits until one of `pipes` is readable (or closed), the CLI has exited (`exit`, its pidfd,
/// when the kernel has them), or `limit` passes.
fn wait_readable(pipes: [&Pipe; 2], exit: Option<&OwnedFd>, limit: Duration) {
    let mut fds: Vec<libc::pollfd> = pipes
        .iter()
        .filter(|pipe| pipe.open)
        .map(|pipe| pipe.file.as_raw_fd())
        .chain(exit.map(AsRawFd::as_raw_fd))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = limit.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures for the whole call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
}

/// A descriptor that becomes readable when process `pid` exits (Linux 5.3 and later).
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a system call with integer arguments; a descriptor it returns is ours alone.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd as libc::c_int))
    }
}

/// Runs the CLI to its end; its stdout on success (exit 0). Returns as soon as the CLI itself
/// has exited, with what it had written; the CLI's group and every process it left behind are
/// killed before this returns, whatever the outcome.
pub fn run(run: &Run) -> Result<Vec<u8>, Failure> {
    become_subreaper();
    // Before the spawn: a SIGTERM right after it must find the CLI.
    LIVE.store(true, Ordering::SeqCst);
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
    let exit = pidfd(child.id());
    // Without a pidfd, whether the CLI has exited is asked every TICK.
    let tick = match exit {
        Some(_) => Duration::MAX,
        None => TICK,
    };
    let mut stdout = Pipe::new(child.stdout.take().expect("piped"));
    let mut stderr = Pipe::new(child.stderr.take().expect("piped"));
    let limit = usize::try_from(run.max_output).unwrap_or(usize::MAX - 1);
    let (mut output, mut head) = (Vec::new(), Vec::new());
    let stop = run.deadline.checked_sub(MARGIN).unwrap_or(run.deadline);
    let result = loop {
        // Whether it has exited is asked before reading: everything it wrote before exiting is
        // then in the pipe, and the reads below take it all.
        let exited = child.try_wait();
        stdout.drain(&mut output, limit + 1, false);
        stderr.drain(&mut head, STDERR_KEPT, true);
        if output.len() > limit {
            break Err(Failure::TooLarge);
        }
        match exited {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(Failure::Start(e.kind())),
        }
        let now = Instant::now();
        if now >= stop {
            break Err(Failure::Deadline);
        }
        wait_readable([&stdout, &stderr], exit.as_ref(), tick.min(stop - now));
    };
    // Whatever it left behind goes now: its group, then every orphan (ours as subreaper).
    kill_group();
    kill_children(true);
    LIVE.store(false, Ordering::SeqCst);
    let status = result?;
    if status.success() {
        return Ok(output);
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect::<String>();
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
            .hint(format!(
                "raise `max_output` in `{file}` if that is expected"
            )),
            Failure::Deadline => Error::new(
                ErrorKind::Timeout,
                format!(
                    "`{program}` did not finish in time; it and everything it started were killed"
                ),
            )
            .hint("check that the command can reach its service, or raise `deadline`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_state_and_parent_whatever_the_name() {
        assert_eq!(
            parse_stat("42 (sleep) S 7 42 42 0 -1 4194304"),
            Some(('S', 7))
        );
        assert_eq!(parse_stat("43 (a) b) (c) Z 1 43 43 0 -1"), Some(('Z', 1)));
        assert_eq!(parse_stat("44 (x"), None);
        let ours = std::process::id() as i32;
        let parent =
            parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).map(|(_, ppid)| ppid);
        assert_eq!(parent, Some(std::os::unix::process::parent_id() as i32));
        assert!(children_of(ours).iter().all(|&(pid, _)| pid != ours));
    }
}
