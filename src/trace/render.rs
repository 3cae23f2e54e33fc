//! Turning [`TraceEvent`]s into text: one compact block per packet, one line per decision.
//!
//! ```text
//! #1  ← in   +0.000s  link 60 bytes
//!     ip    10.0.0.1 → 10.0.0.2  ttl 64  id 46802  DF  checksum ok  proto tcp
//!     tcp   59964 → 80  [S]  seq 0 (abs 1823093943)  win 64240  <mss 1460,sackOK,TS val 1 ecr 0,wscale 7>
//!   ▸ tcp   10.0.0.2:80 ↔ 10.0.0.1:59964  LISTEN → SYN-RECEIVED on SYN
//! ```
//!
//! Sequence numbers are shown relative to the connection's initial sequence number (as
//! Wireshark does) *and* absolute: the renderer remembers the ISN of each direction from
//! the SYNs it saw. A connection whose SYN it did not see gets absolute numbers only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{first_line, Direction, HttpEvent, SocketCall, SocketEvent, TraceEvent};
use crate::ip::ipv4::{self, Ipv4Packet};
use crate::tcp::{Segment, SeqNum, State, TcpEvent, TcpEventKind};

/// Whether to colour the output (ANSI escapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    /// Colours on.
    pub color: bool,
}

impl Palette {
    /// No colours (a pipe, a file, a test).
    pub const PLAIN: Palette = Palette { color: false };

    /// Colours when stderr is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub fn for_stderr() -> Palette {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Palette {
            color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// `text` in the SGR colour `code` (e.g. "1;36"), or plain.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The layers a packet passes, in the order of the diagram (bottom first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The TUN device.
    Link,
    /// IPv4.
    Ip,
    /// ICMP (inside IP).
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// The payload (an HTTP line when it starts one).
    Data,
    /// The socket API.
    Socket,
    /// The HTTP server.
    Http,
}

impl Layer {
    /// Short label, padded by the caller.
    pub fn label(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ip => "ip",
            Layer::Icmp => "icmp",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Data => "data",
            Layer::Socket => "socket",
            Layer::Http => "http",
        }
    }

    /// SGR colour of the label.
    fn color(self) -> &'static str {
        match self {
            Layer::Link => "2",
            Layer::Ip => "34",
            Layer::Icmp => "34",
            Layer::Tcp | Layer::Udp => "33",
            Layer::Data | Layer::Http => "35",
            Layer::Socket => "32",
        }
    }
}

/// One layer's view of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerLine {
    /// Which layer.
    pub layer: Layer,
    /// What it sees.
    pub text: String,
}

/// Where in the source a line's work is done: the trace as a map into the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The line that decided, recorded where the event was made (`#[track_caller]`).
    Line(&'static std::panic::Location<'static>),
    /// The function that does a layer's work on a packet: file and `Type::function`.
    Function(&'static str, &'static str),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Line(at) => write!(f, "{}:{}", at.file(), at.line()),
            Code::Function(file, function) => write!(f, "{file} {function}"),
        }
    }
}

/// The functions that handle each layer of a packet on the default runtime (the event
/// loop); `code_map_names_functions_that_exist` keeps them true.
pub const LAYER_CODE: &[(Layer, Direction, &str, &str)] = &[
    (
        Layer::Link,
        Direction::In,
        "src/stack/evloop.rs",
        "EventLoop::read_device",
    ),
    (
        Layer::Ip,
        Direction::In,
        "src/stack/iface.rs",
        "Interface::handle_packet_meta",
    ),
    (
        Layer::Tcp,
        Direction::In,
        "src/tcp/endpoint.rs",
        "Tcp::on_segment",
    ),
    (
        Layer::Icmp,
        Direction::In,
        "src/stack/iface.rs",
        "Interface::handle_icmp",
    ),
    (
        Layer::Udp,
        Direction::In,
        "src/stack/iface.rs",
        "Interface::handle_udp",
    ),
    (
        Layer::Tcp,
        Direction::Out,
        "src/tcp/connection.rs",
        "Connection::poll_transmit",
    ),
    (
        Layer::Icmp,
        Direction::Out,
        "src/stack/iface.rs",
        "Interface::queue",
    ),
    (
        Layer::Udp,
        Direction::Out,
        "src/stack/iface.rs",
        "Interface::poll_transmit",
    ),
    (
        Layer::Ip,
        Direction::Out,
        "src/stack/iface.rs",
        "Interface::poll_transmit_into",
    ),
    (
        Layer::Link,
        Direction::Out,
        "src/stack/evloop.rs",
        "EventLoop::transmit",
    ),
];

