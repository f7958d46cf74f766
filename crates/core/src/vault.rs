//! How a profile is protected at rest: the secrets that open it and the
//! protection a new profile gets.

use zeroize::Zeroizing;

/// The keys file beside `DB_FILE` in a profile directory.
pub const KEYS_FILE: &str = "heartbridge.keys";

/// Wrong PINs in a row after which the profile is erased, unless a
/// [`Protection`] says otherwise.
pub const DEFAULT_MAX_FAILED: u32 = 10;

/// What opens a protected profile.
pub enum Unlock {
    /// The volunteer's PIN or passphrase.
    Pin(Zeroizing<String>),
    /// The key held in the operating system's key store, without a PIN.
    KeyStore,
}

impl Unlock {
    /// A PIN or passphrase (copied into zeroizing memory).
    pub fn pin(pin: impl AsRef<str>) -> Unlock {
        Unlock::Pin(Zeroizing::new(pin.as_ref().to_owned()))
    }
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlock::Pin(_) => f.write_str("Unlock::Pin(<redacted>)"),
            Unlock::KeyStore => f.write_str("Unlock::KeyStore"),
        }
    }
}

/// The cost of deriving a key from a PIN (Argon2id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        KdfParams {
            m_kib: 19456,
            t: 2,
            p: 1,
        }
    }
}

/// How a new profile (or a plaintext one being encrypted) is protected.
#[derive(Clone)]
pub struct Protection {
    /// The PIN or passphrase that opens it (`None`: the key store only).
    pub pin: Option<Zeroizing<String>>,
    /// Also wrap the database key with a key in the OS key store (when
    /// the platform has one).
    pub use_keystore: bool,
    /// Wrong PINs in a row after which keys and database are erased.
    pub max_failed: u32,
    /// The Argon2id cost of the PIN.
    pub kdf: KdfParams,
}

impl Protection {
    /// Protected by a PIN or passphrase, default limits and cost.
    pub fn pin(pin: impl AsRef<str>) -> Protection {
        Protection {
            pin: Some(Zeroizing::new(pin.as_ref().to_owned())),
            use_keystore: false,
            max_failed: DEFAULT_MAX_FAILED,
            kdf: KdfParams::default(),
        }
    }

    /// Protected by the OS key store alone (no PIN).
    pub fn keystore() -> Protection {
        Protection {
            pin: None,
            use_keystore: true,
            max_failed: DEFAULT_MAX_FAILED,
            kdf: KdfParams::default(),
        }
    }

    /// The same, erased after `n` wrong PINs in a row.
    pub fn with_max_failed(mut self, n: u32) -> Protection {
        self.max_failed = n.max(1);
        self
    }

    /// The same, also wrapped by the OS key store.
    pub fn with_keystore(mut self, on: bool) -> Protection {
        self.use_keystore = on;
        self
    }

    /// The same, with another Argon2id cost.
    pub fn with_kdf(mut self, kdf: KdfParams) -> Protection {
        self.kdf = kdf;
        self
    }
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field("use_keystore", &self.use_keystore)
            .field("max_failed", &self.max_failed)
            .field("kdf", &self.kdf)
            .finish()
    }
}

/// The one PIN every test uses, and the protection and unlock made of it.
///
/// Not for production: `protection()` uses a cheap Argon2id cost so test
/// suites that open thousands of profiles stay fast. Tests of the real
/// cost use [`Protection::pin`].
#[doc(hidden)]
pub mod testing {
    use super::{KdfParams, Protection, Unlock};

    /// The test PIN.
    pub const TEST_PIN: &str = "test-pin";

    /// A cheap Argon2id cost for tests (1 MiB, 1 pass).
    pub const TEST_KDF: KdfParams = KdfParams {
        m_kib: 1024,
        t: 1,
        p: 1,
    };

    /// `TEST_PIN` at the test cost.
    pub fn protection() -> Protection {
        Protection::pin(TEST_PIN).with_kdf(TEST_KDF)
    }

    /// Opens a profile made with [`protection`].
    pub fn unlock() -> Unlock {
        Unlock::pin(TEST_PIN)
    }
}
