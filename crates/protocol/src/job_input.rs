//! What a job's `env {}` may pass: one model, declared by each backend, enforced once here.
//!
//! A plugin runs as the Nomad agent's user with the node's credentials, and everything a job
//! puts in its `env {}` block is hostile. Each backend *declares* every variable a job may pass
//! and what it is ([`Meaning`]): a part of a credential of the job's own, a selector (a region,
//! a profile), something that aims credentials (an address, a namespace), a value passed
//! through to a CLI, or refused with what to do instead. [`JobInput::check`] applies one rule
//! to every backend, before the backend runs:
//!
//! - everything undeclared is refused (a name the protocol sets, `NOMAD_JOB_ID` and
//!   `NOMAD_NAMESPACE`, and the variables of settings a job may override are declared here);
//! - a value must be UTF-8, non-empty and free of control characters: a job credential that is
//!   present but unusable is an error naming the variable, never a fall back to the node's;
//! - a credential is complete when every required part of it is there: half of a pair is an
//!   error, and so are two credentials at once (which one is used must never be a guess);
//! - a variable that aims credentials applies only when the credential used for the request is
//!   the job's own and complete: otherwise it would send the node's credentials where the job
//!   chose, and it is refused.
//!
//! By hand there is no job: the person's environment is theirs, and the backend follows its
//! CLI's conventions (each declaration says what the variable means then).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;

use crate::Error;
use crate::settings::Setting;

/// What a variable a job passes is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// One part of the job's own credential named `credential` (`"AppRole"`). The parts with
    /// `required` make it complete together; an optional part (a session token) is never a
    /// credential alone.
    Credential {
        /// The credential's name, shared by its parts.
        credential: &'static str,
        /// Whether the credential is incomplete without it.
        required: bool,
    },
    /// Chooses among what the credentials in use may reach (a region, a profile, a role), never
    /// where they are sent. Read through the setting the operator lets jobs override.
    Selector,
    /// Aims the credentials: where they are sent, or in which tenant or namespace they act.
    /// Honoured only when the credential used is the job's own and complete.
    Aims,
    /// Handed to the backend's CLI as is, where the operator lists it.
    PassedThrough,
    /// Never from a job; `instead` says what to do.
    Refused {
        /// The operator's setting (or the job's variable) to use instead.
        instead: &'static str,
    },
}

/// One variable a backend declares. A `name` ending in `*` declares every name with that prefix
/// (refused families such as `AWS_ENDPOINT_URL_*`).
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// The variable's name, or a prefix followed by `*`.
    pub name: &'static str,
    /// What it is under Nomad.
    pub meaning: Meaning,
    /// What it does, for the docs.
    pub doc: &'static str,
    /// What it means when a person runs the plugin by hand (the backend CLI's convention).
    pub by_hand: &'static str,
}

impl Variable {
    /// A part of the job's own credential `credential`, complete only with its other required
    /// parts.
    pub const fn credential(
        name: &'static str,
        credential: &'static str,
        doc: &'static str,
    ) -> Self {
        Variable::declare(
            name,
            Meaning::Credential {
                credential,
                required: true,
            },
            doc,
        )
    }

    /// An optional part of credential `credential` (never one alone).
    pub const fn credential_extra(
        name: &'static str,
        credential: &'static str,
        doc: &'static str,
    ) -> Self {
        Variable::declare(
            name,
            Meaning::Credential {
                credential,
                required: false,
            },
            doc,
        )
    }

    /// Aims the job's own credentials; refused with the node's.
    pub const fn aims(name: &'static str, doc: &'static str) -> Self {
        Variable::declare(name, Meaning::Aims, doc)
    }

    /// A value a job hands to the backend as is (a test backend's, or a CLI's).
    pub const fn passed_through(name: &'static str, doc: &'static str) -> Self {
        Variable::declare(name, Meaning::PassedThrough, doc)
    }

