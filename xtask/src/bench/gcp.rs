//! `gcp fetch` against drongo (Secret Manager's REST API on 127.0.0.1), with the job's token
//! and with a service-account key, beside `curl` and Google's Python client; then the burst.

use nomad_secrets_golden::drongo::Drongo;

use super::{Contender, audited_burst, bench_venv, table};
use crate::Result;

/// `gcp fetch` against drongo (Secret Manager's REST API on 127.0.0.1), with the job's token and
/// with a service-account key (which signs a JWT per run), beside one `curl` request with a
/// bearer token (the floor) and Google's Python client (`google-cloud-secret-manager`, REST).
pub(super) fn gcp_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    let bench = secrets.join("..");
    let key = bench.join("gcp-service-account.json");
    let drongo = Drongo::seeded(&key);
    let endpoint = drongo.endpoint().to_owned();
    let base =
        format!("endpoint_url = \"{endpoint}\"\nmetadata_endpoint = \"off\"\nproject = \"acme\"\n");
    let settings = |name: &str, extra: &str| {
        crate::install::write_settings(
            &secrets.join(format!("{name}.toml")),
            &format!("{base}{extra}"),
        )
    };
    settings("gcp", "")?;
    // The same executable as another provider, with the operator's service-account key.
    let with_key = secrets.join("gcp-key");
    let _ = std::fs::remove_file(&with_key);
    std::fs::hard_link(secrets.join("gcp"), &with_key).map_err(|e| e.to_string())?;
    settings(
        "gcp-key",
        &format!("credentials_file = \"{}\"\n", key.display()),
    )?;
    let token = [("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.bench")];
    let fetch = [("CPI_OPERATION", "fetch")];
    let mut contenders = vec![
        Contender::new(
            "curl (one request with a bearer token: the floor)",
            "/usr/bin/curl",
            &[
                "-sf",
                "-H",
                "Authorization: Bearer ya29.bench",
                &format!("{endpoint}/v1/projects/acme/secrets/db/versions/latest:access"),
            ],
            &[],
        ),
        Contender::new(
            "gcp fetch db (the job's access token)",
            secrets.join("gcp"),
            &["fetch", "db"],
            &[token.as_slice(), &fetch].concat(),
        ),
        Contender::new(
            "gcp fetch db (the operator's service-account key)",
            &with_key,
            &["fetch", "db"],
            &fetch,
        ),
    ];
    if let Some(venv) = bench_venv("google-cloud-secret-manager")? {
        let script = bench.join("gcp-python.py");
        std::fs::write(
            &script,
            "import sys\n\
             from google.api_core.client_options import ClientOptions\n\
             from google.cloud import secretmanager\n\
             from google.oauth2.credentials import Credentials\n\
             client = secretmanager.SecretManagerServiceClient(credentials=Credentials(sys.argv[2]), transport='rest', client_options=ClientOptions(api_endpoint=sys.argv[1]))\n\
             print(client.access_secret_version(name='projects/acme/secrets/db/versions/latest').payload.data.decode())\n",
        )
        .map_err(|e| e.to_string())?;
        let python = Contender::new(
            "Python google-cloud-secret-manager (REST, a bearer token)",
            venv.join("bin/python"),
            &[script.to_str().unwrap(), &endpoint, "ya29.bench"],
            &[],
        );
        // Measured only if it reads the secret here.
        let works = python
            .command()
            .status()
            .map_err(|e| e.to_string())?
            .success();
        match works {
            true => contenders.push(python),
            false => report.push_str(
                "gcp: Google's Python client did not read from drongo here; its row is left out.\n\n",
            ),
        }
    }
    if let Some(runs) = runs {
        table(
            report,
            "gcp: AccessSecretVersion against drongo on 127.0.0.1",
            runs,
            &contenders,
        )?;
    }
    audited_burst(
        loads,
        "gcp",
        secrets,
        "gcp",
        &base,
        &["db", "plain", "db#password", "db?version=1"],
        &token,
    )?;
    Ok(())
}
