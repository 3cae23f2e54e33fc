//! Slow clients get every byte: clients far slower than every timer of the server (send
//! timeout without progress, idle timeout, lingering close), still making progress, get
//! the whole file and a clean close (FIN, no reset anywhere); a client that stops reading
//! altogether is cut only once the no-progress timeout passed. On the event loop (the
//! default) and on `--threaded`. The real binary in its own network namespace, driven by
//! curl and a Python client.
//!
//! The server runs with short timers (`--send-timeout 10 --idle-timeout 2`) so that a
//! client reading at 40 kB/s outlasts them all within seconds. The send timeout is not
//! shorter because `curl --limit-rate` first reads at full speed (a few hundred KiB in
//! under a second) and then stops reading until its average is back at the limit: seconds
//! without progress that a 3 s timeout would rightly cut.
//!
//! Run as root with `CI=1 cargo test --release --test integration_slow_clients`.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

/// The no-progress timeout the server runs with, in seconds.
const SEND_TIMEOUT: u64 = 10;
/// Size of the file the slow clients fetch: at 40 kB/s, about 13 s.
const FILE_LEN: u64 = 512 * 1024;

/// A client reading `chunk` bytes every `pause` seconds: sends a GET for argv[1] (with
/// `Connection: close` if argv[6] is "close"), writes the body to argv[2], then waits for
/// the server's close. Prints how the connection ended; exits 0 only for every byte and a
/// clean EOF. With argv[5] > 0: after argv[5] bytes it prints "stalled" and stops reading
/// for good (sleeps 60 s).
const SLOW_CLIENT: &str = r#"
import socket, sys, time
path, out, chunk, pause, stall_at, conn = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = socket.create_connection(("10.0.0.2", 80), timeout=60)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
extra = "Connection: close\r\n" if conn == "close" else ""
s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, extra)).encode())
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(chunk)
head, body = data.split(b"\r\n\r\n", 1)
length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
start = time.time()
try:
    while len(body) < length:
        if stall_at and len(body) >= stall_at:
            print("stalled", flush=True)
            time.sleep(60)
        time.sleep(pause)
        b = s.recv(chunk)
        if not b:
            break
        body += b
    open(out, "wb").write(body)
    took = time.time() - start
    if len(body) < length:
        print("short body: %d of %d bytes after %.1f s" % (len(body), length, took))
        sys.exit(1)
    s.settimeout(30)
    end = s.recv(1)
    print("%d bytes in %.1f s, then %s" % (len(body), took, "EOF" if end == b"" else repr(end)))
    sys.exit(0 if end == b"" else 1)
except Exception as e:
    print("%s after %d of %d bytes, %.1f s" % (type(e).__name__, len(body), length, time.time() - start))
    sys.exit(1)
"#;

fn url(path: &str) -> String {
    format!("http://{STACK_IP}:80{path}")
}

