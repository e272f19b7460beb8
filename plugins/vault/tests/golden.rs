//! The `vault-kv` plugin run exactly as Nomad runs it, against a real OpenBao server seeded for
//! the run (and a sealed one), and the Vault API double (`tests/src/vault.rs`) only for what no
//! real server can be made to do: half answers, 5 MB or HTML answers, a black hole, a standby's
//! redirect, 503s on demand, TLS set up per run.

use nomad_secrets_golden::moto::BlackHole;
use nomad_secrets_golden::openbao::OpenBao;
use nomad_secrets_golden::pki::pki;
use nomad_secrets_golden::vault::{Mode, VaultDouble};
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
    let (bao, seeded) = OpenBao::seeded();
    let sealed = OpenBao::start(None);
    sealed.seal();
    let jwt = |name: &str| seeded[name].as_str().unwrap().to_owned();
    let http = VaultDouble::start(Mode::Http, None);
    let tls = VaultDouble::start(Mode::Tls, Some(&material));
    let mtls = VaultDouble::start(Mode::MutualTls, Some(&material));
    let expired = VaultDouble::start(Mode::ExpiredTls, Some(&material));
    let black_hole = BlackHole::new();
    Suite::new("vault", VAULT_KV, "vault-kv")
        .placeholder("[VAULT_TLS]", tls.url())
        .placeholder("[VAULT_MTLS]", mtls.url())
        .placeholder("[VAULT_SEALED]", sealed.address())
        .placeholder("[JWT_OTHER_NAMESPACE]", &jwt("jwt_other_namespace"))
        .placeholder("[JWT_OTHER_KEY]", &jwt("jwt_other_key"))
        .placeholder("[JWT]", &jwt("jwt"))
        .placeholder("[REVOKED_TOKEN]", &jwt("revoked_token"))
        .placeholder("[VAULT_EXPIRED_TLS]", expired.url())
        .placeholder("[BLACK_HOLE]", black_hole.url())
        .placeholder("[DOUBLE]", http.url())
        .placeholder("[VAULT]", bao.address())
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
    let (bao, _) = OpenBao::seeded();
    let settings = format!("address = \"{}\"\n", bao.address());
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

/// A token that works for one fetch and is revoked on the server before the next: the second
/// fetch ends in one clear error (each run reads afresh; nothing is kept between runs).
#[test]
fn a_token_revoked_between_two_fetches() {
    let (bao, _) = OpenBao::seeded();
    let created = bao.call(
        "POST",
        "auth/token/create",
        Some(r#"{"id": "short-lived-token", "policies": ["reader"]}"#),
    );
    assert_eq!(created, Some(200));
    let settings = format!("address = \"{}\"\n", bao.address());
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("VAULT_TOKEN", "short-lived-token")]);
    let first = plugin.run(&["fetch", "secret/db#username"], &env);
    assert_eq!(first.stdout, "{\"result\":{\"username\":\"app\"}}\n");
    let revoked = bao.call(
        "POST",
        "auth/token/revoke",
        Some(r#"{"token": "short-lived-token"}"#),
    );
    assert_eq!(revoked, Some(204));
    let second = plugin.run(&["fetch", "secret/db#username"], &env);
    second.check_contract("fetch").unwrap();
    assert!(
        second.stdout.starts_with("{\"error\"") && second.stdout.contains("revoked"),
        "{second:?}"
    );
}

