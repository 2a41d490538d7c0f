//! Per-tenant rate limits (`governor`): each tenant has its own token bucket, from its route's
//! `rate_limit` or the sink's `rate_limit_per_tenant`; 0 means unlimited.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Rate limiters by tenant, created on first use.
#[derive(Debug)]
pub struct TenantLimits {
    default_per_second: u32,
    overrides: BTreeMap<String, u32>,
    limiters: Mutex<HashMap<String, Option<Arc<DefaultDirectRateLimiter>>>>,
}

impl TenantLimits {
    /// `default_per_second` for every tenant, except those in `overrides`.
    pub fn new(default_per_second: u32, overrides: BTreeMap<String, u32>) -> Self {
        Self {
            default_per_second,
            overrides,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `tenant` (empty: records without a tenant) may send one more request.
    pub async fn until_ready(&self, tenant: &str) {
        if let Some(limiter) = self.limiter(tenant) {
            limiter.until_ready().await;
        }
    }

    fn limiter(&self, tenant: &str) -> Option<Arc<DefaultDirectRateLimiter>> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        limiters
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                let rate = self
                    .overrides
                    .get(tenant)
                    .copied()
                    .unwrap_or(self.default_per_second);
                NonZeroU32::new(rate)
                    .map(|rate| Arc::new(RateLimiter::direct(Quota::per_second(rate))))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn each_tenant_has_its_own_bucket() {
        let limits = TenantLimits::new(5, [("slow".to_owned(), 1), ("free".to_owned(), 0)].into());
        // The first request of a bucket passes at once; the second of a 1/s tenant waits ~1 s.
        let started = Instant::now();
        limits.until_ready("slow").await;
        limits.until_ready("slow").await;
        assert!(started.elapsed() >= Duration::from_millis(800));
        // Meanwhile another tenant's bucket is untouched, and 0 means unlimited.
        let started = Instant::now();
        limits.until_ready("acme").await;
        for _ in 0..100 {
            limits.until_ready("free").await;
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
