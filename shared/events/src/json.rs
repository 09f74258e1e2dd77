//! Small, tolerant readers over `serde_json::Value`: the events are read as untyped JSON so that a
//! field of an unexpected type costs that field, not the whole event.

use serde_json::{Map, Value};

use crate::ParseError;

pub(crate) type Object = Map<String, Value>;

/// Parses `bytes` as JSON after checking the size limit.
pub(crate) fn parse(what: &'static str, bytes: &[u8], max: usize) -> Result<Value, ParseError> {
    if bytes.len() > max {
        return Err(ParseError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|error| ParseError::json(what, &error))
}

/// `value` as an object, or a `WrongType` error naming `field`.
pub(crate) fn object<'a>(value: &'a Value, field: &'static str) -> Result<&'a Object, ParseError> {
    value.as_object().ok_or(ParseError::WrongType {
        field,
        expected: "an object",
    })
}

/// A required string field: `Missing` when absent or null, `WrongType` when not a string.
pub(crate) fn required_str<'a>(
    object: &'a Object,
    key: &str,
    field: &'static str,
) -> Result<&'a str, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(ParseError::Missing { field }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ParseError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A required object field: `Missing` when absent or null, `WrongType` when not an object.
pub(crate) fn required_object<'a>(
    object: &'a Object,
    key: &str,
    field: &'static str,
) -> Result<&'a Object, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(ParseError::Missing { field }),
        Some(value) => self::object(value, field),
    }
}

/// An optional string field; any other type reads as absent.
pub(crate) fn opt_str<'a>(object: &'a Object, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// The first of `keys` that holds a string.
pub(crate) fn first_str<'a>(object: &'a Object, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| opt_str(object, key))
}

/// An optional object field; any other type (including `null`, which CloudTrail writes for
/// absent request or response elements) reads as absent.
pub(crate) fn opt_object<'a>(object: &'a Object, key: &str) -> Option<&'a Object> {
    object.get(key).and_then(Value::as_object)
}
