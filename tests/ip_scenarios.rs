//! Host-level scenarios for the internet layer, in virtual time: fragment reassembly and
//! outgoing fragmentation through `stack::Interface`, and ICMP errors about our own TCP
//! connections (RFC 1122 §4.2.3.9, RFC 5927, RFC 1191, RFC 6633).
//!
//! Host A (10.0.0.1) is the one under test; B (10.0.0.2) is a second `Interface` used
//! as the peer; a router at 10.0.0.254 is played by hand-built ICMP messages.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::ip::checksum;
use tunstack::ip::frag::{FragConfig, FragResult, Reassembler};
use tunstack::ip::icmp::{self, ErrorKind};
use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::stack::Interface;
use tunstack::tcp::{Config, ConnId, Segment, State, TcpError};
use tunstack::time::Instant;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn drain(host: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| host.poll_transmit(now)).collect()
}

/// Moves packets between the two hosts until both are quiet.
fn exchange(a: &mut Interface, b: &mut Interface, now: Instant) {
    loop {
        let from_a = drain(a, now);
        let from_b = drain(b, now);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for p in from_a {
            b.handle_packet(&p, now);
        }
        for p in from_b {
            a.handle_packet(&p, now);
        }
    }
}

/// A connected to B:80, handshake done.
fn connected() -> (Interface, Interface, ConnId) {
    let mut a = Interface::new(A, Config::default(), 1);
    let mut b = Interface::new(B, Config::default(), 2);
    b.tcp_mut().listen(SocketAddrV4::new(B, 80), 4).unwrap();
    let id = a
        .tcp_mut()
        .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), t(0))
        .unwrap();
    exchange(&mut a, &mut b, t(0));
    assert_eq!(a.tcp().state(id), State::Established);
    // These tests look at each small write's segment: no Nagle holding them back.
    a.tcp_mut().set_nodelay(id, true);
    (a, b, id)
}

/// The router's ICMP error about `original` (one of A's packets), to A.
fn router_error(message: Vec<u8>) -> Vec<u8> {
    ipv4::emit(ROUTER, A, ipv4::PROTO_ICMP, 64, 77, &message)
}

/// A's next data packet (sent, not delivered).
fn data_packet(a: &mut Interface, id: ConnId, len: usize, now: Instant) -> Vec<u8> {
    a.tcp_mut().send(id, &vec![0x42; len], now).unwrap();
    let pkts = drain(a, now);
    pkts.into_iter()
        .find(|p| Ipv4Packet::parse(p).unwrap().payload.len() > 20)
        .expect("a data segment")
}

fn icmp_count(host: &Interface, key: &str) -> u64 {
    host.stats().icmp_errors.get(key).copied().unwrap_or(0)
}

fn echo_request(seq: u16, data_len: usize) -> Vec<u8> {
    let mut m = vec![icmp::TYPE_ECHO_REQUEST, 0, 0, 0, 0, 7];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..data_len).map(|i| (i % 251) as u8));
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

// ---------------------------------------------------------------------------------------
// Fragmentation.

#[test]
fn fragmented_ping_is_answered_with_fragments() {
    // `ping -s 4000` at MTU 1500: the kernel sends 3 fragments, in any order.
    let mut a = Interface::new(A, Config::default(), 1);
    let request = echo_request(1, 4000);
    let mut frags = ipv4::emit_fragments(B, A, ipv4::PROTO_ICMP, 64, 500, &request, 1500);
    assert_eq!(frags.len(), 3);
    frags.swap(0, 2);
    for f in &frags {
        a.handle_packet(f, t(0));
    }
    let out = drain(&mut a, t(0));
    assert_eq!(
        out.len(),
        3,
        "a 4028-byte reply needs 3 fragments at MTU 1500"
    );
    let mut r = Reassembler::new(FragConfig::default());
    let mut reply = None;
    for p in &out {
        assert!(p.len() <= 1500);
        let ip = Ipv4Packet::parse_with_fragments(p).unwrap();
        assert!(ip.is_fragment() && !ip.dont_fragment());
        if let FragResult::Complete(w) = r.insert(&ip, t(0)) {
            reply = Some(w);
        }
    }
    let reply = reply.expect("the reply reassembles");
    let ip = Ipv4Packet::parse(&reply).unwrap();
    assert_eq!((ip.src, ip.dst), (A, B));
    assert_eq!(ip.payload[0], icmp::TYPE_ECHO_REPLY);
    assert_eq!(&ip.payload[4..], &request[4..]);
    assert_eq!(checksum(ip.payload), 0);
    let s = a.stats();
    assert_eq!(s.frag.reassembled, 1);
    assert_eq!(s.echo_replies, 1);
    assert_eq!(s.datagrams_fragmented, 1);
}

