//! `secrets/aws-ssm`: see the crate docs of `nomad_secrets_aws_ssm`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_aws_ssm::SsmBackend>()
}
