//! Ladder (sequence) diagrams of TCP connections, reconstructed from a capture.
//!
//! `tunstack diagram CAPTURE` reads a pcap file ([`crate::link::pcap::PcapReader`]), groups
//! the TCP segments into connections, and draws each one as two columns — client on the
//! left (the side that sent the first SYN), server on the right — with one arrow per
//! segment, like the handshake figures of a textbook but from live traffic:
//!
//! ```text
//!   client 10.0.0.1:40000                 server 10.0.0.2:80
//!   CLOSED                                                LISTEN
//!   SYN-SENT   |--- SYN seq=0 ---------------------->|    SYN-RECEIVED
//!   ESTABLISHED|<-- SYN, ACK seq=0 ack=1 ------------|
//!              |--- ACK seq=1 ack=1 ---------------->|    ESTABLISHED
//!              |--- PSH, ACK len=77  GET / HTTP/1.1->|
//!              |<-- PSH, ACK len=1203 HTTP/1.1 200 --|
//!   FIN-WAIT-1 |--- FIN, ACK ----------------------->|    CLOSE-WAIT
//!   ...
//! ```
//!
//! This module is the reconstruction, sans-IO like the protocol core: [`DiagramBuilder`]
//! takes packets (or already-parsed segments) with their capture time and produces
//! [`Connection`]s; [`svg`] draws them. Nothing here reads files or clocks.
//!
//! A capture only shows segments, not the endpoints' memory, so the TCP state of each side
//! is *inferred* from the segments it sends and receives, following the transitions of
//! RFC 9293 §3.3.2 (the diagram in [`crate::tcp::state`]). The capture point matters: our
//! `serve --pcap` records at the TUN, so a segment is drawn as sent and received at the
//! same instant, and each side's state change is written at its end of the arrow.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::ip::ipv4::{Ipv4Error, Ipv4Packet, PROTO_TCP};
use crate::link::pcap::{PcapError, PcapReader};
use crate::tcp::{Flags, Segment, SegmentError, SeqNum, State};

pub mod svg;

/// Most connections one diagram reconstructs; later ones are counted and skipped, so a
/// capture of a port scan cannot make us allocate without bound.
pub const MAX_CONNECTIONS: usize = 10_000;

/// One of the two columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that sent the first SYN (active open), drawn on the left.
    Client,
    /// The side that answered it (passive open), drawn on the right.
    Server,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Something worth pointing out about a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The segment re-sends sequence space its sender had already sent.
    Retransmission,
    /// The segment starts after the highest sequence number seen from its sender: this many
    /// bytes were never seen — lost before the capture point, or not captured.
    Gap {
        /// Sequence numbers missing before this segment.
        missing: u32,
    },
    /// A pure ACK repeating the previous ACK while data is outstanding (the receiver saw a
    /// hole; three of them trigger fast retransmit, RFC 5681 §3.2).
    DuplicateAck {
        /// 1 for the first repetition, 2 for the second, ...
        count: u32,
    },
    /// The checksum does not verify (often: computed later by the NIC, "offloaded").
    BadChecksum,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Retransmission => write!(f, "retransmission"),
            Note::Gap { missing } => write!(f, "{missing} bytes before this never seen (lost?)"),
            Note::DuplicateAck { count } => write!(f, "duplicate ACK #{count}"),
            Note::BadChecksum => write!(f, "bad checksum (offloaded?)"),
        }
    }
}

