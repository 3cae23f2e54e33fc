//! The readiness API on a real event loop over a memory link, driven round by round on
//! the test's thread against a hand-driven client stack.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::*;
use crate::link::memory::MemDevice;
use crate::socket::UdpEcho;
use crate::stack::evloop::tests::{memory_loop, read_available, Client, CLIENT, SERVER};
use crate::stack::evloop::EventLoop;
use crate::stack::Interface;
use crate::time::Instant;

/// What the test asks the application to do with its first accepted socket in the next
/// round.
enum Action {
    /// `send_with` until the buffer is full, with the bytes of `pattern`.
    FillWith,
    Shutdown,
    Send(&'static [u8]),
    Close,
    Abort,
}

/// An application that records what the API tells it, and acts when told.
#[derive(Default)]
struct Probe {
    listener: Option<TcpListener>,
    listener_woken: usize,
    accepted: Vec<TcpSocket>,
    /// (local, peer) of each accepted socket, at accept time.
    addrs: Vec<(SocketAddr, SocketAddr)>,
    listener_addr: Option<SocketAddr>,
    /// Every socket a round named ready.
    ready: Vec<TcpSocket>,
    /// Read from the first socket in every round.
    reading: bool,
    got: Vec<u8>,
    eof: bool,
    would_block: usize,
    recv_ready_before_read: Vec<bool>,
    errors: Vec<SocketError>,
    todo: Vec<Action>,
    /// Bytes queued by `FillWith` so far (the pattern's position).
    filled: usize,
    /// `send_with` returned 0 (full) at least once.
    full: bool,
    send_ready_when_full: Option<bool>,
    unacked: usize,
    /// The first socket's `error()` in the last round.
    last_error: Option<SocketError>,
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

impl App for Probe {
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(l) = self.listener {
            self.listener_addr = l.local_addr(cx);
            if l.woken(cx) {
                self.listener_woken += 1;
            }
            while let Some(s) = l.accept(cx) {
                self.addrs.push((s.local_addr(cx), s.peer_addr(cx)));
                self.accepted.push(s);
            }
        }
        self.ready.extend(cx.ready_sockets());
        let Some(&s) = self.accepted.first() else {
            return;
        };
        if self.reading && !self.eof {
            let mut buf = [0u8; 512];
            loop {
                self.recv_ready_before_read.push(s.recv_ready(cx));
                match s.recv(cx, &mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.would_block() => {
                        self.would_block += 1;
                        break;
                    }
                    Err(e) => {
                        self.errors.push(e);
                        break;
                    }
                }
            }
        }
        for action in std::mem::take(&mut self.todo) {
            match action {
                Action::FillWith => loop {
                    let start = self.filled;
                    let sent = s.send_with(cx, 1000, |dst| {
                        assert!(!dst.is_empty() && dst.len() <= 1000, "{}", dst.len());
                        for (i, b) in dst.iter_mut().enumerate() {
                            *b = pattern(start + i);
                        }
                        dst.len()
                    });
                    match sent {
                        Ok(0) => {
                            self.full = true;
                            self.send_ready_when_full = Some(s.send_ready(cx));
                            break;
                        }
                        Ok(n) => self.filled += n,
                        Err(e) => {
                            self.errors.push(e);
                            break;
                        }
                    }
                },
                Action::Shutdown => s.shutdown(cx),
                Action::Send(data) => match s.send(cx, data) {
                    Ok(n) => assert_eq!(n, data.len()),
                    Err(e) => self.errors.push(e),
                },
                Action::Close => s.close(cx),
                Action::Abort => s.abort(cx),
            }
        }
        self.unacked = s.unacked(cx);
        self.last_error = s.error(cx);
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        None
    }

