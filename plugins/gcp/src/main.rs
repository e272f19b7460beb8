//! `secrets/gcp`: see the crate docs of `nomad_secrets_gcp`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_gcp::GcpBackend>()
}
