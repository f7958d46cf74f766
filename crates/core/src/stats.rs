//! The team's statistics, computed from the de-identified facts
//! ([`crate::facts`]) — never from the cases, which the lead may not be able
//! to read — and their de-identified CSV export with small-cell
//! suppression.
//!
//! # What is counted
//!
//! The period is whole days `from ..= to` at the query's UTC offset
//! (without `from`: the day of the oldest fact; without `to`: today). Every
//! measure of a cell counts what happened inside the period and inside the
//! cell's week/month, except follow-ups overdue, which is a state at the
//! cell's end (the end of its week/month, or of the period).
//!
//! | measure | from | counted |
//! | --- | --- | --- |
//! | `contacts` (服务人次) | `Contact` | each contact |
//! | `cases` | `Contact` | distinct cases with a contact |
//! | `new_cases` | `CaseOpened` | each case opened |
//! | `escalations` | `Escalated` | each escalation |
//! | `median_minutes_to_receipt` | `Escalated` + its first `Receipt` | median over the cell's escalations with a receipt before the period ends |
//! | `followups_done` | `FollowupDone` | distinct follow-ups marked done |
//! | `followups_overdue` | `FollowupAdded`, `FollowupDone`, `FollowupReopened` | follow-ups added before the cell's end whose due day ended by then and that were not done then |
//! | `volunteer_hours` | `Shift` | hours of the shifts that started in the cell |
//!
//! Dimensions: `channel` (a contact's own; for everything else the case's
//! channel: the one its opening recorded, else its first contact's; a shift's
//! from its line: hotline, online, venue = in-person), `group` and `risk`
//! (a contact's and an opening's own; for everything else the case's as of
//! that moment, from the facts before it; an escalation's risk is its
//! level), `week` (ISO, `2026-W05`) and `month` (`2026-03`). A value that
//! is not recorded or does not apply (a shift has no group) is `unknown`.
//!
//! # Suppression (CSV)
//!
//! See [`suppress`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{Error, Result};
use crate::facts::{self, Fact};
use crate::model::{format_ms, now_ms, Channel, Group, Risk};
use crate::Store;

/// The version of the CSV layout (its columns and their meaning).
pub const CSV_SCHEMA: u32 = 1;

/// The suppression threshold when the team sets none.
pub const DEFAULT_K: u32 = 5;

/// The label of a dimension's total in a cell's key.
pub const ALL_LABEL: &str = "all";

/// The label of a value that is not recorded or does not apply.
pub const UNKNOWN_LABEL: &str = "unknown";

/// What statistics can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dim {
    Week,
    Month,
    Channel,
    Group,
    Risk,
}

impl Dim {
    /// Every dimension, in the order of the CSV's columns.
    pub const ALL: [Dim; 5] = [Dim::Week, Dim::Month, Dim::Channel, Dim::Group, Dim::Risk];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Week => "week",
            Dim::Month => "month",
            Dim::Channel => "channel",
            Dim::Group => "group",
            Dim::Risk => "risk",
        }
    }

    fn is_time(self) -> bool {
        matches!(self, Dim::Week | Dim::Month)
    }
}

impl std::str::FromStr for Dim {
    type Err = Error;
    fn from_str(s: &str) -> Result<Dim> {
        Dim::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| Error::InvalidValue {
                field: "statistics dimension",
                value: s.chars().take(40).collect(),
                allowed: "channel group risk week month",
            })
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to compute.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (inclusive); `None`: the oldest fact's day.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (inclusive); `None`: today.
    pub to: Option<String>,
    /// Break down by these (order and repeats do not matter).
    pub by: Vec<Dim>,
    /// Where days begin: minutes east of UTC (480 for China).
    pub utc_offset_minutes: i32,
}

/// The measures of one cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measures {
    /// 服务人次.
    pub contacts: i64,
    /// Distinct cases with a contact.
    pub cases: i64,
    pub new_cases: i64,
    pub escalations: i64,
    /// Escalations of the cell with a receipt before the period's end.
    pub receipts: i64,
    pub median_minutes_to_receipt: Option<f64>,
    pub followups_done: i64,
    pub followups_overdue: i64,
    pub volunteer_hours: f64,
}

/// One cell: its key (one label per dimension of `Stats::by`, `all` for a
/// total over that dimension) and its measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsCell {
    pub key: Vec<String>,
    pub measures: Measures,
}

/// Statistics over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// The period's first and last day.
    pub from: String,
    pub to: String,
    pub utc_offset_minutes: i32,
    /// The dimensions, in column order.
    pub by: Vec<Dim>,
    /// Cells with something in them, no `all` in their key.
    pub rows: Vec<StatsCell>,
    /// Totals over some (not all) dimensions.
    pub margins: Vec<StatsCell>,
    /// Everything in the period.
    pub total: Measures,
    /// How many facts this device holds (in and out of the period).
    pub facts: usize,
}

