//! HTTP over tunstack's own sockets: the [`Transport`]/[`Acceptor`] seam implemented for
//! `socket::TcpStream`/`socket::TcpListener`, so the same server code that the tests run
//! over `std::net` serves curl through our TCP.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use super::transport::{Acceptor, Transport};
use crate::socket::{TcpListener, TcpStream};

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
    fn wait_acked(&self, timeout: Duration) -> io::Result<usize> {
        TcpStream::wait_acked(self, timeout)
    }
}

impl Acceptor for TcpListener {
    type Stream = TcpStream;
    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self)?;
        // The server writes a response's head and body separately; with Nagle the body
        // would wait for the ACK of the head, which a delayed-ACK client holds back for
        // up to 40-200 ms on every keep-alive request. Responses are written in large
        // pieces anyway, so Nagle has nothing to coalesce here (nginx does the same).
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
}
