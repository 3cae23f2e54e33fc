//! The stack: the sans-IO host ([`Interface`]) and the threaded runtime, whose stack thread
//! owns the device and drives the layers and their timers ([`evloop`] is the other runtime).
//!
//! ```text
//!   reader thread                    stack thread                         socket callers
//!  ┌─────────────┐  Packet   ┌───────────────────────────────┐  lock, tcp calls,  ┌──────────┐
//!  │ device.recv ├──────────▶│ wait for packet / wake / timer│◀── Wake ───────────┤ TcpStream│
//!  └─────────────┘  channel  │ lock: iface.handle_packet(now)│                    │ read/    │
//!                            │       iface.handle_timeout    │  notify the woken  │ write    │
//!                            │       iface.poll_transmit ────┼──────────────────▶ │ (Condvar │
//!                            │                               │  per socket)       │  each)   │
//!                            │ unlock; device.send(packets)  │                    └──────────┘
//!                            └───────────────────────────────┘
//! ```
//!
//! The protocol core ([`Interface`], `tcp::Tcp`) is sans-IO; this module is the only place
//! that reads the clock for it and that writes to the device. The lock protects the core's
//! state; it is never held across device I/O (docs/architecture.md, principle 5).
//!
//! This is the threaded runtime, behind the blocking socket API. [`evloop`] is the other
//! one: a single thread that owns the device and the stack with no lock at all, and runs
//! a readiness-driven application (the evented HTTP server) on the sockets that changed.

pub mod evloop;
mod iface;
mod observe;
mod round;

pub use iface::{IfaceStats, Interface, DEFAULT_TTL};

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::link::ethernet_layer::{EthernetConfig, EthernetLayer, EthernetStats};
use crate::link::fault::{FaultConfig, FaultStats, Faults};
use crate::link::offload::RxMeta;
use crate::tcp::{self, ConnId, ListenerId, State, TcpStats};
use crate::time::{Clock, Instant};
use crate::trace::Tracer;
use crate::udp::UdpStats;

pub use crate::link::Direction;

/// Called with every packet that crosses the device, outside the lock (pcap, `--trace`).
pub type PacketHook = Box<dyn FnMut(Direction, &[u8]) + Send>;

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The address the stack answers as.
    pub addr: Ipv4Addr,
    /// Transport-layer settings.
    pub tcp: tcp::Config,
    /// Seed for ISN secrets and ephemeral ports; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Largest packet the device carries; the read buffer size.
    pub mtu: usize,
    /// `Some` on a TAP device: the device carries Ethernet frames, and an
    /// [`EthernetLayer`] (framing + ARP) sits between it and the IP host. `None` on a TUN.
    pub ethernet: Option<EthernetConfig>,
    /// An IPv6 address to answer ICMPv6 echo on (TUN mode; TCP/UDP are IPv4-only).
    pub addr6: Option<std::net::Ipv6Addr>,
    /// Where `--trace`/`--step` events go; `None` (the default) costs nothing.
    pub tracer: Option<Tracer>,
    /// Faults to inject in both directions, and their seed (`None`: a perfect link).
    pub faults: Option<(FaultConfig, u64)>,
}

impl StackConfig {
    /// Defaults for a stack answering as `addr`.
    pub fn new(addr: Ipv4Addr) -> StackConfig {
        StackConfig {
            addr,
            tcp: tcp::Config::default(),
            seed: None,
            mtu: 1500,
            ethernet: None,
            addr6: None,
            tracer: None,
            faults: None,
        }
    }
}

/// Most packets handled in one locked batch, so socket callers are not starved.
const MAX_BATCH: usize = 64;
/// Most output buffers kept for reuse between rounds.
const MAX_SPARE: usize = 256;

enum Event {
    Packet(Vec<u8>),
    Wake,
    Stop,
}

