//! ARP, the Address Resolution Protocol (RFC 826): which MAC address has this IPv4 address?
//!
//! Two parts, both sans-IO:
//! - [`ArpPacket`]: the message format for Ethernet + IPv4 (parse, validate, emit);
//! - [`ArpCache`]: the translation table with what RFC 826 and RFC 1122 §2.3.2 ask of a
//!   host: entries that expire (§2.3.2.1: "a mechanism to flush out-of-date cache entries"),
//!   a bounded queue of packets waiting for a resolution (§2.3.2.2: "SHOULD save (rather
//!   than discard) at least one (the latest) packet"), and requests retransmitted with
//!   backoff but at a bounded rate (§2.3.2.1: "MUST also include a mechanism to prevent ARP
//!   flooding").
//!
//! ```text
//!  0        2        4    5    6        8                14           18               24           28
//!  +--------+--------+----+----+--------+----------------+------------+----------------+------------+
//!  | htype 1| ptype  |hlen|plen| oper   | sender MAC     | sender IP  | target MAC     | target IP  |
//!  |(Ether) | 0x0800 | 6  | 4  | 1=req  | (sha)          | (spa)      | (tha)          | (tpa)      |
//!  |        |        |    |    | 2=reply|                |            |                |            |
//!  +--------+--------+----+----+--------+----------------+------------+----------------+------------+
//! ```
//!
//! The cache's life cycle of one neighbour:
//!
//! ```text
//!   send(ip) ──▶ INCOMPLETE ── reply/request from ip ──▶ RESOLVED ── ttl passes ──▶ (gone)
//!   (request     │  queue packets; re-request after          (send directly; used
//!    broadcast)  │  1 s, 2 s, 4 s … (backoff)                 near expiry: one refresh
//!                │                                            request, reply extends it)
//!                └── max requests unanswered ──▶ (gone, queued packets dropped)
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::ethernet::{MacAddr, ETHERTYPE_IPV4};
use crate::time::Instant;

/// Length of an ARP message for Ethernet and IPv4.
pub const PACKET_LEN: usize = 28;
/// `ar$hrd` for Ethernet (RFC 826; IANA hardware type 1).
pub const HTYPE_ETHERNET: u16 = 1;
/// `ar$op` of a request.
pub const OP_REQUEST: u16 = 1;
/// `ar$op` of a reply.
pub const OP_REPLY: u16 = 2;

/// Why an ARP message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Fewer than 28 bytes.
    TooShort(usize),
    /// A hardware type, protocol type or address length other than Ethernet/IPv4: RFC 826
    /// says to discard what we do not speak.
    Unsupported,
    /// An operation other than request or reply (RARP and InARP are other protocols).
    BadOperation(u16),
}

impl ArpError {
    /// A short stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            ArpError::TooShort(_) => "arp-too-short",
            ArpError::Unsupported => "arp-unsupported",
            ArpError::BadOperation(_) => "arp-bad-operation",
        }
    }
}

impl fmt::Display for ArpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArpError::TooShort(n) => write!(f, "{n} bytes is shorter than an ARP message"),
            ArpError::Unsupported => write!(f, "not an Ethernet/IPv4 ARP message"),
            ArpError::BadOperation(op) => write!(f, "ARP operation {op}"),
        }
    }
}

impl std::error::Error for ArpError {}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// [`OP_REQUEST`] or [`OP_REPLY`].
    pub operation: u16,
    /// Sender hardware address (`ar$sha`).
    pub sender_mac: MacAddr,
    /// Sender protocol address (`ar$spa`).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (`ar$tha`); zero in a request.
    pub target_mac: MacAddr,
    /// Target protocol address (`ar$tpa`): whose MAC is asked for.
    pub target_ip: Ipv4Addr,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ])
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    if let Some(s) = b.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    MacAddr(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    Ipv4Addr::from(a)
}

