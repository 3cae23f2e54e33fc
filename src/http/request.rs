//! The request a [`Handler`](super::Handler) sees, and the framing rules that decide how its
//! body is read.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::parse::split_at_ascii;

/// The protocol version of a message. Only HTTP/1.0 and HTTP/1.1 are spoken here; anything
/// else is answered with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0: one request per connection unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent connections by default, `Host` required.
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// Header fields in arrival order, with case-insensitive lookup (RFC 9110 §5.1).
///
/// Fields parsed from a message keep their names and values end to end in one string (one
/// allocation for the whole section, not two per field); fields a handler adds may be
/// `&'static str` ([`Headers::append_static`]) or shared ([`Headers::append_shared`]), so a
/// response built from constants or a cache formats and copies nothing.
#[derive(Clone, Default)]
pub struct Headers {
    /// The text of parsed fields (see [`Text::Span`]).
    text: String,
    entries: Vec<(Text, Text)>,
}

/// The name or value of one field, wherever it lives.
#[derive(Clone)]
enum Text {
    /// `Headers::text[start..end]`.
    Span(usize, usize),
    Owned(String),
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    /// Its length in bytes, without looking at the text.
    #[inline]
    fn len(&self) -> usize {
        match self {
            Text::Span(start, end) => end.saturating_sub(*start),
            Text::Owned(s) => s.len(),
            Text::Static(s) => s.len(),
            Text::Shared(s) => s.len(),
        }
    }

    /// Whether this field name is `name` (ASCII case-insensitively). Lengths first: a
    /// request's fields are searched several times each (framing, Host, Connection,
    /// preconditions), most names differ in length, and telling so needs neither the text
    /// of a parsed name nor a byte compared.
    #[inline]
    fn is_named(&self, name: &str, text: &str) -> bool {
        self.len() == name.len() && self.get(text).eq_ignore_ascii_case(name)
    }

    /// The text, given the `Headers::text` that spans point into.
    fn get<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            Text::Span(start, end) => text.get(*start..*end).unwrap_or(""),
            Text::Owned(s) => s,
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// The field list as `[("name", "value"), ...]`.
        struct Entries<'a>(&'a Headers);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("Headers")
            .field("entries", &Entries(self))
            .finish()
    }
}

