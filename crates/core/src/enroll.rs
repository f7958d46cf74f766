//! This device's membership of a team, and enrollments in flight.
//!
//! Every write here is one `IMMEDIATE` transaction.

use heartbridge_proto::identity::{join_proof, DevicePublic, DeviceSecret};
use heartbridge_proto::{Role, Secret, TeamId, TeamKey};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::store::Store;

/// This device's membership of a team. `Debug` hides the token and key.
#[derive(Clone)]
pub struct Team {
    pub relay_url: String,
    pub team_id: TeamId,
    pub device_id: String,
    pub token: Secret,
    /// The key of `epoch`, the newest key epoch this device holds: new
    /// envelopes are sealed under it.
    pub key: TeamKey,
    pub epoch: u32,
    pub role: Role,
    /// The lead's public signing key: rosters it signed are trusted.
    pub lead_sign_pk: [u8; 32],
}

impl Team {
    /// The relay's device id of this device, as bytes.
    pub fn device_bytes(&self) -> Option<[u8; 16]> {
        heartbridge_proto::identity::device_from_hex(&self.device_id)
    }
}

/// What an invite code says about the keys, for a join.
#[derive(Clone)]
pub struct JoinKeys {
    pub key: TeamKey,
    pub epoch: u32,
    pub role: Role,
    pub lead_sign_pk: [u8; 32],
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("relay_url", &self.relay_url)
            .field("team_id", &self.team_id)
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The team this device belongs to, if any.
    pub fn team(&self) -> Result<Option<Team>> {
        let row = self
            .conn()
            .query_row(
                "SELECT t.relay_url, t.team_id, t.device_id, t.device_token,
                        coalesce(k.key, t.team_key), t.role, coalesce(k.epoch, 1),
                        coalesce(t.lead_sign_pk, zeroblob(32))
                 FROM team t LEFT JOIN (SELECT epoch, key FROM epoch_keys ORDER BY epoch DESC LIMIT 1) k
                 WHERE t.id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, Vec<u8>>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((relay_url, team_id, device_id, token, key, role, epoch, lead)) = row else {
            return Ok(None);
        };
        let bad = || Error::DatabaseCorrupt {
            path: self.path().to_owned(),
            detail: "team record unreadable".into(),
        };
        let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
        Ok(Some(Team {
            relay_url,
            team_id: TeamId::from_hex(&team_id).ok_or_else(bad)?,
            device_id,
            token: Secret::from_string(token),
            key: TeamKey::from_bytes(key),
            epoch: u32::try_from(epoch).map_err(|_| bad())?,
            role: role.parse().map_err(|_| bad())?,
            lead_sign_pk: lead.try_into().map_err(|_| bad())?,
        }))
    }

    /// Records this device's membership (after claim or join), in one
    /// `IMMEDIATE` transaction.
    pub fn set_team(&mut self, team: &Team) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_team(&tx, team)?;
        tx.commit()?;
        Ok(())
    }

