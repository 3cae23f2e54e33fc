//! The HTTP/1.1 server: accepts connections from any [`Acceptor`] and runs each on its own
//! thread (the classic blocking model; the readiness-based server, one thread for every
//! connection, is [`super::evented`], on top of the sans-IO [`super::conn::HttpConn`]).
//!
//! Life of a connection:
//! ```text
//!  accept ─▶ [limit reached? 503 + close]
//!     │
//!     ▼
//!  read head ◀──────────────────────────────────────────┐  deadline: header_timeout (total),
//!     │ parse error → 400/431/505 + close                │  idle_timeout while waiting for the
//!     ▼                                                  │  first byte of a follow-up request
//!  framing (CL / chunked) → 400/413/501 + close          │
//!     │ Expect: 100-continue → "HTTP/1.1 100 Continue"   │
//!     ▼                                                  │
//!  read body → handler → write response ── keep-alive ──┘
//!     │ Connection: close / HTTP/1.0 / error
//!     ▼
//!  FIN (shutdown write), wait until delivered, drain briefly, close
//! ```
//! Writes block while the client is slow; each may wait [`ServerConfig::send_timeout`] for
//! the peer to acknowledge something (room in the send buffer comes only from ACKs), so the
//! bound is on time without progress, not on the transfer. Before the connection waits for
//! the next request, and before it closes, it waits for the response to be acknowledged
//! (bounded the same way) and only then writes the access-log line, with the bytes that
//! were delivered — or, when the peer stopped, those that were, and `aborted`.
//! Bytes read past the end of one request are kept: they are the start of the next
//! (pipelining), so responses naturally go out in request order.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::access_log;
use super::handlers::{answer, Handler};
use super::parse::{parse_request_head, ChunkedDecoder, Limits, Parsed, RequestHead};
use super::request::{request_framing, split_target, Framing, Request, Version};
use super::response::{write_response, write_response_head_len, Response, WireOptions};
use super::transport::{Acceptor, Transport};
use crate::stats::HttpCounters;

/// Server limits and timeouts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Maximum simultaneous connections. At the limit the event loop closes the
    /// connection idle the longest to make room; a new connection gets 503 (and is
    /// closed) only when every one is busy. The threaded server answers 503 at the limit.
    pub max_connections: usize,
    /// Total time allowed for a request head to arrive, from the connection's accept (first
    /// request) or from the first byte (later requests). Not per read: a client trickling
    /// one byte at a time (slowloris) is cut off at this deadline.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection waits for the next request.
    pub idle_timeout: Duration,
    /// How long one read of the request body may block.
    pub body_timeout: Duration,
    /// How long sending a response may go without progress: no byte acknowledged by the
    /// peer (a client that stopped reading, a zero window that does not open). Not a bound
    /// on the whole transfer: a slow client that keeps reading gets every byte however
    /// long it takes (nginx's `send_timeout`). A graceful close also waits this long at
    /// most, per stall, for the response to drain before the connection is reset.
    pub send_timeout: Duration,
    /// Maximum size of a request head in bytes (431 beyond).
    pub max_head_bytes: usize,
    /// Maximum number of request header fields (431 beyond).
    pub max_headers: usize,
    /// Maximum request body size in bytes (413 beyond).
    pub max_body: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // As many as the TCP table holds (tcp::Config::max_connections): an idle
            // connection costs a few KiB on the event loop, so memory is not the bound.
            max_connections: 65_536,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            max_head_bytes: 8 * 1024,
            max_headers: 100,
            max_body: 64 * 1024 * 1024,
        }
    }
}

/// Asks a running [`Server::serve`] to stop. Cheap to clone and `Send`.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Request shutdown: `serve` returns after its current (or next) `accept` returns, and
    /// connections close after their current exchange (idle ones within about a second).
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// True once shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 server running one [`Handler`].
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    handler: Box<dyn Handler>,
    config: ServerConfig,
    shutdown: Arc<AtomicBool>,
    active: AtomicUsize,
    /// Where the 503s to connections over the limit are counted.
    counters: Option<Arc<HttpCounters>>,
}

/// Granularity at which idle connections notice a shutdown request.
const SHUTDOWN_POLL: Duration = Duration::from_secs(1);
/// Read buffer size.
const READ_CHUNK: usize = 64 * 1024;
/// How much one read of a request head asks for.
const HEAD_READ: usize = 2048;

