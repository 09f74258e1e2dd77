//! Go's `regexp`, the one meaning of every pattern ESO's users write: `find.name.regexp` when
//! fetching and when matching change events, `rewrite[].regexp`, PushSecret `dataTo` matches
//! and rewrites, ClusterSecretStore `namespaceRegexes`, and the templates' `regex*` functions.
//!
//! Both Go and the `regex` crate implement RE2 syntax with leftmost-first matching, so most
//! patterns mean the same. [`GoRegexp::new`] translates the differences that change results:
//!
//! - Go's `\d`, `\w`, `\s`, `\b` and their negations are ASCII-only; the crate's are Unicode.
//!   They become explicit ASCII classes (`\s` is Go's `[\t\n\f\r ]`, without `\v`).
//! - Go's `\Q...\E` literal quoting is expanded (the crate has no such syntax).
//! - Inside a class, Go reads `[`, `&&`, `--` and `~~` literally; the crate reads nested classes
//!   and set operations. `[` (other than `[:name:]`), `&` and `~` are escaped.
//!
//! What remains different: the crate accepts a few things Go refuses (`\<`, `\b{start}`,
//! repetition counts above 1000, `--` class difference), and `(?i)` folding follows each
//! engine's Unicode tables. Replacing, finding all matches and splitting follow Go's loops
//! (its rule for empty matches next to a previous match), and replacement templates follow
//! Go's `Expand` (see [`GoRegexp::replace_all`]), not the crate's, whose `$name` rules differ
//! (`$01`, non-ASCII names, `${a-b}`).

mod syntax;

use std::convert::Infallible;

use regex::{Captures, Match, Regex, RegexBuilder};

pub use regex::Error;

/// A compiled Go regular expression.
#[derive(Clone, Debug)]
pub struct GoRegexp {
    re: Regex,
    /// The pattern as the user wrote it (Go's `Regexp.String`).
    pattern: String,
}

