//! The `aws-ssm` plugin run exactly as Nomad runs it, against a real AWS emulator (moto) on
//! 127.0.0.1, and a Parameter Store double for what moto cannot do (KMS and IAM refusals,
//! throttling, a hierarchy too large for one fetch).

use std::path::Path;

use nomad_secrets_golden::aws_faults::AwsFaults;
use nomad_secrets_golden::moto::{BlackHole, Moto};
use nomad_secrets_golden::{Plugin, Suite, nomad_env};

const AWS_SSM: &str = env!("CARGO_BIN_EXE_aws-ssm");

fn seeded() -> (Moto, serde_json::Value) {
    let moto = Moto::start();
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/moto/seed.py");
    let out = serde_json::from_str(&moto.run_python(seed)).unwrap();
    (moto, out)
}

#[test]
fn golden_cases() {
    let (moto, seeded) = seeded();
    let faults = AwsFaults::start();
    let black_hole = BlackHole::new();
    let eu = seeded["eu_parameter_arn"].as_str().unwrap();
    Suite::new("aws-ssm", AWS_SSM, "aws-ssm")
        .placeholder("[EU_PARAMETER_ARN]", eu)
        .placeholder("[ENDPOINT]", moto.endpoint())
        .placeholder("[FAULTS]", faults.url())
        .placeholder("[BLACK_HOLE]", black_hole.url())
        .run();
}

#[test]
fn many_fetches_at_once_all_answer_exactly() {
    let (moto, _) = seeded();
    let settings = format!(
        "endpoint_url = \"{}\"\nimds_endpoint = \"off\"\n",
        moto.endpoint()
    );
    let plugin = Plugin::install(Path::new(AWS_SSM), "aws-ssm", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let paths = [
        "/app/prod/db/password",
        "/app/prod/",
        "/app/prod/db/password?label=previous",
        "/many/",
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
    let plugin = Plugin::install(Path::new(AWS_SSM), "aws-ssm", Some(&settings), 0o644);
    let env = nomad_env(
        "fetch",
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "CANARY-s"),
        ],
    );
    plugin.assert_sigterm_mid_fetch("aws-ssm", "/app/prod/db/password", &env);
}