#[test]
fn small_mtu_fragments_replies_smaller() {
    let mut a = Interface::new(A, Config::default(), 1);
    a.set_mtu(576);
    a.handle_packet(
        &ipv4::emit(B, A, ipv4::PROTO_ICMP, 64, 1, &echo_request(2, 1000)),
        t(0),
    );
    let out = drain(&mut a, t(0));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|p| p.len() <= 576));
}

#[test]
fn fragmented_tcp_segment_reaches_tcp() {
    // B's SYN cut into two fragments (as a router with a tiny MTU would): the listener
    // still answers SYN-ACK.
    let mut a = Interface::new(A, Config::default(), 1);
    a.tcp_mut().listen(SocketAddrV4::new(A, 80), 4).unwrap();
    let syn = Segment {
        src_port: 40000,
        dst_port: 80,
        seq: tunstack::tcp::SeqNum(1000),
        flags: tunstack::tcp::Flags::SYN,
        window: 65535,
        ..Segment::default()
    };
    let bytes = syn.emit(B, A);
    let frags = ipv4::emit_fragments(B, A, ipv4::PROTO_TCP, 64, 9, &bytes, 28 + 8);
    assert!(frags.len() >= 2);
    for f in frags.iter().rev() {
        a.handle_packet(f, t(0));
    }
    let out = drain(&mut a, t(0));
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::parse(&out[0]).unwrap();
    let seg = Segment::parse(ip.src, ip.dst, ip.payload).unwrap();
    assert!(seg.flags.syn && seg.flags.ack);
}

#[test]
fn reassembly_timeout_sends_time_exceeded_once() {
    let mut a = Interface::new(A, Config::default(), 1);
    let request = echo_request(3, 3000);
    let frags = ipv4::emit_fragments(B, A, ipv4::PROTO_ICMP, 64, 600, &request, 1500);
    a.handle_packet(&frags[0], t(0));
    a.handle_packet(&frags[1], t(100));
    // Another datagram whose first fragment never arrives: no ICMP for it (RFC 792).
    let other = ipv4::emit_fragments(B, A, ipv4::PROTO_ICMP, 64, 601, &request, 1500);
    a.handle_packet(&other[1], t(200));
    assert!(drain(&mut a, t(200)).is_empty());
    let deadline = a.poll_at().expect("the reassembly timer");
    assert_eq!(deadline, t(0) + Duration::from_secs(30));
    a.handle_timeout(deadline);
    let out = drain(&mut a, deadline);
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::parse(&out[0]).unwrap();
    assert_eq!((ip.src, ip.dst, ip.protocol), (A, B, ipv4::PROTO_ICMP));
    assert_eq!(&ip.payload[..2], &[icmp::TYPE_TIME_EXCEEDED, 1]);
    assert_eq!(checksum(ip.payload), 0);
    // It quotes the first fragment's header + 8 bytes.
    assert_eq!(&ip.payload[8..], &frags[0][..28]);
    // The second datagram times out silently; then no timers are left.
    a.handle_timeout(t(200) + Duration::from_secs(30));
    assert!(drain(&mut a, t(200) + Duration::from_secs(30)).is_empty());
    assert_eq!(a.stats().frag.timeouts, 2);
    assert_eq!(a.stats().time_exceeded_sent, 1);
    assert_eq!(a.poll_at(), None);
    // A late fragment after the timeout does not resurrect the datagram.
    a.handle_packet(&frags[2], t(40_000));
    assert!(drain(&mut a, t(40_000)).is_empty());
}

