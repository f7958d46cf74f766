//! TLS without a certificate authority (issue 10, decision 6): a relay
//! serving its own self-signed certificate, devices that pin its
//! fingerprint, an imposter with another certificate refused before any
//! request (so before any bearer token) is sent, the same fingerprint after
//! a restart, and a real certificate chain from PEM files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::{CertPin, Invite, Role};
use heartbridge_core::{Group, NewCase, RelayKind, Risk, Store, SyncOptions};
use heartbridge_relay::tls::{self_signed_paths, Tls};
use heartbridge_relay::Config;
use tokio::io::AsyncReadExt;

/// A relay on a given loopback address with a given database and TLS
/// identity, in its own runtime thread; stopped gracefully on drop.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn start(db: &Path, addr: SocketAddr, tls: Tls) -> (Running, SocketAddr) {
    start_with(
        Config {
            tls: Some(tls),
            ..Config::new(db)
        },
        addr,
    )
}

fn start_with(config: Config, addr: SocketAddr) -> (Running, SocketAddr) {
    let listener = std::net::TcpListener::bind(addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            ready_tx.send(()).expect("ready");
            heartbridge_relay::serve(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("relay ran");
        });
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("relay started");
    (
        Running {
            stop: Some(stop),
            thread: Some(thread),
        },
        addr,
    )
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TLS server with its own certificate that records every decrypted byte
/// a client sends it and how many handshakes failed.
struct Imposter {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
    failed_handshakes: Arc<Mutex<usize>>,
    _thread: std::thread::JoinHandle<()>,
}

fn imposter(tls: Tls) -> Imposter {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("https://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(0usize));
    let (r, f) = (Arc::clone(&received), Arc::clone(&failed));
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tls.acceptor();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, r, f) = (acceptor.clone(), Arc::clone(&r), Arc::clone(&f));
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(mut s) => {
                            let mut buf = vec![0u8; 4096];
                            while let Ok(n) = s.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                                r.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                        }
                        Err(_) => *f.lock().unwrap() += 1,
                    }
                });
            }
        });
    });
    Imposter {
        url,
        received,
        failed_handshakes: failed,
        _thread: thread,
    }
}

/// Waits (up to 10 s) until `cond` holds.
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in 10 s"
        );
        std::thread::yield_now();
    }
}

fn device(dir: &Path, name: &str) -> Store {
    Store::init(
        &dir.join(name),
        name,
        &heartbridge_core::testing::protection(),
    )
    .expect("init")
}

fn opts() -> SyncOptions {
    SyncOptions::default()
}

#[test]
fn a_pinned_device_enrolls_and_syncs_an_imposter_is_refused_and_a_restart_keeps_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let tls = Tls::self_signed(&db).expect("self-signed identity");
    let fingerprint = tls.fingerprint();
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");

    // The key is private to the relay's user; neither file holds anything
    // but PEM.
    let (cert_path, key_path) = self_signed_paths(&db);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    assert!(std::fs::read_to_string(&cert_path)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        heartbridge_relay::tls::fingerprint_of_file(&cert_path).unwrap(),
        fingerprint
    );

    let created = heartbridge_relay::create_team(&db, "venue team").unwrap();
    let (relay, addr) = start(&db, "127.0.0.1:0".parse().unwrap(), tls);
    let url = format!("https://{addr}");
    let pin = CertPin::parse(&fingerprint).unwrap();

    // The lead claims over HTTPS by the pin, and its invite carries it.
    let t = BlockingTransport::new().unwrap();
    let mut lead = device(dir.path(), "lead");
    t.claim_pinned(&mut lead, &url, created.lead_token.expose(), Some(pin))
        .expect("claim over pinned TLS");
    lead.set_lead_reads_cases(true).unwrap();
    let case = lead
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::High,
        })
        .unwrap();
    lead.sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("lead syncs over pinned TLS");
    let (code, _) = BlockingTransport::new()
        .unwrap()
        .invite_card(&mut lead, Role::Supervisor, Duration::from_secs(3600))
        .expect("invite");
    let invite = Invite::decode(&code).unwrap();
    assert_eq!(invite.pin.as_deref(), Some(fingerprint.as_str()));

    // A device with the code enrolls and syncs, pinned.
    let mut sup = device(dir.path(), "supervisor");
    BlockingTransport::new()
        .unwrap()
        .join(&mut sup, &code)
        .expect("join over pinned TLS");
    let entry = sup.relays().unwrap().remove(0);
    assert!(entry.team_relay);
    assert_eq!(entry.pin.as_deref(), Some(fingerprint.as_str()));
    let r = sup
        .sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("supervisor syncs");
    assert!(r.pulled > 0);
    // The lead folds the newcomer into the roster and grants it the case.
    lead.sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("lead syncs");
    sup.sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("supervisor syncs again");
    assert_eq!(sup.case(&case).unwrap().alias, "小雨");

    // An imposter with another certificate at another address: a code that
    // sends a device there with the real pin is refused with what to do, and
    // nothing (no request, no invite token) reached it.
    let other = tempfile::tempdir().unwrap();
    let fake = imposter(Tls::self_signed(&other.path().join("fake.db")).unwrap());
    let mut forged = Invite::decode(&code).unwrap();
    forged.relay = fake.url.clone();
    let mut victim = device(dir.path(), "victim");
    let err = BlockingTransport::new()
        .unwrap()
        .join(&mut victim, &forged.encode())
        .expect_err("an imposter's certificate is refused");
    assert_eq!(err.kind(), "relay", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("not the one in your invite code") && text.contains("team lead"),
        "{text}"
    );
    assert!(!text.contains(forged.token.expose()));
    // The imposter saw the handshake fail (its side ends a moment later).
    wait_for(|| *fake.failed_handshakes.lock().unwrap() >= 1);
    assert!(fake.received.lock().unwrap().is_empty());

    // An entry pointing at the imposter with the relay's pin, measured the
    // fastest: the sync tries it first, is refused, and does not fall over
    // to the real relay (a refusal is not a network failure); still nothing
    // reached it.
    sup.add_relay(&fake.url, Some(&fingerprint), RelayKind::Central, false)
        .unwrap();
    sup.record_relay_ok(&fake.url, 1).unwrap();
    sup.record_relay_ok(&url, 50).unwrap();
    assert_eq!(sup.relay_order().unwrap()[0].url, fake.url);
    let err = sup
        .sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect_err("a pin mismatch stops the sync");
    assert!(err.to_string().contains("fingerprint"), "{err}");
    assert!(fake.received.lock().unwrap().is_empty());
    let received = fake.received.lock().unwrap().clone();
    let token_seen = received
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"bearer"));
    assert!(!token_seen);
    sup.remove_relay(&fake.url).unwrap();

    // Restart: the same certificate, so the same pin, from the same files.
    drop(relay);
    let again = Tls::self_signed(&db).unwrap();
    assert_eq!(again.fingerprint(), fingerprint);
    let (_relay, _) = start(&db, addr, again);
    lead.new_case(&NewCase {
        alias: "阿明".into(),
        group: Group::Migrant,
        risk: Risk::Low,
    })
    .unwrap();
    lead.sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("lead syncs after the restart");
    let r = sup
        .sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("supervisor syncs after the restart");
    assert!(r.pulled > 0);
}