    /// Never from a job; `instead` says what to do.
    pub const fn refused(name: &'static str, instead: &'static str) -> Self {
        Variable::declare(name, Meaning::Refused { instead }, "")
    }

    /// What the variable means by hand.
    pub const fn by_hand(mut self, meaning: &'static str) -> Self {
        self.by_hand = meaning;
        self
    }

    const fn declare(name: &'static str, meaning: Meaning, doc: &'static str) -> Self {
        Variable {
            name,
            meaning,
            doc,
            by_hand: "",
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.name == name,
        }
    }
}

/// Variables Nomad itself sets last (a job cannot forge them): who is asking.
const FROM_NOMAD: &[&str] = &["NOMAD_NAMESPACE", "NOMAD_JOB_ID"];

/// How `NOMAD_WORKLOAD_IDENTITY`'s value is checked: strictly, as a credential's.
const IDENTITY_MEANING: Meaning = Meaning::Credential {
    credential: "workload identity",
    required: true,
};

/// A value longer than this is no credential or name: refused before anything reads it.
const MAX_VALUE: usize = 64 << 10;

/// The job's input once checked: what the backend may read of it.
#[derive(Clone, Debug, Default)]
pub struct JobInput {
    /// Declared variables' values, checked (UTF-8, no control characters).
    values: BTreeMap<String, String>,
    /// The job's complete credential, if it passed one.
    credential: Option<&'static str>,
    /// By hand: the person's environment, not checked.
    manual: bool,
    /// `NOMAD_WORKLOAD_IDENTITY`, checked as a credential's value; verified by the protocol
    /// ([`crate::identity`]), never read by backends from here.
    identity_token: Option<String>,
}

impl JobInput {
    /// Checks a job's `env` against `declared` (the backend's declarations), the variables of
    /// `settings` a job may override (already applied or refused by the settings) and
    /// `passed_through` (names the operator lets a job hand to a CLI). `plugin` names the
    /// backend in messages, `file` its settings file's name (`aws.toml`), which hints that say
    /// "the settings file" name.
    pub fn check(
        plugin: &str,
        file: &str,
        declared: &[Variable],
        settings: &[&Setting],
        passed_through: &[String],
        env: &HashMap<OsString, OsString>,
    ) -> Result<JobInput, Error> {
        let mut names: Vec<&OsString> = env.keys().collect();
        names.sort_unstable();
        let mut input = JobInput::default();
        let mut aims = Vec::new();
        let mut touched: BTreeSet<&'static str> = BTreeSet::new();
        for raw_name in names {
            let Some(name) = raw_name.to_str() else {
                return Err(Error::settings(format!(
                    "the job's env has a variable whose name is not UTF-8 (`{}`)",
                    raw_name.to_string_lossy()
                ))
                .hint("remove it from the secret's env block"));
            };
            if name == crate::identity::VARIABLE {
                let value = checked_value(name, &env[raw_name], IDENTITY_MEANING)?;
                input.identity_token = Some(value);
                continue;
            }
            let exact = declared.iter().find(|v| v.name == name);
            let meaning = match exact {
                Some(variable) => variable.meaning,
                None if FROM_NOMAD.contains(&name) => Meaning::Selector,
                None if settings.iter().any(|s| s.job_env == Some(name)) => Meaning::Selector,
                None if passed_through.iter().any(|p| p == name) => Meaning::PassedThrough,
                None => match declared.iter().find(|v| v.matches(name)) {
                    Some(family) => family.meaning,
                    None => {
                        return Err(undeclared(plugin, name, declared, settings, passed_through));
                    }
                },
            };
            if let Meaning::Refused { instead } = meaning {
                return Err(Error::settings(format!(
                    "the job's env sets `{name}`, which a job may not set: it would decide where \
                     credentials are sent, which files the plugin reads or whom it trusts"
                ))
                .hint(format!(
                    "remove it from the secret's env block; {}",
                    instead.replace("the settings file", file)
                )));
            }
            let value = checked_value(name, &env[raw_name], meaning)?;
            match meaning {
                Meaning::Credential { credential, .. } => {
                    touched.insert(credential);
                }
                Meaning::Aims => aims.push(name),
                _ => {}
            }
            input.values.insert(name.to_owned(), value);
        }
        input.credential = complete_credential(declared, &touched, &input)?;
        if let (Some(aim), None) = (aims.first(), input.credential) {
            let own: Vec<String> = credentials(declared)
                .iter()
                .map(|(_, vars)| vars.join(" + "))
                .collect();
            return Err(Error::settings(format!(
                "the job's env sets `{aim}` but no credential of its own: a job may not choose \
                 where the node's credentials are sent"
            ))
            .hint(match own.is_empty() {
                true => "remove it from the secret's env block".to_owned(),
                false => format!(
                    "remove it, or pass the job's own credentials too ({})",
                    own.join(", or ")
                ),
            }));
        }
        Ok(input)
    }

