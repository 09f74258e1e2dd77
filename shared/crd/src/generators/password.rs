//! `Password`: random passwords.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::go_int;

/// Length of a password when `length` is unset, as ESO defaults it.
pub const DEFAULT_PASSWORD_LENGTH: i64 = 24;

/// Symbols ESO draws from when `symbolCharacters` is unset.
pub const DEFAULT_PASSWORD_SYMBOL_CHARACTERS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";

/// Output key when `secretKeys` is unset.
pub const DEFAULT_PASSWORD_SECRET_KEY: &str = "password";

/// How a password is generated. Digits and symbols each default to a quarter of the length.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Password",
    plural = "passwords",
    singular = "password",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    derive = "PartialEq",
    derive = "Default",
    doc = "Password generates random passwords of a given length and character mix."
)]
#[serde(remote = "Self", rename_all = "camelCase")]
#[schemars(transform = crate::meta::strip_null_from_enums)]
#[schemars(rename = "PasswordSpec")]
pub struct PasswordSpec {
    /// Number of characters. Defaults to 24.
    #[serde(default = "default_password_length")]
    #[schemars(schema_with = "go_int")]
    pub length: i64,

    /// Number of digits. Defaults to a quarter of the length (rounded down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_int")]
    pub digits: Option<i64>,

    /// Number of symbols. Defaults to a quarter of the length (rounded down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_int")]
    pub symbols: Option<i64>,

    /// The symbols to draw from. Unset: ESO's default set of 30 ASCII symbols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol_characters: Option<String>,

    /// Leaves out upper-case letters.
    #[serde(default)]
    pub no_upper: bool,

    /// Lets a character appear more than once.
    #[serde(default)]
    pub allow_repeat: bool,

    /// Output keys, each given its own password. Defaults to `["password"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub secret_keys: Vec<String>,

    /// Encoding of each password: `raw` (the default), `base64`, `base64url`, `base32` or `hex`.
    #[serde(default)]
    pub encoding: PasswordEncoding,
}

super::missing_spec_is_default!(PasswordSpec);

impl Default for PasswordSpec {
    /// The spec an empty `spec: {}` reads as: ESO's defaults.
    fn default() -> Self {
        Self {
            length: DEFAULT_PASSWORD_LENGTH,
            digits: None,
            symbols: None,
            symbol_characters: None,
            no_upper: false,
            allow_repeat: false,
            secret_keys: Vec::new(),
            encoding: PasswordEncoding::Raw,
        }
    }
}

/// Encoding of a generated password: `base64` and `base32` are the padded standard alphabets,
/// `base64url` the padded URL-safe one, `hex` lower-case; `raw` leaves the password as is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PasswordEncoding {
    #[serde(rename = "base64")]
    Base64,
    #[serde(rename = "base64url")]
    Base64Url,
    #[serde(rename = "base32")]
    Base32,
    #[serde(rename = "hex")]
    Hex,
    #[default]
    #[serde(rename = "raw")]
    Raw,
}

fn default_password_length() -> i64 {
    DEFAULT_PASSWORD_LENGTH
}
