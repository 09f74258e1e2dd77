//! The Vault provider against the real OpenBao dev server: KV v2 reads with versions and custom
//! metadata, KV v1 reads, `find` by path, regexp and tags, token / AppRole / userpass logins,
//! the token cache (one login for many reads, a new login after revocation or lease expiry, none
//! for a plain permission denial), TLS, mutual TLS and TLS certificate auth, validation, and
//! error hygiene.
//!
//! Setup goes through the `bao` CLI with the root token. Each test uses its own secret paths and
//! its own auth mounts, so tests run in parallel and against a server earlier runs wrote to.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use secret_sync_crd::provider::{
    VaultAppRole, VaultAuth, VaultKvVersion, VaultProvider, VaultUserPassAuth,
};
use secret_sync_crd::{SecretKeySelector, SecretStoreProvider, StoreKind};
use secret_sync_providers::vault::VaultClient;
use secret_sync_providers::{
    BuildOptions, Find, Provider, ProviderError, ReferentError, Referents, RemoteRef, SecretBytes,
    StoreScope, Validation,
};
use secret_sync_tests::bao::{DevBao, free_port};
use secret_sync_tests::referents::MemoryReferents;
use secret_sync_tests::{Stack, unique_name};
use serde_json::{Value, json};

const NS: &str = "apps";

/// Runs the `bao` CLI as root; `stdin` is piped in when given. Panics on failure.
fn bao(stack: &Stack, args: &[&str], stdin: Option<&str>) -> String {
    bao_in(stack, None, args, stdin)
}

