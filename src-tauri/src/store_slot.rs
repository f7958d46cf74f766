//! The app's one connection to the profile's store, shared by the commands
//! and the background sync. It is locked only for store calls (each a few
//! SQLite transactions at most), never across a network request.

use std::path::PathBuf;
use std::sync::Mutex;

use heartbridge_core::Store;

use crate::error::{ApiError, ApiResult};

pub struct StoreSlot {
    profile: PathBuf,
    store: Mutex<Option<Store>>,
}

impl StoreSlot {
    pub fn new(profile: PathBuf) -> Self {
        StoreSlot {
            profile,
            store: Mutex::new(None),
        }
    }

    fn lock(&self) -> ApiResult<std::sync::MutexGuard<'_, Option<Store>>> {
        self.store
            .lock()
            .map_err(|_| ApiError::new("internal", "the app state is unavailable; restart the app"))
    }

    /// Runs `f` on the store, opening it first if needed.
    ///
    /// Until the app's lock screen (issue 8) asks for a PIN, the profile is
    /// protected by an empty one.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, heartbridge_core::Error>,
    ) -> ApiResult<T> {
        let mut guard = self.lock()?;
        if guard.is_none() {
            *guard = Some(
                Store::open(&self.profile, &heartbridge_core::Unlock::pin("")).map_err(
                    |e| match e {
                        heartbridge_core::Error::ProfileMissing { .. } => ApiError::no_profile(),
                        e => e.into(),
                    },
                )?,
            );
        }
        let store = guard.as_mut().ok_or_else(ApiError::no_profile)?;
        Ok(f(store)?)
    }

    /// Opens the profile, creating it with `name` if there is none yet.
    pub fn create_or_open(&self, name: &str) -> ApiResult<()> {
        let mut guard = self.lock()?;
        if guard.is_none() {
            let store = match Store::open(&self.profile, &heartbridge_core::Unlock::pin("")) {
                Ok(s) => s,
                Err(heartbridge_core::Error::ProfileMissing { .. }) => {
                    Store::init(&self.profile, name, &heartbridge_core::Protection::pin(""))?
                }
                Err(e) => return Err(e.into()),
            };
            *guard = Some(store);
        }
        Ok(())
    }
}
