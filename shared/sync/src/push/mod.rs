//! PushSecret in the engine: keys of a Kubernetes Secret written into providers, with ESO's
//! stores, entries, update and deletion policies, finalizer, status and Events.
//!
//! A pass reads the source Secret (by name or by labels), applies `template` to it, resolves
//! the stores (by name or by labels; stores of another controller class are skipped), and
//! pushes to each store its entries ([`entries`]: the `data` entries and the
//! expanded `dataTo` rules): the value of `match.secretKey`, or with no key the whole Secret as
//! a JSON object. Providers skip a value that is already there, and refuse to overwrite a secret
//! PushSecret did not create. With `deletionPolicy: Delete`, entries dropped from the spec are
//! deleted from the provider, and everything pushed is deleted with the PushSecret (a finalizer
//! holds it until then).
//!
//! The source may be a generator (`selector.generatorRef`), as in ESO: each pass makes fresh
//! values, as a Secret named `___generated-secret`, and pushes them.
//!
//! Where it differs from ESO: a change to the source Secret is pushed at once (ESO waits for the
//! next `refreshInterval`); a template that fails is reported on the status (ESO only retries).

//!
//! [`Engine::push`] runs one pass for any entry point: the in-cluster reconciler (on a change to
//! the PushSecret or its source, and every `refreshInterval`) and the Lambda (on a provider event
//! at a key the PushSecret pushed). It returns what happened; the caller decides when to look
//! again.

pub mod entries;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::Engine;
use crate::events::EventType;
use crate::render::StoreRefKey;
use crate::resolve::StoreCaches;
use crate::stores::{Resolution, ResolvedStore, StoreError, resolve, selector_matches, serves};
use crate::template;
use secret_sync_crd::{
    ConditionStatus, PushSecret, PushSecretData, PushSecretDeletionPolicy, PushSecretStatus,
    PushSecretStatusCondition, PushSecretStoreRef, PushSecretUpdatePolicy, StoreKind,
    TemplateMergePolicy,
};
use secret_sync_providers::{PushRef, PushSource, SecretBytes};
use serde_json::json;

use entries::{Data, Entry, StoreId};

/// ESO's finalizer, on PushSecrets with `deletionPolicy: Delete`.
pub const FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";
pub const REASON_SYNCED: &str = "Synced";
pub const REASON_ERRORED: &str = "Errored";
pub const MESSAGE_SYNCED: &str = "PushSecret synced successfully";
/// Appended to [`MESSAGE_SYNCED`] under `updatePolicy: IfNotExists`.
pub const MESSAGE_UNCHANGED: &str = ". Existing secrets in providers unchanged.";
pub const MESSAGE_NO_SOURCE: &str = "could not get source secret";

/// `syncedPushSecrets`: `<Kind>/<store>` → `<remoteKey>[/<property>]` → the entry.
type Synced = BTreeMap<String, BTreeMap<String, PushSecretData>>;

/// What the engine and the caches a pass reads.
struct PsContext<'a> {
    engine: &'a Engine,
    stores: &'a StoreCaches,
}

/// What a pass did, for the caller to decide when to look again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Every store it names is another controller class's: nothing was written. A store may
    /// change hands, so look again now and then.
    Foreign,
    /// A store has not been validated yet: look again in a moment.
    Pending,
    /// The finalizer was added or removed; the update starts the next pass.
    Finalizer,
    /// Deleted: what it pushed is deleted (`deletionPolicy: Delete`) and the finalizer is off.
    Finalized,
    /// Pushed: `written` values written (0 when every provider had them already); push again
    /// after `refresh`, or only on a change when `None`.
    Synced {
        written: usize,
        refresh: Option<Duration>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("failed to write the PushSecret: {0}")]
    Write(#[source] kube::Error),
    /// Recorded on the PushSecret; retried with backoff.
    #[error("{0}")]
    Failed(String),
}

