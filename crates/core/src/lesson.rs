//! Micro-lessons (issue 10 item 7): audio or video a handbook carries,
//! playable with no network.
//!
//! A lesson's manifest lives in its handbook's Automerge document (key
//! `lessons`: lesson id → `{title, mime, size, duration_ms, sha256,
//! chunk_size, epoch, chunks, added_at}`), so it travels sealed with the
//! handbook. Its bytes are chunks of [`CHUNK_SIZE`], each sealed on its own
//! under the team key ([`heartbridge_proto::lesson`]) and stored by the
//! relay as opaque blobs named by the SHA-256 of their sealed bytes. The
//! device keeps chunks sealed (`lesson_chunks`, inside the encrypted
//! profile) and opens them only to hand bytes to a player
//! ([`Store::lesson_read_range`]); no plaintext is written to disk unless a
//! volunteer exports a lesson on purpose.
//!
//! The core does no I/O: [`Store::lesson_fetch`] and [`Store::lesson_push`]
//! drive a [`BlobTransport`]; the app can instead call the sans-IO pieces
//! ([`Store::lesson_missing_chunks`], [`Store::lesson_accept_chunk`], …)
//! and carry the bytes itself with the store unlocked.

use std::collections::BTreeMap;
use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use heartbridge_proto::lesson::{self as wire, ChunkPlace, CHUNK_SIZE};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::docvalue::{int, object, string};
use crate::error::{Error, Result};
use crate::facts::{record_fact_in, Fact};
use crate::model::{now_ms, DocId, DocKind};
use crate::relays::{RelayEntry, RelayKind};
use crate::store::Store;
use crate::sync::TransportError;
use crate::Team;

/// Largest lesson a device adds.
pub const MAX_LESSON_BYTES: u64 = 512 * 1024 * 1024;
/// Most plaintext bytes one [`Store::lesson_read_range`] answers.
pub const MAX_READ_BYTES: u64 = 8 * 1024 * 1024;
/// The setting holding the link policy.
const POLICY_KEY: &str = "lesson.link";

/// One lesson as a volunteer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonInfo {
    pub id: String,
    pub handbook: String,
    pub title: String,
    pub mime: String,
    pub size: u64,
    pub duration_ms: Option<u64>,
    pub chunks: u32,
    pub chunks_held: u32,
    pub bytes_held: u64,
    /// Every chunk is here: the lesson plays with no network.
    pub held: bool,
    pub position_ms: Option<u64>,
    /// Times this device recorded it watched.
    pub watched_count: u32,
    pub added_at: i64,
}

/// Decrypted bytes of a lesson, for a player.
#[derive(Debug, Clone, PartialEq)]
pub struct LessonRange {
    pub bytes: Vec<u8>,
    /// Offset of `bytes[0]` in the lesson.
    pub start: u64,
    /// The lesson's whole size.
    pub total: u64,
    pub mime: String,
}

/// One chunk of one lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkRef {
    pub lesson: String,
    pub index: u32,
    pub chunk_id: String,
}

/// What a fetch would cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchPlan {
    pub lessons: Vec<String>,
    pub chunks_missing: u32,
    /// Sealed bytes still to come.
    pub bytes_missing: u64,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FetchReport {
    pub lessons: usize,
    pub chunks_fetched: u32,
    pub bytes_fetched: u64,
    pub chunks_already_held: u32,
    /// Every chunk of the lessons asked for is here now.
    pub complete: bool,
    /// The relay the chunks came from (the last one used).
    pub relay: Option<String>,
}

/// Whether a fetch from a relay that is not a venue relay asks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkPolicy {
    /// The link may be metered: fetch only when confirmed (the default).
    Ask,
    /// The volunteer said the link is not metered.
    Unmetered,
}

impl LinkPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPolicy::Ask => "ask",
            LinkPolicy::Unmetered => "unmetered",
        }
    }
    pub fn parse(s: &str) -> Result<LinkPolicy> {
        match s {
            "ask" => Ok(LinkPolicy::Ask),
            "unmetered" => Ok(LinkPolicy::Unmetered),
            _ => Err(Error::InvalidValue {
                field: "link policy",
                value: s.to_owned(),
                allowed: "ask, unmetered",
            }),
        }
    }
}

/// Moves lesson chunks to and from a relay. `team.relay_url` is the relay.
pub trait BlobTransport {
    /// Which of `ids` the relay holds, in order.
    fn blob_have(&mut self, team: &Team, ids: &[String]) -> Result<Vec<bool>, TransportError>;
    /// Stores a sealed chunk (idempotent).
    fn blob_put(&mut self, team: &Team, id: &str, sealed: Vec<u8>) -> Result<(), TransportError>;
    /// The sealed chunk; a transport resumes a cut download from where it
    /// stopped before it gives up.
    fn blob_get(&mut self, team: &Team, id: &str) -> Result<Vec<u8>, TransportError>;
    /// Called before requests to `relay` (pin, signing).
    fn use_relay(&mut self, _relay: &RelayEntry) {}
}

/// A manifest as projected (`lessons` table).
#[derive(Debug, Clone)]
struct Manifest {
    id: String,
    handbook: String,
    title: String,
    mime: String,
    size: u64,
    duration_ms: Option<u64>,
    sha256: String,
    chunk_size: u64,
    epoch: u32,
    chunks: Vec<String>,
    added_at: i64,
}

