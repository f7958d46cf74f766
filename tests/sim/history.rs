//! What happens in one simulated run: the operations, and the proptest
//! strategies that generate them.
//!
//! Indices (`dev`, `case`, `contact`) are taken modulo what exists when the
//! operation runs, so every generated history is valid and shrinks well: an
//! operation on a case a device does not hold yet is skipped.

use heartbridge_core::{Risk, Status};
use proptest::prelude::*;

/// One simulated run: the network's seed and what the volunteers do.
#[derive(Debug, Clone)]
pub struct History {
    /// Devices enrolled before the first operation (2–5; `Join` adds more
    /// up to [`MAX_DEVICES`]).
    pub devices: usize,
    /// Drives every choice the network makes: order, delay, loss, crashes.
    pub net_seed: u64,
    /// How hostile the network is, 0 (perfect) to 3.
    pub faults: u8,
    /// Which of the first `devices` join as volunteers (bit `i` for
    /// device `i`; bit 0, the lead, is ignored): a volunteer reads only
    /// the cases it carries. The others join as supervisors and, with the
    /// lead (`lead_reads_cases` is on from the start), read every case.
    pub volunteers: u8,
    pub ops: Vec<Op>,
}

/// Most devices in one run.
pub const MAX_DEVICES: usize = 5;

/// Something a volunteer, a device or the network does.
#[derive(Debug, Clone)]
pub enum Op {
    /// A device opens a new case (offline).
    NewCase {
        dev: u8,
        risk: Risk,
    },
    /// A device sets a case's risk.
    SetRisk {
        dev: u8,
        case: u8,
        risk: Risk,
    },
    /// A device logs a contact on a case.
    AddContact {
        dev: u8,
        case: u8,
        note: &'static str,
    },
    /// A device logs a contact with a long note of `kib` KiB of text that
    /// does not compress, so that a document outgrows a page and the
    /// relay's body limit (see `world::RELAY_MAX_BODY`).
    LongNote {
        dev: u8,
        case: u8,
        kib: u16,
        seed: u64,
    },
    /// A device rewrites one contact's note (a character diff).
    EditNote {
        dev: u8,
        case: u8,
        contact: u8,
        edit: TextEdit,
    },
    SetStatus {
        dev: u8,
        case: u8,
        status: Status,
    },
    Tag {
        dev: u8,
        case: u8,
        tag: &'static str,
        remove: bool,
    },
    /// A device imports revision `revision` of handbook `book` (a new
    /// handbook if the device has none with that slug, else an update).
    ImportHandbook {
        dev: u8,
        book: u8,
        revision: u8,
    },
    /// A new device enrolls (as a volunteer, or else as a supervisor) and
    /// will pull from cursor 0 at its first sync.
    Join {
        volunteer: bool,
    },
    /// Device `dev` hands case `case` to another device (`to` modulo the
    /// devices other than the lead) with `Store::assign_case`. A
    /// supervisor or the lead may; a volunteer is refused (`Forbidden`,
    /// nothing written). Skipped if `dev` does not hold the case or does
    /// not know the other device yet.
    Assign {
        dev: u8,
        case: u8,
        to: u8,
    },
    /// These devices sync at the same time through the faulty network.
    Sync(Vec<(u8, SyncCfg)>),
    /// A device's process dies between two steps; its store is reopened.
    Crash {
        dev: u8,
    },
    /// The lead (device 0, who claimed the team) revokes another device
    /// not revoked yet (`dev` modulo those), over a working connection:
    /// the relay refuses it from then on, and the lead makes a new key
    /// epoch and a signed roster recording the revocation. With
    /// `hand_over` the lead syncs at once to upload that roster
    /// (`BlockingTransport::revoke`); without, the upload is left to the
    /// lead's next sync (as when the hand-over sync fails), which may go
    /// through the faulty network.
    Revoke {
        dev: u8,
        hand_over: bool,
    },
}

