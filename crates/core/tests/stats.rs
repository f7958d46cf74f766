//! Statistics over a fixed data set of facts with hand-computed
//! expectations (every measure, every dimension, the period's edges,
//! small-cell and secondary suppression), the CSV of an end-to-end run
//! through real `Store` operations scanned for every alias, note and name
//! used, and the role check.
//!
//! The data set (times UTC, the period 2026-03-02 ..= 2026-03-15; ISO
//! weeks W10 = 03-02..03-08, W11 = 03-09..03-15):
//!
//! | case | opened | group | risk |
//! | --- | --- | --- | --- |
//! | A | 02-27 10:00 | migrant | low; high 03-09 12:00 (escalation a1, receipt +20 min); critical 03-13 08:00 (a2, +90 min) |
//! | B | 03-02 00:00:00.000 | exam-stress; left-behind 03-08 | medium; high 03-14 10:00 (b1, no receipt) |
//! | C | 03-10 09:00 | migrant | high (escalation c1 at opening, +42 min) |
//! | E | 03-15 23:59:59.999 | hardship | low |
//! | D | 03-16 00:00 (after the period) | hardship | low |
//!
//! Contacts: A hotline 03-01 23:59:59.999 (before), 03-03, 03-04, online
//! 03-05, hotline 03-09 13:00 (high), in-person 03-13 09:00 (critical);
//! B hotline 03-02 00:00 and 03-06, in-person 03-11 and 03-14 11:00 (high);
//! C in-person 03-10, hotline 03-11, in-person 03-12 ×2 and 03-13; E online
//! 03-15 23:59:59.999; D hotline 03-16 00:00 (after).
//!
//! Follow-ups: F1 (A) added 02-25 due 03-01, never done; F2 (B) added 03-03
//! due 03-06, done 03-05; F3 (C) added 03-10 due 03-12, done 03-14; F4 (B)
//! added 03-04 due 03-15, never done; F5 (E) added 03-15 due 03-20; F6 (A)
//! added 03-02 due 03-08, done 03-07, reopened 03-08.
//!
//! Shifts: hotline 03-03 08:00–12:00 (4 h), online 03-10 18:00–21:30
//! (3.5 h), venue 03-15 22:00–03-16 02:00 (4 h), no line 03-12 09:00–11:00
//! (2 h), and 03-01 20:00–23:00 (3 h, before).

use heartbridge_core::proto::{Role, Secret, TeamId, TeamKey};
use heartbridge_core::stats::Dim;
use heartbridge_core::{
    testing, CaseUpdate, Channel, Fact, Group, Measures, NewCase, Risk, Stats, StatsQuery, Store,
    Team,
};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddd";
const E: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// 2026-`month`-`day` `h`:`m` UTC in ms.
fn t(month: u8, day: u8, h: u8, m: u8) -> i64 {
    let d =
        time::Date::from_calendar_date(2026, time::Month::try_from(month).unwrap(), day).unwrap();
    d.with_hms(h, m, 0).unwrap().assume_utc().unix_timestamp() * 1000
}

struct Ids(u32);
impl Ids {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("fact-{:04}", self.0)
    }
}

