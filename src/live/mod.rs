//! The live view (`serve --live`): a page at `/_live` that watches the stack work, fed
//! by server-sent events from `/_live/events`.
//!
//! ```text
//!  loop thread(s)                          LiveHub (shared, bounded)
//!  packets, TCP decisions, socket calls,   ring of the last RING_CAPACITY events, each
//!  HTTP lines ─► gated Tracer ─► record ─► already rendered as one JSON line (layer by
//!                (attached only while a     layer, by trace::Renderer) + its packet
//!                 viewer is connected)      bytes for the ladder diagram
//!
//!  GET /_live/events ─► EventedServer takes the connection over: a LiveStream, an
//!                       endless text/event-stream response that copies the ring from
//!                       its cursor into its output, at most STREAM_HIGH_WATER ahead of
//!                       what TCP accepted; a viewer slower than the ring is skipped
//!                       ahead (counted), never waited for.
//!  GET /_live          ─► the page (HTML + vanilla JS, in the binary)
//!  GET /_live/ladder?conn=IP:PORT ─► that connection's ladder (crate::diagram) as SVG
//! ```
//!
//! The view watches the stack, so it must not watch itself: the stream's own connection
//! and every connection that asks for a `/_live` path are left out from then on (and the
//! page drops what it was shown of them before).
//!
//! With no viewer the tracer is detached ([`crate::trace::Tracer::gated`]): the loop runs
//! as without `--live`. A viewer that arrives later sees what the ring kept from when
//! someone last watched.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::diagram::{svg, DiagramBuilder};
use crate::http::conn::HttpConn;
use crate::http::parse::{parse_request_head, Limits, Parsed};
use crate::http::{Request, Response, Router};
use crate::link::Direction;
use crate::stats::json_string;
use crate::trace::render::{event_code, layer_code, Emphasis, Renderer};
use crate::trace::{HttpEvent, TcpEventKind, TraceEvent, Tracer};

/// The page.
pub const PAGE_PATH: &str = "/_live";
/// The event stream.
pub const EVENTS_PATH: &str = "/_live/events";
/// A connection's ladder diagram.
pub const LADDER_PATH: &str = "/_live/ladder";

/// Events kept for late viewers and for the ladder diagrams.
pub const RING_CAPACITY: usize = 2048;
/// Packet bytes the ring keeps for the ladder diagrams at most (a large MTU makes large
/// packets): past it the oldest events go, whatever their number.
pub const RING_PACKET_BYTES: usize = 8 << 20;
/// Bytes a stream may have queued beyond what TCP took before it stops copying from the
/// ring (and, if the ring moves past it meanwhile, skips ahead).
pub const STREAM_HIGH_WATER: usize = 64 * 1024;
/// Viewers at once; more get 503.
pub const MAX_VIEWERS: usize = 8;
/// How often a stream looks for new events.
pub const TICK: Duration = Duration::from_millis(50);
/// How often a stream sends the per-layer counters.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// The viewers' own connections remembered (to leave them out); the oldest go first.
const MAX_WATCHERS: usize = 64;

const PAGE: &str = include_str!("live.html");

/// Where the per-layer counters come from: the `/_stats` JSON.
pub type StatsSource = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// The events recorded for the live view, and who is watching.
pub struct LiveHub {
    ring: Mutex<Ring>,
    gate: Arc<AtomicBool>,
    viewers: AtomicUsize,
    skipped: AtomicU64,
    start: Instant,
    stats: Option<StatsSource>,
}

struct Stored {
    seq: u64,
    json: Arc<str>,
    /// The peer of the connection it belongs to (our side is always the server's).
    conn: Option<SocketAddr>,
    /// A TCP packet: when, and its bytes (for the ladder).
    packet: Option<(Duration, Arc<[u8]>)>,
}

struct Ring {
    events: VecDeque<Stored>,
    /// Bytes of the packets in `events`.
    packet_bytes: usize,
    next: u64,
    renderer: Renderer,
    watchers: VecDeque<SocketAddr>,
    /// A super-segment line waits for its first wire segment, which says whose it is.
    pending_super: Option<String>,
}

