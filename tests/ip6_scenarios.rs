//! Host-level IPv6 scenarios in virtual time through `ip::frag6::Ipv6Input`, the receive
//! path an IPv6 host runs for every packet: extension header chains and option action
//! bits (RFC 8200 §4), overlapping and tiny fragments (RFC 5722, RFC 7112), the 60 s
//! reassembly time-out with time exceeded (RFC 8200 §4.5), and the ICMPv6 error rate
//! limit (RFC 4443 §2.4(f)).
//!
//! Host A (fd00::1) is the one under test; B (fd00::2) sends to it.

use std::net::Ipv6Addr;
use std::time::Duration;

use tunstack::ip::frag6::{self, Ipv6Input, Verdict};
use tunstack::ip::icmp::RateLimitConfig;
use tunstack::ip::icmpv6::{self, ErrorKind6};
use tunstack::ip::ipv6::{self, ext_header, fragment_header, Ipv6Packet, NEXT_UDP};
use tunstack::time::Instant;

const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn host() -> Ipv6Input {
    Ipv6Input::new(A, frag6::default_config(), RateLimitConfig::default())
}

/// B → `dst`: the extension headers `exts` (the first named by `first`), then a UDP-ish
/// payload.
fn packet(dst: Ipv6Addr, first: u8, exts: &[Vec<u8>], upper: &[u8]) -> Vec<u8> {
    let mut payload = exts.concat();
    payload.extend_from_slice(upper);
    ipv6::emit(B, dst, first, 64, &payload)
}

/// The ICMPv6 error in `sent`, checked as B would receive it: (type, code, parameter).
fn error_in(sent: &[u8]) -> (u8, u8, u32) {
    let p = Ipv6Packet::parse(sent).expect("error packet parses");
    assert_eq!((p.src, p.dst, p.next_header), (A, B, ipv6::NEXT_ICMPV6));
    assert!(sent.len() <= ipv6::MIN_MTU);
    let m = p.payload;
    (m[0], m[1], u32::from_be_bytes([m[4], m[5], m[6], m[7]]))
}

fn delivered_payload(v: &Verdict<'_>) -> Vec<u8> {
    match v {
        Verdict::Deliver(d) => {
            assert_eq!((d.src, d.protocol), (B, NEXT_UDP));
            d.payload().to_vec()
        }
        other => panic!("not delivered: {other:?}"),
    }
}

#[test]
fn a_chain_of_every_extension_header_is_delivered() {
    let mut a = host();
    let hbh = ext_header(ipv6::NEXT_DEST_OPTIONS, &[5, 2, 0, 0, 1, 0]);
    let dst1 = ext_header(ipv6::NEXT_ROUTING, &[1, 4, 0, 0, 0, 0]);
    let rt = ext_header(ipv6::NEXT_DEST_OPTIONS, &[4, 0, 0, 0, 0, 0]);
    let dst2 = ext_header(NEXT_UDP, &[0x3f, 2, 9, 9]);
    let bytes = packet(
        A,
        ipv6::NEXT_HOP_BY_HOP,
        &[hbh, dst1, rt, dst2],
        b"datagram",
    );
    let r = a.receive(&bytes, t(0));
    assert_eq!(delivered_payload(&r.verdict), b"datagram");
    assert_eq!(r.send, None);
    assert!(a.drops().is_empty());
}

#[test]
fn each_option_action_bit() {
    let group: Ipv6Addr = "ff02::1".parse().unwrap();
    // (option type, delivered?, error to unicast?, error to multicast?)
    let cases = [
        (0x3e, true, false, false),
        (0x7e, false, false, false),
        (0xbe, false, true, true),
        (0xfe, false, true, false),
    ];
    for (kind, delivered, to_unicast, to_group) in cases {
        for (dst, error_expected) in [(A, to_unicast), (group, to_group)] {
            let mut a = host();
            let opts = ext_header(NEXT_UDP, &[1, 0, kind, 2, 0, 0]);
            let bytes = packet(dst, ipv6::NEXT_DEST_OPTIONS, &[opts], b"x");
            let r = a.receive(&bytes, t(0));
            assert_eq!(
                matches!(r.verdict, Verdict::Deliver(_)),
                delivered,
                "{kind:#x}"
            );
            assert_eq!(r.send.is_some(), error_expected, "{kind:#x} to {dst}");
            if let Some(sent) = r.send {
                // Parameter problem code 2 pointing at the option type: 40 + 2 + 2.
                assert_eq!(error_in(&sent), (4, 2, 44));
                let e = icmpv6::parse_error(Ipv6Packet::parse(&sent).unwrap().payload).unwrap();
                assert_eq!((e.about.src, e.about.dst), (B, dst));
            }
        }
    }
}

