//! IPv6 (RFC 8200): parse + validate the fixed header, walk the extension headers
//! ([`walk`]), emit, and the upper-layer checksum pseudo-header. Fragments found by the walk
//! go to [`super::frag6::Reassembler6`]; [`super::frag6::Ipv6Input`] ties the two together
//! for a host.
//!
//! ```text
//!  0       4               12      16              24              31
//!  +-------+---------------+-------------------------------------------+
//!  |Version| Traffic Class |              Flow Label                   |
//!  +-------+---------------+-------+---------------+-------------------+
//!  |        Payload Length         |  Next Header  |     Hop Limit     |
//!  +-------------------------------+---------------+-------------------+
//!  |                   Source Address (128 bits)                       |
//!  +-------------------------------------------------------------------+
//!  |                 Destination Address (128 bits)                    |
//!  +-------------------------------------------------------------------+
//! ```
//!
//! Unlike IPv4 there is no header checksum and no fragmentation by routers; the payload
//! length excludes the 40-byte header.

use std::fmt;
use std::net::Ipv6Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Next header value of ICMPv6 (RFC 4443).
pub const NEXT_ICMPV6: u8 = 58;
/// Next header value of TCP.
pub const NEXT_TCP: u8 = 6;
/// Next header value of UDP.
pub const NEXT_UDP: u8 = 17;
/// Hop limit of the packets we originate (Linux's default, as IPv4's TTL 64). A host
/// does not check the hop limit of what it receives: only forwarding nodes decrement it
/// and drop at zero (RFC 8200 §3); Neighbor Discovery checks for 255 on its own
/// (RFC 4861 §7.1).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Next header value of the Hop-by-Hop Options header (RFC 8200 §4.3).
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next header value of the Routing header (RFC 8200 §4.4).
pub const NEXT_ROUTING: u8 = 43;
/// Next header value of the Fragment header (RFC 8200 §4.5).
pub const NEXT_FRAGMENT: u8 = 44;
/// Next header value "No Next Header" (RFC 8200 §4.7): nothing follows.
pub const NEXT_NONE: u8 = 59;
/// Next header value of the Destination Options header (RFC 8200 §4.6).
pub const NEXT_DEST_OPTIONS: u8 = 60;
/// The IPv6 minimum link MTU (RFC 8200 §5): every link carries 1280-byte packets.
pub const MIN_MTU: usize = 1280;

/// Why an IPv6 packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Shorter than the 40-byte header.
    TooShort(usize),
    /// The version field is not 6.
    BadVersion(u8),
    /// The payload length says more than arrived.
    Truncated {
        /// The payload length field.
        payload_len: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// A multicast source address (RFC 4291 §2.7: never a source).
    MulticastSource,
}

impl Ipv6Error {
    /// A short stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Ipv6Error::TooShort(_) => "ipv6-too-short",
            Ipv6Error::BadVersion(_) => "ipv6-bad-version",
            Ipv6Error::Truncated { .. } => "ipv6-truncated",
            Ipv6Error::MulticastSource => "ipv6-multicast-source",
        }
    }
}

impl fmt::Display for Ipv6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ipv6Error::TooShort(n) => write!(f, "{n} bytes is shorter than an IPv6 header"),
            Ipv6Error::BadVersion(v) => write!(f, "version {v}, not 6"),
            Ipv6Error::Truncated {
                payload_len,
                available,
            } => write!(f, "payload length {payload_len}, {available} bytes arrived"),
            Ipv6Error::MulticastSource => write!(f, "multicast source address"),
        }
    }
}

impl std::error::Error for Ipv6Error {}

/// A validated IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The protocol of the payload (or the first extension header).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// The payload, cut at the payload length.
    pub payload: &'a [u8],
    /// Header and payload (trailing bytes beyond the payload length removed).
    pub bytes: &'a [u8],
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        a.copy_from_slice(s);
    }
    Ipv6Addr::from(a)
}

