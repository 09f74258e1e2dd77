//! Per-function tests with edge cases. Expected values come from the Go source the function
//! ports (sprig v3 as ESO vendors it in runtime/template/v2/sprig, Go's standard library docs);
//! each case names its source.

use std::collections::BTreeMap;

use secret_sync_template::{Engine, Limits};

fn r(text: &str) -> String {
    rd(text, &[])
}

fn rd(text: &str, data: &[(&str, &str)]) -> String {
    let data: BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    Engine::new(Limits::default())
        .render_string("t", text, &data)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn fails(text: &str) -> String {
    Engine::new(Limits::default())
        .render_string("t", text, &BTreeMap::new())
        .expect_err(text)
        .to_string()
}

#[test]
fn encoding_functions_match_go_encoders() {
    // encoding/base64 StdEncoding: padded.
    assert_eq!(r(r#"{{ "ab" | b64enc }}"#), "YWI=");
    assert_eq!(r(r#"{{ "YWI=" | b64dec }}"#), "ab");
    // StdEncoding skips \r and \n while decoding.
    assert_eq!(r("{{ \"YW\\nI=\" | b64dec }}"), "ab");
    // encoding/base32 StdEncoding (RFC 4648 test vectors).
    assert_eq!(r(r#"{{ "foobar" | b32enc }}"#), "MZXW6YTBOI======");
    assert_eq!(r(r#"{{ "f" | b32enc }}"#), "MY======");
    assert_eq!(r(r#"{{ "MZXW6YTBOI======" | b32dec }}"#), "foobar");
    assert_eq!(r(r#"{{ "6869" | hexdec }}"#), "hi");
    assert_eq!(
        r(r#"{{ "abc" | hexdec }}"#),
        "encoding/hex: odd length hex string"
    );
}

#[test]
fn json_functions_match_encoding_json() {
    // encoding/json escapes <, >, & for HTML safety; toRawJson's encoder does not.
    assert_eq!(r(r#"{{ "<a&b>" | toJson }}"#), r#""\u003ca\u0026b\u003e""#);
    assert_eq!(r(r#"{{ "<a&b>" | toRawJson }}"#), r#""<a&b>""#);
    // Map keys sorted; MarshalIndent(v, "", "  ").
    assert_eq!(
        r(r#"{{ dict "b" 1 "a" (list 1 "x") | toPrettyJson }}"#),
        "{\n  \"a\": [\n    1,\n    \"x\"\n  ],\n  \"b\": 1\n}"
    );
    assert_eq!(r(r#"{{ dict | toJson }}"#), "{}");
    assert_eq!(r(r#"{{ list | toJson }}"#), "[]");
    // Numbers from JSON are float64, printed by encoding/json without a fraction.
    assert_eq!(r(r#"{{ ("{\"n\": 3.0}" | fromJson).n | toJson }}"#), "3");
    assert!(fails(r#"{{ "nope" | mustFromJson }}"#).contains("mustFromJson"));
}

#[test]
fn yaml_functions_match_sigs_k8s_yaml() {
    assert_eq!(
        r(r#"{{ dict "name" "app" "ports" (list 80 443) "on" "yes" | toYaml }}"#),
        "name: app\n\"on\": \"yes\"\nports:\n- 80\n- 443"
    );
    assert_eq!(r(r#"{{ (fromYaml "a:\n  b: c").a.b }}"#), "c");
    // ESO's fromYaml puts the failure under "Error" instead of failing.
    assert!(r(r#"{{ (fromYaml "- x").Error }}"#).starts_with("error"));
}

#[test]
fn default_empty_coalesce_ternary_follow_sprig_defaults_go() {
    assert_eq!(r(r#"{{ "" | default "d" }}"#), "d");
    assert_eq!(r(r#"{{ "v" | default "d" }}"#), "v");
    assert_eq!(r(r#"{{ 0 | default 5 }}"#), "5");
    assert_eq!(
        r(r#"{{ empty (list) }} {{ empty 0 }} {{ empty "x" }}"#),
        "true true false"
    );
    assert_eq!(r(r#"{{ coalesce "" 0 "x" "y" }}"#), "x");
    assert_eq!(
        r(r#"{{ ternary "a" "b" true }}{{ ternary "a" "b" false }}"#),
        "ab"
    );
}

#[test]
fn string_functions_follow_sprig_strings_go() {
    assert_eq!(r(r#"{{ "hello world" | title }}"#), "Hello World");
    assert_eq!(r(r#"{{ "  x  " | trim }}"#), "x");
    assert_eq!(r(r#"{{ "$$x$$" | trimAll "$" }}"#), "x");
    assert_eq!(r(r#"{{ "prefix-x" | trimPrefix "prefix-" }}"#), "x");
    assert_eq!(r(r#"{{ "x.txt" | trimSuffix ".txt" }}"#), "x");
    assert_eq!(
        r(r#"{{ "abc" | contains "b" }} {{ "abc" | hasPrefix "a" }} {{ "abc" | hasSuffix "b" }}"#),
        "true true false"
    );
    // strconv.Quote for quote; %v in single quotes for squote; nil arguments dropped.
    assert_eq!(r(r#"{{ quote "a\"b" 1 nil }}"#), r#""a\"b" "1""#);
    assert_eq!(r(r#"{{ squote "a" 2 }}"#), "'a' '2'");
    assert_eq!(r(r#"{{ cat "a" 1 nil "b" }}"#), "a 1 b");
    assert_eq!(r(r#"{{ "a\nb" | indent 2 }}"#), "  a\n  b");
    assert_eq!(r(r#"{{ "a" | nindent 2 }}"#), "\n  a");
    assert_eq!(r(r#"{{ " a b " | nospace }}"#), "ab");
    assert_eq!(r(r#"{{ "ab" | repeat 3 }}"#), "ababab");
    // sprig docs: substr 0 5 "hello world" is "hello"; trunc 5 and trunc -5.
    assert_eq!(r(r#"{{ substr 0 5 "hello world" }}"#), "hello");
    assert_eq!(
        r(r#"{{ trunc 5 "hello world" }}|{{ trunc -5 "hello world" }}"#),
        "hello|world"
    );
    // sprig docs: abbrev 5 "hello world" is "he...".
    assert_eq!(r(r#"{{ abbrev 5 "hello world" }}"#), "he...");
    assert_eq!(r(r#"{{ abbrevboth 5 10 "1234 5678 9123" }}"#), "...5678...");
    assert_eq!(r(r#"{{ initials "First Try" }}"#), "FT");
    assert_eq!(r(r#"{{ swapcase "This Is A.Test" }}"#), "tHIS iS a.tEST");
    assert_eq!(r(r#"{{ untitle "Hello World" }}"#), "hello world");
    assert_eq!(r(r#"{{ plural "one" "many" 2 }}"#), "many");
    assert_eq!(r(r#"{{ wrap 5 "Hello World" }}"#), "Hello\nWorld");
    assert_eq!(r(r#"{{ wrapWith 5 "\t" "Hello World" }}"#), "Hello\tWorld");
    assert_eq!(r(r#"{{ upper "ß" }}"#), "ß");
}

#[test]
fn split_and_join_follow_sprig() {
    // sprig docs: split "$" "foo$bar$baz" is map[_0:foo _1:bar _2:baz].
    assert_eq!(r(r#"{{ (split "$" "foo$bar$baz")._1 }}"#), "bar");
    assert_eq!(r(r#"{{ splitList "," "a,b" | join "-" }}"#), "a-b");
    assert_eq!(
        r(r#"{{ splitn "," 2 "a,b,c" | toJson }}"#),
        r#"{"_0":"a","_1":"b,c"}"#
    );
    assert_eq!(r(r#"{{ list 1 "a" nil 2.5 | join "," }}"#), "1,a,2.5");
    assert_eq!(
        r(r#"{{ list "b" "a" "c" | sortAlpha | toJson }}"#),
        r#"["a","b","c"]"#
    );
    assert_eq!(r(r#"{{ toStrings (list 1 2) | toJson }}"#), r#"["1","2"]"#);
}

#[test]
fn hash_functions_match_go_crypto() {
    // Digests of "abc": FIPS 180 test vectors; adler32 from hash/adler32.
    assert_eq!(
        r(r#"{{ "abc" | sha1sum }}"#),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        r(r#"{{ "abc" | sha256sum }}"#),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(r(r#"{{ "abc" | sha512sum }}"#).starts_with("ddaf35a193617aba"));
    assert_eq!(r(r#"{{ "Wikipedia" | adler32sum }}"#), "300286872");
}

#[test]
fn list_and_dict_functions_follow_sprig_list_and_dict_go() {
    assert_eq!(
        r(r#"{{ list 1 2 3 | first }} {{ list 1 2 3 | last }}"#),
        "1 3"
    );
    assert_eq!(r(r#"{{ list | first }}"#), "<no value>");
    assert_eq!(
        r(r#"{{ list 1 2 3 | rest | toJson }} {{ list 1 2 3 | initial | toJson }}"#),
        "[2,3] [1,2]"
    );
    assert_eq!(r(r#"{{ list 1 1 2 | uniq | toJson }}"#), "[1,2]");
    assert_eq!(r(r#"{{ append (list 1 2) 3 | toJson }}"#), "[1,2,3]");
    assert_eq!(r(r#"{{ prepend (list 2) 1 | toJson }}"#), "[1,2]");
    assert_eq!(r(r#"{{ list 1 2 3 | reverse | toJson }}"#), "[3,2,1]");
    assert_eq!(r(r#"{{ without (list 1 2 3) 2 | toJson }}"#), "[1,3]");
    assert_eq!(
        r(r#"{{ has 2 (list 1 2) }} {{ has "2" (list 1 2) }}"#),
        "true false"
    );
    assert_eq!(r(r#"{{ slice (list 1 2 3 4) 1 3 | toJson }}"#), "[2,3]");
    assert_eq!(r(r#"{{ concat (list 1) (list 2 3) | toJson }}"#), "[1,2,3]");
    assert_eq!(r(r#"{{ chunk 2 (list 1 2 3) | toJson }}"#), "[[1,2],[3]]");
    assert_eq!(r(r#"{{ compact (list 1 "" 0 2) | toJson }}"#), "[1,2]");
    let d = r#"(dict "a" 1 "b" 2)"#;
    assert_eq!(
        r(&format!("{{{{ get {d} \"a\" }}}}|{{{{ get {d} \"z\" }}}}")),
        "1|"
    );
    assert_eq!(r(&format!("{{{{ hasKey {d} \"b\" }}}}")), "true");
    assert_eq!(r(&format!("{{{{ keys {d} | toJson }}}}")), r#"["a","b"]"#);
    assert_eq!(r(&format!("{{{{ values {d} | toJson }}}}")), "[1,2]");
    assert_eq!(
        r(&format!("{{{{ set {d} \"c\" 3 | toJson }}}}")),
        r#"{"a":1,"b":2,"c":3}"#
    );
    assert_eq!(
        r(&format!("{{{{ unset {d} \"a\" | toJson }}}}")),
        r#"{"b":2}"#
    );
    assert_eq!(
        r(&format!("{{{{ pick {d} \"a\" | toJson }}}}")),
        r#"{"a":1}"#
    );
    assert_eq!(
        r(&format!("{{{{ omit {d} \"a\" | toJson }}}}")),
        r#"{"b":2}"#
    );
    assert_eq!(
        r(&format!(
            "{{{{ pluck \"a\" {d} (dict \"a\" 9) | toJson }}}}"
        )),
        "[1,9]"
    );
    // mergo.Merge keeps dst values; MergeWithOverwrite replaces them.
    assert_eq!(
        r(r#"{{ merge (dict "a" 1) (dict "a" 2 "b" 3) | toJson }}"#),
        r#"{"a":1,"b":3}"#
    );
    assert_eq!(
        r(r#"{{ mergeOverwrite (dict "a" 1) (dict "a" 2) | toJson }}"#),
        r#"{"a":2}"#
    );
    assert_eq!(
        r(r#"{{ dig "a" "b" "def" (dict "a" (dict "b" "x")) }}"#),
        "x"
    );
    assert_eq!(
        r(r#"{{ dig "a" "z" "def" (dict "a" (dict "b" "x")) }}"#),
        "def"
    );
    // dict with an odd count: the last key maps to "".
    assert_eq!(r(r#"{{ dict "a" | toJson }}"#), r#"{"a":""}"#);
    assert!(fails(r#"{{ first 5 }}"#).contains("Cannot find first on type int"));
}

#[test]
fn math_functions_follow_sprig_numeric_go() {
    assert_eq!(
        r(r#"{{ add 1 2 "3" }} {{ sub 5 2 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }}"#),
        "6 3 24 3 1"
    );
    assert_eq!(r(r#"{{ max 1 5 3 }} {{ min 4 2 }} {{ add1 1 }}"#), "5 2 2");
    assert_eq!(
        r(r#"{{ atoi "42" }} {{ atoi "x" }} {{ int "0x10" }} {{ int64 "3.0" }}"#),
        "42 0 16 3"
    );
    assert_eq!(
        r(r#"{{ float64 "1.5" }} {{ addf 0.1 0.2 }} {{ round 3.14159 2 }}"#),
        "1.5 0.3 3.14"
    );
    assert_eq!(
        r(r#"{{ until 3 | toJson }} {{ untilStep 0 10 4 | toJson }} {{ until -2 | toJson }}"#),
        "[0,1,2] [0,4,8] [0,-1]"
    );
    // sprig seq: like the shell's seq.
    assert_eq!(
        r(r#"{{ seq 3 }}|{{ seq 2 4 }}|{{ seq 0 2 6 }}|{{ seq 3 1 }}"#),
        "1 2 3|2 3 4|0 2 4 6|3 2 1"
    );
    assert!(fails("{{ div 1 0 }}").contains("integer divide by zero"));
    assert_eq!(r(r#"{{ toDecimal "0777" }}"#), "511");
}

#[test]
fn regex_functions_follow_go_regexp() {
    assert_eq!(
        r(r#"{{ regexMatch "^[a-z]+$" "abc" }} {{ regexMatch "(" "x" }}"#),
        "true false"
    );
    assert_eq!(r(r#"{{ regexFind "[0-9]+" "ab12cd34" }}"#), "12");
    assert_eq!(
        r(r#"{{ regexFindAll "[0-9]+" "ab12cd34" -1 | toJson }}"#),
        r#"["12","34"]"#
    );
    assert_eq!(
        r(r#"{{ regexFindAll "[0-9]+" "ab12cd34" 1 | toJson }}"#),
        r#"["12"]"#
    );
    // regexp.ReplaceAllString expands $1; the literal form does not.
    assert_eq!(
        r(r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}"#),
        "-W-xxW-"
    );
    assert_eq!(
        r(r#"{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}"#),
        "-${1}-${1}-"
    );
    // regexp.Split doc example: s := regexp.MustCompile("a*").Split("abaabaccadaaae", 5)
    // // s: ["", "b", "b", "c", "cadaaae"]
    assert_eq!(
        r(r#"{{ regexSplit "a*" "abaabaccadaaae" 5 | toJson }}"#),
        r#"["","b","b","c","cadaaae"]"#
    );
    assert_eq!(r(r#"{{ regexQuoteMeta "1.5-2.0?" }}"#), r"1\.5-2\.0\?");
    assert!(fails(r#"{{ regexFind "(" "x" }}"#).contains("regexFind"));
}

#[test]
fn regex_functions_read_patterns_and_replacements_as_go_does() {
    // The same pattern means the same as in find.name.regexp and rewrite (secret_sync_gosem):
    // Go's `\d` and `\w` are ASCII, where the regex crate's are Unicode.
    assert_eq!(
        r(r#"{{ regexMatch "^\\d$" "٣" }} {{ regexMatch "^\\d$" "3" }}"#),
        "false true"
    );
    assert_eq!(
        r(r#"{{ regexFindAll "\\w+" "é-ab-1" -1 | toJson }}"#),
        r#"["ab","1"]"#
    );
    assert_eq!(r(r#"{{ regexFind "[[]." "a[b" }}"#), "[b");
    // Go's Expand: `$01` is the (missing) group named "01", so empty; the regex crate's expand
    // reads group 1. `$1a` is the missing group "1a"; `${1}a` is group 1 then "a".
    assert_eq!(
        r(r#"{{ regexReplaceAll "(a)(b)" "ab" "[$01][$1a][${1}a][$$1]" }}"#),
        "[][][aa][$1]"
    );
    assert_eq!(
        r(r#"{{ regexReplaceAll "(?P<first>\\w)" "é1" "<$first>" }}"#),
        "é<1>"
    );
    assert_eq!(r(r#"{{ mustRegexReplaceAll "\\d" "٣3" "x" }}"#), "٣x");
    // Go's replace loop: no empty match right after a match.
    assert_eq!(r(r#"{{ regexReplaceAll "a*" "baaac" "X" }}"#), "XbXcX");
}

#[test]
fn printf_and_print_follow_go_fmt() {
    assert_eq!(
        r(r#"{{ printf "%s-%d-%v-%q-%x" "a" 42 true "b" 255 }}"#),
        r#"a-42-true-"b"-ff"#
    );
    assert_eq!(r(r#"{{ printf "%05.1f" 3.14159 }}"#), "003.1");
    // fmt.Sprint: a space only between operands when neither is a string.
    assert_eq!(r(r#"{{ print 1 2 "a" 3 }}"#), "1 2a3");
    assert_eq!(r(r#"{{ println "a" 1 }}"#), "a 1\n");
    assert_eq!(r(r#"{{ "a b&c" | urlquery }}"#), "a+b%26c");
    assert_eq!(r(r#"{{ html "<a>" }}"#), "&lt;a&gt;");
}

#[test]
fn path_and_reflection_functions_follow_go() {
    assert_eq!(
        r(
            r#"{{ base "/a/b.txt" }} {{ dir "/a/b.txt" }} {{ ext "b.tar.gz" }} {{ clean "a//b/../c" }} {{ isAbs "/x" }}"#
        ),
        "b.txt /a .gz a/c true"
    );
    assert_eq!(
        r(
            r#"{{ typeOf 1 }} {{ kindOf (list) }} {{ typeIs "string" "x" }} {{ kindIs "map" (dict) }}"#
        ),
        "int slice true true"
    );
    assert_eq!(r(r#"{{ deepEqual (list 1) (list 1) }}"#), "true");
    assert!(fails(r#"{{ fail "stop here" }}"#).contains("stop here"));
}

#[test]
fn dates_format_with_go_layouts() {
    assert_eq!(r(r#"{{ date "2006-01-02 15:04" 0 }}"#), "1970-01-01 00:00");
    assert_eq!(r(r#"{{ dateInZone "15:04 MST" 0 "UTC" }}"#), "00:00 UTC");
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "2017-12-31" | unixEpoch }}"#),
        "1514678400"
    );
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "2017-12-31" | date "Jan 2, 2006" }}"#),
        "Dec 31, 2017"
    );
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "2017-12-31" | dateModify "1h30m" | date "15:04" }}"#),
        "01:30"
    );
    assert_eq!(r(r#"{{ duration "95" }}"#), "1m35s");
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "nope" }}"#),
        "0001-01-01 00:00:00 +0000 UTC"
    );
    assert!(!r("{{ now }}").is_empty());
}

#[test]
fn random_functions_have_the_requested_shape() {
    let v = r("{{ randAlphaNum 16 }}");
    assert_eq!(v.len(), 16);
    assert!(v.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(r("{{ randNumeric 8 }}").bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(r("{{ randAlpha 5 }}").len(), 5);
    assert_eq!(r("{{ randAscii 5 }}").len(), 5);
    assert_eq!(r("{{ randBytes 3 }}").len(), 4);
    let u = r("{{ uuidv4 }}");
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4");
    assert_ne!(r("{{ uuidv4 }}"), u);
    let n: i64 = r("{{ randInt 5 10 }}")
        .parse()
        .expect("test input is valid");
    assert!((5..10).contains(&n));
}

#[test]
fn removed_functions_are_not_defined() {
    // ESO deletes env and expandenv from sprig, and getHostByName (TestFuncMapDoesNotExposeGetHostByName).
    for f in ["env", "expandenv", "getHostByName"] {
        assert!(fails(&format!("{{{{ {f} \"x\" }}}}")).contains(f), "{f}");
    }
}

#[test]
fn typed_parameters_reject_the_wrong_type_as_text_template_does() {
    assert!(fails("{{ upper 5 }}").contains("expected string; got int"));
    assert!(fails(r#"{{ repeat "x" "y" }}"#).contains("expected int"));
    assert!(fails("{{ b64enc }}").contains("wrong number of args for b64enc"));
}

#[test]
fn data_values_are_strings_keyed_as_in_eso() {
    assert_eq!(rd("{{ .a }}-{{ len .a }}", &[("a", "héllo")]), "héllo-6");
    assert_eq!(
        rd(
            "{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}",
            &[("b", "2"), ("a", "1")]
        ),
        "a=1;b=2;"
    );
}
