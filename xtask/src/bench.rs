//! `cargo xtask bench [--runs N] [--fingerprint-only | --load-only] [--check]`: what a plugin
//! run costs, side by side with the programs users would otherwise run, and what a burst of
//! fetches at once costs (`--load-only` is `cargo xtask load`).
//!
//! Each contender is started `N` times (interleaved, so machine noise hits all alike) with a
//! cleared environment as Nomad starts plugins. Wall time is measured around spawn and wait of an
//! untraced run; peak RSS is the `VmHWM` of a second, traced run, read when it exits. Medians are reported, with
//! ratios to the first contender of each table. The table is written to `target/bench/results.md`.
//!
//! `--check` fails when a plugin's fingerprint peak RSS exceeds its bound relative to a program
//! that prints one line (`/bin/echo`): fingerprint runs at every client start, plugins one after
//! another.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::target_dir;
use crate::{Result, root};

/// One scenario per backend, in its own file: `azure` so far (the others are below, to move).
#[cfg(feature = "servers")]
mod azure;

struct Contender {
    label: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Contender {
    fn new(label: &str, program: impl Into<PathBuf>, args: &[&str], env: &[(&str, &str)]) -> Self {
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
    fn clone_as(&self, label: &str) -> Contender {
        Contender {
            label: label.to_owned(),
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
        }
    }

    fn command(&self) -> Command {
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

struct Row {
    label: String,
    wall: Duration,
    rss_kib: u64,
}

/// Runs the task.
pub fn run(args: &[String]) -> Result {
    let mut runs = 200;
    let mut fingerprint_only = false;
    let mut load_only = false;
    let mut check = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--runs" => {
                runs = rest
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--runs takes a number")?
            }
            "--fingerprint-only" => fingerprint_only = true,
            "--load-only" => load_only = true,
            "--check" => check = true,
            other => return Err(format!("unknown bench flag {other}")),
        }
    }
    if check && load_only {
        return Err("--check gates the fingerprint's memory, which --load-only does not measure: drop one of them".into());
    }

    let built = crate::build_release()?;
    let bench = target_dir().join("bench");
    let secrets = crate::install::install(&bench, &built)?;
    let settings = secrets.join("file.toml");
    let examples = root().join("examples/secrets");
    crate::install::write_settings(&settings, &format!("root = \"{}\"\n", examples.display()))?;
    let file = secrets.join("file");
    for (name, _) in &built {
        forget_cached_pages(&secrets.join(name))?;
    }

    let fingerprint = format!(
        "{{\"type\":\"secrets\",\"version\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    let mut report = String::from("# Benchmarks\n\n");
    let mut loads = Vec::new();
    let mut contenders = vec![Contender::new(
        "/bin/echo of the same line",
        "/bin/echo",
        &[&fingerprint],
        &[],
    )];
    for (name, _) in &built {
        contenders.push(Contender::new(
            &format!("{name} fingerprint"),
            secrets.join(name),
            &["fingerprint"],
            &[("CPI_OPERATION", "fingerprint")],
        ));
    }
    let fingerprint_rows = match load_only {
        true => Vec::new(),
        false => table(
            &mut report,
            "fingerprint (runs at every client start and SIGHUP)",
            runs,
            &contenders,
        )?,
    };
    let tables = !load_only;
    if !fingerprint_only {
        let db = examples.join("db.json");
        let script = format!(
            "printf '{{\"result\":%s}}\\n' \"$(cat '{}')\"",
            db.display()
        );
        let mut fetches = vec![
            Contender::new(
                "file fetch db.json",
                &file,
                &["fetch", "db.json"],
                &[("CPI_OPERATION", "fetch"), ("NOMAD_JOB_ID", "bench")],
            ),
            Contender::new(
                "/bin/sh script: printf + cat",
                "/bin/sh",
                &["-c", &script],
                &[],
            ),
        ];
        if let Some(jq) = ["/usr/bin/jq", "/usr/local/bin/jq"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
        {
            fetches.push(Contender::new(
                "jq -c '{result: .}' db.json",
                jq,
                &["-c", "{result: .}", db.to_str().unwrap()],
                &[],
            ));
        }
        if tables {
            table(&mut report, "fetch of a JSON file", runs, &fetches)?;
            let identity = identity_contenders(&bench, &built, &examples)?;
            table(
                &mut report,
                "fetch of a JSON file with a verified workload identity (RS256, key set read from a file as a kept one is)",
                runs,
                &identity,
            )?;
        }
        let audit = bench.join("file-audit.jsonl");
        std::fs::write(
            &settings,
            format!(
                "root = \"{}\"\naudit_log = \"{}\"\n",
                examples.display(),
                audit.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        burst(
            &mut loads,
            "file",
            &file,
            &["db.json", "app.env", "tls", "db.json#password"],
            &[],
            &audit,
        )?;
        if tables {
            command_table(&mut report, runs.min(50), &secrets)?;
        }
        aws_table(
            &mut report,
            &mut loads,
            tables.then_some(runs.min(30)),
            &secrets,
        )?;
        vault_table(
            &mut report,
            &mut loads,
            tables.then_some(runs.min(100)),
            &secrets,
        )?;
        gcp_table(
            &mut report,
            &mut loads,
            tables.then_some(runs.min(50)),
            &secrets,
        )?;
        #[cfg(feature = "servers")]
        azure::azure_table(
            &mut report,
            &mut loads,
            tables.then_some(runs.min(50)),
            &secrets,
        )?;
        report.push_str(&format!(
            "## load: {BURST} fetches started at once, per plugin

\
             | plugin | failed | all done in | slowest fetch (audit) | peak memory of the burst (sum of PSS) | largest process (peak RSS) | whole audit lines |
\
             |---|---:|---:|---:|---:|---:|---:|
{}
",
            loads.concat()
        ));
        if load_only {
            crate::suites::record("load", &report)?;
            unburst(&loads)?;
        }
    }
    std::fs::write(bench.join("results.md"), &report).map_err(|e| e.to_string())?;
    print!("{report}");

    if check {
        // Each plugin's bound is declared in its Cargo.toml (`fingerprint-rss-ratio`).
        let bounds = crate::plugins::all()?;
        for (row, (name, _)) in fingerprint_rows[1..].iter().zip(&built) {
            let ratio = row.rss_kib as f64 / fingerprint_rows[0].rss_kib as f64;
            let limit = bounds
                .iter()
                .find(|plugin| &plugin.name == name)
                .map_or(crate::plugins::FINGERPRINT_RSS_RATIO, |p| {
                    p.fingerprint_rss_ratio
                });
            if ratio > limit {
                return Err(format!(
                    "{}: peak RSS is {ratio:.2}x that of /bin/echo, above its {limit} bound; if \
                     the code the fingerprint runs changed (or the compiler, or a dependency), \
                     run `cargo xtask order` to refresh xtask/fingerprint.order (README \"Speed\")",
                    row.label
                ));
            }
        }
    }
    Ok(())
}

/// `file` fetching db.json without and with a verified workload identity (the example token
/// and key set under `examples/identity`), each installed with its own settings: what
/// verification adds to a run once the key set is at hand.
fn identity_contenders(
    bench: &std::path::Path,
    built: &[(String, PathBuf)],
    examples: &std::path::Path,
) -> Result<Vec<Contender>> {
    let identity = root().join("examples/identity");
    let token = std::fs::read_to_string(identity.join("demo.jwt")).map_err(|e| e.to_string())?;
    let file: Vec<(String, PathBuf)> = built.iter().filter(|(n, _)| n == "file").cloned().collect();
    let mut contenders = Vec::new();
    for (label, extra) in [
        ("file fetch db.json", String::new()),
        (
            "file fetch db.json, token verified",
            format!(
                "identity_jwks_file = \"{}\"\nidentity_required = true\n",
                identity.join("jwks.json").display()
            ),
        ),
    ] {
        let dir = bench.join(format!("identity-{}", contenders.len()));
        let secrets = crate::install::install(&dir, &file)?;
        crate::install::write_settings(
            &secrets.join("file.toml"),
            &format!("root = \"{}\"\n{extra}", examples.display()),
        )?;
        let mut env = vec![
            ("CPI_OPERATION", "fetch"),
            ("NOMAD_NAMESPACE", "default"),
            ("NOMAD_JOB_ID", "demo"),
        ];
        if !extra.is_empty() {
            env.push(("NOMAD_WORKLOAD_IDENTITY", token.trim()));
        }
        contenders.push(Contender::new(
            label,
            secrets.join("file"),
            &["fetch", "db.json"],
            &env,
        ));
    }
    Ok(contenders)
}

/// The tables that start test servers, in the plain build (which runs `demo` only and re-runs
/// every other task with the servers; see `with_servers` in main.rs).
#[cfg(not(feature = "servers"))]
mod without_servers {
    use super::Result;
    const WHY: &str = "built without the test servers: run it through `cargo xtask`";
    pub fn command_table(_: &mut String, _: usize, _: &std::path::Path) -> Result {
        Err(WHY.into())
    }
    pub fn vault_table(
        _: &mut String,
        _: &mut Vec<String>,
        _: Option<usize>,
        _: &std::path::Path,
    ) -> Result {
        Err(WHY.into())
    }
    pub use vault_table as gcp_table;
}
#[cfg(not(feature = "servers"))]
use without_servers::{command_table, gcp_table, vault_table};

/// Writes `path` to disk and drops it from the page cache, so it is measured as a client runs it
/// after boot. A file just written sits in the page cache in large folios, and the kernel then
/// maps more of it on each fault: the aws plugin's fingerprint measured 2.37 MB fresh from
/// `install`, 2.06 MB read back from disk.
fn forget_cached_pages(path: &std::path::Path) -> Result {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.sync_all().map_err(|e| e.to_string())?;
    // SAFETY: a valid descriptor; fadvise only gives the kernel a hint.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    Ok(())
}

/// `aws fetch` against a seeded moto server, beside one `curl --aws-sigv4` request (the floor:
/// one signed HTTP exchange) and the AWS CLI (what a shell plugin would call).
fn aws_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    let venv = crate::moto::target_dir().join("moto-venv");
    if !venv.join("bin/moto_server").exists() {
        report.push_str("## aws\n\nSkipped: run `cargo xtask moto` first.\n\n");
        return Ok(());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut moto = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("moto_server: {e}"))?;
    let result = (|| {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("moto_server did not start".to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        crate::run(
            Command::new(venv.join("bin/python"))
                .arg(root().join("tests/moto/seed.py"))
                .arg(&endpoint)
                .stdout(Stdio::null()),
        )?;
        let settings = secrets.join("aws.toml");
        crate::install::write_settings(
            &settings,
            &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
        )?;
        let keys = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ];
        let mut contenders = vec![
            Contender::new(
                "curl --aws-sigv4 (one signed request)",
                "/usr/bin/curl",
                &[
                    "-sf",
                    "--aws-sigv4",
                    "aws:amz:us-east-1:secretsmanager",
                    "--user",
                    "testing:testing",
                    "-H",
                    "X-Amz-Target: secretsmanager.GetSecretValue",
                    "-H",
                    "Content-Type: application/x-amz-json-1.1",
                    "-d",
                    "{\"SecretId\":\"prod/db\"}",
                    &endpoint,
                ],
                &[],
            ),
            Contender::new(
                "aws fetch prod/db (this plugin)",
                secrets.join("aws"),
                &["fetch", "prod/db"],
                &[keys.as_slice(), &[("CPI_OPERATION", "fetch")]].concat(),
            ),
        ];
        if let Some(cli) = aws_cli()? {
            contenders.push(Contender::new(
                "AWS CLI secretsmanager get-secret-value",
                cli,
                &[
                    "secretsmanager",
                    "get-secret-value",
                    "--secret-id",
                    "prod/db",
                    "--endpoint-url",
                    &endpoint,
                ],
                // AWS CLI v1 reads AWS_DEFAULT_REGION, not AWS_REGION.
                &[
                    keys.as_slice(),
                    &[("HOME", "/tmp"), ("AWS_DEFAULT_REGION", "us-east-1")],
                ]
                .concat(),
            ));
        }
        if let Some(runs) = runs {
            table(
                report,
                "aws: GetSecretValue against moto on 127.0.0.1",
                runs,
                &contenders,
            )?;
        }
        let audit = secrets.join("../aws-audit.jsonl");
        std::fs::write(
            &settings,
            format!(
                "endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\naudit_log = \"{}\"\n",
                audit.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        burst(
            loads,
            "aws",
            &secrets.join("aws"),
            &["prod/db", "plain", "binary", "prod/db?stage=AWSPREVIOUS"],
            &keys,
            &audit,
        )?;
        let size = std::fs::metadata(secrets.join("aws"))
            .map_err(|e| e.to_string())?
            .len();
        report.push_str(&format!(
            "aws release binary: {:.1} MiB\n\n",
            size as f64 / (1 << 20) as f64
        ));
        ssm_table(report, loads, runs, secrets, &endpoint, &keys)
    })();
    let _ = moto.kill();
    let _ = moto.wait();
    result
}

/// A sops-encrypted file read through the `command` plugin, beside `sops decrypt` run alone:
/// the plugin's own overhead on a real CLI.
#[cfg(feature = "servers")]
fn command_table(report: &mut String, runs: usize, secrets: &std::path::Path) -> Result {
    use nomad_secrets_golden::tools::{sops, sops_fixtures};
    let work = secrets.join("../command-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let key = sops_fixtures(&work);
    let sops = sops();
    let encrypted = work.join("secrets/db.json");
    let settings = secrets.join("command.toml");
    crate::install::write_settings(
        &settings,
        &format!(
            "command = [\"{}\", \"decrypt\", \"--output-type\", \"json\", \"--\", \"{}/{{path}}\"]\npath_pattern = \"[a-z]+\\\\.json\"\nenv = [\"SOPS_AGE_KEY_FILE={}\", \"SOPS_DISABLE_VERSION_CHECK=1\"]\n",
            sops.display(),
            work.join("secrets").display(),
            key.display()
        ),
    )?;
    let key_env = format!("{}", key.display());
    let contenders = [
        Contender::new(
            "sops decrypt --output-type json (alone)",
            &sops,
            &[
                "decrypt",
                "--output-type",
                "json",
                "--",
                encrypted.to_str().unwrap_or_default(),
            ],
            &[
                ("SOPS_AGE_KEY_FILE", &key_env),
                ("SOPS_DISABLE_VERSION_CHECK", "1"),
            ],
        ),
        Contender::new(
            "command fetch db.json (the same sops, through the plugin)",
            secrets.join("command"),
            &["fetch", "db.json"],
            &[("CPI_OPERATION", "fetch")],
        ),
    ];
    table(
        report,
        "command: a sops-encrypted JSON file (age key)",
        runs,
        &contenders,
    )?;
    Ok(())
}

/// `aws-ssm fetch` against moto (already seeded), beside one `curl --aws-sigv4` GetParameter
/// and the AWS CLI's `ssm get-parameter`; then the 200-fetch burst.
fn ssm_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
    endpoint: &str,
    keys: &[(&str, &str)],
) -> Result {
    let settings = secrets.join("aws-ssm.toml");
    crate::install::write_settings(
        &settings,
        &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
    )?;
    let name = "/app/prod/db/password";
    let mut contenders = vec![
        Contender::new(
            "curl --aws-sigv4 (one signed GetParameter)",
            "/usr/bin/curl",
            &[
                "-sf",
                "--aws-sigv4",
                "aws:amz:us-east-1:ssm",
                "--user",
                "testing:testing",
                "-H",
                "X-Amz-Target: AmazonSSM.GetParameter",
                "-H",
                "Content-Type: application/x-amz-json-1.1",
                "-d",
                &format!("{{\"Name\":\"{name}\",\"WithDecryption\":true}}"),
                endpoint,
            ],
            &[],
        ),
        Contender::new(
            &format!("aws-ssm fetch {name} (this plugin)"),
            secrets.join("aws-ssm"),
            &["fetch", name],
            &[keys, &[("CPI_OPERATION", "fetch")]].concat(),
        ),
        Contender::new(
            "aws-ssm fetch /app/prod/ (a hierarchy of 5, one page)",
            secrets.join("aws-ssm"),
            &["fetch", "/app/prod/"],
            &[keys, &[("CPI_OPERATION", "fetch")]].concat(),
        ),
    ];
    if let Some(cli) = aws_cli()? {
        contenders.push(Contender::new(
            "AWS CLI ssm get-parameter --with-decryption",
            cli,
            &[
                "ssm",
                "get-parameter",
                "--with-decryption",
                "--name",
                name,
                "--endpoint-url",
                endpoint,
            ],
            &[
                keys,
                &[("HOME", "/tmp"), ("AWS_DEFAULT_REGION", "us-east-1")],
            ]
            .concat(),
        ));
    }
    if let Some(runs) = runs {
        table(
            report,
            "aws-ssm: GetParameter against moto on 127.0.0.1",
            runs,
            &contenders,
        )?;
    }
    let audit = secrets.join("../aws-ssm-audit.jsonl");
    std::fs::write(
        &settings,
        format!(
            "endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\naudit_log = \"{}\"\n",
            audit.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    burst(
        loads,
        "aws-ssm",
        &secrets.join("aws-ssm"),
        &[name, "/app/prod/", "/app/prod/config", "/many/"],
        keys,
        &audit,
    )
}

/// `vault-kv fetch` against the Vault API double, beside one `curl` request (the floor).
#[cfg(feature = "servers")]
fn vault_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    use nomad_secrets_golden::openbao::{OpenBao, audit_config, audited_requests};
    let bench = secrets.join("..");
    let log = bench.join("openbao-audit.log");
    let _ = std::fs::remove_file(&log);
    let config = audit_config(&bench, &log);
    let (bao, _) = OpenBao::seeded_with(Some(&config));
    let url = bao.address().to_owned();
    let settings = secrets.join("vault-kv.toml");
    crate::install::write_settings(&settings, &format!("address = \"{url}\"\n"))?;
    let env = [("CPI_OPERATION", "fetch"), ("VAULT_TOKEN", "root-token")];
    let contenders = [
        Contender::new(
            "curl (one request: the floor)",
            "/usr/bin/curl",
            &[
                "-sf",
                "-H",
                "X-Vault-Token: root-token",
                "-H",
                "X-Vault-Request: true",
                &format!("{url}/v1/secret/data/db"),
            ],
            &[],
        ),
        Contender::new(
            "vault-kv fetch secret/db (mount lookup + read)",
            secrets.join("vault-kv"),
            &["fetch", "secret/db"],
            &env,
        ),
    ];
    // What one fetch of each kind costs the server, from its own audit device.
    let mut costs = Vec::new();
    for contender in &contenders[1..] {
        let before = audited_requests(&log);
        contender.command().output().map_err(|e| e.to_string())?;
        costs.push(format!(
            "{}: {} request(s) at the server",
            contender.label,
            audited_requests(&log) - before
        ));
    }
    if let Some(runs) = runs {
        table(
            report,
            "vault-kv: KV v2 read against a real OpenBao 2.7.2 server on 127.0.0.1",
            runs,
            &contenders,
        )?;
        report.push_str(&format!(
            "Counted by OpenBao's file audit device: {}.\n\n",
            costs.join("; ")
        ));
    }
    let audit = secrets.join("../vault-audit.jsonl");
    std::fs::write(
        &settings,
        format!("address = \"{url}\"\naudit_log = \"{}\"\n", audit.display()),
    )
    .map_err(|e| e.to_string())?;
    let before = audited_requests(&log);
    burst(
        loads,
        "vault-kv",
        &secrets.join("vault-kv"),
        &["secret/db", "kv1/app", "secret/db?version=1"],
        &[("VAULT_TOKEN", "root-token")],
        &audit,
    )?;
    let without_cache = audited_requests(&log) - before;
    // The same burst through the node-local cache (a tmpfs folder): the server's cost, and a
    // cache hit beside a fetch from the store.
    let cache = PathBuf::from(format!(
        "/dev/shm/nomad-secrets-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::write(
        &settings,
        format!(
            "address = \"{url}\"\naudit_log = \"{}\"\ncache_ttl = \"1h\"\ncache_dir = \"{}\"\n",
            audit.display(),
            cache.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let before = audited_requests(&log);
    burst(
        loads,
        "vault-kv (cache)",
        &secrets.join("vault-kv"),
        &["secret/db", "kv1/app", "secret/db?version=1"],
        &[("VAULT_TOKEN", "root-token")],
        &audit,
    )?;
    let with_cache = audited_requests(&log) - before;
    report.push_str(&format!(
        "vault-kv burst of {BURST} fetches (3 secrets): OpenBao's audit device saw {without_cache} requests without the cache, {with_cache} with it.\n\n"
    ));
    if let Some(runs) = runs {
        // Beside the store's row in the table above (mount lookup + read).
        let hit = [
            Contender::new(
                "file fetch db.json (the floor)",
                secrets.join("file"),
                &["fetch", "db.json"],
                &[("CPI_OPERATION", "fetch")],
            ),
            contenders[1].clone_as("vault-kv fetch secret/db (a cache hit)"),
        ];
        table(
            report,
            "vault-kv: a cache hit against the file floor",
            runs,
            &hit,
        )?;
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// `gcp fetch` against drongo (Secret Manager's REST API on 127.0.0.1), with the job's token and
/// with a service-account key (which signs a JWT per run), beside one `curl` request with a
/// bearer token (the floor) and Google's Python client (`google-cloud-secret-manager`, REST).
#[cfg(feature = "servers")]
fn gcp_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    use nomad_secrets_golden::drongo::Drongo;
    let bench = secrets.join("..");
    let key = bench.join("gcp-service-account.json");
    let drongo = Drongo::seeded(&key);
    let endpoint = drongo.endpoint().to_owned();
    let settings = |name: &str, extra: &str| {
        crate::install::write_settings(
            &secrets.join(format!("{name}.toml")),
            &format!(
                "endpoint_url = \"{endpoint}\"\nmetadata_endpoint = \"off\"\nproject = \"acme\"\n{extra}"
            ),
        )
    };
    settings("gcp", "")?;
    // The same executable as another provider, with the operator's service-account key.
    let with_key = secrets.join("gcp-key");
    let _ = std::fs::remove_file(&with_key);
    std::fs::hard_link(secrets.join("gcp"), &with_key).map_err(|e| e.to_string())?;
    settings(
        "gcp-key",
        &format!("credentials_file = \"{}\"\n", key.display()),
    )?;
    let token = [("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.bench")];
    let fetch = [("CPI_OPERATION", "fetch")];
    let mut contenders = vec![
        Contender::new(
            "curl (one request with a bearer token: the floor)",
            "/usr/bin/curl",
            &[
                "-sf",
                "-H",
                "Authorization: Bearer ya29.bench",
                &format!("{endpoint}/v1/projects/acme/secrets/db/versions/latest:access"),
            ],
            &[],
        ),
        Contender::new(
            "gcp fetch db (the job's access token)",
            secrets.join("gcp"),
            &["fetch", "db"],
            &[token.as_slice(), &fetch].concat(),
        ),
        Contender::new(
            "gcp fetch db (the operator's service-account key)",
            &with_key,
            &["fetch", "db"],
            &fetch,
        ),
    ];
    if let Some(venv) = bench_venv("google-cloud-secret-manager")? {
        let script = bench.join("gcp-python.py");
        std::fs::write(
            &script,
            "import sys\n\
             from google.api_core.client_options import ClientOptions\n\
             from google.cloud import secretmanager\n\
             from google.oauth2.credentials import Credentials\n\
             client = secretmanager.SecretManagerServiceClient(credentials=Credentials(sys.argv[2]), transport='rest', client_options=ClientOptions(api_endpoint=sys.argv[1]))\n\
             print(client.access_secret_version(name='projects/acme/secrets/db/versions/latest').payload.data.decode())\n",
        )
        .map_err(|e| e.to_string())?;
        let python = Contender::new(
            "Python google-cloud-secret-manager (REST, a bearer token)",
            venv.join("bin/python"),
            &[script.to_str().unwrap(), &endpoint, "ya29.bench"],
            &[],
        );
        // Measured only if it reads the secret here.
        let works = python
            .command()
            .status()
            .map_err(|e| e.to_string())?
            .success();
        match works {
            true => contenders.push(python),
            false => report.push_str(
                "gcp: Google's Python client did not read from drongo here; its row is left out.\n\n",
            ),
        }
    }
    if let Some(runs) = runs {
        table(
            report,
            "gcp: AccessSecretVersion against drongo on 127.0.0.1",
            runs,
            &contenders,
        )?;
    }
    let audit = bench.join("gcp-audit.jsonl");
    settings("gcp", &format!("audit_log = \"{}\"\n", audit.display()))?;
    burst(
        loads,
        "gcp",
        &secrets.join("gcp"),
        &["db", "plain", "db#password", "db?version=1"],
        &token,
        &audit,
    )?;
    Ok(())
}

/// Fails when a network plugin's burst did not run (its store could not be started, say): a
/// load suite that skipped one would pass on nothing.
fn unburst(loads: &[String]) -> Result {
    let missing: Vec<String> = crate::plugins::all()?
        .into_iter()
        .filter(|plugin| plugin.network)
        .filter(|plugin| {
            !loads
                .iter()
                .any(|row| row.starts_with(&format!("| {} |", plugin.name)))
        })
        .map(|plugin| plugin.name)
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "load: no burst ran for {} (a store that could not start: for aws and aws-ssm, run `cargo xtask moto`)",
            missing.join(", ")
        )),
    }
}

/// Fetches started at once in a burst.
const BURST: usize = 200;

/// `BURST` fetches at once, as many allocations starting together would cause. Every one must
/// answer with a result (a timeout would be an error, so none passed the deadline) and leave
/// one whole audit line. Reports the time for all and the burst's memory: the peak of the sum
/// of the live plugin processes' proportional set sizes (PSS: shared pages counted once across
/// them), sampled as fast as /proc allows, and the largest single process's peak RSS (from
/// `wait4`).
fn burst(
    loads: &mut Vec<String>,
    plugin: &str,
    program: &std::path::Path,
    paths: &[&str],
    env: &[(&str, &str)],
    audit: &std::path::Path,
) -> Result {
    use std::io::Read as _;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let _ = std::fs::remove_file(audit);
    let pids: Arc<Mutex<Vec<u32>>> = Arc::default();
    let peak_pss = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pids, peak_pss, stop) = (pids.clone(), peak_pss.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sweeps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let live = pids.lock().unwrap().clone();
                let total: u64 = live.iter().filter_map(|pid| pss_kib(*pid)).sum();
                peak_pss.fetch_max(total, Ordering::Relaxed);
                sweeps += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            sweeps
        })
    };
    let job = [
        ("CPI_OPERATION", "fetch"),
        ("NOMAD_NAMESPACE", "bench"),
        ("NOMAD_JOB_ID", "burst"),
    ];
    let env: Vec<(&str, &str)> = job.into_iter().chain(env.iter().copied()).collect();
    let started = Instant::now();
    let mut children = Vec::new();
    for i in 0..BURST {
        let child = Command::new(program)
            .args(["fetch", paths[i % paths.len()]])
            .env_clear()
            .envs(env.iter().copied())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{plugin}: {e}"))?;
        pids.lock().unwrap().push(child.id());
        children.push(child);
    }
    let mut failures = Vec::new();
    let mut largest_rss_kib = 0;
    for mut child in children {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_end(&mut stdout);
        }
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let (code, max_rss_kib) = wait_with_rusage(child.id())?;
        largest_rss_kib = largest_rss_kib.max(max_rss_kib);
        if code != Some(0) || !stderr.is_empty() || !stdout.starts_with(b"{\"result\"") {
            failures.push(String::from_utf8_lossy(&stdout).into_owned());
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sweeps = sampler.join().unwrap_or(0);
    let peak_mib = peak_pss.load(Ordering::Relaxed) as f64 / 1024.0;
    let lines = std::fs::read_to_string(audit).unwrap_or_default();
    let audited: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let whole = audited.iter().filter(|a| a["outcome"] == "ok").count();
    // Each run's own time, from its start to its answer: under the deadline, or it would have
    // answered with the deadline's error instead of a result.
    let slowest_ms = audited
        .iter()
        .filter_map(|a| a["duration_ms"].as_u64())
        .max()
        .unwrap_or(0);
    loads.push(format!(
        "| {plugin} | {} | {:.0} ms | {slowest_ms} ms | {peak_mib:.1} MiB ({sweeps} samples) | {:.1} MiB | {whole} of {BURST} |\n",
        failures.len(),
        elapsed.as_secs_f64() * 1e3,
        largest_rss_kib as f64 / 1024.0,
    ));
    if !failures.is_empty() || whole != BURST {
        return Err(format!(
            "{plugin}: {} of {BURST} fetches failed, {whole} whole audit lines; first failure: {}",
            failures.len(),
            failures.first().map(String::as_str).unwrap_or("-")
        ));
    }
    Ok(())
}

/// A live process's proportional set size, from `/proc/<pid>/smaps_rollup`.
fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Reaps `pid`; returns its exit code (`None` when a signal ended it) and its peak RSS in KiB.
fn wait_with_rusage(pid: u32) -> Result<(Option<i32>, u64)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, not reaped yet; both pointers are valid for the call.
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if reaped != pid as i32 {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok((code, usage.ru_maxrss as u64))
}

/// The AWS CLI (v1, from PyPI) in `target/bench-venv`, installed on first use.
fn aws_cli() -> Result<Option<PathBuf>> {
    Ok(bench_venv("awscli")?.map(|venv| venv.join("bin/aws")))
}

/// `target/bench-venv` with `package` from PyPI installed on first use (what users would run
/// instead of a plugin; not needed by the tests), or `None` when it cannot be installed here.
fn bench_venv(package: &str) -> Result<Option<PathBuf>> {
    let venv = crate::moto::target_dir().join("bench-venv");
    let marker = venv.join(format!("installed-{package}"));
    if marker.exists() {
        return Ok(Some(venv));
    }
    let python = venv.join("bin/python");
    let installed = (python.exists()
        || Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| e.to_string())?
            .success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", package])
            .status()
            .map_err(|e| e.to_string())?
            .success();
    if !installed {
        return Ok(None);
    }
    std::fs::write(&marker, "").map_err(|e| e.to_string())?;
    Ok(Some(venv))
}

/// Measures `contenders` `runs` times each, interleaved, and appends a table to `report`.
fn table(
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

#[cfg(test)]
mod tests {
    #[test]
    fn load_only_with_check_is_refused_before_any_build() {
        let error = super::run(&["--load-only".into(), "--check".into()]).unwrap_err();
        assert!(error.contains("--check"), "{error}");
    }
}
