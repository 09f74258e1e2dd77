//! ESO's hashes, reproduced exactly so that Secrets and statuses written by ESO are recognised as
//! in sync (a migration from ESO does not rewrite every Secret).
//!
//! ESO hashes `fmt.Sprintf("%+v", x)` with SHA3-224 (`runtime/esutils/utils.go` `ObjectHash`).
//! Go prints maps with sorted keys, a `[]byte` as its decimal bytes: `map[a:[49 50] b:[]]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha3::{Digest, Sha3_224};

pub(crate) fn sha3_224_hex(input: &[u8]) -> String {
    let digest = Sha3_224::digest(input);
    let mut out = String::with_capacity(56);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `reconcile.external-secrets.io/data-hash`: the hash of a Secret's `.data`.
pub fn data_hash<'a, V: AsRef<[u8]> + 'a>(
    data: impl IntoIterator<Item = (&'a String, &'a V)>,
) -> String {
    let sorted: BTreeMap<&str, &[u8]> = data
        .into_iter()
        .map(|(k, v)| (k.as_str(), v.as_ref()))
        .collect();
    let mut text = String::from("map[");
    for (i, (key, value)) in sorted.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(key);
        text.push_str(":[");
        for (j, byte) in value.iter().enumerate() {
            if j > 0 {
                text.push(' ');
            }
            let _ = write!(text, "{byte}");
        }
        text.push(']');
    }
    text.push(']');
    sha3_224_hex(text.as_bytes())
}

/// `reconcile.external-secrets.io/created-by`: the hash of `<namespace>/<name>`.
pub fn owner_label(namespace: &str, name: &str) -> String {
    sha3_224_hex(format!("{namespace}/{name}").as_bytes())
}

/// ESO's `HashMeta`: the hash of an object's labels and annotations.
pub fn meta_hash(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> String {
    fn go_map(text: &mut String, map: Option<&BTreeMap<String, String>>) {
        text.push_str("map[");
        for (i, (k, v)) in map.into_iter().flatten().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(k);
            text.push(':');
            text.push_str(v);
        }
        text.push(']');
    }
    let mut text = String::from("{annotations:");
    go_map(&mut text, annotations);
    text.push_str(" labels:");
    go_map(&mut text, labels);
    text.push('}');
    sha3_224_hex(text.as_bytes())
}

/// ESO's `status.syncedResourceVersion`: `<generation>-<HashMeta>`.
pub fn synced_resource_version(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}-{}",
        meta.generation.unwrap_or_default(),
        meta_hash(meta.labels.as_ref(), meta.annotations.as_ref())
    )
}

/// The field manager an ExternalSecret writes its Secret with, as ESO names it (so keys ESO
/// wrote are recognised as this ExternalSecret's): `externalsecrets.external-secrets.io/<name>`,
/// or `externalsecrets.external-secrets.io/sha3/<sha3-224(name)>` when that is over 63 characters.
pub fn field_manager(es_name: &str) -> String {
    use secret_sync_crd::well_known::{FIELD_MANAGER_PREFIX, FIELD_MANAGER_SHA3_PREFIX};
    let plain = format!("{FIELD_MANAGER_PREFIX}{es_name}");
    if plain.len() <= 63 {
        plain
    } else {
        format!(
            "{FIELD_MANAGER_SHA3_PREFIX}{}",
            sha3_224_hex(es_name.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_hash_prints_the_map_as_go_does() {
        // Go: fmt.Sprintf("%+v", map[string][]byte{"b": []byte("12"), "a": {}}) == "map[a:[] b:[49 50]]"
        let data: BTreeMap<String, Vec<u8>> = [
            ("b".to_owned(), b"12".to_vec()),
            ("a".to_owned(), Vec::new()),
        ]
        .into();
        assert_eq!(data_hash(&data), sha3_224_hex(b"map[a:[] b:[49 50]]"));
    }

    #[test]
    fn an_empty_secret_hashes_like_an_empty_go_map() {
        let data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        assert_eq!(data_hash(&data), sha3_224_hex(b"map[]"));
        // SHA3-224 of "map[]" is fixed; the hex is 56 characters long.
        assert_eq!(data_hash(&data).len(), 56);
    }

    #[test]
    fn sha3_224_matches_the_standard_test_vector() {
        // FIPS 202 test vector: SHA3-224("abc").
        assert_eq!(
            sha3_224_hex(b"abc"),
            "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"
        );
    }

    #[test]
    fn meta_hash_changes_with_labels_and_annotations() {
        let a: BTreeMap<String, String> = [("force-sync".to_owned(), "1".to_owned())].into();
        let b: BTreeMap<String, String> = [("force-sync".to_owned(), "2".to_owned())].into();
        assert_ne!(meta_hash(None, Some(&a)), meta_hash(None, Some(&b)));
        assert_ne!(meta_hash(Some(&a), None), meta_hash(None, Some(&a)));
        assert_eq!(
            meta_hash(None, None),
            sha3_224_hex(b"{annotations:map[] labels:map[]}")
        );
    }

    #[test]
    fn long_names_get_a_hashed_field_manager() {
        assert_eq!(
            field_manager("db"),
            "externalsecrets.external-secrets.io/db"
        );
        let long = field_manager(&"x".repeat(60));
        assert!(long.starts_with("externalsecrets.external-secrets.io/sha3/"));
    }
}
