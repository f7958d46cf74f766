use automerge::AutoCommit;

use super::*;
use crate::case::{self, NewCase};
use crate::model::{Channel, Group, Risk};

fn actor(device: &str, name: &str) -> Actor {
    Actor {
        device: device.into(),
        name: name.into(),
    }
}

fn new_doc(at: i64) -> AutoCommit {
    let mut doc = AutoCommit::new();
    case::create(
        &mut doc,
        &NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::Low,
        },
        "林老师",
        at,
    )
    .unwrap();
    create(&mut doc, &actor("aa01", "林老师"), at).unwrap();
    doc.commit();
    doc
}

/// Two devices of one document: the second forked from the first (as a
/// device that synced it), with its own actor.
fn fork(doc: &mut AutoCommit) -> AutoCommit {
    let mut other = doc.fork();
    other.set_actor(automerge::ActorId::random());
    other
}

fn merged_both_ways(a: &mut AutoCommit, b: &mut AutoCommit) -> (AutoCommit, AutoCommit) {
    let mut ab = a.fork();
    ab.merge(b).unwrap();
    let mut ba = b.fork();
    ba.merge(a).unwrap();
    (ab, ba)
}

#[test]
fn a_new_case_is_unreviewed_and_carried_by_its_creator() {
    let doc = new_doc(1_000);
    let c = case::read(&doc, "c1");
    assert_eq!(c.review_state, ReviewState::Unreviewed);
    assert_eq!(c.created_by_device, "aa01");
    assert_eq!(
        (c.assignee_device.as_str(), c.assignee_name.as_str()),
        ("aa01", "林老师")
    );
    assert_eq!(c.assignments.len(), 1);
    assert_eq!(c.escalation, "");
    assert!(!c.awaiting_receipt);
}

