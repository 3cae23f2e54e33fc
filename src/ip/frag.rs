//! IPv4 fragment reassembly (RFC 791 §3.2, RFC 815), sans-IO.
//!
//! A datagram larger than a link's MTU travels as several *fragments*: IPv4 packets that
//! share the source, destination, protocol and identification (the key), each carrying a
//! piece of the payload at `fragment offset` (in 8-byte units), all but the last with the
//! More Fragments flag. The receiver collects the pieces until they cover the payload
//! without holes, then hands the whole datagram up.
//!
//! ```text
//!   payload of the original datagram (total length known once the MF=0 fragment arrived)
//!   0        1480       2960                4008
//!   ├─────────┼──────────┼───────────────────┤
//!   │ frag A  │  (hole)  │      frag C       │   A: offset 0, MF   C: offset 2960, no MF
//!   └─────────┴──────────┴───────────────────┘
//!             ▲ frag B (offset 1480, MF) fills the last hole → datagram complete
//! ```
//!
//! RFC 815 describes the bookkeeping as a list of *holes*; here the received pieces are kept
//! in a `BTreeMap` from start to end, which is the same information (the holes are the gaps)
//! and answers "does this piece overlap a neighbour?" in O(log n).
//!
//! Hostile input is the normal case for a reassembler (teardrop, ping of death, fragment
//! floods), so:
//! - **Overlaps drop the whole datagram.** RFC 791 lets a receiver accept overlapping
//!   data, but overlaps are how firewalls are evaded; RFC 5722 forbids them for IPv6 and we
//!   apply the same rule to IPv4 (as Linux does for IPv6 and, in effect, for IPv4 with
//!   inconsistent data). An *exact* duplicate (same range, same bytes) is harmless — links
//!   duplicate packets — and is ignored.
//! - **Bounded memory**: at most [`FragConfig::max_datagrams`] datagrams in progress and
//!   [`FragConfig::max_bytes`] bytes of buffers (a fixed overhead is charged per fragment
//!   so tiny fragments cannot exhaust us cheaply). Beyond a bound new fragments are
//!   dropped, as Linux does past `ipfrag_high_thresh`; old ones leave by timing out.
//! - **Bounded size**: a datagram may not exceed 65535 bytes (the "ping of death").
//! - **Timeout**: RFC 791 suggests 15 s and RFC 1122 §3.3.2 60–120 s; Linux uses 30 s
//!   (`ipfrag_time`), our default. The timer starts with the first fragment and is not
//!   extended. When a datagram whose first fragment (offset 0) arrived times out, the host
//!   should send ICMP Time Exceeded, code 1 (RFC 792; RFC 1122 §3.3.2): [`Reassembler::expire`]
//!   returns what is needed to do so.
//!
//! The reassembler never reads a clock: `now` is a parameter and [`Reassembler::poll_at`]
//! tells the caller when the next timeout is due.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::ipv4::{self, Ipv4Packet, MIN_HEADER_LEN};
use crate::time::Instant;

/// Largest datagram (header included) IPv4 can express: the total length is 16 bits.
pub const MAX_DATAGRAM_LEN: usize = u16::MAX as usize;
/// Default reassembly timeout (Linux `ipfrag_time`; RFC 791 suggests 15 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of bookkeeping charged per fragment on top of its data, so that a flood of tiny
/// fragments hits the memory bound as a flood of big ones would (like Linux's truesize).
pub const FRAGMENT_OVERHEAD: usize = 64;

/// Limits of the reassembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragConfig {
    /// How long a datagram may take to complete, counted from its first fragment.
    pub timeout: Duration,
    /// Most datagrams in progress at once.
    pub max_datagrams: usize,
    /// Most bytes held for all datagrams in progress (data + [`FRAGMENT_OVERHEAD`] each).
    pub max_bytes: usize,
}

