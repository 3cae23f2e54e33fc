//! ICMP for IPv4 (RFC 792): answering echo requests ("ping") and building destination
//! unreachable errors. Sans-IO: functions take message bytes and return message bytes; the
//! caller wraps them in an IPv4 header ([`super::ipv4::emit`]).
//!
//! Every ICMP message starts with the same 4 bytes, then a type-specific rest
//! (RFC 792, "Echo or Echo Reply Message"):
//!
//! ```text
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |     Type      |     Code      |          Checksum             |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |           Identifier          |        Sequence Number        |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |     Data ...
//!    +-+-+-+-+-
//! ```
//!
//! The checksum covers the whole ICMP message (header and data), not just the header.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::time::Instant;

use super::ipv4::{checksum, Ipv4Packet, PROTO_ICMP};

/// Type 0: echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Type 3: destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Type 8: echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Type 11: time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;

/// Destination unreachable code 1: the host cannot be reached (RFC 792); a soft error
/// for TCP (RFC 1122 §4.2.3.9).
pub const CODE_HOST_UNREACHABLE: u8 = 1;
/// Destination unreachable code 2: the transport protocol is not supported (RFC 792).
pub const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
/// Destination unreachable code 3: no one listens on the port (RFC 792; for UDP — TCP
/// answers with RST instead, RFC 9293 §3.10.7.1).
pub const CODE_PORT_UNREACHABLE: u8 = 3;

/// Destination unreachable code 4: fragmentation needed and DF set; the next-hop MTU is in
/// the second half of the unused word (RFC 792, RFC 1191 §4).
pub const CODE_FRAGMENTATION_NEEDED: u8 = 4;
/// Type 4: source quench (deprecated by RFC 6633: hosts ignore it).
pub const TYPE_SOURCE_QUENCH: u8 = 4;
/// Type 12: parameter problem.
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;
/// Time exceeded code 1: fragment reassembly time exceeded (RFC 792).
pub const CODE_REASSEMBLY_TIME_EXCEEDED: u8 = 1;

/// Length of the fixed ICMP header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// Why an incoming ICMP message was dropped; [`IcmpError::reason`] is a stable stats key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Shorter than the 8-byte ICMP header.
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The checksum over the whole message does not verify (RFC 792).
    BadChecksum,
}

impl IcmpError {
    /// A stable short name for this drop reason, usable as a statistics key.
    pub fn reason(&self) -> &'static str {
        match self {
            IcmpError::TooShort { .. } => "too-short",
            IcmpError::BadChecksum => "bad-checksum",
        }
    }
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IcmpError::TooShort { len } => write!(f, "{} ({len} bytes)", self.reason()),
            IcmpError::BadChecksum => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for IcmpError {}

/// Handles an ICMP message addressed to us (the payload of a validated IPv4 packet).
///
/// - Echo request (type 8, any code) → `Ok(Some(echo reply))`: type 0, same code,
///   identifier, sequence number and data, checksum recomputed (RFC 792: "the data received
///   in the echo message must be returned in the echo reply message"). RFC 1122 §3.2.2.6
///   says every echo request gets a reply; RFC 792 defines no code other than 0, so a
///   non-zero code is no reason to stay silent. The code is echoed as Linux does (nmap's
///   OS detection probes with code 9 and looks at it).
/// - Any other type → `Ok(None)` (nothing to answer; replies and errors we do not act on yet).
/// - Malformed (shorter than 8 bytes, bad checksum) → `Err`, to be counted and dropped.
///
/// ```
/// use tunstack::ip::{checksum, icmp};
///
/// // Echo request, id 1, seq 1, data "hi", with its checksum filled in.
/// let mut request = vec![8, 0, 0, 0, 0, 1, 0, 1, b'h', b'i'];
/// let sum = checksum(&request);
/// request[2..4].copy_from_slice(&sum.to_be_bytes());
///
/// let reply = icmp::handle(&request)?.expect("echo requests are answered");
/// assert_eq!(reply[0], icmp::TYPE_ECHO_REPLY);
/// assert_eq!(&reply[4..], &request[4..]);
/// # Ok::<(), icmp::IcmpError>(())
/// ```
pub fn handle(message: &[u8]) -> Result<Option<Vec<u8>>, IcmpError> {
    let len = message.len();
    let (icmp_type, code) = match message {
        [t, c, ..] if len >= HEADER_LEN => (*t, *c),
        _ => return Err(IcmpError::TooShort { len }),
    };
    if checksum(message) != 0 {
        return Err(IcmpError::BadChecksum);
    }
    if icmp_type != TYPE_ECHO_REQUEST {
        log::trace!("icmp type {icmp_type} code {code}: nothing to answer");
        return Ok(None);
    }
    let mut reply = message.to_vec();
    if let Some(t) = reply.first_mut() {
        *t = TYPE_ECHO_REPLY;
    }
    set_checksum(&mut reply);
    Ok(Some(reply))
}

