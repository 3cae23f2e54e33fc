//! The threaded runtime's round when a tracer is attached (`--trace`, `--step`).
//!
//! Same work as the plain round, but packet by packet: each packet is shown before the
//! layers process it, and the transport layer's decisions ([`crate::tcp::TcpEvent`]) are
//! drained right after it, so the trace reads in causal order. Every event is handed to
//! the tracer *outside* the lock: the step-mode tracer blocks waiting for the user, and
//! the socket threads must still be able to take the lock meanwhile.

use super::{timers_and_transmit, StackHandle};
use crate::link::offload::RxMeta;
use crate::link::Direction;
use crate::stack::round::{self, trace_packet};
use crate::time::Instant;
use crate::trace::{TraceEvent, Tracer};

fn emit_tcp(tracer: &Tracer, events: Vec<crate::tcp::TcpEvent>) {
    for e in events {
        tracer.emit(TraceEvent::Tcp(e));
    }
}

/// Process `inbound`, fire due timers, collect packets to send into `outbound`; returns
/// whether anything socket-visible changed (as the plain round does).
pub(super) fn traced_round(
    handle: &StackHandle,
    tracer: &Tracer,
    tap: bool,
    inbound: &mut Vec<(Vec<u8>, RxMeta)>,
    outbound: &mut Vec<Vec<u8>>,
    next_timer: &mut Option<Instant>,
) -> bool {
    let mut changed = false;
    // Decisions queued by application calls since the last round (e.g. CLOSE) come first.
    let pending = handle.lock().tcp_mut().take_trace_events();
    emit_tcp(tracer, pending);
    for (p, meta) in inbound.drain(..) {
        trace_packet(
            tracer,
            tap,
            Direction::In,
            &p,
            meta.gso_size,
            meta.csum_trusted,
        );
        let events = {
            let mut core = handle.lock();
            let mut link = handle.shared.link.lock().unwrap_or_else(|e| e.into_inner());
            let now = handle.now();
            round::deliver(&mut core, &mut link, &p, meta, now);
            drop(link);
            changed |= core.take_events();
            core.tcp_mut().take_trace_events()
        };
        emit_tcp(tracer, events);
    }
    let events = {
        let mut core = handle.lock();
        let mut link = handle.shared.link.lock().unwrap_or_else(|e| e.into_inner());
        let now = handle.now();
        *next_timer = timers_and_transmit(&mut core, &mut link, now, outbound, &mut Vec::new());
        drop(link);
        changed |= core.take_events();
        core.tcp_mut().take_trace_events()
    };
    emit_tcp(tracer, events);
    changed
}
