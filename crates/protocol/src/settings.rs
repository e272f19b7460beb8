//! The operator's node settings: one TOML file per plugin, beside the executable.
//!
//! Nomad starts a plugin with a cleared environment, so nothing the operator controls arrives in
//! variables. The plugin at `<dir>/secrets/file` reads `<dir>/secrets/file.toml` (mode 0644: Nomad
//! ignores files without an execute bit in its plugin folder).
//!
//! Each plugin declares its [`Setting`]s. A setting with a `job_env` variable may be overridden by
//! a job's `env {}` block, but only when the operator lists it in `job_may_set`; a job that sets the
//! variable without that permission gets an error, never a silent fallback. Settings without a
//! `job_env` (what may be read, where credentials are sent) are the operator's alone.
//!
//! ```toml
//! deadline = "8s"              # the whole run; Nomad 1.11 kills a fetch at 10 s, 2.x at 60 s
//! job_may_set = ["deadline"]   # lets a job's env {} set SECRETS_DEADLINE
//! root = "/etc/nomad-secrets"  # a plugin's own setting
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::marker::PhantomData;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::Error;
use crate::policy::Policy;

/// The type of a setting's value, which also fixes how it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A duration with a unit: `"500ms"`, `"8s"`, `"2m"`, at most an hour.
    Duration,
    /// A longer duration with a unit, up to a week: `"30s"`, `"15m"`, `"12h"`, `"7d"`.
    Age,
    /// A byte count: an integer, or a string with a unit: `"512KiB"`, `"1MiB"`.
    Size,
    /// An absolute path.
    AbsolutePath,
    /// Any non-empty string.
    Text,
    /// A list of non-empty strings: `["a", "b"]`.
    List,
    /// `true` or `false`.
    Bool,
}

/// One setting a plugin accepts, as [`Key`]s declare it.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The key in the settings file.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// The value used when the file does not set it, written as in the file.
    pub default: Option<&'static str>,
    /// For the docs, what applies when it is not set and there is no `default`: "the node's
    /// CA store only", say.
    pub unset: Option<&'static str>,
    /// The variable of a job's `env {}` that may override it, if the operator allows; `None`
    /// for settings that only the operator may set.
    pub job_env: Option<&'static str>,
    /// Whether jobs may override it when the settings file has no `job_may_set` (an explicit
    /// `job_may_set` always decides). True only where jobs normally choose, like the AWS region.
    pub job_by_default: bool,
    /// The variable the backend's own CLI reads for it (`VAULT_ADDR` for `address`), honoured
    /// only when a person runs the plugin by hand, below `job_env` (which a person may set too).
    pub by_hand_env: Option<&'static str>,
    /// One line for error messages and the docs.
    pub doc: &'static str,
}

/// A setting together with the type its value reads as, so that code reads
/// `settings.get(&ROOT)` (an `Option<&Path>`) rather than a name looked up at run time.
/// Declared once as a constant; the backend lists `ROOT.setting` in its `SETTINGS`.
pub struct Key<T: ?Sized> {
    /// The declaration.
    pub setting: Setting,
    reads_as: PhantomData<fn() -> *const T>,
}

impl<T: ?Sized> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Key<T> {}

impl<T: ?Sized> std::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.setting.name)
    }
}

impl<T: ?Sized> Key<T> {
    const fn declare(name: &'static str, kind: Kind, doc: &'static str) -> Key<T> {
        Key {
            setting: Setting {
                name,
                kind,
                default: None,
                unset: None,
                job_env: None,
                job_by_default: false,
                by_hand_env: None,
                doc,
            },
            reads_as: PhantomData,
        }
    }

