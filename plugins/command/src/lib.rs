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
//! whole) and the variables the operator lists in `job_env` (credential-like names only, see
//! [`environment::safe_job_env_name`]). No value a placeholder inserts (`{path}`,
//! `{namespace}`, `{job}`) may start with `-`, so none can become an option of the CLI. The
//! path is passed exactly as the access policy saw it: a path with a `.` or `..` segment, an
//! empty segment (`//`, a leading or trailing `/`), a backslash, a `%` or a control character is
//! refused before the policy (see [`CommandBackend::normalise`](Backend::normalise)), since a
//! CLI may resolve or decode what the policy matched literally. The CLI runs with an
//! environment of the operator's making, stdin from /dev/null, in its own process group; the
//! fetch answers as soon as the CLI exits, and the CLI and everything it started (in its group
//! or not: the plugin is their subreaper) are killed then, at the deadline and on SIGTERM; its
//! stderr is never shown unless the operator allows its first line. See [`child`] for the run,
//! [`environment`] for what the CLI gets, [`answer`] for its output.
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

    /// The operator's `job_env`: names a job may hand to the CLI, each of a safe shape
    /// ([`environment::safe_job_env_name`]); an unsafe one is a settings error naming it.
    fn passed_through(settings: &Settings) -> Result<Vec<String>, Error> {
        job_env(settings).map(<[String]>::to_vec)
    }

    /// The locator as it is, once proved to be exactly what the CLI will be given and what the
    /// access policy may match literally: no `.` or `..` segment, no empty segment (`//`, a
    /// leading or trailing `/`), no backslash, no `%` (the protocol has already decoded `%XX`
    /// once; a CLI decoding again would read something else) and no control character. A CLI
    /// may resolve any of these (`team-a/../team-b` under a `team-a/**` rule), so they are
    /// refused rather than rewritten.
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        let refuse = |why: &str| {
            Err(Error::invalid_path(format!(
                "the path {why}, which the command could read as another path than the access policy sees"
            ))
            .hint("write the path plainly, as `team/secret`, with no `.`, `..`, empty segment, `\\` or `%`"))
        };
        if locator.chars().any(char::is_control) {
            return refuse("holds a control character");
        }
        if locator.contains('\\') {
            return refuse("holds a backslash");
        }
        if locator.contains('%') {
            return refuse("holds a `%` once decoded");
        }
        for segment in locator.split('/') {
            match segment {
                "" => return refuse("has an empty segment (`//`, or `/` at an end)"),
                "." => return refuse("has a `.` segment"),
                ".." => return refuse("has a `..` segment"),
                _ => {}
            }
        }
        Ok(locator.to_owned())
    }

    /// Everything it needs is read from the request's settings when it runs.
    fn new(_settings: &Settings) -> Result<CommandBackend, Error> {
        Ok(CommandBackend)
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let settings = &request.settings;
        // What the policy was checked against, by construction the CLI's path too.
        let path = &Self::normalise(request.path.locator(), settings)?;
        check_path(path, settings)?;
        let format = answer::Format::from_settings(settings)?;
        let env = environment::build(settings, &request.env, request.manual)?;
        let argv = argv(
            settings,
            &COMMAND,
            &[
                Placeholder {
                    name: "{path}",
                    value: path,
                    what: "the path",
                    one_segment: false,
                },
                Placeholder {
                    name: "{namespace}",
                    value: &request.namespace,
                    what: "the job's namespace (NOMAD_NAMESPACE)",
                    one_segment: true,
                },
                Placeholder {
                    name: "{job}",
                    value: &request.job,
                    what: "the job's ID (NOMAD_JOB_ID)",
                    one_segment: true,
                },
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

/// What [`environment::safe_job_env_name`] accepts, for the operator.
const SAFE_JOB_ENV_SHAPES: &str = "list only the CLI's own credential variables: upper-case letters, digits and `_`, \
     ending in `_TOKEN`, `_SECRET`, `_PASSWORD`, `_PASSPHRASE`, `_KEY`, `_ID`, `_SESSION`, `_ACCOUNT`, \
     `_PROJECT` or `_ENVIRONMENT` (like OP_SERVICE_ACCOUNT_TOKEN), and not a runtime's, loader's or \
     shell's own (`BASH_*`, `JAVA_*`, `OPENSSL_*`, `LD_*`, `PATH`...)";

/// The operator's `job_env`, every name of a safe shape ([`environment::safe_job_env_name`]).
pub(crate) fn job_env(settings: &Settings) -> Result<&[String], Error> {
    let names = settings.get(&JOB_ENV);
    if let Some(name) = names
        .iter()
        .find(|name| !environment::safe_job_env_name(name))
    {
        return Err(Error::settings(format!(
            "`job_env` in `{}` lists `{name}`, which is not a credential variable's name: a job could change what the command runs or trusts with it",
            settings.file().display()
        ))
        .hint(SAFE_JOB_ENV_SHAPES));
    }
    Ok(names)
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

/// A value a job controls, put in the CLI's argv where the operator wrote `name`.
struct Placeholder<'a> {
    /// `{path}`, `{namespace}`, `{job}`.
    name: &'static str,
    /// What replaces it.
    value: &'a str,
    /// What the value is, for messages (never the value itself).
    what: &'static str,
    /// Whether it must be one plain path segment: a job ID or namespace names a folder of its
    /// own (`/srv/{namespace}/{job}/{path}`), and `..` or a `/` in it would name another's.
    one_segment: bool,
}

/// The argv of `setting` with each placeholder replaced inside its argument (never split). A
/// value that starts with `-` is refused wherever it would be inserted, whatever the operator's
/// pattern: the CLI could read it as an option (`--output=/elsewhere`, `--config`...).
fn argv(
    settings: &Settings,
    setting: &Key<[String]>,
    placeholders: &[Placeholder],
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
    let mut inserted = vec![false; placeholders.len()];
    argv.extend(
        words[1..]
            .iter()
            .map(|word| expand(word, placeholders, &mut inserted)),
    );
    for (placeholder, _) in placeholders
        .iter()
        .zip(inserted)
        .filter(|(_, inserted)| *inserted)
    {
        if placeholder.value.starts_with('-') {
            return Err(Error::invalid_path(format!(
                "{} starts with `-`, and `{}` in `{}` would hand it to the command, which could read it as an option",
                placeholder.what,
                placeholder.name,
                setting.name()
            ))
            .hint("no value a job controls may start with `-` where it fills a placeholder"));
        }
        let value = placeholder.value;
        let not_a_segment = value.is_empty()
            || value == "."
            || value == ".."
            || value.contains(['/', '\\'])
            || value.chars().any(char::is_control);
        if placeholder.one_segment && not_a_segment {
            return Err(Error::invalid_path(format!(
                "{} is empty, `.`, `..`, or holds a `/`, a `\\` or a control character, and `{}` in `{}` would put it in the command's arguments, where it could name another job's folder",
                placeholder.what,
                placeholder.name,
                setting.name()
            ))
            .hint("the operator's `command` may insert a job's ID or namespace only when it is one plain name; a job whose ID holds `/` needs a provider whose command does not insert it"));
        }
    }
    Ok(argv)
}

/// `word` with each `{name}` of `placeholders` replaced by its value, in one left-to-right pass;
/// `inserted[i]` is set when `placeholders[i]` was.
fn expand(word: &str, placeholders: &[Placeholder], inserted: &mut [bool]) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    'scan: while !rest.is_empty() {
        for (i, placeholder) in placeholders.iter().enumerate() {
            if let Some(after) = rest.strip_prefix(placeholder.name) {
                out.push_str(placeholder.value);
                inserted[i] = true;
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

    fn placeholders<'a>(path: &'a str, job: &'a str) -> [Placeholder<'a>; 2] {
        [
            Placeholder {
                name: "{path}",
                value: path,
                what: "the path",
                one_segment: false,
            },
            Placeholder {
                name: "{job}",
                value: job,
                what: "the job's ID (NOMAD_JOB_ID)",
                one_segment: true,
            },
        ]
    }

    #[test]
    fn placeholders_fill_one_argument_in_one_pass() {
        let values = placeholders("a/{job} b", "api");
        let mut inserted = [false; 2];
        assert_eq!(
            expand("op://v/{path}/x", &values, &mut inserted),
            "op://v/a/{job} b/x"
        );
        assert_eq!(inserted, [true, false]);
        assert_eq!(
            expand("{job}-{path}", &values, &mut inserted),
            "api-a/{job} b"
        );
        assert_eq!(inserted, [true, true]);
        let mut none = [false; 2];
        assert_eq!(expand("{nope}", &values, &mut none), "{nope}");
        assert_eq!(none, [false, false]);
    }

    fn settings_of(text: &str) -> Settings {
        Settings::from_text(
            Path::new("/etc/nomad/secrets/command.toml"),
            Some(text),
            CommandBackend::SETTINGS,
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn no_inserted_value_may_start_with_a_dash() {
        let settings = settings_of("command = [\"/bin/cli\", \"--job\", \"{job}\", \"{path}\"]\n");
        for (path, job, refused) in [
            ("-rf", "api", "the path"),
            ("db", "--output=/tmp/x", "the job's ID (NOMAD_JOB_ID)"),
        ] {
            let error = argv(&settings, &COMMAND, &placeholders(path, job)).unwrap_err();
            assert!(error.to_string().starts_with(refused), "{error}");
            assert!(!error.to_string().contains(job) || job == "api", "{error}");
        }
        // A value that fills no placeholder is not the command's business.
        let settings = settings_of("command = [\"/bin/cli\", \"{path}\"]\n");
        assert_eq!(
            argv(&settings, &COMMAND, &placeholders("db", "-x")).unwrap(),
            ["/bin/cli", "db"]
        );
    }

    #[test]
    fn normalise_refuses_what_a_command_could_resolve_or_decode() {
        let settings = settings_of("command = [\"/bin/cli\", \"{path}\"]\n");
        for path in [
            "team-a/db",
            "team-a/db.json",
            "a b/c",
            "op-vault/item/field..x",
        ] {
            assert_eq!(CommandBackend::normalise(path, &settings).unwrap(), path);
        }
        for path in [
            "team-a/../team-b/db",
            "..",
            "team-a/..",
            "./team-a/db",
            "team-a/./db",
            "team-a//db",
            "/team-a/db",
            "team-a/db/",
            "team-a\\..\\team-b",
            "team-a/%2e%2e/team-b",
            "team-a/db\u{7f}",
        ] {
            let error = CommandBackend::normalise(path, &settings).unwrap_err();
            assert_eq!(error.kind(), nomad_secrets_protocol::ErrorKind::InvalidPath);
        }
    }
}
