//! Embedded, append-only schema migrations.
//!
//! Each entry runs once, inside one transaction together with the bump of
//! `PRAGMA user_version`, so a database is always at exactly one version.
//! Never edit an entry that has landed: append a new one.

use rusqlite::Connection;

use crate::error::Result;

/// The migrations, in order; `user_version` N means the first N have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: documents, outbox, projections, search.
    r#"
CREATE TABLE profile (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    name        TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- One row per document: its latest compacted snapshot.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    snapshot    BLOB NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Incremental changes appended after the snapshot, folded in by compaction.
CREATE TABLE document_changes (
    doc_id      TEXT NOT NULL REFERENCES documents(id),
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    bytes       BLOB NOT NULL
);
CREATE INDEX document_changes_doc ON document_changes(doc_id, seq);

-- Local changes that no relay has acknowledged yet.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Projections: derived from the documents, rebuilt from them at will.
CREATE TABLE cases (
    id              TEXT PRIMARY KEY,
    alias           TEXT NOT NULL,
    grp             TEXT NOT NULL,
    risk            TEXT NOT NULL,
    risk_rank       INTEGER NOT NULL,
    status          TEXT NOT NULL,
    contacts        INTEGER NOT NULL,
    open_followups  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX cases_risk ON cases(risk_rank DESC, updated_at DESC);

CREATE TABLE handbooks (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL,
    title       TEXT NOT NULL,
    language    TEXT NOT NULL,
    version     TEXT NOT NULL,
    sections    INTEGER NOT NULL,
    chars       INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX handbooks_slug ON handbooks(slug, id);

CREATE TABLE sections (
    rowid       INTEGER PRIMARY KEY,
    handbook_id TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    level       INTEGER NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (handbook_id, idx)
);

-- Contentless full-text index over sections; see search.rs for why every
-- CJK character is its own token.
CREATE VIRTUAL TABLE sections_fts USING fts5(
    title, body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
"#,
    // 2: team membership, sync state, refused envelopes, device-local data.
    r#"
-- The team this device belongs to. Holds the team key and the device's
-- bearer token: never logged, never shown.
CREATE TABLE team (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    relay_url     TEXT NOT NULL,
    team_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    device_token  TEXT NOT NULL,
    team_key      BLOB NOT NULL,
    role          TEXT NOT NULL,
    joined_at     INTEGER NOT NULL
);

CREATE TABLE sync_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    cursor          INTEGER NOT NULL DEFAULT 0,
    last_synced_at  INTEGER,
    last_error_kind TEXT,
    last_error      TEXT
);
INSERT INTO sync_state (id) VALUES (1);

-- Envelopes pulled from the relay that did not open or apply; kept for the
-- record, never applied.
CREATE TABLE refused (
    seq         INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    content_id  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL
);

-- Envelopes exchanged per document since its last snapshot, to decide
-- when to push a superseding snapshot.
CREATE TABLE doc_sync (
    doc_id          TEXT PRIMARY KEY,
    since_snapshot  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Device-local: not synced.
CREATE TABLE bookmarks (
    handbook_id TEXT NOT NULL,
    section     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (handbook_id, section)
) WITHOUT ROWID;

CREATE TABLE shifts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    contacts    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 3: no change lost on any link (issue 7).
    r#"
-- Pulled changes whose Automerge dependencies have not arrived yet. They
-- are loaded again with every later envelope of their document and leave
-- this table only once nothing of the document is missing.
CREATE TABLE pending_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    relay_seq   INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX pending_changes_doc ON pending_changes(doc_id);

-- Parts of a large payload pulled so far; applied once all have arrived.
CREATE TABLE inbound_parts (
    grp         BLOB NOT NULL,
    idx         INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    relay_seq   INTEGER NOT NULL,
    PRIMARY KEY (grp, idx)
) WITHOUT ROWID;
CREATE INDEX inbound_parts_doc ON inbound_parts(doc_id);
-- Groups whose parts all arrived and were applied: a part of one seen
-- again is a duplicate, not the start of a new group.
CREATE TABLE parts_done (
    grp         BLOB PRIMARY KEY,
    at          INTEGER NOT NULL
) WITHOUT ROWID;

-- What the device pushes, frozen when first planned so that a retry sends
-- the very same payload (same content ids, so the relay deduplicates).
-- A batch is one document's outbox rows (or a snapshot of it), sent as one
-- envelope or, when large, as parts.
CREATE TABLE outbox_batches (
    batch           INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    -- NULL for changes; for a snapshot the cursor it covers.
    snapshot_covers INTEGER,
    payload         BLOB NOT NULL,
    parts           INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE TABLE outbox_parts_acked (
    batch   INTEGER NOT NULL REFERENCES outbox_batches(batch) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    PRIMARY KEY (batch, idx)
) WITHOUT ROWID;
ALTER TABLE outbox ADD COLUMN batch INTEGER REFERENCES outbox_batches(batch);

-- The link's learned request size (bytes), kept across syncs: it shrinks
-- after a cut or timeout and grows back after successes.
ALTER TABLE sync_state ADD COLUMN link_bytes INTEGER;

-- An enrollment sent to a relay whose answer has not been stored yet. A
-- retry sends the same enrollment id, so the relay hands back the same
-- device instead of burning the invite or leaving an orphan device.
CREATE TABLE pending_enrollment (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    enrollment_id   TEXT NOT NULL,
    relay_url       TEXT NOT NULL,
    team_id         TEXT NOT NULL,
    path            TEXT NOT NULL,
    token           TEXT NOT NULL,
    team_key        BLOB NOT NULL,
    created_at      INTEGER NOT NULL
);
"#,
    // 4: device identities, key epochs, the lead-signed roster (issue 8).
    r#"
-- This device's Ed25519 and X25519 seeds (64 bytes). Made once, at the
-- first enrollment; inside the encrypted database only.
CREATE TABLE device_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret      BLOB NOT NULL CHECK (length(secret) = 64),
    created_at  INTEGER NOT NULL
);

-- Every key epoch this device holds; new envelopes are sealed under the
-- highest, old ones stay readable.
CREATE TABLE epoch_keys (
    epoch     INTEGER PRIMARY KEY,
    key       BLOB NOT NULL CHECK (length(key) = 32),
    added_at  INTEGER NOT NULL
);
INSERT INTO epoch_keys (epoch, key, added_at) SELECT 1, team_key, joined_at FROM team;

-- The lead's public signing key: the team's root of trust.
ALTER TABLE team ADD COLUMN lead_sign_pk BLOB;

-- The newest roster the lead signed that this device verified. On the
-- lead's device, `pushed` = 0 while the relay does not hold it yet.
CREATE TABLE roster (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL,
    signed   BLOB NOT NULL,
    pushed   INTEGER NOT NULL
);

-- Members as the relay registered them (keys and join proofs); trusted
-- only as far as the roster or a proof allows.
CREATE TABLE members (
    device    TEXT PRIMARY KEY,
    role      TEXT NOT NULL,
    sign_pk   BLOB NOT NULL,
    kx_pk     BLOB NOT NULL,
    epoch     INTEGER NOT NULL,
    proof     BLOB NOT NULL,
    revoked   INTEGER NOT NULL,
    seq       INTEGER NOT NULL
);
ALTER TABLE sync_state ADD COLUMN members_seq INTEGER NOT NULL DEFAULT 0;
-- 'revoked' once the relay answered device_revoked: sync stops.
ALTER TABLE sync_state ADD COLUMN stopped TEXT;

-- Pulled envelopes this device cannot check or open yet (their author or
-- their key epoch is not known here yet): kept whole, retried when a
-- roster, a member or a key arrives.
CREATE TABLE held_envelopes (
    seq       INTEGER PRIMARY KEY,
    doc_id    TEXT NOT NULL,
    envelope  BLOB NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL
);

-- What the invite said, for the enrollment in flight.
ALTER TABLE pending_enrollment ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1;
ALTER TABLE pending_enrollment ADD COLUMN lead_sign_pk BLOB;
ALTER TABLE pending_enrollment ADD COLUMN role TEXT;

-- The part group id of a large batch, fixed the first time it is planned:
-- a key rotation between two of its parts must not split the group.
ALTER TABLE outbox_batches ADD COLUMN grp BLOB;
"#,
    // 5: need to know (issue 9): case keys, who was granted what, payloads
    // sealed under a key this device does not hold (yet).
    r#"
-- Keys this device holds: a case's key generations (scope = the case id)
-- and the team's oversight key (scope 'oversight': an X25519 secret whose
-- public key is in the team settings; statistics facts are sealed to it).
CREATE TABLE case_keys (
    scope       TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    gen         INTEGER NOT NULL,
    key         BLOB NOT NULL,
    granted_by  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (scope, key_id)
) WITHOUT ROWID;

-- Every grant seen, this device's own and others', without the sealed
-- keys: which key of which scope a granter gave to which device.
CREATE TABLE grants (
    scope       TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    gen         INTEGER NOT NULL,
    granter     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    relay_seq   INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (scope, key_id, recipient)
) WITHOUT ROWID;

-- A whole pulled payload sealed under a key this device does not hold:
-- kept (the cursor moves past it) and opened when a grant brings the key.
CREATE TABLE locked_payloads (
    seq         INTEGER PRIMARY KEY,
    doc_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    payload     BLOB NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX locked_payloads_key ON locked_payloads(scope, key_id);
"#,
    // 6: statistics facts (issue 9; owner: facts.rs / stats.rs).
    r#"
-- De-identified events the statistics are computed from (facts.rs): the
-- fact's random id, its variant, its time (a shift: its start), the case's
-- random id (none for a shift) and the fact as JSON. Nothing here holds an
-- alias, a text, a name or a device id.
CREATE TABLE facts (
    id       TEXT PRIMARY KEY,
    t        TEXT NOT NULL,
    at       INTEGER NOT NULL,
    case_id  TEXT,
    body     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX facts_at ON facts(at);

-- Facts written on this device that the sync code has not pushed yet.
CREATE TABLE facts_outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    fact_id  TEXT NOT NULL
);
"#,
    // 7: supervision projections (issue 9; owner: supervision.rs).
    r#"
ALTER TABLE cases ADD COLUMN review_state TEXT NOT NULL DEFAULT 'unreviewed';
ALTER TABLE cases ADD COLUMN assignee_device TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN assignee_name TEXT NOT NULL DEFAULT '';
-- '' (never escalated), 'awaiting' (newest escalation without a receipt)
-- or 'acknowledged'.
ALTER TABLE cases ADD COLUMN escalation TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN escalated_at INTEGER;
ALTER TABLE cases ADD COLUMN receipt_at INTEGER;
CREATE INDEX cases_queue ON cases(review_state, created_at);
CREATE INDEX cases_escalation ON cases(escalation, escalated_at);
"#,
    // 8: the duty roster and shifts on a line (issue 9; owner: duty.rs).
    r#"
-- The line a shift is on (its id, name and kind when it started: the line
-- may be renamed or removed later).
ALTER TABLE shifts ADD COLUMN line TEXT;
ALTER TABLE shifts ADD COLUMN line_name TEXT;
ALTER TABLE shifts ADD COLUMN line_kind TEXT;
"#,
    // 9: cases received in plaintext, written before per-case keys (issue 9):
    // only a supervisor or the lead gives such a case its first key, so two
    // volunteers never make competing first keys for one case.
    r#"
CREATE TABLE legacy_cases (
    doc_id      TEXT PRIMARY KEY,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 10: key grants that cannot be proven yet (a copy of a key whose first
    // grant has not arrived here): tried again whenever a grant is accepted.
    r#"
CREATE TABLE waiting_grants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    seq         INTEGER NOT NULL,
    granter     TEXT NOT NULL,
    record      BLOB NOT NULL,
    at          INTEGER NOT NULL
);
"#,
    // 11: the key generation a case's document says it was rotated to
    // (issue 9): a device holding a newer key than its view of the case
    // manages none of it until the view catches up.
    r#"
ALTER TABLE cases ADD COLUMN key_gen INTEGER NOT NULL DEFAULT 0;
"#,
    // 12: a grant row per granter (issue 9): with one row per recipient, a
    // copy passed on by a reader hid the manager's own grant to the same
    // device, which the manager then made again at every request.
    r#"
CREATE TABLE grants_by_granter (
    scope       TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    gen         INTEGER NOT NULL,
    granter     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    relay_seq   INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (scope, key_id, recipient, granter)
) WITHOUT ROWID;
INSERT INTO grants_by_granter SELECT scope, key_id, gen, granter, recipient, relay_seq, at FROM grants;
DROP TABLE grants;
ALTER TABLE grants_by_granter RENAME TO grants;
"#,
    // 13: the relays a device knows (issue 10), each with its own envelope
    // cursor; sync_state.cursor is the active relay's (NULL: the team's).
    r#"
CREATE TABLE relays (
    url         TEXT PRIMARY KEY,
    pin         TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('central', 'venue')),
    label       TEXT,
    insecure    INTEGER NOT NULL DEFAULT 0,
    added_at    INTEGER NOT NULL,
    last_ok_at  INTEGER,
    last_rtt_ms INTEGER,
    cursor      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
ALTER TABLE sync_state ADD COLUMN active_relay TEXT;
"#,
    // 14: sneakernet bundles (issue 10). `carried`: other members'
    // envelopes this device imported from a bundle and pushes for them
    // (its row id also gives the envelope its place among pulled ones,
    // see bundle.rs); `bundle_seen`: content ids already imported (a
    // bundle imported again is a no-op); `bundle_exported`: content ids
    // written by `bundle export --since last`, not repeated next time.
    r#"
CREATE TABLE carried (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id  BLOB NOT NULL UNIQUE,
    doc_id      TEXT NOT NULL,
    envelope    BLOB NOT NULL,
    added_at    INTEGER NOT NULL
);
CREATE TABLE bundle_seen (
    content_id  BLOB PRIMARY KEY,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE bundle_exported (
    content_id  BLOB PRIMARY KEY,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 15: two-level receipts (issue 10): the parts of outbox batches a
    // venue relay acknowledged (level 1), with their content ids, which the
    // venue relay's answers later confirm as at the central relay (level
    // 2, the batch then leaves as after a central acknowledgement).
    r#"
CREATE TABLE outbox_venue_acked (
    batch   INTEGER NOT NULL REFERENCES outbox_batches(batch) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    id      BLOB NOT NULL,
    relay   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (batch, idx)
) WITHOUT ROWID;
CREATE INDEX outbox_venue_acked_id ON outbox_venue_acked(id);
"#,
    // 16: the learned link size is a relay's too (issue 10): parked in its
    // entry with its cursor while another relay is active.
    r#"
ALTER TABLE relays ADD COLUMN link_bytes INTEGER;
"#,
    // 17: held envelopes and locked payloads keyed by a local id, not by
    // the relay's seq (issue 10, review F3): a venue relay's seqs and the
    // central relay's both count from 1, so one seq names two envelopes.
    // The content id (NULL for rows kept before) makes "the same envelope"
    // one row; the id keeps the local arrival order; seq stays for the
    // checks that read it.
    r#"
CREATE TABLE held_envelopes_by_id (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id  BLOB UNIQUE,
    seq         INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    envelope    BLOB NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL
);
INSERT INTO held_envelopes_by_id (seq, doc_id, envelope, reason, at)
    SELECT seq, doc_id, envelope, reason, at FROM held_envelopes ORDER BY seq;
DROP TABLE held_envelopes;
ALTER TABLE held_envelopes_by_id RENAME TO held_envelopes;

CREATE TABLE locked_payloads_by_id (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id  BLOB UNIQUE,
    seq         INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    payload     BLOB NOT NULL,
    at          INTEGER NOT NULL
);
INSERT INTO locked_payloads_by_id (seq, doc_id, kind, scope, key_id, payload, at)
    SELECT seq, doc_id, kind, scope, key_id, payload, at FROM locked_payloads ORDER BY seq;
DROP TABLE locked_payloads;
ALTER TABLE locked_payloads_by_id RENAME TO locked_payloads;
CREATE INDEX locked_payloads_key ON locked_payloads(scope, key_id);
"#,
    // 18: carried envelopes keep level 1 too (issue 10, review F5): a venue
    // relay's acknowledgement records which venue relay holds the carried
    // envelope (not pushed there again, its id rides in `central_wait`); the
    // row leaves only once the central relay holds it. What the central
    // relay refused is kept as a record (no envelope) for the status screen.
    r#"
ALTER TABLE carried ADD COLUMN venue_relay TEXT;
ALTER TABLE carried ADD COLUMN venue_at INTEGER;
CREATE TABLE carried_refused (
    content_id  BLOB PRIMARY KEY,
    doc_id      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 19: micro-lessons (issue 10 item 7; owner: lesson.rs). `lessons`: the
    // manifests of handbooks' lessons (a projection of the handbook
    // documents); `lesson_chunks`: chunks held here, still sealed under the
    // team key (inside the encrypted profile); `lesson_uploads`: chunks
    // this device added that the team relay has not confirmed;
    // `lesson_progress`: where the volunteer stopped, times watched.
    r#"
CREATE TABLE lessons (
    handbook_id TEXT NOT NULL,
    id          TEXT NOT NULL,
    title       TEXT NOT NULL,
    mime        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    duration_ms INTEGER,
    sha256      TEXT NOT NULL,
    chunk_size  INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    chunks      TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (handbook_id, id)
) WITHOUT ROWID;
CREATE INDEX lessons_id ON lessons(id);
CREATE TABLE lesson_chunks (
    chunk_id    BLOB PRIMARY KEY,
    lesson_id   TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    sealed      BLOB NOT NULL,
    at          INTEGER NOT NULL
);
CREATE TABLE lesson_uploads (
    chunk_id    BLOB PRIMARY KEY,
    lesson_id   TEXT NOT NULL,
    idx         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE lesson_progress (
    lesson_id       TEXT PRIMARY KEY,
    position_ms     INTEGER,
    watched_count   INTEGER NOT NULL DEFAULT 0,
    last_watched_at INTEGER,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 20: which key rotations a case's document records (issue 9; owner:
    // access.rs). Every rotation writes `key_rot_<key id>` into the case
    // document in the same push as its grant; a device manages a case only
    // once the document it holds records every rotated key it holds (two
    // managers may rotate to the same generation at once, so the highest
    // generation alone does not say the view caught up). A projection of
    // the case documents. `case_seal_keys`: the key a case's next
    // payloads are sealed under, chosen at every `access::prepare` as the
    // newest key whose holders are all readers in this device's view.
    r#"
CREATE TABLE case_rotations (
    case_id     TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    gen         INTEGER NOT NULL,
    PRIMARY KEY (case_id, key_id)
) WITHOUT ROWID;
CREATE TABLE case_seal_keys (
    case_id     TEXT PRIMARY KEY,
    key_id      BLOB NOT NULL
) WITHOUT ROWID;
"#,
    // 21: a carried envelope the central relay refused keeps its sealed
    // bytes (issue 10, follow-up of review F5): no note is destroyed on the
    // relay's word; it is not pushed again.
    r#"
ALTER TABLE carried_refused ADD COLUMN envelope BLOB;
"#,
    // 22: the log id each relay last answered with (issue 11 (h) 2; owner:
    // sync/restored.rs): the active relay's beside its cursor, the others'
    // parked in their entries as their cursors are. NULL: never seen.
    r#"
ALTER TABLE sync_state ADD COLUMN log_id BLOB;
ALTER TABLE relays ADD COLUMN log_id BLOB;
"#,
];

/// Brings the database up to the newest schema. Returns the version found
/// before, or an error if the database is newer than this code.
pub(crate) fn migrate(conn: &mut Connection, path: &std::path::Path) -> Result<i64> {
    migrate_with(conn, path, MIGRATIONS)
}

fn migrate_with(conn: &mut Connection, path: &std::path::Path, migrations: &[&str]) -> Result<i64> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations.len() as i64;
    if found > known {
        return Err(crate::Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_applies_in_order_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, &path).unwrap(), 0);
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        // A second run finds everything done and changes nothing.
        assert_eq!(migrate(&mut conn, &path).unwrap(), v);
        // The schema is what the store expects.
        for table in [
            "profile",
            "documents",
            "document_changes",
            "outbox",
            "cases",
            "handbooks",
            "sections",
            "sections_fts",
            "team",
            "sync_state",
            "refused",
            "doc_sync",
            "bookmarks",
            "shifts",
            "settings",
        ] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "table {table} missing");
        }
    }

    #[test]
    fn a_failing_migration_leaves_the_database_at_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        // The second migration creates a table, then fails: neither its
        // table nor its version bump may stick.
        let list = [
            MIGRATIONS[0],
            "CREATE TABLE extra (x); CREATE TABLE profile (y);",
        ];
        assert!(migrate_with(&mut conn, &path, &list).is_err());
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'extra'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn held_and_locked_rows_kept_before_17_survive_it_in_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_with(&mut conn, &path, &MIGRATIONS[..16]).unwrap();
        for seq in [9, 3] {
            conn.execute(
                "INSERT INTO held_envelopes (seq, doc_id, envelope, reason, at) VALUES (?1, 'd', x'01', 'r', 0)",
                [seq],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO locked_payloads (seq, doc_id, kind, scope, key_id, payload, at)
                 VALUES (?1, 'd', 'case', 'd', x'00', x'02', 0)",
                [seq],
            )
            .unwrap();
        }
        migrate(&mut conn, &path).unwrap();
        for table in ["held_envelopes", "locked_payloads"] {
            let seqs: Vec<i64> = conn
                .prepare(&format!("SELECT seq FROM {table} ORDER BY id"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(seqs, [3, 9], "{table}");
        }
        // Two rows at one seq (two relays) are two rows now.
        conn.execute(
            "INSERT INTO held_envelopes (content_id, seq, doc_id, envelope, reason, at) VALUES (x'aa', 3, 'e', x'01', 'r', 0)",
            [],
        )
        .unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM held_envelopes WHERE seq = 3",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert_eq!(err.kind(), "schema_too_new");
    }
}