/// How a note is rewritten.
#[derive(Debug, Clone, Copy)]
pub enum TextEdit {
    Append(&'static str),
    Prepend(&'static str),
    Replace(&'static str),
    /// Keep the first half of the characters.
    Truncate,
}

impl TextEdit {
    pub fn apply(self, old: &str) -> String {
        let text = match self {
            TextEdit::Append(w) => format!("{old} {w}"),
            TextEdit::Prepend(w) => format!("{w} {old}"),
            TextEdit::Replace(w) => w.to_owned(),
            TextEdit::Truncate => {
                let n = old.chars().count() / 2;
                old.chars().take(n).collect()
            }
        };
        if text.trim().is_empty() {
            "…".to_owned()
        } else {
            text
        }
    }
}

/// The knobs of one device's sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncCfg {
    /// 0: the relay's default.
    pub page_bytes: u32,
    pub max_push_bytes: usize,
    pub snapshot_all: bool,
}

const WORDS: &[&str] = &[
    "谈到考前失眠",
    "情绪平稳",
    "约好周五再联系",
    "slept badly",
    "referred to school counsellor",
    "家里有矛盾",
    "ok",
];
const TAGS: &[&str] = &["school", "family", "夜间", "follow"];

fn risk() -> impl Strategy<Value = Risk> {
    prop::sample::select(Risk::ALL)
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL)
}

fn word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(WORDS)
}

fn edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        word().prop_map(TextEdit::Append),
        word().prop_map(TextEdit::Prepend),
        word().prop_map(TextEdit::Replace),
        Just(TextEdit::Truncate),
    ]
}

fn sync_cfg() -> impl Strategy<Value = SyncCfg> {
    (
        prop::sample::select(&[0u32, 1, 300, 4_000, 64 * 1024][..]),
        prop::sample::select(&[1usize, 600, 8_000, 512 * 1024][..]),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(page_bytes, max_push_bytes, snapshot_all)| SyncCfg {
            page_bytes,
            max_push_bytes,
            snapshot_all,
        })
}

fn dev() -> impl Strategy<Value = u8> {
    0..MAX_DEVICES as u8
}

/// One operation, weighted towards edits and syncs.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (dev(), risk()).prop_map(|(dev, risk)| Op::NewCase { dev, risk }),
        4 => (dev(), any::<u8>(), risk()).prop_map(|(dev, case, risk)| Op::SetRisk { dev, case, risk }),
        3 => (dev(), any::<u8>(), word()).prop_map(|(dev, case, note)| Op::AddContact { dev, case, note }),
        1 => (dev(), any::<u8>(), 8..=96u16, any::<u64>())
            .prop_map(|(dev, case, kib, seed)| Op::LongNote { dev, case, kib, seed }),
        3 => (dev(), any::<u8>(), any::<u8>(), edit())
            .prop_map(|(dev, case, contact, edit)| Op::EditNote { dev, case, contact, edit }),
        1 => (dev(), any::<u8>(), status()).prop_map(|(dev, case, status)| Op::SetStatus { dev, case, status }),
        1 => (dev(), any::<u8>(), prop::sample::select(TAGS), any::<bool>())
            .prop_map(|(dev, case, tag, remove)| Op::Tag { dev, case, tag, remove }),
        2 => (dev(), 0..3u8, 0..4u8).prop_map(|(dev, book, revision)| Op::ImportHandbook { dev, book, revision }),
        1 => any::<bool>().prop_map(|volunteer| Op::Join { volunteer }),
        3 => (dev(), any::<u8>(), any::<u8>()).prop_map(|(dev, case, to)| Op::Assign { dev, case, to }),
        6 => prop::collection::vec((dev(), sync_cfg()), 1..=MAX_DEVICES).prop_map(Op::Sync),
        1 => dev().prop_map(|dev| Op::Crash { dev }),
    ]
}

/// Most revocations in one history: they are rare, so that the rest of a
/// history stays as rich as before.
pub const MAX_REVOKES: usize = 2;

