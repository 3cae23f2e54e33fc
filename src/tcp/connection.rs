//! One TCP connection: the transmission control block (TCB) and its state machine
//! (RFC 9293 §3.10), sans-IO.
//!
//! The connection never sends anything by itself. Events (SEGMENT ARRIVES, the user
//! calls, timeouts) update the TCB and set flags ("an ACK is owed", "the SYN must go
//! out again"); `Connection::poll_transmit` then turns the TCB into the next segment to
//! send. That keeps ACKs coalesced (one per batch of input) and piggybacked on data.
//!
//! The send buffer *is* the retransmission queue: it holds every byte from SND.UNA on,
//! so any segment can be rebuilt from it at any time. A segment leaves as an
//! `Outgoing`: header plus a range of the send buffer, copied by the endpoint straight
//! into the packet. With TSO the range of new data may span several MSS-sized pieces (a
//! super-segment the device cuts); nothing else changes, since everything that tracks
//! what was sent (SND.NXT/SND.MAX, the SACK scoreboard, the retransmission log, Karn's
//! RTT sample) works on sequence ranges, not on segments.
//!
//! ```text
//!        SND.UNA            SND.NXT          SND.MAX              end of queued data
//!   ────────┼──────────────────┼────────────────┼──────────────────────┼── (FIN)
//!           │ sent, unacked    │ sent before a  │   not sent yet       │
//!           │ (in flight)      │ timeout, to be │                      │
//!           │                  │ sent again     │                      │
//!           └──────────────── SendBuffer: front = SND.UNA ─────────────┘
//!                     ▲ SACKed ranges (scoreboard) are skipped by hole retransmission
//! ```
//!
//! Loss recovery, from fastest to slowest:
//! - **SACK / NewReno fast recovery** (RFC 2018, RFC 6675 simplified, RFC 5681 §3.2,
//!   RFC 6582): the third duplicate ACK (fewer with RFC 5827 early retransmit) resends
//!   the segment at SND.UNA; further duplicate ACKs let SACK holes be resent; partial
//!   ACKs resend the next hole.
//! - **Tail loss probe** (RFC 8985 §7): when the last segments of a burst are lost no
//!   duplicate ACK comes back; after about two RTTs the last segment is sent again so that
//!   its ACK starts recovery.
//! - **Retransmission timeout** (RFC 6298): "go-back-N" in the BSD style — SND.NXT is
//!   pulled back to SND.UNA (SND.MAX remembers the highest number ever sent), cwnd
//!   collapses to one segment, and the normal send path resends from there as ACKs open
//!   the window again. Pure ACKs always carry SND.MAX so the peer never sees them as old.
//!   F-RTO (RFC 5682) first resends one segment and sends two new ones: if the ACKs then
//!   show the originals arriving, the timeout was spurious and no go-back-N happens.
//!
//! A loss episode whose retransmissions all prove spurious — D-SACKs for each (RFC
//! 3708), an ACK echoing the original's timestamp (RFC 3522), or F-RTO — has its window
//! reduction undone (RFC 4015).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use super::config::{Config, KeepaliveConfig};
use super::congestion::{AckAction, NewReno};
use super::error::TcpError;
use super::events::TcpEventKind;
use super::recv_buf::RecvBuffer;
use super::rto::RttEstimator;
use super::segment::{Flags, Segment, TcpOptions};
use super::send_buf::SendBuffer;
use super::seq::SeqNum;
use super::state::State;
use super::stats::TcpStats;
use crate::ip::icmp::ErrorKind as IcmpErrorKind;
use crate::time::Instant;

/// What [`Tcp::on_icmp_error`](super::Tcp::on_icmp_error) did with an ICMP error message.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum IcmpAction {
    /// The quote is not a TCP segment we could have sent (too short, not TCP).
    Malformed,
    /// No connection matches the quoted addresses and ports.
    NoConnection,
    /// The quoted sequence number is outside SND.UNA..SND.MAX (RFC 5927 §4.1): ignored.
    OutOfWindow,
    /// Valid but nothing to do (source quench, RFC 6633; an MTU that is no news).
    Ignored,
    /// Recorded as the connection's soft error.
    SoftError,
    /// A hard error in SYN-SENT: the connection failed (connection refused).
    Aborted,
    /// Fragmentation needed: the send MSS was lowered to this (RFC 1191).
    MssLowered(u16),
}

impl IcmpAction {
    /// A stable short name, usable as a statistics key.
    pub fn reason(&self) -> &'static str {
        match self {
            IcmpAction::Malformed => "icmp-quote-malformed",
            IcmpAction::NoConnection => "icmp-no-connection",
            IcmpAction::OutOfWindow => "icmp-out-of-window",
            IcmpAction::Ignored => "icmp-ignored",
            IcmpAction::SoftError => "icmp-soft-error",
            IcmpAction::Aborted => "icmp-aborted",
            IcmpAction::MssLowered(_) => "icmp-mss-lowered",
        }
    }
}

/// The smallest path MTU an ICMP "fragmentation needed" may make us assume (Linux
/// `min_pmtu`): RFC 1191 §3 allows 68, but RFC 5927 §7 warns that forged messages could
/// otherwise shrink segments to a crawl.
pub const MIN_PMTU: u16 = 552;

/// The smallest path MTU an ICMPv6 Packet Too Big may make us assume: the IPv6 minimum
/// link MTU (RFC 8200 §5; RFC 8201 §4: "a node MUST NOT reduce its estimate of the Path
/// MTU below the IPv6 minimum link MTU").
pub const MIN_PMTU6: u16 = 1280;

/// The MSS we offer to an IPv6 peer when our IPv4 MSS is `mss`: 20 bytes less (the IPv6
/// header is 40 bytes, IPv4's 20; RFC 8200 §8.3: MTU − 60), and never below what the
/// IPv6 minimum MTU carries, 1220 (RFC 8200 §5: every link carries 1280-byte packets).
pub fn mss_for_ipv6(mss: u16) -> u16 {
    mss.saturating_sub(20).max(MIN_PMTU6 - 60)
}

/// RFC 6298 §5.7: the RTO when data transmission begins after a retransmitted SYN.
pub const SYN_RETRANSMITTED_RTO: Duration = Duration::from_secs(3);

/// The smallest send MSS a peer's MSS option may impose (Linux `tcp_min_snd_mss`).
pub const MIN_SND_MSS: u16 = 48;

/// RFC 9293 §3.7.1: the MSS to assume when the peer sends no MSS option.
pub const DEFAULT_PEER_MSS: u16 = 536;

/// How long an orphaned connection (released by the application) may stay in
/// FIN-WAIT-2 waiting for the peer's FIN (Linux `tcp_fin_timeout`).
pub const FIN_WAIT2_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest value of the 16-bit window field.
const MAX_WINDOW: usize = 65535;

/// The largest window scale shift (RFC 7323 §2.3).
const MAX_WSCALE: u8 = 14;
/// The first receive-autotuning measurement must see the application consume more than
/// this many segments in a round trip before the buffer grows (Linux: TCP_INIT_CWND).
const INITIAL_RCVQ_SEGMENTS: usize = 10;
/// Receive autotuning sizes the window for this many segments beyond twice what the
/// application consumed in a round trip (Linux's `16 * advmss` in `tcp_rcv_space_adjust`).
const RCVQ_EXTRA_SEGMENTS: usize = 16;

/// Minimum spacing of ACKs sent in answer to unacceptable segments that carry no data
/// (pure ACKs, RSTs, SYNs): RFC 5961 §7 rate-limits challenge ACKs, and Linux
/// (`tcp_invalid_ratelimit`) uses 500 ms so that two confused peers cannot ACK each
/// other forever.
pub const OUT_OF_WINDOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// Most SACK blocks put in one ACK (4 fit in 40 option bytes without timestamps).
const MAX_SACK_BLOCKS: usize = 4;

/// Most SACKed ranges remembered by the sender (the scoreboard, RFC 6675 §3).
const MAX_SCOREBOARD: usize = 32;
/// Retransmissions remembered during one recovery (for `pipe` and "lost again").
const MAX_RXT_LOG: usize = 256;

/// Shortest tail loss probe timeout (RFC 8985 §7.2 uses 2·SRTT; Linux floors it at 10 ms).
const TLP_MIN: Duration = Duration::from_millis(10);

/// At most this many immediate (duplicate) ACKs are owed at once.
const MAX_ACKS_OWED: u32 = 8;

/// Bytes of the timestamps option as sent on every segment (NOP, NOP, kind, length,
/// TSval, TSecr): the send MSS shrinks by this much when timestamps are on (RFC 7323
/// §3.2, RFC 6691).
pub const TS_OPTION_LEN: u16 = 12;

/// RFC 7323 §5.5: a TS.Recent older than 24 days is invalid (the peer's timestamp
/// clock may have wrapped its sign bit meanwhile at 1 ms per tick).
pub const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// What a step of SEGMENT ARRIVES (RFC 9293 §3.10.7.4) returns: [`GO_ON`] to the next
/// step, or [`DONE`] when the segment has been dropped or answered, or has done all it
/// can; `?` ends the processing at the first step that is done.
type Step = ControlFlow<()>;
/// The next step of SEGMENT ARRIVES processes the segment.
const GO_ON: Step = ControlFlow::Continue(());
/// Processing of the segment ends here.
const DONE: Step = ControlFlow::Break(());

/// An arriving segment as the steps of §3.10.7.4 pass it on: the sequence number, SYN,
/// FIN and text that remain once the first step has trimmed it to the receive window.
struct Arriving<'a> {
    seq: SeqNum,
    syn: bool,
    fin: bool,
    data: &'a [u8],
}

/// A loss episode whose congestion response may still prove unnecessary (Linux's
/// `undo_marker`, `undo_retrans` and `retrans_stamp`): RFC 3708 declares it spurious
/// when D-SACKs report every retransmission of it as a duplicate, RFC 3522 when the
/// first ACK after its retransmission echoes a timestamp older than that retransmission.
#[derive(Clone, Debug)]
struct UndoEpisode {
    /// SND.UNA when the episode began.
    marker: SeqNum,
    /// The ranges it retransmitted (to tell a D-SACK of a retransmission from one of a
    /// segment the network duplicated).
    rxt: Vec<(SeqNum, SeqNum)>,
    /// Retransmitted segments no D-SACK has reported yet.
    undo_retrans: u32,
    /// More retransmissions than `rxt` holds: D-SACKs cannot account for them all.
    overflow: bool,
    /// RFC 3522: the TSval and range of the first retransmission, until the first ACK
    /// that advances SND.UNA decides. Dropped when another range is retransmitted: then
    /// an old echo would no longer say that *every* retransmission was unnecessary.
    eifel: Option<(u32, SeqNum, SeqNum)>,
    /// The Eifel test has been made (or can no longer be).
    eifel_done: bool,
    /// Once recovery is over, SND.MAX then: the D-SACKs for the last retransmissions
    /// come after the ACK that ends recovery, so the episode stays open until an ACK
    /// passes this.
    closes_at: Option<SeqNum>,
}

/// F-RTO after a retransmission timeout (RFC 5682 §3.2), with RecoveryPoint: SND.MAX
/// when the timer fired.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Frto {
    /// Step 2: waiting for the ACK of the retransmission.
    Retransmission(SeqNum),
    /// Step 3: up to two new segments went out; the next ACK tells.
    NewData(SeqNum),
}

/// The timers of a connection, each one slot of its [`TimerTable`]. The order is the
/// order in which [`Connection::on_timeout`] handles those that are due together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// TIME-WAIT's 2·MSL (RFC 9293 §3.10.7.4) or the orphaned FIN-WAIT-2 limit.
    Close,
    /// The delayed ACK (RFC 1122 §4.2.3.2).
    DelayedAck,
    /// Keep-alive (RFC 1122 §4.2.3.6): the idle period, then the probe interval.
    Keepalive,
    /// The tail loss probe (RFC 8985 §7): fires well before the RTO so that losing the
    /// last segments of a burst costs a couple of RTTs, not 200 ms or more.
    LossProbe,
    /// The retransmission timeout (RFC 6298).
    Retransmit,
    /// The oldest retransmission logged in SACK recovery is overdue (about two RTTs
    /// without an ACK or SACK for it): it is presumed lost again even if nothing sent
    /// later has arrived to prove it (RACK's reordering timer, RFC 8985 §6.2, in small).
    RetransmitOverdue,
    /// The persist timer (RFC 9293 §3.8.6.1): probe a zero window.
    Persist,
    /// RACK's reordering timer outside recovery (RFC 8985 §6.2 step 5): SND.UNA was
    /// sent before data that has been SACKed, but less than the reordering window
    /// before; if it has not arrived when the window has passed, it is lost.
    Reorder,
}

impl Timer {
    const COUNT: usize = 8;
    /// Every timer, in the order `on_timeout` handles them.
    const ALL: [Timer; Timer::COUNT] = [
        Timer::Close,
        Timer::DelayedAck,
        Timer::Keepalive,
        Timer::LossProbe,
        Timer::Retransmit,
        Timer::RetransmitOverdue,
        Timer::Persist,
        Timer::Reorder,
    ];

    /// Whether the timer keeps running in TIME-WAIT: the 2·MSL timer itself, and a
    /// delayed ACK still owed; nothing is sent or probed any more.
    fn runs_in_time_wait(self) -> bool {
        matches!(self, Timer::Close | Timer::DelayedAck)
    }
}

/// When each [`Timer`] fires, if it is armed.
#[derive(Debug, Default)]
struct TimerTable([Option<Instant>; Timer::COUNT]);

impl Frto {
    fn recovery_point(self) -> SeqNum {
        match self {
            Frto::Retransmission(rp) | Frto::NewData(rp) => rp,
        }
    }
}

/// The D-SACK block of an ACK, if its first SACK block is one (RFC 2883 §4, RFC 3708
/// §2): below the cumulative ACK, or inside the second block.
fn received_dsack(seg: &Segment) -> Option<(SeqNum, SeqNum)> {
    let blocks = &seg.options.sack_blocks;
    let &(l, r) = blocks.first()?;
    if !l.lt(r) {
        return None;
    }
    if r.le(seg.ack) {
        return Some((l, r));
    }
    let &(l2, r2) = blocks.get(1)?;
    (l.ge(l2) && r.le(r2)).then_some((l, r))
}

impl TimerTable {
    fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    /// Arm the timer at `at`, or stop it for `None`.
    fn put(&mut self, timer: Timer, at: Option<Instant>) {
        self.0[timer as usize] = at;
    }

    fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    fn stop_all(&mut self) {
        self.0 = [None; Timer::COUNT];
    }

    /// Stop every timer for which `keep` is false.
    fn retain(&mut self, keep: impl Fn(Timer) -> bool) {
        for timer in Timer::ALL {
            if !keep(timer) {
                self.stop(timer);
            }
        }
    }

    /// The timer is armed and due at `now`.
    fn expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed timer. Called after every change to the connection, so an
    /// unrolled fold over the slots: an iterator over the array of options did not
    /// compile to a few compare-and-moves.
    fn next(&self) -> Option<Instant> {
        let [a, b, c, d, e, f, g, h] = self.0;
        let mut next = earlier(a, b);
        next = earlier(next, c);
        next = earlier(next, d);
        next = earlier(next, e);
        next = earlier(next, f);
        next = earlier(next, g);
        earlier(next, h)
    }
}

/// The earlier of two optional instants (`None` is never).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The timestamp clock of a connection: our millisecond clock plus an offset that is a
/// keyed hash of the 4-tuple (RFC 7323 §5.4 / §7.1, Linux's `tsoffset`): TSvals of
/// different connections are not comparable, so they do not reveal the host's uptime,
/// while successive incarnations of one 4-tuple see one monotonic clock, which is what
/// lets a SYN reopen a TIME-WAIT connection by its timestamp (RFC 6191).
pub fn ts_clock(now: Instant, offset: u32) -> u32 {
    (now.total_millis() as u32).wrapping_add(offset)
}

/// The window field of a SYN-ACK (never scaled, RFC 7323 §2.2).
pub(crate) fn ack_window_offer(config: &Config) -> u16 {
    config.recv_buffer.clamp(1, MAX_WINDOW) as u16
}

/// The window scale shift we offer (RFC 7323 §2.2): only when the receive buffer can be
/// larger than 65535 bytes; the smallest shift that lets the window cover the largest
/// size autotuning may give it (7 for Linux's 6 MiB, as Linux offers).
pub(crate) fn wscale_offer(config: &Config) -> Option<u8> {
    let most = config.recv_buffer.max(config.recv_buffer_max);
    (most > MAX_WINDOW).then(|| {
        let mut shift = 0u8;
        while shift < MAX_WSCALE && (most >> shift) > MAX_WINDOW {
            shift += 1;
        }
        shift
    })
}

/// A segment a connection wants sent: its header and options, and which bytes of the
/// send buffer are its payload. The payload is not copied here: the endpoint copies it
/// straight from the send buffer into the packet being built
/// ([`Connection::write_payload`]), so sending allocates nothing per segment.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Header and options; `payload` is empty.
    pub segment: Segment,
    /// Where the payload starts, in bytes past the first byte of the send buffer.
    pub data_offset: usize,
    /// Payload bytes.
    pub data_len: usize,
    /// Non-zero for a super-segment (TSO): the payload bytes of each wire segment the
    /// device cuts it into, every piece repeating the header and options; the last piece
    /// may be shorter.
    pub gso_size: u16,
}

impl Outgoing {
    /// A segment without data (SYN, ACK, probe).
    fn control(segment: Segment) -> Outgoing {
        Outgoing {
            segment,
            data_offset: 0,
            data_len: 0,
            gso_size: 0,
        }
    }

    /// SEG.LEN (RFC 9293 §3.4): data bytes, plus one each for SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        let data = u32::try_from(self.data_len).unwrap_or(u32::MAX);
        data.saturating_add(u32::from(self.segment.flags.syn))
            .saturating_add(u32::from(self.segment.flags.fin))
    }

    /// How many segments the wire will carry: ceil(data / gso_size) for a super-segment,
    /// else one.
    pub fn wire_segments(&self) -> u64 {
        if self.gso_size == 0 {
            return 1;
        }
        self.data_len.div_ceil(usize::from(self.gso_size)).max(1) as u64
    }
}

/// Who holds a connection, which decides when its TCB may be freed.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    /// Created by a listener and not accepted yet (index of the listener slot, generation).
    Listener(u32, u32),
    /// The application holds a [`super::ConnId`].
    App,
    /// The application released it; freed as soon as it is CLOSED.
    Released,
}

/// The send sequence space (RFC 9293 §3.3.1, Figure 3):
///
/// ```text
///              1         2          3          4
///         ----------|----------|----------|----------
///                SND.UNA    SND.NXT    SND.UNA
///                                     +SND.WND
///
///   1 - old sequence numbers that have been acknowledged
///   2 - sequence numbers of unacknowledged data
///   3 - sequence numbers allowed for new data transmission
///   4 - future sequence numbers that are not yet allowed
/// ```
///
/// `max` (SND.MAX, BSD's name) is the highest sequence number ever sent: after a
/// retransmission timeout `nxt` goes back to `una` while `max` stays, so an ACK up to
/// `max` is still acceptable.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendSequenceSpace {
    /// SND.UNA: oldest unacknowledged sequence number.
    pub una: SeqNum,
    /// SND.NXT: next sequence number to send.
    pub nxt: SeqNum,
    /// SND.MAX: one past the highest sequence number sent so far.
    pub max: SeqNum,
    /// SND.WND: the peer's advertised window.
    pub wnd: u32,
    /// SND.WL1: segment sequence number used for the last window update.
    pub wl1: SeqNum,
    /// SND.WL2: segment acknowledgment number used for the last window update.
    pub wl2: SeqNum,
    /// ISS: our initial send sequence number.
    pub iss: SeqNum,
    /// The largest window the peer ever offered (sender SWS avoidance, §3.8.6.2.1).
    pub max_wnd: u32,
}

