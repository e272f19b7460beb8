//! `cargo xtask demo`: what a Nomad client would see from the `file` plugin, on this machine.
//!
//! Builds `file` alone in release mode (on a fresh clone, the other plugins' SDKs would take
//! minutes), installs it into `target/demo/secrets/` with a settings file whose root is
//! `examples/secrets/` and which verifies workload identities with the example key set
//! (`examples/identity/`), then runs each command exactly as the Nomad client does: cleared
//! environment, `CPI_OPERATION`, `NOMAD_JOB_ID` and `NOMAD_NAMESPACE`, stdin `/dev/null`.

use std::process::{Command, Stdio};

use crate::{Result, root};

/// Runs the task.
pub fn run() -> Result {
    let built = crate::build_release_of("file")?;
    let demo = crate::moto::target_dir().join("demo");
    let secrets = crate::install::install(&demo, &[built])?;
    let settings = secrets.join("file.toml");
    crate::install::write_settings(
        &settings,
        &format!(
            "# Written by `cargo xtask demo`; see examples/settings/file.toml.\nroot = \"{}\"\n\
             # Job tokens are verified with the example key set (examples/identity/README.md).\n\
             identity_jwks_file = \"{}\"\n",
            root().join("examples/secrets").display(),
            root().join("examples/identity/jwks.json").display()
        ),
    )?;
    let token = std::fs::read_to_string(root().join("examples/identity/demo.jwt"))
        .map_err(|e| format!("examples/identity/demo.jwt: {e}"))?;
    let job = |id: &str, token: Option<&str>| {
        let mut env = vec![
            ("NOMAD_JOB_ID", id.to_owned()),
            ("NOMAD_NAMESPACE", "default".to_owned()),
        ];
        env.extend(token.map(|t| ("NOMAD_WORKLOAD_IDENTITY", t.trim().to_owned())));
        env
    };

    let plugin = secrets.join("file");
    println!(
        "Installed {} with its settings file {}.",
        plugin.display(),
        settings.display()
    );
    println!("Each run below is started as the Nomad client starts it.\n");
    let runs = [
        Run {
            args: &["fingerprint"],
            env: Vec::new(),
            about: "at client start: is this a secrets plugin?",
        },
        Run {
            args: &["fetch", "db.json"],
            env: job("demo", None),
            about: "secret \"db\" { provider = \"file\" path = \"db.json\" }",
        },
        Run {
            args: &["fetch", "app.env#API_TOKEN"],
            env: job("demo", None),
            about: "one key of a dotenv file",
        },
        Run {
            args: &["fetch", "tls"],
            env: job("demo", None),
            about: "a folder: one key per file",
        },
        Run {
            args: &["fetch", "db.json#pasword"],
            env: job("demo", None),
            about: "a typo: the error the job's author sees",
        },
        Run {
            args: &["fetch", "db.json#username"],
            env: job("demo", Some(&token)),
            about: "with the job's workload identity (env { NOMAD_WORKLOAD_IDENTITY = \"${NOMAD_TOKEN_secrets}\" }): verified",
        },
        Run {
            args: &["fetch", "db.json#username"],
            env: job("other", Some(&token)),
            about: "the same token passed by another job: denied before anything is read",
        },
    ];
    let mut problems = Vec::new();
    for Run { args, env, about } in runs {
        let operation = args[0];
        let mut command = Command::new(&plugin);
        command
            .args(args)
            .env_clear()
            .env("CPI_OPERATION", operation)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null());
        let output = command
            .output()
            .map_err(|e| format!("cannot run the plugin: {e}"))?;
        let shown_env: Vec<String> = std::iter::once(format!("CPI_OPERATION={operation}"))
            .chain(env.iter().map(|(k, v)| match *k {
                "NOMAD_WORKLOAD_IDENTITY" => {
                    format!("{k}=\"$(cat examples/identity/demo.jwt)\"")
                }
                _ => format!("{k}={v}"),
            }))
            .collect();
        println!("# {about}");
        println!(
            "$ env -i {} {} {}",
            shown_env.join(" "),
            plugin.display(),
            quote(args)
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
        let status = output.status.code().unwrap_or(-1);
        println!(
            "(exit status {status}, {} bytes on stderr)\n",
            output.stderr.len()
        );
        if status != 0 || !output.stderr.is_empty() {
            problems.push(format!(
                "{}: exit {status}, stderr {:?}",
                args.join(" "),
                output.stderr
            ));
        }
    }
    println!("In a job: ${{secret.db.password}} would be the `password` value above.");
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the plugin broke the Nomad contract:\n{}",
            problems.join("\n")
        )),
    }
}

/// One command of the demo, and what it shows.
struct Run {
    args: &'static [&'static str],
    env: Vec<(&'static str, String)>,
    about: &'static str,
}

fn quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