/// ESO's key for a store in `syncedPushSecrets`.
fn store_key(kind: StoreKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

/// ESO's key for an entry in `syncedPushSecrets`.
fn entry_key(data: &PushSecretData) -> String {
    let remote = &data.match_.remote_ref;
    match remote.property.as_deref().filter(|p| !p.is_empty()) {
        Some(property) => format!("{}/{property}", remote.remote_key),
        None => remote.remote_key.clone(),
    }
}

fn push_ref(ps: &PushSecret, data: &PushSecretData) -> PushRef {
    PushRef {
        key: data.match_.remote_ref.remote_key.clone(),
        property: data.match_.remote_ref.property.clone(),
        metadata: data.metadata.clone(),
        namespace: ps.namespace().unwrap_or_default(),
        source: None,
    }
}

/// The source Secret as pushed: its data after the template, and its type, labels and
/// annotations, which the template's `type` and `metadata` replace when it sets them (ESO's
/// Kubernetes provider copies these to the Secret it writes).
fn push_source(secret: &Secret, ps: &PushSecret, data: &Data) -> Arc<PushSource> {
    let template = ps.spec.template.as_ref();
    let metadata = template.map(|t| &t.metadata).filter(|m| !m.is_empty());
    Arc::new(PushSource {
        type_: template
            .and_then(|t| t.type_.clone())
            .filter(|t| !t.is_empty())
            .or_else(|| secret.type_.clone()),
        labels: match metadata {
            Some(m) => m.labels.clone(),
            None => secret.metadata.labels.clone().unwrap_or_default(),
        },
        annotations: match metadata {
            Some(m) => m.annotations.clone(),
            None => secret.metadata.annotations.clone().unwrap_or_default(),
        },
        data: data
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes::new(v.clone())))
            .collect(),
    })
}

/// The source Secret's data as the entries read it: with a `template`, rendered over the
/// Secret's keys (ESO's `applyTemplate`: the Secret's keys stay, rendered keys are added or
/// replace them; `templateFrom` items are read from the PushSecret's namespace).
fn data_of(
    secret: &Secret,
    ps: &PushSecret,
    sources: Option<&template::Sources>,
) -> Result<Data, String> {
    let data: BTreeMap<String, SecretBytes> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::from(v.0)))
        .collect();
    let (Some(spec), Some(sources)) = (&ps.spec.template, sources) else {
        return Ok(data
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_vec()))
            .collect());
    };
    let mut spec = spec.clone();
    spec.merge_policy = TemplateMergePolicy::Merge;
    let rendered = template::apply(&spec, data, sources)
        .map_err(|e| format!("could not execute template: {e}"))?;
    Ok(rendered
        .data
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_vec()))
        .collect())
}

/// Whether the stores this PushSecret names all exist and are all served by another controller
/// class (ESO's `removeUnmanagedStores` leaving none): it is then another controller's, and this
/// one writes nothing to it: no status, and no finalizer, which both controllers spell alike. A
/// store that does not exist makes it ours, to report.
fn foreign(ps: &PushSecret, ctx: &PsContext<'_>) -> bool {
    let known = known_stores(ps, ctx);
    let mut found = false;
    for reference in &ps.spec.secret_store_refs {
        let named = reference.name.as_deref().is_some_and(|n| !n.is_empty());
        let chosen: Vec<&KnownStore> = known.iter().filter(|k| k.chosen_by(reference)).collect();
        if (named && chosen.is_empty()) || chosen.iter().any(|k| k.ours) {
            return false;
        }
        found |= !chosen.is_empty();
    }
    found
}

/// A store in the caches that a PushSecret in its namespace may use.
struct KnownStore {
    kind: StoreKind,
    name: String,
    labels: BTreeMap<String, String>,
    /// Served by this controller's class.
    ours: bool,
}

impl KnownStore {
    fn chosen_by(&self, reference: &PushSecretStoreRef) -> bool {
        self.kind == reference.kind
            && match (
                reference.name.as_deref().filter(|n| !n.is_empty()),
                &reference.label_selector,
            ) {
                (Some(name), _) => self.name == name,
                (None, Some(selector)) => selector_matches(selector, &self.labels),
                (None, None) => false,
            }
    }
}

/// The SecretStores of the PushSecret's namespace and every ClusterSecretStore, as cached.
fn known_stores(ps: &PushSecret, ctx: &PsContext<'_>) -> Vec<KnownStore> {
    let class = &ctx.engine.settings().stores.controller_class;
    let ns = ps.namespace();
    let secret_stores = ctx.stores.secret_stores.state();
    let cluster_stores = ctx.stores.cluster_secret_stores.state();
    let namespaced = secret_stores
        .iter()
        .filter(|s| s.namespace() == ns)
        .map(|s| KnownStore {
            kind: StoreKind::SecretStore,
            name: s.name_any(),
            labels: s.labels().clone(),
            ours: serves(&s.spec, class),
        });
    let cluster = cluster_stores.iter().map(|s| KnownStore {
        kind: StoreKind::ClusterSecretStore,
        name: s.name_any(),
        labels: s.labels().clone(),
        ours: serves(&s.spec, class),
    });
    namespaced.chain(cluster).collect()
}