#[test]
fn overlapping_fragments_are_dropped_and_counted() {
    let mut a = Interface::new(A, Config::default(), 1);
    let request = echo_request(4, 3000);
    let frags = ipv4::emit_fragments(B, A, ipv4::PROTO_ICMP, 64, 700, &request, 1500);
    // A forged fragment overlapping the second one, with other bytes (a teardrop).
    let forged = ipv4::emit_fragments(B, A, ipv4::PROTO_ICMP, 64, 700, &request, 1004);
    a.handle_packet(&frags[0], t(0));
    a.handle_packet(&forged[1], t(0));
    for f in &frags[1..] {
        a.handle_packet(f, t(0));
    }
    assert!(
        drain(&mut a, t(0)).is_empty(),
        "no reply to a torn datagram"
    );
    assert_eq!(a.stats().frag.overlaps, 1);
    assert_eq!(a.stats().drops.get("frag-overlap"), Some(&1));
}

// ---------------------------------------------------------------------------------------
// ICMP errors about our connections.

#[test]
fn fragmentation_needed_lowers_mss_and_resends_smaller() {
    let (mut a, _b, id) = connected();
    // 1500 − 40 bytes of headers − 12 of timestamps (negotiated by default).
    assert_eq!(a.tcp().send_mss(id), 1448);
    let pkt = data_packet(&mut a, id, 4000, t(10));
    let err = router_error(icmp::fragmentation_needed(1280, &pkt));
    a.handle_packet(&err, t(11));
    assert_eq!(a.tcp().send_mss(id), 1228);
    assert_eq!(icmp_count(&a, "icmp-mss-lowered"), 1);
    // RFC 1191 §6.5: the lost data goes out again at once, in smaller segments.
    let resent = drain(&mut a, t(11));
    assert!(!resent.is_empty());
    for p in &resent {
        assert!(p.len() <= 1280, "{} bytes after PMTU 1280", p.len());
    }
    // A larger MTU later is no news; an absurdly small one is clamped (RFC 5927 §7).
    let pkt = data_packet(&mut a, id, 100, t(12));
    a.handle_packet(&router_error(icmp::fragmentation_needed(1400, &pkt)), t(12));
    assert_eq!(a.tcp().send_mss(id), 1228);
    a.handle_packet(&router_error(icmp::fragmentation_needed(68, &pkt)), t(12));
    assert_eq!(a.tcp().send_mss(id), 552 - 40 - 12);
    assert_eq!(a.tcp().state(id), State::Established);
}

#[test]
fn icmp_with_sequence_outside_the_window_is_ignored() {
    let (mut a, _b, id) = connected();
    let mut pkt = data_packet(&mut a, id, 1000, t(10));
    // Forge the quoted sequence number (TCP bytes 4..8 after the 20-byte IP header).
    let seq = u32::from_be_bytes(pkt[24..28].try_into().unwrap());
    pkt[24..28].copy_from_slice(&seq.wrapping_add(1_000_000).to_be_bytes());
    a.handle_packet(&router_error(icmp::fragmentation_needed(576, &pkt)), t(11));
    a.handle_packet(&router_error(icmp::dest_unreachable(1, &pkt)), t(11));
    assert_eq!(a.tcp().send_mss(id), 1448);
    assert_eq!(a.tcp().soft_error(id), None);
    assert_eq!(icmp_count(&a, "icmp-out-of-window"), 2);
    // Already acknowledged data (below SND.UNA) is as stale.
    pkt[24..28].copy_from_slice(&seq.wrapping_sub(1).to_be_bytes());
    a.handle_packet(&router_error(icmp::dest_unreachable(3, &pkt)), t(11));
    assert_eq!(a.tcp().state(id), State::Established);
    assert_eq!(icmp_count(&a, "icmp-out-of-window"), 3);
}