/// One segment, drawn as one arrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// 1-based packet number in the capture (as Wireshark counts).
    pub packet: usize,
    /// Time since the connection's first segment.
    pub time: Duration,
    /// Who sent it.
    pub from: Side,
    /// Control bits.
    pub flags: Flags,
    /// SEG.SEQ relative to the sender's initial sequence number (its SYN is 0).
    pub seq: u32,
    /// SEG.ACK relative to the receiver's ISN, when the ACK bit is set.
    pub ack: Option<u32>,
    /// Payload bytes.
    pub len: usize,
    /// The advertised window field, as on the wire.
    pub window: u16,
    /// The shift the receiver applies to `window` (RFC 7323 §2.3): 0 on a SYN or when
    /// the handshake did not negotiate scaling; `None` when the capture lacks the SYNs.
    pub scale: Option<u8>,
    /// Options worth showing (on SYNs): `mss 1460, wscale 7, sackOK, TS`.
    pub options: Vec<String>,
    /// First line of an HTTP message starting in this segment.
    pub http: Option<String>,
    /// Retransmission, gap, duplicate ACK, bad checksum.
    pub notes: Vec<Note>,
    /// The client's new states at this segment, in order (usually none or one; a FIN+ACK
    /// that acknowledges the peer's FIN moves its sender through CLOSE-WAIT to LAST-ACK).
    pub client_states: Vec<State>,
    /// The server's new states at this segment, in order.
    pub server_states: Vec<State>,
}

impl Arrow {
    /// The state changes of `side` at this arrow.
    pub fn states_of(&self, side: Side) -> &[State] {
        match side {
            Side::Client => &self.client_states,
            Side::Server => &self.server_states,
        }
    }

    /// Flag names in the order Wireshark prints them: `SYN, ACK`, `FIN, ACK`, `PSH, ACK`.
    pub fn flag_names(&self) -> String {
        let f = self.flags;
        let names: Vec<&str> = [
            (f.fin, "FIN"),
            (f.syn, "SYN"),
            (f.rst, "RST"),
            (f.psh, "PSH"),
            (f.ack, "ACK"),
            (f.urg, "URG"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }

    /// The window the receiver uses: the field shifted by the scale (the field when
    /// the scale is unknown).
    pub fn scaled_window(&self) -> u32 {
        u32::from(self.window) << self.scale.unwrap_or(0)
    }

    /// `seq=1 ack=1 win=64512 (63<<10) len=77`: the numbers of the arrow's label. The
    /// window is the scaled one, as tshark shows it, with the field and shift it came
    /// from, so a scaled window never looks like a collapsed one.
    pub fn numbers(&self) -> String {
        let mut s = format!("seq={}", self.seq);
        if let Some(ack) = self.ack {
            s.push_str(&format!(" ack={ack}"));
        }
        match self.scale {
            Some(0) => s.push_str(&format!(" win={}", self.window)),
            Some(shift) => s.push_str(&format!(
                " win={} ({}<<{shift})",
                self.scaled_window(),
                self.window
            )),
            None => s.push_str(&format!(" win={} (field, scale unknown)", self.window)),
        }
        s.push_str(&format!(" len={}", self.len));
        s
    }
}

/// One TCP connection as seen in the capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// 1-based, in order of first appearance.
    pub number: usize,
    /// The active opener's address.
    pub client: SocketAddr,
    /// The passive opener's address.
    pub server: SocketAddr,
    /// Capture time of the first segment (since the Unix epoch, as in the file).
    pub start: Duration,
    /// Whether the capture holds the opening SYN. If not, the sides are guessed (the
    /// higher, ephemeral port is the client) and both start out ESTABLISHED.
    pub saw_syn: bool,
    /// States before the first segment: (client, server).
    pub initial: (State, State),
    /// States after the last segment: (client, server).
    pub last: (State, State),
    /// The segments, in capture order.
    pub arrows: Vec<Arrow>,
}

impl Connection {
    /// The address of a side.
    pub fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }

    /// Time from the first to the last segment.
    pub fn duration(&self) -> Duration {
        self.arrows.last().map_or(Duration::ZERO, |a| a.time)
    }

    /// The segments marked as retransmissions.
    pub fn retransmissions(&self) -> usize {
        self.arrows
            .iter()
            .filter(|a| a.notes.contains(&Note::Retransmission))
            .count()
    }
}

