# A job that reads an AWS Secrets Manager secret with the `aws` plugin.
# Node set-up: /opt/nomad/plugins/secrets/aws, and usually an EC2 instance role allowed
# secretsmanager:GetSecretValue (and kms:Decrypt for customer-managed keys) on the secret.
job "aws-demo" {
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

      # A JSON secret: one key per field.
      secret "db" {
        provider = "aws"
        path     = "prod/db"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
          AWS_REGION = "us-east-2"
        }
      }

      # The previous version's API key, by full ARN (cross-account ARNs work the same way).
      secret "api" {
        provider = "aws"
        path     = "arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/api-AbCdEf?stage=AWSPREVIOUS#key"
      }

      env {
        DB_USER     = "${secret.db.username}"
        DB_PASSWORD = "${secret.db.password}"
        API_KEY     = "${secret.api.key}"
      }
    }
  }
}
