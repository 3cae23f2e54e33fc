//! Decoding IPv6 for the trace, the live view and the diagrams: the fixed header, the
//! extension header chain as it is on the wire, and the upper layer (TCP, UDP, ICMPv6).
//!
//! ```text
//!     ip    fd00::1 → fd00::2  hlim 64  payload 40  next tcp
//!     ip    fragment  offset 0  id 0x2a  M (more follow)  next udp
//!     udp   4000 → 9  len 1500  (first fragment: the datagram is whole only after reassembly)
//! ```
//!
//! Unlike [`crate::ip::ipv6::walk`], which *processes* the chain as a host must (and drops
//! what it must drop), this only *describes* it, so that a learner sees what arrived even
//! when the host then refused it. Every read is bounded by the packet; nothing panics.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use crate::ip::checksum_with;
use crate::ip::icmpv6;
use crate::ip::ipv6::{
    self, pseudo_header_sum, Ipv6Packet, NEXT_DEST_OPTIONS, NEXT_FRAGMENT, NEXT_HOP_BY_HOP,
    NEXT_ICMPV6, NEXT_NONE, NEXT_ROUTING, NEXT_TCP, NEXT_UDP,
};
use crate::link::ndp;
use crate::tcp::{Segment, SegmentError};
use crate::udp::{Datagram, UdpError};

/// At most this many extension headers are described; a longer chain is cut with a note
/// (the host's own bound, [`ipv6::EXT_LIMITS`], is lower).
const MAX_DESCRIBED: usize = 16;

/// One extension header as found on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtHeader {
    /// Hop-by-Hop Options (RFC 8200 §4.3), its length in bytes.
    HopByHop(usize),
    /// Routing (RFC 8200 §4.4): its type and segments left.
    Routing {
        /// The routing type.
        kind: u8,
        /// Segments left.
        segments_left: u8,
    },
    /// Fragment (RFC 8200 §4.5).
    Fragment {
        /// Offset of the data in the original payload, in bytes.
        offset: usize,
        /// Identification.
        id: u32,
        /// The M flag: more fragments follow.
        more: bool,
    },
    /// Destination Options (RFC 8200 §4.6), its length in bytes.
    DestOptions(usize),
}

impl std::fmt::Display for ExtHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtHeader::HopByHop(n) => write!(f, "hop-by-hop options ({n} bytes)"),
            ExtHeader::Routing {
                kind,
                segments_left,
            } => write!(f, "routing type {kind}  segments left {segments_left}"),
            ExtHeader::Fragment { offset, id, more } => {
                write!(f, "fragment  offset {offset}  id {id:#x}")?;
                if *more {
                    write!(f, "  M (more follow)")
                } else {
                    write!(f, "  last")
                }
            }
            ExtHeader::DestOptions(n) => write!(f, "destination options ({n} bytes)"),
        }
    }
}

/// What follows the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper<'a> {
    /// A whole upper-layer message of this protocol.
    Whole(u8, &'a [u8]),
    /// The first fragment of a message of this protocol: its header is here, the rest
    /// arrives in later fragments, so its checksum cannot be checked yet.
    FirstFragment(u8, &'a [u8]),
    /// A later fragment: data only, no upper-layer header.
    LaterFragment(u8),
    /// The chain ran past the packet, or was longer than we describe.
    Truncated,
}

/// An IPv6 packet described for a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View<'a> {
    /// The validated fixed header and payload.
    pub packet: Ipv6Packet<'a>,
    /// The 20-bit flow label (RFC 6437).
    pub flow_label: u32,
    /// The extension headers, in wire order.
    pub headers: Vec<ExtHeader>,
    /// The upper layer.
    pub upper: Upper<'a>,
}

