//! # http — the application layer: a small HTTP/1.1 server and client
//!
//! This is the top of the diagram: everything below it (link, ip, tcp, socket) exists so that
//! two programs can exchange a reliable, ordered *byte stream*. HTTP/1.1 (RFC 9110 semantics,
//! RFC 9112 message syntax) is what gives that stream a shape:
//!
//! ```text
//!  request  = request-line  CRLF *( field-line CRLF ) CRLF [ body ]
//!             "GET /index.html HTTP/1.1"  "Host: 10.0.0.2"
//!  response = status-line   CRLF *( field-line CRLF ) CRLF [ body ]
//!             "HTTP/1.1 200 OK"           "Content-Length: 1234"
//! ```
//!
//! ## Framing: where does one message end?
//! TCP has no message boundaries, so HTTP must say how long each body is (RFC 9112 §6.3):
//! `Content-Length: N` (exactly N bytes follow), `Transfer-Encoding: chunked` (a sequence of
//! `hex-size CRLF data CRLF`, ended by a zero-size chunk and optional trailers), or — for
//! responses only — "until the server closes the connection". A message carrying *both*
//! Content-Length and Transfer-Encoding is ambiguous (the classic request-smuggling bug) and
//! is rejected with 400 here.
//!
//! ## Keep-alive vs close
//! Because every message is self-delimiting, one TCP connection can carry many requests:
//! HTTP/1.1 connections are *persistent* by default (RFC 9112 §9.3) and a client may even
//! *pipeline* (send the next request before the previous response arrived); the server then
//! answers strictly in order. `Connection: close` (either side) ends the connection after the
//! current exchange; HTTP/1.0 closes unless the client asks for `Connection: keep-alive`.
//! Idle persistent connections are closed after a timeout, and the *whole* request head must
//! arrive before a deadline so a client trickling bytes (slowloris) cannot hold a thread forever.
//!
//! ## Using it
//! ```no_run
//! use std::net::TcpListener;
//! use tunstack::http::{Request, Response, Router, Server, ServerConfig};
//!
//! // `/echo` and the built-in site (or `Some(path)` for a directory), plus a route of our own.
//! let mut router = Router::standard(None)?;
//! router.route("/hello", |req: &Request| Response::text(200, format!("hi {}\n", req.path)));
//! let server = Server::new(router, ServerConfig::default());
//! let stop = server.shutdown_handle(); // stop.shutdown() from a signal handler
//! server.serve(TcpListener::bind("127.0.0.1:8080")?)?; // or tunstack's own listener
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Map of the module
//! - [`parse`]: our own push parser — request/status lines, header fields, chunked bodies.
//! - [`request`] / [`response`]: the typed messages handlers see and produce.
//! - [`conn`]: one connection as a sans-IO state machine ([`HttpConn`]: bytes in, bytes out,
//!   time passed in), the only place the server's HTTP/1.1 rules live.
//! - [`server`]: the blocking server over any [`Acceptor`]: a thread per connection, driving
//!   its `HttpConn` with blocking reads and writes.
//! - [`evented`]: the event-loop server ([`evented::EventedServer`], what `serve` runs by
//!   default on [`crate::stack::evloop::EventLoop`]): many connections on one thread, an
//!   `HttpConn` each.
//! - [`handlers`]: [`Handler`], [`StaticSite`], [`Echo`], [`Router`]; [`site`] is the built-in site.
//! - [`client`]: `GET` over any `Read + Write` stream.
//! - [`transport`]: the [`Transport`]/[`Acceptor`] traits that keep this layer independent of
//!   whether the bytes travel over our own stack or the kernel's (`std::net`, used in tests).

#![deny(missing_docs)]

pub mod access_log;
pub mod client;
pub mod conditional;
pub mod conn;
pub mod evented;
pub mod handlers;
pub mod parse;
mod recycle;
pub mod request;
pub mod response;
pub mod server;
pub mod site;
mod table;
pub mod transport;

#[cfg(test)]
mod tests;

pub use client::{ClientError, ResponseHead, Url};
pub use conn::{overload_response, HttpConn};
pub use handlers::{Echo, Handler, Router, StaticSite};
pub use request::{Headers, Request, Version};
pub use response::{Body, Response};
pub use server::{Server, ServerConfig, ShutdownHandle};
pub use transport::{Acceptor, Transport};
pub mod over_tunstack;
