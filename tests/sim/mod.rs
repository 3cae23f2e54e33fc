//! The application side of the host-level simulations (`stack_simulation`,
//! `tso_simulation`): one connection that sends `out`, reads everything into `got`, and
//! closes its sending side once all of `out` is written.

use tunstack::stack::Interface;
use tunstack::tcp::{ConnId, ListenerId};
use tunstack::time::Instant;

/// A bulk application on one host.
pub struct BulkApp {
    /// Accept the connection here (the passive side).
    pub listener: Option<ListenerId>,
    /// The connection, once opened or accepted.
    pub conn: Option<ConnId>,
    /// What to send.
    pub out: Vec<u8>,
    /// How much of `out` TCP has taken.
    pub sent: usize,
    /// What arrived.
    pub got: Vec<u8>,
    /// The peer's FIN was read.
    pub eof: bool,
    /// Our FIN is queued.
    pub shut: bool,
}

impl BulkApp {
    /// An application that will send `out`.
    pub fn new(out: Vec<u8>) -> BulkApp {
        BulkApp {
            listener: None,
            conn: None,
            out,
            sent: 0,
            got: Vec::new(),
            eof: false,
            shut: false,
        }
    }

    /// The application's turn; true if it did anything.
    pub fn step(&mut self, iface: &mut Interface, now: Instant) -> bool {
        let mut progress = false;
        if let (None, Some(l)) = (self.conn, self.listener) {
            self.conn = iface.tcp_mut().accept(l);
            progress |= self.conn.is_some();
        }
        let Some(id) = self.conn else {
            return progress;
        };
        let tcp = iface.tcp_mut();
        if let Some(e) = tcp.error(id) {
            panic!("connection failed: {e}");
        }
        while self.sent < self.out.len() && tcp.is_connected(id) {
            match tcp.send(id, &self.out[self.sent..], now) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.sent += n;
                    progress = true;
                }
            }
        }
        if self.sent == self.out.len() && !self.shut && tcp.is_connected(id) {
            tcp.shutdown(id, now);
            self.shut = true;
            progress = true;
        }
        let mut buf = [0u8; 64 * 1024];
        while !self.eof {
            match tcp.recv(id, &mut buf, now) {
                Ok(0) => {
                    self.eof = true;
                    progress = true;
                }
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(_) => break,
            }
        }
        progress
    }
}
