//! `secrets/vault-kv`: see the crate docs of `nomad_secrets_vault`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_vault::VaultBackend>()
}
