//! What `tunstack get` and `tunstack diagram` do, as library functions: `main.rs` parses
//! the command line and calls them (`serve` has its own module, [`crate::serve`]).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serve::{make_tracer, start_stack, LinkOptions};
use crate::socket::TcpStream;

/// `tunstack get URL`: fetch `url` through a stack of our own on a new TUN, writing the body
/// to `output` (standard output when `None`), with a progress bar on a terminal.
pub fn get(
    link: &LinkOptions,
    url: &str,
    output: Option<PathBuf>,
    timeout: Duration,
) -> io::Result<()> {
    use crate::http::{client, Url};

    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let url = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let addr = url.ip().ok_or_else(|| {
        invalid(format!(
            "{}: give the server as an IPv4 or IPv6 address (no DNS in tunstack yet)",
            url.host
        ))
    })?;
    if addr.is_ipv6() && link.ip6.is_none() {
        return Err(invalid(format!(
            "{addr}: an IPv6 server needs IPv6 (no --no-ip6)"
        )));
    }
    let remote = SocketAddr::new(addr, url.port);
    crate::preflight::check_link(link)?;
    let stack = start_stack(link, make_tracer(link, false))?;
    let stream = TcpStream::connect_timeout(&stack, remote, timeout)
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {remote}: {e}")))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut out: Box<dyn Write> = match &output {
        Some(path) => {
            Box::new(BufWriter::new(File::create(path).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            })?))
        }
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let bar = Arc::new(Mutex::new(None::<indicatif::ProgressBar>));
    // Ends the bar's line on every way out (success or error): indicatif leaves the cursor
    // after the bar, and the next message would start on the bar's line.
    let end_bar = EndBar(Arc::clone(&bar));
    let show_progress = io::stderr().is_terminal();
    let mut progress = |received: u64, total: Option<u64>| {
        if !show_progress {
            return;
        }
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bar.get_or_insert_with(|| match total {
            Some(len) => indicatif::ProgressBar::new(len).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        });
        bar.set_position(received);
    };
    let head = client::get(&stream, &url, &mut out, &mut progress)
        .map_err(|e| io::Error::other(e.to_string()));
    drop(end_bar);
    let head = head?;
    out.flush()?;
    drop(stream);
    // Let our FIN (and the peer's) cross the device before the process exits.
    stack.shutdown(Duration::from_secs(1));
    if head.status == 200 {
        log::info!("get: {} {}", head.status, head.reason);
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "server answered {} {}",
            head.status, head.reason
        )))
    }
}

/// Finishes the progress bar, if one was drawn, and ends its line.
struct EndBar(Arc<Mutex<Option<indicatif::ProgressBar>>>);

impl Drop for EndBar {
    fn drop(&mut self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.abandon();
            eprintln!();
        }
    }
}

/// `tunstack diagram CAPTURE`: draw the TCP connections of a pcap capture as ladder
/// diagrams (SVG, or an HTML page), to `output` or standard output.
pub fn diagram(
    capture: &std::path::Path,
    output: Option<PathBuf>,
    html: bool,
    connection: Option<usize>,
    max_arrows: usize,
) -> io::Result<()> {
    use crate::diagram::{svg, Diagram};

    let bytes = std::fs::read(capture)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", capture.display())))?;
    let mut d = Diagram::from_pcap(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", capture.display()),
        )
    })?;
    if let Some(e) = &d.read_error {
        log::warn!("{}: {e}; drawing the packets before it", capture.display());
    }
    if let Some(n) = connection {
        let total = d.connections.len();
        d.connections.retain(|c| c.number == n);
        if d.connections.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--connection {n}: the capture has {total} TCP connection(s)"),
            ));
        }
    }
    for c in &d.connections {
        eprintln!(
            "connection {}: {} -> {}, {} segments, {} retransmitted, ends {} / {}",
            c.number,
            c.client,
            c.server,
            c.arrows.len(),
            c.retransmissions(),
            c.last.0,
            c.last.1
        );
    }
    if d.skipped.total() > 0 {
        eprintln!("({} packet(s) not TCP, not drawn)", d.skipped.total());
    }
    let options = svg::Options { max_arrows };
    let text = if html {
        svg::render_html(&d, &options, &capture.display().to_string())
    } else {
        svg::render_svg(&d, &options)
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        None => io::stdout().lock().write_all(text.as_bytes()),
    }
}