impl<'a> Ipv6Packet<'a> {
    /// Validate and parse.
    pub fn parse(bytes: &'a [u8]) -> Result<Ipv6Packet<'a>, Ipv6Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Ipv6Error::TooShort(bytes.len()));
        }
        let version = bytes.first().map_or(0, |b| b >> 4);
        if version != 6 {
            return Err(Ipv6Error::BadVersion(version));
        }
        let payload_len = usize::from(u16::from_be_bytes([
            bytes.get(4).copied().unwrap_or(0),
            bytes.get(5).copied().unwrap_or(0),
        ]));
        let available = bytes.len() - HEADER_LEN;
        // A payload length of 0 with a Jumbo Payload option (RFC 2675) is not supported:
        // it reads as an empty packet, which the upper layer then rejects.
        let total = HEADER_LEN + payload_len;
        let bytes = bytes.get(..total).ok_or(Ipv6Error::Truncated {
            payload_len,
            available,
        })?;
        let src = addr_at(bytes, 8);
        if src.is_multicast() {
            return Err(Ipv6Error::MulticastSource);
        }
        Ok(Ipv6Packet {
            src,
            dst: addr_at(bytes, 24),
            next_header: bytes.get(6).copied().unwrap_or(0),
            hop_limit: bytes.get(7).copied().unwrap_or(0),
            payload: bytes.get(HEADER_LEN..).unwrap_or_default(),
            bytes,
        })
    }
}

/// Build a packet: traffic class and flow label 0, then `payload` (cut at 65535 bytes).
pub fn emit(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let payload = payload.get(..usize::from(u16::MAX)).unwrap_or(payload);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[next_header, hop_limit]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(payload);
    out
}

/// Writes the fixed 40-byte header into the first bytes of `header` (too short: nothing),
/// for a payload of `payload_len` bytes the caller has already put behind it — the
/// in-place form of [`emit`], so a TCP segment built right after room for the header is
/// not copied again.
pub fn write_header(
    header: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) {
    let Some(header) = header.get_mut(..HEADER_LEN) else {
        return;
    };
    let len = u16::try_from(payload_len).unwrap_or(u16::MAX);
    header[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    header[4..6].copy_from_slice(&len.to_be_bytes());
    header[6] = next_header;
    header[7] = hop_limit;
    header[8..24].copy_from_slice(&src.octets());
    header[24..40].copy_from_slice(&dst.octets());
}

/// The one's-complement sum (folded to 16 bits) of the IPv6 pseudo-header of RFC 8200 §8.1,
/// for [`super::ipv4::checksum_with`]: source, destination, upper-layer length (32 bits),
/// three zero bytes and the next header.
pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut sum: u64 = 0;
    for chunk in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        let hi = chunk.first().copied().unwrap_or(0);
        let lo = chunk.get(1).copied().unwrap_or(0);
        sum += u64::from(u16::from_be_bytes([hi, lo]));
    }
    sum += u64::from(length >> 16) + u64::from(length & 0xffff);
    sum += u64::from(next_header);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u32
}

/// Bounds on the extension header chain, so a hostile chain costs bounded work
/// (RFC 8504 §5.3 lets a host set such limits; Linux has the same kind in
/// `max_hbh_opts_number` / `max_dst_opts_number`). Past a bound the packet is dropped
/// silently with a counted reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtLimits {
    /// Most extension headers in one packet (the fragment header included).
    pub max_headers: usize,
    /// Most bytes of extension headers in one packet.
    pub max_chain_len: usize,
    /// Most options other than padding in one options header.
    pub max_options: usize,
    /// Most consecutive padding bytes (Pad1 and PadN) in one options header: alignment
    /// never needs more than 7 (RFC 8504 §5.3).
    pub max_padding: usize,
}

/// The limits [`walk`] applies: 8 headers, 1024 bytes of headers, 8 options per options
/// header, 7 consecutive bytes of padding.
pub const EXT_LIMITS: ExtLimits = ExtLimits {
    max_headers: 8,
    max_chain_len: 1024,
    max_options: 8,
    max_padding: 7,
};

/// An ICMPv6 error the receiver of a packet should send back (RFC 4443): the type, the
/// code and the 32-bit parameter (the pointer of a parameter problem, RFC 4443 §3.4, or
/// zero). [`super::icmpv6::error`] builds it; rate limiting is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply {
    /// ICMPv6 type.
    pub icmp_type: u8,
    /// ICMPv6 code.
    pub code: u8,
    /// The pointer (parameter problem) or zero.
    pub param: u32,
}

impl ErrorReply {
    /// A parameter problem (type 4) of `code` pointing at byte `pointer` of the invoking
    /// packet.
    pub fn parameter_problem(code: u8, pointer: usize) -> ErrorReply {
        ErrorReply {
            icmp_type: super::icmpv6::TYPE_PARAMETER_PROBLEM,
            code,
            param: u32::try_from(pointer).unwrap_or(u32::MAX),
        }
    }
}

