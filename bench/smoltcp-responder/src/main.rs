//! The smoltcp peer of `scripts/bench.sh`: a small single-threaded HTTP/1.1 server on smoltcp,
//! attached to a TUN device, serving the same files with the same response headers as
//! `tunstack serve --root DIR` so that the benchmark compares the two TCP/IP stacks.
//!
//! ```text
//! smoltcp-responder --tun NAME --ip 10.77.9.2/24 --root DIR [--port 80] [--listeners 64]
//!     [--max-sockets 65536] [--rx-buffer 262144] [--tx-buffer 262144]
//!     [--echo buffer|stream] [--max-body 67108864] [--no-time-wait]
//! ```
//! The TUN must exist and be up on the host side (`ip tuntap add NAME mode tun`, an address,
//! `ip link set NAME up`); this program only attaches to it.
//!
//! - `GET`/`HEAD /NAME`: the file `DIR/NAME`, read into memory at start-up (a warm cache);
//! - `POST /echo`: the request body sent back with the request's Content-Type. `--echo buffer`
//!   (the default) reads the whole body first, then answers, as tunstack and the Linux peer do;
//!   `--echo stream` answers at once and copies the body through a 16 KiB scratch buffer;
//! - keep-alive for HTTP/1.1 unless `Connection: close`, for HTTP/1.0 only with
//!   `Connection: keep-alive`; pipelined requests are answered in order.
//!
//! smoltcp needs one socket per connection and has no accept queue: a SYN finds a socket in
//! LISTEN or is refused. The server keeps `--listeners` sockets listening, takes a closed one
//! (or allocates a new one, up to `--max-sockets`) whenever a listener is consumed, and leaves
//! smoltcp's own behaviour alone otherwise: default timers, Nagle, delayed ACK, no congestion
//! control, and its 10 s TIME-WAIT, during which the socket stays out of the pool
//! (`--no-time-wait` aborts a socket as soon as it reaches TIME-WAIT instead).
//!
//! It is a benchmark peer: no chunked bodies, no timeouts, no paths below `DIR`.

use std::collections::HashMap;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr, Ipv4Address};
use tunstack::http::handlers::content_type;
use tunstack::http::response::http_date;

/// Largest request head; a longer one gets 431 (tunstack's default limit).
const MAX_HEAD: usize = 8 * 1024;

struct Opts {
    tun: String,
    ip: Ipv4Address,
    prefix: u8,
    port: u16,
    root: PathBuf,
    listeners: usize,
    max_sockets: usize,
    rx_buffer: usize,
    tx_buffer: usize,
    stream_echo: bool,
    max_body: usize,
    no_time_wait: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        tun: String::new(),
        ip: Ipv4Address::UNSPECIFIED,
        prefix: 24,
        port: 80,
        root: PathBuf::new(),
        listeners: 64,
        max_sockets: 65536,
        rx_buffer: 256 << 10,
        tx_buffer: 256 << 10,
        stream_echo: false,
        max_body: 64 << 20,
        no_time_wait: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-time-wait" {
            o.no_time_wait = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--tun" => o.tun = value.clone(),
            "--ip" => {
                let (ip, prefix) = value.split_once('/').unwrap_or((&value, "24"));
                o.ip = ip.parse().map_err(|_| "--ip: not an IPv4 address")?;
                o.prefix = prefix.parse().map_err(|_| "--ip: bad prefix length")?;
            }
            "--port" => o.port = value.parse().map_err(|_| "--port: not a port")?,
            "--root" => o.root = PathBuf::from(&value),
            "--listeners" => o.listeners = num()?.max(1),
            "--max-sockets" => o.max_sockets = num()?,
            "--rx-buffer" => o.rx_buffer = num()?,
            "--tx-buffer" => o.tx_buffer = num()?,
            "--max-body" => o.max_body = num()?,
            "--echo" => o.stream_echo = value == "stream",
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.tun.is_empty() || o.ip.is_unspecified() || o.root.as_os_str().is_empty() {
        return Err("usage: smoltcp-responder --tun NAME --ip A.B.C.D/N --root DIR [...]".into());
    }
    Ok(o)
}

// --- the files and the header values tunstack sends ---------------------------------------

struct File {
    body: Rc<Vec<u8>>,
    content_type: &'static str,
    last_modified: String,
}

fn load_files(dir: &Path) -> std::io::Result<HashMap<String, File>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = File {
                body: Rc::new(std::fs::read(entry.path())?),
                content_type: content_type(&name),
                last_modified: http_date(meta.modified()?),
            };
            files.insert(format!("/{name}"), file);
        }
    }
    Ok(files)
}

