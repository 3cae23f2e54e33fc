//! The host: one IPv4 address, and the demultiplexing from the internet layer up to ICMP
//! and TCP. Sans-IO like the layers it joins: bytes and `now` in, packets out.
//!
//! ```text
//!  handle_packet(bytes)                          poll_transmit() -> bytes
//!        │                                              ▲
//!   ip::ipv4::Ipv4Packet::parse ── drop + count ──▶ stats │
//!        │ dst == our address?                          │ ip::ipv4::emit
//!        ├─ protocol 1  ─▶ ip::icmp::handle ─ reply ────▶│ (queued)
//!        ├─ protocol 6  ─▶ tcp::Segment::parse ─▶ tcp::Tcp::on_segment
//!        │                                   tcp::Tcp::poll_transmit ─▶│
//!        └─ other       ─▶ ICMP protocol unreachable ───▶│ (RFC 1122 §3.2.2.1)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use crate::ip::{icmp, ipv4};
use crate::tcp::{self, Segment, Tcp};
use crate::time::Instant;

/// Default TTL for packets we originate (RFC 1700's recommendation, as Linux).
pub const DEFAULT_TTL: u8 = 64;

/// At most this many ICMP/IP-level replies wait in the queue; beyond it new ones are
/// dropped, so a flood of pings cannot grow memory without bound (DESIGN §7).
const MAX_PENDING: usize = 1024;

/// Counters of the internet layer and the host's demultiplexing.
#[derive(Debug, Clone, Default)]
pub struct IfaceStats {
    /// IP packets handed to [`Interface::handle_packet`].
    pub packets_in: u64,
    /// IP packets produced by [`Interface::poll_transmit`].
    pub packets_out: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// Dropped input by reason (`"bad-checksum"`, `"not-for-us"`, …).
    pub drops: BTreeMap<&'static str, u64>,
}

impl IfaceStats {
    fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_insert(0) += 1;
    }

    /// Total dropped input packets.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// A sans-IO IPv4 host: our address, the TCP endpoint, and the queue of packets to send.
pub struct Interface {
    addr: Ipv4Addr,
    tcp: Tcp,
    pending: VecDeque<Vec<u8>>,
    next_ip_id: u16,
    stats: IfaceStats,
}

impl Interface {
    /// A host answering as `addr`, with a TCP endpoint built from `config`; `seed` feeds the
    /// endpoint's random numbers (ISN secret, ephemeral ports).
    pub fn new(addr: Ipv4Addr, config: tcp::Config, seed: u64) -> Interface {
        Interface {
            addr,
            tcp: Tcp::new(config, seed),
            pending: VecDeque::new(),
            next_ip_id: (seed as u16) | 1,
            stats: IfaceStats::default(),
        }
    }

    /// Our IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The transport layer.
    pub fn tcp(&self) -> &Tcp {
        &self.tcp
    }

    /// The transport layer, for application calls (listen, connect, send, recv, …).
    pub fn tcp_mut(&mut self) -> &mut Tcp {
        &mut self.tcp
    }

    /// Internet-layer counters.
    pub fn stats(&self) -> &IfaceStats {
        &self.stats
    }

