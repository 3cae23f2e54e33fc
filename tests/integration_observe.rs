//! Watching a request: `serve --trace`, `serve --step` (through a pseudo-terminal), the
//! statistics at `GET /_stats` and on SIGUSR1 — the real binary in a network namespace.

mod common;

use std::time::Duration;

use common::{run_bounded, tunstack_bin, Harness, SHORT_TIMEOUT, STACK_IP};

fn curl_status(h: &Harness, path: &str) -> String {
    let url = format!("http://{STACK_IP}{path}");
    let run = h.curl(
        Duration::from_secs(20),
        &["-o", "/dev/null", "-w", "%{http_code}", &url],
    );
    run.expect_success(&format!("curl {url}"));
    run.stdout.trim().to_string()
}

/// Serve with `--trace` and `extra` flags, fetch `path` with curl (after the readiness
/// probe's `GET /`), stop the server and return its log after checking the lines every runtime shows:
/// link, ip and tcp lines of each packet, the state machine with its causes in causal
/// order, socket calls, the HTTP lines and the statistics on exit.
fn traced_curl(h: &mut Harness, extra: &[&str], path: &str) -> String {
    let mut args = vec!["--trace"];
    args.extend_from_slice(extra);
    h.serve(80, &args);
    assert_eq!(curl_status(h, path), "200");
    // Both connections (the readiness probe and ours) closed: curl closes first, so our
    // side goes CLOSE-WAIT → LAST-ACK → CLOSED.
    let log = h.wait_log(SHORT_TIMEOUT, |l| {
        l.matches("LAST-ACK → CLOSED on ACK of FIN").count() >= 2
    });
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{log}"
    );
    let log = h.server_log();
    for needle in [
        // link, IPv4 and TCP lines of a packet block
        "← in ",
        "→ out",
        "link 60 bytes from the TUN",
        "    ip     10.0.0.1 → 10.0.0.2  ttl 64  id ",
        "checksum ok  proto tcp",
        // relative and absolute sequence numbers, options decoded
        " → 80  [S]  seq 0 (abs ",
        "[S.]  seq 0 (abs ",
        "ack 1 (abs ",
        "<mss 1460",
        // the state machine, with causes
        "CLOSED → LISTEN on passive OPEN",
        "LISTEN → SYN-RECEIVED on SYN",
        "SYN-RECEIVED → ESTABLISHED on ACK",
        "ESTABLISHED → CLOSE-WAIT on FIN",
        "CLOSE-WAIT → LAST-ACK on CLOSE",
        "LAST-ACK → CLOSED on ACK of FIN",
        // socket calls and the HTTP lines
        "socket accept() → connection from 10.0.0.1:",
        "socket read() → ",
        "socket write(",
        "http   request  GET / HTTP/1.1",
        "http   response HTTP/1.1 200 OK",
        "bytes  GET / HTTP/1.1",
        "bytes  HTTP/1.1 200 OK",
        // and the statistics on exit
        "tunstack statistics (per layer)",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
    // The passive OPEN is shown with the listen() that made it, not under an unrelated
    // packet.
    let lines: Vec<&str> = log.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("CLOSED → LISTEN") {
            // (With several queues another loop's lines may come between the two.)
            assert!(
                lines[i.saturating_sub(6)..i]
                    .iter()
                    .any(|l| l.contains("socket listen(10.0.0.2:80)")),
                "LISTEN not next to its listen():\n{log}"
            );
        }
    }
    // Causal order for one connection: SYN in, decision, SYN-ACK out, ACK in, ESTABLISHED.
    let syn = log.find(" → 80  [S]  seq 0").expect("SYN");
    let decided = log[syn..].find("LISTEN → SYN-RECEIVED").expect("decision") + syn;
    let syn_ack = log[decided..].find("[S.]").expect("SYN-ACK") + decided;
    let established = log[syn_ack..]
        .find("SYN-RECEIVED → ESTABLISHED")
        .expect("established")
        + syn_ack;
    assert!(syn < decided && decided < syn_ack && syn_ack < established);
    assert!(!log.contains('\x1b'), "no colours when piped:\n{log}");
    log
}

