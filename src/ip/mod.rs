//! # Internet layer: IPv4 and ICMP
//!
//! The internet layer moves datagrams between hosts by address. A datagram is a header
//! (version, lengths, TTL, protocol, addresses, a header checksum; RFC 791) followed by the
//! payload of the layer above: a TCP segment, a UDP datagram or an ICMP message. Delivery is
//! *best effort*: packets may be lost, duplicated, reordered or corrupted on the way, and
//! nothing at this layer repairs that — TCP above does.
//!
//! On a host (we are not a router) the job on receive is: validate the header once at the
//! edge ([`ipv4::Ipv4Packet::parse`]: version, lengths, checksum, no fragments, TTL, source
//! sanity per RFC 1122 §3.2.1.3), put fragments back together ([`frag`], RFC 791 §3.2),
//! then hand the payload to the protocol named in the header. On send it is: prepend a
//! header ([`ipv4::emit`]), cutting datagrams larger than the MTU into fragments
//! ([`ipv4::emit_fragments`]). ICMP ([`icmp`], RFC 792) is the layer's
//! own control protocol: echo ("ping") and error reports such as destination unreachable.
//!
//! IPv6 ([`ipv6`], RFC 8200: header, extension headers), its fragment reassembly and
//! receive path ([`frag6`]) and ICMPv6 ([`icmpv6`], RFC 4443: echo, errors sent and
//! received, rate-limited with [`icmp::ErrorRateLimiter`]) stand beside IPv4; the host answers ping6,
//! and TCP and UDP run over both families (their pseudo-header:
//! [`pseudo_header_sum_ip`]).
//!
//! Everything here is sans-IO: byte slices in, typed views or byte vectors out, no clock,
//! no device. Every malformed input yields an error value with a stable
//! [`ipv4::Ipv4Error::reason`] / [`icmp::IcmpError::reason`] for statistics; nothing panics.

pub mod frag;
pub mod frag6;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;

pub use icmp::IcmpError;
pub use ipv4::{
    checksum, checksum_with, emit, emit_into, pseudo_header_sum, Ipv4Error, Ipv4Packet,
};

use std::net::{IpAddr, Ipv6Addr};

/// The folded pseudo-header sum of a TCP or UDP packet of either family, from `src` to
/// `dst`, `length` bytes of upper-layer header and data. IPv4 (RFC 9293 §3.1, RFC 768):
/// source, destination, zero, protocol, 16-bit length. IPv6 (RFC 8200 §8.1): source,
/// destination, 32-bit upper-layer length, three zero bytes, next header. In the ones'
/// complement sum both are the addresses' words plus the protocol plus the length, so
/// one function serves both and costs only the four (or sixteen) address words more.
/// The stack never mixes families in one packet; if a caller does, the IPv4 address is
/// summed as its IPv4-mapped IPv6 form (RFC 4291 §2.5.5.2).
pub fn pseudo_header_sum_ip(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // An IPv4 datagram carries at most 65535 bytes; saturate rather than wrap.
            pseudo_header_sum(s, d, protocol, u16::try_from(length).unwrap_or(u16::MAX))
        }
        (s, d) => ipv6::pseudo_header_sum(as_v6(s), as_v6(d), protocol, length),
    }
}

/// `addr` as an IPv6 address: itself, or the IPv4-mapped form of an IPv4 address.
pub fn as_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) turned
/// into the IPv4 address it names: how a dual-stack application's `[::ffff:10.0.0.2]`
/// reaches the IPv4 host. Any other address is returned as it is.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod robustness {
    //! Random and truncated inputs through every parser in this layer: nothing may panic.
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::net::Ipv4Addr;

    fn exercise(bytes: &[u8]) {
        if let Ok(p) = Ipv4Packet::parse(bytes) {
            assert!(p.header_len >= 20 && p.header_len <= p.bytes.len());
            assert_eq!(p.payload.len(), p.bytes.len() - p.header_len);
            let _ = icmp::may_send_error_for(&p);
            let _ = icmp::handle(p.payload);
        }
        let _ = icmp::handle(bytes);
        let msg = icmp::dest_unreachable(3, bytes);
        assert_eq!(checksum(&msg), 0);
        let _ = checksum(bytes);
    }

    #[test]
    fn random_buffers_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x7475_6e73);
        for _ in 0..20_000 {
            let len = rng.random_range(0..120);
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf[..]);
            // Half the time make it look like IPv4 so deeper checks are reached.
            if rng.random_bool(0.5) {
                if let Some(b) = buf.first_mut() {
                    *b = 0x40 | (*b & 0x0f);
                }
            }
            exercise(&buf);
        }
    }

    #[test]
    fn mutated_and_truncated_valid_packets_never_panic() {
        let mut rng = StdRng::seed_from_u64(42);
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let mut ping = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
        ping.extend_from_slice(&[0x55; 57]);
        let sum = checksum(&ping);
        ping[2..4].copy_from_slice(&sum.to_be_bytes());
        let base = emit(a, b, ipv4::PROTO_ICMP, 64, 9, &ping);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut pkt = base.clone();
            for _ in 0..rng.random_range(0..4) {
                let i = rng.random_range(0..pkt.len());
                pkt[i] = rng.random();
            }
            // Re-seal the header checksum sometimes, so mutations reach the later checks.
            if rng.random_bool(0.5) {
                let hl = usize::from(pkt[0] & 0x0f) * 4;
                if (20..=pkt.len()).contains(&hl) {
                    pkt[10] = 0;
                    pkt[11] = 0;
                    let s = checksum(&pkt[..hl]);
                    pkt[10..12].copy_from_slice(&s.to_be_bytes());
                }
            }
            let cut = rng.random_range(0..=pkt.len());
            exercise(&pkt[..cut]);
            exercise(&pkt);
            if Ipv4Packet::parse(&pkt).is_ok() {
                accepted += 1;
            }
        }
        // Sanity: the mutator leaves some packets valid, so the deep paths were exercised.
        assert!(accepted > 100, "only {accepted} accepted");
    }
}
