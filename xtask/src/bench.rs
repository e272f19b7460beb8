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
//!
//! Where each piece lives:
//! - here: the task itself (`run`: flags, the fingerprint and `file` tables in order, then each
//!   backend's scenario, the load table), `file`'s identity contenders, and what several
//!   scenarios share (`bench_venv`, `aws_cli`, `forget_cached_pages`);
//! - `measure`: a contender's wall time and peak RSS (`Contender`, `Row`, `table`);
//! - `burst`: the load suite's burst of `BURST` fetches at once, and `unburst`;
//! - `gate`: the fingerprint memory gate behind `--check`;
//! - one scenario per backend, its table and its burst: `aws` (which runs `aws_ssm` against the
//!   same moto server), `vault`, `gcp`, `azure`, and `command` (a table only). All but `aws`
//!   and `aws_ssm` start test servers and are built only with the `servers` feature; the plain
//!   build has stand-ins that fail (`without_servers`, below).

use std::path::PathBuf;
use std::process::Command;

use crate::moto::target_dir;
use crate::{Result, root};

mod aws;
mod aws_ssm;
#[cfg(feature = "servers")]
mod azure;
mod burst;
#[cfg(feature = "servers")]
mod command;
mod gate;
#[cfg(feature = "servers")]
mod gcp;
mod measure;
#[cfg(feature = "servers")]
mod vault;

use aws::aws_table;
#[cfg(feature = "servers")]
use azure::azure_table;
use burst::{BURST, audited_burst, unburst};
#[cfg(feature = "servers")]
use command::command_table;
#[cfg(feature = "servers")]
use gcp::gcp_table;
use measure::{Contender, Row, table};
#[cfg(feature = "servers")]
use vault::vault_table;

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
        audited_burst(
            &mut loads,
            "file",
            &secrets,
            "file",
            &format!("root = \"{}\"\n", examples.display()),
            &["db.json", "app.env", "tls", "db.json#password"],
            &[],
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
        azure_table(
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
        gate::fingerprint_rss(&fingerprint_rows, &built)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn load_only_with_check_is_refused_before_any_build() {
        let error = super::run(&["--load-only".into(), "--check".into()]).unwrap_err();
        assert!(error.contains("--check"), "{error}");
    }
}
