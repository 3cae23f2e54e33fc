//! `tunstack-wan`: a wide-area link emulator between two TUN devices, for when `tc netem`
//! is not available.
//!
//! It creates the TUN devices `--tun-a` and `--tun-b` in the namespace it runs in and
//! forwards every packet read from one into the other through a [`WanLink`] per direction
//! (delay, jitter, random and burst loss, reordering, a rate-limited bottleneck queue).
//! `scripts/wan.sh` moves each TUN into an endpoint namespace and routes through them; see
//! `docs/wan.md`.
//!
//! Each direction has two threads: a reader that blocks on its TUN and pushes packets into
//! the link, and a releaser that sleeps until the link's next due time and writes what is
//! due into the other TUN. SIGUSR1 writes the counters to `--stats`; SIGINT/SIGTERM write
//! them and exit. The process also ends when a TUN disappears (its namespace was deleted).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use tunstack::link::fault::parse_percent;
use tunstack::link::tun::{TunDevice, TunReader, TunWriter};
use tunstack::link::wan::{
    parse_gilbert_elliott, parse_millis, parse_rate, GilbertElliott, WanConfig, WanLink, WanStats,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_BYTES,
};
use tunstack::time::Clock;

/// The longest a releaser sleeps with nothing due (it is woken by every new packet anyway).
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Forward packets between two TUN devices through an emulated wide-area path.
///
/// The same settings apply to both directions (each with its own random stream), so
/// `--delay 25` gives a round-trip time of 50 ms.
#[derive(Parser, Debug)]
#[command(name = "tunstack-wan", version)]
struct Args {
    /// Name of the first TUN device to create.
    #[arg(long)]
    tun_a: String,
    /// Name of the second TUN device to create.
    #[arg(long)]
    tun_b: String,
    /// One-way delay, milliseconds (fractions allowed).
    #[arg(long, value_parser = parse_millis, default_value = "0")]
    delay: Duration,
    /// Extra one-way delay, uniform in 0..=JITTER milliseconds (packets stay in order).
    #[arg(long, value_parser = parse_millis, default_value = "0")]
    jitter: Duration,
    /// Independent random loss, percent (each direction).
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    loss: f64,
    /// Burst loss (Gilbert-Elliott), TO_BAD:TO_GOOD[:LOSS_BAD[:LOSS_GOOD]] in percent.
    #[arg(long, value_parser = parse_gilbert_elliott)]
    burst: Option<GilbertElliott>,
    /// Percentage of packets delayed by --reorder-delay more, so later ones overtake them.
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    reorder: f64,
    /// Extra delay of a reordered packet, milliseconds.
    #[arg(long, value_parser = parse_millis, default_value = "5")]
    reorder_delay: Duration,
    /// Bottleneck rate (e.g. 100mbit, 1gbit; 0 = unlimited, no queue).
    #[arg(long, value_parser = parse_rate, default_value = "0")]
    rate: u64,
    /// Bottleneck buffer, bytes (drop-tail beyond it).
    #[arg(long, default_value_t = DEFAULT_QUEUE_BYTES)]
    queue: usize,
    /// Token bucket depth, bytes (what may leave back to back after an idle period).
    #[arg(long, default_value_t = 2 * 1514)]
    bucket: usize,
    /// Most packets on the delay line per direction (bounded memory; drops beyond it).
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// MTU of both TUN devices.
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Seed of the random choices (loss, jitter, reordering), for reproducible runs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the counters here on SIGUSR1 and at exit (`key=value` lines, replaced whole).
    #[arg(long)]
    stats: Option<PathBuf>,
}

/// One direction: the link and the condition its releaser sleeps on.
struct Direction {
    name: &'static str,
    link: Mutex<WanLink>,
    wake: Condvar,
}

