//! The relay against hostile or broken clients, on loopback: slow headers
//! and bodies, a stalled push, bursts of wrong tokens and enrollments, and
//! requests no endpoint takes. Every error answer is JSON.

mod common;

use std::time::Duration;

use common::{doc, read_head, read_until_closed, team_with_volunteers, within, TestRelay};
use heartbridge_proto::{
    encode, Envelope, ErrorBody, InviteResponse, Role, Secret, TeamKey, SYNC_CONTENT_TYPE,
};
use heartbridge_relay::RateLimits;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_dropped_after_the_header_timeout() {
    let relay = TestRelay::start_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let c = relay.client();

    // Half a request head, then nothing: the relay closes the connection.
    let mut slow = c.connect().await;
    slow.write_all(b"POST /v1/sync HTTP/1.1\r\nHost: relay.test\r\nContent-Le")
        .await
        .expect("write");
    read_until_closed(&mut slow, "the relay to drop slow headers").await;

    // A connection that never sends anything is dropped the same way.
    let mut idle = c.connect().await;
    let got = read_until_closed(&mut idle, "the relay to drop an idle connection").await;
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"));

    // Everyone else is served as before.
    assert_eq!(c.get("/healthz", None).await.status, 200);
    relay.stop().await;
}

/// The head of a push whose body will come in pieces: of `len` bytes, or
/// chunked (no length: the relay counts it at the body cap).
fn push_head(token: &Secret, len: Option<usize>) -> String {
    let framing = match len {
        Some(len) => format!("Content-Length: {len}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "POST /v1/sync HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer {}\r\nContent-Type: {SYNC_CONTENT_TYPE}\r\n{framing}\r\nExpect: 100-continue\r\n\r\n",
        token.expose()
    )
}

/// `data` as one chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn push_body(push: Vec<Envelope>) -> Vec<u8> {
    encode(&common::request(0, push, 0))
}

#[tokio::test]
async fn a_stalled_push_does_not_hold_back_another_devices_push() {
    // The whole admission budget is one body: the stalled push takes all of
    // it. Its body timeout is longer than any wait of this test.
    let relay = TestRelay::start_with(|c| {
        c.max_body_bytes = 256 * 1024;
        c.push_budget_bytes = 256 * 1024;
        c.push_stall = Duration::from_millis(300);
        c.body_timeout = Duration::from_secs(120);
    })
    .await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let (staller, other) = (&vols[0], &vols[1]);

    let stalled_push: Vec<Envelope> = (0..40)
        .map(|_| team.change_of_size(staller, doc(), 5000))
        .collect();
    let body = push_body(stalled_push);
    let mut s = c.connect().await;
    // Chunked: counted at the body cap, the whole budget.
    s.write_all(push_head(&staller.token, None).as_bytes())
        .await
        .expect("write head");
    // 100 Continue: the relay admitted the push and reads its body.
    let mut buf = Vec::new();
    assert_eq!(
        within("100 Continue", read_head(&mut s, &mut buf)).await.0,
        100
    );
    s.write_all(&chunk(&body[..1000]))
        .await
        .expect("write some body");

    // Then the client stalls. Another device's push is admitted and
    // acknowledged all the same.
    let r = c
        .sync(
            &other.token,
            0,
            vec![team.change(other, doc(), b"on time")],
            0,
        )
        .await;
    assert_eq!(r.acked.len(), 1);

    // When the stalled body does arrive, its push is admitted again and
    // stored too.
    let mut rest = chunk(&body[1000..]);
    rest.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&rest).await.expect("write the rest");
    let (status, head) = within("the late push", read_head(&mut s, &mut buf)).await;
    assert_eq!(status, 200, "{head}");
    drop(s);
    let (pages, _) = c.pull_all(&lead.token, 0, 0).await;
    assert_eq!(pages.iter().map(|p| p.pull.len()).sum::<usize>(), 41);
    relay.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_its_connection_closed() {
    let relay = TestRelay::start_with(|c| c.body_timeout = Duration::from_secs(1)).await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
    let body = push_body(vec![team.change(&vols[0], doc(), b"never finished")]);

    let mut s = c.connect().await;
    s.write_all(push_head(&vols[0].token, Some(body.len())).as_bytes())
        .await
        .expect("write head");
    let mut buf = Vec::new();
    assert_eq!(
        within("100 Continue", read_head(&mut s, &mut buf)).await.0,
        100
    );
    s.write_all(&body[..body.len() / 2])
        .await
        .expect("write half");

    // A byte now and then does not help: the body timeout is for the whole
    // body. (Three bytes, all before the timeout: bytes the relay never
    // reads would turn its close into a reset.)
    let mut trickled = 0;
    let answer = within("the 408", async {
        loop {
            tokio::select! {
                got = read_head(&mut s, &mut buf) => break got,
                _ = tokio::time::sleep(Duration::from_millis(200)), if trickled < 3 => {
                    trickled += 1;
                    s.write_all(&[0]).await.expect("trickle a byte");
                }
            }
        }
    })
    .await;
    assert_eq!(answer.0, 408, "{}", answer.1);
    assert!(answer.1.to_ascii_lowercase().contains("connection: close"));
    let rest = read_until_closed(&mut s, "the relay to close the stalled connection").await;
    buf.extend_from_slice(&rest);
    let e: ErrorBody = serde_json::from_slice(&buf).expect("a JSON error body");
    assert_eq!(e.error, "timeout");
    assert_eq!(relay.stored_envelopes(), 0);
    c.sync(&vols[0].token, 0, vec![], 0).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_burst_of_wrong_tokens_is_rate_limited_and_a_good_device_still_syncs() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limits = RateLimits {
            auth_fail_per_ip: 5,
            ..RateLimits::DEFAULT
        }
    })
    .await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;

    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = c.get("/v1/members", Some(&Secret::generate())).await;
        if a.status == 429 {
            let e = a.error(429, "rate_limited");
            assert!(!e.message.is_empty());
            let after: u64 = a
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a Retry-After in seconds");
            assert!((1..=60).contains(&after), "Retry-After {after}");
        } else {
            a.error(401, "unknown_token");
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[11], 429);
    // Requests with no token at all count as failures too.
    c.get("/v1/members", None).await.error(429, "rate_limited");

    // The good device behind the same address is not slowed by them.
    for _ in 0..10 {
        c.sync(
            &vols[0].token,
            0,
            vec![team.change(&vols[0], doc(), b"fine")],
            0,
        )
        .await;
    }
    // Another address is not limited by this one's failures.
    relay
        .client_from([127, 0, 0, 2])
        .get("/v1/members", Some(&Secret::generate()))
        .await
        .error(401, "unknown_token");
    relay.stop().await;
}

