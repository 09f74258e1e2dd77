//! The crate's error: the template name and position, never a data value.

use std::fmt;
use std::time::Duration;

/// A template that failed to parse or execute. The message names the template and the line and
/// column (1-based, in characters) of the failing action; it never holds a data value.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template, or calls a template recursively.
    #[error("template: {name}:{line}:{col}: {message}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        message: String,
    },
    /// An action failed: a missing key, a function's error, a wrong argument type.
    #[error("template: {name}:{}: executing {name:?}: {message}", Pos(*position))]
    Execute {
        name: String,
        position: Option<(usize, usize)>,
        message: String,
    },
    /// The render went past one of its [`Limits`](crate::Limits).
    #[error("template: {name}:{}: executing {name:?}: {limit}", Pos(*position))]
    Limit {
        name: String,
        position: Option<(usize, usize)>,
        limit: ExceededLimit,
    },
}

impl TemplateError {
    /// The template name given to [`Engine::render`](crate::Engine::render).
    pub fn name(&self) -> &str {
        match self {
            Self::Parse { name, .. } | Self::Execute { name, .. } | Self::Limit { name, .. } => {
                name
            }
        }
    }
}

/// Which bound of [`Limits`](crate::Limits) a render went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceededLimit {
    OutputBytes(usize),
    ValueBytes(usize),
    RangeIterations(u64),
    FunctionCalls(u64),
    Time(Duration),
    /// gotmpl's fixed nesting depth for `{{template}}`, `if`, `with` and `range` bodies.
    Depth,
}

impl fmt::Display for ExceededLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutputBytes(n) => write!(f, "output exceeds the limit of {n} bytes"),
            Self::ValueBytes(n) => write!(f, "a value exceeds the limit of {n} bytes"),
            Self::RangeIterations(n) => write!(f, "range iterations exceed the limit of {n}"),
            Self::FunctionCalls(n) => write!(f, "function calls exceed the limit of {n}"),
            Self::Time(d) => write!(f, "execution exceeds the time limit of {d:?}"),
            Self::Depth => write!(f, "template nesting exceeds the depth limit"),
        }
    }
}

struct Pos(Option<(usize, usize)>);

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, col)) => write!(f, "{line}:{col}"),
            None => f.write_str("?"),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

pub(crate) fn from_parse(name: &str, text: &str, e: gotmpl::TemplateError) -> TemplateError {
    match e {
        gotmpl::TemplateError::Parse {
            line, col, message, ..
        }
        | gotmpl::TemplateError::Lex {
            line, col, message, ..
        } => TemplateError::Parse {
            name: name.to_owned(),
            line,
            col,
            message,
        },
        other => TemplateError::Parse {
            name: name.to_owned(),
            line: 1,
            col: 1,
            message: sanitize(&other, text),
        },
    }
}

/// gotmpl's message for `e`, with the few messages that print an operand's value rewritten so
/// that they don't. Messages from this crate's functions never hold values.
pub(crate) fn sanitize(e: &gotmpl::TemplateError, text: &str) -> String {
    use gotmpl::TemplateError as G;
    match e {
        G::Exec(m) => {
            if m.starts_with("can't use ") && m.ends_with("to iterate over more than one variable")
            {
                "can't use an integer to iterate over more than one variable".to_owned()
            } else if m.starts_with("printf: first arg must be string") {
                "printf: first arg must be string".to_owned()
            } else if m.starts_with("len: cannot take length of") {
                "len: cannot take the length of this value".to_owned()
            } else {
                m.clone()
            }
        }
        G::IndexOutOfRange { .. } => "error calling index: index out of range".to_owned(),
        // A key the template spells is not a value; one computed from data may be.
        G::MissingKey { key } if !key.is_empty() && text.contains(key.as_str()) => {
            format!("map has no entry for key {key:?}")
        }
        G::MissingKey { .. } => "map has no entry for the requested key".to_owned(),
        G::FuncPanic { name, .. } => format!("error calling {name}: the function panicked"),
        other => other.to_string(),
    }
}
