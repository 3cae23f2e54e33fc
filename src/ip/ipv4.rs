//! IPv4 (RFC 791): parse + validate incoming packets, build outgoing ones, and the
//! Internet checksum (RFC 1071) shared with the transport layer.
//!
//! The header, as drawn in RFC 791 §3.1:
//!
//! ```text
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |Version|  IHL  |Type of Service|          Total Length         |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |         Identification        |Flags|      Fragment Offset    |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Time to Live |    Protocol   |         Header Checksum       |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                       Source Address                          |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                    Destination Address                        |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                    Options                    |    Padding    |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The byte work is done here by hand with checked slicing (`get`), so that *we* decide
//! every drop reason and no input can make the parser index out of bounds.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use tunstack::ip::ipv4::{self, Ipv4Error, Ipv4Packet, PROTO_TCP};
//!
//! let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
//! let bytes = ipv4::emit(a, b, PROTO_TCP, 64, 1, b"segment");
//! let packet = Ipv4Packet::parse(&bytes)?;
//! assert_eq!((packet.src, packet.dst, packet.payload), (a, b, &b"segment"[..]));
//!
//! let mut corrupt = bytes.clone();
//! corrupt[8] ^= 1; // TTL changed, checksum not updated
//! let err = Ipv4Packet::parse(&corrupt).unwrap_err();
//! assert_eq!(err.reason(), "bad-checksum");
//! # Ok::<(), Ipv4Error>(())
//! ```

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

/// IP protocol number of ICMP (RFC 792).
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP (RFC 9293).
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP (RFC 768).
pub const PROTO_UDP: u8 = 17;

/// Length of a header without options (IHL = 5).
pub const MIN_HEADER_LEN: usize = 20;
/// Largest payload an IPv4 packet with a 20-byte header can carry (total length is 16 bits).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - MIN_HEADER_LEN;
/// Default TTL for packets we originate (RFC 1700 / Linux `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// Flag bit "Don't Fragment" in the flags/fragment-offset word (RFC 791 §3.1).
const FLAG_DF: u16 = 0x4000;
/// Flag bit "More Fragments".
const FLAG_MF: u16 = 0x2000;
/// The 13-bit fragment offset.
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Why an incoming IPv4 packet was dropped. One variant per drop reason; [`Ipv4Error::reason`]
/// gives a stable short name for statistics keys and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Fewer bytes than the 20-byte minimum header.
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The version nibble is not 4 (e.g. an IPv6 packet the kernel pushed into the TUN).
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// IHL below 5 words (RFC 791 §3.1: "the minimum value for a correct header is 5").
    BadHeaderLength {
        /// The IHL field (in 32-bit words).
        ihl: u8,
    },
    /// IHL says the header (with options) is longer than the bytes received.
    HeaderTruncated {
        /// Header length in bytes according to IHL.
        header_len: usize,
        /// Bytes received.
        len: usize,
    },
    /// Total length is smaller than the header length.
    BadTotalLength {
        /// The total length field.
        total_len: usize,
        /// Header length in bytes.
        header_len: usize,
    },
    /// Total length is larger than the bytes received: the packet was cut short.
    Truncated {
        /// The total length field.
        total_len: usize,
        /// Bytes received.
        len: usize,
    },
    /// The header checksum does not verify (RFC 791 §3.1, RFC 1071).
    BadChecksum,
    /// A fragment (MF set or offset != 0), from [`Ipv4Packet::parse`]; fragments go through
    /// [`Ipv4Packet::parse_with_fragments`] and the reassembler ([`super::frag`]).
    Fragment {
        /// Fragment offset in bytes.
        offset: usize,
        /// More Fragments flag.
        more: bool,
    },
    /// A source address that cannot name a single host (RFC 1122 §3.2.1.3): unspecified,
    /// limited broadcast, multicast or loopback arriving on a network interface.
    BadSource {
        /// The offending source address.
        src: Ipv4Addr,
    },
}

impl Ipv4Error {
    /// A stable short name for this drop reason, usable as a statistics key.
    pub fn reason(&self) -> &'static str {
        match self {
            Ipv4Error::TooShort { .. } => "too-short",
            Ipv4Error::BadVersion { .. } => "bad-version",
            Ipv4Error::BadHeaderLength { .. } => "bad-header-length",
            Ipv4Error::HeaderTruncated { .. } => "header-truncated",
            Ipv4Error::BadTotalLength { .. } => "bad-total-length",
            Ipv4Error::Truncated { .. } => "truncated",
            Ipv4Error::BadChecksum => "bad-checksum",
            Ipv4Error::Fragment { .. } => "fragment",
            Ipv4Error::BadSource { .. } => "bad-source",
        }
    }
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.reason();
        match self {
            Ipv4Error::TooShort { len } => write!(f, "{reason} ({len} bytes)"),
            Ipv4Error::BadVersion { version } => write!(f, "{reason} (version {version})"),
            Ipv4Error::BadHeaderLength { ihl } => write!(f, "{reason} (IHL {ihl})"),
            Ipv4Error::HeaderTruncated { header_len, len } => {
                write!(f, "{reason} (header {header_len} bytes, got {len})")
            }
            Ipv4Error::BadTotalLength {
                total_len,
                header_len,
            } => write!(f, "{reason} (total {total_len} < header {header_len})"),
            Ipv4Error::Truncated { total_len, len } => {
                write!(f, "{reason} (total length {total_len}, got {len} bytes)")
            }
            Ipv4Error::BadChecksum => f.write_str(reason),
            Ipv4Error::Fragment { offset, more } => {
                write!(f, "{reason} (offset {offset}, more fragments {more})")
            }
            Ipv4Error::BadSource { src } => write!(f, "{reason} ({src})"),
        }
    }
}

