//! The TCP endpoint: every connection and listener of one host, the demultiplexer that
//! hands each arriving segment to its connection (RFC 9293 §3.10.7), ISNs (RFC 6528),
//! ephemeral ports, and RSTs for segments nobody wants (§3.10.7.1).
//!
//! ```text
//!   on_segment(src, dst, seg)
//!        │
//!        ├─ (local, remote) in the connection table? ──► Connection::on_segment
//!        ├─ a listener on (dst, port) or (*, port)?  ──► SYN: new SYN-RECEIVED TCB
//!        └─ otherwise (CLOSED)                       ──► RST (§3.10.7.1)
//!
//!   poll_transmit(now) ──► endpoint RSTs first, then connections with work, round robin
//!   poll_transmit_into(now, buf) ── the same, written straight into a packet buffer
//! ```
//!
//! With [`Tcp::set_tso`] a connection may send new data as a super-segment (TSO): up to
//! 64 KiB whose payload is a multiple of the per-segment size, for the device to cut; the
//! rest of the layer still sees MSS-sized segments (the scoreboard and the
//! retransmissions are sequence ranges, retransmissions go one MSS at a time).
//!
//! Connections live in a slab; a [`ConnId`] carries the slot's generation so a stale id
//! (its connection freed) is detected and answered with [`TcpError::InvalidHandle`].

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use super::config::{Config, KeepaliveConfig};
pub use super::connection::IcmpAction;
use super::connection::{ack_window_offer, ts_clock, wscale_offer, Connection, Outgoing, Owner};
pub use super::error::TcpError;
use super::events::{TcpEvent, TcpEventKind};
use super::segment::{Flags, Segment};
use super::seq::SeqNum;
use super::state::State;
pub use super::stats::TcpStats;
use super::syncookie;
use crate::time::Instant;

/// First ephemeral port (RFC 6335 §6 dynamic range).
pub const EPHEMERAL_FIRST: u16 = 49152;
/// Last ephemeral port.
pub const EPHEMERAL_LAST: u16 = 65535;

/// Handle of a connection: slot index plus generation.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

/// Handle of a listener: slot index plus generation.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ListenerId {
    index: u32,
    generation: u32,
}

/// One segment to send, with its IP addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Source address (ours), of the peer's family.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The segment.
    pub segment: Segment,
    /// Non-zero for a super-segment (see [`Tcp::set_tso`]): the payload bytes of each wire
    /// segment the device must cut it into.
    pub gso_size: u16,
}

/// Where the segment [`Tcp::poll_transmit_into`] wrote goes, and how the device must send
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransmitInfo {
    /// Source address (ours), of the peer's family.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Non-zero for a super-segment: the payload bytes of each wire segment; its checksum
    /// field then holds only the pseudo-header sum, for the device to complete.
    pub gso_size: u16,
    /// The checksum field holds only the folded pseudo-header sum, for the device to
    /// complete: always with a non-zero `gso_size`, and for every connection segment with
    /// [`Tcp::set_tx_checksum_offload`].
    pub csum_partial: bool,
}

/// The most TCP bytes (header and payload) of one super-segment: what fits an IPv4 packet
/// with a 20-byte header.
pub const MAX_SUPER_SEGMENT: usize = 65535 - 20;

/// Most TCP bytes (header and payload) of a super-segment to an IPv6 peer: the IPv6
/// payload-length field's limit (RFC 8200 §3); the fixed header is not counted in it.
pub const MAX_SUPER_SEGMENT6: usize = 65535;

#[derive(Debug)]
struct Listener {
    local: SocketAddr,
    backlog: usize,
    accept_queue: VecDeque<ConnId>,
    /// Half-open (SYN-RECEIVED) connections, oldest first.
    half_open: VecDeque<ConnId>,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    conn: Option<Connection>,
    /// The instant of this slot's live entry in [`Tcp::timers`], if any. It is never later
    /// than the connection's real deadline; an entry that fires early is re-armed.
    scheduled: Option<Instant>,
    /// The connection's deadline as of the last [`Tcp::schedule`], which runs after
    /// everything that can change it. Kept so that keeping the heap's top exact does not
    /// recompute a deadline (the minimum of eight timers) at every step.
    deadline: Option<Instant>,
    /// In [`Tcp::timer_pending`]: its deadline may have changed since the last
    /// [`Tcp::flush_timers`].
    timer_pending: bool,
}

#[derive(Debug, Default)]
struct ListenerSlot {
    generation: u32,
    listener: Option<Listener>,
}

/// All TCP state of one host.
#[derive(Debug)]
pub struct Tcp {
    config: Config,
    rng: StdRng,
    /// RFC 6528 secret key for the ISN hash.
    secret: [u64; 2],
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// Connections in the order they entered TIME-WAIT, oldest first: the victims when the
    /// table is full, found without a scan of every slot. Entries of connections that have
    /// left TIME-WAIT since are dropped lazily, from the front.
    time_wait: VecDeque<ConnId>,
    live: usize,
    /// (local, remote) → slot index, for every connection not CLOSED.
    table: HashMap<Key, u32>,
    listeners: Vec<ListenerSlot>,
    listener_table: HashMap<SocketAddr, u32>,
    /// RSTs not tied to a live connection.
    pending: VecDeque<Transmit>,
    /// Connections that may have something to send.
    dirty: VecDeque<u32>,
    /// Connection timers as a min-heap of (deadline, slot, generation), so finding the next
    /// deadline does not scan every connection (thousands in TIME-WAIT after a burst of
    /// short connections). Entries are lazy: one whose slot no longer schedules that
    /// instant is skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Slots whose deadline may have changed since the heap was last brought up to date.
    /// A round touches a connection several times (its segment, the application's read and
    /// write, the segment it sends), and each touch can move a timer; the heap is updated
    /// once per connection when someone asks for the next deadline ([`Tcp::poll_at`]) or
    /// fires timers, not at every touch.
    timer_pending: Vec<u32>,
    events: bool,
    /// Connections and listeners with socket-visible changes since the last
    /// [`Tcp::take_wakeups`], so the socket layer wakes only their waiters.
    woken: Vec<ConnId>,
    woken_listeners: Vec<ListenerId>,
    /// The wake lists overflowed (nobody drained them): wake everyone.
    woken_overflow: bool,
    stats: TcpStats,
    /// Queue [`TcpEvent`]s for the trace view.
    trace: bool,
    trace_events: Vec<TcpEvent>,
    /// Most TCP bytes of a super-segment, when TSO is on ([`Tcp::set_tso`]).
    tso: Option<usize>,
    /// The same for IPv6 peers ([`Tcp::set_tso6`]).
    tso6: Option<usize>,
    /// Connection segments leave with a partial checksum for the device to complete.
    tx_csum_partial: bool,
    /// Out-of-order bytes held by all connections, and the most they may hold
    /// ([`Tcp::set_out_of_order_budget`]).
    ooo_held: usize,
    ooo_budget: usize,
}

/// The default of [`Tcp::set_out_of_order_budget`]: out-of-order data held by all the
/// connections of an endpoint together (each is also bounded by its receive buffer).
pub const DEFAULT_OUT_OF_ORDER_BUDGET: usize = 64 << 20;

/// Beyond this many entries a wake list is dropped and everyone is woken instead, so a
/// user of [`Tcp`] that never drains the lists does not grow them without bound.
const MAX_WOKEN: usize = 4096;

impl Tcp {
    /// A TCP layer with `config`; `seed` makes ISNs and ephemeral ports reproducible.
    pub fn new(config: Config, seed: u64) -> Tcp {
        let mut rng = StdRng::seed_from_u64(seed);
        let secret = [rng.random::<u64>(), rng.random::<u64>()];
        Tcp {
            config,
            rng,
            secret,
            slots: Vec::new(),
            free_slots: Vec::new(),
            time_wait: VecDeque::new(),
            live: 0,
            table: HashMap::new(),
            listeners: Vec::new(),
            listener_table: HashMap::new(),
            pending: VecDeque::new(),
            dirty: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_pending: Vec::new(),
            events: false,
            woken: Vec::new(),
            woken_listeners: Vec::new(),
            woken_overflow: false,
            stats: TcpStats::default(),
            trace: false,
            trace_events: Vec::new(),
            tso: None,
            tso6: None,
            tx_csum_partial: false,
            ooo_held: 0,
            ooo_budget: DEFAULT_OUT_OF_ORDER_BUDGET,
        }
    }

