//! Runs every packetdrill script in tests/packetdrill/ against the TCP endpoint, in
//! virtual time (tests/packetdrill/README.md lists which rule each script checks).
//! A FAIL or a runner error fails the test; an UNSUPPORTED result is allowed only for
//! the scripts listed in [`EXPECTED_UNSUPPORTED`].
//!
//! The other tests check the runner itself: a script that contradicts the stack must
//! fail, naming the line and both packets.

use std::path::PathBuf;

use tunstack::packetdrill::{run_file, run_script, Options, Verdict};

/// Scripts that need something the stack does not have yet, with what.
const EXPECTED_UNSUPPORTED: &[(&str, &str)] = &[("ecn-setup.pkt", "ECN")];

fn scripts() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/packetdrill");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/packetdrill exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_script_passes() {
    let all = scripts();
    assert!(all.len() >= 20, "only {} scripts found", all.len());
    let mut bad = Vec::new();
    for p in &all {
        let o = run_file(p, &Options::default());
        let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let expected = EXPECTED_UNSUPPORTED.iter().find(|(f, _)| *f == file);
        match (&o.verdict, expected) {
            (Verdict::Pass, None) => {}
            (Verdict::Unsupported(_, why), Some((_, what))) if why.contains(what) => {}
            _ => bad.push(o.to_string()),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

const HANDSHAKE: &str = "
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 8) = 0
   +0 < S 0:0(0) win 65535 <mss 1460>
   +0 > S. 0:0(0) ack 1 <mss 1460>
 +.01 < . 1:1(0) ack 1 win 65535
   +0 accept(3, ..., ...) = 4
";

fn run(tail: &str) -> Verdict {
    run_script("t.pkt", &format!("{HANDSHAKE}{tail}"), &Options::default()).verdict
}

fn fail_text(v: Verdict) -> (usize, String) {
    match v {
        Verdict::Fail(line, msg) => (line, msg),
        other => panic!("expected a FAIL, got {other:?}"),
    }
}

#[test]
fn the_handshake_alone_passes() {
    assert_eq!(run(""), Verdict::Pass);
}

#[test]
fn a_wrong_field_fails_with_both_packets() {
    let (line, msg) = fail_text(run("+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 2\n"));
    assert_eq!(line, 10);
    assert!(msg.contains("expected > P. 1:11(10) ack 2"), "{msg}");
    assert!(msg.contains("got > P. 1:11(10) ack 1 win"), "{msg}");
}

#[test]
fn an_early_or_late_packet_fails_on_timing() {
    // The delayed ACK leaves after 40 ms, not 10 ms nor 100 ms.
    let tail = "+.1 < P. 1:11(10) ack 1 win 65535\n";
    assert_eq!(
        run(&format!("{tail}+.04 > . 1:1(0) ack 11\n")),
        Verdict::Pass
    );
    let (_, msg) = fail_text(run(&format!("{tail}+.01 > . 1:1(0) ack 11\n")));
    assert!(msg.contains("timing error"), "{msg}");
    let (_, msg) = fail_text(run(&format!("{tail}+.1 > . 1:1(0) ack 11\n")));
    assert!(msg.contains("timing error"), "{msg}");
    // A wider tolerance lets the 10 ms line pass.
    let opts = Options {
        tolerance_usecs: 40_000,
        ..Options::default()
    };
    let text = format!("{HANDSHAKE}{tail}+.01 > . 1:1(0) ack 11\n");
    assert_eq!(run_script("t.pkt", &text, &opts).verdict, Verdict::Pass);
}

#[test]
fn an_unexpected_packet_fails_the_next_expectation() {
    // Out-of-order data draws an immediate duplicate ACK the script does not list.
    let (_, msg) = fail_text(run(
        "+.1 < . 101:201(100) ack 1 win 65535\n+0 write(4, ..., 5) = 5\n+0 > P. 1:6(5) ack 1\n",
    ));
    assert!(msg.contains("got > . 1:1(0) ack 1"), "{msg}");
}

#[test]
fn a_wrong_result_or_errno_fails() {
    let (_, msg) = fail_text(run("+0 write(4, ..., 10) = 9\n"));
    assert!(msg.contains("write(): expected result 9, got 10"), "{msg}");
    let (_, msg) = fail_text(run(
        "+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n+0 read(4, ..., 10) = -1 ECONNRESET\n",
    ));
    assert!(msg.contains("got -1 EAGAIN"), "{msg}");
}

#[test]
fn unknown_calls_and_options_are_unsupported_not_failed() {
    let v = run("+0 setsockopt(4, SOL_TCP, TCP_CONGESTION, \"bbr\", 3) = 0\n");
    assert!(
        matches!(&v, Verdict::Unsupported(9, m) if m.contains("TCP_CONGESTION")),
        "{v:?}"
    );
    let v = run("+0 epoll_create(1) = 5\n");
    assert!(
        matches!(&v, Verdict::Unsupported(9, m) if m.contains("epoll_create")),
        "{v:?}"
    );
    let v = run("+0 < . 1:1(0) ack 1 win 65535 <md5 abc>\n");
    assert!(
        matches!(&v, Verdict::Unsupported(9, m) if m.contains("md5")),
        "{v:?}"
    );
}

#[test]
fn malformed_scripts_are_runner_errors() {
    let v = run("+0 < S 0:10(5) win 1\n");
    assert!(
        matches!(&v, Verdict::Error(9, m) if m.contains("inconsistent")),
        "{v:?}"
    );
}

#[test]
fn broken_scripts_never_panic() {
    // Every script cut short at many places, and with a line dropped: whatever the
    // verdict, the runner returns one.
    for p in scripts() {
        let text = std::fs::read_to_string(&p).expect("readable");
        let cuts = text.char_indices().map(|(i, _)| i).step_by(13);
        for cut in cuts {
            let _ = run_script("cut.pkt", &text[..cut], &Options::default());
        }
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let mut t: Vec<&str> = lines.clone();
            t.remove(skip);
            let _ = run_script("skip.pkt", &t.join("\n"), &Options::default());
        }
    }
    let huge = "+0 read(4, ..., 99999999999) = 1\n+0 < P. 1:4000000001(4000000000) ack 1 win 1\n";
    assert!(matches!(run(huge), Verdict::Fail(..) | Verdict::Error(..)));
}

