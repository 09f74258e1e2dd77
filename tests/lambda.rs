//! The Lambda function, as Lambda runs it: the real `secret-sync-lambda` binary under AWS's
//! Lambda Runtime Interface Emulator ([`secret_sync_tests::lambda`]), syncing into the local
//! apiserver with values from moto. No controller runs here: whatever is written, the Lambda
//! wrote.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use secret_sync_crd::well_known::ANNOTATION_FORCE_SYNC;
use secret_sync_crd::{ConditionStatus, ExternalSecret, PushSecret, SecretStore};
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    apply, aws_store_object, aws_value, create_aws_secret, data_of, external_secret, moto,
    push_password, put_aws_secret, ready_of, wait_event,
};
use secret_sync_tests::identity::{service_account_token, write_kubeconfig_with_token};
use secret_sync_tests::lambda::{Answer, CLASS, Lambda, put_secret_value, sqs_record};
use secret_sync_tests::lambda_stack::{LambdaStack, template};
use secret_sync_tests::{Stack, install_crds, repo_root, scoped_namespace, unique_name};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Objects.

/// Marks a SecretStore Ready, as the controller's store reconciler does once it validated it
/// (no controller runs in these tests, and the engine's flood gate refuses unvalidated stores).
async fn mark_ready(client: &kube::Client, ns: &str, name: &str) {
    let status = json!({ "status": { "conditions": [{
        "type": "Ready", "status": "True", "reason": "Valid", "message": "store validated",
        "lastTransitionTime": jiff::Timestamp::now().to_string(),
    }] } });
    Api::<SecretStore>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("marking SecretStore {ns}/{name} ready: {e}"));
}

/// Stores' secret access keys are this, then the namespace.
const SECRET_KEY_PREFIX: &str = "s3cr3t-access-key-";

/// A SecretStore of [`CLASS`] reading moto with the credentials in the Secret `credentials`,
/// which is created unless `create_credentials` is false; marked Ready.
async fn store(
    client: &kube::Client,
    ns: &str,
    name: &str,
    credentials: &str,
    create_credentials: bool,
) {
    if create_credentials {
        create_credentials_secret(client, ns, credentials).await;
    }
    let mut object = aws_store_object(ns, name, credentials);
    object["spec"]["controller"] = json!(CLASS);
    apply(client, &object).await;
    mark_ready(client, ns, name).await;
}

/// A Secret with credentials for moto, as stores reference it. moto takes any key; this one is
/// unique, so that the logs can be searched for it.
async fn create_credentials_secret(client: &kube::Client, ns: &str, name: &str) {
    let stack = Stack::get().await;
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": ns },
        "stringData": {
            "access-key-id": stack.var("AWS_ACCESS_KEY_ID"),
            "secret-access-key": format!("{SECRET_KEY_PREFIX}{ns}"),
        }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &credentials)
        .await
        .expect("credentials Secret");
}

/// An ExternalSecret reading `key` into the Secret `name` (refreshes an hour away).
fn reader(ns: &str, name: &str, store: &str, key: &str) -> Value {
    external_secret(
        ns,
        name,
        json!({
            "refreshInterval": "1h",
            "secretStoreRef": { "name": store, "kind": "SecretStore" },
            "data": [{ "secretKey": "password", "remoteRef": { "key": key } }]
        }),
    )
}

async fn secret(client: &kube::Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get Secret")
}

fn password(secret: Option<&Secret>) -> Option<String> {
    secret.and_then(|s| data_of(s).get("password").cloned())
}

/// A value no other test or log line could contain by chance.
fn value(label: &str) -> String {
    unique_name(&format!("s3cr3t-{label}"))
}

