//! `cargo xtask fleet`: a cluster's mass start on this machine, against a store that throttles.
//!
//! `--nodes N --allocs M --secrets K --rate R --store openbao|aws-ssm` (defaults 20, 5, 3, 40,
//! openbao). N client nodes, each with its own install of the plugin, its own settings and its
//! own cache folder on tmpfs; M allocations of one job per node, each fetching K secrets one
//! after another (as a task's secrets are fetched); every allocation starts within the first
//! second. The store throttles for real: OpenBao with a rate-limit quota of R requests a second
//! (`sys/quotas/rate-limit`), or moto behind a token bucket of R a second that answers
//! `ThrottlingException` as AWS does. A counting proxy in front of either records every store
//! call and every throttled answer.
//!
//! Three phases: the cache off, a cold cache (empty folders) and a warm one (a client restart
//! with its tmpfs kept). For each: allocations whose secrets all arrived within Nomad 1.11's
//! 10 s and 2.0's 60 s (the plugins' deadline is set to 55 s), store calls made and throttled,
//! fetch time p50/p99/max, the largest process's peak RSS, and store calls per second over
//! time. Written to `target/fleet/results.md`.
//!
//! Everything runs on this machine's two cores: N x M x K plugin processes compete with the
//! store for CPU, so fetch times include queueing for a core that a real fleet (one client per
//! machine) does not have. Store calls and throttling are what carry over.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Result;

/// What to simulate.
struct Options {
    nodes: usize,
    allocs: usize,
    secrets: usize,
    rate: u32,
    store: Store,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    OpenBao,
    AwsSsm,
}

impl Store {
    fn plugin(self) -> &'static str {
        match self {
            Store::OpenBao => "vault-kv",
            Store::AwsSsm => "aws-ssm",
        }
    }

    fn path(self, secret: usize) -> String {
        match self {
            Store::OpenBao => format!("secret/fleet/s{secret}#value"),
            Store::AwsSsm => format!("/fleet/s{secret}"),
        }
    }
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        nodes: 20,
        allocs: 5,
        secrets: 3,
        rate: 40,
        store: Store::OpenBao,
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        let number = |text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| format!("{flag} takes a whole number from 1 to 100000"))
        };
        match flag.as_str() {
            "--nodes" => options.nodes = number(value()?)?,
            "--allocs" => options.allocs = number(value()?)?,
            "--secrets" => options.secrets = number(value()?)?,
            "--rate" => options.rate = number(value()?)? as u32,
            "--store" => {
                options.store = match value()?.as_str() {
                    "openbao" => Store::OpenBao,
                    "aws-ssm" => Store::AwsSsm,
                    other => return Err(format!("--store openbao|aws-ssm, not {other}")),
                }
            }
            other => return Err(format!("unknown fleet flag {other}")),
        }
    }
    let fetches = options.nodes * options.allocs * options.secrets;
    if fetches > 20_000 {
        return Err(format!(
            "{fetches} fetches per phase: at most 20000 (this machine runs them all)"
        ));
    }
    Ok(options)
}

