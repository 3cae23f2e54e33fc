//! Fuzz the fragment reassembler with sequences of fragments of a few datagrams: no panic,
//! memory and table bounds hold, every completed datagram is a valid IPv4 packet of at
//! most 65535 bytes.
//!
//! Input: records of 6 bytes — id (low 2 bits), flags (bit 0: MF, bit 1: advance the
//! clock by 10 s), offset in 8-byte units (2 bytes, 13 bits), length (2 bytes) — the
//! fragment's data is a pattern derived from the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::time::Duration;
use tunstack::ip::frag::{FragConfig, FragResult, Reassembler};
use tunstack::ip::ipv4::{self, Ipv4Packet};
use tunstack::time::Instant;

fuzz_target!(|data: &[u8]| {
    let config = FragConfig {
        timeout: Duration::from_secs(30),
        max_datagrams: 3,
        max_bytes: 128 * 1024,
    };
    let mut r = Reassembler::new(config.clone());
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut now = Instant::from_millis(0);
    for rec in data.chunks_exact(6) {
        let id = u16::from(rec[0] & 3);
        let more = rec[1] & 1 != 0;
        if rec[1] & 2 != 0 {
            now += Duration::from_secs(10);
        }
        let units = u16::from_be_bytes([rec[2], rec[3]]) & 0x1fff;
        let len = usize::from(u16::from_be_bytes([rec[4], rec[5]])) % 1600;
        let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ rec[0]).collect();
        let mut packet = ipv4::emit(a, b, ipv4::PROTO_UDP, 64, id, &payload);
        // Flags/offset word and header checksum, by hand (the emitter sets DF only).
        let word = if more { 0x2000 | units } else { units };
        packet[6..8].copy_from_slice(&word.to_be_bytes());
        packet[10..12].copy_from_slice(&[0, 0]);
        let sum = ipv4::checksum(&packet[..20]);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
        let Ok(p) = Ipv4Packet::parse_with_fragments(&packet) else {
            continue;
        };
        if let FragResult::Complete(whole) = r.insert(&p, now) {
            assert!(whole.len() <= 65535);
            let w = Ipv4Packet::parse(&whole).expect("reassembled datagram parses");
            assert_eq!((w.src, w.dst, w.id), (a, b, id));
        }
        assert!(r.memory() <= config.max_bytes);
        assert!(r.in_progress() <= config.max_datagrams);
        if r.poll_at().is_some_and(|at| at <= now) {
            for gone in r.expire(now) {
                if let Some(q) = gone.quote {
                    assert!(q.len() >= 20 && q.len() <= 68);
                }
            }
        }
    }
});
