//! Carried envelopes: a member pushes envelopes another member of its team
//! authored (a bundle it imported, a venue relay forwarding). The relay
//! checks each under its author's registered key and role, refuses a bad
//! one alone (the answer says which and why) and stores the rest; dedup by
//! content id makes carrying what the relay holds a no-op. Real relay on
//! loopback over a SQLite file.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{count_where, doc, team_with_volunteers, TestRelay};
use heartbridge_proto::{ContentId, Envelope, Role, SyncResponse};
use proptest::prelude::*;

fn reasons(answer: &SyncResponse) -> BTreeMap<ContentId, String> {
    answer
        .refused
        .iter()
        .map(|r| (r.id, r.reason.clone()))
        .collect()
}

fn acked(answer: &SyncResponse) -> BTreeMap<ContentId, u64> {
    answer.acked.iter().map(|a| (a.id, a.seq)).collect()
}

/// Rows of the relay's log with this content id.
fn copies(relay: &TestRelay, env: &Envelope) -> i64 {
    count_where(
        &relay.db,
        "envelopes",
        &format!("content_id = x'{}'", env.id.to_hex()),
    )
}

#[tokio::test]
async fn a_carried_envelope_is_stored_once_and_pulled_by_a_third_device() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 3).await;
    let (a, b, third) = (&vols[0], &vols[1], &vols[2]);

    // A wrote a change offline; B carries it out with one of its own.
    let from_a = team.change(a, doc(), b"written on A");
    let from_b = team.change(b, doc(), b"written on B");
    let answer = c
        .sync(&b.token, 0, vec![from_a.clone(), from_b.clone()], 0)
        .await;
    assert!(answer.refused.is_empty(), "refused: {:?}", answer.refused);
    let seqs = acked(&answer);
    assert_eq!(seqs.len(), 2);
    assert_eq!(copies(&relay, &from_a), 1);

    // A third device pulls it, under its author's id and signature.
    let (pages, _) = c.pull_all(&third.token, 0, 0).await;
    let pulled: Vec<Envelope> = pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|x| x.envelope.clone()))
        .collect();
    assert!(pulled.contains(&from_a), "the carried envelope is served");
    assert!(pulled.contains(&from_b));
    let served = pulled.iter().find(|e| e.id == from_a.id).unwrap();
    assert_eq!(served.author, a.device_id());

    // A pushing its own envelope later is a duplicate: same seq, one row.
    let again = c.sync(&a.token, 0, vec![from_a.clone()], 0).await;
    assert_eq!(acked(&again)[&from_a.id], seqs[&from_a.id]);
    assert_eq!(copies(&relay, &from_a), 1);
    // And A's pulls skip it like any envelope it wrote.
    let (pages, _) = c.pull_all(&a.token, 0, 0).await;
    assert!(pages
        .iter()
        .flat_map(|p| &p.pull)
        .all(|x| x.envelope.id != from_a.id));

    // The lead carries it too (the role does not matter): still one row.
    let by_lead = c.sync(&lead.token, 0, vec![from_a.clone()], 0).await;
    assert_eq!(acked(&by_lead)[&from_a.id], seqs[&from_a.id]);
    assert_eq!(copies(&relay, &from_a), 1);
}

