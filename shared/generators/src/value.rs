//! Turning a JSON answer (Vault's, a webhook's) into Secret values, as ESO's `GetByteValue`
//! does: each top-level member one key.

use std::collections::BTreeMap;

use secret_sync_providers::SecretBytes;
use serde_json::Value;

/// One value's bytes: a string as it is; a number as Go prints it; a boolean as `true`/`false`;
/// null as nothing; an array or object as `json.Marshal` writes it.
pub(crate) fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.clone().into_bytes(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string().into_bytes(),
        Value::Number(n) => {
            secret_sync_gosem::strconv::format_float_f(n.as_f64().unwrap_or_default()).into_bytes()
        }
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Null => Vec::new(),
        Value::Array(_) | Value::Object(_) => {
            secret_sync_gosem::json::marshal_value(value).into_bytes()
        }
    }
}

/// Every member of `object` as a key.
pub(crate) fn members(object: &serde_json::Map<String, Value>) -> BTreeMap<String, SecretBytes> {
    object
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::new(bytes_of(v))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_encoded_as_go_does() {
        let object = json!({
            "s": "plain", "i": 3600, "f": 1.5, "b": true, "n": null,
            "nested": {"z": 1, "a": "<x>"}, "list": ["a", 2]
        });
        let out = members(object.as_object().expect("object"));
        let text = |k: &str| String::from_utf8(out[k].expose().to_vec()).expect("utf-8");
        assert_eq!(text("s"), "plain");
        assert_eq!(text("i"), "3600");
        assert_eq!(text("f"), "1.5");
        assert_eq!(text("b"), "true");
        assert_eq!(text("n"), "");
        assert_eq!(text("nested"), r#"{"a":"\u003cx\u003e","z":1}"#);
        assert_eq!(text("list"), r#"["a",2]"#);
    }
}
