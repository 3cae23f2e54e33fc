//! Two whole hosts (`stack::Interface`) back to back in virtual time, over the fault
//! injector of `link::fault` in each direction.
//!
//! ```text
//!   host A 10.0.0.1                 link::fault (seeded)              host B 10.0.0.2:80
//!   ┌──────────────┐ poll_transmit ┌─────────────────────────┐ handle_packet ┌──────────────┐
//!   │ Interface    │──────────────>│ loss, duplication,      │──────────────>│ Interface    │
//!   │  IP, frag,   │               │ reordering, delay +     │               │  IP, frag,   │
//!   │  ICMP, TCP   │<──────────────│ jitter, bit corruption  │<──────────────│  ICMP, TCP   │
//!   └──────────────┘ handle_packet └─────────────────────────┘ poll_transmit └──────────────┘
//! ```
//!
//! Unlike `tcp_simulation.rs` (which joins two `Tcp`s at the segment level), every packet
//! here is a real IPv4 packet: the IPv4 header checksum, the TCP checksum over the
//! pseudo-header, ICMP, and fragmentation + reassembly are all on the path. Besides a TCP
//! transfer each way, host A sends big pings (fragmented, since they exceed the MTU) and
//! counts the (fragmented) echo replies it gets back, reassembled by a tap.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tunstack::ip::frag::{FragConfig, FragResult, Reassembler};
use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::ip::{checksum, icmp};
use tunstack::link::fault::{FaultConfig, FaultInjector};
use tunstack::stack::Interface;
use tunstack::tcp::Config;
use tunstack::time::Instant;

mod sim;
use sim::BulkApp;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
const MTU: usize = 1500;
/// Size of the ICMP echo data in the big pings: 3 fragments at MTU 1500.
const PING_DATA: usize = 4000;

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// One host and its application: send `out`, read into `got`, close after sending.
struct Host {
    iface: Interface,
    app: BulkApp,
}

impl Host {
    fn new(addr: Ipv4Addr, seed: u64, out: Vec<u8>) -> Host {
        let config = Config {
            mss: u16::try_from(MTU - 40).unwrap(),
            ..Config::default()
        };
        let mut iface = Interface::new(addr, config, seed);
        iface.set_mtu(MTU);
        Host {
            iface,
            app: BulkApp::new(out),
        }
    }

    /// The application's turn; true if it did anything.
    fn app(&mut self, now: Instant) -> bool {
        self.app.step(&mut self.iface, now)
    }
}