impl std::error::Error for Ipv4Error {}

/// A validated view of an IPv4 packet.
///
/// Produced only by [`Ipv4Packet::parse`], so holding one means: version 4, a sane header
/// length, a total length that fits the buffer, a correct header checksum, not a fragment
/// and a unicast-capable source (any TTL: RFC 1122 §3.2.1.7). Options, if any, are skipped (`payload` starts
/// after them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address (the caller decides whether it is ours).
    pub dst: Ipv4Addr,
    /// Protocol of the payload ([`PROTO_ICMP`], [`PROTO_TCP`], ...).
    pub protocol: u8,
    /// Time to live as received.
    pub ttl: u8,
    /// Identification field.
    pub id: u16,
    /// Header length in bytes, options included (20..=60).
    pub header_len: usize,
    /// The payload: bytes from the end of the header up to the total length.
    pub payload: &'a [u8],
    /// The whole packet, header and payload, cut at the total length (trailing bytes beyond
    /// the total length, such as Ethernet padding, are not included).
    pub bytes: &'a [u8],
}

/// Reads a big-endian u16 at `at`, or None if out of bounds.
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let b = bytes.get(at..end)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Reads an IPv4 address at `at`, or None if out of bounds.
fn addr(bytes: &[u8], at: usize) -> Option<Ipv4Addr> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

impl<'a> Ipv4Packet<'a> {
    /// Validates `bytes` as an IPv4 packet and returns a typed view of it.
    ///
    /// The checks, in order (each with its own [`Ipv4Error`]): minimum length, version,
    /// IHL >= 5, header fits the buffer, total length >= header and <= buffer, header checksum,
    /// not a fragment, source address sanity (RFC 1122 §3.2.1.3).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Ipv4Error> {
        Self::parse_inner(bytes, false)
    }

    /// Like [`Ipv4Packet::parse`], but admits fragments (MF set or offset != 0) so they can
    /// be handed to the reassembler ([`super::frag::Reassembler`]). Every other check is
    /// the same; use [`Ipv4Packet::is_fragment`] to tell a fragment from a whole datagram.
    pub fn parse_with_fragments(bytes: &'a [u8]) -> Result<Self, Ipv4Error> {
        Self::parse_inner(bytes, true)
    }

    fn parse_inner(bytes: &'a [u8], allow_fragments: bool) -> Result<Self, Ipv4Error> {
        let len = bytes.len();
        let first = match bytes.first() {
            Some(&b) if len >= MIN_HEADER_LEN => b,
            _ => return Err(Ipv4Error::TooShort { len }),
        };
        let version = first >> 4;
        if version != 4 {
            return Err(Ipv4Error::BadVersion { version });
        }
        // RFC 791 §3.1: IHL counts 32-bit words; 5 is the minimum.
        let ihl = first & 0x0f;
        if ihl < 5 {
            return Err(Ipv4Error::BadHeaderLength { ihl });
        }
        let header_len = usize::from(ihl) * 4;
        let header = bytes
            .get(..header_len)
            .ok_or(Ipv4Error::HeaderTruncated { header_len, len })?;
        let too_short = Ipv4Error::TooShort { len };
        let total_len = usize::from(be16(bytes, 2).ok_or(too_short)?);
        if total_len < header_len {
            return Err(Ipv4Error::BadTotalLength {
                total_len,
                header_len,
            });
        }
        // Bytes beyond total length (link-layer padding) are not part of the packet.
        let bytes = bytes
            .get(..total_len)
            .ok_or(Ipv4Error::Truncated { total_len, len })?;
        // RFC 1071: the one's complement sum over a header that includes its checksum is
        // all ones, so recomputing "the checksum" over it yields 0.
        if checksum(header) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        let flags_frag = be16(bytes, 6).ok_or(too_short)?;
        let more = flags_frag & FLAG_MF != 0;
        let offset = usize::from(flags_frag & FRAG_OFFSET_MASK) * 8;
        if (more || offset != 0) && !allow_fragments {
            return Err(Ipv4Error::Fragment { offset, more });
        }
        // RFC 1122 §3.2.1.7: a host "MUST NOT discard a datagram just because it was
        // received with TTL less than 2"; TTL 0 or 1 only stops a router forwarding it.
        let ttl = *bytes.get(8).ok_or(too_short)?;
        let protocol = *bytes.get(9).ok_or(too_short)?;
        let src = addr(bytes, 12).ok_or(too_short)?;
        let dst = addr(bytes, 16).ok_or(too_short)?;
        // RFC 1122 §3.2.1.3: a host MUST silently discard a datagram whose source is not a
        // single host: {0,0} (only legal during bootstrap, which we do not do), limited
        // broadcast, class D multicast, and {127, any} which "MUST NOT appear outside a host".
        if src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback() {
            return Err(Ipv4Error::BadSource { src });
        }
        let id = be16(bytes, 4).ok_or(too_short)?;
        let payload = bytes.get(header_len..).unwrap_or_default();
        Ok(Ipv4Packet {
            src,
            dst,
            protocol,
            ttl,
            id,
            header_len,
            payload,
            bytes,
        })
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &'a [u8] {
        self.bytes.get(..self.header_len).unwrap_or_default()
    }

    fn flags_frag(&self) -> u16 {
        be16(self.bytes, 6).unwrap_or(0)
    }

    /// The More Fragments flag (RFC 791 §3.1).
    pub fn more_fragments(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// The Don't Fragment flag (RFC 791 §3.1).
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// Where this fragment's data starts in the original datagram's payload, in bytes
    /// (the 13-bit field counts 8-byte units).
    pub fn fragment_offset(&self) -> usize {
        usize::from(self.flags_frag() & FRAG_OFFSET_MASK) * 8
    }

    /// True for a fragment (MF set or a non-zero offset), false for a whole datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }
}

