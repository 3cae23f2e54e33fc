//! Fuzz the IPv6 receive path with sequences of fragments of a few datagrams: no panic,
//! memory and table bounds hold, every delivered packet is a valid IPv6 packet with at
//! most 65535 payload bytes, every error packet fits in 1280 bytes.
//!
//! Input: records of 6 bytes — id (low 2 bits), flags (bit 0: M, bit 1: advance the
//! clock by 20 s, bit 2: put a destination options header before the Fragment header,
//! bits 3-4: the next header after it: UDP, TCP, destination options, no next header),
//! offset in 8-byte units (2 bytes, 13 bits), length (2 bytes) — the data is a pattern
//! derived from the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv6Addr;
use std::time::Duration;
use tunstack::ip::frag::FragConfig;
use tunstack::ip::frag6::{Ipv6Input, Verdict};
use tunstack::ip::ipv6::{self, Ipv6Packet};
use tunstack::ip::icmp::RateLimitConfig;
use tunstack::time::Instant;

fuzz_target!(|data: &[u8]| {
    let config = FragConfig {
        timeout: Duration::from_secs(60),
        max_datagrams: 3,
        max_bytes: 128 * 1024,
    };
    let (a, b) = (
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    );
    let mut input = Ipv6Input::new(b, config.clone(), RateLimitConfig::default());
    let mut now = Instant::from_millis(0);
    for rec in data.chunks_exact(6) {
        let id = u32::from(rec[0] & 3);
        let more = rec[1] & 1 != 0;
        if rec[1] & 2 != 0 {
            now += Duration::from_secs(20);
        }
        let inner = [
            ipv6::NEXT_UDP,
            ipv6::NEXT_TCP,
            ipv6::NEXT_DEST_OPTIONS,
            ipv6::NEXT_NONE,
        ][usize::from((rec[1] >> 3) & 3)];
        let offset = usize::from(u16::from_be_bytes([rec[2], rec[3]]) & 0x1fff) * 8;
        let len = usize::from(u16::from_be_bytes([rec[4], rec[5]])) % 1600;
        let mut body = Vec::new();
        let first = if rec[1] & 4 != 0 {
            body.extend_from_slice(&ipv6::ext_header(ipv6::NEXT_FRAGMENT, &[]));
            ipv6::NEXT_DEST_OPTIONS
        } else {
            ipv6::NEXT_FRAGMENT
        };
        body.extend_from_slice(&ipv6::fragment_header(inner, offset, more, id));
        body.extend((0..len).map(|i| (i as u8) ^ rec[0]));
        let packet = ipv6::emit(a, b, first, 64, &body);
        let r = input.receive(&packet, now);
        if let Verdict::Deliver(d) = &r.verdict {
            let p = Ipv6Packet::parse(&d.bytes).expect("delivered packet parses");
            assert_eq!((p.src, p.dst), (a, b));
            assert!(d.bytes.len() <= 40 + 65535);
        }
        if let Some(sent) = &r.send {
            assert!(sent.len() <= ipv6::MIN_MTU);
        }
        let re = input.reassembler();
        assert!(re.memory() <= config.max_bytes);
        assert!(re.in_progress() <= config.max_datagrams);
        if input.poll_at().is_some_and(|at| at <= now) {
            for sent in input.expire(now) {
                assert!(sent.len() <= ipv6::MIN_MTU);
            }
        }
    }
});
