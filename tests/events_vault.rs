//! Vault / OpenBao change notifications end to end, each with a 1 h refresh so that only the
//! notification can explain a prompt sync:
//!
//! - the OpenBao dev server's `socket` audit device (configured by `infra/local/stack` to write
//!   to `SECRET_SYNC_VAULT_AUDIT_ADDR`) feeds the controller's audit receiver;
//! - the audit receiver's guards: refused peers, malformed lines, the connection limit;
//! - the event-stream subscriber, against a stand-in for Vault Enterprise's websocket in front
//!   of the real OpenBao (`harness/vault_events.rs`), including a gap and its resync;
//! - the signed webhook, with good, forged, stale, replayed, oversized and flooding calls.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use secret_sync_controller::vault_audit::AuditSettings;
use secret_sync_controller::vault_events::EventStreamSettings;
use secret_sync_controller::webhook::{WebhookSettings, WebhookSlot};
use secret_sync_events::webhook;
use secret_sync_tests::controller::{
    TestNamespace, apply, external_secret, setup, setup_with, start_with, vault_token_store,
    vault_token_store_at, wait_data,
};
use secret_sync_tests::vault_events::{EventServer, kv2_frame};
use secret_sync_tests::{Stack, unique_name};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Within this, an event-driven sync has happened; refreshes are an hour away.
const PROMPT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_put_reaches_the_secret_through_the_audit_stream_long_before_the_refresh() {
    let stack = Stack::get().await;
    let addr: std::net::SocketAddr = stack
        .var("SECRET_SYNC_VAULT_AUDIT_ADDR")
        .parse()
        .expect("the stack's audit address");
    let t = setup_with("vault-audit", &[], move |s| {
        s.vault_audit = Some(AuditSettings::new(addr));
    })
    .await;
    let (client, ns) = (t.client.clone(), t.ns.clone());
    let vault = stack.vault();
    let key = unique_name("audit/db");
    vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": "v1" }))
        .await
        .expect("kv put");
    vault_token_store(&client, &ns, "bao", "secret", "v2").await;
    apply(&client, &external_secret(&ns, "db", json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "bao" },
        "data": [{ "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }]
    })))
    .await;
    wait_data(&client, &ns, "db", &[("password", "v1")]).await;

    vaultrs::kv2::set(&vault, "secret", &key, &json!({ "password": "v2" }))
        .await
        .expect("kv put");
    let started = tokio::time::Instant::now();
    wait_data(&client, &ns, "db", &[("password", "v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    let metrics = t.controller.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("secret_sync_events_total{result=\"matched\",source=\"vault-audit\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("v2\""), "no value in the metrics");
}

/// A device that connects and writes while the receiver starts is read once the caches are
/// listed: its line waits in the socket, it is not resolved against an empty cache and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_line_written_while_the_receiver_starts_is_read_once_its_caches_are_listed() {
    let stack = Stack::get().await;
    let mut t = setup("vault-audit-start").await;
    let key = unique_name("audit/start");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;
    t.controller.stop().await;
    kv_put(&key, "s3cr3t-canary-v2").await;

    let addr = free_port().await;
    let aws = stack.aws().await;
    let mut next = start_with(&t.client, &t.ns, move |s| {
        s.providers.aws_base = Some(aws);
        s.vault_audit = Some(AuditSettings::new(addr));
    });
    // Connect as soon as the port is bound, and write at once.
    let deadline = tokio::time::Instant::now() + PROMPT;
    let mut stream = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "never bound: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    stream
        .write_all(audit_line(&key).as_bytes())
        .await
        .expect("write");
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    let metrics = next.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("secret_sync_events_total{result=\"matched\",source=\"vault-audit\"} 1"),
        "{metrics}"
    );
    next.stop().await;
}

