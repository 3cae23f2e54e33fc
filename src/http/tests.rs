//! End-to-end tests of the server, handlers and client over `std::net` on 127.0.0.1.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::client::{self, ClientError, Url};
use super::parse::{parse_response_head, Limits, Parsed, StatusHead};
use super::{site, Handler, Request, Response, Router, Server, ServerConfig, ShutdownHandle};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tunstack-http-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn start(handler: impl Handler, config: ServerConfig) -> (SocketAddr, ShutdownHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(handler, config);
    let handle = server.shutdown_handle();
    thread::spawn(move || server.serve(listener));
    (addr, handle)
}

fn start_standard(root: Option<&Path>) -> SocketAddr {
    start(Router::standard(root).unwrap(), ServerConfig::default()).0
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads responses one at a time from a connection, keeping leftover bytes.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn new(stream: TcpStream) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn head(&mut self) -> StatusHead {
        let limits = Limits::default();
        loop {
            if let Parsed::Complete { value, consumed } =
                parse_response_head(&self.buf, &limits).unwrap()
            {
                self.buf.drain(..consumed);
                return value;
            }
            assert!(self.fill() > 0, "EOF before a response head");
        }
    }

    /// One response; `head_request` means no body follows whatever Content-Length says.
    fn response(&mut self, head_request: bool) -> (StatusHead, Vec<u8>) {
        let head = self.head();
        let len: usize = if head_request {
            0
        } else {
            head.headers.get("content-length").unwrap().parse().unwrap()
        };
        while self.buf.len() < len {
            assert!(self.fill() > 0, "EOF inside a body");
        }
        let body = self.buf.drain(..len).collect();
        (head, body)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// True if the server closed the connection (EOF) with nothing more to read.
    fn at_eof(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}

fn exchange(addr: SocketAddr, request: &[u8]) -> (StatusHead, Vec<u8>) {
    let mut r = Reader::new(connect(addr));
    r.write(request);
    r.response(request.starts_with(b"HEAD"))
}

/// Send raw bytes and read everything until the server closes.
fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn status_of(resp: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(resp);
    s.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn builtin_site_get_and_head() {
    let addr = start_standard(None);
    let index = site::file("index.html").unwrap();
    let mut r = Reader::new(connect(addr));
    r.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (h, body) = r.response(false);
    assert_eq!(h.status, 200);
    assert_eq!(
        h.headers.get("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(h.headers.get("server"), Some("tunstack"));
    assert!(h.headers.get("date").unwrap().ends_with(" GMT"));
    assert_eq!(body, index);
    // HEAD on the same (kept-alive) connection: same Content-Length, no body, so the next
    // response must start right after the head.
    r.write(b"HEAD /style.css HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    let (h, _) = r.response(true);
    assert_eq!(h.status, 200);
    assert_eq!(
        h.headers.get("content-type"),
        Some("text/css; charset=utf-8")
    );
    let css_len = site::file("style.css").unwrap().len().to_string();
    assert_eq!(h.headers.get("content-length"), Some(css_len.as_str()));
    let (h, _) = r.response(false);
    assert_eq!(h.status, 404);
    for path in ["/handshake.html", "/favicon.svg"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(exchange(addr, req.as_bytes()).0.status, 200, "{path}");
    }
    let (h, _) = exchange(addr, b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.status, 405);
    assert_eq!(h.headers.get("allow"), Some("GET, HEAD"));
}

/// A root with a big file (`big_len` pseudo-random bytes), a subdirectory with an index, and a secret outside the root
/// (plus a symlink to it inside).
struct Fixture {
    _outer: TempDir,
    root: PathBuf,
    big: Vec<u8>,
}

fn fixture(big_len: usize) -> Fixture {
    let outer = TempDir::new();
    let root = outer.0.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(outer.0.join("secret.txt"), b"TOP-SECRET").unwrap();
    fs::write(root.join("a.txt"), b"hello from a.txt\n").unwrap();
    fs::write(root.join("sub/index.html"), b"<p>sub</p>").unwrap();
    fs::write(root.join("data.json"), b"{}").unwrap();
    let big = pseudo_random(big_len, 7);
    fs::write(root.join("big.bin"), &big).unwrap();
    std::os::unix::fs::symlink(outer.0.join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outer.0, root.join("up")).unwrap();
    Fixture {
        _outer: outer,
        root,
        big,
    }
}

#[test]
fn root_dir_files_redirects_and_streaming() {
    let fx = fixture(20 * 1024 * 1024);
    let addr = start_standard(Some(&fx.root));
    let (h, body) = exchange(addr, b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.status, 200);
    assert_eq!(body, b"hello from a.txt\n");
    assert_eq!(
        h.headers.get("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // Conditional GET: unchanged since Last-Modified → 304, no body.
    let lm = h.headers.get("last-modified").unwrap().to_string();
    let req = format!("GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\n\r\n");
    let mut r = Reader::new(connect(addr));
    r.write(req.as_bytes());
    let (h304, _) = r.response(true);
    assert_eq!(h304.status, 304);
    assert_eq!(h304.headers.get("content-length"), None);
    // The connection is still in sync: the next response follows directly.
    r.write(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n");
    assert_eq!(r.response(false).0.status, 200);
    let (h, _) = exchange(addr, b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.headers.get("content-type"), Some("application/json"));
    let (h, _) = exchange(addr, b"GET /sub?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.status, 301);
    assert_eq!(h.headers.get("location"), Some("/sub/?x=1"));
    let (h, body) = exchange(addr, b"GET /sub/ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((h.status, body.as_slice()), (200, &b"<p>sub</p>"[..]));
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        404
    );
    assert_eq!(
        exchange(addr, b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        404
    );
    let (h, _) = exchange(addr, b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.headers.get("content-length"), Some("20971520"));
    assert_eq!(
        h.headers.get("content-type"),
        Some("application/octet-stream")
    );

    // The 20 MiB file through our own client, byte-exact, with progress reports.
    let url = Url::parse(&format!("http://{addr}/big.bin")).unwrap();
    let mut out = Vec::new();
    let mut last = (0, None);
    let head = client::get(connect(addr), &url, &mut out, &mut |got, total| {
        last = (got, total)
    })
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(last, (fx.big.len() as u64, Some(fx.big.len() as u64)));
    assert!(out == fx.big, "20 MiB body differs");
}

#[test]
fn traversal_never_escapes_the_root() {
    let fx = fixture(1000);
    let addr = start_standard(Some(&fx.root));
    for target in [
        "/../etc/passwd",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/a.txt%00.html",
        "/link.txt",
        "/up/secret.txt",
        "/up/",
        "//etc/passwd",
        "http://t/../secret.txt",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let resp = raw(addr, req.as_bytes());
        let text = String::from_utf8_lossy(&resp);
        assert!(
            [400, 403, 404].contains(&status_of(&resp)),
            "{target}: {text}"
        );
        assert!(!text.contains("TOP-SECRET"), "{target} leaked: {text}");
        assert!(!text.contains("root:"), "{target} leaked: {text}");
    }
}

#[test]
fn echo_content_length_and_chunked() {
    let addr = start_standard(None);
    let body = pseudo_random(3 * 1024 * 1024 + 17, 3);
    let mut r = Reader::new(connect(addr));
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let w = r.stream.try_clone().unwrap();
    let body2 = body.clone();
    // Write from another thread: the echo comes back while we are still sending.
    let writer = thread::spawn(move || {
        let mut w = w;
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&body2).unwrap();
    });
    let (h, echoed) = r.response(false);
    writer.join().unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.headers.get("content-type"), Some("application/x-test"));
    assert!(echoed == body);

    // Chunked, with varying chunk sizes, an extension and a trailer, on the same connection.
    let mut chunked = Vec::new();
    let mut sizes = [1usize, 7, 4096, 65536, 100_000, 1].iter().cycle();
    let mut off = 0;
    while off < body.len() {
        let n = (*sizes.next().unwrap()).min(body.len() - off);
        chunked.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
        chunked.extend_from_slice(&body[off..off + n]);
        chunked.extend_from_slice(b"\r\n");
        off += n;
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    let w = r.stream.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut w = w;
        w.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        w.write_all(&chunked).unwrap();
    });
    let (h, echoed) = r.response(false);
    writer.join().unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(
        h.headers.get("content-type"),
        Some("application/octet-stream")
    );
    assert!(echoed == body);

    let (h, _) = exchange(addr, b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.status, 405);
    assert_eq!(h.headers.get("allow"), Some("POST"));
}

#[test]
fn expect_100_continue() {
    let addr = start_standard(None);
    let mut r = Reader::new(connect(addr));
    r.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // The interim response arrives before we send any body.
    let interim = r.head();
    assert_eq!(interim.status, 100);
    r.write(b"hello");
    let (h, body) = r.response(false);
    assert_eq!((h.status, body.as_slice()), (200, &b"hello"[..]));
    let (h, _) = exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\nhello",
    );
    assert_eq!(h.status, 417);
    // Too large: refused at once, without inviting the body.
    let mut r = Reader::new(connect(addr));
    r.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n");
    let (h, _) = r.response(false);
    assert_eq!(h.status, 413);
    assert!(r.at_eof());
}

#[test]
fn keep_alive_http10_and_connection_close() {
    let addr = start_standard(None);
    // Two requests on one HTTP/1.1 connection.
    let mut r = Reader::new(connect(addr));
    for _ in 0..2 {
        r.write(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
        let (h, _) = r.response(false);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers.get("connection"), None);
    }
    // Connection: close is honoured and echoed.
    r.write(b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (h, _) = r.response(false);
    assert_eq!(h.headers.get("connection"), Some("close"));
    assert!(r.at_eof());
    // HTTP/1.0 closes by default (no Host needed).
    let mut r = Reader::new(connect(addr));
    r.write(b"GET / HTTP/1.0\r\n\r\n");
    let (h, _) = r.response(false);
    assert_eq!(h.status, 200);
    assert_eq!(h.headers.get("connection"), Some("close"));
    assert!(r.at_eof());
    // An HTTP/1.0 POST with a body, and an absolute-form target.
    let (h, body) = exchange(addr, b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((h.status, body.as_slice()), (200, &b"hi"[..]));
    let (h, _) = exchange(addr, b"GET http://t/style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.status, 200);
    // ... unless it asks for keep-alive.
    let mut r = Reader::new(connect(addr));
    for _ in 0..2 {
        r.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let (h, _) = r.response(false);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers.get("connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_answered_in_order() {
    let addr = start_standard(None);
    let mut r = Reader::new(connect(addr));
    r.write(
        b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd\
          GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let (h1, b1) = r.response(false);
    let (h2, b2) = r.response(false);
    let (h3, _) = r.response(false);
    let (h4, _) = r.response(true);
    assert_eq!(h1.status, 200);
    assert_eq!(b1, site::file("style.css").unwrap());
    assert_eq!((h2.status, b2.as_slice()), (200, &b"abcd"[..]));
    assert_eq!(h3.status, 404);
    assert_eq!(h4.status, 200);
    assert!(r.at_eof());
}

#[test]
fn malformed_requests_get_4xx_5xx_and_the_server_keeps_serving() {
    let config = ServerConfig {
        max_body: 1024 * 1024,
        max_head_bytes: 1024,
        ..ServerConfig::default()
    };
    let (addr, _) = start(Router::standard(None).unwrap(), config);
    let cases: &[(&[u8], u16)] = &[
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        // A chunk announced larger than max_body is refused before its data arrives.
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n", 413),
    ];
    for (req, want) in cases {
        let resp = raw(addr, req);
        assert_eq!(status_of(&resp), *want, "{}", String::from_utf8_lossy(req));
        assert!(String::from_utf8_lossy(&resp).contains("Connection: close\r\n"));
    }
    // Oversize head → 431; a request line alone too long → 414 (RFC 9112 §3).
    let mut big = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    big.extend_from_slice(format!("X-Big: {}\r\n\r\n", "a".repeat(2000)).as_bytes());
    assert_eq!(status_of(&raw(addr, &big)), 431);
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    assert_eq!(status_of(&raw(addr, long.as_bytes())), 414);
    // Oversize chunked body → 413 once it crosses max_body.
    let mut s = connect(addr);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b'x'; 256 * 1024];
    let mut resp = Vec::new();
    for _ in 0..8 {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break;
        }
    }
    let _ = s.read_to_end(&mut resp);
    assert_eq!(status_of(&resp), 413);
    // Still serving.
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        200
    );
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(1000),
        ..ServerConfig::default()
    };
    let (addr, _) = start(Router::standard(None).unwrap(), config);
    let start_time = Instant::now();
    let slow = connect(addr);
    let mut slow_reader = slow.try_clone().unwrap();
    // The reader notes when the server answers and closes.
    let reader = thread::spawn(move || {
        let mut resp = Vec::new();
        let _ = slow_reader.read_to_end(&mut resp);
        (start_time.elapsed(), resp)
    });
    let trickler = thread::spawn(move || {
        let mut s = slow;
        let request =
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for b in request.iter() {
            // One byte every 100 ms: each read succeeds, only a total deadline stops this.
            if s.write_all(std::slice::from_ref(b)).is_err() || start_time.elapsed().as_secs() > 3 {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    thread::sleep(Duration::from_millis(300));
    // Meanwhile another client is served promptly.
    let t = Instant::now();
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        200
    );
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let (elapsed, resp) = reader.join().unwrap();
    assert_eq!(status_of(&resp), 408, "{}", String::from_utf8_lossy(&resp));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2200),
        "cut off after {elapsed:?}"
    );
    trickler.join().unwrap();
}

#[test]
fn connection_limit() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let (addr, _) = start(Router::standard(None).unwrap(), config);
    let mut a = Reader::new(connect(addr));
    a.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.response(false).0.status, 200);
    let b = connect(addr);
    // Let the accept loop register b before the third connection arrives.
    thread::sleep(Duration::from_millis(100));
    let resp = raw(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status_of(&resp), 503);
    // Freeing a slot lets new clients in again.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        if status_of(&resp) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn custom_routes_and_handler_panics() {
    let mut router = Router::standard(None).unwrap();
    router
        .route("/hello", |req: &Request| {
            Response::text(200, format!("hello {}", req.query.as_deref().unwrap_or("")))
        })
        .route("/boom", |_: &Request| -> Response { panic!("handler bug") })
        .route("/interim", |_: &Request| Response::new(101));
    let (addr, _) = start(router, ServerConfig::default());
    let (h, body) = exchange(addr, b"GET /hello?you HTTP/1.1\r\nHost: t\r\n\r\n");
    let interim = exchange(addr, b"GET /interim HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(interim.0.status, 500);
    assert_eq!((h.status, body.as_slice()), (200, &b"hello you"[..]));
    assert_eq!(
        exchange(addr, b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        500
    );
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        200
    );
}

#[test]
fn shutdown_stops_serve() {
    // Shared through an Arc: the test keeps a handle on the listener.
    let listener = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(Router::standard(None).unwrap(), ServerConfig::default());
    let handle = server.shutdown_handle();
    let shared = listener.clone();
    let t = thread::spawn(move || server.serve(shared));
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        200
    );
    handle.shutdown();
    assert!(handle.is_shutdown());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "serve did not return");
        thread::sleep(Duration::from_millis(10));
    }
    t.join().unwrap().unwrap();
    assert_eq!(listener.local_addr().unwrap(), addr);
}

#[test]
fn shutdown_closes_idle_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::sync::Arc::new(Server::new(
        Router::standard(None).unwrap(),
        ServerConfig::default(),
    ));
    let s2 = server.clone();
    let t = thread::spawn(move || s2.serve(listener));
    let mut idle = Reader::new(connect(addr));
    idle.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response(false).0.status, 200);
    assert_eq!(server.active_connections(), 1);
    server.shutdown_handle().shutdown();
    assert!(server.wait_for_connections(Duration::from_secs(3)));
    assert!(idle.at_eof());
    t.join().unwrap().unwrap();
}

/// A one-shot mock server: reads the request head, checks it, writes `response` and closes.
fn mock(response: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&b[..n]);
        }
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET /x?y HTTP/1.1\r\n"), "{req}");
        assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req}");
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        assert!(req.contains("\r\nUser-Agent: tunstack/"), "{req}");
        let _ = s.write_all(&response);
    });
    addr
}

