use heartbridge_proto::{Role, Secret, TeamId, TeamKey};

use super::*;
use crate::{Store, Team};

const H: i64 = 3_600_000;
/// 2026-12-01T00:00:00Z.
const DAY: i64 = 1_796_083_200_000;

fn store(dir: &tempfile::TempDir, role: Option<Role>) -> Store {
    let mut s = Store::init(
        &dir.path().join("p"),
        "林老师",
        &crate::testing::protection(),
    )
    .unwrap();
    if let Some(role) = role {
        s.set_team(&Team {
            relay_url: "http://127.0.0.1:9".into(),
            team_id: TeamId::from_hex(&"ab".repeat(16)).unwrap(),
            device_id: "cd".repeat(16),
            token: Secret::from_string("t".repeat(32)),
            key: TeamKey::from_bytes([7; 32]),
            epoch: 1,
            role,
            lead_sign_pk: [0; 32],
        })
        .unwrap();
    }
    s
}

fn roster(s: &mut Store) -> (String, String) {
    let hot = s
        .add_line(&NewLine {
            name: "热线".into(),
            kind: Some(LineKind::Hotline),
            phone: Some("400-000-1234".into()),
            ..NewLine::default()
        })
        .unwrap();
    let on_call = s
        .add_line(&NewLine {
            name: "值班督导".into(),
            kind: Some(LineKind::OnCall),
            ..NewLine::default()
        })
        .unwrap();
    assert_eq!((hot.as_str(), on_call.as_str()), ("hotline", "on-call"));
    // The hotline's volunteer 08-12, the on-call supervisors 08-20 and
    // 20-08; 张督导 covers 12-14 in the middle of 王督导's day slot.
    for (line, device, name, from, to) in [
        (&hot, "aa", "小李", 8, 12),
        (&on_call, "bb", "王督导", 8, 20),
        (&on_call, "cc", "张督导", 12, 14),
        (&on_call, "dd", "赵督导", 20, 32),
    ] {
        s.add_duty(&NewDuty {
            line: line.clone(),
            device: device.repeat(16),
            name: name.into(),
            from: DAY + from * H,
            to: DAY + to * H,
        })
        .unwrap();
    }
    (hot, on_call)
}

#[test]
fn settings_doc_id_is_the_hash_of_the_team_id() {
    let team = TeamId([1; 16]);
    let id = settings_doc_id(&team);
    let mut h = Sha256::new();
    h.update(b"heartbridge team settings v1");
    h.update([1u8; 16]);
    assert_eq!(id.as_str(), hex::encode(&h.finalize()[..16]));
    assert_ne!(id, settings_doc_id(&TeamId([2; 16])));
    assert_ne!(id, shift_report_doc_id(&team, ""));
}

#[test]
fn defaults_before_the_lead_wrote_anything() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Some(Role::Volunteer));
    let t = s.team_settings().unwrap();
    assert_eq!(t, TeamSettings::default());
    assert_eq!(t.suppression_k, 5);
    assert!(!t.lead_reads_cases);
    assert!(s.on_call_at(DAY + 10 * H).unwrap().is_none());
}

#[test]
fn on_call_at_names_the_on_call_lines_person_at_that_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, Some(Role::Lead));
    roster(&mut s);
    let who = |ms| s.on_call_at(ms).unwrap().map(|o| o.name);
    // The hotline's volunteer is on duty at 9, but is not on call.
    assert_eq!(who(DAY + 9 * H).as_deref(), Some("王督导"));
    // Overlap: the slot that started last.
    assert_eq!(who(DAY + 13 * H).as_deref(), Some("张督导"));
    assert_eq!(who(DAY + 14 * H).as_deref(), Some("王督导"));
    // The end is excluded; the night slot crosses midnight.
    assert_eq!(who(DAY + 20 * H).as_deref(), Some("赵督导"));
    assert_eq!(who(DAY + 31 * H).as_deref(), Some("赵督导"));
    let oc = s.on_call_at(DAY + 9 * H).unwrap().unwrap();
    assert_eq!(oc.device, "bb".repeat(16));
    assert_eq!(oc.line, "on-call");
    assert_eq!(oc.until, DAY + 20 * H);
}

