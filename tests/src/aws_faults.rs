//! A Secrets Manager double on 127.0.0.1 for what moto cannot do: IAM and KMS refusals,
//! throttling, server errors and broken answers.
//!
//! It speaks the documented awsJson1.1 protocol of `GetSecretValue`: a `POST /` whose JSON body
//! names `SecretId`; errors are HTTP 400 (500 for server faults) with a JSON body
//! `{"__type": "<code>", "Message": "..."}`. The secret id picks the behaviour:
//!
//! | secret id         | answer                                                        |
//! |-------------------|---------------------------------------------------------------|
//! | `denied`          | `AccessDeniedException` naming the principal                  |
//! | `kms`             | `DecryptionFailure`                                           |
//! | `expired`         | `ExpiredTokenException`                                       |
//! | `throttled-twice` | `ThrottlingException` twice, then the secret                  |
//! | `throttled`       | `ThrottlingException` every time                              |
//! | `broken`          | HTTP 500 `InternalServiceError` every time                    |
//! | `garbage`         | HTTP 200 with an HTML page (`text/html`)                      |
//! | `garbled-json`    | HTTP 200 with broken JSON, as `application/x-amz-json-1.1`    |
//! | `good`            | the secret                                                    |
//! | `stage-conditioned` | the secret if the request names a `VersionStage`, else `AccessDeniedException` (a resource policy with a `secretsmanager:VersionStage` condition) |
//! | `half`            | half an HTTP answer, then the connection closes               |
//! | `huge`            | a 5 MB `SecretString`                                         |
//! | anything else     | `ResourceNotFoundException`                                   |
//!
//! Whatever the id, a request signed with [`EXPIRED_KEY`] gets `ExpiredTokenException`.
//!
//! It also speaks Parameter Store (`X-Amz-Target: AmazonSSM.*`, the id is the body's `Name`
//! or `Path`), for what moto cannot do: `denied` (AccessDeniedException for
//! `ssm:GetParameter`), `kms` (AccessDeniedException for `kms:Decrypt` on a SecureString),
//! `throttled` (ThrottlingException every time), `good` (a String parameter), and `/endless/`
//! (GetParametersByPath pages that never end, 300 ms each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::http::{Reply, Request, Response, Server};

/// A running double; it stops with the test process.
pub struct AwsFaults {
    url: String,
    requests: Arc<Mutex<HashMap<String, usize>>>,
}

