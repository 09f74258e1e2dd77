//! Manifests as users write them: the seed manifests, unknown providers, ESO's defaults.

use std::path::PathBuf;

use secret_sync_crd::provider::{AwsServiceType, VaultKvVersion};
use secret_sync_crd::{
    ClusterExternalSecret, ClusterSecretStore, ConditionStatus, ConversionStrategy, CreationPolicy,
    DecodingStrategy, DeletionPolicy, ExternalSecret, ExternalSecretConditionType, MetadataPolicy,
    PushSecret, PushSecretConversionStrategy, PushSecretDeletionPolicy, PushSecretUpdatePolicy,
    SecretStore, StoreKind, TemplateEngineVersion, TemplateMergePolicy,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn seed_dir() -> PathBuf {
    // One copy of the seed manifests in the repository, shared with the integration tests.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/seed")
}

fn read_seed<T: DeserializeOwned>(file: &str) -> (T, Value) {
    let text = std::fs::read_to_string(seed_dir().join(file)).expect("seed file");
    let typed: T =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
    let raw: Value = serde_saphyr::from_str(&text).expect("seed as JSON value");
    (typed, raw)
}

/// True when every field of `subset` is in `superset` with the same value (defaults may add
/// more fields to `superset`).
fn contains(superset: &Value, subset: &Value) -> bool {
    match (superset, subset) {
        (Value::Object(sup), Value::Object(sub)) => sub
            .iter()
            .all(|(k, v)| sup.get(k).is_some_and(|s| contains(s, v))),
        (Value::Array(sup), Value::Array(sub)) => {
            sup.len() == sub.len() && sup.iter().zip(sub).all(|(a, b)| contains(a, b))
        }
        (a, b) => a == b,
    }
}

fn assert_keeps_every_field<T: serde::Serialize>(file: &str, typed: &T, raw: &Value) {
    let back = serde_json::to_value(typed).expect("serialize");
    assert!(
        contains(&back, raw),
        "{file}: a field was lost or changed\nwritten: {raw:#}\nback: {back:#}"
    );
}

#[test]
fn every_seed_manifest_parses_into_its_kind_and_keeps_every_field() {
    let mut seen = 0;
    for entry in std::fs::read_dir(seed_dir()).expect("seed dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .expect("file name")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("read");
        let raw: Value = serde_saphyr::from_str(&text).expect("yaml");
        match (raw["apiVersion"].as_str(), raw["kind"].as_str()) {
            (Some("external-secrets.io/v1"), Some("ExternalSecret")) => {
                assert_keeps_every_field(&file, &read_seed::<ExternalSecret>(&file).0, &raw);
            }
            (Some("external-secrets.io/v1"), Some("SecretStore")) => {
                assert_keeps_every_field(&file, &read_seed::<SecretStore>(&file).0, &raw);
            }
            (Some("external-secrets.io/v1"), Some("ClusterSecretStore")) => {
                assert_keeps_every_field(&file, &read_seed::<ClusterSecretStore>(&file).0, &raw);
            }
            (Some("external-secrets.io/v1"), Some("ClusterExternalSecret")) => {
                assert_keeps_every_field(&file, &read_seed::<ClusterExternalSecret>(&file).0, &raw);
            }
            (Some("external-secrets.io/v1alpha1"), Some("PushSecret")) => {
                assert_keeps_every_field(&file, &read_seed::<PushSecret>(&file).0, &raw);
            }
            other => panic!("{file}: unexpected kind {other:?}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 6, "all six seed manifests are present");
}

#[test]
fn the_aws_store_seed_reads_static_keys_from_a_secret() {
    let (store, _) = read_seed::<SecretStore>("secretstore-aws-secrets.yaml");
    let aws = store.spec.provider.aws.as_ref().expect("aws provider");
    assert_eq!(aws.service, AwsServiceType::SecretsManager);
    assert_eq!(aws.region, "us-east-1");
    let keys = aws
        .auth
        .as_ref()
        .and_then(|a| a.secret_ref.as_ref())
        .expect("secretRef");
    let id = keys.access_key_id.as_ref().expect("accessKeyIDSecretRef");
    assert_eq!(
        (id.name.as_str(), id.key.as_str()),
        ("aws-credentials", "access-key-id")
    );
    let secret = keys
        .secret_access_key
        .as_ref()
        .expect("secretAccessKeySecretRef");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("aws-credentials", "secret-access-key")
    );
    assert!(keys.session_token.is_none());
    assert_eq!(store.spec.provider.name(), Some("aws"));
}

#[test]
fn the_vault_cluster_store_seed_uses_kubernetes_auth_on_kv_v2() {
    let (store, _) = read_seed::<ClusterSecretStore>("clustersecretstore-vault-backend.yaml");
    let vault = store.spec.provider.vault.as_ref().expect("vault provider");
    assert_eq!(vault.server, "https://vault.example.com");
    assert_eq!(vault.path.as_deref(), Some("secret"));
    assert_eq!(vault.version, VaultKvVersion::V2);
    let k8s = vault
        .auth
        .as_ref()
        .and_then(|a| a.kubernetes.as_ref())
        .expect("kubernetes auth");
    assert_eq!(k8s.mount_path, "kubernetes");
    assert_eq!(k8s.role, "external-secrets");
}

#[test]
fn the_external_secret_seeds_read_properties_of_one_json_secret() {
    let (es, _) = read_seed::<ExternalSecret>("externalsecret-my-app-db-credentials.yaml");
    let store = es.spec.secret_store_ref.as_ref().expect("secretStoreRef");
    assert_eq!(
        (store.name.as_str(), store.kind()),
        ("aws-secrets", StoreKind::SecretStore)
    );
    assert_eq!(es.spec.target_name(&es), "db-credentials");
    assert_eq!(es.spec.target.creation_policy, CreationPolicy::Owner);
    assert_eq!(
        es.spec.refresh_interval().expect("interval").as_secs(),
        3600
    );
    let keys: Vec<(&str, &str, Option<&str>)> = es
        .spec
        .data
        .iter()
        .map(|d| {
            (
                d.secret_key.as_str(),
                d.remote_ref.key.as_str(),
                d.remote_ref.property.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("username", "prod/my-app/database", Some("username")),
            ("password", "prod/my-app/database", Some("password"))
        ]
    );

    let (es, _) = read_seed::<ExternalSecret>("externalsecret-database-url.yaml");
    let template = es.spec.target.template.as_ref().expect("template");
    assert!(template.data["DATABASE_URL"].starts_with("postgresql://{{ .username }}"));
    assert_eq!(template.engine_version, TemplateEngineVersion::V2);
    assert_eq!(template.merge_policy, TemplateMergePolicy::Replace);
    assert_eq!(es.spec.data.len(), 4);
}

#[test]
fn the_cluster_external_secret_seed_selects_namespaces_by_label() {
    let (ces, _) = read_seed::<ClusterExternalSecret>("clusterexternalsecret-shared-tls-cert.yaml");
    let selector = &ces.spec.namespace_selectors[0];
    assert_eq!(
        selector
            .match_labels
            .as_ref()
            .and_then(|l| l.get("needs-tls"))
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(ces.spec.external_secret_name(&ces), "shared-tls-cert");
    let es = &ces.spec.external_secret_spec;
    assert_eq!(es.refresh_interval, "24h");
    assert_eq!(
        es.secret_store_ref.as_ref().map(|r| r.kind()),
        Some(StoreKind::ClusterSecretStore)
    );
    assert_eq!(es.target.name.as_deref(), Some("tls-cert"));
}

#[test]
fn the_push_secret_seed_pushes_two_keys_to_one_remote_secret() {
    let (ps, _) = read_seed::<PushSecret>("pushsecret-push-generated-cert.yaml");
    assert_eq!(ps.spec.refresh_interval().expect("interval").as_secs(), 600);
    assert_eq!(ps.spec.secret_store_refs[0].kind, StoreKind::SecretStore);
    assert_eq!(
        ps.spec
            .selector
            .secret
            .as_ref()
            .and_then(|s| s.name.as_deref()),
        Some("wildcard-tls")
    );
    let pushed: Vec<(Option<&str>, &str, Option<&str>)> = ps
        .spec
        .data
        .iter()
        .map(|d| {
            (
                d.match_.secret_key.as_deref(),
                d.match_.remote_ref.remote_key.as_str(),
                d.match_.remote_ref.property.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        pushed,
        [
            (Some("tls.crt"), "infra/tls/wildcard", Some("certificate")),
            (Some("tls.key"), "infra/tls/wildcard", Some("private_key"))
        ]
    );
}

const GCPSM_PROVIDER: &str = r#"{"gcpsm":{"auth":{"workloadIdentity":{"clusterLocation":"europe-west1","clusterName":"prod","serviceAccountRef":{"audiences":["a","b"],"name":"eso"}}},"location":"europe-west1","projectID":"my-project","secretVersionSelectionPolicy":"LatestOrFetch"}}"#;

#[test]
fn an_unknown_provider_round_trips_byte_for_byte() {
    let manifest = format!(
        r#"{{"apiVersion":"external-secrets.io/v1","kind":"SecretStore","metadata":{{"name":"gcp","namespace":"team"}},"spec":{{"provider":{GCPSM_PROVIDER},"refreshInterval":300}}}}"#
    );
    let store: SecretStore = serde_json::from_str(&manifest).expect("a gcpsm store parses");
    assert!(store.spec.provider.aws.is_none() && store.spec.provider.vault.is_none());
    assert_eq!(store.spec.provider.name(), Some("gcpsm"));
    assert_eq!(
        serde_json::to_string(&store.spec.provider).expect("serialize"),
        GCPSM_PROVIDER
    );
    assert_eq!(
        serde_json::to_value(&store).expect("serialize"),
        serde_json::from_str::<Value>(&manifest).expect("json")
    );

    let azure = r#"{"azurekv":{"authType":"WorkloadIdentity","serviceAccountRef":{"name":"eso"},"vaultUrl":"https://v.vault.azure.net"}}"#;
    let css: ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "azure"},
        "spec": {"provider": serde_json::from_str::<Value>(azure).expect("json")},
    }))
    .expect("an azurekv cluster store parses");
    assert_eq!(
        serde_json::to_string(&css.spec.provider).expect("serialize"),
        azure
    );
}

#[test]
fn a_minimal_external_secret_gets_esos_defaults() {
    let es: ExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "prod/db"}}],
            "dataFrom": [{"find": {"name": {"regexp": "^db"}}}, {"rewrite": [{"merge": {}}]}],
        },
    }))
    .expect("parses");
    let spec = &es.spec;
    assert_eq!(spec.refresh_interval, "1h0m0s");
    assert_eq!(spec.target.creation_policy, CreationPolicy::Owner);
    assert_eq!(spec.target.deletion_policy, DeletionPolicy::Retain);
    assert_eq!(spec.target_name(&es), "db");
    assert_eq!(
        spec.secret_store_ref.as_ref().map(|r| r.kind()),
        Some(StoreKind::SecretStore)
    );
    let remote = &spec.data[0].remote_ref;
    assert_eq!(remote.conversion_strategy, ConversionStrategy::Default);
    assert_eq!(remote.decoding_strategy, DecodingStrategy::None);
    assert_eq!(remote.metadata_policy, MetadataPolicy::None);
    assert_eq!(remote.null_byte_policy, None);
    let find = spec.data_from[0].find.as_ref().expect("find");
    assert_eq!(find.conversion_strategy, ConversionStrategy::Default);
    let merge = spec.data_from[1].rewrite[0].merge.as_ref().expect("merge");
    assert_eq!(merge.into, "");
    assert_eq!(
        serde_json::to_value(merge).expect("serialize"),
        json!({"into": "", "priorityPolicy": "Strict", "conflictPolicy": "Error", "strategy": "Extract"})
    );
    // The defaults serialize as ESO's CRD would store them.
    assert_eq!(
        serde_json::to_value(&spec.target).expect("serialize"),
        json!({"creationPolicy": "Owner", "deletionPolicy": "Retain"})
    );
}

