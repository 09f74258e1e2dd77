//! `infra/lambda/template.yaml` deployed to moto's CloudFormation, as `aws cloudformation deploy`
//! would deploy it to an account. moto creates what the template declares (function, role and
//! policies, queues, rule and targets, event source mapping, permission) and routes events on its
//! bus through the rule; it runs no function, so tests run the binary themselves with the
//! environment the stack gave it. It skips resource types it does not implement (the queue
//! policies, the asynchronous invocation settings); tests check those in the template itself.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client as CloudFormation;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use aws_sdk_eventbridge::Client as EventBridge;
use aws_sdk_sqs::Client as Sqs;

use crate::{Stack, repo_root};

/// The function code's key in its bucket (a bucket per stack, named as the stack).
const CODE_KEY: &str = "secret-sync-lambda.zip";

/// A deployed stack; deleted when dropped, with its rule and queues.
pub struct LambdaStack {
    pub name: String,
    pub outputs: BTreeMap<String, String>,
}

/// The template, as a value (for the checks moto cannot make).
pub fn template() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("infra/lambda/template.yaml"))
        .expect("infra/lambda/template.yaml");
    serde_saphyr::from_str(&text).expect("the template is plain YAML")
}

/// An S3 client for moto. moto checks no signature but tells callers apart by their credential
/// (a request without one is anonymous, and may not delete objects), so a made-up SigV4 header
/// naming the access key does; the AWS SDK's S3 crate is not worth its build for three calls.
fn s3(stack: &Stack) -> reqwest::Client {
    let credential = format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/{}/s3/aws4_request, SignedHeaders=host, \
         Signature=00",
        stack.var("AWS_ACCESS_KEY_ID"),
        stack.var("AWS_REGION")
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        credential.parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Puts a stand-in zip where the stack's `CodeBucket`/`CodeKey` point, in a new bucket (moto
/// stores the code and never runs it).
async fn upload_code(bucket: &str) {
    let stack = Stack::get().await;
    let endpoint = stack.var("AWS_ENDPOINT_URL");
    let http = s3(stack);
    // An empty zip archive: the end-of-central-directory record alone.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0);
    for (what, request) in [
        (
            "create the code bucket",
            http.put(format!("{endpoint}/{bucket}")),
        ),
        (
            "upload the code",
            http.put(format!("{endpoint}/{bucket}/{CODE_KEY}"))
                .body(zip),
        ),
    ] {
        let answer = request.send().await.expect(what);
        assert!(answer.status().is_success(), "{what}: {}", answer.status());
    }
}

impl LambdaStack {
    /// Creates the stack `name` (also the function's and the code bucket's name: lower case,
    /// at most 63 characters) with `parameters` besides the code's location, and waits until it
    /// is complete.
    pub async fn deploy(name: &str, parameters: &[(&str, &str)]) -> Self {
        upload_code(name).await;
        let aws = Stack::get().await.aws().await;
        let cloudformation = CloudFormation::new(&aws);
        let body = std::fs::read_to_string(repo_root().join("infra/lambda/template.yaml"))
            .expect("template");
        let mut create = cloudformation
            .create_stack()
            .stack_name(name)
            .template_body(body)
            .capabilities(Capability::CapabilityIam);
        let given = [
            ("CodeBucket", name),
            ("CodeKey", CODE_KEY),
            ("FunctionName", name),
        ];
        for (key, value) in given.iter().chain(parameters) {
            create = create.parameters(
                Parameter::builder()
                    .parameter_key(*key)
                    .parameter_value(*value)
                    .build(),
            );
        }
        create.send().await.expect("create stack");
        let mut deployed = Self {
            name: name.to_owned(),
            outputs: BTreeMap::new(),
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let stack = cloudformation
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .expect("describe stack")
                .stacks
                .unwrap_or_default()
                .into_iter()
                .next()
                .expect("the stack");
            match stack.stack_status() {
                Some(StackStatus::CreateComplete) => {
                    deployed.outputs = stack
                        .outputs()
                        .iter()
                        .filter_map(|o| {
                            Some((o.output_key()?.to_owned(), o.output_value()?.to_owned()))
                        })
                        .collect();
                    return deployed;
                }
                Some(StackStatus::CreateInProgress) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                status => panic!(
                    "stack {name}: {status:?} ({:?})",
                    stack.stack_status_reason()
                ),
            }
        }
    }

    pub fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("no output {key} in {:?}", self.outputs))
    }
}

impl Drop for LambdaStack {
    /// Deletes the stack, then its rule and queues by name in case moto left them (a rule left
    /// behind would route every later event to a queue nobody reads). As with
    /// [`crate::cleanup::Cleanup`], through [`crate::Stack::clean_up`].
    fn drop(&mut self) {
        let (name, outputs) = (self.name.clone(), self.outputs.clone());
        Stack::clean_up(move |stack| async move {
            let aws = stack.aws().await;
            let _ = CloudFormation::new(&aws)
                .delete_stack()
                .stack_name(&name)
                .send()
                .await;
            let events = EventBridge::new(&aws);
            if let Some(rule) = outputs.get("RuleArn").and_then(|a| a.rsplit('/').next()) {
                for id in ["queue", "function"] {
                    let _ = events.remove_targets().rule(rule).ids(id).send().await;
                }
                let _ = events.delete_rule().name(rule).send().await;
            }
            let endpoint = stack.var("AWS_ENDPOINT_URL");
            let http = s3(stack);
            let _ = http
                .delete(format!("{endpoint}/{name}/{CODE_KEY}"))
                .send()
                .await;
            let _ = http.delete(format!("{endpoint}/{name}")).send().await;
            let sqs = Sqs::new(&aws);
            for key in ["QueueUrl", "DeadLetterQueueUrl"] {
                if let Some(url) = outputs.get(key) {
                    let _ = sqs.delete_queue().queue_url(url).send().await;
                }
            }
        });
    }
}
