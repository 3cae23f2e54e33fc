//! IPv6 Neighbor Discovery (RFC 4861), the part that replaces ARP: Neighbor Solicitation
//! ("who has this IPv6 address?", type 135) and Neighbor Advertisement (the answer, type
//! 136). They are ICMPv6 messages inside IPv6 packets with hop limit 255, sent to a
//! *solicited-node* multicast group instead of broadcast.
//!
//! ```text
//!  NS / NA:  type | code 0 | checksum | flags (NA: R S O) + reserved (4 bytes)
//!            target address (16 bytes)
//!            options: type 1 = source link-layer address (NS), 2 = target (NA), len in 8s
//! ```
//!
//! The neighbour cache ([`NeighborCache`]) keeps, per neighbour, the state of RFC 4861 §7.3
//! Neighbor Unreachability Detection as a host needs it:
//!
//! ```text
//!   send to an unknown address ─► INCOMPLETE: multicast NS every RETRANS_TIMER (1 s), up to
//!        │                          MAX_MULTICAST_SOLICIT (3); packets wait in a bounded
//!        │                          queue; no answer: the entry and its queue are dropped
//!        │ solicited NA                     │ unsolicited NA / NS with a link-layer address
//!        ▼                                  ▼
//!   REACHABLE ── ReachableTime (30 s) ──► STALE ── a packet is sent ──► DELAY (5 s)
//!        ▲                                                               │
//!        └──────────── solicited NA ◄── PROBE: unicast NS every 1 s, up to ◄┘
//!                                       MAX_UNICAST_SOLICIT (3); no answer: entry dropped
//! ```
//!
//! Simplifications, each documented where it applies: no upper-layer reachability hints
//! (RFC 4861 §7.3.1: TCP acknowledgements could confirm a neighbour; we only trust
//! solicited advertisements, which costs one unicast probe per ReachableTime on a busy
//! neighbour); ReachableTime is not randomised (§6.3.2 asks for 0.5–1.5 × the base;
//! a host with one neighbour gains nothing from it); no router or prefix discovery (the
//! on-link prefix is configured). Duplicate address detection (RFC 4862 §5.4) lives in
//! [`Dad`].

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::Duration;

use super::ethernet::MacAddr;
use crate::ip::ipv4::checksum_with;
use crate::ip::ipv6::{self, pseudo_header_sum, NEXT_ICMPV6};
use crate::time::Instant;

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NS: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NA: u8 = 136;
/// Hop limit of every ND message: a receiver checks it is 255, i.e. the sender is on the
/// link (RFC 4861 §7.1.1).
pub const HOP_LIMIT: u8 = 255;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// A parsed NS or NA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage {
    /// [`TYPE_NS`] or [`TYPE_NA`].
    pub kind: u8,
    /// The address asked about (NS) or advertised (NA).
    pub target: Ipv6Addr,
    /// The link-layer address option (source for NS, target for NA), if present.
    pub link_addr: Option<MacAddr>,
    /// The NA flags byte (R 0x80, S 0x40, O 0x20); 0 for an NS.
    pub flags: u8,
}

/// NA flag Router (RFC 4861 §4.4).
pub const FLAG_ROUTER: u8 = 0x80;
/// NA flag Solicited: an answer to a solicitation (RFC 4861 §4.4).
pub const FLAG_SOLICITED: u8 = 0x40;
/// NA flag Override: replace a cached link-layer address (RFC 4861 §4.4).
pub const FLAG_OVERRIDE: u8 = 0x20;

