//! The Heartbridge app: thin Tauri commands over heartbridge-core, a
//! background sync task, and nothing else. Each command gathers input,
//! calls one core function, and returns its result with camelCase keys or
//! an [`ApiError`] `{kind, message}`.

mod bundle_cmds;
mod camel;
mod drafts;
mod error;
mod lesson_cmds;
mod lock;
mod relay_cmds;
mod render;
mod shift_ledger;
mod store_slot;
mod supervision_cmds;
mod sync_task;
mod team_cmds;

use std::path::PathBuf;
use std::sync::Arc;

use heartbridge_core::proto::Role;
use heartbridge_core::{
    CaseFilter, CaseUpdate, Channel, DocKind, Group, NewCase, Risk, Status, Store,
};
use serde_json::{json, Value};
use tauri::{AppHandle, Manager, State};
use zeroize::Zeroizing;

use camel::to_ui;
use error::{ApiError, ApiResult};
use lock::{Locker, Reason};
use store_slot::StoreSlot;
use sync_task::Syncer;

/// What every command can reach.
pub struct AppState {
    store: Arc<StoreSlot>,
    syncer: Arc<Syncer>,
    locker: Arc<Locker>,
}

impl AppState {
    /// A read (or a write that queues nothing to send).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, heartbridge_core::Error>,
    ) -> ApiResult<T> {
        self.store.with(f)
    }

    /// A local write: the shift ledger notes the changes it queued, and
    /// `sync-status` tells the UI the waiting count the store has now.
    async fn write<T>(
        &self,
        app: &AppHandle,
        f: impl FnOnce(&mut Store) -> Result<T, heartbridge_core::Error>,
    ) -> ApiResult<T> {
        let out = self.store.with(|s| shift_ledger::write(s, f));
        self.syncer.emit_status(app).await;
        out
    }
}

fn parse<T: std::str::FromStr<Err = heartbridge_core::Error>>(s: &str) -> ApiResult<T> {
    Ok(s.parse::<T>()?)
}

fn parse_opt<T: std::str::FromStr<Err = heartbridge_core::Error>>(
    s: Option<String>,
) -> ApiResult<Option<T>> {
    s.filter(|s| !s.is_empty()).map(|s| parse(&s)).transpose()
}

/// Whether this device is the team's lead: its signing key is the team's
/// root of trust (the one in every invite code).
fn is_lead(store: &Store, team: &heartbridge_core::Team) -> Result<bool, heartbridge_core::Error> {
    Ok(store.device_public()?.map(|p| p.sign) == Some(team.lead_sign_pk))
}

fn status_of(store: &Store) -> Result<Value, heartbridge_core::Error> {
    let team = match store.team()? {
        Some(t) => Some(json!({
            "teamId": t.team_id.to_hex(), "relayUrl": t.relay_url, "role": t.role,
            "isLead": is_lead(store, &t)?, "epoch": t.epoch,
        })),
        None => None,
    };
    Ok(json!({
        "initialized": true,
        "name": store.profile().name,
        "deviceId": store.profile().device_id,
        "team": team,
    }))
}

#[tauri::command]
async fn profile_status(state: State<'_, AppState>) -> ApiResult<Value> {
    match state.with(|s| status_of(s)) {
        Err(e) if e.kind == "profile_missing" => Ok(json!({"initialized": false})),
        other => other,
    }
}

/// The sample handbooks the app ships with, readable offline from the
/// first start of a standalone profile.
const BUNDLED_HANDBOOKS: &[(&str, &str)] = &[
    (
        "hotline-work-rules.md",
        include_str!("../../handbooks/zh/hotline-work-rules.md"),
    ),
    (
        "closed-loop-psychological-first-aid.md",
        include_str!("../../handbooks/zh/closed-loop-psychological-first-aid.md"),
    ),
    (
        "crisis-risk-assessment-referral.md",
        include_str!("../../handbooks/zh/crisis-risk-assessment-referral.md"),
    ),
    (
        "hotline-work-rules-en.md",
        include_str!("../../handbooks/en/hotline-work-rules.md"),
    ),
];

