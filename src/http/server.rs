//! The HTTP/1.1 server: accepts connections from any [`Acceptor`] and runs each on its own
//! thread (the classic blocking model; the readiness-based server, many connections on one
//! thread, is [`super::evented`]). Both are drivers of the same sans-IO connection,
//! [`HttpConn`], which alone holds the HTTP/1.1 rules (parsing, Host, framing,
//! 413/417/100-continue, keep-alive, timeouts, error responses, pipelining, the access log):
//! this file only moves bytes between a blocking [`Transport`] and it.
//!
//! One connection's thread:
//! ```text
//!  accept ─▶ [limit reached? 503 + close]
//!     │
//!     ▼
//!  write conn.output() ─▶ consume(n) ◀──────────────────────────┐ each write waits at most
//!     │ everything written                                      │ until conn.deadline(): the
//!     ▼                                                         │ no-progress send timeout
//!  should_close? ── yes ─▶ FIN, wait until delivered, linger, close
//!     │ no                                                      │
//!     ▼                                                         │
//!  not yet delivered? ── wait_acked (≤ the deadline) ─▶ on_acked, on_timeout
//!     │ delivered                                               │
//!     ▼                                                         │
//!  read (≤ the deadline) ─▶ on_data / on_eof / on_timeout ──────┘
//! ```
//! Writes block while the client is slow; each waits at most until [`HttpConn::deadline`],
//! which is [`ServerConfig::send_timeout`] after the last progress (room in the send buffer
//! comes only from ACKs), so the bound is on time without progress, not on the transfer.
//! Before the connection reads the next request, and before it closes, it waits for what
//! was written to be acknowledged (bounded the same way): the idle timeout counts from then,
//! and the access-log line is written with the bytes that were delivered — or, when the
//! peer stopped, those that were, and `aborted`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{overload_response, HttpConn};
use super::handlers::Handler;
use super::recycle;
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
    handler: Arc<dyn Handler>,
    config: Arc<ServerConfig>,
    shutdown: Arc<AtomicBool>,
    active: AtomicUsize,
    /// Where the 503s to connections over the limit are counted.
    counters: Option<Arc<HttpCounters>>,
}

/// Granularity at which connections waiting for input or acknowledgements notice a
/// shutdown request (and give back a spare request body, see `recycle::expire_body`).
const SHUTDOWN_POLL: Duration = Duration::from_secs(1);
/// The read buffer grows to this size while reads fill it (a request body arriving).
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer's size while the connection waits for a request head: an idle
/// keep-alive connection then holds 2 KiB, not a 64 KiB chunk (10,000 idle connections:
/// 20 MiB instead of 640 MiB).
const HEAD_READ: usize = 2048;
/// How long a closed connection keeps discarding what the client still sends.
const LINGER: Duration = Duration::from_secs(1);
/// The most a lingering close discards before it gives up on the client.
const LINGER_BYTES: usize = 1024 * 1024;

