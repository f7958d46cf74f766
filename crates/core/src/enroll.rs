//! This device's membership of a team, and enrollments in flight.
//!
//! Every write here is one `IMMEDIATE` transaction.

use heartbridge_proto::{Role, Secret, TeamId, TeamKey};
use rusqlite::{params, OptionalExtension};

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
    pub key: TeamKey,
    pub role: Role,
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
                "SELECT relay_url, team_id, device_id, device_token, team_key, role FROM team WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((relay_url, team_id, device_id, token, key, role)) = row else {
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
            role: role.parse().map_err(|_| bad())?,
        }))
    }

    /// Records this device's membership (after claim or join).
    pub fn set_team(&mut self, team: &Team) -> Result<()> {
        if self.team()?.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.conn().execute(
            "INSERT INTO team (id, relay_url, team_id, device_id, device_token, team_key, role, joined_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                team.relay_url,
                team.team_id.to_hex(),
                team.device_id,
                team.token.expose(),
                &team.key.expose()[..],
                team.role.as_str(),
                now_ms()
            ],
        )?;
        Ok(())
    }

}
