//! Software segmentation of TCP super-segments (IPv4 and IPv6): what the kernel's GSO does,
//! in Rust.
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
//! [`split_tcp6`] does the same for TCP/IPv6 (Linux `tcp6_gso_segment`): the payload length
//! is rewritten instead of the total length, there is no identification nor header
//! checksum, and the TCP checksum covers the IPv6 pseudo-header (RFC 8200 §8.1). Only a TCP
//! header right after the fixed header is cut (what we send, and what GRO coalesces).
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

/// The IP and TCP header lengths of a TCP/IPv6 packet whose TCP header follows the fixed
/// header directly (options included), or `None` if it is not one or its headers do not
/// fit in it.
pub fn tcp6_header_lens(packet: &[u8]) -> Option<(usize, usize)> {
    use crate::ip::ipv6;
    if *packet.first()? >> 4 != 6 || *packet.get(6)? != ipv6::NEXT_TCP {
        return None;
    }
    let ip_len = ipv6::HEADER_LEN;
    let tcp_len = usize::from(*packet.get(ip_len.checked_add(12)?)? >> 4) * 4;
    if tcp_len < TCP_MIN_HEADER_LEN || ip_len.checked_add(tcp_len)? > packet.len() {
        return None;
    }
    Some((ip_len, tcp_len))
}

/// The IP and TCP header lengths of a TCP packet over IPv4 or IPv6 (see
/// [`tcp4_header_lens`], [`tcp6_header_lens`]).
pub fn tcp_header_lens(packet: &[u8]) -> Option<(usize, usize)> {
    match packet.first()? >> 4 {
        4 => tcp4_header_lens(packet),
        6 => tcp6_header_lens(packet),
        _ => None,
    }
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
    let mut id = p.id;
    cut(
        p.headers,
        p.payload,
        p.seq,
        gso_size,
        out,
        &mut |buf, at| {
            fix_piece(buf, &p, id, at.seq, at.first, at.last);
            id = id.wrapping_add(1);
        },
    );
}

/// Cuts the TCP/IPv6 super-segment `packet` (TCP right after the fixed header) as
/// [`split_tcp4`] does a TCP/IPv4 one: the same pieces, each with its payload length and
/// TCP checksum over the IPv6 pseudo-header rewritten (RFC 8200 §8.1).
///
/// Bad input — not IPv6, extension headers, not TCP, headers or payload length that do not
/// fit, a zero payload length (a jumbogram, RFC 2675), `gso_size` 0 — emits nothing; it
/// never panics.
pub fn split_tcp6(packet: &[u8], gso_size: usize, out: &mut dyn FnMut(&[u8])) {
    use crate::ip::ipv6;
    if gso_size == 0 {
        return;
    }
    let Some((ip_len, tcp_len)) = tcp6_header_lens(packet) else {
        return;
    };
    let hdrs = ip_len + tcp_len;
    let Some(payload_len) = be16(packet, 4) else {
        return;
    };
    let total = ip_len + usize::from(payload_len);
    if total < hdrs || total > packet.len() {
        return;
    }
    let (Some(headers), Some(payload), Some(src), Some(dst), Some(seq)) = (
        packet.get(..hdrs),
        packet.get(hdrs..total),
        packet.get(8..24).and_then(|b| <[u8; 16]>::try_from(b).ok()),
        packet
            .get(24..40)
            .and_then(|b| <[u8; 16]>::try_from(b).ok()),
        packet
            .get(ip_len + 4..ip_len + 8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok()),
    ) else {
        return;
    };
    let (src, dst) = (std::net::Ipv6Addr::from(src), std::net::Ipv6Addr::from(dst));
    let seq = u32::from_be_bytes(seq);
    cut(headers, payload, seq, gso_size, out, &mut |buf, at| {
        let upper = buf.len() - ip_len;
        // A piece is never longer than the packet, whose payload length fit a u16.
        put16(buf, 4, u16::try_from(upper).unwrap_or(u16::MAX));
        fix_tcp(buf, ip_len, at.seq, at.first, at.last);
        put16(buf, ip_len + 16, 0);
        let tcp = buf.get(ip_len..).unwrap_or_default();
        let len = u32::try_from(tcp.len()).unwrap_or(u32::MAX);
        let sum = checksum_with(ipv6::pseudo_header_sum(src, dst, ipv6::NEXT_TCP, len), tcp);
        put16(buf, ip_len + 16, sum);
    });
}

