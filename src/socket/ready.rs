//! The readiness API: non-blocking sockets for an application that runs on the event loop
//! ([`crate::stack::evloop`]), the way an epoll server uses the kernel's sockets.
//!
//! Nothing here blocks and nothing owns a thread. A handle ([`TcpSocket`], [`TcpListener`],
//! [`UdpSocket`]) is a small `Copy` name for a socket of the loop's stack; every call takes
//! the round's [`Context`], which is what lets one thread serve thousands of connections:
//! each round the loop tells the application which sockets changed
//! ([`Context::ready_sockets`], [`TcpListener::woken`]), the application does what they
//! allow (read what arrived, write what fits, accept what finished its handshake) and
//! returns. A call that cannot proceed says so at once instead of waiting.
//!
//! | kernel call (non-blocking) | here                        | transport layer      |
//! |----------------------------|-----------------------------|----------------------|
//! | `epoll_wait`               | [`Context::ready_sockets`]  | `Tcp::take_wakeups`  |
//! | `accept` → `EAGAIN`        | [`TcpListener::accept`] → `None` | `Tcp::accept`   |
//! | `recv` → `EAGAIN`          | [`TcpSocket::recv`] → [`SocketError::would_block`] | `Tcp::recv` |
//! | `send` (partial)           | [`TcpSocket::send`], [`TcpSocket::send_with`] → `Ok(0)` when full | `Tcp::send` |
//! | `shutdown(SHUT_WR)`        | [`TcpSocket::shutdown`]     | `Tcp::shutdown` (FIN)|
//! | `close`                    | [`TcpSocket::close`]        | `Tcp::release`       |
//! | `SO_LINGER` 0 + `close`    | [`TcpSocket::abort`]        | `Tcp::abort` (RST)   |
//! | `ioctl(SIOCOUTQ)`          | [`TcpSocket::unacked`]      | `Tcp::unacked`       |
//!
//! No call allocates or copies beyond what it is asked to: [`TcpSocket::send_with`] lets
//! the caller format (or read a file) straight into TCP's send buffer. With a tracer
//! attached (`--trace`, `--step`) every call is shown as a socket-layer line, as the
//! blocking API's are; without one that costs one `Option` test.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The application interface of the event loop, which this API is used from: an
/// application implements [`App`] and is handed the round's [`Context`].
pub use crate::stack::evloop::{App, Context};
use crate::tcp::{ConnId, ListenerId, TcpError};
use crate::trace::SocketCall;
use crate::udp::{SocketId, UdpBindError, UdpSendError};

/// A TCP connection of the loop's stack: a non-blocking socket. Valid until
/// [`TcpSocket::close`] or [`TcpSocket::abort`]; a stale handle fails every call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TcpSocket(ConnId);

/// A listening TCP socket of the loop's stack (RFC 9293 §3.10.1 passive OPEN), opened
/// with [`crate::stack::evloop::EventLoop::listen`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TcpListener(ListenerId);

/// A bound UDP socket of the loop's stack, opened with
/// [`crate::stack::evloop::EventLoop::bind_udp`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct UdpSocket(SocketId);

/// Why a socket call failed. [`SocketError::would_block`] is the only one that says "try
/// again when the socket is ready"; the others are final for that socket.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SocketError(Cause);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cause {
    Tcp(TcpError),
    UdpBind(UdpBindError),
    UdpSend(UdpSendError),
}

impl SocketError {
    /// The call found nothing to do (no data yet, transmit queue full): not an error of
    /// the connection.
    pub fn would_block(&self) -> bool {
        self.kind() == io::ErrorKind::WouldBlock
    }