    /// Record what the layer decides (state transitions and their causes, timers,
    /// retransmissions, window changes) as [`TcpEvent`]s, for `--trace`. Off by default;
    /// when off nothing is recorded.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
        for slot in &mut self.slots {
            if let Some(c) = slot.conn.as_mut() {
                c.trace = on;
            }
        }
        if !on {
            self.trace_events.clear();
        }
    }

    /// Whether [`Tcp::set_trace`] is on.
    pub fn trace_enabled(&self) -> bool {
        self.trace
    }

    /// The events recorded since the last call, oldest first (empty when tracing is off).
    pub fn take_trace_events(&mut self) -> Vec<TcpEvent> {
        std::mem::take(&mut self.trace_events)
    }

    #[track_caller]
    fn note(&mut self, local: SocketAddr, remote: SocketAddr, kind: impl FnOnce() -> TcpEventKind) {
        if self.trace {
            self.trace_events.push(TcpEvent {
                local,
                remote,
                kind: kind(),
                at: std::panic::Location::caller(),
            });
        }
    }

    /// Move a connection's queued events to the endpoint's queue.
    fn collect_events(trace_events: &mut Vec<TcpEvent>, conn: &mut Connection) {
        if conn.trace_events.is_empty() {
            return;
        }
        let (local, remote) = (conn.local, conn.remote);
        trace_events.extend(conn.trace_events.drain(..).map(|(kind, at)| TcpEvent {
            local,
            remote,
            kind,
            at,
        }));
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    // ----------------------------------------------------------------------------------
    // Slab helpers.

    fn conn(&self, id: ConnId) -> Option<&Connection> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_ref()
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    fn id_of(&self, index: u32) -> ConnId {
        let generation = self.slots.get(index as usize).map_or(0, |s| s.generation);
        ConnId { index, generation }
    }

    #[track_caller]
    fn insert(&mut self, mut conn: Connection) -> ConnId {
        let key = Key(conn.local, conn.remote);
        conn.ts_offset = self.ts_offset(key.0, key.1);
        conn.trace = self.trace;
        let (from, cause) = if conn.passive {
            (State::Listen, "SYN")
        } else {
            (State::Closed, "active OPEN")
        };
        let to = conn.state;
        self.note(key.0, key.1, || TcpEventKind::State {
            from,
            to,
            cause: cause.to_string(),
        });
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.conn = Some(conn);
        slot.scheduled = None;
        slot.deadline = None;
        let generation = slot.generation;
        self.live += 1;
        self.table.insert(key, index);
        self.mark_dirty(index);
        self.schedule(index);
        ConnId { index, generation }
    }

    /// Slot `index`'s deadline may have changed: called after anything that may have
    /// changed it. The heap catches up in [`Tcp::flush_timers`].
    fn schedule(&mut self, index: u32) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if !slot.timer_pending {
            slot.timer_pending = true;
            self.timer_pending.push(index);
        }
    }

    /// Bring the timer heap up to date with the deadlines of the slots touched since the
    /// last call, each read once: an earlier deadline gets an entry. A later one keeps the
    /// earlier entry (it fires, finds nothing due and re-arms, or [`Tcp::tidy_timers`] moves
    /// it), so re-arming the retransmission timer on every ACK costs nothing here.
    fn flush_timers(&mut self) {
        let mut pending = std::mem::take(&mut self.timer_pending);
        for &index in &pending {
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            slot.timer_pending = false;
            let real = slot.conn.as_ref().and_then(|c| c.deadline());
            slot.deadline = real;
            if let Some(deadline) = real {
                if slot.scheduled.is_none_or(|at| deadline < at) {
                    slot.scheduled = Some(deadline);
                    self.timers
                        .push(Reverse((deadline, index, slot.generation)));
                }
            }
        }
        pending.clear();
        // Keep the allocation; nothing was added meanwhile (no slot is touched above).
        self.timer_pending = pending;
    }

    /// Make the heap's top exact, so [`Tcp::poll_at`] is: drop entries of freed slots or
    /// superseded instants, and move an entry whose timer was re-armed later (or stopped)
    /// to its real deadline. Only the top is examined, so this is amortized O(log n).
    fn tidy_timers(&mut self) {
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            let Some(slot) = self.slots.get_mut(index as usize) else {
                self.timers.pop();
                continue;
            };
            if slot.generation != generation || slot.scheduled != Some(at) {
                self.timers.pop();
                continue;
            }
            let real = slot.deadline;
            if real == Some(at) {
                break;
            }
            self.timers.pop();
            slot.scheduled = real;
            if let Some(d) = real {
                self.timers.push(Reverse((d, index, generation)));
            }
        }
    }

    fn wake_conn(&mut self, id: ConnId) {
        self.events = true;
        if self.woken.len() < MAX_WOKEN {
            self.woken.push(id);
        } else {
            self.woken_overflow = true;
        }
    }

    fn wake_listener(&mut self, id: ListenerId) {
        self.events = true;
        if self.woken_listeners.len() < MAX_WOKEN {
            self.woken_listeners.push(id);
        } else {
            self.woken_overflow = true;
        }
    }

    fn mark_dirty(&mut self, index: u32) {
        if let Some(c) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        {
            if !c.in_dirty {
                c.in_dirty = true;
                self.dirty.push_back(index);
            }
        }
    }

    /// Run `f` on the connection in slot `index`, then do the endpoint's bookkeeping
    /// (accept queue, table, freeing, events, RSTs, dirty list).
    fn with_conn<R>(
        &mut self,
        index: u32,
        f: impl FnOnce(&mut Connection, &mut TcpStats) -> R,
    ) -> Option<R> {
        let room = self.ooo_budget.saturating_sub(self.ooo_held);
        let conn = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())?;
        conn.ooo_room = room;
        let before = conn.state;
        let r = f(conn, &mut self.stats);
        self.after(index, before);
        Some(r)
    }

    fn after(&mut self, index: u32, before: State) {
        let Some(conn) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.conn.as_mut())
        else {
            return;
        };
        let after = conn.state;
        // The global out-of-order account follows what this connection holds now.
        let held = conn.out_of_order_bytes();
        let counted = std::mem::replace(&mut conn.ooo_accounted, held);
        self.ooo_held = self.ooo_held.saturating_sub(counted).saturating_add(held);
        Self::collect_events(&mut self.trace_events, conn);
        let changed = std::mem::take(&mut conn.changed);
        if let Some(rst) = conn.pending_rst.take() {
            let t = Transmit {
                src: conn.local.ip(),
                dst: conn.remote.ip(),
                segment: rst,
                gso_size: 0,
            };
            self.pending.push_back(t);
        }
        let key = Key(conn.local, conn.remote);
        let owner = conn.owner;
        let id = self.id_of(index);
        if changed || (after == State::Closed && before != State::Closed) {
            self.wake_conn(id);
        }
        if before == State::SynReceived && after != State::SynReceived {
            if let Owner::Listener(li, lg) = owner {
                let id = self.id_of(index);
                if let Some(l) = self.listener_mut(li, lg) {
                    l.half_open.retain(|&h| h != id);
                    if after != State::Closed {
                        l.accept_queue.push_back(id);
                        self.stats.connections_accepted += 1;
                        self.wake_listener(ListenerId {
                            index: li,
                            generation: lg,
                        });
                    }
                }
            }
        }
        if after == State::TimeWait && before != State::TimeWait {
            self.trim_time_wait();
            self.time_wait.push_back(id);
            self.bound_time_wait();
        }
        if after == State::Closed && before != State::Closed && self.table.get(&key) == Some(&index)
        {
            self.table.remove(&key);
        }
        if after == State::Closed && owner != Owner::App {
            self.free(index);
        } else {
            self.mark_dirty(index);
            self.schedule(index);
        }
    }

    fn free(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            if let Some(conn) = slot.conn.take() {
                self.ooo_held = self.ooo_held.saturating_sub(conn.ooo_accounted);
                let key = Key(conn.local, conn.remote);
                if self.table.get(&key) == Some(&index) {
                    self.table.remove(&key);
                }
                slot.generation = slot.generation.wrapping_add(1);
                slot.scheduled = None;
                slot.deadline = None;
                self.free_slots.push(index);
                self.live = self.live.saturating_sub(1);
            }
        }
        // Its heap entry, now of an old generation, is dropped when it comes to the top.
    }

    /// The connection table is full: end the oldest TIME-WAIT (only of connections the
    /// application released), like Linux's `tcp_max_tw_buckets`, so a flood of short
    /// connections cannot lock out new ones. True if one was freed. TIME-WAIT lasts the
    /// same 2·MSL for all, so the oldest is the first to expire (a retransmitted FIN that
    /// restarts one only makes it a little younger than its place says).
    fn reclaim_time_wait(&mut self) -> bool {
        self.trim_time_wait();
        let victim = self.time_wait.iter().position(|&id| {
            self.conn_in_time_wait(id)
                .is_some_and(|c| c.owner != Owner::App)
        });
        let Some(at) = victim else {
            return false;
        };
        let Some(id) = self.time_wait.remove(at) else {
            return false;
        };
        self.stats.time_wait_reclaimed += 1;
        self.with_conn(id.index, |c, _| c.close_time_wait("connection table full"));
        true
    }

    /// How many SYN-ACK timeouts the half-open connection in slot `index` may take now
    /// (None if it is not a listener's half-open connection): the configured limit, or
    /// less if its listener's SYN queue is more than half full. As Linux's `reqsk_timer_handler`: half of the queue is kept for
    /// young entries (those whose SYN-ACK has not timed out yet); when old ones clog it —
    /// a SYN flood's handshakes never complete — the limit drops, down to 2, for every
    /// doubling of old entries over young ones. The queue then drains within seconds of
    /// the flood's end, and new clients get a real SYN-ACK (with window scaling and SACK)
    /// instead of a SYN cookie. The scan is bounded by the backlog.
    fn syn_retry_limit(&self, index: u32) -> Option<u32> {
        let conn = self.slots.get(index as usize)?.conn.as_ref()?;
        if conn.state != State::SynReceived {
            return None;
        }
        let Owner::Listener(li, lg) = conn.owner else {
            return None;
        };
        let l = self.listener(ListenerId {
            index: li,
            generation: lg,
        })?;
        let qlen = l.half_open.len();
        if qlen * 2 <= l.backlog.max(8) {
            return Some(self.config.syn_retries);
        }
        let young_count = l
            .half_open
            .iter()
            .filter_map(|id| self.conn(*id))
            .filter(|c| c.state == State::SynReceived && c.syn_timeouts() == 0)
            .count();
        let mut young = young_count * 2;
        let mut thresh = self.config.syn_retries;
        while thresh > 2 {
            if qlen < young {
                break;
            }
            thresh -= 1;
            young <<= 1;
        }
        Some(thresh)
    }

    /// The connection `id` names, if it is still in TIME-WAIT.
    fn conn_in_time_wait(&self, id: ConnId) -> Option<&Connection> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_ref().filter(|c| c.state == State::TimeWait)
    }

    /// Drop the entries at the front of the TIME-WAIT queue whose connections have left
    /// it, so the queue holds about as many entries as there are TIME-WAITs.
    fn trim_time_wait(&mut self) {
        while let Some(&id) = self.time_wait.front() {
            if self.conn_in_time_wait(id).is_some() {
                break;
            }
            self.time_wait.pop_front();
        }
    }

    /// Trimming only from the front cannot shorten the queue while its oldest entry stays
    /// in TIME-WAIT — a peer that keeps resending its FIN restarts 2·MSL each time — and
    /// every later entry would stay queued after its connection is gone. Once the queue
    /// is more than twice the live connections (each is in it at most once), drop every
    /// stale entry: amortized O(1) per entry, and the queue stays bounded.
    fn bound_time_wait(&mut self) {
        if self.time_wait.len() <= 2 * self.live + 64 {
            return;
        }
        let slots = &self.slots;
        self.time_wait.retain(|id| {
            slots.get(id.index as usize).is_some_and(|s| {
                s.generation == id.generation
                    && s.conn.as_ref().is_some_and(|c| c.state == State::TimeWait)
            })
        });
    }

    fn listener_mut(&mut self, index: u32, generation: u32) -> Option<&mut Listener> {
        let slot = self.listeners.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.listener.as_mut()
    }

    fn listener(&self, l: ListenerId) -> Option<&Listener> {
        let slot = self.listeners.get(l.index as usize)?;
        if slot.generation != l.generation {
            return None;
        }
        slot.listener.as_ref()
    }

    /// The listener for a segment to `local`: exact address first, then the wildcard of
    /// the segment's family, then the other family's. The unspecified address of either
    /// family is a dual-stack wildcard here (like Linux's `[::]` with `bindv6only` off),
    /// so one listener serves IPv4 and IPv6 peers alike.
    fn find_listener(&self, local: SocketAddr) -> Option<u32> {
        if let Some(&i) = self.listener_table.get(&local) {
            return Some(i);
        }
        let (v4, v6) = (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), local.port()),
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), local.port()),
        );
        let (first, second) = if local.is_ipv4() { (v4, v6) } else { (v6, v4) };
        self.listener_table
            .get(&first)
            .or_else(|| self.listener_table.get(&second))
            .copied()
    }

    fn port_has_listener(&self, port: u16) -> bool {
        self.listener_table.keys().any(|a| a.port() == port)
    }

    // ----------------------------------------------------------------------------------
    // ISNs and ports.

    /// RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where
    /// M is a 4 µs clock and F a keyed hash, so ISNs are unpredictable per 4-tuple yet
    /// still increase for a reused 4-tuple (which TIME-WAIT reuse relies on).
    /// The timestamp offset of a 4-tuple (RFC 7323 §5.4): a keyed hash, the same for
    /// every incarnation of the connection so its TSvals keep rising (RFC 6191).
    fn ts_offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        let mut h = DefaultHasher::new();
        self.secret.hash(&mut h);
        "tsoffset".hash(&mut h);
        hash_addr(local, &mut h);
        hash_addr(remote, &mut h);
        h.finish() as u32
    }

    fn isn(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> SeqNum {
        let m = (now.total_micros() / 4) as u32;
        let mut h = DefaultHasher::new();
        self.secret.hash(&mut h);
        hash_addr(local, &mut h);
        hash_addr(remote, &mut h);
        SeqNum(m.wrapping_add(h.finish() as u32))
    }

    fn ephemeral_port(&mut self, local_ip: IpAddr, remote: SocketAddr) -> Option<u16> {
        let span = u32::from(EPHEMERAL_LAST - EPHEMERAL_FIRST) + 1;
        let start = self.rng.random_range(0..span);
        (0..span)
            .map(|i| EPHEMERAL_FIRST + ((start + i) % span) as u16)
            .find(|&p| {
                !self
                    .table
                    .contains_key(&Key(SocketAddr::new(local_ip, p), remote))
                    && !self.port_has_listener(p)
            })
    }

    // ----------------------------------------------------------------------------------
    // Application calls.

    /// Passive OPEN (RFC 9293 §3.10.1) on `local` (ip may be UNSPECIFIED for any; port
    /// 0 picks an ephemeral port). At most `backlog` connections wait in the accept queue
    /// and at most `backlog` more are half-open; further SYNs are dropped.
    pub fn listen(
        &mut self,
        local: impl Into<SocketAddr>,
        backlog: usize,
    ) -> Result<ListenerId, TcpError> {
        let mut local = normalize(local.into());
        if local.port() == 0 {
            let port = self
                .ephemeral_port(local.ip(), unspecified_like(local))
                .ok_or(TcpError::AddrNotAvailable)?;
            local.set_port(port);
        }
        let clash = self.listener_table.keys().any(|a| {
            a.port() == local.port()
                && (a.ip() == local.ip() || a.ip().is_unspecified() || local.ip().is_unspecified())
        });
        if clash {
            return Err(TcpError::AddrInUse);
        }
        let backlog = if backlog == 0 {
            self.config.default_backlog
        } else {
            backlog
        }
        .max(1);
        let listener = Listener {
            local,
            backlog,
            accept_queue: VecDeque::new(),
            half_open: VecDeque::new(),
        };
        let index = match self.listeners.iter().position(|s| s.listener.is_none()) {
            Some(i) => i,
            None => {
                self.listeners.push(ListenerSlot::default());
                self.listeners.len() - 1
            }
        };
        let slot = &mut self.listeners[index];
        slot.listener = Some(listener);
        self.listener_table.insert(local, index as u32);
        log::debug!("{local}: CLOSED → LISTEN (backlog {backlog})");
        let any = unspecified_like(local);
        let generation = slot.generation;
        self.note(local, any, || TcpEventKind::Listen { backlog });
        Ok(ListenerId {
            index: index as u32,
            generation,
        })
    }

    /// The address a listener is bound to.
    pub fn listener_addr(&self, l: ListenerId) -> Option<SocketAddr> {
        self.listener(l).map(|l| l.local)
    }

    /// Pop a connection that finished its handshake (it may already be in CLOSE-WAIT
    /// with data waiting).
    pub fn accept(&mut self, l: ListenerId) -> Option<ConnId> {
        loop {
            let id = self
                .listeners
                .get_mut(l.index as usize)
                .filter(|s| s.generation == l.generation)
                .and_then(|s| s.listener.as_mut())?
                .accept_queue
                .pop_front()?;
            if let Some(c) = self.conn_mut(id) {
                c.owner = Owner::App;
                return Some(id);
            }
            // Died (and was freed) while queued: skip it.
        }
    }

    /// True if `accept` would return a connection (or the listener is gone).
    pub fn listener_ready(&self, l: ListenerId) -> bool {
        match self.listener(l) {
            Some(listener) => listener
                .accept_queue
                .iter()
                .any(|&id| self.conn(id).is_some()),
            None => true,
        }
    }

    /// Close a listener: its port is free again; queued and half-open connections get a
    /// RST.
    pub fn close_listener(&mut self, l: ListenerId, now: Instant) {
        let _ = now;
        let Some(slot) = self.listeners.get_mut(l.index as usize) else {
            return;
        };
        if slot.generation != l.generation {
            return;
        }
        let Some(listener) = slot.listener.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        if self.listener_table.get(&listener.local) == Some(&l.index) {
            self.listener_table.remove(&listener.local);
        }
        log::debug!("{}: LISTEN → CLOSED on close", listener.local);
        let owned: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.conn
                    .as_ref()
                    .is_some_and(|c| c.owner == Owner::Listener(l.index, l.generation))
            })
            .map(|(i, _)| i as u32)
            .collect();
        for index in owned {
            self.with_conn(index, |c, stats| {
                c.owner = Owner::Released;
                if c.state != State::Closed {
                    stats.resets_sent += 1;
                }
                c.abort("listener closed");
            });
        }
        self.wake_listener(l);
    }

    /// Active OPEN (RFC 9293 §3.10.1): send a SYN from `local` (port 0 = ephemeral) to
    /// `remote`.
    pub fn connect(
        &mut self,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        now: Instant,
    ) -> Result<ConnId, TcpError> {
        let (mut local, remote) = (normalize(local.into()), normalize(remote.into()));
        if self.live >= self.config.max_connections && !self.reclaim_time_wait() {
            return Err(TcpError::TooManyConnections);
        }
        // Both ends of a connection are of one family: an IPv4 source cannot reach an
        // IPv6 peer (RFC 8200 §8.1's pseudo-header names both addresses).
        if local.ip().is_unspecified()
            || remote.ip().is_unspecified()
            || remote.port() == 0
            || local.is_ipv4() != remote.is_ipv4()
        {
            return Err(TcpError::AddrNotAvailable);
        }
        if local.port() == 0 {
            let port = self
                .ephemeral_port(local.ip(), remote)
                .ok_or(TcpError::AddrNotAvailable)?;
            local.set_port(port);
        } else if self.table.contains_key(&Key(local, remote)) {
            return Err(TcpError::AddrInUse);
        }
        let iss = self.isn(local, remote, now);
        let conn = Connection::connect(local, remote, iss, &self.config);
        self.stats.connections_opened += 1;
        Ok(self.insert(conn))
    }

    /// SEND: queue data; Ok(0) when the send buffer is full.
    pub fn send(&mut self, id: ConnId, data: &[u8], now: Instant) -> Result<usize, TcpError> {
        let _ = now;
        if self.conn(id).is_none() {
            return Err(TcpError::InvalidHandle);
        }
        self.with_conn(id.index, |c, _| c.send(data))
            .unwrap_or(Err(TcpError::InvalidHandle))
    }

    /// SEND without a copy from the caller's buffer: `fill` writes up to `max` bytes
    /// straight into the send buffer (one contiguous free piece, possibly shorter than
    /// `max`; call again for more) and returns how many it wrote. `Ok(0)` when the buffer
    /// is full (then `fill` is not called). For a file body read straight into TCP.
    pub fn send_with(
        &mut self,
        id: ConnId,
        max: usize,
        now: Instant,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let _ = now;
        if self.conn(id).is_none() {
            return Err(TcpError::InvalidHandle);
        }
        self.with_conn(id.index, |c, _| c.send_with(max, fill))
            .unwrap_or(Err(TcpError::InvalidHandle))
    }

    /// RECEIVE: Err(WouldBlock) when nothing is there yet, Ok(0) at EOF.
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8], now: Instant) -> Result<usize, TcpError> {
        let _ = now;
        match self.conn(id) {
            None => return Err(TcpError::InvalidHandle),
            // Nothing to read, no FIN, no error, not closed: `Connection::recv` would say
            // WouldBlock and change nothing, so the bookkeeping after it has nothing to do
            // (an event loop's reader asks once more after each request, to find it empty).
            Some(c) if !c.recv_ready() => return Err(TcpError::WouldBlock),
            Some(_) => {}
        }
        self.with_conn(id.index, |c, _| c.recv(buf))
            .unwrap_or(Err(TcpError::InvalidHandle))
    }

    /// CLOSE (RFC 9293 §3.10.4): FIN after all queued data.
    pub fn shutdown(&mut self, id: ConnId, now: Instant) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, _| c.close(now));
        }
    }

    /// ABORT (RFC 9293 §3.10.5): RST if synchronized, then CLOSED.
    pub fn abort(&mut self, id: ConnId, now: Instant) {
        let _ = now;
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, stats| {
                if matches!(
                    c.state,
                    State::SynReceived
                        | State::Established
                        | State::FinWait1
                        | State::FinWait2
                        | State::CloseWait
                ) {
                    stats.resets_sent += 1;
                }
                c.abort("ABORT");
            });
        }
    }

    /// The application dropped its handle: RST if unread data is pending, else CLOSE.
    /// The TCB lives on until CLOSED (TIME-WAIT etc.), then it is freed and `id` becomes
    /// invalid.
    pub fn release(&mut self, id: ConnId, now: Instant) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, stats| {
                let had_data = c.readable() > 0 && c.state != State::Closed;
                c.release(now);
                if had_data {
                    stats.resets_sent += 1;
                }
            });
        }
    }

    /// Disable (`true`) or enable Nagle's algorithm for the connection (RFC 1122
    /// §4.2.3.4), like `TCP_NODELAY`. Turning it off lets held data go out now.
    pub fn set_nodelay(&mut self, id: ConnId, nodelay: bool) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, _| c.set_nodelay(nodelay));
        }
    }

    /// Resize the connection's send buffer, like `SO_SNDBUF` on an open socket: room for
    /// more (or fewer) unacknowledged bytes; data already written is kept.
    pub fn set_send_buffer(&mut self, id: ConnId, bytes: usize) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, _| c.set_send_buffer(bytes));
        }
    }

    /// Keep-alive probes for the connection (RFC 1122 §4.2.3.6), or None to turn them
    /// off (the default). After `count` unanswered probes the connection is reset and
    /// reports [`TcpError::TimedOut`].
    pub fn set_keepalive(&mut self, id: ConnId, keepalive: Option<KeepaliveConfig>) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, _| c.set_keepalive(keepalive));
        }
    }

    /// The user timeout (RFC 5482, RFC 9293 §3.8.3, like Linux `TCP_USER_TIMEOUT`): after
    /// this long with sent data unacknowledged and no progress the connection is reset
    /// and reports [`TcpError::TimedOut`]. None (the default) leaves only the
    /// `max_retransmits` bound.
    pub fn set_user_timeout(&mut self, id: ConnId, timeout: Option<Duration>) {
        if self.conn(id).is_some() {
            self.with_conn(id.index, |c, _| c.set_user_timeout(timeout));
        }
    }

    /// The connection's state (CLOSED for a stale id).
    pub fn state(&self, id: ConnId) -> State {
        self.conn(id).map_or(State::Closed, |c| c.state)
    }

    /// Why the connection died, if it did.
    pub fn error(&self, id: ConnId) -> Option<TcpError> {
        match self.conn(id) {
            Some(c) => c.error,
            None => Some(TcpError::InvalidHandle),
        }
    }

    /// A recv would not return WouldBlock.
    pub fn recv_ready(&self, id: ConnId) -> bool {
        self.conn(id).is_none_or(|c| c.recv_ready())
    }

    /// A send would not return Ok(0).
    pub fn send_ready(&self, id: ConnId) -> bool {
        self.conn(id).is_none_or(|c| c.send_ready())
    }

    /// Bytes handed to [`send`](Self::send) that the peer has not acknowledged yet (0 for
    /// a stale id), like Linux's SIOCOUTQ: an application watches it fall to see that a
    /// slow peer is still making progress, and to know when its data was delivered.
    pub fn unacked(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, |c| c.unacked())
    }

    /// The handshake finished (ESTABLISHED or later).
    pub fn is_connected(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.state.is_synchronized())
    }

    /// Our address of the connection.
    pub fn local_addr(&self, id: ConnId) -> SocketAddr {
        self.conn(id).map_or(UNSPECIFIED, |c| c.local)
    }

    /// The peer's address of the connection.
    pub fn peer_addr(&self, id: ConnId) -> SocketAddr {
        self.conn(id).map_or(UNSPECIFIED, |c| c.remote)
    }

    /// Smoothed RTT of the connection, if measured.
    pub fn srtt(&self, id: ConnId) -> Option<Duration> {
        self.conn(id).and_then(|c| c.srtt())
    }

    /// Congestion window of the connection in bytes (0 for a stale id).
    pub fn cwnd(&self, id: ConnId) -> u32 {
        self.conn(id).map_or(0, |c| c.cwnd())
    }

    /// The last soft ICMP error reported about the connection (RFC 1122 §4.2.3.9).
    pub fn soft_error(&self, id: ConnId) -> Option<crate::ip::icmp::ErrorKind> {
        self.conn(id).and_then(|c| c.soft_error)
    }

    /// Effective send MSS of the connection (0 for a stale id).
    pub fn send_mss(&self, id: ConnId) -> u16 {
        self.conn(id).map_or(0, |c| c.send_mss())
    }

    /// Number of TCBs alive (any state, including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// Every connection with its addresses and state, for diagnostics.
    pub fn connection_states(&self) -> Vec<(ConnId, SocketAddr, SocketAddr, State)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.conn.as_ref().map(|c| {
                    (
                        ConnId {
                            index: i as u32,
                            generation: s.generation,
                        },
                        c.local,
                        c.remote,
                        c.state,
                    )
                })
            })
            .collect()
    }

    /// How many connections are in each state (states with none are left out), in the order
    /// first seen: the statistics' view, without listing every connection.
    pub fn state_counts(&self) -> Vec<(State, usize)> {
        let mut counts: Vec<(State, usize)> = Vec::new();
        for c in self.slots.iter().filter_map(|s| s.conn.as_ref()) {
            match counts.iter_mut().find(|(s, _)| *s == c.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((c.state, 1)),
            }
        }
        counts
    }

    /// True if anything socket-visible changed since the last call.
    pub fn take_events(&mut self) -> bool {
        self.woken.clear();
        self.woken_listeners.clear();
        self.woken_overflow = false;
        std::mem::take(&mut self.events)
    }

    /// Like [`Tcp::take_events`], saying whose: appends the connections and listeners with
    /// socket-visible changes (data, space, state, a connection to accept) since the last
    /// call, possibly with repeats. Returns true when the lists are incomplete and every
    /// waiter must be woken.
    pub fn take_wakeups(
        &mut self,
        conns: &mut Vec<ConnId>,
        listeners: &mut Vec<ListenerId>,
    ) -> bool {
        conns.append(&mut self.woken);
        listeners.append(&mut self.woken_listeners);
        self.events = false;
        std::mem::take(&mut self.woken_overflow)
    }

    // ----------------------------------------------------------------------------------
    // Network side.

    /// SEGMENT ARRIVES (RFC 9293 §3.10.7) from `src` to `dst`.
    pub fn on_segment(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        seg: &Segment,
        now: Instant,
    ) {
        self.stats.segments_in += 1;
        let local = SocketAddr::new(dst.into(), seg.dst_port);
        let remote = SocketAddr::new(src.into(), seg.src_port);
        log::trace!(
            "{local} ← {remote}: {} seq {} ack {} win {} len {}",
            seg.flags,
            seg.seq,
            seg.ack,
            seg.window,
            seg.payload.len()
        );
        if let Some(&index) = self.table.get(&Key(local, remote)) {
            // RFC 6191 / RFC 1122 §4.2.2.13: a new SYN for a TIME-WAIT connection may
            // reopen it, with an ISS above the old incarnation's sequence space.
            let reuse = self
                .slots
                .get(index as usize)
                .and_then(|s| s.conn.as_ref())
                .and_then(|c| c.time_wait_reuse(seg));
            // Only a reopening SYN needs the listener: not looked up for every segment.
            let li = reuse.and_then(|_| self.find_listener(local));
            match (reuse, li) {
                (Some(iss), Some(li)) => {
                    self.with_conn(index, |c, _| c.close_time_wait("new SYN (TIME-WAIT reuse)"));
                    self.listener_segment(li, local, remote, seg, Some(iss), now);
                }
                _ => {
                    self.with_conn(index, |c, stats| c.on_segment(seg, now, stats));
                }
            }
            return;
        }
        if let Some(li) = self.find_listener(local) {
            self.listener_segment(li, local, remote, seg, None, now);
            return;
        }
        // RFC 9293 §3.10.7.1: CLOSED.
        self.stats.drop("no connection or listener");
        if !seg.flags.rst {
            self.note(local, remote, || TcpEventKind::ResetNoConnection);
        }
        self.reply_rst(local, remote, seg);
    }

    /// An ICMP error message from `src` quoting one of our datagrams: `quoted` is the
    /// quoted IPv4 header and (at least) the first 8 bytes of the TCP header — ports and
    /// sequence number (RFC 792, RFC 1122 §4.2.3.9). The connection is found by the quoted
    /// addresses and ports and acts only if the quoted sequence number is in flight
    /// (RFC 5927 §4.1).
    pub fn on_icmp_error(
        &mut self,
        src: Ipv4Addr,
        quoted: &[u8],
        kind: crate::ip::icmp::ErrorKind,
        now: Instant,
    ) -> IcmpAction {
        let _ = now;
        let Some((local, remote, seq)) = quoted_tcp(quoted) else {
            return IcmpAction::Malformed;
        };
        let Some(&index) = self.table.get(&Key(local, remote)) else {
            return IcmpAction::NoConnection;
        };
        let action = self
            .with_conn(index, |c, _| c.on_icmp_error(seq, kind))
            .unwrap_or(IcmpAction::NoConnection);
        log::debug!("{local} ↔ {remote}: ICMP {kind:?} from {src}: {action:?}");
        action
    }

    /// An ICMPv6 error message from `src` about a segment of ours (RFC 4443 §3), `about`
    /// being what [`crate::ip::icmpv6::parse_error`] read from its quote. The connection
    /// is found and checked as for ICMPv4 (RFC 5927 §4.1: the quoted sequence number must
    /// be in flight). Packet Too Big lowers the send MSS to the reported MTU less 60
    /// bytes of headers, never below the 1280-byte IPv6 minimum (RFC 8201 §4, §5.2);
    /// port unreachable is a hard error (aborts only in SYN-SENT, RFC 5927 §5.2); time
    /// exceeded, parameter problem and the other unreachables are soft errors, recorded
    /// and reported only if the connection later times out (RFC 5927 §4.2, RFC 1122
    /// §4.2.3.9).
    pub fn on_icmp6_error(
        &mut self,
        src: std::net::Ipv6Addr,
        about: &crate::ip::icmpv6::Quoted,
        kind: crate::ip::icmpv6::ErrorKind6,
        now: Instant,
    ) -> IcmpAction {
        use crate::ip::icmp::{ErrorKind, CODE_HOST_UNREACHABLE, CODE_PORT_UNREACHABLE};
        use crate::ip::icmpv6::{ErrorKind6, CODE_PORT_UNREACHABLE as V6_PORT_UNREACHABLE};
        let _ = now;
        let (Some((src_port, dst_port)), Some(seq)) = (about.ports, about.tcp_seq) else {
            return IcmpAction::Malformed;
        };
        let local = SocketAddr::new(IpAddr::V6(about.src), src_port);
        let remote = SocketAddr::new(IpAddr::V6(about.dst), dst_port);
        let Some(&index) = self.table.get(&Key(local, remote)) else {
            return IcmpAction::NoConnection;
        };
        // The connection's rules are written for ICMPv4's kinds; these are their IPv6
        // equivalents (RFC 4443 §3 against RFC 792).
        let kind = match kind {
            ErrorKind6::PacketTooBig { mtu } => ErrorKind::FragmentationNeeded {
                next_hop_mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
            },
            ErrorKind6::DestUnreachable {
                code: V6_PORT_UNREACHABLE,
            } => ErrorKind::DestUnreachable {
                code: CODE_PORT_UNREACHABLE,
            },
            ErrorKind6::DestUnreachable { .. } => ErrorKind::DestUnreachable {
                code: CODE_HOST_UNREACHABLE,
            },
            ErrorKind6::TimeExceeded { code } => ErrorKind::TimeExceeded { code },
            ErrorKind6::ParameterProblem { .. } => ErrorKind::ParameterProblem,
        };
        let action = self
            .with_conn(index, |c, _| c.on_icmp_error(SeqNum(seq), kind))
            .unwrap_or(IcmpAction::NoConnection);
        log::debug!("{local} ↔ {remote}: ICMPv6 {kind:?} from {src}: {action:?}");
        action
    }

    /// RFC 9293 §3.10.7.1: answer a segment for no connection with a RST.
    fn reply_rst(&mut self, local: SocketAddr, remote: SocketAddr, seg: &Segment) {
        if seg.flags.rst {
            // Never a RST in answer to a RST.
            return;
        }
        let segment = if seg.flags.ack {
            // <SEQ=SEG.ACK><CTL=RST>
            Segment {
                src_port: local.port(),
                dst_port: remote.port(),
                seq: seg.ack,
                flags: Flags::RST,
                ..Segment::default()
            }
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            Segment {
                src_port: local.port(),
                dst_port: remote.port(),
                seq: SeqNum(0),
                ack: seg.seq + seg.seg_len(),
                flags: Flags::RST_ACK,
                ..Segment::default()
            }
        };
        self.stats.resets_sent += 1;
        self.queue_control(local, remote, segment);
    }

    /// Queue a segment that belongs to no connection (a RST, a cookie SYN-ACK).
    fn queue_control(&mut self, local: SocketAddr, remote: SocketAddr, segment: Segment) {
        self.pending.push_back(Transmit {
            src: local.ip(),
            dst: remote.ip(),
            segment,
            gso_size: 0,
        });
    }

    /// RFC 9293 §3.10.7.2: LISTEN. `iss` is the ISS a SYN that reopens a TIME-WAIT
    /// connection must use (RFC 6191), otherwise the RFC 6528 hash decides.
    fn listener_segment(
        &mut self,
        li: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &Segment,
        iss: Option<SeqNum>,
        now: Instant,
    ) {
        if seg.flags.rst {
            // First: an incoming RST is ignored.
            return;
        }
        if seg.flags.ack {
            // A SYN cookie coming back (RFC 4987 §3.6)?
            if self.config.syn_cookies && !seg.flags.syn && !seg.flags.fin {
                if let Some(cookie) = self.check_cookie(local, remote, seg, now) {
                    self.accept_cookie(li, local, remote, seg, cookie, now);
                    return;
                }
                self.stats.syn_cookies_failed += 1;
            }
            // Second: any ACK is bad here: <SEQ=SEG.ACK><CTL=RST>.
            self.stats.drop("ACK to a listener");
            self.reply_rst(local, remote, seg);
            return;
        }
        if !seg.flags.syn {
            // Fourth: other text or control: drop.
            self.stats.drop("not a SYN to a listener");
            return;
        }
        if seg.flags.fin {
            // SYN and FIN together open and close at once; RFC 9293 leaves the case
            // open, no real stack sends it and scanners use it to fingerprint: drop it,
            // as Linux does, instead of answering with a SYN-ACK.
            self.stats.drop("SYN+FIN to a listener");
            return;
        }
        if self.live >= self.config.max_connections {
            self.reclaim_time_wait();
        }
        let live = self.live;
        let max_conns = self.config.max_connections;
        let Some(slot) = self.listeners.get_mut(li as usize) else {
            return;
        };
        let generation = slot.generation;
        let Some(listener) = slot.listener.as_mut() else {
            return;
        };
        // Forget queued connections that died meanwhile.
        let slots = &self.slots;
        listener.accept_queue.retain(|id| {
            slots
                .get(id.index as usize)
                .is_some_and(|s| s.generation == id.generation && s.conn.is_some())
        });
        listener.half_open.retain(|id| {
            slots
                .get(id.index as usize)
                .is_some_and(|s| s.generation == id.generation && s.conn.is_some())
        });
        if listener.accept_queue.len() >= listener.backlog || live >= max_conns {
            // Bounded accept queue: drop the SYN, the peer retries (as Linux does).
            log::debug!("{local} ← {remote}: SYN dropped, accept queue full");
            self.stats.listen_overflows += 1;
            self.stats.drop("SYN: accept queue full");
            self.note(local, remote, || TcpEventKind::Dropped {
                reason: "SYN: accept queue full",
            });
            return;
        }
        if listener.half_open.len() >= listener.backlog && self.config.syn_cookies {
            // The SYN queue is full, most likely of handshakes that will never finish (a
            // SYN flood): answer statelessly with a SYN cookie. Unlike evicting the
            // oldest half-open connection, this keeps every legitimate client that
            // completes its handshake, however fast the flood rotates the queue.
            self.send_cookie(local, remote, seg, now);
            return;
        }
        if listener.half_open.len() >= listener.backlog {
            // The SYN queue is full — most likely of handshakes that will never finish
            // (a SYN flood): evict the oldest half-open connection, as the BSD syncache
            // does, so that a real client still gets in.
            if let Some(oldest) = listener.half_open.pop_front() {
                log::debug!("{local} ← {remote}: SYN queue full, evicting the oldest half-open");
                self.stats.listen_overflows += 1;
                self.free(oldest.index);
            }
        }
        let iss = iss.unwrap_or_else(|| self.isn(local, remote, now));
        let mut conn = Connection::accept_syn(local, remote, iss, seg, &self.config, now);
        conn.owner = Owner::Listener(li, generation);
        let id = self.insert(conn);
        if let Some(l) = self.listener_mut(li, generation) {
            l.half_open.push_back(id);
        }
    }

    /// Answer a SYN with a SYN cookie SYN-ACK (RFC 4987 §3.6), keeping no state.
    fn send_cookie(&mut self, local: SocketAddr, remote: SocketAddr, seg: &Segment, now: Instant) {
        let our_mss = if remote.is_ipv6() {
            super::connection::mss_for_ipv6(self.config.mss)
        } else {
            self.config.mss
        };
        let peer_mss = seg.options.mss.unwrap_or(536).min(our_mss);
        let idx = syncookie::mss_index(peer_mss);
        let iss = syncookie::encode(&self.secret, local, remote, seg.seq, idx, now);
        let mut options = super::segment::TcpOptions {
            mss: Some(our_mss),
            ..Default::default()
        };
        // Window scale and SACK survive only inside the TSval (see syncookie.rs).
        if let (true, Some((peer_val, _))) = (self.config.timestamps, seg.options.timestamps) {
            let ws = seg.options.window_scale.and(wscale_offer(&self.config));
            let sack = seg.options.sack_permitted;
            let tsval = syncookie::encode_ts(
                ts_clock(now, self.ts_offset(local, remote)),
                ws.and(seg.options.window_scale),
                sack,
            );
            options.timestamps = Some((tsval, peer_val));
            options.window_scale = ws;
            options.sack_permitted = sack;
        }
        let segment = Segment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: iss,
            ack: seg.seq + 1,
            flags: Flags::SYN_ACK,
            window: ack_window_offer(&self.config),
            options,
            ..Segment::default()
        };
        self.stats.syn_cookies_sent += 1;
        self.queue_control(local, remote, segment);
    }

    /// The MSS, window scale and SACK a returning ACK's cookie carries, if valid.
    fn check_cookie(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &Segment,
        now: Instant,
    ) -> Option<(u16, Option<u8>, bool)> {
        let mss = syncookie::decode(&self.secret, local, remote, seg.seq - 1, seg.ack - 1, now)?;
        let (ws, sack) = match (self.config.timestamps, seg.options.timestamps) {
            (true, Some((_, ecr))) => {
                let (ws, sack) = syncookie::decode_ts(ecr);
                (ws.and(wscale_offer(&self.config)).and(ws), sack)
            }
            _ => (None, false),
        };
        Some((mss, ws, sack))
    }

    /// A valid cookie: the connection goes straight to ESTABLISHED and the accept queue.
    fn accept_cookie(
        &mut self,
        li: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &Segment,
        (mss, ws, sack): (u16, Option<u8>, bool),
        now: Instant,
    ) {
        let Some(slot) = self.listeners.get(li as usize) else {
            return;
        };
        let generation = slot.generation;
        let full = slot
            .listener
            .as_ref()
            .is_none_or(|l| l.accept_queue.len() >= l.backlog);
        if full || self.live >= self.config.max_connections {
            // Like Linux: drop the ACK; the client's retransmission may find room.
            self.stats.listen_overflows += 1;
            self.stats.drop("cookie ACK: accept queue full");
            return;
        }
        let iss = seg.ack - 1;
        let mut conn =
            Connection::from_cookie(local, remote, iss, seg, mss, ws, sack, &self.config, now);
        conn.owner = Owner::Listener(li, generation);
        let id = self.insert(conn);
        self.stats.syn_cookies_validated += 1;
        self.stats.connections_accepted += 1;
        self.events = true;
        if let Some(l) = self.listener_mut(li, generation) {
            l.accept_queue.push_back(id);
        }
        // A thread blocked in accept() waits on the listener's own wake-up.
        self.wake_listener(ListenerId {
            index: li,
            generation,
        });
        // The ACK may carry data (and always a window): process it as usual.
        self.with_conn(id.index, |c, stats| c.on_segment(seg, now, stats));
    }

    /// The most out-of-order bytes all connections together may hold
    /// ([`DEFAULT_OUT_OF_ORDER_BUDGET`] unless set). Each connection is bounded by its
    /// receive buffer too, but ten thousand connections each holding a buffer's worth
    /// above a gap a peer never fills would hold gigabytes; beyond the budget, new
    /// out-of-order data is dropped (counted under "out-of-order memory budget") and
    /// in-order data still accepted.
    pub fn set_out_of_order_budget(&mut self, bytes: usize) {
        self.ooo_budget = bytes;
    }

    /// Out-of-order bytes held by all connections now (for the global budget).
    pub fn out_of_order_bytes(&self) -> usize {
        self.ooo_held
    }

    /// Let connections send super-segments (TSO) of up to `max_segment` bytes of TCP header
    /// and payload (at most 65515: an IPv4 packet's 65535 less its header), for a device
    /// that cuts them into wire segments; `None` (the default) turns it off. A
    /// super-segment comes out of [`Tcp::poll_transmit`] / [`Tcp::poll_transmit_into`]
    /// with a non-zero `gso_size`.
    pub fn set_tso(&mut self, max_segment: Option<usize>) {
        self.tso = max_segment.map(|n| n.min(MAX_SUPER_SEGMENT));
    }

    /// [`Tcp::set_tso`] for connections to IPv6 peers, for a device that cuts TCP/IPv6
    /// super-segments (`TUN_F_TSO6`): up to `max_segment` bytes of TCP header and payload
    /// (at most 65535, the IPv6 payload-length limit). `None` (the default): IPv6
    /// connections send wire-sized segments.
    pub fn set_tso6(&mut self, max_segment: Option<usize>) {
        self.tso6 = max_segment.map(|n| n.min(MAX_SUPER_SEGMENT6));
    }

    /// Leave the checksum of every connection segment out of [`Tcp::poll_transmit_into`]
    /// partial (the folded pseudo-header sum), for a device that completes it
    /// (`VIRTIO_NET_HDR_F_NEEDS_CSUM`), as a NIC's transmit checksum offload does. The
    /// payload is then never summed in user space, and the kernel, receiving a packet whose
    /// checksum it completes itself, does not verify it either. Control segments (RSTs,
    /// cookie SYN-ACKs) keep complete checksums.
    pub fn set_tx_checksum_offload(&mut self, on: bool) {
        self.tx_csum_partial = on;
    }

    /// The next segment to send, or None when there is nothing more right now. The
    /// segment owns a copy of its payload; [`Tcp::poll_transmit_into`] writes it straight
    /// into a packet buffer instead.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        match self.next_outgoing(now)? {
            Next::Control(t) => Some(t),
            Next::Conn(index, out) => {
                let conn = self.slots.get(index as usize)?.conn.as_ref()?;
                let mut segment = out.segment;
                segment.payload.reserve_exact(out.data_len);
                conn.write_payload(out.data_offset, out.data_len, &mut segment.payload);
                Some(Transmit {
                    src: conn.local.ip(),
                    dst: conn.remote.ip(),
                    segment,
                    gso_size: out.gso_size,
                })
            }
        }
    }

    /// The next segment to send, appended to `out` as bytes (header, options, payload
    /// copied straight from the send buffer, checksum) — no allocation per segment. The
    /// caller has written room for the IP header before it and fills that in afterwards
    /// from what this returns. A super-segment (`gso_size` non-zero), and with
    /// [`Tcp::set_tx_checksum_offload`] any connection segment, carries a partial checksum
    /// for the device to complete ([`Segment::emit_with_payload`]).
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<TransmitInfo> {
        let (info, [a, b]) = self.poll_transmit_gather(now, out)?;
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        Some(info)
    }

    /// Like [`Tcp::poll_transmit_into`], but a segment with a partial checksum leaves its
    /// payload where it is: only the header goes into `out`, and the payload comes back as
    /// the (at most two) pieces of the send buffer that hold it, for a device that gathers
    /// the packet (`writev`). The checksum already covers the whole length. Otherwise
    /// (control segments, complete checksums) the payload is in `out` and the pieces are
    /// empty.
    pub fn poll_transmit_gather<'a>(
        &'a mut self,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<(TransmitInfo, [&'a [u8]; 2])> {
        self.poll_transmit_gather_after(now, out, [0, 0])
    }

    /// Like [`Tcp::poll_transmit_gather`], but first appends `room[0]` zero bytes to `out`
    /// for a segment to an IPv4 peer, `room[1]` for one to an IPv6 peer: the caller's
    /// IP header, whose length depends on the family of a segment it cannot know before.
    pub fn poll_transmit_gather_after<'a>(
        &'a mut self,
        now: Instant,
        out: &mut Vec<u8>,
        room: [usize; 2],
    ) -> Option<(TransmitInfo, [&'a [u8]; 2])> {
        let room_for = |ip: IpAddr| room[usize::from(ip.is_ipv6())];
        match self.next_outgoing(now)? {
            Next::Control(t) => {
                out.resize(out.len() + room_for(t.dst), 0);
                t.segment.emit_into(out, t.src, t.dst);
                let info = TransmitInfo {
                    src: t.src,
                    dst: t.dst,
                    gso_size: 0,
                    csum_partial: false,
                };
                Some((info, [&[], &[]]))
            }
            Next::Conn(index, o) => {
                let conn = self.slots.get(index as usize)?.conn.as_ref()?;
                let (src, dst) = (conn.local.ip(), conn.remote.ip());
                out.resize(out.len() + room_for(dst), 0);
                // A super-segment's checksum is always partial (each piece's can only be
                // computed once the device cut it), over the pseudo-header of its family.
                // Ordinary segments leave it partial for IPv4 only: for IPv6 the plain
                // path keeps complete checksums, as it did before TSO6.
                let partial = o.gso_size != 0 || (self.tx_csum_partial && dst.is_ipv4());
                let info = TransmitInfo {
                    src,
                    dst,
                    gso_size: o.gso_size,
                    csum_partial: partial,
                };
                if partial {
                    let (a, b) = conn.payload_slices(o.data_offset, o.data_len);
                    o.segment
                        .emit_header_partial(out, src, dst, a.len() + b.len());
                    return Some((info, [a, b]));
                }
                o.segment.emit_with_payload(out, src, dst, false, |p| {
                    conn.write_payload(o.data_offset, o.data_len, p)
                });
                Some((info, [&[], &[]]))
            }
        }
    }

    /// The next segment to send, its payload not yet copied: a control segment from the
    /// endpoint's own queue (RSTs, cookie SYN-ACKs), or one from a connection.
    fn next_outgoing(&mut self, now: Instant) -> Option<Next> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                self.stats.segments_out += 1;
                log_out(t.src, t.dst, &t.segment, t.segment.payload.len(), 0);
                return Some(Next::Control(t));
            }
            let index = self.dirty.pop_front()?;
            let (tso, tso6) = (self.tso, self.tso6);
            let Some(conn) = self
                .slots
                .get_mut(index as usize)
                .and_then(|s| s.conn.as_mut())
            else {
                continue;
            };
            conn.in_dirty = false;
            // Each family has its own limit and switch: a device may cut TCP/IPv4
            // super-segments (TSO4) but not TCP/IPv6 ones (TSO6), see `link::tunq`.
            let tso = if conn.remote.is_ipv4() { tso } else { tso6 };
            let out = conn.poll_transmit(now, &mut self.stats, tso);
            Self::collect_events(&mut self.trace_events, conn);
            // Sending arms the retransmission (or persist) timer.
            self.schedule(index);
            let Some(conn) = self
                .slots
                .get_mut(index as usize)
                .and_then(|s| s.conn.as_mut())
            else {
                continue;
            };
            if let Some(out) = out {
                // It may have more: back of the line (round robin between connections).
                conn.in_dirty = true;
                self.dirty.push_back(index);
                // Counted as the wire will see them: a super-segment is several segments.
                self.stats.segments_out += out.wire_segments();
                if out.gso_size != 0 {
                    self.stats.super_segments_out += 1;
                }
                log_out(
                    conn.local.ip(),
                    conn.remote.ip(),
                    &out.segment,
                    out.data_len,
                    out.gso_size,
                );
                return Some(Next::Conn(index, out));
            }
        }
    }

    /// The earliest instant at which [`Tcp::handle_timeout`] has work. `&mut`: the timer
    /// heap catches up here with the connections touched since it was last asked.
    pub fn poll_at(&mut self) -> Option<Instant> {
        self.flush_timers();
        self.tidy_timers();
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// An instant no later than [`Tcp::poll_at`], maybe earlier: when an event loop should
    /// call [`Tcp::handle_timeout`] next. The earliest entry of the timer heap may be a
    /// timer re-armed later since (the retransmission timer is, on every ACK that leaves
    /// data in flight, and stopped on every ACK that leaves none); making the top exact
    /// moves such an entry for every request of a keep-alive connection, while leaving it
    /// costs one early call of `handle_timeout` per connection and retransmission timeout,
    /// which re-arms it.
    pub fn wake_at(&mut self) -> Option<Instant> {
        self.flush_timers();
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.flush_timers();
        let mut due: Vec<u32> = Vec::new();
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(slot) = self.slots.get_mut(index as usize) {
                if slot.generation == generation && slot.scheduled == Some(at) {
                    slot.scheduled = None;
                    due.push(index);
                }
            }
        }
        for index in due {
            let is_due = self
                .slots
                .get(index as usize)
                .and_then(|s| s.conn.as_ref())
                .and_then(|c| c.deadline())
                .is_some_and(|d| d <= now);
            if is_due {
                let limit = self.syn_retry_limit(index);
                let configured = self.config.syn_retries;
                let pruned = self.with_conn(index, |c, stats| {
                    let pruning = limit.is_some_and(|l| l < configured && c.syn_timeouts() >= l);
                    if let Some(l) = limit {
                        c.set_syn_retries(l);
                    }
                    c.on_timeout(now, stats);
                    pruning && c.state == State::Closed
                });
                if pruned == Some(true) {
                    self.stats.syn_queue_pruned += 1;
                }
            } else {
                // Fired early: the timer was re-armed later since. Re-arm the entry.
                self.schedule(index);
            }
        }
        self.flush_timers();
    }
}

