//! The threaded runtime (`serve --threaded`, [`start`]): a stack thread owns the device and
//! drives the host ([`Interface`]) and its timers; socket calls from other threads
//! (the blocking [`crate::socket::TcpStream`]) take the lock on the host.
//!
//! ```text
//!                       stack thread                              socket callers
//!            ┌───────────────────────────────────┐  lock, tcp calls,   ┌──────────┐
//!            │ epoll: device fd / waker / timer  │◀── wake (waker) ────┤ TcpStream│
//!  device ──▶│ device.recv (batch, no lock)      │                     │ read/    │
//!            │ lock: iface.handle_packet(now)    │                     │ write    │
//!            │       iface.handle_timeout        │  notify the woken   │ (Condvar │
//!            │       iface.poll_transmit ────────┼───────────────────▶ │  per     │
//!  device ◀──│ unlock; device.send(packets)      │  (Condvar each)     │  socket) │
//!            └───────────────────────────────────┘                     └──────────┘
//! ```
//!
//! This runtime is the only place, beside [`super::evloop`], that reads the clock for the
//! sans-IO core and that reads and writes the device — any [`crate::link::Device`], with
//! whatever middleware wraps it (fault injection, capture: [`crate::link::middleware`]),
//! the same trait and the same wrappers as the event loop. The lock protects the core's
//! state; it is never held across device I/O (docs/architecture.md, principle 5).
//!
//! [`super::evloop`] is the other runtime: a single thread that owns the device and the
//! stack with no lock at all, and runs a readiness-driven application (the evented HTTP
//! server) on the sockets that changed.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

mod observe;

use super::{round, Interface, StackConfig, StackStats};
use crate::link::ethernet_layer::EthernetLayer;
use crate::link::fault::FaultStats;
use crate::link::offload::{RxMeta, TxMeta};
use crate::link::Device;
use crate::link::Direction;
use crate::tcp::{ConnId, ListenerId};
use crate::time::{Clock, Instant};
use crate::trace::Tracer;

/// Most packets handled in one locked batch, so socket callers are not starved.
const MAX_BATCH: usize = 64;
/// Most output buffers kept for reuse between rounds.
const MAX_SPARE: usize = 256;

const DEVICE: Token = Token(0);
const WAKER: Token = Token(1);

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
    /// Wakes the stack thread's epoll (a socket call queued something, or a stop).
    waker: Waker,
    wake_pending: AtomicBool,
    /// Set by [`StackHandle::shutdown`]: the stack thread runs one last round and ends.
    stop: AtomicBool,
    tracer: Option<Tracer>,
    /// The device's fault counters (`--loss` etc.), copied by the stack thread after each
    /// round when a fault injector is in the chain; here for `stats`.
    faults: Mutex<Option<FaultStats>>,
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
            if let Err(e) = self.shared.waker.wake() {
                log::warn!("stack: cannot wake the stack thread: {e}");
            }
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
            .clone();
        let core = self.lock();
        let link = self.shared.link.lock().unwrap_or_else(|e| e.into_inner());
        round::snapshot(&core, link.as_ref(), faults)
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
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.shared.waker.wake() {
            log::warn!("stack: cannot wake the stack thread: {e}");
        }
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

