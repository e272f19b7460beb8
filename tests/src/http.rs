//! The HTTP/1.1 server every double runs on: it reads requests and writes answers, so that a
//! double is only its handler, a function from [`Request`] to [`Reply`].
//!
//! It speaks what the plugins' clients send and no more: `Content-Length` bodies (no chunked
//! requests), keep-alive (several requests per connection, until either side closes or a
//! request says `Connection: close`), plain or TLS. It is hand-written rather than a server
//! crate because doubles must also misbehave on the wire: hang up unanswered
//! ([`Reply::HangUp`]), or take the connection and write what no server would, such as half
//! an answer or an answer dribbled out slowly ([`Reply::Raw`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// One request, as it came off the wire.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent, path and query.
    pub target: String,
    /// The target before any `?`, not decoded (see [`Request::decoded_path`]).
    pub path: String,
    /// The target after the `?`, as sent; empty if none.
    pub query: String,
    /// Names lower-cased, values trimmed, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body: `Content-Length` bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (any case), the first if sent twice.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        let mut matching = self.headers.iter().filter(|(n, _)| *n == name);
        matching.next().map(|(_, value)| value.as_str())
    }

    /// The body as JSON; `Null` if it is not JSON (a double then answers as if nothing was sent).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The path with `%XX` decoded, as servers route it; `None` if it does not decode.
    pub fn decoded_path(&self) -> Option<String> {
        percent_decoded(&self.path)
    }

    /// Reads the next request; `None` when the peer closed, a read failed or timed out, or what
    /// came is not an HTTP/1.1 request: the connection then ends.
    fn read(reader: &mut impl BufRead) -> Option<Request> {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).ok()? == 0 {
                return None;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut request = Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            target: target.clone(),
            headers,
            body: Vec::new(),
        };
        let length: u64 = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // `take`, not a buffer of `length` bytes: a lying length must not allocate gigabytes.
        reader
            .by_ref()
            .take(length)
            .read_to_end(&mut request.body)
            .ok()?;
        (request.body.len() as u64 == length).then_some(request)
    }
}

