//! The environment the CLI runs with: the operator's, plus what a job may pass.
//!
//! Under Nomad the CLI starts from nothing: the operator's `env` (`NAME=value`) and `env_files`
//! (`NAME=/file`, the value read from the file so a token need not sit in the settings), then
//! the job's own values of the names in `job_env` (a job's own `OP_SERVICE_ACCOUNT_TOKEN`, say).
//! A job that sets anything else is refused, as elsewhere. Variables that change what runs or
//! what it trusts can never be listed in `job_env` (see [`never_from_a_job`]). By hand, the
//! person's environment is the CLI's, with the operator's values as defaults.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;

use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Settings};

/// Variables Nomad sets itself, and the protocol's own: a job sets them without `job_env`.
const FROM_NOMAD: &[&str] = &["NOMAD_JOB_ID", "NOMAD_NAMESPACE", "SECRETS_DEADLINE"];

/// Whether `name` changes what runs or what it trusts, so that no job may ever set it: the
/// loader and interpreters (`LD_*`, `PYTHON*`, `NODE_OPTIONS`...), where programs and files are
/// found (`PATH`, `HOME`, `XDG_*`, `GNUPGHOME`, `TMPDIR`), proxies and CA bundles, shells.
pub fn never_from_a_job(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "IFS",
        "CDPATH",
        "TMPDIR",
        "TMP",
        "TEMP",
        "GNUPGHOME",
        "PASSWORD_STORE_DIR",
        "PASSWORD_STORE_GPG_OPTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "AWS_CA_BUNDLE",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "RUBYLIB",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "GLIBC_TUNABLES",
        "GODEBUG",
        "CPI_OPERATION",
    ];
    const PREFIXES: &[&str] = &["LD_", "DYLD_", "PYTHON", "MALLOC_", "XDG_", "GIT_", "SOPS_"];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&upper.as_str())
        || PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_PROXY")
}

/// The CLI's environment for a run with the job's (or, by hand, the person's) `env`.
pub fn build(
    settings: &Settings,
    env: &HashMap<OsString, OsString>,
    manual: bool,
) -> Result<BTreeMap<OsString, OsString>, Error> {
    let file = settings.file().display().to_string();
    let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
    for entry in settings.get(&crate::ENV) {
        let (name, value) = split(entry, "env", &file)?;
        vars.insert(name.into(), value.into());
    }
    for entry in settings.get(&crate::ENV_FILES) {
        let (name, path) = split(entry, "env_files", &file)?;
        let path = std::path::Path::new(path);
        if !path.is_absolute() {
            return Err(Error::settings(format!(
                "`env_files` in `{file}`: `{name}` must name an absolute file"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable("env_files", path, &e))?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        vars.insert(name.into(), value.trim_end_matches('\r').into());
    }
    let allowed = settings.get(&crate::JOB_ENV);
    for name in allowed {
        if never_from_a_job(name) {
            return Err(Error::settings(format!(
                "`job_env` in `{file}` lists `{name}`, which changes what the command runs or trusts: no job may set it"
            ))
            .hint("list only the CLI's own credential variables, like OP_SERVICE_ACCOUNT_TOKEN"));
        }
    }
    if manual {
        // A person's own shell: theirs wins, the settings are defaults.
        for (name, value) in env {
            vars.insert(name.clone(), value.clone());
        }
        return Ok(vars);
    }
    let mut names: Vec<&str> = env.keys().filter_map(|k| k.to_str()).collect();
    names.sort_unstable();
    for name in names {
        let value = &env[&OsString::from(name)];
        if allowed.iter().any(|a| a == name) {
            vars.insert(name.into(), value.clone());
        } else if !FROM_NOMAD.contains(&name) {
            return Err(Error::settings(format!(
                "the job's env sets `{name}`, which the operator does not pass to the command"
            ))
            .hint(match allowed.is_empty() {
                true => "remove it from the secret's env block; this provider takes no variables from jobs".to_owned(),
                false => format!(
                    "remove it from the secret's env block; this provider takes {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }));
        }
    }
    Ok(vars)
}

/// `NAME=value`, with a name a shell could export.
fn split<'a>(entry: &'a str, setting: &str, file: &str) -> Result<(&'a str, &'a str), Error> {
    let valid = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match entry.split_once('=') {
        Some((name, value)) if valid(name) => Ok((name, value)),
        _ => Err(Error::settings(format!(
            "`{setting}` in `{file}` has an entry that is not `NAME=value` with a variable name"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_changes_what_runs_is_never_a_jobs() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "ld_library_path",
            "HTTPS_PROXY",
            "https_proxy",
            "SSL_CERT_FILE",
            "PYTHONPATH",
            "HOME",
            "SOPS_AGE_KEY_FILE",
            "GNUPGHOME",
        ] {
            assert!(never_from_a_job(name), "{name}");
        }
        for name in [
            "OP_SERVICE_ACCOUNT_TOKEN",
            "BWS_ACCESS_TOKEN",
            "DOPPLER_TOKEN",
        ] {
            assert!(!never_from_a_job(name), "{name}");
        }
    }
}
