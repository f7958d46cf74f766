//! # linkem
//!
//! A link emulator for tests and benchmarks: a TCP proxy on loopback that
//! sits between a device and a relay and makes the link between them as bad
//! as asked.
//!
//! - **latency**: every byte is delivered this long after it was read, in
//!   each direction (one-way latency; a round trip costs twice). Delivery is
//!   pipelined, so latency does not cap throughput. A new connection can be
//!   charged its TCP handshake too ([`Config::handshake`]).
//! - **bandwidth**: a cap in bytes per second for each direction, shared by
//!   every connection of the link (one radio), paced by a token bucket with
//!   a burst of 20 ms worth of bytes.
//! - **cuts**: a connection ends after a given number of bytes (exactly, or
//!   at an offset drawn per connection from a seeded RNG), counted in one
//!   direction or both. The bytes before the offset are delivered, then the
//!   connection is closed (`FIN`) or reset (`RST`, by `SO_LINGER` 0).
//! - **stalls**: forwarding stops for a while, once per connection at an
//!   offset, or on every connection at once from [`Link::stall`].
//! - **resets**: [`Link::reset_all`] resets every live connection.
//!
//! The listener is injected (bind it where you like), the upstream is an
//! address, and [`Link::shutdown`] stops it. [`Link::stats`] reports bytes
//! forwarded each way and how connections ended. [`BackgroundLink`] runs a
//! link on its own runtime thread for synchronous tests.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A direction of a connection, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side (the device) to the upstream (the relay).
    Up,
    /// From the upstream (the relay) to the connecting side (the device).
    Down,
    /// Both directions, their bytes counted together.
    Both,
}

/// Where in a connection's byte stream something happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// After exactly this many bytes.
    At(u64),
    /// After a number of bytes drawn uniformly from `1..=2*mean` for each
    /// connection, from the link's seeded RNG (the same seed gives the same
    /// offset to the n-th connection).
    Random { mean: u64 },
}

/// How a cut ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// An orderly close (`FIN`) on both sides.
    Close,
    /// A reset (`RST`, `SO_LINGER` 0) on both sides.
    Reset,
}

/// A connection cut at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Which bytes count towards the offset.
    pub counted: Direction,
    pub at: Offset,
    pub end: End,
}

/// A pause in forwarding, once per connection, at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Which bytes count towards the offset; the pause holds the direction
    /// whose byte reached it.
    pub counted: Direction,
    pub at: Offset,
    pub duration: Duration,
}

/// How bad the link is. The default is a perfect link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// One-way latency, each direction.
    pub latency: Duration,
    /// How long a new connection forwards nothing after it is accepted. A
    /// proxy cannot delay the kernel's TCP handshake, so without this a new
    /// connection costs no round trip; set it to `2 * latency` to charge
    /// one, as a real link does.
    pub handshake: Duration,
    /// Bytes per second, each direction; `None` for no cap.
    pub bandwidth: Option<u64>,
    pub cut: Option<Cut>,
    pub stall: Option<Stall>,
    /// Seed of the RNG behind [`Offset::Random`].
    pub seed: u64,
}

/// What the link did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes delivered to the upstream.
    pub bytes_up: u64,
    /// Bytes delivered to the connecting side.
    pub bytes_down: u64,
    /// Connections ended by a configured [`Cut`].
    pub cut: u64,
    /// Connections ended with a reset (a cut with [`End::Reset`],
    /// [`Link::reset_all`], or a reset from one side passed on).
    pub reset: u64,
    /// Stalls begun (configured per connection): counted when the pause
    /// starts, after the bytes before its offset were read.
    pub stalls: u64,
    /// Connections refused because the upstream could not be reached.
    pub upstream_failed: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    cut: AtomicU64,
    reset: AtomicU64,
    stalls: AtomicU64,
    upstream_failed: AtomicU64,
}

impl Shared {
    /// Counts, and wakes whoever waits on the stats ([`Link::wait_until`]).
    fn bump(&self, pick: impl Fn(&Counters) -> &AtomicU64, n: u64) {
        pick(&self.counters).fetch_add(n, Ordering::Relaxed);
        let _held = lock(&self.changed.0);
        self.changed.1.notify_all();
    }
}