/// [`bao`] that returns `None` on failure (as for an empty LIST).
fn bao_try(stack: &Stack, args: &[&str]) -> Option<String> {
    let bin = format!("{}/bin/bao", stack.var("SECRET_SYNC_STACK_DIR"));
    let out = Command::new(bin)
        .args(args)
        .env("BAO_ADDR", stack.var("VAULT_ADDR"))
        .env("BAO_TOKEN", stack.var("VAULT_TOKEN"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`bao`] in a Vault namespace.
fn bao_in(stack: &Stack, namespace: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
    let bin = format!("{}/bin/bao", stack.var("SECRET_SYNC_STACK_DIR"));
    let mut command = Command::new(bin);
    if let Some(ns) = namespace {
        command.env("BAO_NAMESPACE", ns);
    }
    let mut child = command
        .args(args)
        .env("BAO_ADDR", stack.var("VAULT_ADDR"))
        .env("BAO_TOKEN", stack.var("VAULT_TOKEN"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bao");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("bao output");
    assert!(
        out.status.success(),
        "bao {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Disables an auth mount (or deletes a Vault namespace) when dropped, so runs do not pile
/// them up on the long-lived dev server.
struct Teardown(Vec<&'static str>, String);

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(stack) = Stack::started() {
            let bin = format!("{}/bin/bao", stack.var("SECRET_SYNC_STACK_DIR"));
            let _ = Command::new(bin)
                .args(&self.0)
                .arg(&self.1)
                .env("BAO_ADDR", stack.var("VAULT_ADDR"))
                .env("BAO_TOKEN", stack.var("VAULT_TOKEN"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn auth_mount_teardown(mount: &str) -> Teardown {
    Teardown(vec!["auth", "disable"], mount.to_owned())
}

/// Writes a KV v2 secret (any JSON object) and returns nothing.
fn put_v2(stack: &Stack, key: &str, data: Value) {
    let body = json!({ "data": data }).to_string();
    bao(
        stack,
        &["write", &format!("secret/data/{key}"), "-"],
        Some(&body),
    );
}

fn put_v1(stack: &Stack, key: &str, data: Value) {
    bao(
        stack,
        &["write", &format!("kv1/{key}"), "-"],
        Some(&data.to_string()),
    );
}

fn set_custom_metadata(stack: &Stack, key: &str, metadata: Value) {
    let body = json!({ "custom_metadata": metadata }).to_string();
    bao(
        stack,
        &["write", &format!("secret/metadata/{key}"), "-"],
        Some(&body),
    );
}

/// A policy that may read (and list) everything under `secret/<prefix>/`.
fn read_policy(stack: &Stack, name: &str, prefix: &str) {
    let policy = format!(
        "path \"secret/data/{prefix}/*\" {{ capabilities = [\"read\"] }}\n\
         path \"secret/metadata/{prefix}/*\" {{ capabilities = [\"read\", \"list\"] }}\n"
    );
    bao(stack, &["policy", "write", name, "-"], Some(&policy));
}

fn scope() -> StoreScope {
    StoreScope {
        kind: StoreKind::SecretStore,
        name: "vault-store".into(),
        namespace: NS.into(),
    }
}

fn sel(name: &str, key: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: name.into(),
        key: key.into(),
        namespace: None,
    }
}

fn token_auth() -> VaultAuth {
    VaultAuth {
        token_secret_ref: Some(sel("vault-token", "token")),
        ..Default::default()
    }
}

fn root_referents(stack: &Stack) -> MemoryReferents {
    MemoryReferents::default().with_secret(NS, "vault-token", "token", stack.var("VAULT_TOKEN"))
}

fn provider(stack: &Stack, mount: &str, version: VaultKvVersion, auth: VaultAuth) -> VaultProvider {
    VaultProvider {
        server: stack.var("VAULT_ADDR").into(),
        path: Some(mount.into()),
        version,
        auth: Some(auth),
        ..Default::default()
    }
}

async fn client(provider: &VaultProvider, referents: Arc<MemoryReferents>) -> VaultClient {
    VaultClient::new(provider, &scope(), referents)
        .await
        .unwrap_or_else(|e| panic!("build: {e}"))
}

async fn root_client(stack: &Stack, mount: &str, version: VaultKvVersion) -> VaultClient {
    client(
        &provider(stack, mount, version, token_auth()),
        Arc::new(root_referents(stack)),
    )
    .await
}

fn json_of(v: &SecretBytes) -> Value {
    serde_json::from_slice(v.expose()).expect("value is JSON")
}

fn versioned(key: &str, version: &str) -> RemoteRef {
    RemoteRef {
        version: Some(version.into()),
        ..RemoteRef::key(key)
    }
}

/// Every text an error can show: Display, Debug and the source chain.
fn error_texts(e: &ProviderError) -> String {
    let mut out = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn kv2_reads_the_whole_data_as_json_and_older_versions() {
    let stack = Stack::get().await;
    let key = unique_name("kv2");
    put_v2(
        stack,
        &key,
        json!({"user": "alice", "port": 5432, "tls": true, "nested": {"a": {"b": "c"}}, "list": [1, "x"]}),
    );
    put_v2(stack, &key, json!({"user": "bob"}));
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;

    let latest = c.get(&RemoteRef::key(&key)).await.expect("latest");
    assert_eq!(json_of(&latest), json!({"user": "bob"}));
    let first = c.get(&versioned(&key, "1")).await.expect("version 1");
    assert_eq!(
        json_of(&first),
        json!({"user": "alice", "port": 5432, "tls": true, "nested": {"a": {"b": "c"}}, "list": [1, "x"]})
    );
    // The bytes are Go's json.Marshal of the data, as ESO's: keys sorted, HTML escaped.
    assert_eq!(
        std::str::from_utf8(first.expose()).expect("UTF-8"),
        r#"{"list":[1,"x"],"nested":{"a":{"b":"c"}},"port":5432,"tls":true,"user":"alice"}"#
    );
    let html = format!("{key}-html");
    put_v2(stack, &html, json!({"url": "a?b=1&c=<2>"}));
    assert_eq!(
        c.get(&RemoteRef::key(&html)).await.expect("html").expose(),
        br#"{"url":"a?b=1\u0026c=\u003c2\u003e"}"#
    );
    // Keys with characters a URL must escape.
    let odd = format!("{key}/with space#and%more");
    put_v2(stack, &odd, json!({"odd": "yes"}));
    assert_eq!(
        json_of(&c.get(&RemoteRef::key(&odd)).await.expect("odd key")),
        json!({"odd": "yes"})
    );
    // A key that names the mount (and `data/`) reads the same secret, as in ESO.
    let prefixed = c
        .get(&RemoteRef::key(format!("secret/data/{key}")))
        .await
        .expect("prefixed");
    assert_eq!(json_of(&prefixed), json!({"user": "bob"}));
    // A mount given with its `/data` suffix works too.
    let suffixed = client(
        &provider(stack, "secret/data", VaultKvVersion::V2, token_auth()),
        Arc::new(root_referents(stack)),
    )
    .await;
    assert_eq!(
        json_of(&suffixed.get(&RemoteRef::key(&key)).await.expect("read")),
        json!({"user": "bob"})
    );

    for missing in [RemoteRef::key(format!("{key}-nope")), versioned(&key, "9")] {
        let err = c.get(&missing).await.expect_err("missing");
        assert!(
            matches!(err, ProviderError::NotFound { .. }),
            "{missing:?}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    // A deleted latest version is not found; older versions still read.
    bao(stack, &["kv", "delete", &format!("secret/{key}")], None);
    let err = c.get(&RemoteRef::key(&key)).await.expect_err("deleted");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    assert!(c.get(&versioned(&key, "1")).await.is_ok());
    let err = c
        .get(&versioned(&key, "abc"))
        .await
        .expect_err("bad version");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn kv2_metadata_fetch_returns_custom_metadata() {
    let stack = Stack::get().await;
    let key = unique_name("meta");
    put_v2(stack, &key, json!({"v": "1"}));
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;
    let fetch = RemoteRef {
        metadata: true,
        ..RemoteRef::key(&key)
    };
    // ESO's metadata: the system fields as strings, then the custom metadata.
    let plain = json_of(&c.get(&fetch).await.expect("no custom metadata"));
    assert_eq!(plain["current_version"], json!("1"), "{plain}");
    assert_eq!(plain["delete_version_after"], json!("0s"), "{plain}");
    assert!(plain["created_time"].is_string(), "{plain}");
    assert_eq!(plain.as_object().map(|o| o.len()), Some(3), "{plain}");
    set_custom_metadata(stack, &key, json!({"team": "payments", "env": "prod"}));
    let with_custom = json_of(&c.get(&fetch).await.expect("metadata"));
    assert_eq!(with_custom["team"], json!("payments"));
    assert_eq!(with_custom["env"], json!("prod"));
    assert_eq!(with_custom.as_object().map(|o| o.len()), Some(5));
    let missing = RemoteRef {
        metadata: true,
        ..RemoteRef::key(format!("{key}-nope"))
    };
    assert!(matches!(
        c.get(&missing).await,
        Err(ProviderError::NotFound { .. })
    ));
}

#[tokio::test]
async fn kv1_reads_the_whole_data_and_refuses_versions_and_metadata() {
    let stack = Stack::get().await;
    let key = unique_name("kv1");
    put_v1(stack, &key, json!({"user": "carol", "n": 7}));
    let c = root_client(stack, "kv1", VaultKvVersion::V1).await;
    assert_eq!(
        json_of(&c.get(&RemoteRef::key(&key)).await.expect("read")),
        json!({"user": "carol", "n": 7})
    );
    assert_eq!(
        json_of(
            &c.get(&RemoteRef::key(format!("kv1/{key}")))
                .await
                .expect("prefixed")
        ),
        json!({"user": "carol", "n": 7})
    );
    assert!(matches!(
        c.get(&RemoteRef::key(format!("{key}-nope"))).await,
        Err(ProviderError::NotFound { .. })
    ));
    let metadata = RemoteRef {
        metadata: true,
        ..RemoteRef::key(&key)
    };
    assert!(matches!(
        c.get(&metadata).await,
        Err(ProviderError::Config(m)) if m.contains("kv version v1")
    ));
    assert!(matches!(
        c.get(&versioned(&key, "1")).await,
        Err(ProviderError::Config(_))
    ));
}

#[tokio::test]
async fn find_lists_recursively_by_path_and_regexp() {
    let stack = Stack::get().await;
    let root = unique_name("find");
    put_v2(stack, &format!("{root}/a/one"), json!({"k": "1"}));
    put_v2(stack, &format!("{root}/a/two"), json!({"k": "2"}));
    put_v2(stack, &format!("{root}/b/deep/three"), json!({"k": "3"}));
    put_v2(stack, &format!("{root}/gone"), json!({"k": "x"}));
    bao(
        stack,
        &["kv", "delete", &format!("secret/{root}/gone")],
        None,
    );
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;

    let found = c
        .find(&Find {
            path: Some(root.clone()),
            name_regexp: Some("one|three".into()),
            ..Default::default()
        })
        .await
        .expect("find by regexp");
    let keys: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            format!("{root}/a/one").as_str(),
            format!("{root}/b/deep/three").as_str()
        ]
    );
    assert_eq!(json_of(&found[&format!("{root}/a/one")]), json!({"k": "1"}));
    // The pattern is Go's: `[o&&x]` is the class {o, &, x} (the regex crate reads an empty
    // intersection) and `\Q...\E` quotes (the regex crate refuses it).
    let go = c
        .find(&Find {
            path: Some(root.clone()),
            name_regexp: Some(r"/[o&&x]ne$|\Qdeep/\E".into()),
            ..Default::default()
        })
        .await
        .expect("find by a Go pattern");
    assert_eq!(
        go.keys().map(String::as_str).collect::<Vec<_>>(),
        [format!("{root}/a/one"), format!("{root}/b/deep/three")]
    );

    let under_a = c
        .find(&Find {
            path: Some(format!("{root}/a")),
            ..Default::default()
        })
        .await
        .expect("find by path");
    assert_eq!(under_a.len(), 2, "{:?}", under_a.keys());
    // Deleted secrets list but are skipped.
    let all = c
        .find(&Find {
            path: Some(root.clone()),
            name_regexp: Some(".".into()),
            ..Default::default()
        })
        .await
        .expect("find all");
    assert_eq!(all.len(), 3, "{:?}", all.keys());
    // A folder with nothing in it is "not found", as ESO's NoSecretError.
    let err = c
        .find(&Find {
            path: Some(format!("{root}-none")),
            name_regexp: Some(".".into()),
            ..Default::default()
        })
        .await
        .expect_err("empty folder");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");

    // KV v1 lists the plain mount.
    put_v1(stack, &format!("{root}/x/one"), json!({"k": "v1"}));
    put_v1(stack, &format!("{root}/two"), json!({"k": "v2"}));
    let v1 = root_client(stack, "kv1", VaultKvVersion::V1).await;
    let found = v1
        .find(&Find {
            path: Some(root.clone()),
            name_regexp: Some("one$".into()),
            ..Default::default()
        })
        .await
        .expect("v1 find");
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        [format!("{root}/x/one")]
    );
    let err = v1
        .find(&Find {
            path: Some(root.clone()),
            tags: BTreeMap::from([("a".into(), "b".into())]),
            ..Default::default()
        })
        .await
        .expect_err("tags on v1");
    assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn find_by_tags_matches_custom_metadata() {
    let stack = Stack::get().await;
    let root = unique_name("tags");
    for (name, team) in [
        ("a", Some("x")),
        ("b", Some("y")),
        ("c", None),
        ("d", Some("x")),
    ] {
        let key = format!("{root}/{name}");
        put_v2(stack, &key, json!({"name": name}));
        if let Some(team) = team {
            set_custom_metadata(stack, &key, json!({"team": team, "env": "prod"}));
        }
    }
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;
    let found = c
        .find(&Find {
            path: Some(root.clone()),
            tags: BTreeMap::from([("team".into(), "x".into()), ("env".into(), "prod".into())]),
            ..Default::default()
        })
        .await
        .expect("find by tags");
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        [format!("{root}/a"), format!("{root}/d")]
    );
    assert_eq!(json_of(&found[&format!("{root}/d")]), json!({"name": "d"}));
    // As in ESO, a name regexp takes precedence: the tags are then ignored.
    let found = c
        .find(&Find {
            path: Some(root.clone()),
            name_regexp: Some("/[cd]$".into()),
            tags: BTreeMap::from([("team".into(), "x".into())]),
        })
        .await
        .expect("find by name and tags");
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        [format!("{root}/c"), format!("{root}/d")]
    );
}

#[tokio::test]
async fn token_auth_validates_and_a_bad_token_is_refused() {
    let stack = Stack::get().await;
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(c.metric_name(), "HashiCorp/Vault");

    let referents = Arc::new(MemoryReferents::default().with_secret(
        NS,
        "vault-token",
        "token",
        "s.not-a-real-token",
    ));
    let bad = client(
        &provider(stack, "secret", VaultKvVersion::V2, token_auth()),
        referents.clone(),
    )
    .await;
    let err = bad.validate().await.expect_err("bad token");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    let err = bad
        .get(&RemoteRef::key("anything"))
        .await
        .expect_err("bad token read");
    assert!(matches!(err, ProviderError::AccessDenied { .. }), "{err:?}");
    assert!(err.is_retryable());

    // A rotated token in the Secret is picked up on the next refusal.
    referents.set(NS, "vault-token", "token", stack.var("VAULT_TOKEN"));
    assert_eq!(bad.validate().await.expect("rotated"), Validation::Ready);

    // Missing Secret: a referent error, retryable.
    let none = client(
        &provider(stack, "secret", VaultKvVersion::V2, token_auth()),
        Arc::new(MemoryReferents::default()),
    )
    .await;
    let err = none.validate().await.expect_err("no secret");
    assert!(matches!(err, ProviderError::Referent(_)), "{err:?}");
}

#[tokio::test]
async fn a_cluster_store_with_referent_auth_validates_to_unknown() {
    let stack = Stack::get().await;
    let p = provider(stack, "secret", VaultKvVersion::V2, token_auth());
    let scope = StoreScope {
        kind: StoreKind::ClusterSecretStore,
        name: "css".into(),
        namespace: String::new(),
    };
    let c = VaultClient::new(&p, &scope, Arc::new(MemoryReferents::default()))
        .await
        .expect("build");
    assert_eq!(c.validate().await.expect("validate"), Validation::Unknown);
    assert!(secret_sync_providers::uses_referent_auth(
        &SecretStoreProvider {
            vault: Some(p),
            ..Default::default()
        }
    ));
}

#[tokio::test]
async fn build_dispatches_vault_stores() {
    let stack = Stack::get().await;
    let key = unique_name("build");
    put_v2(stack, &key, json!({"a": "b"}));
    let store = SecretStoreProvider {
        vault: Some(provider(stack, "secret", VaultKvVersion::V2, token_auth())),
        ..Default::default()
    };
    let c = secret_sync_providers::build(
        &store,
        &scope(),
        Arc::new(root_referents(stack)),
        &BuildOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!(c.metric_name(), "HashiCorp/Vault");
    assert_eq!(
        json_of(&c.get(&RemoteRef::key(&key)).await.expect("read")),
        json!({"a": "b"})
    );
}

/// Enables AppRole at a fresh mount with a role reading `secret/<prefix>/*`; returns
/// (mount, role_id, secret_id).
fn approle(stack: &Stack, prefix: &str, token_ttl: &str) -> (String, String, String, Teardown) {
    let mount = unique_name("approle");
    let teardown = auth_mount_teardown(&mount);
    bao(
        stack,
        &["auth", "enable", &format!("-path={mount}"), "approle"],
        None,
    );
    read_policy(stack, &mount, prefix);
    bao(
        stack,
        &[
            "write",
            &format!("auth/{mount}/role/reader"),
            &format!("token_policies={mount}"),
            &format!("token_ttl={token_ttl}"),
            "token_max_ttl=1h",
        ],
        None,
    );
    let role_id = bao(
        stack,
        &[
            "read",
            "-field=role_id",
            &format!("auth/{mount}/role/reader/role-id"),
        ],
        None,
    );
    let secret_id = bao(
        stack,
        &[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/{mount}/role/reader/secret-id"),
        ],
        None,
    );
    (mount, role_id, secret_id, teardown)
}

fn approle_auth(mount: &str, role_id: Option<&str>) -> VaultAuth {
    VaultAuth {
        app_role: Some(VaultAppRole {
            path: mount.into(),
            role_id: role_id.map(Into::into),
            role_ref: role_id.is_none().then(|| sel("approle", "role-id")),
            secret_ref: sel("approle", "secret-id"),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn approle_logs_in_once_and_again_after_revocation() {
    let stack = Stack::get().await;
    let prefix = unique_name("ar");
    let secret_value = unique_name("very-secret-value");
    put_v2(
        stack,
        &format!("{prefix}/db"),
        json!({"password": secret_value}),
    );
    put_v2(
        stack,
        &format!("{prefix}-other/db"),
        json!({"password": secret_value}),
    );
    let (mount, role_id, secret_id, _teardown) = approle(stack, &prefix, "1h");
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "approle", "secret-id", &secret_id)
            .with_secret(NS, "approle", "role-id", &format!("{role_id}\n")),
    );
    for inline in [true, false] {
        let c = client(
            &provider(
                stack,
                "secret",
                VaultKvVersion::V2,
                approle_auth(&mount, inline.then_some(role_id.as_str())),
            ),
            referents.clone(),
        )
        .await;
        let before = referents.reads_of("approle", "secret-id");
        assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
        for _ in 0..3 {
            let v = c
                .get(&RemoteRef::key(format!("{prefix}/db")))
                .await
                .expect("read");
            assert_eq!(json_of(&v), json!({"password": secret_value}));
        }
        assert_eq!(
            referents.reads_of("approle", "secret-id") - before,
            1,
            "one login for many reads"
        );

        // Outside the policy: access denied, no new login, no value in the error.
        let err = c
            .get(&RemoteRef::key(format!("{prefix}-other/db")))
            .await
            .expect_err("denied");
        assert!(matches!(err, ProviderError::AccessDenied { .. }), "{err:?}");
        assert!(!error_texts(&err).contains(&secret_value));
        assert_eq!(referents.reads_of("approle", "secret-id") - before, 1);

        // Revoke every token the mount issued: the next read logs in again.
        bao(
            stack,
            &["lease", "revoke", "-prefix", &format!("auth/{mount}/")],
            None,
        );
        let v = c
            .get(&RemoteRef::key(format!("{prefix}/db")))
            .await
            .expect("read after revocation");
        assert_eq!(json_of(&v), json!({"password": secret_value}));
        assert_eq!(referents.reads_of("approle", "secret-id") - before, 2);
    }

    // Dropping a client revokes the token it logged in for.
    let c = client(
        &provider(
            stack,
            "secret",
            VaultKvVersion::V2,
            approle_auth(&mount, Some(&role_id)),
        ),
        referents.clone(),
    )
    .await;
    c.get(&RemoteRef::key(format!("{prefix}/db")))
        .await
        .expect("read before drop");
    let leases = format!("sys/leases/lookup/auth/{mount}/login/");
    assert!(
        bao_try(stack, &["list", &leases]).is_some(),
        "a login lease"
    );
    drop(c);
    let mut revoked = false;
    for _ in 0..50 {
        if bao_try(stack, &["list", &leases]).is_none() {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(revoked, "the dropped client's token is revoked");

    // A wrong secret id fails the login: an auth error without the credential.
    let wrong = Arc::new(MemoryReferents::default().with_secret(
        NS,
        "approle",
        "secret-id",
        "wrong-secret-id",
    ));
    let c = client(
        &provider(
            stack,
            "secret",
            VaultKvVersion::V2,
            approle_auth(&mount, Some(&role_id)),
        ),
        wrong,
    )
    .await;
    let err = c.validate().await.expect_err("wrong secret id");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    let texts = error_texts(&err);
    assert!(!texts.contains("wrong-secret-id"), "{texts}");
}

#[tokio::test]
async fn a_login_is_renewed_before_its_lease_ends() {
    let stack = Stack::get().await;
    let prefix = unique_name("ttl");
    put_v2(stack, &format!("{prefix}/k"), json!({"v": "1"}));
    let (mount, role_id, secret_id, _teardown) = approle(stack, &prefix, "3s");
    let referents =
        Arc::new(MemoryReferents::default().with_secret(NS, "approle", "secret-id", &secret_id));
    let c = client(
        &provider(
            stack,
            "secret",
            VaultKvVersion::V2,
            approle_auth(&mount, Some(&role_id)),
        ),
        referents.clone(),
    )
    .await;
    c.get(&RemoteRef::key(format!("{prefix}/k")))
        .await
        .expect("first read");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    c.get(&RemoteRef::key(format!("{prefix}/k")))
        .await
        .expect("read after the lease");
    assert_eq!(referents.reads_of("approle", "secret-id"), 2);
}

#[tokio::test]
async fn userpass_logs_in_with_a_password_from_a_secret() {
    let stack = Stack::get().await;
    let prefix = unique_name("up");
    put_v2(stack, &format!("{prefix}/k"), json!({"v": "userpass"}));
    let mount = unique_name("userpass");
    let _teardown = auth_mount_teardown(&mount);
    bao(
        stack,
        &["auth", "enable", &format!("-path={mount}"), "userpass"],
        None,
    );
    read_policy(stack, &mount, &prefix);
    bao(
        stack,
        &[
            "write",
            &format!("auth/{mount}/users/reader"),
            "password=hunter2-pass",
            &format!("token_policies={mount}"),
        ],
        None,
    );
    let auth = |secret: &str| VaultAuth {
        user_pass: Some(VaultUserPassAuth {
            path: mount.clone(),
            username: "reader".into(),
            secret_ref: Some(sel(secret, "password")),
        }),
        ..Default::default()
    };
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "up", "password", "hunter2-pass")
            .with_secret(NS, "bad", "password", "wrong-password-123"),
    );
    let c = client(
        &provider(stack, "secret", VaultKvVersion::V2, auth("up")),
        referents.clone(),
    )
    .await;
    // Concurrent first reads share one login.
    let key = RemoteRef::key(format!("{prefix}/k"));
    let reads = futures::future::join_all((0..8).map(|_| c.get(&key))).await;
    assert!(reads.iter().all(Result::is_ok), "{reads:?}");
    assert_eq!(referents.reads_of("up", "password"), 1);
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(
            &c.get(&RemoteRef::key(format!("{prefix}/k")))
                .await
                .expect("read")
        ),
        json!({"v": "userpass"})
    );
    let bad = client(
        &provider(stack, "secret", VaultKvVersion::V2, auth("bad")),
        referents,
    )
    .await;
    let err = bad
        .get(&RemoteRef::key(format!("{prefix}/k")))
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(!error_texts(&err).contains("wrong-password-123"));
}

#[tokio::test]
async fn errors_carry_no_values() {
    let stack = Stack::get().await;
    let key = unique_name("hygiene");
    let value = unique_name("top-secret-value");
    put_v2(stack, &key, json!({"password": value}));
    // An unreachable server, a bad version, a missing secret: none mention the value.
    let c = root_client(stack, "secret", VaultKvVersion::V2).await;
    let mut errors = vec![
        c.get(&versioned(&key, "7")).await.expect_err("no version"),
        c.get(&RemoteRef::key(format!("{key}/x")))
            .await
            .expect_err("missing"),
    ];
    let mut unreachable = provider(stack, "secret", VaultKvVersion::V2, token_auth());
    unreachable.server = "http://127.0.0.1:1".into();
    let down = client(&unreachable, Arc::new(root_referents(stack))).await;
    let err = down.get(&RemoteRef::key(&key)).await.expect_err("down");
    assert!(err.is_retryable(), "{err:?}");
    errors.push(err);
    for err in &errors {
        let texts = error_texts(err);
        assert!(!texts.contains(&value), "{texts}");
        assert!(!texts.contains(stack.var("VAULT_TOKEN")) || stack.var("VAULT_TOKEN") == "root");
    }
    // The SecretBytes Debug of a read value is redacted.
    let v = c.get(&RemoteRef::key(&key)).await.expect("read");
    assert!(!format!("{v:?}").contains(&value));
}

/// The local apiserver's URL, CA (PEM) and admin token, from the stack's kubeconfig.
fn apiserver(stack: &Stack) -> (String, String, String) {
    use base64::Engine as _;
    let text = std::fs::read_to_string(stack.var("KUBECONFIG")).expect("read kubeconfig");
    let config: Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().expect("server").to_owned();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            cluster["certificate-authority-data"]
                .as_str()
                .expect("CA data"),
        )
        .expect("CA base64");
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    (server, String::from_utf8(ca).expect("CA PEM"), token)
}

#[tokio::test]
async fn kubernetes_auth_logs_in_with_a_requested_service_account_token() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    use secret_sync_crd::ServiceAccountSelector;
    use secret_sync_crd::provider::VaultKubernetesAuth;

    let stack = Stack::get().await;
    let kube = stack.kube().await;
    let (ns, _cleanup) = secret_sync_tests::scoped_namespace(&kube, "vault-k8s", &[]).await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("sa");
    Api::<ServiceAccount>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create service account");

    let prefix = unique_name("k8s");
    put_v2(stack, &format!("{prefix}/k"), json!({"v": "kubernetes"}));
    let mount = unique_name("kubernetes");
    let _teardown = auth_mount_teardown(&mount);
    bao(
        stack,
        &["auth", "enable", &format!("-path={mount}"), "kubernetes"],
        None,
    );
    read_policy(stack, &mount, &prefix);
    let (server, ca, admin_token) = apiserver(stack);
    let config = json!({
        "kubernetes_host": server,
        "kubernetes_ca_cert": ca,
        "token_reviewer_jwt": admin_token,
        "disable_local_ca_jwt": true,
    })
    .to_string();
    bao(
        stack,
        &["write", &format!("auth/{mount}/config"), "-"],
        Some(&config),
    );
    bao(
        stack,
        &[
            "write",
            &format!("auth/{mount}/role/reader"),
            "bound_service_account_names=reader",
            &format!("bound_service_account_namespaces={ns}"),
            &format!("token_policies={mount}"),
        ],
        None,
    );

    let auth = VaultAuth {
        kubernetes: Some(VaultKubernetesAuth {
            mount_path: mount.clone(),
            service_account_ref: Some(ServiceAccountSelector {
                name: "reader".into(),
                namespace: None,
                audiences: Vec::new(),
            }),
            secret_ref: None,
            role: "reader".into(),
        }),
        ..Default::default()
    };
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: "vault-k8s".into(),
        namespace: ns.clone(),
    };
    let c = VaultClient::new(
        &provider(stack, "secret", VaultKvVersion::V2, auth),
        &scope,
        Arc::new(secret_sync::KubeReferents::new(kube.clone())),
    )
    .await
    .unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(
            &c.get(&RemoteRef::key(format!("{prefix}/k")))
                .await
                .expect("read")
        ),
        json!({"v": "kubernetes"})
    );
    // After revocation, a new TokenRequest and login.
    bao(
        stack,
        &["lease", "revoke", "-prefix", &format!("auth/{mount}/")],
        None,
    );
    assert!(c.get(&RemoteRef::key(format!("{prefix}/k"))).await.is_ok());
}

/// An OpenBao dev server with TLS (`-dev-tls`) on a free port, stopped when dropped.
fn tls_bao(stack: &Stack) -> DevBao {
    DevBao::builder(stack_bao(stack), "bao-tls").tls().start()
}

/// The stack's `bao` binary.
fn stack_bao(stack: &Stack) -> String {
    format!("{}/bin/bao", stack.var("SECRET_SYNC_STACK_DIR"))
}

#[tokio::test]
async fn tls_trusts_the_ca_bundle_or_ca_provider_only() {
    use secret_sync_crd::provider::{CaProvider, CaProviderType};

    let stack = Stack::get().await;
    let server = tokio::task::spawn_blocking({
        let stack: &'static Stack = stack;
        move || tls_bao(stack)
    })
    .await
    .expect("start task");
    let body = json!({"data": {"v": "over tls"}}).to_string();
    server
        .cli(&["write", "secret/data/tls", "-"], Some(&body))
        .expect("seed the TLS server");
    let ca = std::fs::read_to_string(server.ca_path()).expect("CA");
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "vault-token", "token", "root")
            .with_secret(NS, "vault-ca", "ca.crt", &ca)
            .with_config_map(NS, "vault-ca-cm", &[("ca.crt", &ca)]),
    );
    let base = VaultProvider {
        server: server.addr.clone(),
        ..provider(stack, "secret", VaultKvVersion::V2, token_auth())
    };

    let with_bundle = VaultProvider {
        ca_bundle: Some(k8s_openapi::ByteString(ca.clone().into_bytes())),
        ..base.clone()
    };
    let c = client(&with_bundle, referents.clone()).await;
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("tls")).await.expect("read")),
        json!({"v": "over tls"})
    );

    let with_provider = VaultProvider {
        ca_provider: Some(CaProvider {
            type_: CaProviderType::Secret,
            name: "vault-ca".into(),
            key: "ca.crt".into(),
            namespace: None,
        }),
        ..base.clone()
    };
    let c = client(&with_provider, referents.clone()).await;
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("tls")).await.expect("read")),
        json!({"v": "over tls"})
    );

    // The same CA from a ConfigMap's `data`, in the SecretStore's namespace.
    let from_config_map = |name: &str, key: &str| VaultProvider {
        ca_provider: Some(CaProvider {
            type_: CaProviderType::ConfigMap,
            name: name.into(),
            key: key.into(),
            namespace: None,
        }),
        ..base.clone()
    };
    let c = client(&from_config_map("vault-ca-cm", "ca.crt"), referents.clone()).await;
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("tls")).await.expect("read")),
        json!({"v": "over tls"})
    );
    assert_eq!(referents.reads_of("vault-ca-cm", "ca.crt"), 1);

    // Without the CA the server's certificate is not trusted: a retryable provider error.
    let c = client(&base, referents.clone()).await;
    let err = c.validate().await.expect_err("untrusted");
    assert!(matches!(err, ProviderError::Provider { .. }), "{err:?}");
    assert!(err.is_retryable());

    // A missing ConfigMap or key is a retryable referent error naming it, as a missing Secret
    // or key is (they may be applied moments later).
    let from_secret = |name: &str, key: &str| VaultProvider {
        ca_provider: Some(CaProvider {
            type_: CaProviderType::Secret,
            name: name.into(),
            key: key.into(),
            namespace: None,
        }),
        ..base.clone()
    };
    for (p, names) in [
        (
            from_config_map("no-such-cm", "ca.crt"),
            "configmap apps/no-such-cm",
        ),
        (
            from_config_map("vault-ca-cm", "other.crt"),
            "\"other.crt\" not found in configmap apps/vault-ca-cm",
        ),
        (
            from_secret("no-such-secret", "ca.crt"),
            "secret apps/no-such-secret",
        ),
    ] {
        let err = VaultClient::new(&p, &scope(), referents.clone())
            .await
            .err()
            .expect("a missing CA source fails the build");
        assert!(matches!(err, ProviderError::Referent(_)), "{err:?}");
        assert!(err.is_retryable(), "{err:?}");
        assert!(err.to_string().contains(names), "{err}");
    }

    // A ClusterSecretStore must name the caProvider's namespace (ESO: "missing namespace on
    // caProvider secret"); a SecretStore may not name another. Both are configuration errors.
    let cluster = StoreScope {
        kind: StoreKind::ClusterSecretStore,
        ..scope()
    };
    let err = VaultClient::new(
        &from_config_map("vault-ca-cm", "ca.crt"),
        &cluster,
        referents.clone(),
    )
    .await
    .err();
    assert!(
        matches!(&err, Some(ProviderError::Config(m)) if m.contains("missing namespace on caProvider")),
        "{err:?}"
    );
    let named = |ns: &str| VaultProvider {
        ca_provider: Some(CaProvider {
            namespace: Some(ns.into()),
            ..from_config_map("vault-ca-cm", "ca.crt")
                .ca_provider
                .expect("caProvider")
        }),
        ..base.clone()
    };
    let c = VaultClient::new(&named(NS), &cluster, referents.clone())
        .await
        .unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("tls")).await.expect("read")),
        json!({"v": "over tls"})
    );
    let err = VaultClient::new(&named("elsewhere"), &scope(), referents.clone())
        .await
        .err();
    assert!(matches!(err, Some(ProviderError::Config(_))), "{err:?}");

    // A malformed bundle is a configuration error.
    let bad_bundle = VaultProvider {
        ca_bundle: Some(k8s_openapi::ByteString(b"not a certificate".to_vec())),
        ..base
    };
    let err = VaultClient::new(&bad_bundle, &scope(), referents.clone())
        .await
        .err();
    assert!(matches!(err, Some(ProviderError::Config(_))), "{err:?}");
}

