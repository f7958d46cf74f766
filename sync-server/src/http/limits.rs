//! Rate limits (governor's GCRA, keyed): enrollments per client address
//! (tower_governor's layer on the enrollment routes) and per token, failed
//! authentications per client address and per token. Keys are addresses and
//! token hashes, never a token.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::middleware::NoOpMiddleware;
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::error::ApiError;
use crate::RateLimits;

type IpConfig = GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>;
pub(crate) type EnrollLayer = GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware, Body>;

/// The relay's limiters; `None` where the limit is off.
pub(crate) struct Limits {
    enroll_ip: Option<Arc<IpConfig>>,
    enroll_token: Option<DefaultKeyedRateLimiter<String>>,
    fail_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    fail_token: Option<DefaultKeyedRateLimiter<String>>,
}

fn quota(per_minute: u32) -> Option<Quota> {
    NonZeroU32::new(per_minute).map(Quota::per_minute)
}

fn keyed<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    quota(per_minute).map(RateLimiter::keyed)
}

/// Whole seconds until `not_until` allows the next request, at least 1.
fn retry_after(not_until: &NotUntil<QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Limits {
    pub(crate) fn new(r: RateLimits) -> Self {
        let enroll_ip = NonZeroU32::new(r.enroll_per_ip).and_then(|n| {
            GovernorConfigBuilder::default()
                .period(Duration::from_secs(60) / n.get())
                .burst_size(n.get())
                .finish()
                .map(Arc::new)
        });
        Limits {
            enroll_ip,
            enroll_token: keyed(r.enroll_per_token),
            fail_ip: keyed(r.auth_fail_per_ip),
            fail_token: keyed(r.auth_fail_per_token),
        }
    }

    /// The per-address limit on the enrollment routes, answering JSON.
    pub(crate) fn enroll_layer(&self) -> Option<EnrollLayer> {
        let config = Arc::clone(self.enroll_ip.as_ref()?);
        Some(GovernorLayer::new(config).error_handler(|e| match e {
            GovernorError::TooManyRequests { wait_time, .. } => {
                ApiError::RateLimited(wait_time.max(1)).into_response()
            }
            _ => ApiError::Fault("the client address of a request is unknown").into_response(),
        }))
    }

    /// Counts an enrollment presenting the token with this hash.
    pub(crate) fn enrollment(&self, token_hash: &str) -> Result<(), ApiError> {
        match &self.enroll_token {
            Some(l) => l
                .check_key(&token_hash.to_owned())
                .map_err(|n| ApiError::RateLimited(retry_after(&n))),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `ip` with the token of this hash
    /// (none if the request had no token); the answer to give: 401
    /// `unknown_token`, or 429 once over a limit. The address is counted
    /// first, so a client over its limit adds no token keys.
    pub(crate) fn auth_failed(&self, ip: Option<IpAddr>, token_hash: Option<&str>) -> ApiError {
        if let (Some(l), Some(ip)) = (&self.fail_ip, ip) {
            if let Err(n) = l.check_key(&ip) {
                return ApiError::RateLimited(retry_after(&n));
            }
        }
        if let (Some(l), Some(hash)) = (&self.fail_token, token_hash) {
            if let Err(n) = l.check_key(&hash.to_owned()) {
                return ApiError::RateLimited(retry_after(&n));
            }
        }
        ApiError::UnknownToken
    }

    /// Forgets the keys whose quota is full again.
    pub(crate) fn sweep(&self) {
        if let Some(c) = &self.enroll_ip {
            c.limiter().retain_recent();
            c.limiter().shrink_to_fit();
        }
        if let Some(l) = &self.enroll_token {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.fail_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.fail_token {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_over_the_address_limit_are_429_and_a_zero_limit_is_off() {
        let limits = Limits::new(RateLimits {
            auth_fail_per_ip: 3,
            auth_fail_per_token: 0,
            ..RateLimits::OFF
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(
                limits.auth_failed(Some(ip), Some("h")).kind(),
                "unknown_token"
            );
        }
        let over = limits.auth_failed(Some(ip), Some("h"));
        assert!(matches!(over, ApiError::RateLimited(s) if (1..=20).contains(&s)));
        // Another address is not affected.
        assert_eq!(
            limits
                .auth_failed(Some([10, 0, 0, 2].into()), Some("h"))
                .kind(),
            "unknown_token"
        );
        let off = Limits::new(RateLimits::OFF);
        assert!(off.enroll_layer().is_none());
        for _ in 0..100 {
            assert!(off.enrollment("h").is_ok());
            assert_eq!(off.auth_failed(Some(ip), Some("h")).kind(), "unknown_token");
        }
    }

    #[test]
    fn one_token_is_limited_apart_from_others() {
        let limits = Limits::new(RateLimits {
            enroll_per_token: 2,
            ..RateLimits::OFF
        });
        assert!(limits.enrollment("a").is_ok());
        assert!(limits.enrollment("a").is_ok());
        assert!(matches!(
            limits.enrollment("a"),
            Err(ApiError::RateLimited(_))
        ));
        assert!(limits.enrollment("b").is_ok());
        limits.sweep();
        assert!(matches!(
            limits.enrollment("a"),
            Err(ApiError::RateLimited(_))
        ));
    }
}
