//! The `gcp` plugin run exactly as Nomad runs it, against drongo (the GCP emulator) on
//! 127.0.0.1, and a metadata-server, STS and Secret Manager double for what drongo cannot do
//! (permission denied, quota, checksums, the metadata server's token, the exchange of a job's
//! workload identity JWT). Any TLS server signed by a CA made for the run (the Vault double's)
//! stands for an endpoint or proxy that the node's store does not vouch for.

use std::path::Path;

use nomad_secrets_golden::drongo::Drongo;
use nomad_secrets_golden::gcp_faults::{GcpFaults, WIF_AUDIENCE, WIF_JWT};
use nomad_secrets_golden::moto::BlackHole;
use nomad_secrets_golden::pki::pki;
use nomad_secrets_golden::vault::{Mode, VaultDouble};
use nomad_secrets_golden::{Plugin, Scratch, Suite, nomad_env};

const GCP: &str = env!("CARGO_BIN_EXE_gcp");

#[test]
fn golden_cases() {
    let scratch = Scratch::new("gcp");
    let key = scratch.path().join("service-account.json");
    let drongo = Drongo::seeded(&key);
    let faults = GcpFaults::start();
    let black_hole = BlackHole::new();
    // What `gcloud iam workload-identity-pools create-cred-config` writes, pointed at the double.
    let federation = |name: &str, extra: serde_json::Value| {
        let mut config = serde_json::json!({
            "type": "external_account",
            "audience": WIF_AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", faults.url()),
            "credential_source": {"file": "/var/run/unused.jwt"},
        });
        for (field, value) in extra.as_object().unwrap() {
            config[field] = value.clone();
        }
        let file = scratch.path().join(name);
        std::fs::write(&file, config.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let wif_file = federation("wif.json", serde_json::json!({}));
    let wif_elsewhere = federation(
        "wif-elsewhere.json",
        serde_json::json!({"service_account_impersonation_url": "https://attacker.example/v1/projects/-/serviceAccounts/app@acme.iam.gserviceaccount.com:generateAccessToken"}),
    );
    let wif_unreachable = federation(
        "wif-unreachable.json",
        serde_json::json!({"token_url": "http://127.0.0.1:9/v1/token"}),
    );
    let (material, pki_files) = pki(scratch.path());
    let untrusted = VaultDouble::start(Mode::Tls, Some(&material));
    let expired = VaultDouble::start(Mode::ExpiredTls, Some(&material));
    Suite::new("gcp", GCP, "gcp")
        .placeholder("[WIF_FILE]", &wif_file)
        .placeholder("[WIF_ELSEWHERE_FILE]", &wif_elsewhere)
        .placeholder("[WIF_UNREACHABLE_FILE]", &wif_unreachable)
        .placeholder("[WIF_JWT]", WIF_JWT)
        .placeholder("[UNTRUSTED_TLS]", untrusted.url())
        .placeholder("[EXPIRED_TLS]", expired.url())
        .placeholder("[CA]", pki_files.ca.to_str().unwrap())
        .placeholder("[WRONG_CA]", pki_files.wrong_ca.to_str().unwrap())
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

/// A verified Nomad workload identity is exchanged at the operator's STS through its
/// `workload_identity_file`, with no second variable: only the exchanged token reads `wif`.
#[test]
fn a_verified_identity_is_exchanged_at_the_sts() {
    use nomad_secrets_golden::identity::{Signer, claims, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let signer = Signer::ed25519("ed-1");
    let token = signer.sign(&claims("default", "api"));
    let faults = GcpFaults::accepting(vec![token.clone()]);
    let jwks = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let scratch = Scratch::new("gcp-identity");
    let federation = scratch.path().join("wif.json");
    let config = serde_json::json!({
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", faults.url()),
        "credential_source": {"file": "/var/run/unused.jwt"},
    });
    std::fs::write(&federation, config.to_string()).unwrap();
    let settings = format!(
        "endpoint_url = \"{f}\"\nmetadata_endpoint = \"off\"\nproject = \"acme\"\n\
         workload_identity_file = \"{}\"\nidentity_jwks_url = \"{}/.well-known/jwks.json\"\n",
        federation.display(),
        jwks.url(),
        f = faults.url(),
    );
    let plugin = Plugin::install(Path::new(GCP), "gcp", Some(&settings), 0o644);
    let mut env = nomad_env("fetch", &[]);
    env.insert("NOMAD_NAMESPACE".into(), "default".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let without = plugin.run(&["fetch", "wif"], &env);
    without.check_contract("fetch").unwrap();
    assert!(without.stdout.contains("\"error\""), "{without:?}");
    env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token.clone());
    let with = plugin.run(&["fetch", "wif"], &env);
    with.check_contract("fetch").unwrap();
    assert!(with.stdout.starts_with("{\"result\""), "{with:?}");
    assert!(!with.stdout.contains(&token));
}
