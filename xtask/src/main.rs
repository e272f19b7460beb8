//! Project automation, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! - `install --plugin-dir DIR`: release build, then each plugin into `DIR/secrets/<name>`,
//!   atomically, checking the folder for entries that would stop a Nomad client.
//! - `dist`: release artifacts under `target/dist/`.
//! - `demo`: build, install into a scratch plugin folder with the example secrets, and run
//!   fingerprint and fetches exactly as Nomad would, printing what Nomad would see.
//! - `test`: everything CI checks: build, clippy with warnings denied, rustfmt, all tests.
//! - `bench`: fingerprint and fetch cost against the programs users would otherwise run.
//! - `moto`: installs the AWS emulator the aws plugin's tests run against.
//! - `tidy`: what each plugin must have besides code (cases, settings, docs, fuzz targets).
//! - `fleet`: a cluster's mass start against a throttling store (see `fleet.rs`).
//! - `leak`, `faults`, `fuzz`, `load`: the hostile-input suites, each on its own, summarised
//!   in `target/suites/` (README, "Hostile input, faults and load").
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

mod bench;
mod demo;
mod dist;
#[cfg(feature = "servers")]
mod fleet;
mod fuzz;
mod install;
mod moto;
mod order;
mod plugins;
mod suites;
mod test;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Every task and flag, printed for an unknown or missing task.
const USAGE: &str = "usage: cargo xtask <task>

  demo                             build `file`, run fingerprint and fetches as Nomad would
  test                             everything CI checks (.ci/run): builds, clippy, rustfmt, all suites
  install --plugin-dir DIR [--provider NAME]...
                                   release build, each plugin into DIR/secrets/ (NAME: a `command`
                                   provider from examples/settings/command-NAME.toml)
  dist                             release archives under target/dist/
  bench [--runs N] [--fingerprint-only | --load-only] [--check]
                                   cost per run beside curl, vendor CLIs, echo (--check: the
                                   fingerprint memory gate)
  load                             the burst of fetches at once per plugin (bench --load-only)
  fleet [--nodes N] [--allocs M] [--secrets K] [--rate R] [--store openbao|aws-ssm]
                                   a cluster's mass start against a throttling store
  leak | faults                    the hostile-input suites, each on its own
  fuzz [--seconds N] [--target NAME]... [--save]
                                   every fuzz target (or those named) for N seconds each
  moto                             install the AWS emulator the aws tests run against
  tidy                             what each plugin must have besides code (docs/adding-a-backend.md)
  readme                           regenerate the settings tables of the docs
  order                            refresh xtask/fingerprint.order (needs valgrind)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !cfg!(feature = "servers") && !matches!(args.first().map(String::as_str), Some("demo")) {
        return with_servers(&args);
    }
    let result = match args.first().map(String::as_str) {
        Some("install") => install::run(&args[1..]),
        Some("dist") => dist::run(),
        Some("demo") => demo::run(),
        Some("test") => test::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("moto") => moto::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("leak") => suites::leak(),
        Some("faults") => suites::faults(),
        Some("load") => bench::run(&["--load-only".into()]),
        #[cfg(feature = "servers")]
        Some("fleet") => fleet::run(&args[1..]),
        Some("tidy") => tidy::run(),
        Some("readme") => tidy::write_readme(),
        Some("order") => order::run(),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs this task again in an xtask built with the test servers (`--features servers`). The
/// plain build holds only what `demo` needs, so that a fresh clone's first command does not
/// compile the test servers' dependencies (TLS, key generation, JWTs): seconds, not minutes.
fn with_servers(args: &[String]) -> ExitCode {
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--features",
            "servers",
            "--",
        ])
        .args(args)
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The result of a task; the error is printed once by `main`.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `cargo` as the running cargo names it.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command`, failing with its description if it fails.
pub fn run(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

/// Builds the plugins in release mode; returns (installed name, binary path) pairs.
///
/// Plugins are linked statically (`+crt-static`): a dynamically linked Rust binary costs about
/// 2.0 MB of peak RSS before `main` runs (the loader, libgcc_s, relocations), 1.5x a C program
/// that prints one line; a static one costs less than that program. They stay position
/// independent (ASLR) with packed relative relocations (DT_RELR): the aws plugin's 22,178
/// relocations took 532 KB as RELA, read at every start, and take 5 KB as RELR. The explicit
/// `--target` keeps the flags away from build scripts and proc-macros, which cannot be static.
pub fn build_release() -> Result<Vec<(String, PathBuf)>> {
    let (mut command, binaries) = release_build()?;
    run(&mut command)?;
    Ok(binaries)
}

/// Builds the one plugin installed as `name` as [`build_release`] builds it, and nothing
/// else: what the demo needs on a fresh clone.
pub fn build_release_of(name: &str) -> Result<(String, PathBuf)> {
    let host = host_triple()?;
    let plugin = plugins::all()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("no plugin is installed as `{name}`"))?;
    let mut command = release_cargo("build", &host)?;
    command.args(["--package", &plugin.package]);
    run(&mut command)?;
    let binary = release_binary(&host, &plugin.name);
    Ok((plugin.name, binary))
}

/// The command [`build_release`] runs, and the (installed name, binary path) pairs it makes.
pub fn release_build() -> Result<(Command, Vec<(String, PathBuf)>)> {
    let host = host_triple()?;
    let mut command = release_cargo("build", &host)?;
    let plugins = plugins::all()?;
    for plugin in &plugins {
        command.args(["--package", &plugin.package]);
    }
    let binaries = plugins
        .into_iter()
        .map(|plugin| {
            let binary = release_binary(&host, &plugin.name);
            (plugin.name, binary)
        })
        .collect();
    Ok((command, binaries))
}

/// The command that links `plugin`'s release binary alone with `extra` rustc arguments (its
/// dependencies as [`release_build`] built them), and the binary's path.
pub fn release_link(plugin: &plugins::Plugin, extra: &[&str]) -> Result<(Command, PathBuf)> {
    let host = host_triple()?;
    let mut command = release_cargo("rustc", &host)?;
    command
        .args(["--package", &plugin.package, "--bin", &plugin.name, "--"])
        .args(extra);
    Ok((command, release_binary(&host, &plugin.name)))
}

fn release_binary(host: &str, name: &str) -> PathBuf {
    moto::target_dir().join(host).join("release").join(name)
}

/// `cargo <verb> --release` for `host`, static, with packed relocations and the fingerprint's
/// link order (see `order.rs`). The list is passed as a copy named by its content, so that a
/// new list changes the flags and relinks.
fn release_cargo(verb: &str, host: &str) -> Result<Command> {
    let mut command = cargo();
    command.args([verb, "--release", "--locked", "--target", host]);
    // Built by rustc alone, even when `cargo xtask test` lints its other builds.
    for variable in test::LINT_VARIABLES {
        command.env_remove(variable);
    }
    let order = std::fs::read(order::file()).unwrap_or_default();
    let copy = moto::target_dir().join(format!("fingerprint-{:016x}.order", fnv1a(&order)));
    std::fs::create_dir_all(moto::target_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&copy, &order).map_err(|e| format!("{}: {e}", copy.display()))?;
    for_target_only(
        &mut command,
        host,
        &format!(
            "-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs \
             -C link-arg=-Wl,--symbol-ordering-file={} -C link-arg=-Wl,--no-warn-symbol-ordering",
            copy.display()
        ),
    );
    Ok(command)
}

/// FNV-1a, 64 bits: a content name for the order list, not a security hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Sets `flags` for the code built for `host` with an explicit `--target`: build scripts and
/// proc-macros, built for the host without it, do not get them.
pub fn for_target_only(command: &mut Command, host: &str, flags: &str) {
    let variable = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        host.to_uppercase().replace('-', "_")
    );
    command.env(variable, flags);
}

/// The host's target triple, as rustc reports it.
pub fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV did not say the host".into())
}
