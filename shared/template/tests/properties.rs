//! Property tests: rendering never panics, whatever the template and data, and no error message
//! holds a data value.

use std::collections::BTreeMap;

use proptest::prelude::*;
use secret_sync_template::{Engine, Limits};

const FUNCS: &[&str] = &[
    "upper",
    "lower",
    "trim",
    "b64enc",
    "b64dec",
    "b32dec",
    "hexdec",
    "toJson",
    "fromJson",
    "toYaml",
    "fromYaml",
    "quote",
    "squote",
    "sha256sum",
    "int",
    "atoi",
    "float64",
    "first",
    "last",
    "keys",
    "sortAlpha",
    "uniq",
    "len",
    "print",
    "title",
    "nospace",
    "toString",
    "splitList \",\"",
    "join \",\"",
    "repeat 3",
    "indent 2",
    "trunc 3",
    "substr 1 3",
    "default \"d\"",
    "replace \"a\" \"b\"",
    "regexFind \"[a-z]+\"",
    "filterPEM \"CERTIFICATE\"",
    "filterCertChain \"leaf\"",
    "certSANs",
    "pkcs12key",
    "pkcs12certPass \"p\"",
    "jwkPublicKeyPem",
    "jwkPrivateKeyPem",
    "rsaDecrypt \"RSA-OAEP\" \"SHA1\" \"x\"",
    "pemToPkcs12 \"c\"",
    "add 1",
    "div 2",
    "mod 0",
    "until",
    "seq",
    "dict \"k\"",
    "list",
    "index .",
    "printf \"%v\"",
    "date \"2006\"",
    "toDate \"2006-01-02\"",
    "unixEpoch",
    "empty",
    "not",
    "eq 1",
];

fn piece() -> impl Strategy<Value = String> {
    let key = prop_oneof![Just("a"), Just("b"), Just("missing"), Just("json")];
    prop_oneof![
        "[a-z {}|().$\"\\-]{0,12}",
        key.clone().prop_map(|k| format!("{{{{ .{k} }}}}")),
        (
            key.clone(),
            proptest::sample::select(FUNCS),
            proptest::sample::select(FUNCS)
        )
            .prop_map(|(k, f, g)| format!("{{{{ .{k} | {f} | {g} }}}}")),
        (proptest::sample::select(FUNCS), key.clone())
            .prop_map(|(f, k)| format!("{{{{ {f} .{k} }}}}")),
        key.clone()
            .prop_map(|k| format!("{{{{ range $i, $v := .{k} }}}}{{{{ $v }}}}{{{{ end }}}}")),
        key.prop_map(|k| format!("{{{{ if .{k} }}}}y{{{{ else }}}}n{{{{ end }}}}")),
        Just("{{ range until 5 }}{{ . }}{{ end }}".to_owned()),
        Just("{{ with $x := .a }}{{ $x }}{{ end }}".to_owned()),
    ]
}

fn template() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..6).prop_map(|p| p.concat())
}

const SECRET: &str = "zq-SENSITIVE-zq";

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        "[ -~]{0,24}".prop_map(String::into_bytes),
        Just(br#"{"k": [1, 2.5, "x"], "n": null}"#.to_vec()),
        Just(b"MTIzNA==".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn rendering_never_panics_and_errors_hold_no_value(
        text in template(),
        a in value(),
        b in value(),
        raw in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let engine = Engine::new(Limits::default());
        let mut data = BTreeMap::from([
            ("a".to_owned(), a),
            ("b".to_owned(), b),
            ("json".to_owned(), format!("{{\"s\": \"{SECRET}\"}}").into_bytes()),
            ("secret".to_owned(), SECRET.as_bytes().to_vec()),
        ]);
        if let Err(e) = engine.render("p", &text, &data) {
            let msg = e.to_string();
            prop_assert!(!msg.contains(SECRET), "{}: {}", text, msg);
            prop_assert!(msg.contains("p"));
        }
        // Arbitrary bytes as template text: parse errors only, never a panic.
        let junk = String::from_utf8_lossy(&raw).into_owned();
        let _ = engine.render("j", &junk, &data);
        data.clear();
        let _ = engine.render("e", &text, &data);
    }
}