#[test]
fn trace_shows_each_layer_and_the_state_machine() {
    let Some(mut h) = Harness::new("trace_shows_each_layer", &[]) else {
        return;
    };
    let log = traced_curl(&mut h, &["--threaded"], "/");
    // The thread-per-connection model: accept on the acceptor, I/O on the connection's.
    for needle in [
        "on 10.0.0.2:80  [thread main]",
        "[thread http 10.0.0.1:",
        "  [tunstack]  link ",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
}

#[test]
fn trace_on_the_event_loop_with_queues_and_offloads() {
    let Some(mut h) = Harness::new("trace_event_loop", &[]) else {
        return;
    };
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    common::write_pattern_file(&root.join("big.bin"), 256 * 1024, 0x7472_6163);
    let root_arg = root.to_str().expect("utf-8 path").to_string();
    let log = traced_curl(&mut h, &["--queues", "2", "--root", &root_arg], "/big.bin");
    assert!(
        log.contains("(2 queue(s), event loop)"),
        "not the event loop with two queues:\n{}",
        tail(&log)
    );
    for needle in [
        // every block names the queue's loop that handled it; calls happen on it too
        "  [tunstack-q",
        "[thread tunstack-q",
        "http   request  GET /big.bin HTTP/1.1",
        // offloads stay on: the 256 KiB body leaves as TSO super-segments, each shown as
        // what it is and then as the wire segments it becomes
        "super-segment of ",
        "(TSO): the kernel cuts it into ",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing from:\n{}",
            tail(&log)
        );
    }
    let sup = log
        .find("(TSO): the kernel cuts it")
        .expect("super-segment");
    assert!(
        log[sup..].contains("→ out") && log[sup..].contains("  len 1448"),
        "no wire segments after the super-segment:\n{}",
        tail(&log)
    );
}

#[test]
fn trace_shows_retransmissions_under_loss() {
    let Some(mut h) = Harness::new("trace_retransmissions", &["nft"]) else {
        return;
    };
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    common::write_pattern_file(&root.join("big.bin"), 512 * 1024, 0x7472_6163);
    let root_arg = root.to_str().expect("utf-8 path").to_string();
    // Without offloads: netfilter (scripts/loss.sh) sees a TSO super-segment as one packet,
    // so ten of them might all pass; 360 wire segments will not.
    h.serve(80, &["--trace", "--no-offload", "--root", &root_arg]);
    let (ns, tun) = (h.ns().name().to_string(), h.tun().to_string());
    h.script("loss.sh", &[&ns, &tun, "10"])
        .expect_success("scripts/loss.sh");
    // About 360 data segments out: with 10 % loss some are lost and sent again.
    let url = format!("http://{STACK_IP}/big.bin");
    let run = h.curl(
        Duration::from_secs(120),
        &["-o", "/dev/null", "-w", "%{size_download}", &url],
    );
    run.expect_success("curl through the lossy link");
    assert_eq!(run.stdout.trim(), (512 * 1024).to_string());
    h.script("loss.sh", &[&ns, &tun, "0"])
        .expect_success("scripts/loss.sh 0");
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
    let log = h.server_log();
    // A lost data segment is repaired by the timer or by duplicate ACKs; the trace
    // shows the cause, then the segment going out again. (A SYN-ACK may also be resent
    // because the peer repeated its SYN, which has no timer line: look for any cause.)
    let cause = [
        "retransmission timer expired",
        // "3 duplicate ACKs: fast retransmit …", or fewer with early retransmit.
        ": fast retransmit of seq",
    ]
    .iter()
    .filter_map(|c| log.find(c))
    .min()
    .unwrap_or_else(|| panic!("no retransmission cause traced:\n{}", tail(&log)));
    assert!(
        log[cause..].contains("retransmitting seq "),
        "no retransmission after its cause:\n{}",
        tail(&log)
    );
    let summary = &log[log.rfind("tunstack statistics").expect("summary")..];
    assert!(
        !summary.contains("retransmits 0 "),
        "the summary counts them:\n{summary}"
    );
}

/// The last lines of a long log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

