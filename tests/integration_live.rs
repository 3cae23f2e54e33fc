//! The live view (`serve --live`): the page in a real headless Chromium watching a curl,
//! and the event stream's rules (no tracing while nobody watches, history for a late
//! viewer, its own connections left out) — the real binary in a network namespace.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{cmd, run_bounded, tunstack_bin, Harness, SHORT_TIMEOUT, STACK_IP};

/// `curl URL` in the namespace; returns curl's local port (the peer the server sees).
fn curl_port(h: &Harness, url: &str) -> u16 {
    let run = h.curl(
        Duration::from_secs(20),
        &["-o", "/dev/null", "-w", "%{local_port} %{http_code}", url],
    );
    run.expect_success(&format!("curl {url}"));
    let (port, status) = run.stdout.trim().split_once(' ').expect("port and status");
    assert_eq!(status, "200", "curl {url}");
    port.parse().expect("local port")
}

/// Poll `file` (a helper's log) until `done` holds, bounded.
fn wait_file(file: &Path, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting on {}:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_view_in_headless_chromium_shows_a_curl_as_it_happens() {
    let Some(mut h) = Harness::new(
        "live_view_in_headless_chromium",
        &["python3", "chromium", "chromedriver"],
    ) else {
        return;
    };
    h.serve(80, &["--live"]);
    let profile = h.dir().join("chromium-profile");
    std::fs::create_dir_all(&profile).expect("profile dir");
    let shot = h.dir().join("live-view.png");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/live_browser_driver.py");
    let page = format!("http://{STACK_IP}/_live");
    let target = format!("http://{STACK_IP}/?live-test");
    let mut c = h.ns().command("python3");
    c.arg(&driver)
        .args([&page, &target])
        .arg(&profile)
        .arg(&shot);
    let run = run_bounded(c, Duration::from_secs(240));
    let log = h.server_log();
    assert!(run.success(), "driver failed: {run}\nserver log:\n{log}");
    let out = &run.stdout;
    let field = |line: &str, i: usize| line.split('\t').nth(i).unwrap_or_default().to_string();
    let curl = out
        .lines()
        .find(|l| l.starts_with("CURL\t"))
        .expect("CURL line");
    assert_eq!(field(curl, 1), "0", "{out}");
    assert_eq!(field(curl, 2), "200", "{out}");
    let port = field(curl, 3);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("ROW\t")).collect();
    let mine = rows
        .iter()
        .find(|r| field(r, 1) == format!("10.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("no row for curl's port {port}:\n{out}"));
    // The server's side of the connection, every state it went through, in order.
    let history = field(mine, 3);
    for pair in [
        "SYN-RECEIVED → ESTABLISHED",
        "ESTABLISHED → CLOSE-WAIT",
        "LAST-ACK → CLOSED",
    ] {
        assert!(history.contains(pair), "{pair:?} not in {history:?}\n{out}");
    }
    assert_eq!(field(mine, 2), "CLOSED", "{out}");
    assert_eq!(field(mine, 4), "GET /?live-test HTTP/1.1", "{out}");
    // The page's own connections (the page, its event stream, the ladder) are not shown.
    for r in &rows {
        assert!(!field(r, 4).starts_with("GET /_live"), "{r}\n{out}");
    }
    // Packets decoded layer by layer, with the request line in the data layer.
    // The lines of one panel, as the driver printed them.
    let panel = |prefix: &str| -> String {
        out.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let packets = panel("PACKETS\t");
    for needle in [
        "bytes from the TUN",
        "10.0.0.1 → 10.0.0.2  ttl 64",
        &format!("{port} → 80  [F.]"),
        &format!("80 → {port}  [."),
        "ack ",
        "win ",
    ] {
        assert!(packets.contains(needle), "{needle:?} not in:\n{packets}");
    }
    let counters = panel("COUNTERS\t");
    assert!(counters.contains("segments_in: "), "{counters}");
    let ladder = out
        .lines()
        .find(|l| l.starts_with("LADDER\t"))
        .expect("LADDER line");
    assert!(ladder.ends_with(&format!("10.0.0.1:{port}")), "{ladder}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // The docs' figure: `TUNSTACK_LIVE_SCREENSHOT=docs/img/live-view.png` keeps it.
    if let Some(keep) = std::env::var_os("TUNSTACK_LIVE_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy the screenshot");
    }
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
    let log = h.server_log();
    assert!(log.contains("live: viewer disconnected"), "{log}");
}

/// `curl -N /_live/events` in the namespace (for at most 40 s) as helper `name`; returns
/// the file its stream goes to.
fn start_viewer(h: &mut Harness, name: &str) -> std::path::PathBuf {
    let events = format!("http://{STACK_IP}/_live/events");
    h.spawn_in_ns(name, "curl", &["-sS", "-N", "--max-time", "40", &events]);
    h.dir().join(format!("{name}.log"))
}

#[test]
fn live_events_only_while_watched_and_history_for_a_late_viewer() {
    let Some(mut h) = Harness::new("live_events_only_while_watched", &[]) else {
        return;
    };
    h.serve(80, &["--live"]);
    let url = format!("http://{STACK_IP}/");
    // Nobody watches: nothing is recorded.
    let unwatched = curl_port(&h, &url);
    // A viewer (curl reading the stream for at most 40 s) ...
    let viewer1 = start_viewer(&mut h, "viewer1");
    wait_file(&viewer1, SHORT_TIMEOUT, |t| t.contains("\"k\":\"viewer\""));
    // ... sees a request made while it watches, to its end.
    let watched = curl_port(&h, &url);
    let closed = format!("10.0.0.1:{watched}  LAST-ACK → CLOSED");
    let seen = wait_file(&viewer1, SHORT_TIMEOUT, |t| t.contains(&closed));
    assert!(seen.contains("\"k\":\"stats\""), "counters are pushed");
    assert!(
        seen.contains(&format!(
            "\"conn\":\"10.0.0.1:{watched}\",\"k\":\"pkt\",\"dir\":\"in\""
        )),
        "{seen}"
    );
    assert!(seen.contains("GET / HTTP/1.1"), "{seen}");
    assert!(
        !seen.contains(&format!("10.0.0.1:{unwatched}")),
        "a connection made while nobody watched was recorded:\n{seen}"
    );
    // Its own stream is left out: it is marked once, and no packet of it is shown.
    let me = seen
        .split("\"k\":\"viewer\",\"conn\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the viewer event names the stream's peer")
        .to_string();
    assert!(
        !seen.contains(&format!("\"conn\":\"{me}\",\"k\":\"pkt\"")),
        "{seen}"
    );
    // The viewer leaves; the tracer is detached again.
    h.stop_helpers();
    h.wait_log(SHORT_TIMEOUT, |l| l.contains("live: viewer disconnected"));
    let unwatched2 = curl_port(&h, &url);
    // A late viewer gets the history kept from when someone watched, and nothing since.
    let viewer2 = start_viewer(&mut h, "viewer2");
    let late = wait_file(&viewer2, SHORT_TIMEOUT, |t| t.contains("\"k\":\"stats\""));
    assert!(late.contains(&closed), "history replayed:\n{late}");
    assert!(!late.contains(&format!("10.0.0.1:{unwatched2}")), "{late}");
    h.stop_helpers();
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
}

#[test]
fn live_needs_the_event_loop() {
    // Refused before any device is created: nothing touches the network.
    let run = run_bounded(
        cmd(
            tunstack_bin().to_str().expect("utf-8 path"),
            ["serve", "--live", "--threaded", "--tun", "tsnotcreated0"],
        ),
        SHORT_TIMEOUT,
    );
    assert!(!run.success(), "{run}");
    assert!(run.stderr.contains("--live needs the event loop"), "{run}");
}
