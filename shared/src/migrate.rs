//! Batch migration of token records between schema versions.
//!
//! A segmented parallel scan; per item a conditional update guarded by the
//! version it read, so a concurrent application write is never overwritten and
//! a rerun is a no-op; a checkpoint per segment after every page, so an
//! interrupted run resumes where it stopped; a dry-run mode that only counts;
//! and a write-rate limit. The Lambda handler and the local CLI (`migrator/`)
//! are thin front ends over [`run`].
//!
//! The migration brings every token record to the current version (v3):
//! `scope_set` (v2, a string set the authorizer reads, derived from the v1
//! `scopes` string) where it is missing, and the expiry index's keys (v3,
//! derived from `expires_at` and the id). v1 and v2 items are both upgraded
//! in one pass; each update is guarded by the version it read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::pat::TokenId;
use crate::record::CURRENT_SCHEMA_VERSION;
use crate::scope::ScopeNames;
use crate::store::{StoreError, gsi2_keys, s, unavailable};

/// The name of the token migration to the current version (also its
/// checkpoint key). A new version gets a new name, so its run starts afresh.
pub const TOKENS_TO_CURRENT: &str = "tokens-to-v3";

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct MigrationConfig {
    /// Parallel scan segments (1–64).
    pub segments: u32,
    /// Items per scan page.
    pub page_size: i32,
    /// Write budget, in conditional updates per second (0 = unlimited).
    pub max_writes_per_sec: u32,
    /// Count only; write nothing (not even checkpoints).
    pub dry_run: bool,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            segments: 4,
            page_size: 100,
            max_writes_per_sec: 100,
            dry_run: false,
        }
    }
}

/// What a run saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Token items scanned, by schema version.
    pub by_version: BTreeMap<u32, u64>,
    /// Items this run upgraded.
    pub migrated: u64,
    /// Items whose conditional update lost to a concurrent writer or another
    /// run (already upgraded): left as they are.
    pub skipped: u64,
    /// Whether every segment reached its end.
    pub complete: bool,
}

/// Live counters for progress displays and metrics.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items scanned so far.
    pub scanned: AtomicU64,
    /// Items upgraded so far.
    pub migrated: AtomicU64,
    /// Set to stop the run at the next page boundary (checkpoint kept).
    pub stop: AtomicBool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SegmentCheckpoint {
    /// `None` before the first page; `Some(None)` when finished.
    last_key: Option<Option<HashMap<String, String>>>,
}

fn checkpoint_key(name: &str, segment: u32, total: u32) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("PK".to_owned(), s(format!("MIGRATION#{name}"))),
        (
            "SK".to_owned(),
            s(format!("SEGMENT#{segment:02}-OF-{total:02}")),
        ),
    ])
}

