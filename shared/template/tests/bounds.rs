//! Errors name the template and the position, never a value; every limit holds.

use std::collections::BTreeMap;
use std::time::Duration;

use secret_sync_template::{Engine, ExceededLimit, Limits, TemplateError};

const SECRET: &str = "canary-S3CRET-value";

fn data() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("password".to_owned(), SECRET.as_bytes().to_vec()),
        (
            "json".to_owned(),
            format!("{{\"k\": \"{SECRET}\"}}").into_bytes(),
        ),
        ("user".to_owned(), b"app".to_vec()),
    ])
}

fn err(limits: Limits, text: &str) -> TemplateError {
    Engine::new(limits)
        .render("url", text, &data())
        .expect_err(text)
}

#[test]
fn a_missing_key_names_the_template_the_position_and_the_key() {
    let e = err(Limits::default(), "a\nb {{ .user }} {{ .nope }}");
    assert_eq!(
        e.to_string(),
        r#"template: url:2:18: executing "url": map has no entry for key "nope""#
    );
}

#[test]
fn a_failing_function_is_located_at_its_command() {
    let e = err(
        Limits::default(),
        "{{ .user }}\n  {{ .user | upper | div 0 }}",
    );
    let text = e.to_string();
    assert!(text.starts_with("template: url:2:"), "{text}");
    assert!(
        text.contains("error calling div: runtime error: integer divide by zero"),
        "{text}"
    );
}

