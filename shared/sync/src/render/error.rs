//! What can go wrong while rendering, and where.

use std::fmt;

use secret_sync_crd::{ConversionStrategy, DecodingStrategy};
use secret_sync_providers::ProviderError;

use super::decode::{Base64Problem, strategy_name};
use super::keys::KeyProblem;
use super::rewrite::{JsonProblem, RewriteError};

/// The `data` or `dataFrom` entry an error or a missing secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// `spec.data[index]`; `key` is its `remoteRef.key`.
    Data { index: usize, key: String },
    /// `spec.dataFrom[index].extract`.
    Extract { index: usize },
    /// `spec.dataFrom[index].find`.
    Find { index: usize },
    /// `spec.dataFrom[index].sourceRef.generatorRef`.
    Generator { index: usize },
}

impl fmt::Display for Location {
    /// ESO's wording: `spec.data[2] (key: prod/db)`, `spec.dataFrom[0].extract`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Data { index, key } => write!(f, "spec.data[{index}] (key: {key})"),
            Location::Extract { index } => write!(f, "spec.dataFrom[{index}].extract"),
            Location::Find { index } => write!(f, "spec.dataFrom[{index}].find"),
            Location::Generator { index } => {
                write!(f, "spec.dataFrom[{index}].sourceRef.generatorRef")
            }
        }
    }
}

/// A provider error, as the render stage received it. Rendering reads errors by reference
/// (several ExternalSecrets may share one fetch), so it keeps what the entry points need: the
/// message and the classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderFailure {
    /// The provider error's message (providers keep values out of it).
    pub message: String,
    /// [`ProviderError::is_retryable`].
    pub retryable: bool,
    /// [`ProviderError::metric_label`].
    pub metric_label: &'static str,
    /// The provider has no such secret ([`ProviderError::NotFound`]).
    pub missing: bool,
}

impl From<&ProviderError> for ProviderFailure {
    fn from(e: &ProviderError) -> Self {
        Self {
            message: e.to_string(),
            retryable: e.is_retryable(),
            metric_label: e.metric_label(),
            missing: matches!(e, ProviderError::NotFound { .. }),
        }
    }
}

impl fmt::Display for ProviderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why an ExternalSecret's data could not be rendered.
///
/// Messages follow ESO's (`error processing spec.data[0] (key: db), err: ...`) and name entries,
/// remote keys, properties and Secret keys, never values: every problem found in a value is
/// reported by offset or type.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The spec cannot be rendered, whatever the provider holds.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec { field: String, reason: String },

    /// The spec uses a feature secret-sync does not implement yet.
    #[error("{field}: {feature} is not supported by secret-sync yet")]
    Unsupported {
        field: String,
        feature: &'static str,
    },

    /// The provider failed (or, with `deletionPolicy: Retain`, the secret does not exist).
    #[error("error processing {location}, err: {failure}")]
    Provider {
        location: Location,
        failure: ProviderFailure,
    },

    /// A property was requested from a value that is not JSON.
    #[error(
        "error processing {location}, err: secret {key:?} is not JSON, so property {property:?} cannot be read"
    )]
    NotJson {
        location: Location,
        key: String,
        property: String,
    },

    /// The value is JSON but has no such property.
    #[error("error processing {location}, err: key {property:?} does not exist in secret {key:?}")]
    PropertyNotFound {
        location: Location,
        key: String,
        property: String,
    },

    /// The property uses gjson syntax outside the supported subset.
    #[error(
        "error processing {location}, err: property {property:?} uses {feature}, which secret-sync does not support yet"
    )]
    UnsupportedProperty {
        location: Location,
        property: String,
        feature: &'static str,
    },

    /// `extract` needs a JSON object.
    #[error(
        "error processing {location}, err: unable to unmarshal secret {key:?}: the value {problem}"
    )]
    NotJsonObject {
        location: Location,
        key: String,
        problem: JsonProblem,
    },

    /// A `rewrite` operation failed.
    #[error(
        "error processing {location}, err: error applying rewrite to keys: failed rewrite operation[{index}]: {cause}"
    )]
    Rewrite {
        location: Location,
        index: usize,
        cause: RewriteError,
    },

    /// Two keys converted to the same key.
    #[error(
        "error processing {location}, err: error applying conversion strategy {} to keys: secret name collision during conversion: {key}",
        conversion_name(*.strategy)
    )]
    KeyCollision {
        location: Location,
        strategy: ConversionStrategy,
        key: String,
    },

    /// A key a Secret cannot hold.
    #[error(
        "error processing {location}, err: invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): {problem}"
    )]
    InvalidKey {
        location: Location,
        problem: KeyProblem,
    },

    /// A value could not be decoded. `key` is the Secret key, for `dataFrom` entries.
    #[error(
        "error processing {location}, err: error applying decoding strategy {} to data: {}{problem}",
        strategy_name(*.strategy),
        .key.as_ref().map(|k| format!("failure decoding key {k}: ")).unwrap_or_default()
    )]
    Decode {
        location: Location,
        strategy: DecodingStrategy,
        key: Option<String>,
        problem: Base64Problem,
    },

    /// `nullBytePolicy: Fail` and the value holds a NUL byte.
    #[error(
        "error processing {location}, err: fetched secret value for key {key:?} contains null bytes"
    )]
    NullBytes { location: Location, key: String },
}