#[test]
fn routing_header_type_0_with_segments_left_is_refused() {
    let mut a = host();
    let rt = ext_header(NEXT_UDP, &[0, 2, 0, 0, 0, 0]);
    let bytes = packet(A, ipv6::NEXT_ROUTING, &[rt], b"x");
    let r = a.receive(&bytes, t(0));
    assert_eq!(r.verdict, Verdict::Dropped("ipv6-routing-unknown"));
    assert_eq!(error_in(&r.send.unwrap()), (4, 0, 42));
}

#[test]
fn fragmented_datagram_reassembles_and_the_tail_headers_are_processed_after() {
    let mut a = host();
    // Destination options inside the fragmentable part, then 3000 bytes of UDP.
    let mut inner = ext_header(NEXT_UDP, &[0x3e, 0]);
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    inner.extend_from_slice(&data);
    let frags = ipv6::emit_fragments(B, A, ipv6::NEXT_DEST_OPTIONS, 64, 77, &inner, 1280);
    assert_eq!(frags.len(), 3);
    for f in &frags[..2] {
        assert_eq!(a.receive(f, t(0)).verdict, Verdict::Pending);
    }
    let r = a.receive(&frags[2], t(10));
    assert_eq!(delivered_payload(&r.verdict), data);
    assert_eq!(a.reassembler().stats().reassembled, 1);

    // The same with an unknown option of action 10 after the Fragment header: only seen
    // after reassembly, then refused with parameter problem code 2.
    let mut inner = ext_header(NEXT_UDP, &[0xbe, 0]);
    inner.extend_from_slice(&data);
    let frags = ipv6::emit_fragments(B, A, ipv6::NEXT_DEST_OPTIONS, 64, 78, &inner, 1280);
    let mut out = Vec::new();
    for f in &frags {
        out.push(a.receive(f, t(20)));
    }
    let last = out.pop().unwrap();
    assert_eq!(last.verdict, Verdict::Dropped("ipv6-option-unknown"));
    assert_eq!(error_in(&last.send.unwrap()), (4, 2, 42));
}

#[test]
fn overlapping_and_tiny_fragments() {
    let mut a = host();
    let frag = |id: u32, offset: usize, more: bool, data: &[u8]| {
        let mut body = fragment_header(NEXT_UDP, offset, more, id).to_vec();
        body.extend_from_slice(data);
        ipv6::emit(B, A, ipv6::NEXT_FRAGMENT, 64, &body)
    };
    // RFC 5722: an overlap drops the datagram silently, even if the rest then arrives.
    assert_eq!(
        a.receive(&frag(1, 0, true, &[1; 16]), t(0)).verdict,
        Verdict::Pending
    );
    let overlapping = frag(1, 8, true, &[2; 16]);
    let r = a.receive(&overlapping, t(0));
    assert_eq!(
        (r.verdict, r.send),
        (Verdict::Dropped("frag-overlap"), None)
    );
    assert_eq!(
        a.receive(&frag(1, 24, false, &[3; 8]), t(0)).verdict,
        Verdict::Pending
    );
    // Tiny first fragment: 8 bytes of an upper-layer header that needs 20 (RFC 7112).
    let mut body = fragment_header(ipv6::NEXT_TCP, 0, true, 2).to_vec();
    body.extend_from_slice(&[0; 8]);
    let tiny = ipv6::emit(B, A, ipv6::NEXT_FRAGMENT, 64, &body);
    let r = a.receive(&tiny, t(0));
    assert_eq!(r.verdict, Verdict::Dropped("frag-incomplete-chain"));
    assert_eq!(error_in(&r.send.unwrap()), (4, 3, 0));
    // A middle fragment of 12 bytes: parameter problem at the Payload Length.
    let middle = frag(3, 8, true, &[0; 12]);
    let r = a.receive(&middle, t(0));
    assert_eq!(error_in(&r.send.unwrap()), (4, 0, 4));
    // A flood of 8-byte fragments stays within the memory bound.
    let mut small = Ipv6Input::new(
        A,
        tunstack::ip::frag::FragConfig {
            max_bytes: 20_000,
            ..frag6::default_config()
        },
        RateLimitConfig::default(),
    );
    for i in 0..2000 {
        small.receive(&frag(9, 8 + i * 16, true, &[0; 8]), t(0));
    }
    assert!(small.reassembler().memory() <= 20_000);
    assert!(small.drops()["frag-memory-full"] > 1000);
}