/// Packets of the capture that are not drawn, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Not IP (ARP on Ethernet, ...).
    pub not_ipv4: usize,
    /// IPv4 or IPv6 but malformed (bad header, fragment).
    pub bad_ipv4: usize,
    /// IP but not TCP (ICMP, ICMPv6, UDP).
    pub not_tcp: usize,
    /// TCP that does not parse (too short, bad data offset, bad options).
    pub bad_tcp: usize,
    /// Beyond [`MAX_CONNECTIONS`].
    pub too_many_connections: usize,
}

impl Skipped {
    /// Total packets skipped.
    pub fn total(&self) -> usize {
        self.not_ipv4 + self.bad_ipv4 + self.not_tcp + self.bad_tcp + self.too_many_connections
    }
}

/// What a capture holds, ready to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagram {
    /// The TCP connections, in order of first appearance.
    pub connections: Vec<Connection>,
    /// Packets not drawn.
    pub skipped: Skipped,
    /// Why reading stopped early (a capture cut short), if it did. The packets before the
    /// problem are still drawn.
    pub read_error: Option<PcapError>,
}

impl Diagram {
    /// Reads a whole pcap file (already in memory). Fails only when the file is not a
    /// capture we can read at all; a broken record at the end is reported in
    /// [`Diagram::read_error`] after the packets before it.
    pub fn from_pcap(bytes: &[u8]) -> Result<Diagram, PcapError> {
        let reader = PcapReader::new(bytes)?;
        let mut builder = DiagramBuilder::new();
        let mut read_error = None;
        for (i, item) in reader.enumerate() {
            match item {
                Ok(p) => match p.ip {
                    Some(ip) => builder.add_packet(i + 1, p.ts, ip),
                    None => builder.skipped.not_ipv4 += 1,
                },
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        let mut diagram = builder.finish();
        diagram.read_error = read_error;
        Ok(diagram)
    }
}

/// What we know about one side's sending sequence space.
#[derive(Clone, Debug, Default)]
struct Sender {
    /// The number its relative sequence numbers count from: the ISN if the SYN was seen,
    /// else the first SEG.SEQ seen.
    base: Option<SeqNum>,
    /// The ISN, if the SYN was seen.
    isn: Option<SeqNum>,
    /// SND.MAX as seen on the wire: the highest SEG.SEQ + SEG.LEN so far.
    max: Option<SeqNum>,
    /// Sequence number of its FIN, once sent.
    fin: Option<SeqNum>,
    /// Whether the other side has processed that FIN already (FIN retransmissions change
    /// nothing).
    fin_received: bool,
    /// Its previous pure ACK (ack, window) and how often it was repeated.
    last_ack: Option<(SeqNum, u16)>,
    dup_acks: u32,
    /// The window scale option of its SYN (`Some(None)`: a SYN without one), once seen.
    wscale: Option<Option<u8>>,
}

/// A connection being reconstructed.
#[derive(Clone, Debug)]
struct Tracker {
    conn: Connection,
    senders: [Sender; 2],
    states: [State; 2],
}

impl Tracker {
    fn new(
        number: usize,
        start: Duration,
        client: SocketAddr,
        server: SocketAddr,
        syn: bool,
    ) -> Tracker {
        let initial = if syn {
            (State::Closed, State::Listen)
        } else {
            (State::Established, State::Established)
        };
        Tracker {
            conn: Connection {
                number,
                client,
                server,
                start,
                saw_syn: syn,
                initial,
                last: initial,
                arrows: Vec::new(),
            },
            senders: [Sender::default(), Sender::default()],
            states: [initial.0, initial.1],
        }
    }

    /// Whether a new SYN from `from` with `seq` starts a new connection on the same 4-tuple
    /// rather than retransmitting this one's SYN.
    fn is_new_incarnation(&self, from: Side, seq: SeqNum) -> bool {
        let sender = &self.senders[from.index()];
        let both_done = self
            .states
            .iter()
            .all(|s| matches!(s, State::Closed | State::TimeWait));
        match sender.isn {
            Some(isn) => isn != seq,
            // A side without a SYN yet may be opening simultaneously (§3.5, Figure 8);
            // it starts a new connection only when this one is over or began mid-stream.
            None => both_done || !self.conn.saw_syn,
        }
    }

    fn set_state(&mut self, side: Side, state: State, changes: &mut [Vec<State>; 2]) {
        if self.states[side.index()] != state {
            self.states[side.index()] = state;
            changes[side.index()].push(state);
        }
    }

    /// Adds one segment from `from`: notes, relative numbers and the states it implies.
    fn add(&mut self, packet: usize, ts: Duration, from: Side, seg: &Segment, bad_checksum: bool) {
        let to = from.other();
        let mut notes = Vec::new();
        if bad_checksum {
            notes.push(Note::BadChecksum);
        }
        let seg_len = seg.seg_len();
        let data_len = seg.payload.len();

        // --- the sender's sequence space: retransmission or gap?
        {
            let (s_idx, r_idx) = (from.index(), to.index());
            let receiver_max = self.senders[r_idx].max;
            let sender = &mut self.senders[s_idx];
            if seg.flags.syn && sender.isn.is_none() {
                sender.isn = Some(seg.seq);
                sender.base = Some(seg.seq);
            }
            if seg.flags.syn {
                sender.wscale = Some(seg.options.window_scale);
            }
            if sender.base.is_none() {
                sender.base = Some(seg.seq);
            }
            if let Some(max) = sender.max {
                if seg_len > 0 && seg.seq.lt(max) {
                    notes.push(Note::Retransmission);
                } else if seg.seq.gt(max) && !seg.flags.rst {
                    notes.push(Note::Gap {
                        missing: seg.seq.0.wrapping_sub(max.0),
                    });
                }
            }
            let end = seg.seq + seg_len;
            sender.max = Some(sender.max.map_or(end, |m| m.max(end)));
            // RFC 5681 §2 "duplicate acknowledgment": no data, no SYN/FIN, same ACK and
            // window as before, while the other side has unacknowledged data.
            let pure_ack = seg.flags.ack && seg_len == 0 && !seg.flags.rst;
            if pure_ack {
                let outstanding = receiver_max.is_some_and(|m| m.gt(seg.ack));
                if sender.last_ack == Some((seg.ack, seg.window)) && outstanding {
                    sender.dup_acks = sender.dup_acks.saturating_add(1);
                    notes.push(Note::DuplicateAck {
                        count: sender.dup_acks,
                    });
                } else {
                    sender.dup_acks = 0;
                }
                sender.last_ack = Some((seg.ack, seg.window));
            } else if seg.flags.ack {
                sender.dup_acks = 0;
                sender.last_ack = Some((seg.ack, seg.window));
            }
        }

        // --- the states (RFC 9293 §3.3.2). A SYN changes the receiver's state when it
        // arrives (that is how every textbook draws it), but a FIN only once the receiver
        // acknowledges it: at a single capture point that is the only evidence of when
        // the FIN was processed, and it keeps simultaneous closes (§3.6, Figure 13)
        // apart from ordinary ones.
        let mut changes: [Vec<State>; 2] = [Vec::new(), Vec::new()];
        if seg.flags.rst {
            // §3.10.7.4 second check: a RST aborts the connection at both ends.
            if self.states[to.index()] != State::Listen {
                self.set_state(to, State::Closed, &mut changes);
            }
            self.set_state(from, State::Closed, &mut changes);
        } else {
            // The receiver: a SYN opens (passive, or both at once: §3.5, Figure 8).
            if seg.flags.syn && !seg.flags.ack {
                if matches!(self.states[from.index()], State::Closed | State::Listen) {
                    self.set_state(from, State::SynSent, &mut changes);
                }
                if matches!(
                    self.states[to.index()],
                    State::Listen | State::Closed | State::SynSent
                ) {
                    self.set_state(to, State::SynReceived, &mut changes);
                }
            }
            if seg.flags.ack {
                // The sender acknowledges the receiver's FIN: it has processed it
                // (§3.10.7.4, eighth check).
                let peer = &self.senders[to.index()];
                let acks_peer_fin =
                    !peer.fin_received && peer.fin.is_some_and(|fin| seg.ack.gt(fin));
                if acks_peer_fin {
                    self.senders[to.index()].fin_received = true;
                    let next = match self.states[from.index()] {
                        State::Established | State::SynReceived => Some(State::CloseWait),
                        State::FinWait1 => Some(State::Closing),
                        State::FinWait2 => Some(State::TimeWait),
                        _ => None,
                    };
                    if let Some(next) = next {
                        self.set_state(from, next, &mut changes);
                    }
                }
                // The receiver sees its SYN or FIN acknowledged (§3.10.7.4, fifth check).
                let receiver = &self.senders[to.index()];
                let acks_syn = receiver.isn.is_some_and(|isn| seg.ack.gt(isn));
                let acks_fin = receiver.fin.is_some_and(|fin| seg.ack.gt(fin));
                let next = match self.states[to.index()] {
                    State::SynSent | State::SynReceived if acks_syn => Some(State::Established),
                    State::FinWait1 if acks_fin => Some(State::FinWait2),
                    State::Closing if acks_fin => Some(State::TimeWait),
                    State::LastAck if acks_fin => Some(State::Closed),
                    _ => None,
                };
                if let Some(next) = next {
                    self.set_state(to, next, &mut changes);
                }
                // A SYN-RECEIVED side whose SYN-ACK is answered by the peer's own SYN-ACK
                // (simultaneous open) is established by that ACK as well: covered above.
            }
            if seg.flags.fin && self.senders[from.index()].fin.is_none() {
                // The sender closed (§3.10.4 CLOSE): its FIN sits after its data.
                let data = u32::try_from(data_len).unwrap_or(u32::MAX);
                self.senders[from.index()].fin = Some(seg.seq + u32::from(seg.flags.syn) + data);
                let next = match self.states[from.index()] {
                    State::Established | State::SynReceived => Some(State::FinWait1),
                    State::CloseWait => Some(State::LastAck),
                    _ => None,
                };
                if let Some(next) = next {
                    self.set_state(from, next, &mut changes);
                }
            }
        }

        let base = |side: Side| self.senders[side.index()].base.unwrap_or(SeqNum(0));
        // RFC 7323 §2.2-2.3: a SYN's window is never scaled; the others are shifted by
        // their sender's scale once both SYNs carried the option (a shift above 14 is 14).
        let scale = if seg.flags.syn {
            Some(0)
        } else {
            match (
                self.senders[from.index()].wscale,
                self.senders[to.index()].wscale,
            ) {
                (Some(Some(shift)), Some(Some(_))) => Some(shift.min(14)),
                (Some(_), Some(_)) => Some(0),
                _ => None,
            }
        };
        let arrow = Arrow {
            packet,
            time: ts.saturating_sub(self.conn.start),
            from,
            flags: seg.flags,
            seq: seg.seq.0.wrapping_sub(base(from).0),
            ack: seg.flags.ack.then(|| seg.ack.0.wrapping_sub(base(to).0)),
            len: data_len,
            window: seg.window,
            scale,
            options: describe_options(seg),
            http: http_first_line(&seg.payload),
            notes,
            client_states: std::mem::take(&mut changes[0]),
            server_states: std::mem::take(&mut changes[1]),
        };
        self.conn.arrows.push(arrow);
        self.conn.last = (self.states[0], self.states[1]);
    }
}

/// The options of a SYN worth printing; nothing for other segments (they only repeat
/// timestamps).
fn describe_options(seg: &Segment) -> Vec<String> {
    let o = &seg.options;
    let mut out = Vec::new();
    if !seg.flags.syn {
        if !o.sack_blocks.is_empty() {
            out.push(format!("{} SACK blocks", o.sack_blocks.len()));
        }
        return out;
    }
    if let Some(mss) = o.mss {
        out.push(format!("mss {mss}"));
    }
    if let Some(ws) = o.window_scale {
        out.push(format!("wscale {ws}"));
    }
    if o.sack_permitted {
        out.push("sackOK".to_string());
    }
    if o.timestamps.is_some() {
        out.push("TS".to_string());
    }
    out
}

/// The first line of an HTTP request or response starting at the beginning of `payload`:
/// `GET /index.html HTTP/1.1` or `HTTP/1.1 200 OK`. Cut to 72 characters.
pub fn http_first_line(payload: &[u8]) -> Option<String> {
    let head = payload.get(..payload.len().min(512))?;
    let end = head.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(head.get(..end)?).ok()?;
    let status = line.as_bytes().get(8..12).unwrap_or_default();
    let is_response = line.starts_with("HTTP/1.")
        && status.first() == Some(&b' ')
        && status.len() == 4
        && status.iter().skip(1).all(|b| b.is_ascii_digit());
    let mut parts = line.split(' ');
    let is_request = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) => {
            !method.is_empty()
                && method.bytes().all(|b| b.is_ascii_uppercase())
                && !target.is_empty()
                && version.starts_with("HTTP/1.")
        }
        _ => false,
    };
    if !(is_response || is_request) || line.chars().any(|c| c.is_control()) {
        return None;
    }
    const MAX: usize = 72;
    Some(if line.chars().count() > MAX {
        let cut: String = line.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    })
}

