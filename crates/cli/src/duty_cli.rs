//! `heartbridge team settings`, `heartbridge duty …` and `heartbridge
//! shift …`: the team settings and the duty roster the lead edits, and a
//! volunteer's shifts on a line with their handover notes.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use heartbridge_core::{
    now_ms, DutySlot, Error, HandoverNote, LineKind, NewDuty, NewLine, OnCall, Shift, Store,
    TeamSettings,
};
use serde_json::json;

use crate::output::Out;

const TIME_HELP: &str = "YYYY-MM-DDTHH:MM in this computer's local time zone (TZ), or RFC 3339 with an offset (2026-12-01T08:00:00+08:00, …Z)";

/// `heartbridge team settings`: show them, or change some (lead only).
#[derive(Args)]
pub struct SettingsArgs {
    /// The team's on-call phone number, shown at every escalation ("" clears it).
    #[arg(long)]
    on_call_phone: Option<String>,
    /// Whether the lead's device may read every case.
    #[arg(long)]
    lead_reads_cases: Option<bool>,
    /// Statistics: counts from 1 to K are suppressed.
    #[arg(long)]
    suppression_k: Option<u32>,
    /// SUPERVISOR=VOLUNTEER,VOLUNTEER (device ids or names): the volunteers
    /// a supervisor supervises; SUPERVISOR= removes the group. Repeatable.
    /// No group at all: every supervisor supervises everyone.
    #[arg(long)]
    supervisor_group: Vec<String>,
}

#[derive(Subcommand)]
pub enum DutyCmd {
    /// The team's lines (hotline, online, venue, on-call).
    #[command(subcommand)]
    Line(LineCmd),
    /// Put a member on duty on a line (lead only).
    #[command(after_help = TIME_HELP)]
    Add {
        /// The line's id or name.
        #[arg(long)]
        line: String,
        /// The member's device id or name (names come from the relay's
        /// member list; offline, give the device id and --name).
        #[arg(long)]
        member: String,
        /// The member's name as shown on the roster (default: from the relay).
        #[arg(long)]
        name: Option<String>,
        /// Start (see below for the format).
        #[arg(long)]
        from: String,
        /// End, excluded (see below for the format).
        #[arg(long)]
        to: String,
    },
    /// Remove a duty slot (lead only).
    Remove {
        /// The slot's id, as `heartbridge duty show` prints it.
        slot: String,
    },
    /// Who is on duty and on call at a time (default now), and the slots to come.
    #[command(after_help = TIME_HELP)]
    Show {
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum LineCmd {
    /// Add a line, or change the line with this --id (lead only).
    Add {
        #[arg(long)]
        name: String,
        /// hotline, online, venue or on-call.
        #[arg(long, default_value = "hotline")]
        kind: String,
        /// The line's own phone number (for an on-call line: the number an
        /// escalation shows instead of the team's on-call phone).
        #[arg(long)]
        phone: Option<String>,
        /// A short id (a-z, 0-9, -, _); default: from the kind.
        #[arg(long)]
        id: Option<String>,
    },
    /// Remove a line and its duty slots (lead only).
    Remove {
        /// The line's id or name.
        line: String,
    },
    /// List the lines.
    List,
}

#[derive(Subcommand)]
pub enum ShiftCmd {
    /// Start your shift, on a line; shows the handover notes the shifts
    /// before left for it.
    Start {
        /// The line's id or name (`heartbridge duty line list`).
        #[arg(long)]
        line: Option<String>,
    },
    /// End your shift.
    End {
        /// A note for the next shift on the same line (`-` reads it from
        /// standard input). The whole team reads it: no case details.
        #[arg(long)]
        handover: Option<String>,
    },
    /// The open shift, and the handover notes for its line.
    Status {
        /// Show the notes for this line instead (id or name).
        #[arg(long)]
        line: Option<String>,
    },
}

/// Milliseconds since the epoch from `YYYY-MM-DDTHH:MM` (local time) or
/// RFC 3339.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let bad = || Error::InvalidValue {
        field: "time",
        value: s.chars().take(40).collect(),
        allowed: "YYYY-MM-DDTHH:MM (local time) or RFC 3339 (2026-12-01T08:00:00+08:00)",
    };
    let civil: jiff::civil::DateTime = s.parse().map_err(|_| bad())?;
    let ts = jiff::tz::TimeZone::system()
        .to_timestamp(civil)
        .map_err(|_| bad())?;
    Ok(ts.as_millisecond())
}