fn dataset() -> Vec<Fact> {
    let mut ids = Ids(0);
    let mut v = Vec::new();
    let opened = |ids: &mut Ids, case: &str, at, group, risk| Fact::CaseOpened {
        id: ids.next(),
        case: case.into(),
        at,
        group,
        risk,
        channel: None,
    };
    v.push(opened(
        &mut ids,
        A,
        t(2, 27, 10, 0),
        Group::Migrant,
        Risk::Low,
    ));
    v.push(opened(
        &mut ids,
        B,
        t(3, 2, 0, 0),
        Group::ExamStress,
        Risk::Medium,
    ));
    v.push(opened(
        &mut ids,
        C,
        t(3, 10, 9, 0),
        Group::Migrant,
        Risk::High,
    ));
    v.push(opened(
        &mut ids,
        E,
        t(3, 16, 0, 0) - 1,
        Group::Hardship,
        Risk::Low,
    ));
    v.push(opened(
        &mut ids,
        D,
        t(3, 16, 0, 0),
        Group::Hardship,
        Risk::Low,
    ));

    let mut esc = |ids: &mut Ids, case: &str, e: &str, at, level, receipt: Option<i64>| {
        v.push(Fact::RiskSet {
            id: ids.next(),
            case: case.into(),
            at,
            risk: level,
        });
        v.push(Fact::Escalated {
            id: ids.next(),
            case: case.into(),
            escalation: e.into(),
            at,
            level,
        });
        if let Some(min) = receipt {
            v.push(Fact::Receipt {
                id: ids.next(),
                case: case.into(),
                escalation: e.into(),
                at: at + min * 60_000,
                mode: "app".into(),
            });
        }
    };
    esc(&mut ids, A, "a1", t(3, 9, 12, 0), Risk::High, Some(20));
    esc(&mut ids, A, "a2", t(3, 13, 8, 0), Risk::Critical, Some(90));
    esc(&mut ids, B, "b1", t(3, 14, 10, 0), Risk::High, None);
    esc(&mut ids, C, "c1", t(3, 10, 9, 0), Risk::High, Some(42));
    v.push(Fact::GroupSet {
        id: ids.next(),
        case: B.into(),
        at: t(3, 8, 0, 0),
        group: Group::LeftBehind,
    });

    use Channel::{Hotline as H, InPerson as P, Online as O};
    let contacts: [(&str, i64, Channel, Group, Risk); 17] = [
        (A, t(3, 2, 0, 0) - 1, H, Group::Migrant, Risk::Low),
        (A, t(3, 3, 10, 0), H, Group::Migrant, Risk::Low),
        (A, t(3, 4, 10, 0), H, Group::Migrant, Risk::Low),
        (A, t(3, 5, 10, 0), O, Group::Migrant, Risk::Low),
        (A, t(3, 9, 13, 0), H, Group::Migrant, Risk::High),
        (A, t(3, 13, 9, 0), P, Group::Migrant, Risk::Critical),
        (B, t(3, 2, 0, 0), H, Group::ExamStress, Risk::Medium),
        (B, t(3, 6, 10, 0), H, Group::ExamStress, Risk::Medium),
        (B, t(3, 11, 10, 0), P, Group::LeftBehind, Risk::Medium),
        (B, t(3, 14, 11, 0), P, Group::LeftBehind, Risk::High),
        (C, t(3, 10, 9, 30), P, Group::Migrant, Risk::High),
        (C, t(3, 11, 10, 0), H, Group::Migrant, Risk::High),
        (C, t(3, 12, 10, 0), P, Group::Migrant, Risk::High),
        (C, t(3, 12, 15, 0), P, Group::Migrant, Risk::High),
        (C, t(3, 13, 10, 0), P, Group::Migrant, Risk::High),
        (E, t(3, 16, 0, 0) - 1, O, Group::Hardship, Risk::Low),
        (D, t(3, 16, 0, 0), H, Group::Hardship, Risk::Low),
    ];
    for (case, at, channel, group, risk) in contacts {
        v.push(Fact::Contact {
            id: ids.next(),
            case: case.into(),
            at,
            channel,
            minutes: Some(30),
            group,
            risk,
        });
    }

    let added = |ids: &mut Ids, case: &str, f: &str, at, due: &str| Fact::FollowupAdded {
        id: ids.next(),
        case: case.into(),
        followup: f.into(),
        at,
        due: Some(due.into()),
    };
    let done = |ids: &mut Ids, case: &str, f: &str, at| Fact::FollowupDone {
        id: ids.next(),
        case: case.into(),
        followup: f.into(),
        at,
    };
    v.push(added(&mut ids, A, "f1", t(2, 25, 9, 0), "2026-03-01"));
    v.push(added(&mut ids, B, "f2", t(3, 3, 9, 0), "2026-03-06"));
    v.push(done(&mut ids, B, "f2", t(3, 5, 9, 0)));
    v.push(added(&mut ids, C, "f3", t(3, 10, 9, 0), "2026-03-12"));
    v.push(done(&mut ids, C, "f3", t(3, 14, 9, 0)));
    v.push(added(&mut ids, B, "f4", t(3, 4, 9, 0), "2026-03-15"));
    v.push(added(&mut ids, E, "f5", t(3, 15, 9, 0), "2026-03-20"));
    v.push(added(&mut ids, A, "f6", t(3, 2, 9, 0), "2026-03-08"));
    v.push(done(&mut ids, A, "f6", t(3, 7, 9, 0)));
    v.push(Fact::FollowupReopened {
        id: ids.next(),
        case: A.into(),
        followup: "f6".into(),
        at: t(3, 8, 9, 0),
    });

    let shift = |ids: &mut Ids, kind: Option<&str>, start, end| Fact::Shift {
        id: ids.next(),
        line_kind: kind.map(str::to_owned),
        start,
        end,
    };
    v.push(shift(
        &mut ids,
        Some("hotline"),
        t(3, 3, 8, 0),
        t(3, 3, 12, 0),
    ));
    v.push(shift(
        &mut ids,
        Some("online"),
        t(3, 10, 18, 0),
        t(3, 10, 21, 30),
    ));
    v.push(shift(
        &mut ids,
        Some("venue"),
        t(3, 15, 22, 0),
        t(3, 16, 2, 0),
    ));
    v.push(shift(&mut ids, None, t(3, 12, 9, 0), t(3, 12, 11, 0)));
    v.push(shift(
        &mut ids,
        Some("hotline"),
        t(3, 1, 20, 0),
        t(3, 1, 23, 0),
    ));
    v
}