impl Default for FragConfig {
    fn default() -> FragConfig {
        FragConfig {
            timeout: DEFAULT_TIMEOUT,
            max_datagrams: 64,
            // Linux's ipfrag_high_thresh.
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Counters of the reassembler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragStats {
    /// Fragments handed to [`Reassembler::insert`].
    pub fragments_in: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped because they did not complete in time.
    pub timeouts: u64,
    /// Datagrams dropped because two fragments overlapped (or a duplicate differed).
    pub overlaps: u64,
    /// Exact duplicate fragments ignored.
    pub duplicates: u64,
    /// Datagrams dropped because they would exceed 65535 bytes.
    pub too_big: u64,
    /// Fragments or datagrams dropped as inconsistent: a non-final fragment whose length is
    /// not a multiple of 8, an empty fragment, two different ends, data beyond the end.
    pub malformed: u64,
    /// Fragments dropped because a memory or table bound was reached.
    pub memory_full: u64,
}

/// What happened to a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragResult {
    /// The datagram is complete: a whole IPv4 packet (the first fragment's header with the
    /// total length fixed, the fragment fields cleared and the checksum recomputed, then the
    /// payload), ready for [`Ipv4Packet::parse`].
    Complete(Vec<u8>),
    /// Stored (or an exact duplicate ignored); more fragments are needed.
    Pending,
    /// Dropped; the reason is a stable statistics key. Depending on the reason the whole
    /// datagram in progress was dropped too (overlap, too big, inconsistent).
    Dropped(&'static str),
}

/// A datagram that timed out, for the ICMP Time Exceeded message (RFC 792 type 11, code 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// Source of the datagram: whom to tell.
    pub src: Ipv4Addr,
    /// The first fragment's header and the first 8 bytes of its data (what RFC 792 quotes),
    /// or `None` if the first fragment never arrived: then no ICMP may be sent (RFC 792:
    /// "If fragment zero is not available then no time exceeded need be sent at all").
    pub quote: Option<Vec<u8>>,
}

/// (source, destination, protocol, identification): RFC 791 §3.2's reassembly key.
type Key = (Ipv4Addr, Ipv4Addr, u8, u16);

/// One datagram in progress.
#[derive(Debug)]
struct Partial {
    /// When it times out (first fragment's arrival + timeout).
    deadline: Instant,
    /// The header to put in front of the reassembled payload, from the fragment at
    /// offset 0, once it arrived.
    header: Option<Vec<u8>>,
    /// What an ICMP time exceeded message quotes, from the fragment at offset 0.
    quote: Option<Vec<u8>>,
    /// The payload assembled so far; bytes in holes are zero.
    data: Vec<u8>,
    /// Received pieces: start → end (payload offsets), never overlapping.
    pieces: BTreeMap<usize, usize>,
    /// Payload length, known once the last fragment (MF = 0) arrived.
    total: Option<usize>,
    /// Payload bytes received (sum of the pieces' lengths).
    received: usize,
}

impl Partial {
    /// Memory charged for this datagram.
    fn cost(&self) -> usize {
        self.data
            .len()
            .saturating_add(self.pieces.len().saturating_mul(FRAGMENT_OVERHEAD))
            .saturating_add(self.header.as_ref().map_or(0, Vec::len))
            .saturating_add(self.quote.as_ref().map_or(0, Vec::len))
    }
}

/// One fragment as the family-independent core sees it: where its data goes, whether more
/// follow, and — for the fragment at offset 0 only — the header to rebuild the datagram
/// with and the ICMP quote.
#[derive(Debug)]
pub(crate) struct Piece<'a> {
    /// Offset of `data` in the original payload, in bytes.
    pub start: usize,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// The fragment's data.
    pub data: &'a [u8],
    /// (header, quote) of the first fragment; `None` for the others.
    pub first: Option<(Vec<u8>, Vec<u8>)>,
    /// Largest payload end the family can express.
    pub max_end: usize,
}

/// What the core made of a piece.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every byte arrived: the first fragment's header and the payload.
    Complete {
        /// The header given with the offset-0 piece.
        header: Vec<u8>,
        /// The payload.
        data: Vec<u8>,
        /// How many pieces it took.
        pieces: usize,
    },
    /// More pieces are needed.
    Pending,
    /// Dropped, with a stable statistics key.
    Dropped(&'static str),
}

/// The reassembly bookkeeping shared by IPv4 and IPv6 (RFC 791 §3.2, RFC 8200 §4.5): same
/// overlap rule (RFC 5722), same bounds, same timeout handling; only the key, the header
/// kept from the first fragment and the way the whole datagram is rebuilt differ, and
/// those stay with the family's wrapper ([`Reassembler`], [`super::frag6::Reassembler6`]).
#[derive(Debug)]
pub(crate) struct Assembly<K> {
    config: FragConfig,
    partials: HashMap<K, Partial>,
    /// Sum of the partials' costs.
    bytes: usize,
    pub(crate) stats: FragStats,
}

impl<K: Copy + Eq + Hash + fmt::Debug> Assembly<K> {
    pub(crate) fn new(config: FragConfig) -> Assembly<K> {
        Assembly {
            config,
            partials: HashMap::new(),
            bytes: 0,
            stats: FragStats::default(),
        }
    }