#[test]
fn no_one_is_on_call_outside_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, None);
    roster(&mut s);
    assert!(s.on_call_at(DAY + 7 * H).unwrap().is_none());
    assert!(s.on_call_at(DAY + 32 * H).unwrap().is_none());
    // At 9 a hotline slot runs, but no on-call one would if 王督导's were gone.
    let slot = s
        .team_settings()
        .unwrap()
        .duty
        .iter()
        .find(|d| d.name == "王督导")
        .unwrap()
        .id
        .clone();
    s.remove_duty(&slot).unwrap();
    assert!(s.on_call_at(DAY + 9 * H).unwrap().is_none());
    assert_eq!(s.team_settings().unwrap().on_duty_at(DAY + 9 * H).len(), 1);
}

#[test]
fn the_phone_is_the_on_call_lines_else_the_teams_on_call_phone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, Some(Role::Lead));
    let (_, on_call) = roster(&mut s);
    let phone = |s: &Store| s.on_call_at(DAY + 9 * H).unwrap().unwrap().phone;
    // Neither set: no number (the hotline's own number is not the on-call one).
    assert_eq!(phone(&s), None);
    s.set_on_call_phone("138 0000 0000").unwrap();
    assert_eq!(phone(&s).as_deref(), Some("138 0000 0000"));
    // The on-call line gets a number of its own: that one wins.
    s.add_line(&NewLine {
        id: Some(on_call),
        name: "值班督导".into(),
        kind: Some(LineKind::OnCall),
        phone: Some("+86 10 1234 5678".into()),
    })
    .unwrap();
    assert_eq!(phone(&s).as_deref(), Some("+86 10 1234 5678"));
    // The slots on the line survived the line's edit.
    assert_eq!(s.team_settings().unwrap().duty.len(), 4);
}

#[test]
fn a_volunteers_setters_are_forbidden_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, Some(Role::Volunteer));
    let before = s.outbox_len().unwrap();
    let docs = s.document_ids().unwrap().len();
    let results: Vec<Error> = vec![
        s.set_on_call_phone("110110").unwrap_err(),
        s.set_lead_reads_cases(true).unwrap_err(),
        s.set_suppression_k(3).unwrap_err(),
        s.set_supervisor_group("bb", &["aa".into()]).unwrap_err(),
        s.add_line(&NewLine {
            name: "热线".into(),
            ..NewLine::default()
        })
        .unwrap_err(),
        s.remove_line("hotline").unwrap_err(),
        s.add_duty(&NewDuty {
            line: "hotline".into(),
            device: "aa".into(),
            name: "x".into(),
            from: 0,
            to: 1,
        })
        .unwrap_err(),
        s.remove_duty("00").unwrap_err(),
    ];
    for e in &results {
        assert_eq!(e.kind(), "forbidden", "{e}");
        assert!(e.to_string().contains("volunteer"), "{e}");
    }
    assert_eq!(s.outbox_len().unwrap(), before);
    assert_eq!(s.document_ids().unwrap().len(), docs);
    assert_eq!(s.team_settings().unwrap(), TeamSettings::default());
    // A supervisor may not either.
    let dir2 = tempfile::tempdir().unwrap();
    let mut sup = store(&dir2, Some(Role::Supervisor));
    assert_eq!(sup.set_suppression_k(3).unwrap_err().kind(), "forbidden");
    assert_eq!(sup.outbox_len().unwrap(), 0);
}

#[test]
fn the_lead_sets_every_field_and_they_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, Some(Role::Lead));
    s.set_lead_reads_cases(true).unwrap();
    s.set_suppression_k(10).unwrap();
    assert_eq!(s.set_suppression_k(10).unwrap(), Written::Unchanged);
    assert_eq!(s.set_suppression_k(0).unwrap_err().kind(), "invalid_input");
    let sup = "bb".repeat(16);
    s.set_supervisor_group(&sup, &["AA".repeat(16), "cc".repeat(16)])
        .unwrap();
    s.set_supervisor_group(&sup, &["cc".repeat(16), "dd".repeat(16)])
        .unwrap();
    let t = s.team_settings().unwrap();
    assert!(t.lead_reads_cases);
    assert_eq!(t.suppression_k, 10);
    let want: BTreeSet<String> = ["cc".repeat(16), "dd".repeat(16)].into();
    assert_eq!(t.supervisor_groups.get(&sup), Some(&want));
    s.set_supervisor_group(&sup, &[]).unwrap();
    assert!(s.team_settings().unwrap().supervisor_groups.is_empty());
    // A bad phone is refused without echoing it.
    let e = s.set_on_call_phone("call 555-1234").unwrap_err();
    assert_eq!(e.kind(), "invalid_input");
    assert!(!e.to_string().contains("555"), "{e}");
}