impl Engine {
    /// One PushSecret pass (see the module notes), judged on `stores`. A failure is recorded on
    /// the PushSecret (Ready=False, a Warning Event) and returned; retry it with backoff.
    pub async fn push(&self, ps: &PushSecret, stores: &StoreCaches) -> Result<Pushed, PushError> {
        pass(
            ps,
            &PsContext {
                engine: self,
                stores,
            },
        )
        .await
    }
}

async fn pass(ps: &PushSecret, ctx: &PsContext<'_>) -> Result<Pushed, PushError> {
    let (ns, name) = (ps.namespace().unwrap_or_default(), ps.name_any());
    // Judged on full store caches, so that a store not listed yet is not taken for a missing one.
    crate::caches::ready(&ctx.stores.secret_stores).await;
    crate::caches::ready(&ctx.stores.cluster_secret_stores).await;
    if foreign(ps, ctx) {
        return Ok(Pushed::Foreign);
    }
    let api: Api<PushSecret> = Api::namespaced(ctx.engine.client().clone(), &ns);
    let has_finalizer = ps.finalizers().iter().any(|f| f == FINALIZER);
    let delete_policy = ps.spec.deletion_policy == PushSecretDeletionPolicy::Delete;

    if ps.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Pushed::Finalized);
        }
        if delete_policy {
            let synced = ps
                .status
                .as_ref()
                .map(|s| s.synced_push_secrets.clone())
                .unwrap_or_default();
            if let Err(e) = delete_entries(ps, ctx, &synced, &Synced::new()).await {
                return fail(
                    ps,
                    ctx,
                    format!("Failed to Delete Secrets from Provider: {e}"),
                    None,
                )
                .await;
            }
        }
        set_finalizer(&api, ps, false).await?;
        return Ok(Pushed::Finalized);
    }
    if delete_policy != has_finalizer {
        set_finalizer(&api, ps, delete_policy).await?;
        return Ok(Pushed::Finalizer);
    }
    if let Err(message) = entries::check_store_refs(&ps.spec) {
        return fail(ps, ctx, message, None).await;
    }
    let refresh = match ps.spec.refresh_interval() {
        Ok(refresh) => refresh,
        Err(e) => {
            return fail(ps, ctx, format!("invalid spec.refreshInterval: {e}"), None).await;
        }
    };
    let old = ps
        .status
        .as_ref()
        .map(|s| s.synced_push_secrets.clone())
        .unwrap_or_default();

    let sources = match sources(ps, ctx).await {
        Ok(sources) => sources,
        Err(message) => {
            // A source Secret that is gone takes what was pushed from it along (Delete only).
            if delete_policy && !old.is_empty() && message == MESSAGE_NO_SOURCE {
                if let Err(e) = delete_entries(ps, ctx, &old, &Synced::new()).await {
                    return fail(
                        ps,
                        ctx,
                        format!("failed to cleanup provider secrets: {e}"),
                        None,
                    )
                    .await;
                }
                return fail(ps, ctx, message, Some(Synced::new())).await;
            }
            return fail(ps, ctx, message, None).await;
        }
    };
    let targets = match stores(ps, ctx).await {
        Ok(targets) => targets,
        // A store the store reconciler has not validated yet: a moment's wait, not a failure.
        Err(Unresolved::Pending) => return Ok(Pushed::Pending),
        Err(Unresolved::Failed(message) | Unresolved::Missing(message)) => {
            return fail(ps, ctx, message, None).await;
        }
    };
    let ids: Vec<StoreId<'_>> = targets.iter().map(Target::id).collect();
    if let Err(message) = entries::check_selected(&ps.spec, &ids) {
        return fail(ps, ctx, message, None).await;
    }
    let template_sources = match &ps.spec.template {
        Some(spec) => match template::Sources::load(ctx.engine.client(), &ns, spec).await {
            Ok(sources) => Some(sources),
            Err(e) => {
                return fail(
                    ps,
                    ctx,
                    format!("error fetching templateFrom data: {e}"),
                    None,
                )
                .await;
            }
        },
        None => None,
    };

    let mut synced = Synced::new();
    let mut written = 0usize;
    for secret in &sources {
        let data = match data_of(secret, ps, template_sources.as_ref()) {
            Ok(data) => data,
            Err(message) => return fail(ps, ctx, message, None).await,
        };
        let source = push_source(secret, ps, &data);
        for target in &targets {
            let pushed = match entries::for_store(&ps.spec, &target.id(), &data) {
                Ok(entries) => push_all(ps, &data, &source, target, &entries, &mut synced).await,
                Err(message) => Err(message),
            };
            match pushed {
                Ok(wrote) => written += wrote,
                Err(message) => {
                    let mut merged = old.clone();
                    for (store, entries) in synced {
                        merged.entry(store).or_default().extend(entries);
                    }
                    return fail(
                        ps,
                        ctx,
                        format!("set secret failed: {message}"),
                        Some(merged),
                    )
                    .await;
                }
            }
        }
    }
    if delete_policy && let Err(e) = delete_entries(ps, ctx, &old, &synced).await {
        return fail(
            ps,
            ctx,
            format!("Failed to Delete Secrets from Provider: {e}"),
            Some(synced),
        )
        .await;
    }

    let mut message = MESSAGE_SYNCED.to_owned();
    if ps.spec.update_policy == PushSecretUpdatePolicy::IfNotExists {
        message.push_str(MESSAGE_UNCHANGED);
    }
    let announce = written > 0 || !is_ready(ps);
    write_status(ps, ctx, true, REASON_SYNCED, &message, Some(synced)).await?;
    if announce {
        publish(ps, ctx, EventType::Normal, REASON_SYNCED, &message);
        tracing::info!(namespace = %ns, name = %name, written, "PushSecret synced");
    }
    Ok(Pushed::Synced {
        written,
        refresh: (!refresh.is_zero()).then_some(refresh),
    })
}