    pub(crate) fn in_progress(&self) -> usize {
        self.partials.len()
    }

    pub(crate) fn memory(&self) -> usize {
        self.bytes
    }

    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.partials.values().map(|p| p.deadline).min()
    }

    /// Drops every datagram due at `now`: (key, quote of the first fragment if it came).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(K, Option<Vec<u8>>)> {
        let due: Vec<K> = self
            .partials
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            if let Some(p) = self.remove(&key) {
                self.stats.timeouts += 1;
                log::debug!(
                    "frag: datagram {key:?} timed out ({} of {:?} bytes)",
                    p.received,
                    p.total
                );
                out.push((key, p.quote));
            }
        }
        out
    }

    fn remove(&mut self, key: &K) -> Option<Partial> {
        let p = self.partials.remove(key)?;
        self.bytes = self.bytes.saturating_sub(p.cost());
        Some(p)
    }

    /// Drops the datagram `key` (if any) and counts `reason`.
    pub(crate) fn drop_datagram(&mut self, key: &K, reason: &'static str) -> Outcome {
        self.remove(key);
        match reason {
            "frag-overlap" => self.stats.overlaps += 1,
            "frag-too-big" => self.stats.too_big += 1,
            _ => self.stats.malformed += 1,
        }
        log::debug!("frag: dropped datagram {key:?}: {reason}");
        Outcome::Dropped(reason)
    }

    /// Adds one fragment of datagram `key`.
    pub(crate) fn insert(&mut self, key: K, piece: Piece<'_>, now: Instant) -> Outcome {
        self.stats.fragments_in += 1;
        let start = piece.start;
        let len = piece.data.len();
        let end = start.saturating_add(len);
        let more = piece.more;

        // RFC 791 §3.2, RFC 8200 §4.5: every fragment but the last carries a multiple of 8
        // data bytes (the next offset must be expressible). An empty fragment carries
        // nothing to reassemble.
        if len == 0 || (more && !len.is_multiple_of(8)) {
            self.stats.malformed += 1;
            return Outcome::Dropped("frag-bad-length");
        }
        // The ping of death: offset + length beyond what the length field can say.
        if end > piece.max_end {
            return self.drop_datagram(&key, "frag-too-big");
        }

        if !self.partials.contains_key(&key) {
            if self.partials.len() >= self.config.max_datagrams {
                self.stats.memory_full += 1;
                return Outcome::Dropped("frag-table-full");
            }
            self.partials.insert(
                key,
                Partial {
                    deadline: now + self.config.timeout,
                    header: None,
                    quote: None,
                    data: Vec::new(),
                    pieces: BTreeMap::new(),
                    total: None,
                    received: 0,
                },
            );
        }
        let Some(partial) = self.partials.get(&key) else {
            return Outcome::Dropped("frag-internal");
        };

        // Exact duplicate (same range, same bytes): links duplicate packets; ignore it.
        if partial.pieces.get(&start) == Some(&end)
            && partial.data.get(start..end) == Some(piece.data)
            && (more || partial.total == Some(end))
        {
            self.stats.duplicates += 1;
            return Outcome::Pending;
        }
        // Overlap with the piece starting at or before us, or with the next one (RFC 5722:
        // the whole datagram goes, silently).
        let before = partial.pieces.range(..=start).next_back();
        let after = partial.pieces.range(start..).next();
        let overlaps =
            before.is_some_and(|(_, &e)| e > start) || after.is_some_and(|(&s, _)| s < end);
        if overlaps {
            return self.drop_datagram(&key, "frag-overlap");
        }
        // The last fragment fixes the length; everything must agree with it.
        let highest_end = partial.pieces.values().copied().max().unwrap_or(0);
        let inconsistent = match (more, partial.total) {
            (false, Some(total)) => total != end,
            (false, None) => highest_end > end,
            (true, Some(total)) => end > total,
            (true, None) => false,
        };
        if inconsistent {
            return self.drop_datagram(&key, "frag-inconsistent");
        }

        // Memory bound: what storing this fragment adds.
        let grow = end.saturating_sub(partial.data.len());
        let first_cost = piece.first.as_ref().map_or(0, |(h, q)| h.len() + q.len());
        let delta = grow + FRAGMENT_OVERHEAD + first_cost;
        if self.bytes.saturating_add(delta) > self.config.max_bytes {
            self.stats.memory_full += 1;
            if partial.pieces.is_empty() {
                self.remove(&key);
            }
            log::debug!("frag: memory bound reached, fragment dropped");
            return Outcome::Dropped("frag-memory-full");
        }

        let Some(partial) = self.partials.get_mut(&key) else {
            return Outcome::Dropped("frag-internal");
        };
        let before_cost = partial.cost();
        if partial.data.len() < end {
            partial.data.resize(end, 0);
        }
        if let Some(slot) = partial.data.get_mut(start..end) {
            slot.copy_from_slice(piece.data);
        }
        if let Some((header, quote)) = piece.first {
            partial.header = Some(header);
            partial.quote = Some(quote);
        }
        if !more {
            partial.total = Some(end);
        }
        partial.pieces.insert(start, end);
        partial.received += len;
        let after_cost = partial.cost();
        self.bytes = self
            .bytes
            .saturating_sub(before_cost)
            .saturating_add(after_cost);

        let complete = partial.total == Some(partial.received) && partial.header.is_some();
        if !complete {
            return Outcome::Pending;
        }
        let Some(p) = self.remove(&key) else {
            return Outcome::Dropped("frag-internal");
        };
        let (Some(header), Some(total)) = (p.header, p.total) else {
            return Outcome::Dropped("frag-internal");
        };
        // Pieces never overlap and all lie in [0, total), so `received == total` means no
        // hole is left.
        let mut data = p.data;
        data.truncate(total);
        Outcome::Complete {
            header,
            data,
            pieces: p.pieces.len(),
        }
    }
}