fn import_bundled(store: &mut Store) -> Result<(), heartbridge_core::Error> {
    let files: Vec<(PathBuf, Vec<u8>)> = BUNDLED_HANDBOOKS
        .iter()
        .map(|(n, t)| (PathBuf::from(n), t.as_bytes().to_vec()))
        .collect();
    // Marked as bundled: removed when the profile joins a team, so they
    // are never pushed to teammates (who get the team's handbooks).
    store.import_bundled_handbooks(&files)?;
    Ok(())
}

/// Creates the profile on the first run, protected by `pin`.
#[tauri::command]
async fn profile_create(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
    pin: Option<String>,
) -> ApiResult<Value> {
    state.store.create_or_open(&name, pin.map(Zeroizing::new))?;
    state.locker.created(&app);
    // A standalone profile starts with the bundled handbooks (once, and only
    // if it has none of its own); a profile that joins a team gets the
    // team's from the relay instead.
    state.with(|s| {
        import_bundled(s)?;
        status_of(s)
    })
}

/// The second half of a claim or join, once the relay has answered: the
/// membership is stored, and the bundled samples (never the team's) leave
/// before the first sync could push them.
fn enrolled(state: &AppState, team: &heartbridge_core::Team) -> ApiResult<Value> {
    let status = state.with(|s| {
        heartbridge_client::commit_enrollment(s, team)?;
        s.drop_bundled_handbooks()?;
        status_of(s)
    })?;
    state.syncer.wake.notify_one();
    Ok(status)
}

/// The claim form's certificate fingerprint (`heartbridge team claim
/// --pin`): none when empty, else `sha256:` and 43 base64url characters.
fn cert_pin_arg(
    fingerprint: Option<&str>,
) -> heartbridge_core::Result<Option<heartbridge_core::proto::CertPin>> {
    match fingerprint.map(str::trim) {
        None | Some("") => Ok(None),
        Some(f) => heartbridge_core::proto::CertPin::parse(f)
            .map(Some)
            .ok_or_else(|| heartbridge_core::Error::InvalidValue {
                field: "certificate fingerprint",
                value: f.chars().take(60).collect(),
                allowed: "sha256: and 43 characters, as `heartbridge-relay fingerprint` prints it",
            }),
    }
}

/// Claims a team as its lead: prepare (store locked), enroll over the
/// network (unlocked), commit (locked).
#[tauri::command]
async fn team_claim(
    app: AppHandle,
    state: State<'_, AppState>,
    relay_url: String,
    token: String,
    name: String,
    pin: Option<String>,
    fingerprint: Option<String>,
) -> ApiResult<Value> {
    // Checked before a profile is created.
    let cert = cert_pin_arg(fingerprint.as_deref())?;
    state.store.create_or_open(&name, pin.map(Zeroizing::new))?;
    state.locker.created(&app);
    let enrollment = state.with(|s| {
        let e = heartbridge_client::prepare_claim(s, &relay_url, &token)?.with_pin(cert);
        if let Some(c) = cert {
            s.ensure_team_relay(e.relay_url(), Some(&c.to_string()))?;
        }
        Ok(e)
    })?;
    let team = state.syncer.http().enroll(&enrollment).await?;
    enrolled(&state, &team)
}

/// Joins a team with an invite code, the store unlocked while the relay
/// is asked.
#[tauri::command]
async fn team_join(
    app: AppHandle,
    state: State<'_, AppState>,
    code: String,
    name: String,
    pin: Option<String>,
) -> ApiResult<Value> {
    state.store.create_or_open(&name, pin.map(Zeroizing::new))?;
    state.locker.created(&app);
    let enrollment = state.with(|s| heartbridge_client::prepare_join(s, &code))?;
    let team = state.syncer.http().enroll(&enrollment).await?;
    enrolled(&state, &team)
}

