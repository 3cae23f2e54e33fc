//! IPv6 (RFC 8200): parse + validate the fixed header, emit, and the upper-layer checksum
//! pseudo-header. A first step: no extension headers (a packet whose next header is one is
//! reported as such and dropped by the host), no fragments, no Neighbor Discovery.
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
/// Hop limit of the packets we originate (Linux's default, as IPv4's TTL 64).
pub const DEFAULT_HOP_LIMIT: u8 = 64;

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
}