/// Buckets of [`IdGenerator`] (as Linux's `ip_idents`, a power of two).
const ID_BUCKETS: usize = 2048;

/// Chooses the Identification field of the datagrams we send (RFC 6864, RFC 7739).
///
/// One counter for all datagrams would let anyone who talks to us count the packets we
/// send to everyone else (nmap calls it "incremental" IP IDs; an idle scan uses them to
/// scan a third host through us). RFC 7739 §5 recommends instead a counter per
/// destination, reached through a keyed hash: here, as in Linux (`ip_idents`), the hash
/// of (secret, source, destination, protocol) picks one of 2048 counters and also offsets
/// its value, so a peer sees its own datagrams counted and learns nothing about traffic to
/// other hosts (but for the rare hash collision). Datagrams to one destination and
/// protocol still get consecutive, distinct ids: RFC 6864 §4.2 requires that of a
/// datagram that may be fragmented (ours are: [`emit_fragments`]), and the ids a device
/// gives the pieces of a TCP super-segment are reserved with `count`.
#[derive(Clone)]
pub struct IdGenerator {
    secret: [u64; 2],
    counters: Box<[u16]>,
    /// The last (source, destination, protocol) hashed and its bucket and offset: a server
    /// answers the same few peers packet after packet, and the keyed hash was a tenth of
    /// the work of sending a small response.
    last: Option<(Ipv4Addr, Ipv4Addr, u8, usize, u16)>,
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is the point of the design: never print it.
        f.debug_struct("IdGenerator").finish_non_exhaustive()
    }
}

impl IdGenerator {
    /// A generator keyed by `seed` (feed it from a random source in production).
    pub fn new(seed: u64) -> IdGenerator {
        let mut h = DefaultHasher::new();
        (seed, 0x6970_6964_u64).hash(&mut h);
        let k0 = h.finish();
        (k0, seed).hash(&mut h);
        IdGenerator {
            secret: [k0, h.finish()],
            counters: vec![0u16; ID_BUCKETS].into_boxed_slice(),
            last: None,
        }
    }

    /// The id of the next datagram from `src` to `dst` carrying `protocol`, reserving
    /// `count` consecutive ids (at least 1) for the pieces a device cuts it into.
    pub fn next(&mut self, src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, count: u16) -> u16 {
        let (index, offset) = match self.last {
            Some((s, d, p, index, offset)) if s == src && d == dst && p == protocol => {
                (index, offset)
            }
            _ => {
                let mut h = DefaultHasher::new();
                (self.secret, src.octets(), dst.octets(), protocol).hash(&mut h);
                let hash = h.finish();
                let index = (hash as usize) % ID_BUCKETS;
                let offset = (hash >> 32) as u16;
                self.last = Some((src, dst, protocol, index, offset));
                (index, offset)
            }
        };
        let Some(counter) = self.counters.get_mut(index) else {
            return offset;
        };
        let id = counter.wrapping_add(offset);
        *counter = counter.wrapping_add(count.max(1));
        id
    }
}

