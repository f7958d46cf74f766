use super::*;
use crate::case::NewCase;
use crate::model::Channel;
use crate::ops::CaseUpdate;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::init(
        &dir.path().join("p"),
        "林老师",
        &crate::testing::protection(),
    )
    .unwrap();
    (dir, s)
}

/// A case opened at a chosen time (the queue orders by it).
fn case_at(s: &mut Store, alias: &str, risk: Risk, at: i64) -> DocId {
    let id = DocId::random();
    let new = NewCase {
        alias: alias.into(),
        group: Group::ExamStress,
        risk,
    };
    let me = s.me().unwrap();
    s.write(&id, DocKind::Case, true, "case opened", |doc, p| {
        case::create(doc, &new, &p.name, at)?;
        sup::create(doc, &me, at)
    })
    .unwrap();
    id
}

/// Makes this profile a member of a team with `role` (no relay needed for
/// the checks made before a write).
fn enroll_as(s: &Store, role: &str) {
    s.conn()
        .execute(
            "INSERT INTO team (id, relay_url, team_id, device_id, device_token, team_key, role, joined_at, lead_sign_pk)
             VALUES (1, 'http://127.0.0.1:1', ?1, ?2, 'token', zeroblob(32), ?3, 0, zeroblob(32))",
            params![hex::encode([7u8; 16]), hex::encode([1u8; 16]), role],
        )
        .unwrap();
}

fn aliases(list: &[CaseSummary]) -> Vec<&str> {
    list.iter().map(|c| c.alias.as_str()).collect()
}

fn set_risk(s: &mut Store, id: &DocId, risk: Risk) {
    s.update_case(
        id,
        &CaseUpdate {
            risk: Some(risk),
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn the_queue_lists_unreviewed_cases_high_and_critical_first_then_oldest() {
    let (_d, mut s) = store();
    case_at(&mut s, "low-old", Risk::Low, 1_000);
    case_at(&mut s, "high-new", Risk::High, 5_000);
    case_at(&mut s, "none-mid", Risk::None, 3_000);
    case_at(&mut s, "critical-mid", Risk::Critical, 4_000);
    let reviewed = case_at(&mut s, "critical-oldest-reviewed", Risk::Critical, 500);
    case_at(&mut s, "medium-newest", Risk::Medium, 6_000);
    let followup = case_at(&mut s, "high-old-needs-follow-up", Risk::High, 2_000);
    s.review_case(&reviewed, ReviewState::Reviewed).unwrap();
    s.review_case(&followup, ReviewState::NeedsFollowUp)
        .unwrap();
    let q = s.review_queue().unwrap();
    assert_eq!(
        aliases(&q),
        [
            "critical-mid",
            "high-new",
            "low-old",
            "none-mid",
            "medium-newest"
        ]
    );
    assert!(q.iter().all(|c| c.review_state == ReviewState::Unreviewed));
    // The reviewed case shows who reviewed it.
    let c = s.case(&reviewed).unwrap();
    assert_eq!(c.review_state, ReviewState::Reviewed);
    assert_eq!(c.review_by, "林老师");
    assert!(c.review_at.is_some());
}

#[test]
fn raising_risk_to_high_or_critical_escalates_and_lowering_or_staying_does_not() {
    let (_d, mut s) = store();
    let id = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::Low,
        })
        .unwrap();
    assert!(s.case(&id).unwrap().escalations.is_empty());
    set_risk(&mut s, &id, Risk::Medium);
    assert!(
        s.case(&id).unwrap().escalations.is_empty(),
        "medium is no escalation"
    );
    set_risk(&mut s, &id, Risk::High);
    let c = s.case(&id).unwrap();
    assert_eq!(c.escalations.len(), 1);
    assert_eq!(c.escalations[0].level, Risk::High);
    assert_eq!(c.escalations[0].source, EscalationSource::Hand);
    assert_eq!(c.escalations[0].by_name, "林老师");
    assert!(c.awaiting_receipt);
    set_risk(&mut s, &id, Risk::High);
    assert_eq!(s.case(&id).unwrap().escalations.len(), 1, "high → high");
    s.update_case_from(
        &id,
        &CaseUpdate {
            risk: Some(Risk::Critical),
            ..Default::default()
        },
        EscalationSource::Screening,
    )
    .unwrap();
    let c = s.case(&id).unwrap();
    assert_eq!(c.escalations.len(), 2, "high → critical");
    assert_eq!(c.escalations[1].level, Risk::Critical);
    assert_eq!(c.escalations[1].source, EscalationSource::Screening);
    set_risk(&mut s, &id, Risk::Low);
    set_risk(&mut s, &id, Risk::Medium);
    assert_eq!(s.case(&id).unwrap().escalations.len(), 2, "lowering");

    // Each escalation is a statistics fact in the write's transaction.
    let n: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM facts WHERE t = 'escalated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_case_opened_at_high_risk_is_an_escalation_from_the_start() {
    let (_d, mut s) = store();
    let id = s
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Migrant,
            risk: Risk::Critical,
        })
        .unwrap();
    let c = s.case(&id).unwrap();
    assert_eq!(c.escalations.len(), 1);
    assert!(c.awaiting_receipt);
}