impl AwsFaults {
    /// Starts the double.
    pub fn start() -> AwsFaults {
        let server = Server::bind();
        let url = server.url();
        let requests: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let seen = requests.clone();
        server.serve(move |request: &Request| handle(request, &seen));
        AwsFaults { url, requests }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests named `secret_id`.
    pub fn requests(&self, secret_id: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(secret_id)
            .copied()
            .unwrap_or(0)
    }
}

/// Requests signed with this access key are refused as expired, whatever they ask.
pub const EXPIRED_KEY: &str = "ASIAEXPIREDSESSION";

const AMZ_JSON: &str = "application/x-amz-json-1.1";

fn handle(request: &Request, seen: &Mutex<HashMap<String, usize>>) -> Reply {
    let ssm = request
        .header("x-amz-target")
        .is_some_and(|target| target.starts_with("AmazonSSM."));
    let credential = format!("Credential={EXPIRED_KEY}/");
    let expired = request
        .header("authorization")
        .is_some_and(|value| value.contains(&credential));
    let body = request.json();
    let mut id = ["SecretId", "Name", "Path"]
        .iter()
        .find_map(|field| body[field].as_str())
        .unwrap_or_default()
        .to_owned();
    if id == "stage-conditioned" && body["VersionStage"].is_null() {
        id = "stage-conditioned-denied".to_owned();
    }
    let count = {
        let mut seen = seen.lock().unwrap();
        let count = seen.entry(id.clone()).or_default();
        *count += 1;
        *count
    };
    match id.as_str() {
        "half" => {
            return Reply::raw(|stream| {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 300\r\n\r\n{\"ARN\":\"arn:aws:secr");
                std::thread::sleep(std::time::Duration::from_millis(100));
            });
        }
        "huge" => {
            let filler = "x".repeat(5 << 20);
            let body = format!("{{\"Name\":\"huge\",\"SecretString\":\"CANARY{filler}\"}}");
            let response = Response::new("200 OK").header("Content-Type", AMZ_JSON);
            return response.body(body).into();
        }
        _ => {}
    }
    if ssm && id == "/endless/" {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (status, body) = match expired {
        true => (
            "400 Bad Request",
            error(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
        ),
        false if ssm => ssm_answer(&id, count),
        false => answer(&id, count),
    };
    let content_type = match id.as_str() {
        "garbage" => "text/html",
        _ => AMZ_JSON,
    };
    Response::new(status)
        .header("Content-Type", content_type)
        .header("x-amzn-RequestId", "0")
        .body(body)
        .into()
}

fn error(code: &str, message: &str) -> String {
    serde_json::json!({ "__type": code, "Message": message }).to_string()
}

fn answer(id: &str, count: usize) -> (&'static str, String) {
    const BAD: &str = "400 Bad Request";
    let secret = serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf"),
        "Name": id,
        "SecretString": "{\"password\":\"CANARY-after-throttling\"}",
        "VersionId": "33333333-3333-4333-8333-333333333333",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.7e9,
    });
    match id {
        "denied" => (
            BAD,
            error(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/nomad-client/i-0abc is not authorized to perform: secretsmanager:GetSecretValue on resource: denied because no identity-based policy allows the secretsmanager:GetSecretValue action",
            ),
        ),
        "kms" => (
            BAD,
            error(
                "DecryptionFailure",
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
            ),
        ),
        "expired" => (
            BAD,
            error(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
        ),
        "throttled-twice" if count <= 2 => (BAD, error("ThrottlingException", "Rate exceeded")),
        "throttled-twice" => ("200 OK", secret.to_string()),
        "throttled" => (BAD, error("ThrottlingException", "Rate exceeded")),
        "broken" => (
            "500 Internal Server Error",
            error("InternalServiceError", "An internal error occurred."),
        ),
        "garbage" => ("200 OK", "<html>CANARY proxy login page</html>".to_owned()),
        "garbled-json" => (
            "200 OK",
            "{\"Name\":\"garbled-json\",\"SecretString\":\"CANARY-garbled\",}}".to_owned(),
        ),
        "good" | "stage-conditioned" => ("200 OK", secret.to_string()),
        "stage-conditioned-denied" => (
            BAD,
            error(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/nomad-client/i-0abc is not authorized to perform: secretsmanager:GetSecretValue on resource: stage-conditioned because no resource-based policy allows the secretsmanager:GetSecretValue action",
            ),
        ),
        _ => (
            BAD,
            error(
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            ),
        ),
    }
}

/// Parameter Store's answers (awsJson1.1, `AmazonSSM.*`).
fn ssm_answer(id: &str, count: usize) -> (&'static str, String) {
    const BAD: &str = "400 Bad Request";
    let parameter = |name: &str, value: &str| {
        serde_json::json!({
            "Name": name, "Type": "String", "Value": value, "Version": 1,
            "ARN": format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}"),
            "DataType": "text", "LastModifiedDate": 1.7e9,
        })
    };
    match id {
        "denied" => (
            BAD,
            error(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/nomad-client/i-0abc is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/denied because no identity-based policy allows the ssm:GetParameter action",
            ),
        ),
        "kms" => (
            BAD,
            error(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/nomad-client/i-0abc is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:Decrypt action",
            ),
        ),
        "throttled" => (BAD, error("ThrottlingException", "Rate exceeded")),
        "good" => (
            "200 OK",
            serde_json::json!({ "Parameter": parameter("good", "CANARY-ssm-good") }).to_string(),
        ),
        "/endless/" => (
            "200 OK",
            serde_json::json!({
                "Parameters": [parameter(&format!("/endless/p{count}"), "CANARY-endless")],
                "NextToken": format!("page-{count}"),
            })
            .to_string(),
        ),
        _ => (BAD, error("ParameterNotFound", "")),
    }
}
