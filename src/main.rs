//! The `tunstack` command: the command line only. Every protocol lives in the library.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};

use tunstack::link::fault;
use tunstack::link::pcap::PcapWriter;
use tunstack::link::tun::TunDevice;
use tunstack::socket::{TcpListener, TcpStream};
use tunstack::stack::{self, Direction, PacketHook, StackConfig, StackHandle};

#[derive(Parser)]
#[command(
    name = "tunstack",
    version,
    about = "A userspace TCP/IP stack on a TUN device, serving HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the stack lives: shared by every subcommand.
#[derive(clap::Args, Clone)]
struct LinkArgs {
    /// Name of the TUN device to create.
    #[arg(long, default_value = "tun0")]
    tun: String,
    /// Address and prefix given to the kernel's side of the TUN.
    #[arg(long, default_value = "10.0.0.1/24")]
    host_ip: String,
    /// The address our stack answers as.
    #[arg(long, default_value = "10.0.0.2")]
    ip: Ipv4Addr,
    /// MTU of the TUN device.
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Write every packet that crosses the device to this pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print a one-line, per-layer account of every packet in and out.
    #[arg(long)]
    trace: bool,
    /// Seed for ISNs and ephemeral ports (random by default), for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Faults injected on purpose between the device and the stack, in both directions.
/// Probabilities are percentages (0-100, `%` optional): `--loss 10` drops 10 % of packets.
#[derive(clap::Args, Clone)]
struct FaultArgs {
    /// Drop this percentage of packets (each direction).
    #[arg(long, value_name = "PERCENT", value_parser = fault::parse_percent)]
    loss: Option<f64>,
    /// Duplicate this percentage of packets.
    #[arg(long, value_name = "PERCENT", value_parser = fault::parse_percent)]
    dup: Option<f64>,
    /// Hold back this percentage of packets until the next one has passed.
    #[arg(long, value_name = "PERCENT", value_parser = fault::parse_percent)]
    reorder: Option<f64>,
    /// Flip one random bit in this percentage of packets.
    #[arg(long, value_name = "PERCENT", value_parser = fault::parse_percent)]
    corrupt: Option<f64>,
    /// Delay every packet by MS milliseconds, plus up to JITTER_MS more at random.
    #[arg(long, value_name = "MS[:JITTER_MS]", value_parser = fault::parse_delay)]
    delay: Option<(Duration, Duration)>,
    /// Seed of the fault injector's random choices (default 1), for reproducible runs.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
}

impl FaultArgs {
    fn config(&self) -> Option<(fault::FaultConfig, u64)> {
        let (delay, jitter) = self.delay.unwrap_or_default();
        let config = fault::FaultConfig {
            loss: self.loss.unwrap_or(0.0),
            duplicate: self.dup.unwrap_or(0.0),
            reorder: self.reorder.unwrap_or(0.0),
            corrupt: self.corrupt.unwrap_or(0.0),
            delay,
            jitter,
            ..fault::FaultConfig::default()
        };
        (!config.is_noop()).then_some((config, self.fault_seed))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP/1.1 on a TUN device (the built-in site unless --root is given).
    Serve {
        #[command(flatten)]
        link: LinkArgs,
        /// TCP port to listen on.
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Serve files under this directory instead of the built-in site.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Most HTTP connections served at once.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Seconds a client may take to send a request head.
        #[arg(long, default_value_t = 10)]
        header_timeout: u64,
        /// Seconds an idle keep-alive connection is kept.
        #[arg(long, default_value_t = 15)]
        idle_timeout: u64,
        /// Seconds a request body may stall between two reads (raise it on lossy links).
        #[arg(long, default_value_t = 30)]
        body_timeout: u64,
    },
    /// Download URL through our own stack (active open) and write the body.
    Get {
        /// http://ADDR[:PORT]/PATH
        url: String,
        #[command(flatten)]
        link: LinkArgs,
        /// Write the body here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            link,
            port,
            root,
            max_connections,
            header_timeout,
            idle_timeout,
            body_timeout,
        } => serve(
            &link,
            port,
            root,
            max_connections,
            Duration::from_secs(header_timeout),
            Duration::from_secs(idle_timeout),
            Duration::from_secs(body_timeout),
        ),
        Command::Get {
            url,
            link,
            output,
            timeout,
        } => get(&link, &url, output, Duration::from_secs(timeout)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunstack: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Open and configure the TUN, build the packet hooks, start the stack.
fn start_stack(link: &LinkArgs) -> io::Result<StackHandle> {
    let device = TunDevice::open(&link.tun)
        .map_err(|e| io::Error::new(e.kind(), format!("opening TUN {}: {e}", link.tun)))?;
    device.configure(&link.host_ip, link.mtu)?;
    log::info!(
        "link: TUN {} up, kernel side {}, stack answers as {}",
        device.name(),
        link.host_ip,
        link.ip
    );
    let (reader, writer) = device.split();
    let mut config = StackConfig::new(link.ip);
    config.mtu = link.mtu;
    config.seed = link.seed;
    config.faults = link.faults.config();
    if let Some((f, seed)) = &config.faults {
        log::info!("link: injecting faults {f:?} (seed {seed})");
    }
    config.tcp.mss = u16::try_from(link.mtu.saturating_sub(40)).unwrap_or(1460);
    let hook = packet_hook(link)?;
    stack::start(
        move |buf: &mut [u8]| reader.recv(buf),
        move |pkt: &[u8]| writer.send(pkt),
        config,
        hook,
    )
}

fn packet_hook(link: &LinkArgs) -> io::Result<Option<PacketHook>> {
    let mut pcap = match &link.pcap {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Some(PcapWriter::new(BufWriter::new(file))?)
        }
        None => None,
    };
    let trace = link.trace;
    if pcap.is_none() && !trace {
        return Ok(None);
    }
    Ok(Some(Box::new(move |dir: Direction, packet: &[u8]| {
        if let Some(w) = pcap.as_mut() {
            if let Err(e) = w
                .write_packet(std::time::SystemTime::now(), packet)
                .and_then(|_| w.flush())
            {
                log::warn!("pcap: {e}");
            }
        }
        if trace {
            eprintln!("{}", tunstack::trace::describe(dir, packet));
        }
    })))
}

/// Wait for SIGINT/SIGTERM on a thread of its own and call `on_signal` once.
fn on_termination(on_signal: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: closing connections");
                on_signal();
            }
        })?;
    Ok(())
}

