//! The host: one IPv4 address and optionally one IPv6 address, and the demultiplexing
//! from the internet layer up to ICMP, ICMPv6, TCP and UDP. Sans-IO like the layers it
//! joins: bytes and `now` in, packets out.
//!
//! ```text
//!  handle_packet(_meta)(bytes)      poll_transmit() -> bytes / poll_transmit_into(buf)
//!        │                                              ▲
//!   ip::ipv4::Ipv4Packet::parse_with_fragments ─ drop ─▶ stats
//!        │ dst == our address?                          │ ip::ipv4::emit(_fragments)
//!        │ a fragment? ─▶ ip::frag::Reassembler ─ whole datagram ─┐  (MTU)
//!        ├─ protocol 1  ─▶ ip::icmp::handle ─ reply ────▶│ (queued)
//!        │                 ip::icmp::parse_error ─▶ tcp::Tcp::on_icmp_error
//!        ├─ protocol 6  ─▶ tcp::Segment::parse ─▶ tcp::Tcp::on_segment
//!        │                                   tcp::Tcp::poll_transmit ─▶│
//!        ├─ protocol 17 ─▶ udp::Datagram::parse ─▶ udp::Udp::on_datagram
//!        │     no socket ─▶ ICMP port unreachable ─▶│  udp::Udp::poll_transmit ─▶│
//!        └─ other       ─▶ ICMP protocol unreachable ───▶│ (RFC 1122 §3.2.2.1)
//!
//!  version 6: dst == our IPv6 address?
//!   ip::frag6::Ipv6Input (extension headers, reassembly; ICMPv6 errors) ─▶│
//!        ├─ 58 ICMPv6 ─▶ echo reply ─▶│   errors ─▶ tcp::Tcp::on_icmp6_error
//!        ├─ 6  TCP    ─▶ tcp::Segment::parse ─▶ tcp::Tcp::on_segment
//!        ├─ 17 UDP    ─▶ udp::Udp::on_datagram; no socket ─▶ port unreachable ─▶│
//!        └─ other     ─▶ parameter problem, unrecognized next header ─▶│
//!  TCP and UDP of an IPv6 peer leave as IPv6 (hop limit 64): ip::ipv6::write_header
//! ```
//!
//! Device offloads ([`crate::link::offload`]): a received packet may come with an
//! [`RxMeta`] (checksum already trusted, a coalesced super-segment of up to 64 KiB), and
//! with [`Interface::set_tso`] (IPv4) and [`Interface::set_tso6`] (IPv6) TCP data may
//! leave as a super-segment whose [`TxMeta`] asks the device to cut it into MSS-sized
//! packets and finish the checksum.
//!
//! Reassembly timeouts are timers like TCP's: [`Interface::poll_at`] includes them and
//! [`Interface::handle_timeout`] answers a timed-out datagram whose first fragment arrived
//! with ICMP Time Exceeded, code 1 (RFC 792, RFC 1122 §3.3.2).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ip::frag::{FragConfig, FragResult, FragStats, Reassembler};
use crate::ip::frag6::{self, Ipv6Input, Verdict};
use crate::ip::{icmp, icmpv6, ipv4, ipv6};
use crate::link::offload::{RxMeta, TxMeta, MAX_SUPER_PACKET, MAX_SUPER_PACKET6};
use crate::tcp::{self, Segment, Tcp};
use crate::time::Instant;
use crate::udp::{self, Datagram, Udp};

/// Default TTL for packets we originate (RFC 1700's recommendation, as Linux).
pub const DEFAULT_TTL: u8 = 64;

/// The link MTU assumed until [`Interface::set_mtu`] (Ethernet's).
pub const DEFAULT_MTU: usize = 1500;

/// At most this many ICMP/IP-level replies wait in the queue; beyond it new ones are
/// dropped, so a flood of pings cannot grow memory without bound (docs/architecture.md, principle 7).
const MAX_PENDING: usize = 1024;

