//! Fuzz the IPv6 code that reads what others send on the link and what the learner sees:
//! `link::ndp::parse`, the Ethernet layer's Neighbor Discovery (neighbour cache, DAD,
//! answers) and the IPv6 trace decoders (`trace::ip6`, `Renderer::packet`/`frame`,
//! `describe`). No panic on any input; every frame the Ethernet layer emits is valid
//! Ethernet carrying IPv6 (an ND message that validates, or a packet handed down); the
//! cache and queue bounds hold.
//!
//! Input: records `[len, mode, bytes…]`. Mode bit 0: the bytes are an ICMPv6 message to
//! wrap in an IPv6 packet with its checksum and hop limit 255 (so mutations reach the ND
//! logic past the checksum), else a whole IPv6 packet; bit 1: to our solicited-node group
//! (else to our MAC); bit 2: send it down (`send_ip`) instead of up; bit 3: the source is
//! `::` (a DAD probe's); bits 4..7: clock step in 250 ms units.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};
use tunstack::ip::checksum_with;
use tunstack::ip::ipv6::{self, Ipv6Packet};
use tunstack::link::arp::ArpConfig;
use tunstack::link::ethernet::{self, Frame, MacAddr, ETHERTYPE_IPV6};
use tunstack::link::ethernet_layer::{EthernetConfig, EthernetLayer};
use tunstack::link::ndp::{self, NdpConfig};
use tunstack::link::Direction;
use tunstack::time::Instant;
use tunstack::trace::{self, ip6, Renderer};

const US: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn decode(renderer: &mut Renderer, packet: &[u8], frame: &[u8]) {
    let _ = renderer.packet(Direction::In, packet);
    let _ = renderer.frame(Direction::Out, frame);
    let _ = trace::describe(Direction::In, packet);
    let _ = trace::describe_frame(Direction::In, frame);
    if let Ok(v) = ip6::view(packet) {
        let _ = ip6::header_text(&v);
        assert!(v.headers.len() <= 16);
    }
    if let Ok(p) = Ipv6Packet::parse(packet) {
        let _ = ip6::icmpv6_text(p.src, p.dst, p.payload);
        let _ = ndp::parse(p.src, p.dst, p.hop_limit, p.payload);
    }
}

fuzz_target!(|data: &[u8]| {
    let ndp_config = NdpConfig {
        max_entries: 4,
        max_queued: 2,
        max_queued_total: 5,
        ..NdpConfig::default()
    };
    let mut layer = EthernetLayer::with_ndp(
        EthernetConfig {
            mac: OUR_MAC,
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            gateway: None,
            arp: ArpConfig::default(),
            addr6: Some(US),
        },
        ndp_config,
    );
    let mut renderer = Renderer::new();
    let mut now = Instant::from_millis(0);
    let mut rest = data;
    while let [len, mode, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        now = now + std::time::Duration::from_millis(250 * u64::from(mode >> 4));
        let src = if mode & 8 != 0 {
            Ipv6Addr::UNSPECIFIED
        } else {
            PEER
        };
        let dst = if mode & 2 != 0 {
            ndp::solicited_node(US)
        } else {
            US
        };
        let packet = if mode & 1 != 0 {
            let mut m = bytes.to_vec();
            if m.len() >= 4 {
                m[2] = 0;
                m[3] = 0;
                let sum = checksum_with(
                    ipv6::pseudo_header_sum(src, dst, ipv6::NEXT_ICMPV6, m.len() as u32),
                    &m,
                );
                m[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            ipv6::emit(src, dst, ipv6::NEXT_ICMPV6, 255, &m)
        } else {
            bytes.to_vec()
        };
        let mac_dst = if mode & 2 != 0 {
            ndp::multicast_mac(dst)
        } else {
            OUR_MAC
        };
        let frame = ethernet::build(mac_dst, PEER_MAC, ETHERTYPE_IPV6, &packet);
        decode(&mut renderer, &packet, &frame);
        let sent_down = mode & 4 != 0;
        if sent_down {
            layer.send_ip(packet, now);
        } else if let Some(up) = layer.handle_frame(&frame, now) {
            // The IP packet, or for one too short to parse the frame's (padded) payload.
            assert!(up.len() <= frame.len() - 14);
        }
        if layer.poll_at().is_some_and(|at| at <= now) {
            layer.handle_timeout(now);
        }
        while let Some(out) = layer.poll_transmit() {
            let f = Frame::parse(&out).expect("we emit valid Ethernet");
            if f.ethertype == ETHERTYPE_IPV6 {
                let p = Ipv6Packet::parse(f.payload).expect("we emit valid IPv6");
                let nd_type = matches!(p.payload.first(), Some(&ndp::TYPE_NS | &ndp::TYPE_NA));
                // Packets handed down by the host pass as they are; ND is ours to build.
                if !sent_down && p.next_header == ipv6::NEXT_ICMPV6 && nd_type {
                    // Our own ND messages validate as the receiver would check them.
                    let m = ndp::parse(p.src, p.dst, p.hop_limit, p.payload);
                    assert!(m.is_some(), "invalid ND sent: {:?}", f.payload);
                }
            }
        }
        let cache = layer.neighbors();
        assert!(cache.len() <= 4);
        assert!(cache.queued() <= 5);
    }
    // Run every timer out: the cache drains.
    for _ in 0..64 {
        match layer.poll_at() {
            Some(at) => {
                now = now.max(at);
                layer.handle_timeout(now);
            }
            None => break,
        }
        while layer.poll_transmit().is_some() {}
    }
});
