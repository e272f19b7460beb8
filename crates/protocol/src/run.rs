//! From Nomad's argv to one JSON value on stdout: the plugin's `main`.
//!
//! A fetch runs the backend on a worker thread while the main thread waits for the first of:
//! the worker's answer, the deadline, or SIGTERM/SIGINT. Whichever comes first is printed and the
//! process exits at once, even if the worker is stuck in a system call. A panic on any thread is
//! turned into a protocol error by the panic hook, never a backtrace.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::audit;
use crate::cache::{Cache, Key, KeyParts, Served};
use crate::identity;
use crate::output::{self, Mode};
use crate::policy;
use crate::settings::{self, AUDIT_LOG, AUDIT_REQUIRED, CACHE_TTL, DEADLINE};
use crate::{Backend, Error, ErrorKind, JobInput, Request, SecretPath, Settings};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Fingerprint,
    Fetch(String),
    Help,
    /// `--help --markdown`: the README's settings tables, for `cargo xtask readme`.
    SettingsTables,
    /// `--help --job-input`: what a job's env may pass, as JSON, for the adversarial suite.
    JobInputJson,
    /// `check [--namespace N] [--job J] [--path P]`, for people.
    Check(CheckArgs),
}

/// What `check` was asked about.
#[derive(Debug, Default, PartialEq, Eq)]
struct CheckArgs {
    namespace: String,
    job: String,
    path: Option<String>,
}

/// What ended the wait for the backend.
enum Outcome {
    Done(Result<crate::Secrets, Error>),
    Signal(i32),
}

/// Set once a fetch is under way, so that the panic hook can say which path it was fetching.
static FETCHING: OnceLock<String> = OnceLock::new();
/// When the run started, for the deadline and the audit line's duration.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Runs plugin `B` as Nomad (or a person) invoked it, and exits.
pub fn main<B: Backend>() -> ! {
    one_malloc_arena();
    let operation = std::env::var_os("CPI_OPERATION");
    let mode = if operation.is_some() {
        output::silence_stderr();
        Mode::Nomad
    } else {
        Mode::Manual
    };
    install_panic_hook(mode, B::NAME);
    let args: Vec<OsString> = std::env::args_os().collect();
    match parse_command(&args, operation.as_deref(), B::NAME) {
        Ok(Command::Fingerprint) => output::fingerprint(),
        Ok(Command::Help) if mode == Mode::Manual => output::help(&usage::<B>()),
        Ok(Command::SettingsTables) if mode == Mode::Manual => output::help(&format!(
            "{}\n{}\n{}",
            settings::markdown("common", &settings::COMMON.iter().collect::<Vec<_>>()),
            settings::markdown(B::NAME, &B::SETTINGS.iter().collect::<Vec<_>>()),
            crate::job_input::markdown(
                B::NAME,
                B::JOB_INPUT,
                &settings::COMMON
                    .iter()
                    .chain(B::SETTINGS)
                    .collect::<Vec<_>>()
            )
        )),
        Ok(Command::JobInputJson) if mode == Mode::Manual => output::help(
            &crate::job_input::json(
                B::JOB_INPUT,
                &settings::COMMON
                    .iter()
                    .chain(B::SETTINGS)
                    .collect::<Vec<_>>(),
            )
            .to_string(),
        ),
        Ok(Command::Check(_)) if mode == Mode::Nomad => {
            let error = Error::new(ErrorKind::Usage, "`check` is for people, not Nomad");
            output::error(mode, B::NAME, &error.to_string(), true)
        }
        Ok(Command::Check(check_args)) => {
            let (report, ok) = check::<B>(&check_args, &executable_path(&args));
            output::report(&report, ok)
        }
        Ok(Command::Help | Command::SettingsTables | Command::JobInputJson) => {
            let error = Error::new(ErrorKind::Usage, "`--help` is for people, not Nomad");
            output::error(mode, B::NAME, &error.to_string(), true)
        }
        Ok(Command::Fetch(raw)) => {
            let executable = executable_path(&args);
            let started = *STARTED.get_or_init(Instant::now);
            let outcome = fetch::<B>(&raw, &executable, mode, started);
            let message = match audit::finish(outcome, started) {
                Ok(secrets) => output::result(&secrets),
                Err(error) => format!("fetch `{}`: {error}", shown_path(&raw)),
            };
            output::error(mode, B::NAME, &message, false)
        }
        Err(error) => output::error(mode, B::NAME, &error.to_string(), true),
    }
}