/// `caProvider` of type ConfigMap through `KubeReferents`, against the real apiserver: the CA
/// is read from the SecretStore's namespace, from `data` only (as ESO's `getCertFromConfigMap`;
/// a key in `binaryData` is not found), and a missing ConfigMap or key is a retryable referent
/// error.
#[tokio::test]
async fn a_ca_provider_config_map_is_read_through_the_apiserver() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, PostParams};
    use secret_sync_crd::provider::{CaProvider, CaProviderType};

    let stack = Stack::get().await;
    let kube = stack.kube().await;
    let (ns, _cleanup) = secret_sync_tests::scoped_namespace(&kube, "vault-ca-cm", &[]).await;
    let server = tokio::task::spawn_blocking({
        let stack: &'static Stack = stack;
        move || tls_bao(stack)
    })
    .await
    .expect("start task");
    let body = json!({"data": {"v": "ca from a configmap"}}).to_string();
    server
        .cli(&["write", "secret/data/tls-cm", "-"], Some(&body))
        .expect("seed the TLS server");
    let ca = std::fs::read_to_string(server.ca_path()).expect("CA");

    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token: Secret = serde_json::from_value(json!({
        "metadata": {"name": "vault-token"},
        "data": {"token": b64("root")},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &token)
        .await
        .expect("create token secret");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "vault-ca"},
        "data": {"ca.crt": ca, "empty": ""},
        "binaryData": {"binary.crt": b64(&ca)},
    }))
    .expect("configmap");
    Api::<ConfigMap>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");

    // The trait method itself: `data` keys (an empty value too), not `binaryData` keys.
    let referents = secret_sync::KubeReferents::new(kube.clone());
    let value = referents
        .config_map_key(&ns, "vault-ca", "ca.crt")
        .await
        .expect("data key");
    assert_eq!(value.expose(), ca.as_bytes());
    let empty = referents
        .config_map_key(&ns, "vault-ca", "empty")
        .await
        .expect("empty data key");
    assert!(empty.is_empty());
    let binary = referents
        .config_map_key(&ns, "vault-ca", "binary.crt")
        .await
        .expect_err("binaryData is not read");
    assert!(
        matches!(&binary, ReferentError::ConfigMapKeyNotFound { namespace, name, key }
            if namespace == &ns && name == "vault-ca" && key == "binary.crt"),
        "{binary:?}"
    );
    assert_eq!(
        binary.to_string(),
        format!("key \"binary.crt\" not found in configmap {ns}/vault-ca")
    );
    let missing = referents
        .config_map_key(&ns, "no-such-cm", "ca.crt")
        .await
        .expect_err("no configmap");
    assert!(
        matches!(&missing, ReferentError::ConfigMapNotFound { namespace, name }
            if namespace == &ns && name == "no-such-cm"),
        "{missing:?}"
    );
    assert_eq!(
        missing.to_string(),
        format!("configmap {ns}/no-such-cm not found")
    );
    assert!(missing.is_retryable() && binary.is_retryable());

    // A store trusting that CA reads over TLS.
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: "vault-ca-cm".into(),
        namespace: ns.clone(),
    };
    let store = |name: &str, key: &str| VaultProvider {
        server: server.addr.clone(),
        ca_provider: Some(CaProvider {
            type_: CaProviderType::ConfigMap,
            name: name.into(),
            key: key.into(),
            namespace: None,
        }),
        ..provider(stack, "secret", VaultKvVersion::V2, token_auth())
    };
    let referents = Arc::new(referents);
    let c = VaultClient::new(&store("vault-ca", "ca.crt"), &scope, referents.clone())
        .await
        .unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("tls-cm")).await.expect("read")),
        json!({"v": "ca from a configmap"})
    );
    for (name, key) in [("vault-ca", "binary.crt"), ("no-such-cm", "ca.crt")] {
        let err = VaultClient::new(&store(name, key), &scope, referents.clone())
            .await
            .err()
            .expect("no CA");
        assert!(
            matches!(err, ProviderError::Referent(_)) && err.is_retryable(),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn jwt_auth_logs_in_with_a_requested_service_account_token() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    use secret_sync_crd::ServiceAccountSelector;
    use secret_sync_crd::provider::{VaultJwtAuth, VaultKubernetesServiceAccountTokenAuth};

    let stack = Stack::get().await;
    let kube = stack.kube().await;
    let (ns, _cleanup) = secret_sync_tests::scoped_namespace(&kube, "vault-jwt", &[]).await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("sa");
    Api::<ServiceAccount>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create service account");

    let prefix = unique_name("jwt");
    put_v2(stack, &format!("{prefix}/k"), json!({"v": "jwt"}));
    let mount = unique_name("jwt");
    let _teardown = auth_mount_teardown(&mount);
    bao(
        stack,
        &["auth", "enable", &format!("-path={mount}"), "jwt"],
        None,
    );
    read_policy(stack, &mount, &prefix);
    // The apiserver signs ServiceAccount tokens with this key.
    let public_key = std::fs::read_to_string(format!(
        "{}/kube/pki/sa.pub",
        stack.var("SECRET_SYNC_STACK_DIR")
    ))
    .expect("sa.pub");
    let config = json!({ "jwt_validation_pubkeys": [public_key] }).to_string();
    bao(
        stack,
        &["write", &format!("auth/{mount}/config"), "-"],
        Some(&config),
    );
    let role = json!({
        "role_type": "jwt",
        "bound_audiences": ["vault"],
        "user_claim": "sub",
        "bound_subject": format!("system:serviceaccount:{ns}:reader"),
        "token_policies": [mount],
    })
    .to_string();
    bao(
        stack,
        &["write", &format!("auth/{mount}/role/reader"), "-"],
        Some(&role),
    );

    let auth = VaultAuth {
        jwt: Some(VaultJwtAuth {
            path: mount.clone(),
            role: Some("reader".into()),
            secret_ref: None,
            kubernetes_service_account_token: Some(VaultKubernetesServiceAccountTokenAuth {
                service_account_ref: ServiceAccountSelector {
                    name: "reader".into(),
                    namespace: None,
                    audiences: Vec::new(),
                },
                audiences: None,
                expiration_seconds: None,
            }),
        }),
        ..Default::default()
    };
    let scope = StoreScope {
        kind: StoreKind::SecretStore,
        name: "vault-jwt".into(),
        namespace: ns.clone(),
    };
    let c = VaultClient::new(
        &provider(stack, "secret", VaultKvVersion::V2, auth),
        &scope,
        Arc::new(secret_sync::KubeReferents::new(kube.clone())),
    )
    .await
    .unwrap_or_else(|e| panic!("build: {e}"));
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(
            &c.get(&RemoteRef::key(format!("{prefix}/k")))
                .await
                .expect("read")
        ),
        json!({"v": "jwt"})
    );
}

