//! Writes the seed corpus of every fuzz target from real data: real sync
//! bodies and envelopes sealing real Automerge changes, real admin bodies,
//! real invite codes, the sample handbooks, and the change bytes a real
//! store makes. `bash fuzz/run.sh seeds` runs it; the fuzzer then grows and
//! minimises the corpus.
//!
//! Usage: `seeds OUT_DIR HANDBOOKS_DIR`

use std::path::{Path, PathBuf};

use heartbridge_core::DocKind;
use heartbridge_fuzz::core_checks::ApplyHarness;
use heartbridge_fuzz::proto_checks::{
    fixed_author, fixed_case_doc, fixed_case_key, fixed_devices, fixed_key, fixed_lead,
    fixed_oversight, fixed_team,
};
use heartbridge_proto::case_seal::{
    frame, oversight_key_id, oversight_public, seal_case, seal_facts, CaseKey, Grant,
    OVERSIGHT_SCOPE,
};
use heartbridge_proto::identity::{join_proof, seal_epoch_key, Revocation, RosterMember};
use heartbridge_proto::{
    encode, seal_name, Ack, DeviceSecret, DocKindTag, EnrollRequest, EnrollResponse, Envelope,
    EnvelopeKind, ErrorBody, Invite, InviteRequest, InviteResponse, Member, MemberKey,
    MembersResponse, Pulled, Role, Roster, Secret, SignedRoster, SyncRequest, SyncResponse,
    TeamCreated, TeamId, TeamKey, PROTOCOL_VERSION,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: seeds OUT_DIR HANDBOOKS_DIR"));
    let handbooks = PathBuf::from(args.next().expect("usage: seeds OUT_DIR HANDBOOKS_DIR"));

    let docs = ApplyHarness::seed_docs();
    let key = fixed_key();
    let team = fixed_team();
    let doc_bytes = |id: &heartbridge_core::DocId| -> [u8; 16] {
        hex::decode(id.as_str())
            .expect("hex id")
            .try_into()
            .expect("16 bytes")
    };

    // Envelopes sealing real change bytes, signed by their author, as a
    // device pushes them.
    let (author, author_id) = fixed_author();
    let mut envelopes = Vec::new();
    for (id, _, bytes) in &docs.changes {
        envelopes.push(
            Envelope::seal(
                &key,
                &team,
                doc_bytes(id),
                EnvelopeKind::Change,
                DocKindTag::Case,
                bytes,
            )
            .expect("seal"),
        );
    }
    for env in &mut envelopes {
        env.sign(&team, author_id, &author);
    }
    for (id, _, bytes) in &docs.saved {
        let mut env = Envelope::seal(
            &key,
            &team,
            doc_bytes(id),
            EnvelopeKind::Snapshot,
            DocKindTag::Handbook,
            bytes,
        )
        .expect("seal");
        env.covers = 42;
        env.sign(&team, author_id, &author);
        envelopes.push(env);
    }

    // The lead's signed roster: the author and a volunteer as members, a
    // revoked device, the epoch key sealed to both.
    let lead = fixed_lead();
    let volunteer = DeviceSecret::generate();
    let members = [
        (author_id, Role::Lead, author.public()),
        ([0x0b; 16], Role::Volunteer, volunteer.public()),
    ];
    let roster = Roster {
        team: team.0,
        version: 3,
        epoch: 2,
        members: members
            .iter()
            .map(|&(device, role, public)| RosterMember {
                device,
                role,
                public,
                added_at: 1_790_000_000,
            })
            .collect(),
        revoked: vec![Revocation {
            device: [0x0c; 16],
            at: 1_790_000_500,
            epoch: 2,
            cutoff_seq: 77,
        }],
        keys: members
            .iter()
            .map(|&(device, _, public)| {
                seal_epoch_key(&team, 2, device, &public.kx, &key).expect("seal the epoch key")
            })
            .collect(),
        key_checks: vec![(2, key.check_value())],
    };
    let signed_roster = SignedRoster::sign(&roster, &lead);
    let member_keys: Vec<MemberKey> = members
        .iter()
        .enumerate()
        .map(|(i, &(device, role, public))| MemberKey {
            seq: i as u64 + 1,
            device,
            role,
            public,
            epoch: 1,
            proof: join_proof(&key, &team, &public, role),
            revoked: false,
        })
        .collect();

    // 1. /v1/sync bodies.
    let sync = out.join("sync_body");
    let request = |push: Vec<Envelope>, cursor, max_bytes| SyncRequest {
        v: PROTOCOL_VERSION,
        cursor,
        push,
        max_bytes,
        members_since: 0,
        roster_version: 0,
        roster: None,
    };
    write(&sync, "seed-noop", &encode(&request(vec![], 0, 0)));
    write(
        &sync,
        "seed-one-change",
        &encode(&request(envelopes[..1].to_vec(), 17, 0)),
    );
    write(
        &sync,
        "seed-all",
        &encode(&request(envelopes.clone(), 123_456, 64 * 1024)),
    );
    write(
        &sync,
        "seed-members-since",
        &encode(&SyncRequest {
            members_since: 2,
            roster_version: 3,
            ..request(envelopes[..1].to_vec(), 17, 0)
        }),
    );
    write(
        &sync,
        "seed-roster-upload",
        &encode(&SyncRequest {
            roster: Some(signed_roster.to_bytes()),
            ..request(vec![], 5, 0)
        }),
    );
    write(
        &sync,
        "seed-response",
        &encode(&SyncResponse {
            v: PROTOCOL_VERSION,
            roster: Some(signed_roster.to_bytes()),
            members: member_keys.clone(),
            acked: envelopes
                .iter()
                .enumerate()
                .map(|(i, e)| Ack {
                    id: e.id,
                    seq: i as u64 + 1,
                })
                .collect(),
            pull: envelopes
                .iter()
                .take(2)
                .enumerate()
                .map(|(i, e)| Pulled {
                    seq: i as u64 + 10,
                    envelope: e.clone(),
                })
                .collect(),
            cursor: 12,
            more: true,
            refused: vec![],
        }),
    );

    // 1b. Enrollment and admin JSON bodies, and the relay's answers.
    let admin = out.join("admin_json");
    let json = |v: &dyn erased::Json| v.to_json();
    let public = volunteer.public();
    let enroll = EnrollRequest {
        team_id: team.to_hex(),
        token: Secret::from_string(format!("{}.{}", team.to_hex(), "c2VjcmV0LXRva2Vu")),
        key_check: key.check_value(),
        name_sealed: seal_name(&key, &team, "林老师"),
        enrollment_id: None,
        sign_pk: hex::encode(public.sign),
        kx_pk: hex::encode(public.kx),
        epoch: 1,
        proof: hex::encode(join_proof(&key, &team, &public, Role::Volunteer)),
    };
    write(&admin, "seed-enroll", &json(&enroll));
    write(
        &admin,
        "seed-enroll-id",
        &json(&EnrollRequest {
            enrollment_id: Some("00112233445566778899aabbccddeeff".into()),
            ..enroll.clone()
        }),
    );
    for role in [Role::Volunteer, Role::Supervisor, Role::Lead] {
        write(
            &admin,
            &format!("seed-invite-{role}"),
            &json(&InviteRequest {
                role,
                ttl_secs: 3600,
                key_check: None,
            }),
        );
    }
    write(
        &admin,
        "seed-enrolled",
        &json(&EnrollResponse {
            device_id: "0123456789abcdef0123456789abcdef".into(),
            device_token: Secret::generate(),
            role: Role::Volunteer,
        }),
    );
    write(
        &admin,
        "seed-invite-response",
        &json(&InviteResponse {
            token: Secret::generate(),
            expires_at: 1_790_000_000,
        }),
    );
    write(
        &admin,
        "seed-members",
        &json(&MembersResponse {
            members: vec![Member {
                device_id: "0123456789abcdef0123456789abcdef".into(),
                role: Role::Lead,
                name_sealed: seal_name(&key, &team, "Lin"),
                enrolled_at: 1_790_000_000,
                last_sync_at: Some(1_790_000_100),
                revoked: false,
            }],
        }),
    );
    write(
        &admin,
        "seed-error",
        &json(&ErrorBody {
            error: "malformed".into(),
            message: "the JSON body does not match this endpoint".into(),
        }),
    );
    write(
        &admin,
        "seed-team-created",
        &json(&TeamCreated {
            team_id: team.to_hex(),
            lead_token: Secret::generate(),
        }),
    );

    // 2. Envelopes, in each mode of the target.
    let env_dir = out.join("envelope");
    for (i, e) in envelopes.iter().enumerate() {
        write(
            &env_dir,
            &format!("seed-open-{i}"),
            &with_mode(0, &encode(e)),
        );
    }
    for (i, (_, _, bytes)) in docs.changes.iter().chain(&docs.saved).enumerate() {
        write(
            &env_dir,
            &format!("seed-roundtrip-{i}"),
            &with_mode(1, &with_mode(i as u8, bytes)),
        );
        let plain = with_mode(1, bytes);
        let packed = zstd::bulk::compress(&plain, 3).expect("zstd");
        write(
            &env_dir,
            &format!("seed-packed-{i}"),
            &with_mode(2, &packed),
        );
        write(&env_dir, &format!("seed-plain-{i}"), &with_mode(3, &plain));
    }
    // A zstd bomb from a team member: 65 MiB of zeros in a few KB, past
    // the 64 MiB an envelope may unpack to.
    let bomb = zstd::bulk::compress(&vec![0u8; 65 << 20], 19).expect("zstd");
    write(&env_dir, "seed-packed-bomb", &with_mode(2, &bomb));
    // A part of a split payload: tag with the part flag, group, index, count.
    let mut part = vec![0x81];
    part.extend_from_slice(&[7; 16]);
    part.extend_from_slice(&1u32.to_be_bytes());
    part.extend_from_slice(&3u32.to_be_bytes());
    part.extend_from_slice(&docs.changes[0].2);
    write(&env_dir, "seed-plain-part", &with_mode(3, &part));

    // 3. Invite codes.
    let inv_dir = out.join("invite");
    for (i, role) in [Role::Volunteer, Role::Supervisor, Role::Lead]
        .into_iter()
        .enumerate()
    {
        let invite = Invite {
            relay: ["http://127.0.0.1:7070", "https://relay.example.org/hb", ""][i].into(),
            team: TeamId::random(),
            token: Secret::generate(),
            key: Some(TeamKey::generate()),
            key_check: String::new(),
            epoch: i as u32 + 1,
            role,
            expires_at: 1_790_086_400,
            lead_sign_pk: DeviceSecret::generate().public().sign,
            pin: None,
        };
        let code = invite.encode();
        write(
            &inv_dir,
            &format!("seed-code-{i}"),
            &with_mode(0, code.as_bytes()),
        );
        let wrapped = format!("  {}\n{}\n", &code[..20], &code[20..]);
        write(
            &inv_dir,
            &format!("seed-wrapped-{i}"),
            &with_mode(0, wrapped.as_bytes()),
        );
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&code[4..])
            .expect("base64");
        write(
            &inv_dir,
            &format!("seed-payload-{i}"),
            &with_mode(1, &raw[..raw.len() - 4]),
        );
    }

    // 3b. Signed rosters and envelope signatures (target `identity`).
    let id_dir = out.join("identity");
    let lead_pk = lead.public().sign;
    let author_pk = author.public().sign;
    let with_key = |mode: u8, pk: &[u8; 32], bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(pk);
        v.extend_from_slice(bytes);
        v
    };
    write(
        &id_dir,
        "seed-roster",
        &with_key(0, &lead_pk, &signed_roster.to_bytes()),
    );
    write(
        &id_dir,
        "seed-roster-other-key",
        &with_key(0, &author_pk, &signed_roster.to_bytes()),
    );
    write(
        &id_dir,
        "seed-roster-body",
        &with_mode(1, &signed_roster.body),
    );
    let empty = Roster {
        members: vec![],
        revoked: vec![],
        keys: vec![],
        ..roster.clone()
    };
    write(
        &id_dir,
        "seed-roster-body-empty",
        &with_mode(1, &SignedRoster::sign(&empty, &lead).body),
    );
    for (i, e) in envelopes.iter().enumerate() {
        write(
            &id_dir,
            &format!("seed-signed-{i}"),
            &with_key(2, &author_pk, &encode(e)),
        );
        write(
            &id_dir,
            &format!("seed-sign-{i}"),
            &with_mode(3, &encode(e)),
        );
    }

    // 3c. Need to know (target `case_seal`): real grants, case payloads
    // and facts made by `heartbridge_proto::case_seal`, with the fixed keys
    // the target opens with, and batches of them framed.
    let cs_dir = out.join("case_seal");
    let devices = fixed_devices();
    let case_key = fixed_case_key();
    let older = CaseKey::from_bytes([0xc9; 32]);
    let grant = Grant::make(
        &team,
        fixed_case_doc(),
        case_key.id(),
        2,
        &[(1, older.clone()), (2, case_key.clone())],
        &[
            (devices[0].1, devices[0].0.public().kx),
            (devices[1].1, devices[1].0.public().kx),
        ],
    );
    let oversight_pk = oversight_public(&fixed_oversight());
    let oversight_grant = Grant::make(
        &team,
        OVERSIGHT_SCOPE,
        oversight_key_id(&oversight_pk),
        1,
        &[(1, fixed_oversight())],
        &[(devices[0].1, devices[0].0.public().kx)],
    );
    write(&cs_dir, "seed-grant", &with_mode(1, &grant.to_bytes()));
    write(
        &cs_dir,
        "seed-grant-oversight",
        &with_mode(1, &oversight_grant.to_bytes()),
    );
    // Mode 1's second half reads (generation, recipient key, (gen, key)...).
    let mut make = 3u32.to_be_bytes().to_vec();
    make.extend_from_slice(&DeviceSecret::generate().public().kx);
    for (g, k) in [(1u32, &older), (2, &case_key)] {
        make.extend_from_slice(&g.to_be_bytes());
        make.extend_from_slice(k.expose());
    }
    write(&cs_dir, "seed-grant-make", &with_mode(1, &make));
    let mut batch = frame(&grant.to_bytes());
    batch.extend(frame(&oversight_grant.to_bytes()));
    batch.extend(frame(b""));
    write(&cs_dir, "seed-frames-grants", &with_mode(0, &batch));
    let mut facts_batch = Vec::new();
    for (i, (id, _, bytes)) in docs.changes.iter().enumerate().take(4) {
        let sealed = seal_case(&case_key, &team, &fixed_case_doc(), bytes);
        write(&cs_dir, &format!("seed-case-{i}"), &with_mode(2, &sealed));
        let mut keyed = case_key.expose().to_vec();
        keyed.extend_from_slice(bytes);
        write(
            &cs_dir,
            &format!("seed-determinism-{i}"),
            &with_mode(4, &keyed),
        );
        let facts = format!(
            "[{{\"case\":\"{}\",\"minutes\":{}}}]",
            id.as_str(),
            15 * (i + 1)
        );
        let sealed = seal_facts(&oversight_pk, &team, facts.as_bytes()).expect("seal facts");
        write(&cs_dir, &format!("seed-facts-{i}"), &with_mode(3, &sealed));
        facts_batch.extend(frame(&sealed));
    }
    write(&cs_dir, "seed-frames-facts", &with_mode(0, &facts_batch));
    write(
        &cs_dir,
        "seed-case-empty",
        &with_mode(2, &seal_case(&case_key, &team, &fixed_case_doc(), b"")),
    );

    // 4. Handbooks: the samples as shipped, and with CRLF and a BOM.
    let hb_dir = out.join("handbook");
    let mut n = 0;
    for lang in ["zh", "en"] {
        let mut files: Vec<_> = std::fs::read_dir(handbooks.join(lang))
            .expect("handbooks dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("handbook");
            write(&hb_dir, &format!("seed-{lang}-{n}"), text.as_bytes());
            let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
            write(&hb_dir, &format!("seed-{lang}-{n}-crlf"), crlf.as_bytes());
            n += 1;
        }
    }
    write(
        &hb_dir,
        "seed-small",
        b"---\ntitle: \"T\"\n# c\nslug: s\n---\nintro\n# A #\n```\n# not\n```\n## B\nb\n",
    );

    // 5. Change bytes for Store::apply_remote (first byte: which document).
    // The harness's store has other ids: a change of the seed store's case
    // applies to the harness's case as a concurrent history.
    let apply = out.join("apply_remote");
    let existing = |kind: DocKind| if kind == DocKind::Case { 0 } else { 1 };
    for (i, (_, kind, bytes)) in docs.changes.iter().enumerate() {
        write(
            &apply,
            &format!("seed-change-{i}"),
            &with_mode(existing(*kind), bytes),
        );
    }
    for (i, (_, kind, bytes)) in docs.saved.iter().enumerate() {
        let fresh = if *kind == DocKind::Case { 2 } else { 3 };
        write(&apply, &format!("seed-saved-{i}"), &with_mode(fresh, bytes));
        write(
            &apply,
            &format!("seed-saved-into-{i}"),
            &with_mode(existing(*kind), bytes),
        );
    }
    let case_changes: Vec<u8> = docs
        .changes
        .iter()
        .filter(|(_, k, _)| *k == DocKind::Case)
        .flat_map(|(_, _, b)| b.clone())
        .collect();
    write(&apply, "seed-concatenated", &with_mode(2, &case_changes));
    // 6. The relay target: the sync bodies to /v1/sync (mode 0 as they
    // are; 4 and 5 re-signed by the volunteer and by the lead), the admin
    // bodies to /v1/join, /v1/invites and /v1/claim (modes 1 to 3).
    let relay = out.join("relay");
    for (dir, modes) in [
        ("sync_body", &[0u8, 4, 5][..]),
        ("admin_json", &[1, 2, 3][..]),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(out.join(dir))
            .expect("seed dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            let body = std::fs::read(&f).expect("seed");
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            for &m in modes {
                write(&relay, &format!("{name}-to-{m}"), &with_mode(m, &body));
            }
        }
    }
    println!("seeds written to {}", out.display());
}

/// Serialising the admin bodies through one closure.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec_pretty(self).expect("json")
        }
    }
}