fn parse_date(s: &str, field: &'static str) -> Result<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &fmt).map_err(|_| Error::InvalidValue {
        field,
        value: s.chars().take(40).collect(),
        allowed: "a date written YYYY-MM-DD",
    })
}

fn date_str(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn day_start(d: Date, off: UtcOffset) -> i64 {
    PrimitiveDateTime::new(d, Time::MIDNIGHT)
        .assume_offset(off)
        .unix_timestamp()
        * 1000
}

fn local_date(ms: i64, off: UtcOffset) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(off)
        .date()
}

/// A time axis: its buckets' labels and intervals `[start, end)` in ms,
/// clipped to the period.
struct TimeAxis {
    labels: Vec<String>,
    bounds: Vec<(i64, i64)>,
}

fn week_axis(p0: Date, p1: Date, off: UtcOffset, (lo, hi): (i64, i64)) -> TimeAxis {
    let mut start = p0 - Duration::days(i64::from(p0.weekday().number_days_from_monday()));
    let mut axis = TimeAxis {
        labels: Vec::new(),
        bounds: Vec::new(),
    };
    while start <= p1 {
        let (y, w, _) = start.to_iso_week_date();
        axis.labels.push(format!("{y:04}-W{w:02}"));
        let next = start + Duration::days(7);
        axis.bounds
            .push((day_start(start, off).max(lo), day_start(next, off).min(hi)));
        start = next;
    }
    axis
}

fn month_axis(p0: Date, p1: Date, off: UtcOffset, (lo, hi): (i64, i64)) -> TimeAxis {
    let mut start = p0.replace_day(1).unwrap_or(p0);
    let mut axis = TimeAxis {
        labels: Vec::new(),
        bounds: Vec::new(),
    };
    while start <= p1 {
        axis.labels.push(format!(
            "{:04}-{:02}",
            start.year(),
            u8::from(start.month())
        ));
        let next = if start.month() == Month::December {
            Date::from_calendar_date(start.year() + 1, Month::January, 1)
        } else {
            Date::from_calendar_date(start.year(), start.month().next(), 1)
        }
        .unwrap_or(p1 + Duration::days(1));
        axis.bounds
            .push((day_start(start, off).max(lo), day_start(next, off).min(hi)));
        start = next;
    }
    axis
}

fn bucket_of(axis: &TimeAxis, t: i64) -> Option<u16> {
    let i = axis.bounds.partition_point(|&(_, end)| end <= t);
    match axis.bounds.get(i) {
        Some(&(s, e)) if s <= t && t < e => Some(i as u16),
        _ => None,
    }
}

/// The coordinate meaning "every value of this dimension".
const ALL: u16 = u16::MAX;

/// The value of a dimension for one event, before it is placed on an axis.
#[derive(Clone, Copy)]
struct Attrs {
    channel: Option<Channel>,
    group: Option<Group>,
    risk: Option<Risk>,
}

fn label_index<T: PartialEq>(all: &[T], v: Option<T>) -> u16 {
    v.and_then(|v| all.iter().position(|x| *x == v))
        .unwrap_or(all.len()) as u16
}

#[derive(Default)]
struct Acc {
    contacts: i64,
    cases: HashSet<u32>,
    new_cases: i64,
    escalations: i64,
    receipt_minutes: Vec<f64>,
    done: HashSet<u32>,
    overdue: i64,
    hours: f64,
}

impl Acc {
    fn measures(&self) -> Measures {
        let mut m = self.receipt_minutes.clone();
        m.sort_by(f64::total_cmp);
        let median = match m.len() {
            0 => None,
            n if n % 2 == 1 => Some(m[n / 2]),
            n => Some((m[n / 2 - 1] + m[n / 2]) / 2.0),
        };
        Measures {
            contacts: self.contacts,
            cases: self.cases.len() as i64,
            new_cases: self.new_cases,
            escalations: self.escalations,
            receipts: m.len() as i64,
            median_minutes_to_receipt: median,
            followups_done: self.done.len() as i64,
            followups_overdue: self.overdue,
            volunteer_hours: self.hours,
        }
    }
}

/// A case's group and risk over time, from every fact that states them.
#[derive(Default)]
struct CaseTrack {
    groups: Vec<(i64, Group)>,
    risks: Vec<(i64, Risk)>,
    opened_channel: Option<Channel>,
    first_contact_channel: Option<Channel>,
}

fn last_at_or_before<T: Copy>(v: &[(i64, T)], t: i64, strict: bool) -> Option<T> {
    let i = v.partition_point(|&(at, _)| if strict { at < t } else { at <= t });
    i.checked_sub(1).map(|i| v[i].1)
}

