//! The Lambda function, as Lambda runs it: a Lambda Runtime API served in this process
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), and the real
//! `secret-sync-lambda` binary polling it. Tests and benchmarks queue invocations and read the
//! answers; the function syncs into the local apiserver with values from moto.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, OnceCell, oneshot};

use crate::aws_events::api_call_detail;
use crate::{Stack, repo_root, unique_name};

/// How long one invocation may take, first one (cold caches) included; also the deadline the
/// Runtime API gives the function.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The controller class the function serves unless told otherwise (`SECRET_SYNC_CONTROLLER_CLASS`
/// in the `env` of [`Lambda::start`]). A controller of the default class (another test binary's,
/// or a benchmark's, watching every namespace of the shared stack) leaves stores of this class
/// alone, so whatever touches them is the Lambda.
pub const CLASS: &str = "lambda-tests";

/// What the function answered to one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(Value),
    Error(Value),
}

/// An answer with the times the Runtime API saw its invocation pass.
#[derive(Debug)]
pub struct Answered {
    pub answer: Answer,
    /// Queued at the Runtime API ([`Lambda::queue`]).
    pub queued: Instant,
    /// Handed to the function, in the answer to its `next` poll.
    pub delivered: Option<Instant>,
    /// The function posted its response (or error).
    pub answered: Instant,
}

/// An invocation queued at the Runtime API, not yet answered.
#[derive(Debug)]
pub struct Invocation {
    pub id: String,
    /// When it was queued: the moment it was handed over to Lambda.
    pub queued: Instant,
    rx: oneshot::Receiver<(Answer, Instant)>,
}

#[derive(Default)]
struct RuntimeState {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<(Answer, Instant)>>>,
    delivered: Mutex<HashMap<String, Instant>>,
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
            state
                .delivered
                .lock()
                .expect("delivered")
                .insert(id, Instant::now());
            return (headers, event.to_string());
        }
        notified.await;
    }
}

fn answered(state: &RuntimeState, id: &str, answer: Answer) -> StatusCode {
    let at = Instant::now();
    match state.waiting.lock().expect("waiting").remove(id) {
        Some(tx) => {
            let _ = tx.send((answer, at));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    answered(&state, &id, Answer::Response(value))
}

async fn error(
    State(state): State<Arc<RuntimeState>>,
    UrlPath(id): UrlPath<String>,
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

/// The `secret-sync-lambda` binary (once per process): `SECRET_SYNC_LAMBDA_BIN` if set, else
/// the one in this executable's profile directory. A test binary (`<target>/<profile>/deps/
/// <name>-<hash>`) builds it for its profile first; a benchmark binary (`<target>/<profile>/
/// <name>`) expects it built, as it expects the controller.
pub async fn binary() -> &'static PathBuf {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY
        .get_or_init(|| async {
            if let Some(path) = std::env::var_os("SECRET_SYNC_LAMBDA_BIN") {
                return PathBuf::from(path);
            }
            let exe = std::env::current_exe().expect("current exe");
            let dir = exe.parent().expect("the executable's directory");
            let in_deps = dir.file_name().is_some_and(|n| n == "deps");
            let profile_dir = if in_deps {
                dir.parent().expect("target/<profile>/deps")
            } else {
                dir
            };
            let binary = profile_dir.join("secret-sync-lambda");
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            if in_deps {
                build(release).await;
            }
            assert!(
                binary.exists(),
                "{} not found: build it first (cargo build {}-p secret-sync-lambda --bin secret-sync-lambda)",
                binary.display(),
                if release { "--release " } else { "" }
            );
            binary
        })
        .await
}

async fn build(release: bool) {
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
}

/// The function, running: the binary polling this process's Runtime API. Stopped when dropped.
pub struct Lambda {
    state: Arc<RuntimeState>,
    child: tokio::process::Child,
    log: PathBuf,
    keep_log: bool,
    server: tokio::task::JoinHandle<()>,
    counter: usize,
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
        if !self.keep_log && std::env::var_os("SECRET_SYNC_KEEP_TEST_OBJECTS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Lambda {
    /// Starts the function against the local stack with `SECRET_SYNC_*` settings (or any other
    /// variable, `RUST_LOG` included) from `env`; it serves the controller class [`CLASS`]
    /// unless `env` sets another. Its log goes to a temporary file, deleted when it stops.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.stderr", unique_name("lambda")));
        Self::spawn(env, log, false).await
    }

    /// As [`Lambda::start`], logging to `log`, which is kept.
    pub async fn start_logging_to(env: &[(&str, &str)], log: &Path) -> Self {
        Self::spawn(env, log.to_path_buf(), true).await
    }

    async fn spawn(env: &[(&str, &str)], log: PathBuf, keep_log: bool) -> Self {
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
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = tokio::process::Command::new(binary().await);
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
            log,
            keep_log,
            server,
            counter: 0,
        }
    }

    /// Queues an invocation with `event` at the Runtime API (the function picks it up with its
    /// next poll) and returns at once.
    pub fn queue(&mut self, event: &Value) -> Invocation {
        self.counter += 1;
        let id = format!("req-{}", self.counter);
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .expect("waiting")
            .insert(id.clone(), tx);
        let queued = Instant::now();
        self.state
            .queue
            .lock()
            .expect("queue")
            .push_back((id.clone(), event.clone()));
        self.state.queued.notify_waiters();
        Invocation { id, queued, rx }
    }

    /// Waits for the function's answer to `invocation` (at most [`INVOKE_TIMEOUT`]; panics with
    /// its log after that).
    pub async fn answer(&mut self, invocation: Invocation) -> Answered {
        match tokio::time::timeout(INVOKE_TIMEOUT, invocation.rx).await {
            Ok(Ok((answer, answered))) => Answered {
                answer,
                queued: invocation.queued,
                delivered: self
                    .state
                    .delivered
                    .lock()
                    .expect("delivered")
                    .remove(&invocation.id),
                answered,
            },
            _ => panic!(
                "no answer within {INVOKE_TIMEOUT:?}; exited: {:?}; init errors: {:?}; log:\n{}",
                self.child.try_wait(),
                self.state.init_errors.lock().expect("init errors"),
                self.logs()
            ),
        }
    }

    /// Invokes the function with `event` and waits for its answer.
    pub async fn invoke(&mut self, event: &Value) -> Answer {
        let invocation = self.queue(event);
        self.answer(invocation).await.answer
    }

    /// Where the function logs.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the function has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that nothing the function logged contains any of `values`.
    pub fn assert_logged_none_of(&self, values: &[&str]) {
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
// Payloads.

/// A `PutSecretValue` EventBridge event for `secret_id`, as a rule delivers it.
pub fn put_secret_value(secret_id: &str) -> Value {
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
pub fn sqs_record(message_id: &str, body: &str) -> Value {
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