#[test]
fn two_supervisors_commenting_at_once_both_comments_survive_in_time_order() {
    let mut a = new_doc(1_000);
    let mut b = fork(&mut a);
    comment(&mut a, &actor("bb02", "督导王"), None, "先稳住情绪", 5_000).unwrap();
    a.commit();
    comment(
        &mut b,
        &actor("cc03", "督导李"),
        None,
        "记得联系学校",
        4_000,
    )
    .unwrap();
    b.commit();
    let (ab, ba) = merged_both_ways(&mut a, &mut b);
    for doc in [&ab, &ba] {
        let c = case::read(doc, "c1");
        let got: Vec<(&str, &str, &str)> = c
            .comments
            .iter()
            .map(|c| {
                (
                    c.author_name.as_str(),
                    c.author_device.as_str(),
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("督导李", "cc03", "记得联系学校"),
                ("督导王", "bb02", "先稳住情绪")
            ]
        );
    }
}

#[test]
fn a_comment_on_a_contact_names_it_and_a_missing_contact_is_refused() {
    let mut doc = new_doc(1_000);
    let cid = case::add_contact(&mut doc, Channel::Hotline, "来电", None, "林老师", 2_000).unwrap();
    comment(
        &mut doc,
        &actor("bb02", "督导王"),
        Some(&cid),
        "这次处理得好",
        3_000,
    )
    .unwrap();
    let c = case::read(&doc, "c1");
    assert_eq!(c.comments[0].contact.as_deref(), Some(cid.as_str()));
    assert!(matches!(
        comment(&mut doc, &actor("bb02", "督导王"), Some("nope"), "x", 4_000),
        Err(Error::NotFound {
            what: "contact",
            ..
        })
    ));
    assert!(matches!(
        comment(&mut doc, &actor("bb02", "督导王"), None, "  ", 4_000),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn lists_an_older_case_lacks_lose_nothing_when_two_devices_create_them_at_once() {
    // A case from before supervision: no comments list.
    let mut a = AutoCommit::new();
    case::create(
        &mut a,
        &NewCase {
            alias: "阿明".into(),
            group: Group::Migrant,
            risk: Risk::Low,
        },
        "林老师",
        1_000,
    )
    .unwrap();
    a.commit();
    let mut b = fork(&mut a);
    comment(&mut a, &actor("bb02", "督导王"), None, "一", 2_000).unwrap();
    a.commit();
    comment(&mut b, &actor("cc03", "督导李"), None, "二", 3_000).unwrap();
    b.commit();
    let (mut ab, ba) = merged_both_ways(&mut a, &mut b);
    for doc in [&ab, &ba] {
        let texts: Vec<String> = case::read(doc, "c1")
            .comments
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(texts, ["一", "二"]);
    }
    // A later comment lands too.
    comment(&mut ab, &actor("bb02", "督导王"), None, "三", 4_000).unwrap();
    assert_eq!(case::read(&ab, "c1").comments.len(), 3);
}

#[test]
fn concurrent_reassignments_keep_every_entry_and_agree_on_the_assignee() {
    let mut a = new_doc(1_000);
    let mut b = fork(&mut a);
    let sup_a = actor("bb02", "督导王");
    let sup_b = actor("cc03", "督导李");
    // Offline, each supervisor hands the case to someone else; b's is later.
    assign(&mut a, &sup_a, &actor("dd04", "小张"), "夜班交接", 10_000).unwrap();
    a.commit();
    assign(&mut b, &sup_b, &actor("ee05", "小刘"), "换人跟进", 20_000).unwrap();
    b.commit();
    let (mut ab, mut ba) = merged_both_ways(&mut a, &mut b);
    let ca = case::read(&ab, "c1");
    let cb = case::read(&ba, "c1");
    assert_eq!(ca.assignments, cb.assignments, "the same history on both");
    let hist: Vec<(&str, &str, &str, &str)> = ca
        .assignments
        .iter()
        .map(|a| {
            (
                a.from_device.as_str(),
                a.to_device.as_str(),
                a.by_device.as_str(),
                a.note.as_str(),
            )
        })
        .collect();
    assert_eq!(
        hist,
        [
            ("", "aa01", "aa01", ""),
            ("aa01", "dd04", "bb02", "夜班交接"),
            ("aa01", "ee05", "cc03", "换人跟进"),
        ]
    );
    // The greatest (at, id) wins on both: the later one.
    for c in [&ca, &cb] {
        assert_eq!(
            (c.assignee_device.as_str(), c.assignee_name.as_str()),
            ("ee05", "小刘")
        );
    }
    // The registers written after the next local write agree with the rule.
    write_assignee(&mut ab).unwrap();
    write_assignee(&mut ba).unwrap();
    for doc in [&ab, &ba] {
        assert_eq!(
            crate::docvalue::string(doc, &ROOT, "assignee_device").as_deref(),
            Some("ee05")
        );
    }
}

#[test]
fn concurrent_reassignments_at_the_same_millisecond_are_decided_by_id_the_same_everywhere() {
    let mut a = new_doc(1_000);
    let mut b = fork(&mut a);
    let ida = assign(
        &mut a,
        &actor("bb02", "王"),
        &actor("dd04", "小张"),
        "x",
        7_000,
    )
    .unwrap();
    a.commit();
    let idb = assign(
        &mut b,
        &actor("cc03", "李"),
        &actor("ee05", "小刘"),
        "y",
        7_000,
    )
    .unwrap();
    b.commit();
    let (ab, ba) = merged_both_ways(&mut a, &mut b);
    let expected = if ida > idb { "dd04" } else { "ee05" };
    assert_eq!(case::read(&ab, "c1").assignee_device, expected);
    assert_eq!(case::read(&ba, "c1").assignee_device, expected);
}

#[test]
fn escalation_rule_raises_only_into_high_or_critical() {
    assert!(escalates(Risk::None, Risk::High));
    assert!(escalates(Risk::Medium, Risk::Critical));
    assert!(escalates(Risk::High, Risk::Critical));
    assert!(!escalates(Risk::High, Risk::High));
    assert!(!escalates(Risk::Critical, Risk::High));
    assert!(!escalates(Risk::Low, Risk::Medium));
    assert!(!escalates(Risk::Critical, Risk::Low));
}

#[test]
fn a_receipt_ends_the_wait_and_gives_the_time_to_receipt() {
    let mut doc = new_doc(1_000);
    assert!(matches!(
        receipt(&mut doc, &actor("bb02", "王"), ReceiptMode::App, "x", 1_500),
        Err(Error::NotFound {
            what: "escalation",
            ..
        })
    ));
    let on_call = OnCallRef {
        name: "值班督导".into(),
        device: "bb02".into(),
    };
    let esc = escalate(
        &mut doc,
        &actor("aa01", "林老师"),
        Risk::Critical,
        EscalationSource::Screening,
        Some(&on_call),
        2_000,
    )
    .unwrap();
    let c = case::read(&doc, "c1");
    assert_eq!(
        (c.escalation.as_str(), c.awaiting_receipt),
        ("awaiting", true)
    );
    assert_eq!(c.escalations[0].on_call_name, "值班督导");
    assert_eq!(c.escalations[0].source, EscalationSource::Screening);
    let (answered, _) = receipt(
        &mut doc,
        &actor("bb02", "督导王"),
        ReceiptMode::App,
        "今晚再打一次电话确认安全",
        2_000 + 7 * 60_000,
    )
    .unwrap();
    assert_eq!(answered, esc);
    let c = case::read(&doc, "c1");
    assert_eq!(
        (c.escalation.as_str(), c.awaiting_receipt),
        ("acknowledged", false)
    );
    let e = &c.escalations[0];
    assert_eq!(e.ms_to_receipt, Some(7 * 60_000));
    let r = e.receipt.as_ref().expect("receipt");
    assert_eq!(
        (r.by_name.as_str(), r.mode, r.instructions.as_str()),
        ("督导王", ReceiptMode::App, "今晚再打一次电话确认安全")
    );
    // A new escalation waits again.
    escalate(
        &mut doc,
        &actor("aa01", "林老师"),
        Risk::Critical,
        EscalationSource::Hand,
        None,
        9_000_000,
    )
    .unwrap();
    assert!(case::read(&doc, "c1").awaiting_receipt);
}

#[test]
fn debriefs_show_the_newest_state_of_each_contact() {
    let mut doc = new_doc(1_000);
    let c1 = case::add_contact(&mut doc, Channel::Hotline, "a", None, "林", 2_000).unwrap();
    let me = actor("aa01", "林");
    debrief(&mut doc, &me, &c1, DebriefState::Offered, 2_001).unwrap();
    debrief(&mut doc, &me, &c1, DebriefState::Held, 3_000).unwrap();
    let c = case::read(&doc, "c1");
    assert_eq!(c.debriefs.len(), 1);
    assert_eq!(c.debriefs[0].state, DebriefState::Held);
}

#[test]
fn a_later_review_replaces_the_one_shown() {
    let mut doc = new_doc(1_000);
    review(
        &mut doc,
        &actor("bb02", "王"),
        ReviewState::NeedsFollowUp,
        2_000,
    )
    .unwrap();
    review(&mut doc, &actor("cc03", "李"), ReviewState::Reviewed, 3_000).unwrap();
    let c = case::read(&doc, "c1");
    assert_eq!(c.review_state, ReviewState::Reviewed);
    assert_eq!(
        (c.review_by.as_str(), c.review_by_device.as_str()),
        ("李", "cc03")
    );
}

#[test]
fn two_supervisors_acknowledging_at_once_both_receipts_survive_and_the_first_ends_the_wait() {
    let mut a = new_doc(1_000);
    escalate(
        &mut a,
        &actor("aa01", "林老师"),
        Risk::High,
        EscalationSource::Hand,
        None,
        2_000,
    )
    .unwrap();
    a.commit();
    let mut b = fork(&mut a);
    receipt(
        &mut a,
        &actor("bb02", "王"),
        ReceiptMode::App,
        "先打电话",
        9_000,
    )
    .unwrap();
    a.commit();
    receipt(
        &mut b,
        &actor("cc03", "李"),
        ReceiptMode::App,
        "联系家长",
        5_000,
    )
    .unwrap();
    b.commit();
    let (ab, ba) = merged_both_ways(&mut a, &mut b);
    for doc in [&ab, &ba] {
        let e = &case::read(doc, "c1").escalations[0];
        let by: Vec<&str> = e.receipts.iter().map(|r| r.by_name.as_str()).collect();
        assert_eq!(by, ["李", "王"]);
        assert_eq!(e.ms_to_receipt, Some(3_000));
    }
}

#[test]
fn concurrent_reviews_converge_on_the_later_one() {
    let mut a = new_doc(1_000);
    let mut b = fork(&mut a);
    review(&mut a, &actor("bb02", "王"), ReviewState::Reviewed, 8_000).unwrap();
    a.commit();
    review(
        &mut b,
        &actor("cc03", "李"),
        ReviewState::NeedsFollowUp,
        6_000,
    )
    .unwrap();
    b.commit();
    let (ab, ba) = merged_both_ways(&mut a, &mut b);
    for doc in [&ab, &ba] {
        let c = case::read(doc, "c1");
        assert_eq!(
            (c.review_state, c.review_by.as_str()),
            (ReviewState::Reviewed, "王")
        );
    }
}
