//! The TUN transmit path end to end: `Interface::poll_transmit_into` building full-MSS
//! data packets into reused buffers for a bulk send, with the ACKs that keep the window
//! open. `cargo bench --bench transmit`.
//!
//! A scripted peer does the handshake (MSS 1460, window scale 7, SACK, no timestamps)
//! and acknowledges each round of 40 segments' worth of data with one ACK; warm-up rounds
//! grow the congestion window past 40 segments first, so every measured round sends all
//! of it: 40 packets, or with TSO one 58 KiB super-segment (partial checksum: the device
//! completes it).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tunstack::ip::ipv4;
use tunstack::stack::Interface;
use tunstack::tcp::{Config, ConnId, Flags, Segment, SeqNum, TcpOptions};
use tunstack::time::Instant;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const THEM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const MSS: usize = 1460;
const ROUND: usize = 40;

struct Bulk {
    host: Interface,
    conn: ConnId,
    now: Instant,
    peer_seq: SeqNum,
    bufs: Vec<Vec<u8>>,
    data: Vec<u8>,
}

fn packet(seg: &Segment) -> Vec<u8> {
    ipv4::emit(THEM, US, ipv4::PROTO_TCP, 64, 1, &seg.emit(THEM, US))
}

fn ack_segment(seq: SeqNum, ack: u32) -> Segment {
    Segment {
        src_port: 40000,
        dst_port: 80,
        seq,
        ack: SeqNum(ack),
        flags: Flags::ACK,
        window: 65535,
        ..Segment::default()
    }
}

impl Bulk {
    fn new(tso: bool) -> Bulk {
        let config = Config {
            send_buffer: 1 << 20,
            ..Config::default()
        };
        let mut host = Interface::new(US, config, 7);
        let l = host.tcp_mut().listen(SocketAddrV4::new(US, 80), 8).unwrap();
        let now = Instant::from_secs(1);
        let syn = Segment {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(1000),
            flags: Flags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(MSS as u16),
                window_scale: Some(7),
                sack_permitted: true,
                ..TcpOptions::default()
            },
            ..Segment::default()
        };
        host.handle_packet(&packet(&syn), now);
        let synack = host.poll_transmit(now).expect("SYN-ACK");
        let iss = u32::from_be_bytes(synack[24..28].try_into().unwrap());
        let peer_seq = SeqNum(1001);
        host.handle_packet(&packet(&ack_segment(peer_seq, iss.wrapping_add(1))), now);
        let conn = host.tcp_mut().accept(l).expect("accepted");
        if tso {
            host.set_tso(Some(65535));
        }
        Bulk {
            host,
            conn,
            now,
            peer_seq,
            bufs: (0..ROUND * 2).map(|_| Vec::with_capacity(2048)).collect(),
            data: (0..ROUND * MSS).map(|i| i as u8).collect(),
        }
    }

    /// One round: the application writes 40 segments' worth, the host builds the packets
    /// into the reused buffers, the peer acknowledges everything with `acks` ACKs.
    /// Returns the payload bytes sent.
    fn round(&mut self, acks: usize) -> usize {
        let n = self
            .host
            .tcp_mut()
            .send(self.conn, &self.data, self.now)
            .unwrap();
        assert_eq!(n, self.data.len());
        let (mut packets, mut bytes) = (0, 0);
        let mut ends = Vec::new();
        while packets < self.bufs.len() {
            let buf = &mut self.bufs[packets];
            if self.host.poll_transmit_into(self.now, buf).is_none() {
                break;
            }
            let seq = u32::from_be_bytes(buf[24..28].try_into().unwrap());
            let hl = usize::from(buf[32] >> 4) * 4;
            let len = buf.len() - 20 - hl;
            ends.push(seq.wrapping_add(len as u32));
            bytes += len;
            packets += 1;
        }
        black_box(&self.bufs);
        let step = ends.len().div_ceil(acks.max(1)).max(1);
        for (i, end) in ends.iter().enumerate() {
            if (i + 1) % step == 0 || i + 1 == ends.len() {
                let ack = packet(&ack_segment(self.peer_seq, *end));
                self.host.handle_packet(&ack, self.now);
            }
        }
        bytes
    }

    /// Warm up: slow start with an ACK every second segment until cwnd is well past one
    /// round, then until the backlog written meanwhile has gone out.
    fn warm_up(&mut self) {
        for _ in 0..1000 {
            if self.host.tcp().cwnd(self.conn) as usize >= 3 * ROUND * MSS {
                break;
            }
            self.round(ROUND / 2);
        }
        for _ in 0..1000 {
            if self.round(ROUND / 2) == ROUND * MSS {
                break;
            }
        }
        assert_eq!(self.round(1), ROUND * MSS, "cwnd grew past one round");
    }
}

fn transmit(c: &mut Criterion) {
    let mut g = c.benchmark_group("transmit");
    g.throughput(Throughput::Elements(ROUND as u64));
    let mut bulk = Bulk::new(false);
    bulk.warm_up();
    g.bench_function(
        "iface: 40 × 1460 B data packets into reused buffers + 1 ACK",
        |b| b.iter(|| assert_eq!(bulk.round(1), ROUND * MSS)),
    );
    let mut bulk = Bulk::new(true);
    bulk.warm_up();
    g.bench_function(
        "iface TSO: 40 × 1460 B as one super-segment + 1 ACK",
        |b| b.iter(|| assert_eq!(bulk.round(1), ROUND * MSS)),
    );
    g.finish();
}

criterion_group!(benches, transmit);
criterion_main!(benches);
