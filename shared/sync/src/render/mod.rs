//! The render stage: an ExternalSecret's `data` and `dataFrom`, applied to fetched values.
//!
//! Pure and deterministic: [`needs`] lists what to fetch, the engine fetches it (deduplicated,
//! across ExternalSecrets), and [`render`] turns the results into the Secret's data exactly as
//! ESO's `GetProviderSecretData` does (R: `pkg/controllers/externalsecret/
//! externalsecret_controller_secret.go`), with the steps ESO leaves to providers done here,
//! because providers return whole values:
//!
//! 1. every `dataFrom[]` entry in order, later keys overwriting earlier ones:
//!    - `extract`: the value (or its `property`) read as a JSON object: string members
//!      unquoted, other members as their JSON text (ESO's `JSONToSecretDataMap`);
//!    - `find`: the provider's name → value map;
//!    - then `rewrite` if any, else key conversion (`conversionStrategy`), then key validation,
//!      then decoding (`decodingStrategy`), then the NUL-byte check (`nullBytePolicy`);
//!    - `sourceRef.generatorRef`: the generator's key → value map, then `rewrite` if any, then
//!      key validation (no conversion, decoding or NUL check, as in ESO);
//! 2. every `data[]` entry, overwriting: the value (or its `property`), decoded, NUL-checked,
//!    stored under `secretKey` without key conversion.
//!
//! A secret the provider does not have ([`ProviderError::NotFound`]) is an error with
//! `deletionPolicy: Retain` (the default); with `Delete` or `Merge` the entry is skipped and
//! reported in [`Rendered::missing`] for ESO's `MissingProviderSecret` event.
//!
//! No secret value reaches an error message or a `Debug` output: problems inside values are
//! reported by offset or JSON type (the test `no_error_reveals_a_secret_value` checks it).

pub(crate) mod decode;
mod error;
mod funcs;
mod json;
mod keys;
mod property;
mod rewrite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use secret_sync_crd::{
    DeletionPolicy, ExternalSecretDataRemoteRef, ExternalSecretFind, ExternalSecretRewrite,
    ExternalSecretSpec, GeneratorRef, MetadataPolicy, SecretStoreRef, StoreKind,
};
use secret_sync_providers::{Find, ProviderError, RemoteRef, SecretBytes};

pub use decode::Base64Problem;
pub use error::{Location, Missing, ProviderFailure, RenderError};
pub use json::{NumberOutOfRange, SyntaxError};
pub use keys::{KeyProblem, reverse_unicode};
pub use rewrite::{JsonProblem, KeyRewrites, RewriteError};

use rewrite::Rewrite;
use secret_sync_gosem::GoRegexp;

/// Which store an entry reads: its `sourceRef.storeRef` if set, else `spec.secretStoreRef`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRefKey {
    pub kind: StoreKind,
    pub name: String,
}

impl From<&SecretStoreRef> for StoreRefKey {
    fn from(r: &SecretStoreRef) -> Self {
        Self {
            kind: r.kind(),
            name: r.name.clone(),
        }
    }
}

impl fmt::Display for StoreRefKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// One fetch the spec needs. [`needs`] lists them in processing order (`dataFrom`, then
/// `data`), one per entry; the engine deduplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A whole value (`data[]`, `dataFrom[].extract`).
    Value {
        store: StoreRefKey,
        remote: RemoteRef,
    },
    /// A search (`dataFrom[].find`).
    Find { store: StoreRefKey, find: Find },
    /// Fresh values from a generator (`dataFrom[index].sourceRef.generatorRef`): never shared,
    /// each entry its own.
    Generate {
        index: usize,
        generator: GeneratorRef,
    },
}

/// The API group every `generatorRef` names.
pub const GENERATOR_GROUP: &str = "generators.external-secrets.io";

