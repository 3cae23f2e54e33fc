//! The run-to-completion event loop: one thread owns the device and the whole stack, and
//! runs the application on the sockets that became ready, with no lock and no hand-off.
//!
//! ```text
//!  ┌────────────────────────── one thread, one round ───────────────────────────────┐
//!  │ epoll_wait(device fd, waker; timeout = min(stack timers, device.poll_at, app)) │
//!  │ drain the device, non-blocking, at most MAX_BATCH packets                      │
//!  │    device.recv → [EthernetLayer] → Interface::handle_packet                    │
//!  │ Interface::handle_timeout (and the Ethernet layer's) when due                  │
//!  │ transmit what that produced (handshake replies, the ACK of a FIN)              │
//!  │ App::poll(woken connections and listeners) — reads, writes, accepts, closes    │
//!  │ Interface::poll_transmit_into (reused buffer) → [EthernetLayer]                │
//!  │    → device.send (gathered), device.release                                    │
//!  └────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Compared with the threaded runtime ([`super::start`]: a stack thread and a thread per
//! connection meeting at a mutex and condition variables), a request here
//! costs no context switch: the packet that carries it is parsed, the handler runs and the
//! response segment is built in the same round, the way smoltcp's examples and
//! single-threaded epoll servers work. Several loops, each with its own device queue and
//! its own [`Interface`], scale across cores (`IFF_MULTI_QUEUE`): the kernel keeps a flow
//! on the queue we answer it on, so nothing is shared on the packet path.
//!
//! The device is any [`Device`]: a TUN queue, an in-memory link, or either wrapped in
//! middleware (fault injection, capture: [`crate::link::middleware`]), which the loop
//! neither knows nor pays for when there is none — `EventLoop<TunQueue>` calls the TUN
//! directly. The timeout includes [`Device::poll_at`], when middleware holds packets.
//!
//! Other threads talk to a loop only through a [`LoopHandle`] (an atomic flag and an
//! epoll waker): to stop it gracefully or to ask it for a statistics snapshot, which it
//! publishes on a [`StatsBoard`] between rounds.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

pub use super::round::snapshot;
use super::round::{self, deliver, emit_tcp, trace_packet};
use super::{Direction, Interface, StackConfig, StackStats};
use crate::link::ethernet_layer::EthernetLayer;
use crate::link::fault::FaultStats;
use crate::link::offload::{self, TxMeta};
use crate::link::Device;
use crate::socket::ready::{SocketError, TcpListener, UdpSocket};
use crate::tcp::{ConnId, ListenerId};
use crate::time::{Clock, Instant};
use crate::trace::{SocketCall, SocketEvent, TraceEvent, Tracer};

/// Whether the stack takes the device's offloads (checksums the kernel vouches for,
/// super-segments in both directions: `Interface::handle_packet_meta`, `set_tso`), so
/// that `serve` asks the TUN for them (`IFF_VNET_HDR`, `TUNSETOFFLOAD`).
pub const STACK_OFFLOADS: bool = true;

/// Most packets read from the device in one round before the application runs: bounds
/// the latency a burst adds to the connections it does not concern.
pub const MAX_BATCH: usize = 64;
/// A loop with activity publishes its statistics at most this often (and on request);
/// a loop that went quiet has published its final state within this period.
pub const STATS_PERIOD: Duration = Duration::from_millis(100);
/// During a graceful stop, the loop re-checks its connections at least this often.
const STOP_TICK: Duration = Duration::from_millis(20);
/// How often the application may be run again in one round when its own calls woke
/// further sockets (e.g. an accept that found data already queued).
const MAX_APP_PASSES: usize = 4;

const DEVICE: Token = Token(0);
const WAKER: Token = Token(1);

/// What the application sees in one round: the moment, which sockets became ready, and
/// the stack, reached only through the readiness API of [`crate::socket::ready`]
/// (`TcpSocket::recv(cx, …)`, `TcpListener::accept(cx)`, [`Context::ready_sockets`]).
pub struct Context<'a> {
    /// The stack; the socket layer's calls use it.
    pub(crate) iface: &'a mut Interface,
    /// The stack's clock.
    pub now: Instant,
    /// The same moment on the system clock (for application deadlines).
    pub wall: std::time::Instant,
    /// Connections with socket-visible changes (data, space, state), possibly repeated.
    pub(crate) woken: &'a [ConnId],
    /// Listeners with a connection to accept.
    pub(crate) woken_listeners: &'a [ListenerId],
    /// The lists above are incomplete: look at every socket.
    pub(crate) wake_all: bool,
    /// Something changed on a UDP socket.
    pub(crate) udp_ready: bool,
    stats: StatsSource<'a>,
    tracer: Option<&'a Tracer>,
}