fn serve(
    link: &LinkArgs,
    port: u16,
    root: Option<PathBuf>,
    max_connections: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
) -> io::Result<()> {
    use tunstack::http::{Router, Server, ServerConfig};

    let router = Router::standard(root.as_deref())?;
    let stack = start_stack(link)?;
    let listener = TcpListener::bind(&stack, SocketAddrV4::new(link.ip, port))?;
    let config = ServerConfig {
        max_connections,
        header_timeout,
        idle_timeout,
        body_timeout,
        ..ServerConfig::default()
    };
    let server = Server::new(router, config);
    let shutdown = server.shutdown_handle();
    let on_exit = stack.clone();
    on_termination(move || {
        shutdown.shutdown();
        on_exit.shutdown(Duration::from_secs(2));
        let stats = on_exit.stats();
        log::info!(
            "stats: ip in {} out {} dropped {} | tcp segments in {} out {} retransmits {} resets sent {} | {:?}",
            stats.ip.packets_in,
            stats.ip.packets_out,
            stats.ip.dropped(),
            stats.tcp.segments_in,
            stats.tcp.segments_out,
            stats.tcp.retransmits,
            stats.tcp.resets_sent,
            stats.faults,
        );
        // The TUN is not persistent: the kernel removes it when our file descriptor
        // closes, which process exit guarantees even for a reader still blocked in it.
        std::process::exit(0);
    })?;
    log::info!(
        "http: listening on {}:{port} ({})",
        link.ip,
        match &root {
            Some(r) => format!("files under {}", r.display()),
            None => "built-in site".to_string(),
        }
    );
    server.serve(listener)
}

fn get(link: &LinkArgs, url: &str, output: Option<PathBuf>, timeout: Duration) -> io::Result<()> {
    use tunstack::http::{client, Url};

    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let url = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let addr = url.ipv4().ok_or_else(|| {
        invalid(format!(
            "{}: give the server as an IPv4 address (no DNS in tunstack yet)",
            url.host
        ))
    })?;
    let stack = start_stack(link)?;
    let stream = TcpStream::connect_timeout(&stack, SocketAddrV4::new(addr, url.port), timeout)
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {addr}:{}: {e}", url.port)))?;
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
        .map_err(|e| io::Error::other(e.to_string()))?;
    out.flush()?;
    if let Some(bar) = bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish();
    }
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
