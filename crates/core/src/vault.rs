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

// ---------------------------------------------------------------------
// The database key and the keys file.
// ---------------------------------------------------------------------

/// Left in place of the keys after the profile was erased, so later opens
/// say so instead of "no profile". Holds nothing.
pub(crate) const ERASED_FILE: &str = "heartbridge.erased";

/// The keys file's temporary names while it is rewritten (a random suffix
/// each time, so two processes never write the same one).
pub(crate) const KEYS_TMP_PREFIX: &str = "heartbridge.keys.tmp-";

/// Held (an exclusive lock on it) while a PIN is counted and checked, so
/// guesses in parallel processes are counted one by one.
pub(crate) const LOCK_FILE: &str = "heartbridge.lock";

/// The service name of key-store entries.
const KEYSTORE_SERVICE: &str = "org.heartbridge.profile";

const KEYS_VERSION: u32 = 1;

/// The random key of a profile's SQLCipher database (never derived).
pub(crate) struct Dek(Zeroizing<[u8; 32]>);

impl Dek {
    pub(crate) fn random() -> Dek {
        Dek(Zeroizing::new(rand::random()))
    }

    /// `PRAGMA key` value: a raw key, so SQLCipher skips its own KDF.
    pub(crate) fn pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(*self.0)))
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// The DEK sealed under a key-encryption key.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Wrapped {
    nonce: String,
    sealed: String,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct PinWrap {
    salt: String,
    kdf: KdfParams,
    /// Whether the key-store secret is mixed into the PIN's key.
    with_keystore: bool,
    dek: Wrapped,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct KeyStoreWrap {
    /// The key-store entry's user name (random, names nothing).
    entry: String,
    dek: Wrapped,
}

/// `heartbridge.keys`: how to get the database key. No secret in clear.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeysFile {
    version: u32,
    max_failed: u32,
    /// Wrong PINs in a row so far (written and fsynced before each check).
    failed: u32,
    pin: Option<PinWrap>,
    keystore: Option<KeyStoreWrap>,
    /// The first 16 bytes of the database (SQLCipher's salt, not secret):
    /// tells a damaged database from one this key never belonged to.
    #[serde(default)]
    db_salt: Option<String>,
}

fn vault_io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn damaged_keys(dir: &Path, detail: &str) -> Error {
    Error::DatabaseCorrupt {
        path: dir.join(KEYS_FILE),
        detail: format!("keys file: {detail}"),
    }
}

fn unhex<const N: usize>(dir: &Path, s: &str) -> Result<[u8; N]> {
    let v = hex::decode(s).map_err(|_| damaged_keys(dir, "bad hex"))?;
    v.try_into().map_err(|_| damaged_keys(dir, "bad length"))
}

const AAD: &[u8] = b"heartbridge.keys v1 dek";

fn seal(kek: &[u8; 32], dek: &Dek) -> Wrapped {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(kek.into());
    let nonce: [u8; 24] = rand::random();
    let sealed = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &dek.0[..],
                aad: AAD,
            },
        )
        .expect("XChaCha20-Poly1305 seals any 32 bytes");
    Wrapped {
        nonce: hex::encode(nonce),
        sealed: hex::encode(sealed),
    }
}

/// `None`: the key does not open it (wrong PIN or key).
fn open_wrapped(dir: &Path, kek: &[u8; 32], w: &Wrapped) -> Result<Option<Dek>> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(kek.into());
    let nonce: [u8; 24] = unhex(dir, &w.nonce)?;
    let sealed = hex::decode(&w.sealed).map_err(|_| damaged_keys(dir, "bad hex"))?;
    let Ok(plain) = cipher.decrypt(
        (&nonce).into(),
        Payload {
            msg: &sealed,
            aad: AAD,
        },
    ) else {
        return Ok(None);
    };
    let plain = Zeroizing::new(plain);
    let key: [u8; 32] = plain[..]
        .try_into()
        .map_err(|_| damaged_keys(dir, "bad key length"))?;
    Ok(Some(Dek(Zeroizing::new(key))))
}

/// Argon2id(PIN, salt), mixed with the key-store secret when there is one.
pub fn derive_pin_key(
    pin: &str,
    salt: &[u8; 16],
    kdf: KdfParams,
    keystore_secret: Option<&[u8; 32]>,
) -> Result<Zeroizing<[u8; 32]>> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let bad = |_| Error::InvalidValue {
        field: "argon2 parameters",
        value: format!("m={} t={} p={}", kdf.m_kib, kdf.t, kdf.p),
        allowed: "m >= 8*p KiB, t >= 1, p >= 1",
    };
    let params = Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).map_err(bad)?;
    let argon = match keystore_secret {
        Some(secret) => {
            Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params)
                .map_err(bad)?
        }
        None => Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
    };
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pin.as_bytes(), salt, &mut out[..])
        .map_err(bad)?;
    Ok(out)
}

// The OS key store, through keyring-core's default store (set by the app
// for its platform; none on bare Linux and in CI).