/// Parse an NS or NA from a validated IPv6 packet's parts; `None` for anything else or a
/// message failing RFC 4861 §7.1 validation (hop limit, code, length, checksum).
pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, message: &[u8]) -> Option<NdMessage> {
    let kind = *message.first()?;
    if !(kind == TYPE_NS || kind == TYPE_NA) || message.get(1) != Some(&0) {
        return None;
    }
    if hop_limit != HOP_LIMIT || message.len() < 24 {
        return None;
    }
    let len = u32::try_from(message.len()).ok()?;
    if checksum_with(pseudo_header_sum(src, dst, NEXT_ICMPV6, len), message) != 0 {
        return None;
    }
    let target: [u8; 16] = message.get(8..24)?.try_into().ok()?;
    let wanted = if kind == TYPE_NS {
        OPT_SOURCE_LL
    } else {
        OPT_TARGET_LL
    };
    let mut link_addr = None;
    let mut options = message.get(24..).unwrap_or_default();
    // Options: type, length in units of 8 bytes (0 is invalid: discard the message).
    while let [opt_type, opt_len, ..] = options {
        let n = usize::from(*opt_len) * 8;
        if n == 0 {
            return None;
        }
        let opt = options.get(..n)?;
        if *opt_type == wanted {
            let mac: [u8; 6] = opt.get(2..8)?.try_into().ok()?;
            link_addr = Some(MacAddr(mac));
        }
        options = options.get(n..).unwrap_or_default();
    }
    let target = Ipv6Addr::from(target);
    let flags = if kind == TYPE_NA {
        message.get(4).copied().unwrap_or(0)
    } else {
        0
    };
    // RFC 4861 §7.1.1 and §7.1.2: the target is never multicast; a solicitation from the
    // unspecified address (duplicate address detection) goes to a solicited-node group and
    // carries no source link-layer address; a multicast advertisement is never solicited.
    if target.is_multicast()
        || (kind == TYPE_NS
            && src.is_unspecified()
            && (link_addr.is_some() || dst != solicited_node(target)))
        || (kind == TYPE_NA && dst.is_multicast() && flags & FLAG_SOLICITED != 0)
    {
        return None;
    }
    Some(NdMessage {
        kind,
        target,
        link_addr,
        flags,
    })
}

fn build(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    option: Option<(u8, MacAddr)>,
) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    if let Some((opt, mac)) = option {
        m.extend_from_slice(&[opt, 1]);
        m.extend_from_slice(&mac.0);
    }
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    let sum = checksum_with(pseudo_header_sum(src, dst, NEXT_ICMPV6, len), &m);
    if let Some(c) = m.get_mut(2..4) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    ipv6::emit(src, dst, NEXT_ICMPV6, HOP_LIMIT, &m)
}

/// A solicited Neighbor Advertisement (IPv6 packet) from `ours` at `mac` to `to`: flags
/// Solicited and Override (RFC 4861 §7.2.4), with the target link-layer address option.
pub fn advertisement(ours: Ipv6Addr, mac: MacAddr, to: Ipv6Addr) -> Vec<u8> {
    build(
        ours,
        to,
        TYPE_NA,
        FLAG_SOLICITED | FLAG_OVERRIDE,
        ours,
        Some((OPT_TARGET_LL, mac)),
    )
}

/// The answer to a solicitation from the unspecified address (someone's duplicate
/// address detection for `ours`): Solicited clear, multicast to all-nodes (RFC 4861
/// §7.2.4), so the prober learns the address is taken.
pub fn defence(ours: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    build(
        ours,
        ALL_NODES,
        TYPE_NA,
        FLAG_OVERRIDE,
        ours,
        Some((OPT_TARGET_LL, mac)),
    )
}

/// A Neighbor Solicitation (IPv6 packet) for `target`, to its solicited-node group.
pub fn solicitation(ours: Ipv6Addr, mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    build(
        ours,
        solicited_node(target),
        TYPE_NS,
        0,
        target,
        Some((OPT_SOURCE_LL, mac)),
    )
}

/// A unicast Neighbor Solicitation for `target` (a PROBE of RFC 4861 §7.3.3: is the
/// cached neighbour still there?), sent to `target` itself.
pub fn probe(ours: Ipv6Addr, mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    build(ours, target, TYPE_NS, 0, target, Some((OPT_SOURCE_LL, mac)))
}

/// The duplicate address detection probe for `tentative` (RFC 4862 §5.4.2): a solicitation
/// from the unspecified address to the solicited-node group, without a source link-layer
/// address option (RFC 4861 §7.2.2 forbids it with an unspecified source).
pub fn dad_probe(tentative: Ipv6Addr) -> Vec<u8> {
    build(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(tentative),
        TYPE_NS,
        0,
        tentative,
        None,
    )
}