#[test]
fn port_unreachable_in_syn_sent_refuses_the_connection() {
    let mut a = Interface::new(A, Config::default(), 1);
    let id = a
        .tcp_mut()
        .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 9), t(0))
        .unwrap();
    let syn = drain(&mut a, t(0)).pop().unwrap();
    // B answers with ICMP port unreachable (a host that does not speak TCP on 9).
    let err = ipv4::emit(
        B,
        A,
        ipv4::PROTO_ICMP,
        64,
        1,
        &icmp::dest_unreachable(icmp::CODE_PORT_UNREACHABLE, &syn),
    );
    a.handle_packet(&err, t(5));
    assert_eq!(a.tcp().state(id), State::Closed);
    assert_eq!(a.tcp().error(id), Some(TcpError::ConnectionRefused));
    assert_eq!(icmp_count(&a, "icmp-aborted"), 1);
}

#[test]
fn hard_error_when_established_is_only_recorded() {
    let (mut a, _b, id) = connected();
    let pkt = data_packet(&mut a, id, 100, t(10));
    a.handle_packet(
        &router_error(icmp::dest_unreachable(icmp::CODE_PORT_UNREACHABLE, &pkt)),
        t(11),
    );
    assert_eq!(a.tcp().state(id), State::Established);
    assert_eq!(a.tcp().error(id), None);
    assert_eq!(
        a.tcp().soft_error(id),
        Some(ErrorKind::DestUnreachable { code: 3 })
    );
    // Host unreachable (soft) in SYN-SENT does not abort either: the SYN is retried.
    let id2 = a
        .tcp_mut()
        .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 81), t(20))
        .unwrap();
    let syn = drain(&mut a, t(20))
        .into_iter()
        .find(|p| {
            let ip = Ipv4Packet::parse(p).unwrap();
            Segment::parse(ip.src, ip.dst, ip.payload)
                .unwrap()
                .flags
                .syn
        })
        .unwrap();
    a.handle_packet(&router_error(icmp::dest_unreachable(1, &syn)), t(21));
    assert_eq!(a.tcp().state(id2), State::SynSent);
    assert_eq!(
        a.tcp().soft_error(id2),
        Some(ErrorKind::DestUnreachable { code: 1 })
    );
}

#[test]
fn source_quench_is_ignored() {
    let (mut a, _b, id) = connected();
    let pkt = data_packet(&mut a, id, 100, t(10));
    let mut quench = vec![icmp::TYPE_SOURCE_QUENCH, 0, 0, 0, 0, 0, 0, 0];
    quench.extend_from_slice(&pkt[..28]);
    let sum = checksum(&quench);
    quench[2..4].copy_from_slice(&sum.to_be_bytes());
    let cwnd = a.tcp().cwnd(id);
    a.handle_packet(&router_error(quench), t(11));
    assert_eq!(a.tcp().cwnd(id), cwnd);
    assert_eq!(a.tcp().soft_error(id), None);
    assert_eq!(icmp_count(&a, "icmp-ignored"), 1);
}

#[test]
fn icmp_errors_about_nothing_of_ours() {
    let (mut a, _b, id) = connected();
    let pkt = data_packet(&mut a, id, 100, t(10));
    // Quoting another port: no connection.
    let mut other = pkt.clone();
    other[20..22].copy_from_slice(&1u16.to_be_bytes());
    a.handle_packet(&router_error(icmp::dest_unreachable(3, &other)), t(11));
    assert_eq!(icmp_count(&a, "icmp-no-connection"), 1);
    // Quoting a datagram some other host sent: not ours at all.
    let foreign = ipv4::emit(ROUTER, B, ipv4::PROTO_TCP, 64, 1, &pkt[20..]);
    a.handle_packet(&router_error(icmp::dest_unreachable(3, &foreign)), t(11));
    assert_eq!(icmp_count(&a, "icmp-not-ours"), 1);
    // A quote too short to hold the TCP ports and sequence number.
    a.handle_packet(&router_error(icmp::dest_unreachable(3, &pkt[..24])), t(11));
    assert_eq!(icmp_count(&a, "icmp-quote-malformed"), 1);
    assert_eq!(a.tcp().state(id), State::Established);
    assert_eq!(a.tcp().soft_error(id), None);
}

