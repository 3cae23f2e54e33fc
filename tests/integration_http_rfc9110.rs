//! Integration tests: what curl sees of conditional and range requests (RFC 9110 §13,
//! §14) and of the HTTP version (RFC 9112 §2.3), against the real binary serving `--root`
//! in its own namespace, on both runtimes.
//!
//! Each test creates namespace `ts-<pid>-<n>` and TUN `tst<pid>x<n>`; see tests/common.
//! Run as root: `cargo test --release` (without root they print SKIPPED, unless `CI` is set).

mod common;

use common::*;

const PORT: u16 = 80;

fn url(path: &str) -> String {
    format!("http://{STACK_IP}:{PORT}{path}")
}

/// `curl -D - -o /dev/null ARGS URL`: the status and the response's fields.
fn head_of(h: &Harness, args: &[&str], path: &str) -> (u16, Vec<(String, String)>) {
    let mut all = vec!["-D", "-", "-o", "/dev/null"];
    all.extend_from_slice(args);
    let u = url(path);
    all.push(&u);
    let run = h.curl(SHORT_TIMEOUT, &all);
    run.expect_success(&format!("curl {all:?}"));
    parse_header_dump(&run.stdout)
}

/// A server on `--root` with a 3 MiB pattern file, on the default runtime or `--threaded`.
fn serve_root(test: &str, threaded: bool) -> Option<(Harness, std::path::PathBuf)> {
    let mut h = Harness::new(test, &[])?;
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("big.bin");
    write_pattern_file(&file, 3 << 20, 7);
    let root_arg = root.to_str().unwrap().to_string();
    let mut extra = vec!["--root", root_arg.as_str()];
    if threaded {
        extra.push("--threaded");
    }
    h.serve(PORT, &extra);
    Some((h, file))
}

fn conditional_requests(test: &str, threaded: bool) {
    let Some((h, _)) = serve_root(test, threaded) else {
        return;
    };
    let (status, fields) = head_of(&h, &[], "/big.bin");
    assert_eq!(status, 200);
    let etag = header(&fields, "etag").expect("an ETag").to_string();
    assert!(etag.starts_with('"'), "a strong tag: {etag}");
    assert_eq!(header(&fields, "accept-ranges"), Some("bytes"));
    let lm = header(&fields, "last-modified")
        .expect("Last-Modified")
        .to_string();
    let inm = format!("If-None-Match: {etag}");
    assert_eq!(head_of(&h, &["-H", &inm], "/big.bin").0, 304);
    assert_eq!(head_of(&h, &["-H", "If-None-Match: *"], "/big.bin").0, 304);
    // If-Modified-Since is ignored when If-None-Match is present (RFC 9110 §13.1.3).
    let ims = format!("If-Modified-Since: {lm}");
    assert_eq!(head_of(&h, &["-H", &ims], "/big.bin").0, 304);
    let (status, _) = head_of(
        &h,
        &["-H", "If-None-Match: \"old\"", "-H", &ims],
        "/big.bin",
    );
    assert_eq!(status, 200);
    assert_eq!(head_of(&h, &["-H", "If-Match: \"old\""], "/big.bin").0, 412);
    let im = format!("If-Match: {etag}");
    assert_eq!(head_of(&h, &["-H", &im], "/big.bin").0, 200);
    // HTTP/1.2 is answered as HTTP/1.1; HTTP/3.0 in the request line gets 505.
    let run = h.run_in_ns(
        SHORT_TIMEOUT,
        "python3",
        &[
            "-c",
            &format!(
                "import socket\n\
                 for v in ('1.2', '3.0'):\n\
                 \x20   s = socket.create_connection(('{STACK_IP}', {PORT}), timeout=20)\n\
                 \x20   s.sendall(b'HEAD /big.bin HTTP/' + v.encode() + b'\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n')\n\
                 \x20   print(s.recv(100).split(b'\\r\\n')[0].decode())\n"
            ),
        ],
    );
    run.expect_success("python3 version probe");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        ["HTTP/1.1 200 OK", "HTTP/1.1 505 HTTP Version Not Supported"]
    );
}

fn range_requests(test: &str, threaded: bool) {
    let Some((h, file)) = serve_root(test, threaded) else {
        return;
    };
    let whole = std::fs::read(&file).unwrap();
    let part = h.dir().join("part");
    let part_arg = part.to_str().unwrap();
    // A single range in the middle, crossing the streaming chunks.
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-D",
            "-",
            "-r",
            "100000-1300000",
            "-o",
            part_arg,
            &url("/big.bin"),
        ],
    );
    run.expect_success("curl -r");
    let (status, fields) = parse_header_dump(&run.stdout);
    assert_eq!(status, 206, "{run}");
    let total = whole.len();
    assert_eq!(
        header(&fields, "content-range"),
        Some(format!("bytes 100000-1300000/{total}").as_str())
    );
    assert!(std::fs::read(&part).unwrap() == whole[100_000..=1_300_000]);
    // Unsatisfiable: 416 with the length.
    let (status, fields) = head_of(&h, &["-r", "99999999-"], "/big.bin");
    assert_eq!(status, 416);
    let star = format!("bytes */{total}");
    assert_eq!(header(&fields, "content-range"), Some(star.as_str()));
    // `curl -C -` resumes a partial download byte-exact (it asks for `bytes=N-`).
    std::fs::write(&part, &whole[..1_234_567]).unwrap();
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-C",
            "-",
            "-o",
            part_arg,
            "-w",
            "%{http_code}",
            &url("/big.bin"),
        ],
    );
    run.expect_success("curl -C -");
    assert_eq!(run.stdout.trim(), "206");
    compare_files(&file, &part).unwrap();
    // Several ranges: the whole file, 200.
    let run = h.curl(
        SHORT_TIMEOUT,
        &[
            "-r",
            "0-1,5-6",
            "-o",
            part_arg,
            "-w",
            "%{http_code}",
            &url("/big.bin"),
        ],
    );
    run.expect_success("curl two ranges");
    assert_eq!(run.stdout.trim(), "200");
    compare_files(&file, &part).unwrap();
}

/// ETag, 304 for `If-None-Match` (`*` too, and over `If-Modified-Since`), 412 for a
/// failed `If-Match`; HTTP/1.2 served as 1.1.
#[test]
fn conditional_requests_evented() {
    conditional_requests("conditional_requests_evented", false);
}

/// The same on the threaded runtime.
#[test]
fn conditional_requests_threaded() {
    conditional_requests("conditional_requests_threaded", true);
}

/// 206 for one range (the event loop reads it straight into TCP's send buffer), 416 past
/// the end, `curl -C -` resumes byte-exact, several ranges get the whole file.
#[test]
fn range_requests_evented() {
    range_requests("range_requests_evented", false);
}

/// The same on the threaded runtime.
#[test]
fn range_requests_threaded() {
    range_requests("range_requests_threaded", true);
}
