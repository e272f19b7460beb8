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

      # The latest version of a JSON secret of the configured project: one key per field.
      secret "db" {
        provider = "gcp"
        path     = "payments-db"
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
