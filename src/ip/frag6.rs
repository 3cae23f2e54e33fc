//! IPv6 fragment reassembly (RFC 8200 §4.5) and the receive path of an IPv6 host
//! ([`Ipv6Input`]): parse, walk the extension headers, reassemble, and the ICMPv6 errors
//! all of that calls for, rate-limited. Sans-IO like the rest of the layer.
//!
//! Reassembly shares its bookkeeping with IPv4 (the same overlap rule — RFC 5722, any
//! overlap drops the whole datagram silently —, the same memory and table bounds, exact
//! duplicates tolerated). What IPv6 adds:
//!
//! - The key is (source, destination, identification); the identification is 32 bits.
//! - Only the source fragments (no router does), so the fragment header sits after the
//!   *unfragmentable part* (IPv6 header + Hop-by-Hop, Routing...) and the reassembled
//!   packet is the first fragment's unfragmentable part, with the Next Header that named
//!   the Fragment header replaced by the Fragment header's own, then the data.
//! - Atomic fragments (offset 0, M clear) are whole packets: processed alone, never mixed
//!   with a reassembly in progress under the same identification (RFC 6946 §4).
//! - The first fragment must carry the whole header chain through the upper-layer header
//!   (RFC 7112; RFC 8200 §4.5): otherwise parameter problem code 3.
//! - A non-final fragment whose length is not a multiple of 8: parameter problem code 0
//!   pointing at the Payload Length; a fragment that would make the reassembled payload
//!   longer than 65535 bytes: code 0 pointing at the Fragment Offset (RFC 8200 §4.5).
//! - Time-out 60 s (RFC 8200 §4.5), then time exceeded code 1 if the first fragment
//!   arrived, quoting it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Duration;

use super::frag::{Assembly, FragConfig, FragStats, Outcome, Piece};
use super::icmp::{ErrorRateLimiter, RateLimitConfig};
use super::icmpv6::{self, CODE_ERRONEOUS_HEADER, CODE_INCOMPLETE_CHAIN, MAX_QUOTE};
use super::ipv6::{self, ErrorReply, Fragment, Ipv6Packet, Walk, HEADER_LEN};
use crate::time::Instant;

/// Reassembly time-out for IPv6 (RFC 8200 §4.5: 60 seconds).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest payload length (the field is 16 bits; jumbograms are not supported).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

/// The default limits for IPv6: those of IPv4 with the 60 s time-out.
pub fn default_config() -> FragConfig {
    FragConfig {
        timeout: TIMEOUT,
        ..FragConfig::default()
    }
}

/// (source, destination, identification): RFC 8200 §4.5's reassembly key.
type Key = (Ipv6Addr, Ipv6Addr, u32);

/// What happened to an IPv6 fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragResult6 {
    /// A whole packet without Fragment header, to be walked again
    /// ([`super::ipv6::walk`]): the headers after the Fragment header are only processed
    /// now.
    Complete(Vec<u8>),
    /// Stored (or an exact duplicate ignored).
    Pending,
    /// Dropped, with a statistics key and the ICMPv6 error RFC 8200 §4.5 asks for, if any.
    Dropped {
        /// Why.
        reason: &'static str,
        /// The error to send to the fragment's source.
        reply: Option<ErrorReply>,
    },
}

/// A datagram that timed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut6 {
    /// Its source: whom to tell.
    pub src: Ipv6Addr,
    /// The first fragment as received (cut at what an error can quote), or `None` if it
    /// never arrived: then no time exceeded is sent (RFC 8200 §4.5).
    pub quote: Option<Vec<u8>>,
}

/// The IPv6 reassembly buffer of one host.
#[derive(Debug)]
pub struct Reassembler6 {
    core: Assembly<Key>,
    atomic: u64,
}

/// Rewrites the Payload Length of `packet` and the Next Header byte at `next_at`.
fn fix_header(packet: &mut [u8], next_at: usize, next: u8) {
    let len = u16::try_from(packet.len().saturating_sub(HEADER_LEN)).unwrap_or(u16::MAX);
    if let Some(f) = packet.get_mut(4..6) {
        f.copy_from_slice(&len.to_be_bytes());
    }
    if let Some(b) = packet.get_mut(next_at) {
        *b = next;
    }
}