/// A packet whose extension headers were all processed: the upper-layer protocol and where
/// its header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper<'a> {
    /// The packet.
    pub packet: Ipv6Packet<'a>,
    /// The upper-layer protocol (6 TCP, 17 UDP, 58 ICMPv6, 59 nothing, or any other value
    /// the host may not know: then it answers parameter problem code 1 pointing at
    /// `next_header_at`, RFC 8200 §4).
    pub protocol: u8,
    /// Offset of the upper-layer header in `packet.bytes`.
    pub offset: usize,
    /// Offset in `packet.bytes` of the byte that named `protocol`.
    pub next_header_at: usize,
}

impl<'a> Upper<'a> {
    /// The upper-layer message.
    pub fn payload(&self) -> &'a [u8] {
        self.packet.bytes.get(self.offset..).unwrap_or_default()
    }

    /// The parameter problem (code 1, unrecognized next header) a host sends when it has no
    /// handler for `protocol` (RFC 8200 §4).
    pub fn unknown_protocol_reply(&self) -> ErrorReply {
        ErrorReply::parameter_problem(
            super::icmpv6::CODE_UNRECOGNIZED_NEXT_HEADER,
            self.next_header_at,
        )
    }
}

/// A packet carrying a Fragment header (RFC 8200 §4.5): the unfragmentable part is
/// everything before it, the fragment's data everything after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The packet.
    pub packet: Ipv6Packet<'a>,
    /// Offset of the Fragment header.
    pub header_at: usize,
    /// Offset of the byte that names the Fragment header (6, or the Next Header field of
    /// the extension header before it).
    pub next_header_at: usize,
    /// The Next Header field of the Fragment header: the first header of the fragmentable
    /// part.
    pub next_header: u8,
    /// Fragment offset, in bytes.
    pub offset: usize,
    /// The M flag: more fragments follow.
    pub more: bool,
    /// Identification.
    pub id: u32,
}

