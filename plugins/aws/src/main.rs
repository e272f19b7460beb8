//! `secrets/aws`: see the crate docs of `nomad_secrets_aws`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_aws::AwsBackend>()
}
