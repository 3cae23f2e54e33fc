//! A minimal HTTP/1.1 client: one `GET` over any `Read + Write` stream.
//!
//! The caller connects (over tunstack's sockets or `std::net`) and hands over the stream;
//! [`get`] sends the request with `Connection: close`, parses the status line and fields with
//! the same parser as the server, and streams the body to `out`, delimited by Content-Length,
//! chunked coding, or the end of the connection (RFC 9112 §6.3).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::parse::{
    parse_response_head, ChunkError, ChunkedDecoder, Limits, ParseError, Parsed, StatusHead,
};
use super::request::{Headers, Version};

/// An `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host as written: an IPv4 literal, an IPv6 literal (without its brackets) or a
    /// name (resolving names is the caller's job).
    pub host: String,
    /// The port (80 if absent).
    pub port: u16,
    /// Path and query, starting with `/` (the fragment is dropped).
    pub path: String,
}

impl Url {
    /// Parse `http://host[:port][/path][?query][#fragment]`.
    pub fn parse(s: &str) -> Result<Url, ClientError> {
        let bad = |why: &str| ClientError::InvalidUrl(format!("{s}: {why}"));
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("expected http://"))?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(ClientError::UnsupportedScheme(scheme.to_string()));
        }
        let rest = rest.split('#').next().unwrap_or(rest);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        // RFC 3986 §3.2.2: an IPv6 literal is written in brackets, `[fd00::2]:8080`.
        let (literal6, authority) = match authority.strip_prefix('[') {
            Some(rest) => {
                let (inside, after) = rest.split_once(']').ok_or_else(|| bad("missing ]"))?;
                let addr: Ipv6Addr = inside.parse().map_err(|_| bad("invalid IPv6 address"))?;
                if !after.is_empty() && !after.starts_with(':') {
                    return Err(bad("invalid port"));
                }
                (Some(addr), after)
            }
            None => (None, authority),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, "")) => (h, 80),
            Some((h, p)) => {
                if !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("invalid port"));
                }
                let port: u16 = p.parse().map_err(|_| bad("invalid port"))?;
                if port == 0 {
                    return Err(bad("port 0"));
                }
                (h, port)
            }
            None => (authority, 80),
        };
        let host = match literal6 {
            Some(addr) => return Url::finish(s, addr.to_string(), port, path),
            None => host,
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(bad("invalid host"));
        }
        Url::finish(s, host.to_ascii_lowercase(), port, path)
    }

    /// The path checked and normalised, and the URL.
    fn finish(s: &str, host: String, port: u16, path: &str) -> Result<Url, ClientError> {
        let bad = |why: &str| ClientError::InvalidUrl(format!("{s}: {why}"));
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if !path.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad(
                "the path must be percent-encoded (no spaces or control characters)",
            ));
        }
        Ok(Url { host, port, path })
    }

    /// The host as an IPv4 address, if it is an IPv4 literal.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.host.parse().ok()
    }

    /// The host as an address, if it is an IPv4 or IPv6 literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The value of the `Host` field: `host` or `host:port` (RFC 9110 §7.2), an IPv6
    /// literal in brackets (RFC 3986 §3.2.2).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
    }
}