impl CaseTrack {
    fn channel(&self) -> Option<Channel> {
        self.opened_channel.or(self.first_contact_channel)
    }
}

struct FollowupTrack {
    case: u32,
    added: i64,
    due_end: Option<i64>,
    /// (time, done) in time order.
    states: Vec<(i64, bool)>,
}

/// The layout of the cube: which dimensions, in column order, and their
/// categories.
struct Layout {
    by: Vec<Dim>,
    weeks: Option<TimeAxis>,
    months: Option<TimeAxis>,
}

impl Layout {
    fn labels(&self, d: Dim) -> Vec<String> {
        let mut v: Vec<String> = match d {
            Dim::Week => {
                return self
                    .weeks
                    .as_ref()
                    .map(|a| a.labels.clone())
                    .unwrap_or_default()
            }
            Dim::Month => {
                return self
                    .months
                    .as_ref()
                    .map(|a| a.labels.clone())
                    .unwrap_or_default()
            }
            Dim::Channel => Channel::ALL.iter().map(|c| c.as_str().to_owned()).collect(),
            Dim::Group => Group::ALL.iter().map(|c| c.as_str().to_owned()).collect(),
            Dim::Risk => Risk::ALL.iter().map(|c| c.as_str().to_owned()).collect(),
        };
        v.push(UNKNOWN_LABEL.to_owned());
        v
    }

    /// An event's coordinates, or `None` when it falls outside the period.
    fn coords(&self, t: i64, a: Attrs) -> Option<Vec<u16>> {
        let mut c = Vec::with_capacity(self.by.len());
        for d in &self.by {
            c.push(match d {
                Dim::Week => bucket_of(self.weeks.as_ref()?, t)?,
                Dim::Month => bucket_of(self.months.as_ref()?, t)?,
                Dim::Channel => label_index(Channel::ALL, a.channel),
                Dim::Group => label_index(Group::ALL, a.group),
                Dim::Risk => label_index(Risk::ALL, a.risk),
            });
        }
        Some(c)
    }
}

type Cube = HashMap<Vec<u16>, Acc>;

/// Adds to the cell at `coords` and to every total over it (each subset of
/// the dimensions in `free` replaced by [`ALL`]).
fn spread(cube: &mut Cube, coords: &[u16], free: &[usize], f: &mut impl FnMut(&mut Acc)) {
    for mask in 0u32..(1 << free.len()) {
        let mut key = coords.to_vec();
        for (bit, &d) in free.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                key[d] = ALL;
            }
        }
        f(cube.entry(key).or_default());
    }
}

fn check_role(store: &Store) -> Result<()> {
    if let Some(team) = store.team()? {
        if team.role == heartbridge_proto::Role::Volunteer {
            return Err(Error::Forbidden {
                action: "see the team's statistics",
                role: "volunteer",
                needs: "a supervisor or the team lead",
            });
        }
    }
    Ok(())
}

