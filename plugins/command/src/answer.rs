//! What the CLI printed, as secrets: `json` (an object's fields by the shared conversion
//! policy; other JSON is `value`), `env` (dotenv: one key per variable) or `text` (one key,
//! `value`, without one trailing newline; bytes that are not UTF-8 give `value_base64`).
//! Errors give a position, never the output.

use nomad_secrets_protocol::{Error, Secrets, Settings};

/// The operator's `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A JSON value.
    Json,
    /// `KEY=value` lines.
    Env,
    /// The text itself.
    Text,
}

impl Format {
    /// `output` from the settings (default `json`).
    pub fn from_settings(settings: &Settings) -> Result<Format, Error> {
        match settings.get(&crate::OUTPUT) {
            None | Some("json") => Ok(Format::Json),
            Some("env") => Ok(Format::Env),
            Some("text") => Ok(Format::Text),
            Some(other) => Err(Error::settings(format!(
                "`output` in `{}` is `{other}`; it is `json`, `env` or `text`",
                settings.file().display()
            ))),
        }
    }
}

/// `output` as `format` says.
pub fn parse(format: Format, output: Vec<u8>) -> Result<Secrets, Error> {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|e| {
            Error::invalid_secret(format!(
                "the command's output is not UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })
    };
    let what = |error: Error| {
        Error::new(
            error.kind(),
            format!("the command's output: {}", error.message()),
        )
    };
    match format {
        Format::Json => Secrets::from_json(&text(output)?).map_err(what),
        Format::Env => nomad_secrets_protocol::dotenv::parse(&text(output)?).map_err(what),
        Format::Text => {
            let mut bytes = output;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            Ok(Secrets::from_bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let json = parse(Format::Json, br#"{"a":"CANARY","n":1}"#.to_vec()).unwrap();
        assert_eq!(json.len(), 2);
        let env = parse(Format::Env, b"A=1\nB='x y'\n".to_vec()).unwrap();
        assert_eq!(env.get("B").unwrap().expose(), "x y");
        let text = parse(Format::Text, b"CANARY\r\n".to_vec()).unwrap();
        assert_eq!(text.get("value").unwrap().expose(), "CANARY");
        let error = parse(Format::Json, b"{\"a\": CANARY}".to_vec()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the command's output: invalid JSON at line 1, column 7"
        );
    }
}
