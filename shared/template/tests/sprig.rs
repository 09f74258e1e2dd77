//! sprig's string, URL, semver and date functions against sprig itself. Every expected value
//! is what sprig printed for the same template: sprig as ESO v2.9.0 vendors it
//! (v3.3.1-0.20241028115027-8cb06fe3c8b0, huandu/xstrings v1.5.0, Masterminds/semver v3.4.0,
//! Masterminds/goutils v1.1.1) on Go 1.26's text/template. Cases from sprig's and xstrings'
//! own tests are in these tables too (`HTTPServer`, `proto://auth@host:80/path?query#fragment`,
//! `^1.2.0`, `2h5s`, ...). `None` is a template error, as in Go.

use std::collections::BTreeMap;

use secret_sync_template::{Engine, Limits};

fn render(text: &str) -> Result<String, String> {
    Engine::new(Limits::default())
        .render_string("t", text, &BTreeMap::new())
        .map_err(|e| e.to_string())
}

fn check(cases: &[(&str, Option<&str>)]) {
    for (template, want) in cases {
        match (render(template), want) {
            (Ok(got), Some(want)) => assert_eq!(&got, want, "{template}"),
            (Err(_), None) => {}
            (got, want) => panic!("{template}: got {got:?}, want {want:?}"),
        }
    }
}