#[test]
fn stats_as_json_and_on_sigusr1() {
    let Some(mut h) = Harness::new("stats_json_sigusr1", &["python3"]) else {
        return;
    };
    h.serve(80, &[]);
    for _ in 0..3 {
        assert_eq!(curl_status(&h, "/"), "200");
    }
    let json_path = h.dir().join("stats.json");
    let json_arg = json_path.to_str().expect("utf-8 path").to_string();
    let url = format!("http://{STACK_IP}/_stats");
    h.curl(Duration::from_secs(20), &["-o", &json_arg, &url])
        .expect_success("curl /_stats");
    let check = r#"
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"link", "ip", "tcp", "udp", "http"}, d.keys()
t = d["tcp"]
assert t["segments_in"] > 0 and t["segments_out"] > 0, t
assert isinstance(t["drops"], dict) and isinstance(d["ip"]["drops"], dict), t
assert t["connections_accepted"] >= 4, t
assert t["connections"]["ESTABLISHED"] >= 1, t["connections"]
assert d["ip"]["packets_in"] >= t["segments_in"], d["ip"]
assert d["http"]["requests"] >= 4 and d["http"]["responses"]["2xx"] >= 4, d["http"]
print("json ok", t["segments_in"], t["segments_out"])
"#;
    let mut c = std::process::Command::new("python3");
    c.args(["-c", check, &json_arg]);
    let run = run_bounded(c, SHORT_TIMEOUT);
    let body = std::fs::read_to_string(&json_path).unwrap_or_default();
    assert!(run.success(), "invalid /_stats: {run}\nbody: {body}");
    eprintln!("{}", run.stdout.trim());

    let pid = h.server_pid().expect("server running");
    common::send_signal(pid, "USR1");
    let log = h.wait_log(SHORT_TIMEOUT, |l| {
        l.contains("tunstack statistics (per layer)") && l.contains("  http    requests")
    });
    for needle in [
        "  link    packets read ",
        "  ip      in ",
        "  tcp     segments in ",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing after SIGUSR1:\n{log}"
        );
    }
    // Still serving after the signal.
    assert_eq!(curl_status(&h, "/"), "200");
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
    let log = h.server_log();
    assert_eq!(
        log.matches("tunstack statistics (per layer)").count(),
        2,
        "once on SIGUSR1, once on exit:\n{log}"
    );
    // No access log unless asked for (`--access-log`): five requests, not one line each.
    assert!(
        !log.contains("\"GET / HTTP/1.1\" 200"),
        "access log written by default:\n{log}"
    );
}

/// Run `serve --MODE` on a pseudo-terminal (tests/observe_step_driver.py) with one curl;
/// returns the transcript after checking that curl got its 200.
fn on_a_terminal(h: &Harness, mode: &str, color: &str, extra: &[&str]) -> String {
    let driver = h.dir().join("step_driver.py");
    std::fs::write(&driver, include_str!("observe_step_driver.py")).expect("write driver");
    let mut c = std::process::Command::new("python3");
    c.arg(&driver)
        .arg(h.ns().name())
        .arg(h.tun())
        .arg(tunstack_bin())
        .args([mode, color])
        .args(extra);
    let run = run_bounded(c, Duration::from_secs(150));
    let out = run.stdout.replace('\r', "");
    assert!(run.success(), "driver failed: {run}");
    assert!(
        out.contains("CURL_RC=0 HTTP=200"),
        "curl did not complete through the server on a terminal:\n{out}"
    );
    out
}

#[test]
fn trace_is_coloured_on_a_terminal() {
    let Some(h) = Harness::new("trace_coloured", &["python3"]) else {
        return;
    };
    let out = on_a_terminal(&h, "trace", "color", &[]);
    // State transitions in bold cyan, layer labels in their colours.
    assert!(
        out.contains("\x1b[1;36m10.0.0.2:80 ↔ 10.0.0.1:"),
        "no coloured transition:\n{out}"
    );
    assert!(
        out.contains("\x1b[34mip     \x1b[0m"),
        "no coloured ip label:\n{out}"
    );
}

