//! `tunstack serve` assembled: a device opened and configured, a stack on it (the event
//! loop with one loop per queue, or the threaded runtime), the HTTP server, the `/_stats`
//! route, the statistics on SIGUSR1 and on exit, and a graceful stop on SIGINT/SIGTERM.
//! The command line only parses its arguments into [`LinkOptions`] and [`ServeOptions`];
//! an embedder can call [`serve`] the same way.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::link::arp::ArpConfig;
use crate::link::ethernet::MacAddr;
use crate::link::ethernet_layer::EthernetConfig;
use crate::link::fault::FaultConfig;
use crate::link::middleware::{DeviceUser, Middleware};
use crate::link::pcap::{PcapWriter, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use crate::link::tun::{configure_link_ipv6, set_txqueuelen};
use crate::link::{configure_link, Device, TunOptions, TunQueue};
use crate::socket::{TcpListener, UdpSocket};
use crate::stack::{self, StackConfig, StackHandle, StackStats};
use crate::stats::{self as stats_report, CountingHandler, HttpCounters};
use crate::trace::http::TracedHandler;
use crate::trace::{Palette, Stepper, Tracer};

/// Where the stack lives: the device, the addresses, capture, tracing and faults.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Name of the TUN device to create.
    pub tun: String,
    /// Create a TAP device of this name instead (Ethernet II and ARP done here).
    pub tap: Option<String>,
    /// TAP mode: our MAC address (default: a random locally administered one).
    pub mac: Option<MacAddr>,
    /// TAP mode: the router for destinations outside our subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Our IPv6 address (`None`: IPv4 only): TCP, UDP and ICMPv6 over IPv6.
    pub ip6: Option<Ipv6Addr>,
    /// IPv6 address and prefix given to the kernel's side of the device.
    pub host_ip6: Option<String>,
    /// The IPv6 addresses were asked for (`--ip6`, `--host-ip6`), not defaults: a kernel
    /// that refuses them (IPv6 disabled) is then an error, not a warning.
    pub ip6_asked: bool,
    /// TAP mode: our subnet's prefix length (default: the one of `host_ip`).
    pub prefix: Option<u8>,
    /// Address and prefix given to the kernel's side of the device.
    pub host_ip: String,
    /// The address our stack answers as.
    pub ip: Ipv4Addr,
    /// MTU of the device.
    pub mtu: usize,
    /// Write every packet that crosses the device to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Print a per-layer account of every packet and decision.
    pub trace: bool,
    /// End each trace line with the code that did it (`--trace-code`; implies `trace`).
    pub trace_code: bool,
    /// Seed for ISNs and ephemeral ports (random when `None`).
    pub seed: Option<u64>,
    /// Faults to inject, and their seed.
    pub faults: Option<(FaultConfig, u64)>,
}

/// Which runtime serves, and how.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    /// The classic threaded runtime instead of the event loop.
    pub threaded: bool,
    /// Step through each packet layer by layer (implies tracing).
    pub step: bool,
    /// Event loop: this many TUN queues, a loop and a stack each.
    pub queues: usize,
    /// Event loop: ask the TUN for checksum and segmentation offloads.
    pub offload: bool,
}

/// Serve HTTP (and UDP echo) until SIGINT/SIGTERM, on the runtime `runtime` asks for.
pub fn serve(link: &LinkOptions, opts: ServeOptions, runtime: Runtime) -> io::Result<()> {
    if runtime.threaded && opts.live {
        // The event stream is an endless response written as TCP accepts it; the threaded
        // server's handlers return whole responses.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--live needs the event loop: drop --threaded",
        ));
    }
    // Every flag is checked before the device exists: a mistake leaves nothing behind.
    crate::preflight::check_link(link)?;
    if let Some(root) = &opts.root {
        crate::preflight::check_root(root)?;
    }
    if runtime.threaded {
        serve_threaded(link, runtime.step, opts)
    } else {
        serve_evented(link, runtime.step, opts, runtime.queues, runtime.offload)
    }
}

