//! IPv6 end to end: the real `tunstack` binary, dual stack by default (fd00::2 for
//! tunstack, fd00::1/64 on the kernel side), driven by `curl -6`, `ping -6`, `nc -6`,
//! Python and nftables in a namespace of its own (see `tests/common`).
//!
//! - GET and POST /echo of a few MiB over TUN and over TAP (neighbour discovery),
//!   byte-exact, on the event loop and the threaded runtime; `tunstack get` of an IPv6
//!   URL from a kernel-side server;
//! - `ping -6`; UDP echo from `nc -6 -u` and from Python; ICMPv6 port unreachable for a
//!   closed UDP port (Python's connected socket gets ECONNREFUSED); RST for a closed TCP
//!   port (curl: "Connection refused", at once);
//! - a transfer under ~5 % loss injected by `ip6` nftables rules (IPv4 untouched), and
//!   under our own `--loss 5`;
//! - Packet Too Big from a router whose route to the client has a smaller MTU: our
//!   segments shrink (seen in our `--pcap`), the transfer completes (RFC 8201);
//! - tshark dissects our `--pcap` of an IPv6 curl with good checksums.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const PORT: u16 = 80;
const STACK_IP6: &str = "fd00::2";

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn url6(path: &str) -> String {
    format!("http://[{STACK_IP6}]:{PORT}{path}")
}

/// `curl -6` GET of `path` into `out`; 200 and a body equal to `expected`.
fn get6_and_compare(h: &Harness, path: &str, out: &Path, expected: &Path) {
    let url = url6(path);
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "-6",
            "-o",
            path_str(out),
            "-w",
            "%{http_code} %{size_download}",
            &url,
        ],
    );
    run.expect_success(&format!("curl -6 GET {url}"));
    assert!(run.stdout.starts_with("200 "), "GET {url}: {run}");
    if let Err(e) = compare_files(expected, out) {
        panic!("GET {url} body differs from the file: {e}");
    }
}

/// `curl -6` POST of `input` to /echo; the echoed body equals the input.
fn post6_echo_and_compare(h: &Harness, input: &Path, out: &Path) {
    let url = url6("/echo");
    let data = format!("@{}", path_str(input));
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "-6",
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-o",
            path_str(out),
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    run.expect_success("curl -6 POST /echo");
    assert!(run.stdout.starts_with("200"), "POST /echo: {run}");
    if let Err(e) = compare_files(input, out) {
        panic!("POST /echo over IPv6: echoed body differs: {e}");
    }
}

/// The sha256 of a file, by `sha256sum`.
fn sha256(h: &Harness, file: &Path) -> String {
    let run = h.run_in_ns(SHORT_TIMEOUT, "sha256sum", &[path_str(file)]);
    run.expect_success("sha256sum");
    run.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A 3 MiB file to serve, a server on it (`extra` flags), then GET and POST over IPv6.
/// Returns the harness, the server still running.
fn get_and_post(mut h: Harness, extra: &[&str]) -> Harness {
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("six.bin");
    write_pattern_file(&file, 3 * MIB, 0x7636);
    let mut args = vec!["--root", path_str(&root)];
    args.extend_from_slice(extra);
    h.serve(PORT, &args);
    let out = h.dir().join("six.out");
    get6_and_compare(&h, "/six.bin", &out, &file);
    assert_eq!(sha256(&h, &file), sha256(&h, &out));
    let echoed = h.dir().join("six-echo.out");
    post6_echo_and_compare(&h, &file, &echoed);
    assert_eq!(sha256(&h, &file), sha256(&h, &echoed));
    // IPv4 still answers beside it.
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{STACK_IP}:{PORT}/six.bin"),
        ],
    );
    assert_eq!(run.stdout, "200", "IPv4 beside IPv6: {run}");
    h
}

#[test]
fn curl6_get_and_post_over_tun() {
    let Some(h) = Harness::new("ipv6_curl_tun", &["curl", "sha256sum"]) else {
        return;
    };
    let h = get_and_post(h, &[]);
    // The event loop's TUN took TSO6, so the GET and POST above ran with TCP/IPv6
    // super-segments in both directions.
    let log = h.server_log();
    assert!(
        log.contains("tx_tso6: true"),
        "TSO6 negotiated on the TUN: {log}"
    );
}

#[test]
fn curl6_get_and_post_over_tun_threaded() {
    let Some(h) = Harness::new("ipv6_curl_threaded", &["curl", "sha256sum"]) else {
        return;
    };
    get_and_post(h, &["--threaded"]);
}