    /// Its name in the settings file.
    pub const fn name(&self) -> &'static str {
        self.setting.name
    }

    /// The value when the file does not set it, written as in the file (`"8s"`).
    pub const fn default(mut self, value: &'static str) -> Key<T> {
        self.setting.default = Some(value);
        self
    }

    /// The same setting with its line for error messages and the docs reworded for one backend
    /// (a shared `ca_file` naming the store it trusts).
    pub const fn described(mut self, doc: &'static str) -> Key<T> {
        self.setting.doc = doc;
        self
    }

    /// What applies when it is not set, for the docs (see [`Setting::unset`]).
    pub const fn unset(mut self, described: &'static str) -> Key<T> {
        self.setting.unset = Some(described);
        self
    }

    /// A job may override it through its `env {}` variable `var`, where the operator lists it
    /// in `job_may_set`.
    pub const fn job_env(mut self, var: &'static str) -> Key<T> {
        self.setting.job_env = Some(var);
        self
    }

    /// ... and a job may do so unless the operator's `job_may_set` leaves it out.
    pub const fn job_by_default(mut self) -> Key<T> {
        self.setting.job_by_default = true;
        self
    }

    /// Taken by hand from the backend CLI's variable `var` (see [`Setting::by_hand_env`]).
    pub const fn by_hand(mut self, var: &'static str) -> Key<T> {
        self.setting.by_hand_env = Some(var);
        self
    }
}

impl Key<Duration> {
    /// A duration with a unit, at most an hour ([`Kind::Duration`]).
    pub const fn duration(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::Duration, doc)
    }

    /// A duration up to a week ([`Kind::Age`]).
    pub const fn age(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::Age, doc)
    }
}

impl Key<u64> {
    /// A byte count ([`Kind::Size`]).
    pub const fn size(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::Size, doc)
    }
}

impl Key<Path> {
    /// An absolute path ([`Kind::AbsolutePath`]).
    pub const fn path(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::AbsolutePath, doc)
    }
}

impl Key<str> {
    /// A non-empty string ([`Kind::Text`]).
    pub const fn text(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::Text, doc)
    }
}

impl Key<[String]> {
    /// A list of non-empty strings ([`Kind::List`]).
    pub const fn list(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::List, doc)
    }
}

impl Key<bool> {
    /// `true` or `false` ([`Kind::Bool`]).
    pub const fn flag(name: &'static str, doc: &'static str) -> Self {
        Key::declare(name, Kind::Bool, doc)
    }
}

/// The types a [`Key`] reads as, and what [`Settings::get`] gives for each.
pub trait Read: sealed::Sealed {
    /// What [`Settings::get`] returns: an `Option` (unset), or an empty list.
    type Out<'a>;
    /// Reads setting `name` of `settings`.
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::time::Duration {}
    impl Sealed for u64 {}
    impl Sealed for std::path::Path {}
    impl Sealed for str {}
    impl Sealed for [String] {}
    impl Sealed for bool {}
}

impl Read for Duration {
    type Out<'a> = Option<Duration>;
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }
}

impl Read for u64 {
    type Out<'a> = Option<u64>;
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::Size(n)) => Some(*n),
            _ => None,
        }
    }
}

impl Read for Path {
    type Out<'a> = Option<&'a Path>;
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::Path(p)) => Some(p),
            _ => None,
        }
    }
}

impl Read for str {
    type Out<'a> = Option<&'a str>;
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }
}

impl Read for [String] {
    type Out<'a> = &'a [String];
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::List(items)) => items,
            _ => &[],
        }
    }
}

impl Read for bool {
    type Out<'a> = Option<bool>;
    fn read<'a>(settings: &'a Settings, name: &str) -> Self::Out<'a> {
        match settings.values.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// Time allowed for the whole run.
pub const DEADLINE: Key<Duration> = Key::duration(
    "deadline",
    "time allowed for the whole run, under Nomad's fetch timeout (10 s in 1.11, 60 s from 2.0)",
)
.default("8s")
.job_env("SECRETS_DEADLINE");
/// The audit log.
pub const AUDIT_LOG: Key<Path> = Key::path(
    "audit_log",
    "file that gets one JSON line per fetch (created mode 0600)",
);
/// Whether a fetch fails without its audit line.
pub const AUDIT_REQUIRED: Key<bool> = Key::flag(
    "audit_required",
    "whether a fetch fails when its audit line cannot be written",
)
.default("true");
/// The node-local cache's freshness.
pub const CACHE_TTL: Key<Duration> = Key::age(
    "cache_ttl",
    "node-local cache: a value this fresh is served without calling the store (off when unset)",
)
.unset("no cache");
/// How old a value the cache serves while the store is down.
pub const CACHE_MAX_STALE: Key<Duration> = Key::age(
    "cache_max_stale",
    "while the store is unreachable, failing or throttling, the last good value is served up to this age",
)
.unset("no stale values");
/// Where cache entries live.
pub const CACHE_DIR: Key<Path> = Key::path(
    "cache_dir",
    "memory-backed folder for cache entries (default /run/nomad-secrets/cache)",
)
.unset("`/run/nomad-secrets/cache`");

