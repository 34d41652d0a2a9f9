//! The authorizer's own CloudWatch metrics, one EMF record per decision.
//!
//! Why not Lambda's `Errors`: a REQUEST authorizer answers 401 by failing with
//! the message `Unauthorized`, so every bad credential is a Lambda error and an
//! alarm on `Errors` is always on. These metrics separate refusals
//! (`Outcome=unauthorized`) from real trouble (`Outcome=error`, fail-closed).
//!
//! The names below are a contract with the CDK alarms: never rename them.
//!
//! | Metric | Unit | Dimension sets |
//! |---|---|---|
//! | `Decisions` | Count | `[Method, Outcome]`, `[Outcome]` |
//! | `DecisionLatency` | Milliseconds | `[Method, Outcome]`, `[Outcome]` |
//! | `CacheHits`, `CacheMisses` | Count | none (namespace-wide) |
//! | `Argon2Evaluations`, `JwksFetches` | Count | none (namespace-wide) |
//!
//! `Outcome` is `allow`, `deny` (a policy that allows nothing), `unauthorized`
//! or `error` (fail-closed). `Method` is `jwt`, `pat`, or `none` (no
//! credential, or one that is neither PAT- nor JWT-shaped).
//!
//! The counter metrics have no dimension on purpose. `Argon2Evaluations` and
//! `JwksFetches` attribute the growth of process-wide counters to whichever
//! record observes it first (an atomic `fetch_max` of the last reported
//! value), which keeps their sums exact under concurrent decisions but can
//! put one decision's argon2 run on another decision's record; a per-method
//! or per-outcome split of them would therefore be misleading.
//!
//! Hot path: [`DecisionMetrics::record`] builds a `Copy` record and hands it
//! to [`shared::emf::EmfSink`] (a `try_send` on a bounded channel). JSON is
//! rendered and written to stdout on the sink's own thread; a full channel
//! drops and counts, never waits. What a Lambda freeze can delay or lose is
//! described in [`shared::emf`]. No record carries a credential, a subject,
//! a token id or an address: only the enumerations and numbers below.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared::emf::{Directive, EmfRecord, EmfSink, Member, Namespace, Unit};

/// `Decisions`: one per decision.
pub const DECISIONS: &str = "Decisions";
/// `DecisionLatency`: the decision's duration on a monotonic clock.
pub const DECISION_LATENCY: &str = "DecisionLatency";
/// `CacheHits`: decisions answered from a positive in-process cache.
pub const CACHE_HITS: &str = "CacheHits";
/// `CacheMisses`: decisions whose credential was looked up and not found
/// fresh in a positive in-process cache.
pub const CACHE_MISSES: &str = "CacheMisses";
/// `Argon2Evaluations`: argon2id verifications run.
pub const ARGON2_EVALUATIONS: &str = "Argon2Evaluations";
/// `JwksFetches`: JWKS fetch attempts (successful or not).
pub const JWKS_FETCHES: &str = "JwksFetches";
/// Dimension key of the credential kind.
pub const METHOD: &str = "Method";
/// Dimension key of the decision's outcome.
pub const OUTCOME: &str = "Outcome";

/// Records queued for the writer before new ones are dropped. Far above what
/// one Lambda environment (one request at a time) ever has in flight.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Which verifier the credential went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A Cognito JWT.
    Jwt,
    /// A personal access token.
    Pat,
    /// No credential, or one neither verifier recognises the shape of.
    None,
}

impl Method {
    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Jwt => "jwt",
            Method::Pat => "pat",
            Method::None => "none",
        }
    }
}

/// How the decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A policy allowing at least one route.
    Allow,
    /// A valid principal whose policy allows nothing.
    Deny,
    /// Refused: 401.
    Unauthorized,
    /// Failed closed on a dependency or internal error: 500.
    Error,
}

impl Outcome {
    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Error => "error",
        }
    }
}

/// Whether a positive in-process cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheUse {
    /// No cache was consulted (no credential, junk, caching off).
    #[default]
    NotConsulted,
    /// Looked up; not there, or stale.
    Miss,
    /// Answered from the cache.
    Hit,
}

/// One decision's record: enumerations and numbers only, nothing secret.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// When the decision was made (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// Which verifier the credential went to.
    pub method: Method,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub latency: Duration,
    /// Whether a positive cache answered.
    pub cache: CacheUse,
    /// argon2id runs attributed to this record.
    pub argon2_evaluations: u64,
    /// JWKS fetches attributed to this record.
    pub jwks_fetches: u64,
}