/// Protocol state shared between the stack thread and socket handles.
pub(crate) struct Shared {
    core: Mutex<Interface>,
    /// The Ethernet layer in TAP mode. Only the stack thread drives it; the lock is for
    /// [`StackHandle::stats`]. Lock order: `core` before `link`.
    link: Mutex<Option<EthernetLayer>>,
    /// Signalled whenever something socket-visible changed (data, space, state, accept),
    /// for waiters that are not about one TCP socket ([`StackHandle::shutdown`], UDP).
    pub(crate) cond: Condvar,
    /// Threads waiting on `cond`; when none, the loop skips the notify (a syscall).
    global_waiters: AtomicUsize,
    /// One condition variable per socket, all used with the `core` lock: a change to a
    /// connection wakes only the threads blocked on it, not every thread of the server
    /// (with one `notify_all` for everything, 50 keep-alive connections meant 50 wake-ups
    /// per segment, 49 of them for nothing).
    waiters: Mutex<Waiters>,
    clock: Clock,
    tx: Mutex<mpsc::Sender<Event>>,
    wake_pending: AtomicBool,
    tracer: Option<Tracer>,
    /// The fault injectors (`--loss` etc.), used by the stack thread; here for `stats`.
    faults: Mutex<Option<Faults>>,
    /// Set when the stack thread has run its last round and ended.
    stopped: Mutex<bool>,
    stopped_cond: Condvar,
}

#[derive(Default)]
struct Waiters {
    conns: HashMap<ConnId, Arc<Condvar>>,
    listeners: HashMap<ListenerId, Arc<Condvar>>,
}

/// A handle on a running stack. Cheap to clone; the socket API takes one.
#[derive(Clone)]
pub struct StackHandle {
    pub(crate) shared: Arc<Shared>,
}

/// A snapshot of every layer's counters ([`evloop::snapshot`] takes one).
#[derive(Debug, Clone)]
pub struct StackStats {
    /// Internet layer and demultiplexing.
    pub ip: IfaceStats,
    /// Transport layer.
    pub tcp: TcpStats,
    /// UDP.
    pub udp: UdpStats,
    /// Ethernet and ARP (TAP mode only).
    pub link: Option<EthernetStats>,
    /// Number of connections in each state.
    pub states: Vec<(State, usize)>,
    /// Faults injected on purpose, both directions added up.
    pub faults: FaultStats,
}

