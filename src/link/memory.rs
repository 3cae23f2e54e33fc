//! An in-memory device pair for tests: what one end sends, the other receives.
//!
//! Built on two `std::sync::mpsc` channels, one per direction. Like a cable between two
//! hosts, it never reorders, loses or corrupts (fault injection is a separate wrapper, later),
//! and a packet sent after the other end was dropped is silently lost, as on an unplugged link.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use super::Device;

/// Default receive timeout of a new [`MemDevice`].
pub const DEFAULT_RECV_TIMEOUT: Duration = Duration::from_millis(50);
/// Default MTU of a new [`MemDevice`], the Ethernet MTU.
pub const DEFAULT_MTU: usize = 1500;

/// One end of an in-memory link made by [`pair`].
#[derive(Debug)]
pub struct MemDevice {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    timeout: Option<Duration>,
    mtu: usize,
}

/// Creates two connected devices: packets sent on one are received on the other.
/// Both start with [`DEFAULT_RECV_TIMEOUT`] and [`DEFAULT_MTU`].
pub fn pair() -> (MemDevice, MemDevice) {
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    let end = |tx, rx| MemDevice {
        tx,
        rx,
        timeout: Some(DEFAULT_RECV_TIMEOUT),
        mtu: DEFAULT_MTU,
    };
    (end(tx_a, rx_a), end(tx_b, rx_b))
}

impl MemDevice {
    /// Sets how long [`Device::recv`] waits: `None` blocks until a packet arrives,
    /// `Some(Duration::ZERO)` never blocks (`WouldBlock` when empty), `Some(d)` waits up to
    /// `d` (`TimedOut` when nothing arrived).
    pub fn set_recv_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The current receive timeout (see [`MemDevice::set_recv_timeout`]).
    pub fn recv_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets the MTU; [`Device::send`] rejects larger packets with `InvalidInput`, which
    /// catches a stack that ignores the MTU in tests.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Builder form of [`MemDevice::set_recv_timeout`].
    pub fn with_recv_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The error returned once the other end is gone and no packet is left to read.
fn disconnected() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the other end of the memory link was dropped",
    )
}

impl Device for MemDevice {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let packet = match self.timeout {
            None => self.rx.recv().map_err(|_| disconnected())?,
            Some(t) if t.is_zero() => match self.rx.try_recv() {
                Ok(p) => p,
                Err(TryRecvError::Empty) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TryRecvError::Disconnected) => return Err(disconnected()),
            },
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(p) => p,
                Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::TimedOut.into()),
                Err(RecvTimeoutError::Disconnected) => return Err(disconnected()),
            },
        };
        // Like a real device, a buffer that is too small truncates the packet.
        let n = packet.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), packet.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if packet.len() > self.mtu {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet of {} bytes exceeds the MTU of {}",
                    packet.len(),
                    self.mtu
                ),
            ));
        }
        if self.tx.send(packet.to_vec()).is_err() {
            log::debug!(
                "memory link: peer dropped, packet of {} bytes lost",
                packet.len()
            );
        }
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

/// One end of an in-memory link for the event loop ([`crate::link::offload::PollDevice`]),
/// made by [`poll_pair`]: a Unix datagram socket pair, so that each packet stays one
/// datagram, reads never block, and epoll can wait on the descriptor like on a TUN's.
#[derive(Debug)]
pub struct MemPollDevice {
    socket: std::os::unix::net::UnixDatagram,
    mtu: usize,
}

/// Creates two connected non-blocking [`MemPollDevice`]s with [`DEFAULT_MTU`].
pub fn poll_pair() -> io::Result<(MemPollDevice, MemPollDevice)> {
    let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let end = |socket| MemPollDevice {
        socket,
        mtu: DEFAULT_MTU,
    };
    Ok((end(a), end(b)))
}

impl MemPollDevice {
    /// Sets the MTU; larger packets are refused by `send` (`InvalidInput`).
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }
}

impl super::offload::PollDevice for MemPollDevice {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, super::offload::RxMeta)>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some((n, super::offload::RxMeta::default()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, packet: &[u8], _meta: super::offload::TxMeta) -> io::Result<()> {
        if packet.len() > self.mtu {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet of {} bytes exceeds the MTU of {}",
                    packet.len(),
                    self.mtu
                ),
            ));
        }
        match self.socket.send(packet) {
            Ok(_) => Ok(()),
            // A full socket buffer or a closed peer: the packet is lost, as on a real
            // link whose queue overflowed (TCP retransmits).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                log::debug!("memory link: packet of {} bytes lost: {e}", packet.len());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.socket)
    }

    fn offloads(&self) -> super::offload::Offloads {
        super::offload::Offloads::default()
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn packets_cross_in_both_directions_in_order() {
        let (mut a, mut b) = pair();
        a.send(b"one").unwrap();
        a.send(b"two").unwrap();
        b.send(b"back").unwrap();
        let mut buf = [0u8; 64];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back");
    }

    #[test]
    fn recv_times_out() {
        let (mut a, _b) = pair();
        a.set_recv_timeout(Some(Duration::from_millis(30)));
        let start = Instant::now();
        let err = a.recv(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn zero_timeout_is_nonblocking() {
        let (a, _b) = pair();
        let mut a = a.with_recv_timeout(Some(Duration::ZERO));
        assert_eq!(a.recv_timeout(), Some(Duration::ZERO));
        assert_eq!(
            a.recv(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn blocking_recv_wakes_on_send_from_another_thread() {
        let (a, mut b) = pair();
        let mut a = a.with_recv_timeout(None);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.send(b"late").unwrap();
            b
        });
        let mut buf = [0u8; 8];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        t.join().unwrap();
    }

    #[test]
    fn small_buffer_truncates() {
        let (mut a, mut b) = pair();
        a.send(b"0123456789").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"0123");
    }

    #[test]
    fn mtu_is_enforced() {
        let (mut a, _b) = pair();
        assert_eq!(a.mtu(), DEFAULT_MTU);
        a.set_mtu(10);
        assert!(a.send(&[0; 10]).is_ok());
        assert_eq!(
            a.send(&[0; 11]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn dropped_peer() {
        let (mut a, b) = pair();
        drop(b);
        assert!(a.send(b"lost").is_ok());
        assert_eq!(
            a.recv(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }

    #[test]
    fn works_as_boxed_trait_object() {
        let (a, b) = pair();
        let mut a: Box<dyn Device> = Box::new(a);
        let mut b: Box<dyn Device> = Box::new(b);
        a.send(b"dyn").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(b.mtu(), DEFAULT_MTU);
    }
    #[test]
    fn poll_pair_keeps_packets_whole_and_never_blocks() {
        use crate::link::offload::{PollDevice, TxMeta};
        let (mut a, mut b) = poll_pair().unwrap();
        let mut buf = [0u8; 64];
        assert!(b.recv(&mut buf).unwrap().is_none());
        a.send(b"one", TxMeta::default()).unwrap();
        a.send(b"second", TxMeta::default()).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap().map(|(n, _)| n), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(&mut buf).unwrap().map(|(n, _)| n), Some(6));
        assert_eq!(&buf[..6], b"second");
        assert!(b.recv(&mut buf).unwrap().is_none());
        a.set_mtu(4);
        assert_eq!(
            a.send(b"too long", TxMeta::default()).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(a.mtu(), 4);
        assert_eq!(b.recv_buf_len(), DEFAULT_MTU + 64);
    }
}
