//! The engine against a relay that lies, and the parts machinery over
//! random sizes and delivery orders. Real stores on temp files; the relay
//! here is a scripted transport, because these answers are ones a real
//! relay never gives.

use heartbridge_proto::{
    decode, encode, Ack, DocKindTag, Envelope, EnvelopeKind, Part, Pulled, Role, Secret,
    SyncRequest, SyncResponse, TeamId, TeamKey,
};
use proptest::prelude::*;

use super::*;
use crate::model::{Channel, Group, Risk};
use crate::NewCase;

thread_local! {
    /// The members the scripted relays of one test announce.
    static MEMBERS: std::cell::RefCell<Vec<heartbridge_proto::MemberKey>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The author the hand-made envelopes of these tests are signed by.
fn ghost() -> heartbridge_proto::DeviceSecret {
    heartbridge_proto::DeviceSecret::from_bytes(&[9; 64]).expect("seed")
}
const GHOST: [u8; 16] = [0xee; 16];

fn member(
    team: &Team,
    device: [u8; 16],
    public: heartbridge_proto::DevicePublic,
    role: Role,
) -> heartbridge_proto::MemberKey {
    let seq = MEMBERS.with(|m| m.borrow().len() as u64 + 1);
    heartbridge_proto::MemberKey {
        seq,
        device,
        role,
        public,
        epoch: 1,
        proof: heartbridge_proto::identity::join_proof(&team.key, &team.team_id, &public, role),
        revoked: false,
    }
}

fn members_since(team_key_check: &SyncRequest) -> Vec<heartbridge_proto::MemberKey> {
    MEMBERS.with(|m| {
        m.borrow()
            .iter()
            .filter(|k| k.seq > team_key_check.members_since)
            .cloned()
            .collect()
    })
}

fn enrolled(dir: &std::path::Path, name: &str, team: &Team) -> Store {
    enrolled_as(dir, name, team, Role::Volunteer)
}

/// A supervisor reads every case of the team (once a device that holds a
/// case's key has heard of it and granted it).
fn enrolled_as(dir: &std::path::Path, name: &str, team: &Team, role: Role) -> Store {
    let mut store =
        Store::init(&dir.join(name), name, &crate::testing::protection()).expect("init");
    let mut mine = team.clone();
    mine.role = role;
    let mut id = [0u8; 16];
    for (i, b) in name.bytes().take(16).enumerate() {
        id[i] = b;
    }
    mine.device_id = hex::encode(id);
    store.set_team(&mine).expect("team");
    let public = store.device_public().expect("keys").expect("keys made");
    MEMBERS.with(|m| {
        if m.borrow().is_empty() {
            let g = member(team, GHOST, ghost().public(), Role::Volunteer);
            m.borrow_mut().push(g);
        }
        let k = member(team, id, public, role);
        m.borrow_mut().push(k);
    });
    store
}

fn a_team() -> Team {
    MEMBERS.with(|m| m.borrow_mut().clear());
    Team {
        relay_url: "http://relay.invalid".into(),
        team_id: TeamId::random(),
        device_id: String::new(),
        token: Secret::from_string("t".into()),
        key: TeamKey::generate(),
        epoch: 1,
        role: Role::Volunteer,
        lead_sign_pk: [0; 32],
    }
}

/// Answers every request with what `answer` makes of it.
struct Scripted<F: FnMut(SyncRequest) -> SyncResponse>(F);
impl<F: FnMut(SyncRequest) -> SyncResponse> Transport for Scripted<F> {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let req: SyncRequest = decode("req", &body).expect("request decodes");
        Ok(encode(&(self.0)(req)))
    }
}

fn answer(req: &SyncRequest, cursor: u64, pull: Vec<Pulled>, more: bool) -> SyncResponse {
    SyncResponse {
        v: heartbridge_proto::PROTOCOL_VERSION,
        roster: None,
        members: members_since(req),
        acked: req
            .push
            .iter()
            .enumerate()
            .map(|(i, e)| Ack {
                id: e.id,
                seq: 1000 + i as u64,
            })
            .collect(),
        pull,
        cursor,
        more,
        refused: vec![],
    }
}

fn sealed(team: &Team, doc: [u8; 16], bytes: &[u8]) -> Envelope {
    let mut e = Envelope::seal(
        &team.key,
        &team.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        bytes,
    )
    .expect("seal");
    e.sign(&team.team_id, GHOST, &ghost());
    e
}

#[test]
fn a_relay_whose_cursor_goes_backwards_or_overflows_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    // Move the cursor to 10 honestly first.
    store
        .sync(
            &mut Scripted(|r| answer(&r, 10, vec![], false)),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("honest sync");
    assert_eq!(store.sync_status().expect("status").cursor, 10);
    for bad in [3u64, u64::MAX, i64::MAX as u64 + 1] {
        let err = store
            .sync(
                &mut Scripted(|r| answer(&r, bad, vec![], false)),
                &SyncOptions::default(),
                &mut |_| {},
            )
            .expect_err("a lying cursor");
        assert_eq!(err.kind(), "protocol", "cursor {bad}");
        assert_eq!(
            store.sync_status().expect("status").cursor,
            10,
            "stored a bad cursor {bad}"
        );
    }
}

