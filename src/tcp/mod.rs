//! The transport layer: TCP (RFC 9293), sans-IO.
//!
//! | file | what |
//! |------|------|
//! | `seq.rs` | [`SeqNum`]: wrapping sequence-number arithmetic (§3.4) |
//! | `segment.rs` | [`Segment`]: parse and emit the header, options, checksum (§3.1) |
//! | `state.rs` | [`State`]: the eleven connection states and the state diagram (§3.3.2) |
//! | `rto.rs` | [`RttEstimator`]: the retransmission timeout (RFC 6298) |
//! | `send_buf.rs`, `recv_buf.rs` | the send buffer and the reassembling receive buffer |
//! | `spare.rs` | the rings drained buffers give back, reused by the next (no zeroing per request) |
//! | `congestion.rs` | slow start with HyStart (RFC 9406 detection), CUBIC (RFC 9438) or Reno avoidance, NewReno (RFC 5681, RFC 6582) |
//! | `connection.rs` | the TCB: one connection's state machine (§3.10) |
//! | `config.rs`, `error.rs`, `stats.rs` | [`Config`], [`TcpError`], [`TcpStats`]: the layer's tunables, errors and counters |
//! | `endpoint.rs` | [`Tcp`]: demultiplexing, listeners, ISNs, RSTs for unknown segments |
//! | `syncookie.rs` | SYN cookies (RFC 4987 §3.6): encode / check the cookie ISN |
//! | `events.rs` | [`TcpEvent`]: what the layer decided, queued for the `--trace` view |
//!
//! Nothing here reads a clock or touches a device: the caller passes `now` into every
//! call and drains [`Tcp::poll_transmit`] for segments to send.
//!
//! What is implemented: all eleven states, passive open with a bounded SYN queue (SYN
//! cookies when it is full, or optionally eviction of the oldest half-open) and accept
//! queue, active and simultaneous open, the full §3.10.7 segment-arrival rules
//! (acceptability, trimming, RFC 5961 challenge ACKs with a rate limit), MSS, SACK
//! (RFC 2018), window scaling and timestamps with PAWS (RFC 7323), reassembly, delayed
//! ACKs, Nagle (with a no-delay switch), receiver and sender SWS avoidance, zero-window
//! probing, keep-alive, user timeout, RFC 6298 retransmission with Karn's rule, slow
//! start / congestion avoidance / NewReno with SACK hole retransmission, limited
//! transmit, early retransmit, tail loss probes, TIME-WAIT (with RFC 6191 reuse and RFC
//! 1337 protection), orphan FIN-WAIT-2 timeout, RFC 6528 ISNs, CUBIC (RFC 9438, the
//! default) with HyStart (RFC 9406 detection), receive- and send-buffer autotuning, super-segments for devices with TSO (sent) and GRO (received), and a transmit
//! path that copies payload straight from the send buffer into the packet. Not (yet): RTT samples from timestamps (RTTM), ECN. docs/tcp-rfc-coverage.md maps requirements to tests.

pub mod config;
pub mod congestion;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod recv_buf;
pub mod rto;
pub mod segment;
pub mod send_buf;
pub mod seq;
mod spare;
pub mod state;
pub mod stats;
pub mod syncookie;

pub use congestion::{Algorithm as CongestionAlgorithm, NewReno};
pub use endpoint::{
    Config, ConnId, IcmpAction, KeepaliveConfig, ListenerId, Tcp, TcpError, TcpStats, Transmit,
    TransmitInfo, DEFAULT_OUT_OF_ORDER_BUDGET, MAX_SUPER_SEGMENT, MAX_SUPER_SEGMENT6,
};
pub use events::{TcpEvent, TcpEventKind};
pub use recv_buf::RecvBuffer;
pub use rto::RttEstimator;
pub use segment::{Flags, Segment, SegmentError, TcpOptions};
pub use send_buf::SendBuffer;
pub use seq::SeqNum;
pub use state::State;
