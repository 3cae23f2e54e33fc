//! Watching a request: the per-layer account of every packet and of what each layer
//! decided, for `--trace` and `--step`.
//!
//! ```text
//!  loop thread (event loop) or stack thread  socket and HTTP calls (that thread, or their own)
//!  packet in ──────────► TraceEvent::Packet   accept() read() write() close() ─► TraceEvent::Socket
//!  iface.handle_packet                        GET / HTTP/1.1 … 200 OK         ─► TraceEvent::Http
//!  tcp.take_trace_events ─► TraceEvent::Tcp
//!  packets out ────────► TraceEvent::Packet
//!
//!  every event ─► Tracer (a sink: Arc<dyn Fn(TraceEvent)>)
//!                   ├─ Tracer::stderr → render::Printer: one block per packet (--trace)
//!                   └─ step::Stepper: pauses layer by layer, waits for Enter (--step)
//! ```
//!
//! The protocol core stays sans-IO: `tcp` only *queues* [`TcpEvent`]s (when
//! [`crate::tcp::Tcp::set_trace`] is on); the runtime (event loop or stack thread) drains
//! them right after the packet or timeout that caused them and hands everything, in order,
//! to the [`Tracer`].
//! With no tracer configured the cost is an `Option` test per packet and a `bool` test per
//! would-be event: no copy, no formatting.
//!
//! [`describe`] is the older one-line view of a packet, handy in debug logs:
//!
//! ```text
//! → IPv4 10.0.0.2 > 10.0.0.1 ttl 64 id 7 len 52 | TCP 80 > 43512 [S.] seq 1234 ack 999 win 65535 len 0 <mss 1460>
//! ```

pub mod http;
pub mod ip6;
pub mod render;
pub mod step;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use crate::tcp::{TcpEvent, TcpEventKind};
pub use render::{Palette, Printer, Renderer};
pub use step::{StepCommand, Stepper};

/// Something worth showing, from any layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A whole IP packet crossing the device (a copy, made only when tracing).
    Packet {
        /// Which way it went.
        dir: Direction,
        /// The IPv4 packet.
        bytes: Vec<u8>,
    },
    /// A whole Ethernet frame crossing a TAP device (`--tap`): the link layer is ours.
    Frame {
        /// Which way it went.
        dir: Direction,
        /// The frame (Ethernet II header and payload).
        bytes: Vec<u8>,
    },
    /// A super-segment crossed the device with offloads on (TSO out, GRO in): one packet
    /// of `len` bytes for the stack, `segments` segments of at most `gso_size` payload
    /// bytes on the wire. The wire segments follow as [`TraceEvent::Packet`]s.
    SuperSegment {
        /// Which way it went.
        dir: Direction,
        /// Its length as the stack built or took it (IP header included).
        len: usize,
        /// How many wire segments it is.
        segments: usize,
        /// The MSS the device cuts it at.
        gso_size: u16,
    },
    /// A decision of the transport layer.
    Tcp(TcpEvent),
    /// A call on the socket API.
    Socket(SocketEvent),
    /// An HTTP message seen by the application layer.
    Http(HttpEvent),
}

/// A call of the socket API (the boundary between the application and the kernel, or
/// here, between the HTTP server and our TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketEvent {
    /// Our end.
    pub local: SocketAddr,
    /// The peer (unspecified for a listener).
    pub remote: SocketAddr,
    /// The call.
    pub call: SocketCall,
    /// The thread that made the call: the acceptor (`main`) or a connection's own thread
    /// (`http 10.0.0.1:5000`) — the thread-per-connection model in plain sight.
    pub thread: Option<String>,
    /// The line of the application (or socket layer) that made the call, recorded with
    /// `#[track_caller]`: a pointer the compiler fills in, nothing formatted.
    pub at: &'static std::panic::Location<'static>,
}