#[test]
fn pulled_envelopes_out_of_order_or_outside_the_page_are_refused_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let env = sealed(&team, [9; 16], b"not automerge");
    let pages = [
        vec![(5, env.clone()), (4, env.clone())], // descending
        vec![(0, env.clone())],                   // at the cursor
        vec![(30, env.clone())],                  // beyond the answer's cursor
    ];
    for page in pages {
        let pull: Vec<Pulled> = page
            .into_iter()
            .map(|(seq, envelope)| Pulled { seq, envelope })
            .collect();
        let err = store
            .sync(
                &mut Scripted(|r| answer(&r, 20, pull.clone(), false)),
                &SyncOptions::default(),
                &mut |_| {},
            )
            .expect_err("out of order");
        assert_eq!(err.kind(), "protocol");
        let status = store.sync_status().expect("status");
        assert_eq!((status.cursor, status.refused), (0, 0));
    }
}

#[test]
fn a_relay_that_says_more_but_sends_nothing_ends_the_sync() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let mut calls = 0;
    let err = store
        .sync(
            &mut Scripted(|r| {
                calls += 1;
                answer(&r, r.cursor, vec![], true)
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect_err("no progress");
    assert_eq!(err.kind(), "protocol");
    // The first answer brings the team's members (news); the second brings
    // nothing at all and ends the sync.
    assert_eq!(
        calls, 2,
        "the device kept asking a relay that gives nothing"
    );
}

#[test]
fn a_relay_that_takes_no_push_does_not_make_the_device_loop() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    store
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .expect("case");
    let mut calls = 0;
    let report = store
        .sync(
            &mut Scripted(|r| {
                calls += 1;
                let mut a = answer(&r, r.cursor, vec![], false);
                a.acked.clear();
                a
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("the sync ends");
    assert_eq!(calls, 1);
    // The case's change stays (and the grant of its key, not counted).
    assert_eq!(
        report.pending, 1,
        "an unacknowledged change left the outbox"
    );
    let kinds: Vec<String> = store
        .outbox()
        .expect("outbox")
        .into_iter()
        .map(|o| o.kind.as_str().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "case"), "{kinds:?}");
}

#[test]
fn network_failures_shrink_the_request_and_the_size_is_remembered() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let start = store.sync_status().expect("status").link_bytes;
    struct AlwaysCut;
    impl Transport for AlwaysCut {
        fn sync(&mut self, _: &Team, _: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
            Err(TransportError::Network("connection reset".into()))
        }
    }
    let err = store
        .sync(&mut AlwaysCut, &SyncOptions::default(), &mut |_| {})
        .expect_err("always cut");
    assert_eq!(err.kind(), "network");
    let shrunk = store.sync_status().expect("status").link_bytes;
    assert!(shrunk < start, "{shrunk} !< {start}");
    // Success grows it back.
    for _ in 0..10 {
        store
            .sync(
                &mut Scripted(|r| answer(&r, r.cursor, vec![], false)),
                &SyncOptions::default(),
                &mut |_| {},
            )
            .expect("sync");
    }
    assert!(store.sync_status().expect("status").link_bytes > shrunk);
}

/// A loopback "relay": a log every device pushes to and pulls from, that
/// honours snapshots' `covers` as the real one does. Enough to move parts
/// between two real stores in any order.
#[derive(Default)]
struct Log {
    entries: Vec<(u64, Envelope)>,
    next: u64,
}

impl Log {
    fn handle(&mut self, req: SyncRequest, limit: usize) -> SyncResponse {
        let req_members = SyncRequest {
            push: vec![],
            ..req.clone()
        };
        let mut acked = Vec::new();
        for env in req.push {
            let seq = match self.entries.iter().find(|(_, e)| e.id == env.id) {
                Some((s, _)) => *s,
                None => {
                    self.next += 1;
                    let seq = self.next;
                    if env.kind == EnvelopeKind::Snapshot {
                        let upto = env.covers.min(seq - 1);
                        self.entries
                            .retain(|(s, e)| !(e.doc == env.doc && *s <= upto));
                    }
                    self.entries.push((seq, env.clone()));
                    seq
                }
            };
            acked.push(Ack { id: env.id, seq });
        }
        let mut pull = Vec::new();
        let mut bytes = 0;
        let mut cursor = req.cursor;
        let mut more = false;
        for (seq, env) in self.entries.iter().filter(|(s, _)| *s > req.cursor) {
            if !pull.is_empty() && bytes >= limit {
                more = true;
                break;
            }
            bytes += env.wire_size();
            pull.push(Pulled {
                seq: *seq,
                envelope: env.clone(),
            });
            cursor = *seq;
        }
        if !more {
            cursor = cursor.max(self.next);
        }
        SyncResponse {
            v: heartbridge_proto::PROTOCOL_VERSION,
            roster: None,
            members: members_since(&req_members),
            acked,
            pull,
            cursor,
            more,
            refused: vec![],
        }
    }
}

struct Via<'a>(&'a mut Log, usize);
impl Transport for Via<'_> {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let req: SyncRequest = decode("req", &body).expect("request");
        Ok(encode(&self.0.handle(req, self.1)))
    }
}

