//! Property tests: hostile and random input against the path grammar, the conversion policy,
//! the JSON output, the settings file and the policy matcher. None may panic, every output
//! must stay exact, and no error may quote the input's values.

use proptest::prelude::*;

use crate::output::result_json;
use crate::path::SecretPath;
use crate::policy::{Caller, Policy};
use crate::{Secret, Secrets};

/// Percent-encodes what the grammar reserves, so any text can be written as a path part.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '%' | '?' | '#' | '&' | '=' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_path_parses_or_errors_without_panicking(raw in ".{0,80}") {
        let _ = SecretPath::parse(&raw, &["version", "stage"]);
    }

    #[test]
    fn encoded_parts_round_trip(
        locator in "[^\\x00-\\x1f\\x7f-\\x9f]{1,40}",
        version in "[^\\x00-\\x1f]{1,10}",
        key in ".{1,20}",
    ) {
        let raw = format!("{}?version={}#{}", encode(&locator), encode(&version), encode(&key));
        let path = SecretPath::parse(&raw, &["version"]).unwrap();
        prop_assert_eq!(path.locator(), locator.as_str());
        prop_assert_eq!(path.option("version"), Some(version.as_str()));
        prop_assert_eq!(path.key(), Some(key.as_str()));
    }

    #[test]
    fn json_objects_of_strings_keep_every_value(map in proptest::collection::btree_map(".{0,12}", ".{0,40}", 1..8)) {
        let text = serde_json::to_string(&map).unwrap();
        let secrets = Secrets::from_json(&text).unwrap();
        prop_assert_eq!(secrets.len(), map.len());
        for (key, value) in &map {
            prop_assert_eq!(secrets.get(key).map(Secret::expose), Some(value.as_str()));
        }
    }

    #[test]
    fn json_errors_never_quote_the_input(prefix in "[{\\[\"a-z0-9:, ]{0,20}", suffix in "[}\\]\"a-z0-9:, ]{0,20}") {
        let text = format!("{prefix}CANARY{suffix}");
        if let Err(error) = Secrets::from_json(&text) {
            prop_assert!(!error.to_string().contains("CANARY"), "{}", error);
        }
    }

    #[test]
    fn bytes_are_kept_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        use base64::Engine as _;
        let secrets = Secrets::from_bytes(bytes.clone());
        let (key, value) = secrets.iter().next().unwrap();
        let back = match key {
            "value" => value.expose().as_bytes().to_vec(),
            "value_base64" => base64::engine::general_purpose::STANDARD.decode(value.expose()).unwrap(),
            other => panic!("unexpected key {other}"),
        };
        prop_assert_eq!(back, bytes);
    }

    #[test]
    fn the_result_decodes_as_go_would(map in proptest::collection::btree_map(".{0,12}", ".{0,40}", 1..8)) {
        let mut secrets = Secrets::new();
        for (key, value) in &map {
            secrets.insert(key.clone(), Secret::new(value.clone())).unwrap();
        }
        let json = result_json(&secrets);
        let decoded: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
            serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&decoded["result"], &map);
        prop_assert!(json.ends_with("}}\n") && !json[..json.len() - 1].contains('\n'));
    }

    #[test]
    fn star_never_crosses_a_slash(segment in "[a-z]{1,5}", rest in "[a-z/]{0,10}") {
        let table: toml::Table = toml::from_str("[[allow]]\nnamespace = \"*\"\npaths = [\"a/*\", \"b/**\"]").unwrap();
        let policy = Policy::parse(&table["allow"]).unwrap();
        let caller = Caller { namespace: "n", job: "j", group: None, task: None };
        let one = format!("a/{segment}");
        let deeper = format!("a/{segment}/{rest}");
        let anything = format!("b/{segment}/{rest}");
        prop_assert!(policy.allows(caller, &one));
        prop_assert!(!policy.allows(caller, &deeper));
        prop_assert!(policy.allows(caller, &anything));
    }

    #[test]
    fn the_policy_matcher_never_panics(pattern in "[a-z*/{}]{0,16}", path in "[a-z*/]{0,24}") {
        let text = format!("[[allow]]\nnamespace = \"*\"\npaths = [{}]", serde_json::to_string(&pattern).unwrap());
        let table: toml::Table = toml::from_str(&text).unwrap();
        if let Ok(policy) = Policy::parse(&table["allow"]) {
            let _ = policy.allows(Caller { namespace: "n", job: "j", group: None, task: None }, &path);
        }
    }

    #[test]
    fn settings_errors_never_quote_a_value(key in "[a-z_]{1,12}", junk in "[a-z0-9 =\\[\\]\"{}.,-]{0,20}") {
        let dir = std::env::temp_dir().join(format!("settings-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(&file, format!("{key} = \"CANARY-value\"\n{junk}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        if let Err(error) = crate::Settings::load(&file, &[], &Default::default()) {
            prop_assert!(!error.to_string().contains("CANARY"), "{}", error);
        }
    }
}
