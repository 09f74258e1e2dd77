//! sprig's `semver` and `semverCompare`, a port of Masterminds/semver v3.4.0 (the version ESO's
//! go.mod pins): `NewVersion` (coercing: `v1`, `1.2`, `01.02.03` parse), `NewConstraint` and
//! `Constraints.Check`, with the same regular expressions (Go's `\s` written out as its
//! ASCII class).
//!
//! A `*semver.Version` has no template type here: `semver` returns a dict of what its methods
//! return, `Major`, `Minor`, `Patch` (uint64), `Prerelease`, `Metadata` and `Original`, so
//! `$v.Major` reads as in Go. Its other methods (`Compare`, `LessThan`, ...) are not callable,
//! and printing it prints the dict rather than Go's `1.2.3`. Messages leave out the version and
//! the constraint.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use gotmpl::Value;
use regex::Regex;

use super::{Args, R};

/// Go's `\s`.
const WS: &str = r"[\t\n\f\r ]";
const LOOSE: &str = r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

fn compile(pattern: String) -> Regex {
    Regex::new(&pattern).unwrap_or_else(|_| unreachable!("Masterminds/semver's patterns compile"))
}

static LOOSE_VERSION: LazyLock<Regex> = LazyLock::new(|| compile(format!("^{LOOSE}$")));
static CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| compile(format!(r"^{WS}*({OPS}){WS}*({CV}){WS}*$")));
static CONSTRAINT_RANGE: LazyLock<Regex> =
    LazyLock::new(|| compile(format!(r"{WS}*({CV}){WS}+-{WS}+({CV}){WS}*")));
static FIND_CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| compile(format!(r"({OPS}){WS}*({CV})")));
static VALID_CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| {
    compile(format!(
        r"^({WS}*({OPS}){WS}*({CV}){WS}*)((?:{WS}+|,{WS}*)({OPS}){WS}*({CV}){WS}*)*$"
    ))
});

const INVALID_PRERELEASE: &str = "invalid prerelease string";
const INVALID_METADATA: &str = "invalid metadata string";
const SEGMENT_STARTS_ZERO: &str = "version segment starts with 0";

/// A parsed version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    metadata: String,
    original: String,
}

const ALLOWED: fn(char) -> bool = |c| c.is_ascii_alphanumeric() || c == '-';

fn validate_prerelease(p: &str) -> Result<(), &'static str> {
    for part in p.split('.') {
        if part.is_empty() {
            return Err(INVALID_PRERELEASE);
        } else if part.chars().all(|c| c.is_ascii_digit()) {
            if part.len() > 1 && part.starts_with('0') {
                return Err(SEGMENT_STARTS_ZERO);
            }
        } else if !part.chars().all(ALLOWED) {
            return Err(INVALID_PRERELEASE);
        }
    }
    Ok(())
}

fn validate_metadata(m: &str) -> Result<(), &'static str> {
    if m.split('.')
        .any(|part| part.is_empty() || !part.chars().all(ALLOWED))
    {
        return Err(INVALID_METADATA);
    }
    Ok(())
}

/// `strconv.ParseUint(s, 10, 64)` of digits the pattern matched.
fn segment(digits: &str) -> Result<u64, String> {
    digits.parse().map_err(|_| {
        "error parsing version segment: strconv.ParseUint: value out of range".to_owned()
    })
}

impl Version {
    /// `semver.NewVersion` with `CoerceNewVersion` on (v3.4.0's default).
    pub(crate) fn parse(v: &str) -> Result<Self, String> {
        let Some(m) = LOOSE_VERSION.captures(v) else {
            return Err("invalid semantic version".to_owned());
        };
        let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
        let version = Self {
            major: segment(group(1))?,
            minor: match group(2) {
                "" => 0,
                g => segment(&g[1..])?,
            },
            patch: match group(3) {
                "" => 0,
                g => segment(&g[1..])?,
            },
            pre: group(5).to_owned(),
            metadata: group(8).to_owned(),
            original: v.to_owned(),
        };
        if !version.pre.is_empty() {
            validate_prerelease(&version.pre)?;
        }
        if !version.metadata.is_empty() {
            validate_metadata(&version.metadata)?;
        }
        Ok(version)
    }

    /// `Version.Compare`: precedence, metadata ignored.
    fn compare(&self, o: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &o.pre),
            })
    }

    /// What a template reads of a `*semver.Version`.
    fn to_value(&self) -> Value {
        let fields: BTreeMap<Arc<str>, Value> = [
            ("Major", Value::Uint(self.major)),
            ("Minor", Value::Uint(self.minor)),
            ("Patch", Value::Uint(self.patch)),
            ("Prerelease", Value::from(self.pre.as_str())),
            ("Metadata", Value::from(self.metadata.as_str())),
            ("Original", Value::from(self.original.as_str())),
        ]
        .into_iter()
        .map(|(k, v)| (Arc::from(k), v))
        .collect();
        Value::Map(Arc::new(fields))
    }
}