impl Server {
    /// A server for `handler` with the given limits.
    pub fn new(handler: impl Handler, config: ServerConfig) -> Self {
        Server {
            shared: Arc::new(Shared {
                handler: Arc::new(handler),
                config: Arc::new(config),
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
                let shared = &guard.0;
                let conn = HttpConn::new(
                    shared.handler.clone(),
                    shared.config.clone(),
                    peer,
                    Instant::now(),
                );
                Driver {
                    stream,
                    conn,
                    peer,
                    rbuf: vec![0; HEAD_READ],
                    shutdown: &shared.shutdown,
                    told_shutdown: false,
                }
                .run();
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
    if stream.write_all(&overload_response()).is_ok() {
        let _ = stream.shutdown_write();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// How long a blocking call may wait from `now`: until `deadline`, at most `cap`, at least
/// a millisecond (a zero timeout means "block forever" to some streams).
fn wait_until(deadline: Option<Instant>, now: Instant, cap: Duration) -> Duration {
    deadline
        .map_or(cap, |d| d.saturating_duration_since(now).min(cap))
        .max(Duration::from_millis(1))
}

/// One connection's thread: a blocking [`Transport`] driving an [`HttpConn`].
struct Driver<'a, S: Transport> {
    stream: S,
    conn: HttpConn,
    peer: SocketAddr,
    /// What one read fills; see [`HEAD_READ`] and [`READ_CHUNK`].
    rbuf: Vec<u8>,
    shutdown: &'a AtomicBool,
    /// The server's shutdown was passed on to `conn`.
    told_shutdown: bool,
}

impl<S: Transport> Driver<'_, S> {
    /// Serve the connection until it closes. However it ends, the access-log lines of the
    /// responses not (all) delivered are written when `conn` is dropped.
    fn run(mut self) {
        loop {
            if !self.told_shutdown && self.shutdown.load(Ordering::SeqCst) {
                // The current exchange ends with `Connection: close`; an idle connection
                // closes now.
                self.conn.shutdown();
                self.told_shutdown = true;
            }
            if !self.send() {
                return;
            }
            if self.conn.should_close() {
                self.close();
                return;
            }
            let alive = if !self.conn.delivered() {
                self.await_acks()
            } else if self.conn.wants_read() {
                self.receive()
            } else {
                // Not closing, nothing to send, not reading: cannot happen once the output
                // is written (the connection reads unless it closes); end rather than spin.
                false
            };
            if !alive {
                return;
            }
        }
    }

    /// Write what the connection has to say. False when the connection is over: the
    /// stream failed, or the peer made no progress for the send timeout (then the
    /// connection dropped its output, [`HttpConn::aborted`]).
    fn send(&mut self) -> bool {
        loop {
            let now = Instant::now();
            // Output waiting always has a deadline: the no-progress send timeout.
            let wait = self
                .conn
                .deadline()
                .map(|d| wait_until(Some(d), now, Duration::MAX));
            let out = self.conn.output();
            if out.is_empty() {
                return !self.conn.aborted();
            }
            if let Err(e) = self.stream.set_write_timeout(wait) {
                log::debug!("http: {}: set_write_timeout: {e}", self.peer);
                return false;
            }
            match self.stream.write(out) {
                Ok(0) => return false,
                Ok(n) => {
                    self.conn.consume(n);
                    // A write that had to wait got its room from ACKs: telling them (with
                    // the time) dates that progress before the next write may wait. With
                    // nothing left to write, the wait for delivery that follows does it
                    // (one stack lock fewer per response).
                    if !self.conn.output().is_empty() && !self.acked(Duration::ZERO) {
                        return false;
                    }
                }
                Err(e) if is_timeout(&e) => {
                    if !self.acked(Duration::ZERO) {
                        return false;
                    }
                    self.conn.on_timeout(Instant::now());
                    if self.conn.aborted() {
                        return false;
                    }
                }
                Err(e) => {
                    log::debug!("http: {}: write failed: {e}", self.peer);
                    return false;
                }
            }
        }
    }

    /// Wait up to `wait` (zero: not at all) for the peer to acknowledge everything sent,
    /// then tell the connection how much it did. False if the stream failed (it then has
    /// no count to give).
    fn acked(&mut self, wait: Duration) -> bool {
        match self.stream.wait_acked(wait) {
            Ok(left) => {
                self.conn.on_acked(left as u64, Instant::now());
                true
            }
            Err(e) => {
                log::debug!("http: {}: {e}", self.peer);
                false
            }
        }
    }

    /// Wait for acknowledgements, until everything was delivered or the connection's
    /// deadline (the send timeout, or a header deadline), in slices that notice partial
    /// progress and a shutdown request. False if the stream failed.
    fn await_acks(&mut self) -> bool {
        let wait = wait_until(self.conn.deadline(), Instant::now(), SHUTDOWN_POLL);
        if !self.acked(wait) {
            return false;
        }
        self.conn.on_timeout(Instant::now());
        true
    }

    /// Read once, until the connection's deadline (header, idle or body timeout) at most,
    /// and hand what came to the connection. False if the stream failed.
    fn receive(&mut self) -> bool {
        let now = Instant::now();
        recycle::expire_body(now);
        if self.conn.idle_since().is_some() && self.rbuf.len() > HEAD_READ {
            self.rbuf = vec![0; HEAD_READ];
        }
        let wait = wait_until(self.conn.deadline(), now, SHUTDOWN_POLL);
        if let Err(e) = self.stream.set_read_timeout(Some(wait)) {
            log::debug!("http: {}: set_read_timeout: {e}", self.peer);
            return false;
        }
        match self.stream.read(&mut self.rbuf) {
            Ok(0) => self.conn.on_eof(Instant::now()),
            Ok(n) => {
                self.conn.on_data(&self.rbuf[..n], Instant::now());
                if n == self.rbuf.len() && n < READ_CHUNK {
                    // Reads fill the buffer: a body is arriving, take it in larger pieces.
                    self.rbuf.resize((n * 2).min(READ_CHUNK), 0);
                }
            }
            Err(e) if is_timeout(&e) => self.conn.on_timeout(Instant::now()),
            Err(e) => {
                log::debug!("http: {}: read: {e}", self.peer);
                return false;
            }
        }
        true
    }

    /// Graceful close: FIN after the response, wait until the response was delivered (as
    /// long as the peer makes progress), then discard what the client still sends for a
    /// moment. Closing with unread data would make the kernel send RST, which can destroy
    /// the response before the client reads it (RFC 9112 §9.6 "lingering close").
    fn close(&mut self) {
        // RFC 9293 §3.10.4 CLOSE: FIN after the queued data.
        if let Err(e) = self.stream.shutdown_write() {
            log::debug!("http: {}: shutdown: {e}", self.peer);
            return;
        }
        while !self.conn.delivered() {
            if !self.await_acks() || self.conn.aborted() {
                return;
            }
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            let now = Instant::now();
            if now >= deadline || self.stream.set_read_timeout(Some(deadline - now)).is_err() {
                break;
            }
            match self.stream.read(&mut self.rbuf) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        log::debug!("http: {}: connection closed", self.peer);
    }
}