/// Runs the simulation and prints its table.
pub fn run(args: &[String]) -> Result {
    let options = options(args)?;
    let plugin = crate::build_release_of(options.store.plugin())?;
    let work = crate::moto::target_dir().join("fleet");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let tmpfs = PathBuf::from(format!(
        "/dev/shm/nomad-secrets-fleet-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmpfs);

    let (store, upstream, settings) = start_store(&options, &work)?;
    let proxy = Proxy::start(
        upstream,
        (options.store == Store::AwsSsm).then_some(options.rate),
    )?;
    let nodes: Vec<PathBuf> = (0..options.nodes)
        .map(|n| {
            let dir = work.join(format!("node-{n}"));
            crate::install::install(&dir, std::slice::from_ref(&plugin))
        })
        .collect::<Result<_>>()?;

    let mut report = format!(
        "# fleet: {} nodes x {} allocations x {} secrets, {} against {} throttling at {}/s\n\n\
         `cargo xtask fleet --nodes {} --allocs {} --secrets {} --rate {} --store {}`; \
         allocations start within the first second; plugin deadline 55 s.\n\n\
         | cache | allocations | all secrets in 10 s | in 60 s | store calls | throttled | fetch p50 | p99 | max | largest process |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        options.nodes,
        options.allocs,
        options.secrets,
        options.store.plugin(),
        match options.store {
            Store::OpenBao => "OpenBao",
            Store::AwsSsm => "moto",
        },
        options.rate,
        options.nodes,
        options.allocs,
        options.secrets,
        options.rate,
        match options.store {
            Store::OpenBao => "openbao",
            Store::AwsSsm => "aws-ssm",
        },
    );
    let mut timelines = String::new();
    for phase in ["off", "cold", "warm"] {
        for (n, node) in nodes.iter().enumerate() {
            let cache = match phase {
                "off" => String::new(),
                _ => format!(
                    "cache_ttl = \"5m\"\ncache_max_stale = \"1h\"\ncache_dir = \"{}\"\n",
                    tmpfs.join(format!("node-{n}")).display()
                ),
            };
            crate::install::write_settings(
                &node.join(format!("{}.toml", options.store.plugin())),
                &format!(
                    "{}deadline = \"55s\"\n{cache}",
                    settings.replace("[PROXY]", &proxy.url())
                ),
            )?;
        }
        // A full bucket (and quota window) for each phase.
        std::thread::sleep(Duration::from_millis(1500));
        proxy.clear();
        let outcome = mass_start(&options, &nodes)?;
        let calls = proxy.calls();
        let throttled = calls.iter().filter(|c| c.throttled).count();
        let mut durations: Vec<Duration> = outcome.fetches.iter().map(|f| f.took).collect();
        durations.sort_unstable();
        let quantile = |q: f64| {
            durations
                .get(((durations.len() as f64 - 1.0) * q).round() as usize)
                .map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        report.push_str(&format!(
            "| {phase} | {} | {} | {} | {} | {throttled} | {} | {} | {} | {:.1} MiB |\n",
            outcome.allocations,
            outcome.done_within(Duration::from_secs(10)),
            outcome.done_within(Duration::from_secs(60)),
            calls.len(),
            quantile(0.5),
            quantile(0.99),
            quantile(1.0),
            outcome.fetches.iter().map(|f| f.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        ));
        timelines.push_str(&format!("- {phase}: {}\n", per_second(&calls)));
        if let Some(failure) = outcome.fetches.iter().find_map(|f| f.error.as_ref()) {
            timelines.push_str(&format!("  first failure: {failure}\n"));
        }
    }
    report.push_str(&format!(
        "\nStore calls per second from the start of each phase (throttled in brackets):\n\n\
         {timelines}\nEvery fetch is a process on this machine's {} cores, beside the store: \
         fetch times include waiting for a core, which a real fleet (a machine per client) does \
         not; store calls and throttling carry over.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    ));
    drop(store);
    let _ = std::fs::remove_dir_all(&tmpfs);
    std::fs::write(work.join("results.md"), &report).map_err(|e| e.to_string())?;
    print!("{report}");
    Ok(())
}

/// The running store, its address, and the settings every node shares (`[PROXY]` stands for
/// the counting proxy's URL).
fn start_store(options: &Options, work: &Path) -> Result<(Box<dyn std::any::Any>, String, String)> {
    match options.store {
        Store::OpenBao => {
            use nomad_secrets_golden::openbao::{OpenBao, ROOT_TOKEN};
            let bao = OpenBao::start(None);
            for secret in 0..options.secrets {
                let body = format!("{{\"data\":{{\"value\":\"fleet-{secret}\"}}}}");
                let status = bao.call("POST", &format!("secret/data/fleet/s{secret}"), Some(&body));
                if status != Some(200) {
                    return Err(format!("OpenBao refused the seed secret: {status:?}"));
                }
            }
            let quota = format!("{{\"rate\": {}, \"interval\": \"1s\"}}", options.rate);
            let status = bao.call("POST", "sys/quotas/rate-limit/fleet", Some(&quota));
            if !matches!(status, Some(200 | 204)) {
                return Err(format!("OpenBao refused the rate-limit quota: {status:?}"));
            }
            let token = work.join("token");
            std::fs::write(&token, ROOT_TOKEN).map_err(|e| e.to_string())?;
            let address = bao.address().trim_start_matches("http://").to_owned();
            let settings = format!(
                "address = \"[PROXY]\"\ntoken_file = \"{}\"\n",
                token.display()
            );
            Ok((Box::new(bao), address, settings))
        }
        Store::AwsSsm => {
            use nomad_secrets_golden::moto::{Moto, venv};
            let moto = Moto::start();
            let seed = format!(
                "import boto3, sys\n\
                 c = boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id='testing', aws_secret_access_key='testing')\n\
                 for i in range({}):\n    c.put_parameter(Name=f'/fleet/s{{i}}', Value=f'fleet-{{i}}', Type='SecureString')\n",
                options.secrets
            );
            let status = Command::new(venv().join("bin/python"))
                .args(["-c", &seed, moto.endpoint()])
                .status()
                .map_err(|e| format!("cannot seed moto: {e}"))?;
            if !status.success() {
                return Err("seeding moto failed".into());
            }
            let credentials = work.join("credentials");
            std::fs::write(
                &credentials,
                "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
            )
            .map_err(|e| e.to_string())?;
            let address = moto.endpoint().trim_start_matches("http://").to_owned();
            let settings = format!(
                "endpoint_url = \"[PROXY]\"\nregion = \"us-east-1\"\nimds_endpoint = \"off\"\n\
                 credentials_file = \"{}\"\n",
                credentials.display()
            );
            Ok((Box::new(moto), address, settings))
        }
    }
}

/// One fetch's outcome.
struct Fetch {
    took: Duration,
    rss_kib: u64,
    error: Option<String>,
}

/// A phase's outcome.
struct Outcome {
    allocations: usize,
    /// When each allocation had all its secrets, from the phase's start (`None`: a fetch
    /// failed).
    done: Vec<Option<Duration>>,
    fetches: Vec<Fetch>,
}

impl Outcome {
    fn done_within(&self, limit: Duration) -> usize {
        self.done
            .iter()
            .filter(|d| d.is_some_and(|d| d <= limit))
            .count()
    }
}

/// Starts every allocation within the first second, each fetching its secrets in turn.
fn mass_start(options: &Options, nodes: &[PathBuf]) -> Result<Outcome> {
    let total = nodes.len() * options.allocs;
    let started = Instant::now();
    let results = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let mut threads = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for a in 0..options.allocs {
            let index = n * options.allocs + a;
            let at = Duration::from_millis((index * 1000 / total.max(1)) as u64);
            let plugin = node.join(options.store.plugin());
            let paths: Vec<String> = (0..options.secrets)
                .map(|s| options.store.path(s))
                .collect();
            let results = results.clone();
            let thread = std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    std::thread::sleep(at.saturating_sub(started.elapsed()));
                    let mut fetches = Vec::new();
                    let mut failed = false;
                    for path in paths {
                        let fetch = fetch(&plugin, &path);
                        failed |= fetch.error.is_some();
                        fetches.push(fetch);
                    }
                    let done = (!failed).then(|| started.elapsed());
                    let mut results = results.lock().unwrap();
                    results.0.push(done);
                    results.1.extend(fetches);
                })
                .map_err(|e| format!("cannot start an allocation thread: {e}"))?;
            threads.push(thread);
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    let (done, fetches) = std::mem::take(&mut *results.lock().unwrap());
    Ok(Outcome {
        allocations: total,
        done,
        fetches,
    })
}

/// One fetch as the Nomad client runs it, with its peak RSS.
fn fetch(plugin: &Path, path: &str) -> Fetch {
    let started = Instant::now();
    let child = Command::new(plugin)
        .args(["fetch", path])
        .env_clear()
        .env("CPI_OPERATION", "fetch")
        .env("NOMAD_NAMESPACE", "default")
        .env("NOMAD_JOB_ID", "app")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            return Fetch {
                took: started.elapsed(),
                rss_kib: 0,
                error: Some(format!("cannot start the plugin: {e}")),
            };
        }
    };
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    let mut status = 0;
    // SAFETY: a zeroed rusage the call fills; the pid is our child, reaped here only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let error = match stdout.starts_with("{\"result\"") {
        true => None,
        false => Some(stdout.trim().chars().take(300).collect()),
    };
    Fetch {
        took: started.elapsed(),
        rss_kib: usage.ru_maxrss as u64,
        error,
    }
}

/// One request the store was sent.
#[derive(Clone, Copy)]
struct Call {
    at: Duration,
    throttled: bool,
}

/// Store calls per second, `12 (3)` for 12 calls of which 3 were throttled.
fn per_second(calls: &[Call]) -> String {
    let last = calls.iter().map(|c| c.at.as_secs()).max().unwrap_or(0);
    let mut seconds = vec![(0usize, 0usize); last as usize + 1];
    for call in calls {
        let second = &mut seconds[call.at.as_secs() as usize];
        second.0 += 1;
        second.1 += usize::from(call.throttled);
    }
    match calls.is_empty() {
        true => "no store calls".to_owned(),
        false => seconds
            .iter()
            .map(|(n, t)| match t {
                0 => n.to_string(),
                t => format!("{n} ({t})"),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A counting HTTP proxy in front of the store: one request per connection (it closes each
/// after the answer), each recorded with its time and whether the store (or, with a `rate`,
/// the proxy's own token bucket, answering as AWS does) throttled it.
struct Proxy {
    port: u16,
    started: Arc<Mutex<Instant>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Proxy {
    fn start(upstream: String, rate: Option<u32>) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let started = Arc::new(Mutex::new(Instant::now()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let bucket = rate.map(|rate| Arc::new(Mutex::new(Bucket::new(rate))));
        let (s, c) = (started.clone(), calls.clone());
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, c, b, u, o) = (
                    s.clone(),
                    c.clone(),
                    bucket.clone(),
                    upstream.clone(),
                    open.clone(),
                );
                o.fetch_add(1, Ordering::Relaxed);
                let _ = std::thread::Builder::new()
                    .stack_size(128 << 10)
                    .spawn(move || {
                        if let Some(throttled) = relay(stream, &u, b.as_deref()) {
                            let at = s.lock().unwrap().elapsed();
                            c.lock().unwrap().push(Call { at, throttled });
                        }
                        o.fetch_sub(1, Ordering::Relaxed);
                    });
            }
        });
        Ok(Proxy {
            port,
            started,
            calls,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn clear(&self) {
        *self.started.lock().unwrap() = Instant::now();
        self.calls.lock().unwrap().clear();
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// A token bucket: `rate` tokens a second, holding at most `rate`.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Relays one request to `upstream` and its answer back; `Some(throttled)` once a request was
/// read (a connection that sent nothing is not a call).
fn relay(mut client: TcpStream, upstream: &str, bucket: Option<&Mutex<Bucket>>) -> Option<bool> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let request = read_request(&mut client)?;
    if let Some(bucket) = bucket {
        if !bucket.lock().unwrap().take() {
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ThrottlingException\r\n\
                 content-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes());
            return Some(true);
        }
    }
    let mut server = TcpStream::connect(upstream).ok()?;
    let _ = server.set_read_timeout(Some(Duration::from_secs(60)));
    server.write_all(&close_after(&request)).ok()?;
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    let throttled = answer.starts_with(b"HTTP/1.1 429");
    let _ = client.write_all(&answer);
    Some(throttled)
}

/// The request with `Connection: close`, so the store ends its answer by closing.
fn close_after(request: &[u8]) -> Vec<u8> {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(request.len());
    let head = String::from_utf8_lossy(&request[..end]);
    let mut out: Vec<u8> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    out.extend_from_slice(b"\r\nconnection: close");
    out.extend_from_slice(&request[end..]);
    out
}

/// One whole HTTP/1.1 request (head and `content-length` body).
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    loop {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..n]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + body {
                return Some(bytes);
            }
        }
    }
}