impl ArpPacket {
    /// Parse and validate (trailing Ethernet padding is ignored).
    pub fn parse(bytes: &[u8]) -> Result<ArpPacket, ArpError> {
        if bytes.len() < PACKET_LEN {
            return Err(ArpError::TooShort(bytes.len()));
        }
        // RFC 826 "Packet Reception": ?Do I have the hardware type in ar$hrd? ?Do I speak
        // the protocol in ar$pro? If not, discard. The lengths must match those types.
        let supported = be16(bytes, 0) == HTYPE_ETHERNET
            && be16(bytes, 2) == ETHERTYPE_IPV4
            && bytes.get(4) == Some(&6)
            && bytes.get(5) == Some(&4);
        if !supported {
            return Err(ArpError::Unsupported);
        }
        let operation = be16(bytes, 6);
        if operation != OP_REQUEST && operation != OP_REPLY {
            return Err(ArpError::BadOperation(operation));
        }
        Ok(ArpPacket {
            operation,
            sender_mac: mac_at(bytes, 8),
            sender_ip: ip_at(bytes, 14),
            target_mac: mac_at(bytes, 18),
            target_ip: ip_at(bytes, 24),
        })
    }

    /// The 28 bytes of the message.
    pub fn emit(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(PACKET_LEN);
        b.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        b.extend_from_slice(&[6, 4]);
        b.extend_from_slice(&self.operation.to_be_bytes());
        b.extend_from_slice(&self.sender_mac.0);
        b.extend_from_slice(&self.sender_ip.octets());
        b.extend_from_slice(&self.target_mac.0);
        b.extend_from_slice(&self.target_ip.octets());
        b
    }

    /// A request "who has `target_ip`? tell `sender_ip`" (target MAC unknown: zero).
    pub fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: OP_REQUEST,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    /// A gratuitous ARP (an *announcement*, RFC 5227 §2.3): a request whose sender and
    /// target address are both ours, broadcast so that neighbours update their caches.
    pub fn announcement(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket::request(mac, ip, ip)
    }

    /// Whether sender and target IP are the same (a gratuitous ARP).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Limits and timers of the cache.
#[derive(Debug, Clone)]
pub struct ArpConfig {
    /// Most entries (resolved + in progress); beyond it the entry closest to expiry is
    /// evicted, and if every entry is still resolving the new packet is dropped.
    pub max_entries: usize,
    /// How long a resolved entry is trusted (Linux: `base_reachable_time` 30 s, randomised;
    /// RFC 1122 §2.3.2.1 leaves the value to us).
    pub entry_ttl: Duration,
    /// Wait for a reply before the first retransmission; doubled after each (backoff).
    pub retry_initial: Duration,
    /// An entry still in use this long before it expires is re-requested once (the packet
    /// is sent with the known MAC meanwhile).
    pub refresh_before: Duration,
    /// Requests sent in total for one resolution before giving up (Linux `mcast_solicit` 3).
    pub max_requests: u32,
    /// Packets kept per address while it resolves (Linux `unres_qlen` is a byte budget; ours
    /// counts packets). When full, the oldest is dropped: the latest is the one to keep
    /// (RFC 1122 §2.3.2.2).
    pub max_queued: usize,
    /// Packets kept while resolving, over all addresses.
    pub max_queued_total: usize,
}

impl Default for ArpConfig {
    fn default() -> ArpConfig {
        ArpConfig {
            max_entries: 256,
            entry_ttl: Duration::from_secs(60),
            retry_initial: Duration::from_secs(1),
            refresh_before: Duration::from_secs(5),
            max_requests: 3,
            max_queued: 16,
            max_queued_total: 256,
        }
    }
}

/// ARP counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArpStats {
    /// Requests we broadcast (first tries, retries and announcements).
    pub requests_sent: u64,
    /// Replies we sent to requests for our address.
    pub replies_sent: u64,
    /// Valid requests received (for any target).
    pub requests_received: u64,
    /// Valid replies received.
    pub replies_received: u64,
    /// Resolutions that completed.
    pub resolved: u64,
    /// Resolutions abandoned after `max_requests` unanswered requests.
    pub timeouts: u64,
    /// Packets dropped because a queue was full, the cache was full or resolution failed.
    pub queue_drops: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// ARP messages claiming our own IP from another MAC (an address conflict, RFC 5227).
    pub conflicts: u64,
}

#[derive(Debug)]
enum Entry {
    Resolved {
        mac: MacAddr,
        expires: Instant,
        /// A refresh request went out for this entry (see [`ArpConfig::refresh_before`]).
        refreshing: bool,
    },
    Incomplete {
        queue: VecDeque<Vec<u8>>,
        requests_sent: u32,
        next_retry: Instant,
    },
}