/// A kubeconfig for a service account in `ns` with exactly the rights `infra/lambda/rbac.yaml`
/// gives `mode` (bound to the service account rather than the documented group), so the
/// function runs as it would in a cluster set up by that file. The guard deletes the
/// cluster-wide binding.
async fn lambda_identity(client: &kube::Client, ns: &str, mode: &str) -> (PathBuf, Cleanup) {
    let text = std::fs::read_to_string(repo_root().join("infra/lambda/rbac.yaml"))
        .expect("infra/lambda/rbac.yaml");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("RBAC YAML");
    let role_name = format!("secret-sync-lambda-{mode}");
    let mut role = documents
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == role_name.as_str())
        .unwrap_or_else(|| panic!("no ClusterRole {role_name}"));
    let name = format!("{ns}-lambda-{mode}");
    let guard = Cleanup::cluster_rbac(&name);
    role["metadata"]["name"] = json!(name);
    apply(client, &role).await;
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "lambda" } })).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &account)
        .await
        .expect("service account");
    apply(
        client,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": "lambda", "namespace": ns }]
        }),
    )
    .await;
    let token = service_account_token(client, ns, "lambda").await;
    let path = std::env::temp_dir().join(format!("{name}.kubeconfig"));
    write_kubeconfig_with_token(&token, &path);
    (path, guard)
}