// --- one connection ------------------------------------------------------------------------

enum Body {
    None,
    Shared(Rc<Vec<u8>>),
    Owned(Vec<u8>),
    /// `--echo stream`: this many more request-body bytes to copy from receive to send.
    Stream(usize),
}

#[derive(PartialEq)]
enum Phase {
    /// Waiting for (the rest of) a request head in `inbuf`.
    Head,
    /// Reading a `POST /echo` body into `echo` before answering (`--echo buffer`).
    EchoBody { remaining: usize },
    /// The response in `head` and `body` is being written; then back to `Head`, or close.
    Send,
    /// close() was called: nothing more to do until the socket is closed.
    Done,
}

struct Conn {
    handle: SocketHandle,
    phase: Phase,
    /// Bytes received and not consumed yet: a request head, or what follows it.
    inbuf: Vec<u8>,
    head: Vec<u8>,
    head_off: usize,
    body: Body,
    body_off: usize,
    echo: Vec<u8>,
    echo_type: String,
    close_after: bool,
}

impl Conn {
    fn new(handle: SocketHandle) -> Conn {
        Conn {
            handle,
            phase: Phase::Head,
            inbuf: Vec::new(),
            head: Vec::new(),
            head_off: 0,
            body: Body::None,
            body_off: 0,
            echo: Vec::new(),
            echo_type: String::new(),
            close_after: false,
        }
    }
}

/// What the server shares with every connection.
struct Ctx<'a> {
    files: &'a HashMap<String, File>,
    date: &'a str,
    stream_echo: bool,
    max_body: usize,
    scratch: &'a mut [u8],
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Queue a response head with tunstack's header order, and its body.
fn respond(c: &mut Conn, ctx: &Ctx, status: &str, ctype: &str, last_mod: Option<&str>, len: usize) {
    use std::fmt::Write;
    c.head.clear();
    c.head_off = 0;
    c.body_off = 0;
    let mut h = String::with_capacity(256);
    let _ = write!(
        h,
        "HTTP/1.1 {status}\r\nDate: {}\r\nServer: smoltcp\r\n",
        ctx.date
    );
    let _ = write!(h, "Content-Type: {ctype}\r\n");
    if let Some(lm) = last_mod {
        let _ = write!(h, "Last-Modified: {lm}\r\n");
    }
    let _ = write!(h, "Content-Length: {len}\r\n");
    c.head.extend_from_slice(h.as_bytes());
    c.phase = Phase::Send;
}

/// Finish the head with the Connection header (`keep_alive_header`: an HTTP/1.0 client asked
/// for keep-alive, so it is told it got it).
fn end_head(c: &mut Conn, keep_alive_header: bool) {
    if c.close_after {
        c.head.extend_from_slice(b"Connection: close\r\n");
    } else if keep_alive_header {
        c.head.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    c.head.extend_from_slice(b"\r\n");
}

fn error(c: &mut Conn, ctx: &Ctx, status: &str, close: bool) {
    let text = format!("{status}\n");
    c.close_after |= close;
    respond(
        c,
        ctx,
        status,
        "text/plain; charset=utf-8",
        None,
        text.len(),
    );
    end_head(c, false);
    c.body = Body::Owned(text.into_bytes());
}

/// Parse the request head at the front of `inbuf` (`len` bytes) and set up its answer.
fn handle_head(c: &mut Conn, ctx: &mut Ctx, len: usize) {
    let head = String::from_utf8_lossy(&c.inbuf[..len]).into_owned();
    c.inbuf.drain(..len);
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t, v),
        _ => return error(c, ctx, "400 Bad Request", true),
    };
    let http10 = version == "HTTP/1.0";
    let (mut length, mut ctype, mut conn) = (None, None, None);
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return error(c, ctx, "400 Bad Request", true);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return error(c, ctx, "400 Bad Request", true),
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            ctype = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            conn = Some(value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return error(c, ctx, "501 Not Implemented", true);
        }
    }
    // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    let asked_keep_alive = conn.as_deref().is_some_and(|v| v.contains("keep-alive"));
    let asked_close = conn.as_deref().is_some_and(|v| v.contains("close"));
    c.close_after = asked_close || (http10 && !asked_keep_alive);
    let ka_header = http10 && !c.close_after;
    let length = length.unwrap_or(0);
    match (method, target) {
        ("POST", "/echo") => {
            if length > ctx.max_body {
                return error(c, ctx, "413 Content Too Large", true);
            }
            let ctype = ctype.unwrap_or("application/octet-stream");
            if ctx.stream_echo {
                respond(c, ctx, "200 OK", ctype, None, length);
                end_head(c, ka_header);
                c.body = Body::Stream(length);
            } else {
                c.echo_type = ctype.to_string();
                c.echo = Vec::with_capacity(length);
                c.phase = Phase::EchoBody { remaining: length };
                // The Connection header is decided now; remember it in the head buffer.
                c.head.clear();
                end_head(c, ka_header);
            }
        }
        ("GET" | "HEAD", _) if length > 0 => error(c, ctx, "400 Bad Request", true),
        ("GET" | "HEAD", path) => match ctx.files.get(path) {
            Some(f) => {
                let ct = f.content_type;
                respond(c, ctx, "200 OK", ct, Some(&f.last_modified), f.body.len());
                end_head(c, ka_header);
                if method == "GET" {
                    c.body = Body::Shared(f.body.clone());
                }
            }
            None => error(c, ctx, "404 Not Found", false),
        },
        _ => error(c, ctx, "405 Method Not Allowed", false),
    }
}