fn is_ready(ps: &PushSecret) -> bool {
    ps.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// The source Secrets: the one named, or those the label selector matches.
async fn sources(ps: &PushSecret, ctx: &PsContext<'_>) -> Result<Vec<Secret>, String> {
    let ns = ps.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.engine.client().clone(), &ns);
    if let Some(generator) = &ps.spec.selector.generator_ref {
        return generated(ps, ctx, &ns, generator).await.map(|s| vec![s]);
    }
    let Some(source) = &ps.spec.selector.secret else {
        return Err("spec.selector.secret or spec.selector.generatorRef is required".into());
    };
    match (&source.name, &source.selector) {
        (Some(name), _) => match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(vec![secret]),
            Ok(None) => Err(MESSAGE_NO_SOURCE.into()),
            Err(e) => {
                tracing::warn!(namespace = %ns, secret = %name, error = %e, "reading the source Secret failed");
                Err(MESSAGE_NO_SOURCE.into())
            }
        },
        (None, Some(selector)) => {
            let selector = kube::core::Selector::try_from(selector.clone())
                .map_err(|e| format!("invalid spec.selector.secret.selector: {e}"))?;
            let list = api
                .list(&ListParams::default().labels_from(&selector))
                .await
                .map_err(|e| format!("could not list source secrets: {e}"))?;
            Ok(list.items)
        }
        (None, None) => Err("spec.selector.secret needs a name or a selector".into()),
    }
}

/// A generator's fresh values as the source Secret, named as ESO names it.
async fn generated(
    ps: &PushSecret,
    ctx: &PsContext<'_>,
    ns: &str,
    generator: &secret_sync_crd::GeneratorRef,
) -> Result<Secret, String> {
    let engine = ctx.engine;
    let made = crate::generate::generate(
        engine.client(),
        engine.clients(),
        &engine.settings().stores.controller_class,
        ns,
        generator,
    )
    .await
    .map_err(|e| format!("error using generator: {e}"))?;
    let crate::generate::Generation::Made {
        generated: mut made,
        resource,
    } = made
    else {
        return Err(format!(
            "generator {} {:?} is served by another controller class",
            generator.kind, generator.name
        ));
    };
    tracing::debug!(namespace = %ns, push_secret = %ps.name_any(), kind = %generator.kind, "generated the source");
    // What the generation leaves to clean up is kept at once (ESO keeps a PushSecret's always):
    // the next generation flags it for cleanup after the grace period.
    if let Some(state) = made.state.take() {
        let (name, uid) = (ps.name_any(), ps.metadata.uid.clone().unwrap_or_default());
        let owner = crate::generate::StateOwner {
            kind: "PushSecret",
            api_version: "external-secrets.io/v1alpha1",
            namespace: ns,
            name: &name,
            uid: &uid,
            key: "__pushsecret".into(),
        };
        let grace = engine.settings().generator_gc_grace;
        if let Err(e) =
            crate::generate::keep_state(engine.client(), &owner, &resource, state, grace, false)
                .await
        {
            tracing::warn!(namespace = %ns, push_secret = %name, error = %e, "recording a GeneratorState failed: what the generator made will not be cleaned up");
        }
    }
    let mut secret = Secret::default();
    secret.metadata.name = Some("___generated-secret".into());
    secret.metadata.namespace = Some(ns.to_owned());
    secret.data = Some(
        made.data
            .into_iter()
            .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_inner())))
            .collect(),
    );
    Ok(secret)
}

