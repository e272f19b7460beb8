//! From the parameters beneath a prefix to one key each.
//!
//! A key is the name below the prefix with every character outside `[A-Za-z0-9_-]` written `_`:
//! beneath `/app/prod/`, `/app/prod/db/password` is `db_password` and `/app/prod/api.key` is
//! `api_key`. Nomad interpolates only `[A-Za-z0-9_.-]` keys and a dot means nesting, so `/` and
//! `.` cannot stay. Two parameters that give the same key are an error naming both, never one
//! silently winning. Values are the parameters' text as stored (a JSON value stays one string).

use std::collections::BTreeMap;

use nomad_secrets_protocol::{Error, Secret, Secrets};

/// The key of parameter `name` beneath `prefix`.
pub fn key(prefix: &str, name: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => c,
            _ => '_',
        })
        .collect()
}

/// One key per parameter of `found` (name, value).
pub fn secrets(prefix: &str, found: Vec<(String, String)>) -> Result<Secrets, Error> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut secrets = Secrets::new();
    for (name, value) in found {
        let key = key(prefix, &name);
        if let Some(first) = names.get(&key) {
            return Err(Error::invalid_secret(format!(
                "parameters `{first}` and `{name}` beneath `{prefix}` both give the key `{key}`"
            ))
            .hint("rename one of them, or read each by its name"));
        }
        names.insert(key.clone(), name);
        secrets.insert(key, Secret::new(value))?;
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_interpolable_and_collisions_name_both() {
        assert_eq!(key("/app/prod/", "/app/prod/db/password"), "db_password");
        assert_eq!(key("/app/prod/", "/app/prod/api.key"), "api_key");
        assert_eq!(key("/", "/x-y_z"), "x-y_z");
        let two = vec![
            ("/a/db/password".to_owned(), "CANARY-1".to_owned()),
            ("/a/db_password".to_owned(), "CANARY-2".to_owned()),
        ];
        let error = secrets("/a/", two).unwrap_err().to_string();
        assert_eq!(
            error,
            "parameters `/a/db/password` and `/a/db_password` beneath `/a/` both give the key `db_password` (hint: rename one of them, or read each by its name)"
        );
    }
}
