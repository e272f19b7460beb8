//! `cargo xtask tidy`: what every plugin must have besides its code, checked from the plugin
//! list (`cargo metadata`), so that a new backend is told what it is missing. Each check is a
//! step of `docs/adding-a-backend.md`, and each failure names its step:
//!
//! 2. example settings `examples/settings/<name>.toml`;
//! 3. golden cases `tests/cases/<suite>.toml` (fault cases for a network plugin) and their
//!    snapshots in `tests/cases/<suite>/`;
//! 4. a test module in `plugins/<folder>/tests/` that runs the plugin's binary;
//! 5. the adversarial suite's operator, `tests/adversarial/<name>.toml`;
//! 6. at least one fuzz target, each with its source, its `[[bin]]` entry in `fuzz/Cargo.toml`
//!    and its seeds in `fuzz/corpus/<target>/`, and a current `fuzz/Cargo.lock`;
//! 7. a jobspec `examples/jobs/<name>-demo.nomad.hcl` naming the plugin as a provider (but for
//!    [`NO_JOBSPEC`]);
//! 8. its page `docs/plugins/<name>.md` with its settings tables exactly as the plugin's
//!    declarations print them (`<plugin> --help --markdown`; `cargo xtask readme` writes them);
//! 9. a row in the README's plugin table linking to that page.
//!
//! Besides: the README's "Node settings" section holds the common settings table as the
//! plugins print it, and every relative link of every Markdown file resolves to a file inside
//! the repository, and no link leaves it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plugins::Plugin;
use crate::{Result, root};

/// The page that lists every touch point of a backend; each failure points to its step.
const GUIDE: &str = "docs/adding-a-backend.md";

/// Plugins with no jobspec of their own: a job never names `command`, only the providers an
/// operator makes of it (`secrets/<name>` with `examples/settings/command-<name>.toml`).
const NO_JOBSPEC: &[&str] = &["command"];

/// How to fix a settings table that is missing or out of date.
const TABLES_FIX: &str = "put the lines `<!-- settings-table: NAME -->` and \
    `<!-- end settings-table -->` where it belongs (NAME: the plugin's, `<plugin> job env`, or \
    `common`) and run `cargo xtask readme`";