/// The settings every plugin has.
pub const COMMON: &[Setting] = &[
    DEADLINE.setting,
    AUDIT_LOG.setting,
    AUDIT_REQUIRED.setting,
    CACHE_TTL.setting,
    CACHE_MAX_STALE.setting,
    CACHE_DIR.setting,
    crate::cache::CACHE_MAX_ENTRIES.setting,
    crate::cache::CACHE_MAX_BYTES.setting,
    crate::identity::JWKS_URL.setting,
    crate::identity::JWKS_FILE.setting,
    crate::identity::AUDIENCE.setting,
    crate::identity::ISSUER.setting,
    crate::identity::REQUIRED.setting,
    crate::identity::CA_FILE.setting,
];

/// The key that lists what jobs may override.
const JOB_MAY_SET: &str = "job_may_set";
/// The key of the access policy's rules (see [`crate::policy`]).
const ALLOW: &str = "allow";
/// A settings file larger than this is refused: it cannot be a real one.
const MAX_FILE_SIZE: u64 = 1 << 20;

/// A typed setting value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Duration(Duration),
    Size(u64),
    Path(PathBuf),
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

/// The settings in force for one run: the file, then the job's permitted overrides.
#[derive(Clone, Debug)]
pub struct Settings {
    file: PathBuf,
    /// Every setting the plugin declares, so that reading an undeclared key is caught in tests.
    declared: Vec<&'static str>,
    values: BTreeMap<&'static str, Value>,
    policy: Policy,
}

impl Settings {
    /// The settings file of the plugin whose executable is `executable`: `<executable>.toml`.
    pub fn file_for(executable: &Path) -> PathBuf {
        let mut file = executable.as_os_str().to_owned();
        file.push(".toml");
        PathBuf::from(file)
    }

    /// Reads `file` (absent means all defaults), then applies the job's permitted overrides from
    /// `env`. `specs` are the plugin's own settings; [`COMMON`] ones are added.
    pub fn load(
        file: &Path,
        specs: &[Setting],
        env: &HashMap<OsString, OsString>,
    ) -> Result<Settings, Error> {
        let text = read_file(file)?;
        Settings::from_text(file, text.as_deref(), specs, env)
    }

    /// [`Settings::load`] for a person running the plugin by hand: there is no job, the
    /// environment is the person's own, so every variable a setting reads applies whatever
    /// `job_may_set` says, and the file's values are defaults.
    pub fn load_by_hand(
        file: &Path,
        specs: &[Setting],
        env: &HashMap<OsString, OsString>,
    ) -> Result<Settings, Error> {
        let text = read_file(file)?;
        let mut settings = Settings::from_text(file, text.as_deref(), specs, &HashMap::new())?;
        let all: Vec<&Setting> = COMMON.iter().chain(specs).collect();
        let every: Vec<String> = all.iter().map(|s| s.name.to_owned()).collect();
        let cli: Vec<Setting> = all
            .iter()
            .filter_map(|s| {
                s.by_hand_env.map(|var| Setting {
                    job_env: Some(var),
                    ..**s
                })
            })
            .collect();
        let cli: Vec<&Setting> = cli.iter().collect();
        settings.apply_env(&cli, &every, env, "the environment variable")?;
        settings.apply_env(&all, &every, env, "the environment variable")?;
        Ok(settings)
    }

