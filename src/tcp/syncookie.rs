//! SYN cookies (RFC 4987 §3.6), Linux style: when a listener's SYN queue is full the
//! SYN-ACK's ISN itself carries what the connection needs, so no state is kept until
//! the handshake's final ACK brings the cookie back (as SEG.ACK − 1).
//!
//! ```text
//!   ISN = H1(4-tuple) + SEG.SEQ(peer ISN) + (t << 24) + ((H2(4-tuple, t, SEG.SEQ) + mss_index) mod 2^24)
//!          keyed hash     binds to the SYN      8-bit        keyed hash                2 bits
//!                                               counter
//! ```
//!
//! `t` counts 64-second periods; a cookie is accepted for [`MAX_AGE`] periods after the
//! one it was made in. The MSS is recovered from a table of common values (the largest
//! entry not above the peer's MSS). With timestamps the low five bits of our TSval carry
//! the peer's window scale (4 bits, 15 = none) and SACK-permitted (1 bit); the ACK echoes
//! them in TSecr. Without timestamps the cookie SYN-ACK offers neither window scaling nor
//! SACK (Linux does the same), so those are the only things lost.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use super::seq::SeqNum;
use crate::time::Instant;

/// MSS values a cookie can express (Linux `msstab`): 536 (RFC 9293 default), 1300 (tunnels),
/// 1440 (PPPoE-ish), 1460 (Ethernet).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Counter periods a cookie stays valid after the one it was issued in.
pub const MAX_AGE: u32 = 2;

/// Seconds per counter tick.
const PERIOD_SECS: u64 = 64;

/// TSval bits that carry options (5: wscale 4 bits + SACK 1 bit).
pub const TS_OPT_BITS: u32 = 5;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
const NO_WSCALE: u32 = 0xf;

fn counter(now: Instant) -> u32 {
    ((now.total_millis() / 1000 / PERIOD_SECS) & 0xff) as u32
}

/// The keyed hash of RFC 4987 §3.6 over the 4-tuple: for an IPv6 connection the full
/// 128-bit addresses go in (a cookie must not validate for another address that shares
/// some bits).
fn hash(key: u64, local: SocketAddr, remote: SocketAddr, extra: Option<(u32, u32)>) -> u32 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    super::endpoint::hash_addr(local, &mut h);
    super::endpoint::hash_addr(remote, &mut h);
    extra.hash(&mut h);
    h.finish() as u32
}

/// Index of the largest table MSS not above `mss` (0 if `mss` is below them all).
pub fn mss_index(mss: u16) -> u32 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// The cookie ISN for a SYN from `remote` with sequence number `peer_isn`.
pub fn encode(
    key: &[u64; 2],
    local: SocketAddr,
    remote: SocketAddr,
    peer_isn: SeqNum,
    mss_idx: u32,
    now: Instant,
) -> SeqNum {
    let t = counter(now);
    let low =
        hash(key[1], local, remote, Some((t, peer_isn.0))).wrapping_add(mss_idx) & 0x00ff_ffff;
    SeqNum(
        hash(key[0], local, remote, None)
            .wrapping_add(peer_isn.0)
            .wrapping_add(t << 24)
            .wrapping_add(low),
    )
}

/// Check a returning cookie (`cookie` = SEG.ACK − 1, `peer_isn` = SEG.SEQ − 1): the MSS
/// it encodes, or None if it is forged, garbled or too old.
pub fn decode(
    key: &[u64; 2],
    local: SocketAddr,
    remote: SocketAddr,
    peer_isn: SeqNum,
    cookie: SeqNum,
    now: Instant,
) -> Option<u16> {
    let v = cookie
        .0
        .wrapping_sub(hash(key[0], local, remote, None))
        .wrapping_sub(peer_isn.0);
    let t = v >> 24;
    let age = counter(now).wrapping_sub(t) & 0xff;
    if age > MAX_AGE {
        return None;
    }
    let idx = v.wrapping_sub(hash(key[1], local, remote, Some((t, peer_isn.0)))) & 0x00ff_ffff;
    MSS_TABLE.get(idx as usize).copied()
}

