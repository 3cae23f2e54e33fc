//! The work of one round, shared by both runtimes (the event loop, [`super::evloop`], and
//! the threaded runtime, [`super::start`]): deliver what arrived, fire due timers, find the
//! next deadline, stop gracefully, take a statistics snapshot, and — with a tracer — show
//! packets and the transport layer's decisions. A runtime only adds how it waits, where the
//! packets come from and go to, and how it runs the application (docs/architecture.md,
//! "One round").

use super::{Direction, Interface, StackStats};
use crate::link::ethernet_layer::EthernetLayer;
use crate::link::fault::FaultStats;
use crate::link::offload::RxMeta;
use crate::link::{gso, Medium};
use crate::tcp::State;
use crate::time::Instant;
use crate::trace::{TraceEvent, Tracer};

/// One arrival from the device: in TAP mode a frame, which goes through the Ethernet layer
/// (ARP is answered there; an IP payload continues up). With offloads the metadata says
/// whether the kernel vouches for the checksum and whether this is a super-segment.
pub(crate) fn deliver(
    iface: &mut Interface,
    link: &mut Option<EthernetLayer>,
    bytes: &[u8],
    meta: RxMeta,
    now: Instant,
) {
    match link.as_mut() {
        Some(eth) => {
            if let Some(ip) = eth.handle_frame(bytes, now) {
                iface.handle_packet_meta(ip, meta, now);
            }
        }
        None => iface.handle_packet_meta(bytes, meta, now),
    }
}

/// Fire the host's and the Ethernet layer's timers that are due; true when the host's
/// fired (something may have changed).
pub(crate) fn fire_timers(
    iface: &mut Interface,
    link: &mut Option<EthernetLayer>,
    now: Instant,
) -> bool {
    let fired = iface.wake_at().is_some_and(|at| at <= now);
    if fired {
        iface.handle_timeout(now);
    }
    if let Some(eth) = link.as_mut() {
        if eth.poll_at().is_some_and(|at| at <= now) {
            eth.handle_timeout(now);
        }
    }
    fired
}

/// When the host, the Ethernet layer or the device (middleware holding packets: a fault
/// injector's delays) next need a round: the host's part may be early
/// ([`Interface::wake_at`]), which costs a round that finds nothing due.
pub(crate) fn next_deadline(
    iface: &mut Interface,
    link: Option<&EthernetLayer>,
    device: Option<Instant>,
) -> Option<Instant> {
    [
        iface.wake_at(),
        link.and_then(EthernetLayer::poll_at),
        device,
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Still exchanging data or closing (not CLOSED, TIME-WAIT or a listener).
pub(crate) fn is_open(state: State) -> bool {
    !matches!(state, State::Closed | State::TimeWait | State::Listen)
}

/// Some connection is still open.
pub(crate) fn any_open(iface: &Interface) -> bool {
    iface
        .tcp()
        .connection_states()
        .iter()
        .any(|(_, _, _, s)| is_open(*s))
}

/// A graceful stop begins: every connection gets a FIN after its queued data
/// (RFC 9293 §3.10.4 CLOSE).
pub(crate) fn close_all(iface: &mut Interface, now: Instant) {
    for (id, _, _, _) in iface.tcp().connection_states() {
        iface.tcp_mut().shutdown(id, now);
    }
}

/// The grace period is over: reset what is still open (RFC 9293 §3.10.5 ABORT).
pub(crate) fn abort_open(iface: &mut Interface, now: Instant) {
    for (id, _, _, state) in iface.tcp().connection_states() {
        if is_open(state) {
            iface.tcp_mut().abort(id, now);
        }
    }
}

/// Every layer's counters of one stack.
pub fn snapshot(
    iface: &Interface,
    link: Option<&EthernetLayer>,
    faults: Option<FaultStats>,
) -> StackStats {
    StackStats {
        ip: iface.stats().clone(),
        tcp: iface.tcp().stats().clone(),
        udp: iface.udp().stats().clone(),
        link: link.map(EthernetLayer::stats),
        states: iface.tcp().state_counts(),
        faults: faults.unwrap_or_default(),
    }
}

/// Show one packet that crossed the device: an ordinary one as it is; a super-segment as
/// what it is (one line) and then as the wire segments it is made of, with complete
/// checksums (what a capture shows, [`gso::wire_view`]).
pub(crate) fn trace_packet(
    tracer: &Tracer,
    tap: bool,
    dir: Direction,
    packet: &[u8],
    gso: u16,
    csum: bool,
) {
    let event = |bytes: Vec<u8>| match tap {
        true => TraceEvent::Frame { dir, bytes },
        false => TraceEvent::Packet { dir, bytes },
    };
    let medium = if tap { Medium::Ethernet } else { Medium::Ip };
    if gso == 0 {
        gso::wire_view(medium, packet, gso, csum, &mut |p| {
            tracer.emit(event(p.to_vec()))
        });
        return;
    }
    let mut pieces = Vec::new();
    gso::wire_view(medium, packet, gso, csum, &mut |p| pieces.push(p.to_vec()));
    tracer.emit(TraceEvent::SuperSegment {
        dir,
        len: packet.len(),
        segments: pieces.len(),
        gso_size: gso,
    });
    for p in pieces {
        tracer.emit(event(p));
    }
}

/// Hand the transport layer's queued decisions to `tracer`, in order.
pub(crate) fn emit_tcp(tracer: &Tracer, iface: &mut Interface) {
    for e in iface.tcp_mut().take_trace_events() {
        tracer.emit(TraceEvent::Tcp(e));
    }
}