/// The receive sequence space (RFC 9293 §3.3.1, Figure 4):
///
/// ```text
///                  1          2          3
///              ----------|----------|----------
///                     RCV.NXT    RCV.NXT
///                               +RCV.WND
///
///   1 - old sequence numbers that have been acknowledged
///   2 - sequence numbers allowed for new reception
///   3 - future sequence numbers that are not yet allowed
/// ```
///
/// `adv` is the right edge we last advertised (RCV.NXT + RCV.WND at that time); it never
/// moves left (§3.8.6.2.2: the window must not shrink).
#[derive(Clone, Debug, Default)]
pub(crate) struct RecvSequenceSpace {
    /// RCV.NXT: next sequence number expected.
    pub nxt: SeqNum,
    /// Right edge of the window last advertised.
    pub adv: SeqNum,
    /// IRS: the peer's initial sequence number.
    pub irs: SeqNum,
}

/// The transmission control block of one connection.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// The RFC 9293 state.
    pub state: State,
    /// Who holds the connection (decides when the TCB is freed).
    pub owner: Owner,
    /// Queued in the endpoint's "may have something to send" list.
    pub in_dirty: bool,
    /// Something the application can observe changed.
    pub changed: bool,
    /// Why the connection died, reported to the application.
    pub error: Option<TcpError>,
    /// A RST to send (taken by the endpoint).
    pub pending_rst: Option<Segment>,
    /// Created by a passive open (a listener).
    pub passive: bool,
    /// The last soft ICMP error about this connection (RFC 1122 §4.2.3.9: reported to the
    /// application, not fatal).
    pub soft_error: Option<IcmpErrorKind>,

    snd: SendSequenceSpace,
    rcv: RecvSequenceSpace,
    /// Our MSS (sent in our SYN) and the effective send MSS (min with the peer's).
    local_mss: u16,
    send_mss: u16,
    send_buf: SendBuffer,
    recv_buf: RecvBuffer,
    /// Our SYN has been acknowledged.
    syn_acked: bool,
    /// The application closed the sending side: a FIN follows the queued data.
    fin_queued: bool,
    /// Our FIN has been acknowledged.
    fin_acked: bool,
    /// Sequence number of the peer's FIN once seen (it may arrive before a gap is filled).
    peer_fin: Option<SeqNum>,
    /// The peer's FIN has been received in order (RCV.NXT moved past it).
    fin_received: bool,

    /// A (delayable) ACK is owed: sent with the next segment or alone at the end of the
    /// batch.
    ack_needed: bool,
    /// Immediate ACKs owed (duplicate ACKs for out-of-order data must each go out,
    /// RFC 5681 §4.2, so the sender can count them).
    acks_owed: u32,
    /// Fast retransmit / NewReno partial ACK: resend the segment at SND.UNA.
    retransmit_una: bool,
    /// Send a zero-window probe.
    probe_needed: bool,

    /// Both sides sent SACK-permitted (RFC 2018 §2).
    sack_ok: bool,
    /// The window scale shift we offer on our SYN (RFC 7323 §2.2); only when the receive
    /// buffer is larger than 65535 bytes.
    wscale_offer: Option<u8>,
    /// Window scaling is in effect (both SYNs carried the option).
    wscale_ok: bool,
    /// Shift applied to the windows we send (Rcv.Wind.Shift) and to those we receive
    /// (Snd.Wind.Shift); both 0 unless `wscale_ok`.
    rcv_wscale: u8,
    snd_wscale: u8,
    /// Receive-buffer autotuning (Linux's dynamic right-sizing, `tcp_rcv_space_adjust`):
    /// the most the buffer may grow to (no growth when not above its size).
    rcv_auto_max: usize,
    /// Bytes the application consumed in the last measured round trip (at first the
    /// initial window), and where (RCV.NXT minus the unread bytes) and when the current
    /// measurement started.
    rcvq_space: usize,
    rcvq_start: Option<(SeqNum, Instant)>,
    /// The receiver's own RTT estimate, from the timestamps echoed on arriving data (RFC
    /// 7323 §4: TSecr is the TSval of our ACK the data answers; Linux's `rcv_rtt_est`),
    /// and the last TSecr that gave a sample (one sample per echoed value).
    rcv_rtt: Option<Duration>,
    rcv_rtt_ecr: u32,
    /// Send-buffer autotuning: the most the send buffer may grow to (0 when off, e.g.
    /// once the application set its size); and where (SND.UNA) and when the current
    /// delivery-rate measurement started (the smallest RTT is RACK's `min_rtt`).
    snd_auto_max: usize,
    snd_rate_start: Option<(SeqNum, Instant)>,
    /// The most recently received out-of-order range, reported first (RFC 2018 §4).
    last_ooo: Option<(SeqNum, SeqNum)>,
    /// A duplicate segment's range below RCV.NXT, reported once as the first SACK block
    /// of the next ACK (RFC 2883 §4: D-SACK), so the sender can tell a spurious
    /// retransmission.
    dsack: Option<(SeqNum, SeqNum)>,
    /// Sender scoreboard: ranges above SND.UNA the peer reported as received, sorted and
    /// disjoint (RFC 6675 §3).
    sacked: Vec<(SeqNum, SeqNum)>,
    /// RFC 6675 HighRxt: the highest sequence number retransmitted in this recovery.
    high_rxt: SeqNum,
    /// After a retransmission timeout with SACK: SND.MAX when it fired. Everything below
    /// it that the scoreboard does not show SACKed is lost (as Linux's `tcp_enter_loss`),
    /// resent hole by hole as cwnd allows, never the SACKed data; until SND.UNA passes it.
    rto_lost_end: Option<SeqNum>,
    /// Retransmissions sent during recovery: (start, end, SND.MAX when sent). A SACK for
    /// data above that SND.MAX means something sent *after* the retransmission arrived
    /// while it did not: it was lost again (the idea of RACK, RFC 8985 §6, per segment).
    rxt_log: Vec<(SeqNum, SeqNum, SeqNum, Instant)>,
    /// Retransmissions found lost again, resent first.
    lost_again: VecDeque<(SeqNum, SeqNum)>,
    /// When each run of new data left: (its end, the time), in sequence order — RACK's
    /// transmission times (RFC 8985 §6.1) of data sent once; pruned as it is
    /// acknowledged.
    xmit_log: VecDeque<(SeqNum, Instant)>,
    /// RFC 8985 §6.2: RACK.min_RTT (the smallest RTT sample of the connection).
    min_rtt: Option<Duration>,
    /// RACK.reordering_seen: data sent once was delivered after data sent later.
    reordering_seen: bool,
    /// RFC 8985 §6.2 step 4: RACK.reo_wnd_mult, RACK.dsack_round and
    /// RACK.reo_wnd_persist (the reordering window grows with D-SACKs, one step per
    /// round, and shrinks back after 16 recoveries without one).
    reo_wnd_mult: u32,
    reo_dsack_round: Option<SeqNum>,
    reo_wnd_persist: u32,
    /// SND.UNA when the reordering timer was armed for it.
    reorder_una: SeqNum,
    /// RFC 7661 pipeACK, measured as the most data in flight: in the previous round trip
    /// and in this one, which ends when SND.UNA passes `cwv_round_end`.
    cwv_flight: (u32, u32),
    cwv_round_end: SeqNum,
    /// The loss episode whose window reduction may still be undone.
    undo: Option<UndoEpisode>,
    /// F-RTO in progress after a retransmission timeout.
    frto: Option<Frto>,
    /// New segments F-RTO step 2 (b) lets out beyond cwnd.
    frto_sends: u32,

    rtt: RttEstimator,
    /// The one segment being timed: (sequence number that acknowledges it, send time).
    rtt_sample: Option<(SeqNum, Instant)>,
    /// The TSval of our last retransmission and SND.MAX then: until an ACK covers that,
    /// an echo older than the retransmission gives no RTT sample (RFC 7323 App. G), and
    /// RACK's transmission times do not cover everything outstanding.
    rxt_ts: Option<(u32, SeqNum)>,
    cc: NewReno,

    /// How many times in a row the retransmission timer (RFC 6298) fired.
    retries: u32,
    /// A probe is to be sent now.
    tlp_pending: bool,
    /// A probe was already sent since the last new ACK (one per episode).
    tlp_sent: bool,
    /// The first sequence number of the last probe, until an ACK covers it: a SACK above
    /// it shows the probe delivered while SND.UNA, sent at least a PTO earlier, is not —
    /// lost by RACK's rule (RFC 8985 §6.2, §7.4).
    tlp_probe: Option<SeqNum>,
    /// The persist timer's backoff exponent (RFC 9293 §3.8.6.1).
    persist_backoff: u32,
    /// Zero-window probes sent without any ACK coming back.
    probes_unanswered: u32,
    /// When the last acceptable ACK arrived (the peer is alive).
    last_ack_rx: Instant,
    /// When new data was last sent (restart after idle, RFC 5681 §4.1).
    last_data_sent: Instant,
    /// When we last answered an unacceptable data-less segment (rate limit).
    last_oow_ack: Option<Instant>,
    /// Every timer of the connection, keyed by [`Timer`].
    timers: TimerTable,

    msl: Duration,
    tlp_enabled: bool,
    rto_min: Duration,
    rto_max: Duration,
    max_retransmits: u32,
    syn_retries: u32,

    /// Added to our millisecond clock to make TSvals ([`ts_clock`]); set by the endpoint.
    pub ts_offset: u32,
    /// Timestamps are offered (config) and in effect (both SYNs carried TSopt).
    ts_offer: bool,
    ts_ok: bool,
    /// RFC 7323 §4.3 TS.Recent: the timestamp to echo, and when it was recorded.
    ts_recent: u32,
    ts_recent_at: Instant,
    /// RFC 7323 §4.3 Last.ACK.sent: the ACK field of the last segment we sent.
    last_ack_sent: SeqNum,
    /// The time of the poll in progress (stamps TSval on outgoing segments).
    clock: Instant,

    /// Delayed ACKs (RFC 1122 §4.2.3.2): the longest delay, the in-order bytes received
    /// since the last ACK, and the largest segment received (Linux `rcv_mss`).
    delack: Duration,
    unacked_bytes: u32,
    rcv_mss: u32,
    /// Nagle's algorithm off (`TCP_NODELAY`).
    nodelay: bool,

    /// Keep-alive (RFC 1122 §4.2.3.6): parameters, probes sent without answer, and a
    /// probe to send now.
    keepalive: Option<KeepaliveConfig>,
    ka_probes: u32,
    ka_probe_due: bool,
    /// RFC 5482 / RFC 9293 §3.8.3 user timeout, and since when sent data has been waiting
    /// for an acknowledgment without progress.
    user_timeout: Option<Duration>,
    stall_since: Option<Instant>,

    /// How many more out-of-order bytes the endpoint's global budget lets this
    /// connection hold now (set by the endpoint before each segment).
    pub ooo_room: usize,
    /// The out-of-order bytes of this connection the endpoint has counted.
    pub ooo_accounted: usize,
    /// Queue [`TcpEventKind`]s for the trace view (set by the endpoint).
    pub trace: bool,
    /// Events not yet taken by the endpoint.
    pub trace_events: Vec<(TcpEventKind, &'static std::panic::Location<'static>)>,
}

impl Connection {
    fn new(
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        config: &Config,
        state: State,
        passive: bool,
    ) -> Connection {
        // The configured MSS is the IPv4 one (MTU − 40); an IPv6 connection's headers take
        // 20 bytes more.
        let local_mss = if remote.is_ipv6() {
            mss_for_ipv6(config.mss)
        } else {
            config.mss
        }
        .max(1);
        let wscale_offer = wscale_offer(config);
        let recv_cap = if wscale_offer.is_some() {
            config.recv_buffer.min(MAX_WINDOW << MAX_WSCALE)
        } else {
            config.recv_buffer.clamp(1, MAX_WINDOW)
        };
        Connection {
            local,
            remote,
            state,
            owner: Owner::App,
            in_dirty: false,
            changed: false,
            error: None,
            pending_rst: None,
            passive,
            soft_error: None,
            snd: SendSequenceSpace {
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                wl1: SeqNum(0),
                wl2: SeqNum(0),
                iss,
                max_wnd: 0,
            },
            rcv: RecvSequenceSpace::default(),
            local_mss,
            send_mss: local_mss.min(DEFAULT_PEER_MSS),
            send_buf: SendBuffer::new(config.send_buffer.max(1)),
            recv_buf: RecvBuffer::new(recv_cap),
            syn_acked: false,
            fin_queued: false,
            fin_acked: false,
            peer_fin: None,
            fin_received: false,
            ack_needed: false,
            acks_owed: 0,
            retransmit_una: false,
            probe_needed: false,
            sack_ok: false,
            wscale_offer,
            wscale_ok: false,
            rcv_wscale: 0,
            snd_wscale: 0,
            rcv_auto_max: if wscale_offer.is_some() {
                config.recv_buffer_max.min(MAX_WINDOW << MAX_WSCALE)
            } else {
                0
            },
            rcvq_space: recv_cap.min(INITIAL_RCVQ_SEGMENTS * usize::from(local_mss)),
            rcvq_start: None,
            rcv_rtt: None,
            rcv_rtt_ecr: 0,
            snd_auto_max: if config.send_buffer_max > config.send_buffer {
                config.send_buffer_max
            } else {
                0
            },
            snd_rate_start: None,
            last_ooo: None,
            dsack: None,
            sacked: Vec::new(),
            high_rxt: iss,
            rto_lost_end: None,
            rxt_log: Vec::new(),
            lost_again: VecDeque::new(),
            cwv_flight: (0, 0),
            cwv_round_end: iss,
            xmit_log: VecDeque::new(),
            min_rtt: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_dsack_round: None,
            reo_wnd_persist: 0,
            reorder_una: iss,
            undo: None,
            frto: None,
            frto_sends: 0,
            rtt: RttEstimator::new(config.rto_initial, config.rto_min, config.rto_max),
            rtt_sample: None,
            rxt_ts: None,
            cc: {
                let mut cc = NewReno::new(local_mss.min(DEFAULT_PEER_MSS), iss);
                cc.set_algorithm(config.congestion);
                cc
            },
            tlp_pending: false,
            tlp_sent: false,
            tlp_probe: None,
            retries: 0,
            persist_backoff: 0,
            probes_unanswered: 0,
            last_ack_rx: Instant::ZERO,
            last_data_sent: Instant::ZERO,
            last_oow_ack: None,
            timers: TimerTable::default(),
            msl: config.msl,
            tlp_enabled: config.tail_loss_probe,
            rto_min: config.rto_min,
            rto_max: config.rto_max,
            max_retransmits: config.max_retransmits,
            syn_retries: config.syn_retries,
            ts_offset: 0,
            ts_offer: config.timestamps,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: Instant::ZERO,
            last_ack_sent: SeqNum(0),
            clock: Instant::ZERO,
            delack: config.delayed_ack,
            unacked_bytes: 0,
            rcv_mss: u32::from(local_mss.min(DEFAULT_PEER_MSS)),
            nodelay: config.nodelay,
            keepalive: None,
            ka_probes: 0,
            ka_probe_due: false,
            user_timeout: None,
            stall_since: None,
            ooo_room: usize::MAX,
            ooo_accounted: 0,
            trace: false,
            trace_events: Vec::new(),
        }
    }

    /// Out-of-order bytes held in the receive buffer now.
    pub fn out_of_order_bytes(&self) -> usize {
        self.recv_buf.out_of_order_bytes()
    }

    /// OPEN, active (RFC 9293 §3.10.1): a TCB in SYN-SENT; the SYN goes out on the next
    /// [`Connection::poll_transmit`].
    pub fn connect(
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        config: &Config,
    ) -> Connection {
        let c = Connection::new(local, remote, iss, config, State::SynSent, false);
        log::debug!("{local} ↔ {remote}: CLOSED → SYN-SENT on active OPEN");
        c
    }

    /// A SYN arrived at a listener (RFC 9293 §3.10.7.2): a TCB in SYN-RECEIVED; the
    /// SYN-ACK goes out on the next [`Connection::poll_transmit`].
    pub fn accept_syn(
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        seg: &Segment,
        config: &Config,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(local, remote, iss, config, State::SynReceived, true);
        c.learn_peer_syn(seg, now);
        c.snd.wnd = u32::from(seg.window);
        c.snd.max_wnd = c.snd.wnd;
        c.snd.wl1 = seg.seq;
        c.snd.wl2 = iss;
        log::debug!("{local} ↔ {remote}: LISTEN → SYN-RECEIVED on SYN");
        c
    }

    /// What the peer's SYN tells us (RFC 9293 §3.10.7.2/§3.10.7.3): its ISN (RCV.NXT =
    /// IRS + 1) and the options it offers — timestamps, MSS, SACK, window scale.
    fn learn_peer_syn(&mut self, seg: &Segment, now: Instant) {
        self.rcv.irs = seg.seq;
        self.rcv.nxt = seg.seq + 1;
        self.rcv.adv = self.rcv.nxt;
        self.last_ack_sent = self.rcv.nxt;
        self.negotiate_ts(seg, now);
        self.set_peer_mss(seg.options.mss);
        self.sack_ok = seg.options.sack_permitted;
        self.cc.set_pipe_recovery(self.sack_ok);
        self.negotiate_wscale(seg.options.window_scale);
    }

    /// A connection created from a validated SYN cookie (RFC 4987 §3.6): the handshake is
    /// complete (ESTABLISHED) with the options the cookie preserved. `ack` is the
    /// handshake's final ACK; the caller then processes it as a normal segment.
    #[allow(clippy::too_many_arguments)]
    pub fn from_cookie(
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        ack: &Segment,
        mss: u16,
        wscale: Option<u8>,
        sack: bool,
        config: &Config,
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(local, remote, iss, config, State::Established, true);
        c.rcv.irs = ack.seq - 1;
        c.rcv.nxt = ack.seq;
        c.rcv.adv = ack.seq + u32::from(ack_window_offer(config));
        c.last_ack_sent = c.rcv.nxt;
        c.snd.una = iss + 1;
        c.snd.nxt = iss + 1;
        c.snd.max = iss + 1;
        c.syn_acked = true;
        c.high_rxt = c.snd.una;
        c.negotiate_ts(ack, now);
        c.set_peer_mss(Some(mss));
        c.sack_ok = sack;
        c.negotiate_wscale(wscale);
        // The window arrives with the ACK itself (processed next): make it pass the
        // window-update test.
        c.snd.wl1 = ack.seq - 1;
        c.snd.wl2 = iss;
        c.last_ack_rx = now;
        c.cc = NewReno::new(c.send_mss, iss + 1);
        c.cc.set_algorithm(config.congestion);
        c.cc.set_pipe_recovery(sack);
        log::debug!("{local} ↔ {remote}: LISTEN → ESTABLISHED on a valid SYN cookie");
        c
    }

