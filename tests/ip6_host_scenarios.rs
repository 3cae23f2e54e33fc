//! The dual-stack host in virtual time: two `stack::Interface`s, each with an IPv4 and an
//! IPv6 address, exchange IPv6 packets. What the host adds to the IPv6 receive path of
//! `ip6_scenarios.rs`: TCP and UDP over IPv6 (RFC 8200 §8.1 pseudo-header), our hop
//! limit on what we send, port unreachable for a closed UDP port (RFC 4443 §3.1), RST
//! for a closed TCP port (RFC 9293 §3.10.7.1), Packet Too Big lowering the MSS (RFC
//! 8201), soft errors (RFC 5927), parameter problem for an unknown next header (RFC 8200
//! §4), fragmented segments reassembled before TCP sees them (RFC 8200 §4.5).
//!
//! A (fd00::1) is the client, B (fd00::2) the server.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use tunstack::ip::icmpv6;
use tunstack::ip::ipv6::{self, Ipv6Packet};
use tunstack::stack::Interface;
use tunstack::tcp::{Config, ConnId, Segment, State, TcpError};
use tunstack::time::Instant;
use tunstack::udp::Datagram;

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfe);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn host(v4: Ipv4Addr, v6: Ipv6Addr, seed: u64) -> Interface {
    let mut h = Interface::new(v4, Config::default(), seed);
    h.set_ipv6(Some(v6));
    h
}

fn drain(host: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| host.poll_transmit(now)).collect()
}

/// Moves packets between the two hosts until both are quiet; every packet is checked to
/// be IPv6 with our hop limit.
fn exchange(a: &mut Interface, b: &mut Interface, now: Instant) {
    loop {
        let from_a = drain(a, now);
        let from_b = drain(b, now);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for p in from_a {
            assert_eq!(Ipv6Packet::parse(&p).unwrap().hop_limit, 64);
            b.handle_packet(&p, now);
        }
        for p in from_b {
            assert_eq!(Ipv6Packet::parse(&p).unwrap().hop_limit, 64);
            a.handle_packet(&p, now);
        }
    }
}

/// A connected to [fd00::2]:80 (B listens on the IPv4 wildcard: dual stack).
fn connected() -> (Interface, Interface, ConnId, ConnId) {
    let mut a = host(A4, A, 1);
    let mut b = host(B4, B, 2);
    let l = b
        .tcp_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 4)
        .unwrap();
    let c = a.tcp_mut().connect(v6(A, 0), v6(B, 80), t(0)).unwrap();
    exchange(&mut a, &mut b, t(0));
    assert_eq!(a.tcp().state(c), State::Established);
    let s = b.tcp_mut().accept(l).expect("accepted");
    (a, b, c, s)
}

/// The upper-layer message of an IPv6 packet (no extension headers).
fn upper(p: &[u8]) -> (u8, Vec<u8>) {
    let p = Ipv6Packet::parse(p).unwrap();
    (p.next_header, p.payload.to_vec())
}

#[test]
fn tcp_over_ipv6_handshake_data_and_close() {
    let (mut a, mut b, c, s) = connected();
    assert_eq!(b.tcp().peer_addr(s).ip(), A);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for round in 0..1000 {
        if sent < data.len() {
            sent += a.tcp_mut().send(c, &data[sent..], t(round)).unwrap();
        }
        exchange(&mut a, &mut b, t(round));
        while let Ok(n) = b.tcp_mut().recv(s, &mut buf, t(round)) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
        a.handle_timeout(t(round + 250));
        b.handle_timeout(t(round + 250));
    }
    assert_eq!(got, data);
    a.tcp_mut().shutdown(c, t(2000));
    exchange(&mut a, &mut b, t(2000));
    assert_eq!(b.tcp().state(s), State::CloseWait);
}