/// Our TSval for a cookie SYN-ACK: the clock `raw` with the low bits replaced by the
/// peer's options, never ahead of the clock (later TSvals must not go backwards).
pub fn encode_ts(raw: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let ws = wscale.map_or(NO_WSCALE, |w| u32::from(w.min(14)));
    let bits = ws | (u32::from(sack) << 4);
    let v = (raw & !TS_OPT_MASK) | bits;
    if (v.wrapping_sub(raw) as i32) > 0 {
        v.wrapping_sub(1 << TS_OPT_BITS)
    } else {
        v
    }
}

/// The peer's window scale and SACK-permitted, from the TSecr of the returning ACK.
pub fn decode_ts(tsecr: u32) -> (Option<u8>, bool) {
    let ws = tsecr & 0xf;
    let wscale = (ws != NO_WSCALE).then_some(ws.min(14) as u8);
    (wscale, tsecr & 0x10 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    const L: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80));
    const R: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000));

    fn v6(last: u16, port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last),
            port,
            0,
            0,
        ))
    }
    const KEY: [u64; 2] = [0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321];

    #[test]
    fn round_trip_recovers_the_mss_within_the_age_limit() {
        let now = Instant::from_secs(1_000_000);
        for (i, &m) in MSS_TABLE.iter().enumerate() {
            let c = encode(&KEY, L, R, SeqNum(77), i as u32, now);
            assert_eq!(decode(&KEY, L, R, SeqNum(77), c, now), Some(m));
            let later = Instant::from_secs(1_000_000 + 64 * 2);
            assert_eq!(decode(&KEY, L, R, SeqNum(77), c, later), Some(m));
            let too_late = Instant::from_secs(1_000_000 + 64 * 4);
            assert_eq!(decode(&KEY, L, R, SeqNum(77), c, too_late), None);
        }
    }

    #[test]
    fn forged_or_mismatched_cookies_fail() {
        let now = Instant::from_secs(5000);
        let c = encode(&KEY, L, R, SeqNum(77), 3, now);
        let other = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 40000));
        assert_eq!(decode(&KEY, L, other, SeqNum(77), c, now), None);
        assert_eq!(decode(&KEY, L, R, SeqNum(78), c, now), None);
        assert_eq!(decode(&[1, 2], L, R, SeqNum(77), c, now), None);
        // Random guesses essentially never pass (4 valid values out of 2^24 per counter).
        let hits = (0..100_000u32)
            .filter(|&g| {
                decode(
                    &KEY,
                    L,
                    R,
                    SeqNum(77),
                    SeqNum(g.wrapping_mul(2_654_435_761)),
                    now,
                )
                .is_some()
            })
            .count();
        assert!(hits <= 1, "{hits} random cookies accepted");
    }

    #[test]
    fn ipv6_cookies_hash_the_whole_addresses() {
        let now = Instant::from_secs(5000);
        let (l, r) = (v6(2, 80), v6(1, 40000));
        let c = encode(&KEY, l, r, SeqNum(77), 2, now);
        assert_eq!(decode(&KEY, l, r, SeqNum(77), c, now), Some(MSS_TABLE[2]));
        // A peer differing only in the high bits of its address, which an IPv4-sized
        // hash of the low 32 bits would not see, does not validate the cookie.
        let far = SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1),
            40000,
            0,
            0,
        ));
        assert_eq!(decode(&KEY, l, far, SeqNum(77), c, now), None);
        // Nor does the IPv4-mapped form of some IPv4 pair, nor the IPv4 pair itself.
        assert_eq!(decode(&KEY, L, R, SeqNum(77), c, now), None);
    }

    #[test]
    fn mss_index_picks_the_largest_not_above() {
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(9000), 3);
        assert_eq!(mss_index(1400), 1);
        assert_eq!(mss_index(536), 0);
        assert_eq!(mss_index(100), 0);
    }

    #[test]
    fn timestamp_bits_round_trip_and_never_run_ahead() {
        for raw in [0u32, 31, 32, 1000, u32::MAX] {
            for ws in [None, Some(0), Some(7), Some(14)] {
                for sack in [false, true] {
                    let v = encode_ts(raw, ws, sack);
                    assert!((v.wrapping_sub(raw) as i32) <= 0, "{v} ahead of {raw}");
                    assert_eq!(decode_ts(v), (ws, sack));
                }
            }
        }
    }
}
