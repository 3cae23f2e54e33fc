//! Integration tests, light ones: the real binary in its own network namespace, driven by
//! ping, curl and Python sockets from the kernel side of the TUN.
//!
//! Each test creates namespace `ts-<pid>-<n>` and TUN `tst<pid>x<n>`; see tests/common.
//! Run as root: `cargo test --release` (without root they print SKIPPED, unless `CI` is set).

mod common;

use common::*;
use std::time::{Duration, Instant};

const PORT: u16 = 80;

fn url(path: &str) -> String {
    format!("http://{STACK_IP}:{PORT}{path}")
}

/// ICMP echo: the default size and a 1400-byte payload (1428-byte IP packet, near the MTU).
#[test]
fn ping_answers() {
    let Some(mut h) = Harness::new("ping_answers", &["ping"]) else {
        return;
    };
    h.serve(PORT, &[]);
    let run = h.run_in_ns(SHORT_TIMEOUT, "ping", &["-c", "3", "-W", "5", STACK_IP]);
    run.expect_success("ping");
    assert!(run.stdout.contains("3 received"), "ping: {run}");

    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-c", "3", "-W", "5", "-s", "1400", STACK_IP],
    );
    run.expect_success("ping -s 1400");
    assert!(run.stdout.contains("3 received"), "ping -s 1400: {run}");
    assert!(
        run.stdout.contains("1408 bytes from"),
        "1400 bytes payload + 8 ICMP header expected: {run}"
    );
}

/// GET and HEAD of the built-in site: 200, Content-Length matching the body, Content-Type.
#[test]
fn get_and_head_builtin_site() {
    let Some(mut h) = Harness::new("get_and_head_builtin_site", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    let hdr = h.dir().join("get.headers");
    let body = h.dir().join("get.body");
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-D",
            hdr.to_str().unwrap(),
            "-o",
            body.to_str().unwrap(),
            &url("/"),
        ],
    );
    run.expect_success("curl GET /");
    let dump = std::fs::read_to_string(&hdr).expect("read headers");
    let (status, headers) = parse_header_dump(&dump);
    assert_eq!(status, 200, "GET / headers:\n{dump}");
    let body_len = std::fs::metadata(&body).expect("body file").len();
    assert!(body_len > 0, "GET / returned an empty body");
    let content_length: u64 = header(&headers, "content-length")
        .unwrap_or_else(|| panic!("no Content-Length in GET /:\n{dump}"))
        .parse()
        .expect("numeric Content-Length");
    assert_eq!(content_length, body_len, "Content-Length vs body size");
    let content_type = header(&headers, "content-type")
        .unwrap_or_else(|| panic!("no Content-Type in GET /:\n{dump}"));
    assert!(
        content_type.starts_with("text/html"),
        "GET / should be an HTML page, Content-Type: {content_type}"
    );

    // HEAD: same status and headers, no body (curl -I would complain about extra bytes).
    let run = h.curl(SHORT_TIMEOUT, &["-I", &url("/")]);
    run.expect_success("curl -I /");
    let (status, head_headers) = parse_header_dump(&run.stdout);
    assert_eq!(status, 200, "HEAD /: {run}");
    assert_eq!(
        header(&head_headers, "content-length"),
        Some(content_length.to_string().as_str()),
        "HEAD must announce the GET body length: {run}"
    );
    assert_eq!(
        header(&head_headers, "content-type"),
        Some(content_type),
        "HEAD Content-Type: {run}"
    );

    // A path that does not exist is a 404, and the server keeps serving.
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url("/no-such-page"),
        ],
    );
    run.expect_success("curl 404");
    assert_eq!(run.stdout.trim(), "404", "missing page: {run}");
}

/// Two URLs in one curl invocation travel over one TCP connection (HTTP/1.1 keep-alive).
#[test]
fn keep_alive_reuses_connection() {
    let Some(mut h) = Harness::new("keep_alive_reuses_connection", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-v",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &url("/"),
            &url("/"),
        ],
    );
    run.expect_success("curl -v URL URL");
    assert!(
        run.stderr.contains("Re-using existing connection"),
        "second request should reuse the connection: {run}"
    );
    assert!(
        run.stderr.contains("left intact"),
        "connection should stay open after the response: {run}"
    );
    assert!(
        run.stderr.matches("Connected to").count() <= 1,
        "curl connected more than once: {run}"
    );
}