/// The code behind one layer line of a packet going `dir` (none for the payload).
pub fn layer_code(dir: Direction, layer: Layer) -> Option<Code> {
    LAYER_CODE
        .iter()
        .find(|(l, d, _, _)| *l == layer && *d == dir)
        .map(|(_, _, file, function)| Code::Function(file, function))
}

/// The code behind a decision line: the exact line for transport decisions and socket
/// calls, the server's request loop for HTTP messages.
pub fn event_code(event: &TraceEvent) -> Option<Code> {
    match event {
        TraceEvent::Tcp(e) => Some(Code::Line(e.at)),
        TraceEvent::Socket(e) => Some(Code::Line(e.at)),
        TraceEvent::Http(_) => Some(Code::Function(
            "src/http/evented.rs",
            "EventedServer::service",
        )),
        TraceEvent::SuperSegment { dir, .. } => layer_code(*dir, Layer::Link),
        TraceEvent::Packet { .. } | TraceEvent::Frame { .. } => None,
    }
}

/// How notable a decision line is (decides its colour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emphasis {
    /// Routine (RTT samples, window changes, socket calls).
    Normal,
    /// A state transition.
    State,
    /// Something went wrong or is being repaired (retransmission, drop, RST).
    Alarm,
}

/// Decodes packets and events into lines; remembers ISNs for relative sequence numbers.
#[derive(Debug, Default)]
pub struct Renderer {
    /// ISN of each direction, keyed (sender, receiver).
    isn: HashMap<(SocketAddr, SocketAddr), SeqNum>,
    /// The window scale option each direction's SYN carried (`None`: its SYN had none),
    /// keyed (sender, receiver): a window field is shifted by its sender's scale once
    /// both SYNs carried the option (RFC 7323 §2.2-2.3).
    wscale: HashMap<(SocketAddr, SocketAddr), Option<u8>>,
    /// Packets seen so far (the `#n` of the next one is this + 1).
    packets: u64,
}

/// At most this many directions are remembered; beyond it the map starts afresh, so a
/// long-running trace cannot grow memory without bound (docs/architecture.md, principle 7).
const MAX_TRACKED: usize = 8192;

