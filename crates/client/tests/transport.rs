//! The HTTP transport against a real relay on loopback, through the link
//! emulator when the link must be bad: cut answers, stalls past the
//! deadline, connection reuse, the response size limit, and enrollments
//! whose answer is lost.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use heartbridge_client::{BlockingTransport, HttpTransport};
use heartbridge_core::proto::{encode, Role, SyncRequest, PROTOCOL_VERSION};
use heartbridge_core::{Channel, Group, NewCase, Risk, Team, Transport, TransportError};
use heartbridge_tests::{team, Device, Relay};
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset, Stall};

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("loopback address")
}

fn pull_all() -> Vec<u8> {
    encode(&SyncRequest {
        v: PROTOCOL_VERSION,
        cursor: 0,
        push: vec![],
        max_bytes: 0,
        members_since: 0,
        roster_version: 0,
        roster: None,
    })
}

fn via(team: &Team, link: &BackgroundLink) -> Team {
    let mut t = team.clone();
    t.relay_url = link.url();
    t
}

fn describe(r: &Result<Vec<u8>, TransportError>) -> String {
    match r {
        Ok(b) => format!("an answer of {} bytes", b.len()),
        Err(TransportError::Network(d)) => format!("Network({d})"),
        Err(TransportError::Cut { detail, received }) => {
            format!("Cut({detail}, {} bytes)", received.len())
        }
        Err(TransportError::Relay { status, kind, .. }) => format!("Relay({status} {kind})"),
    }
}

fn network_detail(r: Result<Vec<u8>, TransportError>) -> String {
    match r {
        Err(TransportError::Network(detail)) => detail,
        other => panic!("expected a network error, got {}", describe(&other)),
    }
}

/// A relay with a lead and a volunteer, and enough on the relay that the
/// volunteer's first pull is a large answer.
fn busy_team(relay: &Relay) -> Vec<Device> {
    let mut devs = team(relay, &["lead", "vol"]);
    let id = devs[0]
        .store
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Migrant,
            risk: Risk::Low,
        })
        .expect("case");
    // Varied text, so that compression does not shrink it away.
    let mut x: u32 = 1;
    for _ in 0..40 {
        let text: String = (0..400)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from_u32(0x4E00 + (x >> 16) % 20_000).unwrap_or('字')
            })
            .collect();
        devs[0]
            .store
            .add_contact(&id, Channel::Hotline, &text, None)
            .expect("contact");
    }
    devs[0].sync();
    devs
}

fn cut_at(relay: &Relay, at: u64, end: End) -> BackgroundLink {
    BackgroundLink::loopback(
        addr_of(&relay.url),
        Config {
            cut: Some(Cut {
                counted: Direction::Down,
                at: Offset::At(at),
                end,
            }),
            ..Config::default()
        },
    )
    .expect("link")
}

#[test]
fn an_answer_cut_mid_response_fails_every_time_and_keeps_what_arrived() {
    let relay = Relay::start();
    let devs = busy_team(&relay);
    let vol = devs[1].store.team().expect("team").expect("enrolled");

    // The whole answer through a clean link, to know its size.
    let clean = BackgroundLink::loopback(addr_of(&relay.url), Config::default()).expect("link");
    let answer = BlockingTransport::default()
        .sync(&via(&vol, &clean), pull_all())
        .expect("clean pull");
    let whole = clean.stats().bytes_down;
    assert!(answer.len() > 20_000, "answer of {} bytes", answer.len());

    for (end, word) in [
        (End::Close, "connection closed"),
        (End::Reset, "connection reset"),
    ] {
        // Cut in the status line: nothing of the answer came, a network
        // error (the engine shrinks its requests after it).
        let link = cut_at(&relay, 10, end);
        let mut t = BlockingTransport::default();
        for _ in 0..2 {
            assert_eq!(network_detail(t.sync(&via(&vol, &link), pull_all())), word);
        }
        assert_eq!(link.stats().cut, 2);

        // Cut in the middle of the body: the same failure, carrying the
        // part of the answer that arrived.
        let link = cut_at(&relay, whole / 2, end);
        let mut t = BlockingTransport::default();
        for _ in 0..2 {
            match t.sync(&via(&vol, &link), pull_all()) {
                Err(TransportError::Cut { detail, received }) => {
                    assert_eq!(detail, word);
                    assert!(!received.is_empty() && received.len() < answer.len());
                    assert_eq!(received[..], answer[..received.len()], "not a prefix");
                }
                other => panic!("expected a cut answer, got {}", describe(&other)),
            }
        }
        let s = link.stats();
        assert_eq!(s.cut, 2, "{s:?}");
        assert_eq!(s.bytes_down, 2 * (whole / 2), "half an answer each time");
    }
}

