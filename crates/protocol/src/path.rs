//! The secret path grammar shared by every backend, parsed once, here.
//!
//! ```text
//! path     = locator [ "?" option *( "&" option ) ] [ "#" key ]
//! option   = name "=" value
//! ```
//!
//! - `locator` says which secret (a file, a secret id, a Vault path); the backend interprets it.
//! - Options change how it is read (`version=3`). Each backend lists the options it knows; an
//!   unknown, repeated or empty option is an error, so a typo can never fetch the wrong version.
//! - `#key` keeps one key of the result; a key that is not there is an error.
//! - `%XX` escapes a byte in any part, so `%3F`, `%23`, `%26`, `%3D` and `%25` write a literal
//!   `?`, `#`, `&`, `=` and `%`. A `%` not followed by two hex digits is an error. `+` is a plus.
//! - The decoded locator may not be empty or hold control characters.

use std::collections::BTreeMap;

use crate::Error;

/// A parsed secret path. Every part is percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPath {
    locator: String,
    options: BTreeMap<String, String>,
    key: Option<String>,
}

impl SecretPath {
    /// Parses `raw`, accepting only the option names in `known_options`.
    pub fn parse(raw: &str, known_options: &[&str]) -> Result<SecretPath, Error> {
        let (rest, key) = match raw.split_once('#') {
            Some((rest, key)) => (rest, Some(key)),
            None => (raw, None),
        };
        let (locator, query) = match rest.split_once('?') {
            Some((locator, query)) => (locator, Some(query)),
            None => (rest, None),
        };

        let locator = decode(locator, "the secret's name")?;
        if locator.is_empty() {
            return Err(Error::invalid_path("the path names no secret")
                .hint("write `<name>[?option=value&...][#key]`, for example `prod/db#password`"));
        }
        if locator.chars().any(char::is_control) {
            return Err(Error::invalid_path(
                "the secret's name holds a control character",
            ));
        }

        let key = match key {
            None => None,
            Some("") => {
                return Err(Error::invalid_path("nothing follows `#`")
                    .hint("write `#<key>` to keep one key, or remove the `#`"));
            }
            Some(key) => Some(decode(key, "the key after `#`")?),
        };

        let mut options = BTreeMap::new();
        if let Some(query) = query {
            if query.is_empty() {
                return Err(Error::invalid_path("nothing follows `?`")
                    .hint("write `?<option>=<value>`, or remove the `?`"));
            }
            for pair in query.split('&') {
                let (name, value) = parse_option(pair, known_options)?;
                if options.contains_key(&name) {
                    return Err(Error::invalid_path(format!(
                        "the option `{name}` is given twice"
                    )));
                }
                options.insert(name, value);
            }
        }

        Ok(SecretPath {
            locator,
            options,
            key,
        })
    }

    /// Which secret, as the backend will interpret it.
    pub fn locator(&self) -> &str {
        &self.locator
    }

    /// The value of option `name`, if the path gave one.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// The `#key` selector, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

fn parse_option(pair: &str, known_options: &[&str]) -> Result<(String, String), Error> {
    let Some((name, value)) = pair.split_once('=') else {
        return Err(match pair {
            "" => Error::invalid_path("an empty option (`&&`, or `&` at an end)"),
            _ => Error::invalid_path(format!("the option `{pair}` has no value"))
                .hint(format!("write `{pair}=<value>`")),
        });
    };
    let name = decode(name, "an option name")?;
    if !known_options.contains(&name.as_str()) {
        let known = match known_options {
            [] => "this plugin takes no options".to_owned(),
            known => format!(
                "the options are: {}",
                known
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::invalid_path(format!("unknown option `{name}`")).hint(known));
    }
    let value = decode(value, "an option value")?;
    if value.is_empty() {
        return Err(Error::invalid_path(format!("the option `{name}` is empty")));
    }
    Ok((name, value))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn decode(text: &str, what: &str) -> Result<String, Error> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::invalid_path(format!(
                    "{what} has a `%` that is not followed by two hex digits"
                ))
                .hint("write `%25` for a literal `%`"));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::invalid_path(format!("{what} decodes to bytes that are not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[&str] = &["version", "stage"];

    fn parse(raw: &str) -> Result<SecretPath, String> {
        SecretPath::parse(raw, OPTIONS).map_err(|e| e.to_string())
    }

    #[test]
    fn locator_only() {
        let path = parse("prod/db").unwrap();
        assert_eq!(path.locator(), "prod/db");
        assert_eq!(path.key(), None);
        assert_eq!(path.option("version"), None);
    }

    #[test]
    fn all_parts() {
        let path = parse("prod/db?version=3&stage=AWSPREVIOUS#password").unwrap();
        assert_eq!(path.locator(), "prod/db");
        assert_eq!(path.option("version"), Some("3"));
        assert_eq!(path.option("stage"), Some("AWSPREVIOUS"));
        assert_eq!(path.key(), Some("password"));
    }

    #[test]
    fn escapes_write_reserved_characters() {
        let path = parse("a%3Fb%23c%25 d+e ${x}#k%23ey").unwrap();
        assert_eq!(path.locator(), "a?b#c% d+e ${x}");
        assert_eq!(path.key(), Some("k#ey"));
        let path = parse("x?version=a%26b%3Dc").unwrap();
        assert_eq!(path.option("version"), Some("a&b=c"));
    }

    #[test]
    fn a_hash_before_a_question_mark_belongs_to_the_key() {
        let path = parse("x#a?b").unwrap();
        assert_eq!(path.locator(), "x");
        assert_eq!(path.key(), Some("a?b"));
    }

    #[test]
    fn errors() {
        let cases = [
            (
                "",
                "the path names no secret (hint: write `<name>[?option=value&...][#key]`, for example `prod/db#password`)",
            ),
            (
                "?version=1",
                "the path names no secret (hint: write `<name>[?option=value&...][#key]`, for example `prod/db#password`)",
            ),
            (
                "a#",
                "nothing follows `#` (hint: write `#<key>` to keep one key, or remove the `#`)",
            ),
            (
                "a?",
                "nothing follows `?` (hint: write `?<option>=<value>`, or remove the `?`)",
            ),
            (
                "a?versoin=2",
                "unknown option `versoin` (hint: the options are: `version`, `stage`)",
            ),
            (
                "a?version",
                "the option `version` has no value (hint: write `version=<value>`)",
            ),
            ("a?version=", "the option `version` is empty"),
            (
                "a?version=1&version=2",
                "the option `version` is given twice",
            ),
            ("a?version=1&", "an empty option (`&&`, or `&` at an end)"),
            (
                "100%",
                "the secret's name has a `%` that is not followed by two hex digits (hint: write `%25` for a literal `%`)",
            ),
            (
                "a%zz",
                "the secret's name has a `%` that is not followed by two hex digits (hint: write `%25` for a literal `%`)",
            ),
            (
                "a%ff",
                "the secret's name decodes to bytes that are not UTF-8",
            ),
            ("a%0Ab", "the secret's name holds a control character"),
            (
                "a#%",
                "the key after `#` has a `%` that is not followed by two hex digits (hint: write `%25` for a literal `%`)",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse(raw).unwrap_err(), expected, "path {raw:?}");
        }
    }

    #[test]
    fn a_plugin_without_options_says_so() {
        let error = SecretPath::parse("a?x=1", &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown option `x` (hint: this plugin takes no options)"
        );
    }
}
