//! The operator's access policy: which Nomad namespace and job may read which paths.
//!
//! A plugin runs with the node's credentials for any job that names it. Rules in the settings
//! file scope that, keyed by `NOMAD_NAMESPACE` and `NOMAD_JOB_ID`, which Nomad sets after the
//! job's `env {}` so a job cannot forge them:
//!
//! ```toml
//! [[allow]]
//! namespace = "payments"        # exact, or "*" for every namespace
//! job = "*"                     # exact, or "*" (the default)
//! paths = ["payments/**"]
//!
//! [[allow]]
//! namespace = "*"
//! paths = ["shared/{namespace}/{job}/*"]   # each job its own folder, in its own namespace's
//! ```
//!
//! A rule may also name a task `group` and a `task` (exact, or `"*"`), which only a verified
//! workload identity proves (see [`crate::identity`]): such a rule never applies to a run
//! without one.
//!
//! Without any `[[allow]]` rule every path is allowed (the plugin's own limits still apply).
//! With one or more, what no rule allows is denied.
//!
//! Patterns: `*` matches any run of characters within one path segment (not `/`), `**` any run
//! including `/`; everything else is literal. Patterns are matched against the path the
//! backend will really read, after it has normalised it (for `file`: `.` and empty segments
//! dropped, `..` refused), so `a/../b`, `%2e%2e` or doubled slashes cannot get around them.
//! Matching is case-sensitive, as the paths are.
//!
//! Placeholders insert the run's own identity, as Nomad set it:
//!
//! - `{namespace}` is `NOMAD_NAMESPACE`, the job's namespace (`default` for most jobs).
//! - `{job}` is the job's ID as Nomad identifies it: `NOMAD_JOB_ID`, except that a dispatched
//!   or periodic run (`batch/dispatch-...`, `batch/periodic-...`) is its parent, `batch` (see
//!   [`job_identity`]). It is the ID alone, never the namespace: **a job is a (namespace, ID)
//!   pair**, and jobs called `api` in two namespaces insert the same `{job}`. Under a rule with
//!   `namespace = "*"`, `shared/{job}/*` lets every namespace's `api` read `shared/api/*`;
//!   write `shared/{namespace}/{job}/*` to give each job a folder of its own.
//!
//! Inserted values are literal text, never patterns: a job ID holding `*`, `**`, `?`, `[` or
//! `{` matches only those characters. A value holding `/` (Nomad allows `/` in job IDs) makes
//! the pattern match nothing for that run: inserted, it would name a folder below another
//! job's (job `api/x` would get `shared/api/x/...`, inside what `shared/{job}/**` grants job
//! `api`), so no path segment of a placeholder can ever be more than one segment. A rule whose
//! placeholder has no value (run by hand) matches nothing either. Such jobs are given paths by
//! a rule naming them (`job = "team/batch"`, with literal paths).

use toml::Value;

/// One `[[allow]]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    namespace: String,
    job: String,
    /// The task group and task, which only a verified workload identity proves.
    group: Option<String>,
    task: Option<String>,
    paths: Vec<String>,
}

/// All the rules of a settings file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Who is asking: the values Nomad set for the run (empty when run by hand).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// `NOMAD_NAMESPACE`.
    pub namespace: &'a str,
    /// The job identity (`NOMAD_JOB_ID`, a dispatched or periodic run's parent).
    pub job: &'a str,
    /// The task group, when a verified workload identity proved it.
    pub group: Option<&'a str>,
    /// The task, when a verified workload identity proved it.
    pub task: Option<&'a str>,
}

impl Rule {
    /// Whether the rule is about `caller` (before its paths are looked at). A rule naming a
    /// group or task applies only to a caller whose verified identity names it (`"*"`: any).
    fn selects(&self, caller: Caller) -> bool {
        let proved = |wanted: &Option<String>, proved: Option<&str>| match (wanted, proved) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wanted), Some(proved)) => wanted == "*" || wanted == proved,
        };
        (self.namespace == "*" || self.namespace == caller.namespace)
            && (self.job == "*" || self.job == caller.job)
            && proved(&self.group, caller.group)
            && proved(&self.task, caller.task)
    }
}

