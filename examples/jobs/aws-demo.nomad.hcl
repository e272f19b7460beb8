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

      # A JSON secret: one key per field.
      secret "db" {
        provider = "aws"
        path     = "prod/db"

        env {
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
