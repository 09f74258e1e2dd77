//! The one error type of this crate.

/// Why an input could not be read as an event.
///
/// Hygiene: no variant holds any part of the input: no value, no secret name, no ARN, not even
/// serde_json's message (which can quote input). Only the name of the field involved, what was
/// wrong with it, and for JSON syntax errors the position. This is why the serde_json error is
/// not kept as a `source`: its text is not ours to vouch for. A test feeds mutated samples and
/// checks that no input string reaches an error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input is larger than the limit for its kind.
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },

    /// The input is not JSON (or nests deeper than serde_json's recursion limit).
    #[error("{what} is not valid JSON: {problem} at line {line}, column {column}")]
    Json {
        what: &'static str,
        problem: &'static str,
        line: usize,
        column: usize,
    },

    /// A field the shape requires is absent (or null).
    #[error("{field}: missing")]
    Missing { field: &'static str },

    /// A field has the wrong JSON type.
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },

    /// A field is present and of the right type, but its value is not acceptable (empty, too
    /// long, not a Kubernetes name, not allowed with another field, …).
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },

    /// None of the places a secret id may appear holds one.
    #[error("{looked_in}: no secret id")]
    NoSecretId { looked_in: &'static str },
}

impl ParseError {
    pub(crate) fn json(what: &'static str, error: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let problem = match error.classify() {
            Category::Io => "read error",
            Category::Syntax => "syntax error",
            Category::Data => "unexpected data",
            Category::Eof => "unexpected end of input",
        };
        Self::Json {
            what,
            problem,
            line: error.line(),
            column: error.column(),
        }
    }
}
