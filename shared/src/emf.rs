//! CloudWatch Embedded Metric Format (EMF): the one place that writes EMF
//! documents, for the authorizer and the token service alike.
//!
//! An EMF document is one JSON log line. `_aws.CloudWatchMetrics` declares
//! which root members are metrics (with units) and which are dimensions;
//! CloudWatch Logs extracts the metrics when the line reaches a log group (in
//! Lambda, everything written to stdout does).
//!
//! Two pieces:
//!
//! - [`Namespace`]: the per-environment CloudWatch namespace, from
//!   [`NAMESPACE_VAR`] (default [`DEFAULT_NAMESPACE`]), validated once at cold
//!   start so that `dev` and `prod` never share metrics.
//! - [`EmfSink`]: hands records to a dedicated writer thread through a bounded
//!   channel, so the caller (a decision on the authorizer's hot path) never
//!   formats JSON, never writes to stdout and never waits.
//!
//! # Why a thread and a bounded channel, and what a Lambda freeze can lose
//!
//! A write to stdout is a syscall into a pipe the Lambda runtime drains; it
//! can block when the pipe is full. A decision must not wait for it, so the
//! hot path only does a `try_send` of a small `Copy` record. When the channel
//! is full the record is dropped and counted ([`EmfSink::dropped`]); the
//! writer then reports the drops itself as the metric [`DROPPED_METRIC`], so
//! a loss is visible in CloudWatch rather than silent (drops are reported
//! with the next record written, so drops after the last record of an
//! environment's life go unreported).
//!
//! The hand-off's one cost beyond the queue itself: when the writer is idle
//! (in Lambda, every decision), `try_send` wakes it, a futex wake. The
//! alternative, a writer that polls on a timer, would make the hot path
//! cheaper but would hold every record until the next thaw, delaying alarms
//! by the gap between invocations; prompt delivery was preferred.
//!
//! Lambda freezes the execution environment as soon as the handler returns.
//! A record queued just before that moment may not be written until the next
//! invocation thaws the environment; it still carries its own decision-time
//! `_aws.Timestamp`, so CloudWatch files it under the right minute. Records
//! still queued when the environment is shut down while frozen (scale-in,
//! timeout, crash) are lost: at most the channel's capacity, in practice the
//! last decision or two of that environment. No record is ever written twice.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use thiserror::Error;

/// The environment variable holding the CloudWatch namespace.
pub const NAMESPACE_VAR: &str = "AGPAT_METRICS_NAMESPACE";

/// The namespace used when [`NAMESPACE_VAR`] is unset (set but empty is refused).
pub const DEFAULT_NAMESPACE: &str = "agpat";

/// The metric an [`EmfSink`]'s writer emits when records were dropped because
/// the channel was full. A contract for alarms: do not rename.
pub const DROPPED_METRIC: &str = "MetricRecordsDropped";

/// Longest namespace CloudWatch accepts.
const MAX_NAMESPACE_LEN: usize = 255;

/// Most dimension keys in one dimension set (EMF limit).
pub const MAX_DIMENSIONS: usize = 30;

/// Most metrics in one directive (EMF limit).
pub const MAX_METRICS: usize = 100;

/// Why a namespace was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NamespaceError {
    /// Empty or only whitespace.
    #[error("the metrics namespace is empty")]
    Empty,
    /// Over 255 characters.
    #[error("the metrics namespace is longer than 255 characters")]
    TooLong,
    /// A character CloudWatch does not accept in a namespace.
    #[error("the metrics namespace may hold only A-Z a-z 0-9 . - _ / # : and space")]
    Character,
    /// `AWS/` is reserved for AWS services.
    #[error("the metrics namespace may not start with AWS/")]
    Reserved,
}

