//! The HTTP/1.1 server on the event loop: every connection is an [`HttpConn`] state
//! machine driven by readiness, on the loop's own thread — no thread, no lock, no
//! condition variable per connection.
//!
//! ```text
//!  listener woken  ─▶ accept all ─▶ over max_connections? 503 + FIN
//!                                  else HttpConn::new
//!  socket ready    ─▶ on_acked(TcpSocket::unacked)  (what the peer acknowledged: progress)
//!                      ┌▶ write: output() → TcpSocket::send → consume(n)  (while TCP takes it)
//!                      │         a file body: TcpSocket::send_with(read_file_into)
//!                      │  should_close()? → shutdown (FIN), then linger (discard input)
//!                      │  read (if wants_read()): TcpSocket::recv → on_data / on_eof
//!                      └─ while something moved
//!  deadline passed  ─▶ on_timeout (deadlines in a min-heap; a changed deadline pushes a
//!                      new entry and the stale one is skipped when it surfaces)
//! ```
//!
//! Closing never throws a response away: after our FIN the connection stays until TCP
//! has delivered everything (the peer acknowledged it), however slowly, as long as the
//! peer keeps making progress; only [`ServerConfig::send_timeout`] without progress
//! resets it. Once delivered, it lingers [`LINGER`] for the peer's FIN and is then
//! released (TCP finishes the close on its own; nothing is reset).
//!
//! One receive buffer serves every connection, so an idle connection costs its
//! [`HttpConn`] (a few hundred bytes) and a slot here, beyond the TCB.
//!
//! The server sees the network only through the readiness API of
//! [`crate::socket::ready`]: which sockets the round woke, and non-blocking calls on them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{overload_response, HttpConn};
use super::handlers::Handler;
use super::recycle;
use super::response::FILE_CHUNK;
use super::server::ServerConfig;
use super::table::OwnKeyMap;
use crate::live::{LiveHub, LiveStream};
use crate::socket::ready::{App, Context, TcpListener, TcpSocket};
use crate::stats::HttpCounters;

/// Size of the receive buffer shared by all connections.
const RECV_CHUNK: usize = 64 * 1024;
/// After our FIN, once the response was delivered (acknowledged), how long input is still
/// read and discarded before the connection is released (lingering close, RFC 9112 §9.6:
/// closing with unread input would RST the response away). A 503 to a connection over
/// the limit is bounded by it too.
const LINGER: Duration = Duration::from_secs(2);
/// Most `recv` calls (of up to `RECV_CHUNK` bytes each) made for one connection per round,
/// so that one client streaming a large body cannot starve the others.
const MAX_READS_PER_ROUND: usize = 16;

/// What a slot serves.
enum Kind {
    /// An HTTP connection.
    Http(Box<HttpConn>),
    /// A connection over the limit: the 503 still to send, from `pos`.
    Reject(Vec<u8>, usize),
    /// A viewer of the live view (`GET /_live/events`): an endless event stream.
    Live(Box<LiveStream>),
}

struct Entry {
    sock: TcpSocket,
    kind: Kind,
    /// We sent FIN (after the last response).
    fin_sent: bool,
    /// The peer's FIN was read.
    eof: bool,
    /// The deadline this slot has a live heap entry for.
    armed: Option<Instant>,
    /// With `fin_sent`, once the response was delivered: when lingering ends.
    linger_until: Option<Instant>,
    /// The idle period this slot has an entry in `EventedServer::idle` for.
    idle_mark: Option<Instant>,
    /// Counted in `EventedServer::live`: an HTTP connection not closed to make room.
    counted: bool,
}

impl Entry {
    fn output(&mut self) -> &[u8] {
        match &mut self.kind {
            Kind::Http(h) => h.output(),
            Kind::Reject(out, pos) => out.get(*pos..).unwrap_or_default(),
            Kind::Live(l) => l.output(),
        }
    }

    fn consume(&mut self, n: usize) {
        match &mut self.kind {
            Kind::Http(h) => h.consume(n),
            Kind::Reject(_, pos) => *pos += n,
            Kind::Live(l) => l.consume(n),
        }
    }