/// Builds a destination unreachable message (type 3, `code`) about `original`, the IP packet
/// that could not be delivered. RFC 792: the data is "the internet header plus the first 64
/// bits of the original datagram's data", so the sender can match it to a connection.
///
/// Robust to any `original`: the quoted header length comes from its IHL when sane (20..=60),
/// else 20, and the quote is cut at the bytes available.
///
/// RFC 1122 §3.2.2 lists packets that must *not* get an ICMP error; check
/// [`may_send_error_for`] before calling this.
pub fn dest_unreachable(code: u8, original: &[u8]) -> Vec<u8> {
    error_message(TYPE_DEST_UNREACHABLE, code, original)
}

/// Builds a time exceeded message (type 11, `code`) about `original`; code 1
/// ([`CODE_REASSEMBLY_TIME_EXCEEDED`]) reports a datagram whose fragments did not all
/// arrive in time (RFC 792), quoting the first fragment. Same quoting rules as
/// [`dest_unreachable`].
pub fn time_exceeded(code: u8, original: &[u8]) -> Vec<u8> {
    error_message(TYPE_TIME_EXCEEDED, code, original)
}

/// An ICMP error message of `icmp_type`/`code` quoting `original`'s header + 8 bytes.
fn error_message(icmp_type: u8, code: u8, original: &[u8]) -> Vec<u8> {
    let header_len = original
        .first()
        .map(|b| usize::from(b & 0x0f) * 4)
        .filter(|&hl| hl >= 20)
        .unwrap_or(20);
    let quote_len = header_len.saturating_add(8).min(original.len());
    let quote = original.get(..quote_len).unwrap_or_default();
    let mut msg = Vec::with_capacity(HEADER_LEN + quote.len());
    // Type, code, checksum placeholder, 4 unused bytes (zero; RFC 1191 puts the next-hop
    // MTU in the last two for code 4: see `fragmentation_needed`).
    msg.extend_from_slice(&[icmp_type, code, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(quote);
    set_checksum(&mut msg);
    msg
}

/// What an ICMP error message reports (RFC 792), as the transport layer needs it
/// (RFC 1122 §4.2.3.9, RFC 5927).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Destination unreachable (type 3) with any code but 4: 0 net, 1 host, 2 protocol,
    /// 3 port, 5 source route failed, 6.. administratively prohibited and friends.
    DestUnreachable {
        /// The code.
        code: u8,
    },
    /// Destination unreachable, fragmentation needed and DF set (type 3 code 4), with the
    /// next-hop MTU (RFC 1191 §4; 0 from routers older than RFC 1191).
    FragmentationNeeded {
        /// MTU of the next hop.
        next_hop_mtu: u16,
    },
    /// Source quench (type 4): deprecated, to be ignored (RFC 6633).
    SourceQuench,
    /// Time exceeded (type 11): TTL 0 in transit (code 0) or reassembly timeout (code 1).
    TimeExceeded {
        /// The code.
        code: u8,
    },
    /// Parameter problem (type 12).
    ParameterProblem,
}

impl ErrorKind {
    /// RFC 1122 §4.2.3.9: protocol unreachable, port unreachable and fragmentation needed
    /// are *hard* errors (the destination cannot be reached as asked); the rest are soft
    /// (transient: a route may come back).
    pub fn is_hard(&self) -> bool {
        matches!(
            self,
            ErrorKind::DestUnreachable {
                code: CODE_PROTOCOL_UNREACHABLE | CODE_PORT_UNREACHABLE
            } | ErrorKind::FragmentationNeeded { .. }
        )
    }
}

/// A parsed ICMP error message: what it reports and the quoted original datagram
/// (its IP header and at least the first 8 bytes of its payload — RFC 792; RFC 1812
/// routers may quote more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMessage<'a> {
    /// What happened.
    pub kind: ErrorKind,
    /// The quoted IP header + data, as received.
    pub quoted: &'a [u8],
}