/// Source, destination, protocol and payload of an IPv4 packet that
/// [`Ipv4Packet::parse`] validated in every respect but its source address.
fn validated_parts(bytes: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, &[u8])> {
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let header_len = usize::from(bytes.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
    let payload = bytes.get(header_len..total)?;
    Some((addr(12)?, addr(16)?, *bytes.get(9)?, payload))
}

/// Builds [`Connection`]s from packets in capture order. Sans-IO: feed packets with their
/// capture time, then [`DiagramBuilder::finish`].
#[derive(Debug, Default)]
pub struct DiagramBuilder {
    trackers: Vec<Tracker>,
    /// (lower address, higher address) → index of the latest connection on that 4-tuple.
    by_tuple: HashMap<(SocketAddr, SocketAddr), usize>,
    skipped: Skipped,
}

impl DiagramBuilder {
    /// An empty builder.
    pub fn new() -> DiagramBuilder {
        DiagramBuilder::default()
    }

    /// Adds one IPv4 or IPv6 packet (any protocol; non-TCP is counted as skipped).
    /// `packet` is its 1-based number in the capture, `ts` its capture time.
    pub fn add_packet(&mut self, packet: usize, ts: Duration, bytes: &[u8]) {
        if bytes.first().map(|b| b >> 4) == Some(6) {
            self.add_ipv6(packet, ts, bytes);
            return;
        }
        let parsed = match Ipv4Packet::parse(bytes) {
            Ok(ip) => Some((ip.src, ip.dst, ip.protocol, ip.payload)),
            // The stack refuses loopback sources (RFC 1122 §3.2.1.3), but a capture on
            // `lo` is full of them. The source check is the parser's last, so everything
            // else was validated: read the fields ourselves.
            Err(Ipv4Error::BadSource { .. }) => validated_parts(bytes),
            Err(e) => {
                log::debug!("diagram: packet {packet}: {e}");
                None
            }
        };
        let Some((src, dst, protocol, payload)) = parsed else {
            self.skipped.bad_ipv4 += 1;
            return;
        };
        if protocol != PROTO_TCP {
            self.skipped.not_tcp += 1;
            return;
        }
        match Segment::parse_lenient(src, dst, payload) {
            Ok((seg, bad)) => {
                let bad_checksum = matches!(bad, Some(SegmentError::BadChecksum { .. }));
                self.add_segment(packet, ts, src, dst, &seg, bad_checksum);
            }
            Err(e) => {
                log::debug!("diagram: packet {packet}: {e}");
                self.skipped.bad_tcp += 1;
            }
        }
    }

    /// TCP over IPv6: the extension headers are skipped ([`crate::trace::ip6::view`]), a
    /// fragment is not drawn (its segment is whole only after reassembly), and the
    /// checksum over the IPv6 pseudo-header is reported, not enforced, as for IPv4.
    fn add_ipv6(&mut self, packet: usize, ts: Duration, bytes: &[u8]) {
        use crate::trace::ip6;
        let v = match ip6::view(bytes) {
            Ok(v) => v,
            Err(e) => {
                log::debug!("diagram: packet {packet}: {e}");
                self.skipped.bad_ipv4 += 1;
                return;
            }
        };
        let tcp = match v.upper {
            ip6::Upper::Whole(crate::ip::ipv6::NEXT_TCP, tcp) => tcp,
            ip6::Upper::Whole(..) => {
                self.skipped.not_tcp += 1;
                return;
            }
            _ => {
                self.skipped.bad_ipv4 += 1;
                return;
            }
        };
        let (src, dst) = (v.packet.src, v.packet.dst);
        let (seg, bad_checksum) = match Segment::parse_lenient(src, dst, tcp) {
            Ok((seg, bad)) => (seg, matches!(bad, Some(SegmentError::BadChecksum { .. }))),
            Err(e) => {
                log::debug!("diagram: packet {packet}: {e}");
                self.skipped.bad_tcp += 1;
                return;
            }
        };
        self.add_segment(packet, ts, src, dst, &seg, bad_checksum);
    }

    /// Adds one parsed segment sent from `src` to `dst` (IPv4 or IPv6 addresses).
    pub fn add_segment(
        &mut self,
        packet: usize,
        ts: Duration,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        seg: &Segment,
        bad_checksum: bool,
    ) {
        let (src, dst) = (src.into(), dst.into());
        let a = SocketAddr::new(src, seg.src_port);
        let b = SocketAddr::new(dst, seg.dst_port);
        let key = if (src, seg.src_port) <= (dst, seg.dst_port) {
            (a, b)
        } else {
            (b, a)
        };
        let opening = seg.flags.syn && !seg.flags.ack;
        let existing = self.by_tuple.get(&key).copied().filter(|&i| {
            let t = &self.trackers[i];
            let from = if t.conn.client == a {
                Side::Client
            } else {
                Side::Server
            };
            !(opening && t.is_new_incarnation(from, seg.seq))
        });
        let index = match existing {
            Some(i) => i,
            None => {
                if self.trackers.len() >= MAX_CONNECTIONS {
                    self.skipped.too_many_connections += 1;
                    return;
                }
                // The SYN sender is the client. Without a SYN, guess: the ephemeral
                // (higher) port is the client's.
                let (client, server) = if opening || seg.src_port > seg.dst_port {
                    (a, b)
                } else {
                    (b, a)
                };
                let number = self.trackers.len() + 1;
                self.trackers
                    .push(Tracker::new(number, ts, client, server, opening));
                self.by_tuple.insert(key, number - 1);
                number - 1
            }
        };
        let Some(tracker) = self.trackers.get_mut(index) else {
            return;
        };
        let from = if tracker.conn.client == a {
            Side::Client
        } else {
            Side::Server
        };
        tracker.add(packet, ts, from, seg, bad_checksum);
    }

    /// The connections reconstructed so far.
    pub fn finish(self) -> Diagram {
        Diagram {
            connections: self.trackers.into_iter().map(|t| t.conn).collect(),
            skipped: self.skipped,
            read_error: None,
        }
    }
}

#[cfg(test)]
mod tests;
