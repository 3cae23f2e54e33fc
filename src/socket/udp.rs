//! [`UdpSocket`]: datagrams over the stack, like `std::net::UdpSocket`.
//!
//! | kernel call     | here                      | transport layer      |
//! |-----------------|---------------------------|----------------------|
//! | `socket+bind`   | [`UdpSocket::bind`]       | `Udp::bind`          |
//! | `sendto`        | [`UdpSocket::send_to`]    | `Udp::send_to`       |
//! | `recvfrom`      | [`UdpSocket::recv_from`]  | `Udp::recv_from`     |
//! | `close`         | drop                      | `Udp::close`         |

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::ready::{App, Context};
use crate::stack::StackHandle;
use crate::udp::{SocketId, UdpBindError, UdpSendError};

/// A bound UDP socket on a tunstack stack. Shareable between threads (`&self` methods).
pub struct UdpSocket {
    stack: StackHandle,
    id: SocketId,
    local: SocketAddr,
    read_timeout: Mutex<Option<Duration>>,
}

pub(super) fn bind_error_kind(e: UdpBindError) -> io::ErrorKind {
    match e {
        UdpBindError::AddrInUse => io::ErrorKind::AddrInUse,
        UdpBindError::NoFreePort => io::ErrorKind::AddrNotAvailable,
    }
}

pub(super) fn send_error_kind(e: UdpSendError) -> io::ErrorKind {
    match e {
        UdpSendError::NotBound => io::ErrorKind::NotConnected,
        UdpSendError::TooLarge | UdpSendError::BadDestination => io::ErrorKind::InvalidInput,
        UdpSendError::QueueFull => io::ErrorKind::WouldBlock,
    }
}

fn bind_error(e: UdpBindError) -> io::Error {
    io::Error::new(bind_error_kind(e), e)
}

fn send_error(e: UdpSendError) -> io::Error {
    io::Error::new(send_error_kind(e), e)
}

impl UdpSocket {
    /// Bind `local` (IP may be unspecified, `0.0.0.0` or `[::]`, for datagrams of both
    /// families; port 0 picks an ephemeral port).
    pub fn bind(stack: &StackHandle, local: impl Into<SocketAddr>) -> io::Result<UdpSocket> {
        let local = local.into();
        let mut core = stack.lock();
        let id = core.udp_mut().bind(local).map_err(bind_error)?;
        let local = core.udp().local_addr(id).unwrap_or(local);
        Ok(UdpSocket {
            stack: stack.clone(),
            id,
            local,
            read_timeout: Mutex::new(None),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Send one datagram to `dst`; returns the payload length. Fails with `WouldBlock` when
    /// the stack's transmit queue is full (UDP has no flow control: retry or drop).
    pub fn send_to(&self, buf: &[u8], dst: impl Into<SocketAddr>) -> io::Result<usize> {
        let n = self
            .stack
            .lock()
            .udp_mut()
            .send_to(self.id, dst, buf)
            .map_err(send_error)?;
        self.stack.wake();
        Ok(n)
    }

    /// Wait for one datagram, copy it into `buf` and return its length (truncated to
    /// `buf.len()`, the rest discarded, like `recvfrom` without `MSG_TRUNC`) and sender.
    /// With a read timeout, fails with `WouldBlock` when it passes.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let timeout = *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut core = self.stack.lock();
        loop {
            if let Some((from, data)) = core.udp_mut().recv_from(self.id) {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                return Ok((n, from));
            }
            if core.udp().local_addr(self.id).is_none() {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "socket closed"));
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "no datagram before the read timeout",
                ));
            }
            core = self.stack.wait(core, deadline);
        }
    }

    /// Bound how long [`UdpSocket::recv_from`] waits; `None` waits for ever. A zero
    /// duration is refused, as by std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero read timeout is not allowed",
            ));
        }
        *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner()) = timeout;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self.read_timeout.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.stack.lock().udp_mut().close(self.id);
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .finish()
    }
}

/// Serve the echo protocol (RFC 862) on `socket` until it fails: every datagram received
/// is sent back to its sender unchanged.
pub fn echo_service(socket: &UdpSocket) -> io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        if from.port() == 0 {
            // No reply port (RFC 768): nothing to answer.
            continue;
        }
        match socket.send_to(&buf[..n], from) {
            Ok(_) => {}
            // Bursts beyond the transmit queue are dropped, as UDP may.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                log::debug!("udp echo: transmit queue full, dropped reply to {from}")
            }
            Err(e) => return Err(e),
        }
    }
}

/// The echo protocol (RFC 862) as an application of the event loop, beside the HTTP
/// server: in each round where a datagram arrived, every datagram is sent back to its
/// sender unchanged. [`echo_service`] is the same service on the blocking API.
#[derive(Debug)]
pub struct UdpEcho {
    socket: Option<super::ready::UdpSocket>,
}

impl UdpEcho {
    /// Echo on `socket` (bound with [`crate::stack::evloop::EventLoop::bind_udp`]).
    pub fn new(socket: super::ready::UdpSocket) -> UdpEcho {
        UdpEcho {
            socket: Some(socket),
        }
    }
}

impl App for UdpEcho {
    fn poll(&mut self, cx: &mut Context<'_>) {
        let Some(socket) = self.socket else {
            return;
        };
        if !cx.udp_ready() {
            return;
        }
        while let Some((from, data)) = socket.recv_from(cx) {
            if from.port() == 0 {
                // No reply port (RFC 768): nothing to answer.
                continue;
            }
            match socket.send_to(cx, from, &data) {
                Ok(_) => {}
                // Bursts beyond the transmit queue are dropped, as UDP may.
                Err(e) if e.would_block() => {
                    log::debug!("udp echo: transmit queue full, dropped reply to {from}")
                }
                Err(e) => log::debug!("udp echo: {from}: {e}"),
            }
        }
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) {
        // The loop is stopping: the port is closed (ICMP port unreachable from now on).
        if let Some(socket) = self.socket.take() {
            socket.close(cx);
        }
    }
}
