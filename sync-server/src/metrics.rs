//! The relay's metrics, kept and rendered by `prometheus-client` (the
//! Prometheus project's Rust client) in the OpenMetrics text format for
//! `GET /metrics`. Labels are routes, statuses, refusal kinds and team ids:
//! never a device, a name or anything a device sent. A team id is a random
//! 16-byte number the relay already holds; it says nothing about who the
//! team is (see deploy/OPERATIONS.md, "Metrics").

use std::sync::atomic::AtomicI64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::storage::{Gauges, TeamUsage};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the sync duration buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Team {
    team: String,
}

type TeamGauge = Family<Team, Gauge<i64, AtomicI64>>;

/// The gauges read from the store at each scrape.
#[derive(Default)]
struct Stored {
    devices: Gauge<i64, AtomicI64>,
    envelopes: Gauge<i64, AtomicI64>,
    superseded: Gauge<i64, AtomicI64>,
    team_envelopes: TeamGauge,
    team_envelope_bytes: TeamGauge,
    team_superseded: TeamGauge,
    team_blob_bytes: TeamGauge,
}

/// The relay's metrics.
pub(crate) struct Metrics {
    /// Held while the scrape's gauges are set and the text encoded, so two
    /// scrapes at once do not mix their teams.
    registry: Mutex<Registry>,
    requests: Family<RouteStatus, Counter>,
    /// Error answers by kind (`bad_signature`, `device_revoked`, ...).
    refusals: Family<Kind, Counter>,
    purged: Counter,
    envelopes_in: Counter,
    envelopes_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    sync_duration: Histogram,
    commits: Counter,
    committed_syncs: Counter,
    stored: Stored,
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            requests: Family::default(),
            refusals: Family::default(),
            purged: Counter::default(),
            envelopes_in: Counter::default(),
            envelopes_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            sync_duration: Histogram::new(BUCKETS),
            commits: Counter::default(),
            committed_syncs: Counter::default(),
            stored: Stored::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            let counters = [
                (
                    "heartbridge_superseded_purged",
                    "Superseded envelopes deleted once the compaction grace had passed.",
                    &m.purged,
                ),
                (
                    "heartbridge_envelopes_in",
                    "Envelopes pushed and acknowledged (duplicates included).",
                    &m.envelopes_in,
                ),
                (
                    "heartbridge_envelopes_out",
                    "Envelopes sent to devices in pulls.",
                    &m.envelopes_out,
                ),
                (
                    "heartbridge_bytes_in",
                    "Bytes of /v1/sync request bodies answered.",
                    &m.bytes_in,
                ),
                (
                    "heartbridge_bytes_out",
                    "Bytes of /v1/sync response bodies.",
                    &m.bytes_out,
                ),
                (
                    "heartbridge_commits",
                    "Write transactions committed by the group-commit writer.",
                    &m.commits,
                ),
                (
                    "heartbridge_committed_syncs",
                    "Sync requests whose writes those transactions carried.",
                    &m.committed_syncs,
                ),
            ];
            r.register(
                "heartbridge_requests",
                "HTTP requests answered, by route and status.",
                m.requests.clone(),
            );
            r.register(
                "heartbridge_refusals",
                "Error answers, by kind.",
                m.refusals.clone(),
            );
            for (name, help, counter) in counters {
                r.register(name, help, counter.clone());
            }
            r.register_with_unit(
                "heartbridge_sync_duration",
                "Time to answer a /v1/sync request.",
                Unit::Seconds,
                m.sync_duration.clone(),
            );
            let s = &m.stored;
            let totals = [
                (
                    "heartbridge_devices",
                    "Devices enrolled and not revoked.",
                    &s.devices,
                ),
                (
                    "heartbridge_envelopes_stored",
                    "Envelopes held and served to pulls.",
                    &s.envelopes,
                ),
                (
                    "heartbridge_envelopes_superseded",
                    "Envelopes a snapshot superseded, kept for the compaction grace.",
                    &s.superseded,
                ),
            ];
            for (name, help, gauge) in totals {
                r.register(name, help, gauge.clone());
            }
            // (name, help, whether the unit is bytes: `_bytes` is appended).
            let per_team = [
                (
                    "heartbridge_team_envelopes",
                    "Envelopes a team holds that are served to pulls, by team id.",
                    false,
                    &s.team_envelopes,
                ),
                (
                    "heartbridge_team_envelope",
                    "Stored size of a team's envelopes, superseded ones included, by team id.",
                    true,
                    &s.team_envelope_bytes,
                ),
                (
                    "heartbridge_team_superseded",
                    "A team's superseded envelopes awaiting the purge, by team id.",
                    false,
                    &s.team_superseded,
                ),
                (
                    "heartbridge_team_blob",
                    "Bytes of a team's sealed lesson chunks, by team id.",
                    true,
                    &s.team_blob_bytes,
                ),
            ];
            for (name, help, bytes, family) in per_team {
                if bytes {
                    r.register_with_unit(name, help, Unit::Bytes, family.clone());
                } else {
                    r.register(name, help, family.clone());
                }
            }
        }
        m
    }
}

