//! Tests of [`HttpConn`]: bytes in, bytes out, virtual time (`Instant` arithmetic). They
//! port the behaviours of the threaded server's tests (`tests.rs`) to the sans-IO connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::http::parse::{parse_response_head, Limits, Parsed, StatusHead};
use crate::http::{site, Request, Response, Router, ServerConfig};

const PEER: &str = "10.0.0.1:40000";

/// A connection under test with its virtual clock.
struct Harness {
    conn: HttpConn,
    now: Instant,
    /// Everything the connection sent, not yet parsed by `response`.
    sent: Vec<u8>,
}

impl Harness {
    fn new(handler: impl Handler, config: ServerConfig) -> Harness {
        let now = Instant::now();
        Harness {
            conn: HttpConn::new(
                Arc::new(handler),
                Arc::new(config),
                PEER.parse().unwrap(),
                now,
            ),
            now,
            sent: Vec::new(),
        }
    }

    fn standard() -> Harness {
        Harness::new(Router::standard(None).unwrap(), ServerConfig::default())
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.conn.on_data(bytes, self.now);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Take output in steps of at most `step` bytes (a TCP that accepts little at a time),
    /// from a peer that acknowledges everything at once.
    fn drain_by(&mut self, step: usize) -> usize {
        let mut total = 0;
        loop {
            let out = self.conn.output();
            if out.is_empty() {
                self.conn.on_acked(0, self.now);
                return total;
            }
            let n = out.len().min(step);
            self.sent.extend_from_slice(&out[..n]);
            self.conn.consume(n);
            total += n;
        }
    }

    /// Hand up to `max` bytes of output to a TCP that keeps them unacknowledged (the
    /// caller reports acknowledgements with `on_acked`); returns how many.
    fn hand_to_tcp(&mut self, max: usize) -> u64 {
        let mut handed = 0;
        while handed < max {
            let n = self.conn.output().len().min(max - handed);
            if n == 0 {
                break;
            }
            self.conn.consume(n);
            handed += n;
        }
        handed as u64
    }

    fn drain(&mut self) -> usize {
        self.drain_by(usize::MAX)
    }

    /// The next response in what was sent; `head_request`: no body follows.
    fn response(&mut self, head_request: bool) -> (StatusHead, Vec<u8>) {
        self.drain();
        let Ok(Parsed::Complete { value, consumed }) =
            parse_response_head(&self.sent, &Limits::default())
        else {
            panic!(
                "no complete response in {:?}",
                String::from_utf8_lossy(&self.sent)
            );
        };
        self.sent.drain(..consumed);
        let len: usize = if head_request || value.status == 100 {
            0
        } else {
            value
                .headers
                .get("content-length")
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(self.sent.len() >= len, "short body");
        let body = self.sent.drain(..len).collect();
        (value, body)
    }

    /// Send a request and read the response.
    fn exchange(&mut self, req: &[u8]) -> (StatusHead, Vec<u8>) {
        self.feed(req);
        self.response(req.starts_with(b"HEAD"))
    }
}

/// The length of a response head as we serialize it (status line, fields, empty line).
fn response_head_len(head: &StatusHead) -> usize {
    let fields: usize = head
        .headers
        .iter()
        .map(|(n, v)| n.len() + 2 + v.len() + 2)
        .sum();
    format!("HTTP/1.1 {} {}\r\n", head.status, head.reason).len() + fields + 2
}

fn status_of(h: &mut Harness) -> u16 {
    h.response(false).0.status
}

#[test]
fn keep_alive_sequence() {
    let mut h = Harness::standard();
    for i in 0..3 {
        h.feed(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
        // A small response is one slice: head and body leave in one write.
        let whole = h.conn.output().len();
        let (head, body) = h.response(false);
        assert_eq!(whole, h.sent.len() + body.len() + response_head_len(&head));
        assert_eq!(head.status, 200);
        assert_eq!(head.headers.get("connection"), None);
        assert!(head
            .headers
            .get("date")
            .is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(head.headers.get("server"), Some("tunstack"));
        assert_eq!(body, site::file("style.css").unwrap());
        assert!(!h.conn.should_close());
        assert!(h.conn.wants_read());
        assert_eq!(h.conn.requests_served(), i + 1);
    }
    let (head, _) = h.exchange(b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(head.headers.get("connection"), Some("close"));
    assert!(h.conn.should_close());
    assert!(!h.conn.wants_read());
    assert!(h.sent.is_empty());
}

/// A router with the standard site plus routes exercising the server's own duties.
fn custom() -> Router {
    let mut router = Router::standard(None).unwrap();
    // Shared bodies (as the file cache hands out): one small enough to follow its head in the
    // same buffer, one sent from where it lives.
    let small: Arc<[u8]> = Arc::from(&BIG[..1000]);
    let big: Arc<[u8]> = Arc::from(&BIG[..]);
    router
        .route("/hello", |req: &Request| {
            Response::text(200, format!("hello {}", req.query.as_deref().unwrap_or("")))
        })
        .route("/boom", |_: &Request| -> Response { panic!("handler bug") })
        .route("/interim", |_: &Request| Response::new(101))
        .route("/big", |_: &Request| {
            Response::new(200).with_body(Body::Static(&BIG))
        })
        .route("/bye", |_: &Request| {
            Response::text(200, "bye").with_header("Connection", "close")
        })
        .route("/shared", move |_: &Request| {
            Response::new(200).with_body(Body::Shared(Arc::clone(&small)))
        })
        .route("/shared-big", move |_: &Request| {
            Response::new(200).with_body(Body::Shared(Arc::clone(&big)))
        });
    router
}

static BIG: [u8; 300_000] = {
    let mut b = [0u8; 300_000];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i % 251) as u8;
        i += 1;
    }
    b
};

#[test]
fn handler_panic_and_bad_status_are_500_and_the_connection_survives() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    let (head, body) = h.exchange(b"GET /hello?you HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, body.as_slice()), (200, &b"hello you"[..]));
    assert_eq!(
        h.exchange(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        500
    );
    assert_eq!(
        h.exchange(b"GET /interim HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        500
    );
    assert_eq!(
        h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").0.status,
        200
    );
    assert!(!h.conn.should_close());
    // A handler's Connection: close ends the connection after its response.
    let (head, body) = h.exchange(b"GET /bye HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, body.as_slice()), (200, &b"bye"[..]));
    assert_eq!(head.headers.get("connection"), Some("close"));
    assert!(h.conn.should_close());
}

#[test]
fn idle_timeout_closes_silently() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(Router::standard(None).unwrap(), config);
    assert_eq!(
        h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").0.status,
        200
    );
    let due = h.conn.deadline().unwrap();
    assert_eq!(due, h.now + Duration::from_millis(300));
    // Early calls do nothing.
    h.advance(Duration::from_millis(299));
    h.conn.on_timeout(h.now);
    assert!(!h.conn.should_close());
    h.advance(Duration::from_millis(1));
    h.conn.on_timeout(h.now);
    assert!(h.conn.should_close());
    assert_eq!(h.drain(), 0, "an idle timeout sends nothing");
    assert_eq!(status_of_nothing(&mut h), None);
}

/// The status of what was sent, if anything.
fn status_of_nothing(h: &mut Harness) -> Option<u16> {
    h.drain();
    (!h.sent.is_empty()).then(|| status_of(h))
}

const PIPELINE: &[u8] = b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n\
      POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd\
      GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
      HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn check_pipeline(h: &mut Harness) {
    let (h1, b1) = h.response(false);
    let (h2, b2) = h.response(false);
    let (h3, _) = h.response(false);
    let (h4, b4) = h.response(true);
    assert_eq!(h1.status, 200);
    assert_eq!(b1, site::file("style.css").unwrap());
    assert_eq!((h2.status, b2.as_slice()), (200, &b"abcd"[..]));
    assert_eq!(h3.status, 404);
    assert_eq!(h4.status, 200);
    assert!(b4.is_empty());
    assert!(h.sent.is_empty(), "nothing after the HEAD response");
    assert!(h.conn.should_close());
    assert_eq!(h.conn.requests_served(), 4);
}

#[test]
fn pipelined_requests_all_at_once() {
    let mut h = Harness::standard();
    h.feed(PIPELINE);
    check_pipeline(&mut h);
}

#[test]
fn pipelined_requests_one_byte_at_a_time() {
    let mut h = Harness::standard();
    for b in PIPELINE {
        h.feed(std::slice::from_ref(b));
        // Send whatever is ready, as an event loop would, between bytes.
        h.drain();
    }
    check_pipeline(&mut h);
}

#[test]
fn pipelined_requests_with_output_drained_in_small_steps() {
    let mut h = Harness::standard();
    h.feed(PIPELINE);
    h.drain_by(7);
    check_pipeline(&mut h);
}

/// One request on a fresh connection; the whole response and whether it closed.
fn raw(config: &ServerConfig, req: &[u8]) -> (u16, String, bool) {
    let mut h = Harness::new(Router::standard(None).unwrap(), config.clone());
    h.feed(req);
    h.drain();
    let text = String::from_utf8_lossy(&h.sent).into_owned();
    let status = status_of(&mut h);
    (status, text, h.conn.should_close())
}

#[test]
fn malformed_requests_get_their_status_and_close() {
    let config = ServerConfig {
        max_body: 1024 * 1024,
        max_head_bytes: 1024,
        ..ServerConfig::default()
    };
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
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n", 413),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", 417),
        (b"\x16\x03\x01\x02\x00", 400),
    ];
    for (req, want) in cases {
        let (status, text, closed) = raw(&config, req);
        let shown = String::from_utf8_lossy(req);
        assert_eq!(status, *want, "{shown}");
        assert!(text.contains("Connection: close\r\n"), "{shown}");
        assert!(closed, "{shown}");
    }
    // Oversize head → 431, a request line alone too long → 414, too many fields → 431.
    let mut big = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    big.extend_from_slice(format!("X-Big: {}\r\n\r\n", "a".repeat(2000)).as_bytes());
    assert_eq!(raw(&config, &big).0, 431);
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    assert_eq!(raw(&config, long.as_bytes()).0, 414);
    let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..120 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let roomy = ServerConfig {
        max_head_bytes: 64 * 1024,
        ..config.clone()
    };
    assert_eq!(raw(&roomy, &many).0, 431);
    // An oversize chunked body → 413 once it crosses max_body, fed in pieces.
    let mut h = Harness::new(Router::standard(None).unwrap(), config.clone());
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = vec![b'x'; 256 * 1024];
    for _ in 0..8 {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        h.feed(&c);
    }
    assert_eq!(status_of(&mut h), 413);
    assert!(h.conn.should_close());
    // What the client still sends after the error is discarded (lingering close).
    h.feed(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(h.drain(), 0);
}

#[test]
fn head_gets_the_get_content_length_and_no_body() {
    let mut h = Harness::standard();
    let (get, body) = h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (head, none) = h.exchange(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(none.is_empty());
    assert_eq!(
        head.headers.get("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        get.headers.get("content-type"),
        head.headers.get("content-type")
    );
    // Nothing follows the head: the next request's response starts right after it.
    assert_eq!(
        h.exchange(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            .0
            .status,
        404
    );
    // Shared bodies, small (coalesced with the head) and large: the length, no bytes.
    let mut h = Harness::new(custom(), ServerConfig::default());
    for (path, len) in [("/shared", 1000), ("/shared-big", BIG.len())] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let (head, body) = h.exchange(get.as_bytes());
        assert_eq!((head.status, body.as_slice()), (200, &BIG[..len]));
        let (head, none) =
            h.exchange(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(head.status, 200);
        assert!(none.is_empty() && h.sent.is_empty());
        assert_eq!(
            head.headers.get("content-length"),
            Some(len.to_string().as_str())
        );
    }
    // A HEAD that is rejected gets no body either.
    let (head, _) = h.exchange(b"HEAD /%zz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 400);
    assert!(h.sent.is_empty());
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let mut h = Harness::standard();
    let (head, _) = h.exchange(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.headers.get("connection"), Some("close"));
    assert!(h.conn.should_close());

    let mut h = Harness::standard();
    let (head, body) = h.exchange(b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((head.status, body.as_slice()), (200, &b"hi"[..]));
    assert!(h.conn.should_close());

    let mut h = Harness::standard();
    for _ in 0..2 {
        let (head, _) = h.exchange(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(head.status, 200);
        assert_eq!(head.headers.get("connection"), Some("keep-alive"));
        assert!(!h.conn.should_close());
    }
    let (head, _) = h.exchange(b"GET http://t/style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
}

#[test]
fn expect_100_continue() {
    let mut h = Harness::standard();
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // The interim response is there before any body byte is sent.
    let (interim, _) = h.response(false);
    assert_eq!(interim.status, 100);
    h.feed(b"hel");
    assert_eq!(h.drain(), 0);
    h.feed(b"lo");
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"hello"[..]));
    // The body already arrived with the head: no interim response.
    h.feed(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    );
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"hi"[..]));
    // Too large: refused at once, without inviting the body.
    let (status, text, closed) = raw(
        &ServerConfig::default(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(status, 413);
    assert!(!text.contains("100 Continue"));
    assert!(closed);
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn content_length_and_chunked_bodies_in_pieces() {
    let mut h = Harness::standard();
    let body = pseudo_random(300_017, 3);
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut wire = head.into_bytes();
    wire.extend_from_slice(&body);
    for piece in wire.chunks(1000) {
        h.feed(piece);
    }
    let (head, echoed) = h.response(false);
    assert_eq!(head.status, 200);
    assert_eq!(head.headers.get("content-type"), Some("application/x-test"));
    assert!(echoed == body);

    // Chunked, with varying chunk sizes, an extension and a trailer, on the same connection,
    // followed by a pipelined request in the same bytes.
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut sizes = [1usize, 7, 4096, 65536, 100_000, 1].iter().cycle();
    let mut off = 0;
    while off < body.len() {
        let n = (*sizes.next().unwrap()).min(body.len() - off);
        chunked.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
        chunked.extend_from_slice(&body[off..off + n]);
        chunked.extend_from_slice(b"\r\n");
        off += n;
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    for piece in chunked.chunks(777) {
        h.feed(piece);
    }
    let (head, echoed) = h.response(false);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers.get("content-type"),
        Some("application/octet-stream")
    );
    assert!(echoed == body);
    assert_eq!(status_of(&mut h), 404);
    // After a big request the connection gives its buffers back.
    assert!(
        h.conn.inbuf.capacity() <= RETAIN,
        "{}",
        h.conn.inbuf.capacity()
    );
    assert!(h.conn.out.capacity() <= RETAIN, "{}", h.conn.out.capacity());
}

#[test]
fn big_static_body_is_sent_from_where_it_lives_in_small_steps() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    h.feed(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    // The head first, then the body straight from the static array (no copy).
    let head_len = h.conn.output().len();
    h.sent.extend_from_slice(h.conn.output());
    h.conn.consume(head_len);
    let out = h.conn.output();
    assert_eq!(out.as_ptr(), BIG.as_ptr());
    assert_eq!(out.len(), BIG.len());
    // The pipelined request waits behind the body; reading pauses.
    assert!(!h.conn.wants_read());
    assert_eq!(h.conn.requests_served(), 1);
    h.drain_by(1000);
    let (head, body) = h.response(false);
    assert_eq!(head.status, 200);
    assert!(body == BIG);
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"hello "[..]));
    assert!(h.conn.wants_read());
}

/// A file under the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tunstack-conn-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&p, contents).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serve the file at `path` on `route`, opened anew for each request, announcing its
/// length, or `announced` bytes (more than it has: a file that turns out short).
fn route_file(router: &mut Router, route: &str, path: std::path::PathBuf, announced: Option<u64>) {
    router.route(route, move |_: &Request| {
        let f = std::fs::File::open(&path).unwrap();
        let len = announced.unwrap_or_else(|| f.metadata().unwrap().len());
        Response::new(200).with_body(Body::File { file: f, len })
    });
}

/// The event loop's way with a file body: each time [`HttpConn::file_next`] says so, the
/// file's next bytes are read straight into the caller's buffer (TCP's send buffer), and
/// they count as sent; heads still come from `output`. Two pipelined responses come out
/// whole and in order, and a file shorter than announced drops the connection.
#[test]
fn file_body_can_be_read_straight_into_the_callers_buffer() {
    let contents = pseudo_random(2 * FILE_CHUNK + 77, 11);
    let file = TempFile::new(&contents);
    let path = file.0.clone();
    let mut router = Router::new();
    route_file(&mut router, "/file", path.clone(), None);
    route_file(&mut router, "/short", path, Some(3 * FILE_CHUNK as u64));
    let mut h = Harness::new(router, ServerConfig::default());
    h.feed(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\nGET /file HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(!h.conn.file_next(), "the head goes first");
    let direct = drain_reading_files_directly(&mut h);
    assert_eq!(
        direct,
        2 * contents.len(),
        "every body byte read straight across"
    );
    for _ in 0..2 {
        let (head, body) = h.response(false);
        assert_eq!(head.status, 200);
        assert!(body == contents);
    }
    assert!(matches!(h.conn.body, OutBody::None));
    assert!(!h.conn.should_close());
    assert_eq!(
        h.conn.read_file_into(&mut [0u8; 10]),
        0,
        "no file body: nothing"
    );
    // Shorter than announced: what there is goes, then the connection ends.
    h.feed(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = h.conn.output().to_vec();
    h.conn.consume(head.len());
    let mut read = 0;
    while h.conn.file_next() {
        let mut dst = vec![0u8; FILE_CHUNK];
        let n = h.conn.read_file_into(&mut dst);
        if n == 0 {
            break;
        }
        read += n;
    }
    assert_eq!(read, contents.len());
    assert!(h.conn.should_close());
}

#[test]
fn file_body_is_read_lazily_one_chunk_at_a_time() {
    let contents = pseudo_random(3 * FILE_CHUNK + 123, 9);
    let file = TempFile::new(&contents);
    let path = file.0.clone();
    let mut router = Router::new();
    route_file(&mut router, "/file", path.clone(), None);
    let mut h = Harness::new(router, ServerConfig::default());
    h.feed(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut pieces = 0;
    loop {
        let out = h.conn.output();
        if out.is_empty() {
            break;
        }
        assert!(out.len() <= FILE_CHUNK);
        let n = out.len().min(10_000);
        let out = out[..n].to_vec();
        // Never more than one chunk of the file in memory.
        if let OutBody::File { buf, .. } = &h.conn.body {
            assert!(buf.capacity() <= FILE_CHUNK);
        }
        h.sent.extend_from_slice(&out);
        h.conn.consume(n);
        pieces += 1;
    }
    assert!(pieces > 4);
    let (head, body) = h.response(false);
    assert_eq!(head.status, 200);
    assert!(body == contents);
    assert!(
        matches!(h.conn.body, OutBody::None),
        "file closed when sent"
    );
    // HEAD of a file: the length, no read.
    let (head, _) = h.exchange(b"HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        head.headers.get("content-length"),
        Some(contents.len().to_string().as_str())
    );
    assert!(h.sent.is_empty());
    // A file shorter than announced: the framing cannot be kept, the connection is dropped.
    let mut router = Router::new();
    route_file(&mut router, "/short", path, Some(4 * FILE_CHUNK as u64));
    let mut h = Harness::new(router, ServerConfig::default());
    h.feed(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    let sent = h.drain();
    assert!(sent < 4 * FILE_CHUNK);
    assert!(h.conn.should_close());
    // A small one (read behind its head at once): the responses before it still go out.
    let small = TempFile::new(b"tiny");
    let mut router = Router::standard(None).unwrap();
    route_file(&mut router, "/short-small", small.0.clone(), Some(100));
    let mut h = Harness::new(router, ServerConfig::default());
    h.feed(
        b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\nGET /short-small HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(status_of(&mut h), 200);
    assert!(h.sent.is_empty());
    assert!(h.conn.should_close());
}

#[test]
fn header_timeout_first_request_silent_and_trickled_head_408() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(1000),
        ..ServerConfig::default()
    };
    // Nothing at all: the first request's header deadline runs from accept, and with no byte
    // received the connection just closes.
    let mut h = Harness::new(Router::standard(None).unwrap(), config.clone());
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_millis(1000)));
    h.advance(Duration::from_millis(1000));
    h.conn.on_timeout(h.now);
    assert!(h.conn.should_close());
    assert_eq!(h.drain(), 0);

    // Slowloris: one byte every 100 ms is cut off at the total deadline with 408.
    let mut h = Harness::new(Router::standard(None).unwrap(), config.clone());
    let request =
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let start = h.now;
    for b in request.iter() {
        let step = h.now + Duration::from_millis(100);
        if h.conn.deadline().is_some_and(|d| d <= step) {
            h.now = h.conn.deadline().unwrap();
            h.conn.on_timeout(h.now);
            break;
        }
        h.now = step;
        h.feed(std::slice::from_ref(b));
    }
    assert_eq!(h.now - start, Duration::from_millis(1000));
    assert_eq!(status_of(&mut h), 408);
    assert!(h.conn.should_close());

    // Later requests: the deadline starts at their first byte, after the idle wait.
    let mut h = Harness::new(Router::standard(None).unwrap(), config);
    assert_eq!(
        h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").0.status,
        200
    );
    h.advance(Duration::from_secs(5));
    h.feed(b"GET / HTTP/1.1\r\n");
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_millis(1000)));
    h.advance(Duration::from_millis(1000));
    h.conn.on_timeout(h.now);
    assert_eq!(status_of(&mut h), 408);
}

#[test]
fn body_timeout_408() {
    let config = ServerConfig {
        body_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(Router::standard(None).unwrap(), config);
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(2)));
    // Progress pushes the deadline (a per-read timeout, as server.rs's).
    h.advance(Duration::from_secs(1));
    h.feed(b"de");
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(2)));
    h.advance(Duration::from_secs(2));
    h.conn.on_timeout(h.now);
    assert_eq!(status_of(&mut h), 408);
    assert!(h.conn.should_close());
}

#[test]
fn write_timeout_drops_a_client_that_stops_reading() {
    let config = ServerConfig {
        send_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(custom(), config);
    h.feed(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let n = h.conn.output().len().min(5000);
    h.conn.consume(n);
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(3)));
    h.advance(Duration::from_secs(3));
    h.conn.on_timeout(h.now);
    assert!(h.conn.output().is_empty());
    assert!(h.conn.should_close());
}

/// TCP between the connection and a slow peer: a send buffer of `buffer` bytes, of which
/// the peer acknowledges `rate` per virtual second. Returns the virtual time taken and
/// whether the connection gave up (it must not).
fn deliver_slowly(h: &mut Harness, buffer: usize, rate: usize, limit: Duration) -> bool {
    let mut unacked = 0usize;
    let start = h.now;
    loop {
        // TCP takes what fits.
        loop {
            let room = buffer - unacked;
            let out = h.conn.output();
            if out.is_empty() || room == 0 {
                break;
            }
            let n = out.len().min(room);
            h.sent.extend_from_slice(&out[..n]);
            h.conn.consume(n);
            unacked += n;
        }
        h.conn.on_acked(unacked as u64, h.now);
        if h.conn.delivered() {
            return true;
        }
        assert!(h.now - start < limit, "not delivered within {limit:?}");
        // Every deadline that comes due on the way fires (as the event loop does).
        h.advance(Duration::from_secs(1));
        h.conn.on_timeout(h.now);
        if h.conn.aborted() {
            return false;
        }
        unacked -= unacked.min(rate);
        h.conn.on_acked(unacked as u64, h.now);
    }
}

#[test]
fn a_slow_reader_is_never_cut_while_it_makes_progress() {
    // Every timer short, the client far slower: 300 kB at 5 kB/s is a minute.
    let config = ServerConfig {
        send_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(custom(), config);
    let started = h.now;
    h.feed(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(deliver_slowly(
        &mut h,
        64 * 1024,
        5000,
        Duration::from_secs(120)
    ));
    assert!(
        h.now - started >= Duration::from_secs(60),
        "the test must be slow"
    );
    let (head, body) = h.response(false);
    assert_eq!(head.status, 200);
    assert_eq!(body, &BIG[..], "every byte");
    // The idle timer starts only now that the response was acknowledged.
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(2)));
}

#[test]
fn close_waits_for_delivery_bounded_by_the_no_progress_timeout() {
    let config = ServerConfig {
        send_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(custom(), config);
    h.feed(b"GET /big HTTP/1.0\r\n\r\n");
    // TCP took the whole response (a large send buffer); nothing is acknowledged yet.
    let handed = h.hand_to_tcp(usize::MAX);
    h.conn.on_acked(handed, h.now);
    assert!(h.conn.should_close(), "FIN may follow the data");
    assert!(
        !h.conn.delivered(),
        "but the connection must stay until it is delivered"
    );
    // The peer keeps acknowledging a little every 2 s: far longer than send_timeout in
    // total, never cut.
    let mut left = handed;
    while left > 0 {
        assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(3)));
        h.advance(Duration::from_secs(2));
        h.conn.on_timeout(h.now);
        assert!(!h.conn.aborted());
        left = left.saturating_sub(20_000);
        h.conn.on_acked(left, h.now);
    }
    assert!(h.conn.delivered());
    assert_eq!(h.conn.deadline(), None, "delivered: nothing left to time");
}

#[test]
fn a_stalled_reader_is_dropped_after_the_no_progress_timeout() {
    let config = ServerConfig {
        send_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(custom(), config);
    h.feed(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    // It acknowledges 50 kB, then stops (a zero window that never opens).
    assert!(!deliver_slowly_until(&mut h, 50_000));
    let stalled = h.now;
    h.advance(Duration::from_millis(2999));
    h.conn.on_timeout(h.now);
    assert!(
        !h.conn.aborted(),
        "not before send_timeout without progress"
    );
    h.advance(Duration::from_millis(1));
    h.conn.on_timeout(h.now);
    assert!(h.conn.aborted());
    assert_eq!(h.now - stalled, Duration::from_secs(3));
    assert!(h.conn.output().is_empty(), "what was queued is dropped");
}

/// Hand 64 KiB to TCP and let the peer acknowledge `acked` bytes; false if everything
/// was delivered.
fn deliver_slowly_until(h: &mut Harness, acked: u64) -> bool {
    let handed = h.hand_to_tcp(64 * 1024);
    h.conn.on_acked(handed - acked.min(handed), h.now);
    h.conn.delivered()
}

#[test]
fn only_an_idle_connection_can_be_closed_to_make_room() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    let opened = h.now;
    // A fresh connection waiting for its first request is idle since it opened.
    assert_eq!(h.conn.idle_since(), Some(opened));
    h.advance(Duration::from_secs(1));
    // Part of a head (slowloris): busy.
    h.feed(b"GET /big HTTP/1.1\r\nHo");
    assert_eq!(h.conn.idle_since(), None);
    assert!(
        !h.conn.close_idle(),
        "a request on its way is never dropped"
    );
    // The response queued and handed to TCP, not yet acknowledged: still busy.
    h.feed(b"st: t\r\n\r\n");
    let handed = h.hand_to_tcp(usize::MAX);
    h.conn.on_acked(handed, h.now);
    assert_eq!(h.conn.idle_since(), None);
    assert!(!h.conn.close_idle());
    // Delivered: idle since the last acknowledgement, and closing it loses nothing.
    h.advance(Duration::from_secs(1));
    h.conn.on_acked(0, h.now);
    assert_eq!(h.conn.idle_since(), Some(h.now));
    assert!(h.conn.close_idle());
    assert!(h.conn.should_close());
    assert!(
        h.conn.output().is_empty(),
        "closing an idle connection sends nothing"
    );
    assert_eq!(h.conn.idle_since(), None);
}

#[test]
fn backpressure_bounds_what_a_pipelining_client_can_queue() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    // Many small pipelined requests in one burst: answered only up to the threshold.
    let one = b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    h.feed(&burst);
    let queued = h.conn.output().len();
    assert!(queued <= BACKPRESSURE + 1024, "{queued}");
    assert!(h.conn.requests_served() < 1000);
    assert!(!h.conn.wants_read());
    // As TCP takes the output, the waiting requests are answered, in order.
    h.drain_by(1500);
    assert_eq!(h.conn.requests_served(), 1000);
    for _ in 0..1000 {
        assert_eq!(status_of(&mut h), 404);
    }
    assert!(h.sent.is_empty());
    assert!(h.conn.wants_read());
    assert!(h.conn.inbuf.capacity() <= RETAIN);
}

#[test]
fn eof_answers_buffered_requests_then_closes() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    h.feed(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /par");
    h.conn.on_eof(h.now);
    assert!(!h.conn.should_close());
    let (a, _) = h.response(false);
    let (b, _) = h.response(false);
    assert_eq!((a.status, b.status), (200, 200));
    assert!(h.sent.is_empty(), "the partial request is dropped");
    assert!(h.conn.should_close());
    // EOF inside a body: silent close.
    let mut h = Harness::standard();
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    h.conn.on_eof(h.now);
    assert!(h.conn.should_close());
    assert_eq!(h.drain(), 0);
}

#[test]
fn shutdown_closes_idle_and_ends_the_current_exchange() {
    let mut h = Harness::standard();
    assert_eq!(
        h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").0.status,
        200
    );
    h.conn.shutdown();
    assert!(h.conn.should_close());
    let mut h = Harness::standard();
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n");
    h.conn.shutdown();
    assert!(!h.conn.should_close());
    let (head, _) = h.exchange(b"hi");
    assert_eq!(head.headers.get("connection"), Some("close"));
    assert!(h.conn.should_close());
}

#[test]
fn overload_response_is_a_closing_503() {
    let r = overload_response();
    let Ok(Parsed::Complete { value, consumed }) = parse_response_head(&r, &Limits::default())
    else {
        panic!("not a response");
    };
    assert_eq!(value.status, 503);
    assert_eq!(value.headers.get("retry-after"), Some("1"));
    assert_eq!(value.headers.get("connection"), Some("close"));
    let len: usize = value
        .headers
        .get("content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.len() - consumed, len);
}

#[test]
fn date_follows_the_time_passed_in() {
    let now = Instant::now();
    let a = unix_secs_at(now);
    assert_eq!(unix_secs_at(now + Duration::from_secs(90)), a + 90);
    assert!(unix_secs_at(now) >= 1_700_000_000);
    let mut h = Harness::standard();
    let (first, _) = h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    h.advance(Duration::from_secs(86_400));
    let (second, _) = h.exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let day = |s: &StatusHead| {
        crate::http::response::parse_http_date(s.headers.get("date").unwrap()).unwrap()
    };
    assert_eq!(
        day(&second).duration_since(day(&first)).unwrap(),
        Duration::from_secs(86_400)
    );
}

/// Differential test: every response head the connection writes parses with httparse the
/// same way it does with ours (status, reason, fields, length).
#[test]
fn response_heads_agree_with_httparse() {
    let mut h = Harness::new(custom(), ServerConfig::default());
    h.feed(PIPELINE);
    h.drain();
    let mut wire = std::mem::take(&mut h.sent);
    for req in [
        &b"GET /hello?x HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let mut h = Harness::new(custom(), ServerConfig::default());
        h.feed(req);
        h.drain();
        wire.extend_from_slice(&h.sent);
    }
    wire.extend_from_slice(&overload_response());
    let mut rest = &wire[..];
    let mut heads = 0;
    while !rest.is_empty() {
        let mut storage = [httparse::EMPTY_HEADER; 32];
        let mut theirs = httparse::Response::new(&mut storage);
        let httparse::Status::Complete(n) = theirs.parse(rest).unwrap() else {
            panic!("httparse: partial head");
        };
        let Ok(Parsed::Complete { value, consumed }) =
            parse_response_head(rest, &Limits::default())
        else {
            panic!("ours: no head");
        };
        assert_eq!(n, consumed);
        assert_eq!(theirs.code, Some(value.status));
        assert_eq!(theirs.reason, Some(value.reason.as_str()));
        let fields: Vec<(String, String)> = theirs
            .headers
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect();
        let ours: Vec<(String, String)> = value
            .headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(fields, ours);
        // The HEAD response in PIPELINE has no body; every other one has its Content-Length.
        let len: usize = if heads == 3 {
            0
        } else {
            value
                .headers
                .get("content-length")
                .unwrap()
                .parse()
                .unwrap()
        };
        rest = &rest[consumed + len..];
        heads += 1;
    }
    assert_eq!(heads, 10);
}

#[test]
fn an_idle_connection_is_small() {
    let mut h = Harness::standard();
    for _ in 0..3 {
        assert_eq!(
            h.exchange(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n")
                .0
                .status,
            200
        );
    }
    let heap = h.conn.inbuf.capacity() + h.conn.out.capacity();
    assert!(heap <= 2 * RETAIN, "{heap}");
    assert!(
        std::mem::size_of::<HttpConn>() <= 512,
        "{}",
        std::mem::size_of::<HttpConn>()
    );
}

/// Random bytes, cut at random places, with random sends, EOFs and timeouts: the connection
/// never panics, never offers more than it holds, and stays bounded.
#[test]
fn fuzz_never_panics() {
    let seeds: &[&[u8]] = &[
        PIPELINE,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;e\r\nhello\r\n0\r\nT: v\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let config = ServerConfig {
        max_head_bytes: 256,
        max_headers: 4,
        max_body: 64,
        ..ServerConfig::default()
    };
    for _ in 0..3000 {
        let mut input = seeds[(rnd() % seeds.len() as u64) as usize].to_vec();
        for _ in 0..(rnd() % 4) {
            let pos = (rnd() % input.len() as u64) as usize;
            match rnd() % 3 {
                0 => input[pos] = rnd() as u8,
                1 => input.insert(pos, b"\r\n: ;0"[(rnd() % 6) as usize]),
                _ => input.truncate(pos.max(1)),
            }
        }
        let mut h = Harness::new(custom(), config.clone());
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = ((rnd() % 40) as usize + 1).min(rest.len());
            h.feed(&rest[..n]);
            rest = &rest[n..];
            let step = (rnd() % 3000) as usize + 1;
            let out = h.conn.output().len();
            h.conn.consume(out.min(step));
            if rnd() % 10 == 0 {
                h.advance(Duration::from_secs(rnd() % 40));
                h.conn.on_timeout(h.now);
            }
        }
        if rnd() % 2 == 0 {
            h.conn.on_eof(h.now);
        }
        h.drain_by(4096);
        assert!(h.conn.unsent() == 0);
        assert!(h.conn.inbuf.len() <= input.len());
    }
}

/// An in-memory connection for the threaded server: reads return the scripted input, then
/// EOF; writes are collected.
struct MemStream {
    input: std::io::Cursor<Vec<u8>>,
    output: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl std::io::Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl std::io::Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl crate::http::Transport for MemStream {
    fn set_read_timeout(&self, _: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&self, _: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        Ok(PEER.parse().unwrap())
    }
    fn shutdown_write(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hands out one [`MemStream`], then fails (which ends `serve`).
struct OneShot(std::sync::Mutex<Option<MemStream>>);

impl crate::http::Acceptor for OneShot {
    type Stream = MemStream;
    fn accept(&self) -> std::io::Result<(MemStream, std::net::SocketAddr)> {
        match self.0.lock().unwrap().take() {
            Some(s) => Ok((s, PEER.parse().unwrap())),
            None => Err(std::io::Error::other("done")),
        }
    }
}

/// What the threaded server sends for `input` (then EOF) on one connection.
fn threaded_server_answer(input: &[u8], config: &ServerConfig) -> Vec<u8> {
    let output = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stream = MemStream {
        input: std::io::Cursor::new(input.to_vec()),
        output: output.clone(),
    };
    let server = crate::http::Server::new(custom(), config.clone());
    let _ = server.serve(OneShot(std::sync::Mutex::new(Some(stream))));
    assert!(server.wait_for_connections(Duration::from_secs(30)));
    let out = output.lock().unwrap().clone();
    out
}

/// Replace every Date value (the one thing allowed to differ) by a fixed string.
fn without_dates(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut rest = &*text;
    while let Some(i) = rest.find("\r\nDate: ") {
        out.push_str(&rest[..i]);
        out.push_str("\r\nDate: <date>");
        rest = &rest[i + 8..];
        rest = &rest[rest.find("\r\n").unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Differential test against the threaded server, which drives an `HttpConn` over a
/// blocking stream: the same bytes in (then EOF) give the same bytes out, error cases and
/// pipelines included — its reads, writes and close neither lose, reorder nor add a byte.
#[test]
fn same_bytes_as_the_threaded_server() {
    let config = ServerConfig {
        max_body: 1024 * 1024,
        max_head_bytes: 1024,
        ..ServerConfig::default()
    };
    let mut inputs: Vec<Vec<u8>> = vec![
        PIPELINE.to_vec(),
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /style.css HTTP/1.0\r\n\r\n".to_vec(),
        b"GET /hello?x HTTP/1.1\r\nHost: t\r\n\r\nGET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /interim HTTP/1.1\r\nHost: t\r\n\r\nGET /bye HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello".to_vec(),
        b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /partial HTTP/1.1\r\nHo".to_vec(),
        b"GET /shared HTTP/1.1\r\nHost: t\r\n\r\nHEAD /shared HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"HEAD /shared-big HTTP/1.1\r\nHost: t\r\n\r\nGET /shared-big HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"HEAD /%zz HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nshort".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000)).into_bytes(),
    ];
    let malformed: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
    ];
    inputs.extend(malformed.iter().map(|m| m.to_vec()));
    let mut answered = 0;
    for input in &inputs {
        let theirs = threaded_server_answer(input, &config);
        answered += usize::from(theirs.starts_with(b"HTTP/1.1 "));
        let mut h = Harness::new(custom(), config.clone());
        h.feed(input);
        h.conn.on_eof(h.now);
        h.drain();
        assert!(h.conn.should_close());
        assert_eq!(
            without_dates(&h.sent),
            without_dates(&theirs),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    // All but the one whose body never completes get at least one response.
    assert_eq!(answered, inputs.len() - 1);
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let config = ServerConfig {
        header_timeout: Duration::MAX,
        idle_timeout: Duration::MAX,
        body_timeout: Duration::MAX,
        send_timeout: Duration::MAX,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(custom(), config);
    assert!(h.conn.deadline().is_some_and(|d| d > h.now));
    h.feed(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\na");
    h.conn.on_timeout(h.now);
    h.feed(b"bc");
    assert_eq!(status_of(&mut h), 200);
    assert!(h.conn.deadline().is_some_and(|d| d > h.now));
}

/// Requests parse into the memory earlier ones left (on this thread, from any connection):
/// nothing of an earlier request shows through in a later one.
#[test]
fn reused_request_memory_never_shows_through() {
    let seen = |req: &Request| {
        let fields: Vec<String> = req
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Response::text(
            200,
            format!(
                "{} {} {} {:?} {}",
                req.method,
                req.target,
                req.path,
                req.query,
                fields.join(",")
            ),
        )
    };
    let mut router = Router::new();
    router.fallback(seen);
    let router = Arc::new(router);
    let config = Arc::new(ServerConfig::default());
    let mut a = Harness::new(Router::new(), ServerConfig::default());
    a.conn = HttpConn::new(router.clone(), config.clone(), PEER.parse().unwrap(), a.now);
    let mut b = Harness::new(Router::new(), ServerConfig::default());
    b.conn = HttpConn::new(router, config, PEER.parse().unwrap(), b.now);
    let (_, body) = a.exchange(
        b"POST /a/long%20path/here?with=query HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Two: 2\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "POST /a/long%20path/here?with=query /a/long path/here Some(\"with=query\") \
         Host=a,X-One=1,X-Two=2,Content-Length=0"
    );
    for h in [&mut b, &mut a] {
        let (_, body) = h.exchange(b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n");
        assert_eq!(String::from_utf8(body).unwrap(), "GET /b /b None Host=b");
    }
    // A head that fails to parse after a good one is rejected as before.
    let (head, _) = a.exchange(b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.status, 400);
}

/// Everything the connection sends, file bodies read straight into the caller's buffer
/// whenever [`HttpConn::file_next`] allows (the event loop's zero-copy path).
fn drain_reading_files_directly(h: &mut Harness) -> usize {
    let mut direct = 0;
    loop {
        if h.conn.file_next() {
            let mut dst = vec![0u8; 7_000];
            let n = h.conn.read_file_into(&mut dst);
            assert!(n > 0);
            h.sent.extend_from_slice(&dst[..n]);
            direct += n;
            continue;
        }
        let out = h.conn.output().to_vec();
        if out.is_empty() {
            return direct;
        }
        h.sent.extend_from_slice(&out);
        h.conn.consume(out.len());
    }
}

/// RFC 9110 §14: a single range of a file from `--root` comes back as 206 with exactly
/// those bytes, on both ways a file body leaves (copied through `output`, or read straight
/// into the caller's buffer), for a large streamed file and a small cached one; a range
/// past the end is 416 with the length; a stale `If-Range` gets the whole file.
#[test]
fn ranges_of_files_are_served_byte_exact_on_both_body_paths() {
    let dir = std::env::temp_dir().join(format!("tunstack-range-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = pseudo_random(3 * FILE_CHUNK + 500, 21);
    let small = pseudo_random(3000, 22);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.bin"), &small).unwrap();
    let site = crate::http::StaticSite::from_dir(&dir).unwrap();
    let mut h = Harness::new(site, ServerConfig::default());
    let first = FILE_CHUNK as u64 - 10;
    let last = 2 * FILE_CHUNK as u64 + 99;
    for direct in [false, true] {
        for (name, contents) in [("big.bin", &big), ("small.bin", &small)] {
            let len = contents.len() as u64;
            let (a, b) = if len > last {
                (first, last)
            } else {
                (100, 2000)
            };
            let req = format!("GET /{name} HTTP/1.1\r\nHost: t\r\nRange: bytes={a}-{b}\r\n\r\n");
            h.feed(req.as_bytes());
            if direct {
                let n = drain_reading_files_directly(&mut h);
                if name == "big.bin" {
                    assert_eq!(n as u64, b - a + 1, "the range read straight across");
                }
            }
            let (head, body) = h.response(false);
            assert_eq!(head.status, 206, "{name}");
            assert_eq!(
                head.headers.get("content-range"),
                Some(format!("bytes {a}-{b}/{len}").as_str())
            );
            assert!(
                body == contents[a as usize..=b as usize],
                "{name} direct {direct}"
            );
            // A suffix range: the last 1000 bytes.
            h.feed(
                format!("GET /{name} HTTP/1.1\r\nHost: t\r\nRange: bytes=-1000\r\n\r\n").as_bytes(),
            );
            if direct {
                drain_reading_files_directly(&mut h);
            }
            let (head, body) = h.response(false);
            assert_eq!(head.status, 206);
            assert!(body == contents[contents.len() - 1000..]);
        }
    }
    let (head, _) =
        h.exchange(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=9999999-\r\n\r\n");
    assert_eq!(
        (head.status, head.reason.as_str()),
        (416, "Range Not Satisfiable")
    );
    let total = format!("bytes */{}", big.len());
    assert_eq!(head.headers.get("content-range"), Some(total.as_str()));
    let (head, body) = h.exchange(
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nIf-Range: \"stale\"\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.headers.get("accept-ranges"), Some("bytes"));
    assert!(body == big);
    // The connection stayed in step through all of it.
    assert!(!h.conn.should_close());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// RFC 9112 §2.3: HTTP/1.2 (any 1.x above 1.1) is served as HTTP/1.1; only another major
/// version gets 505.
#[test]
fn http_1_2_is_answered_as_http_1_1() {
    let mut h = Harness::standard();
    h.feed(b"GET / HTTP/1.2\r\nHost: t\r\n\r\n");
    h.drain();
    assert!(
        h.sent.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&h.sent[..40])
    );
    assert!(!h.conn.should_close());
}

/// A router whose `/_stats` answers with the value "published" at the moment it runs.
fn stats_router(published: Arc<std::sync::atomic::AtomicU64>) -> Router {
    let mut router = Router::new();
    router.route("/_stats", move |_: &Request| {
        let n = published.load(std::sync::atomic::Ordering::SeqCst);
        Response::text(200, format!("published {n}"))
    });
    router.route("/", |_: &Request| Response::text(200, "page"));
    router
}

#[test]
fn stats_requests_are_routed_by_path_and_wait_for_fresh_statistics() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let published = Arc::new(AtomicU64::new(0));
    let mut h = Harness::new(stats_router(published.clone()), ServerConfig::default());
    h.conn.set_stats_path(Some("/_stats".into()));
    // Pipelined behind another request, and followed by two more: `/_statsX` is not the
    // statistics route, a query string does not hide it.
    h.feed(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /_stats HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /_statsX HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /_stats?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert!(h.conn.stats_wanted());
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"page"[..]));
    assert!(
        h.sent.is_empty(),
        "nothing answered behind the held request"
    );
    // The caller publishes, then the handler runs: it sees the fresh value.
    published.store(1, Ordering::SeqCst);
    h.conn.stats_published();
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"published 1"[..]));
    let (head, _) = h.response(false);
    assert_eq!(head.status, 404, "/_statsX is another path");
    // The last one waits again (it was processed once the held request was answered).
    assert!(h.conn.stats_wanted());
    published.store(2, Ordering::SeqCst);
    h.conn.stats_published();
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"published 2"[..]));
    assert!(!h.conn.stats_wanted());

    // A request split across segments is recognized once complete, not by its first bytes.
    h.feed(b"GET /_st");
    assert!(!h.conn.stats_wanted());
    h.feed(b"ats HTTP/1.1\r\nHo");
    assert!(!h.conn.stats_wanted());
    h.feed(b"st: a\r\n\r\n");
    assert!(h.conn.stats_wanted());
    published.store(3, Ordering::SeqCst);
    h.conn.stats_published();
    let (head, body) = h.response(false);
    assert_eq!((head.status, body.as_slice()), (200, &b"published 3"[..]));
}