#[test]
fn a_parse_error_names_line_and_column() {
    let e = err(Limits::default(), "ok\n{{ .user | }}");
    assert!(matches!(e, TemplateError::Parse { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("template: url:2:"), "{e}");
}

#[test]
fn no_error_message_holds_a_data_value() {
    let templates = [
        "{{ index . .password | b64dec | mustFromJson }}",
        "{{ fail .password }}",
        "{{ .password | mustFromJson }}",
        "{{ len (.password | atoi) }}",
        "{{ range $i, $v := (.password | len) }}{{ end }}",
        "{{ .password.field }}",
        "{{ printf (.password | len) }}",
        "{{ (.json | fromJson).k | int | div 1 }}",
        "{{ index (.json | fromJson) .password 1 }}",
        "{{ .password | b64dec | mustFromJson }}",
        "{{ mustRegexFind (printf \"(%s\" .password) \"x\" }}",
        "{{ regexFind \"(\" .password }}",
        "{{ .password | upper | nope }}",
        "{{ .password | repeat -1 }}",
        "{{ index (list .password) 5 }}",
        "{{ slice .password 50 }}",
        "{{ substr 30 40 .password }}",
        "{{ .password | first }}",
        "{{ dig .password \"a\" (dict) | toString }}{{ dig \"a\" \"b\" \"c\" (dict \"a\" .password) }}",
        "{{ template \"x\" }}",
        "{{ .password | eq 1 }}",
        "{{ .password | unixEpoch }}",
        "{{ .password | pkcs12key }}",
        "{{ .password | b64dec | pkcs12certPass .password }}",
        "{{ .password | certSANs }}",
        "{{ filterCertChain .password .password }}",
        "{{ .password | jwkPublicKeyPem }}",
        "{{ .json | jwkPrivateKeyPem }}",
        "{{ rsaDecrypt .password .password .password .password }}",
        "{{ rsaDecrypt \"RSA-OAEP\" \"SHA1\" .password .password }}",
        "{{ pemToPkcs12Pass .password .password .password }}",
        "{{ fullPemToPkcs12 .password .password }}",
        "{{ pemTruststoreToPKCS12Pass .password .password }}",
    ];
    for t in templates {
        let e = err(Limits::default(), t);
        let text = e.to_string();
        assert!(!text.contains(SECRET), "{t}: {text}");
        assert!(!text.contains("S3CRET"), "{t}: {text}");
        assert!(text.contains("url"), "{t}: {text}");
    }
}

fn limit(e: &TemplateError) -> Option<ExceededLimit> {
    match e {
        TemplateError::Limit { limit, .. } => Some(*limit),
        _ => None,
    }
}

#[test]
fn index_of_a_missing_context_key_is_empty_as_for_go_map_of_strings() {
    // text/template's index returns the zero value: "" for ESO's map[string]string context,
    // nil (printed <no value>) for maps built in the template.
    let engine = Engine::new(Limits::default());
    let out = engine
        .render_string(
            "t",
            r#"[{{ index . "no-such-key" }}][{{ index (dict) "x" }}]"#,
            &data(),
        )
        .expect("test input is valid");
    assert_eq!(out, "[][<no value>]");
}

#[test]
fn output_is_bounded() {
    let limits = Limits {
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let e = err(
        limits,
        r#"{{ range until 100 }}{{ repeat 100 "x" }}{{ end }}"#,
    );
    assert_eq!(limit(&e), Some(ExceededLimit::OutputBytes(1000)), "{e}");
}

#[test]
fn a_value_doubling_in_a_loop_stops_at_the_value_limit() {
    let e = err(
        Limits::default(),
        r#"{{ $x := "ab" }}{{ range until 64 }}{{ $x = print $x $x }}{{ end }}{{ len $x }}"#,
    );
    assert_eq!(limit(&e), Some(ExceededLimit::ValueBytes(1 << 20)), "{e}");
    let e = err(Limits::default(), r#"{{ repeat 100000000 "xy" }}"#);
    assert_eq!(limit(&e), Some(ExceededLimit::ValueBytes(1 << 20)), "{e}");
    let e = err(Limits::default(), "{{ range until 100000000 }}{{ end }}");
    assert_eq!(limit(&e), Some(ExceededLimit::ValueBytes(1 << 20)), "{e}");
}

#[test]
fn range_iterations_are_bounded() {
    let limits = Limits {
        max_range_iterations: 1000,
        ..Limits::default()
    };
    let e = err(
        limits,
        "{{ range until 600 }}{{ range until 600 }}{{ end }}{{ end }}",
    );
    assert_eq!(limit(&e), Some(ExceededLimit::RangeIterations(1000)), "{e}");
    let e = err(limits, "{{ range 100000000000 }}{{ end }}");
    assert_eq!(limit(&e), Some(ExceededLimit::RangeIterations(1000)), "{e}");
}

#[test]
fn function_calls_and_time_are_bounded() {
    let calls = Limits {
        max_function_calls: 50,
        ..Limits::default()
    };
    let e = err(
        calls,
        "{{ range until 40 }}{{ upper \"a\" }}{{ upper \"b\" }}{{ end }}",
    );
    assert_eq!(limit(&e), Some(ExceededLimit::FunctionCalls(50)), "{e}");
    let time = Limits {
        timeout: Duration::from_millis(50),
        max_range_iterations: u64::MAX / 2,
        max_function_calls: u64::MAX,
        ..Limits::default()
    };
    let e = err(
        time,
        "{{ range until 100000 }}{{ range until 100000 }}{{ upper \"a\" }}{{ end }}{{ end }}",
    );
    assert_eq!(
        limit(&e),
        Some(ExceededLimit::Time(Duration::from_millis(50))),
        "{e}"
    );
}

#[test]
fn recursive_templates_are_refused_when_parsed() {
    let e = err(
        Limits::default(),
        r#"{{ define "a" }}{{ template "a" . }}{{ template "a" . }}{{ end }}{{ template "a" . }}"#,
    );
    assert!(matches!(e, TemplateError::Parse { .. }), "{e}");
    assert!(e.to_string().contains("recursive"), "{e}");
    // Non-recursive defines work.
    let out = Engine::new(Limits::default())
        .render_string(
            "t",
            r#"{{ define "u" }}<{{ .user }}>{{ end }}{{ template "u" . }}"#,
            &data(),
        )
        .expect("test input is valid");
    assert_eq!(out, "<app>");
}