fn profile() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::init(&dir.path().join("p"), "林老师", &testing::protection()).unwrap();
    (dir, s)
}

fn loaded() -> (tempfile::TempDir, Store) {
    let (d, mut s) = profile();
    let facts = dataset();
    assert_eq!(s.ingest_facts(&facts).unwrap(), facts.len());
    (d, s)
}

fn q(from: &str, to: &str, by: &[Dim]) -> StatsQuery {
    StatsQuery {
        from: Some(from.into()),
        to: Some(to.into()),
        by: by.to_vec(),
        utc_offset_minutes: 0,
    }
}

/// contacts, cases, new cases, escalations, receipts, median minutes to
/// receipt, follow-ups done, follow-ups overdue, volunteer hours.
type Row = (i64, i64, i64, i64, i64, Option<f64>, i64, i64, f64);

fn row(m: &Measures) -> Row {
    (
        m.contacts,
        m.cases,
        m.new_cases,
        m.escalations,
        m.receipts,
        m.median_minutes_to_receipt,
        m.followups_done,
        m.followups_overdue,
        m.volunteer_hours,
    )
}

fn cell(s: &Stats, key: &[&str]) -> Row {
    let found: Vec<_> = s
        .rows
        .iter()
        .chain(&s.margins)
        .filter(|c| c.key == key)
        .collect();
    match found.as_slice() {
        [one] => row(&one.measures),
        [] => (0, 0, 0, 0, 0, None, 0, 0, 0.0),
        _ => panic!("key {key:?} twice"),
    }
}

const TOTAL: Row = (15, 4, 3, 4, 3, Some(42.0), 3, 3, 13.5);

#[test]
fn every_measure_over_the_period_matches_the_hand_count() {
    let (_d, s) = loaded();
    let st = s.stats(&q("2026-03-02", "2026-03-15", &[])).unwrap();
    assert_eq!(
        (st.from.as_str(), st.to.as_str()),
        ("2026-03-02", "2026-03-15")
    );
    assert_eq!(row(&st.total), TOTAL);
    assert!(st.rows.is_empty() && st.margins.is_empty());
}

