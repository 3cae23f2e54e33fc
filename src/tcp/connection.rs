//! One TCP connection: the transmission control block (TCB) and its state machine
//! (RFC 9293 §3.10), sans-IO.
//!
//! The connection never sends anything by itself. Events (SEGMENT ARRIVES, the user
//! calls, timeouts) update the TCB and set flags ("an ACK is owed", "the SYN must go
//! out again"); [`Connection::poll_transmit`] then turns the TCB into the next segment to
//! send. That keeps ACKs coalesced (one per batch of input) and piggybacked on data.
//!
//! Retransmission is "go-back-N" in the BSD style: on a timeout SND.NXT is pulled back
//! to SND.UNA (SND.MAX remembers the highest number ever sent), congestion control
//! collapses cwnd to one segment, and the normal send path resends from there as ACKs
//! open the window again. Fast retransmit resends just the segment at SND.UNA.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::congestion::{AckAction, NewReno};
use super::endpoint::IcmpAction;
use super::endpoint::{Config, TcpError, TcpStats};
use super::recv_buf::RecvBuffer;
use super::rto::RttEstimator;
use super::segment::{Flags, Segment, TcpOptions};
use super::send_buf::SendBuffer;
use super::seq::SeqNum;
use super::state::State;
use crate::ip::icmp::ErrorKind as IcmpErrorKind;
use crate::time::Instant;

/// The smallest path MTU an ICMP "fragmentation needed" may make us assume (Linux
/// `min_pmtu`): RFC 1191 §3 allows 68, but RFC 5927 §7 warns that forged messages could
/// otherwise shrink segments to a crawl.
pub const MIN_PMTU: u16 = 552;

/// RFC 9293 §3.7.1: the MSS to assume when the peer sends no MSS option.
pub const DEFAULT_PEER_MSS: u16 = 536;

/// How long an orphaned connection (released by the application) may stay in
/// FIN-WAIT-2 waiting for the peer's FIN (Linux `tcp_fin_timeout`).
pub const FIN_WAIT2_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest window a 16-bit window field can carry (no window scaling yet).
const MAX_WINDOW: usize = 65535;

/// At most this many immediate (duplicate) ACKs are owed at once.
const MAX_ACKS_OWED: u32 = 8;

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
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: State,
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

    rtt: RttEstimator,
    /// The one segment being timed: (sequence number that acknowledges it, send time).
    rtt_sample: Option<(SeqNum, Instant)>,
    cc: NewReno,

    /// Retransmission timer (RFC 6298) and how many times in a row it fired.
    rtx_deadline: Option<Instant>,
    retries: u32,
    /// Persist timer (RFC 9293 §3.8.6.1) and its backoff exponent.
    persist_deadline: Option<Instant>,
    persist_backoff: u32,
    /// Zero-window probes sent without any ACK coming back.
    probes_unanswered: u32,
    /// TIME-WAIT (2·MSL) or orphaned FIN-WAIT-2 timer.
    close_deadline: Option<Instant>,

    msl: Duration,
    max_retransmits: u32,
    syn_retries: u32,
}

