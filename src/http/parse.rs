//! Our own HTTP/1.1 message parser (RFC 9112), push style.
//!
//! The caller appends whatever bytes arrived to a buffer and calls [`parse_request_head`] (or
//! [`parse_response_head`]) on the whole buffer; the answer is [`Parsed::Partial`] until the
//! empty line that ends the head has arrived, then [`Parsed::Complete`] with the typed head
//! and how many bytes it used. Bytes after that belong to the body or to the next, pipelined,
//! request. Everything is bounded: the head size and the number of header fields are limits
//! ([`Limits`]), so a peer cannot make us buffer without end.
//!
//! ```text
//!  "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nGET /next..."
//!   └──── request-line ─┘└ field ─┘└┘ ← empty line: head complete, consumed = 30
//! ```
//!
//! Strictness choices (each one closes a known ambiguity between parsers):
//! - request-line is exactly `method SP request-target SP HTTP-version` (RFC 9112 §3);
//! - no whitespace between a field name and the colon (RFC 9112 §5.1: MUST reject);
//! - obs-fold (a line starting with SP/HTAB continuing the previous field) is rejected
//!   (RFC 9112 §5.2 allows a server to reject it with 400);
//! - control characters (including a bare CR) are rejected anywhere in the head;
//! - a bare LF is accepted as a line end in the head (RFC 9112 §2.2 MAY) but *not* inside
//!   chunked framing, where lenient line ends have enabled request smuggling.
//!
//! [`ChunkedDecoder`] decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1) incrementally,
//! including chunk extensions (skipped) and trailer fields (validated, then kept aside).

use std::fmt;

use super::request::{Headers, Version};

/// The result of feeding a buffer to a push parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is complete: the value, and how many bytes of the buffer it used.
    Complete {
        /// The parsed head.
        value: T,
        /// Bytes of the input consumed, including the final empty line.
        consumed: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Bounds on what the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of the head in bytes (request line + fields + empty line).
    pub max_head_bytes: usize,
    /// Maximum number of header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a head was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The head exceeds [`Limits::max_head_bytes`] (431).
    HeadTooLarge,
    /// The start line alone (the request line: mostly its target) exceeds
    /// [`Limits::max_head_bytes`]: 414 URI Too Long (RFC 9112 §3: "A server that receives a
    /// request-target longer than any URI it wishes to parse MUST respond with a 414").
    StartLineTooLong,
    /// More fields than [`Limits::max_headers`] (431).
    TooManyHeaders,
    /// The request line is not `method SP target SP version`.
    RequestLine,
    /// The method is not a token.
    Method,
    /// The request-target is empty or contains forbidden bytes.
    Target,
    /// The version is not `HTTP/DIGIT.DIGIT`.
    Version,
    /// A well-formed version whose major number is not 1 (505; any HTTP/1.x is
    /// understood, RFC 9112 §2.3).
    UnsupportedVersion(u8, u8),
    /// The status line of a response is malformed.
    StatusLine,
    /// A field line has no colon, or its name is empty or not a token.
    HeaderName,
    /// Whitespace between the field name and the colon (RFC 9112 §5.1).
    WhitespaceBeforeColon,
    /// A field value contains a forbidden byte (a control character, bare CR, NUL).
    HeaderValue,
    /// Obsolete line folding (RFC 9112 §5.2).
    ObsFold,
}

impl ParseError {
    /// The status code a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::StartLineTooLong => 414,
            ParseError::UnsupportedVersion(..) => 505,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::HeadTooLarge => write!(f, "message head too large"),
            ParseError::StartLineTooLong => write!(f, "start line too long"),
            ParseError::TooManyHeaders => write!(f, "too many header fields"),
            ParseError::RequestLine => write!(f, "malformed request line"),
            ParseError::Method => write!(f, "invalid method"),
            ParseError::Target => write!(f, "invalid request-target"),
            ParseError::Version => write!(f, "malformed HTTP version"),
            ParseError::UnsupportedVersion(a, b) => write!(f, "unsupported version HTTP/{a}.{b}"),
            ParseError::StatusLine => write!(f, "malformed status line"),
            ParseError::HeaderName => write!(f, "invalid header field name"),
            ParseError::WhitespaceBeforeColon => {
                write!(f, "whitespace between field name and colon")
            }
            ParseError::HeaderValue => write!(f, "invalid header field value"),
            ParseError::ObsFold => write!(f, "obsolete line folding"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A parsed request head (request line + header fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, case-sensitive (RFC 9110 §9.1): `GET`, `POST`, ...
    pub method: String,
    /// The raw request-target, still percent-encoded.
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields in order.
    pub headers: Headers,
}

/// A parsed response head (status line + header fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHead {
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// The header fields in order.
    pub headers: Headers,
}

/// `tchar` of RFC 9110 §5.6.2: the characters of a token (method, field name).
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] for every byte, computed at compile time: every field name of every
/// request and response is checked byte by byte, and one load per byte is cheaper than
/// the range tests and the search through the punctuation list it replaces.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let punctuation = b"!#$%&'*+-.^_`|~";
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// True if `s` is a non-empty token.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// The first position of `needle` in `hay`, eight bytes at a time: a request head is
/// searched for line ends and colons several times, and a byte loop costs four or five
/// instructions a byte. A byte of `word ^ needle × 0x01…01` is zero where `needle` is; the
/// lowest byte flagged by `(x − 0x01…01) & !x & 0x80…80` is the first zero byte (a borrow
/// can flag bytes above it, never below).
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes) ^ pattern;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    hay.get(at..)?
        .iter()
        .position(|&b| b == needle)
        .map(|i| at + i)
}

