//! Golden tests: every template example in ESO's docs (docs/guides/templating.md and the
//! snippets it includes) and ESO's own engine tests (runtime/template/v2/template_test.go,
//! `TestExecute`), with the output ESO's Go code produces for them.

use std::collections::BTreeMap;

use secret_sync_template::{Engine, Limits};

fn render(text: &str, data: &[(&str, &str)]) -> String {
    let data: BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    Engine::new(Limits::default())
        .render_string("golden", text, &data)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

// template_test.go constants.
const PKCS12_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDHTCCAgWgAwIBAgIRAKC4yxy9QGocND+6avTf7BgwDQYJKoZIhvcNAQELBQAw
EjEQMA4GA1UEChMHQWNtZSBDbzAeFw0yMTAzMjAyMDA4MDhaFw0yMTAzMjAyMDM4
MDhaMBIxEDAOBgNVBAoTB0FjbWUgQ28wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAw
ggEKAoIBAQC3o6/JdZEqNbqNRkopHhJtJG5c4qS5d0tQ/kZYpfD/v/izAYum4Nzj
aG15owr92/11W0pxPUliRLti3y6iScTs+ofm2D7p4UXj/Fnho/2xoWSOoWAodgvW
Y8jh8A0LQALZiV/9QsrJdXZdS47DYZLsQ3z9yFC/CdXkg1l7AQ3fIVGKdrQBr9kE
1gEDqnKfRxXI8DEQKXr+CKPUwCAytegmy0SHp53zNAvY+kopHytzmJpXLoEhxq4e
ugHe52vXHdh/HJ9VjNp0xOH1waAgAGxHlltCW0PVd5AJ0SXROBS/a3V9sZCbCrJa
YOOonQSEswveSv6PcG9AHvpNPot2Xs6hAgMBAAGjbjBsMA4GA1UdDwEB/wQEAwIC
pDATBgNVHSUEDDAKBggrBgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MB0GA1UdDgQW
BBR00805mrpoonp95RmC3B6oLl+cGTAVBgNVHREEDjAMggpnb29ibGUuY29tMA0G
CSqGSIb3DQEBCwUAA4IBAQAipc1b6JrEDayPjpz5GM5krcI8dCWVd8re0a9bGjjN
ioWGlu/eTr5El0ffwCNZ2WLmL9rewfHf/bMvYz3ioFZJ2OTxfazqYXNggQz6cMfa
lbedDCdt5XLVX2TyerGvFram+9Uyvk3l0uM7rZnwAmdirG4Tv94QRaD3q4xTj/c0
mv+AggtK0aRFb9o47z/BypLdk5mhbf3Mmr88C8XBzEnfdYyf4JpTlZrYLBmDCu5d
9RLLsjXxhag8xqMtd1uLUM8XOTGzVWacw8iGY+CTtBKqyA+AE6/bDwZvEwVtsKtC
QJ85ioEpy00NioqcF0WyMZH80uMsPycfpnl5uF7RkW8u
-----END CERTIFICATE-----
";

const EC_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjJs5xsoHUetdMabt
t8H2KyX5T92nGul1chFeMT5hlr2hRANCAAR8OODc2riM9/wg5nTbvto9VqX/yJfJ
KfMtQkBmCFTNk3fOtz3sgTiv0OHbokplsICEc4tUT5RWU0frwAjJT4Pk
-----END PRIVATE KEY-----
";

#[test]
fn the_seed_database_url_template_renders() {
    // tests/fixtures/seed/externalsecret-database-url.yaml
    let out = render(
        "postgresql://{{ .username }}:{{ .password }}@{{ .host }}:5432/{{ .dbname }}?sslmode=require",
        &[
            ("username", "app"),
            ("password", "s3cr3t"),
            ("host", "db.internal"),
            ("dbname", "main"),
        ],
    );
    assert_eq!(
        out,
        "postgresql://app:s3cr3t@db.internal:5432/main?sslmode=require"
    );
}

#[test]
fn the_docs_multiline_config_example_renders() {
    // docs/snippets/multiline-template-v2-external-secret.yaml
    let tpl = "datasources:\n- name: Graphite\n  type: graphite\n  access: proxy\n  url: http://localhost:8080\n  password: \"{{ .password }}\"\n  user: \"{{ .user }}\"\n";
    let out = render(tpl, &[("password", "harharhar"), ("user", "foobert")]);
    assert_eq!(
        out,
        "datasources:\n- name: Graphite\n  type: graphite\n  access: proxy\n  url: http://localhost:8080\n  password: \"harharhar\"\n  user: \"foobert\"\n"
    );
}

#[test]
fn the_docs_replace_connection_example_renders() {
    // docs/snippets/multiline-template-v2-external-secret.yaml, key `connection`.
    let out = render(
        r#"{{ .dburl | replace "postgres://" "postgresql://" }}"#,
        &[("dburl", "postgres://u:p@h:5432/d")],
    );
    assert_eq!(out, "postgresql://u:p@h:5432/d");
}

#[test]
fn the_docs_printf_escape_renders_braces_literally() {
    // docs/snippets/multikey-template-v2-external-secret.yaml
    assert_eq!(
        render(r#"{{ printf "{{ .mysecret }}" }}"#, &[("mysecret", "x")]),
        "{{ .mysecret }}"
    );
    // docs/snippets/helm-template-v2-escape-sequence.yaml: the raw string helm leaves behind.
    assert_eq!(
        render("{{ `{{ .mysecret }}` }}", &[("mysecret", "x")]),
        "{{ .mysecret }}"
    );
    assert_eq!(render("{{ .mysecret }}", &[("mysecret", "x")]), "x");
}

#[test]
fn the_docs_merge_example_decodes_base64() {
    // docs/snippets/merge-template-v2-external-secret.yaml
    assert_eq!(
        render("{{ .password | b64dec }}", &[("password", "aHVudGVyMg==")]),
        "hunter2"
    );
}

#[test]
fn the_docs_dash_keys_use_index() {
    // docs/guides/templating.md: keys with dashes need `index`.
    assert_eq!(
        render(
            r#"{{ index . "service-account-token" }}"#,
            &[("service-account-token", "tok")]
        ),
        "tok"
    );
}

#[test]
fn the_docs_literal_annotation_example_renders() {
    // docs/snippets/template-v2-scope-and-target.yaml (the literal, before YAML parsing).
    assert_eq!(
        render(
            "last-sync-for-user/{{ .user }}: {{ .now }}",
            &[("user", "u1"), ("now", "t")]
        ),
        "last-sync-for-user/u1: t"
    );
}

/// A template, its data, and the output ESO's Go code gives.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn eso_execute_table_cases_render_as_in_go() {
    // template_test.go TestExecute rows: (template, data, expected).
    let cases: &[Case] = &[
        ("{{ .secret | b64dec }}", &[("secret", "MTIzNA==")], "1234"),
        (
            "{{ $var := .secret | fromJson }}{{ $var.foo }}",
            &[("secret", r#"{"foo": "bar"}"#)],
            "bar",
        ),
        (
            "{{ $var := .secret | fromJson }}{{ $var.foo | toJson }}",
            &[("secret", r#"{"foo": {"baz":"bang"}}"#)],
            r#"{"baz":"bang"}"#,
        ),
        (
            "{{ $var := .secret | fromJson | toYaml }}{{ $var }}",
            &[("secret", r#"{"foo": "bar"}"#)],
            "foo: bar",
        ),
        (
            "{{ $var := .secret | fromYaml | toJson }}{{ $var }}",
            &[("secret", "foo: bar")],
            r#"{"foo":"bar"}"#,
        ),
        ("{{ .path | ext }}", &[("path", "foo/bar/baz.exe")], ".exe"),
        (
            r#"{{ .conn | replace "postgres://" "db+postgresql://"}}"#,
            &[("conn", "postgres://user:pass@db.host:5432/dbname")],
            "db+postgresql://user:pass@db.host:5432/dbname",
        ),
        ("{{ .value | upper }}", &[("value", "username")], "USERNAME"),
        (
            r#"{{ "123412341234" | b64enc | b64dec }}"#,
            &[],
            "123412341234",
        ),
        (
            "{{ .example | sha256sum | hexdec | b64enc }}",
            &[("example", "example")],
            "UNhY4JhezH9gQYqvDMWrWH9CwlcKiECVqejMrND2VFw=",
        ),
        // "base64 decode error" and "fromJson error": silent, no error.
        (
            "{{ .example | b64dec }}",
            &[("example", "iam_no_base64")],
            "illegal base64 data at input byte 3",
        ),
        (r#"{{ "{ # no json # }" | fromJson }}"#, &[], "<no value>"),
    ];
    for (tpl, data, want) in cases {
        assert_eq!(render(tpl, data), *want, "{tpl}");
    }
}

#[test]
fn eso_filter_pem_keeps_only_certificates() {
    // template_test.go "filter pem certificate": a key followed by a certificate.
    let secret = format!("{EC_PKCS8}{PKCS12_CERT}");
    assert_eq!(
        render(
            r#"{{ .secret | filterPEM "CERTIFICATE" }}"#,
            &[("secret", &secret)]
        ),
        PKCS12_CERT
    );
    assert_eq!(
        render(
            r#"{{ .secret | filterPEM "PRIVATE KEY" }}"#,
            &[("secret", &secret)]
        ),
        EC_PKCS8
    );
}

#[test]
fn eso_syntax_and_unknown_key_errors_fail_the_render() {
    let engine = Engine::new(Limits::default());
    let data = BTreeMap::new();
    assert!(engine.render("key", "{{ #xx }}", &data).is_err());
    assert!(engine.render("key", "{{ .unknown }}", &data).is_err());
}

#[test]
fn binary_values_pass_through_byte_for_byte() {
    // Go strings are bytes: `{{ .ks | b64dec }}` writes a keystore's raw bytes.
    let engine = Engine::new(Limits::default());
    let raw = vec![0x30u8, 0x82, 0xff, 0x00, 0xfe, b'a'];
    let data = BTreeMap::from([
        ("bin".to_owned(), raw.clone()),
        ("b64".to_owned(), b"MIL/AP5h".to_vec()),
    ]);
    assert_eq!(
        engine
            .render("t", "{{ .bin }}", &data)
            .expect("test input is valid"),
        raw
    );
    assert_eq!(
        engine
            .render("t", "{{ .b64 | b64dec }}", &data)
            .expect("test input is valid"),
        raw
    );
    assert_eq!(
        engine
            .render("t", "{{ .bin | b64enc }}", &data)
            .expect("test input is valid"),
        b"MIL/AP5h"
    );
    // encoding/json writes bytes that are not UTF-8 as U+FFFD.
    assert_eq!(
        engine
            .render_string("t", "{{ .bin | toJson }}", &data)
            .expect("test input is valid"),
        "\"0\\ufffd\\ufffd\\u0000\\ufffda\""
    );
}