impl Direction {
    fn lock(&self) -> MutexGuard<'_, WanLink> {
        // A thread that panicked holding the lock left at worst one packet half-handled:
        // keep forwarding rather than stop the whole path.
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn reader(dir: Arc<Direction>, rx: TunReader, clock: Clock, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match rx.recv(&mut buf) {
            Ok(n) => {
                dir.lock().push(buf[..n].to_vec(), clock.now());
                dir.wake.notify_one();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("tunstack-wan: {} read from {}: {e}", dir.name, rx.name());
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    dir.wake.notify_all();
}

fn releaser(dir: Arc<Direction>, tx: TunWriter, clock: Clock, stop: Arc<AtomicBool>) {
    let mut due = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        {
            let mut link = dir.lock();
            let now = clock.now();
            while let Some(p) = link.pop(now) {
                due.push(p);
            }
            if due.is_empty() {
                let wait = link
                    .poll_at()
                    .map_or(IDLE_WAIT, |at| at.saturating_duration_since(now));
                if !wait.is_zero() {
                    drop(dir.wake.wait_timeout(link, wait.min(IDLE_WAIT)));
                }
                continue;
            }
        }
        for p in due.drain(..) {
            if let Err(e) = tx.send(&p) {
                if e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(14) {
                    eprintln!("tunstack-wan: {} write to {}: {e}", dir.name, tx.name());
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                // Anything else (e.g. the kernel refusing one packet) loses that packet only.
                log::debug!("{} write to {}: {e}", dir.name, tx.name());
            }
        }
    }
}

fn write_stats(path: Option<&PathBuf>, dirs: &[Arc<Direction>]) -> io::Result<String> {
    let lines: Vec<(&str, WanStats)> = dirs
        .iter()
        .map(|d| (d.name, d.lock().stats().clone()))
        .collect();
    let text: String = lines
        .iter()
        .map(|(name, s)| format!("{name} {}\n", s.to_line()))
        .collect();
    if let Some(path) = path {
        // Replace the file whole, so a reader never sees half of it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(text)
}

fn open(name: &str, mtu: usize) -> io::Result<(TunReader, TunWriter)> {
    let dev = TunDevice::open(name)?;
    // Up, without an address: the endpoint namespaces give them theirs after the move.
    tunstack::link::tun::set_txqueuelen(dev.name(), 1000)?;
    let status = std::process::Command::new("ip")
        .args(["link", "set", "dev", dev.name(), "mtu", &mtu.to_string()])
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("cannot set the MTU of {name}")));
    }
    Ok(dev.split())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let config = WanConfig {
        delay: args.delay,
        jitter: args.jitter,
        loss: args.loss,
        burst: args.burst,
        reorder: args.reorder,
        reorder_delay: args.reorder_delay,
        rate_bps: args.rate,
        queue_bytes: args.queue,
        burst_bytes: args.bucket,
        max_in_flight: args.max_in_flight,
    };
    let ((rx_a, tx_a), (rx_b, tx_b)) =
        match (open(&args.tun_a, args.mtu), open(&args.tun_b, args.mtu)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("tunstack-wan: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut signals = match Signals::new([SIGUSR1, SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tunstack-wan: signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clock = Clock::new();
    let stop = Arc::new(AtomicBool::new(false));
    let seed_b = args.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let a_to_b = Arc::new(Direction {
        name: "a_to_b",
        link: Mutex::new(WanLink::new(config.clone(), args.seed)),
        wake: Condvar::new(),
    });
    let b_to_a = Arc::new(Direction {
        name: "b_to_a",
        link: Mutex::new(WanLink::new(config, seed_b)),
        wake: Condvar::new(),
    });
    let dirs = [Arc::clone(&a_to_b), Arc::clone(&b_to_a)];
    for (dir, rx, tx) in [(&a_to_b, rx_a, tx_b), (&b_to_a, rx_b, tx_a)] {
        let (d, s) = (Arc::clone(dir), Arc::clone(&stop));
        thread::spawn(move || reader(d, rx, clock, s));
        let (d, s) = (Arc::clone(dir), Arc::clone(&stop));
        thread::spawn(move || releaser(d, tx, clock, s));
    }
    println!("tunstack-wan: ready {} <-> {}", args.tun_a, args.tun_b);
    let _ = io::stdout().flush();

    // The signal thread is this one; a closed TUN ends the process too (checked each 200 ms).
    let handle = signals.handle();
    {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(200));
            }
            handle.close();
        });
    }
    for signal in signals.forever() {
        if signal != SIGUSR1 {
            break;
        }
        if let Err(e) = write_stats(args.stats.as_ref(), &dirs) {
            eprintln!("tunstack-wan: writing stats: {e}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Closed TUN or a signal: final counters, then exit (reader threads may still block).
    match write_stats(args.stats.as_ref(), &dirs) {
        Ok(text) => eprint!("{text}"),
        Err(e) => eprintln!("tunstack-wan: writing stats: {e}"),
    }
    ExitCode::SUCCESS
}
