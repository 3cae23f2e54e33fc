//! ICMPv6 (RFC 4443): echo request → echo reply, the error messages a host sends
//! (destination unreachable, time exceeded, parameter problem: [`error_packet`]) and the
//! ones it receives about its own packets ([`parse_error`], for the transport layer and
//! path MTU discovery, RFC 8201). The checksum, unlike ICMPv4's, covers the IPv6
//! pseudo-header (RFC 4443 §2.3), so the addresses are part of the input. Errors are
//! rate-limited by the caller with [`super::icmp::ErrorRateLimiter`] (RFC 4443 §2.4(f)).

use std::net::Ipv6Addr;

use super::icmp::IcmpError;
use super::ipv4::checksum_with;
use super::ipv6::{self, pseudo_header_sum, ErrorReply, DEFAULT_HOP_LIMIT, MIN_MTU, NEXT_ICMPV6};

/// Echo request (RFC 4443 §4.1).
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply (RFC 4443 §4.2).
pub const TYPE_ECHO_REPLY: u8 = 129;
/// Length of the ICMPv6 header (type, code, checksum, 4 message bytes).
pub const HEADER_LEN: usize = 8;

/// Destination unreachable (RFC 4443 §3.1).
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Packet too big (RFC 4443 §3.2).
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time exceeded (RFC 4443 §3.3).
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Parameter problem (RFC 4443 §3.4).
pub const TYPE_PARAMETER_PROBLEM: u8 = 4;
/// Destination unreachable code 4: port unreachable (for UDP; TCP answers with RST).
pub const CODE_PORT_UNREACHABLE: u8 = 4;
/// Time exceeded code 1: fragment reassembly time exceeded.
pub const CODE_REASSEMBLY_TIME_EXCEEDED: u8 = 1;
/// Parameter problem code 0: erroneous header field.
pub const CODE_ERRONEOUS_HEADER: u8 = 0;
/// Parameter problem code 1: unrecognized next header type.
pub const CODE_UNRECOGNIZED_NEXT_HEADER: u8 = 1;
/// Parameter problem code 2: unrecognized IPv6 option.
pub const CODE_UNRECOGNIZED_OPTION: u8 = 2;
/// Parameter problem code 3: the first fragment lacks the header chain (RFC 7112 §5).
pub const CODE_INCOMPLETE_CHAIN: u8 = 3;

/// Most bytes of the invoking packet an error quotes: the error must fit in the minimum
/// MTU (RFC 4443 §2.4(c)): 1280 − 40 (IPv6 header) − 8 (ICMPv6 header).
pub const MAX_QUOTE: usize = MIN_MTU - 40 - HEADER_LEN;

