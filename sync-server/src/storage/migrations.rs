//! Embedded, append-only schema migrations.
//!
//! Each entry runs once, inside one transaction together with the bump of
//! `PRAGMA user_version`, so a database is always at exactly one version.
//! Never edit an entry that has landed: append a new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// The migrations, in order; `user_version` N means the first N have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: teams, devices, invites, the envelope log.
    r#"
CREATE TABLE teams (
    id               BLOB PRIMARY KEY CHECK (length(id) = 16),
    name             TEXT NOT NULL,
    -- Set when the lead claims the team.
    key_check        TEXT,
    lead_token_hash  TEXT NOT NULL UNIQUE,
    lead_token_used  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE devices (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    team_id       BLOB NOT NULL REFERENCES teams(id),
    role          TEXT NOT NULL CHECK (role IN ('volunteer', 'supervisor', 'lead')),
    name_sealed   TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    enrolled_at   INTEGER NOT NULL,
    last_sync_at  INTEGER,
    revoked       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX devices_team ON devices(team_id, enrolled_at);

CREATE TABLE invites (
    token_hash  TEXT PRIMARY KEY,
    team_id     BLOB NOT NULL REFERENCES teams(id),
    role        TEXT NOT NULL CHECK (role IN ('volunteer', 'supervisor', 'lead')),
    created_by  BLOB NOT NULL REFERENCES devices(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    used_by     BLOB REFERENCES devices(id)
) WITHOUT ROWID;

-- The log of sealed envelopes; seq is the pull cursor.
CREATE TABLE envelopes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id        BLOB NOT NULL REFERENCES teams(id),
    doc            BLOB NOT NULL CHECK (length(doc) = 16),
    kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),
    content_id     BLOB NOT NULL CHECK (length(content_id) = 16),
    author_device  BLOB NOT NULL REFERENCES devices(id),
    epoch          INTEGER NOT NULL,
    covers         INTEGER NOT NULL,
    nonce          BLOB NOT NULL CHECK (length(nonce) = 24),
    ciphertext     BLOB NOT NULL,
    size           INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (team_id, content_id)
);
CREATE INDEX envelopes_team_seq ON envelopes(team_id, seq);
-- Compaction deletes a document's envelopes up to a snapshot's `covers`.
CREATE INDEX envelopes_team_doc ON envelopes(team_id, doc, seq);
"#,
    // 2: retryable enrollment. A device remembers the enrollment id it sent;
    // a team remembers which device redeemed its lead token (invites already
    // keep `used_by`). NULL for everything enrolled before.
    r#"
ALTER TABLE devices ADD COLUMN enrollment_id TEXT
    CHECK (enrollment_id IS NULL OR length(enrollment_id) = 32);
ALTER TABLE teams ADD COLUMN claimed_by BLOB REFERENCES devices(id);
"#,
    // 3: device identities, the lead-signed roster, revocation cut-offs,
    // compaction that can be undone. Devices enrolled before have no keys
    // (NULL): they can push nothing and are not listed as members; they
    // enroll again.
    r#"
ALTER TABLE devices ADD COLUMN sign_pk BLOB CHECK (sign_pk IS NULL OR length(sign_pk) = 32);
ALTER TABLE devices ADD COLUMN kx_pk BLOB CHECK (kx_pk IS NULL OR length(kx_pk) = 32);
ALTER TABLE devices ADD COLUMN key_epoch INTEGER;
ALTER TABLE devices ADD COLUMN join_proof BLOB CHECK (join_proof IS NULL OR length(join_proof) = 32);
-- The team's order of member changes (enrolled, revoked): bumped from
-- teams.member_seq whenever the entry changes.
ALTER TABLE devices ADD COLUMN member_seq INTEGER;
ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
-- The team's last envelope seq when the device was revoked.
ALTER TABLE devices ADD COLUMN cutoff_seq INTEGER;
CREATE INDEX devices_team_member_seq ON devices(team_id, member_seq);

ALTER TABLE teams ADD COLUMN member_seq INTEGER NOT NULL DEFAULT 0;
-- The claimant's signing key: the only key rosters are accepted under.
ALTER TABLE teams ADD COLUMN lead_sign_pk BLOB CHECK (lead_sign_pk IS NULL OR length(lead_sign_pk) = 32);
-- The newest signed roster the lead uploaded, opaque, with its version
-- and key epoch as the relay read them when it checked the signature.
ALTER TABLE teams ADD COLUMN roster BLOB;
ALTER TABLE teams ADD COLUMN roster_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE teams ADD COLUMN key_epoch INTEGER NOT NULL DEFAULT 1;

-- The author's Ed25519 signature; NULL for envelopes stored before.
ALTER TABLE envelopes ADD COLUMN sig BLOB CHECK (sig IS NULL OR length(sig) = 64);
-- Set when a snapshot superseded the envelope (the snapshot's seq and the
-- time): no longer pulled, deleted once the compaction grace has passed,
-- restored by undoing the compaction.
ALTER TABLE envelopes ADD COLUMN superseded_by INTEGER;
ALTER TABLE envelopes ADD COLUMN superseded_at INTEGER;
CREATE INDEX envelopes_superseded ON envelopes(superseded_at) WHERE superseded_at IS NOT NULL;
"#,
    // 4: the key check value of every key epoch, from the lead's roster, so
    // a join with an invite made after a rotation is checked too.
    r#"
CREATE TABLE key_checks (
    team_id    BLOB NOT NULL REFERENCES teams(id),
    epoch      INTEGER NOT NULL,
    key_check  TEXT NOT NULL,
    PRIMARY KEY (team_id, epoch)
) WITHOUT ROWID;
-- The key check value of the key an invite code carries, as its maker said.
ALTER TABLE invites ADD COLUMN key_check TEXT;
"#,
    // 5: venue relays. The role `relay` for devices and invites: the CHECK
    // constraints are loosened in place (SQLite's documented writable_schema
    // procedure for a change every stored row already satisfies;
    // `migrate_with` bumps the schema cookie after it). At a venue relay:
    // its own enrollment upstream (`venue`), and which of its envelopes the
    // upstream relay holds, under which upstream seq (`venue_upstream`;
    // acknowledged after a forward, or pulled from upstream).
    r#"
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, 'CHECK (role IN (''volunteer'', ''supervisor'', ''lead''))',
                          'CHECK (role IN (''volunteer'', ''supervisor'', ''lead'', ''relay''))')
 WHERE type = 'table' AND name IN ('devices', 'invites');