/// What replaces each match.
#[derive(Clone, Copy, Debug)]
pub enum Replacement<'a> {
    /// Go's `ReplaceAllString`: `$1`, `${1}`, `$name` and `${name}` expand to groups, `$$` is
    /// a `$`.
    Expand(&'a str),
    /// Go's `ReplaceAllLiteralString`: the text as is.
    Literal(&'a str),
}

impl GoRegexp {
    /// Compiles a Go (RE2) pattern, as Go's `regexp.Compile`.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        Self::build(pattern, None)
    }

    /// [`GoRegexp::new`], refusing patterns whose compiled program exceeds `bytes` (for
    /// callers that bound what a user's input may cost).
    pub fn with_size_limit(pattern: &str, bytes: usize) -> Result<Self, Error> {
        Self::build(pattern, Some(bytes))
    }

    fn build(pattern: &str, size_limit: Option<usize>) -> Result<Self, Error> {
        let mut builder = RegexBuilder::new(&syntax::translate(pattern));
        if let Some(bytes) = size_limit {
            builder.size_limit(bytes);
        }
        builder.build().map(|re| Self {
            re,
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as written (Go's `Regexp.String`).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Go's `MatchString`: whether the pattern matches anywhere in `s` (unanchored).
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// Go's `FindString`: the leftmost match, if any.
    pub fn find<'s>(&self, s: &'s str) -> Option<&'s str> {
        self.re.find(s).map(|m| m.as_str())
    }

    /// Go's `FindAllString(s, -1)` as an iterator: successive non-overlapping matches, an
    /// empty match right after the previous match skipped. `take(n)` is Go's `n`.
    pub fn find_iter<'s>(&self, s: &'s str) -> impl Iterator<Item = Match<'s>> {
        let mut pos = 0;
        let mut previous_end = None;
        std::iter::from_fn(move || {
            while pos <= s.len() {
                let m = self.re.find_at(s, pos)?;
                let accept = if m.is_empty() && m.end() == pos {
                    // An empty match: never right after the previous match; then move on by
                    // one character.
                    let accept = previous_end != Some(m.start());
                    pos += s[pos..].chars().next().map_or(1, char::len_utf8);
                    accept
                } else {
                    pos = m.end();
                    true
                };
                previous_end = Some(m.end());
                if accept {
                    return Some(m);
                }
            }
            None
        })
    }

    /// Go's `Split(s, n)`: the text between matches; at most `n` pieces when `n` is positive
    /// (the last piece is the unsplit rest), none when it is zero, all when negative.
    pub fn split<'s>(&self, s: &'s str, n: i64) -> Vec<&'s str> {
        if n == 0 {
            return Vec::new();
        }
        if !self.pattern.is_empty() && s.is_empty() {
            return vec![""];
        }
        let limit = usize::try_from(n).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let (mut begin, mut end) = (0, 0);
        for m in self.find_iter(s).take(limit) {
            if n > 0 && out.len() == limit - 1 {
                break;
            }
            end = m.start();
            if m.end() != 0 {
                out.push(&s[begin..end]);
            }
            begin = m.end();
        }
        if end != s.len() {
            out.push(&s[begin..]);
        }
        out
    }

    /// Go's `ReplaceAllString`: every match replaced by `template`, in which `$1`, `${1}`,
    /// `$name` and `${name}` expand to capture groups and `$$` is a literal `$`.
    pub fn replace_all(&self, src: &str, template: &str) -> String {
        self.unbounded(src, Replacement::Expand(template))
    }

    /// Go's `ReplaceAllLiteralString`: every match replaced by `replacement` as is.
    pub fn replace_all_literal(&self, src: &str, replacement: &str) -> String {
        self.unbounded(src, Replacement::Literal(replacement))
    }

    fn unbounded(&self, src: &str, with: Replacement<'_>) -> String {
        match self.try_replace_all(src, with, |_| Ok::<(), Infallible>(())) {
            Ok(out) => out,
            Err(never) => match never {},
        }
    }

    /// [`GoRegexp::replace_all`] or [`GoRegexp::replace_all_literal`], calling `check` with
    /// the output's length after each replacement and stopping at its first error (for callers
    /// that bound their output: an empty match can multiply the input).
    pub fn try_replace_all<E>(
        &self,
        src: &str,
        with: Replacement<'_>,
        mut check: impl FnMut(usize) -> Result<(), E>,
    ) -> Result<String, E> {
        self.replace_with(src, |out, caps| {
            match with {
                Replacement::Expand(template) => self.expand(out, template, caps),
                Replacement::Literal(text) => out.push_str(text),
            }
            check(out.len())
        })
    }

    /// Go's `Regexp.replaceAll` loop, including its rule that an empty match right after the
    /// previous match is not replaced (`a*` on `baaac` gives `XbXcX`).
    fn replace_with<E>(
        &self,
        src: &str,
        mut replace: impl FnMut(&mut String, &Captures<'_>) -> Result<(), E>,
    ) -> Result<String, E> {
        let mut out = String::with_capacity(src.len());
        let mut last_match_end = 0;
        let mut search_pos = 0;
        while search_pos <= src.len() {
            let Some(caps) = self.re.captures_at(src, search_pos) else {
                break;
            };
            let Some(m) = caps.get(0) else {
                break;
            };
            out.push_str(&src[last_match_end..m.start()]);
            if m.end() > last_match_end || m.start() == 0 {
                replace(&mut out, &caps)?;
            }
            last_match_end = m.end();
            // Advance past this match; always advance at least one character.
            let width = src[search_pos..].chars().next().map_or(0, char::len_utf8);
            if search_pos + width > m.end() {
                search_pos += width;
            } else if search_pos + 1 > m.end() {
                // Only at the end of the input, where `width` is 0.
                search_pos += 1;
            } else {
                search_pos = m.end();
            }
        }
        out.push_str(&src[last_match_end..]);
        Ok(out)
    }

    /// Go's `Regexp.expand`.
    fn expand(&self, out: &mut String, template: &str, caps: &Captures<'_>) {
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                out.push('$');
                rest = after;
                continue;
            }
            let Some((name, number, after)) = extract_reference(rest) else {
                // Malformed: the `$` is kept as text.
                out.push('$');
                continue;
            };
            rest = after;
            let group = match number {
                Some(n) => caps.get(n),
                None => self
                    .re
                    .capture_names()
                    .position(|n| n == Some(name))
                    .and_then(|i| caps.get(i)),
            };
            if let Some(m) = group {
                out.push_str(m.as_str());
            }
        }
        out.push_str(rest);
    }
}

