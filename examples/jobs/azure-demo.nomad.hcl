# A job that reads Azure Key Vault with the `azure` plugin.
# Node set-up: /opt/nomad/plugins/secrets/azure, and azure.toml with the default vault; the VM's
# managed identity (or the operator's app) needs the role "Key Vault Secrets User" on the vault.
job "azure-demo" {
  type = "batch"

  group "demo" {
    task "print" {
      driver = "exec"

      config {
        command = "/bin/sh"
        # Secrets are interpolated in env, driver config and services: the task writes the key.
        args = ["-c", "umask 077 && printf %s \"$TLS_KEY\" > local/tls.key && test -n \"$DB_PASSWORD\" && echo got them"]
      }

      # The task's workload identity, handed to the plugin below: where the operator verifies
      # identities, it proves which job asks; where the operator names an app with federated
      # credentials for Nomad's issuer, the job reads with what that app grants it.
      identity {
        name = "secrets"
        aud  = ["nomad-secrets"]
        env  = true
        ttl  = "1h"
      }

      # The latest version of a JSON secret of the default vault: one key per field.
      secret "db" {
        provider = "azure"
        path     = "payments-db"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
        }
      }

      # A certificate's secret, of another vault: certificate, private_key and chain as PEM.
      secret "tls" {
        provider = "azure"
        path     = "edge-kv/api-tls"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
        }
      }

      env {
        DB_PASSWORD = "${secret.db.password}"
        TLS_KEY     = "${secret.tls.private_key}"
      }
    }
  }
}
