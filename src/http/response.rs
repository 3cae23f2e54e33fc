//! The response a [`Handler`](super::Handler) returns, and how it is put on the wire.

use std::fs::File;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::parse::is_token;
use super::request::Headers;

/// A response body. Files are streamed in [`FILE_CHUNK`]-sized pieces, never read whole.
#[derive(Debug)]
pub enum Body {
    /// No body (Content-Length: 0).
    Empty,
    /// Owned bytes.
    Bytes(Vec<u8>),
    /// Bytes compiled into the binary (the built-in site).
    Static(&'static [u8]),
    /// Bytes shared with whoever else holds them (a cached file): each response takes a
    /// reference, not a copy.
    Shared(Arc<[u8]>),
    /// An open file, `len` bytes of which are sent from its current position.
    File {
        /// The open file.
        file: File,
        /// How many bytes to send (the Content-Length).
        len: u64,
    },
}

impl Body {
    /// The body's length, announced as Content-Length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Static(b) => b.len() as u64,
            Body::Shared(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// True if the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Size of the pieces a file body is streamed in.
pub const FILE_CHUNK: usize = 64 * 1024;

/// A response: status, header fields, body. The server adds `Date`, `Server`,
/// `Content-Length` and `Connection` itself.
#[derive(Debug)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header fields set by the handler (framing fields are ignored: the server owns them).
    pub headers: Headers,
    /// The body.
    pub body: Body,
}

impl Response {
    /// A response with the given status, no fields and no body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Headers::new(),
            body: Body::Empty,
        }
    }

    /// Builder: add a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Builder: set the body.
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// A response with a body of the given content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response::new(status)
            .with_header("Content-Type", content_type)
            .with_body(Body::Bytes(body))
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::bytes(
            status,
            "text/plain; charset=utf-8",
            text.into().into_bytes(),
        )
    }

    /// A short plain-text error page: `404 Not Found`.
    pub fn error(status: u16) -> Self {
        Response::text(status, format!("{status} {}\n", reason_phrase(status)))
    }

    /// 405 with the `Allow` field listing the methods the resource supports (RFC 9110 §15.5.6).
    pub fn method_not_allowed(allow: &str) -> Self {
        Response::error(405).with_header("Allow", allow)
    }
}

/// The canonical reason phrase of a status code (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// True if a response with this status never has a body (RFC 9110 §6.4.1).
pub(crate) fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Format a time as an IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (H. Hinnant's algorithm), for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = months[(month - 1) as usize % 12];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7). The obsolete
/// RFC 850 and asctime forms are not accepted; a recipient may treat them as invalid, which
/// for `If-Modified-Since` just means "send the full response".
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let day = num(5..7)?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| s.get(8..11) == Some(*m))? as u64 + 1;
    let year = num(12..16)?;
    let (h, m, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days-from-civil (H. Hinnant's algorithm), for years >= 1970.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// How the server frames a response on the wire.
pub(crate) struct WireOptions {
    /// HEAD request: send the fields (with the GET's Content-Length) but no body.
    pub head_only: bool,
    /// Send `Connection: close` (the connection ends after this response).
    pub close: bool,
    /// Send `Connection: keep-alive` (an HTTP/1.0 client asked for a persistent connection).
    pub keep_alive_10: bool,
}

/// The response's date, as seconds since the Unix epoch, read from the wall clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

thread_local! {
    /// The last formatted Date and its second: formatting an IMF-fixdate costs more than
    /// the rest of a small response head, and it changes once a second.
    static DATE_CACHE: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// Append the IMF-fixdate of `unix_secs` to `out`, formatting at most once per second per
/// thread.
pub(crate) fn push_date(out: &mut Vec<u8>, unix_secs: u64) {
    DATE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != unix_secs {
            cache.1 = http_date(UNIX_EPOCH + std::time::Duration::from_secs(unix_secs));
            cache.0 = unix_secs;
        }
        out.extend_from_slice(cache.1.as_bytes());
    });
}

/// Append the decimal digits of `n` to `out` (no formatting machinery on the hot path).
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Header fields the server writes itself; a handler's copies are dropped.
fn owned_by_server(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "date",
        "server",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// The bytes a response field value may hold: HTAB, SP, visible ASCII and obs-text, not
/// CR, LF or other controls (RFC 9110 §5.5). A table: every byte of every value of every
/// response is checked.
static FIELD_VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b == 0x09 || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    table
};

/// Every byte of `value` is allowed in a field value ([`FIELD_VALUE`]). Eight bytes at a
/// time: a word with no byte below 0x20 and none equal to 0x7f is all allowed bytes (the
/// common case: the values of a file's response are about a hundred such bytes); a word
/// that may hold one (an HTAB, which is allowed, or a control) is checked byte by byte.
/// `(x − n·0x01…01) & !x & 0x80…80` is non-zero exactly when some byte of `x` is below
/// `n` (n ≤ 0x80).
fn valid_field_value(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = value.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            return false;
        };
        let x = u64::from_le_bytes(bytes);
        let del = x ^ (ONES * 0x7f);
        let suspect = (x.wrapping_sub(ONES * 0x20) & !x) | (del.wrapping_sub(ONES) & !del);
        if suspect & HIGHS != 0 && !chunk.iter().all(|&b| FIELD_VALUE[usize::from(b)]) {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| FIELD_VALUE[usize::from(b)])
}