impl Server {
    /// A server for `handler` with the given limits.
    pub fn new(handler: impl Handler, config: ServerConfig) -> Self {
        Server {
            shared: Arc::new(Shared {
                handler: Box::new(handler),
                config,
                shutdown: Arc::new(AtomicBool::new(false)),
                active: AtomicUsize::new(0),
                counters: None,
            }),
        }
    }

    /// Count the 503s to connections over the limit in `counters` (the handler's
    /// responses are counted by the handler).
    pub fn with_counters(mut self, counters: Arc<HttpCounters>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.counters = Some(counters);
        }
        self
    }

    /// A handle to stop [`serve`](Self::serve) from another thread (e.g. a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.shared.shutdown.clone(),
        }
    }

    /// Connections currently being served.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// After [`ShutdownHandle::shutdown`]: wait up to `timeout` for the open connections to
    /// finish their current exchange and close. True if none are left.
    pub fn wait_for_connections(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.active_connections() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Accept and serve connections until shutdown is requested or the acceptor fails
    /// fatally. The shutdown flag is checked between accepts, so a listener whose `accept`
    /// blocks forever delays the return until the next connection arrives: give the
    /// [`Acceptor`] an accept timeout (returning `WouldBlock`/`TimedOut`) or make it
    /// non-blocking. `WouldBlock`/`TimedOut`/`Interrupted` from `accept` just re-check the shutdown
    /// flag (a listener with an accept timeout or a non-blocking one makes shutdown prompt);
    /// resource exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) and aborted connections
    /// are logged and retried after a pause; any other error is returned.
    pub fn serve<A: Acceptor>(&self, acceptor: A) -> io::Result<()> {
        log::info!(
            "http: serving (max {} connections)",
            self.shared.config.max_connections
        );
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                log::info!("http: shutdown requested, no longer accepting");
                return Ok(());
            }
            let (stream, peer) = match acceptor.accept() {
                Ok(x) => x,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset => continue,
                    _ if matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105)) => {
                        log::warn!("http: accept: {e}; retrying");
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    _ => {
                        log::error!("http: accept failed: {e}");
                        return Err(e);
                    }
                },
            };
            self.dispatch(stream, peer);
        }
    }

    fn dispatch<S: Transport>(&self, stream: S, peer: SocketAddr) {
        let shared = &self.shared;
        // Counted here, in the accept loop, so the limit is exact.
        let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = ActiveGuard(self.shared.clone());
        if active > shared.config.max_connections {
            log::warn!("http: {peer}: connection limit ({active}) reached, answering 503");
            if let Some(c) = &shared.counters {
                c.record_refusal(503);
            }
            reject_busy(stream);
            return;
        }
        let spawned = thread::Builder::new()
            .name(format!("http {peer}"))
            .spawn(move || {
                let shared = guard.0.clone();
                let mut conn = Connection {
                    stream,
                    peer,
                    buf: Vec::new(),
                    shared: &shared,
                    written: 0,
                    pending: Vec::new(),
                };
                conn.run();
                drop(guard);
            });
        if let Err(e) = spawned {
            // The closure (stream and guard) was dropped: the connection closes, the count
            // goes back down.
            log::warn!("http: {peer}: cannot spawn a thread: {e}");
        }
    }
}

/// Decrements the active-connection count when the connection ends, however it ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answer 503 without spawning anything; the response fits in any socket buffer.
fn reject_busy<S: Transport>(mut stream: S) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let resp = Response::error(503).with_header("Retry-After", "1");
    let opts = WireOptions {
        head_only: false,
        close: true,
        keep_alive_10: false,
    };
    if write_response(&mut stream, resp, &opts).is_ok() {
        let _ = stream.shutdown_write();
    }
}

/// Why reading a request ended without a request.
enum ReadError {
    /// Answer with this response, then close.
    Respond(Response),
    /// Close silently (peer went away, idle timeout, I/O error, shutdown).
    Close,
}

struct Connection<'a, S: Transport> {
    stream: S,
    peer: SocketAddr,
    /// Bytes received but not yet consumed (the start of the next request when pipelining).
    buf: Vec<u8>,
    shared: &'a Shared,
    /// Bytes written to the stream so far.
    written: u64,
    /// Access-log lines of responses written but not yet acknowledged, oldest first.
    pending: Vec<PendingLog>,
}

/// A response whose access-log line waits for its bytes to be acknowledged.
struct PendingLog {
    /// `peer "METHOD target VERSION" status`.
    line: String,
    /// Offset of the body's first byte in the output stream, and its length.
    body_start: u64,
    body_len: u64,
    started: Instant,
}

