//! Integration tests, heavy ones: big transfers through the userspace stack, compared
//! byte for byte. They take `heavy_lock()` so that only one runs at a time (2-core CI).
//!
//! - GET of a 256 MiB file served from `--root`;
//! - POST /echo of 32 MiB;
//! - `tunstack get` (active open) fetching 64 MiB from a kernel HTTP server (python3);
//! - 32 MiB GET and POST with ~5 % random loss in each direction (nftables, scripts/loss.sh).
//!
//! Files are written with deterministic pseudo-random content into the test's temp dir,
//! curl writes to files (never memory), and the comparison streams both files.

mod common;

use common::*;
use std::path::Path;

const PORT: u16 = 80;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// GET `path` with curl into `out`; assert 200 and that the body matches `expected`.
fn get_and_compare(h: &Harness, path: &str, out: &Path, expected: &Path) {
    let url = format!("http://{STACK_IP}:{PORT}{path}");
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "-o",
            path_str(out),
            "-w",
            "%{http_code} %{size_download} %{speed_download}",
            &url,
        ],
    );
    run.expect_success(&format!("curl GET {url}"));
    eprintln!("GET {url}: {} in {:?}", run.stdout, run.elapsed);
    assert!(run.stdout.starts_with("200 "), "GET {url}: {run}");
    if let Err(e) = compare_files(expected, out) {
        panic!("GET {url} body differs from the file: {e}");
    }
}

/// POST `input` to /echo; assert 200 and that the echoed body equals the input.
fn post_echo_and_compare(h: &Harness, input: &Path, out: &Path) {
    let url = format!("http://{STACK_IP}:{PORT}/echo");
    let data = format!("@{}", path_str(input));
    let run = h.curl(
        BIG_TIMEOUT,
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
            // No "Expect: 100-continue" round trip: this test is about the bytes.
            "-H",
            "Expect:",
            "-o",
            path_str(out),
            "-w",
            "%{http_code} %{size_upload} %{size_download}",
            &url,
        ],
    );
    run.expect_success("curl POST /echo");
    eprintln!("POST {url}: {} in {:?}", run.stdout, run.elapsed);
    assert!(run.stdout.starts_with("200 "), "POST /echo: {run}");
    if let Err(e) = compare_files(input, out) {
        panic!("POST /echo response differs from the request body: {e}");
    }
}

#[test]
fn get_256_mib_from_root_is_byte_exact() {
    let Some(mut h) = Harness::new("get_256_mib_from_root_is_byte_exact", &[]) else {
        return;
    };
    let _heavy = heavy_lock();
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("big.bin");
    write_pattern_file(&file, 256 * MIB, 0x7475_6e73_7461_636b);
    h.serve(PORT, &["--root", path_str(&root)]);
    let out = h.dir().join("big.out");
    get_and_compare(&h, "/big.bin", &out, &file);
}

#[test]
fn post_echo_32_mib_is_byte_exact() {
    let Some(mut h) = Harness::new("post_echo_32_mib_is_byte_exact", &[]) else {
        return;
    };
    let _heavy = heavy_lock();
    let input = h.dir().join("post.bin");
    write_pattern_file(&input, 32 * MIB, 0x6563_686f);
    h.serve(PORT, &[]);
    let out = h.dir().join("post.out");
    post_echo_and_compare(&h, &input, &out);
}

/// `tunstack get` as a TCP client: a kernel HTTP server (python3 http.server, bound to
/// 0.0.0.0:8000 in the namespace before the TUN exists) serves 64 MiB to the stack.
#[test]
fn get_client_fetches_64_mib_from_kernel_server() {
    let Some(mut h) = Harness::new("get_client_fetches_64_mib_from_kernel_server", &["python3"])
    else {
        return;
    };
    let _heavy = heavy_lock();
    let www = h.dir().join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    let file = www.join("file");
    write_pattern_file(&file, 64 * MIB, 0x0067_6574);
    h.start_kernel_http_server(8000, &www);

    let out = h.dir().join("get.out");
    let url = format!("http://{HOST_IP}:8000/file");
    let run = h.tunstack_get(&url, &out, BIG_TIMEOUT);
    eprintln!("tunstack get {url}: {:?}", run.elapsed);
    assert!(
        run.success(),
        "tunstack get {url}: {run}\nhttp.server log:\n{}",
        h.helper_log("http.server-8000")
    );
    if let Err(e) = compare_files(&file, &out) {
        panic!("tunstack get output differs from the served file: {e}");
    }
    assert!(
        h.wait_tun_gone(std::time::Duration::from_secs(5)),
        "TUN {} left behind by `get`",
        h.tun()
    );
}

/// 32 MiB GET and POST while nftables drops ~5 % of packets in each direction on the TUN:
/// retransmission has to recover every loss.
#[test]
fn lossy_link_5_percent_get_and_post_32_mib() {
    let Some(mut h) = Harness::new("lossy_link_5_percent_get_and_post_32_mib", &["nft"]) else {
        return;
    };
    let _heavy = heavy_lock();
    let root = h.dir().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let file = root.join("lossy.bin");
    write_pattern_file(&file, 32 * MIB, 0x6c6f_7373);
    h.serve(PORT, &["--root", path_str(&root)]);

    // The table is added after the TUN exists (the rules match it by name).
    let ns = h.ns().name().to_string();
    let tun = h.tun().to_string();
    h.script("loss.sh", &[&ns, &tun, "5"])
        .expect_success("scripts/loss.sh");

    let out = h.dir().join("lossy.out");
    get_and_compare(&h, "/lossy.bin", &out, &file);
    let echoed = h.dir().join("lossy-echo.out");
    post_echo_and_compare(&h, &file, &echoed);

    // The rules really dropped packets (otherwise this test proved nothing about loss).
    let run = h.run_in_ns(SHORT_TIMEOUT, "nft", &["list", "ruleset"]);
    run.expect_success("nft list ruleset");
    let dropped: Vec<u64> = run
        .stdout
        .lines()
        .filter(|l| l.contains("numgen"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "packets")?;
            words.next()?.parse().ok()
        })
        .collect();
    assert_eq!(dropped.len(), 2, "two loss rules expected: {run}");
    assert!(
        dropped.iter().all(|&n| n > 0),
        "both directions should have lost packets, counters {dropped:?}"
    );
    eprintln!("packets dropped (from stack, to stack): {dropped:?}");
}
