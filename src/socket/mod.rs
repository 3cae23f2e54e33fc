//! The socket layer: a blocking, std-like API over the threaded stack, and the readiness
//! API of [`ready`] for applications on the event loop.
//!
//! This is the boundary between an application and the transport layer (the question
//! "why does Tomcat have a SocketProcessor?" is about it): an application never sees segments, only a [`TcpListener`] that
//! hands out connected [`TcpStream`]s and streams of bytes to [`Read`] and [`Write`],
//! exactly as with the kernel's `socket/bind/listen/accept/read/write/close`.
//!
//! | kernel call           | here                                  | transport layer           |
//! |-----------------------|---------------------------------------|---------------------------|
//! | `socket+bind+listen`  | [`TcpListener::bind`]                 | `Tcp::listen` (LISTEN)    |
//! | `accept`              | [`TcpListener::accept`]               | `Tcp::accept`             |
//! | `connect`             | [`TcpStream::connect`]                | `Tcp::connect` (SYN-SENT) |
//! | `read` / `write`      | [`Read::read`] / [`Write::write`]     | `Tcp::recv` / `Tcp::send` |
//! | `shutdown(SHUT_WR)`   | [`TcpStream::shutdown`]               | `Tcp::shutdown` (FIN)     |
//! | `close`               | dropping the last handle              | `Tcp::release`            |
//!
//! Datagrams: [`UdpSocket`] (`bind`, `send_to`, `recv_from`) over `udp::Udp`.
//!
//! Every call takes the stack's lock for a moment, calls the sans-IO transport layer and,
//! when it queued something to send, wakes the stack thread. A call that cannot proceed
//! (no data yet, send buffer full, no connection to accept) waits on its socket's own
//! condition variable, which the stack thread signals when a segment changed that
//! connection (or listener) — not every blocked thread on every change.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::stack::{Interface, StackHandle};
use crate::tcp::{ConnId, ListenerId, State, TcpError};
use crate::time::Instant;
use crate::trace::{SocketCall, SocketEvent, TraceEvent};

/// With a tracer attached (`--trace`, `--step`), report a socket call on connection `id`
/// (or a listener on `local`), then the transport layer's decisions it caused. Called
/// without the stack lock held (a step-mode tracer waits for the user). Without a tracer
/// this is one `Option` test.
#[track_caller]
fn trace_call(stack: &StackHandle, id: Option<ConnId>, local: SocketAddr, call: SocketCall) {
    let Some(tracer) = stack.tracer() else {
        return;
    };
    let (local, remote, events) = {
        let mut core = stack.lock();
        let (local, remote) = match id {
            Some(id) => (core.tcp().local_addr(id), core.tcp().peer_addr(id)),
            None => (local, UNSPECIFIED),
        };
        (local, remote, core.tcp_mut().take_trace_events())
    };
    tracer.emit(TraceEvent::Socket(SocketEvent {
        local,
        remote,
        call,
        thread: std::thread::current().name().map(str::to_string),
        at: std::panic::Location::caller(),
    }));
    for e in events {
        tracer.emit(TraceEvent::Tcp(e));
    }
}

/// The address of "no address" in a trace line: `0.0.0.0:0`.
const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

pub mod ready;
mod udp;
pub use udp::{echo_service as udp_echo_service, UdpEcho, UdpSocket};

fn io_error(e: TcpError) -> io::Error {
    io::Error::new(e.kind(), e)
}

fn deadline_after(timeout: Option<Duration>) -> Option<std::time::Instant> {
    timeout.map(|t| std::time::Instant::now() + t)
}

fn expired(deadline: Option<std::time::Instant>) -> bool {
    deadline.is_some_and(|d| std::time::Instant::now() >= d)
}

/// A listening TCP socket: the passive open of RFC 9293 §3.10.1.
pub struct TcpListener {
    stack: StackHandle,
    id: ListenerId,
    local: SocketAddr,
    nonblocking: AtomicBool,
    /// Signalled when a connection is ready to accept.
    cond: Arc<Condvar>,
}

impl TcpListener {
    /// Listen on `local` with the default backlog. Its IP may be unspecified (`0.0.0.0` or
    /// `[::]`, either of which takes connections of both families).
    pub fn bind(stack: &StackHandle, local: impl Into<SocketAddr>) -> io::Result<TcpListener> {
        let local = local.into();
        let backlog = stack.lock().tcp().config().default_backlog;
        Self::bind_with_backlog(stack, local, backlog)
    }

    /// Listen on `local` with at most `backlog` connections waiting to be accepted.
    pub fn bind_with_backlog(
        stack: &StackHandle,
        local: impl Into<SocketAddr>,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let local = local.into();
        let id = stack
            .lock()
            .tcp_mut()
            .listen(local, backlog)
            .map_err(io_error)?;
        log::debug!("socket: listening on {local}");
        trace_call(stack, None, local, SocketCall::Listen);
        Ok(TcpListener {
            stack: stack.clone(),
            id,
            local,
            nonblocking: AtomicBool::new(false),
            cond: stack.listener_waiter(id),
        })
    }