/// Whether RFC 4443 §2.4(e) allows an error of `icmp_type`/`code` about `invoking`
/// (a packet as received, at least its 40-byte header):
/// never about an ICMPv6 error message (or a packet we cannot tell is not one), never to
/// a multicast destination — except packet too big and parameter problem code 2 — and
/// never when the source is unspecified or multicast (RFC 4443 §2.4(e) (e.3)–(e.6)). The
/// check for an ICMPv6 error looks through the extension headers, bounded by
/// [`super::ipv6::EXT_LIMITS`].
pub fn may_send_error(icmp_type: u8, code: u8, invoking: &[u8]) -> bool {
    let src = addr(invoking, 8);
    let dst = addr(invoking, 24);
    let (Some(src), Some(dst)) = (src, dst) else {
        return false;
    };
    if src.is_unspecified() || src.is_multicast() {
        return false;
    }
    let multicast_ok = icmp_type == TYPE_PACKET_TOO_BIG
        || (icmp_type == TYPE_PARAMETER_PROBLEM && code == CODE_UNRECOGNIZED_OPTION);
    if dst.is_multicast() && !multicast_ok {
        return false;
    }
    // RFC 4443 §2.4(e.1): not about an error message. Informational messages (type ≥ 128)
    // may get one. Where the chain cannot be followed (a non-first fragment, a truncated
    // header), we cannot rule it out, so we keep quiet only for what is known to be an
    // ICMPv6 error.
    !matches!(quoted_upper(invoking), Some((NEXT_ICMPV6, at)) if invoking.get(at).is_some_and(|&t| t < 128))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

/// Follows the extension headers of a (possibly truncated) packet to its upper-layer
/// header: (protocol, offset). `None` when the chain leaves the bytes, meets a
/// non-first fragment or is longer than [`super::ipv6::EXT_LIMITS`] allows.
fn quoted_upper(packet: &[u8]) -> Option<(u8, usize)> {
    let mut next = *packet.get(6)?;
    let mut at = super::ipv6::HEADER_LEN;
    for _ in 0..=super::ipv6::EXT_LIMITS.max_headers {
        match next {
            ipv6::NEXT_HOP_BY_HOP | ipv6::NEXT_ROUTING | ipv6::NEXT_DEST_OPTIONS => {
                let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
                next = *packet.get(at)?;
                at += len;
            }
            ipv6::NEXT_FRAGMENT => {
                let offset = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
                if offset & 0xfff8 != 0 {
                    return None;
                }
                next = *packet.get(at)?;
                at += 8;
            }
            _ => return Some((next, at)),
        }
    }
    None
}

/// Builds an ICMPv6 error message (type, code, 32-bit parameter, then as much of
/// `invoking` as fits in 1280 bytes, RFC 4443 §2.4(c)) from `src` to `dst`, checksum
/// included. Wrap it with [`super::ipv6::emit`]; check [`may_send_error`] and the rate
/// limit first.
pub fn error(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    code: u8,
    param: u32,
    invoking: &[u8],
) -> Vec<u8> {
    let quote = invoking.get(..MAX_QUOTE).unwrap_or(invoking);
    let mut m = Vec::with_capacity(HEADER_LEN + quote.len());
    m.extend_from_slice(&[icmp_type, code, 0, 0]);
    m.extend_from_slice(&param.to_be_bytes());
    m.extend_from_slice(quote);
    let sum = checksum(src, dst, &m);
    if let Some(c) = m.get_mut(2..4) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    m
}

/// The whole IPv6 packet carrying the error `reply` about `invoking`, from `us` to the
/// invoking packet's source with [`DEFAULT_HOP_LIMIT`] — or `None` when
/// [`may_send_error`] forbids it. The source is the invoking packet's destination when
/// that is one of ours (unicast), else `us` (RFC 4443 §2.2).
pub fn error_packet(us: Ipv6Addr, reply: ErrorReply, invoking: &[u8]) -> Option<Vec<u8>> {
    if !may_send_error(reply.icmp_type, reply.code, invoking) {
        return None;
    }
    let to = addr(invoking, 8)?;
    let from = addr(invoking, 24)
        .filter(|d| !d.is_multicast())
        .unwrap_or(us);
    let m = error(from, to, reply.icmp_type, reply.code, reply.param, invoking);
    Some(ipv6::emit(from, to, NEXT_ICMPV6, DEFAULT_HOP_LIMIT, &m))
}

/// What an ICMPv6 error message reports (RFC 4443 §3), as the transport layer needs it
/// (RFC 5927 for TCP, RFC 8201 for path MTU discovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind6 {
    /// Destination unreachable (type 1): 0 no route, 1 administratively prohibited,
    /// 3 address unreachable, 4 port unreachable, ...
    DestUnreachable {
        /// The code.
        code: u8,
    },
    /// Packet too big (type 2) with the next-hop MTU, raised to the IPv6 minimum of 1280
    /// when smaller (RFC 8201 §4: a node must not reduce its estimate below 1280).
    PacketTooBig {
        /// The MTU to use for the path.
        mtu: u32,
    },
    /// Time exceeded (type 3): hop limit (code 0) or reassembly (code 1).
    TimeExceeded {
        /// The code.
        code: u8,
    },
    /// Parameter problem (type 4) with its pointer.
    ParameterProblem {
        /// The code.
        code: u8,
        /// Offset of the faulty byte in the quoted packet.
        pointer: u32,
    },
}

