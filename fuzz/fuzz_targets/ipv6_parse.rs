//! Fuzz `Ipv6Packet::parse`, the extension header walk and the ICMPv6 error helpers: no
//! panic on any input; every walk result stays inside the packet; every error packet the
//! receive path builds fits in the 1280-byte minimum MTU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv6Addr;
use tunstack::ip::frag6::{self, Ipv6Input, Verdict};
use tunstack::ip::ipv6::{self, Ipv6Packet, Walk, EXT_LIMITS};
use tunstack::ip::icmp::RateLimitConfig;
use tunstack::ip::icmpv6;
use tunstack::time::Instant;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv6Packet::parse(data) {
        assert_eq!(p.bytes.len(), 40 + p.payload.len());
        match ipv6::walk(p) {
            Walk::Upper(u) => {
                assert!(u.offset >= 40 && u.offset <= p.bytes.len());
                assert!(u.offset - 40 <= EXT_LIMITS.max_chain_len);
                assert!(u.next_header_at < u.offset);
            }
            Walk::Fragment(f) => {
                assert!(f.header_at + 8 <= p.bytes.len());
                assert_eq!(f.unfragmentable().len() + 8 + f.data().len(), p.bytes.len());
            }
            Walk::Drop { reason, reply } => {
                assert!(!reason.is_empty());
                if let Some(r) = reply {
                    assert!((r.param as usize) < p.bytes.len().max(1));
                }
            }
        }
        let _ = icmpv6::handle(p.src, p.dst, p.payload);
        let _ = icmpv6::parse_error(p.payload);
    }
    for t in 1..=4 {
        let _ = icmpv6::may_send_error(t, 0, data);
    }
    let us = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    let mut input = Ipv6Input::new(us, frag6::default_config(), RateLimitConfig::default());
    let r = input.receive(data, Instant::from_millis(0));
    if let Some(sent) = &r.send {
        assert!(sent.len() <= ipv6::MIN_MTU);
        assert!(Ipv6Packet::parse(sent).is_ok());
    }
    if let Verdict::Deliver(d) = &r.verdict {
        assert!(d.offset <= d.bytes.len());
    }
});