/// The all-nodes multicast group `ff02::1` (RFC 4291 §2.7.1), which every host joins.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `addr`: `ff02::1:ff` + its low 24 bits
/// (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of an IPv6 multicast group: `33:33` + its low 32 bits (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Limits and timers of the neighbour cache (RFC 4861 §10 names the constants).
#[derive(Debug, Clone)]
pub struct NdpConfig {
    /// Most entries; beyond it a STALE entry (the least recently used) is evicted, and if
    /// none is STALE the new resolution is refused.
    pub max_entries: usize,
    /// Packets kept per neighbour while it resolves; when full the oldest goes (RFC 4861
    /// §7.2.2: keep at least one, and the newest is the one to keep).
    pub max_queued: usize,
    /// Packets kept while resolving, over all neighbours.
    pub max_queued_total: usize,
    /// RetransTimer: between solicitations (1 s).
    pub retrans_timer: Duration,
    /// MAX_MULTICAST_SOLICIT: solicitations for an INCOMPLETE entry before giving up (3).
    pub max_multicast_solicit: u32,
    /// MAX_UNICAST_SOLICIT: probes of a PROBE entry before giving up (3).
    pub max_unicast_solicit: u32,
    /// ReachableTime: how long a confirmation is trusted (REACHABLE_TIME, 30 s).
    pub reachable_time: Duration,
    /// DELAY_FIRST_PROBE_TIME: how long a used STALE entry waits before probing (5 s).
    pub delay_first_probe: Duration,
}

impl Default for NdpConfig {
    fn default() -> NdpConfig {
        NdpConfig {
            max_entries: 256,
            max_queued: 16,
            max_queued_total: 256,
            retrans_timer: Duration::from_secs(1),
            max_multicast_solicit: 3,
            max_unicast_solicit: 3,
            reachable_time: Duration::from_secs(30),
            delay_first_probe: Duration::from_secs(5),
        }
    }
}

/// Neighbour Discovery counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NdpStats {
    /// Solicitations sent: multicast (address resolution), unicast (probes) and DAD.
    pub solicitations_sent: u64,
    /// Advertisements sent (answers and defences of our address).
    pub advertisements_sent: u64,
    /// Valid solicitations received.
    pub solicitations_received: u64,
    /// Valid advertisements received.
    pub advertisements_received: u64,
    /// Resolutions that completed (INCOMPLETE → a link-layer address).
    pub resolved: u64,
    /// Neighbours given up on: INCOMPLETE or PROBE with every solicitation unanswered.
    pub unreachable: u64,
    /// Packets dropped: queue or cache full, or their neighbour unreachable.
    pub queue_drops: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Advertisements claiming our address from another node after DAD (a conflict).
    pub conflicts: u64,
}

/// The NUD state of an entry (RFC 4861 §7.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudState {
    /// Address resolution in progress: no link-layer address yet.
    Incomplete,
    /// Confirmed reachable recently.
    Reachable,
    /// Not confirmed lately; used as is until a packet is sent to it.
    Stale,
    /// A packet went to a STALE neighbour: wait a little for a confirmation before probing.
    Delay,
    /// Unicast solicitations in flight.
    Probe,
}

impl NudState {
    /// The RFC's name.
    pub fn name(self) -> &'static str {
        match self {
            NudState::Incomplete => "INCOMPLETE",
            NudState::Reachable => "REACHABLE",
            NudState::Stale => "STALE",
            NudState::Delay => "DELAY",
            NudState::Probe => "PROBE",
        }
    }
}

#[derive(Debug)]
struct Neighbor {
    state: NudState,
    mac: Option<MacAddr>,
    /// When the state's timer fires (none for STALE).
    deadline: Option<Instant>,
    /// Solicitations sent in INCOMPLETE or PROBE.
    sent: u32,
    queue: VecDeque<Vec<u8>>,
    last_used: Instant,
}

/// What [`NeighborCache::send`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution6 {
    /// Send it to this link-layer address now.
    Ready(MacAddr, Vec<u8>),
    /// Waiting for resolution.
    Queued,
    /// Dropped (counted in [`NdpStats::queue_drops`]).
    Dropped,
}

/// A solicitation the cache wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicit {
    /// The address asked about.
    pub target: Ipv6Addr,
    /// `None`: multicast to the target's solicited-node group (resolution); `Some`:
    /// unicast to the cached link-layer address (a PROBE).
    pub unicast: Option<MacAddr>,
}

