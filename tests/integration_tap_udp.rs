//! Integration tests of the lower layers of the diagram: TAP mode (Ethernet II + ARP done by
//! tunstack) and UDP, with the real binary in its own network namespace.
//!
//! Each test creates namespace `ts-<pid>-<n>` and a TAP or TUN `tst<pid>x<n>`; see
//! tests/common. Run as root: `cargo test --release --test integration_tap_udp`.

mod common;

use common::*;
use std::time::Duration;

const PORT: u16 = 80;
const ECHO_PORT: &str = "7";

fn has_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Stop the server (so a capture is complete) and insist on a clean exit.
fn stop(h: &mut Harness) {
    let status = h.stop_server(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}; log:\n{}",
        h.server_log()
    );
}

/// `tshark -n -r FILE -Y FILTER -T fields -e ...`: one line per matching packet.
fn tshark_fields(pcap: &str, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-n", "-r", pcap, "-Y", filter, "-T", "fields"];
    for f in fields {
        args.push("-e");
        args.push(f);
    }
    let run = run_bounded(cmd("tshark", args), SHORT_TIMEOUT);
    run.expect_success("tshark -r");
    run.stdout.lines().map(|l| l.trim().to_string()).collect()
}

/// TAP mode end to end: the kernel resolves our address with ARP, then ping and curl work;
/// the capture is Ethernet (LINKTYPE_ETHERNET) and shows the ARP exchange and our
/// gratuitous ARP.
#[test]
fn tap_ping_curl_and_arp_in_pcap() {
    let Some(mut h) = Harness::new("tap_ping_curl_and_arp_in_pcap", &["ping", "tshark"]) else {
        return;
    };
    h.use_tap();
    let pcap = h.dir().join("tap.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    h.serve(
        PORT,
        &["--pcap", &pcap_arg, "--mac", "02:00:00:00:00:02", "--trace"],
    );

    // The kernel may already know our MAC without asking: the readiness probe's first
    // packet can race our gratuitous ARP, which updates an entry the kernel was resolving.
    // Forget it, so that the ping below must ask "who has" and the trace must show it.
    let tap = h.tun().to_string();
    h.run_in_ns(SHORT_TIMEOUT, "ip", &["neigh", "flush", "dev", &tap])
        .expect_success("ip neigh flush");
    let run = h.run_in_ns(SHORT_TIMEOUT, "ping", &["-c", "3", "-W", "5", STACK_IP]);
    run.expect_success("ping over TAP");
    assert!(run.stdout.contains("3 received"), "ping: {run}");
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-c", "2", "-W", "5", "-s", "1400", STACK_IP],
    );
    run.expect_success("ping -s 1400 over TAP (a full-size frame)");

    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("http://{STACK_IP}:{PORT}/"),
        ],
    );
    run.expect_success("curl over TAP");
    let mut fields = run.stdout.split_whitespace();
    assert_eq!(fields.next(), Some("200"), "curl: {run}");
    let size: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(size > 1000, "the built-in page is a few KiB: {run}");

    // The kernel's neighbour table holds our MAC: ARP worked from its side.
    let run = h.run_in_ns(SHORT_TIMEOUT, "ip", &["neigh", "show", STACK_IP]);
    assert!(
        run.stdout.contains("02:00:00:00:00:02"),
        "kernel neighbour entry for {STACK_IP}: {run}"
    );

    stop(&mut h);
    // --trace describes the link layer too.
    let log = h.server_log();
    for line in [
        "ARP announce  10.0.0.2 is at 02:00:00:00:00:02",
        "ARP who has 10.0.0.2?  tell 10.0.0.1",
        "ARP reply  10.0.0.2 is at 02:00:00:00:00:02",
        "→ 02:00:00:00:00:02  IPv4",
        "10.0.0.1 → 10.0.0.2",
    ] {
        assert!(log.contains(line), "--trace shows {line:?}:\n{log}");
    }
    // Link type: every packet has an Ethernet header.
    let linktypes = tshark_fields(&pcap_arg, "frame", &["frame.protocols"]);
    assert!(
        !linktypes.is_empty() && linktypes.iter().all(|p| p.starts_with("eth:")),
        "every record decodes as Ethernet: {linktypes:?}"
    );
    // opcode, sender IP, target IP, sender MAC
    let arp = tshark_fields(
        &pcap_arg,
        "arp",
        &[
            "arp.opcode",
            "arp.src.proto_ipv4",
            "arp.dst.proto_ipv4",
            "arp.src.hw_mac",
        ],
    );
    let has = |op: &str, src: &str, dst: &str| {
        arp.iter().any(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            f.first() == Some(&op) && f.get(1) == Some(&src) && f.get(2) == Some(&dst)
        })
    };
    assert!(has("1", STACK_IP, STACK_IP), "our gratuitous ARP: {arp:?}");
    assert!(
        has("1", HOST_IP, STACK_IP),
        "the kernel's request for us: {arp:?}"
    );
    assert!(has("2", STACK_IP, HOST_IP), "our reply: {arp:?}");
    assert!(
        arp.iter().any(|l| l.ends_with("02:00:00:00:00:02")),
        "--mac is the sender MAC: {arp:?}"
    );
    let http = tshark_fields(&pcap_arg, "http", &["http.response.code"]);
    assert!(
        http.iter().any(|c| c == "200"),
        "HTTP 200 in the capture: {http:?}"
    );
}

