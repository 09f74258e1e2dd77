//! The function map: sprig's functions as ESO vendors them (without `env`, `expandenv` and
//! `getHostByName`), ESO's own, and bounded replacements for gotmpl's `print`, `printf`,
//! `println`, `html`, `js`, `urlquery` and `index` builtins.
//!
//! sprig's (ESO `runtime/template/v2/sprig/functions.go`), by module: strings, encodings,
//! hashes, paths ([`text`]); case conversions and `shuffle` ([`xstrings`], on [`unicode`]);
//! regular expressions ([`regexp`]); numbers ([`numeric`]); lists, dicts, defaults, JSON,
//! reflection ([`data`]); dates ([`date`]); passwords and AES ([`crypto`]); key and
//! certificate generators ([`certs`]); `semver`, `semverCompare` ([`semver`]); `urlParse`,
//! `urlJoin` ([`url`]).
//!
//! ESO's own (runtime/template/v2 `tplFuncs`): `toYaml`, `fromYaml`, `filterPEM`;
//! certificates: `filterCertChain`, `certSANs` ([`pki`]); PKCS#12: `pkcs12key`,
//! `pkcs12keyPass`, `pkcs12cert`, `pkcs12certPass`, `pemToPkcs12`, `pemToPkcs12Pass`,
//! `fullPemToPkcs12`, `fullPemToPkcs12Pass`, `pemTruststoreToPKCS12`,
//! `pemTruststoreToPKCS12Pass` ([`pki`]); keys: `jwkPublicKeyPem`, `jwkPrivateKeyPem`,
//! `rsaDecrypt` ([`keys`]). Keys come out as Go's x509 writes them (PKCS#8 `PRIVATE KEY`, PKIX
//! `PUBLIC KEY`), archives as go-pkcs12's Modern encoder settings, base64.
//!
//! Every function is wrapped: the call is counted against the budget, and the value it returns
//! must fit the value limit, so no loop can grow a value past it.

mod builtin;
mod certs;
mod crypto;
mod data;
mod date;
mod keys;
mod numeric;
mod pki;
mod regexp;
mod semver;
mod text;
mod unicode;
mod url;
mod xstrings;

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, Value, ValueFunc};

use crate::budget;
use crate::go;

/// A function's result: a value, or a message that never holds a value.
pub(crate) type R = Result<Value, String>;
type Func = fn(&Args) -> R;

/// A call's arguments, with Go's conversion rules for typed parameters.
pub(crate) struct Args<'a> {
    pub name: &'static str,
    pub v: &'a [Value],
}

impl Args<'_> {
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Exactly `want` arguments (text/template's arity check).
    pub fn exactly(&self, want: usize) -> Result<(), String> {
        if self.v.len() != want {
            return Err(format!(
                "wrong number of args for {}: want {want} got {}",
                self.name,
                self.v.len()
            ));
        }
        Ok(())
    }

    /// At least `want` arguments (a variadic function).
    pub fn at_least(&self, want: usize) -> Result<(), String> {
        if self.v.len() < want {
            return Err(format!(
                "wrong number of args for {}: want at least {want} got {}",
                self.name,
                self.v.len()
            ));
        }
        Ok(())
    }

    pub fn any(&self, i: usize) -> &Value {
        self.v.get(i).unwrap_or(&Value::Nil)
    }

    fn wrong(&self, i: usize, expected: &str) -> String {
        match self.any(i) {
            Value::Nil => format!("invalid value; expected {expected}"),
            v => format!(
                "wrong type for value; expected {expected}; got {}",
                go::type_name(v)
            ),
        }
    }

    /// A `string` parameter.
    pub fn str(&self, i: usize) -> Result<&str, String> {
        match self.any(i) {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(i, "string")),
        }
    }

    /// A `string` parameter as the bytes Go holds.
    pub fn bytes(&self, i: usize) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        self.str(i).map(crate::bytes::decode)
    }

    /// An `int` parameter: integers only, as text/template converts them.
    pub fn int(&self, i: usize) -> Result<i64, String> {
        match self.any(i) {
            Value::Int(n) => Ok(*n),
            Value::Uint(n) => i64::try_from(*n).map_err(|_| self.wrong(i, "int")),
            _ => Err(self.wrong(i, "int")),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, String> {
        match self.any(i) {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(i, "bool")),
        }
    }

    /// A `map[string]interface{}` parameter.
    pub fn map(&self, i: usize) -> Result<&Arc<BTreeMap<Arc<str>, Value>>, String> {
        match self.any(i) {
            Value::Map(m) => Ok(m),
            _ => Err(self.wrong(i, "map[string]interface {}")),
        }
    }
}

