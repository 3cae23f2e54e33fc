//! The UDP header: parse + validate, and emit (RFC 768, RFC 1122 §4.1).

use std::fmt;
use std::net::IpAddr;

use crate::ip::ipv4::{checksum_with, PROTO_UDP};
use crate::ip::pseudo_header_sum_ip;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Largest payload whose length fits the 16-bit length field (and an IPv4 packet with a
/// 20-byte header: 65535 - 20 - 8).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - 20 - HEADER_LEN;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// Fewer than 8 bytes: no complete header.
    TooShort(usize),
    /// The length field is below 8 (it counts the header) or beyond the IP payload.
    BadLength {
        /// The length field.
        field: u16,
        /// Bytes the IP layer delivered.
        available: usize,
    },
    /// The checksum does not verify.
    BadChecksum,
    /// A zero (absent) checksum over IPv6, where it is mandatory (RFC 8200 §8.1: "IPv6
    /// receivers must discard UDP packets containing a zero checksum").
    ZeroChecksumV6,
}

impl UdpError {
    /// A short stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            UdpError::TooShort(_) => "udp-too-short",
            UdpError::BadLength { .. } => "udp-bad-length",
            UdpError::BadChecksum => "udp-bad-checksum",
            UdpError::ZeroChecksumV6 => "udp-zero-checksum-v6",
        }
    }
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpError::TooShort(n) => write!(f, "{n} bytes is shorter than a UDP header"),
            UdpError::BadLength { field, available } => {
                write!(f, "length field {field} with {available} bytes available")
            }
            UdpError::BadChecksum => write!(f, "bad checksum"),
            UdpError::ZeroChecksumV6 => write!(f, "no checksum over IPv6"),
        }
    }
}

impl std::error::Error for UdpError {}

/// A validated UDP datagram (a view into the IP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Source port; 0 means "no reply expected" (RFC 768: optional).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The checksum field as received; 0 = the sender computed none.
    pub checksum: u16,
    /// The data, cut at the length field.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ])
}

impl<'a> Datagram<'a> {
    /// Validate and parse `bytes`, the payload of an IPv4 or IPv6 packet from `src` to
    /// `dst`.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
    ) -> Result<Datagram<'a>, UdpError> {
        Datagram::parse_inner(src.into(), dst.into(), bytes, true)
    }

    /// Like [`Datagram::parse`], but the checksum is not verified: the device vouched for
    /// it or left it partial ([`crate::link::offload::RxMeta::csum_trusted`]).
    pub fn parse_trusted(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
    ) -> Result<Datagram<'a>, UdpError> {
        Datagram::parse_inner(src.into(), dst.into(), bytes, false)
    }

    fn parse_inner(
        src: IpAddr,
        dst: IpAddr,
        bytes: &'a [u8],
        verify: bool,
    ) -> Result<Datagram<'a>, UdpError> {
        if bytes.len() < HEADER_LEN {
            return Err(UdpError::TooShort(bytes.len()));
        }
        let field = be16(bytes, 4);
        let length = usize::from(field);
        // RFC 768: "Length is the length in octets of this user datagram including this
        // header and the data. (This means the minimum value of the length is eight.)"
        // A length beyond what IP delivered means a truncated datagram; bytes after it are
        // padding (Linux trims them the same way).
        if length < HEADER_LEN || length > bytes.len() {
            return Err(UdpError::BadLength {
                field,
                available: bytes.len(),
            });
        }
        let datagram = bytes.get(..length).ok_or(UdpError::BadLength {
            field,
            available: bytes.len(),
        })?;
        let checksum = be16(bytes, 6);
        if checksum == 0 && src.is_ipv6() {
            return Err(UdpError::ZeroChecksumV6);
        }
        // RFC 768: "An all zero transmitted checksum value means that the transmitter
        // generated no checksum". RFC 1122 §4.1.3.4: if a checksum is present, a host MUST
        // verify it and discard the datagram when it fails.
        if checksum != 0 && verify {
            let sum = pseudo_header_sum_ip(src, dst, PROTO_UDP, u32::from(field));
            if checksum_with(sum, datagram) != 0 {
                return Err(UdpError::BadChecksum);
            }
        }
        Ok(Datagram {
            src_port: be16(bytes, 0),
            dst_port: be16(bytes, 2),
            checksum,
            payload: datagram.get(HEADER_LEN..).unwrap_or_default(),
        })
    }
}

