//! The one conversion policy from a backend's raw secret to Nomad's `string -> string` result.
//!
//! | secret                         | result                                                |
//! |--------------------------------|-------------------------------------------------------|
//! | JSON object                    | one key per top-level field                           |
//! | - field that is a string       | the string itself                                     |
//! | - field that is a number/bool  | its JSON text, exactly as written (`1.50`, `true`)    |
//! | - field that is null           | the empty string                                      |
//! | - field that is object/array   | its compact JSON text (`{"a":1}`)                     |
//! | any other JSON (string, array) | one key, [`VALUE_KEY`], as above                      |
//! | text that is not JSON          | one key, [`VALUE_KEY`], the text itself               |
//! | bytes that are not UTF-8       | one key, [`BASE64_KEY`], standard base64 with padding |
//!
//! A top-level field given twice is an error: JSON parsers disagree on which one wins, and a
//! secret must not depend on that.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer as _, MapAccess, Visitor};
use serde_json::Value;

use crate::{Error, Secret, Secrets};

/// The key of a secret that is a single value.
pub const VALUE_KEY: &str = "value";
/// The key of a single binary value, base64-encoded.
pub const BASE64_KEY: &str = "value_base64";

impl Secrets {
    /// Parses `text` as JSON and converts it by the policy above. Errors name the line and column,
    /// never the text.
    pub fn from_json(text: &str) -> Result<Secrets, Error> {
        if text.trim_start().starts_with('{') {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let secrets = deserializer
                .deserialize_map(UniqueFields)
                .and_then(|secrets| deserializer.end().map(|()| secrets))
                .map_err(json_error)?;
            return Ok(secrets);
        }
        let value: Value = serde_json::from_str(text).map_err(json_error)?;
        if value.is_null() {
            return Err(Error::invalid_secret(
                "the secret is JSON `null`, not a value",
            ));
        }
        Ok(Secrets::single(VALUE_KEY, json_text(value)))
    }

    /// A secret string that may hold a JSON object (as AWS Secrets Manager's console writes
    /// them): an object gives one key per field; anything else is one [`VALUE_KEY`], verbatim.
    /// An object with a field given twice is an error, as for every JSON secret: taken as text
    /// it would hide what the job asked for behind a `value` it never expected.
    pub fn from_text_or_json_object(text: String) -> Result<Secrets, Error> {
        if text.trim_start().starts_with('{') {
            let mut deserializer = serde_json::Deserializer::from_str(&text);
            match deserializer
                .deserialize_map(UniqueFields)
                .and_then(|secrets| deserializer.end().map(|()| secrets))
            {
                Ok(secrets) => return Ok(secrets),
                Err(error) if error.is_data() => return Err(json_error(error)),
                Err(_) => {}
            }
        }
        Ok(Secrets::single(VALUE_KEY, text))
    }

    /// Raw bytes: [`VALUE_KEY`] when they are UTF-8 text, [`BASE64_KEY`] otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Secrets {
        match String::from_utf8(bytes) {
            Ok(text) => Secrets::single(VALUE_KEY, text),
            Err(not_utf8) => Secrets::binary(&not_utf8.into_bytes()),
        }
    }

    /// Bytes declared binary by the backend: always [`BASE64_KEY`], even when they happen to be
    /// text, so a job always finds the key it was told about.
    pub fn binary(bytes: &[u8]) -> Secrets {
        Secrets::single(BASE64_KEY, base64_text(bytes))
    }

    fn single(key: &str, value: String) -> Secrets {
        let mut secrets = Secrets::new();
        secrets
            .insert(key, Secret::new(value))
            .expect("an empty map has no duplicate key");
        secrets
    }
}

/// Standard base64 with padding, the encoding `base64 -d` and Go's `base64.StdEncoding` read.
pub fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The result text of one JSON value: strings as themselves, null as "", everything else as
/// compact JSON.
pub fn json_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// serde_json's syntax messages are fixed phrases plus a position; they never quote the input.
fn json_error(error: serde_json::Error) -> Error {
    if error.is_data() {
        // Only our own visitor produces data errors (a duplicate field, named by key).
        return Error::invalid_secret(format!("invalid JSON secret: {error}"));
    }
    let what = match error.classify() {
        serde_json::error::Category::Eof => "the JSON ends too early",
        _ => "invalid JSON",
    };
    Error::invalid_secret(format!(
        "{what} at line {}, column {}",
        error.line(),
        error.column()
    ))
}

