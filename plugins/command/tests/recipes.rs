//! The recipes in `examples/settings/command-*.toml` hold: each is a valid settings file, its
//! pattern accepts the path of its own example job line (`# A job: ... path = "..."`), which
//! the plugin passes on as written (no `..`, `//` or `%` to refuse), its `job_env` names are of
//! the safe shapes, and its `output` reads the output its tool documents, as the vendors' docs
//! show it. (sops and pass also run for real in `golden.rs`.)

use std::collections::HashMap;
use std::path::Path;

use nomad_secrets_command::CommandBackend;
use nomad_secrets_command::answer::{Format, parse};
use nomad_secrets_protocol::{Backend, Settings};

/// What each tool prints for one secret, from its documentation, and a key it must give.
fn documented(tool: &str) -> (&'static str, &'static str) {
    match tool {
        // sops decrypt --output-type json: the document, decrypted.
        "sops" => (
            "{\"username\": \"app\", \"password\": \"CANARY\"}\n",
            "password",
        ),
        // op read op://vault/item/field --no-newline: the field's value alone.
        "op" => ("CANARY", "value"),
        // bws secret get <id> --output json: the secret object.
        "bws" => (
            "{\n  \"object\": \"secret\",\n  \"id\": \"be8e0ad8-d545-4017-a55a-b02f014d4158\",\n  \"organizationId\": \"10e8cbfa-7bd2-4361-bd6f-b02e013f9c41\",\n  \"projectId\": \"e325ea69-a3ab-4dff-836f-b02e013fe530\",\n  \"key\": \"SES_KEY\",\n  \"value\": \"CANARY\",\n  \"note\": \"\",\n  \"creationDate\": \"2023-06-28T20:13:20.643567Z\",\n  \"revisionDate\": \"2023-06-28T20:13:20.643567Z\"\n}\n",
            "value",
        ),
        // pass show <entry>: the password, then notes.
        "pass" => ("CANARY\nurl: https://db.internal\n", "value"),
        // doppler secrets download --no-file --format json: every secret of the config.
        "doppler" => (
            "{\"DB_PASSWORD\":\"CANARY\",\"DOPPLER_CONFIG\":\"prd\",\"DOPPLER_ENVIRONMENT\":\"prd\",\"DOPPLER_PROJECT\":\"payments\"}",
            "DB_PASSWORD",
        ),
        // infisical export --format=dotenv: KEY='value' lines.
        "infisical" => (
            "DB_PASSWORD='CANARY'\nAPI_URL='https://api.internal'\n",
            "DB_PASSWORD",
        ),
        other => panic!("no documented output for recipe `{other}`: add it here"),
    }
}

#[test]
fn every_recipe_is_valid_and_reads_its_tools_documented_output() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/settings"
    ));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(tool) = name
            .strip_prefix("command-")
            .and_then(|n| n.strip_suffix(".toml"))
        else {
            continue;
        };
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let settings = Settings::from_text(
            &path,
            Some(&text),
            CommandBackend::SETTINGS,
            &HashMap::new(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let job_path = text
            .lines()
            .find_map(|l| l.strip_prefix("# A job: "))
            .and_then(|l| l.split("path = \"").nth(1))
            .and_then(|l| l.split('"').next())
            .unwrap_or_else(|| panic!("{name}: no `# A job: ... path = \"...\"` line"));
        let locator = job_path.split('#').next().unwrap();
        assert_eq!(
            CommandBackend::normalise(locator, &settings)
                .unwrap_or_else(|e| panic!("{name}: `{locator}`: {e}")),
            locator,
            "{name}: the CLI gets the path the policy sees"
        );
        CommandBackend::passed_through(&settings)
            .unwrap_or_else(|e| panic!("{name}: its `job_env`: {e}"));
        let pattern = settings
            .get(&nomad_secrets_command::PATH_PATTERN)
            .expect("a recipe has a pattern");
        let whole = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        assert!(
            whole.is_match(locator),
            "{name}: `{locator}` !~ `{pattern}`"
        );
        let (output, key) = documented(tool);
        let format = Format::from_settings(&settings).unwrap();
        let secrets =
            parse(format, output.as_bytes().to_vec()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            secrets
                .get(key)
                .is_some_and(|v| v.expose().starts_with("CANARY")),
            "{name}: no `{key}` holding the value"
        );
        assert!(
            settings.get(&nomad_secrets_command::COMMAND)[0].starts_with('/'),
            "{name}: the program is absolute"
        );
    }
    assert!(seen >= 6, "only {seen} recipes found");
}