    /// Starts an enrollment, or resumes the one in flight: stores what the
    /// request needs (relay, team, endpoint path, token, team key) with a
    /// fresh random enrollment id, before anything is sent.
    ///
    /// `join` is what the invite code says (team key of its epoch, role,
    /// the lead's key) for a join, or `None` for a claim: the lead's device
    /// then generates the team key here and is itself the lead. The
    /// device's own keys are made here too, the first time.
    ///
    /// If an enrollment for the same team, path and token (and, for a join,
    /// the same key) is pending because its answer was lost, that one is
    /// returned instead, with its enrollment id and team key, so a retry is
    /// the very same request and the relay hands back the same device; only
    /// its relay URL is updated (a retry may correct a mistyped address).
    /// Any other pending enrollment is replaced. One `IMMEDIATE`
    /// transaction.
    pub fn begin_enrollment(
        &mut self,
        relay_url: &str,
        team_id: &TeamId,
        path: &str,
        token: &Secret,
        join: Option<&JoinKeys>,
    ) -> Result<PendingEnrollment> {
        let key = join.map(|j| &j.key);
        let path_on_disk = self.path().to_owned();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if team_exists(&tx)? {
            return Err(Error::AlreadyEnrolled);
        }
        let same: Option<Vec<u8>> = tx
            .query_row(
                "SELECT team_key FROM pending_enrollment
                 WHERE id = 1 AND team_id = ?1 AND path = ?2 AND token = ?3",
                params![team_id.to_hex(), path, token.expose()],
                |r| r.get(0),
            )
            .optional()?;
        let same = same.filter(|stored| key.is_none_or(|k| k.expose()[..] == stored[..]));
        match same {
            Some(_) => {
                tx.execute(
                    "UPDATE pending_enrollment SET relay_url = ?1 WHERE id = 1",
                    [relay_url],
                )?;
            }
            None => {
                let key = key.cloned().unwrap_or_else(TeamKey::generate);
                let enrollment_id = hex::encode(rand::random::<[u8; 16]>());
                let me = ensure_device_secret(&tx)?;
                let (epoch, role, lead) = match join {
                    Some(j) => (j.epoch, j.role, j.lead_sign_pk),
                    None => (1, Role::Lead, me.public().sign),
                };
                tx.execute(
                    "INSERT OR REPLACE INTO pending_enrollment
                     (id, enrollment_id, relay_url, team_id, path, token, team_key, created_at,
                      epoch, lead_sign_pk, role)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        enrollment_id,
                        relay_url,
                        team_id.to_hex(),
                        path,
                        token.expose(),
                        &key.expose()[..],
                        now_ms(),
                        epoch,
                        &lead[..],
                        role.as_str()
                    ],
                )?;
            }
        }
        let pending = read_pending(&tx, &path_on_disk)?.ok_or_else(|| Error::DatabaseCorrupt {
            path: path_on_disk.clone(),
            detail: "pending enrollment not stored".into(),
        })?;
        tx.commit()?;
        Ok(pending)
    }

    /// The enrollment sent (or about to be) whose answer is not stored yet.
    pub fn pending_enrollment(&self) -> Result<Option<PendingEnrollment>> {
        read_pending(self.conn(), self.path())
    }

    /// Stores the relay's answer to a pending enrollment: inserts the team
    /// membership and deletes the pending enrollment in one `IMMEDIATE`
    /// transaction, so a crash leaves either the retryable enrollment or
    /// the membership, never neither.
    pub fn finish_enrollment(&mut self, team: &Team) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_team(&tx, team)?;
        tx.execute("DELETE FROM pending_enrollment", [])?;
        tx.commit()?;
        Ok(())
    }
}

/// An enrollment whose answer has not been stored. `Debug` hides the token
/// and the key.
#[derive(Clone)]
pub struct PendingEnrollment {
    /// 32 hex digits, chosen once and sent with every try.
    pub enrollment_id: String,
    pub relay_url: String,
    pub team_id: TeamId,
    /// The relay endpoint: `/v1/claim` or `/v1/join`.
    pub path: String,
    pub token: Secret,
    pub key: TeamKey,
    pub created_at: i64,
    /// The invite's key epoch (1 for a claim).
    pub epoch: u32,
    /// The role the invite names (lead for a claim).
    pub role: Role,
    pub lead_sign_pk: [u8; 32],
    /// This device's public keys, sent with the enrollment.
    pub public: DevicePublic,
    /// [`join_proof`] of those keys under `key`.
    pub proof: [u8; 32],
}

impl std::fmt::Debug for PendingEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEnrollment")
            .field("enrollment_id", &self.enrollment_id)
            .field("relay_url", &self.relay_url)
            .field("team_id", &self.team_id)
            .field("path", &self.path)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// This device's keys, made and stored the first time they are needed.
pub(crate) fn ensure_device_secret(conn: &Connection) -> Result<DeviceSecret> {
    if let Some(s) = device_secret(conn)? {
        return Ok(s);
    }
    let s = DeviceSecret::generate();
    conn.execute(
        "INSERT INTO device_keys (id, secret, created_at) VALUES (1, ?1, ?2)",
        params![&s.to_bytes()[..], now_ms()],
    )?;
    Ok(s)
}

