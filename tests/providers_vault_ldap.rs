//! The Vault provider's LDAP login (`spec.provider.vault.auth.ldap`) against a real directory:
//! a private OpenLDAP `slapd` ([`secret_sync_tests::ldap`]) and a private OpenBao dev server
//! whose `ldap` auth method searches and binds against it, maps the LDAP group `readers` to a
//! policy that reads `secret/team/*`, and hands out tokens.
//!
//! OpenBao 2.7 (the stack's dev server) no longer has the ldap auth method built in: it moved to
//! openbao-plugins, which ships it only as an OCI image. The stack installs OpenBao 2.6.2, the
//! last release with it built in, as `bin/bao-ldap` (`infra/local/requirements-ldap.txt`); each
//! test runs its own server from it, with the method at its default path `ldap`, so nothing is
//! shared with other tests. slapd comes from Debian's packages (`.ci/run` installs it).

use std::path::PathBuf;
use std::sync::Arc;

use secret_sync_crd::StoreKind;
use secret_sync_crd::provider::VaultProvider;
use secret_sync_providers::vault::VaultClient;
use secret_sync_providers::{
    Provider, ProviderError, RemoteRef, SecretBytes, StoreScope, Validation,
};
use secret_sync_tests::Stack;
use secret_sync_tests::bao::DevBao;
use secret_sync_tests::ldap::{self, Directory, Slapd};
use secret_sync_tests::referents::MemoryReferents;
use serde_json::{Value, json};

const NS: &str = "apps";
const ALICE_PASSWORD: &str = "alice-ldap-pass-4f1c";
const BOB_PASSWORD: &str = "bob-ldap-pass-9a2e";
const WRONG_PASSWORD: &str = "not-alices-password-77d0";
/// The policy the LDAP group `readers` maps to.
const POLICY: &str = "team-read";
/// A KV v2 secret only [`POLICY`] may read.
const KEY: &str = "team/db";

/// An OpenBao dev server with the ldap auth method built in, on a free port; stopped when
/// dropped.
fn ldap_bao(stack: &Stack) -> DevBao {
    let bin = PathBuf::from(stack.var("SECRET_SYNC_STACK_DIR")).join("bin/bao-ldap");
    assert!(
        bin.exists(),
        "{} is missing: `infra/local/stack up` installs OpenBao 2.6.2 for the LDAP tests",
        bin.display()
    );
    DevBao::builder(bin, "bao-ldap").start()
}

/// A directory and an OpenBao logging in against it.
struct LdapVault {
    // Field order is drop order: OpenBao first, then the directory it points at.
    bao: DevBao,
    slapd: Slapd,
}

/// Starts slapd with alice (in the group `readers`) and bob (in no group), and an OpenBao with
/// the ldap auth method at `auth/ldap` searching `ou=users` by `uid` as the root DN, reading
/// group membership from groupOfNames entries in `ou=groups`, and giving `readers` [`POLICY`].
async fn ldap_vault() -> LdapVault {
    let stack = Stack::get().await;
    tokio::task::spawn_blocking(move || {
        let directory = Directory::default()
            .user("alice", ALICE_PASSWORD)
            .user("bob", BOB_PASSWORD)
            .group("readers", &["alice"]);
        let slapd = Slapd::start(&directory).unwrap_or_else(|e| panic!("slapd: {e:#}"));
        let bao = ldap_bao(stack);
        bao.bao(&["auth", "enable", "ldap"], None);
        let config = json!({
            "url": slapd.url(),
            "userdn": ldap::USERS_DN,
            "userattr": "uid",
            "binddn": ldap::ROOT_DN,
            "bindpass": ldap::ROOT_PASSWORD,
            "groupdn": ldap::GROUPS_DN,
            "groupfilter": "(&(objectClass=groupOfNames)(member={{.UserDN}}))",
            "groupattr": "cn",
            "request_timeout": "10s",
        });
        bao.bao(
            &["write", "auth/ldap/config", "-"],
            Some(&config.to_string()),
        );
        // Read back: the method took the directory's settings (and refuses empty passwords).
        let stored: Value =
            serde_json::from_str(&bao.bao(&["read", "-format=json", "auth/ldap/config"], None))
                .expect("config JSON");
        assert_eq!(stored["data"]["url"], json!(slapd.url()), "{stored}");
        assert_eq!(stored["data"]["userdn"], json!(ldap::USERS_DN), "{stored}");
        assert_eq!(stored["data"]["deny_null_bind"], json!(true), "{stored}");
        let policy = "path \"secret/data/team/*\" { capabilities = [\"read\"] }\n";
        bao.bao(&["policy", "write", POLICY, "-"], Some(policy));
        bao.bao(
            &[
                "write",
                "auth/ldap/groups/readers",
                &format!("policies={POLICY}"),
            ],
            None,
        );
        let body = json!({"data": {"user": "app", "password": "db-value-from-vault"}});
        bao.bao(
            &["write", &format!("secret/data/{KEY}"), "-"],
            Some(&body.to_string()),
        );
        LdapVault { bao, slapd }
    })
    .await
    .expect("setup task")
}

