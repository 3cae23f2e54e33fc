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

    /// Take output in steps of at most `step` bytes (a TCP that accepts little at a time).
    fn drain_by(&mut self, step: usize) -> usize {
        let mut total = 0;
        loop {
            let out = self.conn.output();
            if out.is_empty() {
                return total;
            }
            let n = out.len().min(step);
            self.sent.extend_from_slice(&out[..n]);
            self.conn.consume(n);
            total += n;
        }
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

fn status_of(h: &mut Harness) -> u16 {
    h.response(false).0.status
}

#[test]
fn keep_alive_sequence() {
    let mut h = Harness::standard();
    for i in 0..3 {
        let (head, body) = h.exchange(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
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
