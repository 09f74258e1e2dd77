//! The Lambda function, as Lambda runs it: AWS's Lambda Runtime Interface Emulator
//! (`aws-lambda-rie`, built by `infra/local/stack`) runs the real `secret-sync-lambda` binary as
//! its bootstrap, and tests and benchmarks invoke it through the emulator's invoke endpoint; the
//! function syncs into the local apiserver with values from moto.
//!
//! The emulator answers a handler error with the error document and status 200, without
//! `X-Amz-Function-Error`: an answer holding exactly `errorType` and `errorMessage` is taken as
//! the function's error.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};

use crate::aws_events::api_call_detail;
use crate::{Stack, repo_root, unique_name};

/// How long one invocation may take, first one (cold caches) included; also the function
/// timeout the emulator gives the function.
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

impl Answer {
    fn of(body: &str) -> Self {
        let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        let is_error = value.as_object().is_some_and(|o| {
            o.len() == 2 && o.contains_key("errorType") && o.contains_key("errorMessage")
        });
        if is_error {
            Self::Error(value)
        } else {
            Self::Response(value)
        }
    }
}

/// An answer with the times its invocation was handed over and answered.
#[derive(Debug)]
pub struct Answered {
    pub answer: Answer,
    /// Handed to the emulator ([`Lambda::queue`]).
    pub queued: Instant,
    /// The emulator's answer arrived.
    pub answered: Instant,
}

/// An invocation handed to the emulator, not yet answered.
#[derive(Debug)]
pub struct Invocation {
    /// When it was handed over: the moment it was handed to Lambda.
    pub queued: Instant,
    rx: oneshot::Receiver<Result<(Answer, Instant), String>>,
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

/// The function, running: the emulator with the binary as its bootstrap. Stopped when dropped.
pub struct Lambda {
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
    log: PathBuf,
    keep_log: bool,
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !self.keep_log && std::env::var_os("SECRET_SYNC_KEEP_TEST_OBJECTS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The emulator, as `infra/local/stack` installs it.
fn emulator() -> PathBuf {
    std::env::var_os("SECRET_SYNC_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".stack"))
        .join("bin/aws-lambda-rie")
}

impl Lambda {
    /// Starts the function against the local stack with `SECRET_SYNC_*` settings (or any other
    /// variable, `RUST_LOG` included) from `env`; it serves the controller class [`CLASS`]
    /// unless `env` sets another. Its log (and the emulator's) goes to a temporary file,
    /// deleted when it stops.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("lambda")));
        Self::spawn(env, log, false).await
    }

    /// As [`Lambda::start`], logging to `log`, which is kept.
    pub async fn start_logging_to(env: &[(&str, &str)], log: &Path) -> Self {
        Self::spawn(env, log.to_path_buf(), true).await
    }

    async fn spawn(env: &[(&str, &str)], log: PathBuf, keep_log: bool) -> Self {
        let stack = Stack::get().await;
        // Two ports: where the emulator takes invocations, and its Runtime API for the function
        // (by default 9001 for every emulator, which tests running at once would share).
        let free_port = || {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("addr").port()
        };
        let (port, runtime_port) = (free_port(), free_port());
        let file = std::fs::File::create(&log).expect("log file");
        let emulator = emulator();
        assert!(
            emulator.exists(),
            "{} not found: `infra/local/stack up` builds it",
            emulator.display()
        );
        let mut command = tokio::process::Command::new(&emulator);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_port}"))
            .arg(binary().await)
            .env_clear()
            .env("AWS_LAMBDA_FUNCTION_NAME", "secret-sync")
            .env(
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                INVOKE_TIMEOUT.as_secs().to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
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
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let child = command.spawn().expect("start aws-lambda-rie");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"),
            http: reqwest::Client::new(),
            log,
            keep_log,
        }
    }

    /// Hands an invocation with `event` to the emulator and returns at once.
    pub fn queue(&mut self, event: &Value) -> Invocation {
        let (tx, rx) = oneshot::channel();
        let (http, url, body) = (self.http.clone(), self.url.clone(), event.to_string());
        let queued = Instant::now();
        tokio::spawn(async move {
            // The emulator listens a moment after it starts.
            let deadline = Instant::now() + Duration::from_secs(10);
            let answer = loop {
                match http.post(&url).body(body.clone()).send().await {
                    Ok(answer) => break answer,
                    Err(e) if e.is_connect() && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("invoking: {e}")));
                        return;
                    }
                }
            };
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            let answered = Instant::now();
            let _ = tx.send(if status.is_success() {
                Ok((Answer::of(&text), answered))
            } else {
                Err(format!("the emulator answered {status}: {text}"))
            });
        });
        Invocation { queued, rx }
    }

    /// Waits for the function's answer to `invocation` (at most [`INVOKE_TIMEOUT`] and a little;
    /// panics with its log after that).
    pub async fn answer(&mut self, invocation: Invocation) -> Answered {
        let within = INVOKE_TIMEOUT + Duration::from_secs(5);
        match tokio::time::timeout(within, invocation.rx).await {
            Ok(Ok(Ok((answer, answered)))) => Answered {
                answer,
                queued: invocation.queued,
                answered,
            },
            Ok(Ok(Err(why))) => panic!(
                "{why}; exited: {:?}; log:\n{}",
                self.child.try_wait(),
                self.logs()
            ),
            _ => panic!(
                "no answer within {within:?}; exited: {:?}; log:\n{}",
                self.child.try_wait(),
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