fn keystore_entry(entry: &str) -> Option<keyring_core::Entry> {
    keyring_core::get_default_store()?;
    keyring_core::Entry::new(KEYSTORE_SERVICE, entry).ok()
}

/// Whether this process has an OS key store.
pub fn keystore_available() -> bool {
    keyring_core::get_default_store().is_some()
}

fn keystore_get(entry: &str) -> Option<Zeroizing<[u8; 32]>> {
    let secret = Zeroizing::new(keystore_entry(entry)?.get_secret().ok()?);
    let key: [u8; 32] = secret[..].try_into().ok()?;
    Some(Zeroizing::new(key))
}

fn keystore_delete(entry: &str) {
    if let Some(e) = keystore_entry(entry) {
        let _ = e.delete_credential();
    }
}

#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(vault_io(path)(e)),
    }
}

#[cfg(not(unix))]
pub(crate) fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Creates (or truncates) a file readable by its owner only.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path).map_err(vault_io(path))?;
    set_mode(path, 0o600)?;
    Ok(f)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(vault_io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_durably(dir: &Path, name: &str, tmp_name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(tmp_name);
    let mut f = create_private(&tmp)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(vault_io(&tmp))?;
    drop(f);
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).map_err(vault_io(&path))?;
    sync_dir(dir)
}

impl KeysFile {
    /// Wraps a new DEK as `protection` says. Returns the file and the
    /// key-store entry it made, if any.
    pub(crate) fn new(protection: &Protection, dek: &Dek) -> Result<KeysFile> {
        let keystore = if protection.use_keystore && keystore_available() {
            let entry = hex::encode(rand::random::<[u8; 16]>());
            let secret = Zeroizing::new(rand::random::<[u8; 32]>());
            keystore_entry(&entry)
                .ok_or(Error::KeyStoreUnavailable)?
                .set_secret(&secret[..])
                .map_err(|_| Error::KeyStoreUnavailable)?;
            Some((entry, secret))
        } else if protection.use_keystore && protection.pin.is_none() {
            return Err(Error::KeyStoreUnavailable);
        } else {
            None
        };
        let pin = match &protection.pin {
            Some(pin) => {
                if pin.is_empty() {
                    return Err(Error::Empty {
                        what: "the PIN or passphrase",
                    });
                }
                let salt: [u8; 16] = rand::random();
                let kek = derive_pin_key(
                    pin,
                    &salt,
                    protection.kdf,
                    keystore.as_ref().map(|(_, s)| &**s),
                )?;
                Some(PinWrap {
                    salt: hex::encode(salt),
                    kdf: protection.kdf,
                    with_keystore: keystore.is_some(),
                    dek: seal(&kek, dek),
                })
            }
            None => None,
        };
        Ok(KeysFile {
            version: KEYS_VERSION,
            max_failed: protection.max_failed.max(1),
            failed: 0,
            pin,
            db_salt: None,
            keystore: keystore.map(|(entry, secret)| KeyStoreWrap {
                dek: seal(&secret, dek),
                entry,
            }),
        })
    }

    pub(crate) fn read(dir: &Path) -> Result<Option<KeysFile>> {
        let path = dir.join(KEYS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(vault_io(&path)(e)),
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        let keys: KeysFile =
            serde_json::from_slice(&bytes).map_err(|_| damaged_keys(dir, "not readable"))?;
        if keys.version != KEYS_VERSION {
            return Err(damaged_keys(dir, "unknown version"));
        }
        Ok(Some(keys))
    }

    /// The key-store entry's name, if the key store holds a wrap.
    #[cfg(test)]
    pub(crate) fn keystore_entry(&self) -> Option<&str> {
        self.keystore.as_ref().map(|k| k.entry.as_str())
    }

    /// Records the database's salt (its first 16 bytes).
    pub(crate) fn set_db_salt(&mut self, salt: [u8; 16]) {
        self.db_salt = Some(hex::encode(salt));
    }

    /// The database's salt when the keys were written.
    pub(crate) fn db_salt(&self) -> Option<[u8; 16]> {
        let v = hex::decode(self.db_salt.as_deref()?).ok()?;
        v.try_into().ok()
    }

    /// Writes the file durably (temporary name, fsync, rename, dir fsync).
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("keys file serializes");
        let tmp = format!(
            "{KEYS_TMP_PREFIX}{}",
            hex::encode(rand::random::<[u8; 8]>())
        );
        write_durably(dir, KEYS_FILE, &tmp, &bytes)?;
        // The lock file is part of a protected profile from the start.
        drop(open_lock(dir)?);
        Ok(())
    }

