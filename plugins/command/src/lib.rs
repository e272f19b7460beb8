//! The `command` backend: secrets from any command-line tool the operator configures.
//!
//! The operator makes a provider of this plugin under any name by placing a copy (or hard link)
//! of the executable as `secrets/<name>` beside `secrets/<name>.toml`, whose `command` is the
//! argv to run, `{path}` standing for the job's path inside one argument:
//!
//! ```toml
//! command = ["/usr/local/bin/sops", "decrypt", "--output-type", "json", "--", "/srv/secrets/{path}"]
//! path_pattern = "[a-z0-9-]+\\.json"
//! output = "json"
//! ```
//!
//! Never a shell. The job can change nothing but the path (which must match `path_pattern`
//! whole and may not start with `-`) and the variables the operator lists in `job_env`. The
//! CLI runs with an environment of the operator's making, stdin from /dev/null, in its own
//! process group, killed with all its descendants at the deadline, on SIGTERM, and when it
//! exits; its stderr is never shown unless the operator allows its first line. See [`child`]
//! for the run, [`environment`] for what the CLI gets, [`answer`] for its output.
#![deny(missing_docs)]

pub mod answer;
pub mod child;
pub mod environment;

use std::path::Path;
use std::time::Instant;

use nomad_secrets_protocol::{Backend, Error, Key, Request, Secrets, Setting, Settings};

/// The CLI's argv.
pub const COMMAND: Key<[String]> = Key::list(
    "command",
    "argv of the CLI; `{path}`, `{namespace}`, `{job}` inside an argument are replaced",
)
.unset("(required)");
/// What a path must match.
pub const PATH_PATTERN: Key<str> = Key::text(
    "path_pattern",
    "regular expression the whole path must match before anything runs",
)
.unset("(required)");
/// How the CLI's output reads.
pub const OUTPUT: Key<str> = Key::text(
    "output",
    "what the CLI prints: `json` (an object's fields), `env` (dotenv) or `text` (one key)",
)
.unset("`json`");
/// The operator's variables for the CLI.
pub const ENV: Key<[String]> = Key::list(
    "env",
    "`NAME=value` variables the CLI gets from the operator",
);
/// Variables whose values are files' contents.
pub const ENV_FILES: Key<[String]> = Key::list(
    "env_files",
    "`NAME=/absolute/file`: the variable's value is the file's content (a token, say)",
);
/// What a job may pass.
pub const JOB_ENV: Key<[String]> = Key::list(
    "job_env",
    "names of variables a job's env {} may pass to the CLI (its own token, say)",
)
.unset("none");
/// Where the CLI runs.
pub const WORKING_DIR: Key<Path> =
    Key::path("working_dir", "where the CLI runs (default `/`)").unset("`/`");
/// The largest output.
pub const MAX_OUTPUT: Key<u64> =
    Key::size("max_output", "largest output accepted from the CLI").default("1MiB");
/// Whether errors quote the CLI's stderr.
pub const STDERR_FIRST_LINE: Key<bool> = Key::flag(
    "stderr_first_line",
    "show the first line of the CLI's stderr in errors (only if it never holds a secret)",
)
.default("false");
/// The status command `check` runs.
pub const CHECK_COMMAND: Key<[String]> = Key::list(
    "check_command",
    "argv of the CLI's harmless status command, run by `check` (like `op whoami`)",
);

/// The `command` plugin.
pub struct CommandBackend;

