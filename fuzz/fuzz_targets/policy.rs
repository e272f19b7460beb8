//! The policy matcher: any rule and path; literal patterns match only themselves, `**` matches
//! everything, `{namespace}`/`{job}` are literals, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_secrets_fuzz::parts;
use nomad_secrets_protocol::policy::{Caller, Policy};
use toml::Value;

fn rule(namespace: &str, job: &str, patterns: &[&str]) -> Value {
    let mut table = toml::Table::new();
    table.insert("namespace".into(), namespace.into());
    table.insert("job".into(), job.into());
    table.insert(
        "paths".into(),
        Value::Array(patterns.iter().map(|p| Value::from(*p)).collect()),
    );
    Value::Array(vec![Value::Table(table)])
}

fuzz_target!(|data: &[u8]| {
    let texts: Vec<String> = parts(data, 5)
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let [namespace, job, pattern, path, other] = &texts[..] else {
        unreachable!()
    };
    let caller = Caller {
        namespace: namespace.as_str(),
        job: job.as_str(),
        group: None,
        task: None,
    };
    let Ok(policy) = Policy::parse(&rule(namespace, job, &[pattern, other])) else {
        return;
    };
    let allowed = policy.allows(caller, path);
    let _ = policy.patterns_for(caller);
    let literal = |p: &str| !p.contains('*') && !p.contains('{');
    if literal(pattern) && literal(other) {
        assert_eq!(
            allowed,
            path == pattern || path == other,
            "literals match exactly"
        );
    }
    if pattern == "**" {
        assert!(allowed, "`**` matches every path");
    }
    if namespace == "*" {
        return;
    }
    // Another namespace is never let in by a rule naming one.
    let stranger = Caller {
        namespace: "\u{0}stranger",
        job: job.as_str(),
        group: None,
        task: None,
    };
    assert!(!policy.allows(stranger, path));
});
