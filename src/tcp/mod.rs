//! The transport layer: TCP (RFC 9293), sans-IO.
//!
//! Leaf modules: sequence numbers ([`seq`]), segments ([`segment`]), the RFC 6298
//! retransmission timer ([`rto`]) and the send/receive buffers ([`send_buf`],
//! [`recv_buf`]).

pub mod recv_buf;
pub mod rto;
pub mod segment;
pub mod send_buf;
pub mod seq;

pub use recv_buf::RecvBuffer;
pub use rto::RttEstimator;
pub use segment::{Flags, Segment, SegmentError, TcpOptions};
pub use send_buf::SendBuffer;
pub use seq::SeqNum;

mod congestion;
pub mod connection;
pub mod endpoint;
pub mod state;

pub use endpoint::{Config, ConnId, ListenerId, Tcp, TcpError, TcpStats, Transmit};
pub use state::State;