/// Parses the fixed header ([`Ipv6Packet::parse`]) and describes the chain.
pub fn view(bytes: &[u8]) -> Result<View<'_>, ipv6::Ipv6Error> {
    let packet = Ipv6Packet::parse(bytes)?;
    let b = packet.bytes;
    let flow_label = b
        .get(1..4)
        .map_or(0, |f| u32::from_be_bytes([0, f[0] & 0x0f, f[1], f[2]]));
    let mut headers = Vec::new();
    let mut next = packet.next_header;
    let mut at = ipv6::HEADER_LEN;
    let mut fragment: Option<usize> = None;
    let upper = loop {
        if !matches!(
            next,
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_FRAGMENT | NEXT_DEST_OPTIONS
        ) {
            let rest = b.get(at..).unwrap_or_default();
            break match fragment {
                None => Upper::Whole(next, rest),
                Some(0) => Upper::FirstFragment(next, rest),
                Some(_) => Upper::LaterFragment(next),
            };
        }
        if headers.len() >= MAX_DESCRIBED || fragment.is_some_and(|o| o != 0) {
            // Past a non-first fragment's header come data bytes, not headers.
            break match fragment {
                Some(o) if o != 0 => Upper::LaterFragment(next),
                _ => Upper::Truncated,
            };
        }
        let len = if next == NEXT_FRAGMENT {
            8
        } else {
            match b.get(at + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => break Upper::Truncated,
            }
        };
        let Some(h) = b.get(at..at + len) else {
            break Upper::Truncated;
        };
        let this_next = h.first().copied().unwrap_or(NEXT_NONE);
        headers.push(match next {
            NEXT_HOP_BY_HOP => ExtHeader::HopByHop(len),
            NEXT_DEST_OPTIONS => ExtHeader::DestOptions(len),
            NEXT_ROUTING => ExtHeader::Routing {
                kind: h.get(2).copied().unwrap_or(0),
                segments_left: h.get(3).copied().unwrap_or(0),
            },
            _ => {
                let word = u16::from_be_bytes([
                    h.get(2).copied().unwrap_or(0),
                    h.get(3).copied().unwrap_or(0),
                ]);
                let id = h
                    .get(4..8)
                    .map_or(0, |i| u32::from_be_bytes([i[0], i[1], i[2], i[3]]));
                let offset = usize::from(word & 0xfff8);
                fragment = Some(offset);
                ExtHeader::Fragment {
                    offset,
                    id,
                    more: word & 1 != 0,
                }
            }
        });
        next = this_next;
        at += len;
    };
    Ok(View {
        packet,
        flow_label,
        headers,
        upper,
    })
}

/// The name of a next-header value as the trace shows it.
pub fn protocol_name(next: u8) -> String {
    match next {
        NEXT_TCP => "tcp".to_string(),
        NEXT_UDP => "udp".to_string(),
        NEXT_ICMPV6 => "icmpv6".to_string(),
        NEXT_NONE => "none".to_string(),
        NEXT_HOP_BY_HOP => "hop-by-hop".to_string(),
        NEXT_ROUTING => "routing".to_string(),
        NEXT_FRAGMENT => "fragment".to_string(),
        NEXT_DEST_OPTIONS => "dest-options".to_string(),
        n => format!("{n}"),
    }
}

/// The fixed-header line: `fd00::1 → fd00::2  hlim 64  payload 40  next tcp`, with the
/// flow label when it is not zero. Addresses print in their compressed form (RFC 5952).
pub fn header_text(v: &View<'_>) -> String {
    let mut t = format!(
        "{} → {}  hlim {}  payload {}",
        v.packet.src,
        v.packet.dst,
        v.packet.hop_limit,
        v.packet.payload.len()
    );
    if v.flow_label != 0 {
        let _ = write!(t, "  flow {:#07x}", v.flow_label);
    }
    let _ = write!(t, "  next {}", protocol_name(v.packet.next_header));
    t
}

/// TCP over IPv6, checksummed over the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn tcp(src: Ipv6Addr, dst: Ipv6Addr, bytes: &[u8]) -> Result<Segment, SegmentError> {
    Segment::parse(src, dst, bytes)
}