fn compare_prerelease(v: &str, o: &str) -> Ordering {
    let (s, t): (Vec<&str>, Vec<&str>) = (v.split('.').collect(), o.split('.').collect());
    for i in 0..s.len().max(t.len()) {
        let d = compare_pre_part(
            s.get(i).copied().unwrap_or(""),
            t.get(i).copied().unwrap_or(""),
        );
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

/// `comparePrePart`: numbers numerically and below words, words by bytes, a missing part
/// lowest.
fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => {
            if s > o {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(si), Ok(oi)) => {
            if si > oi {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

/// One comparison of a constraint.
#[derive(Debug)]
struct Constraint {
    con: Version,
    op: Op,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// `semver.Constraints`: alternatives (`||`) of conjunctions.
#[derive(Debug)]
pub(crate) struct Constraints {
    groups: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "*" | "X")
}

/// `parseConstraint`.
fn parse_constraint(c: &str) -> Result<Constraint, String> {
    if c.is_empty() {
        return Ok(Constraint {
            con: Version::parse("0.0.0")?,
            op: Op::TildeOrEqual,
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let Some(m) = CONSTRAINT.captures(c) else {
        return Err("improper constraint".to_owned());
    };
    let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
    let op = match group(1) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        _ => Op::Caret,
    };
    let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    let ver = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        (minor_dirty, dirty) = (true, true);
        format!("{major}.0.0{pre}")
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        (patch_dirty, dirty) = (true, true);
        format!("{major}{minor}.0{pre}")
    } else {
        group(2).to_owned()
    };
    let con = Version::parse(&ver).map_err(|_| "constraint parser error".to_owned())?;
    Ok(Constraint {
        con,
        op,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

/// `rewriteRange`: `1.2 - 1.4` is `>= 1.2, <= 1.4`.
fn rewrite_range(c: &str) -> String {
    let mut out = c.to_owned();
    let ranges: Vec<(String, String)> = CONSTRAINT_RANGE
        .captures_iter(c)
        .map(|m| {
            let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
            (
                group(0).to_owned(),
                format!(">= {}, <= {} ", group(1), group(11)),
            )
        })
        .collect();
    for (from, to) in ranges {
        out = out.replacen(&from, &to, 1);
    }
    out
}

impl Constraints {
    /// `semver.NewConstraint`.
    pub(crate) fn parse(c: &str) -> Result<Self, String> {
        let c = rewrite_range(c);
        let mut groups = Vec::new();
        for alternative in c.split("||") {
            if !VALID_CONSTRAINT.is_match(alternative) {
                return Err("improper constraint".to_owned());
            }
            let found: Vec<&str> = FIND_CONSTRAINT
                .find_iter(alternative)
                .map(|m| m.as_str())
                .collect();
            let found = if found.is_empty() {
                vec![alternative]
            } else {
                found
            };
            let mut conjunction = Vec::with_capacity(found.len());
            let mut has_pre = false;
            for s in found {
                let pc = parse_constraint(s)?;
                has_pre |= !pc.con.pre.is_empty();
                conjunction.push(pc);
            }
            groups.push((conjunction, has_pre));
        }
        Ok(Self { groups })
    }

    /// `Constraints.Check`: some alternative whose every comparison holds. A pre-release
    /// version only matches alternatives that name a pre-release.
    pub(crate) fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(conjunction, has_pre)| conjunction.iter().all(|c| c.check(v, *has_pre)))
    }
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    v.compare(c) == Ordering::Greater
                }
            }
            Op::Less => v.compare(c) == Ordering::Less,
            Op::GreaterEqual => v.compare(c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            Op::Caret => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    /// `constraintTilde`: same major, and same minor unless the minor was a wildcard.
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }
}

/// sprig's `semver(version)`.
pub(crate) fn semver(a: &Args) -> R {
    a.exactly(1)?;
    Ok(Version::parse(a.str(0)?)?.to_value())
}

/// sprig's `semverCompare(constraint, version)`.
pub(crate) fn semver_compare(a: &Args) -> R {
    a.exactly(2)?;
    let constraints = Constraints::parse(a.str(0)?)?;
    let version = Version::parse(a.str(1)?)?;
    Ok(Value::Bool(constraints.check(&version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(c: &str, v: &str) -> bool {
        let constraints = Constraints::parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        constraints.check(&Version::parse(v).unwrap_or_else(|e| panic!("{v}: {e}")))
    }

    #[test]
    fn versions_coerce_as_new_version_does() {
        let v = Version::parse("v1.2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 0));
        assert_eq!(v.original, "v1.2");
        assert!(Version::parse("01.02.03").is_ok());
        assert_eq!(
            Version::parse("1.2.3-01"),
            Err(SEGMENT_STARTS_ZERO.to_owned())
        );
        assert_eq!(
            Version::parse("1.2.3.4"),
            Err("invalid semantic version".to_owned())
        );
    }

    #[test]
    fn prereleases_order_below_their_release() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in order.windows(2) {
            let (a, b) = (Version::parse(w[0]), Version::parse(w[1]));
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a.compare(&b), Ordering::Less, "{w:?}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ranges_and_alternatives_read_as_masterminds_does() {
        // `1.1 - 2` is `>= 1.1, <= 2`, and `<= 2` takes every 2.x.
        assert!(holds("1.1 - 2", "2.1.0"));
        assert!(!holds("1.1 - 2", "3.0.0"));
        assert!(!holds("1.2 - 1.4.5", "1.4.6"));
        assert!(holds(">= 1.2, < 3.0", "2.9.9"));
        assert!(holds("<1.0 || >=2.0", "2.0.0"));
        assert!(!holds("<1.0 || >=2.0", "1.5.0"));
    }
}