#[test]
fn curl6_get_and_post_over_tap() {
    let Some(mut h) = Harness::new("ipv6_curl_tap", &["curl", "sha256sum"]) else {
        return;
    };
    h.use_tap();
    get_and_post(h, &[]);
}

#[test]
fn fault_injection_applies_to_ipv6() {
    // `--loss` sits below the host and drops IPv6 packets like any others: the GET and
    // POST over IPv6 must still be byte-exact, and the injector must have dropped some.
    let Some(mut h) = Harness::new("ipv6_faults", &["curl", "sha256sum"]) else {
        return;
    };
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("f6.bin");
    write_pattern_file(&file, 2 * MIB, 0x6636);
    h.serve(
        PORT,
        &[
            "--root",
            path_str(&root),
            "--loss",
            "5",
            "--fault-seed",
            "6",
        ],
    );
    let out = h.dir().join("f6.out");
    get6_and_compare(&h, "/f6.bin", &out, &file);
    let echoed = h.dir().join("f6-echo.out");
    post6_echo_and_compare(&h, &file, &echoed);
    h.stop_server(SHORT_TIMEOUT);
    let log = h.server_log();
    let dropped: u64 = log
        .lines()
        .find(|l| l.contains("faults injected"))
        .and_then(|l| l.split("dropped: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        dropped > 20,
        "the injector dropped {dropped} packets; log:\n{log}"
    );
}

#[test]
fn ping6_and_closed_ports() {
    let Some(mut h) = Harness::new("ipv6_ping_closed", &["ping", "curl", "python3"]) else {
        return;
    };
    h.serve(PORT, &[]);
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-6", "-c", "3", "-W", "5", STACK_IP6],
    );
    run.expect_success("ping -6");
    assert!(run.stdout.contains("3 received"), "ping -6: {run}");
    // A closed TCP port: our RST makes curl fail at once with "Connection refused".
    let start = Instant::now();
    let run = h.curl(SHORT_TIMEOUT, &["-6", &format!("http://[{STACK_IP6}]:81/")]);
    assert!(!run.success(), "curl to a closed port succeeded: {run}");
    assert!(
        run.stderr.contains("Connection refused") || run.stderr.contains("Couldn't connect"),
        "curl -6 to a closed port: {run}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "refused only after {:?}",
        start.elapsed()
    );
    // A closed UDP port: ICMPv6 port unreachable, which a connected socket reports as
    // ECONNREFUSED on its next receive.
    let script = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect(("{STACK_IP6}", 9))
for i in range(5):
    s.send(b"anyone?")
    try:
        s.recv(100)
    except ConnectionRefusedError:
        print("refused")
        sys.exit(0)
    except socket.timeout:
        pass
print("no error")
sys.exit(1)
"#
    );
    let run = h.run_in_ns(SHORT_TIMEOUT, "python3", &["-c", &script]);
    assert!(
        run.stdout.contains("refused"),
        "UDP to a closed port over IPv6: {run}"
    );
}

#[test]
fn udp_echo_over_ipv6_from_nc_and_python() {
    let Some(mut h) = Harness::new("ipv6_udp_echo", &["nc", "python3"]) else {
        return;
    };
    h.serve(PORT, &["--udp-echo", "7"]);
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(5)
for i in range(10):
    msg = b"six %d " % i + bytes(range(256)) * 4
    s.sendto(msg, ("{STACK_IP6}", 7))
    try:
        data, peer = s.recvfrom(4096)
    except socket.timeout:
        continue
    assert data == msg, (data, msg)
    assert peer[0] == "{STACK_IP6}", peer
    print("echoed", peer[0])
    break
"#
    );
    let run = h.run_in_ns(SHORT_TIMEOUT, "python3", &["-c", &script]);
    assert!(
        run.stdout.contains("echoed fd00::2"),
        "python UDP echo over IPv6: {run}"
    );
    // nc -6 -u: send a line, read the echo (the wait bounded by -w).
    let mut c = h.ns().command("bash");
    c.args([
        "-c",
        &format!("for i in 1 2 3 4 5; do out=$(echo hello-six | nc -6 -u -w 2 {STACK_IP6} 7); if [ -n \"$out\" ]; then echo \"$out\"; exit 0; fi; done; exit 1"),
    ]);
    let run = run_bounded(c, SHORT_TIMEOUT);
    assert!(run.stdout.contains("hello-six"), "nc -6 -u echo: {run}");
}