fn conversion_name(strategy: ConversionStrategy) -> &'static str {
    match strategy {
        ConversionStrategy::Default => "Default",
        ConversionStrategy::Unicode => "Unicode",
    }
}

impl RenderError {
    /// Whether retrying later, without a change to the spec or the provider's data, can
    /// succeed. Only provider failures can; they defer to [`ProviderError::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        match self {
            RenderError::Provider { failure, .. } => failure.retryable,
            _ => false,
        }
    }

    /// The entry the error belongs to; `None` for errors of the spec as a whole.
    pub fn location(&self) -> Option<&Location> {
        match self {
            RenderError::InvalidSpec { .. } | RenderError::Unsupported { .. } => None,
            RenderError::Provider { location, .. }
            | RenderError::NotJson { location, .. }
            | RenderError::PropertyNotFound { location, .. }
            | RenderError::UnsupportedProperty { location, .. }
            | RenderError::NotJsonObject { location, .. }
            | RenderError::Rewrite { location, .. }
            | RenderError::KeyCollision { location, .. }
            | RenderError::InvalidKey { location, .. }
            | RenderError::Decode { location, .. }
            | RenderError::NullBytes { location, .. } => Some(location),
        }
    }

    /// A short, stable label for metrics (`reason` label).
    pub fn metric_label(&self) -> &'static str {
        match self {
            RenderError::InvalidSpec { .. } => "invalid_spec",
            RenderError::Unsupported { .. } | RenderError::UnsupportedProperty { .. } => {
                "unsupported"
            }
            RenderError::Provider { failure, .. } => failure.metric_label,
            RenderError::NotJson { .. } | RenderError::NotJsonObject { .. } => "not_json",
            RenderError::PropertyNotFound { .. } => "property_not_found",
            RenderError::Rewrite { .. } => "rewrite",
            RenderError::KeyCollision { .. } => "key_collision",
            RenderError::InvalidKey { .. } => "invalid_key",
            RenderError::Decode { .. } => "decoding",
            RenderError::NullBytes { .. } => "null_bytes",
        }
    }
}

/// An entry skipped because its secret does not exist at the provider (`deletionPolicy`
/// `Delete` or `Merge`). Its `Display` is ESO's `MissingProviderSecret` event message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub location: Location,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Data { index, key } => write!(
                f,
                "secret does not exist at provider using spec.data[{index}] (key={key})"
            ),
            Location::Extract { index }
            | Location::Find { index }
            | Location::Generator { index } => write!(
                f,
                "secret does not exist at provider using spec.dataFrom[{index}]"
            ),
        }
    }
}