/// The IPv6 neighbour cache with Neighbor Unreachability Detection (see the
/// [module documentation](self)). Sans-IO: the caller turns [`NeighborCache::poll_solicit`]
/// into frames and sends the [`NeighborCache::poll_released`] packets.
#[derive(Debug)]
pub struct NeighborCache {
    config: NdpConfig,
    entries: HashMap<Ipv6Addr, Neighbor>,
    queued_total: usize,
    solicits: VecDeque<Solicit>,
    released: VecDeque<(MacAddr, Vec<u8>)>,
    stats: NdpStats,
}

impl NeighborCache {
    /// An empty cache.
    pub fn new(config: NdpConfig) -> NeighborCache {
        NeighborCache {
            config,
            entries: HashMap::new(),
            queued_total: 0,
            solicits: VecDeque::new(),
            released: VecDeque::new(),
            stats: NdpStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &NdpStats {
        &self.stats
    }

    /// Counters, for the Ethernet layer's own ND events.
    pub fn stats_mut(&mut self) -> &mut NdpStats {
        &mut self.stats
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting for resolution.
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// The state and link-layer address of `ip`, if cached.
    pub fn state(&self, ip: Ipv6Addr) -> Option<(NudState, Option<MacAddr>)> {
        self.entries.get(&ip).map(|n| (n.state, n.mac))
    }

    /// Room for a new entry: evict the least recently used STALE one if full.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, n)| n.state == NudState::Stale)
            .min_by_key(|(_, n)| n.last_used)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.remove(ip);
                self.stats.evictions += 1;
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, ip: Ipv6Addr) {
        if let Some(n) = self.entries.remove(&ip) {
            self.queued_total -= n.queue.len();
            self.stats.queue_drops += n.queue.len() as u64;
        }
    }

    /// A packet for on-link neighbour `ip` (RFC 4861 §7.2.2 and §7.3.3).
    pub fn send(&mut self, ip: Ipv6Addr, packet: Vec<u8>, now: Instant) -> Resolution6 {
        if let Some(n) = self.entries.get_mut(&ip) {
            n.last_used = now;
            match (n.state, n.mac) {
                (NudState::Incomplete, _) | (_, None) => {}
                (state, Some(mac)) => {
                    if state == NudState::Stale {
                        // §7.3.3: the first packet to a STALE neighbour starts the DELAY
                        // timer; it is sent at once with the cached address.
                        n.state = NudState::Delay;
                        n.deadline = Some(now + self.config.delay_first_probe);
                    }
                    return Resolution6::Ready(mac, packet);
                }
            }
        } else {
            if !self.make_room() {
                log::debug!("ndp: cache full, dropping a packet for {ip}");
                self.stats.queue_drops += 1;
                return Resolution6::Dropped;
            }
            self.entries.insert(
                ip,
                Neighbor {
                    state: NudState::Incomplete,
                    mac: None,
                    deadline: Some(now + self.config.retrans_timer),
                    sent: 1,
                    queue: VecDeque::new(),
                    last_used: now,
                },
            );
            self.stats.solicitations_sent += 1;
            self.solicits.push_back(Solicit {
                target: ip,
                unicast: None,
            });
        }
        if self.queued_total >= self.config.max_queued_total {
            self.stats.queue_drops += 1;
            return Resolution6::Dropped;
        }
        let Some(n) = self.entries.get_mut(&ip) else {
            return Resolution6::Dropped;
        };
        if n.queue.len() >= self.config.max_queued {
            n.queue.pop_front();
            self.queued_total -= 1;
            self.stats.queue_drops += 1;
        }
        n.queue.push_back(packet);
        self.queued_total += 1;
        Resolution6::Queued
    }

    /// Release the packets of an entry that just got its link-layer address.
    fn release(&mut self, ip: Ipv6Addr) {
        if let Some(n) = self.entries.get_mut(&ip) {
            if let Some(mac) = n.mac {
                self.queued_total -= n.queue.len();
                self.released.extend(n.queue.drain(..).map(|p| (mac, p)));
            }
        }
    }

    /// A solicitation from `src` carrying its link-layer address (RFC 4861 §7.2.3): create
    /// the entry STALE, or update it (STALE when the address changed); an INCOMPLETE one
    /// is resolved by it and its packets go.
    pub fn on_solicitation(&mut self, src: Ipv6Addr, mac: MacAddr, now: Instant) {
        if src.is_unspecified() || src.is_multicast() || mac.is_group() {
            return;
        }
        match self.entries.get_mut(&src) {
            Some(n) => {
                if n.mac != Some(mac) {
                    if n.state == NudState::Incomplete {
                        self.stats.resolved += 1;
                    }
                    n.mac = Some(mac);
                    n.state = NudState::Stale;
                    n.deadline = None;
                    n.sent = 0;
                }
                n.last_used = n.last_used.max(now);
            }
            None => {
                if !self.make_room() {
                    return;
                }
                self.entries.insert(
                    src,
                    Neighbor {
                        state: NudState::Stale,
                        mac: Some(mac),
                        deadline: None,
                        sent: 0,
                        queue: VecDeque::new(),
                        last_used: now,
                    },
                );
            }
        }
        self.release(src);
    }

    /// An advertisement for `target` (RFC 4861 §7.2.5). Only updates an existing entry:
    /// an unsolicited advertisement for a neighbour we never talked to is ignored.
    pub fn on_advertisement(
        &mut self,
        target: Ipv6Addr,
        mac: Option<MacAddr>,
        flags: u8,
        now: Instant,
    ) {
        let solicited = flags & FLAG_SOLICITED != 0;
        let override_ = flags & FLAG_OVERRIDE != 0;
        let reachable_time = self.config.reachable_time;
        let Some(n) = self.entries.get_mut(&target) else {
            return;
        };
        if n.state == NudState::Incomplete {
            // Without a target link-layer address it teaches nothing.
            let Some(mac) = mac else { return };
            n.mac = Some(mac);
            (n.state, n.deadline) = if solicited {
                (NudState::Reachable, Some(now + reachable_time))
            } else {
                (NudState::Stale, None)
            };
            n.sent = 0;
            self.stats.resolved += 1;
            self.release(target);
            return;
        }
        let changed = mac.is_some_and(|m| Some(m) != n.mac);
        if !override_ && changed {
            // Another address without Override: do not believe it, but our entry is now
            // suspect (REACHABLE becomes STALE).
            if n.state == NudState::Reachable {
                n.state = NudState::Stale;
                n.deadline = None;
            }
            return;
        }
        if let Some(m) = mac {
            n.mac = Some(m);
        }
        if solicited {
            n.state = NudState::Reachable;
            n.deadline = Some(now + reachable_time);
            n.sent = 0;
        } else if changed {
            n.state = NudState::Stale;
            n.deadline = None;
        }
    }

    /// The next solicitation to send.
    pub fn poll_solicit(&mut self) -> Option<Solicit> {
        self.solicits.pop_front()
    }

    /// The next resolved packet to send.
    pub fn poll_released(&mut self) -> Option<(MacAddr, Vec<u8>)> {
        self.released.pop_front()
    }

    /// When [`NeighborCache::handle_timeout`] is next due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries.values().filter_map(|n| n.deadline).min()
    }

    /// Fire due timers: retransmit solicitations, age REACHABLE to STALE, move DELAY to
    /// PROBE, and give up on neighbours that never answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (ip, n) in self.entries.iter_mut() {
            if n.deadline.is_none_or(|d| d > now) {
                continue;
            }
            match n.state {
                NudState::Reachable => {
                    n.state = NudState::Stale;
                    n.deadline = None;
                }
                NudState::Delay => {
                    n.state = NudState::Probe;
                    n.sent = 1;
                    n.deadline = Some(now + self.config.retrans_timer);
                    self.solicits.push_back(Solicit {
                        target: *ip,
                        unicast: n.mac,
                    });
                    self.stats.solicitations_sent += 1;
                }
                NudState::Incomplete | NudState::Probe => {
                    let max = if n.state == NudState::Incomplete {
                        self.config.max_multicast_solicit
                    } else {
                        self.config.max_unicast_solicit
                    };
                    if n.sent >= max {
                        gone.push(*ip);
                        continue;
                    }
                    n.sent += 1;
                    n.deadline = Some(now + self.config.retrans_timer);
                    let unicast = if n.state == NudState::Probe {
                        n.mac
                    } else {
                        None
                    };
                    self.solicits.push_back(Solicit {
                        target: *ip,
                        unicast,
                    });
                    self.stats.solicitations_sent += 1;
                }
                NudState::Stale => n.deadline = None,
            }
        }
        for ip in gone {
            // RFC 4861 §7.3.3: the neighbour is unreachable; its waiting packets are
            // dropped (an ICMPv6 address unreachable to a local sender is left out: the
            // only sender here is our own host, which learns it from its own timers).
            log::debug!("ndp: {ip} unreachable, entry removed");
            self.stats.unreachable += 1;
            self.remove(ip);
        }
    }
}