/// Every function, by template name.
const FUNCS: &[(&str, Func)] = &[
    // gotmpl builtins replaced by bounded versions.
    ("print", builtin::print),
    ("printf", builtin::printf),
    ("println", builtin::println),
    ("html", builtin::html),
    ("js", builtin::js),
    ("urlquery", builtin::urlquery),
    ("index", builtin::index),
    // Strings (sprig strings.go).
    ("abbrev", text::abbrev),
    ("abbrevboth", text::abbrevboth),
    ("trunc", text::trunc),
    ("trim", text::trim),
    ("upper", text::upper),
    ("lower", text::lower),
    ("title", text::title),
    ("untitle", text::untitle),
    ("substr", text::substr),
    ("repeat", text::repeat),
    ("trimall", text::trim_all),
    ("trimAll", text::trim_all),
    ("trimSuffix", text::trim_suffix),
    ("trimPrefix", text::trim_prefix),
    ("nospace", text::nospace),
    ("initials", text::initials),
    ("randAlphaNum", text::rand_alpha_num),
    ("randAlpha", text::rand_alpha),
    ("randAscii", text::rand_ascii),
    ("randNumeric", text::rand_numeric),
    ("randBytes", text::rand_bytes),
    ("swapcase", text::swapcase),
    ("shuffle", xstrings::shuffle),
    ("snakecase", xstrings::snakecase),
    ("camelcase", xstrings::camelcase),
    ("kebabcase", xstrings::kebabcase),
    ("contains", text::contains),
    ("hasPrefix", text::has_prefix),
    ("hasSuffix", text::has_suffix),
    ("quote", text::quote),
    ("squote", text::squote),
    ("cat", text::cat),
    ("indent", text::indent),
    ("nindent", text::nindent),
    ("replace", text::replace),
    ("plural", text::plural),
    ("sha1sum", text::sha1sum),
    ("sha256sum", text::sha256sum),
    ("sha512sum", text::sha512sum),
    ("adler32sum", text::adler32sum),
    ("toString", text::to_string),
    ("split", text::split),
    ("splitList", text::split_list),
    ("splitn", text::splitn),
    ("toStrings", text::to_strings),
    ("join", text::join),
    ("sortAlpha", text::sort_alpha),
    ("wrap", text::wrap),
    ("wrapWith", text::wrap_with),
    ("hello", data::hello),
    // Encoding.
    ("b64enc", text::b64enc),
    ("b64dec", text::b64dec),
    ("b32enc", text::b32enc),
    ("b32dec", text::b32dec),
    ("hexdec", text::hexdec),
    ("uuidv4", text::uuidv4),
    // Regular expressions: Go's regexp, as everywhere else users write patterns.
    ("regexMatch", regexp::regex_match),
    ("mustRegexMatch", regexp::must_regex_match),
    ("regexFindAll", regexp::regex_find_all),
    ("mustRegexFindAll", regexp::regex_find_all),
    ("regexFind", regexp::regex_find),
    ("mustRegexFind", regexp::regex_find),
    ("regexReplaceAll", regexp::regex_replace_all),
    ("mustRegexReplaceAll", regexp::regex_replace_all),
    ("regexReplaceAllLiteral", regexp::regex_replace_all_literal),
    (
        "mustRegexReplaceAllLiteral",
        regexp::regex_replace_all_literal,
    ),
    ("regexSplit", regexp::regex_split),
    ("mustRegexSplit", regexp::regex_split),
    ("regexQuoteMeta", regexp::regex_quote_meta),
    // Paths.
    ("base", text::path_base),
    ("dir", text::path_dir),
    ("ext", text::path_ext),
    ("isAbs", text::path_is_abs),
    ("clean", text::path_clean),
    // Filepaths: on Linux, where ESO runs, path/filepath is path.
    ("osBase", text::path_base),
    ("osClean", text::path_clean),
    ("osDir", text::path_dir),
    ("osExt", text::path_ext),
    ("osIsAbs", text::path_is_abs),
    // Numbers (sprig numeric.go, functions.go).
    ("atoi", numeric::atoi),
    ("int64", numeric::int64),
    ("int", numeric::int64),
    ("float64", numeric::float64),
    ("seq", numeric::seq),
    ("toDecimal", numeric::to_decimal),
    ("until", numeric::until),
    ("untilStep", numeric::until_step_fn),
    ("add1", numeric::add1),
    ("add", numeric::add),
    ("sub", numeric::sub),
    ("div", numeric::div),
    ("mod", numeric::modulo),
    ("mul", numeric::mul),
    ("randInt", numeric::rand_int),
    ("add1f", numeric::add1f),
    ("addf", numeric::addf),
    ("subf", numeric::subf),
    ("divf", numeric::divf),
    ("mulf", numeric::mulf),
    ("biggest", numeric::max),
    ("max", numeric::max),
    ("min", numeric::min),
    ("maxf", numeric::maxf),
    ("minf", numeric::minf),
    ("ceil", numeric::ceil),
    ("floor", numeric::floor),
    ("round", numeric::round),
    // Defaults, JSON, YAML (sprig defaults.go; ESO yaml.go).
    ("default", data::default),
    ("empty", data::empty),
    ("coalesce", data::coalesce),
    ("all", data::all),
    ("any", data::any),
    ("compact", data::compact),
    ("mustCompact", data::compact),
    ("fromJson", data::from_json),
    ("mustFromJson", data::must_from_json),
    ("toJson", data::to_json),
    ("mustToJson", data::must_to_json),
    ("toPrettyJson", data::to_pretty_json),
    ("mustToPrettyJson", data::must_to_pretty_json),
    ("toRawJson", data::must_to_raw_json),
    ("mustToRawJson", data::must_to_raw_json),
    ("toYaml", data::to_yaml),
    ("fromYaml", data::from_yaml),
    ("ternary", data::ternary),
    ("deepCopy", data::deep_copy),
    ("mustDeepCopy", data::deep_copy),
    ("typeOf", data::type_of),
    ("kindOf", data::kind_of),
    ("typeIs", data::type_is),
    ("typeIsLike", data::type_is_like),
    ("kindIs", data::kind_is),
    ("deepEqual", data::deep_equal),
    ("fail", data::fail),
    // Lists and dictionaries (sprig list.go, dict.go).
    ("tuple", data::list_fn),
    ("list", data::list_fn),
    ("dict", data::dict),
    ("get", data::get),
    ("set", data::set),
    ("unset", data::unset),
    ("hasKey", data::has_key),
    ("pluck", data::pluck),
    ("keys", data::keys),
    ("pick", data::pick),
    ("omit", data::omit),
    ("merge", data::merge),
    ("mustMerge", data::merge),
    ("mergeOverwrite", data::merge_overwrite),
    ("mustMergeOverwrite", data::merge_overwrite),
    ("values", data::values),
    ("dig", data::dig),
    ("append", data::push),
    ("push", data::push),
    ("mustAppend", data::push),
    ("mustPush", data::push),
    ("prepend", data::prepend),
    ("mustPrepend", data::prepend),
    ("first", data::first),
    ("mustFirst", data::first),
    ("rest", data::rest),
    ("mustRest", data::rest),
    ("last", data::last),
    ("mustLast", data::last),
    ("initial", data::initial),
    ("mustInitial", data::initial),
    ("reverse", data::reverse),
    ("mustReverse", data::reverse),
    ("uniq", data::uniq),
    ("mustUniq", data::uniq),
    ("without", data::without),
    ("mustWithout", data::without),
    ("has", data::has),
    ("mustHas", data::has),
    ("slice", data::slice),
    ("mustSlice", data::slice),
    ("concat", data::concat),
    ("chunk", data::chunk),
    ("mustChunk", data::chunk),
    // Dates (sprig date.go).
    ("now", date::now),
    ("date", date::date),
    ("dateInZone", date::date_in_zone),
    ("date_in_zone", date::date_in_zone),
    ("htmlDate", date::html_date),
    ("htmlDateInZone", date::html_date_in_zone),
    ("toDate", date::to_date),
    ("mustToDate", date::must_to_date),
    ("unixEpoch", date::unix_epoch),
    ("dateModify", date::date_modify),
    ("date_modify", date::date_modify),
    ("mustDateModify", date::must_date_modify),
    ("must_date_modify", date::must_date_modify),
    ("duration", date::duration),
    ("ago", date::ago),
    ("durationRound", date::duration_round),
    // Crypto (sprig crypto.go).
    ("bcrypt", crypto::bcrypt),
    ("htpasswd", crypto::htpasswd),
    ("derivePassword", crypto::derive_password),
    ("encryptAES", crypto::encrypt_aes),
    ("decryptAES", crypto::decrypt_aes),
    ("genPrivateKey", certs::gen_private_key),
    ("buildCustomCert", certs::build_custom_cert),
    ("genCA", certs::gen_ca),
    ("genCAWithKey", certs::gen_ca_with_key),
    ("genSelfSignedCert", certs::gen_self_signed_cert),
    (
        "genSelfSignedCertWithKey",
        certs::gen_self_signed_cert_with_key,
    ),
    ("genSignedCert", certs::gen_signed_cert),
    ("genSignedCertWithKey", certs::gen_signed_cert_with_key),
    // SemVer (sprig semver.go, Masterminds/semver).
    ("semver", semver::semver),
    ("semverCompare", semver::semver_compare),
    // URLs (sprig url.go).
    ("urlParse", url::url_parse),
    ("urlJoin", url::url_join),
    // ESO's own functions (runtime/template/v2/template.go `tplFuncs`).
    ("filterPEM", text::filter_pem),
    ("filterCertChain", pki::filter_cert_chain),
    ("certSANs", pki::cert_sans),
    ("pkcs12key", pki::pkcs12_key),
    ("pkcs12keyPass", pki::pkcs12_key_pass),
    ("pkcs12cert", pki::pkcs12_cert),
    ("pkcs12certPass", pki::pkcs12_cert_pass),
    ("pemToPkcs12", pki::pem_to_pkcs12),
    ("pemToPkcs12Pass", pki::pem_to_pkcs12_pass),
    ("fullPemToPkcs12", pki::full_pem_to_pkcs12),
    ("fullPemToPkcs12Pass", pki::full_pem_to_pkcs12_pass),
    ("pemTruststoreToPKCS12", pki::pem_truststore_to_pkcs12),
    (
        "pemTruststoreToPKCS12Pass",
        pki::pem_truststore_to_pkcs12_pass,
    ),
    ("jwkPublicKeyPem", keys::jwk_public_key_pem),
    ("jwkPrivateKeyPem", keys::jwk_private_key_pem),
    ("rsaDecrypt", keys::rsa_decrypt),
];