    /// The matching `std::io::ErrorKind`.
    pub fn kind(&self) -> io::ErrorKind {
        match self.0 {
            Cause::Tcp(e) => e.kind(),
            Cause::UdpBind(e) => super::udp::bind_error_kind(e),
            Cause::UdpSend(e) => super::udp::send_error_kind(e),
        }
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Cause::Tcp(e) => e.fmt(f),
            Cause::UdpBind(e) => e.fmt(f),
            Cause::UdpSend(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SocketError {}

impl From<SocketError> for io::Error {
    fn from(e: SocketError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

impl From<TcpError> for SocketError {
    fn from(e: TcpError) -> SocketError {
        SocketError(Cause::Tcp(e))
    }
}

impl From<UdpBindError> for SocketError {
    fn from(e: UdpBindError) -> SocketError {
        SocketError(Cause::UdpBind(e))
    }
}

impl From<UdpSendError> for SocketError {
    fn from(e: UdpSendError) -> SocketError {
        SocketError(Cause::UdpSend(e))
    }
}

/// The sockets named by this round's wake-up list, in the order their changes happened
/// (a socket may appear more than once).
#[derive(Clone, Debug)]
pub struct ReadySockets<'a>(std::slice::Iter<'a, ConnId>);

impl Iterator for ReadySockets<'_> {
    type Item = TcpSocket;

    #[inline]
    fn next(&mut self) -> Option<TcpSocket> {
        self.0.next().copied().map(TcpSocket)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> Context<'a> {
    /// The connections with a change their application can act on since the last round
    /// (data or EOF to read, room to write, acknowledged bytes, an error). The iterator
    /// does not borrow the context: the application calls the sockets while it walks it.
    /// When [`Context::wake_all`] is set the list is incomplete.
    #[inline]
    pub fn ready_sockets(&self) -> ReadySockets<'a> {
        ReadySockets(self.woken.iter())
    }

    /// The wake-up lists were lost (the stack could not keep them): look at every socket.
    #[inline]
    pub fn wake_all(&self) -> bool {
        self.wake_all
    }

    /// A UDP socket has datagrams to read.
    #[inline]
    pub fn udp_ready(&self) -> bool {
        self.udp_ready
    }
}

impl TcpListener {
    pub(crate) fn from_id(id: ListenerId) -> TcpListener {
        TcpListener(id)
    }

    /// The next connection that finished its handshake, or `None` (`EAGAIN`).
    #[inline]
    #[track_caller]
    pub fn accept(self, cx: &mut Context<'_>) -> Option<TcpSocket> {
        let id = cx.iface.tcp_mut().accept(self.0)?;
        cx.trace_socket(id, SocketCall::Accept);
        Some(TcpSocket(id))
    }

    /// This round's wake-up list names the listener (or every socket is to be looked
    /// at): [`TcpListener::accept`] may return a connection.
    #[inline]
    pub fn woken(self, cx: &Context<'_>) -> bool {
        cx.wake_all || cx.woken_listeners.contains(&self.0)
    }

    /// The address the listener is bound to (`None` once closed).
    pub fn local_addr(self, cx: &Context<'_>) -> Option<SocketAddr> {
        cx.iface.tcp().listener_addr(self.0)
    }

    /// Stop listening: new SYNs are refused, connections not yet accepted are reset.
    pub fn close(self, cx: &mut Context<'_>) {
        cx.iface.tcp_mut().close_listener(self.0, cx.now);
    }
}

impl TcpSocket {
    /// Read what arrived into `buf`: `Ok(n)` bytes, `Ok(0)` at the end of the stream (the
    /// peer's FIN, once everything before it was read), an error that
    /// [`SocketError::would_block`]s when nothing is there yet.
    #[inline]
    #[track_caller]
    pub fn recv(self, cx: &mut Context<'_>, buf: &mut [u8]) -> Result<usize, SocketError> {
        let n = cx.iface.tcp_mut().recv(self.0, buf, cx.now)?;
        cx.trace_socket(self.0, SocketCall::Read(n));
        Ok(n)
    }

    /// Queue as much of `data` as the send buffer takes and return how much: `Ok(0)`
    /// when it is full (the socket is woken when the peer acknowledges some). An error
    /// after [`TcpSocket::shutdown`] or once the connection died.
    #[inline]
    #[track_caller]
    pub fn send(self, cx: &mut Context<'_>, data: &[u8]) -> Result<usize, SocketError> {
        let n = cx.iface.tcp_mut().send(self.0, data, cx.now)?;
        if n > 0 {
            cx.trace_socket(self.0, SocketCall::Write(n));
        }
        Ok(n)
    }

    /// Like [`TcpSocket::send`] without a source buffer: `fill` writes up to `max` bytes
    /// straight into the send buffer (one contiguous free piece, which may be shorter than
    /// `max`: call again for more) and returns how many it wrote. `Ok(0)` when the buffer
    /// is full, and then `fill` is not called. A response is formatted, or a file read,
    /// directly where TCP will send it from.
    #[inline]
    #[track_caller]
    pub fn send_with(
        self,
        cx: &mut Context<'_>,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SocketError> {
        let n = cx.iface.tcp_mut().send_with(self.0, max, cx.now, fill)?;
        if n > 0 {
            cx.trace_socket(self.0, SocketCall::Write(n));
        }
        Ok(n)
    }

    /// No more data from us: a FIN follows what is queued (RFC 9293 §3.10.4 CLOSE). The
    /// socket can still read.
    #[track_caller]
    pub fn shutdown(self, cx: &mut Context<'_>) {
        cx.iface.tcp_mut().shutdown(self.0, cx.now);
        cx.trace_socket(self.0, SocketCall::Shutdown);
    }

    /// Give the handle back, like `close(2)`: TCP finishes the connection on its own (a FIN
    /// after the queued data, TIME-WAIT), or resets it if received data was left unread
    /// (as Linux does). The handle is stale afterwards.
    #[track_caller]
    pub fn close(self, cx: &mut Context<'_>) {
        cx.trace_socket(self.0, SocketCall::Close);
        cx.iface.tcp_mut().release(self.0, cx.now);
    }

    /// Reset the connection (RFC 9293 §3.10.5 ABORT: RST, queued data discarded) and give
    /// the handle back.
    #[track_caller]
    pub fn abort(self, cx: &mut Context<'_>) {
        cx.trace_socket(self.0, SocketCall::Close);
        let tcp = cx.iface.tcp_mut();
        tcp.abort(self.0, cx.now);
        tcp.release(self.0, cx.now);
    }

    /// Bytes sent that the peer has not acknowledged yet, like Linux's `SIOCOUTQ`: the
    /// application watches it fall to see that a slow peer still makes progress, and
    /// reach 0 to know its data was delivered. 0 for a stale handle.
    #[inline]
    pub fn unacked(self, cx: &Context<'_>) -> usize {
        cx.iface.tcp().unacked(self.0)
    }

    /// Why the connection died (reset, timed out), if it did; `SO_ERROR`.
    #[inline]
    pub fn error(self, cx: &Context<'_>) -> Option<SocketError> {
        cx.iface.tcp().error(self.0).map(SocketError::from)
    }

    /// [`TcpSocket::recv`] would not block: data, the end of the stream or an error.
    pub fn recv_ready(self, cx: &Context<'_>) -> bool {
        cx.iface.tcp().recv_ready(self.0)
    }

    /// [`TcpSocket::send`] would take at least one byte (or fail).
    pub fn send_ready(self, cx: &Context<'_>) -> bool {
        cx.iface.tcp().send_ready(self.0)
    }

    /// Our address of the connection.
    pub fn local_addr(self, cx: &Context<'_>) -> SocketAddr {
        cx.iface.tcp().local_addr(self.0)
    }

    /// The peer's address.
    pub fn peer_addr(self, cx: &Context<'_>) -> SocketAddr {
        cx.iface.tcp().peer_addr(self.0)
    }
}

impl UdpSocket {
    pub(crate) fn from_id(id: SocketId) -> UdpSocket {
        UdpSocket(id)
    }

    /// The oldest datagram received, with its sender, or `None`.
    pub fn recv_from(self, cx: &mut Context<'_>) -> Option<(SocketAddr, Vec<u8>)> {
        cx.iface.udp_mut().recv_from(self.0)
    }

    /// Queue one datagram to `dst`; an error that [`SocketError::would_block`]s when the
    /// transmit queue is full (UDP has no flow control: retry later or drop).
    pub fn send_to(
        self,
        cx: &mut Context<'_>,
        dst: impl Into<SocketAddr>,
        data: &[u8],
    ) -> Result<usize, SocketError> {
        Ok(cx.iface.udp_mut().send_to(self.0, dst, data)?)
    }

    /// The bound address (`None` once closed).
    pub fn local_addr(self, cx: &Context<'_>) -> Option<SocketAddr> {
        cx.iface.udp().local_addr(self.0)
    }

    /// Unbind: the port is free again, queued datagrams are discarded.
    pub fn close(self, cx: &mut Context<'_>) {
        cx.iface.udp_mut().close(self.0);
    }
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;