impl Renderer {
    /// A renderer that has seen nothing yet.
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// Number the packet and decode it layer by layer (bottom first: link, ip, tcp, data).
    /// Never fails: what does not parse is said so.
    pub fn packet(&mut self, dir: Direction, bytes: &[u8]) -> (u64, Vec<LayerLine>) {
        self.packets += 1;
        let mut lines = Vec::with_capacity(4);
        let mut push = |layer, text: String| lines.push(LayerLine { layer, text });
        let towards = match dir {
            Direction::In => "from the TUN",
            Direction::Out => "to the TUN",
        };
        push(Layer::Link, format!("{} bytes {towards}", bytes.len()));
        let ip = match Ipv4Packet::parse(bytes) {
            Ok(ip) => ip,
            Err(e) => {
                push(Layer::Ip, format!("not valid IPv4: {e} (dropped)"));
                return (self.packets, lines);
            }
        };
        let df = bytes.get(6).is_some_and(|b| b & 0x40 != 0);
        let proto = match ip.protocol {
            ipv4::PROTO_TCP => "tcp".to_string(),
            ipv4::PROTO_ICMP => "icmp".to_string(),
            ipv4::PROTO_UDP => "udp".to_string(),
            p => format!("{p}"),
        };
        push(
            Layer::Ip,
            format!(
                "{} → {}  ttl {}  id {}{}  checksum ok  proto {proto}",
                ip.src,
                ip.dst,
                ip.ttl,
                ip.id,
                if df { "  DF" } else { "" }
            ),
        );
        match ip.protocol {
            ipv4::PROTO_TCP => match Segment::parse(ip.src, ip.dst, ip.payload) {
                Ok(seg) => {
                    let src = SocketAddr::new(ip.src.into(), seg.src_port);
                    let dst = SocketAddr::new(ip.dst.into(), seg.dst_port);
                    push(Layer::Tcp, self.segment_text(src, dst, &seg));
                    if !seg.payload.is_empty() {
                        let text = match first_line(&seg.payload) {
                            Some(line) => format!("{} bytes  {line}", seg.payload.len()),
                            None => format!("{} bytes", seg.payload.len()),
                        };
                        push(Layer::Data, text);
                    }
                }
                Err(e) => push(Layer::Tcp, format!("invalid segment: {e} (dropped)")),
            },
            ipv4::PROTO_ICMP => push(Layer::Icmp, super::icmp_text(ip.payload)),
            ipv4::PROTO_UDP => match crate::udp::Datagram::parse(ip.src, ip.dst, ip.payload) {
                Ok(d) => push(
                    Layer::Udp,
                    format!("{} → {}  len {}", d.src_port, d.dst_port, d.payload.len()),
                ),
                Err(e) => push(Layer::Udp, format!("invalid datagram: {e} (dropped)")),
            },
            _ => {}
        }
        (self.packets, lines)
    }

