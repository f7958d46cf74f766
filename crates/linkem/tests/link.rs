//! The link emulator between a real client socket and a real server socket
//! on loopback. Timing is asserted only as bounds the emulation guarantees
//! (a pause lasts at least its duration) or with generous margins
//! (throughput near the cap).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use linkem::{Config, Cut, Direction, End, Link, Offset, Stall};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server that takes one connection and reads it to the end: the bytes
/// and when the last one arrived.
async fn sink() -> (SocketAddr, JoinHandle<(Vec<u8>, Instant)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        (got, Instant::now())
    });
    (addr, h)
}

/// A server that writes `data` to each of `n` connections, then closes.
async fn source(data: Vec<u8>, n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..n {
            let (mut s, _) = l.accept().await.expect("accept");
            let data = data.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// An echo server for any number of connections.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn link(upstream: SocketAddr, config: Config) -> Link {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Link::start(l, upstream, config).expect("link")
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Reads until end or error: what arrived, and the error kind if any.
async fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

const CAP: u64 = 400_000;
const TOTAL: usize = 200_000;

fn assert_near_cap(bytes: usize, elapsed: Duration) {
    let rate = bytes as f64 / elapsed.as_secs_f64();
    assert!(
        rate <= CAP as f64 * 1.2,
        "{rate:.0} B/s is over the cap of {CAP} B/s"
    );
    assert!(
        rate >= CAP as f64 / 4.0,
        "{rate:.0} B/s is far below the cap of {CAP} B/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_holds_upstream() {
    let (up, done) = sink().await;
    let link = link(
        up,
        Config {
            bandwidth: Some(CAP),
            ..Config::default()
        },
    )
    .await;
    let data = pattern(TOTAL);
    let start = Instant::now();
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    c.write_all(&data).await.expect("write");
    c.shutdown().await.expect("shutdown");
    let (got, at) = done.await.expect("sink");
    assert_eq!(got, data);
    assert_near_cap(TOTAL, at - start);
    assert_eq!(link.stats().bytes_up, TOTAL as u64);
    assert_eq!(link.stats().bytes_down, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_holds_downstream() {
    let data = pattern(TOTAL);
    let up = source(data.clone(), 1).await;
    let link = link(
        up,
        Config {
            bandwidth: Some(CAP),
            ..Config::default()
        },
    )
    .await;
    let start = Instant::now();
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    let (got, err) = read_all(&mut c).await;
    let elapsed = start.elapsed();
    assert_eq!(err, None);
    assert_eq!(got, data);
    assert_near_cap(TOTAL, elapsed);
    assert_eq!(link.stats().bytes_down, TOTAL as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_closes_the_connection_at_its_offset() {
    let data = pattern(50_000);
    let up = source(data.clone(), 1).await;
    let link = link(
        up,
        Config {
            cut: Some(Cut {
                counted: Direction::Down,
                at: Offset::At(1000),
                end: End::Close,
            }),
            ..Config::default()
        },
    )
    .await;
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    let (got, err) = read_all(&mut c).await;
    assert_eq!(err, None, "a close ends with FIN, not an error");
    assert_eq!(got, data[..1000]);
    let s = link.stats();
    assert_eq!((s.cut, s.reset, s.bytes_down), (1, 0, 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_cut_resets_the_connection() {
    let up = source(pattern(50_000), 1).await;
    let link = link(
        up,
        Config {
            cut: Some(Cut {
                counted: Direction::Down,
                at: Offset::At(1000),
                end: End::Reset,
            }),
            ..Config::default()
        },
    )
    .await;
    // The reset can come so soon that it already fails the connect.
    let (got, err) = match TcpStream::connect(link.addr()).await {
        Ok(mut c) => read_all(&mut c).await,
        Err(e) => (Vec::new(), Some(e.kind())),
    };
    assert_eq!(err, Some(ErrorKind::ConnectionReset));
    assert!(
        got.len() <= 1000,
        "{} bytes passed a cut at 1000",
        got.len()
    );
    let s = link.stats();
    assert_eq!((s.cut, s.reset), (1, 1));
}

/// Offsets drawn for five connections in a row.
async fn random_cuts(seed: u64) -> Vec<usize> {
    let up = source(pattern(100_000), 5).await;
    let link = link(
        up,
        Config {
            cut: Some(Cut {
                counted: Direction::Both,
                at: Offset::Random { mean: 3000 },
                end: End::Close,
            }),
            seed,
            ..Config::default()
        },
    )
    .await;
    let mut out = Vec::new();
    for _ in 0..5 {
        let mut c = TcpStream::connect(link.addr()).await.expect("connect");
        let (got, err) = read_all(&mut c).await;
        assert_eq!(err, None);
        out.push(got.len());
    }
    assert_eq!(link.stats().cut, 5);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cuts_follow_the_seed() {
    let a = random_cuts(7).await;
    assert!(a.iter().all(|&n| (1..=6000).contains(&n)), "{a:?}");
    assert!(a.iter().any(|&n| n != a[0]), "offsets do not vary: {a:?}");
    assert_eq!(random_cuts(7).await, a, "same seed, same offsets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_pauses_delivery_at_its_offset() {
    let (up, done) = sink().await;
    let pause = Duration::from_millis(300);
    let link = link(
        up,
        Config {
            stall: Some(Stall {
                counted: Direction::Up,
                at: Offset::At(1000),
                duration: pause,
            }),
            ..Config::default()
        },
    )
    .await;
    let data = pattern(3000);
    let start = Instant::now();
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    c.write_all(&data).await.expect("write");
    c.shutdown().await.expect("shutdown");
    let (got, at) = done.await.expect("sink");
    assert_eq!(got, data);
    assert!(at - start >= pause, "delivered in {:?}", at - start);
    assert_eq!(link.stats().stalls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_now_pauses_every_connection() {
    let link = link(echo().await, Config::default()).await;
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    c.write_all(b"before").await.expect("write");
    let mut buf = [0u8; 6];
    c.read_exact(&mut buf).await.expect("echo");
    let pause = Duration::from_millis(250);
    let start = Instant::now();
    link.stall(pause);
    c.write_all(b"during").await.expect("write");
    c.read_exact(&mut buf).await.expect("echo after the pause");
    assert_eq!(&buf, b"during");
    assert!(start.elapsed() >= pause, "{:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_way() {
    let latency = Duration::from_millis(100);
    let link = link(
        echo().await,
        Config {
            latency,
            ..Config::default()
        },
    )
    .await;
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    let start = Instant::now();
    c.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.expect("echo");
    assert!(start.elapsed() >= latency * 2, "{:?}", start.elapsed());
    let s = link.stats();
    assert_eq!((s.bytes_up, s.bytes_down), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_pays_its_handshake() {
    let latency = Duration::from_millis(50);
    let link = link(
        echo().await,
        Config {
            latency,
            handshake: latency * 2,
            ..Config::default()
        },
    )
    .await;
    let start = Instant::now();
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    c.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.expect("echo");
    let first = start.elapsed();
    assert!(first >= latency * 4, "first round trip in {first:?}");
    // Only once per connection: the next round trip is one round trip.
    let start = Instant::now();
    c.write_all(b"pong").await.expect("write");
    c.read_exact(&mut buf).await.expect("echo");
    assert!(start.elapsed() >= latency * 2, "{:?}", start.elapsed());
    assert_eq!(&buf, b"pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_all_and_shutdown_end_connections() {
    let link = link(echo().await, Config::default()).await;
    let mut c = TcpStream::connect(link.addr()).await.expect("connect");
    c.write_all(b"x").await.expect("write");
    let mut one = [0u8; 1];
    c.read_exact(&mut one).await.expect("echo");
    link.reset_all();
    let (_, err) = read_all(&mut c).await;
    assert_eq!(err, Some(ErrorKind::ConnectionReset));
    assert_eq!(link.stats().reset, 1);

    let mut open = TcpStream::connect(link.addr()).await.expect("connect");
    open.write_all(b"y").await.expect("write");
    open.read_exact(&mut one).await.expect("echo");
    let addr = link.addr();
    link.shutdown().await;
    let (_, err) = read_all(&mut open).await;
    assert_eq!(err, None, "shutdown closes live connections");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_counted() {
    // A port that was free a moment ago: nothing listens there.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = gone.local_addr().expect("addr");
    drop(gone);
    let link = link(addr, Config::default()).await;
    // The link resets the connection; that may already fail the connect.
    if let Ok(mut c) = TcpStream::connect(link.addr()).await {
        let (got, _) = read_all(&mut c).await;
        assert!(got.is_empty());
    }
    assert_eq!(link.stats().upstream_failed, 1);
}