/// Keeps every thread on glibc's main malloc arena. A fetch runs on its own thread (so the
/// deadline can abandon it), and a thread's first allocation otherwise makes a new arena: a
/// 64 MiB reservation, trimmed and protected, under the address-space lock the main thread's
/// page faults take too. That was about a quarter of a `file` fetch's time (1.36 ms against
/// 0.97 ms wall on the bench's fetch, 2026-12-03), and a run allocates too little for arenas
/// to pay off.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: no other thread runs yet; mallopt only sets a malloc parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn parse_check(args: &[OsString]) -> Result<CheckArgs, String> {
    let mut check = CheckArgs::default();
    let mut rest = args
        .iter()
        .map(|a| a.to_str().ok_or("arguments must be UTF-8"));
    while let Some(flag) = rest.next() {
        let flag = flag?;
        let value = rest
            .next()
            .ok_or(format!("`{flag}` needs a value"))??
            .to_owned();
        match flag {
            "--namespace" => check.namespace = value,
            "--job" => check.job = policy::job_identity(&value).to_owned(),
            "--path" => check.path = Some(value),
            other => return Err(format!("unknown `check` flag `{other}`")),
        }
    }
    Ok(check)
}

fn parse_command(
    args: &[OsString],
    operation: Option<&OsStr>,
    plugin: &str,
) -> Result<Command, Error> {
    let usage = |message: &str| {
        Error::new(ErrorKind::Usage, message).hint(format!(
            "run `{plugin} fingerprint`, `{plugin} fetch <path>` or `{plugin} --help`"
        ))
    };
    let Some(verb) = args.get(1) else {
        return Err(usage("no command given"));
    };
    let command = match verb.to_str() {
        Some("fingerprint") if args.len() == 2 => Command::Fingerprint,
        Some("fingerprint") => return Err(usage("`fingerprint` takes no arguments")),
        Some("fetch") if args.len() == 3 => match args[2].to_str() {
            Some(path) => Command::Fetch(path.to_owned()),
            None => return Err(usage("the secret path is not UTF-8")),
        },
        Some("fetch") => return Err(usage("`fetch` takes exactly one argument, the secret path")),
        Some("--help") if args.get(2).is_some_and(|a| a == "--markdown") => Command::SettingsTables,
        Some("--help") if args.get(2).is_some_and(|a| a == "--job-input") => Command::JobInputJson,
        Some("-h" | "--help" | "help") => Command::Help,
        Some("check") => Command::Check(parse_check(&args[2..]).map_err(|e| usage(&e))?),
        Some(other) => return Err(usage(&format!("unknown command `{other}`"))),
        None => return Err(usage("the command is not UTF-8")),
    };
    let verb = verb.to_str().unwrap_or_default();
    match operation {
        Some(operation)
            if operation != verb
                && !matches!(
                    command,
                    Command::Help | Command::SettingsTables | Command::JobInputJson
                ) =>
        {
            Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "`CPI_OPERATION` is `{}` but the command is `{verb}`",
                    operation.to_string_lossy()
                ),
            ))
        }
        _ => Ok(command),
    }
}

/// The plugin's own path, which locates its settings file. Nomad passes the absolute path as
/// `argv[0]`; by hand, a bare name found through `PATH` falls back to `/proc/self/exe`.
fn executable_path(args: &[OsString]) -> PathBuf {
    match args.first() {
        Some(arg0) if arg0.as_encoded_bytes().contains(&b'/') => PathBuf::from(arg0),
        _ => std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
    }
}

