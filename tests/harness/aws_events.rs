//! AWS Secrets Manager change events on the local stack: moto's EventBridge routes events to an
//! SQS queue, as a real account's rule does. moto does not emit Secrets Manager events itself,
//! so tests put them on the bus in the shape CloudTrail gives them.

use aws_sdk_eventbridge::Client as EventBridge;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::Client as Sqs;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

/// An SQS queue fed by an EventBridge rule for `aws.secretsmanager` and `aws.ssm` events.
pub struct EventQueue {
    pub sqs: Sqs,
    pub events: EventBridge,
    pub url: String,
    pub arn: String,
    pub rule: String,
}

async fn queue_arn(sqs: &Sqs, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue ARN")
}

impl EventQueue {
    /// Creates the queue `name` (with a dead-letter queue `name-dlq` after `max_receives`
    /// receives) and a rule sending every Secrets Manager event to it (so parallel tests'
    /// queues each get every test's events; a consumer drops those no ExternalSecret of its own
    /// reads).
    pub async fn create(name: &str, max_receives: u32) -> Self {
        let aws = crate::Stack::get().await.aws().await;
        let sqs = Sqs::new(&aws);
        let events = EventBridge::new(&aws);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("dead-letter queue")
            .queue_url
            .expect("url");
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let url = sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives })
                    .to_string(),
            )
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        let arn = queue_arn(&sqs, &url).await;
        let rule = format!("{name}-rule");
        events
            .put_rule()
            .name(&rule)
            .event_pattern(json!({ "source": ["aws.secretsmanager", "aws.ssm"] }).to_string())
            .send()
            .await
            .expect("rule");
        events
            .put_targets()
            .rule(&rule)
            .targets(
                Target::builder()
                    .id("queue")
                    .arn(&arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("target");
        Self {
            sqs,
            events,
            url,
            arn,
            rule,
        }
    }

    /// The dead-letter queue's URL.
    pub async fn dlq_url(&self) -> String {
        self.sqs
            .get_queue_url()
            .queue_name(format!(
                "{}-dlq",
                self.url.rsplit('/').next().expect("name")
            ))
            .send()
            .await
            .expect("dlq url")
            .queue_url
            .expect("url")
    }

    /// Puts a CloudTrail-shaped Secrets Manager API call event for `secret_id` on the bus.
    pub async fn put_api_call(&self, event_name: &str, secret_id: &str, arn: Option<&str>) {
        let region = crate::Stack::get().await.var("AWS_REGION").to_owned();
        let detail = api_call_detail(event_name, secret_id, arn, &region);
        let out = self
            .events
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source("aws.secretsmanager")
                    .detail_type("AWS API Call via CloudTrail")
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put events");
        assert_eq!(out.failed_entry_count, 0, "EventBridge refused the event");
    }

    /// Puts Parameter Store's own `Parameter Store Change` event for `name` on the bus (moto does
    /// not emit it itself).
    pub async fn put_parameter_change(&self, operation: &str, name: &str) {
        let stack = crate::Stack::get().await;
        let region = stack.var("AWS_REGION").to_owned();
        let arn = format!(
            "arn:aws:ssm:{region}:123456789012:parameter/{}",
            name.trim_start_matches('/')
        );
        let detail =
            serde_json::json!({ "operation": operation, "name": name, "type": "SecureString" });
        let out = self
            .events
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source("aws.ssm")
                    .detail_type("Parameter Store Change")
                    .resources(arn)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put events");
        assert_eq!(out.failed_entry_count, 0, "EventBridge refused the event");
    }

    /// Sends a raw message body straight to the queue.
    pub async fn send_raw(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    /// Messages in the queue (visible or in flight), by SQS's approximate counters.
    pub async fn depth(&self, url: &str) -> u64 {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|a| attrs.get(a)?.parse::<u64>().ok())
        .sum()
    }
}

impl Drop for EventQueue {
    /// Deletes the rule and both queues, even when the test failed (a rule left behind would
    /// route every later event to a queue nobody reads, and slow moto's PutEvents). As with
    /// [`crate::cleanup::Cleanup`], through [`crate::Stack::clean_up`].
    fn drop(&mut self) {
        let (url, rule) = (self.url.clone(), self.rule.clone());
        crate::Stack::clean_up(move |stack| async move {
            let aws = stack.aws().await;
            let (sqs, events) = (Sqs::new(&aws), EventBridge::new(&aws));
            let _ = events
                .remove_targets()
                .rule(&rule)
                .ids("queue")
                .send()
                .await;
            let _ = events.delete_rule().name(&rule).send().await;
            let dlq = format!("{url}-dlq");
            let _ = sqs.delete_queue().queue_url(&url).send().await;
            let _ = sqs.delete_queue().queue_url(dlq).send().await;
        });
    }
}

/// The `detail` of a CloudTrail API call event as Secrets Manager records it.
pub fn api_call_detail(
    event_name: &str,
    secret_id: &str,
    arn: Option<&str>,
    region: &str,
) -> serde_json::Value {
    let mut response = json!({});
    if let Some(arn) = arn {
        response = json!({ "arn": arn });
    }
    json!({
        "eventVersion": "1.09",
        "userIdentity": { "type": "AssumedRole", "accountId": "123456789012" },
        "eventTime": jiff::Timestamp::now().to_string(),
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "secret-sync-tests",
        "requestParameters": { "secretId": secret_id },
        "responseElements": response,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
}
