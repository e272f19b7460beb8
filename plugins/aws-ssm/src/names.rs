//! Which parameter a path names, checked before anything is sent.
//!
//! Parameter names are opaque to Parameter Store (sent in a JSON body, never resolved as
//! paths), so the text the access policy matches is exactly the text AWS looks up, provided it
//! holds only what a name may hold: `[A-Za-z0-9_.-/]`. Anything else is refused rather than
//! passed on: `:` would smuggle a version selector past the policy (`/app/db:3`; use
//! `?version=`), and `.`, `..` or empty segments name no real parameter and would only make two
//! texts of one name. A full ARN (`arn:aws:ssm:<region>:<account>:parameter/<name>`, a
//! parameter shared by another account) is matched as the ARN: a rule written for names never
//! allows another account's parameter of the same name.

use nomad_secrets_protocol::Error;

/// What a fetch reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// One parameter, with `version` or `label` as its selector.
    One {
        /// The name or ARN.
        name: String,
        /// `3` or `prod`, sent as `<name>:<selector>`.
        selector: Option<String>,
    },
    /// Every parameter beneath a prefix ending in `/`.
    Beneath {
        /// `/app/prod/`.
        prefix: String,
    },
}

/// The text the access policy matches for `locator`: the name, hierarchy prefix or ARN, once
/// checked.
pub fn normalise(locator: &str) -> Result<String, Error> {
    // Parameter Store answers Secrets Manager's secrets under this prefix: a rule for
    // parameters must never read them (the `aws` plugin and its policy do).
    if locator.starts_with("/aws/reference/") {
        return Err(Error::invalid_path(
            "`/aws/reference/...` reads from another service (Secrets Manager) through Parameter Store",
        )
        .hint("read Secrets Manager secrets with the `aws` provider, where its own policy applies"));
    }
    if let Some(name) = arn_name(locator) {
        check_name(name, "the ARN's parameter name")?;
        if locator.ends_with('/') {
            return Err(
                Error::invalid_path("a hierarchy is read by its path, not by an ARN")
                    .hint("write the path, like /app/prod/, for the node's own account"),
            );
        }
        return Ok(locator.to_owned());
    }
    if locator.ends_with('/') && !locator.starts_with('/') {
        return Err(Error::invalid_path(format!(
            "the hierarchy `{locator}` does not start with `/`"
        ))
        .hint("a hierarchy path is absolute, like /app/prod/"));
    }
    // `/` alone is the whole account's hierarchy; any other prefix is a name plus `/`.
    if locator != "/" {
        let name = locator.strip_suffix('/').unwrap_or(locator);
        check_name(name, "the parameter name")?;
    }
    Ok(locator.to_owned())
}

/// The target of `locator` with its options (`?version=`, `?label=`).
pub fn target(locator: &str, version: Option<&str>, label: Option<&str>) -> Result<Target, Error> {
    let name = normalise(locator)?;
    if name.ends_with('/') {
        if version.is_some() || label.is_some() {
            return Err(Error::invalid_path(
                "`version` and `label` select one parameter's version, not a hierarchy's",
            ));
        }
        return Ok(Target::Beneath { prefix: name });
    }
    let selector = match (version, label) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_path(
                "give `version` or `label`, not both: Parameter Store takes one selector",
            ));
        }
        (Some(version), None) => {
            let valid = version.bytes().all(|b| b.is_ascii_digit())
                && version.parse::<u64>().is_ok_and(|v| v > 0)
                && !version.starts_with('0');
            if !valid {
                return Err(Error::invalid_path(format!(
                    "`version` must be a positive number, not `{version}`"
                )));
            }
            Some(version.to_owned())
        }
        (None, Some(label)) => {
            // Parameter Store's label rules: letters, digits, `.`, `-`, `_`; not starting
            // with a digit (that would read as a version).
            let valid = !label.is_empty()
                && label.len() <= 100
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                && !label.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(Error::invalid_path(format!(
                    "`label` `{label}` is not a Parameter Store label"
                ))
                .hint(
                    "labels are letters, digits, `.`, `-` and `_`, and do not start with a digit",
                ));
            }
            Some(label.to_owned())
        }
        (None, None) => None,
    };
    Ok(Target::One { name, selector })
}

/// The name inside a parameter ARN, without its leading `parameter/`.
fn arn_name(locator: &str) -> Option<&str> {
    let arn = nomad_secrets_aws_common::Arn::parse(locator, "ssm")?;
    arn.resource.strip_prefix("parameter/")
}

fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        let hint = match bad {
            ':' => "select a version with `?version=N` or `?label=L`",
            _ => "parameter names hold only letters, digits, `_`, `.`, `-` and `/`",
        };
        return Err(Error::invalid_path(format!(
            "{what} holds `{}`, which no parameter name may hold",
            bad.escape_default()
        ))
        .hint(hint));
    }
    let inner = name.strip_prefix('/').unwrap_or(name);
    if inner
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(
            Error::invalid_path(format!("{what} has an empty, `.` or `..` segment"))
                .hint("write the name as it was created, like /app/prod/db/password"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefixes_and_arns() {
        for ok in [
            "/app/prod/db",
            "plain",
            "/app/prod/",
            "/",
            "/a/config.json",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db",
        ] {
            assert_eq!(normalise(ok).unwrap(), ok);
        }
        for bad in [
            "/app/db:3",
            "/app//db",
            "//",
            "/a//",
            "/app/../db",
            "/app/./db",
            "app/prod/",
            "/app/db name",
            "arn:aws:ssm:eu-west-1:1:parameter/app/",
            "arn:aws:ssm:eu-west-1:1:parameter/a//b",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors() {
        let one = |v, l| target("/app/db", v, l);
        assert_eq!(
            one(Some("3"), None).unwrap(),
            Target::One {
                name: "/app/db".into(),
                selector: Some("3".into())
            }
        );
        assert!(one(Some("3"), Some("prod")).is_err());
        assert!(one(Some("0"), None).is_err());
        assert!(
            one(Some("+1"), None).is_err(),
            "a version as written, never a sign"
        );
        assert!(one(Some("03"), None).is_err());
        assert!(one(None, Some("1st")).is_err());
        assert!(one(None, Some("a:b")).is_err());
        assert!(target("/app/", Some("3"), None).is_err());
    }
}