/// A time for people: local `YYYY-MM-DD HH:MM`.
fn local(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            let d = jiff::tz::TimeZone::system().to_datetime(t);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute()
            )
        })
        .unwrap_or_default()
}

/// A member: (device id, name). Device ids and names are matched against
/// the relay's member list when it answers; offline, a device id of the
/// roster (or of a duty slot) is taken as it is.
struct Members {
    list: Option<Vec<heartbridge_client::MemberView>>,
}

impl Members {
    fn new() -> Members {
        Members { list: None }
    }

    fn fetch(&mut self, store: &Store) -> Option<&[heartbridge_client::MemberView]> {
        if self.list.is_none() {
            self.list = heartbridge_client::members(store).ok();
        }
        self.list.as_deref()
    }

    fn resolve(&mut self, store: &Store, who: &str) -> anyhow::Result<(String, String)> {
        let who = who.trim();
        let hex = who.len() == 32 && who.bytes().all(|b| b.is_ascii_hexdigit());
        let settings = store.team_settings()?;
        if let Some(list) = self.fetch(store) {
            let live = || list.iter().filter(|m| !m.revoked);
            let found: Vec<_> = if hex {
                live()
                    .filter(|m| m.device_id.eq_ignore_ascii_case(who))
                    .collect()
            } else {
                live().filter(|m| m.name.as_deref() == Some(who)).collect()
            };
            match found.as_slice() {
                [m] => {
                    return Ok((m.device_id.clone(), m.name.clone().unwrap_or_default()));
                }
                [] => {}
                _ => anyhow::bail!(Error::InvalidValue {
                    field: "member",
                    value: "(not shown)".into(),
                    allowed:
                        "a name only one member has, or a device id (`heartbridge team members`)",
                }),
            }
        }
        if hex {
            let device = who.to_ascii_lowercase();
            let known = store
                .roster()
                .map(|r| r.iter().any(|m| m.device_id == device && !m.revoked))
                .unwrap_or(false);
            let name = settings
                .duty
                .iter()
                .find(|d| d.device == device)
                .map(|d| d.name.clone());
            if known || name.is_some() || store.team()?.is_none() {
                return Ok((device, name.unwrap_or_default()));
            }
        }
        anyhow::bail!(
            "no member of the team has that {}: run `heartbridge team members` (it needs the relay) and give a device id from it; offline, give the device id and --name",
            if hex { "device id" } else { "name" }
        )
    }
}

pub fn settings(args: SettingsArgs, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    if let Some(p) = &args.on_call_phone {
        store.set_on_call_phone(p)?;
    }
    if let Some(b) = args.lead_reads_cases {
        store.set_lead_reads_cases(b)?;
    }
    if let Some(k) = args.suppression_k {
        store.set_suppression_k(k)?;
    }
    let mut members = Members::new();
    for g in &args.supervisor_group {
        let (sup, vols) = g.split_once('=').ok_or_else(|| Error::InvalidValue {
            field: "supervisor group",
            value: "(not shown)".into(),
            allowed: "SUPERVISOR=VOLUNTEER,VOLUNTEER",
        })?;
        let (sup, _) = members.resolve(store, sup)?;
        let mut devices = Vec::new();
        for v in vols.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            devices.push(members.resolve(store, v)?.0);
        }
        store.set_supervisor_group(&sup, &devices)?;
    }
    let s = store.team_settings()?;
    out.print(&s, || human_settings(&s));
    Ok(())
}