    fn should_close(&self) -> bool {
        match &self.kind {
            Kind::Http(h) => h.should_close(),
            Kind::Reject(out, pos) => *pos >= out.len(),
            Kind::Live(l) => l.should_close(),
        }
    }

    fn wants_read(&self) -> bool {
        match &self.kind {
            Kind::Http(h) => h.wants_read(),
            Kind::Reject(..) => false,
            // Whatever a viewer sends is discarded; its EOF ends the stream.
            Kind::Live(_) => true,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.kind {
            // Still delivering after FIN: the no-progress deadline.
            Kind::Http(h) if self.fin_sent && !h.delivered() => h.deadline(),
            _ if self.fin_sent => self.linger_until,
            Kind::Http(h) => h.deadline(),
            // A peer that never reads its 503 is dropped with the linger timeout.
            Kind::Reject(..) => self.linger_until,
            Kind::Live(l) => Some(l.deadline(Instant::now())),
        }
    }
}

/// The evented HTTP server: an [`App`] for [`crate::stack::evloop::EventLoop`].
pub struct EventedServer {
    handler: Arc<dyn Handler>,
    config: Arc<ServerConfig>,
    listener: Option<TcpListener>,
    /// A second listener (`serve` listens on its IPv4 and its IPv6 address), served alike.
    listener6: Option<TcpListener>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Handles are the stack's, never the peer's: an unkeyed hash ([`OwnKeyMap`]).
    by_id: OwnKeyMap<TcpSocket, u32>,
    /// HTTP connections open (rejected ones not counted).
    live: usize,
    /// Idle connections, oldest first: (slot, connection, idle since). Entries go stale
    /// when the connection gets busy or goes (checked when taken, like `timers`).
    idle: VecDeque<(u32, TcpSocket, Instant)>,
    /// Where the 503s to connections over the limit are counted.
    counters: Option<Arc<HttpCounters>>,
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    rbuf: Vec<u8>,
    /// The statistics route: publish fresh stack statistics before its handler runs, so
    /// that it reports this very moment ([`HttpConn::set_stats_path`]).
    stats_path: Option<Arc<str>>,
    /// `--live`: `GET /_live/events` turns the connection into a [`LiveStream`].
    live_hub: Option<Arc<LiveHub>>,
}

impl EventedServer {
    /// A server for `handler` with `config`'s limits on `listener`.
    pub fn new(handler: Arc<dyn Handler>, config: ServerConfig, listener: TcpListener) -> Self {
        EventedServer {
            handler,
            config: Arc::new(config),
            listener: Some(listener),
            listener6: None,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: OwnKeyMap::default(),
            live: 0,
            idle: VecDeque::new(),
            counters: None,
            timers: BinaryHeap::new(),
            rbuf: vec![0; RECV_CHUNK],
            stats_path: None,
            live_hub: None,
        }
    }

    /// Requests for `path` read the stack statistics: publish them right before.
    pub fn set_stats_path(&mut self, path: &str) {
        self.stats_path = Some(path.into());
    }

    /// Count the 503s to connections over the limit in `counters` (the handler's
    /// responses are counted by the handler).
    pub fn set_counters(&mut self, counters: Arc<HttpCounters>) {
        self.counters = Some(counters);
    }

    /// Serve the live view's event stream from `hub` (the page and the other routes are
    /// the handler's: [`crate::live::add_routes`]).
    pub fn set_live(&mut self, hub: Arc<LiveHub>) {
        self.live_hub = Some(hub);
    }

    /// HTTP connections currently open.
    pub fn connections(&self) -> usize {
        self.live
    }

