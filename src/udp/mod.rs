//! # Transport layer: UDP (RFC 768)
//!
//! The other transport of the TCP/IP diagram, beside TCP: no connections, no sequence
//! numbers, no retransmission — a datagram is a port pair, a length, a checksum and the
//! application's bytes, delivered at most once and possibly not at all.
//!
//! ```text
//!   0      7 8     15 16    23 24    31
//!  +--------+--------+--------+--------+
//!  |     Source      |   Destination   |
//!  |      Port       |      Port       |
//!  +--------+--------+--------+--------+
//!  |     Length      |    Checksum     |
//!  +--------+--------+--------+--------+
//!  |          data octets ...
//!  +---------------- ...
//! ```
//!
//! - [`datagram`]: parse and validate (length, checksum over the IPv4 pseudo-header and the
//!   zero-checksum rule), and emit.
//! - [`endpoint`]: the sans-IO UDP endpoint: bound ports, bounded per-socket receive queues,
//!   demultiplexing, counters. `stack::Interface` feeds it datagrams addressed to us and
//!   sends ICMP port unreachable when it finds no socket (RFC 1122 §4.1.3.1).
//!
//! The blocking socket on top is `socket::UdpSocket`.

pub mod datagram;
pub mod endpoint;

pub use datagram::{Datagram, UdpError, HEADER_LEN};
pub use endpoint::{
    Delivery, SocketId, Udp, UdpBindError, UdpConfig, UdpSendError, UdpStats, UdpTransmit,
};
