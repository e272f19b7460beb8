//! `cargo xtask order`: the link order that keeps a plugin's fingerprint small.
//!
//! A fingerprint runs a few hundred functions (glibc's start-up, Rust's runtime, the protocol
//! crate's argument check and printer) scattered across megabytes of code. Each first touch of
//! a code page maps its 64 KiB neighbourhood (the kernel's fault-around), so the SDK plugins
//! had about 1.3 MiB of code resident for a few kilobytes run. The release build hands lld
//! `fingerprint.order` (`--symbol-ordering-file`): those functions first, together, so they
//! fill a few pages. This task writes the file: it links each plugin with its symbols, runs
//! its fingerprint under valgrind's callgrind, and lists every function that ran, for all
//! plugins together (one list: the plugins share almost all of it).
//!
//! What valgrind cannot show is added: its guest has no vDSO, so glibc's set-up of it (a
//! static binary's only symbol lookup) never runs there ([`NATIVE_ONLY`]); and its emulated CPU
//! lacks features (RTM), so glibc's string functions resolve to other variants than on the
//! machine: every variant of a string function that ran is listed.
//!
//! The list names symbols, which a new compiler, a dependency update or a rename can change;
//! a stale list costs memory, never correctness, and the fingerprint gate of `cargo xtask
//! test` says to run this task again.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, root};

/// The committed list.
pub fn file() -> PathBuf {
    root().join("xtask/fingerprint.order")
}

/// Relinks every plugin with its symbols, records its fingerprint's functions, writes the list.
pub fn run() -> Result {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err("this task needs valgrind (`apt-get install valgrind`)".into());
    }
    let scratch = crate::moto::target_dir().join("fingerprint-order");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let mut symbols: Vec<String> = Vec::new();
    for plugin in crate::plugins::all()? {
        let (mut link, binary) = crate::release_link(&plugin, &["-C", "strip=none"])?;
        crate::run(&mut link)?;
        let profile = scratch.join(format!("{}.callgrind", plugin.name));
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--demangle=no", "--quiet"])
            .arg(format!("--callgrind-out-file={}", profile.display()))
            .arg(&binary)
            .arg("fingerprint")
            .env_clear()
            .env("CPI_OPERATION", "fingerprint")
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !status.success() {
            return Err(format!(
                "`{} fingerprint` under callgrind: {status}",
                plugin.name
            ));
        }
        let defined = defined_symbols(&binary)?;
        let mut found = functions(&profile)?;
        found.extend(
            NATIVE_ONLY
                .iter()
                .filter(|name| defined.iter().any(|d| d == *name))
                .map(|name| (*name).to_owned()),
        );
        found.extend(variants(&defined, &found));
        println!(
            "order: `{}` fingerprint ran {} functions",
            plugin.name,
            found.len()
        );
        for symbol in found {
            if !symbols.contains(&symbol) {
                symbols.push(symbol);
            }
        }
    }
    std::fs::write(file(), symbols.join("\n") + "\n").map_err(|e| e.to_string())?;
    println!(
        "order: {} symbols written to {}; the next release build links with them",
        symbols.len(),
        file().display()
    );
    Ok(())
}

/// glibc's set-up of the vDSO in a static binary (`_dl_non_dynamic_init`: `setup_vdso`, then
/// `dl_vdso_vsym` for each vDSO function): the path valgrind's guest, which has no vDSO, skips.
const NATIVE_ONLY: &[&str] = &[
    "_dl_non_dynamic_init",
    "_dl_new_object",
    "_dl_add_to_namespace_list",
    "_dl_setup_hash",
    "_dl_lookup_symbol_x",
    "do_lookup_x",
    "check_match",
    "_dl_name_match_p",
    "__pthread_mutex_lock",
    "__pthread_mutex_unlock",
    "__pthread_mutex_unlock_usercnt",
    "strcmp",
];

/// Every variant in `binary` of the glibc string functions among `found` (`__strlen_avx2` ran:
/// `__strlen_evex`, `__strlen_avx2_rtm`... too), as the machine may pick another than valgrind.
fn variants(defined: &[String], found: &[String]) -> Vec<String> {
    const CPU_VARIANTS: [&str; 7] = ["_sse2", "_ssse3", "_sse4", "_avx", "_evex", "_erms", "_rtm"];
    let families: Vec<String> = found
        .iter()
        .filter_map(|name| {
            if let Some(base) = name.strip_suffix("_ifunc") {
                return Some(format!("__{base}_"));
            }
            let rest = name.strip_prefix("__")?;
            let cut = CPU_VARIANTS.iter().filter_map(|v| rest.find(v)).min()?;
            Some(format!("__{}_", &rest[..cut]))
        })
        .collect();
    defined
        .iter()
        .filter(|symbol| families.iter().any(|f| symbol.starts_with(f.as_str())))
        .cloned()
        .collect()
}

/// The symbols `binary` defines (`nm`).
fn defined_symbols(binary: &Path) -> Result<Vec<String>> {
    let output = Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .map(str::to_owned)
        .collect())
}

/// The functions named in a callgrind profile (`fn=(id) name` and `cfn=(id) name`, each once;
/// later mentions give only the id), without the unnamed (addresses).
fn functions(profile: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(profile).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("fn=(").or(line.strip_prefix("cfn=(")) else {
            continue;
        };
        let Some((_, name)) = rest.split_once(") ") else {
            continue;
        };
        if !name.starts_with("0x") && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
