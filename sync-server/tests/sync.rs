//! `/v1/sync` against a real relay: push, deduplication, pull pages,
//! compaction, refusals.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{doc, team_with_volunteers, TestRelay};
use heartbridge_proto::{encode, ContentId, Envelope};

fn request(push: Vec<Envelope>) -> heartbridge_proto::SyncRequest {
    common::request(0, push, 0)
}

#[tokio::test]
async fn push_is_deduplicated_by_content_id() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 2).await;
    let d = doc();
    let env = team.change(&vols[0], d, "个案笔记 1".as_bytes());

    let first = c.sync(&vols[0].token, 0, vec![env.clone()], 0).await;
    assert_eq!(first.acked.len(), 1);
    assert_eq!(first.acked[0].id, env.id);
    let seq = first.acked[0].seq;
    assert!(seq > 0);

    // The same envelope again (a retried push), twice in one request, and
    // the same content sealed again (new nonce, same content id), also by
    // another device of the team (signed by it): one row, one seq.
    let resealed = team.change(&vols[0], d, "个案笔记 1".as_bytes());
    assert_eq!(resealed.id, env.id);
    assert_ne!(resealed.nonce, env.nonce);
    let again = c
        .sync(
            &vols[0].token,
            0,
            vec![env.clone(), env.clone(), resealed.clone()],
            0,
        )
        .await;
    assert_eq!(
        again.acked.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![seq, seq, seq]
    );
    let by_other = team.change(&vols[1], d, "个案笔记 1".as_bytes());
    assert_eq!(by_other.id, env.id);
    let other = c.sync(&vols[1].token, 0, vec![by_other], 0).await;
    assert_eq!(other.acked[0].seq, seq);
    assert_eq!(relay.stored_envelopes(), 1);

    // Another team's envelope with the same content id is its own.
    let (other_team, _, other_vols) = team_with_volunteers(&relay, 1).await;
    let mut foreign = other_team.seal_change(d, b"other");
    foreign.id = env.id;
    let foreign = other_vols[0].sign(&other_team, foreign);
    let r = c.sync(&other_vols[0].token, 0, vec![foreign], 0).await;
    assert_ne!(r.acked[0].seq, seq);
    assert_eq!(relay.stored_envelopes(), 2);
}