#[test]
fn a_receipt_clears_awaiting_everywhere_the_case_appears() {
    let (_d, mut s) = store();
    let id = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::Low,
        })
        .unwrap();
    set_risk(&mut s, &id, Risk::Critical);
    let listed = s.list_cases(&Default::default()).unwrap();
    assert_eq!(
        (listed[0].escalation.as_str(), listed[0].awaiting_receipt),
        ("awaiting", true)
    );
    let rows = s.escalations().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].awaiting_receipt);

    // Standalone: this profile is its own supervisor; a phone record is
    // a receipt too.
    let r = s.record_phoned(&id, Some("已电话联系值班督导")).unwrap();
    let c = s.case(&id).unwrap();
    assert!(!c.awaiting_receipt);
    assert_eq!(c.escalation, "acknowledged");
    let e = &c.escalations[0];
    assert_eq!(r.escalation, e.id);
    let receipt = e.receipt.as_ref().unwrap();
    assert_eq!(receipt.mode, ReceiptMode::Phone);
    assert_eq!(e.ms_to_receipt, Some(receipt.at_ms - e.at_ms));
    assert!(e.ms_to_receipt.unwrap() >= 0);
    let listed = s.list_cases(&Default::default()).unwrap();
    assert!(!listed[0].awaiting_receipt);
    assert_eq!(s.review_queue().unwrap()[0].escalation, "acknowledged");
    assert_eq!(s.escalations().unwrap()[0].state, "acknowledged");
    let receipts: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM facts WHERE t = 'receipt'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(receipts, 1);
}

#[test]
fn the_escalations_view_puts_awaiting_first_oldest_first() {
    let (_d, mut s) = store();
    let mk = |s: &mut Store, alias: &str| {
        s.new_case(&NewCase {
            alias: alias.into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .unwrap()
    };
    let a = mk(&mut s, "A");
    let b = mk(&mut s, "B");
    let c = mk(&mut s, "C");
    mk(&mut s, "never");
    for id in [&a, &b, &c] {
        set_risk(&mut s, id, Risk::High);
    }
    s.acknowledge_escalation(&a, "按危机预案处理").unwrap();
    // Escalation times can tie within a millisecond: order by the stored
    // times, as the view does.
    let at = |s: &Store, id: &DocId| s.case(id).unwrap().escalations[0].at_ms;
    let mut awaiting = [(at(&s, &b), b.to_string()), (at(&s, &c), c.to_string())];
    awaiting.sort();
    let rows = s.escalations().unwrap();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.case.clone(), r.state.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (awaiting[0].1.clone(), "awaiting".to_owned()),
            (awaiting[1].1.clone(), "awaiting".to_owned()),
            (a.to_string(), "acknowledged".to_owned()),
        ]
    );
}