    /// By hand: the person's environment as it is (their own shell, their own credentials).
    pub fn by_hand(env: &HashMap<OsString, OsString>) -> JobInput {
        JobInput {
            values: env
                .iter()
                .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v.to_str()?.to_owned())))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            credential: None,
            manual: true,
            identity_token: env
                .get(&OsString::from(crate::identity::VARIABLE))
                .and_then(|v| v.to_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        }
    }

    /// The value of a declared variable the job passed (under Nomad, checked).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The name of the job's own complete credential, if it passed one (`None` by hand).
    pub fn credential(&self) -> Option<&'static str> {
        self.credential
    }

    /// Whether this is a person's own environment rather than a job's.
    pub fn manual(&self) -> bool {
        self.manual
    }

    /// The workload identity token passed, for the protocol to verify.
    pub(crate) fn identity_token(&self) -> Option<&str> {
        self.identity_token.as_deref()
    }
}

/// Each credential a backend declares, with its required parts.
fn credentials(declared: &[Variable]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut list: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for variable in declared {
        if let Meaning::Credential {
            credential,
            required: true,
        } = variable.meaning
        {
            match list.iter_mut().find(|(name, _)| *name == credential) {
                Some((_, vars)) => vars.push(variable.name),
                None => list.push((credential, vec![variable.name])),
            }
        }
    }
    list
}

/// The job's one complete credential: every part of each credential it touched must be there,
/// and at most one credential may be passed.
fn complete_credential(
    declared: &[Variable],
    touched: &BTreeSet<&'static str>,
    input: &JobInput,
) -> Result<Option<&'static str>, Error> {
    let all = credentials(declared);
    let mut complete = Vec::new();
    for credential in touched {
        let required = all
            .iter()
            .find(|(name, _)| name == credential)
            .map(|(_, vars)| vars.as_slice())
            .unwrap_or_default();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|v| input.get(v).is_none())
            .collect();
        if let Some(absent) = missing.first() {
            let given: Vec<&str> = declared
                .iter()
                .filter(|v| {
                    matches!(v.meaning, Meaning::Credential { credential: c, .. } if c == *credential)
                })
                .map(|v| v.name)
                .filter(|v| input.get(v).is_some())
                .collect();
            return Err(Error::settings(format!(
                "the job's env sets `{}` but not `{absent}`: half of the job's {credential} is \
                 not a credential, and the node's is never used in its place",
                given.join("` and `")
            ))
            .hint(format!(
                "pass {} together, or none of them to use what the operator configured",
                required
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )));
        }
        complete.push(*credential);
    }
    let named = |credential: &str| {
        let given: Vec<String> = declared
            .iter()
            .filter(|v| {
                matches!(v.meaning, Meaning::Credential { credential: c, .. } if c == credential)
            })
            .filter(|v| input.get(v.name).is_some())
            .map(|v| format!("`{}`", v.name))
            .collect();
        format!("its {credential} ({})", given.join(", "))
    };
    match complete.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        [first, second, ..] => Err(Error::settings(format!(
            "the job's env passes two credentials, {} and {}: which one is used must not be a \
             guess",
            named(first),
            named(second)
        ))
        .hint("pass one of them only")),
    }
}