/// An ICMP echo request from A to B with `PING_DATA` bytes, as IPv4 fragments.
fn big_ping(seq: u16) -> Vec<Vec<u8>> {
    let mut msg = vec![icmp::TYPE_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34];
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend((0..PING_DATA).map(|i| (i as u8).wrapping_mul(seq as u8 | 1)));
    let sum = checksum(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    // A host's own IP ids; far from the interface's so they cannot collide.
    ipv4::emit_fragments(A, B, ipv4::PROTO_ICMP, 64, 0x8000 | seq, &msg, MTU)
}

struct Outcome {
    virtual_time: Duration,
    pings_sent: u16,
    replies: usize,
    reassembled_at_b: u64,
}

/// Runs one transfer; panics with a description if it fails or exceeds `limit`.
fn run(seed: u64, faults: FaultConfig, bytes: usize, limit: Duration) -> Outcome {
    let mut a = Host::new(A, seed, payload(seed, bytes));
    let mut b = Host::new(B, seed ^ 0xb, payload(seed ^ 0xff, bytes));
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
    let mut tap = Reassembler::new(FragConfig::default());
    let mut replies = std::collections::BTreeSet::new();
    let mut pings_sent = 0u16;
    let mut next_ping = start;
    let mut idle_rounds = 0u32;
    loop {
        assert!(
            now - start <= limit,
            "seed {seed}: not done after {limit:?} of virtual time: A sent {}/{} got {}/{} eof {}, \
             B sent {}/{} got {}/{} eof {}; faults {:?} / {:?}; ip A {:?} B {:?}",
            a.app.sent,
            a.app.out.len(),
            a.app.got.len(),
            b.app.out.len(),
            a.app.eof,
            b.app.sent,
            b.app.out.len(),
            b.app.got.len(),
            a.app.out.len(),
            b.app.eof,
            links[0].stats(),
            links[1].stats(),
            a.iface.stats(),
            b.iface.stats(),
        );
        let mut progress = a.app(now) | b.app(now);
        if now >= next_ping && pings_sent < 20 {
            for f in big_ping(pings_sent) {
                links[0].push(f, now);
            }
            pings_sent += 1;
            next_ping = now + Duration::from_millis(100);
            progress = true;
        }
        for (i, host) in [&mut a, &mut b].into_iter().enumerate() {
            if host.iface.poll_at().is_some_and(|at| at <= now) {
                host.iface.handle_timeout(now);
            }
            while let Some(p) = host.iface.poll_transmit(now) {
                assert!(p.len() <= MTU, "host {i} sent {} bytes", p.len());
                links[i].push(p, now);
                progress = true;
            }
        }
        while let Some(p) = links[0].pop(now) {
            b.iface.handle_packet(&p, now);
            progress = true;
        }
        while let Some(p) = links[1].pop(now) {
            // The tap: reassemble echo replies addressed to A.
            if let Ok(ip) = Ipv4Packet::parse_with_fragments(&p) {
                if ip.protocol == ipv4::PROTO_ICMP {
                    if let FragResult::Complete(whole) = tap.insert(&ip, now) {
                        let w = Ipv4Packet::parse(&whole).unwrap();
                        let m = w.payload;
                        if m.first() == Some(&icmp::TYPE_ECHO_REPLY)
                            && m.len() == 8 + PING_DATA
                            && checksum(m) == 0
                        {
                            replies.insert(u16::from_be_bytes([m[6], m[7]]));
                        }
                    }
                }
            }
            a.iface.handle_packet(&p, now);
            progress = true;
        }
        if progress {
            idle_rounds = 0;
            continue;
        }
        // Quiescent at `now`: finished if everything was delivered and nothing is in flight.
        let done = a.app.eof
            && b.app.eof
            && a.app.shut
            && b.app.shut
            && pings_sent == 20
            && links.iter().all(|l| l.in_flight() == 0);
        if done {
            break;
        }
        idle_rounds += 1;
        let next = [
            links[0].poll_at(),
            links[1].poll_at(),
            a.iface.poll_at(),
            b.iface.poll_at(),
            (pings_sent < 20).then_some(next_ping),
        ]
        .into_iter()
        .flatten()
        .min();
        now = match next {
            Some(at) if at > now => at,
            // A timer at or before now that did nothing: nudge time forward.
            Some(_) => now + Duration::from_millis(1),
            None => panic!("seed {seed}: deadlock: nothing scheduled and not done"),
        };
        assert!(idle_rounds < 1_000_000);
    }
    assert_eq!(
        a.app.got.len(),
        b.app.out.len(),
        "seed {seed}: B → A length"
    );
    assert!(a.app.got == b.app.out, "seed {seed}: B → A bytes differ");
    assert_eq!(
        b.app.got.len(),
        a.app.out.len(),
        "seed {seed}: A → B length"
    );
    assert!(b.app.got == a.app.out, "seed {seed}: A → B bytes differ");
    Outcome {
        virtual_time: now - start,
        pings_sent,
        replies: replies.len(),
        reassembled_at_b: b.iface.stats().frag.reassembled,
    }
}

fn faults(loss: f64, dup: f64, reorder: f64, corrupt: f64, jitter_ms: u64) -> FaultConfig {
    FaultConfig {
        loss,
        duplicate: dup,
        reorder,
        corrupt,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(jitter_ms),
        ..FaultConfig::default()
    }
}

#[test]
fn clean_link_every_ping_answered() {
    let o = run(
        1,
        faults(0.0, 0.0, 0.0, 0.0, 0),
        1 << 20,
        Duration::from_secs(30),
    );
    assert_eq!(o.pings_sent, 20);
    assert_eq!(o.replies, 20, "every fragmented ping answered");
    assert_eq!(o.reassembled_at_b, 20);
    eprintln!("clean: 1 MiB each way in {:?} virtual", o.virtual_time);
}

#[test]
fn four_mib_each_way_over_every_fault() {
    let o = run(
        2,
        faults(0.05, 0.02, 0.05, 0.02, 3),
        4 << 20,
        Duration::from_secs(1200),
    );
    // With 5 % loss a 3-fragment ping and its 3-fragment reply both survive with
    // probability 0.95^6 ≈ 0.74; at least some must have made it.
    assert!(o.replies >= 5, "only {} of 20 pings answered", o.replies);
    eprintln!(
        "4 MiB each way, 5 % loss + dup + reorder + corrupt: {:?} virtual, {} pings answered",
        o.virtual_time, o.replies
    );
}

#[test]
fn many_seeds_loss_zero_to_twenty_percent() {
    for seed in 0..16u64 {
        let loss = (seed % 5) as f64 * 0.05; // 0, 5, 10, 15, 20 %
        let f = faults(loss, 0.01 * (seed % 3) as f64, 0.02, 0.01, seed % 4);
        let o = run(seed + 100, f, 512 * 1024, Duration::from_secs(3600));
        eprintln!(
            "seed {seed}: loss {:.0} %: {:?} virtual, {} of {} pings answered",
            loss * 100.0,
            o.virtual_time,
            o.replies,
            o.pings_sent
        );
    }
}