/// Creates the token Secret, a SecretStore `bao` on `server` (KV v2 at `secret`) and an
/// ExternalSecret `db` (refresh 1 h) reading `key`'s `password`, and waits for `v1`.
async fn vault_reader(t: &TestNamespace, server: &str, key: &str) {
    let stack = Stack::get().await;
    let (client, ns) = (&t.client, &t.ns);
    vaultrs::kv2::set(
        &stack.vault(),
        "secret",
        key,
        &json!({ "password": "s3cr3t-canary-v1" }),
    )
    .await
    .expect("kv put");
    vault_token_store_at(client, ns, "bao", server, "secret", "v2").await;
    apply(client, &external_secret(ns, "db", json!({
        "refreshInterval": "1h",
        "secretStoreRef": { "name": "bao" },
        "data": [{ "secretKey": "password", "remoteRef": { "key": key, "property": "password" } }]
    })))
    .await;
    wait_data(client, ns, "db", &[("password", "s3cr3t-canary-v1")]).await;
}

async fn kv_put(key: &str, password: &str) {
    let vault = Stack::get().await.vault();
    vaultrs::kv2::set(&vault, "secret", key, &json!({ "password": password }))
        .await
        .expect("kv put");
}

/// Whether the controller's metrics show a line starting with `line` within a second (a count
/// may land just after what the test observed, such as a closed socket or an open stream).
async fn metric(t: &TestNamespace, line: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let text = t.controller.metrics.encode().expect("metrics");
        if text.lines().any(|l| l.starts_with(line)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn free_port() -> std::net::SocketAddr {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    probe.local_addr().expect("addr")
}

/// A successful KV v2 write's response entry, as an audit device writes it (values HMAC'd).
fn audit_line(key: &str) -> String {
    let path = format!("secret/data/{key}");
    let mut line = json!({
        "time": jiff::Timestamp::now().to_string(), "type": "response",
        "auth": { "client_token": "hmac-sha256:aa", "policies": ["root"] },
        "request": { "id": "req", "operation": "update", "mount_point": "secret/",
            "mount_type": "kv", "mount_class": "secret", "namespace": { "id": "root" },
            "path": path, "data": { "data": { "password": "hmac-sha256:bb" } },
            "remote_address": "127.0.0.1" },
        "response": { "mount_point": "secret/", "mount_type": "kv",
            "data": { "version": 2 } }
    })
    .to_string();
    line.push('\n');
    line
}

async fn connect_from(local: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("local addr"))
        .expect("bind local");
    socket.connect(to).await.expect("connect")
}

/// Whether the peer closed `stream` within a second (whatever it sent first, such as a TLS
/// alert).
async fn closed_by_peer(stream: &mut tokio::net::TcpStream) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut sink)).await,
        Ok(Ok(_) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_receiver_refuses_strangers_and_floods_and_survives_garbage() {
    let addr = free_port().await;
    captured();
    let t = setup_with("vault-audit-guard", &[], move |s| {
        s.vault_audit = Some(AuditSettings {
            allowed_peers: vec!["127.0.0.2".parse().expect("ip")],
            max_connections: 2,
            ..AuditSettings::new(addr)
        });
    })
    .await;
    let stack = Stack::get().await;
    let key = unique_name("guard/db");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;

    // A peer not on the list is closed unread.
    let mut stranger = connect_from("127.0.0.1", addr).await;
    assert!(closed_by_peer(&mut stranger).await, "a stranger was served");
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"unauthorized\",source=\"vault-audit\"} 1"
        )
        .await
    );

    // Garbage, a line for an unknown mount and an over-long line do not stop the receiver; the
    // change that follows on a new connection is still synced.
    kv_put(&key, "s3cr3t-canary-v2").await;
    let mut vault = connect_from("127.0.0.2", addr).await;
    vault
        .write_all(b"not json\n{\"type\":\"response\"}\n\n[1,2]\n")
        .await
        .expect("write");
    let unknown = audit_line("x").replace("secret/", "elsewhere/");
    vault.write_all(unknown.as_bytes()).await.expect("write");
    vault
        .write_all(audit_line(&key).as_bytes())
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"malformed\",source=\"vault-audit\"} 3"
        )
        .await
    );

    let long = vec![b'x'; 1024 * 1024 + 1];
    let _ = vault.write_all(&long).await;
    assert!(
        closed_by_peer(&mut vault).await,
        "an over-long line ends the connection"
    );

    // Two connections are the limit: a third is closed at once.
    let _first = connect_from("127.0.0.2", addr).await;
    let _second = connect_from("127.0.0.2", addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect_from("127.0.0.2", addr).await;
    assert!(
        closed_by_peer(&mut third).await,
        "a third connection was kept"
    );
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"overloaded\",source=\"vault-audit\"} 1"
        )
        .await
    );

    // And the receiver still works once a slot is free.
    drop(_first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    kv_put(&key, "s3cr3t-canary-v3").await;
    let mut again = connect_from("127.0.0.2", addr).await;
    again
        .write_all(audit_line(&key).as_bytes())
        .await
        .expect("write");
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v3")]).await;

    let logs = captured().text();
    assert!(
        logs.contains("Vault audit connection refused"),
        "logs not captured"
    );
    for value in ["s3cr3t-canary", "hmac-sha256:bb"] {
        assert!(!logs.contains(value), "{value} in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_event_stream_frames_sync_at_once_and_a_gap_is_resynced() {
    let stack = Stack::get().await;
    let upstream = stack
        .var("VAULT_ADDR")
        .trim_start_matches("http://")
        .to_owned();
    let events = EventServer::start(upstream, stack.var("VAULT_TOKEN").to_owned()).await;
    let t = setup_with("vault-events", &[], |s| {
        s.vault_events = Some(EventStreamSettings {
            event_types: vec!["kv*".into()],
            rescan: Duration::from_millis(500),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        });
    })
    .await;
    let key = unique_name("stream/db");
    vault_reader(&t, &events.url(), &key).await;
    let deadline = tokio::time::Instant::now() + PROMPT;
    while events.accepted() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.patterns(), ["kv*"]);
    assert_eq!(events.refused(), 0);
    let connected = format!(
        "secret_sync_vault_event_stream_connected{{event_type=\"kv*\",server=\"{}\"}} 1",
        events.url()
    );
    assert!(metric(&t, &connected).await, "{connected}");

    // A malformed frame and a change nobody reads are counted; the next real one syncs.
    events.emit("{not json");
    events.emit(kv2_frame("kv-v2/data-write", "secret", "nobody/reads/this"));
    kv_put(&key, "s3cr3t-canary-v2").await;
    events.emit(kv2_frame("kv-v2/data-write", "secret", &key));
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"malformed\",source=\"vault-events\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"dropped\",source=\"vault-events\"} 1"
        )
        .await
    );
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"matched\",source=\"vault-events\"}"
        )
        .await
    );

    // The socket drops; a write while it is down sends no event. The reconnect resyncs.
    events.drop_connections();
    kv_put(&key, "s3cr3t-canary-v3").await;
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v3")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert!(events.accepted() >= 2, "no reconnect");
}

