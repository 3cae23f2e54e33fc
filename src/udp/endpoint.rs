//! The sans-IO UDP endpoint: bound ports, bounded receive queues, demultiplexing.
//!
//! ```text
//!  on_datagram(src, dst, Datagram) ─ port bound? ─ no ─▶ Delivery::NoSocket
//!        │                                               (the host sends ICMP port
//!        │ yes: queue full? ─ yes ─▶ drop + count         unreachable, RFC 1122 §4.1.3.1)
//!        ▼
//!   socket.rx (≤ N datagrams, ≤ M bytes) ─▶ recv_from(id)
//!
//!   send_to(id, dst, data) ─▶ transmit queue (bounded) ─▶ poll_transmit() ─▶ the host
//!                                                         wraps it in IPv4 or IPv6
//! ```
//!
//! Like `tcp::Tcp` it never reads a clock or touches a device; unlike TCP it needs no
//! timers at all: a datagram is sent once, and nothing is retransmitted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::datagram::{Datagram, MAX_PAYLOAD_LEN};

/// First port of the ephemeral range (IANA, RFC 6335 §6; Linux uses 32768 by default).
pub const EPHEMERAL_FIRST: u16 = 49152;

/// Limits of the endpoint.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// Datagrams a socket holds before new arrivals are dropped.
    pub recv_queue_datagrams: usize,
    /// Payload bytes a socket holds before new arrivals are dropped (like `SO_RCVBUF`).
    pub recv_queue_bytes: usize,
    /// Most bound sockets.
    pub max_sockets: usize,
    /// Datagrams waiting for the stack thread to send; `send_to` fails beyond this (the
    /// kernel's `ENOBUFS`).
    pub send_queue_datagrams: usize,
}

impl Default for UdpConfig {
    fn default() -> UdpConfig {
        UdpConfig {
            recv_queue_datagrams: 256,
            recv_queue_bytes: 256 * 1024,
            max_sockets: 1024,
            send_queue_datagrams: 1024,
        }
    }
}

/// A bound UDP socket inside the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(u32);

/// Why `bind` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpBindError {
    /// Another socket has the port.
    AddrInUse,
    /// Every ephemeral port is taken, or `max_sockets` is reached.
    NoFreePort,
}

/// Why `send_to` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpSendError {
    /// The socket was closed.
    NotBound,
    /// The payload does not fit one IPv4 datagram (we do not fragment).
    TooLarge,
    /// Destination port 0 or an unspecified address.
    BadDestination,
    /// The transmit queue is full; try again after the stack thread ran.
    QueueFull,
}

impl fmt::Display for UdpBindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpBindError::AddrInUse => write!(f, "address in use"),
            UdpBindError::NoFreePort => write!(f, "no free port or socket slot"),
        }
    }
}

impl fmt::Display for UdpSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpSendError::NotBound => write!(f, "socket not bound"),
            UdpSendError::TooLarge => write!(f, "datagram larger than {MAX_PAYLOAD_LEN} bytes"),
            UdpSendError::BadDestination => write!(f, "destination address or port 0"),
            UdpSendError::QueueFull => write!(f, "transmit queue full"),
        }
    }
}

impl std::error::Error for UdpBindError {}
impl std::error::Error for UdpSendError {}

/// What happened to an arriving datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued on a socket.
    Delivered,
    /// The socket's queue was full: dropped (UDP promises nothing; counted).
    QueueFull,
    /// No socket on that port: the caller answers with ICMP port unreachable.
    NoSocket,
}

/// A datagram to send; the host adds the IP header (and fills an unspecified source
/// address with its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpTransmit {
    /// Source address and port (the address may be unspecified).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// The data.
    pub payload: Vec<u8>,
}

/// UDP counters.
#[derive(Debug, Clone, Default)]
pub struct UdpStats {
    /// Valid datagrams addressed to us.
    pub datagrams_in: u64,
    /// Datagrams handed to the host for sending.
    pub datagrams_out: u64,
    /// Datagrams queued on a socket.
    pub delivered: u64,
    /// Datagrams for ports nobody bound (answered with ICMP port unreachable when allowed).
    pub no_port: u64,
    /// Datagrams dropped because a socket's receive queue was full.
    pub queue_drops: u64,
    /// Malformed datagrams by reason (counted by the host that parses them).
    pub drops: BTreeMap<&'static str, u64>,
}