fn team_of(state: &AppState) -> ApiResult<heartbridge_core::Team> {
    // Requests to the team's relay go by its pin (issue 10).
    state
        .syncer
        .http()
        .trust_relays(&state.with(|s| s.relays())?);
    Ok(state
        .with(|s| s.team())?
        .ok_or(heartbridge_core::Error::NotEnrolled)?)
}

#[tauri::command]
async fn team_invite(app: AppHandle, state: State<'_, AppState>, role: String) -> ApiResult<Value> {
    let role: Role = role.parse().map_err(|_| {
        ApiError::new(
            "invalid_input",
            "role must be volunteer, supervisor or lead",
        )
    })?;
    if state.with(|s| s.roster_unsent())? {
        // The code carries the newest key epoch: the relay must hold the
        // roster announcing it before anyone joins with it.
        state.syncer.run(&app).await?;
    }
    let team = team_of(&state)?;
    let (code, expires_at) = state
        .syncer
        .http()
        .invite_card(&team, role, heartbridge_client::DEFAULT_INVITE_TTL)
        .await?;
    Ok(json!({
        "code": code,
        "expiresAt": heartbridge_core::format_ms(expires_at.saturating_mul(1000)),
        "epoch": team.epoch,
    }))
}

#[tauri::command]
async fn team_members(state: State<'_, AppState>) -> ApiResult<Value> {
    let team = team_of(&state)?;
    let members = state.syncer.http().members(&team).await?;
    Ok(Value::Array(
        members
            .iter()
            .map(|m| {
                json!({
                    "deviceId": m.device_id, "name": m.name, "role": m.role, "revoked": m.revoked,
                    "thisDevice": m.this_device,
                    "lastSyncAt": m.last_sync_at.map(|t| heartbridge_core::format_ms(t * 1000)),
                })
            })
            .collect(),
    ))
}

/// On the lead's device: removes another member. The relay refuses that
/// device at once and answers its last sequence number; this device then
/// makes a new key epoch sealed to every other member and signs a roster
/// recording the revocation (`rotate_after_revoke`, under the store lock),
/// and syncs at once so the roster goes out (if that sync fails, the next
/// one carries it).
pub(crate) async fn revoke_member(
    store: &StoreSlot,
    syncer: &Arc<Syncer>,
    events: &impl sync_task::Events,
    device: &str,
) -> ApiResult<Value> {
    let (team, lead) = store.with(|s| {
        let team = s.team()?.ok_or(heartbridge_core::Error::NotEnrolled)?;
        let lead = is_lead(s, &team)?;
        Ok((team, lead))
    })?;
    if !lead {
        return Err(ApiError::new(
            "forbidden",
            "only the team's lead device can remove a member",
        ));
    }
    if team.device_id == device {
        return Err(ApiError::new(
            "invalid_input",
            "the lead cannot remove its own device",
        ));
    }
    // Learn every member's keys first: the rotation keeps the removed
    // device's, so what it delivered before stays checked everywhere.
    let _ = syncer.run(events).await;
    let cutoff = syncer.http().revoke(&team, device).await?;
    let epoch = match store.with(|s| s.rotate_after_revoke(device, cutoff)) {
        Err(e) if e.kind == "not_yet_known" => {
            syncer.run(events).await?;
            store.with(|s| s.rotate_after_revoke(device, cutoff))?
        }
        other => other?,
    };
    let sync = syncer.run(events).await;
    Ok(json!({
        "deviceId": device,
        "epoch": epoch,
        "cutoffSeq": cutoff,
        "synced": sync.is_ok(),
        "syncError": sync.err(),
    }))
}

#[tauri::command]
async fn team_revoke(
    app: AppHandle,
    state: State<'_, AppState>,
    device_id: String,
) -> ApiResult<Value> {
    revoke_member(&state.store, &state.syncer, &app, &device_id).await
}