/// UDP over IPv6: the checksum is mandatory (RFC 8200 §8.1), zero is refused.
pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, bytes: &[u8]) -> Result<Datagram<'_>, UdpError> {
    Datagram::parse(src, dst, bytes)
}

fn checksum_of(src: Ipv6Addr, dst: Ipv6Addr, next: u8, bytes: &[u8]) -> u16 {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    checksum_with(pseudo_header_sum(src, dst, next, len), bytes)
}

fn checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, next: u8, bytes: &[u8]) -> bool {
    checksum_of(src, dst, next, bytes) == 0
}

/// An ICMPv6 message by type and code, as RFC 4443 and RFC 4861 name them; the errors
/// name the packet they quote. `src`/`dst` are the packet's, for the checksum.
pub fn icmpv6_text(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> String {
    let (Some(&kind), Some(&code)) = (message.first(), message.get(1)) else {
        return format!("truncated ({} bytes)", message.len());
    };
    if message.len() < icmpv6::HEADER_LEN {
        return format!("truncated ({} bytes)", message.len());
    }
    let field16 = |at: usize| {
        message
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let field32 = message
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let bad = if checksum_ok(src, dst, NEXT_ICMPV6, message) {
        ""
    } else {
        "  bad checksum (dropped)"
    };
    let target = || {
        message
            .get(8..24)
            .and_then(|t| <[u8; 16]>::try_from(t).ok())
            .map(Ipv6Addr::from)
    };
    let mut text = match kind {
        icmpv6::TYPE_ECHO_REQUEST | icmpv6::TYPE_ECHO_REPLY => {
            let name = if kind == icmpv6::TYPE_ECHO_REQUEST {
                "echo request"
            } else {
                "echo reply"
            };
            return format!("{name}  id {}  seq {}{bad}", field16(4), field16(6));
        }
        icmpv6::TYPE_DEST_UNREACHABLE => {
            let why = match code {
                0 => "no route to destination",
                1 => "administratively prohibited",
                2 => "beyond scope of source address",
                3 => "address unreachable",
                4 => "port unreachable",
                5 => "source address failed ingress/egress policy",
                6 => "reject route to destination",
                _ => "",
            };
            if why.is_empty() {
                format!("destination unreachable (code {code})")
            } else {
                format!("destination unreachable ({why})")
            }
        }
        icmpv6::TYPE_PACKET_TOO_BIG => format!("packet too big, MTU {field32}"),
        icmpv6::TYPE_TIME_EXCEEDED => match code {
            0 => "time exceeded (hop limit exceeded in transit)".to_string(),
            1 => "time exceeded (fragment reassembly time exceeded)".to_string(),
            c => format!("time exceeded (code {c})"),
        },
        icmpv6::TYPE_PARAMETER_PROBLEM => {
            let why = match code {
                0 => "erroneous header field",
                1 => "unrecognized next header",
                2 => "unrecognized option",
                3 => "incomplete header chain",
                _ => "code",
            };
            format!("parameter problem ({why}, pointer {field32})")
        }
        TYPE_RS => return format!("router solicitation{bad}"),
        TYPE_RA => {
            let lifetime = field16(6);
            return format!(
                "router advertisement  hop limit {}  router lifetime {lifetime}s{bad}",
                message.get(4).copied().unwrap_or(0)
            );
        }
        ndp::TYPE_NS | ndp::TYPE_NA => {
            let Some(t) = target() else {
                return format!("neighbor discovery type {kind}, truncated{bad}");
            };
            let ll = ndp::parse(src, dst, ndp::HOP_LIMIT, message).and_then(|m| m.link_addr);
            let mut s = if kind == ndp::TYPE_NS {
                if src.is_unspecified() {
                    format!("neighbor solicitation  who has {t}?  (from ::, duplicate address detection)")
                } else {
                    format!("neighbor solicitation  who has {t}?")
                }
            } else {
                let flags = message.get(4).copied().unwrap_or(0);
                let mut f = Vec::new();
                if flags & 0x80 != 0 {
                    f.push("router");
                }
                if flags & 0x40 != 0 {
                    f.push("solicited");
                }
                if flags & 0x20 != 0 {
                    f.push("override");
                }
                let mut s = format!("neighbor advertisement  {t}");
                if let Some(mac) = ll {
                    let _ = write!(s, " is at {mac}");
                }
                if !f.is_empty() {
                    let _ = write!(s, "  [{}]", f.join(","));
                }
                s
            };
            if kind == ndp::TYPE_NS {
                if let Some(mac) = ll {
                    let _ = write!(s, "  tell {mac}");
                }
            }
            s.push_str(bad);
            return s;
        }
        TYPE_MLD2_REPORT => return format!("multicast listener report v2{bad}"),
        t => return format!("type {t} code {code}{bad}"),
    };
    if let Some(about) = message.get(icmpv6::HEADER_LEN..).and_then(quoted_text) {
        let _ = write!(text, " about {about}");
    }
    text.push_str(bad);
    text
}

/// Router Solicitation (RFC 4861 §4.1).
const TYPE_RS: u8 = 133;
/// Router Advertisement (RFC 4861 §4.2).
const TYPE_RA: u8 = 134;
/// Multicast Listener Report v2 (RFC 3810 §5.2): the kernel sends these when an
/// interface joins a group, so they show up in every TAP capture.
const TYPE_MLD2_REPORT: u8 = 143;

/// `tcp [fd00::2]:80 → [fd00::1]:5000`: the packet an ICMPv6 error quotes.
fn quoted_text(quoted: &[u8]) -> Option<String> {
    // The quote may be cut anywhere (RFC 4443 §2.4(c)): build a view of what is there
    // without the payload length check of a received packet.
    if quoted.first()? >> 4 != 6 || quoted.len() < ipv6::HEADER_LEN {
        return None;
    }
    let addr = |at: usize| {
        quoted
            .get(at..at + 16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from)
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    let mut patched = quoted.to_vec();
    let len = u16::try_from(quoted.len() - ipv6::HEADER_LEN).unwrap_or(u16::MAX);
    if let Some(l) = patched.get_mut(4..6) {
        l.copy_from_slice(&len.to_be_bytes());
    }
    let upper = view(&patched).ok().map(|v| match v.upper {
        Upper::Whole(p, rest) | Upper::FirstFragment(p, rest) => (
            p,
            rest.get(..4).map(|b| {
                (
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                )
            }),
        ),
        Upper::LaterFragment(p) => (p, None),
        Upper::Truncated => (NEXT_NONE, None),
    });
    Some(match upper {
        Some((NEXT_TCP, Some((sp, dp)))) => format!("tcp [{src}]:{sp} → [{dst}]:{dp}"),
        Some((NEXT_UDP, Some((sp, dp)))) => format!("udp [{src}]:{sp} → [{dst}]:{dp}"),
        Some((p, _)) => format!("{} {src} → {dst}", protocol_name(p)),
        None => format!("{src} → {dst}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::ethernet::{self, MacAddr, ETHERTYPE_IPV6};
    use crate::link::Direction;
    use crate::tcp::{Flags, SeqNum, TcpOptions};
    use crate::trace::render::{Layer, Renderer};

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    /// A TCP segment with its checksum over the IPv6 pseudo-header.
    fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, seg: &Segment) -> Vec<u8> {
        seg.emit(src, dst)
    }

    fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sp: u16, dp: u16, data: &[u8]) -> Vec<u8> {
        crate::udp::datagram::emit(src, dst, sp, dp, data)
    }

    /// An ICMPv6 message with its checksum.
    fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, mut m: Vec<u8>) -> Vec<u8> {
        m[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum_of(src, dst, NEXT_ICMPV6, &m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    fn syn(seq: u32, ack: Option<u32>) -> Segment {
        Segment {
            src_port: 5000,
            dst_port: 80,
            seq: SeqNum(seq),
            ack: SeqNum(ack.unwrap_or(0)),
            flags: Flags {
                syn: true,
                ack: ack.is_some(),
                ..Flags::default()
            },
            window: 64800,
            options: TcpOptions {
                mss: Some(1440),
                ..TcpOptions::default()
            },
            ..Segment::default()
        }
    }

    fn texts(lines: &[crate::trace::render::LayerLine]) -> Vec<(Layer, String)> {
        lines.iter().map(|l| (l.layer, l.text.clone())).collect()
    }

    #[test]
    fn tcp_over_ipv6_with_extension_headers_is_decoded_layer_by_layer() {
        let mut payload = ipv6::ext_header(NEXT_DEST_OPTIONS, &[1, 4, 0, 0, 0, 0]);
        payload.extend(ipv6::ext_header(NEXT_TCP, &[1, 4, 0, 0, 0, 0]));
        payload.extend(tcp6(A, B, &syn(1000, None)));
        let mut packet = ipv6::emit(A, B, NEXT_HOP_BY_HOP, 64, &payload);
        // Flow label 0x12345 (RFC 6437), shown because it is not zero.
        packet[1] = 0x01;
        packet[2] = 0x23;
        packet[3] = 0x45;
        let mut r = Renderer::new();
        let (n, lines) = r.packet(Direction::In, &packet);
        assert_eq!(n, 1);
        let t = texts(&lines);
        assert_eq!(
            t[0],
            (Layer::Link, format!("{} bytes from the TUN", packet.len()))
        );
        assert_eq!(
            t[1],
            (
                Layer::Ip,
                format!(
                    "fd00::1 → fd00::2  hlim 64  payload {}  flow 0x12345  next hop-by-hop",
                    payload.len()
                )
            )
        );
        assert_eq!(t[2], (Layer::Ip, "ext hop-by-hop options (8 bytes)".into()));
        assert_eq!(
            t[3],
            (Layer::Ip, "ext destination options (8 bytes)".into())
        );
        assert_eq!(
            t[4],
            (
                Layer::Tcp,
                "5000 → 80  [S]  seq 0 (abs 1000)  win 64800  <mss 1440>".into()
            )
        );
        // The SYN-ACK back: relative numbers from both SYNs, keyed by IPv6 socket addresses.
        let mut synack = syn(7000, Some(1001));
        (synack.src_port, synack.dst_port) = (80, 5000);
        let back = ipv6::emit(B, A, NEXT_TCP, 64, &tcp6(B, A, &synack));
        let (_, lines) = r.packet(Direction::Out, &back);
        assert_eq!(
            lines[2].text,
            "80 → 5000  [S.]  seq 0 (abs 7000)  ack 1 (abs 1001)  win 64800  <mss 1440>"
        );
        assert_eq!(
            describe(&back),
            "→ IPv6 fd00::2 > fd00::1 hlim 64 len 64 | TCP 80 > 5000 [S.] seq 7000 ack 1001 \
             win 64800 len 0 <mss 1440>"
        );
    }

    fn describe(packet: &[u8]) -> String {
        crate::trace::describe(Direction::Out, packet)
    }

    #[test]
    fn fragments_show_offset_id_and_more_flag() {
        let data = udp6(A, B, 4000, 9, &[7; 100]);
        let mut first = ipv6::fragment_header(NEXT_UDP, 0, true, 0x2a).to_vec();
        first.extend_from_slice(&data[..56]);
        let mut last = ipv6::fragment_header(NEXT_UDP, 56, false, 0x2a).to_vec();
        last.extend_from_slice(&data[56..]);
        let mut r = Renderer::new();
        let (_, lines) = r.packet(Direction::In, &ipv6::emit(A, B, NEXT_FRAGMENT, 64, &first));
        let t = texts(&lines);
        assert_eq!(t[2].1, "ext fragment  offset 0  id 0x2a  M (more follow)");
        assert_eq!(
            t[3],
            (
                Layer::Udp,
                "4000 → 9  (first fragment: checked after reassembly)".into()
            )
        );
        let (_, lines) = r.packet(Direction::In, &ipv6::emit(A, B, NEXT_FRAGMENT, 64, &last));
        let t = texts(&lines);
        assert_eq!(t[2].1, "ext fragment  offset 56  id 0x2a  last");
        assert_eq!(t[3].1, "udp data continued: decoded after reassembly");
        assert_eq!(
            describe(&ipv6::emit(A, B, NEXT_FRAGMENT, 64, &last)),
            "→ IPv6 fd00::1 > fd00::2 hlim 64 len 100 | fragment  offset 56  id 0x2a  last \
             | udp (fragment)"
        );
        let whole = ipv6::emit(A, B, NEXT_UDP, 64, &data);
        let (_, lines) = r.packet(Direction::In, &whole);
        assert_eq!(lines[2].text, "4000 → 9  len 100");
    }

    #[test]
    fn routing_header_and_bad_transport_checksums() {
        let mut payload = vec![NEXT_UDP, 0, 0, 3, 0, 0, 0, 0];
        payload.extend(udp6(A, B, 1, 2, b"x"));
        let p = ipv6::emit(A, B, NEXT_ROUTING, 64, &payload);
        let (_, lines) = Renderer::new().packet(Direction::In, &p);
        assert_eq!(lines[2].text, "ext routing type 0  segments left 3");
        // The checksum binds the IPv6 addresses: the same datagram to C is refused.
        let c = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
        let (_, lines) = Renderer::new().packet(
            Direction::In,
            &ipv6::emit(A, c, NEXT_UDP, 64, &udp6(A, B, 1, 2, b"x")),
        );
        assert!(
            lines[2].text.starts_with("invalid datagram: ") && lines[2].text.contains("checksum"),
            "{}",
            lines[2].text
        );
        let mut zero = udp6(A, B, 1, 2, b"x");
        zero[6..8].copy_from_slice(&[0, 0]);
        let (_, lines) =
            Renderer::new().packet(Direction::In, &ipv6::emit(A, B, NEXT_UDP, 64, &zero));
        assert_eq!(
            lines[2].text,
            "invalid datagram: no checksum over IPv6 (dropped)"
        );
        let mut seg = tcp6(A, B, &syn(1, None));
        seg[19] ^= 1;
        let (_, lines) =
            Renderer::new().packet(Direction::In, &ipv6::emit(A, B, NEXT_TCP, 64, &seg));
        assert!(
            lines[2].text.starts_with("invalid segment: bad checksum"),
            "{}",
            lines[2].text
        );
    }

    #[test]
    fn icmpv6_types_and_codes_are_named() {
        let invoking = ipv6::emit(B, A, NEXT_TCP, 64, &tcp6(B, A, &syn(5, None)));
        let err = |t, c, param| icmpv6::error(A, B, t, c, param, &invoking);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                icmp6(A, B, vec![128, 0, 0, 0, 0, 7, 0, 1, 9]),
                "echo request  id 7  seq 1",
            ),
            (
                icmp6(A, B, vec![129, 0, 0, 0, 0, 7, 0, 2]),
                "echo reply  id 7  seq 2",
            ),
            (
                err(1, 4, 0),
                "destination unreachable (port unreachable) about tcp [fd00::2]:5000 → [fd00::1]:80",
            ),
            (err(1, 3, 0), "destination unreachable (address unreachable) about tcp [fd00::2]:5000 → [fd00::1]:80"),
            (err(2, 0, 1400), "packet too big, MTU 1400 about tcp [fd00::2]:5000 → [fd00::1]:80"),
            (err(3, 0, 0), "time exceeded (hop limit exceeded in transit) about tcp [fd00::2]:5000 → [fd00::1]:80"),
            (err(3, 1, 0), "time exceeded (fragment reassembly time exceeded) about tcp [fd00::2]:5000 → [fd00::1]:80"),
            (err(4, 1, 6), "parameter problem (unrecognized next header, pointer 6) about tcp [fd00::2]:5000 → [fd00::1]:80"),
            (icmp6(A, B, vec![133, 0, 0, 0, 0, 0, 0, 0]), "router solicitation"),
            (
                icmp6(A, B, vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]),
                "router advertisement  hop limit 64  router lifetime 1800s",
            ),
            (icmp6(A, B, vec![200, 3, 0, 0, 0, 0, 0, 0]), "type 200 code 3"),
            (vec![128, 0, 0, 0, 0, 7, 0, 1], "echo request  id 7  seq 1  bad checksum (dropped)"),
            (vec![1], "truncated (1 bytes)"),
        ];
        for (m, want) in cases {
            assert_eq!(icmpv6_text(A, B, &m), want);
        }
    }

    #[test]
    fn neighbor_discovery_in_a_tap_frame() {
        let ns = ndp::solicitation(A, MAC, B);
        let group = ndp::multicast_mac(ndp::solicited_node(B));
        let frame = ethernet::build(group, MAC, ETHERTYPE_IPV6, &ns);
        let (_, lines) = Renderer::new().frame(Direction::In, &frame);
        let t = texts(&lines);
        assert!(
            t[0].1
                .ends_with("02:00:00:00:00:01 → 33:33:ff:00:00:02  IPv6"),
            "{}",
            t[0].1
        );
        assert_eq!(
            t[1].1,
            "fd00::1 → ff02::1:ff00:2  hlim 255  payload 32  next icmpv6"
        );
        assert_eq!(
            t[2],
            (
                Layer::Icmp,
                "neighbor solicitation  who has fd00::2?  tell 02:00:00:00:00:01".into()
            )
        );
        let na = ndp::advertisement(B, MAC, A);
        let line = crate::trace::describe_frame(
            Direction::Out,
            &ethernet::build(MAC, MAC, ETHERTYPE_IPV6, &na),
        );
        assert!(
            line.ends_with(
                "| IPv6 fd00::2 > fd00::1 hlim 255 len 72 | ICMPv6 neighbor advertisement  \
                 fd00::2 is at 02:00:00:00:00:01  [solicited,override]"
            ),
            "{line}"
        );
        // Duplicate address detection: a solicitation from the unspecified address.
        let dad = ndp::dad_probe(B);
        let p = Ipv6Packet::parse(&dad).unwrap();
        assert_eq!(
            icmpv6_text(p.src, p.dst, p.payload),
            "neighbor solicitation  who has fd00::2?  (from ::, duplicate address detection)"
        );
    }

    #[test]
    fn garbage_with_version_six_is_described_never_fatal() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let base = ipv6::emit(
            A,
            B,
            NEXT_HOP_BY_HOP,
            64,
            &[
                NEXT_FRAGMENT,
                0,
                1,
                4,
                0,
                0,
                0,
                0,
                17,
                0,
                0,
                1,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
            ],
        );
        let mut r = Renderer::new();
        for _ in 0..5000 {
            let mut p = base.clone();
            for _ in 0..rng.random_range(0..6) {
                let i = rng.random_range(0..p.len());
                p[i] = rng.random();
            }
            p[0] = 0x60 | (p[0] & 0x0f);
            let cut = rng.random_range(0..=p.len());
            let _ = r.packet(Direction::In, &p[..cut]);
            let _ = describe(&p[..cut]);
            if let Ok(v) = view(&p[..cut]) {
                let _ = header_text(&v);
            }
            let _ = icmpv6_text(A, B, &p[..cut]);
        }
        let (_, lines) = r.packet(Direction::In, &[0x60, 0, 0]);
        assert_eq!(
            lines[1].text,
            "not valid IPv6: 3 bytes is shorter than an IPv6 header (dropped)"
        );
    }
}