/// Builds the packets that carry `payload` over a link of `mtu` bytes (RFC 791 §3.2,
/// "Fragmentation and Reassembly"). If the whole datagram fits, the result is one packet
/// exactly as [`emit`] makes it (DF set: path MTU discovery, RFC 1191). Otherwise the
/// payload is cut into fragments: every fragment but the last carries a multiple of 8
/// data bytes (the offset field counts 8-byte units) and has MF set; all share `id`; DF is
/// clear, since a fragmented datagram may be fragmented further on the way.
///
/// An `mtu` below 28 (20 header bytes + 8 data bytes: RFC 791's minimum fragment) is raised
/// to 28; a payload above [`MAX_PAYLOAD_LEN`] is truncated as [`emit`] does.
pub fn emit_fragments(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    payload: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let payload = payload.get(..MAX_PAYLOAD_LEN).unwrap_or(payload);
    if MIN_HEADER_LEN.saturating_add(payload.len()) <= mtu {
        return vec![emit(src, dst, protocol, ttl, id, payload)];
    }
    // Data per fragment: what fits after the header, rounded down to 8 bytes.
    let per = (mtu.max(MIN_HEADER_LEN + 8) - MIN_HEADER_LEN) / 8 * 8;
    let mut out = Vec::with_capacity(payload.len() / per + 1);
    let mut offset = 0usize;
    for chunk in payload.chunks(per) {
        let end = offset + chunk.len();
        let more = end < payload.len();
        // offset <= MAX_PAYLOAD_LEN, so offset / 8 fits the 13-bit field.
        let units = u16::try_from(offset / 8).unwrap_or(FRAG_OFFSET_MASK) & FRAG_OFFSET_MASK;
        let flags = if more { FLAG_MF | units } else { units };
        let mut packet = Vec::with_capacity(MIN_HEADER_LEN + chunk.len());
        emit_into(&mut packet, src, dst, protocol, ttl, id, chunk.len());
        set_flags_frag(&mut packet, flags);
        packet.extend_from_slice(chunk);
        out.push(packet);
        offset = end;
    }
    out
}

/// Rewrites the flags/fragment-offset word of the header at the start of `packet` and
/// recomputes the header checksum.
pub(crate) fn set_flags_frag(packet: &mut [u8], flags_frag: u16) {
    let header_len = packet
        .first()
        .map_or(MIN_HEADER_LEN, |b| usize::from(b & 0x0f) * 4);
    if let Some(field) = packet.get_mut(6..8) {
        field.copy_from_slice(&flags_frag.to_be_bytes());
    }
    if let Some(field) = packet.get_mut(10..12) {
        field.copy_from_slice(&[0, 0]);
    }
    let sum = checksum(packet.get(..header_len).unwrap_or_default());
    if let Some(field) = packet.get_mut(10..12) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
}

/// Builds an IPv4 packet: a 20-byte header (no options, DF set, the given TTL and id, a
/// correct checksum) followed by `payload`.
///
/// A payload longer than [`MAX_PAYLOAD_LEN`] cannot be expressed in the 16-bit total length;
/// it is truncated to that length (and logged) rather than producing an inconsistent packet.
pub fn emit(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let payload = match payload.get(..MAX_PAYLOAD_LEN) {
        Some(p) if payload.len() > MAX_PAYLOAD_LEN => {
            log::error!(
                "payload of {} bytes truncated to {MAX_PAYLOAD_LEN}",
                payload.len()
            );
            p
        }
        _ => payload,
    };
    let mut out = Vec::with_capacity(MIN_HEADER_LEN + payload.len());
    emit_into(&mut out, src, dst, protocol, ttl, id, payload.len());
    out.extend_from_slice(payload);
    out
}

/// Appends a 20-byte IPv4 header (DF set, checksum computed) for a payload of `payload_len`
/// bytes to `out`; the caller appends the payload right after it. Avoids an allocation and a
/// copy when the payload is produced in place (e.g. a TCP segment written into `out`).
///
/// `payload_len` above [`MAX_PAYLOAD_LEN`] is clamped in the total length field (and logged):
/// such a payload cannot be carried by IPv4 without fragmentation.
pub fn emit_into(
    out: &mut Vec<u8>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    payload_len: usize,
) {
    if payload_len > MAX_PAYLOAD_LEN {
        log::error!("payload length {payload_len} exceeds the IPv4 maximum {MAX_PAYLOAD_LEN}");
    }
    let mut header = [0u8; MIN_HEADER_LEN];
    write_header(&mut header, src, dst, protocol, ttl, id, payload_len);
    out.extend_from_slice(&header);
}

