//! The one error type every backend returns.
//!
//! Its text is shown to the job's author by Nomad (`response contained error: "..."`), so it says
//! what failed and what to do, and it must never hold a secret value: constructors take messages
//! written by our code, never text produced from a secret's contents.

use std::fmt;

/// What kind of failure this is, so that every backend classifies the same situation the same
/// way: it is the audit line's `outcome`, and what callers branch on (never the message text,
/// which is the backend's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command line was not one Nomad sends (`fingerprint` or `fetch <path>`).
    Usage,
    /// The job's secret path does not follow the path grammar, or names an unknown option.
    InvalidPath,
    /// The operator's settings file is missing a value, or is broken, or a job tried to override
    /// a setting it may not.
    Settings,
    /// The secret, version or key does not exist.
    NotFound,
    /// The backend refused access, or the path tries to leave what the operator allows.
    Denied,
    /// The secret exists but its contents cannot be turned into a result (bad JSON, too large).
    InvalidSecret,
    /// The backend could not be reached or failed; trying again later may work.
    Unavailable,
    /// The run's deadline passed, or Nomad stopped the plugin.
    Timeout,
    /// A bug in the plugin (a panic); never the caller's fault.
    Internal,
}

/// A failure, with a message for the job author and an optional hint on how to fix it.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
}

impl Error {
    /// A new error; `message` says what failed, without a trailing period.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what the reader should do next, shown after the message.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Denied`].
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }

    /// Shorthand for [`ErrorKind::InvalidSecret`].
    pub fn invalid_secret(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSecret, message)
    }

    /// Shorthand for [`ErrorKind::InvalidPath`].
    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidPath, message)
    }

    /// Shorthand for [`ErrorKind::Settings`].
    pub fn settings(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Settings, message)
    }

    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}

/// `message (hint: ...)`: the text that ends up in `{"error": ...}`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {self}", self.kind)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_hint_after_the_message() {
        let error = Error::not_found("no secret file `a`").hint("create it");
        assert_eq!(error.to_string(), "no secret file `a` (hint: create it)");
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }
}
