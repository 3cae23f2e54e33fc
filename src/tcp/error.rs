//! The errors the TCP layer reports to the application.

use std::fmt;
use std::io;

/// Errors reported to the application.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TcpError {
    /// The peer reset the connection.
    ConnectionReset,
    /// The peer answered our SYN with a RST (nobody listening).
    ConnectionRefused,
    /// The connection was aborted locally.
    ConnectionAborted,
    /// Retransmissions (or the handshake) timed out.
    TimedOut,
    /// The local address (and port) is taken.
    AddrInUse,
    /// The local address cannot be used (unspecified, or no ephemeral port left).
    AddrNotAvailable,
    /// The connection is not (or no longer) connected.
    NotConnected,
    /// Nothing to read yet.
    WouldBlock,
    /// Send after shutdown.
    BrokenPipe,
    /// The connection table is full.
    TooManyConnections,
    /// A stale or unknown handle.
    InvalidHandle,
}

impl TcpError {
    /// The matching `std::io::ErrorKind`.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            TcpError::ConnectionReset => io::ErrorKind::ConnectionReset,
            TcpError::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            TcpError::ConnectionAborted => io::ErrorKind::ConnectionAborted,
            TcpError::TimedOut => io::ErrorKind::TimedOut,
            TcpError::AddrInUse => io::ErrorKind::AddrInUse,
            TcpError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            TcpError::NotConnected => io::ErrorKind::NotConnected,
            TcpError::WouldBlock => io::ErrorKind::WouldBlock,
            TcpError::BrokenPipe => io::ErrorKind::BrokenPipe,
            TcpError::TooManyConnections => io::ErrorKind::OutOfMemory,
            TcpError::InvalidHandle => io::ErrorKind::InvalidInput,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TcpError::ConnectionReset => "connection reset by peer",
            TcpError::ConnectionRefused => "connection refused",
            TcpError::ConnectionAborted => "connection aborted",
            TcpError::TimedOut => "connection timed out",
            TcpError::AddrInUse => "address in use",
            TcpError::AddrNotAvailable => "address not available",
            TcpError::NotConnected => "not connected",
            TcpError::WouldBlock => "operation would block",
            TcpError::BrokenPipe => "broken pipe",
            TcpError::TooManyConnections => "too many connections",
            TcpError::InvalidHandle => "invalid connection handle",
        };
        f.write_str(s)
    }
}

impl std::error::Error for TcpError {}

impl From<TcpError> for io::Error {
    fn from(e: TcpError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}