/// Bytes allowed in a field value: field-vchar, SP, HTAB, obs-text (RFC 9110 §5.5).
fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Where a complete head lies in the buffer that holds it.
struct HeadSpan {
    /// `buf[lines]` are the head's lines (the start line and the field lines, each ended by
    /// LF or CRLF), without the empty line that ends the head.
    lines: std::ops::Range<usize>,
    /// Bytes used, including leading empty lines and the final empty line.
    consumed: usize,
}

/// Find the lines of a head in `buf`. Skips empty lines before the first line (RFC 9112
/// §2.2: SHOULD ignore at least one empty line before the request-line). Returns where the
/// lines are and the number of bytes consumed, or `None` if the empty line that ends the head
/// has not arrived yet. [`head_lines`] then splits them (nothing is collected here: a head
/// costs no allocation of its own).
///
/// The whole buffer is rescanned on each call; that is quadratic in the number of reads of a
/// trickled head, but the head is bounded by [`Limits::max_head_bytes`], so it stays cheap.
fn split_head(buf: &[u8], limits: &Limits) -> Result<Option<HeadSpan>, ParseError> {
    let mut pos = 0;
    // Leading empty lines (e.g. the stray CRLF some clients send after a POST body).
    loop {
        match buf.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            Some([b'\r']) => return Ok(None),
            _ => break,
        }
        if pos > limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge);
        }
    }
    let start = pos;
    let mut count = 0;
    loop {
        let rest = buf.get(pos..).unwrap_or(&[]);
        // Over the limit before the start line ends: the target is what is too long
        // (414), not the fields (431).
        let too_large = if count == 0 {
            ParseError::StartLineTooLong
        } else {
            ParseError::HeadTooLarge
        };
        let Some(nl) = find_byte(rest, b'\n') else {
            if buf.len() > limits.max_head_bytes {
                return Err(too_large);
            }
            return Ok(None);
        };
        let end = pos + nl + 1;
        if end > limits.max_head_bytes {
            return Err(too_large);
        }
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if count == 0 {
                // Cannot happen after skipping leading empty lines; treat as malformed.
                return Err(ParseError::RequestLine);
            }
            return Ok(Some(HeadSpan {
                lines: start..pos,
                consumed: end,
            }));
        }
        // `count` lines are the start line plus the fields so far, so this line would be
        // field number `count`: one too many once that exceeds the limit.
        if count > limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        count += 1;
        pos = end;
    }
}

/// The lines of `buf[span.lines]` (each without its LF or CRLF).
fn head_lines(lines: &[u8]) -> impl Iterator<Item = &[u8]> {
    let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
    lines
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Parse one field line `name ":" OWS value OWS` (RFC 9112 §5).
pub fn parse_field_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let (name, value) = field_line(line)?;
    // Names are tokens, hence ASCII. Values may carry obs-text (non-UTF-8 bytes); those are
    // replaced by U+FFFD, which no framing-relevant field ever legitimately contains.
    let name = String::from_utf8_lossy(name).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    Ok((name, value))
}

/// Check one field line; its name and its value without surrounding whitespace.
fn field_line(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let (name_len, value) = field_line_at(line)?;
    Ok((
        line.get(..name_len).unwrap_or_default(),
        line.get(value).unwrap_or_default(),
    ))
}

/// [`field_line`], as positions in `line`: the name is `line[..name_len]`, the value
/// `line[value]`. Both end next to ASCII bytes (the colon, whitespace, the line's ends), so
/// they are also character boundaries of the line as text.
fn field_line_at(line: &[u8]) -> Result<(usize, std::ops::Range<usize>), ParseError> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(ParseError::ObsFold);
    }
    let colon = find_byte(line, b':').ok_or(ParseError::HeaderName)?;
    let (name, after) = (&line[..colon], &line[colon + 1..]);
    if name.last().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(ParseError::WhitespaceBeforeColon);
    }
    if !is_token(name) {
        return Err(ParseError::HeaderName);
    }
    let value = trim_ows(after);
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err(ParseError::HeaderValue);
    }
    let start = colon
        + 1
        + after
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    Ok((colon, start..start + value.len()))
}