/// Garbage instead of a request line gets 400, and the server goes on serving others.
#[test]
fn malformed_request_gets_400() {
    let Some(mut h) = Harness::new("malformed_request_gets_400", &["python3"]) else {
        return;
    };
    h.serve(PORT, &[]);
    // Raw bytes over a kernel socket; read until the response head is complete, EOF or
    // a 10 s time-out.
    let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"GARBAGE\r\n\r\n")
data = b""
try:
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
sys.stdout.write(data.decode("latin-1"))
"#;
    let port = PORT.to_string();
    let run = h.run_in_ns(SHORT_TIMEOUT, "python3", &["-c", script, STACK_IP, &port]);
    run.expect_success("python3 raw request");
    let status_line = run.stdout.lines().next().unwrap_or("");
    assert!(
        status_line.starts_with("HTTP/1.") && status_line.split_whitespace().nth(1) == Some("400"),
        "expected a 400 status line, got {status_line:?}: {run}"
    );

    let run = h.curl(
        SHORT_TIMEOUT,
        &["-o", "/dev/null", "-w", "%{http_code}", &url("/")],
    );
    run.expect_success("curl after the malformed request");
    assert_eq!(run.stdout.trim(), "200", "{run}");
}

/// A SYN to a port nobody listens on is answered with RST: curl fails fast with
/// "Connection refused" instead of timing out.
#[test]
fn syn_to_closed_port_gets_rst() {
    let Some(mut h) = Harness::new("syn_to_closed_port_gets_rst", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    let closed = format!("http://{STACK_IP}:81/");
    let start = Instant::now();
    let run = h.curl(Duration::from_secs(20), &["-v", "-o", "/dev/null", &closed]);
    let elapsed = start.elapsed();
    assert_eq!(
        run.code(),
        Some(7),
        "curl should fail to connect (exit 7): {run}"
    );
    assert!(
        run.stderr.contains("Connection refused"),
        "expected ECONNREFUSED, i.e. an RST: {run}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "refusal took {elapsed:?}: looks like a time-out, not an RST"
    );
}

/// 100 curl processes at once all get 200.
#[test]
fn hundred_concurrent_curls() {
    let Some(mut h) = Harness::new("hundred_concurrent_curls", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    // The heavy lock keeps this from overlapping another load on a 2-core machine.
    let _heavy = heavy_lock();
    let target = url("/");
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let mut c = h.ns().command("curl");
            c.args([
                "-sS",
                "--max-time",
                "60",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &target,
            ]);
            std::thread::spawn(move || (i, run_bounded(c, Duration::from_secs(90))))
        })
        .collect();
    let mut failures = Vec::new();
    for handle in handles {
        let (i, run) = handle.join().expect("curl thread");
        if !(run.success() && run.stdout.trim() == "200") {
            failures.push(format!("curl #{i}: {run}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 100 concurrent requests failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        h.server_log()
    );
}

/// SIGTERM: exit status 0 and the TUN device is gone.
#[test]
fn sigterm_exits_zero_and_removes_tun() {
    let Some(mut h) = Harness::new("sigterm_exits_zero_and_removes_tun", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    assert!(h.tun_exists(), "TUN {} should exist while serving", h.tun());
    let status = h
        .stop_server(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit within 30 s of SIGTERM; log:\n{}", h.server_log()));
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; log:\n{}",
        h.server_log()
    );
    assert!(
        h.wait_tun_gone(Duration::from_secs(5)),
        "TUN {} still exists 5 s after exit",
        h.tun()
    );
}

/// `--pcap FILE` records what crossed the device in a file tshark reads: the HTTP
/// request and response are in it.
#[test]
fn pcap_capture_is_readable_by_tshark() {
    let Some(mut h) = Harness::new("pcap_capture_is_readable_by_tshark", &["tshark"]) else {
        return;
    };
    let pcap = h.dir().join("capture.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    h.serve(PORT, &["--pcap", &pcap_arg]);
    h.curl(SHORT_TIMEOUT, &["-o", "/dev/null", &url("/")])
        .expect_success("curl /");
    // Stop the server so the capture is complete and flushed.
    let status = h.stop_server(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}; log:\n{}",
        h.server_log()
    );
    let run = run_bounded(
        cmd(
            "tshark",
            [
                "-n",
                "-r",
                pcap_arg.as_str(),
                "-Y",
                "http",
                "-T",
                "fields",
                "-e",
                "http.request.method",
                "-e",
                "http.response.code",
            ],
        ),
        SHORT_TIMEOUT,
    );
    run.expect_success("tshark -r");
    assert!(
        run.stdout.lines().any(|l| l.trim() == "GET"),
        "no GET request in the capture: {run}"
    );
    assert!(
        run.stdout.lines().any(|l| l.trim() == "200"),
        "no 200 response in the capture: {run}"
    );
}

/// With the TUN's offloads on (the default), the stack sends and receives 64 KiB
/// super-segments, yet `--pcap` shows what an ordinary wire would carry: segments no
/// larger than the MTU, every checksum complete, and every byte of the download and the
/// upload.
#[test]
fn pcap_shows_wire_segments_with_offloads() {
    let Some(mut h) = Harness::new("pcap_shows_wire_segments_with_offloads", &["tshark"]) else {
        return;
    };
    let root = h.dir().join("www");
    std::fs::create_dir_all(&root).unwrap();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &body).unwrap();
    let upload = h.dir().join("up.bin");
    std::fs::write(&upload, &body[..1_000_000]).unwrap();
    let pcap = h.dir().join("offload.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    h.serve(
        PORT,
        &["--root", root.to_str().unwrap(), "--pcap", &pcap_arg],
    );
    h.curl(SHORT_TIMEOUT, &["-sS", "-o", "/dev/null", &url("/big.bin")])
        .expect_success("curl big.bin");
    let up = format!("@{}", upload.to_str().unwrap());
    h.curl(
        SHORT_TIMEOUT,
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-H",
            "Expect:",
            "--data-binary",
            &up,
            &url("/echo"),
        ],
    )
    .expect_success("curl POST /echo");
    let status = h.stop_server(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}; log:\n{}",
        h.server_log()
    );
    let log = h.server_log();
    let run = run_bounded(
        cmd(
            "tshark",
            [
                "-n",
                "-r",
                pcap_arg.as_str(),
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-Y",
                "tcp",
                "-T",
                "fields",
                "-e",
                "frame.len",
                "-e",
                "tcp.checksum.status",
                "-e",
                "ip.checksum.status",
                "-e",
                "tcp.srcport",
                "-e",
                "tcp.len",
            ],
        ),
        SHORT_TIMEOUT,
    );
    run.expect_success("tshark -r");
    let (mut largest, mut from_server, mut to_server, mut bad) = (0usize, 0usize, 0usize, 0);
    for line in run.stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [len, tcp_ok, ip_ok, sport, payload] = f[..] else {
            continue;
        };
        largest = largest.max(len.parse().unwrap_or(0));
        // tshark's checksum status: 0 bad, 1 good, 2 unverified.
        if tcp_ok != "1" || ip_ok != "1" {
            bad += 1;
        }
        let n: usize = payload.parse().unwrap_or(0);
        if sport == PORT.to_string() {
            from_server += n;
        } else {
            to_server += n;
        }
    }
    assert!(
        largest <= 1500,
        "a captured packet of {largest} bytes (MTU 1500)"
    );
    assert_eq!(
        bad, 0,
        "packets with a bad or unverified checksum in the capture"
    );
    assert!(
        from_server >= 3_000_000,
        "server sent {from_server} bytes in the capture"
    );
    assert!(
        to_server >= 1_000_000,
        "client sent {to_server} bytes in the capture"
    );
    // The capture is only a faithful view if super-segments really crossed the device both
    // ways: the exit statistics count them ("offload super-segments in N  out M").
    let counts: Vec<u64> = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("offload super-segments in "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts.iter().all(|&n| n > 0),
        "no super-segments both ways in the exit statistics:\n{log}"
    );
}