/// The whole computation, on the facts given (time-ordered).
fn compute<'a>(all: &'a [Fact], q: &StatsQuery, today: Date) -> Result<(Stats, Layout, Cube)> {
    let off =
        UtcOffset::from_whole_seconds(q.utc_offset_minutes.saturating_mul(60)).map_err(|_| {
            Error::InvalidValue {
                field: "UTC offset",
                value: q.utc_offset_minutes.to_string(),
                allowed: "minutes from -1439 to 1439",
            }
        })?;
    let p0 = match &q.from {
        Some(s) => parse_date(s, "from")?,
        None => all
            .iter()
            .map(Fact::at)
            .min()
            .map(|t| local_date(t, off))
            .unwrap_or(today),
    };
    let p1 = match &q.to {
        Some(s) => parse_date(s, "to")?,
        None => today.max(p0),
    };
    if p1 < p0 {
        return Err(Error::InvalidValue {
            field: "to",
            value: date_str(p1),
            allowed: "a day on or after the first day (from)",
        });
    }
    let lo = day_start(p0, off);
    let hi = day_start(p1 + Duration::days(1), off);
    let mut by: Vec<Dim> = q.by.clone();
    by.sort();
    by.dedup();
    let layout = Layout {
        weeks: by
            .contains(&Dim::Week)
            .then(|| week_axis(p0, p1, off, (lo, hi))),
        months: by
            .contains(&Dim::Month)
            .then(|| month_axis(p0, p1, off, (lo, hi))),
        by,
    };
    let n = layout.by.len();
    let every: Vec<usize> = (0..n).collect();
    let non_time: Vec<usize> = (0..n).filter(|&i| !layout.by[i].is_time()).collect();

    // Case state from every fact, in and out of the period.
    let mut case_ix: HashMap<&'a str, u32> = HashMap::new();
    let mut cases: Vec<CaseTrack> = Vec::new();
    let mut ix = |c: &'a str, cases: &mut Vec<CaseTrack>| -> u32 {
        *case_ix.entry(c).or_insert_with(|| {
            cases.push(CaseTrack::default());
            (cases.len() - 1) as u32
        })
    };
    let mut fu_ix: HashMap<(u32, &str), u32> = HashMap::new();
    let mut followups: Vec<FollowupTrack> = Vec::new();
    let mut receipts: HashMap<(&str, &str), i64> = HashMap::new();
    for f in all {
        match f {
            Fact::CaseOpened {
                case,
                at,
                group,
                risk,
                channel,
                ..
            } => {
                let c = ix(case, &mut cases) as usize;
                let c = &mut cases[c];
                c.groups.push((*at, *group));
                c.risks.push((*at, *risk));
                c.opened_channel = c.opened_channel.or(*channel);
            }
            Fact::Contact {
                case,
                at,
                channel,
                group,
                risk,
                ..
            } => {
                let c = ix(case, &mut cases) as usize;
                let c = &mut cases[c];
                c.groups.push((*at, *group));
                c.risks.push((*at, *risk));
                c.first_contact_channel = c.first_contact_channel.or(Some(*channel));
            }
            Fact::RiskSet { case, at, risk, .. } => {
                let c = ix(case, &mut cases) as usize;
                cases[c].risks.push((*at, *risk));
            }
            Fact::Escalated {
                case, at, level, ..
            } => {
                let c = ix(case, &mut cases) as usize;
                cases[c].risks.push((*at, *level));
            }
            Fact::GroupSet {
                case, at, group, ..
            } => {
                let c = ix(case, &mut cases) as usize;
                cases[c].groups.push((*at, *group));
            }
            Fact::Receipt {
                case,
                escalation,
                at,
                ..
            } => {
                if *at < hi {
                    let e = receipts
                        .entry((case.as_str(), escalation.as_str()))
                        .or_insert(*at);
                    *e = (*e).min(*at);
                }
            }
            Fact::FollowupAdded {
                case,
                followup,
                at,
                due,
                ..
            } => {
                let c = ix(case, &mut cases);
                let due_end = due
                    .as_deref()
                    .and_then(|d| parse_date(d, "due date").ok())
                    .map(|d| day_start(d + Duration::days(1), off));
                let i = *fu_ix.entry((c, followup)).or_insert_with(|| {
                    followups.push(FollowupTrack {
                        case: c,
                        added: *at,
                        due_end,
                        states: Vec::new(),
                    });
                    (followups.len() - 1) as u32
                });
                let t = &mut followups[i as usize];
                t.added = t.added.min(*at);
                t.due_end = t.due_end.or(due_end);
            }
            Fact::FollowupDone { .. }
            | Fact::FollowupReopened { .. }
            | Fact::Shift { .. }
            | Fact::LessonWatched { .. } => {}
        }
    }
    // Follow-up states need the follow-ups first (a done fact may come from
    // another device before its added fact arrives: then it has no track).
    let mut done_ix: Vec<Option<u32>> = Vec::with_capacity(all.len());
    for f in all {
        let (case, followup, at, done) = match f {
            Fact::FollowupDone {
                case, followup, at, ..
            } => (case, followup, at, true),
            Fact::FollowupReopened {
                case, followup, at, ..
            } => (case, followup, at, false),
            _ => {
                done_ix.push(None);
                continue;
            }
        };
        let c = ix(case, &mut cases);
        let i = *fu_ix.entry((c, followup.as_str())).or_insert_with(|| {
            followups.push(FollowupTrack {
                case: c,
                added: *at,
                due_end: None,
                states: Vec::new(),
            });
            (followups.len() - 1) as u32
        });
        followups[i as usize].states.push((*at, done));
        done_ix.push(Some(i));
    }
    let state = |c: u32, t: i64, strict: bool| -> (Option<Group>, Option<Risk>) {
        let c = &cases[c as usize];
        (
            last_at_or_before(&c.groups, t, strict),
            last_at_or_before(&c.risks, t, strict),
        )
    };

    let mut cube: Cube = HashMap::new();
    let in_period = |t: i64| lo <= t && t < hi;
    for (k, f) in all.iter().enumerate() {
        let t = f.at();
        if !in_period(t) {
            continue;
        }
        let (attrs, case) = match f {
            Fact::Contact {
                case,
                channel,
                group,
                risk,
                ..
            } => (
                Attrs {
                    channel: Some(*channel),
                    group: Some(*group),
                    risk: Some(*risk),
                },
                Some(case_ix[case.as_str()]),
            ),
            Fact::CaseOpened {
                case, group, risk, ..
            } => {
                let c = case_ix[case.as_str()];
                (
                    Attrs {
                        channel: cases[c as usize].channel(),
                        group: Some(*group),
                        risk: Some(*risk),
                    },
                    Some(c),
                )
            }
            Fact::Escalated { case, level, .. } => {
                let c = case_ix[case.as_str()];
                (
                    Attrs {
                        channel: cases[c as usize].channel(),
                        group: state(c, t, false).0,
                        risk: Some(*level),
                    },
                    Some(c),
                )
            }
            Fact::FollowupDone { case, .. } => {
                let c = case_ix[case.as_str()];
                let (group, risk) = state(c, t, false);
                (
                    Attrs {
                        channel: cases[c as usize].channel(),
                        group,
                        risk,
                    },
                    Some(c),
                )
            }
            Fact::Shift { line_kind, .. } => (
                Attrs {
                    channel: match line_kind.as_deref() {
                        Some("hotline") => Some(Channel::Hotline),
                        Some("online") => Some(Channel::Online),
                        Some("venue") => Some(Channel::InPerson),
                        _ => None,
                    },
                    group: None,
                    risk: None,
                },
                None,
            ),
            _ => continue,
        };
        let Some(coords) = layout.coords(t, attrs) else {
            continue;
        };
        match f {
            Fact::Contact { .. } => {
                let c = case.unwrap_or_default();
                spread(&mut cube, &coords, &every, &mut |a| {
                    a.contacts += 1;
                    a.cases.insert(c);
                });
            }
            Fact::CaseOpened { .. } => {
                spread(&mut cube, &coords, &every, &mut |a| a.new_cases += 1);
            }
            Fact::Escalated {
                case, escalation, ..
            } => {
                let minutes = receipts
                    .get(&(case.as_str(), escalation.as_str()))
                    .map(|r| (r - t) as f64 / 60_000.0);
                spread(&mut cube, &coords, &every, &mut |a| {
                    a.escalations += 1;
                    if let Some(m) = minutes {
                        a.receipt_minutes.push(m);
                    }
                });
            }
            Fact::FollowupDone { .. } => {
                if let Some(i) = done_ix[k] {
                    spread(&mut cube, &coords, &every, &mut |a| {
                        a.done.insert(i);
                    });
                }
            }
            Fact::Shift { start, end, .. } => {
                let h = (end - start).max(0) as f64 / 3_600_000.0;
                spread(&mut cube, &coords, &every, &mut |a| a.hours += h);
            }
            _ => {}
        }
    }

    // Follow-ups overdue: a state at the end of each time cell.
    let time_dims: Vec<usize> = (0..n).filter(|&i| layout.by[i].is_time()).collect();
    let mut tuples: Vec<(Vec<u16>, i64)> = vec![(vec![ALL; n], hi)];
    for &d in &time_dims {
        let axis = match layout.by[d] {
            Dim::Week => layout.weeks.as_ref(),
            _ => layout.months.as_ref(),
        };
        let Some(axis) = axis else { continue };
        let mut next = Vec::new();
        for (key, _) in &tuples {
            for (b, _) in axis.bounds.iter().enumerate() {
                let mut k = key.clone();
                k[d] = b as u16;
                next.push(k);
            }
        }
        for k in next {
            // The cell's interval: the intersection of its buckets'.
            let (mut s, mut e) = (lo, hi);
            for &td in &time_dims {
                if k[td] == ALL {
                    continue;
                }
                let ax = match layout.by[td] {
                    Dim::Week => layout.weeks.as_ref(),
                    _ => layout.months.as_ref(),
                };
                if let Some(&(bs, be)) = ax.and_then(|a| a.bounds.get(k[td] as usize)) {
                    s = s.max(bs);
                    e = e.min(be);
                }
            }
            if s < e {
                tuples.push((k, e));
            }
        }
    }
    tuples.sort();
    tuples.dedup();
    for (tkey, end) in &tuples {
        for fu in &followups {
            let Some(due_end) = fu.due_end else { continue };
            if fu.added >= *end || due_end > *end {
                continue;
            }
            if last_at_or_before(&fu.states, *end, true) == Some(true) {
                continue;
            }
            let (group, risk) = state(fu.case, *end, true);
            let attrs = Attrs {
                channel: cases[fu.case as usize].channel(),
                group,
                risk,
            };
            let mut coords = tkey.clone();
            for &d in &non_time {
                coords[d] = match layout.by[d] {
                    Dim::Channel => label_index(Channel::ALL, attrs.channel),
                    Dim::Group => label_index(Group::ALL, attrs.group),
                    _ => label_index(Risk::ALL, attrs.risk),
                };
            }
            spread(&mut cube, &coords, &non_time, &mut |a| a.overdue += 1);
        }
    }

    let mut keys: Vec<&Vec<u16>> = cube.keys().collect();
    keys.sort();
    let labels: Vec<Vec<String>> = layout.by.iter().map(|d| layout.labels(*d)).collect();
    let mut rows = Vec::new();
    let mut margins = Vec::new();
    let mut total = Measures::default();
    for key in keys {
        let m = cube[key].measures();
        if key.iter().all(|&c| c == ALL) {
            total = m;
            continue;
        }
        if m == Measures::default() {
            continue;
        }
        let cell = StatsCell {
            key: key_labels(key, &labels),
            measures: m,
        };
        if key.contains(&ALL) {
            margins.push(cell);
        } else {
            rows.push(cell);
        }
    }
    let stats = Stats {
        from: date_str(p0),
        to: date_str(p1),
        utc_offset_minutes: q.utc_offset_minutes,
        by: layout.by.clone(),
        rows,
        margins,
        total,
        facts: all.len(),
    };
    Ok((stats, layout, cube))
}

