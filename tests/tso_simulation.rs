//! Two whole hosts (`stack::Interface`) with TSO on, back to back in virtual time, over a
//! link that does what the kernel does with a super-segment — cut it into MSS-sized
//! packets with complete checksums — and then loses, reorders and duplicates those
//! packets (`link::fault`, seeded).
//!
//! ```text
//!   host A 10.0.0.1    poll_transmit_into    split (gso_size)    link::fault    host B
//!   ┌──────────────┐  ── super-segment ──▶  ── MTU packets ──▶  loss, reorder ─▶ handle_packet
//!   │ Interface    │◀──────────────── the same the other way ──────────────────  │
//!   └──────────────┘
//! ```
//!
//! Every piece the receiver gets is verified as usual (IPv4 header and TCP checksums), so
//! the splitter proves the super-segments were well formed (a partial checksum holding the
//! pseudo-header sum over the whole length, as Linux expects), and the transfer each way
//! must arrive byte exact.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::link::fault::{FaultConfig, FaultInjector};
use tunstack::link::offload::TxMeta;
use tunstack::stack::Interface;
use tunstack::tcp::Config;
use tunstack::time::Instant;

mod sim;
use sim::BulkApp;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
const MTU: usize = 1500;

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Cut a TCP/IPv4 super-segment into packets of at most `gso_size` payload bytes, as
/// Linux's `tcp_gso_segment` does: every piece repeats the IP and TCP headers (options
/// included) with its own sequence number, IP id, total length and checksums; FIN and
/// PSH stay on the last piece only, CWR on the first only. Asserts that the super-segment's
/// checksum field holds the folded pseudo-header sum over its whole TCP length.
fn split(packet: &[u8], gso_size: usize) -> Vec<Vec<u8>> {
    let ip = Ipv4Packet::parse(packet).expect("a valid IPv4 header");
    let hl = ip.header_len;
    let tcp = ip.payload;
    let thl = usize::from(tcp[12] >> 4) * 4;
    let tcp_len = u16::try_from(tcp.len()).unwrap();
    let pseudo = !ipv4::checksum_with(ipv4::pseudo_header_sum(ip.src, ip.dst, 6, tcp_len), &[]);
    assert_eq!(
        u16::from_be_bytes([tcp[16], tcp[17]]),
        pseudo,
        "partial checksum"
    );
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let data = &tcp[thl..];
    let pieces = data.len().div_ceil(gso_size);
    let mut out = Vec::with_capacity(pieces);
    for (i, chunk) in data.chunks(gso_size).enumerate() {
        let mut p = Vec::with_capacity(hl + thl + chunk.len());
        p.extend_from_slice(&packet[..hl]);
        p.extend_from_slice(&tcp[..thl]);
        p.extend_from_slice(chunk);
        let total = u16::try_from(p.len()).unwrap();
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let id = ip.id.wrapping_add(i as u16);
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[10..12].fill(0);
        let sum = ipv4::checksum(&p[..hl]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        let t = &mut p[hl..];
        let s = seq.wrapping_add((i * gso_size) as u32);
        t[4..8].copy_from_slice(&s.to_be_bytes());
        if i + 1 < pieces {
            t[13] &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            t[13] &= !0x80; // CWR
        }
        t[16..18].fill(0);
        let len = u16::try_from(t.len()).unwrap();
        let sum = ipv4::checksum_with(ipv4::pseudo_header_sum(ip.src, ip.dst, 6, len), t);
        t[16..18].copy_from_slice(&sum.to_be_bytes());
        out.push(p);
    }
    out
}

/// One host and its application: send `out`, read into `got`, close after sending.
struct Host {
    iface: Interface,
    app: BulkApp,
    /// Super-segments sent, and the wire packets they became.
    supers: u64,
    pieces: u64,
    /// The most pieces one super-segment became.
    largest: usize,
    /// IP ids of every packet put on the wire (fewer than 65536 per run: all distinct).
    ids: std::collections::HashSet<u16>,
}

impl Host {
    fn new(addr: Ipv4Addr, seed: u64, out: Vec<u8>) -> Host {
        let config = Config {
            mss: u16::try_from(MTU - 40).unwrap(),
            ..Config::default()
        };
        let mut iface = Interface::new(addr, config, seed);
        iface.set_mtu(MTU);
        iface.set_tso(Some(65535));
        Host {
            iface,
            app: BulkApp::new(out),
            supers: 0,
            pieces: 0,
            largest: 0,
            ids: std::collections::HashSet::new(),
        }
    }

    /// The application's turn; true if it did anything.
    fn app(&mut self, now: Instant) -> bool {
        self.app.step(&mut self.iface, now)
    }

    /// The pieces of a super-segment take consecutive IP ids: no later packet reuses one.
    fn note_id(&mut self, packet: &[u8]) {
        let id = u16::from_be_bytes([packet[4], packet[5]]);
        assert!(self.ids.insert(id), "IP id {id} used twice");
    }

    /// Everything the host sends now, cut to wire packets and put on `link`.
    fn transmit(&mut self, link: &mut FaultInjector, now: Instant, buf: &mut Vec<u8>) -> bool {
        let mut progress = false;
        while let Some(meta) = self.iface.poll_transmit_into(now, buf) {
            progress = true;
            if meta.gso_size == 0 {
                assert_eq!(meta, TxMeta::default());
                assert!(
                    buf.len() <= MTU,
                    "an ordinary packet of {} bytes",
                    buf.len()
                );
                link.push(buf.clone(), now);
                continue;
            }
            assert!(meta.csum_partial);
            self.supers += 1;
            let pieces = split(buf, usize::from(meta.gso_size));
            assert!(
                pieces.len() >= 2,
                "a super-segment is more than one segment"
            );
            self.largest = self.largest.max(pieces.len());
            for p in pieces {
                assert!(p.len() <= MTU, "a piece of {} bytes", p.len());
                self.note_id(&p);
                self.pieces += 1;
                link.push(p, now);
            }
        }
        progress
    }
}

struct Outcome {
    virtual_time: Duration,
    supers: u64,
    pieces: u64,
    largest: usize,
}

/// Runs one transfer of `bytes` each way; panics if it fails or exceeds `limit`.
fn run(seed: u64, faults: FaultConfig, bytes: usize, limit: Duration) -> Outcome {
    let mut a = Host::new(A, seed, payload(seed, bytes));
    let mut b = Host::new(B, seed ^ 0xb, payload(seed ^ 0xff, bytes / 2));
    b.app.listener = Some(
        b.iface
            .tcp_mut()
            .listen(SocketAddrV4::new(B, PORT), 8)
            .unwrap(),
    );
    let start = Instant::from_millis(1_000);
    let mut now = start;
    a.app.conn = Some(
        a.iface
            .tcp_mut()
            .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, PORT), now)
            .unwrap(),
    );
    // links[0]: A → B, links[1]: B → A.
    let mut links = [
        FaultInjector::new(faults.clone(), seed.wrapping_mul(31)),
        FaultInjector::new(faults.clone(), seed.wrapping_mul(37) + 1),
    ];
    let mut buf = Vec::new();
    loop {
        assert!(
            now - start <= limit,
            "seed {seed}: not done after {limit:?}: A sent {}/{} got {}/{}, B sent {}/{} got {}/{}",
            a.app.sent,
            a.app.out.len(),
            a.app.got.len(),
            b.app.out.len(),
            b.app.sent,
            b.app.out.len(),
            b.app.got.len(),
            a.app.out.len(),
        );
        let mut progress = a.app(now) | b.app(now);
        let [ab, ba] = &mut links;
        for (host, link) in [(&mut a, ab), (&mut b, ba)] {
            if host.iface.poll_at().is_some_and(|at| at <= now) {
                host.iface.handle_timeout(now);
            }
            progress |= host.transmit(link, now, &mut buf);
        }
        while let Some(p) = links[0].pop(now) {
            b.iface.handle_packet(&p, now);
            progress = true;
        }
        while let Some(p) = links[1].pop(now) {
            a.iface.handle_packet(&p, now);
            progress = true;
        }
        if progress {
            continue;
        }
        if a.app.eof
            && b.app.eof
            && a.app.shut
            && b.app.shut
            && links.iter().all(|l| l.in_flight() == 0)
        {
            break;
        }
        let next = [
            links[0].poll_at(),
            links[1].poll_at(),
            a.iface.poll_at(),
            b.iface.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        now = match next {
            Some(at) if at > now => at,
            Some(_) => now + Duration::from_millis(1),
            None => panic!("seed {seed}: deadlock: nothing scheduled and not done"),
        };
    }
    assert!(a.app.got == b.app.out, "seed {seed}: B → A bytes differ");
    assert!(b.app.got == a.app.out, "seed {seed}: A → B bytes differ");
    for h in [&a, &b] {
        // No corrupt or malformed packet reached either host.
        assert_eq!(h.iface.stats().drops.get("tcp-malformed"), None);
    }
    Outcome {
        virtual_time: now - start,
        supers: a.supers + b.supers,
        pieces: a.pieces + b.pieces,
        largest: a.largest.max(b.largest),
    }
}