impl Backend for CommandBackend {
    const NAME: &'static str = "command";
    const SETTINGS: &'static [Setting] = &[
        COMMAND.setting,
        PATH_PATTERN.setting,
        OUTPUT.setting,
        ENV.setting,
        ENV_FILES.setting,
        JOB_ENV.setting,
        WORKING_DIR.setting,
        MAX_OUTPUT.setting,
        STDERR_FIRST_LINE.setting,
        CHECK_COMMAND.setting,
    ];
    const OPTIONS: &'static [&'static str] = &[];

    /// The operator's `job_env`: names a job may hand to the CLI (checked to be safe by
    /// [`environment::build`]).
    fn passed_through(settings: &Settings) -> Result<Vec<String>, Error> {
        Ok(settings.get(&JOB_ENV).to_vec())
    }

    /// Everything it needs is read from the request's settings when it runs.
    fn new(_settings: &Settings) -> Result<CommandBackend, Error> {
        Ok(CommandBackend)
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let settings = &request.settings;
        let path = request.path.locator();
        check_path(path, settings)?;
        let format = answer::Format::from_settings(settings)?;
        let env = environment::build(settings, &request.env, request.manual)?;
        let argv = argv(
            settings,
            &COMMAND,
            &[
                ("{path}", path),
                ("{namespace}", &request.namespace),
                ("{job}", &request.job),
            ],
        )?;
        let run = child::Run {
            argv: &argv,
            env: &env,
            working_dir: settings.get(&WORKING_DIR),
            max_output: settings
                .get(&MAX_OUTPUT)
                .expect("`max_output` has a default"),
            deadline: request.deadline,
        };
        let output = child::run(&run).map_err(|failure| failure.into_error(&run, settings))?;
        answer::parse(format, output)
    }

    /// Runs `check_command` (never `command`: it would read a secret) with the operator's
    /// environment and reports how it ended.
    fn check(&self, settings: &Settings, deadline: Instant) -> Result<String, Error> {
        let command = settings.get(&COMMAND);
        let Some(program) = command.first() else {
            return Err(settings.missing(
                &COMMAND,
                "[\"/usr/local/bin/sops\", \"decrypt\", \"--\", \"/srv/secrets/{path}\"]",
            ));
        };
        if settings.get(&CHECK_COMMAND).is_empty() {
            let runnable = std::fs::metadata(program)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false);
            return match runnable {
                true => Ok(format!(
                    "`{program}` is executable; set `check_command` (like `op whoami`) to prove its credentials"
                )),
                false => Err(Error::settings(format!(
                    "`{program}` (the first word of `command`) is not an executable file"
                ))),
            };
        }
        let env = environment::build(settings, &Default::default(), false)?;
        let argv = argv(settings, &CHECK_COMMAND, &[])?;
        let run = child::Run {
            argv: &argv,
            env: &env,
            working_dir: settings.get(&WORKING_DIR),
            max_output: settings
                .get(&MAX_OUTPUT)
                .expect("`max_output` has a default"),
            deadline,
        };
        match child::run(&run) {
            Ok(_) => Ok(format!("`{}` exited 0", argv.join(" "))),
            Err(failure) => Err(failure.into_error(&run, settings)),
        }
    }
}

/// The job's path, before anything runs: not an option to the CLI, and matching the operator's
/// pattern whole.
fn check_path(path: &str, settings: &Settings) -> Result<(), Error> {
    if path.starts_with('-') {
        return Err(Error::invalid_path(
            "the path starts with `-`, which the command would read as an option",
        ));
    }
    let Some(pattern) = settings.get(&PATH_PATTERN) else {
        return Err(settings
            .missing(&PATH_PATTERN, "\"[a-z0-9/-]+\\\\.json\"")
            .hint(format!(
                "without a pattern any path would reach the command; set `path_pattern` in `{}`",
                settings.file().display()
            )));
    };
    let whole = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        Error::settings(format!(
            "`path_pattern` in `{}` is not a valid regular expression: {}",
            settings.file().display(),
            e.to_string().lines().last().unwrap_or_default().trim()
        ))
    })?;
    if !whole.is_match(path) {
        return Err(Error::invalid_path(format!(
            "the path does not match the operator's `path_pattern` `{pattern}`"
        ))
        .hint("ask the operator which paths this provider serves"));
    }
    Ok(())
}

/// The argv of `setting` with each placeholder replaced inside its argument (never split).
fn argv(
    settings: &Settings,
    setting: &Key<[String]>,
    placeholders: &[(&str, &str)],
) -> Result<Vec<String>, Error> {
    let words = settings.get(setting);
    let Some(program) = words.first() else {
        return Err(settings.missing(
            setting,
            "[\"/usr/local/bin/sops\", \"decrypt\", \"--\", \"/srv/secrets/{path}\"]",
        ));
    };
    if !program.starts_with('/') {
        return Err(Error::settings(format!(
            "`{}` must start with an absolute path to the program, not `{program}`: Nomad gives plugins no PATH",
            setting.name()
        )));
    }
    // The program itself is the operator's alone; placeholders fill the arguments only, in one
    // pass (a path holding `{job}` stays that text).
    let mut argv = vec![program.clone()];
    argv.extend(words[1..].iter().map(|word| expand(word, placeholders)));
    Ok(argv)
}

/// `word` with each `{name}` of `placeholders` replaced by its value, in one left-to-right pass.
fn expand(word: &str, placeholders: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    'scan: while !rest.is_empty() {
        for (name, value) in placeholders {
            if let Some(after) = rest.strip_prefix(name) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        out.extend(chars.next());
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_one_argument_in_one_pass() {
        let values = [("{path}", "a/{job} b"), ("{job}", "api")];
        assert_eq!(expand("op://v/{path}/x", &values), "op://v/a/{job} b/x");
        assert_eq!(expand("{job}-{path}", &values), "api-a/{job} b");
        assert_eq!(expand("{nope}", &values), "{nope}");
    }
}
