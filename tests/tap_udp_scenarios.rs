//! Scenario tests, sans-IO: the Ethernet layer stacked on the IP host with a virtual clock,
//! frames in and frames out — what TAP mode does, without a device or root. And the host's
//! UDP rules (delivery, port unreachable, its exceptions).

use std::net::{Ipv4Addr, SocketAddrV4};

use tunstack::ip::{icmp, ipv4};
use tunstack::link::arp::{ArpConfig, ArpPacket, OP_REPLY};
use tunstack::link::ethernet::{self, Frame, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use tunstack::link::ethernet_layer::{EthernetConfig, EthernetLayer};
use tunstack::stack::Interface;
use tunstack::tcp;
use tunstack::time::Instant;
use tunstack::udp::datagram;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

/// A host on Ethernet: the layer and the IP host, driven like the stack thread does.
struct TapHost {
    eth: EthernetLayer,
    ip: Interface,
}

impl TapHost {
    fn new() -> TapHost {
        let eth = EthernetLayer::new(EthernetConfig {
            mac: OUR_MAC,
            addr: US,
            prefix_len: 24,
            gateway: None,
            arp: ArpConfig::default(),
            addr6: None,
        });
        TapHost {
            eth,
            ip: Interface::new(US, tcp::Config::default(), 7),
        }
    }

    /// One frame in; every frame that results, out.
    fn frame_in(&mut self, frame: &[u8], now: Instant) -> Vec<Vec<u8>> {
        if let Some(packet) = self.eth.handle_frame(frame, now) {
            self.ip.handle_packet(packet, now);
        }
        self.run(now)
    }

    fn run(&mut self, now: Instant) -> Vec<Vec<u8>> {
        while let Some(p) = self.ip.poll_transmit(now) {
            self.eth.send_ip(p, now);
        }
        std::iter::from_fn(|| self.eth.poll_transmit()).collect()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ip_frame(packet: &[u8]) -> Vec<u8> {
    ethernet::build(OUR_MAC, PEER_MAC, ETHERTYPE_IPV4, packet)
}

fn echo_request() -> Vec<u8> {
    // type 8, code 0, checksum, id 1, seq 1, "ping"
    let mut m = vec![8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'];
    let sum = ipv4::checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4::emit(PEER, US, ipv4::PROTO_ICMP, 64, 1, &m)
}

/// The kernel's first ping: ARP request, our reply, then the echo; we answer the echo to
/// the MAC learned from the request, without an ARP of our own (RFC 826: the requester
/// is merged into our table because the request was for us).
#[test]
fn arp_then_ping_over_ethernet() {
    let mut host = TapHost::new();
    let announce = host.run(t(0));
    assert_eq!(announce.len(), 1, "gratuitous ARP at start");

    let request = ArpPacket::request(PEER_MAC, PEER, US);
    let out = host.frame_in(
        &ethernet::build(MacAddr::BROADCAST, PEER_MAC, ETHERTYPE_ARP, &request.emit()),
        t(1),
    );
    assert_eq!(out.len(), 1);
    let f = Frame::parse(&out[0]).unwrap();
    let reply = ArpPacket::parse(f.payload).unwrap();
    assert_eq!(
        (f.dst, reply.operation, reply.sender_mac),
        (PEER_MAC, OP_REPLY, OUR_MAC)
    );

    let out = host.frame_in(&ip_frame(&echo_request()), t(2));
    assert_eq!(out.len(), 1, "only the echo reply: no ARP needed");
    let f = Frame::parse(&out[0]).unwrap();
    assert_eq!(
        (f.dst, f.src, f.ethertype),
        (PEER_MAC, OUR_MAC, ETHERTYPE_IPV4)
    );
    let ip = ipv4::Ipv4Packet::parse(f.payload).unwrap();
    assert_eq!((ip.src, ip.dst, ip.payload[0]), (US, PEER, 0), "echo reply");
}

/// A ping from a host we have never heard of (no ARP request first, e.g. our entry
/// expired): the reply waits for our own ARP resolution, then leaves.
#[test]
fn reply_waits_for_resolution() {
    let mut host = TapHost::new();
    host.run(t(0));
    let out = host.frame_in(&ip_frame(&echo_request()), t(1));
    assert_eq!(out.len(), 1);
    let f = Frame::parse(&out[0]).unwrap();
    assert_eq!((f.dst, f.ethertype), (MacAddr::BROADCAST, ETHERTYPE_ARP));
    let who_has = ArpPacket::parse(f.payload).unwrap();
    assert_eq!(who_has.target_ip, PEER);

    // No answer for a while: retried with backoff (1 s).
    assert_eq!(host.eth.poll_at(), Some(t(1001)));
    host.eth.handle_timeout(t(1001));
    let out = host.run(t(1001));
    assert_eq!(out.len(), 1, "second ARP request");

    let reply = ArpPacket {
        operation: OP_REPLY,
        sender_mac: PEER_MAC,
        sender_ip: PEER,
        target_mac: OUR_MAC,
        target_ip: US,
    };
    let out = host.frame_in(
        &ethernet::build(OUR_MAC, PEER_MAC, ETHERTYPE_ARP, &reply.emit()),
        t(1500),
    );
    assert_eq!(out.len(), 1, "the queued echo reply");
    let f = Frame::parse(&out[0]).unwrap();
    assert_eq!(f.dst, PEER_MAC);
    assert_eq!(host.eth.poll_at(), None, "resolution finished: no timer");
}

fn udp_packet(dst: Ipv4Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let d = datagram::emit(PEER, dst, 5555, dst_port, payload);
    ipv4::emit(PEER, dst, ipv4::PROTO_UDP, 64, 9, &d)
}

fn drain(ip: &mut Interface) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ip.poll_transmit(t(0))).collect()
}

/// RFC 1122 §4.1.3.1: closed port → ICMP port unreachable quoting the IP header and the
/// first 8 bytes (the UDP header) of the datagram.
#[test]
fn closed_udp_port_gets_port_unreachable() {
    let mut ip = Interface::new(US, tcp::Config::default(), 1);
    let packet = udp_packet(US, 9, b"hello");
    ip.handle_packet(&packet, t(0));
    let out = drain(&mut ip);
    assert_eq!(out.len(), 1);
    let reply = ipv4::Ipv4Packet::parse(&out[0]).unwrap();
    assert_eq!((reply.dst, reply.protocol), (PEER, ipv4::PROTO_ICMP));
    assert_eq!(reply.payload[0], icmp::TYPE_DEST_UNREACHABLE);
    assert_eq!(reply.payload[1], icmp::CODE_PORT_UNREACHABLE);
    assert_eq!(
        &reply.payload[8..],
        &packet[..28],
        "IP header + UDP header quoted"
    );
    assert_eq!(ip.udp().stats().no_port, 1);
}

/// No ICMP error about a broadcast datagram (RFC 1122 §3.2.2, §4.1.3.1), nor about a
/// datagram that fails validation.
#[test]
fn no_port_unreachable_for_broadcast_or_malformed() {
    let mut ip = Interface::new(US, tcp::Config::default(), 1);
    // A corrupted checksum: dropped and counted, no answer.
    let mut bad = udp_packet(US, 9, b"hello");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    ip.handle_packet(&bad, t(0));
    assert!(drain(&mut ip).is_empty());
    assert_eq!(ip.udp().stats().drops.get("udp-bad-checksum"), Some(&1));
    assert_eq!(ip.stats().drops.get("udp-malformed"), Some(&1));
    // A truncated length field.
    let mut short = udp_packet(US, 9, b"hello");
    short[24..26].copy_from_slice(&200u16.to_be_bytes());
    ip.handle_packet(&short, t(0));
    assert!(drain(&mut ip).is_empty());
    assert_eq!(ip.udp().stats().drops.get("udp-bad-length"), Some(&1));
    // A broadcast to a closed port: never an ICMP error.
    ip.handle_packet(&udp_packet(Ipv4Addr::BROADCAST, 9, b"anyone?"), t(0));
    assert!(drain(&mut ip).is_empty());
}

/// A bound port gets the datagram; the reply goes out with our address even when the
/// socket is bound to 0.0.0.0, with a checksum the receiver verifies.
#[test]
fn bound_port_receives_and_replies() {
    let mut ip = Interface::new(US, tcp::Config::default(), 1);
    let id = ip
        .udp_mut()
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
        .unwrap();
    ip.handle_packet(&udp_packet(US, 7, b"echo me"), t(0));
    assert!(drain(&mut ip).is_empty(), "no ICMP for a bound port");
    assert!(ip.take_events(), "socket-visible change reported");
    let (from, data) = ip.udp_mut().recv_from(id).unwrap();
    assert_eq!(
        (from, &data[..]),
        (SocketAddrV4::new(PEER, 5555).into(), &b"echo me"[..])
    );
    ip.udp_mut().send_to(id, from, &data).unwrap();
    let out = drain(&mut ip);
    assert_eq!(out.len(), 1);
    let reply = ipv4::Ipv4Packet::parse(&out[0]).unwrap();
    assert_eq!(
        (reply.src, reply.dst, reply.protocol),
        (US, PEER, ipv4::PROTO_UDP)
    );
    let d = tunstack::udp::Datagram::parse(US, PEER, reply.payload).unwrap();
    assert_eq!(
        (d.src_port, d.dst_port, d.payload),
        (7, 5555, &b"echo me"[..])
    );
}

/// IPv6 (stretch): the host answers ICMPv6 echo on its IPv6 address, and drops what it
/// does not implement (other destinations, TCP over IPv6) with a counted reason.
#[test]
fn ipv6_echo_and_drops() {
    use std::net::Ipv6Addr;
    use tunstack::ip::{icmpv6, ipv6};
    let a: Ipv6Addr = "fd00::1".parse().unwrap();
    let b: Ipv6Addr = "fd00::2".parse().unwrap();
    let mut ip = Interface::new(US, tcp::Config::default(), 1);
    ip.set_ipv6(Some(b));
    // Echo request with its checksum over the IPv6 pseudo-header.
    let mut m = vec![icmpv6::TYPE_ECHO_REQUEST, 0, 0, 0, 0, 9, 0, 1, b'v', b'6'];
    let sum = ipv4::checksum_with(ipv6::pseudo_header_sum(a, b, ipv6::NEXT_ICMPV6, 10), &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ip.handle_packet(&ipv6::emit(a, b, ipv6::NEXT_ICMPV6, 64, &m), t(0));
    let out = drain(&mut ip);
    assert_eq!(out.len(), 1);
    let reply = ipv6::Ipv6Packet::parse(&out[0]).unwrap();
    assert_eq!((reply.src, reply.dst), (b, a));
    assert_eq!(reply.payload[0], icmpv6::TYPE_ECHO_REPLY);
    assert_eq!(&reply.payload[4..], &m[4..]);

    ip.handle_packet(&ipv6::emit(a, "ff02::1".parse().unwrap(), 58, 1, &m), t(0));
    ip.handle_packet(&ipv6::emit(a, b, ipv6::NEXT_TCP, 64, &[0; 20]), t(0));
    assert!(drain(&mut ip).is_empty());
    assert_eq!(ip.stats().drops.get("ipv6-not-for-us"), Some(&1));
    // TCP over IPv6 reaches TCP, whose checksum (over the IPv6 pseudo-header) refuses
    // these 20 zero bytes: no answer, counted.
    assert_eq!(ip.stats().drops.get("tcp-malformed"), Some(&1));
}

/// `--trace` in TAP mode describes each layer of a frame: Ethernet, then ARP or IPv4 and
/// UDP.
#[test]
fn trace_describes_frames() {
    use tunstack::stack::Direction;
    use tunstack::trace::describe_frame;
    let who_has = ArpPacket::request(PEER_MAC, PEER, US);
    let frame = ethernet::build(MacAddr::BROADCAST, PEER_MAC, ETHERTYPE_ARP, &who_has.emit());
    let line = describe_frame(Direction::In, &frame);
    assert!(
        line.starts_with("← Ethernet 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP"),
        "{line}"
    );
    assert!(line.contains("who-has 10.0.0.2 tell 10.0.0.1"), "{line}");

    let frame = ip_frame(&udp_packet(US, 7, b"hi"));
    let line = describe_frame(Direction::Out, &frame);
    assert!(line.contains("IPv4 | IPv4 10.0.0.1 > 10.0.0.2"), "{line}");
    assert!(line.ends_with("| UDP 5555 > 7 len 2"), "{line}");
    assert!(describe_frame(Direction::In, &[1, 2]).contains("not Ethernet"));
}

/// Random bytes as UDP through the host, and as frames through the Ethernet layer stacked
/// on it: nothing panics, whatever arrives.
#[test]
fn random_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut host = TapHost::new();
    host.ip
        .udp_mut()
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
        .unwrap();
    for i in 0..3000u64 {
        let len = rng.random_range(0..200);
        let mut body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 3 == 0 && body.len() >= 4 {
            body[2..4].copy_from_slice(&7u16.to_be_bytes());
        }
        let packet = ipv4::emit(PEER, US, ipv4::PROTO_UDP, 64, i as u16, &body);
        host.frame_in(&ip_frame(&packet), t(i));
        let ethertype = [ETHERTYPE_ARP, ETHERTYPE_IPV4, 0x86dd][(i % 3) as usize];
        host.frame_in(&ethernet::build(OUR_MAC, PEER_MAC, ethertype, &body), t(i));
        host.eth.handle_timeout(t(i * 10));
        host.run(t(i * 10));
    }
}

/// The `--trace` printer in TAP mode: the link line names the MACs and the EtherType, an
/// ARP frame gets its own line, and an IPv4 frame is decoded down to UDP.
#[test]
fn trace_printer_renders_frames() {
    use std::time::Duration;
    use tunstack::stack::Direction;
    use tunstack::trace::{Palette, Printer, TraceEvent};
    let mut printer = Printer::new(Palette::PLAIN);
    let who_has = ArpPacket::request(PEER_MAC, PEER, US);
    let frame = ethernet::build(MacAddr::BROADCAST, PEER_MAC, ETHERTYPE_ARP, &who_has.emit());
    let text = printer.render_at(
        &TraceEvent::Frame {
            dir: Direction::In,
            bytes: frame,
        },
        Duration::ZERO,
    );
    assert!(
        text.contains("60 bytes from the TAP  02:00:00:00:00:01 → ff:ff:ff:ff:ff:ff  ARP"),
        "{text}"
    );
    assert!(
        text.contains("ARP who has 10.0.0.2?  tell 10.0.0.1"),
        "{text}"
    );

    let text = printer.render_at(
        &TraceEvent::Frame {
            dir: Direction::In,
            bytes: ip_frame(&udp_packet(US, 7, b"hi")),
        },
        Duration::ZERO,
    );
    assert!(
        text.starts_with("#2 "),
        "numbered after the ARP frame: {text}"
    );
    assert!(
        text.contains("02:00:00:00:00:01 → 02:00:00:00:00:02  IPv4"),
        "{text}"
    );
    assert!(text.contains("proto udp"), "{text}");
    assert!(text.contains("5555 → 7  len 2"), "{text}");
}
