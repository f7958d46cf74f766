//! Sneakernet bundles (issue 10): the sealed envelopes a device would push,
//! in one file that a USB stick or a local file share carries to another
//! device of the team, which applies them and pushes them for their authors
//! at its next sync (carried envelopes; the relay checks each under its
//! author's key and deduplicates by content id, so a bundle is idempotent
//! with normal sync in any order).
//!
//! # Format `HBB1`
//!
//! ```text
//! "HBB1" | body length (u64, little endian) | body | signature (64 bytes)
//! body = postcard(Body { header: Header { team, device, created_at, count }, envelopes })
//! signature = Ed25519 of the exporting device over
//!             "heartbridge bundle v1\0" | every byte before the signature
//! ```
//!
//! The envelopes are as the relay would store them: each sealed under the
//! team key (case payloads also under their case key) and signed by its
//! author. Nothing in a bundle is readable without the keys; the file says
//! which team and device made it, when, and how many envelopes it holds.
//!
//! Import verifies the whole file before it applies anything: the format,
//! the team, the exporting device (a member this device trusts, not
//! revoked) and the signature over everything; any mismatch refuses the
//! whole bundle with a [`BundleError`] naming what is wrong (never what it
//! holds). Then each envelope goes through the same inbound path as a pulled
//! one (so need to know, locked payloads, grants and revocation hold), with
//! a place of its own among pulled envelopes ([`BUNDLE_SEQ_BASE`] + its
//! `carried` row id, above any relay sequence number: a revoked author's
//! envelope from a bundle counts as past its cut-off here).

pub mod qr;

use heartbridge_proto::{Envelope, Pulled};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{now_ms, DocId};
use crate::store::Store;
use crate::sync::{inbound, outbound};

/// The first four bytes of every bundle of this format.
pub const MAGIC: [u8; 4] = *b"HBB1";
/// What the trailer's signature covers, before the bundle's bytes.
const SIG_CONTEXT: &[u8] = b"heartbridge bundle v1\0";
/// Bytes before the body: the magic and the body's length.
const PREFIX: usize = 4 + 8;
/// The trailer: an Ed25519 signature.
const SIG_BYTES: usize = 64;
/// The largest bundle read or written.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;
/// The most envelopes one bundle holds.
pub const MAX_BUNDLE_ENVELOPES: usize = 1_000_000;
/// Imported envelopes are numbered from here among pulled ones (relay
/// sequence numbers never come near it).
pub const BUNDLE_SEQ_BASE: u64 = 1 << 62;

/// Why a bundle was refused. Nothing of it was applied. The message says
/// what is wrong and what to do; [`BundleError::code`] is stable, for
/// translations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("this file is not a Heartbridge bundle: choose a file made by `heartbridge bundle export` (or the app's 导出); nothing was imported")]
    NotABundle,
    #[error("this bundle was made by a newer Heartbridge (format {0}): update Heartbridge on this device and import it again; nothing was imported")]
    NewerFormat(String),
    #[error("the bundle is incomplete ({have} of {want} bytes): it was cut off while being copied; copy it again from the device that made it; nothing was imported")]
    Truncated { have: usize, want: usize },
    #[error("the bundle is damaged (its contents do not read): copy it again from the device that made it; nothing was imported")]
    Damaged,
    #[error("the bundle is larger than {max} bytes: export a smaller one (`--since last`); nothing was imported")]
    TooLarge { max: usize },
    #[error("the bundle was made by a device of another team: import it on a device of the team that made it; nothing was imported")]
    OtherTeam,
    #[error("the bundle was made by a device this one does not know yet: sync this device once with the relay, then import it again; nothing was imported")]
    UnknownExporter,
    #[error(
        "the bundle was made by a device the team's lead removed from the team: it is not imported"
    )]
    ExporterRevoked,
    #[error("the bundle's signature does not match its contents (it was changed or damaged after it was made): get a fresh copy from the device that made it; nothing was imported")]
    BadSignature,
}

impl BundleError {
    /// A stable name for the kind of refusal (`bundle_not_a_bundle`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::NotABundle => "bundle_not_a_bundle",
            BundleError::NewerFormat(_) => "bundle_newer_format",
            BundleError::Truncated { .. } => "bundle_truncated",
            BundleError::Damaged => "bundle_damaged",
            BundleError::TooLarge { .. } => "bundle_too_large",
            BundleError::OtherTeam => "bundle_other_team",
            BundleError::UnknownExporter => "bundle_unknown_exporter",
            BundleError::ExporterRevoked => "bundle_exporter_revoked",
            BundleError::BadSignature => "bundle_bad_signature",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    team: [u8; 16],
    device: [u8; 16],
    /// Unix milliseconds.
    created_at: i64,
    count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    header: Header,
    envelopes: Vec<Envelope>,
}