#[tokio::test]
async fn one_wrong_token_repeated_is_rate_limited_apart_from_others() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limits = RateLimits {
            auth_fail_per_ip: 0,
            auth_fail_per_token: 3,
            ..RateLimits::DEFAULT
        }
    })
    .await;
    let c = relay.client();
    let dead = Secret::generate();
    for _ in 0..3 {
        c.get("/v1/members", Some(&dead))
            .await
            .error(401, "unknown_token");
    }
    let e = c
        .get("/v1/members", Some(&dead))
        .await
        .error(429, "rate_limited");
    assert!(!e.message.contains(dead.expose()));
    c.get("/v1/members", Some(&Secret::generate()))
        .await
        .error(401, "unknown_token");
    relay.stop().await;
}

#[tokio::test]
async fn enrollment_is_rate_limited_per_address_and_per_token() {
    let relay = TestRelay::start_with(|c| {
        c.rate_limits = RateLimits {
            enroll_per_ip: 5,
            enroll_per_token: 2,
            ..RateLimits::DEFAULT
        }
    })
    .await;
    // Two enrollments of this address's five: the claim and one join.
    let (team, lead, _) = team_with_volunteers(&relay, 1).await;
    let c = relay.client();
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();

    // One invite tried with a mistyped key: twice, then 429 for that token.
    let mistyped = team.enroll_request(&invite.token, &TeamKey::generate(), "Wang");
    for _ in 0..2 {
        c.post_json("/v1/join", None, &mistyped)
            .await
            .error(409, "wrong_key");
    }
    c.post_json("/v1/join", None, &mistyped)
        .await
        .error(429, "rate_limited");
    // The address has used its five enrollments: anything else is 429 too.
    let other: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();
    let req = team.enroll_request(&other.token, &team.key, "Zhao");
    let a = c.post_json("/v1/join", None, &req).await;
    a.error(429, "rate_limited");
    assert!(a.headers.contains_key("retry-after"));

    // From another address the other invite still works; the first one's
    // token stays limited wherever it comes from.
    let elsewhere = relay.client_from([127, 0, 0, 3]);
    assert_eq!(
        elsewhere.post_json("/v1/join", None, &req).await.status,
        200
    );
    let right = team.enroll_request(&invite.token, &team.key, "Wang");
    elsewhere
        .post_json("/v1/join", None, &right)
        .await
        .error(429, "rate_limited");
    assert_eq!(c.members(&lead.token).await.members.len(), 3);
    relay.stop().await;
}

#[tokio::test]
async fn every_error_answer_is_json_with_its_status() {
    let relay = TestRelay::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;

    // No such path; a method the endpoint does not take.
    c.get("/v1/nothing-here", None)
        .await
        .error(404, "not_found");
    let a = c.send("DELETE", "/healthz", None, None, Vec::new()).await;
    a.error(405, "method_not_allowed");
    assert!(a.headers.contains_key("allow"), "{:?}", a.headers);
    c.get("/v1/sync", Some(&lead.token))
        .await
        .error(405, "method_not_allowed");
    c.get("/v1/claim", None)
        .await
        .error(405, "method_not_allowed");

    // Too large: a JSON body over 64 KiB, a sync body over the cap.
    let mut big = team.enroll_request(&team.lead_token, &team.key, "x");
    big.name_sealed = "a".repeat(70 * 1024);
    c.post_json("/v1/join", None, &big)
        .await
        .error(413, "too_large");
    let push: Vec<Envelope> = (0..4)
        .map(|_| team.change_of_size(&lead, doc(), 20_000))
        .collect();
    c.sync_raw(&lead.token, push_body(push))
        .await
        .error(413, "too_large");

    // Malformed JSON, and a body of the wrong content type.
    c.send(
        "POST",
        "/v1/invites",
        Some(&lead.token),
        Some("application/json"),
        b"{\"role\": ".to_vec(),
    )
    .await
    .error(400, "malformed");
    c.send(
        "POST",
        "/v1/invites",
        Some(&lead.token),
        Some("text/plain"),
        br#"{"role":"volunteer","ttl_secs":0}"#.to_vec(),
    )
    .await
    .error(415, "unsupported_media_type");
    c.send(
        "POST",
        "/v1/sync",
        Some(&lead.token),
        Some("application/json"),
        push_body(vec![]),
    )
    .await
    .error(415, "unsupported_media_type");

    // A path the extractor cannot decode.
    c.revoke(&lead.token, "%FF%FE")
        .await
        .error(400, "malformed");
    relay.stop().await;
}
