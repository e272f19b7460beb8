//! The `aws` scenario: a moto server started and seeded for it, its table and its burst, and,
//! while that server still runs, the `aws-ssm` scenario (`aws_ssm.rs`) against the same server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::aws_ssm::ssm_table;
use super::{Contender, audited_burst, aws_cli, table};
use crate::{Result, root};

/// `aws fetch` against a seeded moto server, beside one `curl --aws-sigv4` request (the floor:
/// one signed HTTP exchange) and the AWS CLI (what a shell plugin would call).
pub(super) fn aws_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    let venv = crate::moto::target_dir().join("moto-venv");
    if !venv.join("bin/moto_server").exists() {
        report.push_str("## aws\n\nSkipped: run `cargo xtask moto` first.\n\n");
        return Ok(());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut moto = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("moto_server: {e}"))?;
    let result = (|| {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("moto_server did not start".to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        crate::run(
            Command::new(venv.join("bin/python"))
                .arg(root().join("tests/moto/seed.py"))
                .arg(&endpoint)
                .stdout(Stdio::null()),
        )?;
        let settings = secrets.join("aws.toml");
        crate::install::write_settings(
            &settings,
            &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
        )?;
        let keys = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ];
        let mut contenders = vec![
            Contender::new(
                "curl --aws-sigv4 (one signed request)",
                "/usr/bin/curl",
                &[
                    "-sf",
                    "--aws-sigv4",
                    "aws:amz:us-east-1:secretsmanager",
                    "--user",
                    "testing:testing",
                    "-H",
                    "X-Amz-Target: secretsmanager.GetSecretValue",
                    "-H",
                    "Content-Type: application/x-amz-json-1.1",
                    "-d",
                    "{\"SecretId\":\"prod/db\"}",
                    &endpoint,
                ],
                &[],
            ),
            Contender::new(
                "aws fetch prod/db (this plugin)",
                secrets.join("aws"),
                &["fetch", "prod/db"],
                &[keys.as_slice(), &[("CPI_OPERATION", "fetch")]].concat(),
            ),
        ];
        if let Some(cli) = aws_cli()? {
            contenders.push(Contender::new(
                "AWS CLI secretsmanager get-secret-value",
                cli,
                &[
                    "secretsmanager",
                    "get-secret-value",
                    "--secret-id",
                    "prod/db",
                    "--endpoint-url",
                    &endpoint,
                ],
                // AWS CLI v1 reads AWS_DEFAULT_REGION, not AWS_REGION.
                &[
                    keys.as_slice(),
                    &[("HOME", "/tmp"), ("AWS_DEFAULT_REGION", "us-east-1")],
                ]
                .concat(),
            ));
        }
        if let Some(runs) = runs {
            table(
                report,
                "aws: GetSecretValue against moto on 127.0.0.1",
                runs,
                &contenders,
            )?;
        }
        audited_burst(
            loads,
            "aws",
            secrets,
            "aws",
            &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
            &["prod/db", "plain", "binary", "prod/db?stage=AWSPREVIOUS"],
            &keys,
        )?;
        let size = std::fs::metadata(secrets.join("aws"))
            .map_err(|e| e.to_string())?
            .len();
        report.push_str(&format!(
            "aws release binary: {:.1} MiB\n\n",
            size as f64 / (1 << 20) as f64
        ));
        ssm_table(report, loads, runs, secrets, &endpoint, &keys)
    })();
    let _ = moto.kill();
    let _ = moto.wait();
    result
}