fn signed(secret: &[u8], body: &str, at: i64) -> reqwest::RequestBuilder {
    secret_sync_tests::webhook::signed(
        &reqwest::Client::new(),
        "http://placeholder/webhook",
        secret,
        body,
        at,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_call_during_start_up_is_refused_until_the_caches_are_listed_then_synced() {
    let stack = Stack::get().await;
    let mut t = setup("vault-webhook-start").await;
    let key = unique_name("hook/start");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;
    // The controller stops; the secret rotates meanwhile.
    t.controller.stop().await;
    kv_put(&key, "s3cr3t-canary-v2").await;

    // The next controller starts, and the rotation's webhook call is sent at once, then again
    // unchanged (same timestamp and signature) for as long as it is refused with Retry-After.
    let addr = free_port().await;
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let hook_secret = secret.clone();
    let aws = stack.aws().await;
    let mut next = start_with(&t.client, &t.ns, move |s| {
        s.providers.aws_base = Some(aws);
        s.webhook = Some(WebhookSettings {
            addr,
            secrets: vec![hook_secret],
            replay_window: 300,
            rate_per_second: 100,
        });
    });
    let body = json!({
        "store": { "kind": "SecretStore", "name": "bao", "namespace": t.ns },
        "keys": [key]
    })
    .to_string();
    let url = format!("http://{addr}/webhook");
    let now = jiff::Timestamp::now().as_second();
    let deadline = tokio::time::Instant::now() + PROMPT;
    let mut refused = 0;
    let accepted = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook took no call within {PROMPT:?}"
        );
        let (http, request) = signed(&secret, &body, now).build_split();
        let mut request = request.expect("request");
        *request.url_mut() = url.parse().expect("url");
        match http.execute(request).await {
            // Not listening yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Ok(answer) if answer.status() == 503 => {
                assert!(answer.headers().contains_key("retry-after"));
                refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(answer) => break answer,
        }
    };
    assert_eq!(accepted.status(), 202, "after {refused} refusals");
    let answer: serde_json::Value =
        serde_json::from_slice(&accepted.bytes().await.expect("body")).expect("json");
    // Taken only once the ExternalSecret cache could resolve it.
    assert_eq!(answer["affected"], 1, "after {refused} refusals");
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    next.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_webhook_syncs_named_keys_and_refuses_everything_else() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let stack = Stack::get().await;
    let addr = free_port().await;
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let hook_secret = secret.clone();
    captured();
    let t = setup_with("vault-webhook", &[], move |s| {
        s.webhook = Some(WebhookSettings {
            addr,
            secrets: vec![b"an-older-secret-still-accepted".to_vec(), hook_secret],
            replay_window: 300,
            rate_per_second: 5,
        });
    })
    .await;
    let key = unique_name("hook/db");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;
    let url = format!("http://{addr}/webhook");
    let http = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| {
        let (client, request) = request.build_split();
        let mut request = request.expect("request");
        *request.url_mut() = url.parse().expect("url");
        let _ = client;
        http.execute(request)
    };
    let now = jiff::Timestamp::now().as_second();
    let body = json!({
        "store": { "kind": "SecretStore", "name": "bao", "namespace": t.ns },
        "keys": [key]
    })
    .to_string();

    kv_put(&key, "s3cr3t-canary-v2").await;
    let accepted = send(signed(&secret, &body, now)).await.expect("call");
    assert_eq!(accepted.status(), 202);
    let answer: serde_json::Value =
        serde_json::from_slice(&accepted.bytes().await.expect("body")).expect("json");
    assert_eq!(answer["affected"], 1);
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    // The same request again is a replay, however its signature header is written.
    let replay = send(signed(&secret, &body, now)).await.expect("call");
    assert_eq!(replay.status(), 401);
    let hex = webhook::sign(&secret, &now.to_string(), body.as_bytes())
        .trim_start_matches("v1=")
        .to_uppercase();
    let respelled = reqwest::Client::new()
        .post("http://placeholder/webhook")
        .header(webhook::TIMESTAMP_HEADER, now.to_string())
        .header(webhook::SIGNATURE_HEADER, format!("v0=00, v1={hex}"))
        .body(body.clone());
    let respelled = send(respelled).await.expect("call");
    assert_eq!(respelled.status(), 401);

    // A CloudEvent naming the store, signed with the older secret.
    kv_put(&key, "s3cr3t-canary-v3").await;
    let cloud_event = json!({
        "specversion": "1.0", "type": "io.secret-sync.secret.changed", "source": "ci",
        "id": "rotation-42", "datacontenttype": "application/json",
        "data": { "store": { "name": "bao", "namespace": t.ns }, "keys": [key] }
    })
    .to_string();
    let older = send(signed(b"an-older-secret-still-accepted", &cloud_event, now))
        .await
        .expect("call");
    assert_eq!(older.status(), 202);
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v3")]).await;

    // Forged, stale, unsigned, malformed, oversized.
    kv_put(&key, "s3cr3t-canary-v4").await;
    let forged = send(signed(b"not-the-secret-at-all-0123456789", &body, now + 1))
        .await
        .expect("call");
    assert_eq!(forged.status(), 401);
    let stale = send(signed(&secret, &body, now - 600)).await.expect("call");
    assert_eq!(stale.status(), 401);
    let unsigned = http
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("call");
    assert_eq!(unsigned.status(), 401);
    let malformed = send(signed(&secret, "{\"store\": 42}", now + 2))
        .await
        .expect("call");
    assert_eq!(malformed.status(), 400);
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let oversized = send(signed(&secret, &huge, now + 3)).await.expect("call");
    assert_eq!(oversized.status(), 413);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let secret_now: Secret = Api::namespaced(t.client.clone(), &t.ns)
        .get("db")
        .await
        .expect("Secret");
    let password = secret_now
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| b.0.clone());
    assert_eq!(
        password.as_deref(),
        Some(&b"s3cr3t-canary-v3"[..]),
        "a refused call synced"
    );

    // A sender that stops half way through its body is cut off after 10 s with 408.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"store\"",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 512];
        while !answer.windows(3).any(|w| w == b"408") {
            let n = slow.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A flood: past the rate (5/s, bursts of 10) calls get 429 with Retry-After.
    let mut limited = 0;
    for i in 0..40 {
        let response = send(signed(&secret, &body, now + 10 + i))
            .await
            .expect("call");
        if response.status() == 429 {
            assert_eq!(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
            limited += 1;
        }
    }
    assert!(limited >= 20, "only {limited} of 40 were limited");
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"overloaded\",source=\"webhook\"}"
        )
        .await
    );
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"unauthorized\",source=\"webhook\"} 5"
        )
        .await
    );

    let logs = captured().text();
    assert!(logs.contains("webhook call refused"), "logs not captured");
    for needle in [
        "0123456789abcdef0123456789abcdef",
        "an-older-secret",
        "s3cr3t-canary",
    ] {
        assert!(!logs.contains(needle), "{needle} in the logs");
    }
}

