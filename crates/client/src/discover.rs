//! Finding a venue relay on the local network (mDNS/DNS-SD, the `mdns-sd`
//! crate). A venue relay (`heartbridge-relay serve --advertise`) announces
//! `_heartbridge._tcp.local.` with TXT `team=<first 8 hex of SHA-256 of the
//! team id>` ([`team_tag`]) and `fp=<certificate fingerprint>`; nothing
//! else (no team name). A device browses for a few seconds and lists what
//! it heard, marking the relays of its own team; it adds one only after
//! the volunteer said yes (the CLI's `--add`, the app's dialog).
//!
//! Anyone on the network can announce anything: an announcement is a hint.
//! What protects the device is the pin: it reaches the relay only if the
//! relay presents the announced certificate, and the relay still has to
//! know the device (its token or signature) to answer.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use heartbridge_core::proto::{team_tag, CertPin, TeamId};
use serde::Serialize;

/// The DNS-SD service type of a Heartbridge relay.
pub const SERVICE_TYPE: &str = "_heartbridge._tcp.local.";

/// A relay heard on the local network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The announced instance name.
    pub instance: String,
    /// `https://ADDRESS:PORT` (plain `http://` if it announced no
    /// fingerprint).
    pub url: String,
    /// The announced certificate fingerprint, if well-formed.
    pub pin: Option<String>,
    /// The announced team tag.
    pub team_tag: Option<String>,
    /// Whether the tag is this device's team's.
    pub this_team: bool,
}

/// Why discovery could not run.
#[derive(Debug, thiserror::Error)]
#[error("could not look for relays on the local network ({0}); check that Wi-Fi is on, or add the venue relay by its address (heartbridge team relays add)")]
pub struct DiscoverError(String);

/// Browses for `wait` and returns every relay heard, this team's first.
pub fn discover(wait: Duration, team: Option<&TeamId>) -> Result<Vec<Found>, DiscoverError> {
    let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| DiscoverError(e.to_string()))?;
    let found = browse(&daemon, wait, team);
    let _ = daemon.shutdown();
    found
}

/// Browses with an existing daemon (tests run announcer and browser on one
/// host).
pub fn browse(
    daemon: &mdns_sd::ServiceDaemon,
    wait: Duration,
    team: Option<&TeamId>,
) -> Result<Vec<Found>, DiscoverError> {
    let rx = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| DiscoverError(e.to_string()))?;
    let tag = team.map(team_tag);
    let deadline = Instant::now() + wait;
    let mut out: Vec<Found> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(event) = rx.recv_timeout(left) else {
            break;
        };
        if let mdns_sd::ServiceEvent::ServiceResolved(info) = event {
            if let Some(f) = found(&info, tag.as_deref()) {
                if !out.iter().any(|o| o.url == f.url) {
                    out.push(f);
                }
            }
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    out.sort_by_key(|f| !f.this_team);
    Ok(out)
}

fn found(info: &mdns_sd::ServiceInfo, tag: Option<&str>) -> Option<Found> {
    let addrs: Vec<IpAddr> = info.get_addresses().iter().copied().collect();
    // A routable IPv4 address first: what a phone on venue Wi-Fi reaches.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4() && !a.is_loopback())
        .or_else(|| addrs.iter().find(|a| a.is_ipv4()))
        .or_else(|| addrs.first())?;
    let pin = info
        .get_property_val_str("fp")
        .and_then(CertPin::parse)
        .map(|p| p.to_string());
    let scheme = if pin.is_some() { "https" } else { "http" };
    let host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let team_tag = info.get_property_val_str("team").map(str::to_owned);
    let instance = info
        .get_fullname()
        .strip_suffix(&format!(".{SERVICE_TYPE}"))
        .unwrap_or(info.get_fullname())
        .to_owned();
    Some(Found {
        instance,
        url: format!("{scheme}://{host}:{}", info.get_port()),
        this_team: tag.is_some() && team_tag.as_deref() == tag,
        pin,
        team_tag,
    })
}
