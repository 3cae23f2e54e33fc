//! The transport layer: TCP (RFC 9293), sans-IO.
//!
//! | file | what |
//! |------|------|
//! | `seq.rs` | [`SeqNum`]: wrapping sequence-number arithmetic (§3.4) |
//! | `segment.rs` | [`Segment`]: parse and emit the header, options, checksum (§3.1) |
//! | `state.rs` | [`State`]: the eleven connection states and the state diagram (§3.3.2) |
//! | `rto.rs` | [`RttEstimator`]: the retransmission timeout (RFC 6298) |
//! | `send_buf.rs`, `recv_buf.rs` | the send buffer and the reassembling receive buffer |
//! | `congestion.rs` | slow start, congestion avoidance, NewReno (RFC 5681, RFC 6582) |
//! | `connection.rs` | the TCB: one connection's state machine (§3.10) |
//! | `endpoint.rs` | [`Tcp`]: demultiplexing, listeners, ISNs, RSTs for unknown segments |
//!
//! Nothing here reads a clock or touches a device: the caller passes `now` into every
//! call and drains [`Tcp::poll_transmit`] for segments to send.

pub mod congestion;
pub mod connection;
pub mod endpoint;
pub mod recv_buf;
pub mod rto;
pub mod segment;
pub mod send_buf;
pub mod seq;
pub mod state;

pub use congestion::NewReno;
pub use endpoint::{Config, ConnId, IcmpAction, ListenerId, Tcp, TcpError, TcpStats, Transmit};
pub use recv_buf::RecvBuffer;
pub use rto::RttEstimator;
pub use segment::{Flags, Segment, SegmentError, TcpOptions};
pub use send_buf::SendBuffer;
pub use seq::SeqNum;
pub use state::State;
