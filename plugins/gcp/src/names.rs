//! Which secret a path names: the full resource name the access policy matches.
//!
//! `db` (the project from the settings), `projects/<p>/secrets/<s>`, or a regional secret
//! `projects/<p>/locations/<region>/secrets/<s>`, always normalised to the full name without a
//! version, so that a short name and its full name are one text to the policy. Project ids,
//! regions and secret ids are checked against GCP's own rules before anything is sent: a `/`,
//! `.` or `..` could otherwise name another resource than the one the policy saw.

use nomad_secrets_protocol::Error;

/// A secret's full name, and where its API lives.
#[derive(Debug, PartialEq, Eq)]
pub struct Name {
    /// `projects/<p>/secrets/<s>` or `projects/<p>/locations/<r>/secrets/<s>`.
    pub full: String,
    /// The region of a regional secret.
    pub region: Option<String>,
}

/// The full name of `locator`; `project` completes a bare secret id.
pub fn parse(locator: &str, project: Option<&str>) -> Result<Name, Error> {
    let parts: Vec<&str> = locator.split('/').collect();
    let (project, region, secret) = match parts[..] {
        [secret] => {
            let project = project.ok_or_else(|| {
                Error::settings(format!(
                    "`{locator}` names no project, and no `project` is set"
                ))
                .hint("write projects/<project>/secrets/<secret>, or ask the operator to set `project`")
            })?;
            (project, None, secret)
        }
        ["projects", project, "secrets", secret] => (project, None, secret),
        ["projects", project, "locations", region, "secrets", secret] => {
            (project, Some(region), secret)
        }
        _ => {
            return Err(Error::invalid_path(
                "a secret is `<secret>`, `projects/<project>/secrets/<secret>` or `projects/<project>/locations/<region>/secrets/<secret>`",
            )
            .hint("give the version as `?version=N`, not in the path"));
        }
    };
    check(
        project,
        "project id",
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == ':' || c == '.',
        100,
    )?;
    if let Some(region) = region {
        check(
            region,
            "region",
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            63,
        )?;
    }
    check(
        secret,
        "secret id",
        |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        255,
    )?;
    if project.split(['.', ':']).any(str::is_empty) {
        return Err(Error::invalid_path("the project id has an empty part"));
    }
    let full = match region {
        None => format!("projects/{project}/secrets/{secret}"),
        Some(region) => format!("projects/{project}/locations/{region}/secrets/{secret}"),
    };
    Ok(Name {
        full,
        region: region.map(str::to_owned),
    })
}

/// `?version=`: a positive number or `latest` (the default).
pub fn version(asked: Option<&str>) -> Result<String, Error> {
    match asked {
        None | Some("latest") => Ok("latest".to_owned()),
        Some(v)
            if v.bytes().all(|b| b.is_ascii_digit())
                && v.parse::<u64>().is_ok_and(|n| n > 0)
                && !v.starts_with('0') =>
        {
            Ok(v.to_owned())
        }
        Some(v) => Err(Error::invalid_path(format!(
            "`version` must be a positive number or `latest`, not `{v}`"
        ))),
    }
}

fn check(text: &str, what: &str, allowed: impl Fn(char) -> bool, max: usize) -> Result<(), Error> {
    if text.is_empty() || text.len() > max {
        return Err(Error::invalid_path(format!(
            "the {what} is empty or too long"
        )));
    }
    if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid_path(format!(
            "the {what} holds `{}`, which GCP does not allow there",
            bad.escape_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_are_one_text() {
        let short = parse("db", Some("acme-prod")).unwrap();
        let full = parse("projects/acme-prod/secrets/db", None).unwrap();
        assert_eq!(short, full);
        assert_eq!(full.full, "projects/acme-prod/secrets/db");
        let regional = parse("projects/p/locations/europe-west1/secrets/db", None).unwrap();
        assert_eq!(regional.region.as_deref(), Some("europe-west1"));
        for bad in [
            "a/b",
            "projects/p/secrets/../x",
            "projects/p/secrets/db/versions/1",
            "projects/P/secrets/db",
            "projects/p/secrets/d.b",
            "projects//secrets/db",
            "projects/p/locations/eu/west/secrets/db",
        ] {
            assert!(parse(bad, Some("p")).is_err(), "{bad}");
        }
        assert!(parse("db", None).is_err());
        assert_eq!(version(Some("3")).unwrap(), "3");
        assert!(version(Some("0")).is_err());
        assert!(version(Some("-1")).is_err());
        assert!(
            version(Some("+1")).is_err(),
            "a version as written, never a sign"
        );
    }
}