/// Strip optional whitespace (SP / HTAB) at both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parse field lines onto `headers` (all their text in its one string).
fn parse_fields<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    limits: &Limits,
    headers: &mut Headers,
) -> Result<(), ParseError> {
    for line in lines {
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        let (name, value) = field_line(line)?;
        headers.append_bytes(name, value);
    }
    Ok(())
}

/// [`parse_fields`] for field lines already known to be UTF-8 (`text`: the lines after the
/// start line, each ended by LF or CRLF): one UTF-8 check for the whole section instead of
/// two per field, which were a fifth of the cost of parsing a small request.
fn parse_fields_text(text: &str, limits: &Limits, headers: &mut Headers) -> Result<(), ParseError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Ok(());
    }
    let mut rest = Some(text);
    while let Some(remaining) = rest {
        let (line, after) = split_at_ascii(remaining, b'\n');
        rest = after;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        let (name_len, value) = field_line_at(line.as_bytes())?;
        let (Some(name), Some(value)) = (line.get(..name_len), line.get(value)) else {
            return Err(ParseError::HeaderValue);
        };
        headers.append_text(name, value);
    }
    Ok(())
}

/// `s` before and after the first `byte` (ASCII, so both sides are whole UTF-8), or all of
/// `s` and `None`. A byte loop: head lines and targets are a few dozen bytes, too short for
/// `str::split`'s searcher to pay back its set-up (about 200 instructions a line).
pub(crate) fn split_at_ascii(s: &str, byte: u8) -> (&str, Option<&str>) {
    debug_assert!(byte.is_ascii());
    match find_byte(s.as_bytes(), byte) {
        Some(i) => (s.get(..i).unwrap_or(s), s.get(i + 1..)),
        None => (s, None),
    }
}

/// Parse `HTTP/DIGIT.DIGIT` (RFC 9112 §2.3).
fn parse_version(v: &[u8]) -> Result<Version, ParseError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major - b'0', minor - b'0') {
                (1, 0) => Ok(Version::Http10),
                // RFC 9112 §2.3: a recipient of a higher minor version of the major it
                // speaks answers in the highest minor it conforms to: HTTP/1.2 is 1.1.
                (1, _) => Ok(Version::Http11),
                (a, b) => Err(ParseError::UnsupportedVersion(a, b)),
            }
        }
        _ => Err(ParseError::Version),
    }
}

/// Parse a request head from the start of `buf`.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Parsed<RequestHead>, ParseError> {
    let mut head = RequestHead {
        method: String::new(),
        target: String::new(),
        version: Version::Http11,
        headers: Headers::new(),
    };
    Ok(match parse_request_head_into(buf, limits, &mut head)? {
        Parsed::Complete { consumed, .. } => Parsed::Complete {
            value: head,
            consumed,
        },
        Parsed::Partial => Parsed::Partial,
    })
}

/// [`parse_request_head`] into `head`, reusing the memory of its strings and fields (a
/// connection hands back its previous request's, so a keep-alive request allocates nothing
/// here). What `head` holds is replaced on `Complete`, unspecified otherwise.
pub fn parse_request_head_into(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Parsed<()>, ParseError> {
    let Some(span) = split_head(buf, limits)? else {
        check_partial_request(buf)?;
        return Ok(Parsed::Partial);
    };
    let block = buf.get(span.lines.clone()).unwrap_or(&[]);
    let mut lines = head_lines(block);
    let first = lines.next().ok_or(ParseError::RequestLine)?;
    let (method, target, version) = parse_request_line(first)?;
    head.headers.clear();
    // The fields' text is at most what follows the request line.
    head.headers
        .reserve_text(span.lines.len().saturating_sub(first.len()));
    // The fields start after the request line's LF (CRLF if its CR was stripped).
    let fields_at = first.len()
        + if block.get(first.len()) == Some(&b'\r') {
            2
        } else {
            1
        };
    match std::str::from_utf8(block.get(fields_at..).unwrap_or_default()) {
        Ok(text) => parse_fields_text(text, limits, &mut head.headers)?,
        // obs-text that is not UTF-8: field by field, made UTF-8 (U+FFFD).
        Err(_) => parse_fields(lines, limits, &mut head.headers)?,
    }
    // Both checked to be visible ASCII, hence UTF-8.
    head.method.clear();
    head.method
        .push_str(std::str::from_utf8(method).map_err(|_| ParseError::Method)?);
    head.target.clear();
    head.target
        .push_str(std::str::from_utf8(target).map_err(|_| ParseError::Target)?);
    head.version = version;
    Ok(Parsed::Complete {
        value: (),
        consumed: span.consumed,
    })
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3), exactly one SP between parts.
fn parse_request_line(line: &[u8]) -> Result<(&[u8], &[u8], Version), ParseError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::RequestLine);
    };
    if !is_token(method) {
        return Err(ParseError::Method);
    }
    if !is_target(target) {
        return Err(ParseError::Target);
    }
    Ok((method, target, parse_version(version)?))
}

