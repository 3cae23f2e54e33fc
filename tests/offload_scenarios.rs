//! Offload scenarios, packetdrill style, at the host level (`stack::Interface`): a scripted
//! peer ("them", 10.0.0.1) exchanges raw IPv4 packets with the host under test ("us",
//! 10.0.0.2) on a virtual clock.
//!
//! Receive side (GRO): a coalesced super-segment of up to 64 KiB, marked by the device
//! with [`RxMeta`], is taken whole by TCP, trimmed to the window like any segment, and
//! acknowledged at once (it counts as many full-sized segments: RFC 5681 §4.2, RFC 9293
//! §3.8.6.3); with `csum_trusted` its TCP checksum is not verified, without it a bad one
//! drops it.
//!
//! Transmit side (TSO): with [`Interface::set_tso`] a bulk send leaves as super-segments
//! of k × gso_size payload bytes with a partial checksum (the folded pseudo-header sum,
//! completed here as the kernel would), within the peer's window and the congestion
//! window, Nagle still holding back a small tail; a loss inside a super-segment is
//! repaired by resending only the lost MSS-sized piece.

use std::net::{Ipv4Addr, SocketAddrV4};

use std::time::Duration;

use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::link::offload::{RxMeta, TxMeta};
use tunstack::stack::Interface;
use tunstack::tcp::{Config, ConnId, Flags, Segment, SeqNum, State, TcpOptions};
use tunstack::time::Instant;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const THEM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ISN: u32 = u32::MAX - 50;
const PEER_PORT: u16 = 40000;
const MSS: usize = 1460;

/// The payload byte at stream offset `off`.
fn pattern(off: usize) -> u8 {
    ((off as u32).wrapping_mul(2_654_435_761) >> 13) as u8
}

fn pattern_range(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(pattern).collect()
}

/// One packet we sent, decoded: the segment (payload included) and the device metadata.
struct Out {
    seg: Segment,
    meta: TxMeta,
    /// IPv4 total length.
    ip_len: usize,
}

/// The host under test and the scripted peer.
struct H {
    host: Interface,
    now: Instant,
    conn: Option<ConnId>,
    /// Our ISN.
    iss: SeqNum,
    /// The peer's next sequence number (relative stream offset = seq − ISN − 1).
    peer_nxt: SeqNum,
    /// Whether timestamps were negotiated (the peer then puts TSopt on every segment).
    ts: bool,
    ip_id: u16,
}

impl H {
    /// A connection accepted by the host from the peer, who offers MSS 1460, window
    /// scale 7 and SACK (and timestamps when `ts`), with the host's `config`.
    fn new(config: Config, ts: bool) -> H {
        H::with_sack(config, ts, true)
    }

