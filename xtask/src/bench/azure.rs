//! `azure fetch` against the Key Vault, Entra ID and IMDS double over TLS on 127.0.0.1 (no Key
//! Vault emulator installs here), beside `curl`: one read with a token in hand (the floor), and
//! the same three exchanges the plugin makes in a fresh process (Key Vault's challenge, the
//! token from Entra ID, the read), so the challenge round trip is counted honestly.

use nomad_secrets_golden::azure::{AzureDouble, CLIENT_ID, CLIENT_SECRET, TENANT, TOKEN_SECRET};

use super::{Contender, audited_burst, table};
use crate::Result;

/// The vault the bench reads, and Key Vault's API version the SDK asks for.
const VAULT_URL: &str = "https://prod-kv.vault.azure.net";
const API: &str = "api-version=2025-07-01";

/// The table and the burst of `azure`.
pub fn azure_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    let bench = secrets.join("..");
    let scratch = bench.join("azure");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let double = AzureDouble::start(&scratch);
    let secret_file = scratch.join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).map_err(|e| e.to_string())?;
    let ca = double.ca_file().display().to_string();
    let settings = format!(
        "vault = \"prod-kv\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret_file = \"{}\"\nauthority_host = \"{}\"\nconnect_to = \"{}\"\n\
         ca_file = \"{ca}\"\nimds_endpoint = \"off\"\n",
        secret_file.display(),
        double.url(),
        double.address(),
    );
    crate::install::write_settings(&secrets.join("azure.toml"), &settings)?;
    let fetch = [("CPI_OPERATION", "fetch")];
    let plugin = Contender::new(
        "azure fetch db (the operator's client secret)",
        secrets.join("azure"),
        &["fetch", "db"],
        &fetch,
    );
    // The double accepts a token only once it has issued it: one fetch first.
    let first = plugin
        .command()
        .stdout(std::process::Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !String::from_utf8_lossy(&first.stdout).starts_with("{\"result\"") {
        return Err(format!(
            "azure: the plugin did not read from the double: {}",
            String::from_utf8_lossy(&first.stdout)
        ));
    }
    let connect = format!("prod-kv.vault.azure.net:443:{}", double.address());
    let read = format!("{VAULT_URL}/secrets/db/?{API}");
    let bearer = format!("Authorization: Bearer {TOKEN_SECRET}");
    let token_url = format!("{}/{TENANT}/oauth2/v2.0/token", double.url());
    let form = format!(
        "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=https%3A%2F%2Fvault.azure.net%2F.default"
    );
    let tls = ["-s", "--cacert", &ca, "--connect-to", &connect];
    let floor = Contender::new(
        "curl: the read, with a token in hand (the floor)",
        "/usr/bin/curl",
        &[&tls[..], &["-f", "-H", &bearer, &read]].concat(),
        &[],
    );
    let three = Contender::new(
        "curl: the plugin's three exchanges (challenge, token, read)",
        "/usr/bin/curl",
        &[
            &tls[..],
            &["-o", "/dev/null", &read, "--next"],
            &tls[..],
            &["-o", "/dev/null", "-d", &form, &token_url, "--next"],
            &tls[..],
            &["-f", "-H", &bearer, &read],
        ]
        .concat(),
        &[],
    );
    if let Some(runs) = runs {
        table(
            report,
            "azure: Get Secret against the Key Vault double over TLS on 127.0.0.1",
            runs,
            &[three, floor, plugin],
        )?;
    }
    audited_burst(
        loads,
        "azure",
        secrets,
        "azure",
        &settings,
        &["db", "plain", "db#password", "cert"],
        &[],
    )
}