#[tokio::test]
async fn a_forged_carried_envelope_is_refused_alone_and_the_carriers_own_are_stored() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 2).await;
    let (a, b) = (&vols[0], &vols[1]);
    // A device of another team on the same relay.
    let (other_team, _other_lead, other_vols) = team_with_volunteers(&relay, 1).await;
    let stranger = &other_vols[0];

    // Altered after A signed it.
    let mut altered = team.change(a, doc(), b"A's words");
    altered.ciphertext[3] ^= 0x40;
    // Claims A as author, signed with B's key.
    let mut wrong_key = team.seal_change(doc(), b"not A's");
    wrong_key.sign(&team.id, a.device_id(), &b.secret);
    // Authored by a member of another team (signed for that team).
    let foreign = other_team.change(stranger, doc(), b"another team");
    // Authored by a member of another team, signed as if for this one.
    let mut foreign_here = team.seal_change(doc(), b"another team, here");
    foreign_here.sign(&team.id, stranger.device_id(), &stranger.secret);
    // Names a device nobody enrolled.
    let mut nobody = team.seal_change(doc(), b"nobody's");
    nobody.sign(&team.id, [0x5a; 16], &b.secret);

    let mine = team.change(b, doc(), b"B's own");
    let carried = team.change(a, doc(), b"A's, carried intact");
    let before = relay.stored_envelopes();
    let answer = c
        .sync(
            &b.token,
            0,
            vec![
                altered.clone(),
                mine.clone(),
                wrong_key.clone(),
                foreign.clone(),
                foreign_here.clone(),
                carried.clone(),
                nobody.clone(),
            ],
            0,
        )
        .await;
    let refused = reasons(&answer);
    assert_eq!(refused[&altered.id], "bad_signature");
    assert_eq!(refused[&wrong_key.id], "bad_signature");
    assert_eq!(refused[&foreign.id], "unknown_author");
    assert_eq!(refused[&foreign_here.id], "unknown_author");
    assert_eq!(refused[&nobody.id], "unknown_author");
    assert_eq!(refused.len(), 5);
    let stored = acked(&answer);
    assert_eq!(
        stored.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([mine.id, carried.id])
    );
    assert_eq!(relay.stored_envelopes(), before + 2);
    for bad in [&altered, &wrong_key, &foreign, &foreign_here, &nobody] {
        assert_eq!(copies(&relay, bad), 0);
    }

    // The carrier's own bad envelope still refuses its whole push, as
    // before: that is the device's own fault, not a stale carried one.
    let mut own_bad = team.change(b, doc(), b"B's, altered");
    own_bad.ciphertext[0] ^= 1;
    let fine = team.change(b, doc(), b"B's, fine");
    let whole = c
        .sync_raw(
            &b.token,
            heartbridge_proto::encode(&common::request(0, vec![fine.clone(), own_bad], 0)),
        )
        .await;
    whole.error(403, "bad_signature");
    assert_eq!(copies(&relay, &fine), 0);
}

#[tokio::test]
async fn a_revoked_authors_envelope_past_its_cut_off_is_refused_alone() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let (a, b) = (&vols[0], &vols[1]);

    // A delivered one envelope itself; B holds it and a later one of A's.
    let delivered = team.change(a, doc(), b"delivered before");
    let first = c.sync(&a.token, 0, vec![delivered.clone()], 0).await;
    let delivered_seq = acked(&first)[&delivered.id];
    let late = team.change(a, doc(), b"written before, never delivered");

    let revoked = c.revoke(&lead.token, &a.id).await;
    assert_eq!(revoked.status, 200);

    let mine = team.change(b, doc(), b"B's own");
    let answer = c
        .sync(
            &b.token,
            0,
            vec![late.clone(), delivered.clone(), mine.clone()],
            0,
        )
        .await;
    assert_eq!(
        reasons(&answer),
        BTreeMap::from([(late.id, "author_revoked".to_owned())])
    );
    let stored = acked(&answer);
    // What the relay held before the cut-off is a duplicate, acknowledged.
    assert_eq!(stored[&delivered.id], delivered_seq);
    assert!(stored.contains_key(&mine.id));
    assert!(!stored.contains_key(&late.id));
    assert_eq!(copies(&relay, &late), 0);
    assert_eq!(copies(&relay, &delivered), 1);
}

#[tokio::test]
async fn a_volunteers_compacting_envelope_carried_by_a_supervisor_is_still_refused() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let vol = &vols[0];
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;

    let d = doc();
    let vol_snapshot = team.snapshot(vol, d, b"volunteer compacts", 5);
    let sup_snapshot = team.snapshot(&sup, doc(), b"supervisor compacts", 5);
    let lead_snapshot = team.snapshot(&lead, doc(), b"lead compacts", 5);
    let vol_change = team.change(vol, d, b"volunteer's change");
    let answer = c
        .sync(
            &sup.token,
            0,
            vec![
                vol_snapshot.clone(),
                sup_snapshot.clone(),
                lead_snapshot.clone(),
                vol_change.clone(),
            ],
            0,
        )
        .await;
    assert_eq!(
        reasons(&answer),
        BTreeMap::from([(vol_snapshot.id, "forbidden".to_owned())])
    );
    let stored = acked(&answer);
    // The lead's snapshot, carried by a supervisor, follows the lead's role.
    for ok in [&sup_snapshot, &lead_snapshot, &vol_change] {
        assert!(stored.contains_key(&ok.id));
    }
    assert_eq!(copies(&relay, &vol_snapshot), 0);
}