/// Writes a 20-byte IPv4 header (DF set, checksum computed) for a payload of
/// `payload_len` bytes over the first 20 bytes of `header` (nothing if it is shorter):
/// for a packet built with room left for its header, filled in once the payload's length
/// is known. `payload_len` is clamped as in [`emit_into`].
pub fn write_header(
    header: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    payload_len: usize,
) {
    let Some(header) = header.get_mut(..MIN_HEADER_LEN) else {
        return;
    };
    let total_len = u16::try_from(MIN_HEADER_LEN.saturating_add(payload_len)).unwrap_or(u16::MAX);
    header[0] = 0x45; // version 4, IHL 5
    header[1] = 0; // DSCP/ECN: best effort
    header[2..4].copy_from_slice(&total_len.to_be_bytes());
    header[4..6].copy_from_slice(&id.to_be_bytes());
    // DF: RFC 1191 path MTU discovery relies on it; [`emit_fragments`] clears it when it
    // has to fragment.
    header[6..8].copy_from_slice(&FLAG_DF.to_be_bytes());
    header[8] = ttl;
    header[9] = protocol;
    header[10..12].copy_from_slice(&[0, 0]);
    header[12..16].copy_from_slice(&src.octets());
    header[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Adds `data` as big-endian 16-bit words to a running one's-complement sum (RFC 1071 §4.1).
/// An odd trailing byte is padded with a zero byte. The sum is kept in a u64 and folded at
/// the end, so no input length can overflow it.
fn sum_words(sum: u64, data: &[u8]) -> u64 {
    sum.wrapping_add(u64::from(ones_sum(data)))
}

/// The one's complement sum of `data` as big-endian 16-bit words (an odd trailing byte
/// padded with zero), folded to 16 bits (RFC 1071 §4.1), not complemented.
///
/// RFC 1071 §2(B)/(C): the sum can be taken over wider words and folded at the end, and in
/// either byte order ("byte order independence": the sum of byte-swapped words is the
/// byte-swapped sum). So the data is added as native-endian 32-bit words into four 64-bit
/// accumulators — no byte swap per word, and a loop the compiler vectorizes — and the
/// folded result is put in network order once. About four times faster than 16 bits at a
/// time; the TCP checksum covers every segment in and out.
pub(crate) fn ones_sum(data: &[u8]) -> u16 {
    let mut acc = [0u64; 4];
    let mut wide = data.chunks_exact(16);
    for c in &mut wide {
        if let Ok(c) = <&[u8; 16]>::try_from(c) {
            for (i, a) in acc.iter_mut().enumerate() {
                let w = [c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]];
                *a += u64::from(u32::from_ne_bytes(w));
            }
        }
    }
    // Each accumulator grows by less than 2^32 per 16 bytes: no overflow below 2^64 bytes.
    let mut sum: u64 = acc.iter().sum();
    let mut pairs = wide.remainder().chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        // An odd final byte is padded with zero on the right (RFC 1071).
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    u16::from_be(fold(sum))
}

/// Folds a wide sum into 16 bits with end-around carry (RFC 1071 §2 (B)).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves sum <= 0xffff.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The Internet checksum of `data` (RFC 1071): the one's complement of the one's complement
/// sum of its 16-bit words. Store the result big-endian in the checksum field (which must be
/// zero while computing). Over data that already contains a correct checksum the result is 0,
/// which is how receivers verify.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(0, data))
}

/// Like [`checksum`], but continues from a partial sum such as [`pseudo_header_sum`]
/// (TCP and UDP checksum the pseudo-header followed by the segment).
pub fn checksum_with(initial: u32, data: &[u8]) -> u16 {
    !fold(sum_words(u64::from(initial), data))
}