/// [`split_tcp4`] or [`split_tcp6`], by the packet's version.
pub fn split_tcp(packet: &[u8], gso_size: usize, out: &mut dyn FnMut(&[u8])) {
    match packet.first().map(|b| b >> 4) {
        Some(4) => split_tcp4(packet, gso_size, out),
        Some(6) => split_tcp6(packet, gso_size, out),
        _ => {}
    }
}

/// Where one piece stands in the super-segment being cut.
#[derive(Clone, Copy)]
struct Piece {
    /// Its sequence number.
    seq: u32,
    first: bool,
    last: bool,
}

/// The loop both versions share: `headers` copied in front of each `gso_size` chunk of
/// `payload`, `fix` rewriting the copy (given the piece's sequence number and whether it is
/// the first or last piece) before it goes to `out`.
fn cut(
    headers: &[u8],
    payload: &[u8],
    seq: u32,
    gso_size: usize,
    out: &mut dyn FnMut(&[u8]),
    fix: &mut dyn FnMut(&mut Vec<u8>, Piece),
) {
    let mut buf = Vec::with_capacity(headers.len() + gso_size.min(payload.len()));
    let mut chunks = payload.chunks(gso_size).peekable();
    let mut seq = seq;
    let mut first = true;
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        buf.clear();
        buf.extend_from_slice(headers);
        buf.extend_from_slice(chunk);
        fix(&mut buf, Piece { seq, first, last });
        out(&buf);
        if last {
            break;
        }
        first = false;
        // A chunk is at most 64 KiB, so its length fits a u32.
        seq = seq.wrapping_add(u32::try_from(chunk.len()).unwrap_or(0));
    }
}

/// Sets a piece's sequence number and keeps FIN and PSH on the last piece only, CWR on
/// the first only.
fn fix_tcp(buf: &mut [u8], ip_len: usize, seq: u32, first: bool, last: bool) {
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
    fix_tcp(buf, ip_len, seq, first, last);
    put16(buf, ip_len + 16, 0);
    let tcp = buf.get(ip_len..).unwrap_or_default();
    let tcp_len = u16::try_from(tcp.len()).unwrap_or(u16::MAX);
    let sum = checksum_with(pseudo_header_sum(p.src, p.dst, PROTO_TCP, tcp_len), tcp);
    put16(buf, ip_len + 16, sum);
}

/// The packets a capture shows for a packet that crossed an offloading device: the pieces
/// of a TCP super-segment over IPv4 or IPv6 (`gso_size` > 0), the packet with its checksum
/// completed (`csum_partial`), or the packet itself (no offload, or not TCP/UDP).
pub fn view(packet: &[u8], gso_size: u16, csum_partial: bool, out: &mut dyn FnMut(&[u8])) {
    if gso_size == 0 && !csum_partial {
        out(packet);
        return;
    }
    let size = if gso_size > 0 { gso_size } else { u16::MAX };
    let mut emitted = false;
    split_tcp(packet, usize::from(size), &mut |piece| {
        emitted = true;
        out(piece);
    });
    if emitted {
        return;
    }
    // A UDP datagram with a partial checksum (the kernel's transmit checksum offload covers
    // UDP too): shown with its checksum complete, as it is on the wire. IPv6 UDP, and TCP
    // behind extension headers, likewise.
    match complete_udp4_checksum(packet).or_else(|| complete_ipv6_checksum(packet)) {
        Some(fixed) => out(&fixed),
        None => out(packet),
    }
}