impl Ring {
    fn push(
        &mut self,
        json: String,
        conn: Option<SocketAddr>,
        packet: Option<(Duration, Arc<[u8]>)>,
    ) {
        self.packet_bytes += packet.as_ref().map_or(0, |(_, p)| p.len());
        while self.events.len() >= RING_CAPACITY || self.packet_bytes > RING_PACKET_BYTES {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.packet_bytes -= old.packet.map_or(0, |(_, p)| p.len());
        }
        let seq = self.next;
        self.next += 1;
        let json = with_seq(seq, &json);
        self.events.push_back(Stored {
            seq,
            json: json.into(),
            conn,
            packet,
        });
    }
}

/// `{"seq":N,` + the rest of `json` (which starts with `{`).
fn with_seq(seq: u64, json: &str) -> String {
    format!("{{\"seq\":{seq},{}", json.get(1..).unwrap_or("}"))
}

impl LiveHub {
    /// An empty hub; `stats` gives the per-layer counters sent to viewers.
    pub fn new(stats: Option<StatsSource>) -> Arc<LiveHub> {
        Arc::new(LiveHub {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(RING_CAPACITY),
                packet_bytes: 0,
                next: 1,
                renderer: Renderer::new(),
                watchers: VecDeque::new(),
                pending_super: None,
            }),
            gate: Arc::new(AtomicBool::new(false)),
            viewers: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
            start: Instant::now(),
            stats,
        })
    }

    /// The tracer that feeds this hub: attached by the runtime only while a viewer is
    /// connected.
    pub fn tracer(self: &Arc<LiveHub>) -> Tracer {
        let hub = self.clone();
        Tracer::gated(move |ev| hub.record(&ev), self.gate.clone())
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Events that slow viewers were skipped past, in total.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn joined(&self) -> bool {
        let before = self.viewers.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_VIEWERS {
            self.viewers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.gate.store(true, Ordering::SeqCst);
        true
    }

    fn left(&self) {
        if self.viewers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gate.store(false, Ordering::SeqCst);
        }
    }

    /// Leave `peer`'s connection out from now on, and tell the pages to drop what they
    /// were shown of it.
    fn watch(&self, ring: &mut Ring, peer: SocketAddr) {
        if ring.watchers.contains(&peer) {
            return;
        }
        if ring.watchers.len() >= MAX_WATCHERS {
            ring.watchers.pop_front();
        }
        ring.watchers.push_back(peer);
        ring.push(
            format!("{{\"k\":\"viewer\",\"conn\":\"{peer}\"}}"),
            None,
            None,
        );
    }

    /// Leave the connection with `peer` out from now on.
    pub fn watch_peer(&self, peer: Option<SocketAddr>) {
        if let Some(p) = peer {
            let mut ring = self.lock();
            self.watch(&mut ring, p);
        }
    }

    /// Record one trace event (the tracer's sink).
    pub fn record(&self, ev: &TraceEvent) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut ring = self.lock();
        let conn = conn_of(ev);
        // A super-segment names no connection: its wire segments follow right after it.
        let pending = ring.pending_super.take();
        if let Some(c) = conn {
            if ring.watchers.contains(&c) {
                return;
            }
        }
        if let Some(p) = pending {
            ring.push(p, conn, None);
        }
        if let TraceEvent::Http(HttpEvent::Request {
            peer: Some(peer),
            line,
            ..
        }) = ev
        {
            if is_live_request(line) {
                self.watch(&mut ring, *peer);
                return;
            }
        }
        let mut json = format!("{{\"ms\":{ms:.3}");
        let _ = match conn {
            Some(c) => write!(json, ",\"conn\":\"{c}\""),
            None => write!(json, ",\"conn\":null"),
        };
        let mut packet = None;
        match ev {
            TraceEvent::Packet { dir, bytes } | TraceEvent::Frame { dir, bytes } => {
                let (n, lines) = match ev {
                    TraceEvent::Frame { .. } => ring.renderer.frame(*dir, bytes),
                    _ => ring.renderer.packet(*dir, bytes),
                };
                let d = match dir {
                    Direction::In => "in",
                    Direction::Out => "out",
                };
                let _ = write!(
                    json,
                    ",\"k\":\"pkt\",\"dir\":\"{d}\",\"n\":{n},\"layers\":["
                );
                // Each layer line names the code that handles it (as `--trace-code` does).
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let code = layer_code(*dir, l.layer)
                        .map_or_else(|| "null".to_string(), |c| json_string(&c.to_string()));
                    let _ = write!(
                        json,
                        "{sep}[{},{},{code}]",
                        json_string(l.layer.label()),
                        json_string(&l.text)
                    );
                }
                json.push(']');
                if let Some(line) = ip_of(ev).and_then(http_line) {
                    let _ = write!(json, ",\"http\":{}", json_string(&line));
                }
                if conn.is_some() {
                    if let Some(ip) = ip_of(ev) {
                        packet = Some((self.start.elapsed(), Arc::from(ip)));
                    }
                }
            }
            other => {
                let Some((layer, text, emphasis)) = ring.renderer.event(other) else {
                    return;
                };
                let emph = match emphasis {
                    Emphasis::Normal => "normal",
                    Emphasis::State => "state",
                    Emphasis::Alarm => "alarm",
                };
                let _ = write!(
                    json,
                    ",\"k\":\"event\",\"layer\":{},\"text\":{},\"emph\":\"{emph}\"",
                    json_string(layer.label()),
                    json_string(&text)
                );
                if let Some(code) = event_code(other) {
                    let _ = write!(json, ",\"code\":{}", json_string(&code.to_string()));
                }
                if let TraceEvent::Tcp(e) = other {
                    if let TcpEventKind::State { from, to, .. } = &e.kind {
                        let _ = write!(json, ",\"from\":\"{from}\",\"state\":\"{to}\"");
                    }
                }
                if let TraceEvent::Http(e) = other {
                    let line = match e {
                        HttpEvent::Request { line, .. } | HttpEvent::Response { line, .. } => line,
                    };
                    let _ = write!(json, ",\"http\":{}", json_string(line));
                }
            }
        }
        json.push('}');
        if matches!(ev, TraceEvent::SuperSegment { .. }) {
            ring.pending_super = Some(json);
            return;
        }
        ring.push(json, conn, packet);
    }

    /// Events after `cursor` (at most `budget` bytes of them, at least one): appended to
    /// `out` as SSE messages. Returns the new cursor and how many were skipped because the
    /// ring had already dropped them.
    fn copy_since(&self, cursor: u64, budget: usize, out: &mut Vec<u8>) -> (u64, u64) {
        let ring = self.lock();
        let oldest = ring.events.front().map_or(ring.next, |e| e.seq);
        let skipped = oldest.saturating_sub(cursor + 1);
        let mut cursor = cursor.max(oldest.saturating_sub(1));
        let start = out.len();
        let first = cursor + 1 - oldest;
        for e in ring.events.iter().skip(first as usize) {
            if out.len() - start >= budget {
                break;
            }
            sse_message(out, Some(e.seq), &e.json);
            cursor = e.seq;
        }
        (cursor, skipped)
    }

    /// The latest sequence number recorded.
    fn head(&self) -> u64 {
        self.lock().next - 1
    }

    /// The ladder diagram of the connection with `peer`, from the packets the ring kept.
    pub fn ladder_svg(&self, peer: SocketAddr) -> Option<String> {
        let packets: Vec<(Duration, Arc<[u8]>)> = {
            let ring = self.lock();
            ring.events
                .iter()
                .filter(|e| e.conn == Some(peer))
                .filter_map(|e| e.packet.clone())
                .collect()
        };
        if packets.is_empty() {
            return None;
        }
        let mut builder = DiagramBuilder::new();
        for (i, (ts, bytes)) in packets.iter().enumerate() {
            builder.add_packet(i + 1, *ts, bytes);
        }
        let diagram = builder.finish();
        if diagram.connections.is_empty() {
            return None;
        }
        Some(svg::render_svg(&diagram, &svg::Options::default()))
    }
}