    /// Like [`Renderer::packet`] for an Ethernet frame from a TAP device: the link line
    /// shows the MAC addresses and EtherType, ARP is decoded, and an IPv4 payload is
    /// decoded as `packet` does.
    pub fn frame(&mut self, dir: Direction, bytes: &[u8]) -> (u64, Vec<LayerLine>) {
        use crate::link::arp::{ArpPacket, OP_REQUEST};
        use crate::link::ethernet::{ethertype_name, Frame, ETHERTYPE_ARP, ETHERTYPE_IPV4};
        let towards = match dir {
            Direction::In => "from the TAP",
            Direction::Out => "to the TAP",
        };
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.packets += 1;
                let text = format!("{} bytes {towards}, not Ethernet: {e}", bytes.len());
                return (
                    self.packets,
                    vec![LayerLine {
                        layer: Layer::Link,
                        text,
                    }],
                );
            }
        };
        let link = format!(
            "{} bytes {towards}  {} → {}  {}",
            bytes.len(),
            frame.src,
            frame.dst,
            ethertype_name(frame.ethertype)
        );
        if frame.ethertype == ETHERTYPE_IPV4 {
            let (n, mut lines) = self.packet(dir, frame.payload);
            if let Some(first) = lines.first_mut() {
                first.text = link;
            }
            return (n, lines);
        }
        self.packets += 1;
        let mut lines = vec![LayerLine {
            layer: Layer::Link,
            text: link,
        }];
        if frame.ethertype == ETHERTYPE_ARP {
            let text = match ArpPacket::parse(frame.payload) {
                Ok(a) if a.operation == OP_REQUEST && a.is_gratuitous() => {
                    format!("ARP announce  {} is at {}", a.sender_ip, a.sender_mac)
                }
                Ok(a) if a.operation == OP_REQUEST => {
                    format!("ARP who has {}?  tell {}", a.target_ip, a.sender_ip)
                }
                Ok(a) => format!("ARP reply  {} is at {}", a.sender_ip, a.sender_mac),
                Err(e) => format!("ARP invalid: {e} (dropped)"),
            };
            lines.push(LayerLine {
                layer: Layer::Link,
                text,
            });
        }
        (self.packets, lines)
    }

    /// `59964 → 80  [S.]  seq 0 (abs 1823093943)  ack 1 (abs 99)  win 64240  <mss 1460>`.
    fn segment_text(&mut self, src: SocketAddr, dst: SocketAddr, seg: &Segment) -> String {
        if seg.flags.syn {
            if self.isn.len() >= MAX_TRACKED {
                self.isn.clear();
                self.wscale.clear();
            }
            self.isn.insert((src, dst), seg.seq);
            self.wscale.insert((src, dst), seg.options.window_scale);
        }
        let mut t = String::with_capacity(120);
        let _ = write!(
            t,
            "{} → {}  [{}]  seq {}",
            seg.src_port,
            seg.dst_port,
            seg.flags,
            self.seq_text(src, dst, seg.seq)
        );
        if seg.flags.ack {
            let _ = write!(t, "  ack {}", self.seq_text(dst, src, seg.ack));
        }
        let _ = write!(t, "  win {}", self.window_text(src, dst, seg));
        if !seg.payload.is_empty() {
            let _ = write!(t, "  len {}", seg.payload.len());
        }
        let opts = if seg.options.sack_blocks.is_empty() {
            seg.options.to_string()
        } else {
            // SACK blocks acknowledge the receiver's sequence space: relative like `ack`.
            let mut plain = seg.options.clone();
            plain.sack_blocks.clear();
            let mut o = plain.to_string();
            let blocks: String = seg
                .options
                .sack_blocks
                .iter()
                .map(|(l, r)| format!("{{{}:{}}}", self.rel(dst, src, *l), self.rel(dst, src, *r)))
                .collect();
            match o.pop() {
                Some('>') => format!("{o},sack {blocks}>"),
                _ => format!("<sack {blocks}>"),
            }
        };
        if !opts.is_empty() {
            let _ = write!(t, "  {opts}");
        }
        t
    }

    /// The window a segment advertises, as the receiver of it uses it: `64512 (63<<10)`
    /// when scaled, the field alone when the scale is 0 or on a SYN (whose window is
    /// never scaled, RFC 7323 §2.2), and the field marked as such when the SYNs were not
    /// seen, so a scaled window never looks like a collapsed one.
    fn window_text(&self, src: SocketAddr, dst: SocketAddr, seg: &Segment) -> String {
        if seg.flags.syn {
            return seg.window.to_string();
        }
        match (self.wscale.get(&(src, dst)), self.wscale.get(&(dst, src))) {
            (Some(Some(shift)), Some(Some(_))) if *shift > 0 => {
                // RFC 7323 §2.3: a shift above 14 is used as 14.
                let shift = (*shift).min(14);
                let scaled = u32::from(seg.window) << shift;
                format!("{scaled} ({}<<{shift})", seg.window)
            }
            (Some(_), Some(_)) => seg.window.to_string(),
            _ => format!("{} (field; scale unknown, SYN not seen)", seg.window),
        }
    }

    /// `seq` relative to the ISN of `from → to`, or absolute when that ISN is unknown.
    fn rel(&self, from: SocketAddr, to: SocketAddr, seq: SeqNum) -> u32 {
        match self.isn.get(&(from, to)) {
            Some(isn) => seq.0.wrapping_sub(isn.0),
            None => seq.0,
        }
    }

    /// `n (abs N)` relative to the ISN of `from → to`, or just `N` when unknown.
    fn seq_text(&self, from: SocketAddr, to: SocketAddr, seq: SeqNum) -> String {
        match self.isn.get(&(from, to)) {
            Some(isn) => format!("{} (abs {})", seq.0.wrapping_sub(isn.0), seq.0),
            None => format!("{}", seq.0),
        }
    }

    /// One line for a decision or call (anything but a packet).
    pub fn event(&mut self, event: &TraceEvent) -> Option<(Layer, String, Emphasis)> {
        match event {
            TraceEvent::Packet { .. } | TraceEvent::Frame { .. } => None,
            TraceEvent::SuperSegment {
                dir,
                len,
                segments,
                gso_size,
            } => Some((
                Layer::Link,
                super_segment_text(*dir, *len, *segments, *gso_size),
                Emphasis::Normal,
            )),
            TraceEvent::Tcp(e) => Some(self.tcp_event(e)),
            TraceEvent::Socket(e) => Some((Layer::Socket, socket_text(e), Emphasis::Normal)),
            TraceEvent::Http(e) => Some((Layer::Http, http_text(e), Emphasis::Normal)),
        }
    }

    fn tcp_event(&mut self, e: &TcpEvent) -> (Layer, String, Emphasis) {
        let who = if e.remote.ip().is_unspecified() {
            format!("{}", e.local)
        } else {
            format!("{} ↔ {}", e.local, e.remote)
        };
        let (what, emphasis) = match &e.kind {
            TcpEventKind::State { from, to, cause } => {
                if *to == State::Closed {
                    self.isn.remove(&(e.local, e.remote));
                    self.isn.remove(&(e.remote, e.local));
                    self.wscale.remove(&(e.local, e.remote));
                    self.wscale.remove(&(e.remote, e.local));
                }
                (format!("{from} → {to} on {cause}"), Emphasis::State)
            }
            TcpEventKind::Listen { backlog } => (
                format!("CLOSED → LISTEN on passive OPEN (backlog {backlog})"),
                Emphasis::State,
            ),
            TcpEventKind::RetransmitTimeout { attempt, rto } => (
                format!(
                    "retransmission timer expired (#{attempt}): back to SND.UNA, RTO now {}",
                    ms(*rto)
                ),
                Emphasis::Alarm,
            ),
            TcpEventKind::FastRetransmit { seq, dup_acks } => (
                format!(
                    "{dup_acks} duplicate ACK{}: fast retransmit of seq {}",
                    if *dup_acks == 1 { "" } else { "s" },
                    self.seq_text(e.local, e.remote, *seq)
                ),
                Emphasis::Alarm,
            ),
            TcpEventKind::DuplicateAck {
                seq,
                count,
                threshold,
                in_recovery,
            } => {
                let seq = self.seq_text(e.local, e.remote, *seq);
                let why = if *in_recovery {
                    "in fast recovery: one more segment left the network, so one more may be \
                     sent (RFC 5681 §3.2, RFC 6675 §5)"
                        .to_string()
                } else {
                    format!(
                        "the peer got a segment above a gap (ours lost or reordered); \
                         fast retransmit at {threshold} (RFC 5681 §3.2)"
                    )
                };
                (
                    format!("duplicate ACK #{count} of seq {seq}: {why}"),
                    Emphasis::Alarm,
                )
            }
            TcpEventKind::Retransmission { seq, len } => (
                format!(
                    "retransmitting seq {} len {len}: sent before, not yet acknowledged",
                    self.seq_text(e.local, e.remote, *seq)
                ),
                Emphasis::Alarm,
            ),
            TcpEventKind::Undo { how, cwnd } => (
                format!(
                    "every retransmission was spurious ({how}): the window reduction is \
                     undone, cwnd {cwnd} (RFC 4015)"
                ),
                Emphasis::Normal,
            ),
            TcpEventKind::RttSample { rtt, srtt, rto } => (
                format!(
                    "RTT sample {}: SRTT {}, RTO {}",
                    ms(*rtt),
                    ms(*srtt),
                    ms(*rto)
                ),
                Emphasis::Normal,
            ),
            TcpEventKind::PeerWindow { old, new } => {
                (format!("peer's window {old} → {new}"), Emphasis::Normal)
            }
            TcpEventKind::WindowUpdate { window } => (
                format!("application read data: window update owed (window {window})"),
                Emphasis::Normal,
            ),
            TcpEventKind::DuplicateSyn => (
                "the peer repeated its SYN (our SYN-ACK was lost or late): SYN-ACK again"
                    .to_string(),
                Emphasis::Alarm,
            ),
            TcpEventKind::ZeroWindowProbe => (
                "persist timer: probing the peer's zero window".to_string(),
                Emphasis::Alarm,
            ),
            TcpEventKind::CloseTimer { what, after } => (
                format!("{what} timer started: closes in {}", secs(*after)),
                Emphasis::Normal,
            ),
            TcpEventKind::Dropped { reason } => (
                format!("segment dropped: {reason}; {}", explain_drop(reason)),
                Emphasis::Alarm,
            ),
            TcpEventKind::ResetNoConnection => (
                "no connection and no listener: answered with RST (RFC 9293 §3.10.7.1)".to_string(),
                Emphasis::Alarm,
            ),
        };
        (Layer::Tcp, format!("{who}  {what}"), emphasis)
    }
}

