//! Integration tests: what packet tools see of the internet layer (hping3 from the
//! kernel side of the TUN): a TTL-0 SYN is answered (RFC 1122 §3.2.1.7), an echo request
//! with a non-zero code is answered (RFC 1122 §3.2.2.6), a datagram claiming our own
//! address as source (LAND) is dropped and counted, and a burst of probes to a closed UDP
//! port gets a handful of port unreachables (the ICMP rate limit), counted in `/_stats`;
//! nmap's `ipidseq` finds no IP id sequence to use for an idle scan.
//!
//! Each test creates namespace `ts-<pid>-<n>` and TUN `tst<pid>x<n>`; see tests/common.
//! Run as root: `cargo test --release` (without root they print SKIPPED, unless `CI` is set).

mod common;

use common::*;

const PORT: u16 = 80;

/// hping3's "N packets received" (it prints its statistics on stderr).
fn received(run: &Run) -> u64 {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    all.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("packets transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no hping3 statistics in {run}"))
}

fn hping(h: &Harness, args: &[&str]) -> Run {
    let mut all = vec![STACK_IP];
    all.extend_from_slice(args);
    h.run_in_ns(SHORT_TIMEOUT, "hping3", &all)
}

/// One field of the ip section of `/_stats`.
fn ip_stat(h: &Harness, needle: &str) -> u64 {
    let run = h.curl(
        SHORT_TIMEOUT,
        &[&format!("http://{STACK_IP}:{PORT}/_stats")],
    );
    run.expect_success("curl /_stats");
    let at = run
        .stdout
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {}", run.stdout));
    run.stdout[at + needle.len()..]
        .trim_start_matches([' ', ':', '"'])
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn hping3_sees_linux_like_ip_and_icmp() {
    let Some(mut h) = Harness::new("hping3_sees_linux_like_ip_and_icmp", &["hping3", "nmap"])
    else {
        return;
    };
    h.serve(PORT, &[]);
    // `hping3 -S -p 80 -t 0`: three SYNs with TTL 0, three SYN-ACKs.
    let run = hping(
        &h,
        &["-S", "-p", "80", "-t", "0", "-c", "3", "-i", "u200000"],
    );
    assert_eq!(received(&run), 3, "TTL 0 SYNs: {run}");
    assert!(run.stdout.contains("flags=SA"), "{run}");
    // Echo requests with code 9 (nmap's OS probe) are answered.
    let run = hping(&h, &["--icmp", "-K", "9", "-c", "3", "-i", "u200000"]);
    assert_eq!(received(&run), 3, "echo code 9: {run}");
    // LAND: a SYN "from" 10.0.0.2 to 10.0.0.2:80 is dropped, counted.
    let run = hping(
        &h,
        &[
            "-S", "-p", "80", "-a", STACK_IP, "-s", "80", "-k", "-c", "3", "-i", "u100000",
        ],
    );
    assert!(run.status.is_some(), "hping3 LAND: {run}");
    assert_eq!(ip_stat(&h, "\"land\""), 3);
    // 300 probes to a closed UDP port within about 0.3 s: the burst of 6 per destination,
    // maybe one more, instead of 300 port unreachables.
    let run = hping(&h, &["--udp", "-p", "9", "-c", "300", "-i", "u1000"]);
    let got = received(&run);
    assert!((1..=7).contains(&got), "{got} port unreachables: {run}");
    let limited = ip_stat(&h, "\"icmp_rate_limited_host\"");
    assert_eq!(limited, 300 - got, "rate-limited count");
    // nmap's ipidseq (the idle-scan "zombie" test) finds no usable IP id sequence.
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "nmap",
        &["-Pn", "-p", "80", "--script", "ipidseq", STACK_IP],
    );
    run.expect_success("nmap --script ipidseq");
    let verdict = run
        .stdout
        .lines()
        .find(|l| l.contains("ipidseq:"))
        .unwrap_or_else(|| panic!("no ipidseq result: {run}"));
    assert!(verdict.contains("All zeros"), "{verdict}");
}
