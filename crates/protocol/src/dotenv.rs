//! `.env` files: `KEY=value` lines, as written by docker compose and most dotenv libraries.
//!
//! - Blank lines and lines starting with `#` are skipped; `export KEY=value` is accepted.
//! - Keys match `[A-Za-z_][A-Za-z0-9_.-]*`. A key given twice is an error.
//! - Unquoted values end at ` #` (a comment) and are trimmed.
//! - `'single'` quotes keep the text exactly; `"double"` quotes read `\n`, `\r`, `\t`, `\"`,
//!   `\\` and `\$`. Quoted values may span lines (PEM keys). Nothing is interpolated: `${X}` stays.
//!
//! Errors give the line number and never the line: a malformed line may be a pasted secret.

use crate::{Error, Secret, Secrets};

/// Parses a dotenv file into one key per variable.
pub fn parse(text: &str) -> Result<Secrets, Error> {
    let mut secrets = Secrets::new();
    let mut lines = text.split('\n').enumerate().map(|(i, line)| (i + 1, line));
    while let Some((number, line)) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(error(number, "expected `KEY=value`"));
        };
        let key = key.trim_end();
        if !valid_key(key) {
            return Err(error(
                number,
                "the name before `=` is not a valid variable name (letters, digits, `_`, `.`, `-`)",
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('\'' | '"')) => quoted(&rest[1..], quote, number, &mut lines)?,
            _ => unquoted(rest),
        };
        if secrets.get(key).is_some() {
            return Err(error(number, &format!("`{key}` is set twice")));
        }
        secrets.insert(key, Secret::new(value))?;
    }
    Ok(secrets)
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn unquoted(rest: &str) -> String {
    let end = rest
        .match_indices('#')
        .find(|(i, _)| *i == 0 || rest[..*i].ends_with([' ', '\t']))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].trim_end().to_owned()
}

/// Reads a quoted value starting just after the opening quote, across lines if needed.
fn quoted<'a>(
    mut text: &'a str,
    quote: char,
    start: usize,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, Error> {
    let mut value = String::new();
    loop {
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    let after = text[i + 1..].trim();
                    if !(after.is_empty() || after.starts_with('#')) {
                        return Err(error(start, "text follows the closing quote"));
                    }
                    return Ok(value);
                }
                '\\' if quote == '"' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\' | '$')) => value.push(c),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        match lines.next() {
            Some((_, next)) => {
                value.push('\n');
                text = next.strip_suffix('\r').unwrap_or(next);
            }
            None => {
                return Err(error(
                    start,
                    "the quoted value that starts here is never closed",
                ));
            }
        }
    }
}

fn error(line: usize, what: &str) -> Error {
    Error::invalid_secret(format!("invalid .env file at line {line}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.expose().to_owned()))
            .collect()
    }

    fn expect(text: &str, expected: &[(&str, &str)]) {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(text), expected, "{text:?}");
    }

    #[test]
    fn forms() {
        expect("A=1\n", &[("A", "1")]);
        expect(
            "# c\n\n  export  B = two words  # note\r\n",
            &[("B", "two words")],
        );
        expect("C=a#b\nD=#x\n", &[("C", "a#b"), ("D", "")]);
        expect("F=x\tX=y", &[("F", "x\tX=y")]);
    }

    #[test]
    fn quotes() {
        expect("S='a \\n #b ${X}'", &[("S", "a \\n #b ${X}")]);
        expect(
            r#"D="a\nb\t\"c\" \\ \$ \q" # c"#,
            &[("D", "a\nb\t\"c\" \\ $ \\q")],
        );
        expect(
            "K=\"-----BEGIN\nline\n-----END\"\nN=1",
            &[("K", "-----BEGIN\nline\n-----END"), ("N", "1")],
        );
        expect("E=''\nF=\"\"", &[("E", ""), ("F", "")]);
        expect("db.user-name=x", &[("db.user-name", "x")]);
    }

    #[test]
    fn errors_name_the_line_never_the_text() {
        for (text, expected) in [
            (
                "A=1\nCANARY-value-without-equals\n",
                "invalid .env file at line 2: expected `KEY=value`",
            ),
            (
                "1A=x",
                "invalid .env file at line 1: the name before `=` is not a valid variable name (letters, digits, `_`, `.`, `-`)",
            ),
            (
                "A B=CANARY",
                "invalid .env file at line 1: the name before `=` is not a valid variable name (letters, digits, `_`, `.`, `-`)",
            ),
            (
                "X=1\nA=\"CANARY\n\n",
                "invalid .env file at line 2: the quoted value that starts here is never closed",
            ),
            (
                "A='CANARY' tail",
                "invalid .env file at line 1: text follows the closing quote",
            ),
            ("A=1\nA=2", "invalid .env file at line 2: `A` is set twice"),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_text_parses_or_errors_without_panicking(text in "(?s).{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn double_quoted_values_round_trip(
            map in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,8}", "[^\\x00]{0,30}", 1..6),
        ) {
            let text: String = map
                .iter()
                .map(|(k, v)| {
                    let escaped = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('$', "\\$")
                        .replace('\n', "\\n")
                        .replace('\r', "\\r")
                        .replace('\t', "\\t");
                    format!("{k}=\"{escaped}\"\n")
                })
                .collect();
            let secrets = parse(&text).unwrap();
            for (key, value) in &map {
                prop_assert_eq!(secrets.get(key).map(|s| s.expose()), Some(value.as_str()));
            }
        }

        #[test]
        fn errors_never_quote_the_text(lines in proptest::collection::vec("[A-Za-z0-9_ =#'\"\\\\-]{0,20}", 1..6)) {
            let text = lines.iter().map(|l| format!("{l}CANARY")).collect::<Vec<_>>().join("\n");
            if let Err(error) = parse(&text) {
                prop_assert!(!error.to_string().contains("CANARY"), "{}", error);
            }
        }
    }
}
