//! `heartbridge bundle`: carry changes without a network. `export` writes
//! this device's undelivered changes (sealed envelopes, signed) into one
//! file for a USB stick or a local file share; `import` on another device
//! of the team applies them and pushes them at its next sync. `qr` does the
//! same with a sequence of QR code images, for two phones with nothing
//! else.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use heartbridge_core::bundle::{qr, ExportScope, Exported, ImportReport};
use heartbridge_core::{DocKind, Store};
use serde_json::json;

use crate::output::Out;

#[derive(Subcommand)]
pub enum BundleCmd {
    /// Write this device's changes the relay has not acknowledged yet into FILE.
    Export {
        /// `last`: only what no earlier `--since last` export wrote; `all`:
        /// everything not yet acknowledged by the relay.
        #[arg(long, value_enum, default_value_t = Since::Last)]
        since: Since,
        /// The bundle file to write (replaced if it exists).
        file: PathBuf,
    },
    /// Apply a bundle made on another device of the team; its changes go to
    /// the relay with this device's next sync.
    Import {
        /// The bundle file.
        file: PathBuf,
    },
    /// QR codes: a case's latest changes as numbered images, and back.
    #[command(subcommand)]
    Qr(QrCmd),
}

#[derive(Subcommand)]
pub enum QrCmd {
    /// Write one case's undelivered changes as numbered PNG frames into DIR.
    Export {
        /// The case (its id, or the start of it).
        #[arg(long = "case")]
        case: String,
        /// The directory to write the frames into (created if missing).
        dir: PathBuf,
    },
    /// Read frames (photos or the PNG files), in any order; imports the
    /// bundle once every frame is there, else names the missing ones.
    Import {
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Since {
    Last,
    All,
}

pub fn bundle(cmd: BundleCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        BundleCmd::Export { since, file } => {
            let scope = match since {
                Since::Last => ExportScope::SinceLast,
                Since::All => ExportScope::All,
            };
            // Written before the export is committed (review L4).
            let report = store.bundle_export_to(scope, |bytes| write_file(&file, bytes))?;
            out.print(&exported_json(&report, &file), || {
                exported_text(&report, &file)
            });
        }
        BundleCmd::Import { file } => {
            let bytes = read_file(&file)?;
            let report = store.bundle_import(&bytes)?;
            out.print(&report, || imported_text(&report));
        }
        BundleCmd::Qr(QrCmd::Export { case, dir }) => {
            let id = case_id(store, &case)?;
            let (bytes, report) = store.bundle_export_case(&id)?;
            let frames = qr::frames(&bytes).map_err(heartbridge_core::Error::from)?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let n = frames.len();
            let mut files = Vec::with_capacity(n);
            for (i, f) in frames.iter().enumerate() {
                let path = dir.join(format!("frame-{:03}-of-{n:03}.png", i + 1));
                write_file(&path, &qr::frame_png(f))?;
                files.push(path.display().to_string());
            }
            out.print(
                &json!({"frames": n, "files": files, "envelopes": report.envelopes, "bytes": report.bytes}),
                || {
                    format!(
                        "Wrote {n} QR frame(s) ({} change(s), {} bytes) into {}. Show them one after another; the other phone reads them in any order with `heartbridge bundle qr import`.",
                        report.envelopes,
                        report.bytes,
                        dir.display()
                    )
                },
            );
        }
        BundleCmd::Qr(QrCmd::Import { images }) => {
            let mut asm = qr::Assembler::new();
            for path in &images {
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                let name = path.display().to_string();
                for frame in qr::read_image(&bytes, &name).map_err(heartbridge_core::Error::from)? {
                    asm.add(&frame).map_err(heartbridge_core::Error::from)?;
                }
            }
            let bundle = asm.finish().map_err(heartbridge_core::Error::from)?;
            let report = store.bundle_import(&bundle)?;
            out.print(&report, || imported_text(&report));
        }
    }
    Ok(())
}

/// Resolves a case id (or its start) for the QR export.
pub fn case_id(store: &Store, id: &str) -> anyhow::Result<heartbridge_core::DocId> {
    Ok(store.resolve(DocKind::Case, id)?)
}

pub fn exported_json(r: &Exported, file: &Path) -> serde_json::Value {
    json!({
        "file": file.display().to_string(),
        "envelopes": r.envelopes,
        "carried": r.carried,
        "already_exported": r.already_exported,
        "bytes": r.bytes,
    })
}

fn exported_text(r: &Exported, file: &Path) -> String {
    let mut s = format!(
        "Wrote {} sealed change(s) ({} bytes) to {}.",
        r.envelopes,
        r.bytes,
        file.display()
    );
    if r.carried > 0 {
        s.push_str(&format!(
            " {} of them are other members' changes this device carries.",
            r.carried
        ));
    }
    if r.already_exported > 0 {
        s.push_str(&format!(
            " {} written by an earlier export were left out (`--since all` repeats them).",
            r.already_exported
        ));
    }
    s.push_str(" Import it on another device of the team with `heartbridge bundle import FILE`; the relay takes each change once, whoever delivers it.");
    s
}

pub fn imported_text(r: &ImportReport) -> String {
    let mut s = format!(
        "Imported {} change(s): {} applied, {} already here.",
        r.envelopes, r.applied, r.already_here
    );
    if r.locked > 0 {
        s.push_str(&format!(
            " {} belong to cases this device does not read: kept sealed.",
            r.locked
        ));
    }
    if r.waiting > 0 {
        s.push_str(&format!(
            " {} wait for what the next sync brings.",
            r.waiting
        ));
    }
    if r.refused > 0 {
        s.push_str(&format!(" {} were refused here.", r.refused));
    }
    if r.queued > 0 {
        s.push_str(&format!(
            " {} go to the relay with this device's next sync.",
            r.queued
        ));
    }
    s
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed),
/// readable by this user only.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow::anyhow!("cannot write into {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .len();
    if len > heartbridge_core::bundle::MAX_BUNDLE_BYTES as u64 {
        return Err(heartbridge_core::Error::from(
            heartbridge_core::bundle::BundleError::TooLarge {
                max: heartbridge_core::bundle::MAX_BUNDLE_BYTES,
            },
        )
        .into());
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}