/// request-target: visible ASCII only (the characters of RFC 3986; no SP, no controls).
fn is_target(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Reject an incomplete head as soon as what has arrived can no longer become valid (binary
/// junk, a TLS ClientHello, a bad field name), instead of waiting for the size limit or the
/// deadline. Complete lines are checked fully, the last, partial line by prefix.
fn check_partial_request(buf: &[u8]) -> Result<(), ParseError> {
    let mut start = 0;
    loop {
        match buf.get(start..) {
            Some([b'\r', b'\n', ..]) => start += 2,
            Some([b'\n', ..]) => start += 1,
            _ => break,
        }
    }
    let mut rest = buf.get(start..).unwrap_or(&[]);
    let mut first = true;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if first {
            parse_request_line(line)?;
        } else {
            field_line(line)?;
        }
        first = false;
        rest = &rest[nl + 1..];
    }
    if let Some(line) = rest.strip_suffix(b"\r") {
        // Only the LF is missing: the line is complete.
        if first {
            parse_request_line(line)?;
        } else if !line.is_empty() {
            field_line(line)?;
        }
        return Ok(());
    }
    let tail = rest;
    if first {
        let mut parts = tail.split(|&b| b == b' ');
        let method = parts.next().unwrap_or(&[]);
        if !method.iter().all(|&b| is_tchar(b)) {
            return Err(ParseError::Method);
        }
        if let Some(target) = parts.next() {
            if method.is_empty() {
                return Err(ParseError::Method);
            }
            if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
                return Err(ParseError::Target);
            }
        }
        if let Some(version) = parts.next() {
            if tail
                .split(|&b| b == b' ')
                .nth(1)
                .is_some_and(<[u8]>::is_empty)
            {
                return Err(ParseError::Target);
            }
            let pattern = b"HTTP/0.0";
            let fits = version.len() <= pattern.len()
                && version.iter().zip(pattern).all(|(&b, &p)| {
                    if p == b'0' {
                        b.is_ascii_digit()
                    } else {
                        b == p
                    }
                });
            if !fits {
                return Err(ParseError::Version);
            }
        }
        if parts.next().is_some() {
            return Err(ParseError::RequestLine);
        }
    } else {
        if tail.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(ParseError::ObsFold);
        }
        let (name, value) = match tail.iter().position(|&b| b == b':') {
            Some(c) => (&tail[..c], Some(&tail[c + 1..])),
            None => (tail, None),
        };
        if !name.iter().all(|&b| is_tchar(b)) || (value.is_some() && name.is_empty()) {
            return Err(ParseError::HeaderName);
        }
        if !value.unwrap_or(&[]).iter().all(|&b| is_field_value_byte(b)) {
            return Err(ParseError::HeaderValue);
        }
    }
    Ok(())
}

/// Parse a response head from the start of `buf` (used by the client).
pub fn parse_response_head(buf: &[u8], limits: &Limits) -> Result<Parsed<StatusHead>, ParseError> {
    let Some(span) = split_head(buf, limits)? else {
        return Ok(Parsed::Partial);
    };
    let consumed = span.consumed;
    let mut lines = head_lines(buf.get(span.lines.clone()).unwrap_or(&[]));
    let first = lines.next().ok_or(ParseError::StatusLine)?;
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4); a missing
    // final SP is tolerated, as most clients do.
    let version = first.get(..8).ok_or(ParseError::StatusLine)?;
    let version = parse_version(version)?;
    let code = match first.get(8..12) {
        Some([b' ', a, b, c]) if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(ParseError::StatusLine),
    };
    let reason = match first.get(12..) {
        None | Some([]) => &[][..],
        Some([b' ', rest @ ..]) => rest,
        Some(_) => return Err(ParseError::StatusLine),
    };
    if !reason.iter().all(|&b| is_field_value_byte(b)) {
        return Err(ParseError::StatusLine);
    }
    let mut headers = Headers::new();
    headers.reserve_text(span.lines.len().saturating_sub(first.len()));
    parse_fields(lines, limits, &mut headers)?;
    Ok(Parsed::Complete {
        value: StatusHead {
            version,
            status: code,
            reason: String::from_utf8_lossy(reason).into_owned(),
            headers,
        },
        consumed,
    })
}