/// Input, then `snakecase`, `kebabcase`, `camelcase` and `swapcase` of it.
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "HTTPServer",
        "http_server",
        "http-server",
        "Httpserver",
        "httpsERVER",
    ),
    (
        "_camelCase",
        "_camel_case",
        "-camel-case",
        "_CamelCase",
        "_CAMELcASE",
    ),
    ("NoHTTPS", "no_https", "no-https", "NoHTTPS", "nOhttps"),
    ("Wi_thF", "wi_th_f", "wi-th-f", "WiThF", "wI_THf"),
    (
        "_AnotherTES_TCaseP",
        "_another_tes_t_case_p",
        "-another-tes-t-case-p",
        "_AnotherTESTcaseP",
        "_aNOTHERtes_tcASEp",
    ),
    ("ALL", "all", "all", "All", "all"),
    (
        "_HELLO_WORLD_",
        "_hello_world_",
        "-hello-world-",
        "_HelloWorld_",
        "_hello_world_",
    ),
    (
        "HELLO_WORLD",
        "hello_world",
        "hello-world",
        "HelloWorld",
        "hello_world",
    ),
    (
        "HELLO____WORLD",
        "hello____world",
        "hello----world",
        "Hello___World",
        "hello____world",
    ),
    ("TW", "tw", "tw", "Tw", "tw"),
    ("_C", "_c", "-c", "_C", "_c"),
    ("http2xx", "http_2xx", "http-2xx", "Http2xx", "HTTP2XX"),
    ("HTTP2XX", "http2_xx", "http2-xx", "Http2XX", "http2xx"),
    (
        "HTTP20xOK",
        "http_20x_ok",
        "http-20x-ok",
        "Http20xOK",
        "http20Xok",
    ),
    (
        "HTTP20xStatus",
        "http_20x_status",
        "http-20x-status",
        "Http20xStatus",
        "http20XsTATUS",
    ),
    (
        "HTTP-20xStatus",
        "http_20x_status",
        "http-20x-status",
        "Http20xStatus",
        "http-20XsTATUS",
    ),
    ("a", "a", "a", "A", "A"),
    (
        "Duration2m3s",
        "duration_2m3s",
        "duration-2m3s",
        "Duration2m3s",
        "dURATION2M3S",
    ),
    (
        "Bld4Floor3rd",
        "bld4_floor_3rd",
        "bld4-floor-3rd",
        "Bld4Floor3rd",
        "bLD4fLOOR3RD",
    ),
    (" _-_ ", "_____", "-----", " _-_  ", " _-_ "),
    ("a1b2c3d", "a_1b2c3d", "a-1b2c3d", "A1b2c3d", "A1B2C3D"),
    ("A//B%%2c", "a//b%%2c", "a//b%%2c", "A//B%%2c", "a//b%%2C"),
    (
        "HTTP状态码404/502Error",
        "http_状态码404/502_error",
        "http-状态码404/502-error",
        "Http状态码404/502Error",
        "http状态码404/502eRROR",
    ),
    (
        "中文(字符)",
        "中文(字符)",
        "中文(字符)",
        "中文(字符)",
        "中文(字符)",
    ),
    (
        "混合ABCWords与123数字456",
        "混合_abc_words_与123_数字456",
        "混合-abc-words-与123-数字456",
        "混合ABCWords与123数字456",
        "混合abcwORDS与123数字456",
    ),
    (
        "  sentence case  ",
        "__sentence_case__",
        "--sentence-case--",
        "  SentenceCase  ",
        "  SENTENCE CASE  ",
    ),
    (
        " Mixed-hyphen case _and SENTENCE_case and UPPER-case",
        "_mixed_hyphen_case__and_sentence_case_and_upper_case",
        "-mixed-hyphen-case--and-sentence-case-and-upper-case",
        " MixedHyphenCase AndSentenceCaseAndUpperCase",
        " mIXED-HYPHEN CASE _AND sentence_CASE AND upper-CASE",
    ),
    (
        "FROM CamelCase to snake/kebab-case",
        "from_camel_case_to_snake/kebab_case",
        "from-camel-case-to-snake/kebab-case",
        "FromCamelCaseToSnake/kebabCase",
        "from cAMELcASE TO SNAKE/KEBAB-CASE",
    ),
    ("", "", "", "", ""),
    (
        "abc_123_def",
        "abc_123_def",
        "abc-123-def",
        "Abc123Def",
        "ABC_123_DEF",
    ),
    (
        "http_server",
        "http_server",
        "http-server",
        "HttpServer",
        "HTTP_SERVER",
    ),
    (
        "_camel_case",
        "_camel_case",
        "-camel-case",
        "_CamelCase",
        "_CAMEL_CASE",
    ),
    ("no_https", "no_https", "no-https", "NoHttps", "NO_HTTPS"),
    (
        "_complex__case_",
        "_complex__case_",
        "-complex--case-",
        "_Complex_Case_",
        "_COMPLEX__CASE_",
    ),
    (
        " complex -case ",
        "_complex__case_",
        "-complex--case-",
        " Complex Case ",
        " COMPLEX -CASE ",
    ),
    ("all", "all", "all", "All", "ALL"),
    (
        "GOLANG_IS_GREAT",
        "golang_is_great",
        "golang-is-great",
        "GolangIsGreat",
        "golang_is_great",
    ),
    ("GOLANG", "golang", "golang", "Golang", "golang"),
    ("好", "好", "好", "好", "好"),
    ("__", "__", "--", "___", "__"),
    ("_", "_", "-", "__", "_"),
    ("-", "_", "-", "--", "-"),
    ("x", "x", "x", "X", "X"),
    (
        "FirstName",
        "first_name",
        "first-name",
        "FirstName",
        "fIRSTnAME",
    ),
    ("GO PATH", "go_path", "go-path", "GoPath", "go path"),
    ("GO-PATH", "go_path", "go-path", "GoPath", "go-path"),
    (
        "ÉtéÀLaPlage",
        "été_à_la_plage",
        "été-à-la-plage",
        "ÉtéÀLaPlage",
        "éTÉàlApLAGE",
    ),
    ("ǅemo", "ǅemo", "ǅemo", "Ǆemo", "ǆEMO"),
    ("ßtraße", "ßtraße", "ßtraße", "ßtraße", "ßTRAßE"),
    ("ÀB", "àb", "àb", "Àb", "àb"),
    (
        "some$thing+else",
        "some_$_thing_+_else",
        "some-$-thing-+-else",
        "Some$thing+else",
        "SOME$THING+ELSE",
    ),
    ("déjà_vu", "déjà_vu", "déjà-vu", "DéjàVu", "DÉJÀ_VU"),
];