/// Whether `data` (the fragmentable part of a first fragment, starting with header
/// `next`) holds every extension header and the upper-layer header (RFC 7112 §5). For
/// TCP, UDP and ICMPv6 their fixed header must be there; for other protocols the chain
/// up to them.
fn chain_complete(mut next: u8, data: &[u8]) -> bool {
    let mut at = 0;
    for _ in 0..=ipv6::EXT_LIMITS.max_headers {
        let len = match next {
            ipv6::NEXT_HOP_BY_HOP | ipv6::NEXT_ROUTING | ipv6::NEXT_DEST_OPTIONS => {
                match data.get(at + 1) {
                    Some(&l) => (usize::from(l) + 1) * 8,
                    None => return false,
                }
            }
            ipv6::NEXT_FRAGMENT => 8,
            ipv6::NEXT_TCP => return data.len() >= at + 20,
            ipv6::NEXT_UDP => return data.len() >= at + 8,
            ipv6::NEXT_ICMPV6 => return data.len() >= at + icmpv6::HEADER_LEN,
            _ => return true,
        };
        if data.len() < at + len {
            return false;
        }
        next = data.get(at).copied().unwrap_or(ipv6::NEXT_NONE);
        at += len;
    }
    // Longer than the walk will accept anyway.
    false
}

impl Reassembler6 {
    /// An empty reassembler (see [`default_config`]).
    pub fn new(config: FragConfig) -> Reassembler6 {
        Reassembler6 {
            core: Assembly::new(config),
            atomic: 0,
        }
    }

    /// Counters (as IPv4's).
    pub fn stats(&self) -> &FragStats {
        &self.core.stats
    }

    /// Atomic fragments passed through (RFC 6946).
    pub fn atomic(&self) -> u64 {
        self.atomic
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

    /// Drops the datagrams due at `now`; time exceeded code 1 is owed for those with a
    /// quote.
    pub fn expire(&mut self, now: Instant) -> Vec<TimedOut6> {
        self.core
            .expire(now)
            .into_iter()
            .map(|(key, quote)| TimedOut6 { src: key.0, quote })
            .collect()
    }

    /// Adds one fragment found by [`super::ipv6::walk`].
    pub fn insert(&mut self, frag: &Fragment<'_>, now: Instant) -> FragResult6 {
        let unfragmentable = frag.unfragmentable();
        let data = frag.data();
        if frag.is_atomic() {
            // RFC 6946 §4: a whole packet; no state, no mixing with fragments in progress.
            self.atomic += 1;
            let mut whole = unfragmentable.to_vec();
            whole.extend_from_slice(data);
            fix_header(&mut whole, frag.next_header_at, frag.next_header);
            return FragResult6::Complete(whole);
        }
        let key: Key = (frag.packet.src, frag.packet.dst, frag.id);
        let len = data.len();
        if frag.more && !len.is_multiple_of(8) {
            self.core.stats.fragments_in += 1;
            self.core.stats.malformed += 1;
            return FragResult6::Dropped {
                reason: "frag-bad-length",
                // RFC 8200 §4.5: pointing at the Payload Length field.
                reply: Some(ErrorReply::parameter_problem(CODE_ERRONEOUS_HEADER, 4)),
            };
        }
        let payload_len = (unfragmentable.len() - HEADER_LEN)
            .saturating_add(frag.offset)
            .saturating_add(len);
        if payload_len > MAX_PAYLOAD_LEN {
            self.core.stats.fragments_in += 1;
            self.core.drop_datagram(&key, "frag-too-big");
            return FragResult6::Dropped {
                reason: "frag-too-big",
                // RFC 8200 §4.5: pointing at the Fragment Offset field.
                reply: Some(ErrorReply::parameter_problem(
                    CODE_ERRONEOUS_HEADER,
                    frag.header_at + 2,
                )),
            };
        }
        if frag.offset == 0 && !chain_complete(frag.next_header, data) {
            self.core.stats.fragments_in += 1;
            self.core.stats.malformed += 1;
            return FragResult6::Dropped {
                reason: "frag-incomplete-chain",
                // RFC 8200 §4.5, RFC 7112 §5: code 3, pointer zero.
                reply: Some(ErrorReply::parameter_problem(CODE_INCOMPLETE_CHAIN, 0)),
            };
        }
        let first = (frag.offset == 0).then(|| {
            let mut header = unfragmentable.to_vec();
            if let Some(b) = header.get_mut(frag.next_header_at) {
                *b = frag.next_header;
            }
            let bytes = frag.packet.bytes;
            (header, bytes.get(..MAX_QUOTE).unwrap_or(bytes).to_vec())
        });
        let piece = Piece {
            start: frag.offset,
            more: frag.more,
            data,
            first,
            max_end: usize::MAX,
        };
        match self.core.insert(key, piece, now) {
            Outcome::Complete {
                header,
                data,
                pieces,
            } => {
                let mut whole = header;
                if whole.len() - HEADER_LEN + data.len() > MAX_PAYLOAD_LEN {
                    self.core.stats.too_big += 1;
                    return FragResult6::Dropped {
                        reason: "frag-too-big",
                        reply: None,
                    };
                }
                whole.extend_from_slice(&data);
                let next = whole.get(6).copied().unwrap_or(0);
                fix_header(&mut whole, 6, next);
                self.core.stats.reassembled += 1;
                log::trace!(
                    "frag6: reassembled {} → {} id {} ({} bytes from {pieces} fragments)",
                    key.0,
                    key.1,
                    key.2,
                    whole.len()
                );
                FragResult6::Complete(whole)
            }
            Outcome::Pending => FragResult6::Pending,
            Outcome::Dropped(reason) => FragResult6::Dropped {
                reason,
                reply: None,
            },
        }
    }
}

/// A packet for the upper layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<'a> {
    /// The whole packet: borrowed as received, or owned when reassembled.
    pub bytes: Cow<'a, [u8]>,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Upper-layer protocol.
    pub protocol: u8,
    /// Offset of the upper-layer header in `bytes`.
    pub offset: usize,
    /// Offset of the byte that named `protocol` (for parameter problem code 1).
    pub next_header_at: usize,
}

