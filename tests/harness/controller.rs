//! Running the controller in the test process, and waiting on what it writes.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use secret_sync_controller::Readiness;
use secret_sync_controller::metrics::Metrics;
use secret_sync_controller::reconcile::run::{RunSettings, run};
use secret_sync_crd::{
    ConditionStatus, ExternalSecret, ExternalSecretConditionType, ExternalSecretStatusCondition,
    GenericStore, SecretStore, SecretStoreStatusCondition,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::FIELD_MANAGER;
use crate::cleanup::Cleanup;

/// How long a test waits for the controller to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// A controller running in this process; stopped when dropped.
pub struct Running {
    shutdown: CancellationToken,
    pub metrics: Metrics,
    readiness: Readiness,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops it as a SIGTERM would: shutdown begins now, and the future returned resolves once
    /// the controller has finished (its receivers handed back what they held).
    pub fn stop(&mut self) -> impl Future<Output = ()> + Send + 'static {
        self.shutdown.cancel();
        let task = self.task.take();
        async move {
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    /// Waits until the reconcilers' caches hold their first full list, as a Deployment's
    /// readiness probe would, so a test's objects are created against a watching controller.
    pub async fn ready(self) -> Self {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !self.readiness.is_ready() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the controller's caches did not sync within {CONVERGE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the reconcilers for one namespace (ClusterSecretStores are watched cluster-wide), with
/// AWS stores pointed at moto.
pub async fn start(client: &kube::Client, namespace: &str) -> Running {
    let aws = crate::Stack::get().await.aws().await;
    start_with(client, namespace, move |s| s.providers.aws_base = Some(aws))
        .ready()
        .await
}

/// Starts the reconcilers with adjusted settings.
pub fn start_with(
    client: &kube::Client,
    namespace: &str,
    adjust: impl FnOnce(&mut RunSettings),
) -> Running {
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let mut settings = RunSettings {
        namespace: Some(namespace.to_owned()),
        controller_class: "default".into(),
        // As in production; it runs only when the controller watches every namespace.
        cluster_external_secrets: true,
        push_secrets: true,
        cluster_push_secrets: true,
        template_sources: true,
        kubernetes_watch: true,
        concurrency: 4,
        store_requeue: Duration::from_secs(300),
        // As in production: every reuse rule is exercised.
        value_reuse: Duration::from_secs(300),
        // As in production (10 minutes, longer than any test): tests see what users see, and a
        // lost watch event or reconcile fails them instead of being caught by a resync.
        resync: Duration::from_secs(600),
        providers: Default::default(),
        sqs: None,
        // Short: a sync stuck for longer than this shows as a warning and a retry, not as a
        // test that waits out its 30 s.
        sync_timeout: Duration::from_secs(10),
        store_wait: secret_sync::ingest::STORE_WAIT,
        flood_gate: true,
        generator_state: true,
        // As in production (ESO's 2 minutes); tests of the cleanup shorten it.
        generator_gc_grace: Duration::from_secs(120),
        rollout_on_change: false,
        generic_targets: false,
        success_events: true,
        deferred_statuses: true,
        vault_audit: None,
        vault_events: None,
        webhook: None,
        webhook_slot: None,
        sharding: None,
    };
    adjust(&mut settings);
    let task = run(
        client.clone(),
        metrics.clone(),
        settings,
        Some(readiness.clone()),
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = task.await {
            panic!("controller stopped with an error: {e:#}");
        }
    });
    Running {
        shutdown,
        metrics,
        readiness,
        task: Some(task),
    }
}

/// Server-side applies any object given as JSON.
pub async fn apply(client: &kube::Client, object: &serde_json::Value) -> DynamicObject {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (resource, caps) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .expect("served kind");
    let name = object["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match (caps.scope, object["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"))
}

/// The Ready condition of an ExternalSecret.
pub fn ready_of(es: &ExternalSecret) -> Option<&ExternalSecretStatusCondition> {
    es.status
        .as_ref()?
        .condition(ExternalSecretConditionType::Ready)
}

/// A Secret's data as strings.
pub fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Polls an ExternalSecret until `done` holds.
pub async fn wait_for(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(&ExternalSecret) -> bool,
) -> ExternalSecret {
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let current = api.get_opt(name).await.expect("get ExternalSecret");
        if let Some(es) = current {
            if done(&es) {
                return es;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "ExternalSecret {ns}/{name} did not converge within {CONVERGE:?}; status: {:?}",
                    es.status
                );
            }
        } else if tokio::time::Instant::now() > deadline {
            panic!("ExternalSecret {ns}/{name} does not exist");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an ExternalSecret is Ready=True.
pub async fn wait_ready(client: &kube::Client, ns: &str, name: &str) -> ExternalSecret {
    wait_for(client, ns, name, |es| {
        ready_of(es).is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await
}

/// Polls a Secret until it exists and `done` holds.
pub async fn wait_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(&Secret) -> bool,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Some(secret) = api.get_opt(name).await.expect("get Secret")
            && done(&secret)
        {
            return secret;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("Secret {ns}/{name} did not reach the expected state within {CONVERGE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `SECRET_SYNC_TEST_LOG` set (an `EnvFilter` directive such as `secret_sync=debug`), logs
/// to the test's output; for debugging a failing test. A no-op when a subscriber is installed.
pub fn init_logging() {
    if let Ok(directives) = std::env::var("SECRET_SYNC_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_test_writer()
            .try_init();
    }
}

/// A test's own namespace with an in-process controller watching it. Dropping it stops the
/// controller, then deletes the namespace (fields drop in declaration order).
pub struct TestNamespace {
    pub client: kube::Client,
    pub ns: String,
    pub controller: Running,
    _namespace: Cleanup,
}

/// Installs the CRDs, creates a fresh namespace and starts a controller watching it.
pub async fn setup(prefix: &str) -> TestNamespace {
    setup_with(prefix, &[], |_| {}).await
}

/// As [`setup`], with namespace labels and adjusted controller settings.
pub async fn setup_with(
    prefix: &str,
    labels: &[(&str, &str)],
    adjust: impl FnOnce(&mut RunSettings),
) -> TestNamespace {
    init_logging();
    let stack = crate::Stack::get().await;
    let client = stack.kube().await;
    crate::install_crds(&client).await;
    let (ns, guard) = crate::scoped_namespace(&client, prefix, labels).await;
    let aws = stack.aws().await;
    let controller = start_with(&client, &ns, move |s| {
        s.providers.aws_base = Some(aws);
        adjust(s);
    })
    .ready()
    .await;
    TestNamespace {
        client,
        ns,
        controller,
        _namespace: guard,
    }
}

/// A SecretStore with the fake provider serving `data` (`[{key, value, version?}]`).
pub fn fake_store(ns: &str, name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "provider": { "fake": { "data": data } } }
    })
}

/// A SecretStore `name` reading the local OpenBao's KV (`path`, `version`), with the dev server's
/// root token in a Secret `<name>-token`.
pub async fn vault_token_store(
    client: &kube::Client,
    ns: &str,
    name: &str,
    path: &str,
    version: &str,
) {
    let server = crate::Stack::get().await.var("VAULT_ADDR");
    vault_token_store_at(client, ns, name, server, path, version).await;
}

/// [`vault_token_store`] for an OpenBao (or a proxy in front of it) at `server`.
pub async fn vault_token_store_at(
    client: &kube::Client,
    ns: &str,
    name: &str,
    server: &str,
    path: &str,
    version: &str,
) {
    let token: Secret = serde_json::from_value(json!({
        "metadata": { "name": format!("{name}-token") },
        "stringData": { "token": crate::Stack::get().await.var("VAULT_TOKEN") }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("token Secret");
    apply(
        client,
        &json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "provider": { "vault": {
                "server": server, "path": path, "version": version,
                "auth": { "tokenSecretRef": { "name": format!("{name}-token"), "key": "token" } }
            } } }
        }),
    )
    .await;
}

/// An ExternalSecret with the given spec.
pub fn external_secret(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": { "name": name, "namespace": ns },
        "spec": spec
    })
}

/// A Secrets Manager client for moto.
/// An ExternalSecret `name` reading `key` through the SecretStore `store` into the key
/// `password`, refreshed hourly: within a test, only events (or a fault's recovery) move it.
pub fn hourly_reader(ns: &str, name: &str, store: &str, key: &str) -> serde_json::Value {
    external_secret(
        ns,
        name,
        json!({
            "refreshInterval": "1h", "secretStoreRef": { "name": store },
            "data": [{ "secretKey": "password", "remoteRef": { "key": key } }]
        }),
    )
}

pub async fn moto() -> SecretsManager {
    SecretsManager::new(&crate::Stack::get().await.aws().await)
}

/// Creates a secret in moto with a string value and tags; returns its VersionId.
pub async fn create_aws_secret(
    sm: &SecretsManager,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
) -> String {
    let tags = tags.iter().map(|(k, v)| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(*k)
            .value(*v)
            .build()
    });
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name} in moto: {e:?}"))
        .version_id
        .expect("a version id")
}

/// The current value of a moto secret (binary, as PushSecret writes it, or a string); `None`
/// when there is none.
pub async fn aws_value(sm: &SecretsManager, key: &str) -> Option<String> {
    let out = sm.get_secret_value().secret_id(key).send().await.ok()?;
    out.secret_binary
        .map(|b| String::from_utf8_lossy(&b.into_inner()).into_owned())
        .or(out.secret_string)
}

/// A source Secret `name` in `ns` with `password`, and a PushSecret `push` pushing that key to
/// `remote` through the SecretStore `aws` (refresh an hour away).
pub async fn push_password(
    client: &kube::Client,
    ns: &str,
    name: &str,
    password: &str,
    remote: &str,
) {
    let source: Secret = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": ns },
        "stringData": { "password": password }
    }))
    .expect("secret");
    kube::Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &source)
        .await
        .expect("source Secret");
    apply(
        client,
        &json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "push", "namespace": ns },
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRefs": [{ "name": "aws", "kind": "SecretStore" }],
                "selector": { "secret": { "name": name } },
                "data": [{ "match": { "secretKey": "password", "remoteRef": { "remoteKey": remote } } }]
            }
        }),
    )
    .await;
}

