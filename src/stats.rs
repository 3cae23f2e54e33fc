//! Per-layer counters for people: a text summary (printed on exit and on SIGUSR1) and a
//! JSON document (served at `GET /_stats`).
//!
//! ```text
//! tunstack statistics (per layer)
//!   link    packets read 14  written 12
//!   ip      in 14  out 12  echo replies 0  dropped 0
//!   tcp     segments in 14  out 12  dropped 1 (sequence number not acceptable 1)
//!           retransmits 0 (timeouts 0, fast 0)  resets sent 0  received 0  window probes 0
//!           connections: accepted 2  opened 0  timed out 0  backlog overflows 0
//!           now: ESTABLISHED 1  TIME-WAIT 1
//!   http    requests 3  responses 2xx 3  3xx 0  4xx 0  5xx 0
//! ```
//!
//! The JSON is written by hand: its shape is fixed and small, so a serializer dependency
//! would buy nothing (the shape is pinned by the unit tests below).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::http::{Handler, Request, Response};
use crate::stack::StackStats;

/// Counters of the application layer, shared by the server's threads.
#[derive(Debug, Default)]
pub struct HttpCounters {
    requests: AtomicU64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    classes: [AtomicU64; 5],
}

/// A snapshot of [`HttpCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests that reached the handler.
    pub requests: u64,
    /// Responses by status class: index 0 is 1xx, ..., 4 is 5xx.
    pub responses: [u64; 5],
}