/// The address of a stale handle: `0.0.0.0:0`.
const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The unspecified address and port 0 of `addr`'s family.
fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => UNSPECIFIED,
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// An application's address as the tables hold it: an IPv4-mapped IPv6 address
/// (RFC 4291 §2.5.5.2) becomes the IPv4 address it names, and the flow label and scope
/// of a `SocketAddrV6` are dropped, so equal endpoints compare (and hash) equal to the
/// ones built from received packets.
fn normalize(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(crate::ip::canonical(addr.ip()), addr.port())
}

/// An address into a keyed hash (ISNs, timestamp offsets, SYN cookies): an IPv4 one as
/// its `SocketAddrV4` hashes, an IPv6 one as its 16 bytes and port (never its flow label
/// or scope, which the peer's segments do not carry).
pub(crate) fn hash_addr(addr: SocketAddr, h: &mut impl Hasher) {
    match addr {
        SocketAddr::V4(a) => a.hash(h),
        SocketAddr::V6(a) => (a.ip(), a.port()).hash(h),
    }
}

/// (local, remote): the key of the connection table, looked up for every segment. Its
/// hash feeds the table's hasher one word per IPv4 endpoint (address and port packed)
/// and two per IPv6 endpoint, instead of the derived hash's discriminants, slice
/// lengths and the flow label and scope an IPv6 endpoint never has here.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct Key(SocketAddr, SocketAddr);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for addr in [self.0, self.1] {
            match addr {
                SocketAddr::V4(a) => {
                    h.write_u64(u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()))
                }
                SocketAddr::V6(a) => {
                    h.write_u128(a.ip().to_bits());
                    h.write_u16(a.port());
                }
            }
        }
    }
}