/// Why a store cannot be used now.
enum Unresolved {
    /// Not validated yet.
    Pending,
    /// The store does not exist.
    Missing(String),
    Failed(String),
}

impl From<String> for Unresolved {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

/// A store to push to.
struct Target {
    kind: StoreKind,
    name: String,
    labels: BTreeMap<String, String>,
    store: ResolvedStore,
}

impl Target {
    fn id(&self) -> StoreId<'_> {
        StoreId {
            kind: self.kind,
            name: &self.name,
            labels: &self.labels,
        }
    }
}

/// The stores to push to, resolved.
async fn stores(ps: &PushSecret, ctx: &PsContext<'_>) -> Result<Vec<Target>, Unresolved> {
    let ns = ps.namespace().unwrap_or_default();
    let known = known_stores(ps, ctx);
    let mut names = Vec::new();
    for reference in &ps.spec.secret_store_refs {
        match (&reference.name, &reference.label_selector) {
            (Some(name), _) if !name.is_empty() => names.push((reference.kind, name.clone())),
            (_, Some(_)) => names.extend(
                known
                    .iter()
                    .filter(|k| k.chosen_by(reference))
                    .map(|k| (k.kind, k.name.clone())),
            ),
            _ => return Err(Unresolved::Failed("refStore Name must be provided".into())),
        }
    }
    let mut targets = Vec::new();
    for (kind, name) in names {
        if let Some(store) = resolve_store(ctx, kind, &name, &ns).await? {
            let labels = known
                .iter()
                .find(|k| k.kind == kind && k.name == name)
                .map(|k| k.labels.clone())
                .unwrap_or_default();
            targets.push(Target {
                kind,
                name,
                labels,
                store,
            });
        }
    }
    Ok(targets)
}

/// One store's client; `None` when another controller class serves it.
async fn resolve_store(
    ctx: &PsContext<'_>,
    kind: StoreKind,
    name: &str,
    namespace: &str,
) -> Result<Option<ResolvedStore>, Unresolved> {
    let engine = &ctx.engine;
    let reference = StoreRefKey {
        kind,
        name: name.to_owned(),
    };
    match resolve(
        engine.view().as_ref(),
        engine.clients(),
        &engine.settings().stores,
        &reference,
        namespace,
    )
    .await
    {
        Ok(Resolution::Ready(store)) => Ok(Some(store)),
        Ok(Resolution::Unmanaged) => Ok(None),
        Err(StoreError::NotValidatedYet { .. }) => Err(Unresolved::Pending),
        Err(e @ StoreError::NotFound { .. }) => Err(Unresolved::Missing(format!(
            "could not get {} {name:?}, {e}",
            kind.as_str()
        ))),
        Err(e) => Err(Unresolved::Failed(format!(
            "could not get {} {name:?}, {e}",
            kind.as_str()
        ))),
    }
}

/// Pushes `entries` to one store, recording each in `synced`; how many were written.
async fn push_all(
    ps: &PushSecret,
    data: &Data,
    source: &Arc<PushSource>,
    target: &Target,
    entries: &[Entry],
    synced: &mut Synced,
) -> Result<usize, String> {
    let mut written = 0;
    for entry in entries {
        written += usize::from(push_one(ps, data, source, target, entry).await?);
        synced
            .entry(store_key(target.kind, &target.name))
            .or_default()
            .insert(entry_key(&entry.spec), entry.spec.clone());
    }
    Ok(written)
}

