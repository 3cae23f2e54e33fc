//! Command-line mistakes are caught before the device exists: the message names the flag
//! and its value, and no TUN ever appears (watched with `ip monitor link`). A second
//! `serve` on a subnet another device already routes is refused the same way.
//!
//! Each test creates namespace `ts-<pid>-<n>` and TUN `tst<pid>x<n>`; see tests/common.

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

/// `ip monitor link` in the test's namespace, so a test can tell whether a device was
/// created at all (even one removed again before the command exits).
struct LinkWatch<'a> {
    h: &'a Harness,
    marks: u32,
}

impl<'a> LinkWatch<'a> {
    /// Start the monitor and wait until it reports a device we add ourselves.
    fn start(h: &'a mut Harness) -> LinkWatch<'a> {
        // Line-buffered: into a file, `ip monitor` would hold its lines back.
        h.spawn_in_ns("monitor", "stdbuf", &["-oL", "ip", "monitor", "link"]);
        let mut w = LinkWatch { h, marks: 0 };
        w.mark();
        w
    }

    /// Add and delete a (persistent, unused) TUN device of our own and wait until the
    /// monitor has shown its deletion: every event before it is in the log by then.
    fn mark(&mut self) {
        self.marks += 1;
        let name = format!("tsmark{}", self.marks);
        let start = Instant::now();
        loop {
            self.h
                .run_in_ns(
                    SHORT_TIMEOUT,
                    "ip",
                    &["tuntap", "add", "mode", "tun", &name],
                )
                .expect_success("ip tuntap add");
            self.h
                .run_in_ns(SHORT_TIMEOUT, "ip", &["link", "del", &name]);
            let log = self.h.helper_log("monitor");
            if log
                .lines()
                .any(|l| l.starts_with("Deleted") && l.contains(&name))
            {
                return;
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "ip monitor never reported {name}: {log}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether a device named `name` appeared since the monitor started.
    fn saw(&mut self, name: &str) -> bool {
        self.mark();
        self.h.helper_log("monitor").contains(name)
    }
}

/// `tunstack serve --tun TUN --port 80 EXTRA` in the test's namespace, bounded.
fn run_serve(h: &Harness, tun: &str, extra: &[&str]) -> Run {
    let bin = tunstack_bin();
    let mut args = vec!["serve", "--tun", tun, "--port", "80"];
    args.extend_from_slice(extra);
    h.run_in_ns(SHORT_TIMEOUT, bin.to_str().expect("utf-8 path"), &args)
}

/// Bad flags fail at once, naming the flag and the value or path, and create no TUN.
#[test]
fn bad_flags_are_refused_before_the_tun_exists() {
    let Some(mut h) = Harness::new("bad_flags_are_refused_before_the_tun_exists", &["ip"]) else {
        return;
    };
    let tun = h.tun().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--root",
                "/nonexistent",
                "--host-ip",
                HOST_CIDR,
                "--ip",
                STACK_IP,
            ],
            "--root /nonexistent: No such file or directory",
        ),
        (
            &["--host-ip", "10.0.0.1/33", "--ip", STACK_IP],
            "--host-ip 10.0.0.1/33: prefix \"33\" is not a number from 0 to 32",
        ),
        (
            &["--host-ip", "10.0.0.1", "--ip", STACK_IP],
            "--host-ip 10.0.0.1: expected ADDRESS/PREFIX",
        ),
        (
            &["--host-ip", HOST_CIDR, "--ip", "10.9.9.2"],
            "--ip 10.9.9.2 is outside --host-ip 10.0.0.1/24",
        ),
        (
            &["--host-ip", HOST_CIDR, "--ip", HOST_IP],
            "--ip 10.0.0.1 is the kernel side's own address",
        ),
        (
            &[
                "--host-ip",
                HOST_CIDR,
                "--ip",
                STACK_IP,
                "--pcap",
                "/nonexistent/x.pcap",
            ],
            "--pcap /nonexistent/x.pcap: the directory /nonexistent does not exist",
        ),
    ];
    let mut watch = LinkWatch::start(&mut h);
    for (extra, says) in cases {
        let run = run_serve(watch.h, &tun, extra);
        assert!(run.status.is_some(), "serve {extra:?} hung: {run}");
        assert!(!run.success(), "serve {extra:?} must fail: {run}");
        assert!(
            run.stderr.contains(says),
            "serve {extra:?} should say {says:?}: {run}"
        );
        assert!(
            run.elapsed < Duration::from_secs(20),
            "serve {extra:?} should fail at once: {run}"
        );
    }
    assert!(
        !watch.saw(&tun),
        "a TUN was created: {}",
        watch.h.helper_log("monitor")
    );
}

/// A second `serve` on the subnet the first one's TUN routes is refused with a message
/// naming that device; the first keeps serving.
#[test]
fn a_second_serve_on_a_routed_subnet_is_refused() {
    let Some(mut h) = Harness::new(
        "a_second_serve_on_a_routed_subnet_is_refused",
        &["curl", "ip"],
    ) else {
        return;
    };
    h.serve(80, &[]);
    let first = h.tun().to_string();
    let second = format!("{first}b");
    let mut watch = LinkWatch::start(&mut h);
    let run = run_serve(
        watch.h,
        &second,
        &["--host-ip", HOST_CIDR, "--ip", STACK_IP],
    );
    assert!(run.status.is_some(), "the second serve hung: {run}");
    assert!(!run.success(), "the second serve must fail: {run}");
    let says = format!("10.0.0.0/24 is already routed to {first} in this network namespace");
    assert!(run.stderr.contains(&says), "should say {says:?}: {run}");
    assert!(
        !watch.saw(&second),
        "{second} was created: {}",
        watch.h.helper_log("monitor")
    );
    let ok = watch.h.curl(
        Duration::from_secs(20),
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{STACK_IP}/"),
        ],
    );
    assert_eq!(
        ok.stdout.trim(),
        "200",
        "the first server still serves: {ok}"
    );
}

