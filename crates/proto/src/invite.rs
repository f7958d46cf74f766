//! Invite codes: relay URL, team id, one-time token, the current epoch's
//! team key, role, expiry and the lead's public signing key (the team's
//! root of trust), in one line of text (`HB2.` + URL-safe base64 of
//! postcard + a 4-byte checksum, so a mistyped code is caught before the
//! relay is asked). The code carries a key: pass it person to person, never
//! through the relay, and never as a command-line argument.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::{Secret, TeamId, TeamKey};

const PREFIX: &str = "HB2.";
const OLD_PREFIX: &str = "HB1.";

/// What a device may do in its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Volunteer,
    Supervisor,
    Lead,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Volunteer => "volunteer",
            Role::Supervisor => "supervisor",
            Role::Lead => "lead",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InviteError;
    fn from_str(s: &str) -> Result<Self, InviteError> {
        match s.trim() {
            "volunteer" => Ok(Role::Volunteer),
            "supervisor" => Ok(Role::Supervisor),
            "lead" => Ok(Role::Lead),
            _ => Err(InviteError::Role),
        }
    }
}

/// An invite, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    pub relay: String,
    pub team: TeamId,
    pub token: Secret,
    /// The key of `epoch`, the team's current epoch when the code was made.
    pub key: TeamKey,
    pub epoch: u32,
    pub role: Role,
    /// Unix seconds; the relay refuses the token after it.
    pub expires_at: i64,
    /// The lead's public signing key: the joiner trusts rosters it signed.
    pub lead_sign_pk: [u8; 32],
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("relay", &self.relay)
            .field("team", &self.team)
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    relay: String,
    team: [u8; 16],
    token: String,
    key: [u8; 32],
    epoch: u32,
    role: Role,
    expires_at: i64,
    lead_sign_pk: [u8; 32],
}

/// Why an invite code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("this is not a Heartbridge invite code: it should start with {PREFIX}; copy the whole code again")]
    Prefix,
    #[error("the invite code is damaged or incomplete (a character is missing or mistyped): copy the whole code again")]
    Damaged,
    #[error("this invite code is from an older Heartbridge: ask for a new code")]
    OldFormat,
    #[error("role must be volunteer, supervisor or lead")]
    Role,
}

impl Invite {
    /// The one-line code.
    pub fn encode(&self) -> String {
        let wire = Wire {
            relay: self.relay.clone(),
            team: self.team.0,
            token: self.token.expose().to_owned(),
            key: *self.key.expose(),
            epoch: self.epoch,
            role: self.role,
            expires_at: self.expires_at,
            lead_sign_pk: self.lead_sign_pk,
        };
        let mut bytes = postcard::to_stdvec(&wire).expect("invites always serialize");
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum[..4]);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Decodes a code; surrounding whitespace and line breaks are ignored.
    pub fn decode(code: &str) -> Result<Invite, InviteError> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.starts_with(OLD_PREFIX) {
            return Err(InviteError::OldFormat);
        }
        let body = code.strip_prefix(PREFIX).ok_or(InviteError::Prefix)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InviteError::Damaged)?;
        if bytes.len() < 5 {
            return Err(InviteError::Damaged);
        }
        let (payload, sum) = bytes.split_at(bytes.len() - 4);
        if Sha256::digest(payload)[..4] != *sum {
            return Err(InviteError::Damaged);
        }
        let w: Wire = postcard::from_bytes(payload).map_err(|_| InviteError::Damaged)?;
        Ok(Invite {
            relay: w.relay,
            team: TeamId(w.team),
            token: Secret::from_string(w.token),
            key: TeamKey::from_bytes(w.key),
            epoch: w.epoch,
            role: w.role,
            expires_at: w.expires_at,
            lead_sign_pk: w.lead_sign_pk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            relay: "http://127.0.0.1:7070".into(),
            team: TeamId::random(),
            token: Secret::generate(),
            key: TeamKey::generate(),
            epoch: 3,
            role: Role::Volunteer,
            expires_at: 1_800_000_000,
            lead_sign_pk: [9; 32],
        }
    }

    #[test]
    fn codes_round_trip_as_one_line() {
        let i = invite();
        let code = i.encode();
        assert!(!code.contains(char::is_whitespace));
        assert_eq!(Invite::decode(&format!("  {code}\n")).unwrap(), i);
        assert!(!format!("{i:?}").contains(i.token.expose()));
    }

    #[test]
    fn mistyped_codes_are_caught() {
        let code = invite().encode();
        let mut chars: Vec<char> = code.chars().collect();
        let n = chars.len() / 2;
        chars[n] = if chars[n] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(Invite::decode(&typo).unwrap_err(), InviteError::Damaged);
        assert_eq!(
            Invite::decode(&code[..code.len() - 3]).unwrap_err(),
            InviteError::Damaged
        );
        assert_eq!(Invite::decode("hello").unwrap_err(), InviteError::Prefix);
    }
}