    /// Like [`H::new`]; the peer offers SACK only if `sack`.
    fn with_sack(config: Config, ts: bool, sack: bool) -> H {
        let mut host = Interface::new(US, config, 7);
        let l = host.tcp_mut().listen(SocketAddrV4::new(US, 80), 8).unwrap();
        let mut h = H {
            host,
            now: Instant::from_secs(1),
            conn: None,
            iss: SeqNum(0),
            peer_nxt: SeqNum(PEER_ISN),
            ts,
            ip_id: 1,
        };
        let syn = Segment {
            src_port: PEER_PORT,
            dst_port: 80,
            seq: SeqNum(PEER_ISN),
            flags: Flags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(MSS as u16),
                window_scale: Some(7),
                sack_permitted: sack,
                timestamps: ts.then_some((1000, 0)),
                ..TcpOptions::default()
            },
            ..Segment::default()
        };
        h.inject(&syn, RxMeta::default());
        let out = h.drain();
        assert_eq!(out.len(), 1, "one SYN-ACK");
        let synack = &out[0].seg;
        assert!(synack.flags.syn && synack.flags.ack);
        h.iss = synack.seq;
        h.peer_nxt = SeqNum(PEER_ISN) + 1;
        let ack = h.peer_segment(Flags::ACK, 0, 0, 65535);
        h.inject(&ack, RxMeta::default());
        h.conn = Some(h.host.tcp_mut().accept(l).expect("accepted"));
        assert_eq!(h.host.tcp().state(h.id()), State::Established);
        h
    }

    fn id(&self) -> ConnId {
        self.conn.expect("connected")
    }

    /// A segment from the peer at its next sequence number acknowledging `acked` bytes of
    /// our stream, with `len` payload bytes from the peer's stream pattern.
    fn peer_segment(&self, flags: Flags, acked: u32, len: usize, win: u32) -> Segment {
        let offset = self.peer_nxt.0.wrapping_sub(PEER_ISN).wrapping_sub(1) as usize;
        Segment {
            src_port: PEER_PORT,
            dst_port: 80,
            seq: self.peer_nxt,
            ack: self.iss + 1 + acked,
            flags,
            // Scaled by 7, the peer's shift.
            window: u16::try_from(win >> 7).unwrap_or(u16::MAX),
            options: TcpOptions {
                timestamps: self.ts.then_some((2000, 0)),
                ..TcpOptions::default()
            },
            payload: pattern_range(offset, len),
            ..Segment::default()
        }
    }

    /// The peer's segment as an IPv4 packet, handed to the host with `meta`.
    fn inject(&mut self, seg: &Segment, meta: RxMeta) {
        let tcp = seg.emit(THEM, US);
        self.inject_tcp(&tcp, meta);
    }

    fn inject_tcp(&mut self, tcp: &[u8], meta: RxMeta) {
        self.ip_id = self.ip_id.wrapping_add(1);
        let packet = ipv4::emit(THEM, US, ipv4::PROTO_TCP, 64, self.ip_id, tcp);
        self.host.handle_packet_meta(&packet, meta, self.now);
    }

    /// Everything the host sends now, decoded; a partial checksum is completed as the
    /// kernel would and every checksum verified.
    fn drain(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(meta) = self.host.poll_transmit_into(self.now, &mut buf) {
            out.push(decode(&mut buf, meta));
        }
        out
    }

    /// Advance the clock by `d`, firing timers, and return what was sent.
    fn advance(&mut self, d: Duration) -> Vec<Out> {
        self.now += d;
        self.host.handle_timeout(self.now);
        self.drain()
    }

    /// The peer acknowledges our stream up to `acked` bytes, with `sack` blocks (stream
    /// offsets) and a window of `win` bytes; returns what the host sends in answer.
    fn ack(&mut self, acked: usize, sack: &[(usize, usize)], win: u32) -> Vec<Out> {
        self.inject_ack(acked, sack, win);
        self.drain()
    }

    /// Like [`H::ack`], but the host answers only at the next drain (a batch of input).
    fn inject_ack(&mut self, acked: usize, sack: &[(usize, usize)], win: u32) {
        let mut seg = self.peer_segment(Flags::ACK, acked as u32, 0, win);
        let base = self.iss + 1;
        seg.options.sack_blocks = sack
            .iter()
            .map(|&(l, r)| (base + l as u32, base + r as u32))
            .collect();
        self.inject(&seg, RxMeta::default());
    }

    /// The application writes `len` bytes of our stream pattern, from offset `from`.
    fn write(&mut self, from: usize, len: usize) {
        let id = self.id();
        let data = pattern_range(from, len);
        let n = self.host.tcp_mut().send(id, &data, self.now).unwrap();
        assert_eq!(n, len, "the send buffer takes it all");
    }

    /// Bytes the host's application can read now.
    fn read_all(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        let id = self.id();
        while let Ok(n) = self.host.tcp_mut().recv(id, &mut buf, self.now) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    }
}