#[test]
fn lines_and_slots_are_checked_and_removing_a_line_removes_its_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, Some(Role::Lead));
    let (hot, _) = roster(&mut s);
    // A second hotline gets the next id; lines are found by name too.
    let hot2 = s
        .add_line(&NewLine {
            name: "夜间热线".into(),
            kind: Some(LineKind::Hotline),
            ..NewLine::default()
        })
        .unwrap();
    assert_eq!(hot2, "hotline-2");
    let t = s.team_settings().unwrap();
    assert_eq!(t.find_line("夜间热线").unwrap().id, "hotline-2");
    assert_eq!(
        t.find_line(&hot).unwrap().phone.as_deref(),
        Some("400-000-1234")
    );
    let bad = |s: &mut Store, line: &str, from: i64, to: i64| {
        s.add_duty(&NewDuty {
            line: line.into(),
            device: "aa".into(),
            name: "x".into(),
            from,
            to,
        })
        .unwrap_err()
        .kind()
    };
    assert_eq!(bad(&mut s, "nope", 0, 1), "not_found");
    assert_eq!(bad(&mut s, &hot, 5, 5), "invalid_input");
    assert_eq!(
        s.add_line(&NewLine {
            id: Some("Bad Id".into()),
            name: "x".into(),
            ..NewLine::default()
        })
        .unwrap_err()
        .kind(),
        "invalid_input"
    );
    assert_eq!(s.remove_line("热线").unwrap(), "hotline");
    let t = s.team_settings().unwrap();
    assert!(t.find_line("hotline").is_none());
    assert!(t.duty.iter().all(|d| d.line != "hotline"));
    assert_eq!(t.duty.len(), 3);
    assert_eq!(s.remove_duty("0000").unwrap_err().kind(), "not_found");
}

#[test]
fn settings_merge_into_another_device_and_debug_hides_the_phone() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut lead = store(&d1, Some(Role::Lead));
    let mut vol = store(&d2, Some(Role::Volunteer));
    roster(&mut lead);
    lead.set_on_call_phone("13800001111").unwrap();
    for item in lead.outbox().unwrap() {
        assert_eq!(item.kind, DocKind::TeamSettings);
        vol.apply_remote(&item.doc_id, item.kind, &item.bytes)
            .unwrap();
    }
    let t = vol.team_settings().unwrap();
    assert_eq!(t, lead.team_settings().unwrap());
    assert_eq!(
        vol.on_call_at(DAY + 9 * H)
            .unwrap()
            .unwrap()
            .phone
            .as_deref(),
        Some("13800001111")
    );
    let dbg = format!("{t:?} {:?}", vol.on_call_at(DAY + 9 * H).unwrap());
    assert!(
        !dbg.contains("13800001111") && !dbg.contains("王督导"),
        "{dbg}"
    );
}

#[test]
fn handover_notes_two_devices_wrote_at_once_both_survive_the_merge() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = store(&d1, Some(Role::Volunteer));
    let mut b = store(&d2, Some(Role::Volunteer));
    // Each device creates the (same) shift-report document on its own.
    for (s, note) in [(&mut a, "a 的交接"), (&mut b, "b 的交接")] {
        s.start_shift(None).unwrap();
        s.end_shift_with_note(Some(note)).unwrap().unwrap();
    }
    let (from_a, from_b) = (a.outbox().unwrap(), b.outbox().unwrap());
    assert_eq!(from_a[0].doc_id, from_b[0].doc_id);
    for item in from_b {
        a.apply_remote(&item.doc_id, item.kind, &item.bytes)
            .unwrap();
    }
    for item in from_a {
        b.apply_remote(&item.doc_id, item.kind, &item.bytes)
            .unwrap();
    }
    let texts = |s: &Store| {
        let mut v: Vec<String> = s
            .handover_notes(None)
            .unwrap()
            .into_iter()
            .map(|n| n.text)
            .collect();
        v.sort();
        v
    };
    assert_eq!(texts(&a), ["a 的交接", "b 的交接"]);
    assert_eq!(texts(&a), texts(&b));
}