/// Loads the settings, parses the path and runs the backend within the deadline.
fn fetch<B: Backend>(
    raw: &str,
    executable: &std::path::Path,
    mode: Mode,
    started: Instant,
) -> Result<crate::Secrets, Error> {
    let _ = FETCHING.set(raw.to_owned());
    // Blocked before any thread exists, so every thread inherits the mask and only our waiter
    // receives these signals.
    let signals = signals::block();
    let env: HashMap<OsString, OsString> = std::env::vars_os()
        .filter(|(name, _)| name != "CPI_OPERATION")
        .collect();
    let file = Settings::file_for(executable);
    let settings = match mode {
        Mode::Nomad => Settings::load(&file, B::SETTINGS, &env)?,
        Mode::Manual => Settings::load_by_hand(&file, B::SETTINGS, &env)?,
    };
    let input = match mode {
        Mode::Nomad => {
            let all: Vec<&crate::Setting> = settings::COMMON.iter().chain(B::SETTINGS).collect();
            let passed = B::passed_through(&settings)?;
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            JobInput::check(B::NAME, &name, B::JOB_INPUT, &all, &passed, &env)?
        }
        Mode::Manual => JobInput::by_hand(&env),
    };
    let limit = settings
        .get(&DEADLINE)
        .expect("`deadline` is a common setting with a default");
    let caller_value = |name: &str| {
        env.get(&OsString::from(name))
            .and_then(|v| v.to_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (namespace, instance) = (
        caller_value("NOMAD_NAMESPACE"),
        caller_value("NOMAD_JOB_ID"),
    );
    let job = policy::job_identity(&instance).to_owned();
    if let Some(log) = settings.get(&AUDIT_LOG) {
        if let Ok(mut current) = audit::CURRENT.lock() {
            *current = Some(audit::Audit {
                log: log.to_owned(),
                required: settings.get(&AUDIT_REQUIRED).unwrap_or(true),
                plugin: B::NAME,
                namespace: namespace.clone(),
                job: job.clone(),
                instance: instance.clone(),
                path: raw.to_owned(),
                read: None,
                decision: "unchecked",
                cache: None,
                identity: None,
            });
        }
    }
    let path = SecretPath::parse(raw, B::OPTIONS)?;
    let normalised = B::normalise(path.locator(), &settings)?;
    audit::read(&normalised);
    let key = path.key().map(str::to_owned);
    let request = Request {
        path,
        settings,
        env,
        input,
        deadline: started + limit,
        manual: mode == Mode::Manual,
        namespace,
        job,
        instance,
        identity: None,
    };
    let started_ms = std::time::SystemTime::now()
        .checked_sub(started.elapsed())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());

    // From here on everything may wait on the network (the identity key set, the store), so
    // it runs on a thread the deadline and SIGTERM can leave behind.
    let (sender, receiver) = mpsc::channel();
    signals::forward(signals, sender.clone(), Outcome::Signal);
    std::thread::Builder::new()
        .name("fetch".into())
        .spawn(move || {
            let outcome = verified_then_allowed::<B>(request, &normalised)
                .and_then(|request| through_cache::<B>(request, &normalised, started_ms));
            let _ = sender.send(Outcome::Done(outcome));
        })
        .map_err(|e| Error::unavailable(format!("cannot start the fetch thread: {e}")))?;

    let remaining = (started + limit).saturating_duration_since(Instant::now());
    let secrets = match receiver.recv_timeout(remaining) {
        Ok(Outcome::Done(result)) => result?,
        Ok(Outcome::Signal(signal)) => return Err(stopped_by(signal)),
        Err(_) => return Err(timed_out(limit, executable)),
    };
    let secrets = match key {
        Some(key) => secrets.select(&key)?,
        None => secrets,
    };
    if secrets.is_empty() {
        return Err(Error::not_found("the secret holds no keys")
            .hint("an empty secret cannot be interpolated; add a value to it"));
    }
    Ok(secrets)
}

/// The request once the job's workload identity (if any) is verified and the access policy
/// lets it read `normalised`; denials are audited.
fn verified_then_allowed<B: Backend>(
    mut request: Request,
    normalised: &str,
) -> Result<Request, Error> {
    let verified = identity::verify(
        &request.settings,
        request.input.identity_token(),
        &request.namespace,
        &request.instance,
        request.deadline,
    );
    request.identity = match verified {
        Ok(identity) => identity,
        Err(denied) => {
            audit::decided("denied");
            return Err(denied);
        }
    };
    match &request.identity {
        // The token says who the job is: its ID (a dispatched or periodic run's immediate
        // parent) is the job identity, never one guessed from the shape of `NOMAD_JOB_ID`.
        Some(identity) => {
            request.job = identity.job.clone();
            audit::verified(identity);
        }
        None if B::exchanges_identity(&request.settings)
            && identity::configured(&request.settings)
            && request.input.credential().is_none()
            && !request.manual =>
        {
            audit::decided("denied");
            return Err(Error::denied(format!(
                "the operator gives each job its own credentials for the store (from its \
                 workload identity), and this run passed no `{}`: the node's credentials are \
                 never used in its place",
                identity::VARIABLE
            ))
            .hint(format!(
                "give the task an identity with `env = true` and pass it in the secret's env \
                 block: {} = \"${{NOMAD_TOKEN_<identity name>}}\"",
                identity::VARIABLE
            )));
        }
        None => {}
    }
    if let Err(denied) = request.check_policy(normalised) {
        audit::decided("denied");
        return Err(denied);
    }
    audit::decided("allowed");
    Ok(request)
}

/// The answer from the node cache, or from the store through it.
fn through_cache<B: Backend>(
    request: Request,
    normalised: &str,
    started_ms: u128,
) -> Result<crate::Secrets, Error> {
    let store = match Cache::open(&request.settings) {
        Cache::On(store) => store,
        Cache::Unavailable(why) => {
            audit::cached(serde_json::json!({"source": "store", "cache": why}));
            return from_store::<B>(&request);
        }
        Cache::Off => return from_store::<B>(&request),
    };
    // A token differs for every allocation and renewal; what it proved is what an answer
    // depends on, so the key holds that rather than the token.
    let mut env = request.env.clone();
    if let Some(token) = env.remove(&OsString::from(identity::VARIABLE)) {
        let proved = match &request.identity {
            Some(id) => format!(
                "verified\0{}\0{}\0{}\0{}",
                id.namespace,
                id.job,
                id.group.as_deref().unwrap_or_default(),
                id.task.as_deref().unwrap_or_default()
            ),
            None => format!("unverified\0{}", token.to_string_lossy()),
        };
        env.insert(identity::VARIABLE.into(), proved.into());
    }
    let key = Key::new(&KeyParts {
        plugin: B::NAME,
        settings: &request.settings,
        namespace: &request.namespace,
        job: &request.job,
        normalised,
        options: B::OPTIONS
            .iter()
            .filter_map(|name| request.path.option(name).map(|value| (*name, value)))
            .collect(),
        env: &env,
    });
    let deadline = request.deadline;
    let request = std::sync::Arc::new(request);
    let (outcome, served) = store.through(&key, started_ms, deadline, move || {
        from_store::<B>(&request)
    });
    audit::cached(served_fields(served));
    outcome
}

/// Builds the backend and asks the store: what runs when the cache cannot answer.
fn from_store<B: Backend>(request: &Request) -> Result<crate::Secrets, Error> {
    B::new(&request.settings)?.fetch(request)
}

/// The audit line's account of where the answer came from.
fn served_fields(served: Served) -> serde_json::Value {
    let ms = |age: Duration| age.as_millis() as u64;
    match served {
        Served::Store => serde_json::json!({"source": "store"}),
        Served::Cache { age } => serde_json::json!({"source": "cache", "cache_age_ms": ms(age)}),
        Served::Stale { age } => {
            serde_json::json!({"source": "stale-cache", "cache_age_ms": ms(age)})
        }
        Served::SharedFailure => serde_json::json!({"source": "shared-failure"}),
        Served::Refresh { age, answered } => serde_json::json!({
            "source": if answered { "store" } else { "cache" },
            "cache": if answered { "refresh" } else { "refresh failed" },
            "cache_age_ms": ms(age),
        }),
    }
}

/// `check`: the settings, what the caller may read, and the backend, as Nomad would run it.
fn check<B: Backend>(args: &CheckArgs, executable: &std::path::Path) -> (String, bool) {
    // As under Nomad: an operator's shell variables (AWS keys, say) must not make a broken
    // node look healthy. No other thread exists yet.
    for (name, _) in std::env::vars_os() {
        // SAFETY: single-threaded at this point; nothing else reads the environment.
        unsafe { std::env::remove_var(name) };
    }
    let file = Settings::file_for(executable);
    let mut ok = true;
    let mut report = format!("{} {} check\n", B::NAME, env!("CARGO_PKG_VERSION"));
    let settings = match Settings::load(&file, B::SETTINGS, &HashMap::new()) {
        Ok(settings) => {
            let state = if file.exists() {
                "ok"
            } else {
                "not found, defaults apply"
            };
            report.push_str(&format!("settings  `{}`: {state}\n", file.display()));
            settings
        }
        Err(error) => {
            report.push_str(&format!("settings  FAILED: {error}\n"));
            return (report, false);
        }
    };
    let caller = policy::Caller {
        namespace: &args.namespace,
        job: &args.job,
        group: None,
        task: None,
    };
    if !settings.policy().exists() {
        report.push_str("policy    none: every job may read every path the backend can\n");
    } else if args.namespace.is_empty() && args.job.is_empty() {
        report.push_str(
            "policy    has rules; pass --namespace and --job to see what a job may read\n",
        );
    } else {
        let patterns = settings.policy().patterns_for(caller);
        let list = match patterns.is_empty() {
            true => "nothing".to_owned(),
            false => patterns
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        report.push_str(&format!(
            "policy    namespace `{}`, job `{}` may read: {list}\n",
            args.namespace, args.job
        ));
    }
    if let Some(raw) = &args.path {
        let verdict = SecretPath::parse(raw, B::OPTIONS)
            .and_then(|path| B::normalise(path.locator(), &settings))
            .and_then(|normalised| {
                policy::check(&settings, caller, &normalised).map(|()| normalised)
            });
        match verdict {
            Ok(normalised) => report.push_str(&format!(
                "path      `{raw}`: allowed (reads `{normalised}`)\n"
            )),
            Err(error) => {
                ok = false;
                report.push_str(&format!("path      `{raw}`: DENIED: {error}\n"));
            }
        }
    }
    let limit = settings.get(&DEADLINE).unwrap_or(Duration::from_secs(8));
    if settings.get(&CACHE_TTL).is_some() {
        // A configured cache that cannot be used is a failed check: fetches would work, but
        // not as the operator configured them.
        let cache = Cache::open(&settings);
        ok &= !matches!(cache, Cache::Unavailable(_));
        report.push_str(&format!("cache     {}\n", cache.describe()));
    }
    match identity::describe(&settings, Instant::now() + limit) {
        Ok(Some(line)) => report.push_str(&format!("identity  {line}\n")),
        Ok(None) => {}
        Err(error) => {
            ok = false;
            report.push_str(&format!("identity  FAILED: {error}\n"));
        }
    }
    match B::new(&settings).and_then(|backend| backend.check(&settings, Instant::now() + limit)) {
        Ok(line) => report.push_str(&format!("backend   {line}\n")),
        Err(error) => {
            ok = false;
            report.push_str(&format!("backend   FAILED: {error}\n"));
        }
    }
    (report, ok)
}

fn timed_out(limit: Duration, executable: &std::path::Path) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "timed out: the backend did not answer within the {} deadline",
            human(limit)
        ),
    )
    .hint(format!(
        "check that the backend is reachable from this node; the operator sets `deadline` in `{}` \
         (Nomad 1.11 stops a fetch at 10s, Nomad 2.x at 60s)",
        Settings::file_for(executable).display()
    ))
}