impl Metrics {
    pub(crate) fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// One error answer of this kind.
    pub(crate) fn refusal(&self, kind: &'static str) {
        self.refusals
            .get_or_create(&Kind {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Superseded envelopes deleted past the compaction grace.
    pub(crate) fn purged(&self, n: u64) {
        self.purged.inc_by(n);
    }

    pub(crate) fn sync_finished(&self, d: Duration) {
        self.sync_duration.observe(d.as_secs_f64());
    }

    /// One answered sync: envelopes and body bytes each way.
    pub(crate) fn sync_traffic(
        &self,
        envelopes_in: usize,
        envelopes_out: usize,
        bytes_in: usize,
        bytes_out: usize,
    ) {
        self.envelopes_in.inc_by(envelopes_in as u64);
        self.envelopes_out.inc_by(envelopes_out as u64);
        self.bytes_in.inc_by(bytes_in as u64);
        self.bytes_out.inc_by(bytes_out as u64);
    }

    /// One group commit of `syncs` requests' pushes.
    pub(crate) fn commit(&self, syncs: usize) {
        self.commits.inc();
        self.committed_syncs.inc_by(syncs as u64);
    }

    /// The OpenMetrics text exposition, with the store's gauges as read for
    /// this scrape (teams no longer listed drop out).
    pub(crate) fn render(&self, gauges: Gauges, teams: &[TeamUsage]) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.stored;
        s.devices.set(gauge_value(gauges.devices));
        s.envelopes.set(gauge_value(gauges.envelopes));
        s.superseded.set(gauge_value(gauges.superseded));
        for family in [
            &s.team_envelopes,
            &s.team_envelope_bytes,
            &s.team_superseded,
            &s.team_blob_bytes,
        ] {
            family.clear();
        }
        for t in teams {
            let label = Team {
                team: t.team.to_hex(),
            };
            let set = |family: &TeamGauge, v: u64| {
                family.get_or_create(&label).set(gauge_value(v));
            };
            set(&s.team_envelopes, t.envelopes);
            set(&s.team_envelope_bytes, t.envelope_bytes);
            set(&s.team_superseded, t.superseded);
            set(&s.team_blob_bytes, t.blob_bytes);
        }
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use heartbridge_proto::TeamId;

    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.request("/v1/sync", 200);
        m.request("/v1/sync", 200);
        m.request("/v1/join", 410);
        m.sync_traffic(3, 2, 100, 50);
        m.sync_finished(Duration::from_millis(7));
        m.sync_finished(Duration::from_secs(60));
        m.refusal("bad_signature");
        m.refusal("bad_signature");
        m.refusal("device_revoked");
        m.purged(5);
        let gauges = Gauges {
            devices: 4,
            envelopes: 9,
            superseded: 3,
        };
        let team = TeamUsage {
            team: TeamId([0xab; 16]),
            envelopes: 9,
            envelope_bytes: 1234,
            superseded: 3,
            blob_bytes: 77,
        };
        let text = m.render(gauges, &[team]);
        assert!(text.contains("heartbridge_refusals_total{kind=\"bad_signature\"} 2\n"));
        assert!(text.contains("heartbridge_refusals_total{kind=\"device_revoked\"} 1\n"));
        assert!(text.contains("heartbridge_superseded_purged_total 5\n"));
        assert!(text.contains("heartbridge_envelopes_superseded 3\n"));
        assert!(text.contains("heartbridge_requests_total{route=\"/v1/sync\",status=\"200\"} 2\n"));
        assert!(text.contains("heartbridge_requests_total{route=\"/v1/join\",status=\"410\"} 1\n"));
        assert!(text.contains("heartbridge_envelopes_in_total 3\n"));
        assert!(text.contains("heartbridge_bytes_out_total 50\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"30.0\"} 1\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_count 2\n"));
        assert!(text.contains("heartbridge_devices 4\n"));
        assert!(text.contains("heartbridge_envelopes_stored 9\n"));
        let hex = "ab".repeat(16);
        assert!(text.contains(&format!("heartbridge_team_envelopes{{team=\"{hex}\"}} 9\n")));
        assert!(text.contains(&format!(
            "heartbridge_team_envelope_bytes{{team=\"{hex}\"}} 1234\n"
        )));
        assert!(text.contains(&format!(
            "heartbridge_team_superseded{{team=\"{hex}\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "heartbridge_team_blob_bytes{{team=\"{hex}\"}} 77\n"
        )));
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A team gone from the store is gone from the next scrape.
        let text = m.render(gauges, &[]);
        assert!(!text.contains(&hex), "{text}");
    }
}
