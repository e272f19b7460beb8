//! drongo, "the moto for GCP" (PyPI), serving Secret Manager's REST API on 127.0.0.1 for the gcp
//! plugin's tests; seeded by `tests/gcp/seed.py`. It checks no credentials, gives no
//! `dataCrc32c`, and resolves `latest` to the newest enabled version.

use std::process::Command;
use std::time::Duration;

use crate::server::{Readiness, Server};

/// A running drongo server, killed on drop.
pub struct Drongo {
    _server: Server,
    endpoint: String,
}

impl Drongo {
    /// Starts a server on a port of its choosing and seeds it; `key_file` receives a
    /// service-account key made for the run.
    pub fn seeded(key_file: &std::path::Path) -> Drongo {
        // Port 0: drongo binds a port of its own and prints its address first; its output is
        // unbuffered so the address reaches the log at once.
        let (server, endpoint) = Server::start(
            "drongo",
            Duration::from_secs(60),
            |_| {
                let mut command = Command::new(crate::moto::venv().join("bin/drongo"));
                command
                    .args(["server", "--host", "127.0.0.1", "--port", "0"])
                    .env("PYTHONUNBUFFERED", "1");
                command
            },
            |_, log| {
                // Whole lines only: a line being written could hold half a port.
                let lines = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
                match lines.split_whitespace().find(|w| w.starts_with("http://")) {
                    Some(address) => Readiness::Ready(address.to_owned()),
                    None => Readiness::Waiting,
                }
            },
        );
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/gcp/seed.py");
        let output = Command::new(crate::moto::venv().join("bin/python"))
            .arg(seed)
            .arg(&endpoint)
            .arg(key_file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "seed.py: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Drongo {
            _server: server,
            endpoint,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}
