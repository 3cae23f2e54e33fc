//! Tunables of the TCP layer ([`Config`]) and of one connection's keep-alive
//! ([`KeepaliveConfig`]).

use std::time::Duration;

/// Tunables of the TCP layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our maximum segment size, announced on SYNs (1460 = 1500-byte MTU minus headers).
    pub mss: u16,
    /// Send buffer per connection at the start, bytes.
    pub send_buffer: usize,
    /// Most the send buffer grows to (autotuning, like Linux's `tcp_wmem` maximum): about
    /// twice the bandwidth-delay product, at most 2·cwnd, so that a sender on a long path
    /// is limited by cwnd and the peer's window rather than by the buffer. No growth when not
    /// above `send_buffer`, nor once the application sets a size (`set_send_buffer`,
    /// like `SO_SNDBUF`).
    pub send_buffer_max: usize,
    /// Receive buffer per connection at the start, bytes: the first window offered.
    /// Above 65535 window scaling (RFC 7323) is offered; if the peer does not agree the
    /// window stays at most 65535.
    pub recv_buffer: usize,
    /// Most the receive buffer (and so the window) grows to when the application reads
    /// faster than the window lets data in (autotuning, like Linux's `tcp_rmem` maximum):
    /// each round trip the buffer is sized from what the application consumed in the last
    /// one. No growth when not above `recv_buffer`. The window scale offered on SYNs is
    /// chosen so the window can cover this size. Memory is still allocated only as data
    /// arrives.
    pub recv_buffer_max: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts 2·MSL.
    pub msl: Duration,
    /// RTO before any RTT sample (RFC 6298 (2.1)).
    pub rto_initial: Duration,
    /// Lower bound of the RTO's variance term: RTO = SRTT + max(4·RTTVAR, `rto_min`), as
    /// Linux (200 ms); also the lowest RTO.
    pub rto_min: Duration,
    /// Upper bound of the RTO.
    pub rto_max: Duration,
    /// Consecutive retransmission timeouts before the connection is declared dead.
    pub max_retransmits: u32,
    /// SYN (and SYN-ACK) retransmissions before giving up on a handshake.
    pub syn_retries: u32,
    /// Most TCBs alive at once (including TIME-WAIT and half-open).
    pub max_connections: usize,
    /// Backlog used when `listen` is given 0.
    pub default_backlog: usize,
    /// Send tail loss probes (RFC 8985 §7) before the RTO fires. Scripted tests that
    /// check exact RTO timing turn this off.
    pub tail_loss_probe: bool,
    /// Offer and accept the timestamps option (RFC 7323 §3): RTT measurement from every
    /// ACK (RTTM, §4) and protection against wrapped sequence numbers (PAWS, §5).
    pub timestamps: bool,
    /// Longest an ACK for in-order data may be delayed (RFC 1122 §4.2.3.2: "MUST be less
    /// than 0.5 seconds"; RFC 5681 §4.2). Every second full-sized segment is acknowledged
    /// at once regardless. Zero turns delayed ACKs off (one ACK per batch of input).
    pub delayed_ack: Duration,
    /// Default of the per-connection "no delay" flag: true disables Nagle's algorithm
    /// (RFC 1122 §4.2.3.4) so small writes go out at once, like `TCP_NODELAY`.
    pub nodelay: bool,
    /// Answer SYNs with SYN cookies (RFC 4987 §3.6) once a listener's SYN queue is full,
    /// instead of evicting the oldest half-open connection.
    pub syn_cookies: bool,
    /// The congestion-avoidance rule: CUBIC (RFC 9438, the default, as Linux's) or
    /// NewReno (RFC 5681).
    pub congestion: super::congestion::Algorithm,
}

/// Keep-alive parameters of one connection (RFC 1122 §4.2.3.6), like Linux's
/// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct KeepaliveConfig {
    /// Idle time (nothing received) before the first probe. RFC 1122: "MUST default to
    /// no less than two hours" — that default is the application's choice here.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes after which the connection is reset and reports `TimedOut`.
    pub count: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            send_buffer: 256 * 1024,
            // Linux's default `tcp_wmem` maximum: 50 Mbit/s over 200 ms (1.25 MB in
            // flight, up to twice that with a full bottleneck queue) fits.
            send_buffer_max: 4 * 1024 * 1024,
            // Larger than 64 KiB so window scaling is negotiated and a short path is not
            // window-limited from the start (Linux starts at 128 KiB).
            recv_buffer: 256 * 1024,
            // Linux's default `tcp_rmem` maximum; the window scale offered is then 7, as
            // Linux's.
            recv_buffer_max: 6 * 1024 * 1024,
            msl: Duration::from_secs(30),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            max_retransmits: 15,
            syn_retries: 6,
            max_connections: 65536,
            default_backlog: 128,
            tail_loss_probe: true,
            timestamps: true,
            // Linux's minimum delayed-ACK timeout (TCP_DELACK_MIN): short enough that a
            // request/response exchange that hits Nagle on the other side costs at most
            // 40 ms, long enough to piggyback the ACK on an application's prompt reply.
            delayed_ack: Duration::from_millis(40),
            nodelay: false,
            syn_cookies: true,
            congestion: super::congestion::Algorithm::Cubic,
        }
    }
}