/// Bulk data in full-size frames: a 32 MiB download over TAP, byte for byte, then a
/// second one after the kernel flushed its neighbour entry (so ARP runs again mid-life).
#[test]
fn tap_bulk_download_is_byte_exact() {
    let Some(mut h) = Harness::new("tap_bulk_download_is_byte_exact", &[]) else {
        return;
    };
    let _heavy = heavy_lock();
    h.use_tap();
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("big.bin");
    write_pattern_file(&file, 32 * MIB, 0x0074_6170);
    let root_arg = root.to_str().unwrap().to_string();
    h.serve(PORT, &["--root", &root_arg]);
    let out = h.dir().join("big.out");
    let url = format!("http://{STACK_IP}:{PORT}/big.bin");
    for round in 0..2 {
        if round == 1 {
            let tap = h.tun().to_string();
            h.run_in_ns(SHORT_TIMEOUT, "ip", &["neigh", "flush", "dev", &tap])
                .expect_success("ip neigh flush");
        }
        let run = h.curl(
            BIG_TIMEOUT,
            &[
                "-o",
                out.to_str().unwrap(),
                "-w",
                "%{http_code} %{speed_download}",
                &url,
            ],
        );
        run.expect_success("curl big.bin over TAP");
        eprintln!("TAP GET 32 MiB: {} B/s in {:?}", run.stdout, run.elapsed);
        assert!(run.stdout.starts_with("200 "), "{run}");
        compare_files(&file, &out).unwrap();
    }
}

/// `arping` (a raw ARP client) gets replies from tunstack.
#[test]
fn tap_arping_gets_answers() {
    let Some(mut h) = Harness::new("tap_arping_gets_answers", &["arping"]) else {
        return;
    };
    h.use_tap();
    h.serve(PORT, &[]);
    let tap = h.tun().to_string();
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "arping",
        &["-c", "3", "-w", "20", "-I", &tap, STACK_IP],
    );
    run.expect_success("arping");
    let text = run.stdout.to_lowercase();
    assert!(
        text.contains("reply from 10.0.0.2") || text.contains("from 10.0.0.2"),
        "arping saw replies from {STACK_IP}: {run}"
    );
    stop(&mut h);
    assert!(
        h.server_log().contains("arp requests sent"),
        "ARP counters in the exit stats: {}",
        h.server_log()
    );
}

/// `tunstack get` in TAP mode: an active open to the kernel's HTTP server, which needs
/// *our* ARP request for the kernel's address first.
#[test]
fn tap_get_resolves_the_server() {
    let Some(mut h) = Harness::new("tap_get_resolves_the_server", &["python3"]) else {
        return;
    };
    h.use_tap();
    let www = h.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    write_pattern_file(&www.join("blob.bin"), 2 * MIB, 6);
    h.start_kernel_http_server(8080, &www);
    let out = h.dir().join("blob.out");
    let run = h.tunstack_get(
        &format!("http://{HOST_IP}:8080/blob.bin"),
        &out,
        SHORT_TIMEOUT,
    );
    run.expect_success("tunstack get over TAP");
    compare_files(&www.join("blob.bin"), &out).unwrap();
    assert!(
        run.stderr.contains("TAP"),
        "the log says TAP mode: {}",
        run.stderr
    );
}

/// `--gateway`: a client outside our subnet (10.1.0.1, on the namespace's loopback) is
/// answered through the router's MAC — the kernel side of the TAP, 10.0.0.1 — instead of
/// an ARP request for 10.1.0.1 that nobody would answer.
#[test]
fn tap_gateway_for_off_link_clients() {
    let Some(mut h) = Harness::new("tap_gateway_for_off_link_clients", &["ping"]) else {
        return;
    };
    h.use_tap();
    h.run_in_ns(
        SHORT_TIMEOUT,
        "ip",
        &["addr", "add", "10.1.0.1/32", "dev", "lo"],
    )
    .expect_success("ip addr add 10.1.0.1/32 dev lo");
    h.serve(PORT, &["--gateway", HOST_IP]);
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "--interface",
            "10.1.0.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{STACK_IP}:{PORT}/"),
        ],
    );
    run.expect_success("curl from an off-link address");
    assert_eq!(run.stdout.trim(), "200", "{run}");
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-c", "2", "-W", "5", "-I", "10.1.0.1", STACK_IP],
    );
    run.expect_success("ping from an off-link address");
}

