//! The `file` plugin run exactly as Nomad runs it, against a fixture tree with every trap an
//! operator's folder can hold: symlinks in and out of the root, a FIFO, huge and binary files.

use std::os::unix::fs::symlink;
use std::path::Path;

use nomad_secrets_golden::{Plugin, Scratch, Suite, nomad_env};

const FILE: &str = env!("CARGO_BIN_EXE_file");

/// `<scratch>/outside.txt` and `<scratch>/root/...`; returns the scratch folder.
fn fixtures() -> Scratch {
    let scratch = Scratch::new("file-fixtures");
    let base = scratch.path();
    let root = base.join("root");
    let write = |name: &str, bytes: &[u8]| {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(base.join("outside.txt"), "CANARY-outside\n").unwrap();
    write(
        "db.json",
        br#"{"username": "app", "password": "CANARY-db-password", "port": 5432, "tls": true}"#,
    );
    write(
        "nested.json",
        br#"{"db": {"host": "h", "port": 5432}, "list": [1, "two", null], "ratio": 1.50,
            "big": 123456789012345678901234567890, "none": null, "dotted.key": "CANARY-d"}"#,
    );
    write("bom.json", "\u{feff}{\"a\": \"CANARY-bom\"}".as_bytes());
    write(
        "bad.json",
        br#"{"user": "app", "password": CANARY-bad-json}"#,
    );
    write("dup.json", br#"{"a": "CANARY-1", "a": "CANARY-2"}"#);
    write("null.json", b"null");
    write("nonutf8.json", b"{\"a\": \"CANARY-\xff\"}");
    write(
        "app.env",
        b"# app settings\nexport DB_USER=app\nDB_PASSWORD='CANARY-env pw'\nTLS_KEY=\"-----BEGIN\\nCANARY\\n-----END\"\nEMPTY=\n",
    );
    write("bad.env", b"A=1\nCANARY-a-pasted-secret-line\n");
    write("empty.env", b"# nothing here\n");
    write("plain.txt", b"CANARY-plain-value\n");
    write("payments/db.json", br#"{"password": "CANARY-payments"}"#);
    write("other/db.json", br#"{"password": "CANARY-other"}"#);
    symlink("../other/db.json", root.join("payments/link-to-other")).unwrap();
    write("crlf.txt", b"CANARY-crlf\r\n");
    write("binary.bin", b"\x00\xffCANARY\xfe\n");
    write("secret.data", br#"{"k": "CANARY-data"}"#);
    write("with space/my secret#1?.txt", b"CANARY-spaced\n");
    write("dir/user", b"app\n");
    write("dir/password", b"CANARY-dir-password\n");
    write("dir/.hidden", b"CANARY-hidden\n");
    write("dir/key.bin", b"\xff\xfeCANARY");
    write("dir/sub/ignored", b"CANARY-sub\n");
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    write("big.txt", &vec![b'x'; 2 << 20]);
    write("two-big/a", &vec![b'a'; 600 << 10]);
    write("two-big/b", &vec![b'b'; 600 << 10]);
    symlink("plain.txt", root.join("link-inside")).unwrap();
    symlink("dir", root.join("link-dir")).unwrap();
    symlink("/etc/hostname", root.join("link-outside")).unwrap();
    symlink("../outside.txt", root.join("link-up")).unwrap();
    symlink("nope", root.join("link-dangling")).unwrap();
    symlink("/proc/self/root/etc/hostname", root.join("link-proc")).unwrap();
    std::fs::create_dir_all(root.join("dir-escape")).unwrap();
    symlink("../../outside.txt", root.join("dir-escape/out")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid path; the result is checked.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    scratch
}

fn root_of(scratch: &Scratch) -> String {
    scratch.path().join("root").display().to_string()
}

#[test]
fn golden_cases() {
    let scratch = fixtures();
    Suite::new("file", FILE, "file")
        .placeholder("[ROOT]", &root_of(&scratch))
        .placeholder("[TMP]", std::env::temp_dir().to_str().unwrap())
        .run();
}

fn install(scratch: &Scratch, extra: &str) -> Plugin {
    let settings = format!("root = \"{}\"\n{extra}", root_of(scratch));
    Plugin::install(Path::new(FILE), "file", Some(&settings), 0o644)
}

#[test]
fn a_large_file_within_the_limit_is_returned_whole() {
    let scratch = fixtures();
    let plugin = install(&scratch, "max_size = \"4MiB\"\n");
    let outcome = plugin.run(&["fetch", "big.txt"], &nomad_env("fetch", &[]));
    outcome.check_contract("fetch").unwrap();
    let value: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(value["result"]["value"].as_str().unwrap().len(), 2 << 20);
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let scratch = fixtures();
    let plugin = install(&scratch, "");
    let paths = ["db.json", "app.env", "dir", "plain.txt"];
    plugin.assert_concurrent_fetches(&paths, &nomad_env("fetch", &[]), 64);
}
