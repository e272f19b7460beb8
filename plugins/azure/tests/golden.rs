//! The `azure` plugin run exactly as Nomad runs it, against a Key Vault, Entra ID and IMDS
//! double over TLS on loopback (`tests/src/azure.rs`: no Key Vault emulator installs here). The
//! vaults' real names (`<vault>.vault.azure.net`) reach the double through `connect_to`, so the
//! SDK's check of Key Vault's challenge runs as against Azure.

use std::path::Path;

use nomad_secrets_golden::azure::{AzureDouble, CLIENT_ID, FEDERATED_TOKEN, TENANT};
use nomad_secrets_golden::moto::BlackHole;
use nomad_secrets_golden::{Plugin, Scratch, Suite, nomad_env};

const AZURE: &str = env!("CARGO_BIN_EXE_azure");

/// The operator's app with a client secret, reaching the double.
fn app_settings(double: &AzureDouble, secret_file: &Path) -> String {
    format!(
        "vault = \"prod-kv\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret_file = \"{}\"\nauthority_host = \"{}\"\nconnect_to = \"{}\"\n\
         ca_file = \"{}\"\nimds_endpoint = \"off\"\n",
        secret_file.display(),
        double.url(),
        double.address(),
        double.ca_file().display(),
    )
}

#[test]
fn golden_cases() {
    let scratch = Scratch::new("azure");
    let double = AzureDouble::start(scratch.path());
    let write = |name: &str, text: &str| {
        let file = scratch.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let secret_file = write("client-secret", "CANARY-client-secret\n");
    let wrong_secret_file = write("wrong-secret", "CANARY-wrong-secret\n");
    let black_hole = BlackHole::new();
    // The certificate secret's PEM blocks, named in the snapshots as they appear in JSON.
    let blocks: Vec<String> = double
        .cert_secret_blocks()
        .iter()
        .map(|block| {
            serde_json::to_string(block)
                .unwrap()
                .trim_matches('"')
                .to_owned()
        })
        .collect();
    let [key, leaf, intermediate] = &blocks[..] else {
        panic!("the double's certificate secret is a key and two certificates")
    };
    Suite::new("azure", AZURE, "azure")
        .placeholder("[CERT_KEY_PEM]", key)
        .placeholder("[CERT_LEAF_PEM]", leaf)
        .placeholder("[CERT_CHAIN_PEM]", intermediate)
        .placeholder("[TENANT]", TENANT)
        .placeholder("[CLIENT_ID]", CLIENT_ID)
        .placeholder("[SECRET_FILE]", &secret_file)
        .placeholder("[WRONG_SECRET_FILE]", &wrong_secret_file)
        .placeholder("[CERT_FILE]", double.cert_file().to_str().unwrap())
        .placeholder("[CA]", double.ca_file().to_str().unwrap())
        .placeholder("[DOUBLE]", &double.url())
        .placeholder("[ADDRESS]", &double.address())
        .placeholder("[IMDS]", &double.imds_url())
        .placeholder("[FEDERATED_TOKEN]", FEDERATED_TOKEN)
        .placeholder(
            "[BLACK_HOLE]",
            black_hole.url().trim_start_matches("http://"),
        )
        // The discard port: nothing listens there (a free port could be taken by another test).
        .placeholder("[REFUSED]", "127.0.0.1:9")
        .run();
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let scratch = Scratch::new("azure-concurrent");
    let double = AzureDouble::start(scratch.path());
    let secret_file = scratch.path().join("client-secret");
    std::fs::write(&secret_file, "CANARY-client-secret\n").unwrap();
    let settings = app_settings(&double, &secret_file);
    let plugin = Plugin::install(Path::new(AZURE), "azure", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[]);
    plugin.assert_concurrent_fetches(&["db", "plain", "db#password"], &env, 40);
}

#[test]
fn sigterm_in_the_middle_of_a_fetch_ends_it_with_a_protocol_error() {
    let scratch = Scratch::new("azure-sigterm");
    let double = AzureDouble::start(scratch.path());
    let secret_file = scratch.path().join("client-secret");
    std::fs::write(&secret_file, "CANARY-client-secret\n").unwrap();
    let settings = format!(
        "{}deadline = \"30s\"\n",
        app_settings(&double, &secret_file)
    );
    let plugin = Plugin::install(Path::new(AZURE), "azure", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[]);
    plugin.assert_sigterm_mid_fetch("azure", "slow", &env);
}

/// A verified Nomad workload identity is the client assertion of an app named by its ids
/// alone: only the federated token reads `jobonly`, and no second variable is needed.
#[test]
fn a_verified_identity_is_a_federated_assertion() {
    use nomad_secrets_golden::identity::{Signer, claims, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let signer = Signer::ed25519("ed-1");
    let token = signer.sign(&claims("default", "api"));
    let scratch = Scratch::new("azure-identity");
    let double = AzureDouble::accepting(scratch.path(), vec![token.clone()]);
    let jwks = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let settings = format!(
        "vault = \"prod-kv\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         authority_host = \"{}\"\nconnect_to = \"{}\"\nca_file = \"{}\"\nimds_endpoint = \"off\"\n\
         identity_jwks_url = \"{}/.well-known/jwks.json\"\n",
        double.url(),
        double.address(),
        double.ca_file().display(),
        jwks.url(),
    );
    let plugin = Plugin::install(Path::new(AZURE), "azure", Some(&settings), 0o644);
    let mut env = nomad_env("fetch", &[]);
    env.insert("NOMAD_NAMESPACE".into(), "default".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let without = plugin.run(&["fetch", "jobonly"], &env);
    without.check_contract("fetch").unwrap();
    assert!(without.stdout.contains("\"error\""), "{without:?}");
    env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token.clone());
    let with = plugin.run(&["fetch", "jobonly"], &env);
    with.check_contract("fetch").unwrap();
    assert!(with.stdout.starts_with("{\"result\""), "{with:?}");
    assert!(!with.stdout.contains(&token));
    assert!(
        double
            .tokens_used()
            .iter()
            .any(|t| t == "CANARY-token-federated"),
        "the read used the federated token: {:?}",
        double.tokens_used()
    );
}
