//! Go `regexp` semantics on top of the `regex` crate: what ESO's `rewrite.regexp` (and
//! `find.name.regexp`) users wrote for Go must mean the same here.
//!
//! Both engines implement RE2 syntax with leftmost-first matching, so most patterns mean the
//! same. [`GoRegexp::new`] translates the differences that change results:
//!
//! - Go's `\d`, `\w`, `\s`, `\b` and their negations are ASCII-only; the crate's are Unicode.
//!   They become explicit ASCII classes (`\s` is Go's `[\t\n\f\r ]`, without `\v`).
//! - Go's `\Q...\E` literal quoting is expanded (the crate has no such syntax).
//! - Inside a class, Go reads `[`, `&&`, `--` and `~~` literally; the crate reads nested classes
//!   and set operations. `[` (other than `[:name:]`), `&` and `~` are escaped.
//!
//! What remains different: the crate accepts a few things Go refuses (`\<`, `\b{start}`,
//! repetition counts above 1000, `--` class difference), and `(?i)` folding follows each
//! engine's Unicode tables. Replacement follows Go's `Regexp.ReplaceAllString` and `Expand`
//! exactly (see [`GoRegexp::replace_all`]), not the crate's `replace_all`, whose `$name` rules
//! differ (`$01`, non-ASCII names, `${a-b}`).

use regex::{Captures, Regex};

/// A compiled Go regular expression.
#[derive(Clone, Debug)]
pub struct GoRegexp {
    re: Regex,
}

impl GoRegexp {
    /// Compiles a Go (RE2) pattern.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&translate(pattern)).map(|re| Self { re })
    }

    /// Go's `MatchString`: whether the pattern matches anywhere in `s` (unanchored).
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// Go's `ReplaceAllString`: every match replaced by `template`, in which `$1`, `${1}`,
    /// `$name` and `${name}` expand to capture groups and `$$` is a literal `$`.
    pub fn replace_all(&self, src: &str, template: &str) -> String {
        self.replace_with(src, |out, caps| self.expand(out, template, caps))
    }

    /// Go's `ReplaceAllLiteralString`: every match replaced by `replacement` as is.
    pub fn replace_all_literal(&self, src: &str, replacement: &str) -> String {
        self.replace_with(src, |out, _| out.push_str(replacement))
    }

    /// Go's `Regexp.replaceAll` loop, including its rule that an empty match right after the
    /// previous match is not replaced (`a*` on `baaac` gives `XbXcX`).
    fn replace_with(
        &self,
        src: &str,
        mut replace: impl FnMut(&mut String, &Captures<'_>),
    ) -> String {
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
                replace(&mut out, &caps);
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
        out
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

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = r"\t\n\x0C\r ";

/// Rewrites a Go pattern into one the `regex` crate reads the same way (see the module docs).
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if !in_class {
            match c {
                '\\' => match chars.next() {
                    Some('d') => out.push_str(&format!("[{DIGIT}]")),
                    Some('D') => out.push_str(&format!("[^{DIGIT}]")),
                    Some('w') => out.push_str(&format!("[{WORD}]")),
                    Some('W') => out.push_str(&format!("[^{WORD}]")),
                    Some('s') => out.push_str(&format!("[{SPACE}]")),
                    Some('S') => out.push_str(&format!("[^{SPACE}]")),
                    Some('b') => out.push_str(r"(?-u:\b)"),
                    Some('B') => out.push_str(r"(?-u:\B)"),
                    Some('Q') => {
                        let mut literal = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(q);
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                },
                '[' => {
                    out.push('[');
                    in_class = true;
                    if chars.peek() == Some(&'^') {
                        chars.next();
                        out.push('^');
                    }
                    // A `]` first in the class is a literal.
                    if chars.peek() == Some(&']') {
                        chars.next();
                        out.push_str(r"\]");
                    }
                }
                c => out.push(c),
            }
        } else {
            match c {
                '\\' => match chars.next() {
                    Some('d') => out.push_str(DIGIT),
                    Some('w') => out.push_str(WORD),
                    Some('s') => out.push_str(SPACE),
                    Some('D') => out.push_str(&format!("[^{DIGIT}]")),
                    Some('W') => out.push_str(&format!("[^{WORD}]")),
                    Some('S') => out.push_str(&format!("[^{SPACE}]")),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                },
                '[' if chars.peek() == Some(&':') => {
                    // `[:alpha:]` and friends: copy through the closing `:]`.
                    out.push('[');
                    let mut previous = '[';
                    for p in chars.by_ref() {
                        out.push(p);
                        if previous == ':' && p == ']' {
                            break;
                        }
                        previous = p;
                    }
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                ']' => {
                    out.push(']');
                    in_class = false;
                }
                c => out.push(c),
            }
        }
    }
    out
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

    #[test]
    fn literal_replacement_does_not_expand() {
        assert_eq!(re("a").replace_all_literal("aba", "$1"), "$1b$1");
    }
}