/// A whole run of at most `max_ops` operations, with up to
/// [`MAX_REVOKES`] revocations put in at random places.
pub fn history(max_ops: usize) -> impl Strategy<Value = History> {
    (
        2..=MAX_DEVICES,
        any::<u64>(),
        0..=3u8,
        any::<u8>(),
        prop::collection::vec(op(), 1..=max_ops),
        prop::collection::vec(
            (any::<prop::sample::Index>(), dev(), any::<bool>()),
            0..=MAX_REVOKES,
        ),
    )
        .prop_map(
            |(devices, net_seed, faults, volunteers, mut ops, revokes)| {
                for (at, dev, hand_over) in revokes {
                    let i = at.index(ops.len() + 1);
                    ops.insert(i, Op::Revoke { dev, hand_over });
                }
                History {
                    devices,
                    net_seed,
                    faults,
                    volunteers,
                    ops,
                }
            },
        )
}

/// Histories aimed at need to know: [`history`]'s, with three devices or
/// more of which device 1 (and maybe others) is a volunteer, one to four
/// cases opened (one by device 1) and synced by every device before the
/// rest, and two to eight more handovers (by the lead or a supervisor, half
/// of them to a volunteer) put in among the operations.
pub fn need_to_know_history(max_ops: usize) -> impl Strategy<Value = History> {
    (
        history(max_ops),
        3..=MAX_DEVICES,
        any::<u8>(),
        prop::collection::vec((dev(), risk()), 0..=3),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                dev(),
                any::<u8>(),
                any::<u8>(),
            ),
            2..=8,
        ),
    )
        .prop_map(|(mut h, devices, volunteers, makers, assigns)| {
            h.devices = devices;
            h.volunteers = volunteers | 0b10;
            // By the lead or a supervisor, to a volunteer or anyone.
            let is_volunteer = |d: usize| d > 0 && h.volunteers & (1 << d) != 0;
            let managers: Vec<u8> = (0..devices)
                .filter(|d| !is_volunteer(*d))
                .map(|d| d as u8)
                .collect();
            let volunteers: Vec<u8> = (1..devices)
                .filter(|d| is_volunteer(*d))
                .map(|d| d as u8 - 1)
                .collect();
            for (at, dev, case, to) in assigns {
                let i = at.index(h.ops.len() + 1);
                let dev = managers[usize::from(dev) % managers.len()];
                let to = if to % 2 == 0 {
                    volunteers[usize::from(to / 2) % volunteers.len()]
                } else {
                    to / 2
                };
                h.ops.insert(i, Op::Assign { dev, case, to });
            }
            let mut prefix = vec![Op::NewCase {
                dev: 1,
                risk: Risk::Low,
            }];
            prefix.extend(
                makers
                    .into_iter()
                    .map(|(dev, risk)| Op::NewCase { dev, risk }),
            );
            let all = SyncCfg {
                page_bytes: 0,
                max_push_bytes: 512 * 1024,
                snapshot_all: false,
            };
            prefix.push(Op::Sync((0..devices as u8).map(|d| (d, all)).collect()));
            prefix.append(&mut h.ops);
            h.ops = prefix;
            h
        })
}

/// Revision `revision` of sample handbook `book`: Markdown with front
/// matter, as volunteers import them.
pub fn handbook_markdown(book: u8, revision: u8) -> String {
    let mut md = format!(
        "---\ntitle: Handbook {book}\nslug: sim-handbook-{book}\nversion: {revision}\nlanguage: zh-CN\n---\n\n## 总则\n\n热线的第{book}条原则：先保证安全。\n"
    );
    for s in 0..=revision {
        md.push_str(&format!(
            "\n## Section {s}\n\nRevision {revision}: 倾听，陪伴，转介。Step {s} of {revision}.\n"
        ));
    }
    md
}

/// About `kib` KiB of Chinese text that does not compress: CJK ideographs
/// drawn by a small LCG from `seed` (3 bytes each in UTF-8).
pub fn long_text(kib: u16, seed: u64) -> String {
    let mut x = seed | 1;
    (0..usize::from(kib) * 1024 / 3)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from_u32(0x4E00 + ((x >> 33) % 0x5000) as u32).unwrap_or('字')
        })
        .collect()
}
