//! Usage plans as API Gateway applies them when the API key source is
//! `AUTHORIZER`: the authorizer names an API key (`usageIdentifierKey`), and
//! the key's plan throttles (token bucket: a steady rate and a burst) and
//! meters (a quota per period) every request made with it, whichever token
//! the decision was for and whether or not it came from the cache.
//!
//! A key no plan holds is refused (`403`), as API Gateway refuses an API key
//! it does not know on a method that requires one.

use std::collections::HashMap;
use std::sync::Mutex;

/// One usage plan: its limits and its API keys' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePlan {
    /// The plan's (tier's) name.
    pub name: String,
    /// Steady requests per second, per key.
    pub rate_per_sec: u32,
    /// Bucket size: requests a key may make at once.
    pub burst: u32,
    /// At most this many requests per key per `quota_period_secs`.
    pub quota: Option<u64>,
    /// The quota's period, in seconds (API Gateway's DAY, WEEK or MONTH).
    pub quota_period_secs: u64,
    /// The values of the plan's API keys.
    pub keys: Vec<String>,
}

/// What the plans say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits.
    Pass,
    /// The key's bucket is empty: `429`, response type `THROTTLED`.
    Throttled,
    /// The key's quota for the period is used up: `429`, `QUOTA_EXCEEDED`.
    QuotaExceeded,
    /// No plan holds the key: `403`, `INVALID_API_KEY`.
    UnknownKey,
}

#[derive(Debug)]
struct KeyState {
    tokens: u64,
    refilled: i64,
    period_start: i64,
    used: u64,
}

/// The plans and every key's bucket and quota.
#[derive(Debug, Default)]
pub struct UsagePlans {
    by_key: HashMap<String, UsagePlan>,
    state: Mutex<HashMap<String, KeyState>>,
}

impl UsagePlans {
    /// The plans; a key in two plans belongs to the first.
    pub fn new(plans: &[UsagePlan]) -> Self {
        let mut by_key = HashMap::new();
        for plan in plans {
            for key in &plan.keys {
                by_key.entry(key.clone()).or_insert_with(|| plan.clone());
            }
        }
        Self {
            by_key,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any plan is configured (methods then require a key).
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Takes one request for `key` at `now` (Unix seconds, the gateway's
    /// clock): the bucket refills `rate_per_sec` per whole second elapsed.
    pub fn admit(&self, key: &str, now: i64) -> Verdict {
        let Some(plan) = self.by_key.get(key) else {
            return Verdict::UnknownKey;
        };
        let Ok(mut state) = self.state.lock() else {
            return Verdict::Throttled;
        };
        let burst = u64::from(plan.burst.max(1));
        let s = state.entry(key.to_owned()).or_insert(KeyState {
            tokens: burst,
            refilled: now,
            period_start: now,
            used: 0,
        });
        let elapsed = u64::try_from(now.saturating_sub(s.refilled)).unwrap_or(0);
        s.tokens = s
            .tokens
            .saturating_add(elapsed.saturating_mul(u64::from(plan.rate_per_sec)))
            .min(burst);
        s.refilled = s.refilled.max(now);
        let period = i64::try_from(plan.quota_period_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(s.period_start) >= period {
            s.period_start = now;
            s.used = 0;
        }
        if plan.quota.is_some_and(|q| s.used >= q) {
            return Verdict::QuotaExceeded;
        }
        if s.tokens == 0 {
            return Verdict::Throttled;
        }
        s.tokens -= 1;
        s.used += 1;
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, rate: u32, burst: u32, quota: Option<u64>, keys: &[&str]) -> UsagePlan {
        UsagePlan {
            name: name.into(),
            rate_per_sec: rate,
            burst,
            quota,
            quota_period_secs: 86_400,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_keys_are_independent() {
        let plans = UsagePlans::new(&[
            plan("slow", 1, 2, None, &["s1", "s2"]),
            plan("fast", 100, 200, None, &["f1"]),
        ]);
        let t0 = 1_900_000_000;
        assert_eq!(plans.admit("s1", t0), Verdict::Pass);
        assert_eq!(plans.admit("s1", t0), Verdict::Pass);
        assert_eq!(plans.admit("s1", t0), Verdict::Throttled);
        assert_eq!(
            plans.admit("s2", t0),
            Verdict::Pass,
            "another key of the tier"
        );
        assert_eq!(plans.admit("f1", t0), Verdict::Pass, "another tier");
        assert_eq!(plans.admit("s1", t0 + 1), Verdict::Pass);
        assert_eq!(plans.admit("nobody", t0), Verdict::UnknownKey);
    }

    #[test]
    fn a_quota_counts_passed_requests_per_period() {
        let plans = UsagePlans::new(&[plan("metered", 100, 100, Some(3), &["m"])]);
        let t0 = 1_900_000_000;
        for _ in 0..3 {
            assert_eq!(plans.admit("m", t0), Verdict::Pass);
        }
        assert_eq!(plans.admit("m", t0), Verdict::QuotaExceeded);
        assert_eq!(plans.admit("m", t0 + 86_400), Verdict::Pass, "a new period");
    }
}
