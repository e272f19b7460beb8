# A job that reads Vault KV secrets with the `vault-kv` plugin.
# Node set-up: /opt/nomad/plugins/secrets/vault-kv and vault-kv.toml beside it (address, ca_file,
# and the node's token_file or AppRole if jobs bring no credentials of their own).
job "vault-kv-demo" {
  type = "batch"

  group "demo" {
    task "print" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "test -n \"$DB_PASSWORD\" && echo got the password for $DB_USER"]
      }

      # The task's workload identity, handed to the plugin below: where the operator verifies
      # identities (identity_jwks_url in the plugin's settings), it proves which job asks, and
      # may be exchanged for credentials of the job's own (docs/identity.md).
      identity {
        name = "secrets"
        aud  = ["nomad-secrets"]
        env  = true
        ttl  = "1h"
      }

      # KV v2 at secret/, read with the node's credentials (operator settings).
      secret "db" {
        provider = "vault-kv"
        path     = "secret/payments/db"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
        }
      }

      # A pinned version of one key, logged in with the job's own JWT (Vault checks its claims
      # against the role). With its own credentials a job may also set VAULT_ADDR/VAULT_NAMESPACE.
      secret "api" {
        provider = "vault-kv"
        path     = "secret/payments/api?version=3#key"
        env {
          VAULT_JWT      = "eyJhbGciOi...the workload identity token..."
          VAULT_JWT_ROLE = "payments"
        }
      }

      env {
        DB_USER     = "${secret.db.username}"
        DB_PASSWORD = "${secret.db.password}"
        API_KEY     = "${secret.api.key}"
      }
    }
  }
}