/// Runs the task on the debug build of every plugin (built first).
pub fn run() -> Result {
    let (plugins, binaries) = built_plugins()?;
    let readme = read(&root().join("README.md"))?;
    let fuzz_bins = fuzz_bins(&read(&root().join("fuzz/Cargo.toml"))?);
    let mut problems = Vec::new();
    let mut common = None;
    for plugin in &plugins {
        let tables = settings_tables(&binaries.join(&plugin.name));
        if let (None, Ok(tables)) = (&common, &tables) {
            common = Some(tables[0].1.clone());
        }
        for (step, missing) in missing(plugin, &readme, &fuzz_bins, tables) {
            problems.push(format!(
                "plugin `{}`: {missing} (see {GUIDE}, step {step})",
                plugin.name
            ));
        }
    }
    if common.is_some_and(|table| !common_section(&readme).contains(&table)) {
        problems.push(format!(
            "the README's \"Node settings\" section lacks the common settings table as the \
             plugins print it: {TABLES_FIX}"
        ));
    }
    problems.extend(bad_links()?);
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
        problems.push(format!(
            "fuzz/Cargo.lock is out of date with the plugins' dependencies: run `cd fuzz && \
             cargo update -w` and commit it (see {GUIDE}, step 6)"
        ));
    }
    if problems.is_empty() {
        println!(
            "tidy: {} plugins complete ({}): settings, cases, tests, adversarial operator, fuzz \
             targets, jobspecs, pages and README rows; every doc link stays in the repository",
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

/// What `plugin` lacks, each with the step of the guide that adds it; `tables` are what its
/// binary prints for `--help --markdown`, `fuzz_bins` the fuzz workspace's binaries.
fn missing(
    plugin: &Plugin,
    readme: &str,
    fuzz_bins: &[(String, String)],
    tables: Result<Vec<(String, String)>>,
) -> Vec<(u8, String)> {
    let mut missing = Vec::new();
    let name = &plugin.name;
    let folder = plugin.dir.file_name().unwrap_or_default().to_string_lossy();

    let settings = plugin.example_settings();
    if !settings.is_file() {
        missing.push((2, format!("no example settings file {}", shown(&settings))));
    }

    let cases = root().join(format!("tests/cases/{}.toml", plugin.suite));
    match std::fs::read_to_string(&cases) {
        Ok(text) if text.contains("[[case]]") => {
            let fault = text
                .lines()
                .any(|line| line.trim_start().starts_with("fault ="));
            if plugin.network && !fault {
                missing.push((
                    3,
                    format!(
                        "it declares `network = true` but no case of {} has a `fault` tag",
                        shown(&cases)
                    ),
                ));
            }
        }
        _ => missing.push((3, format!("no golden cases in {}", shown(&cases)))),
    }
    let snapshots = root().join(format!("tests/cases/{}", plugin.suite));
    if !has_file(&snapshots, |file| file.ends_with(".snap")) {
        missing.push((3, format!("no snapshots in {}/", shown(&snapshots))));
    }

    let tests = plugin.dir.join("tests");
    let binary = format!("CARGO_BIN_EXE_{name}\"");
    if !has_file(&tests, |file| {
        file.ends_with(".rs")
            && std::fs::read_to_string(tests.join(file)).is_ok_and(|text| text.contains(&binary))
    }) {
        missing.push((
            4,
            format!(
                "no test module in {}/ runs its binary (`env!(\"CARGO_BIN_EXE_{name}\")`)",
                shown(&tests)
            ),
        ));
    }

    let adversarial = root().join(format!("tests/adversarial/{name}.toml"));
    match std::fs::read_to_string(&adversarial) {
        Ok(text) if text.contains("[[operator]]") => {}
        _ => missing.push((
            5,
            format!(
                "no adversarial operator (`[[operator]]`) in {}",
                shown(&adversarial)
            ),
        )),
    }

    if plugin.fuzz_targets.is_empty() {
        missing.push((
            6,
            "no fuzz target (`fuzz-targets` in [package.metadata.nomad-secrets] of its Cargo.toml)"
                .into(),
        ));
    }
    for target in &plugin.fuzz_targets {
        let file = format!("fuzz_targets/{target}.rs");
        if !root().join("fuzz").join(&file).is_file() {
            missing.push((6, format!("fuzz target `{target}` has no fuzz/{file}")));
        }
        if !fuzz_bins.iter().any(|(n, p)| n == target && *p == file) {
            missing.push((
                6,
                format!(
                    "fuzz target `{target}` has no `[[bin]]` entry in fuzz/Cargo.toml (name = \
                     \"{target}\", path = \"{file}\")"
                ),
            ));
        }
        let corpus = root().join(format!("fuzz/corpus/{target}"));
        if !has_file(&corpus, |_| true) {
            missing.push((
                6,
                format!("fuzz target `{target}` has no seeds in {}/", shown(&corpus)),
            ));
        }
    }

    if !NO_JOBSPEC.contains(&name.as_str()) {
        let jobspec = root().join(format!("examples/jobs/{name}-demo.nomad.hcl"));
        let provider = format!("provider = \"{name}\"");
        match std::fs::read_to_string(&jobspec) {
            Ok(text) if text.contains(&provider) => {}
            Ok(_) => missing.push((
                7,
                format!("{} has no secret with `{provider}`", shown(&jobspec)),
            )),
            Err(_) => missing.push((7, format!("no jobspec {}", shown(&jobspec)))),
        }
    }

    let page = page(name);
    match (std::fs::read_to_string(&page), tables) {
        (Err(_), _) => missing.push((
            8,
            format!("no page {}: `cargo xtask readme` starts one", shown(&page)),
        )),
        (Ok(_), Err(problem)) => missing.push((8, problem)),
        (Ok(text), Ok(tables)) => {
            for (table, printed) in &tables[1..] {
                if !text.contains(printed.as_str()) {
                    missing.push((
                        8,
                        format!(
                            "{} lacks its table `{table}` as the plugin prints it: {TABLES_FIX}",
                            shown(&page)
                        ),
                    ));
                }
            }
        }
    }

    let row = readme_row(name, &folder);
    if !readme.contains(&row) {
        missing.push((
            9,
            format!("no row `{row} ...` in the README's plugin table"),
        ));
    }
    missing
}

/// The start of `name`'s row in the README's plugin table.
fn readme_row(name: &str, folder: &str) -> String {
    format!("| [`{name}`](docs/plugins/{name}.md) | `plugins/{folder}` |")
}

/// `docs/plugins/<name>.md`.
fn page(name: &str) -> PathBuf {
    root().join(format!("docs/plugins/{name}.md"))
}

/// Whether `dir` holds a file whose name passes `wanted`.
fn has_file(dir: &Path, wanted: impl Fn(&str) -> bool) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .any(|file| wanted(&file))
    })
}