/// The reassembly buffer of one host.
///
/// ```
/// use std::net::Ipv4Addr;
/// use tunstack::ip::frag::{FragConfig, FragResult, Reassembler};
/// use tunstack::ip::ipv4::{self, Ipv4Packet};
/// use tunstack::time::Instant;
///
/// let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
/// let payload = vec![7u8; 3000];
/// let fragments = ipv4::emit_fragments(a, b, ipv4::PROTO_UDP, 64, 42, &payload, 1500);
/// let mut r = Reassembler::new(FragConfig::default());
/// let mut done = None;
/// for f in fragments.iter().rev() {
///     let p = Ipv4Packet::parse_with_fragments(f).unwrap();
///     if let FragResult::Complete(whole) = r.insert(&p, Instant::from_millis(0)) {
///         done = Some(whole);
///     }
/// }
/// let whole = done.expect("all fragments given");
/// assert_eq!(Ipv4Packet::parse(&whole).unwrap().payload, &payload[..]);
/// ```
#[derive(Debug)]
pub struct Reassembler {
    core: Assembly<Key>,
}

impl Reassembler {
    /// An empty reassembler with the given limits.
    pub fn new(config: FragConfig) -> Reassembler {
        Reassembler {
            core: Assembly::new(config),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &FragStats {
        &self.core.stats
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.core.in_progress()
    }

    /// Bytes charged for the datagrams in progress.
    pub fn memory(&self) -> usize {
        self.core.memory()
    }

    /// When the earliest datagram in progress times out.
    pub fn poll_at(&self) -> Option<Instant> {
        self.core.poll_at()
    }

    /// Drops every datagram whose timeout passed at `now` and returns them, so the caller
    /// can send ICMP Time Exceeded (code 1) for those whose first fragment arrived.
    pub fn expire(&mut self, now: Instant) -> Vec<TimedOut> {
        self.core
            .expire(now)
            .into_iter()
            .map(|(key, quote)| TimedOut { src: key.0, quote })
            .collect()
    }

    /// Adds one fragment (a packet from [`Ipv4Packet::parse_with_fragments`] with
    /// [`Ipv4Packet::is_fragment`] true; a whole datagram is returned as it is).
    pub fn insert(&mut self, packet: &Ipv4Packet<'_>, now: Instant) -> FragResult {
        if !packet.is_fragment() {
            return FragResult::Complete(packet.bytes.to_vec());
        }
        let key: Key = (packet.src, packet.dst, packet.protocol, packet.id);
        let start = packet.fragment_offset();
        let first = (start == 0).then(|| {
            // RFC 792: the time exceeded message quotes the header and 8 data bytes.
            let quote_end = packet.header_len.saturating_add(8).min(packet.bytes.len());
            (
                packet.header().to_vec(),
                packet.bytes.get(..quote_end).unwrap_or_default().to_vec(),
            )
        });
        let piece = Piece {
            start,
            more: packet.more_fragments(),
            data: packet.payload,
            first,
            max_end: MAX_DATAGRAM_LEN - MIN_HEADER_LEN,
        };
        let (header, data, pieces) = match self.core.insert(key, piece, now) {
            Outcome::Complete {
                header,
                data,
                pieces,
            } => (header, data, pieces),
            Outcome::Pending => return FragResult::Pending,
            Outcome::Dropped(reason) => return FragResult::Dropped(reason),
        };
        // The first fragment's header may be longer than the minimum (options).
        let Ok(total_len) = u16::try_from(header.len().saturating_add(data.len())) else {
            self.core.stats.too_big += 1;
            return FragResult::Dropped("frag-too-big");
        };
        let mut whole = header;
        if let Some(field) = whole.get_mut(2..4) {
            field.copy_from_slice(&total_len.to_be_bytes());
        }
        whole.extend_from_slice(&data);
        // Not a fragment any more: offset 0, MF clear (DF kept as the first fragment had it).
        let df = whole.get(6).map_or(0, |b| u16::from(b & 0x40) << 8);
        ipv4::set_flags_frag(&mut whole, df);
        self.core.stats.reassembled += 1;
        log::trace!(
            "frag: reassembled {} → {} id {} ({} bytes from {pieces} fragments)",
            key.0,
            key.1,
            key.3,
            whole.len(),
        );
        FragResult::Complete(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::{emit, emit_fragments, PROTO_ICMP, PROTO_UDP};
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 251) as u8).collect()
    }

    /// A hand-made fragment: `data` at byte `offset`, MF as given.
    fn fragment(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut p = emit(A, B, PROTO_UDP, 64, id, data);
        let units = u16::try_from(offset / 8).unwrap();
        ipv4::set_flags_frag(&mut p, if more { 0x2000 | units } else { units });
        p
    }

    fn insert(r: &mut Reassembler, bytes: &[u8], now: Instant) -> FragResult {
        let p = Ipv4Packet::parse_with_fragments(bytes).unwrap();
        r.insert(&p, now)
    }

    fn feed(r: &mut Reassembler, frags: &[Vec<u8>]) -> Vec<Vec<u8>> {
        frags
            .iter()
            .filter_map(|f| match insert(r, f, t(0)) {
                FragResult::Complete(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    fn assert_whole(whole: &[u8], expected: &[u8]) {
        let p = Ipv4Packet::parse(whole).expect("reassembled packet parses");
        assert_eq!(p.payload, expected);
        assert!(!p.is_fragment());
        assert_eq!((p.src, p.dst, p.protocol), (A, B, PROTO_UDP));
    }

    #[test]
    fn in_order() {
        let data = payload(4000);
        let frags = emit_fragments(A, B, PROTO_UDP, 64, 1, &data, 1500);
        assert_eq!(frags.len(), 3);
        let mut r = Reassembler::new(FragConfig::default());
        let done = feed(&mut r, &frags);
        assert_eq!(done.len(), 1);
        assert_whole(&done[0], &data);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.memory(), 0);
        assert_eq!(r.stats().reassembled, 1);
        assert_eq!(r.stats().fragments_in, 3);
    }

    #[test]
    fn reverse_order() {
        let data = payload(9000);
        let mut frags = emit_fragments(A, B, PROTO_UDP, 64, 2, &data, 576);
        frags.reverse();
        let mut r = Reassembler::new(FragConfig::default());
        let done = feed(&mut r, &frags);
        assert_eq!(done.len(), 1);
        assert_whole(&done[0], &data);
    }

    #[test]
    fn random_order_many_seeds() {
        for seed in 0..200u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let len = rng.random_range(1..=MAX_DATAGRAM_LEN - MIN_HEADER_LEN);
            let mtu = rng.random_range(68..=1500);
            let data = payload(len);
            let mut frags = emit_fragments(A, B, PROTO_UDP, 64, seed as u16, &data, mtu);
            frags.shuffle(&mut rng);
            let mut r = Reassembler::new(FragConfig::default());
            let done = feed(&mut r, &frags);
            if frags.len() == 1 {
                // Not fragmented: nothing for the reassembler but the packet itself.
                assert_eq!(done.len(), 1);
                continue;
            }
            assert_eq!(done.len(), 1, "seed {seed}");
            assert_whole(&done[0], &data);
            assert_eq!(r.memory(), 0);
        }
    }

    #[test]
    fn interleaved_datagrams_are_kept_apart() {
        let (d1, d2) = (payload(3000), vec![0xaa; 3000]);
        let f1 = emit_fragments(A, B, PROTO_UDP, 64, 7, &d1, 1000);
        let f2 = emit_fragments(A, B, PROTO_UDP, 64, 8, &d2, 1000);
        let mut r = Reassembler::new(FragConfig::default());
        let mut done = Vec::new();
        for (x, y) in f1.iter().zip(&f2) {
            done.extend(feed(&mut r, &[y.clone(), x.clone()]));
        }
        assert_eq!(done.len(), 2);
        assert_whole(&done[0], &d2);
        assert_whole(&done[1], &d1);
    }

    #[test]
    fn exact_duplicates_are_tolerated() {
        let data = payload(3000);
        let frags = emit_fragments(A, B, PROTO_UDP, 64, 3, &data, 1500);
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(insert(&mut r, &frags[0], t(0)), FragResult::Pending);
        assert_eq!(insert(&mut r, &frags[0], t(1)), FragResult::Pending);
        assert_eq!(insert(&mut r, &frags[2], t(2)), FragResult::Pending);
        assert_eq!(insert(&mut r, &frags[2], t(3)), FragResult::Pending);
        let FragResult::Complete(whole) = insert(&mut r, &frags[1], t(4)) else {
            panic!("not complete");
        };
        assert_whole(&whole, &data);
        assert_eq!(r.stats().duplicates, 2);
        // A duplicate arriving after completion starts a new datagram that times out.
        assert_eq!(insert(&mut r, &frags[1], t(5)), FragResult::Pending);
        assert_eq!(r.in_progress(), 1);
    }

    #[test]
    fn overlap_drops_the_whole_datagram() {
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(
            insert(&mut r, &fragment(4, 0, true, &[1; 16]), t(0)),
            FragResult::Pending
        );
        // Starts inside the first piece.
        assert_eq!(
            insert(&mut r, &fragment(4, 8, true, &[2; 16]), t(0)),
            FragResult::Dropped("frag-overlap")
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.memory(), 0);
        assert_eq!(r.stats().overlaps, 1);
        // Ends inside the next piece.
        insert(&mut r, &fragment(5, 16, true, &[1; 16]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(5, 8, true, &[2; 16]), t(0)),
            FragResult::Dropped("frag-overlap")
        );
        // Covers a piece entirely.
        insert(&mut r, &fragment(6, 8, true, &[1; 8]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(6, 0, true, &[2; 24]), t(0)),
            FragResult::Dropped("frag-overlap")
        );
        // Same range, different bytes: a conflicting rewrite, not a duplicate.
        insert(&mut r, &fragment(7, 8, true, &[1; 8]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(7, 8, true, &[9; 8]), t(0)),
            FragResult::Dropped("frag-overlap")
        );
        assert_eq!(r.stats().overlaps, 4);
        assert_eq!(r.in_progress(), 0);
        // Adjacent pieces are not overlaps.
        insert(&mut r, &fragment(8, 0, true, &[1; 8]), t(0));
        insert(&mut r, &fragment(8, 16, false, &[3; 4]), t(0));
        let FragResult::Complete(w) = insert(&mut r, &fragment(8, 8, true, &[2; 8]), t(0)) else {
            panic!("adjacent pieces should complete");
        };
        let p = Ipv4Packet::parse(&w).unwrap();
        assert_eq!(
            p.payload,
            [[1u8; 8], [2; 8]]
                .concat()
                .iter()
                .chain(&[3; 4])
                .copied()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn inconsistent_lengths_drop_the_datagram() {
        let mut r = Reassembler::new(FragConfig::default());
        // Non-final fragment not a multiple of 8, and empty fragments: dropped alone.
        assert_eq!(
            insert(&mut r, &fragment(1, 0, true, &[1; 12]), t(0)),
            FragResult::Dropped("frag-bad-length")
        );
        assert_eq!(
            insert(&mut r, &fragment(1, 8, false, &[]), t(0)),
            FragResult::Dropped("frag-bad-length")
        );
        assert_eq!(r.in_progress(), 0);
        // Two different last fragments.
        insert(&mut r, &fragment(2, 16, false, &[1; 4]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(2, 24, false, &[1; 4]), t(0)),
            FragResult::Dropped("frag-inconsistent")
        );
        // Data beyond the known end.
        insert(&mut r, &fragment(3, 16, false, &[1; 4]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(3, 24, true, &[1; 8]), t(0)),
            FragResult::Dropped("frag-inconsistent")
        );
        // A last fragment ending before data already received.
        insert(&mut r, &fragment(4, 32, true, &[1; 8]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(4, 8, false, &[1; 4]), t(0)),
            FragResult::Dropped("frag-inconsistent")
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.stats().malformed, 5);
    }

    #[test]
    fn max_size_ping_of_death() {
        let mut r = Reassembler::new(FragConfig::default());
        // The largest legal datagram reassembles: 65515 payload bytes + 20 header bytes.
        let data = payload(MAX_DATAGRAM_LEN - MIN_HEADER_LEN);
        let done = feed(
            &mut r,
            &emit_fragments(A, B, PROTO_ICMP, 64, 1, &data, 1500),
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].len(), MAX_DATAGRAM_LEN);
        // Offset 65528 with 8 more bytes: beyond 65535. Whole datagram dropped.
        insert(&mut r, &fragment(2, 0, true, &[0; 8]), t(0));
        assert_eq!(
            insert(&mut r, &fragment(2, 65528, false, &[0; 8]), t(0)),
            FragResult::Dropped("frag-too-big")
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.stats().too_big, 1);
        // With a 60-byte first header a 65515-byte payload no longer fits.
        let mut first = Vec::new();
        let mut h =
            etherparse::Ipv4Header::new(8, 64, etherparse::IpNumber::UDP, A.octets(), B.octets())
                .unwrap();
        h.options = etherparse::Ipv4Options::try_from(&[1u8; 40][..]).unwrap();
        h.total_len = 68;
        h.identification = 3;
        h.more_fragments = true;
        h.dont_fragment = false;
        h.header_checksum = h.calc_header_checksum();
        h.write(&mut first).unwrap();
        first.extend_from_slice(&[0; 8]);
        assert_eq!(insert(&mut r, &first, t(0)), FragResult::Pending);
        let last_len = MAX_DATAGRAM_LEN - MIN_HEADER_LEN - 8;
        let last = fragment(3, 8, false, &vec![0; last_len]);
        assert_eq!(
            insert(&mut r, &last, t(0)),
            FragResult::Dropped("frag-too-big")
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.memory(), 0);
    }

    #[test]
    fn timeout_and_icmp_quote() {
        let cfg = FragConfig::default();
        let mut r = Reassembler::new(cfg.clone());
        let data = payload(3000);
        let frags = emit_fragments(A, B, PROTO_UDP, 64, 11, &data, 1500);
        insert(&mut r, &frags[0], t(1000));
        insert(&mut r, &frags[2], t(2000));
        // Another datagram without its first fragment.
        insert(&mut r, &fragment(12, 8, true, &[1; 8]), t(5000));
        assert_eq!(r.poll_at(), Some(t(1000) + cfg.timeout));
        assert!(r
            .expire(t(1000) + (cfg.timeout - Duration::from_millis(1)))
            .is_empty());
        let gone = r.expire(t(1000) + cfg.timeout);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].src, A);
        // The quote: the first fragment's header and 8 data bytes.
        assert_eq!(gone[0].quote.as_deref(), Some(&frags[0][..28]));
        assert_eq!(r.poll_at(), Some(t(5000) + cfg.timeout));
        // The late fragment now starts a new datagram, which cannot complete.
        assert_eq!(insert(&mut r, &frags[1], t(40_000)), FragResult::Pending);
        let gone = r.expire(t(100_000));
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|g| g.quote.is_none()));
        assert_eq!(r.stats().timeouts, 3);
        assert_eq!((r.in_progress(), r.memory(), r.poll_at()), (0, 0, None));
    }

