//! The `aws` plugin run exactly as Nomad runs it, against a real AWS emulator (moto) on
//! 127.0.0.1, plus endpoints that refuse or never answer.

use std::path::Path;
use std::time::Instant;

use nomad_secrets_golden::aws_faults::{AwsFaults, EXPIRED_KEY};
use nomad_secrets_golden::imds::Imds;
use nomad_secrets_golden::moto::{BlackHole, Moto};
use nomad_secrets_golden::pki::pki;
use nomad_secrets_golden::server::free_port;
use nomad_secrets_golden::vault::{Mode, VaultDouble};
use nomad_secrets_golden::{NOMAD_KILL, Plugin, Scratch, Suite, nomad_env, record_run};

const AWS: &str = env!("CARGO_BIN_EXE_aws");

fn seeded() -> (Moto, String, String) {
    let moto = Moto::start();
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/moto/seed.py");
    let out: serde_json::Value = serde_json::from_str(&moto.run_python(seed)).unwrap();
    let arn = |name: &str| out[name].as_str().unwrap().to_owned();
    (moto, arn("db_arn"), arn("eu_arn"))
}

#[test]
fn golden_cases() {
    let (moto, arn, eu_arn) = seeded();
    let black_hole = BlackHole::new();
    let faults = AwsFaults::start();
    let imds = Imds::start("us-east-1", "from-instance-role", "CANARY-role-key");
    let refused = format!("http://127.0.0.1:{}", free_port());
    let profiles = Scratch::new("aws-profiles");
    let credentials = profiles.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = from-file\naws_secret_access_key = CANARY-file-key\n",
    )
    .unwrap();
    // A person's home with the AWS CLI's files: profile `dev` holds moto's test keys.
    let home = profiles.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[dev]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[profile dev]\nregion = us-east-1\n",
    )
    .unwrap();
    let audit = Scratch::new("aws-audit");
    // Any TLS server whose certificate a private CA signed (the Vault double is one) stands for
    // an endpoint or proxy that no CA the node trusts vouches for.
    let (material, pki_files) = pki(profiles.path());
    let untrusted = VaultDouble::start(Mode::Tls, Some(&material));
    let expired = VaultDouble::start(Mode::ExpiredTls, Some(&material));
    Suite::new("aws", AWS, "aws")
        .placeholder("[AUDIT]", audit.path().to_str().unwrap())
        .placeholder("[DB_ARN]", &arn)
        .placeholder("[EU_ARN]", &eu_arn)
        .placeholder("[EU_ARN_MISSING]", &eu_arn.replace("eu/db", "eu/nothing"))
        .placeholder("[ENDPOINT]", moto.endpoint())
        .placeholder("[BLACK_HOLE]", black_hole.url())
        .placeholder("[IMDS]", imds.url())
        .placeholder("[FAULTS]", faults.url())
        .placeholder("[REFUSED]", &refused)
        .placeholder("[UNTRUSTED_TLS]", untrusted.url())
        .placeholder("[EXPIRED_TLS]", expired.url())
        .placeholder("[CA]", pki_files.ca.to_str().unwrap())
        .placeholder("[WRONG_CA]", pki_files.wrong_ca.to_str().unwrap())
        .placeholder("[CREDENTIALS_FILE]", credentials.to_str().unwrap())
        .placeholder("[HOME]", home.to_str().unwrap())
        .run();
    assert!(
        nomad_secrets_golden::only_faults() || imds.served() >= 4,
        "the instance-role case never reached the IMDS double"
    );
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let (moto, _, _) = seeded();
    let settings = format!(
        "endpoint_url = \"{}\"\nimds_endpoint = \"off\"\n",
        moto.endpoint()
    );
    let plugin = Plugin::install(Path::new(AWS), "aws", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let paths = [
        "prod/db#password",
        "plain",
        "binary",
        "prod/db?stage=AWSPREVIOUS#password",
    ];
    plugin.assert_concurrent_fetches(&paths, &env, 40);
}

#[test]
fn sigterm_in_the_middle_of_a_fetch_ends_it_with_a_protocol_error() {
    let black_hole = BlackHole::new();
    let settings = format!(
        "endpoint_url = \"{}\"\nimds_endpoint = \"off\"\ndeadline = \"30s\"\n",
        black_hole.url()
    );
    let plugin = Plugin::install(Path::new(AWS), "aws", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "CANARY-s"),
        ],
    );
    plugin.assert_sigterm_mid_fetch("aws", "prod/db", &env);
}

