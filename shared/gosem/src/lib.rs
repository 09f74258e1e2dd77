//! Go's semantics, in one place, for everything ESO's users write or read.
//!
//! ESO is written in Go, so a `find.name.regexp`, a `rewrite[].regexp.source`, a PushSecret
//! `dataTo` match, a ClusterSecretStore `namespaceRegexes` entry and a template's
//! `regexReplaceAll` pattern are all Go `regexp` patterns; values ESO prints come out of
//! `encoding/json`, `strconv` and `time.Duration`. Every crate that compiles a user's pattern or
//! writes a value the way Go would goes through this crate, so fetch, event matching, rewrite
//! and templates agree with each other and with ESO.
//!
//! - [`regexp`]: [`GoRegexp`], Go's `regexp` (syntax differences translated, Go's replace,
//!   find and split loops, `Expand` templates, `QuoteMeta`).
//! - [`json`]: `encoding/json`'s string escapes and float format; `json.Marshal` of the maps
//!   providers marshal whole.
//! - [`strconv`]: `strconv.FormatFloat` with `'g'` (`fmt`'s `%v`) and `'f'`, shortest digits.
//! - [`duration`]: `time.ParseDuration` and `Duration.String()`.
//!
//! Time layouts (`2006-01-02`) still live with the template functions that use them, their one
//! user.

#![forbid(unsafe_code)]

pub mod duration;
pub mod json;
pub mod regexp;
pub mod strconv;

pub use duration::{
    DurationError, format_go_duration, format_go_duration_nanos, parse_go_duration,
    parse_go_duration_nanos,
};
pub use regexp::GoRegexp;