/// Serialize a response head (status line, `Date`, `Server`, the handler's fields,
/// `Content-Length`, `Connection`, empty line) onto `head`, for the sans-IO connection
/// (`http::conn`) that both servers drive. `unix_secs` is the Date.
pub(crate) fn write_head(
    head: &mut Vec<u8>,
    status: u16,
    headers: &Headers,
    body_len: u64,
    opts: &WireOptions,
    unix_secs: u64,
) {
    // Always our highest version (RFC 9110 §6.2), also in reply to HTTP/1.0 requests.
    head.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(head, u64::from(status));
    head.push(b' ');
    head.extend_from_slice(reason_phrase(status).as_bytes());
    head.extend_from_slice(b"\r\nDate: ");
    push_date(head, unix_secs);
    head.extend_from_slice(b"\r\nServer: tunstack\r\n");
    for (name, value) in headers.iter() {
        if owned_by_server(name) {
            continue;
        }
        // A handler must not be able to split the response with CR/LF in a field.
        let valid = is_token(name.as_bytes()) && valid_field_value(value.as_bytes());
        if !valid {
            log::warn!("dropping invalid response field {name:?}");
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !status_has_no_body(status) {
        head.extend_from_slice(b"Content-Length: ");
        push_decimal(head, body_len);
        head.extend_from_slice(b"\r\n");
    }
    if opts.close {
        head.extend_from_slice(b"Connection: close\r\n");
    } else if opts.keep_alive_10 {
        head.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn field_values_are_checked_as_the_table_says() {
        // Every byte at every place of values around the word size, among bytes a borrow
        // could confuse.
        for len in 1..20 {
            for fill in [b'a', 0x20, 0x21, 0x7e, 0x80, 0xff, 0x09] {
                for bad in 0..=255u8 {
                    for at in 0..len {
                        let mut v = vec![fill; len];
                        v[at] = bad;
                        let want = v.iter().all(|&b| FIELD_VALUE[usize::from(b)]);
                        assert_eq!(valid_field_value(&v), want, "{v:?}");
                    }
                }
            }
        }
        assert!(valid_field_value(b""));
        assert!(!valid_field_value(b"text/html\r\nInjected: yes"));
        assert!(valid_field_value(b"\"1a2b-400-17f3\"\tW/\"x\" \xe9"));
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
        for t in [
            t,
            leap,
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        ] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:4x:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT\u{e9}"), None);
    }

    /// The head `write_head` makes for `resp` on a closing connection (dated at the epoch).
    fn wire(resp: Response) -> String {
        const CLOSE: WireOptions = WireOptions {
            head_only: false,
            close: true,
            keep_alive_10: false,
        };
        let mut out = Vec::new();
        let len = resp.body.len();
        write_head(&mut out, resp.status, &resp.headers, len, &CLOSE, 0);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn serialization() {
        let r = Response::text(200, "hi")
            .with_header("X-Bad", "a\r\nInjected: yes")
            .with_header("Content-Length", "999");
        let s = wire(r);
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{s}");
        assert!(s.contains("\r\nServer: tunstack\r\n"));
        assert!(s.contains("\r\nContent-Length: 2\r\n"));
        assert!(s.contains("\r\nConnection: close\r\n"));
        assert!(!s.contains("Injected"));
        assert!(!s.contains("999"));
        assert!(s.ends_with("\r\nConnection: close\r\n\r\n"), "{s}");
        let nc = wire(Response::new(204));
        assert!(!nc.contains("Content-Length"));
    }
}
