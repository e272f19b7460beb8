//! The Nomad secret-provider plugin protocol, shared by every backend.
//!
//! # What it owns
//! Nomad runs `<plugin> fingerprint` and `<plugin> fetch <path>` with a cleared environment and
//! reads one JSON value from stdout (see `docs/CONTRACT.md`). This crate alone touches argv, the
//! environment, stdout, stderr and the exit status; a backend implements [`Backend`] and its
//! `main.rs` is one line:
//!
//! ```no_run
//! use nomad_secrets_protocol::{Backend, Error, Request, Secret, Secrets, Setting, Settings};
//!
//! struct Static;
//!
//! impl Backend for Static {
//!     const NAME: &'static str = "static";
//!     const SETTINGS: &'static [Setting] = &[];
//!     const OPTIONS: &'static [&'static str] = &[];
//!
//!     fn new(_settings: &Settings) -> Result<Static, Error> {
//!         Ok(Static)
//!     }
//!
//!     fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
//!         let mut secrets = Secrets::new();
//!         secrets.insert("name", Secret::new(request.path.locator()))?;
//!         Ok(secrets)
//!     }
//! }
//!
//! fn main() {
//!     nomad_secrets_protocol::main::<Static>()
//! }
//! ```
//!
//! # Invariants
//! - stdout holds exactly one JSON value: the fingerprint, `{"result":{...}}` with string values,
//!   or `{"error":"..."}`.
//! - Under Nomad (`CPI_OPERATION` set) errors exit 0 and nothing is ever written to stderr.
//! - The run ends by its deadline, on SIGTERM, or on a panic, each with a protocol error.
//! - Secret values live in [`Secret`], which has no `Display` and a redacted `Debug`.
//!
//! # Modules
//! [`path`] parses the path grammar, [`convert`] holds the conversion policy, [`settings`] reads
//! the operator's settings file.
#![deny(missing_docs)]

mod audit;
mod cache;
pub mod convert;
pub mod dotenv;
mod error;
pub mod identity;
pub mod job_input;
/// The exact stdout of a run, for the fuzz targets in `fuzz/`. Always compiled, so that the
/// lints and tests see it; nothing else calls it.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::output::{error_json, result_json};
}
mod output;
pub mod path;
pub mod policy;
mod run;
mod secret;
pub mod settings;

#[cfg(test)]
mod properties;

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Instant;

pub use error::{Error, ErrorKind, find_cause};
pub use identity::Identity;
pub use job_input::{JobInput, Meaning, Variable};
pub use output::on_exit;
pub use path::SecretPath;
pub use run::main;
pub use secret::{Secret, Secrets};
pub use settings::{Key, Kind, Setting, Settings};

