//! The app lock: what locks the app (the "Lock now" command, the UI's
//! inactivity timer, the window losing focus or being minimised, the mobile
//! app pausing), what locking does (stop the background sync, drop the
//! store and with it the key, tell the UI to drop what it shows), and what
//! unlocking does (reopen the store, resume the sync).
//!
//! The inactivity time is a setting inside the encrypted profile (it is
//! needed only while the app is unlocked), unless `--lock-after SECS` or
//! `HEARTBRIDGE_LOCK_AFTER` fixes it for this run (tests, kiosks).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The relay refused this device (or the lead's roster had it erased).
    Revoked,
}

impl Reason {
    pub fn parse(s: &str) -> ApiResult<Reason> {
        match s {
            "command" => Ok(Reason::Command),
            "idle" => Ok(Reason::Idle),
            "background" => Ok(Reason::Background),
            "revoked" => Ok(Reason::Revoked),
            _ => Err(ApiError::new(
                "invalid_input",
                "reason must be command, idle, background or revoked",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Idle => "idle",
            Reason::Background => "background",
            Reason::Revoked => "revoked",
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

/// How much later than the UI's own timer the back end locks by itself
/// when the UI reported no activity: the UI reports at most every quarter
/// of the lock time, so the back end never locks before the UI would.
fn slack(lock_after_secs: u64) -> Duration {
    Duration::from_secs(lock_after_secs / 4 + 2)
}

/// Whether `idle` without reported activity is past the lock time.
fn overdue(idle: Duration, lock_after_secs: u64) -> bool {
    idle > Duration::from_secs(lock_after_secs) + slack(lock_after_secs)
}

/// How long a lock the back end starts (the window left the screen, the
/// relay refused this device) waits for the UI to hand over the drafts it
/// holds and lock itself: the UI is told by `app-locking`.
pub const UI_GRACE: Duration = Duration::from_millis(500);

/// How often the back end's inactivity check runs.
fn check_every(lock_after_secs: u64) -> Duration {
    Duration::from_secs((lock_after_secs / 4).clamp(1, 15))
}

pub struct Locker {
    store: Arc<StoreSlot>,
    syncer: Arc<Syncer>,
    /// While the store is open: the background sync and the inactivity
    /// check (the back end's own, should the UI's timer not run).
    tasks: Mutex<Vec<JoinHandle<()>>>,
    lock_after_override: Option<u64>,
    /// The lock time in force, read when the store opens and when set.
    lock_after_now: AtomicU64,
    /// The last activity the UI reported (or the unlock).
    last_activity: Mutex<Instant>,
    /// Signalled whenever the store is closed by a lock.
    locked: tokio::sync::Notify,
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
            tasks: Mutex::new(Vec::new()),
            lock_after_override,
            lock_after_now: AtomicU64::new(DEFAULT_LOCK_AFTER_SECS),
            last_activity: Mutex::new(Instant::now()),
            locked: tokio::sync::Notify::new(),
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

    /// `{state, triesLeft, wrongPin, lockAfterSecs, lockAfterFixed,
    /// erasedBy}`: nothing from inside the profile (`erasedBy` says why a
    /// `destroyed` profile was erased: `wrong-pins` or `revoked`).
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
            "erasedBy": self.store.erased_by()?.map(|e| e.as_str()),
        }))
    }

    /// The UI saw the volunteer do something.
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(Duration::MAX)
    }

    /// Starts the background sync and the inactivity check (once; again
    /// after an unlock).
    fn start_tasks(self: &Arc<Self>, app: &AppHandle) {
        self.lock_after_now
            .store(self.lock_after(), Ordering::Relaxed);
        self.touch();
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        if !tasks.is_empty() {
            return;
        }
        // A device the relay called revoked syncs no more ("Sync now" still
        // checks the lead's roster).
        if !self.syncer.stopped() {
            let syncer = Arc::clone(&self.syncer);
            let (me, app) = (Arc::clone(self), app.clone());
            tasks.push(tauri::async_runtime::spawn(async move {
                let stop = sync_task::background(syncer, app.clone()).await;
                me.follow(&app, &stop).await;
            }));
        }
        let (me, app) = (Arc::clone(self), app.clone());
        tasks.push(tauri::async_runtime::spawn(async move {
            loop {
                let lock_after = me.lock_after_now.load(Ordering::Relaxed);
                tokio::time::sleep(check_every(lock_after)).await;
                if overdue(me.idle_for(), lock_after) {
                    let (me, app) = (Arc::clone(&me), app.clone());
                    let _ =
                        tauri::async_runtime::spawn_blocking(move || me.lock(&app, Reason::Idle))
                            .await;
                    return;
                }
            }
        }));
    }