#[test]
fn sysctl_lines_set_the_configuration() {
    // Linux derives its window scale from tcp_rmem's maximum; so does the mapping.
    let text = "`sysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\"\n\
                sysctl -q net.ipv4.tcp_timestamps=0\n\
                ip tcp_metrics flush all`\n\
        0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
       +0 bind(3, ..., ...) = 0\n\
       +0 listen(3, 1) = 0\n\
       +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>\n\
       +0 > S. 0:0(0) ack 1 <mss 1460,sackOK,nop,wscale 8>\n";
    let o = run_script("t.pkt", text, &Options::default());
    assert_eq!(o.verdict, Verdict::Pass, "{o}");
    assert_eq!(
        o.skipped.len(),
        1,
        "the ip command is listed: {:?}",
        o.skipped
    );
    let v = run_script(
        "t.pkt",
        "`sysctl -q net.ipv4.tcp_sack=0`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n",
        &Options::default(),
    )
    .verdict;
    assert!(
        matches!(&v, Verdict::Unsupported(1, m) if m.contains("tcp_sack")),
        "{v:?}"
    );
}

#[test]
fn a_blocking_call_returns_when_the_script_says() {
    let text = "
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...0.2 accept(3, ..., ...) = 4
  +.1 < S 0:0(0) win 65535 <mss 1460>
   +0 > S. 0:0(0) ack 1 <...>
  +.1 < . 1:1(0) ack 1 win 65535
";
    assert_eq!(
        run_script("t.pkt", text, &Options::default()).verdict,
        Verdict::Pass
    );
    // Returning at 0.2 s is not returning at 0.3 s.
    let late = text.replace("+0...0.2 accept", "+0...0.3 accept");
    let v = run_script("t.pkt", &late, &Options::default()).verdict;
    assert!(
        matches!(&v, Verdict::Fail(5, m) if m.contains("system call return at 0.300000")),
        "{v:?}"
    );
}
