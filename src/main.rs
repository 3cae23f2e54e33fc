//! The `tunstack` command: the command line only. Every protocol lives in the library.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tunstack::link::ethernet::MacAddr;
use tunstack::link::fault;
use tunstack::serve::{LinkOptions, Runtime, ServeOptions};

/// Our IPv6 address when --ip6 does not say (a unique local address, RFC 4193).
const DEFAULT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The kernel side's IPv6 address and prefix when --host-ip6 does not say.
const DEFAULT_HOST_IP6: &str = "fd00::1/64";

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
    /// Our IPv6 address: TCP, UDP and ICMPv6 over IPv6 beside IPv4 (in TAP mode with
    /// Neighbor Discovery). [default: fd00::2]
    #[arg(long, value_name = "ADDR", conflicts_with = "no_ip6")]
    ip6: Option<Ipv6Addr>,
    /// IPv6 address and prefix given to the kernel's side of the device.
    /// [default: fd00::1/64]
    #[arg(long, value_name = "CIDR", conflicts_with = "no_ip6")]
    host_ip6: Option<String>,
    /// IPv4 only: no IPv6 address on either side of the device.
    #[arg(long)]
    no_ip6: bool,
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
    /// (state transitions, timers, retransmissions, socket calls, HTTP lines), on whichever
    /// runtime serves; each block names the thread (queue) that handled it.
    #[arg(long)]
    trace: bool,
    /// Like --trace, and end each line with the code that did it: the file and function
    /// that handle each layer (`@ src/tcp/endpoint.rs Tcp::on_segment`), the exact line
    /// of each decision (`@ src/tcp/connection.rs:1506`). --step always shows it.
    #[arg(long)]
    trace_code: bool,
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

impl LinkArgs {
    fn options(&self) -> LinkOptions {
        LinkOptions {
            tun: self.tun.clone(),
            tap: self.tap.clone(),
            mac: self.mac,
            gateway: self.gateway,
            // Dual stack unless --no-ip6; the defaults mirror --ip and --host-ip.
            ip6: (!self.no_ip6).then(|| self.ip6.unwrap_or(DEFAULT_IP6)),
            host_ip6: (!self.no_ip6).then(|| {
                self.host_ip6
                    .clone()
                    .unwrap_or_else(|| DEFAULT_HOST_IP6.to_string())
            }),
            ip6_asked: self.ip6.is_some() || self.host_ip6.is_some(),
            prefix: self.prefix,
            host_ip: self.host_ip.clone(),
            ip: self.ip,
            mtu: self.mtu,
            pcap: self.pcap.clone(),
            trace: self.trace || self.trace_code,
            trace_code: self.trace_code,
            seed: self.seed,
            faults: self.faults.config(),
        }
    }
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
        /// Use the classic threaded runtime (a stack thread and a blocking thread per
        /// connection) instead of the event loop.
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
        /// Serve a live view at /_live: a web page showing the connections, every packet
        /// layer by layer, a ladder diagram and the counters as they happen. Off by
        /// default: it shows every client's addresses and requests to anyone who can reach
        /// the server. Costs nothing while no page is open. Event loop only.
        #[arg(long)]
        live: bool,
    },
    /// Download URL through our own stack (active open) and write the body.
    ///
    /// tunstack is the client here: it creates the TUN, takes --ip as its own address and
    /// opens the connection itself. Its only way out is the TUN into this machine's
    /// kernel, so the URL must name a host on the kernel side of the TUN: the kernel's own
    /// address there (--host-ip, 10.0.0.1 by default), where a server listening on
    /// 0.0.0.0 or on that address answers, or a host the kernel routes to (with
    /// forwarding and NAT set up for the subnet). An address on the internet or in
    /// another namespace does not work without such routing.
    #[command(
        after_help = "Example (a kernel-side server, then the download, as root):
  python3 -m http.server --bind 0.0.0.0 8000 &
  tunstack get http://10.0.0.1:8000/ -o index.html
  tunstack get --trace http://10.0.0.1:8000/ -o /dev/null   # watch the active open"
    )]
    Get {
        /// http://ADDR[:PORT]/PATH, ADDR an IPv4 address on the kernel side of the TUN
        /// (e.g. http://10.0.0.1:8000/file, with --host-ip 10.0.0.1/24).
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
            live,
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
                live,
            };
            let runtime = Runtime {
                threaded,
                step,
                queues: usize::from(queues),
                offload: !no_offload,
            };
            let served = tunstack::serve::serve(&link.options(), opts, runtime);
            tunstack::http::access_log::flush();
            served
        }
        Command::Get {
            url,
            link,
            output,
            timeout,
        } => tunstack::commands::get(&link.options(), &url, output, Duration::from_secs(timeout)),
        Command::Diagram {
            capture,
            output,
            html,
            connection,
            max_arrows,
        } => tunstack::commands::diagram(&capture, output, html, connection, max_arrows),
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
