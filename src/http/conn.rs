//! A sans-IO HTTP/1.1 server connection: bytes in, bytes out, time passed in.
//!
//! [`HttpConn`] is the one place where the HTTP/1.1 rules of the server live: parsing, Host,
//! framing, 413/417/100-continue, keep-alive, the timeouts, error responses, pipelining and
//! the access log. It does no I/O: its caller feeds it what TCP received, sends what it has
//! to say, and wakes it at its deadline. Two callers drive it: the event loop's
//! [`EventedServer`] (thousands of connections at a few hundred bytes each) and the threaded
//! [`Server`] (one blocking thread per connection), so both behave the same on the wire.
//!
//! ```text
//!   on_data(bytes, now) ──▶ [ Head ] ──complete head──▶ [ Body ] ──complete──▶ handler
//!                             ▲   │ error → 4xx/5xx + Closing        │ 413/400/408   │
//!                             │   ▼                                  ▼               ▼
//!                             │ Closing ◀── Connection: close / HTTP/1.0 ── response queued
//!                             └───────────────── keep-alive ─────────────────────┘
//!   output() / consume(n)  : the queued bytes: response heads (and small bodies) from one
//!                            buffer, then a large body from where it lives (a Static slice,
//!                            the handler's Vec, a Shared cached file, or a file read
//!                            FILE_CHUNK at a time)
//!   on_acked(unacked, now) : how much of what TCP took the peer has not acknowledged yet
//!   should_close()         : Closing and everything sent → the caller sends FIN
//!   delivered()            : everything handed to TCP was acknowledged (then lingering)
//!   deadline()/on_timeout(): header (408 or silent), idle (silent), body (408), send (drop)
//! ```
//!
//! Sending is bounded by *progress*, not by time (like nginx's `send_timeout`): a response
//! may take an hour to reach a slow client as long as the peer keeps acknowledging bytes;
//! only [`ServerConfig::send_timeout`] without any byte acknowledged (a peer that stopped
//! reading, a zero window that never opens) drops the connection, and then
//! [`HttpConn::aborted`] tells the caller to reset it. The keep-alive idle timer starts
//! when the last response was acknowledged, not when it was handed to TCP, and the access
//! log line of a response is written once its bytes were acknowledged (or the transfer was
//! aborted, with the bytes that did arrive and the word `aborted`).
//!
//! Pipelining (RFC 9112 §9.3.2): bytes after one request are the start of the next; requests
//! are answered strictly in order because a request is only processed once the previous
//! response's large body (if any) has been handed to TCP. While output is backed up,
//! [`HttpConn::wants_read`] is false, so a client pipelining faster than it reads cannot grow
//! the server's memory without bound: TCP's receive window pushes back instead.
//!
//! [`Server`]: super::Server
//! [`EventedServer`]: super::evented::EventedServer

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::access_log;
use super::handlers::{answer, Handler};
use super::parse::{parse_request_head_into, ChunkedDecoder, Limits, Parsed, RequestHead};
use super::recycle::{self, SpareRequest};
use super::request::{request_framing, split_target_into, Framing, Request, Version};
use super::response::{
    status_has_no_body, unix_now, write_head, Body, Response, WireOptions, FILE_CHUNK,
};
use super::server::ServerConfig;

/// Bodies up to this size are copied behind their head (files read there at once), so that
/// head and body leave in one write — one segment for a small response — and a burst of small
/// pipelined responses leaves together. Larger bodies are sent from where they are (a static
/// slice, the handler's Vec, a shared cached file) or read from their file one FILE_CHUNK at
/// a time, never copied whole.
const COALESCE: usize = 1024 + 512;
/// Above this many unsent bytes no further pipelined request is processed and
/// [`HttpConn::wants_read`] is false.
const BACKPRESSURE: usize = 16 * 1024;
/// Idle buffers keep at most this much capacity; a bigger one (after a large request or many
/// pipelined responses) is freed, so an idle connection stays small.
const RETAIN: usize = 512;
/// First allocation of the output buffer: one typical response head.
const OUT_INITIAL: usize = 256;
/// Initial capacity of a Content-Length body, at most (it grows to the announced length).
const BODY_INITIAL_MAX: usize = 1024 * 1024;

/// What the connection is waiting for.
enum Phase {
    /// (The rest of) a request head. `deadline`: the header deadline, set at accept for the
    /// first request and at the first byte of later ones.
    Head { deadline: Option<Instant> },
    /// The body of a request whose head was accepted.
    Body(Box<BodyRead>),
    /// No more requests: send what is queued, then FIN.
    Closing,
}

/// A request whose body is arriving.
struct BodyRead {
    head: RequestHead,
    path: String,
    query: Option<String>,
    framing: Framing,
    body: Vec<u8>,
    decoder: ChunkedDecoder,
    started: Instant,
}

