//! Apply-time validation: the CEL rules (`x-kubernetes-validations`) that make the apiserver
//! refuse what ESO v2.9.0 refuses at `kubectl apply`, through its admission webhook
//! (`apis/externalsecrets/v1/*_validator.go`) or its CRDs' own rules, with ESO's messages.
//! These tests pin where each rule sits in the generated schemas; `tests/crd_validation.rs` (in
//! the integration tests) shows a real apiserver compiling them and refusing bad manifests.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use secret_sync_crd::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, PushSecret,
    SecretStore, crds,
};
use serde_json::Value;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema as JSON")
}

/// Follows `properties` (and `items` for `[]`) down a schema.
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |s, step| {
        let next = if step == "[]" {
            &s["items"]
        } else {
            &s["properties"][step]
        };
        assert!(!next.is_null(), "no {step} in {path}");
        next
    })
}

/// The `(rule, message)` pairs at `path`.
fn rules_at(schema: &Value, path: &str) -> Vec<(String, String)> {
    at(schema, path)["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["rule"].as_str().expect("rule").to_owned(),
                r["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

fn messages_at(schema: &Value, path: &str) -> Vec<String> {
    rules_at(schema, path).into_iter().map(|(_, m)| m).collect()
}

/// Every path (as `at` spells it) that carries rules, in schema order.
fn paths_with_rules(schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-validations").is_some() {
        out.push(path.to_owned());
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            paths_with_rules(v, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        paths_with_rules(items, &format!("{path}.[]"), out);
    }
    if let Some(ap) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        paths_with_rules(ap, &format!("{path}.{{}}"), out);
    }
}

fn all_paths_with_rules(crd: &CustomResourceDefinition) -> Vec<String> {
    let mut out = Vec::new();
    paths_with_rules(&schema_of(crd), "", &mut out);
    out
}

#[test]
fn external_secret_carries_esos_webhook_rules_where_they_apply() {
    let es = schema_of(&ExternalSecret::crd());
    assert_eq!(
        messages_at(&es, "spec"),
        ["either data or dataFrom should be specified"]
    );
    assert_eq!(
        messages_at(&es, "spec.target"),
        [
            "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner",
            "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with",
            "template.type=\"bootstrap.kubernetes.io/token\" is not allowed",
            "template.type=\"kubernetes.io/service-account-token\" with annotation \"kubernetes.io/service-account.name\" is not allowed",
            "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed",
            "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed",
        ]
    );
    assert_eq!(
        messages_at(&es, "spec.dataFrom.[]"),
        [
            "extract, find, or generatorRef cannot be set at the same time",
            "either extract, find, or sourceRef must be set to dataFrom",
        ]
    );
    assert_eq!(
        messages_at(&es, "spec.dataFrom.[].sourceRef"),
        ["generatorRef or storeRef must be set when using sourceRef in dataFrom"]
    );
    let (rule, _) = &rules_at(&es, "spec.refreshInterval")[0];
    assert!(rule.contains("self.matches('^[-+]?(0|"), "{rule}");
    assert!(rule.contains("duration(self)"), "{rule}");
    let (rule, _) = &rules_at(&es, "spec.syncWindows.windows.[]")[0];
    assert!(rule.contains("duration(self.duration)"), "{rule}");

    assert_eq!(
        all_paths_with_rules(&ExternalSecret::crd()),
        [
            "spec",
            "spec.dataFrom.[]",
            "spec.dataFrom.[].sourceRef",
            "spec.refreshInterval",
            "spec.syncWindows.windows.[]",
            "spec.target",
        ],
        "a rule more or less: update this test and tests/crd_validation.rs"
    );
}

#[test]
fn external_secret_rules_read_the_fields_they_check() {
    let es = schema_of(&ExternalSecret::crd());
    let rules: Vec<String> = rules_at(&es, "spec.target")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(rules[0].contains("self.creationPolicy in ['Merge', 'None', 'CreateOrMerge']"));
    assert!(rules[0].contains("self.deletionPolicy == 'Delete'"));
    assert!(rules[1].contains("self.deletionPolicy == 'Merge'"));
    assert!(rules[1].contains("self.creationPolicy == 'None'"));
    assert!(rules[2].contains("'bootstrap.kubernetes.io/token'"));
    assert!(
        rules[3]
            .contains("'kubernetes.io/service-account.name' in self.template.metadata.annotations")
    );
    assert!(rules[4].contains("t.target == 'Annotations'"));
    assert!(rules[5].contains("t.target == 'annotations'"));
    // Orphan is ESO's other creation policy that may delete: it is not refused.
    assert!(!rules[0].contains("Orphan"));
}

#[test]
fn cluster_external_secret_accepts_what_esos_does_without_a_webhook() {
    // ESO runs no webhook for ClusterExternalSecrets and its CRD has no rule under
    // externalSecretSpec: the ExternalSecrets it creates are refused instead.
    assert_eq!(
        all_paths_with_rules(&ClusterExternalSecret::crd()),
        Vec::<String>::new()
    );
    // The same spec schema otherwise.
    let ces = schema_of(&ClusterExternalSecret::crd());
    let es = schema_of(&ExternalSecret::crd());
    assert_eq!(
        at(&ces, "spec.externalSecretSpec.target.creationPolicy"),
        at(&es, "spec.target.creationPolicy")
    );
}

#[test]
fn push_secret_carries_esos_crd_rules() {
    let ps = schema_of(&PushSecret::crd());
    assert_eq!(
        rules_at(&ps, "spec.dataTo.[]"),
        [
            (
                "has(self.storeRef) && (has(self.storeRef.name) || has(self.storeRef.labelSelector))".to_owned(),
                "storeRef must specify either name or labelSelector".to_owned()
            ),
            (
                "!has(self.remoteKey) || !has(self.rewrite) || size(self.rewrite) == 0".to_owned(),
                "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)".to_owned()
            ),
        ]
    );
    assert_eq!(
        rules_at(&ps, "spec.dataTo.[].rewrite.[]"),
        [(
            "(has(self.regexp) && !has(self.transform)) || (!has(self.regexp) && has(self.transform))"
                .to_owned(),
            "exactly one of regexp or transform must be set".to_owned()
        )]
    );
    // The ExternalSecret template rules are not a PushSecret's: they sit on the target.
    assert_eq!(
        all_paths_with_rules(&PushSecret::crd()),
        ["spec.dataTo.[]", "spec.dataTo.[].rewrite.[]"]
    );
}

#[test]
fn cluster_push_secret_carries_the_push_secret_rules_under_push_secret_spec() {
    // Unlike ClusterExternalSecret, ESO's ClusterPushSecret CRD keeps the rules of the spec it
    // embeds: the same two, one level down.
    assert_eq!(
        all_paths_with_rules(&ClusterPushSecret::crd()),
        [
            "spec.pushSecretSpec.dataTo.[]",
            "spec.pushSecretSpec.dataTo.[].rewrite.[]"
        ]
    );
    let cps = schema_of(&ClusterPushSecret::crd());
    let ps = schema_of(&PushSecret::crd());
    // The same schema below (only the description at the top differs).
    for part in ["properties", "required", "type"] {
        assert_eq!(
            at(&cps, "spec.pushSecretSpec")[part],
            at(&ps, "spec")[part],
            "{part}"
        );
    }
}

#[test]
fn both_store_kinds_carry_esos_store_rules() {
    for crd in [SecretStore::crd(), ClusterSecretStore::crd()] {
        let s = schema_of(&crd);
        assert_eq!(
            rules_at(&s, "spec.provider.aws.customSessionTags"),
            [(
                "!('esoNamespace' in self) && !('esoStoreName' in self) && !('esoStoreKind' in self)"
                    .to_owned(),
                "customSessionTags cannot contain automatically injected reserved keys: esoNamespace, esoStoreName, esoStoreKind"
                    .to_owned()
            )]
        );
        let refresh = &at(&s, "spec.refreshInterval")["x-kubernetes-validations"][0];
        assert!(
            refresh["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("type(self) == int ? self >= 0 : ")),
            "{refresh}"
        );
        assert!(
            refresh["messageExpression"]
                .as_str()
                .is_some_and(|m| m.contains("': must not be negative'")
                    && m.contains("'\": time: invalid duration \"'")),
            "{refresh}"
        );
        assert_eq!(
            messages_at(&s, "spec.provider.aws.secretsManager"),
            [
                "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days",
                "invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays",
            ]
        );
        assert_eq!(
            messages_at(&s, "spec.provider.vault"),
            ["checkAndSet is not supported with Vault KV version v1"]
        );
        assert_eq!(
            messages_at(&s, "spec.provider.vault.tls"),
            ["when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided"]
        );
        assert_eq!(
            messages_at(&s, "spec.provider.vault.auth.appRole"),
            ["invalid Auth.AppRole: neither `roleId` nor `roleRef` was supplied"]
        );
        assert_eq!(
            messages_at(&s, "spec.provider.vault.auth.jwt"),
            [
                "neither `secretRef` nor `kubernetesServiceAccountToken` was supplied as token source for jwt authentication"
            ]
        );
        assert_eq!(
            messages_at(&s, "spec.provider.fake.data.[]"),
            [
                "key must be set in data",
                "at least one value must be set in data"
            ]
        );
        assert_eq!(
            all_paths_with_rules(&crd),
            [
                "spec.provider.aws.customSessionTags",
                "spec.provider.aws.secretsManager",
                "spec.provider.fake.data.[]",
                // ESO's openBao markers (AtMostOneOf caBundle/caProvider, ExactlyOneOf auth),
                // and the appRole rule it shares with vault.
                "spec.provider.openBao",
                "spec.provider.openBao.auth",
                "spec.provider.openBao.auth.appRole",
                "spec.provider.vault",
                "spec.provider.vault.auth.appRole",
                "spec.provider.vault.auth.jwt",
                "spec.provider.vault.tls",
                "spec.refreshInterval",
            ],
            "a rule more or less: update this test and tests/crd_validation.rs"
        );
        // Exactly one provider: minProperties/maxProperties count unknown providers too, which
        // CEL cannot see.
        let provider = at(&s, "spec.provider");
        assert_eq!(provider["minProperties"], 1);
        assert_eq!(provider["maxProperties"], 1);
        assert_eq!(provider["x-kubernetes-preserve-unknown-fields"], true);
    }
}

#[test]
fn generators_keep_esos_rules_only() {
    // A VaultDynamicSecret's provider is a store's vault provider without the store's rules: ESO
    // runs no webhook for generators. Its only rules are ESO's CRD rules (GitlabDeployToken).
    for crd in crds::generators() {
        let paths = all_paths_with_rules(&crd);
        match crd.spec.names.kind.as_str() {
            "GitlabDeployToken" => assert_eq!(paths, ["spec"]),
            "ClusterGenerator" => assert_eq!(paths, ["spec.generator.gitlabDeployTokenSpec"]),
            kind => assert_eq!(paths, Vec::<String>::new(), "{kind}"),
        }
    }
}

#[test]
fn store_reference_kinds_are_esos_enums() {
    let es = schema_of(&ExternalSecret::crd());
    let kinds = serde_json::json!(["SecretStore", "ClusterSecretStore"]);
    for path in [
        "spec.secretStoreRef.kind",
        "spec.data.[].sourceRef.storeRef.kind",
        "spec.dataFrom.[].sourceRef.storeRef.kind",
    ] {
        assert_eq!(at(&es, path)["enum"], kinds, "{path}");
    }
    let generator_kinds = &at(&es, "spec.dataFrom.[].sourceRef.generatorRef.kind")["enum"];
    assert_eq!(generator_kinds.as_array().map(Vec::len), Some(18));
    let ps = schema_of(&PushSecret::crd());
    assert_eq!(at(&ps, "spec.secretStoreRefs.[].kind")["enum"], kinds);
    assert_eq!(at(&ps, "spec.dataTo.[].storeRef.kind")["enum"], kinds);
}

#[test]
fn every_rule_has_a_message_and_no_rule_uses_old_self() {
    for crd in crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let schema = schema_of(&crd);
        for path in all_paths_with_rules(&crd) {
            for rule in at_or_root(&schema, &path)["x-kubernetes-validations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert!(
                    rule["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{name} {path}: {rule}"
                );
                // Transition rules would not run on create, where ESO's webhook does.
                assert!(
                    !rule["rule"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("oldSelf"),
                    "{name} {path}: {rule}"
                );
            }
        }
    }
}

fn at_or_root<'a>(schema: &'a Value, path: &str) -> &'a Value {
    if path.is_empty() {
        schema
    } else {
        path.split('.').fold(schema, |s, step| match step {
            "[]" => &s["items"],
            "{}" => &s["additionalProperties"],
            _ => &s["properties"][step],
        })
    }
}
