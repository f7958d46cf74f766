//! `heartbridge team relays …`: the relays this device knows (issue 10).
//! The team's own relay (from the invite code) is always listed and cannot
//! be removed; a venue relay (`--venue`) is tried first by `heartbridge
//! sync`, which falls over to the next relay when one does not answer.

use std::fmt::Write as _;

use clap::Subcommand;
use heartbridge_core::{format_ms, RelayEntry, RelayKind, Store};
use serde_json::json;

use crate::output::Out;

#[derive(Subcommand)]
pub enum RelaysCmd {
    /// The relays this device knows, in the order a sync tries them.
    List,
    /// Add a relay address this device does not know yet (an address
    /// already there is refused and left as it is).
    Add {
        /// https://HOST:PORT (http:// only on this computer, or with --insecure-http).
        url: String,
        /// The relay's certificate fingerprint (sha256:…, as
        /// `heartbridge-relay fingerprint` prints it): only that certificate
        /// is accepted.
        #[arg(long)]
        pin: Option<String>,
        /// A venue relay inside a closed-loop venue: tried first.
        #[arg(long)]
        venue: bool,
        /// Allow plain http:// to this address on the network: the device's
        /// token crosses it unencrypted. Only on a network you trust.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Replace the certificate fingerprint of a relay entry on purpose (a
    /// venue relay set up again has a new certificate); not the team's own
    /// relay, whose fingerprint comes from the invite code. The entry's
    /// cursor starts again.
    Pin {
        url: String,
        /// The new fingerprint (sha256:…); leave it out to trust the web's
        /// certificate authorities instead.
        pin: Option<String>,
    },
    /// Forget a relay address (not the team's own relay).
    Remove { url: String },
    /// Look for venue relays on the local network (mDNS) and list them,
    /// marking this team's; nothing is added unless --add is given.
    Discover {
        /// How long to listen.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Add the relays of this team that were found (as venue relays,
        /// pinned to the announced fingerprint).
        #[arg(long)]
        add: bool,
    },
}

fn human(list: &[RelayEntry]) -> String {
    let mut s = String::new();
    for e in list {
        let mut notes = vec![e.kind.as_str().to_owned()];
        if e.team_relay {
            notes.push("team relay".into());
        }
        if e.active {
            notes.push("last used".into());
        }
        if e.insecure {
            notes.push("plain http allowed".into());
        }
        let _ = writeln!(s, "{}  ({})", e.url, notes.join(", "));
        let _ = writeln!(
            s,
            "    fingerprint: {}",
            e.pin
                .as_deref()
                .unwrap_or("none (checked by the web's authorities)")
        );
        match (e.last_ok_at, e.last_rtt_ms) {
            (Some(at), Some(rtt)) => {
                let _ = writeln!(s, "    last answered {} in {rtt} ms", format_ms(at));
            }
            _ => {
                let _ = writeln!(s, "    not synced with yet");
            }
        }
    }
    s
}

pub fn relays(cmd: RelaysCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        RelaysCmd::List => {
            let list = store.relay_order()?;
            out.print(&list, || human(&list));
        }
        RelaysCmd::Add {
            url,
            pin,
            venue,
            insecure_http,
        } => {
            let kind = if venue {
                RelayKind::Venue
            } else {
                RelayKind::Central
            };
            let e = store.add_relay(&url, pin.as_deref(), kind, insecure_http)?;
            out.print(&e, || {
                let mut s = format!("Added {} ({}).", e.url, e.kind.as_str());
                if e.pin.is_none() && e.url.starts_with("https://") {
                    s.push_str(
                        " No fingerprint: its certificate must be signed by a public authority.",
                    );
                }
                s
            });
        }
        RelaysCmd::Discover { seconds, add } => {
            let team = store.team()?.map(|t| t.team_id);
            let found = heartbridge_client::discover::discover(
                std::time::Duration::from_secs(seconds.clamp(1, 60)),
                team.as_ref(),
            )?;
            let mut added = Vec::new();
            let mut skipped = Vec::new();
            if add {
                // An address already known (the team's own relay above
                // all) is never changed by what the network announces.
                // A venue relay heard at another of its addresses (the
                // same certificate) is the same venue relay: left as it is
                // too.
                let known: Vec<RelayEntry> = store.relays()?;
                for f in found.iter().filter(|f| f.this_team) {
                    let url = heartbridge_core::normalize_relay_url(&f.url)?;
                    let same = |e: &RelayEntry| {
                        e.url == url
                            || (e.kind == RelayKind::Venue
                                && f.pin.is_some()
                                && e.pin.as_deref() == f.pin.as_deref())
                    };
                    if let Some(e) = known.iter().chain(added.iter()).find(|e| same(e)) {
                        if !skipped.contains(&e.url) {
                            skipped.push(e.url.clone());
                        }
                        continue;
                    }
                    added.push(store.add_relay(
                        &f.url,
                        f.pin.as_deref(),
                        RelayKind::Venue,
                        false,
                    )?);
                }
            }
            out.print(&json!({"found": found, "added": added, "already_known": skipped}), || {
                let mut s = String::new();
                if found.is_empty() {
                    let _ = writeln!(s, "No relay answered on the local network in {seconds} s.");
                }
                for f in &found {
                    let whose = if f.this_team { "this team's venue relay" } else { "another team's relay" };
                    let _ = writeln!(s, "{}  ({whose})", f.url);
                    let _ = writeln!(s, "    fingerprint: {}", f.pin.as_deref().unwrap_or("none (plain http)"));
                }
                for u in &skipped {
                    let _ = writeln!(s, "{u} is already in the list: left as it is.");
                }
                if add {
                    let _ = writeln!(s, "Added {} relay(s) of this team.", added.len());
                } else if found.iter().any(|f| f.this_team) {
                    let _ = writeln!(s, "Check the fingerprint with your team lead, then run again with --add to use it.");
                }
                s
            });
        }
        RelaysCmd::Pin { url, pin } => {
            let e = store.replace_relay_pin(&url, pin.as_deref())?;
            out.print(&e, || {
                format!(
                    "{}: fingerprint now {}; it is synced from the start again.",
                    e.url,
                    e.pin
                        .as_deref()
                        .unwrap_or("none (checked by the web's authorities)")
                )
            });
        }
        RelaysCmd::Remove { url } => {
            store.remove_relay(&url)?;
            out.print(&json!({"removed": url.trim()}), || {
                format!("Removed {}.", url.trim())
            });
        }
    }
    Ok(())
}
