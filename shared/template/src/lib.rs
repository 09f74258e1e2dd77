//! ESO's template engine v2: Go `text/template` (the `gotmpl` crate) with sprig's and ESO's
//! function library, matching the output of ESO's Go code.
//!
//! ```
//! use std::collections::BTreeMap;
//! use secret_sync_template::{Engine, Limits};
//!
//! let engine = Engine::new(Limits::default());
//! let data = BTreeMap::from([("user".to_owned(), b"app".to_vec())]);
//! let out = engine.render("DATABASE_URL", "{{ .user | upper | b64enc }}", &data).unwrap();
//! assert_eq!(out, b"QVBQ");
//! ```
//!
//! Every function of ESO's map is there: sprig's as ESO vendors it (without `env`, `expandenv`
//! and `getHostByName`), by family:
//!
//! - strings, case (`snakecase`, `camelcase`, `kebabcase`, `swapcase`, `shuffle`), encodings,
//!   hashes, paths (`base`, ..., and the `os*` forms), regular expressions (Go's);
//! - numbers, lists, dicts, defaults, JSON, reflection (`typeOf`, `typeIsLike`, ...);
//! - dates (`date`, `toDate`, `dateModify`, `durationRound`, ...);
//! - crypto: `bcrypt`, `htpasswd`, `derivePassword`, `encryptAES`/`decryptAES`, `randBytes`,
//!   `uuidv4`, and the generators `genPrivateKey`, `genCA`, `genSelfSignedCert`,
//!   `genSignedCert` (each also `...WithKey`) and `buildCustomCert`, whose certificates are
//!   dicts of `Cert` and `Key` PEM;
//! - `semver` (a dict of `Major`, `Minor`, `Patch`, `Prerelease`, `Metadata`, `Original`) and
//!   `semverCompare` (Masterminds/semver constraints);
//! - `urlParse` and `urlJoin` (Go's net/url).
//!
//! ESO's own certificate, PKCS#12, JWK and RSA functions are there too (`pkcs12key`,
//! `filterCertChain`, `certSANs`, `jwkPrivateKeyPem`, `rsaDecrypt`, ...), in pure Rust
//! (RustCrypto), with ESO's output byte for byte. Generated keys and certificates are as
//! Go's crypto makes them, except that RSA keys are 2048 bits where sprig's `genPrivateKey`
//! makes 4096 (the time budget) and DSA keys are refused.
//!
//! As in ESO, the data is `map[string]string` over the values' bytes and a missing key is an
//! error. Bytes that are not UTF-8 (a keystore, `b64dec` of binary data) pass through the
//! functions and into the output unchanged, as in Go. Execution is bounded by [`Limits`]: output bytes, the
//! size of any value a function returns, `range` iterations, function calls and wall-clock time;
//! recursive `{{template}}` calls are refused when parsed. Errors name the template and the
//! line:column of the failing action, never a data value.

#![forbid(unsafe_code)]

mod budget;
mod bytes;
mod error;
mod funcs;
mod go;
mod json;
mod locate;
mod yaml;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gotmpl::{MissingKey, Template, Value};

pub use error::{ExceededLimit, TemplateError};

/// Bounds on one render. The defaults fit a Kubernetes Secret (at most 1 MiB) with a wide margin
/// for every template ESO's documentation shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one render may write.
    pub max_output_bytes: usize,
    /// The printed size of any one value a function returns (a string's bytes, a list's or
    /// map's elements): `repeat`, `until`, `indent`, `replace` and the rest check it before they
    /// allocate, so a loop that doubles a string stops at this size.
    pub max_value_bytes: usize,
    /// `{{range}}` iterations per render, across all loops.
    pub max_range_iterations: u64,
    /// Function calls per render.
    pub max_function_calls: u64,
    /// Wall-clock time per render, checked at every function call and write.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_output_bytes: 1 << 20,
            max_value_bytes: 1 << 20,
            max_range_iterations: 100_000,
            max_function_calls: 1_000_000,
            timeout: Duration::from_secs(1),
        }
    }
}