impl Headers {
    /// An empty field list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let text = self.text.as_str();
        self.entries
            .iter()
            .find(|(n, _)| n.is_named(name, text))
            .map(|(_, v)| v.get(text))
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text.as_str();
        self.entries
            .iter()
            .filter(move |(n, _)| n.is_named(name, text))
            .map(move |(_, v)| v.get(text))
    }

    /// True if a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True if any comma-separated element of any `name` field equals `token`, ignoring case
    /// (e.g. `has_token("connection", "close")`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        // Plain loops (this runs twice per request), and a trim of optional whitespace
        // only, SP and HTAB (RFC 9110 §5.6.3), not of any Unicode whitespace.
        // Elements cut at commas with a byte loop over the value: `str::split` sets up a
        // searcher per value, which cost more than the rest of this.
        for value in self.get_all(name) {
            let mut rest = Some(value.as_bytes());
            while let Some(r) = rest {
                let (element, after) = match crate::http::parse::find_byte(r, b',') {
                    Some(i) => (r.get(..i).unwrap_or(r), r.get(i + 1..)),
                    None => (r, None),
                };
                rest = after;
                if crate::http::parse::trim_ows(element).eq_ignore_ascii_case(token.as_bytes()) {
                    return true;
                }
            }
        }
        false
    }

    /// Add a field, keeping existing ones with the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries
            .push((Text::Owned(name.into()), Text::Owned(value.into())));
    }

    /// Add a field whose name and value are constants, without allocating for them.
    pub fn append_static(&mut self, name: &'static str, value: &'static str) {
        self.entries.push((Text::Static(name), Text::Static(value)));
    }

    /// Add a field whose value is shared with its owner (e.g. a value a handler computed
    /// once and keeps), without copying it.
    pub fn append_shared(&mut self, name: &'static str, value: Arc<str>) {
        self.entries.push((Text::Static(name), Text::Shared(value)));
    }

    /// Add a parsed field: its text goes to the end of the section's one string. Field
    /// values may carry obs-text (non-UTF-8 bytes); those are replaced by U+FFFD, which no
    /// framing-relevant field ever legitimately contains. Names are tokens, hence ASCII.
    pub(crate) fn append_bytes(&mut self, name: &[u8], value: &[u8]) {
        let name = self.push_text(name);
        let value = self.push_text(value);
        self.entries.push((name, value));
    }

    /// Add a parsed field that is already text (see [`Headers::append_bytes`]).
    pub(crate) fn append_text(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let middle = self.text.len();
        self.text.push_str(value);
        self.entries.push((
            Text::Span(start, middle),
            Text::Span(middle, self.text.len()),
        ));
    }

    /// Make room for `bytes` more bytes of parsed text (one allocation for a whole section).
    pub(crate) fn reserve_text(&mut self, bytes: usize) {
        self.text.reserve(bytes);
    }

    /// Append `bytes` (made UTF-8) to `text`; the span they occupy.
    fn push_text(&mut self, bytes: &[u8]) -> Text {
        let start = self.text.len();
        match std::str::from_utf8(bytes) {
            Ok(s) => self.text.push_str(s),
            Err(_) => self.text.push_str(&String::from_utf8_lossy(bytes)),
        }
        Text::Span(start, self.text.len())
    }

    /// Set a field, replacing every existing field with the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.entries
            .push((Text::Owned(name), Text::Owned(value.into())));
    }

    /// Remove every field called `name`.
    pub fn remove(&mut self, name: &str) {
        let text = &self.text;
        self.entries
            .retain(|(n, _)| !n.get(text).eq_ignore_ascii_case(name));
    }

    /// Bytes of heap the field list holds (its capacity, not its length).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.entries.capacity() * std::mem::size_of::<(Text, Text)>()
    }

    /// Remove every field, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
    }

    /// Iterate over `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let text = self.text.as_str();
        self.entries
            .iter()
            .map(move |(n, v)| (n.get(text), v.get(text)))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A complete request: head plus the whole body (read up to the server's `max_body`).
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The raw request-target as sent (still percent-encoded), e.g. `/a%20b?x=1`.
    pub target: String,
    /// The percent-decoded path, e.g. `/a b`. For an absolute-form target
    /// (`http://host/p`) this is the path part; for `*` it is `*`.
    pub path: String,
    /// The raw query string after `?`, if any (not decoded).
    pub query: Option<String>,
    /// The request's protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
    /// The body, de-chunked if it was sent chunked.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request whose framing headers are unacceptable, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError {
    /// 400 or 501.
    pub status: u16,
    /// Why, for the log.
    pub reason: &'static str,
}

fn framing_err(status: u16, reason: &'static str) -> FramingError {
    FramingError { status, reason }
}

