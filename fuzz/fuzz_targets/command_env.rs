//! The `command` plugin's environment rules: for any settings and any job env, the CLI gets
//! only the operator's variables and the job's values of names listed in `job_env`, never a
//! name but of the safe shapes `job_env` accepts from a job, and no error quotes a
//! job's value.
#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nomad_secrets_command::environment::{build, safe_job_env_name};
use nomad_secrets_command::{CommandBackend, ENV, ENV_FILES, JOB_ENV};
use nomad_secrets_fuzz::{CANARY, parts};
use nomad_secrets_protocol::{Backend, Settings};

fuzz_target!(|data: &[u8]| {
    let [settings, env] = parts(data, 2)[..] else {
        unreachable!()
    };
    let (Ok(text), Ok(env)) = (std::str::from_utf8(settings), std::str::from_utf8(env)) else {
        return;
    };
    // Names are not secret: an error may name a variable (the job's or the operator's) whose
    // name holds the marker.
    let names_hold_marker = text.contains(CANARY);
    let file = Path::new("/opt/nomad/plugins/secrets/fuzz.toml");
    let Ok(settings) =
        Settings::from_text(file, Some(text), CommandBackend::SETTINGS, &HashMap::new())
    else {
        return;
    };
    let job: HashMap<OsString, OsString> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.into(), format!("{CANARY}{value}").into()))
        .collect();
    match build(&settings, &job, false) {
        Ok(vars) => {
            let operator: Vec<&str> = settings
                .get(&ENV)
                .iter()
                .chain(settings.get(&ENV_FILES))
                .filter_map(|e| e.split_once('=').map(|(n, _)| n))
                .collect();
            for (name, value) in &vars {
                let name = name.to_str().unwrap_or_default();
                let from_job = value.to_string_lossy().starts_with(CANARY)
                    && job.get(&OsString::from(name)) == Some(value);
                if from_job && !operator.contains(&name) {
                    assert!(
                        settings.get(&JOB_ENV).iter().any(|a| a == name),
                        "`{name}` reached the CLI from the job without being listed"
                    );
                    assert!(safe_job_env_name(name), "`{name}` from a job");
                }
            }
        }
        Err(error)
            if !names_hold_marker && !job.keys().any(|n| n.to_string_lossy().contains(CANARY)) =>
        {
            assert!(
                !error.to_string().contains(CANARY),
                "an error quotes a job's value: {error}"
            )
        }
        Err(_) => {}
    }
});
