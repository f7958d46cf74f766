//! HTTPS without a certificate authority.
//!
//! A relay on a team lead's laptop inside a venue has no name a public
//! authority would sign, so it makes its own certificate
//! (`serve --tls-self-signed`): rcgen generates a key pair and a
//! self-signed certificate once, kept next to the database
//! (`<db>.tls-cert.pem`, `<db>.tls-key.pem`, both mode 0600) and reused on
//! every restart, so its fingerprint stays the same. Devices pin that
//! fingerprint (`sha256:` + base64url of SHA-256 over the leaf certificate's
//! DER, [`CertPin`]): it travels in invite codes and relay entries. A
//! central relay may instead serve a real certificate from PEM files
//! (`--tls-cert`, `--tls-key`).
//!
//! Nothing here logs or returns key material; errors name files only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heartbridge_proto::CertPin;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up. Messages name files and say what to do;
/// never a key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {path}: {source}; check the path and that the relay may read it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "could not write {path}: {source}; check that the relay may write in its data directory"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the certificate chain, leaf first")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key; give the key that belongs to the certificate")]
    NoKey { path: PathBuf },
    #[error("the certificate and key could not be used together ({0}); check that the key belongs to the certificate")]
    Config(String),
    #[error("generating the self-signed certificate failed ({0})")]
    Generate(String),
}

/// A relay's TLS identity: the rustls server configuration and the pin of
/// its leaf certificate.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    pin: CertPin,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("pin", &self.pin).finish()
    }
}

impl Tls {
    /// The self-signed identity kept next to `db_path`: read if both files
    /// are there, else generated and written (key mode 0600) first.
    pub fn self_signed(db_path: &Path) -> Result<Tls, TlsError> {
        let (cert_path, key_path) = self_signed_paths(db_path);
        if !(cert_path.exists() && key_path.exists()) {
            generate(&cert_path, &key_path)?;
        }
        Tls::from_files(&cert_path, &key_path)
    }

    /// A certificate chain (leaf first) and its private key from PEM files.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Tls, TlsError> {
        let chain = read_chain(cert_path)?;
        let key_pem = fs::read(key_path).map_err(|source| TlsError::Read {
            path: key_path.to_owned(),
            source,
        })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
            path: key_path.to_owned(),
        })?;
        let pin = CertPin::of_der(&chain[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            pin,
        })
    }

    /// The leaf certificate's pin, as devices write it
    /// (`sha256:<base64url>`).
    pub fn fingerprint(&self) -> String {
        self.pin.to_string()
    }

    pub fn pin(&self) -> CertPin {
        self.pin
    }

    /// A tokio-rustls acceptor for this identity.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

/// Where `serve --tls-self-signed` keeps its certificate and key for the
/// database `db_path`: beside it, `<db>.tls-cert.pem` and
/// `<db>.tls-key.pem`.
pub fn self_signed_paths(db_path: &Path) -> (PathBuf, PathBuf) {
    let name = db_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "heartbridge-relay.db".into());
    let dir = db_path.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{name}.tls-cert.pem")),
        dir.join(format!("{name}.tls-key.pem")),
    )
}

/// The pin of the leaf (first) certificate of a PEM file.
pub fn fingerprint_of_file(cert_path: &Path) -> Result<String, TlsError> {
    Ok(CertPin::of_der(&read_chain(cert_path)?[0]).to_string())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: path.to_owned(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Generates the key pair and certificate and writes both (temp file,
/// fsync, rename; key first, so a certificate on disk always has its key).
fn generate(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names = vec!["localhost".to_owned(), "heartbridge-relay.local".to_owned()];
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "heartbridge-relay");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(key_path, key.serialize_pem().as_bytes())?;
    write_private(cert_path, cert.pem().as_bytes())?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