/// A copy of an IPv6 packet whose TCP or UDP header follows the fixed header directly,
/// with the checksum computed over the IPv6 pseudo-header (RFC 8200 §8.1); `None` for
/// anything else (extension headers, other protocols, IPv4).
fn complete_ipv6_checksum(packet: &[u8]) -> Option<Vec<u8>> {
    use crate::ip::ipv6::{self, Ipv6Packet};
    if packet.first()? >> 4 != 6 {
        return None;
    }
    let p = Ipv6Packet::parse(packet).ok()?;
    let field = match p.next_header {
        ipv6::NEXT_TCP if p.payload.len() >= 20 => 16,
        ipv6::NEXT_UDP if p.payload.len() >= 8 => 6,
        _ => return None,
    };
    let mut fixed = p.bytes.to_vec();
    let at = ipv6::HEADER_LEN + field;
    put16(&mut fixed, at, 0);
    let upper = fixed.get(ipv6::HEADER_LEN..)?;
    let len = u32::try_from(upper.len()).ok()?;
    let mut sum = checksum_with(
        ipv6::pseudo_header_sum(p.src, p.dst, p.next_header, len),
        upper,
    );
    if sum == 0 && p.next_header == ipv6::NEXT_UDP {
        // RFC 8200 §8.1: a computed UDP checksum of zero is sent as 0xffff.
        sum = 0xffff;
    }
    put16(&mut fixed, at, sum);
    Some(fixed)
}

/// A copy of an unfragmented IPv4/UDP `packet` with its UDP checksum computed over the
/// pseudo-header and the datagram (RFC 768); `None` for anything else.
fn complete_udp4_checksum(packet: &[u8]) -> Option<Vec<u8>> {
    const PROTO_UDP: u8 = 17;
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    if packet.first()? >> 4 != 4 || *packet.get(9)? != PROTO_UDP || frag & 0x3fff != 0 {
        return None;
    }
    let udp = packet.get(ihl..total)?;
    if udp.len() < 8 {
        return None;
    }
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(16..20)?).ok()?);
    let mut fixed = packet.get(..total)?.to_vec();
    let dgram = fixed.get_mut(ihl..)?;
    dgram[6] = 0;
    dgram[7] = 0;
    let len = u16::try_from(dgram.len()).ok()?;
    let sum = checksum_with(pseudo_header_sum(src, dst, PROTO_UDP, len), dgram);
    // RFC 768: a computed checksum of zero is sent as all ones.
    let sum = if sum == 0 { 0xffff } else { sum };
    dgram[6..8].copy_from_slice(&sum.to_be_bytes());
    Some(fixed)
}

/// [`view`] for an Ethernet II frame (a TAP's packets): the IPv4 or IPv6 packet inside is
/// cut or completed, each piece behind a copy of the 14-byte Ethernet header. Other frames
/// (ARP, VLAN-tagged) are handed over as they are.
pub fn view_ethernet(frame: &[u8], gso_size: u16, csum_partial: bool, out: &mut dyn FnMut(&[u8])) {
    const ETH_HEADER_LEN: usize = 14;
    const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
    const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
    let ethertype = frame.get(12..ETH_HEADER_LEN);
    let is_ip = ethertype == Some(&ETHERTYPE_IPV4[..]) || ethertype == Some(&ETHERTYPE_IPV6[..]);
    let (Some(eth), Some(packet), true) = (
        frame.get(..ETH_HEADER_LEN),
        frame.get(ETH_HEADER_LEN..),
        is_ip,
    ) else {
        out(frame);
        return;
    };
    let mut buf = Vec::new();
    view(packet, gso_size, csum_partial, &mut |piece| {
        buf.clear();
        buf.extend_from_slice(eth);
        buf.extend_from_slice(piece);
        out(&buf);
    });
}