impl Manifest {
    fn count(&self) -> u32 {
        self.chunks.len() as u32
    }
    fn plain_len(&self, index: u32) -> u64 {
        let start = index as u64 * self.chunk_size;
        self.size.saturating_sub(start).min(self.chunk_size)
    }
    fn place(&self, index: u32) -> Result<ChunkPlace> {
        Ok(ChunkPlace {
            lesson: lesson_bytes(&self.id)?,
            index,
            count: self.count(),
            epoch: self.epoch,
        })
    }
}

fn lesson_bytes(id: &str) -> Result<[u8; 16]> {
    hex::decode(id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::NotFound {
            what: "lesson",
            id: id.to_owned(),
        })
}

fn lesson_err(kind: &'static str, message: String) -> Error {
    Error::Lesson { kind, message }
}

/// A manifest whose chunks do not make the lesson it names: whoever wrote
/// it (a teammate, or a bug) is at fault, not the relay.
fn manifest_bad(m: &Manifest, why: &str) -> Error {
    lesson_err(
        "lesson_manifest_bad",
        format!(
            "lesson {} in handbook {} cannot be used ({why}): its entry in the handbook is wrong, not the relay; other lessons are not affected — ask whoever added it to add it again",
            m.id, m.handbook
        ),
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// The MIME type of a media file by its extension.
pub fn guess_mime(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" | "aac" => "audio/mp4",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        _ => return None,
    })
}

// ---- the manifest in the handbook document ----

fn write_manifest(doc: &mut AutoCommit, m: &Manifest, added_by: &str) -> Result<bool> {
    let am = |e: automerge::AutomergeError| Error::Document {
        id: m.handbook.clone(),
        source: Box::new(e),
    };
    let lessons = match object(doc, &ROOT, "lessons", ObjType::Map) {
        Some(o) => o,
        None => doc.put_object(ROOT, "lessons", ObjType::Map).map_err(am)?,
    };
    if object(doc, &lessons, &m.id, ObjType::Map).is_some() {
        return Ok(false);
    }
    let l = doc
        .put_object(&lessons, m.id.as_str(), ObjType::Map)
        .map_err(am)?;
    doc.put(&l, "title", m.title.as_str()).map_err(am)?;
    doc.put(&l, "mime", m.mime.as_str()).map_err(am)?;
    doc.put(&l, "size", m.size as i64).map_err(am)?;
    if let Some(d) = m.duration_ms {
        doc.put(&l, "duration_ms", d as i64).map_err(am)?;
    }
    doc.put(&l, "sha256", m.sha256.as_str()).map_err(am)?;
    doc.put(&l, "chunk_size", m.chunk_size as i64).map_err(am)?;
    doc.put(&l, "epoch", m.epoch as i64).map_err(am)?;
    doc.put(&l, "added_at", m.added_at).map_err(am)?;
    doc.put(&l, "added_by", added_by).map_err(am)?;
    let list = doc.put_object(&l, "chunks", ObjType::List).map_err(am)?;
    for (i, c) in m.chunks.iter().enumerate() {
        doc.insert(&list, i, c.as_str()).map_err(am)?;
    }
    Ok(true)
}

