//! Go's RE2 syntax, rewritten where the `regex` crate reads the same text differently.

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = r"\t\n\x0C\r ";

/// Rewrites a Go pattern into one the `regex` crate reads the same way (see [`super`]'s docs).
pub(super) fn translate(pattern: &str) -> String {
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