/// `Connection: close` and HTTP/1.0 end the connection after a complete response: a
/// raw client sees status 200, the whole body (Content-Length bytes), then EOF.
#[test]
fn connection_close_and_http10_are_honoured() {
    let Some(mut h) = Harness::new("connection_close_and_http10_are_honoured", &["python3"]) else {
        return;
    };
    h.serve(PORT, &[]);
    // Prints "EOF" or "TIMEOUT", then the status line, then the declared and the
    // received body length.
    let script = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(sys.argv[3].encode().decode("unicode_escape").encode("latin-1"))
data = b""
end = "EOF"
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    end = "TIMEOUT"
head, _, body = data.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
length = "none"
for line in lines[1:]:
    name, _, value = line.partition(":")
    if name.strip().lower() == "content-length":
        length = value.strip()
print(end)
print(lines[0])
print(length, len(body))
"#;
    let port = PORT.to_string();
    for request in [
        r"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\nConnection: close\r\n\r\n",
        r"GET / HTTP/1.0\r\n\r\n",
    ] {
        let run = h.run_in_ns(
            SHORT_TIMEOUT,
            "python3",
            &["-c", script, STACK_IP, &port, request],
        );
        run.expect_success("python3 client");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("EOF"),
            "{request}: the server should close the connection after the response: {run}"
        );
        let status = lines.get(1).copied().unwrap_or("");
        assert!(
            status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200"),
            "{request}: status line {status:?}: {run}"
        );
        let sizes: Vec<&str> = lines.get(2).copied().unwrap_or("").split(' ').collect();
        assert!(
            sizes.len() == 2 && sizes[0] == sizes[1],
            "{request}: Content-Length vs body received: {run}"
        );
    }
}

