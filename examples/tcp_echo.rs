//! A TCP echo server (RFC 862) on tunstack's socket API alone: no HTTP, one thread per
//! connection, exactly as one would write it with `std::net`.
//!
//! ```sh
//! # in a scratch network namespace, as root:
//! ip netns add echo-demo
//! ip netns exec echo-demo cargo run --example tcp_echo -- echo0 10.7.0.1/24 10.7.0.2
//! ip netns exec echo-demo sh -c 'echo hello | nc -q1 10.7.0.2 7'
//! ip netns del echo-demo
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use tunstack::link::TunQueue;
use tunstack::socket::TcpListener;
use tunstack::stack::{self, StackConfig};

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let tun = args.next().unwrap_or_else(|| "echo0".into());
    let host_ip = args.next().unwrap_or_else(|| "10.7.0.1/24".into());
    let ip: Ipv4Addr = args
        .next()
        .unwrap_or_else(|| "10.7.0.2".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;

    let device = TunQueue::open(&tun)?;
    device.configure(&host_ip, 1500)?;
    let stack = stack::start(device, StackConfig::new(ip))?;

    let listener = TcpListener::bind(&stack, SocketAddrV4::new(ip, 7))?;
    log::info!("echo server on {ip}:7");
    loop {
        let (mut stream, peer) = listener.accept()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        log::info!("{peer}: {e}");
                        break;
                    }
                }
            }
        });
    }
}