/// `data: …` (with `id:` when given) and the blank line that ends an SSE message (HTML
/// Living Standard §9.2.5: `id` lets a reconnecting EventSource resume with
/// `Last-Event-ID`).
fn sse_message(out: &mut Vec<u8>, id: Option<u64>, json: &str) {
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A request line for one of the live view's own paths.
fn is_live_request(line: &str) -> bool {
    line.split(' ').nth(1).is_some_and(|target| {
        target == PAGE_PATH || target.starts_with("/_live/") || target.starts_with("/_live?")
    })
}

/// The peer of the connection an event belongs to (we are the server: for a packet in,
/// the source; out, the destination).
fn conn_of(ev: &TraceEvent) -> Option<SocketAddr> {
    let v4 = |a: &SocketAddr| (!a.ip().is_unspecified()).then_some(*a);
    match ev {
        TraceEvent::Packet { dir, .. } | TraceEvent::Frame { dir, .. } => {
            let ip = crate::ip::ipv4::Ipv4Packet::parse(ip_of(ev)?).ok()?;
            if ip.protocol != crate::ip::ipv4::PROTO_TCP {
                return None;
            }
            let ports = ip.payload.get(..4)?;
            let (src, dst) = (
                u16::from_be_bytes([ports[0], ports[1]]),
                u16::from_be_bytes([ports[2], ports[3]]),
            );
            Some(match dir {
                Direction::In => SocketAddr::new(ip.src.into(), src),
                Direction::Out => SocketAddr::new(ip.dst.into(), dst),
            })
        }
        TraceEvent::Tcp(e) => (!e.remote.ip().is_unspecified()).then_some(e.remote),
        TraceEvent::Socket(e) => v4(&e.remote),
        TraceEvent::Http(HttpEvent::Request { peer, .. } | HttpEvent::Response { peer, .. }) => {
            peer.as_ref().and_then(v4)
        }
        TraceEvent::SuperSegment { .. } => None,
    }
}

/// The IP packet in a packet or frame event (a TAP frame's IPv4 payload).
fn ip_of(ev: &TraceEvent) -> Option<&[u8]> {
    match ev {
        TraceEvent::Packet { bytes, .. } => Some(bytes),
        TraceEvent::Frame { bytes, .. } => {
            let f = crate::link::ethernet::Frame::parse(bytes).ok()?;
            (f.ethertype == crate::link::ethernet::ETHERTYPE_IPV4).then_some(f.payload)
        }
        _ => None,
    }
}

/// The HTTP request or status line starting a TCP packet's payload.
fn http_line(ip: &[u8]) -> Option<String> {
    let p = crate::ip::ipv4::Ipv4Packet::parse(ip).ok()?;
    if p.protocol != crate::ip::ipv4::PROTO_TCP {
        return None;
    }
    let seg = crate::tcp::Segment::parse(p.src, p.dst, p.payload).ok()?;
    crate::diagram::http_first_line(&seg.payload)
}

/// An endless `text/event-stream` response: one viewer of the live view.
pub struct LiveStream {
    hub: Arc<LiveHub>,
    cursor: u64,
    out: Vec<u8>,
    pos: usize,
    next_stats: Instant,
    closing: bool,
}

impl LiveStream {
    /// Take over `conn` if its next request is `GET /_live/events` and it is all in
    /// `data` (browsers send a request head in one segment; a split one is answered by
    /// the route's fallback, and the EventSource retries). `None` leaves the connection
    /// to the HTTP server.
    pub fn take_over(
        hub: &Arc<LiveHub>,
        conn: &HttpConn,
        peer: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<LiveStream> {
        // Every request of every connection passes here: a prefix test first, so that
        // the others cost a comparison, not a second parse.
        if !data.starts_with(b"GET /_live/events") {
            return None;
        }
        conn.idle_since()?;
        let Ok(Parsed::Complete { value: head, .. }) = parse_request_head(data, &Limits::default())
        else {
            return None;
        };
        if head.method != "GET" || head.target.split('?').next() != Some(EVENTS_PATH) {
            return None;
        }
        if !hub.joined() {
            return None;
        }
        // A reconnecting EventSource says where it was; otherwise the whole ring.
        let resume = head
            .headers
            .get("last-event-id")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        {
            let mut ring = hub.lock();
            hub.watch(&mut ring, peer);
        }
        log::info!("live: {peer}: viewer connected");
        Some(LiveStream::joined(hub.clone(), resume, now))
    }

    /// A stream for a viewer already counted by [`LiveHub::joined`], resuming after
    /// event `cursor`.
    fn joined(hub: Arc<LiveHub>, cursor: u64, now: Instant) -> LiveStream {
        let mut out = Vec::with_capacity(4096);
        // Close-delimited (RFC 9112 §6.3 rule 8): the stream ends when the connection does.
        out.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
              Connection: close\r\nServer: tunstack\r\n\r\nretry: 1000\n\n",
        );
        let mut s = LiveStream {
            hub,
            cursor,
            out,
            pos: 0,
            next_stats: now,
            closing: false,
        };
        s.refill(now);
        s
    }

    /// Copy what the ring got since the last call (as much as the high-water mark lets),
    /// and the counters when they are due.
    pub fn refill(&mut self, now: Instant) {
        if self.closing {
            // Our FIN follows what is queued: nothing may come after it.
            return;
        }
        if self.pos > 0 && self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
        }
        let queued = self.out.len() - self.pos;
        if queued >= STREAM_HIGH_WATER {
            return;
        }
        if self.cursor < self.hub.head() {
            let (cursor, skipped) =
                self.hub
                    .copy_since(self.cursor, STREAM_HIGH_WATER - queued, &mut self.out);
            self.cursor = cursor;
            if skipped > 0 {
                self.hub.skipped.fetch_add(skipped, Ordering::Relaxed);
                let json = format!(
                    "{{\"k\":\"skipped\",\"n\":{skipped},\"total\":{}}}",
                    self.hub.skipped()
                );
                sse_message(&mut self.out, None, &json);
            }
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            if let Some(stats) = self.hub.stats.as_ref().and_then(|f| f()) {
                let json = format!(
                    "{{\"k\":\"stats\",\"viewers\":{},\"skipped\":{},\"stats\":{}}}",
                    self.hub.viewers(),
                    self.hub.skipped(),
                    // One line: a newline would end the SSE `data:` field.
                    stats.trim().replace('\n', " ")
                );
                sse_message(&mut self.out, None, &json);
            }
        }
    }

    /// The counters are due at the next refill: the caller may refresh them first.
    pub fn stats_due(&self, now: Instant) -> bool {
        now >= self.next_stats
    }

    /// What is ready to send.
    pub fn output(&self) -> &[u8] {
        self.out.get(self.pos..).unwrap_or_default()
    }

    /// `n` bytes were handed to TCP.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.out.len());
    }

    /// The viewer went away (EOF) or the server stops: end the stream.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Whether to send our FIN.
    pub fn should_close(&self) -> bool {
        self.closing
    }

    /// When to look at the ring again.
    pub fn deadline(&self, now: Instant) -> Instant {
        now + TICK
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.hub.left();
        log::info!("live: viewer disconnected");
    }
}