/// The status line and header fields of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The server's version.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// Only `http` is supported.
    UnsupportedScheme(String),
    /// Transport error.
    Io(io::Error),
    /// The response head is malformed.
    BadResponse(ParseError),
    /// The framing fields of the response are invalid.
    BadFraming(&'static str),
    /// The chunked body is malformed.
    BadChunk(ChunkError),
    /// The connection ended before the response was complete.
    Truncated {
        /// Body bytes received.
        received: u64,
        /// Body bytes announced (None for chunked).
        expected: Option<u64>,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(s) => write!(f, "invalid URL {s}"),
            ClientError::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme {s:?}: only http:// is supported")
            }
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::BadResponse(e) => write!(f, "malformed response: {e}"),
            ClientError::BadFraming(e) => write!(f, "malformed response: {e}"),
            ClientError::BadChunk(e) => write!(f, "malformed chunked body: {e}"),
            ClientError::Truncated {
                received,
                expected: Some(n),
            } => write!(f, "connection closed after {received} of {n} body bytes"),
            ClientError::Truncated { received, .. } => {
                write!(
                    f,
                    "connection closed inside the chunked body after {received} bytes"
                )
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            ClientError::BadResponse(e) => Some(e),
            ClientError::BadChunk(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// Largest response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

fn read_some<T: Read>(stream: &mut T, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Send `GET url` on `stream`, write the body to `out`, and return the response head.
///
/// `progress(received, total)` is called after every piece of body written (`total` is the
/// Content-Length if known). Any status is returned as `Ok` (the body of a 404 is written
/// too); a body cut short is [`ClientError::Truncated`].
pub fn get<T: Read + Write>(
    mut stream: T,
    url: &Url,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<ResponseHead, ClientError> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tunstack/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes())?;
    stream.flush()?;

    let limits = Limits {
        max_head_bytes: MAX_RESPONSE_HEAD,
        max_headers: 256,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    // Interim 1xx responses (e.g. 100 Continue) are skipped (RFC 9110 §15.2).
    let head: StatusHead = loop {
        match parse_response_head(&buf, &limits).map_err(ClientError::BadResponse)? {
            Parsed::Complete { value, consumed } => {
                buf.drain(..consumed);
                if (100..200).contains(&value.status) && value.status != 101 {
                    continue;
                }
                break value;
            }
            Parsed::Partial => {
                let n = read_some(&mut stream, &mut chunk)?;
                if n == 0 {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before the response head was complete",
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    log::debug!("http client: {} {} from {url}", head.status, head.reason);

    let no_body = head.status == 204 || head.status == 304 || head.status < 200;
    let chunked = head
        .headers
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
    let length = if head.headers.contains("transfer-encoding") {
        None
    } else {
        content_length(&head.headers)?
    };

    let mut received = 0u64;
    if no_body {
        // Nothing to read.
    } else if chunked {
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::with_capacity(READ_CHUNK);
        loop {
            let used = decoder
                .decode(&buf, &mut data)
                .map_err(ClientError::BadChunk)?;
            buf.drain(..used);
            if !data.is_empty() {
                out.write_all(&data)?;
                received += data.len() as u64;
                data.clear();
                progress(received, None);
            }
            if decoder.is_done() {
                break;
            }
            let n = read_some(&mut stream, &mut chunk)?;
            if n == 0 {
                return Err(ClientError::Truncated {
                    received,
                    expected: None,
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(total) = length {
        let mut pending = std::mem::take(&mut buf);
        loop {
            let take = usize::try_from(total - received)
                .unwrap_or(usize::MAX)
                .min(pending.len());
            if take > 0 {
                out.write_all(&pending[..take])?;
                received += take as u64;
                progress(received, Some(total));
            }
            if received == total {
                break;
            }
            let n = read_some(&mut stream, &mut chunk)?;
            if n == 0 {
                return Err(ClientError::Truncated {
                    received,
                    expected: Some(total),
                });
            }
            pending.clear();
            pending.extend_from_slice(&chunk[..n]);
        }
    } else {
        // Delimited by the end of the connection (RFC 9112 §6.3 (8)).
        let mut pending = std::mem::take(&mut buf);
        loop {
            if !pending.is_empty() {
                out.write_all(&pending)?;
                received += pending.len() as u64;
                progress(received, None);
            }
            let n = read_some(&mut stream, &mut chunk)?;
            if n == 0 {
                break;
            }
            pending.clear();
            pending.extend_from_slice(&chunk[..n]);
        }
    }
    out.flush()?;
    Ok(ResponseHead {
        version: head.version,
        status: head.status,
        reason: head.reason,
        headers: head.headers,
    })
}

/// The Content-Length of a response, rejecting invalid or conflicting values.
fn content_length(headers: &Headers) -> Result<Option<u64>, ClientError> {
    let mut len = None;
    for v in headers.get_all("content-length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClientError::BadFraming("invalid Content-Length"));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| ClientError::BadFraming("invalid Content-Length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(ClientError::BadFraming("conflicting Content-Length values"));
        }
        len = Some(n);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://10.0.0.2/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.0.2", 80, "/")
        );
        assert_eq!(u.ipv4(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        let u = Url::parse("HTTP://Example.com:8080/a/b?c=d#frag").unwrap();
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 8080);
        assert_eq!(u.path, "/a/b?c=d");
        assert_eq!(u.host_header(), "example.com:8080");
        assert_eq!(u.ipv4(), None);
        assert_eq!(Url::parse("http://h?x").unwrap().path, "/?x");
        assert_eq!(Url::parse("http://h:/").unwrap().port, 80);
        assert_eq!(
            Url::parse("http://1.2.3.4:81").unwrap().to_string(),
            "http://1.2.3.4:81/"
        );
        assert!(matches!(
            Url::parse("https://h/"),
            Err(ClientError::UnsupportedScheme(_))
        ));
        for bad in [
            "10.0.0.2/",
            "http://",
            "http:///x",
            "http://h:99999/",
            "http://h:0/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://[fd00::g]/",
            "http://[fd00::2]x/",
            "http://[fd00::2]:0/",
            "http://h/a b",
            "http://h_/",
        ] {
            assert!(
                matches!(Url::parse(bad), Err(ClientError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bracketed_ipv6_literals() {
        // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]".
        let u = Url::parse("http://[fd00::2]/a?b").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("fd00::2", 80, "/a?b")
        );
        assert_eq!(u.ip(), Some("fd00::2".parse::<IpAddr>().unwrap()));
        assert_eq!(u.ipv4(), None);
        assert_eq!(u.host_header(), "[fd00::2]");
        let u = Url::parse("http://[FD00:0::2]:8080").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fd00::2", 8080));
        assert_eq!(u.host_header(), "[fd00::2]:8080");
        assert_eq!(u.to_string(), "http://[fd00::2]:8080/");
        assert_eq!(Url::parse("http://[::1]:/").unwrap().port, 80);
    }
}
