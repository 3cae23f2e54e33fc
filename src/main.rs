//! The `tunstack` command: the command line only. Every protocol lives in the library.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};

use tunstack::link::arp::ArpConfig;
use tunstack::link::ethernet::MacAddr;
use tunstack::link::ethernet_layer::EthernetConfig;
use tunstack::link::fault;
use tunstack::link::pcap::{PcapWriter, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use tunstack::link::tun::TunDevice;
use tunstack::socket::{TcpListener, TcpStream, UdpSocket};
use tunstack::stack::{self, Direction, PacketHook, StackConfig, StackHandle};
use tunstack::stats::{self as stats_report, CountingHandler, HttpCounters};
use tunstack::trace::http::TracedHandler;
use tunstack::trace::{Palette, Stepper, Tracer};

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
    /// Create a TAP device NAME instead of a TUN: Ethernet frames, with our own Ethernet II
    /// and ARP layer (overrides --tun).
    #[arg(long, value_name = "NAME")]
    tap: Option<String>,
    /// TAP mode: our MAC address (default: a random locally administered one).
    #[arg(long)]
    mac: Option<MacAddr>,
    /// TAP mode: the router for destinations outside our subnet.
    #[arg(long, value_name = "ADDR")]
    gateway: Option<Ipv4Addr>,
    /// Also answer ICMPv6 echo as this IPv6 address (needs --host-ip6; in TAP mode with
    /// Neighbor Discovery).
    #[arg(long, value_name = "ADDR", requires = "host_ip6")]
    ip6: Option<Ipv6Addr>,
    /// IPv6 address and prefix given to the kernel's side of the device.
    #[arg(long, value_name = "CIDR")]
    host_ip6: Option<String>,
    /// TAP mode: our subnet's prefix length (default: the one of --host-ip).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=32))]
    prefix: Option<u8>,
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
    /// Print a per-layer account of every packet in and out, with what each layer decided
    /// (state transitions, timers, retransmissions, socket calls, HTTP lines). `serve`
    /// then uses the threaded runtime, whose thread per connection the trace shows.
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
        /// Most HTTP connections served at once; at the limit the oldest idle one is
        /// closed for a new one, and 503 answered only when all are busy.
        #[arg(long, default_value_t = 65_536)]
        max_connections: usize,
        /// Seconds a client may take to send a request head.
        #[arg(long, default_value_t = 10)]
        header_timeout: u64,
        /// Seconds an idle keep-alive connection is kept.
        #[arg(long, default_value_t = 15)]
        idle_timeout: u64,
        /// Also answer UDP echo (RFC 862) on this port.
        #[arg(long, value_name = "PORT")]
        udp_echo: Option<u16>,
        /// Step through each packet layer by layer, waiting for Enter at every layer
        /// (`n` next packet, `c` continue tracing without pauses, `q` just run). Reads
        /// the terminal; implies --trace.
        #[arg(long)]
        step: bool,
        /// Seconds a request body may stall between two reads (raise it on lossy links).
        #[arg(long, default_value_t = 30)]
        body_timeout: u64,
        /// Seconds sending a response may go without progress (no byte acknowledged by
        /// the client) before the connection is reset; a slow client that keeps reading
        /// is never cut, and a close waits for the response to be delivered.
        #[arg(long, default_value_t = 60)]
        send_timeout: u64,
        /// Use the classic threaded runtime (a reader thread, a stack thread and a
        /// blocking thread per connection) instead of the event loop. --trace and --step
        /// always use it.
        #[arg(long)]
        threaded: bool,
        /// Open the TUN with this many queues (IFF_MULTI_QUEUE), each served by its own
        /// event-loop thread with its own stack; the kernel keeps every flow on one queue.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        queues: u16,
        /// Do not ask the TUN for checksum and segmentation offloads (IFF_VNET_HDR).
        #[arg(long)]
        no_offload: bool,
        /// Write an access log (one line per response: client, request line, status,
        /// bytes delivered, time) to FILE, or to stderr with `-`; buffered. Off by default.
        #[arg(long, value_name = "FILE")]
        access_log: Option<PathBuf>,
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
    /// Draw each TCP connection of a pcap capture as a ladder (sequence) diagram.
    Diagram {
        /// A pcap file (`serve --pcap`, tcpdump -w, or Wireshark saved as pcap).
        capture: PathBuf,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// A self-contained HTML page with a table and every connection, instead of SVG.
        #[arg(long)]
        html: bool,
        /// Only this connection (numbered from 1 in order of appearance).
        #[arg(long)]
        connection: Option<usize>,
        /// Most arrows drawn per connection; the middle of longer ones is summarised.
        #[arg(long, default_value_t = 300)]
        max_arrows: usize,
    },
    /// Run packetdrill scripts against the TCP endpoint in virtual time (no device, no
    /// root); exits non-zero if any script fails.
    Packetdrill {
        /// The .pkt scripts.
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
        /// How far a packet or a call's return may be from its script time (µs).
        #[arg(long = "tolerance_usecs", default_value_t = 4000)]
        tolerance_usecs: u64,
        /// Check outbound TSvals, with this many µs per tick of our TS clock (0: off).
        #[arg(long = "tcp_ts_tick_usecs", default_value_t = 0)]
        tcp_ts_tick_usecs: u64,
        /// Do not compare the PSH flag of outbound packets.
        #[arg(long = "ignore_psh")]
        ignore_psh: bool,
        /// Also list the lines that were not run (shell commands, code blocks).
        #[arg(short, long)]
        verbose: bool,
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
            udp_echo,
            step,
            body_timeout,
            send_timeout,
            threaded,
            queues,
            no_offload,
            access_log,
        } => {
            if let Some(path) = &access_log {
                if let Err(e) = tunstack::http::access_log::open(path) {
                    eprintln!("tunstack: --access-log {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let opts = ServeOptions {
                port,
                root,
                config: tunstack::http::ServerConfig {
                    max_connections,
                    header_timeout: Duration::from_secs(header_timeout),
                    idle_timeout: Duration::from_secs(idle_timeout),
                    body_timeout: Duration::from_secs(body_timeout),
                    send_timeout: Duration::from_secs(send_timeout),
                    ..tunstack::http::ServerConfig::default()
                },
                udp_echo,
            };
            let served = if threaded || step || link.trace {
                serve(&link, step, opts)
            } else {
                serve_evented(&link, opts, usize::from(queues), !no_offload)
            };
            tunstack::http::access_log::flush();
            served
        }
        Command::Get {
            url,
            link,
            output,
            timeout,
        } => get(&link, &url, output, Duration::from_secs(timeout)),
        Command::Diagram {
            capture,
            output,
            html,
            connection,
            max_arrows,
        } => diagram(&capture, output, html, connection, max_arrows),
        Command::Packetdrill {
            scripts,
            tolerance_usecs,
            tcp_ts_tick_usecs,
            ignore_psh,
            verbose,
        } => {
            let opts = tunstack::packetdrill::Options {
                tolerance_usecs,
                tcp_ts_tick_usecs,
                ignore_psh,
            };
            return tunstack::packetdrill::run_cli(&scripts, &opts, verbose);
        }
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
fn start_stack(link: &LinkArgs, tracer: Option<Tracer>) -> io::Result<StackHandle> {
    let (kind, name) = match &link.tap {
        Some(tap) => ("TAP", tap),
        None => ("TUN", &link.tun),
    };
    let device = if link.tap.is_some() {
        TunDevice::open_tap(name)
    } else {
        TunDevice::open(name)
    }
    .map_err(|e| io::Error::new(e.kind(), format!("opening {kind} {name}: {e}")))?;
    device.configure(&link.host_ip, link.mtu)?;
    if let Some(cidr6) = &link.host_ip6 {
        device.configure_ipv6(cidr6)?;
    }
    log::info!(
        "link: {kind} {} up, kernel side {}, stack answers as {}",
        device.name(),
        link.host_ip,
        link.ip
    );
    let (reader, writer) = device.split();
    let mut config = stack_config(link)?;
    config.seed = link.seed;
    config.tracer = tracer;
    let hook = packet_hook(link)?;
    stack::start(
        move |buf: &mut [u8]| reader.recv(buf),
        move |pkt: &[u8]| writer.send(pkt),
        config,
        hook,
    )
}

/// The stack settings the link flags ask for, shared by both runtimes.
fn stack_config(link: &LinkArgs) -> io::Result<StackConfig> {
    let mut config = StackConfig::new(link.ip);
    config.mtu = link.mtu;
    config.faults = link.faults.config();
    if let Some((f, seed)) = &config.faults {
        log::info!("link: injecting faults {f:?} (seed {seed})");
    }
    config.tcp.mss = u16::try_from(link.mtu.saturating_sub(40)).unwrap_or(1460);
    config.ethernet = ethernet_config(link)?;
    config.addr6 = link.ip6;
    Ok(config)
}

/// TAP mode: our MAC, subnet and gateway. `None` in TUN mode.
fn ethernet_config(link: &LinkArgs) -> io::Result<Option<EthernetConfig>> {
    if link.tap.is_none() {
        return Ok(None);
    }
    let prefix_len = match link.prefix {
        Some(p) => p,
        None => link
            .host_ip
            .split_once('/')
            .and_then(|(_, p)| p.parse::<u8>().ok())
            .filter(|p| *p <= 32)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "--host-ip {}: no prefix length; give --prefix",
                        link.host_ip
                    ),
                )
            })?,
    };
    let mac = link
        .mac
        .unwrap_or_else(|| MacAddr::local_from(rand::random()));
    log::info!(
        "link: Ethernet {mac}, {}/{prefix_len}{}",
        link.ip,
        link.gateway
            .map(|g| format!(", gateway {g}"))
            .unwrap_or_default()
    );
    Ok(Some(EthernetConfig {
        mac,
        addr: link.ip,
        prefix_len,
        gateway: link.gateway,
        arp: ArpConfig::default(),
        addr6: link.ip6,
    }))
}