fn stopped_by(signal: i32) -> Error {
    let name = match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "a signal",
    };
    Error::new(
        ErrorKind::Timeout,
        format!("stopped by {name} before the backend answered"),
    )
    .hint("Nomad sends SIGTERM when its fetch timeout passes; keep `deadline` below it so the plugin reports the cause itself")
}

fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The path as shown in messages: the job's text, cut short if it is long.
fn shown_path(raw: &str) -> String {
    const LIMIT: usize = 200;
    match raw.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &raw[..cut]),
        None => raw.to_owned(),
    }
}

/// Replaces Rust's panic output (a message and maybe a backtrace on stderr) with one protocol
/// error. The panic's own message is left out: it might quote a value.
fn install_panic_hook(mode: Mode, plugin: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let doing = match FETCHING.get() {
            Some(raw) => format!("fetch `{}`: ", shown_path(raw)),
            None => String::new(),
        };
        let message = format!(
            "{doing}internal error: the plugin panicked{place} (hint: this is a bug in the \
             `{plugin}` plugin; please report it with this message)"
        );
        if let Some(started) = STARTED.get() {
            audit::panicked(*started);
        }
        output::error(mode, plugin, &message, false)
    }));
}

fn usage<B: Backend>() -> String {
    let mut text = format!(
        "{name} {version}: a Nomad secret-provider plugin\n\n\
         Usage:\n  {name} fingerprint      what Nomad runs at client start\n  \
         {name} fetch <path>     what Nomad runs for `secret {{ provider = \"{name}\" path = \"<path>\" }}`\n  \
         {name} check [--namespace N] [--job J] [--path P]\n                         for operators: settings, policy and backend, as Nomad would run it\n\n\
         By hand (no CPI_OPERATION):\n  \
         your environment is trusted and follows the backend's own CLI (its variables,\n  \
         its files under your home), with the settings file as defaults.\n  \
         To reproduce exactly what Nomad runs for a job, give it Nomad's environment:\n  \
         env -i CPI_OPERATION=fetch NOMAD_NAMESPACE=<ns> NOMAD_JOB_ID=<job> <job env...> {name} fetch <path>\n\n\
         Path: <locator>[?option=value&...][#key]\n",
        name = B::NAME,
        version = env!("CARGO_PKG_VERSION"),
    );
    let options = if B::OPTIONS.is_empty() {
        "(none)".to_owned()
    } else {
        B::OPTIONS.join(", ")
    };
    text.push_str(&format!(
        "Options: {options}\n\nSettings (in `<this executable>.toml`):\n"
    ));
    for setting in crate::settings::COMMON.iter().chain(B::SETTINGS) {
        let job = match setting.job_env {
            Some(var) => format!("; a job may set `{var}` if listed in job_may_set"),
            None => "; operator only".to_owned(),
        };
        text.push_str(&format!("  {:<10} {}{job}\n", setting.name, setting.doc));
    }
    text
}

