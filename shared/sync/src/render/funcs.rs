//! The Go template engine for `rewrite[].transform`, and the functions it offers.
//!
//! ESO parses transform templates with `text/template` and its full template function map
//! (sprig's plus its own; R: `runtime/esutils/utils.go` `RewriteTransform`,
//! `runtime/template/v2`). Key names need few of them, so this is a small subset with sprig's
//! signatures (the piped value comes last: `{{ .value | replace "-" "_" }}`). This is the one
//! place templates are built: swap [`key_template`] for the full engine when `shared/template`
//! lands.

use std::sync::Arc;

use gotmpl::{FuncMap, Template, TemplateError, Value};

use secret_sync_gosem::GoRegexp;

/// Parses a transform template with the key functions registered.
pub(crate) fn key_template(source: &str) -> Result<Template, TemplateError> {
    Template::new("transform").funcs(functions()).parse(source)
}

/// Renders `template` for one key: `.value` is the key.
pub(crate) fn render_key(template: &Template, key: &str) -> Result<String, TemplateError> {
    let data = Value::from_entries([("value".to_owned(), Value::String(key.into()))]);
    template.execute_to_string(&data)
}

/// The functions, by name.
fn functions() -> FuncMap {
    let mut map = FuncMap::new();
    let mut add = |name: &str, f: fn(&str, &[Value]) -> Result<Value, TemplateError>| {
        let owned = name.to_owned();
        map.insert(
            owned.clone(),
            Arc::new(move |args: &[Value]| f(&owned, args)),
        );
    };
    add("upper", |name, args| {
        let [s] = strings::<1>(name, args)?;
        Ok(string(s.to_uppercase()))
    });
    add("lower", |name, args| {
        let [s] = strings::<1>(name, args)?;
        Ok(string(s.to_lowercase()))
    });
    add("replace", |name, args| {
        let [old, new, s] = strings::<3>(name, args)?;
        Ok(string(s.replace(old, new)))
    });
    add("trim", |name, args| {
        let [s] = strings::<1>(name, args)?;
        Ok(string(s.trim().to_owned()))
    });
    add("trimAll", |name, args| {
        let [cutset, s] = strings::<2>(name, args)?;
        Ok(string(s.trim_matches(|c| cutset.contains(c)).to_owned()))
    });
    add("trimPrefix", |name, args| {
        let [prefix, s] = strings::<2>(name, args)?;
        Ok(string(s.strip_prefix(prefix).unwrap_or(s).to_owned()))
    });
    add("trimSuffix", |name, args| {
        let [suffix, s] = strings::<2>(name, args)?;
        Ok(string(s.strip_suffix(suffix).unwrap_or(s).to_owned()))
    });
    add("contains", |name, args| {
        let [needle, s] = strings::<2>(name, args)?;
        Ok(Value::Bool(s.contains(needle)))
    });
    add("hasPrefix", |name, args| {
        let [prefix, s] = strings::<2>(name, args)?;
        Ok(Value::Bool(s.starts_with(prefix)))
    });
    add("hasSuffix", |name, args| {
        let [suffix, s] = strings::<2>(name, args)?;
        Ok(Value::Bool(s.ends_with(suffix)))
    });
    add("nospace", |name, args| {
        let [s] = strings::<1>(name, args)?;
        Ok(string(s.chars().filter(|c| !c.is_whitespace()).collect()))
    });
    add("regexReplaceAll", |name, args| {
        let [pattern, s, replacement] = strings::<3>(name, args)?;
        Ok(string(regexp(pattern)?.replace_all(s, replacement)))
    });
    add("regexReplaceAllLiteral", |name, args| {
        let [pattern, s, replacement] = strings::<3>(name, args)?;
        Ok(string(regexp(pattern)?.replace_all_literal(s, replacement)))
    });
    map
}

fn string(s: String) -> Value {
    Value::String(s.into())
}

fn regexp(pattern: &str) -> Result<GoRegexp, TemplateError> {
    GoRegexp::new(pattern).map_err(|e| TemplateError::Exec(format!("invalid regexp: {e}")))
}

/// The `N` arguments of `name`, all strings (sprig's functions take Go strings).
fn strings<'a, const N: usize>(
    name: &str,
    args: &'a [Value],
) -> Result<[&'a str; N], TemplateError> {
    if args.len() != N {
        return Err(TemplateError::ArgCount {
            name: name.to_owned(),
            expected: N,
            got: args.len(),
        });
    }
    let mut out = [""; N];
    for (slot, arg) in out.iter_mut().zip(args) {
        *slot = arg.as_str().ok_or_else(|| TemplateError::TypeMismatch {
            expected: "string",
            got: arg.type_name(),
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str, key: &str) -> Result<String, String> {
        let template = key_template(source).map_err(|e| e.to_string())?;
        render_key(&template, key).map_err(|e| e.to_string())
    }

    // ESO: runtime/esutils/utils_test.go TestRewrite "using transform rewrite operation to
    // create env var format keys".
    #[test]
    fn the_esos_env_var_example_renders() {
        assert_eq!(
            run(r#"{{ .value | upper | replace "-" "_" }}"#, "app-key").as_deref(),
            Ok("APP_KEY")
        );
    }

    #[test]
    fn each_function_behaves_like_sprigs() {
        let cases = [
            (r#"{{ .value | lower }}"#, "AbC", "abc"),
            (r#"{{ .value | trimPrefix "db/" }}"#, "db/pass", "pass"),
            (r#"{{ .value | trimSuffix ".json" }}"#, "cfg.json", "cfg"),
            (r#"{{ .value | trim }}"#, "  a b  ", "a b"),
            (r#"{{ .value | trimAll "/" }}"#, "//a/b//", "a/b"),
            (r#"{{ .value | nospace }}"#, " a b\tc ", "abc"),
            (
                r#"{{ if .value | hasPrefix "x" }}yes{{ else }}no{{ end }}"#,
                "xy",
                "yes",
            ),
            (
                r#"{{ if .value | hasSuffix "y" }}yes{{ else }}no{{ end }}"#,
                "xz",
                "no",
            ),
            (
                r#"{{ if .value | contains "b" }}yes{{ end }}"#,
                "abc",
                "yes",
            ),
            (
                r#"{{ regexReplaceAll "(a+)" .value "<$1>" }}"#,
                "baac",
                "b<aa>c",
            ),
            // Go's regexp: `\d` is ASCII ("٣" stays), `$01` is a missing group name.
            (
                r#"{{ regexReplaceAll "(\\d)" .value "$01<$1>" }}"#,
                "a٣1",
                "a٣<1>",
            ),
            (
                r#"{{ regexReplaceAllLiteral "a+" .value "$1" }}"#,
                "baac",
                "b$1c",
            ),
            (r#"prefix-{{ .value }}"#, "k", "prefix-k"),
        ];
        for (source, key, want) in cases {
            assert_eq!(run(source, key).as_deref(), Ok(want), "{source}");
        }
    }

    #[test]
    fn parse_and_execution_errors_are_reported() {
        assert!(key_template("{{ .value").is_err());
        // Go reports an unknown function when parsing; this engine when executing.
        assert!(run("{{ .value | nosuchfunction }}", "k").is_err());
        assert!(run("{{ upper 1 }}", "k").is_err());
        assert!(run(r#"{{ regexReplaceAll "(" .value "" }}"#, "k").is_err());
    }
}
