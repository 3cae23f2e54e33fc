//! The stack: the event loop that owns the device and drives the layers and their timers.
//!
//! ```text
//!   reader thread                    stack thread                         socket callers
//!  ┌─────────────┐  Packet   ┌───────────────────────────────┐  lock, tcp calls,  ┌──────────┐
//!  │ device.recv ├──────────▶│ wait for packet / wake / timer│◀── Wake ───────────┤ TcpStream│
//!  └─────────────┘  channel  │ lock: iface.handle_packet(now)│                    │ read/    │
//!                            │       iface.handle_timeout    │  notify_all        │ write    │
//!                            │       iface.poll_transmit ────┼──────────────────▶ │ (Condvar)│
//!                            │ unlock; device.send(packets)  │                    └──────────┘
//!                            └───────────────────────────────┘
//! ```
//!
//! The protocol core ([`Interface`], `tcp::Tcp`) is sans-IO; this module is the only place
//! that reads the clock for it and that writes to the device. The lock protects the core's
//! state; it is never held across device I/O (DESIGN principle 5).

mod iface;

pub use iface::{IfaceStats, Interface, DEFAULT_TTL};

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::link::fault::{FaultConfig, FaultStats, Faults};
use crate::tcp::{self, State, TcpStats};
use crate::time::{Clock, Instant};

/// Which way a packet crossed the device (for capture and tracing hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the link to the stack.
    In,
    /// From the stack to the link.
    Out,
}

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
            faults: None,
        }
    }
}

/// Most packets handled in one locked batch, so socket callers are not starved.
const MAX_BATCH: usize = 64;

enum Event {
    Packet(Vec<u8>),
    Wake,
    Stop,
}

/// Protocol state shared between the stack thread and socket handles.
pub(crate) struct Shared {
    core: Mutex<Interface>,
    /// Signalled whenever something socket-visible changed (data, space, state, accept).
    pub(crate) cond: Condvar,
    clock: Clock,
    tx: Mutex<mpsc::Sender<Event>>,
    wake_pending: AtomicBool,
    /// The fault injectors (`--loss` etc.), used by the stack thread; here for `stats`.
    faults: Mutex<Option<Faults>>,
}

/// A handle on a running stack. Cheap to clone; the socket API takes one.
#[derive(Clone)]
pub struct StackHandle {
    pub(crate) shared: Arc<Shared>,
}

/// A snapshot of every layer's counters.
#[derive(Debug, Clone)]
pub struct StackStats {
    /// Internet layer and demultiplexing.
    pub ip: IfaceStats,
    /// Transport layer.
    pub tcp: TcpStats,
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

    /// Wait on the stack's condition variable, at most until `deadline`.
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Interface>,
        deadline: Option<std::time::Instant>,
    ) -> MutexGuard<'a, Interface> {
        match deadline {
            None => self
                .shared
                .cond
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                self.shared
                    .cond
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
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

    /// The address the stack answers as.
    pub fn addr(&self) -> Ipv4Addr {
        self.lock().addr()
    }

    /// Counters of every layer.
    pub fn stats(&self) -> StackStats {
        let core = self.lock();
        let mut states: Vec<(State, usize)> = Vec::new();
        for (_, _, _, state) in core.tcp().connection_states() {
            match states.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => states.push((state, 1)),
            }
        }
        let (ip, tcp) = (core.stats().clone(), core.tcp().stats().clone());
        drop(core);
        let faults = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        StackStats {
            ip,
            tcp,
            states,
            faults: faults.as_ref().map(Faults::stats).unwrap_or_default(),
        }
    }

    /// Close every connection gracefully (FIN), wait up to `grace` for the closes to
    /// finish, reset whatever is left, and stop the stack thread.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        {
            let mut core = self.lock();
            let now = self.now();
            let conns = core.tcp().connection_states();
            for (id, _, _, _) in conns {
                core.tcp_mut().shutdown(id, now);
            }
        }
        self.wake();
        let mut core = self.lock();
        loop {
            let open =
                core.tcp().connection_states().iter().any(|(_, _, _, s)| {
                    !matches!(s, State::Closed | State::TimeWait | State::Listen)
                });
            if !open || std::time::Instant::now() >= deadline {
                break;
            }
            core = self.wait(core, Some(deadline));
        }
        let now = self.now();
        let conns = core.tcp().connection_states();
        for (id, _, _, state) in conns {
            if !matches!(state, State::Closed | State::TimeWait | State::Listen) {
                core.tcp_mut().abort(id, now);
            }
        }
        drop(core);
        self.wake();
        // Give the loop a moment to put the resets on the wire, then stop it.
        std::thread::sleep(Duration::from_millis(20));
        let tx = self.shared.tx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(Event::Stop);
    }
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
    iface.set_mtu(config.mtu);
    let faults = config
        .faults
        .clone()
        .filter(|(f, _)| !f.is_noop())
        .map(|(f, seed)| Faults::new(f, seed));
    let (tx, rx) = mpsc::channel::<Event>();
    let shared = Arc::new(Shared {
        core: Mutex::new(iface),
        cond: Condvar::new(),
        clock: Clock::new(),
        tx: Mutex::new(tx.clone()),
        wake_pending: AtomicBool::new(false),
        faults: Mutex::new(faults),
    });
    let handle = StackHandle {
        shared: shared.clone(),
    };

    let mtu = config.mtu.max(576);
    let reader_tx = tx;
    thread::Builder::new()
        .name("tunstack-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; mtu + 64];
            loop {
                match read(&mut buf) {
                    Ok(0) => continue,
                    Ok(n) => {
                        if reader_tx.send(Event::Packet(buf[..n].to_vec())).is_err() {
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
            let mut next_timer: Option<Instant> = None;
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
                    log::debug!("stack: stopping");
                    break;
                }
                if let Some(hook) = hook.as_mut() {
                    for p in &inbound {
                        hook(Direction::In, p);
                    }
                }
                // Fault injection (link::fault): between the device and the stack.
                let mut faults = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(f) = faults.as_mut() {
                    f.inbound.filter(&mut inbound, shared.clock.now());
                }
                let changed = {
                    let mut core = loop_handle.lock();
                    let now = shared.clock.now();
                    for p in inbound.drain(..) {
                        core.handle_packet(&p, now);
                    }
                    if core.poll_at().is_some_and(|at| at <= now) {
                        core.handle_timeout(now);
                    }
                    while let Some(p) = core.poll_transmit(now) {
                        outbound.push(p);
                    }
                    if let Some(f) = faults.as_mut() {
                        f.outbound.filter(&mut outbound, now);
                    }
                    next_timer = [core.poll_at(), faults.as_ref().and_then(Faults::poll_at)]
                        .into_iter()
                        .flatten()
                        .min();
                    core.tcp_mut().take_events()
                };
                drop(faults);
                if changed {
                    shared.cond.notify_all();
                }
                for p in outbound.drain(..) {
                    if let Some(hook) = hook.as_mut() {
                        hook(Direction::Out, &p);
                    }
                    if let Err(e) = write(&p) {
                        log::debug!("link: device write failed: {e}");
                    }
                }
            }
        })?;
    Ok(handle)
}