/// Check the IPv4 header (complete, checksum valid) and the TCP checksum of a packet we
/// sent — for a partial one, check that the field holds the folded pseudo-header sum over
/// the whole super-segment's TCP length (what Linux's CHECKSUM_PARTIAL expects), then
/// complete it over the segment as the kernel does — and decode the segment.
fn decode(packet: &mut [u8], meta: TxMeta) -> Out {
    let ip = Ipv4Packet::parse(packet).expect("a valid IPv4 packet (header checksum too)");
    assert!(ip.dont_fragment(), "DF set");
    let (header_len, ip_len) = (ip.header_len, ip.bytes.len());
    assert_eq!(ip_len, packet.len(), "total length matches the packet");
    if meta.csum_partial {
        let tcp_len = u16::try_from(ip_len - header_len).unwrap();
        let expected = !ipv4::checksum_with(ipv4::pseudo_header_sum(US, THEM, 6, tcp_len), &[]);
        let field = u16::from_be_bytes([packet[header_len + 16], packet[header_len + 17]]);
        assert_eq!(
            field, expected,
            "partial checksum = folded pseudo-header sum"
        );
        // The kernel: sum from csum_start (the TCP header) to the end, the field included,
        // and store the complement at csum_start + csum_offset (16).
        let full = ipv4::checksum(&packet[header_len..]);
        packet[header_len + 16..header_len + 18].copy_from_slice(&full.to_be_bytes());
    } else {
        assert_eq!(meta, TxMeta::default(), "an ordinary packet");
    }
    let seg = Segment::parse(US, THEM, &packet[header_len..]).expect("a valid TCP segment");
    Out { seg, meta, ip_len }
}

/// Stream offset of a sequence number of ours.
fn rel(h: &H, seq: SeqNum) -> usize {
    seq.0.wrapping_sub(h.iss.0).wrapping_sub(1) as usize
}

/// Check that a data packet carries our stream's bytes at its sequence number; returns
/// (stream offset, payload length).
fn check_data(h: &H, o: &Out) -> (usize, usize) {
    let at = rel(h, o.seg.seq);
    assert_eq!(
        o.seg.payload,
        pattern_range(at, o.seg.payload.len()),
        "payload at offset {at} byte exact"
    );
    (at, o.seg.payload.len())
}

// --------------------------------------------------------------------------------------
// Receive: GRO super-segments.

/// A 60 KiB super-segment, checksum left partial by the kernel (the field holds garbage
/// for us), is taken whole with `csum_trusted` and acknowledged at once: it counts as
/// ceil(60 KiB / MSS) full-sized segments, so no delayed ACK (RFC 5681 §4.2: an ACK at
/// least every second full-sized segment; RFC 9293 §3.8.6.3).
#[test]
fn gro_super_segment_with_trusted_checksum_is_taken_whole_and_acked_at_once() {
    let mut h = H::new(Config::default(), false);
    let len = 60 * 1024;
    let seg = h.peer_segment(Flags::PSH_ACK, 0, len, 65535);
    let mut tcp = seg.emit(THEM, US);
    tcp[16] ^= 0x5a; // a checksum the device told us not to verify
    h.inject_tcp(
        &tcp,
        RxMeta {
            csum_trusted: true,
            gso_size: MSS as u16,
        },
    );
    assert_eq!(h.host.stats().super_packets_in, 1);
    let out = h.drain();
    assert_eq!(out.len(), 1, "one ACK, not delayed");
    assert!(out[0].seg.payload.is_empty());
    assert_eq!(
        out[0].seg.ack,
        h.peer_nxt + len as u32,
        "all of it acknowledged"
    );
    assert_eq!(h.read_all(), pattern_range(0, len), "byte exact");
}

/// Without `csum_trusted` the same super-segment with a bad checksum is dropped: nothing
/// delivered, nothing acknowledged.
#[test]
fn super_segment_with_bad_checksum_is_dropped_unless_trusted() {
    let mut h = H::new(Config::default(), false);
    let len = 60 * 1024;
    let seg = h.peer_segment(Flags::PSH_ACK, 0, len, 65535);
    let mut tcp = seg.emit(THEM, US);
    tcp[16] ^= 0x5a;
    h.inject_tcp(
        &tcp,
        RxMeta {
            csum_trusted: false,
            gso_size: MSS as u16,
        },
    );
    assert_eq!(h.host.stats().drops.get("tcp-malformed"), Some(&1));
    assert!(h.drain().is_empty(), "no ACK for a corrupt segment");
    assert!(h.read_all().is_empty());
    // With a correct checksum and no flag it is accepted: the size alone is fine.
    let good = seg.emit(THEM, US);
    h.inject_tcp(&good, RxMeta::default());
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seg.ack, h.peer_nxt + len as u32);
    assert_eq!(h.read_all().len(), len);
}