/// The template engine: the function map is built once; each render parses and executes.
/// Cheap to share (`Clone` is a reference count).
#[derive(Clone)]
pub struct Engine {
    base: Arc<Template>,
    limits: Limits,
}

/// Name of the main template inside the parsed set. Users name their `{{define}}`s; this one
/// cannot collide with a name a template can spell without escapes.
const MAIN: &str = "\u{1}main";

impl Engine {
    /// Builds the function map (sprig's and ESO's functions) once.
    pub fn new(limits: Limits) -> Self {
        let base = Template::new(MAIN)
            .funcs(funcs::func_map())
            .missing_key(MissingKey::Error)
            .max_range_iters(limits.max_range_iterations.max(1));
        Self {
            base: Arc::new(base),
            limits,
        }
    }

    /// The limits this engine enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Executes `text`, named `name` in errors, over `data` as ESO does: each key maps to its
    /// value as a string, and `.key` on a missing key fails. Returns the bytes Go would write.
    pub fn render(
        &self,
        name: &str,
        text: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Vec<u8>, TemplateError> {
        let out = self.execute(name, text, &context(data))?;
        Ok(bytes::decode(&out).into_owned())
    }

    /// [`render`](Self::render) over data one level deeper: `.name.key` (ESO's webhook
    /// templates, where each named Secret is a map of its keys).
    pub fn render_nested(
        &self,
        name: &str,
        text: &str,
        data: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ) -> Result<Vec<u8>, TemplateError> {
        let dot: BTreeMap<String, Value> = data
            .iter()
            .map(|(k, inner)| (k.clone(), context(inner)))
            .collect();
        let out = self.execute(name, text, &Value::from(dot))?;
        Ok(bytes::decode(&out).into_owned())
    }

    /// [`render`](Self::render) for text targets (labels, annotations): bytes that are not UTF-8
    /// become U+FFFD.
    pub fn render_string(
        &self,
        name: &str,
        text: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<String, TemplateError> {
        let out = self.render(name, text, data)?;
        Ok(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn execute(&self, name: &str, text: &str, dot: &Value) -> Result<String, TemplateError> {
        let tmpl = (*self.base)
            .clone()
            .parse(text)
            .map_err(|e| error::from_parse(name, text, e))?;
        locate::check_calls(&tmpl, MAIN, name, text, self.limits.max_range_iterations)?;
        match budget::execute(&tmpl, None, dot, &self.limits) {
            Ok(out) => Ok(out),
            Err(failure) => Err(locate::explain(
                &tmpl,
                MAIN,
                name,
                text,
                dot,
                &self.limits,
                failure,
            )),
        }
    }
}

/// ESO's template context: `map[string]string` of the fetched data.
fn context(data: &BTreeMap<String, Vec<u8>>) -> Value {
    let map: BTreeMap<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(bytes::encode(v))))
        .collect();
    Value::from(map)
}

/// The names of every function a template can call (builtins excluded), sorted.
pub fn function_names() -> Vec<&'static str> {
    funcs::names()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_can_be_shared_across_threads_and_tasks() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Engine>();
    }

    #[test]
    fn every_function_name_is_listed_once() {
        let names = function_names();
        assert!(names.contains(&"toYaml") && names.contains(&"b64enc"));
        for eso in [
            "pkcs12key",
            "filterCertChain",
            "certSANs",
            "jwkPrivateKeyPem",
            "rsaDecrypt",
        ] {
            assert!(names.contains(&eso), "{eso}");
        }
        for sprig in [
            "htpasswd",
            "bcrypt",
            "genCA",
            "genSignedCertWithKey",
            "semverCompare",
            "encryptAES",
            "snakecase",
            "urlParse",
            "derivePassword",
            "durationRound",
            "shuffle",
        ] {
            assert!(names.contains(&sprig), "{sprig}");
        }
        assert!(!names.contains(&"env") && !names.contains(&"expandenv"));
    }
}
