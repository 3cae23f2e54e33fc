//! Ethernet II framing (DIX v2 / IEEE 802.3 with an EtherType), as a TAP device carries it.
//!
//! ```text
//!  0                   6                  12        14
//!  +-------------------+------------------+---------+------------------- ... -+
//!  | destination MAC   | source MAC       | EtherType| payload (46..1500 bytes)|
//!  +-------------------+------------------+---------+------------------- ... -+
//! ```
//!
//! The frame check sequence (CRC-32) and the preamble never reach software through a TAP:
//! the kernel neither adds nor expects them, so a frame here is header + payload. The
//! minimum frame size (60 bytes without FCS) is a property of real wire hardware; the kernel
//! does not pad on a TAP and does not require padding, so we accept short frames and pad the
//! ones we build to 60 bytes anyway, as a NIC would (IEEE 802.3 §3.2.8).
//!
//! A value of 1536 (0x0600) or more in the type field is an EtherType (Ethernet II); 1500
//! or less is an IEEE 802.3 length, followed by LLC — a framing we do not speak.

use std::fmt;
use std::str::FromStr;

/// Length of the Ethernet II header: two addresses and the EtherType.
pub const HEADER_LEN: usize = 14;
/// Smallest frame on the wire without the FCS (IEEE 802.3): shorter frames are padded.
pub const MIN_FRAME_LEN: usize = 60;
/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Type-field values below this are 802.3 lengths, not EtherTypes.
const MIN_ETHERTYPE: u16 = 0x0600;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`: every station on the segment.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`: "unknown", as in the target field of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// A random *locally administered unicast* address: bit 1 of the first octet set (not
    /// assigned by a vendor, IEEE 802 §8.2.2), bit 0 clear (individual, not group). `random`
    /// supplies the six bytes, so the caller owns the rng.
    pub fn local_from(mut random: [u8; 6]) -> MacAddr {
        random[0] = (random[0] | 0x02) & !0x01;
        MacAddr(random)
    }

    /// Group (multicast or broadcast) address: the I/G bit, bit 0 of the first octet.
    pub fn is_group(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == MacAddr::BROADCAST
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a MAC address string did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMacError(String);

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid MAC address {:?}: expected six hex octets like 02:00:00:00:00:01",
            self.0
        )
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`.
    fn from_str(s: &str) -> Result<MacAddr, ParseMacError> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than 14 bytes: not even a header.
    TooShort(usize),
    /// The type field is an IEEE 802.3 length (< 0x0600), i.e. an LLC frame.
    Ieee8023Length(u16),
}

impl FrameError {
    /// A short stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooShort(_) => "frame-too-short",
            FrameError::Ieee8023Length(_) => "frame-802.3-llc",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "{n} bytes is shorter than an Ethernet header"),
            FrameError::Ieee8023Length(l) => {
                write!(f, "802.3 length field {l} (LLC framing is not supported)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// A validated view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// EtherType of the payload.
    pub ethertype: u16,
    /// Everything after the header (may include padding for short payloads: the layer above
    /// trims by its own length field).
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parse and validate a frame.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        let (header, payload) = match (bytes.get(..HEADER_LEN), bytes.get(HEADER_LEN..)) {
            (Some(h), Some(p)) => (h, p),
            _ => return Err(FrameError::TooShort(bytes.len())),
        };
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(header.get(0..6).unwrap_or(&[0; 6]));
        src.copy_from_slice(header.get(6..12).unwrap_or(&[0; 6]));
        let ethertype = u16::from_be_bytes([
            header.get(12).copied().unwrap_or(0),
            header.get(13).copied().unwrap_or(0),
        ]);
        if ethertype < MIN_ETHERTYPE {
            return Err(FrameError::Ieee8023Length(ethertype));
        }
        Ok(Frame {
            dst: MacAddr(dst),
            src: MacAddr(src),
            ethertype,
            payload,
        })
    }
}

/// Build a frame: header, payload, and zero padding up to [`MIN_FRAME_LEN`].
pub fn build(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity((HEADER_LEN + payload.len()).max(MIN_FRAME_LEN));
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    if frame.len() < MIN_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
    frame
}

/// A short name for an EtherType, for traces.
pub fn ethertype_name(ethertype: u16) -> &'static str {
    match ethertype {
        ETHERTYPE_IPV4 => "IPv4",
        ETHERTYPE_ARP => "ARP",
        ETHERTYPE_IPV6 => "IPv6",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);

    #[test]
    fn build_then_parse_round_trips_and_pads() {
        let frame = build(B, A, ETHERTYPE_IPV4, &[1, 2, 3]);
        assert_eq!(frame.len(), MIN_FRAME_LEN);
        let f = Frame::parse(&frame).unwrap();
        assert_eq!((f.dst, f.src, f.ethertype), (B, A, ETHERTYPE_IPV4));
        assert_eq!(&f.payload[..3], &[1, 2, 3]);
        assert!(f.payload[3..].iter().all(|&b| b == 0));
    }

    #[test]
    fn long_payload_is_not_padded() {
        let payload = vec![7u8; 100];
        let frame = build(B, A, ETHERTYPE_ARP, &payload);
        assert_eq!(frame.len(), HEADER_LEN + 100);
    }

    #[test]
    fn agrees_with_etherparse() {
        let frame = build(B, A, ETHERTYPE_IPV6, &[0u8; 50]);
        let (h, _) = etherparse::Ethernet2Header::from_slice(&frame).unwrap();
        assert_eq!(h.destination, B.0);
        assert_eq!(h.source, A.0);
        assert_eq!(h.ether_type, etherparse::EtherType::IPV6);
    }

    #[test]
    fn rejects_short_and_llc_frames() {
        assert_eq!(Frame::parse(&[0; 13]), Err(FrameError::TooShort(13)));
        let mut llc = build(B, A, 0x0800, &[0; 46]);
        llc[12] = 0x00;
        llc[13] = 46;
        assert_eq!(Frame::parse(&llc), Err(FrameError::Ieee8023Length(46)));
        // A header alone is a valid (empty) frame.
        assert_eq!(
            Frame::parse(&llc[..14]).unwrap_err().reason(),
            "frame-802.3-llc"
        );
        let empty = build(B, A, ETHERTYPE_ARP, &[]);
        assert!(Frame::parse(&empty[..14]).unwrap().payload.is_empty());
    }

    #[test]
    fn mac_parse_display_and_bits() {
        let m: MacAddr = "02:aB:00:11:22:ff".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:11:22:ff");
        assert_eq!("02-ab-00-11-22-ff".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:ab:00:11:22",
            "02:ab:00:11:22:ff:00",
            "2:ab:00:11:22:ff",
            "zz:ab:00:11:22:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr::BROADCAST.is_group() && MacAddr::BROADCAST.is_broadcast());
        let local = MacAddr::local_from([0xff; 6]);
        assert_eq!(local.0[0], 0xfe);
        assert!(!local.is_group());
        assert_eq!(MacAddr::local_from([0; 6]).0[0], 0x02);
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let frame = build(B, A, ETHERTYPE_IPV4, &[9u8; 80]);
        for n in 0..frame.len() {
            let _ = Frame::parse(&frame[..n]);
        }
    }
}