#[tokio::test]
async fn namespaces_are_sent_on_logins_and_reads() {
    let stack = Stack::get().await;
    let ns = unique_name("ns").replace('-', "");
    bao(stack, &["namespace", "create", &ns], None);
    // Runs last (declared first): the namespace's mounts go with it.
    let _teardown = Teardown(vec!["namespace", "delete"], ns.clone());
    let in_ns = |args: &[&str], stdin: Option<&str>| bao_in(stack, Some(&ns), args, stdin);
    in_ns(&["secrets", "enable", "-path=kvns", "kv-v2"], None);
    let body = json!({"data": {"v": "in a namespace"}}).to_string();
    in_ns(&["write", "kvns/data/app", "-"], Some(&body));
    in_ns(&["auth", "enable", "userpass"], None);
    in_ns(
        &["policy", "write", "reader", "-"],
        Some("path \"kvns/data/*\" { capabilities = [\"read\"] }"),
    );
    in_ns(
        &[
            "write",
            "auth/userpass/users/reader",
            "password=ns-pass",
            "token_policies=reader",
        ],
        None,
    );

    // A root token with `namespace`.
    let mut p = provider(stack, "kvns", VaultKvVersion::V2, token_auth());
    p.namespace = Some(ns.clone());
    let c = client(&p, Arc::new(root_referents(stack))).await;
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("app")).await.expect("read")),
        json!({"v": "in a namespace"})
    );
    // A userpass login in the namespace (`auth.namespace`), reads in the same namespace.
    let mut p = provider(
        stack,
        "kvns",
        VaultKvVersion::V2,
        VaultAuth {
            namespace: Some(ns.clone()),
            user_pass: Some(VaultUserPassAuth {
                path: "userpass".into(),
                username: "reader".into(),
                secret_ref: Some(sel("up", "password")),
            }),
            ..Default::default()
        },
    );
    p.namespace = Some(ns.clone());
    let referents =
        Arc::new(MemoryReferents::default().with_secret(NS, "up", "password", "ns-pass"));
    let c = client(&p, referents.clone()).await;
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("app")).await.expect("read")),
        json!({"v": "in a namespace"})
    );
    // Without the namespace the mount does not exist.
    p.namespace = None;
    p.auth = Some(token_auth());
    let c = client(&p, Arc::new(root_referents(stack))).await;
    assert!(c.get(&RemoteRef::key("app")).await.is_err());
}

