//! Owner events on the agpat EventBridge bus (`agpat.token.expiring`,
//! `agpat.token.expired`, `agpat.token.leak_reported`; see
//! [`crate::history::BusEvent`]). Rules on the bus route them to the owner
//! emails, chat or webhooks. The one place that calls `PutEvents`.

use crate::history::{BUS_SOURCE, BusEvent};

/// Entries per `PutEvents` call (EventBridge's limit).
const PUT_EVENTS_BATCH: usize = 10;

/// The bus and a client for it.
#[derive(Debug, Clone)]
pub struct EventBus {
    /// EventBridge.
    pub client: aws_sdk_eventbridge::Client,
    /// The bus's name (`AGPAT_EVENT_BUS`).
    pub name: String,
}

impl EventBus {
    /// Puts `events` on the bus; returns how many failed.
    pub async fn publish(&self, events: &[BusEvent]) -> u64 {
        publish(&self.client, &self.name, events).await
    }
}

/// Puts `events` on `bus`, [`PUT_EVENTS_BATCH`] at a time; returns how many
/// failed (never the events' contents: they are logged by id only).
pub async fn publish(client: &aws_sdk_eventbridge::Client, bus: &str, events: &[BusEvent]) -> u64 {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    let mut failed = 0u64;
    for batch in events.chunks(PUT_EVENTS_BATCH) {
        let entries: Vec<PutEventsRequestEntry> = batch
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(BUS_SOURCE)
                    .detail_type(e.detail_type())
                    .detail(e.detail().to_string())
                    .build()
            })
            .collect();
        let size = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        match client.put_events().set_entries(Some(entries)).send().await {
            Ok(out) => {
                let count = u64::try_from(out.failed_entry_count()).unwrap_or(0);
                if count > 0 {
                    tracing::error!(failed = count, "EventBridge refused some notices");
                }
                failed += count;
            }
            Err(e) => {
                tracing::error!(
                    error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e),
                    count = size,
                    "PutEvents failed"
                );
                failed += size;
            }
        }
    }
    failed
}
