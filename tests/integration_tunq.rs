//! The offload-capable, multi-queue TUN ([`tunstack::link::TunQueue`]) against the real
//! kernel, in a network namespace of its own.
//!
//! Each parent test creates a namespace with the shared harness (tests/common) and re-runs
//! this test binary inside it (`ip netns exec`), restricted to [`tunq_child`] with the
//! scenario in the environment: the TUN, its 10.x addresses and the traffic never touch the
//! root namespace. Inside, `ping` runs against the TUN peer and the test answers the echo
//! requests by hand (crate::ip helpers) through the queues.
//!
//! Skipped unless run as root; with `CI=1` a missing prerequisite fails instead.
//! Run: `CI=1 cargo test --test integration_tunq`.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tunstack::ip::{icmp, ipv4, Ipv4Packet};
use tunstack::link::offload::{Offloads, RxMeta, TxMeta};
use tunstack::link::Device;

/// The devices ignore the clock (no middleware): any instant will do.
const T0: tunstack::time::Instant = tunstack::time::Instant::from_millis(0);
use tunstack::link::{gso, TunOptions, TunQueue};
use tunstack::tcp::segment::{Flags, Segment, TcpOptions};
use tunstack::tcp::seq::SeqNum;

/// Which scenario the child runs (set by the parent).
const SCENARIO_ENV: &str = "TUNSTACK_TUNQ_SCENARIO";
/// The parent's network namespace, so the child can refuse to run in it.
const PARENT_NS_ENV: &str = "TUNSTACK_TUNQ_PARENT_NS";
/// Full name of the child test.
const CHILD_TEST: &str = "tunq_child";
/// Bound for a whole scenario.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// Our network namespace, e.g. `net:[4026531840]`.
fn current_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Creates a namespace and runs [`tunq_child`] in it with `scenario`.
fn run_scenario(test: &str, scenario: &str) {
    let Some(h) = common::Harness::new(test, &["ping"]) else {
        return;
    };
    let exe = std::env::current_exe().expect("own path");
    let mut c = h.ns().command(&exe);
    c.args([CHILD_TEST, "--exact", "--include-ignored", "--nocapture"])
        .env(SCENARIO_ENV, scenario)
        .env(PARENT_NS_ENV, current_netns())
        .env("TUNSTACK_TUNQ_DEV", h.tun());
    let run = common::run_bounded(c, SCENARIO_TIMEOUT);
    println!("{run}");
    run.expect_success(&format!("child scenario {scenario}"));
    // Guard against the filter matching nothing and "passing" vacuously.
    assert!(
        run.stdout.contains("1 passed"),
        "child test did not run: {run}"
    );
}

#[test]
fn tunq_ping_plain() {
    run_scenario("tunq_ping_plain", "plain");
}

#[test]
fn tunq_ping_offload() {
    run_scenario("tunq_ping_offload", "offload");
}

#[test]
fn tunq_ping_two_queues() {
    run_scenario("tunq_ping_two_queues", "mq");
}

#[test]
fn tunq_tcp_super_segments() {
    run_scenario("tunq_tcp_super_segments", "tcp");
}

#[test]
fn tunq_tcp_without_offload() {
    run_scenario("tunq_tcp_without_offload", "tcp-plain");
}

/// The scenarios, run only inside the namespace a parent test made.
#[test]
#[ignore = "run by the tunq_* tests inside a fresh network namespace"]
fn tunq_child() {
    let Ok(scenario) = std::env::var(SCENARIO_ENV) else {
        eprintln!("SKIP: only runs inside the namespace made by a tunq_* test");
        return;
    };
    let parent = std::env::var(PARENT_NS_ENV).unwrap_or_default();
    assert_ne!(
        parent,
        current_netns(),
        "refusing to configure a TUN in the parent's network namespace"
    );
    let dev = std::env::var("TUNSTACK_TUNQ_DEV").expect("device name");
    match scenario.as_str() {
        "plain" => ping_scenario(&dev, 61, false, 1),
        "offload" => {
            ping_scenario(&dev, 62, true, 1);
            tap_offload();
        }
        "mq" => ping_scenario(&dev, 63, true, 2),
        "tcp" => tcp_scenario(&dev, 64, true),
        "tcp-plain" => tcp_scenario(&dev, 65, false),
        other => panic!("unknown scenario {other}"),
    }
}