#[test]
fn by_channel_group_risk_and_week_match_the_hand_count() {
    let (_d, s) = loaded();
    let by = |d: Dim| s.stats(&q("2026-03-02", "2026-03-15", &[d])).unwrap();
    type Table<'a> = &'a [(&'a str, Row)];
    let check = |st: &Stats, table: Table| {
        assert_eq!(row(&st.total), TOTAL, "{:?}", st.by);
        for (label, expect) in table {
            assert_eq!(cell(st, &[label]), *expect, "{:?} = {label}", st.by);
        }
        assert_eq!(
            st.rows.len(),
            table.len(),
            "{:?}: rows {:?}",
            st.by,
            st.rows
        );
    };
    // A contact's channel is its own; for the rest, the case's first
    // contact's (A, B hotline; C in-person; E online); a shift's, its line's.
    check(
        &by(Dim::Channel),
        &[
            ("hotline", (6, 3, 1, 3, 2, Some(55.0), 2, 3, 4.0)),
            ("in-person", (7, 3, 1, 1, 1, Some(42.0), 1, 0, 4.0)),
            ("online", (2, 2, 1, 0, 0, None, 0, 0, 3.5)),
            ("unknown", (0, 0, 0, 0, 0, None, 0, 0, 2.0)),
        ],
    );
    // Group at the time: B was exam-stress until 03-08, left-behind after.
    check(
        &by(Dim::Group),
        &[
            ("migrant", (10, 2, 1, 3, 3, Some(42.0), 2, 2, 0.0)),
            ("exam-stress", (2, 1, 1, 0, 0, None, 1, 0, 0.0)),
            ("left-behind", (2, 1, 0, 1, 0, None, 0, 1, 0.0)),
            ("hardship", (1, 1, 1, 0, 0, None, 0, 0, 0.0)),
            ("unknown", (0, 0, 0, 0, 0, None, 0, 0, 13.5)),
        ],
    );
    // Risk at the time; overdue is counted at the period's end (A critical,
    // B high).
    check(
        &by(Dim::Risk),
        &[
            ("low", (4, 2, 1, 0, 0, None, 1, 0, 0.0)),
            ("medium", (3, 1, 1, 0, 0, None, 1, 0, 0.0)),
            ("high", (7, 3, 1, 3, 2, Some(31.0), 1, 1, 0.0)),
            ("critical", (1, 1, 0, 1, 1, Some(90.0), 0, 2, 0.0)),
            ("unknown", (0, 0, 0, 0, 0, None, 0, 0, 13.5)),
        ],
    );
    // Overdue at each week's end: W10 (03-09 00:00) F1 and the reopened F6;
    // W11 (03-16 00:00) F1, F4 (due the last day), F6.
    check(
        &by(Dim::Week),
        &[
            ("2026-W10", (5, 2, 1, 0, 0, None, 2, 2, 4.0)),
            ("2026-W11", (10, 4, 2, 4, 3, Some(42.0), 1, 3, 9.5)),
        ],
    );
}

#[test]
fn by_month_splits_a_period_across_two_months() {
    let (_d, s) = loaded();
    let st = s
        .stats(&q("2026-02-23", "2026-03-15", &[Dim::Month]))
        .unwrap();
    // February: only A's opening (F1 is due 03-01: not overdue by 03-01 00:00).
    assert_eq!(cell(&st, &["2026-02"]), (0, 0, 1, 0, 0, None, 0, 0, 0.0));
    // March 1-15: A's contact at 03-01 23:59:59.999 and the 3 h shift of
    // 03-01 count now.
    assert_eq!(
        cell(&st, &["2026-03"]),
        (16, 4, 3, 4, 3, Some(42.0), 3, 3, 16.5)
    );
    assert_eq!(row(&st.total), (16, 4, 4, 4, 3, Some(42.0), 3, 3, 16.5));
}

#[test]
fn the_period_includes_its_first_and_last_millisecond_and_nothing_beyond() {
    let (_d, s) = loaded();
    let day = |d: &str| row(&s.stats(&q(d, d, &[])).unwrap().total);
    // 03-02: B opened and contacted at 00:00:00.000; A's contact at
    // 03-01 23:59:59.999 is not in it. F1 (due 03-01) is overdue at its end.
    assert_eq!(day("2026-03-02"), (1, 1, 1, 0, 0, None, 0, 1, 0.0));
    // 03-15: E opened and contacted at 23:59:59.999, the venue shift began
    // 22:00; overdue at 03-16 00:00: F1, F4, F6.
    assert_eq!(day("2026-03-15"), (1, 1, 1, 0, 0, None, 0, 3, 4.0));
    // 03-16: D's opening and contact at 00:00:00.000.
    assert_eq!(day("2026-03-16"), (1, 1, 1, 0, 0, None, 0, 3, 0.0));
    // Days begin at the query's offset: at UTC+8, 03-02 is 03-01 16:00Z to
    // 03-02 16:00Z and holds both of the first contacts.
    let mut east = q("2026-03-02", "2026-03-02", &[]);
    east.utc_offset_minutes = 480;
    assert_eq!(s.stats(&east).unwrap().total.contacts, 2);
    // A period that ends before it begins is refused.
    let err = s.stats(&q("2026-03-05", "2026-03-04", &[])).unwrap_err();
    assert_eq!(err.kind(), "invalid_input");
    let err = s.stats(&q("2026-3-5", "2026-03-04", &[])).unwrap_err();
    assert_eq!(err.kind(), "invalid_input");
}

/// The CSV's data rows as maps from column to value.
fn parse_csv(csv: &str) -> (String, Vec<String>, Vec<Vec<String>>) {
    let mut lines = csv.lines();
    let meta = lines.next().unwrap().to_owned();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    (meta, header, rows)
}

fn csv_row<'a>(rows: &'a [Vec<String>], key: &[(usize, &str)]) -> &'a [String] {
    let found: Vec<_> = rows
        .iter()
        .filter(|r| key.iter().all(|(i, v)| r[*i] == *v))
        .collect();
    assert_eq!(found.len(), 1, "{key:?}");
    found[0]
}