/// The large body of the response being sent, after the bytes in `out`.
enum OutBody {
    None,
    Static(&'static [u8], usize),
    Bytes(Vec<u8>, usize),
    Shared(Arc<[u8]>, usize),
    /// `left` bytes still to read from `file`; `buf[pos..filled]` read but unsent.
    File {
        file: File,
        left: u64,
        buf: Vec<u8>,
        filled: usize,
        pos: usize,
    },
}

impl OutBody {
    /// Bytes of this body not yet accepted by TCP (including those still in the file).
    fn unsent(&self) -> u64 {
        match self {
            OutBody::None => 0,
            OutBody::Static(s, pos) => (s.len() - pos) as u64,
            OutBody::Bytes(v, pos) => (v.len() - pos) as u64,
            OutBody::Shared(v, pos) => (v.len() - pos) as u64,
            OutBody::File {
                left, filled, pos, ..
            } => left + (filled - pos) as u64,
        }
    }
}

/// A response whose access-log line waits for its bytes to be acknowledged.
struct PendingLog {
    /// `peer "METHOD target VERSION" status`.
    line: String,
    /// Offset of the body's first byte in the connection's output stream.
    body_start: u64,
    body_len: u64,
    started: Instant,
}

/// One HTTP/1.1 server connection, driven by its caller. See the module documentation.
pub struct HttpConn {
    handler: Arc<dyn Handler>,
    config: Arc<ServerConfig>,
    peer: SocketAddr,
    /// The latest time the caller told us (used by `consume`, which has no `now`).
    now: Instant,
    /// Received bytes not yet used: a partial head, or pipelined requests waiting their turn.
    inbuf: Vec<u8>,
    phase: Phase,
    /// Response heads (and small bodies) not yet sent: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// The large body that follows `out`.
    body: OutBody,
    /// When the connection last had nothing to send or deliver in the Head phase (idle
    /// timeout base).
    idle_since: Instant,
    /// When sending last made progress: TCP took bytes, or the peer acknowledged some, or
    /// output started waiting (send timeout base).
    progress_since: Instant,
    /// Bytes handed to TCP since the connection opened.
    handed: u64,
    /// Of those, acknowledged by the peer (as last reported to `on_acked`).
    acked: u64,
    /// No progress for `send_timeout`: the caller resets the connection.
    aborted: bool,
    /// Access-log lines of responses not yet acknowledged, oldest first.
    pending_logs: VecDeque<PendingLog>,
    /// When the request body last made progress (body timeout base).
    body_since: Instant,
    /// When the first byte of the current request head arrived (for the access log).
    request_started: Instant,
    served: u64,
    peer_eof: bool,
    shutdown: bool,
    /// Requests for this path read statistics the caller must publish first
    /// ([`set_stats_path`](HttpConn::set_stats_path)).
    stats_path: Option<Arc<str>>,
    /// A complete request for `stats_path`, held until the caller published them
    /// ([`stats_wanted`](HttpConn::stats_wanted), [`stats_published`](HttpConn::stats_published)).
    parked: Option<Box<ParkedRequest>>,
}

/// A complete request waiting for [`HttpConn::stats_published`].
struct ParkedRequest {
    head: RequestHead,
    path: String,
    query: Option<String>,
    body: Vec<u8>,
}

/// `t + d`, saturating far in the future instead of overflowing (a configured timeout of
/// years must not panic).
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(t)
}