/// Decide how the request body is framed, rejecting ambiguous messages.
pub fn request_framing(version: Version, headers: &Headers) -> Result<Framing, FramingError> {
    let has_te = headers.contains("transfer-encoding");
    let has_cl = headers.contains("content-length");
    if has_te {
        // RFC 9112 §6.3 (3): TE and CL together may be a smuggling attempt; a server MAY
        // reject it, and we do.
        if has_cl {
            return Err(framing_err(
                400,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        if version == Version::Http10 {
            return Err(framing_err(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&str> = headers
            .get_all("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let Some((last, before)) = codings.split_last() else {
            return Err(framing_err(400, "empty Transfer-Encoding"));
        };
        // We implement no content codings as transfer codings (RFC 9112 §6.1: 501 for a
        // coding we do not understand).
        if before.iter().any(|c| !c.eq_ignore_ascii_case("chunked")) {
            return Err(framing_err(501, "unsupported transfer-coding"));
        }
        if !before.is_empty() {
            return Err(framing_err(400, "chunked applied more than once"));
        }
        if !last.eq_ignore_ascii_case("chunked") {
            // RFC 9112 §6.3 (4): chunked must be the final coding of a request, but an
            // unknown coding is reported as such first.
            let known = [
                "gzip",
                "deflate",
                "compress",
                "x-gzip",
                "x-compress",
                "identity",
            ];
            if known.iter().any(|k| last.eq_ignore_ascii_case(k)) {
                return Err(framing_err(400, "chunked is not the final transfer-coding"));
            }
            return Err(framing_err(501, "unsupported transfer-coding"));
        }
        return Ok(Framing::Chunked);
    }
    if has_cl {
        // RFC 9110 §8.6: a list of identical values may be accepted as one; differing or
        // invalid values are unrecoverable framing errors (RFC 9112 §6.3 (5)).
        let mut len: Option<u64> = None;
        for v in headers.get_all("content-length").flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(framing_err(400, "invalid Content-Length"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| framing_err(400, "Content-Length overflow"))?;
            if len.is_some_and(|l| l != n) {
                return Err(framing_err(400, "conflicting Content-Length values"));
            }
            len = Some(n);
        }
        return Ok(match len {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        });
    }
    Ok(Framing::None)
}

/// Percent-decode `s` (RFC 3986 §2.1). `None` if a `%` is not followed by two hex digits.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    percent_decode_into(s, &mut out)?;
    Some(out)
}

/// [`percent_decode`] appending to `out`.
fn percent_decode_into(s: &str, out: &mut Vec<u8>) -> Option<()> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let hi = hex(bytes.get(i + 1))?;
            let lo = hex(bytes.get(i + 2))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(())
}

/// Split a request-target into its decoded path and raw query. `None` if the target is not a
/// usable form or its path does not decode to UTF-8.
pub fn split_target(target: &str) -> Option<(String, Option<String>)> {
    let mut path = String::new();
    let mut query = None;
    split_target_into(target, &mut path, &mut query)?;
    Some((path, query))
}

/// [`split_target`] into `path` and `query`, reusing their memory (a connection hands back
/// its previous request's). What they hold is unspecified on `None`.
pub(crate) fn split_target_into(
    target: &str,
    path: &mut String,
    query: &mut Option<String>,
) -> Option<()> {
    let (raw_path, raw_query) = if target == "*" {
        ("*", None)
    } else {
        let origin = if target.starts_with('/') {
            target
        } else {
            // absolute-form (RFC 9112 §3.2.2): scheme "://" authority path-abempty
            let (scheme, rest) = target.split_once("://")?;
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return None;
            }
            match rest.find(['/', '?']) {
                Some(i) if rest[i..].starts_with('/') => &rest[i..],
                // No path: the path is "/" and whatever follows is the query (`rest[i..]`
                // starts with its "?").
                Some(i) => {
                    let q = rest[i..].split('#').next().unwrap_or("");
                    return fill_target(path, query, "/", Some(q.get(1..).unwrap_or("")));
                }
                None => "/",
            }
        };
        // A fragment is never sent in a request-target; tolerate and drop it.
        let (origin, _fragment) = split_at_ascii(origin, b'#');
        split_at_ascii(origin, b'?')
    };
    fill_target(path, query, raw_path, raw_query)
}

/// Decode `raw_path` into `path` and copy `raw_query` into `query`, reusing their memory.
fn fill_target(
    path: &mut String,
    query: &mut Option<String>,
    raw_path: &str,
    raw_query: Option<&str>,
) -> Option<()> {
    let mut bytes = std::mem::take(path).into_bytes();
    bytes.clear();
    percent_decode_into(raw_path, &mut bytes)?;
    *path = String::from_utf8(bytes).ok()?;
    match raw_query {
        Some(q) => {
            let s = query.get_or_insert_with(String::new);
            s.clear();
            s.push_str(q);
        }
        None => *query = None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.append(*n, *v);
        }
        h
    }

    #[test]
    fn headers_case_insensitive() {
        let mut hs = h(&[("Content-Type", "a"), ("X", "1"), ("x", "2")]);
        assert_eq!(hs.get("content-type"), Some("a"));
        assert_eq!(hs.get_all("X").collect::<Vec<_>>(), vec!["1", "2"]);
        hs.insert("X", "3");
        assert_eq!(hs.get_all("x").collect::<Vec<_>>(), vec!["3"]);
        let c = h(&[("Connection", "Keep-Alive, Upgrade")]);
        assert!(c.has_token("connection", "keep-alive"));
        assert!(!c.has_token("connection", "close"));
        // Empty elements, SP/HTAB around them, the token in a second field; a token is
        // matched whole, and other whitespace is not optional whitespace.
        let c = h(&[("Connection", "a,,\t"), ("connection", " x ,\tCLOSE\t ")]);
        assert!(c.has_token("connection", "close"));
        assert!(c.has_token("connection", "a"));
        assert!(!c.has_token("connection", "clos"));
        assert!(!h(&[("Connection", "closed, \u{a0}close")]).has_token("connection", "close"));
    }

    /// Fields from the parser, constants, shared and owned values behave alike: lookup,
    /// removal, equality and Debug go by the text, not by where it lives.
    #[test]
    fn headers_from_every_source() {
        let mut a = Headers::new();
        a.append_bytes(b"Host", b"x");
        a.append_static("Content-Type", "text/plain");
        a.append_shared("Last-Modified", Arc::from("Sun, 06 Nov 1994 08:49:37 GMT"));
        a.append_bytes(b"X-Raw", b"caf\xe9");
        let b = h(&[
            ("Host", "x"),
            ("Content-Type", "text/plain"),
            ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("X-Raw", "caf\u{fffd}"),
        ]);
        assert_eq!(a, b);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(
            format!("{a:?}"),
            "Headers { entries: [(\"Host\", \"x\"), (\"Content-Type\", \"text/plain\"), \
             (\"Last-Modified\", \"Sun, 06 Nov 1994 08:49:37 GMT\"), (\"X-Raw\", \"caf\u{fffd}\")] }"
        );
        assert_eq!(a.get("content-type"), Some("text/plain"));
        a.remove("host");
        a.insert("x-raw", "1");
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![
                ("Content-Type", "text/plain"),
                ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("x-raw", "1")
            ]
        );
        a.clear();
        assert!(a.is_empty() && a.get("x-raw").is_none());
    }

    #[test]
    fn framing_rules() {
        let v = Version::Http11;
        assert_eq!(request_framing(v, &h(&[])), Ok(Framing::None));
        assert_eq!(
            request_framing(v, &h(&[("Content-Length", "10")])),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            request_framing(v, &h(&[("Content-Length", "10"), ("content-length", "10")])),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            request_framing(v, &h(&[("Content-Length", "10, 10")])),
            Ok(Framing::Length(10))
        );
        for bad in [
            "10, 11",
            "-1",
            "+5",
            "1e3",
            "",
            "0x10",
            "99999999999999999999999",
        ] {
            assert_eq!(
                request_framing(v, &h(&[("Content-Length", bad)])).map_err(|e| e.status),
                Err(400),
                "{bad:?}"
            );
        }
        assert_eq!(
            request_framing(v, &h(&[("Content-Length", "1"), ("Content-Length", "2")]))
                .map_err(|e| e.status),
            Err(400)
        );
        assert_eq!(
            request_framing(v, &h(&[("Transfer-Encoding", "Chunked")])),
            Ok(Framing::Chunked)
        );
        let te =
            |val: &str| request_framing(v, &h(&[("Transfer-Encoding", val)])).map_err(|e| e.status);
        assert_eq!(te("gzip, chunked"), Err(501));
        assert_eq!(te("chunked, chunked"), Err(400));
        assert_eq!(te("gzip"), Err(400));
        assert_eq!(te("foo"), Err(501));
        assert_eq!(
            request_framing(
                v,
                &h(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")])
            )
            .map_err(|e| e.status),
            Err(400)
        );
        assert_eq!(
            request_framing(Version::Http10, &h(&[("Transfer-Encoding", "chunked")]))
                .map_err(|e| e.status),
            Err(400)
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            split_target("/a%20b/c?x=1%20"),
            Some(("/a b/c".into(), Some("x=1%20".into())))
        );
        assert_eq!(split_target("/..%2f"), Some(("/../".into(), None)));
        assert_eq!(
            split_target("http://h:8/p?q"),
            Some(("/p".into(), Some("q".into())))
        );
        assert_eq!(split_target("http://h"), Some(("/".into(), None)));
        assert_eq!(
            split_target("http://h?q"),
            Some(("/".into(), Some("q".into())))
        );
        assert_eq!(split_target("*"), Some(("*".into(), None)));
        assert_eq!(
            split_target("http://h?q#f"),
            Some(("/".into(), Some("q".into())))
        );
        assert_eq!(split_target("http://h#f"), Some(("/".into(), None)));
        assert_eq!(
            split_target("/p?a#f?b"),
            Some(("/p".into(), Some("a".into())))
        );
        // Into the memory of an earlier request: everything replaced.
        let (mut path, mut query) = (String::from("/old/path"), Some(String::from("old")));
        assert_eq!(split_target_into("/n%41", &mut path, &mut query), Some(()));
        assert_eq!((path.as_str(), query.as_deref()), ("/nA", None));
        assert_eq!(split_target_into("/x?y", &mut path, &mut query), Some(()));
        assert_eq!((path.as_str(), query.as_deref()), ("/x", Some("y")));
        assert_eq!(split_target("/%zz"), None);
        assert_eq!(split_target("/%ff"), None);
        assert_eq!(split_target("ftp://h/x"), None);
        assert_eq!(split_target("example.com:443"), None);
    }
}
