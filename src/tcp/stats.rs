//! Counters of the TCP layer.

use std::collections::BTreeMap;

/// Counters of the TCP layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Segments handed to `on_segment`.
    pub segments_in: u64,
    /// Segments returned by `poll_transmit`.
    pub segments_out: u64,
    /// Super-segments returned (TSO, [`Tcp::set_tso`](super::Tcp::set_tso)); `segments_out` counts each as the
    /// wire segments it becomes.
    pub super_segments_out: u64,
    /// Segments (or SYNs) sent again.
    pub retransmits: u64,
    /// RSTs generated.
    pub resets_sent: u64,
    /// RSTs that closed a connection.
    pub resets_received: u64,
    /// Segments dropped: unacceptable, unknown, or a full backlog.
    pub dropped: u64,
    /// `dropped` broken down by reason ("sequence number not acceptable", ...).
    pub drops: BTreeMap<&'static str, u64>,
    /// Active opens (connect).
    pub connections_opened: u64,
    /// Passive opens that completed the handshake.
    pub connections_accepted: u64,
    /// SYNs dropped because a listener's backlog was full.
    pub listen_overflows: u64,
    /// Connections that died of retransmission (or handshake) timeouts.
    pub timeouts: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Retransmission timer expirations (RFC 6298 (5.4)).
    pub rto_expirations: u64,
    /// Fast retransmits on the third duplicate ACK (RFC 5681 §3.2).
    pub fast_retransmits: u64,
    /// Challenge / out-of-window ACKs suppressed by the RFC 5961 §7 rate limit.
    pub acks_rate_limited: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub tail_loss_probes: u64,
    /// TIME-WAIT connections ended early because the connection table was full.
    pub time_wait_reclaimed: u64,
    /// Retransmissions found lost again during SACK recovery and resent before the RTO.
    pub lost_retransmits: u64,
    /// D-SACK blocks received (RFC 2883): the peer got a segment twice.
    pub dsacks_received: u64,
    /// Congestion responses undone because every retransmission of the episode proved
    /// spurious (RFC 3522 timestamps, RFC 3708 D-SACK, RFC 5682 F-RTO; RFC 4015).
    pub undos: u64,
    /// Retransmission timeouts F-RTO (RFC 5682) found spurious.
    pub spurious_rtos: u64,
    /// Segments dropped by PAWS (RFC 7323 §5): their timestamp was older than TS.Recent.
    pub paws_rejected: u64,
    /// Delayed ACKs sent when the delayed-ACK timer fired.
    pub delayed_acks: u64,
    /// Keep-alive probes sent.
    pub keepalive_probes: u64,
    /// SYN-ACKs sent with a SYN cookie (the listener's SYN queue was full).
    pub syn_cookies_sent: u64,
    /// ACKs that carried a valid SYN cookie and became a connection.
    pub syn_cookies_validated: u64,
    /// ACKs to a listener whose cookie did not check out (answered with a RST).
    pub syn_cookies_failed: u64,
    /// Half-open connections ended early because their listener's SYN queue was more
    /// than half full of handshakes that had already timed out (a SYN flood).
    pub syn_queue_pruned: u64,
}

impl TcpStats {
    /// Count one dropped segment under `reason`.
    pub fn drop(&mut self, reason: &'static str) {
        self.dropped += 1;
        *self.drops.entry(reason).or_insert(0) += 1;
    }
}
