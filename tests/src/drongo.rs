//! drongo, "the moto for GCP" (PyPI), serving Secret Manager's REST API on 127.0.0.1 for the gcp
//! plugin's tests; seeded by `tests/gcp/seed.py`. It checks no credentials, gives no
//! `dataCrc32c`, and resolves `latest` to the newest enabled version.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

/// A running drongo server, killed on drop.
pub struct Drongo {
    child: Child,
    endpoint: String,
}

impl Drongo {
    /// Starts a server on a port of its choosing and seeds it; `key_file` receives a
    /// service-account key made for the run.
    pub fn seeded(key_file: &std::path::Path) -> Drongo {
        let mut child = Command::new(crate::moto::venv().join("bin/drongo"))
            .args(["server", "--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start drongo (run `cargo xtask moto`)");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep reading what it prints: a closed pipe would kill it at its next line.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("drongo prints its address")
            .to_owned();
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
        Drongo { child, endpoint }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Drongo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
