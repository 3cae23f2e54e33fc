//! Software segmentation of TCP/IPv4 super-segments: what the kernel's GSO does, in Rust.
//!
//! With offloads on ([`super::tunq`]), one packet crossing the TUN may be a super-segment:
//! up to 64 KiB of TCP payload behind one IP + TCP header, with a partial checksum, that
//! stands for a train of MSS-sized segments (TSO on the way out, GRO on the way in).
//! [`split_tcp4`] cuts such a packet into the segments it stands for, each a valid packet on
//! its own, the way Linux's `tcp_gso_segment` / `inet_gso_segment` do:
//! - the IP and TCP headers (options included) are copied in front of every piece;
//! - the sequence number advances by the payload before the piece (RFC 9293 §3.4);
//! - the IP identification goes up by one per piece, the total length and the header
//!   checksum are recomputed (RFC 791 §3.1);
//! - FIN and PSH stay on the last piece only (they mark the end of the data), CWR on the
//!   first only (RFC 3168 §6.1.2: the window was reduced once, before this data);
//! - the TCP checksum is computed in full over the pseudo-header and the piece
//!   (RFC 9293 §3.1), whether the input's checksum was partial, absent or complete.
//!
//! Two uses: a capture (`--pcap`, the trace) shows the same packets with offloads on or off
//! ([`tx_view`], [`rx_view`]); and a device that cannot take super-segments sends the pieces
//! instead ([`super::tunq::TunQueue`] without TSO).

use std::net::Ipv4Addr;

use crate::ip::ipv4::{checksum, checksum_with, pseudo_header_sum, MIN_HEADER_LEN, PROTO_TCP};

use super::offload::{RxMeta, TxMeta};

/// Smallest TCP header (RFC 9293 §3.1).
const TCP_MIN_HEADER_LEN: usize = 20;
/// TCP flag bits in byte 13 of the header.
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// IPv4 flags + fragment offset word: MF and the offset (DF is fine).
const IP_MF_OFFSET_MASK: u16 = 0x3fff;

/// The IP and TCP header lengths of a TCP/IPv4 packet (options included), or `None` if it
/// is not one or its headers do not fit in it.
pub fn tcp4_header_lens(packet: &[u8]) -> Option<(usize, usize)> {
    let version_ihl = *packet.first()?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let ip_len = usize::from(version_ihl & 0x0f) * 4;
    if ip_len < MIN_HEADER_LEN || *packet.get(9)? != PROTO_TCP {
        return None;
    }
    let tcp_len = usize::from(*packet.get(ip_len.checked_add(12)?)? >> 4) * 4;
    if tcp_len < TCP_MIN_HEADER_LEN || ip_len.checked_add(tcp_len)? > packet.len() {
        return None;
    }
    Some((ip_len, tcp_len))
}

/// Reads a big-endian u16.
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Writes a big-endian u16 (ignored out of bounds, which the callers' checks exclude).
fn put16(bytes: &mut [u8], at: usize, value: u16) {
    if let Some(b) = bytes.get_mut(at..at.saturating_add(2)) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}

/// A checked view of a TCP/IPv4 packet to cut.
struct Tcp4<'a> {
    /// IP + TCP headers, options included.
    headers: &'a [u8],
    ip_len: usize,
    payload: &'a [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u32,
}

impl<'a> Tcp4<'a> {
    fn parse(packet: &'a [u8]) -> Option<Tcp4<'a>> {
        let (ip_len, tcp_len) = tcp4_header_lens(packet)?;
        let hdrs = ip_len + tcp_len;
        // The total length bounds the packet (anything after it is link padding). A zero
        // total length (Linux's "BIG TCP" beyond 64 KiB) is refused: IPv4 cannot carry it.
        let total = usize::from(be16(packet, 2)?);
        if total < hdrs || total > packet.len() {
            return None;
        }
        // A fragment has no TCP header of its own to copy.
        if be16(packet, 6)? & IP_MF_OFFSET_MASK != 0 {
            return None;
        }
        let addr = |at: usize| -> Option<Ipv4Addr> {
            let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(b))
        };
        let seq_at = ip_len + 4;
        let seq: [u8; 4] = packet.get(seq_at..seq_at + 4)?.try_into().ok()?;
        Some(Tcp4 {
            headers: packet.get(..hdrs)?,
            ip_len,
            payload: packet.get(hdrs..total)?,
            src: addr(12)?,
            dst: addr(16)?,
            id: be16(packet, 4)?,
            seq: u32::from_be_bytes(seq),
        })
    }
}

