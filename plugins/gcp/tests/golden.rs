//! The `gcp` plugin run exactly as Nomad runs it, against drongo (the GCP emulator) on
//! 127.0.0.1, and a metadata-server and Secret Manager double for what drongo cannot do
//! (permission denied, quota, checksums, the metadata server's token).

use std::path::Path;

use nomad_secrets_golden::drongo::Drongo;
use nomad_secrets_golden::gcp_faults::GcpFaults;
use nomad_secrets_golden::moto::BlackHole;
use nomad_secrets_golden::{Plugin, Scratch, Suite, nomad_env};

const GCP: &str = env!("CARGO_BIN_EXE_gcp");

#[test]
fn golden_cases() {
    let scratch = Scratch::new("gcp");
    let key = scratch.path().join("service-account.json");
    let drongo = Drongo::seeded(&key);
    let faults = GcpFaults::start();
    let black_hole = BlackHole::new();
    Suite::new("gcp", GCP, "gcp")
        .placeholder("[KEY_FILE]", key.to_str().unwrap())
        .placeholder("[DRONGO]", drongo.endpoint())
        .placeholder("[FAULTS]", faults.url())
        .placeholder("[BLACK_HOLE]", black_hole.url())
        // The discard port: nothing listens there (a free port could be taken by another test).
        .placeholder("[REFUSED]", "http://127.0.0.1:9")
        .run();
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let scratch = Scratch::new("gcp-concurrent");
    let drongo = Drongo::seeded(&scratch.path().join("key.json"));
    let settings = format!(
        "endpoint_url = \"{}\"\nmetadata_endpoint = \"off\"\nproject = \"acme\"\n",
        drongo.endpoint()
    );
    let plugin = Plugin::install(Path::new(GCP), "gcp", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.CANARY-job")]);
    plugin.assert_concurrent_fetches(&["db", "plain", "db?version=1#password"], &env, 40);
}

#[test]
fn sigterm_in_the_middle_of_a_fetch_ends_it_with_a_protocol_error() {
    let black_hole = BlackHole::new();
    let settings = format!(
        "endpoint_url = \"{}\"\nmetadata_endpoint = \"off\"\nproject = \"acme\"\ndeadline = \"30s\"\n",
        black_hole.url()
    );
    let plugin = Plugin::install(Path::new(GCP), "gcp", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.CANARY-job")]);
    plugin.assert_sigterm_mid_fetch("gcp", "db", &env);
}
