//! `tunstack diagram` on a live capture: serve with `--pcap` in a namespace, curl it,
//! SIGTERM, draw. The SVG must be well-formed XML and show the handshake, the HTTP
//! exchange and the close; keep-alive must show as one connection for two URLs, and
//! HTTP/1.0 as a connection the server closes.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn draw(capture: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(tunstack_bin());
    c.arg("diagram").arg(capture).args(args);
    let run = run_bounded(c, SHORT_TIMEOUT);
    run.expect_success("tunstack diagram");
    run
}

/// Parses with Python's XML parser (a real one, not ours); panics with its message.
fn assert_xml(path: &Path) {
    let run = run_bounded(
        cmd(
            "python3",
            [
                "-c",
                "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.tag)",
                path.to_str().unwrap(),
            ],
        ),
        SHORT_TIMEOUT,
    );
    run.expect_success("python3 XML parse of the SVG");
    assert!(
        run.stdout.contains("{http://www.w3.org/2000/svg}svg"),
        "root element: {run}"
    );
}

/// The summary line `tunstack diagram` prints for each connection, by position.
fn summaries(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("connection "))
        .map(str::to_string)
        .collect()
}

#[test]
fn diagram_of_live_curl_runs() {
    let Some(mut h) = Harness::new("diagram_of_live_curl_runs", &["python3"]) else {
        return;
    };
    let capture = h.dir().join("cap.pcap");
    h.serve(80, &["--pcap", capture.to_str().unwrap()]);
    // 1. One GET (the readiness probes before it are connections of their own).
    h.curl(
        SHORT_TIMEOUT,
        &["-sS", "-o", "/dev/null", "http://10.0.0.2/"],
    )
    .expect_success("curl /");
    // 2. Two URLs in one curl: HTTP/1.1 keeps the connection open for the second.
    h.curl(
        SHORT_TIMEOUT,
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "http://10.0.0.2/",
            "http://10.0.0.2/",
        ],
    )
    .expect_success("curl / /");
    // 3. HTTP/1.0: the server closes after the response. curl closes as soon as it has
    // Content-Length bytes, so whose FIN comes first is a race; the connection is its own.
    h.curl(
        SHORT_TIMEOUT,
        &["-sS", "--http1.0", "-o", "/dev/null", "http://10.0.0.2/"],
    )
    .expect_success("curl --http1.0 /");
    // 4. HTTP/1.0 from a client that reads until the server closes: our FIN comes first,
    // every time.
    h.run_in_ns(
        SHORT_TIMEOUT,
        "bash",
        &[
            "-c",
            "exec 3<>/dev/tcp/10.0.0.2/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 >/dev/null",
        ],
    )
    .expect_success("HTTP/1.0 over /dev/tcp");
    let status = h.stop_server(SHORT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not exit 0 on SIGTERM: {status:?}\n{}",
        h.server_log()
    );

    let svg = h.dir().join("out.svg");
    let run = draw(&capture, &["-o", svg.to_str().unwrap()]);
    assert_xml(&svg);
    let text = std::fs::read_to_string(&svg).expect("read SVG");
    for needle in [
        ">[SYN] seq=0 ",
        ">[SYN, ACK] seq=0 ack=1 ",
        ">[ACK] seq=1 ack=1 ",
        ">GET / HTTP/1.1<",
        ">GET / HTTP/1.0<",
        ">HTTP/1.1 200 OK<",
        ">[FIN, ACK] ",
        ">SYN-SENT<",
        ">SYN-RECEIVED<",
        ">ESTABLISHED<",
        ">FIN-WAIT-1<",
        ">FIN-WAIT-2<",
        ">CLOSE-WAIT<",
        ">LAST-ACK<",
        ">TIME-WAIT<",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from the SVG");
    }

    let lines = summaries(&run);
    assert!(lines.len() >= 4, "{}", run.stderr);
    let last = &lines[lines.len() - 4..];
    // curl closes its HTTP/1.1 connections (client TIME-WAIT, our LAST-ACK → CLOSED);
    // when we close first (HTTP/1.0, client reading to EOF) we keep the TIME-WAIT.
    for (i, ending) in [
        (0, "TIME-WAIT / CLOSED"),
        (1, "TIME-WAIT / CLOSED"),
        (3, "CLOSED / TIME-WAIT"),
    ] {
        assert!(last[i].ends_with(&format!("ends {ending}")), "{}", last[i]);
    }

    // The keep-alive connection alone: two requests, two responses, one handshake.
    let n = lines.len() - 2;
    let one = h.dir().join("keepalive.svg");
    draw(
        &capture,
        &["--connection", &n.to_string(), "-o", one.to_str().unwrap()],
    );
    assert_xml(&one);
    let text = std::fs::read_to_string(&one).expect("read SVG");
    assert_eq!(text.matches(">GET / HTTP/1.1<").count(), 2, "{text}");
    assert_eq!(text.matches(">HTTP/1.1 200 OK<").count(), 2);
    assert_eq!(text.matches(">[SYN] ").count(), 1);

    // The same capture rewritten by Wireshark's editcap with nanosecond timestamps (magic
    // a1b23c4d) draws the same connections.
    if std::path::Path::new("/usr/bin/editcap").exists() {
        let nsec = h.dir().join("cap-nsec.pcap");
        let run = run_bounded(
            cmd(
                "editcap",
                [
                    "-F",
                    "nsecpcap",
                    capture.to_str().unwrap(),
                    nsec.to_str().unwrap(),
                ],
            ),
            SHORT_TIMEOUT,
        );
        run.expect_success("editcap -F nsecpcap");
        let again = draw(&nsec, &["-o", h.dir().join("nsec.svg").to_str().unwrap()]);
        assert_eq!(summaries(&again), lines, "nanosecond pcap");
    }

    // The HTML page: every connection, self-contained.
    let html = h.dir().join("all.html");
    draw(&capture, &["--html", "-o", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).expect("read HTML");
    assert_eq!(page.matches("<svg xmlns").count(), lines.len());
    assert!(!page.contains("<script") && !page.contains("src="));
}