#[derive(Debug)]
struct Socket {
    local: SocketAddr,
    rx: VecDeque<(SocketAddr, Vec<u8>)>,
    rx_bytes: usize,
}

/// The UDP endpoint of a host. See the [module documentation](self).
#[derive(Debug)]
pub struct Udp {
    config: UdpConfig,
    sockets: HashMap<SocketId, Socket>,
    by_port: HashMap<u16, SocketId>,
    next_id: u32,
    transmit: VecDeque<UdpTransmit>,
    rng: StdRng,
    events: bool,
    stats: UdpStats,
}

impl Udp {
    /// An endpoint with no sockets; `seed` picks ephemeral ports.
    pub fn new(config: UdpConfig, seed: u64) -> Udp {
        Udp {
            config,
            sockets: HashMap::new(),
            by_port: HashMap::new(),
            next_id: 0,
            transmit: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x5544_5000),
            events: false,
            stats: UdpStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    /// Count a malformed datagram (the host parses; the endpoint keeps the numbers).
    pub fn count_drop(&mut self, reason: &'static str) {
        *self.stats.drops.entry(reason).or_insert(0) += 1;
    }

    /// Bind `local`; port 0 picks a free ephemeral port. The address may be unspecified
    /// (any of ours). One socket per port.
    pub fn bind(&mut self, local: impl Into<SocketAddr>) -> Result<SocketId, UdpBindError> {
        let local = local.into();
        if self.sockets.len() >= self.config.max_sockets {
            return Err(UdpBindError::NoFreePort);
        }
        let port = match local.port() {
            0 => self.ephemeral_port().ok_or(UdpBindError::NoFreePort)?,
            p if self.by_port.contains_key(&p) => return Err(UdpBindError::AddrInUse),
            p => p,
        };
        let id = SocketId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let local = SocketAddr::new(crate::ip::canonical(local.ip()), port);
        self.sockets.insert(
            id,
            Socket {
                local,
                rx: VecDeque::new(),
                rx_bytes: 0,
            },
        );
        self.by_port.insert(port, id);
        log::debug!("udp: bound {local}");
        Ok(id)
    }

    fn ephemeral_port(&mut self) -> Option<u16> {
        let span = u32::from(u16::MAX - EPHEMERAL_FIRST) + 1;
        let start = self.rng.random_range(0..span);
        (0..span)
            .map(|i| EPHEMERAL_FIRST + ((start + i) % span) as u16)
            .find(|p| !self.by_port.contains_key(p))
    }

    /// Close a socket: its port is free again and queued datagrams are discarded.
    pub fn close(&mut self, id: SocketId) {
        if let Some(s) = self.sockets.remove(&id) {
            self.by_port.remove(&s.local.port());
            log::debug!("udp: closed {}", s.local);
        }
    }

    /// The address a socket is bound to.
    pub fn local_addr(&self, id: SocketId) -> Option<SocketAddr> {
        self.sockets.get(&id).map(|s| s.local)
    }

    /// Queue one datagram from socket `id` to `dst`. Returns the payload length.
    pub fn send_to(
        &mut self,
        id: SocketId,
        dst: impl Into<SocketAddr>,
        data: &[u8],
    ) -> Result<usize, UdpSendError> {
        let dst = dst.into();
        let dst = SocketAddr::new(crate::ip::canonical(dst.ip()), dst.port());
        let local = self.sockets.get(&id).ok_or(UdpSendError::NotBound)?.local;
        if data.len() > MAX_PAYLOAD_LEN {
            return Err(UdpSendError::TooLarge);
        }
        // A socket bound to an address of one family cannot send to the other; the
        // unspecified address takes the destination's (the host fills in its own).
        let wrong_family = !local.ip().is_unspecified() && local.is_ipv4() != dst.is_ipv4();
        if dst.port() == 0 || dst.ip().is_unspecified() || wrong_family {
            return Err(UdpSendError::BadDestination);
        }
        if self.transmit.len() >= self.config.send_queue_datagrams {
            return Err(UdpSendError::QueueFull);
        }
        self.transmit.push_back(UdpTransmit {
            src: local,
            dst,
            payload: data.to_vec(),
        });
        Ok(data.len())
    }

    /// The oldest datagram received on `id`, with its sender.
    pub fn recv_from(&mut self, id: SocketId) -> Option<(SocketAddr, Vec<u8>)> {
        let s = self.sockets.get_mut(&id)?;
        let (from, data) = s.rx.pop_front()?;
        s.rx_bytes = s.rx_bytes.saturating_sub(data.len());
        Some((from, data))
    }

    /// Whether `recv_from` would return a datagram. A closed socket counts as ready (the
    /// caller then sees the error).
    pub fn recv_ready(&self, id: SocketId) -> bool {
        self.sockets.get(&id).is_none_or(|s| !s.rx.is_empty())
    }

    /// A valid datagram from `src` to `dst` (one of our addresses) arrived.
    pub fn on_datagram(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        d: &Datagram<'_>,
    ) -> Delivery {
        let (src, dst) = (src.into(), dst.into());
        self.stats.datagrams_in += 1;
        let socket = self
            .by_port
            .get(&d.dst_port)
            .and_then(|id| self.sockets.get_mut(id))
            // The unspecified address of either family takes datagrams of both (as TCP's
            // listeners do: a dual-stack wildcard).
            .filter(|s| s.local.ip().is_unspecified() || s.local.ip() == dst);
        let Some(socket) = socket else {
            self.stats.no_port += 1;
            log::debug!("udp: nothing bound to {dst}:{} (from {src})", d.dst_port);
            return Delivery::NoSocket;
        };
        if socket.rx.len() >= self.config.recv_queue_datagrams
            || socket.rx_bytes.saturating_add(d.payload.len()) > self.config.recv_queue_bytes
        {
            self.stats.queue_drops += 1;
            log::debug!(
                "udp: receive queue of {} full, dropped datagram",
                socket.local
            );
            return Delivery::QueueFull;
        }
        socket.rx_bytes += d.payload.len();
        socket
            .rx
            .push_back((SocketAddr::new(src, d.src_port), d.payload.to_vec()));
        self.stats.delivered += 1;
        self.events = true;
        Delivery::Delivered
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<UdpTransmit> {
        let t = self.transmit.pop_front()?;
        self.stats.datagrams_out += 1;
        Some(t)
    }

    /// Whether datagrams wait in [`Udp::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// Whether anything socket-visible happened since the last call (a datagram arrived).
    pub fn take_events(&mut self) -> bool {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::datagram::emit;
    use std::net::{Ipv4Addr, SocketAddrV4};

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn deliver(udp: &mut Udp, dst_port: u16, payload: &[u8]) -> Delivery {
        let bytes = emit(PEER, US, 4000, dst_port, payload);
        let d = Datagram::parse(PEER, US, &bytes).unwrap();
        udp.on_datagram(PEER, US, &d)
    }

    #[test]
    fn wildcard_socket_takes_both_families_and_answers_each_in_its_own() {
        use std::net::{IpAddr, Ipv6Addr};
        let (us6, peer6) = (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        );
        let mut udp = Udp::new(UdpConfig::default(), 1);
        let id = udp
            .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
            .unwrap();
        let bytes = emit(peer6, us6, 4000, 7, b"six");
        let d = Datagram::parse(peer6, us6, &bytes).unwrap();
        assert_eq!(udp.on_datagram(peer6, us6, &d), Delivery::Delivered);
        assert_eq!(deliver(&mut udp, 7, b"four"), Delivery::Delivered);
        let (from6, _) = udp.recv_from(id).unwrap();
        let (from4, _) = udp.recv_from(id).unwrap();
        assert_eq!(from6, SocketAddr::new(IpAddr::V6(peer6), 4000));
        assert_eq!(from4, SocketAddrV4::new(PEER, 4000).into());
        assert_eq!(udp.send_to(id, from6, b"six"), Ok(3));
        assert_eq!(udp.poll_transmit().unwrap().dst, from6);
        // A socket bound to an IPv4 address has no IPv6 source.
        let v4_only = udp.bind(SocketAddrV4::new(US, 9)).unwrap();
        assert_eq!(
            udp.send_to(v4_only, from6, b"x"),
            Err(UdpSendError::BadDestination)
        );
        // Nor does it take IPv6 datagrams.
        let bytes = emit(peer6, us6, 4000, 9, b"six");
        let d = Datagram::parse(peer6, us6, &bytes).unwrap();
        assert_eq!(udp.on_datagram(peer6, us6, &d), Delivery::NoSocket);
    }

    #[test]
    fn bind_deliver_receive_reply() {
        let mut udp = Udp::new(UdpConfig::default(), 1);
        let id = udp
            .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
            .unwrap();
        assert!(!udp.recv_ready(id));
        assert_eq!(deliver(&mut udp, 7, b"ping"), Delivery::Delivered);
        assert!(udp.take_events());
        assert!(!udp.take_events());
        assert!(udp.recv_ready(id));
        let (from, data) = udp.recv_from(id).unwrap();
        assert_eq!(
            (from, &data[..]),
            (SocketAddrV4::new(PEER, 4000).into(), &b"ping"[..])
        );
        assert_eq!(udp.send_to(id, from, &data), Ok(4));
        let t = udp.poll_transmit().unwrap();
        assert_eq!(
            (t.src.port(), t.dst, &t.payload[..]),
            (7, from, &b"ping"[..])
        );
        assert_eq!(udp.poll_transmit(), None);
        assert_eq!((udp.stats().delivered, udp.stats().datagrams_out), (1, 1));
    }

    #[test]
    fn closed_port_is_reported_and_ports_are_exclusive() {
        let mut udp = Udp::new(UdpConfig::default(), 1);
        assert_eq!(deliver(&mut udp, 9, b"x"), Delivery::NoSocket);
        assert_eq!(udp.stats().no_port, 1);
        let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9);
        let id = udp.bind(any).unwrap();
        assert_eq!(udp.bind(any), Err(UdpBindError::AddrInUse));
        udp.close(id);
        assert!(udp.bind(any).is_ok(), "the port is free after close");
        // A socket bound to another address does not get our datagrams.
        let other = udp
            .bind(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 10))
            .unwrap();
        assert_eq!(deliver(&mut udp, 10, b"x"), Delivery::NoSocket);
        assert_eq!(udp.recv_from(other), None);
    }

    #[test]
    fn receive_queues_are_bounded_by_count_and_bytes() {
        let config = UdpConfig {
            recv_queue_datagrams: 3,
            recv_queue_bytes: 10,
            ..UdpConfig::default()
        };
        let mut udp = Udp::new(config, 1);
        let id = udp.bind(SocketAddrV4::new(US, 7)).unwrap();
        assert_eq!(deliver(&mut udp, 7, b"12345678"), Delivery::Delivered);
        assert_eq!(
            deliver(&mut udp, 7, b"123"),
            Delivery::QueueFull,
            "byte bound"
        );
        assert_eq!(deliver(&mut udp, 7, b"1"), Delivery::Delivered);
        assert_eq!(deliver(&mut udp, 7, b""), Delivery::Delivered);
        assert_eq!(
            deliver(&mut udp, 7, b""),
            Delivery::QueueFull,
            "count bound"
        );
        assert_eq!(udp.stats().queue_drops, 2);
        udp.recv_from(id).unwrap();
        assert_eq!(
            deliver(&mut udp, 7, b"12345"),
            Delivery::Delivered,
            "room again"
        );
    }

    #[test]
    fn send_errors() {
        let config = UdpConfig {
            send_queue_datagrams: 1,
            ..UdpConfig::default()
        };
        let mut udp = Udp::new(config, 1);
        let id = udp.bind(SocketAddrV4::new(US, 0)).unwrap();
        let port = udp.local_addr(id).unwrap().port();
        assert!(port >= EPHEMERAL_FIRST);
        let dst = SocketAddrV4::new(PEER, 7);
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(udp.send_to(id, dst, &big), Err(UdpSendError::TooLarge));
        let zero = SocketAddrV4::new(PEER, 0);
        assert_eq!(
            udp.send_to(id, zero, b"x"),
            Err(UdpSendError::BadDestination)
        );
        assert_eq!(udp.send_to(id, dst, b"x"), Ok(1));
        assert_eq!(udp.send_to(id, dst, b"x"), Err(UdpSendError::QueueFull));
        udp.close(id);
        assert_eq!(udp.send_to(id, dst, b"x"), Err(UdpSendError::NotBound));
        assert!(udp.recv_ready(id), "a closed socket does not block");
    }

    #[test]
    fn ephemeral_ports_are_distinct_and_bounded_by_max_sockets() {
        let config = UdpConfig {
            max_sockets: 50,
            ..UdpConfig::default()
        };
        let mut udp = Udp::new(config, 3);
        let mut ports = std::collections::HashSet::new();
        for _ in 0..50 {
            let id = udp.bind(SocketAddrV4::new(US, 0)).unwrap();
            assert!(ports.insert(udp.local_addr(id).unwrap().port()));
        }
        assert_eq!(
            udp.bind(SocketAddrV4::new(US, 0)),
            Err(UdpBindError::NoFreePort)
        );
    }
}