fn key_labels(key: &[u16], labels: &[Vec<String>]) -> Vec<String> {
    key.iter()
        .zip(labels)
        .map(|(&c, l)| {
            if c == ALL {
                ALL_LABEL.to_owned()
            } else {
                l.get(c as usize).cloned().unwrap_or_default()
            }
        })
        .collect()
}

/// Small-cell suppression of one count measure over a cube of cells
/// (every coordinate a category or [`ALL`], the total over that dimension).
/// Returns the cells to show as `*`.
///
/// The algorithm:
///
/// 1. **Primary:** every cell with a count from 1 to `k` is suppressed.
///    Zero is shown (nobody is in it).
/// 2. **Secondary:** a *line* is the cells that differ in one dimension
///    only, its total included: for dimension d and fixed values of the
///    others, the cells with d = each category and d = `all`. A line with
///    exactly one suppressed cell would give it away (the total minus the
///    rest). In such a line one more cell is suppressed: the smallest
///    non-zero cell not suppressed yet (a zero only if there is none; ties:
///    the first in column order). Totals are cells of their lines like any
///    other, so a total that would give a hidden cell away is hidden too,
///    and a hidden total is protected the same way in the lines it belongs
///    to as a category (a total over one dimension is a cell of the lines
///    of the others).
/// 3. Step 2 is repeated over every line of every dimension until no line
///    has exactly one suppressed cell. Cells are only ever added, so it
///    ends.
///
/// `sizes[d]` is the number of categories of dimension d; cells absent
/// from `value` are zero.
pub(crate) fn suppress(
    sizes: &[usize],
    value: &HashMap<Vec<u16>, i64>,
    k: i64,
) -> HashSet<Vec<u16>> {
    let mut hidden: HashSet<Vec<u16>> = value
        .iter()
        .filter(|(_, &v)| (1..=k).contains(&v))
        .map(|(c, _)| c.clone())
        .collect();
    let get = |c: &Vec<u16>| value.get(c).copied().unwrap_or(0);
    loop {
        let mut changed = false;
        for d in 0..sizes.len() {
            // The lines of dimension d that hold a hidden cell.
            let mut lines: Vec<Vec<u16>> = hidden
                .iter()
                .map(|c| {
                    let mut l = c.clone();
                    l[d] = ALL;
                    l
                })
                .collect();
            lines.sort();
            lines.dedup();
            for base in lines {
                let mut cells: Vec<Vec<u16>> = (0..sizes[d] as u16)
                    .map(|i| {
                        let mut c = base.clone();
                        c[d] = i;
                        c
                    })
                    .collect();
                cells.push(base.clone());
                let n_hidden = cells.iter().filter(|c| hidden.contains(*c)).count();
                if n_hidden != 1 {
                    continue;
                }
                let pick = cells
                    .iter()
                    .filter(|c| !hidden.contains(*c))
                    .min_by_key(|c| (get(c) == 0, get(c)))
                    .cloned();
                if let Some(p) = pick {
                    hidden.insert(p);
                    changed = true;
                }
            }
        }
        if !changed {
            return hidden;
        }
    }
}