/// SIGTERM and SIGINT, delivered to one waiting thread instead of killing the process.
mod signals {
    use std::sync::mpsc::Sender;

    /// The blocked signal set.
    pub(super) struct Blocked(libc::sigset_t);

    /// Blocks SIGTERM and SIGINT in the calling thread (and the threads it starts later).
    pub(super) fn block() -> Blocked {
        // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask only reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Blocked(set)
        }
    }

    /// Starts a thread that sends `wrap(signal)` on `sender` when one of the signals arrives.
    pub(super) fn forward<T: Send + 'static>(
        blocked: Blocked,
        sender: Sender<T>,
        wrap: fn(i32) -> T,
    ) {
        let set = blocked.0;
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut signal = 0;
                // SAFETY: `set` is a valid, initialised signal set; `signal` is a valid out-pointer.
                if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                    let _ = sender.send(wrap(signal));
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn commands() {
        let fingerprint = parse_command(
            &args(&["p", "fingerprint"]),
            Some("fingerprint".as_ref()),
            "p",
        );
        assert_eq!(fingerprint, Ok(Command::Fingerprint));
        let fetch = parse_command(&args(&["p", "fetch", "a b#c"]), Some("fetch".as_ref()), "p");
        assert_eq!(fetch, Ok(Command::Fetch("a b#c".into())));
        let by_hand = parse_command(&args(&["p", "fetch", "x"]), None, "p");
        assert_eq!(by_hand, Ok(Command::Fetch("x".into())));
    }

    #[test]
    fn command_errors() {
        let cases: [(&[&str], Option<&str>, &str); 5] = [
            (&["p"], None, "no command given"),
            (
                &["p", "fetch"],
                None,
                "`fetch` takes exactly one argument, the secret path",
            ),
            (
                &["p", "fetch", "a", "b"],
                Some("fetch"),
                "`fetch` takes exactly one argument, the secret path",
            ),
            (&["p", "list"], None, "unknown command `list`"),
            (
                &["p", "fingerprint", "x"],
                None,
                "`fingerprint` takes no arguments",
            ),
        ];
        for (argv, operation, expected) in cases {
            let error = parse_command(&args(argv), operation.map(OsStr::new), "p").unwrap_err();
            assert_eq!(error.message(), expected);
        }
        let mismatch = parse_command(
            &args(&["p", "fetch", "a"]),
            Some("fingerprint".as_ref()),
            "p",
        );
        assert_eq!(
            mismatch.unwrap_err().message(),
            "`CPI_OPERATION` is `fingerprint` but the command is `fetch`"
        );
    }

    #[test]
    fn long_paths_are_cut_in_messages() {
        let long = "é".repeat(300);
        assert_eq!(shown_path(&long), format!("{}...", "é".repeat(200)));
        assert_eq!(shown_path("short"), "short");
    }
}