    fn shutdown(&mut self, _cx: &mut Context<'_>) {}
}

/// A loop listening on port 80 with a [`Probe`], and its client.
fn setup() -> (EventLoop<MemDevice>, Probe, Client) {
    let (mut ev, client) = memory_loop(11);
    let listener = ev.listen(SocketAddrV4::new(SERVER, 80), 8).expect("listen");
    let probe = Probe {
        listener: Some(listener),
        ..Probe::default()
    };
    (ev, probe, client)
}

/// Run server rounds and client exchanges until `done` holds (bounded by the client).
fn pump<A: App>(
    ev: &mut EventLoop<MemDevice>,
    app: &mut A,
    client: &mut Client,
    mut done: impl FnMut(&mut A, &mut Interface, Instant) -> bool,
) {
    client.pump_until(|iface, now| {
        ev.run_once(app, Some(Duration::ZERO)).expect("round");
        done(app, iface, now)
    });
}

/// Set up, connect from port `port` and wait until the server accepted.
fn accepted(port: u16) -> (EventLoop<MemDevice>, Probe, Client, crate::tcp::ConnId) {
    let (mut ev, mut probe, mut client) = setup();
    let id = client.start_connect(port, 80);
    pump(&mut ev, &mut probe, &mut client, |p, iface, _| {
        !p.accepted.is_empty() && iface.tcp().is_connected(id)
    });
    (ev, probe, client, id)
}

/// The client sends `data` on `id`; rounds run until the probe (reading) has that much.
fn client_sends(
    ev: &mut EventLoop<MemDevice>,
    probe: &mut Probe,
    client: &mut Client,
    id: crate::tcp::ConnId,
    data: &[u8],
) {
    let mut sent = 0;
    let want = probe.got.len() + data.len();
    pump(ev, probe, client, |p, iface, now| {
        sent += iface.tcp_mut().send(id, &data[sent..], now).unwrap_or(0);
        p.got.len() >= want
    });
}

#[test]
fn accept_hands_out_each_connection_once_with_its_addresses() {
    let (mut ev, mut probe, mut client) = setup();
    // Nothing to accept yet: the listener is not woken.
    for _ in 0..3 {
        ev.run_once(&mut probe, Some(Duration::ZERO))
            .expect("round");
    }
    assert_eq!(probe.listener_woken, 0);
    assert!(probe.accepted.is_empty());
    assert_eq!(
        probe.listener_addr,
        Some(SocketAddrV4::new(SERVER, 80).into())
    );

    let first = client.start_connect(45000, 80);
    let second = client.start_connect(45001, 80);
    pump(&mut ev, &mut probe, &mut client, |p, iface, _| {
        p.accepted.len() >= 2 && iface.tcp().is_connected(second)
    });
    assert!(probe.listener_woken >= 1);
    assert_eq!(probe.accepted.len(), 2, "each connection accepted once");
    assert_ne!(probe.accepted[0], probe.accepted[1]);
    assert_eq!(
        probe.addrs,
        vec![
            (
                SocketAddrV4::new(SERVER, 80).into(),
                SocketAddrV4::new(CLIENT, 45000).into()
            ),
            (
                SocketAddrV4::new(SERVER, 80).into(),
                SocketAddrV4::new(CLIENT, 45001).into()
            ),
        ]
    );
    assert!(client.iface.tcp().is_connected(first) && client.iface.tcp().is_connected(second));
}

#[test]
fn recv_would_block_until_data_arrives_and_the_socket_is_named_ready() {
    let (mut ev, mut probe, mut client, id) = accepted(45100);
    probe.reading = true;
    ev.run_once(&mut probe, Some(Duration::ZERO))
        .expect("round");
    assert!(probe.would_block >= 1, "no data yet: WouldBlock, not Ok(0)");
    assert!(!probe.eof);
    assert_eq!(probe.recv_ready_before_read.first(), Some(&false));

    probe.ready.clear();
    client_sends(&mut ev, &mut probe, &mut client, id, b"ping");
    assert_eq!(probe.got, b"ping");
    let sock = probe.accepted[0];
    assert!(probe.ready.contains(&sock), "the data woke the socket");
    assert!(probe.recv_ready_before_read.contains(&true));

    // The peer's FIN: Ok(0), once.
    client.iface.tcp_mut().shutdown(id, client.clock.now());
    pump(&mut ev, &mut probe, &mut client, |p, _, _| p.eof);
    assert!(probe.errors.is_empty(), "{:?}", probe.errors);
}

#[test]
fn send_with_fills_the_send_buffer_in_place_and_acks_wake_the_writer() {
    let (mut ev, mut probe, mut client, id) = accepted(45200);
    probe.todo.push(Action::FillWith);
    ev.run_once(&mut probe, Some(Duration::ZERO))
        .expect("round");
    assert!(probe.full, "send_with reports a full buffer with Ok(0)");
    assert!(probe.filled > 1000, "several pieces: {}", probe.filled);
    assert_eq!(probe.send_ready_when_full, Some(false));
    assert!(probe.unacked > 0);
    let first_fill = probe.filled;

    // The client reads everything: the acknowledgements wake the socket, unacked falls
    // to 0 and the buffer takes more.
    probe.ready.clear();
    let mut got = Vec::new();
    pump(&mut ev, &mut probe, &mut client, |p, iface, now| {
        read_available(iface, id, now, &mut got);
        got.len() >= first_fill && p.unacked == 0
    });
    assert_eq!(got.len(), first_fill);
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == pattern(i)),
        "bytes in order"
    );
    assert!(
        probe.ready.contains(&probe.accepted[0]),
        "acks woke the writer"
    );