/// Duplicate address detection of our one address (RFC 4862 §5.4), as a small state
/// machine: the probe is queued at start, the deadline is set the first time the caller
/// passes the time, and the address is usable once RetransTimer × DupAddrDetectTransmits
/// (1 s × 1) passed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// Probe sent; the wait starts at the first `now` the caller passes.
    Tentative {
        /// When the address becomes preferred (`None`: not started).
        until: Option<Instant>,
    },
    /// The address is ours.
    Preferred,
    /// Someone else has it: we must not use it (RFC 4862 §5.4.5).
    Duplicate,
}

impl Dad {
    /// Pass the time: start the wait or finish it. True when it just finished.
    pub fn tick(&mut self, now: Instant, wait: Duration) -> bool {
        match *self {
            Dad::Tentative { until: None } => {
                *self = Dad::Tentative {
                    until: Some(now + wait),
                };
                false
            }
            Dad::Tentative { until: Some(t) } if now >= t => {
                *self = Dad::Preferred;
                true
            }
            _ => false,
        }
    }

    /// When [`Dad::tick`] has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        match self {
            // Not started: due at once, so the first round starts the wait.
            Dad::Tentative { until: None } => Some(Instant::ZERO),
            Dad::Tentative { until } => *until,
            _ => None,
        }
    }

    /// The address may be used as a source and answered for.
    pub fn usable(&self) -> bool {
        *self == Dad::Preferred
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0xab, 0xcdef);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    #[test]
    fn solicitation_and_advertisement_round_trip() {
        let ns = solicitation(A, MAC, B);
        let p = ipv6::Ipv6Packet::parse(&ns).unwrap();
        assert_eq!(p.dst, "ff02::1:ffab:cdef".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(p.dst),
            MacAddr([0x33, 0x33, 0xff, 0xab, 0xcd, 0xef])
        );
        let m = parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!((m.kind, m.target, m.link_addr), (TYPE_NS, B, Some(MAC)));

        let na = advertisement(B, MAC, A);
        let p = ipv6::Ipv6Packet::parse(&na).unwrap();
        let m = parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!((m.kind, m.target, m.link_addr), (TYPE_NA, B, Some(MAC)));
        assert_eq!(p.payload[4], 0x60, "solicited + override");
    }

    #[test]
    fn validation() {
        let ns = solicitation(A, MAC, B);
        let p = ipv6::Ipv6Packet::parse(&ns).unwrap();
        assert!(
            parse(p.src, p.dst, 64, p.payload).is_none(),
            "hop limit must be 255"
        );
        assert!(
            parse(A, A, 255, p.payload).is_none(),
            "checksum binds the addresses"
        );
        let mut zero_len = p.payload.to_vec();
        zero_len[25] = 0;
        assert!(parse(p.src, p.dst, 255, &zero_len).is_none());
        for n in 0..p.payload.len() {
            let _ = parse(p.src, p.dst, 255, &p.payload[..n]);
        }
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    const C: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
    const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    #[test]
    fn incomplete_queues_a_bounded_number_and_retransmits() {
        let mut c = NeighborCache::new(NdpConfig {
            max_queued: 2,
            ..NdpConfig::default()
        });
        for i in 0..3u8 {
            assert_eq!(c.send(B, vec![i], t(0)), Resolution6::Queued);
        }
        assert_eq!(
            c.poll_solicit(),
            Some(Solicit {
                target: B,
                unicast: None
            })
        );
        assert_eq!(c.poll_solicit(), None, "one solicitation per RetransTimer");
        assert_eq!((c.queued(), c.stats().queue_drops), (2, 1));
        assert_eq!(c.poll_at(), Some(t(1000)));
        c.handle_timeout(t(999));
        assert_eq!(c.poll_solicit(), None);
        c.handle_timeout(t(1000));
        assert!(c.poll_solicit().is_some());
        // The solicited answer: REACHABLE, and the newest packets go, oldest first.
        c.on_advertisement(B, Some(MAC), FLAG_SOLICITED, t(1500));
        assert_eq!(c.state(B), Some((NudState::Reachable, Some(MAC))));
        assert_eq!(c.poll_released(), Some((MAC, vec![1])));
        assert_eq!(c.poll_released(), Some((MAC, vec![2])));
        assert_eq!((c.queued(), c.stats().resolved), (0, 1));
    }

    #[test]
    fn reachable_stale_delay_probe_and_back() {
        let mut c = NeighborCache::new(NdpConfig::default());
        c.send(B, vec![0], t(0));
        c.poll_solicit();
        c.on_advertisement(B, Some(MAC), FLAG_SOLICITED | FLAG_OVERRIDE, t(100));
        c.poll_released();
        assert_eq!(c.send(B, vec![1], t(200)), Resolution6::Ready(MAC, vec![1]));
        // ReachableTime (30 s) without confirmation: STALE, still used.
        c.handle_timeout(t(30_100));
        assert_eq!(c.state(B), Some((NudState::Stale, Some(MAC))));
        assert_eq!(c.poll_at(), None, "STALE has no timer");
        // A packet to a STALE neighbour goes at once and starts DELAY (5 s).
        assert_eq!(
            c.send(B, vec![2], t(40_000)),
            Resolution6::Ready(MAC, vec![2])
        );
        assert_eq!(c.state(B).map(|s| s.0), Some(NudState::Delay));
        assert_eq!(c.poll_at(), Some(t(45_000)));
        c.handle_timeout(t(45_000));
        // PROBE: unicast solicitations to the cached address.
        assert_eq!(c.state(B).map(|s| s.0), Some(NudState::Probe));
        assert_eq!(
            c.poll_solicit(),
            Some(Solicit {
                target: B,
                unicast: Some(MAC)
            })
        );
        c.handle_timeout(t(46_000));
        assert!(c.poll_solicit().is_some());
        // Packets still go while probing.
        assert_eq!(
            c.send(B, vec![3], t(46_500)),
            Resolution6::Ready(MAC, vec![3])
        );
        c.on_advertisement(B, Some(MAC), FLAG_SOLICITED, t(46_600));
        assert_eq!(c.state(B).map(|s| s.0), Some(NudState::Reachable));
        assert_eq!(c.poll_at(), Some(t(76_600)));
    }

    #[test]
    fn probes_unanswered_remove_the_neighbour() {
        let mut c = NeighborCache::new(NdpConfig::default());
        c.on_solicitation(B, MAC, t(0));
        assert_eq!(c.state(B), Some((NudState::Stale, Some(MAC))));
        c.send(B, vec![1], t(0));
        c.handle_timeout(t(5000));
        for at in [6000, 7000, 8000] {
            assert!(c.poll_solicit().is_some());
            c.handle_timeout(t(at));
        }
        // MAX_UNICAST_SOLICIT (3) probes unanswered.
        assert_eq!(c.poll_solicit(), None);
        assert_eq!(c.state(B), None);
        assert_eq!(c.stats().unreachable, 1);
        // The next packet starts over with multicast resolution.
        assert_eq!(c.send(B, vec![2], t(9000)), Resolution6::Queued);
        assert_eq!(c.poll_solicit().map(|s| s.unicast), Some(None));
    }

    #[test]
    fn advertisements_follow_the_override_rules() {
        let mut c = NeighborCache::new(NdpConfig::default());
        // Unsolicited advertisement for a neighbour we never asked about: ignored.
        c.on_advertisement(B, Some(MAC), FLAG_OVERRIDE, t(0));
        assert_eq!(c.state(B), None);
        c.send(B, vec![], t(0));
        c.on_advertisement(B, None, FLAG_SOLICITED, t(1));
        assert_eq!(
            c.state(B),
            Some((NudState::Incomplete, None)),
            "no address, no news"
        );
        c.on_advertisement(B, Some(MAC), FLAG_SOLICITED, t(2));
        assert_eq!(c.poll_released(), Some((MAC, vec![])));
        // Another address without Override: not believed, but REACHABLE becomes STALE.
        c.on_advertisement(B, Some(MAC2), FLAG_SOLICITED, t(3));
        assert_eq!(c.state(B), Some((NudState::Stale, Some(MAC))));
        // With Override and unsolicited: the new address, STALE.
        c.on_advertisement(B, Some(MAC2), FLAG_OVERRIDE, t(4));
        assert_eq!(c.state(B), Some((NudState::Stale, Some(MAC2))));
        // A solicitation with a new address updates it, STALE (RFC 4861 §7.2.3).
        c.on_solicitation(B, MAC, t(5));
        assert_eq!(c.state(B), Some((NudState::Stale, Some(MAC))));
        // An unsolicited advertisement from an INCOMPLETE neighbour resolves it STALE.
        c.send(C, vec![9], t(6));
        c.on_advertisement(C, Some(MAC2), FLAG_OVERRIDE, t(7));
        assert_eq!(c.state(C), Some((NudState::Stale, Some(MAC2))));
        assert_eq!(c.poll_released(), Some((MAC2, vec![9])));
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = NeighborCache::new(NdpConfig {
            max_entries: 2,
            max_queued_total: 3,
            ..NdpConfig::default()
        });
        c.on_solicitation(A, MAC, t(0));
        c.send(B, vec![1], t(1));
        c.send(B, vec![2], t(1));
        // Full: the STALE entry (A) is evicted for C.
        assert_eq!(c.send(C, vec![3], t(2)), Resolution6::Queued);
        assert_eq!((c.state(A), c.stats().evictions), (None, 1));
        // Full of INCOMPLETE entries: a new neighbour is refused.
        let d = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4);
        assert_eq!(c.send(d, vec![4], t(3)), Resolution6::Dropped);
        // The total queue bound holds across neighbours.
        assert_eq!(c.send(C, vec![5], t(3)), Resolution6::Dropped);
        assert_eq!(c.queued(), 3);
        assert!(c.len() <= 2);
    }

    #[test]
    fn dad_and_multicast_rules_are_validated() {
        // A DAD probe has no source link-layer option and goes to the solicited-node group.
        let probe = dad_probe(B);
        let p = ipv6::Ipv6Packet::parse(&probe).unwrap();
        let m = parse(p.src, p.dst, p.hop_limit, p.payload).unwrap();
        assert_eq!((m.kind, m.target, m.link_addr), (TYPE_NS, B, None));
        // From :: to another group: invalid (RFC 4861 §7.1.1).
        assert!(parse(
            p.src,
            ALL_NODES,
            255,
            &icmp_with(p.src, ALL_NODES, p.payload)
        )
        .is_none());
        // From :: with a source link-layer address: invalid.
        let with_ll = build(
            Ipv6Addr::UNSPECIFIED,
            p.dst,
            TYPE_NS,
            0,
            B,
            Some((OPT_SOURCE_LL, MAC)),
        );
        let q = ipv6::Ipv6Packet::parse(&with_ll).unwrap();
        assert!(parse(q.src, q.dst, q.hop_limit, q.payload).is_none());
        // A solicited advertisement to a multicast group: invalid (RFC 4861 §7.1.2).
        let bad = build(
            A,
            ALL_NODES,
            TYPE_NA,
            FLAG_SOLICITED,
            A,
            Some((OPT_TARGET_LL, MAC)),
        );
        let q = ipv6::Ipv6Packet::parse(&bad).unwrap();
        assert!(parse(q.src, q.dst, q.hop_limit, q.payload).is_none());
        let good = defence(A, MAC);
        let q = ipv6::Ipv6Packet::parse(&good).unwrap();
        assert_eq!(
            parse(q.src, q.dst, q.hop_limit, q.payload).map(|m| m.flags),
            Some(FLAG_OVERRIDE)
        );
    }

    /// `message` with its checksum recomputed for `src → dst`.
    fn icmp_with(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Vec<u8> {
        let mut m = message.to_vec();
        m[2..4].copy_from_slice(&[0, 0]);
        let len = m.len() as u32;
        let sum = checksum_with(pseudo_header_sum(src, dst, NEXT_ICMPV6, len), &m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    #[test]
    fn dad_waits_from_the_first_time_it_is_given() {
        let mut d = Dad::Tentative { until: None };
        assert_eq!(d.poll_at(), Some(Instant::ZERO));
        assert!(!d.tick(t(5000), Duration::from_secs(1)));
        assert_eq!(d.poll_at(), Some(t(6000)));
        assert!(!d.usable());
        assert!(!d.tick(t(5999), Duration::from_secs(1)));
        assert!(d.tick(t(6000), Duration::from_secs(1)));
        assert!(d.usable());
        assert_eq!(d.poll_at(), None);
    }
}