/// The IP id of a SYN, SYN-ACK or RST: atomic datagrams (DF set, never fragmented), whose
/// id RFC 6864 §4.1 leaves free, sent before a connection exists or when there is none.
/// Linux sends them with id 0 (`ip_select_ident_segs`: DF and no connected socket), so
/// does this host: a prober's SYNs, open or closed port, learn nothing from the ids of
/// the answers (nmap's `ipidseq` says "All zeros"), and no counter moves for them.
const CONNECTIONLESS_IP_ID: u16 = 0;

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
    /// Fragment reassembly counters.
    pub frag: FragStats,
    /// Received packets the device marked as coalesced super-segments (GRO,
    /// [`RxMeta::gso_size`] non-zero).
    pub super_packets_in: u64,
    /// Sent packets that were TCP super-segments for the device to cut (TSO,
    /// [`TxMeta::gso_size`] non-zero); `packets_out` counts each once.
    pub super_packets_out: u64,
    /// Outgoing datagrams that had to be fragmented (RFC 791 §3.2).
    pub datagrams_fragmented: u64,
    /// ICMP Time Exceeded (reassembly) messages sent.
    pub time_exceeded_sent: u64,
    /// ICMP error messages received, by what the transport layer did with them
    /// (`"icmp-soft-error"`, `"icmp-out-of-window"`, …; RFC 5927).
    pub icmp_errors: BTreeMap<&'static str, u64>,
    /// ICMP error messages not sent because the host-wide bucket was empty
    /// ([`icmp::RateLimited::Global`]).
    pub icmp_rate_limited_global: u64,
    /// ICMP error messages not sent because their destination's bucket was empty
    /// ([`icmp::RateLimited::Host`]).
    pub icmp_rate_limited_host: u64,
    /// Of `packets_in`, the IPv6 ones.
    pub ipv6_in: u64,
    /// Of `packets_out`, the IPv6 ones.
    pub ipv6_out: u64,
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
    udp: Udp,
    /// Our IPv6 address, if any.
    addr6: Option<Ipv6Addr>,
    /// The IPv6 receive path (extension headers, reassembly, the ICMPv6 errors they call
    /// for), present with an IPv6 address.
    input6: Option<Ipv6Input>,
    /// The identification of the last IPv6 datagram we fragmented (RFC 8200 §4.5).
    frag6_id: u32,
    pending: VecDeque<Vec<u8>>,
    /// Identification fields: per destination, keyed (RFC 6864, RFC 7739).
    ip_ids: ipv4::IdGenerator,
    /// Token buckets for the ICMP errors we send (RFC 1812 §4.3.2.8).
    icmp_limit: icmp::ErrorRateLimiter,
    /// The same limits for ICMPv6 errors (RFC 4443 §2.4(f)), kept by [`Ipv6Input`].
    icmp6_limit: icmp::RateLimitConfig,
    stats: IfaceStats,
    frag: Reassembler,
    mtu: usize,
    /// The segment every received TCP packet is parsed into (its payload vector reused).
    rx_segment: Segment,
}

