//! Supervision in the app (issue 9): a supervisor's review and comments, the
//! receipt of an escalation (a supervisor's acknowledgement, or the
//! volunteer's record of reaching the on-call supervisor by phone),
//! assignment and handover notes, debriefs, the review queue and the
//! escalations view, and what the escalation panel needs offline (the
//! on-call person and phone from the team's settings and duty roster).
//!
//! Thin like the other commands: one core call each, which checks the role
//! before anything is written (`forbidden` for a volunteer), and the case
//! as the case page reads it afterwards. Note text never goes into an
//! error: core's errors carry none.

use std::time::Duration;

use heartbridge_core::{now_ms, DebriefState, DocKind, ReviewState, Store};
use serde_json::{json, Value};
use tauri::{AppHandle, State};

use crate::camel::to_ui;
use crate::error::ApiResult;
use crate::{case_view, parse, AppState};

/// How long the assignee list waits for the relay's member names before it
/// answers with what this device knows.
const NAMES_DEADLINE: Duration = Duration::from_secs(3);

/// A write on one case, answered with the case as it is now.
async fn on_case(
    app: &AppHandle,
    state: &AppState,
    id: &str,
    f: impl FnOnce(&mut Store, &heartbridge_core::DocId) -> Result<(), heartbridge_core::Error>,
) -> ApiResult<Value> {
    state
        .write(app, |s| {
            let doc = s.resolve(DocKind::Case, id)?;
            f(s, &doc)?;
            case_view(s, id)
        })
        .await
}

/// A supervisor's review: `reviewed` or `needs-follow-up`.
#[tauri::command]
// (`state` is the UI's argument: the app's state is injected by its type.)
pub async fn case_review(
    app: AppHandle,
    app_state: State<'_, AppState>,
    id: String,
    state: String,
) -> ApiResult<Value> {
    let review: ReviewState = parse(&state)?;
    on_case(&app, &app_state, &id, |s, doc| {
        s.review_case(doc, review).map(|_| ())
    })
    .await
}

/// A supervisor's comment on the case, or on one contact of it.
#[tauri::command]
pub async fn case_comment(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    text: String,
    contact: Option<String>,
) -> ApiResult<Value> {
    let contact = contact.filter(|c| !c.is_empty());
    on_case(&app, &state, &id, |s, doc| {
        s.comment_case(doc, contact.as_deref(), &text).map(|_| ())
    })
    .await
}

/// A supervisor acknowledges the newest escalation with instructions.
#[tauri::command]
pub async fn case_ack(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    instructions: String,
) -> ApiResult<Value> {
    on_case(&app, &state, &id, |s, doc| {
        s.acknowledge_escalation(doc, &instructions).map(|_| ())
    })
    .await
}

/// The volunteer reached the on-call supervisor by phone.
#[tauri::command]
pub async fn case_phoned(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    note: Option<String>,
) -> ApiResult<Value> {
    let note = note.filter(|n| !n.trim().is_empty());
    on_case(&app, &state, &id, |s, doc| {
        s.record_phoned(doc, note.as_deref()).map(|_| ())
    })
    .await
}

/// A supervisor or the lead hands the case to another member, with a note.
#[tauri::command]
pub async fn case_assign(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    to: String,
    to_name: Option<String>,
    note: String,
) -> ApiResult<Value> {
    let name = to_name.unwrap_or_default();
    on_case(&app, &state, &id, |s, doc| {
        s.assign_case(doc, &to, &name, &note).map(|_| ())
    })
    .await
}

/// A note for the next shift on this case.
#[tauri::command]
pub async fn case_handover_note(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    text: String,
) -> ApiResult<Value> {
    on_case(&app, &state, &id, |s, doc| {
        s.add_handover_note(doc, &text).map(|_| ())
    })
    .await
}

/// A contact's debrief: `held` or `declined`.
#[tauri::command]
pub async fn case_debrief(
    app: AppHandle,
    app_state: State<'_, AppState>,
    id: String,
    contact: String,
    state: String,
) -> ApiResult<Value> {
    let debrief: DebriefState = parse(&state)?;
    on_case(&app, &app_state, &id, |s, doc| {
        s.set_debrief(doc, &contact, debrief).map(|_| ())
    })
    .await
}

/// Unreviewed cases, high and critical first, then oldest first.
#[tauri::command]
pub async fn review_queue(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| s.review_queue())?))
}

/// Escalated cases: awaiting a receipt first (oldest first), then acknowledged.
#[tauri::command]
pub async fn escalations_list(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| s.escalations())?))
}

/// Who to call now, read on this device: the on-call line's person and its
/// phone (or the team's on-call phone), else the team's on-call phone
/// alone; nulls without a team or settings.
#[tauri::command]
pub async fn on_call_now(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with(|s| on_call_view(s, now_ms()))
}