/// The columns of the CSV, after the five dimension columns.
pub const CSV_MEASURES: [&str; 8] = [
    "contacts",
    "cases",
    "new_cases",
    "escalations",
    "median_minutes_to_receipt",
    "followups_done",
    "followups_overdue",
    "volunteer_hours",
];

impl Store {
    /// The team's statistics over a period, from the facts this device
    /// holds. Only the lead and supervisors (and a standalone profile) may.
    pub fn stats(&self, q: &StatsQuery) -> Result<Stats> {
        check_role(self)?;
        let all = facts::all_in(self.conn())?;
        let off = UtcOffset::from_whole_seconds(q.utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
        Ok(compute(&all, q, local_date(now_ms(), off))?.0)
    }

    /// Micro-lessons watched (人次: each viewing counts) in the period of
    /// `q` (its `by` is ignored), in total and per lesson, from the facts
    /// this device holds. The same roles as [`Store::stats`].
    pub fn lesson_stats(&self, q: &StatsQuery) -> Result<crate::lesson::LessonStats> {
        check_role(self)?;
        let all = facts::all_in(self.conn())?;
        let off = UtcOffset::from_whole_seconds(q.utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
        let plain = StatsQuery {
            by: Vec::new(),
            ..q.clone()
        };
        let (stats, _, _) = compute(&all, &plain, local_date(now_ms(), off))?;
        let lo = day_start(parse_date(&stats.from, "from")?, off);
        let hi = day_start(parse_date(&stats.to, "to")? + Duration::days(1), off);
        crate::lesson::lesson_stats(
            self.conn(),
            &stats.from,
            &stats.to,
            all.iter().filter(|f| lo <= f.at() && f.at() < hi),
        )
    }

    /// The statistics as de-identified CSV, counts from 1 to `k` shown as
    /// `*` with secondary suppression ([`suppress`]).
    ///
    /// The first line is a comment: `# heartbridge statistics;
    /// period=FROM..TO; utc_offset=±HH:MM; generated_at=RFC3339; k=K;
    /// schema=1`. Then the header, always the same columns: `week, month,
    /// channel, group, risk` (`all` where not broken down by it), then
    /// [`CSV_MEASURES`]. One row per cell with something in it (or hidden),
    /// totals included (`all` in their key), the grand total last of all.
    /// Only vocabulary, dates and numbers are written: no alias, text, name
    /// or device id (the facts hold none). The median is hidden with its
    /// escalations, or when it stands on 1 to `k` receipts; hours are not
    /// counts of people and are shown, to one decimal.
    pub fn stats_csv(&self, q: &StatsQuery, k: u32) -> Result<String> {
        check_role(self)?;
        if k == 0 {
            return Err(Error::InvalidValue {
                field: "suppression threshold k",
                value: "0".into(),
                allowed: "a whole number of 1 or more",
            });
        }
        let all = facts::all_in(self.conn())?;
        let off = UtcOffset::from_whole_seconds(q.utc_offset_minutes.saturating_mul(60))
            .unwrap_or(UtcOffset::UTC);
        let (stats, layout, cube) = compute(&all, q, local_date(now_ms(), off))?;
        Ok(render_csv(&stats, &layout, &cube, i64::from(k), now_ms()))
    }
}

fn render_csv(stats: &Stats, layout: &Layout, cube: &Cube, k: i64, now: i64) -> String {
    let sizes: Vec<usize> = layout.by.iter().map(|d| layout.labels(*d).len()).collect();
    let labels: Vec<Vec<String>> = layout.by.iter().map(|d| layout.labels(*d)).collect();
    let measures: HashMap<&Vec<u16>, Measures> =
        cube.iter().map(|(c, a)| (c, a.measures())).collect();
    let count_cols: [fn(&Measures) -> i64; 6] = [
        |m| m.contacts,
        |m| m.cases,
        |m| m.new_cases,
        |m| m.escalations,
        |m| m.followups_done,
        |m| m.followups_overdue,
    ];
    let hidden: Vec<HashSet<Vec<u16>>> = count_cols
        .iter()
        .map(|f| {
            let v: HashMap<Vec<u16>, i64> =
                measures.iter().map(|(c, m)| ((*c).clone(), f(m))).collect();
            suppress(&sizes, &v, k)
        })
        .collect();
    let mut keys: Vec<Vec<u16>> = cube.keys().cloned().collect();
    for h in &hidden {
        keys.extend(h.iter().cloned());
    }
    keys.sort();
    keys.dedup();
    let n = layout.by.len();
    if !keys.contains(&vec![ALL; n]) {
        keys.push(vec![ALL; n]);
    }

    let off = stats.utc_offset_minutes;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# heartbridge statistics; period={}..{}; utc_offset={}{:02}:{:02}; generated_at={}; k={}; schema={}",
        stats.from,
        stats.to,
        if off < 0 { '-' } else { '+' },
        off.unsigned_abs() / 60,
        off.unsigned_abs() % 60,
        format_ms(now),
        k,
        CSV_SCHEMA
    );
    let header: Vec<&str> = Dim::ALL
        .iter()
        .map(|d| d.as_str())
        .chain(CSV_MEASURES)
        .collect();
    let _ = writeln!(out, "{}", header.join(","));
    let empty = Measures::default();
    for key in keys {
        let m = measures.get(&key).unwrap_or(&empty);
        let is_hidden: Vec<bool> = hidden.iter().map(|h| h.contains(&key)).collect();
        if *m == empty && !is_hidden.contains(&true) && key.iter().any(|&c| c != ALL) {
            continue;
        }
        let named = key_labels(&key, &labels);
        let mut cols: Vec<String> = Dim::ALL
            .iter()
            .map(|d| {
                layout
                    .by
                    .iter()
                    .position(|x| x == d)
                    .map(|i| named[i].clone())
                    .unwrap_or_else(|| ALL_LABEL.to_owned())
            })
            .collect();
        let count = |i: usize, v: i64| {
            if is_hidden[i] {
                "*".to_owned()
            } else {
                v.to_string()
            }
        };
        cols.push(count(0, m.contacts));
        cols.push(count(1, m.cases));
        cols.push(count(2, m.new_cases));
        cols.push(count(3, m.escalations));
        cols.push(match m.median_minutes_to_receipt {
            _ if is_hidden[3] || (1..=k).contains(&m.receipts) => "*".to_owned(),
            Some(v) => format!("{v:.1}"),
            None => String::new(),
        });
        cols.push(count(4, m.followups_done));
        cols.push(count(5, m.followups_overdue));
        cols.push(format!("{:.1}", m.volunteer_hours));
        let _ = writeln!(out, "{}", cols.join(","));
    }
    out
}

/// The statistics as plain text rows for a terminal: the key, then the
/// measures.
pub fn stats_table(stats: &Stats) -> Vec<BTreeMap<&'static str, String>> {
    let mut out = Vec::new();
    let row = |key: &[String], m: &Measures| {
        let mut r = BTreeMap::new();
        r.insert("key", key.join(" / "));
        r.insert("contacts", m.contacts.to_string());
        r.insert("cases", m.cases.to_string());
        r.insert("new_cases", m.new_cases.to_string());
        r.insert("escalations", m.escalations.to_string());
        r.insert(
            "median_minutes_to_receipt",
            m.median_minutes_to_receipt
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
        );
        r.insert("followups_done", m.followups_done.to_string());
        r.insert("followups_overdue", m.followups_overdue.to_string());
        r.insert("volunteer_hours", format!("{:.1}", m.volunteer_hours));
        r
    };
    for c in &stats.rows {
        out.push(row(&c.key, &c.measures));
    }
    out.push(row(&[ALL_LABEL.to_owned()], &stats.total));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(cells: &[(&[u16], i64)]) -> HashMap<Vec<u16>, i64> {
        cells.iter().map(|(c, v)| (c.to_vec(), *v)).collect()
    }