/// Every log line of this process at DEBUG, as JSON (the controller runs in-process).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,secret_sync=debug,secret_sync_controller=debug,secret_sync_providers=debug",
            ))
            .with_writer(captured.clone())
            .try_init();
        captured
    })
}

/// A self-signed certificate for 127.0.0.1 and its key, PEM, made by the openssl CLI.
fn self_signed(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=secret-sync-audit"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // An end-entity certificate trusted as its own anchor (webpki refuses a CA as a leaf).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    (
        std::fs::read(cert).expect("cert"),
        std::fs::read(key).expect("key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_receiver_speaks_tls_when_configured_and_refuses_plain_text_then() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = std::env::temp_dir().join(unique_name("audit-tls"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = self_signed(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let tls = secret_sync_controller::vault_audit::server_tls(&cert, &key).expect("server TLS");
    let addr = free_port().await;
    let t = setup_with("vault-audit-tls", &[], move |s| {
        s.vault_audit = Some(AuditSettings {
            tls: Some(Arc::new(tls)),
            ..AuditSettings::new(addr)
        });
    })
    .await;
    let stack = Stack::get().await;
    let key_name = unique_name("tls/db");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key_name).await;

    // Plain text on a TLS listener is a failed handshake: counted, nothing synced.
    kv_put(&key_name, "s3cr3t-canary-v2").await;
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(audit_line(&key_name).as_bytes())
        .await
        .expect("write");
    assert!(closed_by_peer(&mut plain).await, "plain text was served");
    assert!(
        metric(
            &t,
            "secret_sync_events_total{result=\"unauthorized\",source=\"vault-audit\"} 1"
        )
        .await
    );

    // The same line over TLS syncs.
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&cert) {
        roots.add(c.expect("cert")).expect("root");
    }
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("handshake");
    tls.write_all(audit_line(&key_name).as_bytes())
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_stream_subscription_is_retried_with_backoff_and_syncs_nothing() {
    captured();
    let stack = Stack::get().await;
    let upstream = stack
        .var("VAULT_ADDR")
        .trim_start_matches("http://")
        .to_owned();
    // The stand-in wants another token than the store's.
    let events = EventServer::start(upstream, "some-other-token".to_owned()).await;
    let t = setup_with("vault-events-403", &[], |s| {
        s.vault_events = Some(EventStreamSettings {
            event_types: vec!["kv*".into()],
            rescan: Duration::from_millis(500),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
        });
    })
    .await;
    let key = unique_name("stream403/db");
    vault_reader(&t, &events.url(), &key).await;
    let deadline = tokio::time::Instant::now() + PROMPT;
    while events.refused() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.accepted(), 0);
    // Retries are spaced, not a hot loop: at most one per 50 ms (backoff 100–400 ms, jittered
    // down to half).
    let before = events.refused();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let retries = events.refused() - before;
    assert!((1..=20).contains(&retries), "{retries} retries in 1 s");
    let logs = captured().text();
    assert!(
        logs.contains("Vault refused the event-stream subscription"),
        "not reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_audit_device_gets_what_it_may_have_lost_resynced() {
    let addr = free_port().await;
    let t = setup_with("vault-audit-gap", &[], move |s| {
        s.vault_audit = Some(AuditSettings::new(addr));
    })
    .await;
    let stack = Stack::get().await;
    let key = unique_name("gap/db");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;

    // The first connection: no gap yet, a line syncs as usual.
    kv_put(&key, "s3cr3t-canary-v2").await;
    let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    first
        .write_all(audit_line(&key).as_bytes())
        .await
        .expect("write");
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;

    // The connection breaks; the write meanwhile is never reported.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    kv_put(&key, "s3cr3t-canary-v3").await;
    // The device reconnects: that alone resyncs.
    let _second = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v3")]).await;
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_lead_answers_webhooks_with_503_and_the_leader_handles_them() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let stack = Stack::get().await;
    // As `main` does with leader election: the listener is up before anything leads.
    let slot = WebhookSlot::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(slot.clone().serve(listener, stop.clone()));
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let url = format!("http://{addr}/webhook");
    let post = |body: &str, at: i64| {
        secret_sync_tests::webhook::signed(&reqwest::Client::new(), &url, &secret, body, at).send()
    };
    let now = jiff::Timestamp::now().as_second();
    let standby = post("{}", now).await.expect("call");
    assert_eq!(standby.status(), 503);
    assert_eq!(
        standby
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );

    // Leading: the reconcilers install their handler in the slot.
    let hook_secret = secret.clone();
    let leading_slot = slot.clone();
    let t = setup_with("vault-webhook-slot", &[], move |s| {
        s.webhook = Some(WebhookSettings {
            addr: "127.0.0.1:1"
                .parse()
                .expect("unused: the slot's listener serves"),
            secrets: vec![hook_secret],
            replay_window: 300,
            rate_per_second: 100,
        });
        s.webhook_slot = Some(leading_slot);
    })
    .await;
    let key = unique_name("slot/db");
    vault_reader(&t, stack.var("VAULT_ADDR"), &key).await;
    kv_put(&key, "s3cr3t-canary-v2").await;
    let body = json!({
        "store": { "kind": "SecretStore", "name": "bao", "namespace": t.ns },
        "keys": [key]
    })
    .to_string();
    let leader = post(&body, now + 1).await.expect("call");
    assert_eq!(leader.status(), 202);
    wait_data(&t.client, &t.ns, "db", &[("password", "s3cr3t-canary-v2")]).await;

    // Leadership ends: the handler goes, the listener stays and answers 503 again.
    drop(t);
    let deadline = tokio::time::Instant::now() + PROMPT;
    loop {
        let status = post(&body, now + 2).await.expect("call").status();
        if status == 503 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
}
