//! Merge rules, checked with two Automerge forks of one case edited
//! concurrently, as two offline devices would.

use super::*;
use automerge::ActorId;

fn device(actor: u8) -> AutoCommit {
    AutoCommit::new().with_actor(ActorId::from(vec![actor; 16]))
}

fn new_case(risk: Risk) -> AutoCommit {
    let mut doc = device(1);
    let new = NewCase {
        alias: "小雨".into(),
        group: Group::LeftBehind,
        risk,
    };
    create(&mut doc, &new, "A", 1_000).unwrap();
    doc.commit();
    doc
}

/// Forks `base` for a second device and returns both.
fn fork(base: &mut AutoCommit, actor: u8) -> AutoCommit {
    base.fork().with_actor(ActorId::from(vec![actor; 16]))
}

fn sync_both(a: &mut AutoCommit, b: &mut AutoCommit) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

#[test]
fn concurrent_raise_and_lower_keep_the_highest_risk_on_both_devices() {
    let mut a = new_case(Risk::Medium);
    let mut b = fork(&mut a, 2);
    set_risk(&mut a, Risk::High).unwrap();
    a.commit();
    set_risk(&mut b, Risk::Low).unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    assert_eq!(risk(&a), (Risk::High, true));
    assert_eq!(read(&a, "x"), read(&b, "x"));
    // Whatever order Automerge picked as the "winner", lowering is never silent.
    for actors in [(3u8, 4u8), (4, 3)] {
        let mut x = new_case(Risk::Medium);
        x.set_actor(ActorId::from(vec![actors.0; 16]));
        let mut y = fork(&mut x, actors.1);
        set_risk(&mut x, Risk::Critical).unwrap();
        x.commit();
        set_risk(&mut y, Risk::None).unwrap();
        y.commit();
        sync_both(&mut x, &mut y);
        assert_eq!(risk(&x).0, Risk::Critical);
        assert_eq!(risk(&y).0, Risk::Critical);
    }
}

#[test]
fn a_deliberate_lowering_after_seeing_the_merge_sticks() {
    let mut a = new_case(Risk::Medium);
    let mut b = fork(&mut a, 2);
    set_risk(&mut a, Risk::High).unwrap();
    a.commit();
    set_risk(&mut b, Risk::Low).unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    // The supervisor reassesses on device B, having seen both values.
    set_risk(&mut b, Risk::Low).unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    assert_eq!(risk(&a), (Risk::Low, false));
    assert_eq!(risk(&b), (Risk::Low, false));
}

/// Found by the simulation (tests/sim.rs, the `seed_` test of the same
/// name): resolving a conflict to the value that already wins was stored
/// by Automerge as a delete of the losers only, so a concurrent lowering
/// overwrote the old winner and the case ended low.
#[test]
fn resolving_a_conflict_to_high_survives_a_concurrent_lowering() {
    for actors in [(1u8, 2u8, 3u8), (3, 2, 1), (2, 3, 1)] {
        let mut a = new_case(Risk::None);
        a.set_actor(ActorId::from(vec![actors.0; 16]));
        let mut b = fork(&mut a, actors.1);
        let mut c = fork(&mut a, actors.2);
        set_risk(&mut a, Risk::High).unwrap();
        a.commit();
        set_risk(&mut b, Risk::Low).unwrap();
        b.commit();
        sync_both(&mut a, &mut b);
        sync_both(&mut c, &mut a);
        // Both have seen {high, low}; concurrently, c resolves to high and
        // b to low.
        set_risk(&mut c, Risk::High).unwrap();
        c.commit();
        set_risk(&mut b, Risk::Low).unwrap();
        b.commit();
        sync_both(&mut b, &mut c);
        assert_eq!(risk(&b).0, Risk::High, "actors {actors:?}");
        assert_eq!(risk(&c).0, Risk::High, "actors {actors:?}");
    }
}

#[test]
fn concurrent_contacts_both_survive_in_time_order() {
    let mut a = new_case(Risk::Low);
    let mut b = fork(&mut a, 2);
    add_contact(
        &mut a,
        Channel::Hotline,
        "来电，谈到考试压力",
        Some(20),
        "A",
        2_000,
    )
    .unwrap();
    a.commit();
    add_contact(
        &mut b,
        Channel::InPerson,
        "面谈，情绪平稳",
        None,
        "B",
        1_500,
    )
    .unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    let case = read(&a, "x");
    assert_eq!(case, read(&b, "x"));
    let texts: Vec<_> = case.contacts.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["面谈，情绪平稳", "来电，谈到考试压力"]);
    assert_eq!(case.contacts[1].minutes, Some(20));
    assert_eq!(case.contacts[0].author, "B");
}

#[test]
fn concurrent_edits_of_one_note_merge_at_character_level() {
    let mut a = new_case(Risk::Low);
    let id = add_contact(
        &mut a,
        Channel::Online,
        "今天聊了学校的事。",
        None,
        "A",
        2_000,
    )
    .unwrap();
    a.commit();
    let mut b = fork(&mut a, 2);
    edit_contact(&mut a, &id, "今天聊了学校的事和室友。").unwrap();
    a.commit();
    edit_contact(&mut b, &id, "晚上，今天聊了学校的事。").unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    let text = read(&a, "x").contacts[0].text.clone();
    assert_eq!(text, "晚上，今天聊了学校的事和室友。");
    assert_eq!(read(&b, "x").contacts[0].text, text);
}

#[test]
fn concurrent_tags_and_followups_survive() {
    let mut a = new_case(Risk::Low);
    let mut b = fork(&mut a, 2);
    tag(&mut a, &["考试".into()], &[]).unwrap();
    add_followup(&mut a, "周五回访", Some("2026-12-04")).unwrap();
    a.commit();
    tag(&mut b, &["睡眠".into()], &[]).unwrap();
    add_followup(&mut b, "联系学校老师", None).unwrap();
    b.commit();
    sync_both(&mut a, &mut b);
    let case = read(&b, "x");
    assert_eq!(case.tags, ["睡眠", "考试"]);
    assert_eq!(case.followups.len(), 2);
    assert_eq!(case, read(&a, "x"));
}

#[test]
fn bad_values_are_refused_before_anything_changes() {
    let mut a = new_case(Risk::Low);
    let heads = a.get_heads();
    assert!(add_contact(&mut a, Channel::Hotline, "  ", None, "A", 1).is_err());
    assert!(add_contact(&mut a, Channel::Hotline, "ok", Some(-5), "A", 1).is_err());
    assert!(add_followup(&mut a, "x", Some("next friday")).is_err());
    assert!(edit_contact(&mut a, "nope", "x").is_err());
    a.commit();
    assert_eq!(a.get_heads(), heads);
}

#[test]
fn history_says_who_did_what() {
    let mut a = new_case(Risk::Low);
    set_risk(&mut a, Risk::High).unwrap();
    a.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(r#"{"by":"林老师","what":"risk → high"}"#)
            .with_time(5),
    );
    let h = history(&mut a);
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].author, "林老师");
    assert_eq!(h[1].what, "risk → high");
}