/// Counts what goes through to the stream.
struct Counting<'a, S> {
    stream: &'a mut S,
    written: &'a mut u64,
}

impl<S: io::Write> io::Write for Counting<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        *self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<S: Transport> Connection<'_, S> {
    fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    fn run(&mut self) {
        self.serve();
        if !self.pending.is_empty() {
            // Ended without waiting for delivery (an error): log what arrived.
            let acked = match self.stream.wait_acked(Duration::from_millis(1)) {
                Ok(left) => self.written.saturating_sub(left as u64),
                Err(_) => 0,
            };
            self.flush_logs(acked, true);
        }
    }

    fn serve(&mut self) {
        log::debug!("http: {}: connection opened", self.peer);
        if let Err(e) = self
            .stream
            .set_write_timeout(Some(self.config().send_timeout))
        {
            log::debug!("http: {}: set_write_timeout: {e}", self.peer);
        }
        let mut first = true;
        loop {
            let head = match self.read_head(first) {
                Ok(h) => h,
                Err(ReadError::Close) => break,
                Err(ReadError::Respond(resp)) => {
                    // The access-log line for a request we could not parse.
                    if access_log::enabled() {
                        access_log::write(format_args!("{} \"-\" {} 0 -", self.peer, resp.status));
                    }
                    self.respond_and_close(resp, None);
                    return;
                }
            };
            first = false;
            match self.exchange(head) {
                // Unless the next request is already here (pipelined), wait for this
                // response to be delivered before waiting for another: the idle timeout
                // counts from then, and the access-log line is complete.
                Ok(true) if !self.buf.is_empty() || self.await_delivery() => continue,
                Ok(true) => return,
                Ok(false) => break,
                Err(()) => return,
            }
        }
        self.close();
    }

    /// Wait until the peer acknowledged everything written, as long as it keeps making
    /// progress: false once it acknowledged nothing for `send_timeout` (or failed). The
    /// access-log lines of what was delivered are written on the way.
    fn await_delivery(&mut self) -> bool {
        let limit = self.config().send_timeout;
        let mut progress_at = Instant::now();
        let mut left = u64::MAX;
        loop {
            let now = Instant::now();
            let idle = now.saturating_duration_since(progress_at);
            if idle >= limit {
                log::debug!(
                    "http: {}: no progress for {limit:?}, {left} bytes unacknowledged",
                    self.peer
                );
                self.flush_logs(self.written.saturating_sub(left), true);
                return false;
            }
            // Slices of at most a second, to notice partial progress (the wait only ends
            // early when everything was acknowledged).
            let slice = (limit - idle).min(SHUTDOWN_POLL);
            let now_left = match self.stream.wait_acked(slice) {
                Ok(n) => n as u64,
                Err(e) => {
                    log::debug!("http: {}: {e}", self.peer);
                    let acked = self.written.saturating_sub(left.min(self.written));
                    self.flush_logs(acked, true);
                    return false;
                }
            };
            if now_left < left {
                progress_at = Instant::now();
                left = now_left;
                self.flush_logs(self.written - left.min(self.written), false);
            }
            if left == 0 {
                return true;
            }
        }
    }

    /// Write the access-log lines of the responses acknowledged (`acked` bytes of the
    /// output); `aborted`: all of them, marking those not fully delivered.
    fn flush_logs(&mut self, acked: u64, aborted: bool) {
        let mut done = 0;
        for p in &self.pending {
            let end = p.body_start + p.body_len;
            if !aborted && acked < end {
                break;
            }
            let bytes = acked.saturating_sub(p.body_start).min(p.body_len);
            let mark = if acked < end { " aborted" } else { "" };
            access_log::write(format_args!(
                "{} {bytes} {:.1}ms{mark}",
                p.line,
                p.started.elapsed().as_secs_f64() * 1000.0
            ));
            done += 1;
        }
        self.pending.drain(..done);
    }

    /// One request/response. Ok(true): keep the connection; Ok(false): close it gracefully;
    /// Err: already closed.
    fn exchange(&mut self, head: RequestHead) -> Result<bool, ()> {
        let start = Instant::now();
        let peer = self.peer;
        let log_line = |status: u16, bytes: u64| {
            if access_log::enabled() {
                access_log::write(format_args!(
                    "{peer} \"{} {} {}\" {status} {bytes} {:.1}ms",
                    head.method,
                    head.target,
                    head.version,
                    start.elapsed().as_secs_f64() * 1000.0
                ));
            }
        };
        let reject = |this: &mut Self, resp: Response| {
            let status = resp.status;
            this.respond_and_close(resp, Some(&head.method));
            log_line(status, 0);
            Err(())
        };
        // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400.
        if head.version == Version::Http11 && head.headers.get_all("host").count() != 1 {
            return reject(self, Response::error(400));
        }
        let framing = match request_framing(head.version, &head.headers) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("http: {peer}: {}", e.reason);
                return reject(self, Response::error(e.status));
            }
        };
        let Some((path, query)) = split_target(&head.target) else {
            return reject(self, Response::error(400));
        };
        if let Framing::Length(n) = framing {
            if n > self.config().max_body {
                return reject(self, Response::error(413));
            }
        }
        // RFC 9110 §10.1.1: 100-continue is the only defined expectation.
        if let Some(expect) = head.headers.get("expect") {
            if !expect.eq_ignore_ascii_case("100-continue") {
                return reject(self, Response::error(417));
            }
            // Only worth it if the body is expected and has not started arriving.
            if head.version == Version::Http11 && framing != Framing::None && self.buf.is_empty() {
                let sent = self
                    .stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .and_then(|_| self.stream.flush());
                if sent.is_err() {
                    return Err(());
                }
            }
        }
        let body = match self.read_body(framing) {
            Ok(b) => b,
            Err(ReadError::Close) => {
                log_line(0, 0);
                return Err(());
            }
            Err(ReadError::Respond(resp)) => return reject(self, resp),
        };
        let keep_alive = match head.version {
            Version::Http11 => !head.headers.has_token("connection", "close"),
            Version::Http10 => head.headers.has_token("connection", "keep-alive"),
        };
        let RequestHead {
            method,
            target,
            version,
            headers,
        } = head.clone();
        let mut req = Request {
            method,
            target,
            path,
            query,
            version,
            headers,
            body,
            peer: Some(peer),
        };
        let resp = answer(&*self.shared.handler, &mut req);
        let keep_alive = keep_alive
            && !resp.headers.has_token("connection", "close")
            && !self.shared.shutdown.load(Ordering::SeqCst);
        let status = resp.status;
        let opts = WireOptions {
            head_only: req.method == "HEAD",
            close: !keep_alive,
            keep_alive_10: keep_alive && version == Version::Http10,
        };
        let before = self.written;
        let mut head_len = 0;
        let body_len = if opts.head_only || super::response::status_has_no_body(status) {
            0
        } else {
            resp.body.len()
        };
        // The line is written once the peer acknowledged the body (flush_logs).
        if access_log::enabled() {
            self.pending.push(PendingLog {
                line: format!(
                    "{peer} \"{} {} {}\" {status}",
                    head.method, head.target, head.version
                ),
                body_start: before,
                body_len,
                started: start,
            });
        }
        let mut out = Counting {
            stream: &mut self.stream,
            written: &mut self.written,
        };
        let result = write_response_head_len(&mut out, resp, &opts, &mut head_len);
        if let Some(p) = self.pending.last_mut() {
            p.body_start = before + head_len;
        }
        match result {
            Ok(_) => Ok(keep_alive),
            Err(e) => {
                // The peer stopped taking bytes (no progress for send_timeout) or failed.
                log::debug!("http: {peer}: write failed: {e}");
                let left = self.stream.wait_acked(Duration::from_millis(1));
                let acked = match left {
                    Ok(n) => self.written.saturating_sub(n as u64),
                    Err(_) => before,
                };
                self.flush_logs(acked, true);
                Err(())
            }
        }
    }

    /// Read until a complete head is buffered; see [`ServerConfig::header_timeout`].
    fn read_head(&mut self, first: bool) -> Result<RequestHead, ReadError> {
        let config = self.config().clone();
        let limits = Limits {
            max_head_bytes: config.max_head_bytes,
            max_headers: config.max_headers,
        };
        let now = Instant::now();
        let mut head_deadline = first.then(|| now + config.header_timeout);
        let idle_deadline = now + config.idle_timeout;
        loop {
            if !self.buf.is_empty() {
                head_deadline.get_or_insert_with(|| Instant::now() + config.header_timeout);
                match parse_request_head(&self.buf, &limits) {
                    Ok(Parsed::Complete { value, consumed }) => {
                        self.buf.drain(..consumed);
                        return Ok(value);
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => {
                        log::debug!("http: {}: bad request head: {e}", self.peer);
                        return Err(ReadError::Respond(Response::error(e.status())));
                    }
                }
            } else if self.shared.shutdown.load(Ordering::SeqCst) {
                return Err(ReadError::Close);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            let now = Instant::now();
            if now >= deadline {
                if self.buf.is_empty() {
                    log::debug!("http: {}: idle timeout", self.peer);
                    return Err(ReadError::Close);
                }
                log::debug!("http: {}: request head timeout", self.peer);
                return Err(ReadError::Respond(Response::error(408)));
            }
            let mut wait = deadline - now;
            if self.buf.is_empty() {
                wait = wait.min(SHUTDOWN_POLL);
            }
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                return Err(ReadError::Close);
            }
            // Read straight into the connection's buffer: an idle keep-alive connection
            // then holds HEAD_READ bytes, not a zeroed 16 KiB chunk (10,000 idle
            // connections: 20 MiB instead of 160 MiB).
            let filled = self.buf.len();
            self.buf.resize(filled + HEAD_READ, 0);
            let got = self.stream.read(&mut self.buf[filled..]);
            self.buf.truncate(filled + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => {
                    if !self.buf.is_empty() {
                        log::debug!("http: {}: EOF inside a request head", self.peer);
                    }
                    return Err(ReadError::Close);
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("http: {}: read: {e}", self.peer);
                    return Err(ReadError::Close);
                }
            }
        }
    }

    /// Read more bytes into `self.buf` for a body. Err on EOF, timeout or I/O error.
    fn fill_body(&mut self, chunk: &mut [u8]) -> Result<(), ReadError> {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => {
                    log::debug!("http: {}: EOF inside a request body", self.peer);
                    return Err(ReadError::Close);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(ReadError::Respond(Response::error(408)));
                }
                Err(e) => {
                    log::debug!("http: {}: read: {e}", self.peer);
                    return Err(ReadError::Close);
                }
            }
        }
    }

    fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, ReadError> {
        let max = self.config().max_body;
        if framing == Framing::None {
            return Ok(Vec::new());
        }
        if self
            .stream
            .set_read_timeout(Some(self.config().body_timeout))
            .is_err()
        {
            return Err(ReadError::Close);
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(len) => {
                // len <= max_body was checked, and max_body bounds the allocation.
                let len =
                    usize::try_from(len).map_err(|_| ReadError::Respond(Response::error(413)))?;
                let mut body = Vec::with_capacity(len.min(READ_CHUNK * 16));
                loop {
                    let take = (len - body.len()).min(self.buf.len());
                    body.extend_from_slice(&self.buf[..take]);
                    self.buf.drain(..take);
                    if body.len() == len {
                        return Ok(body);
                    }
                    self.fill_body(&mut chunk)?;
                }
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let used = decoder.decode(&self.buf, &mut body).map_err(|e| {
                        log::debug!("http: {}: bad chunked body: {e}", self.peer);
                        ReadError::Respond(Response::error(400))
                    })?;
                    self.buf.drain(..used);
                    let announced =
                        (body.len() as u64).saturating_add(decoder.remaining_in_chunk());
                    if announced > max {
                        return Err(ReadError::Respond(Response::error(413)));
                    }
                    if decoder.is_done() {
                        return Ok(body);
                    }
                    self.fill_body(&mut chunk)?;
                }
            }
        }
    }

    /// Send an error response with `Connection: close`, then close.
    fn respond_and_close(&mut self, resp: Response, method: Option<&str>) {
        let opts = WireOptions {
            head_only: method == Some("HEAD"),
            close: true,
            keep_alive_10: false,
        };
        if let Err(e) = write_response(&mut self.stream, resp, &opts) {
            log::debug!("http: {}: write failed: {e}", self.peer);
            return;
        }
        self.close();
    }

    /// Graceful close: FIN after the response, wait until the response was delivered (as
    /// long as the peer makes progress), then discard what the client still sends for a
    /// moment. Closing with unread data would make the kernel send RST, which can destroy
    /// the response before the client reads it (RFC 9112 §9.6 "lingering close").
    fn close(&mut self) {
        let _ = self.stream.flush();
        if self.stream.shutdown_write().is_err() {
            self.flush_logs(0, true);
            return;
        }
        if !self.await_delivery() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut drained = 0usize;
        let mut chunk = [0u8; 4096];
        while drained < 1024 * 1024 {
            let now = Instant::now();
            if now >= deadline || self.stream.set_read_timeout(Some(deadline - now)).is_err() {
                break;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        log::debug!("http: {}: connection closed", self.peer);
    }
}