// ---------------------------------------------------------------------------------------
// What probing tools see: TTL, echo codes, LAND, ICMP error rate, IP ids.

/// B's bare SYN to A:80 with the given TTL and source.
fn syn_packet(src: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let syn = Segment {
        src_port: 40_000,
        dst_port: 80,
        seq: tunstack::tcp::SeqNum(1000),
        flags: tunstack::tcp::Flags::SYN,
        window: 1024,
        ..Segment::default()
    };
    ipv4::emit(src, A, ipv4::PROTO_TCP, ttl, 1, &syn.emit(src, A))
}

/// The TCP segments in `packets`, parsed.
fn tcp_replies(packets: &[Vec<u8>]) -> Vec<Segment> {
    packets
        .iter()
        .filter_map(|p| Ipv4Packet::parse(p).ok())
        .filter(|ip| ip.protocol == ipv4::PROTO_TCP)
        .map(|ip| Segment::parse(ip.src, ip.dst, ip.payload).unwrap())
        .collect()
}

#[test]
fn datagrams_with_ttl_zero_or_one_are_accepted() {
    // `hping3 -S -p 80 -t 0`: RFC 1122 §3.2.1.7, a host must not discard a datagram for a
    // TTL below 2 (only a router would).
    let mut a = Interface::new(A, Config::default(), 1);
    a.tcp_mut().listen(SocketAddrV4::new(A, 80), 4).unwrap();
    for ttl in [0, 1] {
        a.handle_packet(&syn_packet(B, ttl), t(0));
        let replies = tcp_replies(&drain(&mut a, t(0)));
        assert!(
            replies.iter().any(|s| s.flags.syn && s.flags.ack),
            "TTL {ttl}: SYN-ACK expected, got {replies:?}"
        );
    }
    assert_eq!(a.stats().dropped(), 0, "{:?}", a.stats().drops);
    // A ping with TTL 1 is answered too.
    a.handle_packet(
        &ipv4::emit(B, A, ipv4::PROTO_ICMP, 1, 9, &echo_request(1, 8)),
        t(0),
    );
    let out = drain(&mut a, t(0));
    let reply = Ipv4Packet::parse(&out[0]).unwrap();
    assert_eq!(reply.payload[0], icmp::TYPE_ECHO_REPLY);
    assert_eq!(reply.ttl, 64);
}

