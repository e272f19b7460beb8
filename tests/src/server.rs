//! One way to start a test server (moto, OpenBao, drongo): on a port free a moment before, tried
//! again on another when the start loses a race for it; ready when the server's own answer says
//! so, from a child still alive, within a timeout; its output kept in a log whose end is shown
//! when it does not start; killed on drop, and by the kernel when the thread that started it
//! dies (`PR_SET_PDEATHSIG`), so a killed or panicking test binary leaves no server behind.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a server at most this many times (each on another port).
const TRIES: usize = 5;

/// A running test server.
pub struct Server {
    child: Child,
    log: PathBuf,
}

/// What a start found.
pub enum Readiness<T> {
    /// Not yet: look again shortly.
    Waiting,
    /// Ready, with what the check learned (the address it printed, say).
    Ready(T),
}

impl Server {
    /// Starts `name` as `command(port)` for a port free a moment before, and waits until
    /// `ready(port, log)` (the log holds what it printed so far) says so. A child that exits
    /// first lost a race for its port (or failed): it is started again on another port, up to
    /// [`TRIES`] times. Panics after `timeout` of one start, or when every start died, with the
    /// end of the server's output.
    pub fn start<T>(
        name: &str,
        timeout: Duration,
        mut command: impl FnMut(u16) -> Command,
        mut ready: impl FnMut(u16, &str) -> Readiness<T>,
    ) -> (Server, T) {
        let mut log_text = String::new();
        for _ in 0..TRIES {
            let port = free_port();
            let log = log_file(name);
            let output = std::fs::File::create(&log).expect("create the server's log");
            let mut command = command(port);
            command
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("log file"))
                .stderr(output);
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e} (run `cargo xtask moto`)"));
            let mut server = Server { child, log };
            let started = Instant::now();
            loop {
                log_text = std::fs::read_to_string(&server.log).unwrap_or_default();
                if let Readiness::Ready(found) = ready(port, &log_text) {
                    return (server, found);
                }
                if server.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                assert!(
                    started.elapsed() < timeout,
                    "{name} was not ready in {timeout:?}; its output ended with:\n{}",
                    tail(&log_text)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "{name} exited before it was ready, {TRIES} times (ports taken by other tests?); its \
             last output ended with:\n{}",
            tail(&log_text)
        );
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port on 127.0.0.1 that was free a moment ago (another test may take it before the
/// server binds it: [`Server::start`] then tries another).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A log file of its own for one start of `name`, under the target directory.
fn log_file(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static STARTS: AtomicU32 = AtomicU32::new(0);
    let dir = crate::moto::venv().with_file_name("test-servers");
    std::fs::create_dir_all(&dir).expect("create target/test-servers");
    let start = STARTS.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{name}-{}-{start}.log", std::process::id()))
}

/// The last lines of a server's output.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &'static str) -> impl FnMut(u16) -> Command {
        move |port| {
            let mut command = Command::new("sh");
            command.args(["-c", script, "sh", &port.to_string()]);
            command
        }
    }

    /// The state letter of process `pid` (`Z` once killed and not yet reaped), if it exists.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    #[test]
    fn ready_when_the_output_says_so_and_killed_on_drop() {
        let (server, port) = Server::start(
            "printer",
            Duration::from_secs(10),
            shell("sleep 0.2; echo listening on $1; exec sleep 600"),
            |port, log| match log.contains(&format!("listening on {port}\n")) {
                true => Readiness::Ready(port),
                false => Readiness::Waiting,
            },
        );
        assert!(port > 0);
        let pid = server.pid();
        drop(server);
        assert_eq!(state(pid), None, "killed and reaped");
    }

    #[test]
    #[should_panic(expected = "it lost the race")]
    fn a_child_that_keeps_dying_is_retried_then_its_output_shown() {
        Server::start(
            "dier",
            Duration::from_secs(10),
            shell("echo it lost the race; exit 1"),
            |_, _| Readiness::<()>::Waiting,
        );
    }

    #[test]
    #[should_panic(expected = "was not ready in")]
    fn a_server_that_never_gets_ready_fails_at_the_timeout() {
        Server::start(
            "mute",
            Duration::from_millis(300),
            shell("exec sleep 600"),
            |_, _| Readiness::<()>::Waiting,
        );
    }

    #[test]
    fn a_server_dies_with_the_thread_that_started_it() {
        // The server is never dropped (as when a test binary is killed): the kernel kills it
        // when its starting thread ends.
        let (pid, log) = std::thread::spawn(|| {
            let (server, ()) = Server::start(
                "orphan",
                Duration::from_secs(10),
                shell("echo up; exec sleep 600"),
                |_, log| match log.contains("up") {
                    true => Readiness::Ready(()),
                    false => Readiness::Waiting,
                },
            );
            let (pid, log) = (server.pid(), server.log.clone());
            std::mem::forget(server);
            (pid, log)
        })
        .join()
        .unwrap();
        let started = Instant::now();
        while !matches!(state(pid), Some('Z') | None) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server outlived the thread that started it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(log);
    }
}
