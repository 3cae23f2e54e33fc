//! The seam between HTTP and whatever carries its bytes.
//!
//! The server and client only need a blocking byte stream with timeouts. Keeping that behind
//! two small traits lets the same HTTP code run over the kernel's sockets (`std::net`, which the
//! tests use on 127.0.0.1) and over tunstack's own `socket::TcpStream`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A connected, blocking, bidirectional byte stream (one TCP connection).
pub trait Transport: Read + Write + Send + 'static {
    /// Bound how long a single `read` may block; `None` blocks forever. A read that times out
    /// fails with `WouldBlock` or `TimedOut`.
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// Bound how long a single `write` may block; `None` blocks forever.
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// The remote end's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Send FIN after the queued data (half-close); reading stays possible.
    fn shutdown_write(&self) -> io::Result<()>;
    /// Wait up to `timeout` for the peer to acknowledge everything written; the bytes
    /// still unacknowledged (0: all delivered). `Duration::ZERO` answers without waiting
    /// (the server asks that between writes). The default reports 0 at once: the
    /// kernel's sockets cannot tell without an ioctl, and they keep delivering after
    /// close on their own.
    fn wait_acked(&self, timeout: Duration) -> io::Result<usize> {
        let _ = timeout;
        Ok(0)
    }
}

/// A listening socket handing out connected [`Transport`]s.
pub trait Acceptor: Send + Sync + 'static {
    /// The connection type produced.
    type Stream: Transport;
    /// Wait for the next connection. `WouldBlock`/`TimedOut`/`Interrupted` errors are treated
    /// by the server as "nothing yet" (useful for a listener with an accept timeout, so the
    /// server notices a shutdown request); other errors are transient or fatal, see
    /// [`crate::http::Server::serve`].
    fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Acceptor for TcpListener {
    type Stream = TcpStream;
    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self)?;
        // A non-blocking listener (used so `serve` can poll a shutdown flag) must still hand
        // out blocking streams: the server relies on read/write timeouts.
        stream.set_nonblocking(false)?;
        Ok((stream, peer))
    }
}

/// A shared listener accepts too, so the caller can keep a handle (e.g. to close it) while
/// [`Server::serve`](crate::http::Server::serve) owns the other.
impl<A: Acceptor> Acceptor for Arc<A> {
    type Stream = A::Stream;
    fn accept(&self) -> io::Result<(A::Stream, SocketAddr)> {
        (**self).accept()
    }
}
