//! The TUN device's own ceiling, with and without offloads: how fast [`TunQueue`] moves TCP
//! data between a kernel socket and a trivial hand-written peer, with no stack in between.
//!
//! ```text
//! sudo ip netns add ceil && sudo ip netns exec ceil \
//!     cargo run --release --example tunq_ceiling -- [--no-offload] [--mib N]
//! sudo ip netns delete ceil
//! ```
//! It refuses to run outside a namespace made by `ip netns add`: it creates TUN `tsqceil0` with
//! `10.70.0.1/24` on the kernel side. A kernel client (a thread of this process) connects to
//! `10.70.0.2:5000`, uploads N MiB (default 512), then downloads N MiB. The peer answers
//! the handshake, acknowledges in-order data once per batch of reads, and sends with a
//! go-back-N retransmission and at most 1 MiB in flight: just enough TCP for the kernel to
//! run at full speed. With offloads it reads the kernel's super-segments and writes 44-MSS
//! (64,240-byte) super-segments; without, one 1460-byte packet per read and per write.
//! Printed: Gbit/s each way and the number of reads and writes.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tunstack::ip::{ipv4, Ipv4Packet};
use tunstack::link::offload::TxMeta;
use tunstack::link::Device;
use tunstack::link::{TunOptions, TunQueue};
use tunstack::tcp::segment::{Flags, Segment, TcpOptions};
use tunstack::tcp::seq::SeqNum;

const DEV: &str = "tsqceil0";
const HOST: Ipv4Addr = Ipv4Addr::new(10, 70, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 70, 0, 2);
const PORT: u16 = 5000;
const MSS: usize = 1460;
/// Payload of one super-segment: 44 MSS, the most below 64 KiB with headers.
const SUPER: usize = 44 * MSS;
/// Most bytes in flight (also bounds what the kernel may queue towards us: 256 KiB window).
const MAX_IN_FLIGHT: usize = 1 << 20;
/// Window scale we advertise: 65535 << 2 = 256 KiB, well inside the TUN's 500-packet queue.
const WINDOW_SCALE: u8 = 2;
const ISN: u32 = 1000;
/// Retransmit everything unacknowledged after this long without progress.
const STALL: Duration = Duration::from_millis(30);

fn main() -> io::Result<()> {
    let mut offload = true;
    let mut mib = 512usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-offload" => offload = false,
            "--mib" => {
                mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v| v > 0)
                    .ok_or_else(|| io::Error::other("--mib needs a positive number"))?;
            }
            other => return Err(io::Error::other(format!("unknown argument {other}"))),
        }
    }
    // `ip netns identify` names the namespace `ip netns exec` put us in; outside one it
    // prints nothing.
    let ns = std::process::Command::new("ip")
        .args(["netns", "identify"])
        .output()?;
    if String::from_utf8_lossy(&ns.stdout).trim().is_empty() {
        return Err(io::Error::other(
            "refusing to create a TUN outside a named network namespace: run under \
             `ip netns exec`",
        ));
    }
    let size = mib << 20;
    let opts = TunOptions {
        tap: false,
        offload,
        queues: 1,
    };
    let mut q = TunQueue::open_queues(DEV, &opts)?
        .pop()
        .ok_or_else(|| io::Error::other("no queue"))?;
    q.configure(&format!("{HOST}/24"), 1500)?;
    println!("offloads {:?}", q.offloads());
    let client = std::thread::spawn(move || kernel_client(size));
    let report = Peer::new(size, offload).run(&mut q, &client)?;
    let download = client
        .join()
        .map_err(|_| io::Error::other("client panicked"))??;
    let gbps = |d: Duration| size as f64 * 8.0 / d.as_secs_f64() / 1e9;
    println!(
        "offload {offload}: upload {:.2} Gbit/s ({} reads), download {:.2} Gbit/s ({} writes, {} go-back-N)",
        gbps(report.upload),
        report.reads,
        gbps(download),
        report.writes,
        report.rewinds
    );
    Ok(())
}

/// Uploads `size` bytes, then reads `size` bytes; returns how long the download took from
/// its first byte.
fn kernel_client(size: usize) -> io::Result<Duration> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::from((PEER, PORT)), Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let chunk = vec![7u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n])?;
        left -= n;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    let mut start = None;
    while got < size {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("download ended early"));
        }
        start.get_or_insert_with(Instant::now);
        got += n;
    }
    Ok(start.map(|t| t.elapsed()).unwrap_or_default())
}

/// What the peer measured.
struct Report {
    upload: Duration,
    reads: u64,
    writes: u64,
    rewinds: u64,
}

/// The hand-written TCP peer.
struct Peer {
    size: usize,
    offload: bool,
    port: u16,
    rcv_nxt: u32,
    received: usize,
    snd_una: u32,
    snd_nxt: u32,
    peer_window: usize,
    peer_scale: u8,
    payload: Vec<u8>,
    packet: Vec<u8>,
}

impl Peer {
    fn new(size: usize, offload: bool) -> Peer {
        Peer {
            size,
            offload,
            port: 0,
            rcv_nxt: 0,
            received: 0,
            snd_una: ISN + 1,
            snd_nxt: ISN + 1,
            peer_window: 0,
            peer_scale: 0,
            payload: vec![9u8; SUPER],
            packet: Vec::with_capacity(SUPER + 64),
        }
    }

