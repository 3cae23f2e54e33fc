//! An in-memory device pair for tests: what one end sends, the other receives.
//!
//! Each direction is a `std::sync::mpsc` channel, so that a packet stays one packet and a
//! burst is never dropped for want of buffer space (a test that wants loss wraps an end in
//! [`super::fault::FaultDevice`]). Beside the channels, the two ends share a Unix stream
//! pair used only as a doorbell: a send rings it with one byte, which makes the receiving
//! end's descriptor readable, so that a runtime waits on it with epoll exactly as on a TUN.
//! Like a cable between two hosts it never reorders, loses or corrupts, and a packet sent
//! after the other end was dropped is silently lost, as on an unplugged link.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

use super::offload::{RxMeta, TxMeta};
use super::{Device, Medium};
use crate::time::Instant;

/// Default MTU of a new [`MemDevice`], the Ethernet MTU.
pub const DEFAULT_MTU: usize = 1500;

/// One end of an in-memory link made by [`pair`].
#[derive(Debug)]
pub struct MemDevice {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    /// Readable when the peer has sent something; writing to it rings the peer.
    bell: UnixStream,
    mtu: usize,
    medium: Medium,
}

/// Creates two connected devices: packets sent on one are received on the other. Both
/// start with [`DEFAULT_MTU`] and carry bare IP packets.
pub fn pair() -> io::Result<(MemDevice, MemDevice)> {
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    let (bell_a, bell_b) = UnixStream::pair()?;
    bell_a.set_nonblocking(true)?;
    bell_b.set_nonblocking(true)?;
    let end = |tx, rx, bell| MemDevice {
        tx,
        rx,
        bell,
        mtu: DEFAULT_MTU,
        medium: Medium::Ip,
    };
    Ok((end(tx_a, rx_a, bell_a), end(tx_b, rx_b, bell_b)))
}

impl MemDevice {
    /// Sets the MTU; [`Device::send`] rejects larger packets with `InvalidInput`, which
    /// catches a stack that ignores the MTU in tests.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Says the link carries Ethernet frames (two stacks in TAP mode).
    pub fn set_medium(&mut self, medium: Medium) {
        self.medium = medium;
    }

    /// Empties the doorbell (it is rung once per packet; only its readability matters).
    fn drain_bell(&mut self) {
        let mut sink = [0u8; 256];
        while matches!(self.bell.read(&mut sink), Ok(n) if n > 0) {}
    }
}

impl Device for MemDevice {
    fn recv(&mut self, buf: &mut [u8], _now: Instant) -> io::Result<Option<(usize, RxMeta)>> {
        let packet = match self.rx.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Empty) => {
                // Drain the doorbell, then look again: a packet sent in between rang after
                // it was queued, so it is either seen now or rings anew.
                self.drain_bell();
                match self.rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => return Ok(None),
                }
            }
            Err(TryRecvError::Disconnected) => return Ok(None),
        };
        // Like a real device, a buffer that is too small truncates the packet.
        let n = packet.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), packet.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(Some((n, RxMeta::default())))
    }

    fn send(&mut self, packet: &[u8], _meta: TxMeta, _now: Instant) -> io::Result<()> {
        if packet.len() > self.mtu + ethernet_header(self.medium) {
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
            return Ok(());
        }
        // A full doorbell (WouldBlock) is still readable; a gone peer reads nothing.
        let _ = self.bell.write(&[1]);
        Ok(())
    }

    fn raw_fd(&self) -> RawFd {
        self.bell.as_raw_fd()
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        self.medium
    }
}

/// Bytes of link header a frame carries on top of the MTU.
fn ethernet_header(medium: Medium) -> usize {
    match medium {
        Medium::Ip => 0,
        Medium::Ethernet => 14,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::time::Duration;

    const T0: Instant = Instant::from_millis(0);

    fn recv(d: &mut MemDevice) -> Option<Vec<u8>> {
        let mut buf = [0u8; 64];
        d.recv(&mut buf, T0).unwrap().map(|(n, meta)| {
            assert_eq!(meta, RxMeta::default());
            buf[..n].to_vec()
        })
    }

    #[test]
    fn packets_cross_in_both_directions_in_order() {
        let (mut a, mut b) = pair().unwrap();
        assert_eq!(recv(&mut b), None, "nothing sent yet: never blocks");
        a.send(b"one", TxMeta::default(), T0).unwrap();
        a.send(b"two", TxMeta::default(), T0).unwrap();
        b.send(b"back", TxMeta::default(), T0).unwrap();
        assert_eq!(recv(&mut b).as_deref(), Some(&b"one"[..]));
        assert_eq!(recv(&mut b).as_deref(), Some(&b"two"[..]));
        assert_eq!(recv(&mut b), None);
        assert_eq!(recv(&mut a).as_deref(), Some(&b"back"[..]));
    }

    /// The descriptor becomes readable when the peer sends, so epoll can wait on it, and
    /// it is readable again for a packet sent after the reader emptied the queue.
    #[test]
    fn descriptor_is_readable_when_a_packet_waits() {
        let (mut a, mut b) = pair().unwrap();
        let mut poll = Poll::new().unwrap();
        let fd = b.raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        let short = Some(Duration::from_millis(50));
        poll.poll(&mut events, short).unwrap();
        assert!(events.is_empty(), "readable before anything was sent");
        for round in 0..3u8 {
            a.send(&[round], TxMeta::default(), T0).unwrap();
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(
                !events.is_empty(),
                "round {round}: the send did not wake the poll"
            );
            assert_eq!(recv(&mut b), Some(vec![round]));
            assert_eq!(recv(&mut b), None);
        }
    }

    #[test]
    fn small_buffer_truncates() {
        let (mut a, mut b) = pair().unwrap();
        a.send(b"0123456789", TxMeta::default(), T0).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf, T0).unwrap().map(|(n, _)| n), Some(4));
        assert_eq!(&buf, b"0123");
    }

    #[test]
    fn mtu_is_enforced() {
        let (mut a, _b) = pair().unwrap();
        assert_eq!(a.mtu(), DEFAULT_MTU);
        assert_eq!(a.recv_buf_len(), DEFAULT_MTU + 64);
        a.set_mtu(10);
        assert!(a.send(&[0; 10], TxMeta::default(), T0).is_ok());
        assert_eq!(
            a.send(&[0; 11], TxMeta::default(), T0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // A frame may carry its Ethernet header on top of the MTU.
        a.set_medium(Medium::Ethernet);
        assert!(a.send(&[0; 24], TxMeta::default(), T0).is_ok());
        assert_eq!(a.medium(), Medium::Ethernet);
    }

    #[test]
    fn dropped_peer() {
        let (mut a, b) = pair().unwrap();
        drop(b);
        assert!(a.send(b"lost", TxMeta::default(), T0).is_ok());
        assert_eq!(recv(&mut a), None);
    }

    #[test]
    fn works_as_boxed_trait_object() {
        let (a, b) = pair().unwrap();
        let mut a: Box<dyn Device> = Box::new(a);
        let mut b: Box<dyn Device> = Box::new(b);
        a.send(b"dyn", TxMeta::default(), T0).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf, T0).unwrap().map(|(n, _)| n), Some(3));
        assert_eq!(b.mtu(), DEFAULT_MTU);
    }
}