impl Connection {
    fn new(
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        config: &Config,
        state: State,
        passive: bool,
    ) -> Connection {
        let local_mss = config.mss.max(1);
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
            recv_buf: RecvBuffer::new(config.recv_buffer.clamp(1, MAX_WINDOW)),
            syn_acked: false,
            fin_queued: false,
            fin_acked: false,
            peer_fin: None,
            fin_received: false,
            ack_needed: false,
            acks_owed: 0,
            retransmit_una: false,
            probe_needed: false,
            rtt: RttEstimator::new(config.rto_initial, config.rto_min, config.rto_max),
            rtt_sample: None,
            cc: NewReno::new(local_mss.min(DEFAULT_PEER_MSS), iss),
            rtx_deadline: None,
            retries: 0,
            persist_deadline: None,
            persist_backoff: 0,
            probes_unanswered: 0,
            close_deadline: None,
            msl: config.msl,
            max_retransmits: config.max_retransmits,
            syn_retries: config.syn_retries,
        }
    }

    /// OPEN, active (RFC 9293 §3.10.1): a TCB in SYN-SENT; the SYN goes out on the next
    /// [`Connection::poll_transmit`].
    pub fn connect(
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        seg: &Segment,
        config: &Config,
    ) -> Connection {
        let mut c = Connection::new(local, remote, iss, config, State::SynReceived, true);
        c.rcv.irs = seg.seq;
        c.rcv.nxt = seg.seq + 1;
        c.rcv.adv = c.rcv.nxt;
        c.set_peer_mss(seg.options.mss);
        c.snd.wnd = u32::from(seg.window);
        c.snd.max_wnd = c.snd.wnd;
        c.snd.wl1 = seg.seq;
        c.snd.wl2 = iss;
        log::debug!("{local} ↔ {remote}: LISTEN → SYN-RECEIVED on SYN");
        c
    }

    fn set_peer_mss(&mut self, mss: Option<u16>) {
        // RFC 9293 §3.7.1: without the option assume 536; never exceed our own.
        let peer = mss.unwrap_or(DEFAULT_PEER_MSS).max(1);
        self.send_mss = self.local_mss.min(peer);
        self.cc.set_mss(self.send_mss);
    }

    // ----------------------------------------------------------------------------------
    // Small accessors for the endpoint.

    /// The next time a timer of this connection fires.
    pub fn deadline(&self) -> Option<Instant> {
        [
            self.rtx_deadline,
            self.persist_deadline,
            self.close_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes the application can read now.
    pub fn readable(&self) -> usize {
        self.recv_buf.readable()
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
    pub fn rcv_nxt(&self) -> SeqNum {
        self.rcv.nxt
    }

    /// Leave TIME-WAIT early because a new connection reuses the 4-tuple (RFC 6191).
    pub fn close_time_wait(&mut self, cause: &str) {
        if self.state == State::TimeWait {
            self.set_state(State::Closed, cause);
        }
    }

    // ----------------------------------------------------------------------------------
    // State changes.

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
        self.state = new;
        self.changed = true;
        match new {
            State::Closed => {
                self.rtx_deadline = None;
                self.persist_deadline = None;
                self.close_deadline = None;
                self.ack_needed = false;
                self.acks_owed = 0;
                self.retransmit_una = false;
                self.probe_needed = false;
            }
            State::TimeWait => {
                self.rtx_deadline = None;
                self.persist_deadline = None;
                self.retransmit_una = false;
                self.probe_needed = false;
            }
            _ => {}
        }
    }

    /// Enter TIME-WAIT, or restart its 2·MSL timer (RFC 9293 §3.10.7.4, FIN processing).
    fn enter_time_wait(&mut self, now: Instant, cause: &str) {
        self.set_state(State::TimeWait, cause);
        self.close_deadline = Some(now + self.msl * 2);
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

    /// An ACK must go out now (not merely at the end of the batch): duplicate ACKs,
    /// challenge ACKs, replies to unacceptable segments.
    fn ack_now(&mut self) {
        self.acks_owed = (self.acks_owed + 1).min(MAX_ACKS_OWED);
    }

    // ----------------------------------------------------------------------------------
    // User calls (RFC 9293 §3.10.2 - §3.10.5).

    /// SEND (§3.10.2).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued {
            return Err(TcpError::BrokenPipe);
        }
        match self.state {
            // SYN-SENT / SYN-RECEIVED: queue the data for after the handshake.
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {
                let n = self.send_buf.write(data);
                Ok(n)
            }
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
        let free = self.recv_buf.window().min(MAX_WINDOW) as u32;
        if free.saturating_sub(current) >= self.window_update_threshold() {
            self.ack_needed = true;
        }
    }

    fn window_update_threshold(&self) -> u32 {
        let half = (self.recv_buf.capacity().min(MAX_WINDOW) / 2) as u32;
        half.min(u32::from(self.local_mss)).max(1)
    }

    /// What remains of the window last advertised (RCV.WND as the peer sees it).
    fn current_rcv_wnd(&self) -> u32 {
        u32::try_from(self.rcv.adv.diff(self.rcv.nxt)).unwrap_or(0)
    }

    /// The window to put in an outgoing segment; moves the advertised right edge.
    fn advertise_window(&mut self) -> u16 {
        let current = self.current_rcv_wnd();
        let free = self.recv_buf.window().min(MAX_WINDOW) as u32;
        // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: only move the right edge by at least
        // min(buffer/2, MSS); and never move it left.
        let wnd = if free >= current.saturating_add(self.window_update_threshold()) {
            free
        } else {
            current
        };
        let wnd = wnd.min(MAX_WINDOW as u32);
        self.rcv.adv = self.rcv.nxt + wnd;
        wnd as u16
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
        if self.state == State::FinWait2 && self.close_deadline.is_none() {
            self.close_deadline = Some(now + FIN_WAIT2_TIMEOUT);
        }
    }

    // ----------------------------------------------------------------------------------
    // SEGMENT ARRIVES (§3.10.7).

    /// Process one incoming segment addressed to this connection.
    pub fn on_segment(&mut self, seg: &Segment, now: Instant, stats: &mut TcpStats) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(seg, now, stats),
            _ => self.on_segment_synchronized(seg, now, stats),
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
                stats.dropped += 1;
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
                stats.dropped += 1;
            }
            return;
        }
        // Fourth, the SYN bit.
        if !seg.flags.syn {
            stats.dropped += 1;
            return;
        }
        self.rcv.irs = seg.seq;
        self.rcv.nxt = seg.seq + 1;
        self.rcv.adv = self.rcv.nxt;
        self.set_peer_mss(seg.options.mss);
        self.snd.wnd = u32::from(seg.window);
        self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
        self.snd.wl1 = seg.seq;
        self.snd.wl2 = seg.ack;
        if ack_ok && seg.ack.gt(self.snd.iss) {
            // Our SYN is acknowledged: ESTABLISHED.
            self.on_new_ack(seg.ack, now, stats);
            self.set_state(State::Established, "SYN-ACK");
            self.ack_needed = true;
            // Data or FIN carried on the SYN-ACK (sixth and eighth steps).
            let data_seq = seg.seq + 1;
            self.process_text_and_fin(data_seq, &seg.payload, seg.flags.fin, now, stats);
            self.ack_now();
        } else {
            // Simultaneous open: SYN-RECEIVED, send SYN-ACK (our SYN again, now with ACK).
            self.snd.nxt = self.snd.iss;
            self.rtx_deadline = None;
            self.set_state(State::SynReceived, "SYN (simultaneous open)");
        }
    }

    /// §3.10.7.4: SYN-RECEIVED and all synchronized states.
    fn on_segment_synchronized(&mut self, seg: &Segment, now: Instant, stats: &mut TcpStats) {
        let mut seq = seg.seq;
        let mut syn = seg.flags.syn;
        let mut fin = seg.flags.fin;
        let mut data: &[u8] = &seg.payload;

        if self.state == State::SynReceived && syn && seq == self.rcv.irs {
            if !seg.flags.ack || seg.flags.rst {
                // The peer retransmitted its SYN: our SYN-ACK was lost; send it again.
                self.ack_now();
                return;
            }
            // A SYN-ACK in simultaneous open (RFC 9293 §3.5 figure 7, line 6): its SYN
            // is old news, the ACK is what matters.
            seq += 1;
            syn = false;
        }

        // First: sequence number check (§3.10.7.4, the four cases).
        let rcv_wnd = self.current_rcv_wnd();
        let seg_len = data.len() as u32 + u32::from(syn) + u32::from(fin);
        let rcv_nxt = self.rcv.nxt;
        let right = rcv_nxt + rcv_wnd;
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq == rcv_nxt,
            (0, _) => seq.in_range(rcv_nxt, right),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(rcv_nxt, right) || (seq + (seg_len - 1)).in_range(rcv_nxt, right)
            }
        };
        if !acceptable {
            if seg.flags.rst {
                stats.dropped += 1;
                return;
            }
            // "If an incoming segment is not acceptable, an acknowledgment should be sent
            // in reply": <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            self.ack_now();
            if self.state == State::TimeWait && fin {
                // A retransmitted FIN: re-ACK it and restart the 2·MSL timer.
                self.enter_time_wait(now, "retransmitted FIN");
            }
            // RCV.WND = 0: "special allowance should be made to accept valid ACKs, URGs
            // and RSTs" — keep processing the control part of an in-sequence segment.
            if rcv_wnd == 0 && seq == rcv_nxt {
                data = &[];
                fin = false;
                syn = false;
            } else {
                stats.dropped += 1;
                return;
            }
        }

        // Trim to the window: drop what we already have at the front...
        if seq.lt(rcv_nxt) {
            let mut dup = rcv_nxt.diff(seq) as u32;
            if syn {
                syn = false;
                dup -= 1;
                seq += 1;
            }
            let cut = (dup as usize).min(data.len());
            data = data.get(cut..).unwrap_or(&[]);
            seq += cut as u32;
            if dup as usize > cut {
                // Even the FIN is a duplicate.
                fin = false;
            }
        }
        // ...and what does not fit at the back (the FIN then goes too).
        let end = seq + data.len() as u32;
        if end.gt(right) {
            let over = end.diff(right) as usize;
            data = data.get(..data.len().saturating_sub(over)).unwrap_or(&[]);
            fin = false;
        }

        // Second: the RST bit (RFC 5961 §3.2: only an exact match resets, any other
        // in-window RST gets a challenge ACK).
        if seg.flags.rst {
            if seg.seq != rcv_nxt {
                self.ack_now();
                stats.dropped += 1;
                return;
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
            return;
        }

        // Fourth: a SYN in a synchronized state (RFC 5961 §4.2, RFC 9293): challenge ACK.
        if syn {
            self.ack_now();
            stats.dropped += 1;
            return;
        }

        // Fifth: the ACK field.
        if !seg.flags.ack {
            stats.dropped += 1;
            return;
        }
        if self.state == State::SynReceived {
            if seg.ack.gt(self.snd.una) && seg.ack.le(self.snd.max) {
                self.snd.wnd = u32::from(seg.window);
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
                stats.dropped += 1;
                return;
            }
        }
        if seg.ack.gt(self.snd.max) {
            // ACK of something not yet sent: ACK and drop (§3.10.7.4).
            self.ack_now();
            stats.dropped += 1;
            return;
        }
        // The peer is alive: it answers (RFC 9293 §3.8.6.1, persist).
        self.probes_unanswered = 0;
        if self.state == State::TimeWait {
            // Nothing else can legitimately arrive; a retransmitted FIN was handled above.
            if fin {
                self.ack_now();
                self.enter_time_wait(now, "retransmitted FIN");
            }
            return;
        }
        let old_wnd = self.snd.wnd;
        if seg.ack.gt(self.snd.una) {
            self.on_new_ack(seg.ack, now, stats);
        } else if seg.ack == self.snd.una
            && data.is_empty()
            && !fin
            && !seg.flags.fin
            && u32::from(seg.window) == old_wnd
            && self.snd.max != self.snd.una
        {
            // RFC 5681 §2 duplicate ACK.
            let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
            if self.cc.on_dup_ack(self.snd.una, self.snd.max, flight) == AckAction::Retransmit {
                log::debug!(
                    "{} ↔ {}: fast retransmit at {}",
                    self.local,
                    self.remote,
                    self.snd.una
                );
                stats.fast_retransmits += 1;
                self.retransmit_una = true;
            }
        }
        // Window update (§3.10.7.4): only from a segment newer than the last update.
        if seg.ack.ge(self.snd.una)
            && (self.snd.wl1.lt(seg.seq) || (self.snd.wl1 == seg.seq && self.snd.wl2.le(seg.ack)))
        {
            let wnd = u32::from(seg.window);
            if wnd > self.snd.wnd {
                self.changed = true;
            }
            self.snd.wnd = wnd;
            self.snd.max_wnd = self.snd.max_wnd.max(wnd);
            self.snd.wl1 = seg.seq;
            self.snd.wl2 = seg.ack;
            if wnd > 0 {
                self.persist_deadline = None;
                self.persist_backoff = 0;
            }
        }
        if self.state == State::Closed {
            return;
        }

        // Sixth to eighth: URG (ignored), segment text, FIN.
        self.process_text_and_fin(seq, data, fin, now, stats);
    }

    /// An acceptable ACK of new data: `SND.UNA < SEG.ACK =< SND.MAX`.
    fn on_new_ack(&mut self, ack: SeqNum, now: Instant, stats: &mut TcpStats) {
        let _ = stats;
        let mut acked = ack.diff(self.snd.una).max(0) as u32;
        if !self.syn_acked && acked > 0 {
            self.syn_acked = true;
            acked -= 1;
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
        // RFC 6298 with Karn's rule: only a segment never retransmitted is timed.
        if let Some((end, sent)) = self.rtt_sample {
            if ack.ge(end) {
                self.rtt.on_sample(now.saturating_duration_since(sent));
                self.rtt_sample = None;
            }
        }
        self.rtt.reset_backoff();
        self.retries = 0;
        // RFC 6298 (5.2), (5.3).
        self.rtx_deadline = if self.snd.una == self.snd.max {
            None
        } else {
            Some(now + self.rtt.rto())
        };
        let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
        if self.state.is_synchronized()
            && self.cc.on_ack(ack, total, flight) == AckAction::Retransmit
            && flight > 0
        {
            self.retransmit_una = true;
        }
        if self.fin_acked {
            match self.state {
                State::FinWait1 => {
                    self.set_state(State::FinWait2, "ACK of FIN");
                    if self.owner == Owner::Released {
                        self.close_deadline = Some(now + FIN_WAIT2_TIMEOUT);
                    }
                }
                State::Closing => self.enter_time_wait(now, "ACK of FIN"),
                State::LastAck => self.set_state(State::Closed, "ACK of FIN"),
                _ => {}
            }
        }
    }

    /// Sixth (text) and eighth (FIN) steps of §3.10.7.4 for a segment already trimmed to
    /// the window, starting at `seq`.
    fn process_text_and_fin(
        &mut self,
        seq: SeqNum,
        data: &[u8],
        fin: bool,
        now: Instant,
        stats: &mut TcpStats,
    ) {
        if !data.is_empty() {
            if self.state.can_receive() && !self.fin_received {
                if self.owner == Owner::Released && self.fin_queued {
                    // Nobody will ever read this: tell the peer (Linux does the same for
                    // data arriving on an orphaned socket).
                    self.abort("data after release");
                    stats.resets_sent += 1;
                    return;
                }
                let offset = seq.diff(self.rcv.nxt).max(0) as usize;
                let beyond_fin = self
                    .peer_fin
                    .is_some_and(|f| (seq + data.len() as u32).gt(f));
                if !beyond_fin {
                    let had_gap = self.recv_buf.has_out_of_order();
                    let advanced = self.recv_buf.insert(offset, data);
                    if advanced > 0 {
                        self.rcv.nxt += advanced as u32;
                        self.changed = true;
                    }
                    if offset > 0 || advanced == 0 || had_gap {
                        // RFC 5681 §4.2: out-of-order data gets an immediate duplicate
                        // ACK, and so does data that fills a gap.
                        self.ack_now();
                    } else {
                        self.ack_needed = true;
                    }
                }
            } else {
                // Data after the peer's FIN is ignored (§3.10.7.4, CLOSE-WAIT etc.).
                stats.dropped += 1;
            }
        }
        if fin && self.peer_fin.is_none() && self.state.can_receive() {
            self.peer_fin = Some(seq + data.len() as u32);
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
                // older than RFC 1191) or one below MIN_PMTU is clamped.
                let mtu = next_hop_mtu.max(MIN_PMTU);
                let mss = mtu.saturating_sub(40);
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
                self.cc.set_mss(mss);
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

    /// Fire whichever timers are due at `now`.
    pub fn on_timeout(&mut self, now: Instant, stats: &mut TcpStats) {
        if self.close_deadline.is_some_and(|d| d <= now) {
            self.close_deadline = None;
            match self.state {
                State::TimeWait => self.set_state(State::Closed, "2·MSL timeout"),
                State::FinWait2 => self.set_state(State::Closed, "FIN-WAIT-2 timeout (orphan)"),
                _ => {}
            }
            return;
        }
        if self.rtx_deadline.is_some_and(|d| d <= now) {
            self.rtx_deadline = None;
            self.on_retransmit_timeout(now, stats);
        }
        if self.persist_deadline.is_some_and(|d| d <= now) {
            // RFC 9293 §3.8.6.1: probe the zero window, back off exponentially. The
            // connection stays open as long as the peer answers the probes; if it stops
            // answering, give up like a retransmission timeout (Linux does the same).
            if self.probes_unanswered >= self.max_retransmits {
                stats.timeouts += 1;
                self.fail(Some(TcpError::TimedOut), "zero-window probes unanswered");
                return;
            }
            self.probe_needed = true;
            self.persist_backoff = (self.persist_backoff + 1).min(16);
            self.persist_deadline = Some(now + self.persist_interval());
        }
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
                if self.retries >= self.max_retransmits {
                    stats.timeouts += 1;
                    let seq = self.snd.max;
                    self.queue_rst(seq, None);
                    stats.resets_sent += 1;
                    self.fail(Some(TcpError::TimedOut), "retransmission limit");
                    return;
                }
                self.retries += 1;
                stats.rto_expirations += 1;
                // RFC 6298 (5.5): back off; RFC 5681 §3.1: cwnd = 1 MSS,
                // ssthresh = max(flight/2, 2·MSS).
                self.rtt.backoff();
                let flight = self.snd.max.diff(self.snd.una).max(0) as u32;
                self.cc.on_timeout(flight, self.snd.max);
                self.rtt_sample = None;
                self.retransmit_una = false;
                self.snd.nxt = self.snd.una;
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
        let _ = now;
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
        let window = self.advertise_window();
        Segment {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: if flags.ack { self.rcv.nxt } else { SeqNum(0) },
            flags,
            window,
            urgent: 0,
            options: TcpOptions::default(),
            payload: Vec::new(),
        }
    }

    /// A segment with up to `max_len` bytes of data starting at `seq`, plus our FIN if
    /// it directly follows and has been queued.
    fn data_segment(&mut self, seq: SeqNum, max_len: usize) -> Segment {
        let offset = seq.diff(self.data_start()).max(0) as usize;
        let avail = self.send_buf.len().saturating_sub(offset);
        let len = max_len.min(avail);
        let mut payload = vec![0u8; len];
        let n = self.send_buf.peek(offset, &mut payload);
        payload.truncate(n);
        let end = seq + n as u32;
        let fin = self.fin_queued && !self.fin_acked && end == self.data_end();
        let flags = Flags {
            ack: true,
            psh: n > 0 && end == self.data_end(),
            fin,
            ..Flags::default()
        };
        let mut seg = self.base_segment(seq, flags);
        seg.payload = payload;
        seg
    }

    /// Note that a segment covering `[seq, seq+len)` went out.
    fn on_sent(&mut self, seq: SeqNum, len: u32, now: Instant, stats: &mut TcpStats) {
        let end = seq + len;
        if len > 0 {
            if seq.lt(self.snd.max) {
                // Anything below SND.MAX has been sent before: a retransmission, so
                // (Karn) it cannot be timed, and any pending sample is ambiguous.
                stats.retransmits += 1;
                if self.rtt_sample.is_some_and(|(e, _)| e.gt(seq)) {
                    self.rtt_sample = None;
                }
            } else if self.rtt_sample.is_none() {
                self.rtt_sample = Some((end, now));
            }
            if end.gt(self.snd.max) {
                self.snd.max = end;
            }
            // RFC 6298 (5.1): start the timer if it is not running.
            if self.rtx_deadline.is_none() {
                self.rtx_deadline = Some(now + self.rtt.rto());
            }
        }
        // Every segment carries the current ACK.
        self.ack_needed = false;
        self.acks_owed = self.acks_owed.saturating_sub(1);
    }

    /// The next segment this connection wants to send, if any.
    pub fn poll_transmit(&mut self, now: Instant, stats: &mut TcpStats) -> Option<Segment> {
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => self.poll_handshake(now, stats),
            _ => self.poll_synchronized(now, stats),
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
        // RFC 9293 §3.7.1: announce our MSS on the SYN.
        seg.options.mss = Some(self.local_mss);
        self.snd.nxt = iss + 1;
        self.on_sent(iss, 1, now, stats);
        Some(seg)
    }

    fn poll_synchronized(&mut self, now: Instant, stats: &mut TcpStats) -> Option<Segment> {
        let mss = usize::from(self.send_mss);

        // Fast retransmit / partial ACK: one segment at SND.UNA (RFC 5681 §3.2, RFC 6582).
        if self.retransmit_una {
            self.retransmit_una = false;
            if self.snd.una != self.snd.max {
                let una = self.snd.una;
                let seg = self.data_segment(una, mss);
                let len = seg.seg_len();
                if len > 0 {
                    self.on_sent(una, len, now, stats);
                    // Don't let SND.NXT fall behind what this segment covered.
                    if self.snd.nxt.lt(una + len) {
                        self.snd.nxt = una + len;
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
            // segment out beyond cwnd (but never beyond the peer's window).
            let wnd = self
                .snd
                .wnd
                .min(self.cc.cwnd().saturating_add(self.cc.limited_transmit()));
            let usable = wnd.saturating_sub(in_flight) as usize;
            let unsent = self.data_end().diff(self.snd.nxt).max(0) as usize;
            let len = unsent.min(usable).min(mss);
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1), without Nagle: a full segment,
            // all that is queued, half the largest window, or nothing in flight.
            let sws_ok =
                len == mss || len == unsent || len as u32 * 2 >= self.snd.max_wnd || in_flight == 0;
            let fin_due = self.fin_queued && !self.fin_acked && self.snd.nxt == self.data_end();
            if (len > 0 && sws_ok) || (unsent == 0 && fin_due) {
                let nxt = self.snd.nxt;
                let seg = self.data_segment(nxt, len);
                let seg_len = seg.seg_len();
                self.snd.nxt = nxt + seg_len;
                self.on_sent(nxt, seg_len, now, stats);
                self.persist_deadline = None;
                return Some(seg);
            }
            // Zero window with data waiting and nothing in flight: persist timer.
            if self.snd.wnd == 0 && unsent > 0 && in_flight == 0 && self.rtx_deadline.is_none() {
                if self.persist_deadline.is_none() {
                    self.persist_deadline = Some(now + self.persist_interval());
                }
            } else if self.snd.wnd > 0 {
                self.persist_deadline = None;
            }
        }

        if self.probe_needed {
            self.probe_needed = false;
            if self.snd.wnd == 0 {
                // A window probe: an old sequence number makes the peer answer with an ACK
                // carrying its current window (as Linux does).
                let seq = self.snd.una - 1;
                let seg = self.base_segment(seq, Flags::ACK);
                self.on_sent(seq, 0, now, stats);
                stats.window_probes += 1;
                self.probes_unanswered = self.probes_unanswered.saturating_add(1);
                return Some(seg);
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
            return Some(seg);
        }
        None
    }
}