/// The socket calls worth tracing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketCall {
    /// `listen()`: the passive open.
    Listen,
    /// `accept()` returned a connection that finished its handshake.
    Accept,
    /// `connect()` returned: the handshake of an active open finished.
    Connect,
    /// `read()` returned this many bytes (0 = end of stream: the peer's FIN).
    Read(usize),
    /// `write()` queued this many bytes in the send buffer.
    Write(usize),
    /// `shutdown(Write)`: a FIN follows the queued data.
    Shutdown,
    /// `close()`: the last handle was dropped.
    Close,
}

/// What the application layer saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// A request reached the handler.
    Request {
        /// The client.
        peer: Option<SocketAddr>,
        /// `GET / HTTP/1.1`.
        line: String,
        /// The thread the handler runs on.
        thread: Option<String>,
    },
    /// The handler answered.
    Response {
        /// The client.
        peer: Option<SocketAddr>,
        /// `HTTP/1.1 200 OK`.
        line: String,
        /// Body length when known up front.
        body_len: Option<u64>,
    },
}

/// Where trace events go. Cheap to clone; callable from any thread. Emitting may block
/// (step mode waits for the user), so the stack never emits while holding its lock.
#[derive(Clone)]
pub struct Tracer {
    sink: Arc<dyn Fn(TraceEvent) + Send + Sync>,
    /// A tracer that is only wanted some of the time (the live view, while a viewer is
    /// connected): the runtime attaches it while this is set, and detaches it otherwise,
    /// so that nobody watching costs nothing.
    gate: Option<Arc<AtomicBool>>,
}

impl Tracer {
    /// A tracer calling `sink` with every event.
    pub fn new(sink: impl Fn(TraceEvent) + Send + Sync + 'static) -> Tracer {
        Tracer {
            sink: Arc::new(sink),
            gate: None,
        }
    }

    /// A tracer calling `sink` only while `gate` is set: the runtime checks the gate once
    /// per round ([`Tracer::active`]) and does no tracing work at all while it is clear.
    pub fn gated(
        sink: impl Fn(TraceEvent) + Send + Sync + 'static,
        gate: Arc<AtomicBool>,
    ) -> Tracer {
        Tracer {
            sink: Arc::new(sink),
            gate: Some(gate),
        }
    }

    /// Whether events are wanted now (always, for a tracer without a gate).
    #[inline]
    pub fn active(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.load(Ordering::Relaxed))
    }

    /// Whether this tracer is wanted only some of the time ([`Tracer::gated`]).
    pub fn is_gated(&self) -> bool {
        self.gate.is_some()
    }

    /// Both `self` and `other` see every event; gated only if both are.
    pub fn and(self, other: Tracer) -> Tracer {
        let gate = match (&self.gate, &other.gate) {
            (Some(g), Some(_)) => Some(g.clone()),
            _ => None,
        };
        Tracer {
            sink: Arc::new(move |ev: TraceEvent| {
                if other.active() {
                    other.emit(ev.clone());
                }
                if self.active() {
                    self.emit(ev);
                }
            }),
            gate,
        }
    }

    /// Report one event.
    pub fn emit(&self, event: TraceEvent) {
        (self.sink)(event)
    }

    /// Print every event to stderr as [`render::Printer`] renders it; colours when
    /// `palette` says so (see [`Palette::for_stderr`]).
    pub fn stderr(palette: Palette) -> Tracer {
        Tracer::stderr_with_code(palette, false)
    }

    /// Like [`Tracer::stderr`]; with `code`, each line ends with the code that did it
    /// (`--trace-code`).
    pub fn stderr_with_code(palette: Palette, code: bool) -> Tracer {
        let printer = std::sync::Mutex::new(Printer::new(palette).with_code(code));
        Tracer::new(move |ev| {
            let mut p = printer.lock().unwrap_or_else(|e| e.into_inner());
            let text = p.render(&ev);
            if !text.is_empty() {
                use std::io::Write as _;
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
        })
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tracer")
    }
}