/// The node's instance-role credentials work for one fetch and have expired by the next (the
/// metadata service still hands out the old session): the second fetch ends in one clear error
/// before Nomad's kill. Each run loads credentials anew; nothing stale is kept between runs.
#[test]
fn instance_credentials_that_expire_between_two_fetches() {
    let faults = AwsFaults::start();
    let imds = Imds::start("us-east-1", "ASIAVALIDSESSION", "CANARY-role-key");
    let settings = format!(
        "endpoint_url = \"{}\"\nimds_endpoint = \"{}\"\n",
        faults.url(),
        imds.url()
    );
    let plugin = Plugin::install(Path::new(AWS), "aws", Some(&settings), 0o644);
    let env = nomad_env("fetch", &[]);
    let first = plugin.run(&["fetch", "good#password"], &env);
    first.check_contract("fetch").unwrap();
    assert!(first.stdout.starts_with("{\"result\""), "{first:?}");

    imds.rotate(EXPIRED_KEY, "CANARY-expired-role-key");
    let started = Instant::now();
    let second = plugin.run(&["fetch", "good#password"], &env);
    let elapsed = started.elapsed();
    record_run(
        "aws",
        "credentials-expire-between-fetches",
        Some("credentials expire between two calls"),
        &second,
        elapsed,
    );
    second.check_contract("fetch").unwrap();
    second.check_no_canary().unwrap();
    assert!(
        second.stdout.starts_with("{\"error\"") && second.stdout.contains("expired"),
        "{second:?}"
    );
    assert!(elapsed < NOMAD_KILL, "{elapsed:?}");
}