/// `text` with every `%XX` decoded; `None` for a broken escape or bytes that are not UTF-8.
pub fn percent_decoded(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// An answer: status line, headers in the order given, then `Content-Length` and the body.
#[derive(Debug)]
pub struct Response {
    head: String,
    body: Vec<u8>,
    close: bool,
}

impl Response {
    /// An empty answer with `status`, code and reason (`"404 Not Found"`).
    pub fn new(status: &str) -> Response {
        Response {
            head: format!("HTTP/1.1 {status}\r\n"),
            body: Vec::new(),
            close: false,
        }
    }

    /// Adds a header; `Connection: close` also closes the connection once this answer is out.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.head.push_str(&format!("{name}: {value}\r\n"));
        self.close |=
            name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close");
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Closes the connection once this answer is out, without saying so beforehand (as a server
    /// that gives up on a connection does).
    pub fn then_close(mut self) -> Response {
        self.close = true;
        self
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let length = self.body.len();
        let mut bytes = format!("{}Content-Length: {length}\r\n\r\n", self.head).into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What a handler does with a request.
pub enum Reply {
    /// Answers, and reads the next request on the connection (unless the answer closes it).
    Send(Response),
    /// Closes the connection without answering.
    HangUp,
    /// Takes the connection (TLS already applied) to write anything, at any pace; it closes
    /// when the closure returns. For half answers, hangs, answers sent slowly.
    Raw(Takeover),
}

/// What a double writes on a connection it takes over (see [`Reply::Raw`]).
pub type Takeover = Box<dyn FnOnce(&mut dyn Write)>;

impl Reply {
    /// A [`Reply::Raw`].
    pub fn raw(misbehave: impl FnOnce(&mut dyn Write) + 'static) -> Reply {
        Reply::Raw(Box::new(misbehave))
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Send(response)
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A listening socket on 127.0.0.1, and how to serve it.
pub struct Server {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    read_timeout: Option<Duration>,
}

impl Server {
    /// Binds a free port. Nothing is served until [`Server::serve`]: a double may need its port
    /// for its answers first.
    pub fn bind() -> Server {
        Server {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"),
            tls: None,
            read_timeout: None,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// `http://127.0.0.1:<port>`, or `https://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port())
    }

    /// Serves TLS with `config` (`None`: plain HTTP).
    pub fn tls(mut self, config: Option<Arc<rustls::ServerConfig>>) -> Server {
        self.tls = config;
        self
    }

    /// Closes a connection that sends nothing for `timeout` (by default, it waits forever).
    pub fn read_timeout(mut self, timeout: Duration) -> Server {
        self.read_timeout = Some(timeout);
        self
    }

    /// Accepts connections on a thread, each served on its own thread by `handler`, until the
    /// test process ends.
    pub fn serve<R: Into<Reply>>(self, handler: impl Fn(&Request) -> R + Send + Sync + 'static) {
        let handler: Arc<Handler> = Arc::new(move |request: &Request| handler(request).into());
        std::thread::spawn(move || {
            for stream in self.listener.incoming().flatten() {
                let (tls, handler) = (self.tls.clone(), handler.clone());
                let timeout = self.read_timeout;
                std::thread::spawn(move || connection(stream, timeout, tls, &*handler));
            }
        });
    }
}

fn connection(
    stream: TcpStream,
    timeout: Option<Duration>,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
) {
    let _ = stream.set_read_timeout(timeout);
    // An answer may go out in several writes (TLS records): without this, Nagle's algorithm
    // and the client's delayed ACK add 40 ms to each.
    let _ = stream.set_nodelay(true);
    match tls.map(rustls::ServerConnection::new) {
        None => converse(stream, handler),
        Some(Ok(tls)) => converse(rustls::StreamOwned::new(tls, stream), handler),
        Some(Err(_)) => {}
    }
}

/// Answers requests on one connection until it ends. One reader for the whole connection, so
/// that no byte read ahead of one request is lost to the next.
fn converse(stream: impl Read + Write, handler: &Handler) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = Request::read(&mut reader) {
        let mut response = match handler(&request) {
            Reply::Send(response) => response,
            Reply::HangUp => return,
            Reply::Raw(misbehave) => return misbehave(reader.get_mut()),
        };
        // RFC 9112 9.6: a server that is asked to close says so in its answer, then closes.
        let asked = request.header("connection");
        if asked.is_some_and(|v| v.eq_ignore_ascii_case("close")) && !response.close {
            response = response.header("Connection", "close");
        }
        let stream = reader.get_mut();
        let sent = stream.write_all(&response.to_bytes());
        if sent.and_then(|()| stream.flush()).is_err() || response.close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `requests` on one connection, then reads until the server closes it.
    fn exchange(url: &str, requests: &str) -> String {
        let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        stream.write_all(requests.as_bytes()).unwrap();
        let mut answers = String::new();
        stream.read_to_string(&mut answers).unwrap();
        answers
    }

    fn echo() -> String {
        let server = Server::bind();
        let url = server.url();
        server.serve(|request: &Request| match request.path.as_str() {
            "/hang-up" => Reply::HangUp,
            "/half" => Reply::raw(|stream| {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal");
            }),
            _ => Response::new("200 OK")
                .header("X-Seen", request.header("X-Name").unwrap_or("none"))
                .body(format!(
                    "{} {} {:?}",
                    request.method, request.query, request.body
                ))
                .into(),
        });
        url
    }

    #[test]
    fn keeps_the_connection_until_asked_to_close() {
        let answers = exchange(
            &echo(),
            "POST /a?x=1 HTTP/1.1\r\nx-name: one\r\nContent-Length: 2\r\n\r\nhi\
             GET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            answers,
            "HTTP/1.1 200 OK\r\nX-Seen: one\r\nContent-Length: 19\r\n\r\nPOST x=1 [104, 105]\
             HTTP/1.1 200 OK\r\nX-Seen: none\r\nConnection: close\r\nContent-Length: 7\r\n\r\nGET  []"
        );
    }

    #[test]
    fn misbehaves_when_told() {
        let url = echo();
        assert_eq!(exchange(&url, "GET /hang-up HTTP/1.1\r\n\r\n"), "");
        let half = exchange(&url, "GET /half HTTP/1.1\r\n\r\n");
        assert_eq!(half, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal");
        // Not HTTP: closed unanswered.
        assert_eq!(exchange(&url, "hello\r\n"), "");
    }
}
