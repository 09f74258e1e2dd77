//! sprig's `urlParse` and `urlJoin`, on a port of Go's `net/url` (`Parse`, `URL.String`) as
//! Go 1.26 has it. Messages leave out the URL and the parts of it Go quotes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use gotmpl::Value;

use super::{Args, R, b};
use crate::bytes;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// `net/url.shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => return false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => return c == b'?',
            Mode::UserPassword => return matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::QueryComponent => return true,
            Mode::Fragment => return false,
            Mode::Host | Mode::Zone => {}
        },
        _ => {}
    }
    if mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*') {
        return false;
    }
    true
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

/// `net/url.unescape`.
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, String> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len()
                    || !s[i + 1].is_ascii_hexdigit()
                    || !s[i + 2].is_ascii_hexdigit()
                {
                    return Err("invalid URL escape".to_owned());
                }
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && &s[i..i + 3] != b"%25" {
                    return Err("invalid URL escape".to_owned());
                }
                if mode == Mode::Zone {
                    let v = (unhex(s[i + 1]) << 4) | unhex(s[i + 2]);
                    if &s[i..i + 3] != b"%25" && v != b' ' && should_escape(v, Mode::Host) {
                        return Err("invalid URL escape".to_owned());
                    }
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err("invalid character in host name".to_owned());
                }
                i += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                out.push((unhex(s[i + 1]) << 4) | unhex(s[i + 2]));
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `net/url.escape`.
fn escape(s: &[u8], mode: Mode) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if c == b' ' && mode == Mode::QueryComponent {
            out.push(b'+');
        } else if should_escape(c, mode) {
            out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.push(c);
        }
    }
    out
}

/// `url.Userinfo`.
#[derive(Default)]
struct Userinfo {
    username: Vec<u8>,
    password: Option<Vec<u8>>,
}

impl Userinfo {
    /// `Userinfo.String`.
    fn encoded(&self) -> Vec<u8> {
        let mut out = escape(&self.username, Mode::UserPassword);
        if let Some(p) = &self.password {
            out.push(b':');
            out.extend(escape(p, Mode::UserPassword));
        }
        out
    }
}

/// `url.URL`, the fields sprig reads and writes.
#[derive(Default)]
struct Url {
    scheme: Vec<u8>,
    opaque: Vec<u8>,
    user: Option<Userinfo>,
    host: Vec<u8>,
    path: Vec<u8>,
    raw_path: Vec<u8>,
    omit_host: bool,
    force_query: bool,
    raw_query: Vec<u8>,
    fragment: Vec<u8>,
    raw_fragment: Vec<u8>,
}

/// `url.Parse`.
fn parse(raw: &[u8]) -> Result<Url, String> {
    let (u, frag) = match raw.iter().position(|&c| c == b'#') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let mut url = parse_no_fragment(u)?;
    if let Some(frag) = frag.filter(|f| !f.is_empty()) {
        url.fragment = unescape(frag, Mode::Fragment)?;
        url.raw_fragment = if escape(&url.fragment, Mode::Fragment) == frag {
            Vec::new()
        } else {
            frag.to_vec()
        };
    }
    Ok(url)
}

/// `net/url.getScheme`.
fn get_scheme(raw: &[u8]) -> Result<(&[u8], &[u8]), String> {
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok((&[], raw)),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok((&[], raw)),
        }
    }
    Ok((&[], raw))
}

/// `net/url.parse(rawURL, false)`.
fn parse_no_fragment(raw: &[u8]) -> Result<Url, String> {
    if raw.iter().any(|&c| c < b' ' || c == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let mut url = Url::default();
    if raw == b"*" {
        url.path = b"*".to_vec();
        return Ok(url);
    }
    let (scheme, mut rest) = get_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    let question_marks = rest.iter().filter(|&&c| c == b'?').count();
    if rest.ends_with(b"?") && question_marks == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some(i) = rest.iter().position(|&c| c == b'?') {
        url.raw_query = rest[i + 1..].to_vec();
        rest = &rest[..i];
    }
    if !rest.starts_with(b"/") {
        if !url.scheme.is_empty() {
            // Rootless paths are opaque (RFC 3986).
            url.opaque = rest.to_vec();
            return Ok(url);
        }
        let segment = rest.split(|&c| c == b'/').next().unwrap_or_default();
        if segment.contains(&b':') {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
        let mut authority = &rest[2..];
        rest = &[];
        if let Some(i) = authority.iter().position(|&c| c == b'/') {
            (authority, rest) = authority.split_at(i);
        }
        (url.user, url.host) = parse_authority(&url.scheme, authority)?;
    } else if !url.scheme.is_empty() && rest.starts_with(b"/") {
        url.omit_host = true;
    }
    url.path = unescape(rest, Mode::Path)?;
    url.raw_path = if escape(&url.path, Mode::Path) == rest {
        Vec::new()
    } else {
        rest.to_vec()
    };
    Ok(url)
}

fn valid_userinfo(s: &[u8]) -> bool {
    // Go ranges over runes: non-ASCII is invalid, as is any byte outside the set.
    s.iter().all(|&c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b':'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b'@'
            )
    })
}