/// Keeps a case form's unsaved draft inside the profile (the UI hands it
/// over before it locks); `draft` null forgets it.
#[tauri::command]
async fn draft_save(
    state: State<'_, AppState>,
    case_id: String,
    form: String,
    draft: Value,
) -> ApiResult<()> {
    state
        .store
        .with(|s| Ok(drafts::save(s, &case_id, &form, &draft)))?
}

/// The case's kept drafts: `{contact, followup}`, each null when none.
#[tauri::command]
async fn draft_get(state: State<'_, AppState>, case_id: String) -> ApiResult<Value> {
    state.store.with(|s| Ok(drafts::get(s, &case_id)))?
}

#[tauri::command]
async fn draft_clear(state: State<'_, AppState>, case_id: String, form: String) -> ApiResult<()> {
    state
        .store
        .with(|s| Ok(drafts::clear(s, &case_id, &form)))?
}

/// A sync the volunteer asked for: when the relay refused this device the
/// app stops syncing and locks; when the lead's roster had it erased the
/// UI shows the erased screen.
async fn sync_followed(app: &AppHandle, state: &AppState) -> ApiResult<Value> {
    let result = state.syncer.run(app).await;
    if let Err(e) = &result {
        state.locker.follow(app, e).await;
    }
    Ok(to_ui(&result?))
}

/// The lock's state; says nothing about the profile's content.
#[tauri::command]
async fn lock_status(state: State<'_, AppState>) -> ApiResult<Value> {
    state.locker.status(false)
}

/// Opens the profile with the PIN (Argon2id in core: on a blocking thread).
/// A wrong PIN comes back as a status with the tries left, not an error.
#[tauri::command]
async fn lock_unlock(app: AppHandle, state: State<'_, AppState>, pin: String) -> ApiResult<Value> {
    let pin = Zeroizing::new(pin);
    let locker = Arc::clone(&state.locker);
    tauri::async_runtime::spawn_blocking(move || locker.unlock(&app, pin))
        .await
        .map_err(|_| ApiError::new("internal", "the unlock stopped unexpectedly; try again"))?
}

/// Locks now ("Lock now", the UI's inactivity timer, the page hidden).
#[tauri::command]
async fn lock_now(app: AppHandle, state: State<'_, AppState>, reason: String) -> ApiResult<Value> {
    let reason = Reason::parse(&reason)?;
    let locker = Arc::clone(&state.locker);
    tauri::async_runtime::spawn_blocking(move || {
        locker.lock(&app, reason)?;
        locker.status(false)
    })
    .await
    .map_err(|_| ApiError::new("internal", "the lock stopped unexpectedly; close the app"))?
}

/// The volunteer did something (the UI reports it at most every quarter of
/// the lock time): the back end's own inactivity check counts from here.
#[tauri::command]
async fn lock_activity(state: State<'_, AppState>) -> ApiResult<()> {
    state.locker.touch();
    Ok(())
}

/// The inactivity time, in seconds (1 to 60 minutes), kept in the profile.
#[tauri::command]
async fn lock_set_timeout(state: State<'_, AppState>, secs: u64) -> ApiResult<Value> {
    state.locker.set_lock_after(secs)
}

/// After the profile was erased by too many wrong PINs: back to the first run.
#[tauri::command]
async fn lock_forget(state: State<'_, AppState>) -> ApiResult<Value> {
    state.locker.forget_destroyed()
}

#[tauri::command]
async fn handbook_list(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| s.list_handbooks())?))
}

#[tauri::command]
async fn handbook_get(state: State<'_, AppState>, id: String) -> ApiResult<Value> {
    let h = state.with(|s| {
        let id = s.resolve(DocKind::Handbook, &id)?;
        s.handbook(&id)
    })?;
    let sections: Vec<Value> = h
        .sections
        .iter()
        .map(|sec| json!({"index": sec.index, "level": sec.level, "title": sec.title, "html": render::section_html(&sec.body)}))
        .collect();
    Ok(
        json!({"id": h.id, "title": h.title, "language": h.language, "version": h.version, "sections": sections}),
    )
}

