//! Heap allocations per keep-alive request through the sans-IO HTTP connection: the two
//! exchanges of `benches/data_path.rs` ("keep-alive GET 1 KiB static" and "... file
//! (--root)"), `N` times each, for counting under valgrind:
//!
//! ```text
//! cargo build --release --example http_allocs
//! valgrind --tool=dhat --dhat-out-file=/dev/null target/release/examples/http_allocs static 0
//! valgrind --tool=dhat --dhat-out-file=/dev/null target/release/examples/http_allocs static 10000
//! ```
//! The difference of the two "Total: ... in N blocks" lines, divided by 10,000, is the number
//! of allocations per request (the fixed cost of setting up cancels out). `file` instead of
//! `static` serves a 1 KiB file through `Router::standard(Some(dir))`; the file is made first
//! and left to settle for the cache (`StaticSite` keeps only files unchanged for 2 s).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tunstack::http::{Body, HttpConn, Request, Response, Router, ServerConfig};

static ONE_KIB: [u8; 1024] = [b'x'; 1024];

/// One request through the connection and all of its response taken as output.
fn exchange(conn: &mut HttpConn, req: &[u8]) -> usize {
    conn.on_data(req, Instant::now());
    let mut sent = 0;
    loop {
        let n = black_box(conn.output()).len();
        if n == 0 {
            return sent;
        }
        conn.consume(n);
        sent += n;
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "static".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("tunstack-allocs-{}", std::process::id()));
    let router = match which.as_str() {
        "file" => {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("1k.bin"), ONE_KIB)?;
            // Not a correctness wait: the cache only takes files whose ctime is 2 s old.
            std::thread::sleep(Duration::from_millis(2100));
            Router::standard(Some(&dir))?
        }
        _ => {
            let mut router = Router::new();
            router.route("/1k.bin", |_: &Request| {
                Response::new(200)
                    .with_header("Content-Type", "application/octet-stream")
                    .with_body(Body::Static(&ONE_KIB))
            });
            router
        }
    };
    let req = b"GET /1k.bin HTTP/1.1\r\nHost: 10.77.0.2\r\n\r\n";
    let peer = "10.0.0.1:40000".parse().expect("a literal address");
    let config = Arc::new(ServerConfig::default());
    let mut conn = HttpConn::new(Arc::new(router), config, peer, Instant::now());
    // Warm up: the first request fills the cache and sizes the buffers.
    let mut bytes = 0;
    for _ in 0..10 {
        bytes += exchange(&mut conn, req);
    }
    for _ in 0..n {
        bytes += exchange(&mut conn, req);
    }
    println!("{which}: {} requests, {bytes} bytes out", n + 10);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