PRAGMA writable_schema = OFF;

CREATE TABLE venue (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    team_id          BLOB NOT NULL CHECK (length(team_id) = 16),
    upstream         TEXT NOT NULL,
    device_id        BLOB NOT NULL CHECK (length(device_id) = 16),
    -- The relay's own device secret (DeviceSecret::to_bytes: it signs its
    -- requests upstream; it never holds a team key).
    secret           BLOB NOT NULL,
    enrollment_id    TEXT NOT NULL,
    -- The upstream device token (NULL until enrolled; or given by a file).
    token            TEXT,
    key_check        TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    lead_sign_pk     BLOB NOT NULL CHECK (length(lead_sign_pk) = 32),
    invite_token     TEXT NOT NULL,
    -- Upstream pull cursor, member seq and roster version mirrored.
    upstream_cursor  INTEGER NOT NULL DEFAULT 0,
    members_since    INTEGER NOT NULL DEFAULT 0,
    roster_version   INTEGER NOT NULL DEFAULT 0,
    -- Every local envelope with seq <= this was forwarded and answered.
    forwarded_seq    INTEGER NOT NULL DEFAULT 0,
    joined_at        INTEGER NOT NULL
);
CREATE TABLE venue_upstream (
    seq           INTEGER PRIMARY KEY,
    upstream_seq  INTEGER NOT NULL,
    at            INTEGER NOT NULL
);
"#,
    // 6: a venue relay's upstream certificate pin (from its invite code).
    r#"