/// Recognises an ICMP error message (types 3, 4, 11, 12) in `message` (whose checksum
/// [`handle`] has already verified). Queries and unknown types give `None`.
pub fn parse_error(message: &[u8]) -> Option<ErrorMessage<'_>> {
    let (&icmp_type, &code) = (message.first()?, message.get(1)?);
    let quoted = message.get(HEADER_LEN..)?;
    let kind = match icmp_type {
        TYPE_DEST_UNREACHABLE if code == CODE_FRAGMENTATION_NEEDED => {
            let mtu = message.get(6..8)?;
            ErrorKind::FragmentationNeeded {
                next_hop_mtu: u16::from_be_bytes([*mtu.first()?, *mtu.get(1)?]),
            }
        }
        TYPE_DEST_UNREACHABLE => ErrorKind::DestUnreachable { code },
        TYPE_SOURCE_QUENCH => ErrorKind::SourceQuench,
        TYPE_TIME_EXCEEDED => ErrorKind::TimeExceeded { code },
        TYPE_PARAMETER_PROBLEM => ErrorKind::ParameterProblem,
        _ => return None,
    };
    Some(ErrorMessage { kind, quoted })
}

/// Builds a "fragmentation needed" message (type 3 code 4) with the next-hop MTU, as a
/// router would (RFC 1191 §4). We are a host and never send one; tests and the simulation
/// use it to play the router.
pub fn fragmentation_needed(next_hop_mtu: u16, original: &[u8]) -> Vec<u8> {
    let mut msg = error_message(TYPE_DEST_UNREACHABLE, CODE_FRAGMENTATION_NEEDED, original);
    if let Some(field) = msg.get_mut(6..8) {
        field.copy_from_slice(&next_hop_mtu.to_be_bytes());
    }
    set_checksum(&mut msg);
    msg
}

/// Whether RFC 1122 §3.2.2 allows sending an ICMP error about `packet`. An ICMP error
/// MUST NOT be sent in response to: an ICMP error message, a datagram to a broadcast or
/// multicast address, a non-initial fragment (never reaches us: the parser rejects
/// fragments), or a datagram whose source does not define a single host (rejected by the
/// parser as well). This is what prevents error storms between two hosts.
pub fn may_send_error_for(packet: &Ipv4Packet<'_>) -> bool {
    if packet.dst.is_broadcast() || packet.dst.is_multicast() {
        return false;
    }
    if packet.protocol == PROTO_ICMP {
        // Only queries (echo, timestamp, ...) may trigger an error; errors never do.
        return match packet.payload.first() {
            Some(&t) => matches!(t, TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY | 13 | 14 | 15 | 16),
            None => false,
        };
    }
    true
}