    #[test]
    fn table_bound() {
        let cfg = FragConfig {
            max_datagrams: 4,
            ..FragConfig::default()
        };
        let mut r = Reassembler::new(cfg);
        for id in 0..4 {
            assert_eq!(
                insert(&mut r, &fragment(id, 0, true, &[1; 8]), t(0)),
                FragResult::Pending
            );
        }
        assert_eq!(
            insert(&mut r, &fragment(4, 0, true, &[1; 8]), t(0)),
            FragResult::Dropped("frag-table-full")
        );
        // Fragments of datagrams in progress are still accepted.
        assert!(matches!(
            insert(&mut r, &fragment(0, 8, false, &[1; 8]), t(0)),
            FragResult::Complete(_)
        ));
        assert_eq!(r.stats().memory_full, 1);
        assert_eq!(
            insert(&mut r, &fragment(4, 0, true, &[1; 8]), t(0)),
            FragResult::Pending
        );
    }

    #[test]
    fn memory_bound() {
        let cfg = FragConfig {
            max_bytes: 10_000,
            ..FragConfig::default()
        };
        let mut r = Reassembler::new(cfg);
        // A fragment far into the datagram charges the buffer up to its end.
        assert_eq!(
            insert(&mut r, &fragment(1, 20_000, true, &[1; 8]), t(0)),
            FragResult::Dropped("frag-memory-full")
        );
        assert_eq!(r.in_progress(), 0);
        // Tiny fragments are charged their overhead: the bound stops a flood of them.
        let mut accepted = 0;
        for i in 0..1000 {
            if insert(&mut r, &fragment(2, i * 16, true, &[1; 8]), t(0)) == FragResult::Pending {
                accepted += 1;
            }
        }
        assert!(r.memory() <= 10_000, "{}", r.memory());
        assert!(accepted > 50 && accepted < 200, "{accepted}");
        // Timing out gives the memory back.
        r.expire(t(0) + DEFAULT_TIMEOUT);
        assert_eq!(r.memory(), 0);
        let data = payload(3000);
        assert_eq!(
            feed(&mut r, &emit_fragments(A, B, PROTO_UDP, 64, 3, &data, 1500)).len(),
            1
        );
    }