/// A datagram with a correct checksum (RFC 1122 §4.1.3.4: a host MUST be able to generate
/// it and it is on by default). `payload` must be at most [`MAX_PAYLOAD_LEN`] bytes; a longer
/// one is cut there (the endpoint refuses such sends before calling this).
pub fn emit(
    src: impl Into<IpAddr>,
    dst: impl Into<IpAddr>,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let (src, dst) = (src.into(), dst.into());
    let payload = payload.get(..MAX_PAYLOAD_LEN).unwrap_or(payload);
    let length = u16::try_from(HEADER_LEN + payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(usize::from(length));
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut sum = checksum_with(
        pseudo_header_sum_ip(src, dst, PROTO_UDP, u32::from(length)),
        &out,
    );
    // RFC 768: "If the computed checksum is zero, it is transmitted as all ones" — zero on
    // the wire means "no checksum".
    if sum == 0 {
        sum = 0xffff;
    }
    if let Some(field) = out.get_mut(6..8) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::pseudo_header_sum;
    use std::net::Ipv4Addr;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn emit_then_parse_round_trips() {
        let bytes = emit(A, B, 5000, 7, b"hello");
        let d = Datagram::parse(A, B, &bytes).unwrap();
        assert_eq!(
            (d.src_port, d.dst_port, d.payload),
            (5000, 7, &b"hello"[..])
        );
        assert_ne!(d.checksum, 0);
    }

    #[test]
    fn agrees_with_etherparse() {
        let bytes = emit(A, B, 1234, 53, b"odd length!");
        let h = etherparse::UdpHeader::from_slice(&bytes).unwrap().0;
        let expected = h
            .calc_checksum_ipv4_raw(A.octets(), B.octets(), b"odd length!")
            .unwrap();
        assert_eq!(h.checksum, expected);
        assert_eq!(h.length, 19);
    }

    const A6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    #[test]
    fn ipv6_checksum_agrees_with_etherparse() {
        let bytes = emit(A6, B6, 1234, 53, b"odd length!");
        let h = etherparse::UdpHeader::from_slice(&bytes).unwrap().0;
        let expected = h
            .calc_checksum_ipv6_raw(A6.octets(), B6.octets(), b"odd length!")
            .unwrap();
        assert_eq!(h.checksum, expected);
        assert_eq!(
            Datagram::parse(A6, B6, &bytes).unwrap().payload,
            b"odd length!"
        );
        assert_eq!(
            Datagram::parse(B6, A6, &bytes[..]).map(|_| ()),
            Ok(()),
            "the sum is symmetric in the addresses"
        );
        let c6 = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
        assert_eq!(Datagram::parse(A6, c6, &bytes), Err(UdpError::BadChecksum));
    }

    #[test]
    fn zero_checksum_is_refused_over_ipv6() {
        // RFC 8200 §8.1: UDP's checksum is mandatory over IPv6, even for a datagram the
        // device vouched for.
        let mut bytes = emit(A6, B6, 1, 2, b"data");
        bytes[6] = 0;
        bytes[7] = 0;
        assert_eq!(
            Datagram::parse(A6, B6, &bytes),
            Err(UdpError::ZeroChecksumV6)
        );
        assert_eq!(
            Datagram::parse_trusted(A6, B6, &bytes),
            Err(UdpError::ZeroChecksumV6)
        );
    }

    #[test]
    fn checksum_is_verified_against_the_pseudo_header() {
        let mut bytes = emit(A, B, 1, 2, b"data");
        assert_eq!(
            Datagram::parse(A, Ipv4Addr::new(10, 0, 0, 3), &bytes),
            Err(UdpError::BadChecksum),
            "the pseudo-header binds the addresses"
        );
        bytes[9] ^= 1;
        assert_eq!(Datagram::parse(A, B, &bytes), Err(UdpError::BadChecksum));
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = emit(A, B, 1, 2, b"data");
        bytes[6] = 0;
        bytes[7] = 0;
        bytes[9] ^= 1; // corrupt data is accepted: the sender asked for no checking
        let d = Datagram::parse(A, B, &bytes).unwrap();
        assert_eq!(d.checksum, 0);
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        // Find a payload whose checksum computes to zero, then check we send 0xffff and the
        // receiver accepts it (0xffff and 0 are the same number in one's complement).
        let found = (0u16..=u16::MAX).find_map(|x| {
            let payload = x.to_be_bytes();
            let mut probe = emit(A, B, 1, 2, &payload);
            probe[6] = 0;
            probe[7] = 0;
            let sum = checksum_with(pseudo_header_sum(A, B, PROTO_UDP, 10), &probe);
            (sum == 0).then_some(payload)
        });
        let payload = found.expect("some 2-byte payload checksums to zero");
        let bytes = emit(A, B, 1, 2, &payload);
        assert_eq!(&bytes[6..8], &[0xff, 0xff]);
        assert!(Datagram::parse(A, B, &bytes).is_ok());
    }

    #[test]
    fn length_rules() {
        let bytes = emit(A, B, 1, 2, b"abcdef");
        assert_eq!(
            Datagram::parse(A, B, &bytes[..7]),
            Err(UdpError::TooShort(7))
        );
        // Truncated: the length field says more than IP delivered.
        assert_eq!(
            Datagram::parse(A, B, &bytes[..10]),
            Err(UdpError::BadLength {
                field: 14,
                available: 10
            })
        );
        // Length below the header.
        let mut small = bytes.clone();
        small[4] = 0;
        small[5] = 7;
        assert!(matches!(
            Datagram::parse(A, B, &small),
            Err(UdpError::BadLength { field: 7, .. })
        ));
        // Trailing padding after the datagram is ignored.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(Datagram::parse(A, B, &padded).unwrap().payload, b"abcdef");
        // An empty datagram is valid.
        let empty = emit(A, B, 1, 2, b"");
        assert!(Datagram::parse(A, B, &empty).unwrap().payload.is_empty());
    }

    #[test]
    fn never_panics_on_any_prefix_or_flip() {
        let bytes = emit(A, B, 9, 9, &[0x5a; 40]);
        for n in 0..bytes.len() {
            let _ = Datagram::parse(A, B, &bytes[..n]);
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] = !b[i];
            let _ = Datagram::parse(A, B, &b);
        }
    }
}