/// What the fetch stage got, looked up by what [`needs`] asked for. An implementation answers
/// every [`Need`]; one it has no result for should be an error.
pub trait Fetched {
    fn value(
        &self,
        store: &StoreRefKey,
        remote: &RemoteRef,
    ) -> Result<&SecretBytes, &ProviderError>;
    fn found(
        &self,
        store: &StoreRefKey,
        find: &Find,
    ) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError>;
    /// What the generator of `dataFrom[index]` made.
    fn generated(&self, index: usize) -> Result<&BTreeMap<String, SecretBytes>, &ProviderError>;
    /// Whether the value of `remote` is a [keyed](secret_sync_providers::keyed) map.
    fn keyed(&self, store: &StoreRefKey, remote: &RemoteRef) -> bool {
        let _ = (store, remote);
        false
    }
}

/// The Secret data an ExternalSecret renders to, before its target template.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Secret key → value.
    pub data: BTreeMap<String, SecretBytes>,
    /// Entries skipped because the provider does not have their secret (`deletionPolicy`
    /// `Delete` or `Merge`), in processing order. Each `Display`s as ESO's event message.
    pub missing: Vec<Missing>,
}

/// The fetches `spec` needs. Fails on specs that cannot render, whatever the provider holds.
pub fn needs(spec: &ExternalSecretSpec) -> Result<Vec<Need>, RenderError> {
    Ok(Plan::new(spec)?.needs())
}

/// Renders `spec`'s data from `fetched`.
pub fn render(spec: &ExternalSecretSpec, fetched: &dyn Fetched) -> Result<Rendered, RenderError> {
    Plan::new(spec)?.render(fetched)
}

/// A checked spec, with its regular expressions and templates compiled: [`needs`] and
/// [`render`] in one, for callers that render the same spec more than once.
///
/// Checks ESO's admission rules for `data` and `dataFrom` (R: `apis/externalsecrets/v1/
/// externalsecret_validator.go`) because a webhook may be absent. An empty spec (no `data`, no
/// `dataFrom`) is accepted and renders nothing, so a template-only ExternalSecret works; the
/// engine decides whether to allow it.
pub struct Plan<'s> {
    deletion_policy: DeletionPolicy,
    data_from: Vec<FromEntry<'s>>,
    data: Vec<DataEntry<'s>>,
}

struct DataEntry<'s> {
    index: usize,
    secret_key: &'s str,
    store: StoreRefKey,
    remote: RemoteRef,
    spec: &'s ExternalSecretDataRemoteRef,
}

struct FromEntry<'s> {
    index: usize,
    source: FromSource<'s>,
    rewrites: Vec<Rewrite<'s>>,
}

enum FromSource<'s> {
    Extract {
        store: StoreRefKey,
        remote: RemoteRef,
        spec: &'s ExternalSecretDataRemoteRef,
    },
    Find {
        store: StoreRefKey,
        find: Find,
        spec: &'s ExternalSecretFind,
    },
    Generator {
        reference: &'s GeneratorRef,
    },
}