fn scope() -> StoreScope {
    StoreScope {
        kind: StoreKind::SecretStore,
        name: "vault-ldap".into(),
        namespace: NS.into(),
    }
}

/// `spec.provider.vault` as an ESO user writes it: `auth.ldap` without a `path`.
fn ldap_provider(addr: &str, username: &str, secret: &str) -> VaultProvider {
    let provider: VaultProvider = serde_json::from_value(json!({
        "server": addr,
        "path": "secret",
        "version": "v2",
        "auth": {
            "ldap": {
                "username": username,
                "secretRef": { "name": secret, "key": "password" },
            },
        },
    }))
    .expect("a Vault provider with auth.ldap");
    let path = provider.auth.as_ref().and_then(|a| a.ldap.as_ref());
    assert_eq!(path.map(|l| l.path.as_str()), Some("ldap"), "default path");
    provider
}

async fn client(provider: &VaultProvider, referents: Arc<MemoryReferents>) -> VaultClient {
    VaultClient::new(provider, &scope(), referents)
        .await
        .unwrap_or_else(|e| panic!("build: {e}"))
}

fn json_of(v: &SecretBytes) -> Value {
    serde_json::from_slice(v.expose()).expect("value is JSON")
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
async fn ldap_login_binds_to_the_directory_and_reads_through_a_group_policy() {
    let env = ldap_vault().await;
    let alice = ldap::user_dn("alice");
    let referents = Arc::new(MemoryReferents::default().with_secret(
        NS,
        "ldap-alice",
        "password",
        ALICE_PASSWORD,
    ));
    let c = client(
        &ldap_provider(&env.bao.addr, "alice", "ldap-alice"),
        referents.clone(),
    )
    .await;

    // Concurrent first reads share one login: one password read, one bind as alice.
    let key = RemoteRef::key(KEY);
    let reads = futures::future::join_all((0..8).map(|_| c.get(&key))).await;
    assert!(reads.iter().all(Result::is_ok), "{reads:?}");
    assert_eq!(
        json_of(reads[0].as_ref().expect("read")),
        json!({"user": "app", "password": "db-value-from-vault"})
    );
    assert_eq!(referents.reads_of("ldap-alice", "password"), 1);
    assert_eq!(env.slapd.binds(&alice), vec![0], "{}", env.slapd.log());
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);

    // The token carries the policy of alice's LDAP group, and no more.
    env.bao.bao(
        &["write", "secret/data/other/x", "-"],
        Some(&json!({"data": {"v": "elsewhere"}}).to_string()),
    );
    let err = c
        .get(&RemoteRef::key("other/x"))
        .await
        .expect_err("outside the policy");
    assert!(matches!(err, ProviderError::AccessDenied { .. }), "{err:?}");

    // Revoked tokens: the next read logs in again, binding to the directory again.
    env.bao
        .bao(&["lease", "revoke", "-prefix", "auth/ldap/"], None);
    assert!(c.get(&key).await.is_ok());
    assert_eq!(referents.reads_of("ldap-alice", "password"), 2);
    assert_eq!(env.slapd.binds(&alice), vec![0, 0], "{}", env.slapd.log());
}

