//! The WAN emulator end to end: `scripts/wan.sh` brings up two endpoint namespaces joined
//! by `tunstack-wan`, and `ping` from one to the other sees the configured delay and loss.
//! Each test uses its own three namespaces (`tw-<pid>-<n>-{a,b,e}`) and removes them, also
//! when it fails.
//!
//! Run as root: `cargo test --release --test integration_wan`.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static N: AtomicU32 = AtomicU32::new(0);

/// One emulated path; `wan.sh down` on drop.
struct Wan {
    name: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/wan.sh")
}

fn wan_sh(args: &[&str], limit: Duration) -> Run {
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .env("TUNSTACK_WAN_BIN", env!("CARGO_BIN_EXE_tunstack-wan"));
    run_bounded(c, limit)
}

impl Wan {
    fn up(options: &[&str]) -> Wan {
        let name = format!(
            "tw-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let wan = Wan { name };
        let mut args = vec!["up", wan.name.as_str()];
        args.extend_from_slice(options);
        wan_sh(&args, SHORT_TIMEOUT).expect_success("wan.sh up");
        wan
    }

    /// `ping` from namespace A to B's address (10.201.2.1, wan.sh's default --net).
    fn ping(&self, args: &[&str]) -> Run {
        let mut all = vec!["exec", self.name.as_str(), "a", "ping", "-n"];
        all.extend_from_slice(args);
        all.push("10.201.2.1");
        wan_sh(&all, SHORT_TIMEOUT)
    }

    /// The emulator's counter `key` for direction `dir` (`a_to_b` or `b_to_a`).
    fn counter(&self, dir: &str, key: &str) -> u64 {
        let run = wan_sh(&["stats", &self.name], SHORT_TIMEOUT);
        run.expect_success("wan.sh stats");
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(dir))
            .unwrap_or_else(|| panic!("no {dir} line in {run}"));
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let run = wan_sh(&["down", &self.name], SHORT_TIMEOUT);
        if !run.success() {
            eprintln!("wan.sh down {} failed: {run}", self.name);
        }
    }
}

/// `rtt min/avg/max/mdev = 80.1/80.4/81.0/0.2 ms` → (min, avg, max) in ms.
fn rtt_summary(out: &str) -> (f64, f64, f64) {
    let line = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("no rtt summary in {out}"));
    let nums: Vec<f64> = line
        .split('=')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.split('/').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    assert!(nums.len() >= 3, "cannot parse {line}");
    (nums[0], nums[1], nums[2])
}

/// `40 packets transmitted, 23 received, ...` → 23.
fn received(out: &str) -> u64 {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in {out}"))
}

#[test]
fn ping_rtt_matches_the_configured_delay() {
    if prerequisites("ping_rtt_matches_the_configured_delay", &["ping"]).is_none() {
        return;
    }
    let _heavy = heavy_lock();
    let wan = Wan::up(&["--rtt", "80", "--jitter", "4"]);
    let run = wan.ping(&["-c", "10", "-i", "0.2", "-W", "5"]);
    run.expect_success("ping through the emulator");
    let (min, avg, max) = rtt_summary(&run.stdout);
    // 40 ms each way plus up to 4 ms of jitter each way; a loaded machine adds some
    // scheduling delay, never less than the configured delay.
    assert!(min >= 80.0, "RTT below the configured delay: {run}");
    assert!(avg <= 80.0 + 8.0 + 40.0, "RTT far above the delay: {run}");
    assert!(max >= min, "{run}");
    assert_eq!(wan.counter("a_to_b", "packets_out"), 10);
    assert_eq!(wan.counter("b_to_a", "packets_out"), 10);
    assert_eq!(wan.counter("a_to_b", "dropped"), 0);
}

#[test]
fn loss_is_applied_and_counted() {
    if prerequisites("loss_is_applied_and_counted", &["ping"]).is_none() {
        return;
    }
    let _heavy = heavy_lock();
    let wan = Wan::up(&["--rtt", "2", "--loss", "30", "--seed", "5"]);
    let sent = 40;
    let run = wan.ping(&["-c", &sent.to_string(), "-i", "0.05", "-W", "2"]);
    // ping exits 1 when some replies are missing: that is the point here.
    assert!(run.status.is_some(), "ping ran out of time: {run}");
    let got = received(&run.stdout);
    let dropped = wan.counter("a_to_b", "dropped") + wan.counter("b_to_a", "dropped");
    // Only ping's packets cross the path (IPv6 is off on both TUNs): every missing reply
    // is a request or a reply the emulator dropped, and nothing else was dropped.
    assert_eq!(sent - got, dropped, "{run}");
    assert_eq!(wan.counter("b_to_a", "packets_out"), got);
    assert_eq!(
        wan.counter("a_to_b", "packets_in"),
        sent,
        "every request reached the emulator"
    );
    // 30 % each way loses 1 − 0.7² = 51 % of the round trips on average.
    assert!(
        (8..=32).contains(&dropped),
        "{dropped} of {sent} lost: {run}"
    );
}