const DECISION_DIRECTIVES: [Directive<'static>; 2] = [
    Directive {
        dimensions: &[&[METHOD, OUTCOME], &[OUTCOME]],
        metrics: &[
            (DECISIONS, Unit::Count),
            (DECISION_LATENCY, Unit::Milliseconds),
        ],
    },
    Directive {
        dimensions: &[&[]],
        metrics: &[
            (CACHE_HITS, Unit::Count),
            (CACHE_MISSES, Unit::Count),
            (ARGON2_EVALUATIONS, Unit::Count),
            (JWKS_FETCHES, Unit::Count),
        ],
    },
];

impl EmfRecord for Decision {
    fn to_line(&self, namespace: &Namespace) -> String {
        let count = |hit: bool| Member::Count(u64::from(hit));
        shared::emf::document(
            namespace,
            self.timestamp_ms,
            &DECISION_DIRECTIVES,
            &[
                (METHOD, Member::Text(self.method.as_str())),
                (OUTCOME, Member::Text(self.outcome.as_str())),
                (DECISIONS, Member::Count(1)),
                (
                    DECISION_LATENCY,
                    Member::Number(self.latency.as_secs_f64() * 1000.0),
                ),
                (CACHE_HITS, count(self.cache == CacheUse::Hit)),
                (CACHE_MISSES, count(self.cache == CacheUse::Miss)),
                (ARGON2_EVALUATIONS, Member::Count(self.argon2_evaluations)),
                (JWKS_FETCHES, Member::Count(self.jwks_fetches)),
            ],
        )
    }
}

/// The per-decision metrics of one authorizer instance.
pub struct DecisionMetrics {
    sink: EmfSink<Decision>,
    reported_argon2: AtomicU64,
    reported_fetches: AtomicU64,
}

impl DecisionMetrics {
    /// Metrics written to stdout under `namespace` (Lambda).
    ///
    /// # Errors
    /// If the writer thread cannot be started.
    pub fn stdout(namespace: Namespace) -> std::io::Result<Self> {
        Ok(Self::over(EmfSink::stdout(namespace, DEFAULT_CAPACITY)?))
    }

    /// Metrics written to `writer` through a channel of `capacity` records
    /// (tests capture the lines; benchmarks discard them).
    ///
    /// # Errors
    /// If the writer thread cannot be started.
    pub fn to_writer<W: Write + Send + 'static>(
        namespace: Namespace,
        capacity: usize,
        writer: W,
    ) -> std::io::Result<Self> {
        Ok(Self::over(EmfSink::to_writer(namespace, capacity, writer)?))
    }

    fn over(sink: EmfSink<Decision>) -> Self {
        Self {
            sink,
            reported_argon2: AtomicU64::new(0),
            reported_fetches: AtomicU64::new(0),
        }
    }

    /// The sink (drop count; waiting for the writer in tests).
    pub fn sink(&self) -> &EmfSink<Decision> {
        &self.sink
    }

    /// Records one decision. `argon2_total` and `fetch_total` are the
    /// verifiers' running totals: the record carries the part of their growth
    /// no earlier record has reported. Never blocks; `false` if dropped.
    pub fn record(
        &self,
        method: Method,
        outcome: Outcome,
        latency: Duration,
        cache: CacheUse,
        argon2_total: u64,
        fetch_total: u64,
    ) -> bool {
        self.sink.record(Decision {
            timestamp_ms: shared::emf::now_ms(),
            method,
            outcome,
            latency,
            cache,
            argon2_evaluations: unreported(&self.reported_argon2, argon2_total),
            jwks_fetches: unreported(&self.reported_fetches, fetch_total),
        })
    }
}

/// The growth of a monotonic counter since the highest value any record has
/// reported. `fetch_max` makes concurrent callers split the growth instead of
/// each claiming it: the sum over all records is exactly the counter's total.
fn unreported(reported: &AtomicU64, total: u64) -> u64 {
    total.saturating_sub(reported.fetch_max(total, Ordering::AcqRel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_observers_split_a_counters_growth_exactly() {
        let reported = AtomicU64::new(0);
        // Observed out of order, as racing decisions would.
        let seen = [3, 1, 5, 5, 4, 9, 2];
        let sum: u64 = seen.iter().map(|&t| unreported(&reported, t)).sum();
        assert_eq!(sum, 9);
        let reported = std::sync::Arc::new(AtomicU64::new(0));
        let total = std::sync::Arc::new(AtomicU64::new(0));
        let handles: Vec<std::thread::JoinHandle<u64>> = (0..4)
            .map(|_| {
                let (reported, total) = (reported.clone(), total.clone());
                std::thread::spawn(move || {
                    let mut mine = 0;
                    for _ in 0..10_000 {
                        let now = total.fetch_add(1, Ordering::SeqCst) + 1;
                        mine += unreported(&reported, now);
                    }
                    mine
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(sum, 40_000);
    }
}
