//! # tunstack — a userspace TCP/IP stack you can read
//!
//! tunstack opens a Linux TUN device and implements the layers of the classic TCP/IP
//! diagram itself, one module per layer:
//!
//! ```text
//!  curl / browser (Linux kernel, other side of the TUN)
//!         │ IPv4 packets
//!  ┌──────▼──────────────────────────────────────────────────────────────┐
//!  │ link     network interface: TUN, or TAP + Ethernet II + ARP; pcap   │
//!  │ ip       internet: IPv4 parse + validate, ICMP echo / unreachable    │
//!  │ tcp      transport: segments, sequence numbers, the state machine,   │
//!  │          retransmission, windows, listeners            (sans-IO)     │
//!  │ udp      transport: datagrams, bound ports, echo        (sans-IO)     │
//!  │ stack    the host (IP demux, sans-IO) and the event loop that owns   │
//!  │          the device and drives the layers and their timers           │
//!  │ socket   TcpListener / TcpStream with std::io::Read + Write          │
//!  │ http     application: an HTTP/1.1 server and client                  │
//!  └─────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Beside the layers, [`diagram`] reads a capture (`serve --pcap`) and draws each TCP
//! connection as a ladder diagram (`tunstack diagram`).
//!
//! The protocol core (`ip`, `tcp`, `stack::Interface`) is *sans-IO*: it takes a packet
//! and the current [`time::Instant`] and returns what to send. It never reads a clock,
//! sleeps or touches the device, so every RFC rule is testable with a virtual clock.
#![deny(unsafe_code)]

pub mod commands;
pub mod diagram;
pub mod http;
pub mod ip;
pub mod link;
pub mod live;
pub mod packetdrill;
pub mod preflight;
pub mod serve;
pub mod socket;
pub mod stack;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod trace;
pub mod udp;