#[test]
fn what_we_send_is_ipv6_with_a_valid_pseudo_header_checksum() {
    let mut a = host(A4, A, 1);
    a.tcp_mut().connect(v6(A, 0), v6(B, 80), t(0)).unwrap();
    let out = drain(&mut a, t(0));
    assert_eq!(out.len(), 1);
    let p = Ipv6Packet::parse(&out[0]).unwrap();
    assert_eq!((p.src, p.dst, p.next_header, p.hop_limit), (A, B, 6, 64));
    // A receiver verifying with the IPv6 pseudo-header accepts it; with IPv4's it
    // would not.
    let syn = Segment::parse(A, B, p.payload).expect("checksum over the v6 pseudo-header");
    assert!(syn.flags.syn);
    assert_eq!(syn.options.mss, Some(1440), "MTU 1500 − 60");
    // The same through the gathering path the runtimes use.
    let mut a = host(A4, A, 1);
    a.tcp_mut().connect(v6(A, 0), v6(B, 80), t(0)).unwrap();
    let mut buf = Vec::new();
    let meta = a.poll_transmit_into(t(0), &mut buf).unwrap();
    assert!(!meta.csum_partial && meta.gso_size == 0);
    assert_eq!(buf, out[0]);
}

#[test]
fn closed_tcp_port_answers_rst_over_ipv6() {
    let mut a = host(A4, A, 1);
    let mut b = host(B4, B, 2);
    let c = a.tcp_mut().connect(v6(A, 0), v6(B, 9), t(0)).unwrap();
    exchange(&mut a, &mut b, t(0));
    assert_eq!(a.tcp().error(c), Some(TcpError::ConnectionRefused));
}

#[test]
fn udp_echo_and_port_unreachable_over_ipv6() {
    let mut a = host(A4, A, 1);
    let mut b = host(B4, B, 2);
    let server = b
        .udp_mut()
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
        .unwrap();
    let client = a.udp_mut().bind(v6(Ipv6Addr::UNSPECIFIED, 5000)).unwrap();
    a.udp_mut().send_to(client, v6(B, 7), b"hello").unwrap();
    exchange(&mut a, &mut b, t(0));
    let (from, data) = b.udp_mut().recv_from(server).expect("delivered");
    assert_eq!((from, &data[..]), (v6(A, 5000), &b"hello"[..]));
    // A closed port: destination unreachable, code 4, quoting our datagram.
    a.udp_mut().send_to(client, v6(B, 9), b"anyone?").unwrap();
    let out = drain(&mut a, t(10));
    b.handle_packet(&out[0], t(10));
    let errors = drain(&mut b, t(10));
    assert_eq!(errors.len(), 1);
    let (next, msg) = upper(&errors[0]);
    assert_eq!(next, ipv6::NEXT_ICMPV6);
    assert_eq!((msg[0], msg[1]), (icmpv6::TYPE_DEST_UNREACHABLE, 4));
    assert_eq!(
        &msg[8..8 + out[0].len()],
        &out[0][..],
        "the whole datagram quoted"
    );
    // Rate-limited like ICMPv4's errors: a burst does not get an answer each.
    for i in 0..200 {
        b.handle_packet(&out[0], t(20 + i / 100));
    }
    let answered = drain(&mut b, t(30)).len();
    assert!(answered < 200, "{answered} errors for 200 datagrams");
}

#[test]
fn fragmented_tcp_segment_is_reassembled() {
    let (mut a, mut b, c, s) = connected();
    // A's data segments reach B as fragments of 1280-byte packets, last first (RFC 8200
    // §4.5: only the source fragments; here the test does it for A).
    let payload = vec![0x5a; 3000];
    a.tcp_mut().set_nodelay(c, true);
    a.tcp_mut().send(c, &payload, t(1)).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 8192];
    let mut fragmented = 0;
    for p in drain(&mut a, t(1)) {
        let pkt = Ipv6Packet::parse(&p).unwrap();
        let frags = ipv6::emit_fragments(A, B, ipv6::NEXT_TCP, 64, 0x1234, pkt.payload, 1280);
        if frags.len() > 1 {
            fragmented += 1;
        }
        for f in frags.iter().rev() {
            b.handle_packet(f, t(2));
        }
    }
    assert!(fragmented >= 2, "the full-sized segments went as fragments");
    while let Ok(n) = b.tcp_mut().recv(s, &mut buf, t(3)) {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, payload.len());
}