/// Start a stack on `device` (any [`Device`], with whatever middleware wraps it): a stack
/// thread owns the device, waits on its descriptor, a waker and the next timer, and runs
/// the rounds; the returned handle is what sockets are opened on.
pub fn start<D: Device + 'static>(device: D, config: StackConfig) -> io::Result<StackHandle> {
    let seed = config.seed.unwrap_or_else(rand::random);
    let mut iface = Interface::new(config.addr, config.tcp.clone(), seed);
    iface.set_ipv6(config.addr6);
    iface.tcp_mut().set_trace(config.tracer.is_some());
    let tracer = config.tracer.clone();
    let tap = config.ethernet.is_some();
    iface.set_mtu(config.mtu);
    let poll = Poll::new()?;
    let fd = device.raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), DEVICE, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let shared = Arc::new(Shared {
        core: Mutex::new(iface),
        link: Mutex::new(config.ethernet.clone().map(EthernetLayer::new)),
        cond: Condvar::new(),
        global_waiters: AtomicUsize::new(0),
        waiters: Mutex::new(Waiters::default()),
        clock: Clock::new(),
        waker,
        wake_pending: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        tracer: tracer.clone(),
        faults: Mutex::new(device.fault_stats()),
        stopped: Mutex::new(false),
        stopped_cond: Condvar::new(),
    });
    let handle = StackHandle {
        shared: shared.clone(),
    };
    let rx_len = device.recv_buf_len().max(config.mtu.max(576) + 64);
    let loop_handle = handle.clone();
    thread::Builder::new()
        .name("tunstack".into())
        .spawn(move || {
            let mut device = device;
            let mut poll = poll;
            let mut events = Events::with_capacity(8);
            let shared = &loop_handle.shared;
            let mut inbound: Vec<(Vec<u8>, RxMeta)> = Vec::with_capacity(MAX_BATCH);
            let mut outbound: Vec<Vec<u8>> = Vec::new();
            // Packet buffers reused from one round to the next, both ways (no allocation
            // per packet in the steady state).
            let mut spare_in: Vec<Vec<u8>> = Vec::new();
            let mut spare: Vec<Vec<u8>> = Vec::new();
            let mut next_timer: Option<Instant> = None;
            let mut woken: Vec<ConnId> = Vec::new();
            let mut woken_listeners: Vec<ListenerId> = Vec::new();
            // One round right away, so that what the layers queued at start (TAP: the
            // gratuitous ARP) goes out before any packet arrives.
            let mut more_input = true;
            let mut device_failed = false;
            loop {
                let timeout = if more_input {
                    Some(Duration::ZERO)
                } else {
                    let now = shared.clock.now();
                    [next_timer, device.poll_at()]
                        .into_iter()
                        .flatten()
                        .min()
                        .map(|at| at.saturating_duration_since(now))
                };
                match poll.poll(&mut events, timeout) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::error!("stack: epoll failed: {e}");
                        break;
                    }
                }
                shared.wake_pending.store(false, Ordering::Release);
                let stop = shared.stop.load(Ordering::SeqCst);
                if stop {
                    // One last round first: what the stop left queued (the resets of
                    // `shutdown`) goes on the wire.
                    log::debug!("stack: stopping");
                }
                // Read a batch from the device without the lock: the socket callers keep
                // the core meanwhile.
                let now = shared.clock.now();
                while !device_failed && inbound.len() < MAX_BATCH {
                    let mut buf = spare_in.pop().unwrap_or_default();
                    buf.resize(rx_len, 0);
                    match device.recv(&mut buf, now) {
                        Ok(Some((n, meta))) => {
                            buf.truncate(n);
                            inbound.push((buf, meta));
                        }
                        Ok(None) => {
                            spare_in.push(buf);
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => spare_in.push(buf),
                        Err(e) => {
                            // The device is gone (deleted interface): keep serving what is
                            // left without it rather than spinning on the error.
                            log::error!("link: device read failed: {e}");
                            device_failed = true;
                        }
                    }
                }
                // Stopped at MAX_BATCH: the device may hold more, and edge-triggered epoll
                // would not say so again.
                more_input = inbound.len() >= MAX_BATCH;
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
                    for (p, meta) in inbound.drain(..) {
                        round::deliver(&mut core, &mut link, &p, meta, now);
                        spare_in.push(p);
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
                spare_in.truncate(MAX_BATCH);
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
                let now = shared.clock.now();
                for p in outbound.drain(..) {
                    if let Some(t) = tracer.as_ref() {
                        round::trace_packet(t, tap, Direction::Out, &p, 0, false);
                    }
                    // The threaded runtime builds no super-segment: ordinary packets only.
                    if let Err(e) = device.send(&p, TxMeta::default(), now) {
                        log::debug!("link: device write failed: {e}");
                    }
                    // Keep a bounded number for the next round.
                    if spare.len() < MAX_SPARE {
                        spare.push(p);
                    }
                }
                if let Err(e) = device.release(now) {
                    log::debug!("link: device write failed: {e}");
                }
                if let Some(stats) = device.fault_stats() {
                    *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
                }
                if stop {
                    break;
                }
            }
            *shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
            shared.stopped_cond.notify_all();
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::fault::{FaultConfig, FaultDevice};
    use crate::link::memory;
    use std::sync::mpsc;

    /// A paused `--step` (a tracer that blocks) must not hold up `stats` (GET /_stats,
    /// SIGUSR1, the exit), also with fault injection on: the stack thread never holds the
    /// lock of the fault counters across a traced round.
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
        let (ours, mut peer) = memory::pair().expect("memory link");
        // Faults on (so the injectors exist), none of which hits one packet with this seed.
        let faults = FaultConfig {
            loss: 0.001,
            ..FaultConfig::default()
        };
        let device = FaultDevice::new(ours, faults, 1);
        peer.send(&[0x45, 0, 0, 4], TxMeta::default(), Instant::from_millis(0))
            .expect("send");
        let stack = start(device, config).expect("start");
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