/// Print every layer's counters (and the HTTP server's) to stderr.
fn print_summary(stats: &StackStats, http: &HttpCounters) {
    let text = stats_report::summary(stats, Some(&http.snapshot()));
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// `GET /_stats`: every layer's counters as JSON, from `source` (503 when it has none yet).
fn stats_route(
    router: &mut crate::http::Router,
    http: Arc<HttpCounters>,
    source: impl Fn() -> Option<StackStats> + Send + Sync + 'static,
) {
    router.route("/_stats", move |_req: &crate::http::Request| {
        match source() {
            Some(stats) => {
                let json = stats_report::to_json(&stats, Some(&http.snapshot()));
                crate::http::Response::bytes(200, "application/json", json.into_bytes())
            }
            None => crate::http::Response::error(503),
        }
    });
}

/// Print the per-layer statistics from `source` whenever SIGUSR1 arrives.
fn stats_on_sigusr1(
    http: Arc<HttpCounters>,
    source: impl Fn() -> Option<StackStats> + Send + 'static,
) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("sigusr1".into())
        .spawn(move || {
            for _ in signals.forever() {
                if let Some(stats) = source() {
                    print_summary(&stats, &http);
                }
            }
        })?;
    Ok(())
}

/// Open the TUN (or TAP) with `queues` queues, asking for offloads when `offload` is set,
/// and configure the kernel's side of it (addresses, MTU, up). `runtime` names the runtime
/// in the log line.
fn open_device(
    link: &LinkOptions,
    queues: usize,
    offload: bool,
    runtime: &str,
) -> io::Result<Vec<TunQueue>> {
    let (kind, name) = match &link.tap {
        Some(tap) => ("TAP", tap),
        None => ("TUN", &link.tun),
    };
    let tun_opts = TunOptions {
        tap: link.tap.is_some(),
        offload,
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
        match configure_link_ipv6(&ifname, cidr6) {
            Ok(()) => {}
            Err(e) if !link.ip6_asked => {
                // IPv6 is on by default; a kernel without it still gets IPv4.
                log::warn!("link: {ifname}: no IPv6 on the kernel side ({e}); IPv4 only");
            }
            Err(e) => return Err(e),
        }
    }
    // Room for a burst (10,000 clients each sending a request at once): the default
    // 500 packets overflowed, and each drop cost its sender a retransmission timeout.
    if let Err(e) = set_txqueuelen(&ifname, 10_000) {
        log::warn!("link: {ifname}: cannot raise txqueuelen: {e}");
    }
    log::info!(
        "link: {kind} {ifname} up ({} queue(s), {runtime}), kernel side {}, stack answers as {}",
        devices.len(),
        link.host_ip,
        link.ip
    );
    Ok(devices)
}

/// The middleware `--loss` & co. and `--pcap` ask for, the same for every runtime.
fn middleware(link: &LinkOptions) -> io::Result<Middleware<BufWriter<File>>> {
    let pcap = match &link.pcap {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let linktype = match link.tap {
                Some(_) => LINKTYPE_ETHERNET,
                None => LINKTYPE_RAW,
            };
            let writer = PcapWriter::with_linktype(BufWriter::new(file), linktype)?;
            Some(Arc::new(Mutex::new(writer)))
        }
        None => None,
    };
    let faults = link.faults.clone().filter(|(f, _)| !f.is_noop());
    if let Some((f, seed)) = &faults {
        log::info!("link: injecting faults {f:?} (seed {seed})");
    }
    Ok(Middleware { faults, pcap })
}

/// Starts the threaded runtime on the one device it is given.
struct Threaded {
    config: StackConfig,
}

impl DeviceUser for Threaded {
    type Output = io::Result<StackHandle>;
    fn run<D: Device + 'static>(self, devices: Vec<D>) -> io::Result<StackHandle> {
        let device = devices
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other("no device to run the stack on"))?;
        stack::start(device, self.config)
    }
}