/// Visits a top-level JSON object, failing on a field given twice.
struct UniqueFields;

impl<'de> Visitor<'de> for UniqueFields {
    type Value = Secrets;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secrets, A::Error> {
        let mut secrets = Secrets::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if secrets.get(&key).is_some() {
                return Err(de::Error::custom(format_args!(
                    "the field `{key}` appears twice"
                )));
            }
            secrets
                .insert(key, Secret::new(json_text(value)))
                .map_err(|e| de::Error::custom(e.message()))?;
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(secrets: &Secrets) -> Vec<(String, String)> {
        secrets
            .iter()
            .map(|(k, v)| (k.to_owned(), v.expose().to_owned()))
            .collect()
    }

    #[test]
    fn object_fields_become_strings_by_the_policy() {
        let secrets = Secrets::from_json(
            r#"{"s":"x","n":12345678901234567890123,"f":1.50,"b":true,"z":null,"o":{"a":[1, 2]}}"#,
        )
        .unwrap();
        assert_eq!(
            pairs(&secrets),
            [
                ("b", "true"),
                ("f", "1.50"),
                ("n", "12345678901234567890123"),
                ("o", r#"{"a":[1,2]}"#),
                ("s", "x"),
                ("z", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn other_json_is_one_value() {
        assert_eq!(
            pairs(&Secrets::from_json(r#" [1, "a"] "#).unwrap()),
            [("value".to_owned(), r#"[1,"a"]"#.to_owned())]
        );
        assert_eq!(
            pairs(&Secrets::from_json(r#""plain""#).unwrap()),
            [("value".to_owned(), "plain".to_owned())]
        );
    }

    #[test]
    fn null_is_an_error() {
        let error = Secrets::from_json("null").unwrap_err();
        assert_eq!(error.to_string(), "the secret is JSON `null`, not a value");
    }

    #[test]
    fn a_duplicate_field_is_an_error_naming_the_field_only() {
        let error = Secrets::from_json(r#"{"a":"CANARY-1","a":"CANARY-2"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid JSON secret: the field `a` appears twice at line 1 column 31"
        );
    }

    #[test]
    fn syntax_errors_give_a_position_and_never_the_text() {
        let error = Secrets::from_json("{\"a\": CANARY-3}").unwrap_err();
        assert_eq!(error.to_string(), "invalid JSON at line 1, column 7");
        let error = Secrets::from_json("{\"a\": \"CANARY-4\"").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the JSON ends too early at line 1, column 16"
        );
        let error = Secrets::from_json("{\"a\": 1} CANARY-5").unwrap_err();
        assert_eq!(error.to_string(), "invalid JSON at line 1, column 10");
    }

    #[test]
    fn text_or_json_object() {
        let object = Secrets::from_text_or_json_object(r#"{"user":"u"}"#.into()).unwrap();
        assert_eq!(pairs(&object), [("user".to_owned(), "u".to_owned())]);
        for text in ["123", "{not json", "[1]", ""] {
            let one = Secrets::from_text_or_json_object(text.into()).unwrap();
            assert_eq!(pairs(&one), [("value".to_owned(), text.to_owned())]);
        }
        let twice = Secrets::from_text_or_json_object(r#"{"a":"CANARY","a":"x"}"#.into());
        let error = twice.unwrap_err().to_string();
        assert!(
            error.contains("`a`") && !error.contains("CANARY"),
            "{error}"
        );
    }

    #[test]
    fn bytes_are_text_or_named_base64() {
        assert_eq!(
            pairs(&Secrets::from_bytes(b"abc".to_vec())),
            [("value".to_owned(), "abc".to_owned())]
        );
        assert_eq!(
            pairs(&Secrets::from_bytes(vec![0xff, 0x00, 0x41])),
            [("value_base64".to_owned(), "/wBB".to_owned())]
        );
        assert_eq!(
            pairs(&Secrets::binary(b"abc")),
            [("value_base64".to_owned(), "YWJj".to_owned())]
        );
    }
}