/// A capture that is not ours: tshark on the namespace's loopback (link type Ethernet,
/// and TCP checksums left for the "hardware" to fill in, so many do not verify) of curl
/// talking to Python's http.server. The diagram must still show the connection.
#[test]
fn diagram_of_a_kernel_loopback_capture() {
    let Some(mut h) = Harness::new(
        "diagram_of_a_kernel_loopback_capture",
        &["python3", "tshark"],
    ) else {
        return;
    };
    let www = h.dir().join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    std::fs::write(www.join("hello.txt"), "hello from the kernel\n").expect("write file");
    h.start_kernel_http_server(8080, &www);

    // tshark announces "Capturing on" a moment before dumpcap really records, and it
    // buffers what it writes: so capture one curl, stop tshark (SIGTERM flushes and closes
    // the file), and look. If the connection was missed, capture again (bounded).
    let capture = h.dir().join("lo.pcap");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let _ = std::fs::remove_file(&capture);
        let log_path = h.dir().join(format!("tshark-{attempt}.log"));
        let log = std::fs::File::create(&log_path).expect("tshark log");
        let mut c = h.ns().command("tshark");
        c.args(["-i", "lo", "-F", "pcap", "-w", capture.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let mut tshark = ChildGuard::new(c.spawn().expect("start tshark"), "tshark");
        // Newer tshark says "Capture started." once dumpcap records; older ones only
        // "Capturing on …", a little early: give those a second more.
        let start = std::time::Instant::now();
        let mut announced: Option<std::time::Instant> = None;
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("Capture started") {
                break;
            }
            if text.contains("Capturing on") {
                let at = *announced.get_or_insert_with(std::time::Instant::now);
                if at.elapsed() > std::time::Duration::from_secs(1) {
                    break;
                }
            }
            assert!(
                start.elapsed() < READY_TIMEOUT && tshark.try_wait().is_none(),
                "tshark did not start capturing:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        h.curl(
            SHORT_TIMEOUT,
            &["-sS", "-o", "/dev/null", "http://127.0.0.1:8080/hello.txt"],
        )
        .expect_success("curl the kernel's server");
        // dumpcap writes what it captured every so often, and a SIGTERM right after the
        // exchange can lose what it has not written yet: wait (bounded) until the file shows
        // the connection, then stop it; if it never does, stop it and look once more.
        let shows_connection = || {
            let mut c = Command::new(tunstack_bin());
            c.arg("diagram").arg(&capture).args(["-o", "/dev/null"]);
            let run = run_bounded(c, SHORT_TIMEOUT);
            (run.success() && run.stderr.contains("connection 1:"), run)
        };
        let start = std::time::Instant::now();
        let mut seen = false;
        while start.elapsed() < std::time::Duration::from_secs(5) {
            if shows_connection().0 {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        tshark.terminate(SHORT_TIMEOUT);
        let (now_seen, run) = shows_connection();
        if seen || now_seen {
            break;
        }
        assert!(attempt < 5, "the capture never held the connection: {run}");
    }

    let svg = h.dir().join("lo.svg");
    let run = draw(&capture, &["-o", svg.to_str().unwrap()]);
    assert_xml(&svg);
    let text = std::fs::read_to_string(&svg).expect("read SVG");
    for needle in [
        ">[SYN] seq=0 ",
        ">[SYN, ACK] seq=0 ack=1 ",
        ">GET /hello.txt HTTP/1.1<",
        ">SYN-SENT<",
        ">ESTABLISHED<",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from the SVG\n{}",
            run.stderr
        );
    }
    assert!(
        text.contains("HTTP/1.0 200 OK<") || text.contains("HTTP/1.1 200 OK<"),
        "no status line in the SVG"
    );
    eprintln!(
        "loopback capture: checksums offloaded: {}; {}",
        text.contains("checksums offloaded"),
        run.stderr.trim()
    );
}