/// Pushes one entry to one store; whether anything was written.
async fn push_one(
    ps: &PushSecret,
    data: &Data,
    source: &Arc<PushSource>,
    target: &Target,
    entry: &Entry,
) -> Result<bool, String> {
    let value = entry.value(data)?;
    let remote = PushRef {
        source: Some(source.clone()),
        ..push_ref(ps, &entry.spec)
    };
    let store = &target.store;
    if ps.spec.update_policy == PushSecretUpdatePolicy::IfNotExists {
        match store.provider.exists(&remote).await {
            Ok(true) => return Ok(false),
            Ok(false) => {}
            Err(e) => return Err(format!("could not verify if secret exists in store: {e}")),
        }
    }
    store.provider.push(&remote, &value).await.map_err(|e| {
        format!(
            "could not write remote ref {} to target secretstore {}: {e}",
            entry.spec.match_.secret_key.as_deref().unwrap_or_default(),
            target.name
        )
    })
}

/// Deletes from the providers every entry of `old` that `new` no longer has.
async fn delete_entries(
    ps: &PushSecret,
    ctx: &PsContext<'_>,
    old: &Synced,
    new: &Synced,
) -> Result<(), String> {
    let ns = ps.namespace().unwrap_or_default();
    for (store, entries) in old {
        let gone: Vec<&PushSecretData> = entries
            .iter()
            .filter(|(key, _)| !new.get(store).is_some_and(|n| n.contains_key(*key)))
            .map(|(_, data)| data)
            .collect();
        if gone.is_empty() {
            continue;
        }
        let (kind, name) = store.split_once('/').unwrap_or(("SecretStore", store));
        let kind = if kind == "ClusterSecretStore" {
            StoreKind::ClusterSecretStore
        } else {
            StoreKind::SecretStore
        };
        let resolved = match resolve_store(ctx, kind, name, &ns).await {
            Ok(Some(resolved)) => resolved,
            Ok(None) => continue,
            Err(Unresolved::Pending) => return Err(format!("{store} has not been validated yet")),
            // Nothing can be deleted through a store that is gone (deleting a namespace deletes
            // its SecretStores alongside its PushSecrets): what was pushed through it stays in
            // the provider, and the PushSecret is not held forever.
            Err(Unresolved::Missing(message)) => {
                tracing::warn!(namespace = %ns, name = %ps.name_any(), store = %store, entries = gone.len(), error = %message, "pushed secrets left in the provider: their store is gone");
                continue;
            }
            Err(Unresolved::Failed(message)) => return Err(message),
        };
        for data in gone {
            resolved
                .provider
                .delete_pushed(&push_ref(ps, data))
                .await
                .map_err(|e| format!("could not delete {}: {e}", entry_key(data)))?;
        }
    }
    Ok(())
}

/// Records a failure (Ready=False `Errored`, a Warning Event) and returns it, to be retried
/// with backoff.
async fn fail(
    ps: &PushSecret,
    ctx: &PsContext<'_>,
    message: String,
    synced: Option<Synced>,
) -> Result<Pushed, PushError> {
    let (ns, name) = (ps.namespace().unwrap_or_default(), ps.name_any());
    write_status(ps, ctx, false, REASON_ERRORED, &message, synced).await?;
    publish(ps, ctx, EventType::Warning, REASON_ERRORED, &message);
    tracing::warn!(namespace = %ns, name = %name, error = %message, "PushSecret failed");
    Err(PushError::Failed(message))
}

