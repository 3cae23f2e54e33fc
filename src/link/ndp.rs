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
//! A first step, like the rest of our IPv6: we answer solicitations for our address and
//! learn the solicitor's MAC from them (the kernel always asks before it sends us
//! anything), and for an unknown neighbour we send one solicitation and keep the latest
//! packet for it (`EthernetLayer`). No retransmissions, no unreachability detection.

use std::net::Ipv6Addr;

use super::ethernet::MacAddr;
use crate::ip::ipv4::checksum_with;
use crate::ip::ipv6::{self, pseudo_header_sum, NEXT_ICMPV6};

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
}

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
    Some(NdMessage {
        kind,
        target: Ipv6Addr::from(target),
        link_addr,
    })
}

fn build(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    opt: u8,
    mac: MacAddr,
) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[opt, 1]);
    m.extend_from_slice(&mac.0);
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
    build(ours, to, TYPE_NA, 0x40 | 0x20, ours, OPT_TARGET_LL, mac)
}

/// A Neighbor Solicitation (IPv6 packet) for `target`, to its solicited-node group.
pub fn solicitation(ours: Ipv6Addr, mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    build(
        ours,
        solicited_node(target),
        TYPE_NS,
        0,
        target,
        OPT_SOURCE_LL,
        mac,
    )
}

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
}