fn parse_authority(scheme: &[u8], authority: &[u8]) -> Result<(Option<Userinfo>, Vec<u8>), String> {
    let at = authority.iter().rposition(|&c| c == b'@');
    let host = parse_host(scheme, at.map_or(authority, |i| &authority[i + 1..]))?;
    let Some(at) = at else {
        return Ok((None, host));
    };
    let userinfo = &authority[..at];
    if !valid_userinfo(userinfo) {
        return Err("net/url: invalid userinfo".to_owned());
    }
    let user = match userinfo.iter().position(|&c| c == b':') {
        None => Userinfo {
            username: unescape(userinfo, Mode::UserPassword)?,
            password: None,
        },
        Some(i) => Userinfo {
            username: unescape(&userinfo[..i], Mode::UserPassword)?,
            password: Some(unescape(&userinfo[i + 1..], Mode::UserPassword)?),
        },
    };
    Ok((Some(user), host))
}

/// `validOptionalPort`: empty, or `:` and digits.
fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `net/url.parseHost`.
fn parse_host(scheme: &[u8], host: &[u8]) -> Result<Vec<u8>, String> {
    match host.iter().rposition(|&c| c == b'[') {
        Some(i) if i > 0 => return Err("invalid IP-literal".to_owned()),
        Some(_) => {
            let Some(close) = host.iter().rposition(|&c| c == b']') else {
                return Err("missing ']' in host".to_owned());
            };
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return Err("invalid port after host".to_owned());
            }
            let colon_port = unescape(colon_port, Mode::Host)?;
            let hostname = &host[1..close];
            let unescaped = match find(hostname, b"%25") {
                Some(zone) => {
                    let mut h = unescape(&hostname[..zone], Mode::Host)?;
                    h.extend(unescape(&hostname[zone..], Mode::Zone)?);
                    h
                }
                None => unescape(hostname, Mode::Host)?,
            };
            // Only an IPv6 address may be bracketed (netip.ParseAddr, zone allowed).
            let text = String::from_utf8_lossy(&unescaped);
            if text.parse::<Ipv4Addr>().is_ok() {
                return Err("invalid IP-literal".to_owned());
            }
            let addr = match text.split_once('%') {
                Some((_, "")) => None,
                Some((a, _)) => Some(a),
                None => Some(&*text),
            };
            if addr.is_none_or(|a| a.parse::<Ipv6Addr>().is_err()) {
                return Err("invalid host: ParseAddr: unable to parse IP".to_owned());
            }
            let mut out = b"[".to_vec();
            out.extend(unescaped);
            out.push(b']');
            out.extend(colon_port);
            return Ok(out);
        }
        None => {}
    }
    if let Some(first) = host.iter().position(|&c| c == b':') {
        let last = host.iter().rposition(|&c| c == b':').unwrap_or(first);
        // Colons inside the host are refused only for http and https (urlstrictcolons).
        let i = if last != first && scheme != b"http" && scheme != b"https" {
            last
        } else {
            first
        };
        if !valid_optional_port(&host[i..]) {
            return Err("invalid port after host".to_owned());
        }
    }
    unescape(host, Mode::Host)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn valid_encoded(s: &[u8], mode: Mode) -> bool {
    s.iter().all(|&c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c, mode)
    })
}

impl Url {
    /// `URL.Hostname`: the host without a valid port and without IPv6 brackets.
    fn hostname(&self) -> &[u8] {
        let mut host = &self.host[..];
        if let Some(colon) = host.iter().rposition(|&c| c == b':')
            && valid_optional_port(&host[colon..])
        {
            host = &host[..colon];
        }
        if host.starts_with(b"[") && host.ends_with(b"]") {
            host = &host[1..host.len() - 1];
        }
        host
    }

    /// `URL.EscapedPath`.
    fn escaped_path(&self) -> Vec<u8> {
        if !self.raw_path.is_empty()
            && valid_encoded(&self.raw_path, Mode::Path)
            && unescape(&self.raw_path, Mode::Path).is_ok_and(|p| p == self.path)
        {
            return self.raw_path.clone();
        }
        if self.path == b"*" {
            return self.path.clone();
        }
        escape(&self.path, Mode::Path)
    }

    /// `URL.EscapedFragment`.
    fn escaped_fragment(&self) -> Vec<u8> {
        if !self.raw_fragment.is_empty()
            && valid_encoded(&self.raw_fragment, Mode::Fragment)
            && unescape(&self.raw_fragment, Mode::Fragment).is_ok_and(|f| f == self.fragment)
        {
            return self.raw_fragment.clone();
        }
        escape(&self.fragment, Mode::Fragment)
    }

