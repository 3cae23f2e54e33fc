//! What the transport layer decided, as data: state transitions with their cause, timer
//! events, retransmissions, window changes. The `--trace` view and step mode show these
//! next to the packets that caused them.
//!
//! Sans-IO like the rest of `tcp`: nothing is printed here. When tracing is switched on
//! ([`super::Tcp::set_trace`]) each connection queues its events; the caller drains them
//! with [`super::Tcp::take_trace_events`] after every input, timeout or application call.
//! When tracing is off the only cost is one `bool` test per would-be event: no event is
//! built, nothing is formatted or allocated.
//!
//! Each event carries the place in the source that decided it (`at`): the functions that
//! queue events are `#[track_caller]`, so `Location::caller()` is the line of the decision
//! (a `&'static` pointer filled in by the compiler: no string is built), and the trace can
//! say `@ src/tcp/connection.rs:1506`, a map from what happened into the code.

use std::net::SocketAddr;
use std::panic::Location;
use std::time::Duration;

use super::seq::SeqNum;
use super::state::State;

/// One decision of the transport layer about one connection (or listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEvent {
    /// Our end.
    pub local: SocketAddr,
    /// The peer's end (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// What happened.
    pub kind: TcpEventKind,
    /// The code that decided it: the line that changed the state, dropped the segment,
    /// fired the timer.
    pub at: &'static Location<'static>,
}

/// The kinds of [`TcpEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEventKind {
    /// A state transition of RFC 9293 §3.3.2's diagram and the event that caused it
    /// (`SYN-RECEIVED → ESTABLISHED on ACK`).
    State {
        /// State before.
        from: State,
        /// State after.
        to: State,
        /// The cause, in the RFC's words ("SYN", "ACK of FIN", "CLOSE", "2·MSL timeout").
        cause: String,
    },
    /// The retransmission timer expired (RFC 6298 (5.4)-(5.6)): go back to SND.UNA.
    RetransmitTimeout {
        /// How many times in a row it has fired.
        attempt: u32,
        /// The backed-off RTO now in force.
        rto: Duration,
    },
    /// Enough duplicate ACKs: resend the segment at SND.UNA (RFC 5681 §3.2; fewer than
    /// three with early retransmit, RFC 5827).
    FastRetransmit {
        /// SND.UNA.
        seq: SeqNum,
        /// The duplicate-ACK threshold that fired.
        dup_acks: u32,
    },
    /// A duplicate ACK (RFC 5681 §2: nothing new acknowledged, no data, same window, data
    /// outstanding) that did not (yet) trigger a fast retransmit: the peer got a segment
    /// above a gap, so one of ours was lost or reordered.
    DuplicateAck {
        /// The sequence number acknowledged again (SND.UNA).
        seq: SeqNum,
        /// How many in a row.
        count: u32,
        /// How many trigger a fast retransmit now (3, fewer with RFC 5827).
        threshold: u32,
        /// Already in fast recovery: each one means a segment left the network.
        in_recovery: bool,
    },
    /// A segment covering sequence numbers that were sent before is going out again.
    Retransmission {
        /// First sequence number of the segment.
        seq: SeqNum,
        /// Sequence space it covers (data + SYN + FIN).
        len: u32,
    },
    /// A round-trip time measurement updated the RTO (RFC 6298 (2.2)/(2.3)).
    RttSample {
        /// This measurement.
        rtt: Duration,
        /// The smoothed RTT after it.
        srtt: Duration,
        /// The retransmission timeout after it.
        rto: Duration,
    },
    /// The peer advertised a different receive window (SND.WND, RFC 9293 §3.10.7.4).
    PeerWindow {
        /// Window before.
        old: u32,
        /// Window now.
        new: u32,
    },
    /// The application read data and our receive window opened enough to tell the peer
    /// (RFC 9293 §3.8.6.2.2): a window update is owed.
    WindowUpdate {
        /// Free receive space now.
        window: u32,
    },
    /// The persist timer fired: probe the peer's zero window (RFC 9293 §3.8.6.1).
    ZeroWindowProbe,
    /// A timer was started: TIME-WAIT's 2·MSL, or the orphaned FIN-WAIT-2 timeout.
    CloseTimer {
        /// Which timer.
        what: &'static str,
        /// When it fires, from now.
        after: Duration,
    },
    /// In SYN-RECEIVED the peer sent its SYN again: our SYN-ACK was lost (or is slow),
    /// so the SYN-ACK goes out again (RFC 9293 §3.10.7.4).
    DuplicateSyn,
    /// A segment was dropped (and why).
    Dropped {
        /// The reason ("unacceptable sequence number", "backlog full", ...).
        reason: &'static str,
    },
    /// A segment arrived for no connection and no listener: answered with a RST
    /// (RFC 9293 §3.10.7.1).
    ResetNoConnection,
    /// A congestion response proved unnecessary and was undone (RFC 4015 §3): every
    /// retransmission of the episode was spurious.
    Undo {
        /// How that was shown: "D-SACK" (RFC 3708), "timestamps" (RFC 3522), "F-RTO"
        /// (RFC 5682).
        how: &'static str,
        /// The congestion window restored.
        cwnd: u32,
    },
    /// A listener opened (passive OPEN, RFC 9293 §3.10.1).
    Listen {
        /// Its backlog.
        backlog: usize,
    },
}
