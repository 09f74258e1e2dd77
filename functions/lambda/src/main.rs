//! `secret-sync-lambda`: the Lambda function. Reads its configuration, connects to the target
//! clusters and starts their watch caches during the init phase, then serves invocations from
//! the Lambda Runtime API until the environment is shut down. See the library documentation for
//! the configuration.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lambda_runtime::{LambdaEvent, service_fn};
use secret_sync_lambda::{Config, Handler, handler::HandlerError};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("a rustls crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode = ?config.mode,
        clusters = config.clusters.len(),
        "starting secret-sync-lambda"
    );
    let handler = match secret_sync_lambda::start(&config).await {
        Ok(handler) => Arc::new(handler),
        Err(e) => {
            tracing::error!(error = %e, "connecting to the target clusters failed");
            return ExitCode::FAILURE;
        }
    };
    let service = service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { invoke(&handler, event).await }
    });
    match lambda_runtime::run(service).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn invoke(handler: &Handler, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let deadline = (event.context.deadline > 0)
        .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline));
    handler.handle(&event.payload, deadline).await
}

/// Logs to stderr: text, or JSON when Lambda's log format is JSON; the level from `RUST_LOG`,
/// else Lambda's log level, else `info`.
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // CloudWatch adds its own timestamp.
        .without_time();
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}