/// A bundle read but not yet trusted: [`Parsed::verify`] checks its
/// trailer.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub team: [u8; 16],
    /// The exporting device.
    pub device: [u8; 16],
    /// Unix milliseconds.
    pub created_at: i64,
    pub envelopes: Vec<Envelope>,
    signed_len: usize,
    sig: [u8; 64],
}

impl Parsed {
    /// Whether the trailer is the exporting device's signature (under
    /// `sign_pk`) over `bytes`, the file this was parsed from.
    pub fn verify(&self, bytes: &[u8], sign_pk: &[u8; 32]) -> bool {
        let Some(signed) = bytes.get(..self.signed_len) else {
            return false;
        };
        let mut msg = Vec::with_capacity(SIG_CONTEXT.len() + signed.len());
        msg.extend_from_slice(SIG_CONTEXT);
        msg.extend_from_slice(signed);
        heartbridge_proto::identity::verify(sign_pk, &msg, &self.sig)
    }
}

/// Reads a bundle's structure (nothing is trusted yet): the magic, the
/// lengths, the body. Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> std::result::Result<Parsed, BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge {
            max: MAX_BUNDLE_BYTES,
        });
    }
    if bytes.len() < 4 || !bytes.starts_with(b"HBB") {
        return Err(BundleError::NotABundle);
    }
    if bytes[..4] != MAGIC {
        let v = String::from_utf8_lossy(&bytes[..4]).into_owned();
        return Err(BundleError::NewerFormat(v));
    }
    let want_at_least = PREFIX + SIG_BYTES;
    if bytes.len() < PREFIX {
        return Err(BundleError::Truncated {
            have: bytes.len(),
            want: want_at_least,
        });
    }
    let body_len = u64::from_le_bytes(bytes[4..PREFIX].try_into().expect("8 bytes"));
    let want = usize::try_from(body_len)
        .ok()
        .and_then(|b| b.checked_add(PREFIX + SIG_BYTES))
        .filter(|w| *w <= MAX_BUNDLE_BYTES)
        .ok_or(BundleError::Damaged)?;
    if bytes.len() < want {
        return Err(BundleError::Truncated {
            have: bytes.len(),
            want,
        });
    }
    if bytes.len() > want {
        return Err(BundleError::Damaged);
    }
    let signed_len = want - SIG_BYTES;
    let body_bytes = &bytes[PREFIX..signed_len];
    let body: Body =
        heartbridge_proto::decode("bundle", body_bytes).map_err(|_| BundleError::Damaged)?;
    // Nothing but the body between the length and the trailer.
    if heartbridge_proto::encode(&body).len() != body_bytes.len()
        || body.header.count as usize != body.envelopes.len()
        || body.envelopes.len() > MAX_BUNDLE_ENVELOPES
        // An honest export carries no snapshot (review L5): one with
        // `covers` counts in some relay's seqs and would compact at
        // another.
        || body.envelopes.iter().any(|e| e.covers > 0)
    {
        return Err(BundleError::Damaged);
    }
    let sig: [u8; 64] = bytes[signed_len..].try_into().expect("64 bytes");
    Ok(Parsed {
        team: body.header.team,
        device: body.header.device,
        created_at: body.header.created_at,
        envelopes: body.envelopes,
        signed_len,
        sig,
    })
}