/// Zeroes the checksum field of an ICMP message and fills in the checksum over all of it.
fn set_checksum(msg: &mut [u8]) {
    if let Some(field) = msg.get_mut(2..4) {
        field.copy_from_slice(&[0, 0]);
    }
    let sum = checksum(msg);
    if let Some(field) = msg.get_mut(2..4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
}

/// Limits on the ICMP error messages a host sends (RFC 1812 §4.3.2.8, RFC 1122 §3.2.2:
/// an error storm must not cost more than the traffic that caused it). The defaults are
/// Linux's sysctls: `icmp_msgs_per_sec` 1000 with `icmp_msgs_burst` 50 for the whole
/// host, and `icmp_ratelimit` 1000 ms per destination with a burst of 6
/// (`XRLIM_BURST_FACTOR`), so 20,000 probes to a closed UDP port in a few seconds get a
/// handful of port unreachables, as from Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Error messages per second for all destinations together; 0 turns the global
    /// limit off.
    pub msgs_per_sec: u32,
    /// How many error messages the global limit lets through at once after a quiet spell.
    pub burst: u32,
    /// One error message per destination per this interval; zero turns the
    /// per-destination limit off.
    pub per_dest_interval: Duration,
    /// How many intervals of credit a destination may save up (its burst).
    pub per_dest_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            msgs_per_sec: 1000,
            burst: 50,
            per_dest_interval: Duration::from_millis(1000),
            per_dest_burst: 6,
        }
    }
}

/// Why [`ErrorRateLimiter::allow`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimited {
    /// The host-wide bucket is empty (Linux's `IcmpOutRateLimitGlobal`).
    Global,
    /// The destination's bucket is empty (Linux's `IcmpOutRateLimitHost`).
    Host,
}

/// Destinations remembered at most; beyond it the one quiet for longest is forgotten
/// (forgetting is harmless: a new destination starts with the credit a quiet one has).
const MAX_PEERS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct PeerBucket {
    /// Credit in microseconds of `per_dest_interval` (each message costs one interval).
    credit: u64,
    last: Instant,
}

/// Token buckets for the ICMP errors we send: one for the host, one per destination.
/// Sans-IO: the caller passes the time of each message. `A` is the destination's address
/// type: IPv4 here, IPv6 for ICMPv6 (RFC 4443 §2.4(f) asks for the same kind of limit).
#[derive(Debug, Clone)]
pub struct ErrorRateLimiter<A = Ipv4Addr> {
    config: RateLimitConfig,
    /// Global credit in millionths of a message.
    global_credit: u64,
    global_last: Option<Instant>,
    peers: HashMap<A, PeerBucket>,
}

