//! Fuzz `Ipv4Packet::parse` and `parse_with_fragments`: no panic on any input, and every
//! accepted packet satisfies the invariants the rest of the stack relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunstack::ip::{icmp, ipv4::Ipv4Packet};

fuzz_target!(|data: &[u8]| {
    let strict = Ipv4Packet::parse(data);
    match Ipv4Packet::parse_with_fragments(data) {
        Ok(p) => {
            assert!(p.header_len >= 20 && p.header_len <= 60);
            assert!(p.header_len <= p.bytes.len() && p.bytes.len() <= data.len());
            assert_eq!(p.payload.len(), p.bytes.len() - p.header_len);
            assert_eq!(p.header().len(), p.header_len);
            assert!(p.ttl > 0);
            // The strict parser accepts exactly the whole datagrams.
            assert_eq!(strict.is_ok(), !p.is_fragment());
            if let Ok(s) = strict {
                assert_eq!(s, p);
            }
            let _ = icmp::may_send_error_for(&p);
            let _ = icmp::handle(p.payload);
            let _ = icmp::parse_error(p.payload);
        }
        Err(e) => {
            assert!(strict.is_err());
            assert!(!e.reason().is_empty());
        }
    }
});