async fn write_status(
    ps: &PushSecret,
    ctx: &PsContext<'_>,
    ready: bool,
    reason: &str,
    message: &str,
    synced: Option<Synced>,
) -> Result<(), PushError> {
    let previous = ps.status.clone().unwrap_or_default();
    let status = ConditionStatus::from_bool(ready);
    let transition = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    let next = PushSecretStatus {
        refresh_time: if ready {
            Some(Time(Timestamp::now()))
        } else {
            previous.refresh_time.clone()
        },
        synced_resource_version: if ready {
            Some(crate::hash::synced_resource_version(&ps.metadata))
        } else {
            previous.synced_resource_version.clone()
        },
        synced_push_secrets: synced.unwrap_or(previous.synced_push_secrets.clone()),
        conditions: vec![PushSecretStatusCondition {
            type_: "Ready".into(),
            status,
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(transition),
        }],
    };
    let api: Api<PushSecret> = Api::namespaced(
        ctx.engine.client().clone(),
        &ps.namespace().unwrap_or_default(),
    );
    let mut body = json!({ "status": next });
    // A merge patch merges maps: entries no longer synced are removed with explicit nulls.
    let synced = &mut body["status"]["syncedPushSecrets"];
    if !synced.is_object() {
        *synced = json!({});
    }
    for (store, entries) in &previous.synced_push_secrets {
        match next.synced_push_secrets.get(store) {
            None => synced[store.as_str()] = serde_json::Value::Null,
            Some(now) => {
                for key in entries.keys().filter(|k| !now.contains_key(*k)) {
                    synced[store.as_str()][key.as_str()] = serde_json::Value::Null;
                }
            }
        }
    }
    api.patch_status(
        &ps.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await
    .map(drop)
    .map_err(PushError::Write)
}

fn publish(ps: &PushSecret, ctx: &PsContext<'_>, type_: EventType, reason: &str, note: &str) {
    ctx.engine
        .publish(ps.object_ref(&()), type_, reason, "Push", note.to_owned());
}

/// Adds or removes [`FINALIZER`], guarded by the resource version read.
async fn set_finalizer(
    api: &Api<PushSecret>,
    ps: &PushSecret,
    present: bool,
) -> Result<(), PushError> {
    let mut finalizers: Vec<String> = ps
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.into());
    }
    let patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": ps.resource_version(),
    } });
    api.patch(
        &ps.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(PushError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: serde_json::Value) -> Secret {
        serde_json::from_value(
            json!({ "metadata": { "name": "s" }, "stringData": {}, "data": data }),
        )
        .expect("secret")
    }

    fn push_secret(spec: serde_json::Value) -> PushSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
            "metadata": { "name": "ps", "namespace": "ns" }, "spec": spec
        }))
        .expect("PushSecret")
    }

    fn entry(secret_key: Option<&str>) -> Entry {
        let mut spec = PushSecretData::default();
        spec.match_.secret_key = secret_key.map(str::to_owned);
        Entry { spec, bundle: None }
    }

    #[test]
    fn one_key_or_the_whole_secret_as_a_json_object() {
        // "YQ==" is "a", "Yg==" is "b".
        let s = secret(json!({ "k1": "YQ==", "k2": "Yg==" }));
        let ps = push_secret(json!({
            "secretStoreRefs": [{ "name": "aws" }], "selector": { "secret": { "name": "s" } }
        }));
        let data = data_of(&s, &ps, None).expect("data");
        assert_eq!(entry(Some("k1")).value(&data).expect("value"), b"a");
        assert_eq!(
            entry(None).value(&data).expect("value"),
            br#"{"k1":"a","k2":"b"}"#.to_vec()
        );
        assert_eq!(
            entry(Some("nope")).value(&data).expect_err("missing"),
            "secret key nope does not exist"
        );
    }

    #[test]
    fn a_template_adds_rendered_keys_and_keeps_the_source_keys_even_under_replace() {
        let s = secret(json!({ "user": "YQ==", "pass": "Yg==" }));
        let ps = push_secret(json!({
            "secretStoreRefs": [{ "name": "aws" }], "selector": { "secret": { "name": "s" } },
            "template": { "mergePolicy": "Replace",
                "data": { "url": "db://{{ .user }}:{{ .pass }}@host", "user": "{{ .user | upper }}" } }
        }));
        let data = data_of(&s, &ps, Some(&template::Sources::default())).expect("data");
        assert_eq!(
            entry(None).value(&data).expect("value"),
            br#"{"pass":"b","url":"db://a:b@host","user":"A"}"#.to_vec()
        );
        let broken = push_secret(json!({
            "secretStoreRefs": [{ "name": "aws" }], "selector": { "secret": { "name": "s" } },
            "template": { "data": { "url": "{{ .missing.field }}" } }
        }));
        let err = data_of(&s, &broken, Some(&template::Sources::default())).expect_err("fails");
        assert!(err.starts_with("could not execute template: "), "{err}");
        assert!(!err.contains("YQ") && !err.contains("\"a\""), "{err}");
    }

    #[test]
    fn synced_entries_are_keyed_as_eso_keys_them() {
        let data: PushSecretData = serde_json::from_value(json!({
            "match": { "secretKey": "tls.crt", "remoteRef": { "remoteKey": "infra/tls", "property": "certificate" } }
        }))
        .expect("data");
        assert_eq!(entry_key(&data), "infra/tls/certificate");
        assert_eq!(store_key(StoreKind::SecretStore, "aws"), "SecretStore/aws");
    }
}