    /// [`Settings::load`] once the file is read: `text` is its content, `None` when there is
    /// no file. `file` is named in errors.
    pub fn from_text(
        file: &Path,
        text: Option<&str>,
        specs: &[Setting],
        env: &HashMap<OsString, OsString>,
    ) -> Result<Settings, Error> {
        let all: Vec<&Setting> = COMMON.iter().chain(specs).collect();
        let mut settings = Settings {
            file: file.to_owned(),
            declared: all.iter().map(|s| s.name).collect(),
            values: BTreeMap::new(),
            policy: Policy::default(),
        };
        let mut job_may_set = None;
        if let Some(text) = text {
            job_may_set = settings.read_toml(text, &all)?;
        }
        let job_may_set = job_may_set.unwrap_or_else(|| {
            all.iter()
                .filter(|s| s.job_by_default)
                .map(|s| s.name.to_owned())
                .collect()
        });
        for spec in &all {
            if settings.values.contains_key(spec.name) {
                continue;
            }
            if let Some(default) = spec.default {
                let value = parse_value(spec, &toml::Value::String(default.into()))
                    .expect("defaults are valid");
                settings.values.insert(spec.name, value);
            }
        }
        settings.apply_env(&all, &job_may_set, env, "the job's env variable")?;
        Ok(settings)
    }

    /// The settings file's path, for messages.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The value of `key`: `None` (or an empty list) when neither the file, a default nor a
    /// permitted variable sets it.
    pub fn get<T: Read + ?Sized>(&self, key: &Key<T>) -> T::Out<'_> {
        debug_assert!(
            self.declared.contains(&key.setting.name),
            "setting `{}` is read but not in the plugin's SETTINGS",
            key.setting.name
        );
        T::read(self, key.setting.name)
    }

    /// The same settings with `names` unset: for a connection that must not carry what the
    /// operator set for the node's own (a TLS client certificate to a job's address).
    pub fn without(&self, names: &[&str]) -> Settings {
        let mut settings = self.clone();
        settings.values.retain(|name, _| !names.contains(name));
        settings
    }

    /// The operator's access policy (`[[allow]]` rules).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The error for a setting the plugin cannot work without.
    pub fn missing<T: ?Sized>(&self, key: &Key<T>, example: &str) -> Error {
        let name = key.setting.name;
        Error::settings(format!(
            "the operator has not set `{name}` in the settings file `{}`",
            self.file.display()
        ))
        .hint(format!(
            "add a line such as `{name} = {example}` to that file (mode 0644, owned by root)"
        ))
    }

    /// Parses the file's text; returns the names listed in `job_may_set`, if it is there.
    fn read_toml(&mut self, text: &str, all: &[&Setting]) -> Result<Option<Vec<String>>, Error> {
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_of(text, s.start));
                self.error(line, format!("not valid TOML: {}", e.message().trim_end()))
            })?;
        let mut job_may_set = None;
        for (key, value) in &table {
            let line = Some(line_of(text, key.span().start));
            let name = key.get_ref().as_str();
            if name == JOB_MAY_SET {
                job_may_set = Some(self.read_job_may_set(value, line, all)?);
                continue;
            }
            if name == ALLOW {
                self.policy = Policy::parse(value.get_ref())
                    .map_err(|problem| self.error(line, format!("`{ALLOW}` {problem}")))?;
                continue;
            }
            let Some(spec) = all.iter().find(|s| s.name == name) else {
                let known: Vec<String> = all.iter().map(|s| format!("`{}`", s.name)).collect();
                return Err(self
                    .error(line, format!("unknown setting `{name}`"))
                    .hint(format!(
                        "the settings are: {}, `{JOB_MAY_SET}`, `{ALLOW}`",
                        known.join(", ")
                    )));
            };
            let value = parse_value(spec, value.get_ref())
                .map_err(|problem| self.error(line, format!("`{name}` {problem}")))?;
            self.values.insert(spec.name, value);
        }
        Ok(job_may_set)
    }

    fn read_job_may_set(
        &self,
        value: &Spanned<toml::Value>,
        line: Option<usize>,
        all: &[&Setting],
    ) -> Result<Vec<String>, Error> {
        let not_a_list = || {
            self.error(
                line,
                format!("`{JOB_MAY_SET}` must be a list of setting names, like [\"deadline\"]"),
            )
        };
        let toml::Value::Array(items) = value.get_ref() else {
            return Err(not_a_list());
        };
        let mut names = Vec::new();
        for item in items {
            let name = item.as_str().ok_or_else(not_a_list)?;
            match all.iter().find(|s| s.name == name) {
                None => {
                    return Err(self.error(
                        line,
                        format!("`{JOB_MAY_SET}` names `{name}`, which is not a setting"),
                    ));
                }
                Some(spec) if spec.job_env.is_none() => {
                    return Err(self.error(
                        line,
                        format!(
                            "`{JOB_MAY_SET}` names `{name}`, which only the operator may set: \
                             it decides what jobs may read or where credentials are sent"
                        ),
                    ));
                }
                Some(_) => names.push(name.to_owned()),
            }
        }
        Ok(names)
    }

    /// Applies the variables of `env` that settings read, refusing those not in `may_set`;
    /// `source` names such a variable in messages.
    fn apply_env(
        &mut self,
        all: &[&Setting],
        may_set: &[String],
        env: &HashMap<OsString, OsString>,
        source: &str,
    ) -> Result<(), Error> {
        for spec in all {
            let Some(var) = spec.job_env else { continue };
            let Some(raw) = env.get(&OsString::from(var)) else {
                continue;
            };
            if !may_set.iter().any(|n| n == spec.name) {
                return Err(Error::settings(format!(
                    "the job's env sets `{var}`, but the operator's settings file `{}` does not let \
                     jobs override `{}`",
                    self.file.display(),
                    spec.name
                ))
                .hint(format!(
                    "remove `{var}` from the secret's env block, or ask the operator to add \"{}\" \
                     to `{JOB_MAY_SET}`",
                    spec.name
                )));
            }
            let text = raw.to_str().unwrap_or("\u{fffd}").to_owned();
            let value = parse_value(spec, &toml::Value::String(text))
                .map_err(|problem| Error::settings(format!("{source} `{var}` {problem}")))?;
            self.values.insert(spec.name, value);
        }
        Ok(())
    }

    fn error(&self, line: Option<usize>, message: String) -> Error {
        let place = match line {
            Some(line) => format!("settings file `{}`, line {line}", self.file.display()),
            None => format!("settings file `{}`", self.file.display()),
        };
        Error::settings(format!("{place}: {message}"))
    }
}