impl<A: Copy + Eq + std::hash::Hash> ErrorRateLimiter<A> {
    /// A limiter with full buckets.
    pub fn new(config: RateLimitConfig) -> ErrorRateLimiter<A> {
        ErrorRateLimiter {
            config,
            global_credit: u64::from(config.burst) * 1_000_000,
            global_last: None,
            peers: HashMap::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    /// Whether an ICMP error to `dst` may leave at `now`; if so its cost is taken from
    /// both buckets. The global bucket is asked first, as Linux does (`icmp_send`).
    pub fn allow(&mut self, dst: A, now: Instant) -> Result<(), RateLimited> {
        let c = self.config;
        if c.msgs_per_sec > 0 {
            let cap = u64::from(c.burst.max(1)) * 1_000_000;
            let elapsed = self
                .global_last
                .map_or(0, |t| now.saturating_duration_since(t).as_micros());
            let earned = u64::try_from(elapsed)
                .unwrap_or(u64::MAX)
                .saturating_mul(u64::from(c.msgs_per_sec));
            self.global_credit = self.global_credit.saturating_add(earned).min(cap);
            self.global_last = Some(now);
            if self.global_credit < 1_000_000 {
                return Err(RateLimited::Global);
            }
        }
        let interval = u64::try_from(c.per_dest_interval.as_micros()).unwrap_or(u64::MAX);
        if interval > 0 {
            let cap = interval.saturating_mul(u64::from(c.per_dest_burst.max(1)));
            if !self.peers.contains_key(&dst) && self.peers.len() >= MAX_PEERS {
                self.forget_one(now, cap);
            }
            let peer = self.peers.entry(dst).or_insert(PeerBucket {
                credit: cap,
                last: now,
            });
            let elapsed = u64::try_from(now.saturating_duration_since(peer.last).as_micros())
                .unwrap_or(u64::MAX);
            peer.credit = peer.credit.saturating_add(elapsed).min(cap);
            peer.last = now;
            if peer.credit < interval {
                return Err(RateLimited::Host);
            }
            peer.credit -= interval;
        }
        if c.msgs_per_sec > 0 {
            self.global_credit -= 1_000_000;
        }
        Ok(())
    }

    /// Makes room for one more destination: drop those whose bucket has refilled (they
    /// are the same as a new one), or else the one quiet for longest.
    fn forget_one(&mut self, now: Instant, cap: u64) {
        let full = |p: &PeerBucket| {
            let idle = u64::try_from(now.saturating_duration_since(p.last).as_micros())
                .unwrap_or(u64::MAX);
            p.credit.saturating_add(idle) >= cap
        };
        self.peers.retain(|_, p| !full(p));
        if self.peers.len() >= MAX_PEERS {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(a, _)| *a)
            {
                self.peers.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::{emit, PROTO_TCP, PROTO_UDP};

    fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        let mut m = vec![TYPE_ECHO_REQUEST, 0, 0, 0];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(data);
        set_checksum(&mut m);
        m
    }

    #[test]
    fn echo_request_gets_reply_with_same_id_seq_data() {
        let req = echo_request(0xbeef, 7, b"abcdefgh");
        let reply = handle(&req).unwrap().unwrap();
        assert_eq!(reply[0], TYPE_ECHO_REPLY);
        assert_eq!(reply[1], 0);
        assert_eq!(&reply[4..], &req[4..]);
        assert_eq!(checksum(&reply), 0);
        // etherparse agrees it is a well-formed echo reply.
        let (hdr, rest) = etherparse::Icmpv4Header::from_slice(&reply).unwrap();
        assert_eq!(
            hdr.icmp_type,
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 0xbeef, seq: 7 })
        );
        assert_eq!(hdr.checksum, hdr.icmp_type.calc_checksum(rest));
    }

    #[test]
    fn echo_request_with_nonzero_code_is_answered_with_that_code() {
        for code in [1u8, 9, 255] {
            let mut req = echo_request(3, 4, b"code");
            req[1] = code;
            set_checksum(&mut req);
            let reply = handle(&req).unwrap().expect("RFC 1122 §3.2.2.6: answered");
            assert_eq!((reply[0], reply[1]), (TYPE_ECHO_REPLY, code));
            assert_eq!(&reply[4..], &req[4..]);
            assert_eq!(checksum(&reply), 0);
        }
    }

    #[test]
    fn large_and_odd_payloads() {
        for size in [0usize, 1, 55, 56, 1400, 1401, 1472, 65_000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let req = echo_request(1, 2, &data);
            let reply = handle(&req).unwrap().unwrap();
            assert_eq!(reply.len(), req.len(), "size {size}");
            assert_eq!(checksum(&reply), 0, "size {size}");
            assert_eq!(&reply[8..], &data[..]);
        }
    }

    #[test]
    fn too_short_is_rejected() {
        let req = echo_request(1, 1, b"");
        for n in 0..8 {
            assert_eq!(handle(&req[..n]), Err(IcmpError::TooShort { len: n }));
        }
    }

    #[test]
    fn bad_checksum_is_rejected_anywhere_in_message() {
        let req = echo_request(1, 1, b"payload bytes");
        for i in 0..req.len() {
            let mut bad = req.clone();
            bad[i] ^= 0x10;
            assert_eq!(handle(&bad), Err(IcmpError::BadChecksum), "byte {i}");
        }
    }

    #[test]
    fn other_types_are_not_answered() {
        for (t, c) in [
            (TYPE_ECHO_REPLY, 0),
            (TYPE_DEST_UNREACHABLE, 3),
            (11, 0),
            (13, 0),
        ] {
            let mut m = vec![t, c, 0, 0, 0, 0, 0, 0, 1, 2, 3];
            set_checksum(&mut m);
            assert_eq!(handle(&m), Ok(None), "type {t} code {c}");
        }
    }

    #[test]
    fn dest_unreachable_quotes_header_and_eight_bytes() {
        let orig = emit(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            PROTO_UDP,
            64,
            3,
            b"0123456789abcdef",
        );
        let msg = dest_unreachable(CODE_PORT_UNREACHABLE, &orig);
        assert_eq!(&msg[..2], &[TYPE_DEST_UNREACHABLE, CODE_PORT_UNREACHABLE]);
        assert_eq!(&msg[4..8], &[0, 0, 0, 0]);
        assert_eq!(&msg[8..], &orig[..28]);
        assert_eq!(checksum(&msg), 0);
        // Our own handler accepts it (and does not answer an error).
        assert_eq!(handle(&msg), Ok(None));
    }

    #[test]
    fn dest_unreachable_with_options_and_short_originals() {
        let mut with_opts = vec![0x46u8; 40]; // IHL 6 → 24-byte header, quote 32
        with_opts[1] = 0;
        assert_eq!(dest_unreachable(2, &with_opts).len(), 8 + 32);
        assert_eq!(dest_unreachable(2, &[]).len(), 8);
        assert_eq!(dest_unreachable(2, &[0x45, 0, 0]).len(), 11);
        // Garbage IHL falls back to 20.
        assert_eq!(dest_unreachable(2, &[0x41; 100]).len(), 8 + 28);
    }

    #[test]
    fn error_suppression_rules() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let tcp = emit(a, b, PROTO_TCP, 64, 1, &[0; 20]);
        assert!(may_send_error_for(&Ipv4Packet::parse(&tcp).unwrap()));
        let bcast = emit(a, Ipv4Addr::BROADCAST, PROTO_UDP, 64, 1, &[0; 8]);
        assert!(!may_send_error_for(&Ipv4Packet::parse(&bcast).unwrap()));
        let mcast = emit(a, Ipv4Addr::new(224, 0, 0, 251), PROTO_UDP, 64, 1, &[0; 8]);
        assert!(!may_send_error_for(&Ipv4Packet::parse(&mcast).unwrap()));
        let err = emit(a, b, PROTO_ICMP, 64, 1, &dest_unreachable(3, &tcp));
        assert!(!may_send_error_for(&Ipv4Packet::parse(&err).unwrap()));
        let ping = emit(a, b, PROTO_ICMP, 64, 1, &echo_request(1, 1, b""));
        assert!(may_send_error_for(&Ipv4Packet::parse(&ping).unwrap()));
        let empty_icmp = emit(a, b, PROTO_ICMP, 64, 1, b"");
        assert!(!may_send_error_for(
            &Ipv4Packet::parse(&empty_icmp).unwrap()
        ));
    }