/// The unfolded one's-complement sum of the IPv4 pseudo-header used by TCP (RFC 9293 §3.1)
/// and UDP (RFC 768): source, destination, zero + protocol, and the TCP/UDP length.
/// Feed it to [`checksum_with`] together with the segment.
///
/// ```text
///    +--------+--------+--------+--------+
///    |           Source Address          |
///    +--------+--------+--------+--------+
///    |         Destination Address       |
///    +--------+--------+--------+--------+
///    |  zero  |  PTCL  |    TCP Length   |
///    +--------+--------+--------+--------+
/// ```
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let mut sum = sum_words(0, &src.octets());
    sum = sum_words(sum, &dst.octets());
    sum = sum.wrapping_add(u64::from(protocol));
    sum = sum.wrapping_add(u64::from(length));
    // At most 6 words: fits in u32 without folding; fold anyway to keep the type honest.
    u32::from(fold(sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv4Options};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// A valid packet built by etherparse, for checks independent of our emitter.
    fn etherparse_packet(payload: &[u8], options: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(
            u16::try_from(payload.len()).unwrap(),
            33,
            IpNumber::TCP,
            A.octets(),
            B.octets(),
        )
        .unwrap();
        h.identification = 0x1234;
        h.options = Ipv4Options::try_from(options).unwrap();
        h.total_len = u16::try_from(h.header_len() + payload.len()).unwrap();
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        out.extend_from_slice(payload);
        out
    }

    /// Rewrites the header checksum after a test mutated a header field.
    fn fix_checksum(pkt: &mut [u8]) {
        let hl = usize::from(pkt[0] & 0x0f) * 4;
        pkt[10] = 0;
        pkt[11] = 0;
        let sum = checksum(&pkt[..hl]);
        pkt[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn fast_sum_equals_the_16_bit_sum_at_any_length_and_alignment() {
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for (start, len) in [
            (0, 0),
            (1, 1),
            (3, 17),
            (0, 1460),
            (1, 1460),
            (5, 2993),
            (7, 64),
        ]
        .into_iter()
        .chain((0..200).map(|n| (n % 9, n * 13 % 2900)))
        {
            let d = &data[start..start + len];
            let mut naive: u64 = 0;
            for (i, b) in d.iter().enumerate() {
                naive += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
            }
            assert_eq!(ones_sum(d), fold(naive), "start {start} length {len}");
        }
    }

    #[test]
    fn write_header_matches_emit_into() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut expected = Vec::new();
        emit_into(&mut expected, a, b, PROTO_TCP, 64, 77, 65515);
        let mut packet = vec![0xffu8; 25];
        write_header(&mut packet, a, b, PROTO_TCP, 64, 77, 65515);
        assert_eq!(packet[..20], expected[..]);
        assert_eq!(packet[20..], [0xff; 5], "only the header is written");
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 65535);
        assert_eq!(checksum(&packet[..20]), 0);
        let mut short = [0u8; 10];
        write_header(&mut short, a, b, PROTO_TCP, 64, 77, 0);
        assert_eq!(short, [0; 10], "too short: untouched");
    }

    #[test]
    fn parses_etherparse_packet() {
        let pkt = etherparse_packet(b"hello", &[]);
        let p = Ipv4Packet::parse(&pkt).unwrap();
        assert_eq!(
            (p.src, p.dst, p.protocol, p.ttl, p.id),
            (A, B, PROTO_TCP, 33, 0x1234)
        );
        assert_eq!(p.header_len, 20);
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.bytes, &pkt[..]);
        assert_eq!(p.header(), &pkt[..20]);
    }

    #[test]
    fn options_are_skipped() {
        // Two NOPs + End of options list, padded to 4 bytes (RFC 791 §3.1).
        let pkt = etherparse_packet(b"data", &[1, 1, 0, 0, 7, 3, 4, 0]);
        let p = Ipv4Packet::parse(&pkt).unwrap();
        assert_eq!(p.header_len, 28);
        assert_eq!(p.payload, b"data");
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut pkt = etherparse_packet(b"xy", &[]);
        pkt.extend_from_slice(&[0; 24]); // e.g. Ethernet minimum-frame padding
        let p = Ipv4Packet::parse(&pkt).unwrap();
        assert_eq!(p.payload, b"xy");
        assert_eq!(p.bytes.len(), 22);
    }

    #[test]
    fn emit_round_trip_and_etherparse_agrees() {
        let pkt = emit(A, B, PROTO_ICMP, 64, 77, b"odd-len");
        let p = Ipv4Packet::parse(&pkt).unwrap();
        assert_eq!(
            (p.src, p.dst, p.protocol, p.ttl, p.id),
            (A, B, PROTO_ICMP, 64, 77)
        );
        assert_eq!(p.payload, b"odd-len");
        let h = Ipv4HeaderSlice::from_slice(&pkt).unwrap();
        assert!(h.dont_fragment());
        assert!(!h.more_fragments());
        assert_eq!(h.total_len(), 27);
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
    }

    #[test]
    fn emit_into_appends_header_only() {
        let mut out = vec![0xee];
        emit_into(&mut out, A, B, PROTO_TCP, 5, 9, 3);
        assert_eq!(out.len(), 21);
        out.extend_from_slice(b"abc");
        let p = Ipv4Packet::parse(&out[1..]).unwrap();
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.ttl, 5);
    }

    #[test]
    fn emit_clamps_oversized_payload() {
        let big = vec![1u8; MAX_PAYLOAD_LEN + 10];
        let pkt = emit(A, B, PROTO_UDP, 1, 1, &big);
        assert_eq!(pkt.len(), u16::MAX as usize);
        assert_eq!(
            Ipv4Packet::parse(&pkt).unwrap().payload.len(),
            MAX_PAYLOAD_LEN
        );
        let mut out = Vec::new();
        emit_into(&mut out, A, B, PROTO_UDP, 1, 1, usize::MAX);
        assert_eq!(&out[2..4], &[0xff, 0xff]);
    }

    #[test]
    fn rejects_too_short() {
        let pkt = emit(A, B, PROTO_TCP, 64, 1, b"");
        for n in 0..20 {
            assert_eq!(
                Ipv4Packet::parse(&pkt[..n]),
                Err(Ipv4Error::TooShort { len: n })
            );
        }
    }

    #[test]
    fn rejects_bad_version() {
        let mut pkt = emit(A, B, PROTO_TCP, 64, 1, b"x");
        pkt[0] = 0x65;
        fix_checksum(&mut pkt);
        assert_eq!(
            Ipv4Packet::parse(&pkt),
            Err(Ipv4Error::BadVersion { version: 6 })
        );
    }

    #[test]
    fn rejects_ihl_below_five() {
        for ihl in 0..5u8 {
            let mut pkt = emit(A, B, PROTO_TCP, 64, 1, b"x");
            pkt[0] = 0x40 | ihl;
            assert_eq!(
                Ipv4Packet::parse(&pkt),
                Err(Ipv4Error::BadHeaderLength { ihl })
            );
        }
    }

    #[test]
    fn rejects_header_longer_than_buffer() {
        let mut pkt = emit(A, B, PROTO_TCP, 64, 1, b"x");
        pkt[0] = 0x4f; // 60-byte header, 21-byte buffer
        assert_eq!(
            Ipv4Packet::parse(&pkt),
            Err(Ipv4Error::HeaderTruncated {
                header_len: 60,
                len: 21
            })
        );
    }

    #[test]
    fn rejects_total_length_below_header() {
        let mut pkt = emit(A, B, PROTO_TCP, 64, 1, b"x");
        pkt[2..4].copy_from_slice(&19u16.to_be_bytes());
        fix_checksum(&mut pkt);
        assert_eq!(
            Ipv4Packet::parse(&pkt),
            Err(Ipv4Error::BadTotalLength {
                total_len: 19,
                header_len: 20
            })
        );
    }

    #[test]
    fn rejects_total_length_beyond_buffer() {
        let pkt = emit(A, B, PROTO_TCP, 64, 1, b"0123456789");
        assert_eq!(
            Ipv4Packet::parse(&pkt[..25]),
            Err(Ipv4Error::Truncated {
                total_len: 30,
                len: 25
            })
        );
    }

    #[test]
    fn rejects_bad_checksum_any_header_bit() {
        let pkt = emit(A, B, PROTO_TCP, 64, 1, b"x");
        // Flipping a bit in the checksummed fields that later checks don't catch first.
        for byte in [1usize, 4, 5, 9, 10, 11, 13, 19] {
            let mut bad = pkt.clone();
            bad[byte] ^= 0x01;
            assert_eq!(
                Ipv4Packet::parse(&bad),
                Err(Ipv4Error::BadChecksum),
                "byte {byte}"
            );
        }
        // The payload is not covered by the IPv4 header checksum (RFC 791 §3.1).
        let mut payload_flip = pkt.clone();
        payload_flip[20] ^= 0xff;
        assert!(Ipv4Packet::parse(&payload_flip).is_ok());
    }

    #[test]
    fn rejects_fragments() {
        let mut mf = emit(A, B, PROTO_TCP, 64, 1, b"x");
        mf[6] = 0x20; // MF, offset 0: first fragment
        fix_checksum(&mut mf);
        assert_eq!(
            Ipv4Packet::parse(&mf),
            Err(Ipv4Error::Fragment {
                offset: 0,
                more: true
            })
        );
        let mut last = emit(A, B, PROTO_TCP, 64, 1, b"x");
        last[6..8].copy_from_slice(&0x0003u16.to_be_bytes()); // offset 3*8, no MF: last fragment
        fix_checksum(&mut last);
        assert_eq!(
            Ipv4Packet::parse(&last),
            Err(Ipv4Error::Fragment {
                offset: 24,
                more: false
            })
        );
        // DF alone, and no DF at all, are whole datagrams.
        let mut no_df = emit(A, B, PROTO_TCP, 64, 1, b"x");
        no_df[6] = 0;
        fix_checksum(&mut no_df);
        assert!(Ipv4Packet::parse(&no_df).is_ok());
    }

    #[test]
    fn parse_with_fragments_admits_fragments() {
        let mut mf = emit(A, B, PROTO_TCP, 64, 1, b"12345678");
        mf[6] = 0x20;
        fix_checksum(&mut mf);
        let p = Ipv4Packet::parse_with_fragments(&mf).unwrap();
        assert!(p.is_fragment() && p.more_fragments() && !p.dont_fragment());
        assert_eq!(p.fragment_offset(), 0);
        let mut last = emit(A, B, PROTO_TCP, 64, 1, b"x");
        last[6..8].copy_from_slice(&0x0003u16.to_be_bytes());
        fix_checksum(&mut last);
        let p = Ipv4Packet::parse_with_fragments(&last).unwrap();
        assert!(p.is_fragment() && !p.more_fragments());
        assert_eq!(p.fragment_offset(), 24);
        // Whole datagrams parse the same both ways; other checks still apply.
        let whole = emit(A, B, PROTO_TCP, 64, 1, b"x");
        let p = Ipv4Packet::parse_with_fragments(&whole).unwrap();
        assert!(!p.is_fragment() && p.dont_fragment());
        assert_eq!(Some(p), Ipv4Packet::parse(&whole).ok());
        last[12] = 224;
        fix_checksum(&mut last);
        assert!(matches!(
            Ipv4Packet::parse_with_fragments(&last),
            Err(Ipv4Error::BadSource { .. })
        ));
    }

    #[test]
    fn emit_fragments_small_payload_is_one_df_packet() {
        let pkts = emit_fragments(A, B, PROTO_ICMP, 64, 5, &[7; 1480], 1500);
        assert_eq!(pkts, vec![emit(A, B, PROTO_ICMP, 64, 5, &[7; 1480])]);
    }

    #[test]
    fn emit_fragments_cuts_on_eight_byte_boundaries() {
        let payload: Vec<u8> = (0..4008u32).map(|i| (i % 251) as u8).collect();
        let pkts = emit_fragments(A, B, PROTO_ICMP, 64, 9, &payload, 1500);
        assert_eq!(pkts.len(), 3);
        let mut rebuilt = Vec::new();
        for (i, pkt) in pkts.iter().enumerate() {
            assert!(pkt.len() <= 1500);
            let p = Ipv4Packet::parse_with_fragments(pkt).unwrap();
            assert_eq!(p.id, 9);
            assert!(!p.dont_fragment());
            assert_eq!(p.more_fragments(), i < 2);
            assert_eq!(p.fragment_offset(), rebuilt.len());
            if i < 2 {
                assert_eq!(p.payload.len(), 1480);
            }
            rebuilt.extend_from_slice(p.payload);
            // etherparse agrees on the header.
            let h = Ipv4HeaderSlice::from_slice(pkt).unwrap();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        }
        assert_eq!(rebuilt, payload);
        // A tiny MTU still makes progress: 8 data bytes per fragment.
        let tiny = emit_fragments(A, B, PROTO_UDP, 64, 1, &[1; 20], 10);
        assert_eq!(tiny.len(), 3);
        assert!(tiny.iter().all(|p| p.len() <= 28));
    }

    #[test]
    fn accepts_ttl_zero_and_one() {
        // RFC 1122 §3.2.1.7: a host must not discard a datagram for TTL < 2.
        for ttl in [0, 1] {
            let pkt = emit(A, B, PROTO_TCP, ttl, 1, b"x");
            assert_eq!(Ipv4Packet::parse(&pkt).map(|p| p.ttl), Ok(ttl));
        }
    }

    #[test]
    fn ids_count_per_destination_and_hide_other_traffic() {
        let c = Ipv4Addr::new(10, 9, 9, 9);
        let mut g = IdGenerator::new(7);
        let first = g.next(A, B, PROTO_TCP, 1);
        // Consecutive per destination and protocol (distinct for fragmentation).
        assert_eq!(g.next(A, B, PROTO_TCP, 1), first.wrapping_add(1));
        // A super-segment of 5 pieces reserves 5 ids.
        assert_eq!(g.next(A, B, PROTO_TCP, 5), first.wrapping_add(2));
        assert_eq!(g.next(A, B, PROTO_TCP, 1), first.wrapping_add(7));
        // Traffic to another host does not move B's sequence (what an idle scan reads)
        // unless the hash puts both in one bucket; try destinations until one does not.
        let other = (1..=20u8)
            .map(|i| Ipv4Addr::new(10, 9, 9, i))
            .find(|&d| {
                let mut probe = g.clone();
                let before = probe.next(A, B, PROTO_TCP, 1);
                let mut probe2 = g.clone();
                for _ in 0..100 {
                    probe2.next(A, d, PROTO_TCP, 1);
                }
                probe2.next(A, B, PROTO_TCP, 1) == before
            })
            .expect("some destination hashes to another bucket");
        for _ in 0..100 {
            g.next(A, other, PROTO_TCP, 1);
        }
        assert_eq!(g.next(A, B, PROTO_TCP, 1), first.wrapping_add(8));
        // Another secret gives other ids: they are not predictable from the addresses.
        let starts: std::collections::HashSet<u16> = (0..8u64)
            .map(|seed| IdGenerator::new(seed).next(A, c, PROTO_UDP, 1))
            .collect();
        assert!(starts.len() > 4, "{starts:?}");
        // The debug output never shows the secret.
        assert!(!format!("{g:?}").contains(&g.secret[0].to_string()));
    }

    #[test]
    fn rejects_bad_sources() {
        for src in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(239, 1, 2, 3),
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(127, 9, 9, 9),
        ] {
            let pkt = emit(src, B, PROTO_TCP, 64, 1, b"x");
            assert_eq!(Ipv4Packet::parse(&pkt), Err(Ipv4Error::BadSource { src }));
        }
        // Broadcast or multicast *destinations* are the caller's business, not a parse error.
        assert!(Ipv4Packet::parse(&emit(A, Ipv4Addr::BROADCAST, PROTO_UDP, 1, 1, b"")).is_ok());
    }

    #[test]
    fn reasons_are_distinct_and_displayed() {
        let all = [
            Ipv4Error::TooShort { len: 1 },
            Ipv4Error::BadVersion { version: 6 },
            Ipv4Error::BadHeaderLength { ihl: 2 },
            Ipv4Error::HeaderTruncated {
                header_len: 24,
                len: 20,
            },
            Ipv4Error::BadTotalLength {
                total_len: 1,
                header_len: 20,
            },
            Ipv4Error::Truncated {
                total_len: 99,
                len: 20,
            },
            Ipv4Error::BadChecksum,
            Ipv4Error::Fragment {
                offset: 8,
                more: true,
            },
            Ipv4Error::BadSource {
                src: Ipv4Addr::BROADCAST,
            },
        ];
        let mut reasons: Vec<_> = all.iter().map(Ipv4Error::reason).collect();
        for e in &all {
            assert!(e.to_string().starts_with(e.reason()));
        }
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(Ipv4Error::BadChecksum.to_string(), "bad-checksum");
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded),
        // so the checksum is its complement 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(checksum(&[]), 0xffff);
        // Odd length: the last byte is padded with zero on the right.
        assert_eq!(checksum(&[0x12]), !0x1200);
        // Many all-ones words: the u64 accumulator and folding never overflow.
        assert_eq!(checksum(&vec![0xff; 200_001]), !0xff00u16);
    }

    #[test]
    fn pseudo_header_matches_manual_layout() {
        let seg = b"\x12\x34\x00\x50 some tcp-ish bytes";
        let len = u16::try_from(seg.len()).unwrap();
        let mut manual = Vec::new();
        manual.extend_from_slice(&A.octets());
        manual.extend_from_slice(&B.octets());
        manual.extend_from_slice(&[0, PROTO_TCP]);
        manual.extend_from_slice(&len.to_be_bytes());
        manual.extend_from_slice(seg);
        assert_eq!(
            checksum_with(pseudo_header_sum(A, B, PROTO_TCP, len), seg),
            checksum(&manual)
        );
    }
}