/// The node-local cache against a real server: 200 concurrent fetches of one secret cost the
/// server one mounts lookup and one read (counted by its own audit device); another token is
/// another entry; with the server stopped, the last value is served within `cache_max_stale`.
#[test]
fn the_cache_on_a_real_server() {
    use nomad_secrets_golden::openbao::{audit_config, audited_requests};
    let scratch = Scratch::new("vault-cache");
    let log = scratch.path().join("openbao-audit.log");
    let config = audit_config(scratch.path(), &log);
    let (bao, _) = OpenBao::seeded_with(Some(&config));
    let cache = format!("/dev/shm/nomad-secrets-vault-cache-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&cache);
    let settings = format!(
        "address = \"{}\"\ncache_ttl = \"2s\"\ncache_max_stale = \"1h\"\ncache_dir = \"{cache}\"\ndeadline = \"4s\"\n",
        bao.address()
    );
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[("VAULT_TOKEN", "root-token")]);
    let before = audited_requests(&log);
    let children: Vec<_> = (0..200)
        .map(|_| {
            plugin
                .command(&["fetch", "secret/db#username"], &env)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let outcome =
            nomad_secrets_golden::Outcome::wait(child, std::time::Duration::from_secs(60));
        outcome.check_contract("fetch").unwrap();
        assert_eq!(outcome.stdout, "{\"result\":{\"username\":\"app\"}}\n");
    }
    assert_eq!(
        audited_requests(&log) - before,
        2,
        "one mounts lookup and one read for 200 fetches"
    );
    // Another token: its own call.
    let narrow = nomad_env("fetch", &[("VAULT_TOKEN", "narrow-token")]);
    let before = audited_requests(&log);
    let outcome = plugin.run(&["fetch", "secret/db#username"], &narrow);
    assert_eq!(outcome.stdout, "{\"result\":{\"username\":\"app\"}}\n");
    assert!(
        audited_requests(&log) > before,
        "a second identity reached the server"
    );
    // The server stops: past the TTL, the last value is served.
    drop(bao);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let stale = plugin.run(&["fetch", "secret/db#username"], &env);
    stale.check_contract("fetch").unwrap();
    assert_eq!(stale.stdout, "{\"result\":{\"username\":\"app\"}}\n");
    let _ = std::fs::remove_dir_all(&cache);
}

/// A login per job: the node has no Vault credentials; the job's verified workload identity is
/// logged in at a JWT mount whose role binds `nomad_job_id`, so Vault itself gives each job
/// its own policies. A token of another job verifies (it is that job's run) but Vault's role
/// refuses it; a run without a token is denied before Vault is asked.
#[test]
fn a_verified_identity_logs_in_as_its_job() {
    use nomad_secrets_golden::identity::{Signer, claims, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let (bao, _) = OpenBao::seeded();
    let signer = Signer::rsa("rsa-1");
    let pem = String::from_utf8(signer.public_pem.clone()).unwrap();
    let setup = [
        (
            "POST",
            "sys/auth/nomad-wi",
            serde_json::json!({"type": "jwt"}),
        ),
        (
            "POST",
            "auth/nomad-wi/config",
            serde_json::json!({"jwt_validation_pubkeys": [pem]}),
        ),
        (
            "POST",
            "auth/nomad-wi/role/secrets",
            serde_json::json!({
                "role_type": "jwt",
                "bound_audiences": ["nomad-secrets"],
                "bound_claims": {"nomad_namespace": "default", "nomad_job_id": "api"},
                "user_claim": "nomad_job_id",
                "token_policies": ["reader"],
            }),
        ),
    ];
    for (method, path, body) in setup {
        let status = bao.call(method, path, Some(&body.to_string()));
        assert!(matches!(status, Some(200 | 204)), "{path}: {status:?}");
    }
    let jwks = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let settings = format!(
        "address = \"{}\"\njwt_mount = \"nomad-wi\"\njwt_role = \"secrets\"\n\
         identity_jwks_url = \"{}/.well-known/jwks.json\"\nidentity_required = true\n",
        bao.address(),
        jwks.url()
    );
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let run = |job: &str, token: Option<String>| {
        let mut env = nomad_env("fetch", &[]);
        env.insert("NOMAD_NAMESPACE".into(), "default".into());
        env.insert("NOMAD_JOB_ID".into(), job.into());
        if let Some(token) = token {
            env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token);
        }
        let outcome = plugin.run(&["fetch", "secret/db#username"], &env);
        outcome.check_contract("fetch").unwrap();
        outcome.stdout
    };
    let api = signer.sign(&claims("default", "api"));
    assert_eq!(
        run("api", Some(api)),
        "{\"result\":{\"username\":\"app\"}}\n"
    );
    let billing = run("billing", Some(signer.sign(&claims("default", "billing"))));
    assert!(
        billing.contains("\"error\"") && billing.contains("jwt"),
        "{billing}"
    );
    let none = run("api", None);
    assert!(
        none.contains("requires a verified workload identity"),
        "{none}"
    );
}

/// With identity verification on and `jwt_role` set, a run without a token (and without a
/// credential of its own) is denied: the node's `token_file` never stands in for the job's
/// login. The recording server plays both the key set server and Vault.
#[test]
fn an_identity_login_never_falls_back_to_the_nodes_token() {
    use nomad_secrets_golden::identity::{Signer, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let signer = Signer::ed25519("ed-1");
    let server = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let scratch = Scratch::new("vault-identity-node");
    let token_file = scratch.path().join("token");
    std::fs::write(&token_file, "hvs.CANARY-NODE-TOKEN").unwrap();
    let settings = format!(
        "address = \"{u}\"\njwt_role = \"secrets\"\ntoken_file = \"{}\"\n\
         identity_jwks_url = \"{u}/.well-known/jwks.json\"\n",
        token_file.display(),
        u = server.url()
    );
    let plugin = Plugin::install(VAULT_KV.as_ref(), "vault-kv", Some(&settings), 0o644);
    let mut env = nomad_env("fetch", &[]);
    env.insert("NOMAD_NAMESPACE".into(), "payments".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let out = plugin.run(&["fetch", "secret/db#username"], &env);
    out.check_contract("fetch").unwrap();
    assert!(
        out.stdout.contains("passed no `NOMAD_WORKLOAD_IDENTITY`"),
        "{out:?}"
    );
    assert!(!server.received().contains("CANARY-NODE-TOKEN"));
}