    /// RFC 7323 §3.2: timestamps are in effect if we offer them and the peer's SYN (or
    /// SYN-ACK) carries TSopt; TS.Recent starts at its TSval. The send MSS then leaves
    /// room for the option (call before `set_peer_mss`).
    fn negotiate_ts(&mut self, seg: &Segment, now: Instant) {
        match seg.options.timestamps {
            Some((val, _)) if self.ts_offer => {
                self.ts_ok = true;
                self.ts_recent = val;
                self.ts_recent_at = now;
            }
            _ => self.ts_ok = false,
        }
    }

    /// RFC 7323 §2.2: window scaling applies only if both SYNs carry the option.
    fn negotiate_wscale(&mut self, peer: Option<u8>) {
        if let (Some(ours), Some(theirs)) = (self.wscale_offer, peer) {
            self.wscale_ok = true;
            self.rcv_wscale = ours;
            self.snd_wscale = theirs.min(MAX_WSCALE);
        } else {
            self.wscale_ok = false;
            self.rcv_wscale = 0;
            self.snd_wscale = 0;
        }
    }

    /// The window a (non-SYN) segment advertises, in bytes (RFC 7323 §2.3).
    fn seg_window(&self, seg: &Segment) -> u32 {
        u32::from(seg.window) << self.snd_wscale
    }

    /// The largest window we can advertise.
    fn max_rcv_window(&self) -> u32 {
        (MAX_WINDOW as u32) << self.rcv_wscale
    }

    fn set_peer_mss(&mut self, mss: Option<u16>) {
        // RFC 9293 §3.7.1: without the option assume 536; never exceed our own.
        // A tiny MSS option (down to 1) would make us cut the stream into 1-byte
        // segments, 40 bytes of headers each: a cheap way to make a server burn CPU and
        // memory (CVE-2019-11479). Like Linux's `tcp_min_snd_mss` the MSS is clamped to at
        // least MIN_SND_MSS before the option bytes come off.
        let peer = mss.unwrap_or(DEFAULT_PEER_MSS).max(MIN_SND_MSS);
        self.send_mss = self.local_mss.min(peer);
        if self.ts_ok {
            // RFC 6691: the MSS counts data only; the 12 option bytes on every segment
            // come out of it.
            self.send_mss = self.send_mss.saturating_sub(TS_OPTION_LEN).max(1);
        }
        self.cc.set_mss(self.send_mss);
    }

    // ----------------------------------------------------------------------------------
    // Small accessors for the endpoint.

    /// The next time a timer of this connection fires.
    pub fn deadline(&self) -> Option<Instant> {
        let d = self.timers.next();
        if self.stall_since.is_some() {
            return earlier(d, self.user_timeout_deadline());
        }
        d
    }

    /// Bytes the application can read now.
    pub fn readable(&self) -> usize {
        self.recv_buf.readable()
    }

    /// Bytes the application handed over that the peer has not acknowledged yet (queued
    /// or in flight), like Linux's SIOCOUTQ. Falls as SND.UNA advances.
    pub fn unacked(&self) -> usize {
        self.send_buf.len()
    }

    /// A recv would not return WouldBlock.
    pub fn recv_ready(&self) -> bool {
        self.recv_buf.readable() > 0
            || self.fin_received
            || self.error.is_some()
            || self.state == State::Closed
    }

