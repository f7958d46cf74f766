//! Counters and one histogram, rendered by hand in the Prometheus text
//! format for `GET /metrics`. Labels are routes and statuses only: never a
//! team, a device or anything a device sent.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::storage::Gauges;

/// Upper bounds of the sync duration buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// The relay's metrics.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Error answers by kind (`bad_signature`, `device_revoked`, ...).
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    purged: AtomicU64,
    envelopes_in: AtomicU64,
    envelopes_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    sync_duration: Histogram,
    commits: AtomicU64,
    committed_syncs: AtomicU64,
}

impl Metrics {
    pub(crate) fn request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((route.to_owned(), status)).or_insert(0) += 1;
    }

    /// One error answer of this kind.
    pub(crate) fn refusal(&self, kind: &'static str) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(kind).or_insert(0) += 1;
    }

    /// Superseded envelopes deleted past the compaction grace.
    pub(crate) fn purged(&self, n: u64) {
        self.purged.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sync_finished(&self, d: Duration) {
        self.sync_duration.observe(d);
    }

    /// One answered sync: envelopes and body bytes each way.
    pub(crate) fn sync_traffic(
        &self,
        envelopes_in: usize,
        envelopes_out: usize,
        bytes_in: usize,
        bytes_out: usize,
    ) {
        self.envelopes_in
            .fetch_add(envelopes_in as u64, Ordering::Relaxed);
        self.envelopes_out
            .fetch_add(envelopes_out as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in as u64, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(bytes_out as u64, Ordering::Relaxed);
    }

    /// One group commit of `syncs` requests' pushes.
    pub(crate) fn commit(&self, syncs: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_syncs
            .fetch_add(syncs as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP heartbridge_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE heartbridge_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((route, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "heartbridge_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP heartbridge_refusals_total Error answers, by kind.\n");
        out.push_str("# TYPE heartbridge_refusals_total counter\n");
        {
            let map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            for (kind, n) in map.iter() {
                let _ = writeln!(out, "heartbridge_refusals_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let counters = [
            (
                "heartbridge_superseded_purged_total",
                "Superseded envelopes deleted once the compaction grace had passed.",
                &self.purged,
            ),
            (
                "heartbridge_envelopes_in_total",
                "Envelopes pushed and acknowledged (duplicates included).",
                &self.envelopes_in,
            ),
            (
                "heartbridge_envelopes_out_total",
                "Envelopes sent to devices in pulls.",
                &self.envelopes_out,
            ),
            (
                "heartbridge_bytes_in_total",
                "Bytes of /v1/sync request bodies answered.",
                &self.bytes_in,
            ),
            (
                "heartbridge_bytes_out_total",
                "Bytes of /v1/sync response bodies.",
                &self.bytes_out,
            ),
            (
                "heartbridge_commits_total",
                "Write transactions committed by the group-commit writer.",
                &self.commits,
            ),
            (
                "heartbridge_committed_syncs_total",
                "Sync requests whose writes those transactions carried.",
                &self.committed_syncs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP heartbridge_sync_duration_seconds Time to answer a /v1/sync request.\n",
        );
        out.push_str("# TYPE heartbridge_sync_duration_seconds histogram\n");
        self.sync_duration
            .render(&mut out, "heartbridge_sync_duration_seconds");
        let _ = writeln!(
            out,
            "# HELP heartbridge_devices Devices enrolled and not revoked.\n# TYPE heartbridge_devices gauge\nheartbridge_devices {}",
            gauges.devices
        );
        let _ = writeln!(
            out,
            "# HELP heartbridge_envelopes_stored Envelopes held and served to pulls.\n# TYPE heartbridge_envelopes_stored gauge\nheartbridge_envelopes_stored {}",
            gauges.envelopes
        );
        let _ = writeln!(
            out,
            "# HELP heartbridge_envelopes_superseded Envelopes a snapshot superseded, kept for the compaction grace.\n# TYPE heartbridge_envelopes_superseded gauge\nheartbridge_envelopes_superseded {}",
            gauges.superseded
        );
        out
    }
}

#[cfg(test)]
mod tests {
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
        let text = m.render(Gauges {
            devices: 4,
            envelopes: 9,
            superseded: 3,
        });
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
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("heartbridge_sync_duration_seconds_count 2\n"));
        assert!(text.contains("heartbridge_devices 4\n"));
        assert!(text.contains("heartbridge_envelopes_stored 9\n"));
    }
}