#[test]
fn a_contact_on_a_high_risk_case_offers_a_debrief_and_is_credited_to_its_device() {
    let (_d, mut s) = store();
    let id = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::Low,
        })
        .unwrap();
    let low = s
        .add_contact(&id, Channel::Hotline, "普通来电", None)
        .unwrap();
    set_risk(&mut s, &id, Risk::High);
    let high = s
        .add_contact(&id, Channel::Hotline, "危机来电", Some(40))
        .unwrap();
    let c = s.case(&id).unwrap();
    assert_eq!(c.debriefs.len(), 1);
    assert_eq!(c.debriefs[0].contact, high);
    assert_eq!(c.debriefs[0].state, DebriefState::Offered);
    s.set_debrief(&id, &high, DebriefState::Declined).unwrap();
    assert_eq!(
        s.case(&id).unwrap().debriefs[0].state,
        DebriefState::Declined
    );
    assert!(s.set_debrief(&id, &low, DebriefState::Offered).is_err());
    // Debriefs are never statistics.
    let n: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM facts WHERE body LIKE '%debrief%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_volunteer_is_refused_review_comment_ack_and_assign_and_nothing_is_written() {
    let (_d, mut s) = store();
    let id = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::High,
        })
        .unwrap();
    enroll_as(&s, "volunteer");
    let outbox = s.outbox_len().unwrap();
    let before = s.case(&id).unwrap();
    let forbidden = |e: Error| {
        assert_eq!(e.kind(), "forbidden");
        assert!(e.to_string().contains("volunteer"), "{e}");
    };
    forbidden(s.review_case(&id, ReviewState::Reviewed).unwrap_err());
    forbidden(s.comment_case(&id, None, "不该写入的评论").unwrap_err());
    forbidden(s.acknowledge_escalation(&id, "不该写入").unwrap_err());
    forbidden(
        s.assign_case(&id, &hex::encode([1u8; 16]), "x", "不该写入")
            .unwrap_err(),
    );
    assert_eq!(s.outbox_len().unwrap(), outbox, "nothing queued");
    assert_eq!(s.case(&id).unwrap(), before, "nothing written");
    // What any reader may do still works: a phone record, a handover note.
    s.record_phoned(&id, None).unwrap();
    s.add_handover_note(&id, "明早再回访").unwrap();
    let c = s.case(&id).unwrap();
    assert!(!c.awaiting_receipt);
    assert_eq!(c.handover_notes[0].text, "明早再回访");
    assert_eq!(c.handover_notes[0].by_device, hex::encode([1u8; 16]));
}

#[test]
fn an_escalation_names_the_supervisor_on_call_at_that_time() {
    use crate::duty::{LineKind, NewDuty, NewLine};
    let (_d, mut s) = store();
    let line = s
        .add_line(&NewLine {
            id: None,
            name: "督导值班".into(),
            kind: Some(LineKind::OnCall),
            phone: Some("13800000000".into()),
        })
        .unwrap();
    let now = now_ms();
    s.add_duty(&NewDuty {
        line: line.clone(),
        device: hex::encode([9u8; 16]),
        name: "值班督导周".into(),
        from: now - 3_600_000,
        to: now + 3_600_000,
    })
    .unwrap();
    // Someone else on call tomorrow is not named.
    s.add_duty(&NewDuty {
        line,
        device: hex::encode([8u8; 16]),
        name: "明天的督导".into(),
        from: now + 86_400_000,
        to: now + 90_000_000,
    })
    .unwrap();
    let id = s
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::Low,
        })
        .unwrap();
    set_risk(&mut s, &id, Risk::High);
    let e = &s.case(&id).unwrap().escalations[0];
    assert_eq!(e.on_call_name, "值班督导周");
    assert_eq!(e.on_call_device, hex::encode([9u8; 16]));
}