#[test]
fn case_conversions_match_xstrings_and_goutils() {
    for (input, snake, kebab, camel, swap) in CASES {
        let quoted = serde_json::to_string(input).unwrap_or_default();
        let template = format!(
            "{{{{ snakecase {quoted} }}}}|{{{{ kebabcase {quoted} }}}}|{{{{ camelcase {quoted} }}}}|{{{{ swapcase {quoted} }}}}"
        );
        assert_eq!(
            render(&template),
            Ok(format!("{snake}|{kebab}|{camel}|{swap}")),
            "{input:?}"
        );
    }
}

#[test]
fn shuffle_keeps_every_rune() {
    let out = render(r#"{{ shuffle "aabbcc⌘" }}"#).unwrap_or_default();
    let mut runes: Vec<char> = out.chars().collect();
    runes.sort_unstable();
    assert_eq!(runes.into_iter().collect::<String>(), "aabbcc⌘");
    assert_eq!(render(r#"{{ shuffle "" }}"#), Ok(String::new()));
}

/// A URL, then what sprig gives for `scheme|host|hostname|path|query|opaque|fragment|userinfo`
/// of `urlParse` and `urlJoin` of that dict (`None`: `urlParse` fails).
const URLS: &[(&str, Option<&str>)] = &[
    (
        "proto://auth@host:80/path?query#fragment",
        Some(
            "proto|host:80|host|/path|query||fragment|auth|proto://auth@host:80/path?query#fragment",
        ),
    ),
    (
        "proto://host:80/path",
        Some("proto|host:80|host|/path|||||proto://host:80/path"),
    ),
    ("something", Some("|||something|||||something")),
    (
        "proto://user:passwor%20d@host:80/path",
        Some("proto|host:80|host|/path||||user:passwor%20d|proto://user:passwor%20d@host:80/path"),
    ),
    (
        "proto://host:80/pa%20th?key=val%20ue",
        Some("proto|host:80|host|/pa th|key=val%20ue||||proto://host:80/pa%20th?key=val%20ue"),
    ),
    (
        "https://user:p%40ss@example.com:8443/a%2Fb/c?x=1&y=2#frag%20ment",
        Some(
            "https|example.com:8443|example.com|/a/b/c|x=1&y=2||frag ment|user:p%40ss|https://user:p%40ss@example.com:8443/a/b/c?x=1&y=2#frag%20ment",
        ),
    ),
    (
        "mailto:someone@example.com",
        Some("mailto|||||someone@example.com|||mailto:someone@example.com"),
    ),
    (
        "/relative/path?x",
        Some("|||/relative/path|x||||/relative/path?x"),
    ),
    (
        "http://[fe80::1%25en0]:8080/",
        Some("http|[fe80::1%en0]:8080|fe80::1%en0|/|||||http://[fe80::1%25en0]:8080/"),
    ),
    (
        "http://[::1]/x",
        Some("http|[::1]|::1|/x|||||http://[::1]/x"),
    ),
    (
        "postgres://a:1,b:2/db",
        Some("postgres|a:1,b:2|a:1,b|/db|||||postgres://a:1,b:2/db"),
    ),
    ("http://a:1,b:2/db", None),
    ("http://host:port/", None),
    ("http://a b/", None),
    ("http://[1.2.3.4]/", None),
    ("http://x[::1]/", None),
    (":nope", None),
    ("http://example.com/%zz", None),
    (
        "http://example.com/?q#",
        Some("http|example.com|example.com|/|q||||http://example.com/?q"),
    ),
    (
        "file:///etc/hosts",
        Some("file|||/etc/hosts|||||file:///etc/hosts"),
    ),
    ("//host/path", Some("|host|host|/path|||||//host/path")),
    ("http://%41/", None),
    (
        "HTTP://Example.COM/Path",
        Some("http|Example.COM|Example.COM|/Path|||||http://Example.COM/Path"),
    ),
    ("http://u@h/", Some("http|h|h|/||||u|http://u@h/")),
    ("http://:pw@h/", Some("http|h|h|/||||:pw|http://:pw@h/")),
    (
        "http://us%20er:pw@h/",
        Some("http|h|h|/||||us%20er:pw|http://us%20er:pw@h/"),
    ),
    ("http://üser@h/", None),
    (
        "http://h/ü?ü#ü",
        Some("http|h|h|/ü|ü||ü||http://h/%C3%BC?ü#%C3%BC"),
    ),
    (
        "http://h/a b?c d#e f",
        Some("http|h|h|/a b|c d||e f||http://h/a%20b?c d#e%20f"),
    ),
    ("http://h/p%2fq", Some("http|h|h|/p/q|||||http://h/p/q")),
    ("http://h/#a%2Fb", Some("http|h|h|/|||a/b||http://h/#a/b")),
    ("*", Some("|||*|||||*")),
    ("", Some("||||||||")),
    ("a:b", Some("a|||||b|||a:b")),
    ("./a:b", Some("|||./a:b|||||./a:b")),
    ("http://h:/", Some("http|h:|h|/|||||http://h:/")),
    ("http://h/\u{1}", None),
    ("http://h/a?", Some("http|h|h|/a|||||http://h/a")),
    ("http://h/a??", Some("http|h|h|/a|?||||http://h/a??")),
    ("http://[fe80::1%en0]/", None),
    (
        "http://[::ffff:1.2.3.4]:80/",
        Some("http|[::ffff:1.2.3.4]:80|::ffff:1.2.3.4|/|||||http://[::ffff:1.2.3.4]:80/"),
    ),
    (
        "scheme:opaque/path?q#f",
        Some("scheme||||q|opaque/path|f||scheme:opaque/path?q#f"),
    ),
    (
        "http://user:pa:ss@h/",
        Some("http|h|h|/||||user:pa%3Ass|http://user:pa%3Ass@h/"),
    ),
    ("http://a@b@h/", Some("http|h|h|/||||a%40b|http://a%40b@h/")),
];

#[test]
fn url_parse_and_join_match_net_url() {
    for (url, want) in URLS {
        let quoted = serde_json::to_string(url).unwrap_or_default();
        let template = format!(
            "{{{{ $u := urlParse {quoted} }}}}{{{{ $u.scheme }}}}|{{{{ $u.host }}}}|{{{{ $u.hostname }}}}|{{{{ $u.path }}}}|{{{{ $u.query }}}}|{{{{ $u.opaque }}}}|{{{{ $u.fragment }}}}|{{{{ $u.userinfo }}}}|{{{{ urlJoin $u }}}}"
        );
        check(&[(&template, *want)]);
    }
}

#[test]
fn url_join_matches_net_url() {
    check(&[
        (
            r#"{{ urlJoin (dict "fragment" "fragment" "host" "host:80" "path" "/path" "query" "query" "scheme" "proto") }}"#,
            Some("proto://host:80/path?query#fragment"),
        ),
        (
            r#"{{ urlJoin (dict "fragment" "fragment" "host" "host:80" "path" "/path" "scheme" "proto" "userinfo" "ASDJKJSD") }}"#,
            Some("proto://ASDJKJSD@host:80/path#fragment"),
        ),
        (r#"{{ urlJoin (dict "path" "a:b/c") }}"#, Some("./a:b/c")),
        (
            r#"{{ urlJoin (dict "host" "h" "path" "rel") }}"#,
            Some("//h/rel"),
        ),
        (
            r#"{{ urlJoin (dict "scheme" "s" "opaque" "op" "path" "/ignored") }}"#,
            Some("s:op"),
        ),
        (
            r#"{{ urlJoin (dict "host" "hö st" "path" "/p ä?#") }}"#,
            Some("//h%C3%B6%20st/p%20%C3%A4%3F%23"),
        ),
        (
            r#"{{ urlJoin (dict "userinfo" "u:p@x") }}"#,
            Some("//u:p%40x@"),
        ),
        (r#"{{ urlJoin (dict "userinfo" "u%zz") }}"#, None),
        (r#"{{ urlJoin (dict "path" 5) }}"#, None),
        (
            r#"{{ urlJoin (dict "scheme" "http" "userinfo" "me" "path" "/x") }}"#,
            Some("http://me@/x"),
        ),
        (r#"{{ urlJoin (dict) }}"#, Some("")),
        (
            r#"{{ urlJoin (dict "fragment" "a b#c") }}"#,
            Some("#a%20b%23c"),
        ),
        (r#"{{ urlJoin (dict "query" "a b") }}"#, Some("?a b")),
    ]);
}

#[test]
fn url_errors_name_no_url() {
    let e = render(r#"{{ urlParse "http://secret-host:port/" }}"#)
        .err()
        .unwrap_or_default();
    assert!(
        e.ends_with("unable to parse url: invalid port after host"),
        "{e}"
    );
    assert!(!e.contains("secret-host"), "{e}");
}

#[test]
fn semver_fields_match_masterminds() {
    check(&[
        (
            r#"{{ $s := semver "1.2.3" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|||1.2.3"),
        ),
        (
            r#"{{ $s := semver "v1.2.3" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|||v1.2.3"),
        ),
        (
            r#"{{ $s := semver "1.2" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|0|||1.2"),
        ),
        (
            r#"{{ $s := semver "1" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|0|0|||1"),
        ),
        (
            r#"{{ $s := semver "01.02.03" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|||01.02.03"),
        ),
        (
            r#"{{ $s := semver "1.2.3-beta.1+c0ff33" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|beta.1|c0ff33|1.2.3-beta.1+c0ff33"),
        ),
        (
            r#"{{ $s := semver "1.2.3.4" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "1.2.3-01" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "1.2.3-alpha..1" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "1.2.3+meta..x" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "99999999999999999999.0.0" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "v" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "1.2.3-rc.1+build.5" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|rc.1|build.5|1.2.3-rc.1+build.5"),
        ),
        (
            r#"{{ $s := semver "V1.2.3" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver " 1.2.3" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
        (
            r#"{{ $s := semver "1.2.3-0a" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            Some("1|2|3|0a||1.2.3-0a"),
        ),
        (
            r#"{{ $s := semver "1.2.3-a_b" }}{{ $s.Major }}|{{ $s.Minor }}|{{ $s.Patch }}|{{ $s.Prerelease }}|{{ $s.Metadata }}|{{ $s.Original }}"#,
            None,
        ),
    ]);
}

#[test]
fn semver_compare_matches_masterminds_constraints() {
    check(&[
        (r#"{{ semverCompare "1.2.3" "1.2.3" }}"#, Some("true")),
        (r#"{{ semverCompare "^1.2.0" "1.2.3" }}"#, Some("true")),
        (r#"{{ semverCompare "^1.2.0" "2.2.3" }}"#, Some("false")),
        (r#"{{ semverCompare ">=1.2.3" "1.2.3" }}"#, Some("true")),
        (r#"{{ semverCompare ">=1.2.3" "1.2.2" }}"#, Some("false")),
        (r#"{{ semverCompare "~1.2" "1.2.9" }}"#, Some("true")),
        (r#"{{ semverCompare "~1.2" "1.3.0" }}"#, Some("false")),
        (r#"{{ semverCompare "^1.2" "1.9.0" }}"#, Some("true")),
        (r#"{{ semverCompare "^1.2" "2.0.0" }}"#, Some("false")),
        (
            r#"{{ semverCompare ">= 1.2, < 3.0" "2.9.9" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare ">= 1.2, < 3.0" "3.0.0" }}"#,
            Some("false"),
        ),
        (
            r#"{{ semverCompare "<1.0 || >=2.0" "2.0.0" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare "<1.0 || >=2.0" "1.5.0" }}"#,
            Some("false"),
        ),
        (r#"{{ semverCompare "1.1 - 2" "1.5.0" }}"#, Some("true")),
        (r#"{{ semverCompare "1.1 - 2" "2.1.0" }}"#, Some("true")),
        (r#"{{ semverCompare "1.1 - 2" "2.0.5" }}"#, Some("true")),
        (
            r#"{{ semverCompare ">=1.0.0" "1.2.0-beta" }}"#,
            Some("false"),
        ),
        (
            r#"{{ semverCompare ">=1.0.0-0" "1.2.0-beta" }}"#,
            Some("true"),
        ),
        (r#"{{ semverCompare "^0.2.3" "0.2.9" }}"#, Some("true")),
        (r#"{{ semverCompare "^0.2.3" "0.3.0" }}"#, Some("false")),
        (r#"{{ semverCompare "^0.0.3" "0.0.3" }}"#, Some("true")),
        (r#"{{ semverCompare "^0.0.3" "0.0.4" }}"#, Some("false")),
        (r#"{{ semverCompare "^0" "0.9.0" }}"#, Some("true")),
        (r#"{{ semverCompare "^0.0" "0.0.9" }}"#, Some("true")),
        (r#"{{ semverCompare "^0.0" "0.1.0" }}"#, Some("false")),
        (r#"{{ semverCompare "~0" "0.5.0" }}"#, Some("true")),
        (r#"{{ semverCompare "~*" "3.4.5" }}"#, Some("true")),
        (r#"{{ semverCompare "*" "3.4.5" }}"#, Some("true")),
        (r#"{{ semverCompare "x" "1.0.0" }}"#, Some("true")),
        (r#"{{ semverCompare "1.x" "1.9.9" }}"#, Some("true")),
        (r#"{{ semverCompare "1.x" "2.0.0" }}"#, Some("false")),
        (r#"{{ semverCompare "1.2.x" "1.2.7" }}"#, Some("true")),
        (r#"{{ semverCompare "!=1.2.3" "1.2.3" }}"#, Some("false")),
        (r#"{{ semverCompare "!=1.2.x" "1.2.5" }}"#, Some("false")),
        (r#"{{ semverCompare "!=1.x" "1.5.0" }}"#, Some("false")),
        (r#"{{ semverCompare "!=1.x" "2.0.0" }}"#, Some("true")),
        (r#"{{ semverCompare ">1.2" "1.2.9" }}"#, Some("false")),
        (r#"{{ semverCompare ">1.2" "1.3.0" }}"#, Some("true")),
        (r#"{{ semverCompare ">1" "1.9.0" }}"#, Some("false")),
        (r#"{{ semverCompare ">1" "2.0.0" }}"#, Some("true")),
        (r#"{{ semverCompare "<=1.2" "1.2.9" }}"#, Some("true")),
        (r#"{{ semverCompare "<=1.2" "1.3.0" }}"#, Some("false")),
        (r#"{{ semverCompare "<=1" "1.9.9" }}"#, Some("true")),
        (r#"{{ semverCompare "=1.2.3" "1.2.3" }}"#, Some("true")),
        (r#"{{ semverCompare "=>1.2" "1.2.0" }}"#, Some("true")),
        (r#"{{ semverCompare "=<1.2" "1.2.0" }}"#, Some("true")),
        (r#"{{ semverCompare "~>1.2.3" "1.2.9" }}"#, Some("true")),
        (r#"{{ semverCompare "~>1.2.3" "1.3.0" }}"#, Some("false")),
        (
            r#"{{ semverCompare "~1.2.3-beta" "1.2.3-beta.2" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare ">1.2.3-alpha" "1.2.3-beta" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare "1.2.3-alpha" "1.2.3-alpha" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare "< 2.0.0-alpha.1" "2.0.0-alpha" }}"#,
            Some("true"),
        ),
        (r#"{{ semverCompare "badConstraint" "1.2.3" }}"#, None),
        (r#"{{ semverCompare "1.2.0" "badVersion" }}"#, None),
        (r#"{{ semverCompare "" "" }}"#, None),
        (r#"{{ semverCompare "" "1.0.0" }}"#, None),
        (r#"{{ semverCompare ">=1.2.3 <2" "1.5.0" }}"#, Some("true")),
        (r#"{{ semverCompare ">=1.2.3,<2" "2.5.0" }}"#, Some("false")),
        (r#"{{ semverCompare " >= 1.2.3 " "1.2.4" }}"#, Some("true")),
        (
            r#"{{ semverCompare "1.2.3 || 2.3.4" "2.3.4" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare ">1.0.0-beta.2" "1.0.0-beta.11" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare ">1.0.0-beta.11" "1.0.0-beta.2" }}"#,
            Some("false"),
        ),
        (r#"{{ semverCompare "v1.2.3" "1.2.3" }}"#, Some("true")),
        (
            r#"{{ semverCompare ">=1.2.3-rc.1" "1.2.3" }}"#,
            Some("true"),
        ),
        (
            r#"{{ semverCompare "^1.2.3-rc" "1.5.0-rc.2" }}"#,
            Some("true"),
        ),
        (r#"{{ semverCompare "1.2 - 1.4.5" "1.4.5" }}"#, Some("true")),
        (
            r#"{{ semverCompare "1.2 - 1.4.5" "1.4.6" }}"#,
            Some("false"),
        ),
    ]);
}

#[test]
fn semver_errors_name_no_version() {
    let e = render(r#"{{ semverCompare "bogus-constraint" "1.2.3" }}"#)
        .err()
        .unwrap_or_default();
    assert!(
        e.ends_with("error calling semverCompare: improper constraint"),
        "{e}"
    );
}

#[test]
fn duration_round_matches_sprig() {
    check(&[
        (r#"{{ durationRound "2h5s" }}"#, Some("2h")),
        (r#"{{ durationRound "24h5s" }}"#, Some("1d")),
        (r#"{{ durationRound "2400h5s" }}"#, Some("3mo")),
        (r#"{{ durationRound "24h" }}"#, Some("24h")),
        (r#"{{ durationRound "1h" }}"#, Some("60m")),
        (r#"{{ durationRound "59s" }}"#, Some("59s")),
        (r#"{{ durationRound "0s" }}"#, Some("0s")),
        (r#"{{ durationRound "1s" }}"#, Some("0s")),
        (r#"{{ durationRound "1.5s" }}"#, Some("1s")),
        (r#"{{ durationRound "-3h" }}"#, Some("3h")),
        (r#"{{ durationRound "9000h" }}"#, Some("1y")),
        (r#"{{ durationRound "87600h1s" }}"#, Some("10y")),
        (r#"{{ durationRound "8760h" }}"#, Some("12mo")),
        (r#"{{ durationRound "garbage" }}"#, Some("0s")),
        (r#"{{ durationRound "720h1ns" }}"#, Some("1mo")),
        (r#"{{ durationRound "-1ns" }}"#, Some("0s")),
        // Go passes a literal as `int`, which durationRound ignores ("0s"); a template integer
        // here is int64 (Go's from `int64`, `add`, ...), so a literal counts as nanoseconds.
        (r#"{{ durationRound 3600000000001 }}"#, Some("1h")),
        (r#"{{ durationRound (int64 3600000000001) }}"#, Some("1h")),
        (
            r#"{{ durationRound (now | date_modify "-25h") }}"#,
            Some("1d"),
        ),
    ]);
}
