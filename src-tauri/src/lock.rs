//! The app lock: what locks the app (the "Lock now" command, the UI's
//! inactivity timer, the window losing focus or being minimised, the mobile
//! app pausing), what locking does (stop the background sync, drop the
//! store and with it the key, tell the UI to drop what it shows), and what
//! unlocking does (reopen the store, resume the sync).
//!
//! The inactivity time is a setting inside the encrypted profile (it is
//! needed only while the app is unlocked), unless `--lock-after SECS` or
//! `HEARTBRIDGE_LOCK_AFTER` fixes it for this run (tests, kiosks).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Emitter};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::store_slot::{LockState, StoreSlot, Unlocked};
use crate::sync_task::{self, Syncer};

/// The inactivity time when none is set: 5 minutes.
pub const DEFAULT_LOCK_AFTER_SECS: u64 = 5 * 60;
/// What settings may choose, in seconds.
pub const LOCK_AFTER_RANGE: std::ops::RangeInclusive<u64> = 60..=3600;
const SETTING: &str = "lock_after_secs";

/// Why the app locked; the UI says so on the lock screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Idle,
    Background,
}

impl Reason {
    pub fn parse(s: &str) -> ApiResult<Reason> {
        match s {
            "command" => Ok(Reason::Command),
            "idle" => Ok(Reason::Idle),
            "background" => Ok(Reason::Background),
            _ => Err(ApiError::new(
                "invalid_input",
                "reason must be command, idle or background",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Idle => "idle",
            Reason::Background => "background",
        }
    }
}

/// `--lock-after SECS`, else `HEARTBRIDGE_LOCK_AFTER` (seconds, at least 1).
pub fn lock_after_override() -> Option<u64> {
    parse_lock_after(
        std::env::args().skip(1),
        std::env::var("HEARTBRIDGE_LOCK_AFTER").ok(),
    )
}

fn parse_lock_after(mut args: impl Iterator<Item = String>, env: Option<String>) -> Option<u64> {
    let mut from_args = None;
    while let Some(a) = args.next() {
        if a == "--lock-after" {
            from_args = args.next();
        } else if let Some(v) = a.strip_prefix("--lock-after=") {
            from_args = Some(v.to_owned());
        }
    }
    from_args
        .or(env)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s >= 1)
}

pub struct Locker {
    store: Arc<StoreSlot>,
    syncer: Arc<Syncer>,
    /// The background sync, while the store is open.
    sync_task: Mutex<Option<JoinHandle<()>>>,
    lock_after_override: Option<u64>,
}

impl Locker {
    pub fn new(
        store: Arc<StoreSlot>,
        syncer: Arc<Syncer>,
        lock_after_override: Option<u64>,
    ) -> Arc<Self> {
        Arc::new(Locker {
            store,
            syncer,
            sync_task: Mutex::new(None),
            lock_after_override,
        })
    }

    /// The inactivity time in force (the setting is read only when unlocked).
    fn lock_after(&self) -> u64 {
        if let Some(s) = self.lock_after_override {
            return s;
        }
        self.store
            .with(|s| s.setting(SETTING))
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| LOCK_AFTER_RANGE.contains(s))
            .unwrap_or(DEFAULT_LOCK_AFTER_SECS)
    }

    /// `{state, triesLeft, wrongPin, lockAfterSecs, lockAfterFixed}`: nothing
    /// from inside the profile.
    pub fn status(&self, wrong_pin: bool) -> ApiResult<Value> {
        let (state, tries_left) = self.store.state()?;
        let lock_after = if state == LockState::Unlocked {
            self.lock_after()
        } else {
            self.lock_after_override.unwrap_or(DEFAULT_LOCK_AFTER_SECS)
        };
        Ok(json!({
            "state": state.as_str(),
            "triesLeft": if state == LockState::Locked { tries_left } else { None },
            "wrongPin": wrong_pin && state == LockState::Locked,
            "lockAfterSecs": lock_after,
            "lockAfterFixed": self.lock_after_override.is_some(),
        }))
    }

    /// Starts the background sync (once; again after an unlock).
    pub fn start_sync(&self, app: &AppHandle) {
        let Ok(mut task) = self.sync_task.lock() else {
            return;
        };
        if task.is_none() {
            let syncer = Arc::clone(&self.syncer);
            *task = Some(tauri::async_runtime::spawn(sync_task::background(
                syncer,
                app.clone(),
            )));
        }
    }

    fn stop_sync(&self) {
        if let Ok(mut task) = self.sync_task.lock() {
            if let Some(t) = task.take() {
                // A sync stopped anywhere resumes from the store's state
                // (ARCHITECTURE.md: nothing is lost between outbox and relay).
                t.abort();
            }
        }
    }

    /// Locks: the sync stops, the store closes and drops its key, and the
    /// UI is told to drop what it shows. Does nothing when not unlocked.
    pub fn lock(&self, app: &AppHandle, reason: Reason) -> ApiResult<()> {
        if self.store.state()?.0 != LockState::Unlocked {
            return Ok(());
        }
        self.stop_sync();
        if self.store.lock()? {
            let _ = app.emit("app-locked", reason.as_str());
        }
        Ok(())
    }

    /// Tries the PIN; on success the sync resumes.
    pub fn unlock(&self, app: &AppHandle, pin: Zeroizing<String>) -> ApiResult<Value> {
        // (the store is closed first even if it was open: the PIN is always checked)
        self.stop_sync();
        let outcome = self.store.unlock(pin)?;
        if outcome == Unlocked::Opened {
            self.start_sync(app);
        }
        self.status(matches!(outcome, Unlocked::WrongPin { .. }))
    }

    /// The profile was just created (first run): the sync starts.
    pub fn created(&self, app: &AppHandle) {
        self.start_sync(app);
    }

    pub fn set_lock_after(&self, secs: u64) -> ApiResult<Value> {
        if !LOCK_AFTER_RANGE.contains(&secs) {
            return Err(ApiError::new(
                "invalid_input",
                "the lock time must be between 1 and 60 minutes",
            ));
        }
        self.store
            .with(|s| s.set_setting(SETTING, &secs.to_string()))?;
        self.status(false)
    }

    pub fn forget_destroyed(&self) -> ApiResult<Value> {
        self.store.forget_destroyed()?;
        self.status(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_lock_time_for_a_run_comes_from_the_flag_then_the_environment() {
        assert_eq!(parse_lock_after(args(&["--profile", "p"]), None), None);
        assert_eq!(
            parse_lock_after(args(&["--profile", "p", "--lock-after", "3"]), None),
            Some(3)
        );
        assert_eq!(
            parse_lock_after(args(&["--lock-after=7"]), Some("9".into())),
            Some(7)
        );
        assert_eq!(parse_lock_after(args(&[]), Some(" 9 ".into())), Some(9));
        // Nonsense or zero fixes nothing: the setting stays in force.
        assert_eq!(
            parse_lock_after(args(&["--lock-after", "soon"]), None),
            None
        );
        assert_eq!(parse_lock_after(args(&["--lock-after", "0"]), None), None);
        assert_eq!(parse_lock_after(args(&["--lock-after"]), None), None);
    }

    #[test]
    fn reasons_are_the_uis_words() {
        for r in [Reason::Command, Reason::Idle, Reason::Background] {
            assert_eq!(Reason::parse(r.as_str()).unwrap(), r);
        }
        assert_eq!(Reason::parse("later").unwrap_err().kind, "invalid_input");
    }
}
