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
                sack_permitted: true,
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
        assert!(meta.gso_size > 0, "csum_partial only with a super-segment");
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
    Out { seg }
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
        (&b"hello"[..], SocketAddrV4::new(THEM, 5000))
    );
}