/// Write as much of the pending response as the send buffer takes. True when all of it is out.
fn write_out(c: &mut Conn, s: &mut tcp::Socket, ctx: &mut Ctx) -> bool {
    while c.head_off < c.head.len() {
        match s.send_slice(&c.head[c.head_off..]) {
            Ok(n) if n > 0 => c.head_off += n,
            _ => return false,
        }
    }
    match &mut c.body {
        Body::None => {}
        Body::Shared(b) => c.body_off += s.send_slice(&b[c.body_off..]).unwrap_or(0),
        Body::Owned(b) => c.body_off += s.send_slice(&b[c.body_off..]).unwrap_or(0),
        Body::Stream(remaining) => {
            while *remaining > 0 {
                let room = s.send_capacity() - s.send_queue();
                let want = room.min(*remaining).min(ctx.scratch.len());
                // Body bytes that arrived with the head come first.
                let n = if !c.inbuf.is_empty() {
                    let n = want.min(c.inbuf.len());
                    ctx.scratch[..n].copy_from_slice(&c.inbuf[..n]);
                    c.inbuf.drain(..n);
                    n
                } else {
                    s.recv_slice(&mut ctx.scratch[..want]).unwrap_or(0)
                };
                if n == 0 {
                    return false;
                }
                // `want` fits in the free space, so all of it is queued.
                let _ = s.send_slice(&ctx.scratch[..n]);
                *remaining -= n;
            }
            return true;
        }
    }
    match &c.body {
        Body::Shared(b) => c.body_off == b.len(),
        Body::Owned(b) => c.body_off == b.len(),
        _ => true,
    }
}

/// Append up to `max` received bytes to `buf`; how many (0: none yet, or the peer closed).
fn recv_into(s: &mut tcp::Socket, buf: &mut Vec<u8>, max: usize) -> usize {
    s.recv(|rx| {
        let n = rx.len().min(max);
        buf.extend_from_slice(&rx[..n]);
        (n, n)
    })
    .unwrap_or(0)
}

/// Move one established connection along as far as its buffers allow.
fn service(c: &mut Conn, s: &mut tcp::Socket, ctx: &mut Ctx) {
    loop {
        match c.phase {
            Phase::Done => return,
            Phase::Send => {
                if !write_out(c, s, ctx) {
                    if matches!(c.body, Body::Stream(_)) && c.inbuf.is_empty() && !s.may_recv() {
                        s.close(); // the client closed before the whole body
                        c.phase = Phase::Done;
                    }
                    return;
                }
                c.body = Body::None;
                if c.close_after {
                    s.close();
                    c.phase = Phase::Done;
                    return;
                }
                c.phase = Phase::Head;
            }
            Phase::EchoBody { remaining } => {
                let from_inbuf = remaining.min(c.inbuf.len());
                c.echo.extend(c.inbuf.drain(..from_inbuf));
                let mut left = remaining - from_inbuf;
                while left > 0 {
                    let n = recv_into(s, &mut c.echo, left);
                    if n == 0 {
                        break;
                    }
                    left -= n;
                }
                c.phase = Phase::EchoBody { remaining: left };
                if left > 0 {
                    if !s.may_recv() {
                        // The client closed before the whole body: nothing to answer.
                        s.close();
                        c.phase = Phase::Done;
                    }
                    return;
                }
                let conn_hdr = std::mem::take(&mut c.head);
                let body = std::mem::take(&mut c.echo);
                let ctype = std::mem::take(&mut c.echo_type);
                respond(c, ctx, "200 OK", &ctype, None, body.len());
                c.head.extend_from_slice(&conn_hdr);
                c.body = Body::Owned(body);
            }
            Phase::Head => {
                if let Some(len) = find_head_end(&c.inbuf) {
                    handle_head(c, ctx, len);
                    continue;
                }
                if c.inbuf.len() >= MAX_HEAD {
                    error(c, ctx, "431 Request Header Fields Too Large", true);
                    continue;
                }
                let room = MAX_HEAD - c.inbuf.len();
                if recv_into(s, &mut c.inbuf, room) == 0 {
                    if !s.may_recv() {
                        // The client closed its half with no request pending: close ours.
                        s.close();
                        c.phase = Phase::Done;
                    }
                    return;
                }
            }
        }
    }
}