/// Cuts the TCP/IPv4 super-segment `packet` into valid packets carrying at most `gso_size`
/// payload bytes each, and hands each to `out` (the slice is only valid during the call).
/// A packet with no payload, or no more than `gso_size`, comes out as one packet with its
/// checksums made complete.
///
/// Bad input — not IPv4, not TCP, a fragment, headers or total length that do not fit,
/// `gso_size` 0 — emits nothing; it never panics.
pub fn split_tcp4(packet: &[u8], gso_size: usize, out: &mut dyn FnMut(&[u8])) {
    if gso_size == 0 {
        return;
    }
    let Some(p) = Tcp4::parse(packet) else {
        return;
    };
    let hdrs = p.headers.len();
    let mut buf = Vec::with_capacity(hdrs + gso_size.min(p.payload.len()));
    let mut chunks = p.payload.chunks(gso_size).peekable();
    let mut id = p.id;
    let mut seq = p.seq;
    let mut first = true;
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        buf.clear();
        buf.extend_from_slice(p.headers);
        buf.extend_from_slice(chunk);
        fix_piece(&mut buf, &p, id, seq, first, last);
        out(&buf);
        if last {
            break;
        }
        first = false;
        id = id.wrapping_add(1);
        // A chunk is at most 64 KiB, so its length fits a u32.
        seq = seq.wrapping_add(u32::try_from(chunk.len()).unwrap_or(0));
    }
}

/// Rewrites the copied headers of one piece: lengths, id, sequence number, flags and both
/// checksums.
fn fix_piece(buf: &mut [u8], p: &Tcp4<'_>, id: u16, seq: u32, first: bool, last: bool) {
    let ip_len = p.ip_len;
    // Parse checked the original total length fits a u16, and a piece is never longer.
    let total = u16::try_from(buf.len()).unwrap_or(u16::MAX);
    put16(buf, 2, total);
    put16(buf, 4, id);
    put16(buf, 10, 0);
    let ip_sum = checksum(buf.get(..ip_len).unwrap_or_default());
    put16(buf, 10, ip_sum);

    if let Some(b) = buf.get_mut(ip_len + 4..ip_len + 8) {
        b.copy_from_slice(&seq.to_be_bytes());
    }
    if let Some(flags) = buf.get_mut(ip_len + 13) {
        if !last {
            *flags &= !(TCP_FIN | TCP_PSH);
        }
        if !first {
            *flags &= !TCP_CWR;
        }
    }
    put16(buf, ip_len + 16, 0);
    let tcp = buf.get(ip_len..).unwrap_or_default();
    let tcp_len = u16::try_from(tcp.len()).unwrap_or(u16::MAX);
    let sum = checksum_with(pseudo_header_sum(p.src, p.dst, PROTO_TCP, tcp_len), tcp);
    put16(buf, ip_len + 16, sum);
}

/// The packets a capture shows for a packet that crossed an offloading device: the pieces
/// of a TCP/IPv4 super-segment (`gso_size` > 0), the packet with its checksum completed
/// (`csum_partial`), or the packet itself (no offload, or not TCP/IPv4).
pub fn view(packet: &[u8], gso_size: u16, csum_partial: bool, out: &mut dyn FnMut(&[u8])) {
    if gso_size == 0 && !csum_partial {
        out(packet);
        return;
    }
    let size = if gso_size > 0 { gso_size } else { u16::MAX };
    let mut emitted = false;
    split_tcp4(packet, usize::from(size), &mut |piece| {
        emitted = true;
        out(piece);
    });
    if !emitted {
        out(packet);
    }
}

/// [`view`] for a packet we send with `meta`.
pub fn tx_view(packet: &[u8], meta: TxMeta, out: &mut dyn FnMut(&[u8])) {
    view(packet, meta.gso_size, meta.csum_partial, out);
}

/// [`view`] for a packet the device gave us with `meta`: a GRO'd super-segment is shown as
/// the segments the peer sent, with checksums complete.
pub fn rx_view(packet: &[u8], meta: RxMeta, out: &mut dyn FnMut(&[u8])) {
    view(packet, meta.gso_size, meta.csum_trusted, out);
}