/// A CloudWatch namespace CloudWatch will accept: 1 to 255 characters from
/// `A-Z a-z 0-9 . - _ / # :` and space, at least one not a space, and not in
/// the `AWS/` space reserved for AWS services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// Validates `value` as a namespace.
    ///
    /// # Errors
    /// [`NamespaceError`] naming the rule `value` breaks.
    pub fn parse(value: &str) -> Result<Self, NamespaceError> {
        if value.trim().is_empty() {
            return Err(NamespaceError::Empty);
        }
        if value.len() > MAX_NAMESPACE_LEN {
            return Err(NamespaceError::TooLong);
        }
        let legal = |b: u8| b.is_ascii_alphanumeric() || b".-_/#: ".contains(&b);
        if !value.bytes().all(legal) {
            return Err(NamespaceError::Character);
        }
        if value.starts_with("AWS/") {
            return Err(NamespaceError::Reserved);
        }
        Ok(Self(value.to_owned()))
    }

    /// The namespace from the value of [`NAMESPACE_VAR`]: unset means
    /// [`DEFAULT_NAMESPACE`]; set (even to something empty) means it must be
    /// valid, so a typo in a deployment stops the cold start instead of
    /// mixing environments.
    ///
    /// # Errors
    /// [`NamespaceError`] when the variable is set to an invalid namespace.
    pub fn from_var(value: Option<&str>) -> Result<Self, NamespaceError> {
        match value {
            None => Ok(Self::default()),
            Some(v) => Self::parse(v),
        }
    }

    /// The namespace from the process environment (see [`Namespace::from_var`]).
    ///
    /// # Errors
    /// [`NamespaceError`] when [`NAMESPACE_VAR`] is set to an invalid value
    /// (or to something that is not Unicode: [`NamespaceError::Character`]).
    pub fn from_process_env() -> Result<Self, NamespaceError> {
        match std::env::var(NAMESPACE_VAR) {
            Ok(v) => Self::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(NamespaceError::Character),
        }
    }

    /// The namespace as written in the document.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self(DEFAULT_NAMESPACE.to_owned())
    }
}

/// The CloudWatch units this component uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of events.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    /// The unit's name in EMF.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One `CloudWatchMetrics` entry: which root members are metrics, and which
/// dimension sets they are published under (`&[]` as a set means "no
/// dimension": one series for the whole namespace).
#[derive(Debug, Clone, Copy)]
pub struct Directive<'a> {
    /// Dimension sets, each a list of root member names (≤ 30 each).
    pub dimensions: &'a [&'a [&'a str]],
    /// Metric names and units (≤ 100).
    pub metrics: &'a [(&'a str, Unit)],
}

/// A root member's value: a dimension value or a metric value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Member<'a> {
    /// A string (dimension values).
    Text(&'a str),
    /// A whole number (counts).
    Count(u64),
    /// A real number (durations); a non-finite value is written as 0.
    Number(f64),
}

/// Renders one EMF document (one line, no newline). `members` holds every
/// dimension value and metric value the directives name, at the root; it
/// must hold nothing secret, since the line is also a log event.
///
/// Written straight into one `String` (strings JSON-escaped), not through a
/// `serde_json::Value` tree: this runs once per decision on the writer thread.
pub fn document(
    namespace: &Namespace,
    timestamp_ms: i64,
    directives: &[Directive<'_>],
    members: &[(&str, Member<'_>)],
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"_aws\":{\"Timestamp\":");
    let _ = write!(out, "{timestamp_ms}");
    out.push_str(",\"CloudWatchMetrics\":[");
    for (i, d) in directives.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Namespace\":");
        push_str(&mut out, namespace.as_str());
        out.push_str(",\"Dimensions\":[");
        for (j, set) in d.dimensions.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('[');
            for (k, key) in set.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                push_str(&mut out, key);
            }
            out.push(']');
        }
        out.push_str("],\"Metrics\":[");
        for (j, (name, unit)) in d.metrics.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"Name\":");
            push_str(&mut out, name);
            out.push_str(",\"Unit\":");
            push_str(&mut out, unit.as_str());
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    for (name, value) in members {
        out.push(',');
        push_str(&mut out, name);
        out.push(':');
        match *value {
            Member::Text(text) => push_str(&mut out, text),
            Member::Count(n) => {
                let _ = write!(out, "{n}");
            }
            // Display of an f64 never uses an exponent: valid JSON.
            Member::Number(x) if x.is_finite() => {
                let _ = write!(out, "{x}");
            }
            Member::Number(_) => out.push('0'),
        }
    }
    out.push('}');
    out
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Milliseconds since the Unix epoch, as EMF's `_aws.Timestamp` wants them.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A record an [`EmfSink`] can carry: small, owned, and rendered to an EMF
/// line only on the writer thread.
pub trait EmfRecord: Send + 'static {
    /// The EMF document (one line, no newline) for this record.
    fn to_line(&self, namespace: &Namespace) -> String;
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