/// Where a wall-clock time comes from in a sans-IO connection: the `Instant` the caller
/// passes, mapped through one (Instant, SystemTime) pair taken at first use. (It follows the
/// monotonic clock from then on, not later steps of the wall clock; for a Date header that
/// is close enough, and it keeps the connection free of clock reads.)
fn unix_secs_at(now: Instant) -> u64 {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (at, wall) = *ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    let t = match now.checked_duration_since(at) {
        Some(d) => wall.checked_add(d),
        None => wall.checked_sub(at.duration_since(now)),
    };
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The 503 a connection over the limit gets, ready to send (then FIN).
pub fn overload_response() -> Vec<u8> {
    let resp = Response::error(503).with_header("Retry-After", "1");
    let opts = WireOptions {
        head_only: false,
        close: true,
        keep_alive_10: false,
    };
    let mut out = Vec::with_capacity(OUT_INITIAL);
    write_head(
        &mut out,
        resp.status,
        &resp.headers,
        resp.body.len(),
        &opts,
        unix_now(),
    );
    if let Body::Bytes(b) = &resp.body {
        out.extend_from_slice(b);
    }
    out
}

impl HttpConn {
    /// A connection accepted at `now` from `peer`. The first request's header deadline
    /// starts now ([`ServerConfig::header_timeout`]).
    pub fn new(
        handler: Arc<dyn Handler>,
        config: Arc<ServerConfig>,
        peer: SocketAddr,
        now: Instant,
    ) -> HttpConn {
        log::debug!("http: {peer}: connection opened");
        let deadline = Some(later(now, config.header_timeout));
        HttpConn {
            handler,
            config,
            peer,
            now,
            inbuf: Vec::new(),
            phase: Phase::Head { deadline },
            out: Vec::new(),
            out_pos: 0,
            body: OutBody::None,
            idle_since: now,
            progress_since: now,
            handed: 0,
            acked: 0,
            aborted: false,
            pending_logs: VecDeque::new(),
            body_since: now,
            request_started: now,
            served: 0,
            peer_eof: false,
            shutdown: false,
            stats_path: None,
            parked: None,
        }
    }

    /// Requests whose parsed path is `path` report statistics that only the caller can
    /// refresh: such a request (pipelined or not, however it was split into segments) is
    /// held, [`stats_wanted`](Self::stats_wanted) turns true, and the handler runs on
    /// [`stats_published`](Self::stats_published).
    pub fn set_stats_path(&mut self, path: Option<Arc<str>>) {
        self.stats_path = path;
    }

    /// A request for the statistics path waits: publish the statistics, then call
    /// [`stats_published`](Self::stats_published).
    pub fn stats_wanted(&self) -> bool {
        self.parked.is_some()
    }

    /// The statistics are fresh: answer the held request, then carry on with what was
    /// pipelined behind it.
    pub fn stats_published(&mut self) {
        let Some(p) = self.parked.take() else {
            return;
        };
        self.answer(p.head, p.path, p.query, p.body);
        self.after_sent();
    }

    /// Bytes received from the peer, in order. Complete requests are answered at once (their
    /// responses queued for [`output`](Self::output)), unless output is backed up: then the
    /// bytes wait until [`consume`](Self::consume) drains it.
    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if matches!(self.phase, Phase::Closing) {
            // Lingering close (RFC 9112 §9.6): what the client still sends is discarded.
            return;
        }
        if self.inbuf.is_empty() {
            // Fast path: parse straight from the caller's bytes, keep only the rest.
            let used = self.process(data);
            if used < data.len() {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            self.process_inbuf();
        }
        self.settle();
    }

    /// The peer sent FIN: requests already buffered are still answered (a client may
    /// half-close after its last request), then the connection closes; a partial request is
    /// dropped silently.
    pub fn on_eof(&mut self, now: Instant) {
        self.now = now;
        self.peer_eof = true;
        self.settle();
    }

    /// False while the connection does not want more bytes: output is backed up (more than a
    /// small threshold unsent, or unprocessed requests wait behind a body being sent), or the
    /// connection is closing.
    pub fn wants_read(&self) -> bool {
        if matches!(self.phase, Phase::Closing) || self.peer_eof {
            return false;
        }
        let unsent = self.unsent();
        // Requests waiting behind a body being sent: stop reading until it has gone.
        unsent <= BACKPRESSURE as u64 && (self.inbuf.is_empty() || !self.blocked())
    }

    /// The next bytes to send (empty: nothing to send now). Call [`consume`](Self::consume)
    /// with how many TCP accepted. A file body is read here, one [`FILE_CHUNK`] at a time,
    /// only once the previous piece was sent.
    pub fn output(&mut self) -> &[u8] {
        if self.out_pos < self.out.len() {
            return &self.out[self.out_pos..];
        }
        if let OutBody::File {
            left, filled, pos, ..
        } = &self.body
        {
            if pos == filled && *left > 0 {
                self.read_file_chunk();
            }
        }
        match &self.body {
            OutBody::None => &[],
            OutBody::Static(s, pos) => &s[*pos..],
            OutBody::Bytes(v, pos) => &v[*pos..],
            OutBody::Shared(v, pos) => &v[*pos..],
            OutBody::File {
                buf, filled, pos, ..
            } => &buf[*pos..*filled],
        }
    }

    /// `n` bytes of [`output`](Self::output) were accepted by TCP. When the output drains,
    /// pipelined requests waiting in the buffer are processed (with the time of the latest
    /// call that passed one).
    pub fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.progress_since = self.now;
        self.handed += n as u64;
        let mut n = n;
        let in_out = (self.out.len() - self.out_pos).min(n);
        self.out_pos += in_out;
        n -= in_out;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > RETAIN {
                // For the next response on this thread, whichever connection it is for.
                recycle::give_buffer(std::mem::take(&mut self.out));
            }
        }
        if n > 0 {
            let done = match &mut self.body {
                OutBody::None => true,
                OutBody::Static(s, pos) => {
                    *pos = (*pos + n).min(s.len());
                    *pos == s.len()
                }
                OutBody::Bytes(v, pos) => {
                    *pos = (*pos + n).min(v.len());
                    *pos == v.len()
                }
                OutBody::Shared(v, pos) => {
                    *pos = (*pos + n).min(v.len());
                    *pos == v.len()
                }
                OutBody::File {
                    left, filled, pos, ..
                } => {
                    *pos = (*pos + n).min(*filled);
                    *pos == *filled && *left == 0
                }
            };
            if done {
                if let OutBody::Bytes(v, _) = std::mem::replace(&mut self.body, OutBody::None) {
                    recycle::give_body(v, self.now);
                }
            }
        }
        self.after_sent();
    }

    /// Bookkeeping after bytes were sent: pipelined requests waiting behind the output are
    /// processed.
    fn after_sent(&mut self) {
        if !self.blocked() {
            if !self.inbuf.is_empty() {
                self.process_inbuf();
            }
            self.settle();
        }
    }

    /// TCP's count of the bytes handed to it (through [`consume`](Self::consume) and
    /// [`read_file_into`](Self::read_file_into)) that the peer has not acknowledged yet
    /// ([`crate::socket::ready::TcpSocket::unacked`], like `SIOCOUTQ`). Acknowledged
    /// bytes are progress: they restart the send timeout, complete access-log lines, and
    /// once everything is acknowledged the keep-alive idle timer starts. Call it whenever TCP may have moved (before
    /// [`deadline`](Self::deadline) and [`on_timeout`](Self::on_timeout)), never after
    /// TCP failed (a reset connection reports nothing unacknowledged).
    pub fn on_acked(&mut self, unacked: u64, now: Instant) {
        self.now = now;
        let acked = self.handed.saturating_sub(unacked);
        if acked <= self.acked {
            return;
        }
        self.acked = acked;
        self.progress_since = now;
        self.flush_logs(false);
        if !self.waiting() {
            if let Phase::Head { .. } = self.phase {
                self.idle_since = now;
            }
        }
    }

    /// Everything queued was handed to TCP and acknowledged by the peer.
    pub fn delivered(&self) -> bool {
        !self.waiting()
    }

    /// The peer made no progress for [`ServerConfig::send_timeout`] while output was
    /// waiting: the caller resets the connection (RFC 9293 §3.10.5 ABORT).
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// True once the connection must end: it is closing and everything queued was sent.
    /// The caller then sends FIN, and keeps the connection until [`delivered`]
    /// (Self::delivered) — or [`aborted`](Self::aborted): the no-progress timeout bounds
    /// the wait — so that a slow client still gets every byte.
    pub fn should_close(&self) -> bool {
        matches!(self.phase, Phase::Closing) && self.unsent() == 0
    }

    /// Output is waiting: queued, or handed to TCP and not yet acknowledged.
    fn waiting(&self) -> bool {
        self.unsent() > 0 || self.handed > self.acked
    }

    /// Write the access-log lines of the responses acknowledged so far; `aborted`: all of
    /// them, with the bytes that were acknowledged, marked `aborted`.
    fn flush_logs(&mut self, aborted: bool) {
        while let Some(p) = self.pending_logs.front() {
            let end = p.body_start + p.body_len;
            if !aborted && self.acked < end {
                return;
            }
            let bytes = self.acked.saturating_sub(p.body_start).min(p.body_len);
            let ms = self.now.saturating_duration_since(p.started).as_secs_f64() * 1000.0;
            let mark = if self.acked < end { " aborted" } else { "" };
            access_log::write(format_args!("{} {bytes} {ms:.1}ms{mark}", p.line));
            self.pending_logs.pop_front();
        }
    }

    /// When [`on_timeout`](Self::on_timeout) must be called next, if ever: the header
    /// deadline, the idle timeout, the body timeout, or the send timeout while output is
    /// waiting for the peer — whichever comes first.
    pub fn deadline(&self) -> Option<Instant> {
        let waiting = self.waiting();
        let write = waiting.then(|| later(self.progress_since, self.config.send_timeout));
        let phase = match &self.phase {
            Phase::Head { deadline: Some(d) } => Some(*d),
            Phase::Head { deadline: None } if !waiting => {
                Some(later(self.idle_since, self.config.idle_timeout))
            }
            Phase::Head { deadline: None } => None,
            Phase::Body(_) => Some(later(self.body_since, self.config.body_timeout)),
            Phase::Closing => None,
        };
        match (write, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline passed (calling it early does nothing): a client that acknowledged
    /// nothing for `send_timeout` while output waits is dropped (its output discarded,
    /// [`aborted`](Self::aborted) true); an incomplete head or body gets 408 and the
    /// connection closes; an idle connection closes silently.
    pub fn on_timeout(&mut self, now: Instant) {
        self.now = now;
        let waiting = self.waiting();
        if waiting && now >= later(self.progress_since, self.config.send_timeout) {
            log::debug!(
                "http: {}: no progress for {:?} ({} of {} bytes acknowledged), dropping the connection",
                self.peer,
                self.config.send_timeout,
                self.acked,
                self.handed + self.unsent()
            );
            self.aborted = true;
            self.flush_logs(true);
            self.abort();
            return;
        }
        match &self.phase {
            Phase::Head { deadline } => {
                let due = match deadline {
                    Some(d) => *d,
                    None if !waiting => later(self.idle_since, self.config.idle_timeout),
                    None => return,
                };
                if now < due {
                    return;
                }
                if self.inbuf.is_empty() {
                    log::debug!("http: {}: idle timeout", self.peer);
                    self.phase = Phase::Closing;
                } else {
                    log::debug!("http: {}: request head timeout", self.peer);
                    if access_log::enabled() {
                        access_log::write(format_args!("{} \"-\" 408 0 -", self.peer));
                    }
                    self.respond_and_close(Response::error(408), false);
                }
            }
            Phase::Body(b) => {
                if now < later(self.body_since, self.config.body_timeout) {
                    return;
                }
                let head_only = b.head.method == "HEAD";
                self.log_access(&b.head, 408, 0);
                self.respond_and_close(Response::error(408), head_only);
            }
            Phase::Closing => {}
        }
    }

    /// Since when the connection is idle — waiting for a request of which no byte arrived,
    /// with nothing to send or deliver — or `None` while it is busy. An idle connection
    /// can be closed without losing anything ([`close_idle`](Self::close_idle)).
    pub fn idle_since(&self) -> Option<Instant> {
        let idle = matches!(self.phase, Phase::Head { .. })
            && self.inbuf.is_empty()
            && !self.peer_eof
            && !self.waiting();
        idle.then_some(self.idle_since)
    }

    /// Close an idle connection now, because the server needs its place (as nginx reuses
    /// its idle keep-alive connections): RFC 9112 §9.5 lets a server close an idle
    /// connection at any time, and a client retries a request that crossed the close
    /// (§9.3.1). False (and nothing changes) if the connection is busy.
    pub fn close_idle(&mut self) -> bool {
        if self.idle_since().is_none() {
            return false;
        }
        log::debug!(
            "http: {}: closing an idle connection for a new one",
            self.peer
        );
        self.phase = Phase::Closing;
        true
    }

    /// Responses queued so far for complete requests (by the handler or with an error
    /// status), not counting `100 Continue`.
    pub fn requests_served(&self) -> u64 {
        self.served
    }

    /// The server is shutting down: the current exchange finishes with `Connection: close`;
    /// an idle connection closes at once.
    pub fn shutdown(&mut self) {
        self.shutdown = true;
        if matches!(self.phase, Phase::Head { .. }) && self.inbuf.is_empty() {
            self.phase = Phase::Closing;
        }
    }

    /// Bytes queued but not yet accepted by TCP.
    fn unsent(&self) -> u64 {
        (self.out.len() - self.out_pos) as u64 + self.body.unsent()
    }

    /// True while a new request must not be processed: its response would have to wait
    /// behind a large body, or too much output is already queued.
    fn blocked(&self) -> bool {
        self.parked.is_some()
            || !matches!(self.body, OutBody::None)
            || self.out.len() - self.out_pos > BACKPRESSURE
    }

    /// Process the buffered bytes, keeping what is not used yet.
    fn process_inbuf(&mut self) {
        let mut buf = std::mem::take(&mut self.inbuf);
        let used = self.process(&buf);
        if matches!(self.phase, Phase::Closing) {
            buf.clear();
        } else {
            buf.drain(..used);
        }
        if buf.is_empty() && buf.capacity() > RETAIN {
            buf = Vec::new();
        }
        self.inbuf = buf;
    }

    /// After new input, output drained or EOF: a peer that sent FIN while no complete
    /// request is left to answer is done.
    fn settle(&mut self) {
        if self.peer_eof && !self.blocked() {
            match &self.phase {
                Phase::Head { .. } => {
                    if !self.inbuf.is_empty() {
                        log::debug!("http: {}: EOF inside a request head", self.peer);
                    }
                    self.inbuf = Vec::new();
                    self.phase = Phase::Closing;
                }
                Phase::Body(b) => {
                    log::debug!("http: {}: EOF inside a request body", self.peer);
                    self.log_access(&b.head, 0, 0);
                    self.inbuf = Vec::new();
                    self.phase = Phase::Closing;
                }
                Phase::Closing => {}
            }
        }
        if matches!(self.phase, Phase::Closing) && !self.inbuf.is_empty() {
            self.inbuf = Vec::new();
        }
    }

    /// Run the state machine over `input`; returns how many bytes it used. Stops at a
    /// partial request, when output is backed up, or when the connection closes.
    fn process(&mut self, input: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            if self.blocked() {
                return pos;
            }
            let rest = &input[pos..];
            match &mut self.phase {
                Phase::Closing => return pos,
                Phase::Head { deadline } => {
                    if rest.is_empty() {
                        return pos;
                    }
                    let limits = Limits {
                        max_head_bytes: self.config.max_head_bytes,
                        max_headers: self.config.max_headers,
                    };
                    if deadline.is_none() {
                        // Later requests: the header deadline starts at the first byte.
                        *deadline = Some(later(self.now, self.config.header_timeout));
                        self.request_started = self.now;
                    }
                    let mut spare = recycle::take_request();
                    match parse_request_head_into(rest, &limits, &mut spare.head) {
                        Ok(Parsed::Complete { consumed, .. }) => {
                            pos += consumed;
                            self.start_request(spare, pos == input.len());
                        }
                        Ok(Parsed::Partial) => {
                            recycle::give_request(spare);
                            return pos;
                        }
                        Err(e) => {
                            recycle::give_request(spare);
                            log::debug!("http: {}: bad request head: {e}", self.peer);
                            if access_log::enabled() {
                                access_log::write(format_args!(
                                    "{} \"-\" {} 0 -",
                                    self.peer,
                                    e.status()
                                ));
                            }
                            self.respond_and_close(Response::error(e.status()), false);
                            return pos;
                        }
                    }
                }
                Phase::Body(_) => {
                    if rest.is_empty() {
                        return pos;
                    }
                    self.body_since = self.now;
                    pos += self.feed_body(rest);
                }
            }
        }
    }

    /// A complete head arrived: check it, then either answer at once (no body, or an
    /// error) or start reading the body. `nothing_after`: no byte of the body has arrived
    /// yet (100 Continue is only worth sending then).
    fn start_request(&mut self, spare: SpareRequest, nothing_after: bool) {
        let SpareRequest {
            head,
            mut path,
            mut query,
        } = spare;
        let head_only = head.method == "HEAD";
        // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400.
        if head.version == Version::Http11 && head.headers.get_all("host").count() != 1 {
            return self.reject(&head, Response::error(400), head_only);
        }
        let framing = match request_framing(head.version, &head.headers) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("http: {}: {}", self.peer, e.reason);
                return self.reject(&head, Response::error(e.status), head_only);
            }
        };
        if split_target_into(&head.target, &mut path, &mut query).is_none() {
            return self.reject(&head, Response::error(400), head_only);
        }
        if let Framing::Length(n) = framing {
            if n > self.config.max_body {
                return self.reject(&head, Response::error(413), head_only);
            }
        }
        // RFC 9110 §10.1.1: 100-continue is the only defined expectation.
        if let Some(expect) = head.headers.get("expect") {
            if !expect.eq_ignore_ascii_case("100-continue") {
                return self.reject(&head, Response::error(417), head_only);
            }
            // Only worth it if the body is expected and has not started arriving.
            if head.version == Version::Http11 && framing != Framing::None && nothing_after {
                if !self.waiting() {
                    self.progress_since = self.now;
                }
                self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        if framing == Framing::None {
            return self.finish_request(head, path, query, Vec::new());
        }
        let body = match framing {
            // len <= max_body was checked; the allocation grows with what arrives.
            Framing::Length(len) => {
                let len = usize::try_from(len).unwrap_or(0);
                recycle::take_body(len, self.now)
                    .unwrap_or_else(|| Vec::with_capacity(len.min(BODY_INITIAL_MAX)))
            }
            _ => Vec::new(),
        };
        self.body_since = self.now;
        self.phase = Phase::Body(Box::new(BodyRead {
            head,
            path,
            query,
            framing,
            body,
            decoder: ChunkedDecoder::new(),
            started: self.request_started,
        }));
    }

    /// Feed body bytes; answers the request once the body is complete. Returns the bytes used.
    fn feed_body(&mut self, input: &[u8]) -> usize {
        let max = self.config.max_body;
        let Phase::Body(b) = &mut self.phase else {
            return 0;
        };
        let used = match b.framing {
            Framing::Length(len) => {
                let want = len.saturating_sub(b.body.len() as u64);
                let take = usize::try_from(want).unwrap_or(usize::MAX).min(input.len());
                if b.body.len() >= BODY_INITIAL_MAX && b.body.len() + take > b.body.capacity() {
                    // The client has sent BODY_INITIAL_MAX bytes of what it announced (at
                    // most max_body): allocate the rest once rather than doubling, which
                    // copied the body at every step.
                    b.body.reserve_exact(usize::try_from(want).unwrap_or(0));
                }
                b.body.extend_from_slice(&input[..take]);
                take
            }
            Framing::Chunked => match b.decoder.decode(input, &mut b.body) {
                Ok(used) => {
                    let announced =
                        (b.body.len() as u64).saturating_add(b.decoder.remaining_in_chunk());
                    if announced > max {
                        self.fail_body(413);
                        return input.len();
                    }
                    used
                }
                Err(e) => {
                    log::debug!("http: {}: bad chunked body: {e}", self.peer);
                    self.fail_body(400);
                    return input.len();
                }
            },
            Framing::None => 0,
        };
        let Phase::Body(b) = &self.phase else {
            return used;
        };
        let done = match b.framing {
            Framing::Length(len) => b.body.len() as u64 == len,
            Framing::Chunked => b.decoder.is_done(),
            Framing::None => true,
        };
        if done {
            let Phase::Body(b) = std::mem::replace(&mut self.phase, Phase::Closing) else {
                return used;
            };
            let BodyRead {
                head,
                path,
                query,
                body,
                started,
                ..
            } = *b;
            self.request_started = started;
            self.finish_request(head, path, query, body);
        }
        used
    }

    /// The body cannot be accepted: answer `status` and close.
    fn fail_body(&mut self, status: u16) {
        if let Phase::Body(b) = std::mem::replace(&mut self.phase, Phase::Closing) {
            let head_only = b.head.method == "HEAD";
            self.reject(&b.head, Response::error(status), head_only);
        }
    }

    /// A complete request: answer it, or hold it if it is for the statistics path.
    fn finish_request(
        &mut self,
        head: RequestHead,
        path: String,
        query: Option<String>,
        body: Vec<u8>,
    ) {
        if self.stats_path.as_deref() == Some(path.as_str()) {
            self.parked = Some(Box::new(ParkedRequest {
                head,
                path,
                query,
                body,
            }));
            return;
        }
        self.answer(head, path, query, body);
    }

    /// Run the handler on a complete request and queue its response.
    fn answer(&mut self, head: RequestHead, path: String, query: Option<String>, body: Vec<u8>) {
        let peer = self.peer;
        let keep_alive = match head.version {
            Version::Http11 => !head.headers.has_token("connection", "close"),
            Version::Http10 => head.headers.has_token("connection", "keep-alive"),
        };
        let mut req = Request {
            method: head.method,
            target: head.target,
            path,
            query,
            version: head.version,
            headers: head.headers,
            body,
            peer: Some(peer),
        };
        let resp = answer(&*self.handler, &mut req);
        let keep_alive =
            keep_alive && !resp.headers.has_token("connection", "close") && !self.shutdown;
        let status = resp.status;
        let opts = WireOptions {
            head_only: req.method == "HEAD",
            close: !keep_alive,
            keep_alive_10: keep_alive && req.version == Version::Http10,
        };
        let Some(bytes) = self.queue_response(resp, &opts) else {
            self.log_access_parts(&req.method, &req.target, req.version, status, 0);
            return;
        };
        // The body is the last thing queued: it ends where the output stream ends.
        let body_start = (self.handed + self.unsent()).saturating_sub(bytes);
        self.log_delivery(
            &req.method,
            &req.target,
            req.version,
            status,
            bytes,
            body_start,
        );
        // A large body the handler left in the request (the echo took its own).
        recycle::give_body(std::mem::take(&mut req.body), self.now);
        recycle::give_request(SpareRequest {
            head: RequestHead {
                method: req.method,
                target: req.target,
                version: req.version,
                headers: req.headers,
            },
            path: req.path,
            query: req.query,
        });
        if keep_alive {
            self.phase = Phase::Head { deadline: None };
            self.idle_since = self.now;
        } else {
            self.phase = Phase::Closing;
        }
    }

    /// Answer a request we will not run with `resp`, then close.
    fn reject(&mut self, head: &RequestHead, resp: Response, head_only: bool) {
        let status = resp.status;
        self.respond_and_close(resp, head_only);
        self.log_access(head, status, 0);
    }

    /// Queue `resp` with `Connection: close` and stop taking requests.
    fn respond_and_close(&mut self, resp: Response, head_only: bool) {
        let opts = WireOptions {
            head_only,
            close: true,
            keep_alive_10: false,
        };
        // Error pages are never files: this cannot fail.
        let _ = self.queue_response(resp, &opts);
        self.phase = Phase::Closing;
        self.inbuf = Vec::new();
    }

    /// The access-log line of a request answered without a delivered body.
    fn log_access(&self, head: &RequestHead, status: u16, bytes: u64) {
        self.log_access_parts(&head.method, &head.target, head.version, status, bytes);
    }

    /// The access-log line from its parts (formatted only when the level is on).
    fn log_access_parts(
        &self,
        method: &str,
        target: &str,
        version: Version,
        status: u16,
        bytes: u64,
    ) {
        if access_log::enabled() {
            let ms = self
                .now
                .saturating_duration_since(self.request_started)
                .as_secs_f64()
                * 1000.0;
            access_log::write(format_args!(
                "{} \"{method} {target} {version}\" {status} {bytes} {ms:.1}ms",
                self.peer
            ));
        }
    }

    /// The access-log line of a response whose body (`bytes` long) starts at `body_start`
    /// in the output stream: written once the peer acknowledged it ([`Self::flush_logs`]).
    fn log_delivery(
        &mut self,
        method: &str,
        target: &str,
        version: Version,
        status: u16,
        bytes: u64,
        body_start: u64,
    ) {
        if !access_log::enabled() {
            return;
        }
        self.pending_logs.push_back(PendingLog {
            line: format!("{} \"{method} {target} {version}\" {status}", self.peer),
            body_start,
            body_len: bytes,
            started: self.request_started,
        });
        self.flush_logs(false);
    }

    /// Serialize the head into `out` and arrange for the body to follow. Returns the body
    /// bytes that will be sent, or `None` if the response could not be framed (a small file
    /// shorter than announced): the connection is then closing.
    fn queue_response(&mut self, resp: Response, opts: &WireOptions) -> Option<u64> {
        self.served += 1;
        if !self.waiting() {
            // The send timeout counts from when output starts waiting.
            self.progress_since = self.now;
        }
        let len = resp.body.len();
        let no_body = opts.head_only || status_has_no_body(resp.status);
        let coalesce = !no_body && len <= COALESCE as u64;
        // One allocation for head and body (the buffer is given back when drained), or none:
        // the buffer the previous response on this thread left.
        let want = OUT_INITIAL + if coalesce { len as usize } else { 0 };
        if self.out.capacity() - self.out.len() < want {
            if self.out.is_empty() {
                self.out = recycle::take_buffer(want);
            } else {
                self.out.reserve(want);
            }
        }
        let head_start = self.out.len();
        write_head(
            &mut self.out,
            resp.status,
            &resp.headers,
            len,
            opts,
            unix_secs_at(self.now),
        );
        if no_body {
            return Some(0);
        }
        match resp.body {
            Body::Empty => {}
            Body::Bytes(b) if coalesce => self.out.extend_from_slice(&b),
            Body::Static(s) if coalesce => self.out.extend_from_slice(s),
            Body::Shared(s) if coalesce => self.out.extend_from_slice(&s),
            Body::Bytes(b) => self.body = OutBody::Bytes(b, 0),
            Body::Static(s) => self.body = OutBody::Static(s, 0),
            Body::Shared(s) => self.body = OutBody::Shared(s, 0),
            Body::File { file, len } if coalesce => {
                if !self.read_small_file(file, len as usize) {
                    // The response cannot be framed: the ones before it still go out, then
                    // the connection ends.
                    self.out.truncate(head_start);
                    self.inbuf = Vec::new();
                    self.phase = Phase::Closing;
                    return None;
                }
            }
            Body::File { file, len } => {
                self.body = OutBody::File {
                    file,
                    left: len,
                    buf: Vec::new(),
                    filled: 0,
                    pos: 0,
                }
            }
        }
        Some(len)
    }

    /// Append a small file's `len` bytes to `out`. False if it is shorter or unreadable.
    fn read_small_file(&mut self, mut file: File, len: usize) -> bool {
        let start = self.out.len();
        self.out.resize(start + len, 0);
        let mut got = 0;
        while got < len {
            match file.read(&mut self.out[start + got..]) {
                Ok(0) => {
                    log::debug!(
                        "http: {}: file shorter than its announced length",
                        self.peer
                    );
                    return false;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("http: {}: reading a file body: {e}", self.peer);
                    return false;
                }
            }
        }
        true
    }

    /// Read the next piece of a file body into its buffer (allocated once per body, at most
    /// FILE_CHUNK). A file shorter than announced, or a read error, drops the connection:
    /// the framing can no longer be kept.
    fn read_file_chunk(&mut self) {
        let OutBody::File {
            file,
            left,
            buf,
            filled,
            pos,
        } = &mut self.body
        else {
            return;
        };
        let want = usize::try_from(*left).unwrap_or(usize::MAX).min(FILE_CHUNK);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        match read_body(file, &mut buf[..want], self.peer) {
            Some(n) => {
                *left -= n as u64;
                *filled = n;
                *pos = 0;
            }
            None => self.abort(),
        }
    }

    /// Whether the next bytes to send come straight from the file of a file body (none of
    /// them read yet): the caller may then let [`read_file_into`](Self::read_file_into)
    /// read them into its own buffer — TCP's send buffer — instead of copying them out of
    /// [`output`](Self::output), one copy of every byte fewer.
    pub fn file_next(&self) -> bool {
        self.out_pos >= self.out.len()
            && matches!(&self.body, OutBody::File { left, filled, pos, .. } if pos == filled && *left > 0)
    }

    /// Read the next bytes of the file body straight into `dst`; they count as sent, as if
    /// they had gone through [`output`](Self::output) and [`consume`](Self::consume).
    /// Returns how many (0 when [`file_next`](Self::file_next) is false). A file shorter
    /// than announced, or a read error, drops the connection as with `output`.
    pub fn read_file_into(&mut self, dst: &mut [u8]) -> usize {
        if !self.file_next() || dst.is_empty() {
            return 0;
        }
        let OutBody::File { file, left, .. } = &mut self.body else {
            return 0;
        };
        let want = usize::try_from(*left).unwrap_or(usize::MAX).min(dst.len());
        let Some(n) = read_body(file, &mut dst[..want], self.peer) else {
            self.abort();
            return 0;
        };
        *left -= n as u64;
        if *left == 0 {
            self.body = OutBody::None;
        }
        self.progress_since = self.now;
        self.handed += n as u64;
        self.after_sent();
        n
    }

    /// Give up on the connection: discard what is queued and close.
    fn abort(&mut self) {
        self.out = Vec::new();
        self.out_pos = 0;
        self.body = OutBody::None;
        self.inbuf = Vec::new();
        self.phase = Phase::Closing;
    }
}

/// One `read` of a file body into `dst` (not empty), retried when interrupted. `None` (and
/// a debug log) when the file ends early or fails: the response's framing is then lost.
fn read_body(file: &mut File, dst: &mut [u8], peer: SocketAddr) -> Option<usize> {
    loop {
        match file.read(dst) {
            Ok(0) => {
                log::debug!("http: {peer}: file shorter than its announced length");
                return None;
            }
            Ok(n) => return Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("http: {peer}: reading a file body: {e}");
                return None;
            }
        }
    }
}

impl Drop for HttpConn {
    /// Responses still unacknowledged when the connection goes were not (all) delivered:
    /// their log lines say so.
    fn drop(&mut self) {
        if !self.pending_logs.is_empty() {
            self.flush_logs(true);
        }
    }
}

impl std::fmt::Debug for HttpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConn")
            .field("peer", &self.peer)
            .field("unsent", &self.unsent())
            .field("buffered", &self.inbuf.len())
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