/// A super-segment larger than the receive window is trimmed to it (RFC 9293 §3.10.7.4:
/// "segments with higher beginning sequence numbers ... trimmed to the window"); the rest
/// is the peer's to send again, and the trimmed part arrives byte exact.
#[test]
fn super_segment_is_trimmed_to_the_receive_window() {
    let config = Config {
        recv_buffer: 32 * 1024,
        ..Config::default()
    };
    let mut h = H::new(config, false);
    let len = 60 * 1024;
    let trusted = RxMeta {
        csum_trusted: true,
        gso_size: MSS as u16,
    };
    let mut total = 0;
    for round in 0..8 {
        // The peer (re)sends everything not yet acknowledged as one super-segment.
        let seg = h.peer_segment(Flags::ACK, 0, len - total, 65535);
        h.inject(&seg, trusted);
        let out = h.drain();
        let acked = out
            .last()
            .map_or(0, |o| o.seg.ack.diff(h.peer_nxt).max(0) as usize);
        if round == 0 {
            assert!(
                acked > 0 && acked <= 32 * 1024,
                "acked {acked} of 60 KiB with a 32 KiB buffer"
            );
        }
        let got = h.read_all();
        assert_eq!(got.len(), acked, "what was acknowledged is readable");
        assert_eq!(got, pattern_range(total, acked), "byte exact");
        total += acked;
        h.peer_nxt += acked as u32;
        if total == len {
            break;
        }
    }
    assert_eq!(total, len);
}

/// A trusted UDP datagram with a bad checksum is delivered; an untrusted one is not.
#[test]
fn udp_checksum_skipped_only_when_trusted() {
    let mut host = Interface::new(US, Config::default(), 3);
    let sock = host.udp_mut().bind(SocketAddrV4::new(US, 53)).unwrap();
    let mut dgram = tunstack::udp::datagram::emit(THEM, US, 5000, 53, b"hello");
    dgram[6] ^= 0x11;
    let packet = ipv4::emit(THEM, US, ipv4::PROTO_UDP, 64, 9, &dgram);
    let now = Instant::from_secs(1);
    host.handle_packet(&packet, now);
    assert!(
        host.udp_mut().recv_from(sock).is_none(),
        "bad checksum dropped"
    );
    host.handle_packet_meta(
        &packet,
        RxMeta {
            csum_trusted: true,
            gso_size: 0,
        },
        now,
    );
    let (from, data) = host.udp_mut().recv_from(sock).expect("trusted: delivered");
    assert_eq!(
        (&data[..], from),
        (&b"hello"[..], SocketAddrV4::new(THEM, 5000).into())
    );
}

// --------------------------------------------------------------------------------------
// Transmit: TSO super-segments.

