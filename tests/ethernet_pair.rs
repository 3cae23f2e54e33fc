//! Two whole stacks in TAP mode — Ethernet layer and ARP under the host — wired back to
//! back through an in-memory "cable" that carries frames, driven through the socket API:
//! UDP datagrams (`UdpSocket`, the echo service) and a TCP transfer. No TAP, no root.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use tunstack::link::arp::ArpConfig;
use tunstack::link::ethernet::MacAddr;
use tunstack::link::ethernet_layer::EthernetConfig;
use tunstack::link::memory::{self, MemDevice};
use tunstack::link::Medium;
use tunstack::socket::{udp_echo_service, TcpListener, TcpStream, UdpSocket};
use tunstack::stack::{self, StackConfig, StackHandle};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);

fn start(addr: Ipv4Addr, mac: u8, mut device: MemDevice) -> StackHandle {
    let mut config = StackConfig::new(addr);
    config.seed = Some(u64::from(u32::from(addr)));
    config.ethernet = Some(EthernetConfig {
        mac: MacAddr([2, 0, 0, 0, 0, mac]),
        addr,
        prefix_len: 24,
        gateway: None,
        arp: ArpConfig::default(),
        addr6: None,
    });
    device.set_medium(Medium::Ethernet);
    stack::start(device, config).expect("stack starts")
}

fn pair() -> (StackHandle, StackHandle) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (c, s) = memory::pair().expect("memory link");
    (start(CLIENT, 1, c), start(SERVER, 2, s))
}

#[test]
fn udp_echo_between_two_ethernet_stacks() {
    let (client, server) = pair();
    let echo = UdpSocket::bind(&server, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    thread::spawn(move || udp_echo_service(&echo));

    let socket = UdpSocket::bind(&client, SocketAddrV4::new(CLIENT, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 2000];
    for (i, size) in [0usize, 1, 512, 1472].into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
        socket.send_to(&data, SocketAddrV4::new(SERVER, 7)).unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(SERVER, 7)));
        assert_eq!(&buf[..n], &data[..], "echo of {size} bytes");
    }
    // The first datagram waited for ARP; the client resolved the server exactly once and
    // the server learned the client from that request (no ARP of its own).
    let c = client.stats().link.unwrap();
    let s = server.stats().link.unwrap();
    assert_eq!(c.arp.resolved, 1, "{c:?}");
    assert_eq!(s.arp.replies_sent, 1, "{s:?}");
    assert_eq!(s.arp.resolved, 0, "{s:?}");
    assert_eq!(server.stats().udp.delivered, 4);
}

#[test]
fn recv_from_honours_the_read_timeout() {
    let (client, _server) = pair();
    let socket = UdpSocket::bind(&client, SocketAddrV4::new(CLIENT, 5000)).unwrap();
    assert_eq!(
        UdpSocket::bind(&client, SocketAddrV4::new(CLIENT, 5000))
            .unwrap_err()
            .kind(),
        ErrorKind::AddrInUse
    );
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let err = socket.recv_from(&mut [0u8; 10]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(socket.set_read_timeout(Some(Duration::ZERO)).is_err());
}

#[test]
fn tcp_transfer_over_ethernet() {
    let (client, server) = pair();
    let listener = TcpListener::bind(&server, SocketAddrV4::new(SERVER, 80)).unwrap();
    let len = 4 * 1024 * 1024;
    let sender = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        stream.write_all(&data).unwrap();
    });
    let mut stream = TcpStream::connect_timeout(
        &client,
        SocketAddrV4::new(SERVER, 80),
        Duration::from_secs(10),
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::with_capacity(len);
    stream.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    assert_eq!(got.len(), len);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let s = server.stats().link.unwrap();
    assert!(s.frames_out > 2000, "{s:?}");
    assert_eq!(s.drops.values().sum::<u64>(), 0, "no frame dropped: {s:?}");
}
