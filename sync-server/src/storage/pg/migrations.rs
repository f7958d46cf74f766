//! The PostgreSQL schema: an append-only list of migrations, its own
//! (PostgreSQL migration 1 is SQLite's final schema after its migration 8,
//! without the venue tables: a venue relay stays on SQLite).
//!
//! Each migration runs in one transaction with its version bump (DDL is
//! transactional in PostgreSQL), under a transaction-scoped advisory lock,
//! so two relays starting at once do not both migrate.

use tokio_postgres::Client;

use crate::error::StoreError;

/// The advisory lock key every relay takes to migrate ("HBRELAY\x01").
const MIGRATION_LOCK: i64 = 0x4842_5245_4c41_5901;

/// The migrations; entry `i` brings the schema to version `i + 1`.
pub(super) const PG_MIGRATIONS: &[&str] = &[
    // 1: the relay's tables (section d of docs/design/issue11-postgres.md).
    r#"
CREATE TABLE teams (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    name text NOT NULL,
    key_check text,
    lead_token_hash text NOT NULL UNIQUE,
    lead_token_used boolean NOT NULL DEFAULT false,
    created_at bigint NOT NULL,
    claimed_by bytea,
    member_seq bigint NOT NULL DEFAULT 0,
    lead_sign_pk bytea CHECK (octet_length(lead_sign_pk) = 32),
    roster bytea,
    roster_version bigint NOT NULL DEFAULT 0,
    key_epoch bigint NOT NULL DEFAULT 1,
    -- The team's next envelope seq, taken only under this row's lock
    -- (commit order = seq order within a team).
    next_seq bigint NOT NULL DEFAULT 1
);
CREATE TABLE devices (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    team_id bytea NOT NULL REFERENCES teams (id),
    role text NOT NULL CHECK (role IN ('volunteer', 'supervisor', 'lead', 'relay')),
    name_sealed text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    enrolled_at bigint NOT NULL,
    last_sync_at bigint,
    revoked boolean NOT NULL DEFAULT false,
    enrollment_id text CHECK (length(enrollment_id) = 32),
    sign_pk bytea NOT NULL CHECK (octet_length(sign_pk) = 32),
    kx_pk bytea NOT NULL CHECK (octet_length(kx_pk) = 32),
    key_epoch bigint NOT NULL,
    join_proof bytea NOT NULL CHECK (octet_length(join_proof) = 32),
    member_seq bigint NOT NULL,
    revoked_at bigint,
    cutoff_seq bigint
);
CREATE INDEX devices_team_enrolled ON devices (team_id, enrolled_at);
CREATE INDEX devices_team_member_seq ON devices (team_id, member_seq);
ALTER TABLE teams ADD CONSTRAINT teams_claimed_by FOREIGN KEY (claimed_by) REFERENCES devices (id);
CREATE TABLE invites (
    token_hash text PRIMARY KEY,
    team_id bytea NOT NULL REFERENCES teams (id),
    role text NOT NULL CHECK (role IN ('volunteer', 'supervisor', 'lead', 'relay')),
    created_by bytea NOT NULL REFERENCES devices (id),
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    used_at bigint,
    used_by bytea REFERENCES devices (id),
    key_check text
);
CREATE INDEX invites_created_by ON invites (created_by);
CREATE TABLE envelopes (
    team_id bytea NOT NULL REFERENCES teams (id),
    seq bigint NOT NULL,
    doc bytea NOT NULL CHECK (octet_length(doc) = 16),
    kind bigint NOT NULL CHECK (kind IN (1, 2)),
    content_id bytea NOT NULL CHECK (octet_length(content_id) = 16),
    author_device bytea NOT NULL REFERENCES devices (id),
    epoch bigint NOT NULL,
    covers bigint NOT NULL,
    nonce bytea NOT NULL CHECK (octet_length(nonce) = 24),
    ciphertext bytea NOT NULL,
    size bigint NOT NULL,
    created_at bigint NOT NULL,
    sig bytea NOT NULL CHECK (octet_length(sig) = 64),
    superseded_by bigint,
    superseded_at bigint,
    pushed_by bytea,
    PRIMARY KEY (team_id, seq),
    UNIQUE (team_id, content_id)
) WITH (toast_tuple_target = 8160);
-- Ciphertext is random bytes: never try to compress it.
ALTER TABLE envelopes ALTER COLUMN ciphertext SET STORAGE EXTERNAL;
CREATE INDEX envelopes_team_doc ON envelopes (team_id, doc, seq);
CREATE INDEX envelopes_superseded ON envelopes (superseded_at) WHERE superseded_at IS NOT NULL;
CREATE TABLE key_checks (
    team_id bytea NOT NULL REFERENCES teams (id),
    epoch bigint NOT NULL,
    key_check text NOT NULL,
    PRIMARY KEY (team_id, epoch)
);
CREATE TABLE blobs (
    team_id bytea NOT NULL REFERENCES teams (id),
    id bytea NOT NULL CHECK (octet_length(id) = 32),
    bytes bytea NOT NULL,
    size bigint NOT NULL,
    pushed_by bytea NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (team_id, id)
);
ALTER TABLE blobs ALTER COLUMN bytes SET STORAGE EXTERNAL;
-- Bytes of lesson chunks per team, for the quota without the team lock.
CREATE TABLE blob_usage (
    team_id bytea PRIMARY KEY REFERENCES teams (id),
    bytes bigint NOT NULL DEFAULT 0
);
"#,
    // 2: the log's id (issue 11 (h) 2), as SQLite's migration 9: made with
    // the database, made anew by `heartbridge-relay new-log-id` after a
    // pg_restore or a point-in-time recovery.
    r#"
CREATE TABLE relay_log (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    log_id bytea NOT NULL CHECK (octet_length(log_id) = 16),
    made_at bigint NOT NULL
);
INSERT INTO relay_log (log_id, made_at)
    VALUES (uuid_send(gen_random_uuid()), extract(epoch FROM now())::bigint);
"#,
    // 3: no foreign keys from the envelope log (issue 11's storm). Each
    // stored envelope ran two row checks under the write batch's team
    // locks (4% of the box's CPU in the storm's profile, BENCHMARKS.md).
    // They guarded nothing the relay can do: a batch stores an envelope
    // only for a team it holds locked and an author it read under that
    // lock in the same team and not revoked, and no team or device is
    // ever deleted (a revocation is a flag). The other tables keep theirs.
    r#"
ALTER TABLE envelopes
    DROP CONSTRAINT IF EXISTS envelopes_team_id_fkey,
    DROP CONSTRAINT IF EXISTS envelopes_author_device_fkey;
"#,
];

/// Brings the database to the newest schema; refuses one a newer relay
/// migrated. Returns the version found before.
pub(super) async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(StoreError::pg("begin migrations"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::pg("take the migration lock"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL)")
        .await
        .map_err(StoreError::pg("create the schema version table"))?;
    let found: Option<i64> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(StoreError::pg("read the schema version"))?
        .map(|r| r.get(0));
    let known = PG_MIGRATIONS.len() as i64;
    let before = found.unwrap_or(0);
    if before > known {
        return Err(StoreError::PgSchemaTooNew {
            found: before,
            known,
        });
    }
    if found.is_none() {
        tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
            .await
            .map_err(StoreError::pg("record the schema version"))?;
    }
    for (i, sql) in PG_MIGRATIONS.iter().enumerate().skip(before as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(StoreError::pg("apply a migration"))?;
        tx.execute("UPDATE schema_version SET version = $1", &[&(i as i64 + 1)])
            .await
            .map_err(StoreError::pg("record the schema version"))?;
    }
    tx.commit()
        .await
        .map_err(StoreError::pg("commit migrations"))?;
    Ok(before)
}
