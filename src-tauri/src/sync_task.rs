//! The background sync: at start, every few minutes while online, every
//! 30 s while the relay cannot be reached (so a returning network is
//! noticed), and at once when asked ("Sync now", "End shift"). It runs on a
//! blocking thread with its own database connection, so the UI never waits
//! for it, and reports progress and status as events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use heartbridge_client::HttpTransport;
use heartbridge_core::{Store, SyncOptions, SyncReport};
use serde_json::{json, Value};
use tauri::{AppHandle, Emitter};
use tokio::sync::{Mutex, Notify};

use crate::camel::to_ui;
use crate::error::{ApiError, ApiResult};

const ONLINE_EVERY: Duration = Duration::from_secs(5 * 60);
const OFFLINE_RETRY: Duration = Duration::from_secs(30);

/// Shared between the commands and the background task.
pub struct Syncer {
    profile: PathBuf,
    /// Held while a sync runs: one at a time.
    running: Mutex<()>,
    pub wake: Notify,
}

impl Syncer {
    pub fn new(profile: PathBuf) -> Arc<Self> {
        Arc::new(Syncer {
            profile,
            running: Mutex::new(()),
            wake: Notify::new(),
        })
    }

    /// Runs one whole sync now (waiting for one already running), emitting
    /// `sync-progress` and `sync-status`.
    pub async fn run(&self, app: &AppHandle) -> ApiResult<SyncReport> {
        let _guard = self.running.lock().await;
        let profile = self.profile.clone();
        let _ = app.emit("sync-status", self.status(true));
        let progress_app = app.clone();
        let result = tauri::async_runtime::spawn_blocking(move || -> ApiResult<SyncReport> {
            let mut store = Store::open(&profile)?;
            let report = store.sync(
                &mut HttpTransport::default(),
                &SyncOptions::default(),
                &mut |p| {
                    let _ = progress_app.emit("sync-progress", to_ui(p));
                },
            )?;
            Ok(report)
        })
        .await
        .map_err(|_| {
            ApiError::new(
                "internal",
                "the sync stopped unexpectedly; your data is saved on this device",
            )
        })?;
        let _ = app.emit("sync-status", self.status(false));
        result
    }

    /// The status the home screen shows.
    pub fn status(&self, syncing: bool) -> Value {
        match Store::open(&self.profile).and_then(|s| s.sync_status()) {
            Ok(st) => json!({
                "lastSyncedAt": st.last_synced_at,
                "pending": st.pending,
                "lastError": st.last_error.map(|m| json!({"kind": st.last_error_kind, "message": m})),
                "syncing": syncing,
                "refused": st.refused,
            }),
            Err(_) => {
                json!({"lastSyncedAt": null, "pending": 0, "lastError": null, "syncing": syncing, "refused": 0})
            }
        }
    }

    fn enrolled(&self) -> bool {
        Store::open(&self.profile)
            .and_then(|s| s.team())
            .map(|t| t.is_some())
            .unwrap_or(false)
    }
}

/// The background loop; never returns.
pub async fn background(syncer: Arc<Syncer>, app: AppHandle) {
    loop {
        let wait = if syncer.enrolled() {
            match syncer.run(&app).await {
                Ok(_) => ONLINE_EVERY,
                Err(e) if e.kind == "network" => OFFLINE_RETRY,
                Err(_) => ONLINE_EVERY,
            }
        } else {
            ONLINE_EVERY
        };
        let _ = tokio::time::timeout(wait, syncer.wake.notified()).await;
    }
}