/// Writes a bundle of `envelopes`, signed by `secret` as `device` of
/// `team`.
pub fn write(
    team: [u8; 16],
    device: [u8; 16],
    created_at: i64,
    envelopes: Vec<Envelope>,
    secret: &heartbridge_proto::DeviceSecret,
) -> Vec<u8> {
    let body = Body {
        header: Header {
            team,
            device,
            created_at,
            count: u32::try_from(envelopes.len()).unwrap_or(u32::MAX),
        },
        envelopes,
    };
    let body = heartbridge_proto::encode(&body);
    let mut out = Vec::with_capacity(PREFIX + body.len() + SIG_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let mut msg = Vec::with_capacity(SIG_CONTEXT.len() + out.len());
    msg.extend_from_slice(SIG_CONTEXT);
    msg.extend_from_slice(&out);
    out.extend_from_slice(&secret.sign(&msg));
    out
}

/// What `bundle export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportScope {
    /// What the relay has not acknowledged yet, less what the last export
    /// with this scope already wrote.
    SinceLast,
    /// Everything not yet acknowledged, exported before or not.
    All,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exported {
    /// Envelopes in the bundle.
    pub envelopes: usize,
    /// Of them, other members' envelopes this device carries.
    pub carried: usize,
    /// Left out: written by an earlier `--since last` export.
    pub already_exported: usize,
    pub bytes: usize,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Envelopes in the bundle.
    pub envelopes: usize,
    /// Envelopes that changed a document here.
    pub applied: usize,
    /// Already here (imported before, or this device's own).
    pub already_here: usize,
    /// Cases this device does not read: kept sealed (locked), still carried.
    pub locked: usize,
    /// Waiting for their author, key or dependencies to be known here.
    pub waiting: usize,
    /// Refused here (bad signature under its author's key, revoked author):
    /// not carried.
    pub refused: usize,
    /// Queued for this device's next push (carried for their authors).
    pub queued: usize,
}

impl Store {
    /// Writes a bundle of this device's envelopes not yet acknowledged by
    /// the relay (its outbox, sealed and signed exactly as the next push
    /// would, and what it carries for others), high and critical cases
    /// first. Returns the file's bytes and what it holds.
    ///
    /// With [`ExportScope::SinceLast`] the envelopes count as exported as
    /// soon as this returns, whether the caller manages to write the file or
    /// not: [`Store::bundle_export_to`] writes it first.
    pub fn bundle_export(&mut self, scope: ExportScope) -> Result<(Vec<u8>, Exported)> {
        let (tx, bytes, report) = self.export_envelopes(scope, None)?;
        tx.commit()?;
        Ok((bytes, report))
    }

    /// [`Store::bundle_export`], handing the bytes to `write` (which writes
    /// the file durably) before anything is committed (review L4): if it
    /// fails (a full or pulled USB stick), nothing is marked exported, so
    /// the next `--since last` export still holds these envelopes. The
    /// store is held for the write.
    pub fn bundle_export_to<E: From<Error>>(
        &mut self,
        scope: ExportScope,
        write: impl FnOnce(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Exported, E> {
        let (tx, bytes, report) = self.export_envelopes(scope, None)?;
        // Dropping the transaction on a failed write rolls it back.
        write(&bytes)?;
        tx.commit().map_err(Error::from)?;
        Ok(report)
    }

    /// A bundle of one case's changes this device has not delivered yet (and
    /// the key grants going with them), for a QR code sequence.
    pub fn bundle_export_case(&mut self, case: &DocId) -> Result<(Vec<u8>, Exported)> {
        let (tx, bytes, report) = self.export_envelopes(ExportScope::All, Some(case))?;
        tx.commit()?;
        Ok((bytes, report))
    }

    /// Builds the bundle in a transaction the caller commits.
    fn export_envelopes(
        &mut self,
        scope: ExportScope,
        doc: Option<&DocId>,
    ) -> Result<(rusqlite::Transaction<'_>, Vec<u8>, Exported)> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let actor = self.actor().clone();
        let profile = self.profile().clone();
        let device = team.device_bytes().ok_or_else(|| Error::Protocol {
            detail: "this device's id is unreadable".into(),
        })?;
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let secret = crate::enroll::device_secret(&tx)?.ok_or_else(|| Error::Protocol {
            detail: "this device has no signing key: join the team again".into(),
        })?;
        if let Some(d) = doc {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM cases WHERE id = ?1)",
                [d.as_str()],
                |r| r.get(0),
            )?;
            if !known {
                return Err(Error::NotFound {
                    what: "case",
                    id: d.as_str().to_owned(),
                });
            }
        }
        {
            // What the next push would do first: keys and grants, facts.
            crate::access::ensure_oversight(&tx, &team, &profile)?;
            let trust = crate::team::Trust::load(&tx, &team)?;
            crate::access::prepare(&tx, &team, &trust, &profile)?;
            crate::access::queue_facts(&tx, &team, &actor)?;
        }
        outbound::freeze_outbox(&tx, &team)?;
        let own = outbound::plan(&tx, &team, usize::MAX, usize::MAX, false, doc)?;
        let carried = outbound::carried(&tx, doc.map(DocId::as_str))?;
        let mut all: Vec<Envelope> = own.into_iter().map(|p| p.envelope).collect();
        all.extend(carried.into_iter().map(|(_, e)| e));
        // Key grants first (a reader needs the key before the case), then
        // high and critical cases, then the rest, each in push order.
        let grants = crate::sync::doc_bytes(&crate::access::grants_doc_id(&team.team_id));
        let rank = |e: &Envelope| -> Result<u8> {
            if e.doc == grants {
                return Ok(0);
            }
            let high: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM cases WHERE id = ?1 AND risk_rank >= 3)",
                )?
                .query_row([hex::encode(e.doc)], |r| r.get(0))?;
            Ok(if high { 1 } else { 2 })
        };
        let mut ranked = Vec::with_capacity(all.len());
        for e in all {
            ranked.push((rank(&e)?, e));
        }
        ranked.sort_by_key(|(r, _)| *r);
        let mut envelopes = Vec::with_capacity(ranked.len());
        let mut already = 0;
        let mut carried_out = 0;
        let carried_ids: std::collections::HashSet<_> = outbound::carried(&tx, None)?
            .into_iter()
            .map(|(_, e)| e.id)
            .collect();
        for (_, e) in ranked {
            if scope == ExportScope::SinceLast && doc.is_none() {
                let seen: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM bundle_exported WHERE content_id = ?1)",
                    )?
                    .query_row([&e.id.0[..]], |r| r.get(0))?;
                if seen {
                    already += 1;
                    continue;
                }
            }
            if carried_ids.contains(&e.id) {
                carried_out += 1;
            }
            envelopes.push(e);
        }
        if scope == ExportScope::SinceLast && doc.is_none() {
            let now = now_ms();
            let mut st = tx.prepare_cached(
                "INSERT INTO bundle_exported (content_id, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for e in &envelopes {
                st.execute(params![&e.id.0[..], now])?;
            }
        }
        let count = envelopes.len();
        let bytes = write(team.team_id.0, device, now_ms(), envelopes, &secret);
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                max: MAX_BUNDLE_BYTES,
            }
            .into());
        }
        // The outbox frozen into batches and the grants made stay (once the
        // caller commits): the next push sends these very envelopes.
        let report = Exported {
            envelopes: count,
            carried: carried_out,
            already_exported: already,
            bytes: bytes.len(),
        };
        Ok((tx, bytes, report))
    }

    /// Imports a bundle: verifies all of it first (refused whole, nothing
    /// applied, on any mismatch), then applies each envelope as a pulled
    /// one and queues those of other members for the next push. Importing
    /// the same envelopes again is a no-op.
    pub fn bundle_import(&mut self, bytes: &[u8]) -> Result<ImportReport> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let parsed = parse(bytes)?;
        if parsed.team != team.team_id.0 {
            return Err(BundleError::OtherTeam.into());
        }
        let me = team.device_bytes().ok_or_else(|| Error::Protocol {
            detail: "this device's id is unreadable".into(),
        })?;
        let actor = self.actor().clone();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let trust = crate::team::Trust::load(&tx, &team)?;
        let exporter = if parsed.device == me {
            let own = crate::enroll::device_secret(&tx)?.ok_or(BundleError::UnknownExporter)?;
            (own.public().sign, false)
        } else {
            trust
                .signer(&parsed.device)
                .ok_or(BundleError::UnknownExporter)?
        };
        if exporter.1 {
            return Err(BundleError::ExporterRevoked.into());
        }
        if !parsed.verify(bytes, &exporter.0) {
            return Err(BundleError::BadSignature.into());
        }
        // Every envelope whose author this device knows must verify before
        // anything is applied (review L6): the exporter signed a file with
        // an altered envelope in it, so none of it is taken. (An unknown
        // author's is held and judged when the author is known, as pulled.)
        for env in &parsed.envelopes {
            if env.author == me {
                continue;
            }
            if let Some((sign_pk, _)) = trust.signer(&env.author) {
                if !env.verify(&team.team_id, &sign_pk) {
                    return Err(BundleError::Damaged.into());
                }
            }
        }
        let mut report = ImportReport {
            envelopes: parsed.envelopes.len(),
            ..ImportReport::default()
        };
        let now = now_ms();
        for env in parsed.envelopes {
            let seen: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM bundle_seen WHERE content_id = ?1)")?
                .query_row([&env.id.0[..]], |r| r.get(0))?;
            if seen || env.author == me {
                report.already_here += 1;
                continue;
            }
            tx.prepare_cached("INSERT INTO bundle_seen (content_id, at) VALUES (?1, ?2)")?
                .execute(params![&env.id.0[..], now])?;
            tx.prepare_cached(
                "INSERT INTO carried (content_id, doc_id, envelope, added_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (content_id) DO NOTHING",
            )?
            .execute(params![
                &env.id.0[..],
                hex::encode(env.doc),
                heartbridge_proto::encode(&env),
                now
            ])?;
            let row: Option<i64> = tx
                .query_row(
                    "SELECT id FROM carried WHERE content_id = ?1",
                    [&env.id.0[..]],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(row) = row else { continue };
            let pulled = Pulled {
                seq: BUNDLE_SEQ_BASE + row as u64,
                envelope: env,
            };
            // Numbered above any central seq: a revoked author's envelope
            // counts as past its cut-off.
            match inbound::receive(&tx, &actor, &team, &trust, &pulled, true)? {
                inbound::Outcome::Changed => report.applied += 1,
                inbound::Outcome::Unchanged => report.already_here += 1,
                inbound::Outcome::Locked => report.locked += 1,
                inbound::Outcome::Waiting | inbound::Outcome::PartKept | inbound::Outcome::Held => {
                    report.waiting += 1
                }
                inbound::Outcome::Refused => {
                    // This device refuses it (the relay would too): it is
                    // not carried.
                    report.refused += 1;
                    tx.execute("DELETE FROM carried WHERE id = ?1", [row])?;
                    continue;
                }
            }
            report.queued += 1;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Other members' envelopes this device carries, waiting for its next
    /// push.
    pub fn carried_len(&self) -> Result<usize> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM carried", [], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// Carried envelopes the central relay refused whose sealed bytes this
    /// device keeps (`carried_refused`; never pushed again).
    pub fn carried_refused_kept(&self) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM carried_refused WHERE envelope IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_proto::{DeviceSecret, DocKindTag, EnvelopeKind, TeamId, TeamKey};

    fn sample(n: usize) -> (Vec<u8>, DeviceSecret, TeamId) {
        let (key, team, secret) = (
            TeamKey::generate(),
            TeamId::random(),
            DeviceSecret::generate(),
        );
        let envs = (0..n)
            .map(|i| {
                let mut e = Envelope::seal(
                    &key,
                    &team,
                    [i as u8; 16],
                    EnvelopeKind::Change,
                    DocKindTag::Case,
                    format!("change {i}").as_bytes(),
                )
                .unwrap();
                e.sign(&team, [1; 16], &secret);
                e
            })
            .collect();
        (write(team.0, [1; 16], 5, envs, &secret), secret, team)
    }

    #[test]
    fn a_bundle_reads_back_and_verifies_only_under_its_key() {
        let (bytes, secret, team) = sample(3);
        let p = parse(&bytes).unwrap();
        assert_eq!((p.team, p.device, p.created_at), (team.0, [1; 16], 5));
        assert_eq!(p.envelopes.len(), 3);
        assert!(p.verify(&bytes, &secret.public().sign));
        assert!(!p.verify(&bytes, &DeviceSecret::generate().public().sign));
    }

    /// Review L5: an honest export carries no snapshot, so an envelope
    /// with `covers > 0` in a bundle is one frozen for some relay's seqs
    /// being smuggled to another: the whole bundle is refused.
    #[test]
    fn a_bundle_carrying_a_compacting_snapshot_is_refused_whole() {
        let key = TeamKey::generate();
        let team = TeamId::random();
        let secret = DeviceSecret::generate();
        let mut e = Envelope::seal(
            &key,
            &team,
            [7; 16],
            EnvelopeKind::Snapshot,
            DocKindTag::Case,
            b"snapshot",
        )
        .unwrap();
        e.covers = 40;
        e.sign(&team, [1; 16], &secret);
        let bytes = write(team.0, [1; 16], 5, vec![e], &secret);
        assert_eq!(parse(&bytes).err(), Some(BundleError::Damaged));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let (bytes, secret, _) = sample(2);
        let pk = secret.public().sign;
        for cut in 0..bytes.len() {
            let r = parse(&bytes[..cut]);
            assert!(r.is_err(), "a bundle cut at {cut} reads");
            if cut >= PREFIX {
                assert!(
                    matches!(r, Err(BundleError::Truncated { .. })),
                    "cut at {cut}: {r:?}"
                );
            }
        }
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                if let Ok(p) = parse(&b) {
                    assert!(!p.verify(&b, &pk), "byte {i} flipped still verifies");
                }
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(parse(&longer), Err(BundleError::Damaged));
        assert_eq!(parse(b"PK\x03\x04"), Err(BundleError::NotABundle));
        assert_eq!(
            parse(b"HBB2\0\0\0\0"),
            Err(BundleError::NewerFormat("HBB2".into()))
        );
    }
}
