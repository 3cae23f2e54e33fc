//! The application layer's part of the trace: a [`Handler`] wrapper that reports each
//! request as it reaches the handler and each response as the handler returns it.
//!
//! Wrapping the handler (instead of hooking the server) keeps the HTTP server unaware of
//! tracing, exactly as a servlet filter sits in front of a servlet.

use super::{HttpEvent, TraceEvent, Tracer};
use crate::http::response::reason_phrase;
use crate::http::{Handler, Request, Response};

/// `inner`, reporting to `tracer`.
pub struct TracedHandler<H> {
    inner: H,
    tracer: Tracer,
}

impl<H: Handler> TracedHandler<H> {
    /// Wrap `inner`.
    pub fn new(inner: H, tracer: Tracer) -> TracedHandler<H> {
        TracedHandler { inner, tracer }
    }
}

impl<H: Handler> Handler for TracedHandler<H> {
    fn handle(&self, req: &Request) -> Response {
        if !self.tracer.active() {
            return self.inner.handle(req);
        }
        self.emit_request(req);
        let resp = self.inner.handle(req);
        self.emit_response(req, &resp);
        resp
    }

    fn handle_mut(&self, req: &mut Request) -> Response {
        if !self.tracer.active() {
            return self.inner.handle_mut(req);
        }
        self.emit_request(req);
        let resp = self.inner.handle_mut(req);
        self.emit_response(req, &resp);
        resp
    }
}

impl<H: Handler> TracedHandler<H> {
    fn emit_request(&self, req: &Request) {
        self.tracer.emit(TraceEvent::Http(HttpEvent::Request {
            peer: req.peer,
            line: format!("{} {} {}", req.method, req.target, req.version),
            thread: std::thread::current().name().map(str::to_string),
        }));
    }

    fn emit_response(&self, req: &Request, resp: &Response) {
        self.tracer.emit(TraceEvent::Http(HttpEvent::Response {
            peer: req.peer,
            line: format!(
                // The server answers HTTP/1.1 whatever the request's version (RFC 9110
                // §2.5: a server sends its highest supported minor version).
                "HTTP/1.1 {} {}",
                resp.status,
                reason_phrase(resp.status)
            ),
            body_len: Some(resp.body.len()),
        }));
    }
}
