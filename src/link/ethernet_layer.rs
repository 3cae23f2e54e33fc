//! The Ethernet layer of a host on a TAP device: frames in and out below, IP packets above.
//!
//! ```text
//!          IP packets up (to stack::Interface)        IP packets down (from it)
//!                  ▲                                          │
//!   handle_frame ──┤ EtherType 0x0800, to our MAC / broadcast │ send_ip: next hop =
//!   (Frame::parse) │                                          │   dst on our subnet, or
//!                  ├─ 0x0806 ARP: merge sender into the cache,│   --gateway, then
//!                  │   answer requests for our IP ──────┐     │ ArpCache::send ─ known ─┐
//!                  ├─ 0x86dd IPv6: NS/NA to the         │     │   └ unknown: queue +    │
//!                  │   NeighborCache, answer for our    │     │     broadcast request   │
//!                  │   address once DAD is done; the    │     │ IPv6: NeighborCache::send│
//!                  │   rest up to the host              │     │   (NS to solicited-node)│
//!                  └─ other: count and drop             ▼     ▼                         ▼
//!                                               poll_transmit() → Ethernet frames to the TAP
//! ```
//!
//! Sans-IO like the layers above: bytes and `now` in, frames out, timers as data
//! ([`EthernetLayer::poll_at`]). The IP host does not know it sits on Ethernet, so TUN mode
//! (no link header at all) and TAP mode share every layer above this one. The boundary is
//! protocol-independent: [`EthernetLayer::handle_frame`] hands up the payload of any network
//! protocol it accepts, and [`EthernetLayer::send_ip`] dispatches on the IP version nibble —
//! IPv6 would plug in here with Neighbor Discovery (RFC 4861) beside ARP.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::arp::{ArpCache, ArpConfig, ArpPacket, ArpStats, Resolution, OP_REPLY, OP_REQUEST};
use super::ethernet::{self, Frame, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::ndp::{self, Dad, NdpConfig, NdpStats, NeighborCache, Resolution6};
use crate::ip::ipv6::{Ipv6Packet, NEXT_ICMPV6};
use crate::time::Instant;

/// Frames waiting for the device; beyond this, new ones are dropped (docs/architecture.md, principle 7).
const MAX_OUT: usize = 4096;

/// How the host sits on its Ethernet segment.
#[derive(Debug, Clone)]
pub struct EthernetConfig {
    /// Our MAC address.
    pub mac: MacAddr,
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// Length of our subnet's prefix: destinations inside it are on-link (ARP for them
    /// directly), the rest go through `gateway`.
    pub prefix_len: u8,
    /// The default router for off-link destinations (RFC 1122 §3.3.1.1). Without one,
    /// packets to other subnets are dropped (counted as `no-route`).
    pub gateway: Option<Ipv4Addr>,
    /// Cache limits and timers.
    pub arp: ArpConfig,
    /// Our IPv6 address, if any: Neighbor Discovery answers for it ([`ndp`]) and IPv6
    /// packets pass up to the host. `None`: IPv6 frames are dropped.
    pub addr6: Option<Ipv6Addr>,
}

/// Counters of the Ethernet layer (ARP's are inside).
#[derive(Debug, Clone, Default)]
pub struct EthernetStats {
    /// Frames handed to [`EthernetLayer::handle_frame`].
    pub frames_in: u64,
    /// Frames produced by [`EthernetLayer::poll_transmit`].
    pub frames_out: u64,
    /// Dropped input and output by reason (`"not-our-mac"`, `"ethertype-unsupported"`, …).
    pub drops: BTreeMap<&'static str, u64>,
    /// ARP counters.
    pub arp: ArpStats,
    /// Neighbor Discovery counters.
    pub ndp: NdpStats,
}

/// An Ethernet + ARP host layer. See the [module documentation](self).
#[derive(Debug)]
pub struct EthernetLayer {
    config: EthernetConfig,
    cache: ArpCache,
    out: VecDeque<Vec<u8>>,
    /// IPv6 neighbours (RFC 4861 §7.3).
    nd: NeighborCache,
    /// Duplicate address detection of our IPv6 address (RFC 4862 §5.4).
    dad: Dad,
    /// How long DAD waits for an answer: RetransTimer × DupAddrDetectTransmits (1).
    dad_wait: std::time::Duration,
    frames_in: u64,
    frames_out: u64,
    drops: BTreeMap<&'static str, u64>,
}

fn prefix_mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

impl EthernetLayer {
    /// A layer for `config`. Queues a gratuitous ARP announcing our address (RFC 5227 §2.3),
    /// so that neighbours with a stale entry for it (a previous run with another MAC) learn
    /// the new one at once.
    ///
    /// With an IPv6 address, duplicate address detection starts too (RFC 4862 §5.4.2): a
    /// solicitation for it from `::` goes to its solicited-node group, and the address is
    /// used only once [`NdpConfig::retrans_timer`] passed without an answer.
    pub fn new(config: EthernetConfig) -> EthernetLayer {
        EthernetLayer::with_ndp(config, NdpConfig::default())
    }

    /// [`EthernetLayer::new`] with explicit Neighbor Discovery limits and timers.
    pub fn with_ndp(config: EthernetConfig, ndp_config: NdpConfig) -> EthernetLayer {
        let cache = ArpCache::new(config.arp.clone());
        let dad_wait = ndp_config.retrans_timer;
        let mut layer = EthernetLayer {
            config,
            cache,
            out: VecDeque::new(),
            nd: NeighborCache::new(ndp_config),
            dad: Dad::Preferred,
            dad_wait,
            frames_in: 0,
            frames_out: 0,
            drops: BTreeMap::new(),
        };
        let announce = ArpPacket::announcement(layer.config.mac, layer.config.addr);
        log::info!(
            "arp: announcing {} is at {}",
            layer.config.addr,
            layer.config.mac
        );
        layer.cache.stats_mut().requests_sent += 1;
        layer.push_arp(MacAddr::BROADCAST, &announce);
        if let Some(ours) = layer.config.addr6 {
            log::info!("ndp: duplicate address detection for {ours}");
            layer.dad = Dad::Tentative { until: None };
            layer.nd.stats_mut().solicitations_sent += 1;
            let probe = ndp::dad_probe(ours);
            let group = ndp::multicast_mac(ndp::solicited_node(ours));
            layer.push_frame(ethernet::build(
                group,
                layer.config.mac,
                ETHERTYPE_IPV6,
                &probe,
            ));
        }
        layer
    }

    /// The state of duplicate address detection of our IPv6 address.
    pub fn dad(&self) -> Dad {
        self.dad
    }

    /// The IPv6 neighbour cache.
    pub fn neighbors(&self) -> &NeighborCache {
        &self.nd
    }

    /// Pass the time to duplicate address detection.
    fn tick_dad(&mut self, now: Instant) {
        if self.dad.tick(now, self.dad_wait) {
            if let Some(ours) = self.config.addr6 {
                log::info!("ndp: {ours} is ours (no answer to duplicate address detection)");
            }
        }
    }

    /// Our MAC address.
    pub fn mac(&self) -> MacAddr {
        self.config.mac
    }

    /// The neighbour cache.
    pub fn cache(&self) -> &ArpCache {
        &self.cache
    }

    /// Counters.
    pub fn stats(&self) -> EthernetStats {
        EthernetStats {
            frames_in: self.frames_in,
            frames_out: self.frames_out,
            drops: self.drops.clone(),
            arp: self.cache.stats().clone(),
            ndp: self.nd.stats().clone(),
        }
    }

    fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_insert(0) += 1;
    }

    fn push_frame(&mut self, frame: Vec<u8>) {
        if self.out.len() >= MAX_OUT {
            self.drop("out-queue-full");
            return;
        }
        self.out.push_back(frame);
    }

    fn push_arp(&mut self, dst: MacAddr, arp: &ArpPacket) {
        let frame = ethernet::build(dst, self.config.mac, ETHERTYPE_ARP, &arp.emit());
        self.push_frame(frame);
    }

    /// One frame arrived. Returns the IPv4 packet inside it for the IP host, if any; ARP is
    /// handled here. Never panics; malformed or foreign frames are counted and dropped.
    pub fn handle_frame<'a>(&mut self, bytes: &'a [u8], now: Instant) -> Option<&'a [u8]> {
        self.frames_in += 1;
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("ethernet: dropped frame: {e}");
                self.drop(e.reason());
                return None;
            }
        };
        self.tick_dad(now);
        // A NIC filters by destination: our address and broadcast; with IPv6 also the
        // groups a host joins (RFC 4291 §2.8): all-nodes and our solicited-node group.
        // MLD reports from the kernel go to other groups and stay out.
        let solicited = self.config.addr6.is_some_and(|a| {
            frame.dst == ndp::multicast_mac(ndp::solicited_node(a))
                || frame.dst == ndp::multicast_mac(ndp::ALL_NODES)
        });
        if frame.dst != self.config.mac && !frame.dst.is_broadcast() && !solicited {
            self.drop(if frame.dst.is_group() {
                "multicast"
            } else {
                "not-our-mac"
            });
            return None;
        }
        match frame.ethertype {
            ETHERTYPE_IPV4 => Some(frame.payload),
            ETHERTYPE_ARP => {
                self.handle_arp(&frame, now);
                None
            }
            ETHERTYPE_IPV6 if self.config.addr6.is_some() => self.handle_ipv6(&frame, now),
            other => {
                log::trace!("ethernet: ignored EtherType {other:#06x}");
                self.drop("ethertype-unsupported");
                None
            }
        }
    }

    /// IPv6: Neighbor Discovery stays here (it is IPv6's ARP); the rest goes up, once
    /// duplicate address detection let us have the address (RFC 4862 §5.4: a tentative
    /// address receives nothing but ND).
    fn handle_ipv6<'a>(&mut self, frame: &Frame<'a>, now: Instant) -> Option<&'a [u8]> {
        let ours = self.config.addr6?;
        let Ok(packet) = Ipv6Packet::parse(frame.payload) else {
            // Let the host count what is wrong with it.
            return self.pass_up6(frame.payload);
        };
        let nd = (packet.next_header == NEXT_ICMPV6)
            .then(|| ndp::parse(packet.src, packet.dst, packet.hop_limit, packet.payload))
            .flatten();
        let Some(nd) = nd else {
            return self.pass_up6(packet.bytes);
        };
        if nd.kind == ndp::TYPE_NS {
            self.nd.stats_mut().solicitations_received += 1;
        } else {
            self.nd.stats_mut().advertisements_received += 1;
        }
        if nd.target == ours && self.dad_conflict(&nd, packet.src) {
            return None;
        }
        if nd.kind == ndp::TYPE_NS {
            // RFC 4861 §7.2.3: a solicitation with a source link-layer address creates or
            // updates the solicitor's entry.
            if let Some(mac) = nd.link_addr {
                self.nd.on_solicitation(packet.src, mac, now);
                self.flush_nd();
            }
            if nd.target == ours && self.dad.usable() {
                self.answer_solicitation(ours, &nd, packet.src, frame.src);
            }
        } else {
            self.nd
                .on_advertisement(nd.target, nd.link_addr, nd.flags, now);
            self.flush_nd();
        }
        None
    }

    /// An ND message about our own address from someone else: during DAD it means the
    /// address is taken (RFC 4862 §5.4.3, §5.4.4); after it, an advertisement is a
    /// conflict we log. True when the message is consumed.
    fn dad_conflict(&mut self, nd: &ndp::NdMessage, src: Ipv6Addr) -> bool {
        let tentative = matches!(self.dad, Dad::Tentative { .. });
        let theirs = nd.link_addr.is_some_and(|m| m != self.config.mac);
        if tentative {
            // An advertisement for it, or someone else's DAD probe for it (source ::):
            // duplicate. A solicitation from a unicast source is address resolution by a
            // neighbour, which a tentative address ignores.
            if nd.kind == ndp::TYPE_NA || src.is_unspecified() {
                log::error!(
                    "ndp: duplicate address detection failed: {} is in use on the link                      ({}); IPv6 stays off",
                    nd.target,
                    if nd.kind == ndp::TYPE_NA {
                        "advertised"
                    } else {
                        "probed by another node"
                    }
                );
                self.dad = Dad::Duplicate;
            }
            return true;
        }
        if nd.kind == ndp::TYPE_NA && theirs {
            self.nd.stats_mut().conflicts += 1;
            log::warn!(
                "ndp: address conflict: {} advertised by {:?} (we are {})",
                nd.target,
                nd.link_addr,
                self.config.mac
            );
            return true;
        }
        self.dad == Dad::Duplicate
    }

    /// Answer a solicitation for our address (RFC 4861 §7.2.4): to the solicitor, or —
    /// for a DAD probe from `::` — to all-nodes with Solicited clear.
    fn answer_solicitation(
        &mut self,
        ours: Ipv6Addr,
        nd: &ndp::NdMessage,
        src: Ipv6Addr,
        frame_src: MacAddr,
    ) {
        let (na, dst) = if src.is_unspecified() {
            log::info!("ndp: defending {ours} against duplicate address detection");
            (
                ndp::defence(ours, self.config.mac),
                ndp::multicast_mac(ndp::ALL_NODES),
            )
        } else {
            log::debug!("ndp: {ours} is at {} (to {src})", self.config.mac);
            (
                ndp::advertisement(ours, self.config.mac, src),
                nd.link_addr.unwrap_or(frame_src),
            )
        };
        self.nd.stats_mut().advertisements_sent += 1;
        let frame = ethernet::build(dst, self.config.mac, ETHERTYPE_IPV6, &na);
        self.push_frame(frame);
    }

    /// An IPv6 packet (not ND) for the host, unless our address is not (yet) ours.
    fn pass_up6<'a>(&mut self, packet: &'a [u8]) -> Option<&'a [u8]> {
        match self.dad {
            Dad::Preferred => Some(packet),
            Dad::Tentative { .. } => {
                self.drop("ipv6-address-tentative");
                None
            }
            Dad::Duplicate => {
                self.drop("ipv6-address-duplicate");
                None
            }
        }
    }

    /// Turn the neighbour cache's solicitations and released packets into frames.
    fn flush_nd(&mut self) {
        let Some(ours) = self.config.addr6 else {
            return;
        };
        while let Some(s) = self.nd.poll_solicit() {
            let (ns, dst) = match s.unicast {
                Some(mac) => (ndp::probe(ours, self.config.mac, s.target), mac),
                None => (
                    ndp::solicitation(ours, self.config.mac, s.target),
                    ndp::multicast_mac(ndp::solicited_node(s.target)),
                ),
            };
            log::debug!("ndp: who has {}? tell {ours}", s.target);
            let frame = ethernet::build(dst, self.config.mac, ETHERTYPE_IPV6, &ns);
            self.push_frame(frame);
        }
        while let Some((mac, packet)) = self.nd.poll_released() {
            let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV6, &packet);
            self.push_frame(frame);
        }
    }

    /// An IPv6 packet out: multicast maps to its MAC, unicast goes through the neighbour
    /// cache (resolved now, or queued while solicitations go out). Nothing leaves from a
    /// tentative or duplicate address (RFC 4862 §5.4).
    fn send_ipv6(&mut self, packet: Vec<u8>, now: Instant) {
        let (Some(_), Ok(p)) = (self.config.addr6, Ipv6Packet::parse(&packet)) else {
            self.drop("ipv6-unsendable");
            return;
        };
        match self.dad {
            Dad::Preferred => {}
            Dad::Tentative { .. } => return self.drop("ipv6-address-tentative"),
            Dad::Duplicate => return self.drop("ipv6-address-duplicate"),
        }
        if p.dst.is_multicast() {
            let mac = ndp::multicast_mac(p.dst);
            let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV6, &packet);
            self.push_frame(frame);
            return;
        }
        // Every destination is on-link: no router discovery (a documented limit of ours).
        let dst = p.dst;
        match self.nd.send(dst, packet, now) {
            Resolution6::Ready(mac, packet) => {
                let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV6, &packet);
                self.push_frame(frame);
            }
            Resolution6::Queued => {}
            Resolution6::Dropped => self.drop("ndp-queue"),
        }
        self.flush_nd();
    }

    /// RFC 826 "Packet Reception", for the one protocol address we have.
    fn handle_arp(&mut self, frame: &Frame<'_>, now: Instant) {
        let arp = match ArpPacket::parse(frame.payload) {
            Ok(a) => a,
            Err(e) => {
                log::debug!("arp: dropped message from {}: {e}", frame.src);
                self.drop(e.reason());
                return;
            }
        };
        match arp.operation {
            OP_REQUEST => self.cache.stats_mut().requests_received += 1,
            _ => self.cache.stats_mut().replies_received += 1,
        }
        if arp.sender_ip == self.config.addr && arp.sender_mac != self.config.mac {
            // RFC 5227 §2.4: someone else uses our address. We keep it (a host that cannot
            // move should defend); say so loudly, the network is misconfigured.
            self.cache.stats_mut().conflicts += 1;
            log::warn!(
                "arp: address conflict: {} claims {} (we are {})",
                arp.sender_mac,
                arp.sender_ip,
                self.config.mac
            );
            return;
        }
        // A sender address of 0.0.0.0 is an ARP probe (RFC 5227 §2.1.1): nothing to learn.
        let learnable = !arp.sender_ip.is_unspecified() && !arp.sender_mac.is_group();
        let for_us = arp.target_ip == self.config.addr;
        if learnable {
            // Merge: update an existing entry; create one only if the message is for us.
            self.cache
                .update(arp.sender_ip, arp.sender_mac, for_us, now);
        }
        if for_us && arp.operation == OP_REQUEST {
            // RFC 826: swap the fields, put our addresses in the sender fields, and send the
            // reply to the requester's hardware address.
            let reply = ArpPacket {
                operation: OP_REPLY,
                sender_mac: self.config.mac,
                sender_ip: self.config.addr,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            log::debug!(
                "arp: {} is at {} (to {})",
                self.config.addr,
                self.config.mac,
                arp.sender_ip
            );
            self.cache.stats_mut().replies_sent += 1;
            self.push_arp(arp.sender_mac, &reply);
        }
        self.flush_cache();
    }

    /// The next hop for `dst`, or `None` when it is off-link and there is no gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let mask = prefix_mask(self.config.prefix_len);
        let on_link = u32::from(dst) & mask == u32::from(self.config.addr) & mask;
        if on_link {
            Some(dst)
        } else {
            self.config.gateway
        }
    }

    /// Whether `dst` is the limited broadcast or our subnet's directed broadcast.
    fn is_broadcast(&self, dst: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.config.prefix_len);
        let directed = mask != u32::MAX
            && u32::from(dst) | mask == u32::MAX
            && u32::from(dst) & mask == u32::from(self.config.addr) & mask;
        dst.is_broadcast() || directed
    }

    /// Send one IP packet: resolve its next hop and frame it (now or once ARP answers).
    pub fn send_ip(&mut self, packet: Vec<u8>, now: Instant) {
        self.tick_dad(now);
        let version = packet.first().map(|b| b >> 4);
        if version == Some(6) {
            self.send_ipv6(packet, now);
            return;
        }
        if version != Some(4) {
            self.drop("ip-version-unsupported");
            return;
        }
        let dst = match packet.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(b) => Ipv4Addr::from(b),
            None => {
                self.drop("ip-too-short");
                return;
            }
        };
        let mac = if self.is_broadcast(dst) {
            Some(MacAddr::BROADCAST)
        } else if dst.is_multicast() {
            // RFC 1112 §6.4: 01:00:5e + the low 23 bits of the group address.
            let o = dst.octets();
            Some(MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]))
        } else {
            None
        };
        if let Some(mac) = mac {
            let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV4, &packet);
            self.push_frame(frame);
            return;
        }
        let Some(hop) = self.next_hop(dst) else {
            log::debug!("ethernet: no route to {dst} (off-link and no --gateway)");
            self.drop("no-route");
            return;
        };
        match self.cache.send(hop, packet, now) {
            Resolution::Ready(mac, packet) => {
                let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV4, &packet);
                self.push_frame(frame);
            }
            Resolution::Queued => {}
            Resolution::Dropped => self.drop("arp-queue"),
        }
        self.flush_cache();
    }

    /// Turn the cache's pending requests and released packets into frames.
    fn flush_cache(&mut self) {
        while let Some(ip) = self.cache.poll_request() {
            let request = ArpPacket::request(self.config.mac, self.config.addr, ip);
            log::debug!("arp: who has {ip}? tell {}", self.config.addr);
            self.cache.stats_mut().requests_sent += 1;
            self.push_arp(MacAddr::BROADCAST, &request);
        }
        while let Some((mac, packet)) = self.cache.poll_released() {
            let frame = ethernet::build(mac, self.config.mac, ETHERTYPE_IPV4, &packet);
            self.push_frame(frame);
        }
    }

    /// The next frame to put on the device.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let frame = self.out.pop_front()?;
        self.frames_out += 1;
        Some(frame)
    }

    /// When [`EthernetLayer::handle_timeout`] next needs to run (ARP and ND
    /// retransmissions, NUD timers, the end of duplicate address detection).
    pub fn poll_at(&self) -> Option<Instant> {
        [self.cache.poll_at(), self.nd.poll_at(), self.dad.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fire due timers: retransmit ARP requests and ND solicitations, age neighbours,
    /// give up on silent ones, finish duplicate address detection.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick_dad(now);
        self.cache.handle_timeout(now);
        self.flush_cache();
        self.nd.handle_timeout(now);
        self.flush_nd();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
    const FAR: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);
    const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
    const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn layer(gateway: Option<Ipv4Addr>) -> EthernetLayer {
        let mut l = EthernetLayer::new(EthernetConfig {
            mac: OUR_MAC,
            addr: US,
            prefix_len: 24,
            gateway,
            arp: ArpConfig::default(),
            addr6: Some(US6),
        });
        // The announcement.
        let f = l.poll_transmit().unwrap();
        let frame = Frame::parse(&f).unwrap();
        assert_eq!(
            (frame.dst, frame.ethertype),
            (MacAddr::BROADCAST, ETHERTYPE_ARP)
        );
        let a = ArpPacket::parse(frame.payload).unwrap();
        assert!(a.is_gratuitous() && a.sender_ip == US && a.sender_mac == OUR_MAC);
        assert_dad_probe(&mut l);
        // Nobody answers within RetransTimer: the address is ours.
        l.handle_timeout(t(0));
        assert!(matches!(l.dad(), Dad::Tentative { until: Some(_) }));
        l.handle_timeout(t(999));
        assert!(matches!(l.dad(), Dad::Tentative { .. }));
        l.handle_timeout(t(1000));
        assert_eq!(l.dad(), Dad::Preferred);
        assert_eq!(l.poll_transmit(), None);
        l
    }

    /// The DAD probe (RFC 4862 §5.4.2): NS from `::` to our solicited-node group, hop
    /// limit 255, no source link-layer address option.
    fn assert_dad_probe(l: &mut EthernetLayer) {
        let f = l.poll_transmit().expect("the DAD probe");
        let frame = Frame::parse(&f).unwrap();
        let group = ndp::solicited_node(US6);
        assert_eq!(
            (frame.dst, frame.ethertype),
            (ndp::multicast_mac(group), ETHERTYPE_IPV6)
        );
        let p = Ipv6Packet::parse(frame.payload).unwrap();
        assert_eq!(
            (p.src, p.dst, p.hop_limit),
            (Ipv6Addr::UNSPECIFIED, group, 255)
        );
        let ns = ndp::parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!(
            (ns.kind, ns.target, ns.link_addr),
            (ndp::TYPE_NS, US6, None)
        );
    }

    fn tentative_layer() -> EthernetLayer {
        let mut l = EthernetLayer::new(EthernetConfig {
            mac: OUR_MAC,
            addr: US,
            prefix_len: 24,
            gateway: None,
            arp: ArpConfig::default(),
            addr6: Some(US6),
        });
        let _announcement = l.poll_transmit().unwrap();
        assert_dad_probe(&mut l);
        l
    }

    fn nd_frame(dst: MacAddr, packet: &[u8]) -> Vec<u8> {
        ethernet::build(dst, PEER_MAC, ETHERTYPE_IPV6, packet)
    }

    /// The next frame as (Ethernet destination, IPv6 packet, ND message).
    fn next_nd(l: &mut EthernetLayer) -> (MacAddr, Ipv6Addr, ndp::NdMessage) {
        let f = l.poll_transmit().expect("an ND frame");
        let frame = Frame::parse(&f).unwrap();
        let p = Ipv6Packet::parse(frame.payload).unwrap();
        let m = ndp::parse(p.src, p.dst, p.hop_limit, p.payload).expect("valid ND");
        (frame.dst, p.dst, m)
    }

    #[test]
    fn a_tentative_address_answers_nothing_and_sends_nothing() {
        let mut l = tentative_layer();
        l.handle_timeout(t(0));
        let group = ndp::multicast_mac(ndp::solicited_node(US6));
        let ns = ndp::solicitation(PEER6, PEER_MAC, US6);
        assert_eq!(l.handle_frame(&nd_frame(group, &ns), t(100)), None);
        assert_eq!(l.poll_transmit(), None, "no answer for a tentative address");
        let echo = crate::ip::ipv6::emit(PEER6, US6, NEXT_ICMPV6, 64, &[128, 0, 0, 0]);
        assert_eq!(l.handle_frame(&nd_frame(OUR_MAC, &echo), t(200)), None);
        l.send_ip(echo.clone(), t(300));
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(l.stats().drops.get("ipv6-address-tentative"), Some(&2));
        // After RetransTimer the same solicitation is answered.
        assert_eq!(l.poll_at(), Some(t(1000)));
        l.handle_timeout(t(1000));
        l.handle_frame(&nd_frame(group, &ns), t(1100));
        let (dst, ip_dst, na) = next_nd(&mut l);
        assert_eq!(
            (dst, ip_dst, na.kind, na.target),
            (PEER_MAC, PEER6, ndp::TYPE_NA, US6)
        );
        assert_eq!(na.flags, ndp::FLAG_SOLICITED | ndp::FLAG_OVERRIDE);
        assert_eq!(
            l.handle_frame(&nd_frame(OUR_MAC, &echo), t(1200)),
            Some(&echo[..])
        );
    }

    #[test]
    fn dad_fails_when_our_address_is_advertised() {
        let mut l = tentative_layer();
        l.handle_timeout(t(0));
        // Another node defends it: NA to all-nodes, Solicited clear.
        let other = MacAddr([2, 0, 0, 0, 0, 0x77]);
        let na = ndp::defence(US6, other);
        let all_nodes = ndp::multicast_mac(ndp::ALL_NODES);
        assert_eq!(l.handle_frame(&nd_frame(all_nodes, &na), t(500)), None);
        assert_eq!(l.dad(), Dad::Duplicate);
        l.handle_timeout(t(5000));
        assert_eq!(l.dad(), Dad::Duplicate, "a duplicate address is never used");
        let group = ndp::multicast_mac(ndp::solicited_node(US6));
        let ns = ndp::solicitation(PEER6, PEER_MAC, US6);
        l.handle_frame(&nd_frame(group, &ns), t(5100));
        assert_eq!(l.poll_transmit(), None);
        l.send_ip(
            crate::ip::ipv6::emit(US6, PEER6, NEXT_ICMPV6, 64, &[1]),
            t(5200),
        );
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(l.stats().drops.get("ipv6-address-duplicate"), Some(&1));
        // IPv4 is unaffected.
        l.send_ip(ip_to(PEER, 1), t(5300));
        assert!(l.poll_transmit().is_some());
    }

    #[test]
    fn dad_fails_when_another_node_probes_the_same_address() {
        let mut l = tentative_layer();
        l.handle_timeout(t(0));
        let group = ndp::multicast_mac(ndp::solicited_node(US6));
        assert_eq!(
            l.handle_frame(&nd_frame(group, &ndp::dad_probe(US6)), t(300)),
            None
        );
        assert_eq!(l.dad(), Dad::Duplicate);
        assert_eq!(l.poll_transmit(), None);
    }

    #[test]
    fn defends_its_address_against_another_nodes_dad() {
        let mut l = layer(None);
        let group = ndp::multicast_mac(ndp::solicited_node(US6));
        l.handle_frame(&nd_frame(group, &ndp::dad_probe(US6)), t(2000));
        // RFC 4861 §7.2.4: to all-nodes, Solicited clear, Override set.
        let (dst, ip_dst, na) = next_nd(&mut l);
        assert_eq!(
            (dst, ip_dst, na.kind, na.target, na.link_addr, na.flags),
            (
                ndp::multicast_mac(ndp::ALL_NODES),
                ndp::ALL_NODES,
                ndp::TYPE_NA,
                US6,
                Some(OUR_MAC),
                ndp::FLAG_OVERRIDE
            )
        );
        assert_eq!(l.dad(), Dad::Preferred);
        assert_eq!(l.stats().ndp.advertisements_sent, 1);
    }

    #[test]
    fn unreachable_neighbour_is_solicited_three_times_then_dropped() {
        let mut l = layer(None);
        let far6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
        l.send_ip(
            crate::ip::ipv6::emit(US6, far6, NEXT_ICMPV6, 64, &[1]),
            t(2000),
        );
        for at in [2000, 3000, 4000] {
            let (dst, _, ns) = next_nd(&mut l);
            assert_eq!(dst, ndp::multicast_mac(ndp::solicited_node(far6)));
            assert_eq!((ns.kind, ns.target), (ndp::TYPE_NS, far6));
            assert_eq!(l.poll_at(), Some(t(at + 1000)));
            l.handle_timeout(t(at + 1000));
        }
        // MAX_MULTICAST_SOLICIT (3) unanswered: the entry and its packet are gone.
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(l.neighbors().state(far6), None);
        let s = l.stats().ndp;
        assert_eq!(
            (s.solicitations_sent, s.unreachable, s.queue_drops),
            (4, 1, 1)
        );
    }

    fn arp_frame(dst: MacAddr, arp: ArpPacket) -> Vec<u8> {
        ethernet::build(dst, arp.sender_mac, ETHERTYPE_ARP, &arp.emit())
    }

    fn next_arp(l: &mut EthernetLayer) -> (MacAddr, ArpPacket) {
        let f = l.poll_transmit().expect("a frame");
        let frame = Frame::parse(&f).unwrap();
        assert_eq!(frame.ethertype, ETHERTYPE_ARP);
        (frame.dst, ArpPacket::parse(frame.payload).unwrap())
    }

    fn ip_to(dst: Ipv4Addr, id: u16) -> Vec<u8> {
        ipv4::emit(US, dst, ipv4::PROTO_UDP, 64, id, b"x")
    }

    #[test]
    fn answers_requests_for_our_address_only() {
        let mut l = layer(None);
        let req = ArpPacket::request(PEER_MAC, PEER, US);
        assert_eq!(
            l.handle_frame(&arp_frame(MacAddr::BROADCAST, req), t(0)),
            None
        );
        let (dst, reply) = next_arp(&mut l);
        assert_eq!(dst, PEER_MAC);
        assert_eq!(reply.operation, OP_REPLY);
        assert_eq!((reply.sender_mac, reply.sender_ip), (OUR_MAC, US));
        assert_eq!((reply.target_mac, reply.target_ip), (PEER_MAC, PEER));
        // The requester was learned (the request was for us), so no ARP is needed to answer.
        assert_eq!(l.cache().lookup(PEER, t(0)), Some(PEER_MAC));
        // A request for someone else: no reply, nothing learned.
        let other = ArpPacket::request(GW_MAC, GW, Ipv4Addr::new(10, 0, 0, 77));
        l.handle_frame(&arp_frame(MacAddr::BROADCAST, other), t(0));
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(l.cache().lookup(GW, t(0)), None);
        assert_eq!(l.stats().arp.replies_sent, 1);
        assert_eq!(l.stats().arp.requests_received, 2);
    }

    #[test]
    fn resolves_queues_and_sends_after_the_reply() {
        let mut l = layer(None);
        l.send_ip(ip_to(PEER, 1), t(0));
        l.send_ip(ip_to(PEER, 2), t(1));
        let (dst, req) = next_arp(&mut l);
        assert_eq!(dst, MacAddr::BROADCAST);
        assert_eq!(
            (req.operation, req.target_ip, req.sender_ip),
            (OP_REQUEST, PEER, US)
        );
        assert_eq!(l.poll_transmit(), None, "packets wait for the reply");
        let reply = ArpPacket {
            operation: OP_REPLY,
            sender_mac: PEER_MAC,
            sender_ip: PEER,
            target_mac: OUR_MAC,
            target_ip: US,
        };
        l.handle_frame(&arp_frame(OUR_MAC, reply), t(5));
        for id in [1u16, 2] {
            let f = l.poll_transmit().unwrap();
            let frame = Frame::parse(&f).unwrap();
            assert_eq!(
                (frame.dst, frame.src, frame.ethertype),
                (PEER_MAC, OUR_MAC, ETHERTYPE_IPV4)
            );
            assert_eq!(ipv4::Ipv4Packet::parse(frame.payload).unwrap().id, id);
        }
        // Known now: straight out.
        l.send_ip(ip_to(PEER, 3), t(6));
        assert!(l.poll_transmit().is_some());
    }

    #[test]
    fn off_link_goes_through_the_gateway_or_nowhere() {
        let mut l = layer(Some(GW));
        assert_eq!(l.next_hop(PEER), Some(PEER));
        assert_eq!(l.next_hop(FAR), Some(GW));
        l.send_ip(ip_to(FAR, 1), t(0));
        let (_, req) = next_arp(&mut l);
        assert_eq!(req.target_ip, GW, "ARP for the router, not the far host");

        let mut none = layer(None);
        none.send_ip(ip_to(FAR, 1), t(0));
        assert_eq!(none.poll_transmit(), None);
        assert_eq!(none.stats().drops.get("no-route"), Some(&1));
    }

    #[test]
    fn retransmits_requests_on_the_timer() {
        let mut l = layer(None);
        l.send_ip(ip_to(PEER, 1), t(0));
        next_arp(&mut l);
        assert_eq!(l.poll_at(), Some(t(1000)));
        l.handle_timeout(t(1000));
        let (_, again) = next_arp(&mut l);
        assert_eq!(again.target_ip, PEER);
    }

    #[test]
    fn filters_frames_and_passes_ipv4_up() {
        let mut l = layer(None);
        let ip = ip_to(US, 1);
        let to_us = ethernet::build(OUR_MAC, PEER_MAC, ETHERTYPE_IPV4, &ip);
        assert_eq!(
            l.handle_frame(&to_us, t(0)).map(|p| &p[..ip.len()]),
            Some(&ip[..])
        );
        let elsewhere = ethernet::build(GW_MAC, PEER_MAC, ETHERTYPE_IPV4, &ip);
        assert_eq!(l.handle_frame(&elsewhere, t(0)), None);
        // ff02::16, where the kernel sends its MLD reports: a group we do not join.
        let mcast = ethernet::build(MacAddr([0x33, 0x33, 0, 0, 0, 0x16]), PEER_MAC, 0x86dd, &ip);
        assert_eq!(l.handle_frame(&mcast, t(0)), None);
        let other = ethernet::build(OUR_MAC, PEER_MAC, 0x88cc, &ip);
        assert_eq!(l.handle_frame(&other, t(0)), None);
        assert_eq!(l.handle_frame(&[1, 2, 3], t(0)), None);
        let drops = l.stats().drops;
        for reason in [
            "not-our-mac",
            "multicast",
            "ethertype-unsupported",
            "frame-too-short",
        ] {
            assert_eq!(drops.get(reason), Some(&1), "{reason}");
        }
    }

    #[test]
    fn ignores_conflicting_claims_and_probes() {
        let mut l = layer(None);
        let claim = ArpPacket::announcement(PEER_MAC, US);
        l.handle_frame(&arp_frame(MacAddr::BROADCAST, claim), t(0));
        assert_eq!(l.stats().arp.conflicts, 1);
        assert_eq!(l.poll_transmit(), None);
        // RFC 5227 probe: sender IP 0.0.0.0, asking for our address: answered, not learned.
        let probe = ArpPacket::request(PEER_MAC, Ipv4Addr::UNSPECIFIED, US);
        l.handle_frame(&arp_frame(MacAddr::BROADCAST, probe), t(0));
        let (dst, reply) = next_arp(&mut l);
        assert_eq!((dst, reply.operation), (PEER_MAC, OP_REPLY));
        assert!(l.cache().is_empty());
    }

    #[test]
    fn broadcast_destinations_need_no_arp() {
        let mut l = layer(None);
        l.send_ip(ip_to(Ipv4Addr::new(10, 0, 0, 255), 1), t(0));
        let f = l.poll_transmit().unwrap();
        assert_eq!(Frame::parse(&f).unwrap().dst, MacAddr::BROADCAST);
        l.send_ip(ip_to(Ipv4Addr::new(224, 0, 0, 251), 1), t(0));
        let f = l.poll_transmit().unwrap();
        assert_eq!(
            Frame::parse(&f).unwrap().dst,
            MacAddr([1, 0, 0x5e, 0, 0, 0xfb])
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut l = layer(Some(GW));
        let mut seed = 7u32;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = l.handle_frame(&bytes, t(len as u64));
            let mut as_arp = ethernet::build(OUR_MAC, PEER_MAC, ETHERTYPE_ARP, &bytes);
            let _ = l.handle_frame(&as_arp, t(0));
            as_arp.truncate(len.min(as_arp.len()));
            let _ = l.handle_frame(&as_arp, t(0));
            l.send_ip(bytes, t(len as u64));
        }
        while l.poll_transmit().is_some() {}
    }

    #[test]
    fn neighbor_discovery_answers_and_learns() {
        let mut l = layer(None);
        // The kernel solicits our address at our solicited-node group.
        let ns = ndp::solicitation(PEER6, PEER_MAC, US6);
        let group = ndp::multicast_mac(ndp::solicited_node(US6));
        let frame = ethernet::build(group, PEER_MAC, ETHERTYPE_IPV6, &ns);
        assert_eq!(
            l.handle_frame(&frame, t(0)),
            None,
            "ND stays in the link layer"
        );
        let f = l.poll_transmit().expect("an advertisement");
        let frame = Frame::parse(&f).unwrap();
        assert_eq!((frame.dst, frame.ethertype), (PEER_MAC, ETHERTYPE_IPV6));
        let p = Ipv6Packet::parse(frame.payload).unwrap();
        let na = ndp::parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!(
            (na.kind, na.target, na.link_addr),
            (ndp::TYPE_NA, US6, Some(OUR_MAC))
        );
        // The solicitor was learned: a reply goes straight to its MAC.
        let reply = crate::ip::ipv6::emit(US6, PEER6, NEXT_ICMPV6, 64, &[129, 0, 0, 0]);
        l.send_ip(reply, t(1));
        let f = l.poll_transmit().unwrap();
        assert_eq!(Frame::parse(&f).unwrap().dst, PEER_MAC);
        // Other IPv6 to us passes up.
        let echo = crate::ip::ipv6::emit(PEER6, US6, NEXT_ICMPV6, 64, &[128, 0, 0, 0]);
        let frame = ethernet::build(OUR_MAC, PEER_MAC, ETHERTYPE_IPV6, &echo);
        assert_eq!(l.handle_frame(&frame, t(2)), Some(&echo[..]));
    }

    #[test]
    fn unknown_ipv6_neighbour_is_solicited() {
        let mut l = layer(None);
        let far6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
        l.send_ip(
            crate::ip::ipv6::emit(US6, far6, NEXT_ICMPV6, 64, &[1]),
            t(0),
        );
        let f = l.poll_transmit().unwrap();
        let frame = Frame::parse(&f).unwrap();
        assert_eq!(frame.dst, ndp::multicast_mac(ndp::solicited_node(far6)));
        let p = Ipv6Packet::parse(frame.payload).unwrap();
        let ns = ndp::parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!((ns.kind, ns.target), (ndp::TYPE_NS, far6));
        // A second packet waits too, without another solicitation.
        l.send_ip(
            crate::ip::ipv6::emit(US6, far6, NEXT_ICMPV6, 64, &[2]),
            t(10),
        );
        assert_eq!(l.poll_transmit(), None);
        // The advertisement releases the waiting packets, in order.
        let far_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
        let na = ndp::advertisement(far6, far_mac, US6);
        l.handle_frame(
            &ethernet::build(OUR_MAC, far_mac, ETHERTYPE_IPV6, &na),
            t(20),
        );
        for want in [1, 2] {
            let f = l.poll_transmit().expect("a waiting packet");
            let frame = Frame::parse(&f).unwrap();
            assert_eq!(frame.dst, far_mac);
            assert_eq!(Ipv6Packet::parse(frame.payload).unwrap().payload, &[want]);
        }
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(
            l.neighbors().state(far6),
            Some((ndp::NudState::Reachable, Some(far_mac)))
        );
    }
}