fn long_note(seed: u64, chars: usize) -> String {
    let mut x = seed | 1;
    (0..chars)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_u32(0x4E00 + (x % 0x5000) as u32).expect("han")
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// A note of any size, pushed in parts with any page size and pulled
    /// in parts that arrive shuffled and duplicated, arrives whole.
    #[test]
    fn a_note_of_any_size_arrives_whole_whatever_the_order_of_its_parts(
        chars in 1usize..40_000,
        seed in any::<u64>(),
        page in 2_000usize..80_000,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let team = a_team();
        let mut a = enrolled(dir.path(), "a", &team);
        let mut b = enrolled_as(dir.path(), "b", &team, Role::Supervisor);
        let id = a.new_case(&NewCase { alias: "阿明".into(), group: Group::Other, risk: Risk::None }).expect("case");
        let note = long_note(seed, chars);
        a.add_contact(&id, Channel::Hotline, &note, None).expect("contact");
        let mut log = Log::default();
        let opts = SyncOptions { page_bytes: page as u32, max_push_bytes: page, ..SyncOptions::default() };
        let r = a.sync(&mut Via(&mut log, page), &opts, &mut |_| {}).expect("push");
        prop_assert_eq!(r.pending, 0);
        // a has heard of supervisor b now: its next sync grants b the key.
        a.sync(&mut Via(&mut log, page), &opts, &mut |_| {}).expect("grant");
        // Shuffle and duplicate the log before b pulls it.
        let mut x = seed | 1;
        let n = log.entries.len();
        for i in (1..n).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (x >> 33) as usize % (i + 1);
            let (si, sj) = (log.entries[i].0, log.entries[j].0);
            log.entries.swap(i, j);
            log.entries[i].0 = si;
            log.entries[j].0 = sj;
        }
        if n > 1 {
            // The same envelope twice, as a relay that lost its dedup would.
            let dup = log.entries[0].1.clone();
            log.next += 1;
            log.entries.push((log.next, dup));
        }
        let r = b.sync(&mut Via(&mut log, page), &opts, &mut |_| {}).expect("pull");
        prop_assert_eq!(r.refused, 0);
        let case = b.case(&id).expect("b has the case");
        prop_assert_eq!(&case.contacts[0].text, &note);
        prop_assert_eq!(b.waiting_changes().expect("waiting"), 0);
        let parts: i64 = b.conn().query_row("SELECT count(*) FROM inbound_parts", [], |r| r.get(0)).expect("parts");
        prop_assert_eq!(parts, 0);
    }
}

#[test]
fn a_part_that_disagrees_with_its_group_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let group = [5u8; 16];
    let part = |index, count, doc: [u8; 16]| {
        let mut e = Envelope::seal_part(
            &team.key,
            1,
            &team.team_id,
            doc,
            EnvelopeKind::Change,
            DocKindTag::Case,
            Some(Part {
                group,
                index,
                count,
            }),
            b"slice",
        )
        .expect("seal");
        e.sign(&team.team_id, GHOST, &ghost());
        e
    };
    let pull = vec![
        Pulled {
            seq: 1,
            envelope: part(0, 3, [1; 16]),
        },
        Pulled {
            seq: 2,
            envelope: part(1, 4, [1; 16]),
        },
        Pulled {
            seq: 3,
            envelope: part(2, 3, [2; 16]),
        },
    ];
    let report = store
        .sync(
            &mut Scripted(|r| answer(&r, 3, pull.clone(), false)),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("sync");
    assert_eq!(report.refused, 2);
    assert_eq!(report.envelopes_pulled, 3);
    let kept: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM inbound_parts", [], |r| r.get(0))
        .expect("parts");
    assert_eq!(kept, 1, "the one consistent part waits for the others");
    assert_eq!(store.sync_status().expect("status").cursor, 3);
}