impl FromEntry<'_> {
    fn location(&self) -> Location {
        match self.source {
            FromSource::Extract { .. } => Location::Extract { index: self.index },
            FromSource::Find { .. } => Location::Find { index: self.index },
            FromSource::Generator { .. } => Location::Generator { index: self.index },
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RenderError {
    RenderError::InvalidSpec {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The store an entry reads, or an error when neither it nor the spec names one.
fn store_of(
    own: Option<&SecretStoreRef>,
    spec: Option<&SecretStoreRef>,
    field: &str,
) -> Result<StoreRefKey, RenderError> {
    let (reference, name_field) = match (own, spec) {
        (Some(own), _) => (own, format!("{field}.sourceRef.storeRef.name")),
        (None, Some(spec)) => (spec, "spec.secretStoreRef.name".to_owned()),
        (None, None) => {
            return Err(invalid(
                field,
                format!(
                    "no store to read from: set spec.secretStoreRef or {field}.sourceRef.storeRef"
                ),
            ));
        }
    };
    if reference.name.is_empty() {
        return Err(invalid(name_field, "the store name is empty"));
    }
    Ok(StoreRefKey::from(reference))
}

/// ESO's checks of a `generatorRef`: its API version is of the generators group, and it names
/// a kind and a name (the kind's support is the engine's to judge).
fn check_generator_ref(reference: &GeneratorRef, field: &str) -> Result<(), RenderError> {
    let group = reference
        .api_version
        .rsplit_once('/')
        .map_or(reference.api_version.as_str(), |(group, _)| group);
    if group != GENERATOR_GROUP {
        return Err(invalid(
            format!("{field}.apiVersion"),
            "generatorRef may only reference the generators group",
        ));
    }
    if reference.kind.is_empty() {
        return Err(invalid(
            format!("{field}.kind"),
            "the generator kind is empty",
        ));
    }
    if reference.name.is_empty() {
        return Err(invalid(
            format!("{field}.name"),
            "the generator name is empty",
        ));
    }
    Ok(())
}

fn remote_ref(spec: &ExternalSecretDataRemoteRef) -> RemoteRef {
    RemoteRef {
        key: spec.key.clone(),
        version: spec.version.clone().filter(|v| !v.is_empty()),
        metadata: spec.metadata_policy == MetadataPolicy::Fetch,
    }
}

fn compile_rewrite<'s>(
    rewrite: &'s ExternalSecretRewrite,
    field: &str,
) -> Result<Rewrite<'s>, RenderError> {
    match (&rewrite.merge, &rewrite.regexp, &rewrite.transform) {
        (Some(merge), None, None) => Ok(Rewrite::Merge(merge)),
        (None, Some(regexp), None) => GoRegexp::new(&regexp.source)
            .map(|source| Rewrite::Regexp {
                source,
                target: &regexp.target,
            })
            .map_err(|e| {
                invalid(
                    format!("{field}.regexp.source"),
                    format!("regexp failed with failed to compile: {e}"),
                )
            }),
        (None, None, Some(transform)) => funcs::key_template(&transform.template)
            .map(Rewrite::Transform)
            .map_err(|e| {
                invalid(
                    format!("{field}.transform.template"),
                    format!("transform failed with failed to parse template: {e}"),
                )
            }),
        _ => Err(invalid(
            field,
            "set exactly one of merge, regexp or transform",
        )),
    }
}

impl<'s> Plan<'s> {
    /// Checks `spec` and compiles its rewrites.
    pub fn new(spec: &'s ExternalSecretSpec) -> Result<Self, RenderError> {
        let spec_store = spec.secret_store_ref.as_ref();

        let mut data_from = Vec::with_capacity(spec.data_from.len());
        for (index, entry) in spec.data_from.iter().enumerate() {
            let field = format!("spec.dataFrom[{index}]");
            let generator = entry
                .source_ref
                .as_ref()
                .and_then(|s| s.generator_ref.as_ref());
            let sources = [
                entry.extract.is_some(),
                entry.find.is_some(),
                generator.is_some(),
            ];
            if sources.iter().filter(|&&set| set).count() > 1 {
                return Err(invalid(
                    field,
                    "extract, find, or generatorRef cannot be set at the same time",
                ));
            }
            if entry.extract.is_none() && entry.find.is_none() && entry.source_ref.is_none() {
                return Err(invalid(
                    field,
                    "either extract, find, or sourceRef must be set to dataFrom",
                ));
            }
            if let Some(source) = &entry.source_ref
                && source.generator_ref.is_none()
                && source.store_ref.is_none()
            {
                return Err(invalid(
                    format!("{field}.sourceRef"),
                    "generatorRef or storeRef must be set when using sourceRef in dataFrom",
                ));
            }
            let rewrites = entry
                .rewrite
                .iter()
                .enumerate()
                .map(|(j, r)| compile_rewrite(r, &format!("{field}.rewrite[{j}]")))
                .collect::<Result<_, _>>()?;
            if let Some(reference) = generator {
                check_generator_ref(reference, &format!("{field}.sourceRef.generatorRef"))?;
                data_from.push(FromEntry {
                    index,
                    source: FromSource::Generator { reference },
                    rewrites,
                });
                continue;
            }
            let own_store = entry.source_ref.as_ref().and_then(|s| s.store_ref.as_ref());
            let source = if let Some(extract) = &entry.extract {
                FromSource::Extract {
                    store: store_of(own_store, spec_store, &field)?,
                    remote: remote_ref(extract),
                    spec: extract,
                }
            } else if let Some(find) = &entry.find {
                let name_regexp = find
                    .name
                    .as_ref()
                    .map(|n| n.regexp.clone().unwrap_or_default());
                // A find by path alone is the provider's to judge: Vault's reads everything
                // under the path (ESO's `GetAllSecrets` with no tags), AWS's refuses it as ESO's
                // does.
                if let Some(pattern) = &name_regexp {
                    GoRegexp::new(pattern)
                        .map_err(|e| invalid(format!("{field}.find.name.regexp"), e.to_string()))?;
                }
                FromSource::Find {
                    store: store_of(own_store, spec_store, &field)?,
                    find: Find {
                        path: find.path.clone().filter(|p| !p.is_empty()),
                        name_regexp,
                        tags: find.tags.clone(),
                    },
                    spec: find,
                }
            } else {
                // Only `sourceRef.storeRef`: ESO reads nothing for such an entry.
                continue;
            };
            data_from.push(FromEntry {
                index,
                source,
                rewrites,
            });
        }

        let mut data = Vec::with_capacity(spec.data.len());
        let mut seen = BTreeSet::new();
        for (index, entry) in spec.data.iter().enumerate() {
            let field = format!("spec.data[{index}]");
            if entry
                .source_ref
                .as_ref()
                .is_some_and(|s| s.generator_ref.is_some())
            {
                return Err(invalid(
                    format!("{field}.sourceRef.generatorRef"),
                    "generatorRef is not implemented in spec.data[]; use spec.dataFrom[]",
                ));
            }
            if spec.target.deletion_policy == DeletionPolicy::Retain
                && !seen.insert(entry.secret_key.as_str())
            {
                return Err(invalid(
                    format!("{field}.secretKey"),
                    format!("duplicate secretKey found: {}", entry.secret_key),
                ));
            }
            let own_store = entry.source_ref.as_ref().and_then(|s| s.store_ref.as_ref());
            data.push(DataEntry {
                index,
                secret_key: &entry.secret_key,
                store: store_of(own_store, spec_store, &field)?,
                remote: remote_ref(&entry.remote_ref),
                spec: &entry.remote_ref,
            });
        }

        Ok(Self {
            deletion_policy: spec.target.deletion_policy,
            data_from,
            data,
        })
    }

    /// The fetches this spec needs, in processing order.
    pub fn needs(&self) -> Vec<Need> {
        let from = self.data_from.iter().map(|e| match &e.source {
            FromSource::Extract { store, remote, .. } => Need::Value {
                store: store.clone(),
                remote: remote.clone(),
            },
            FromSource::Find { store, find, .. } => Need::Find {
                store: store.clone(),
                find: find.clone(),
            },
            FromSource::Generator { reference } => Need::Generate {
                index: e.index,
                generator: (*reference).clone(),
            },
        });
        let data = self.data.iter().map(|e| Need::Value {
            store: e.store.clone(),
            remote: e.remote.clone(),
        });
        from.chain(data).collect()
    }

    /// Renders the data from what was fetched.
    pub fn render(&self, fetched: &dyn Fetched) -> Result<Rendered, RenderError> {
        let mut out = Rendered::default();
        for entry in &self.data_from {
            let location = entry.location();
            let fetched_map = match &entry.source {
                FromSource::Extract {
                    store,
                    remote,
                    spec,
                } => fetched
                    .value(store, remote)
                    .map(|value| extract(&location, spec, value, fetched.keyed(store, remote))),
                FromSource::Find { store, find, .. } => {
                    fetched.found(store, find).map(|m| Ok(m.clone()))
                }
                FromSource::Generator { .. } => {
                    fetched.generated(entry.index).map(|m| Ok(m.clone()))
                }
            };
            let map = match fetched_map {
                Ok(map) => map?,
                Err(e) => {
                    self.provider_error(location, e, &mut out.missing)?;
                    continue;
                }
            };
            let (conversion, decoding, null_bytes) = match &entry.source {
                FromSource::Extract { spec, .. } => (
                    spec.conversion_strategy,
                    spec.decoding_strategy,
                    spec.null_byte_policy,
                ),
                FromSource::Find { spec, .. } => (
                    spec.conversion_strategy,
                    spec.decoding_strategy,
                    spec.null_byte_policy,
                ),
                FromSource::Generator { .. } => {
                    // Generated values are used as they are: rewritten, keys checked.
                    let mut map =
                        rewrite::apply(&entry.rewrites, map).map_err(|(index, cause)| {
                            RenderError::Rewrite {
                                location: location.clone(),
                                index,
                                cause,
                            }
                        })?;
                    keys::validate_keys(&mut map).map_err(|problem| RenderError::InvalidKey {
                        location: location.clone(),
                        problem,
                    })?;
                    out.data.extend(map);
                    continue;
                }
            };
            let mut map = if entry.rewrites.is_empty() {
                keys::convert_keys(conversion, map).map_err(|key| RenderError::KeyCollision {
                    location: location.clone(),
                    strategy: conversion,
                    key,
                })?
            } else {
                rewrite::apply(&entry.rewrites, map).map_err(|(index, cause)| {
                    RenderError::Rewrite {
                        location: location.clone(),
                        index,
                        cause,
                    }
                })?
            };
            keys::validate_keys(&mut map).map_err(|problem| RenderError::InvalidKey {
                location: location.clone(),
                problem,
            })?;
            let mut decoded = BTreeMap::new();
            for (key, value) in map {
                let value = decode::decode(decoding, value.expose()).map_err(|problem| {
                    RenderError::Decode {
                        location: location.clone(),
                        strategy: decoding,
                        key: Some(key.clone()),
                        problem,
                    }
                })?;
                decoded.insert(key, SecretBytes::new(value));
            }
            // The first offending key in sorted order, as ESO reports it.
            if let Some(key) = decoded
                .iter()
                .find(|(_, v)| decode::violates_null_byte_policy(null_bytes, v.expose()))
                .map(|(k, _)| k.clone())
            {
                return Err(RenderError::NullBytes { location, key });
            }
            out.data.extend(decoded);
        }

        for entry in &self.data {
            let location = Location::Data {
                index: entry.index,
                key: entry.remote.key.clone(),
            };
            let value = match fetched.value(&entry.store, &entry.remote) {
                Ok(value) => value,
                Err(e) => {
                    self.provider_error(location, e, &mut out.missing)?;
                    continue;
                }
            };
            let property = entry.spec.property.as_deref().filter(|p| !p.is_empty());
            let selected = if fetched.keyed(&entry.store, &entry.remote) {
                select_keyed(&location, &entry.spec.key, property, value)?
            } else {
                match property {
                    Some(property) => SecretBytes::new(select_property(
                        &location,
                        &entry.spec.key,
                        property,
                        value,
                    )?),
                    None => value.clone(),
                }
            };
            let strategy = entry.spec.decoding_strategy;
            let value = decode::decode(strategy, selected.expose()).map_err(|problem| {
                RenderError::Decode {
                    location: location.clone(),
                    strategy,
                    key: None,
                    problem,
                }
            })?;
            if decode::violates_null_byte_policy(entry.spec.null_byte_policy, &value) {
                return Err(RenderError::NullBytes {
                    location,
                    key: entry.secret_key.to_owned(),
                });
            }
            out.data
                .insert(entry.secret_key.to_owned(), SecretBytes::new(value));
        }
        Ok(out)
    }

    /// A failed fetch: a missing secret is skipped unless `deletionPolicy` is `Retain`.
    fn provider_error(
        &self,
        location: Location,
        error: &ProviderError,
        missing: &mut Vec<Missing>,
    ) -> Result<(), RenderError> {
        if matches!(error, ProviderError::NotFound { .. })
            && self.deletion_policy != DeletionPolicy::Retain
        {
            missing.push(Missing { location });
            return Ok(());
        }
        Err(RenderError::Provider {
            location,
            failure: error.into(),
        })
    }
}

fn select_property(
    location: &Location,
    key: &str,
    property: &str,
    value: &SecretBytes,
) -> Result<Vec<u8>, RenderError> {
    property::select(value.expose(), property).map_err(|e| match e {
        property::PropertyError::NotJson => RenderError::NotJson {
            location: location.clone(),
            key: key.to_owned(),
            property: property.to_owned(),
        },
        property::PropertyError::NotFound => RenderError::PropertyNotFound {
            location: location.clone(),
            key: key.to_owned(),
            property: property.to_owned(),
        },
        property::PropertyError::Unsupported(feature) => RenderError::UnsupportedProperty {
            location: location.clone(),
            property: property.to_owned(),
            feature,
        },
    })
}

/// A property of a [keyed](secret_sync_providers::keyed) value, as ESO's Kubernetes provider
/// reads one (R: `providers/v1/kubernetes/client.go` `getFromSecretData`): the key named
/// exactly, else the key before the first `.` with the rest as a path into its (JSON) value.
/// Without a property, the whole map as ESO's JSON.
fn select_keyed(
    location: &Location,
    key: &str,
    property: Option<&str>,
    value: &SecretBytes,
) -> Result<SecretBytes, RenderError> {
    let map = secret_sync_providers::keyed::decode(value.expose()).ok_or_else(|| {
        RenderError::NotJson {
            location: location.clone(),
            key: key.to_owned(),
            property: property.unwrap_or_default().to_owned(),
        }
    })?;
    let Some(property) = property else {
        return Ok(secret_sync_providers::keyed::to_json(
            map.iter().map(|(k, v)| (k.as_str(), v.expose())),
        ));
    };
    if let Some(member) = map.get(property) {
        return Ok(member.clone());
    }
    let not_found = || RenderError::PropertyNotFound {
        location: location.clone(),
        key: key.to_owned(),
        property: property.to_owned(),
    };
    match property.split_once('.') {
        Some((member, path)) if !member.is_empty() && !path.is_empty() => {
            let member = map.get(member).ok_or_else(not_found)?;
            select_property(location, key, path, member)
                .map(SecretBytes::new)
                .map_err(|e| match e {
                    RenderError::NotJson { .. } => not_found(),
                    other => other,
                })
        }
        _ => Err(not_found()),
    }
}

/// `dataFrom[].extract`: the value (or its property) as a JSON object (ESO's
/// `JSONToSecretDataMap`): string members unquoted, `null` empty, other members as their JSON
/// text exactly as written. A value of `null` extracts nothing, as Go's `json.Unmarshal` into a
/// map does.
///
/// A [keyed](secret_sync_providers::keyed) value extracts to its map as it is, bytes exact (ESO's
/// Kubernetes provider returns the Secret's data); with a property, to the JSON object that key
/// holds.
fn extract(
    location: &Location,
    spec: &ExternalSecretDataRemoteRef,
    value: &SecretBytes,
    keyed: bool,
) -> Result<BTreeMap<String, SecretBytes>, RenderError> {
    let property = spec.property.as_deref().filter(|p| !p.is_empty());
    let selected = match (keyed, property) {
        (true, None) => {
            return secret_sync_providers::keyed::decode(value.expose()).ok_or_else(|| {
                RenderError::NotJson {
                    location: location.clone(),
                    key: spec.key.clone(),
                    property: String::new(),
                }
            });
        }
        (true, Some(_)) => select_keyed(location, &spec.key, property, value)?,
        (false, Some(property)) => {
            SecretBytes::new(select_property(location, &spec.key, property, value)?)
        }
        (false, None) => value.clone(),
    };
    let not_an_object = |problem| RenderError::NotJsonObject {
        location: location.clone(),
        key: spec.key.clone(),
        problem,
    };
    let parsed =
        json::parse(selected.expose()).map_err(|e| not_an_object(JsonProblem::Syntax(e)))?;
    let members = match parsed.kind {
        json::Kind::Object(members) => members,
        json::Kind::Null => Vec::new(),
        other => return Err(not_an_object(JsonProblem::NotAnObject(other.type_name()))),
    };
    Ok(members
        .into_iter()
        .map(|(name, member)| {
            let bytes = match member.kind {
                json::Kind::String(s) => s.into_bytes(),
                json::Kind::Null => Vec::new(),
                _ => member.raw.to_vec(),
            };
            (name, SecretBytes::new(bytes))
        })
        .collect())
}

#[cfg(test)]
mod tests;