/// Why a chunked body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk-size line is not hex digits (plus extensions) ending in CRLF.
    BadSize,
    /// The chunk size does not fit in 64 bits.
    SizeOverflow,
    /// A chunk extension is too long or contains forbidden bytes.
    BadExtension,
    /// The CRLF after the chunk data is missing.
    MissingCrlf,
    /// A trailer field is malformed, or the trailer section is too large.
    BadTrailer,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ChunkError::BadSize => "malformed chunk size",
            ChunkError::SizeOverflow => "chunk size overflow",
            ChunkError::BadExtension => "malformed chunk extension",
            ChunkError::MissingCrlf => "missing CRLF after chunk data",
            ChunkError::BadTrailer => "malformed trailer section",
        };
        f.write_str(s)
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the size: BWS, then `;` extensions, until CR.
    Ext,
    /// Expecting the LF of the size line.
    SizeLf,
    /// Copying chunk data; this many bytes are left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Reading a trailer line (or the final empty line).
    Trailer,
    /// Expecting the LF of a trailer line.
    TrailerLf,
    /// The last chunk and the trailer section have been read.
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
///
/// ```text
///  chunked-body = *chunk last-chunk trailer-section CRLF
///  chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
///  last-chunk   = 1*("0") [ chunk-ext ] CRLF
///  e.g.  "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: usize,
    ext_len: usize,
    line: Vec<u8>,
    trailer_bytes: usize,
    trailers: Headers,
}