#[test]
fn echo_request_with_nonzero_code_is_answered() {
    // RFC 1122 §3.2.2.6; nmap's OS detection sends code 9.
    let mut a = Interface::new(A, Config::default(), 1);
    let mut request = echo_request(3, 32);
    request[1] = 9;
    request[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    a.handle_packet(&ipv4::emit(B, A, ipv4::PROTO_ICMP, 64, 9, &request), t(0));
    let out = drain(&mut a, t(0));
    assert_eq!(out.len(), 1, "one echo reply");
    let reply = Ipv4Packet::parse(&out[0]).unwrap();
    assert_eq!((reply.payload[0], reply.payload[1]), (0, 9));
    assert_eq!(&reply.payload[4..], &request[4..]);
    assert_eq!(a.stats().echo_replies, 1);
}

#[test]
fn land_datagrams_from_our_own_address_are_dropped() {
    // The LAND attack: a SYN from A:80 to A:80. No SYN-ACK to ourselves, counted.
    let mut a = Interface::new(A, Config::default(), 1);
    a.tcp_mut().listen(SocketAddrV4::new(A, 80), 4).unwrap();
    a.handle_packet(&syn_packet(A, 64), t(0));
    a.handle_packet(
        &ipv4::emit(A, A, ipv4::PROTO_ICMP, 64, 9, &echo_request(1, 8)),
        t(0),
    );
    assert!(drain(&mut a, t(0)).is_empty());
    assert_eq!(a.stats().drops.get("land"), Some(&2));
    assert_eq!(a.tcp().stats().segments_in, 0);
    assert_eq!(a.stats().echo_replies, 0);
}

/// A UDP datagram from `src` to A's closed port 9.
fn udp_probe(src: Ipv4Addr) -> Vec<u8> {
    let udp = tunstack::udp::datagram::emit(src, A, 5000, 9, b"probe");
    ipv4::emit(src, A, ipv4::PROTO_UDP, 64, 1, &udp)
}

fn port_unreachables(packets: &[Vec<u8>]) -> usize {
    packets
        .iter()
        .filter_map(|p| Ipv4Packet::parse(p).ok())
        .filter(|ip| {
            ip.protocol == ipv4::PROTO_ICMP
                && ip.payload.first() == Some(&icmp::TYPE_DEST_UNREACHABLE)
                && ip.payload.get(1) == Some(&icmp::CODE_PORT_UNREACHABLE)
        })
        .count()
}

#[test]
fn icmp_errors_are_rate_limited_per_destination() {
    // 20,000 probes to a closed UDP port within 2 s (as `hping3 --udp --flood` would):
    // 6 at once (the burst), then one per second, as Linux with its defaults.
    let mut a = Interface::new(A, Config::default(), 1);
    let mut sent = 0;
    for i in 0..20_000u64 {
        let now = t(i / 10);
        a.handle_packet(&udp_probe(B), now);
        sent += port_unreachables(&drain(&mut a, now));
    }
    assert_eq!(sent, 6 + 1, "burst of 6, then 1 at t=1s");
    let s = a.stats();
    assert_eq!(s.icmp_rate_limited_host, 20_000 - 7);
    assert_eq!(s.icmp_rate_limited_global, 0);
    // Another host still gets its errors: the limit is per destination.
    let c = Ipv4Addr::new(10, 0, 0, 3);
    a.handle_packet(&udp_probe(c), t(2000));
    assert_eq!(port_unreachables(&drain(&mut a, t(2000))), 1);
}

#[test]
fn icmp_errors_are_rate_limited_globally() {
    // Probes from 1,000 different (spoofed) sources at one instant: each source's bucket
    // is full, the host's burst of 50 is the limit; 100 ms later 100 more may leave.
    let mut a = Interface::new(A, Config::default(), 1);
    let src = |i: u32| Ipv4Addr::from(0x0a01_0000 + i);
    let mut sent = 0;
    for i in 0..1000 {
        a.handle_packet(&udp_probe(src(i)), t(0));
        sent += port_unreachables(&drain(&mut a, t(0)));
    }
    assert_eq!(sent, 50);
    assert_eq!(a.stats().icmp_rate_limited_global, 950);
    let mut sent = 0;
    for i in 1000..2000 {
        a.handle_packet(&udp_probe(src(i)), t(100));
        sent += port_unreachables(&drain(&mut a, t(100)));
    }
    assert_eq!(sent, 50, "the bucket holds at most the burst");
    // Turned off, every probe is answered.
    a.set_icmp_rate_limit(icmp::RateLimitConfig {
        msgs_per_sec: 0,
        burst: 0,
        per_dest_interval: Duration::ZERO,
        per_dest_burst: 0,
    });
    let out: usize = (0..100)
        .map(|_| {
            a.handle_packet(&udp_probe(B), t(200));
            port_unreachables(&drain(&mut a, t(200)))
        })
        .sum();
    assert_eq!(out, 100);
}

#[test]
fn echo_replies_are_not_rate_limited() {
    // Linux limits only error types (icmp_ratemask); 100 pings at once get 100 replies.
    let mut a = Interface::new(A, Config::default(), 1);
    for seq in 0..100 {
        a.handle_packet(
            &ipv4::emit(B, A, ipv4::PROTO_ICMP, 64, seq, &echo_request(seq, 8)),
            t(0),
        );
    }
    assert_eq!(drain(&mut a, t(0)).len(), 100);
}

#[test]
fn ip_ids_are_per_destination_not_one_global_counter() {
    // nmap's ipidseq / an idle scan: a prober talking to us sees our ids move only with
    // the packets we send to it, not with traffic to other hosts (RFC 7739 §5).
    let mut a = Interface::new(A, Config::default(), 1);
    let ping = |a: &mut Interface, from: Ipv4Addr, seq: u16| {
        a.handle_packet(
            &ipv4::emit(from, A, ipv4::PROTO_ICMP, 64, seq, &echo_request(seq, 8)),
            t(0),
        );
        let out = drain(a, t(0));
        Ipv4Packet::parse(&out[0]).unwrap().id
    };
    let prober = B;
    let first = ping(&mut a, prober, 1);
    // Traffic to many other hosts between two probes (an idle scan's "zombie" traffic).
    let others: Vec<Ipv4Addr> = (10..40).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
    let mut other_ids = Vec::new();
    for (seq, &o) in others.iter().enumerate() {
        other_ids.push(ping(&mut a, o, seq as u16));
    }
    let second = ping(&mut a, prober, 2);
    assert_eq!(
        second,
        first.wrapping_add(1),
        "the prober's ids count only its own replies"
    );
    // The other hosts' ids are not one sequence either.
    let consecutive = other_ids
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    assert!(consecutive < 3, "{other_ids:?}");
    // SYN-ACKs and RSTs (no connection yet, or none at all) carry id 0, as Linux's do:
    // a prober's SYNs to an open or a closed port see no counter (nmap: "All zeros").
    a.tcp_mut().listen(SocketAddrV4::new(A, 80), 4).unwrap();
    let syn_to = |a: &mut Interface, port: u16| {
        let syn = Segment {
            src_port: 40_000 + port,
            dst_port: port,
            seq: tunstack::tcp::SeqNum(1000),
            flags: tunstack::tcp::Flags::SYN,
            window: 1024,
            ..Segment::default()
        };
        let bytes = syn.emit(prober, A);
        a.handle_packet(&ipv4::emit(prober, A, ipv4::PROTO_TCP, 64, 1, &bytes), t(0));
        let mut out = Vec::new();
        let meta = a.poll_transmit_into(t(0), &mut out).expect("an answer");
        assert_eq!(meta.gso_size, 0);
        let ip = Ipv4Packet::parse(&out).unwrap();
        let seg = Segment::parse(ip.src, ip.dst, ip.payload).unwrap();
        (seg.flags, ip.id)
    };
    for _ in 0..3 {
        let (flags, id) = syn_to(&mut a, 80);
        assert!(flags.syn && flags.ack);
        assert_eq!(id, 0);
        let (flags, id) = syn_to(&mut a, 81);
        assert!(flags.rst);
        assert_eq!(id, 0);
    }
    // Fragmented datagrams to one host still get distinct ids (RFC 6864 §4.2).
    a.set_mtu(576);
    let mut ids = std::collections::HashSet::new();
    for seq in 0..50 {
        a.handle_packet(
            &ipv4::emit(
                prober,
                A,
                ipv4::PROTO_ICMP,
                64,
                seq,
                &echo_request(seq, 1000),
            ),
            t(0),
        );
        let out = drain(&mut a, t(0));
        assert!(out.len() > 1);
        let id = Ipv4Packet::parse_with_fragments(&out[0]).unwrap().id;
        assert!(out
            .iter()
            .all(|p| Ipv4Packet::parse_with_fragments(p).unwrap().id == id));
        assert!(ids.insert(id), "id {id} reused");
    }
}
