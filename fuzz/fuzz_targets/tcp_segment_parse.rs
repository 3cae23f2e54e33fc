//! Fuzz `tcp::Segment::parse`: no panic on any input; an accepted segment emits bytes
//! that parse again to the same segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use tunstack::tcp::Segment;

fuzz_target!(|data: &[u8]| {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    if let Ok(seg) = Segment::parse(a, b, data) {
        let _ = seg.seg_len();
        let bytes = seg.emit(a, b);
        let again = Segment::parse(a, b, &bytes).expect("our own emit must parse");
        assert_eq!(
            (
                again.src_port,
                again.dst_port,
                again.seq,
                again.ack,
                again.flags,
                again.window
            ),
            (
                seg.src_port,
                seg.dst_port,
                seg.seq,
                seg.ack,
                seg.flags,
                seg.window
            )
        );
        assert_eq!(again.payload, seg.payload);
        // The checksum covers the pseudo-header: the same bytes between other hosts fail.
        assert!(Segment::parse(b, Ipv4Addr::new(10, 0, 0, 3), data).is_err());
    }
});
