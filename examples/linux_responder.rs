//! The Linux baseline for `scripts/bench.sh`: a minimal single-threaded epoll (mio) HTTP/1.1
//! responder on the kernel's own TCP, serving the same bytes as `tunstack serve --root DIR`.
//!
//! ```text
//! cargo run --release --example linux_responder -- ADDR:PORT DIR
//! ```
//! - `GET /NAME`: the file `DIR/NAME` (all files are read into memory at start-up, so a
//!   request costs no disk I/O, as for a warm page cache);
//! - `POST /echo`: the request body (Content-Length framing), sent back once it is complete;
//! - keep-alive unless `Connection: close` or HTTP/1.0; pipelined requests in order.
//!
//! It is a benchmark peer, not a server for the world: no chunked bodies, no timeouts,
//! 404 for anything else. Its only job is to cost the kernel's TCP as little as possible
//! in user space, so the comparison measures the transport.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// Largest request body we buffer (the bench uploads less).
const MAX_BODY: usize = 512 << 20;

/// A piece of output: owned (headers, echo bodies) or a shared file body.
enum Chunk {
    Owned(Vec<u8>),
    File(Arc<Vec<u8>>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::File(f) => f,
        }
    }
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: std::collections::VecDeque<Chunk>,
    /// How much of the front chunk has been written.
    out_off: usize,
    close_after: bool,
    peer_closed: bool,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parse and answer every complete request in `c.inbuf`.
fn process(c: &mut Conn, files: &HashMap<String, Arc<Vec<u8>>>) {
    while let Some(head_len) = find_head_end(&c.inbuf) {
        let head = String::from_utf8_lossy(&c.inbuf[..head_len]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let version = parts.next().unwrap_or("HTTP/1.1");
        let mut content_length = 0usize;
        let mut close = version == "HTTP/1.0";
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0).min(MAX_BODY);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        if c.inbuf.len() < head_len + content_length {
            return; // wait for the whole body
        }
        let body: Vec<u8> = c.inbuf[head_len..head_len + content_length].to_vec();
        c.inbuf.drain(..head_len + content_length);
        let conn_hdr = if close { "close" } else { "keep-alive" };
        let (status, payload) = if method == "POST" && target == "/echo" {
            ("200 OK", Chunk::Owned(body))
        } else if method == "GET" || method == "HEAD" {
            match files.get(target.trim_start_matches('/')) {
                Some(f) => ("200 OK", Chunk::File(f.clone())),
                None => ("404 Not Found", Chunk::Owned(b"not found\n".to_vec())),
            }
        } else {
            ("405 Method Not Allowed", Chunk::Owned(Vec::new()))
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nServer: linux-responder\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: {conn_hdr}\r\n\r\n",
            payload.bytes().len()
        );
        c.out.push_back(Chunk::Owned(head.into_bytes()));
        if method != "HEAD" {
            c.out.push_back(payload);
        }
        if close {
            c.close_after = true;
            c.inbuf.clear();
            return;
        }
    }
}

/// Write as much pending output as the socket takes. Ok(true) when everything is out.
fn flush(c: &mut Conn) -> io::Result<bool> {
    while let Some(front) = c.out.front() {
        let bytes = &front.bytes()[c.out_off..];
        if bytes.is_empty() {
            c.out.pop_front();
            c.out_off = 0;
            continue;
        }
        match c.stream.write(bytes) {
            Ok(n) => c.out_off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn load_files(dir: &Path) -> io::Result<HashMap<String, Arc<Vec<u8>>>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, Arc::new(std::fs::read(entry.path())?));
        }
    }
    Ok(files)
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || io::Error::new(io::ErrorKind::InvalidInput, "usage: ADDR:PORT DIR");
    let addr: SocketAddr = args
        .next()
        .ok_or_else(usage)?
        .parse()
        .map_err(|_| usage())?;
    let dir = args.next().ok_or_else(usage)?;
    let files = load_files(Path::new(&dir))?;

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_token = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 256 * 1024];
    eprintln!(
        "linux_responder: listening on {addr}, {} files",
        files.len()
    );
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let token = Token(next_token);
                            next_token = next_token.wrapping_add(1) % (usize::MAX - 1);
                            poll.registry().register(
                                &mut stream,
                                token,
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns.insert(
                                token.0,
                                Conn {
                                    stream,
                                    inbuf: Vec::new(),
                                    out: Default::default(),
                                    out_off: 0,
                                    close_after: false,
                                    peer_closed: false,
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let token = event.token().0;
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            let mut dead = false;
            if event.is_readable() || event.is_read_closed() {
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => {
                            c.peer_closed = true;
                            break;
                        }
                        Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            dead = true;
                            break;
                        }
                    }
                }
                if !c.close_after {
                    process(c, &files);
                }
            }
            if !dead {
                match flush(c) {
                    Ok(true) => dead = c.close_after || c.peer_closed,
                    Ok(false) => {}
                    Err(_) => dead = true,
                }
            }
            if dead {
                if let Some(mut c) = conns.remove(&token) {
                    let _ = poll.registry().deregister(&mut c.stream);
                    let _ = c.stream.shutdown(std::net::Shutdown::Write);
                }
            }
        }
    }
}