#[test]
fn get_of_an_ipv6_url_from_a_kernel_side_server() {
    let Some(h) = Harness::new("ipv6_get", &["python3"]) else {
        return;
    };
    let mut h = h;
    let root = h.dir().join("www");
    std::fs::create_dir_all(&root).expect("mkdir www");
    let file = root.join("k.bin");
    write_pattern_file(&file, MIB, 0x6b36);
    let dir = path_str(&root).to_string();
    h.spawn_in_ns(
        "http6",
        "python3",
        &[
            "-m",
            "http.server",
            "--bind",
            "::",
            "8006",
            "--directory",
            &dir,
        ],
    );
    // The server answers on the namespace's loopback once it is up.
    let start = Instant::now();
    while !h
        .curl(
            Duration::from_secs(2),
            &["-6", "-o", "/dev/null", "http://[::1]:8006/"],
        )
        .success()
    {
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "python http.server on :: did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = h.dir().join("k.out");
    let run = h.tunstack_get("http://[fd00::1]:8006/k.bin", &out, BIG_TIMEOUT);
    run.expect_success("tunstack get http://[fd00::1]:8006/k.bin");
    if let Err(e) = compare_files(&file, &out) {
        panic!("tunstack get over IPv6: {e}");
    }
}

/// The counters of the `ip6` loss rules (nft list ruleset).
fn dropped_by_rules(h: &Harness) -> Vec<u64> {
    let run = h.run_in_ns(SHORT_TIMEOUT, "nft", &["list", "ruleset"]);
    run.expect_success("nft list ruleset");
    run.stdout
        .lines()
        .filter(|l| l.contains("numgen"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "packets")?;
            words.next()?.parse().ok()
        })
        .collect()
}

#[test]
fn transfer_under_5_percent_ipv6_loss() {
    let Some(mut h) = Harness::new("ipv6_loss", &["nft", "curl"]) else {
        return;
    };
    let _heavy = heavy_lock();
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("lossy6.bin");
    write_pattern_file(&file, 4 * MIB, 0x6c36);
    h.serve(PORT, &["--root", path_str(&root)]);
    // ~5 % of IPv6 packets dropped each way on the TUN; IPv4 is not touched.
    let tun = h.tun().to_string();
    let rules = format!(
        "table ip6 tunstack_loss6 {{
    chain from_stack {{
        type filter hook prerouting priority -300; policy accept;
        iifname \"{tun}\" numgen random mod 100 < 5 counter drop
    }}
    chain to_stack {{
        type filter hook postrouting priority 300; policy accept;
        oifname \"{tun}\" numgen random mod 100 < 5 counter drop
    }}
}}
"
    );
    let mut c = h.ns().command("nft");
    c.args(["-f", "-"]);
    let run = run_with_stdin(c, &rules);
    assert!(run, "nft -f (ip6 loss rules) failed");
    let out = h.dir().join("lossy6.out");
    get6_and_compare(&h, "/lossy6.bin", &out, &file);
    let echoed = h.dir().join("lossy6-echo.out");
    post6_echo_and_compare(&h, &file, &echoed);
    let dropped = dropped_by_rules(&h);
    assert_eq!(dropped.len(), 2, "two ip6 loss rules expected");
    assert!(
        dropped.iter().all(|&n| n > 0),
        "both directions lost packets: {dropped:?}"
    );
}

/// Runs `c` with `input` on its standard input, bounded; true on success.
fn run_with_stdin(mut c: std::process::Command, input: &str) -> bool {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    wait_bounded(&mut child, SHORT_TIMEOUT).is_some_and(|s| s.success())
}

/// The IPv6 packets of a LINKTYPE_RAW pcap (our `--pcap` in TUN mode), in order.
fn pcap_packets(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(rec) = bytes.get(at..at + 16) {
        let caplen = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
        let Some(p) = bytes.get(at + 16..at + 16 + caplen) else {
            break;
        };
        out.push(p);
        at += 16 + caplen;
    }
    out
}

