//! The team's documents in the app (issue 9): the duty roster and the team
//! settings (everyone reads them; core refuses a write from any device but
//! the lead's with `forbidden`), the shift handover notes of a line, and
//! the statistics with their de-identified CSV export (supervisors and the
//! lead; core refuses a volunteer).
//!
//! Thin like the other commands: one core call each (the settings form's
//! three fields are three setters), results in the UI's camelCase shapes.
//! Times go out as RFC 3339; a duty slot's times come in as Unix ms.

use std::path::{Path, PathBuf};

use heartbridge_core::{
    format_ms, now_ms, Dim, HandoverNote, LineKind, Measures, NewDuty, NewLine, OnCall, Stats,
    StatsQuery, Store, TeamSettings,
};
use serde_json::{json, Value};
use tauri::{AppHandle, State};

use crate::error::{ApiError, ApiResult};
use crate::{parse, AppState};

/// The settings as the UI reads them (the oversight key stays out: the UI
/// has no use for it).
fn settings_view(s: &TeamSettings) -> Value {
    json!({
        "onCallPhone": s.on_call_phone,
        "leadReadsCases": s.lead_reads_cases,
        "suppressionK": s.suppression_k,
        "supervisorGroups": s.supervisor_groups,
        "lines": s.lines.iter().map(|l| json!({
            "id": l.id, "name": l.name, "kind": l.kind.as_str(), "phone": l.phone,
        })).collect::<Vec<_>>(),
        "duty": s.duty.iter().map(|d| json!({
            "id": d.id, "line": d.line, "device": d.device, "name": d.name,
            "from": format_ms(d.from), "to": format_ms(d.to),
        })).collect::<Vec<_>>(),
    })
}

fn settings_now(s: &mut Store) -> Result<Value, heartbridge_core::Error> {
    Ok(settings_view(&s.team_settings()?))
}

#[tauri::command]
pub async fn team_settings_get(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with(settings_now)
}

/// The settings form: each field given is written (lead only).
#[tauri::command]
pub async fn team_settings_set(
    app: AppHandle,
    state: State<'_, AppState>,
    on_call_phone: Option<String>,
    lead_reads_cases: Option<bool>,
    suppression_k: Option<u32>,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            if let Some(p) = &on_call_phone {
                s.set_on_call_phone(p)?;
            }
            if let Some(yes) = lead_reads_cases {
                s.set_lead_reads_cases(yes)?;
            }
            if let Some(k) = suppression_k {
                s.set_suppression_k(k)?;
            }
            settings_now(s)
        })
        .await
}

#[tauri::command]
pub async fn team_supervisor_group_set(
    app: AppHandle,
    state: State<'_, AppState>,
    supervisor: String,
    volunteers: Vec<String>,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            s.set_supervisor_group(&supervisor, &volunteers)?;
            settings_now(s)
        })
        .await
}

#[tauri::command]
pub async fn duty_line_add(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
    kind: String,
    phone: Option<String>,
) -> ApiResult<Value> {
    let new = NewLine {
        id: None,
        name,
        kind: Some(parse::<LineKind>(&kind)?),
        phone,
    };
    state
        .write(&app, |s| {
            s.add_line(&new)?;
            settings_now(s)
        })
        .await
}

#[tauri::command]
pub async fn duty_line_remove(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            s.remove_line(&id)?;
            settings_now(s)
        })
        .await
}

/// Puts `member` (a device id, shown as `name`) on `line` from `from` to
/// `to` (Unix ms; `to` excluded).
#[tauri::command]
pub async fn duty_add(
    app: AppHandle,
    state: State<'_, AppState>,
    line: String,
    member: String,
    name: String,
    from: i64,
    to: i64,
) -> ApiResult<Value> {
    let new = NewDuty {
        line,
        device: member,
        name,
        from,
        to,
    };
    state
        .write(&app, |s| {
            s.add_duty(&new)?;
            settings_now(s)
        })
        .await
}

#[tauri::command]
pub async fn duty_remove(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            s.remove_duty(&id)?;
            settings_now(s)
        })
        .await
}

fn on_call_view(o: Option<OnCall>) -> Value {
    match o {
        Some(o) => json!({
            "name": o.name, "device": o.device, "phone": o.phone,
            "line": o.line, "until": format_ms(o.until),
        }),
        None => Value::Null,
    }
}

/// Who is on call at `at` (Unix ms; default now), from the roster on this
/// device: no network needed.
#[tauri::command]
pub async fn duty_on_call(state: State<'_, AppState>, at: Option<i64>) -> ApiResult<Value> {
    let at = at.unwrap_or_else(now_ms);
    Ok(on_call_view(state.with(|s| s.on_call_at(at))?))
}

fn note_view(n: &HandoverNote) -> Value {
    json!({
        "id": n.id, "line": n.line, "at": format_ms(n.at),
        "byName": n.by_name, "text": n.text,
    })
}

/// The latest shift-end notes left for `line` (all lines when absent), newest first.
#[tauri::command]
pub async fn handover_notes(state: State<'_, AppState>, line: Option<String>) -> ApiResult<Value> {
    let notes = state.with(|s| s.handover_notes(line.as_deref()))?;
    Ok(Value::Array(notes.iter().map(note_view).collect()))
}