#[test]
fn packet_too_big_lowers_the_mss_of_the_connection() {
    let (mut a, _b, c, _s) = connected();
    a.tcp_mut().set_nodelay(c, true);
    a.tcp_mut().send(c, &[1u8; 4000], t(1)).unwrap();
    let sent = drain(&mut a, t(1));
    let big = sent.iter().max_by_key(|p| p.len()).unwrap();
    assert_eq!(big.len(), 40 + 20 + 12 + 1428);
    // A router with a 1300-byte next hop answers (RFC 4443 §3.2).
    let ptb = icmpv6::packet_too_big(ROUTER, A, 1300, big);
    a.handle_packet(&ipv6::emit(ROUTER, A, ipv6::NEXT_ICMPV6, 64, &ptb), t(2));
    assert_eq!(a.tcp().send_mss(c), 1300 - 60 - 12);
    assert_eq!(a.stats().icmp_errors.get("icmp-mss-lowered"), Some(&1));
    // What A sends again fits 1300-byte packets.
    a.handle_timeout(t(5000));
    let again = drain(&mut a, t(5000));
    assert!(!again.is_empty());
    assert!(
        again.iter().all(|p| p.len() <= 1300),
        "{:?}",
        again.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // RFC 8201 §4: never below 1280, whatever the message says.
    let ptb = icmpv6::packet_too_big(ROUTER, A, 1000, &again[0]);
    a.handle_packet(&ipv6::emit(ROUTER, A, ipv6::NEXT_ICMPV6, 64, &ptb), t(5001));
    assert_eq!(a.tcp().send_mss(c), 1280 - 60 - 12);
}

#[test]
fn time_exceeded_and_parameter_problem_are_soft_errors() {
    let (mut a, _b, c, _s) = connected();
    a.tcp_mut().send(c, &[1u8; 100], t(1)).unwrap();
    let sent = drain(&mut a, t(1));
    let te = icmpv6::error(ROUTER, A, icmpv6::TYPE_TIME_EXCEEDED, 0, 0, &sent[0]);
    a.handle_packet(&ipv6::emit(ROUTER, A, ipv6::NEXT_ICMPV6, 64, &te), t(2));
    let pp = icmpv6::error(ROUTER, A, icmpv6::TYPE_PARAMETER_PROBLEM, 0, 7, &sent[0]);
    a.handle_packet(&ipv6::emit(ROUTER, A, ipv6::NEXT_ICMPV6, 64, &pp), t(3));
    assert_eq!(a.stats().icmp_errors.get("icmp-soft-error"), Some(&2));
    assert_eq!(a.tcp().state(c), State::Established);
    assert!(a.tcp().soft_error(c).is_some());
}

#[test]
fn unknown_next_header_gets_parameter_problem_code_1() {
    let mut b = host(B4, B, 2);
    let p = ipv6::emit(A, B, 253, 64, b"experimental");
    b.handle_packet(&p, t(0));
    let out = drain(&mut b, t(0));
    assert_eq!(out.len(), 1);
    let (next, msg) = upper(&out[0]);
    assert_eq!(next, ipv6::NEXT_ICMPV6);
    assert_eq!((msg[0], msg[1]), (icmpv6::TYPE_PARAMETER_PROBLEM, 1));
    assert_eq!(u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]), 6);
}

#[test]
fn ipv6_is_dropped_without_an_ipv6_address_and_udp_zero_checksum_refused() {
    let mut b = Interface::new(B4, Config::default(), 2);
    let datagram = tunstack::udp::datagram::emit(A, B, 1, 7, b"x");
    b.handle_packet(&ipv6::emit(A, B, ipv6::NEXT_UDP, 64, &datagram), t(0));
    assert!(drain(&mut b, t(0)).is_empty());
    assert_eq!(b.stats().drops.get("ipv6-not-for-us"), Some(&1));
    let mut b = host(B4, B, 2);
    b.udp_mut().bind(v6(Ipv6Addr::UNSPECIFIED, 7)).unwrap();
    let mut zero = datagram.clone();
    zero[6] = 0;
    zero[7] = 0;
    assert!(Datagram::parse(A, B, &zero).is_err());
    b.handle_packet(&ipv6::emit(A, B, ipv6::NEXT_UDP, 64, &zero), t(0));
    assert_eq!(b.stats().drops.get("udp-malformed"), Some(&1));
}