/// A Python script (in the namespace) that sends datagrams of several sizes to the echo
/// port and checks each comes back unchanged from the right address.
const PY_ECHO: &str = r#"
import socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for size in (0, 1, 100, 1400, 1472):
    data = bytes((i * 7 + size) % 256 for i in range(size))
    for attempt in range(5):
        s.sendto(data, (ip, port))
        try:
            back, addr = s.recvfrom(65535)
            break
        except socket.timeout:
            continue
    else:
        sys.exit("no echo for %d bytes" % size)
    assert back == data, "echo of %d bytes differs" % size
    assert addr == (ip, port), addr
print("echo ok")
"#;

/// UDP echo (RFC 862) round-trips from a Python socket (and `nc -u` when installed), over
/// TAP and over TUN.
#[test]
fn udp_echo_round_trips() {
    for tap in [true, false] {
        let name = if tap { "udp_echo_tap" } else { "udp_echo_tun" };
        let Some(mut h) = Harness::new(name, &["python3"]) else {
            return;
        };
        if tap {
            h.use_tap();
        }
        h.serve(PORT, &["--udp-echo", ECHO_PORT]);
        let run = h.run_in_ns(
            SHORT_TIMEOUT,
            "python3",
            &["-c", PY_ECHO, STACK_IP, ECHO_PORT],
        );
        run.expect_success("python UDP echo");
        assert!(run.stdout.contains("echo ok"), "{run}");

        if has_tool("nc") {
            // nc reads "hello" from the shell pipe, sends one datagram, prints the echo and
            // quits after 3 s without traffic (-w 3).
            let run = h.run_in_ns(
                SHORT_TIMEOUT,
                "sh",
                &[
                    "-c",
                    &format!("echo hello-nc | nc -u -w 3 {STACK_IP} {ECHO_PORT}"),
                ],
            );
            assert!(run.stdout.contains("hello-nc"), "nc -u echo: {run}");
        }
        stop(&mut h);
        let log = h.server_log();
        assert!(
            log.contains("udp     datagrams in "),
            "UDP counters in the exit stats: {log}"
        );
    }
}

/// A Python script: a connect()ed UDP socket sends to a closed port; Linux turns the ICMP
/// port unreachable that comes back into ECONNREFUSED on the next recv.
const PY_REFUSED: &str = r#"
import socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((ip, port))
for attempt in range(5):
    s.send(b"anyone there?")
    try:
        s.recv(100)
        sys.exit("got an answer from a closed port")
    except ConnectionRefusedError:
        print("refused")
        sys.exit(0)
    except socket.timeout:
        continue
sys.exit("no ICMP port unreachable")
"#;

/// RFC 1122 §4.1.3.1: a datagram to a closed port gets ICMP port unreachable (code 3),
/// seen in the capture and by the client's socket.
#[test]
fn udp_closed_port_gets_port_unreachable() {
    let Some(mut h) = Harness::new(
        "udp_closed_port_gets_port_unreachable",
        &["python3", "tshark"],
    ) else {
        return;
    };
    let pcap = h.dir().join("udp.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    h.serve(
        PORT,
        &["--udp-echo", ECHO_PORT, "--pcap", &pcap_arg, "--trace"],
    );
    let run = h.run_in_ns(SHORT_TIMEOUT, "python3", &["-c", PY_REFUSED, STACK_IP, "9"]);
    run.expect_success("python UDP to a closed port");
    assert!(run.stdout.contains("refused"), "{run}");
    stop(&mut h);
    let icmp = tshark_fields(&pcap_arg, "icmp.type == 3", &["icmp.code", "udp.dstport"]);
    assert!(
        icmp.iter().any(|l| l.starts_with('3') && l.ends_with('9')),
        "ICMP port unreachable quoting the datagram to port 9: {icmp:?}"
    );
    let log = h.server_log();
    assert!(
        log.contains("udp    ") && log.contains("→ 9  len 13"),
        "--trace shows UDP: {log}"
    );
}

/// IPv6 (a first step): `ping -6` gets ICMPv6 echo replies from `--ip6`, also near the
/// MTU, while IPv4 keeps working beside it — on a TUN, and on a TAP where the kernel first
/// finds our MAC with Neighbor Discovery.
#[test]
fn ipv6_ping_tun_and_tap() {
    for tap in [false, true] {
        let name = if tap {
            "ipv6_ping_tap"
        } else {
            "ipv6_ping_tun"
        };
        let Some(h) = Harness::new(name, &["ping"]) else {
            return;
        };
        ipv6_ping(h, tap);
    }
}

fn ipv6_ping(mut h: Harness, tap: bool) {
    if tap {
        h.use_tap();
    }
    h.serve(PORT, &["--ip6", "fd00::2", "--host-ip6", "fd00::1/64"]);
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-6", "-c", "3", "-W", "5", "fd00::2"],
    );
    run.expect_success("ping -6");
    assert!(run.stdout.contains("3 received"), "ping -6: {run}");
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-6", "-c", "2", "-W", "5", "-s", "1400", "fd00::2"],
    );
    run.expect_success("ping -6 -s 1400");
    let run = h.run_in_ns(SHORT_TIMEOUT, "ping", &["-c", "1", "-W", "5", STACK_IP]);
    run.expect_success("IPv4 ping beside IPv6");
}
