//! The two runtimes of `serve`: the event loop (the default, here with `--queues 2`, one
//! loop thread and one stack per TUN queue) and `--threaded` (a thread per connection).
//! The real binary in its own network namespace, driven by curl.
//!
//! Run as root with `CI=1 cargo test --release --test integration_evloop`.

mod common;

use common::*;
use std::time::Duration;

const PORT: u16 = 80;

fn url(path: &str) -> String {
    format!("http://{STACK_IP}:{PORT}{path}")
}

/// `n` curls of `path`, `parallel` at a time, each on its own connection (so the
/// kernel spreads the flows over the queues); the failures, described.
fn curl_many(h: &Harness, path: &str, n: usize, parallel: usize) -> Vec<String> {
    let target = url(path);
    let mut failures = Vec::new();
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..n.min(next + parallel))
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
        next += batch.len();
        for t in batch {
            let (i, run) = t.join().expect("curl thread");
            if !(run.success() && run.stdout.trim() == "200") {
                failures.push(format!("curl #{i}: {run}"));
            }
        }
    }
    failures
}

/// A POST /echo on one connection, then a GET on the same one (keep-alive).
fn echo_then_get(h: &Harness) {
    let body = h.dir().join("body.bin");
    write_pattern_file(&body, 300 * 1024, 7);
    let out = h.dir().join("echoed.bin");
    let body_arg = format!("@{}", body.display());
    let out_arg = out.display().to_string();
    h.curl(
        SHORT_TIMEOUT,
        &[
            "-sS",
            "--data-binary",
            &body_arg,
            "-o",
            &out_arg,
            &url("/echo"),
            "-o",
            "/dev/null",
            &url("/"),
        ],
    )
    .expect_success("curl POST /echo then GET /");
    compare_files(&body, &out).unwrap_or_else(|e| panic!("echo differs: {e}"));
}

#[test]
fn two_queues_serve_every_request() {
    let Some(mut h) = Harness::new("evloop_two_queues", &[]) else {
        return;
    };
    h.serve(PORT, &["--queues", "2"]);
    let _heavy = heavy_lock();
    let failures = curl_many(&h, "/", 200, 20);
    assert!(
        failures.is_empty(),
        "{} of 200 requests failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&h.server_log())
    );
    echo_then_get(&h);
    // The statistics cover both queues: every connection was accepted by one of them.
    // The other queue's counters may be one publication period (100 ms) old: poll.
    let json = h.dir().join("stats.json");
    let json_arg = json.display().to_string();
    let mut accepted = 0;
    let mut text = String::new();
    for _ in 0..50 {
        h.curl(SHORT_TIMEOUT, &["-sS", "-o", &json_arg, &url("/_stats")])
            .expect_success("curl /_stats");
        text = std::fs::read_to_string(&json).expect("stats file");
        accepted = text
            .split("\"connections_accepted\": ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no connections_accepted in {text}"));
        if accepted >= 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(accepted >= 200, "accepted {accepted}: {text}");
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}; log:\n{}",
        tail(&h.server_log())
    );
    assert!(h.wait_tun_gone(Duration::from_secs(10)), "TUN left behind");
}

#[test]
fn threaded_runtime_still_serves() {
    let Some(mut h) = Harness::new("evloop_threaded", &[]) else {
        return;
    };
    h.serve(PORT, &["--threaded"]);
    let failures = curl_many(&h, "/", 20, 10);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    echo_then_get(&h);
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
    let log = h.server_log();
    assert!(
        !log.contains("event loop"),
        "--threaded must not start the event loop:\n{}",
        tail(&log)
    );
    assert!(h.wait_tun_gone(Duration::from_secs(10)), "TUN left behind");
}

/// The last lines of a long log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
