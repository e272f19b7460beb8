# A job that reads secrets with the `file` plugin.
# Node set-up: /opt/nomad/plugins/secrets/file (the plugin) and file.toml beside it with
# root = "/etc/nomad-secrets"; the secrets below live in that folder.
job "file-demo" {
  type = "batch"

  group "demo" {
    task "print" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo connecting as $DB_USER to $DB_HOST; test -n \"$DB_PASSWORD\""]
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

      # /etc/nomad-secrets/db.json: {"username": "...", "password": "...", "host": "..."}
      secret "db" {
        provider = "file"
        path     = "db.json"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
        }
      }

      # One key of a dotenv file.
      secret "api" {
        provider = "file"
        path     = "app.env#API_TOKEN"
      }

      # A folder: one key per file (tls/cert, tls/key).
      secret "tls" {
        provider = "file"
        path     = "tls"
      }

      env {
        DB_USER     = "${secret.db.username}"
        DB_PASSWORD = "${secret.db.password}"
        DB_HOST     = "${secret.db.host}"
        API_TOKEN   = "${secret.api.API_TOKEN}"
        TLS_CERT    = "${secret.tls.cert}"
      }
    }
  }
}