// --- the loop ------------------------------------------------------------------------------

fn new_socket(o: &Opts) -> tcp::Socket<'static> {
    // vec![0; n] comes from calloc: pages the buffer never touches cost no memory, so an idle
    // connection holds a few pages of its 2 × 256 KiB, not all of it.
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; o.rx_buffer]),
        tcp::SocketBuffer::new(vec![0; o.tx_buffer]),
    )
}

fn main() {
    let o = parse_opts().unwrap_or_else(|e| {
        eprintln!("smoltcp-responder: {e}");
        std::process::exit(2)
    });
    let files = load_files(&o.root).unwrap_or_else(|e| {
        eprintln!("smoltcp-responder: {}: {e}", o.root.display());
        std::process::exit(1)
    });
    let mut device = TunTapInterface::new(&o.tun, Medium::Ip).unwrap_or_else(|e| {
        eprintln!("smoltcp-responder: TUN {}: {e}", o.tun);
        std::process::exit(1)
    });
    let fd = device.as_raw_fd();

    let mut config = Config::new(HardwareAddress::Ip);
    // The initial sequence numbers come from this seed: vary it from run to run.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    config.random_seed = now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(o.ip.into(), o.prefix));
    });

    let mut sockets = SocketSet::new(vec![]);
    let mut conns: Vec<Conn> = Vec::new();
    let mut spare: Vec<tcp::Socket<'static>> = Vec::new();
    let mut scratch = vec![0u8; 16 << 10];
    let (mut date, mut date_secs) = (String::new(), u64::MAX);
    eprintln!(
        "smoltcp-responder: {} files, {}/{} on {}, port {}, {} listeners",
        files.len(),
        o.ip,
        o.prefix,
        o.tun,
        o.port,
        o.listeners
    );
    loop {
        iface.poll(Instant::now(), &mut device, &mut sockets);

        let wall = SystemTime::now();
        let secs = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != date_secs {
            (date, date_secs) = (http_date(wall), secs);
        }
        let mut ctx = Ctx {
            files: &files,
            date: &date,
            stream_echo: o.stream_echo,
            max_body: o.max_body,
            scratch: &mut scratch,
        };
        // Serve every connection and count the listeners. smoltcp walks every socket in the
        // set for each packet and each poll, so a closed socket leaves the set (its buffers are
        // kept for the next listener) instead of staying there for a burst of connections.
        let mut listening = 0;
        let mut i = 0;
        while i < conns.len() {
            let c = &mut conns[i];
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            match s.state() {
                tcp::State::Listen => listening += 1,
                tcp::State::Closed => {
                    #[allow(irrefutable_let_patterns)] // only TCP sockets are compiled in
                    if let Socket::Tcp(s) = sockets.remove(conns.swap_remove(i).handle) {
                        spare.push(s);
                    }
                    continue;
                }
                // RFC 9293 §3.6.1 keeps TIME-WAIT for 2 MSL; smoltcp makes it 10 s and, unlike
                // Linux, does not let a new SYN for the same ports reopen it (the MAY of RFC 1122
                // §4.2.2.13): a client that reuses a port sooner retransmits its SYN until the
                // socket expires. `--no-time-wait` drops the state instead, to show that cost.
                tcp::State::TimeWait if o.no_time_wait => s.abort(),
                tcp::State::SynReceived | tcp::State::TimeWait => {}
                _ => service(c, s, &mut ctx),
            }
            i += 1;
        }
        while listening < o.listeners && conns.len() < o.max_sockets {
            let mut s = spare.pop().unwrap_or_else(|| new_socket(&o));
            if s.listen(o.port).is_err() {
                break;
            }
            conns.push(Conn::new(sockets.add(s)));
            listening += 1;
        }

        // Sleep until the TUN has a packet or smoltcp has a timer (or data to send: 0).
        let delay = iface.poll_delay(Instant::now(), &sockets);
        if delay.is_none_or(|d| d.total_micros() > 0) {
            let _ = phy_wait(fd, delay);
        }
    }
}
