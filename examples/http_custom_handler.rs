//! Embedding tunstack's HTTP server with your own handler.
//!
//! By default it runs over tunstack's own stack on a TUN device (as root, best inside a
//! scratch network namespace); with `--std ADDR` the very same `Server` runs over the
//! kernel's sockets instead, because both socket types implement `http::Acceptor`.
//!
//! ```text
//! ip netns add hello-demo
//! ip netns exec hello-demo cargo run --example http_custom_handler   # TUN hello0, 10.8.0.2:80
//! ip netns exec hello-demo curl 'http://10.8.0.2/hello?name=reader'
//! ip netns exec hello-demo curl http://10.8.0.2/stats
//! ip netns del hello-demo
//!
//! cargo run --example http_custom_handler -- --std 127.0.0.1:8080     # no TUN, no root
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};

use tunstack::http::{Handler, Request, Response, Router, Server, ServerConfig};
use tunstack::link::TunQueue;
use tunstack::socket::TcpListener;
use tunstack::stack::{self, StackConfig};

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
    let args: Vec<String> = std::env::args().skip(1).collect();

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

    let server = Server::new(router, ServerConfig::default());
    if let [flag, addr] = args.as_slice() {
        if flag == "--std" {
            let listener = std::net::TcpListener::bind(addr)?;
            println!(
                "listening on http://{} (kernel TCP)",
                listener.local_addr()?
            );
            return server.serve(listener);
        }
    }

    // Our own stack: TUN hello0, the kernel side is 10.8.0.1, we answer as 10.8.0.2.
    let ip = Ipv4Addr::new(10, 8, 0, 2);
    let device = TunQueue::open("hello0")?;
    device.configure("10.8.0.1/24", 1500)?;
    let stack = stack::start(device, StackConfig::new(ip))?;
    let listener = TcpListener::bind(&stack, SocketAddrV4::new(ip, 80))?;
    println!("listening on http://{ip}/ (tunstack TCP on TUN hello0)");
    server.serve(listener)
}
