//! # heartbridge-benches
//!
//! What the benchmarks `wire` and `storm` share: the real relay binary as a
//! child process (so its memory is its own), a TCP proxy that counts every
//! byte each way, headers included, a minimal async HTTP/1.1 client, and
//! realistic Chinese text cut from the sample handbooks.
//!
//! The relay binary is the release build in the same target directory as
//! the bench executable (`cargo build --release -p heartbridge-relay`), or
//! the file named by `HB_RELAY_BIN`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use heartbridge_proto::TeamCreated;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The relay binary: `HB_RELAY_BIN`, or `heartbridge-relay` in the profile
/// directory this bench executable was built into (`…/release/deps/x` →
/// `…/release/heartbridge-relay`).
pub fn relay_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HB_RELAY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from <target>/release/deps");
    let bin = release.join("heartbridge-relay");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build --release -p heartbridge-relay` \
         (same CARGO_TARGET_DIR), or set HB_RELAY_BIN",
        bin.display()
    );
    bin
}

/// `heartbridge-relay team create NAME --db DB --json`.
pub fn create_team(db: &Path, name: &str) -> TeamCreated {
    let out = Command::new(relay_binary())
        .args(["team", "create", name, "--json", "--db"])
        .arg(db)
        .stderr(Stdio::inherit())
        .output()
        .expect("run heartbridge-relay team create");
    assert!(out.status.success(), "team create failed: {:?}", out.status);
    serde_json::from_slice(&out.stdout).expect("team create --json prints TeamCreated")
}

/// The lead token as `heartbridge_client::claim` takes it: `TEAMID.SECRET`
/// (accepts a `team create` that already prints it whole).
pub fn lead_token(t: &TeamCreated) -> String {
    let secret = t.lead_token.expose();
    if secret.contains('.') {
        secret.to_owned()
    } else {
        format!("{}.{}", t.team_id, secret)
    }
}

/// The relay running as a child process.
pub struct RelayProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub pid: u32,
    /// Lines the relay wrote to stderr (its log), drained by a thread so
    /// that logging never blocks on a full pipe.
    pub log_lines: Arc<AtomicU64>,
    /// Log lines at WARN or ERROR, kept to be reported.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// The relay's per-request log lines (`request route=… ms=…`).
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// The bearer token its /metrics asks for ([`RelayProcess::spawn`]
    /// gives it one), with the directory of its token file.
    pub metrics_token: Option<String>,
    _metrics_dir: Option<tempfile::TempDir>,
}

impl RelayProcess {
    /// `heartbridge-relay serve --listen 127.0.0.1:0 --db DB`, logging at
    /// `log` (the relay's default is `info`: one line per request).
    /// `db` is a SQLite path or a `postgres://` URL (`--db`).
    pub fn spawn(db: impl AsRef<std::ffi::OsStr>, log: &str) -> Self {
        // /metrics is served on the public address only with a token, as
        // an operator runs it.
        let dir = tempfile::tempdir().expect("a directory for the metrics token");
        let token = format!("storm-{:032x}", rand::random::<u128>());
        let file = dir.path().join("metrics-token");
        std::fs::write(&file, &token).expect("write the metrics token");
        let mut cmd = Command::new(relay_binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .env("HEARTBRIDGE_RELAY_LOG", log)
            .env("HEARTBRIDGE_RELAY_METRICS_TOKEN_FILE", &file)
            // Thousands of devices enroll from 127.0.0.1 in the storm.
            .env("HEARTBRIDGE_RELAY_ENROLL_RATE_IP", "0");
        let mut relay = Self::spawn_command(cmd);
        relay.metrics_token = Some(token);
        relay._metrics_dir = Some(dir);
        relay
    }

    /// Any command that serves the relay and writes `listening on ADDR`
    /// on its stderr.
    pub fn spawn_command(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the relay");
        let pid = child.id();
        let stderr = child.stderr.take().expect("piped stderr");
        let log_lines = Arc::new(AtomicU64::new(0));
        let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let (lines, warnings, requests) = (
                Arc::clone(&log_lines),
                Arc::clone(&warnings),
                Arc::clone(&requests),
            );
            std::thread::spawn(move || {
                let mut announced = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !announced {
                        if let Some(a) = line.strip_prefix("listening on ") {
                            let _ = tx.send(a.to_owned());
                            announced = true;
                            continue;
                        }
                    }
                    lines.fetch_add(1, Ordering::Relaxed);
                    if line.contains(" route=") {
                        requests
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(line.clone());
                    }
                    if line.contains("WARN") || line.contains("ERROR") {
                        let mut w = warnings.lock().unwrap_or_else(|p| p.into_inner());
                        if w.len() < 20 {
                            w.push(line);
                        }
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay announces `listening on ADDR` within 30 s")
            .parse()
            .expect("a socket address");
        RelayProcess {
            child: Some(child),
            addr,
            pid,
            log_lines,
            warnings,
            requests,
            metrics_token: None,
            _metrics_dir: None,
        }
    }

    /// A field of /proc/PID/status in kB (`VmHWM:`, `VmRSS:`).
    pub fn status_kb(&self, field: &str) -> u64 {
        proc_status_kb(self.pid, field)
    }

    /// CPU seconds (user + system) the relay has used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&format!("/proc/{}/stat", self.pid))
    }

    /// Threads of the relay process now.
    pub fn threads(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM (the relay finishes in-flight requests and commits), waits
    /// up to 30 s, then kills. Returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().map(|s| s.success()).unwrap_or(false));
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(clean) => clean,
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                let _ = rx.recv_timeout(Duration::from_secs(10));
                false
            }
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The value of `key=` in a relay log line (text or JSON format).
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    for token in line.split([' ', ',', '{', '}']) {
        let token = token.trim_matches('"');
        if let Some(v) = token.strip_prefix(key) {
            if let Some(v) = v.strip_prefix('=').or_else(|| v.strip_prefix("\":")) {
                return Some(v.trim_matches('"'));
            }
        }
    }
    None
}

/// A field of /proc/PID/status in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a /proc/…/stat file, in seconds (USER_HZ = 100).
pub fn cpu_secs(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // The command name may hold spaces: fields count from after ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits (up to `max_wait`) for the 1-minute load average to fall below
/// `below`; returns the load seen last. The load average is polled: there
/// is no event to wait on.
#[allow(clippy::disallowed_methods)]
pub fn wait_for_quiet(below: f64, max_wait: Duration) -> String {
    let start = Instant::now();
    loop {
        let load = load_average();
        let one: f64 = load
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if one < below || start.elapsed() >= max_wait {
            return load;
        }
        eprintln!("load average {load}: waiting for it to fall below {below}");
        std::thread::sleep(Duration::from_secs(15));
    }
}

/// The fd limit of this process (soft), from /proc/self/limits.
pub fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------
// The counting proxy.

/// What went through the proxy.
#[derive(Default, Debug)]
pub struct Counters {
    /// Client → relay bytes, headers included.
    pub up: AtomicU64,
    /// Relay → client bytes, headers included.
    pub down: AtomicU64,
    /// HTTP requests seen client → relay (request heads parsed).
    pub requests: AtomicU64,
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// The head (up to the blank line) of the last request and of the
    /// last response seen, to show what the bytes are.
    pub last_heads: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub up: u64,
    pub down: u64,
    pub requests: u64,
    pub connections: u64,
}

impl Counters {
    pub fn take(&self) -> Traffic {
        Traffic {
            up: self.up.swap(0, Ordering::SeqCst),
            down: self.down.swap(0, Ordering::SeqCst),
            requests: self.requests.swap(0, Ordering::SeqCst),
            connections: self.connections.swap(0, Ordering::SeqCst),
        }
    }
}

/// Finds request heads in a client → server byte stream (Content-Length
/// bodies; a chunked body is counted as unparseable).
#[derive(Default)]
struct RequestCounter {
    head: Vec<u8>,
    body_left: u64,
}

impl RequestCounter {
    /// Feeds bytes; returns how many request heads completed in them.
    fn feed(&mut self, data: &[u8]) -> u64 {
        let mut heads = 0;
        let mut pending = data.to_vec();
        loop {
            if self.body_left > 0 {
                let k = (pending.len() as u64).min(self.body_left) as usize;
                self.body_left -= k as u64;
                pending.drain(..k);
            }
            if pending.is_empty() {
                return heads;
            }
            self.head.append(&mut pending);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return heads;
            };
            heads += 1;
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            assert!(
                !head.contains("transfer-encoding: chunked"),
                "the request counter reads Content-Length bodies only"
            );
            self.body_left = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            pending = self.head.split_off(end + 4);
            self.head.clear();
        }
    }
}

/// A TCP proxy in front of the relay, counting bytes each way.
pub struct Proxy {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

/// Starts a proxy to `upstream` on 127.0.0.1 (its own thread and runtime).
pub fn start_proxy(upstream: SocketAddr) -> Proxy {
    let counters = Arc::new(Counters::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let c = Arc::clone(&counters);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("proxy runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
            tx.send(listener.local_addr().expect("proxy addr"))
                .expect("report proxy addr");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                c.connections.fetch_add(1, Ordering::SeqCst);
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, Arc::clone(&c), true);
                    let down = pump(sr, cw, c, false);
                    let _ = tokio::join!(up, down);
                });
            }
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("proxy starts");
    Proxy { addr, counters }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    c: Arc<Counters>,
    upward: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut requests = RequestCounter::default();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.starts_with(b"POST ") || buf.starts_with(b"GET ") || buf.starts_with(b"HTTP/") {
                let mut heads = c.last_heads.lock().unwrap_or_else(|p| p.into_inner());
                let slot = if upward { &mut heads.0 } else { &mut heads.1 };
                *slot = buf[..end + 4].to_vec();
            }
        }
        if upward {
            c.up.fetch_add(n as u64, Ordering::SeqCst);
            let heads = requests.feed(&buf[..n]);
            c.requests.fetch_add(heads, Ordering::SeqCst);
        } else {
            c.down.fetch_add(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

// ---------------------------------------------------------------------
// A minimal async HTTP/1.1 client (hyper), one keep-alive connection.

/// One HTTP/1.1 connection to the relay.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

/// Why a request failed below HTTP.
#[derive(Debug)]
pub enum HttpError {
    Connect(std::io::Error),
    Handshake(String),
    Send(String),
    Body(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connect: {e}"),
            HttpError::Handshake(e) => write!(f, "handshake: {e}"),
            HttpError::Send(e) => write!(f, "send: {e}"),
            HttpError::Body(e) => write!(f, "body: {e}"),
        }
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The accept backlog of the listener on `addr` (`ss -ltn`: Send-Q of a
/// listening socket is its backlog), if `ss` is there.
pub fn listen_backlog(addr: SocketAddr) -> Option<u64> {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// TCP counters of the whole machine (/proc/net/netstat `TcpExt`) that
/// tell of a listener overwhelmed: accept-queue overflows, SYN cookies,
/// SYN retransmissions, resets.
pub fn tcp_counters() -> Vec<(String, u64)> {
    const WANTED: [&str; 8] = [
        "ListenOverflows",
        "ListenDrops",
        "TCPReqQFullDoCookies",
        "TCPReqQFullDrop",
        "TCPSynRetrans",
        "TCPAbortOnData",
        "TCPAbortOnMemory",
        "TCPBacklogDrop",
    ];
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(keys), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    keys.split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(k, _)| WANTED.contains(k))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
        .collect()
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, HttpError> {
        let stream = TcpStream::connect(addr).await.map_err(HttpError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpError::Handshake(chain(&e)))?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    /// POSTs a body; returns the status and the whole response body.
    pub async fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), HttpError> {
        self.sender
            .ready()
            .await
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", "relay")
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| HttpError::Body(chain(&e)))?
            .to_bytes();
        Ok((status, body))
    }

    /// GETs a path; returns the status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, Bytes), HttpError> {
        self.get_with(path, None).await
    }

    /// `GET path`, with `Authorization: Bearer TOKEN` when a token is given.
    pub async fn get_with(
        &mut self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, Bytes), HttpError> {
        self.sender
            .ready()
            .await
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let mut req = hyper::Request::builder()
            .method("GET")
            .uri(path)
            .header("host", "relay");
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| HttpError::Send(chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| HttpError::Body(chain(&e)))?
            .to_bytes();
        Ok((status, body))
    }
}

// ---------------------------------------------------------------------
// Text.

/// The paragraphs of the sample Chinese handbooks (front matter, headings
/// and short lines dropped), for realistic contact notes.
pub fn handbook_paragraphs() -> Vec<String> {
    let mut out = Vec::new();
    for path in zh_handbooks() {
        let text = std::fs::read_to_string(&path).expect("read a sample handbook");
        for p in text.split("\n\n") {
            let p = p.trim();
            if p.starts_with('#') || p.starts_with("---") || p.chars().count() < 40 {
                continue;
            }
            out.push(p.replace('\n', ""));
        }
    }
    assert!(!out.is_empty(), "the sample handbooks have paragraphs");
    out
}

/// `handbooks/zh/*.md`, sorted.
pub fn zh_handbooks() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../handbooks/zh");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    v.sort();
    v
}

/// About `chars` characters of handbook text starting at a random
/// paragraph: consecutive paragraphs joined, cut at `chars`.
pub fn note_text(paragraphs: &[String], chars: usize, rng: &mut impl rand::Rng) -> String {
    let mut i = rng.random_range(0..paragraphs.len());
    let mut s = String::new();
    while s.chars().count() < chars {
        s.push_str(&paragraphs[i % paragraphs.len()]);
        i += 1;
    }
    s.chars().take(chars).collect()
}

/// Percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_counted_across_reads() {
        let mut c = RequestCounter::default();
        let r = b"POST /v1/sync HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello";
        let mut two = r.to_vec();
        two.extend_from_slice(r);
        assert_eq!(c.feed(&two), 2);
        assert_eq!(c.feed(&r[..10]), 0);
        assert_eq!(c.feed(&r[10..44]), 0);
        assert_eq!(c.feed(&r[44..47]), 1);
        assert_eq!(c.feed(&r[47..]), 0);
        assert_eq!(c.feed(b"GET / HTTP/1.1\r\n\r\n"), 1);
    }

    #[test]
    fn log_fields_in_text_and_json() {
        let text = "2026-11-29T16:00:00Z  INFO heartbridge_relay::http: request route=/v1/sync status=200 pushed=20 ms=12.5";
        assert_eq!(log_field(text, "route"), Some("/v1/sync"));
        assert_eq!(log_field(text, "pushed"), Some("20"));
        assert_eq!(log_field(text, "ms"), Some("12.5"));
        let json = r#"{"fields":{"route":"/v1/sync","pushed":0,"ms":3.5}}"#;
        assert_eq!(log_field(json, "pushed"), Some("0"));
        assert_eq!(log_field(json, "ms"), Some("3.5"));
    }
}