impl ErrorKind6 {
    /// RFC 5927 §4.1 / RFC 1122 §4.2.3.9 carried over: port unreachable (and
    /// "administratively prohibited", code 1, the other "no one will answer" code) and
    /// parameter problem are hard errors; the rest are soft.
    pub fn is_hard(&self) -> bool {
        matches!(
            self,
            ErrorKind6::DestUnreachable {
                code: 1 | CODE_PORT_UNREACHABLE
            } | ErrorKind6::ParameterProblem { .. }
        )
    }
}

/// The packet of ours an ICMPv6 error quotes: its addresses, upper-layer protocol and —
/// for TCP and UDP, when quoted — the ports, so the host can find the connection or
/// socket it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Our address (the quoted source).
    pub src: Ipv6Addr,
    /// The peer (the quoted destination).
    pub dst: Ipv6Addr,
    /// The upper-layer protocol, when the quoted chain could be followed.
    pub protocol: Option<u8>,
    /// (source port, destination port) for TCP and UDP.
    pub ports: Option<(u16, u16)>,
    /// The quoted TCP sequence number, for the in-window check of RFC 5927 §4.1.
    pub tcp_seq: Option<u32>,
}

/// A parsed ICMPv6 error message: what happened and to which of our packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMessage6<'a> {
    /// What happened.
    pub kind: ErrorKind6,
    /// The packet it is about.
    pub about: Quoted,
    /// The quoted bytes as received.
    pub quoted: &'a [u8],
}

/// Recognises an ICMPv6 error message (types 1–4) in `message`, whose checksum
/// [`handle`] already verified. Informational messages, unknown types and errors whose
/// quote is shorter than an IPv6 header give `None` (nothing to match them with).
pub fn parse_error(message: &[u8]) -> Option<ErrorMessage6<'_>> {
    let (&icmp_type, &code) = (message.first()?, message.get(1)?);
    let param = u32::from_be_bytes(message.get(4..8)?.try_into().ok()?);
    let quoted = message.get(HEADER_LEN..)?;
    let kind = match icmp_type {
        TYPE_DEST_UNREACHABLE => ErrorKind6::DestUnreachable { code },
        TYPE_PACKET_TOO_BIG => ErrorKind6::PacketTooBig {
            mtu: param.max(MIN_MTU as u32),
        },
        TYPE_TIME_EXCEEDED => ErrorKind6::TimeExceeded { code },
        TYPE_PARAMETER_PROBLEM => ErrorKind6::ParameterProblem {
            code,
            pointer: param,
        },
        _ => return None,
    };
    if quoted.first().map(|b| b >> 4) != Some(6) {
        return None;
    }
    let (src, dst) = (addr(quoted, 8)?, addr(quoted, 24)?);
    let upper = quoted_upper(quoted);
    let ports = upper
        .filter(|&(p, _)| p == ipv6::NEXT_TCP || p == ipv6::NEXT_UDP)
        .and_then(|(_, at)| {
            let b = quoted.get(at..at + 4)?;
            Some((
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ))
        });
    let tcp_seq = upper
        .filter(|&(p, _)| p == ipv6::NEXT_TCP)
        .and_then(|(_, at)| {
            Some(u32::from_be_bytes(
                quoted.get(at + 4..at + 8)?.try_into().ok()?,
            ))
        });
    Some(ErrorMessage6 {
        kind,
        about: Quoted {
            src,
            dst,
            protocol: upper.map(|(p, _)| p),
            ports,
            tcp_seq,
        },
        quoted,
    })
}

/// Builds a packet too big message (type 2) with `mtu`, as a router would (RFC 4443
/// §3.2). We are a host and never send one; tests play the router with it.
pub fn packet_too_big(router: Ipv6Addr, to: Ipv6Addr, mtu: u32, invoking: &[u8]) -> Vec<u8> {
    error(router, to, TYPE_PACKET_TOO_BIG, 0, mtu, invoking)
}

fn checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    checksum_with(pseudo_header_sum(src, dst, NEXT_ICMPV6, len), message)
}

