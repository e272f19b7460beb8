//! `vault-kv fetch` against a real OpenBao server on 127.0.0.1, what each fetch costs the server
//! (from its audit device), and the burst without and with the node-local cache.

use std::path::PathBuf;

use nomad_secrets_golden::openbao::{OpenBao, audit_config, audited_requests};

use super::{BURST, Contender, audited_burst, table};
use crate::Result;

/// `vault-kv fetch` against a real OpenBao server, beside one `curl` request (the floor).
pub(super) fn vault_table(
    report: &mut String,
    loads: &mut Vec<String>,
    runs: Option<usize>,
    secrets: &std::path::Path,
) -> Result {
    let bench = secrets.join("..");
    let log = bench.join("openbao-audit.log");
    let _ = std::fs::remove_file(&log);
    let config = audit_config(&bench, &log);
    let (bao, _) = OpenBao::seeded_with(Some(&config));
    let url = bao.address().to_owned();
    let settings = secrets.join("vault-kv.toml");
    crate::install::write_settings(&settings, &format!("address = \"{url}\"\n"))?;
    let env = [("CPI_OPERATION", "fetch"), ("VAULT_TOKEN", "root-token")];
    let contenders = [
        Contender::new(
            "curl (one request: the floor)",
            "/usr/bin/curl",
            &[
                "-sf",
                "-H",
                "X-Vault-Token: root-token",
                "-H",
                "X-Vault-Request: true",
                &format!("{url}/v1/secret/data/db"),
            ],
            &[],
        ),
        Contender::new(
            "vault-kv fetch secret/db (mount lookup + read)",
            secrets.join("vault-kv"),
            &["fetch", "secret/db"],
            &env,
        ),
    ];
    // What one fetch of each kind costs the server, from its own audit device.
    let mut costs = Vec::new();
    for contender in &contenders[1..] {
        let before = audited_requests(&log);
        contender.command().output().map_err(|e| e.to_string())?;
        costs.push(format!(
            "{}: {} request(s) at the server",
            contender.label,
            audited_requests(&log) - before
        ));
    }
    if let Some(runs) = runs {
        table(
            report,
            "vault-kv: KV v2 read against a real OpenBao 2.7.2 server on 127.0.0.1",
            runs,
            &contenders,
        )?;
        report.push_str(&format!(
            "Counted by OpenBao's file audit device: {}.\n\n",
            costs.join("; ")
        ));
    }
    let paths = ["secret/db", "kv1/app", "secret/db?version=1"];
    let token = [("VAULT_TOKEN", "root-token")];
    let before = audited_requests(&log);
    audited_burst(
        loads,
        "vault-kv",
        secrets,
        "vault-kv",
        &format!("address = \"{url}\"\n"),
        &paths,
        &token,
    )?;
    let without_cache = audited_requests(&log) - before;
    // The same burst through the node-local cache (a tmpfs folder): the server's cost, and a
    // cache hit beside a fetch from the store.
    let cache = PathBuf::from(format!(
        "/dev/shm/nomad-secrets-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&cache);
    let before = audited_requests(&log);
    audited_burst(
        loads,
        "vault-kv (cache)",
        secrets,
        "vault-kv",
        &format!(
            "address = \"{url}\"\ncache_ttl = \"1h\"\ncache_dir = \"{}\"\n",
            cache.display()
        ),
        &paths,
        &token,
    )?;
    let with_cache = audited_requests(&log) - before;
    report.push_str(&format!(
        "vault-kv burst of {BURST} fetches (3 secrets): OpenBao's audit device saw {without_cache} requests without the cache, {with_cache} with it.\n\n"
    ));
    if let Some(runs) = runs {
        // Beside the store's row in the table above (mount lookup + read).
        let hit = [
            Contender::new(
                "file fetch db.json (the floor)",
                secrets.join("file"),
                &["fetch", "db.json"],
                &[("CPI_OPERATION", "fetch")],
            ),
            contenders[1].clone_as("vault-kv fetch secret/db (a cache hit)"),
        ];
        table(
            report,
            "vault-kv: a cache hit against the file floor",
            runs,
            &hit,
        )?;
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
