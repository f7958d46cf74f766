//! `serve --advertise`: a venue relay announces itself on the local
//! network (mDNS/DNS-SD, the `mdns-sd` crate) as `_heartbridge._tcp.local.`
//! with TXT `team=<first 8 hex of SHA-256 of the team id>` and, when it
//! serves TLS, `fp=<certificate fingerprint>` — nothing else (no team
//! name, no team id). Devices browse for it and ask the volunteer before
//! they use one (see `heartbridge_client::discover`).

use heartbridge_proto::{team_tag, TeamId};

/// The DNS-SD service type of a Heartbridge relay.
pub const SERVICE_TYPE: &str = "_heartbridge._tcp.local.";

/// An announcement in progress; withdrawn when dropped.
pub struct Advertiser {
    daemon: mdns_sd::ServiceDaemon,
    fullname: String,
}

impl std::fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertiser")
            .field("fullname", &self.fullname)
            .finish()
    }
}

/// Why the relay could not announce itself.
#[derive(Debug, thiserror::Error)]
#[error("could not announce the relay on the local network ({0}); devices can still add it by its address (heartbridge team relays add)")]
pub struct AdvertiseError(String);

impl Advertiser {
    /// Announces the relay of `team` on `port` (all of this host's
    /// addresses), with its certificate fingerprint if it serves TLS.
    pub fn start(
        team: &TeamId,
        fingerprint: Option<&str>,
        port: u16,
    ) -> Result<Advertiser, AdvertiseError> {
        let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| AdvertiseError(e.to_string()))?;
        Advertiser::start_on(daemon, team, fingerprint, port)
    }

    /// [`Advertiser::start`] on an existing daemon.
    pub fn start_on(
        daemon: mdns_sd::ServiceDaemon,
        team: &TeamId,
        fingerprint: Option<&str>,
        port: u16,
    ) -> Result<Advertiser, AdvertiseError> {
        let tag = team_tag(team);
        let mut txt = vec![("team", tag.clone())];
        if let Some(fp) = fingerprint {
            txt.push(("fp", fp.to_owned()));
        }
        let instance = format!("heartbridge-{tag}-{port}");
        let info = mdns_sd::ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &format!("{instance}.local."),
            "",
            port,
            &txt[..],
        )
        .map_err(|e| AdvertiseError(e.to_string()))?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        daemon
            .register(info)
            .map_err(|e| AdvertiseError(e.to_string()))?;
        Ok(Advertiser { daemon, fullname })
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}