#[tokio::test]
async fn pull_excludes_own_envelopes_pages_by_bytes_and_resumes_exactly_once() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let (a, b) = (&vols[0], &vols[1]);

    // A pushes 12 envelopes of ~1000 bytes, B 5, in interleaved syncs.
    let mut by_author: BTreeMap<&str, Vec<(u64, ContentId)>> = BTreeMap::new();
    for round in 0..6 {
        let push: Vec<Envelope> = (0..2)
            .map(|_| team.change_of_size(a, doc(), 1000))
            .collect();
        let r = c.sync(&a.token, 0, push.clone(), 0).await;
        by_author
            .entry("a")
            .or_default()
            .extend(r.acked.iter().map(|k| (k.seq, k.id)));
        if round < 5 {
            let r = c
                .sync(&b.token, 0, vec![team.change_of_size(b, doc(), 1000)], 0)
                .await;
            by_author
                .entry("b")
                .or_default()
                .extend(r.acked.iter().map(|k| (k.seq, k.id)));
        }
    }
    let max_seq = by_author
        .values()
        .flatten()
        .map(|(s, _)| *s)
        .max()
        .expect("pushed");

    // B pulls A's envelopes only, 2 per page at a 3,000-byte limit (each
    // costs its ciphertext, ids, author and signature; the first page also
    // carries the 3 members).
    let (pages, cursor) = c.pull_all(&b.token, 0, 3000).await;
    let got: Vec<(u64, ContentId)> = pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| (e.seq, e.envelope.id)))
        .collect();
    assert_eq!(
        got, by_author["a"],
        "every envelope of A, in order, exactly once"
    );
    for p in &pages[..pages.len() - 1] {
        assert!(p.more);
        assert_eq!(p.pull.len(), 2);
        let bytes: usize = p.pull.iter().map(|e| e.envelope.ciphertext.len()).sum();
        assert!(bytes <= 3000);
    }
    assert!(!pages.last().expect("a page").more);
    assert_eq!(cursor, by_author["a"].last().expect("a").0);
    for p in &pages {
        for e in &p.pull {
            e.envelope
                .open(&team.key, &team.id)
                .expect("opens with the team key");
        }
    }

    // A's pull holds B's envelopes only; resuming from any cursor gives the
    // rest exactly once.
    let first = c.sync(&a.token, 0, vec![], 1500).await;
    assert_eq!(first.pull.len(), 1);
    assert!(first.more);
    let (rest, _) = c.pull_all(&a.token, first.cursor, 1500).await;
    let got: Vec<(u64, ContentId)> = std::iter::once(&first)
        .chain(rest.iter())
        .flat_map(|p| p.pull.iter().map(|e| (e.seq, e.envelope.id)))
        .collect();
    assert_eq!(got, by_author["b"]);

    // A limit smaller than one envelope still returns one envelope a page.
    let tiny = c.sync(&lead.token, 0, vec![], 10).await;
    assert_eq!(tiny.pull.len(), 1);
    assert!(tiny.more);
    let (all, cursor) = c.pull_all(&lead.token, 0, 0).await;
    let total: usize = all.iter().map(|p| p.pull.len()).sum();
    assert_eq!(total, 17);
    assert_eq!(cursor, max_seq);

    // Nothing new: no envelopes, more false, the cursor skips to the end of
    // the log (over A's own trailing envelopes) and never goes back.
    let (_, a_cursor) = c.pull_all(&a.token, 0, 0).await;
    assert_eq!(a_cursor, by_author["b"].last().expect("b").0);
    assert!(a_cursor < max_seq, "A pushed last");
    let idle = c.sync(&a.token, a_cursor, vec![], 0).await;
    assert!(idle.pull.is_empty());
    assert!(!idle.more);
    assert_eq!(idle.cursor, max_seq);
    let ahead = c.sync(&a.token, max_seq + 100, vec![], 0).await;
    assert_eq!(ahead.cursor, max_seq + 100);
}

#[tokio::test]
async fn a_device_alone_skips_its_own_envelopes() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let push: Vec<Envelope> = (0..3)
        .map(|i| team.change(&lead, doc(), format!("n{i}").as_bytes()))
        .collect();
    let r = c.sync(&lead.token, 0, push, 0).await;
    assert!(r.pull.is_empty());
    assert!(!r.more);
    assert_eq!(
        r.cursor,
        r.acked.iter().map(|a| a.seq).max().expect("acked")
    );
}

#[tokio::test]
async fn a_snapshot_drops_older_envelopes_of_its_document_only() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    // Only a lead or supervisor may compact.
    let writer = &team
        .add(&c, &lead, heartbridge_proto::Role::Supervisor, "Supervisor")
        .await;
    let reader = &vols[0];
    let (x, y) = (doc(), doc());

    let xs = c
        .sync(
            &writer.token,
            0,
            (0..3)
                .map(|i| team.change(writer, x, format!("x{i}").as_bytes()))
                .collect(),
            0,
        )
        .await
        .acked;
    let ys = c
        .sync(&writer.token, 0, vec![team.change(writer, y, b"y0")], 0)
        .await
        .acked;
    let x_late = c
        .sync(
            &reader.token,
            0,
            vec![team.change(reader, x, b"x3 from the reader")],
            0,
        )
        .await
        .acked;

    // A snapshot of x covering its first three changes.
    let covers = xs[2].seq;
    let snap = team.snapshot(writer, x, b"x0 x1 x2", covers);
    let snap_seq = c.sync(&writer.token, 0, vec![snap.clone()], 0).await.acked[0].seq;
    assert_eq!(
        relay.stored_envelopes(),
        3,
        "y0, x3 and the snapshot remain"
    );
    assert_eq!(relay.superseded_envelopes(), 3, "kept for the grace");

    let (pages, _) = c.pull_all(&reader.token, 0, 0).await;
    let seqs: BTreeSet<u64> = pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| e.seq))
        .collect();
    assert_eq!(seqs, BTreeSet::from([ys[0].seq, snap_seq]));
    let pulled_snap = pages
        .iter()
        .flat_map(|p| p.pull.iter())
        .find(|e| e.seq == snap_seq)
        .expect("snapshot pulled");
    assert_eq!(pulled_snap.envelope, snap);
    let (pages, _) = c.pull_all(&writer.token, 0, 0).await;
    let seqs: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| e.seq))
        .collect();
    assert_eq!(seqs, vec![x_late[0].seq]);

    // A snapshot never drops itself or anything stored after it, even with
    // a covers past the end of the log; pushing it again changes nothing.
    let snap2 = team.snapshot(writer, y, b"y all", u64::MAX);
    let r = c.sync(&writer.token, 0, vec![snap2.clone()], 0).await;
    let snap2_seq = r.acked[0].seq;
    let again = c.sync(&writer.token, 0, vec![snap2], 0).await;
    assert_eq!(again.acked[0].seq, snap2_seq);
    assert_eq!(relay.stored_envelopes(), 3, "x3, both snapshots");
}