/// The rule behind a transport-layer drop reason, for learners.
fn explain_drop(reason: &str) -> &'static str {
    match reason {
        "sequence number not acceptable" => {
            "outside the receive window; answered with an ACK (RFC 9293 §3.10.7.4)"
        }
        "RST outside the window" => "ignored (RFC 9293 §3.10.7.4)",
        "RST not at RCV.NXT (challenge ACK)" => "RFC 5961 §3.2",
        "SYN in a synchronized state (challenge ACK)" => "RFC 5961 §4.2",
        "no ACK bit" => "every segment after the handshake carries ACK (RFC 9293 §3.10.7.4)",
        "ACK of data not yet sent" => "answered with an ACK (RFC 9293 §3.10.7.4)",
        "data after the peer's FIN" => "nothing follows a FIN (RFC 9293 §3.10.7.4)",
        "SYN-RECEIVED: unacceptable ACK" => "answered with a RST (RFC 9293 §3.10.7.4)",
        "SYN-SENT: unacceptable ACK" => "answered with a RST (RFC 9293 §3.10.7.3)",
        "SYN-SENT: RST without an acceptable ACK" => "ignored (RFC 9293 §3.10.7.3)",
        "SYN-SENT: neither SYN nor RST" => "waiting for a SYN-ACK (RFC 9293 §3.10.7.3)",
        "no connection or listener" => "answered with a RST (RFC 9293 §3.10.7.1)",
        "ACK to a listener" => "answered with a RST (RFC 9293 §3.10.7.2)",
        "not a SYN to a listener" => "a listener only takes SYNs (RFC 9293 §3.10.7.2)",
        "SYN: accept queue full" => "the peer will retry its SYN",
        _ => "see the tcp log at debug level",
    }
}