/// An OpenBao dev server with a second listener that requires client certificates issued by
/// the main server's PKI engine; stopped when dropped.
struct MtlsBao {
    /// The server; its dev listener is plain, for seeding.
    bao: DevBao,
    /// The mutual-TLS listener.
    addr: String,
    ca: String,
    client_cert: String,
    client_key: String,
}

impl MtlsBao {
    fn start(stack: &Stack, pki: &str) -> Self {
        bao(
            stack,
            &["secrets", "enable", &format!("-path={pki}"), "pki"],
            None,
        );
        bao(stack, &["secrets", "tune", "-max-lease-ttl=24h", pki], None);
        let ca = bao(
            stack,
            &[
                "write",
                "-field=certificate",
                &format!("{pki}/root/generate/internal"),
                "common_name=secret-sync-test-ca",
                "ttl=24h",
            ],
            None,
        );
        bao(
            stack,
            &[
                "write",
                &format!("{pki}/roles/any"),
                "allow_any_name=true",
                "allow_ip_sans=true",
                "client_flag=true",
                "server_flag=true",
                "max_ttl=1h",
            ],
            None,
        );
        let issue = |cn: &str| -> (String, String) {
            let out = bao(
                stack,
                &[
                    "write",
                    "-format=json",
                    &format!("{pki}/issue/any"),
                    &format!("common_name={cn}"),
                    "ip_sans=127.0.0.1",
                    "ttl=1h",
                ],
                None,
            );
            let v: Value = serde_json::from_str(&out).expect("issue JSON");
            (
                v["data"]["certificate"].as_str().expect("cert").to_owned(),
                v["data"]["private_key"].as_str().expect("key").to_owned(),
            )
        };
        let (server_cert, server_key) = issue("localhost");
        let (client_cert, client_key) = issue("secret-sync");

        let builder = DevBao::builder(stack_bao(stack), "bao-mtls");
        let ca_file = builder.write("ca.pem", &ca);
        let cert_file = builder.write("server.crt", &server_cert);
        let key_file = builder.write("server.key", &server_key);
        let tls_port = free_port();
        let config = format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  \
             tls_cert_file = \"{cert_file}\"\n  tls_key_file = \"{key_file}\"\n  \
             tls_require_and_verify_client_cert = true\n  tls_client_ca_file = \"{ca_file}\"\n}}\n"
        );
        Self {
            bao: builder.config(&config).wait_for_port(tls_port).start(),
            addr: format!("https://127.0.0.1:{tls_port}"),
            ca,
            client_cert,
            client_key,
        }
    }
}