fn query(
    from: Option<String>,
    to: Option<String>,
    by: Vec<String>,
    utc_offset_minutes: Option<i32>,
) -> ApiResult<StatsQuery> {
    Ok(StatsQuery {
        from: from.filter(|s| !s.is_empty()),
        to: to.filter(|s| !s.is_empty()),
        by: by
            .iter()
            .map(|d| parse::<Dim>(d))
            .collect::<ApiResult<_>>()?,
        utc_offset_minutes: utc_offset_minutes.unwrap_or(0),
    })
}

fn measures_view(m: &Measures) -> Value {
    json!({
        "contacts": m.contacts,
        "distinctCases": m.cases,
        "newCases": m.new_cases,
        "escalations": m.escalations,
        "receipts": m.receipts,
        "medianReceiptMinutes": m.median_minutes_to_receipt,
        "followupsDone": m.followups_done,
        "followupsOverdue": m.followups_overdue,
        "volunteerHours": m.volunteer_hours,
    })
}

/// The statistics as the screen draws them: the cells of the breakdown
/// (keys by dimension name), the totals, and the team's threshold `k` (the
/// screen marks counts from 1 to k like the export).
fn stats_view(stats: &Stats, k: u32) -> Value {
    let rows: Vec<Value> = stats
        .rows
        .iter()
        .map(|cell| {
            let key: serde_json::Map<String, Value> = stats
                .by
                .iter()
                .zip(&cell.key)
                .map(|(d, v)| (d.as_str().to_owned(), Value::String(v.clone())))
                .collect();
            json!({"key": key, "measures": measures_view(&cell.measures)})
        })
        .collect();
    json!({
        "from": stats.from,
        "to": stats.to,
        "generatedAt": format_ms(now_ms()),
        "k": k,
        "totals": measures_view(&stats.total),
        "rows": rows,
    })
}

#[tauri::command]
pub async fn stats(
    state: State<'_, AppState>,
    from: Option<String>,
    to: Option<String>,
    by: Vec<String>,
    utc_offset_minutes: Option<i32>,
) -> ApiResult<Value> {
    let q = query(from, to, by, utc_offset_minutes)?;
    state.with(|s| {
        let k = s.team_settings()?.suppression_k;
        Ok(stats_view(&s.stats(&q)?, k))
    })
}

/// Where an export of the period `from..to` goes: the profile's `exports`
/// folder (no dialog, no extra capability: it works offline and the path
/// is shown to the volunteer).
fn export_path(db: &Path, stamp: &str) -> PathBuf {
    db.parent()
        .unwrap_or_else(|| Path::new("."))
        .join("exports")
        .join(format!("heartbridge-stats-{stamp}.csv"))
}

/// Writes the de-identified CSV (counts from 1 to the team's k as `*`)
/// into the profile's export folder; answers its path and size.
#[tauri::command]
pub async fn stats_export(
    state: State<'_, AppState>,
    from: Option<String>,
    to: Option<String>,
    by: Vec<String>,
    utc_offset_minutes: Option<i32>,
) -> ApiResult<Value> {
    let q = query(from, to, by, utc_offset_minutes)?;
    let (csv, db) = state.with(|s| {
        let k = s.team_settings()?.suppression_k;
        Ok((s.stats_csv(&q, k)?, s.path().to_path_buf()))
    })?;
    // The file name says the moment (to the second): a second export of
    // the same period does not overwrite the first.
    let stamp: String = format_ms(now_ms())
        .chars()
        .take(19)
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let path = export_path(&db, &stamp);
    let write = |path: &Path| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, csv.as_bytes())
    };
    write(&path).map_err(|e| {
        ApiError::new(
            if e.kind() == std::io::ErrorKind::StorageFull {
                "disk_full"
            } else {
                "export_failed"
            },
            "the CSV could not be written into the profile's export folder",
        )
    })?;
    Ok(json!({"path": path.to_string_lossy(), "bytes": csv.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_goes_into_the_profile_folder_and_names_its_moment() {
        let p = export_path(Path::new("/p/heartbridge.db"), "2026-12-01T13-05-09");
        assert_eq!(
            p,
            Path::new("/p/exports/heartbridge-stats-2026-12-01T13-05-09.csv")
        );
    }

    #[test]
    fn a_stats_cell_key_is_named_by_its_dimensions() {
        let stats = Stats {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            utc_offset_minutes: 480,
            by: vec![Dim::Channel],
            rows: vec![heartbridge_core::StatsCell {
                key: vec!["hotline".into()],
                measures: Measures {
                    contacts: 7,
                    cases: 3,
                    ..Measures::default()
                },
            }],
            margins: vec![],
            total: Measures {
                contacts: 7,
                cases: 3,
                ..Measures::default()
            },
            facts: 10,
        };
        let v = stats_view(&stats, 5);
        assert_eq!(v["rows"][0]["key"], json!({"channel": "hotline"}));
        assert_eq!(v["rows"][0]["measures"]["distinctCases"], 3);
        assert_eq!(v["totals"]["contacts"], 7);
        assert_eq!(v["k"], 5);
        assert_eq!(v["totals"]["medianReceiptMinutes"], Value::Null);
    }
}