/// Puts a new current value; returns its VersionId.
pub async fn put_aws_secret(sm: &SecretsManager, name: &str, value: &str) -> String {
    sm.put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting a value into {name} in moto: {e:?}"))
        .version_id
        .expect("a version id")
}

/// Deletes a secret in moto at once (no recovery window).
pub async fn delete_aws_secret(sm: &SecretsManager, name: &str) {
    sm.delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("deleting {name} in moto: {e:?}"));
}

/// A Secret holding moto's credentials and a SecretStore `name` reading Secrets Manager with them.
pub async fn aws_store(client: &kube::Client, ns: &str, name: &str) {
    let stack = crate::Stack::get().await;
    let creds = format!("{name}-credentials");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": creds },
        "stringData": {
            "access-key-id": stack.var("AWS_ACCESS_KEY_ID"),
            "secret-access-key": stack.var("AWS_SECRET_ACCESS_KEY"),
        }
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("credentials Secret");
    apply(client, &aws_store_object(ns, name, &creds)).await;
}

/// A Secret `aws` holding moto's credentials (keys `id`, `secret`) in `creds_ns`, for
/// [`aws_cluster_store_object`].
pub async fn aws_cluster_credentials(client: &kube::Client, creds_ns: &str) -> anyhow::Result<()> {
    let stack = crate::Stack::get().await;
    let creds: Secret = serde_json::from_value(json!({
        "metadata": { "name": "aws" },
        "stringData": { "id": stack.var("AWS_ACCESS_KEY_ID"), "secret": stack.var("AWS_SECRET_ACCESS_KEY") }
    }))?;
    Api::<Secret>::namespaced(client.clone(), creds_ns)
        .create(&PostParams::default(), &creds)
        .await?;
    Ok(())
}