fn mock_get(response: &[u8]) -> (Result<client::ResponseHead, ClientError>, Vec<u8>) {
    let addr = mock(response.to_vec());
    let url = Url::parse(&format!("http://{addr}/x?y")).unwrap();
    let mut out = Vec::new();
    let r = client::get(connect(addr), &url, &mut out, &mut |_, _| {});
    (r, out)
}

#[test]
fn client_against_mock_servers() {
    let (r, out) = mock_get(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
    );
    let head = r.unwrap();
    assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
    assert_eq!(out, b"hello world");

    let (r, out) = mock_get(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    assert_eq!(r.unwrap().headers.get("content-type"), Some("text/plain"));
    assert_eq!(out, b"until the end");

    let (r, out) = mock_get(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
    assert_eq!(r.unwrap().status, 404);
    assert_eq!(out, b"nope");

    let (r, _) = mock_get(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
    assert!(matches!(
        r,
        Err(ClientError::Truncated {
            received: 5,
            expected: Some(10)
        })
    ));
    let (r, _) = mock_get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    assert!(matches!(r, Err(ClientError::Truncated { .. })));
    let (r, _) = mock_get(b"HTTP/1.1 200 OK\r\nContent-Le");
    assert!(matches!(r, Err(ClientError::Io(_))));
    let (r, _) = mock_get(b"HTTP/1.1 2x0 OK\r\n\r\n");
    assert!(matches!(r, Err(ClientError::BadResponse(_))));
    let (r, _) = mock_get(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert!(matches!(r, Err(ClientError::BadFraming(_))));
}

#[test]
fn client_against_our_server() {
    let addr = start_standard(None);
    let url = Url::parse(&format!("http://{addr}/")).unwrap();
    let mut out = Vec::new();
    let head = client::get(connect(addr), &url, &mut out, &mut |_, _| {}).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(out, site::file("index.html").unwrap());
    let url = Url::parse(&format!("http://{addr}/missing")).unwrap();
    let mut out = Vec::new();
    let head = client::get(connect(addr), &url, &mut out, &mut |_, _| {}).unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(out, b"404 Not Found\n");
}

#[test]
fn idle_keep_alive_connections_time_out() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (addr, _) = start(Router::standard(None).unwrap(), config);
    let mut r = Reader::new(connect(addr));
    r.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.response(false).0.status, 200);
    let t = Instant::now();
    assert!(r.at_eof());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "closed after {waited:?}"
    );
}

#[test]
fn write_timeout_drops_clients_that_stop_reading() {
    let config = ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut router = Router::new();
    router.route("/huge", |_: &Request| {
        Response::bytes(200, "application/octet-stream", vec![0u8; 64 * 1024 * 1024])
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::sync::Arc::new(Server::new(router, config));
    let s2 = server.clone();
    thread::spawn(move || s2.serve(listener));
    let mut s = connect(addr);
    s.write_all(b"GET /huge HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Never read: the socket buffers fill, the server's write times out, it gives up.
    let deadline = Instant::now() + Duration::from_secs(5);
    thread::sleep(Duration::from_millis(300));
    while server.active_connections() > 0 {
        assert!(Instant::now() < deadline, "server still writing");
        thread::sleep(Duration::from_millis(20));
    }
    drop(s);
}