    fn insert(&mut self, entry: Entry) -> u32 {
        let id = entry.sock;
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(place) = self.slots.get_mut(s as usize) {
                    *place = Some(entry);
                }
                s
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    /// Forget a slot: the TCB finishes its close on its own (or was reset).
    fn remove(&mut self, slot: u32, cx: &mut Context<'_>, abort: bool) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let sock = entry.sock;
        self.by_id.remove(&sock);
        self.free.push(slot);
        if entry.counted {
            self.live -= 1;
        }
        if let Kind::Http(mut h) = entry.kind {
            // The last word on what was delivered, for the access log (after a reset TCP
            // has no count left to give).
            if sock.error(cx).is_none() {
                h.on_acked(sock.unacked(cx) as u64, cx.wall);
            }
            drop(h);
        }
        if abort {
            sock.abort(cx);
        } else {
            sock.close(cx);
        }
        // Give memory back after a burst of connections.
        if self.live == 0 && self.slots.len() > 1024 && self.by_id.is_empty() {
            self.slots = Vec::new();
            self.free = Vec::new();
        }
        self.compact_idle();
        // Closed connections leave their heap entries behind (deleted lazily); when they
        // outnumber the live ones, drop them in one pass.
        if self.timers.len() > 1024 + 4 * self.by_id.len() {
            let slots = &self.slots;
            self.timers.retain(|Reverse((at, s))| {
                slots
                    .get(*s as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.armed == Some(*at))
            });
        }
    }

    /// Also accept connections on `listener` (e.g. the IPv6 address beside the IPv4 one).
    pub fn add_listener(&mut self, listener: TcpListener) {
        self.listener6 = Some(listener);
    }

    fn accept(&mut self, cx: &mut Context<'_>) {
        for listener in [self.listener, self.listener6].into_iter().flatten() {
            self.accept_from(listener, cx);
        }
    }

    fn accept_from(&mut self, listener: TcpListener, cx: &mut Context<'_>) {
        while let Some(sock) = listener.accept(cx) {
            // At the limit, an idle connection makes room (the oldest); 503 only when
            // every connection is busy.
            let full = self.live >= self.config.max_connections && !self.close_oldest_idle(cx);
            let kind = if full {
                log::warn!(
                    "http: {}: connection limit ({}) reached and none idle, answering 503",
                    sock.peer_addr(cx),
                    self.config.max_connections
                );
                if let Some(c) = &self.counters {
                    c.record_refusal(503);
                }
                Kind::Reject(overload_response(), 0)
            } else {
                self.live += 1;
                let peer = sock.peer_addr(cx);
                let mut conn =
                    HttpConn::new(self.handler.clone(), self.config.clone(), peer, cx.wall);
                conn.set_stats_path(self.stats_path.clone());
                Kind::Http(Box::new(conn))
            };
            let reject = matches!(kind, Kind::Reject(..));
            let slot = self.insert(Entry {
                sock,
                kind,
                fin_sent: false,
                eof: false,
                armed: None,
                linger_until: reject.then(|| cx.wall + LINGER),
                idle_mark: None,
                counted: !reject,
            });
            self.service(slot, cx);
        }
    }

    /// Move bytes between TCP and the connection until neither side can go on.
    fn service(&mut self, slot: u32, cx: &mut Context<'_>) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let sock = entry.sock;
        let mut reads = 0;
        let mut dead = false;
        if let Kind::Http(h) = &mut entry.kind {
            // What the peer acknowledged since the last round: progress (the send
            // timeout's base, the access log's delivered bytes). It also passes the
            // current time, which `consume` dates the progress it records with.
            if sock.error(cx).is_none() {
                h.on_acked(sock.unacked(cx) as u64, cx.wall);
            }
        }
        if let Kind::Live(l) = &mut entry.kind {
            if l.stats_due(cx.wall) {
                cx.publish_stats();
            }
            l.refill(cx.wall);
        }
        loop {
            let mut progress = false;
            if let Kind::Http(h) = &mut entry.kind {
                // A request for the statistics (parsed from this round's input or from
                // pipelined bytes that waited for the output to drain) is answered now.
                if h.stats_wanted() {
                    cx.publish_stats();
                    h.stats_published();
                }
            }
            // Write while TCP accepts.
            loop {
                // A file body goes from the file straight into TCP's send buffer.
                if let Kind::Http(h) = &mut entry.kind {
                    if h.file_next() {
                        let sent = sock.send_with(cx, FILE_CHUNK, |dst| h.read_file_into(dst));
                        match sent {
                            Ok(0) => break,
                            Ok(_) => {
                                progress = true;
                                continue;
                            }
                            Err(_) => {
                                dead = true;
                                break;
                            }
                        }
                    }
                }
                let out = entry.output();
                if out.is_empty() {
                    break;
                }
                match sock.send(cx, out) {
                    Ok(0) => break,
                    Ok(n) => {
                        entry.consume(n);
                        progress = true;
                    }
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            if dead {
                break;
            }
            if !entry.fin_sent && entry.should_close() {
                // RFC 9293 §3.10.4 CLOSE: FIN after the queued data.
                sock.shutdown(cx);
                entry.fin_sent = true;
            }
            if entry.fin_sent && entry.linger_until.is_none() {
                let delivered = match &entry.kind {
                    Kind::Http(h) => h.delivered(),
                    Kind::Reject(..) | Kind::Live(_) => true,
                };
                if delivered {
                    entry.linger_until = Some(cx.wall + LINGER);
                }
            }
            // Read: what the connection wants, or (lingering) whatever comes, discarded.
            let read =
                !entry.eof && (entry.fin_sent || entry.wants_read()) && reads < MAX_READS_PER_ROUND;
            if read {
                match sock.recv(cx, &mut self.rbuf) {
                    Ok(0) => {
                        entry.eof = true;
                        match (entry.fin_sent, &mut entry.kind) {
                            (false, Kind::Http(h)) => h.on_eof(cx.wall),
                            (_, Kind::Live(l)) => l.close(),
                            _ => {}
                        }
                        progress = true;
                    }
                    Ok(n) => {
                        reads += 1;
                        let data = self.rbuf.get(..n).unwrap_or_default();
                        if let (false, Kind::Http(h)) = (entry.fin_sent, &mut entry.kind) {
                            let live = self.live_hub.as_ref().and_then(|hub| {
                                LiveStream::take_over(hub, h, sock.peer_addr(cx), data, cx.wall)
                            });
                            match live {
                                Some(stream) => entry.kind = Kind::Live(Box::new(stream)),
                                None => h.on_data(data, cx.wall),
                            }
                        }
                        progress = true;
                    }
                    Err(e) if e.would_block() => {}
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        // Both sides closed; ours only counts once the response was delivered (a client
        // that half-closes after its request still reads the answer).
        let closed = entry.fin_sent
            && entry.eof
            && match &entry.kind {
                Kind::Http(h) => h.delivered(),
                Kind::Reject(..) | Kind::Live(_) => true,
            };
        if dead || closed {
            self.remove(slot, cx, false);
            return;
        }
        if let Kind::Http(h) = &entry.kind {
            if let Some(since) = h.idle_since() {
                if entry.idle_mark != Some(since) && !entry.fin_sent {
                    entry.idle_mark = Some(since);
                    self.idle.push_back((slot, sock, since));
                    // A kept-alive connection pushes an entry per request: drop the stale.
                    self.compact_idle();
                }
            }
        }
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if reads >= MAX_READS_PER_ROUND {
            // More may be waiting: come back next round (the loop is woken by the data
            // that keeps arriving, or by our own window update).
            self.arm(slot, Some(cx.wall + Duration::from_micros(1)));
            return;
        }
        let deadline = entry.deadline();
        self.arm(slot, deadline);
    }

    /// Drop the stale entries of `idle` once they outnumber the connections (amortized: a
    /// pass at most every `1024 + connections` pushes).
    fn compact_idle(&mut self) {
        if self.idle.len() > 1024 + 2 * self.by_id.len() {
            let slots = &self.slots;
            self.idle
                .retain(|(s, id, at)| idle_entry_valid(slots, *s, *id, *at));
        }
    }

    /// Close the connection idle the longest to make room for a new one. False if none
    /// is idle.
    fn close_oldest_idle(&mut self, cx: &mut Context<'_>) -> bool {
        while let Some((slot, id, since)) = self.idle.pop_front() {
            if !idle_entry_valid(&self.slots, slot, id, since) {
                continue;
            }
            let Some(Entry {
                kind: Kind::Http(h),
                counted,
                ..
            }) = self.slots.get_mut(slot as usize).and_then(Option::as_mut)
            else {
                continue;
            };
            if h.close_idle() {
                // FIN now; the slot goes once the peer closes or lingering ends, but it
                // no longer counts against the limit.
                if *counted {
                    *counted = false;
                    self.live -= 1;
                }
                self.service(slot, cx);
                return true;
            }
        }
        false
    }

    /// Make sure the heap has an entry for `slot` no later than `deadline`. An entry that
    /// is earlier stays: when it fires, the connection is serviced (a timeout call before
    /// the deadline does nothing) and re-armed at its real deadline. So a keep-alive
    /// connection, whose idle deadline moves with every request, pushes one entry per
    /// idle period rather than one per request.
    fn arm(&mut self, slot: u32, deadline: Option<Instant>) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(at) = deadline else {
            return;
        };
        if entry.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        entry.armed = Some(at);
        self.timers.push(Reverse((at, slot)));
    }

    /// Deadlines that passed: timeouts of the HTTP connection, or the end of lingering.
    fn expire(&mut self, cx: &mut Context<'_>) {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > cx.wall {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            if entry.armed != Some(at) {
                // Stale: the deadline moved since this entry was pushed.
                continue;
            }
            entry.armed = None;
            let lingering = entry.fin_sent || matches!(entry.kind, Kind::Reject(..));
            if lingering && entry.linger_until.is_some_and(|t| t <= cx.wall) {
                // Delivered, and the peer did not close: let TCP finish the close on its
                // own (FIN-WAIT-2 is bounded there). Only a 503 the peer never took is
                // reset.
                let abort = entry.sock.unacked(cx) > 0;
                self.remove(slot, cx, abort);
                continue;
            }
            if let Kind::Http(h) = &mut entry.kind {
                if entry.sock.error(cx).is_none() {
                    h.on_acked(entry.sock.unacked(cx) as u64, cx.wall);
                }
                h.on_timeout(cx.wall);
                if h.aborted() {
                    // No progress for send_timeout: give up on the peer (RST).
                    self.remove(slot, cx, true);
                    continue;
                }
            }
            self.service(slot, cx);
        }
    }
}

impl App for EventedServer {
    fn poll(&mut self, cx: &mut Context<'_>) {
        recycle::expire_body(cx.wall);
        if cx.wake_all() {
            self.accept(cx);
            for slot in 0..self.slots.len() as u32 {
                self.service(slot, cx);
            }
        } else {
            // Connections first: an ACK that completed a response makes its connection
            // idle, and so a candidate to make room for a connection accepted next.
            for sock in cx.ready_sockets() {
                let Some(&slot) = self.by_id.get(&sock) else {
                    continue;
                };
                self.service(slot, cx);
            }
            if [self.listener, self.listener6]
                .into_iter()
                .flatten()
                .any(|l| l.woken(cx))
            {
                self.accept(cx);
            }
        }
        self.expire(cx);
    }

    fn poll_at(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        // The spare request body this thread keeps is freed on time even when idle.
        match (timer, recycle::body_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) {
        // No new connections; the current exchanges end with `Connection: close`.
        for l in [self.listener.take(), self.listener6.take()]
            .into_iter()
            .flatten()
        {
            l.close(cx);
        }
        for slot in 0..self.slots.len() as u32 {
            if let Some(Entry {
                kind: Kind::Http(h),
                ..
            }) = self.slots.get_mut(slot as usize).and_then(Option::as_mut)
            {
                h.shutdown();
            }
            if let Some(Entry {
                kind: Kind::Live(l),
                ..
            }) = self.slots.get_mut(slot as usize).and_then(Option::as_mut)
            {
                l.close();
            }
            self.service(slot, cx);
        }
    }
}

/// An entry of `EventedServer::idle` still describes its connection: the same one, idle
/// since the same time, not closing.
fn idle_entry_valid(slots: &[Option<Entry>], slot: u32, id: TcpSocket, since: Instant) -> bool {
    match slots.get(slot as usize).and_then(Option::as_ref) {
        Some(Entry {
            sock: current,
            kind: Kind::Http(h),
            fin_sent: false,
            ..
        }) => *current == id && h.idle_since() == Some(since),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::Request;
    use crate::http::response::Response;
    use crate::http::Router;
    use crate::stack::evloop::tests::{memory_loop, read_available, Client, SERVER};
    use crate::stack::evloop::EventLoop;
    use crate::stack::evloop::LoopHandle;
    use std::net::SocketAddrV4;

    /// An evented server on a memory link, on a thread of its own.
    fn start(config: ServerConfig) -> (LoopHandle, std::thread::JoinHandle<()>, Client) {
        start_with(config, None)
    }

    /// [`start`], counting into `counters`.
    fn start_with(
        config: ServerConfig,
        counters: Option<Arc<HttpCounters>>,
    ) -> (LoopHandle, std::thread::JoinHandle<()>, Client) {
        let (mut ev, client) = memory_loop(3);
        let listener = ev.listen(SocketAddrV4::new(SERVER, 80), 0).expect("listen");
        let handler: Arc<dyn Handler> = Arc::new(Router::standard(None).expect("site"));
        let mut server = EventedServer::new(handler, config, listener);
        if let Some(c) = counters {
            server.set_counters(c);
        }
        let handle = ev.handle();
        let thread = std::thread::spawn(move || ev.run(&mut server).expect("run"));
        (handle, thread, client)
    }

    #[test]
    fn keep_alive_get_and_pipelined_echo() {
        let (handle, thread, mut client) = start(ServerConfig::default());
        let id = client.connect(41000, 80);
        let (got, _) = client.exchange(id, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", |b, _| {
            b.ends_with(b"</html>\n")
        });
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        // Two pipelined requests on the same connection, answered in order; the second
        // asks to close.
        let two = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (got, eof) = client.exchange(id, two, |_, eof| eof);
        assert!(eof, "Connection: close ends with a FIN");
        let text = String::from_utf8_lossy(&got);
        let echo = text.find("\r\n\r\nhello").expect("echo body");
        let not_found = text.find("HTTP/1.1 404").expect("404");
        assert!(echo < not_found, "{text}");
        handle.stop();
        thread.join().expect("loop");
    }

    #[test]
    fn at_the_limit_an_idle_connection_makes_room_and_busy_ones_get_503() {
        let config = ServerConfig {
            max_connections: 1,
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            ..ServerConfig::default()
        };
        let counters = Arc::new(HttpCounters::default());
        let (handle, thread, mut client) = start_with(config, Some(counters.clone()));
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let first = client.connect(42000, 80);
        let (got, _) = client.exchange(first, get, |b, _| b.ends_with(b"</html>\n"));
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // Let the (delayed, 40 ms) ACK of the response reach the server: until then the
        // response is not delivered and the connection is busy.
        let acked_by = client.clock.now() + Duration::from_millis(200);
        client.pump_until(|_, now| now >= acked_by);
        // The first connection is idle (kept alive): the second takes its place, long
        // before the idle timeout.
        let second = client.connect(42001, 80);
        let (_, eof) = client.exchange(first, b"", |_, eof| eof);
        assert!(eof, "the idle connection was closed for the new one");
        let (got, _) = client.exchange(second, get, |b, _| b.ends_with(b"</html>\n"));
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        // Now the second is busy (half a request head): a third gets 503, counted.
        let mut sent = false;
        client.pump_until(|iface, now| {
            if !sent {
                sent = iface.tcp_mut().send(second, b"GET / HT", now) == Ok(8);
            }
            // The server has the bytes once it acknowledged them.
            sent && iface.tcp().unacked(second) == 0
        });
        let third = client.connect(42002, 80);
        let (got, eof) = client.exchange(third, b"", |_, eof| eof);
        assert!(
            got.starts_with(b"HTTP/1.1 503"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(eof);
        assert_eq!(counters.snapshot().responses[4], 1, "the 503 is counted");
        for id in [first, second, third] {
            client.iface.tcp_mut().shutdown(id, client.clock.now());
        }
        handle.stop();
        thread.join().expect("loop");
    }

    #[test]
    fn idle_connections_time_out() {
        let config = ServerConfig {
            idle_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        };
        let (handle, thread, mut client) = start(config);
        let first = client.connect(42100, 80);
        let (got, _) = client.exchange(first, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", |b, _| {
            b.ends_with(b"</html>\n")
        });
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let (_, eof) = client.exchange(first, b"", |_, eof| eof);
        assert!(eof, "idle connection closed by the server");
        client.iface.tcp_mut().shutdown(first, client.clock.now());
        client.wait_closed(first);
        handle.stop();
        thread.join().expect("loop");
    }

    /// A response that takes longer than `write_timeout` to deliver is not cut off while
    /// the client keeps reading.
    #[test]
    fn slow_but_steady_reader_outlasts_the_write_timeout() {
        let config = ServerConfig {
            send_timeout: Duration::from_millis(150),
            ..ServerConfig::default()
        };
        let (handle, thread, mut client) = start(config);
        let id = client.connect(43000, 80);
        let body = vec![b'x'; 1 << 20];
        let mut request = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let start = std::time::Instant::now();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut eof = false;
        client.pump_until(|iface, now| {
            if sent < request.len() {
                sent += iface.tcp_mut().send(id, &request[sent..], now).unwrap_or(0);
            }
            // A few KiB per millisecond: about a second for the whole response.
            let mut buf = [0u8; 1024];
            match iface.tcp_mut().recv(id, &mut buf, now) {
                Ok(0) => eof = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            got.len() >= body.len() || eof
        });
        assert!(
            start.elapsed() > Duration::from_millis(150),
            "the test must be slow"
        );
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(got.len() >= body.len(), "cut off after {} bytes", got.len());
        handle.stop();
        thread.join().expect("loop");
    }

    /// A response leaves in the round that read its request: the loop transmits after the
    /// application, not at the next poll, and a batch of requests read together is
    /// answered together, each response carrying the ACK of its request (RFC 9293
    /// §3.8.6.3: no separate ACK where data is going out anyway).
    #[test]
    fn a_batch_of_requests_is_answered_in_the_round_that_read_it() {
        let (mut ev, mut client) = memory_loop(5);
        let listener = ev.listen(SocketAddrV4::new(SERVER, 80), 0).expect("listen");
        let mut router = Router::new();
        router.route("/x", |_: &Request| Response::text(200, "x"));
        let handler: Arc<dyn Handler> = Arc::new(router);
        let mut server = EventedServer::new(handler, ServerConfig::default(), listener);
        let round = |ev: &mut EventLoop<_>, server: &mut EventedServer| {
            ev.run_once(server, Some(Duration::ZERO)).expect("round");
        };
        let ids: Vec<_> = (0..3)
            .map(|i| client.start_connect(43000 + i, 80))
            .collect();
        // Handshakes, one exchange at a time (bounded: each needs two rounds).
        for _ in 0..20 {
            client.transmit();
            round(&mut ev, &mut server);
            client.receive();
            if ids.iter().all(|&id| client.iface.tcp().is_connected(id)) {
                break;
            }
        }
        client.transmit();
        round(&mut ev, &mut server);
        assert_eq!(client.receive(), 0, "nothing to say after the handshakes");
        assert!(ids.iter().all(|&id| client.iface.tcp().is_connected(id)));

        let now = client.clock.now();
        for &id in &ids {
            let req = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
            let sent = client.iface.tcp_mut().send(id, req, now).expect("send");
            assert_eq!(sent, req.len());
        }
        client.transmit();
        round(&mut ev, &mut server);
        // One round: every response is out, one segment each, and nothing else.
        assert_eq!(client.receive(), ids.len(), "one segment per response");
        for &id in &ids {
            let mut got = Vec::new();
            read_available(&mut client.iface, id, client.clock.now(), &mut got);
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.ends_with("\r\n\r\nx"), "{text}");
        }
    }
}