impl HttpCounters {
    /// Count one response with `status`.
    pub fn record(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a response the server gave without running the handler (the 503 of a
    /// connection over the limit): in its status class, not as a request.
    pub fn record_refusal(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> HttpStats {
        let mut responses = [0; 5];
        for (r, c) in responses.iter_mut().zip(&self.classes) {
            *r = c.load(Ordering::Relaxed);
        }
        HttpStats {
            requests: self.requests.load(Ordering::Relaxed),
            responses,
        }
    }
}

/// A handler wrapper that counts requests and responses in [`HttpCounters`].
pub struct CountingHandler<H> {
    inner: H,
    counters: Arc<HttpCounters>,
}

impl<H: Handler> CountingHandler<H> {
    /// Wrap `inner`, counting into `counters`.
    pub fn new(inner: H, counters: Arc<HttpCounters>) -> CountingHandler<H> {
        CountingHandler { inner, counters }
    }
}

impl<H: Handler> Handler for CountingHandler<H> {
    fn handle(&self, req: &Request) -> Response {
        let resp = self.inner.handle(req);
        self.counters.record(resp.status);
        resp
    }
}

/// Number of connections in `state` (by its RFC name).
fn state_count(stats: &StackStats, name: &str) -> usize {
    stats
        .states
        .iter()
        .filter(|(s, _)| s.name() == name)
        .map(|(_, n)| n)
        .sum()
}

/// The per-layer text summary (several lines, ending with a newline).
pub fn summary(stats: &StackStats, http: Option<&HttpStats>) -> String {
    let ip = &stats.ip;
    let tcp = &stats.tcp;
    let mut s = String::with_capacity(600);
    let _ = writeln!(s, "tunstack statistics (per layer)");
    match &stats.link {
        // TAP mode: the device carries frames; ARP lives at this layer.
        Some(l) => {
            let _ = writeln!(
                s,
                "  link    frames read {}  written {}  dropped {}",
                l.frames_in,
                l.frames_out,
                l.drops.values().sum::<u64>()
            );
            let _ = writeln!(
                s,
                "          arp requests sent {}  received {}  replies sent {}  received {}  resolved {}  timeouts {}",
                l.arp.requests_sent,
                l.arp.requests_received,
                l.arp.replies_sent,
                l.arp.replies_received,
                l.arp.resolved,
                l.arp.timeouts
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  link    packets read {}  written {}",
                ip.packets_in, ip.packets_out
            );
        }
    }
    let f = &stats.faults;
    if f.packets > 0 {
        // Injected on purpose (`--loss`, `--dup`, …, link::fault), both directions.
        let _ = writeln!(
            s,
            "          faults injected: packets: {} dropped: {} duplicated: {} reordered: {} corrupted: {} delayed: {}",
            f.packets, f.dropped, f.duplicated, f.reordered, f.corrupted, f.delayed
        );
    }
    let _ = write!(
        s,
        "  ip      in {}  out {}  echo replies {}  dropped {}",
        ip.packets_in,
        ip.packets_out,
        ip.echo_replies,
        ip.dropped()
    );
    if !ip.drops.is_empty() {
        let reasons: Vec<String> = ip.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = write!(s, " ({})", reasons.join(", "));
    }
    s.push('\n');
    if ip.icmp_rate_limited_global > 0 || ip.icmp_rate_limited_host > 0 {
        // ICMP errors held back by the token buckets (ip::icmp::ErrorRateLimiter).
        let _ = writeln!(
            s,
            "          icmp errors rate-limited: global {}  per destination {}",
            ip.icmp_rate_limited_global, ip.icmp_rate_limited_host
        );
    }
    if ip.super_packets_in > 0 || ip.super_packets_out > 0 {
        // Device offloads (link::offload): coalesced packets the kernel handed us (GRO) and
        // super-segments we handed it to cut (TSO); segments count what the wire carries.
        let _ = writeln!(
            s,
            "          offload super-segments in {}  out {}",
            ip.super_packets_in, ip.super_packets_out
        );
    }
    let _ = write!(
        s,
        "  tcp     segments in {}  out {}  dropped {}",
        tcp.segments_in, tcp.segments_out, tcp.dropped
    );
    if !tcp.drops.is_empty() {
        let reasons: Vec<String> = tcp.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = write!(s, " ({})", reasons.join(", "));
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "          retransmits {} (timeouts {}, fast {})  resets sent {}  received {}  window probes {}",
        tcp.retransmits,
        tcp.rto_expirations,
        tcp.fast_retransmits,
        tcp.resets_sent,
        tcp.resets_received,
        tcp.window_probes
    );
    let _ = writeln!(
        s,
        "          connections: accepted {}  opened {}  timed out {}  backlog overflows {}",
        tcp.connections_accepted, tcp.connections_opened, tcp.timeouts, tcp.listen_overflows
    );
    let mut states: Vec<(&str, usize)> = stats.states.iter().map(|(s, n)| (s.name(), *n)).collect();
    states.sort();
    let now: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(
        s,
        "          now: {}",
        if now.is_empty() {
            "no connections".to_string()
        } else {
            now.join("  ")
        }
    );
    let udp = &stats.udp;
    let _ = writeln!(
        s,
        "  udp     datagrams in {}  out {}  delivered {}  no port {}  queue drops {}",
        udp.datagrams_in, udp.datagrams_out, udp.delivered, udp.no_port, udp.queue_drops
    );
    if let Some(h) = http {
        let _ = writeln!(
            s,
            "  http    requests {}  responses 2xx {}  3xx {}  4xx {}  5xx {}",
            h.requests, h.responses[1], h.responses[2], h.responses[3], h.responses[4]
        );
    }
    s
}

/// A JSON string literal for `s` (RFC 8259 §7).
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"a": 1, "b": 2}` from pairs.
fn json_object<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let fields: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{}: {v}", json_string(k)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Every layer's counters as one JSON object:
/// `{"link": {...}, "ip": {..., "drops": {...}}, "tcp": {..., "connections": {...}}, "http": {...}}`
/// (`http` only when given). Connection states use the RFC names as keys; all eleven are
/// always present so a client can rely on the shape.
pub fn to_json(stats: &StackStats, http: Option<&HttpStats>) -> String {
    let ip = &stats.ip;
    let tcp = &stats.tcp;
    let n = |v: u64| v.to_string();
    let mut link_fields = vec![
        ("packets_in", n(ip.packets_in)),
        ("packets_out", n(ip.packets_out)),
    ];
    if let Some(l) = &stats.link {
        // TAP mode: frames and ARP.
        let arp = json_object([
            ("requests_sent", n(l.arp.requests_sent)),
            ("requests_received", n(l.arp.requests_received)),
            ("replies_sent", n(l.arp.replies_sent)),
            ("replies_received", n(l.arp.replies_received)),
            ("resolved", n(l.arp.resolved)),
            ("timeouts", n(l.arp.timeouts)),
            ("queue_drops", n(l.arp.queue_drops)),
            ("conflicts", n(l.arp.conflicts)),
        ]);
        link_fields.push(("frames_in", n(l.frames_in)));
        link_fields.push(("frames_out", n(l.frames_out)));
        link_fields.push((
            "drops",
            json_object(l.drops.iter().map(|(r, c)| (*r, n(*c)))),
        ));
        link_fields.push(("arp", arp));
    }
    let link = json_object(link_fields);
    let drops = json_object(ip.drops.iter().map(|(r, c)| (*r, n(*c))));
    let ip_obj = json_object([
        ("packets_in", n(ip.packets_in)),
        ("packets_out", n(ip.packets_out)),
        ("echo_replies", n(ip.echo_replies)),
        ("dropped", n(ip.dropped())),
        ("drops", drops),
        ("icmp_rate_limited_global", n(ip.icmp_rate_limited_global)),
        ("icmp_rate_limited_host", n(ip.icmp_rate_limited_host)),
    ]);
    use crate::tcp::State;
    let all = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];
    let connections = json_object(
        all.iter()
            .map(|s| (s.name(), state_count(stats, s.name()).to_string())),
    );
    let tcp_obj = json_object([
        ("segments_in", n(tcp.segments_in)),
        ("segments_out", n(tcp.segments_out)),
        ("retransmits", n(tcp.retransmits)),
        ("rto_expirations", n(tcp.rto_expirations)),
        ("fast_retransmits", n(tcp.fast_retransmits)),
        ("resets_sent", n(tcp.resets_sent)),
        ("resets_received", n(tcp.resets_received)),
        ("dropped", n(tcp.dropped)),
        (
            "drops",
            json_object(tcp.drops.iter().map(|(r, c)| (*r, n(*c)))),
        ),
        ("connections_opened", n(tcp.connections_opened)),
        ("connections_accepted", n(tcp.connections_accepted)),
        ("listen_overflows", n(tcp.listen_overflows)),
        ("timeouts", n(tcp.timeouts)),
        ("window_probes", n(tcp.window_probes)),
        ("connections", connections),
    ]);
    let udp = &stats.udp;
    let udp_obj = json_object([
        ("datagrams_in", n(udp.datagrams_in)),
        ("datagrams_out", n(udp.datagrams_out)),
        ("delivered", n(udp.delivered)),
        ("no_port", n(udp.no_port)),
        ("queue_drops", n(udp.queue_drops)),
        (
            "drops",
            json_object(udp.drops.iter().map(|(r, c)| (*r, n(*c)))),
        ),
    ]);
    let mut layers = vec![
        ("link", link),
        ("ip", ip_obj),
        ("tcp", tcp_obj),
        ("udp", udp_obj),
    ];
    if let Some(h) = http {
        let responses = json_object([
            ("1xx", n(h.responses[0])),
            ("2xx", n(h.responses[1])),
            ("3xx", n(h.responses[2])),
            ("4xx", n(h.responses[3])),
            ("5xx", n(h.responses[4])),
        ]);
        layers.push((
            "http",
            json_object([("requests", n(h.requests)), ("responses", responses)]),
        ));
    }
    let mut out = json_object(layers);
    out.push('\n');
    out
}

/// The snapshots of several stacks (one per queue) added up as one; `None` when there
/// is none.
pub fn merge(all: &[StackStats]) -> Option<StackStats> {
    let (first, rest) = all.split_first()?;
    let mut total = first.clone();
    for s in rest {
        merge_stats(&mut total, s);
    }
    Some(total)
}

fn add_map(
    into: &mut std::collections::BTreeMap<&'static str, u64>,
    from: &std::collections::BTreeMap<&'static str, u64>,
) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

/// Add `other`'s counters to `into` (several queues' stacks reported as one). Every
/// field is named, so that a new counter cannot be forgotten here silently.
pub fn merge_stats(into: &mut StackStats, other: &StackStats) {
    merge_ip(&mut into.ip, &other.ip);
    merge_tcp(&mut into.tcp, &other.tcp);
    merge_udp(&mut into.udp, &other.udp);
    match (into.link.as_mut(), other.link.as_ref()) {
        (Some(a), Some(b)) => merge_link(a, b),
        (None, Some(b)) => into.link = Some(b.clone()),
        _ => {}
    }
    for (state, n) in &other.states {
        match into.states.iter_mut().find(|(s, _)| s == state) {
            Some((_, m)) => *m += n,
            None => into.states.push((*state, *n)),
        }
    }
    into.faults.add(&other.faults);
}

fn merge_ip(a: &mut crate::stack::IfaceStats, b: &crate::stack::IfaceStats) {
    let crate::stack::IfaceStats {
        packets_in,
        packets_out,
        echo_replies,
        drops,
        frag,
        datagrams_fragmented,
        time_exceeded_sent,
        icmp_errors,
        super_packets_in,
        super_packets_out,
        icmp_rate_limited_global,
        icmp_rate_limited_host,
    } = b;
    a.icmp_rate_limited_global += icmp_rate_limited_global;
    a.icmp_rate_limited_host += icmp_rate_limited_host;
    a.super_packets_in += super_packets_in;
    a.super_packets_out += super_packets_out;
    a.packets_in += packets_in;
    a.packets_out += packets_out;
    a.echo_replies += echo_replies;
    add_map(&mut a.drops, drops);
    let crate::ip::frag::FragStats {
        fragments_in,
        reassembled,
        timeouts,
        overlaps,
        duplicates,
        too_big,
        malformed,
        memory_full,
    } = frag;
    a.frag.fragments_in += fragments_in;
    a.frag.reassembled += reassembled;
    a.frag.timeouts += timeouts;
    a.frag.overlaps += overlaps;
    a.frag.duplicates += duplicates;
    a.frag.too_big += too_big;
    a.frag.malformed += malformed;
    a.frag.memory_full += memory_full;
    a.datagrams_fragmented += datagrams_fragmented;
    a.time_exceeded_sent += time_exceeded_sent;
    add_map(&mut a.icmp_errors, icmp_errors);
}

fn merge_tcp(a: &mut crate::tcp::TcpStats, b: &crate::tcp::TcpStats) {
    let crate::tcp::TcpStats {
        segments_in,
        segments_out,
        retransmits,
        resets_sent,
        resets_received,
        dropped,
        drops,
        connections_opened,
        connections_accepted,
        listen_overflows,
        timeouts,
        window_probes,
        rto_expirations,
        fast_retransmits,
        acks_rate_limited,
        tail_loss_probes,
        time_wait_reclaimed,
        lost_retransmits,
        dsacks_received,
        undos,
        spurious_rtos,
        paws_rejected,
        delayed_acks,
        keepalive_probes,
        syn_cookies_sent,
        syn_cookies_validated,
        syn_cookies_failed,
        syn_queue_pruned,
        super_segments_out,
    } = b;
    a.super_segments_out += super_segments_out;
    a.segments_in += segments_in;
    a.segments_out += segments_out;
    a.retransmits += retransmits;
    a.resets_sent += resets_sent;
    a.resets_received += resets_received;
    a.dropped += dropped;
    add_map(&mut a.drops, drops);
    a.connections_opened += connections_opened;
    a.connections_accepted += connections_accepted;
    a.listen_overflows += listen_overflows;
    a.timeouts += timeouts;
    a.window_probes += window_probes;
    a.rto_expirations += rto_expirations;
    a.fast_retransmits += fast_retransmits;
    a.acks_rate_limited += acks_rate_limited;
    a.tail_loss_probes += tail_loss_probes;
    a.time_wait_reclaimed += time_wait_reclaimed;
    a.lost_retransmits += lost_retransmits;
    a.dsacks_received += dsacks_received;
    a.undos += undos;
    a.spurious_rtos += spurious_rtos;
    a.paws_rejected += paws_rejected;
    a.delayed_acks += delayed_acks;
    a.keepalive_probes += keepalive_probes;
    a.syn_cookies_sent += syn_cookies_sent;
    a.syn_cookies_validated += syn_cookies_validated;
    a.syn_cookies_failed += syn_cookies_failed;
    a.syn_queue_pruned += syn_queue_pruned;
}

fn merge_udp(a: &mut crate::udp::UdpStats, b: &crate::udp::UdpStats) {
    let crate::udp::UdpStats {
        datagrams_in,
        datagrams_out,
        delivered,
        no_port,
        queue_drops,
        drops,
    } = b;
    a.datagrams_in += datagrams_in;
    a.datagrams_out += datagrams_out;
    a.delivered += delivered;
    a.no_port += no_port;
    a.queue_drops += queue_drops;
    add_map(&mut a.drops, drops);
}

/// TAP mode with several queues: frames and drops add up; the ARP counters too.
fn merge_link(
    a: &mut crate::link::ethernet_layer::EthernetStats,
    b: &crate::link::ethernet_layer::EthernetStats,
) {
    a.frames_in += b.frames_in;
    a.frames_out += b.frames_out;
    add_map(&mut a.drops, &b.drops);
    a.arp.requests_sent += b.arp.requests_sent;
    a.arp.requests_received += b.arp.requests_received;
    a.arp.replies_sent += b.arp.replies_sent;
    a.arp.replies_received += b.arp.replies_received;
    a.arp.resolved += b.arp.resolved;
    a.arp.timeouts += b.arp.timeouts;
    a.arp.queue_drops += b.arp.queue_drops;
    a.arp.evictions += b.arp.evictions;
    a.arp.conflicts += b.arp.conflicts;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::IfaceStats;
    use crate::tcp::{State, TcpStats};

    fn sample() -> StackStats {
        let mut ip = IfaceStats {
            packets_in: 14,
            packets_out: 12,
            echo_replies: 1,
            ..IfaceStats::default()
        };
        ip.drops.insert("bad-checksum", 2);
        let mut tcp = TcpStats {
            segments_in: 13,
            segments_out: 11,
            retransmits: 1,
            connections_accepted: 2,
            ..TcpStats::default()
        };
        tcp.drop("sequence number not acceptable");
        StackStats {
            ip,
            tcp,
            udp: Default::default(),
            link: None,
            states: vec![(State::Established, 1), (State::TimeWait, 1)],
            faults: Default::default(),
        }
    }

    #[test]
    fn json_has_every_layer_and_counter() {
        let http = HttpStats {
            requests: 3,
            responses: [0, 2, 0, 1, 0],
        };
        let json = to_json(&sample(), Some(&http));
        assert_eq!(
            json,
            concat!(
                r#"{"link": {"packets_in": 14, "packets_out": 12}, "#,
                r#""ip": {"packets_in": 14, "packets_out": 12, "echo_replies": 1, "dropped": 2, "drops": {"bad-checksum": 2}, "icmp_rate_limited_global": 0, "icmp_rate_limited_host": 0}, "#,
                r#""tcp": {"segments_in": 13, "segments_out": 11, "retransmits": 1, "rto_expirations": 0, "#,
                r#""fast_retransmits": 0, "resets_sent": 0, "resets_received": 0, "dropped": 1, "drops": {"sequence number not acceptable": 1}, "#,
                r#""connections_opened": 0, "connections_accepted": 2, "listen_overflows": 0, "timeouts": 0, "#,
                r#""window_probes": 0, "connections": {"CLOSED": 0, "LISTEN": 0, "SYN-SENT": 0, "#,
                r#""SYN-RECEIVED": 0, "ESTABLISHED": 1, "FIN-WAIT-1": 0, "FIN-WAIT-2": 0, "CLOSE-WAIT": 0, "#,
                r#""CLOSING": 0, "LAST-ACK": 0, "TIME-WAIT": 1}}, "#,
                r#""udp": {"datagrams_in": 0, "datagrams_out": 0, "delivered": 0, "no_port": 0, "queue_drops": 0, "drops": {}}, "#,
                r#""http": {"requests": 3, "responses": {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 0}}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_without_http_and_with_empty_drops() {
        let json = to_json(
            &StackStats {
                ip: IfaceStats::default(),
                tcp: TcpStats::default(),
                udp: Default::default(),
                link: None,
                states: Vec::new(),
                faults: Default::default(),
            },
            None,
        );
        assert!(json.contains(r#""drops": {}"#), "{json}");
        assert!(!json.contains("\"http\""), "{json}");
        assert!(json.starts_with('{') && json.ends_with("}\n"), "{json}");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn summary_names_each_layer() {
        let http = HttpStats {
            requests: 3,
            responses: [0, 3, 0, 0, 0],
        };
        let text = summary(&sample(), Some(&http));
        for needle in [
            "link    packets read 14  written 12",
            "ip      in 14  out 12  echo replies 1  dropped 2 (bad-checksum 2)",
            "tcp     segments in 13  out 11  dropped 1 (sequence number not acceptable 1)",
            "retransmits 1",
            "now: ESTABLISHED 1  TIME-WAIT 1",
            "http    requests 3  responses 2xx 3",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // ICMP errors held back by the rate limit: a line of their own, only when some were.
        assert!(!text.contains("rate-limited"), "{text}");
        let mut stats = sample();
        stats.ip.icmp_rate_limited_global = 4;
        stats.ip.icmp_rate_limited_host = 1993;
        let text = summary(&stats, Some(&http));
        let line = "icmp errors rate-limited: global 4  per destination 1993";
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    #[test]
    fn summary_in_tap_mode_counts_frames_and_arp() {
        let mut stats = sample();
        stats.udp.datagrams_in = 4;
        stats.udp.no_port = 1;
        let mut link = crate::link::ethernet_layer::EthernetStats {
            frames_in: 20,
            frames_out: 15,
            ..Default::default()
        };
        link.arp.replies_sent = 2;
        stats.link = Some(link);
        let text = summary(&stats, None);
        for needle in [
            "link    frames read 20  written 15  dropped 0",
            "arp requests sent 0  received 0  replies sent 2",
            "udp     datagrams in 4  out 0  delivered 0  no port 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        let json = to_json(&stats, None);
        for needle in [
            r#""frames_in": 20, "frames_out": 15"#,
            r#""arp": {"requests_sent": 0"#,
            r#""replies_sent": 2"#,
            r#""udp": {"datagrams_in": 4"#,
            r#""no_port": 1"#,
        ] {
            assert!(json.contains(needle), "missing {needle:?} in\n{json}");
        }
    }

    #[test]
    fn http_counters_classify_statuses() {
        let c = HttpCounters::default();
        for s in [200, 204, 304, 404, 500, 99, 700] {
            c.record(s);
        }
        let snap = c.snapshot();
        assert_eq!(snap.requests, 7);
        assert_eq!(snap.responses, [1, 2, 1, 1, 2]);
        c.record_refusal(503);
        let snap = c.snapshot();
        assert_eq!((snap.requests, snap.responses[4]), (7, 3));
    }

    #[test]
    fn merged_stats_add_up() {
        let mut a = crate::stack::evloop::snapshot(
            &crate::stack::Interface::new(
                std::net::Ipv4Addr::new(10, 0, 0, 2),
                crate::tcp::Config::default(),
                1,
            ),
            None,
            None,
        );
        a.tcp.segments_in = 2;
        a.ip.drops.insert("bad-checksum", 1);
        a.states.push((State::Established, 3));
        let mut b = a.clone();
        b.states.push((State::TimeWait, 1));
        let a = merge(&[a, b]).expect("two snapshots");
        assert_eq!(a.tcp.segments_in, 4);
        assert_eq!(a.ip.drops.get("bad-checksum"), Some(&2));
        assert_eq!(
            a.states,
            vec![(State::Established, 6), (State::TimeWait, 1)]
        );
    }
}
