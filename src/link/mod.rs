//! # Network interface layer
//!
//! The lowest layer of the TCP/IP model: it moves whole packets between this host and a
//! network medium. Everything above it (IP, TCP, HTTP) only needs two operations — "give me
//! the next packet" and "put this packet on the wire" — plus the largest packet the medium
//! carries (the MTU). That, with what a fast runtime needs besides (a descriptor to wait on,
//! the offloads, gathered writes), is the [`Device`] trait, which every runtime drives.
//!
//! Our medium is a Linux **TUN** device ([`tunq::TunQueue`]): a virtual point-to-point
//! interface whose other end is the kernel's own IP stack. A TUN works at layer 3: each
//! `read` returns exactly one bare IP packet and each `write` injects one, with no Ethernet
//! header, no MAC addresses and therefore no ARP. That is why a TUN is ideal for a userspace
//! stack that starts at IP: the kernel routes packets for the TUN's subnet into our process,
//! and we answer as if we were another host on that subnet. A **TAP** device (the same
//! type, `TunOptions::tap`) carries Ethernet frames instead: then
//! [`ethernet_layer::EthernetLayer`] sits between the device and IP, framing packets
//! ([`ethernet`]) and resolving next hops with ARP ([`arp`]) — or, for IPv6, with the
//! Neighbor Discovery messages of [`ndp`]. A `TunQueue` is non-blocking, may be one of
//! several queues, and may take the kernel's checksum and segmentation offloads (64 KiB per
//! read or write instead of one packet), with [`gso`] to cut super-segments in software.
//!
//! Other devices implement the same trait: [`memory::pair`] connects two stacks back to back
//! inside one process for tests. **Middleware** wraps any device and is a device itself, as
//! smoltcp's `phy` wrappers are: [`fault::FaultDevice`] makes a link lossy on purpose (drop,
//! duplicate, reorder, corrupt, delay) with a seed, and [`pcap::PcapDevice`] records what
//! crosses it in a file Wireshark and tcpdump read. [`middleware`] builds the chain the
//! command line asks for, the same for every runtime. [`wan`] is a whole emulated wide-area
//! path (delay, jitter, random and burst loss, reordering, a rate-limited bottleneck queue),
//! the core of the `tunstack-wan` forwarder between two TUN devices, which drives blocking
//! [`tun::TunDevice`] handles from threads of its own.

use std::io;
use std::os::fd::RawFd;

pub mod arp;
pub mod ethernet;
pub mod ethernet_layer;
pub mod fault;
pub mod gso;
pub mod memory;
pub mod middleware;
pub mod ndp;
pub mod offload;
pub mod pcap;
pub mod tun;
pub mod tunq;
pub mod wan;

pub use tunq::{configure_link, delete_link, TunOptions, TunQueue};

use crate::time::Instant;
use fault::FaultStats;
use offload::{Offloads, RxMeta, TxMeta, MAX_SUPER_PACKET, MAX_SUPER_PACKET6};

/// Which way a packet crossed the device (for capture and tracing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the link to the stack.
    In,
    /// From the stack to the link.
    Out,
}

/// What a device's packets start with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Medium {
    /// Bare IP packets (a TUN).
    #[default]
    Ip,
    /// Ethernet II frames (a TAP).
    Ethernet,
}

/// A network device, as every runtime drives it: it never blocks, it can be waited on
/// (a file descriptor for epoll), and it says which offloads it accepted.
///
/// The same trait serves the real TUN/TAP queues ([`TunQueue`]), the in-memory links of the
/// tests ([`memory::pair`]) and the middleware that wraps any of them — fault injection
/// ([`fault::FaultDevice`]) and capture ([`pcap::PcapDevice`]) — so that a runtime takes
/// `D: Device` and gets whatever stack of wrappers it is handed, with direct (generic, not
/// virtual) calls when there are none. `now` is the runtime's clock: middleware that delays
/// packets decides with it and never reads a clock itself.
pub trait Device: Send {
    /// Receive one packet into `buf` (at least [`Device::recv_buf_len`] bytes long).
    /// `Ok(None)` when nothing is waiting. With offloads, the virtio header is already
    /// stripped and decoded into the [`RxMeta`].
    fn recv(&mut self, buf: &mut [u8], now: Instant) -> io::Result<Option<(usize, RxMeta)>>;
    /// Send one packet (a frame on an Ethernet medium). A device that accepted no transmit
    /// offload is never given a non-default `meta`.
    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) -> io::Result<()>;
    /// Send one packet made of `head` (link and IP headers, and the whole TCP header when
    /// `meta` asks for an offload) followed by `tail`, without first copying them
    /// together. This default copies; a device that can gather (`writev`) overrides it.
    fn send_gather(
        &mut self,
        head: &[u8],
        tail: [&[u8]; 2],
        meta: TxMeta,
        now: Instant,
    ) -> io::Result<()> {
        if tail.iter().all(|t| t.is_empty()) {
            return self.send(head, meta, now);
        }
        self.send(&offload::joined(head, tail), meta, now)
    }
    /// The file descriptor to wait on for readability (edge-triggered: read until
    /// [`Device::recv`] returns `Ok(None)`).
    fn raw_fd(&self) -> RawFd;
    /// The link MTU.
    fn mtu(&self) -> usize;
    /// What the device accepted when it was opened (none by default).
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }
    /// Bare IP packets or Ethernet frames.
    fn medium(&self) -> Medium {
        Medium::Ip
    }
    /// How large a receive buffer must be: the MTU, or 64 KiB and headers with `rx_tso4`
    /// (an IPv6 super-segment's 40-byte header more with `rx_tso6`).
    fn recv_buf_len(&self) -> usize {
        if self.offloads().rx_tso6 {
            MAX_SUPER_PACKET6 + 64
        } else if self.offloads().rx_tso4 {
            MAX_SUPER_PACKET + 64
        } else {
            self.mtu() + 64
        }
    }
    /// When packets held inside the device (middleware that delays or reorders) are next
    /// due: the runtime then calls [`Device::recv`] and [`Device::release`] even if the
    /// descriptor did not become readable. `None` for a device that holds nothing.
    fn poll_at(&self) -> Option<Instant> {
        None
    }
    /// Put on the wire the packets held for sending that are due at `now`. Runtimes call
    /// it once a round, after sending.
    fn release(&mut self, _now: Instant) -> io::Result<()> {
        Ok(())
    }
    /// The faults injected on purpose below the stack, if a fault injector is in the chain.
    fn fault_stats(&self) -> Option<FaultStats> {
        None
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn recv(&mut self, buf: &mut [u8], now: Instant) -> io::Result<Option<(usize, RxMeta)>> {
        (**self).recv(buf, now)
    }
    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) -> io::Result<()> {
        (**self).send(packet, meta, now)
    }
    fn send_gather(
        &mut self,
        head: &[u8],
        tail: [&[u8]; 2],
        meta: TxMeta,
        now: Instant,
    ) -> io::Result<()> {
        (**self).send_gather(head, tail, meta, now)
    }
    fn raw_fd(&self) -> RawFd {
        (**self).raw_fd()
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn offloads(&self) -> Offloads {
        (**self).offloads()
    }
    fn medium(&self) -> Medium {
        (**self).medium()
    }
    fn recv_buf_len(&self) -> usize {
        (**self).recv_buf_len()
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
    fn release(&mut self, now: Instant) -> io::Result<()> {
        (**self).release(now)
    }
    fn fault_stats(&self) -> Option<FaultStats> {
        (**self).fault_stats()
    }
}
