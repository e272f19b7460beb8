# A job that reads AWS Systems Manager Parameter Store with the `aws-ssm` plugin.
# Node set-up: /opt/nomad/plugins/secrets/aws-ssm, and usually an EC2 instance role allowed
# ssm:GetParameter and ssm:GetParametersByPath on /app/prod/* (and kms:Decrypt on the key of
# its SecureStrings).
job "aws-ssm-demo" {
  type = "batch"

  group "demo" {
    task "print" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "test -n \"$DB_PASSWORD\" && echo connecting to $DB_HOST as $DB_USER"]
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

      # A whole hierarchy, without knowing its names in advance: /app/prod/db/password becomes
      # the key db_password, /app/prod/db/user db_user (every character outside [A-Za-z0-9_-]
      # below the prefix is written _).
      secret "app" {
        provider = "aws-ssm"
        path     = "/app/prod/"

        env {
          NOMAD_WORKLOAD_IDENTITY = "${NOMAD_TOKEN_secrets}"
          AWS_REGION = "us-east-2"
        }
      }

      # One parameter, at the version labelled `stable`.
      secret "host" {
        provider = "aws-ssm"
        path     = "/app/prod/db/host?label=stable"
      }

      env {
        DB_USER     = "${secret.app.db_user}"
        DB_PASSWORD = "${secret.app.db_password}"
        DB_HOST     = "${secret.host.value}"
      }
    }
  }
}