/// Registers every queue with a mio poll, token = queue index.
fn poll_queues(queues: &[TunQueue]) -> Poll {
    let poll = Poll::new().expect("epoll");
    for (i, q) in queues.iter().enumerate() {
        let fd: RawFd = q.raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .expect("register queue");
    }
    poll
}

/// What the kernel reports in `/sys/class/net/<dev>/tun_flags`.
fn tun_flags(dev: &str) -> u32 {
    let text =
        std::fs::read_to_string(format!("/sys/class/net/{dev}/tun_flags")).expect("read tun_flags");
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).expect("hex tun_flags")
}

const IFF_MULTI_QUEUE: u32 = 0x0100;
const IFF_VNET_HDR: u32 = 0x4000;

fn all_offloads() -> Offloads {
    Offloads {
        vnet_hdr: true,
        rx_csum: true,
        rx_tso4: true,
        tx_tso4: true,
        rx_tso6: true,
        tx_tso6: true,
    }
}

/// Opens the device, checks what the kernel accepted, configures `10.<net>.0.1/24`, pings
/// `10.<net>.0.2` and answers through the queues.
fn ping_scenario(dev: &str, net: u8, offload: bool, queues: usize) {
    let opts = TunOptions {
        tap: false,
        offload,
        queues,
    };
    let mut qs = TunQueue::open_queues(dev, &opts).expect("open queues");
    assert_eq!(qs.len(), queues);
    assert!(qs.iter().all(|q| q.name() == dev));
    let flags = tun_flags(dev);
    if offload {
        // This kernel (6.x) accepts the header and TCP/IPv4 checksum + segmentation offload.
        for q in &qs {
            assert_eq!(q.offloads(), all_offloads());
            assert!(q.recv_buf_len() > 65535);
        }
        assert_ne!(flags & IFF_VNET_HDR, 0, "tun_flags {flags:#x}");
    } else {
        assert!(qs.iter().all(|q| q.offloads() == Offloads::default()));
        assert_eq!(flags & IFF_VNET_HDR, 0, "tun_flags {flags:#x}");
    }
    assert_eq!(
        flags & IFF_MULTI_QUEUE != 0,
        queues > 1,
        "tun_flags {flags:#x}"
    );
    // What docs/1-link.md shows: the flags as iproute2 reports them.
    let show = Command::new("ip")
        .args(["-d", "link", "show", "dev", dev])
        .output()
        .expect("ip -d link show");
    let show = String::from_utf8_lossy(&show.stdout);
    println!("{show}");
    let vnet = if offload {
        "vnet_hdr on"
    } else {
        "vnet_hdr off"
    };
    assert!(show.contains(vnet), "{show}");
    if queues > 1 {
        assert!(show.contains(&format!("numqueues {queues}")), "{show}");
    }

    let host = Ipv4Addr::new(10, net, 0, 1);
    let stack = Ipv4Addr::new(10, net, 0, 2);
    qs[0]
        .configure(&format!("{host}/24"), 1400)
        .expect("configure");
    assert!(qs.iter().all(|q| q.mtu() == 1400));
    // Nothing waiting yet is Ok(None), not an error.
    let mut buf = vec![0u8; qs[0].recv_buf_len()];
    for q in &mut qs {
        while q.recv(&mut buf, T0).expect("recv").is_some() {}
    }

    let mut poll = poll_queues(&qs);
    let mut events = Events::with_capacity(8);
    // Default size, a near-MTU payload (1372 + 8 + 20 = 1400) and an odd length.
    for size in ["56", "1372", "1001"] {
        let mut ping = Command::new("ping")
            .args(["-n", "-c3", "-i0.2", "-W5", "-s", size])
            .arg(stack.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ping");
        let mut per_queue = vec![0u32; qs.len()];
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = ping.try_wait().expect("wait ping") {
                break status;
            }
            assert!(Instant::now() < deadline, "ping did not finish");
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .expect("poll");
            for (i, q) in qs.iter_mut().enumerate() {
                while let Some((n, meta)) = q.recv(&mut buf, T0).expect("recv") {
                    if answer_echo(q, &buf[..n], meta, stack) {
                        per_queue[i] += 1;
                    }
                }
            }
        };
        let out = ping.wait_with_output().expect("ping output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(status.success(), "ping -s {size}: {stdout}");
        assert!(stdout.contains("3 received"), "ping -s {size}: {stdout}");
        assert_eq!(
            per_queue.iter().sum::<u32>(),
            3,
            "echo requests per queue {per_queue:?}"
        );
        println!("ping -s {size}: requests per queue {per_queue:?}");
    }
    for q in &qs {
        assert_eq!(q.stats(), Default::default());
    }

    // A 1400-byte packet read into a 100-byte buffer is cut to the buffer, never reported
    // longer than it (the IP layer then drops it: its total length does not fit).
    let mut ping = Command::new("ping")
        .args(["-n", "-c1", "-W1", "-s", "1372"])
        .arg(stack.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ping");
    let mut small = [0u8; 100];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cut = false;
    while !cut {
        assert!(Instant::now() < deadline, "the big ping never arrived");
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
        for q in &mut qs {
            while let Some((n, _)) = q.recv(&mut small, T0).expect("recv") {
                assert!(n <= small.len());
                cut |= n == small.len() && small[0] == 0x45;
            }
        }
    }
    let _ = ping.wait();

    // Deleting the interface detaches every queue: later reads and writes fail.
    tunstack::link::delete_link(dev).expect("delete link");
    for q in &mut qs {
        let err = q.recv(&mut buf, T0).expect_err("recv after delete");
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected, "{err}");
        assert!(q.send(&[0x45; 20], TxMeta::default(), T0).is_err());
    }
}

/// A TAP takes the same header and offloads (its packets are Ethernet frames).
fn tap_offload() {
    let opts = TunOptions {
        tap: true,
        offload: true,
        queues: 2,
    };
    let qs = TunQueue::open_queues("tsqtap0", &opts).expect("open TAP");
    assert_eq!(qs.len(), 2);
    assert!(qs.iter().all(|q| q.offloads() == all_offloads()));
    let show = Command::new("ip")
        .args(["-d", "link", "show", "dev", "tsqtap0"])
        .output()
        .expect("ip -d link show");
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("tun type tap pi off vnet_hdr on multi_queue numqueues 2"),
        "{show}"
    );
}