fn wrap(name: &'static str, f: Func) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        let fail = |msg: String| {
            let msg = if msg.starts_with("wrong ")
                || msg.starts_with("invalid value")
                || msg == budget::LIMIT_MESSAGE
            {
                msg
            } else {
                format!("error calling {name}: {msg}")
            };
            gotmpl::TemplateError::Exec(msg)
        };
        budget::on_call().map_err(fail)?;
        let value = f(&Args { name, v: args }).map_err(fail)?;
        budget::check_value(&value).map_err(fail)?;
        Ok(value)
    })
}

pub(crate) fn func_map() -> FuncMap {
    FUNCS
        .iter()
        .map(|(name, f)| ((*name).to_owned(), wrap(name, *f)))
        .collect()
}

pub(crate) fn names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = FUNCS.iter().map(|(n, _)| *n).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A byte-string result (Go's `string(bytes)`).
pub(crate) fn b(bytes: &[u8]) -> R {
    Ok(Value::from(crate::bytes::encode(bytes)))
}

/// A string result.
pub(crate) fn s(v: impl Into<String>) -> R {
    Ok(Value::from(v.into()))
}

/// A list result.
pub(crate) fn list(items: Vec<Value>) -> R {
    Ok(Value::List(items.into()))
}

/// A list of strings.
pub(crate) fn strings(items: impl IntoIterator<Item = String>) -> R {
    list(items.into_iter().map(Value::from).collect())
}

/// The elements of a slice-kind argument, or Go's `Cannot <verb> on type <kind>` error.
pub(crate) fn elements<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], String> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(format!("Cannot {what} type {}", go::kind(other))),
    }
}