ALTER TABLE venue ADD COLUMN upstream_pin TEXT;
"#,
    // 7: who pushed a carried envelope (NULL: its author), so a pull skips
    // what the puller carried itself as it skips what it wrote (a venue
    // relay no longer gets every forwarded envelope back down).
    r#"
ALTER TABLE envelopes ADD COLUMN pushed_by BLOB;
"#,
    // 8: lesson chunks (issue 10 item 7): sealed blobs named by the SHA-256
    // of their bytes, per team, opaque like envelopes.
    r#"
CREATE TABLE blobs (
    team_id   BLOB NOT NULL REFERENCES teams(id),
    id        BLOB NOT NULL,
    bytes     BLOB NOT NULL,
    size      INTEGER NOT NULL,
    pushed_by BLOB NOT NULL,
    at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX blobs_team_id ON blobs(team_id, id);
"#,
    // 9: the log's id (issue 11 (h) 2): 16 random bytes made with the
    // database, made anew by `restore`, sent in every sync answer so that
    // devices notice a relay whose seqs went back to an earlier point.
    r#"
CREATE TABLE relay_log (
    only_row  INTEGER PRIMARY KEY CHECK (only_row = 1),
    log_id    BLOB NOT NULL CHECK (length(log_id) = 16),
    made_at   INTEGER NOT NULL
);
INSERT INTO relay_log (only_row, log_id, made_at) VALUES (1, randomblob(16), unixepoch());
"#,
    // 10: at a venue relay, the central relay's log id last seen: a change
    // (the central relay was restored) makes it pull and forward again.
    r#"
ALTER TABLE venue ADD COLUMN upstream_log_id BLOB;
"#,
];

/// Brings the database to the newest schema; returns the version found.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    migrate_with(conn, path, MIGRATIONS)
}