/// `POST /echo` with a chunked request body (no Content-Length) comes back unchanged.
#[test]
fn post_echo_chunked_body() {
    let Some(mut h) = Harness::new("post_echo_chunked_body", &[]) else {
        return;
    };
    h.serve(PORT, &[]);
    let input = h.dir().join("chunked.in");
    let output = h.dir().join("chunked.out");
    write_pattern_file(&input, MIB + 12345, 0x6368_756e);
    let data = format!("@{}", input.to_str().unwrap());
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect:",
            "--data-binary",
            &data,
            "-o",
            output.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &url("/echo"),
        ],
    );
    run.expect_success("curl chunked POST /echo");
    assert_eq!(run.stdout.trim(), "200", "{run}");
    if let Err(e) = compare_files(&input, &output) {
        panic!("chunked POST /echo response differs: {e}");
    }
}

/// `tunstack get` exits non-zero with a message naming the problem for a 404 and for a
/// refused connection (and within a bounded time).
#[test]
fn get_reports_errors() {
    let Some(mut h) = Harness::new("get_reports_errors", &["python3"]) else {
        return;
    };
    let www = h.dir().join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    h.start_kernel_http_server(8000, &www);
    let out = h.dir().join("missing.out");

    let url = format!("http://{HOST_IP}:8000/missing");
    let run = h.tunstack_get(&url, &out, SHORT_TIMEOUT);
    assert!(run.status.is_some(), "tunstack get {url} hung: {run}");
    assert!(!run.success(), "tunstack get of a 404 must fail: {run}");
    assert!(
        run.stderr.contains("404"),
        "the message should name the HTTP status: {run}"
    );
    assert!(
        h.wait_tun_gone(Duration::from_secs(5)),
        "TUN left behind after a failed get"
    );

    // Nobody listens on 8001: the kernel answers the SYN with RST.
    let url = format!("http://{HOST_IP}:8001/");
    let run = h.tunstack_get(&url, &out, SHORT_TIMEOUT);
    assert!(run.status.is_some(), "tunstack get {url} hung: {run}");
    assert!(
        !run.success(),
        "tunstack get of a closed port must fail: {run}"
    );
    assert!(
        run.elapsed < Duration::from_secs(20),
        "a refused connection should fail fast, took {:?}: {run}",
        run.elapsed
    );
}