    /// `URL.String`.
    fn string(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if !self.scheme.is_empty() {
            buf.extend_from_slice(&self.scheme);
            buf.push(b':');
        }
        if !self.opaque.is_empty() {
            buf.extend_from_slice(&self.opaque);
        } else {
            let authority = !self.scheme.is_empty() || !self.host.is_empty() || self.user.is_some();
            let omitted = self.omit_host && self.host.is_empty() && self.user.is_none();
            if authority && !omitted {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    buf.extend_from_slice(b"//");
                }
                if let Some(user) = &self.user {
                    buf.extend(user.encoded());
                    buf.push(b'@');
                }
                buf.extend(escape(&self.host, Mode::Host));
            }
            let path = self.escaped_path();
            if path.first().is_some_and(|&c| c != b'/') && !self.host.is_empty() {
                buf.push(b'/');
            }
            if buf.is_empty() {
                // A first segment with a colon would read as a scheme (RFC 3986 §4.2).
                let segment = path.split(|&c| c == b'/').next().unwrap_or_default();
                if segment.contains(&b':') {
                    buf.extend_from_slice(b"./");
                }
            }
            buf.extend(path);
        }
        if self.force_query || !self.raw_query.is_empty() {
            buf.push(b'?');
            buf.extend_from_slice(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            buf.push(b'#');
            buf.extend(self.escaped_fragment());
        }
        buf
    }
}

fn text(v: &[u8]) -> Value {
    Value::from(bytes::encode(v))
}

/// sprig's `urlParse`: a dict of `scheme`, `host`, `hostname`, `path` (decoded), `query` (raw),
/// `opaque`, `fragment` (decoded) and `userinfo` (re-encoded), all strings. sprig panics on a
/// URL Go cannot parse; the render fails.
pub(crate) fn url_parse(a: &Args) -> R {
    a.exactly(1)?;
    let url = parse(&a.bytes(0)?).map_err(|e| format!("unable to parse url: {e}"))?;
    let userinfo = url.user.as_ref().map(Userinfo::encoded).unwrap_or_default();
    let dict: BTreeMap<Arc<str>, Value> = [
        ("scheme", text(&url.scheme)),
        ("host", text(&url.host)),
        ("hostname", text(url.hostname())),
        ("path", text(&url.path)),
        ("query", text(&url.raw_query)),
        ("opaque", text(&url.opaque)),
        ("fragment", text(&url.fragment)),
        ("userinfo", text(&userinfo)),
    ]
    .into_iter()
    .map(|(k, v)| (Arc::from(k), v))
    .collect();
    Ok(Value::Map(Arc::new(dict)))
}

/// sprig's `dictGetOrEmpty`: a string entry, "" when absent; any other type panics.
fn dict_get(d: &BTreeMap<Arc<str>, Value>, key: &str) -> Result<Vec<u8>, String> {
    match d.get(key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(bytes::decode(s).into_owned()),
        Some(other) => Err(format!(
            "unable to parse {key} key, must be of type string, but {} found",
            crate::go::kind(other)
        )),
    }
}

/// sprig's `urlJoin`: a `url.URL` from the dict's `scheme`, `host`, `path` (decoded), `query`,
/// `opaque`, `fragment` and `userinfo` (parsed as Go parses it in a URL), as `URL.String`
/// writes it.
pub(crate) fn url_join(a: &Args) -> R {
    a.exactly(1)?;
    let d = a.map(0)?;
    let mut url = Url {
        scheme: dict_get(d, "scheme")?,
        host: dict_get(d, "host")?,
        path: dict_get(d, "path")?,
        raw_query: dict_get(d, "query")?,
        opaque: dict_get(d, "opaque")?,
        fragment: dict_get(d, "fragment")?,
        ..Url::default()
    };
    let userinfo = dict_get(d, "userinfo")?;
    if !userinfo.is_empty() {
        let mut probe = b"proto://".to_vec();
        probe.extend(&userinfo);
        probe.extend_from_slice(b"@host");
        url.user = parse(&probe)
            .map_err(|e| format!("unable to parse userinfo in dict: {e}"))?
            .user;
    }
    b(&url.string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(raw: &str) -> String {
        String::from_utf8_lossy(
            &parse(raw.as_bytes())
                .map(|u| u.string())
                .unwrap_or_default(),
        )
        .into_owned()
    }

    #[test]
    fn string_rebuilds_what_parse_read() {
        for raw in [
            "http://user:p%40ss@host:8080/a%2Fb/c?q=1#frag",
            "mailto:someone@example.com",
            "/relative/path?x",
            "https://[fe80::1%25en0]:443/",
            "file:///etc/hosts",
        ] {
            assert_eq!(round_trip(raw), raw);
        }
    }

    #[test]
    fn hosts_refuse_what_go_refuses() {
        assert!(parse(b"http://a b/").is_err());
        assert!(parse(b"http://host:port/").is_err());
        assert!(parse(b"http://[1.2.3.4]/").is_err());
        assert!(parse(b"http://x[::1]/").is_err());
        assert!(parse(b":nope").is_err());
        // Several hosts with ports are kept for other schemes (PostgreSQL, MongoDB).
        assert!(parse(b"postgres://a:1,b:2/db").is_ok());
        assert!(parse(b"http://a:1,b:2/db").is_err());
    }
}
