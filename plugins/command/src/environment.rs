//! The environment the CLI runs with: the operator's, plus what a job may pass.
//!
//! Under Nomad the CLI starts from nothing: the operator's `env` (`NAME=value`) and `env_files`
//! (`NAME=/file`, the value read from the file so a token need not sit in the settings), then
//! the job's own values of the names in `job_env` (a job's own `OP_SERVICE_ACCOUNT_TOKEN`, say).
//! A job that sets anything else has been refused already, by the protocol's job-input model
//! (the names of `job_env` are what `CommandBackend::passed_through` declares). Variables that change what runs or
//! what it trusts can never be listed in `job_env` (see [`never_from_a_job`]). By hand, the
//! person's environment is the CLI's, with the operator's values as defaults.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;

use nomad_secrets_protocol::settings::unreadable;
use nomad_secrets_protocol::{Error, Settings};

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

/// Whether the operator may list `name` in `job_env`: an ALLOW-list of the shapes a CLI's own
/// credential (or the account, project or environment it selects) takes, since no deny list
/// can name every variable that loads code or changes what runs (`BASH_FUNC_x%%`,
/// `JAVA_TOOL_OPTIONS`, `DOTNET_STARTUP_HOOKS`, `OPENSSL_CONF`, `PROMPT_COMMAND`, `PAGER`...).
/// The exact rule, all three parts:
/// 1. the name is `^[A-Z][A-Z0-9_]*$` (upper case, ASCII, no leading `_`, no `%`);
/// 2. it ends in one of `_TOKEN`, `_SECRET`, `_PASSWORD`, `_PASSPHRASE`, `_KEY`, `_ID`,
///    `_SESSION`, `_ACCOUNT`, `_PROJECT`, `_ENVIRONMENT` (`_API_KEY`, `_ACCESS_KEY` and
///    `_ACCESS_TOKEN` are among these), with something before it;
/// 3. it does not start with a runtime's, loader's or shell's own prefix (`BASH_`, `CORECLR_`,
///    `DOTNET_`, `JAVA_`, `JDK_`, `OPENSSL_`, `SSL`, `NODE_`, `NPM_`, `PERL`, `RUBY`, `LESS`,
///    `GCONV_`, `GLIBC_`, `GPG`), and [`never_from_a_job`] does not refuse it; but the `SOPS_`
///    names, which that refuses as a family, are judged by 1 and 2 alone: these keep out what
///    names a file, a command or a place (`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`,
///    `SOPS_GPG_EXEC`, `SOPS_VAULT_URIS`) and let the job's own key (`SOPS_AGE_KEY`) through.
pub fn safe_job_env_name(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "_TOKEN",
        "_SECRET",
        "_PASSWORD",
        "_PASSPHRASE",
        "_KEY",
        "_ID",
        "_SESSION",
        "_ACCOUNT",
        "_PROJECT",
        "_ENVIRONMENT",
    ];
    const RUNTIMES: &[&str] = &[
        "BASH_", "CORECLR_", "DOTNET_", "JAVA_", "JDK_", "OPENSSL_", "SSL", "NODE_", "NPM_",
        "PERL", "RUBY", "LESS", "GCONV_", "GLIBC_", "GPG",
    ];
    let shape = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let credential = SUFFIXES
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix));
    let runtime = RUNTIMES.iter().any(|prefix| name.starts_with(prefix));
    let denied = never_from_a_job(name) && !name.starts_with("SOPS_");
    shape && credential && !runtime && !denied
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
    // Every name of a safe shape (`safe_job_env_name`), or a settings error naming it.
    let allowed = crate::job_env(settings)?;
    if manual {
        // A person's own shell: theirs wins, the settings are defaults.
        for (name, value) in env {
            vars.insert(name.clone(), value.clone());
        }
        return Ok(vars);
    }
    // Only the listed names reach the CLI; the protocol has refused any other variable of the
    // job, and checked every value, before the backend ran.
    for name in allowed {
        if let Some(value) = env.get(&OsString::from(name.as_str())) {
            vars.insert(name.into(), value.clone());
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

    #[test]
    fn job_env_takes_credential_names_only() {
        for name in [
            "BASH_FUNC_x%%",
            "BASH_FUNC_KEY%%",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "DOTNET_STARTUP_HOOKS",
            "OPENSSL_CONF",
            "OPENSSL_ENGINES",
            "SSLKEYLOGFILE",
            "SHELLOPTS",
            "BASHOPTS",
            "PS4",
            "PROMPT_COMMAND",
            "LESSOPEN",
            "EDITOR",
            "PAGER",
            "GIT_SSH_COMMAND",
            "CORECLR_ENABLE_PROFILING",
            "CORECLR_PROFILER",
            "CORECLR_PROFILER_PATH",
            "CORECLR_PROFILER_ID",
            "PERL5DB",
            "PATH",
            "LD_PRELOAD",
            "HTTPS_PROXY",
            "SOPS_AGE_KEY_FILE",
            "SOPS_AGE_KEY_CMD",
            "SOPS_GPG_EXEC",
            "VAULT_ADDR",
            "PYTHON_KEY",
            "GIT_TOKEN",
            "NODE_AUTH_TOKEN",
            "op_service_account_token",
            "_TOKEN",
            "TOKEN",
            "1_TOKEN",
            "A-B_TOKEN",
            "",
        ] {
            assert!(!safe_job_env_name(name), "{name}");
        }
        for name in [
            "OP_SERVICE_ACCOUNT_TOKEN",
            "BWS_ACCESS_TOKEN",
            "DOPPLER_TOKEN",
            "VAULT_TOKEN",
            "SOPS_AGE_KEY",
            "INFISICAL_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "BW_SESSION",
            "DOPPLER_PROJECT",
            "X_API_KEY",
        ] {
            assert!(safe_job_env_name(name), "{name}");
        }
    }
}
