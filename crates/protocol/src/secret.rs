//! [`Secret`], a value that cannot be printed by accident, and [`Secrets`], a fetch's result.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// A secret value.
///
/// It has no `Display`, and its `Debug` prints `Secret(REDACTED)`, so a `{:?}` in a log line, an
/// error or a panic message cannot leak it. Code that really needs the value calls
/// [`Secret::expose`], which is easy to find in review.
///
/// ```
/// use nomad_secrets_protocol::Secret;
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "Secret(REDACTED)");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Only the protocol's output and backends' parsers should call this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// The result of a fetch: key -> value, always strings, as Nomad requires.
///
/// Keys are kept in sorted order so the output is the same bytes on every run. `Debug` shows the
/// keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, Secret>);

impl Secrets {
    /// An empty result.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one key; a key given twice is an error that names the key (never the values).
    pub fn insert(&mut self, key: impl Into<String>, value: Secret) -> Result<(), Error> {
        let key = key.into();
        if self.0.contains_key(&key) {
            return Err(Error::invalid_secret(format!(
                "the key `{key}` appears twice in the secret"
            )));
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// Keeps only `key`: the path's `#key` selector. A missing key is an error, never an empty
    /// success; it lists the keys that do exist (their names, never their values).
    pub fn select(mut self, key: &str) -> Result<Self, Error> {
        match self.0.remove_entry(key) {
            Some((key, value)) => Ok(Secrets(BTreeMap::from([(key, value)]))),
            None => Err(Error::not_found(format!(
                "the secret has no key `{key}`; its keys are: {}",
                self.key_list()
            ))),
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.0.get(key)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// `a, b, c` (at most 20 names, then a count), or `(none)`.
    fn key_list(&self) -> String {
        const SHOWN: usize = 20;
        if self.0.is_empty() {
            return "(none)".to_owned();
        }
        let mut list: Vec<String> = self
            .0
            .keys()
            .take(SHOWN)
            .map(|k| format!("`{k}`"))
            .collect();
        if self.0.len() > SHOWN {
            list.push(format!("and {} more", self.0.len() - SHOWN));
        }
        list.join(", ")
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Secrets {
        let mut secrets = Secrets::new();
        secrets.insert("user", Secret::new("admin")).unwrap();
        secrets.insert("password", Secret::new("s3cr3t")).unwrap();
        secrets
    }

    #[test]
    fn debug_never_shows_values() {
        let debug = format!("{:?} {:?}", two(), two().get("password"));
        assert_eq!(debug, r#"{"password", "user"} Some(Secret(REDACTED))"#);
    }

    #[test]
    fn select_keeps_one_key() {
        let one = two().select("user").unwrap();
        assert_eq!(one.keys().collect::<Vec<_>>(), ["user"]);
    }

    #[test]
    fn select_of_a_missing_key_names_the_keys_not_the_values() {
        let error = two().select("pasword").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the secret has no key `pasword`; its keys are: `password`, `user`"
        );
    }

    #[test]
    fn a_key_given_twice_is_an_error() {
        let mut secrets = two();
        let error = secrets.insert("user", Secret::new("x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the key `user` appears twice in the secret"
        );
    }
}