fn packet_hook(link: &LinkArgs) -> io::Result<Option<PacketHook>> {
    let tap = link.tap.is_some();
    let mut pcap = match &link.pcap {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let linktype = if tap { LINKTYPE_ETHERNET } else { LINKTYPE_RAW };
            Some(PcapWriter::with_linktype(BufWriter::new(file), linktype)?)
        }
        None => None,
    };
    if pcap.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(move |_dir: Direction, packet: &[u8]| {
        if let Some(w) = pcap.as_mut() {
            if let Err(e) = w
                .write_packet(std::time::SystemTime::now(), packet)
                .and_then(|_| w.flush())
            {
                log::warn!("pcap: {e}");
            }
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

/// The tracer `--trace` / `--step` ask for.
fn make_tracer(trace: bool, step: bool) -> Option<Tracer> {
    if step {
        if !io::stdin().is_terminal() {
            log::warn!("--step reads commands from stdin, which is not a terminal");
        }
        Some(Stepper::terminal().into_tracer())
    } else if trace {
        Some(Tracer::stderr(Palette::for_stderr()))
    } else {
        None
    }
}

/// Print the per-layer statistics to stderr whenever SIGUSR1 arrives.
fn stats_on_sigusr1(stack: StackHandle, http: Arc<HttpCounters>) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("sigusr1".into())
        .spawn(move || {
            for _ in signals.forever() {
                let text = stats_report::summary(&stack.stats(), Some(&http.snapshot()));
                let mut err = io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
        })?;
    Ok(())
}

/// What `serve` serves, whichever the runtime.
struct ServeOptions {
    port: u16,
    root: Option<PathBuf>,
    config: tunstack::http::ServerConfig,
    udp_echo: Option<u16>,
}

/// `serve` on the threaded runtime (`--threaded`, `--trace`, `--step`).
fn serve(link: &LinkArgs, step: bool, opts: ServeOptions) -> io::Result<()> {
    use tunstack::http::{Router, Server};

    let ServeOptions {
        port,
        root,
        config,
        udp_echo,
    } = opts;
    let mut router = Router::standard(root.as_deref())?;
    let tracer = make_tracer(link.trace, step);
    let stack = start_stack(link, tracer.clone())?;
    let http_counters = Arc::new(HttpCounters::default());
    {
        // GET /_stats: every layer's counters as JSON.
        let stack = stack.clone();
        let http = http_counters.clone();
        router.route("/_stats", move |_req: &tunstack::http::Request| {
            let json = stats_report::to_json(&stack.stats(), Some(&http.snapshot()));
            tunstack::http::Response::bytes(200, "application/json", json.into_bytes())
        });
    }
    stats_on_sigusr1(stack.clone(), http_counters.clone())?;
    let listener = TcpListener::bind(&stack, SocketAddrV4::new(link.ip, port))?;
    if let Some(echo_port) = udp_echo {
        let socket = UdpSocket::bind(&stack, SocketAddrV4::new(link.ip, echo_port))?;
        log::info!("udp: echo on {}:{echo_port}", link.ip);
        std::thread::Builder::new()
            .name("udp-echo".into())
            .spawn(move || {
                if let Err(e) = tunstack::socket::udp_echo_service(&socket) {
                    log::error!("udp echo: {e}");
                }
            })?;
    }
    let counted = CountingHandler::new(router, http_counters.clone());
    let server = match tracer {
        Some(t) => Server::new(TracedHandler::new(counted, t), config),
        None => Server::new(counted, config),
    }
    .with_counters(http_counters.clone());
    let shutdown = server.shutdown_handle();
    let on_exit = stack.clone();
    let exit_http = http_counters.clone();
    on_termination(move || {
        shutdown.shutdown();
        on_exit.shutdown(Duration::from_secs(2));
        let text = stats_report::summary(&on_exit.stats(), Some(&exit_http.snapshot()));
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        drop(err);
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

/// What ends an evented `serve`: a signal, or a loop that stopped on its own (an error).
enum ServeEvent {
    Signal(i32),
    LoopEnded(usize, io::Result<()>),
}

/// `serve` on the event loop (the default): `queues` TUN queues, each with its own
/// stack, listener and HTTP server on a thread of its own, sharing nothing on the packet
/// path. The same seed everywhere, so that a SYN cookie made by one queue validates on
/// another.
fn serve_evented(
    link: &LinkArgs,
    opts: ServeOptions,
    queues: usize,
    offload: bool,
) -> io::Result<()> {
    use std::sync::mpsc;
    use tunstack::http::evented::EventedServer;
    use tunstack::http::{Handler, Router};
    use tunstack::link::tun::{configure_link_ipv6, set_txqueuelen};
    use tunstack::link::{configure_link, TunOptions, TunQueue};
    use tunstack::stack::evloop::{self, EventLoop, StatsBoard};

    let ServeOptions {
        port,
        root,
        config,
        udp_echo,
    } = opts;
    let (kind, name) = match &link.tap {
        Some(tap) => ("TAP", tap),
        None => ("TUN", &link.tun),
    };
    // Fault injection (--loss, --corrupt, …) sees and changes plain packets: a corrupted
    // packet must fail its checksum, which the kernel's offloads would have us trust.
    let faults = link.faults.config().is_some();
    if offload && faults {
        log::info!("link: fault injection on: opening the device without offloads");
    }
    let tun_opts = TunOptions {
        tap: link.tap.is_some(),
        offload: offload && evloop::STACK_OFFLOADS && !faults,
        queues,
    };
    let devices = TunQueue::open_queues(name, &tun_opts)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {kind} {name}: {e}")))?;
    let ifname = devices
        .first()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|| name.clone());
    match devices.first() {
        Some(d) => d.configure(&link.host_ip, link.mtu)?,
        None => configure_link(&ifname, &link.host_ip, link.mtu)?,
    }
    if let Some(cidr6) = &link.host_ip6 {
        configure_link_ipv6(&ifname, cidr6)?;
    }
    // Room for a burst (10,000 clients each sending a request at once): the default
    // 500 packets overflowed, and each drop cost its sender a retransmission timeout.
    if let Err(e) = set_txqueuelen(&ifname, 10_000) {
        log::warn!("link: {ifname}: cannot raise txqueuelen: {e}");
    }
    log::info!(
        "link: {kind} {ifname} up ({} queue(s), event loop), kernel side {}, stack answers as {}",
        devices.len(),
        link.host_ip,
        link.ip
    );

    let mut stack_config = stack_config(link)?;
    // One seed for every queue: ISNs and SYN cookies agree whichever queue a packet takes.
    stack_config.seed = Some(link.seed.unwrap_or_else(rand::random));
    // One capture file for all queues: the hook is shared (taken only with --pcap).
    let hook = packet_hook(link)?.map(|h| Arc::new(Mutex::new(h)));

    let board = StatsBoard::new(devices.len());
    let http_counters = Arc::new(HttpCounters::default());
    let mut router = Router::standard(root.as_deref())?;
    {
        // GET /_stats: every layer's counters as JSON. The loop serving the request
        // publishes its own counters just before (EventedServer::set_stats_path); other
        // queues' are at most evloop::STATS_PERIOD old.
        let board = board.clone();
        let http = http_counters.clone();
        router.route(
            "/_stats",
            move |_req: &tunstack::http::Request| match board.merged() {
                Some(stats) => {
                    let json = stats_report::to_json(&stats, Some(&http.snapshot()));
                    tunstack::http::Response::bytes(200, "application/json", json.into_bytes())
                }
                None => tunstack::http::Response::error(503),
            },
        );
    }
    let handler: Arc<dyn Handler> = Arc::new(CountingHandler::new(router, http_counters.clone()));

    let (events_tx, events_rx) = mpsc::channel::<ServeEvent>();
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for (i, device) in devices.into_iter().enumerate() {
        let hook: Option<PacketHook> = hook.clone().map(|shared| {
            Box::new(move |dir: Direction, packet: &[u8]| {
                let mut h = shared.lock().unwrap_or_else(|e| e.into_inner());
                h(dir, packet)
            }) as PacketHook
        });
        let mut ev = EventLoop::new(device, &stack_config, hook)?;
        ev.set_stats_board(board.clone(), i);
        let listener = ev
            .iface_mut()
            .tcp_mut()
            .listen(SocketAddrV4::new(link.ip, port), 0)
            .map_err(|e| io::Error::new(e.kind(), format!("listen on port {port}: {e:?}")))?;
        let mut server = EventedServer::new(handler.clone(), config.clone(), listener);
        server.set_stats_path("/_stats");
        server.set_counters(http_counters.clone());
        if let Some(echo_port) = udp_echo {
            let socket = ev
                .iface_mut()
                .udp_mut()
                .bind(SocketAddrV4::new(link.ip, echo_port))
                .map_err(|e| io::Error::other(format!("udp port {echo_port}: {e:?}")))?;
            server.set_udp_echo(socket);
            if i == 0 {
                log::info!("udp: echo on {}:{echo_port}", link.ip);
            }
        }
        handles.push(ev.handle());
        let tx = events_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("tunstack-q{i}"))
                .spawn(move || {
                    let result = ev.run(&mut server);
                    let _ = tx.send(ServeEvent::LoopEnded(i, result));
                })?,
        );
    }
    {
        let board = board.clone();
        let handles = handles.clone();
        let http = http_counters.clone();
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
        std::thread::Builder::new()
            .name("sigusr1".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if let Some(stats) = board.fresh(&handles, Duration::from_secs(1)) {
                        let text = stats_report::summary(&stats, Some(&http.snapshot()));
                        let mut err = io::stderr().lock();
                        let _ = err.write_all(text.as_bytes());
                        let _ = err.flush();
                    }
                }
            })?;
    }
    {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        let tx = events_tx;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let _ = tx.send(ServeEvent::Signal(sig));
                }
            })?;
    }
    log::info!(
        "http: listening on {}:{port} ({}), event loop",
        link.ip,
        match &root {
            Some(r) => format!("files under {}", r.display()),
            None => "built-in site".to_string(),
        }
    );
    let mut result = Ok(());
    match events_rx.recv() {
        Ok(ServeEvent::Signal(sig)) => log::info!("signal {sig}: closing connections"),
        Ok(ServeEvent::LoopEnded(i, r)) => {
            log::error!("stack: queue {i} stopped: {r:?}");
            result = r.and(Err(io::Error::other(format!("queue {i} stopped"))));
        }
        Err(_) => {}
    }
    // Every loop closes its connections (FIN, then RST after the grace period) and
    // publishes its final counters.
    for h in &handles {
        h.stop();
    }
    for t in threads {
        let _ = t.join();
    }
    if let Some(stats) = board.merged() {
        let text = stats_report::summary(&stats, Some(&http_counters.snapshot()));
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
    // The queues were closed with their loops: the kernel removes the (non-persistent)
    // device with its last descriptor.
    result
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
    let stack = start_stack(link, make_tracer(link.trace, false))?;
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

fn diagram(
    capture: &std::path::Path,
    output: Option<PathBuf>,
    html: bool,
    connection: Option<usize>,
    max_arrows: usize,
) -> io::Result<()> {
    use tunstack::diagram::{svg, Diagram};

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
        eprintln!(
            "({} packet(s) not TCP over IPv4, not drawn)",
            d.skipped.total()
        );
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