use std::fmt::Write as _;

use crate::ip::ipv4::{self, Ipv4Packet};
use crate::link::Direction;
use crate::tcp::Segment;

/// Describe an IP packet layer by layer. Never fails: what does not parse is said so.
pub fn describe(direction: Direction, packet: &[u8]) -> String {
    let arrow = match direction {
        Direction::In => "←",
        Direction::Out => "→",
    };
    let mut line = String::with_capacity(160);
    if packet.first().map(|b| b >> 4) == Some(6) {
        describe_ipv6(&mut line, arrow, packet);
        return line;
    }
    let ip = match Ipv4Packet::parse(packet) {
        Ok(ip) => ip,
        Err(e) => {
            let _ = write!(line, "{arrow} {} bytes, not valid IPv4: {e}", packet.len());
            return line;
        }
    };
    let _ = write!(
        line,
        "{arrow} IPv4 {} > {} ttl {} id {} len {}",
        ip.src,
        ip.dst,
        ip.ttl,
        ip.id,
        packet.len()
    );
    match ip.protocol {
        ipv4::PROTO_TCP => match Segment::parse(ip.src, ip.dst, ip.payload) {
            Ok(s) => tcp_text(&mut line, &s),
            Err(e) => {
                let _ = write!(line, " | TCP invalid: {e}");
            }
        },
        ipv4::PROTO_ICMP => {
            let _ = write!(line, " | ICMP {}", icmp_text(ip.payload));
        }
        ipv4::PROTO_UDP => describe_udp(&mut line, &ip),
        p => {
            let _ = write!(line, " | protocol {p}");
        }
    }
    line
}

/// An IPv6 packet: addresses, hop limit, flow label, the extension headers, then TCP, UDP
/// or ICMPv6 as for IPv4 ([`ip6`]).
fn describe_ipv6(line: &mut String, arrow: &str, packet: &[u8]) {
    use crate::ip::ipv6;
    let v = match ip6::view(packet) {
        Ok(v) => v,
        Err(e) => {
            let _ = write!(line, "{arrow} {} bytes, not valid IPv6: {e}", packet.len());
            return;
        }
    };
    let (src, dst) = (v.packet.src, v.packet.dst);
    let _ = write!(
        line,
        "{arrow} IPv6 {src} > {dst} hlim {} len {}",
        v.packet.hop_limit,
        packet.len()
    );
    if v.flow_label != 0 {
        let _ = write!(line, " flow {:#07x}", v.flow_label);
    }
    for h in &v.headers {
        let _ = write!(line, " | {h}");
    }
    let _ = match v.upper {
        ip6::Upper::Whole(ipv6::NEXT_TCP, bytes) => match ip6::tcp(src, dst, bytes) {
            Ok(s) => {
                tcp_text(line, &s);
                Ok(())
            }
            Err(e) => write!(line, " | TCP invalid: {e}"),
        },
        ip6::Upper::Whole(ipv6::NEXT_UDP, bytes) => match ip6::udp(src, dst, bytes) {
            Ok(d) => write!(
                line,
                " | UDP {} > {} len {}",
                d.src_port,
                d.dst_port,
                d.payload.len()
            ),
            Err(e) => write!(line, " | UDP invalid: {e}"),
        },
        ip6::Upper::Whole(ipv6::NEXT_ICMPV6, bytes) => {
            write!(line, " | ICMPv6 {}", ip6::icmpv6_text(src, dst, bytes))
        }
        ip6::Upper::Whole(n, _) => write!(line, " | next header {}", ip6::protocol_name(n)),
        ip6::Upper::FirstFragment(n, _) | ip6::Upper::LaterFragment(n) => {
            write!(line, " | {} (fragment)", ip6::protocol_name(n))
        }
        ip6::Upper::Truncated => write!(line, " | header chain truncated"),
    };
}