#[tokio::test]
async fn a_bad_push_is_refused_whole() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
    let token = &vols[0].token;
    let good = team.change(&vols[0], doc(), b"fine");

    let mut empty = team.seal_change(doc(), b"will be emptied");
    empty.ciphertext.clear();
    let empty = vols[0].sign(&team, empty);
    let mut future = team.seal_change(doc(), b"sealed under a future key");
    future.epoch = 2;
    let future = vols[0].sign(&team, future);
    for bad in [empty, future] {
        let body = encode(&request(vec![good.clone(), bad]));
        c.sync_raw(token, body).await.error(400, "malformed");
    }
    // Undecodable bodies, truncated ones, and nothing at all.
    let whole = encode(&request(vec![good.clone()]));
    for body in [
        b"garbage!".to_vec(),
        whole[..whole.len() - 10].to_vec(),
        Vec::new(),
    ] {
        c.sync_raw(token, body).await.error(400, "malformed");
    }
    assert_eq!(relay.stored_envelopes(), 0);
    // A version this relay does not speak.
    let mut req = request(vec![good.clone()]);
    req.v = 3;
    c.sync_raw(token, encode(&req)).await.error(400, "version");
    // Whatever another version's body looks like after its first byte: a
    // later one, or the last (v1) client.
    for v in [1, 3] {
        c.sync_raw(token, vec![v, 0xff, 0xff])
            .await
            .error(400, "version");
    }
    assert_eq!(relay.stored_envelopes(), 0);
    c.sync(token, 0, vec![good], 0).await;
    assert_eq!(relay.stored_envelopes(), 1);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_changes_nothing() {
    let relay = TestRelay::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
    let push: Vec<Envelope> = (0..5)
        .map(|_| team.change_of_size(&vols[0], doc(), 20_000))
        .collect();
    let body = encode(&request(push.clone()));
    assert!(body.len() > 64 * 1024);
    c.sync_raw(&vols[0].token, body)
        .await
        .error(413, "too_large");
    assert_eq!(relay.stored_envelopes(), 0);
    // Fewer per sync go through.
    c.sync(&vols[0].token, 0, push[..2].to_vec(), 0).await;
    assert_eq!(relay.stored_envelopes(), 2);
}

#[tokio::test]
async fn the_relay_page_limit_caps_what_a_device_asks() {
    let relay = TestRelay::start_with(|c| c.page_bytes = 3000).await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let push: Vec<Envelope> = (0..6)
        .map(|_| team.change_of_size(&vols[0], doc(), 1000))
        .collect();
    c.sync(&vols[0].token, 0, push, 0).await;
    let page = c.sync(&lead.token, 0, vec![], 0).await;
    assert_eq!(page.pull.len(), 2);
    let page = c.sync(&lead.token, 0, vec![], u32::MAX).await;
    assert_eq!(page.pull.len(), 2);
    let page = c.sync(&lead.token, 0, vec![], 1200).await;
    assert_eq!(page.pull.len(), 1);
}