impl Delivered<'_> {
    /// The upper-layer message.
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(self.offset..).unwrap_or_default()
    }
}

/// The fate of one received packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// For the upper layer.
    Deliver(Delivered<'a>),
    /// A fragment stored; nothing to deliver yet.
    Pending,
    /// Dropped and counted under this reason.
    Dropped(&'static str),
}

/// What [`Ipv6Input::receive`] returns: the verdict and an ICMPv6 error packet to send,
/// if one is owed and the rate limit allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// What happened to the packet.
    pub verdict: Verdict<'a>,
    /// A whole IPv6 packet (ICMPv6 error) to transmit.
    pub send: Option<Vec<u8>>,
}

/// The IPv6 receive path of a host: parse ([`Ipv6Packet::parse`]), walk the extension
/// headers ([`super::ipv6::walk`]), reassemble ([`Reassembler6`]), and build the ICMPv6
/// errors those steps call for, rate-limited (RFC 4443 §2.4(f)) by the same token buckets
/// as ICMPv4 errors ([`ErrorRateLimiter`]: one for the host, one per destination).
/// The host calls [`Ipv6Input::receive`] per packet, [`Ipv6Input::expire`] at
/// [`Ipv6Input::poll_at`], and [`Ipv6Input::error_for`] for errors of its own (port
/// unreachable for UDP, unknown next header).
#[derive(Debug)]
pub struct Ipv6Input {
    us: Ipv6Addr,
    reassembler: Reassembler6,
    limiter: ErrorRateLimiter<Ipv6Addr>,
    rate_limited: u64,
    drops: BTreeMap<&'static str, u64>,
    errors_sent: u64,
}

impl Ipv6Input {
    /// A receive path for a host whose address is `us` (the source of errors about
    /// packets sent to multicast groups).
    pub fn new(us: Ipv6Addr, frag: FragConfig, limits: RateLimitConfig) -> Ipv6Input {
        Ipv6Input {
            us,
            reassembler: Reassembler6::new(frag),
            limiter: ErrorRateLimiter::new(limits),
            rate_limited: 0,
            drops: BTreeMap::new(),
            errors_sent: 0,
        }
    }

    /// The reassembler (for its counters).
    pub fn reassembler(&self) -> &Reassembler6 {
        &self.reassembler
    }