/// The TCP part of a line: ports, flags, numbers, options, an HTTP first line.
fn tcp_text(line: &mut String, s: &Segment) {
    let _ = write!(
        line,
        " | TCP {} > {} [{}] seq {}",
        s.src_port, s.dst_port, s.flags, s.seq
    );
    if s.flags.ack {
        let _ = write!(line, " ack {}", s.ack);
    }
    let _ = write!(line, " win {} len {}", s.window, s.payload.len());
    let o = &s.options;
    let mut opts = Vec::new();
    if let Some(mss) = o.mss {
        opts.push(format!("mss {mss}"));
    }
    if let Some(ws) = o.window_scale {
        opts.push(format!("wscale {ws}"));
    }
    if o.sack_permitted {
        opts.push("sackOK".to_string());
    }
    if let Some((v, e)) = o.timestamps {
        opts.push(format!("TS val {v} ecr {e}"));
    }
    if !opts.is_empty() {
        let _ = write!(line, " <{}>", opts.join(","));
    }
    if let Some(first) = first_line(&s.payload) {
        let _ = write!(line, " | {first}");
    }
}

/// The UDP part of a line: ports and length, or why it is invalid.
fn describe_udp(line: &mut String, ip: &Ipv4Packet<'_>) {
    match crate::udp::Datagram::parse(ip.src, ip.dst, ip.payload) {
        Ok(d) => {
            let _ = write!(
                line,
                " | UDP {} > {} len {}",
                d.src_port,
                d.dst_port,
                d.payload.len()
            );
        }
        Err(e) => {
            let _ = write!(line, " | UDP invalid: {e}");
        }
    }
}

/// Describe an Ethernet frame (TAP mode): the link layer, then ARP or the IP packet as
/// [`describe`] does.
///
/// ```text
/// ← Ethernet 8a:1c:..:4e > ff:ff:ff:ff:ff:ff ARP | who-has 10.0.0.2 tell 10.0.0.1
/// → Ethernet 02:5a:..:01 > 8a:1c:..:4e IPv4 | IPv4 10.0.0.2 > 10.0.0.1 ttl 64 … | TCP …
/// ```
pub fn describe_frame(direction: Direction, frame: &[u8]) -> String {
    use crate::link::arp::{ArpPacket, OP_REQUEST};
    use crate::link::ethernet::{
        ethertype_name, Frame, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    };

    let arrow = match direction {
        Direction::In => "←",
        Direction::Out => "→",
    };
    let f = match Frame::parse(frame) {
        Ok(f) => f,
        Err(e) => return format!("{arrow} {} bytes, not Ethernet: {e}", frame.len()),
    };
    let mut line = format!(
        "{arrow} Ethernet {} > {} {}",
        f.src,
        f.dst,
        ethertype_name(f.ethertype)
    );
    match f.ethertype {
        ETHERTYPE_ARP => match ArpPacket::parse(f.payload) {
            Ok(a) if a.operation == OP_REQUEST && a.is_gratuitous() => {
                let _ = write!(
                    line,
                    " | ARP announce {} is-at {}",
                    a.sender_ip, a.sender_mac
                );
            }
            Ok(a) if a.operation == OP_REQUEST => {
                let _ = write!(line, " | ARP who-has {} tell {}", a.target_ip, a.sender_ip);
            }
            Ok(a) => {
                let _ = write!(line, " | ARP reply {} is-at {}", a.sender_ip, a.sender_mac);
            }
            Err(e) => {
                let _ = write!(line, " | ARP invalid: {e}");
            }
        },
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => {
            // Reuse the IP description without its own arrow.
            let ip = describe(direction, f.payload);
            let _ = write!(line, " | {}", ip.trim_start_matches(arrow).trim_start());
        }
        other if ethertype_name(other) == "other" => {
            let _ = write!(line, " {other:#06x}");
        }
        _ => {}
    }
    line
}