    #[test]
    fn error_messages_parse() {
        let orig = emit(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            PROTO_TCP,
            64,
            3,
            &[0x55; 40],
        );
        let m = dest_unreachable(CODE_PORT_UNREACHABLE, &orig);
        let e = parse_error(&m).unwrap();
        assert_eq!(e.kind, ErrorKind::DestUnreachable { code: 3 });
        assert!(e.kind.is_hard());
        assert_eq!(e.quoted, &orig[..28]);
        let m = fragmentation_needed(1280, &orig);
        assert_eq!(checksum(&m), 0);
        assert_eq!(
            parse_error(&m).unwrap().kind,
            ErrorKind::FragmentationNeeded { next_hop_mtu: 1280 }
        );
        let m = time_exceeded(CODE_REASSEMBLY_TIME_EXCEEDED, &orig);
        assert_eq!(&m[..2], &[11, 1]);
        assert_eq!(checksum(&m), 0);
        let e = parse_error(&m).unwrap();
        assert_eq!(e.kind, ErrorKind::TimeExceeded { code: 1 });
        assert!(!e.kind.is_hard());
        assert!(!ErrorKind::DestUnreachable { code: 1 }.is_hard());
        let mut q = vec![TYPE_SOURCE_QUENCH, 0, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&orig[..28]);
        assert_eq!(parse_error(&q).unwrap().kind, ErrorKind::SourceQuench);
        q[0] = TYPE_PARAMETER_PROBLEM;
        assert_eq!(parse_error(&q).unwrap().kind, ErrorKind::ParameterProblem);
        // Queries and short messages are not errors.
        assert_eq!(parse_error(&echo_request(1, 1, b"x")), None);
        assert_eq!(parse_error(&[3, 4, 0]), None);
        assert_eq!(parse_error(&[]), None);
    }

