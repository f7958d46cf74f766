//! The app's one connection to the profile's store, shared by the commands
//! and the background sync. It is locked only for store calls (each a few
//! SQLite transactions at most), never across a network request.
//!
//! It is also the app lock's state: the store is open (`Unlocked`) only
//! between a right PIN and the next lock. Locking drops the `Store` (the
//! SQLCipher connection closes and core drops the key); every command then
//! gets `locked` until the PIN opens it again. Nothing the slot says while
//! locked comes from inside the profile.

use std::path::PathBuf;
use std::sync::Mutex;

use heartbridge_core::Store;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

/// The shortest PIN or passphrase the app accepts, in characters.
pub const MIN_PIN_CHARS: usize = 6;

/// The lock's state, as the lock screen may show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Nothing on this device yet: the first run sets a PIN.
    NoProfile,
    /// A profile made before the app had a PIN: setting one encrypts it.
    NeedsPin,
    /// The profile is closed; only the PIN opens it.
    Locked,
    /// The store is open.
    Unlocked,
    /// Too many wrong PINs: core erased the keys and the database.
    Destroyed,
}

impl LockState {
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::NoProfile => "no-profile",
            LockState::NeedsPin => "needs-pin",
            LockState::Locked => "locked",
            LockState::Unlocked => "unlocked",
            LockState::Destroyed => "destroyed",
        }
    }
}

/// How an unlock attempt ended (a wrong PIN is an outcome, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocked {
    Opened,
    WrongPin {
        tries_left: u32,
    },
    Destroyed,
    /// There was nothing to open (no profile).
    NoProfile,
}

/// Why the profile was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasedBy {
    /// Too many wrong PINs.
    WrongPins,
    /// The team's lead removed this device (a signed revocation).
    Revoked,
}

impl ErasedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasedBy::WrongPins => "wrong-pins",
            ErasedBy::Revoked => "revoked",
        }
    }
}

#[derive(Default)]
struct Inner {
    store: Option<Store>,
    /// Set when this run of the app saw the profile erased; cleared by
    /// `forget_destroyed` (the volunteer starts again).
    destroyed: bool,
    /// Why it was erased (the lock screen says so).
    destroyed_by: Option<ErasedBy>,
    /// After a wrong PIN: the tries left, as core counted them.
    tries_left: Option<u32>,
}

pub struct StoreSlot {
    profile: PathBuf,
    inner: Mutex<Inner>,
}

pub fn locked_error() -> ApiError {
    ApiError::new(
        "locked",
        "Heartbridge is locked: enter your PIN to unlock it first.",
    )
}

fn pin_too_short() -> ApiError {
    ApiError::new(
        "pin_too_short",
        format!("the PIN or passphrase needs at least {MIN_PIN_CHARS} characters"),
    )
}

/// Checks a new PIN's length (characters as a person counts them).
pub fn check_new_pin(pin: &str) -> ApiResult<()> {
    if pin.chars().count() < MIN_PIN_CHARS {
        return Err(pin_too_short());
    }
    Ok(())
}

