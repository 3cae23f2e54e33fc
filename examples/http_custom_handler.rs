//! Embedding tunstack's HTTP server with your own handler.
//!
//! Runs over the kernel's sockets (`std::net`) on 127.0.0.1 so it works without a TUN device;
//! the same `Server` runs over tunstack's own sockets because both implement
//! `http::Acceptor`.
//!
//! ```text
//! cargo run --example http_custom_handler            # listens on 127.0.0.1:8080
//! curl http://127.0.0.1:8080/hello?name=reader
//! curl http://127.0.0.1:8080/stats
//! curl --data-binary @Cargo.toml http://127.0.0.1:8080/echo
//! curl http://127.0.0.1:8080/                        # the built-in site
//! ```

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

use tunstack::http::{Handler, Request, Response, Router, Server, ServerConfig};

/// A handler with state: counts the requests it has seen.
struct Stats {
    hits: AtomicU64,
}

impl Handler for Stats {
    fn handle(&self, req: &Request) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::method_not_allowed("GET, HEAD");
        }
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        let json = format!("{{\"stats_requests\": {n}}}\n");
        Response::bytes(200, "application/json", json.into_bytes())
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());

    // The standard routes (/echo and the built-in site), plus ours.
    let mut router = Router::standard(None)?;
    router
        .route("/hello", |req: &Request| {
            let name = req
                .query
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
                .unwrap_or("world");
            Response::text(
                200,
                format!("Hello, {name}! You sent {} {}.\n", req.method, req.path),
            )
        })
        .route(
            "/stats",
            Stats {
                hits: AtomicU64::new(0),
            },
        );

    let listener = TcpListener::bind(&addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = Server::new(router, ServerConfig::default());
    server.serve(listener)
}