#[test]
fn a_relay_with_a_real_certificate_from_files_is_reached_by_its_pin() {
    // A small authority and a leaf it signed for 127.0.0.1, as an operator
    // would have them from a CA.
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test authority");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cert_path: PathBuf = dir.path().join("chain.pem");
    let key_path: PathBuf = dir.path().join("key.pem");
    std::fs::write(&cert_path, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();

    let tls = Tls::from_files(&cert_path, &key_path).expect("certificate from files");
    // The pin is the leaf's, not the authority's.
    assert_eq!(tls.pin(), CertPin::of_der(leaf.der()));
    let db = dir.path().join("relay.db");
    let created = heartbridge_relay::create_team(&db, "central").unwrap();
    let (_relay, addr) = start(&db, "127.0.0.1:0".parse().unwrap(), tls);
    let url = format!("https://{addr}");

    // Without a pin the authority is not among the web's roots: refused.
    let mut stranger = device(dir.path(), "stranger");
    let err = BlockingTransport::new()
        .unwrap()
        .claim(&mut stranger, &url, created.lead_token.expose())
        .expect_err("an unknown authority is not trusted");
    assert_eq!(err.kind(), "network", "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");

    // With the leaf's pin it works: claim, sync.
    let mut lead = device(dir.path(), "lead");
    BlockingTransport::new()
        .unwrap()
        .claim_pinned(
            &mut lead,
            &url,
            created.lead_token.expose(),
            Some(CertPin::of_der(leaf.der())),
        )
        .expect("claim by the leaf's pin");
    lead.new_case(&NewCase {
        alias: "小林".into(),
        group: Group::LeftBehind,
        risk: Risk::Medium,
    })
    .unwrap();
    let r = lead
        .sync(&mut BlockingTransport::new().unwrap(), &opts(), &mut |_| {})
        .expect("sync over the real certificate");
    assert!(r.pushed > 0);
}

#[test]
fn plain_http_off_loopback_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = device(dir.path(), "d");
    // 192.0.2.1 (TEST-NET-1) is never reached: the refusal comes first.
    let err = BlockingTransport::new()
        .unwrap()
        .claim(
            &mut d,
            "http://192.0.2.1:7070",
            "00112233445566778899aabbccddeeff.x",
        )
        .expect_err("plain http off loopback");
    assert_eq!(err.kind(), "relay", "{err}");
    assert!(err.to_string().contains("https://"), "{err}");
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed_after_the_header_timeout() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let config = Config {
        tls: Some(Tls::self_signed(&db).unwrap()),
        header_timeout: Duration::from_secs(1),
        ..Config::new(&db)
    };
    let (relay, addr) = start_with(config, "127.0.0.1:0".parse().unwrap());
    // Connects and sends no ClientHello: the relay hangs up on its own
    // (end of stream or a reset), well before this read's own 20 s.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the relay sent {n} bytes to a client that said nothing"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "the connection was not closed: {e}"
        ),
    }
    // A graceful shutdown completes with such a client connected too.
    let _stalled = std::net::TcpStream::connect(addr).unwrap();
    drop(relay);
}
