//! The integration tests' view of the local stack (`infra/local/stack`).
//!
//! [`Stack::get`] brings the stack up once per test binary (`stack up` is idempotent and cheap
//! when everything already runs), reads the env file it writes, and hands out clients for the
//! three real servers. Nothing here sets process environment variables: clients are configured
//! explicitly, so tests can run in parallel threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use tokio::sync::OnceCell;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

#[path = "harness/apiserver.rs"]
pub mod apiserver;
#[path = "harness/aws_events.rs"]
pub mod aws_events;
#[path = "harness/bao.rs"]
pub mod bao;
#[path = "harness/cleanup.rs"]
pub mod cleanup;
#[path = "harness/controller.rs"]
pub mod controller;
#[path = "harness/identity.rs"]
pub mod identity;
#[path = "harness/lambda.rs"]
pub mod lambda;
#[path = "harness/lambda_stack.rs"]
pub mod lambda_stack;
#[path = "harness/ldap.rs"]
pub mod ldap;
#[path = "harness/node.rs"]
pub mod node;
#[path = "harness/process.rs"]
pub mod process;
#[path = "harness/proxy.rs"]
pub mod proxy;
#[path = "harness/referents.rs"]
pub mod referents;
#[path = "harness/vault_events.rs"]
pub mod vault_events;
#[path = "harness/webhook.rs"]
pub mod webhook;

pub const FIELD_MANAGER: &str = "secret-sync-tests";

/// The running local stack and how to reach it.
#[derive(Debug)]
pub struct Stack {
    env: HashMap<String, String>,
}

static STACK: OnceCell<Stack> = OnceCell::const_new();

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

impl Stack {
    /// Brings the stack up (once per process) and returns it.
    pub async fn get() -> &'static Stack {
        STACK
            .get_or_init(|| async {
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                tokio::task::spawn_blocking(Stack::start)
                    .await
                    .expect("stack start task")
                    .unwrap_or_else(|e| panic!("local stack unavailable: {e:#}"))
            })
            .await
    }

    /// Runs `cleanup` to completion from a `Drop`: on a thread and a runtime of its own (a drop
    /// cannot await, and the test's runtime may be ending because the test panicked), with
    /// fresh clients. Nothing runs when this process never reached the stack.
    pub fn clean_up<F, Fut>(cleanup: F)
    where
        F: FnOnce(&'static Stack) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let Some(stack) = Stack::started() else {
            return;
        };
        let cleaner =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(cleanup(stack)),
                    Err(e) => eprintln!("cleanup skipped: no runtime: {e}"),
                }
            });
        let _ = cleaner.join();
    }

    /// The stack, if this process has brought it up already.
    pub fn started() -> Option<&'static Stack> {
        STACK.get()
    }

    fn start() -> anyhow::Result<Stack> {
        let script = repo_root().join("infra/local/stack");
        let status = Command::new(&script)
            .arg("up")
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("`infra/local/stack up` failed with {status}");
        }
        let dir = std::env::var("SECRET_SYNC_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".stack"));
        let env = parse_env_file(&dir.join("env"))?;
        Ok(Stack { env })
    }

    /// Every value of the stack's env file, for a process the test starts.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A value from the stack's env file, such as `AWS_ENDPOINT_URL`.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the stack's env file"))
    }

    /// A Kubernetes client for the local apiserver, with its CA verified.
    pub async fn kube(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(self.var("KUBECONFIG")).expect("read kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig is valid");
        kube::Client::try_from(config).expect("kube client")
    }

    /// AWS SDK configuration pointing at moto_server.
    pub async fn aws(&self) -> aws_config::SdkConfig {
        let creds = aws_sdk_secretsmanager::config::Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "secret-sync-tests",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.var("AWS_ENDPOINT_URL"))
            .region(aws_config::Region::new(self.var("AWS_REGION").to_owned()))
            .credentials_provider(creds)
            .load()
            .await
    }

    /// A Vault client for the OpenBao dev server, with the root token.
    pub fn vault(&self) -> VaultClient {
        let settings = VaultClientSettingsBuilder::default()
            .address(self.var("VAULT_ADDR"))
            .token(self.var("VAULT_TOKEN"))
            .build()
            .expect("vault settings");
        VaultClient::new(settings).expect("vault client")
    }

    /// Runs the `bao` CLI as root against the OpenBao dev server: its output, or its error
    /// output when it fails.
    pub fn bao_try(&self, args: &[&str]) -> Result<String, String> {
        let out =
            std::process::Command::new(format!("{}/bin/bao", self.var("SECRET_SYNC_STACK_DIR")))
                .args(args)
                .env("BAO_ADDR", self.var("VAULT_ADDR"))
                .env("BAO_TOKEN", self.var("VAULT_TOKEN"))
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`Stack::bao_try`] that panics on failure.
    pub fn bao(&self, args: &[&str]) -> String {
        self.bao_try(args)
            .unwrap_or_else(|e| panic!("bao {args:?}: {e}"))
    }
}

fn parse_env_file(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect())
}

/// A name no other test (or earlier run against the same stack) has used.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{:x}{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Creates a namespace with a fresh name and returns it.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    ensure_namespace(client, &name).await;
    name
}

/// Creates a namespace with a fresh name and the given labels; it is deleted when the returned
/// guard is dropped.
pub async fn scoped_namespace(
    client: &kube::Client,
    prefix: &str,
    labels: &[(&str, &str)],
) -> (String, cleanup::Cleanup) {
    let name = unique_name(prefix);
    let labels: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": labels }
    }))
    .expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    let guard = cleanup::Cleanup::namespace(&name);
    (name, guard)
}

/// Creates the namespace if it does not exist.
pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
    }))
    .expect("namespace object");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// Deletes a namespace (the namespace controller empties it).
pub async fn delete_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// The CRDs committed under `infra/crds/`, as the apiserver would receive them.
pub fn committed_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("infra/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read CRD file");
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
        })
        .collect()
}

/// Installs (server-side applies) the committed CRDs and waits until each is established.
/// Safe to call from several tests at once.
pub async fn install_crds(client: &kube::Client) -> Vec<CustomResourceDefinition> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = committed_crds();
    assert!(!crds.is_empty(), "infra/crds holds no CRDs");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in &crds {
        let name = crd.metadata.name.clone().expect("CRD has a name");
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().expect("CRD has a name");
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established within 30s"))
        .expect("watching CRD");
    }
    // Established is not yet discoverable: a freshly started apiserver publishes new kinds in
    // its discovery documents a moment later, and clients resolve kinds through discovery.
    for crd in &crds {
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.served)
            .expect("a served version");
        let gvk =
            kube::core::GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = kube::discovery::pinned_kind(client, &gvk).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not discoverable within 30s: {e}",
                gvk.kind
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    crds
}