    /// One IPv4 packet arrived from the link. Malformed or foreign packets are counted and
    /// dropped; nothing here can panic on any input.
    pub fn handle_packet(&mut self, bytes: &[u8], now: Instant) {
        self.stats.packets_in += 1;
        let packet = match ipv4::Ipv4Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("ip: dropped {} byte packet: {e}", bytes.len());
                self.stats.drop(e.reason());
                return;
            }
        };
        // RFC 1122 §3.2.1.3: a host silently discards datagrams not addressed to it. In TUN
        // mode the kernel routes to us only what it means for us, so this is rare.
        if packet.dst != self.addr {
            log::debug!(
                "ip: dropped packet for {} (we are {})",
                packet.dst,
                self.addr
            );
            self.stats.drop("not-for-us");
            return;
        }
        match packet.protocol {
            ipv4::PROTO_ICMP => self.handle_icmp(&packet),
            ipv4::PROTO_TCP => match Segment::parse(packet.src, packet.dst, packet.payload) {
                Ok(segment) => self.tcp.on_segment(packet.src, packet.dst, &segment, now),
                Err(e) => {
                    log::debug!("tcp: dropped segment from {}: {e}", packet.src);
                    self.stats.drop("tcp-malformed");
                }
            },
            other => {
                // RFC 1122 §3.2.2.1: a host SHOULD send Protocol Unreachable (code 2) for a
                // transport protocol it does not implement.
                log::debug!("ip: protocol {other} from {} unreachable", packet.src);
                self.stats.drop("protocol-unreachable");
                if icmp::may_send_error_for(&packet) {
                    let message =
                        icmp::dest_unreachable(icmp::CODE_PROTOCOL_UNREACHABLE, packet.bytes);
                    self.queue(packet.src, ipv4::PROTO_ICMP, &message);
                }
            }
        }
    }

    fn handle_icmp(&mut self, packet: &ipv4::Ipv4Packet<'_>) {
        match icmp::handle(packet.payload) {
            Ok(Some(reply)) => {
                self.stats.echo_replies += 1;
                log::trace!("icmp: echo reply to {}", packet.src);
                self.queue(packet.src, ipv4::PROTO_ICMP, &reply);
            }
            Ok(None) => log::trace!("icmp: ignored message from {}", packet.src),
            Err(e) => {
                log::debug!("icmp: dropped message from {}: {e}", packet.src);
                self.stats.drop(e.reason());
            }
        }
    }

    fn queue(&mut self, dst: Ipv4Addr, protocol: u8, payload: &[u8]) {
        if self.pending.len() >= MAX_PENDING {
            self.stats.drop("reply-queue-full");
            return;
        }
        let packet = self.emit(dst, protocol, payload);
        self.pending.push_back(packet);
    }

    fn emit(&mut self, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let id = self.next_ip_id;
        self.next_ip_id = self.next_ip_id.wrapping_add(1);
        ipv4::emit(self.addr, dst, protocol, DEFAULT_TTL, id, payload)
    }

    /// The next IPv4 packet to put on the link, if any. Drain until `None` after every
    /// batch of input, application calls and timeouts.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let packet = match self.pending.pop_front() {
            Some(p) => p,
            None => {
                let t = self.tcp.poll_transmit(now)?;
                let bytes = t.segment.emit(t.src, t.dst);
                let id = self.next_ip_id;
                self.next_ip_id = self.next_ip_id.wrapping_add(1);
                ipv4::emit(t.src, t.dst, ipv4::PROTO_TCP, DEFAULT_TTL, id, &bytes)
            }
        };
        self.stats.packets_out += 1;
        Some(packet)
    }

    /// Like [`Interface::poll_transmit`], but writes the packet into `out` (cleared first)
    /// so that the caller can reuse one buffer per packet in flight instead of allocating
    /// one: false when there is nothing to send.
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self.pending.pop_front() {
            Some(p) => out.extend_from_slice(&p),
            None => {
                let Some(t) = self.tcp.poll_transmit(now) else {
                    return false;
                };
                let bytes = t.segment.emit(t.src, t.dst);
                let id = self.next_ip_id;
                self.next_ip_id = self.next_ip_id.wrapping_add(1);
                let len = bytes.len().min(ipv4::MAX_PAYLOAD_LEN);
                ipv4::emit_into(out, t.src, t.dst, ipv4::PROTO_TCP, DEFAULT_TTL, id, len);
                out.extend_from_slice(&bytes[..len]);
            }
        }
        self.stats.packets_out += 1;
        true
    }

    /// When [`Interface::handle_timeout`] next needs to run.
    pub fn poll_at(&self) -> Option<Instant> {
        self.tcp.poll_at()
    }

    /// Fire the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tcp.handle_timeout(now);
    }
}