/// The node-local cache against moto: a second fetch is served from the cache, and with moto
/// stopped, past the TTL, the last value is served within `cache_max_stale`, then refused
/// after it.
#[test]
fn the_cache_serves_the_last_value_while_the_endpoint_is_down() {
    let (moto, _, _) = seeded();
    let cache = format!("/dev/shm/nomad-secrets-aws-cache-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&cache);
    let settings = format!(
        "endpoint_url = \"{}\"\nimds_endpoint = \"off\"\ncache_ttl = \"1s\"\ncache_max_stale = \"4s\"\ncache_dir = \"{cache}\"\ndeadline = \"3s\"\n",
        moto.endpoint()
    );
    let plugin = Plugin::install(Path::new(AWS), "aws", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let first = plugin.run(&["fetch", "prod/db#password"], &env);
    assert_eq!(
        first.stdout,
        "{\"result\":{\"password\":\"CANARY-db-v2\"}}\n"
    );
    drop(moto);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stale = plugin.run(&["fetch", "prod/db#password"], &env);
    stale.check_contract("fetch").unwrap();
    assert_eq!(
        stale.stdout, first.stdout,
        "the last good value while moto is down"
    );
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let too_old = plugin.run(&["fetch", "prod/db#password"], &env);
    too_old.check_contract("fetch").unwrap();
    assert!(too_old.stdout.starts_with("{\"error\""), "{too_old:?}");
    let _ = std::fs::remove_dir_all(&cache);
}

/// A role per job: the node has no credentials at all, so only the role the job's verified
/// workload identity is exchanged for (AssumeRoleWithWebIdentity on moto's STS) can read.
/// Moto's state shows which role was assumed and the session name CloudTrail would show.
#[test]
fn a_verified_identity_reads_with_its_own_role() {
    use nomad_secrets_golden::identity::{Signer, claims, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let (moto, _, _) = seeded();
    let signer = Signer::ed25519("ed-1");
    let jwks = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let settings = format!(
        "endpoint_url = \"{m}\"\nsts_endpoint_url = \"{m}\"\nimds_endpoint = \"off\"\n\
         region = \"us-east-1\"\nidentity_jwks_url = \"{}/.well-known/jwks.json\"\n\
         identity_role_arn = \"arn:aws:iam::123456789012:role/nomad.{{namespace}}.{{job}}\"\n",
        jwks.url(),
        m = moto.endpoint(),
    );
    let plugin = Plugin::install(Path::new(AWS), "aws", Some(&settings), 0o644);
    let mut env = nomad_env("fetch", &[]);
    env.insert("NOMAD_NAMESPACE".into(), "payments".into());
    env.insert("NOMAD_JOB_ID".into(), "api".into());
    let without = plugin.run(&["fetch", "prod/db#password"], &env);
    without.check_contract("fetch").unwrap();
    assert!(without.stdout.contains("\"error\""), "{without:?}");
    let token = signer.sign(&claims("payments", "api"));
    env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token.clone());
    let with = plugin.run(&["fetch", "prod/db#password"], &env);
    with.check_contract("fetch").unwrap();
    assert!(with.stdout.starts_with("{\"result\""), "{with:?}");
    assert!(!with.stdout.contains(&token));
    let assumed = moto.run_python(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/moto/assumed_roles.py"
    ));
    assert!(
        assumed.contains("arn:aws:iam::123456789012:role/nomad.payments.api")
            && assumed.contains("nomad.payments.api"),
        "moto's STS saw: {assumed}"
    );
    // A job whose ID cannot be part of a role name is refused, not given another role.
    env.insert("NOMAD_JOB_ID".into(), "api/../admin".into());
    env.insert(
        "NOMAD_WORKLOAD_IDENTITY".into(),
        signer.sign(&claims("payments", "api/../admin")),
    );
    let odd = plugin.run(&["fetch", "prod/db#password"], &env);
    assert!(odd.stdout.contains("IAM role name"), "{odd:?}");
}

/// Per-job roles are never optional for the job: with `identity_role_arn` set, a run without a
/// verified identity is denied rather than served with the node's credentials (a credentials
/// file here, whose key would show at the recording endpoint), and a template that could give
/// two jobs one role (`nomad-{namespace}-{job}`: namespace `prod-db`, job `api` against
/// namespace `prod`, job `db-api`) is refused.
#[test]
fn identity_roles_never_fall_back_and_never_collide() {
    use nomad_secrets_golden::identity::{Signer, claims, key_set};
    use nomad_secrets_golden::recorder::{Canned, Recorder};
    let signer = Signer::ed25519("ed-1");
    let server = Recorder::start(vec![Canned {
        matches: "/.well-known/jwks.json",
        status: 200,
        body: key_set(&[&signer]),
    }]);
    let scratch = Scratch::new("aws-identity-node");
    let credentials = scratch.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIANODEEXAMPLE00001\naws_secret_access_key = CANARY-node\n",
    )
    .unwrap();
    let settings = |template: &str| {
        format!(
            "endpoint_url = \"{u}\"\nsts_endpoint_url = \"{u}\"\nimds_endpoint = \"off\"\n\
             region = \"us-east-1\"\nidentity_jwks_url = \"{u}/.well-known/jwks.json\"\n\
             credentials_file = \"{}\"\nidentity_role_arn = \"{template}\"\n",
            credentials.display(),
            u = server.url()
        )
    };
    let run = |plugin: &Plugin, namespace: &str, job: &str, token: Option<String>| {
        let mut env = nomad_env("fetch", &[]);
        env.insert("NOMAD_NAMESPACE".into(), namespace.into());
        env.insert("NOMAD_JOB_ID".into(), job.into());
        if let Some(token) = token {
            env.insert("NOMAD_WORKLOAD_IDENTITY".into(), token);
        }
        let out = plugin.run(&["fetch", "prod/db#password"], &env);
        out.check_contract("fetch").unwrap();
        out.stdout
    };
    let good = Plugin::install(
        Path::new(AWS),
        "aws",
        Some(&settings(
            "arn:aws:iam::123456789012:role/nomad.{namespace}.{job}",
        )),
        0o644,
    );
    let out = run(&good, "payments", "api", None);
    assert!(out.contains("passed no `NOMAD_WORKLOAD_IDENTITY`"), "{out}");
    assert!(
        !server.received().contains("AKIANODEEXAMPLE00001"),
        "the node's key reached the store: {}",
        server.received()
    );
    let ambiguous = Plugin::install(
        Path::new(AWS),
        "aws",
        Some(&settings(
            "arn:aws:iam::123456789012:role/nomad-{namespace}-{job}",
        )),
        0o644,
    );
    for (namespace, job) in [("prod", "db-api"), ("prod-db", "api")] {
        server.clear();
        let out = run(
            &ambiguous,
            namespace,
            job,
            Some(signer.sign(&claims(namespace, job))),
        );
        assert!(
            out.contains("two jobs could fill in the same role"),
            "{out}"
        );
        assert!(!server.received().contains("AssumeRoleWithWebIdentity"));
    }
}