/// Handle an ICMPv6 message from `src` to `dst` (us): `Ok(Some(reply))` for an echo
/// request — same identifier, sequence and data, type 129, checksum for `dst → src` —,
/// `Ok(None)` for anything else, `Err` when too short or the checksum fails.
pub fn handle(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Result<Option<Vec<u8>>, IcmpError> {
    if message.len() < HEADER_LEN {
        return Err(IcmpError::TooShort { len: message.len() });
    }
    if checksum(src, dst, message) != 0 {
        return Err(IcmpError::BadChecksum);
    }
    if message.first() != Some(&TYPE_ECHO_REQUEST) || message.get(1) != Some(&0) {
        return Ok(None);
    }
    let mut reply = message.to_vec();
    if let Some(t) = reply.first_mut() {
        *t = TYPE_ECHO_REPLY;
    }
    if let Some(c) = reply.get_mut(2..4) {
        c.copy_from_slice(&[0, 0]);
    }
    let sum = checksum(dst, src, &reply);
    if let Some(c) = reply.get_mut(2..4) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    fn request(data: &[u8]) -> Vec<u8> {
        let mut m = vec![TYPE_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        m.extend_from_slice(data);
        let sum = checksum(A, B, &m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    #[test]
    fn echo_request_gets_a_reply_with_a_valid_checksum() {
        let req = request(b"ping6");
        let reply = handle(A, B, &req).unwrap().unwrap();
        assert_eq!(reply[0], TYPE_ECHO_REPLY);
        assert_eq!(&reply[4..], &req[4..]);
        assert_eq!(checksum(B, A, &reply), 0, "verifies from B to A");
    }

    #[test]
    fn checksum_binds_the_addresses_and_other_types_are_ignored() {
        let req = request(b"x");
        assert_eq!(handle(A, A, &req), Err(IcmpError::BadChecksum));
        assert_eq!(handle(A, B, &req[..7]), Err(IcmpError::TooShort { len: 7 }));
        let mut reply = req.clone();
        reply[0] = TYPE_ECHO_REPLY;
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(A, B, &reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(handle(A, B, &reply), Ok(None));
    }

    fn udp_to(dst: Ipv6Addr, len: usize) -> Vec<u8> {
        let mut udp = vec![0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0];
        udp.resize(len, 0xab);
        ipv6::emit(A, dst, ipv6::NEXT_UDP, 64, &udp)
    }

    #[test]
    fn error_quotes_as_much_as_fits_in_1280_bytes() {
        for len in [8, 1232, 3000] {
            let invoking = udp_to(B, len);
            let reply = ErrorReply {
                icmp_type: TYPE_DEST_UNREACHABLE,
                code: CODE_PORT_UNREACHABLE,
                param: 0,
            };
            let out = error_packet(B, reply, &invoking).unwrap();
            assert!(out.len() <= MIN_MTU, "{}", out.len());
            assert_eq!(out.len(), (40 + 8 + invoking.len()).min(MIN_MTU));
            let p = ipv6::Ipv6Packet::parse(&out).unwrap();
            assert_eq!((p.src, p.dst, p.hop_limit), (B, A, DEFAULT_HOP_LIMIT));
            assert_eq!(checksum(p.src, p.dst, p.payload), 0);
            assert_eq!(&p.payload[8..], &invoking[..p.payload.len() - 8]);
            // etherparse decodes the same message.
            let (h, _) = etherparse::Icmpv6Header::from_slice(p.payload).unwrap();
            assert_eq!(
                h.icmp_type,
                etherparse::Icmpv6Type::DestinationUnreachable(
                    etherparse::icmpv6::DestUnreachableCode::Port
                )
            );
        }
    }

    #[test]
    fn rfc4443_2_4_e_no_error_storms() {
        let group: Ipv6Addr = "ff02::1".parse().unwrap();
        let pp2 = (TYPE_PARAMETER_PROBLEM, CODE_UNRECOGNIZED_OPTION);
        let unreach = (TYPE_DEST_UNREACHABLE, CODE_PORT_UNREACHABLE);
        assert!(may_send_error(unreach.0, unreach.1, &udp_to(B, 8)));
        // Multicast destination: only packet too big and parameter problem code 2.
        let to_group = udp_to(group, 8);
        assert!(!may_send_error(unreach.0, unreach.1, &to_group));
        assert!(may_send_error(pp2.0, pp2.1, &to_group));
        assert!(may_send_error(TYPE_PACKET_TOO_BIG, 0, &to_group));
        assert!(!may_send_error(TYPE_PARAMETER_PROBLEM, 0, &to_group));
        // Unspecified source.
        let mut anon = udp_to(B, 8);
        anon[8..24].copy_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        assert!(!may_send_error(unreach.0, unreach.1, &anon));
        // About an ICMPv6 error (even behind an extension header): never; about an echo
        // request: allowed.
        let err = error(A, B, TYPE_TIME_EXCEEDED, 0, 0, &udp_to(B, 8));
        let mut behind = ipv6::ext_header(NEXT_ICMPV6, &[]);
        behind.extend_from_slice(&err);
        let wrapped = ipv6::emit(A, B, ipv6::NEXT_DEST_OPTIONS, 64, &behind);
        assert!(!may_send_error(pp2.0, pp2.1, &wrapped));
        let plain = ipv6::emit(A, B, NEXT_ICMPV6, 64, &err);
        assert!(!may_send_error(pp2.0, pp2.1, &plain));
        let echo = ipv6::emit(A, B, NEXT_ICMPV6, 64, &request(b"x"));
        assert!(may_send_error(pp2.0, pp2.1, &echo));
        assert!(error_packet(B, ErrorReply::parameter_problem(2, 0), &plain).is_none());
    }

    #[test]
    fn received_errors_name_our_packet() {
        // Our TCP segment A:40000 → B:80, behind a destination options header.
        let mut body = ipv6::ext_header(ipv6::NEXT_TCP, &[]);
        body.extend_from_slice(&[0x9c, 0x40, 0, 80, 0x12, 0x34, 0x56, 0x78]);
        body.resize(body.len() + 12, 0);
        let ours = ipv6::emit(A, B, ipv6::NEXT_DEST_OPTIONS, 64, &body);
        let router: Ipv6Addr = "fd00::fe".parse().unwrap();
        // RFC 8201 §4: an MTU under 1280 is raised to 1280.
        for (mtu, want) in [(1400, 1400), (1000, 1280)] {
            let m = packet_too_big(router, A, mtu, &ours);
            assert_eq!(checksum(router, A, &m), 0);
            let e = parse_error(&m).unwrap();
            assert_eq!(e.kind, ErrorKind6::PacketTooBig { mtu: want });
            assert!(!e.kind.is_hard());
            assert_eq!(
                e.about,
                Quoted {
                    src: A,
                    dst: B,
                    protocol: Some(ipv6::NEXT_TCP),
                    ports: Some((40000, 80)),
                    tcp_seq: Some(0x1234_5678),
                }
            );
        }
        let m = error(
            router,
            A,
            TYPE_DEST_UNREACHABLE,
            CODE_PORT_UNREACHABLE,
            0,
            &ours,
        );
        assert!(parse_error(&m).unwrap().kind.is_hard());
        let m = error(router, A, TYPE_PARAMETER_PROBLEM, 0, 42, &ours);
        assert_eq!(
            parse_error(&m).unwrap().kind,
            ErrorKind6::ParameterProblem {
                code: 0,
                pointer: 42
            }
        );
        let m = error(router, A, TYPE_TIME_EXCEEDED, 1, 0, &ours[..44]);
        let e = parse_error(&m).unwrap();
        assert_eq!(e.kind, ErrorKind6::TimeExceeded { code: 1 });
        // Quote cut inside the extension header: addresses and protocol known, ports not.
        assert_eq!(
            (e.about.protocol, e.about.ports),
            (Some(ipv6::NEXT_TCP), None)
        );
        let m = error(router, A, TYPE_TIME_EXCEEDED, 1, 0, &ours[..41]);
        assert_eq!(parse_error(&m).unwrap().about.protocol, None);
        // Not errors, or nothing to match: None.
        assert_eq!(parse_error(&request(b"x")), None);
        assert_eq!(parse_error(&error(router, A, 1, 0, 0, &ours[..30])), None);
    }
}