impl StackHandle {
    /// Lock the protocol core. A panic in another holder does not make the state unusable
    /// for the rest (the core's invariants do not depend on unwinding), so poisoning is
    /// ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Interface> {
        self.shared.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait on the stack's global condition variable (signalled on any change), at most
    /// until `deadline`.
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Interface>,
        deadline: Option<std::time::Instant>,
    ) -> MutexGuard<'a, Interface> {
        self.shared.global_waiters.fetch_add(1, Ordering::SeqCst);
        let guard = self.wait_on(&self.shared.cond, guard, deadline);
        self.shared.global_waiters.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Wait on a socket's condition variable (from [`StackHandle::conn_waiter`] or
    /// [`StackHandle::listener_waiter`]), at most until `deadline`.
    pub(crate) fn wait_on<'a>(
        &self,
        cond: &Condvar,
        guard: MutexGuard<'a, Interface>,
        deadline: Option<std::time::Instant>,
    ) -> MutexGuard<'a, Interface> {
        match deadline {
            None => cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                cond.wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.shared
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The condition variable signalled when connection `id` changes; registered until
    /// [`StackHandle::forget_conn`].
    pub(crate) fn conn_waiter(&self, id: ConnId) -> Arc<Condvar> {
        self.waiters().conns.entry(id).or_default().clone()
    }

    /// Stop signalling for connection `id` (its socket is gone).
    pub(crate) fn forget_conn(&self, id: ConnId) {
        self.waiters().conns.remove(&id);
    }

    /// The condition variable signalled when listener `id` has a connection to accept.
    pub(crate) fn listener_waiter(&self, id: ListenerId) -> Arc<Condvar> {
        self.waiters().listeners.entry(id).or_default().clone()
    }

    /// Stop signalling for listener `id`.
    pub(crate) fn forget_listener(&self, id: ListenerId) {
        self.waiters().listeners.remove(&id);
    }

    /// The current time on the stack's clock.
    pub(crate) fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Ask the stack thread to run a round: something an application call queued (data,
    /// FIN, window update) needs to go out. Coalesced: one pending wake-up at a time.
    pub(crate) fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            let tx = self.shared.tx.lock().unwrap_or_else(|e| e.into_inner());
            let _ = tx.send(Event::Wake);
        }
    }

    /// The tracer the stack was started with, for the layers above it (socket, http).
    pub fn tracer(&self) -> Option<&Tracer> {
        self.shared.tracer.as_ref()
    }

    /// The address the stack answers as.
    pub fn addr(&self) -> Ipv4Addr {
        self.lock().addr()
    }

    /// Counters of every layer.
    pub fn stats(&self) -> StackStats {
        // The stack thread never holds `faults` and `core` together; read the fault
        // counters first all the same.
        let faults = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Faults::stats)
            .unwrap_or_default();
        let core = self.lock();
        let link = self.shared.link.lock().unwrap_or_else(|e| e.into_inner());
        let mut stats = round::snapshot(&core, link.as_ref(), None);
        stats.faults = faults;
        stats
    }

    /// Close every connection gracefully (FIN), wait up to `grace` for the closes to
    /// finish, reset whatever is left, and stop the stack thread.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        {
            let now = self.now();
            round::close_all(&mut self.lock(), now);
        }
        self.wake();
        let mut core = self.lock();
        loop {
            if !round::any_open(&core) || std::time::Instant::now() >= deadline {
                break;
            }
            core = self.wait(core, Some(deadline));
        }
        round::abort_open(&mut core, self.now());
        drop(core);
        // The stack thread runs one last round (which puts the resets on the wire) when it
        // takes the stop; wait for it to end, for at most a second.
        let tx = self.shared.tx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(Event::Stop);
        drop(tx);
        let limit = std::time::Instant::now() + Duration::from_secs(1);
        let mut stopped = self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let left = limit.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                log::warn!("stack: the stack thread did not stop within a second");
                break;
            }
            stopped = self
                .shared
                .stopped_cond
                .wait_timeout(stopped, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Fire the due timers of the host and the Ethernet layer, collect what to put on the
/// device into `outbound` (frames in TAP mode), and return the next deadline.
fn timers_and_transmit(
    core: &mut Interface,
    link: &mut Option<EthernetLayer>,
    now: Instant,
    outbound: &mut Vec<Vec<u8>>,
    spare: &mut Vec<Vec<u8>>,
) -> Option<Instant> {
    round::fire_timers(core, link, now);
    match link.as_mut() {
        Some(eth) => {
            while let Some(p) = core.poll_transmit(now) {
                eth.send_ip(p, now);
            }
        }
        None => loop {
            // TUN: packets go straight to the device, built in buffers reused across
            // rounds (no allocation per packet).
            let mut p = spare.pop().unwrap_or_default();
            // The threaded runtime never enables TSO, so the metadata is always the
            // default (an ordinary packet) and the device needs none of it.
            if core.poll_transmit_into(now, &mut p).is_none() {
                spare.push(p);
                break;
            }
            outbound.push(p);
        },
    }
    if let Some(eth) = link.as_mut() {
        while let Some(frame) = eth.poll_transmit() {
            outbound.push(frame);
        }
    }
    round::next_deadline(core, link.as_ref(), None)
}

/// Start a stack on a device given as its two halves: `read` blocks until one IP packet
/// arrives (it may return `WouldBlock`/`TimedOut` to let the reader check for shutdown),
/// `write` sends one. A reader thread feeds the stack thread; the returned handle is what
/// sockets are opened on.
pub fn start<R, W>(
    mut read: R,
    mut write: W,
    config: StackConfig,
    mut hook: Option<PacketHook>,
) -> io::Result<StackHandle>
where
    R: FnMut(&mut [u8]) -> io::Result<usize> + Send + 'static,
    W: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
{
    let seed = config.seed.unwrap_or_else(rand::random);
    let mut iface = Interface::new(config.addr, config.tcp.clone(), seed);
    iface.set_ipv6(config.addr6);
    iface.tcp_mut().set_trace(config.tracer.is_some());
    let tracer = config.tracer.clone();
    let tap = config.ethernet.is_some();
    iface.set_mtu(config.mtu);
    let faults = config
        .faults
        .clone()
        .filter(|(f, _)| !f.is_noop())
        .map(|(f, seed)| Faults::new(f, seed));
    let (tx, rx) = mpsc::channel::<Event>();
    let shared = Arc::new(Shared {
        core: Mutex::new(iface),
        link: Mutex::new(config.ethernet.clone().map(EthernetLayer::new)),
        cond: Condvar::new(),
        global_waiters: AtomicUsize::new(0),
        waiters: Mutex::new(Waiters::default()),
        clock: Clock::new(),
        tx: Mutex::new(tx.clone()),
        wake_pending: AtomicBool::new(false),
        tracer: tracer.clone(),
        faults: Mutex::new(faults),
        stopped: Mutex::new(false),
        stopped_cond: Condvar::new(),
    });
    let handle = StackHandle {
        shared: shared.clone(),
    };

    let mtu = config.mtu.max(576);
    let reader_tx = tx;
    // Packet buffers go round: the reader fills one, the stack thread handles it and sends
    // it back, so the steady state allocates nothing per packet.
    let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
    thread::Builder::new()
        .name("tunstack-rx".into())
        .spawn(move || {
            let size = mtu + 64;
            let mut buf: Vec<u8> = Vec::new();
            loop {
                if buf.capacity() < size {
                    buf = pool_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(size));
                }
                buf.resize(size, 0);
                match read(&mut buf) {
                    Ok(0) => continue,
                    Ok(n) => {
                        buf.truncate(n);
                        if reader_tx
                            .send(Event::Packet(std::mem::take(&mut buf)))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        // Nothing arrived; stop once the stack thread is gone.
                        if reader_tx.send(Event::Wake).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        log::error!("link: device read failed: {e}");
                        break;
                    }
                }
            }
        })?;

    let loop_handle = handle.clone();
    thread::Builder::new()
        .name("tunstack".into())
        .spawn(move || {
            let shared = &loop_handle.shared;
            let mut inbound: Vec<Vec<u8>> = Vec::with_capacity(MAX_BATCH);
            let mut outbound: Vec<Vec<u8>> = Vec::new();
            // Output buffers reused from one round to the next.
            let mut spare: Vec<Vec<u8>> = Vec::new();
            let mut next_timer: Option<Instant> = None;
            let mut woken: Vec<ConnId> = Vec::new();
            let mut woken_listeners: Vec<ListenerId> = Vec::new();
            loop {
                let first = match next_timer {
                    None => rx.recv().map_err(|_| ()),
                    Some(at) => {
                        let wait = at.saturating_duration_since(shared.clock.now());
                        match rx.recv_timeout(wait) {
                            Ok(ev) => Ok(ev),
                            Err(mpsc::RecvTimeoutError::Timeout) => Ok(Event::Wake),
                            Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                        }
                    }
                };
                let Ok(first) = first else { break };
                shared.wake_pending.store(false, Ordering::Release);
                let mut stop = false;
                let mut event = Some(first);
                while let Some(ev) = event.take() {
                    match ev {
                        Event::Packet(p) => inbound.push(p),
                        Event::Wake => {}
                        Event::Stop => stop = true,
                    }
                    if inbound.len() < MAX_BATCH {
                        event = rx.try_recv().ok();
                    }
                }
                if stop {
                    // One last round first: what the stop left queued (the resets of
                    // `shutdown`) goes on the wire.
                    log::debug!("stack: stopping");
                }
                if let Some(hook) = hook.as_mut() {
                    for p in &inbound {
                        hook(Direction::In, p);
                    }
                }
                // Fault injection (link::fault): between the device and the stack, in both
                // directions; what it holds back (reorder, delay) comes out on its own timer.
                // Not held across the round: a traced round waits for the user in step
                // mode, and `stats` (GET /_stats, SIGUSR1, the exit) takes this lock.
                if let Some(f) = shared
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    f.inbound.filter(&mut inbound, shared.clock.now());
                }
                let (changed, wake_all) = if let Some(t) = tracer.as_ref() {
                    // The traced round reads `take_events`, which drops the per-connection
                    // wake lists: wake every waiter (tracing is for study, not speed).
                    let changed = observe::traced_round(
                        &loop_handle,
                        t,
                        tap,
                        &mut inbound,
                        &mut outbound,
                        &mut next_timer,
                    );
                    (changed, changed)
                } else {
                    let mut core = loop_handle.lock();
                    let mut link = shared.link.lock().unwrap_or_else(|e| e.into_inner());
                    let now = shared.clock.now();
                    for p in inbound.drain(..) {
                        round::deliver(&mut core, &mut link, &p, RxMeta::default(), now);
                        // Back to the reader (it is gone only when we are stopping).
                        let _ = pool_tx.send(p);
                    }
                    next_timer =
                        timers_and_transmit(&mut core, &mut link, now, &mut outbound, &mut spare);
                    drop(link);
                    let wake_all = core
                        .tcp_mut()
                        .take_wakeups(&mut woken, &mut woken_listeners);
                    // UDP sockets wait on the global condition variable.
                    let udp = core.udp_mut().take_events();
                    (
                        wake_all || udp || !woken.is_empty() || !woken_listeners.is_empty(),
                        wake_all,
                    )
                };
                if let Some(f) = shared
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    f.outbound.filter(&mut outbound, shared.clock.now());
                    next_timer = next_timer.into_iter().chain(f.poll_at()).min();
                }
                // Notifying after unlocking is safe: a waiter checks its condition and
                // starts waiting under the lock, so it either saw the change or is waiting.
                if changed {
                    let waiters = loop_handle.waiters();
                    if wake_all {
                        waiters.conns.values().for_each(|c| c.notify_all());
                        waiters.listeners.values().for_each(|c| c.notify_all());
                    } else {
                        // A bulk transfer names the same connection once per segment.
                        woken.dedup();
                        for id in woken.iter() {
                            if let Some(c) = waiters.conns.get(id) {
                                c.notify_all();
                            }
                        }
                        for id in woken_listeners.iter() {
                            if let Some(c) = waiters.listeners.get(id) {
                                c.notify_all();
                            }
                        }
                    }
                }
                woken.clear();
                woken_listeners.clear();
                if changed && shared.global_waiters.load(Ordering::SeqCst) > 0 {
                    shared.cond.notify_all();
                }
                for p in outbound.drain(..) {
                    if let Some(t) = tracer.as_ref() {
                        round::trace_packet(t, tap, Direction::Out, &p, 0, false);
                    }
                    if let Some(hook) = hook.as_mut() {
                        hook(Direction::Out, &p);
                    }
                    if let Err(e) = write(&p) {
                        log::debug!("link: device write failed: {e}");
                    }
                    // Keep a bounded number for the next round.
                    if spare.len() < MAX_SPARE {
                        spare.push(p);
                    }
                }
                if stop {
                    break;
                }
            }
            *shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
            shared.stopped_cond.notify_all();
        })?;
    // One round right away, so that what the layers queued at start (TAP: the gratuitous
    // ARP) goes out before any packet arrives.
    handle.wake();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::fault::FaultConfig;

    /// A paused `--step` (a tracer that blocks) must not hold up `stats` (GET /_stats,
    /// SIGUSR1, the exit), also with fault injection on: the stack thread does not hold
    /// the fault injectors' lock across a traced round.
    #[test]
    fn stats_do_not_wait_for_a_paused_tracer() {
        let (paused_tx, paused_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let paused_tx = Mutex::new(paused_tx);
        let mut config = StackConfig::new(Ipv4Addr::new(10, 0, 0, 2));
        config.tracer = Some(Tracer::new(move |_| {
            // The first event pauses until the test says so, as a stepper waits for Enter.
            let _ = paused_tx.lock().unwrap_or_else(|e| e.into_inner()).send(());
            let _ = release_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(Duration::from_secs(30));
        }));
        config.faults = Some((
            FaultConfig {
                // Faults on (so the injectors exist), none of which hits one packet with
                // this seed.
                loss: 0.001,
                ..FaultConfig::default()
            },
            1,
        ));
        let mut sent = false;
        let stack = start(
            move |buf: &mut [u8]| {
                if std::mem::replace(&mut sent, true) {
                    std::thread::sleep(Duration::from_millis(10));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                buf[..4].copy_from_slice(&[0x45, 0, 0, 4]);
                Ok(4)
            },
            |_: &[u8]| Ok(()),
            config,
            None,
        )
        .expect("start");
        paused_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the tracer was reached");
        let (done_tx, done_rx) = mpsc::channel();
        let reader = stack.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(reader.stats());
        });
        let stats = done_rx.recv_timeout(Duration::from_secs(10));
        let _ = release_tx.send(());
        assert!(stats.is_ok(), "stats waited for the paused tracer");
    }
}