/// A token bucket, allowed to go negative: a taker pays for its bytes at
/// once and waits until the bucket would have held them.
#[derive(Default)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

fn burst(rate: u64) -> u64 {
    (rate / 50).max(512)
}

struct Shared {
    upstream: SocketAddr,
    config: Mutex<Config>,
    buckets: [Mutex<Bucket>; 2],
    counters: Counters,
    paused_until: Mutex<Option<Instant>>,
    resets: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    changed: (Mutex<()>, std::sync::Condvar),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    async fn pace(&self, dir: Direction, rate: u64, n: usize) {
        let wait = {
            let mut b = lock(&self.buckets[usize::from(dir == Direction::Down)]);
            let now = Instant::now();
            let cap = burst(rate) as f64;
            b.tokens = match b.last {
                None => cap,
                Some(last) => (b.tokens + (now - last).as_secs_f64() * rate as f64).min(cap),
            };
            b.last = Some(now);
            b.tokens -= n as f64;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / rate as f64)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn wait_unpaused(&self) {
        loop {
            let until = *lock(&self.paused_until);
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }
}

enum Event {
    Cut(End),
    Stall(Duration),
}

/// One connection's offsets and byte counts.
struct Plan {
    up: u64,
    down: u64,
    cut: Option<(Direction, u64, End)>,
    stall: Option<(Direction, u64, Duration)>,
}

fn draw(rng: &mut StdRng, at: Offset) -> u64 {
    match at {
        Offset::At(n) => n,
        Offset::Random { mean } => rng.random_range(1..=mean.max(1).saturating_mul(2)),
    }
}

fn applies(counted: Direction, dir: Direction) -> bool {
    counted == Direction::Both || counted == dir
}

impl Plan {
    fn new(config: &Config, index: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(
            config
                .seed
                .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        Plan {
            up: 0,
            down: 0,
            cut: config.cut.map(|c| (c.counted, draw(&mut rng, c.at), c.end)),
            stall: config
                .stall
                .map(|s| (s.counted, draw(&mut rng, s.at), s.duration)),
        }
    }

    fn counted(&self, d: Direction) -> u64 {
        match d {
            Direction::Up => self.up,
            Direction::Down => self.down,
            Direction::Both => self.up + self.down,
        }
    }

    /// How many of `len` bytes read in `dir` go before the next event.
    fn step(&mut self, dir: Direction, len: usize) -> (usize, Option<Event>) {
        let len64 = len as u64;
        let rem = |c: Direction, at: u64| at.saturating_sub(self.counted(c));
        let cut = self
            .cut
            .filter(|c| applies(c.0, dir))
            .map(|(c, at, end)| (rem(c, at), end))
            .filter(|(r, _)| *r <= len64);
        let stall = self
            .stall
            .filter(|s| applies(s.0, dir))
            .map(|(c, at, d)| (rem(c, at), d))
            .filter(|(r, _)| *r <= len64);
        let (take, event) = match (cut, stall) {
            (Some((c, _)), Some((s, d))) if s < c => (s, Some(Event::Stall(d))),
            (None, Some((s, d))) => (s, Some(Event::Stall(d))),
            (Some((c, end)), _) => (c, Some(Event::Cut(end))),
            (None, None) => (len64, None),
        };
        if matches!(event, Some(Event::Stall(_))) {
            self.stall = None;
        }
        match dir {
            Direction::Down => self.down += take,
            _ => self.up += take,
        }
        (take as usize, event)
    }
}

enum Msg {
    Data(Instant, Vec<u8>),
    /// The source half-closed.
    Eof,
    /// End the connection (a cut, after the data before it).
    End(End),
    /// The source failed (reset): pass a reset on.
    Failed,
}

struct Pump<'a> {
    shared: &'a Shared,
    config: &'a Config,
    plan: &'a Mutex<Plan>,
    dir: Direction,
}

impl Pump<'_> {
    async fn read(&self, src: &mut OwnedReadHalf, tx: mpsc::Sender<Msg>) {
        let chunk = match self.config.bandwidth {
            Some(rate) => (burst(rate) as usize).min(16 * 1024),
            None => 64 * 1024,
        };
        let mut buf = vec![0u8; chunk];
        loop {
            let n = match src.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(Msg::Eof).await;
                    return;
                }
                Ok(n) => n,
                Err(_) => {
                    let _ = tx.send(Msg::Failed).await;
                    return;
                }
            };
            let mut rest = &buf[..n];
            loop {
                let (take, event) = lock(self.plan).step(self.dir, rest.len());
                let (piece, tail) = rest.split_at(take);
                rest = tail;
                if !piece.is_empty() {
                    if let Some(rate) = self.config.bandwidth {
                        self.shared.pace(self.dir, rate.max(1), piece.len()).await;
                    }
                    let at = Instant::now() + self.config.latency;
                    if tx.send(Msg::Data(at, piece.to_vec())).await.is_err() {
                        return;
                    }
                }
                match event {
                    Some(Event::Cut(end)) => {
                        let _ = tx.send(Msg::End(end)).await;
                        return;
                    }
                    Some(Event::Stall(d)) => {
                        self.shared.bump(|c| &c.stalls, 1);
                        tokio::time::sleep(d).await;
                    }
                    None => {}
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
    }

    async fn write(
        &self,
        dst: &mut OwnedWriteHalf,
        mut rx: mpsc::Receiver<Msg>,
        ended: &watch::Sender<Option<(End, bool)>>,
    ) {
        let counter: fn(&Counters) -> &AtomicU64 = if self.dir == Direction::Down {
            |c| &c.bytes_down
        } else {
            |c| &c.bytes_up
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Data(at, bytes) => {
                    tokio::time::sleep_until(at).await;
                    self.shared.wait_unpaused().await;
                    if dst.write_all(&bytes).await.is_err() {
                        ended.send_replace(Some((End::Reset, false)));
                        return;
                    }
                    self.shared.bump(counter, bytes.len() as u64);
                }
                Msg::Eof => {
                    let _ = dst.shutdown().await;
                    return;
                }
                Msg::End(end) => {
                    ended.send_replace(Some((end, true)));
                    return;
                }
                Msg::Failed => {
                    ended.send_replace(Some((End::Reset, false)));
                    return;
                }
            }
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn ended(rx: &mut watch::Receiver<Option<(End, bool)>>) -> Option<(End, bool)> {
    match rx.wait_for(Option::is_some).await {
        Ok(e) => *e,
        Err(_) => None,
    }
}

async fn connection(client: TcpStream, shared: Arc<Shared>, config: Config, index: u64) {
    let server = match TcpStream::connect(shared.upstream).await {
        Ok(s) => s,
        Err(_) => {
            shared.bump(|c| &c.upstream_failed, 1);
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if !config.handshake.is_zero() {
        let mut stop = shared.stop.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(config.handshake) => {}
            _ = stopped(&mut stop) => return,
        }
    }
    let plan = Mutex::new(Plan::new(&config, index));
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (ended_tx, mut ended_rx) = watch::channel(None);
    let mut stop = shared.stop.subscribe();
    let mut resets = shared.resets.subscribe();
    let end = {
        let pump = |dir| Pump {
            shared: &shared,
            config: &config,
            plan: &plan,
            dir,
        };
        let (up, down) = (pump(Direction::Up), pump(Direction::Down));
        let (up_tx, up_rx) = mpsc::channel(1024);
        let (down_tx, down_rx) = mpsc::channel(1024);
        let pumps = async {
            tokio::join!(
                up.read(&mut cr, up_tx),
                up.write(&mut sw, up_rx, &ended_tx),
                down.read(&mut sr, down_tx),
                down.write(&mut cw, down_rx, &ended_tx),
            )
        };
        tokio::select! {
            _ = pumps => None,
            e = ended(&mut ended_rx) => e,
            _ = stopped(&mut stop) => Some((End::Close, false)),
            _ = resets.changed() => Some((End::Reset, false)),
        }
    };
    if let Some((how, by_cut)) = end {
        if by_cut {
            shared.bump(|c| &c.cut, 1);
        }
        match how {
            End::Reset => {
                shared.bump(|c| &c.reset, 1);
                // Reunited, so that no write half sends a FIN when dropped.
                for s in [cr.reunite(cw), sr.reunite(sw)].into_iter().flatten() {
                    let _ = s.set_zero_linger();
                }
            }
            End::Close => {
                let _ = cw.shutdown().await;
                let _ = sw.shutdown().await;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut stop = shared.stop.subscribe();
    let mut index = 0u64;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    index += 1;
                    shared.bump(|c| &c.connections, 1);
                    let config = lock(&shared.config).clone();
                    tasks.spawn(connection(stream, shared.clone(), config, index));
                }
                // Out of descriptors or an aborted handshake: keep serving.
                Err(_) => tokio::task::yield_now().await,
            },
            _ = stopped(&mut stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// A running link. Dropping it stops it too (without waiting).
pub struct Link {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts forwarding connections accepted on `listener` to `upstream`.
    /// Must be called inside a tokio runtime; the link runs on it.
    pub fn start(listener: TcpListener, upstream: SocketAddr, config: Config) -> io::Result<Link> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            config: Mutex::new(config),
            buckets: Default::default(),
            counters: Counters::default(),
            paused_until: Mutex::new(None),
            resets: watch::Sender::new(0),
            stop: watch::Sender::new(false),
            changed: Default::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Link {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address devices connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for a relay behind the link.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the link did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            connections: get(&c.connections),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
            cut: get(&c.cut),
            reset: get(&c.reset),
            stalls: get(&c.stalls),
            upstream_failed: get(&c.upstream_failed),
        }
    }

    /// Blocks the calling thread until `cond` holds for the stats, or
    /// `timeout` passes; says which. For synchronous tests (a
    /// [`BackgroundLink`]); never call it on the link's own runtime.
    pub fn wait_until(&self, timeout: Duration, cond: impl Fn(&Stats) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut held = lock(&self.shared.changed.0);
        loop {
            if cond(&self.stats()) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            held = self
                .shared
                .changed
                .1
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The link's conditions from now on: connections accepted later get
    /// them; live connections keep theirs.
    pub fn set_config(&self, config: Config) {
        *lock(&self.shared.config) = config;
    }

    /// Stops delivering bytes on every connection, both ways, for `d` from
    /// now (bytes keep being read and are delivered after).
    pub fn stall(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = lock(&self.shared.paused_until);
        *p = Some(p.map_or(until, |t| t.max(until)));
    }

    /// Resets (`RST`) every live connection.
    pub fn reset_all(&self) {
        self.shared.resets.send_modify(|g| *g += 1);
    }

    /// Stops accepting, closes every connection and waits until all are
    /// gone.
    pub async fn shutdown(mut self) {
        self.shared.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

/// A [`Link`] on its own runtime thread, for synchronous code. Dropping it
/// shuts the link down and waits for it.
pub struct BackgroundLink {
    link: Option<Link>,
    rt: Option<tokio::runtime::Runtime>,
}

impl BackgroundLink {
    /// Starts a link accepting on `listener` (a bound std listener).
    pub fn start(
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        config: Config,
    ) -> io::Result<BackgroundLink> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("linkem")
            .enable_all()
            .build()?;
        listener.set_nonblocking(true)?;
        let link =
            rt.block_on(
                async move { Link::start(TcpListener::from_std(listener)?, upstream, config) },
            )?;
        Ok(BackgroundLink {
            link: Some(link),
            rt: Some(rt),
        })
    }

    /// Binds 127.0.0.1 on a free port and starts a link to `upstream`.
    pub fn loopback(upstream: SocketAddr, config: Config) -> io::Result<BackgroundLink> {
        BackgroundLink::start(
            std::net::TcpListener::bind("127.0.0.1:0")?,
            upstream,
            config,
        )
    }
}

impl std::ops::Deref for BackgroundLink {
    type Target = Link;
    fn deref(&self) -> &Link {
        self.link.as_ref().expect("link runs until drop")
    }
}

impl Drop for BackgroundLink {
    fn drop(&mut self) {
        if let (Some(link), Some(rt)) = (self.link.take(), self.rt.take()) {
            rt.block_on(link.shutdown());
        }
    }
}