/// A bounded, never-blocking hand-off of EMF records to a writer thread.
///
/// [`EmfSink::record`] is the only call on the hot path: a `try_send`, and on
/// a full channel a counted drop. The writer thread renders each record,
/// writes it as one line and flushes, then reports any new drops as
/// [`DROPPED_METRIC`]. The thread ends when the last sender is dropped.
pub struct EmfSink<T> {
    sender: SyncSender<T>,
    counters: Arc<Counters>,
}

impl<T: EmfRecord> EmfSink<T> {
    /// A sink writing to stdout (in Lambda: the function's log group, where
    /// CloudWatch extracts the metrics).
    ///
    /// # Errors
    /// If the writer thread cannot be started.
    pub fn stdout(namespace: Namespace, capacity: usize) -> std::io::Result<Self> {
        Self::to_writer(namespace, capacity, std::io::stdout())
    }

    /// A sink writing lines to `writer` (tests capture them in memory).
    ///
    /// # Errors
    /// If the writer thread cannot be started.
    pub fn to_writer<W: Write + Send + 'static>(
        namespace: Namespace,
        capacity: usize,
        writer: W,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("emf-writer".to_owned())
            .spawn(move || write_loop(&namespace, &receiver, writer, &shared))?;
        Ok(Self { sender, counters })
    }

    /// Hands `record` to the writer without waiting: `false` (and one more
    /// drop counted) when the channel is full or the writer has stopped.
    pub fn record(&self, record: T) -> bool {
        match self.sender.try_send(record) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Records dropped so far because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits (polling, up to `timeout`) until every accepted record has been
    /// written; `true` if so. For tests and benchmarks; never on a decision.
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.counters.accepted.load(Ordering::Acquire);
            if self.counters.written.load(Ordering::Acquire) >= accepted {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

fn write_loop<T: EmfRecord, W: Write>(
    namespace: &Namespace,
    receiver: &Receiver<T>,
    mut writer: W,
    counters: &Counters,
) {
    let mut reported_drops = 0u64;
    for record in receiver {
        let mut line = record.to_line(namespace);
        line.push('\n');
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > reported_drops {
            line.push_str(&dropped_line(
                namespace,
                now_ms(),
                dropped.saturating_sub(reported_drops),
            ));
            line.push('\n');
            reported_drops = dropped;
        }
        // A failed write (stdout closed) loses this line; nothing to retry into.
        let _ = writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.flush());
        counters.written.fetch_add(1, Ordering::Release);
    }
}

/// The document reporting `count` records dropped on a full channel.
pub fn dropped_line(namespace: &Namespace, timestamp_ms: i64, count: u64) -> String {
    document(
        namespace,
        timestamp_ms,
        &[Directive {
            dimensions: &[&[]],
            metrics: &[(DROPPED_METRIC, Unit::Count)],
        }],
        &[(DROPPED_METRIC, Member::Count(count))],
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::mpsc::Receiver as StdReceiver;

    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn namespaces_follow_cloudwatch_rules() {
        for good in [
            "agpat",
            "agpat/prod",
            "Team.A-b_c/d#e:f g",
            &"n".repeat(255),
        ] {
            assert_eq!(Namespace::parse(good).unwrap().as_str(), good);
        }
        let cases: [(&str, NamespaceError); 7] = [
            ("", NamespaceError::Empty),
            ("   ", NamespaceError::Empty),
            (&"n".repeat(256), NamespaceError::TooLong),
            ("agpat\nprod", NamespaceError::Character),
            ("agpat/é", NamespaceError::Character),
            ("agpat\"}", NamespaceError::Character),
            ("AWS/Lambda", NamespaceError::Reserved),
        ];
        for (bad, why) in cases {
            assert_eq!(Namespace::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn an_unset_namespace_is_the_default_and_a_set_one_must_be_valid() {
        assert_eq!(Namespace::from_var(None).unwrap().as_str(), "agpat");
        assert_eq!(
            Namespace::from_var(Some("agpat/dev")).unwrap().as_str(),
            "agpat/dev"
        );
        assert_eq!(Namespace::from_var(Some("")), Err(NamespaceError::Empty));
    }

    #[test]
    fn documents_declare_directives_and_carry_members_at_the_root() {
        let ns = Namespace::parse("agpat/test").unwrap();
        let line = document(
            &ns,
            42,
            &[Directive {
                dimensions: &[&["Outcome"], &[]],
                metrics: &[("Decisions", Unit::Count), ("Latency", Unit::Milliseconds)],
            }],
            &[
                ("Outcome", Member::Text("allow")),
                ("Decisions", Member::Count(1)),
                ("Latency", Member::Number(0.000_125)),
            ],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(v["_aws"]["Timestamp"], 42);
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "agpat/test");
        assert_eq!(d["Dimensions"], json!([["Outcome"], []]));
        assert_eq!(
            d["Metrics"],
            json!([
                {"Name": "Decisions", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(v["Outcome"], "allow");
        assert_eq!(v["Decisions"], 1);
        assert_eq!(v["Latency"], 0.000_125);
    }

    #[test]
    fn member_text_is_escaped_and_odd_numbers_stay_valid_json() {
        let awkward = "a\"b\\c\nd\u{1}é";
        let line = document(
            &Namespace::default(),
            1,
            &[Directive {
                dimensions: &[&["Op"]],
                metrics: &[("N", Unit::Count), ("X", Unit::Milliseconds)],
            }],
            &[
                ("Op", Member::Text(awkward)),
                ("N", Member::Count(u64::MAX)),
                ("X", Member::Number(f64::NAN)),
            ],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Op"], awkward);
        assert_eq!(v["N"], u64::MAX);
        assert_eq!(v["X"], 0);
        let big: Value = serde_json::from_str(&document(
            &Namespace::default(),
            1,
            &[],
            &[("X", Member::Number(1e300))],
        ))
        .unwrap();
        assert_eq!(big["X"], 1e300);
    }

    /// A record whose line is its number.
    struct N(u64);
    impl EmfRecord for N {
        fn to_line(&self, namespace: &Namespace) -> String {
            document(
                namespace,
                0,
                &[Directive {
                    dimensions: &[&[]],
                    metrics: &[("N", Unit::Count)],
                }],
                &[("N", Member::Count(self.0))],
            )
        }
    }

    /// A writer that blocks on every write until the test lets it go, as a
    /// full stdout pipe would.
    struct Gate {
        open: StdReceiver<()>,
        out: Arc<Mutex<Vec<u8>>>,
    }
    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.open.recv();
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking_the_caller() {
        let (open, gate) = std::sync::mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = EmfSink::to_writer(
            Namespace::default(),
            2,
            Gate {
                open: gate,
                out: Arc::clone(&out),
            },
        )
        .unwrap();
        // The writer takes the first record and blocks writing it; two more
        // fill the channel; everything after that must be refused at once.
        // The caller runs on a thread of its own so that a blocking hand-off
        // fails this test instead of hanging it.
        let sink = Arc::new(sink);
        let (done, finished) = std::sync::mpsc::channel();
        let caller = Arc::clone(&sink);
        std::thread::spawn(move || {
            let accepted = (0..50).filter(|&i| caller.record(N(i))).count() as u64;
            let _ = done.send(accepted);
        });
        let accepted = finished
            .recv_timeout(Duration::from_secs(2))
            .expect("the caller waited on a blocked writer");
        assert!(accepted <= 3, "accepted {accepted}");
        assert_eq!(sink.dropped(), 50 - accepted);
        // Let the writer go: it writes what it accepted, then reports the drops.
        for _ in 0..100 {
            let _ = open.send(());
        }
        assert!(sink.settle(Duration::from_secs(5)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let reported: u64 = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v[DROPPED_METRIC].as_u64())
            .sum();
        assert_eq!(reported, 50 - accepted, "{text}");
    }
}