    /// A send would not return Ok(0).
    pub fn send_ready(&self) -> bool {
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
                if !self.fin_queued =>
            {
                self.send_buf.free() > 0
            }
            _ => true,
        }
    }

    /// Smoothed RTT, for diagnostics.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Congestion window, for diagnostics and tests.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// The effective send MSS.
    pub fn send_mss(&self) -> u16 {
        self.send_mss
    }

    /// RCV.NXT.
    #[cfg(test)]
    pub fn rcv_nxt(&self) -> SeqNum {
        self.rcv.nxt
    }

    /// SYN (or SYN-ACK) retransmission timeouts so far in this handshake.
    pub fn syn_timeouts(&self) -> u32 {
        self.retries
    }

    /// Set the number of SYN-ACK retransmissions this half-open connection may make.
    pub fn set_syn_retries(&mut self, limit: u32) {
        self.syn_retries = limit;
    }

    /// RFC 6191 §2: may the SYN `seg`, arriving for this connection in TIME-WAIT, start a
    /// new incarnation? It may when its sequence number is above RCV.NXT, or, with
    /// timestamps in use on both, when its TSval is newer than TS.Recent (then the old
    /// duplicates of this incarnation are told apart by PAWS, whatever their sequence
    /// numbers). A SYN whose TSval is older is an old duplicate itself. The answer is the
    /// lowest ISS the new incarnation may use: above everything this one sent, so that
    /// its old segments cannot be taken for new ones on the peer's side (Linux uses
    /// `tw_snd_nxt + 65537`, one maximal unscaled window beyond).
    pub fn time_wait_reuse(&self, seg: &Segment) -> Option<SeqNum> {
        let f = seg.flags;
        if self.state != State::TimeWait || !f.syn || f.ack || f.rst {
            return None;
        }
        let newer_ts = match (self.ts_ok, seg.options.timestamps) {
            (true, Some((val, _))) => {
                let newer = (val.wrapping_sub(self.ts_recent) as i32) > 0;
                if !newer {
                    // PAWS (RFC 7323 §5.3): an old duplicate SYN.
                    return None;
                }
                true
            }
            _ => false,
        };
        if !(seg.seq.gt(self.rcv.nxt) || newer_ts) {
            return None;
        }
        let mut iss = self.snd.max + 65537;
        if iss == SeqNum(0) {
            iss = SeqNum(1);
        }
        Some(iss)
    }

    /// Turn Nagle's algorithm off (`true`) or on (RFC 1122 §4.2.3.4).
    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
    }

    /// Resize the send buffer (`SO_SNDBUF`); never below the bytes it holds.
    pub fn set_send_buffer(&mut self, bytes: usize) {
        self.send_buf.set_capacity(bytes.max(1));
        // As Linux's SOCK_SNDBUF_LOCK: a size the application chose is not autotuned.
        self.snd_auto_max = 0;
    }

    /// Keep-alive on or off (RFC 1122 §4.2.3.6). The first probe goes out `idle` after
    /// the last segment received.
    pub fn set_keepalive(&mut self, ka: Option<KeepaliveConfig>) {
        self.keepalive = ka;
        self.ka_probes = 0;
        self.ka_probe_due = false;
        let keepalive_at = match ka {
            Some(k) if self.state != State::Closed && self.state != State::TimeWait => {
                Some(self.last_ack_rx + k.idle)
            }
            _ => None,
        };
        self.timers.put(Timer::Keepalive, keepalive_at);
    }

    /// The user timeout (RFC 5482, RFC 9293 §3.8.3): how long sent data may stay
    /// unacknowledged before the connection is given up. None: only `max_retransmits`.
    pub fn set_user_timeout(&mut self, timeout: Option<Duration>) {
        self.user_timeout = timeout;
    }

    fn user_timeout_deadline(&self) -> Option<Instant> {
        Some(self.stall_since? + self.user_timeout?)
    }

    /// The peer showed it is alive: restart the keep-alive idle period.
    fn keepalive_heard(&mut self, now: Instant) {
        self.ka_probes = 0;
        if let Some(k) = self.keepalive {
            self.timers.set(Timer::Keepalive, now + k.idle);
        }
    }

    /// In-order data arrived: ACK at once every second full-sized segment, otherwise
    /// within the delayed-ACK timeout (RFC 1122 §4.2.3.2, RFC 5681 §4.2). Counting bytes
    /// against the largest segment seen makes a coalesced super-segment from the device
    /// (GRO: up to 64 KiB in one piece) count as the ceil(len / MSS) segments it was on the
    /// wire, so it is acknowledged at once, never delayed (RFC 9293 §3.8.6.3).
    fn ack_in_order_data(&mut self, len: u32, now: Instant) {
        self.rcv_mss = self.rcv_mss.max(len).min(u32::from(self.local_mss));
        self.unacked_bytes = self.unacked_bytes.saturating_add(len);
        if self.delack.is_zero() || self.unacked_bytes > self.rcv_mss {
            self.ack_needed = true;
        } else if self.timers.get(Timer::DelayedAck).is_none() {
            self.timers.set(Timer::DelayedAck, now + self.delack);
        }
    }

    /// Leave TIME-WAIT early because a new connection reuses the 4-tuple (RFC 6191).
    pub fn close_time_wait(&mut self, cause: &str) {
        if self.state == State::TimeWait {
            self.set_state(State::Closed, cause);
        }
    }

    /// Queue a trace event; `make` only runs when tracing is on, so a disabled trace
    /// costs one branch. `#[track_caller]` (here and on the helpers that call it) records
    /// the line that made the decision.
    #[track_caller]
    fn note(&mut self, make: impl FnOnce() -> TcpEventKind) {
        if self.trace {
            self.trace_events
                .push((make(), std::panic::Location::caller()));
        }
    }

    // ----------------------------------------------------------------------------------
    // State changes.

    #[track_caller]
    fn set_state(&mut self, new: State, cause: &str) {
        if new == self.state {
            return;
        }
        log::debug!(
            "{} ↔ {}: {} → {} on {}",
            self.local,
            self.remote,
            self.state,
            new,
            cause
        );
        let from = self.state;
        self.note(|| TcpEventKind::State {
            from,
            to: new,
            cause: cause.to_string(),
        });
        if new == State::TimeWait {
            // RFC 9293 §3.10.7.4: TIME-WAIT lasts 2·MSL (restarted by a repeated FIN).
            let after = self.msl.saturating_mul(2);
            self.note(|| TcpEventKind::CloseTimer {
                what: "TIME-WAIT 2·MSL",
                after,
            });
        }
        self.state = new;
        self.changed = true;
        match new {
            State::Closed => {
                self.timers.stop_all();
                self.tlp_pending = false;
                self.ack_needed = false;
                self.acks_owed = 0;
                self.retransmit_una = false;
                self.probe_needed = false;
                self.ka_probe_due = false;
                self.stall_since = None;
            }
            State::TimeWait => {
                self.timers.retain(Timer::runs_in_time_wait);
                self.ka_probe_due = false;
                self.stall_since = None;
                self.tlp_pending = false;
                self.retransmit_una = false;
                self.probe_needed = false;
            }
            _ => {}
        }
    }

    /// Enter TIME-WAIT, or restart its 2·MSL timer (RFC 9293 §3.10.7.4, FIN processing).
    fn enter_time_wait(&mut self, now: Instant, cause: &str) {
        self.set_state(State::TimeWait, cause);
        self.timers
            .set(Timer::Close, now + self.msl.saturating_mul(2));
    }

    /// The connection dies with `err` (reset, timeout): CLOSED, queues flushed.
    fn fail(&mut self, err: Option<TcpError>, cause: &str) {
        if err.is_some() {
            self.error = err;
        }
        self.send_buf.consume(self.send_buf.len());
        self.set_state(State::Closed, cause);
    }

    /// Queue `<SEQ=seq><CTL=RST>` (with an ACK if `ack` is given).
    fn queue_rst(&mut self, seq: SeqNum, ack: Option<SeqNum>) {
        let mut flags = Flags {
            rst: true,
            ..Flags::default()
        };
        flags.ack = ack.is_some();
        self.pending_rst = Some(Segment {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: ack.unwrap_or_default(),
            flags,
            ..Segment::default()
        });
    }

    /// Count and log a segment we drop (by reason, and traced).
    #[track_caller]
    fn drop_segment(&mut self, stats: &mut TcpStats, why: &'static str) {
        stats.drop(why);
        log::debug!(
            "{} ↔ {}: {}: segment dropped: {why}",
            self.local,
            self.remote,
            self.state
        );
        self.note(|| TcpEventKind::Dropped { reason: why });
    }

    /// An ACK must go out now (not merely at the end of the batch): duplicate ACKs,
    /// challenge ACKs, replies to unacceptable segments.
    fn ack_now(&mut self) {
        self.acks_owed = (self.acks_owed + 1).min(MAX_ACKS_OWED);
    }

    /// A challenge ACK or the answer to an unacceptable segment without data, at most
    /// one per [`OUT_OF_WINDOW_ACK_INTERVAL`] (RFC 5961 §7).
    fn ack_rate_limited(&mut self, now: Instant, stats: &mut TcpStats) {
        if self
            .last_oow_ack
            .is_some_and(|t| now.saturating_duration_since(t) < OUT_OF_WINDOW_ACK_INTERVAL)
        {
            stats.acks_rate_limited += 1;
            return;
        }
        self.last_oow_ack = Some(now);
        self.ack_now();
    }

    // ----------------------------------------------------------------------------------
    // User calls (RFC 9293 §3.10.2 - §3.10.5).

    /// SEND (§3.10.2).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        self.may_send()?;
        Ok(self.send_buf.write(data))
    }

    /// SEND with the data written in place by `fill` (see [`SendBuffer::write_with`]):
    /// the same states and errors as [`Connection::send`].
    pub fn send_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        self.may_send()?;
        Ok(self.send_buf.write_with(max, fill))
    }

    /// Whether SEND may queue data now (§3.10.2): in SYN-SENT and SYN-RECEIVED it waits
    /// for the handshake; after our FIN, or once the connection died, it is an error.
    fn may_send(&self) -> Result<(), TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued {
            return Err(TcpError::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => Ok(()),
            State::Closed => Err(TcpError::NotConnected),
            _ => Err(TcpError::BrokenPipe),
        }
    }

    /// RECEIVE (§3.10.3).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TcpError> {
        if self.recv_buf.readable() > 0 {
            if buf.is_empty() {
                return Ok(0);
            }
            let n = self.recv_buf.read(buf);
            self.maybe_window_update();
            return Ok(n);
        }
        if self.fin_received {
            return Ok(0);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            State::Closed => Err(TcpError::NotConnected),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// After the application read data: if the window we could offer grew enough
    /// (RFC 1122 §4.2.3.3, RFC 9293 §3.8.6.2.2), send a window update.
    fn maybe_window_update(&mut self) {
        if !self.state.can_receive() || !self.state.is_synchronized() {
            return;
        }
        let current = self.current_rcv_wnd();
        let free = self.recv_buf.window().min(self.max_rcv_window() as usize) as u32;
        if free.saturating_sub(current) >= self.window_update_threshold() {
            self.ack_needed = true;
            self.note(|| TcpEventKind::WindowUpdate { window: free });
        }
    }

    fn window_update_threshold(&self) -> u32 {
        let half = (self.recv_buf.capacity().min(self.max_rcv_window() as usize) / 2) as u32;
        half.min(u32::from(self.local_mss)).max(1)
    }

    /// What remains of the window last advertised (RCV.WND as the peer sees it).
    fn current_rcv_wnd(&self) -> u32 {
        u32::try_from(self.rcv.adv.diff(self.rcv.nxt)).unwrap_or(0)
    }

    /// The window field for an outgoing segment; moves the advertised right edge. A SYN's
    /// window is never scaled (RFC 7323 §2.2).
    fn advertise_window(&mut self, syn: bool) -> u16 {
        let shift = if syn { 0 } else { self.rcv_wscale };
        let max = (MAX_WINDOW as u32) << shift;
        let current = self.current_rcv_wnd();
        let free = self.recv_buf.window().min(max as usize) as u32;
        // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: only move the right edge by at least
        // min(buffer/2, MSS); and never move it left.
        let wnd = if free >= current.saturating_add(self.window_update_threshold()) {
            free
        } else {
            current
        };
        let wnd = wnd.min(max);
        let mut field = wnd >> shift;
        // RFC 7323 §2.4: scaling rounds down; round up rather than shrink the window.
        if (field << shift) < current && field < MAX_WINDOW as u32 {
            field += 1;
        }
        self.rcv.adv = self.rcv.nxt + (field << shift);
        field as u16
    }

    /// CLOSE (§3.10.4): the FIN follows all queued data.
    pub fn close(&mut self, _now: Instant) {
        match self.state {
            State::SynSent => {
                // "Delete the TCB"; nothing was sent that needs closing.
                self.set_state(State::Closed, "CLOSE");
            }
            State::SynReceived => {
                // Queued until ESTABLISHED (see the transition there).
                self.fin_queued = true;
            }
            State::Established => {
                self.fin_queued = true;
                self.set_state(State::FinWait1, "CLOSE");
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck, "CLOSE");
            }
            _ => {}
        }
    }

    /// ABORT (§3.10.5): RST if synchronized (or SYN-RECEIVED), queues flushed, CLOSED.
    pub fn abort(&mut self, cause: &str) {
        match self.state {
            State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait => {
                let seq = self.snd.max;
                self.queue_rst(seq, None);
            }
            _ => {}
        }
        if self.state != State::Closed {
            self.fail(Some(TcpError::ConnectionAborted), cause);
        }
    }

    /// The application dropped its handle (see [`super::Tcp::release`]).
    pub fn release(&mut self, now: Instant) {
        self.owner = Owner::Released;
        if self.recv_buf.readable() > 0 && self.state != State::Closed {
            // Unread data: RST like Linux (RFC 9293 §3.10.4 allows either; RFC 2525
            // §2.17 recommends the reset so the peer learns data was lost).
            self.abort("release with unread data");
            return;
        }
        self.close(now);
        if self.state == State::FinWait2 && self.timers.get(Timer::Close).is_none() {
            self.timers.set(Timer::Close, now + FIN_WAIT2_TIMEOUT);
        }
    }

    // ----------------------------------------------------------------------------------
    // SEGMENT ARRIVES (§3.10.7).

    /// Process one incoming segment addressed to this connection.
    pub fn on_segment(&mut self, seg: &Segment, now: Instant, stats: &mut TcpStats) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(seg, now, stats),
            _ => {
                // Whichever step ended it, the segment has had all the answer it gets.
                let _ = self.on_segment_synchronized(seg, now, stats);
            }
        }
    }

    /// §3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, seg: &Segment, now: Instant, stats: &mut TcpStats) {
        // First, check the ACK bit.
        let mut ack_ok = false;
        if seg.flags.ack {
            if seg.ack.le(self.snd.iss) || seg.ack.gt(self.snd.max) {
                if !seg.flags.rst {
                    self.queue_rst(seg.ack, None);
                    stats.resets_sent += 1;
                }
                self.drop_segment(stats, "SYN-SENT: unacceptable ACK");
                return;
            }
            ack_ok = seg.ack.ge(self.snd.una) && seg.ack.le(self.snd.max);
        }
        // Second, the RST bit.
        if seg.flags.rst {
            if ack_ok {
                stats.resets_received += 1;
                self.fail(Some(TcpError::ConnectionRefused), "RST");
            } else {
                self.drop_segment(stats, "SYN-SENT: RST without an acceptable ACK");
            }
            return;
        }
        // Fourth, the SYN bit.
        if !seg.flags.syn {
            self.drop_segment(stats, "SYN-SENT: neither SYN nor RST");
            return;
        }
        self.learn_peer_syn(seg, now);
        self.last_ack_rx = now;
        self.snd.wnd = u32::from(seg.window);
        self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
        self.snd.wl1 = seg.seq;
        self.snd.wl2 = seg.ack;
        if ack_ok && seg.ack.gt(self.snd.iss) {
            // Our SYN is acknowledged: ESTABLISHED.
            self.on_new_ack(seg.ack, None, now, stats);
            self.set_state(State::Established, "SYN-ACK");
            self.ack_needed = true;
            // Data or FIN carried on the SYN-ACK: the seventh and eighth steps of
            // §3.10.7.4, as in a synchronized state.
            let data_seq = seg.seq + 1;
            if self
                .step_text(data_seq, &seg.payload, now, stats)
                .is_continue()
            {
                self.step_fin(data_seq, seg.payload.len(), seg.flags.fin, now);
            }
            self.ack_now();
        } else {
            // Simultaneous open: SYN-RECEIVED, send SYN-ACK (our SYN again, now with ACK).
            self.snd.nxt = self.snd.iss;
            self.timers.stop(Timer::Retransmit);
            self.set_state(State::SynReceived, "SYN (simultaneous open)");
        }
    }

    /// §3.10.7.4: SYN-RECEIVED and all synchronized states, in the RFC's order of steps.
    /// Each step returns [`GO_ON`] or [`DONE`] (the segment was dropped, answered, or has
    /// done all it can), and `?` stops at the first step that is done.
    fn on_segment_synchronized(
        &mut self,
        seg: &Segment,
        now: Instant,
        stats: &mut TcpStats,
    ) -> Step {
        let mut arr = Arriving {
            seq: seg.seq,
            syn: seg.flags.syn,
            fin: seg.flags.fin,
            data: &seg.payload,
        };
        // The peer's SYN again, or its SYN-ACK in a simultaneous open (SYN-RECEIVED only).
        self.syn_received_syn(seg, &mut arr)?;
        // RFC 9293 §3.10.7.4 first: check the sequence number (after RFC 7323 PAWS), and
        // trim the segment to the receive window.
        self.step_sequence(seg, &mut arr, now, stats)?;
        // RFC 9293 §3.10.7.4 second: check the RST bit.
        self.step_rst(seg, now, stats)?;
        // RFC 9293 §3.10.7.4 third: check security. Not implemented: the check compares
        // the segment's IP security/compartment option (RFC 791 option 130, RFC 1108) with
        // the connection's, and we neither send nor interpret that option (the IP layer
        // skips IPv4 options), so every segment carries the same — absent — security level
        // as the connection. RFC 9293 Appendix A.1 describes the option as kept only for
        // multilevel-secure systems, which this stack is not.
        // RFC 9293 §3.10.7.4 fourth: check the SYN bit.
        self.step_syn(&arr, now, stats)?;
        // RFC 9293 §3.10.7.4 fifth: check the ACK field.
        self.step_ack(seg, &arr, now, stats)?;
        // RFC 9293 §3.10.7.4 sixth: check the URG bit. Not implemented: the urgent
        // pointer is parsed but ignored, so urgent data is delivered inline, in sequence,
        // as ordinary data, and the application is not told that urgent data is pending
        // (RFC 9293 §3.8.5 MUST-30/31 ask for that signal). RFC 9293 §3.8.5 and RFC 6093
        // §6 say new applications should not use the mechanism, and RFC 6093 §4 notes
        // that middleboxes often clear URG, turning urgent data into in-line data anyway.
        // RFC 9293 §3.10.7.4 seventh: process the segment text.
        self.step_text(arr.seq, arr.data, now, stats)?;
        // RFC 9293 §3.10.7.4 eighth: check the FIN bit.
        self.step_fin(arr.seq, arr.data.len(), arr.fin, now);
        GO_ON
    }

    /// SYN-RECEIVED, before the sequence number check: a SYN at IRS is the peer's SYN
    /// again (our SYN-ACK was lost), answered at once rather than at the rate limit an
    /// unacceptable segment would get; with an ACK it is the SYN-ACK of a simultaneous
    /// open, whose SYN is old news.
    fn syn_received_syn(&mut self, seg: &Segment, arr: &mut Arriving<'_>) -> Step {
        if self.state == State::SynReceived && arr.syn && arr.seq == self.rcv.irs {
            if !seg.flags.ack || seg.flags.rst {
                // The peer retransmitted its SYN: our SYN-ACK was lost; send it again.
                self.ack_now();
                self.note(|| TcpEventKind::DuplicateSyn);
                return DONE;
            }
            // A SYN-ACK in simultaneous open (RFC 9293 §3.5 figure 7, line 6): its SYN
            // is old news, the ACK is what matters.
            arr.seq += 1;
            arr.syn = false;
        }
        GO_ON
    }

    /// First step: PAWS, the sequence number check (§3.10.7.4, the four cases) and the
    /// answer to an unacceptable segment, then trimming to the window.
    fn step_sequence(
        &mut self,
        seg: &Segment,
        arr: &mut Arriving<'_>,
        now: Instant,
        stats: &mut TcpStats,
    ) -> Step {
        self.paws(seg, arr.fin, now, stats)?;
        let rcv_wnd = self.current_rcv_wnd();
        if !self.seq_acceptable(arr, rcv_wnd) {
            self.unacceptable_segment(seg, arr, rcv_wnd, now, stats)?;
        }
        self.trim_to_window(arr, rcv_wnd);
        GO_ON
    }

    /// RFC 7323 §5.3 R1 (PAWS), before the sequence number check: a segment whose TSval
    /// is older than TS.Recent is an old duplicate, even if its sequence numbers look fine
    /// (they may have wrapped). RSTs are exempt (§5.3 R1, end).
    fn paws(&mut self, seg: &Segment, fin: bool, now: Instant, stats: &mut TcpStats) -> Step {
        let tsval = seg.options.timestamps.map(|(val, _)| val);
        if let (true, Some(val), false) = (self.ts_ok, tsval, seg.flags.rst) {
            if (val.wrapping_sub(self.ts_recent) as i32) < 0 {
                if now.saturating_duration_since(self.ts_recent_at) > PAWS_IDLE {
                    // §5.5: idle for more than 24 days: TS.Recent is invalid, not the
                    // segment.
                    self.ts_recent = val;
                    self.ts_recent_at = now;
                } else {
                    stats.paws_rejected += 1;
                    if seg.payload.is_empty() && !fin {
                        self.ack_rate_limited(now, stats);
                    } else {
                        self.ack_now();
                    }
                    self.drop_segment(stats, "PAWS: timestamp older than TS.Recent");
                    return DONE;
                }
            }
        }
        GO_ON
    }

    /// §3.10.7.4 first, the four cases: does any part of the segment fall in
    /// `RCV.NXT .. RCV.NXT + rcv_wnd`?
    fn seq_acceptable(&self, arr: &Arriving<'_>, rcv_wnd: u32) -> bool {
        let seg_len = arr.data.len() as u32 + u32::from(arr.syn) + u32::from(arr.fin);
        let rcv_nxt = self.rcv.nxt;
        let right = rcv_nxt + rcv_wnd;
        let seq = arr.seq;
        match (seg_len, rcv_wnd) {
            (0, 0) => seq == rcv_nxt,
            (0, _) => seq.in_range(rcv_nxt, right),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(rcv_nxt, right) || (seq + (seg_len - 1)).in_range(rcv_nxt, right)
            }
        }
    }

    /// §3.10.7.4 first: the answer to a segment that is not acceptable, and the control
    /// part that still goes on when the window is zero.
    fn unacceptable_segment(
        &mut self,
        seg: &Segment,
        arr: &mut Arriving<'_>,
        rcv_wnd: u32,
        now: Instant,
        stats: &mut TcpStats,
    ) -> Step {
        let rcv_nxt = self.rcv.nxt;
        if seg.flags.rst {
            self.drop_segment(stats, "RST outside the window");
            return DONE;
        }
        let end = arr.seq + arr.data.len() as u32;
        if !arr.data.is_empty() && end.le(rcv_nxt) {
            // RFC 2883 §4 (1): a duplicate of data already received.
            self.note_dsack(arr.seq, end);
        }
        // "If an incoming segment is not acceptable, an acknowledgment should be sent
        // in reply": <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. Data segments are always
        // answered (the peer needs the ACK); segments without data — bare ACKs, and
        // SYN-only or FIN-only ones too — at a limited rate (RFC 5961 §7), so two
        // stacks that disagree about the window cannot ping-pong ACKs and a blind
        // attacker cannot make us send one ACK per forged segment.
        if arr.data.is_empty() {
            self.ack_rate_limited(now, stats);
        } else {
            self.ack_now();
        }
        if self.state == State::TimeWait && arr.fin {
            // A retransmitted FIN: re-ACK it and restart the 2·MSL timer.
            self.enter_time_wait(now, "retransmitted FIN");
        }
        // RCV.WND = 0: "special allowance should be made to accept valid ACKs, URGs
        // and RSTs" — keep processing the control part of an in-sequence segment.
        if rcv_wnd == 0 && arr.seq == rcv_nxt {
            arr.data = &[];
            arr.fin = false;
            arr.syn = false;
            GO_ON
        } else {
            self.drop_segment(stats, "sequence number not acceptable");
            DONE
        }
    }

    /// §3.10.7.4 first, end: trim an acceptable segment to `RCV.NXT .. RCV.NXT + rcv_wnd`.
    fn trim_to_window(&mut self, arr: &mut Arriving<'_>, rcv_wnd: u32) {
        let rcv_nxt = self.rcv.nxt;
        let right = rcv_nxt + rcv_wnd;
        // Drop what we already have at the front...
        if arr.seq.lt(rcv_nxt) {
            let mut dup = rcv_nxt.diff(arr.seq) as u32;
            if arr.syn {
                arr.syn = false;
                dup -= 1;
                arr.seq += 1;
            }
            let cut = (dup as usize).min(arr.data.len());
            if cut > 0 {
                // RFC 2883 §4 (2): the part received before is reported as a D-SACK.
                self.note_dsack(arr.seq, arr.seq + cut as u32);
            }
            arr.data = arr.data.get(cut..).unwrap_or(&[]);
            arr.seq += cut as u32;
            if dup as usize > cut {
                // Even the FIN is a duplicate.
                arr.fin = false;
            }
        }
        // ...and what does not fit at the back (the FIN then goes too).
        let end = arr.seq + arr.data.len() as u32;
        if end.gt(right) {
            let over = end.diff(right) as usize;
            arr.data = arr
                .data
                .get(..arr.data.len().saturating_sub(over))
                .unwrap_or(&[]);
            arr.fin = false;
        }
    }

    /// Second step: the RST bit (RFC 5961 §3.2: only an exact match resets, any other
    /// in-window RST gets a challenge ACK).
    fn step_rst(&mut self, seg: &Segment, now: Instant, stats: &mut TcpStats) -> Step {
        if !seg.flags.rst {
            return GO_ON;
        }
        if seg.seq != self.rcv.nxt {
            self.ack_rate_limited(now, stats);
            self.drop_segment(stats, "RST not at RCV.NXT (challenge ACK)");
            return DONE;
        }
        if self.state == State::TimeWait {
            // RFC 1337 ("TIME-WAIT assassination hazards", fix F1): a RST must not cut
            // TIME-WAIT short, or an old duplicate could later be taken for part of a
            // new incarnation of the connection. (Linux leaves this off by default.)
            self.drop_segment(stats, "RST in TIME-WAIT (RFC 1337)");
            return DONE;
        }
        stats.resets_received += 1;
        match self.state {
            State::SynReceived => {
                let err = if self.passive {
                    None
                } else {
                    Some(TcpError::ConnectionRefused)
                };
                self.fail(err, "RST");
            }
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.fail(Some(TcpError::ConnectionReset), "RST")
            }
            _ => self.fail(None, "RST"),
        }
        DONE
    }

    /// Fourth step: a SYN in a synchronized state (RFC 5961 §4.2, RFC 9293): challenge ACK.
    fn step_syn(&mut self, arr: &Arriving<'_>, now: Instant, stats: &mut TcpStats) -> Step {
        if !arr.syn {
            return GO_ON;
        }
        self.ack_rate_limited(now, stats);
        self.drop_segment(stats, "SYN in a synchronized state (challenge ACK)");
        DONE
    }

    /// Fifth step: the ACK field, with the state changes an ACK makes (SYN-RECEIVED →
    /// ESTABLISHED; the ACK of our FIN in FIN-WAIT-1, CLOSING and LAST-ACK).
    fn step_ack(
        &mut self,
        seg: &Segment,
        arr: &Arriving<'_>,
        now: Instant,
        stats: &mut TcpStats,
    ) -> Step {
        if !seg.flags.ack {
            self.drop_segment(stats, "no ACK bit");
            return DONE;
        }
        if self.state == State::SynReceived {
            if seg.ack.gt(self.snd.una) && seg.ack.le(self.snd.max) {
                self.snd.wnd = self.seg_window(seg);
                self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
                self.snd.wl1 = seg.seq;
                self.snd.wl2 = seg.ack;
                self.set_state(State::Established, "ACK");
                if self.fin_queued {
                    self.set_state(State::FinWait1, "CLOSE queued before ESTABLISHED");
                }
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                self.queue_rst(seg.ack, None);
                stats.resets_sent += 1;
                self.drop_segment(stats, "SYN-RECEIVED: unacceptable ACK");
                return DONE;
            }
        }
        if seg.ack.gt(self.snd.max) {
            // ACK of something not yet sent: ACK and drop (§3.10.7.4).
            self.ack_rate_limited(now, stats);
            self.drop_segment(stats, "ACK of data not yet sent");
            return DONE;
        }
        // RFC 5961 §5.2: an ACK older than SND.UNA − MAX.SND.WND cannot be from the peer's
        // current view of the connection (a blind injection guessing the ACK field):
        // challenge ACK, and the whole segment, data included, is dropped (as Linux's
        // `tcp_ack` with SKB_DROP_REASON_TCP_TOO_OLD_ACK).
        if seg.ack.lt(self.snd.una - self.snd.max_wnd) {
            self.ack_rate_limited(now, stats);
            self.drop_segment(stats, "ACK below SND.UNA - MAX.SND.WND (challenge ACK)");
            return DONE;
        }
        self.update_ts_recent(seg, now);
        if !seg.payload.is_empty() {
            self.rcv_rtt_measure(seg, now);
        }
        // The peer is alive: it answers (RFC 9293 §3.8.6.1, persist).
        self.probes_unanswered = 0;
        self.last_ack_rx = now;
        self.keepalive_heard(now);
        if self.state == State::TimeWait {
            // Nothing else can legitimately arrive; a retransmitted FIN was handled above.
            if arr.fin {
                self.ack_now();
                self.enter_time_wait(now, "retransmitted FIN");
            }
            return DONE;
        }
        let old_wnd = self.snd.wnd;
        let acked_new = seg.ack.gt(self.snd.una);
        // RFC 2883 §4, RFC 3708 §2: a first SACK block below the cumulative ACK, or inside
        // the second block, reports a duplicate segment, not new data.
        let dsack = self.sack_ok.then(|| received_dsack(seg)).flatten();
        // RFC 5682 §3.2 step 3: what the scoreboard shows below RecoveryPoint before
        // this ACK.
        let frto_sacked = self
            .frto
            .map(|f| self.sacked_below(f.recovery_point()))
            .unwrap_or(0);
        let mut dup_ack = false;
        if acked_new {
            let tsecr = seg.options.timestamps.map(|(_, ecr)| ecr);
            self.on_new_ack(seg.ack, tsecr.filter(|_| self.ts_ok), now, stats);
            if self.fin_acked {
                // §3.10.7.4 fifth, per state: our FIN is acknowledged.
                match self.state {
                    State::FinWait1 => {
                        self.set_state(State::FinWait2, "ACK of FIN");
                        if self.owner == Owner::Released {
                            self.timers.set(Timer::Close, now + FIN_WAIT2_TIMEOUT);
                            self.note(|| TcpEventKind::CloseTimer {
                                what: "FIN-WAIT-2 (orphaned)",
                                after: FIN_WAIT2_TIMEOUT,
                            });
                        }
                    }
                    State::Closing => self.enter_time_wait(now, "ACK of FIN"),
                    State::LastAck => self.set_state(State::Closed, "ACK of FIN"),
                    _ => {}
                }
            }
            if self.sack_ok {
                self.merge_sack(&seg.options.sack_blocks);
            }
        } else if seg.ack == self.snd.una
            && self.snd.max != self.snd.una
            && self.is_duplicate_ack(
                seg,
                arr.data.is_empty() && !arr.fin && dsack.is_none(),
                old_wnd,
            )
        {
            dup_ack = true;
            self.on_duplicate_ack(now, stats);
        }
        if let Some(block) = dsack {
            self.on_dsack(block, stats);
        }
        if self.sack_ok && self.recovering() {
            self.detect_lost_retransmissions();
        }
        self.update_send_window(seg, acked_new);
        if let Some(step) = self.frto {
            let newly_sacked = self.sacked_below(step.recovery_point()) > frto_sacked;
            self.frto_on_ack(step, acked_new, newly_sacked, dup_ack, stats);
        }
        if self.state == State::Closed {
            // LAST-ACK: the ACK of our FIN ends the connection; nothing is left to do.
            return DONE;
        }
        GO_ON
    }

    /// RFC 7323 §4.3 (2): remember the TSval of an acceptable segment that starts at or
    /// before the ACK we last sent (so a delayed ACK echoes the earliest timestamp).
    /// Only once the RST, SYN and ACK checks passed, as Linux's `tcp_replace_ts_recent`
    /// after `tcp_ack`: a segment at RCV.NXT whose ACK is then refused must not move
    /// TS.Recent, or a forged future TSval would make PAWS reject every genuine segment
    /// afterwards.
    fn update_ts_recent(&mut self, seg: &Segment, now: Instant) {
        let tsval = seg.options.timestamps.map(|(val, _)| val);
        if let (true, Some(val)) = (self.ts_ok, tsval) {
            if seg.seq.le(self.last_ack_sent) && (val.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = val;
                self.ts_recent_at = now;
            }
        }
    }

    /// A duplicate ACK (RFC 5681 §2, RFC 6675 §2): count it, and decide on a fast
    /// retransmit — after three, or fewer with early retransmit, SACK or a delivered
    /// tail loss probe.
    fn on_duplicate_ack(&mut self, now: Instant, stats: &mut TcpStats) {
        let was_in_recovery = self.cc.in_recovery();
        let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
        // RFC 5827 early retransmit: with fewer than four segments outstanding and no
        // new data allowed out, three duplicate ACKs may never come.
        let mss = u32::from(self.send_mss).max(1);
        let outstanding = flight.div_ceil(mss);
        let unsent = self.data_end().diff(self.snd.max).max(0) as u32;
        let window_left = self
            .send_window()
            .min(self.cc.cwnd())
            .saturating_sub(flight);
        let mut dupthresh = if outstanding < 4 && (unsent == 0 || window_left < mss) {
            outstanding.saturating_sub(1).max(1)
        } else {
            3
        };
        // RFC 6675 §4 IsLost(SND.UNA): more than (DupThresh − 1)·SMSS bytes SACKed
        // above it means it is lost even if some duplicate ACKs went missing.
        let sack_lost = self.sack_ok && self.sacked_bytes() > (dupthresh - 1) * mss;
        // RFC 8985 §7.4, §6.2: the tail loss probe left a PTO (at least 2·SRTT) after
        // SND.UNA did; a SACK for it (or for anything above its start) while SND.UNA
        // is still missing means SND.UNA was sent more than an RTT plus the
        // reordering window before a segment that was delivered: RACK deems it lost.
        // Without this a probe of new data that finds the tail lost draws one
        // duplicate ACK, and the loss waits for the RTO.
        let probe_delivered = self.sack_ok
            && self
                .tlp_probe
                .is_some_and(|p| self.sacked.last().is_some_and(|&(_, r)| r.gt(p)));
        // RFC 8985 §6.2 outside recovery: SND.UNA sent more than the reordering window
        // before SACKed data is lost whatever the number of duplicate ACKs (or will be
        // when the reordering timer fires).
        let rack_lost = self.rack_una_lost(now);
        let sack_lost = sack_lost || probe_delivered || rack_lost;
        if sack_lost {
            dupthresh = 1;
        }
        self.dup_ack_action(flight, dupthresh, was_in_recovery, stats);
    }

    /// The controller's answer to a duplicate ACK with threshold `dupthresh` (1 when
    /// SND.UNA is known lost): count it, or start fast recovery with a fast retransmit.
    fn dup_ack_action(
        &mut self,
        flight: u32,
        dupthresh: u32,
        was_in_recovery: bool,
        stats: &mut TcpStats,
    ) {
        let action = self
            .cc
            .on_dup_ack(self.snd.una, self.snd.max, flight, dupthresh);
        if action != AckAction::Retransmit {
            let (seq, count) = (self.snd.una, self.cc.dup_acks());
            self.note(|| TcpEventKind::DuplicateAck {
                seq,
                count,
                threshold: dupthresh,
                in_recovery: was_in_recovery,
            });
        }
        if action == AckAction::Retransmit {
            // A new loss episode: the controller kept the window from before it.
            self.begin_episode(true);
            self.frto = None;
            self.tlp_probe = None;
            self.high_rxt = self.snd.una;
            self.rxt_log.clear();
            self.timers.stop(Timer::RetransmitOverdue);
            self.lost_again.clear();
            self.timers.stop(Timer::LossProbe);
            log::debug!(
                "{} ↔ {}: fast retransmit at {}",
                self.local,
                self.remote,
                self.snd.una
            );
            stats.fast_retransmits += 1;
            self.retransmit_una = true;
            let seq = self.snd.una;
            let dup_acks = dupthresh;
            self.note(|| TcpEventKind::FastRetransmit { seq, dup_acks });
        }
    }

    /// Window update (§3.10.7.4 fifth): from a segment newer than the last update — and,
    /// as Linux's `tcp_may_update_window`, from any ACK that advances SND.UNA. With data
    /// flowing both ways the peer's pure ACKs carry its SND.MAX (after a go-back-N that
    /// is ahead of the data it resends), pushing SND.WL1 beyond the sequence numbers of
    /// its later segments; by the RFC's test alone those could then never move the right
    /// edge, and the connection would crawl on a stale window.
    fn update_send_window(&mut self, seg: &Segment, acked_new: bool) {
        if seg.ack.ge(self.snd.una)
            && (acked_new
                || self.snd.wl1.lt(seg.seq)
                || (self.snd.wl1 == seg.seq && self.snd.wl2.le(seg.ack)))
        {
            let wnd = self.seg_window(seg);
            if wnd > self.snd.wnd {
                self.changed = true;
            }
            let old = self.snd.wnd;
            if wnd != old {
                self.note(|| TcpEventKind::PeerWindow { old, new: wnd });
            }
            self.snd.wnd = wnd;
            self.snd.max_wnd = self.snd.max_wnd.max(wnd);
            self.snd.wl1 = seg.seq;
            self.snd.wl2 = seg.ack;
            if wnd > 0 {
                self.timers.stop(Timer::Persist);
                self.persist_backoff = 0;
            }
        }
    }

    /// An acceptable ACK of new data: `SND.UNA < SEG.ACK =< SND.MAX`, with the TSecr it
    /// echoed when timestamps are in effect: the send queue, RTT, RTO, loss recovery and
    /// congestion control. The state changes an ACK makes are the caller's (the fifth
    /// step of [`Connection::step_ack`], or SYN-SENT).
    fn on_new_ack(&mut self, ack: SeqNum, tsecr: Option<u32>, now: Instant, stats: &mut TcpStats) {
        let mut acked = ack.diff(self.snd.una).max(0) as u32;
        if !self.syn_acked && acked > 0 {
            self.syn_acked = true;
            acked -= 1;
            if self.retries > 0 {
                // RFC 6298 §5.7: our SYN (or SYN-ACK) was retransmitted, so there is no
                // RTT sample (Karn); data transmission starts with a 3 s RTO.
                self.rtt.syn_retransmitted_fallback(SYN_RETRANSMITTED_RTO);
            }
        }
        // Congestion control counts data (and FIN) bytes, not the SYN.
        let total = acked;
        let data = (acked as usize).min(self.send_buf.len());
        if data > 0 {
            self.send_buf.consume(data);
            self.changed = true;
        }
        acked -= data as u32;
        if acked > 0 && self.fin_queued && !self.fin_acked {
            self.fin_acked = true;
        }
        self.snd.una = ack;
        if self.snd.nxt.lt(ack) {
            self.snd.nxt = ack;
        }
        // RFC 8985 §6.2 step 3: data sent once is acknowledged while data sent after it
        // had already been SACKed — the network reordered it (no retransmission of it is
        // outstanding, or this could be the retransmission arriving).
        if self.sacked.first().is_some_and(|&(l, _)| l.lt(ack)) && self.rxt_ts.is_none() {
            self.reordering_seen = true;
        }
        while self.xmit_log.front().is_some_and(|&(end, _)| end.le(ack)) {
            self.xmit_log.pop_front();
        }
        if self.xmit_log.is_empty() && self.xmit_log.capacity() > 64 {
            self.xmit_log = VecDeque::new();
        }
        self.timers.stop(Timer::Reorder);
        // RFC 6298 with Karn's rule: the one segment per flight timed on our clock (never
        // a retransmitted one) gives a sample when it is acknowledged; otherwise RFC 7323
        // §4 RTTM takes one from the echoed timestamp (as Linux: its own timing first, the
        // TSecr when there is none, which covers flights with retransmissions).
        let mut sample = None;
        if let Some((end, sent)) = self.rtt_sample {
            if ack.ge(end) {
                sample = Some(now.saturating_duration_since(sent));
                self.rtt_sample = None;
            }
        }
        if sample.is_none() {
            sample = tsecr.and_then(|ecr| self.ts_rtt_sample(ecr, now));
        }
        if let Some(rtt) = sample {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
            self.rtt.on_sample(rtt);
            let (srtt, rto) = (self.rtt.srtt().unwrap_or(rtt), self.rtt.rto());
            self.note(|| TcpEventKind::RttSample { rtt, srtt, rto });
        }
        if self.rxt_ts.is_some_and(|(_, end)| ack.ge(end)) {
            // Everything outstanding at the last retransmission is acknowledged.
            self.rxt_ts = None;
        }
        // An ACK of new data ends the backoff. RFC 6298 §5 would keep the backed-off RTO
        // until the next valid sample, and Linux resets `icsk_backoff` only in
        // `tcp_ack_update_rtt` — but Linux samples nearly every ACK, and we time one
        // segment per flight and take a timestamp sample only when that gives none and
        // the echo is not older than our last retransmission (above), so after a loss
        // many ACKs carry no sample, and without timestamps none until the next timed
        // flight. Kept until then, the backoff compounded over successive losses under
        // 10 % loss each way (a 32 MiB GET stalled past the HTTP no-progress timeout);
        // reset here, the RTO goes back to the estimator's value as soon as the path
        // delivers again.
        self.rtt.reset_backoff();
        self.retries = 0;
        // RFC 6298 (5.2), (5.3).
        let rto_at = (self.snd.una != self.snd.max).then(|| now + self.rtt.rto());
        self.timers.put(Timer::Retransmit, rto_at);
        // Progress: the user timeout restarts (RFC 5482).
        self.stall_since = (self.snd.una != self.snd.max).then_some(now);
        // A new ACK ends the tail-loss episode (RFC 8985 §7.3).
        self.tlp_sent = false;
        self.timers.stop(Timer::LossProbe);
        if self.tlp_probe.is_some_and(|p| ack.gt(p)) {
            self.tlp_probe = None;
        }
        // The scoreboard only covers data above SND.UNA.
        self.sacked.retain(|&(_, r)| r.gt(ack));
        if let Some(first) = self.sacked.first_mut() {
            if first.0.lt(ack) {
                first.0 = ack;
            }
        }
        // RFC 3522 Eifel detection: the first ACK after the episode's retransmission
        // echoes a TSval older than it — the original arrived, the retransmission was not
        // needed — so the reduction is undone before this ACK is counted (RFC 4015).
        if self.eifel_says_spurious(tsecr) {
            self.undo_congestion("timestamps", stats);
        }
        let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
        // RFC 7661 §4.1-§4.3: a round trip ends when SND.UNA passes what was sent when it
        // began; pipeACK is the most in flight over the last two. Below half of cwnd the
        // sender is in the non-validated phase, and cwnd does not grow.
        if ack.ge(self.cwv_round_end) {
            self.cwv_flight = (self.cwv_flight.1, flight);
            self.cwv_round_end = self.snd.max;
        }
        let pipe_ack = self.cwv_flight.0.max(self.cwv_flight.1);
        self.cc
            .set_app_limited(pipe_ack.saturating_mul(2) < self.cc.cwnd());
        self.cc.set_clock(now, self.rtt.srtt());
        self.cc.on_round_sample(ack, self.snd.max, sample);
        let was_in_recovery = self.cc.in_recovery();
        let action = if self.state.is_synchronized() {
            self.cc.on_ack(ack, total, flight)
        } else {
            AckAction::None
        };
        if was_in_recovery && !self.cc.in_recovery() && self.reo_wnd_persist > 0 {
            // RFC 8985 §6.2 step 4: a recovery ended; after 16 without a D-SACK the
            // reordering window is back to min_RTT/4.
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
        if action == AckAction::Retransmit && flight > 0 {
            // NewReno partial ACK (RFC 6582 §3.2): retransmit the next hole — unless
            // SACK recovery already resent it this round (then `pipe` decides what goes).
            if !(self.sack_ok && self.high_rxt.gt(ack)) {
                self.retransmit_una = true;
            }
        }
        if self.rto_lost_end.is_some_and(|end| ack.ge(end)) {
            // Everything the timeout found outstanding is acknowledged: RTO recovery ends.
            self.rto_lost_end = None;
        }
        if !self.recovering() {
            self.rxt_log.clear();
            self.timers.stop(Timer::RetransmitOverdue);
            self.lost_again.clear();
            if self.frto.is_none() {
                self.close_episode(ack);
            }
        }
        self.snd_buf_expand(now);
        self.schedule_tlp(now);
    }

    /// Send-buffer autotuning: room for twice the bandwidth-delay product, so that the
    /// application can queue the next window's data while this one is in flight and the
    /// sender is limited by cwnd and the peer's window (RFC 9293 §3.8.6), not by the
    /// buffer. Linux sizes it at 2·cwnd (`tcp_sndbuf_expand`); here the product is the
    /// delivery rate (bytes acknowledged over at least one smoothed RTT) times the
    /// smallest RTT seen, with the growth margin of receive autotuning, and at most
    /// 2·cwnd. On a path of microseconds cwnd grows without bound while the product
    /// stays small, and a ring of megabytes instead of 256 KiB cost a local 256 MiB
    /// download over a third of its rate (the ring no longer fits the caches). The buffer
    /// only grows; its memory is still taken as data is written and given back when
    /// everything is acknowledged.
    fn snd_buf_expand(&mut self, now: Instant) {
        if self.snd_auto_max <= self.send_buf.capacity() {
            return;
        }
        let (Some(srtt), Some(min_rtt)) = (self.rtt.srtt(), self.min_rtt) else {
            return;
        };
        let Some((start_una, start)) = self.snd_rate_start else {
            self.snd_rate_start = Some((self.snd.una, now));
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < srtt || elapsed.is_zero() {
            return;
        }
        self.snd_rate_start = Some((self.snd.una, now));
        let acked = self.snd.una.diff(start_una).max(0) as u64;
        let bdp = (acked as u128 * min_rtt.as_nanos() / elapsed.as_nanos()) as usize;
        let mss = usize::from(self.send_mss);
        let want = (2 * bdp + RCVQ_EXTRA_SEGMENTS * mss)
            .min(2 * self.cc.cwnd() as usize)
            .min(self.snd_auto_max);
        if want > self.send_buf.capacity() {
            log::trace!(
                "{}: send buffer grows to {want} (cwnd {})",
                self.remote,
                self.cc.cwnd()
            );
            self.send_buf.set_capacity(want);
        }
    }

    /// The receiver's RTT (Linux's `tcp_rcv_rtt_measure_ts`): data that echoes a
    /// timestamp we sent answers the ACK that carried it (RFC 7323 §4.3), so our clock now
    /// minus the echo is a round trip as the receiver sees it, even when we send no data
    /// to time. One sample per echoed value, smoothed with gain 1/8 (RFC 6298 §2).
    fn rcv_rtt_measure(&mut self, seg: &Segment, now: Instant) {
        if !self.ts_ok {
            return;
        }
        let Some((_, ecr)) = seg.options.timestamps else {
            return;
        };
        if ecr == 0 || ecr == self.rcv_rtt_ecr {
            return;
        }
        let age = ts_clock(now, self.ts_offset).wrapping_sub(ecr);
        if (age as i32) < 0 || Duration::from_millis(u64::from(age)) > self.rto_max {
            return;
        }
        self.rcv_rtt_ecr = ecr;
        let m = Duration::from_millis(u64::from(age.max(1)));
        self.rcv_rtt = Some(match self.rcv_rtt {
            None => m,
            Some(old) => (old * 7 + m) / 8,
        });
    }

    /// Receive-buffer autotuning (Linux's dynamic right-sizing, `tcp_rcv_space_adjust`):
    /// once per round trip, see how much the application consumed in it; if more than in
    /// the last measured one, size the buffer for twice that plus the growth (a sender in
    /// slow start doubles per round trip) plus some segments, up to `rcv_auto_max`. A slow
    /// reader consumes little and the buffer stays as it is. The buffer never shrinks, so
    /// the right edge of the window already offered never moves left (RFC 9293 §3.8.6);
    /// its memory is still allocated only as data arrives.
    fn rcv_space_adjust(&mut self, now: Instant) {
        let limit = self.rcv_auto_max.min(self.max_rcv_window() as usize);
        if limit <= self.recv_buf.capacity() {
            return;
        }
        // What the application has consumed: everything below RCV.NXT but the unread.
        let copied_seq = self.rcv.nxt - self.recv_buf.readable() as u32;
        let Some((start_seq, start)) = self.rcvq_start else {
            self.rcvq_start = Some((copied_seq, now));
            return;
        };
        // Without timestamps, the RTT our own data measured (if any).
        let Some(rtt) = self.rcv_rtt.or(self.rtt.srtt()) else {
            return;
        };
        if now.saturating_duration_since(start) < rtt {
            return;
        }
        let copied = copied_seq.diff(start_seq).max(0) as usize;
        let space = self.rcvq_space.max(1);
        if copied > space {
            let mss = self.rcv_mss as usize;
            let mut win = 2 * copied + RCVQ_EXTRA_SEGMENTS * mss;
            // Grow faster while the consumption itself grows (Linux's `grow`).
            win += 2 * (win as u64 * (copied - space) as u64 / space as u64) as usize;
            let win = win.min(limit);
            if win > self.recv_buf.capacity() {
                log::trace!(
                    "{}: receive buffer grows to {win} ({copied} bytes read in {rtt:?})",
                    self.remote
                );
                self.recv_buf.grow_capacity(win);
                // The larger window is offered with the next ACK.
                self.maybe_window_update();
            }
            self.rcvq_space = copied;
        }
        self.rcvq_start = Some((copied_seq, now));
    }

    /// Seventh step of §3.10.7.4: the text of a segment already trimmed to the window,
    /// starting at `seq`. Done when the connection was aborted (data nobody will read).
    fn step_text(&mut self, seq: SeqNum, data: &[u8], now: Instant, stats: &mut TcpStats) -> Step {
        if data.is_empty() {
            return GO_ON;
        }
        if self.state.can_receive() && !self.fin_received {
            if self.owner == Owner::Released && self.fin_queued {
                // Nobody will ever read this: tell the peer (Linux does the same for
                // data arriving on an orphaned socket).
                self.abort("data after release");
                stats.resets_sent += 1;
                return DONE;
            }
            let offset = seq.diff(self.rcv.nxt).max(0) as usize;
            let beyond_fin = self
                .peer_fin
                .is_some_and(|f| (seq + data.len() as u32).gt(f));
            if offset > 0 && data.len() > self.ooo_room {
                // The endpoint's budget for out-of-order data across all connections is
                // spent: drop it (RFC 9293 §3.10.7.4 lets a receiver keep only in-order
                // data) and tell the sender what we have; in-order data is never
                // refused for it.
                self.ack_now();
                self.drop_segment(stats, "out-of-order memory budget");
                return GO_ON;
            }
            if !beyond_fin {
                let had_gap = self.recv_buf.has_out_of_order();
                let advanced = self.recv_buf.insert(offset, data);
                if offset > 0 {
                    self.last_ooo = Some((seq, seq + data.len() as u32));
                }
                if advanced > 0 {
                    self.rcv.nxt += advanced as u32;
                    self.changed = true;
                    self.rcv_space_adjust(now);
                }
                if offset > 0 || advanced == 0 || had_gap {
                    // RFC 5681 §4.2: out-of-order data gets an immediate duplicate
                    // ACK, and so does data that fills a gap.
                    self.ack_now();
                } else {
                    self.ack_in_order_data(advanced as u32, now);
                }
            }
        } else {
            // Data after the peer's FIN is ignored (§3.10.7.4, CLOSE-WAIT etc.).
            self.drop_segment(stats, "data after the peer's FIN");
        }
        GO_ON
    }

    /// Eighth step of §3.10.7.4: the FIN of a segment that starts at `seq` with
    /// `data_len` bytes of text, and a FIN held earlier beyond a gap that the text filled.
    fn step_fin(&mut self, seq: SeqNum, data_len: usize, fin: bool, now: Instant) {
        if fin && self.peer_fin.is_none() && self.state.can_receive() {
            self.peer_fin = Some(seq + data_len as u32);
        }
        if let Some(f) = self.peer_fin {
            if !self.fin_received && self.rcv.nxt == f {
                // §3.10.7.4 eighth: the FIN is in order.
                self.rcv.nxt += 1;
                self.fin_received = true;
                self.changed = true;
                self.ack_now();
                match self.state {
                    State::SynReceived | State::Established => {
                        self.set_state(State::CloseWait, "FIN")
                    }
                    State::FinWait1 => {
                        if self.fin_acked {
                            self.enter_time_wait(now, "FIN (with ACK of our FIN)");
                        } else {
                            self.set_state(State::Closing, "FIN");
                        }
                    }
                    State::FinWait2 => self.enter_time_wait(now, "FIN"),
                    _ => {}
                }
            } else if fin && !self.fin_received {
                // FIN beyond a gap: held until the gap fills; duplicate ACK now.
                self.ack_now();
            }
        }
    }

    /// An ICMP error quoted one of our segments with sequence number `seq` (RFC 1122
    /// §4.2.3.9, RFC 5927).
    pub fn on_icmp_error(&mut self, seq: SeqNum, kind: IcmpErrorKind) -> IcmpAction {
        // RFC 5927 §4.1: the quoted segment must be one we sent and that is still
        // unacknowledged, SND.UNA <= SEG.SEQ < SND.MAX, or the message is forged or stale;
        // acting on it would allow blind resets and blind MSS reductions.
        if !(seq.ge(self.snd.una) && seq.lt(self.snd.max)) {
            return IcmpAction::OutOfWindow;
        }
        match kind {
            // RFC 6633: hosts MUST ignore Source Quench.
            IcmpErrorKind::SourceQuench => IcmpAction::Ignored,
            IcmpErrorKind::FragmentationNeeded { next_hop_mtu } => {
                // RFC 1191 §6.1: the next-hop MTU bounds our segments. A 0 MTU (a router
                // older than RFC 1191) or one below MIN_PMTU is clamped; over IPv6 (Packet
                // Too Big) never below the IPv6 minimum link MTU (RFC 8201 §4).
                let (floor, ip_and_tcp) = if self.remote.is_ipv6() {
                    (MIN_PMTU6, 60)
                } else {
                    (MIN_PMTU, 40)
                };
                let mtu = next_hop_mtu.max(floor);
                // The MTU covers the IP and TCP headers and every option: with timestamps
                // negotiated, 12 of the bytes are theirs (RFC 7323 §3.2).
                let options = if self.ts_ok { TS_OPTION_LEN } else { 0 };
                let mss = mtu.saturating_sub(ip_and_tcp + options);
                if mss >= self.send_mss {
                    return IcmpAction::Ignored;
                }
                log::debug!(
                    "{} ↔ {}: path MTU {mtu}: send MSS {} → {mss}",
                    self.local,
                    self.remote,
                    self.send_mss
                );
                self.send_mss = mss;
                self.cc.on_pmtu_change(mss);
                if self.state.is_synchronized() && self.snd.nxt != self.snd.una {
                    // RFC 1191 §6.5: the segment was dropped; send it again now, cut to
                    // the new size (go-back-N from SND.UNA).
                    self.snd.nxt = self.snd.una;
                    self.rtt_sample = None;
                }
                IcmpAction::MssLowered(mss)
            }
            // RFC 1122 §4.2.3.9 says hard errors SHOULD abort; RFC 5927 §5.2 and Linux
            // abort only a connection still in SYN-SENT (nothing has worked yet), since
            // for an established one the message may be forged or the route transient.
            k if k.is_hard() && self.state == State::SynSent => {
                self.fail(Some(TcpError::ConnectionRefused), "ICMP hard error");
                IcmpAction::Aborted
            }
            k => {
                self.soft_error = Some(k);
                self.changed = true;
                IcmpAction::SoftError
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Timeouts (§3.10.8).

    /// Fire whichever timers are due at `now`, in [`Timer::ALL`]'s order.
    pub fn on_timeout(&mut self, now: Instant, stats: &mut TcpStats) {
        // The close timer first: it ends TIME-WAIT or an orphaned FIN-WAIT-2 quietly,
        // where the user timeout would fail the connection with a reset.
        if self.timers.expired(Timer::Close, now) {
            let _ = self.on_timer(Timer::Close, now, stats);
            return;
        }
        if self
            .user_timeout_deadline()
            .is_some_and(|d| d <= now && self.state != State::TimeWait)
        {
            // RFC 5482 / RFC 9293 §3.8.3: sent data went unacknowledged for the user
            // timeout: give up (with a RST if the peer may still hold state).
            stats.timeouts += 1;
            if self.state.is_synchronized() || self.state == State::SynReceived {
                let seq = self.snd.max;
                self.queue_rst(seq, None);
                stats.resets_sent += 1;
            }
            let err =
                (!self.passive || self.state != State::SynReceived).then_some(TcpError::TimedOut);
            self.fail(err, "user timeout");
            return;
        }
        // Each timer is looked at after the ones before it have run: the loss probe
        // re-arms the RTO, and a timer that closed the connection stopped all the others.
        for timer in Timer::ALL {
            if self.timers.expired(timer, now) && self.on_timer(timer, now, stats).is_break() {
                return;
            }
        }
    }

    /// One due timer; [`DONE`] when the connection ended and no other timer may run.
    fn on_timer(&mut self, timer: Timer, now: Instant, stats: &mut TcpStats) -> Step {
        match timer {
            Timer::Close => {
                self.timers.stop(Timer::Close);
                match self.state {
                    State::TimeWait => self.set_state(State::Closed, "2·MSL timeout"),
                    State::FinWait2 => self.set_state(State::Closed, "FIN-WAIT-2 timeout (orphan)"),
                    _ => {}
                }
                DONE
            }
            Timer::DelayedAck => {
                self.timers.stop(Timer::DelayedAck);
                if self.unacked_bytes > 0 {
                    stats.delayed_acks += 1;
                    self.ack_needed = true;
                }
                GO_ON
            }
            Timer::Keepalive => {
                self.timers.stop(Timer::Keepalive);
                self.on_keepalive_timeout(now, stats);
                if self.state == State::Closed {
                    return DONE;
                }
                GO_ON
            }
            // The probe before the RTO: the probe timer may be clamped to the RTO's
            // expiry (RFC 8985 §7.2), and when both are due the probe goes out and the RTO
            // is re-armed one RTO later (RFC 8985 §7.3; Linux's probe timer takes the
            // RTO's place and `tcp_send_loss_probe` re-arms the RTO from the probe).
            Timer::LossProbe => {
                self.timers.stop(Timer::LossProbe);
                if self.snd.una != self.snd.max && !self.cc.in_recovery() && !self.tlp_sent {
                    self.tlp_pending = true;
                    self.tlp_sent = true;
                    self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                    stats.tail_loss_probes += 1;
                }
                GO_ON
            }
            Timer::Retransmit => {
                self.timers.stop(Timer::Retransmit);
                self.on_retransmit_timeout(now, stats);
                GO_ON
            }
            Timer::RetransmitOverdue => {
                self.on_retransmit_overdue(now);
                GO_ON
            }
            Timer::Reorder => {
                self.timers.stop(Timer::Reorder);
                self.on_reorder_timeout(stats);
                GO_ON
            }
            Timer::Persist => {
                // RFC 9293 §3.8.6.1: probe the zero window, back off exponentially. The
                // connection stays open as long as the peer answers the probes; if it
                // stops answering, give up like a retransmission timeout (Linux does the
                // same).
                if self.probes_unanswered >= self.max_retransmits {
                    stats.timeouts += 1;
                    self.fail(Some(TcpError::TimedOut), "zero-window probes unanswered");
                    return DONE;
                }
                self.probe_needed = true;
                self.note(|| TcpEventKind::ZeroWindowProbe);
                self.persist_backoff = (self.persist_backoff + 1).min(16);
                self.timers
                    .set(Timer::Persist, now + self.persist_interval());
                GO_ON
            }
        }
    }

    /// RFC 1122 §4.2.3.6: after `idle` without hearing from the peer, and only while
    /// nothing is outstanding (otherwise retransmissions do the probing), send a probe
    /// with SEG.SEQ = SND.UNA − 1 — an old sequence number the peer must answer with an
    /// ACK. `count` unanswered probes end the connection.
    fn on_keepalive_timeout(&mut self, now: Instant, stats: &mut TcpStats) {
        let Some(k) = self.keepalive else {
            return;
        };
        let idle_state = matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait2
        );
        if !idle_state || self.snd.una != self.snd.max {
            self.ka_probes = 0;
            self.timers.set(Timer::Keepalive, now + k.idle);
            return;
        }
        if self.ka_probes >= k.count {
            stats.timeouts += 1;
            let seq = self.snd.max;
            self.queue_rst(seq, None);
            stats.resets_sent += 1;
            self.fail(Some(TcpError::TimedOut), "keep-alive probes unanswered");
            return;
        }
        self.ka_probes += 1;
        self.ka_probe_due = true;
        stats.keepalive_probes += 1;
        self.timers.set(Timer::Keepalive, now + k.interval);
    }

    fn persist_interval(&self) -> Duration {
        let base = self.rtt.rto();
        let factor = 1u32 << self.persist_backoff.min(16);
        base.saturating_mul(factor).min(Duration::from_secs(60))
    }

    fn on_retransmit_timeout(&mut self, now: Instant, stats: &mut TcpStats) {
        match self.state {
            State::SynSent | State::SynReceived => {
                if self.retries >= self.syn_retries {
                    stats.timeouts += 1;
                    let err = if self.passive {
                        None
                    } else {
                        Some(TcpError::TimedOut)
                    };
                    self.fail(err, "SYN retransmission limit");
                    return;
                }
                self.retries += 1;
                self.rtt.backoff();
                self.rtt_sample = None;
                let (attempt, rto) = (self.retries, self.rtt.rto());
                self.note(|| TcpEventKind::RetransmitTimeout { attempt, rto });
                // Resend the SYN (or SYN-ACK).
                self.snd.nxt = self.snd.iss;
            }
            State::Established
            | State::FinWait1
            | State::CloseWait
            | State::Closing
            | State::LastAck
            | State::FinWait2 => {
                if self.snd.una == self.snd.max {
                    return;
                }
                // The peer closed its window and keeps answering: our retransmissions
                // are window probes, and a live peer that merely does not read must not
                // time the connection out (RFC 9293 §3.8.6.1; Linux does the same).
                let peer_alive = self.send_window() == 0
                    && self.owner != Owner::Released
                    && now.saturating_duration_since(self.last_ack_rx) < self.rto_max;
                if self.retries >= self.max_retransmits && !peer_alive {
                    stats.timeouts += 1;
                    let seq = self.snd.max;
                    self.queue_rst(seq, None);
                    stats.resets_sent += 1;
                    self.fail(Some(TcpError::TimedOut), "retransmission limit");
                    return;
                }
                if !peer_alive {
                    self.retries += 1;
                }
                stats.rto_expirations += 1;
                // RFC 5682 §3.2 step 1: F-RTO, unless the timeout comes during fast
                // recovery or while the conventional recovery of an earlier timeout is
                // still resending (go-back-N without SACK); a timeout during F-RTO starts
                // it again.
                let in_rto_recovery = self.rto_lost_end.is_some()
                    || (!self.sack_ok && self.frto.is_none() && self.snd.nxt.lt(self.snd.max));
                let use_frto = !self.cc.in_recovery() && !in_rto_recovery;
                // A timeout outside any recovery begins a loss episode; one during
                // recovery belongs to the episode in progress (as Linux's
                // `tcp_enter_loss`), whose window before the first reduction is kept.
                let fresh = !(self.recovering() || self.frto.is_some());
                if fresh {
                    self.cc.forget_prior();
                }
                self.begin_episode(fresh);
                // RFC 6298 (5.5): back off; RFC 5681 §3.1: cwnd = 1 MSS,
                // ssthresh = max(flight/2, 2·MSS).
                self.rtt.backoff();
                let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
                self.cc.on_timeout(flight, self.snd.max);
                self.rtt_sample = None;
                self.retransmit_una = false;
                self.frto = None;
                self.frto_sends = 0;
                if use_frto {
                    // RFC 5682 §3.2 step 1: resend the first unacknowledged segment
                    // only; the next two ACKs decide whether the rest is resent.
                    self.frto = Some(Frto::Retransmission(self.snd.max));
                    self.retransmit_una = true;
                } else if self.sack_ok {
                    // RFC 6675 §5.1 allows discarding the scoreboard (a receiver may
                    // renege); like Linux's `tcp_enter_loss` we keep it: everything not
                    // SACKed below SND.MAX is lost and resent as cwnd allows, the SACKed
                    // data never. Every retransmission so far is presumed lost too.
                    self.rto_lost_end = Some(self.snd.max);
                } else {
                    // Without SACK: go-back-N (below).
                    self.sacked.clear();
                }
                self.rxt_log.clear();
                self.timers.stop(Timer::RetransmitOverdue);
                self.lost_again.clear();
                self.timers.stop(Timer::LossProbe);
                self.timers.stop(Timer::Reorder);
                self.tlp_pending = false;
                // No probes during RTO recovery; the next new ACK re-enables them.
                self.tlp_sent = true;
                self.tlp_probe = None;
                self.high_rxt = self.snd.una;
                if !self.sack_ok && !use_frto {
                    self.snd.nxt = self.snd.una;
                }
                let (attempt, rto) = (self.retries, self.rtt.rto());
                self.note(|| TcpEventKind::RetransmitTimeout { attempt, rto });
                log::debug!(
                    "{} ↔ {}: retransmission timeout #{} (rto now {:?})",
                    self.local,
                    self.remote,
                    self.retries,
                    self.rtt.rto()
                );
            }
            _ => {}
        }
    }

    /// Arm the tail loss probe (RFC 8985 §7.2): PTO = 2·SRTT (at least 10 ms), plus a
    /// delayed-ACK allowance when a single segment is outstanding, and never later than
    /// the pending RTO.
    fn schedule_tlp(&mut self, now: Instant) {
        self.timers.stop(Timer::LossProbe);
        let data_state = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        let (Some(srtt), Some(rto_at)) = (self.rtt.srtt(), self.timers.get(Timer::Retransmit))
        else {
            return;
        };
        if !self.tlp_enabled
            || !data_state
            || self.tlp_sent
            || self.cc.in_recovery()
            || self.frto.is_some()
            || self.snd.una == self.snd.max
        {
            return;
        }
        let mut pto = srtt.saturating_mul(2).max(TLP_MIN);
        let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
        if flight <= u32::from(self.send_mss) {
            pto = pto.saturating_add(self.rto_min);
        }
        // RFC 8985 §7.2: PTO = min(PTO, RTO). A probe later than the RTO is armed at the
        // RTO's expiry instead, so the probe (not a timeout and its cwnd collapse) still
        // goes first: with one segment outstanding 2·SRTT plus the delayed-ACK allowance
        // usually exceeds the RTO. An RTO already due keeps its turn (as Linux).
        let at = now + pto;
        self.timers.set(
            Timer::LossProbe,
            if rto_at > now { at.min(rto_at) } else { at },
        );
    }

    // ----------------------------------------------------------------------------------
    // RACK outside recovery (RFC 8985 §6).

    /// Most transmission times remembered; beyond it the last run absorbs new data (so
    /// its time reads older than it was: RACK then errs towards waiting).
    const MAX_XMIT_LOG: usize = 1024;

    fn log_xmit(&mut self, end: SeqNum, now: Instant) {
        if self.xmit_log.len() >= Self::MAX_XMIT_LOG {
            if let Some(last) = self.xmit_log.back_mut() {
                last.0 = end;
            }
            return;
        }
        self.xmit_log.push_back((end, now));
    }

    /// When the data at `seq` was sent (it was sent once), if it is in the log.
    fn xmit_time(&self, seq: SeqNum) -> Option<Instant> {
        let i = self.xmit_log.partition_point(|&(end, _)| end.le(seq));
        self.xmit_log.get(i).map(|&(_, at)| at)
    }

    /// RFC 8985 §6.2 step 4: RACK.reo_wnd. Zero when no reordering has been seen and
    /// DupThresh segments are SACKed already (the RFC 6675 rule would mark the loss
    /// anyway); else reo_wnd_mult · min_RTT/4, at most SRTT.
    fn reo_wnd(&self) -> Option<Duration> {
        let srtt = self.rtt.srtt()?;
        let mss = u32::from(self.send_mss).max(1);
        if !self.reordering_seen && self.sacked_bytes() >= 3 * mss {
            return Some(Duration::ZERO);
        }
        let min_rtt = self.min_rtt.unwrap_or(srtt);
        Some((min_rtt / 4).saturating_mul(self.reo_wnd_mult).min(srtt))
    }

    /// RFC 8985 §6.2 step 5, for SND.UNA outside recovery (in recovery every hole below
    /// the highest SACK is lost already, [`Connection::lost_end`]): RACK.xmit_ts is when
    /// the highest SACKed data was sent, and RACK.rtt = now − RACK.xmit_ts. SND.UNA is
    /// lost when it was sent at least reo_wnd before that (its xmit_ts + RACK.rtt +
    /// reo_wnd ≤ now); sent before it but within reo_wnd, the reordering timer is armed
    /// for the moment that becomes true. Only for data sent once (no retransmission
    /// outstanding): a retransmission's time is not in the log.
    fn rack_una_lost(&mut self, now: Instant) -> bool {
        self.timers.stop(Timer::Reorder);
        if !self.sack_ok || self.cc.in_recovery() || self.rxt_ts.is_some() || self.frto.is_some() {
            return false;
        }
        let Some(&(_, highest)) = self.sacked.last() else {
            return false;
        };
        let (Some(una_at), Some(rack_at), Some(reo)) = (
            self.xmit_time(self.snd.una),
            self.xmit_time(highest - 1),
            self.reo_wnd(),
        ) else {
            return false;
        };
        if rack_at < una_at {
            return false;
        }
        let ahead = rack_at.saturating_duration_since(una_at);
        if ahead >= reo {
            return true;
        }
        self.reorder_una = self.snd.una;
        self.timers.set(Timer::Reorder, now + (reo - ahead));
        false
    }

    /// The reordering timer fired: SND.UNA has not arrived within the reordering window
    /// after data sent later did — RACK marks it lost, and recovery starts as on the
    /// duplicate ACK that proves a loss.
    fn on_reorder_timeout(&mut self, stats: &mut TcpStats) {
        if self.snd.una != self.reorder_una
            || self.snd.una == self.snd.max
            || self.cc.in_recovery()
            || self.rxt_ts.is_some()
            || self.sacked.is_empty()
            || !self.state.is_synchronized()
        {
            return;
        }
        let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
        self.dup_ack_action(flight, 1, false, stats);
    }

    // ----------------------------------------------------------------------------------
    // Spurious retransmissions and undo (RFC 3522, RFC 3708, RFC 4015, RFC 5682).

    /// A loss episode begins (`fresh`: a fast retransmit, or a timeout outside any
    /// recovery), or one in progress goes on (a timeout during recovery).
    fn begin_episode(&mut self, fresh: bool) {
        if fresh || self.undo.is_none() {
            self.undo = Some(UndoEpisode {
                marker: self.snd.una,
                rxt: Vec::new(),
                undo_retrans: 0,
                overflow: false,
                eifel: None,
                eifel_done: false,
                closes_at: None,
            });
        }
    }

    /// Count a retransmission of `seq..end` in the episode, and remember the first one's
    /// TSval for the Eifel test.
    fn episode_retransmitted(&mut self, seq: SeqNum, end: SeqNum, now: Instant) {
        let mss = u32::from(self.send_mss).max(1);
        let tsval = self.ts_ok.then(|| ts_clock(now, self.ts_offset));
        let Some(u) = self.undo.as_mut() else {
            return;
        };
        if seq.lt(u.marker) {
            return;
        }
        if u.rxt.len() < MAX_RXT_LOG {
            u.rxt.push((seq, end));
        } else {
            u.overflow = true;
        }
        let segments = (end.diff(seq).max(1) as u32).div_ceil(mss);
        u.undo_retrans = u.undo_retrans.saturating_add(segments);
        match (u.eifel, tsval) {
            (None, Some(val)) if !u.eifel_done => u.eifel = Some((val, seq, end)),
            // The same segment again (a repeated timeout): the first TSval still tells
            // whether the original arrived.
            (Some((_, s, e)), _) if seq.ge(s) && end.le(e) => {}
            _ => {
                u.eifel = None;
                u.eifel_done = true;
            }
        }
    }

    /// RFC 3522 §3.2: called with the TSecr of each ACK that advances SND.UNA; the first
    /// one after the episode's retransmission decides. True when its echo is older than
    /// the retransmission: the ACK was for the original.
    fn eifel_says_spurious(&mut self, tsecr: Option<u32>) -> bool {
        let Some(u) = self.undo.as_mut() else {
            return false;
        };
        let (Some((stamp, _, _)), false) = (u.eifel, u.eifel_done) else {
            return false;
        };
        u.eifel_done = true;
        u.eifel = None;
        tsecr.is_some_and(|ecr| ecr != 0 && (ecr.wrapping_sub(stamp) as i32) < 0)
    }

    /// A D-SACK block reported `l..r` received twice (RFC 2883). RFC 3708 §3: when
    /// D-SACKs have reported every retransmission of the episode, each was a duplicate of
    /// a segment that had arrived — the episode was spurious. A duplicate of data we never
    /// resent (the network duplicated it) proves nothing and is not counted.
    fn on_dsack(&mut self, (l, r): (SeqNum, SeqNum), stats: &mut TcpStats) {
        stats.dsacks_received += 1;
        // RFC 8985 §6.2 step 4: a D-SACK widens the reordering window by min_RTT/4,
        // once per round trip, and keeps it for 16 recoveries.
        if self
            .reo_dsack_round
            .is_none_or(|round| self.snd.una.ge(round))
        {
            self.reo_dsack_round = Some(self.snd.max);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = 16;
        }
        let mss = u32::from(self.send_mss).max(1);
        let Some(u) = self.undo.as_mut() else {
            return;
        };
        // The part of l..r that was retransmitted (the union of the ranges it overlaps).
        let mut parts: Vec<(SeqNum, SeqNum)> = u
            .rxt
            .iter()
            .filter(|&&(s, e)| s.lt(r) && e.gt(l))
            .map(|&(s, e)| (s.max(l), e.min(r)))
            .collect();
        if parts.is_empty() {
            return;
        }
        parts.sort_by(|a, b| a.0.diff(b.0).cmp(&0));
        let (mut covered, mut reach) = (0u32, parts[0].0);
        for (s, e) in parts {
            let from = s.max(reach);
            if e.gt(from) {
                covered += e.diff(from) as u32;
                reach = e;
            }
        }
        let segments = covered.max(1).div_ceil(mss);
        u.undo_retrans = u.undo_retrans.saturating_sub(segments);
        if u.undo_retrans == 0 && !u.overflow {
            self.undo_congestion("D-SACK", stats);
        }
    }

    /// The episode's retransmissions were all spurious: undo the window reduction (RFC
    /// 4015 §3, via the controller) and the recovery it started. What was marked lost is
    /// in flight after all, transmission resumes with new data (RFC 4015 §3 (6): SND.NXT
    /// = SND.MAX rather than go-back-N), and a timeout's backoff is dropped.
    fn undo_congestion(&mut self, how: &'static str, stats: &mut TcpStats) {
        self.undo = None;
        self.frto = None;
        self.frto_sends = 0;
        if !self.cc.undo() {
            return;
        }
        stats.undos += 1;
        // A spurious retransmission means the network reordered or delayed (RACK).
        self.reordering_seen = true;
        self.rto_lost_end = None;
        self.rxt_log.clear();
        self.timers.stop(Timer::RetransmitOverdue);
        self.lost_again.clear();
        self.retransmit_una = false;
        if self.snd.nxt.lt(self.snd.max) {
            self.snd.nxt = self.snd.max;
        }
        self.rtt.reset_backoff();
        self.retries = 0;
        // Probes were off for the timeout's recovery; it is over.
        self.tlp_sent = false;
        let cwnd = self.cc.cwnd();
        self.note(|| TcpEventKind::Undo { how, cwnd });
        log::debug!(
            "{} ↔ {}: spurious retransmission ({how}): window reduction undone, cwnd {cwnd}",
            self.local,
            self.remote
        );
    }

    /// Recovery is over: the episode stays open for the D-SACKs of its last
    /// retransmissions, which follow the ACK that ended it, until an ACK passes what had
    /// been sent then. After that nothing can undo it.
    fn close_episode(&mut self, ack: SeqNum) {
        let max = self.snd.max;
        let Some(u) = self.undo.as_mut() else {
            return;
        };
        match u.closes_at {
            None => u.closes_at = Some(max),
            Some(end) if ack.gt(end) => {
                self.undo = None;
                self.cc.forget_prior();
            }
            Some(_) => {}
        }
    }

    /// F-RTO (RFC 5682 §3.2, with SACK; §2 without) on an ACK after a timeout.
    fn frto_on_ack(
        &mut self,
        step: Frto,
        acked_new: bool,
        newly_sacked: bool,
        dup_ack: bool,
        stats: &mut TcpStats,
    ) {
        match step {
            Frto::Retransmission(rp) => {
                // Step 2: duplicate ACKs only update the scoreboard.
                if !acked_new {
                    return;
                }
                if self.snd.una.ge(rp) {
                    // (a) Everything outstanding at the timeout is acknowledged: nothing
                    // is left to decide or to resend.
                    self.frto = None;
                    return;
                }
                // (b) Send up to two new segments — if any can go; if not, the
                // conventional recovery goes on.
                let in_flight = self.snd.nxt.diff(self.snd.una).max(0) as u32;
                let unsent = self.data_end().diff(self.snd.nxt) > 0;
                if unsent && self.snd.nxt == self.snd.max && self.send_window() > in_flight {
                    self.frto = Some(Frto::NewData(rp));
                    self.frto_sends = 2;
                } else {
                    self.frto_conventional(rp, None);
                }
            }
            Frto::NewData(rp) => {
                if acked_new || newly_sacked {
                    // (b) The ACK covers data below RecoveryPoint that was never
                    // resent: the originals arrived, the timeout was spurious. Normal
                    // transmission goes on, with the window from before it.
                    stats.spurious_rtos += 1;
                    self.frto = None;
                    self.frto_sends = 0;
                    self.undo_congestion("F-RTO", stats);
                } else if dup_ack {
                    // (a) Only the new segments arrived: the timeout was genuine.
                    let three = self.cc.mss().saturating_mul(3);
                    self.frto_conventional(rp, Some(three));
                }
                // Any other ACK (a window update) is ignored.
            }
        }
    }

    /// F-RTO found no sign of a spurious timeout: the conventional RTO recovery resends
    /// everything below RecoveryPoint that is not SACKed (with cwnd at most `cap`).
    fn frto_conventional(&mut self, rp: SeqNum, cap: Option<u32>) {
        self.frto = None;
        self.frto_sends = 0;
        if let Some(cap) = cap {
            self.cc.limit_cwnd(cap);
        }
        if self.sack_ok {
            self.rto_lost_end = Some(rp);
            self.high_rxt = self.high_rxt.max(self.snd.una);
        } else {
            self.snd.nxt = self.snd.una;
        }
    }

    /// Bytes the scoreboard shows SACKed below `end`.
    fn sacked_below(&self, end: SeqNum) -> u32 {
        self.sacked
            .iter()
            .filter(|&&(l, _)| l.lt(end))
            .map(|&(l, r)| r.min(end).diff(l).max(0) as u32)
            .sum()
    }

    // ----------------------------------------------------------------------------------
    // SACK scoreboard (RFC 2018, RFC 6675).

    /// Add the peer's SACK blocks to the scoreboard; blocks outside (SND.UNA, SND.MAX]
    /// are ignored (old, D-SACK, or bogus).
    fn merge_sack(&mut self, blocks: &[(SeqNum, SeqNum)]) {
        for &(l, r) in blocks {
            if !(l.lt(r) && l.gt(self.snd.una) && r.le(self.snd.max)) {
                continue;
            }
            let mut new = (l, r);
            let mut out = Vec::with_capacity(self.sacked.len() + 1);
            let mut placed = false;
            for &(a, b) in &self.sacked {
                if b.lt(new.0) {
                    out.push((a, b));
                } else if new.1.lt(a) {
                    if !placed {
                        out.push(new);
                        placed = true;
                    }
                    out.push((a, b));
                } else {
                    // Overlapping or touching: merge.
                    new = (a.min(new.0), b.max(new.1));
                }
            }
            if !placed {
                out.push(new);
            }
            out.truncate(MAX_SCOREBOARD);
            self.sacked = out;
        }
    }

    /// The peer's window measured from SND.UNA. The window was advertised relative to
    /// the ACK it came with (SND.WL2), so the right edge is SND.WL2 + SND.WND; when a later
    /// ACK advances SND.UNA without passing the window-update test (an older SEG.SEQ), the
    /// edge must not slide right with it.
    fn send_window(&self) -> u32 {
        (self.snd.wl2 + self.snd.wnd).diff(self.snd.una).max(0) as u32
    }

    /// TSO: how many bytes of new data to send at SND.NXT as one super-segment, and the
    /// payload of each wire segment (`gso_size`), when more than one wire segment's worth
    /// may go now; `None` for an ordinary segment. `room` is what the usable window
    /// (min(SND.WND, cwnd) less the data in flight, RFC 5681 §3.1) lets out of the
    /// `unsent` bytes.
    ///
    /// Every piece the device cuts repeats our header and options, so a piece carries the
    /// send MSS less the SACK option (the timestamps are already out of the MSS): the
    /// same segments the wire would see without TSO. Only whole pieces go, except at the
    /// end of the queued data when a short segment could go on its own now (RFC 1122
    /// §4.2.3.4 Nagle, RFC 9293 §3.8.6.2.1 sender SWS avoidance: Nagle off, the FIN
    /// follows, or nothing in flight), as Linux's `tcp_mss_split_point` does.
    /// Retransmissions (go-back-N after a timeout included) go one MSS at a time.
    fn super_segment_len(
        &self,
        tso: Option<usize>,
        room: usize,
        unsent: usize,
        in_flight: u32,
    ) -> Option<(usize, usize)> {
        let limit = tso?;
        if self.snd.nxt.lt(self.snd.max) {
            return None;
        }
        let piece = self.piece_len();
        let ts = if self.ts_ok {
            usize::from(TS_OPTION_LEN)
        } else {
            0
        };
        let header = 20 + ts + self.sack_option_len();
        let room = room.min(limit.saturating_sub(header));
        let full = room / piece * piece;
        let tail_ok = room == unsent && (self.nodelay || self.fin_queued || in_flight == 0);
        let total = if tail_ok { room } else { full };
        (total > piece).then_some((total, piece))
    }

    /// Bytes the scoreboard says the peer holds above SND.UNA.
    fn sacked_bytes(&self) -> u32 {
        self.sacked
            .iter()
            .map(|&(l, r)| r.diff(l).max(0) as u32)
            .sum()
    }

    /// Merge the segment's SACK blocks and decide whether it is a duplicate ACK: RFC 5681
    /// §2 (no data, same window, ...) or, with SACK, RFC 6675 §2 — any ACK whose SACK
    /// blocks report octets not SACKed before, whatever its window says. The caller
    /// passes `no_data` false for an ACK carrying a D-SACK: it reports a segment that
    /// arrived twice, not one that went missing (as Linux's `FLAG_DSACKING_ACK`).
    fn is_duplicate_ack(&mut self, seg: &Segment, no_data: bool, old_wnd: u32) -> bool {
        let classic = no_data && !seg.flags.fin && self.seg_window(seg) == old_wnd && old_wnd > 0;
        if !self.sack_ok {
            return classic;
        }
        let before = self.sacked_bytes();
        self.merge_sack(&seg.options.sack_blocks);
        classic || self.sacked_bytes() > before
    }

    /// Remember a retransmission sent during SACK recovery.
    fn note_rxt(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        if self.sack_ok && self.recovering() && self.rxt_log.len() < MAX_RXT_LOG {
            self.rxt_log.push((start, end, self.snd.max, now));
            if self.timers.get(Timer::RetransmitOverdue).is_none() {
                self.timers
                    .set(Timer::RetransmitOverdue, now + self.rxt_timeout());
            }
        }
    }

    /// How long a retransmission may go unanswered before it is presumed lost.
    fn rxt_timeout(&self) -> Duration {
        match self.rtt.srtt() {
            Some(srtt) => srtt.saturating_mul(2).max(TLP_MIN),
            None => self.rtt.rto(),
        }
    }

    /// The retransmission timer of recovery fired: overdue retransmissions are lost.
    fn on_retransmit_overdue(&mut self, now: Instant) {
        self.timers.stop(Timer::RetransmitOverdue);
        if !self.cc.in_recovery() {
            // After a timeout the retransmission timer itself says when a
            // retransmission is overdue (RFC 6298 (5.5) backoff); outside recovery
            // there is nothing to sweep.
            if !self.recovering() {
                self.rxt_log.clear();
            }
            return;
        }
        let timeout = self.rxt_timeout();
        self.sweep_retransmissions(|_, at| at + timeout <= now);
        let overdue_at = self.rxt_log.iter().map(|&(_, _, _, at)| at + timeout).min();
        self.timers.put(Timer::RetransmitOverdue, overdue_at);
    }

    /// Find retransmissions that were lost again: data sent after them has been SACKed
    /// while they are neither acknowledged nor SACKed.
    fn detect_lost_retransmissions(&mut self) {
        let Some(&(_, highest)) = self.sacked.last() else {
            return;
        };
        self.sweep_retransmissions(|mark, _| highest.gt(mark));
    }

    /// Walk the log of retransmissions: forget the ones acknowledged or SACKed since, and
    /// move those that `is_lost(SND.MAX when sent, when sent)` judges lost to
    /// `lost_again`, to be sent once more.
    fn sweep_retransmissions(&mut self, is_lost: impl Fn(SeqNum, Instant) -> bool) {
        let una = self.snd.una;
        let sacked = &self.sacked;
        let mut lost = Vec::new();
        self.rxt_log.retain(|&(s, e, mark, at)| {
            if e.le(una) {
                return false;
            }
            let from = s.max(una);
            if sacked.iter().any(|&(l, r)| l.le(from) && r.ge(e)) {
                return false;
            }
            if is_lost(mark, at) {
                lost.push((from, e));
                return false;
            }
            true
        });
        self.lost_again.extend(lost);
    }

    /// RFC 7323 §4.1 RTTM: the round-trip time from the TSecr of an ACK that advances
    /// SND.UNA (the caller's condition: App. G, so that a duplicate or window-update ACK
    /// echoing an old segment is not taken). `None` for an echo of 0 (nothing to echo),
    /// from the future, or older than our last retransmission of data this ACK may cover:
    /// then the echo belongs to an earlier transmission and the time since it includes
    /// the recovery (App. G; Karn's ambiguity, resolved by the timestamp only when the
    /// echo is of the retransmission itself).
    fn ts_rtt_sample(&self, ecr: u32, now: Instant) -> Option<Duration> {
        if ecr == 0 {
            return None;
        }
        if let Some((rxt_val, _)) = self.rxt_ts {
            if (ecr.wrapping_sub(rxt_val) as i32) < 0 {
                return None;
            }
        }
        let age = ts_clock(now, self.ts_offset).wrapping_sub(ecr);
        if (age as i32) < 0 || Duration::from_millis(u64::from(age)) > self.rto_max {
            return None;
        }
        Some(Duration::from_millis(u64::from(age)))
    }

    /// In fast recovery (with SACK) or in recovery from a timeout.
    fn recovering(&self) -> bool {
        self.cc.in_recovery() || self.rto_lost_end.is_some()
    }

    /// Everything not SACKed below this sequence number is lost. After a timeout, all
    /// that was outstanding then (`rto_lost_end`). In fast recovery, every hole below the
    /// highest SACKed range: its data was sent before data that has arrived, which is
    /// RACK's test (RFC 8985 §6.2) with the reordering window it uses in recovery when
    /// no reordering has been seen, zero (we do not detect reordering). That includes
    /// every hole RFC 6675 §4 IsLost marks (DupThresh SACKed ranges or more than
    /// (DupThresh − 1)·SMSS SACKed bytes above), and with the small windows of a lossy
    /// path, where three segments rarely follow a hole, it is what keeps recovery going
    /// without a timeout. Outside recovery nothing is lost yet (the duplicate ACKs
    /// decide).
    fn lost_end(&self) -> SeqNum {
        let una = self.snd.una;
        let mut end = una;
        if self.cc.in_recovery() {
            if let Some(&(l, _)) = self.sacked.last() {
                end = l;
            }
        }
        if let Some(rto_end) = self.rto_lost_end {
            end = end.max(rto_end);
        }
        end.max(una)
    }

    /// RFC 6675 §4 SetPipe: the bytes the scoreboard says are still in the network —
    /// every byte between SND.UNA and SND.MAX that is neither SACKed nor lost, plus the
    /// retransmissions of this recovery not yet known to have arrived or been lost again.
    fn pipe(&self) -> u32 {
        let (una, max) = (self.snd.una, self.snd.max);
        let lost = self.lost_end();
        let mut pipe = 0u32;
        let mut at = una;
        for &(l, r) in self.sacked.iter().chain(std::iter::once(&(max, max))) {
            if at.lt(l) {
                // The hole [at, l): the part at or above the lost boundary is in flight.
                let from = at.max(lost).min(l);
                pipe = pipe.saturating_add(l.diff(from).max(0) as u32);
            }
            at = at.max(r);
        }
        for &(start, end, _, _) in &self.rxt_log {
            pipe = pipe.saturating_add(end.diff(start.max(una)).max(0) as u32);
        }
        pipe
    }

    /// The next hole to retransmit (RFC 6675 §4 NextSeg rule 1): at or after
    /// max(HighRxt, SND.UNA), not SACKed, lost (below [`Connection::lost_end`]); at
    /// most `mss` bytes, and never into SACKed data.
    fn next_hole(&self, mss: u32) -> Option<(SeqNum, u32)> {
        let lost = self.lost_end();
        let mut start = self.high_rxt.max(self.snd.una);
        for &(l, r) in self.sacked.iter().chain(std::iter::once(&(lost, lost))) {
            if !start.lt(lost) {
                return None;
            }
            if r.le(start) {
                continue;
            }
            if start.lt(l) {
                let end = l.min(lost);
                let len = (end.diff(start).max(0) as u32).min(mss);
                return (len > 0).then_some((start, len));
            }
            start = r;
        }
        None
    }

    /// How many bytes from `start` (at most `len`) may be resent without touching data
    /// the peer SACKed (RFC 6675: SACKed data is never retransmitted).
    fn unsacked_len(&self, start: SeqNum, len: usize) -> usize {
        match self.sacked.iter().find(|&&(_, r)| r.gt(start)) {
            Some(&(l, _)) if l.le(start) => 0,
            Some(&(l, _)) => len.min(l.diff(start).max(0) as usize),
            None => len,
        }
    }

    /// Room for a segment of `len` bytes in recovery: RFC 6675 §5 (C), cwnd − pipe must
    /// be at least one SMSS (or the whole of a shorter segment).
    fn pipe_allows(&self, len: usize) -> bool {
        let room = self.cc.cwnd().saturating_sub(self.pipe()) as usize;
        room >= len.min(usize::from(self.send_mss)).max(1)
    }

    // ----------------------------------------------------------------------------------
    // Output.

    /// Sequence number of the first data byte in the send buffer.
    fn data_start(&self) -> SeqNum {
        if self.syn_acked {
            self.snd.una
        } else {
            self.snd.una + 1
        }
    }

    /// Sequence number just past the last queued data byte (where our FIN goes).
    fn data_end(&self) -> SeqNum {
        self.data_start() + self.send_buf.len() as u32
    }

    fn base_segment(&mut self, seq: SeqNum, flags: Flags) -> Segment {
        let window = self.advertise_window(flags.syn);
        let mut options = TcpOptions::default();
        if flags.ack && self.sends_sack() {
            options.sack_blocks = self.sack_blocks();
            // RFC 2883 §4: a D-SACK block is reported once.
            self.dsack = None;
        }
        if self.ts_ok {
            // RFC 7323 §3.2: once negotiated, TSopt goes on every segment but RSTs;
            // TSecr echoes TS.Recent.
            options.timestamps = Some((ts_clock(self.clock, self.ts_offset), self.ts_recent));
        }
        if flags.ack {
            self.last_ack_sent = self.rcv.nxt;
        }
        Segment {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: if flags.ack { self.rcv.nxt } else { SeqNum(0) },
            flags,
            window,
            urgent: 0,
            options,
            payload: Vec::new(),
        }
    }

    /// Remember a duplicate range for the D-SACK block of the next ACK (RFC 2883), if
    /// SACK is in effect, and have that ACK leave with this batch, not after the
    /// delayed-ACK timer (a duplicate means our ACK was lost or the peer retransmitted
    /// needlessly: either way it wants to hear from us).
    fn note_dsack(&mut self, start: SeqNum, end: SeqNum) {
        if self.sack_ok && start.lt(end) {
            self.dsack = Some((start, end));
            self.ack_needed = true;
        }
    }

    /// Whether our next ACK carries SACK blocks: out-of-order data held, or a D-SACK.
    fn sends_sack(&self) -> bool {
        self.sack_ok && (self.recv_buf.has_out_of_order() || self.dsack.is_some())
    }

    /// Bytes the SACK option will take on our next segment (0 when none is sent): two
    /// NOPs, kind and length, then 8 bytes a block, as many as fit beside timestamps in
    /// the 40 bytes of option space (RFC 2018 §3) — the same rule `TcpOptions::encode` uses.
    fn sack_option_len(&self) -> usize {
        if !self.sends_sack() {
            return 0;
        }
        let used = if self.ts_ok {
            usize::from(TS_OPTION_LEN)
        } else {
            0
        };
        let blocks = (self.recv_buf.out_of_order_count() + usize::from(self.dsack.is_some()))
            .min(MAX_SACK_BLOCKS)
            .min(40usize.saturating_sub(used + 4) / 8);
        if blocks == 0 {
            0
        } else {
            4 + 8 * blocks
        }
    }

    /// SACK blocks for the out-of-order data we hold (RFC 2018 §4): the block holding the
    /// most recently received segment first, then the others in sequence order.
    fn sack_blocks(&self) -> Vec<(SeqNum, SeqNum)> {
        let nxt = self.rcv.nxt;
        let mut blocks: Vec<(SeqNum, SeqNum)> = self
            .recv_buf
            .out_of_order_iter()
            .map(|(a, b)| (nxt + a as u32, nxt + b as u32))
            .collect();
        if let Some((l, _)) = self.last_ooo {
            if let Some(i) = blocks.iter().position(|&(a, b)| l.ge(a) && l.lt(b)) {
                let first = blocks.remove(i);
                blocks.insert(0, first);
            }
        }
        if let Some(dup) = self.dsack {
            // RFC 2883 §4: the D-SACK block goes first.
            blocks.insert(0, dup);
        }
        blocks.truncate(MAX_SACK_BLOCKS);
        blocks
    }

    /// A segment with up to `max_len` bytes of data starting at `seq`, plus our FIN if
    /// it directly follows and has been queued.
    fn data_segment(&mut self, seq: SeqNum, max_len: usize) -> Outgoing {
        // The send MSS already leaves room for timestamps; SACK blocks riding on a data
        // segment take option space too, and the packet must still fit the path's MTU
        // (RFC 9293 §3.7.1: the MSS counts data only, options come out of it).
        let max_len = max_len.min(self.piece_len());
        self.data_run(seq, max_len)
    }

    /// Payload bytes of one wire segment now: the send MSS less the SACK option (the
    /// timestamps are already out of the send MSS). A super-segment's `gso_size`.
    fn piece_len(&self) -> usize {
        usize::from(self.send_mss)
            .saturating_sub(self.sack_option_len())
            .max(1)
    }

    /// A segment with up to `max_len` bytes of data starting at `seq` (a super-segment
    /// when that is more than one wire segment's worth), plus our FIN if it directly
    /// follows and has been queued.
    fn data_run(&mut self, seq: SeqNum, max_len: usize) -> Outgoing {
        let offset = seq.diff(self.data_start()).max(0) as usize;
        let avail = self.send_buf.len().saturating_sub(offset);
        let n = max_len.min(avail);
        let end = seq + n as u32;
        let fin = self.fin_queued && !self.fin_acked && end == self.data_end();
        let flags = Flags {
            ack: true,
            psh: n > 0 && end == self.data_end(),
            fin,
            ..Flags::default()
        };
        Outgoing {
            segment: self.base_segment(seq, flags),
            data_offset: offset,
            data_len: n,
            gso_size: 0,
        }
    }

    /// Append the payload of a segment this connection just returned from
    /// [`Connection::poll_transmit`] (its `data_offset` and `data_len`) to `packet`,
    /// straight from the send buffer.
    pub fn write_payload(&self, offset: usize, len: usize, packet: &mut Vec<u8>) {
        self.send_buf.extend_into(offset, len, packet);
    }

    /// The payload of a segment this connection just returned from
    /// [`Connection::poll_transmit`], as the (at most two) pieces of the send buffer it
    /// lies in, without copying.
    pub fn payload_slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        self.send_buf.slices(offset, len)
    }

    /// Note that a segment covering `[seq, seq+len)` went out.
    fn on_sent(&mut self, seq: SeqNum, len: u32, now: Instant, stats: &mut TcpStats) {
        let end = seq + len;
        if len > 0 {
            let new_data = seq.ge(self.snd.max);
            if seq.lt(self.snd.max) {
                // Anything below SND.MAX has been sent before: a retransmission, so
                // (Karn) it cannot be timed, and any pending sample is ambiguous.
                stats.retransmits += 1;
                self.note(|| TcpEventKind::Retransmission { seq, len });
                // (Kept without timestamps too: it also says that a retransmission is
                // outstanding, which RACK needs to know.)
                self.rxt_ts = Some((ts_clock(now, self.ts_offset), self.snd.max));
                self.episode_retransmitted(seq, end, now);
                if self.rtt_sample.is_some_and(|(e, _)| e.gt(seq)) {
                    self.rtt_sample = None;
                }
            } else if self.rtt_sample.is_none() {
                self.rtt_sample = Some((end, now));
            }
            if new_data {
                self.last_data_sent = now;
                self.log_xmit(end, now);
            }
            let flight = end.max(self.snd.max).diff(self.snd.una).max(0) as u32;
            self.cwv_flight.1 = self.cwv_flight.1.max(flight);
            if end.gt(self.snd.max) {
                self.snd.max = end;
            }
            // RFC 6298 (5.1): start the timer if it is not running.
            if self.timers.get(Timer::Retransmit).is_none() {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            // RFC 8985 §7.2: (re)start the probe timer after sending new data — on every
            // new segment, so that the PTO reflects the whole flight (a single segment
            // adds the delayed-ACK allowance) and counts from the last transmission.
            if new_data {
                self.schedule_tlp(now);
            }
        }
        if len > 0 && self.stall_since.is_none() {
            self.stall_since = Some(now);
        }
        // Every segment carries the current ACK.
        self.ack_needed = false;
        self.acks_owed = self.acks_owed.saturating_sub(1);
        self.timers.stop(Timer::DelayedAck);
        self.unacked_bytes = 0;
    }

    /// The next segment this connection wants to send, if any. With `tso` (the most
    /// bytes of TCP header and payload one super-segment may carry) new data may leave as
    /// a super-segment for the device to cut into wire segments.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        tso: Option<usize>,
    ) -> Option<Outgoing> {
        self.clock = now;
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => {
                self.poll_handshake(now, stats).map(Outgoing::control)
            }
            _ => self.poll_synchronized(now, stats, tso),
        }
    }

    fn poll_handshake(&mut self, now: Instant, stats: &mut TcpStats) -> Option<Segment> {
        let syn_due = self.snd.nxt == self.snd.iss;
        let ack_due = self.state == State::SynReceived && (self.ack_needed || self.acks_owed > 0);
        if !syn_due && !ack_due {
            return None;
        }
        let flags = Flags {
            syn: true,
            ack: self.state == State::SynReceived,
            ..Flags::default()
        };
        let iss = self.snd.iss;
        let mut seg = self.base_segment(iss, flags);
        // RFC 9293 §3.7.1: announce our MSS on the SYN. RFC 2018 §2: offer SACK on a
        // SYN, and accept it on the SYN-ACK only if the peer offered it.
        seg.options.mss = Some(self.local_mss);
        seg.options.sack_permitted = self.state == State::SynSent || self.sack_ok;
        // RFC 7323 §3.2: offer TSopt on the SYN (TSecr 0); the SYN-ACK carries it only if
        // the SYN did (base_segment adds it then).
        if self.state == State::SynSent && self.ts_offer {
            seg.options.timestamps = Some((ts_clock(now, self.ts_offset), 0));
        }
        // RFC 7323 §2.2: offer window scaling on a SYN; answer it on the SYN-ACK.
        seg.options.window_scale = if self.state == State::SynSent {
            self.wscale_offer
        } else if self.wscale_ok {
            Some(self.rcv_wscale)
        } else {
            None
        };
        self.snd.nxt = iss + 1;
        self.on_sent(iss, 1, now, stats);
        Some(seg)
    }

    fn poll_synchronized(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        tso: Option<usize>,
    ) -> Option<Outgoing> {
        let mss = usize::from(self.send_mss);

        // RFC 5681 §4.1: after an idle period longer than the RTO the ACK clock is gone,
        // and a window learned long ago may not fit the network any more: new data
        // starts from at most the initial window again (Linux: `tcp_cwnd_restart`).
        if self.snd.una == self.snd.max
            && self.data_end().gt(self.snd.nxt)
            && now.saturating_duration_since(self.last_data_sent) > self.rtt.rto()
        {
            self.cc.restart_after_idle();
        }

        // Fast retransmit / partial ACK: one segment at SND.UNA (RFC 5681 §3.2, RFC 6582).
        if self.retransmit_una {
            self.retransmit_una = false;
            if self.snd.una != self.snd.max {
                let una = self.snd.una;
                // Never beyond SND.MAX: the original segment may have been shorter
                // (window-limited), and bytes never sent are new data, not a retransmission.
                let sent = self.snd.max.diff(una).max(0) as usize;
                let seg = self.data_segment(una, self.unsacked_len(una, mss.min(sent)));
                let len = seg.seg_len();
                if len > 0 {
                    self.on_sent(una, len, now, stats);
                    // Don't let SND.NXT fall behind what this segment covered.
                    if self.snd.nxt.lt(una + len) {
                        self.snd.nxt = una + len;
                    }
                    self.high_rxt = self.high_rxt.max(una + len);
                    self.note_rxt(una, una + len, now);
                    return Some(seg);
                }
            }
        }

        // Retransmissions that were lost again (see `rxt_log`), first among the holes but
        // paced like them by cwnd − pipe (RFC 6675 §5 (C)): a burst of them would only
        // be lost again.
        while let Some((start, end)) = self.lost_again.pop_front() {
            if end.le(self.snd.una) {
                continue;
            }
            let start = start.max(self.snd.una);
            let len = (end.diff(start).max(0) as usize)
                .min(mss)
                .min(self.snd.max.diff(start).max(0) as usize);
            let len = self.unsacked_len(start, len);
            if len == 0 {
                continue;
            }
            if !self.pipe_allows(len) {
                self.lost_again.push_front((start, end));
                break;
            }
            let seg = self.data_segment(start, len);
            let seg_len = seg.seg_len();
            if seg_len == 0 {
                continue;
            }
            self.on_sent(start, seg_len, now, stats);
            stats.lost_retransmits += 1;
            self.note_rxt(start, start + seg_len, now);
            return Some(seg);
        }

        // Tail loss probe (RFC 8985 §7.3): one new segment if the peer's window allows
        // it (cwnd and Nagle do not apply), else resend the last segment, so that its ACK
        // (or SACK) reveals a tail loss without waiting for the RTO.
        if self.tlp_pending {
            self.tlp_pending = false;
            let nxt = self.snd.nxt;
            let in_flight = nxt.diff(self.snd.una).max(0) as u32;
            let unsent = self.data_end().diff(nxt).max(0) as usize;
            let len = unsent.min(mss).min(self.piece_len());
            if nxt == self.snd.max
                && len > 0
                && in_flight.saturating_add(len as u32) <= self.send_window()
            {
                let seg = self.data_segment(nxt, len);
                let seg_len = seg.seg_len();
                self.snd.nxt = nxt + seg_len;
                self.on_sent(nxt, seg_len, now, stats);
                self.tlp_probe = Some(nxt);
                // RFC 8985 §7.3: re-arm the RTO after the probe.
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                return Some(seg);
            }
            if self.snd.una != self.snd.max {
                let fin_sent = self.fin_queued && self.snd.max.gt(self.data_end());
                let data_max = if fin_sent {
                    self.snd.max - 1
                } else {
                    self.snd.max
                };
                let start = (data_max - u32::from(self.send_mss)).max(self.snd.una);
                let len = (data_max.diff(start).max(0) as usize).min(mss);
                let seg = self.data_segment(start, len);
                let seg_len = seg.seg_len();
                if seg_len > 0 {
                    self.on_sent(start, seg_len, now, stats);
                    self.tlp_probe = Some(start);
                    // RFC 8985 §7.3: re-arm the RTO after the probe.
                    self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                    return Some(seg);
                }
            }
        }

        // SACK loss recovery (RFC 6675 §5 (C)): while cwnd − pipe leaves room for a
        // segment, resend the next lost hole (NextSeg rule 1) — in fast recovery and after
        // a timeout alike, never SACKed data; then new data (rule 2, below).
        if self.sack_ok && self.recovering() {
            if let Some((start, len)) = self
                .next_hole(u32::from(self.send_mss))
                .filter(|&(_, len)| self.pipe_allows(len as usize))
            {
                let seg = self.data_segment(start, len as usize);
                let seg_len = seg.seg_len();
                if seg_len > 0 {
                    self.on_sent(start, seg_len, now, stats);
                    self.high_rxt = self.high_rxt.max(start + seg_len);
                    self.note_rxt(start, start + seg_len, now);
                    if self.snd.nxt.lt(start + seg_len) {
                        self.snd.nxt = start + seg_len;
                    }
                    return Some(seg);
                }
            }
        }

        // New data (or data again after a timeout) within min(SND.WND, cwnd).
        let may_send_data = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        if may_send_data {
            let in_flight = self.snd.nxt.diff(self.snd.una).max(0) as u32;
            // RFC 3042 limited transmit: the first two duplicate ACKs each let one new
            // segment out beyond cwnd (but never beyond the peer's window). In SACK
            // recovery RFC 6675 §5 (C) counts `pipe` against cwnd instead of everything
            // sent: lost and SACKed bytes have left the network.
            let cwnd_room = if self.sack_ok && self.recovering() {
                self.cc.cwnd().saturating_sub(self.pipe())
            } else {
                self.cc
                    .cwnd()
                    .saturating_add(self.cc.limited_transmit())
                    .saturating_sub(in_flight)
            };
            // RFC 5682 §3.2 step 2 (b): F-RTO sends up to two new segments whatever cwnd.
            let cwnd_room = cwnd_room.max(self.frto_sends.saturating_mul(mss as u32));
            let usable = self.send_window().saturating_sub(in_flight).min(cwnd_room) as usize;
            let unsent = self.data_end().diff(self.snd.nxt).max(0) as usize;
            let len = unsent.min(usable).min(mss);
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) and Nagle (RFC 1122 §4.2.3.4):
            // a full segment, half the largest window, or nothing in flight; the last
            // piece of queued data while data is in flight only with Nagle off — or
            // when the FIN follows it (nothing more will come to fill the segment).
            let fin_due = self.fin_queued && !self.fin_acked && self.snd.nxt == self.data_end();
            let tail_ok = len == unsent && (self.nodelay || self.fin_queued);
            let sws_ok =
                len == mss || tail_ok || len as u32 * 2 >= self.snd.max_wnd || in_flight == 0;
            if (len > 0 && sws_ok) || (unsent == 0 && fin_due) {
                let nxt = self.snd.nxt;
                let room = unsent.min(usable);
                let seg = match self.super_segment_len(tso, room, unsent, in_flight) {
                    Some((total, piece)) => {
                        let mut seg = self.data_run(nxt, total);
                        // piece <= send MSS, a u16.
                        seg.gso_size = u16::try_from(piece).unwrap_or(u16::MAX);
                        seg
                    }
                    None => self.data_segment(nxt, len),
                };
                let seg_len = seg.seg_len();
                self.snd.nxt = nxt + seg_len;
                self.on_sent(nxt, seg_len, now, stats);
                self.timers.stop(Timer::Persist);
                self.frto_sends = self.frto_sends.saturating_sub(seg_len.div_ceil(mss as u32));
                return Some(seg);
            }
            // Zero window with data waiting and nothing in flight: persist timer.
            let send_window = self.send_window();
            if send_window == 0
                && unsent > 0
                && in_flight == 0
                && self.timers.get(Timer::Retransmit).is_none()
            {
                if self.timers.get(Timer::Persist).is_none() {
                    self.timers
                        .set(Timer::Persist, now + self.persist_interval());
                }
            } else if send_window > 0 {
                self.timers.stop(Timer::Persist);
            }
        }

        if self.probe_needed {
            self.probe_needed = false;
            if self.send_window() == 0 {
                // A window probe: an old sequence number makes the peer answer with an ACK
                // carrying its current window (as Linux does).
                let seq = self.snd.una - 1;
                let seg = self.base_segment(seq, Flags::ACK);
                self.on_sent(seq, 0, now, stats);
                stats.window_probes += 1;
                self.probes_unanswered = self.probes_unanswered.saturating_add(1);
                return Some(Outgoing::control(seg));
            }
        }

        if self.ka_probe_due {
            self.ka_probe_due = false;
            if self.snd.una == self.snd.max {
                // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT − 1, no data (some stacks need one
                // garbage byte; RFC 1122 says an implementation SHOULD NOT need it).
                let seq = self.snd.una - 1;
                let seg = self.base_segment(seq, Flags::ACK);
                self.on_sent(seq, 0, now, stats);
                return Some(Outgoing::control(seg));
            }
        }

        if self.ack_needed || self.acks_owed > 0 {
            // A pure ACK carries SND.MAX, not SND.NXT: while retransmitting after a
            // timeout SND.NXT lags behind what the peer already received, and an ACK with
            // that old sequence number would fail the peer's acceptability test and be
            // dropped unread — both sides doing so is an endless ACK war (BSD
            // tcp_output does the same for this reason).
            let max = self.snd.max;
            let seg = self.base_segment(max, Flags::ACK);
            self.on_sent(max, 0, now, stats);
            return Some(Outgoing::control(seg));
        }
        None
    }
}