const HEADER: &str = "week,month,channel,group,risk,contacts,cases,new_cases,escalations,median_minutes_to_receipt,followups_done,followups_overdue,volunteer_hours";

#[test]
fn the_csv_hides_small_counts_and_the_cell_a_total_would_give_away() {
    let (_d, s) = loaded();
    let csv = s
        .stats_csv(&q("2026-03-02", "2026-03-15", &[Dim::Channel]), 5)
        .unwrap();
    let (meta, header, rows) = parse_csv(&csv);
    assert!(meta.starts_with("# heartbridge statistics; period=2026-03-02..2026-03-15; utc_offset=+00:00; generated_at=20"), "{meta}");
    assert!(meta.ends_with("; k=5; schema=1"), "{meta}");
    assert_eq!(header.join(","), HEADER);
    let r = |ch: &str| {
        csv_row(
            &rows,
            &[(0, "all"), (1, "all"), (2, ch), (3, "all"), (4, "all")],
        )[5..]
            .join(",")
    };
    // Contacts: online 2 is hidden; then the total 15 would give it away
    // (15 - 6 - 7), so the next smallest, hotline 6, is hidden too.
    // Every other count is at most 5 here, totals included; the medians
    // go with their escalations; hours are shown.
    assert_eq!(r("hotline"), "*,*,*,*,*,*,*,4.0");
    assert_eq!(r("in-person"), "7,*,*,*,*,*,0,4.0");
    assert_eq!(r("online"), "*,*,*,0,,0,0,3.5");
    assert_eq!(r("unknown"), "0,0,0,0,,0,0,2.0");
    assert_eq!(r("all"), "15,*,*,*,*,*,*,13.5");
    assert_eq!(rows.len(), 5);

    // With k = 2: cases hotline 3, in-person 3, online 2 (hidden), total 4:
    // the total would give online away, so hotline (the first smallest) goes.
    // Escalations: in-person 1 is hidden, hotline 3 goes with it (total 4),
    // and its median with it; overdue hotline 3 is shown.
    let csv = s
        .stats_csv(&q("2026-03-02", "2026-03-15", &[Dim::Channel]), 2)
        .unwrap();
    let (_, _, rows) = parse_csv(&csv);
    let r = |ch: &str| csv_row(&rows, &[(2, ch)])[5..].join(",");
    assert_eq!(r("hotline"), "*,*,*,*,*,*,3,4.0");
    assert_eq!(r("in-person"), "7,3,*,*,*,*,0,4.0");
    assert_eq!(r("online"), "*,*,*,0,,0,0,3.5");
    assert_eq!(r("all"), "15,4,3,4,42.0,3,3,13.5");
}

#[test]
fn no_line_of_a_two_way_csv_has_exactly_one_hidden_cell() {
    let (_d, s) = loaded();
    for k in [1, 2, 3, 5] {
        let csv = s
            .stats_csv(
                &q(
                    "2026-02-23",
                    "2026-03-15",
                    &[Dim::Week, Dim::Channel, Dim::Risk],
                ),
                k,
            )
            .unwrap();
        let (_, header, rows) = parse_csv(&csv);
        let dims = [0usize, 2, 4];
        let mut hidden_somewhere = 0;
        for m in 5..header.len() {
            for &d in &dims {
                // Lines along d: rows equal in the other dimension columns.
                let mut lines: std::collections::BTreeMap<Vec<&str>, usize> = Default::default();
                for r in &rows {
                    let key: Vec<&str> = dims
                        .iter()
                        .filter(|&&o| o != d)
                        .map(|&o| r[o].as_str())
                        .collect();
                    let n = lines.entry(key).or_default();
                    if r[m] == "*" && header[m] != "median_minutes_to_receipt" {
                        *n += 1;
                        hidden_somewhere += 1;
                    }
                }
                for (key, n) in lines {
                    assert_ne!(
                        n, 1,
                        "k={k} {} along {}: line {key:?}",
                        header[m], header[d]
                    );
                }
            }
        }
        assert!(
            hidden_somewhere > 0,
            "k={k}: nothing hidden, nothing tested"
        );
        // Every count shown is 0 or above k.
        for r in &rows {
            for m in [5, 6, 7, 8, 10, 11] {
                if r[m] != "*" {
                    let v: i64 = r[m].parse().unwrap();
                    assert!(
                        v == 0 || v > i64::from(k),
                        "k={k}: {} shown as {v}",
                        header[m]
                    );
                }
            }
        }
    }
}