    #[test]
    fn whole_datagram_passes_through() {
        let whole = emit(A, B, PROTO_UDP, 64, 1, b"abc");
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(
            insert(&mut r, &whole, t(0)),
            FragResult::Complete(whole.clone())
        );
        assert_eq!(r.stats().fragments_in, 0);
    }

    #[test]
    fn random_fragments_never_panic_and_stay_bounded() {
        let cfg = FragConfig {
            max_datagrams: 8,
            max_bytes: 200_000,
            ..FragConfig::default()
        };
        let mut r = Reassembler::new(cfg.clone());
        let mut rng = StdRng::seed_from_u64(5);
        for i in 0..50_000u64 {
            let id = rng.random_range(0..12);
            let offset = rng.random_range(0..8192usize) * 8;
            let len = rng.random_range(0..64);
            let mut f = fragment(id, 0, rng.random_bool(0.7), &vec![rng.random(); len]);
            let units = u16::try_from(offset / 8).unwrap();
            let mf = if rng.random_bool(0.7) { 0x2000 } else { 0 };
            ipv4::set_flags_frag(&mut f, mf | units);
            if let Ok(p) = Ipv4Packet::parse_with_fragments(&f) {
                if let FragResult::Complete(w) = r.insert(&p, t(i)) {
                    assert!(Ipv4Packet::parse(&w).is_ok());
                }
            }
            assert!(r.memory() <= cfg.max_bytes);
            assert!(r.in_progress() <= cfg.max_datagrams);
            r.expire(t(i));
        }
    }
}