#[tokio::test]
async fn a_wrong_ldap_password_is_an_auth_error_that_shows_no_password() {
    let env = ldap_vault().await;
    let referents = Arc::new(
        MemoryReferents::default()
            .with_secret(NS, "ldap-wrong", "password", WRONG_PASSWORD)
            .with_secret(NS, "ldap-empty", "password", ""),
    );

    let wrong = client(
        &ldap_provider(&env.bao.addr, "alice", "ldap-wrong"),
        referents.clone(),
    )
    .await;
    let err = wrong
        .get(&RemoteRef::key(KEY))
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    let texts = error_texts(&err);
    assert!(texts.contains("auth/ldap/login/alice"), "{texts}");
    assert!(!texts.contains(WRONG_PASSWORD), "{texts}");
    assert!(!texts.contains(ALICE_PASSWORD), "{texts}");
    // The directory itself refused the bind (49: invalid credentials).
    assert_eq!(
        env.slapd.binds(&ldap::user_dn("alice")),
        vec![49],
        "{}",
        env.slapd.log()
    );
    // validate() logs in too, and fails the same way.
    let err = wrong
        .validate()
        .await
        .expect_err("validate with a wrong password");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(!error_texts(&err).contains(WRONG_PASSWORD));
    assert_eq!(env.slapd.binds(&ldap::user_dn("alice")), vec![49, 49]);

    // No such user: the search as the bind DN finds nobody, so there is no bind to try.
    let nobody = client(
        &ldap_provider(&env.bao.addr, "mallory", "ldap-wrong"),
        referents.clone(),
    )
    .await;
    let err = nobody
        .get(&RemoteRef::key(KEY))
        .await
        .expect_err("unknown user");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert!(!error_texts(&err).contains(WRONG_PASSWORD));
    assert!(env.slapd.binds(&ldap::user_dn("mallory")).is_empty());

    // An empty password would be an unauthenticated (anonymous) bind that LDAP servers accept;
    // OpenBao refuses it without asking the directory, and so the login fails.
    let empty = client(
        &ldap_provider(&env.bao.addr, "alice", "ldap-empty"),
        referents,
    )
    .await;
    let err = empty
        .get(&RemoteRef::key(KEY))
        .await
        .expect_err("empty password");
    assert!(matches!(err, ProviderError::Auth { .. }), "{err:?}");
    assert_eq!(env.slapd.binds(&ldap::user_dn("alice")), vec![49, 49]);
}

#[tokio::test]
async fn an_ldap_user_outside_the_mapped_group_logs_in_but_may_not_read() {
    let env = ldap_vault().await;
    let referents =
        Arc::new(MemoryReferents::default().with_secret(NS, "ldap-bob", "password", BOB_PASSWORD));
    let c = client(
        &ldap_provider(&env.bao.addr, "bob", "ldap-bob"),
        referents.clone(),
    )
    .await;
    // bob's password is right (the directory accepts the bind) and the token is valid ...
    assert_eq!(c.validate().await.expect("validate"), Validation::Ready);
    assert_eq!(env.slapd.binds(&ldap::user_dn("bob")), vec![0]);
    // ... but carries no policy that reads team/: a permission denial, not a login failure,
    // and no new login for it.
    let err = c.get(&RemoteRef::key(KEY)).await.expect_err("denied");
    assert!(matches!(err, ProviderError::AccessDenied { .. }), "{err:?}");
    assert_eq!(referents.reads_of("ldap-bob", "password"), 1);
    assert_eq!(env.slapd.binds(&ldap::user_dn("bob")), vec![0]);
}