/// A ClusterSecretStore `name` reading Secrets Manager with the credentials Secret `aws` in
/// `creds_ns` (so one client serves every namespace), served by `class` (`None`: the default).
pub fn aws_cluster_store_object(
    name: &str,
    creds_ns: &str,
    class: Option<&str>,
) -> serde_json::Value {
    let region = crate::Stack::started()
        .expect("the stack is up")
        .var("AWS_REGION");
    let mut spec = json!({ "provider": { "aws": { "service": "SecretsManager", "region": region, "auth": { "secretRef": {
        "accessKeyIDSecretRef": { "name": "aws", "key": "id", "namespace": creds_ns },
        "secretAccessKeySecretRef": { "name": "aws", "key": "secret", "namespace": creds_ns } } } } } });
    if let Some(class) = class {
        spec["controller"] = json!(class);
    }
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": { "name": name }, "spec": spec
    })
}

/// A SecretStore reading Secrets Manager with credentials from the Secret `credentials`.
pub fn aws_store_object(ns: &str, name: &str, credentials: &str) -> serde_json::Value {
    let region = crate::Stack::started()
        .expect("the stack is up (setup brings it up)")
        .var("AWS_REGION");
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "provider": { "aws": { "service": "SecretsManager", "region": region, "auth": { "secretRef": {
            "accessKeyIDSecretRef": { "name": credentials, "key": "access-key-id" },
            "secretAccessKeySecretRef": { "name": credentials, "key": "secret-access-key" } } } } } }
    })
}