    /// Wait for the next established connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut core = self.stack.lock();
        loop {
            if let Some(id) = core.tcp_mut().accept(self.id) {
                let peer = core.tcp().peer_addr(id);
                drop(core);
                log::debug!("socket: accepted {peer} on {}", self.local);
                trace_call(&self.stack, Some(id), self.local, SocketCall::Accept);
                return Ok((TcpStream::from_id(&self.stack, id), peer));
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            core = self.stack.wait_on(&self.cond, core, None);
        }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// An iterator over incoming connections (as `std::net::TcpListener::incoming`).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let now = self.stack.now();
        self.stack.lock().tcp_mut().close_listener(self.id, now);
        self.stack.forget_listener(self.id);
        self.stack.wake();
    }
}

struct StreamInner {
    stack: StackHandle,
    id: ConnId,
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
    read_shut: AtomicBool,
    nonblocking: AtomicBool,
    /// Signalled when this connection changes (data, space, state).
    cond: Arc<Condvar>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        // close(2) on the last handle: a FIN after the queued data, or a RST if data we
        // were sent is left unread (as Linux does).
        trace_call(&self.stack, Some(self.id), UNSPECIFIED, SocketCall::Close);
        let now = self.stack.now();
        self.stack.lock().tcp_mut().release(self.id, now);
        self.stack.forget_conn(self.id);
        self.stack.wake();
    }
}

/// A connected TCP stream. `Read`, `Write`, `try_clone` and the timeouts behave like
/// `std::net::TcpStream`'s.
#[derive(Clone)]
pub struct TcpStream {
    inner: Arc<StreamInner>,
}

impl TcpStream {
    fn from_id(stack: &StackHandle, id: ConnId) -> TcpStream {
        TcpStream {
            inner: Arc::new(StreamInner {
                stack: stack.clone(),
                id,
                read_timeout: Mutex::new(None),
                write_timeout: Mutex::new(None),
                read_shut: AtomicBool::new(false),
                nonblocking: AtomicBool::new(false),
                cond: stack.conn_waiter(id),
            }),
        }
    }

    /// Active open (RFC 9293 §3.10.1): connect to `remote` from an ephemeral port and wait
    /// for the handshake to finish.
    pub fn connect(stack: &StackHandle, remote: impl Into<SocketAddr>) -> io::Result<TcpStream> {
        Self::connect_inner(stack, remote.into(), None)
    }

    /// Like [`TcpStream::connect`], giving up after `timeout`.
    pub fn connect_timeout(
        stack: &StackHandle,
        remote: impl Into<SocketAddr>,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        Self::connect_inner(stack, remote.into(), Some(timeout))
    }

    fn connect_inner(
        stack: &StackHandle,
        remote: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let deadline = deadline_after(timeout);
        let mut core = stack.lock();
        // Our address of the peer's family (none: the connect fails, address not
        // available).
        let local = SocketAddr::new(core.source_for(remote.ip()), 0);
        let now = stack.now();
        let id = core
            .tcp_mut()
            .connect(local, remote, now)
            .map_err(io_error)?;
        // From here on the stream owns the connection: dropping it releases the TCB. It is
        // declared after the guard so that on every return the guard is released first
        // (dropping the stream takes the lock again).
        let stream = TcpStream::from_id(stack, id);
        stack.wake();
        let outcome = loop {
            if core.tcp().is_connected(id) {
                break Ok(());
            }
            if let Some(e) = core.tcp().error(id) {
                break Err(io_error(e));
            }
            if expired(deadline) {
                let now = stack.now();
                core.tcp_mut().abort(id, now);
                break Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            core = stack.wait_on(&stream.inner.cond, core, deadline);
        };
        drop(core);
        if outcome.is_ok() {
            trace_call(stack, Some(id), UNSPECIFIED, SocketCall::Connect);
        }
        outcome.map(|()| stream)
    }

    /// The remote end's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.stack.lock().tcp().peer_addr(self.inner.id))
    }