    fn stop_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
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
        self.stop_tasks();
        let was_open = self.store.lock()?;
        self.locked.notify_waiters();
        if was_open {
            let _ = app.emit("app-locked", reason.as_str());
        }
        Ok(())
    }

    /// A lock the back end starts: the UI is told first (`app-locking`) so
    /// it can hand over an unsaved draft and lock itself; after
    /// [`UI_GRACE`] at most the back end locks anyway.
    pub async fn lock_soon(self: &Arc<Self>, app: &AppHandle, reason: Reason) {
        if !matches!(self.store.state(), Ok((LockState::Unlocked, _))) {
            return;
        }
        let locked = self.locked.notified();
        tokio::pin!(locked);
        locked.as_mut().enable();
        let _ = app.emit("app-locking", reason.as_str());
        let _ = tokio::time::timeout(UI_GRACE, locked).await;
        let (me, app) = (Arc::clone(self), app.clone());
        let _ = tauri::async_runtime::spawn_blocking(move || me.lock(&app, reason)).await;
    }

    /// After a sync ended with the relay refusing this device: the sync
    /// stays stopped and the app locks (the lock screen says why); after the
    /// lead's roster had the profile erased, the store is gone already and
    /// the UI shows the erased screen.
    pub async fn follow(self: &Arc<Self>, app: &AppHandle, e: &ApiError) {
        match e.kind.as_str() {
            "device_revoked" => self.lock_soon(app, Reason::Revoked).await,
            "erased" => {
                self.stop_tasks();
                self.locked.notify_waiters();
                let _ = app.emit("app-locked", Reason::Revoked.as_str());
            }
            _ => {}
        }
    }

    /// Tries the PIN; on success the sync resumes.
    pub fn unlock(self: &Arc<Self>, app: &AppHandle, pin: Zeroizing<String>) -> ApiResult<Value> {
        // (the store is closed first even if it was open: the PIN is always checked)
        self.stop_tasks();
        let outcome = self.store.unlock(pin)?;
        if outcome == Unlocked::Opened {
            self.start_tasks(app);
        }
        self.status(matches!(outcome, Unlocked::WrongPin { .. }))
    }

    /// The profile was just created (first run): the sync starts.
    pub fn created(self: &Arc<Self>, app: &AppHandle) {
        self.start_tasks(app);
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
        self.lock_after_now
            .store(self.lock_after(), Ordering::Relaxed);
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
    fn the_back_end_locks_only_after_the_ui_would_have() {
        // The UI reports activity at most every quarter of the lock time:
        // the last report may be that much older than the last activity.
        for lock_after in [3, 60, 300, 3600] {
            let ui_locks_at = Duration::from_secs(lock_after);
            let report_gap = Duration::from_secs(lock_after) / 4;
            assert!(!overdue(ui_locks_at + report_gap, lock_after));
            assert!(overdue(
                ui_locks_at + report_gap + Duration::from_secs(3),
                lock_after
            ));
            assert!(check_every(lock_after) >= Duration::from_secs(1));
            assert!(check_every(lock_after) <= Duration::from_secs(15));
        }
        // 5 minutes: locked by the back end at 6 min 17 s without a report.
        assert!(!overdue(Duration::from_secs(377), 300));
        assert!(overdue(Duration::from_secs(378), 300));
    }

    #[tokio::test]
    async fn the_lock_status_says_nothing_of_the_profile_and_the_setting_is_kept_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Arc::new(StoreSlot::new(dir.path().join("p")));
        slot.create_or_open("陈静", Some(Zeroizing::new("246810".into())))
            .unwrap();
        let http = heartbridge_client::HttpTransport::new().unwrap();
        let locker = Locker::new(
            Arc::clone(&slot),
            Syncer::new(Arc::clone(&slot), http),
            None,
        );

        let v = locker.status(false).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "erasedBy",
                "lockAfterFixed",
                "lockAfterSecs",
                "state",
                "triesLeft",
                "wrongPin"
            ]
        );
        assert_eq!(v["state"], "unlocked");
        assert_eq!(v["lockAfterSecs"], 300);
        assert_eq!(locker.set_lock_after(120).unwrap()["lockAfterSecs"], 120);
        assert_eq!(locker.set_lock_after(30).unwrap_err().kind, "invalid_input");
        assert_eq!(
            locker.set_lock_after(7200).unwrap_err().kind,
            "invalid_input"
        );

        slot.lock().unwrap();
        let v = locker.status(false).unwrap();
        assert_eq!(v["state"], "locked");
        assert!(!v.to_string().contains("陈静"));
        assert_eq!(locker.set_lock_after(600).unwrap_err().kind, "locked");
        slot.unlock(Zeroizing::new("246810".into())).unwrap();
        assert_eq!(locker.status(false).unwrap()["lockAfterSecs"], 120);

        // A run with the time fixed by the flag says so, and keeps it.
        let fixed = Locker::new(
            Arc::clone(&slot),
            Syncer::new(
                Arc::clone(&slot),
                heartbridge_client::HttpTransport::new().unwrap(),
            ),
            Some(3),
        );
        let v = fixed.status(false).unwrap();
        assert_eq!(
            (v["lockAfterSecs"].as_u64(), v["lockAfterFixed"].as_bool()),
            (Some(3), Some(true))
        );
    }

    #[test]
    fn reasons_are_the_uis_words() {
        for r in [
            Reason::Command,
            Reason::Idle,
            Reason::Background,
            Reason::Revoked,
        ] {
            assert_eq!(Reason::parse(r.as_str()).unwrap(), r);
        }
        assert_eq!(Reason::parse("later").unwrap_err().kind, "invalid_input");
    }
}
