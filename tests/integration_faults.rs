//! Integration tests for the internet layer's fault handling, with the real binary in a network
//! namespace (see tests/common):
//!
//! - `ping -s 4000`: the kernel fragments the request at MTU 1500; we reassemble it and
//!   fragment the reply, which the kernel reassembles;
//! - `serve --loss 10 --fault-seed 1`: the stack's own fault injector drops 10 % of the
//!   packets in each direction; a 4 MiB GET and a 4 MiB POST /echo still come back byte
//!   for byte.
//!
//! Run as root: `cargo test --release --test integration_faults`.

mod common;

use common::*;
use std::path::Path;

const PORT: u16 = 80;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn ping_4000_bytes_fragmented_both_ways() {
    let Some(mut h) = Harness::new("ping_4000_bytes_fragmented_both_ways", &["ping"]) else {
        return;
    };
    h.serve(PORT, &[]);
    // -M dont: let the kernel fragment (the default "want" would as well at 4028 bytes).
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "ping",
        &["-c", "3", "-W", "5", "-s", "4000", "-M", "dont", STACK_IP],
    );
    run.expect_success("ping -s 4000");
    assert!(run.stdout.contains("3 received"), "ping -s 4000: {run}");
    assert!(
        run.stdout.contains("4008 bytes from"),
        "4000 bytes payload + 8 ICMP header expected: {run}"
    );
    h.stop_server(SHORT_TIMEOUT);
    let log = h.server_log();
    assert!(log.contains("tunstack statistics"), "server log: {log}");
}

#[test]
fn ten_percent_loss_get_and_post_4_mib_byte_exact() {
    let Some(mut h) = Harness::new("ten_percent_loss_get_and_post_4_mib_byte_exact", &[]) else {
        return;
    };
    let _heavy = heavy_lock();
    // We do not offer SACK yet, so under ~19 % round-trip loss the kernel's sender recovers
    // mostly by retransmission timeouts, backed off exponentially up to 120 s: one unlucky
    // run can stall for minutes. Linux >= 6.15 lets a namespace cap that backoff (the
    // sysctl is per namespace; older kernels just run slower, within the limits below).
    let capped = h.run_in_ns(
        SHORT_TIMEOUT,
        "sysctl",
        &["-w", "net.ipv4.tcp_rto_max_ms=1000"],
    );
    eprintln!("cap the kernel's RTO at 1 s: {}", capped.success());
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("4m.bin");
    write_pattern_file(&file, 4 * MIB, 3);
    h.serve(
        PORT,
        &[
            "--root",
            path_str(&root),
            "--loss",
            "10",
            "--fault-seed",
            "1",
            // Even so a body can stall longer than the default 30 s between two reads on
            // such a link; the test is about the bytes.
            "--body-timeout",
            "120",
        ],
    );

    let out = h.dir().join("4m.out");
    let url = format!("http://{STACK_IP}:{PORT}/4m.bin");
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "-o",
            path_str(&out),
            "-w",
            "%{http_code} %{size_download} %{speed_download}",
            &url,
        ],
    );
    run.expect_success("curl GET with 10 % loss");
    eprintln!(
        "GET 4 MiB, 10 % loss each way: {} in {:?}",
        run.stdout, run.elapsed
    );
    assert!(run.stdout.starts_with("200 "), "GET: {run}");
    if let Err(e) = compare_files(&file, &out) {
        panic!("GET body differs: {e}");
    }

    let echoed = h.dir().join("echo.out");
    let data = format!("@{}", path_str(&file));
    let url = format!("http://{STACK_IP}:{PORT}/echo");
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-o",
            path_str(&echoed),
            "-w",
            "%{http_code} %{size_upload} %{size_download}",
            &url,
        ],
    );
    run.expect_success("curl POST /echo with 10 % loss");
    eprintln!(
        "POST 4 MiB, 10 % loss each way: {} in {:?}",
        run.stdout, run.elapsed
    );
    assert!(run.stdout.starts_with("200 "), "POST: {run}");
    if let Err(e) = compare_files(&file, &echoed) {
        panic!("POST /echo body differs: {e}");
    }

    // The injector really dropped packets: the stats line at exit counts them.
    h.stop_server(SHORT_TIMEOUT);
    let log = h.server_log();
    let dropped = log
        .split("dropped: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        dropped.is_some_and(|n| n > 100),
        "expected the fault injector to have dropped packets; log:\n{log}"
    );
}