impl Interface {
    /// A host answering as `addr`, with a TCP endpoint built from `config`; `seed` feeds the
    /// endpoint's random numbers (ISN secret, ephemeral ports).
    pub fn new(addr: Ipv4Addr, config: tcp::Config, seed: u64) -> Interface {
        Interface {
            addr,
            tcp: Tcp::new(config, seed),
            udp: Udp::new(udp::UdpConfig::default(), seed),
            addr6: None,
            input6: None,
            // Not predictable from one host to the next (RFC 7739 §5).
            frag6_id: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) as u32,
            pending: VecDeque::new(),
            ip_ids: ipv4::IdGenerator::new(seed),
            icmp_limit: icmp::ErrorRateLimiter::new(icmp::RateLimitConfig::default()),
            icmp6_limit: icmp::RateLimitConfig::default(),
            stats: IfaceStats::default(),
            frag: Reassembler::new(FragConfig::default()),
            mtu: DEFAULT_MTU,
            rx_segment: Segment::default(),
        }
    }

    /// Sets the link MTU: ICMP (and other IP-level) datagrams larger than this are sent as
    /// fragments. TCP sizes its segments to the MSS instead and keeps DF (RFC 1191).
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Replaces the limits on the ICMP errors this host sends (the defaults are Linux's:
    /// [`icmp::RateLimitConfig::default`]); the buckets start full.
    pub fn set_icmp_rate_limit(&mut self, config: icmp::RateLimitConfig) {
        self.icmp_limit = icmp::ErrorRateLimiter::new(config);
        self.icmp6_limit = config;
        self.set_ipv6(self.addr6);
    }

    /// Replaces the reassembler's limits (datagrams in progress are forgotten).
    pub fn set_frag_config(&mut self, config: FragConfig) {
        self.frag = Reassembler::new(config);
    }

    /// Our IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Also be `addr` on IPv6: ICMPv6 (echo, errors), TCP and UDP (`None`: IPv4 only).
    /// Reassemblies in progress are forgotten.
    pub fn set_ipv6(&mut self, addr: Option<Ipv6Addr>) {
        self.addr6 = addr;
        self.input6 = addr.map(|a| Ipv6Input::new(a, frag6::default_config(), self.icmp6_limit));
    }

    /// Our IPv6 address, if set.
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        self.addr6
    }

    /// Our address of `peer`'s family, the source of what we send it: the IPv6 address,
    /// or the unspecified one when we have none (a connection from it is refused:
    /// address not available).
    pub fn source_for(&self, peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V4(_) => IpAddr::V4(self.addr),
            IpAddr::V6(_) => IpAddr::V6(self.addr6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        }
    }

    /// The transport layer.
    pub fn tcp(&self) -> &Tcp {
        &self.tcp
    }

    /// The transport layer, for application calls (listen, connect, send, recv, …).
    pub fn tcp_mut(&mut self) -> &mut Tcp {
        &mut self.tcp
    }

    /// The UDP endpoint.
    pub fn udp(&self) -> &Udp {
        &self.udp
    }

    /// The UDP endpoint, for application calls (bind, send_to, recv_from).
    pub fn udp_mut(&mut self) -> &mut Udp {
        &mut self.udp
    }

    /// Whether anything socket-visible changed in either transport since the last call.
    pub fn take_events(&mut self) -> bool {
        let tcp = self.tcp.take_events();
        let udp = self.udp.take_events();
        tcp || udp
    }

    /// Internet-layer counters.
    pub fn stats(&self) -> &IfaceStats {
        &self.stats
    }

    /// One IPv4 packet arrived from the link. Malformed or foreign packets are counted and
    /// dropped; nothing here can panic on any input. The same as
    /// [`Interface::handle_packet_meta`] with a default [`RxMeta`] (checksums verified).
    pub fn handle_packet(&mut self, bytes: &[u8], now: Instant) {
        self.handle_packet_meta(bytes, RxMeta::default(), now);
    }

    /// One IPv4 packet arrived from a device that describes it with `meta`.
    ///
    /// With [`RxMeta::csum_trusted`] the TCP and UDP checksums are not verified: the kernel
    /// either checked them or left them partial because the packet never crossed a wire
    /// (`VIRTIO_NET_HDR_F_DATA_VALID` / `F_NEEDS_CSUM`). The IPv4 *header* checksum is
    /// still verified: the kernel builds or fixes it up for coalesced packets too
    /// (`ip_send_check` on the local output path, `inet_gro_complete` rewriting
    /// `tot_len` with `csum_replace2`), and it costs 20 bytes, not 64 KiB.
    ///
    /// A coalesced super-segment ([`RxMeta::gso_size`] non-zero) is an IPv4 packet of up
    /// to 65535 bytes whatever the MTU; TCP takes it as one segment (RFC 9293 §3.10.7.4
    /// trims it to the receive window like any other).
    pub fn handle_packet_meta(&mut self, bytes: &[u8], meta: RxMeta, now: Instant) {
        self.stats.packets_in += 1;
        if meta.gso_size != 0 {
            self.stats.super_packets_in += 1;
        }
        // The version nibble picks the internet protocol (a TUN carries both).
        if bytes.first().map(|b| b >> 4) == Some(6) {
            self.stats.ipv6_in += 1;
            self.handle_ipv6(bytes, meta, now);
            return;
        }
        let packet = match ipv4::Ipv4Packet::parse_with_fragments(bytes) {
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
        // A datagram "from" our own address never comes from the link: it is forged (the
        // LAND attack: a SYN from ourselves to ourselves) and any answer would go back to
        // us. RFC 1122 §3.2.1.3 has a host discard sources that cannot be a peer; Linux
        // drops these as martians.
        if packet.src == self.addr {
            log::debug!("ip: dropped packet from our own address {}", packet.src);
            self.stats.drop("land");
            return;
        }
        if packet.is_fragment() {
            // RFC 791 §3.2: hold the fragment until its datagram is whole.
            self.expire_fragments(now);
            let result = self.frag.insert(&packet, now);
            self.stats.frag = self.frag.stats().clone();
            match result {
                // A reassembled datagram is ours to check: the device vouched for none of
                // the fragments as a whole.
                FragResult::Complete(whole) => match ipv4::Ipv4Packet::parse(&whole) {
                    Ok(datagram) => self.deliver(&datagram, RxMeta::default(), now),
                    Err(e) => self.stats.drop(e.reason()),
                },
                FragResult::Pending => {}
                FragResult::Dropped(reason) => self.stats.drop(reason),
            }
            return;
        }
        self.deliver(&packet, meta, now);
    }

    /// A whole datagram for us: hand it to its protocol.
    fn deliver(&mut self, packet: &ipv4::Ipv4Packet<'_>, meta: RxMeta, now: Instant) {
        match packet.protocol {
            ipv4::PROTO_ICMP => self.handle_icmp(packet, now),
            ipv4::PROTO_TCP => {
                // Parsed into the reused scratch segment: no allocation per segment.
                let mut segment = std::mem::take(&mut self.rx_segment);
                match segment.parse_into(packet.src, packet.dst, packet.payload, meta.csum_trusted)
                {
                    Ok(()) => self.tcp.on_segment(packet.src, packet.dst, &segment, now),
                    Err(e) => {
                        log::debug!("tcp: dropped segment from {}: {e}", packet.src);
                        self.stats.drop("tcp-malformed");
                    }
                }
                self.rx_segment = segment;
            }
            ipv4::PROTO_UDP => self.handle_udp(packet, meta, now),
            other => {
                // RFC 1122 §3.2.2.1: a host SHOULD send Protocol Unreachable (code 2) for a
                // transport protocol it does not implement.
                log::debug!("ip: protocol {other} from {} unreachable", packet.src);
                self.stats.drop("protocol-unreachable");
                if icmp::may_send_error_for(packet) && self.error_allowed(packet.src, now) {
                    let message =
                        icmp::dest_unreachable(icmp::CODE_PROTOCOL_UNREACHABLE, packet.bytes);
                    self.queue(packet.src, ipv4::PROTO_ICMP, &message);
                }
            }
        }
    }

    /// An IPv6 packet: RFC 8200 §4 (extension headers walked, fragments reassembled by
    /// [`Ipv6Input`], which also answers what it cannot process with ICMPv6 errors), then
    /// the upper layer named at the end of the chain.
    fn handle_ipv6(&mut self, bytes: &[u8], meta: RxMeta, now: Instant) {
        // Without an IPv6 address every IPv6 packet is foreign; the kernel also sends
        // multicast (MLD, router solicitations) we do not join.
        let dst = bytes
            .get(24..40)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from);
        let (Some(us), Some(input)) = (self.addr6, self.input6.as_mut()) else {
            self.stats.drop("ipv6-not-for-us");
            return;
        };
        // (Too short to name a destination: `Ipv6Input` counts why.)
        if dst.is_some_and(|d| d != us) {
            log::debug!("ipv6: dropped packet for {dst:?} (we are {us})");
            self.stats.drop("ipv6-not-for-us");
            return;
        }
        let received = input.receive(bytes, now);
        if let Some(error) = received.send {
            self.push_pending(error);
        }
        let d = match received.verdict {
            Verdict::Deliver(d) => d,
            Verdict::Pending => return,
            Verdict::Dropped(reason) => {
                self.stats.drop(reason);
                return;
            }
        };
        if d.src == us {
            // As for IPv4: a packet "from" us never comes from the link (LAND).
            log::debug!("ipv6: dropped packet from our own address {}", d.src);
            self.stats.drop("land");
            return;
        }
        // The device vouched for the checksum of the packet it handed up, not for one we
        // put together from fragments.
        let trusted = meta.csum_trusted && matches!(d.bytes, std::borrow::Cow::Borrowed(_));
        match d.protocol {
            ipv6::NEXT_TCP => {
                let mut segment = std::mem::take(&mut self.rx_segment);
                match segment.parse_into(d.src, d.dst, d.payload(), trusted) {
                    Ok(()) => self.tcp.on_segment(d.src, d.dst, &segment, now),
                    Err(e) => {
                        log::debug!("tcp: dropped segment from {}: {e}", d.src);
                        self.stats.drop("tcp-malformed");
                    }
                }
                self.rx_segment = segment;
            }
            ipv6::NEXT_UDP => {
                let parsed = if trusted {
                    Datagram::parse_trusted(d.src, d.dst, d.payload())
                } else {
                    Datagram::parse(d.src, d.dst, d.payload())
                };
                match parsed {
                    Ok(datagram) => {
                        if self.udp.on_datagram(d.src, d.dst, &datagram) == udp::Delivery::NoSocket
                        {
                            // RFC 4443 §3.1: port unreachable (code 4), rate-limited
                            // (§2.4(f)), never about a multicast packet (§2.4(e)).
                            if let Some(input) = self.input6.as_mut() {
                                if let Some(error) = input.port_unreachable(&d.bytes, now) {
                                    self.push_pending(error);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        log::debug!("udp: dropped datagram from {}: {e}", d.src);
                        self.udp.count_drop(e.reason());
                        self.stats.drop("udp-malformed");
                    }
                }
            }
            ipv6::NEXT_ICMPV6 => self.handle_icmpv6(d.src, d.dst, d.payload(), now),
            other => {
                // RFC 8200 §4: an unrecognized Next Header is answered with parameter
                // problem code 1, pointing at the field that named it.
                log::debug!("ipv6: next header {other} from {} unrecognized", d.src);
                self.stats.drop("ipv6-next-header-unrecognized");
                let reply = ipv6::ErrorReply::parameter_problem(
                    icmpv6::CODE_UNRECOGNIZED_NEXT_HEADER,
                    d.next_header_at,
                );
                if let Some(input) = self.input6.as_mut() {
                    if let Some(error) = input.error_for(reply, &d.bytes, now) {
                        self.push_pending(error);
                    }
                }
            }
        }
    }

    /// An ICMPv6 message for us: echo answered, errors about our TCP segments passed to
    /// TCP (RFC 4443 §3, RFC 5927, RFC 8201).
    fn handle_icmpv6(&mut self, src: Ipv6Addr, dst: Ipv6Addr, message: &[u8], now: Instant) {
        match icmpv6::handle(src, dst, message) {
            Ok(Some(reply)) => {
                self.stats.echo_replies += 1;
                let out = ipv6::emit(dst, src, ipv6::NEXT_ICMPV6, ipv6::DEFAULT_HOP_LIMIT, &reply);
                self.push_pending(out);
            }
            Ok(None) => match icmpv6::parse_error(message) {
                Some(err)
                    if err.about.protocol == Some(ipv6::NEXT_TCP)
                        && Some(err.about.src) == self.addr6 =>
                {
                    let action = self.tcp.on_icmp6_error(src, &err.about, err.kind, now);
                    *self.stats.icmp_errors.entry(action.reason()).or_insert(0) += 1;
                }
                Some(err) => {
                    log::debug!("icmpv6: {:?} from {src} about no TCP of ours", err.kind);
                    *self.stats.icmp_errors.entry("icmp-not-ours").or_insert(0) += 1;
                }
                // Neighbour discovery and the rest: the Ethernet layer's, or nobody's.
                None => log::trace!("icmpv6: ignored message from {src}"),
            },
            Err(e) => {
                log::debug!("icmpv6: dropped message from {src}: {e}");
                self.stats.drop("icmpv6-malformed");
            }
        }
    }

    /// Queue a whole packet of ours (an ICMPv6 reply or error), within the queue's bound.
    fn push_pending(&mut self, packet: Vec<u8>) {
        if self.pending.len() >= MAX_PENDING {
            self.stats.drop("reply-queue-full");
            return;
        }
        self.pending.push_back(packet);
    }

    fn handle_udp(&mut self, packet: &ipv4::Ipv4Packet<'_>, meta: RxMeta, now: Instant) {
        let parsed = if meta.csum_trusted {
            Datagram::parse_trusted(packet.src, packet.dst, packet.payload)
        } else {
            Datagram::parse(packet.src, packet.dst, packet.payload)
        };
        let datagram = match parsed {
            Ok(d) => d,
            Err(e) => {
                log::debug!("udp: dropped datagram from {}: {e}", packet.src);
                self.udp.count_drop(e.reason());
                self.stats.drop("udp-malformed");
                return;
            }
        };
        if self.udp.on_datagram(packet.src, packet.dst, &datagram) == udp::Delivery::NoSocket {
            // RFC 1122 §4.1.3.1: "If a datagram arrives addressed to a UDP port for which
            // there is no pending LISTEN call, UDP SHOULD send an ICMP Port Unreachable
            // message" — subject to the §3.2.2 rules (never for broadcasts, …).
            if icmp::may_send_error_for(packet) && self.error_allowed(packet.src, now) {
                let message = icmp::dest_unreachable(icmp::CODE_PORT_UNREACHABLE, packet.bytes);
                self.queue(packet.src, ipv4::PROTO_ICMP, &message);
            }
        }
    }

    fn handle_icmp(&mut self, packet: &ipv4::Ipv4Packet<'_>, now: Instant) {
        match icmp::handle(packet.payload) {
            Ok(Some(reply)) => {
                self.stats.echo_replies += 1;
                log::trace!("icmp: echo reply to {}", packet.src);
                self.queue(packet.src, ipv4::PROTO_ICMP, &reply);
            }
            Ok(None) => match icmp::parse_error(packet.payload) {
                // RFC 1122 §3.2.2: an ICMP error is passed to the transport protocol named
                // in the quoted header. Only TCP is ours; the quote must name us as source.
                Some(err)
                    if err.quoted.get(9) == Some(&ipv4::PROTO_TCP)
                        && err.quoted.get(12..16) == Some(&self.addr.octets()[..]) =>
                {
                    let action = self
                        .tcp
                        .on_icmp_error(packet.src, err.quoted, err.kind, now);
                    *self.stats.icmp_errors.entry(action.reason()).or_insert(0) += 1;
                }
                Some(err) => {
                    log::debug!(
                        "icmp: {:?} from {} about no TCP of ours",
                        err.kind,
                        packet.src
                    );
                    *self.stats.icmp_errors.entry("icmp-not-ours").or_insert(0) += 1;
                }
                None => log::trace!("icmp: ignored message from {}", packet.src),
            },
            Err(e) => {
                log::debug!("icmp: dropped message from {}: {e}", packet.src);
                self.stats.drop(e.reason());
            }
        }
    }

    /// Whether an ICMP error to `dst` may be sent now (the rate limits), counted if not.
    /// Echo replies are not limited, as in Linux (`icmp_ratemask` covers only errors);
    /// the reply queue's bound is what holds a ping flood.
    fn error_allowed(&mut self, dst: Ipv4Addr, now: Instant) -> bool {
        match self.icmp_limit.allow(dst, now) {
            Ok(()) => true,
            Err(why) => {
                log::trace!("icmp: error to {dst} rate-limited ({why:?})");
                match why {
                    icmp::RateLimited::Global => self.stats.icmp_rate_limited_global += 1,
                    icmp::RateLimited::Host => self.stats.icmp_rate_limited_host += 1,
                }
                false
            }
        }
    }

    fn queue(&mut self, dst: Ipv4Addr, protocol: u8, payload: &[u8]) {
        if self.pending.len() >= MAX_PENDING {
            self.stats.drop("reply-queue-full");
            return;
        }
        let id = self.ip_ids.next(self.addr, dst, protocol, 1);
        // RFC 791 §3.2: a datagram larger than the MTU leaves as fragments (a 4000-byte ping
        // is answered with a 4000-byte reply).
        let packets =
            ipv4::emit_fragments(self.addr, dst, protocol, DEFAULT_TTL, id, payload, self.mtu);
        if packets.len() > 1 {
            self.stats.datagrams_fragmented += 1;
        }
        self.pending.extend(packets);
    }

    /// Drop the datagrams whose reassembly timed out; RFC 792 / RFC 1122 §3.3.2: tell the
    /// sender with Time Exceeded code 1 when the first fragment arrived (only then can the
    /// message quote the header and 8 bytes that let the sender match it).
    fn expire_fragments(&mut self, now: Instant) {
        if self.frag.poll_at().is_none_or(|at| at > now) {
            return;
        }
        for gone in self.frag.expire(now) {
            let Some(quote) = gone.quote else { continue };
            let header_len = quote.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
            let original = ipv4::Ipv4Packet {
                src: gone.src,
                dst: self.addr,
                protocol: quote.get(9).copied().unwrap_or(0),
                ttl: 1,
                id: 0,
                header_len,
                payload: quote.get(header_len..).unwrap_or_default(),
                bytes: &quote,
            };
            if icmp::may_send_error_for(&original) && self.error_allowed(gone.src, now) {
                let message = icmp::time_exceeded(icmp::CODE_REASSEMBLY_TIME_EXCEEDED, &quote);
                self.stats.time_exceeded_sent += 1;
                self.queue(gone.src, ipv4::PROTO_ICMP, &message);
            }
        }
        self.stats.frag = self.frag.stats().clone();
    }

    /// The next IPv4 packet to put on the link, if any. Drain until `None` after every
    /// batch of input, application calls and timeouts.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let packet = match self.pending.pop_front() {
            Some(p) => p,
            None if self.udp.has_transmit() => {
                let t = self.udp.poll_transmit()?;
                let src = match t.src.ip() {
                    ip if ip.is_unspecified() => self.source_for(t.dst.ip()),
                    ip => ip,
                };
                let bytes =
                    udp::datagram::emit(src, t.dst.ip(), t.src.port(), t.dst.port(), &t.payload);
                match (src, t.dst.ip()) {
                    (IpAddr::V4(src), IpAddr::V4(dst)) => {
                        let id = self.ip_ids.next(src, dst, ipv4::PROTO_UDP, 1);
                        ipv4::emit(src, dst, ipv4::PROTO_UDP, DEFAULT_TTL, id, &bytes)
                    }
                    (IpAddr::V6(src), IpAddr::V6(dst)) if !src.is_unspecified() => {
                        // RFC 8200 §4.5: only the source fragments; a datagram larger than
                        // the link MTU leaves as fragments (the rest queued right behind).
                        self.frag6_id = self.frag6_id.wrapping_add(1);
                        let mut pieces = ipv6::emit_fragments(
                            src,
                            dst,
                            ipv6::NEXT_UDP,
                            ipv6::DEFAULT_HOP_LIMIT,
                            self.frag6_id,
                            &bytes,
                            self.mtu,
                        )
                        .into_iter();
                        let first = pieces.next()?;
                        if pieces.len() > 0 {
                            self.stats.datagrams_fragmented += 1;
                        }
                        for (i, p) in pieces.enumerate() {
                            self.pending.insert(i, p);
                        }
                        first
                    }
                    _ => {
                        // No address of the peer's family (no IPv6 address set).
                        log::debug!("udp: no source address for {}", t.dst);
                        self.stats.drop("no-source-address");
                        return self.poll_transmit(now);
                    }
                }
            }
            None => {
                let t = self.tcp.poll_transmit(now)?;
                let bytes = t.segment.emit(t.src, t.dst);
                match (t.src, t.dst) {
                    (IpAddr::V4(src), IpAddr::V4(dst)) => {
                        let flags = t.segment.flags;
                        let id = if flags.syn || flags.rst {
                            CONNECTIONLESS_IP_ID
                        } else {
                            self.ip_ids.next(src, dst, ipv4::PROTO_TCP, 1)
                        };
                        ipv4::emit(src, dst, ipv4::PROTO_TCP, DEFAULT_TTL, id, &bytes)
                    }
                    (src, dst) => ipv6::emit(
                        crate::ip::as_v6(src),
                        crate::ip::as_v6(dst),
                        ipv6::NEXT_TCP,
                        ipv6::DEFAULT_HOP_LIMIT,
                        &bytes,
                    ),
                }
            }
        };
        self.stats.packets_out += 1;
        if packet.first().map(|b| b >> 4) == Some(6) {
            self.stats.ipv6_out += 1;
        }
        Some(packet)
    }

    /// Like [`Interface::poll_transmit`], but writes the packet into `out` (cleared first)
    /// so that the caller can reuse one buffer per packet in flight instead of allocating
    /// one: `None` when there is nothing to send, otherwise what the device must know to
    /// send it ([`TxMeta::default`] for an ordinary packet).
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<TxMeta> {
        let (meta, [a, b]) = self.poll_transmit_gather(now, out)?;
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        Some(meta)
    }

    /// Like [`Interface::poll_transmit_into`], but a TCP segment whose checksum the device
    /// completes ([`TxMeta::csum_partial`]) leaves its payload in the send buffer: `out`
    /// gets the IP and TCP headers, and the packet is `out` followed by the two returned
    /// pieces, for a device that gathers it in one `writev`. That saves copying every
    /// byte sent once more. The pieces are empty for any other packet.
    pub fn poll_transmit_gather<'a>(
        &'a mut self,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<(TxMeta, [&'a [u8]; 2])> {
        out.clear();
        if !self.pending.is_empty() || self.udp.has_transmit() {
            // The rare paths (ICMP replies, UDP) are built as packets of their own.
            let p = self.poll_transmit(now)?;
            out.extend_from_slice(&p);
            return Some((TxMeta::default(), [&[], &[]]));
        }
        // TCP, the data path: the segment is written right after room for the IP header
        // (20 bytes for IPv4, 40 for IPv6), its payload copied straight from the send
        // buffer (or left there); the IP header goes in last, when the length is known.
        let room = [ipv4::MIN_HEADER_LEN, ipv6::HEADER_LEN];
        let Some((t, parts)) = self.tcp.poll_transmit_gather_after(now, out, room) else {
            out.clear();
            return None;
        };
        let (src, dst) = match (t.src, t.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => (src, dst),
            (src, dst) => {
                // IPv6: no identification field. A super-segment (with `set_tso6`) has
                // its payload length cover the whole of it, at most 65535 (TCP caps it at
                // MAX_SUPER_SEGMENT6); the device writes each piece's (RFC 8200 §3).
                let tcp_len = out.len() - ipv6::HEADER_LEN + parts[0].len() + parts[1].len();
                let (src, dst) = (crate::ip::as_v6(src), crate::ip::as_v6(dst));
                let hop = ipv6::DEFAULT_HOP_LIMIT;
                ipv6::write_header(out, src, dst, ipv6::NEXT_TCP, hop, tcp_len);
                self.stats.packets_out += 1;
                self.stats.ipv6_out += 1;
                if t.gso_size != 0 {
                    self.stats.super_packets_out += 1;
                }
                let meta = TxMeta {
                    gso_size: t.gso_size,
                    csum_partial: t.csum_partial || t.gso_size != 0,
                };
                return Some((meta, parts));
            }
        };
        // TCP never builds more than MAX_SUPER_SEGMENT (65515) bytes, so this fits.
        let tcp_len = out.len() - ipv4::MIN_HEADER_LEN + parts[0].len() + parts[1].len();
        // A super-segment's pieces get consecutive IP ids from this one from the device
        // (Linux `tcp4_gso_segment` without SKB_GSO_TCP_FIXEDID): reserve them all, so
        // the ids of the next packets to this peer do not repeat theirs (with DF set they
        // need not be unique, RFC 6864 §4.1, but distinct ids keep captures readable).
        let pieces = if t.gso_size == 0 {
            1
        } else {
            let header_len = out
                .get(ipv4::MIN_HEADER_LEN + 12)
                .map_or(0, |b| usize::from(b >> 4) * 4);
            tcp_len
                .saturating_sub(header_len)
                .div_ceil(usize::from(t.gso_size))
        };
        let count = u16::try_from(pieces).unwrap_or(u16::MAX);
        // The TCP flags byte: 20 bytes of IP header room, then 13 into the TCP header.
        let flags = tcp::Flags::from_byte(out.get(ipv4::MIN_HEADER_LEN + 13).copied().unwrap_or(0));
        let id = if flags.syn || flags.rst {
            CONNECTIONLESS_IP_ID
        } else {
            self.ip_ids.next(src, dst, ipv4::PROTO_TCP, count)
        };
        ipv4::write_header(out, src, dst, ipv4::PROTO_TCP, DEFAULT_TTL, id, tcp_len);
        self.stats.packets_out += 1;
        if t.gso_size == 0 {
            let meta = TxMeta {
                gso_size: 0,
                csum_partial: t.csum_partial,
            };
            return Some((meta, parts));
        }
        self.stats.super_packets_out += 1;
        let meta = TxMeta {
            gso_size: t.gso_size,
            csum_partial: true,
        };
        Some((meta, parts))
    }

    /// Leave the TCP checksum of connection segments out of
    /// [`Interface::poll_transmit_into`] partial, marked by [`TxMeta::csum_partial`], for a
    /// device that completes it (see [`crate::tcp::Tcp::set_tx_checksum_offload`]).
    pub fn set_tx_checksum_offload(&mut self, on: bool) {
        self.tcp.set_tx_checksum_offload(on);
    }

    /// Let TCP send super-segments (TSO) of up to `max_packet` bytes of IPv4 packet
    /// (at most [`MAX_SUPER_PACKET`], 65535), for a device that cuts them into wire
    /// segments (`TUN_F_TSO4`); `None` turns it off. They come only out of
    /// [`Interface::poll_transmit_into`], with a [`TxMeta`] that says so; use
    /// [`Interface::poll_transmit`] only with TSO off (it would return such a packet
    /// as one oversized datagram, with a complete checksum).
    pub fn set_tso(&mut self, max_packet: Option<usize>) {
        self.tcp.set_tso(
            max_packet.map(|n| n.min(MAX_SUPER_PACKET).saturating_sub(ipv4::MIN_HEADER_LEN)),
        );
    }

    /// [`Interface::set_tso`] for TCP over IPv6, for a device that cuts TCP/IPv6
    /// super-segments (`TUN_F_TSO6`): up to `max_packet` bytes of IPv6 packet (at most
    /// [`MAX_SUPER_PACKET6`], 65535 bytes of payload behind the 40-byte header). Without it
    /// IPv6 connections send wire-sized segments.
    pub fn set_tso6(&mut self, max_packet: Option<usize>) {
        self.tcp.set_tso6(
            max_packet.map(|n| n.min(MAX_SUPER_PACKET6).saturating_sub(ipv6::HEADER_LEN)),
        );
    }

    /// When [`Interface::handle_timeout`] next needs to run.
    pub fn poll_at(&mut self) -> Option<Instant> {
        let frag6 = self.input6.as_ref().and_then(Ipv6Input::poll_at);
        [self.tcp.poll_at(), self.frag.poll_at(), frag6]
            .into_iter()
            .flatten()
            .min()
    }

    /// An instant no later than [`Interface::poll_at`], maybe earlier ([`Tcp::wake_at`]):
    /// when an event loop should call [`Interface::handle_timeout`] next. Cheaper to keep
    /// than the exact instant under a stream of requests.
    pub fn wake_at(&mut self) -> Option<Instant> {
        let frag6 = self.input6.as_ref().and_then(Ipv6Input::poll_at);
        [self.tcp.wake_at(), self.frag.poll_at(), frag6]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fire the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tcp.handle_timeout(now);
        self.expire_fragments(now);
        // RFC 8200 §4.5: IPv6 reassembly times out after 60 s, with time exceeded code 1
        // when the first fragment had arrived.
        let due = self
            .input6
            .as_ref()
            .and_then(Ipv6Input::poll_at)
            .is_some_and(|at| at <= now);
        if due {
            let errors = self
                .input6
                .as_mut()
                .map(|i| i.expire(now))
                .unwrap_or_default();
            for error in errors {
                self.stats.time_exceeded_sent += 1;
                self.push_pending(error);
            }
        }
    }
}
