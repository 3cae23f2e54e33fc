//! ICMPv6 (RFC 4443): echo request → echo reply. The checksum, unlike ICMPv4's, covers the
//! IPv6 pseudo-header (RFC 4443 §2.3), so the addresses are part of the input.

use std::net::Ipv6Addr;

use super::icmp::IcmpError;
use super::ipv4::checksum_with;
use super::ipv6::{pseudo_header_sum, NEXT_ICMPV6};

/// Echo request (RFC 4443 §4.1).
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply (RFC 4443 §4.2).
pub const TYPE_ECHO_REPLY: u8 = 129;
/// Length of the ICMPv6 header (type, code, checksum, 4 message bytes).
pub const HEADER_LEN: usize = 8;

fn checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    checksum_with(pseudo_header_sum(src, dst, NEXT_ICMPV6, len), message)
}

/// Handle an ICMPv6 message from `src` to `dst` (us): `Ok(Some(reply))` for an echo
/// request — same identifier, sequence and data, type 129, checksum for `dst → src` —,
/// `Ok(None)` for anything else, `Err` when too short or the checksum fails.
pub fn handle(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Result<Option<Vec<u8>>, IcmpError> {
    if message.len() < HEADER_LEN {
        return Err(IcmpError::TooShort { len: message.len() });
    }
    if checksum(src, dst, message) != 0 {
        return Err(IcmpError::BadChecksum);
    }
    if message.first() != Some(&TYPE_ECHO_REQUEST) || message.get(1) != Some(&0) {
        return Ok(None);
    }
    let mut reply = message.to_vec();
    if let Some(t) = reply.first_mut() {
        *t = TYPE_ECHO_REPLY;
    }
    if let Some(c) = reply.get_mut(2..4) {
        c.copy_from_slice(&[0, 0]);
    }
    let sum = checksum(dst, src, &reply);
    if let Some(c) = reply.get_mut(2..4) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    fn request(data: &[u8]) -> Vec<u8> {
        let mut m = vec![TYPE_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        m.extend_from_slice(data);
        let sum = checksum(A, B, &m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    #[test]
    fn echo_request_gets_a_reply_with_a_valid_checksum() {
        let req = request(b"ping6");
        let reply = handle(A, B, &req).unwrap().unwrap();
        assert_eq!(reply[0], TYPE_ECHO_REPLY);
        assert_eq!(&reply[4..], &req[4..]);
        assert_eq!(checksum(B, A, &reply), 0, "verifies from B to A");
    }

    #[test]
    fn checksum_binds_the_addresses_and_other_types_are_ignored() {
        let req = request(b"x");
        assert_eq!(handle(A, A, &req), Err(IcmpError::BadChecksum));
        assert_eq!(handle(A, B, &req[..7]), Err(IcmpError::TooShort { len: 7 }));
        let mut reply = req.clone();
        reply[0] = TYPE_ECHO_REPLY;
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(A, B, &reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(handle(A, B, &reply), Ok(None));
    }
}