/// A fresh namespace (deleted at the end) with the CRDs installed.
async fn namespace(prefix: &str) -> (kube::Client, String, Cleanup) {
    let client = Stack::get().await.kube().await;
    install_crds(&client).await;
    let (ns, guard) = scoped_namespace(&client, prefix, &[]).await;
    (client, ns, guard)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mode_writes_the_new_value_when_invoked_directly_by_an_eventbridge_rule() {
    let (client, ns, _ns) = namespace("lambda-push").await;
    let sm = moto().await;
    let key = unique_name("lambda/db");
    let (v1, v2, v3) = (value("v1"), value("v2"), value("v3"));
    create_aws_secret(&sm, &key, &v1, &[]).await;
    store(&client, &ns, "aws", "aws-credentials", true).await;
    apply(&client, &reader(&ns, "db", "aws", &key)).await;
    let (kubeconfig, _rbac) = lambda_identity(&client, &ns, "push").await;
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
    let mut lambda = Lambda::start(&[
        ("SECRET_SYNC_MODE", "push"),
        ("SECRET_SYNC_NAMESPACE", &ns),
        ("KUBECONFIG", kubeconfig),
    ])
    .await;

    put_aws_secret(&sm, &key, &v2).await;
    let answer = lambda.invoke(&put_secret_value(&key)).await;
    let Answer::Response(summary) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(summary["affected"], 1, "{summary}");
    assert_eq!(summary["done"], 1, "{summary}");
    // Answered after the write: the Secret holds the new value now, not eventually.
    let written = secret(&client, &ns, "db").await;
    assert_eq!(password(written.as_ref()), Some(v2.clone()));
    let manager = secret_sync::hash::field_manager("db");
    assert!(
        written
            .iter()
            .flat_map(|s| s.metadata.managed_fields.iter().flatten())
            .any(|m| m.manager.as_deref() == Some(manager.as_str())),
        "written under the controller's field manager {manager}"
    );
    let es = Api::<ExternalSecret>::namespaced(client.clone(), &ns)
        .get("db")
        .await
        .expect("ExternalSecret");
    assert_eq!(
        ready_of(&es).map(|c| c.status),
        Some(ConditionStatus::True),
        "the engine records the sync on the ExternalSecret as the controller does"
    );
    wait_event(&client, &ns, "db", "Created").await;

    // A second change updates the Secret the first invocation created.
    put_aws_secret(&sm, &key, &v3).await;
    let answer = lambda.invoke(&put_secret_value(&key)).await;
    assert!(matches!(answer, Answer::Response(_)), "{answer:?}");
    assert_eq!(
        password(secret(&client, &ns, "db").await.as_ref()),
        Some(v3.clone())
    );
    lambda.assert_logged_none_of(&[&v1, &v2, &v3, SECRET_KEY_PREFIX]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_batch_drops_poison_and_unread_records_and_applies_the_valid_one() {
    let (client, ns, _ns) = namespace("lambda-batch").await;
    let sm = moto().await;
    let key = unique_name("lambda/api");
    let unread = unique_name("lambda/nobody-reads-this");
    let (v1, v2, other) = (value("v1"), value("v2"), value("other"));
    create_aws_secret(&sm, &key, &v1, &[]).await;
    create_aws_secret(&sm, &unread, &other, &[]).await;
    store(&client, &ns, "aws", "aws-credentials", true).await;
    apply(&client, &reader(&ns, "api", "aws", &key)).await;
    let mut lambda = Lambda::start(&[("SECRET_SYNC_NAMESPACE", &ns)]).await;

    put_aws_secret(&sm, &key, &v2).await;
    let truncated = put_secret_value(&key).to_string();
    let batch = json!({ "Records": [
        sqs_record("m-valid", &put_secret_value(&key).to_string()),
        sqs_record("m-poison", &truncated[..truncated.len() / 2]),
        sqs_record("m-unread", &put_secret_value(&unread).to_string()),
    ]});
    let answer = lambda.invoke(&batch).await;
    let Answer::Response(response) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(
        password(secret(&client, &ns, "api").await.as_ref()),
        Some(v2.clone())
    );
    let logs = lambda.logs();
    assert!(
        logs.contains("records=3") && logs.contains("malformed=1") && logs.contains("affected=1"),
        "the invocation's counts are logged:\n{logs}"
    );
    lambda.assert_logged_none_of(&[&v1, &v2, &other, SECRET_KEY_PREFIX]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_sync_fails_retryably_is_listed_for_redelivery_and_succeeds_later() {
    let (client, ns, _ns) = namespace("lambda-retry").await;
    let sm = moto().await;
    let (broken_key, good_key) = (unique_name("lambda/broken"), unique_name("lambda/good"));
    let (b1, g1) = (value("broken"), value("good"));
    create_aws_secret(&sm, &broken_key, &b1, &[]).await;
    create_aws_secret(&sm, &good_key, &g1, &[]).await;
    store(&client, &ns, "aws", "aws-credentials", true).await;
    // A store whose credentials Secret does not exist (yet): GitOps may apply it any moment.
    store(&client, &ns, "late", "late-credentials", false).await;
    apply(&client, &reader(&ns, "broken", "late", &broken_key)).await;
    apply(&client, &reader(&ns, "good", "aws", &good_key)).await;
    let mut lambda = Lambda::start(&[("SECRET_SYNC_NAMESPACE", &ns)]).await;

    let broken_event = put_secret_value(&broken_key).to_string();
    let batch = json!({ "Records": [
        sqs_record("m-broken", &broken_event),
        sqs_record("m-good", &put_secret_value(&good_key).to_string()),
    ]});
    let answer = lambda.invoke(&batch).await;
    let Answer::Response(response) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(
        response,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m-broken" }] })
    );
    assert_eq!(
        password(secret(&client, &ns, "good").await.as_ref()),
        Some(g1.clone())
    );
    assert!(secret(&client, &ns, "broken").await.is_none());

    // The credentials appear; SQS redelivers the message, and now it syncs.
    create_credentials_secret(&client, &ns, "late-credentials").await;
    let answer = lambda
        .invoke(&json!({ "Records": [sqs_record("m-broken", &broken_event)] }))
        .await;
    let Answer::Response(response) = answer else {
        panic!("the redelivery failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(
        password(secret(&client, &ns, "broken").await.as_ref()),
        Some(b1.clone())
    );

    // Invoked directly, the same failure is the invocation's error, for Lambda to retry.
    store(&client, &ns, "missing", "missing-credentials", false).await;
    apply(&client, &reader(&ns, "broken-too", "missing", &broken_key)).await;
    let mut answer = lambda.invoke(&put_secret_value(&broken_key)).await;
    // The new store may reach the cache a moment after the invocation started.
    for _ in 0..20 {
        if matches!(answer, Answer::Error(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = lambda.invoke(&put_secret_value(&broken_key)).await;
    }
    let Answer::Error(error) = answer else {
        panic!("a retryable failure is an error: {answer:?}")
    };
    assert_eq!(error["errorType"], "SecretSync.SyncFailed", "{error}");
    lambda.assert_logged_none_of(&[&b1, &g1, SECRET_KEY_PREFIX]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_for_a_store_not_ready_yet_waits_for_it_instead_of_being_retried() {
    let (client, ns, _ns) = namespace("lambda-store-wait").await;
    let sm = moto().await;
    let (fresh_key, failing_key) = (unique_name("lambda/fresh"), unique_name("lambda/failing"));
    let (fresh, failing) = (value("fresh"), value("failing"));
    create_aws_secret(&sm, &fresh_key, &fresh, &[]).await;
    create_aws_secret(&sm, &failing_key, &failing, &[]).await;
    // Two stores as GitOps leaves them for a moment: one not validated yet (no status), one
    // validated and failing (Ready=False).
    create_credentials_secret(&client, &ns, "aws-credentials").await;
    for name in ["fresh", "failing"] {
        let mut object = aws_store_object(&ns, name, "aws-credentials");
        object["spec"]["controller"] = json!(CLASS);
        apply(&client, &object).await;
    }
    let not_ready = json!({ "status": { "conditions": [{
        "type": "Ready", "status": "False", "reason": "InvalidProviderConfig",
        "message": "credentials not found", "lastTransitionTime": jiff::Timestamp::now().to_string(),
    }] } });
    Api::<SecretStore>::namespaced(client.clone(), &ns)
        .patch_status(
            "failing",
            &PatchParams::default(),
            &Patch::Merge(&not_ready),
        )
        .await
        .expect("store status");
    apply(&client, &reader(&ns, "fresh", "fresh", &fresh_key)).await;
    apply(&client, &reader(&ns, "failing", "failing", &failing_key)).await;
    let mut lambda = Lambda::start(&[("SECRET_SYNC_NAMESPACE", &ns)]).await;

    let batch = json!({ "Records": [
        sqs_record("m-fresh", &put_secret_value(&fresh_key).to_string()),
        sqs_record("m-failing", &put_secret_value(&failing_key).to_string()),
    ]});
    let invocation = lambda.queue(&batch);
    // The invocation is under way, its changes waiting; the stores turn Ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(secret(&client, &ns, "fresh").await.is_none());
    assert!(secret(&client, &ns, "failing").await.is_none());
    mark_ready(&client, &ns, "fresh").await;
    mark_ready(&client, &ns, "failing").await;
    let answered = lambda.answer(invocation).await;
    let Answer::Response(response) = answered.answer else {
        panic!(
            "the invocation failed: {:?}\n{}",
            answered.answer,
            lambda.logs()
        )
    };
    // Nothing is left to a redelivery.
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(
        password(secret(&client, &ns, "fresh").await.as_ref()),
        Some(fresh.clone())
    );
    assert_eq!(
        password(secret(&client, &ns, "failing").await.as_ref()),
        Some(failing.clone())
    );
    lambda.assert_logged_none_of(&[&fresh, &failing, SECRET_KEY_PREFIX]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nudge_mode_annotates_the_readers_and_writes_no_secret() {
    let (client, ns, _ns) = namespace("lambda-nudge").await;
    let sm = moto().await;
    let key = unique_name("lambda/nudged");
    let v1 = value("v1");
    create_aws_secret(&sm, &key, &v1, &[]).await;
    store(&client, &ns, "aws", "aws-credentials", true).await;
    apply(&client, &reader(&ns, "nudged", "aws", &key)).await;
    apply(
        &client,
        &reader(&ns, "bystander", "aws", &unique_name("lambda/other")),
    )
    .await;
    let (kubeconfig, _rbac) = lambda_identity(&client, &ns, "nudge").await;
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
    let mut lambda = Lambda::start(&[
        ("SECRET_SYNC_MODE", "nudge"),
        ("SECRET_SYNC_NAMESPACE", &ns),
        ("KUBECONFIG", kubeconfig),
    ])
    .await;

    let event = put_secret_value(&key);
    let answer = lambda.invoke(&event).await;
    let Answer::Response(summary) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(summary["affected"], 1, "{summary}");
    let api = Api::<ExternalSecret>::namespaced(client.clone(), &ns);
    let nudged = api.get("nudged").await.expect("ExternalSecret");
    let event_id = event["id"].as_str().expect("id");
    assert_eq!(
        nudged
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_FORCE_SYNC)),
        Some(&event_id.to_owned())
    );
    assert!(
        nudged
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("secret-sync-lambda")),
        "the annotation is the Lambda's"
    );
    let bystander = api.get("bystander").await.expect("ExternalSecret");
    assert!(
        bystander
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(ANNOTATION_FORCE_SYNC))
    );
    assert!(
        secret(&client, &ns, "nudged").await.is_none(),
        "the Lambda writes no Secret in nudge mode (and no controller runs here)"
    );
    assert!(nudged.status.is_none(), "nor any status");

    // The same event again (SQS and EventBridge deliver at least once): no new write.
    let before = nudged.metadata.resource_version.clone();
    let answer = lambda
        .invoke(&json!({ "Records": [sqs_record("m-dup", &event.to_string())] }))
        .await;
    assert!(
        matches!(&answer, Answer::Response(r) if r == &json!({ "batchItemFailures": [] })),
        "{answer:?}"
    );
    let after = api.get("nudged").await.expect("ExternalSecret");
    assert_eq!(after.metadata.resource_version, before);
    lambda.assert_logged_none_of(&[&v1]);
}

// ---------------------------------------------------------------------------------------------
// infra/lambda/template.yaml

/// The stack `infra/lambda/template.yaml` makes, deployed to moto: the rule sends Secrets
/// Manager events to the queue, the queue feeds the function with `ReportBatchItemFailures` and
/// a dead-letter queue; and the function, run with the environment the stack gave it, syncs an
/// event that took that route (moto runs no function: the test hands the queued message over as
/// the event source mapping would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudformation_stack_routes_secrets_manager_events_through_its_queue_to_the_function()
{
    let (client, ns, _ns) = namespace("lambda-cfn").await;
    let (kubeconfig, _rbac) = lambda_identity(&client, &ns, "push").await;
    let clusters = json!([{ "name": "local", "kubeconfig": kubeconfig }]).to_string();
    let name = unique_name("secret-sync-cfn");
    let deployed = LambdaStack::deploy(
        &name,
        &[
            ("Delivery", "sqs"),
            ("Mode", "push"),
            ("Clusters", &clusters),
            ("Namespace", &ns),
            ("ControllerClass", CLASS),
            ("LogLevel", "debug"),
        ],
    )
    .await;
    let aws = Stack::get().await.aws().await;
    let (events, sqs, lambda_api) = (
        aws_sdk_eventbridge::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
        aws_sdk_lambda::Client::new(&aws),
    );
    let queue_url = deployed.output("QueueUrl").to_owned();
    let attribute = |names: &[aws_sdk_sqs::types::QueueAttributeName]| {
        let (sqs, url) = (sqs.clone(), queue_url.clone());
        let names = names.to_vec();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .set_attribute_names(Some(names))
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .unwrap_or_default()
        }
    };
    use aws_sdk_sqs::types::QueueAttributeName as Q;
    let queue = attribute(&[Q::QueueArn, Q::RedrivePolicy, Q::VisibilityTimeout]).await;
    let queue_arn = queue[&Q::QueueArn].clone();

    // The rule: the three families of Secrets Manager events and Parameter Store's changes, to
    // the queue.
    let rule = deployed
        .output("RuleArn")
        .rsplit('/')
        .next()
        .expect("rule name");
    let described = events
        .describe_rule()
        .name(rule)
        .send()
        .await
        .expect("rule");
    let pattern: Value =
        serde_json::from_str(described.event_pattern().expect("pattern")).expect("JSON pattern");
    assert_eq!(
        pattern,
        json!({ "$or": [
            { "source": ["aws.secretsmanager"], "detail-type": [
                "AWS API Call via CloudTrail", "AWS Service Event via CloudTrail", "Secret Label Updated"
            ] },
            { "source": ["aws.ssm"], "detail-type": ["Parameter Store Change"] }
        ] })
    );
    let targets = rule_targets(&events, rule).await;
    assert_eq!(
        targets.iter().map(|t| t.arn()).collect::<Vec<_>>(),
        [queue_arn.as_str()]
    );

    // The queue: redelivery, then the dead-letter queue; the mapping reports item failures.
    let redrive: Value = serde_json::from_str(&queue[&Q::RedrivePolicy]).expect("redrive");
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!("{name}-dlq"))),
        "{redrive}"
    );
    assert_eq!(queue[&Q::VisibilityTimeout], "360");
    let mappings = lambda_api
        .list_event_source_mappings()
        .function_name(&name)
        .send()
        .await
        .expect("event source mappings")
        .event_source_mappings
        .unwrap_or_default();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0].event_source_arn(), Some(queue_arn.as_str()));
    assert_eq!(
        mappings[0].function_response_types(),
        [aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures]
    );
    let function = lambda_api
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .expect("function");
    assert_eq!(
        function.runtime(),
        Some(&aws_sdk_lambda::types::Runtime::Providedal2023)
    );
    assert_eq!(function.handler(), Some("bootstrap"));
    let environment: Vec<(String, String)> = function
        .environment()
        .and_then(|e| e.variables())
        .expect("environment")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // An event another family would carry is not routed; a PutSecretValue is.
    let sm = moto().await;
    let key = unique_name("cfn/db");
    let (v1, v2) = (value("v1"), value("v2"));
    create_aws_secret(&sm, &key, &v1, &[]).await;
    store(&client, &ns, "aws", "aws-credentials", true).await;
    apply(&client, &reader(&ns, "db", "aws", &key)).await;
    put_aws_secret(&sm, &key, &v2).await;
    let event = put_secret_value(&key);
    for detail_type in [
        "Some Other Secrets Manager Event",
        "AWS API Call via CloudTrail",
    ] {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("aws.secretsmanager")
            .detail_type(detail_type)
            .detail(event["detail"].to_string())
            .build();
        let out = events
            .put_events()
            .entries(entry)
            .send()
            .await
            .expect("put events");
        assert_eq!(out.failed_entry_count, 0);
    }
    let mut routed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while routed.is_empty() && tokio::time::Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        routed.extend(received.messages.unwrap_or_default());
    }
    // Other tests' events (the rule takes every Secrets Manager event on the bus) are not ours.
    // Delivery is at least once: a PutEvents the SDK retried after a dropped connection arrives
    // twice, as it may on AWS. What matters is that every copy is the routed family's; the other
    // event went on the bus first, so had it been routed it would be here too.
    let ours: Vec<_> = routed
        .iter()
        .filter(|m| m.body().is_some_and(|b| b.contains(&key)))
        .collect();
    assert!(!ours.is_empty(), "routed: {routed:?}");
    for message in &ours {
        let routed_event: Value =
            serde_json::from_str(message.body().expect("body")).expect("the event as the body");
        assert_eq!(
            routed_event["detail-type"], "AWS API Call via CloudTrail",
            "routed: {routed:?}"
        );
    }
    let body = ours[0].body().expect("body");

    let env: Vec<(&str, &str)> = environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut lambda = Lambda::start(&env).await;
    let batch = json!({ "Records": [sqs_record(ours[0].message_id().expect("id"), body)] });
    let answer = lambda.invoke(&batch).await;
    let Answer::Response(response) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(
        password(secret(&client, &ns, "db").await.as_ref()),
        Some(v2)
    );
    lambda.assert_logged_none_of(&[&v1]);
}

/// `Delivery=direct`: the rule targets the function itself, retries for a day and then writes
/// to the dead-letter queue; the function lets EventBridge invoke it for that rule alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_delivery_stack_targets_the_function_with_retries_and_a_dead_letter_queue() {
    let name = unique_name("secret-sync-direct");
    let deployed = LambdaStack::deploy(
        &name,
        &[
            ("Delivery", "direct"),
            ("Mode", "nudge"),
            ("Clusters", r#"[{"name":"ambient"}]"#),
        ],
    )
    .await;
    assert!(
        !deployed.outputs.contains_key("QueueUrl"),
        "{:?}",
        deployed.outputs
    );
    let aws = Stack::get().await.aws().await;
    let events = aws_sdk_eventbridge::Client::new(&aws);
    let rule_arn = deployed.output("RuleArn");
    let rule = rule_arn.rsplit('/').next().expect("rule name");
    let targets = rule_targets(&events, rule).await;
    assert_eq!(targets.len(), 1, "{targets:?}");
    let target = &targets[0];
    assert_eq!(target.arn(), deployed.output("FunctionArn"));
    let retry = target.retry_policy().expect("retry policy");
    assert_eq!(
        (
            retry.maximum_retry_attempts(),
            retry.maximum_event_age_in_seconds()
        ),
        (Some(185), Some(86400))
    );
    let dead_letter = target
        .dead_letter_config()
        .and_then(|d| d.arn())
        .expect("dead-letter queue");
    assert!(
        dead_letter.ends_with(&format!("{name}-dlq")),
        "{dead_letter}"
    );

    let lambda_api = aws_sdk_lambda::Client::new(&aws);
    let policy: Value = serde_json::from_str(
        lambda_api
            .get_policy()
            .function_name(&name)
            .send()
            .await
            .expect("resource policy")
            .policy()
            .expect("policy"),
    )
    .expect("JSON policy");
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(statement["Action"], "lambda:InvokeFunction");
    assert_eq!(
        statement["Condition"]["ArnLike"]["AWS:SourceArn"], rule_arn,
        "{policy}"
    );
    let mappings = lambda_api
        .list_event_source_mappings()
        .function_name(&name)
        .send()
        .await
        .expect("event source mappings")
        .event_source_mappings
        .unwrap_or_default();
    assert!(mappings.is_empty(), "{mappings:?}");
}

async fn rule_targets(
    events: &aws_sdk_eventbridge::Client,
    rule: &str,
) -> Vec<aws_sdk_eventbridge::types::Target> {
    events
        .list_targets_by_rule()
        .rule(rule)
        .send()
        .await
        .expect("targets")
        .targets
        .unwrap_or_default()
}

/// What moto does not implement, read from the template: EventBridge may write to the queues
/// only for this stack's rule, and with direct delivery it may invoke the function, which
/// retries twice and then hands the event to the dead-letter queue.
#[test]
fn the_template_lets_only_its_rule_write_to_its_queues_and_invoke_its_function() {
    let template = template();
    let resources = &template["Resources"];
    let rule_arn = json!({ "Fn::GetAtt": ["Rule", "Arn"] });
    for (policy, queue, condition) in [
        ("QueuePolicy", "Queue", json!("ViaQueue")),
        // The rule's dead-letter queue, whatever the delivery.
        ("DeadLetterQueuePolicy", "DeadLetterQueue", Value::Null),
    ] {
        let policy = &resources[policy];
        assert_eq!(policy["Condition"], condition);
        let statement = &policy["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
        assert_eq!(statement["Action"], "sqs:SendMessage");
        assert_eq!(
            statement["Resource"],
            json!({ "Fn::GetAtt": [queue, "Arn"] })
        );
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            rule_arn
        );
    }
    let permission = &resources["InvokePermission"]["Properties"];
    assert_eq!(permission["Principal"], "events.amazonaws.com");
    assert_eq!(permission["SourceArn"], rule_arn);
    let retries = &resources["AsyncInvokeConfig"]["Properties"];
    assert_eq!(retries["MaximumRetryAttempts"], 2);
    assert_eq!(
        retries["DestinationConfig"]["OnFailure"]["Destination"],
        json!({ "Fn::GetAtt": ["DeadLetterQueue", "Arn"] })
    );
    // No target carries a role (EventBridge writes to SQS under the queue's policy), and each
    // has the dead-letter queue for what it cannot deliver.
    let targets = &resources["Rule"]["Properties"]["Targets"]["Fn::If"];
    for branch in [&targets[1], &targets[2]] {
        assert!(branch[0].get("RoleArn").is_none(), "{branch}");
        assert_eq!(
            branch[0]["DeadLetterConfig"]["Arn"],
            json!({ "Fn::GetAtt": ["DeadLetterQueue", "Arn"] })
        );
    }
    // Lambda checks the role's rights when these are created, so they wait for the policies.
    assert_eq!(
        resources["EventSourceMapping"]["DependsOn"],
        "ConsumeQueuePolicy"
    );
    assert_eq!(
        resources["AsyncInvokeConfig"]["DependsOn"],
        "DirectDeadLetterPolicy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mode_pushes_a_push_secret_again_when_its_pushed_secret_changes() {
    let (client, ns, _ns) = namespace("lambda-pushsecret").await;
    let sm = moto().await;
    let key = unique_name("lambda/pushed");
    let (ours, theirs) = (value("ours"), value("theirs"));
    store(&client, &ns, "aws", "aws-credentials", true).await;
    push_password(&client, &ns, "source", &ours, &key).await;
    // Pushed once already (no controller runs here: its status is written as it would write
    // it), and then changed at the provider by someone else.
    let entry = json!({ "match": { "secretKey": "password", "remoteRef": { "remoteKey": key } } });
    Api::<PushSecret>::namespaced(client.clone(), &ns)
        .patch_status(
            "push",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": {
                "syncedPushSecrets": { "SecretStore/aws": { key.clone(): entry } }
            } })),
        )
        .await
        .expect("PushSecret status");
    create_aws_secret(&sm, &key, &theirs, &[("managed-by", "external-secrets")]).await;

    let (kubeconfig, _rbac) = lambda_identity(&client, &ns, "push").await;
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
    let mut lambda = Lambda::start(&[
        ("SECRET_SYNC_MODE", "push"),
        ("SECRET_SYNC_NAMESPACE", &ns),
        ("KUBECONFIG", kubeconfig),
    ])
    .await;
    let answer = lambda.invoke(&put_secret_value(&key)).await;
    let Answer::Response(summary) = answer else {
        panic!("the invocation failed: {answer:?}\n{}", lambda.logs())
    };
    assert_eq!(summary["affected"], 1, "{summary}\n{}", lambda.logs());
    assert_eq!(summary["done"], 1, "{summary}\n{}", lambda.logs());
    // Answered after the push: the provider holds the cluster's value again.
    assert_eq!(aws_value(&sm, &key).await, Some(ours.clone()));
    let ps = Api::<PushSecret>::namespaced(client.clone(), &ns)
        .get("push")
        .await
        .expect("PushSecret");
    let ready = ps
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status);
    assert_eq!(ready, Some(ConditionStatus::True), "the pass is recorded");
    let logs = lambda.logs();
    assert!(
        !logs.contains(&ours) && !logs.contains(&theirs),
        "no value in the logs"
    );
}