/// Open and configure the TUN (one queue, no offloads: the threaded runtime builds no
/// super-segment), wrap it in the middleware the options ask for, start the threaded stack.
pub fn start_stack(link: &LinkOptions, tracer: Option<Tracer>) -> io::Result<StackHandle> {
    let middleware = middleware(link)?;
    let devices = open_device(link, 1, false, "threaded")?;
    let mut config = stack_config(link)?;
    config.seed = link.seed;
    config.tracer = tracer;
    middleware.apply(devices, Threaded { config })
}

/// The stack settings the link flags ask for, shared by both runtimes.
fn stack_config(link: &LinkOptions) -> io::Result<StackConfig> {
    let mut config = StackConfig::new(link.ip);
    config.mtu = link.mtu;
    config.tcp.mss = u16::try_from(link.mtu.saturating_sub(40)).unwrap_or(1460);
    config.ethernet = ethernet_config(link)?;
    config.addr6 = link.ip6;
    Ok(config)
}

/// TAP mode: our MAC, subnet and gateway. `None` in TUN mode.
fn ethernet_config(link: &LinkOptions) -> io::Result<Option<EthernetConfig>> {
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

/// The tracer `--trace` / `--trace-code` / `--step` ask for.
pub fn make_tracer(link: &LinkOptions, step: bool) -> Option<Tracer> {
    if step {
        if !io::stdin().is_terminal() {
            log::warn!("--step reads commands from stdin, which is not a terminal");
        }
        Some(Stepper::terminal().into_tracer())
    } else if link.trace || link.trace_code {
        Some(Tracer::stderr_with_code(
            Palette::for_stderr(),
            link.trace_code,
        ))
    } else {
        None
    }
}

/// What `serve` serves, whichever the runtime.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TCP port to listen on.
    pub port: u16,
    /// Serve files under this directory instead of the built-in site.
    pub root: Option<PathBuf>,
    /// The HTTP server's limits and timeouts.
    pub config: crate::http::ServerConfig,
    /// Also answer UDP echo (RFC 862) on this port.
    pub udp_echo: Option<u16>,
    /// Serve the live view at `/_live` ([`crate::live`]; event loop only).
    pub live: bool,
}