impl Policy {
    /// Parses the value of the `allow` key; the error completes "`allow` ...".
    pub fn parse(value: &Value) -> Result<Policy, String> {
        let Value::Array(entries) = value else {
            return Err("must be written as [[allow]] tables".into());
        };
        let mut rules = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let n = i + 1;
            let Value::Table(table) = entry else {
                return Err(format!("rule {n} is not a table"));
            };
            for key in table.keys() {
                if !["namespace", "job", "group", "task", "paths"].contains(&key.as_str()) {
                    return Err(format!(
                        "rule {n} has an unknown key `{key}` (the keys are `namespace`, `job`, \
                         `group`, `task`, `paths`)"
                    ));
                }
            }
            let text = |key: &str, default: Option<&str>| match table.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                None => default
                    .map(str::to_owned)
                    .ok_or(format!("rule {n} needs `{key}` (a name, or \"*\")")),
                Some(_) => Err(format!("rule {n}: `{key}` must be a non-empty string")),
            };
            let namespace = text("namespace", None)?;
            let job = text("job", Some("*"))?;
            let optional = |key: &str| match table.get(key) {
                None => Ok(None),
                Some(_) => text(key, None).map(Some),
            };
            let (group, task) = (optional("group")?, optional("task")?);
            let paths = match table.get("paths") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|p| p.as_str().filter(|p| !p.is_empty()).map(str::to_owned))
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            }
            .ok_or(format!(
                "rule {n}: `paths` must be a non-empty list of patterns"
            ))?;
            for path in &paths {
                check_pattern(path).map_err(|e| format!("rule {n}: pattern `{path}` {e}"))?;
            }
            rules.push(Rule {
                namespace,
                job,
                group,
                task,
                paths,
            });
        }
        Ok(Policy { rules })
    }

    /// True when the settings file has rules (then what they do not allow is denied).
    pub fn exists(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether `caller` may read `path` (the backend's normalised path).
    pub fn allows(&self, caller: Caller, path: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules
            .iter()
            .any(|rule| rule.selects(caller) && rule.paths.iter().any(|p| matches(p, caller, path)))
    }

    /// The patterns that apply to `caller`, after placeholders, for `check`.
    pub fn patterns_for(&self, caller: Caller) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.selects(caller))
            .flat_map(|r| r.paths.iter())
            .filter(|p| tokens(p, caller).is_some())
            .map(|p| {
                p.replace("{namespace}", caller.namespace)
                    .replace("{job}", caller.job)
            })
            .collect()
    }
}

/// The job ID Nomad itself uses for identity decisions, from `NOMAD_JOB_ID`.
///
/// A dispatched instance of a parameterized job runs as `<parent>/dispatch-<unix>-<8 hex>` (or
/// `<parent>/dispatch-<id prefix>-<unix>-<8 hex>` with an `id_prefix_template`), a periodic
/// launch as `<parent>/periodic-<unix>`. Nomad's workload identities and job-scoped ACL policies
/// treat such a child as its parent, so the access policy does too: every run of `batch` is
/// `batch`. A periodic parameterized job's dispatches nest (`batch/periodic-1/dispatch-...`), so
/// suffixes are removed until none is left. Only exactly these forms are recognised: a job an
/// operator named `batch/dispatch-x` is itself.
pub fn job_identity(job_id: &str) -> &str {
    let mut job = job_id;
    while let Some(parent) = parent_of(job) {
        job = parent;
    }
    job
}

/// The immediate parent of a dispatched or periodic run's ID (one suffix removed), as Nomad
/// records it (`ParentID`, what it signs into the run's workload identity).
pub fn parent_of(job_id: &str) -> Option<&str> {
    dispatch_parent(job_id).or_else(|| periodic_parent(job_id))
}

