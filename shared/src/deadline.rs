//! Working inside a Lambda invocation's time budget.

use std::time::{Duration, Instant};

/// The instant `margin` before the invocation's deadline (`deadline_ms`, the
/// Lambda context's Unix milliseconds), so a handler stops its work in time
/// to answer. An already passed or too close deadline gives now.
pub fn before_lambda_deadline(deadline_ms: u64, margin: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_kept_and_a_past_deadline_is_now() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let at = before_lambda_deadline(now_ms + 60_000, Duration::from_secs(20));
        let left = at.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(40) && left > Duration::from_secs(38),
            "{left:?}"
        );
        let past = before_lambda_deadline(now_ms.saturating_sub(5_000), Duration::from_secs(1));
        assert!(past <= Instant::now());
    }
}