/// `serve` on the threaded runtime (`--threaded`, `--trace`, `--step`).
fn serve_threaded(link: &LinkOptions, step: bool, opts: ServeOptions) -> io::Result<()> {
    use crate::http::{Router, Server};

    let ServeOptions {
        port,
        root,
        config,
        udp_echo,
        live: _,
    } = opts;
    let mut router = Router::standard(root.as_deref())?;
    let tracer = make_tracer(link, step);
    let stack = start_stack(link, tracer.clone())?;
    let http_counters = Arc::new(HttpCounters::default());
    let source = stack.clone();
    stats_route(&mut router, http_counters.clone(), move || {
        Some(source.stats())
    });
    let source = stack.clone();
    stats_on_sigusr1(http_counters.clone(), move || Some(source.stats()))?;
    let listener = TcpListener::bind(&stack, SocketAddrV4::new(link.ip, port))?;
    let listener6 = match link.ip6 {
        Some(ip6) => Some(TcpListener::bind(&stack, (ip6, port))?),
        None => None,
    };
    if let Some(echo_port) = udp_echo {
        let socket = UdpSocket::bind(&stack, udp_echo_addr(link, echo_port))?;
        log::info!("udp: echo on {}:{echo_port}", link.ip);
        std::thread::Builder::new()
            .name("udp-echo".into())
            .spawn(move || {
                if let Err(e) = crate::socket::udp_echo_service(&socket) {
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
        on_exit.shutdown(SHUTDOWN_GRACE);
        print_summary(&on_exit.stats(), &exit_http);
        // The TUN is not persistent: the kernel removes it when our file descriptor
        // closes, which process exit guarantees even for a reader still blocked in it.
        crate::http::access_log::flush();
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
    // The IPv6 listener gets an accepting thread of its own; both serve alike.
    std::thread::scope(|scope| {
        if let Some(l6) = listener6 {
            log::info!("http: listening on [{}]:{port}", l6.local_addr()?.ip());
            let server = &server;
            std::thread::Builder::new()
                .name("accept-v6".into())
                .spawn_scoped(scope, move || {
                    if let Err(e) = server.serve(l6) {
                        log::error!("http: IPv6 listener: {e}");
                    }
                })?;
        }
        server.serve(listener)
    })
}

/// Where the UDP echo binds: our IPv4 address, or with IPv6 on the unspecified address,
/// which takes the datagrams of both families on one socket (one socket per port).
fn udp_echo_addr(link: &LinkOptions, port: u16) -> SocketAddr {
    match link.ip6 {
        Some(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        None => SocketAddr::new(link.ip.into(), port),
    }
}

/// How long a stopping server lets its connections close before resetting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
    link: &LinkOptions,
    step: bool,
    opts: ServeOptions,
    queues: usize,
    offload: bool,
) -> io::Result<()> {
    use crate::http::{Handler, Router};
    use crate::stack::evloop::{self, StatsBoard};

    let middleware = middleware(link)?;
    // A fault injector (--loss, --corrupt, …) needs the packets a wire carries and declines
    // the offloads: the device is then opened without them.
    if offload && !middleware.keeps_offloads() {
        log::info!("link: fault injection on: opening the device without offloads");
    }
    let offload = offload && evloop::STACK_OFFLOADS && middleware.keeps_offloads();
    let devices = open_device(link, queues, offload, "event loop")?;
    let mut stack_config = stack_config(link)?;
    let board = StatsBoard::new(devices.len());
    let http_counters = Arc::new(HttpCounters::default());
    let live_hub = opts.live.then(|| {
        let (board, http) = (board.clone(), http_counters.clone());
        crate::live::LiveHub::new(Some(Box::new(move || {
            stats_report::merge(&board.latest())
                .map(|s| stats_report::to_json(&s, Some(&http.snapshot())))
        })))
    });
    let tracer = match (make_tracer(link, step), &live_hub) {
        (Some(t), Some(hub)) => Some(t.and(hub.tracer())),
        (t, hub) => t.or_else(|| hub.as_ref().map(|h| h.tracer())),
    };
    stack_config.tracer = tracer.clone();
    // One seed for every queue: ISNs and SYN cookies agree whichever queue a packet takes.
    stack_config.seed = Some(link.seed.unwrap_or_else(rand::random));

    let mut router = Router::standard(opts.root.as_deref())?;
    if let Some(hub) = &live_hub {
        crate::live::add_routes(&mut router, hub.clone());
        log::info!(
            "live: the live view is at http://{}:{port}/_live",
            link.ip,
            port = opts.port
        );
    }
    // GET /_stats: the loop serving the request publishes its own counters just before
    // (EventedServer::set_stats_path); other queues' are at most evloop::STATS_PERIOD old.
    let source = board.clone();
    stats_route(&mut router, http_counters.clone(), move || {
        stats_report::merge(&source.latest())
    });
    let counted = CountingHandler::new(router, http_counters.clone());
    let handler: Arc<dyn Handler> = match tracer {
        Some(t) => Arc::new(TracedHandler::new(counted, t)),
        None => Arc::new(counted),
    };
    middleware.apply(
        devices,
        Evented {
            link,
            opts,
            stack_config,
            board,
            http_counters,
            handler,
            live_hub,
        },
    )
}

/// The event loops, once their devices are wrapped: one per queue, then the wait for a
/// signal and the graceful stop.
struct Evented<'a> {
    link: &'a LinkOptions,
    opts: ServeOptions,
    stack_config: StackConfig,
    board: Arc<crate::stack::evloop::StatsBoard>,
    http_counters: Arc<HttpCounters>,
    handler: Arc<dyn crate::http::Handler>,
    live_hub: Option<Arc<crate::live::LiveHub>>,
}

impl DeviceUser for Evented<'_> {
    type Output = io::Result<()>;

    fn run<D: Device + 'static>(self, devices: Vec<D>) -> io::Result<()> {
        use crate::http::evented::EventedServer;
        use crate::socket::UdpEcho;
        use crate::stack::evloop::{self, EventLoop};
        use std::sync::mpsc;

        let link = self.link;
        let (board, http_counters) = (self.board, self.http_counters);
        let ServeOptions {
            port,
            root,
            config,
            udp_echo,
            live: _,
        } = self.opts;
        let (events_tx, events_rx) = mpsc::channel::<ServeEvent>();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for (i, device) in devices.into_iter().enumerate() {
            let mut ev = EventLoop::new(device, &self.stack_config)?;
            ev.set_stats_board(board.clone(), i);
            ev.set_shutdown_grace(SHUTDOWN_GRACE);
            let listener = ev
                .listen(SocketAddrV4::new(link.ip, port), 0)
                .map_err(|e| io::Error::new(e.kind(), format!("listen on port {port}: {e}")))?;
            let mut server = EventedServer::new(self.handler.clone(), config.clone(), listener);
            if let Some(ip6) = link.ip6 {
                let l6 = ev.listen((ip6, port), 0).map_err(|e| {
                    io::Error::new(e.kind(), format!("listen on [{ip6}]:{port}: {e}"))
                })?;
                server.add_listener(l6);
            }
            server.set_stats_path("/_stats");
            server.set_counters(http_counters.clone());
            if let Some(hub) = &self.live_hub {
                server.set_live(hub.clone());
            }
            // The loop runs the HTTP server, and the UDP echo beside it when asked for.
            let mut apps: Box<dyn evloop::App + Send> = match udp_echo {
                Some(echo_port) => {
                    let socket = ev.bind_udp(udp_echo_addr(link, echo_port)).map_err(|e| {
                        io::Error::new(e.kind(), format!("udp port {echo_port}: {e}"))
                    })?;
                    if i == 0 {
                        log::info!("udp: echo on {}:{echo_port}", link.ip);
                    }
                    Box::new((server, UdpEcho::new(socket)))
                }
                None => Box::new(server),
            };
            handles.push(ev.handle());
            let tx = events_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tunstack-q{i}"))
                    .spawn(move || {
                        let result = ev.run(&mut *apps);
                        let _ = tx.send(ServeEvent::LoopEnded(i, result));
                    })?,
            );
        }
        {
            let board = board.clone();
            let handles = handles.clone();
            stats_on_sigusr1(http_counters.clone(), move || {
                stats_report::merge(&board.fresh(&handles, Duration::from_secs(1)))
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
        if let Some(ip6) = link.ip6 {
            log::info!("http: listening on [{ip6}]:{port}");
        }
        let mut result = Ok(());
        let mut running = threads.len();
        match events_rx.recv() {
            Ok(ServeEvent::Signal(sig)) => log::info!("signal {sig}: closing connections"),
            Ok(ServeEvent::LoopEnded(i, r)) => {
                running -= 1;
                log::error!("stack: queue {i} stopped: {r:?}");
                result = r.and(Err(io::Error::other(format!("queue {i} stopped"))));
            }
            Err(_) => {}
        }
        // Every loop closes its connections (FIN, then RST after the grace period) and
        // publishes its final counters. A loop paused in `--step` (waiting for Enter) does
        // not hold up the exit: after the grace period its last published counters are used.
        for h in &handles {
            h.stop();
        }
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE + Duration::from_secs(1);
        while running > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match events_rx.recv_timeout(left) {
                Ok(ServeEvent::LoopEnded(..)) => running -= 1,
                Ok(ServeEvent::Signal(_)) => {}
                Err(_) => break,
            }
        }
        if running == 0 {
            for t in threads {
                let _ = t.join();
            }
        }
        if let Some(stats) = stats_report::merge(&board.latest()) {
            print_summary(&stats, &http_counters);
        }
        // The queues were closed with their loops: the kernel removes the (non-persistent)
        // device with its last descriptor.
        result
    }
}
