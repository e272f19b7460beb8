//! `aws-ssm fetch` against the moto server the `aws` scenario started and seeded: this one is
//! called from inside `aws_table`, while that server runs, which is why it takes the server's
//! endpoint and the keys rather than `aws_table`'s shape. Starting a moto server of its own would
//! seed a second one and move the measurement off the server the `aws` rows were measured on.

use super::{Contender, audited_burst, aws_cli, table};
use crate::Result;

/// `aws-ssm fetch` against moto (already seeded), beside one `curl --aws-sigv4` GetParameter
/// and the AWS CLI's `ssm get-parameter`; then the 200-fetch burst.
pub(super) fn ssm_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
    endpoint: &str,
    keys: &[(&str, &str)],
) -> Result {
    let settings = secrets.join("aws-ssm.toml");
    crate::install::write_settings(
        &settings,
        &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
    )?;
    let name = "/app/prod/db/password";
    let mut contenders = vec![
        Contender::new(
            "curl --aws-sigv4 (one signed GetParameter)",
            "/usr/bin/curl",
            &[
                "-sf",
                "--aws-sigv4",
                "aws:amz:us-east-1:ssm",
                "--user",
                "testing:testing",
                "-H",
                "X-Amz-Target: AmazonSSM.GetParameter",
                "-H",
                "Content-Type: application/x-amz-json-1.1",
                "-d",
                &format!("{{\"Name\":\"{name}\",\"WithDecryption\":true}}"),
                endpoint,
            ],
            &[],
        ),
        Contender::new(
            &format!("aws-ssm fetch {name} (this plugin)"),
            secrets.join("aws-ssm"),
            &["fetch", name],
            &[keys, &[("CPI_OPERATION", "fetch")]].concat(),
        ),
        Contender::new(
            "aws-ssm fetch /app/prod/ (a hierarchy of 5, one page)",
            secrets.join("aws-ssm"),
            &["fetch", "/app/prod/"],
            &[keys, &[("CPI_OPERATION", "fetch")]].concat(),
        ),
    ];
    if let Some(cli) = aws_cli()? {
        contenders.push(Contender::new(
            "AWS CLI ssm get-parameter --with-decryption",
            cli,
            &[
                "ssm",
                "get-parameter",
                "--with-decryption",
                "--name",
                name,
                "--endpoint-url",
                endpoint,
            ],
            &[
                keys,
                &[("HOME", "/tmp"), ("AWS_DEFAULT_REGION", "us-east-1")],
            ]
            .concat(),
        ));
    }
    if let Some(runs) = runs {
        table(
            report,
            "aws-ssm: GetParameter against moto on 127.0.0.1",
            runs,
            &contenders,
        )?;
    }
    audited_burst(
        loads,
        "aws-ssm",
        secrets,
        "aws-ssm",
        &format!("endpoint_url = \"{endpoint}\"\nimds_endpoint = \"off\"\n"),
        &[name, "/app/prod/", "/app/prod/config", "/many/"],
        keys,
    )
}