struct StatsSource<'a> {
    link: Option<&'a EthernetLayer>,
    faults: Option<FaultStats>,
    board: Option<&'a StatsBoard>,
    queue: usize,
}

impl Context<'_> {
    /// With a tracer attached (`--trace`, `--step`), report a socket call the application
    /// made on connection `id`, then the transport layer's decisions it caused. Without
    /// one this is one `Option` test.
    #[inline]
    #[track_caller]
    pub(crate) fn trace_socket(&mut self, id: ConnId, call: SocketCall) {
        let Some(tracer) = self.tracer else {
            return;
        };
        let tcp = self.iface.tcp_mut();
        tracer.emit(TraceEvent::Socket(SocketEvent {
            local: tcp.local_addr(id),
            remote: tcp.peer_addr(id),
            call,
            thread: std::thread::current().name().map(str::to_string),
            at: std::panic::Location::caller(),
        }));
        emit_tcp(tracer, self.iface);
    }

    /// The tracer, when `--trace` or `--step` asked for one.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer
    }

    /// Publish this loop's statistics now on its [`StatsBoard`] (if it has one), so that
    /// a reader on this thread — a `GET /_stats` handler — sees the current state.
    pub fn publish_stats(&self) {
        if let Some(board) = self.stats.board {
            board.publish(
                self.stats.queue,
                snapshot(self.iface, self.stats.link, self.stats.faults.clone()),
            );
        }
    }
}