/// The README's table of `settings`, between the markers `cargo xtask readme` replaces:
/// `<!-- settings-table: <name> -->` and `<!-- end settings-table -->`. The rows say what each
/// setting is, what applies when it is unset, and who may change it; written from the
/// declarations, so the docs cannot drift from what the plugin accepts.
pub fn markdown(name: &str, settings: &[&Setting]) -> String {
    let mut table = format!(
        "<!-- settings-table: {name} -->\n\
         | setting | default | who may set it | what it does |\n\
         |---|---|---|---|\n"
    );
    for setting in settings {
        let default = match (setting.default, setting.unset) {
            (Some(value), _) if matches!(setting.kind, Kind::Bool) => format!("`{value}`"),
            (Some(value), _) => format!("`\"{value}\"`"),
            (None, Some(unset)) => unset.to_owned(),
            (None, None) if setting.kind == Kind::List => "`[]`".to_owned(),
            (None, None) => "none".to_owned(),
        };
        let mut who = match (setting.job_env, setting.job_by_default) {
            (None, _) => "operator only".to_owned(),
            (Some(var), true) => {
                format!("operator; a job's `{var}` unless `{JOB_MAY_SET}` leaves it out")
            }
            (Some(var), false) => format!("operator; a job's `{var}` if listed in `{JOB_MAY_SET}`"),
        };
        if let Some(var) = setting.by_hand_env {
            who.push_str(&format!("; by hand `{var}`"));
        }
        table.push_str(&format!(
            "| `{}` | {default} | {who} | {} |\n",
            setting.name,
            setting.doc.replace('|', "\\|")
        ));
    }
    if name == "common" {
        table.push_str(&format!(
            "| `{JOB_MAY_SET}` | `[]`, or the settings jobs may set by default | operator only | \
             the settings a job's `env {{}}` may override, by name |\n\
             | `[[{ALLOW}]]` | none: every job may read every path | operator only | \
             the access policy: which namespaces and jobs may read which paths |\n"
        ));
    }
    table.push_str("<!-- end settings-table -->\n");
    table
}

/// The error for a file that `setting` names and that cannot be read: the setting, the file
/// and why, never anything of its content.
pub fn unreadable(setting: &str, file: &Path, error: &std::io::Error) -> Error {
    Error::settings(format!(
        "cannot read `{setting}` `{}`: {}",
        file.display(),
        error.kind().to_string().to_lowercase()
    ))
}