/// Merge-patches an ExternalSecret (metadata or spec).
pub async fn patch_es(client: &kube::Client, ns: &str, name: &str, patch: serde_json::Value) {
    Api::<ExternalSecret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patching ExternalSecret {ns}/{name}: {e}"));
}

/// ESO's documented force sync: annotate the ExternalSecret with `force-sync=<now>`.
pub async fn force_sync(client: &kube::Client, ns: &str, name: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string();
    patch_es(
        client,
        ns,
        name,
        json!({ "metadata": { "annotations": { "force-sync": now } } }),
    )
    .await;
}

/// Waits until the Secret's data is exactly `want`, and returns it.
pub async fn wait_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: &[(&str, &str)],
) -> Secret {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let secret = api.get_opt(name).await.expect("get Secret");
        if let Some(secret) = &secret
            && data_of(secret) == want
        {
            return secret.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let conditions: Vec<_> = Api::<ExternalSecret>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .map(|es| (es.metadata.name.clone(), ready_of(es).cloned()))
                .collect();
            panic!(
                "Secret {ns}/{name} holds {:?}, want {want:?}; ExternalSecrets: {conditions:?}",
                secret.as_ref().map(data_of)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an ExternalSecret's Ready condition has this status and reason.
pub async fn wait_ready_reason(
    client: &kube::Client,
    ns: &str,
    name: &str,
    status: ConditionStatus,
    reason: &str,
) -> ExternalSecret {
    wait_for(client, ns, name, |es| {
        ready_of(es).is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason))
    })
    .await
}

/// Waits until the Secret does not exist.
pub async fn wait_secret_gone(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while api.get_opt(name).await.expect("get Secret").is_some() {
        if tokio::time::Instant::now() > deadline {
            panic!("Secret {ns}/{name} still exists after {CONVERGE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that `check` holds of the Secret (`None`: absent) throughout `period`, polling.
/// For the deliberate "nothing happens" checks.
pub async fn assert_secret_stays(
    client: &kube::Client,
    ns: &str,
    name: &str,
    period: Duration,
    what: &str,
    check: impl Fn(Option<&Secret>) -> bool,
) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + period;
    loop {
        let secret = api.get_opt(name).await.expect("get Secret");
        assert!(
            check(secret.as_ref()),
            "Secret {ns}/{name}: {what}; it is now {:?}",
            secret.as_ref().map(data_of)
        );
        if tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of one key of a Secret, if both exist.
pub fn value_of(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret.and_then(|s| data_of(s).get(key).cloned())
}

/// Every Event (events.k8s.io/v1, as the recorder writes them) in a namespace.
pub async fn events(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
}

/// Waits for an Event with `reason` about the object named `regarding`.
pub async fn wait_event(client: &kube::Client, ns: &str, regarding: &str, reason: &str) -> Event {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let found = events(client, ns).await.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
        });
        if let Some(event) = found {
            return event;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no {reason} Event about {ns}/{regarding} within {CONVERGE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Ready condition of a SecretStore.
pub fn store_ready_of(store: &SecretStore) -> Option<&SecretStoreStatusCondition> {
    store
        .store_status()?
        .condition(secret_sync_crd::well_known::condition::READY)
}

/// Polls a SecretStore until `done` holds.
pub async fn wait_store(
    client: &kube::Client,
    ns: &str,
    name: &str,
    done: impl Fn(&SecretStore) -> bool,
) -> SecretStore {
    let api: Api<SecretStore> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let current = api.get_opt(name).await.expect("get SecretStore");
        if let Some(store) = &current
            && done(store)
        {
            return store.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "SecretStore {ns}/{name} did not converge within {CONVERGE:?}; status: {:?}",
                current.and_then(|s| s.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