    /// Drops by reason.
    pub fn drops(&self) -> &BTreeMap<&'static str, u64> {
        &self.drops
    }

    /// ICMPv6 errors built (sent).
    pub fn errors_sent(&self) -> u64 {
        self.errors_sent
    }

    /// ICMPv6 errors the rate limit refused.
    pub fn errors_rate_limited(&self) -> u64 {
        self.rate_limited
    }

    /// When [`Ipv6Input::expire`] is next due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.reassembler.poll_at()
    }

    fn count(&mut self, reason: &'static str) -> Verdict<'static> {
        *self.drops.entry(reason).or_default() += 1;
        log::debug!("ipv6: dropped: {reason}");
        Verdict::Dropped(reason)
    }

    /// The ICMPv6 error `reply` about `invoking`, as a packet to send — `None` when
    /// RFC 4443 §2.4(e) forbids it or the rate limit refuses it.
    pub fn error_for(
        &mut self,
        reply: ErrorReply,
        invoking: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        if !icmpv6::may_send_error(reply.icmp_type, reply.code, invoking) {
            return None;
        }
        let to = Ipv6Packet::parse(invoking).map_or(Ipv6Addr::UNSPECIFIED, |p| p.src);
        if let Err(why) = self.limiter.allow(to, now) {
            self.rate_limited += 1;
            log::debug!("ipv6: ICMPv6 error to {to} rate-limited ({why:?})");
            return None;
        }
        let packet = icmpv6::error_packet(self.us, reply, invoking)?;
        self.errors_sent += 1;
        Some(packet)
    }

    /// Port unreachable (destination unreachable code 4) about a UDP packet nobody
    /// listens for (RFC 4443 §3.1).
    pub fn port_unreachable(&mut self, invoking: &[u8], now: Instant) -> Option<Vec<u8>> {
        let reply = ErrorReply {
            icmp_type: icmpv6::TYPE_DEST_UNREACHABLE,
            code: icmpv6::CODE_PORT_UNREACHABLE,
            param: 0,
        };
        self.error_for(reply, invoking, now)
    }

    /// Processes one received IPv6 packet.
    pub fn receive<'a>(&mut self, bytes: &'a [u8], now: Instant) -> Received<'a> {
        let packet = match Ipv6Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Received {
                    verdict: self.count(e.reason()),
                    send: None,
                }
            }
        };
        match ipv6::walk(packet) {
            Walk::Upper(u) => Received {
                verdict: Verdict::Deliver(Delivered {
                    bytes: Cow::Borrowed(u.packet.bytes),
                    src: u.packet.src,
                    dst: u.packet.dst,
                    protocol: u.protocol,
                    offset: u.offset,
                    next_header_at: u.next_header_at,
                }),
                send: None,
            },
            Walk::Drop { reason, reply } => {
                let send = reply.and_then(|r| self.error_for(r, packet.bytes, now));
                Received {
                    verdict: self.count(reason),
                    send,
                }
            }
            Walk::Fragment(f) => match self.reassembler.insert(&f, now) {
                FragResult6::Pending => Received {
                    verdict: Verdict::Pending,
                    send: None,
                },
                FragResult6::Dropped { reason, reply } => {
                    let send = reply.and_then(|r| self.error_for(r, packet.bytes, now));
                    Received {
                        verdict: self.count(reason),
                        send,
                    }
                }
                FragResult6::Complete(whole) => self.receive_reassembled(whole, now),
            },
        }
    }

    /// Walks a reassembled packet: the headers after the Fragment header are processed
    /// only now (RFC 8200 §4.5).
    fn receive_reassembled(&mut self, whole: Vec<u8>, now: Instant) -> Received<'static> {
        let walked = match Ipv6Packet::parse(&whole) {
            Ok(p) => match ipv6::walk(p) {
                Walk::Upper(u) => Ok((u.protocol, u.offset, u.next_header_at, p.src, p.dst)),
                // A second Fragment header inside a reassembled packet: nothing sends that.
                Walk::Fragment(_) => Err(("ipv6-nested-fragment", None)),
                Walk::Drop { reason, reply } => Err((reason, reply)),
            },
            Err(e) => Err((e.reason(), None)),
        };
        match walked {
            Ok((protocol, offset, next_header_at, src, dst)) => Received {
                verdict: Verdict::Deliver(Delivered {
                    bytes: Cow::Owned(whole),
                    src,
                    dst,
                    protocol,
                    offset,
                    next_header_at,
                }),
                send: None,
            },
            Err((reason, reply)) => {
                let send = reply.and_then(|r| self.error_for(r, &whole, now));
                Received {
                    verdict: self.count(reason),
                    send,
                }
            }
        }
    }

    /// Times out reassemblies due at `now`: the time exceeded (code 1) packets to send for
    /// those whose first fragment arrived (RFC 8200 §4.5), rate-limited.
    pub fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for gone in self.reassembler.expire(now) {
            *self.drops.entry("frag-timeout").or_default() += 1;
            let Some(quote) = gone.quote else { continue };
            let reply = ErrorReply {
                icmp_type: icmpv6::TYPE_TIME_EXCEEDED,
                code: icmpv6::CODE_REASSEMBLY_TIME_EXCEEDED,
                param: 0,
            };
            out.extend(self.error_for(reply, &quote, now));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv6::{emit, emit_fragments, ext_header, fragment_header, walk, NEXT_UDP};
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A hand-made fragment: `data` at `offset`, with an optional header before it.
    fn frag(id: u32, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut body = fragment_header(NEXT_UDP, offset, more, id).to_vec();
        body.extend_from_slice(data);
        emit(A, B, ipv6::NEXT_FRAGMENT, 64, &body)
    }

    fn insert(r: &mut Reassembler6, bytes: &[u8], now: Instant) -> FragResult6 {
        let p = Ipv6Packet::parse(bytes).unwrap();
        let Walk::Fragment(f) = walk(p) else {
            panic!("not a fragment");
        };
        r.insert(&f, now)
    }

    fn udp_payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[test]
    fn any_order_reassembles_to_a_packet_without_fragment_header() {
        let data = udp_payload(5000);
        let mut frags = emit_fragments(A, B, NEXT_UDP, 64, 9, &data, 1280);
        assert_eq!(frags.len(), 5);
        assert!(frags.iter().all(|f| f.len() <= 1280));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20 {
            frags.shuffle(&mut rng);
            let mut r = Reassembler6::new(default_config());
            let done: Vec<Vec<u8>> = frags
                .iter()
                .filter_map(|f| match insert(&mut r, f, t(0)) {
                    FragResult6::Complete(w) => Some(w),
                    _ => None,
                })
                .collect();
            assert_eq!(done.len(), 1);
            let p = Ipv6Packet::parse(&done[0]).unwrap();
            let Walk::Upper(u) = walk(p) else {
                panic!("reassembled packet does not walk");
            };
            assert_eq!((u.protocol, u.payload()), (NEXT_UDP, &data[..]));
            assert_eq!((r.in_progress(), r.memory()), (0, 0));
        }
    }

    #[test]
    fn atomic_fragment_is_processed_alone() {
        let mut r = Reassembler6::new(default_config());
        assert_eq!(
            insert(&mut r, &frag(5, 0, true, &[1; 16]), t(0)),
            FragResult6::Pending
        );
        // RFC 6946: offset 0, M clear, same id: a whole packet, the pending one untouched.
        let FragResult6::Complete(w) = insert(&mut r, &frag(5, 0, false, b"atomic!!"), t(0)) else {
            panic!("atomic fragment not delivered");
        };
        assert_eq!(w, emit(A, B, NEXT_UDP, 64, b"atomic!!"));
        assert_eq!((r.atomic(), r.in_progress()), (1, 1));
        let FragResult6::Complete(w) = insert(&mut r, &frag(5, 16, false, &[2; 8]), t(0)) else {
            panic!("pending datagram lost");
        };
        assert_eq!(&w[40..], [[1u8; 16].as_slice(), &[2; 8]].concat());
    }

    #[test]
    fn overlap_drops_the_whole_datagram_silently() {
        let mut r = Reassembler6::new(default_config());
        insert(&mut r, &frag(1, 0, true, &[1; 16]), t(0));
        assert_eq!(
            insert(&mut r, &frag(1, 8, false, &[2; 16]), t(0)),
            FragResult6::Dropped {
                reason: "frag-overlap",
                reply: None
            }
        );
        assert_eq!((r.in_progress(), r.stats().overlaps), (0, 1));
        // The rest of the datagram starts afresh and cannot complete without offset 0.
        assert_eq!(
            insert(&mut r, &frag(1, 16, false, &[3; 8]), t(0)),
            FragResult6::Pending
        );
    }

    #[test]
    fn length_rules_answer_parameter_problem() {
        let mut r = Reassembler6::new(default_config());
        // RFC 8200 §4.5: M set and not a multiple of 8 → code 0 at the Payload Length.
        assert_eq!(
            insert(&mut r, &frag(2, 8, true, &[1; 12]), t(0)),
            FragResult6::Dropped {
                reason: "frag-bad-length",
                reply: Some(ErrorReply::parameter_problem(0, 4))
            }
        );
        // Reassembled payload over 65535 → code 0 at the Fragment Offset (40 + 2); the
        // datagram in progress goes too.
        insert(&mut r, &frag(3, 0, true, &[1; 16]), t(0));
        assert_eq!(
            insert(&mut r, &frag(3, 65520, false, &[1; 16]), t(0)),
            FragResult6::Dropped {
                reason: "frag-too-big",
                reply: Some(ErrorReply::parameter_problem(0, 42))
            }
        );
        assert_eq!(r.in_progress(), 0);
        // 8 + 65520 + 7 = 65535 is still fine.
        assert_eq!(
            insert(&mut r, &frag(4, 65520, false, &[1; 7]), t(0)),
            FragResult6::Pending
        );
    }

    #[test]
    fn first_fragment_must_hold_the_header_chain() {
        let mut r = Reassembler6::new(default_config());
        // TCP header cut: 8 of its 20 bytes in the first fragment (RFC 7112).
        let mut body = fragment_header(ipv6::NEXT_TCP, 0, true, 6).to_vec();
        body.extend_from_slice(&[0; 8]);
        let short = emit(A, B, ipv6::NEXT_FRAGMENT, 64, &body);
        assert_eq!(
            insert(&mut r, &short, t(0)),
            FragResult6::Dropped {
                reason: "frag-incomplete-chain",
                reply: Some(ErrorReply::parameter_problem(3, 0))
            }
        );
        // A destination options header that runs past the fragment.
        let mut body = fragment_header(ipv6::NEXT_DEST_OPTIONS, 0, true, 7).to_vec();
        let mut opts = ext_header(NEXT_UDP, &[0; 14]);
        opts.truncate(8);
        body.extend_from_slice(&opts);
        body[9] = 1; // says 16 bytes, 8 arrive
        let p = emit(A, B, ipv6::NEXT_FRAGMENT, 64, &body);
        assert!(matches!(
            insert(&mut r, &p, t(0)),
            FragResult6::Dropped {
                reason: "frag-incomplete-chain",
                ..
            }
        ));
        assert_eq!((r.in_progress(), r.stats().malformed), (0, 2));
    }

    #[test]
    fn sixty_second_timeout_with_quote_only_after_the_first_fragment() {
        let mut r = Reassembler6::new(default_config());
        let first = frag(8, 0, true, &[1; 2000]);
        insert(&mut r, &first, t(0));
        insert(&mut r, &frag(9, 8, true, &[1; 8]), t(10_000));
        assert_eq!(r.poll_at(), Some(t(60_000)));
        assert!(r.expire(t(59_999)).is_empty());
        let gone = r.expire(t(60_000));
        assert_eq!(gone.len(), 1);
        // The quote is the first fragment cut so the error fits in 1280 bytes.
        assert_eq!(gone[0].quote.as_deref(), Some(&first[..MAX_QUOTE]));
        let gone = r.expire(t(70_000));
        assert_eq!(
            gone,
            vec![TimedOut6 {
                src: A,
                quote: None
            }]
        );
        assert_eq!((r.stats().timeouts, r.memory()), (2, 0));
    }

    #[test]
    fn mutated_chains_and_fragments_never_panic_and_stay_bounded() {
        use rand::Rng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(66);
        let config = FragConfig {
            max_datagrams: 4,
            max_bytes: 50_000,
            ..default_config()
        };
        let mut input = Ipv6Input::new(B, config, RateLimitConfig::default());
        let mut bases = ipv6::emit_fragments(A, B, NEXT_UDP, 64, 1, &udp_payload(3000), 1280);
        let mut chain = ext_header(ipv6::NEXT_DEST_OPTIONS, &[5, 2, 0, 0]);
        chain.extend(ext_header(NEXT_UDP, &[0x1e, 2, 1, 2]));
        chain.extend_from_slice(&[0; 8]);
        bases.push(emit(A, B, ipv6::NEXT_HOP_BY_HOP, 64, &chain));
        let mut delivered = 0;
        for i in 0..20_000u64 {
            let mut p = bases[rng.random_range(0..bases.len())].clone();
            for _ in 0..rng.random_range(0..3) {
                let at = rng.random_range(0..p.len());
                p[at] = rng.random();
            }
            let cut = if rng.random_bool(0.3) {
                rng.random_range(0..=p.len())
            } else {
                p.len()
            };
            let now = t(i * 10);
            let r = input.receive(&p[..cut], now);
            if let Verdict::Deliver(d) = &r.verdict {
                delivered += 1;
                assert!(d.offset <= d.bytes.len());
            }
            if let Some(sent) = r.send {
                assert!(sent.len() <= ipv6::MIN_MTU);
                assert!(Ipv6Packet::parse(&sent).is_ok());
            }
            assert!(input.reassembler().memory() <= 50_000);
            assert!(input.reassembler().in_progress() <= 4);
            input.expire(now);
        }
        assert!(delivered > 100, "{delivered}");
    }
}