#[test]
fn packet_too_big_from_a_router_lowers_our_segments() {
    let Some(mut h) = Harness::new("ipv6_ptb", &["curl"]) else {
        return;
    };
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("ptb.bin");
    write_pattern_file(&file, MIB, 0x7074);
    let pcap = h.dir().join("ptb.pcap");
    h.serve(
        PORT,
        &["--root", path_str(&root), "--pcap", path_str(&pcap)],
    );
    // The client sits in a second namespace behind the first, which routes: its link
    // has MTU 1500 (the client offers MSS 1440), but the router's route to it says
    // 1300, so our full-sized segments get a Packet Too Big from the router.
    let ns = h.ns().name().to_string();
    let client = format!("{ns}-c");
    let (va, vb) = (
        format!("va{}", std::process::id() % 100_000),
        format!("vb{}", std::process::id() % 100_000),
    );
    let setup = format!(
        "set -e
ip netns add {client}
ip link add {va} netns {ns} type veth peer name {vb} netns {client}
ip -n {client} link set lo up
ip -n {ns} addr add fd01::1/64 dev {va} nodad noprefixroute
ip -n {client} addr add fd01::2/64 dev {vb} nodad
ip -n {ns} link set {va} up
ip -n {client} link set {vb} up
ip -n {client} -6 route add fd00::/64 via fd01::1
ip -n {ns} -6 route add fd01::/64 dev {va} mtu 1300
ip netns exec {ns} sysctl -qw net.ipv6.conf.all.forwarding=1"
    );
    let run = run_bounded(cmd("bash", ["-c", &setup]), SHORT_TIMEOUT);
    // The client namespace goes whatever happens below.
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let _gone = Gone(client.clone());
    run.expect_success("client namespace behind a 1300-byte route");
    let out = h.dir().join("ptb.out");
    let url = url6("/ptb.bin");
    let mut c = cmd(
        "ip",
        [
            "netns",
            "exec",
            &client,
            "curl",
            "-sS",
            "-6",
            "--max-time",
            "120",
        ],
    );
    c.args(["-o", path_str(&out), "-w", "%{http_code}", &url]);
    let run = run_bounded(c, BIG_TIMEOUT);
    run.expect_success("curl -6 through the router");
    assert_eq!(run.stdout, "200", "{run}");
    if let Err(e) = compare_files(&file, &out) {
        panic!("GET through a smaller path MTU: {e}");
    }
    h.stop_server(SHORT_TIMEOUT);
    let bytes = std::fs::read(&pcap).expect("read pcap");
    let packets = pcap_packets(&bytes);
    // Ours: IPv6 from fd00::2; theirs: the router's ICMPv6 Packet Too Big (type 2).
    let ours = |p: &&&[u8]| {
        p.first().map(|b| b >> 4) == Some(6) && p.get(8..24) == Some(&STACK6_OCTETS[..])
    };
    let ptb_at = packets
        .iter()
        .position(|p| {
            p.first().map(|b| b >> 4) == Some(6) && p.get(6) == Some(&58) && p.get(40) == Some(&2)
        })
        .expect("a Packet Too Big reached us");
    let before = packets[..ptb_at]
        .iter()
        .filter(ours)
        .map(|p| p.len())
        .max()
        .unwrap_or(0);
    let after: Vec<usize> = packets[ptb_at + 1..]
        .iter()
        .filter(ours)
        .map(|p| p.len())
        .collect();
    assert!(
        before > 1300,
        "full-sized segments before the message: {before}"
    );
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|&n| n <= 1300),
        "segments after the Packet Too Big: {after:?}"
    );
}

const STACK6_OCTETS: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

#[test]
fn tshark_dissects_our_pcap_of_an_ipv6_curl() {
    let Some(mut h) = Harness::new("ipv6_tshark", &["curl", "tshark"]) else {
        return;
    };
    let pcap = h.dir().join("six.pcap");
    h.serve(PORT, &["--pcap", path_str(&pcap)]);
    let run = h.curl(
        SHORT_TIMEOUT,
        &["-6", "-o", "/dev/null", "-w", "%{http_code}", &url6("/")],
    );
    assert_eq!(run.stdout, "200", "{run}");
    h.stop_server(SHORT_TIMEOUT);
    let run = run_bounded(
        cmd(
            "tshark",
            [
                "-n",
                "-r",
                path_str(&pcap),
                "-o",
                "tcp.check_checksum:TRUE",
                "-Y",
                "ipv6 && tcp",
                "-T",
                "fields",
                "-e",
                "ipv6.src",
                "-e",
                "ipv6.hlim",
                "-e",
                "tcp.checksum.status",
                "-e",
                "http.response.code",
            ],
        ),
        SHORT_TIMEOUT,
    );
    run.expect_success("tshark");
    let ours: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("fd00::2\t"))
        .collect();
    assert!(
        !ours.is_empty(),
        "no IPv6 TCP of ours in the capture: {run}"
    );
    for line in &ours {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.get(1), Some(&"64"), "our hop limit: {line}");
        // tshark's checksum status: 0 bad, 1 good, 2 not verified.
        assert_eq!(f.get(2), Some(&"1"), "checksum: {line}");
    }
    assert!(
        ours.iter().any(|l| l.ends_with("\t200")),
        "an HTTP 200 dissected: {run}"
    );
}
