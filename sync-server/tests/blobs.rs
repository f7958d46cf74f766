//! Lesson chunks at the relay (issue 10 item 7): `PUT`/`GET /v1/blobs/{id}`
//! and `POST /v1/blobs/have`, as a device and an operator would check them:
//! a chunk is stored once under the hash of its bytes, a wrong hash or an
//! oversized chunk is refused and stores nothing, a cut download resumes by
//! `Range`, a team never reads another team's chunks, and a request without
//! a device is refused.

mod common;

use common::{count_rows, Team, TestRelay};
use heartbridge_proto::lesson::{chunk_id, BlobHaveRequest, BlobHaveResponse, MAX_SEALED_CHUNK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OCTETS: &str = "application/octet-stream";

fn chunk(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[tokio::test]
async fn a_chunk_is_stored_once_under_its_hash_and_read_back_whole_or_from_an_offset() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "t");
    let lead = team.claim(&c, "lead").await;
    let bytes = chunk(300_000, 1);
    let id = chunk_id(&bytes);
    let path = format!("/v1/blobs/{id}");

    let a = c
        .send("PUT", &path, Some(&lead.token), Some(OCTETS), bytes.clone())
        .await;
    assert_eq!(a.status, 201);
    let again = c
        .send("PUT", &path, Some(&lead.token), Some(OCTETS), bytes.clone())
        .await;
    assert_eq!(again.status, 200, "a known chunk is kept as it is");
    assert_eq!(count_rows(&relay.db, "blobs"), 1);

    let got = c.get(&path, Some(&lead.token)).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], &bytes[..]);

    // A download cut at 123,456 bytes goes on from there.
    let mut s = c.connect().await;
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: relay.test\r\nauthorization: Bearer {}\r\nrange: bytes=123456-\r\nconnection: close\r\n\r\n",
        lead.token.expose()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(
        head.contains("content-range: bytes 123456-299999/300000"),
        "{head}"
    );
    assert_eq!(&raw[split..], &bytes[123_456..]);

    // Which of these does the team hold?
    let other = chunk_id(b"never stored");
    let have = c
        .post_json(
            "/v1/blobs/have",
            Some(&lead.token),
            &BlobHaveRequest {
                ids: vec![other.clone(), id.clone()],
            },
        )
        .await;
    assert_eq!(have.status, 200);
    assert_eq!(have.json::<BlobHaveResponse>().have, vec![false, true]);
    c.get(&format!("/v1/blobs/{other}"), Some(&lead.token))
        .await
        .error(404, "not_found");
    relay.stop().await;
}

#[tokio::test]
async fn a_chunk_whose_bytes_do_not_match_its_name_or_too_large_stores_nothing() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "t");
    let lead = team.claim(&c, "lead").await;
    let bytes = chunk(10_000, 2);
    let mut altered = bytes.clone();
    altered[5] ^= 1;
    c.send(
        "PUT",
        &format!("/v1/blobs/{}", chunk_id(&bytes)),
        Some(&lead.token),
        Some(OCTETS),
        altered,
    )
    .await
    .error(400, "malformed");
    c.send(
        "PUT",
        "/v1/blobs/not-a-hash",
        Some(&lead.token),
        Some(OCTETS),
        bytes.clone(),
    )
    .await
    .error(400, "malformed");
    let big = chunk(MAX_SEALED_CHUNK + 1, 3);
    c.send(
        "PUT",
        &format!("/v1/blobs/{}", chunk_id(&big)),
        Some(&lead.token),
        Some(OCTETS),
        big,
    )
    .await
    .error(413, "too_large");
    assert_eq!(count_rows(&relay.db, "blobs"), 0);
    relay.stop().await;
}

#[tokio::test]
async fn a_team_never_reads_another_teams_chunks_and_a_request_needs_a_device() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (t1, t2) = (Team::create(&relay, "one"), Team::create(&relay, "two"));
    let (a, b) = (t1.claim(&c, "a").await, t2.claim(&c, "b").await);
    let bytes = chunk(5_000, 4);
    let path = format!("/v1/blobs/{}", chunk_id(&bytes));
    let put = c
        .send("PUT", &path, Some(&a.token), Some(OCTETS), bytes.clone())
        .await;
    assert_eq!(put.status, 201);
    c.get(&path, Some(&b.token)).await.error(404, "not_found");
    c.get(&path, None).await.error(401, "unknown_token");
    c.send("PUT", &path, None, Some(OCTETS), bytes)
        .await
        .error(401, "unknown_token");
    relay.stop().await;
}

#[tokio::test]
async fn a_team_past_its_quota_of_chunk_bytes_is_refused_and_nothing_is_stored() {
    let relay = TestRelay::start_with(|c| c.blob_quota_bytes = 25_000).await;
    let c = relay.client();
    let team = Team::create(&relay, "t");
    let lead = team.claim(&c, "lead").await;
    for seed in 0..2 {
        let bytes = chunk(10_000, 10 + seed);
        let a = c
            .send(
                "PUT",
                &format!("/v1/blobs/{}", chunk_id(&bytes)),
                Some(&lead.token),
                Some(OCTETS),
                bytes,
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let third = chunk(10_000, 12);
    let e = c
        .send(
            "PUT",
            &format!("/v1/blobs/{}", chunk_id(&third)),
            Some(&lead.token),
            Some(OCTETS),
            third,
        )
        .await
        .error(507, "quota");
    assert!(e.message.contains("25000"), "{}", e.message);
    assert_eq!(count_rows(&relay.db, "blobs"), 2);
    // A chunk the team holds is still answered (no new bytes).
    let known = chunk(10_000, 10);
    let a = c
        .send(
            "PUT",
            &format!("/v1/blobs/{}", chunk_id(&known)),
            Some(&lead.token),
            Some(OCTETS),
            known,
        )
        .await;
    assert_eq!(a.status, 200);
    relay.stop().await;
}