/// What a capture shows of one packet that crossed a device of `medium` with offload
/// metadata (`gso_size`, a checksum left partial or already trusted): a super-segment as the
/// MSS-sized segments the wire between two ordinary hosts would carry, with complete
/// checksums, so a capture reads the same with offloads on or off. Plain packets pass as
/// they are, without a copy.
pub fn wire_view(
    medium: super::Medium,
    packet: &[u8],
    gso_size: u16,
    csum: bool,
    out: &mut dyn FnMut(&[u8]),
) {
    if gso_size == 0 && !csum {
        out(packet);
        return;
    }
    match medium {
        super::Medium::Ethernet => view_ethernet(packet, gso_size, csum, out),
        super::Medium::Ip => view(packet, gso_size, csum, out),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::{self, Ipv4Packet};
    use crate::tcp::segment::Segment;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SEQ: u32 = 0xffff_f000; // wraps during the split
    const FLAGS_ALL: u8 = 0x80 | 0x10 | TCP_PSH | TCP_FIN; // CWR ACK PSH FIN

    /// How the test packet's TCP checksum field is filled.
    #[derive(Clone, Copy)]
    enum Csum {
        Full,
        /// Pseudo-header sum only, not complemented (what TSO senders write).
        Partial,
        Zero,
    }

    /// A TCP/IPv4 packet A:1234 → B:80 with a timestamp option (12 bytes of options).
    fn packet(payload_len: usize, flags: u8, csum: Csum) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&1234u16.to_be_bytes());
        tcp.extend_from_slice(&80u16.to_be_bytes());
        tcp.extend_from_slice(&SEQ.to_be_bytes());
        tcp.extend_from_slice(&7u32.to_be_bytes());
        tcp.push(8 << 4); // data offset 8 words: 20 + 12 bytes
        tcp.push(flags);
        tcp.extend_from_slice(&5000u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 24]);
        tcp.extend((0..payload_len).map(|i| (i % 251) as u8));
        let len = u16::try_from(tcp.len()).unwrap();
        let sum = match csum {
            Csum::Full => checksum_with(pseudo_header_sum(A, B, PROTO_TCP, len), &tcp),
            // The folded pseudo-header sum: checksum_with over nothing, un-complemented.
            Csum::Partial => !checksum_with(pseudo_header_sum(A, B, PROTO_TCP, len), &[]),
            Csum::Zero => 0,
        };
        put16(&mut tcp, 16, sum);
        ipv4::emit(A, B, PROTO_TCP, 64, 0xfffe, &tcp)
    }

    fn split(p: &[u8], gso_size: usize) -> Vec<Vec<u8>> {
        let mut pieces = Vec::new();
        split_tcp4(p, gso_size, &mut |piece| pieces.push(piece.to_vec()));
        pieces
    }

    /// Parses every piece with the crate's own parsers (both verify checksums) and checks
    /// what segmentation must preserve or change.
    fn check(pieces: &[Vec<u8>], payload_len: usize, gso_size: usize, flags: u8) {
        let mut expected_seq = SEQ;
        let mut data = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let ip = Ipv4Packet::parse(piece).expect("valid IPv4");
            assert_eq!(ip.bytes.len(), piece.len());
            assert_eq!(ip.id, 0xfffe_u16.wrapping_add(i as u16));
            let seg = Segment::parse(ip.src, ip.dst, ip.payload).expect("valid TCP");
            assert_eq!(seg.seq.0, expected_seq, "piece {i}");
            assert!(seg.payload.len() <= gso_size);
            assert_eq!(seg.options.timestamps, Some((42, 24)));
            assert_eq!((seg.src_port, seg.dst_port, seg.window), (1234, 80, 5000));
            let last = i + 1 == pieces.len();
            let bits = ip.payload[13];
            assert_eq!(seg.flags.fin, last && flags & TCP_FIN != 0, "FIN on {i}");
            assert_eq!(seg.flags.psh, last && flags & TCP_PSH != 0, "PSH on {i}");
            assert_eq!(
                bits & TCP_CWR != 0,
                i == 0 && flags & TCP_CWR != 0,
                "CWR on {i}"
            );
            assert!(seg.flags.ack);
            if !last {
                assert_eq!(seg.payload.len(), gso_size, "only the last piece is short");
            }
            expected_seq = expected_seq.wrapping_add(seg.payload.len() as u32);
            data.extend_from_slice(&seg.payload);
        }
        let want: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        assert_eq!(data, want, "payload reassembles");
    }

    #[test]
    fn splits_into_valid_segments_whatever_the_input_checksum() {
        for csum in [Csum::Full, Csum::Partial, Csum::Zero] {
            let p = packet(3500, FLAGS_ALL, csum);
            let pieces = split(&p, 1000);
            assert_eq!(pieces.len(), 4);
            assert_eq!(
                pieces.iter().map(Vec::len).collect::<Vec<_>>(),
                [1052, 1052, 1052, 552]
            );
            check(&pieces, 3500, 1000, FLAGS_ALL);
        }
    }

    #[test]
    fn exact_multiple_and_large_super_segment() {
        let p = packet(4000, 0x10 | TCP_PSH, Csum::Partial);
        let pieces = split(&p, 1000);
        assert_eq!(pieces.len(), 4);
        check(&pieces, 4000, 1000, 0x10 | TCP_PSH);

        // The largest a 64 KiB IPv4 packet carries, cut at a typical MSS.
        let max = usize::from(u16::MAX) - 20 - 32;
        let p = packet(max, FLAGS_ALL, Csum::Partial);
        let pieces = split(&p, 1448);
        assert_eq!(pieces.len(), max.div_ceil(1448));
        check(&pieces, max, 1448, FLAGS_ALL);
    }

    #[test]
    fn small_or_empty_payload_is_one_packet_with_complete_checksums() {
        for len in [0, 1, 999, 1000] {
            let p = packet(len, FLAGS_ALL, Csum::Partial);
            let pieces = split(&p, 1000);
            assert_eq!(pieces.len(), 1, "payload {len}");
            assert_eq!(pieces[0].len(), p.len());
            check(&pieces, len, 1000, FLAGS_ALL);
        }
    }

    #[test]
    fn trailing_link_padding_is_not_payload() {
        let mut p = packet(100, 0x10, Csum::Zero);
        p.extend_from_slice(&[0xee; 6]);
        let pieces = split(&p, 40);
        assert_eq!(pieces.len(), 3);
        check(&pieces, 100, 40, 0x10);
    }

    #[test]
    fn bad_input_emits_nothing() {
        let good = packet(300, 0x10, Csum::Partial);
        let mut cases: Vec<(&str, Vec<u8>, usize)> =
            vec![("empty", Vec::new(), 100), ("gso 0", good.clone(), 0)];
        let mut v6 = good.clone();
        v6[0] = 0x65;
        cases.push(("version 6", v6, 100));
        let mut udp = good.clone();
        udp[9] = ipv4::PROTO_UDP;
        cases.push(("UDP", udp, 100));
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        cases.push(("IHL 4", ihl, 100));
        let mut frag = good.clone();
        frag[6] |= 0x20; // MF
        cases.push(("fragment", frag, 100));
        let mut long = good.clone();
        put16(&mut long, 2, 2000);
        cases.push(("total length beyond the buffer", long, 100));
        let mut short = good.clone();
        put16(&mut short, 2, 30);
        cases.push(("total length inside the headers", short, 100));
        let mut doff = good.clone();
        doff[20 + 12] = 4 << 4;
        cases.push(("data offset 4", doff, 100));
        for (what, p, size) in cases {
            assert!(split(&p, size).is_empty(), "{what}");
        }
        // Every truncation of a good packet: never a panic; what comes out is valid.
        for cut in 0..good.len() {
            for piece in split(&good[..cut], 64) {
                let ip = Ipv4Packet::parse(&piece).expect("valid IPv4");
                Segment::parse(ip.src, ip.dst, ip.payload).expect("valid TCP");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: no dependency, same bytes every run.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = p.first_mut() {
                *b = 0x40 | (*b & 0x0f); // mostly IPv4, any IHL
            }
            if let Some(b) = p.get_mut(9) {
                *b = PROTO_TCP;
            }
            split_tcp4(&p, (next() % 64) as usize, &mut |_| {});
            view(&p, (next() % 3) as u16, true, &mut |_| {});
        }
    }

    /// A UDP datagram the kernel handed over with a partial checksum (NEEDS_CSUM) is shown
    /// with the checksum the wire carries, so a trace or capture does not call it bad.
    #[test]
    fn udp_with_a_partial_checksum_is_shown_complete() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let good_udp = crate::udp::datagram::emit(src, dst, 40000, 9, b"anyone there?");
        let mut partial_udp = good_udp.clone();
        // The pseudo-header sum only, as the kernel leaves it for the device to finish.
        let pseudo = !checksum_with(pseudo_header_sum(src, dst, 17, 21), &[]);
        partial_udp[6..8].copy_from_slice(&pseudo.to_be_bytes());
        let partial = crate::ip::ipv4::emit(src, dst, 17, 64, 7, &partial_udp);
        assert!(crate::udp::Datagram::parse(src, dst, &partial[20..]).is_err());
        let mut seen = Vec::new();
        rx_view(
            &partial,
            RxMeta {
                gso_size: 0,
                csum_trusted: true,
            },
            &mut |p| seen.push(p.to_vec()),
        );
        assert_eq!(seen.len(), 1);
        assert_eq!(&seen[0][20..], &good_udp[..], "checksum completed");
        assert!(crate::udp::Datagram::parse(src, dst, &seen[0][20..]).is_ok());
    }

    #[test]
    fn views_show_what_the_wire_carries() {
        let plain = packet(50, 0x10, Csum::Full);
        let mut seen = Vec::new();
        tx_view(&plain, TxMeta::default(), &mut |p| seen.push(p.to_vec()));
        assert_eq!(
            seen,
            std::slice::from_ref(&plain),
            "no offload: the packet as is"
        );

        let partial = packet(50, 0x10, Csum::Partial);
        seen.clear();
        rx_view(
            &partial,
            RxMeta {
                csum_trusted: true,
                gso_size: 0,
            },
            &mut |p| seen.push(p.to_vec()),
        );
        assert_eq!(seen, [plain], "partial checksum completed");

        let superseg = packet(3000, FLAGS_ALL, Csum::Partial);
        seen.clear();
        tx_view(
            &superseg,
            TxMeta {
                gso_size: 1460,
                csum_partial: true,
            },
            &mut |p| seen.push(p.to_vec()),
        );
        check(&seen, 3000, 1460, FLAGS_ALL);

        let icmp = ipv4::emit(A, B, ipv4::PROTO_ICMP, 64, 1, &[8, 0, 0, 0]);
        seen.clear();
        rx_view(
            &icmp,
            RxMeta {
                csum_trusted: true,
                gso_size: 0,
            },
            &mut |p| seen.push(p.to_vec()),
        );
        assert_eq!(seen, [icmp], "not TCP/IPv4: shown as is");
    }

    #[test]
    fn ethernet_frames_are_cut_behind_their_header() {
        let eth: Vec<u8> = (1..=12).chain([0x08, 0x00]).collect();
        let mut frame = eth.clone();
        frame.extend_from_slice(&packet(2500, FLAGS_ALL, Csum::Partial));
        let mut pieces = Vec::new();
        view_ethernet(&frame, 1000, true, &mut |f| {
            assert_eq!(&f[..14], &eth[..]);
            pieces.push(f[14..].to_vec());
        });
        check(&pieces, 2500, 1000, FLAGS_ALL);

        // ARP, or a frame too short for a header: as is.
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for f in [arp, frame[..10].to_vec()] {
            let mut seen = Vec::new();
            view_ethernet(&f, 1000, true, &mut |x| seen.push(x.to_vec()));
            assert_eq!(seen, [f]);
        }
    }

    #[test]
    fn header_lengths() {
        let p = packet(10, 0x10, Csum::Full);
        assert_eq!(tcp4_header_lens(&p), Some((20, 32)));
        assert_eq!(tcp4_header_lens(&p[..51]), None);
        assert_eq!(tcp4_header_lens(&p[..52]), Some((20, 32)));
        assert_eq!(tcp4_header_lens(&[]), None);
    }

    /// An IPv6 TCP segment the kernel left with a partial checksum is shown complete.
    #[test]
    fn ipv6_partial_checksums_are_completed_for_the_view() {
        use crate::ip::ipv6;
        use std::net::Ipv6Addr;
        let (a, b) = (
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let seg = Segment {
            src_port: 1,
            dst_port: 80,
            payload: b"GET".to_vec(),
            ..Segment::default()
        };
        let good = ipv6::emit(a, b, ipv6::NEXT_TCP, 64, &seg.emit(a, b));
        let mut partial = good.clone();
        partial[40 + 16..40 + 18].copy_from_slice(&[0x12, 0x34]);
        let mut shown = Vec::new();
        view(&partial, 0, true, &mut |p| shown.push(p.to_vec()));
        assert_eq!(shown, vec![good.clone()]);
        let mut untouched = Vec::new();
        view(&partial, 0, false, &mut |p| untouched.push(p.to_vec()));
        assert_eq!(untouched, vec![partial]);
    }

    /// A TCP/IPv6 fd00::1:1234 → fd00::2:80 packet with a timestamp option, its checksum
    /// filled as `csum` says over the IPv6 pseudo-header.
    fn packet6(payload_len: usize, flags: u8, csum: Csum) -> Vec<u8> {
        use crate::ip::ipv6;
        let (a, b) = (A6, B6);
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&1234u16.to_be_bytes());
        tcp.extend_from_slice(&80u16.to_be_bytes());
        tcp.extend_from_slice(&SEQ.to_be_bytes());
        tcp.extend_from_slice(&7u32.to_be_bytes());
        tcp.push(8 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&5000u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 24]);
        tcp.extend((0..payload_len).map(|i| (i % 251) as u8));
        let len = u32::try_from(tcp.len()).unwrap();
        let pseudo = ipv6::pseudo_header_sum(a, b, ipv6::NEXT_TCP, len);
        let sum = match csum {
            Csum::Full => checksum_with(pseudo, &tcp),
            Csum::Partial => !checksum_with(pseudo, &[]),
            Csum::Zero => 0,
        };
        put16(&mut tcp, 16, sum);
        ipv6::emit(a, b, ipv6::NEXT_TCP, 64, &tcp)
    }

    const A6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    /// Parses every IPv6 piece (the TCP parser verifies the checksum over the IPv6
    /// pseudo-header) and checks sequence numbers, flags and the payload.
    fn check6(pieces: &[Vec<u8>], payload_len: usize, gso_size: usize, flags: u8) {
        use crate::ip::ipv6::Ipv6Packet;
        let mut expected_seq = SEQ;
        let mut data = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let ip = Ipv6Packet::parse(piece).expect("valid IPv6");
            assert_eq!(ip.bytes.len(), piece.len(), "payload length rewritten");
            let seg = Segment::parse(ip.src, ip.dst, ip.payload).expect("valid TCP");
            assert_eq!(seg.seq.0, expected_seq, "piece {i}");
            assert_eq!(seg.options.timestamps, Some((42, 24)));
            let last = i + 1 == pieces.len();
            assert_eq!(seg.flags.fin, last && flags & TCP_FIN != 0, "FIN on {i}");
            assert_eq!(seg.flags.psh, last && flags & TCP_PSH != 0, "PSH on {i}");
            let cwr = ip.payload[13] & TCP_CWR != 0;
            assert_eq!(cwr, i == 0 && flags & TCP_CWR != 0, "CWR on {i}");
            if last {
                assert!(seg.payload.len() <= gso_size);
            } else {
                assert_eq!(seg.payload.len(), gso_size, "only the last piece is short");
            }
            expected_seq = expected_seq.wrapping_add(seg.payload.len() as u32);
            data.extend_from_slice(&seg.payload);
        }
        let want: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        assert_eq!(data, want, "payload reassembles");
    }

    #[test]
    fn ipv6_super_segment_is_cut_into_wire_segments() {
        for csum in [Csum::Full, Csum::Partial, Csum::Zero] {
            let p = packet6(3500, FLAGS_ALL, csum);
            let mut pieces = Vec::new();
            split_tcp6(&p, 1000, &mut |x| pieces.push(x.to_vec()));
            assert_eq!(
                pieces.iter().map(Vec::len).collect::<Vec<_>>(),
                [1072, 1072, 1072, 572]
            );
            check6(&pieces, 3500, 1000, FLAGS_ALL);
        }
        // The largest IPv6 super-segment: 65535 bytes of payload behind the header.
        let max = 65535 - 32;
        let p = packet6(max, 0x10 | TCP_PSH, Csum::Partial);
        assert_eq!(p.len(), crate::link::offload::MAX_SUPER_PACKET6);
        let mut pieces = Vec::new();
        split_tcp(&p, 1428, &mut |x| pieces.push(x.to_vec()));
        assert_eq!(pieces.len(), max.div_ceil(1428));
        check6(&pieces, max, 1428, 0x10 | TCP_PSH);
    }

    /// What pcap and the fault injector see of an IPv6 super-segment we send with TSO6:
    /// the wire's segments, on a TUN and behind an Ethernet header on a TAP.
    #[test]
    fn ipv6_super_segment_views_show_wire_segments() {
        let superseg = packet6(3000, FLAGS_ALL, Csum::Partial);
        let meta = TxMeta {
            gso_size: 1440,
            csum_partial: true,
        };
        let mut seen = Vec::new();
        tx_view(&superseg, meta, &mut |p| seen.push(p.to_vec()));
        assert_eq!(seen.len(), 3);
        check6(&seen, 3000, 1440, FLAGS_ALL);

        let eth: Vec<u8> = (1..=12).chain([0x86, 0xdd]).collect();
        let mut frame = eth.clone();
        frame.extend_from_slice(&superseg);
        let mut pieces = Vec::new();
        wire_view(
            super::super::Medium::Ethernet,
            &frame,
            1440,
            true,
            &mut |f| {
                assert_eq!(&f[..14], &eth[..]);
                pieces.push(f[14..].to_vec());
            },
        );
        check6(&pieces, 3000, 1440, FLAGS_ALL);
    }

    #[test]
    fn bad_ipv6_input_emits_nothing() {
        let good = packet6(300, 0x10, Csum::Partial);
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut ext = good.clone();
        ext[6] = 0; // hop-by-hop options: not cut
        cases.push(("extension header", ext));
        let mut jumbo = good.clone();
        put16(&mut jumbo, 4, 0);
        cases.push(("payload length 0", jumbo));
        let mut long = good.clone();
        put16(&mut long, 4, 2000);
        cases.push(("payload length beyond the buffer", long));
        let mut doff = good.clone();
        doff[40 + 12] = 4 << 4;
        cases.push(("data offset 4", doff));
        for (what, p) in cases {
            let mut n = 0;
            split_tcp6(&p, 100, &mut |_| n += 1);
            assert_eq!(n, 0, "{what}");
        }
        for cut in 0..good.len() {
            split_tcp6(&good[..cut], 64, &mut |piece| {
                let ip = crate::ip::ipv6::Ipv6Packet::parse(piece).expect("valid IPv6");
                Segment::parse(ip.src, ip.dst, ip.payload).expect("valid TCP");
            });
        }
    }
}