#[test]
fn a_minimal_push_secret_and_vault_store_get_esos_defaults() {
    let ps: PushSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1alpha1",
        "kind": "PushSecret",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {
            "secretStoreRefs": [{"name": "s"}],
            "selector": {"secret": {"name": "src"}},
            "data": [{"match": {"remoteRef": {"remoteKey": "k"}}}],
        },
    }))
    .expect("parses");
    assert_eq!(ps.spec.refresh_interval, "1h0m0s");
    assert_eq!(ps.spec.update_policy, PushSecretUpdatePolicy::Replace);
    assert_eq!(ps.spec.deletion_policy, PushSecretDeletionPolicy::None);
    assert_eq!(ps.spec.secret_store_refs[0].kind, StoreKind::SecretStore);
    assert_eq!(
        ps.spec.data[0].conversion_strategy,
        PushSecretConversionStrategy::None
    );

    let store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "v", "namespace": "n"},
        "spec": {"provider": {"vault": {
            "server": "http://127.0.0.1:8200",
            "auth": {
                "appRole": {"roleId": "r", "secretRef": {"name": "approle", "key": "secret-id"}},
                "userPass": {"username": "u"},
                "jwt": {"role": "j"},
                "cert": {},
                "ldap": {"username": "l"},
                "gcp": {"role": "g"}
            }
        }}},
    }))
    .expect("parses");
    let vault = store.spec.provider.vault.expect("vault");
    assert_eq!(vault.version, VaultKvVersion::V2);
    let auth = vault.auth.expect("auth");
    assert_eq!(auth.app_role.expect("appRole").path, "approle");
    assert_eq!(auth.user_pass.expect("userPass").path, "userpass");
    assert_eq!(auth.jwt.expect("jwt").path, "jwt");
    assert_eq!(auth.cert.expect("cert").path, "cert");
    assert_eq!(auth.ldap.expect("ldap").path, "ldap");
    assert_eq!(auth.gcp.expect("gcp").path, "gcp");
}

