//! `secrets/command` (and every provider made of it): see the crate docs of
//! `nomad_secrets_command`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_command::CommandBackend>()
}