/// A bulk send with TSO leaves as super-segments of k × gso_size payload bytes (gso_size
/// = the MSS less the option bytes every piece repeats: 1460 without timestamps, 1448
/// with), with a partial checksum the kernel completes, never more than cwnd (RFC 5681
/// §3.1: IW 10 segments, RFC 6928) and never an IPv4 packet above 65535 bytes; the
/// statistics count the segments the wire will carry.
fn bulk_send_as_super_segments(ts: bool) {
    let mut h = H::new(Config::default(), ts);
    h.host.set_tso(Some(65535));
    let gso = if ts { MSS - 12 } else { MSS };
    let total = 200_000;
    h.write(0, total);
    let mut out = h.drain();
    assert_eq!(out.len(), 1, "the initial window as one super-segment");
    let first = &out[0];
    assert_eq!(first.meta.gso_size as usize, gso);
    assert!(first.meta.csum_partial);
    assert_eq!(
        first.seg.payload.len(),
        10 * gso,
        "IW = 10 segments (RFC 6928)"
    );
    assert_eq!(first.seg.options.timestamps.is_some(), ts);
    let mut next = 0;
    let mut largest = 0;
    let mut supers = 0;
    let mut wire_segments = 0;
    for _ in 0..100 {
        let mut end = next;
        for o in &out {
            let (at, len) = check_data(&h, o);
            assert_eq!(at, end, "in sequence");
            end = at + len;
            largest = largest.max(len);
            assert!(o.ip_len <= 65535);
            wire_segments += len.div_ceil(gso);
            if o.meta.gso_size != 0 {
                supers += 1;
                assert_eq!(o.meta.gso_size as usize, gso);
                // Whole pieces, but for the very end of the data (nothing in flight then).
                assert!(len % gso == 0 || at + len == total, "len {len} at {at}");
            } else {
                assert!(len <= gso, "an ordinary segment carries at most one MSS");
            }
        }
        if end == total {
            break;
        }
        // The peer acknowledges every second piece, as a receiver does (RFC 5681 §4.2);
        // the host reads the whole batch of ACKs before it sends again.
        let mut at = next;
        while at < end {
            at = (at + 2 * gso).min(end);
            h.inject_ack(at, &[], 4 << 20);
        }
        next = end;
        out = h.drain();
    }
    assert_eq!(
        largest,
        (65535 - 40 - if ts { 12 } else { 0 }) / gso * gso,
        "the largest super-segment fills a 64 KiB IPv4 packet"
    );
    let stats = h.host.tcp().stats();
    assert_eq!(stats.super_segments_out, supers);
    assert_eq!(h.host.stats().super_packets_out, supers);
    // segments_out: SYN-ACK, data as wire segments (no pure ACKs: nothing to acknowledge).
    assert_eq!(stats.segments_out as usize, 1 + wire_segments);
    assert_eq!(stats.retransmits, 0);
}

#[test]
fn bulk_send_leaves_as_super_segments_without_timestamps() {
    bulk_send_as_super_segments(false);
}

#[test]
fn bulk_send_leaves_as_super_segments_with_timestamps() {
    bulk_send_as_super_segments(true);
}

/// The peer's window bounds a super-segment to whole pieces within it; the remainder of
/// the window (less than a piece) is not used for a runt segment (RFC 9293 §3.8.6.2.1
/// sender SWS avoidance) until the window opens.
#[test]
fn super_segment_respects_the_peer_window() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tso(Some(65535));
    // 40 << 7 = 5120 bytes: 3 pieces (4380) and 740 bytes left over.
    assert!(h.ack(0, &[], 40 << 7).is_empty());
    h.write(0, 20_000);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (0, 3 * MSS));
    assert_eq!(out[0].meta.gso_size as usize, MSS);
    // The window slides by what is acknowledged: 3 pieces more.
    let out = h.ack(3 * MSS, &[], 40 << 7);
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (3 * MSS, 3 * MSS));
    // A window of one piece and a bit: an ordinary segment, no super-segment.
    let out = h.ack(6 * MSS, &[], 12 << 7);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].meta, TxMeta::default());
    assert_eq!(check_data(&h, &out[0]), (6 * MSS, MSS));
}

/// Nagle (RFC 1122 §4.2.3.4) with TSO: with nothing in flight the whole write goes,
/// short last piece included; while data is in flight only whole pieces go and the short
/// tail waits for the ACK — then leaves as an ordinary packet.
#[test]
fn nagle_holds_the_short_tail_of_a_super_segment() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tso(Some(65535));
    let chunk = 2 * MSS + MSS / 2;
    h.write(0, chunk);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (0, chunk), "tail included: idle");
    assert_eq!(out[0].meta.gso_size as usize, MSS);
    h.write(chunk, chunk);
    let out = h.drain();
    assert_eq!(out.len(), 1, "whole pieces only while data is in flight");
    assert_eq!(check_data(&h, &out[0]), (chunk, 2 * MSS));
    assert!(h.drain().is_empty(), "the tail waits");
    let out = h.ack(chunk + 2 * MSS, &[], 4 << 20);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].meta,
        TxMeta::default(),
        "one segment: an ordinary packet"
    );
    assert_eq!(check_data(&h, &out[0]), (chunk + 2 * MSS, MSS / 2));
}