/// Go's `regexp.QuoteMeta`: `s` with every metacharacter (`\.+*?()|[]{}^$`) escaped, so the
/// result matches `s` literally.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `extract`: reads `name` or `{name}` after a `$`. A name is a run of letters, digits
/// and `_`; it is a group number when it is all ASCII digits without a leading zero.
fn extract_reference(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = if brace {
        body[end..].strip_prefix('}')?
    } else {
        &body[end..]
    };
    let number = if name.bytes().all(|b| b.is_ascii_digit())
        && (name.len() == 1 || !name.starts_with('0'))
        && name.len() <= 8
    {
        name.parse().ok()
    } else {
        None
    };
    Some((name, number, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(pattern: &str) -> GoRegexp {
        match GoRegexp::new(pattern) {
            Ok(re) => re,
            Err(e) => panic!("{pattern:?}: {e}"),
        }
    }

    #[test]
    fn replace_all_matches_gos_empty_match_rules() {
        assert_eq!(re("a*").replace_all("baaac", "X"), "XbXcX");
        assert_eq!(re("").replace_all("abc", "-"), "-a-b-c-");
        assert_eq!(re("x*").replace_all("", "-"), "-");
        assert_eq!(re("b*").replace_all("abc", "X"), "XaXcX");
    }

    #[test]
    fn expand_follows_gos_template_rules() {
        let r = re(r"(?P<first>\w+)-(\w+)");
        assert_eq!(r.replace_all("ab-cd", "${2}_$1"), "cd_ab");
        // `_` is part of a name: `$2_` is the group named "2_", which does not exist (Go's
        // well-known pitfall, kept).
        assert_eq!(r.replace_all("ab-cd", "$2_$1"), "ab");
        assert_eq!(r.replace_all("ab-cd", "${2}x${first}"), "cdxab");
        // `$1x` is the group named "1x", which does not exist: empty.
        assert_eq!(r.replace_all("ab-cd", "$1x"), "");
        assert_eq!(r.replace_all("ab-cd", "$$1"), "$1");
        // Malformed references keep the `$`.
        assert_eq!(r.replace_all("ab-cd", "$-${"), "$-${");
        assert_eq!(r.replace_all("ab-cd", "${first"), "${first");
        assert_eq!(r.replace_all("ab-cd", "${a-b}"), "${a-b}");
        // A leading zero makes a name, not a number.
        assert_eq!(r.replace_all("ab-cd", "[$01]"), "[]");
        // Out-of-range groups and unknown names are empty.
        assert_eq!(r.replace_all("ab-cd", "[$9][$nope]"), "[][]");
        assert_eq!(r.replace_all("ab-cd", "$first$"), "ab$");
    }

    // ESO: runtime/esutils/utils_test.go TestRewrite (regexp cases).
    #[test]
    fn esos_rewrite_examples_replace_as_in_go() {
        assert_eq!(re("db/(.*)").replace_all("db/a", "$1"), "a");
        assert_eq!(re("-").replace_all("foo-bar", "_"), "foo_bar");
        assert_eq!(
            re("^my/initial/path/").replace_all("my/initial/path/foo", ""),
            "foo"
        );
        assert_eq!(
            re("f(.*)o").replace_all("foodaloo", "a_new_path_$1"),
            "a_new_path_oodalo"
        );
        assert_eq!(
            re("f(?P<content>.*)o").replace_all("floo", "a_new_path_${content}_${1}"),
            "a_new_path_lo_lo"
        );
        assert_eq!(
            re("my/(.*?)/bar/(.*)").replace_all("my/app/bar/password", "$1-$2"),
            "app-password"
        );
        assert_eq!(re("ass").replace_all("app_password", "***"), "app_p***word");
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert!(!re(r"^\d$").is_match("٣"));
        assert!(re(r"^\d$").is_match("3"));
        assert!(!re(r"^\w+$").is_match("é"));
        assert!(re(r"^\W$").is_match("é"));
        assert!(!re(r"^\s$").is_match("\u{b}"));
        assert!(re(r"^[\d_]+$").is_match("1_2"));
        assert!(re(r"^[\D]$").is_match("é"));
        assert_eq!(re(r"\b").replace_all("é a", "|"), "é |a|");
    }

    #[test]
    fn class_syntax_go_reads_literally_stays_literal() {
        assert!(re(r"^[[]$").is_match("["));
        assert!(re(r"^[a&&b]+$").is_match("a&b"));
        assert!(re(r"^[~~]$").is_match("~"));
        assert!(re(r"^[]a]+$").is_match("]a"));
        assert!(re(r"^[^]a]$").is_match("b"));
        assert!(re(r"^[[:alpha:]]+$").is_match("abc"));
        assert!(!re(r"^[[:alpha:]]+$").is_match("a1"));
    }

    #[test]
    fn quoted_literals_are_supported() {
        assert!(re(r"^\Qa.b*\E$").is_match("a.b*"));
        assert!(!re(r"^\Qa.b\E$").is_match("axb"));
        assert!(re(r"^\Qa.b").is_match("a.b"));
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert!(GoRegexp::new("(").is_err());
        assert!(GoRegexp::new("[a").is_err());
        assert!(GoRegexp::new(r"\").is_err());
    }

    // Go's regexp package examples (ExampleRegexp_FindAllString, ExampleRegexp_Split).
    #[test]
    fn find_iter_follows_gos_find_all() {
        let all = |pattern: &str, s: &str| -> Vec<String> {
            re(pattern)
                .find_iter(s)
                .map(|m| m.as_str().to_owned())
                .collect()
        };
        assert_eq!(all("a.", "paranormal"), ["ar", "an", "al"]);
        assert_eq!(all("a.", "graal"), ["aa"]);
        assert!(all("a.", "none").is_empty());
        assert_eq!(all("a*", "baaac"), ["", "aaa", ""]);
        assert_eq!(all("", "é"), ["", ""]);
        assert_eq!(all(r"\d+", "1٣2"), ["1", "2"]);
        assert_eq!(re("a.").find("paranormal"), Some("ar"));
    }

    #[test]
    fn split_follows_gos_split() {
        assert_eq!(
            re("a*").split("abaabaccadaaae", 5),
            ["", "b", "b", "c", "cadaaae"]
        );
        assert_eq!(re("a").split("banana", -1), ["b", "n", "n", ""]);
        assert!(re("a").split("apple", 0).is_empty());
        assert_eq!(re("a").split("grape", 1), ["grape"]);
        assert_eq!(re("z+").split("pizza", 2), ["pi", "a"]);
        assert_eq!(re("a").split("", -1), [""]);
        assert!(re("").split("", -1).is_empty());
    }

    #[test]
    fn quote_meta_escapes_what_go_escapes() {
        assert_eq!(
            quote_meta(r"Escaping $5 [a-z]+.\ é"),
            r"Escaping \$5 \[a-z\]\+\.\\ é"
        );
        assert!(re(&quote_meta("a.b*")).is_match("xa.b*y"));
    }

    #[test]
    fn a_bounded_replacement_stops_at_the_first_refusal() {
        let r = re("");
        let mut calls = 0;
        let result = r.try_replace_all("aaaa", Replacement::Expand("xx"), |len| {
            calls += 1;
            if len > 4 { Err(len) } else { Ok(()) }
        });
        assert_eq!(result, Err(5));
        assert_eq!(calls, 2);
        let ok = r.try_replace_all("ab", Replacement::Literal("$1"), |_| Ok::<(), ()>(()));
        assert_eq!(ok.as_deref(), Ok("$1a$1b$1"));
    }

    #[test]
    fn the_pattern_is_kept_as_written() {
        assert_eq!(re(r"\d[[]").as_str(), r"\d[[]");
        assert!(GoRegexp::with_size_limit("a{100}{100}{100}", 1 << 10).is_err());
    }

    #[test]
    fn literal_replacement_does_not_expand() {
        assert_eq!(re("a").replace_all_literal("aba", "$1"), "$1b$1");
    }
}