/// Checks one value: UTF-8, not empty, no control characters, not absurdly long. A selector's
/// value is checked again by the setting it overrides; here it only has to be text.
fn checked_value(name: &str, raw: &OsString, meaning: Meaning) -> Result<String, Error> {
    let what = match meaning {
        Meaning::Credential { .. } | Meaning::PassedThrough => {
            "the plugin cannot use it, and never uses the node's credentials in its place"
        }
        _ => "the plugin cannot use it",
    };
    let refuse = |problem: &str| {
        Error::settings(format!("the job's env sets `{name}` {problem}: {what}"))
            .hint(format!("fix or remove `{name}` in the secret's env block"))
    };
    let Some(value) = raw.to_str() else {
        return Err(refuse("to a value that is not UTF-8"));
    };
    if value.trim().is_empty() {
        return Err(refuse(
            "to an empty or blank value (an interpolation that found nothing?)",
        ));
    }
    let credential = matches!(meaning, Meaning::Credential { .. });
    if credential && value.trim() != value {
        return Err(refuse(
            "to a value with white space around it (a pasted line?)",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse(
            "to a value holding control characters (a line break?)",
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(refuse("to a value longer than 64 KiB"));
    }
    Ok(value.to_owned())
}

/// The error for a variable no declaration covers.
fn undeclared(
    plugin: &str,
    name: &str,
    declared: &[Variable],
    settings: &[&Setting],
    passed_through: &[String],
) -> Error {
    let mut may: Vec<String> = declared
        .iter()
        .filter(|v| !matches!(v.meaning, Meaning::Refused { .. }))
        .map(|v| v.name.to_owned())
        .collect();
    may.extend(settings.iter().filter_map(|s| s.job_env).map(str::to_owned));
    may.extend(passed_through.iter().cloned());
    may.sort();
    may.dedup();
    let list = may
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Error::settings(format!(
        "the job's env sets `{name}`, which the `{plugin}` plugin does not take from jobs"
    ))
    .hint(format!(
        "remove it from the secret's env block; a job may set {list} (some only where the \
         operator allows it)"
    ))
}

/// The README's table of what a job's `env {}` may set for `plugin`, from its declarations:
/// between `<!-- settings-table: <plugin> job env -->` and `<!-- end settings-table -->`.
pub fn markdown(plugin: &str, declared: &[Variable], settings: &[&Setting]) -> String {
    let mut table = format!(
        "<!-- settings-table: {plugin} job env -->\n\
         | variable | under Nomad | what it does | by hand |\n\
         |---|---|---|---|\n"
    );
    let row = |name: &str, meaning: &str, doc: &str, by_hand: &str| {
        format!(
            "| `{name}` | {meaning} | {} | {} |\n",
            doc.replace('|', "\\|"),
            by_hand.replace('|', "\\|")
        )
    };
    for variable in declared {
        let meaning = match variable.meaning {
            Meaning::Credential {
                credential,
                required: true,
            } => {
                let others: Vec<String> = credentials(declared)
                    .into_iter()
                    .find(|(c, _)| *c == credential)
                    .map(|(_, vars)| vars)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| *v != variable.name)
                    .map(|v| format!("`{v}`"))
                    .collect();
                match others.is_empty() {
                    true => format!("the job's own credential ({credential})"),
                    false => format!(
                        "the job's own credential ({credential}), with {}",
                        others.join(" and ")
                    ),
                }
            }
            Meaning::Credential { credential, .. } => {
                format!("optional part of the job's {credential}, never alone")
            }
            Meaning::Selector => "selector".to_owned(),
            Meaning::Aims => "aims credentials: only with the job's own credential".to_owned(),
            Meaning::PassedThrough => "passed to the CLI".to_owned(),
            Meaning::Refused { instead } => format!("refused: {instead}"),
        };
        table.push_str(&row(
            variable.name,
            &meaning,
            variable.doc,
            variable.by_hand,
        ));
    }
    for setting in settings {
        if let Some(var) = setting.job_env {
            let who = match setting.job_by_default {
                true => format!(
                    "selector: overrides `{}` unless `job_may_set` leaves it out",
                    setting.name
                ),
                false => format!(
                    "selector: overrides `{}` if listed in `job_may_set`",
                    setting.name
                ),
            };
            let by_hand = match setting.by_hand_env {
                Some(other) => format!("as under Nomad, or `{other}`"),
                None => "as under Nomad".to_owned(),
            };
            table.push_str(&row(var, &who, setting.doc, &by_hand));
        }
    }
    table.push_str(&row(
        crate::identity::VARIABLE,
        "the job's workload identity token, verified before anything runs",
        "proves the job's namespace and ID (and group, task) to the access policy; refused \
         unless the operator set `identity_jwks_url` or `identity_jwks_file`",
        "verified the same way",
    ));
    table.push_str(&row(
        "anything else",
        "refused, naming the variable",
        "a job's env {} is checked whole before anything runs",
        "the person's environment is theirs",
    ));
    table.push_str("<!-- end settings-table -->\n");
    table
}

/// The declarations as JSON (`<plugin> --help --job-input`), for tests that try every variable:
/// `[{"name", "meaning", "credential", "required"}]`, settings' variables as selectors.
pub fn json(declared: &[Variable], settings: &[&Setting]) -> serde_json::Value {
    let mut list: Vec<serde_json::Value> = declared
        .iter()
        .map(|v| {
            let (meaning, credential, required) = match v.meaning {
                Meaning::Credential {
                    credential,
                    required,
                } => ("credential", Some(credential), required),
                Meaning::Selector => ("selector", None, false),
                Meaning::Aims => ("aims", None, false),
                Meaning::PassedThrough => ("passed-through", None, false),
                Meaning::Refused { .. } => ("refused", None, false),
            };
            serde_json::json!({
                "name": v.name,
                "meaning": meaning,
                "credential": credential,
                "required": required,
            })
        })
        .collect();
    list.push(serde_json::json!({
        "name": crate::identity::VARIABLE,
        "meaning": "identity",
        "credential": null,
        "required": false,
    }));
    list.extend(settings.iter().filter_map(|s| s.job_env).map(|name| {
        serde_json::json!({"name": name, "meaning": "selector", "credential": null, "required": false})
    }));
    serde_json::Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[Variable] = &[
        Variable::credential("TOKEN", "token", "the job's token"),
        Variable::credential("ROLE_ID", "AppRole", "role id"),
        Variable::credential("SECRET_ID", "AppRole", "secret id"),
        Variable::credential("KEY_ID", "keys", "key id"),
        Variable::credential("KEY_SECRET", "keys", "key secret"),
        Variable::credential_extra("SESSION", "keys", "session token"),
        Variable::aims("ADDR", "address"),
        Variable::refused("SKIP_VERIFY", "verification is never disabled"),
        Variable::refused("ENDPOINT_*", "the operator sets `endpoint_url`"),
    ];

    fn check(pairs: &[(&str, &str)]) -> Result<JobInput, String> {
        let env = pairs.iter().map(|(k, v)| (k.into(), v.into())).collect();
        JobInput::check(
            "p",
            "p.toml",
            DECLARED,
            &[],
            &["CLI_TOKEN".to_owned()],
            &env,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn complete_credentials_may_aim() {
        let input = check(&[("ROLE_ID", "r"), ("SECRET_ID", "s"), ("ADDR", "http://x")]).unwrap();
        assert_eq!(input.credential(), Some("AppRole"));
        assert_eq!(input.get("ADDR"), Some("http://x"));
        let keys = check(&[("KEY_ID", "a"), ("KEY_SECRET", "b"), ("SESSION", "c")]).unwrap();
        assert_eq!(keys.credential(), Some("keys"));
        let nomad = check(&[("NOMAD_JOB_ID", "api"), ("NOMAD_NAMESPACE", "default")]).unwrap();
        assert_eq!(nomad.credential(), None);
    }

    #[test]
    fn half_a_credential_is_an_error_never_the_nodes() {
        for (env, expected) in [
            (
                vec![("ROLE_ID", "r"), ("ADDR", "http://evil")],
                "the job's env sets `ROLE_ID` but not `SECRET_ID`",
            ),
            (
                vec![("SECRET_ID", "s")],
                "the job's env sets `SECRET_ID` but not `ROLE_ID`",
            ),
            (
                vec![("SESSION", "c")],
                "the job's env sets `SESSION` but not `KEY_ID`",
            ),
            (
                vec![("KEY_ID", "a"), ("SESSION", "c")],
                "the job's env sets `KEY_ID` and `SESSION` but not `KEY_SECRET`",
            ),
        ] {
            let error = check(&env).unwrap_err();
            assert!(error.starts_with(expected), "{env:?}: {error}");
            assert!(error.contains("the node's is never used"), "{error}");
        }
    }

    #[test]
    fn aiming_without_the_jobs_own_credential_is_refused() {
        let error = check(&[("ADDR", "http://evil")]).unwrap_err();
        assert!(
            error.starts_with("the job's env sets `ADDR` but no credential of its own"),
            "{error}"
        );
    }

    #[test]
    fn unusable_values_name_the_variable() {
        use std::os::unix::ffi::OsStringExt as _;
        let mut env: HashMap<OsString, OsString> = HashMap::new();
        env.insert("TOKEN".into(), OsString::from_vec(vec![0xff, b'x']));
        let error = JobInput::check("p", "p.toml", DECLARED, &[], &[], &env)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("the job's env sets `TOKEN` to a value that is not UTF-8"),
            "{error}"
        );
        for (value, problem) in [
            ("", "to an empty or blank value"),
            ("  ", "to an empty or blank value"),
            (" t0ken", "to a value with white space around it"),
            ("a\nb", "to a value holding control characters"),
            ("a\rb", "to a value holding control characters"),
            ("a\u{7f}", "to a value holding control characters"),
        ] {
            let error = check(&[("TOKEN", value)]).unwrap_err();
            assert!(
                error.starts_with(&format!("the job's env sets `TOKEN` {problem}")),
                "{error}"
            );
            assert!(!error.contains("a\nb"));
        }
    }

    #[test]
    fn two_credentials_are_refused() {
        let error = check(&[("TOKEN", "t"), ("ROLE_ID", "r"), ("SECRET_ID", "s")]).unwrap_err();
        assert!(
            error.starts_with("the job's env passes two credentials"),
            "{error}"
        );
    }

    #[test]
    fn refused_and_undeclared_names() {
        let error = check(&[("SKIP_VERIFY", "1")]).unwrap_err();
        assert!(error.contains("verification is never disabled"), "{error}");
        let error = check(&[("ENDPOINT_URL_X", "http://evil")]).unwrap_err();
        assert!(
            error.contains("the operator sets `endpoint_url`"),
            "{error}"
        );
        let error = check(&[("SECRETS_DEADLNE", "1s")]).unwrap_err();
        assert!(
            error.starts_with(
                "the job's env sets `SECRETS_DEADLNE`, which the `p` plugin does not take from jobs"
            ),
            "{error}"
        );
        assert!(check(&[("CLI_TOKEN", "x")]).is_ok(), "passed through");
    }
}