fn migrate_with(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<i64, StoreError> {
    let read_version = |conn: &Connection| -> Result<i64, StoreError> {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(StoreError::sqlite("read the schema version"))
    };
    let found = read_version(conn)?;
    let known = migrations.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("begin a migration"))?;
        // Another process may have migrated while this one waited for the lock.
        if read_version(&tx)? > i as i64 {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(StoreError::sqlite("apply a migration"))?;
        if sql.contains("PRAGMA writable_schema = ON") {
            // An edit of the schema text: make every connection (this one
            // too) parse the schema again.
            let cookie: i64 = tx
                .query_row("PRAGMA schema_version", [], |r| r.get(0))
                .map_err(StoreError::sqlite("read the schema cookie"))?;
            tx.execute_batch(&format!(
                "PRAGMA writable_schema = ON; PRAGMA schema_version = {}; PRAGMA writable_schema = OFF;",
                cookie + 1
            ))
            .map_err(StoreError::sqlite("bump the schema cookie"))?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(StoreError::sqlite("bump the schema version"))?;
        tx.commit()
            .map_err(StoreError::sqlite("commit a migration"))?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn every_migration_applies_in_order_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, &path).unwrap(), 0);
        assert_eq!(version(&conn), MIGRATIONS.len() as i64);
        assert_eq!(migrate(&mut conn, &path).unwrap(), MIGRATIONS.len() as i64);
        for table in ["teams", "devices", "invites", "envelopes"] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "table {table}");
        }
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('envelopes_team_seq', 'envelopes_team_doc')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
        for (table, column) in [("devices", "enrollment_id"), ("teams", "claimed_by")] {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                    [column],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}.{column}");
        }
    }

    #[test]
    fn a_version_1_database_keeps_its_devices_through_migration_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_with(&mut conn, &path, &MIGRATIONS[..1]).unwrap();
        conn.execute_batch(
            "INSERT INTO teams (id, name, lead_token_hash, lead_token_used, created_at) VALUES (zeroblob(16), 't', 'h', 1, 1);
             INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at) VALUES (zeroblob(16), zeroblob(16), 'lead', 'n', 'th', 1);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, &path).unwrap(), 1);
        let (eid, claimed_by): (Option<String>, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT d.enrollment_id, t.claimed_by FROM devices d JOIN teams t ON t.id = d.team_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((eid, claimed_by), (None, None));
    }

    #[test]
    fn a_version_2_database_keeps_devices_and_envelopes_through_migration_3() {
        use crate::storage::{PullQuery, SqliteStorage, Storage};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate_with(&mut conn, &path, &MIGRATIONS[..2]).unwrap();
            conn.execute_batch(
                "INSERT INTO teams (id, name, lead_token_hash, lead_token_used, created_at) VALUES (zeroblob(16), 't', 'h', 1, 1);
                 INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at) VALUES (zeroblob(16), zeroblob(16), 'lead', 'n', 'th', 1);
                 INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at) VALUES (x'01010101010101010101010101010101', zeroblob(16), 'volunteer', 'n', 'th2', 1);
                 INSERT INTO envelopes (team_id, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at)
                   VALUES (zeroblob(16), zeroblob(16), 1, zeroblob(16), zeroblob(16), 1, 0, zeroblob(24), x'00', 1, 1);",
            )
            .unwrap();
        }
        let s = SqliteStorage::open(&path).unwrap();
        // Devices keep their tokens but have no key: they push nothing and
        // are no member anyone can check.
        let lead = s.device_by_token("th").unwrap().unwrap();
        assert_eq!(lead.sign_pk, None);
        let team = lead.team;
        let state = s.team_state(team).unwrap().unwrap();
        assert_eq!(
            (state.lead_sign_pk, state.roster_version, state.epoch),
            (None, 0, 1)
        );
        let page = s
            .pull(&PullQuery {
                team,
                device: crate::storage::DeviceId([1; 16]),
                cursor: 0,
                page_bytes: 1 << 20,
                members_since: 0,
                roster_version: 0,
            })
            .unwrap();
        assert!(page.members.is_empty());
        assert_eq!(page.roster, None);
        // The envelope is still served, with no signature.
        assert_eq!(page.pull.len(), 1);
        assert_eq!(page.pull[0].envelope.sig, [0; 64]);
        assert_eq!(s.gauges().unwrap().superseded, 0);
        // Revoking a device stored before works and gives its cut-off.
        assert_eq!(
            s.revoke(None, crate::storage::DeviceId([1; 16]), 5)
                .unwrap(),
            1
        );
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        let broken = [
            MIGRATIONS[0],
            "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;",
        ];
        assert!(migrate_with(&mut conn, &path, &broken).is_err());
        assert_eq!(version(&conn), 1);
        let half: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            half, 0,
            "the failed migration's first statement was rolled back"
        );
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn, &path),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn migration_5_lets_devices_and_invites_have_the_relay_role() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        migrate_with(&mut conn, &path, &MIGRATIONS[..4]).unwrap();
        conn.execute_batch(
            "INSERT INTO teams (id, name, lead_token_hash, created_at) VALUES (x'00000000000000000000000000000001', 't', 'h', 1);
             INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at)
                 VALUES (x'00000000000000000000000000000002', x'00000000000000000000000000000001', 'lead', '', 'a', 1);",
        )
        .unwrap();
        let relay = "INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at)
             VALUES (x'00000000000000000000000000000003', x'00000000000000000000000000000001', 'relay', '', 'b', 1)";
        assert!(conn.execute_batch(relay).is_err());
        migrate(&mut conn, &path).unwrap();
        conn.execute_batch(relay).unwrap();
        assert!(conn
            .execute_batch("INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at)
                 VALUES (x'00000000000000000000000000000004', x'00000000000000000000000000000001', 'boss', '', 'c', 1)")
            .is_err());
        conn.execute_batch(
            "INSERT INTO invites (token_hash, team_id, role, created_by, created_at, expires_at)
                 VALUES ('i', x'00000000000000000000000000000001', 'relay', x'00000000000000000000000000000002', 1, 2)",
        )
        .unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let fk: Vec<String> = conn
            .prepare("PRAGMA foreign_key_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(fk.is_empty());
    }
}
