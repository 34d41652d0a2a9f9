//! Front ends of the token migration to the current schema version (`shared::migrate`): the Lambda
//! handler and the CLI share [`migrate`]; only their reporting differs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;
use shared::emf::{Directive, Member, Namespace, Unit, document};
use shared::migrate::{MigrationConfig, Progress, Report, run};
use shared::store::{StoreError, TokenStore};

/// A Lambda invocation (all fields optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationRequest {
    /// Count per version; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Parallel scan segments (default 4).
    pub segments: Option<u32>,
    /// Conditional updates per second (default 100, 0 = unlimited).
    pub max_writes_per_sec: Option<u32>,
}

impl MigrationRequest {
    /// The run configuration this request asks for.
    pub fn config(&self) -> MigrationConfig {
        let defaults = MigrationConfig::default();
        MigrationConfig {
            segments: self.segments.unwrap_or(defaults.segments),
            max_writes_per_sec: self
                .max_writes_per_sec
                .unwrap_or(defaults.max_writes_per_sec),
            dry_run: self.dry_run,
            ..defaults
        }
    }
}

/// Runs the migration, calling `tick` about every `every` with the progress.
pub async fn migrate(
    store: &TokenStore,
    cfg: &MigrationConfig,
    every: Duration,
    mut tick: impl FnMut(&Progress, Duration) + Send,
) -> Result<Report, StoreError> {
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let table = store.config().table_name.clone();
    let work = run(store.client(), &table, cfg, Arc::clone(&progress));
    tokio::pin!(work);
    loop {
        tokio::select! {
            report = &mut work => return report,
            () = tokio::time::sleep(every) => tick(&progress, started.elapsed()),
        }
    }
}

/// A one-line progress display with an ETA from the table's approximate size.
pub fn progress_line(progress: &Progress, elapsed: Duration, approx_items: Option<u64>) -> String {
    let scanned = progress.scanned.load(Ordering::Relaxed);
    let migrated = progress.migrated.load(Ordering::Relaxed);
    let rate = scanned as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = match approx_items {
        Some(total) if total > scanned && rate > 0.0 => {
            format!("ETA {:.0}s", (total - scanned) as f64 / rate)
        }
        Some(_) => "ETA <1s".to_owned(),
        None => "ETA unknown".to_owned(),
    };
    format!("scanned {scanned}, migrated {migrated}, {rate:.0} items/s, {eta}")
}

/// CloudWatch EMF lines for a finished run (Lambda metrics), in the
/// environment's namespace (`AGPAT_METRICS_NAMESPACE`), like every other
/// agpat metric.
pub fn emf_lines(namespace: &Namespace, report: &Report, timestamp_ms: i64) -> Vec<String> {
    let migration = Member::Text(shared::migrate::TOKENS_TO_CURRENT);
    let mut lines = Vec::new();
    for (name, value) in [("Migrated", report.migrated), ("Skipped", report.skipped)] {
        let directive = Directive {
            dimensions: &[&["Migration"]],
            metrics: &[(name, Unit::Count)],
        };
        lines.push(document(
            namespace,
            timestamp_ms,
            &[directive],
            &[("Migration", migration), (name, Member::Count(value))],
        ));
    }
    for (version, scanned) in &report.by_version {
        let version = version.to_string();
        let directive = Directive {
            dimensions: &[&["Migration", "SchemaVersion"]],
            metrics: &[("ItemsScanned", Unit::Count)],
        };
        lines.push(document(
            namespace,
            timestamp_ms,
            &[directive],
            &[
                ("Migration", migration),
                ("SchemaVersion", Member::Text(&version)),
                ("ItemsScanned", Member::Count(*scanned)),
            ],
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_configs_and_reject_unknown_fields() {
        let r: MigrationRequest =
            serde_json::from_str(r#"{"dryRun": true, "segments": 8}"#).unwrap();
        let cfg = r.config();
        assert!(cfg.dry_run);
        assert_eq!(cfg.segments, 8);
        assert_eq!(cfg.max_writes_per_sec, 100);
        assert!(serde_json::from_str::<MigrationRequest>(r#"{"drop": "table"}"#).is_err());
    }

    #[test]
    fn emf_lines_carry_counts_per_version() {
        let report = Report {
            by_version: [(1, 5), (2, 7)].into_iter().collect(),
            migrated: 5,
            skipped: 0,
            complete: true,
        };
        let namespace = Namespace::parse("agpat/prod").unwrap();
        let lines = emf_lines(&namespace, &report, 1);
        assert_eq!(lines.len(), 4);
        let v1: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(v1["ItemsScanned"], 5);
        assert_eq!(v1["SchemaVersion"], "1");
        for line in &lines {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "agpat/prod", "{line}");
            let metric = directive["Metrics"][0]["Name"].as_str().unwrap();
            assert!(doc[metric].is_u64(), "{line}");
            for dim in directive["Dimensions"][0].as_array().unwrap() {
                assert!(doc[dim.as_str().unwrap()].is_string(), "{line}");
            }
        }
    }

    #[test]
    fn progress_lines_show_counts_and_an_eta() {
        let p = Progress::default();
        p.scanned.store(50, Ordering::Relaxed);
        p.migrated.store(20, Ordering::Relaxed);
        let line = progress_line(&p, Duration::from_secs(5), Some(100));
        assert_eq!(line, "scanned 50, migrated 20, 10 items/s, ETA 5s");
    }
}
