//! An EC2 instance metadata service (IMDSv2) double on 127.0.0.1, for the instance-role path.
//!
//! moto serves IMDS too, but its token answer lacks the `x-aws-ec2-metadata-token-ttl-seconds`
//! header that real IMDS sends and the AWS SDK for Rust requires. This double follows the
//! documented IMDSv2 exchange: `PUT /latest/api/token` with a TTL header returns a token and the
//! TTL header; every `GET` must carry `x-aws-ec2-metadata-token` (401 otherwise); it serves
//! `placement/region`, the role name under `iam/security-credentials/` and the role's
//! credentials as the documented JSON document. It counts the requests it served.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let region = region.to_owned();
        let keys = Arc::new(Mutex::new((access_key.to_owned(), secret_key.to_owned())));
        let served_keys = keys.clone();
        let counter = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut token = None;
                let mut ttl = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "x-aws-ec2-metadata-token" => token = Some(value.trim().to_owned()),
                        "x-aws-ec2-metadata-token-ttl-seconds" => {
                            ttl = Some(value.trim().to_owned())
                        }
                        _ => {}
                    }
                }
                let mut parts = request_line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (access_key, secret_key) = served_keys.lock().unwrap().clone();
                let credentials = format!(
                    "{{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-23T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
                     \"AccessKeyId\":\"{access_key}\",\"SecretAccessKey\":\"{secret_key}\",\
                     \"Token\":\"session-token\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}"
                );
                let (status, headers, body) = match (method, path) {
                    ("PUT", "/latest/api/token") => match &ttl {
                        Some(ttl) => (
                            "200 OK",
                            format!("x-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n"),
                            TOKEN.to_owned(),
                        ),
                        None => ("400 Bad Request", String::new(), String::new()),
                    },
                    ("GET", _) if token.as_deref() != Some(TOKEN) => {
                        ("401 Unauthorized", String::new(), String::new())
                    }
                    ("GET", "/latest/meta-data/placement/region") => {
                        ("200 OK", String::new(), region.clone())
                    }
                    ("GET", "/latest/meta-data/iam/security-credentials/") => {
                        ("200 OK", String::new(), ROLE.to_owned())
                    }
                    ("GET", p)
                        if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") =>
                    {
                        ("200 OK", String::new(), credentials)
                    }
                    _ => ("404 Not Found", String::new(), String::new()),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
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
