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

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tunstack::ip::{icmp, ipv4, Ipv4Packet};
use tunstack::link::offload::{Offloads, PollDevice, RxMeta, TxMeta};
use tunstack::link::{TunOptions, TunQueue};

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
        "offload" => ping_scenario(&dev, 62, true, 1),
        "mq" => ping_scenario(&dev, 63, true, 2),
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

    let host = Ipv4Addr::new(10, net, 0, 1);
    let stack = Ipv4Addr::new(10, net, 0, 2);
    qs[0]
        .configure(&format!("{host}/24"), 1400)
        .expect("configure");
    assert!(qs.iter().all(|q| q.mtu() == 1400));
    // Nothing waiting yet is Ok(None), not an error.
    let mut buf = vec![0u8; qs[0].recv_buf_len()];
    for q in &mut qs {
        while q.recv(&mut buf).expect("recv").is_some() {}
    }

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
        let mut poll = poll_queues(&qs);
        let mut events = Events::with_capacity(8);
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
                while let Some((n, meta)) = q.recv(&mut buf).expect("recv") {
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
        assert_eq!(q.stats().unknown_gso, 0);
    }
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
    q.send(&pkt, TxMeta::default()).expect("send reply");
    true
}