/// An application driven by an [`EventLoop`]: it never blocks, it reacts to readiness.
pub trait App {
    /// Once per round, after input and timers, and again when the application's own
    /// calls woke sockets. Do the work the ready sockets allow and return.
    fn poll(&mut self, cx: &mut Context<'_>);
    /// When the application next needs [`App::poll`] without any network activity (its
    /// own timeouts), on the system clock.
    fn poll_at(&self) -> Option<std::time::Instant>;
    /// The loop is stopping: stop accepting. The loop then closes every connection
    /// (FIN), keeps running rounds until they are closed or the grace period ends, and
    /// resets the rest.
    fn shutdown(&mut self, cx: &mut Context<'_>);
}

/// Two applications on one loop (the HTTP server and the UDP echo): each runs in every
/// round, on the same ready lists, and owns its own sockets.
impl<A: App, B: App> App for (A, B) {
    fn poll(&mut self, cx: &mut Context<'_>) {
        self.0.poll(cx);
        self.1.poll(cx);
    }

    fn poll_at(&self) -> Option<std::time::Instant> {
        match (self.0.poll_at(), self.1.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) {
        self.0.shutdown(cx);
        self.1.shutdown(cx);
    }
}

/// The statistics of several loops, published by each, for readers (`SIGUSR1`,
/// exit, `GET /_stats`). Readers never touch a loop's state; a loop takes this lock only
/// to publish (on request, or at most every [`STATS_PERIOD`] when active).
#[derive(Debug)]
pub struct StatsBoard {
    slots: Mutex<Vec<(u64, Option<StackStats>)>>,
    published: Condvar,
}

impl StatsBoard {
    /// A board for `queues` loops.
    pub fn new(queues: usize) -> Arc<StatsBoard> {
        Arc::new(StatsBoard {
            slots: Mutex::new(vec![(0, None); queues.max(1)]),
            published: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Option<StackStats>)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loop `queue` publishes its snapshot.
    pub fn publish(&self, queue: usize, stats: StackStats) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(queue) {
            slot.0 += 1;
            slot.1 = Some(stats);
        }
        drop(slots);
        self.published.notify_all();
    }

    /// The last published snapshot of each loop that published one (add them up with
    /// [`crate::stats::merge`]).
    pub fn latest(&self) -> Vec<StackStats> {
        self.lock().iter().filter_map(|(_, s)| s.clone()).collect()
    }

    /// Ask every loop of `handles` for a fresh snapshot and wait up to `timeout` for
    /// them (a stopped loop does not answer: its last snapshot is used).
    pub fn fresh(&self, handles: &[LoopHandle], timeout: Duration) -> Vec<StackStats> {
        let deadline = std::time::Instant::now() + timeout;
        let before: Vec<u64> = self.lock().iter().map(|(n, _)| *n).collect();
        for h in handles {
            h.request_stats();
        }
        let mut slots = self.lock();
        loop {
            let all_fresh = slots.iter().zip(&before).all(|((n, _), b)| n > b);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if all_fresh || left.is_zero() {
                break;
            }
            slots = self
                .published
                .wait_timeout(slots, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(slots);
        self.latest()
    }
}

struct Control {
    stop: AtomicBool,
    stats_wanted: AtomicBool,
}

/// Another thread's handle on a running [`EventLoop`]. Cheap to clone.
#[derive(Clone)]
pub struct LoopHandle {
    waker: Arc<Waker>,
    ctl: Arc<Control>,
}

impl LoopHandle {
    /// Ask the loop to stop gracefully ([`EventLoop::run`] returns after its grace period).
    pub fn stop(&self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Ask the loop to publish its statistics on its board at the end of its next round.
    pub fn request_stats(&self) {
        self.ctl.stats_wanted.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("stack: cannot wake the event loop: {e}");
        }
    }
}

/// The device side of the loop: the device (with whatever middleware wraps it) and the
/// per-packet trace.
struct Wire<D> {
    device: D,
    /// The device carries Ethernet frames (TAP): the trace cuts the IP packet inside the
    /// frame.
    tap: bool,
    /// `--trace`/`--step`: every packet that crosses the device is shown.
    tracer: Option<Tracer>,
}

impl<D: Device> Wire<D> {
    /// Put one packet (a frame in TAP mode) on the link.
    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) {
        if let Some(t) = self.tracer.as_ref() {
            trace_packet(
                t,
                self.tap,
                Direction::Out,
                packet,
                meta.gso_size,
                meta.csum_partial,
            );
        }
        if let Err(e) = self.device.send(packet, meta, now) {
            // A full device queue drops the packet like a congested link; TCP recovers.
            log::debug!("link: device write failed: {e}");
        }
    }

    /// Like [`Wire::send`] for a packet in pieces (`head`, then `tail`): straight to the
    /// device's gathered write unless the trace needs it whole.
    fn send_gather(&mut self, head: &[u8], tail: [&[u8]; 2], meta: TxMeta, now: Instant) {
        if self.tracer.is_some() {
            return self.send(&offload::joined(head, tail), meta, now);
        }
        if let Err(e) = self.device.send_gather(head, tail, meta, now) {
            // A full device queue drops the packet like a congested link; TCP recovers.
            log::debug!("link: device write failed: {e}");
        }
    }

    /// What middleware held back and is due now goes out (a fault injector's delays).
    fn release(&mut self, now: Instant) {
        if let Err(e) = self.device.release(now) {
            log::debug!("link: device write failed: {e}");
        }
    }
}

/// A stack on one [`Device`], run to completion on the calling thread. See the
/// [module documentation](self).
pub struct EventLoop<D: Device> {
    iface: Interface,
    /// TAP mode: Ethernet framing and ARP between the device and the host.
    link: Option<EthernetLayer>,
    wire: Wire<D>,
    clock: Clock,
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    ctl: Arc<Control>,
    board: Option<Arc<StatsBoard>>,
    queue: usize,
    grace: Duration,
    /// Reused for every received packet.
    rx_buf: Vec<u8>,
    /// Reused for every transmitted packet.
    tx_buf: Vec<u8>,
    woken: Vec<ConnId>,
    woken_listeners: Vec<ListenerId>,
    /// The last round stopped at MAX_BATCH: the device may hold more (epoll is edge
    /// triggered, so it would not say so again).
    more_input: bool,
    last_publish: Option<Instant>,
    /// Something happened since the last publication.
    active: bool,
    /// `--trace`/`--step` (a copy of the one in `wire`, for the layers above the link).
    tracer: Option<Tracer>,
    /// A gated tracer (the live view): attached as `tracer` only while its gate is set.
    standby: Option<Tracer>,
    /// Socket calls made before [`EventLoop::run`] (a listen), shown on the loop's thread
    /// when it starts: a stepper pauses there, not the thread that set the loop up.
    pending: Vec<SocketEvent>,
}

impl<D: Device> EventLoop<D> {
    /// A loop for the stack `config` describes on `device` (wrapped in whatever middleware
    /// it should have: [`crate::link::middleware`]); `config.tracer` sees every packet and
    /// every decision (`--trace`, `--step`).
    pub fn new(device: D, config: &StackConfig) -> io::Result<Self> {
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut iface = Interface::new(config.addr, config.tcp.clone(), seed);
        iface.set_ipv6(config.addr6);
        iface.set_mtu(config.mtu);
        // A gated tracer starts detached: the first round with its gate set attaches it.
        let standby = config.tracer.clone().filter(Tracer::is_gated);
        let tracer = config.tracer.clone().filter(|t| !t.is_gated());
        iface.tcp_mut().set_trace(tracer.is_some());
        // Offloads only when the packets go straight to the device: the ARP queue of TAP
        // mode holds plain bytes, without the offload metadata. (Middleware that needs
        // whole packets, the fault injector, reports no offloads at all.)
        let direct = config.ethernet.is_none();
        if direct && device.offloads().tx_tso4 {
            enable_tso(&mut iface);
        }
        if direct && device.offloads().tx_tso6 {
            iface.set_tso6(Some(crate::link::offload::MAX_SUPER_PACKET6));
        }
        // Any vnet header can ask the kernel to complete a checksum (NEEDS_CSUM): neither we
        // nor the receiving kernel then sum the payload.
        if direct && device.offloads().vnet_hdr {
            iface.set_tx_checksum_offload(true);
        }
        let poll = Poll::new()?;
        let fd = device.raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), DEVICE, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let rx_len = device.recv_buf_len().max(config.mtu + 64);
        Ok(EventLoop {
            iface,
            link: config.ethernet.clone().map(EthernetLayer::new),
            wire: Wire {
                device,
                tap: config.ethernet.is_some(),
                tracer: tracer.clone(),
            },
            clock: Clock::new(),
            poll,
            events: Events::with_capacity(16),
            waker,
            ctl: Arc::new(Control {
                stop: AtomicBool::new(false),
                stats_wanted: AtomicBool::new(false),
            }),
            board: None,
            queue: 0,
            grace: Duration::from_secs(2),
            rx_buf: vec![0; rx_len],
            tx_buf: Vec::with_capacity(config.mtu + 64),
            woken: Vec::new(),
            woken_listeners: Vec::new(),
            // One round right away: what the layers queued at start (TAP: the gratuitous
            // ARP) goes out before any packet arrives.
            more_input: true,
            last_publish: None,
            active: true,
            tracer,
            standby,
            pending: Vec::new(),
        })
    }

    /// Open a TCP listener on `local` (RFC 9293 §3.10.1 passive OPEN); traced, the
    /// `listen()` and the transition it made are shown when the loop starts running.
    #[track_caller]
    pub fn listen(
        &mut self,
        local: impl Into<std::net::SocketAddr>,
        backlog: usize,
    ) -> Result<TcpListener, SocketError> {
        let local = local.into();
        let id = self.iface.tcp_mut().listen(local, backlog)?;
        if self.tracer.is_some() {
            self.pending.push(SocketEvent {
                local,
                remote: (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                call: SocketCall::Listen,
                thread: None,
                at: std::panic::Location::caller(),
            });
        }
        Ok(TcpListener::from_id(id))
    }

    /// Bind a UDP socket on `local` (port 0 picks an ephemeral port).
    pub fn bind_udp(
        &mut self,
        local: impl Into<std::net::SocketAddr>,
    ) -> Result<UdpSocket, SocketError> {
        let id = self.iface.udp_mut().bind(local)?;
        Ok(UdpSocket::from_id(id))
    }

    /// A handle for other threads (stop, statistics).
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            waker: self.waker.clone(),
            ctl: self.ctl.clone(),
        }
    }

    /// Publish statistics on `board` as loop number `queue`.
    pub fn set_stats_board(&mut self, board: Arc<StatsBoard>, queue: usize) {
        self.board = Some(board);
        self.queue = queue;
    }

    /// How long a graceful stop waits for connections to close before resetting them
    /// (default 2 s).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// The stack (to open listeners and sockets before [`EventLoop::run`]).
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The stack.
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The loop's current time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Counters of every layer of this loop.
    pub fn stats(&self) -> StackStats {
        snapshot(
            &self.iface,
            self.link.as_ref(),
            self.wire.device.fault_stats(),
        )
    }

    /// Run rounds until a [`LoopHandle::stop`]; then stop gracefully (the application's
    /// [`App::shutdown`], FIN on every connection, rounds until they are closed or the
    /// grace period is over, RST for the rest) and publish the final statistics.
    pub fn run(&mut self, app: &mut dyn App) -> io::Result<()> {
        // Readers of the board (SIGUSR1, the exit) have counters even if a stepper pauses
        // before the first round.
        self.publish();
        // What was decided before the first round (the listeners' passive OPEN) is shown
        // before any packet, not under the first one.
        if let Some(t) = self.tracer.as_ref() {
            for mut call in self.pending.drain(..) {
                call.thread = std::thread::current().name().map(str::to_string);
                t.emit(TraceEvent::Socket(call));
            }
        }
        self.emit_tcp();
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let cap = stop_deadline.map(|_| STOP_TICK);
            self.run_once(app, cap)?;
            if stop_deadline.is_none() && self.ctl.stop.load(Ordering::SeqCst) {
                let now = self.clock.now();
                stop_deadline = Some(now + self.grace);
                self.begin_stop(app, now);
            }
            if let Some(deadline) = stop_deadline {
                let now = self.clock.now();
                if !round::any_open(&self.iface) || now >= deadline {
                    self.finish_stop(now);
                    break;
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// One round: wait at most `cap` (and no longer than the next timer) for the device
    /// or a wake-up, then read, fire timers, run the application and transmit.
    pub fn run_once(&mut self, app: &mut dyn App, cap: Option<Duration>) -> io::Result<()> {
        self.follow_gate();
        let timeout = if self.more_input {
            Some(Duration::ZERO)
        } else {
            self.wait_time(app, cap)
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = self.clock.now();
        let device_ready = self.more_input
            || self.events.iter().any(|e| e.token() == DEVICE)
            || self.wire.device.poll_at().is_some_and(|at| at <= now);
        if device_ready {
            self.read_device(now)?;
        }
        self.fire_timers(now);
        // What the input and the timers produced leaves before the application runs
        // (handshake replies, the ACK of a FIN — as the kernel, which acknowledges a FIN
        // at once, before the application closes); what the application writes follows.
        // Data that can wait (a delayed ACK) waits, and rides on the response.
        self.transmit(now);
        self.run_app(app, now);
        self.transmit(now);
        let wanted = self.ctl.stats_wanted.swap(false, Ordering::SeqCst);
        let periodic = self.active
            && self
                .last_publish
                .is_none_or(|t| now.saturating_duration_since(t) >= STATS_PERIOD);
        if wanted || periodic {
            self.publish();
        }
        Ok(())
    }

    /// Attach or detach the gated tracer as its gate says: one atomic load per round, and
    /// with the gate clear the loop runs exactly as untraced.
    fn follow_gate(&mut self) {
        let Some(t) = self.standby.as_ref() else {
            return;
        };
        let on = t.active();
        if on == self.tracer.is_some() {
            return;
        }
        self.tracer = on.then(|| t.clone());
        self.wire.tracer = self.tracer.clone();
        self.iface.tcp_mut().set_trace(on);
    }

    /// How long to wait: until the first stack, link, device or application deadline.
    fn wait_time(&mut self, app: &dyn App, cap: Option<Duration>) -> Option<Duration> {
        let now = self.clock.now();
        let device = self.wire.device.poll_at();
        let stack = round::next_deadline(&mut self.iface, self.link.as_ref(), device)
            .map(|at| at.saturating_duration_since(now));
        let app = app
            .poll_at()
            .map(|at| at.saturating_duration_since(std::time::Instant::now()));
        // After activity, wake up once more to publish the statistics, so that a queue
        // that went quiet is not reported as it was in the middle of its last burst.
        let publish = (self.active && self.board.is_some()).then(|| {
            self.last_publish.map_or(Duration::ZERO, |t| {
                (t + STATS_PERIOD).saturating_duration_since(now)
            })
        });
        [stack, app, cap, publish].into_iter().flatten().min()
    }

    /// Drain the device, at most [`MAX_BATCH`] packets, handing each up.
    fn read_device(&mut self, now: Instant) -> io::Result<()> {
        self.more_input = false;
        for _ in 0..MAX_BATCH {
            let (n, meta) = match self.wire.device.recv(&mut self.rx_buf, now) {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("link: device read failed: {e}");
                    return Err(e);
                }
            };
            self.active = true;
            let packet = self.rx_buf.get(..n).unwrap_or_default();
            let traced = self.tracer.is_some();
            if let Some(t) = self.tracer.as_ref() {
                let csum = meta.csum_trusted;
                trace_packet(t, self.wire.tap, Direction::In, packet, meta.gso_size, csum);
            }
            deliver(&mut self.iface, &mut self.link, packet, meta, now);
            if traced {
                self.after_traced_packet(now);
            }
        }
        self.more_input = true;
        Ok(())
    }

    /// Traced: what one inbound packet caused is shown (the transport layer's decisions)
    /// and goes out (and is shown) before the next inbound packet is taken, so the trace
    /// and the stepper read in causal order — a SYN, LISTEN → SYN-RECEIVED, our SYN-ACK.
    fn after_traced_packet(&mut self, now: Instant) {
        self.emit_tcp();
        self.transmit(now);
    }

    /// Traced: hand the transport layer's queued decisions to the tracer.
    fn emit_tcp(&mut self) {
        if let Some(t) = self.tracer.as_ref() {
            emit_tcp(t, &mut self.iface);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        if round::fire_timers(&mut self.iface, &mut self.link, now) {
            self.active = true;
            self.emit_tcp();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn context<'a>(
        iface: &'a mut Interface,
        link: Option<&'a EthernetLayer>,
        faults: Option<FaultStats>,
        board: Option<&'a StatsBoard>,
        queue: usize,
        tracer: Option<&'a Tracer>,
        now: Instant,
        lists: (&'a [ConnId], &'a [ListenerId], bool, bool),
    ) -> Context<'a> {
        Context {
            iface,
            now,
            wall: std::time::Instant::now(),
            woken: lists.0,
            woken_listeners: lists.1,
            wake_all: lists.2,
            udp_ready: lists.3,
            stats: StatsSource {
                link,
                faults,
                board,
                queue,
            },
            tracer,
        }
    }

    /// Let the application work on what became ready; again (a few times at most) while
    /// its own calls make more sockets ready.
    fn run_app(&mut self, app: &mut dyn App, now: Instant) {
        for pass in 0..MAX_APP_PASSES {
            self.woken.clear();
            self.woken_listeners.clear();
            let wake_all = self
                .iface
                .tcp_mut()
                .take_wakeups(&mut self.woken, &mut self.woken_listeners);
            let udp = self.iface.udp_mut().take_events();
            let idle = self.woken.is_empty() && self.woken_listeners.is_empty();
            if pass > 0 && idle && !wake_all && !udp {
                break;
            }
            // A bulk transfer names the same connection once per segment.
            self.woken.dedup();
            let mut cx = Self::context(
                &mut self.iface,
                self.link.as_ref(),
                self.wire.device.fault_stats(),
                self.board.as_deref(),
                self.queue,
                self.tracer.as_ref(),
                now,
                (&self.woken, &self.woken_listeners, wake_all, udp),
            );
            app.poll(&mut cx);
            self.emit_tcp();
        }
    }

    /// Everything the layers queued goes to the device, built in one reused buffer.
    fn transmit(&mut self, now: Instant) {
        match self.link.as_mut() {
            Some(eth) => {
                while let Some(p) = self.iface.poll_transmit(now) {
                    eth.send_ip(p, now);
                }
                while let Some(frame) = eth.poll_transmit() {
                    self.wire.send(&frame, TxMeta::default(), now);
                }
            }
            None if self.tracer.is_none() => {
                while let Some((meta, tail)) = next_packet(&mut self.iface, now, &mut self.tx_buf) {
                    self.wire.send_gather(&self.tx_buf, tail, meta, now);
                }
            }
            None => {
                // Traced: the decisions that building a segment made (a retransmission)
                // are shown before the segment itself.
                while let Some((meta, tail)) = next_packet(&mut self.iface, now, &mut self.tx_buf) {
                    let packet = offload::joined(&self.tx_buf, tail);
                    self.emit_tcp();
                    self.wire.send(&packet, meta, now);
                }
            }
        }
        self.emit_tcp();
        self.wire.release(now);
    }

    fn publish(&mut self) {
        if let Some(board) = self.board.as_ref() {
            board.publish(self.queue, self.stats());
        }
        self.last_publish = Some(self.clock.now());
        self.active = false;
    }

    /// The graceful stop begins: the application stops accepting, every connection gets
    /// a FIN after its queued data (RFC 9293 §3.10.4 CLOSE).
    fn begin_stop(&mut self, app: &mut dyn App, now: Instant) {
        log::debug!("stack: stopping (queue {})", self.queue);
        let mut cx = Self::context(
            &mut self.iface,
            self.link.as_ref(),
            self.wire.device.fault_stats(),
            self.board.as_deref(),
            self.queue,
            self.tracer.as_ref(),
            now,
            (&[], &[], false, false),
        );
        app.shutdown(&mut cx);
        round::close_all(&mut self.iface, now);
        self.transmit(now);
    }

    /// The grace period is over: reset what is still open (RFC 9293 §3.10.5 ABORT).
    fn finish_stop(&mut self, now: Instant) {
        round::abort_open(&mut self.iface, now);
        self.transmit(now);
    }
}

/// The next packet to send: its headers (or all of it) built into `buf`, the rest of its
/// payload still in TCP's send buffer, and what the device must know about it.
fn next_packet<'a>(
    iface: &'a mut Interface,
    now: Instant,
    buf: &mut Vec<u8>,
) -> Option<(TxMeta, [&'a [u8]; 2])> {
    iface.poll_transmit_gather(now, buf)
}

/// Let TCP build super-segments of up to 64 KiB that the device splits (TSO).
fn enable_tso(iface: &mut Interface) {
    iface.set_tso(Some(crate::link::offload::MAX_SUPER_PACKET));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::link::memory::{pair, MemDevice};
    use std::net::{Ipv4Addr, SocketAddrV4};

    pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// Echoes every byte back on every connection of one listener; closes on EOF.
    struct Echo {
        listener: TcpListener,
        conns: Vec<crate::socket::ready::TcpSocket>,
        stopped: bool,
    }

    impl App for Echo {
        fn poll(&mut self, cx: &mut Context<'_>) {
            while let Some(s) = self.listener.accept(cx) {
                self.conns.push(s);
            }
            let mut buf = [0u8; 2048];
            self.conns.retain(|&s| loop {
                match s.recv(cx, &mut buf) {
                    Ok(0) => {
                        s.shutdown(cx);
                        s.close(cx);
                        break false;
                    }
                    Ok(n) => {
                        let sent = s.send(cx, &buf[..n]).unwrap_or(0);
                        assert_eq!(sent, n, "small echoes fit the send buffer");
                    }
                    Err(_) => break true,
                }
            });
        }
        fn poll_at(&self) -> Option<std::time::Instant> {
            None
        }
        fn shutdown(&mut self, cx: &mut Context<'_>) {
            self.stopped = true;
            self.listener.close(cx);
        }
    }

    /// The client side: a sans-IO stack driven by hand over the other end of the link.
    pub(crate) struct Client {
        pub(crate) iface: Interface,
        dev: MemDevice,
        pub(crate) clock: Clock,
    }

    impl Client {
        pub(crate) fn new(dev: MemDevice) -> Client {
            Client {
                iface: Interface::new(CLIENT, crate::tcp::Config::default(), 99),
                dev,
                clock: Clock::new(),
            }
        }

        /// Start opening a connection from our port `port` to the server's `server_port`
        /// (the SYN leaves with the next exchange).
        pub(crate) fn start_connect(&mut self, port: u16, server_port: u16) -> ConnId {
            let now = self.clock.now();
            self.iface
                .tcp_mut()
                .connect(
                    SocketAddrV4::new(CLIENT, port),
                    SocketAddrV4::new(SERVER, server_port),
                    now,
                )
                .expect("connect")
        }

        /// Open a connection from our port `port` to the server's `server_port` (on a
        /// loop running elsewhere) and wait for its handshake.
        pub(crate) fn connect(&mut self, port: u16, server_port: u16) -> ConnId {
            let id = self.start_connect(port, server_port);
            self.pump_until(|iface, _| {
                iface.tcp().is_connected(id) || iface.tcp().error(id).is_some()
            });
            assert!(self.iface.tcp().is_connected(id), "handshake");
            id
        }

        /// Send `request` on `id` and collect what comes back until `done(bytes, eof)`
        /// (or the connection fails).
        pub(crate) fn exchange(
            &mut self,
            id: ConnId,
            request: &[u8],
            mut done: impl FnMut(&[u8], bool) -> bool,
        ) -> (Vec<u8>, bool) {
            let mut sent = 0;
            let mut got = Vec::new();
            let mut eof = false;
            self.pump_until(|iface, now| {
                if sent < request.len() {
                    sent += iface.tcp_mut().send(id, &request[sent..], now).unwrap_or(0);
                }
                eof |= read_available(iface, id, now, &mut got);
                done(&got, eof) || iface.tcp().error(id).is_some()
            });
            (got, eof)
        }

        /// Wait until our side of `id` is closed (CLOSED or TIME-WAIT).
        pub(crate) fn wait_closed(&mut self, id: ConnId) {
            self.pump_until(|iface, _| {
                matches!(
                    iface.tcp().state(id),
                    crate::tcp::State::Closed | crate::tcp::State::TimeWait
                )
            });
        }

        /// Exchange packets until `done` holds, for at most 20 s.
        pub(crate) fn pump_until(&mut self, mut done: impl FnMut(&mut Interface, Instant) -> bool) {
            let limit = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let now = self.clock.now();
                self.receive();
                self.iface.handle_timeout(now);
                if done(&mut self.iface, now) {
                    return;
                }
                self.transmit();
                assert!(std::time::Instant::now() < limit, "no progress in 20 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        /// Take in every packet the server has sent; how many there were.
        pub(crate) fn receive(&mut self) -> usize {
            let now = self.clock.now();
            let mut buf = vec![0u8; 2048];
            let mut count = 0;
            while let Some((n, _)) = self.dev.recv(&mut buf, now).expect("recv") {
                self.iface.handle_packet(&buf[..n], now);
                count += 1;
            }
            count
        }

        /// Send every packet our stack has queued.
        pub(crate) fn transmit(&mut self) {
            let now = self.clock.now();
            let mut out = Vec::new();
            while self.iface.poll_transmit_into(now, &mut out).is_some() {
                self.dev.send(&out, TxMeta::default(), now).expect("send");
            }
        }
    }

    /// Read what connection `id` of `iface` has into `got`; true at the end of the stream.
    pub(crate) fn read_available(
        iface: &mut Interface,
        id: ConnId,
        now: Instant,
        got: &mut Vec<u8>,
    ) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match iface.tcp_mut().recv(id, &mut buf, now) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return false,
            }
        }
    }

    /// A loop on one end of a memory link (seeded with `seed`), and a client on the other.
    pub(crate) fn memory_loop(seed: u64) -> (EventLoop<MemDevice>, Client) {
        let (server_dev, client_dev) = pair().expect("memory link");
        let mut config = StackConfig::new(SERVER);
        config.seed = Some(seed);
        let ev = EventLoop::new(server_dev, &config).expect("loop");
        (ev, Client::new(client_dev))
    }

    fn start_echo() -> (
        LoopHandle,
        Arc<StatsBoard>,
        std::thread::JoinHandle<()>,
        Client,
    ) {
        let (mut ev, client) = memory_loop(1);
        let listener = ev.listen(SocketAddrV4::new(SERVER, 7), 16).expect("listen");
        let board = StatsBoard::new(1);
        ev.set_stats_board(board.clone(), 0);
        ev.set_shutdown_grace(Duration::from_secs(5));
        let handle = ev.handle();
        let thread = std::thread::spawn(move || {
            let mut app = Echo {
                listener,
                conns: Vec::new(),
                stopped: false,
            };
            ev.run(&mut app).expect("run");
            assert!(app.stopped, "shutdown reached the application");
        });
        (handle, board, thread, client)
    }

    #[test]
    fn echoes_over_a_memory_link_and_stops_gracefully() {
        let (handle, board, thread, mut client) = start_echo();
        let id = client.connect(40000, 7);
        let (got, _) = client.exchange(id, b"hello, loop", |got, _| got.len() >= 11);
        assert_eq!(got, b"hello, loop");

        let stats = crate::stats::merge(
            &board.fresh(std::slice::from_ref(&handle), Duration::from_secs(10)),
        )
        .expect("published");
        assert_eq!(stats.tcp.connections_accepted, 1);
        assert!(stats.ip.packets_in >= 2, "{:?}", stats.ip);

        // A graceful stop closes the connection with a FIN the client sees as EOF.
        handle.stop();
        let mut eof = false;
        client.pump_until(|iface, now| {
            let mut buf = [0u8; 8];
            eof |= iface.tcp_mut().recv(id, &mut buf, now) == Ok(0);
            if eof {
                iface.tcp_mut().shutdown(id, now);
            }
            eof && thread.is_finished()
        });
        thread.join().expect("loop thread");
        let last = crate::stats::merge(&board.latest()).expect("final stats");
        assert!(last.tcp.segments_out >= 3, "{:?}", last.tcp);
    }
}
