//! Offload metadata shared by the device, the internet/transport layers and the event loop.
//!
//! A Linux TUN opened with `IFF_VNET_HDR` prefixes every packet with a `virtio_net_hdr`
//! that says two things the plain path never knows:
//! - on the way in, that the kernel already trusts the transport checksum (or left it
//!   partial on purpose), and that the packet is a coalesced "super-segment" (GRO) far larger
//!   than the MTU;
//! - on the way out, that *we* hand the kernel a super-segment of up to 64 KiB and ask it to
//!   cut it into MSS-sized segments (TSO/GSO) and to finish the checksum.
//!
//! These types carry that information between layers without tying the protocol core to
//! the wire format of the header, which lives with the device in `link::tunq` (`VnetHdr`).

/// What the device told us about one received packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The kernel vouches for the transport checksum (`VIRTIO_NET_HDR_F_DATA_VALID`) or left
    /// it partial because the packet never crossed a wire (`VIRTIO_NET_HDR_F_NEEDS_CSUM`):
    /// either way the stack must not verify it.
    pub csum_trusted: bool,
    /// Non-zero for a coalesced TCP super-segment: the MSS the sender used. The packet may be
    /// up to 64 KiB long; the stack takes it as one segment.
    pub gso_size: u16,
}

/// What the stack asks of the device for one packet it sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMeta {
    /// Non-zero for a TCP super-segment (IPv4 without IP options, or IPv6 without extension
    /// headers): the kernel cuts its payload into pieces of `gso_size` bytes, copying and
    /// fixing up the headers (sequence numbers, IPv4 id, lengths, checksums). Zero: an
    /// ordinary packet.
    pub gso_size: u16,
    /// The TCP checksum field holds only the folded pseudo-header sum (not complemented) and
    /// the kernel must complete it (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, csum_start = IP header
    /// length, 20 or 40 for IPv6; csum_offset = 16). Always set together with a non-zero
    /// `gso_size`; set alone for an ordinary TCP packet when transmit checksum offload is on.
    pub csum_partial: bool,
}

/// The offloads a device accepted when it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Packets carry a `virtio_net_hdr` (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// The kernel may hand us packets with partial checksums (`TUN_F_CSUM`).
    pub rx_csum: bool,
    /// The kernel may hand us TCP/IPv4 super-segments (`TUN_F_TSO4`): read buffers must hold
    /// 64 KiB plus headers.
    pub rx_tso4: bool,
    /// We may write TCP/IPv4 super-segments for the kernel to split.
    pub tx_tso4: bool,
    /// The kernel may hand us TCP/IPv6 super-segments (`TUN_F_TSO6`).
    pub rx_tso6: bool,
    /// We may write TCP/IPv6 super-segments for the kernel to split.
    pub tx_tso6: bool,
}

/// Largest IPv4 packet a super-segment may be (the IPv4 total-length field's limit).
pub const MAX_SUPER_PACKET: usize = 65535;

/// Largest IPv6 packet a super-segment may be: 65535 bytes of payload (the payload-length
/// field's limit, RFC 8200 §3) behind the 40-byte fixed header.
pub const MAX_SUPER_PACKET6: usize = 65535 + 40;

/// The packet a gathered send describes, as one contiguous copy.
pub fn joined(head: &[u8], tail: [&[u8]; 2]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(head.len() + tail[0].len() + tail[1].len());
    packet.extend_from_slice(head);
    packet.extend_from_slice(tail[0]);
    packet.extend_from_slice(tail[1]);
    packet
}

impl Offloads {
    /// Whether the device cuts a TCP super-segment of this IP packet's version (TSO4 for
    /// IPv4, TSO6 for IPv6); `false` for anything else.
    pub fn tso_for(&self, ip_packet: &[u8]) -> bool {
        match ip_packet.first().map(|b| b >> 4) {
            Some(4) => self.tx_tso4,
            Some(6) => self.tx_tso6,
            _ => false,
        }
    }
}