/// The FIN rides on the last super-segment (the kernel keeps it on the last piece only).
#[test]
fn fin_rides_on_a_super_segment() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tso(Some(65535));
    h.write(0, 3000);
    let id = h.id();
    h.host.tcp_mut().shutdown(id, h.now);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (0, 3000));
    assert!(out[0].seg.flags.fin);
    assert_eq!(out[0].meta.gso_size as usize, MSS);
    let out = h.ack(3001, &[], 4 << 20);
    assert!(out.is_empty());
    assert_eq!(h.host.tcp().state(id), State::FinWait2);
}

/// A piece lost inside a super-segment is repaired by resending just that piece, as an
/// ordinary packet, when duplicate ACKs with SACK blocks report the data above it (RFC
/// 6675 §5, RFC 5681 §3.2); the pieces that arrived are not sent again.
#[test]
fn loss_inside_a_super_segment_resends_only_that_piece() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tso(Some(65535));
    h.write(0, 10 * MSS);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (0, 10 * MSS));
    // Pieces 0..3 arrive (ACKed), piece 3 is lost, 4..10 arrive (SACKed one by one).
    let mut sent = h.ack(2 * MSS, &[], 4 << 20);
    sent.extend(h.ack(3 * MSS, &[], 4 << 20));
    for k in 5..=10 {
        sent.extend(h.ack(3 * MSS, &[(4 * MSS, k * MSS)], 4 << 20));
    }
    let data: Vec<_> = sent.iter().filter(|o| !o.seg.payload.is_empty()).collect();
    assert_eq!(data.len(), 1, "one retransmission");
    assert_eq!(
        check_data(&h, data[0]),
        (3 * MSS, MSS),
        "just the lost piece"
    );
    assert_eq!(data[0].meta, TxMeta::default());
    assert_eq!(h.host.tcp().stats().retransmits, 1);
    assert!(h.ack(10 * MSS, &[], 4 << 20).is_empty());
    assert_eq!(h.host.tcp().stats().retransmits, 1, "nothing else resent");
}

/// Without SACK the same loss is repaired by NewReno: the third duplicate ACK resends the
/// piece at SND.UNA, and only that piece (RFC 5681 §3.2, RFC 6582).
#[test]
fn loss_inside_a_super_segment_without_sack_resends_only_that_piece() {
    let mut h = H::with_sack(Config::default(), false, false);
    h.host.set_tso(Some(65535));
    h.write(0, 10 * MSS);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(check_data(&h, &out[0]), (0, 10 * MSS));
    let mut sent = h.ack(3 * MSS, &[], 4 << 20);
    assert!(sent.is_empty(), "nothing to send: all data is out");
    for _ in 0..3 {
        sent.extend(h.ack(3 * MSS, &[], 4 << 20));
    }
    assert_eq!(sent.len(), 1, "the third duplicate ACK: one retransmission");
    assert_eq!(
        check_data(&h, &sent[0]),
        (3 * MSS, MSS),
        "just the lost piece"
    );
    assert_eq!(sent[0].meta, TxMeta::default());
    assert!(h.ack(10 * MSS, &[], 4 << 20).is_empty());
    assert_eq!(h.host.tcp().stats().retransmits, 1);
    assert_eq!(h.host.tcp().stats().fast_retransmits, 1);
}

/// With TSO off (the default) nothing changes: MSS-sized ordinary packets.
#[test]
fn without_tso_segments_are_ordinary() {
    let mut h = H::new(Config::default(), false);
    h.write(0, 10 * MSS);
    let out = h.drain();
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.meta, TxMeta::default());
        assert_eq!(check_data(&h, o), (i * MSS, MSS));
    }
    assert_eq!(h.host.tcp().stats().super_segments_out, 0);
}