fn faults(loss: f64, dup: f64, reorder: f64) -> FaultConfig {
    FaultConfig {
        loss,
        duplicate: dup,
        reorder,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        ..FaultConfig::default()
    }
}

#[test]
fn clean_link_carries_super_segments() {
    let o = run(1, faults(0.0, 0.0, 0.0), 4 << 20, Duration::from_secs(60));
    assert!(o.supers > 0, "super-segments were sent");
    // The initial window (10 segments, RFC 6928) leaves as one super-segment at least.
    assert!(
        o.largest >= 10,
        "largest super-segment: {} pieces",
        o.largest
    );
    eprintln!(
        "clean: 4 MiB + 2 MiB in {:?} virtual, {} super-segments → {} packets (largest {})",
        o.virtual_time, o.supers, o.pieces, o.largest
    );
}

#[test]
fn lossy_link_byte_exact_over_many_seeds() {
    for seed in 0..12u64 {
        let loss = [0.01, 0.03, 0.05][(seed % 3) as usize];
        let o = run(
            seed + 10,
            faults(loss, 0.01, 0.02),
            1 << 20,
            Duration::from_secs(1200),
        );
        assert!(o.supers > 0);
        eprintln!(
            "seed {seed}: loss {:.0} %: {:?} virtual, {} super-segments → {} packets",
            loss * 100.0,
            o.virtual_time,
            o.supers,
            o.pieces
        );
    }
}