    /// The DEK for `unlock`. A wrong PIN is counted (durably, before the
    /// check); at `max_failed` the profile is erased.
    pub(crate) fn unlock(&mut self, dir: &Path, unlock: &Unlock) -> Result<Dek> {
        match unlock {
            Unlock::KeyStore => {
                let ks = self.keystore.as_ref().ok_or(if self.pin.is_some() {
                    Error::PinRequired
                } else {
                    Error::KeyStoreUnavailable
                })?;
                let secret = keystore_get(&ks.entry).ok_or(Error::KeyStoreUnavailable)?;
                open_wrapped(dir, &secret, &ks.dek)?.ok_or(Error::KeyStoreUnavailable)
            }
            Unlock::Pin(pin) => {
                let Some(pw) = self.pin.clone() else {
                    // A profile held by the key store alone.
                    return self.unlock(dir, &Unlock::KeyStore);
                };
                let secret = if pw.with_keystore {
                    let entry = &self
                        .keystore
                        .as_ref()
                        .ok_or_else(|| damaged_keys(dir, "no key-store entry"))?
                        .entry;
                    Some(keystore_get(entry).ok_or(Error::KeyStoreUnavailable)?)
                } else {
                    None
                };
                if self.failed >= self.max_failed {
                    destroy(dir, Some(self))?;
                    return Err(Error::ProfileDestroyed);
                }
                self.failed += 1;
                self.write(dir)?;
                let salt: [u8; 16] = unhex(dir, &pw.salt)?;
                let kek = derive_pin_key(pin, &salt, pw.kdf, secret.as_deref())?;
                match open_wrapped(dir, &kek, &pw.dek)? {
                    Some(dek) => {
                        self.failed = 0;
                        self.write(dir)?;
                        Ok(dek)
                    }
                    None if self.failed >= self.max_failed => {
                        destroy(dir, Some(self))?;
                        Err(Error::ProfileDestroyed)
                    }
                    None => Err(Error::WrongPin {
                        tries_left: self.max_failed - self.failed,
                    }),
                }
            }
        }
    }
}

fn open_lock(dir: &Path) -> Result<std::fs::File> {
    let lock_path = dir.join(LOCK_FILE);
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(&lock_path).map_err(vault_io(&lock_path))
}

/// The DEK of the profile in `dir` for `unlock`: the keys file is read
/// again and checked under an exclusive lock (see `LOCK_FILE`).
pub(crate) fn unlock_dek(dir: &Path, unlock: &Unlock) -> Result<(Dek, KeysFile)> {
    use fs4::fs_std::FileExt;
    let lock_path = dir.join(LOCK_FILE);
    let lock = open_lock(dir)?;
    lock.lock_exclusive().map_err(vault_io(&lock_path))?;
    let result = (|| {
        let mut keys = KeysFile::read(dir)?.ok_or_else(|| Error::ProfileMissing {
            path: dir.to_owned(),
        })?;
        let dek = keys.unlock(dir, unlock)?;
        Ok((dek, keys))
    })();
    let _ = FileExt::unlock(&lock);
    result
}

/// Erases the profile in `dir`: a marker first (so an interrupted erase is
/// finished, and later opens say what happened), then the keys file
/// (overwritten, then removed), the key-store entry, and the database with
/// its side files.
pub(crate) fn destroy(dir: &Path, keys: Option<&KeysFile>) -> Result<()> {
    use std::io::Write;
    let marker = dir.join(ERASED_FILE);
    drop(create_private(&marker)?);
    sync_dir(dir)?;
    let keys_path = dir.join(KEYS_FILE);
    if let Ok(meta) = std::fs::metadata(&keys_path) {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&keys_path) {
            let _ = f
                .write_all(&vec![0u8; meta.len() as usize])
                .and_then(|()| f.sync_all());
        }
    }
    if let Some(ks) = keys.and_then(|k| k.keystore.as_ref()) {
        keystore_delete(&ks.entry);
    }
    for entry in std::fs::read_dir(dir).map_err(vault_io(dir))? {
        let entry = entry.map_err(vault_io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != ERASED_FILE && name.starts_with("heartbridge.") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(vault_io(&entry.path())(e)),
            }
        }
    }
    sync_dir(dir)
}

/// Whether the profile in `dir` was erased (the marker is there).
pub(crate) fn erased(dir: &Path) -> bool {
    dir.join(ERASED_FILE).exists()
}

use std::path::Path;

use crate::error::{Error, Result};

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

    /// A raw read-write SQLite connection to a profile's encrypted
    /// database, keyed (counts as an unlock). Tests that inspect or damage
    /// the file only.
    pub fn open_raw(dir: &std::path::Path, unlock: &Unlock) -> crate::Result<rusqlite::Connection> {
        let (dek, _) = super::unlock_dek(dir, unlock)?;
        let conn = rusqlite::Connection::open(dir.join(crate::DB_FILE))?;
        conn.execute_batch(&format!("PRAGMA key = \"{}\";", dek.pragma().as_str()))?;
        Ok(conn)
    }

    /// Creates an unencrypted profile as Heartbridge made them before
    /// issue 8, to test the migration. Tests only.
    pub fn init_plaintext(dir: &std::path::Path, name: &str) -> crate::Result<crate::Store> {
        crate::Store::init_plaintext(dir, name)
    }
}