#[tokio::test]
async fn mutual_tls_sends_the_client_certificate_from_secrets() {
    use secret_sync_crd::provider::VaultClientTls;

    let stack = Stack::get().await;
    let pki = unique_name("pki");
    let _teardown = Teardown(vec!["secrets", "disable"], pki.clone());
    let server = tokio::task::spawn_blocking({
        let stack: &'static Stack = stack;
        let pki = pki.clone();
        move || MtlsBao::start(stack, &pki)
    })
    .await
    .expect("start task");
    let body = json!({"data": {"v": "mutual"}}).to_string();
    server
        .bao
        .cli(&["write", "secret/data/mtls", "-"], Some(&body))
        .expect("seed the mTLS server");
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "vault-token", "token", "root")
            .with_secret(NS, "client", "tls.crt", &server.client_cert)
            .with_secret(NS, "client", "tls.key", &server.client_key),
    );
    let base = VaultProvider {
        server: server.addr.clone(),
        ca_bundle: Some(k8s_openapi::ByteString(server.ca.clone().into_bytes())),
        ..provider(stack, "secret", VaultKvVersion::V2, token_auth())
    };
    // Without a client certificate the server refuses the handshake (ESO's e2e
    // `testInvalidMtlsStore`: the store does not validate).
    let c = client(&base, referents.clone()).await;
    let err = c.validate().await.expect_err("no client certificate");
    assert!(matches!(err, ProviderError::Provider { .. }), "{err:?}");

    // Keys default to tls.crt / tls.key.
    let with_cert = VaultProvider {
        tls: Some(VaultClientTls {
            cert_secret_ref: Some(sel("client", "")),
            key_secret_ref: Some(sel("client", "")),
        }),
        ..base
    };
    let c = client(&with_cert, referents).await;
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("mtls")).await.expect("read")),
        json!({"v": "mutual"})
    );
}