/// Reads the settings file if there is one, refusing files that someone other than the operator
/// could have written, and files Nomad would mistake for a plugin.
fn read_file(file: &Path) -> Result<Option<String>, Error> {
    let shown = file.display();
    let metadata = match std::fs::metadata(file) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::settings(format!(
                "cannot read the settings file `{shown}`: {e}"
            )));
        }
    };
    if !metadata.is_file() {
        return Err(Error::settings(format!(
            "the settings file `{shown}` is not a regular file"
        )));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::settings(format!(
            "the settings file `{shown}` is writable by group or others (mode {mode:04o}), so a job \
             could change what it may read"
        ))
        .hint(format!("run `chmod 644 {shown}`")));
    }
    if mode & 0o111 != 0 {
        return Err(Error::settings(format!(
            "the settings file `{shown}` is executable (mode {mode:04o}): Nomad would take it for a \
             plugin"
        ))
        .hint(format!("run `chmod 644 {shown}`")));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if metadata.uid() != 0 && metadata.uid() != euid {
        return Err(Error::settings(format!(
            "the settings file `{shown}` is owned by uid {}, not by root or the Nomad agent's user",
            metadata.uid()
        ))
        .hint(format!("run `chown root {shown}`")));
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err(Error::settings(format!(
            "the settings file `{shown}` is larger than 1 MiB"
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Error::settings(format!("cannot read the settings file `{shown}`: {e}")))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::settings(format!("the settings file `{shown}` is not UTF-8")))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Checks and converts one value; the error text completes "`name` ...", without the value.
fn parse_value(spec: &Setting, value: &toml::Value) -> Result<Value, String> {
    match spec.kind {
        Kind::Duration => value
            .as_str()
            .and_then(parse_duration)
            .map(Value::Duration)
            .ok_or_else(|| {
                "must be a duration between 1ms and 1h with a unit, like \"8s\" or \"500ms\"".into()
            }),
        Kind::Age => value
            .as_str()
            .and_then(parse_age)
            .map(Value::Duration)
            .ok_or_else(|| {
                "must be a duration between 1s and 7d with a unit, like \"30s\", \"15m\" or \"12h\""
                    .into()
            }),
        Kind::Size => match value {
            toml::Value::Integer(n) if *n > 0 => Some(Value::Size(*n as u64)),
            toml::Value::String(s) => parse_size(s).map(Value::Size),
            _ => None,
        }
        .ok_or_else(|| "must be a size in bytes, like 65536 or \"1MiB\"".into()),
        Kind::AbsolutePath => match value.as_str() {
            Some(p) if Path::new(p).is_absolute() => Ok(Value::Path(PathBuf::from(p))),
            _ => Err("must be an absolute path, like \"/etc/nomad-secrets\"".into()),
        },
        Kind::Text => match value.as_str() {
            Some(t) if !t.is_empty() => Ok(Value::Text(t.to_owned())),
            _ => Err("must be a non-empty string".into()),
        },
        Kind::Bool => match value {
            toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
            toml::Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err("must be true or false".into()),
        },
        Kind::List => value
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().filter(|t| !t.is_empty()).map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
            })
            .map(Value::List)
            .ok_or_else(|| "must be a list of non-empty strings, like [\"a\", \"b\"]".into()),
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    };
    (Duration::from_millis(1)..=Duration::from_secs(3600))
        .contains(&duration)
        .then_some(duration)
}

fn parse_age(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    }?;
    (1..=7 * 86_400)
        .contains(&seconds)
        .then(|| Duration::from_secs(seconds))
}