#[tokio::test]
async fn concurrent_pushes_are_all_stored_once_with_distinct_seqs() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let mut teams = Vec::new();
    for _ in 0..3 {
        teams.push(team_with_volunteers(&relay, 8).await);
    }
    let mut tasks = Vec::new();
    for (team, _, vols) in &teams {
        for v in vols {
            let push: Vec<Envelope> = (0..20)
                .map(|_| team.change_of_size(v, doc(), 2000))
                .collect();
            let token = v.token.clone();
            tasks.push(tokio::spawn(async move {
                let r = c.sync(&token, 0, push.clone(), 0).await;
                assert_eq!(
                    r.acked.iter().map(|a| a.id).collect::<Vec<_>>(),
                    push.iter().map(|e| e.id).collect::<Vec<_>>()
                );
                r.acked
            }));
        }
    }
    let mut seqs = BTreeSet::new();
    for t in tasks {
        for ack in common::within("a push", t).await.expect("push task") {
            assert!(seqs.insert(ack.seq), "seq {} acked twice", ack.seq);
        }
    }
    assert_eq!(seqs.len(), 3 * 8 * 20);
    assert_eq!(relay.stored_envelopes(), 3 * 8 * 20);
    // Each lead pulls exactly its own team's 160 envelopes.
    for (_, lead, _) in &teams {
        let (pages, _) = c.pull_all(&lead.token, 0, 0).await;
        assert_eq!(pages.iter().map(|p| p.pull.len()).sum::<usize>(), 8 * 20);
    }
}

#[tokio::test]
async fn a_push_over_the_envelope_cap_is_refused_whole() {
    let relay = TestRelay::start_with(|c| c.max_push_envelopes = 10).await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
    let push: Vec<Envelope> = (0..11)
        .map(|i| team.change(&vols[0], doc(), format!("n{i}").as_bytes()))
        .collect();
    let e = c
        .sync_raw(&vols[0].token, encode(&request(push.clone())))
        .await
        .error(413, "too_many_envelopes");
    assert!(e.message.contains("10"), "{}", e.message);
    assert_eq!(relay.stored_envelopes(), 0, "nothing of it was stored");
    let r = c.sync(&vols[0].token, 0, push[..10].to_vec(), 0).await;
    assert_eq!(r.acked.len(), 10);
    assert_eq!(relay.stored_envelopes(), 10);
}

#[tokio::test]
async fn a_page_of_many_tiny_envelopes_stays_within_the_bytes_asked() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    // 300 envelopes of a few bytes of ciphertext each: framing outweighs them.
    let push: Vec<Envelope> = (0..300)
        .map(|i| team.change(&vols[0], doc(), format!("{i}").as_bytes()))
        .collect();
    let tiny = push[0].ciphertext.len();
    assert!(tiny < 64, "ciphertext of {tiny} bytes");
    c.sync(&vols[0].token, 0, push, 0).await;

    const MAX: usize = 4000;
    let mut cursor = 0;
    let mut pulled = 0;
    let mut pages = 0;
    loop {
        // Members asked from 0 too: they count against the bound.
        let body = encode(&common::request(cursor, vec![], MAX as u32));
        let a = c.sync_raw(&lead.token, body).await;
        assert_eq!(a.status, 200);
        assert!(
            a.body.len() <= MAX,
            "a response of {} bytes for a page of at most {MAX}",
            a.body.len()
        );
        let page: heartbridge_proto::SyncResponse =
            heartbridge_proto::decode("sync response", &a.body).expect("decodes");
        pulled += page.pull.len();
        pages += 1;
        cursor = page.cursor;
        if !page.more {
            break;
        }
        // Not one envelope per page either: the bound is used.
        assert!(page.pull.len() > 10, "{} envelopes", page.pull.len());
        assert!(pages < 300, "paging does not end");
    }
    assert_eq!(pulled, 300);
    assert!(pages > 1);

    // A single envelope larger than the bound still comes, alone.
    let big = team.change_of_size(&vols[0], doc(), 3 * MAX);
    c.sync(&vols[0].token, 0, vec![big.clone()], 0).await;
    let page = c.sync(&lead.token, cursor, vec![], MAX as u32).await;
    assert_eq!(page.pull.len(), 1);
    assert_eq!(page.pull[0].envelope, big);
}