/// Issues a client certificate from a fresh PKI mount of `server`: (CA, certificate, key).
fn issue_client_cert(server: &DevBao, pki: &str, cn: &str) -> (String, String, String) {
    let run = |args: &[&str]| server.bao(args, None);
    run(&["secrets", "enable", &format!("-path={pki}"), "pki"]);
    run(&["secrets", "tune", "-max-lease-ttl=24h", pki]);
    let ca = run(&[
        "write",
        "-field=certificate",
        &format!("{pki}/root/generate/internal"),
        &format!("common_name={pki}-ca"),
        "ttl=24h",
    ]);
    run(&[
        "write",
        &format!("{pki}/roles/client"),
        "allow_any_name=true",
        "client_flag=true",
        "server_flag=false",
        "max_ttl=1h",
    ]);
    let out = run(&[
        "write",
        "-format=json",
        &format!("{pki}/issue/client"),
        &format!("common_name={cn}"),
        "ttl=1h",
    ]);
    let v: Value = serde_json::from_str(&out).expect("issue JSON");
    (
        ca.trim().to_owned(),
        v["data"]["certificate"].as_str().expect("cert").to_owned(),
        v["data"]["private_key"].as_str().expect("key").to_owned(),
    )
}

#[tokio::test]
async fn cert_auth_logs_in_with_the_client_certificate_from_secrets() {
    use secret_sync_crd::provider::{VaultCertAuth, VaultClientTls};

    let stack = Stack::get().await;
    let server = tokio::task::spawn_blocking({
        let stack: &'static Stack = stack;
        move || tls_bao(stack)
    })
    .await
    .expect("start task");
    // Two client CAs: the cert role trusts the first only.
    let (client_ca, client_cert, client_key) = issue_client_cert(&server, "pki", "web");
    let (_, stranger_cert, stranger_key) = issue_client_cert(&server, "pki-other", "stranger");
    let seed = |args: &[&str], stdin: Option<&str>| server.bao(args, stdin);
    let value = unique_name("cert-auth-value");
    seed(
        &["write", "secret/data/app/db", "-"],
        Some(&json!({"data": {"password": value}}).to_string()),
    );
    seed(
        &["write", "secret/data/other", "-"],
        Some(r#"{"data": {"v": "x"}}"#),
    );
    seed(
        &["policy", "write", "reader", "-"],
        Some("path \"secret/data/app/*\" { capabilities = [\"read\"] }"),
    );
    seed(&["auth", "enable", "cert"], None);
    let role = json!({
        "display_name": "web",
        "token_policies": "reader",
        "certificate": client_ca,
    })
    .to_string();
    seed(&["write", "auth/cert/certs/web", "-"], Some(&role));

    let ca = std::fs::read_to_string(server.ca_path()).expect("server CA");
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "client", "cert.pem", &client_cert)
            .with_secret(NS, "client", "key.pem", &client_key)
            .with_secret(NS, "stranger", "cert.pem", &stranger_cert)
            .with_secret(NS, "stranger", "key.pem", &stranger_key),
    );
    // Both halves in one Secret, under keys of its own (cert auth has no default keys).
    let cert_auth = |role: Option<&str>, secret: &str| VaultAuth {
        cert: Some(VaultCertAuth {
            path: "cert".into(),
            vault_role: role.map(Into::into),
            client_cert: Some(sel(secret, "cert.pem")),
            secret_ref: Some(sel(secret, "key.pem")),
        }),
        ..Default::default()
    };
    let store = |auth: VaultAuth| VaultProvider {
        server: server.addr.clone(),
        ca_bundle: Some(k8s_openapi::ByteString(ca.clone().into_bytes())),
        ..provider(stack, "secret", VaultKvVersion::V2, auth)
    };

    // With the role named (`name` in the login body) and without (Vault tries every role).
    for role in [Some("web"), None] {
        let c = client(&store(cert_auth(role, "client")), referents.clone()).await;
        assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
        assert_eq!(
            json_of(&c.get(&RemoteRef::key("app/db")).await.expect("read")),
            json!({"password": value})
        );
        // The token carries the role's policy only.
        let err = c
            .get(&RemoteRef::key("other"))
            .await
            .expect_err("outside the policy");
        assert!(matches!(err, ProviderError::AccessDenied { .. }), "{err:?}");
    }
    // The client certificate and key are read once, when the client is built.
    assert_eq!(referents.reads_of("client", "key.pem"), 2);

    // Cert auth's certificate wins over `tls` (as in ESO), which is not read.
    let with_tls = VaultProvider {
        tls: Some(VaultClientTls {
            cert_secret_ref: Some(sel("stranger", "cert.pem")),
            key_secret_ref: Some(sel("stranger", "key.pem")),
        }),
        ..store(cert_auth(Some("web"), "client"))
    };
    let c = client(&with_tls, referents.clone()).await;
    assert_eq!(
        json_of(&c.get(&RemoteRef::key("app/db")).await.expect("read")),
        json!({"password": value})
    );
    assert_eq!(referents.reads_of("stranger", "key.pem"), 0);

    // A certificate from a CA the cert role does not trust: a login error without values.
    let mut errors = Vec::new();
    for role in [Some("web"), None] {
        let c = client(&store(cert_auth(role, "stranger")), referents.clone()).await;
        let err = c
            .get(&RemoteRef::key("app/db"))
            .await
            .expect_err("untrusted client certificate");
        assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
        assert!(err.to_string().contains("auth/cert/login"), "{err}");
        errors.push(err);
    }

    // Configuration errors: no https, a missing key reference, a key that is not PEM, a key
    // that does not belong to the certificate.
    let mut plain = store(cert_auth(Some("web"), "client"));
    plain.server = "http://127.0.0.1:1".into();
    let mut no_key = store(cert_auth(Some("web"), "client"));
    if let Some(cert) = no_key.auth.as_mut().and_then(|a| a.cert.as_mut()) {
        cert.secret_ref = None;
    }
    referents.set(NS, "garbled", "cert.pem", &client_cert);
    referents.set(NS, "garbled", "key.pem", &format!("not a key {value}"));
    let garbled = store(cert_auth(Some("web"), "garbled"));
    referents.set(NS, "mixed", "cert.pem", &client_cert);
    referents.set(NS, "mixed", "key.pem", &stranger_key);
    let mismatched = store(cert_auth(Some("web"), "mixed"));
    for (p, wanted) in [
        (plain, "https://"),
        (no_key, "auth.cert.secretRef"),
        (garbled, "private key or certificate not found"),
        (mismatched, "consistent"),
    ] {
        let err = VaultClient::new(&p, &scope(), referents.clone())
            .await
            .err()
            .expect("configuration error");
        assert!(matches!(err, ProviderError::Config(_)), "{err:?}");
        assert!(err.to_string().contains(wanted), "{err}");
        errors.push(err);
    }

    // No error shows a key, a certificate or the secret's value.
    let key_body = |pem: &str| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    for err in &errors {
        let texts = error_texts(err);
        assert!(!texts.contains(&value), "{texts}");
        for pem in [&client_key, &stranger_key, &client_cert, &stranger_cert] {
            let body = key_body(pem);
            assert!(!texts.contains(&body[..40]), "{texts}");
        }
        assert!(!texts.contains("PRIVATE KEY"), "{texts}");
    }
}
