//! Fuzz a whole host: `stack::Interface::handle_packet` with a listening socket on port 80
//! that accepts, reads and echoes, fed arbitrary packets in virtual time. Nothing may
//! panic, and everything the host sends must be a valid IPv4 packet.
//!
//! Input: records of `[len_hi, len_lo, mode, packet...]`. Mode bit 0 seals the IPv4
//! header checksum, bit 1 also seals the TCP checksum (so mutations reach the TCP state
//! machine instead of dying at a checksum), bits 2-7 advance the clock (× 50 ms).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::stack::Interface;
use tunstack::tcp;
use tunstack::time::Instant;

fn seal(packet: &mut [u8], mode: u8) {
    if mode & 1 == 0 || packet.len() < 20 {
        return;
    }
    let hl = usize::from(packet[0] & 0x0f) * 4;
    if hl < 20 || hl > packet.len() {
        return;
    }
    packet[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4::checksum(&packet[..hl]);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    if mode & 2 == 0 || packet[9] != ipv4::PROTO_TCP {
        return;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]])).min(packet.len());
    if total < hl + 20 {
        return;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let seg = &mut packet[hl..total];
    seg[16..18].copy_from_slice(&[0, 0]);
    let len = u16::try_from(seg.len()).unwrap_or(u16::MAX);
    let sum = ipv4::checksum_with(ipv4::pseudo_header_sum(src, dst, ipv4::PROTO_TCP, len), seg);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let addr = Ipv4Addr::new(10, 0, 0, 2);
    let mut host = Interface::new(addr, tcp::Config::default(), 7);
    let Ok(listener) = host.tcp_mut().listen(SocketAddrV4::new(addr, 80), 4) else {
        return;
    };
    let mut now = Instant::from_millis(1_000);
    let mut conns = Vec::new();
    let mut rest = data;
    let mut buf = [0u8; 2048];
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let mode = rest[2];
        let body = &rest[3..];
        let take = len.min(body.len());
        let mut packet = body[..take].to_vec();
        rest = &body[take..];
        seal(&mut packet, mode);
        now += Duration::from_millis(u64::from(mode >> 2) * 50);

        host.handle_packet(&packet, now);
        if host.poll_at().is_some_and(|at| at <= now) {
            host.handle_timeout(now);
        }
        while let Some(id) = host.tcp_mut().accept(listener) {
            conns.push(id);
        }
        for &id in &conns {
            if let Ok(n) = host.tcp_mut().recv(id, &mut buf, now) {
                let _ = host.tcp_mut().send(id, &buf[..n], now);
                if n == 0 {
                    host.tcp_mut().shutdown(id, now);
                }
            }
        }
        while let Some(out) = host.poll_transmit(now) {
            let p = Ipv4Packet::parse_with_fragments(&out).expect("we emit valid IPv4");
            assert_eq!(p.src, addr);
            assert!(out.len() <= 1500);
        }
    }
    // Let every timer run out: retransmissions, TIME-WAIT, reassembly.
    for _ in 0..64 {
        let Some(at) = host.poll_at() else { break };
        now = at.max(now);
        host.handle_timeout(now);
        while host.poll_transmit(now).is_some() {}
    }
});
