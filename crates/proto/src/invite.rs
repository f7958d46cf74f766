//! Invite codes: relay URL, team id, one-time token, the current epoch's
//! team key, role, expiry and the lead's public signing key (the team's
//! root of trust), in one line of text (`HB3.` + URL-safe base64 of
//! postcard + a 4-byte checksum, so a mistyped code is caught before the
//! relay is asked). The code carries a key: pass it person to person, never
//! through the relay, and never as a command-line argument.
//!
//! `HB3.` (this version) makes the key optional: a code for a venue relay
//! (role [`Role::Relay`]) carries no team key, only the key's check value,
//! which the central relay already knows. It also carries the relay's
//! certificate fingerprint (`pin`) when the relay serves TLS. `HB2.` codes
//! still decode.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::{Secret, TeamId, TeamKey};

const PREFIX: &str = "HB3.";
const PREFIX_V2: &str = "HB2.";
const OLD_PREFIX: &str = "HB1.";

/// What a device may do in its team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Volunteer,
    Supervisor,
    Lead,
    /// A venue relay enrolled as a member: it signs its requests, carries
    /// other members' envelopes, and never holds a team key (it seals and
    /// opens nothing, uploads no roster, compacts nothing of its own).
    Relay,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Volunteer => "volunteer",
            Role::Supervisor => "supervisor",
            Role::Lead => "lead",
            Role::Relay => "relay",
        }
    }

    /// Whether a device of this role holds the team key.
    pub fn holds_team_key(self) -> bool {
        self != Role::Relay
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
            "relay" => Ok(Role::Relay),
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
    /// The key of `epoch`, the team's current epoch when the code was made;
    /// `None` in a relay-role code (a relay never holds the team key).
    pub key: Option<TeamKey>,
    /// The check value of that key ([`TeamKey::check_value`]): what the
    /// joining device presents to the relay. Read from `key` when it is
    /// there.
    pub key_check: String,
    pub epoch: u32,
    pub role: Role,
    /// Unix seconds; the relay refuses the token after it.
    pub expires_at: i64,
    /// The lead's public signing key: the joiner trusts rosters it signed.
    pub lead_sign_pk: [u8; 32],
    /// The relay's certificate fingerprint (`sha256:` + base64url) when it
    /// serves TLS with a self-signed certificate; the device pins it.
    pub pin: Option<String>,
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("relay", &self.relay)
            .field("team", &self.team)
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("expires_at", &self.expires_at)
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// `HB3.`: the key optional, its check value and the pin added.
#[derive(Serialize, Deserialize)]
struct Wire {
    relay: String,
    team: [u8; 16],
    token: String,
    key: Option<[u8; 32]>,
    key_check: String,
    epoch: u32,
    role: Role,
    expires_at: i64,
    lead_sign_pk: [u8; 32],
    pin: Option<String>,
}

/// `HB2.`: always a key.
#[derive(Serialize, Deserialize)]
struct WireV2 {
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
    #[error("role must be volunteer, supervisor, lead or relay")]
    Role,
    #[error(
        "this invite code is for a venue relay (heartbridge-relay venue join), not for a device"
    )]
    RelayCode,
    #[error("this invite code is for a device, not for a venue relay: ask the lead for a relay code (heartbridge team invite --role relay)")]
    NotRelayCode,
}