/// An ICMP message by type and code, as RFC 792 (and RFC 1191 for the MTU) names them:
/// `destination unreachable (port unreachable) about udp 10.0.0.1:4000 → 10.0.0.2:9`,
/// `fragmentation needed, next-hop MTU 1280`, `echo request  id 7  seq 1`. An error names
/// the datagram it quotes (RFC 792: its IP header and first 8 payload bytes), which is how
/// the receiver finds the socket it concerns.
pub(crate) fn icmp_text(message: &[u8]) -> String {
    use crate::ip::icmp;
    let (Some(&kind), Some(&code)) = (message.first(), message.get(1)) else {
        return format!("truncated ({} bytes)", message.len());
    };
    let field = |at: usize| {
        message
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut text = match kind {
        icmp::TYPE_ECHO_REPLY | icmp::TYPE_ECHO_REQUEST => {
            let name = if kind == icmp::TYPE_ECHO_REPLY {
                "echo reply"
            } else {
                "echo request"
            };
            return format!("{name}  id {}  seq {}", field(4), field(6));
        }
        icmp::TYPE_DEST_UNREACHABLE if code == icmp::CODE_FRAGMENTATION_NEEDED => format!(
            "destination unreachable (fragmentation needed and DF set, next-hop MTU {})",
            field(6)
        ),
        icmp::TYPE_DEST_UNREACHABLE => {
            let why = match code {
                0 => "net unreachable",
                1 => "host unreachable",
                2 => "protocol unreachable",
                3 => "port unreachable",
                5 => "source route failed",
                6 => "destination network unknown",
                7 => "destination host unknown",
                9 | 10 | 13 => "administratively prohibited",
                _ => "",
            };
            if why.is_empty() {
                format!("destination unreachable (code {code})")
            } else {
                format!("destination unreachable ({why})")
            }
        }
        icmp::TYPE_TIME_EXCEEDED => match code {
            0 => "time exceeded (TTL exceeded in transit)".to_string(),
            1 => "time exceeded (fragment reassembly time exceeded)".to_string(),
            c => format!("time exceeded (code {c})"),
        },
        icmp::TYPE_SOURCE_QUENCH => "source quench (ignored, RFC 6633)".to_string(),
        icmp::TYPE_PARAMETER_PROBLEM => {
            format!(
                "parameter problem (pointer {})",
                message.get(4).unwrap_or(&0)
            )
        }
        t => return format!("type {t} code {code}"),
    };
    if let Some(quoted) = message.get(icmp::HEADER_LEN..).and_then(quoted_text) {
        let _ = write!(text, " about {quoted}");
    }
    text
}

/// `udp 10.0.0.1:4000 → 10.0.0.2:9`: the datagram an ICMP error quotes (its IP header
/// and at least the first 8 bytes after it, which hold the ports of TCP and UDP).
fn quoted_text(quoted: &[u8]) -> Option<String> {
    let first = *quoted.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let proto = *quoted.get(9)?;
    let addr = |at: usize| {
        quoted
            .get(at..at + 4)
            .map(|b| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    let (src, dst) = (addr(12)?, addr(16)?);
    let ports = quoted.get(ihl..ihl + 4).map(|p| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    });
    Some(match (proto, ports) {
        (ipv4::PROTO_TCP, Some((sp, dp))) => format!("tcp {src}:{sp} → {dst}:{dp}"),
        (ipv4::PROTO_UDP, Some((sp, dp))) => format!("udp {src}:{sp} → {dst}:{dp}"),
        (ipv4::PROTO_ICMP, _) => format!("icmp {src} → {dst}"),
        (p, _) => format!("protocol {p} {src} → {dst}"),
    })
}

/// The first line of an HTTP message at the start of a payload, if it looks like one.
fn first_line(payload: &[u8]) -> Option<String> {
    let end = payload.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(payload.get(..end)?).ok()?;
    let looks_http =
        line.starts_with("HTTP/") || line.ends_with("HTTP/1.1") || line.ends_with("HTTP/1.0");
    looks_http.then(|| line.to_string())
}
