//! Two whole stacks — event loop, transport layer and socket API — wired back to back
//! through an in-memory link, driven by real threads through `TcpListener`/`TcpStream`.
//! No TUN, no root: these run anywhere.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::os::fd::RawFd;
use std::thread;
use std::time::Duration;

use tunstack::link::memory::{self, MemDevice};
use tunstack::link::offload::{RxMeta, TxMeta};
use tunstack::link::Device;
use tunstack::socket::{TcpListener, TcpStream};
use tunstack::stack::{self, StackConfig, StackHandle};
use tunstack::time::Instant;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn start<D: Device + 'static>(addr: Ipv4Addr, device: D) -> StackHandle {
    let mut config = StackConfig::new(addr);
    config.seed = Some(u64::from(u32::from(addr)));
    stack::start(device, config).expect("stack starts")
}

/// Middleware for the tests: every write takes `delay` (a slow device).
struct SlowWrites {
    inner: MemDevice,
    delay: Duration,
}

impl Device for SlowWrites {
    fn recv(&mut self, buf: &mut [u8], now: Instant) -> std::io::Result<Option<(usize, RxMeta)>> {
        self.inner.recv(buf, now)
    }
    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) -> std::io::Result<()> {
        thread::sleep(self.delay);
        self.inner.send(packet, meta, now)
    }
    fn raw_fd(&self) -> RawFd {
        self.inner.raw_fd()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
}

fn pair() -> (StackHandle, StackHandle) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (c, s) = memory::pair().expect("memory link");
    (start(CLIENT, c), start(SERVER, s))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

#[test]
fn echo_round_trip_through_both_stacks() {
    let (client, server) = pair();
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 7)).unwrap();
    let srv = thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), CLIENT.to_string());
        let mut buf = vec![0u8; 8192];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
            total += n;
        }
        s.shutdown(Shutdown::Write).unwrap();
        total
    });
    let data = pattern(2 * 1024 * 1024 + 17, 3);
    let mut stream = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 7)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let writer = {
        let mut w = stream.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert_eq!(srv.join().unwrap(), data.len());
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echoed bytes differ");
}

#[test]
fn connect_to_closed_port_is_refused() {
    let (client, _server) = pair();
    let err = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 9)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn many_concurrent_connections() {
    let (client, server) = pair();
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 80)).unwrap();
    const N: usize = 50;
    let srv = thread::spawn(move || {
        let mut handles = Vec::new();
        for _ in 0..N {
            let (mut s, _) = listener.accept().unwrap();
            handles.push(thread::spawn(move || {
                let mut req = [0u8; 4];
                s.read_exact(&mut req).unwrap();
                let id = u32::from_be_bytes(req);
                s.write_all(&pattern(10_000, id as u8)).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let clients: Vec<_> = (0..N as u32)
        .map(|id| {
            let client = client.clone();
            thread::spawn(move || {
                let mut s = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 80)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(&id.to_be_bytes()).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                assert!(
                    got == pattern(10_000, id as u8),
                    "client {id} got wrong bytes"
                );
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    srv.join().unwrap();
}

#[test]
fn read_timeout_expires_as_would_block() {
    let (client, server) = pair();
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 81)).unwrap();
    let srv = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(600));
        drop(s);
    });
    let mut s = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 81)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    srv.join().unwrap();
    // The server closed without sending: end of file.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 0);
}

#[test]
fn abortive_close_resets_the_peer() {
    let (client, server) = pair();
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 82)).unwrap();
    let mut s = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 82)).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    // Data sent to the server but not all read: closing it must reset (RFC 9293 §3.10.4,
    // as Linux does), and the client's next read reports the reset. The six bytes travel
    // in one segment, so once three are read the other three are waiting.
    s.write_all(b"unread").unwrap();
    let mut first = [0u8; 3];
    peer.read_exact(&mut first).unwrap();
    drop(peer);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

/// `StackHandle::shutdown` returns once the stack thread has put the resets of the
/// connections the grace period left open on the wire, however slow the device is.
#[test]
fn shutdown_returns_after_the_resets_are_sent() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (c, s) = memory::pair().expect("memory link");
    let client = start(CLIENT, c);
    let slow = SlowWrites {
        inner: s,
        delay: Duration::from_millis(50),
    };
    let server = start(SERVER, slow);
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 7)).unwrap();
    let stream = TcpStream::connect(&client, SocketAddrV4::new(SERVER, 7)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    // Keep the server's stack thread busy writing for a while (50 ms a segment)...
    (&accepted).write_all(&pattern(20_000, 3)).unwrap();
    thread::sleep(Duration::from_millis(20));
    // ... while it is asked to stop with no grace: FIN, then at once RST.
    server.shutdown(Duration::ZERO);
    // The reset arrives at the client: its read fails instead of returning EOF.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8];
    let limit = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match (&stream).read(&mut buf) {
            // Data, and perhaps the FIN, come first; the reset follows.
            Ok(0) => thread::sleep(Duration::from_millis(10)),
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionReset);
                break;
            }
        }
        assert!(std::time::Instant::now() < limit, "no reset after the FIN");
    }
}