#[tauri::command]
async fn handbook_search(
    state: State<'_, AppState>,
    query: String,
    limit: Option<usize>,
    offset: Option<usize>,
) -> ApiResult<Value> {
    // `{total, hits}`: how many sections match, and one page of them.
    Ok(to_ui(&state.with(|s| {
        s.search_page(&query, offset.unwrap_or(0), limit.unwrap_or(20))
    })?))
}

#[tauri::command]
async fn bookmark_list(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| s.bookmarks())?))
}

#[tauri::command]
async fn bookmark_toggle(
    app: AppHandle,
    state: State<'_, AppState>,
    handbook_id: String,
    section: usize,
) -> ApiResult<bool> {
    state
        .write(&app, |s| {
            let id = s.resolve(DocKind::Handbook, &handbook_id)?;
            s.toggle_bookmark(&id, section)
        })
        .await
}

#[tauri::command]
async fn case_list(
    state: State<'_, AppState>,
    risk: Option<String>,
    status: Option<String>,
    group: Option<String>,
) -> ApiResult<Value> {
    let filter = CaseFilter {
        risk: parse_opt(risk)?,
        status: parse_opt(status)?,
        group: parse_opt(group)?,
    };
    Ok(to_ui(&state.with(|s| s.list_cases(&filter))?))
}

fn case_view(s: &mut Store, id: &str) -> Result<Value, heartbridge_core::Error> {
    let id = s.resolve(DocKind::Case, id)?;
    Ok(to_ui(&s.case(&id)?))
}

#[tauri::command]
async fn case_get(state: State<'_, AppState>, id: String) -> ApiResult<Value> {
    state.with(|s| case_view(s, &id))
}

#[tauri::command]
async fn case_create(
    app: AppHandle,
    state: State<'_, AppState>,
    alias: String,
    group: String,
    risk: String,
) -> ApiResult<Value> {
    let new = NewCase {
        alias,
        group: parse::<Group>(&group)?,
        risk: parse::<Risk>(&risk)?,
    };
    let id = state.write(&app, |s| s.new_case(&new)).await?;
    Ok(json!({ "id": id }))
}

#[tauri::command]
// The UI's arguments, one each (a Tauri command takes them flat).
#[allow(clippy::too_many_arguments)]
async fn case_update(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    alias: Option<String>,
    risk: Option<String>,
    status: Option<String>,
    group: Option<String>,
    source: Option<String>,
) -> ApiResult<Value> {
    let update = CaseUpdate {
        alias,
        risk: parse_opt(risk)?,
        status: parse_opt::<Status>(status)?,
        group: parse_opt(group)?,
    };
    // A raise to high or critical is an escalation; `screening` when the
    // volunteer confirmed the screening's level, else by hand.
    let source = parse_opt(source)?.unwrap_or(heartbridge_core::EscalationSource::Hand);
    state
        .write(&app, |s| {
            let doc = s.resolve(DocKind::Case, &id)?;
            s.update_case_from(&doc, &update, source)?;
            case_view(s, &id)
        })
        .await
}

#[tauri::command]
async fn case_add_contact(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    channel: String,
    text: String,
    minutes: Option<i64>,
) -> ApiResult<Value> {
    let channel: Channel = parse(&channel)?;
    state
        .write(&app, |s| {
            let doc = s.resolve(DocKind::Case, &id)?;
            s.add_contact(&doc, channel, &text, minutes)?;
            case_view(s, &id)
        })
        .await
}

#[tauri::command]
async fn case_add_followup(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    text: String,
    due: Option<String>,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            let doc = s.resolve(DocKind::Case, &id)?;
            s.add_followup(&doc, &text, due.as_deref().filter(|d| !d.is_empty()))?;
            case_view(s, &id)
        })
        .await
}

#[tauri::command]
async fn case_followup_done(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    followup_id: String,
    done: bool,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            let doc = s.resolve(DocKind::Case, &id)?;
            s.set_followup_done(&doc, &followup_id, done)?;
            case_view(s, &id)
        })
        .await
}

