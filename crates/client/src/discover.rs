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
    let mut out: Vec<(Found, u8)> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(event) = rx.recv_timeout(left) else {
            break;
        };
        if let mdns_sd::ServiceEvent::ServiceResolved(info) = event {
            // One relay announces every address of its host (IPv4, global
            // and link-local IPv6) and may be resolved several times as
            // they arrive: it is listed once, at its best address so far.
            if let Some((f, rank)) = found(&info, tag.as_deref()) {
                match out.iter_mut().find(|(o, _)| o.instance == f.instance) {
                    Some(slot) if rank < slot.1 => *slot = (f, rank),
                    Some(_) => {}
                    None => out.push((f, rank)),
                }
            }
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let mut out: Vec<Found> = out.into_iter().map(|(f, _)| f).collect();
    out.sort_by_key(|f| !f.this_team);
    Ok(out)
}

/// How good an address is to reach a relay by, lower first: a routable
/// IPv4 address (what a phone on venue Wi-Fi reaches), then loopback IPv4,
/// then a global IPv6 address, then the rest; a link-local IPv6 address
/// last, since a URL cannot carry the interface it needs. Ties go to the
/// smaller address, so every browse picks the same one.
fn address_rank(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() => 0,
        IpAddr::V4(v4) if v4.is_loopback() => 1,
        IpAddr::V4(_) => 2,
        IpAddr::V6(v6) if v6.is_unicast_link_local() => 5,
        IpAddr::V6(v6) if v6.is_loopback() => 4,
        IpAddr::V6(_) => 3,
    }
}

fn found(info: &mdns_sd::ServiceInfo, tag: Option<&str>) -> Option<(Found, u8)> {
    let addr = info
        .get_addresses()
        .iter()
        .min_by_key(|a| (address_rank(a), **a))
        .copied()?;
    let rank = address_rank(&addr);
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
    Some((
        Found {
            instance,
            url: format!("{scheme}://{host}:{}", info.get_port()),
            this_team: tag.is_some() && team_tag.as_deref() == tag,
            pin,
            team_tag,
        },
        rank,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routable_ipv4_address_is_preferred_and_link_local_ipv6_comes_last() {
        let mut addrs: Vec<IpAddr> = ["fe80::fc:ff:fe00:1", "fd00::2", "127.0.0.1", "192.0.2.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        addrs.sort_by_key(|a| (address_rank(a), *a));
        let order: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        assert_eq!(
            order,
            ["192.0.2.2", "127.0.0.1", "fd00::2", "fe80::fc:ff:fe00:1"]
        );
    }
}