/// What [`ArpCache::send`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The address is known: send the packet to this MAC now.
    Ready(MacAddr, Vec<u8>),
    /// Queued until a reply arrives; a request may be waiting in [`ArpCache::poll_request`].
    Queued,
    /// Dropped (the reason is counted in [`ArpStats::queue_drops`] and logged).
    Dropped,
}

/// The translation table `IPv4 → MAC` with pending resolutions. Sans-IO: the caller turns
/// [`ArpCache::poll_request`] into frames and sends [`ArpCache::poll_released`] packets.
#[derive(Debug)]
pub struct ArpCache {
    config: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    queued_total: usize,
    requests: VecDeque<Ipv4Addr>,
    released: VecDeque<(MacAddr, Vec<u8>)>,
    stats: ArpStats,
}

impl ArpCache {
    /// An empty cache.
    pub fn new(config: ArpConfig) -> ArpCache {
        ArpCache {
            config,
            entries: HashMap::new(),
            queued_total: 0,
            requests: VecDeque::new(),
            released: VecDeque::new(),
            stats: ArpStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ArpStats {
        &self.stats
    }

    /// Counters, for the layer that sends and receives the messages.
    pub fn stats_mut(&mut self) -> &mut ArpStats {
        &mut self.stats
    }

    /// Number of entries (resolved or resolving).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting for a resolution, over all addresses.
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// The MAC of `ip` if resolved and not expired.
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        match self.entries.get(&ip) {
            Some(Entry::Resolved { mac, expires, .. }) if *expires > now => Some(*mac),
            _ => None,
        }
    }

    /// Record that `ip` is at `mac` (RFC 826 "merge"). Only an existing entry is updated
    /// unless `create` is set — RFC 826 adds a new entry only when the message was aimed at
    /// us, so that a broadcast does not fill every host's table. Completing a resolution
    /// releases its queued packets to [`ArpCache::poll_released`]. Returns whether an
    /// entry existed (RFC 826's `Merge_flag`).
    pub fn update(&mut self, ip: Ipv4Addr, mac: MacAddr, create: bool, now: Instant) -> bool {
        let expires = now + self.config.entry_ttl;
        let existed = match self.entries.get_mut(&ip) {
            Some(entry) => {
                if let Entry::Incomplete { queue, .. } = entry {
                    self.queued_total = self.queued_total.saturating_sub(queue.len());
                    self.stats.resolved += 1;
                    log::debug!("arp: {ip} is at {mac}, releasing {} packets", queue.len());
                    for p in queue.drain(..) {
                        self.released.push_back((mac, p));
                    }
                }
                *entry = Entry::Resolved {
                    mac,
                    expires,
                    refreshing: false,
                };
                true
            }
            None => false,
        };
        if !existed && create && self.make_room(now) {
            log::debug!("arp: learned {ip} is at {mac}");
            self.entries.insert(
                ip,
                Entry::Resolved {
                    mac,
                    expires,
                    refreshing: false,
                },
            );
        }
        existed
    }

    /// Send `packet` to next hop `ip`: `Ready` when its MAC is known, else queue it and start
    /// (or continue) a resolution.
    pub fn send(&mut self, ip: Ipv4Addr, packet: Vec<u8>, now: Instant) -> Resolution {
        match self.entries.get_mut(&ip) {
            Some(Entry::Resolved {
                mac,
                expires,
                refreshing,
            }) if *expires > now => {
                // An entry in use is re-validated shortly before it expires, so an active
                // flow never stalls on a fresh resolution (Linux's STALE → PROBE does the
                // same job). The reply merges into the entry and extends it.
                if !*refreshing && now + self.config.refresh_before >= *expires {
                    *refreshing = true;
                    log::debug!("arp: refreshing {ip} (in use, about to expire)");
                    self.requests.push_back(ip);
                }
                return Resolution::Ready(*mac, packet);
            }
            Some(Entry::Incomplete { queue, .. }) => {
                if self.queued_total >= self.config.max_queued_total {
                    self.stats.queue_drops += 1;
                    log::debug!("arp: queue for all neighbours full, dropped packet for {ip}");
                    return Resolution::Dropped;
                }
                if self.config.max_queued == 0 {
                    self.stats.queue_drops += 1;
                    return Resolution::Dropped;
                }
                if queue.len() >= self.config.max_queued && queue.pop_front().is_some() {
                    // Keep the latest (RFC 1122 §2.3.2.2): drop the oldest.
                    self.queued_total = self.queued_total.saturating_sub(1);
                    self.stats.queue_drops += 1;
                    log::debug!("arp: queue for {ip} full, dropped its oldest packet");
                }
                queue.push_back(packet);
                self.queued_total += 1;
                return Resolution::Queued;
            }
            // Expired: resolve again (below).
            Some(Entry::Resolved { .. }) => {
                self.entries.remove(&ip);
            }
            None => {}
        }
        if self.queued_total >= self.config.max_queued_total || !self.make_room(now) {
            self.stats.queue_drops += 1;
            log::debug!("arp: cache or queues full, dropped packet for {ip}");
            return Resolution::Dropped;
        }
        log::debug!("arp: resolving {ip}");
        // With no queue at all the resolution still starts; only the packet is lost.
        let keep = self.config.max_queued > 0;
        let queue = if keep {
            VecDeque::from([packet])
        } else {
            VecDeque::new()
        };
        self.entries.insert(
            ip,
            Entry::Incomplete {
                queue,
                requests_sent: 1,
                next_retry: now + self.config.retry_initial,
            },
        );
        self.requests.push_back(ip);
        if keep {
            self.queued_total += 1;
            Resolution::Queued
        } else {
            self.stats.queue_drops += 1;
            Resolution::Dropped
        }
    }

    /// Make space for one more entry: drop expired ones, then evict the resolved entry that
    /// expires first. `false` if every entry is a resolution in progress.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        self.entries
            .retain(|_, e| !matches!(e, Entry::Resolved { expires, .. } if *expires <= now));
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter_map(|(ip, e)| match e {
                Entry::Resolved { expires, .. } => Some((*expires, *ip)),
                Entry::Incomplete { .. } => None,
            })
            .min();
        match victim {
            Some((_, ip)) => {
                self.entries.remove(&ip);
                self.stats.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// The next address to broadcast a request for.
    pub fn poll_request(&mut self) -> Option<Ipv4Addr> {
        self.requests.pop_front()
    }

    /// The next queued packet whose next hop became known, with that MAC.
    pub fn poll_released(&mut self) -> Option<(MacAddr, Vec<u8>)> {
        self.released.pop_front()
    }

    /// When [`ArpCache::handle_timeout`] next has something to do (a retransmission or a
    /// give-up). Resolved entries expire lazily and need no timer.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e {
                Entry::Incomplete { next_retry, .. } => Some(*next_retry),
                Entry::Resolved { .. } => None,
            })
            .min()
    }

