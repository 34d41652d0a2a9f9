//! The agpat bus on moto, for tests: a fresh EventBridge bus with a rule
//! that copies every agpat event into a fresh SQS queue, and a reader of
//! what the queue received. What is delivered is what EventBridge matched
//! and routed, not what the code under test meant to send.

use aws_config::BehaviorVersion;

use crate::bus::EventBus;
use crate::history::BusEvent;

fn fail<T, E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> T + '_ {
    move |e| panic!("{what}: {e}")
}

/// SDK configuration for moto (the `DYNAMODB_ENDPOINT` moto serves every
/// service), with static test credentials.
pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(super::endpoint())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A bus that delivers its agpat events to a queue.
#[derive(Debug, Clone)]
pub struct BusWithQueue {
    /// The bus, ready to publish to.
    pub bus: EventBus,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// The queue the rule delivers to.
    pub queue_url: String,
}

/// One event as the queue received it: detail-type, token id, days left.
pub type Delivered = (String, String, Option<u64>);

impl BusWithQueue {
    /// A fresh, uniquely named bus, queue and rule.
    ///
    /// # Panics
    /// If moto refuses any of it: the test cannot run.
    pub async fn create(sdk: &aws_config::SdkConfig) -> Self {
        let name = format!("agpat-{}", uuid::Uuid::new_v4());
        let events = aws_sdk_eventbridge::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        events
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .unwrap_or_else(fail("create bus"));
        let queue = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(fail("create queue"));
        let queue_url = queue.queue_url().unwrap_or_default().to_owned();
        let arn_name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(arn_name.clone())
            .send()
            .await
            .unwrap_or_else(fail("queue attributes"));
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&arn_name))
            .cloned()
            .unwrap_or_default();
        events
            .put_rule()
            .name("all-agpat")
            .event_bus_name(&name)
            .event_pattern(r#"{"source": ["agpat"]}"#)
            .send()
            .await
            .unwrap_or_else(fail("put rule"));
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(arn)
            .build()
            .unwrap_or_else(fail("target"));
        events
            .put_targets()
            .rule("all-agpat")
            .event_bus_name(&name)
            .targets(target)
            .send()
            .await
            .unwrap_or_else(fail("put targets"));
        Self {
            bus: EventBus {
                client: events,
                name,
            },
            sqs,
            queue_url,
        }
    }

    /// Every event received since the last call (each must read back as a
    /// [`BusEvent`]), sorted.
    ///
    /// # Panics
    /// If the queue cannot be read or holds something that is not an agpat
    /// event.
    pub async fn drain(&self) -> Vec<Delivered> {
        let mut out = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap_or_else(fail("receive"));
            if batch.messages().is_empty() {
                break;
            }
            for message in batch.messages() {
                let body: serde_json::Value =
                    serde_json::from_str(message.body().unwrap_or_default())
                        .unwrap_or_else(fail("message body"));
                assert!(BusEvent::from_delivery(&body).is_some(), "{body}");
                let text = |v: Option<&serde_json::Value>| {
                    v.and_then(|v| v.as_str()).unwrap_or_default().to_owned()
                };
                let detail = body.get("detail");
                out.push((
                    text(body.get("detail-type")),
                    text(detail.and_then(|d| d.get("tokenId"))),
                    detail
                        .and_then(|d| d.get("daysLeft"))
                        .and_then(|v| v.as_u64()),
                ));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap_or_else(fail("delete"));
            }
        }
        out.sort();
        out
    }
}