/// Transmit checksum offload without TSO: every segment of the connection is an ordinary
/// packet whose checksum field holds the pseudo-header sum for the device to complete
/// (NEEDS_CSUM, gso_type NONE); completed as the kernel would, each is valid and carries
/// the right bytes. A RST for no connection keeps a complete checksum.
#[test]
fn checksum_offload_leaves_ordinary_segments_partial() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tx_checksum_offload(true);
    h.write(0, 4 * MSS);
    let out = h.drain();
    assert_eq!(out.len(), 4);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(
            o.meta,
            TxMeta {
                gso_size: 0,
                csum_partial: true
            }
        );
        assert_eq!(check_data(&h, o), (i * MSS, MSS));
    }
    // A segment for a port nobody listens on: the endpoint's own RST, checksum complete.
    let stray = Segment {
        src_port: PEER_PORT + 1,
        dst_port: 81,
        seq: SeqNum(7),
        flags: Flags::SYN,
        window: 1000,
        ..Segment::default()
    };
    h.inject(&stray, RxMeta::default());
    let rst = h.drain();
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].meta, TxMeta::default());
    assert!(rst[0].seg.flags.rst);
}

/// With checksum offload the payload is not copied into the packet buffer: the device
/// gathers the packet from the headers and the send buffer's pieces (two where the ring
/// wraps), and the gathered packet is a valid segment with the right bytes.
#[test]
fn gathered_packets_leave_the_payload_in_the_send_buffer() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tx_checksum_offload(true);
    h.write(0, 2 * MSS);
    assert_eq!(h.drain().len(), 2);
    // All but the last 100 bytes acknowledged: the ring (4 KiB so far) keeps its place,
    // and the next bytes written wrap around its end inside the first new segment.
    h.ack(2 * MSS - 100, &[], 65535);
    h.write(2 * MSS, 2 * MSS);
    let mut buf = Vec::new();
    let (mut sent, mut split) = (0, 0);
    while let Some((meta, [a, b])) = h.host.poll_transmit_gather(h.now, &mut buf) {
        let (a, b) = (a.to_vec(), b.to_vec());
        assert_eq!(buf.len(), 20 + 20, "the IP and TCP headers only");
        assert_eq!(a.len() + b.len(), MSS);
        split += usize::from(!b.is_empty());
        let mut packet = [&buf[..], &a, &b].concat();
        let out = decode(&mut packet, meta);
        assert_eq!(check_data(&h, &out), ((2 + sent) * MSS, MSS));
        sent += 1;
    }
    assert_eq!(sent, 2);
    assert_eq!(split, 1, "one segment spans the end of the ring");
}

/// When a whole super-segment goes unanswered, the timers resend single pieces, never a
/// super-segment: first the tail loss probe resends the last piece (RFC 8985 §7.3), then
/// the RTO the first (RFC 6298 (5.4)); go-back-N after it moves one MSS at a time as the
/// collapsed cwnd allows (RFC 5681 §3.1).
#[test]
fn timers_resend_single_pieces() {
    let mut h = H::new(Config::default(), false);
    h.host.set_tso(Some(65535));
    h.write(0, 10 * MSS);
    assert_eq!(h.drain().len(), 1);
    let mut resent = Vec::new();
    for _ in 0..300 {
        for o in h.advance(Duration::from_millis(10)) {
            resent.push(check_data(&h, &o));
            assert_eq!(o.meta, TxMeta::default(), "an ordinary packet");
        }
        if resent.len() >= 2 {
            break;
        }
    }
    assert_eq!(resent, [(9 * MSS, MSS), (0, MSS)], "probe, then RTO");
    // Go-back-N: the ACK of the first piece lets two more go (slow start), one by one.
    let out = h.ack(MSS, &[], 4 << 20);
    let got: Vec<_> = out.iter().map(|o| (check_data(&h, o), o.meta)).collect();
    assert_eq!(
        got,
        [
            ((MSS, MSS), TxMeta::default()),
            ((2 * MSS, MSS), TxMeta::default())
        ]
    );
}