fn parse_size(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale).filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const ROOT: Key<Path> = Key::path("root", "where secrets live");
    const MAX_SIZE: Key<u64> = Key::size("max_size", "largest secret").default("1MiB");
    const REGION: Key<str> = Key::text("region", "region").job_env("AWS_REGION");
    const SPECS: &[Setting] = &[ROOT.setting, MAX_SIZE.setting, REGION.setting];

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(name: &str, text: &str, mode: u32) -> (Scratch, PathBuf) {
        let dir = std::env::temp_dir().join(format!("settings-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        (Scratch(dir), file)
    }

    fn load(name: &str, text: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
        let (_scratch, file) = write(name, text, 0o644);
        let env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        Settings::load(&file, SPECS, &env)
            .map_err(|e| e.to_string().replace(&file.display().to_string(), "FILE"))
    }

    #[test]
    fn values_and_defaults() {
        let settings = load("ok", "root = \"/srv\"\ndeadline = \"1500ms\"\n", &[]).unwrap();
        assert_eq!(settings.get(&ROOT), Some(Path::new("/srv")));
        assert_eq!(settings.get(&DEADLINE), Some(Duration::from_millis(1500)));
        assert_eq!(settings.get(&MAX_SIZE), Some(1 << 20));
        assert_eq!(settings.get(&REGION), None);
    }

    #[test]
    fn the_readme_table_says_what_the_declarations_say() {
        const LOCKED: Key<str> = Key::text("region", "the region")
            .job_env("AWS_REGION")
            .by_hand("AWS_DEFAULT_REGION");
        const OPEN: Key<str> = Key::text("role", "a | b")
            .job_env("ROLE")
            .job_by_default()
            .unset("the node's");
        let table = markdown(
            "x",
            &[
                &MAX_SIZE.setting,
                &LOCKED.setting,
                &OPEN.setting,
                &AUDIT_REQUIRED.setting,
            ],
        );
        assert_eq!(
            table,
            "<!-- settings-table: x -->\n\
             | setting | default | who may set it | what it does |\n\
             |---|---|---|---|\n\
             | `max_size` | `\"1MiB\"` | operator only | largest secret |\n\
             | `region` | none | operator; a job's `AWS_REGION` if listed in `job_may_set`; by hand `AWS_DEFAULT_REGION` | the region |\n\
             | `role` | the node's | operator; a job's `ROLE` unless `job_may_set` leaves it out | a \\| b |\n\
             | `audit_required` | `true` | operator only | whether a fetch fails when its audit line cannot be written |\n\
             <!-- end settings-table -->\n"
        );
        assert!(markdown("common", &[]).contains("| `[[allow]]` |"));
    }

    #[test]
    fn a_missing_file_means_defaults() {
        let env = HashMap::new();
        let settings = Settings::load(Path::new("/nonexistent/p.toml"), SPECS, &env).unwrap();
        assert_eq!(settings.get(&DEADLINE), Some(Duration::from_secs(8)));
        assert_eq!(
            settings.missing(&ROOT, "\"/srv\"").to_string(),
            "the operator has not set `root` in the settings file `/nonexistent/p.toml` (hint: add \
             a line such as `root = \"/srv\"` to that file (mode 0644, owned by root))"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key_but_not_the_value() {
        let cases = [
            (
                "\n\nroott = \"/x\"",
                "settings file `FILE`, line 3: unknown setting `roott` (hint: the settings are: `deadline`, `audit_log`, `audit_required`, `cache_ttl`, `cache_max_stale`, `cache_dir`, `cache_max_entries`, `cache_max_bytes`, `identity_jwks_url`, `identity_jwks_file`, `identity_audience`, `identity_issuer`, `identity_required`, `identity_ca_file`, `root`, `max_size`, `region`, `job_may_set`, `allow`)",
            ),
            (
                "root = \"relative/CANARY\"",
                "settings file `FILE`, line 1: `root` must be an absolute path, like \"/etc/nomad-secrets\"",
            ),
            (
                "deadline = 8",
                "settings file `FILE`, line 1: `deadline` must be a duration between 1ms and 1h with a unit, like \"8s\" or \"500ms\"",
            ),
            (
                "deadline = \"2h\"",
                "settings file `FILE`, line 1: `deadline` must be a duration between 1ms and 1h with a unit, like \"8s\" or \"500ms\"",
            ),
            (
                "max_size = \"1MB\"",
                "settings file `FILE`, line 1: `max_size` must be a size in bytes, like 65536 or \"1MiB\"",
            ),
            (
                "root = \"/x\"\nroot = \"/y\"",
                "settings file `FILE`, line 2: not valid TOML: duplicate key",
            ),
            (
                "root = \"CANARY",
                "settings file `FILE`, line 1: not valid TOML: invalid basic string, expected `\"`",
            ),
            (
                "job_may_set = [\"root\"]",
                "settings file `FILE`, line 1: `job_may_set` names `root`, which only the operator may set: it decides what jobs may read or where credentials are sent",
            ),
            (
                "job_may_set = [\"nope\"]",
                "settings file `FILE`, line 1: `job_may_set` names `nope`, which is not a setting",
            ),
            (
                "job_may_set = \"deadline\"",
                "settings file `FILE`, line 1: `job_may_set` must be a list of setting names, like [\"deadline\"]",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                load("err", text, &[]).unwrap_err(),
                expected,
                "file {text:?}"
            );
        }
    }

    #[test]
    fn a_job_overrides_only_what_the_operator_allows() {
        let denied = load("deny", "", &[("AWS_REGION", "eu-west-1")]).unwrap_err();
        assert_eq!(
            denied,
            "the job's env sets `AWS_REGION`, but the operator's settings file `FILE` does not let \
             jobs override `region` (hint: remove `AWS_REGION` from the secret's env block, or ask \
             the operator to add \"region\" to `job_may_set`)"
        );
        let allowed = load(
            "allow",
            "region = \"us-east-1\"\njob_may_set = [\"region\", \"deadline\"]",
            &[("AWS_REGION", "eu-west-1"), ("SECRETS_DEADLINE", "3s")],
        )
        .unwrap();
        assert_eq!(allowed.get(&REGION), Some("eu-west-1"));
        assert_eq!(allowed.get(&DEADLINE), Some(Duration::from_secs(3)));
        let bad = load(
            "bad",
            "job_may_set = [\"deadline\"]",
            &[("SECRETS_DEADLINE", "soon")],
        )
        .unwrap_err();
        assert_eq!(
            bad,
            "the job's env variable `SECRETS_DEADLINE` must be a duration between 1ms and 1h with \
             a unit, like \"8s\" or \"500ms\""
        );
    }

    #[test]
    fn files_others_could_write_or_nomad_could_run_are_refused() {
        for (mode, expected) in [
            (
                0o664,
                "the settings file `FILE` is writable by group or others (mode 0664), so a job could change what it may read (hint: run `chmod 644 FILE`)",
            ),
            (
                0o755,
                "the settings file `FILE` is executable (mode 0755): Nomad would take it for a plugin (hint: run `chmod 644 FILE`)",
            ),
        ] {
            let (_scratch, file) = write(&format!("mode{mode:o}"), "", mode);
            let error = Settings::load(&file, SPECS, &HashMap::new()).unwrap_err();
            let shown = error
                .to_string()
                .replace(&file.display().to_string(), "FILE");
            assert_eq!(shown, expected);
        }
    }

    #[test]
    fn lists_and_settings_jobs_may_set_by_default() {
        const ROLES: Key<[String]> = Key::list("roles", "roles");
        const REGION: Key<str> = Key::text("region", "region")
            .job_env("AWS_REGION")
            .job_by_default();
        const SPECS: &[Setting] = &[ROLES.setting, REGION.setting];
        let env: HashMap<OsString, OsString> = [("AWS_REGION".into(), "eu-west-1".into())].into();
        let (_scratch, file) = write("lists", "roles = [\"a\", \"b*\"]", 0o644);
        let settings = Settings::load(&file, SPECS, &env).unwrap();
        assert_eq!(settings.get(&ROLES), ["a", "b*"]);
        assert_eq!(
            settings.get(&REGION),
            Some("eu-west-1"),
            "allowed by default"
        );
        let (_scratch, file) = write("locked", "job_may_set = []", 0o644);
        let locked = Settings::load(&file, SPECS, &env).unwrap_err().to_string();
        assert!(
            locked.starts_with("the job's env sets `AWS_REGION`"),
            "{locked}"
        );
        let (_scratch, file) = write("badlist", "roles = [\"\"]", 0o644);
        let bad = Settings::load(&file, SPECS, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            bad.ends_with("`roles` must be a list of non-empty strings, like [\"a\", \"b\"]"),
            "{bad}"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        for bad in ["", "8", "s", "8 s", "-1s", "0s", "1.5s", "61m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("7"), Some(7));
        for bad in ["", "0", "1MB", "1 MiB", "KiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