    #[test]
    fn reasons() {
        assert_eq!(IcmpError::BadChecksum.to_string(), "bad-checksum");
        assert_eq!(IcmpError::TooShort { len: 3 }.reason(), "too-short");
        assert_eq!(
            IcmpError::TooShort { len: 3 }.to_string(),
            "too-short (3 bytes)"
        );
    }

    #[test]
    fn rate_limit_per_destination_bursts_six_then_one_a_second() {
        let mut rl = ErrorRateLimiter::new(RateLimitConfig::default());
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 3);
        let t0 = Instant::from_secs(100);
        let sent = (0..1000).filter(|_| rl.allow(a, t0).is_ok()).count();
        assert_eq!(sent, 6);
        assert_eq!(rl.allow(a, t0), Err(RateLimited::Host));
        // Another destination has its own bucket.
        assert_eq!(rl.allow(b, t0), Ok(()));
        // 999 ms later still nothing; at one second one more.
        assert_eq!(
            rl.allow(a, t0 + Duration::from_millis(999)),
            Err(RateLimited::Host)
        );
        assert_eq!(rl.allow(a, t0 + Duration::from_millis(1000)), Ok(()));
        assert_eq!(
            rl.allow(a, t0 + Duration::from_millis(1000)),
            Err(RateLimited::Host)
        );
        // A long quiet spell refills the burst, not more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| rl.allow(a, later).is_ok()).count(), 6);
    }

    #[test]
    fn rate_limit_global_bucket_bursts_fifty_then_a_thousand_a_second() {
        let mut rl = ErrorRateLimiter::new(RateLimitConfig::default());
        let t0 = Instant::from_secs(5);
        let dst = |i: u32| Ipv4Addr::from(0x0a00_0000 + i);
        let sent = (0..200).filter(|&i| rl.allow(dst(i), t0).is_ok()).count();
        assert_eq!(sent, 50);
        assert_eq!(rl.allow(dst(1000), t0), Err(RateLimited::Global));
        // 10 ms earn 10 messages at 1000/s.
        let t1 = t0 + Duration::from_millis(10);
        let sent = (2000..2100)
            .filter(|&i| rl.allow(dst(i), t1).is_ok())
            .count();
        assert_eq!(sent, 10);
        // Many distinct destinations never grow the table past its bound.
        for i in 0..(MAX_PEERS as u32 + 100) {
            let _ = rl.allow(dst(10_000 + i), t1 + Duration::from_millis(u64::from(i)));
        }
        assert!(rl.peers.len() <= MAX_PEERS);
    }

    #[test]
    fn rate_limit_zero_turns_limits_off() {
        let mut rl = ErrorRateLimiter::new(RateLimitConfig {
            msgs_per_sec: 0,
            burst: 0,
            per_dest_interval: Duration::ZERO,
            per_dest_burst: 0,
        });
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert!((0..10_000).all(|_| rl.allow(a, Instant::ZERO).is_ok()));
    }
}