/// One secret backend: the only thing a plugin implements. A backend is a value: built from
/// the operator's settings by [`Backend::new`] (its clients set up, nothing sent), then asked
/// to [`fetch`](Backend::fetch) or [`check`](Backend::check). Tests and fuzz targets build the
/// same value with an in-memory transport through the backend's own constructors.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The name the plugin is installed under (`secrets/<NAME>`), used in messages.
    const NAME: &'static str;
    /// The settings it reads from its settings file, besides the common ones.
    const SETTINGS: &'static [Setting];
    /// The option names its paths accept (`?version=3`).
    const OPTIONS: &'static [&'static str];
    /// Every variable a job's `env {}` may pass, and what it is (see [`job_input`]): checked
    /// by the protocol before the backend runs; anything undeclared is refused. The variables
    /// of settings a job may override need no declaration here.
    const JOB_INPUT: &'static [Variable] = &[];

    /// Names the operator lets a job hand to the backend's CLI as they are (`command`'s
    /// `job_env`), besides [`Backend::JOB_INPUT`]. An unsafe name is a settings error.
    fn passed_through(settings: &Settings) -> Result<Vec<String>, Error> {
        let _ = settings;
        Ok(Vec::new())
    }

    /// The backend for one run, from `settings` (the job's permitted overrides applied). Runs
    /// on the fetch thread, within the deadline, and only when the store must be asked (not
    /// for an answer the node-local cache holds).
    fn new(settings: &Settings) -> Result<Self, Error>;

    /// Fetches the secret `request.path` names. Runs on a worker thread; if it does not return
    /// by `request.deadline` the protocol reports a timeout and exits without waiting for it.
    /// The `#key` selector is applied afterwards by the protocol.
    fn fetch(&self, request: &Request) -> Result<Secrets, Error>;

    /// The path the backend will really read for `locator`, which the operator's access policy
    /// is matched against: the same secret must always give the same text, whatever way the job
    /// wrote it. `settings` (the job's permitted overrides applied) completes a short name, such
    /// as a secret of the configured project. The default is the locator itself. A function of
    /// the text alone, so that a denied path costs no backend set-up.
    fn normalise(locator: &str, settings: &Settings) -> Result<String, Error> {
        let _ = settings;
        Ok(locator.to_owned())
    }

    /// Whether `settings` exchange a job's verified workload identity for credentials of its
    /// own in the store (an AWS role, a Vault JWT login). Then, where the operator verifies
    /// identities, a run without one (and without a credential of the job's) is denied rather
    /// than served with the node's credentials.
    fn exchanges_identity(settings: &Settings) -> bool {
        let _ = settings;
        false
    }

    /// For `<plugin> check`: proves the backend is reachable and the node's credentials work,
    /// without reading a secret; returns one line saying what was proved. `settings` are the
    /// operator's, as [`Backend::new`] had them.
    fn check(&self, settings: &Settings, deadline: Instant) -> Result<String, Error> {
        let _ = (settings, deadline);
        Ok("this plugin has no backend check".to_owned())
    }
}

/// Everything a backend gets for one fetch.
#[derive(Debug)]
pub struct Request {
    /// The parsed secret path.
    pub path: SecretPath,
    /// The operator's settings, with the job's permitted overrides applied.
    pub settings: Settings,
    /// The environment Nomad passed, unchecked: the job's `env {}` block, `NOMAD_JOB_ID`,
    /// `NOMAD_NAMESPACE`. Backends read [`Request::input`] instead.
    pub env: HashMap<OsString, OsString>,
    /// The job's input as the backend's declarations allow it (by hand, the person's own).
    pub input: JobInput,
    /// When the protocol will give up; network calls should time out before it.
    pub deadline: Instant,
    /// True when run by hand rather than by Nomad.
    pub manual: bool,
    /// `NOMAD_NAMESPACE` (empty when run by hand).
    pub namespace: String,
    /// The job as Nomad identifies it (empty when run by hand): `NOMAD_JOB_ID`, or for a
    /// dispatched or periodic run its parent's ID (see [`policy::job_identity`]).
    pub job: String,
    /// `NOMAD_JOB_ID` itself: a dispatched or periodic run's own ID (empty when run by hand).
    pub instance: String,
    /// The job's verified workload identity, when it passed `NOMAD_WORKLOAD_IDENTITY` and the
    /// operator configured verification (see [`identity`]): its token may be exchanged for
    /// credentials of the job's own.
    pub identity: Option<Identity>,
}

impl Request {
    /// Checks `path` against the operator's access policy, for backends that learn only while
    /// reading which path they really read (a symlink's target, say). The protocol has already
    /// checked the normalised path before the backend ran.
    pub fn check_policy(&self, path: &str) -> Result<(), Error> {
        let caller = policy::Caller {
            namespace: &self.namespace,
            job: &self.job,
            group: self.identity.as_ref().and_then(|i| i.group.as_deref()),
            task: self.identity.as_ref().and_then(|i| i.task.as_deref()),
        };
        policy::check(&self.settings, caller, path)
    }

    /// For backends whose real read is wider than the path the protocol checked (a Vault
    /// namespace the job chose in front of it): checks `path`, what is really read, against the
    /// access policy too, and records it as the audit line's `read`.
    pub fn really_reads(&self, path: &str) -> Result<(), Error> {
        crate::audit::read(path);
        self.check_policy(path)
    }

    /// A variable the job passed (checked against the backend's declarations), or by hand one
    /// of the person's environment.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.input.get(name)
    }
}
