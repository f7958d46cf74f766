//! Review F10: the device's bearer token goes only to the team's own relay.
//! A venue relay added as `central` with its pin (the volunteer forgot
//! `--venue`) gets the device's signature, never the token. The "relay"
//! here is a plain loopback listener that records what it is sent.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use heartbridge_client::BlockingTransport;
use heartbridge_core::{RelayKind, SyncOptions};
use heartbridge_tests::{team, Relay};

/// Answers every request with 503 and keeps its header block.
fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            keep.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, seen)
}

#[test]
fn a_venue_relay_added_as_central_never_gets_the_token() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["lead", "sup"]);
    let sup = &mut devs[1].store;
    let (fake, seen) = recorder();
    let pin = heartbridge_core::proto::CertPin::of_der(b"venue").to_string();
    // Plain http on loopback, so the pin is not checked here: what matters
    // is which credential the device shows it.
    sup.add_relay(&fake, Some(&pin), RelayKind::Central, false)
        .expect("entry");
    sup.record_relay_ok(&fake, 1).expect("fastest");
    sup.record_relay_ok(&relay.url, 50).expect("slower");
    let token = sup.team().expect("team").expect("team").token;
    let mut transport = BlockingTransport::new().expect("transport");
    let (device, secret) = sup.request_signer().expect("signer");
    transport.http().set_signer(&device, secret);
    let _ = sup.sync(&mut transport, &SyncOptions::default(), &mut |_| {});
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the entry was not tried");
    for head in &seen {
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("bearer"), "a bearer token was sent");
        assert!(!head.contains(token.expose()), "the token was sent");
        assert!(head.contains("HB-Sig "), "not signed");
    }
}