fn team(role: Role) -> Team {
    Team {
        relay_url: "http://127.0.0.1:9".into(),
        team_id: TeamId::from_hex(&"ab".repeat(16)).unwrap(),
        device_id: "cd".repeat(16),
        token: Secret::from_string("t".repeat(32)),
        key: TeamKey::from_bytes([7; 32]),
        epoch: 1,
        role,
        lead_sign_pk: [0; 32],
    }
}

#[test]
fn a_volunteer_may_not_see_statistics_a_supervisor_and_the_lead_may() {
    let (_d, mut s) = loaded();
    s.set_team(&team(Role::Volunteer)).unwrap();
    let q = q("2026-03-02", "2026-03-15", &[]);
    let err = s.stats(&q).unwrap_err();
    assert_eq!(err.kind(), "forbidden");
    assert!(err.to_string().contains("volunteer"), "{err}");
    assert_eq!(s.stats_csv(&q, 5).unwrap_err().kind(), "forbidden");
    for role in [Role::Supervisor, Role::Lead] {
        let (_d, mut s) = loaded();
        s.set_team(&team(role)).unwrap();
        assert_eq!(row(&s.stats(&q).unwrap().total), TOTAL);
        assert!(s.stats_csv(&q, 5).is_ok());
    }
}

#[test]
fn the_csv_of_real_operations_holds_no_alias_note_or_name() {
    let (dir, mut s) = profile();
    let alias = "独特别名小雨Q7";
    let alias2 = "Zephyrine-Quill";
    let note = "谈到考前失眠独特笔记Z9";
    let note2 = "mentions the river bridge XK42";
    let task = "回访独特任务W3";
    let a = s
        .new_case(&NewCase {
            alias: alias.into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .unwrap();
    let b = s
        .new_case(&NewCase {
            alias: alias2.into(),
            group: Group::Migrant,
            risk: Risk::Medium,
        })
        .unwrap();
    s.add_contact(&a, Channel::Hotline, note, Some(25)).unwrap();
    s.add_contact(&b, Channel::Online, note2, None).unwrap();
    let f = s.add_followup(&a, task, Some("2026-01-01")).unwrap();
    s.update_case(
        &b,
        &CaseUpdate {
            group: Some(Group::LeftBehind),
            risk: Some(Risk::High),
            ..Default::default()
        },
    )
    .unwrap();
    s.set_followup_done(&a, &f, true).unwrap();
    s.add_contact(&b, Channel::InPerson, note, Some(5)).unwrap();

    // The operations were counted (the scan below is not of an empty file).
    let all = StatsQuery::default();
    let st = s.stats(&all).unwrap();
    assert_eq!(
        (
            st.total.contacts,
            st.total.cases,
            st.total.new_cases,
            st.total.followups_done
        ),
        (3, 2, 2, 1)
    );
    let by_group = s
        .stats(&StatsQuery {
            by: vec![Dim::Group, Dim::Risk],
            ..Default::default()
        })
        .unwrap();
    // b's in-person contact was after the update: left-behind and high.
    assert_eq!(cell(&by_group, &["left-behind", "high"]).0, 1);

    let name = s.profile().name.clone();
    let device = s.profile().device_id.clone();
    let csv = s
        .stats_csv(
            &StatsQuery {
                by: Dim::ALL.to_vec(),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    let json = serde_json::to_string(&st).unwrap();
    // What is stored and pushed: the facts themselves.
    let conn = testing::open_raw(&dir.path().join("p"), &testing::unlock()).unwrap();
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM facts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(bodies.len() >= 8, "{bodies:?}");
    let facts = bodies.join("\n");
    for secret in [
        alias,
        alias2,
        note,
        note2,
        task,
        name.as_str(),
        device.as_str(),
        "林老师",
    ] {
        for (what, text) in [("csv", &csv), ("json", &json), ("facts", &facts)] {
            assert!(!text.contains(secret), "{what} contains {secret:?}");
        }
    }
    // Only vocabulary, dates and numbers in the CSV's data rows.
    let (_, _, rows) = parse_csv(&csv);
    assert!(!rows.is_empty());
    for r in rows {
        for v in r {
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c)),
                "{v:?}"
            );
        }
    }
}