    #[test]
    fn one_hidden_cell_in_a_line_takes_the_next_smallest_with_it() {
        // channel: hotline 3, in-person 10, online 20; total 33.
        let v = cube(&[(&[0], 3), (&[1], 10), (&[2], 20), (&[ALL], 33)]);
        let h = suppress(&[4], &v, 5);
        assert_eq!(h, [vec![0], vec![1]].into_iter().collect());
    }

    #[test]
    fn two_hidden_cells_need_nothing_more() {
        let v = cube(&[(&[0], 3), (&[1], 2), (&[2], 20), (&[ALL], 25)]);
        let h = suppress(&[4], &v, 5);
        assert_eq!(h, [vec![0], vec![1]].into_iter().collect());
    }

    #[test]
    fn a_small_total_is_hidden_with_its_cells() {
        let v = cube(&[(&[0], 3), (&[ALL], 3)]);
        let h = suppress(&[4], &v, 5);
        assert_eq!(h, [vec![0], vec![ALL]].into_iter().collect());
    }

    #[test]
    fn two_dimensions_reach_a_state_where_no_line_has_one_hidden_cell() {
        // 2 x 2 categories (plus an unused third each) with totals.
        //          a    b   all
        //   x      2   10   12
        //   y      9   11   20
        //   all   11   21   32
        let v = cube(&[
            (&[0, 0], 2),
            (&[0, 1], 10),
            (&[0, ALL], 12),
            (&[1, 0], 9),
            (&[1, 1], 11),
            (&[1, ALL], 20),
            (&[ALL, 0], 11),
            (&[ALL, 1], 21),
            (&[ALL, ALL], 32),
        ]);
        let h = suppress(&[3, 3], &v, 5);
        for d in 0..2 {
            for c in &h {
                let mut base = c.clone();
                base[d] = ALL;
                let n = (0..3u16)
                    .map(|i| {
                        let mut x = base.clone();
                        x[d] = i;
                        x
                    })
                    .chain([base.clone()])
                    .filter(|x| h.contains(x))
                    .count();
                assert!(n >= 2, "line {base:?} along {d} has {n} hidden");
            }
        }
        // The small cell and its complements: x/b (10) in its row, y/a (9)
        // in its column, then y/b (11) to protect both of those.
        assert_eq!(
            h,
            [vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]
                .into_iter()
                .collect()
        );
    }
}
