//! `cargo xtask install --plugin-dir DIR`: each plugin into `DIR/secrets/<name>`, atomically.
//!
//! A Nomad client may fingerprint the folder at any moment, and refuses to start when it holds a
//! dangling symlink, a symlink to a directory or to a non-executable file, or `foo.exe` without
//! `foo` (docs/CONTRACT.md). So each binary is written in full under `secrets/.install/` (a directory,
//! which Nomad skips), made executable there, and renamed into place: the folder only ever holds
//! the old binary or the new one. Afterwards the whole folder is checked against those rules.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::Result;

const USAGE: &str = "usage: cargo xtask install --plugin-dir DIR [--provider NAME]...";

/// Runs the task. Each `--provider NAME` also makes a provider of the `command` plugin:
/// `secrets/NAME` (a copy of `command`) with `examples/settings/command-NAME.toml` as its
/// settings, unless `secrets/NAME.toml` exists already (never overwritten).
pub fn run(args: &[String]) -> Result {
    let mut dir = None;
    let mut providers = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugin-dir" => dir = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--provider" => providers.push(args.next().ok_or(USAGE)?.clone()),
            _ => return Err(USAGE.into()),
        }
    }
    let dir = dir.ok_or(USAGE)?;
    let built = crate::build_release()?;
    for name in &providers {
        let recipe = crate::root().join(format!("examples/settings/command-{name}.toml"));
        if !recipe.is_file() {
            return Err(format!(
                "no recipe {} for provider `{name}`",
                recipe.display()
            ));
        }
        if ["nomad", "vault"].contains(&name.as_str()) || built.iter().any(|(n, _)| n == name) {
            return Err(format!(
                "`{name}` is taken (by Nomad's built-in providers or a plugin); choose another name"
            ));
        }
    }
    let mut plugins = built.clone();
    let command = built
        .iter()
        .find(|(n, _)| n == "command")
        .map(|(_, b)| b.clone());
    for name in &providers {
        let binary = command.clone().ok_or("no `command` plugin was built")?;
        plugins.push((name.clone(), binary));
    }
    let secrets = install(&dir, &plugins)?;
    for name in &providers {
        let settings = secrets.join(format!("{name}.toml"));
        if !settings.exists() {
            let recipe = crate::root().join(format!("examples/settings/command-{name}.toml"));
            let text = std::fs::read_to_string(&recipe)
                .map_err(|e| format!("{}: {e}", recipe.display()))?;
            write_settings(&settings, &text)?;
            println!(
                "settings {} (from {}): edit it",
                settings.display(),
                recipe.display()
            );
        }
    }
    for (name, _) in &plugins {
        println!("installed {}", secrets.join(name).display());
    }
    println!(
        "settings: write {}/<name>.toml (mode 0644), e.g. examples/settings/file.toml",
        secrets.display()
    );
    Ok(())
}

/// Writes a plugin's settings file as the plugin requires it: mode 0644 (writable by its owner
/// only), whatever mode an earlier file of that name had.
pub fn write_settings(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Installs `plugins` (name, built binary) into `<dir>/secrets/`; returns that folder.
pub fn install(dir: &Path, plugins: &[(String, PathBuf)]) -> Result<PathBuf> {
    let secrets = dir.join("secrets");
    let staging = secrets.join(".install");
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for (name, binary) in plugins {
        let staged = staging.join(name);
        let target = secrets.join(name);
        std::fs::copy(binary, &staged).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                binary.display(),
                staged.display()
            )
        })?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", staged.display()))?;
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", staged.display()))?;
        if target.is_dir() {
            return Err(format!(
                "{} is a directory; remove it first",
                target.display()
            ));
        }
        std::fs::rename(&staged, &target).map_err(|e| {
            format!(
                "cannot move {} to {}: {e}",
                staged.display(),
                target.display()
            )
        })?;
    }
    std::fs::remove_dir(&staging)
        .map_err(|e| format!("cannot remove {}: {e}", staging.display()))?;
    let problems = check_folder(&secrets)?;
    if !problems.is_empty() {
        return Err(format!(
            "installed, but {} holds entries that stop a Nomad client from starting:\n  {}",
            secrets.display(),
            problems.join("\n  ")
        ));
    }
    Ok(secrets)
}

/// Entries of a plugin folder that make a Nomad client refuse to start, each with its fix.
pub fn check_folder(secrets: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let entries = std::fs::read_dir(secrets)
        .map_err(|e| format!("cannot list {}: {e}", secrets.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    for name in &names {
        let path = secrets.join(name);
        let link = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
        if link.file_type().is_symlink() {
            match std::fs::metadata(&path) {
                Err(_) => problems.push(format!("{name}: dangling symlink; remove it")),
                Ok(target) if target.is_dir() => {
                    problems.push(format!("{name}: symlink to a directory; remove it"))
                }
                Ok(target) if target.permissions().mode() & 0o111 == 0 => problems.push(format!(
                    "{name}: symlink to a non-executable file; remove it"
                )),
                Ok(_) => {}
            }
        }
        if let Some(base) = name.strip_suffix(".exe") {
            if !names.iter().any(|n| n == base) {
                problems.push(format!(
                    "{name}: `.exe` without `{base}` beside it; remove it"
                ));
            }
        }
    }
    problems.sort();
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-install-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn installs_executables_and_leaves_no_staging() {
        let dir = scratch("ok");
        let binary = dir.join("built");
        std::fs::write(&binary, "#!/bin/sh\n").unwrap();
        let plugins = vec![("file".to_string(), binary.clone())];
        let secrets = install(&dir.join("nomad"), &plugins).unwrap();
        // Again, over the existing one: replaced in place.
        install(&dir.join("nomad"), &plugins).unwrap();
        let mode = std::fs::metadata(secrets.join("file"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let names: Vec<_> = std::fs::read_dir(&secrets)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["file"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn finds_what_stops_a_nomad_client() {
        let dir = scratch("bad");
        std::fs::write(dir.join("data"), "").unwrap();
        std::fs::write(dir.join("ok"), "").unwrap();
        std::fs::set_permissions(dir.join("ok"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("ok.exe"), "").unwrap();
        std::fs::write(dir.join("lonely.exe"), "").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        symlink("nowhere", dir.join("dangling")).unwrap();
        symlink("sub", dir.join("to-dir")).unwrap();
        symlink("data", dir.join("to-data")).unwrap();
        symlink("ok", dir.join("to-ok")).unwrap();
        assert_eq!(
            check_folder(&dir).unwrap(),
            [
                "dangling: dangling symlink; remove it",
                "lonely.exe: `.exe` without `lonely` beside it; remove it",
                "to-data: symlink to a non-executable file; remove it",
                "to-dir: symlink to a directory; remove it",
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
