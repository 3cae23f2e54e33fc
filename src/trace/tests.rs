//! Scenario tests of the trace on the sans-IO parts: two [`Interface`]s wired back to back
//! on a virtual clock, the server's side rendered as `--trace` renders it.

use std::io::{Cursor, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::render::{Palette, Printer};
use super::step::{StepCommand, Stepper, PROMPT};
use super::{Direction, HttpEvent, SocketCall, SocketEvent, TraceEvent};
use crate::stack::Interface;
use crate::tcp::{self, State, TcpEvent, TcpEventKind};
use crate::time::Instant;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Two hosts, the server's trace so far, and the client's transport events.
struct Pair {
    server: Interface,
    client: Interface,
    printer: Printer,
    trace: String,
    client_events: Vec<TcpEvent>,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let mut server = Interface::new(SERVER, tcp::Config::default(), 1);
        let mut client = Interface::new(CLIENT, tcp::Config::default(), 2);
        server.tcp_mut().set_trace(true);
        client.tcp_mut().set_trace(true);
        Pair {
            server,
            client,
            printer: Printer::new(Palette::PLAIN),
            trace: String::new(),
            client_events: Vec::new(),
            now: Instant::from_secs(10),
        }
    }

    fn show(&mut self, ev: TraceEvent) {
        let text = self.printer.render_at(&ev, Duration::from_millis(5));
        self.trace.push_str(&text);
    }

    /// Render whatever the server's transport layer decided since the last call.
    fn server_events(&mut self) {
        for e in self.server.tcp_mut().take_trace_events() {
            self.show(TraceEvent::Tcp(e));
        }
        self.client_events
            .extend(self.client.tcp_mut().take_trace_events());
    }

    /// Move packets both ways until both sides are quiet; `drop_out` loses the server's
    /// packets instead of delivering them.
    fn pump_with(&mut self, drop_out: bool) {
        for _ in 0..100 {
            let mut moved = false;
            self.server_events();
            while let Some(p) = self.client.poll_transmit(self.now) {
                self.show(TraceEvent::Packet {
                    dir: Direction::In,
                    bytes: p.clone(),
                });
                self.server.handle_packet(&p, self.now);
                self.server_events();
                moved = true;
            }
            while let Some(p) = self.server.poll_transmit(self.now) {
                self.server_events();
                self.show(TraceEvent::Packet {
                    dir: Direction::Out,
                    bytes: p.clone(),
                });
                if !drop_out {
                    self.client.handle_packet(&p, self.now);
                }
                moved = true;
            }
            self.server_events();
            if !moved {
                return;
            }
        }
        panic!("the pair never went quiet:\n{}", self.trace);
    }

    fn pump(&mut self) {
        self.pump_with(false)
    }

    /// The server listens on port 80 and the client connects to it (nothing sent yet).
    fn listen_and_connect(&mut self) -> tcp::ListenerId {
        let listener = self
            .server
            .tcp_mut()
            .listen(SocketAddrV4::new(SERVER, 80), 8)
            .expect("listen");
        self.client
            .tcp_mut()
            .connect(
                SocketAddrV4::new(CLIENT, 0),
                SocketAddrV4::new(SERVER, 80),
                self.now,
            )
            .expect("connect");
        listener
    }
}

fn index_of(trace: &str, needle: &str) -> usize {
    trace
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing from the trace:\n{trace}"))
}