#[tauri::command]
async fn case_history(state: State<'_, AppState>, id: String) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| {
        let doc = s.resolve(DocKind::Case, &id)?;
        s.case_history(&doc)
    })?))
}

#[tauri::command]
async fn shift_current(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(to_ui(&state.with(|s| s.current_shift())?))
}

#[tauri::command]
async fn shift_start(
    app: AppHandle,
    state: State<'_, AppState>,
    line: Option<String>,
) -> ApiResult<Value> {
    let shift = state
        .write(&app, |s| {
            let shift = s.start_shift(line.as_deref())?;
            shift_ledger::started(s, &shift)?;
            Ok(shift)
        })
        .await?;
    Ok(to_ui(&shift))
}

/// Ends the shift, then syncs at once. The shift is ended even when the
/// sync then fails; what of it was delivered is in `sync-status`.
#[tauri::command]
async fn shift_end(
    app: AppHandle,
    state: State<'_, AppState>,
    handover: Option<String>,
) -> ApiResult<Value> {
    state
        .write(&app, |s| {
            // The handover note goes to the next shift on the same line
            // (team-wide; the UI asks for no case details in it).
            if let Some(shift) = s.end_shift_with_note(handover.as_deref())? {
                shift_ledger::ended(s, &shift)?;
            }
            Ok(())
        })
        .await?;
    team_of(&state)?;
    sync_followed(&app, &state).await
}

#[tauri::command]
async fn sync_status(state: State<'_, AppState>) -> ApiResult<Value> {
    Ok(state.syncer.status().await)
}

#[tauri::command]
async fn sync_now(app: AppHandle, state: State<'_, AppState>) -> ApiResult<Value> {
    sync_followed(&app, &state).await
}

#[tauri::command]
async fn settings_get(state: State<'_, AppState>) -> ApiResult<Value> {
    let lang = match state.with(|s| s.setting("language")) {
        Ok(l) => l,
        // Before the first run and while locked the UI keeps the language.
        Err(e) if e.kind == "profile_missing" || e.kind == "locked" => None,
        Err(e) => return Err(e),
    };
    Ok(json!({"language": lang.unwrap_or_else(|| "zh-CN".into())}))
}

#[tauri::command]
async fn settings_set(state: State<'_, AppState>, language: String) -> ApiResult<()> {
    if language != "zh-CN" && language != "en" {
        return Err(ApiError::new(
            "invalid_input",
            "language must be zh-CN or en",
        ));
    }
    match state.with(|s| s.set_setting("language", &language)) {
        Err(e) if e.kind == "profile_missing" || e.kind == "locked" => Ok(()),
        other => other,
    }
}

/// Where the profile lives: `--profile DIR`, else `HEARTBRIDGE_PROFILE`,
/// else the app's data directory.
fn profile_dir(app: &tauri::App) -> PathBuf {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--profile" {
            if let Some(p) = args.next() {
                return PathBuf::from(p);
            }
        }
    }
    if let Some(p) = std::env::var_os("HEARTBRIDGE_PROFILE") {
        return PathBuf::from(p);
    }
    app.path()
        .app_data_dir()
        .map(|d| d.join("profile"))
        .unwrap_or_else(|_| PathBuf::from("heartbridge-profile"))
}

