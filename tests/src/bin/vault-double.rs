//! `vault-double`: serves the Vault API double on 127.0.0.1 for `cargo xtask bench`, printing
//! its address on the first line of stdout, until stdin closes.
#![allow(clippy::print_stdout, reason = "prints its address for the bench")]

use nomad_secrets_golden::vault::{Mode, VaultDouble};

fn main() {
    let double = VaultDouble::start(Mode::Http, None);
    println!("{}", double.url());
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}
