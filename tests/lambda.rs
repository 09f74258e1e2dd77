//! The Lambda function, as Lambda runs it: the real `secret-sync-lambda` binary polls a Lambda
//! Runtime API served by this test, and syncs into the local apiserver with values from moto.
//! No controller runs here: whatever is written, the Lambda wrote.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use secret_sync_crd::well_known::ANNOTATION_FORCE_SYNC;
use secret_sync_crd::{ConditionStatus, ExternalSecret, SecretStore};
use secret_sync_tests::aws_events::api_call_detail;
use secret_sync_tests::cleanup::Cleanup;
use secret_sync_tests::controller::{
    apply, aws_store_object, create_aws_secret, data_of, external_secret, moto, put_aws_secret,
    ready_of,
};
use secret_sync_tests::{Stack, install_crds, repo_root, scoped_namespace, unique_name};
use serde_json::{Value, json};
use tokio::sync::{Notify, OnceCell, oneshot};

/// How long one invocation may take, first one (cold caches) included.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// A Lambda Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

/// What the function answered to one invocation.
#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct RuntimeState {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_errors: Mutex<Vec<Value>>,
}

async fn next(State(state): State<Arc<RuntimeState>>) -> impl IntoResponse {
    loop {
        let notified = state.queued.notified();
        let item = state.queue.lock().expect("queue").pop_front();
        if let Some((id, event)) = item {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                + INVOKE_TIMEOUT;
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().expect("id"));
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string().parse().expect("ms"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:secret-sync"
                    .parse()
                    .expect("arn"),
            );
            headers.insert("content-type", "application/json".parse().expect("ct"));
            return (headers, event.to_string());
        }
        notified.await;
    }
}

fn answered(state: &RuntimeState, id: &str, answer: Answer) -> StatusCode {
    match state.waiting.lock().expect("waiting").remove(id) {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    answered(&state, &id, Answer::Response(value))
}

async fn error(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    answered(&state, &id, Answer::Error(value))
}

async fn init_error(State(state): State<Arc<RuntimeState>>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    state.init_errors.lock().expect("init errors").push(value);
    StatusCode::ACCEPTED
}

/// The binary, built for this test run's profile if needed (once per test process).
async fn lambda_binary() -> &'static PathBuf {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY
        .get_or_init(|| async {
            if let Some(path) = std::env::var_os("SECRET_SYNC_LAMBDA_BIN") {
                return PathBuf::from(path);
            }
            // <target>/<profile>/deps/lambda-<hash> → <target>/<profile>/secret-sync-lambda
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile>/deps")
                .to_path_buf();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = tokio::process::Command::new(cargo);
            build
                .args([
                    "build",
                    "-p",
                    "secret-sync-lambda",
                    "--bin",
                    "secret-sync-lambda",
                ])
                .current_dir(repo_root());
            if release {
                build.arg("--release");
            }
            let status = build.status().await.expect("running cargo build");
            assert!(status.success(), "building secret-sync-lambda failed");
            let binary = profile_dir.join("secret-sync-lambda");
            assert!(binary.exists(), "{} not found", binary.display());
            binary
        })
        .await
}

/// The function, running: the binary polling this test's Runtime API.
struct Lambda {
    state: Arc<RuntimeState>,
    child: tokio::process::Child,
    stderr: PathBuf,
    server: tokio::task::JoinHandle<()>,
    counter: usize,
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
        if std::env::var_os("SECRET_SYNC_KEEP_TEST_OBJECTS").is_none() {
            let _ = std::fs::remove_file(&self.stderr);
        }
    }
}

impl Lambda {
    /// Starts the function with `SECRET_SYNC_*` settings `env`, against the local stack.
    async fn start(env: &[(&str, &str)]) -> Self {
        let stack = Stack::get().await;
        let state = Arc::new(RuntimeState::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let stderr = std::env::temp_dir().join(format!("{}.stderr", unique_name("lambda")));
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let mut command = tokio::process::Command::new(lambda_binary().await);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "secret-sync")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/secret-sync")
            // As verbose as it gets: no level may leak a value.
            .env("RUST_LOG", "debug")
            .env("KUBECONFIG", stack.var("KUBECONFIG"))
            .env("AWS_ENDPOINT_URL", stack.var("AWS_ENDPOINT_URL"))
            .env("AWS_REGION", stack.var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", stack.var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", stack.var("AWS_SECRET_ACCESS_KEY"))
            .env("SECRET_SYNC_CONTROLLER_CLASS", CLASS)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let child = command.spawn().expect("start secret-sync-lambda");
        Self {
            state,
            child,
            stderr,
            server,
            counter: 0,
        }
    }

    /// Invokes the function with `event` and waits for its answer.
    async fn invoke(&mut self, event: &Value) -> Answer {
        self.counter += 1;
        let id = format!("req-{}", self.counter);
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .expect("waiting")
            .insert(id.clone(), tx);
        self.state
            .queue
            .lock()
            .expect("queue")
            .push_back((id, event.clone()));
        self.state.queued.notify_waiters();
        match tokio::time::timeout(INVOKE_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => panic!(
                "no answer within {INVOKE_TIMEOUT:?}; exited: {:?}; init errors: {:?}; stderr:\n{}",
                self.child.try_wait(),
                self.state.init_errors.lock().expect("init errors"),
                self.logs()
            ),
        }
    }

    /// What the function has logged so far.
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Asserts that nothing the function logged contains any of `values`.
    fn assert_logged_none_of(&self, values: &[&str]) {
        let logs = self.logs();
        assert!(
            logs.contains("invocation handled"),
            "the function logs its invocations:\n{logs}"
        );
        for value in values {
            assert!(
                !logs.contains(value),
                "a secret value reached the logs:\n{logs}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events and objects.

/// A `PutSecretValue` EventBridge event for `secret_id`, as a rule delivers it.
fn put_secret_value(secret_id: &str) -> Value {
    let region = Stack::started().expect("stack").var("AWS_REGION");
    json!({
        "version": "0",
        "id": unique_name("event"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": "123456789012",
        "time": jiff::Timestamp::now().to_string(),
        "region": region,
        "resources": [],
        "detail": api_call_detail("PutSecretValue", secret_id, None, region),
    })
}

/// A Lambda SQS record carrying `body`.
fn sqs_record(message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1", "SentTimestamp": "1741946538000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1741946538000"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:secret-sync-events",
        "awsRegion": "us-east-1"
    })
}

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

/// The controller class of the tests' stores. A controller of the default class (another test
/// binary's, or a benchmark's, watching every namespace of the shared stack) leaves them alone,
/// so whatever touches them here is the Lambda, configured with this class.
const CLASS: &str = "lambda-tests";

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
    let mut lambda =
        Lambda::start(&[("SECRET_SYNC_MODE", "push"), ("SECRET_SYNC_NAMESPACE", &ns)]).await;

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
    let mut lambda = Lambda::start(&[
        ("SECRET_SYNC_MODE", "nudge"),
        ("SECRET_SYNC_NAMESPACE", &ns),
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