impl StoreSlot {
    pub fn new(profile: PathBuf) -> Self {
        StoreSlot {
            profile,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock_inner(&self) -> ApiResult<std::sync::MutexGuard<'_, Inner>> {
        // A command that panicked while holding the store (review K3) left
        // no half-done write behind (its transaction rolled back as it
        // unwound); refusing every later call would leave the profile open
        // in memory with no way to lock it, so the state is taken as it is.
        Ok(self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The lock's state now. Reads only which files exist, never the
    /// profile itself.
    pub fn state(&self) -> ApiResult<(LockState, Option<u32>)> {
        let inner = self.lock_inner()?;
        Ok((self.state_of(&inner), inner.tries_left))
    }

    /// Why the profile was erased, when this run saw it erased.
    pub fn erased_by(&self) -> ApiResult<Option<ErasedBy>> {
        let inner = self.lock_inner()?;
        Ok(match self.state_of(&inner) {
            LockState::Destroyed => inner.destroyed_by,
            _ => None,
        })
    }

    /// Core erased the profile (the lead's signed revocation of this
    /// device): the store, whose files are gone, is dropped.
    pub fn erased(&self) -> ApiResult<()> {
        let mut inner = self.lock_inner()?;
        let store = inner.store.take();
        inner.destroyed = true;
        inner.destroyed_by = Some(ErasedBy::Revoked);
        inner.tries_left = None;
        drop(inner);
        drop(store);
        Ok(())
    }

    fn state_of(&self, inner: &Inner) -> LockState {
        if inner.store.is_some() {
            return LockState::Unlocked;
        }
        match vault::on_disk(&self.profile) {
            vault::OnDisk::Nothing if inner.destroyed => LockState::Destroyed,
            vault::OnDisk::Nothing => LockState::NoProfile,
            vault::OnDisk::Plain => LockState::NeedsPin,
            vault::OnDisk::Protected => LockState::Locked,
        }
    }

    /// Runs `f` on the open store; `locked` while the app is locked,
    /// `profile_missing` when there is no profile.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, heartbridge_core::Error>,
    ) -> ApiResult<T> {
        let mut inner = self.lock_inner()?;
        if inner.store.is_none() {
            return Err(match self.state_of(&inner) {
                LockState::NoProfile | LockState::Destroyed => ApiError::no_profile(),
                _ => locked_error(),
            });
        }
        let store = inner.store.as_mut().ok_or_else(locked_error)?;
        Ok(f(store)?)
    }

    /// The open profile, or a new one created with `name` and protected by
    /// `pin` if there is none yet. An existing profile that is locked is
    /// not opened here (that is `unlock`'s job, with its tries counted).
    pub fn create_or_open(&self, name: &str, pin: Option<Zeroizing<String>>) -> ApiResult<()> {
        let mut inner = self.lock_inner()?;
        if inner.store.is_some() {
            return Ok(());
        }
        match self.state_of(&inner) {
            LockState::NoProfile | LockState::Destroyed => {
                let pin = pin.ok_or_else(pin_too_short)?;
                check_new_pin(&pin)?;
                inner.store = Some(vault::create(&self.profile, name, pin)?);
                inner.destroyed = false;
                inner.destroyed_by = None;
                inner.tries_left = None;
                Ok(())
            }
            _ => Err(locked_error()),
        }
    }

    /// Opens the profile with `pin` (a profile without a PIN yet gets this
    /// one, and is encrypted). The PIN is always checked: a store still
    /// open (the UI locked but the back end did not) is closed first.
    pub fn unlock(&self, pin: Zeroizing<String>) -> ApiResult<Unlocked> {
        let mut inner = self.lock_inner()?;
        drop(inner.store.take());
        match self.state_of(&inner) {
            LockState::Destroyed => return Ok(Unlocked::Destroyed),
            LockState::NoProfile => return Ok(Unlocked::NoProfile),
            LockState::NeedsPin => check_new_pin(&pin)?,
            // (not `Unlocked`: the store was just taken)
            LockState::Locked | LockState::Unlocked => {}
        }
        match vault::open(&self.profile, pin) {
            Ok(store) => {
                inner.store = Some(store);
                inner.tries_left = None;
                Ok(Unlocked::Opened)
            }
            Err(vault::OpenError::WrongPin { tries_left }) => {
                inner.tries_left = Some(tries_left);
                Ok(Unlocked::WrongPin { tries_left })
            }
            Err(vault::OpenError::Destroyed) => {
                inner.destroyed = true;
                inner.destroyed_by.get_or_insert(ErasedBy::WrongPins);
                inner.tries_left = None;
                Ok(Unlocked::Destroyed)
            }
            Err(vault::OpenError::Other(e)) => Err(e),
        }
    }

    /// Closes the store (waiting for a store call in progress to finish).
    /// Returns whether it was open.
    pub fn lock(&self) -> ApiResult<bool> {
        let mut inner = self.lock_inner()?;
        let store = inner.store.take();
        drop(inner);
        let was_open = store.is_some();
        // Dropping the `Store` closes its SQLCipher connection; core's
        // key material is zeroized on drop.
        drop(store);
        Ok(was_open)
    }

    /// After the profile was erased: back to the first run.
    pub fn forget_destroyed(&self) -> ApiResult<()> {
        let mut inner = self.lock_inner()?;
        inner.destroyed = false;
        inner.destroyed_by = None;
        Ok(())
    }
}

/// The few calls into core's protected store (`Store::init` with a
/// `Protection`, `Store::open` with an `Unlock`), in one place.
mod vault {
    use std::path::Path;

    use heartbridge_core::{Error, Store, DB_FILE};
    use zeroize::Zeroizing;

    use crate::error::ApiError;

    /// What the profile directory holds, from file names and sizes only.
    pub enum OnDisk {
        Nothing,
        /// A database without a keys file: a profile from before PINs.
        Plain,
        Protected,
    }

    pub fn on_disk(dir: &Path) -> OnDisk {
        let non_empty = |name: &str| {
            std::fs::metadata(dir.join(name))
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        };
        if non_empty(heartbridge_core::KEYS_FILE) {
            OnDisk::Protected
        } else if non_empty(DB_FILE) {
            OnDisk::Plain
        } else {
            OnDisk::Nothing
        }
    }

    pub enum OpenError {
        WrongPin { tries_left: u32 },
        Destroyed,
        Other(ApiError),
    }

    pub fn create(dir: &Path, name: &str, pin: Zeroizing<String>) -> Result<Store, ApiError> {
        let protection = heartbridge_core::Protection::pin(pin.as_str());
        Ok(Store::init(dir, name, &protection)?)
    }

    pub fn open(dir: &Path, pin: Zeroizing<String>) -> Result<Store, OpenError> {
        Store::open(dir, &heartbridge_core::Unlock::Pin(pin)).map_err(|e| match e {
            Error::WrongPin { tries_left } => OpenError::WrongPin { tries_left },
            Error::ProfileDestroyed => OpenError::Destroyed,
            Error::ProfileMissing { .. } => OpenError::Other(ApiError::no_profile()),
            e => OpenError::Other(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[test]
    fn a_new_profile_needs_a_pin_of_six_characters() {
        let dir = tempfile::tempdir().unwrap();
        let slot = StoreSlot::new(dir.path().join("p"));
        assert_eq!(slot.state().unwrap().0, LockState::NoProfile);
        assert_eq!(
            slot.create_or_open("陈静", None).unwrap_err().kind,
            "pin_too_short"
        );
        assert_eq!(
            slot.create_or_open("陈静", Some(pin("12345")))
                .unwrap_err()
                .kind,
            "pin_too_short"
        );
        assert_eq!(slot.state().unwrap().0, LockState::NoProfile);
        slot.create_or_open("陈静", Some(pin("心桥守护你我")))
            .unwrap();
        assert_eq!(slot.state().unwrap().0, LockState::Unlocked);
        assert_eq!(slot.with(|s| Ok(s.profile().name.clone())).unwrap(), "陈静");
    }

    /// Review K3: a command that panics while it holds the store does not
    /// leave the app unable to lock (the profile open in memory for the
    /// rest of the run) or to read what was saved.
    #[test]
    fn a_command_that_panicked_leaves_the_app_able_to_lock_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let slot = StoreSlot::new(dir.path().join("p"));
        slot.create_or_open("陈静", Some(pin("246810"))).unwrap();
        slot.with(|s| s.set_setting("probe", "kept")).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = slot.with(|_| -> Result<(), heartbridge_core::Error> {
                panic!("a bug in a command");
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(
            slot.with(|s| s.setting("probe")).unwrap().as_deref(),
            Some("kept")
        );
        assert!(slot.lock().unwrap());
        assert_eq!(slot.state().unwrap(), (LockState::Locked, None));
    }

    #[test]
    fn locked_refuses_every_store_call_until_the_right_pin() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p");
        let slot = StoreSlot::new(profile.clone());
        slot.create_or_open("陈静", Some(pin("246810"))).unwrap();
        slot.with(|s| s.set_setting("probe", "kept")).unwrap();
        assert!(slot.lock().unwrap());
        assert!(!slot.lock().unwrap(), "locking twice is a no-op");
        assert_eq!(slot.state().unwrap(), (LockState::Locked, None));
        let e = slot.with(|s| s.setting("probe")).unwrap_err();
        assert_eq!(e.kind, "locked");
        // A locked profile is not reopened by a create (the first-run path).
        assert_eq!(
            slot.create_or_open("x", Some(pin("000000")))
                .unwrap_err()
                .kind,
            "locked"
        );

        assert_eq!(
            slot.unlock(pin("000000")).unwrap(),
            Unlocked::WrongPin { tries_left: 9 }
        );
        assert_eq!(slot.state().unwrap(), (LockState::Locked, Some(9)));
        assert_eq!(
            slot.with(|s| s.setting("probe")).unwrap_err().kind,
            "locked"
        );
        assert_eq!(slot.unlock(pin("246810")).unwrap(), Unlocked::Opened);
        assert_eq!(slot.state().unwrap(), (LockState::Unlocked, None));
        assert_eq!(
            slot.with(|s| s.setting("probe")).unwrap().as_deref(),
            Some("kept")
        );

        // A new slot (the app started again) finds it locked.
        drop(slot);
        let again = StoreSlot::new(profile);
        assert_eq!(again.state().unwrap().0, LockState::Locked);
        assert_eq!(
            again.with(|s| s.setting("probe")).unwrap_err().kind,
            "locked"
        );
    }

    #[test]
    fn a_profile_from_before_pins_gets_one_and_is_encrypted_with_its_notes_kept() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p");
        let mut old = heartbridge_core::testing::init_plaintext(&profile, "陈静").unwrap();
        old.set_setting("probe", "kept").unwrap();
        drop(old);
        let slot = StoreSlot::new(profile.clone());
        assert_eq!(slot.state().unwrap().0, LockState::NeedsPin);
        assert_eq!(
            slot.with(|s| s.setting("probe")).unwrap_err().kind,
            "locked"
        );
        assert_eq!(slot.unlock(pin("12345")).unwrap_err().kind, "pin_too_short");
        assert_eq!(slot.unlock(pin("246810")).unwrap(), Unlocked::Opened);
        assert_eq!(
            slot.with(|s| s.setting("probe")).unwrap().as_deref(),
            Some("kept")
        );
        assert!(profile.join(heartbridge_core::KEYS_FILE).exists());
        // From now on it is a PIN-protected profile like any other.
        slot.lock().unwrap();
        assert_eq!(slot.state().unwrap().0, LockState::Locked);
        assert_eq!(
            slot.unlock(pin("135791")).unwrap(),
            Unlocked::WrongPin { tries_left: 9 }
        );
        assert_eq!(slot.unlock(pin("246810")).unwrap(), Unlocked::Opened);
    }

    #[test]
    fn unlocking_always_checks_the_pin_even_when_the_store_was_open() {
        let dir = tempfile::tempdir().unwrap();
        let slot = StoreSlot::new(dir.path().join("p"));
        slot.create_or_open("陈静", Some(pin("246810"))).unwrap();
        assert_eq!(
            slot.unlock(pin("999999")).unwrap(),
            Unlocked::WrongPin { tries_left: 9 }
        );
        assert_eq!(slot.with(|s| s.setting("x")).unwrap_err().kind, "locked");
    }

    #[test]
    fn ten_wrong_pins_erase_the_profile_and_the_app_says_so_then_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p");
        let slot = StoreSlot::new(profile.clone());
        slot.create_or_open("陈静", Some(pin("246810"))).unwrap();
        slot.lock().unwrap();
        for left in (1..10).rev() {
            assert_eq!(
                slot.unlock(pin("000000")).unwrap(),
                Unlocked::WrongPin { tries_left: left }
            );
        }
        assert_eq!(slot.unlock(pin("000000")).unwrap(), Unlocked::Destroyed);
        assert_eq!(slot.state().unwrap().0, LockState::Destroyed);
        // The right PIN opens nothing any more.
        assert_eq!(slot.unlock(pin("246810")).unwrap(), Unlocked::Destroyed);
        assert!(
            !profile.join(heartbridge_core::DB_FILE).exists(),
            "the database is still there"
        );
        slot.forget_destroyed().unwrap();
        assert_eq!(slot.state().unwrap().0, LockState::NoProfile);
        slot.create_or_open("新的我", Some(pin("135791"))).unwrap();
        assert_eq!(
            slot.with(|s| Ok(s.profile().name.clone())).unwrap(),
            "新的我"
        );
    }
}