/// What one pushed envelope of a random batch is.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The carrier's own, new.
    Own,
    /// Another member's, new and intact.
    Carried(usize),
    /// One pushed before (by anyone): a duplicate.
    Again(usize),
    /// Another member's, altered after signing.
    Altered(usize),
    /// Another member named as author, signed by the carrier's key.
    WrongKey(usize),
    /// A device of no member of the team.
    Stranger,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        2 => Just(Pick::Own),
        3 => (0..3usize).prop_map(Pick::Carried),
        2 => (0..1000usize).prop_map(Pick::Again),
        1 => (0..3usize).prop_map(Pick::Altered),
        1 => (0..3usize).prop_map(Pick::WrongKey),
        1 => Just(Pick::Stranger),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batches of own, carried, duplicate and forged envelopes, from
    /// random carriers: the relay stores exactly the valid ones, each once,
    /// acknowledges each valid one and refuses each forged one.
    #[test]
    fn the_relay_stores_exactly_the_valid_envelopes_each_once(
        batches in prop::collection::vec(
            (0..3usize, prop::collection::vec(pick(), 1..12)),
            1..6,
        )
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let relay = TestRelay::start().await;
            let c = relay.client();
            let (team, _lead, vols) = team_with_volunteers(&relay, 3).await;
            let (_, _, strangers) = team_with_volunteers(&relay, 1).await;
            let mut valid: Vec<Envelope> = Vec::new();
            let mut n = 0u32;
            for (carrier, picks) in batches {
                let me = &vols[carrier];
                let mut push = Vec::new();
                let mut good = BTreeSet::new();
                let mut bad = BTreeSet::new();
                for p in picks {
                    n += 1;
                    let text = format!("envelope {n}");
                    let env = match p {
                        Pick::Own => team.change(me, doc(), text.as_bytes()),
                        Pick::Carried(i) => team.change(&vols[i], doc(), text.as_bytes()),
                        Pick::Again(i) if !valid.is_empty() => valid[i % valid.len()].clone(),
                        Pick::Again(_) => team.change(me, doc(), text.as_bytes()),
                        Pick::Altered(i) => {
                            let mut e = team.change(&vols[i], doc(), text.as_bytes());
                            e.covers += 1;
                            e
                        }
                        Pick::WrongKey(i) => {
                            let mut e = team.seal_change(doc(), text.as_bytes());
                            e.sign(&team.id, vols[i].device_id(), &me.secret);
                            e
                        }
                        Pick::Stranger => {
                            let mut e = team.seal_change(doc(), text.as_bytes());
                            e.sign(&team.id, strangers[0].device_id(), &strangers[0].secret);
                            e
                        }
                    };
                    // A forgery of the carrier's own key under its own id is
                    // the carrier's fault (whole push refused): not drawn.
                    let forged = matches!(p, Pick::Altered(_) | Pick::WrongKey(_) | Pick::Stranger)
                        && env.author != me.device_id();
                    if forged {
                        bad.insert(env.id);
                    } else if matches!(p, Pick::WrongKey(_) | Pick::Altered(_)) {
                        // Drawn as its own author: push a valid one instead.
                        let e = team.change(me, doc(), text.as_bytes());
                        good.insert(e.id);
                        valid.push(e.clone());
                        push.push(e);
                        continue;
                    } else {
                        good.insert(env.id);
                        valid.push(env.clone());
                    }
                    push.push(env);
                }
                let answer = c.sync(&me.token, 0, push, 0).await;
                let got_acked: BTreeSet<ContentId> = answer.acked.iter().map(|a| a.id).collect();
                let got_refused: BTreeSet<ContentId> = answer.refused.iter().map(|r| r.id).collect();
                assert_eq!(got_acked, good);
                assert_eq!(got_refused, bad);
            }
            // Exactly the valid ones, each once.
            let distinct: BTreeSet<ContentId> = valid.iter().map(|e| e.id).collect();
            assert_eq!(relay.stored_envelopes(), distinct.len() as i64);
            for e in &valid {
                assert_eq!(copies(&relay, e), 1);
            }
        });
    }
}