fn read_manifests(doc: &AutoCommit, handbook: &str) -> Vec<Manifest> {
    let Some(lessons) = object(doc, &ROOT, "lessons", ObjType::Map) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in doc.keys(&lessons) {
        let Some(l) = object(doc, &lessons, &key, ObjType::Map) else {
            continue;
        };
        let chunks = match object(doc, &l, "chunks", ObjType::List) {
            Some(list) => (0..doc.length(&list))
                .filter_map(|i| match doc.get(&list, i).ok().flatten() {
                    Some((Value::Scalar(s), _)) => match s.as_ref() {
                        ScalarValue::Str(s) => Some(s.to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        let m = Manifest {
            id: key.clone(),
            handbook: handbook.to_owned(),
            title: string(doc, &l, "title").unwrap_or_default(),
            mime: string(doc, &l, "mime").unwrap_or_default(),
            size: int(doc, &l, "size").unwrap_or(0).max(0) as u64,
            duration_ms: int(doc, &l, "duration_ms").map(|d| d.max(0) as u64),
            sha256: string(doc, &l, "sha256").unwrap_or_default(),
            chunk_size: int(doc, &l, "chunk_size").unwrap_or(0).max(0) as u64,
            epoch: int(doc, &l, "epoch").unwrap_or(1).clamp(1, u32::MAX as i64) as u32,
            chunks,
            added_at: int(doc, &l, "added_at").unwrap_or(0),
        };
        // A manifest whose numbers do not add up is left out (a bad or
        // newer writer); nothing else of the handbook suffers.
        let expect = if m.chunk_size == 0 {
            u64::MAX
        } else {
            m.size.div_ceil(m.chunk_size)
        };
        // Bounds a teammate's manifest cannot pass (review K4.2): the one
        // chunk size, at most a lesson's size, a media type, the id's
        // length matching the hash it names.
        if lesson_bytes(&m.id).is_ok()
            && m.size > 0
            && m.size <= MAX_LESSON_BYTES
            && m.chunk_size == CHUNK_SIZE as u64
            && (m.mime.starts_with("audio/") || m.mime.starts_with("video/"))
            && m.mime.len() <= 100
            && m.sha256.len() == 64
            && m.sha256.starts_with(&m.id)
            && expect == m.chunks.len() as u64
            && m.chunks.iter().all(|c| wire::is_chunk_id(c))
        {
            out.push(m);
        }
    }
    out
}

/// Projects a handbook's lessons into `lessons` (called with the handbook
/// projection, in its transaction).
pub(crate) fn refresh(conn: &Connection, id: &DocId, doc: &AutoCommit) -> Result<()> {
    conn.execute("DELETE FROM lessons WHERE handbook_id = ?1", [id.as_str()])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO lessons (handbook_id, id, title, mime, size, duration_ms, sha256, chunk_size, epoch, chunks, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for m in read_manifests(doc, id.as_str()) {
        ins.execute(params![
            id.as_str(),
            m.id,
            m.title,
            m.mime,
            m.size as i64,
            m.duration_ms.map(|d| d as i64),
            m.sha256,
            m.chunk_size as i64,
            m.epoch as i64,
            m.chunks.join(","),
            m.added_at,
        ])?;
    }
    Ok(())
}

fn manifest_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Manifest> {
    let chunks: String = r.get(9)?;
    Ok(Manifest {
        handbook: r.get(0)?,
        id: r.get(1)?,
        title: r.get(2)?,
        mime: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        duration_ms: r.get::<_, Option<i64>>(5)?.map(|d| d as u64),
        sha256: r.get(6)?,
        chunk_size: r.get::<_, i64>(7)? as u64,
        epoch: r.get::<_, i64>(8)? as u32,
        chunks: chunks
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        added_at: r.get(10)?,
    })
}

const MANIFEST_COLS: &str =
    "handbook_id, id, title, mime, size, duration_ms, sha256, chunk_size, epoch, chunks, added_at";

fn manifests(conn: &Connection, handbook: Option<&DocId>) -> Result<Vec<Manifest>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {MANIFEST_COLS} FROM lessons WHERE ?1 IS NULL OR handbook_id = ?1 ORDER BY added_at, id"
    ))?;
    let rows = st.query_map([handbook.map(|h| h.as_str())], manifest_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn manifest(conn: &Connection, id: &str) -> Result<Manifest> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {MANIFEST_COLS} FROM lessons WHERE id = ?1 ORDER BY handbook_id LIMIT 1"
    ))?;
    st.query_row([id], manifest_row)
        .optional()?
        .ok_or_else(|| Error::NotFound {
            what: "lesson",
            id: id.to_owned(),
        })
}

fn held_chunk(conn: &Connection, chunk_id: &str) -> Result<Option<Vec<u8>>> {
    let id = hex::decode(chunk_id).unwrap_or_default();
    Ok(conn
        .query_row(
            "SELECT sealed FROM lesson_chunks WHERE chunk_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Whether chunk `chunk_id` is here as chunk `index` of `lesson` (a chunk
/// accepted for another lesson's place does not count: it would not open).
fn is_held(conn: &Connection, chunk_id: &str, lesson: &str, index: usize) -> Result<bool> {
    let id = hex::decode(chunk_id).unwrap_or_default();
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM lesson_chunks WHERE chunk_id = ?1 AND lesson_id = ?2 AND idx = ?3",
    )?;
    Ok(st.exists(params![id, lesson, index as i64])?)
}

fn store_chunk(conn: &Connection, c: &ChunkRef, sealed: &[u8]) -> Result<()> {
    let id = hex::decode(&c.chunk_id).unwrap_or_default();
    conn.execute(
        "INSERT OR IGNORE INTO lesson_chunks (chunk_id, lesson_id, idx, sealed, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, c.lesson, c.index as i64, sealed, now_ms()],
    )?;
    Ok(())
}

impl Store {
    fn lesson_info(&self, m: &Manifest) -> Result<LessonInfo> {
        let mut held = 0u32;
        let mut bytes = 0u64;
        for (i, c) in m.chunks.iter().enumerate() {
            if is_held(self.conn(), c, &m.id, i)? {
                held += 1;
                bytes += m.plain_len(i as u32);
            }
        }
        let progress: Option<(Option<i64>, i64)> = self
            .conn()
            .query_row(
                "SELECT position_ms, watched_count FROM lesson_progress WHERE lesson_id = ?1",
                [&m.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (position_ms, watched) = progress.unwrap_or((None, 0));
        Ok(LessonInfo {
            id: m.id.clone(),
            handbook: m.handbook.clone(),
            title: m.title.clone(),
            mime: m.mime.clone(),
            size: m.size,
            duration_ms: m.duration_ms,
            chunks: m.count(),
            chunks_held: held,
            bytes_held: bytes,
            held: held == m.count(),
            position_ms: position_ms.map(|p| p.max(0) as u64),
            watched_count: watched.max(0) as u32,
            added_at: m.added_at,
        })
    }

    /// Adds the media file at `file` to a handbook as a lesson (see
    /// [`Store::lesson_add_bytes`]); the MIME type is guessed from the
    /// extension when not given.
    pub fn lesson_add(
        &mut self,
        handbook: &DocId,
        file: &Path,
        title: &str,
        mime: Option<&str>,
        duration_ms: Option<u64>,
    ) -> Result<LessonInfo> {
        let mime = match mime {
            Some(m) => m.to_owned(),
            None => guess_mime(file)
                .ok_or_else(|| Error::InvalidValue {
                    field: "media type (give --mime)",
                    value: file
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("")
                        .to_owned(),
                    allowed: "mp4, m4v, webm, ogv, mov, mp3, m4a, aac, ogg, oga, opus, wav, flac",
                })?
                .to_owned(),
        };
        let len = std::fs::metadata(file)
            .map_err(|source| Error::Io {
                path: file.to_owned(),
                source,
            })?
            .len();
        if len > MAX_LESSON_BYTES {
            return Err(lesson_err(
                "too_large",
                format!(
                    "the file is {}, more than a lesson may be ({}): shorten or compress it",
                    mb(len),
                    mb(MAX_LESSON_BYTES)
                ),
            ));
        }
        let bytes = std::fs::read(file).map_err(|source| Error::Io {
            path: file.to_owned(),
            source,
        })?;
        self.lesson_add_bytes(handbook, &bytes, title, &mime, duration_ms)
    }

    /// Adds media bytes to a handbook as a lesson: cut into chunks sealed
    /// under the team's current key (kept here, queued for the relay), and
    /// the manifest written into the handbook (it syncs with it). The same
    /// bytes added again are the same lesson (its id is their hash).
    pub fn lesson_add_bytes(
        &mut self,
        handbook: &DocId,
        bytes: &[u8],
        title: &str,
        mime: &str,
        duration_ms: Option<u64>,
    ) -> Result<LessonInfo> {
        let title = title.trim();
        if title.is_empty() {
            return Err(Error::Empty {
                what: "the lesson's title",
            });
        }
        if bytes.is_empty() {
            return Err(Error::Empty {
                what: "the lesson's file",
            });
        }
        if bytes.len() as u64 > MAX_LESSON_BYTES {
            return Err(lesson_err(
                "too_large",
                format!(
                    "the file is {}, more than a lesson may be ({}): shorten or compress it",
                    mb(bytes.len() as u64),
                    mb(MAX_LESSON_BYTES)
                ),
            ));
        }
        let mime = mime.trim().to_ascii_lowercase();
        if !(mime.starts_with("audio/") || mime.starts_with("video/")) || mime.len() > 100 {
            return Err(Error::InvalidValue {
                field: "media type",
                value: mime,
                allowed: "audio/… or video/… (e.g. video/mp4, audio/mpeg)",
            });
        }
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        self.load_kind(handbook, DocKind::Handbook)?;
        let (id, sha256) = wire::lesson_id(bytes);
        let lesson = lesson_bytes(&id)?;
        let count = bytes.len().div_ceil(CHUNK_SIZE) as u32;
        // Chunks first, each sealed and stored as it is made (one
        // transaction): a manifest never names chunks its writer lacks.
        let chunks = self.immediate(|tx| {
            let mut chunks = Vec::with_capacity(count as usize);
            for (i, plain) in bytes.chunks(CHUNK_SIZE).enumerate() {
                let place = ChunkPlace {
                    lesson,
                    index: i as u32,
                    count,
                    epoch: team.epoch,
                };
                let sealed = wire::seal_chunk(&team.key, &team.team_id, &place, plain);
                let c = ChunkRef {
                    lesson: id.clone(),
                    index: i as u32,
                    chunk_id: wire::chunk_id(&sealed),
                };
                store_chunk(tx, &c, &sealed)?;
                tx.execute(
                    "INSERT OR IGNORE INTO lesson_uploads (chunk_id, lesson_id, idx) VALUES (?1, ?2, ?3)",
                    params![hex::decode(&c.chunk_id).unwrap_or_default(), c.lesson, c.index as i64],
                )?;
                chunks.push(c.chunk_id);
            }
            Ok(chunks)
        })?;
        let m = Manifest {
            id: id.clone(),
            handbook: handbook.to_string(),
            title: title.to_owned(),
            mime,
            size: bytes.len() as u64,
            duration_ms,
            sha256,
            chunk_size: CHUNK_SIZE as u64,
            epoch: team.epoch,
            chunks,
            added_at: now_ms(),
        };
        let by = team.device_id.clone();
        self.write(
            handbook,
            DocKind::Handbook,
            false,
            "lesson added",
            |doc, _| write_manifest(doc, &m, &by),
        )?;
        self.lesson(&id)
    }

    /// The lessons of one handbook, or of all, oldest first.
    pub fn lessons(&self, handbook: Option<&DocId>) -> Result<Vec<LessonInfo>> {
        manifests(self.conn(), handbook)?
            .iter()
            .map(|m| self.lesson_info(m))
            .collect()
    }

    /// One lesson.
    pub fn lesson(&self, id: &str) -> Result<LessonInfo> {
        let m = manifest(self.conn(), id)?;
        self.lesson_info(&m)
    }

    fn open_chunk(
        &self,
        m: &Manifest,
        index: u32,
        keys: &BTreeMap<u32, heartbridge_proto::TeamKey>,
    ) -> Result<Vec<u8>> {
        let c = &m.chunks[index as usize];
        let sealed = held_chunk(self.conn(), c)?.ok_or_else(|| {
            lesson_err(
                "lesson_not_held",
                format!(
                    "lesson {} is not all on this device yet (chunk {} of {} missing): fetch it first (`heartbridge lesson fetch {}`)",
                    m.id,
                    index + 1,
                    m.count(),
                    m.id
                ),
            )
        })?;
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let key = keys.get(&m.epoch).ok_or(Error::NotYetKnown {
            what: "the key this lesson was sealed with",
        })?;
        let plain =
            wire::open_chunk(key, &team.team_id, &m.place(index)?, &sealed).ok_or_else(|| {
                lesson_err(
                    "lesson_chunk_bad",
                    format!(
                        "chunk {} of lesson {} does not open with the team's key",
                        index + 1,
                        m.id
                    ),
                )
            })?;
        if plain.len() as u64 != m.plain_len(index) {
            return Err(lesson_err(
                "lesson_chunk_bad",
                format!(
                    "chunk {} of lesson {} has the wrong length",
                    index + 1,
                    m.id
                ),
            ));
        }
        Ok(plain)
    }

    /// Decrypted bytes `start..=end` of a lesson (`end` clamped to its end
    /// and to [`MAX_READ_BYTES`] from `start`), for a player's range
    /// request. Nothing is written anywhere.
    pub fn lesson_read_range(&self, id: &str, start: u64, end: Option<u64>) -> Result<LessonRange> {
        let m = manifest(self.conn(), id)?;
        if start >= m.size {
            return Err(Error::InvalidValue {
                field: "range start",
                value: start.to_string(),
                allowed: "an offset below the lesson's size",
            });
        }
        if end.is_some_and(|e| e < start) {
            return Err(Error::InvalidValue {
                field: "range end",
                value: end.unwrap_or(0).to_string(),
                allowed: "an offset at or after the range's start",
            });
        }
        let last = end
            .unwrap_or(u64::MAX)
            .min(m.size - 1)
            .min(start + MAX_READ_BYTES - 1);
        let keys = crate::team::epoch_keys(self.conn())?;
        let mut out = Vec::with_capacity((last - start + 1) as usize);
        let first = (start / m.chunk_size) as u32;
        let final_chunk = (last / m.chunk_size) as u32;
        for i in first..=final_chunk {
            let plain = self.open_chunk(&m, i, &keys)?;
            let base = i as u64 * m.chunk_size;
            let from = start.saturating_sub(base) as usize;
            let to = ((last - base + 1) as usize).min(plain.len());
            out.extend_from_slice(&plain[from..to]);
        }
        Ok(LessonRange {
            bytes: out,
            start,
            total: m.size,
            mime: m.mime,
        })
    }

    /// Writes a whole lesson, decrypted and checked against its hash, to
    /// `to` (the volunteer asked for a copy; the file is theirs). Answers
    /// the bytes written.
    pub fn lesson_export(&self, id: &str, to: &Path) -> Result<u64> {
        use sha2::Digest;
        use std::io::Write;
        let m = manifest(self.conn(), id)?;
        let keys = crate::team::epoch_keys(self.conn())?;
        let mut hash = sha2::Sha256::new();
        let mut parts = Vec::with_capacity(m.chunks.len());
        for i in 0..m.count() {
            let p = self.open_chunk(&m, i, &keys)?;
            hash.update(&p);
            parts.push(p);
        }
        if hex::encode(hash.finalize()) != m.sha256 {
            return Err(lesson_err(
                "lesson_chunk_bad",
                format!("lesson {} does not match its hash", m.id),
            ));
        }
        let io = |source| Error::Io {
            path: to.to_owned(),
            source,
        };
        let mut f = std::fs::File::create(to).map_err(io)?;
        for p in &parts {
            f.write_all(p).map_err(io)?;
        }
        f.sync_all().map_err(io)?;
        Ok(m.size)
    }

    /// Keeps where the volunteer stopped in a lesson (this device only).
    pub fn lesson_set_progress(&mut self, id: &str, position_ms: u64) -> Result<()> {
        manifest(self.conn(), id)?;
        self.immediate(|tx| {
            tx.execute(
                "INSERT INTO lesson_progress (lesson_id, position_ms, watched_count, updated_at) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT (lesson_id) DO UPDATE SET position_ms = ?2, updated_at = ?3",
                params![id, position_ms as i64, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Records one viewing of a lesson (one 人次 in the statistics, as a
    /// de-identified fact: the lesson's id and the time); answers this
    /// device's count for it. Call it once per completed viewing.
    pub fn lesson_watched(&mut self, id: &str) -> Result<u32> {
        let m = manifest(self.conn(), id)?;
        let at = now_ms();
        self.immediate(|tx| {
            tx.execute(
                "INSERT INTO lesson_progress (lesson_id, position_ms, watched_count, last_watched_at, updated_at) VALUES (?1, NULL, 1, ?2, ?2)
                 ON CONFLICT (lesson_id) DO UPDATE SET watched_count = watched_count + 1, last_watched_at = ?2, updated_at = ?2",
                params![m.id, at],
            )?;
            record_fact_in(
                tx,
                &Fact::LessonWatched {
                    id: Fact::new_id(),
                    lesson: m.id.clone(),
                    at,
                },
            )?;
            let n: i64 = tx.query_row(
                "SELECT watched_count FROM lesson_progress WHERE lesson_id = ?1",
                [&m.id],
                |r| r.get(0),
            )?;
            Ok(n.max(0) as u32)
        })
    }

    /// Whether fetches from a relay that is not a venue relay ask first.
    pub fn lesson_link_policy(&self) -> Result<LinkPolicy> {
        match self.setting(POLICY_KEY)? {
            Some(s) => LinkPolicy::parse(&s),
            None => Ok(LinkPolicy::Ask),
        }
    }

    pub fn set_lesson_link_policy(&mut self, p: LinkPolicy) -> Result<()> {
        self.set_setting(POLICY_KEY, p.as_str())
    }

    fn wanted(&self, ids: &[String]) -> Result<Vec<Manifest>> {
        if ids.is_empty() {
            return manifests(self.conn(), None);
        }
        ids.iter().map(|id| manifest(self.conn(), id)).collect()
    }

    /// The chunks of `ids` (every lesson when empty) not on this device.
    pub fn lesson_missing_chunks(&self, ids: &[String]) -> Result<Vec<ChunkRef>> {
        let mut out = Vec::new();
        for m in self.wanted(ids)? {
            for (i, c) in m.chunks.iter().enumerate() {
                if !is_held(self.conn(), c, &m.id, i)? {
                    out.push(ChunkRef {
                        lesson: m.id.clone(),
                        index: i as u32,
                        chunk_id: c.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// What fetching `ids` (every lesson when empty) would bring.
    pub fn lesson_fetch_plan(&self, ids: &[String]) -> Result<FetchPlan> {
        let wanted = self.wanted(ids)?;
        let mut plan = FetchPlan {
            lessons: wanted.iter().map(|m| m.id.clone()).collect(),
            chunks_missing: 0,
            bytes_missing: 0,
        };
        for m in &wanted {
            for (i, c) in m.chunks.iter().enumerate() {
                if !is_held(self.conn(), c, &m.id, i)? {
                    plan.chunks_missing += 1;
                    plan.bytes_missing = plan
                        .bytes_missing
                        .saturating_add(m.plain_len(i as u32) + 24 + 16);
                }
            }
        }
        Ok(plan)
    }

    /// Checks a fetched chunk (its hash, then that it opens with the team
    /// key in its place) and keeps it, in one transaction. A chunk that
    /// fails is refused with `lesson_chunk_bad`; nothing else changes.
    pub fn lesson_accept_chunk(&mut self, c: &ChunkRef, sealed: &[u8]) -> Result<()> {
        let m = manifest(self.conn(), &c.lesson)?;
        let named = m.chunks.get(c.index as usize) == Some(&c.chunk_id);
        let bad = |why: &str| {
            lesson_err(
                "lesson_chunk_bad",
                format!(
                    "the relay sent chunk {} of {} of lesson {} altered ({why}): it was refused and nothing else changed; fetch again later or from another relay",
                    c.index + 1,
                    m.count(),
                    m.id
                ),
            )
        };
        if !named {
            return Err(bad("not in the lesson's manifest"));
        }
        if wire::chunk_id(sealed) != c.chunk_id {
            return Err(bad("its hash does not match"));
        }
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let keys = crate::team::epoch_keys(self.conn())?;
        let key = keys.get(&m.epoch).ok_or(Error::NotYetKnown {
            what: "the key this lesson was sealed with",
        })?;
        match wire::open_chunk(key, &team.team_id, &m.place(c.index)?, sealed) {
            Some(p) if p.len() as u64 == m.plain_len(c.index) => {}
            // The bytes are the ones the manifest names, so the manifest is
            // at fault, not the relay (review K4.3).
            _ => {
                return Err(manifest_bad(
                    &m,
                    &format!(
                        "its chunk {} of {} does not open in its place",
                        c.index + 1,
                        m.count()
                    ),
                ))
            }
        }
        self.immediate(|tx| store_chunk(tx, c, sealed))?;
        // Complete now: the whole must be the file the lesson id names
        // (review K4.1), else its chunks go and the lesson is refused.
        if m.chunks
            .iter()
            .enumerate()
            .all(|(i, c)| is_held(self.conn(), c, &m.id, i).unwrap_or(false))
        {
            self.verify_whole(&m)?;
        }
        Ok(())
    }

    fn verify_whole(&mut self, m: &Manifest) -> Result<()> {
        use sha2::Digest;
        let keys = crate::team::epoch_keys(self.conn())?;
        let mut hash = sha2::Sha256::new();
        for i in 0..m.count() {
            hash.update(self.open_chunk(m, i, &keys)?);
        }
        if hex::encode(hash.finalize()) == m.sha256 {
            return Ok(());
        }
        self.immediate(|tx| {
            let mut st = tx.prepare_cached(
                "DELETE FROM lesson_chunks WHERE chunk_id = ?1 AND lesson_id = ?2",
            )?;
            for c in &m.chunks {
                st.execute(params![hex::decode(c).unwrap_or_default(), m.id])?;
            }
            Ok(())
        })?;
        Err(manifest_bad(
            m,
            "its chunks together are not the file its id names",
        ))
    }

    /// Chunks this device added that the team's relay has not confirmed.
    pub fn lesson_pending_uploads(&self) -> Result<Vec<ChunkRef>> {
        let mut st = self.conn().prepare_cached(
            "SELECT chunk_id, lesson_id, idx FROM lesson_uploads ORDER BY lesson_id, idx",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ChunkRef {
                chunk_id: hex::encode(r.get::<_, Vec<u8>>(0)?),
                lesson: r.get(1)?,
                index: r.get::<_, i64>(2)? as u32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sealed bytes of a chunk held here (for an upload).
    pub fn lesson_sealed_chunk(&self, chunk_id: &str) -> Result<Vec<u8>> {
        held_chunk(self.conn(), chunk_id)?.ok_or_else(|| Error::NotFound {
            what: "lesson chunk",
            id: chunk_id.to_owned(),
        })
    }

    /// The team's relay holds these chunks: they leave the upload queue.
    pub fn lesson_upload_done(&mut self, chunk_ids: &[String]) -> Result<()> {
        self.immediate(|tx| {
            let mut st = tx.prepare_cached("DELETE FROM lesson_uploads WHERE chunk_id = ?1")?;
            for c in chunk_ids {
                st.execute([hex::decode(c).unwrap_or_default()])?;
            }
            Ok(())
        })
    }

    /// Uploads the chunks this device added to the team's relay (those it
    /// does not hold yet); answers how many were sent.
    pub fn lesson_push(&mut self, t: &mut dyn BlobTransport) -> Result<u32> {
        let pending = self.lesson_pending_uploads()?;
        if pending.is_empty() {
            return Ok(0);
        }
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let entry = self
            .relays()?
            .into_iter()
            .find(|e| e.team_relay)
            .ok_or(Error::NotEnrolled)?;
        t.use_relay(&entry);
        let mut sent = 0;
        for group in pending.chunks(wire::MAX_HAVE_IDS) {
            let ids: Vec<String> = group.iter().map(|c| c.chunk_id.clone()).collect();
            let have = t.blob_have(&team, &ids).map_err(transport_error)?;
            let mut done = Vec::new();
            for (c, held) in group.iter().zip(have) {
                if !held {
                    let sealed = self.lesson_sealed_chunk(&c.chunk_id)?;
                    t.blob_put(&team, &c.chunk_id, sealed)
                        .map_err(transport_error)?;
                    sent += 1;
                    self.lesson_upload_done(std::slice::from_ref(&c.chunk_id))?;
                } else {
                    done.push(c.chunk_id.clone());
                }
            }
            self.lesson_upload_done(&done)?;
        }
        Ok(sent)
    }

    /// Fetches the chunks of `ids` (every lesson when empty) not on this
    /// device: from venue relays first (local Wi-Fi, never metered), then
    /// the team's other relays — those only if the link policy is
    /// `unmetered` or `confirm_metered` (else `metered_link`, with the
    /// size). `only` restricts it to one relay entry. Every chunk is
    /// checked and committed as it arrives, so a cut fetch resumes with
    /// what is missing. Answers what it did.
    pub fn lesson_fetch(
        &mut self,
        t: &mut dyn BlobTransport,
        ids: &[String],
        confirm_metered: bool,
        only: Option<&str>,
        progress: &mut dyn FnMut(&FetchReport),
    ) -> Result<FetchReport> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let wanted = self.wanted(ids)?;
        let total: u32 = wanted.iter().map(|m| m.count()).sum();
        let mut report = FetchReport {
            lessons: wanted.len(),
            ..FetchReport::default()
        };
        let mut missing = self.lesson_missing_chunks(ids)?;
        report.chunks_already_held = total - missing.len() as u32;
        if missing.is_empty() {
            report.complete = true;
            return Ok(report);
        }
        let mut order = self.relay_order()?;
        if let Some(url) = only {
            let url = crate::normalize_relay_url(url)?;
            order.retain(|e| e.url == url);
            if order.is_empty() {
                return Err(Error::NotFound {
                    what: "relay",
                    id: url,
                });
            }
        }
        let policy = self.lesson_link_policy()?;
        let mut last_err: Option<Error> = None;
        let mut bad_lessons: Vec<String> = Vec::new();
        for entry in order {
            if missing.is_empty() {
                break;
            }
            if entry.kind != RelayKind::Venue && policy == LinkPolicy::Ask && !confirm_metered {
                let plan = self.lesson_fetch_plan(ids)?;
                last_err = Some(Error::MeteredLink {
                    lessons: plan.lessons.len(),
                    bytes: plan.bytes_missing,
                });
                continue;
            }
            t.use_relay(&entry);
            let mut at = team.clone();
            at.relay_url = entry.url.clone();
            report.relay = Some(entry.url.clone());
            let mut left = Vec::new();
            let mut it = std::mem::take(&mut missing).into_iter();
            for c in it.by_ref() {
                if bad_lessons.contains(&c.lesson) {
                    continue;
                }
                match t.blob_get(&at, &c.chunk_id) {
                    Ok(sealed) => match self.lesson_accept_chunk(&c, &sealed) {
                        Ok(()) => {
                            report.chunks_fetched += 1;
                            report.bytes_fetched += sealed.len() as u64;
                            progress(&report);
                        }
                        Err(
                            e @ Error::Lesson {
                                kind: "lesson_manifest_bad",
                                ..
                            },
                        ) => {
                            // That lesson is given up (from every relay);
                            // the others go on.
                            bad_lessons.push(c.lesson.clone());
                            last_err = Some(e);
                        }
                        Err(e @ Error::Lesson { .. }) => {
                            // This relay altered a chunk: trust nothing more
                            // from it in this fetch; the next relay may
                            // have it whole.
                            left.push(c);
                            last_err = Some(e);
                            break;
                        }
                        Err(e) => return Err(e),
                    },
                    Err(TransportError::Relay { status: 404, .. }) => {
                        last_err = Some(lesson_err(
                            "lesson_not_on_relay",
                            format!(
                                "chunk {} of lesson {} is not on the relay yet: the device that added the lesson has not uploaded it (it does at its next sync); try again later",
                                c.index + 1,
                                c.lesson
                            ),
                        ));
                        left.push(c);
                    }
                    Err(e) => {
                        left.push(c);
                        last_err = Some(transport_error(e));
                        break;
                    }
                }
            }
            left.extend(it);
            left.retain(|c| !bad_lessons.contains(&c.lesson));
            missing = left;
        }
        report.complete = missing.is_empty() && bad_lessons.is_empty();
        match (report.complete, last_err) {
            (true, _) => Ok(report),
            (false, Some(e)) => Err(e),
            (false, None) => Err(lesson_err(
                "lesson_not_on_relay",
                "no relay this device knows could be asked for the lesson: add the team's relay or a venue relay (`heartbridge team relays`)".to_owned(),
            )),
        }
    }
}

fn transport_error(e: TransportError) -> Error {
    match e {
        TransportError::Network(detail) | TransportError::Cut { detail, .. } => {
            Error::Network { detail }
        }
        TransportError::Relay { kind, message, .. } if kind == "device_revoked" => {
            let _ = message;
            Error::DeviceRevoked
        }
        TransportError::Relay { kind, message, .. } => Error::Relay { kind, message },
    }
}

/// Lessons watched (人次) in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonStats {
    pub from: String,
    pub to: String,
    /// Viewings in the period, every lesson together.
    pub lessons_watched: i64,
    /// Per lesson, most watched first.
    pub by_lesson: Vec<LessonWatched>,
}

/// One lesson's viewings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonWatched {
    pub lesson: String,
    /// From a handbook this device holds (empty if none names it).
    pub title: String,
    pub watched: i64,
}

pub(crate) fn lesson_stats<'a>(
    conn: &Connection,
    from: &str,
    to: &str,
    facts: impl Iterator<Item = &'a Fact>,
) -> Result<LessonStats> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for f in facts {
        if let Fact::LessonWatched { lesson, .. } = f {
            *counts.entry(lesson.clone()).or_insert(0) += 1;
        }
    }
    let mut by_lesson = Vec::new();
    for (lesson, watched) in counts {
        let title = manifest(conn, &lesson).map(|m| m.title).unwrap_or_default();
        by_lesson.push(LessonWatched {
            lesson,
            title,
            watched,
        });
    }
    by_lesson.sort_by(|a, b| b.watched.cmp(&a.watched).then(a.lesson.cmp(&b.lesson)));
    Ok(LessonStats {
        from: from.to_owned(),
        to: to.to_owned(),
        lessons_watched: by_lesson.iter().map(|l| l.watched).sum(),
        by_lesson,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(size: u64, chunks: usize) -> Manifest {
        Manifest {
            id: "00112233445566778899aabbccddeeff".into(),
            handbook: "hb".into(),
            title: "第一课".into(),
            mime: "audio/mpeg".into(),
            size,
            duration_ms: Some(90_000),
            sha256: format!("00112233445566778899aabbccddeeff{}", "0".repeat(32)),
            chunk_size: CHUNK_SIZE as u64,
            epoch: 2,
            chunks: (0..chunks).map(|i| format!("{i:064x}")).collect(),
            added_at: 7,
        }
    }

    #[test]
    fn a_manifest_reads_back_and_one_that_does_not_add_up_is_left_out() {
        let mut doc = AutoCommit::new();
        let m = manifest(CHUNK_SIZE as u64 * 2 + 1, 3);
        assert!(write_manifest(&mut doc, &m, "dev").unwrap());
        assert!(
            !write_manifest(&mut doc, &m, "dev").unwrap(),
            "the same lesson again changes nothing"
        );
        let read = read_manifests(&doc, "hb");
        assert_eq!(read.len(), 1);
        let r = &read[0];
        assert_eq!(
            (r.title.as_str(), r.size, r.count(), r.epoch, r.duration_ms),
            ("第一课", m.size, 3, 2, Some(90_000))
        );
        assert_eq!(r.chunks, m.chunks);
        assert_eq!(r.plain_len(2), 1);
        assert_eq!(r.plain_len(0), CHUNK_SIZE as u64);

        // Two chunks named for a size that needs three: left out.
        let mut bad = manifest(CHUNK_SIZE as u64 * 2 + 1, 2);
        bad.id = "ffeeddccbbaa99887766554433221100".into();
        bad.sha256 = format!("{}{}", bad.id, "0".repeat(32));
        write_manifest(&mut doc, &bad, "dev").unwrap();
        assert_eq!(read_manifests(&doc, "hb").len(), 1);

        // Past a lesson's size, another chunk size, not media, a hash that
        // is not the id's: left out too (review K4.2).
        for (n, f) in [
            |m: &mut Manifest| m.size = MAX_LESSON_BYTES + 1,
            |m: &mut Manifest| m.chunk_size = 1 << 62,
            |m: &mut Manifest| m.mime = "text/html".into(),
            |m: &mut Manifest| m.sha256 = "ab".repeat(32),
        ]
        .into_iter()
        .enumerate()
        {
            let mut odd = manifest(CHUNK_SIZE as u64, 1);
            odd.id = format!("{:032x}", n + 1);
            odd.sha256 = format!("{}{}", odd.id, "0".repeat(32));
            f(&mut odd);
            write_manifest(&mut doc, &odd, "dev").unwrap();
        }
        assert_eq!(read_manifests(&doc, "hb").len(), 1);
    }

    #[test]
    fn media_types_come_from_the_extension() {
        assert_eq!(guess_mime(Path::new("a/b.MP4")), Some("video/mp4"));
        assert_eq!(guess_mime(Path::new("x.mp3")), Some("audio/mpeg"));
        assert_eq!(guess_mime(Path::new("x.txt")), None);
        assert_eq!(LinkPolicy::parse("ask").unwrap(), LinkPolicy::Ask);
        assert_eq!(LinkPolicy::parse("x").unwrap_err().kind(), "invalid_input");
    }
}