/// (local, remote, sequence number) of the TCP segment quoted in an ICMP error: an IPv4
/// header (IHL words) followed by at least 8 bytes of TCP header.
fn quoted_tcp(quoted: &[u8]) -> Option<(SocketAddr, SocketAddr, SeqNum)> {
    let first = *quoted.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || *quoted.get(9)? != crate::ip::ipv4::PROTO_TCP {
        return None;
    }
    let ip = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = quoted.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let tcp = quoted.get(header_len..header_len.checked_add(8)?)?;
    let word =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*tcp.get(at)?, *tcp.get(at + 1)?])) };
    let seq: [u8; 4] = tcp.get(4..8)?.try_into().ok()?;
    Some((
        SocketAddr::new(IpAddr::V4(ip(12)?), word(0)?),
        SocketAddr::new(IpAddr::V4(ip(16)?), word(2)?),
        SeqNum(u32::from_be_bytes(seq)),
    ))
}

fn log_out(src: IpAddr, dst: IpAddr, s: &Segment, len: usize, gso_size: u16) {
    log::trace!(
        "{}:{} → {}:{}: {} seq {} ack {} win {} len {} gso {}",
        src,
        s.src_port,
        dst,
        s.dst_port,
        s.flags,
        s.seq,
        s.ack,
        s.window,
        len,
        gso_size
    );
}