#[test]
fn an_answer_stalled_past_the_deadline_times_out_as_a_network_error() {
    let relay = Relay::start();
    let devs = busy_team(&relay);
    let vol = devs[1].store.team().expect("team").expect("enrolled");
    // The answer starts, then stops for far longer than the deadline.
    let link = BackgroundLink::loopback(
        addr_of(&relay.url),
        Config {
            stall: Some(Stall {
                counted: Direction::Down,
                at: Offset::At(100),
                duration: Duration::from_secs(600),
            }),
            ..Config::default()
        },
    )
    .expect("link");
    let mut t = BlockingTransport::default().with_deadline(Duration::from_millis(500));
    assert_eq!(
        network_detail(t.sync(&via(&vol, &link), pull_all())),
        "timed out"
    );
}

#[test]
fn one_connection_carries_many_requests() {
    let relay = Relay::start();
    let devs = team(&relay, &["lead"]);
    let lead = devs[0].store.team().expect("team").expect("enrolled");
    let link = BackgroundLink::loopback(addr_of(&relay.url), Config::default()).expect("link");
    let mut t = BlockingTransport::default();
    for _ in 0..5 {
        t.sync(&via(&lead, &link), pull_all()).expect("sync");
    }
    assert_eq!(link.stats().connections, 1);
}

/// A server that answers every request with `head` and then `body_bytes`
/// of chunked body, and reports how many bytes it managed to write.
fn endless_server(
    head: &'static str,
    body_bytes: usize,
) -> (String, std::sync::mpsc::Receiver<usize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            // The request's head, then the answer, whatever was asked.
            let mut seen = Vec::new();
            let mut b = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&b[..n]),
                }
            }
            let mut written = 0;
            if s.write_all(head.as_bytes()).is_ok() {
                let chunk = vec![7u8; 64 * 1024];
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                while written < body_bytes && s.write_all(&framed).is_ok() {
                    written += chunk.len();
                }
            }
            let _ = tx.send(written);
        }
    });
    (url, rx)
}

#[test]
fn a_response_past_the_limit_is_refused_while_it_streams() {
    let (url, written) = endless_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        256 * 1024 * 1024,
    );
    let relay = Relay::start();
    let devs = team(&relay, &["lead"]);
    let mut lead = devs[0].store.team().expect("team").expect("enrolled");
    lead.relay_url = url;
    let mut t = BlockingTransport::default().with_max_response(1024 * 1024);
    assert_eq!(
        network_detail(t.sync(&lead, pull_all())),
        "response too large"
    );
    // The abandoned connection closes with the transport's runtime.
    drop(t);
    let sent = written
        .recv_timeout(Duration::from_secs(60))
        .expect("server");
    assert!(
        sent < 64 * 1024 * 1024,
        "the client read {sent} bytes of an answer limited to 1 MiB"
    );

    // An answer that announces its excess is refused before its body.
    let (url, _) = endless_server("HTTP/1.1 200 OK\r\ncontent-length: 100000000000\r\n\r\n", 0);
    lead.relay_url = url;
    assert_eq!(
        network_detail(BlockingTransport::default().sync(&lead, pull_all())),
        "response too large"
    );
}