#[test]
fn trace_of_a_connection_shows_every_layer_and_transition() {
    let mut p = Pair::new();
    let listener = p
        .server
        .tcp_mut()
        .listen(SocketAddrV4::new(SERVER, 80), 8)
        .expect("listen");
    let now = p.now;
    let c = p
        .client
        .tcp_mut()
        .connect(
            SocketAddrV4::new(CLIENT, 0),
            SocketAddrV4::new(SERVER, 80),
            now,
        )
        .expect("connect");
    p.pump();
    let s = p.server.tcp_mut().accept(listener).expect("accepted");
    p.show(TraceEvent::Socket(SocketEvent {
        local: SocketAddrV4::new(SERVER, 80).into(),
        remote: p.server.tcp().peer_addr(s),
        call: SocketCall::Accept,
        thread: Some("main".into()),
        at: std::panic::Location::caller(),
    }));
    let request = b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n";
    p.client.tcp_mut().send(c, request, now).expect("send");
    p.pump();
    let mut buf = [0u8; 256];
    let n = p.server.tcp_mut().recv(s, &mut buf, now).expect("recv");
    assert_eq!(&buf[..n], request);
    p.show(TraceEvent::Http(HttpEvent::Request {
        peer: None,
        line: "GET / HTTP/1.1".into(),
        thread: None,
    }));
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    p.server.tcp_mut().send(s, response, now).expect("send");
    p.pump();
    // The client closes first (as curl does): the server goes CLOSE-WAIT, LAST-ACK, CLOSED.
    p.client.tcp_mut().shutdown(c, now);
    p.pump();
    p.server.tcp_mut().release(s, now);
    p.pump();

    let t = &p.trace;
    // Every layer of the first packet, in the diagram's order.
    let syn = index_of(t, "#1   ← in   +0.005000s  link 64 bytes from the TUN");
    let ip = index_of(t, "    ip     10.0.0.1 → 10.0.0.2  ttl 64  id ");
    assert!(syn < ip);
    index_of(t, "DF  checksum ok  proto tcp");
    // Relative and absolute sequence numbers, options decoded.
    let syn_seg = index_of(t, "[S]  seq 0 (abs ");
    index_of(t, "win 65535  <mss 1460,wscale 7,sackOK,TS val ");
    let syn_ack = index_of(t, "80 → ");
    assert!(t[syn_ack..].contains("[S.]  seq 0 (abs "), "{t}");
    index_of(t, "ack 1 (abs ");
    // The decisions sit between the packets that caused them and the answers.
    let syn_rcvd = index_of(t, "10.0.0.2:80 ↔ 10.0.0.1:");
    assert!(t[syn_rcvd..].starts_with("10.0.0.2:80 ↔ 10.0.0.1:"));
    let listen_to_syn_rcvd = index_of(t, "LISTEN → SYN-RECEIVED on SYN");
    assert!(
        syn_seg < listen_to_syn_rcvd && listen_to_syn_rcvd < syn_ack,
        "{t}"
    );
    let established = index_of(t, "SYN-RECEIVED → ESTABLISHED on ACK");
    assert!(syn_ack < established);
    // Payload summaries: the request and status lines.
    let get = index_of(t, "    data   34 bytes  GET / HTTP/1.1");
    assert!(established < get);
    index_of(t, "  ▸ socket accept() → connection from 10.0.0.1:");
    index_of(t, "on 10.0.0.2:80  [thread main]");
    index_of(t, "  ▸ http   request  GET / HTTP/1.1 → handler");
    let ok = index_of(t, "bytes  HTTP/1.1 200 OK");
    assert!(get < ok);
    index_of(t, "RTT sample ");
    // The four-way close, passive side.
    let close_wait = index_of(t, "ESTABLISHED → CLOSE-WAIT on FIN");
    let last_ack = index_of(t, "CLOSE-WAIT → LAST-ACK on CLOSE");
    let closed = index_of(t, "LAST-ACK → CLOSED on ACK of FIN");
    assert!(
        ok < close_wait && close_wait < last_ack && last_ack < closed,
        "{t}"
    );
    assert!(!t.contains('\x1b'), "plain output has no colour codes");

    // The active side's transitions, with causes, in order.
    let states: Vec<String> = p
        .client_events
        .iter()
        .filter_map(|e| match &e.kind {
            TcpEventKind::State { from, to, cause } => Some(format!("{from} → {to} on {cause}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            "CLOSED → SYN-SENT on active OPEN",
            "SYN-SENT → ESTABLISHED on SYN-ACK",
            "ESTABLISHED → FIN-WAIT-1 on CLOSE",
            "FIN-WAIT-1 → FIN-WAIT-2 on ACK of FIN",
            "FIN-WAIT-2 → TIME-WAIT on FIN",
        ]
    );
    assert!(p.client_events.iter().any(|e| matches!(
        e.kind,
        TcpEventKind::CloseTimer { what: "TIME-WAIT 2·MSL", after } if after == Duration::from_secs(60)
    )));
}

#[test]
fn a_lost_syn_ack_shows_the_timer_and_the_retransmission() {
    let mut p = Pair::new();
    p.listen_and_connect();
    // The SYN arrives, the SYN-ACK is lost.
    p.pump_with(true);
    // RFC 6298 (2.1): the initial RTO is 1 s.
    p.now += Duration::from_millis(1001);
    let now = p.now;
    p.server.handle_timeout(now);
    p.pump();
    let t = &p.trace;
    let fired = index_of(
        t,
        "retransmission timer expired (#1): back to SND.UNA, RTO now 2000 ms",
    );
    let again = index_of(t, "retransmitting seq 0 (abs ");
    assert!(fired < again, "{t}");
    assert!(t[again..].contains("[S.]  seq 0 (abs "), "{t}");
    index_of(t, "SYN-RECEIVED → ESTABLISHED on ACK");
}

#[test]
fn a_repeated_syn_is_explained() {
    let mut p = Pair::new();
    p.listen_and_connect();
    p.pump_with(true);
    // The client's timer fires first: it sends its SYN again.
    p.now += Duration::from_millis(1001);
    let now = p.now;
    p.client.handle_timeout(now);
    p.pump();
    let t = &p.trace;
    let repeated = index_of(
        t,
        "the peer repeated its SYN (our SYN-ACK was lost or late)",
    );
    let again = index_of(t, "retransmitting seq 0 (abs ");
    assert!(repeated < again, "{t}");
    index_of(t, "SYN-RECEIVED → ESTABLISHED on ACK");
}

#[test]
fn no_events_are_recorded_when_tracing_is_off() {
    let mut server = Interface::new(SERVER, tcp::Config::default(), 1);
    let mut client = Interface::new(CLIENT, tcp::Config::default(), 2);
    server
        .tcp_mut()
        .listen(SocketAddrV4::new(SERVER, 80), 8)
        .expect("listen");
    let now = Instant::from_secs(1);
    client
        .tcp_mut()
        .connect(
            SocketAddrV4::new(CLIENT, 0),
            SocketAddrV4::new(SERVER, 80),
            now,
        )
        .expect("connect");
    for _ in 0..4 {
        while let Some(pkt) = client.poll_transmit(now) {
            server.handle_packet(&pkt, now);
        }
        while let Some(pkt) = server.poll_transmit(now) {
            client.handle_packet(&pkt, now);
        }
    }
    let established = server
        .tcp()
        .connection_states()
        .iter()
        .any(|(_, _, _, s)| *s == State::Established);
    assert!(established, "the handshake completed");
    assert!(server.tcp_mut().take_trace_events().is_empty());
    assert!(client.tcp_mut().take_trace_events().is_empty());
}

#[test]
fn colours_only_when_asked() {
    let ev = TraceEvent::Tcp(TcpEvent {
        local: SocketAddrV4::new(SERVER, 80).into(),
        remote: SocketAddrV4::new(CLIENT, 5000).into(),
        kind: TcpEventKind::State {
            from: State::SynReceived,
            to: State::Established,
            cause: "ACK".into(),
        },
        at: std::panic::Location::caller(),
    });
    let plain = Printer::new(Palette::PLAIN).render_at(&ev, Duration::ZERO);
    assert_eq!(
        plain,
        "  ▸ tcp    10.0.0.2:80 ↔ 10.0.0.1:5000  SYN-RECEIVED → ESTABLISHED on ACK\n"
    );
    let coloured = Printer::new(Palette { color: true }).render_at(&ev, Duration::ZERO);
    assert!(
        coloured.contains(
            "\x1b[1;36m10.0.0.2:80 ↔ 10.0.0.1:5000  SYN-RECEIVED → ESTABLISHED on ACK\x1b[0m"
        ),
        "{coloured:?}"
    );
}

#[test]
fn garbage_is_described_not_fatal() {
    let mut printer = Printer::new(Palette::PLAIN);
    for bytes in [vec![], vec![0x45], vec![0x60; 48], vec![0xff; 100]] {
        let text = printer.render_at(
            &TraceEvent::Packet {
                dir: Direction::In,
                bytes,
            },
            Duration::ZERO,
        );
        // A version nibble of 6 is decoded as IPv6 (and found wanting), the rest as IPv4.
        let want = if text.contains("48 bytes") {
            "not valid IPv6: payload length 24672, 8 bytes arrived"
        } else {
            "not valid IPv4"
        };
        assert!(text.contains(want), "{text}");
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// A SYN from 10.0.0.1:5000 to 10.0.0.2:80, as bytes.
fn syn_packet() -> Vec<u8> {
    let seg = tcp::Segment {
        src_port: 5000,
        dst_port: 80,
        seq: tcp::SeqNum(1000),
        flags: tcp::Flags {
            syn: true,
            ..tcp::Flags::default()
        },
        window: 64240,
        ..tcp::Segment::default()
    };
    let payload = seg.emit(CLIENT, SERVER);
    crate::ip::ipv4::emit(CLIENT, SERVER, crate::ip::ipv4::PROTO_TCP, 64, 1, &payload)
}

#[test]
fn stepper_pauses_at_each_layer_until_continue() {
    let out = Shared::default();
    let stepper = Stepper::new(
        Box::new(Cursor::new(b"\n\nc\n".to_vec())),
        Box::new(out.clone()),
        Palette::PLAIN,
    );
    stepper.handle(&TraceEvent::Packet {
        dir: Direction::In,
        bytes: syn_packet(),
    });
    // After `c`: shown, no more pauses.
    stepper.handle(&TraceEvent::Http(HttpEvent::Request {
        peer: None,
        line: "GET / HTTP/1.1".into(),
        thread: None,
    }));
    let text = out.text();
    assert_eq!(text.matches(PROMPT).count(), 3, "{text}");
    let link = index_of(&text, "step link   │ 40 bytes from the TUN");
    let ip = index_of(&text, "step ip     │ 10.0.0.1 → 10.0.0.2");
    let tcp = index_of(&text, "step tcp    │ 5000 → 80  [S]  seq 0 (abs 1000)");
    assert!(link < ip && ip < tcp, "bottom-up order:\n{text}");
    index_of(
        &text,
        "step http   │ request  GET / HTTP/1.1 → handler  ⇒ the HTTP handler runs now",
    );
}

#[test]
fn stepper_goes_top_down_for_packets_out_and_quits_quietly() {
    let out = Shared::default();
    let stepper = Stepper::new(
        Box::new(Cursor::new(b"\nq\n".to_vec())),
        Box::new(out.clone()),
        Palette::PLAIN,
    );
    stepper.handle(&TraceEvent::Packet {
        dir: Direction::Out,
        bytes: syn_packet(),
    });
    stepper.handle(&TraceEvent::Packet {
        dir: Direction::In,
        bytes: syn_packet(),
    });
    let text = out.text();
    assert_eq!(text.matches(PROMPT).count(), 2, "{text}");
    let tcp = index_of(&text, "step tcp ");
    let ip = index_of(&text, "step ip ");
    assert!(tcp < ip, "top-down order:\n{text}");
    assert!(!text.contains("step link"), "quiet after q:\n{text}");
    assert!(!text.contains("#2"), "quiet after q:\n{text}");
}

#[test]
fn stepper_end_of_input_continues() {
    let out = Shared::default();
    let stepper = Stepper::new(
        Box::new(Cursor::new(Vec::new())),
        Box::new(out.clone()),
        Palette::PLAIN,
    );
    for _ in 0..2 {
        stepper.handle(&TraceEvent::Packet {
            dir: Direction::In,
            bytes: syn_packet(),
        });
    }
    let text = out.text();
    assert_eq!(text.matches(PROMPT).count(), 1, "{text}");
    index_of(&text, "#2");
}

#[test]
fn stepper_next_packet_skips_to_the_next_packet() {
    let out = Shared::default();
    let stepper = Stepper::new(
        Box::new(Cursor::new(b"n\n\n\n\n".to_vec())),
        Box::new(out.clone()),
        Palette::PLAIN,
    );
    let packet = TraceEvent::Packet {
        dir: Direction::In,
        bytes: syn_packet(),
    };
    // `n` at the first layer of packet #1: the rest of #1 and the socket call run through.
    stepper.handle(&packet);
    stepper.handle(&TraceEvent::Socket(SocketEvent {
        local: SocketAddrV4::new(SERVER, 80).into(),
        remote: SocketAddrV4::new(CLIENT, 5000).into(),
        call: SocketCall::Read(10),
        thread: None,
        at: std::panic::Location::caller(),
    }));
    let before = out.text().matches(PROMPT).count();
    assert_eq!(before, 1, "{}", out.text());
    // Packet #2 pauses again at each layer.
    stepper.handle(&packet);
    let text = out.text();
    assert_eq!(text.matches(PROMPT).count(), 4, "{text}");
    index_of(&text, "step socket │ read() → 10 bytes from 10.0.0.1:5000");
}

#[test]
fn step_commands_parse() {
    assert_eq!(StepCommand::parse("\n"), StepCommand::Next);
    assert_eq!(StepCommand::parse(" n \n"), StepCommand::NextPacket);
    assert_eq!(StepCommand::parse("c\n"), StepCommand::Continue);
    assert_eq!(StepCommand::parse("q"), StepCommand::Quit);
    assert_eq!(StepCommand::parse("what"), StepCommand::Next);
}

#[test]
fn duplicate_acks_are_explained_before_the_fast_retransmit() {
    let mut p = Pair::new();
    let listener = p.listen_and_connect();
    let now = p.now;
    p.pump();
    let id = p.server.tcp_mut().accept(listener).expect("accepted");
    let data = vec![7u8; 6 * 1448];
    assert_eq!(p.server.tcp_mut().send(id, &data, now), Ok(data.len()));
    // The first data segment is lost; the five after it reach the client, which answers
    // each with a duplicate ACK (whose SACK block is shown relative, like the ACK).
    let mut first = true;
    while let Some(pkt) = p.server.poll_transmit(now) {
        p.show(TraceEvent::Packet {
            dir: Direction::Out,
            bytes: pkt.clone(),
        });
        if !std::mem::replace(&mut first, false) {
            p.client.handle_packet(&pkt, now);
        }
    }
    p.pump();
    let t = &p.trace;
    // With SACK the first duplicate ACK already proves the segment lost (RFC 6675 IsLost);
    // each one after it is explained as what it means in recovery.
    let fast = index_of(t, "fast retransmit of seq 1 (abs ");
    let second = index_of(t, "duplicate ACK #2 of seq 1 (abs ");
    index_of(t, "in fast recovery: one more segment left the network");
    assert!(fast < second, "{t}");
    // SACK blocks are relative, like the ACK.
    index_of(t, ",sack {1449:8689}>");
}

#[test]
fn windows_are_shown_scaled_after_the_handshake() {
    let mut p = Pair::new();
    p.listen_and_connect();
    p.pump();
    let t = &p.trace;
    // Every segment after the SYNs: the window the receiver uses, then the field and
    // the shift it came from; never the bare field (which looks like a collapsed window).
    let after_syns: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("    tcp") && !l.contains("[S"))
        .collect();
    assert!(!after_syns.is_empty(), "{t}");
    for line in after_syns {
        let win = &line[line.find("win ").expect(line) + 4..];
        let mut words = win.split_whitespace();
        let scaled: u32 = words.next().unwrap().parse().expect(line);
        let field_shift = words.next().expect(line);
        let (field, shift) = field_shift
            .trim_matches(|c| c == '(' || c == ')')
            .split_once("<<")
            .expect(line);
        let (field, shift): (u32, u32) = (field.parse().unwrap(), shift.parse().unwrap());
        assert_eq!(shift, 7, "{line}");
        assert_eq!(scaled, field << shift, "{line}");
        assert!(scaled > 65_535, "{line}");
    }
    // The SYNs' windows are never scaled (RFC 7323 §2.2).
    index_of(t, "win 65535  <mss");
}

#[test]
fn a_window_without_its_syns_is_marked_as_the_bare_field() {
    let mut p = Pair::new();
    p.listen_and_connect();
    p.pump();
    // A fresh printer never saw the SYNs: it cannot know the shift.
    let mut late = Printer::new(Palette::PLAIN);
    let ack = ack_packet(&mut p);
    let text = late.render_at(
        &TraceEvent::Packet {
            dir: Direction::In,
            bytes: ack,
        },
        Duration::ZERO,
    );
    assert!(
        text.contains("(field; scale unknown, SYN not seen)"),
        "{text}"
    );
}

/// A segment from the client to the server of `p` (an established pair).
fn ack_packet(p: &mut Pair) -> Vec<u8> {
    let c = p.client.tcp_mut().connection_states()[0].0;
    p.client.tcp_mut().send(c, b"x", p.now).expect("send");
    p.client.poll_transmit(p.now).expect("a segment")
}

#[test]
fn icmp_lines_name_the_type_code_and_quoted_datagram() {
    use crate::ip::{icmp, ipv4};
    let udp = crate::udp::datagram::emit(SERVER, CLIENT, 4000, 9, b"hi");
    let original = ipv4::emit(SERVER, CLIENT, ipv4::PROTO_UDP, 64, 1, &udp);
    let cases = [
        (
            icmp::dest_unreachable(icmp::CODE_PORT_UNREACHABLE, &original),
            "destination unreachable (port unreachable) about udp 10.0.0.2:4000 → 10.0.0.1:9",
        ),
        (
            icmp::dest_unreachable(icmp::CODE_PROTOCOL_UNREACHABLE, &original),
            "destination unreachable (protocol unreachable) about udp ",
        ),
        (
            icmp::time_exceeded(0, &original),
            "time exceeded (TTL exceeded in transit) about udp ",
        ),
        (
            icmp::time_exceeded(icmp::CODE_REASSEMBLY_TIME_EXCEEDED, &original),
            "time exceeded (fragment reassembly time exceeded)",
        ),
        (
            icmp::fragmentation_needed(1280, &original),
            "destination unreachable (fragmentation needed and DF set, next-hop MTU 1280)",
        ),
    ];
    for (message, expected) in cases {
        let packet = ipv4::emit(CLIENT, SERVER, ipv4::PROTO_ICMP, 64, 2, &message);
        let mut printer = Printer::new(Palette::PLAIN);
        let text = printer.render_at(
            &TraceEvent::Packet {
                dir: Direction::In,
                bytes: packet.clone(),
            },
            Duration::ZERO,
        );
        assert!(text.contains(&format!("    icmp   {expected}")), "{text}");
        let line = super::describe(Direction::In, &packet);
        assert!(line.contains(&format!("| ICMP {expected}")), "{line}");
    }
}

#[test]
fn transport_decisions_carry_the_line_that_made_them() {
    let mut p = Pair::new();
    p.listen_and_connect();
    p.pump();
    let events = p.client_events.clone();
    let syn_sent = events
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                TcpEventKind::State {
                    to: State::SynSent,
                    ..
                }
            )
        })
        .expect("the client's SYN-SENT");
    let established = events
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                TcpEventKind::State {
                    to: State::Established,
                    ..
                }
            )
        })
        .expect("the client's ESTABLISHED");
    // The caller of the state change, not the helper that queued it.
    for e in [syn_sent, established] {
        assert!(e.at.file().starts_with("src/tcp/"), "{:?}", e.at);
        let source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(e.at.file()),
        )
        .expect("the file named exists");
        let line = source
            .lines()
            .nth(e.at.line() as usize - 1)
            .expect("the line named exists");
        assert!(
            line.contains("set_state(") || line.contains("insert("),
            "{}:{} is {line:?}, not where the state changes",
            e.at.file(),
            e.at.line()
        );
    }
    assert_ne!(syn_sent.at, established.at);
}

