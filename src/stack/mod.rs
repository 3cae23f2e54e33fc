//! The stack: the sans-IO host and the two runtimes that drive it.
//!
//! ```text
//!  src/stack/
//!  ├── iface.rs     the host (sans-IO): one packet in → the layers → packets out, timers;
//!  │                no clock, no device, no threads
//!  ├── round.rs     one round of work, shared by both runtimes: deliver, fire timers,
//!  │                transmit, graceful stop, statistics snapshot
//!  ├── evloop.rs    runtime 1, the default: one thread per queue owns a device and the
//!  │                host, with no lock, and runs a readiness-driven application
//!  └── threaded.rs  runtime 2 (--threaded): a stack thread behind a lock, and blocking
//!      │            sockets (socket::TcpStream) for thread-per-connection applications
//!      └── threaded/observe.rs  its traced round (--trace, --step)
//! ```
//!
//! Only the runtimes read the clock and touch a device (any [`crate::link::Device`], with
//! whatever middleware wraps it); the host and the protocol layers below it take the
//! current time as an argument (docs/architecture.md, "The sans-IO core").

pub mod evloop;
mod iface;
mod round;
pub mod threaded;

pub use iface::{IfaceStats, Interface, DEFAULT_TTL};
pub use threaded::{start, StackHandle};

use std::net::Ipv4Addr;

use crate::link::ethernet_layer::{EthernetConfig, EthernetStats};
use crate::link::fault::FaultStats;
use crate::tcp::{self, State, TcpStats};
use crate::trace::Tracer;
use crate::udp::UdpStats;

pub use crate::link::Direction;

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The address the stack answers as.
    pub addr: Ipv4Addr,
    /// Transport-layer settings.
    pub tcp: tcp::Config,
    /// Seed for ISN secrets and ephemeral ports; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Largest packet the device carries; the read buffer size.
    pub mtu: usize,
    /// `Some` on a TAP device: the device carries Ethernet frames, and an
    /// [`EthernetLayer`] (framing + ARP) sits between it and the IP host. `None` on a TUN.
    pub ethernet: Option<EthernetConfig>,
    /// An IPv6 address to answer ICMPv6 echo on (TUN mode; TCP/UDP are IPv4-only).
    pub addr6: Option<std::net::Ipv6Addr>,
    /// Where `--trace`/`--step` events go; `None` (the default) costs nothing.
    pub tracer: Option<Tracer>,
}

impl StackConfig {
    /// Defaults for a stack answering as `addr`.
    pub fn new(addr: Ipv4Addr) -> StackConfig {
        StackConfig {
            addr,
            tcp: tcp::Config::default(),
            seed: None,
            mtu: 1500,
            ethernet: None,
            addr6: None,
            tracer: None,
        }
    }
}

/// A snapshot of every layer's counters ([`evloop::snapshot`] takes one).
#[derive(Debug, Clone)]
pub struct StackStats {
    /// Internet layer and demultiplexing.
    pub ip: IfaceStats,
    /// Transport layer.
    pub tcp: TcpStats,
    /// UDP.
    pub udp: UdpStats,
    /// Ethernet and ARP (TAP mode only).
    pub link: Option<EthernetStats>,
    /// Number of connections in each state.
    pub states: Vec<(State, usize)>,
    /// Faults injected on purpose, both directions added up.
    pub faults: FaultStats,
}
