//! What the shift receipt counts: the local changes written during the
//! shift, and how many of them a relay has acknowledged.
//!
//! The outbox numbers its rows in order and never reuses a number
//! (`AUTOINCREMENT`), and a row leaves it only when a relay acknowledged it.
//! So the ledger keeps the outbox numbers of the rows each write of the
//! shift added (read right after the write, under the app's store lock),
//! and a change of the shift is delivered exactly when its row is no longer
//! in the outbox — whichever sync delivered it (the background one, "Sync
//! now", or the one at the shift's end). It lives in the profile's local
//! settings, so a receipt survives a restart; settings are never synced.

use heartbridge_core::{format_ms, now_ms, Result, Shift, Store};
use serde::{Deserialize, Serialize};

const KEY: &str = "app.shift_ledger";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    /// The shift's `started_at`, which identifies it.
    started_at: String,
    ended_at: Option<String>,
    /// Outbox numbers of the rows written during the shift.
    seqs: Vec<i64>,
    /// When the last of them was seen delivered.
    delivered_at: Option<String>,
}

/// The latest shift's changes, as the shift card shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Local changes written during the shift.
    pub changes: usize,
    /// How many of them the central relay has (they left the outbox).
    pub delivered: usize,
    /// How many of the rest a venue relay holds (level 1 of the two-level
    /// receipt): "在会场中继 N 条 · 已到中心 M 条".
    pub at_venue: usize,
    /// When all of them were delivered (`None` while some wait).
    pub delivered_at: Option<String>,
}