fn human_settings(s: &TeamSettings) -> String {
    let mut t = String::new();
    let phone = if s.on_call_phone.is_empty() {
        "(not set)"
    } else {
        s.on_call_phone.as_str()
    };
    let _ = writeln!(t, "On-call phone: {phone}");
    let _ = writeln!(
        t,
        "The lead reads cases: {}",
        if s.lead_reads_cases { "yes" } else { "no" }
    );
    let _ = writeln!(
        t,
        "Statistics suppress counts from 1 to {}",
        s.suppression_k
    );
    if s.supervisor_groups.is_empty() {
        let _ = writeln!(
            t,
            "Supervisor groups: none (every supervisor supervises everyone)"
        );
    }
    for (sup, vols) in &s.supervisor_groups {
        let v: Vec<&str> = vols.iter().map(String::as_str).collect();
        let _ = writeln!(t, "Supervisor {sup}: {}", v.join(", "));
    }
    let _ = write!(t, "{}", human_lines(s));
    t.trim_end().to_owned()
}

fn human_lines(s: &TeamSettings) -> String {
    if s.lines.is_empty() {
        return "No lines yet: the lead adds them with `heartbridge duty line add`.\n".into();
    }
    let mut t = String::new();
    for l in &s.lines {
        let _ = write!(t, "{:<12} {:<8} {}", l.id, l.kind, l.name);
        if let Some(p) = &l.phone {
            let _ = write!(t, "  ☎ {p}");
        }
        t.push('\n');
    }
    t
}

fn line_name(s: &TeamSettings, id: &str) -> String {
    s.lines
        .iter()
        .find(|l| l.id == id)
        .map_or_else(|| id.to_owned(), |l| l.name.clone())
}

fn human_slot(s: &TeamSettings, d: &DutySlot) -> String {
    format!(
        "{}  {} – {}  {}  {}",
        d.id,
        local(d.from),
        local(d.to),
        line_name(s, &d.line),
        if d.name.is_empty() {
            &d.device
        } else {
            &d.name
        }
    )
}

pub fn duty(cmd: DutyCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        DutyCmd::Line(LineCmd::Add {
            name,
            kind,
            phone,
            id,
        }) => {
            let kind: LineKind = kind.parse()?;
            let id = store.add_line(&NewLine {
                id,
                name,
                kind: Some(kind),
                phone,
            })?;
            out.print(&json!({"id": id}), || format!("Line {id} saved."));
        }
        DutyCmd::Line(LineCmd::Remove { line }) => {
            let id = store.remove_line(&line)?;
            out.print(&json!({"id": id, "removed": true}), || {
                format!("Line {id} and its duty slots removed.")
            });
        }
        DutyCmd::Line(LineCmd::List) => {
            let s = store.team_settings()?;
            out.print(&s.lines, || human_lines(&s).trim_end().to_owned());
        }
        DutyCmd::Add {
            line,
            member,
            name,
            from,
            to,
        } => {
            let (from, to) = (parse_time(&from)?, parse_time(&to)?);
            let (device, found) = Members::new().resolve(store, &member)?;
            let id = store.add_duty(&NewDuty {
                line,
                device,
                name: name.unwrap_or(found),
                from,
                to,
            })?;
            out.print(&json!({"id": id}), || format!("Duty slot {id} saved."));
        }
        DutyCmd::Remove { slot } => {
            store.remove_duty(&slot)?;
            out.print(&json!({"id": slot, "removed": true}), || {
                "Duty slot removed.".to_owned()
            });
        }
        DutyCmd::Show { at } => {
            let at = match at {
                Some(t) => parse_time(&t)?,
                None => now_ms(),
            };
            let s = store.team_settings()?;
            let on_call = s.on_call_at(at);
            let on_duty: Vec<&DutySlot> = s.on_duty_at(at);
            let upcoming: Vec<&DutySlot> = s.duty.iter().filter(|d| d.from > at).collect();
            let v = json!({
                "at": at,
                "on_call": on_call,
                "on_call_phone": s.on_call_phone,
                "on_duty": on_duty,
                "upcoming": upcoming,
                "lines": s.lines,
            });
            out.print(&v, || {
                human_duty(&s, at, on_call.as_ref(), &on_duty, &upcoming)
            });
        }
    }
    Ok(())
}