#[test]
fn unreachable_relays_are_named_in_a_few_words() {
    let relay = Relay::start();
    let devs = team(&relay, &["lead"]);
    let mut lead = devs[0].store.team().expect("team").expect("enrolled");
    let token = lead.token.expose().to_owned();
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    lead.relay_url = format!("http://{}", gone.local_addr().expect("addr"));
    drop(gone);
    let mut t = BlockingTransport::default();
    assert_eq!(
        network_detail(t.sync(&lead, pull_all())),
        "connection refused"
    );
    // `.invalid` never resolves (RFC 6761).
    lead.relay_url = "https://relay.invalid".into();
    let detail = network_detail(t.sync(&lead, pull_all()));
    assert_eq!(detail, "relay host not found");
    lead.relay_url = "relay-without-scheme".into();
    let detail = network_detail(t.sync(&lead, pull_all()));
    assert!(detail.starts_with("relay address not valid"), "{detail}");
    assert!(!detail.contains(&token));
}

#[test]
fn a_join_whose_answer_is_lost_resumes_and_makes_one_device() {
    let relay = Relay::start();
    let created = relay.create_team("t");
    let link = BackgroundLink::loopback(addr_of(&relay.url), Config::default()).expect("link");
    let mut lead = Device::new("林");
    heartbridge_client::claim(&mut lead.store, &link.url(), created.lead_token.expose())
        .expect("claim through the link");
    let code = heartbridge_client::invite(&mut lead.store, Role::Volunteer).expect("invite");

    // The relay enrolls the device, but its answer never arrives.
    link.set_config(Config {
        cut: Some(Cut {
            counted: Direction::Down,
            at: Offset::At(1),
            end: End::Reset,
        }),
        ..Config::default()
    });
    let mut vol = Device::new("小王");
    let err = heartbridge_client::join(&mut vol.store, &code).unwrap_err();
    assert_eq!(err.kind(), "network", "{err}");
    assert!(vol.store.team().expect("team").is_none());
    let pending = vol
        .store
        .pending_enrollment()
        .expect("read")
        .expect("the enrollment waits to be retried");

    // Again, on a good link, the async way the app does it: prepare with
    // the store, send without it, commit with it.
    link.set_config(Config::default());
    let e = heartbridge_client::prepare_join(&mut vol.store, &code).expect("prepare");
    assert_eq!(e.enrollment_id(), pending.enrollment_id);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let team = rt
        .block_on(async { HttpTransport::new()?.enroll(&e).await })
        .expect("the retry is accepted");
    heartbridge_client::commit_enrollment(&mut vol.store, &team).expect("commit");
    assert!(vol.store.pending_enrollment().expect("read").is_none());
    assert_eq!(
        vol.store.team().expect("team").expect("enrolled").device_id,
        team.device_id
    );

    let members = heartbridge_client::members(&lead.store).expect("members");
    let named: Vec<_> = members
        .iter()
        .filter(|m| m.name.as_deref() == Some("小王"))
        .collect();
    assert_eq!(named.len(), 1, "{members:?}");
    assert_eq!(named[0].device_id, team.device_id);
    assert_eq!(members.len(), 2);
    // And the device works.
    vol.sync();
}

#[test]
fn a_claim_whose_answer_is_lost_resumes_with_the_same_team_key() {
    let relay = Relay::start();
    let created = relay.create_team("t");
    let link = BackgroundLink::loopback(
        addr_of(&relay.url),
        Config {
            cut: Some(Cut {
                counted: Direction::Down,
                at: Offset::At(1),
                end: End::Close,
            }),
            ..Config::default()
        },
    )
    .expect("link");
    let mut lead = Device::new("林");
    let token = created.lead_token.expose();
    let err = heartbridge_client::claim(&mut lead.store, &link.url(), token).unwrap_err();
    assert_eq!(err.kind(), "network", "{err}");
    let pending = lead
        .store
        .pending_enrollment()
        .expect("read")
        .expect("pending");
    // Retried straight to the relay (the address may be corrected).
    let team = heartbridge_client::claim(&mut lead.store, &relay.url, token).expect("claim again");
    assert_eq!(team.key, pending.key, "the key the relay checks against");
    assert_eq!(team.relay_url, relay.url);
    let members = heartbridge_client::members(&lead.store).expect("members");
    assert_eq!(members.len(), 1, "{members:?}");
    assert!(members[0].this_device);
    assert_eq!(link.stats().cut, 1);
}