fn load(store: &Store) -> Result<Option<Ledger>> {
    // A ledger that does not parse (written by another version) is
    // treated as absent: it only ever feeds a receipt.
    Ok(store
        .setting(KEY)?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

fn save(store: &mut Store, ledger: &Ledger) -> Result<()> {
    let text = serde_json::to_string(ledger).unwrap_or_default();
    store.set_setting(KEY, &text)
}

/// The ledger of the open shift, started afresh if it is not that shift's.
fn for_shift(store: &Store, shift: &Shift) -> Result<Ledger> {
    Ok(match load(store)? {
        Some(l) if l.started_at == shift.started_at => l,
        _ => Ledger {
            started_at: shift.started_at.clone(),
            ..Ledger::default()
        },
    })
}

/// A shift started (or was already open): its ledger begins empty.
pub fn started(store: &mut Store, shift: &Shift) -> Result<()> {
    let ledger = for_shift(store, shift)?;
    if load(store)?.as_ref() != Some(&ledger) {
        save(store, &ledger)?;
    }
    Ok(())
}

/// The open shift ended now.
pub fn ended(store: &mut Store, shift: &Shift) -> Result<()> {
    let mut ledger = for_shift(store, shift)?;
    ledger.ended_at = Some(format_ms(now_ms()));
    save(store, &ledger)
}

/// Runs a local write and, if a shift is open, records the outbox rows it
/// added. `store` is held by the caller for the whole call, so the rows
/// that appear are this write's.
pub fn write<T>(store: &mut Store, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
    let before = store.outbox_len()?;
    let out = f(store)?;
    let after = store.outbox_len()?;
    if after > before {
        if let Some(shift) = store.current_shift()? {
            let mut ledger = for_shift(store, &shift)?;
            let outbox = store.outbox()?;
            let added: Vec<i64> = outbox[outbox.len().saturating_sub(after - before)..]
                .iter()
                .map(|row| row.seq)
                .filter(|seq| !ledger.seqs.contains(seq))
                .collect();
            ledger.seqs.extend(added);
            ledger.delivered_at = None;
            save(store, &ledger)?;
        }
    }
    Ok(out)
}

fn delivered_count(store: &Store, ledger: &Ledger) -> Result<usize> {
    if ledger.seqs.is_empty() || store.outbox_len()? == 0 {
        return Ok(ledger.seqs.len());
    }
    let waiting: std::collections::HashSet<i64> =
        store.outbox()?.into_iter().map(|r| r.seq).collect();
    Ok(ledger.seqs.iter().filter(|s| !waiting.contains(s)).count())
}

/// The latest shift's delivery, if a shift was ever started.
pub fn delivery(store: &Store) -> Result<Option<Delivery>> {
    let Some(ledger) = load(store)? else {
        return Ok(None);
    };
    let delivered = delivered_count(store, &ledger)?;
    let at_venue = if delivered == ledger.seqs.len() {
        0
    } else {
        let held = store.outbox_at_venue()?;
        ledger.seqs.iter().filter(|s| held.contains(*s)).count()
    };
    Ok(Some(Delivery {
        changes: ledger.seqs.len(),
        delivered,
        at_venue,
        delivered_at: if delivered == ledger.seqs.len() {
            ledger.delivered_at.clone()
        } else {
            None
        },
        started_at: ledger.started_at,
        ended_at: ledger.ended_at,
    }))
}

/// After a sync: notes when the shift's last change was delivered.
pub fn synced(store: &mut Store) -> Result<()> {
    let Some(mut ledger) = load(store)? else {
        return Ok(());
    };
    if ledger.delivered_at.is_none() && delivered_count(store, &ledger)? == ledger.seqs.len() {
        ledger.delivered_at = Some(format_ms(now_ms()));
        save(store, &ledger)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_core::{Channel, Group, NewCase, Risk};

    fn case(s: &mut Store) -> heartbridge_core::DocId {
        s.new_case(&NewCase {
            alias: "a".into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .unwrap()
    }

    #[test]
    fn counts_the_shifts_changes_and_sees_them_delivered_whenever_that_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(
            &dir.path().join("p"),
            "x",
            &heartbridge_core::testing::protection(),
        )
        .unwrap();
        let id = write(&mut s, |s| Ok(case(s))).unwrap();
        // Before any shift: nothing to count.
        assert_eq!(delivery(&s).unwrap(), None);

        let shift = s.start_shift(None).unwrap();
        started(&mut s, &shift).unwrap();
        write(&mut s, |s| {
            s.add_contact(&id, Channel::Hotline, "during", Some(5))
        })
        .unwrap();
        write(&mut s, |s| s.add_followup(&id, "call back", None)).unwrap();
        let d = delivery(&s).unwrap().unwrap();
        assert_eq!((d.changes, d.delivered), (2, 0));
        assert_eq!(d.delivered_at, None);

        // The changes of before the shift are delivered first: still none
        // of the shift's.
        let rows = s.outbox().unwrap();
        s.ack_outbox(&[rows[0].seq]).unwrap();
        synced(&mut s).unwrap();
        let d = delivery(&s).unwrap().unwrap();
        assert_eq!((d.changes, d.delivered), (2, 0));

        // One of the shift's is delivered, then the shift ends, then the
        // other goes: the receipt counts both.
        s.ack_outbox(&[rows[1].seq]).unwrap();
        let shift = s.end_shift().unwrap().unwrap();
        ended(&mut s, &shift).unwrap();
        assert_eq!(delivery(&s).unwrap().unwrap().delivered, 1);
        // Writes after the shift ended are not the shift's.
        write(&mut s, |s| {
            s.add_contact(&id, Channel::Online, "after", None)
        })
        .unwrap();
        s.ack_outbox(&[rows[2].seq]).unwrap();
        synced(&mut s).unwrap();
        let d = delivery(&s).unwrap().unwrap();
        assert_eq!((d.changes, d.delivered), (2, 2));
        assert!(d.ended_at.is_some());
        assert!(d.delivered_at.is_some());
        assert_eq!(s.outbox_len().unwrap(), 1);

        // A new shift starts with an empty ledger.
        let shift = s.start_shift(None).unwrap();
        started(&mut s, &shift).unwrap();
        let d = delivery(&s).unwrap().unwrap();
        assert_eq!((d.changes, d.delivered, d.ended_at), (0, 0, None));
    }
}