impl Invite {
    /// The one-line code.
    pub fn encode(&self) -> String {
        let wire = Wire {
            relay: self.relay.clone(),
            team: self.team.0,
            token: self.token.expose().to_owned(),
            key: self.key.as_ref().map(|k| *k.expose()),
            key_check: match &self.key {
                Some(k) => k.check_value(),
                None => self.key_check.clone(),
            },
            epoch: self.epoch,
            role: self.role,
            expires_at: self.expires_at,
            lead_sign_pk: self.lead_sign_pk,
            pin: self.pin.clone(),
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
        let (v3, body) = match code.strip_prefix(PREFIX) {
            Some(body) => (true, body),
            None => (
                false,
                code.strip_prefix(PREFIX_V2).ok_or(InviteError::Prefix)?,
            ),
        };
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
        if !v3 {
            let w: WireV2 = postcard::from_bytes(payload).map_err(|_| InviteError::Damaged)?;
            // HB2 knew no relay role.
            if w.role == Role::Relay {
                return Err(InviteError::Damaged);
            }
            let key = TeamKey::from_bytes(w.key);
            return Ok(Invite {
                relay: w.relay,
                team: TeamId(w.team),
                token: Secret::from_string(w.token),
                key_check: key.check_value(),
                key: Some(key),
                epoch: w.epoch,
                role: w.role,
                expires_at: w.expires_at,
                lead_sign_pk: w.lead_sign_pk,
                pin: None,
            });
        }
        let w: Wire = postcard::from_bytes(payload).map_err(|_| InviteError::Damaged)?;
        let key = w.key.map(TeamKey::from_bytes);
        // A code whose key and role disagree was not made by Heartbridge.
        if key.is_some() != w.role.holds_team_key() {
            return Err(InviteError::Damaged);
        }
        Ok(Invite {
            relay: w.relay,
            team: TeamId(w.team),
            token: Secret::from_string(w.token),
            key_check: key.as_ref().map_or(w.key_check, TeamKey::check_value),
            key,
            epoch: w.epoch,
            role: w.role,
            expires_at: w.expires_at,
            lead_sign_pk: w.lead_sign_pk,
            pin: w.pin,
        })
    }

    /// The team key of a device's code; refuses a relay code.
    pub fn device_key(&self) -> Result<&TeamKey, InviteError> {
        self.key.as_ref().ok_or(InviteError::RelayCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        let key = TeamKey::generate();
        Invite {
            relay: "http://127.0.0.1:7070".into(),
            team: TeamId::random(),
            token: Secret::generate(),
            key_check: key.check_value(),
            key: Some(key),
            epoch: 3,
            role: Role::Volunteer,
            expires_at: 1_800_000_000,
            lead_sign_pk: [9; 32],
            pin: None,
        }
    }

    fn encode_v2(i: &Invite) -> String {
        let wire = WireV2 {
            relay: i.relay.clone(),
            team: i.team.0,
            token: i.token.expose().to_owned(),
            key: *i.key.as_ref().unwrap().expose(),
            epoch: i.epoch,
            role: i.role,
            expires_at: i.expires_at,
            lead_sign_pk: i.lead_sign_pk,
        };
        let mut bytes = postcard::to_stdvec(&wire).unwrap();
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum[..4]);
        format!(
            "{PREFIX_V2}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    #[test]
    fn hb2_codes_still_decode() {
        let i = invite();
        let code = encode_v2(&i);
        assert!(code.starts_with("HB2."));
        assert_eq!(Invite::decode(&code).unwrap(), i);
        assert!(i.encode().starts_with("HB3."));
    }

    #[test]
    fn a_relay_code_carries_no_key_but_its_check_and_pin() {
        let key = TeamKey::generate();
        let i = Invite {
            key: None,
            key_check: key.check_value(),
            role: Role::Relay,
            pin: Some("sha256:abc".into()),
            ..invite()
        };
        let code = i.encode();
        let back = Invite::decode(&code).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.device_key().unwrap_err(), InviteError::RelayCode);
        // No byte of any key in the code: the postcard body is just shorter
        // by the key than a device code of the same team.
        let device = Invite {
            key: Some(key.clone()),
            role: Role::Volunteer,
            ..i.clone()
        };
        let len = |c: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&c[4..])
                .unwrap()
                .len()
        };
        assert_eq!(len(&device.encode()), len(&code) + 32);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&code[4..])
            .unwrap();
        assert!(!raw.windows(32).any(|w| w == key.expose()));
    }

    #[test]
    fn relay_role_spelling() {
        assert_eq!("relay".parse::<Role>().unwrap(), Role::Relay);
        assert_eq!(Role::Relay.to_string(), "relay");
        assert!(!Role::Relay.holds_team_key());
        assert!(Role::Lead.holds_team_key());
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
