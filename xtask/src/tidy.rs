//! `cargo xtask tidy`: what every plugin must have besides its code, checked from the plugin
//! list (`cargo metadata`), so that a new backend is told what it is missing.
//!
//! For each plugin: golden cases (`tests/cases/<suite>.toml`), example settings
//! (`examples/settings/<name>.toml`), a row in the README's plugin table and a README section,
//! at least one fuzz target that exists, and its README section's settings table exactly as
//! the plugin's declarations print it (`<plugin> --help --markdown`; `cargo xtask readme`
//! writes them). For every Markdown file of the repository: each relative link resolves to a
//! file inside the repository. And the fuzz workspace's lock file is current.

use std::path::Path;
use std::process::Command;

use crate::plugins::Plugin;
use crate::{Result, root};

/// Runs the task on the debug build of every plugin (built first).
pub fn run() -> Result {
    let (plugins, binaries) = built_plugins()?;
    let readme = read(&root().join("README.md"))?;
    let mut problems = Vec::new();
    let mut common = None;
    for plugin in &plugins {
        let tables = settings_tables(&binaries.join(&plugin.name));
        if let (None, Ok(tables)) = (&common, &tables) {
            common = Some(tables[0].1.clone());
        }
        for missing in missing(plugin, &readme, tables) {
            problems.push(format!("plugin `{}`: {missing}", plugin.name));
        }
    }
    if common.is_some_and(|table| !common_section(&readme).contains(&table)) {
        problems.push(format!(
            "the README's \"Node settings\" section lacks the common settings table as the plugins print it: {}",
            TABLES_FIX
        ));
    }
    problems.extend(broken_links()?);
    // The fuzz workspace has its own lock file: a plugin's new dependency makes it stale, and
    // the fuzz build (late in `cargo xtask test`) would then fail.
    let fuzz_lock_fresh = crate::cargo()
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root().join("fuzz/Cargo.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if !fuzz_lock_fresh {
        problems.push(
            "fuzz/Cargo.lock is out of date with the plugins' dependencies: run `cd fuzz && cargo update -w` and commit it".into(),
        );
    }
    if problems.is_empty() {
        println!(
            "tidy: {} plugins complete ({}); every doc link resolves",
            plugins.len(),
            plugins
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    Err(format!(
        "tidy found {} problem(s):\n- {}",
        problems.len(),
        problems.join("\n- ")
    ))
}

/// What `plugin` lacks; `tables` are what its binary prints for `--help --markdown`.
fn missing(plugin: &Plugin, readme: &str, tables: Result<Vec<(String, String)>>) -> Vec<String> {
    let mut missing = Vec::new();
    let cases = root().join(format!("tests/cases/{}.toml", plugin.suite));
    match std::fs::read_to_string(&cases) {
        Ok(text) if text.contains("[[case]]") => {}
        _ => missing.push(format!("no golden cases in {}", shown(&cases))),
    }
    let settings = plugin.example_settings();
    if !settings.is_file() {
        missing.push(format!("no example settings file {}", shown(&settings)));
    }
    let folder = plugin.dir.file_name().unwrap_or_default().to_string_lossy();
    let row = format!("| `plugins/{folder}` | `secrets/{}` |", plugin.name);
    if !readme.contains(&row) {
        missing.push(format!("no row `{row} ...` in the README's plugin table"));
    }
    let section = readme_section(readme, &plugin.name);
    if section.is_none() {
        missing.push(format!(
            "no README section `## The `{}` plugin`",
            plugin.name
        ));
    }
    if plugin.fuzz_targets.is_empty() {
        missing.push(
            "no fuzz target (`fuzz-targets` in [package.metadata.nomad-secrets] of its Cargo.toml)"
                .into(),
        );
    }
    for target in &plugin.fuzz_targets {
        let file = root().join(format!("fuzz/fuzz_targets/{target}.rs"));
        if !file.is_file() {
            missing.push(format!("fuzz target `{target}` has no {}", shown(&file)));
        }
    }
    match tables {
        Err(problem) => missing.push(problem),
        Ok(tables) => {
            for (name, table) in &tables[1..] {
                if !section.unwrap_or_default().contains(table.as_str()) {
                    missing.push(format!(
                        "its README section lacks its table `{name}` as the plugin prints it: \
                         {TABLES_FIX}"
                    ));
                }
            }
        }
    }
    missing
}

/// How to fix a settings table that is missing or out of date.
const TABLES_FIX: &str = "put the lines `<!-- settings-table: NAME -->` and `<!-- end settings-table -->` \
     where it belongs (NAME: the plugin's, `<plugin> job env`, or `common`) and run `cargo xtask readme`";

/// Builds every plugin (debug); returns them and the folder of their binaries.
fn built_plugins() -> Result<(Vec<Plugin>, std::path::PathBuf)> {
    let plugins = crate::plugins::all()?;
    let mut build = crate::cargo();
    build.args(["build", "--locked"]);
    for plugin in &plugins {
        build.args(["--package", &plugin.package]);
    }
    crate::run(&mut build)?;
    Ok((plugins, crate::moto::target_dir().join("debug")))
}

/// `cargo xtask readme`: writes each settings table of the README from the plugins' own
/// declarations, between its markers.
pub fn write_readme() -> Result {
    let (plugins, binaries) = built_plugins()?;
    let path = root().join("README.md");
    let mut readme = read(&path)?;
    let mut written = Vec::new();
    for plugin in &plugins {
        for (name, table) in settings_tables(&binaries.join(&plugin.name))? {
            let start = format!("<!-- settings-table: {name} -->\n");
            let Some(from) = readme.find(&start) else {
                continue;
            };
            let end = "<!-- end settings-table -->\n";
            let to = readme[from..]
                .find(end)
                .map(|i| from + i + end.len())
                .ok_or(format!("README: `{start}` has no `{end}` after it"))?;
            readme.replace_range(from..to, &table);
            if !written.contains(&name) {
                written.push(name);
            }
        }
    }
    std::fs::write(&path, readme).map_err(|e| e.to_string())?;
    println!("readme: settings tables written: {}", written.join(", "));
    Ok(())
}

/// The README tables `<plugin> --help --markdown` prints: `common`, then the plugin's own
/// settings, then what a job's `env {}` may pass to it, each with its markers.
fn settings_tables(binary: &Path) -> Result<Vec<(String, String)>> {
    let output = Command::new(binary)
        .args(["--help", "--markdown"])
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run `{} --help --markdown`: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tables: Vec<(String, String)> = text
        .split_inclusive("<!-- end settings-table -->\n")
        .filter_map(|block| {
            let block = block.trim_start_matches('\n');
            let name = block
                .strip_prefix("<!-- settings-table: ")?
                .split_once(" -->")?
                .0;
            Some((name.to_owned(), block.to_owned()))
        })
        .collect();
    // `common`, the plugin's own settings, and what a job's env may pass (`<name> job env`).
    match tables.len() {
        3 => Ok(tables),
        _ => Err(format!(
            "`{} --help --markdown` does not print three tables (common, its settings, its job \
             env)",
            binary.display()
        )),
    }
}

/// The README's `## The `<name>` plugin` section, up to the next `## ` heading.
fn readme_section<'a>(readme: &'a str, name: &str) -> Option<&'a str> {
    let heading = format!("\n## The `{name}` plugin");
    let start = readme.find(&heading)? + 1;
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    Some(&rest[..end])
}

/// The README's "Node settings" section: the settings every plugin shares.
fn common_section(readme: &str) -> &str {
    let start = readme.find("\n## Node settings").unwrap_or(readme.len());
    let rest = &readme[start..];
    let end = rest
        .get(3..)
        .and_then(|r| r.find("\n## "))
        .map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// Relative links of every tracked Markdown file that do not resolve inside the repository.
fn broken_links() -> Result<Vec<String>> {
    let output = Command::new("git")
        .current_dir(root())
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.md",
        ])
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    let mut broken = Vec::new();
    let top = root().canonicalize().map_err(|e| e.to_string())?;
    for file in String::from_utf8_lossy(&output.stdout).lines() {
        let path = root().join(file);
        let text = read(&path)?;
        for target in links(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let target = target.split('#').next().unwrap_or_default();
            let resolved = path.parent().unwrap_or(&top).join(target);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|real| real.starts_with(&top));
            if !inside {
                broken.push(format!(
                    "{file}: link `{target}` does not resolve to a file of the repository"
                ));
            }
        }
    }
    Ok(broken)
}

/// The targets of `[text](target)` links.
fn links(text: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    targets
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
