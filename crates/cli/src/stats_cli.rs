//! `heartbridge stats`: the team's statistics (lead and supervisors), as a
//! table, JSON, or de-identified CSV with small counts suppressed.

use std::fmt::Write as _;

use clap::Args;
use heartbridge_core::stats::{Dim, ALL_LABEL};
use heartbridge_core::{Error, Measures, Stats, StatsQuery, Store};
use serde_json::json;

use crate::output::Out;

/// `heartbridge stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// First day, YYYY-MM-DD (default: the day of the oldest fact).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD, included (default: today).
    #[arg(long)]
    to: Option<String>,
    /// Break down by any of: channel, group, risk, week, month (comma-separated).
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// De-identified CSV (no alias, text, name or device): counts from 1 to K shown as *.
    #[arg(long)]
    csv: bool,
    /// Suppression threshold for --csv (default: the team's setting, else 5).
    #[arg(long)]
    k: Option<u32>,
    /// Where days begin, as an offset from UTC (+08:00, -05:00, Z); default:
    /// this computer's time zone now.
    #[arg(long, allow_hyphen_values = true)]
    utc_offset: Option<String>,
}

fn parse_offset(s: &str) -> anyhow::Result<i32> {
    let s = s.trim();
    let bad = || Error::InvalidValue {
        field: "UTC offset",
        value: s.chars().take(40).collect(),
        allowed: "+HH:MM or -HH:MM (+08:00), or Z",
    };
    if s.eq_ignore_ascii_case("z") {
        return Ok(0);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad().into()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return Err(bad().into());
    }
    Ok(sign * (h * 60 + m))
}

fn system_offset_minutes() -> i32 {
    jiff::tz::TimeZone::system()
        .to_offset(jiff::Timestamp::now())
        .seconds()
        / 60
}

pub fn stats(args: StatsArgs, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    let by = args
        .by
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<Dim>())
        .collect::<Result<Vec<_>, _>>()?;
    let q = StatsQuery {
        from: args.from,
        to: args.to,
        by,
        utc_offset_minutes: match &args.utc_offset {
            Some(s) => parse_offset(s)?,
            None => system_offset_minutes(),
        },
    };
    if args.csv {
        let k = match args.k {
            Some(k) => k,
            None => store.team_settings()?.suppression_k,
        };
        let csv = store.stats_csv(&q, k)?;
        out.print(&json!({ "k": k, "csv": csv }), || csv.trim_end().to_owned());
        return Ok(());
    }
    let st = store.stats(&q)?;
    let lessons = store.lesson_stats(&q)?;
    let mut v = serde_json::to_value(&st)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("lessons_watched".into(), json!(lessons.lessons_watched));
        o.insert("lessons".into(), serde_json::to_value(&lessons.by_lesson)?);
    }
    out.print(&v, || {
        format!(
            "{}\nlessons watched (人次): {}",
            table(&st),
            lessons.lessons_watched
        )
    });
    Ok(())
}

const COLUMNS: [&str; 8] = [
    "contacts",
    "cases",
    "new",
    "escalations",
    "median min to receipt",
    "follow-ups done",
    "overdue",
    "hours",
];

fn cells(m: &Measures) -> [String; 8] {
    [
        m.contacts.to_string(),
        m.cases.to_string(),
        m.new_cases.to_string(),
        m.escalations.to_string(),
        m.median_minutes_to_receipt
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into()),
        m.followups_done.to_string(),
        m.followups_overdue.to_string(),
        format!("{:.1}", m.volunteer_hours),
    ]
}

/// A plain table: one line per cell with something in it, then the total.
fn table(st: &Stats) -> String {
    let mut lines: Vec<(String, [String; 8])> = Vec::new();
    let head = if st.by.is_empty() {
        "period".to_owned()
    } else {
        st.by
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for r in &st.rows {
        lines.push((r.key.join(" / "), cells(&r.measures)));
    }
    lines.push((ALL_LABEL.to_owned(), cells(&st.total)));
    let mut w = [0usize; 9];
    w[0] = lines
        .iter()
        .map(|l| l.0.chars().count())
        .chain([head.chars().count()])
        .max()
        .unwrap_or(0);
    for (i, c) in COLUMNS.iter().enumerate() {
        w[i + 1] = lines
            .iter()
            .map(|l| l.1[i].len())
            .chain([c.len()])
            .max()
            .unwrap_or(0);
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} to {} (UTC{}{:02}:{:02}), {} facts on this device",
        st.from,
        st.to,
        if st.utc_offset_minutes < 0 { '-' } else { '+' },
        st.utc_offset_minutes.unsigned_abs() / 60,
        st.utc_offset_minutes.unsigned_abs() % 60,
        st.facts
    );
    let _ = write!(t, "{:<width$}", head, width = w[0]);
    for (i, c) in COLUMNS.iter().enumerate() {
        let _ = write!(t, "  {:>width$}", c, width = w[i + 1]);
    }
    for (key, vals) in &lines {
        let pad = w[0] - key.chars().count();
        let _ = write!(t, "\n{key}{}", " ".repeat(pad));
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(t, "  {:>width$}", v, width = w[i + 1]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_hours_and_minutes() {
        assert_eq!(parse_offset("+08:00").unwrap(), 480);
        assert_eq!(parse_offset("-05:30").unwrap(), -330);
        assert_eq!(parse_offset("Z").unwrap(), 0);
        assert_eq!(parse_offset("+8").unwrap(), 480);
        assert!(parse_offset("08:00").is_err());
        assert!(parse_offset("+25:00").is_err());
    }
}