fn on_call_view(s: &Store, at: i64) -> Result<Value, heartbridge_core::Error> {
    if s.team()?.is_none() {
        return Ok(json!({"name": null, "device": null, "phone": null}));
    }
    if let Some(o) = s.on_call_at(at)? {
        return Ok(json!({"name": o.name, "device": o.device, "phone": o.phone}));
    }
    let phone = s.team_settings()?.on_call_phone;
    let phone = (!phone.trim().is_empty()).then_some(phone);
    Ok(json!({"name": null, "device": null, "phone": phone}))
}

/// The members a case can be handed to: this device's roster (not the
/// removed), named by the relay's member list when it answers in time, else
/// by the duty roster.
#[tauri::command]
pub async fn case_assignees(state: State<'_, AppState>) -> ApiResult<Value> {
    let (team, roster, duty_names) = state.with(|s| {
        let team = s.team()?;
        let roster = match &team {
            Some(_) => s.roster()?,
            None => Vec::new(),
        };
        let names: Vec<(String, String)> = match &team {
            Some(_) => s
                .team_settings()
                .map(|t| t.duty.into_iter().map(|d| (d.device, d.name)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok((team, roster, names))
    })?;
    let Some(team) = team else {
        return Ok(Value::Array(Vec::new()));
    };
    // The store is not locked while the relay is asked.
    let relay_names: Vec<(String, String)> =
        match tokio::time::timeout(NAMES_DEADLINE, state.syncer.http().members(&team)).await {
            Ok(Ok(list)) => list
                .into_iter()
                .filter_map(|m| m.name.map(|n| (m.device_id, n)))
                .collect(),
            _ => Vec::new(),
        };
    let name_of = |device: &str| {
        relay_names
            .iter()
            .chain(duty_names.iter())
            .find(|(d, _)| d == device)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    Ok(Value::Array(
        roster
            .iter()
            .filter(|m| !m.revoked)
            .map(|m| {
                json!({
                    "deviceId": m.device_id,
                    "name": name_of(&m.device_id),
                    "role": m.role,
                    "thisDevice": m.device_id == team.device_id,
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use heartbridge_core::{NewDuty, NewLine};
    use heartbridge_tests::{sync_until_quiet, team, Device, Relay};

    use super::*;

    fn device_id(d: &Device) -> String {
        d.store.team().unwrap().unwrap().device_id
    }

    /// What the escalation panel shows, as a volunteer's device reads it
    /// after a sync: nothing without a team; the team's on-call phone while
    /// nobody is on duty; the on-call line's person and phone during a slot.
    #[test]
    fn the_panel_gets_the_on_call_person_and_phone_from_the_synced_settings() {
        let alone = Device::new("独自");
        assert_eq!(
            on_call_view(&alone.store, now_ms()).unwrap(),
            json!({"name": null, "device": null, "phone": null})
        );

        let relay = Relay::start();
        let mut devices = team(&relay, &["林组长", "王督导", "小白"]);
        sync_until_quiet(&mut devices, &[1, 2, 0, 1, 2]);
        assert_eq!(
            on_call_view(&devices[2].store, now_ms()).unwrap(),
            json!({"name": null, "device": null, "phone": null}),
            "no settings yet"
        );

        devices[0].store.set_on_call_phone("010-6000 1234").unwrap();
        sync_until_quiet(&mut devices, &[0, 2]);
        assert_eq!(
            on_call_view(&devices[2].store, now_ms()).unwrap(),
            json!({"name": null, "device": null, "phone": "010-6000 1234"}),
            "nobody on duty: the team's on-call phone"
        );

        let sup = device_id(&devices[1]);
        let now = now_ms();
        devices[0]
            .store
            .add_line(&NewLine {
                id: None,
                name: "督导值班".into(),
                kind: Some(heartbridge_core::LineKind::OnCall),
                phone: Some("13800000000".into()),
            })
            .unwrap();
        devices[0]
            .store
            .add_duty(&NewDuty {
                line: "督导值班".into(),
                device: sup.clone(),
                name: "王督导".into(),
                from: now - 3_600_000,
                to: now + 3_600_000,
            })
            .unwrap();
        sync_until_quiet(&mut devices, &[0, 2]);
        assert_eq!(
            on_call_view(&devices[2].store, now).unwrap(),
            json!({"name": "王督导", "device": sup, "phone": "13800000000"}),
            "during the slot: the on-call line's person and phone"
        );
        assert_eq!(
            on_call_view(&devices[2].store, now + 2 * 3_600_000).unwrap()["phone"],
            "010-6000 1234",
            "after the slot: the team's on-call phone again"
        );
    }
}
