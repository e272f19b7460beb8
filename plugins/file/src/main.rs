//! `secrets/file`: see the crate docs of `nomad_secrets_file`.
fn main() {
    nomad_secrets_protocol::main::<nomad_secrets_file::FileBackend>()
}