fn human_duty(
    s: &TeamSettings,
    at: i64,
    on_call: Option<&OnCall>,
    on_duty: &[&DutySlot],
    upcoming: &[&DutySlot],
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "At {}:", local(at));
    match on_call {
        Some(o) => {
            let _ = write!(t, "On call: {}", o.name);
            if let Some(p) = &o.phone {
                let _ = write!(t, "  ☎ {p}");
            }
            let _ = writeln!(t, " (until {})", local(o.until));
        }
        None if !s.on_call_phone.is_empty() => {
            let _ = writeln!(
                t,
                "No supervisor on the roster now; the on-call phone: {}",
                s.on_call_phone
            );
        }
        None => {
            let _ = writeln!(t, "No supervisor on call on the roster now.");
        }
    }
    for d in on_duty {
        let _ = writeln!(t, "  on duty: {}", human_slot(s, d));
    }
    if !upcoming.is_empty() {
        let _ = writeln!(t, "Coming:");
        for d in upcoming {
            let _ = writeln!(t, "  {}", human_slot(s, d));
        }
    }
    t.trim_end().to_owned()
}

fn human_notes(notes: &[HandoverNote]) -> String {
    let mut t = String::new();
    if notes.is_empty() {
        return t;
    }
    let _ = writeln!(t, "Handover notes for this line:");
    for n in notes {
        let _ = writeln!(t, "  {}  {}: {}", local(n.at), n.by_name, n.text);
    }
    t
}

fn human_shift(s: &Shift) -> String {
    let line = match (&s.line_name, &s.line) {
        (Some(n), _) => format!(" on {n}"),
        (None, Some(l)) => format!(" on {l}"),
        _ => String::new(),
    };
    format!(
        "Shift{line} since {}, {} contacts logged.",
        s.started_at, s.contacts
    )
}

pub fn shift(cmd: ShiftCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        ShiftCmd::Start { line } => {
            let shift = store.start_shift(line.as_deref())?;
            let notes = store.handover_notes(shift.line.as_deref())?;
            out.print(&json!({"shift": shift, "handover_notes": notes}), || {
                format!("{}\n{}", human_shift(&shift), human_notes(&notes))
                    .trim_end()
                    .to_owned()
            });
        }
        ShiftCmd::End { handover } => {
            let text = handover.map(crate::read_text).transpose()?;
            let noted = text.as_deref().is_some_and(|t| !t.trim().is_empty());
            let ended = store.end_shift_with_note(text.as_deref())?;
            if ended.is_none() && noted {
                anyhow::bail!(
                    "no shift is open, so the handover note was not saved: start one with `heartbridge shift start`"
                );
            }
            out.print(&json!({"shift": ended, "handover": noted}), || match &ended {
                Some(s) if noted => format!(
                    "Shift ended ({} contacts). The handover note waits for the next shift; it goes out at the next sync.",
                    s.contacts
                ),
                Some(s) => format!("Shift ended ({} contacts).", s.contacts),
                None => "No shift was open.".to_owned(),
            });
        }
        ShiftCmd::Status { line } => {
            let shift = store.current_shift()?;
            let line = line.or_else(|| shift.as_ref().and_then(|s| s.line.clone()));
            let notes = store.handover_notes(line.as_deref())?;
            out.print(&json!({"shift": shift, "handover_notes": notes}), || {
                let head = shift
                    .as_ref()
                    .map_or_else(|| "No shift open.".to_owned(), human_shift);
                format!("{head}\n{}", human_notes(&notes))
                    .trim_end()
                    .to_owned()
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_rfc3339_or_local_minutes() {
        assert_eq!(
            parse_time("2026-12-01T08:00:00Z").unwrap(),
            1_796_112_000_000
        );
        assert_eq!(
            parse_time("2026-12-01T16:00:00+08:00").unwrap(),
            1_796_112_000_000
        );
        // Local time: whatever the zone, it is the same wall clock there.
        let ms = parse_time("2026-12-01T08:00").unwrap();
        let back = jiff::tz::TimeZone::system()
            .to_datetime(jiff::Timestamp::from_millisecond(ms).unwrap());
        assert_eq!((back.hour(), back.minute(), back.day()), (8, 0, 1));
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("2026-13-01T08:00").is_err());
    }
}
