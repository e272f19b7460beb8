//! The one error type every backend returns.
//!
//! Its text is shown to the job's author by Nomad (`response contained error: "..."`), so it says
//! what failed and what to do, and it must never hold a secret value: constructors take messages
//! written by our code, never text produced from a secret's contents.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

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

/// A failure, with a message for the job author and an optional hint on how to fix it, and the
/// lower-level error it came from, if any: kept for classification by type ([`Error::cause`],
/// `source()`), never printed, since its text may quote what a server or a file said. `Debug`
/// names the cause's type only.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    cause: Option<Cause>,
}

/// The error an [`Error`] came from, and its type's name for `Debug`.
#[derive(Clone)]
struct Cause {
    error: Arc<dyn StdError + Send + Sync>,
    type_name: &'static str,
}

/// Equal when what is printed and the kind are: the cause is not part of the answer.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        (self.kind, &self.message, &self.hint) == (other.kind, &other.message, &other.hint)
    }
}

impl Eq for Error {}

impl Error {
    /// A new error; `message` says what failed, without a trailing period.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            cause: None,
        }
    }

    /// Keeps `cause`, the error this one describes, as its source: callers may look for a type
    /// in it ([`Error::cause`]); nothing ever prints it.
    #[must_use]
    pub fn because(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        self.cause = Some(Cause {
            type_name: std::any::type_name_of_val(&cause),
            error: Arc::new(cause),
        });
        self
    }

    /// The first error of type `E` this one came from (see [`find_cause`]).
    pub fn cause<E: StdError + 'static>(&self) -> Option<&E> {
        find_cause(self.cause.as_ref()?.error.as_ref())
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
        write!(f, "{:?}: {self}", self.kind)?;
        if let Some(cause) = &self.cause {
            write!(f, " [cause: a {}]", cause.type_name)?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let cause = self.cause.as_ref()?;
        Some(cause.error.as_ref() as &(dyn StdError + 'static))
    }
}

/// The first error of type `E` in `error`'s source chain, `error` included, looking also inside
/// I/O errors' payloads (a TLS stream puts rustls's error there, hyper wraps that I/O error in
/// another), which `source()` skips.
pub fn find_cause<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(payload) => Some(payload as &(dyn StdError + 'static)),
                None => io.source(),
            },
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_hint_after_the_message() {
        let error = Error::not_found("no secret file `a`").hint("create it");
        assert_eq!(error.to_string(), "no secret file `a` (hint: create it)");
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn a_cause_is_found_by_type_and_never_printed() {
        let io = std::io::Error::other("the server said CANARY-secret");
        let error = Error::unavailable("the store failed").because(io);
        assert_eq!(error.to_string(), "the store failed");
        let debug = format!("{error:?}");
        assert!(!debug.contains("CANARY"), "{debug}");
        assert!(debug.contains("std::io::error::Error"), "{debug}");
        assert!(error.cause::<std::io::Error>().is_some());
        assert!(error.cause::<fmt::Error>().is_none());
        assert!(StdError::source(&error).is_some());
        assert_eq!(error, Error::unavailable("the store failed"));
    }
}