/// What [`Tcp::next_outgoing`] found to send.
enum Next {
    /// A segment of the endpoint's own (payload included, if any).
    Control(Transmit),
    /// A segment of the connection in this slot; its payload is still in the send buffer.
    Conn(u32, Outgoing),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::segment::TcpOptions;
    use rand::rngs::StdRng;
    use std::net::SocketAddrV4;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// Two endpoints wired back to back, with a virtual clock and an optional lossy link.
    struct Net {
        a: Tcp,
        b: Tcp,
        now: Instant,
        loss: f64,
        rng: StdRng,
        /// Every segment that crossed the link: (from_a, segment).
        log: Vec<(bool, Segment)>,
    }

    impl Net {
        fn new(config: Config) -> Net {
            Net {
                a: Tcp::new(config.clone(), 1),
                b: Tcp::new(config, 2),
                now: Instant::from_secs(1),
                loss: 0.0,
                rng: StdRng::seed_from_u64(7),
                log: Vec::new(),
            }
        }

        /// Move every pending segment across once; true if anything moved.
        fn pump_once(&mut self) -> bool {
            let mut moved = false;
            let mut out_a = Vec::new();
            while let Some(t) = self.a.poll_transmit(self.now) {
                out_a.push(t);
            }
            let mut out_b = Vec::new();
            while let Some(t) = self.b.poll_transmit(self.now) {
                out_b.push(t);
            }
            for t in out_a {
                moved = true;
                self.log.push((true, t.segment.clone()));
                if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                    continue;
                }
                // Round-trip through the wire format.
                let bytes = t.segment.emit(t.src, t.dst);
                let seg = Segment::parse(t.src, t.dst, &bytes).expect("valid segment");
                self.b.on_segment(t.src, t.dst, &seg, self.now);
            }
            for t in out_b {
                moved = true;
                self.log.push((false, t.segment.clone()));
                if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                    continue;
                }
                let bytes = t.segment.emit(t.src, t.dst);
                let seg = Segment::parse(t.src, t.dst, &bytes).expect("valid segment");
                self.a.on_segment(t.src, t.dst, &seg, self.now);
            }
            moved
        }

        /// Exchange segments (1 ms per hop) until quiet.
        fn pump(&mut self) {
            for _ in 0..100_000 {
                if !self.pump_once() {
                    return;
                }
                self.now += Duration::from_millis(1);
                self.fire();
            }
            panic!("network never went quiet");
        }

        fn fire(&mut self) {
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }

        /// Advance to the next timer (if within `limit`), fire it, pump.
        fn advance(&mut self, limit: Duration) -> bool {
            let next = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= self.now + limit => {
                    self.now = self.now.max(t);
                    self.fire();
                    self.pump();
                    true
                }
                _ => false,
            }
        }

        fn connect(&mut self) -> (ConnId, ConnId, ListenerId) {
            let l = self.b.listen(SocketAddrV4::new(B, 80), 8).unwrap();
            let c = self
                .a
                .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), self.now)
                .unwrap();
            assert_eq!(self.a.state(c), State::SynSent);
            self.pump();
            let s = self.b.accept(l).expect("accepted");
            assert_eq!(self.a.state(c), State::Established);
            assert_eq!(self.b.state(s), State::Established);
            (c, s, l)
        }

        /// Another client connection to the listener `l` of [`Net::connect`].
        fn connect_more(&mut self, l: ListenerId) -> (ConnId, ConnId) {
            let c = self
                .a
                .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), self.now)
                .unwrap();
            self.pump();
            let s = self.b.accept(l).expect("accepted");
            (c, s)
        }

        /// The server closes first, so it keeps the TIME-WAIT; both ends are released.
        fn server_closes_first(&mut self, c: ConnId, s: ConnId) {
            self.b.shutdown(s, self.now);
            self.pump();
            self.a.shutdown(c, self.now);
            self.pump();
            assert_eq!(self.b.state(s), State::TimeWait);
            self.a.release(c, self.now);
            self.b.release(s, self.now);
        }
    }

    fn read_all(tcp: &mut Tcp, id: ConnId, now: Instant) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.recv(id, &mut buf, now) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(TcpError::WouldBlock) => return (out, false),
                Err(e) => panic!("recv error {e}"),
            }
        }
    }

    /// A keep-alive exchange arms the retransmission timer and the ACK stops it. The heap
    /// keeps the stopped timer's entry: `wake_at` may name it (early), `poll_at` never
    /// does, and firing at the early instant sends nothing and leaves both agreeing.
    #[test]
    fn a_stopped_timer_makes_wake_at_early_never_late() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        for _ in 0..3 {
            assert_eq!(net.a.send(c, b"GET / HTTP/1.1\r\n\r\n", net.now), Ok(18));
            net.pump();
            read_all(&mut net.b, s, net.now);
            assert_eq!(net.b.send(s, b"HTTP/1.1 200 OK\r\n\r\n", net.now), Ok(19));
            net.pump();
            read_all(&mut net.a, c, net.now);
            // Let the client's delayed ACK go out, so nothing is left in flight.
            while net.b.unacked(s) > 0 {
                assert!(net.advance(Duration::from_secs(1)));
            }
        }
        let early = net.b.wake_at().expect("the stopped timer's entry");
        // The server has no timer running: the exact answer is none.
        assert_eq!(net.b.poll_at(), None);
        let sent = net.b.stats().segments_out;
        net.now = net.now.max(early);
        net.b.handle_timeout(net.now);
        assert!(net.b.poll_transmit(net.now).is_none());
        assert_eq!(net.b.stats().segments_out, sent);
        assert_eq!(net.b.stats().timeouts, 0);
        assert_eq!(net.b.wake_at(), None);
        assert_eq!(net.b.state(s), State::Established);
    }

    const A6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    fn v6(ip: std::net::Ipv6Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(ip), port)
    }

    /// A connects from [fd00::1] to B's listener on `listen` (port 80).
    fn connect6(net: &mut Net, listen: SocketAddr) -> (ConnId, ConnId) {
        let l = net.b.listen(listen, 8).unwrap();
        let c = net.a.connect(v6(A6, 0), v6(B6, 80), net.now).unwrap();
        net.pump();
        let s = net.b.accept(l).expect("accepted");
        assert_eq!(net.a.state(c), State::Established);
        (c, s)
    }

    /// Send `data` from `from` to `to` over the net and read it all.
    fn transfer(net: &mut Net, from: ConnId, to: ConnId, data: &[u8]) -> Vec<u8> {
        let mut sent = 0;
        let mut got = Vec::new();
        for _ in 0..10_000 {
            if sent < data.len() {
                sent += net.a.send(from, &data[sent..], net.now).unwrap();
            }
            net.pump();
            got.extend(read_all(&mut net.b, to, net.now).0);
            if got.len() >= data.len() {
                break;
            }
            net.advance(Duration::from_secs(5));
        }
        got
    }

    #[test]
    fn ipv6_connection_carries_data_with_the_ipv6_mss() {
        let mut net = Net::new(Config::default());
        // A listener on the IPv4 wildcard takes an IPv6 connection (a dual-stack
        // wildcard), and both ends see IPv6 addresses.
        let (c, s) = connect6(
            &mut net,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80).into(),
        );
        assert_eq!(net.b.peer_addr(s).ip(), IpAddr::V6(A6));
        assert_eq!(net.b.local_addr(s), v6(B6, 80));
        assert_eq!(net.a.peer_addr(c), v6(B6, 80));
        // RFC 8200 §8.3: the MSS offered to an IPv6 peer is 20 bytes less than over IPv4
        // (MTU 1500 − 60), both in the SYN and the SYN-ACK.
        let syns: Vec<_> = net.log.iter().filter(|(_, s)| s.flags.syn).collect();
        assert_eq!(syns.len(), 2);
        assert!(syns.iter().all(|(_, s)| s.options.mss == Some(1440)));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        net.loss = 0.02;
        let got = transfer(&mut net, c, s, &data);
        assert_eq!(got, data, "byte-exact over a lossy link");
        // Every data segment fits the IPv6 MSS less the timestamp option.
        let biggest = net.log.iter().map(|(_, s)| s.payload.len()).max().unwrap();
        assert_eq!(biggest, 1440 - 12);
    }

    #[test]
    fn ipv4_and_ipv6_4_tuples_with_the_same_ports_are_distinct() {
        let mut net = Net::new(Config::default());
        let l = net
            .b
            .listen(v6(std::net::Ipv6Addr::UNSPECIFIED, 80), 8)
            .unwrap();
        let c4 = net
            .a
            .connect(
                SocketAddrV4::new(A, 40000),
                SocketAddrV4::new(B, 80),
                net.now,
            )
            .unwrap();
        let c6 = net.a.connect(v6(A6, 40000), v6(B6, 80), net.now).unwrap();
        net.pump();
        let s1 = net.b.accept(l).expect("first");
        let s2 = net.b.accept(l).expect("second");
        let peers = [net.b.peer_addr(s1), net.b.peer_addr(s2)];
        assert!(peers.contains(&SocketAddrV4::new(A, 40000).into()));
        assert!(peers.contains(&v6(A6, 40000)));
        assert!(net.a.is_connected(c4) && net.a.is_connected(c6));
        // An IPv4-mapped address names the IPv4 host: the same 4-tuple, in use.
        let mapped = SocketAddr::new(IpAddr::V6(A.to_ipv6_mapped()), 40000);
        assert_eq!(
            net.a.connect(mapped, SocketAddrV4::new(B, 80), net.now),
            Err(TcpError::AddrInUse)
        );
    }

    #[test]
    fn connect_across_families_is_refused() {
        let mut net = Net::new(Config::default());
        assert_eq!(
            net.a.connect(SocketAddrV4::new(A, 0), v6(B6, 80), net.now),
            Err(TcpError::AddrNotAvailable)
        );
        assert_eq!(
            net.a.connect(v6(A6, 0), SocketAddrV4::new(B, 80), net.now),
            Err(TcpError::AddrNotAvailable)
        );
    }

    #[test]
    fn ipv6_closed_port_answers_with_rst_to_the_ipv6_peer() {
        let mut net = Net::new(Config::default());
        let c = net.a.connect(v6(A6, 0), v6(B6, 9), net.now).unwrap();
        let t = net.a.poll_transmit(net.now).unwrap();
        net.b.on_segment(t.src, t.dst, &t.segment, net.now);
        let rst = net.b.poll_transmit(net.now).expect("a RST");
        assert!(rst.segment.flags.rst);
        assert_eq!((rst.src, rst.dst), (IpAddr::V6(B6), IpAddr::V6(A6)));
        net.a.on_segment(rst.src, rst.dst, &rst.segment, net.now);
        assert_eq!(net.a.error(c), Some(TcpError::ConnectionRefused));
    }

    /// The quote of the last segment `from` sent with data, as an ICMPv6 error about it
    /// would carry.
    fn quoted6(net: &Net, from_a: bool) -> crate::ip::icmpv6::Quoted {
        let (_, seg) = net
            .log
            .iter()
            .rev()
            .find(|(a, s)| *a == from_a && !s.payload.is_empty())
            .expect("a data segment");
        let (src, dst) = if from_a { (A6, B6) } else { (B6, A6) };
        crate::ip::icmpv6::Quoted {
            src,
            dst,
            protocol: Some(6),
            ports: Some((seg.src_port, seg.dst_port)),
            tcp_seq: Some(seg.seq.0),
        }
    }

    #[test]
    fn ipv6_packet_too_big_lowers_the_mss_never_below_1280() {
        use crate::ip::icmpv6::ErrorKind6;
        let mut net = Net::new(Config::default());
        let (c, s) = connect6(&mut net, v6(B6, 80));
        // 1440 less the timestamp option every segment carries.
        assert_eq!(net.a.send_mss(c), 1440 - 12);
        // Data in flight, unacknowledged (the link holds it).
        net.a.send(c, &[7u8; 20_000], net.now).unwrap();
        let mut flight = Vec::new();
        while let Some(t) = net.a.poll_transmit(net.now) {
            flight.push(t);
        }
        net.log
            .extend(flight.iter().map(|t| (true, t.segment.clone())));
        let q = quoted6(&net, true);
        // RFC 8201 §4: the MTU less 60 bytes of headers and the 12 of timestamps.
        let kind = ErrorKind6::PacketTooBig { mtu: 1400 };
        assert_eq!(
            net.a.on_icmp6_error(B6, &q, kind, net.now),
            IcmpAction::MssLowered(1400 - 60 - 12)
        );
        // Never below the IPv6 minimum MTU, whatever the message says.
        let kind = ErrorKind6::PacketTooBig { mtu: 600 };
        assert_eq!(
            net.a.on_icmp6_error(B6, &q, kind, net.now),
            IcmpAction::MssLowered(1280 - 60 - 12)
        );
        // RFC 5927 §4.1: a quote outside SND.UNA..SND.MAX is ignored.
        let mut stale = q;
        stale.tcp_seq = Some(q.tcp_seq.unwrap().wrapping_sub(1_000_000));
        assert_eq!(
            net.a.on_icmp6_error(B6, &stale, kind, net.now),
            IcmpAction::OutOfWindow
        );
        // What is sent from now on fits 1280-byte packets, and all of it arrives.
        net.log.clear();
        net.pump();
        let mut all = read_all(&mut net.b, s, net.now).0;
        for _ in 0..100 {
            if all.len() >= 20_000 {
                break;
            }
            net.advance(Duration::from_secs(5));
            all.extend(read_all(&mut net.b, s, net.now).0);
        }
        assert_eq!(all.len(), 20_000);
        let biggest = net
            .log
            .iter()
            .filter(|(a, _)| *a)
            .map(|(_, s)| s.payload.len())
            .max()
            .unwrap();
        assert_eq!(biggest, 1280 - 60 - 12);
    }

    #[test]
    fn ipv6_errors_are_soft_except_port_unreachable_in_syn_sent() {
        use crate::ip::icmpv6::{ErrorKind6, Quoted};
        let mut net = Net::new(Config::default());
        let (c, _s) = connect6(&mut net, v6(B6, 80));
        net.a.send(c, &[1u8; 1000], net.now).unwrap();
        let t = net.a.poll_transmit(net.now).unwrap();
        net.log.push((true, t.segment));
        let q = quoted6(&net, true);
        // RFC 5927 §4.2 / RFC 1122 §4.2.3.9: soft errors are recorded, nothing more.
        for kind in [
            ErrorKind6::TimeExceeded { code: 0 },
            ErrorKind6::ParameterProblem {
                code: 0,
                pointer: 6,
            },
            ErrorKind6::DestUnreachable { code: 3 },
            ErrorKind6::DestUnreachable { code: 4 },
        ] {
            assert_eq!(
                net.a.on_icmp6_error(B6, &q, kind, net.now),
                IcmpAction::SoftError,
                "{kind:?}"
            );
            assert!(net.a.is_connected(c));
        }
        assert!(net.a.soft_error(c).is_some());
        // An unknown connection: nothing.
        let other = Quoted {
            ports: Some((1, 2)),
            ..q
        };
        assert_eq!(
            net.a
                .on_icmp6_error(B6, &other, ErrorKind6::TimeExceeded { code: 0 }, net.now),
            IcmpAction::NoConnection
        );
        // Port unreachable for a SYN: the connection is refused (RFC 5927 §5.2).
        let c2 = net.a.connect(v6(A6, 0), v6(B6, 81), net.now).unwrap();
        let syn = net.a.poll_transmit(net.now).unwrap();
        let q2 = Quoted {
            ports: Some((syn.segment.src_port, 81)),
            tcp_seq: Some(syn.segment.seq.0),
            ..q
        };
        let kind = ErrorKind6::DestUnreachable { code: 4 };
        assert_eq!(
            net.a.on_icmp6_error(B6, &q2, kind, net.now),
            IcmpAction::Aborted
        );
        assert_eq!(net.a.error(c2), Some(TcpError::ConnectionRefused));
    }

    #[test]
    fn handshake_data_and_active_close() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        // 1460 minus the 12 bytes of the timestamps option on every segment.
        assert_eq!(net.a.send_mss(c), 1448);
        assert_eq!(net.a.send(c, b"hello", net.now), Ok(5));
        net.pump();
        assert!(net.b.recv_ready(s));
        assert_eq!(read_all(&mut net.b, s, net.now), (b"hello".to_vec(), false));
        assert_eq!(net.b.send(s, b"world", net.now), Ok(5));
        net.pump();
        assert_eq!(read_all(&mut net.a, c, net.now), (b"world".to_vec(), false));

        // Active close by A: FIN-WAIT-1 → FIN-WAIT-2; B: CLOSE-WAIT.
        net.a.shutdown(c, net.now);
        assert_eq!(net.a.state(c), State::FinWait1);
        net.pump();
        assert_eq!(net.a.state(c), State::FinWait2);
        assert_eq!(net.b.state(s), State::CloseWait);
        assert_eq!(read_all(&mut net.b, s, net.now), (vec![], true));
        assert_eq!(net.a.send(c, b"x", net.now), Err(TcpError::BrokenPipe));
        // B still sends, then closes: LAST-ACK → CLOSED; A: TIME-WAIT.
        net.b.send(s, b"bye", net.now).unwrap();
        net.b.shutdown(s, net.now);
        assert_eq!(net.b.state(s), State::LastAck);
        net.pump();
        assert_eq!(net.b.state(s), State::Closed);
        assert_eq!(net.a.state(c), State::TimeWait);
        assert_eq!(read_all(&mut net.a, c, net.now), (b"bye".to_vec(), true));
        net.b.release(s, net.now);
        assert_eq!(net.b.state(s), State::Closed);
        assert_eq!(net.b.error(s), Some(TcpError::InvalidHandle));
        // 2·MSL later A's TCB closes.
        let tw = net.a.poll_at().unwrap();
        assert!(tw >= net.now + Duration::from_secs(59));
        assert!(net.advance(Duration::from_secs(61)));
        assert_eq!(net.a.state(c), State::Closed);
        assert_eq!(net.a.error(c), None);
        net.a.release(c, net.now);
        assert_eq!(net.a.connection_count(), 0);
        assert_eq!(net.b.connection_count(), 0);
    }

    #[test]
    fn simultaneous_close_goes_through_closing() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.a.shutdown(c, net.now);
        net.b.shutdown(s, net.now);
        // Both FINs cross on the wire.
        net.pump_once();
        assert_eq!(net.a.state(c), State::Closing);
        assert_eq!(net.b.state(s), State::Closing);
        net.pump();
        assert_eq!(net.a.state(c), State::TimeWait);
        assert_eq!(net.b.state(s), State::TimeWait);
    }

    #[test]
    fn fin_and_ack_of_fin_together_go_straight_to_time_wait() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.a.shutdown(c, net.now);
        // Deliver A's FIN to B; B closes before ACKing, so its FIN carries the ACK.
        let fin = net.a.poll_transmit(net.now).unwrap();
        assert!(fin.segment.flags.fin);
        net.b.on_segment(fin.src, fin.dst, &fin.segment, net.now);
        net.b.shutdown(s, net.now);
        let reply = net.b.poll_transmit(net.now).unwrap();
        assert!(reply.segment.flags.fin && reply.segment.flags.ack);
        assert!(
            net.b.poll_transmit(net.now).is_none(),
            "ACK piggybacked on FIN"
        );
        net.a
            .on_segment(reply.src, reply.dst, &reply.segment, net.now);
        assert_eq!(net.a.state(c), State::TimeWait);
        net.pump();
        assert_eq!(net.b.state(s), State::Closed);
    }

    #[test]
    fn rst_for_closed_port() {
        let mut tcp = Tcp::new(Config::default(), 3);
        let syn = Segment {
            src_port: 40000,
            dst_port: 81,
            seq: SeqNum(1000),
            flags: Flags::SYN,
            window: 1000,
            ..Segment::default()
        };
        tcp.on_segment(A, B, &syn, Instant::ZERO);
        let t = tcp.poll_transmit(Instant::ZERO).unwrap();
        assert_eq!(t.dst, A);
        assert_eq!(t.segment.flags, Flags::RST_ACK);
        assert_eq!(t.segment.seq, SeqNum(0));
        assert_eq!(t.segment.ack, SeqNum(1001));
        let ack = Segment {
            flags: Flags::ACK,
            ack: SeqNum(555),
            ..syn.clone()
        };
        tcp.on_segment(A, B, &ack, Instant::ZERO);
        let t = tcp.poll_transmit(Instant::ZERO).unwrap();
        assert_eq!(t.segment.flags, Flags::RST);
        assert_eq!(t.segment.seq, SeqNum(555));
        let rst = Segment {
            flags: Flags::RST,
            ..syn
        };
        tcp.on_segment(A, B, &rst, Instant::ZERO);
        assert!(tcp.poll_transmit(Instant::ZERO).is_none());
        assert_eq!(tcp.stats().resets_sent, 2);
    }

    #[test]
    fn connect_to_closed_port_is_refused() {
        let mut net = Net::new(Config::default());
        let c = net
            .a
            .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 9), net.now)
            .unwrap();
        net.pump();
        assert_eq!(net.a.state(c), State::Closed);
        assert_eq!(net.a.error(c), Some(TcpError::ConnectionRefused));
        assert!(net.a.recv_ready(c));
        assert_eq!(
            net.a.recv(c, &mut [0; 8], net.now),
            Err(TcpError::ConnectionRefused)
        );
    }

    #[test]
    fn syn_retransmits_with_backoff_then_times_out() {
        let config = Config {
            syn_retries: 3,
            ..Config::default()
        };
        let mut tcp = Tcp::new(config, 4);
        let mut now = Instant::ZERO;
        let c = tcp
            .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), now)
            .unwrap();
        let first = tcp.poll_transmit(now).unwrap();
        assert!(first.segment.flags.syn);
        assert_eq!(first.segment.options.mss, Some(1460));
        let mut gaps = Vec::new();
        for _ in 0..3 {
            let at = tcp.poll_at().unwrap();
            gaps.push(at - now);
            now = at;
            tcp.handle_timeout(now);
            let again = tcp.poll_transmit(now).unwrap();
            assert_eq!(again.segment.seq, first.segment.seq);
            assert!(tcp.poll_transmit(now).is_none());
        }
        assert_eq!(
            gaps,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        now = tcp.poll_at().unwrap();
        tcp.handle_timeout(now);
        assert_eq!(tcp.state(c), State::Closed);
        assert_eq!(tcp.error(c), Some(TcpError::TimedOut));
        assert_eq!(tcp.stats().retransmits, 3);
    }

    #[test]
    fn peer_reset_is_reported() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.b.abort(s, net.now);
        net.pump();
        assert_eq!(net.a.state(c), State::Closed);
        assert_eq!(net.a.error(c), Some(TcpError::ConnectionReset));
        assert_eq!(net.a.send(c, b"x", net.now), Err(TcpError::ConnectionReset));
    }

    #[test]
    fn release_with_unread_data_resets() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.a.send(c, b"unread", net.now).unwrap();
        net.pump();
        net.b.release(s, net.now);
        net.pump();
        assert_eq!(net.a.error(c), Some(TcpError::ConnectionReset));
        assert_eq!(net.b.connection_count(), 0);
    }

    #[test]
    fn simultaneous_open() {
        let mut net = Net::new(Config::default());
        let a_addr = SocketAddrV4::new(A, 5000);
        let b_addr = SocketAddrV4::new(B, 6000);
        let c = net.a.connect(a_addr, b_addr, net.now).unwrap();
        let s = net.b.connect(b_addr, a_addr, net.now).unwrap();
        net.pump();
        assert_eq!(net.a.state(c), State::Established);
        assert_eq!(net.b.state(s), State::Established);
        net.a.send(c, b"ping", net.now).unwrap();
        net.pump();
        assert_eq!(read_all(&mut net.b, s, net.now).0, b"ping".to_vec());
    }

    #[test]
    fn backlog_drops_excess_syns() {
        let mut net = Net::new(Config::default());
        let l = net.b.listen(SocketAddrV4::new(B, 80), 1).unwrap();
        let c1 = net
            .a
            .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), net.now)
            .unwrap();
        net.pump();
        let c2 = net
            .a
            .connect(SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), net.now)
            .unwrap();
        net.pump();
        assert_eq!(net.a.state(c1), State::Established);
        assert_eq!(net.a.state(c2), State::SynSent);
        assert_eq!(net.b.stats().listen_overflows, 1);
        assert!(net.b.listener_ready(l));
        let s1 = net.b.accept(l).unwrap();
        assert!(net.b.accept(l).is_none());
        // Once the queue has room, the retransmitted SYN gets through.
        assert!(net.advance(Duration::from_secs(2)));
        assert_eq!(net.a.state(c2), State::Established);
        assert!(net.b.accept(l).is_some());
        assert_eq!(
            net.b.listen(SocketAddrV4::new(B, 80), 1),
            Err(TcpError::AddrInUse)
        );
        net.b.close_listener(l, net.now);
        assert!(net.b.listen(SocketAddrV4::new(B, 80), 1).is_ok());
        assert_eq!(net.b.state(s1), State::Established);
    }

    fn bulk(loss: f64, size: usize, seed: u64) -> TcpStats {
        bulk_with(Config::default(), loss, size, seed)
    }

    fn bulk_with(config: Config, loss: f64, size: usize, seed: u64) -> TcpStats {
        let mut net = Net::new(config);
        net.rng = StdRng::seed_from_u64(seed);
        let (c, s, _) = net.connect();
        net.loss = loss;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut closed = false;
        for _ in 0..200_000 {
            if sent < data.len() {
                sent += net.a.send(c, &data[sent..], net.now).unwrap();
            } else if !closed {
                net.a.shutdown(c, net.now);
                closed = true;
            }
            net.pump();
            let (chunk, eof) = read_all(&mut net.b, s, net.now);
            got.extend_from_slice(&chunk);
            // The window update goes out before time moves on.
            net.pump();
            if eof {
                break;
            }
            if chunk.is_empty() && !net.advance(Duration::from_secs(120)) {
                break;
            }
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "byte-exact delivery");
        assert_eq!(net.a.error(c), None);
        net.a.stats().clone()
    }

    /// TSO for IPv6 peers is switched on separately (a device may cut TCP/IPv4
    /// super-segments but not TCP/IPv6 ones): with TSO4 alone an IPv6 connection sends
    /// wire-sized segments; with `set_tso6` it sends super-segments of up to 65535 TCP
    /// bytes (the IPv6 payload-length limit), delivered byte-exact.
    #[test]
    fn ipv6_super_segments_only_with_tso6() {
        let data: Vec<u8> = (0..400_000).map(|i| (i * 13 % 251) as u8).collect();
        for tso6 in [false, true] {
            let mut net = Net::new(Config {
                send_buffer: 1 << 20,
                recv_buffer: 1 << 20,
                recv_buffer_max: 0,
                ..Config::default()
            });
            net.a.set_tso(Some(MAX_SUPER_SEGMENT));
            if tso6 {
                net.a.set_tso6(Some(usize::MAX));
            }
            let (c, s) = connect6(&mut net, v6(B6, 80));
            let got = transfer(&mut net, c, s, &data);
            assert!(got == data, "tso6 {tso6}: byte-exact delivery");
            let mss = usize::from(net.a.send_mss(c));
            let sizes: Vec<usize> = net
                .log
                .iter()
                .filter(|(from_a, _)| *from_a)
                .map(|(_, seg)| seg.payload.len())
                .collect();
            let largest = sizes.iter().copied().max().unwrap_or(0);
            if tso6 {
                assert!(net.a.stats().super_segments_out > 0, "super-segments sent");
                assert!(largest > mss, "largest {largest} > mss {mss}");
                // 20 bytes of header and 12 of timestamps within the 65535.
                assert!(largest <= MAX_SUPER_SEGMENT6 - 32, "largest {largest}");
            } else {
                assert_eq!(net.a.stats().super_segments_out, 0);
                assert!(largest <= mss, "largest {largest} <= mss {mss}");
            }
        }
    }

    /// TSO at the TCP level: A's bulk send leaves as super-segments, which B takes whole
    /// (as it would after the device's GRO), with and without loss of whole
    /// super-segments; segments are counted as the wire will carry them.
    #[test]
    fn bulk_transfer_with_tso() {
        for (loss, seed) in [(0.0, 1), (0.02, 2), (0.05, 3)] {
            let mut net = Net::new(Config::default());
            net.rng = StdRng::seed_from_u64(seed);
            net.a.set_tso(Some(MAX_SUPER_SEGMENT));
            let (c, s, _) = net.connect();
            net.loss = loss;
            let data: Vec<u8> = (0..1_000_000).map(|i| (i * 7 % 251) as u8).collect();
            let (mut sent, mut got) = (0, Vec::new());
            for _ in 0..200_000 {
                if sent < data.len() {
                    sent += net.a.send(c, &data[sent..], net.now).unwrap();
                }
                net.pump();
                let (chunk, _) = read_all(&mut net.b, s, net.now);
                got.extend_from_slice(&chunk);
                net.pump();
                if got.len() == data.len() {
                    break;
                }
                if chunk.is_empty() && !net.advance(Duration::from_secs(120)) {
                    break;
                }
            }
            assert!(got == data, "loss {loss}: byte-exact delivery");
            let stats = net.a.stats();
            assert!(
                stats.super_segments_out > 0,
                "loss {loss}: super-segments sent"
            );
            let mss = usize::from(net.a.send_mss(c));
            let wire: u64 = net
                .log
                .iter()
                .filter(|(from_a, _)| *from_a)
                .map(|(_, seg)| seg.payload.len().div_ceil(mss).max(1) as u64)
                .sum();
            // The log holds what crossed (lost ones too); every super-segment is a
            // multiple of the MSS but maybe the last, and at most 64 KiB of IPv4 packet.
            for (_, seg) in net.log.iter().filter(|(from_a, _)| *from_a) {
                assert!(seg.payload.len() + 20 + 32 <= 65535);
            }
            assert_eq!(
                stats.segments_out, wire,
                "loss {loss}: wire segments counted"
            );
        }
    }

    #[test]
    fn bulk_transfer_lossless() {
        let stats = bulk(0.0, 1_000_000, 1);
        assert_eq!(stats.retransmits, 0);
        assert_eq!(stats.rto_expirations, 0);
    }

    #[test]
    fn bulk_transfer_with_loss() {
        let mut fast = 0;
        for seed in 0..5 {
            fast += bulk(0.05, 300_000, seed).fast_retransmits;
        }
        // Most losses are repaired by fast retransmit, not by timeouts.
        assert!(fast >= 10, "fast retransmits: {fast}");
        // And with window scaling (1 MiB buffers).
        let big = Config {
            recv_buffer: 1 << 20,
            // A fixed buffer: the window is what this test is about.
            recv_buffer_max: 0,
            ..Config::default()
        };
        for seed in 0..3 {
            bulk_with(big.clone(), 0.05, 1_000_000, seed);
        }
    }

    #[test]
    fn zero_window_probe_then_resume() {
        let config = Config {
            recv_buffer: 4000,
            // A fixed buffer: the window is what this test is about.
            recv_buffer_max: 0,
            // The first timer must be the persist timer, not a delayed ACK.
            delayed_ack: Duration::ZERO,
            ..Config::default()
        };
        let mut net = Net::new(config);
        let (c, s, _) = net.connect();
        let data = vec![9u8; 20_000];
        let n = net.a.send(c, &data, net.now).unwrap();
        assert_eq!(n, 20_000);
        net.pump();
        // B's buffer is full; A is blocked on a zero window and probes.
        assert!(net.b.recv_ready(s));
        assert!(net.advance(Duration::from_secs(5)));
        assert!(net.a.stats().window_probes >= 1);
        let mut total = 0;
        for _ in 0..100 {
            total += read_all(&mut net.b, s, net.now).0.len();
            net.pump();
            if total == 20_000 {
                break;
            }
        }
        assert_eq!(total, 20_000);
    }

    #[test]
    fn stale_handles_are_invalid() {
        let mut tcp = Tcp::new(Config::default(), 5);
        let c = tcp
            .connect(
                SocketAddrV4::new(A, 0),
                SocketAddrV4::new(B, 80),
                Instant::ZERO,
            )
            .unwrap();
        tcp.release(c, Instant::ZERO);
        assert_eq!(
            tcp.send(c, b"x", Instant::ZERO),
            Err(TcpError::InvalidHandle)
        );
        assert_eq!(tcp.error(c), Some(TcpError::InvalidHandle));
        let c2 = tcp
            .connect(
                SocketAddrV4::new(A, 0),
                SocketAddrV4::new(B, 80),
                Instant::ZERO,
            )
            .unwrap();
        assert_ne!(c, c2);
        assert_eq!(tcp.state(c), State::Closed);
        assert_eq!(tcp.state(c2), State::SynSent);
    }

    #[test]
    fn orphaned_fin_wait2_times_out() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.a.release(c, net.now);
        net.pump();
        assert_eq!(net.a.state(c), State::FinWait2);
        assert_eq!(net.b.state(s), State::CloseWait);
        // B never closes: A's orphan gives up after 60 s, not 2·MSL or never.
        let at = net.a.poll_at().unwrap();
        assert!(at - net.now > Duration::from_secs(59) && at - net.now <= Duration::from_secs(60));
        net.now = at;
        net.fire();
        assert_eq!(net.a.connection_count(), 0);
        assert_eq!(net.a.error(c), Some(TcpError::InvalidHandle));
    }

    #[test]
    fn unanswered_zero_window_probes_time_out() {
        let config = Config {
            recv_buffer: 2000,
            // A fixed buffer: the window is what this test is about.
            recv_buffer_max: 0,
            max_retransmits: 3,
            delayed_ack: Duration::ZERO,
            ..Config::default()
        };
        let mut net = Net::new(config);
        let (c, _s, _) = net.connect();
        net.a.send(c, &[1u8; 5000], net.now).unwrap();
        net.pump();
        // The peer vanishes: every probe is lost.
        net.loss = 1.0;
        for _ in 0..20 {
            if !net.advance(Duration::from_secs(600)) {
                break;
            }
        }
        assert_eq!(net.a.error(c), Some(TcpError::TimedOut));
        assert_eq!(net.a.stats().window_probes, 3);
    }

    /// The TIME-WAIT queue stays bounded even when its oldest entry never leaves
    /// TIME-WAIT (its peer keeps resending the FIN) while the entries behind it do: here
    /// 10,000 entries of connections already gone sit behind a live one.
    #[test]
    fn time_wait_queue_is_bounded_behind_a_long_lived_entry() {
        let mut net = Net::new(Config::default());
        let (c, s, l) = net.connect();
        net.server_closes_first(c, s);
        assert_eq!(net.b.time_wait.len(), 1);
        for i in 0..10_000u32 {
            net.b.time_wait.push_back(ConnId {
                index: 1_000_000 + i,
                generation: 0,
            });
        }
        let (c2, s2) = net.connect_more(l);
        net.server_closes_first(c2, s2);
        assert_eq!(net.b.connection_count(), 2);
        assert!(
            net.b.time_wait.len() <= 2 * net.b.live + 64,
            "{} entries for {} connections",
            net.b.time_wait.len(),
            net.b.live
        );
    }

    #[test]
    fn time_wait_is_reused_by_a_new_syn() {
        let mut net = Net::new(Config::default());
        let l = net.b.listen(SocketAddrV4::new(B, 80), 8).unwrap();
        let a_addr = SocketAddrV4::new(A, 40000);
        let c = net
            .a
            .connect(a_addr, SocketAddrV4::new(B, 80), net.now)
            .unwrap();
        net.pump();
        let s = net.b.accept(l).unwrap();
        net.server_closes_first(c, s);
        assert_eq!(net.a.connection_count(), 0);
        // Same 4-tuple again, seconds later: the ISN clock moved on, so the SYN is "newer".
        net.now += Duration::from_secs(5);
        let c2 = net
            .a
            .connect(a_addr, SocketAddrV4::new(B, 80), net.now)
            .unwrap();
        net.pump();
        assert_eq!(net.a.state(c2), State::Established);
        let s2 = net.b.accept(l).unwrap();
        assert_eq!(net.b.state(s2), State::Established);
        assert_eq!(net.b.connection_count(), 1);
    }

    #[test]
    fn out_of_order_fin_waits_for_the_gap() {
        let mut net = Net::new(Config::default());
        let (c, s, _) = net.connect();
        net.a.send(c, b"abc", net.now).unwrap();
        net.a.shutdown(c, net.now);
        let data = net.a.poll_transmit(net.now).unwrap();
        assert!(data.segment.flags.fin, "FIN piggybacked on the last data");
        // Split: deliver the FIN part first (seq+3), then the data.
        let mut fin_only = data.segment.clone();
        fin_only.seq = data.segment.seq + 3;
        fin_only.payload.clear();
        let mut data_only = data.segment.clone();
        data_only.flags.fin = false;
        net.b.on_segment(A, B, &fin_only, net.now);
        assert_eq!(net.b.state(s), State::Established);
        assert!(!net.b.recv_ready(s));
        net.b.on_segment(A, B, &data_only, net.now);
        assert_eq!(net.b.state(s), State::CloseWait);
        assert_eq!(read_all(&mut net.b, s, net.now), (b"abc".to_vec(), true));
    }

    #[test]
    fn sack_recovers_two_holes_without_a_timeout() {
        // 1460-byte segments and one ACK per batch keep the arithmetic simple.
        let mut net = Net::new(Config {
            timestamps: false,
            delayed_ack: Duration::ZERO,
            ..Config::default()
        });
        let (c, s, _) = net.connect();
        let syn = &net.log[0].1;
        assert!(syn.options.sack_permitted, "SACK offered on the SYN");
        assert!(
            net.log[1].1.options.sack_permitted,
            "and accepted on the SYN-ACK"
        );
        net.a.send(c, &[7u8; 14600], net.now).unwrap();
        let mut segs = Vec::new();
        while let Some(t) = net.a.poll_transmit(net.now) {
            segs.push(t);
        }
        assert_eq!(segs.len(), 10, "initial window of 10 segments");
        // Lose the 3rd and 6th segment.
        for (i, t) in segs.iter().enumerate() {
            if i != 2 && i != 5 {
                net.b.on_segment(t.src, t.dst, &t.segment, net.now);
            }
        }
        let mut acks = Vec::new();
        while let Some(t) = net.b.poll_transmit(net.now) {
            acks.push(t);
        }
        let last = &acks.last().unwrap().segment;
        assert_eq!(last.ack, segs[2].segment.seq);
        assert_eq!(
            last.options.sack_blocks.first().copied(),
            Some((segs[6].segment.seq, segs[9].segment.seq + 1460)),
            "most recent block first"
        );
        assert_eq!(last.options.sack_blocks.len(), 2);
        net.now += Duration::from_millis(1);
        for t in &acks {
            net.a.on_segment(t.src, t.dst, &t.segment, net.now);
        }
        net.pump();
        assert_eq!(read_all(&mut net.b, s, net.now).0.len(), 14600);
        assert_eq!(net.a.stats().rto_expirations, 0);
        assert_eq!(net.a.stats().retransmits, 2, "exactly the two holes");
    }

    #[test]
    fn tail_loss_probe_repairs_a_lost_tail_before_the_rto() {
        let mut net = Net::new(Config {
            timestamps: false,
            delayed_ack: Duration::ZERO,
            ..Config::default()
        });
        let (c, s, _) = net.connect();
        net.a.send(c, &[5u8; 5 * 1460], net.now).unwrap();
        let mut segs = Vec::new();
        while let Some(t) = net.a.poll_transmit(net.now) {
            segs.push(t);
        }
        assert_eq!(segs.len(), 5);
        // The last two segments are lost.
        for t in &segs[..3] {
            net.b.on_segment(t.src, t.dst, &t.segment, net.now);
        }
        let start = net.now;
        net.pump();
        let mut total = read_all(&mut net.b, s, net.now).0.len();
        while total < 5 * 1460 {
            assert!(net.advance(Duration::from_secs(5)));
            total += read_all(&mut net.b, s, net.now).0.len();
        }
        assert!(
            net.now - start < Duration::from_millis(50),
            "{:?}",
            net.now - start
        );
        assert_eq!(net.a.stats().tail_loss_probes, 1);
        assert_eq!(net.a.stats().rto_expirations, 0);
    }

    /// Random segments (any flags, sequence numbers near and far, options, payloads)
    /// thrown at listeners and live connections in every state must never panic, and the
    /// endpoint must stay usable.
    #[test]
    fn random_segments_never_panic() {
        let mut rng = StdRng::seed_from_u64(99);
        for round in 0..40 {
            let mut net = Net::new(Config {
                recv_buffer: 1 + (round * 997) % 65535,
                ..Config::default()
            });
            let (c, s, _) = net.connect();
            net.a.send(c, &[1u8; 3000], net.now).unwrap();
            if round % 3 == 0 {
                net.a.shutdown(c, net.now);
            }
            if round % 5 == 0 {
                net.b.shutdown(s, net.now);
            }
            net.pump_once();
            let rcv = net.b.conn(s).map_or(SeqNum(0), |c| c.rcv_nxt());
            for _ in 0..500 {
                let flags = Flags::from_byte(rng.random::<u8>());
                let near = |rng: &mut StdRng, base: SeqNum| {
                    if rng.random_bool(0.7) {
                        base + rng.random_range(0..70_000u32) - 35_000
                    } else {
                        SeqNum(rng.random::<u32>())
                    }
                };
                let seq = near(&mut rng, rcv);
                let ack = SeqNum(rng.random::<u32>());
                let len = if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random_range(0..3000)
                };
                let mut options = TcpOptions::default();
                if rng.random_bool(0.2) {
                    options.mss = Some(rng.random::<u16>());
                    options.sack_permitted = true;
                }
                if rng.random_bool(0.2) {
                    options.sack_blocks = vec![(near(&mut rng, ack), near(&mut rng, ack))];
                }
                let seg = Segment {
                    src_port: if rng.random_bool(0.8) {
                        net.a.local_addr(c).port()
                    } else {
                        rng.random()
                    },
                    dst_port: if rng.random_bool(0.8) {
                        80
                    } else {
                        rng.random()
                    },
                    seq,
                    ack,
                    flags,
                    window: rng.random(),
                    urgent: rng.random(),
                    options,
                    payload: vec![0xab; len],
                };
                net.b.on_segment(A, B, &seg, net.now);
                while net.b.poll_transmit(net.now).is_some() {}
                net.now += Duration::from_millis(rng.random_range(0..50));
                net.b.handle_timeout(net.now);
                let _ = net.b.recv(s, &mut [0u8; 512], net.now);
            }
        }
    }

    #[test]
    fn full_syn_queue_evicts_the_oldest_half_open() {
        let config = Config {
            syn_cookies: false,
            ..Config::default()
        };
        let mut tcp = Tcp::new(config, 8);
        let _l = tcp.listen(SocketAddrV4::new(B, 80), 2).unwrap();
        let syn = |port: u16| Segment {
            src_port: port,
            dst_port: 80,
            seq: SeqNum(1000),
            flags: Flags::SYN,
            window: 65535,
            ..Segment::default()
        };
        for port in [1001, 1002, 1003] {
            tcp.on_segment(A, B, &syn(port), Instant::ZERO);
            let synack = tcp.poll_transmit(Instant::ZERO).unwrap();
            assert_eq!(synack.segment.dst_port, port);
            assert_eq!(synack.segment.flags, Flags::SYN_ACK);
        }
        let remotes: Vec<u16> = tcp
            .connection_states()
            .iter()
            .map(|(_, _, r, _)| r.port())
            .collect();
        assert_eq!(remotes.len(), 2);
        assert!(
            !remotes.contains(&1001),
            "the oldest was evicted: {remotes:?}"
        );
        assert_eq!(tcp.stats().listen_overflows, 1);
    }

    #[test]
    fn full_table_reclaims_time_wait() {
        let mut net = Net::new(Config {
            max_connections: 1,
            ..Config::default()
        });
        let (c, s, l) = net.connect();
        net.server_closes_first(c, s);
        // A new client (another port) still gets in: the TIME-WAIT makes room.
        let (c2, _) = net.connect_more(l);
        assert_eq!(net.a.state(c2), State::Established);
        assert_eq!(net.b.stats().time_wait_reclaimed, 1);
    }

    #[test]
    fn full_table_reclaims_the_oldest_time_wait() {
        let mut net = Net::new(Config {
            max_connections: 2,
            ..Config::default()
        });
        let (c1, s1, l) = net.connect();
        let (c2, s2) = net.connect_more(l);
        let mut server_ends = Vec::new();
        for (c, s) in [(c1, s1), (c2, s2)] {
            net.server_closes_first(c, s);
            server_ends.push(s);
            net.now += Duration::from_secs(1);
        }
        // A third client: the table is full of TIME-WAITs and the older one makes room.
        let (c3, _) = net.connect_more(l);
        assert_eq!(net.a.state(c3), State::Established);
        assert_eq!(net.b.stats().time_wait_reclaimed, 1);
        assert_eq!(
            net.b.state(server_ends[0]),
            State::Closed,
            "the older one went"
        );
        assert_eq!(
            net.b.state(server_ends[1]),
            State::TimeWait,
            "the younger stays"
        );
    }

    #[test]
    fn window_scaling_with_large_buffers() {
        let config = Config {
            recv_buffer: 1 << 20,
            // A fixed buffer: the window is what this test is about.
            recv_buffer_max: 0,
            ..Config::default()
        };
        let mut net = Net::new(config);
        let (c, s, _) = net.connect();
        let syn = &net.log[0].1;
        assert_eq!(syn.options.window_scale, Some(5), "1 MiB >> 5 fits 16 bits");
        assert_eq!(syn.window, 65535, "a SYN's window is never scaled");
        let synack = &net.log[1].1;
        assert_eq!(synack.options.window_scale, Some(5));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut max_window_field = 0u32;
        while got.len() < data.len() {
            if sent < data.len() {
                sent += net.a.send(c, &data[sent..], net.now).unwrap();
            }
            net.pump();
            for (from_a, seg) in &net.log {
                if !from_a && !seg.flags.syn {
                    max_window_field = max_window_field.max(u32::from(seg.window));
                }
            }
            net.log.clear();
            got.extend(read_all(&mut net.b, s, net.now).0);
            net.pump();
        }
        assert!(got == data);
        // 1 MiB of window is advertised as 32768 << 5.
        assert_eq!(max_window_field, 32768);
        // Without large buffers nothing is offered, even if the peer offers.
        let mut plain = Net::new(Config {
            recv_buffer: 65535,
            recv_buffer_max: 0,
            ..Config::default()
        });
        plain.connect();
        assert_eq!(plain.log[0].1.options.window_scale, None);
        assert_eq!(plain.log[1].1.options.window_scale, None);
    }

    /// 5 % loss each way, 3 MB: SACK recovery, lost-retransmission detection and TLP keep
    /// retransmission timeouts rare (each costs at least 200 ms).
    #[test]
    fn five_percent_loss_rarely_needs_a_timeout() {
        let mut rtos = 0;
        for seed in 0..3 {
            let st = bulk(0.05, 3_000_000, seed);
            rtos += st.rto_expirations;
        }
        assert!(rtos <= 9, "{rtos} RTOs in 3 × 3 MB at 5 % loss");
    }

    #[test]
    #[ignore = "throughput measurement: cargo test --release --lib throughput -- --ignored --nocapture"]
    fn throughput() {
        let t = std::time::Instant::now();
        bulk(0.0, 200_000_000, 1);
        eprintln!("200 MB in {:?} wall time", t.elapsed());
    }
}