/// A super-segment, said as what it is for the stack and for the wire.
fn super_segment_text(dir: Direction, len: usize, segments: usize, gso_size: u16) -> String {
    match dir {
        Direction::Out => format!(
            "super-segment of {len} bytes (TSO): the kernel cuts it into {segments} segment(s) \
             of {gso_size} payload bytes; as they leave:"
        ),
        Direction::In => format!(
            "super-segment of {len} bytes (GRO): the kernel merged {segments} segment(s) \
             of {gso_size} payload bytes; the stack takes it as one; as they arrived:"
        ),
    }
}

fn socket_text(e: &SocketEvent) -> String {
    let call = socket_call_text(e);
    match &e.thread {
        Some(t) => format!("{call}  [thread {t}]"),
        None => call,
    }
}

fn socket_call_text(e: &SocketEvent) -> String {
    match &e.call {
        SocketCall::Listen => format!("listen({})", e.local),
        SocketCall::Accept => format!("accept() → connection from {} on {}", e.remote, e.local),
        SocketCall::Connect => format!("connect({}) → connected from {}", e.remote, e.local),
        SocketCall::Read(0) => format!("read() → 0 bytes: end of stream from {}", e.remote),
        SocketCall::Read(n) => format!("read() → {n} bytes from {}", e.remote),
        SocketCall::Write(n) => format!("write({n} bytes) to {}", e.remote),
        SocketCall::Shutdown => format!("shutdown(write) to {}: FIN after queued data", e.remote),
        SocketCall::Close => format!("close() of {} ↔ {}", e.local, e.remote),
    }
}

fn http_text(e: &HttpEvent) -> String {
    match e {
        HttpEvent::Request { peer, line, thread } => {
            let from = peer.map(|p| format!("  (from {p})")).unwrap_or_default();
            let on = thread
                .as_ref()
                .map(|t| format!("  [thread {t}]"))
                .unwrap_or_default();
            format!("request  {line}{from} → handler{on}")
        }
        HttpEvent::Response { line, body_len, .. } => match body_len {
            Some(n) => format!("response {line}  ({n} byte body)"),
            None => format!("response {line}  (streamed body)"),
        },
    }
}