#[test]
fn values_outside_esos_enums_are_rejected() {
    let with_policy = |policy: &str| {
        serde_json::from_value::<ExternalSecret>(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "x"},
            "spec": {"target": {"creationPolicy": policy}},
        }))
    };
    assert!(with_policy("CreateOrMerge").is_ok());
    assert!(with_policy("owner").is_err());
    assert!(with_policy("Adopt").is_err());
}

#[test]
fn a_status_written_by_eso_parses() {
    let es: ExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {},
        "status": {
            "refreshTime": null,
            "syncedResourceVersion": "1-abc",
            "binding": {"name": ""},
            "conditions": [{
                "type": "Ready",
                "status": "False",
                "reason": "SecretSyncedError",
                "message": "could not get secret data from provider",
                "lastTransitionTime": "2026-11-27T10:00:00Z"
            }]
        },
    }))
    .expect("parses");
    let status = es.status.expect("status");
    assert!(status.refresh_time.is_none());
    let ready = status
        .condition(ExternalSecretConditionType::Ready)
        .expect("Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("SecretSyncedError"));
    assert!(ready.last_transition_time.is_some());
}

#[test]
fn a_cluster_store_serializes_exactly_like_a_namespaced_one() {
    let (store, raw) = read_seed::<ClusterSecretStore>("clustersecretstore-vault-backend.yaml");
    let as_namespaced: SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "vault-backend", "namespace": "n"},
        "spec": raw["spec"].clone(),
    }))
    .expect("the same spec parses as a SecretStore");
    assert_eq!(store.spec.0, as_namespaced.spec);
    assert_eq!(
        serde_json::to_value(&store.spec).expect("serialize"),
        serde_json::to_value(&as_namespaced.spec).expect("serialize")
    );
}