#[cfg_attr(mobile, tauri::mobile_entry_point)]
// `tauri::generate_context!` expands to code that calls `process::exit`.
#[allow(clippy::disallowed_methods)]
pub fn run() {
    let result = tauri::Builder::default()
        // The system's file picker for bundle export/import and QR pictures
        // (the UI keeps a typed path beside it).
        .plugin(tauri_plugin_dialog::init())
        // Lesson media for the player, decrypted from the store per request
        // (issue 10, item 7).
        .register_asynchronous_uri_scheme_protocol(lesson_cmds::SCHEME, lesson_cmds::protocol)
        .setup(|app| {
            let store = Arc::new(StoreSlot::new(profile_dir(app)));
            // The one HTTP client, made inside the runtime it will run on.
            let http = {
                let rt = tauri::async_runtime::handle();
                let _in_rt = rt.inner().enter();
                heartbridge_client::HttpTransport::new()?
            };
            let syncer = Syncer::new(Arc::clone(&store), http);
            // The profile starts locked: the sync starts after the PIN.
            let locker = Locker::new(
                Arc::clone(&store),
                Arc::clone(&syncer),
                lock::lock_after_override(),
            );
            app.manage(AppState {
                store,
                syncer,
                locker,
            });
            Ok(())
        })
        // The window leaving the screen locks the app: it lost focus (on
        // the desktop, also when it is minimised or another app is in
        // front) or, on a phone, the app was paused.
        .on_window_event(|window, event| {
            let background = match event {
                tauri::WindowEvent::Focused(false) => true,
                #[cfg(mobile)]
                tauri::WindowEvent::Suspended => true,
                _ => false,
            };
            if background {
                let app = window.app_handle().clone();
                if let Some(state) = app.try_state::<AppState>() {
                    // Off the event loop: the UI first hands over an
                    // unsaved draft (`app-locking`), and closing waits for a
                    // store call in progress to finish.
                    let locker = Arc::clone(&state.locker);
                    tauri::async_runtime::spawn(async move {
                        locker.lock_soon(&app, Reason::Background).await;
                    });
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            profile_status,
            profile_create,
            team_claim,
            team_join,
            team_invite,
            team_members,
            team_revoke,
            draft_save,
            draft_get,
            draft_clear,
            lock_status,
            lock_unlock,
            lock_now,
            lock_activity,
            lock_set_timeout,
            lock_forget,
            handbook_list,
            handbook_get,
            handbook_search,
            bookmark_list,
            bookmark_toggle,
            case_list,
            case_get,
            case_create,
            case_update,
            case_add_contact,
            case_add_followup,
            case_followup_done,
            case_history,
            shift_current,
            shift_start,
            shift_end,
            sync_status,
            sync_now,
            settings_get,
            settings_set,
            // issue 9, U2: duty roster, team settings, statistics
            team_cmds::team_settings_get,
            team_cmds::team_settings_set,
            team_cmds::team_supervisor_group_set,
            team_cmds::duty_line_add,
            team_cmds::duty_line_remove,
            team_cmds::duty_add,
            team_cmds::duty_remove,
            team_cmds::duty_on_call,
            team_cmds::handover_notes,
            team_cmds::stats,
            team_cmds::stats_export,
            // issue 9, U1: review, comments, escalation receipts, assignment, debrief, queue
            supervision_cmds::case_review,
            supervision_cmds::case_comment,
            supervision_cmds::case_ack,
            supervision_cmds::case_phoned,
            supervision_cmds::case_assign,
            supervision_cmds::case_handover_note,
            supervision_cmds::case_debrief,
            supervision_cmds::review_queue,
            supervision_cmds::escalations_list,
            supervision_cmds::on_call_now,
            supervision_cmds::case_assignees,
            // issue 10: the relays this device knows, venue relay discovery
            relay_cmds::relay_list,
            relay_cmds::relay_add,
            relay_cmds::relay_remove,
            relay_cmds::relay_discover,
            bundle_cmds::bundle_export,
            bundle_cmds::bundle_qr_export,
            bundle_cmds::bundle_import,
            bundle_cmds::bundle_qr_import,
            bundle_cmds::bundle_qr_import_frames,
            // issue 10, item 7: micro-lessons
            lesson_cmds::lesson_list,
            lesson_cmds::lesson_get,
            lesson_cmds::lesson_fetch_plan,
            lesson_cmds::lesson_fetch,
            lesson_cmds::lesson_progress_set,
            lesson_cmds::lesson_watched,
            lesson_cmds::lesson_link_policy,
            lesson_cmds::lesson_link_policy_set,
            lesson_cmds::lesson_stats,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("heartbridge-app could not start: {e}");
    }
}

#[cfg(test)]
mod team_tests;