#[test]
fn step_mode_walks_a_request_through_the_layers() {
    let Some(h) = Harness::new("step_mode", &["python3"]) else {
        return;
    };
    // The default runtime (the event loop), two queues, offloads on.
    let out = on_a_terminal(&h, "step", "plain", &["--queues", "2"]);
    for needle in [
        "step link   │ 60 bytes from the TUN  ⇒ the device read a packet; hands it up to ip",
        "step ip     │ 10.0.0.1 → 10.0.0.2",
        "hands the payload up to tcp",
        "step tcp    │ ",
        "LISTEN → SYN-RECEIVED on SYN",
        "⇒ the segment to send; hands it down to ip",
        "⇒ wraps it in an IPv4 header; hands it down to the link",
        "step socket │ accept() → connection from 10.0.0.1:",
        "step http   │ request  GET / HTTP/1.1",
        "⇒ the HTTP handler runs now",
        "step> ",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    // The driver runs the server on a terminal with NO_COLOR set: no colour codes.
    assert!(!out.contains("\x1b["), "NO_COLOR not honoured:\n{out}");
    let prompts: usize = out
        .rsplit("PROMPTS=")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(prompts >= 10, "only {prompts} pauses:\n{out}");
    assert!(
        out.contains("(2 queue(s), event loop)"),
        "not the event loop:\n{out}"
    );
    assert!(
        out.contains("  [tunstack-q"),
        "blocks do not name the queue:\n{out}"
    );
    // What a packet causes goes out before the next packet is taken: our SYN-ACK is
    // stepped right after curl's SYN, however slowly the user steps, so curl never has
    // to repeat its SYN.
    assert!(
        !out.contains("the peer repeated its SYN"),
        "a SYN-ACK waited behind queued packets:\n{out}"
    );
    let syn = out.find("LISTEN → SYN-RECEIVED on SYN").expect("SYN");
    let next_in = out[syn..].find("← in ").map_or(out.len(), |i| i + syn);
    assert!(
        out[syn..next_in].contains("[S.]"),
        "the SYN-ACK is not the next thing stepped after the SYN:\n{out}"
    );
}

/// Drives `serve --step` on a pseudo-terminal and never presses Enter: SIGUSR1 must still
/// print the statistics and SIGTERM must still end the server (argv: NS TUN BIN).
const PAUSED_DRIVER: &str = r#"
import os, pty, select, signal, subprocess, sys, time
ns, tun, binary = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.environ["NO_COLOR"] = "1"
    os.execvp("ip", ["ip", "netns", "exec", ns, binary, "serve", "--step", "--tun", tun,
                     "--host-ip", "10.0.0.1/24", "--ip", "10.0.0.2", "--port", "80"])
out = bytearray()
def read_until(pred, limit):
    end = time.time() + limit
    while time.time() < end and not pred():
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)
read_until(lambda: b"http: listening" in out, 30)
curl = subprocess.Popen(["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "20",
                         "-o", "/dev/null", "http://10.0.0.2/"])
read_until(lambda: b"step> " in out, 30)
paused = b"step> " in out
os.kill(pid, signal.SIGUSR1)
read_until(lambda: b"tunstack statistics (per layer)" in out, 10)
usr1 = b"tunstack statistics (per layer)" in out
os.kill(pid, signal.SIGTERM)
start = time.time()
exited = False
while time.time() - start < 15:
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done:
        exited = True
        break
    read_until(lambda: False, 0.1)
took = time.time() - start
if not exited:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
curl.kill()
curl.wait()
sys.stdout.write(out.decode("utf-8", "replace"))
print(f"\nPAUSED={paused} USR1={usr1} EXITED={exited} TOOK={took:.1f}")
"#;

#[test]
fn a_paused_step_does_not_hold_up_the_statistics_or_the_exit() {
    let Some(h) = Harness::new("step_paused", &["python3"]) else {
        return;
    };
    let driver = h.dir().join("paused_driver.py");
    std::fs::write(&driver, PAUSED_DRIVER).expect("write driver");
    let mut c = std::process::Command::new("python3");
    c.arg(&driver)
        .arg(h.ns().name())
        .arg(h.tun())
        .arg(tunstack_bin());
    let run = run_bounded(c, Duration::from_secs(120));
    let out = run.stdout.replace('\r', "");
    assert!(run.success(), "driver failed: {run}");
    assert!(out.contains("PAUSED=True"), "never paused:\n{out}");
    assert!(
        out.contains("USR1=True"),
        "SIGUSR1 waited for Enter:\n{out}"
    );
    assert!(
        out.contains("EXITED=True"),
        "SIGTERM waited for Enter:\n{out}"
    );
}
