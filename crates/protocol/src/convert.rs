//! The one conversion policy from a backend's raw secret to Nomad's `string -> string` result.
//!
//! | secret                         | result                                                |
//! |--------------------------------|-------------------------------------------------------|
//! | JSON object                    | one key per top-level field                           |
//! | - field that is a string       | the string itself                                     |
//! | - field that is a number/bool  | its JSON text, exactly as written (`1.50`, `1E5`)     |
//! | - field that is null           | the empty string                                      |
//! | - field that is object/array   | its JSON text as written, without white space         |
//! | any other JSON (string, array) | one key, [`VALUE_KEY`], as above                      |
//! | text that is not JSON          | one key, [`VALUE_KEY`], the text itself               |
//! | bytes that are not UTF-8       | one key, [`BASE64_KEY`], standard base64 with padding |
//!
//! A top-level field given twice is an error: JSON parsers disagree on which one wins, and a
//! secret must not depend on that. JSON nested deeper than [`MAX_DEPTH`] levels is an error
//! too, for every backend (even where the text could be served as a plain value): parsers
//! disagree on their limits, and a secret must never lose its fields to one of them.
//!
//! Values are never re-printed through a parser's number type: the text of each field is cut
//! out of the secret as written (after the whole text was checked to be JSON), so `1E5`,
//! `-0`, `1.50` or `12345678901234567890123` come back exactly, nested or not.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::{Error, Secret, Secrets};

/// The key of a secret that is a single value.
pub const VALUE_KEY: &str = "value";
/// The key of a single binary value, base64-encoded.
pub const BASE64_KEY: &str = "value_base64";
/// The deepest nesting of objects and arrays a JSON secret may have (the top level is 1).
pub const MAX_DEPTH: usize = 127;

impl Secrets {
    /// Parses `text` as JSON and converts it by the policy above. Errors name the line and column,
    /// never the text.
    pub fn from_json(text: &str) -> Result<Secrets, Error> {
        if text.trim_start().starts_with('{') {
            check_object(text).map_err(json_error)?;
            check_depth(text)?;
            strictly_json(text).map_err(json_error)?;
            return object_fields(text);
        }
        serde_json::from_str::<IgnoredAny>(text).map_err(json_error)?;
        check_depth(text)?;
        strictly_json(text).map_err(json_error)?;
        let raw = text.trim_matches(JSON_SPACE);
        if raw == "null" {
            return Err(Error::invalid_secret(
                "the secret is JSON `null`, not a value",
            ));
        }
        Ok(Secrets::single(VALUE_KEY, raw_text(raw)))
    }

    /// A secret string that may hold a JSON object (as AWS Secrets Manager's console writes
    /// them): an object gives one key per field; anything else is one [`VALUE_KEY`], verbatim.
    /// An object with a field given twice, or nested deeper than [`MAX_DEPTH`], is an error, as
    /// for every JSON secret: taken as text it would hide what the job asked for behind a
    /// `value` it never expected.
    pub fn from_text_or_json_object(text: String) -> Result<Secrets, Error> {
        if text.trim_start().starts_with('{') {
            match check_object(&text) {
                Ok(()) => {
                    check_depth(&text)?;
                    if strictly_json(&text).is_ok() {
                        return object_fields(&text);
                    }
                }
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

/// The result text of one parsed JSON value: strings as themselves, null as "", everything
/// else as compact JSON. The secrets themselves are converted from their text, not through
/// this (a parsed number may be re-spelled: `1E5` is `1e+5` here).
pub fn json_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// JSON's white space (RFC 8259: space, tab, line feed, carriage return).
const JSON_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Checks that `text` is one JSON object with no field given twice (a data error naming the
/// field) and otherwise valid JSON (a syntax error). Values are skipped without recursion, so
/// depth is checked apart ([`check_depth`]).
fn check_object(text: &str) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.deserialize_map(UniqueFields)?;
    deserializer.end()
}

/// Checks `text` as a full JSON parser does: skipping a value (as [`check_object`] does) leaves
/// some text unchecked (a `\u` escape of half a surrogate pair), which would then reach a job
/// as "JSON" no other parser reads. Run after [`check_depth`], whose limit the parser's own
/// recursion limit allows.
fn strictly_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Value>(text).map(|_| ())
}

/// The fields of `text`, a JSON object [`check_object`] accepted, each cut out as written.
fn object_fields(text: &str) -> Result<Secrets, Error> {
    check_depth(text)?;
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0) + 1; // past `{`
    let mut secrets = Secrets::new();
    loop {
        at = skip_space(bytes, at);
        if bytes.get(at) != Some(&b'"') {
            break; // `}`: an empty object
        }
        let key_end = skip_value(bytes, at);
        let key: String = serde_json::from_str(&text[at..key_end])
            .map_err(|_| Error::invalid_secret("invalid JSON: a field name cannot be read"))?;
        at = skip_space(bytes, key_end) + 1; // past `:`
        at = skip_space(bytes, at);
        let value_end = skip_value(bytes, at);
        secrets.insert(key, Secret::new(raw_text(&text[at..value_end])))?;
        at = skip_space(bytes, value_end);
        if bytes.get(at) != Some(&b',') {
            break; // `}`
        }
        at += 1;
    }
    Ok(secrets)
}

/// The result text of one JSON value as written (already checked to be JSON): a string
/// decoded, `null` as "", numbers and booleans verbatim, objects and arrays without the white
/// space between their tokens.
fn raw_text(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw).unwrap_or_default(),
        Some(b'{' | b'[') => compact(raw),
        _ if raw == "null" => String::new(),
        _ => raw.to_owned(),
    }
}