#[test]
fn trace_code_ends_each_line_with_its_code() {
    let mut p = Pair::new();
    p.printer = Printer::new(Palette::PLAIN).with_code(true);
    p.listen_and_connect();
    p.pump();
    let t = &p.trace;
    index_of(
        t,
        "link 64 bytes from the TUN  @ src/stack/evloop.rs EventLoop::read_device",
    );
    index_of(
        t,
        "proto tcp  @ src/stack/iface.rs Interface::handle_packet_meta",
    );
    index_of(t, "@ src/tcp/endpoint.rs Tcp::on_segment\n");
    index_of(t, "@ src/tcp/connection.rs Connection::poll_transmit\n");
    let transition = index_of(t, "LISTEN → SYN-RECEIVED on SYN  @ src/tcp/");
    assert!(
        t[transition..].lines().next().unwrap().contains(".rs:"),
        "{t}"
    );
    // Off by default: the plain trace has no code column.
    let mut q = Pair::new();
    q.listen_and_connect();
    q.pump();
    assert!(!q.trace.contains(" @ src/"), "{}", q.trace);
}

#[test]
fn stepper_shows_the_code_of_every_step() {
    let out = Shared::default();
    let stepper = Stepper::new(
        Box::new(Cursor::new(b"c\n".to_vec())),
        Box::new(out.clone()),
        Palette::PLAIN,
    );
    stepper.handle(&TraceEvent::Packet {
        dir: Direction::In,
        bytes: syn_packet(),
    });
    let text = out.text();
    let tcp = index_of(&text, "step tcp    │ 5000 → 80");
    let code = index_of(&text, "            │ @ src/tcp/endpoint.rs Tcp::on_segment");
    assert!(tcp < code, "{text}");
    index_of(
        &text,
        "            │ @ src/stack/iface.rs Interface::handle_packet_meta",
    );
}

/// Every function the code map names exists in the file it names, so the map stays true
/// when code moves.
#[test]
fn code_map_names_functions_that_exist() {
    use super::render::LAYER_CODE;
    let mut named: Vec<(&str, &str)> = LAYER_CODE.iter().map(|(_, _, f, n)| (*f, *n)).collect();
    if let Some(super::render::Code::Function(f, n)) =
        super::render::event_code(&TraceEvent::Http(HttpEvent::Response {
            peer: None,
            line: String::new(),
            body_len: None,
        }))
    {
        named.push((f, n));
    }
    for (file, name) in named {
        let source =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        let (ty, function) = name.split_once("::").unwrap_or(("", name));
        assert!(
            source.contains(&format!("fn {function}("))
                || source.contains(&format!("fn {function}<")),
            "{file} has no fn {function}"
        );
        assert!(
            ty.is_empty()
                || source.contains(&format!("impl {ty} {{"))
                || source.contains(&format!("impl<D: Device> {ty}<D> {{")),
            "{file} has no impl {ty}"
        );
    }
}