    /// Retransmit due requests with exponential backoff; abandon resolutions that used up
    /// `max_requests`, dropping their packets (RFC 1122 §2.3.2.2 would also allow an ICMP
    /// host unreachable; the packets we queue are our own, and TCP retransmits).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for (ip, entry) in self.entries.iter_mut() {
            if let Entry::Incomplete {
                queue,
                requests_sent,
                next_retry,
            } = entry
            {
                if *next_retry > now {
                    continue;
                }
                if *requests_sent >= self.config.max_requests {
                    failed.push((*ip, queue.len()));
                    continue;
                }
                // Backoff: 1 s, 2 s, 4 s, … after the first request (capped so the shift
                // cannot overflow).
                let factor = 1u32 << (*requests_sent).min(16);
                *next_retry = now + self.config.retry_initial.saturating_mul(factor);
                *requests_sent += 1;
                self.requests.push_back(*ip);
            }
        }
        for (ip, dropped) in failed {
            log::debug!("arp: no reply from {ip}; dropped {dropped} queued packets");
            self.entries.remove(&ip);
            self.queued_total = self.queued_total.saturating_sub(dropped);
            self.stats.timeouts += 1;
            self.stats.queue_drops += dropped as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn packet_round_trip_and_agrees_with_etherparse() {
        let p = ArpPacket::request(MAC_A, A, B);
        let bytes = p.emit();
        assert_eq!(bytes.len(), PACKET_LEN);
        assert_eq!(ArpPacket::parse(&bytes), Ok(p));
        // Ethernet padding after the message is ignored.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(ArpPacket::parse(&padded), Ok(p));
        let theirs = etherparse::ArpPacketSlice::from_slice(&bytes).unwrap();
        assert_eq!(theirs.operation(), etherparse::ArpOperation::REQUEST);
        assert_eq!(theirs.sender_protocol_addr(), &A.octets()[..]);
        assert_eq!(theirs.target_protocol_addr(), &B.octets()[..]);
        assert!(ArpPacket::announcement(MAC_A, A).is_gratuitous());
    }

    #[test]
    fn packet_validation() {
        let good = ArpPacket::request(MAC_A, A, B).emit();
        assert_eq!(ArpPacket::parse(&good[..27]), Err(ArpError::TooShort(27)));
        for (at, value) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert_eq!(
                ArpPacket::parse(&bad),
                Err(ArpError::Unsupported),
                "byte {at}"
            );
        }
        let mut rarp = good.clone();
        rarp[7] = 3;
        assert_eq!(ArpPacket::parse(&rarp), Err(ArpError::BadOperation(3)));
        for n in 0..good.len() {
            let _ = ArpPacket::parse(&good[..n]);
        }
    }

    #[test]
    fn resolution_queues_then_releases_in_order() {
        let mut c = ArpCache::new(ArpConfig::default());
        assert_eq!(c.send(B, vec![1], t(0)), Resolution::Queued);
        assert_eq!(c.send(B, vec![2], t(1)), Resolution::Queued);
        // One request, not one per packet.
        assert_eq!(c.poll_request(), Some(B));
        assert_eq!(c.poll_request(), None);
        assert_eq!(c.queued(), 2);
        assert!(c.update(B, MAC_B, false, t(5)));
        assert_eq!(c.poll_released(), Some((MAC_B, vec![1])));
        assert_eq!(c.poll_released(), Some((MAC_B, vec![2])));
        assert_eq!(c.poll_released(), None);
        assert_eq!(c.queued(), 0);
        assert_eq!(c.send(B, vec![3], t(6)), Resolution::Ready(MAC_B, vec![3]));
        assert_eq!(c.stats().resolved, 1);
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn merge_only_creates_when_asked() {
        let mut c = ArpCache::new(ArpConfig::default());
        assert!(!c.update(A, MAC_A, false, t(0)));
        assert_eq!(c.lookup(A, t(0)), None);
        assert!(!c.update(A, MAC_A, true, t(0)));
        assert_eq!(c.lookup(A, t(0)), Some(MAC_A));
        // A later message updates the MAC (a host changed its card) and the expiry.
        assert!(c.update(A, MAC_B, false, t(10)));
        assert_eq!(c.lookup(A, t(10)), Some(MAC_B));
    }

    #[test]
    fn entries_expire_and_are_resolved_again() {
        let config = ArpConfig {
            entry_ttl: Duration::from_secs(60),
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(config);
        c.update(B, MAC_B, true, t(0));
        assert_eq!(c.lookup(B, t(59_999)), Some(MAC_B));
        assert_eq!(c.lookup(B, t(60_000)), None);
        assert_eq!(c.send(B, vec![9], t(60_000)), Resolution::Queued);
        assert_eq!(c.poll_request(), Some(B));
    }

    #[test]
    fn entries_in_use_are_refreshed_before_they_expire() {
        let mut c = ArpCache::new(ArpConfig::default());
        c.update(B, MAC_B, true, t(0));
        assert_eq!(
            c.send(B, vec![1], t(1_000)),
            Resolution::Ready(MAC_B, vec![1])
        );
        assert_eq!(c.poll_request(), None, "fresh: no request");
        // Within 5 s of the 60 s expiry: still sent directly, plus one refresh request.
        assert_eq!(
            c.send(B, vec![2], t(55_000)),
            Resolution::Ready(MAC_B, vec![2])
        );
        assert_eq!(c.poll_request(), Some(B));
        assert_eq!(
            c.send(B, vec![3], t(56_000)),
            Resolution::Ready(MAC_B, vec![3])
        );
        assert_eq!(c.poll_request(), None, "one refresh, not one per packet");
        // The reply extends the entry: no stall at 60 s.
        c.update(B, MAC_B, false, t(56_100));
        assert_eq!(c.lookup(B, t(100_000)), Some(MAC_B));
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let config = ArpConfig {
            retry_initial: Duration::from_secs(1),
            max_requests: 3,
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(config);
        c.send(B, vec![1], t(0));
        assert_eq!(c.poll_request(), Some(B));
        assert_eq!(c.poll_at(), Some(t(1000)));
        c.handle_timeout(t(999));
        assert_eq!(c.poll_request(), None, "not yet due");
        c.handle_timeout(t(1000));
        assert_eq!(c.poll_request(), Some(B), "second request after 1 s");
        assert_eq!(c.poll_at(), Some(t(3000)), "then wait 2 s");
        c.handle_timeout(t(3000));
        assert_eq!(c.poll_request(), Some(B), "third request");
        assert_eq!(c.poll_at(), Some(t(7000)), "then wait 4 s");
        c.handle_timeout(t(7000));
        assert_eq!(c.poll_request(), None, "no fourth request");
        assert!(c.is_empty());
        assert_eq!(c.queued(), 0);
        assert_eq!(c.stats().timeouts, 1);
        assert_eq!(c.stats().queue_drops, 1);
        assert_eq!(c.poll_at(), None);
        // A later packet starts a fresh resolution.
        assert_eq!(c.send(B, vec![2], t(8000)), Resolution::Queued);
        assert_eq!(c.poll_request(), Some(B));
    }

    #[test]
    fn queues_are_bounded_and_keep_the_latest() {
        let config = ArpConfig {
            max_queued: 3,
            max_queued_total: 4,
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(config);
        for i in 0..5u8 {
            assert_eq!(c.send(B, vec![i], t(0)), Resolution::Queued);
        }
        assert_eq!(c.queued(), 3);
        assert_eq!(c.stats().queue_drops, 2);
        // The total bound holds across addresses.
        assert_eq!(c.send(A, vec![10], t(0)), Resolution::Queued);
        assert_eq!(c.send(A, vec![11], t(0)), Resolution::Dropped);
        assert_eq!(c.queued(), 4);
        c.update(B, MAC_B, false, t(1));
        let released: Vec<u8> = std::iter::from_fn(|| c.poll_released())
            .map(|(_, p)| p[0])
            .collect();
        assert_eq!(released, vec![2, 3, 4], "the oldest were dropped");
        assert_eq!(c.queued(), 1);
    }

    #[test]
    fn zero_queue_drops_everything_while_resolving() {
        let config = ArpConfig {
            max_queued: 0,
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(config);
        assert_eq!(c.send(B, vec![1], t(0)), Resolution::Dropped);
        assert_eq!(c.poll_request(), Some(B), "the resolution starts anyway");
        assert_eq!(c.send(B, vec![1], t(0)), Resolution::Dropped);
        assert_eq!(c.queued(), 0);
        c.update(B, MAC_B, true, t(0));
        assert_eq!(c.send(B, vec![2], t(1)), Resolution::Ready(MAC_B, vec![2]));
    }

    #[test]
    fn full_cache_evicts_the_resolved_entry_closest_to_expiry() {
        let config = ArpConfig {
            max_entries: 2,
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(config);
        c.update(A, MAC_A, true, t(0));
        c.update(B, MAC_B, true, t(10));
        let d = Ipv4Addr::new(10, 0, 0, 4);
        assert_eq!(c.send(d, vec![1], t(20)), Resolution::Queued);
        assert_eq!(c.lookup(A, t(20)), None, "A expired first: evicted");
        assert_eq!(c.lookup(B, t(20)), Some(MAC_B));
        assert_eq!(c.stats().evictions, 1);
        // Now one resolved (B) and one resolving (d): a new one evicts B, then nothing is left
        // to evict.
        let e = Ipv4Addr::new(10, 0, 0, 5);
        assert_eq!(c.send(e, vec![2], t(30)), Resolution::Queued);
        let f = Ipv4Addr::new(10, 0, 0, 6);
        assert_eq!(c.send(f, vec![3], t(30)), Resolution::Dropped);
        assert_eq!(c.len(), 2);
    }
}