/// `raw` without the white space outside its strings.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if JSON_SPACE.contains(&c) {
            continue;
        }
        out.push(c);
    }
    out
}

/// The first index at or after `at` that is not JSON white space.
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// The end of the (valid) JSON value that starts at `at`: a string, an object or array (to its
/// matching bracket, strings inside skipped), or a literal or number (to the next delimiter).
fn skip_value(bytes: &[u8], start: usize) -> usize {
    let mut at = start;
    let mut depth = 0usize;
    let mut in_string = false;
    while let Some(&b) = bytes.get(at) {
        at += 1;
        if in_string {
            match b {
                b'\\' => at += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return at;
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return at;
                }
            }
            b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return at - 1,
            _ => {}
        }
    }
    at
}

/// An error when `text` (valid JSON) nests objects and arrays deeper than [`MAX_DEPTH`].
fn check_depth(text: &str) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Error::invalid_secret(format!(
                        "invalid JSON secret: nested deeper than {MAX_DEPTH} levels"
                    ))
                    .hint("flatten the secret: its fields must not be lost to a parser's limit"));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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

/// Visits a top-level JSON object, failing on a field given twice. Values are skipped (serde
/// skips without recursion, whatever their depth); [`object_fields`] reads them as written.
struct UniqueFields;

impl<'de> Visitor<'de> for UniqueFields {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "the field `{key}` appears twice"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_depth_limit_is_within_the_parsers() {
        let deepest = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(strictly_json(&deepest).is_ok(), "{MAX_DEPTH} levels parse");
        let object = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(Secrets::from_json(&object).is_ok());
    }

    #[test]
    fn half_a_surrogate_pair_is_not_json() {
        let text = r#"{"a":{"k\ud800":"C"},"b":"x"}"#;
        assert!(Secrets::from_json(text).is_err());
        let lenient = Secrets::from_text_or_json_object(text.to_owned()).unwrap();
        assert_eq!(lenient.get("value").unwrap().expose(), text);
    }
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
    fn numbers_come_back_exactly_as_written() {
        let secrets = Secrets::from_json(
            r#"{"n": 1E5, "m": -0, "e": 2.5e-3, "o": {"x": 1E+2 , "s": "\u00e9"}}"#,
        )
        .unwrap();
        assert_eq!(
            pairs(&secrets),
            [
                ("e", "2.5e-3"),
                ("m", "-0"),
                ("n", "1E5"),
                ("o", r#"{"x":1E+2,"s":"\u00e9"}"#),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            pairs(&Secrets::from_json(" 1E5\n").unwrap()),
            [("value".to_owned(), "1E5".to_owned())]
        );
        let text = Secrets::from_text_or_json_object(r#"{"n":1E5}"#.into()).unwrap();
        assert_eq!(pairs(&text), [("n".to_owned(), "1E5".to_owned())]);
    }

    #[test]
    fn strings_and_keys_with_escapes_and_brackets() {
        let secrets =
            Secrets::from_json(r#"{"a\"}": "x\"],{", "b" : [ "]" , {"c":"\\"} ] ,"d":true}"#)
                .unwrap();
        assert_eq!(
            pairs(&secrets),
            [
                ("a\"}", "x\"],{"),
                ("b", r#"["]",{"c":"\\"}]"#),
                ("d", "true"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    fn nested(depth: usize) -> String {
        // An object whose field `a` holds arrays: `depth` levels in all.
        format!(
            r#"{{"top": "CANARY-top", "a": {}1{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn json_deeper_than_the_limit_is_an_error_for_every_backend() {
        let ok = Secrets::from_json(&nested(MAX_DEPTH)).unwrap();
        assert_eq!(ok.get("top").unwrap().expose(), "CANARY-top");
        let ok = Secrets::from_text_or_json_object(nested(MAX_DEPTH)).unwrap();
        assert_eq!(ok.get("top").unwrap().expose(), "CANARY-top");
        let expected = "invalid JSON secret: nested deeper than 127 levels (hint: flatten the \
                        secret: its fields must not be lost to a parser's limit)";
        for text in [nested(MAX_DEPTH + 1), nested(5000)] {
            let strict = Secrets::from_json(&text).unwrap_err();
            assert_eq!(strict.to_string(), expected);
            assert_eq!(strict.kind(), crate::ErrorKind::InvalidSecret);
            let lenient = Secrets::from_text_or_json_object(text).unwrap_err();
            assert_eq!(lenient.to_string(), expected);
        }
        let array = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            Secrets::from_json(&array).unwrap_err().to_string(),
            expected
        );
        // Plain text that merely starts with `{` stays a value.
        let text = format!("{{{}", "[".repeat(300));
        let plain = Secrets::from_text_or_json_object(text.clone()).unwrap();
        assert_eq!(pairs(&plain), [("value".to_owned(), text)]);
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
