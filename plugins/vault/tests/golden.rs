//! The `vault-kv` plugin run exactly as Nomad runs it, against the Vault API double
//! (`tests/src/vault.rs`): plain HTTP, TLS with a CA made for this run, mTLS, and sealed.

use nomad_secrets_golden::moto::BlackHole;
use nomad_secrets_golden::vault::{Mode, VaultDouble, pki};
use nomad_secrets_golden::{Plugin, Scratch, Suite, nomad_env};

const VAULT_KV: &str = env!("CARGO_BIN_EXE_vault-kv");

#[test]
fn golden_cases() {
    let files = Scratch::new("vault-files");
    let (material, pki) = pki(files.path());
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let token_file = write("token", "root-token\n");
    let empty_token = write("empty-token", "\n");
    let role_id = write("role-id", "node-role\n");
    let secret_id = write("secret-id", "CANARY-secret-id\n");
    // A person's home, where `vault login` leaves ~/.vault-token.
    std::fs::create_dir_all(files.path().join("home")).unwrap();
    let home = write("home/.vault-token", "root-token\n").replace("/.vault-token", "");
    let http = VaultDouble::start(Mode::Http, None);
    let tls = VaultDouble::start(Mode::Tls, Some(&material));
    let mtls = VaultDouble::start(Mode::MutualTls, Some(&material));
    let sealed = VaultDouble::start(Mode::Sealed, None);
    let expired = VaultDouble::start(Mode::ExpiredTls, Some(&material));
    let black_hole = BlackHole::new();
    Suite::new("vault", VAULT_KV, "vault-kv")
        .placeholder("[VAULT_TLS]", tls.url())
        .placeholder("[VAULT_MTLS]", mtls.url())
        .placeholder("[VAULT_SEALED]", sealed.url())
        .placeholder("[VAULT_EXPIRED_TLS]", expired.url())
        .placeholder("[BLACK_HOLE]", black_hole.url())
        .placeholder("[VAULT]", http.url())
        .placeholder("[HOME]", &home)
        .placeholder("[TOKEN_FILE]", &token_file)
        .placeholder("[EMPTY_TOKEN_FILE]", &empty_token)
        .placeholder("[ROLE_ID_FILE]", &role_id)
        .placeholder("[SECRET_ID_FILE]", &secret_id)
        .placeholder("[CA]", pki.ca.to_str().unwrap())
        .placeholder("[WRONG_CA]", pki.wrong_ca.to_str().unwrap())
        .placeholder("[CLIENT_CERT]", pki.client_cert.to_str().unwrap())
        .placeholder("[CLIENT_KEY]", pki.client_key.to_str().unwrap())
        .run();
    assert!(
        nomad_secrets_golden::only_faults() || tls.served() > 0 && mtls.served() > 0,
        "the TLS cases reached their doubles"
    );
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let http = VaultDouble::start(Mode::Http, None);
    let settings = format!("address = \"{}\"\n", http.url());
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("VAULT_TOKEN", "root-token")]);
    let paths = [
        "secret/db#password",
        "kv1/app",
        "secret/db?version=1#password",
    ];
    plugin.assert_concurrent_fetches(&paths, &env, 48);
}

#[test]
fn sigterm_in_the_middle_of_a_fetch_ends_it_with_a_protocol_error() {
    let http = VaultDouble::start(Mode::Http, None);
    let settings = format!("address = \"{}\"\ndeadline = \"30s\"\n", http.url());
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("VAULT_TOKEN", "root-token")]);
    // `secret/slow` answers after 5 s.
    plugin.assert_sigterm_mid_fetch("vault", "secret/slow", &env);
}
