//! Sneakernet in the app (issue 10): a bundle file of this device's
//! undelivered changes ("导出本班改动", or everything not yet acknowledged),
//! a case's latest changes as QR frames shown one after another ("导出 →
//! 二维码"), and importing a bundle file or frames read by the camera. Thin
//! like the other commands: one core call each, camelCase out. A refused
//! bundle answers the stable code of what is wrong (`bundle_truncated`,
//! `bundle_bad_signature`, `bundle_other_team`, `qr_missing`, ...) so the
//! UI says it in the volunteer's language; nothing of it was applied.

use std::path::PathBuf;

use base64::Engine as _;
use heartbridge_core::bundle::{qr, ExportScope};
use heartbridge_core::{DocKind, Error};
use serde_json::{json, Value};
use tauri::State;

use crate::camel::to_ui;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// A bundle or QR refusal keeps its own code; anything else as usual.
fn refusal(e: Error) -> ApiError {
    let code = match &e {
        Error::Bundle(b) => Some(b.code()),
        Error::Qr(q) => Some(match q {
            qr::QrError::NotAFrame => "qr_not_a_frame",
            qr::QrError::Mixed => "qr_mixed",
            qr::QrError::Missing { .. } => "qr_missing",
            qr::QrError::BadHash => "qr_bad_hash",
            qr::QrError::Unreadable(_) => "qr_unreadable",
            qr::QrError::TooLarge => "qr_too_large",
        }),
        _ => None,
    };
    match code {
        Some(code) => ApiError::new(code, e.to_string()),
        None => e.into(),
    }
}

/// Writes `bytes` whole or not at all: a temporary file beside it, renamed.
fn write_whole(path: &PathBuf, bytes: &[u8]) -> ApiResult<()> {
    write_file(path, bytes).map_err(ApiError::from)
}

/// Writes `bytes` to `path` durably (a part file, synced, then renamed):
/// a pulled USB stick leaves no half bundle under the name.
fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let tmp = path.with_extension("hbb.part");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })
}

/// Writes the bundle to `path`: `since` "last" (what no earlier export
/// wrote: this shift's changes) or "all" (everything not yet acknowledged);
/// with `case_id`, only that case's undelivered changes (and the grants).
#[tauri::command]
pub async fn bundle_export(
    state: State<'_, AppState>,
    path: String,
    since: Option<String>,
    case_id: Option<String>,
) -> ApiResult<Value> {
    let scope = match since.as_deref() {
        Some("all") => ExportScope::All,
        _ => ExportScope::SinceLast,
    };
    let path = PathBuf::from(path.trim());
    let report = state.with(|s| {
        Ok(match &case_id {
            Some(id) => {
                let id = s.resolve(DocKind::Case, id)?;
                s.bundle_export_case(&id)
                    .map_err(refusal)
                    .and_then(|(bytes, report)| {
                        write_whole(&path, &bytes)?;
                        Ok(report)
                    })
            }
            // Marked exported only once the file is written (review L4):
            // a failed write leaves these changes for the next export.
            None => s
                .bundle_export_to(scope, |bytes| write_file(&path, bytes))
                .map_err(refusal),
        })
    })??;
    Ok(to_ui(&report))
}

/// A case's undelivered changes as QR frames, each a PNG data URL, in
/// order; the UI shows them one after another.
#[tauri::command]
pub async fn bundle_qr_export(state: State<'_, AppState>, case_id: String) -> ApiResult<Value> {
    let (bytes, report) = state.with(|s| {
        let id = s.resolve(DocKind::Case, &case_id)?;
        Ok(s.bundle_export_case(&id).map_err(refusal))
    })??;
    let frames = qr::frames(&bytes).map_err(|e| refusal(e.into()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let images: Vec<String> = frames
        .iter()
        .map(|f| format!("data:image/png;base64,{}", b64.encode(qr::frame_png(f))))
        .collect();
    Ok(json!({
        "frames": images,
        "envelopes": report.envelopes,
        "bytes": report.bytes,
    }))
}

/// Imports a bundle file.
#[tauri::command]
pub async fn bundle_import(state: State<'_, AppState>, path: String) -> ApiResult<Value> {
    let path = PathBuf::from(path.trim());
    let bytes = std::fs::read(&path).map_err(|source| {
        ApiError::from(Error::Io {
            path: path.clone(),
            source,
        })
    })?;
    let report = state.with(|s| Ok(s.bundle_import(&bytes).map_err(refusal)))??;
    Ok(to_ui(&report))
}

/// Imports QR frames: image files (photos or PNGs) in any order. Answers
/// the import, or `qr_missing` naming the frames still to scan.
#[tauri::command]
pub async fn bundle_qr_import(state: State<'_, AppState>, paths: Vec<String>) -> ApiResult<Value> {
    let mut asm = qr::Assembler::new();
    for p in &paths {
        let path = PathBuf::from(p.trim());
        let bytes = std::fs::read(&path).map_err(|source| {
            ApiError::from(Error::Io {
                path: path.clone(),
                source,
            })
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for frame in qr::read_image(&bytes, &name).map_err(|e| refusal(e.into()))? {
            asm.add(&frame).map_err(|e| refusal(e.into()))?;
        }
    }
    let bundle = asm.finish().map_err(|e| refusal(e.into()))?;
    let report = state.with(|s| Ok(s.bundle_import(&bundle).map_err(refusal)))??;
    Ok(to_ui(&report))
}

/// Imports QR frames read by the page from a live camera (扫描二维码): each
/// frame's bytes as base64, in any order, duplicates ignored. Answers the
/// import, or `qr_missing` naming the frames still to scan (nothing is
/// applied until the set is whole and its hash and the bundle check).
#[tauri::command]
pub async fn bundle_qr_import_frames(
    state: State<'_, AppState>,
    frames: Vec<String>,
) -> ApiResult<Value> {
    let bundle = assemble_frames(&frames).map_err(|e| refusal(e.into()))?;
    let report = state.with(|s| Ok(s.bundle_import(&bundle).map_err(refusal)))??;
    Ok(to_ui(&report))
}

/// The bundle from frames given as base64 of their bytes.
fn assemble_frames(frames: &[String]) -> Result<Vec<u8>, qr::QrError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut asm = qr::Assembler::new();
    for f in frames {
        let bytes = b64.decode(f.trim()).map_err(|_| qr::QrError::NotAFrame)?;
        asm.add(&bytes)?;
    }
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(f: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(f)
    }

    #[test]
    fn frames_from_the_camera_assemble_in_any_order_and_name_what_is_missing() {
        let bundle: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let frames: Vec<String> = qr::frames(&bundle)
            .unwrap()
            .iter()
            .map(|f| b64(f))
            .collect();
        assert_eq!(frames.len(), 3);
        let shuffled = vec![
            frames[2].clone(),
            frames[0].clone(),
            frames[0].clone(),
            frames[1].clone(),
        ];
        assert_eq!(assemble_frames(&shuffled).unwrap(), bundle);
        match assemble_frames(&frames[..2]) {
            Err(qr::QrError::Missing { missing, count }) => {
                assert_eq!((missing, count), (vec![3], 3));
            }
            other => panic!("expected missing frame 3, got {other:?}"),
        }
        assert_eq!(
            assemble_frames(&["not base64!".to_owned()]),
            Err(qr::QrError::NotAFrame)
        );
    }
}
