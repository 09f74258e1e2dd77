//! Acting as a service account: a requested token, and a client or kubeconfig that uses it, so a
//! test runs code with exactly the rights some RBAC grants (the local apiserver enforces RBAC).

use std::path::Path;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::Stack;

/// A token for `namespace/service_account`, valid for an hour, as a pod would mount it.
pub async fn service_account_token(
    admin: &kube::Client,
    namespace: &str,
    service_account: &str,
) -> String {
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": { "audiences": [], "expirationSeconds": 3600 }
    }))
    .expect("token request");
    Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {namespace}/{service_account}: {e}"))
        .status
        .expect("token status")
        .token
}

/// The stack's kubeconfig with its user replaced by `token`.
fn kubeconfig_with(token: &str) -> Kubeconfig {
    let stack = Stack::started().expect("the stack is up");
    let mut kubeconfig = Kubeconfig::read_from(stack.var("KUBECONFIG")).expect("kubeconfig");
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(AuthInfo {
            token: Some(token.to_owned().into()),
            ..Default::default()
        });
    }
    kubeconfig
}

/// A client for the local apiserver that authenticates with `token`, with `namespace` as its
/// default (as in-cluster, the pod's own).
pub async fn client_with_token(token: &str, namespace: &str) -> kube::Client {
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig_with(token), &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
    config.default_namespace = namespace.to_owned();
    kube::Client::try_from(config).expect("kube client")
}

/// Writes a kubeconfig for the local apiserver that authenticates with `token`, for a process.
pub fn write_kubeconfig_with_token(token: &str, path: &Path) {
    // JSON is YAML: every kubeconfig reader takes it.
    let text = serde_json::to_string(&kubeconfig_with(token)).expect("kubeconfig JSON");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