/// The `(name, path)` of each `[[bin]]` of the fuzz workspace's manifest.
fn fuzz_bins(manifest: &str) -> Vec<(String, String)> {
    let value = |block: &str, key: &str| {
        block.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    manifest
        .split("[[bin]]")
        .skip(1)
        .map(|block| block.split("\n[").next().unwrap_or_default())
        .filter_map(|block| Some((value(block, "name")?, value(block, "path")?)))
        .collect()
}

/// Builds every plugin (debug); returns them and the folder of their binaries.
fn built_plugins() -> Result<(Vec<Plugin>, PathBuf)> {
    let plugins = crate::plugins::all()?;
    let mut build = crate::cargo();
    build.args(["build", "--locked"]);
    for plugin in &plugins {
        build.args(["--package", &plugin.package]);
    }
    crate::run(&mut build)?;
    Ok((plugins, crate::moto::target_dir().join("debug")))
}

/// `cargo xtask readme`: writes each generated settings table from the plugins' own
/// declarations, between its markers: the common table in the README, each plugin's own
/// tables in its page `docs/plugins/<name>.md`. A plugin without a page gets one to fill in,
/// with the markers in place.
pub fn write_readme() -> Result {
    let (plugins, binaries) = built_plugins()?;
    let mut written = Vec::new();
    for plugin in &plugins {
        let tables = settings_tables(&binaries.join(&plugin.name))?;
        let page = page(&plugin.name);
        if !page.exists() {
            std::fs::create_dir_all(page.parent().unwrap_or(&root())).map_err(|e| e.to_string())?;
            std::fs::write(&page, new_page(plugin)).map_err(|e| e.to_string())?;
            println!(
                "readme: started {}: describe the plugin there",
                shown(&page)
            );
        }
        written.extend(write_tables(&page, &tables[1..])?);
        if plugin.name == plugins[0].name {
            written.extend(write_tables(&root().join("README.md"), &tables[..1])?);
        }
    }
    println!("readme: settings tables written: {}", written.join(", "));
    Ok(())
}

/// Replaces each of `tables` found between its markers in the file at `path`; returns their
/// names.
fn write_tables(path: &Path, tables: &[(String, String)]) -> Result<Vec<String>> {
    let mut text = read(path)?;
    let mut written = Vec::new();
    for (name, table) in tables {
        let start = format!("<!-- settings-table: {name} -->\n");
        let Some(from) = text.find(&start) else {
            continue;
        };
        let end = "<!-- end settings-table -->\n";
        let to = text[from..]
            .find(end)
            .map(|i| from + i + end.len())
            .ok_or(format!(
                "{}: `{start}` has no `{end}` after it",
                shown(path)
            ))?;
        text.replace_range(from..to, table);
        written.push(name.clone());
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(written)
}

/// The page a new plugin starts with: the headings every page has, and the table markers.
fn new_page(plugin: &Plugin) -> String {
    let name = &plugin.name;
    let folder = plugin.dir.file_name().unwrap_or_default().to_string_lossy();
    format!(
        "# The `{name}` plugin\n\n\
         What it reads, with what, and why (see the other pages under docs/plugins/).\n\n\
         Installed as `secrets/{name}`, built from [plugins/{folder}/](../../plugins/{folder}/).\n\n\
         ```text\nfetch <path grammar of this plugin>\n```\n\n\
         ## Settings\n\n\
         <!-- settings-table: {name} -->\n<!-- end settings-table -->\n\n\
         ## What a job's `env {{}}` may pass\n\n\
         From the plugin's declarations (see [What a job controls](../operators.md#what-a-job-controls)):\n\n\
         <!-- settings-table: {name} job env -->\n<!-- end settings-table -->\n\n\
         ## Tests\n\n\
         What the golden cases run against, and which cases use a test double and why.\n"
    )
}

/// The tables `<plugin> --help --markdown` prints: `common`, then the plugin's own settings,
/// then what a job's `env {}` may pass to it, each with its markers.
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

/// Links of every Markdown file (tracked, or new and not ignored) that leave the repository or
/// do not resolve to a file inside it.
fn bad_links() -> Result<Vec<String>> {
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
    let mut bad = Vec::new();
    let top = root().canonicalize().map_err(|e| e.to_string())?;
    for file in String::from_utf8_lossy(&output.stdout).lines() {
        let path = root().join(file);
        if !path.exists() {
            continue; // deleted in the work tree, not yet committed
        }
        let text = read(&path)?;
        for target in links(&text) {
            if target.starts_with('#') {
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                bad.push(format!(
                    "{file}: link `{target}` leaves the repository: name the page in text, or \
                     keep what it says in the repository"
                ));
                continue;
            }
            let target = target.split('#').next().unwrap_or_default();
            let resolved = path.parent().unwrap_or(&top).join(target);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|real| real.starts_with(&top));
            if !inside {
                bad.push(format!(
                    "{file}: link `{target}` does not resolve to a file of the repository"
                ));
            }
        }
    }
    Ok(bad)
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