/// This device's keys, if made.
pub(crate) fn device_secret(conn: &Connection) -> Result<Option<DeviceSecret>> {
    let bytes: Option<zeroize::Zeroizing<Vec<u8>>> = conn
        .query_row("SELECT secret FROM device_keys WHERE id = 1", [], |r| {
            r.get::<_, Vec<u8>>(0).map(zeroize::Zeroizing::new)
        })
        .optional()?;
    Ok(bytes.and_then(|b| DeviceSecret::from_bytes(&b)))
}

fn team_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM team WHERE id = 1", [], |_| Ok(()))
        .optional()?
        .is_some())
}

fn insert_team(conn: &Connection, team: &Team) -> Result<()> {
    if team_exists(conn)? {
        return Err(Error::AlreadyEnrolled);
    }
    conn.execute(
        "INSERT INTO team (id, relay_url, team_id, device_id, device_token, team_key, role, joined_at, lead_sign_pk)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            team.relay_url,
            team.team_id.to_hex(),
            team.device_id,
            team.token.expose(),
            &team.key.expose()[..],
            team.role.as_str(),
            now_ms(),
            &team.lead_sign_pk[..]
        ],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO epoch_keys (epoch, key, added_at) VALUES (?1, ?2, ?3)",
        params![team.epoch, &team.key.expose()[..], now_ms()],
    )?;
    let me = ensure_device_secret(conn)?;
    // The lead's device starts the roster: itself, at epoch 1.
    if team.lead_sign_pk == me.public().sign {
        crate::team::start_roster(conn, team, &me)?;
    }
    Ok(())
}