impl<'a> Fragment<'a> {
    /// The IPv6 header and the extension headers before the Fragment header.
    pub fn unfragmentable(&self) -> &'a [u8] {
        self.packet.bytes.get(..self.header_at).unwrap_or_default()
    }

    /// The fragment's data (after the Fragment header).
    pub fn data(&self) -> &'a [u8] {
        self.packet
            .bytes
            .get(self.header_at + 8..)
            .unwrap_or_default()
    }

    /// RFC 6946: offset 0 and M clear — a whole packet that only carries a Fragment header.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// What [`walk`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk<'a> {
    /// Every extension header processed; hand the payload to `protocol`.
    Upper(Upper<'a>),
    /// A fragment: give it to the reassembler.
    Fragment(Fragment<'a>),
    /// Dropped: a stable statistics key and, when the RFC asks for one, the ICMPv6 error
    /// to send to the source.
    Drop {
        /// Why (a counter name).
        reason: &'static str,
        /// The error to send, if any.
        reply: Option<ErrorReply>,
    },
}

fn drop_silently(reason: &'static str) -> Walk<'static> {
    Walk::Drop {
        reason,
        reply: None,
    }
}

/// Router Alert (RFC 2711): for routers; a host skips it.
const OPT_ROUTER_ALERT: u8 = 5;

/// Processes the options of a Hop-by-Hop or Destination Options header whose options
/// area is `bytes[start..end]` (RFC 8200 §4.2). `Ok` when every option was understood or
/// skipped.
fn options(
    bytes: &[u8],
    start: usize,
    end: usize,
    dst_multicast: bool,
    limits: &ExtLimits,
) -> Result<(), Walk<'static>> {
    let mut at = start;
    let (mut padding, mut count) = (0usize, 0usize);
    while at < end {
        let Some(&kind) = bytes.get(at) else {
            return Err(drop_silently("ipv6-option-truncated"));
        };
        // Pad1 (RFC 8200 §4.2): one byte, no length.
        if kind == 0 {
            padding += 1;
            at += 1;
            if padding > limits.max_padding {
                return Err(drop_silently("ipv6-option-padding"));
            }
            continue;
        }
        let Some(&len) = bytes.get(at + 1) else {
            return Err(drop_silently("ipv6-option-truncated"));
        };
        let next = at + 2 + usize::from(len);
        if next > end {
            return Err(drop_silently("ipv6-option-truncated"));
        }
        // PadN.
        if kind == 1 {
            padding += 2 + usize::from(len);
            if padding > limits.max_padding {
                return Err(drop_silently("ipv6-option-padding"));
            }
            at = next;
            continue;
        }
        padding = 0;
        count += 1;
        if count > limits.max_options {
            return Err(drop_silently("ipv6-too-many-options"));
        }
        if kind != OPT_ROUTER_ALERT {
            // RFC 8200 §4.2: the two high-order bits of an unrecognised option's type say
            // what to do. 00 skip, 01 discard, 10 discard and send parameter problem code 2
            // pointing at the type, 11 the same but only if the destination is not
            // multicast. (Jumbo Payload, RFC 2675, is not supported and lands here too.)
            let reply = ErrorReply::parameter_problem(super::icmpv6::CODE_UNRECOGNIZED_OPTION, at);
            match kind >> 6 {
                0 => {}
                1 => return Err(drop_silently("ipv6-option-discard")),
                2 => {
                    return Err(Walk::Drop {
                        reason: "ipv6-option-unknown",
                        reply: Some(reply),
                    })
                }
                _ => {
                    return Err(Walk::Drop {
                        reason: "ipv6-option-unknown",
                        reply: (!dst_multicast).then_some(reply),
                    })
                }
            }
        }
        at = next;
    }
    Ok(())
}

/// Walks the extension headers of `packet` (RFC 8200 §4) under [`EXT_LIMITS`].
pub fn walk(packet: Ipv6Packet<'_>) -> Walk<'_> {
    walk_with(packet, &EXT_LIMITS)
}

/// [`walk`] with explicit limits.
///
/// Processed in the order they appear: Hop-by-Hop (only right after the IPv6 header,
/// RFC 8200 §4.1), Destination Options and Routing (segments left 0: ignored; otherwise
/// we are a host that forwards nothing, so every routing type — type 0 included, which
/// RFC 5095 deprecates — is unrecognised: parameter problem code 0 pointing at the type,
/// RFC 8200 §4.4). A Fragment header ends the walk: the rest is only known after
/// reassembly.
pub fn walk_with<'a>(packet: Ipv6Packet<'a>, limits: &ExtLimits) -> Walk<'a> {
    let bytes = packet.bytes;
    let dst_multicast = packet.dst.is_multicast();
    let mut next = packet.next_header;
    let mut next_at = 6;
    let mut at = HEADER_LEN;
    let mut count = 0;
    loop {
        if !matches!(
            next,
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_FRAGMENT | NEXT_DEST_OPTIONS
        ) {
            return Walk::Upper(Upper {
                packet,
                protocol: next,
                offset: at,
                next_header_at: next_at,
            });
        }
        if next == NEXT_HOP_BY_HOP && at != HEADER_LEN {
            // RFC 8200 §4.1: Hop-by-Hop only right after the IPv6 header; elsewhere it is
            // treated as an unrecognised next header (as Linux does).
            return Walk::Drop {
                reason: "ipv6-hop-by-hop-not-first",
                reply: Some(ErrorReply::parameter_problem(
                    super::icmpv6::CODE_UNRECOGNIZED_NEXT_HEADER,
                    next_at,
                )),
            };
        }
        count += 1;
        if count > limits.max_headers {
            return drop_silently("ipv6-too-many-headers");
        }
        let len = if next == NEXT_FRAGMENT {
            8
        } else {
            match bytes.get(at + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return drop_silently("ipv6-header-truncated"),
            }
        };
        let end = at + len;
        if end > bytes.len() {
            return drop_silently("ipv6-header-truncated");
        }
        if end - HEADER_LEN > limits.max_chain_len {
            return drop_silently("ipv6-chain-too-long");
        }
        let this_next = bytes.get(at).copied().unwrap_or(NEXT_NONE);
        match next {
            NEXT_HOP_BY_HOP | NEXT_DEST_OPTIONS => {
                if let Err(w) = options(bytes, at + 2, end, dst_multicast, limits) {
                    return w;
                }
            }
            NEXT_ROUTING => {
                let segments_left = bytes.get(at + 3).copied().unwrap_or(0);
                if segments_left != 0 {
                    return Walk::Drop {
                        reason: "ipv6-routing-unknown",
                        reply: Some(ErrorReply::parameter_problem(
                            super::icmpv6::CODE_ERRONEOUS_HEADER,
                            at + 2,
                        )),
                    };
                }
            }
            _ => {
                let word = u16::from_be_bytes([
                    bytes.get(at + 2).copied().unwrap_or(0),
                    bytes.get(at + 3).copied().unwrap_or(0),
                ]);
                let id = bytes
                    .get(at + 4..at + 8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Walk::Fragment(Fragment {
                    packet,
                    header_at: at,
                    next_header_at: next_at,
                    next_header: this_next,
                    offset: usize::from(word & 0xfff8),
                    more: word & 1 != 0,
                    id,
                });
            }
        }
        next_at = at;
        next = this_next;
        at = end;
    }
}

/// Cuts `payload` (of protocol `next_header`) into IPv6 fragments of at most `mtu` bytes
/// each (RFC 8200 §4.5: only the source fragments), identification `id`; a payload that
/// fits is sent whole, without a Fragment header. `mtu` is raised to [`MIN_MTU`] when
/// smaller (RFC 8200 §5).
pub fn emit_fragments(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    id: u32,
    payload: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let mtu = mtu.max(MIN_MTU);
    if HEADER_LEN + payload.len() <= mtu {
        return vec![emit(src, dst, next_header, hop_limit, payload)];
    }
    // Data per fragment: what fits after the two headers, a multiple of 8.
    let chunk = (mtu - HEADER_LEN - 8) / 8 * 8;
    let count = payload.len().div_ceil(chunk);
    payload
        .chunks(chunk)
        .enumerate()
        .map(|(i, data)| {
            let mut body = fragment_header(next_header, i * chunk, i + 1 < count, id).to_vec();
            body.extend_from_slice(data);
            emit(src, dst, NEXT_FRAGMENT, hop_limit, &body)
        })
        .collect()
}

/// Builds an extension header of type `kind` (Hop-by-Hop, Destination Options or
/// Routing) whose body after the two first bytes is `body`, padded with zeros to a
/// multiple of 8. For tests and tools: we never send extension headers ourselves.
pub fn ext_header(next_header: u8, body: &[u8]) -> Vec<u8> {
    let len = (2 + body.len()).div_ceil(8) * 8;
    let mut h = vec![next_header, u8::try_from(len / 8 - 1).unwrap_or(u8::MAX)];
    h.extend_from_slice(body);
    h.resize(len, 0);
    h
}

/// Builds a Fragment header (RFC 8200 §4.5): `offset` in bytes (a multiple of 8).
pub fn fragment_header(next_header: u8, offset: usize, more: bool, id: u32) -> [u8; 8] {
    let word = (u16::try_from(offset).unwrap_or(u16::MAX) & 0xfff8) | u16::from(more);
    let [w0, w1] = word.to_be_bytes();
    let [i0, i1, i2, i3] = id.to_be_bytes();
    [next_header, 0, w0, w1, i0, i1, i2, i3]
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    #[test]
    fn emit_then_parse_and_agree_with_etherparse() {
        let bytes = emit(A, B, NEXT_ICMPV6, 64, b"payload");
        let p = Ipv6Packet::parse(&bytes).unwrap();
        assert_eq!(
            (p.src, p.dst, p.next_header, p.hop_limit),
            (A, B, NEXT_ICMPV6, 64)
        );
        assert_eq!(p.payload, b"payload");
        let (h, rest) = etherparse::Ipv6Header::from_slice(&bytes).unwrap();
        assert_eq!(h.payload_length, 7);
        assert_eq!(h.source, A.octets());
        assert_eq!(rest, b"payload");
    }

    #[test]
    fn validation() {
        let bytes = emit(A, B, NEXT_UDP, 64, b"abc");
        assert_eq!(
            Ipv6Packet::parse(&bytes[..39]),
            Err(Ipv6Error::TooShort(39))
        );
        let mut v4 = bytes.clone();
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::parse(&v4), Err(Ipv6Error::BadVersion(4)));
        assert_eq!(
            Ipv6Packet::parse(&bytes[..41]),
            Err(Ipv6Error::Truncated {
                payload_len: 3,
                available: 1
            })
        );
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 5]);
        assert_eq!(Ipv6Packet::parse(&padded).unwrap().payload, b"abc");
        let mcast = emit("ff02::1".parse().unwrap(), B, NEXT_UDP, 1, b"");
        assert_eq!(Ipv6Packet::parse(&mcast), Err(Ipv6Error::MulticastSource));
        for n in 0..bytes.len() {
            let _ = Ipv6Packet::parse(&bytes[..n]);
        }
    }

    #[test]
    fn pseudo_header_checksum_agrees_with_etherparse() {
        let payload = b"\x80\x00\x00\x00\x00\x01\x00\x01hello";
        let sum = pseudo_header_sum(A, B, NEXT_ICMPV6, payload.len() as u32);
        let ours = super::super::ipv4::checksum_with(sum, payload);
        let theirs = etherparse::Icmpv6Header::with_checksum(
            etherparse::Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 1 }),
            A.octets(),
            B.octets(),
            b"hello",
        )
        .unwrap()
        .checksum;
        assert_eq!(ours, theirs);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        for _ in 0..2000 {
            let len = rng.random_range(0..120);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = bytes.first_mut() {
                *b = 0x60 | (*b & 0x0f);
            }
            if let Ok(p) = Ipv6Packet::parse(&bytes) {
                let _ = super::super::icmpv6::handle(p.src, p.dst, p.payload);
            }
        }
    }

    /// A packet A → `dst` whose payload is `exts` (extension headers) then `upper`.
    fn chain(dst: Ipv6Addr, first: u8, exts: &[Vec<u8>], upper: &[u8]) -> Vec<u8> {
        let mut payload: Vec<u8> = exts.concat();
        payload.extend_from_slice(upper);
        emit(A, dst, first, 64, &payload)
    }

    /// Destination options header with one option of `kind` (2 data bytes).
    fn dest_opt(next: u8, kind: u8) -> Vec<u8> {
        ext_header(next, &[kind, 2, 0xaa, 0xbb, 1, 0])
    }

    fn drop_of(bytes: &[u8]) -> (&'static str, Option<ErrorReply>) {
        match walk(Ipv6Packet::parse(bytes).unwrap()) {
            Walk::Drop { reason, reply } => (reason, reply),
            other => panic!("not dropped: {other:?}"),
        }
    }

    #[test]
    fn walk_reaches_the_upper_layer_through_a_chain() {
        let hbh = ext_header(NEXT_ROUTING, &[5, 2, 0, 0, 1, 0]); // router alert, PadN
        let rt = ext_header(NEXT_DEST_OPTIONS, &[0, 0, 0]); // type 0, segments left 0
        let dst = dest_opt(NEXT_UDP, 0x1e); // unknown, action 00: skipped
        let bytes = chain(B, NEXT_HOP_BY_HOP, &[hbh, rt, dst], b"udp-hdr!");
        let Walk::Upper(u) = walk(Ipv6Packet::parse(&bytes).unwrap()) else {
            panic!("not delivered");
        };
        assert_eq!((u.protocol, u.offset, u.next_header_at), (NEXT_UDP, 64, 56));
        assert_eq!(u.payload(), b"udp-hdr!");
        assert_eq!(
            u.unknown_protocol_reply(),
            ErrorReply::parameter_problem(1, 56)
        );
    }

    #[test]
    fn option_action_bits() {
        // RFC 8200 §4.2: 00 skip, 01 discard, 10 discard + PP code 2, 11 the same unless
        // the destination is multicast.
        let group: Ipv6Addr = "ff02::1".parse().unwrap();
        for (kind, reason, to_unicast, to_multicast) in [
            (0x1e, None, false, false),
            (0x5e, Some("ipv6-option-discard"), false, false),
            (0x9e, Some("ipv6-option-unknown"), true, true),
            (0xde, Some("ipv6-option-unknown"), true, false),
        ] {
            for (dst, expect_reply) in [(B, to_unicast), (group, to_multicast)] {
                let bytes = chain(dst, NEXT_DEST_OPTIONS, &[dest_opt(NEXT_UDP, kind)], b"x");
                let got = walk(Ipv6Packet::parse(&bytes).unwrap());
                match reason {
                    None => assert!(matches!(got, Walk::Upper(_)), "{kind:#x}"),
                    Some(r) => {
                        let Walk::Drop { reason, reply } = got else {
                            panic!("{kind:#x} not dropped");
                        };
                        assert_eq!(reason, r);
                        // The pointer is the option type's offset: 40 + 2.
                        let want = ErrorReply::parameter_problem(2, 42);
                        assert_eq!(reply, expect_reply.then_some(want), "{kind:#x} {dst}");
                    }
                }
            }
        }
    }

    #[test]
    fn routing_header_with_segments_left_is_refused() {
        // Type 0 (deprecated, RFC 5095) and an unknown type, segments left 1: PP code 0
        // pointing at the routing type.
        for kind in [0u8, 0x7f] {
            let rt = ext_header(NEXT_UDP, &[kind, 1, 0, 0, 0, 0]);
            let bytes = chain(B, NEXT_ROUTING, &[rt], b"x");
            assert_eq!(
                drop_of(&bytes),
                (
                    "ipv6-routing-unknown",
                    Some(ErrorReply::parameter_problem(0, 42))
                )
            );
        }
    }

    #[test]
    fn hop_by_hop_only_first() {
        let dst = dest_opt(NEXT_HOP_BY_HOP, 0x1e);
        let hbh = ext_header(NEXT_UDP, &[]);
        let bytes = chain(B, NEXT_DEST_OPTIONS, &[dst, hbh], b"x");
        assert_eq!(
            drop_of(&bytes),
            (
                "ipv6-hop-by-hop-not-first",
                Some(ErrorReply::parameter_problem(1, 40))
            )
        );
    }

    #[test]
    fn limits_bound_the_chain() {
        // Nine empty destination options headers: one more than allowed.
        let mut exts: Vec<Vec<u8>> = (0..8).map(|_| ext_header(NEXT_DEST_OPTIONS, &[])).collect();
        exts.push(ext_header(NEXT_UDP, &[]));
        let nine = chain(B, NEXT_DEST_OPTIONS, &exts, b"x");
        assert_eq!(drop_of(&nine), ("ipv6-too-many-headers", None));
        let eight = chain(B, NEXT_DEST_OPTIONS, &exts[1..], b"x");
        assert!(matches!(
            walk(Ipv6Packet::parse(&eight).unwrap()),
            Walk::Upper(_)
        ));
        // One header of 2048 bytes: longer than the chain may be.
        let long = chain(
            B,
            NEXT_DEST_OPTIONS,
            &[ext_header(NEXT_UDP, &[0; 2046])],
            b"",
        );
        assert_eq!(drop_of(&long), ("ipv6-chain-too-long", None));
        // Eight bytes of padding in a row (RFC 8504 §5.3), nine non-padding options.
        let pad = ext_header(NEXT_UDP, &[1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let bytes = chain(B, NEXT_DEST_OPTIONS, &[pad], b"");
        assert_eq!(drop_of(&bytes), ("ipv6-option-padding", None));
        let many: Vec<u8> = (0..9).flat_map(|_| [0x1e, 0]).collect();
        let bytes = chain(B, NEXT_DEST_OPTIONS, &[ext_header(NEXT_UDP, &many)], b"");
        assert_eq!(drop_of(&bytes), ("ipv6-too-many-options", None));
        // Truncated: a header longer than the packet, an option longer than its header.
        let mut cut = chain(B, NEXT_DEST_OPTIONS, &[ext_header(NEXT_UDP, &[])], b"");
        cut[41] = 3;
        assert_eq!(drop_of(&cut), ("ipv6-header-truncated", None));
        let bad = chain(
            B,
            NEXT_DEST_OPTIONS,
            &[ext_header(NEXT_UDP, &[0x1e, 9])],
            b"",
        );
        assert_eq!(drop_of(&bad), ("ipv6-option-truncated", None));
    }

    #[test]
    fn fragment_header_ends_the_walk() {
        let hbh = ext_header(NEXT_FRAGMENT, &[]);
        let frag = fragment_header(NEXT_UDP, 1448, true, 0xdead_beef);
        let bytes = chain(B, NEXT_HOP_BY_HOP, &[hbh, frag.to_vec()], &[7; 16]);
        let Walk::Fragment(f) = walk(Ipv6Packet::parse(&bytes).unwrap()) else {
            panic!("not a fragment");
        };
        assert_eq!(
            (
                f.header_at,
                f.next_header_at,
                f.next_header,
                f.offset,
                f.more,
                f.id
            ),
            (48, 40, NEXT_UDP, 1448, true, 0xdead_beef)
        );
        assert_eq!(f.unfragmentable().len(), 48);
        assert_eq!(f.data(), &[7; 16]);
        assert!(!f.is_atomic());
    }
}