/// Cuts every answer after `keep` of its bytes, except every `whole`-th.
struct Cutting<'a> {
    log: &'a mut Log,
    page: usize,
    keep: f64,
    whole: usize,
    calls: usize,
}
impl Transport for Cutting<'_> {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        self.calls += 1;
        let req: SyncRequest = decode("req", &body).expect("request");
        let answer = encode(&self.log.handle(req, self.page));
        if self.calls.is_multiple_of(self.whole) {
            return Ok(answer);
        }
        let n = (answer.len() as f64 * self.keep) as usize;
        Err(TransportError::Cut {
            detail: "connection reset".into(),
            received: answer[..n].to_vec(),
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Answers cut anywhere still make progress: every envelope that
    /// arrived whole is kept, the cursor stops after it, and repeated syncs
    /// bring everything, once.
    #[test]
    fn answers_cut_anywhere_keep_what_arrived_whole(
        keep in 0.0f64..1.0,
        whole in 2usize..6,
        cases in 1usize..8,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let team = a_team();
        let mut a = enrolled(dir.path(), "a", &team);
        let mut b = enrolled_as(dir.path(), "b", &team, Role::Supervisor);
        let mut ids = Vec::new();
        for i in 0..cases {
            let id = a.new_case(&NewCase { alias: format!("个案{i}"), group: Group::Other, risk: Risk::Low }).expect("case");
            a.add_contact(&id, Channel::Hotline, &long_note(i as u64, 3_000), None).expect("contact");
            ids.push(id);
        }
        let mut log = Log::default();
        a.sync(&mut Via(&mut log, 1 << 20), &SyncOptions::default(), &mut |_| {}).expect("push");
        a.sync(&mut Via(&mut log, 1 << 20), &SyncOptions::default(), &mut |_| {}).expect("grant");
        let mut t = Cutting { log: &mut log, page: 12_000, keep, whole, calls: 0 };
        let opts = SyncOptions { page_bytes: 12_000, ..SyncOptions::default() };
        let mut done = false;
        for _ in 0..50 {
            if let Ok(r) = b.sync(&mut t, &opts, &mut |_| {}) {
                prop_assert_eq!(r.refused, 0);
                done = true;
                break;
            }
        }
        prop_assert!(done, "never completed");
        for id in &ids {
            prop_assert_eq!(b.case(id).expect("case").contacts.len(), 1);
        }
    }
}

/// Automerge bytes of a new case made on a scratch store, and its id.
fn case_bytes(dir: &std::path::Path, name: &str, alias: &str) -> (DocId, Vec<u8>) {
    let mut w = Store::init(&dir.join(name), name, &crate::testing::protection()).expect("init");
    let id = w
        .new_case(&NewCase {
            alias: alias.into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .expect("case");
    let (_, mut am) = w.load(&id).expect("load").expect("doc");
    (id, am.save())
}

fn signed_as(
    team: &Team,
    doc: [u8; 16],
    bytes: &[u8],
    author: [u8; 16],
    key: &heartbridge_proto::DeviceSecret,
) -> Envelope {
    let mut e = Envelope::seal(
        &team.key,
        &team.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        bytes,
    )
    .expect("seal");
    e.sign(&team.team_id, author, key);
    e
}

/// Valid AEAD under the team key is not enough: an envelope whose
/// signature is not its author's is refused, one from an author nobody
/// vouched for is held (never applied), and only a member's is applied.
#[test]
fn forged_envelopes_under_the_team_key_are_never_applied() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let (forged_id, forged) = case_bytes(dir.path(), "w1", "冒名");
    let (stranger_id, stranger) = case_bytes(dir.path(), "w2", "陌生");
    let (good_id, good) = case_bytes(dir.path(), "w3", "真的");
    let impostor = heartbridge_proto::DeviceSecret::generate();
    let pull = vec![
        // Claims to be the known member, signed by someone else.
        Pulled {
            seq: 1,
            envelope: signed_as(&team, doc_bytes(&forged_id), &forged, GHOST, &impostor),
        },
        // A device no roster and no join proof speaks for.
        Pulled {
            seq: 2,
            envelope: signed_as(
                &team,
                doc_bytes(&stranger_id),
                &stranger,
                [0x77; 16],
                &impostor,
            ),
        },
        Pulled {
            seq: 3,
            envelope: signed_as(&team, doc_bytes(&good_id), &good, GHOST, &ghost()),
        },
    ];
    let report = store
        .sync(
            &mut Scripted(|r| {
                answer(
                    &r,
                    3,
                    if r.cursor == 0 { pull.clone() } else { vec![] },
                    false,
                )
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("sync");
    assert_eq!(
        (report.refused, report.held, report.applied),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(
        store.case(&forged_id).is_err(),
        "a forged envelope was applied"
    );
    assert!(
        store.case(&stranger_id).is_err(),
        "a stranger's envelope was applied"
    );
    assert_eq!(store.case(&good_id).expect("member's case").alias, "真的");
    let status = store.sync_status().expect("status");
    assert_eq!((status.held, status.refused), (1, 1));
    assert_eq!(store.refused().expect("refused")[0].3, "bad signature");
}

/// After the lead's roster revokes a device, its envelopes count only if
/// they are older than the revocation: under an earlier epoch and at or
/// before the relay's sequence number then.
#[test]
fn a_revoked_authors_envelopes_count_only_before_the_revocation() {
    use heartbridge_proto::identity::{Revocation, RosterMember};
    let dir = tempfile::tempdir().expect("tmp");
    let lead = heartbridge_proto::DeviceSecret::generate();
    let mut team = a_team();
    team.lead_sign_pk = lead.public().sign;
    let mut store = enrolled(dir.path(), "a", &team);
    let (before_id, before) = case_bytes(dir.path(), "w1", "之前");
    let (after_id, after) = case_bytes(dir.path(), "w2", "之后");
    let roster = heartbridge_proto::Roster {
        team: team.team_id.0,
        version: 2,
        epoch: 2,
        members: vec![RosterMember {
            device: GHOST,
            role: Role::Volunteer,
            public: ghost().public(),
            added_at: 0,
        }],
        revoked: vec![Revocation {
            device: GHOST,
            at: 0,
            epoch: 2,
            cutoff_seq: 4,
        }],
        keys: vec![],
        key_checks: vec![],
    };
    let signed = heartbridge_proto::SignedRoster::sign(&roster, &lead).to_bytes();
    // The same roster signed by anyone but the lead changes nothing.
    let forged_roster = heartbridge_proto::SignedRoster::sign(&roster, &ghost()).to_bytes();
    let pull = vec![
        Pulled {
            seq: 4,
            envelope: signed_as(&team, doc_bytes(&before_id), &before, GHOST, &ghost()),
        },
        Pulled {
            seq: 5,
            envelope: signed_as(&team, doc_bytes(&after_id), &after, GHOST, &ghost()),
        },
    ];
    let mut calls = 0;
    let report = store
        .sync(
            &mut Scripted(|r| {
                calls += 1;
                let mut a = answer(
                    &r,
                    5,
                    if r.cursor == 0 { pull.clone() } else { vec![] },
                    false,
                );
                a.roster = Some(if calls == 1 {
                    forged_roster.clone()
                } else {
                    signed.clone()
                });
                a
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("sync");
    // The forged roster was ignored: both envelopes applied on the first
    // answer, before any revocation was known.
    assert_eq!(report.applied, 2, "{report:?}");
    assert_eq!(
        store
            .roster()
            .expect("roster")
            .iter()
            .filter(|m| m.revoked)
            .count(),
        0
    );

    let dir2 = tempfile::tempdir().expect("tmp");
    let mut late = enrolled(dir2.path(), "b", &team);
    let report = late
        .sync(
            &mut Scripted(|r| {
                let mut a = answer(
                    &r,
                    5,
                    if r.cursor == 0 { pull.clone() } else { vec![] },
                    false,
                );
                a.roster = (r.roster_version < 2).then(|| signed.clone());
                a
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("sync");
    assert_eq!((report.applied, report.refused), (1, 1), "{report:?}");
    assert_eq!(late.case(&before_id).expect("before").alias, "之前");
    assert!(
        late.case(&after_id).is_err(),
        "an envelope after the revocation was applied"
    );
    assert_eq!(late.refused().expect("refused")[0].3, "revoked author");
}

/// A roster that does not even decode is ignored like an unsigned one: the
/// relay's garbage must not stop every later sync.
#[test]
fn an_unreadable_roster_is_ignored_and_the_sync_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut store = enrolled(dir.path(), "a", &team);
    let (id, bytes) = case_bytes(dir.path(), "w1", "照常");
    let pull = vec![Pulled {
        seq: 1,
        envelope: signed_as(&team, doc_bytes(&id), &bytes, GHOST, &ghost()),
    }];
    let report = store
        .sync(
            &mut Scripted(|r| {
                let mut a = answer(
                    &r,
                    1,
                    if r.cursor == 0 { pull.clone() } else { vec![] },
                    false,
                );
                a.roster = Some(vec![0xff; 40]);
                a
            }),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("the sync goes on");
    assert_eq!(report.applied, 1, "{report:?}");
    assert_eq!(store.case(&id).expect("case").alias, "照常");
    assert!(store.roster().expect("roster").iter().all(|m| !m.signed));
}

/// A volunteer who is not a reader of a case cannot take it over: a key
/// grant it makes for another's case (a new generation, or a first key
/// for a case that has an owner) is ignored, and the owner goes on sealing
/// under its own key.
#[test]
fn a_volunteers_grant_for_a_case_it_does_not_own_is_ignored() {
    use heartbridge_proto::case_seal::{frame, CaseKey, Grant};
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut a = enrolled(dir.path(), "a", &team);
    let mut c = enrolled(dir.path(), "c", &team);
    let id = a
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .expect("case");
    let mut log = Log::default();
    let opts = SyncOptions::default();
    a.sync(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a pushes");
    c.sync(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("c pulls");
    assert!(c.case(&id).is_err(), "c read a case it was not given");
    let (gen, owner_key) = crate::access::current_key(a.conn(), id.as_str())
        .expect("keys")
        .expect("a holds its case's key");
    assert_eq!(gen, 1);
    // c grants a a key of its own making, as generation 2 and as a
    // competing generation 1, and pushes the grants signed as itself.
    let a_dev = a
        .team()
        .expect("team")
        .expect("team")
        .device_bytes()
        .expect("id");
    let a_kx = a.device_public().expect("keys").expect("keys").kx;
    let evil = CaseKey::generate();
    let mut payload = Vec::new();
    for g in [2u32, 1] {
        let grant = Grant::make(
            &team.team_id,
            doc_bytes(&id),
            evil.id(),
            g,
            &[(g, evil.clone())],
            &[(a_dev, a_kx)],
        );
        payload.extend(frame(&grant.to_bytes()));
    }
    c.conn()
        .execute(
            "INSERT INTO outbox (doc_id, kind, bytes, created_at) VALUES (?1, 'grants', ?2, 0)",
            rusqlite::params![
                crate::access::grants_doc_id(&team.team_id).as_str(),
                payload
            ],
        )
        .expect("queue the forged grants");
    c.sync(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("c pushes");
    a.sync(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a pulls");
    let (gen, now) = crate::access::current_key(a.conn(), id.as_str())
        .expect("keys")
        .expect("key");
    assert_eq!((gen, now.id()), (1, owner_key.id()), "c's key took over");
    let from_c: i64 = a
        .conn()
        .query_row(
            "SELECT count(*) FROM grants WHERE granter = ?1",
            [c.team().expect("team").expect("team").device_id],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(from_c, 0, "a recorded a grant c may not make");
    // A damaged grants payload is refused, not a failed sync.
    let mut bad = Envelope::seal_part(
        &team.key,
        1,
        &team.team_id,
        doc_bytes(&crate::access::grants_doc_id(&team.team_id)),
        EnvelopeKind::Change,
        DocKindTag::Grants,
        None,
        &[0, 0, 0, 9, 1],
    )
    .expect("seal");
    c.sign_envelope(&mut bad).expect("sign");
    log.next += 1;
    let n = log.next;
    log.entries.push((n, bad));
    let r = a
        .sync(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a syncs on");
    assert_eq!(r.refused, 1, "{r:?}");
}

/// The log `log` would hold if only the envelopes of `docs` were in it,
/// numbered from 1: another relay's seq space (review F3: a venue relay's
/// seqs and the central relay's both count from 1).
fn relay_of(log: &Log, docs: &[[u8; 16]], from: u64) -> Log {
    let entries: Vec<(u64, Envelope)> = log
        .entries
        .iter()
        .filter(|(s, e)| *s > from && docs.contains(&e.doc))
        .enumerate()
        .map(|(i, (_, e))| (i as u64 + 1, e.clone()))
        .collect();
    Log {
        next: entries.len() as u64,
        entries,
    }
}

/// Review F3: a supervisor pulls case C's payload at seq 1 of the central
/// relay and case D's at seq 1 of a venue relay, before it holds either
/// key. Both are kept (two rows, not one overwritten), and both notes open
/// when the grants arrive.
#[test]
fn locked_payloads_at_the_same_seq_of_two_relays_both_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut a = enrolled(dir.path(), "a", &team);
    let mut case = |alias: &str| {
        a.new_case(&NewCase {
            alias: alias.into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .expect("case")
    };
    let c = case("阿明");
    let d = case("小红");
    let opts = SyncOptions::default();
    let mut log = Log::default();
    a.sync_active(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a pushes");
    let first = log.next;
    // The supervisor joins after a pushed: a grants it the keys next time.
    let mut s = enrolled_as(dir.path(), "s", &team, Role::Supervisor);
    let mut central = relay_of(&log, &[doc_bytes(&c)], 0);
    let mut venue = relay_of(&log, &[doc_bytes(&d)], 0);
    assert_eq!(central.entries[0].0, 1);
    assert_eq!(venue.entries[0].0, 1);
    s.sync_active(&mut Via(&mut central, 1 << 20), &opts, &mut |_| {})
        .expect("s at central");
    s.add_relay(
        "http://other.invalid",
        None,
        crate::RelayKind::Central,
        false,
    )
    .expect("venue entry");
    s.select_relay("http://other.invalid").expect("venue");
    s.sync_active(&mut Via(&mut venue, 1 << 20), &opts, &mut |_| {})
        .expect("s at the venue");
    assert!(s.case(&c).is_err() && s.case(&d).is_err());
    assert_eq!(
        s.sync_status().expect("status").locked,
        2,
        "one payload lost"
    );
    // a learns of s and grants it both keys; s gets the grants at the venue.
    a.sync_active(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a grants");
    let grants = crate::access::grants_doc_id(&team.team_id);
    let more = relay_of(&log, &[doc_bytes(&grants)], first);
    assert!(!more.entries.is_empty(), "a granted nothing");
    for (_, e) in more.entries {
        venue.next += 1;
        let n = venue.next;
        venue.entries.push((n, e));
    }
    s.sync_active(&mut Via(&mut venue, 1 << 20), &opts, &mut |_| {})
        .expect("s gets the keys");
    assert_eq!(s.case(&c).expect("C opens").alias, "阿明");
    assert_eq!(s.case(&d).expect("D opens").alias, "小红");
    assert_eq!(s.sync_status().expect("status").locked, 0);
}

/// Review F3, held envelopes: two envelopes of an author not known yet,
/// pulled at seq 1 of two relays, are both held and both applied once the
/// author is known.
#[test]
fn held_envelopes_at_the_same_seq_of_two_relays_are_both_applied() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut a = enrolled(dir.path(), "a", &team);
    let c = a
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .expect("case");
    let d = a
        .new_case(&NewCase {
            alias: "小红".into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .expect("case");
    let opts = SyncOptions::default();
    let mut log = Log::default();
    a.sync_active(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a pushes");
    // b is a supervisor, so it reads both cases once a granted; the
    // grants come first, then the cases, each relay in its own seqs.
    let mut b = enrolled_as(dir.path(), "b", &team, Role::Supervisor);
    a.sync_active(&mut Via(&mut log, 1 << 20), &opts, &mut |_| {})
        .expect("a grants");
    let grants = crate::access::grants_doc_id(&team.team_id);
    // Hide a from b's relays until both envelopes are held.
    let a_member = MEMBERS.with(|m| m.borrow_mut().remove(1));
    let mut central = relay_of(&log, &[doc_bytes(&c), doc_bytes(&grants)], 0);
    let mut venue = relay_of(&log, &[doc_bytes(&d)], 0);
    assert_eq!(venue.entries[0].0, 1);
    b.sync_active(&mut Via(&mut central, 1 << 20), &opts, &mut |_| {})
        .expect("b at central");
    b.add_relay(
        "http://other.invalid",
        None,
        crate::RelayKind::Central,
        false,
    )
    .expect("venue entry");
    b.select_relay("http://other.invalid").expect("venue");
    b.sync_active(&mut Via(&mut venue, 1 << 20), &opts, &mut |_| {})
        .expect("b at the venue");
    let held: i64 = b
        .conn()
        .query_row("SELECT count(*) FROM held_envelopes", [], |r| r.get(0))
        .expect("held");
    assert!(held >= 2, "an envelope held at seq 1 was dropped: {held}");
    // a becomes known: everything held is applied.
    MEMBERS.with(|m| {
        let seq = m.borrow().len() as u64 + 10;
        m.borrow_mut()
            .push(heartbridge_proto::MemberKey { seq, ..a_member })
    });
    b.sync_active(&mut Via(&mut venue, 1 << 20), &opts, &mut |_| {})
        .expect("b learns of a");
    assert_eq!(b.case(&c).expect("C opens").alias, "阿明");
    assert_eq!(b.case(&d).expect("D opens").alias, "小红");
}

/// A venue relay on `Log`: every answer carries (empty) venue receipts, so
/// its acknowledgements are level 1.
struct AtVenue<'a>(&'a mut Log);
impl Transport for AtVenue<'_> {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let (req, _) = heartbridge_proto::venue_wire::decode_request(&body).expect("request");
        let ext = heartbridge_proto::venue_wire::ResponseExt {
            venue: Some(Default::default()),
            log_id: None,
        };
        Ok(heartbridge_proto::venue_wire::encode_response(
            &self.0.handle(req, 1 << 20),
            &ext,
        ))
    }
}

/// Review F2: a snapshot's `covers` counts in the seqs of one relay. No
/// snapshot is frozen while a venue relay is the one synced with, and one
/// frozen for the central relay but not yet acknowledged there is dropped
/// when the device switches relays, so no relay ever gets a snapshot
/// frozen in another's seqs. The document's changes still reach both.
#[test]
fn a_snapshot_frozen_for_one_relay_is_never_pushed_to_another() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut s = enrolled_as(dir.path(), "s", &team, Role::Supervisor);
    let c = s
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Other,
            risk: Risk::High,
        })
        .expect("case");
    let snap = SyncOptions {
        snapshot_all: true,
        ..SyncOptions::default()
    };
    let mut central = Log::default();
    s.sync_active(
        &mut Via(&mut central, 1 << 20),
        &SyncOptions::default(),
        &mut |_| {},
    )
    .expect("changes to central");
    // A snapshot is frozen for the central relay; its answer never comes.
    let mut session = s.sync_session(&snap).expect("session");
    let request = session.next_request(&mut s).expect("request").expect("one");
    let sent: SyncRequest = decode("req", &request).expect("request");
    assert!(
        sent.push.iter().any(|e| e.kind == EnvelopeKind::Snapshot),
        "the test needs a snapshot frozen for the central relay"
    );
    drop(session);
    // The device moves to a venue relay and syncs there, snapshots on.
    s.add_relay("http://venue.invalid", None, crate::RelayKind::Venue, false)
        .expect("venue entry");
    s.select_relay("http://venue.invalid").expect("venue");
    let mut venue = Log::default();
    s.sync_active(&mut AtVenue(&mut venue), &snap, &mut |_| {})
        .expect("venue sync");
    assert!(
        venue
            .entries
            .iter()
            .all(|(_, e)| e.kind != EnvelopeKind::Snapshot),
        "a venue relay got a snapshot"
    );
    // Back at the central relay: nothing frozen at the venue goes there.
    s.select_relay(&team.relay_url).expect("central");
    let before = central.entries.len();
    s.sync_active(
        &mut Via(&mut central, 1 << 20),
        &SyncOptions::default(),
        &mut |_| {},
    )
    .expect("central sync");
    assert!(
        central.entries[before..]
            .iter()
            .all(|(_, e)| e.kind != EnvelopeKind::Snapshot),
        "a snapshot frozen elsewhere reached the central relay"
    );
    assert!(central.entries.iter().any(|(_, e)| e.doc == doc_bytes(&c)));
    // Compaction still happens at the central relay itself.
    s.sync_active(&mut Via(&mut central, 1 << 20), &snap, &mut |_| {})
        .expect("central snapshot");
    assert!(central
        .entries
        .iter()
        .any(|(_, e)| e.kind == EnvelopeKind::Snapshot && e.doc == doc_bytes(&c)));
    assert_eq!(s.outbox_len().expect("outbox"), 0);
}

/// Review F8: a session at a venue relay whose entry is removed (or
/// another relay selected) before its answer is handled never writes the
/// venue's cursor into the slot now kept for the team's relay.
#[test]
fn a_relay_removed_during_a_session_leaves_the_team_relays_cursor_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut a = enrolled(dir.path(), "a", &team);
    let mut s = enrolled(dir.path(), "s", &team);
    a.new_case(&NewCase {
        alias: "阿明".into(),
        group: Group::Other,
        risk: Risk::Low,
    })
    .expect("case");
    let opts = SyncOptions::default();
    let mut central = Log::default();
    a.sync_active(&mut Via(&mut central, 1 << 20), &opts, &mut |_| {})
        .expect("a pushes");
    s.sync_active(&mut Via(&mut central, 1 << 20), &opts, &mut |_| {})
        .expect("s at central");
    let at_central = s.sync_status().expect("status").cursor;
    assert!(at_central > 0);
    // The other relay's log is longer: its cursor would skip central seqs.
    let mut venue = Log {
        entries: central.entries.clone(),
        next: central.next + 40,
    };
    s.add_relay(
        "http://other.invalid",
        None,
        crate::RelayKind::Central,
        false,
    )
    .expect("venue entry");
    s.select_relay("http://other.invalid").expect("venue");
    let mut session = s.sync_session(&opts).expect("session");
    let body = session.next_request(&mut s).expect("request").expect("one");
    s.remove_relay("http://other.invalid").expect("removed");
    let answer = Via(&mut venue, 1 << 20).sync(session.team(), body);
    let e = session.handle(&mut s, answer).unwrap_err();
    assert_eq!(e.kind(), "relay", "{e}");
    assert_eq!(s.sync_status().expect("status").cursor, at_central);
    assert_eq!(
        s.active_relay_url().expect("active").as_deref(),
        Some(team.relay_url.as_str())
    );
    // And a new session at the team's relay goes on from its own cursor.
    s.sync_active(&mut Via(&mut central, 1 << 20), &opts, &mut |_| {})
        .expect("s at central again");
    assert_eq!(s.sync_status().expect("status").cursor, central.next);
}

/// A central relay on `Log` that sends its log id, as relays do since
/// issue 11 (h) 2.
struct WithLogId<'a>(&'a mut Log, heartbridge_proto::venue_wire::LogId);
impl Transport for WithLogId<'_> {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let (req, _) = heartbridge_proto::venue_wire::decode_request(&body).expect("request");
        let ext = heartbridge_proto::venue_wire::ResponseExt {
            venue: None,
            log_id: Some(self.1),
        };
        Ok(heartbridge_proto::venue_wire::encode_response(
            &self.0.handle(req, 1 << 20),
            &ext,
        ))
    }
}

fn stored_log_id(s: &Store) -> Option<Vec<u8>> {
    s.conn()
        .query_row("SELECT log_id FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .expect("log id")
}

fn stored_cursor(s: &Store) -> i64 {
    s.conn()
        .query_row("SELECT cursor FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .expect("cursor")
}

/// A relay restored from a backup that lacks what this device pushed: the
/// change of log id is seen, and the process dies before the transaction
/// that resets the cursor and queues the snapshots commits. Nothing of it
/// is kept, so the next sync sees the change again and pushes the case;
/// a sync after that pushes nothing more.
#[test]
fn a_device_killed_after_seeing_a_new_log_id_pushes_again_on_the_next_sync() {
    use heartbridge_proto::venue_wire::LogId;
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut s = enrolled(dir.path(), "a", &team);
    let c = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .expect("case");
    s.add_contact(&c, Channel::Hotline, "谈到考前失眠", Some(20))
        .expect("contact");
    let opts = SyncOptions::default();
    // The backup: the relay's log before the device pushed anything.
    let first = LogId([1; 16]);
    let mut relay = Log::default();
    let report = s
        .sync_active(&mut WithLogId(&mut relay, first), &opts, &mut |_| {})
        .expect("first sync");
    assert!(!report.relay_restored, "a first sighting is no restore");
    assert_eq!(stored_log_id(&s), Some(first.0.to_vec()));
    assert_eq!(s.outbox_len().expect("outbox"), 0, "acknowledged");
    assert!(relay.entries.iter().any(|(_, e)| e.doc == doc_bytes(&c)));
    let cursor = stored_cursor(&s);
    assert!(cursor > 0);

    // The relay is restored from the backup (empty) with a new log id.
    let second = LogId([2; 16]);
    let mut restored = Log::default();
    super::restored::DIE_BEFORE_COMMIT.with(|d| d.set(true));
    let died = s.sync_active(&mut WithLogId(&mut restored, second), &opts, &mut |_| {});
    assert!(died.is_err(), "the injected death ends the sync");
    // Nothing of the half-done start-over is kept.
    assert_eq!(stored_log_id(&s), Some(first.0.to_vec()));
    assert_eq!(stored_cursor(&s), cursor);
    let queued: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM outbox_batches WHERE snapshot_covers IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("batches");
    assert_eq!(queued, 0);
    assert!(
        !restored.entries.iter().any(|(_, e)| e.doc == doc_bytes(&c)),
        "the restored relay lacks the case"
    );

    // The next sync does it all.
    let report = s
        .sync_active(&mut WithLogId(&mut restored, second), &opts, &mut |_| {})
        .expect("sync after the restart");
    assert!(report.relay_restored);
    assert!(report.documents_resent >= 1);
    assert_eq!(stored_log_id(&s), Some(second.0.to_vec()));
    assert!(
        restored.entries.iter().any(|(_, e)| e.doc == doc_bytes(&c)
            && e.kind == EnvelopeKind::Snapshot
            && e.covers == 0),
        "the case went to the restored relay as a snapshot compacting nothing"
    );
    assert_eq!(s.outbox_len().expect("outbox"), 0);

    // Same log id again: nothing is pushed again.
    let held = restored.entries.len();
    let report = s
        .sync_active(&mut WithLogId(&mut restored, second), &opts, &mut |_| {})
        .expect("a normal sync");
    assert!(!report.relay_restored);
    assert_eq!(report.documents_resent, 0);
    assert_eq!(restored.entries.len(), held, "nothing was pushed again");
}

/// A relay that changes its log id within one sync (a hostile or broken
/// one) gets one start-over, then the sync stops with an error instead of
/// sending everything round after round.
#[test]
fn a_log_id_that_changes_twice_in_one_sync_stops_it() {
    use heartbridge_proto::venue_wire::LogId;
    let dir = tempfile::tempdir().expect("tmp");
    let team = a_team();
    let mut s = enrolled(dir.path(), "a", &team);
    s.new_case(&NewCase {
        alias: "小雨".into(),
        group: Group::ExamStress,
        risk: Risk::Low,
    })
    .expect("case");
    let mut relay = Log::default();
    let opts = SyncOptions::default();
    s.sync_active(
        &mut WithLogId(&mut relay, LogId([1; 16])),
        &opts,
        &mut |_| {},
    )
    .expect("first");
    let mut n = 1u8;
    let mut flapping = Scripted(|req: SyncRequest| answer(&req, req.cursor, vec![], false));
    // Wrap the scripted relay so each answer has another id.
    struct Flap<'a, T: Transport>(&'a mut T, &'a mut u8);
    impl<T: Transport> Transport for Flap<'_, T> {
        fn sync(
            &mut self,
            team: &Team,
            body: Vec<u8>,
        ) -> std::result::Result<Vec<u8>, TransportError> {
            let (req, _) = heartbridge_proto::venue_wire::decode_request(&body).expect("request");
            let inner = self.0.sync(team, encode(&req))?;
            *self.1 += 1;
            let resp: SyncResponse = decode("resp", &inner).expect("resp");
            Ok(heartbridge_proto::venue_wire::encode_response(
                &resp,
                &heartbridge_proto::venue_wire::ResponseExt {
                    venue: None,
                    log_id: Some(LogId([*self.1; 16])),
                },
            ))
        }
    }
    let err = s
        .sync_active(&mut Flap(&mut flapping, &mut n), &opts, &mut |_| {})
        .expect_err("a second change in one sync");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}
