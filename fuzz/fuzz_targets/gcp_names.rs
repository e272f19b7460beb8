//! `gcp`'s secret names: any path is refused, or becomes one full resource name that names only
//! what GCP allows (no `/`, `.` or `..` smuggled into a project, region or secret id), the same
//! for a short name and its full form.
#![no_main]

// The module alone, not the plugin: the plugin crate would bring the Google SDK into every fuzz
// build, and this module depends on nothing but the protocol crate.
#[path = "../../plugins/gcp/src/names.rs"]
#[allow(dead_code)]
mod names;

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::check_output;
use nomad_secrets_protocol::Secrets;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (locator, project) = text.split_once('\n').unwrap_or((text, "acme"));
    match names::parse(locator, Some(project)) {
        Ok(name) => {
            let parts: Vec<&str> = name.full.split('/').collect();
            assert!(parts.len() == 4 || parts.len() == 6, "{}", name.full);
            assert!(
                parts
                    .iter()
                    .all(|p| !p.is_empty() && *p != "." && *p != "..")
            );
            let again = names::parse(&name.full, None).expect("a full name parses");
            assert_eq!(again, name, "a full name is its own normal form");
        }
        Err(error) => check_output(&Err::<Secrets, _>(error)),
    }
});