fn read_pending(conn: &Connection, path: &std::path::Path) -> Result<Option<PendingEnrollment>> {
    let row = conn
        .query_row(
            "SELECT enrollment_id, relay_url, team_id, path, token, team_key, created_at,
                    epoch, coalesce(lead_sign_pk, zeroblob(32)), coalesce(role, 'volunteer')
             FROM pending_enrollment WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, String>(9)?,
                ))
            },
        )
        .optional()?;
    let Some((
        enrollment_id,
        relay_url,
        team_id,
        endpoint,
        token,
        key,
        created_at,
        epoch,
        lead,
        role,
    )) = row
    else {
        return Ok(None);
    };
    let bad = || Error::DatabaseCorrupt {
        path: path.to_owned(),
        detail: "pending enrollment unreadable".into(),
    };
    let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
    let key = TeamKey::from_bytes(key);
    let team_id = TeamId::from_hex(&team_id).ok_or_else(bad)?;
    let role: Role = role.parse().map_err(|_| bad())?;
    let public = device_secret(conn)?.ok_or_else(bad)?.public();
    Ok(Some(PendingEnrollment {
        enrollment_id,
        relay_url,
        proof: join_proof(&key, &team_id, &public, role),
        team_id,
        path: endpoint,
        token: Secret::from_string(token),
        key,
        created_at,
        epoch: u32::try_from(epoch).map_err(|_| bad())?,
        role,
        lead_sign_pk: lead.try_into().map_err(|_| bad())?,
        public,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::init(&dir.path().join("p"), "林", &crate::testing::protection()).expect("init");
        (dir, s)
    }

    fn team_of(p: &PendingEnrollment, device: &str) -> Team {
        Team {
            relay_url: p.relay_url.clone(),
            team_id: p.team_id,
            device_id: device.into(),
            token: Secret::from_string("device-token".into()),
            key: p.key.clone(),
            epoch: p.epoch,
            role: Role::Volunteer,
            lead_sign_pk: [3; 32],
        }
    }

    fn joining(key: &TeamKey) -> JoinKeys {
        JoinKeys {
            key: key.clone(),
            epoch: 1,
            role: Role::Volunteer,
            lead_sign_pk: [3; 32],
        }
    }

    #[test]
    fn a_retried_enrollment_is_the_same_request() {
        let (_d, mut s) = store();
        let team = TeamId::random();
        let token = Secret::from_string("invite-token".into());
        let first = s
            .begin_enrollment("http://a", &team, "/v1/claim", &token, None)
            .expect("begin");
        assert_eq!(first.enrollment_id.len(), 32);
        // A claim again (same team, path and token): same id and the key
        // generated the first time, new relay URL.
        let again = s
            .begin_enrollment("http://b", &team, "/v1/claim", &token, None)
            .expect("begin again");
        assert_eq!(again.enrollment_id, first.enrollment_id);
        assert_eq!(again.key, first.key);
        assert_eq!(again.relay_url, "http://b");
        let stored = s.pending_enrollment().expect("read").expect("pending");
        assert_eq!(stored.enrollment_id, first.enrollment_id);
        // Another token: a new enrollment replaces it.
        let other = s
            .begin_enrollment(
                "http://b",
                &team,
                "/v1/claim",
                &Secret::from_string("another".into()),
                None,
            )
            .expect("begin other");
        assert_ne!(other.enrollment_id, first.enrollment_id);
        assert_ne!(other.key, first.key);
        // A join retried with the same key resumes; with another key (the
        // relay refused a mistyped one) it is a new enrollment.
        let key = TeamKey::generate();
        let join = s
            .begin_enrollment("http://b", &team, "/v1/join", &token, Some(&joining(&key)))
            .expect("join");
        assert_eq!(join.key, key);
        let same = s
            .begin_enrollment("http://b", &team, "/v1/join", &token, Some(&joining(&key)))
            .expect("join again");
        assert_eq!(same.enrollment_id, join.enrollment_id);
        let right = TeamKey::generate();
        let fixed = s
            .begin_enrollment(
                "http://b",
                &team,
                "/v1/join",
                &token,
                Some(&joining(&right)),
            )
            .expect("join with the right key");
        assert_ne!(fixed.enrollment_id, join.enrollment_id);
        assert_eq!(fixed.key, right);
    }

    #[test]
    fn finishing_stores_the_team_and_clears_the_pending_enrollment_at_once() {
        let (_d, mut s) = store();
        let p = s
            .begin_enrollment(
                "http://a",
                &TeamId::random(),
                "/v1/claim",
                &Secret::from_string("lead".into()),
                None,
            )
            .expect("begin");
        s.finish_enrollment(&team_of(&p, "d1")).expect("finish");
        assert!(s.pending_enrollment().expect("read").is_none());
        let t = s.team().expect("read").expect("team");
        assert_eq!((t.device_id.as_str(), t.key.clone()), ("d1", p.key.clone()));
        // Enrolled: no new enrollment starts, and a second answer changes
        // nothing.
        assert!(matches!(
            s.begin_enrollment(
                "http://a",
                &p.team_id,
                "/v1/join",
                &p.token,
                Some(&joining(&p.key))
            ),
            Err(Error::AlreadyEnrolled)
        ));
        assert!(matches!(
            s.finish_enrollment(&team_of(&p, "d2")),
            Err(Error::AlreadyEnrolled)
        ));
        assert_eq!(s.team().expect("read").expect("team").device_id, "d1");
    }

    #[test]
    fn a_refused_finish_keeps_the_pending_enrollment() {
        let (_d, mut s) = store();
        let p = s
            .begin_enrollment(
                "http://a",
                &TeamId::random(),
                "/v1/join",
                &Secret::from_string("inv".into()),
                Some(&joining(&TeamKey::generate())),
            )
            .expect("begin");
        // Another process enrolled this profile meanwhile.
        s.set_team(&team_of(&p, "other")).expect("set team");
        assert!(matches!(
            s.finish_enrollment(&team_of(&p, "d1")),
            Err(Error::AlreadyEnrolled)
        ));
        // The transaction rolled back: the pending row is still there.
        assert_eq!(
            s.pending_enrollment()
                .expect("read")
                .expect("pending")
                .enrollment_id,
            p.enrollment_id
        );
        assert!(!format!("{p:?}").contains("inv"), "token in Debug");
    }
}