#[test]
fn reassembly_times_out_after_60_s_with_time_exceeded() {
    let mut a = host();
    let data = vec![5u8; 2000];
    let frags = ipv6::emit_fragments(B, A, NEXT_UDP, 64, 5, &data, 1280);
    a.receive(&frags[0], t(1000));
    // A second datagram whose first fragment never comes.
    let late = ipv6::emit_fragments(B, A, NEXT_UDP, 64, 6, &data, 1280);
    a.receive(&late[1], t(2000));
    assert_eq!(a.poll_at(), Some(t(61_000)));
    assert!(a.expire(t(60_999)).is_empty());
    let sent = a.expire(t(61_000));
    assert_eq!(sent.len(), 1);
    assert_eq!(error_in(&sent[0]), (3, 1, 0));
    let quoted = &Ipv6Packet::parse(&sent[0]).unwrap().payload[8..];
    assert_eq!(quoted, &frags[0][..quoted.len()]);
    // RFC 8200 §4.5: no first fragment, no message.
    assert!(a.expire(t(62_000)).is_empty());
    assert_eq!(a.drops()["frag-timeout"], 2);
    // The last fragment arriving late starts over and cannot complete.
    assert_eq!(a.receive(&frags[1], t(62_000)).verdict, Verdict::Pending);
}

#[test]
fn errors_are_rate_limited_in_virtual_time() {
    let mut a = Ipv6Input::new(
        A,
        frag6::default_config(),
        RateLimitConfig {
            // The host-wide bucket off: the per-destination one is under test.
            msgs_per_sec: 0,
            burst: 0,
            per_dest_interval: Duration::from_millis(200),
            per_dest_burst: 5,
        },
    );
    let opts = ext_header(NEXT_UDP, &[0xbe, 0]);
    let bad = packet(A, ipv6::NEXT_DEST_OPTIONS, &[opts], b"x");
    // 100 bad packets at once: the burst of 5 errors, every one dropped and counted.
    let sent = (0..100)
        .filter(|_| a.receive(&bad, t(0)).send.is_some())
        .count();
    assert_eq!(sent, 5);
    assert_eq!(a.drops()["ipv6-option-unknown"], 100);
    assert_eq!(a.errors_rate_limited(), 95);
    // Then one per 200 ms: 10 packets per second for 2 s give 10 errors.
    let sent = (1..=20)
        .filter(|i| a.receive(&bad, t(i * 100)).send.is_some())
        .count();
    assert_eq!(sent, 10);
    // Port unreachable for UDP shares the bucket.
    let udp = ipv6::emit(B, A, NEXT_UDP, 64, &[0, 53, 0, 9, 0, 8, 0, 0]);
    assert!(a.port_unreachable(&udp, t(2000)).is_none());
    let sent = a.port_unreachable(&udp, t(2200)).unwrap();
    assert_eq!(error_in(&sent), (1, 4, 0));
    let e = icmpv6::parse_error(Ipv6Packet::parse(&sent).unwrap().payload).unwrap();
    assert_eq!(e.kind, ErrorKind6::DestUnreachable { code: 4 });
    assert_eq!(e.about.ports, Some((53, 9)));
    assert_eq!(a.errors_sent(), 16);
    // Another source has its own bucket: it gets its error while B's is empty.
    let c: Ipv6Addr = "fd00::3".parse().unwrap();
    let from_c = ipv6::emit(c, A, NEXT_UDP, 64, &[0, 53, 0, 9, 0, 8, 0, 0]);
    assert!(a.port_unreachable(&udp, t(2200)).is_none());
    assert!(a.port_unreachable(&from_c, t(2200)).is_some());
}