/// `tunstack get --help` shows an example and says where the URL must point.
#[test]
fn get_help_has_an_example_and_says_where_the_url_points() {
    let run = run_bounded(
        cmd(
            tunstack_bin().to_str().expect("utf-8 path"),
            ["get", "--help"],
        ),
        SHORT_TIMEOUT,
    );
    run.expect_success("tunstack get --help");
    for says in [
        "the URL must name a host on the kernel side of the TUN",
        "Example",
        "tunstack get http://10.0.0.1:8000/ -o index.html",
    ] {
        assert!(run.stdout.contains(says), "should say {says:?}: {run}");
    }
}

/// On a terminal `get` draws a progress bar; the line is ended before the next message.
#[test]
fn get_ends_its_progress_line_before_the_next_message() {
    let Some(mut h) = Harness::new(
        "get_ends_its_progress_line_before_the_next_message",
        &["python3", "script"],
    ) else {
        return;
    };
    let www = h.dir().join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    write_pattern_file(&www.join("big.bin"), 4 * MIB, 7);
    h.start_kernel_http_server(8000, &www);
    let out = h.dir().join("big.out");
    // `script` gives the command a terminal (a pty) and copies what it printed.
    let command = format!(
        "{} get http://{HOST_IP}:8000/big.bin --tun {} --host-ip {HOST_CIDR} --ip {STACK_IP} -o {}",
        tunstack_bin().display(),
        h.tun(),
        out.display()
    );
    let run = h.run_in_ns(SHORT_TIMEOUT, "script", &["-qec", &command, "/dev/null"]);
    run.expect_success("tunstack get on a terminal");
    let text = &run.stdout;
    let bar = text
        .rfind("eta")
        .unwrap_or_else(|| panic!("no progress bar: {run}"));
    let message = text
        .rfind("get: 200 OK")
        .unwrap_or_else(|| panic!("no result: {run}"));
    assert!(bar < message, "{run}");
    assert!(
        text[bar..message].contains('\n'),
        "the progress line runs into the next message: {:?}",
        &text[bar..]
    );
}