    probe.todo.push(Action::FillWith);
    ev.run_once(&mut probe, Some(Duration::ZERO))
        .expect("round");
    assert!(probe.filled > first_fill, "room again after the acks");
    assert!(probe.errors.is_empty(), "{:?}", probe.errors);
}

#[test]
fn shutdown_sends_fin_and_the_socket_still_reads() {
    let (mut ev, mut probe, mut client, id) = accepted(45300);
    probe.reading = true;
    probe.todo.push(Action::Send(b"bye"));
    probe.todo.push(Action::Shutdown);
    let mut got = Vec::new();
    pump(&mut ev, &mut probe, &mut client, |_, iface, now| {
        read_available(iface, id, now, &mut got)
    });
    assert_eq!(got, b"bye", "queued data before the FIN");

    // Half-closed: the peer may still send, and we read it.
    client_sends(&mut ev, &mut probe, &mut client, id, b"late");
    assert_eq!(probe.got, b"late");

    // Writing after shutdown is an error of the call, not a block.
    probe.todo.push(Action::Send(b"more"));
    ev.run_once(&mut probe, Some(Duration::ZERO))
        .expect("round");
    let e = probe.errors.first().expect("send after shutdown fails");
    assert!(!e.would_block());
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn abort_resets_the_peer_and_close_fins_it() {
    let (mut ev, mut probe, mut client, id) = accepted(45400);
    probe.todo.push(Action::Abort);
    pump(&mut ev, &mut probe, &mut client, |_, iface, _| {
        iface.tcp().error(id).is_some()
    });
    assert_eq!(
        client.iface.tcp().error(id).map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset)
    );
    // The handle is given back: a stale handle reports an error.
    ev.run_once(&mut probe, Some(Duration::ZERO))
        .expect("round");
    assert!(probe.last_error.is_some());

    // close(): the peer sees an orderly end of stream, not a reset.
    let second = client.start_connect(45401, 80);
    pump(&mut ev, &mut probe, &mut client, |p, iface, _| {
        p.accepted.len() >= 2 && iface.tcp().is_connected(second)
    });
    probe.accepted.remove(0);
    probe.todo.push(Action::Send(b"last words"));
    probe.todo.push(Action::Close);
    let mut got = Vec::new();
    let mut eof = false;
    pump(&mut ev, &mut probe, &mut client, |_, iface, now| {
        eof = read_available(iface, second, now, &mut got);
        eof || iface.tcp().error(second).is_some()
    });
    assert!(eof, "FIN, not RST: {:?}", client.iface.tcp().error(second));
    assert_eq!(got, b"last words");
}

#[test]
fn udp_echo_runs_beside_another_app_on_one_loop() {
    let (mut ev, probe, mut client) = setup();
    let socket = ev.bind_udp(SocketAddrV4::new(SERVER, 7)).expect("bind udp");
    // The port is taken: a second bind fails with a socket-layer error.
    let taken = ev
        .bind_udp(SocketAddrV4::new(SERVER, 7))
        .expect_err("taken");
    assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
    let mut apps = (probe, UdpEcho::new(socket));
    let mine = client
        .iface
        .udp_mut()
        .bind(SocketAddrV4::new(CLIENT, 5000))
        .expect("client udp");
    client
        .iface
        .udp_mut()
        .send_to(mine, SocketAddrV4::new(SERVER, 7), b"echo me")
        .expect("send");
    // A TCP connection at the same time: both applications are run.
    let id = client.start_connect(45500, 80);
    let mut echoed = None;
    pump(&mut ev, &mut apps, &mut client, |(p, _), iface, _| {
        if echoed.is_none() {
            echoed = iface.udp_mut().recv_from(mine);
        }
        echoed.is_some() && !p.accepted.is_empty() && iface.tcp().is_connected(id)
    });
    assert_eq!(
        echoed,
        Some((SocketAddrV4::new(SERVER, 7).into(), b"echo me".to_vec()))
    );
    assert!(client.iface.tcp().is_connected(id));
}

/// The HTTP layer reaches the network through the socket layer only: its code (tests
/// aside) names nothing of the runtimes, the transport, internet or link layers.
#[test]
fn the_http_layer_uses_nothing_below_the_socket_layer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let below = [
        "crate::tcp",
        "crate::udp",
        "crate::ip",
        "crate::link",
        "crate::stack",
        "super::super",
    ];
    let mut found = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".rs") || name.ends_with("tests.rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        // Unit tests (at the end of a file) may drive a client stack by hand.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            if let Some(path) = below.iter().find(|p| line.contains(*p)) {
                found.push(format!("{name}:{}: {path}: {line}", i + 1));
            }
        }
    }
    assert!(files >= 5, "read {files} files of {}", dir.display());
    assert!(found.is_empty(), "{}", found.join("\n"));
}