    /// Our end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.stack.lock().tcp().local_addr(self.inner.id))
    }

    /// The connection's state in the RFC 9293 state machine (for study and diagnostics).
    pub fn state(&self) -> State {
        self.inner.stack.lock().tcp().state(self.inner.id)
    }

    /// Another handle on the same connection (the connection closes when the last goes).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(self.clone())
    }

    /// `Shutdown::Write` sends a FIN once queued data is out; `Shutdown::Read` makes
    /// further reads return end-of-file; `Both` does both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.inner.read_shut.store(true, Ordering::Relaxed);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let now = self.inner.stack.now();
            let mut core = self.inner.stack.lock();
            if core.tcp().state(self.inner.id) == State::Closed {
                return Err(io::ErrorKind::NotConnected.into());
            }
            core.tcp_mut().shutdown(self.inner.id, now);
            drop(core);
            self.trace(SocketCall::Shutdown);
            self.inner.stack.wake();
        }
        Ok(())
    }

    /// How long a read may wait; `None` waits forever. `Some(0)` is rejected as std does.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        *self
            .inner
            .read_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
        Ok(())
    }

    /// How long a write may wait for send-buffer space; `None` waits forever.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        *self
            .inner
            .write_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .inner
            .read_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .inner
            .write_timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// In non-blocking mode reads and writes return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// `true` turns Nagle's algorithm off (RFC 1122 §4.2.3.4, like `TCP_NODELAY`): a small
    /// write goes out at once even while earlier data is unacknowledged. Nagle is on by
    /// default (`tcp::Config::nodelay`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner
            .stack
            .lock()
            .tcp_mut()
            .set_nodelay(self.inner.id, nodelay);
        self.inner.stack.wake();
        Ok(())
    }

    /// Keep-alive probes (RFC 1122 §4.2.3.6) after `idle` without traffic, every
    /// `interval`, giving up after `count` unanswered ones (reads and writes then fail
    /// with `TimedOut`); `None` turns them off (the default).
    pub fn set_keepalive(&self, keepalive: Option<crate::tcp::KeepaliveConfig>) -> io::Result<()> {
        self.inner
            .stack
            .lock()
            .tcp_mut()
            .set_keepalive(self.inner.id, keepalive);
        self.inner.stack.wake();
        Ok(())
    }

    /// The user timeout (RFC 5482, like `TCP_USER_TIMEOUT`): the connection fails with
    /// `TimedOut` once sent data stays unacknowledged this long; `None` for the default.
    pub fn set_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner
            .stack
            .lock()
            .tcp_mut()
            .set_user_timeout(self.inner.id, timeout);
        self.inner.stack.wake();
        Ok(())
    }

    /// Bytes written that the peer has not acknowledged yet (queued or in flight), like
    /// Linux's `SIOCOUTQ`.
    pub fn unacked(&self) -> usize {
        self.inner.stack.lock().tcp().unacked(self.inner.id)
    }

    /// Wait up to `timeout` for the peer to acknowledge everything written so far (woken
    /// by the ACKs); returns the bytes still unacknowledged, 0 once all were delivered.
    /// Fails if the connection failed (a reset leaves nothing to count).
    pub fn wait_acked(&self, timeout: Duration) -> io::Result<usize> {
        let id = self.inner.id;
        let deadline = deadline_after(Some(timeout));
        let stack = &self.inner.stack;
        let mut core = stack.lock();
        loop {
            if let Some(e) = core.tcp().error(id) {
                return Err(io_error(e));
            }
            let left = core.tcp().unacked(id);
            if left == 0 || expired(deadline) {
                return Ok(left);
            }
            core = stack.wait_on(&self.inner.cond, core, deadline);
        }
    }

    #[track_caller]
    fn trace(&self, call: SocketCall) {
        trace_call(&self.inner.stack, Some(self.inner.id), UNSPECIFIED, call);
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.inner.read_shut.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let id = self.inner.id;
        let n = self.block_on(
            &self.inner.read_timeout,
            "read timed out",
            |core, now| match core.tcp_mut().recv(id, buf, now) {
                Err(TcpError::WouldBlock) => None,
                result => Some(result),
            },
        )?;
        self.trace(SocketCall::Read(n));
        if n > 0 {
            // Reading freed receive space: a window update may be due.
            self.inner.stack.wake();
        }
        Ok(n)
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let id = self.inner.id;
        let n = self.block_on(&self.inner.write_timeout, "write timed out", |core, now| {
            match core.tcp_mut().send(id, buf, now) {
                // The send buffer is full: wait for ACKs to free it.
                Ok(0) => None,
                result => Some(result),
            }
        })?;
        self.trace(SocketCall::Write(n));
        self.inner.stack.wake();
        Ok(n)
    }

    /// Call `attempt` under the stack lock until it has an answer (`Some`), waiting on
    /// this socket's condition variable in between, up to the socket's `timeout`; `None`
    /// means "would block". An expired timeout is `WouldBlock`, as std reports an expired
    /// SO_RCVTIMEO/SO_SNDTIMEO on Unix. The lock is released before this returns.
    fn block_on<T>(
        &self,
        timeout: &Mutex<Option<Duration>>,
        expired_message: &'static str,
        mut attempt: impl FnMut(&mut Interface, Instant) -> Option<Result<T, TcpError>>,
    ) -> io::Result<T> {
        let timeout = *timeout.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = deadline_after(timeout);
        let stack = &self.inner.stack;
        let mut core = stack.lock();
        loop {
            if let Some(result) = attempt(&mut core, stack.now()) {
                return result.map_err(io_error);
            }
            if self.inner.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if expired(deadline) {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, expired_message));
            }
            core = stack.wait_on(&self.inner.cond, core, deadline);
        }
    }
}

fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("id", &self.inner.id)
            .finish()
    }
}