/// Token-bucket write limiter shared by all segments.
struct Limiter {
    per_sec: u32,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            state: Mutex::new((f64::from(per_sec), Instant::now())),
        }
    }

    async fn acquire(&self) {
        if self.per_sec == 0 {
            return;
        }
        let rate = f64::from(self.per_sec);
        loop {
            let wait = {
                let mut guard = self.state.lock().await;
                let (tokens, last) = *guard;
                let now = Instant::now();
                let refilled = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
                if refilled >= 1.0 {
                    *guard = (refilled - 1.0, now);
                    return;
                }
                *guard = (refilled, now);
                Duration::from_secs_f64((1.0 - refilled) / rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `scope_set` derived from an item's `scopes` string. `None` if the
/// item is not a well-formed token.
fn v2_scope_set(item: &HashMap<String, AttributeValue>) -> Option<Vec<String>> {
    let scopes = item.get("scopes")?.as_s().ok()?;
    let set = ScopeNames::parse_space_separated(scopes)?;
    let names: Vec<String> = set.iter().map(str::to_owned).collect();
    (!names.is_empty()).then_some(names)
}

/// Runs (or resumes) the migration of every token record to the current
/// schema version on `table`.
pub async fn run(
    client: &Client,
    table: &str,
    cfg: &MigrationConfig,
    progress: Arc<Progress>,
) -> Result<Report, StoreError> {
    let segments = cfg.segments.clamp(1, 64);
    let limiter = Arc::new(Limiter::new(cfg.max_writes_per_sec));
    let mut tasks = Vec::new();
    for segment in 0..segments {
        let (client, table, cfg) = (client.clone(), table.to_owned(), cfg.clone());
        let (limiter, progress) = (Arc::clone(&limiter), Arc::clone(&progress));
        tasks.push(tokio::spawn(async move {
            run_segment(
                &client, &table, &cfg, segment, segments, &limiter, &progress,
            )
            .await
        }));
    }
    let mut report = Report {
        complete: true,
        ..Report::default()
    };
    for task in tasks {
        let part = task
            .await
            .map_err(|_| StoreError::Unavailable("migration task failed".into()))??;
        for (v, n) in part.by_version {
            *report.by_version.entry(v).or_default() += n;
        }
        report.migrated += part.migrated;
        report.skipped += part.skipped;
        report.complete &= part.complete;
    }
    Ok(report)
}

async fn load_checkpoint(
    client: &Client,
    table: &str,
    segment: u32,
    total: u32,
) -> Result<SegmentCheckpoint, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(checkpoint_key(TOKENS_TO_CURRENT, segment, total)))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable)?;
    Ok(out
        .item()
        .and_then(|i| i.get("state"))
        .and_then(|v| v.as_s().ok())
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default())
}

async fn save_checkpoint(
    client: &Client,
    table: &str,
    segment: u32,
    total: u32,
    state: &SegmentCheckpoint,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).map_err(|_| StoreError::Corrupt("checkpoint"))?;
    let mut item = checkpoint_key(TOKENS_TO_CURRENT, segment, total);
    item.insert("state".into(), s(json));
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn key_to_strings(key: &HashMap<String, AttributeValue>) -> HashMap<String, String> {
    key.iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
        .collect()
}

fn strings_to_key(key: &HashMap<String, String>) -> HashMap<String, AttributeValue> {
    key.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect()
}

async fn run_segment(
    client: &Client,
    table: &str,
    cfg: &MigrationConfig,
    segment: u32,
    total: u32,
    limiter: &Limiter,
    progress: &Progress,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut state = if cfg.dry_run {
        SegmentCheckpoint::default()
    } else {
        load_checkpoint(client, table, segment, total).await?
    };
    let mut start = match &state.last_key {
        Some(None) => {
            report.complete = true;
            return Ok(report); // this segment finished in an earlier run
        }
        Some(Some(key)) => Some(strings_to_key(key)),
        None => None,
    };
    loop {
        if progress.stop.load(Ordering::SeqCst) {
            return Ok(report);
        }
        let page = client
            .scan()
            .table_name(table)
            .segment(i32::try_from(segment).unwrap_or(0))
            .total_segments(i32::try_from(total).unwrap_or(1))
            .limit(cfg.page_size.clamp(1, 1000))
            .consistent_read(true)
            // Only what the migration reads: the role may not read more (a
            // hash above all), and IAM checks these names.
            .projection_expression("PK, SK, #v, #scopes, expires_at")
            .expression_attribute_names("#v", "v")
            .expression_attribute_names("#scopes", "scopes")
            .filter_expression("SK = :token")
            .expression_attribute_values(":token", s("TOKEN"))
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .map_err(unavailable)?;
        for item in page.items() {
            progress.scanned.fetch_add(1, Ordering::Relaxed);
            let version = item
                .get("v")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            *report.by_version.entry(version).or_default() += 1;
            if version >= CURRENT_SCHEMA_VERSION || cfg.dry_run {
                continue;
            }
            let id = item
                .get("PK")
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("TOKEN#"))
                .and_then(|id| TokenId::parse(id).ok());
            let expires_at = item
                .get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok());
            let (Some(pk), Some(sk), Some(scope_set), Some(id), Some(expires_at)) = (
                item.get("PK"),
                item.get("SK"),
                v2_scope_set(item),
                id,
                expires_at,
            ) else {
                continue; // not a well-formed token: left for a human to look at
            };
            let (gsi2pk, gsi2sk) = gsi2_keys(expires_at, &id);
            limiter.acquire().await;
            // `scope_set` is written only where it is missing (v1); on v2 it
            // is already there (and must agree with `scopes`, which readers
            // check). The index keys derive from the expiry this scan read:
            // the update applies only if that expiry is still the token's
            // (an edit in between wrote the right keys itself).
            let result = client
                .update_item()
                .table_name(table)
                .key("PK", pk.clone())
                .key("SK", sk.clone())
                .update_expression(
                    "SET v = :new, scope_set = if_not_exists(scope_set, :ss), \
                     GSI2PK = :g2pk, GSI2SK = :g2sk",
                )
                .condition_expression("attribute_exists(PK) AND v = :old AND expires_at = :exp")
                .expression_attribute_values(":old", AttributeValue::N(version.to_string()))
                .expression_attribute_values(
                    ":new",
                    AttributeValue::N(CURRENT_SCHEMA_VERSION.to_string()),
                )
                .expression_attribute_values(":ss", AttributeValue::Ss(scope_set))
                .expression_attribute_values(":g2pk", s(gsi2pk))
                .expression_attribute_values(":g2sk", s(gsi2sk))
                .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
                .send()
                .await;
            match result {
                Ok(_) => {
                    report.migrated += 1;
                    progress.migrated.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    report.skipped += 1;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        start = page.last_evaluated_key().cloned();
        if !cfg.dry_run {
            state.last_key = Some(start.as_ref().map(key_to_strings));
            save_checkpoint(client, table, segment, total, &state).await?;
        }
        if start.is_none() {
            report.complete = true;
            return Ok(report);
        }
    }
}
