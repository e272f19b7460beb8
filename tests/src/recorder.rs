//! A recording server on loopback: every byte anyone sends it is kept, and it answers each
//! request with a canned HTTP answer (by a substring of the request line) or a 403. Used where
//! a test must prove what reached a destination: a job-chosen address must never see the
//! node's credentials, and the operator's must (so the proof is not vacuous).
//!
//! It keeps its own read loop rather than [`crate::http`]'s: that one stops reading at the
//! first thing that is not an HTTP request, and a recorder must keep every byte until the peer
//! stops sending, HTTP or not (a TLS hello sent to its plain port, say).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A canned answer: when the request line holds `matches`, answer `status` with `body` (JSON).
#[derive(Clone)]
pub struct Canned {
    /// A substring of the request line (`GET /path HTTP/1.1`).
    pub matches: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// The server; stops when dropped.
pub struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    canned: Arc<Mutex<Vec<Canned>>>,
}

impl Recorder {
    /// Starts listening on a free loopback port.
    pub fn start(canned: Vec<Canned>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let canned = Arc::new(Mutex::new(canned));
        let (r, c, s, answers) = (
            received.clone(),
            connections.clone(),
            stop.clone(),
            canned.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let (r, answers) = (r.clone(), answers.clone());
                std::thread::spawn(move || serve(stream, &r, &answers));
            }
        });
        Recorder {
            port,
            received,
            connections,
            stop,
            canned,
        }
    }

    /// Also listens with TLS (`config`), recording what arrives decrypted beside the plain
    /// listener's, with the same answers; returns `https://127.0.0.1:<port>`. For clients that
    /// send credentials only over TLS (the Azure SDK).
    pub fn with_tls(&self, config: Arc<rustls::ServerConfig>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (received, canned, stop) = (
            self.received.clone(),
            self.canned.clone(),
            self.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let (r, answers) = (received.clone(), canned.clone());
                std::thread::spawn(move || {
                    serve(rustls::StreamOwned::new(connection, stream), &r, &answers)
                });
            }
        });
        url
    }

    /// Answers with `canned` from now on (a key set rotated, say).
    pub fn answer(&self, canned: Vec<Canned>) {
        *self.canned.lock().unwrap() = canned;
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything received so far, as text (bytes that are not UTF-8 replaced).
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
        self.connections.store(0, Ordering::SeqCst);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads requests until the peer stops sending (keep-alive included), recording every byte and
/// answering each complete request.
fn serve(mut stream: impl Read + Write, received: &Mutex<Vec<u8>>, canned: &Mutex<Vec<Canned>>) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        received.lock().unwrap().extend_from_slice(&buffer[..n]);
        pending.extend_from_slice(&buffer[..n]);
        while let Some(length) = complete_request(&pending) {
            let request: Vec<u8> = pending.drain(..length).collect();
            let line = String::from_utf8_lossy(&request);
            let line = line.lines().next().unwrap_or_default();
            let (status, body) = canned
                .lock()
                .unwrap()
                .iter()
                .find(|c| line.contains(c.matches))
                .map(|c| (c.status, c.body.clone()))
                .unwrap_or((403, r#"{"errors":["permission denied"]}"#.to_owned()));
            // A 401 carries the challenge RFC 7235 asks of it: a bearer challenge naming Key
            // Vault's resource (the one client here that acts on a challenge).
            let challenge = match status {
                401 => {
                    "www-authenticate: Bearer authorization=\"https://login.microsoftonline.com/common\", resource=\"https://vault.azure.net\"\r\n"
                }
                _ => "",
            };
            let answer = format!(
                "HTTP/1.1 {status} Recorded\r\ncontent-type: application/json\r\n\
                 {challenge}content-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// The length of the first whole HTTP/1.1 request in `bytes` (headers and a
/// `content-length` body), if it has all arrived.
fn complete_request(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (bytes.len() >= end + body).then_some(end + body)
}