    fn run(
        &mut self,
        q: &mut TunQueue,
        client: &std::thread::JoinHandle<io::Result<Duration>>,
    ) -> io::Result<Report> {
        let fd = q.raw_fd();
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)?;
        let mut events = Events::with_capacity(4);
        let mut buf = vec![0u8; q.recv_buf_len()];
        let mut report = Report {
            upload: Duration::ZERO,
            reads: 0,
            writes: 0,
            rewinds: 0,
        };
        let mut upload_start = None;
        let mut uploaded = false;
        let mut progress = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !client.is_finished() {
            if Instant::now() > deadline {
                return Err(io::Error::other("no end after 300 s"));
            }
            poll.poll(&mut events, Some(Duration::from_millis(5)))?;
            let mut ack_due = false;
            while let Some((n, _meta)) =
                q.recv(&mut buf, tunstack::time::Instant::from_millis(0))?
            {
                let Some(seg) = parse(buf.get(..n).unwrap_or_default()) else {
                    continue;
                };
                // One connection: a run before this one in the same namespace may still
                // retransmit its FIN to the same address.
                if seg.flags.syn && self.port == 0 {
                    self.port = seg.src_port;
                    self.rcv_nxt = seg.seq.0.wrapping_add(1);
                    self.peer_scale = seg.options.window_scale.unwrap_or(0);
                    self.send(q, ISN, Flags::SYN_ACK, 0, true)?;
                    continue;
                }
                if seg.src_port != self.port || seg.flags.syn {
                    continue;
                }
                if seg.flags.ack && seg.ack.0.wrapping_sub(self.snd_una) as i32 > 0 {
                    self.snd_una = seg.ack.0;
                    progress = Instant::now();
                }
                self.peer_window = usize::from(seg.window) << self.peer_scale;
                if !seg.payload.is_empty() {
                    report.reads += 1;
                    upload_start.get_or_insert_with(Instant::now);
                    if seg.seq.0 == self.rcv_nxt {
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.payload.len() as u32);
                        self.received += seg.payload.len();
                    }
                    ack_due = true;
                }
            }
            if ack_due {
                self.send(q, self.snd_nxt, Flags::ACK, 0, false)?;
            }
            if !uploaded && self.received >= self.size {
                uploaded = true;
                report.upload = upload_start.map(|t| t.elapsed()).unwrap_or_default();
            }
            if !uploaded {
                continue;
            }
            if self.snd_nxt != self.snd_una && progress.elapsed() > STALL {
                self.snd_nxt = self.snd_una;
                report.rewinds += 1;
                progress = Instant::now();
            }
            let limit = self.peer_window.min(MAX_IN_FLIGHT);
            loop {
                let in_flight = self.snd_nxt.wrapping_sub(self.snd_una) as usize;
                let sent = self.snd_nxt.wrapping_sub(ISN + 1) as usize;
                let max = if self.offload { SUPER } else { MSS };
                let len = max
                    .min(self.size - sent)
                    .min(limit.saturating_sub(in_flight));
                if len == 0 || (len < MSS && sent + len < self.size) {
                    break;
                }
                self.send(q, self.snd_nxt, Flags::ACK, len, false)?;
                report.writes += 1;
                self.snd_nxt = self.snd_nxt.wrapping_add(len as u32);
                progress = Instant::now();
            }
        }
        Ok(report)
    }

    /// Sends a segment with `len` bytes of payload: a super-segment with a partial
    /// checksum when offloads are on and it is longer than the MSS.
    fn send(
        &mut self,
        q: &mut TunQueue,
        seq: u32,
        flags: Flags,
        len: usize,
        syn: bool,
    ) -> io::Result<()> {
        let seg = Segment {
            src_port: PORT,
            dst_port: self.port,
            seq: SeqNum(seq),
            ack: SeqNum(self.rcv_nxt),
            flags,
            window: u16::MAX,
            urgent: 0,
            options: if syn {
                TcpOptions {
                    mss: Some(MSS as u16),
                    window_scale: Some(WINDOW_SCALE),
                    ..TcpOptions::default()
                }
            } else {
                TcpOptions::default()
            },
            payload: Vec::new(),
        };
        let tso = self.offload && len > MSS;
        // Room for the IP header, written once the TCP length is known.
        self.packet.clear();
        self.packet.resize(ipv4::MIN_HEADER_LEN, 0);
        seg.emit_into(&mut self.packet, PEER, HOST);
        self.packet
            .extend_from_slice(self.payload.get(..len).unwrap_or_default());
        let mut ip = Vec::with_capacity(ipv4::MIN_HEADER_LEN);
        let tcp_len = self.packet.len() - ipv4::MIN_HEADER_LEN;
        ipv4::emit_into(&mut ip, PEER, HOST, ipv4::PROTO_TCP, 64, 0, tcp_len);
        self.packet[..ipv4::MIN_HEADER_LEN].copy_from_slice(&ip);
        // The header was checksummed without the payload: redo it over all of it, or
        // leave only the pseudo-header sum for the kernel to finish.
        let tcp = self.packet.get_mut(20..).unwrap_or_default();
        tcp[16..18].fill(0);
        let pseudo = ipv4::pseudo_header_sum(PEER, HOST, ipv4::PROTO_TCP, tcp.len() as u16);
        let sum = if tso {
            !ipv4::checksum_with(pseudo, &[])
        } else {
            ipv4::checksum_with(pseudo, tcp)
        };
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let meta = if tso {
            TxMeta {
                gso_size: MSS as u16,
                csum_partial: true,
            }
        } else {
            TxMeta::default()
        };
        q.send(&self.packet, meta, tunstack::time::Instant::from_millis(0))
    }
}

/// A TCP segment for us, read leniently: the kernel leaves checksums partial with offloads.
fn parse(packet: &[u8]) -> Option<Segment> {
    let ip = Ipv4Packet::parse(packet).ok()?;
    if ip.dst != PEER || ip.protocol != ipv4::PROTO_TCP {
        return None;
    }
    Segment::parse_lenient(ip.src, ip.dst, ip.payload)
        .ok()
        .map(|(seg, _)| seg)
}