/// Longest accepted chunk-ext per chunk.
const MAX_EXT_LEN: usize = 4096;
/// Largest accepted trailer section.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
            ext_len: 0,
            line: Vec::new(),
            trailer_bytes: 0,
            trailers: Headers::new(),
        }
    }

    /// True once the last chunk and the trailer section have been decoded.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Bytes of the current chunk announced but not yet decoded (lets a caller refuse an
    /// oversized body as soon as the chunk size arrives).
    pub fn remaining_in_chunk(&self) -> u64 {
        match self.state {
            ChunkState::Data(left) => left,
            _ => 0,
        }
    }

    /// Trailer fields received after the last chunk.
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// Decode from `input`, appending chunk data to `out`. Returns how many bytes of `input`
    /// were consumed; once [`is_done`](Self::is_done), the rest of `input` is not touched
    /// (it belongs to the next message).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let avail = input.len() - i;
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(avail);
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                    continue;
                }
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(ChunkError::SizeOverflow)?;
                    }
                    None if self.digits == 0 => return Err(ChunkError::BadSize),
                    None if b == b'\r' => self.state = ChunkState::SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.ext_len = 1;
                        self.state = ChunkState::Ext;
                    }
                    None => return Err(ChunkError::BadSize),
                },
                ChunkState::Ext => {
                    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): we do not
                    // use extensions, so only bound them and refuse control bytes (a bare LF
                    // here is a known smuggling vector).
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if !is_field_value_byte(b) {
                        return Err(ChunkError::BadExtension);
                    } else {
                        self.ext_len += 1;
                        if self.ext_len > MAX_EXT_LEN {
                            return Err(ChunkError::BadExtension);
                        }
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadSize);
                    }
                    self.state = if self.size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(self.size)
                    };
                    self.size = 0;
                    self.digits = 0;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(ChunkError::BadTrailer);
                    }
                    if b == b'\r' {
                        self.state = ChunkState::TrailerLf;
                    } else {
                        self.line.push(b);
                    }
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadTrailer);
                    }
                    if self.line.is_empty() {
                        self.state = ChunkState::Done;
                    } else {
                        let (name, value) =
                            field_line(&self.line).map_err(|_| ChunkError::BadTrailer)?;
                        self.trailers.append_bytes(name, value);
                        self.line.clear();
                        self.state = ChunkState::Trailer;
                    }
                }
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Parsed<RequestHead>, ParseError> {
        parse_request_head(s.as_bytes(), &Limits::default())
    }

    fn complete(s: &str) -> (RequestHead, usize) {
        match req(s) {
            Ok(Parsed::Complete { value, consumed }) => (value, consumed),
            other => panic!("expected complete parse of {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let (h, n) = complete("GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\nrest");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a?b=c");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.headers.get("host"), Some("x"));
        assert_eq!(h.headers.get("ACCEPT"), Some("*/*"));
        assert_eq!(
            n,
            "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\n".len()
        );
    }

    /// Parsing into a previous request's head replaces all of it (and reuses its memory).
    #[test]
    fn parse_into_a_reused_head() {
        let (mut head, _) =
            complete("POST /a/long/target?q HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
        let at = head.target.as_ptr();
        let second = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nnext";
        assert_eq!(
            parse_request_head_into(second, &Limits::default(), &mut head),
            Ok(Parsed::Complete {
                value: (),
                consumed: second.len() - 4
            })
        );
        assert_eq!(head, complete("GET /x HTTP/1.1\r\nHost: h\r\n\r\n").0);
        assert_eq!(head.target.as_ptr(), at);
    }

    #[test]
    fn partial_until_empty_line() {
        let full = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(req(&full[..cut]), Ok(Parsed::Partial), "cut at {cut}");
        }
        assert!(
            matches!(req(full), Ok(Parsed::Complete { consumed, .. }) if consumed == full.len())
        );
    }

    #[test]
    fn bare_lf_and_leading_empty_lines() {
        let (h, n) = complete("\r\n\nGET / HTTP/1.0\nHost: x\n\n");
        assert_eq!(h.version, Version::Http10);
        assert_eq!(n, "\r\n\nGET / HTTP/1.0\nHost: x\n\n".len());
    }

    #[test]
    fn request_line_errors() {
        assert_eq!(req("GET  / HTTP/1.1\r\n\r\n"), Err(ParseError::RequestLine));
        assert_eq!(
            req("GET / HTTP/1.1 x\r\n\r\n"),
            Err(ParseError::RequestLine)
        );
        assert_eq!(req("GET /\r\n\r\n"), Err(ParseError::RequestLine));
        assert_eq!(req("G(T / HTTP/1.1\r\n\r\n"), Err(ParseError::Method));
        assert_eq!(req("GET /\x01 HTTP/1.1\r\n\r\n"), Err(ParseError::Target));
        assert_eq!(req("GET / HTTP/1.x\r\n\r\n"), Err(ParseError::Version));
        assert_eq!(req("GET / http/1.1\r\n\r\n"), Err(ParseError::Version));
        assert_eq!(req("GET / HTTP/11\r\n\r\n"), Err(ParseError::Version));
        // Rejected before the head is complete.
        assert_eq!(req("\x16\x03\x01\x02\x00"), Err(ParseError::Method));
        assert_eq!(req("GET /\0"), Err(ParseError::Target));
        assert_eq!(req("GET / HTTP/1.1x"), Err(ParseError::Version));
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost : x"),
            Err(ParseError::HeaderName)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: x\r\n y"),
            Err(ParseError::ObsFold)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: \x01"),
            Err(ParseError::HeaderValue)
        );
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\nA"), Ok(Parsed::Partial));
        assert_eq!(
            req("GET / HTTP/2.0\r\n\r\n"),
            Err(ParseError::UnsupportedVersion(2, 0))
        );
        assert_eq!(
            req("GET / HTTP/0.9\r\n\r\n").unwrap_err().status(),
            505,
            "major 0"
        );
        // RFC 9112 §2.3: any HTTP/1.x above 1.1 is taken (and answered) as HTTP/1.1.
        for v in ["1.2", "1.9"] {
            match req(&format!("GET / HTTP/{v}\r\nHost: x\r\n\r\n")) {
                Ok(Parsed::Complete { value, .. }) => assert_eq!(value.version, Version::Http11),
                other => panic!("HTTP/{v}: {other:?}"),
            }
        }
    }

    #[test]
    fn field_errors() {
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            Err(ParseError::WhitespaceBeforeColon)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"),
            Err(ParseError::ObsFold)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Err(ParseError::HeaderName)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\n: x\r\n\r\n"),
            Err(ParseError::HeaderName)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nA(: x\r\n\r\n"),
            Err(ParseError::HeaderName)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nA: x\0y\r\n\r\n"),
            Err(ParseError::HeaderValue)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nA: x\ry\r\n\r\n"),
            Err(ParseError::HeaderValue)
        );
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 2,
        };
        let big = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_request_head(big.as_bytes(), &limits),
            Err(ParseError::StartLineTooLong)
        );
        assert_eq!(ParseError::StartLineTooLong.status(), 414);
        // Too large even before any line end arrives.
        assert_eq!(
            parse_request_head(&[b'a'; 65], &limits),
            Err(ParseError::StartLineTooLong)
        );
        // A short request line with too many field bytes is 431.
        let fields = format!("GET / HTTP/1.1\r\nA: {}\r\n", "b".repeat(60));
        assert_eq!(
            parse_request_head(fields.as_bytes(), &limits),
            Err(ParseError::HeadTooLarge)
        );
        assert_eq!(ParseError::HeadTooLarge.status(), 431);
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(
            parse_request_head(many.as_bytes(), &limits),
            Err(ParseError::TooManyHeaders)
        );
        let ok = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n";
        assert!(matches!(
            parse_request_head(ok.as_bytes(), &limits),
            Ok(Parsed::Complete { .. })
        ));
    }

    #[test]
    fn status_lines() {
        let p = |s: &str| parse_response_head(s.as_bytes(), &Limits::default());
        match p("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc") {
            Ok(Parsed::Complete { value, consumed }) => {
                assert_eq!(value.status, 404);
                assert_eq!(value.reason, "Not Found");
                assert_eq!(value.headers.get("content-length"), Some("3"));
                assert_eq!(consumed, 45);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p("HTTP/1.0 200\r\n\r\n"),
            Ok(Parsed::Complete { .. })
        ));
        assert!(matches!(
            p("HTTP/1.1 200 \r\n\r\n"),
            Ok(Parsed::Complete { .. })
        ));
        assert_eq!(p("HTTP/1.1 20 OK\r\n\r\n"), Err(ParseError::StatusLine));
        assert_eq!(p("HTTP/1.1 2000 OK\r\n\r\n"), Err(ParseError::StatusLine));
        assert_eq!(p("HTTX/1.1 200 OK\r\n\r\n"), Err(ParseError::Version));
        assert_eq!(p("HTTP/1.1 200 OK\r\n"), Ok(Parsed::Partial));
    }

    fn dechunk(input: &[u8]) -> Result<(Vec<u8>, usize, ChunkedDecoder), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        Ok((out, n, d))
    }

    #[test]
    fn chunked_basic_ext_trailers() {
        let body = b"4\r\nWiki\r\n5;name=\"v\"\r\npedia\r\nD \r\n in\r\n\r\nchunks\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let (out, n, d) = dechunk(body).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks");
        assert!(d.is_done());
        assert_eq!(&body[n..], b"NEXT");
        assert_eq!(d.trailers().get("expires"), Some("never"));
    }

    #[test]
    fn chunked_byte_at_a_time() {
        let body = b"3;x\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for b in body.iter() {
            assert_eq!(d.decode(std::slice::from_ref(b), &mut out), Ok(1));
        }
        assert!(d.is_done());
        assert_eq!(out, b"abc0123456789abcdef");
    }

    #[test]
    fn chunked_errors() {
        assert_eq!(dechunk(b"x\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(dechunk(b"\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(dechunk(b"3\nabc").unwrap_err(), ChunkError::BadSize);
        assert_eq!(dechunk(b"3\r\nabcX").unwrap_err(), ChunkError::MissingCrlf);
        assert_eq!(
            dechunk(b"3;a\nb\r\n").unwrap_err(),
            ChunkError::BadExtension
        );
        assert_eq!(
            dechunk(b"fffffffffffffffff\r\n").unwrap_err(),
            ChunkError::SizeOverflow
        );
        assert_eq!(
            dechunk(b"0\r\nbad trailer\r\n\r\n").unwrap_err(),
            ChunkError::BadTrailer
        );
        let (_, _, d) = dechunk(b"5\r\nab").unwrap();
        assert!(!d.is_done());
        assert_eq!(d.remaining_in_chunk(), 3);
    }

    /// Random and truncated inputs never panic any parser.
    #[test]
    fn fuzz_never_panics() {
        let seeds: &[&[u8]] = &[
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let limits = Limits {
            max_head_bytes: 256,
            max_headers: 4,
        };
        for _ in 0..20_000 {
            let seed = seeds[(rnd() % seeds.len() as u64) as usize];
            let mut input = seed.to_vec();
            for _ in 0..(rnd() % 4) {
                let pos = (rnd() % input.len() as u64) as usize;
                match rnd() % 3 {
                    0 => input[pos] = rnd() as u8,
                    1 => input.insert(pos, b"\r\n: ;0"[(rnd() % 6) as usize]),
                    _ => input.truncate(pos),
                }
                if input.is_empty() {
                    break;
                }
            }
            let _ = parse_request_head(&input, &limits);
            let _ = parse_response_head(&input, &limits);
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            if let Ok(n) = d.decode(&input, &mut out) {
                assert!(n <= input.len());
            }
        }
    }

    /// Parse `raw` with both parsers and assert they agree: both reject, both want more
    /// bytes, or both accept with the same consumed length, method, target, version, fields.
    /// `truncated`: `raw` is a cut-off head, where the documented early-rejection
    /// differences are allowed.
    fn agree_with_httparse(raw: &[u8], truncated: bool) {
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut theirs = httparse::Request::new(&mut storage);
        let their = theirs.parse(raw);
        let ours = parse_request_head(raw, &Limits::default());
        let shown = String::from_utf8_lossy(raw);
        match (their, ours) {
            (Ok(httparse::Status::Complete(n)), Ok(Parsed::Complete { value, consumed })) => {
                assert_eq!(n, consumed, "{shown:?}");
                assert_eq!(theirs.method, Some(value.method.as_str()), "{shown:?}");
                assert_eq!(theirs.path, Some(value.target.as_str()), "{shown:?}");
                let v = match value.version {
                    Version::Http10 => 0,
                    Version::Http11 => 1,
                };
                assert_eq!(theirs.version, Some(v), "{shown:?}");
                let theirs_h: Vec<(String, String)> = theirs
                    .headers
                    .iter()
                    .map(|h| {
                        let v = trim_ows(h.value);
                        (h.name.to_string(), String::from_utf8_lossy(v).into_owned())
                    })
                    .collect();
                let ours_h: Vec<(String, String)> = value
                    .headers
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
                assert_eq!(theirs_h, ours_h, "{shown:?}");
            }
            (Ok(httparse::Status::Partial), Ok(Parsed::Partial)) => {}
            (Err(_), Err(_)) => {}
            // We reject some incomplete heads earlier than httparse (e.g. a non-ASCII byte in
            // a partial request-target); it rejects them once complete.
            (Ok(httparse::Status::Partial), Err(_)) if truncated => {}
            // httparse knows only HTTP/1.0 and 1.1; RFC 9112 §2.3 has a higher 1.x minor
            // served as 1.1.
            (Err(httparse::Error::Version), Ok(Parsed::Complete { value, .. }))
                if value.version == Version::Http11 && higher_minor(raw) => {}
            // httparse rejects `HTTP/2` before the line ends; we wait for the whole version
            // to answer 505 rather than 400.
            (Err(httparse::Error::Version), Ok(Parsed::Partial)) if truncated => {}
            (t, o) => panic!("disagreement on {shown:?}: httparse {t:?}, ours {o:?}"),
        }
    }

    /// Whether the request line of `raw` names HTTP/1.2 to HTTP/1.9.
    fn higher_minor(raw: &[u8]) -> bool {
        let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        matches!(line.rsplit(|&b| b == b' ').next(), Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', m]) if (b'2'..=b'9').contains(m))
    }

    /// Differential test: on a corpus of requests, our parser and httparse agree on whether
    /// the head is valid, and on its contents when it is.
    #[test]
    fn differential_against_httparse() {
        let corpus: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"GET /index.html?x=1&y=%20 HTTP/1.0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://a.b/c HTTP/1.1\r\nHost: a.b\r\n\r\n",
            b"PATCH /x HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
            b"GET / HTTP/1.1\nHost: lf\n\n",
            b"M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n",
            b"GET /~user/!$&'()*+,;=:@ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b: c\r\n\r\n",
            // invalid
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n",
            b"G\x7fT / HTTP/1.1\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA\x00b: c\r\n\r\n",
            b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        ];
        for raw in corpus {
            agree_with_httparse(raw, false);
        }
    }

    /// Differential test on mutants: one random byte replaced or inserted in a valid request,
    /// whole and truncated.
    #[test]
    fn differential_mutants_against_httparse() {
        let seeds: &[&[u8]] = &[
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: b c\r\n\r\n",
            b"POST /echo HTTP/1.0\r\nA:b\r\n\r\n",
        ];
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..30_000 {
            let mut input = seeds[(rnd() % seeds.len() as u64) as usize].to_vec();
            let pos = (rnd() % (input.len() as u64 - 4)) as usize;
            if rnd() % 2 == 0 {
                input[pos] = rnd() as u8;
            } else {
                input.insert(pos, rnd() as u8);
            }
            agree_with_httparse(&input, false);
            // And a truncated copy: both must say Partial, or both reject early.
            let cut = (rnd() % input.len() as u64) as usize;
            agree_with_httparse(&input[..cut], true);
        }
    }

    #[test]
    fn find_byte_finds_what_position_finds() {
        // Every length around the 8-byte words, the needle at every place, once or twice,
        // next to bytes a borrow could confuse (needle ± 1, 0x00, 0x80, 0xff).
        for needle in [b'\n', b':', 0u8, 0x80, 0xff] {
            for len in 0..40 {
                for fill in [
                    b'a',
                    needle.wrapping_add(1),
                    needle.wrapping_sub(1),
                    0,
                    0x80,
                    0xff,
                ] {
                    let mut hay = vec![fill; len];
                    let want = hay.iter().position(|&b| b == needle);
                    assert_eq!(find_byte(&hay, needle), want, "{hay:?} {needle}");
                    for at in 0..len {
                        hay[at] = needle;
                        for later in at..len {
                            let mut h = hay.clone();
                            h[later] = needle;
                            let want = h.iter().position(|&b| b == needle);
                            assert_eq!(find_byte(&h, needle), want, "{h:?} {needle}");
                        }
                        hay[at] = fill;
                    }
                }
            }
        }
    }

    #[test]
    fn split_at_ascii_cuts_as_str_split_does() {
        for s in ["", "a", "a\nb", "\n", "a\n\nb", "a\n", "é\nü\n", "/p?q#f?g"] {
            for byte in [b'\n', b'?', b'#'] {
                let mut ours = Vec::new();
                let mut rest = Some(s);
                while let Some(r) = rest {
                    let (piece, after) = split_at_ascii(r, byte);
                    ours.push(piece);
                    rest = after;
                }
                let std: Vec<&str> = s.split(char::from(byte)).collect();
                assert_eq!(ours, std, "{s:?} at {:?}", char::from(byte));
            }
        }
    }
}