/// `"resets_sent": N` from the server's statistics.
fn resets_sent(h: &Harness) -> u64 {
    let run = h.curl(SHORT_TIMEOUT, &[&url("/_stats")]);
    run.expect_success("GET /_stats");
    let key = "\"resets_sent\": ";
    let at = run
        .stdout
        .find(key)
        .unwrap_or_else(|| panic!("no resets_sent in {}", run.stdout));
    run.stdout[at + key.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad resets_sent in {}", run.stdout))
}

fn slow_clients(test: &str, extra: &[&str]) {
    let Some(mut h) = Harness::new(test, &["python3", "sysctl"]) else {
        return;
    };
    // Small receive buffers for the clients (in this namespace only): the kernel must not
    // take the whole file at once and leave the slowness to the application, or the server
    // would see a fast client.
    h.run_in_ns(
        SHORT_TIMEOUT,
        "sysctl",
        &["-w", "net.ipv4.tcp_rmem=4096 16384 32768"],
    )
    .expect_success("sysctl tcp_rmem");
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("root dir");
    let file = root.join("big.bin");
    write_pattern_file(&file, FILE_LEN, 14);
    let root_arg = root.display().to_string();
    let send_timeout = SEND_TIMEOUT.to_string();
    let mut args = vec![
        "--root",
        &root_arg,
        "--send-timeout",
        &send_timeout,
        "--idle-timeout",
        "2",
        "--access-log",
        "-",
    ];
    args.extend_from_slice(extra);
    h.serve(80, &args);

    // curl at 40 kB/s with Connection: close (13 s), and a Python client reading 4 KiB
    // every 0.1 s on a kept-alive connection, which then waits for the idle close.
    let curl_out = h.dir().join("curl.bin");
    let mut curl = h.ns().command("curl");
    curl.args(["-sS", "--max-time", "120", "--limit-rate", "40k"])
        .args(["-H", "Connection: close", "-o"])
        .arg(&curl_out)
        .args(["-w", "%{http_code}", &url("/big.bin?curl")]);
    let curl = thread::spawn(move || run_bounded(curl, Duration::from_secs(150)));
    let py_out = h.dir().join("python.bin");
    let py_out_arg = py_out.display().to_string();
    let python = h.run_in_ns(
        Duration::from_secs(150),
        "python3",
        &[
            "-c",
            SLOW_CLIENT,
            "/big.bin?python",
            &py_out_arg,
            "4096",
            "0.1",
            "0",
            "keep-alive",
        ],
    );
    let curl = curl.join().expect("curl thread");
    let log = h.server_log();
    assert!(
        curl.success() && curl.stdout.trim() == "200",
        "curl --limit-rate 40k: {curl}\nserver log:\n{log}"
    );
    compare_files(&file, &curl_out).unwrap_or_else(|e| panic!("curl's copy: {e}"));
    assert!(
        python.success(),
        "python slow reader: {python}\nserver log:\n{log}"
    );
    compare_files(&file, &py_out).unwrap_or_else(|e| panic!("python's copy: {e}"));
    // Nothing was reset, and the access log says every byte was delivered.
    assert_eq!(resets_sent(&h), 0, "server log:\n{log}");
    for client in ["curl", "python"] {
        let line = format!("\"GET /big.bin?{client} HTTP/1.1\" 200 {FILE_LEN} ");
        let log = h.wait_log(SHORT_TIMEOUT, |l| l.contains(&line));
        assert!(log.contains(&line), "no `{line}` in the log:\n{log}");
    }

    // A client that stops reading after 64 KiB: cut once SEND_TIMEOUT passed without
    // progress, not before, and logged as aborted.
    let stall_out = h.dir().join("stall.bin").display().to_string();
    let mut c = h.ns().command("python3");
    c.args(["-c", SLOW_CLIENT, "/big.bin?stall", &stall_out])
        .args(["4096", "0", "65536", "close"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("python stall client");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = ChildGuard::new(child, "stall client");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("stall client output");
    assert_eq!(line.trim(), "stalled");
    let stalled = Instant::now();
    let aborted = "\"GET /big.bin?stall HTTP/1.1\" 200 ";
    let log = h.wait_log(Duration::from_secs(60), |l| {
        l.lines()
            .any(|l| l.contains(aborted) && l.ends_with(" aborted"))
    });
    let waited = stalled.elapsed();
    let entry = log
        .lines()
        .find(|l| l.contains(aborted))
        .unwrap_or_else(|| panic!("the stalled transfer was never cut:\n{log}"));
    assert!(entry.ends_with(" aborted"), "{entry}");
    assert!(
        waited >= Duration::from_secs(SEND_TIMEOUT) - Duration::from_millis(500),
        "cut {waited:?} after the client stalled, before the no-progress timeout"
    );
    assert!(
        waited < Duration::from_secs(SEND_TIMEOUT + 20),
        "cut only {waited:?} after the client stalled"
    );
    // The bytes it acknowledged: at least what the client read, less than the file.
    let bytes: u64 = entry
        .split(aborted)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {entry}"));
    assert!((65536..FILE_LEN).contains(&bytes), "{entry}");

    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
}

#[test]
fn slow_clients_get_every_byte_on_the_event_loop() {
    slow_clients("slow_clients_event_loop", &[]);
}

#[test]
fn slow_clients_get_every_byte_threaded() {
    slow_clients("slow_clients_threaded", &["--threaded"]);
}

/// Opens argv[1] connections and holds them until stdin closes: "idle" ones got a whole
/// response to `GET /` and stay kept alive; "busy" ones sent half a request head
/// (slowloris). Prints "ready" once all are open.
const HOLDER: &str = r#"
import socket, sys
n, mode = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(n):
    s = socket.create_connection(("10.0.0.2", 80), timeout=30)
    if mode == "idle":
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while not got.endswith(b"</html>\n"):
            b = s.recv(65536)
            if not b:
                sys.exit("connection %d closed early: %r" % (i, got[:80]))
            got += b
    else:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"#;

/// Start [`HOLDER`] with `n` connections of `mode`; returns it once they are open.
fn hold(h: &Harness, n: usize, mode: &str) -> ChildGuard {
    let mut c = h.ns().command("python3");
    c.args(["-c", HOLDER, &n.to_string(), mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = c.spawn().expect("python holder");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard::new(child, format!("{mode} holder"));
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("holder");
    assert_eq!(line.trim(), "ready", "{mode} holder");
    guard
}

/// `curl URL`'s HTTP status ("000" if it got none).
fn status(h: &Harness, path: &str) -> String {
    let run = h.curl(
        SHORT_TIMEOUT,
        &["-o", "/dev/null", "-w", "%{http_code}", &url(path)],
    );
    run.stdout.trim().to_string()
}

#[test]
fn at_the_connection_limit_idle_connections_make_room() {
    let Some(mut h) = Harness::new("limit_idle_make_room", &["python3"]) else {
        return;
    };
    h.serve(80, &["--max-connections", "4"]);
    // Four idle keep-alive connections fill the limit: a new client still gets 200 (the
    // oldest idle connection is closed for it), and again.
    let idle = hold(&h, 4, "idle");
    for _ in 0..2 {
        assert_eq!(status(&h, "/"), "200", "log:\n{}", h.server_log());
    }
    // Four busy (half a request head each) take the places of the idle ones: now every
    // connection is busy, and a new client gets 503.
    let busy = hold(&h, 4, "busy");
    assert_eq!(status(&h, "/"), "503", "log:\n{}", h.server_log());
    drop(busy);
    drop(idle);
    // The 503 is in the statistics (once the busy ones left, /_stats gets a place).
    let start = Instant::now();
    let stats = loop {
        let run = h.curl(SHORT_TIMEOUT, &[&url("/_stats")]);
        if run.stdout.contains("\"5xx\"") {
            break run.stdout;
        }
        assert!(start.elapsed() < SHORT_TIMEOUT, "no /_stats: {run}");
        thread::sleep(Duration::from_millis(200));
    };
    assert!(stats.contains("\"5xx\": 1"), "{stats}");
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
}
