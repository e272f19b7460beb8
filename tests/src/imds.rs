//! An EC2 instance metadata service (IMDSv2) double on 127.0.0.1, for the instance-role path.
//!
//! moto serves IMDS too, but its token answer lacks the `x-aws-ec2-metadata-token-ttl-seconds`
//! header that real IMDS sends and the AWS SDK for Rust requires. This double follows the
//! documented IMDSv2 exchange: `PUT /latest/api/token` with a TTL header returns a token and the
//! TTL header; every `GET` must carry `x-aws-ec2-metadata-token` (401 otherwise); it serves
//! `placement/region`, the role name under `iam/security-credentials/` and the role's
//! credentials as the documented JSON document. It counts the requests it served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{Request, Response, Server};

const TOKEN: &str = "AQAEAFakeImdsV2Token==";
const ROLE: &str = "nomad-client-role";

/// A running double; it stops with the test process.
pub struct Imds {
    url: String,
    served: Arc<AtomicUsize>,
    keys: Arc<Mutex<(String, String)>>,
}

impl Imds {
    /// Starts the double, whose role credentials are `access_key`/`secret_key`.
    pub fn start(region: &str, access_key: &str, secret_key: &str) -> Imds {
        let server = Server::bind();
        let url = server.url();
        let served = Arc::new(AtomicUsize::new(0));
        let region = region.to_owned();
        let keys = Arc::new(Mutex::new((access_key.to_owned(), secret_key.to_owned())));
        let (served_keys, counter) = (keys.clone(), served.clone());
        server.serve(move |request: &Request| {
            counter.fetch_add(1, Ordering::Relaxed);
            let keys = served_keys.lock().unwrap().clone();
            // Every answer ends its connection, as this double's always have.
            answer(request, &region, keys).header("Connection", "close")
        });
        Imds { url, served, keys }
    }

    /// Serves other role credentials from now on, as when AWS rotates them.
    pub fn rotate(&self, access_key: &str, secret_key: &str) {
        *self.keys.lock().unwrap() = (access_key.to_owned(), secret_key.to_owned());
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests it has answered.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

fn answer(request: &Request, region: &str, (access_key, secret_key): (String, String)) -> Response {
    let token = request.header("x-aws-ec2-metadata-token");
    let ttl = request.header("x-aws-ec2-metadata-token-ttl-seconds");
    let text = |body: &str| {
        Response::new("200 OK")
            .header("Content-Type", "text/plain")
            .body(body)
    };
    let empty = |status: &str| Response::new(status).header("Content-Type", "text/plain");
    let credentials = format!(
        "{{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-23T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
         \"AccessKeyId\":\"{access_key}\",\"SecretAccessKey\":\"{secret_key}\",\
         \"Token\":\"session-token\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}"
    );
    match (request.method.as_str(), request.target.as_str()) {
        ("PUT", "/latest/api/token") => match ttl {
            Some(ttl) => text(TOKEN).header("x-aws-ec2-metadata-token-ttl-seconds", ttl),
            None => empty("400 Bad Request"),
        },
        ("GET", _) if token != Some(TOKEN) => empty("401 Unauthorized"),
        ("GET", "/latest/meta-data/placement/region") => text(region),
        ("GET", "/latest/meta-data/iam/security-credentials/") => text(ROLE),
        ("GET", p) if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") => {
            text(&credentials)
        }
        _ => empty("404 Not Found"),
    }
}
