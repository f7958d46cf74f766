//! The relays this device knows, in the app (issue 10): list, add, remove,
//! and "查找会场中继": browse the local network for a venue relay (mDNS) and
//! hand the UI what was heard; the UI asks the volunteer before it calls
//! `relay_add` with one. Thin like the other commands: one core (or
//! `heartbridge_client::discover`) call each, camelCase out.

use std::time::Duration;

use heartbridge_core::RelayKind;
use serde_json::Value;
use tauri::State;

use crate::camel::to_ui;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// In the order a sync tries them.
#[tauri::command]
pub async fn relay_list(state: State<'_, AppState>) -> ApiResult<Value> {
    state.with(|s| Ok(to_ui(&s.relay_order()?)))
}

/// Adds a relay (a venue relay is tried first); `pin` is its certificate
/// fingerprint.
#[tauri::command]
pub async fn relay_add(
    state: State<'_, AppState>,
    url: String,
    pin: Option<String>,
    venue: bool,
) -> ApiResult<Value> {
    let kind = if venue {
        RelayKind::Venue
    } else {
        RelayKind::Central
    };
    let pin = pin.filter(|p| !p.trim().is_empty());
    state.with(|s| {
        s.add_relay(&url, pin.as_deref(), kind, false)?;
        Ok(to_ui(&s.relay_order()?))
    })
}

/// Forgets a relay (not the team's own: `central_relay`).
#[tauri::command]
pub async fn relay_remove(state: State<'_, AppState>, url: String) -> ApiResult<Value> {
    state.with(|s| {
        s.remove_relay(&url)?;
        Ok(to_ui(&s.relay_order()?))
    })
}

/// Listens on the local network for `seconds` (3 by default, at most 15)
/// and answers the relays heard, this team's first (`thisTeam`). Adds
/// nothing.
#[tauri::command]
pub async fn relay_discover(state: State<'_, AppState>, seconds: Option<u64>) -> ApiResult<Value> {
    let team = state.with(|s| Ok(s.team()?.map(|t| t.team_id)))?;
    let wait = Duration::from_secs(seconds.unwrap_or(3).clamp(1, 15));
    let found = tauri::async_runtime::spawn_blocking(move || {
        heartbridge_client::discover::discover(wait, team.as_ref())
    })
    .await
    .map_err(|_| ApiError::new("network", "looking for relays stopped unexpectedly"))?
    .map_err(|e| ApiError::new("network", e.to_string()))?;
    Ok(to_ui(&found))
}