/// Answers an ICMP echo request to `stack`; true if it was one.
fn answer_echo(q: &mut TunQueue, packet: &[u8], meta: RxMeta, stack: Ipv4Addr) -> bool {
    // Pings are never coalesced.
    assert_eq!(meta.gso_size, 0);
    // The kernel also sends IPv6 router solicitations etc.: parse errors are fine.
    let Ok(p) = Ipv4Packet::parse(packet) else {
        return false;
    };
    if p.dst != stack || p.protocol != ipv4::PROTO_ICMP {
        return false;
    }
    let Ok(Some(reply)) = icmp::handle(p.payload) else {
        return false;
    };
    let pkt = ipv4::emit(p.dst, p.src, ipv4::PROTO_ICMP, 64, p.id, &reply);
    q.send(&pkt, TxMeta::default(), T0).expect("send reply");
    true
}

/// Port the kernel client connects to.
const TCP_PORT: u16 = 5000;
/// Bytes the kernel client sends us.
const UPLOAD: usize = 300_000;
/// Bytes we send the client in one write (a super-segment with offloads).
const DOWNLOAD: usize = 20_000;
/// Our initial sequence number.
const OUR_ISN: u32 = 1_000_000;
/// MSS we advertise and use (1500-byte MTU, no timestamps).
const MSS: u16 = 1460;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// A kernel TCP client (a thread of this process, inside the namespace) connects to the
/// TUN peer; we answer by hand. With offloads the kernel hands us its data as TCP/IPv4
/// super-segments (TSO on the TUN's transmit side), which [`gso::rx_view`] cuts into valid
/// MSS-sized segments; and we send a packet with a partial checksum and a 19,000-byte
/// super-segment that the kernel takes whole. Without offloads, every packet fits the MTU
/// and ours are checksummed and cut in software.
fn tcp_scenario(dev: &str, net: u8, offload: bool) {
    let opts = TunOptions {
        tap: false,
        offload,
        queues: 1,
    };
    let mut q = TunQueue::open_queues(dev, &opts)
        .expect("open queue")
        .pop()
        .expect("one queue");
    if offload {
        assert_eq!(q.offloads(), all_offloads());
    } else {
        assert_eq!(q.offloads(), Offloads::default());
    }
    let host = Ipv4Addr::new(10, net, 0, 1);
    let stack = Ipv4Addr::new(10, net, 0, 2);
    q.configure(&format!("{host}/24"), 1500).expect("configure");

    let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let addr = SocketAddr::from((stack, TCP_PORT));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(30))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        s.write_all(&pattern(UPLOAD, 0))?;
        let mut got = vec![0u8; DOWNLOAD];
        s.read_exact(&mut got)?;
        Ok(got)
    });

    let mut poll = poll_queues(std::slice::from_ref(&q));
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; q.recv_buf_len()];
    let mut peer: Option<(u16, u32)> = None; // client port, its ISN
    let mut rcv_nxt = 0u32;
    let mut received = Vec::new();
    let mut largest = 0usize;
    let mut super_segments = 0u32;
    let mut pieces = 0u32;
    let mut sent_download = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !client.is_finished() {
        assert!(Instant::now() < deadline, "TCP exchange did not finish");
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
        while let Some((n, meta)) = q.recv(&mut buf, T0).expect("recv") {
            let packet = &buf[..n];
            let Ok(ip) = Ipv4Packet::parse(packet) else {
                continue;
            };
            if ip.dst != stack || ip.protocol != ipv4::PROTO_TCP {
                continue;
            }
            largest = largest.max(n);
            if meta.gso_size > 0 {
                assert!(offload, "super-segment without offloads");
                assert_eq!(meta.gso_size, MSS);
                super_segments += 1;
            }
            // Each piece must be a valid segment, checksum included, even where the kernel
            // left the checksum partial: the view a capture shows.
            let mut segs = Vec::new();
            gso::rx_view(packet, meta, &mut |piece| {
                let p = Ipv4Packet::parse(piece).expect("piece is valid IPv4");
                let seg = Segment::parse(p.src, p.dst, p.payload).expect("piece is valid TCP");
                assert!(seg.payload.len() <= usize::from(MSS));
                segs.push(seg);
            });
            assert!(!segs.is_empty());
            for seg in segs {
                pieces += 1;
                if seg.flags.syn {
                    peer = Some((seg.src_port, seg.seq.0));
                    rcv_nxt = seg.seq.0.wrapping_add(1);
                    let syn_ack = Segment {
                        src_port: TCP_PORT,
                        dst_port: seg.src_port,
                        seq: SeqNum(OUR_ISN),
                        ack: SeqNum(rcv_nxt),
                        flags: Flags::SYN_ACK,
                        window: 65535,
                        urgent: 0,
                        options: TcpOptions {
                            mss: Some(MSS),
                            window_scale: Some(7),
                            ..TcpOptions::default()
                        },
                        payload: Vec::new(),
                    };
                    send_segment(&mut q, &syn_ack, stack, host, TxMeta::default());
                    continue;
                }
                let Some((port, _)) = peer else { continue };
                if seg.seq.0 == rcv_nxt && !seg.payload.is_empty() {
                    rcv_nxt = rcv_nxt.wrapping_add(seg.payload.len() as u32);
                    received.extend_from_slice(&seg.payload);
                }
                let ack = Segment {
                    src_port: TCP_PORT,
                    dst_port: port,
                    seq: SeqNum(OUR_ISN + 1),
                    ack: SeqNum(rcv_nxt),
                    flags: Flags::ACK,
                    window: 65535,
                    ..Segment::default()
                };
                if received.len() < UPLOAD || sent_download {
                    send_segment(&mut q, &ack, stack, host, TxMeta::default());
                }
            }
            if received.len() == UPLOAD && !sent_download {
                let (port, _) = peer.expect("handshake first");
                // The first 1000 bytes with checksum offload alone, the rest as one
                // super-segment: the kernel completes the first checksum and takes the
                // second packet whole.
                let payload = pattern(DOWNLOAD, 0x5a);
                let (head, rest) = payload.split_at(1000);
                let mut data = Segment {
                    src_port: TCP_PORT,
                    dst_port: port,
                    seq: SeqNum(OUR_ISN + 1),
                    ack: SeqNum(rcv_nxt),
                    flags: Flags::ACK,
                    window: 65535,
                    payload: head.to_vec(),
                    ..Segment::default()
                };
                let csum_only = TxMeta {
                    gso_size: 0,
                    csum_partial: true,
                };
                send_segment(&mut q, &data, stack, host, csum_only);
                data.seq = SeqNum(OUR_ISN + 1 + 1000);
                data.flags = Flags::PSH_ACK;
                data.payload = rest.to_vec();
                let tso = TxMeta {
                    gso_size: MSS,
                    csum_partial: true,
                };
                send_segment(&mut q, &data, stack, host, tso);
                sent_download = true;
            }
        }
    }
    let got = client.join().expect("client thread").expect("client I/O");
    assert_eq!(received, pattern(UPLOAD, 0), "upload arrived intact");
    assert_eq!(got, pattern(DOWNLOAD, 0x5a), "download arrived intact");
    println!(
        "offload {offload}: {UPLOAD} bytes in {pieces} segments, {super_segments} super-segments, \
         largest packet {largest} bytes; stats {:?}",
        q.stats()
    );
    if offload {
        assert!(super_segments > 0, "no super-segment seen");
        assert!(largest > 1500, "largest packet {largest}");
        assert_eq!(
            q.stats().soft_segmented,
            0,
            "the kernel took the super-segment"
        );
    } else {
        assert_eq!(super_segments, 0);
        assert!(largest <= 1500, "largest packet {largest}");
        assert_eq!(
            q.stats().soft_segmented,
            2,
            "checksummed and cut in software"
        );
    }
}

/// Sends `seg` from `src` to `dst`; with `meta.csum_partial` the TCP checksum field holds
/// the folded pseudo-header sum only, as a TSO sender writes it.
fn send_segment(q: &mut TunQueue, seg: &Segment, src: Ipv4Addr, dst: Ipv4Addr, meta: TxMeta) {
    let mut tcp = seg.emit(src, dst);
    if meta.csum_partial {
        let len = u16::try_from(tcp.len()).expect("fits IPv4");
        let partial =
            !ipv4::checksum_with(ipv4::pseudo_header_sum(src, dst, ipv4::PROTO_TCP, len), &[]);
        tcp[16..18].copy_from_slice(&partial.to_be_bytes());
    }
    let packet = ipv4::emit(src, dst, ipv4::PROTO_TCP, 64, 0, &tcp);
    q.send(&packet, meta, T0).expect("send segment");
}
