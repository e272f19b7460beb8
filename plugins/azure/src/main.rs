//! `secrets/azure`: see the crate docs of `nomad_secrets_azure`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_azure::AzureBackend>()
}
