//! # Network interface layer
//!
//! The lowest layer of the TCP/IP model: it moves whole packets between this host and a
//! network medium. Everything above it (IP, TCP, HTTP) only needs two operations — "give me
//! the next packet" and "put this packet on the wire" — plus the largest packet the medium
//! carries (the MTU). That is the [`Device`] trait.
//!
//! Our medium is a Linux **TUN** device ([`tun`]): a virtual point-to-point interface whose
//! other end is the kernel's own IP stack. A TUN works at layer 3: each `read` returns exactly
//! one bare IP packet and each `write` injects one, with no Ethernet header, no MAC addresses
//! and therefore no ARP. That is why a TUN is ideal for a userspace stack that starts at IP:
//! the kernel routes packets for the TUN's subnet into our process, and we answer as if we
//! were another host on that subnet. A **TAP** device (the same module, [`tun::TunDevice::open_tap`]) carries Ethernet frames
//! instead: then [`ethernet_layer::EthernetLayer`] sits between the device and IP, framing
//! packets ([`ethernet`]) and resolving next hops with ARP ([`arp`]) — or, for IPv6, with
//! the Neighbor Discovery messages of [`ndp`].
//!
//! Other devices implement the same trait: [`memory::pair`] connects two stacks back to back
//! inside one process for tests, and [`pcap::PcapDevice`] wraps any device to record what
//! crosses it with a [`pcap::PcapWriter`], in a file Wireshark and tcpdump read.
//! [`tunq::TunQueue`] is the TUN the single-threaded event loop drives: non-blocking,
//! several queues, and the kernel's checksum and segmentation offloads (64 KiB per read or
//! write instead of one packet), with [`gso`] to cut super-segments in software.
//! [`fault`] makes a link lossy on purpose (drop, duplicate, reorder, corrupt, delay) with
//! a seed, for experiments and tests. [`wan`] is a whole emulated wide-area path (delay,
//! jitter, random and burst loss, reordering, a rate-limited bottleneck queue), the core of
//! the `tunstack-wan` forwarder between two TUN devices.

use std::io;

pub mod arp;
pub mod ethernet;
pub mod ethernet_layer;
pub mod fault;
pub mod gso;
pub mod memory;
pub mod ndp;
pub mod offload;
pub mod pcap;
pub mod tun;
pub mod tunq;
pub mod wan;

pub use tunq::{configure_link, delete_link, TunOptions, TunQueue};

/// A network device that carries bare IPv4 packets (no link-layer header).
///
/// Implementations must be `Send` so that the stack's event-loop thread can own them.
pub trait Device: Send {
    /// Receive one IP packet into `buf`; `Ok(n)` is its length. May block up to the device's
    /// configured timeout; returns `Err` of kind `WouldBlock` or `TimedOut` when nothing
    /// arrived. A packet longer than `buf` is truncated to `buf.len()` (size `buf` to the MTU).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Send one IP packet.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// Largest packet (MTU) the device carries.
    fn mtu(&self) -> usize;
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).recv(buf)
    }
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        (**self).send(packet)
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
}
