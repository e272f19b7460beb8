//! `gcp`'s secret names and answers. Any path is refused, or becomes one full resource name that
//! names only what GCP allows (no `/`, `.` or `..` smuggled into a project, region or secret
//! id), the same for a short name and its full form. Then the plugin's whole fetch of that path,
//! with the job's own token, against an in-memory Secret Manager (any payload, checksum, status
//! or proxy answer): it asks only for the version of the name the access policy checked, and
//! gives exact secrets or one clear error that quotes no secret value.
//!
//! Input: `<path>\n<project>\n<answer>`, the answer's first byte choosing its kind.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::{CANARY, assert_no_canary, check_output};
use nomad_secrets_gcp::transport::{Answer, Transport};
use nomad_secrets_gcp::{GcpBackend, crc32c, names};
use nomad_secrets_protocol::{Backend, Error, JobInput, Request, SecretPath, Secrets, Settings};

/// The name invariants: `locator` is refused, or its full name is made of non-empty parts that
/// are not `.` or `..`, and is its own normal form.
fn check_name(locator: &str, project: &str) {
    match names::parse(locator, Some(project)) {
        Ok(name) => {
            let parts: Vec<&str> = name.full.split('/').collect();
            assert!(parts.len() == 4 || parts.len() == 6, "{}", name.full);
            assert!(
                parts
                    .iter()
                    .all(|p| !p.is_empty() && *p != "." && *p != "..")
            );
            let again = names::parse(&name.full, None).expect("a full name parses");
            assert_eq!(again, name, "a full name is its own normal form");
        }
        Err(error) => check_output(&Err::<Secrets, _>(error)),
    }
}

/// The answer `bytes` describe: a payload with its checksum, a wrong one or none, no payload,
/// a refusal with any code and message, or an HTTP answer that is not Secret Manager's.
fn answer(bytes: &[u8]) -> Answer {
    let [kind, detail, rest @ ..] = bytes else {
        return Answer::Payload {
            data: bytes.to_vec(),
            crc32c: Some(i64::from(crc32c(bytes))),
        };
    };
    let data = rest.to_vec();
    match kind % 6 {
        0 => Answer::Payload {
            crc32c: Some(i64::from(crc32c(&data))),
            data,
        },
        1 => Answer::Payload { data, crc32c: None },
        2 => Answer::Payload {
            crc32c: Some(i64::from(*detail)),
            data,
        },
        3 => Answer::NoPayload,
        4 => Answer::Refused {
            code: i32::from(*detail) - 1,
            message: String::from_utf8_lossy(rest).into_owned(),
        },
        _ => Answer::Http {
            status: 100 + u16::from(*detail) * 2,
            body: data,
        },
    }
}

/// What `fetch <raw>` gives with `project` in the settings when Secret Manager answers
/// `answer`; `None` when `raw` is not a path or `project` not a setting. Panics if the plugin
/// asks for anything but a version of the name the access policy checks.
fn fetch(raw: &str, project: &str, answer: Answer) -> Option<Result<Secrets, Error>> {
    let text = format!("project = {}\n", serde_json::to_string(project).ok()?);
    let settings = Settings::from_text(
        Path::new("/opt/nomad/plugins/secrets/gcp.toml"),
        Some(&text),
        GcpBackend::SETTINGS,
        &HashMap::new(),
    )
    .ok()?;
    let path = SecretPath::parse(raw, GcpBackend::OPTIONS).ok()?;
    let checked = match GcpBackend::normalise(path.locator(), &settings) {
        Ok(checked) => checked,
        Err(refused) => return Some(Err(refused)),
    };
    let transport = Transport::in_memory(move |name| {
        let (read, version) = name
            .rsplit_once("/versions/")
            .unwrap_or_else(|| panic!("asked for `{name}`, not a version"));
        assert_eq!(
            read, checked,
            "asked for another secret than the policy checked"
        );
        assert!(
            version == "latest" || version.bytes().all(|b| b.is_ascii_digit()),
            "version `{version}`"
        );
        answer.clone()
    });
    let env: HashMap<_, _> = [("GOOGLE_OAUTH_ACCESS_TOKEN".into(), "ya29.fuzz".into())].into();
    let input = JobInput::check(
        GcpBackend::NAME,
        "gcp.toml",
        GcpBackend::JOB_INPUT,
        &[],
        &[],
        &env,
    )
    .expect("a job's own token is valid input");
    let request = Request {
        path,
        settings,
        env,
        input,
        deadline: Instant::now() + Duration::from_secs(5),
        manual: false,
        namespace: "default".into(),
        job: "fuzz".into(),
        instance: "fuzz".into(),
        identity: None,
    };
    Some(GcpBackend::with_transport(transport).fetch(&request))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Ok(locator), Ok(project)) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or(b"acme")),
    ) else {
        return;
    };
    let answered = parts.next().unwrap_or(b"{\"password\":\"CANARY\"}");
    check_name(locator, project);
    let answer = answer(answered);
    // What an error may quote: the path, the project and Google's own message.
    let quotable = match &answer {
        Answer::Refused { message, .. } => [locator, project, message].concat(),
        _ => [locator, project].concat(),
    };
    let Some(outcome) = fetch(locator, project, answer) else {
        return;
    };
    check_output(&outcome);
    if !quotable.contains(CANARY) {
        assert_no_canary(&outcome, &[]);
    }
});