/// Add the page and the ladder route to `router`, and the events path's fallback (a
/// request the event loop did not take over: too many viewers, or the threaded runtime).
pub fn add_routes(router: &mut Router, hub: Arc<LiveHub>) {
    let page_hub = hub.clone();
    router.route(PAGE_PATH, move |req: &Request| {
        // The page's own connection is left out even when it was opened while nobody
        // watched (no HTTP event then tells the hub whose it is): browsers keep it open.
        page_hub.watch_peer(req.peer);
        Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_header("Cache-Control", "no-store")
            .with_body(crate::http::Body::Static(PAGE.as_bytes()))
    });
    router.route(LADDER_PATH, move |req: &Request| {
        hub.watch_peer(req.peer);
        let peer = req
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("conn="))
            .and_then(|v| {
                v.replace("%3A", ":")
                    .replace("%3a", ":")
                    .parse::<SocketAddr>()
                    .ok()
            });
        let Some(peer) = peer else {
            return Response::text(400, "conn=IP:PORT expected\n");
        };
        match hub.ladder_svg(peer) {
            Some(svg) => Response::bytes(200, "image/svg+xml", svg.into_bytes())
                .with_header("Cache-Control", "no-store"),
            None => Response::text(404, "no packets of that connection are kept\n"),
        }
    });
    router.route(EVENTS_PATH, |_req: &Request| {
        Response::text(
            503,
            format!(
                "the live event stream is busy ({MAX_VIEWERS} viewers at most) or not \
                 served by this runtime (event loop only)\n"
            ),
        )
        .with_header("Retry-After", "5")
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{State, TcpEvent};
    use std::net::Ipv4Addr;
    use std::net::SocketAddrV4;

    const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);

    fn peer(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port)
    }

    fn state_change(port: u16, to: State) -> TraceEvent {
        TraceEvent::Tcp(TcpEvent {
            local: SERVER.into(),
            remote: peer(port).into(),
            kind: TcpEventKind::State {
                from: State::Listen,
                to,
                cause: "SYN".into(),
            },
            at: std::panic::Location::caller(),
        })
    }

    fn request(port: u16, line: &str) -> TraceEvent {
        TraceEvent::Http(HttpEvent::Request {
            peer: Some(SocketAddr::V4(peer(port))),
            line: line.into(),
            thread: None,
        })
    }

    fn text(s: &LiveStream) -> String {
        String::from_utf8_lossy(s.output()).into_owned()
    }

    #[test]
    fn events_become_sse_messages_with_ids_and_json_fields() {
        let hub = LiveHub::new(None);
        hub.record(&state_change(5000, State::SynReceived));
        hub.record(&request(5000, "GET /x\"y HTTP/1.1"));
        assert!(hub.joined());
        let s = LiveStream::joined(hub.clone(), 0, Instant::now());
        let out = text(&s);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
        assert!(out.contains("\r\n\r\nretry: 1000\n\n"), "{out}");
        assert!(out.contains("id: 1\ndata: {\"seq\":1,\"ms\":"), "{out}");
        assert!(
            out.contains("\"conn\":\"10.0.0.1:5000\",\"k\":\"event\",\"layer\":\"tcp\""),
            "{out}"
        );
        assert!(
            out.contains("\"from\":\"LISTEN\",\"state\":\"SYN-RECEIVED\""),
            "{out}"
        );
        // The request line is JSON-escaped and on the single data line of its message.
        assert!(
            out.contains("\"http\":\"GET /x\\\"y HTTP/1.1\"}\n\n"),
            "{out}"
        );
        assert_eq!(out.matches("\ndata: ").count(), 2, "{out}");
    }

    #[test]
    fn the_ring_is_bounded_and_a_late_slow_viewer_skips_ahead_counted() {
        let hub = LiveHub::new(None);
        for i in 0..3 * RING_CAPACITY {
            hub.record(&state_change(1000 + (i % 50) as u16, State::Established));
        }
        assert_eq!(hub.lock().events.len(), RING_CAPACITY);
        assert!(hub.joined());
        let now = Instant::now();
        // Resuming from event 10: everything up to the oldest kept one is gone.
        let mut s = LiveStream::joined(hub.clone(), 10, now);
        let skipped = (2 * RING_CAPACITY - 10) as u64;
        assert_eq!(hub.skipped(), skipped);
        let out = text(&s);
        assert!(
            out.contains(&format!("{{\"k\":\"skipped\",\"n\":{skipped},")),
            "{out}"
        );
        // Never more than the high-water mark (plus the one event that crossed it) queued,
        // however often the viewer is refilled without reading.
        let one = out.len() / out.matches("\ndata: ").count().max(1);
        for i in 0..RING_CAPACITY {
            hub.record(&state_change(2000 + (i % 50) as u16, State::Established));
            s.refill(now);
            assert!(s.output().len() <= STREAM_HIGH_WATER + 4 * one);
        }
        // Once the viewer reads, it carries on from where it was (after a second skip).
        let before = hub.skipped();
        let n = s.output().len();
        s.consume(n);
        s.refill(now);
        assert!(
            hub.skipped() > before,
            "the ring moved past the stalled viewer"
        );
        assert!(!s.output().is_empty());
    }

    /// A TCP packet from `peer(port)` to the server with `len` payload bytes (jumbo
    /// sizes too: the ring does not care whether the device could carry it).
    fn packet_in(port: u16, len: usize) -> TraceEvent {
        let mut tcp = vec![0u8; 20 + len];
        tcp[..2].copy_from_slice(&port.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        let bytes = crate::ip::ipv4::emit(
            *peer(port).ip(),
            *SERVER.ip(),
            crate::ip::ipv4::PROTO_TCP,
            64,
            1,
            &tcp,
        );
        TraceEvent::Packet {
            dir: Direction::In,
            bytes,
        }
    }

    #[test]
    fn packets_kept_for_the_ladders_are_bounded_in_bytes_too() {
        let hub = LiveHub::new(None);
        // 64 KiB packets: the byte bound, not the event count, limits the ring.
        for _ in 0..200 {
            hub.record(&packet_in(5000, 65_000));
        }
        let ring = hub.lock();
        let kept: usize = ring
            .events
            .iter()
            .filter_map(|e| e.packet.as_ref())
            .map(|(_, p)| p.len())
            .sum();
        assert_eq!(kept, ring.packet_bytes);
        assert!(kept <= RING_PACKET_BYTES, "{kept}");
        assert!(ring.events.len() < 200, "{}", ring.events.len());
        assert!(ring.events.len() >= RING_PACKET_BYTES / 65_100 - 1);
        assert!(ring
            .events
            .iter()
            .all(|e| e.conn == Some(peer(5000).into())));
    }

    #[test]
    fn the_views_own_connections_are_left_out() {
        let hub = LiveHub::new(None);
        hub.record(&state_change(5000, State::SynReceived));
        hub.record(&state_change(6000, State::SynReceived));
        // 6000 loads the page: marked as a viewer, its later events are not recorded.
        hub.record(&request(6000, "GET /_live HTTP/1.1"));
        hub.record(&state_change(6000, State::CloseWait));
        hub.record(&request(
            6001,
            "GET /_live/ladder?conn=10.0.0.1:5000 HTTP/1.1",
        ));
        hub.record(&request(5000, "GET /_livestock HTTP/1.1"));
        let ring = hub.lock();
        let kept: Vec<&str> = ring.events.iter().map(|e| &*e.json).collect();
        assert_eq!(kept.len(), 5, "{kept:#?}");
        assert!(kept[2].contains("\"k\":\"viewer\",\"conn\":\"10.0.0.1:6000\""));
        assert!(kept[3].contains("\"k\":\"viewer\",\"conn\":\"10.0.0.1:6001\""));
        assert!(
            kept[4].contains("GET /_livestock"),
            "not a path of the view"
        );
        assert!(!kept.iter().any(|e| e.contains("CLOSE-WAIT")));
        drop(ring);
        // The page's route marks its connection itself: loaded while nobody watched, no
        // HTTP event told the hub.
        hub.watch_peer(Some(SocketAddr::V4(peer(7000))));
        hub.record(&state_change(7000, State::TimeWait));
        let ring = hub.lock();
        assert_eq!(ring.events.len(), 6);
        assert!(ring.events.iter().all(|e| !e.json.contains("TIME-WAIT")));
    }

    #[test]
    fn the_tracer_is_active_only_while_someone_watches() {
        let hub = LiveHub::new(None);
        let tracer = hub.tracer();
        assert!(tracer.is_gated());
        assert!(!tracer.active());
        let now = Instant::now();
        let mut streams = Vec::new();
        for _ in 0..MAX_VIEWERS {
            assert!(hub.joined());
            streams.push(LiveStream::joined(hub.clone(), 0, now));
        }
        assert!(tracer.active());
        assert!(!hub.joined(), "at most MAX_VIEWERS");
        assert_eq!(hub.viewers(), MAX_VIEWERS);
        streams.pop();
        assert!(tracer.active());
        streams.clear();
        assert!(!tracer.active());
        assert_eq!(hub.viewers(), 0);
    }

    /// Connect from `port`, send `request`, read until `done` holds; returns the
    /// connection and what it read.
    fn ask(
        client: &mut crate::stack::evloop::tests::Client,
        port: u16,
        request: &[u8],
        done: impl Fn(&str) -> bool,
    ) -> (crate::tcp::ConnId, String) {
        let now = client.clock.now();
        let id = client
            .iface
            .tcp_mut()
            .connect(SocketAddrV4::new(*peer(port).ip(), port), SERVER, now)
            .expect("connect");
        let mut sent = 0;
        let mut got = Vec::new();
        client.pump_until(|iface, now| {
            if iface.tcp().is_connected(id) && sent < request.len() {
                sent += iface.tcp_mut().send(id, &request[sent..], now).unwrap_or(0);
            }
            read_more(iface, id, now, &mut got);
            done(&String::from_utf8_lossy(&got))
        });
        (id, String::from_utf8_lossy(&got).into_owned())
    }

    fn read_more(
        iface: &mut crate::stack::Interface,
        id: crate::tcp::ConnId,
        now: crate::time::Instant,
        got: &mut Vec<u8>,
    ) {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = iface.tcp_mut().recv(id, &mut buf, now) {
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn the_event_loop_streams_to_a_viewer_and_traces_only_while_one_watches() {
        use crate::http::evented::EventedServer;
        use crate::http::{Handler, ServerConfig};
        use crate::link::memory::pair;
        use crate::stack::evloop::tests::Client;
        use crate::stack::evloop::EventLoop;
        use crate::stack::StackConfig;
        use crate::trace::http::TracedHandler;

        let hub = LiveHub::new(None);
        let (server_dev, client_dev) = pair().expect("memory pair");
        let mut stack = StackConfig::new(*SERVER.ip());
        stack.seed = Some(3);
        stack.tracer = Some(hub.tracer());
        let mut ev = EventLoop::new(server_dev, &stack).expect("loop");
        let listener = ev.listen(SERVER, 0).expect("listen");
        let mut router = Router::standard(None).expect("site");
        add_routes(&mut router, hub.clone());
        let handler: Arc<dyn Handler> = Arc::new(TracedHandler::new(router, hub.tracer()));
        let mut server = EventedServer::new(handler, ServerConfig::default(), listener);
        server.set_live(hub.clone());
        let handle = ev.handle();
        let thread = std::thread::spawn(move || ev.run(&mut server).expect("run"));
        let mut client = Client::new(client_dev);
        let page = |b: &str| b.ends_with("</html>\n");

        // Nobody watches: nothing is recorded.
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (_, got) = ask(&mut client, 41000, close, page);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert_eq!(hub.head(), 0, "recorded with no viewer");

        // A viewer takes its connection over as an event stream.
        let events = b"GET /_live/events HTTP/1.1\r\nHost: x\r\n\r\n";
        let (stream, head) = ask(&mut client, 41001, events, |b| {
            b.contains("\"k\":\"viewer\"")
        });
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"),
            "{head}"
        );
        assert_eq!(hub.viewers(), 1);

        // A request made while it watches reaches it: packets, states, the request line.
        let watched = b"GET /?watched HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (_, got) = ask(&mut client, 41002, watched, page);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        let mut seen = head.into_bytes();
        client.pump_until(|iface, now| {
            read_more(iface, stream, now, &mut seen);
            let text = String::from_utf8_lossy(&seen);
            text.contains("\"http\":\"GET /?watched HTTP/1.1\"")
                && text.contains("\"from\":\"ESTABLISHED\",\"state\":\"FIN-WAIT-1\"")
        });
        let seen = String::from_utf8_lossy(&seen).into_owned();
        assert!(
            seen.contains("\"conn\":\"10.0.0.1:41002\",\"k\":\"pkt\",\"dir\":\"in\""),
            "{seen}"
        );
        assert!(!seen.contains("10.0.0.1:41000"), "{seen}");
        // Every layer line and decision names its code, as `--trace-code` does.
        assert!(
            seen.contains("\"src/tcp/endpoint.rs Tcp::on_segment\"]"),
            "{seen}"
        );
        assert!(seen.contains(",\"code\":\"src/tcp/"), "{seen}");
        assert!(
            !seen.contains("\"conn\":\"10.0.0.1:41001\",\"k\":\"pkt\""),
            "the stream's own packets: {seen}"
        );

        // The viewer leaves: the stream ends and nobody is counted.
        let now = client.clock.now();
        client.iface.tcp_mut().shutdown(stream, now);
        client.pump_until(|_, _| hub.viewers() == 0);
        assert!(!hub.tracer().active());
        handle.stop();
        thread.join().expect("loop");
    }
}
