# A job that reads Google Cloud Secret Manager with the `gcp` plugin.
# Node set-up: /opt/nomad/plugins/secrets/gcp, and gcp.toml with the project; on GCE the
# instance's service account needs roles/secretmanager.secretAccessor on the secrets.
job "gcp-demo" {
  type = "batch"

  group "demo" {
    task "print" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "test -n \"$DB_PASSWORD\" && echo got the password"]
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

      # The latest version of a JSON secret of the configured project: one key per field.
      secret "db" {
        provider = "gcp"
        path     = "payments-db"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
        }
      }

      # A pinned version of a regional secret, with the job's own access token.
      secret "api" {
        provider = "gcp"
        path     = "projects/acme-prod/locations/europe-west1/secrets/api-key?version=3"

        env {
          GOOGLE_OAUTH_ACCESS_TOKEN = "{{ with nomadVar \"nomad/jobs/gcp-demo\" }}{{ .token }}{{ end }}"
        }
      }

      env {
        DB_PASSWORD = "${secret.db.password}"
        API_KEY     = "${secret.api.value}"
      }
    }
  }
}