fn ms(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 10_000 {
        format!("{:.3} ms", micros as f64 / 1000.0)
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Renders events as text blocks, stamping each packet with the time since the printer
/// was made. Used by the `--trace` sink ([`super::Tracer::stderr`]).
#[derive(Debug)]
pub struct Printer {
    renderer: Renderer,
    palette: Palette,
    start: Instant,
    code: bool,
}

impl Printer {
    /// A printer whose clock starts now.
    pub fn new(palette: Palette) -> Printer {
        Printer {
            renderer: Renderer::new(),
            palette,
            start: Instant::now(),
            code: false,
        }
    }

    /// Also end each line with the code that did it (`--trace-code`): a dim
    /// `@ src/tcp/connection.rs:1506` or `@ src/stack/iface.rs Interface::handle_icmp`.
    pub fn with_code(mut self, on: bool) -> Printer {
        self.code = on;
        self
    }

    /// `  @ code`, dim, when code locations are on.
    fn code_suffix(&self, code: Option<Code>) -> String {
        match code {
            Some(c) if self.code => format!("  {}", self.palette.paint("2", &format!("@ {c}"))),
            _ => String::new(),
        }
    }

    /// The text for `event` (ends with a newline), stamped with the time since start and,
    /// for a packet, the thread that handled it (a queue's loop, or the stack thread).
    pub fn render(&mut self, event: &TraceEvent) -> String {
        let elapsed = self.start.elapsed();
        let current = std::thread::current();
        self.render_on(event, elapsed, current.name())
    }

    /// The text for `event` as if `elapsed` had passed since the start (for tests).
    pub fn render_at(&mut self, event: &TraceEvent, elapsed: Duration) -> String {
        self.render_on(event, elapsed, None)
    }

    /// The text for `event` as if `elapsed` had passed, handled on `thread`.
    pub fn render_on(
        &mut self,
        event: &TraceEvent,
        elapsed: Duration,
        thread: Option<&str>,
    ) -> String {
        let p = self.palette;
        match event {
            TraceEvent::Packet { dir, bytes } | TraceEvent::Frame { dir, bytes } => {
                let (n, lines) = match event {
                    TraceEvent::Frame { .. } => self.renderer.frame(*dir, bytes),
                    _ => self.renderer.packet(*dir, bytes),
                };
                let arrow = match dir {
                    Direction::In => "← in ",
                    Direction::Out => "→ out",
                };
                let mut out = String::with_capacity(400);
                let mut rest = lines.iter();
                let link = rest
                    .next()
                    .map(|l| l.text.as_str())
                    .unwrap_or_default()
                    .to_string();
                let mut head = format!("#{n:<3} {arrow}  +{:.6}s", elapsed.as_secs_f64());
                if let Some(t) = thread {
                    let _ = write!(head, "  [{t}]");
                }
                let _ = writeln!(
                    out,
                    "{}  {} {}{}",
                    p.paint("1", &head),
                    p.paint(Layer::Link.color(), "link"),
                    link,
                    self.code_suffix(layer_code(*dir, Layer::Link))
                );
                for l in rest {
                    let label = format!("{:<7}", l.layer.label());
                    let _ = writeln!(
                        out,
                        "    {}{}{}",
                        p.paint(l.layer.color(), &label),
                        l.text,
                        self.code_suffix(layer_code(*dir, l.layer))
                    );
                }
                out
            }
            other => match self.renderer.event(other) {
                Some((layer, text, emphasis)) => {
                    let label = format!("{:<7}", layer.label());
                    let text = match emphasis {
                        Emphasis::State => p.paint("1;36", &text),
                        Emphasis::Alarm => p.paint("31", &text),
                        Emphasis::Normal => text,
                    };
                    format!(
                        "  ▸ {}{}{}\n",
                        p.paint(layer.color(), &label),
                        text,
                        self.code_suffix(event_code(other))
                    )
                }
                None => String::new(),
            },
        }
    }
}