/// `<parent>` of `<parent>/dispatch-[<prefix>-]<unix>-<8 lowercase hex>`.
fn dispatch_parent(job: &str) -> Option<&str> {
    let (parent, suffix) = job.rsplit_once("/dispatch-")?;
    let (rest, uuid) = suffix.rsplit_once('-')?;
    let unix = rest.rsplit_once('-').map_or(rest, |(_prefix, unix)| unix);
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    (!parent.is_empty() && uuid.len() == 8 && uuid.chars().all(hex) && is_unix_time(unix))
        .then_some(parent)
}

/// `<parent>` of `<parent>/periodic-<unix>`.
fn periodic_parent(job: &str) -> Option<&str> {
    let (parent, unix) = job.rsplit_once("/periodic-")?;
    (!parent.is_empty() && is_unix_time(unix)).then_some(parent)
}

/// Decimal seconds as Go's `strconv` prints them: digits, no sign, no leading zero.
fn is_unix_time(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// `Ok` when the settings' policy lets the caller read `path`; the error names the rule set
/// that was consulted, never another path.
pub fn check(settings: &crate::Settings, caller: Caller, path: &str) -> Result<(), crate::Error> {
    if settings.policy().allows(caller, path) {
        return Ok(());
    }
    let Caller { namespace, job, .. } = caller;
    let shown = |value: &str| match value {
        "" => "(none: not run by Nomad)".to_owned(),
        value => format!("`{value}`"),
    };
    Err(crate::Error::denied(format!(
        "the operator's access policy in `{}` does not let namespace {}, job {} read `{path}`",
        settings.file().display(),
        shown(namespace),
        shown(job),
    ))
    .hint("ask the operator to add an [[allow]] rule for it"))
}

/// A pattern piece.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    StarStar,
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("has a `{` without `}`")?;
        let name = &rest[open + 1..open + close];
        if name != "namespace" && name != "job" {
            return Err(format!(
                "has an unknown placeholder `{{{name}}}` (use {{namespace}} or {{job}})"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if pattern.contains("***") {
        return Err("has `***`; use `*` or `**`".into());
    }
    Ok(())
}

/// Tokens of `pattern` with the caller's values in place of placeholders, as literal
/// characters; `None` when a placeholder has no value, or a value holding `/` (it would reach
/// into another job's folder; see the module's docs).
fn tokens(pattern: &str, caller: Caller) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = pattern.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '*' if chars.peek().map(|(_, c)| *c) == Some('*') => {
                chars.next();
                tokens.push(Token::StarStar);
            }
            '*' => tokens.push(Token::Star),
            '{' => {
                let rest = &pattern[i..];
                let (value, len) = if rest.starts_with("{namespace}") {
                    (caller.namespace, "{namespace}".len())
                } else if rest.starts_with("{job}") {
                    (caller.job, "{job}".len())
                } else {
                    tokens.push(Token::Char('{'));
                    continue;
                };
                if value.is_empty() || value.contains('/') {
                    return None;
                }
                tokens.extend(value.chars().map(Token::Char));
                for _ in 1..len {
                    chars.next();
                }
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    Some(tokens)
}

/// Glob matching by dynamic programming: linear in pattern x path, whatever the stars.
fn matches(pattern: &str, caller: Caller, path: &str) -> bool {
    let Some(tokens) = tokens(pattern, caller) else {
        return false;
    };
    let text: Vec<char> = path.chars().collect();
    // row[j]: tokens[..i] match text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Char(c) => {
                for j in 1..=text.len() {
                    next[j] = row[j - 1] && text[j - 1] == *c;
                }
            }
            Token::Star | Token::StarStar => {
                next[0] = row[0];
                for j in 1..=text.len() {
                    let can_extend = *token == Token::StarStar || text[j - 1] != '/';
                    next[j] = row[j] || (next[j - 1] && can_extend);
                }
            }
        }
        row = next;
    }
    row[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: Caller = Caller {
        namespace: "payments",
        job: "api",
        group: None,
        task: None,
    };

    fn policy(text: &str) -> Policy {
        let table: toml::Table = toml::from_str(text).unwrap();
        Policy::parse(&table["allow"]).unwrap()
    }

    #[test]
    fn dispatched_and_periodic_runs_are_their_parent() {
        for (id, parent) in [
            ("batch", "batch"),
            ("batch/dispatch-1700000000-0a1b2c3d", "batch"),
            ("batch/dispatch-nightly-1700000000-0a1b2c3d", "batch"),
            ("batch/dispatch-a-b-1700000000-0a1b2c3d", "batch"),
            ("batch/periodic-1700000000", "batch"),
            (
                "batch/periodic-1700000000/dispatch-1700000001-ffffffff",
                "batch",
            ),
            ("team/batch/periodic-1700000000", "team/batch"),
            // Not what Nomad generates: kept as written.
            (
                "batch/dispatch-1700000000-0A1B2C3D",
                "batch/dispatch-1700000000-0A1B2C3D",
            ),
            (
                "batch/dispatch-1700000000-0a1b2c3",
                "batch/dispatch-1700000000-0a1b2c3",
            ),
            ("batch/dispatch-x-0a1b2c3d", "batch/dispatch-x-0a1b2c3d"),
            ("batch/periodic-", "batch/periodic-"),
            ("batch/periodic-017", "batch/periodic-017"),
            ("batch/periodic-17x", "batch/periodic-17x"),
            ("/periodic-1700000000", "/periodic-1700000000"),
            (
                "batch/periodic-1700000000/extra",
                "batch/periodic-1700000000/extra",
            ),
        ] {
            assert_eq!(job_identity(id), parent, "{id}");
        }
    }

    #[test]
    fn globs() {
        let m = |p: &str, path: &str| matches(p, API, path);
        assert!(m("payments/*", "payments/db.json"));
        assert!(!m("payments/*", "payments/a/db.json"));
        assert!(
            m("payments/*", "payments/"),
            "like a shell, * may match nothing"
        );
        assert!(m("payments/**", "payments/a/b/c"));
        assert!(m("*.json", "db.json"));
        assert!(!m("*.json", "a/db.json"));
        assert!(m("**.json", "a/db.json"));
        assert!(m("a/*/c", "a/b/c"));
        assert!(!m("a/*/c", "a/b/x/c"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "Exact"), "case matters");
        assert!(!m("exact", "exact/"));
    }

    #[test]
    fn placeholders_are_literal_values() {
        let sneaky = Caller {
            namespace: "*",
            job: "**",
            group: None,
            task: None,
        };
        assert!(matches("shared/{job}/*", API, "shared/api/db"));
        assert!(!matches("shared/{job}/*", API, "shared/web/db"));
        assert!(
            !matches("shared/{job}/*", sneaky, "shared/api/db"),
            "a job id is never a glob"
        );
        assert!(matches("shared/{job}/*", sneaky, "shared/**/db"));
        assert!(matches("{namespace}/**", API, "payments/x/y"));
        let by_hand = Caller {
            namespace: "",
            job: "",
            group: None,
            task: None,
        };
        assert!(!matches("shared/{job}/*", by_hand, "shared//db"));
    }

    #[test]
    fn a_slash_in_a_placeholder_value_never_widens_a_rule() {
        let nested = Caller {
            namespace: "payments",
            job: "api/x",
            group: None,
            task: None,
        };
        // Job `api` owns `shared/api/**`: job `api/x` must not reach into it.
        assert!(matches("shared/{job}/**", API, "shared/api/x/db"));
        assert!(!matches("shared/{job}/**", nested, "shared/api/x/db"));
        assert!(!matches("shared/{job}/*", nested, "shared/api/x/db"));
        assert!(!matches("{job}", nested, "api/x"));
        let slashed_namespace = Caller {
            namespace: "a/b",
            job: "api",
            group: None,
            task: None,
        };
        assert!(!matches("{namespace}/**", slashed_namespace, "a/b/c"));
        let p = policy(
            r#"
            [[allow]]
            namespace = "*"
            paths = ["shared/{namespace}/{job}/**"]
            [[allow]]
            namespace = "payments"
            job = "api/x"
            paths = ["team/api-x/*"]
            "#,
        );
        assert!(!p.allows(nested, "shared/payments/api/x/db"));
        assert!(p.allows(nested, "team/api-x/db"), "a rule naming the job");
        assert_eq!(p.patterns_for(nested), ["team/api-x/*"]);
        assert_eq!(p.patterns_for(API), ["shared/payments/api/**"]);
    }

    #[test]
    fn group_and_task_rules_need_a_verified_identity() {
        let policy = policy(
            r#"
            [[allow]]
            namespace = "payments"
            job = "api"
            group = "web"
            task = "server"
            paths = ["web/*"]

            [[allow]]
            namespace = "payments"
            task = "*"
            paths = ["any-task/*"]
            "#,
        );
        let proved = |group, task| Caller { group, task, ..API };
        assert!(policy.allows(proved(Some("web"), Some("server")), "web/db"));
        assert!(!policy.allows(proved(Some("web"), Some("sidecar")), "web/db"));
        assert!(!policy.allows(proved(Some("batch"), Some("server")), "web/db"));
        assert!(!policy.allows(API, "web/db"), "no identity, no group");
        assert!(policy.allows(proved(None, Some("x")), "any-task/db"));
        assert!(
            !policy.allows(API, "any-task/db"),
            "`*` still needs a proof"
        );
        assert_eq!(
            policy.patterns_for(proved(Some("web"), Some("server"))),
            ["web/*", "any-task/*"]
        );
    }

    #[test]
    fn a_job_is_a_namespace_and_an_id() {
        let p = policy(
            r#"
            [[allow]]
            namespace = "*"
            paths = ["shared/{namespace}/{job}/*"]
            "#,
        );
        let same_name = Caller {
            namespace: "web",
            job: "api",
            group: None,
            task: None,
        };
        assert!(p.allows(API, "shared/payments/api/db"));
        assert!(!p.allows(same_name, "shared/payments/api/db"));
        assert!(p.allows(same_name, "shared/web/api/db"));
    }

    #[test]
    fn rules_select_by_namespace_and_job() {
        let p = policy(
            r#"
            [[allow]]
            namespace = "payments"
            paths = ["payments/**"]
            [[allow]]
            namespace = "*"
            job = "web"
            paths = ["web/*"]
            "#,
        );
        assert!(p.exists());
        assert!(p.allows(API, "payments/db"));
        assert!(!p.allows(API, "web/db"));
        assert!(p.allows(
            Caller {
                namespace: "other",
                job: "web",
                group: None,
                task: None
            },
            "web/db"
        ));
        assert!(!p.allows(
            Caller {
                namespace: "other",
                job: "api",
                group: None,
                task: None
            },
            "payments/db"
        ));
        assert_eq!(p.patterns_for(API), ["payments/**"]);
        assert!(
            Policy::default().allows(API, "anything"),
            "no rules: no policy"
        );
    }

    #[test]
    fn bad_rules_are_errors() {
        for (text, expected) in [
            ("allow = 1", "must be written as [[allow]] tables"),
            (
                "[[allow]]\npaths = [\"a\"]",
                "rule 1 needs `namespace` (a name, or \"*\")",
            ),
            (
                "[[allow]]\nnamespace = \"a\"",
                "rule 1: `paths` must be a non-empty list of patterns",
            ),
            (
                "[[allow]]\nnamespace = \"a\"\npaths = []",
                "rule 1: `paths` must be a non-empty list of patterns",
            ),
            (
                "[[allow]]\nnamespace = \"a\"\npath = [\"x\"]",
                "rule 1 has an unknown key `path` (the keys are `namespace`, `job`, `group`, `task`, `paths`)",
            ),
            (
                "[[allow]]\nnamespace = \"a\"\npaths = [\"{user}/*\"]",
                "rule 1: pattern `{user}/*` has an unknown placeholder `{user}` (use {namespace} or {job})",
            ),
        ] {
            let table: toml::Table = toml::from_str(text).unwrap();
            assert_eq!(
                Policy::parse(&table["allow"]).unwrap_err(),
                expected,
                "{text}"
            );
        }
    }
}
