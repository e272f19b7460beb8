//! Paths: `[<vault>/]<name>[?version=<32 hex>][#key]`, in the project's one grammar.
//!
//! Azure treats vault and secret names without regard to case, so both are lower-cased here:
//! the access policy, the cache and the audit log see one spelling of each secret.

use nomad_secrets_protocol::Error;

/// One secret of one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The vault's name; `None` when the operator's `endpoint_url` is the vault.
    pub vault: Option<String>,
    /// The secret's name.
    pub secret: String,
}

impl Name {
    /// The text the access policy matches: `<vault>/<secret>`, or `<secret>` alone for the
    /// operator's `endpoint_url`.
    pub fn normalised(&self) -> String {
        match &self.vault {
            Some(vault) => format!("{vault}/{}", self.secret),
            None => self.secret.clone(),
        }
    }
}

/// Parses a locator; `default_vault` is the operator's `vault`, `endpoint` whether the operator
/// set `endpoint_url` (then the path may not name another vault).
pub fn parse(locator: &str, default_vault: Option<&str>, endpoint: bool) -> Result<Name, Error> {
    let (vault, secret) = match locator.split_once('/') {
        Some((vault, secret)) => (Some(vault), secret),
        None => (None, locator),
    };
    let secret = secret_name(secret)?;
    let vault = match (vault, default_vault) {
        (Some(named), _) => Some(vault_name(named)?),
        (None, Some(default)) => Some(
            vault_name(default)
                .map_err(|e| Error::settings(format!("the operator's `vault`: {e}")))?,
        ),
        (None, None) if endpoint => None,
        (None, None) => {
            return Err(Error::invalid_path(format!(
                "`{locator}` names no vault, and the operator set no default `vault`"
            ))
            .hint("write the path as `<vault>/<secret>`, e.g. `prod-kv/db`"));
        }
    };
    if endpoint && let (Some(named), Some(_)) = (&vault, locator.split_once('/')) {
        let allowed = default_vault.map(str::to_ascii_lowercase);
        if allowed.as_deref() != Some(named.as_str()) {
            return Err(Error::invalid_path(format!(
                "`{locator}` names vault `{named}`, but this node reads only the vault at the operator's `endpoint_url`"
            ))
            .hint("leave the vault out of the path"));
        }
    }
    Ok(Name { vault, secret })
}

/// A secret's name: 1 to 127 of `0-9`, `a-z`, `A-Z` and `-`.
fn secret_name(name: &str) -> Result<String, Error> {
    let valid = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match valid {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(Error::invalid_path(format!(
            "`{}` is not a Key Vault secret name: 1 to 127 letters, digits and `-`",
            shown(name)
        ))),
    }
}

/// A vault's name: 3 to 24 letters, digits and single `-`, starting with a letter and not
/// ending with `-`, as Azure allows them.
fn vault_name(name: &str) -> Result<String, Error> {
    let bytes = name.as_bytes();
    let valid = (3..=24).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !name.contains("--");
    match valid {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(Error::invalid_path(format!(
            "`{}` is not a Key Vault name: 3 to 24 letters, digits and single `-`, starting with a letter",
            shown(name)
        ))),
    }
}

/// A `?version=`: 32 hexadecimal digits (Key Vault's version ids), lower-cased.
pub fn version(raw: Option<&str>) -> Result<Option<String>, Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(Some(raw.to_ascii_lowercase())),
        false => Err(Error::invalid_path(format!(
            "`?version={}` is not a Key Vault version: 32 hexadecimal digits",
            shown(raw)
        ))
        .hint("leave `?version` out for the latest version")),
    }
}

/// A name as an error may show it: at most 64 characters, controls escaped. Paths are not
/// secret, but they may be long or hostile.
fn shown(text: &str) -> String {
    text.chars().take(64).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_the_vault_filled_in() {
        let name = parse("Prod-KV/DB-Password", None, false).unwrap();
        assert_eq!(name.normalised(), "prod-kv/db-password");
        let name = parse("db", Some("Team-A"), false).unwrap();
        assert_eq!(name.normalised(), "team-a/db");
        assert!(parse("db", None, false).is_err());
        assert_eq!(parse("db", None, true).unwrap().normalised(), "db");
    }

    #[test]
    fn an_endpoint_url_allows_no_other_vault() {
        assert!(parse("other/db", None, true).is_err());
        assert!(parse("other/db", Some("mine"), true).is_err());
        assert_eq!(
            parse("Mine/db", Some("mine"), true).unwrap().normalised(),
            "mine/db"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "", "a/b/c", "x/db", "-ab/db", "ab-/db", "a--b/db", "kv/db_1", "kv/d.b", "kv/",
        ] {
            assert!(parse(bad, None, false).is_err(), "{bad}");
        }
        assert!(parse(&format!("kv1/{}", "a".repeat(128)), None, false).is_err());
        assert!(parse(&format!("kv1/{}", "a".repeat(127)), None, false).is_ok());
    }

    #[test]
    fn versions_are_32_hex_digits() {
        let v = "0123456789ABCDEF0123456789abcdef";
        assert_eq!(version(Some(v)).unwrap().unwrap(), v.to_ascii_lowercase());
        assert!(version(Some("3")).is_err());
        assert!(version(Some("latest")).is_err());
        assert_eq!(version(None).unwrap(), None);
    }
}
