//! Reconstruction from synthetic segments, written like packetdrill scripts: who sends,
//! flags, absolute seq/ack, payload.

use super::*;
use crate::ip::ipv6;
use crate::tcp::TcpOptions;
use std::net::SocketAddrV4;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CPORT: u16 = 40000;
const SPORT: u16 = 80;
/// Initial sequence numbers: the client's, the server's.
const CI: u32 = 1000;
const SI: u32 = 5000;

const GET: &[u8] = b"GET /hello.txt HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

fn flags(f: &str) -> Flags {
    Flags {
        syn: f.contains('S'),
        ack: f.contains('A'),
        fin: f.contains('F'),
        rst: f.contains('R'),
        psh: f.contains('P'),
        urg: false,
    }
}

/// A scripted capture: one packet every millisecond.
struct Script {
    b: DiagramBuilder,
    n: usize,
    /// The window field of the next segments.
    window: u16,
    /// The window scale option of the SYNs.
    wscale: Option<u8>,
    /// Over IPv6 (fd00::1 and fd00::2), each packet with a Destination Options header.
    v6: bool,
}

impl Script {
    fn new() -> Script {
        Script {
            b: DiagramBuilder::new(),
            n: 0,
            window: 64000,
            wscale: None,
            v6: false,
        }
    }

    fn send(&mut self, from: Side, f: &str, seq: u32, ack: u32, data: &[u8]) {
        self.n += 1;
        let (src, dst, sp, dp) = match from {
            Side::Client => (CLIENT, SERVER, CPORT, SPORT),
            Side::Server => (SERVER, CLIENT, SPORT, CPORT),
        };
        let mut options = TcpOptions::default();
        if f.contains('S') {
            options.mss = Some(1460);
            options.window_scale = self.wscale;
        }
        let seg = Segment {
            src_port: sp,
            dst_port: dp,
            seq: SeqNum(seq),
            ack: SeqNum(if f.contains('A') { ack } else { 0 }),
            flags: flags(f),
            window: self.window,
            options,
            payload: data.to_vec(),
            ..Segment::default()
        };
        // Through the bytes, as a capture would deliver them.
        let packet = if self.v6 {
            let (src6, dst6) = (v6(src), v6(dst));
            let tcp = seg.emit(src6, dst6);
            let mut payload = ipv6::ext_header(ipv6::NEXT_TCP, &[1, 4, 0, 0, 0, 0]);
            payload.extend(tcp);
            ipv6::emit(src6, dst6, ipv6::NEXT_DEST_OPTIONS, 64, &payload)
        } else {
            crate::ip::ipv4::emit(src, dst, PROTO_TCP, 64, self.n as u16, &seg.emit(src, dst))
        };
        self.b.add_packet(
            self.n,
            Duration::from_millis(1_000 + self.n as u64),
            &packet,
        );
    }

    fn c(&mut self, f: &str, seq: u32, ack: u32, data: &[u8]) -> &mut Self {
        self.send(Side::Client, f, seq, ack, data);
        self
    }

    fn s(&mut self, f: &str, seq: u32, ack: u32, data: &[u8]) -> &mut Self {
        self.send(Side::Server, f, seq, ack, data);
        self
    }

    fn handshake(&mut self) -> &mut Self {
        self.c("S", CI, 0, &[])
            .s("SA", SI, CI + 1, &[])
            .c("A", CI + 1, SI + 1, &[])
    }

    fn one(self) -> Connection {
        let d = self.b.finish();
        assert_eq!(d.connections.len(), 1, "{:#?}", d.connections);
        d.connections.into_iter().next().unwrap()
    }
}

/// fd00::1 for the client, fd00::2 for the server.
fn v6(a: Ipv4Addr) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(a.octets()[3]))
}

/// A TCP connection over IPv6 is drawn like one over IPv4: the extension headers are
/// skipped, the addresses are the IPv6 ones; ICMPv6 and fragments are counted, not drawn.
#[test]
fn a_connection_over_ipv6_is_drawn() {
    let g = GET.len() as u32;
    let mut s = Script::new();
    s.v6 = true;
    s.handshake()
        .c("PA", CI + 1, SI + 1, GET)
        .s("A", SI + 1, CI + 1 + g, &[]);
    let (a, b) = (v6(CLIENT), v6(SERVER));
    s.b.add_packet(
        9,
        Duration::ZERO,
        &ipv6::emit(a, b, ipv6::NEXT_ICMPV6, 64, &[128, 0, 0, 0, 0, 0, 0, 0]),
    );
    let mut frag = ipv6::fragment_header(ipv6::NEXT_TCP, 8, false, 1).to_vec();
    frag.extend_from_slice(&[0; 8]);
    s.b.add_packet(
        10,
        Duration::ZERO,
        &ipv6::emit(a, b, ipv6::NEXT_FRAGMENT, 64, &frag),
    );
    let d = s.b.finish();
    assert_eq!((d.skipped.not_tcp, d.skipped.bad_ipv4), (1, 1));
    let c = &d.connections[0];
    assert_eq!(c.client, "[fd00::1]:40000".parse::<SocketAddr>().unwrap());
    assert_eq!(c.server, "[fd00::2]:80".parse::<SocketAddr>().unwrap());
    assert_eq!(
        states(c)[..3],
        [
            pair("SYN-SENT", "SYN-RECEIVED"),
            pair("ESTABLISHED", ""),
            pair("", "ESTABLISHED")
        ]
    );
    assert_eq!(c.arrows.len(), 5);
    assert!(c
        .arrows
        .iter()
        .all(|a| !a.notes.contains(&Note::BadChecksum)));
}

/// (client changes, server changes) per arrow, as state names.
fn states(c: &Connection) -> Vec<(String, String)> {
    let names = |v: &[State]| v.iter().map(|s| s.name()).collect::<Vec<_>>().join(">");
    c.arrows
        .iter()
        .map(|a| (names(&a.client_states), names(&a.server_states)))
        .collect()
}

fn pair(c: &str, s: &str) -> (String, String) {
    (c.to_string(), s.to_string())
}

#[test]
fn handshake_request_response_and_client_close() {
    let g = GET.len() as u32;
    let o = OK.len() as u32;
    let mut s = Script::new();
    s.handshake()
        .c("PA", CI + 1, SI + 1, GET)
        .s("A", SI + 1, CI + 1 + g, &[])
        .s("PA", SI + 1, CI + 1 + g, OK)
        .c("A", CI + 1 + g, SI + 1 + o, &[])
        // curl closes first: its FIN, our ACK, our FIN, its ACK.
        .c("FA", CI + 1 + g, SI + 1 + o, &[])
        .s("A", SI + 1 + o, CI + 2 + g, &[])
        .s("FA", SI + 1 + o, CI + 2 + g, &[])
        .c("A", CI + 2 + g, SI + 2 + o, &[]);
    let c = s.one();
    assert!(c.saw_syn);
    assert_eq!(c.client, SocketAddr::from(SocketAddrV4::new(CLIENT, CPORT)));
    assert_eq!(c.server, SocketAddr::from(SocketAddrV4::new(SERVER, SPORT)));
    assert_eq!(c.initial, (State::Closed, State::Listen));
    assert_eq!(
        states(&c),
        vec![
            pair("SYN-SENT", "SYN-RECEIVED"),
            pair("ESTABLISHED", ""),
            pair("", "ESTABLISHED"),
            pair("", ""),
            pair("", ""),
            pair("", ""),
            pair("", ""),
            pair("FIN-WAIT-1", ""),
            pair("FIN-WAIT-2", "CLOSE-WAIT"),
            pair("", "LAST-ACK"),
            pair("TIME-WAIT", "CLOSED"),
        ]
    );
    assert_eq!(c.last, (State::TimeWait, State::Closed));
    // Relative numbers, as Wireshark shows them.
    let a = &c.arrows;
    assert_eq!((a[0].seq, a[0].ack), (0, None));
    assert_eq!((a[1].seq, a[1].ack), (0, Some(1)));
    assert_eq!((a[2].seq, a[2].ack), (1, Some(1)));
    assert_eq!((a[3].seq, a[3].len), (1, GET.len()));
    assert_eq!(a[4].ack, Some(1 + g));
    assert_eq!(a[3].http.as_deref(), Some("GET /hello.txt HTTP/1.1"));
    assert_eq!(a[5].http.as_deref(), Some("HTTP/1.1 200 OK"));
    assert_eq!(a[0].flag_names(), "SYN");
    assert_eq!(a[1].flag_names(), "SYN, ACK");
    assert_eq!(a[7].flag_names(), "FIN, ACK");
    assert_eq!(a[0].options, vec!["mss 1460".to_string()]);
    assert_eq!(a[1].numbers(), "seq=0 ack=1 win=64000 len=0");
    assert_eq!(a[2].numbers(), "seq=1 ack=1 win=64000 len=0");
    assert_eq!(a[3].time, Duration::from_millis(3));
    assert!(a.iter().all(|a| a.notes.is_empty()), "{a:#?}");
    assert_eq!(c.retransmissions(), 0);
}

#[test]
fn server_closes_first_with_a_three_segment_close() {
    // Connection: close: the server's FIN comes with the response's end; the client
    // answers FIN+ACK at once, so its CLOSE-WAIT and LAST-ACK fall on one arrow.
    let mut s = Script::new();
    s.handshake()
        .s("FPA", SI + 1, CI + 1, OK)
        .c("FA", CI + 1, SI + 2 + OK.len() as u32, &[])
        .s("A", SI + 2 + OK.len() as u32, CI + 2, &[]);
    let c = s.one();
    let st = states(&c);
    assert_eq!(st[3], pair("", "FIN-WAIT-1"));
    assert_eq!(st[4], pair("CLOSE-WAIT>LAST-ACK", "FIN-WAIT-2"));
    assert_eq!(st[5], pair("CLOSED", "TIME-WAIT"));
    assert_eq!(c.last, (State::Closed, State::TimeWait));
    assert_eq!(c.arrows[3].http.as_deref(), Some("HTTP/1.1 200 OK"));
}

#[test]
fn simultaneous_close_goes_through_closing() {
    // Both FINs cross: neither acknowledges the other's (RFC 9293 §3.6, Figure 13).
    let mut s = Script::new();
    s.handshake()
        .c("FA", CI + 1, SI + 1, &[])
        .s("FA", SI + 1, CI + 1, &[])
        .c("A", CI + 2, SI + 2, &[])
        .s("A", SI + 2, CI + 2, &[]);
    let c = s.one();
    let st = states(&c);
    assert_eq!(st[3], pair("FIN-WAIT-1", ""));
    assert_eq!(st[4], pair("", "FIN-WAIT-1"));
    assert_eq!(st[5], pair("CLOSING", "FIN-WAIT-2"));
    assert_eq!(st[6], pair("TIME-WAIT", "TIME-WAIT"));
    assert_eq!(c.last, (State::TimeWait, State::TimeWait));
}

#[test]
fn retransmission_gap_and_duplicate_acks() {
    let d = |n: u32| vec![b'x'; n as usize];
    let mut s = Script::new();
    s.handshake()
        .s("A", SI + 1, CI + 1, &d(100)) // bytes 1..101
        // bytes 101..201 lost before the capture point: the next segment leaves a gap.
        .s("A", SI + 201, CI + 1, &d(100))
        .c("A", CI + 1, SI + 101, &[])
        .c("A", CI + 1, SI + 101, &[])
        .c("A", CI + 1, SI + 101, &[])
        // Fast retransmit of the missing bytes: not a retransmission as far as the
        // capture knows (never seen), but below SND.MAX, so marked as one.
        .s("A", SI + 101, CI + 1, &d(100))
        .c("A", CI + 1, SI + 301, &[])
        // An RTO retransmission of the first segment, already acknowledged.
        .s("A", SI + 1, CI + 1, &d(100));
    let c = s.one();
    let notes: Vec<Vec<Note>> = c.arrows.iter().map(|a| a.notes.clone()).collect();
    assert_eq!(notes[3], vec![]);
    assert_eq!(notes[4], vec![Note::Gap { missing: 100 }]);
    assert_eq!(notes[5], vec![]);
    assert_eq!(notes[6], vec![Note::DuplicateAck { count: 1 }]);
    assert_eq!(notes[7], vec![Note::DuplicateAck { count: 2 }]);
    assert_eq!(notes[8], vec![Note::Retransmission]);
    assert_eq!(notes[9], vec![]);
    assert_eq!(notes[10], vec![Note::Retransmission]);
    assert_eq!(c.retransmissions(), 2);
    assert_eq!(c.arrows[4].seq, 201);
}

#[test]
fn syn_retransmission_stays_in_one_connection() {
    let mut s = Script::new();
    s.c("S", CI, 0, &[])
        .c("S", CI, 0, &[])
        .s("SA", SI, CI + 1, &[]);
    let c = s.one();
    assert_eq!(c.arrows[1].notes, vec![Note::Retransmission]);
    assert_eq!(states(&c)[1], pair("", ""));
    assert_eq!(states(&c)[2], pair("ESTABLISHED", ""));
}

#[test]
fn simultaneous_open() {
    // §3.5 Figure 8: both send SYN, both answer SYN-ACK.
    let mut s = Script::new();
    s.c("S", CI, 0, &[])
        .s("S", SI, 0, &[])
        .c("SA", CI, SI + 1, &[])
        .s("SA", SI, CI + 1, &[]);
    let c = s.one();
    let st = states(&c);
    assert_eq!(st[0], pair("SYN-SENT", "SYN-RECEIVED"));
    // The server's own SYN: it is already SYN-RECEIVED; the client moves there too.
    assert_eq!(st[1], pair("SYN-RECEIVED", ""));
    assert_eq!(st[2], pair("", "ESTABLISHED"));
    assert_eq!(st[3], pair("ESTABLISHED", ""));
}

#[test]
fn refused_connection_and_reset() {
    let mut s = Script::new();
    s.c("S", CI, 0, &[]).s("RA", 0, CI + 1, &[]);
    let c = s.one();
    assert_eq!(states(&c)[1], pair("CLOSED", "CLOSED"));
    assert_eq!(c.arrows[1].flag_names(), "RST, ACK");
}

#[test]
fn a_new_syn_on_the_same_ports_is_a_new_connection() {
    let mut s = Script::new();
    s.handshake()
        .c("FA", CI + 1, SI + 1, &[])
        .s("FA", SI + 1, CI + 2, &[])
        .c("A", CI + 2, SI + 2, &[])
        // Port reuse after TIME-WAIT with a new ISN.
        .c("S", CI + 100_000, 0, &[])
        .s("SA", SI + 7, CI + 100_001, &[]);
    let d = s.b.finish();
    assert_eq!(d.connections.len(), 2);
    assert_eq!(d.connections[0].arrows.len(), 6);
    assert_eq!(d.connections[1].number, 2);
    assert_eq!(d.connections[1].arrows[1].ack, Some(1));
    assert_eq!(d.connections[1].arrows[1].time, Duration::from_millis(1));
}

#[test]
fn capture_started_mid_connection() {
    let mut s = Script::new();
    // The server's data first; the side with the higher port is taken as the client.
    s.s("PA", SI + 500, CI + 50, OK)
        .c("A", CI + 50, SI + 500 + OK.len() as u32, &[]);
    let c = s.one();
    assert!(!c.saw_syn);
    assert_eq!(c.client.port(), CPORT);
    assert_eq!(c.initial, (State::Established, State::Established));
    assert_eq!((c.arrows[0].from, c.arrows[0].seq), (Side::Server, 0));
    assert_eq!(c.arrows[1].ack, Some(OK.len() as u32));
}

#[test]
fn bad_checksums_are_drawn_and_other_packets_skipped() {
    let mut b = DiagramBuilder::new();
    let seg = Segment {
        src_port: CPORT,
        dst_port: SPORT,
        seq: SeqNum(CI),
        flags: flags("S"),
        ..Segment::default()
    };
    let mut tcp = seg.emit(CLIENT, SERVER);
    tcp[16] ^= 0x55; // as with checksum offload: the field is not final yet
    b.add_packet(
        1,
        Duration::ZERO,
        &crate::ip::ipv4::emit(CLIENT, SERVER, PROTO_TCP, 64, 1, &tcp),
    );
    b.add_packet(
        2,
        Duration::ZERO,
        &crate::ip::ipv4::emit(CLIENT, SERVER, 1, 64, 2, &[8, 0, 0, 0]),
    );
    b.add_packet(3, Duration::ZERO, &[0x45, 0, 0]);
    b.add_packet(
        4,
        Duration::ZERO,
        &crate::ip::ipv4::emit(CLIENT, SERVER, PROTO_TCP, 64, 3, &[0; 7]),
    );
    let d = b.finish();
    assert_eq!(d.connections.len(), 1);
    assert_eq!(d.connections[0].arrows[0].notes, vec![Note::BadChecksum]);
    assert_eq!(d.skipped.not_tcp, 1);
    assert_eq!(d.skipped.bad_ipv4, 1);
    assert_eq!(d.skipped.bad_tcp, 1);
    assert_eq!(d.skipped.total(), 3);
}

#[test]
fn loopback_sources_are_drawn() {
    // The stack drops 127.x sources; a capture on `lo` is made of them.
    let lo = Ipv4Addr::LOCALHOST;
    let seg = Segment {
        src_port: CPORT,
        dst_port: 8080,
        seq: SeqNum(CI),
        flags: flags("S"),
        ..Segment::default()
    };
    let mut packet = crate::ip::ipv4::emit(lo, lo, PROTO_TCP, 64, 1, &seg.emit(lo, lo));
    packet.extend_from_slice(&[0; 6]); // Ethernet padding after the IP packet
    let mut b = DiagramBuilder::new();
    b.add_packet(1, Duration::ZERO, &packet);
    let d = b.finish();
    assert_eq!(d.skipped, Skipped::default());
    assert_eq!(
        d.connections[0].client,
        SocketAddr::from(SocketAddrV4::new(lo, CPORT))
    );
    assert_eq!(d.connections[0].arrows[0].notes, vec![]);
    // Other IPv4 errors still skip the packet.
    packet[8] = 0; // TTL 0, checksum now wrong too
    let mut b = DiagramBuilder::new();
    b.add_packet(1, Duration::ZERO, &packet);
    assert_eq!(b.finish().skipped.bad_ipv4, 1);
}

#[test]
fn http_first_lines() {
    assert_eq!(
        http_first_line(b"HTTP/1.0 404 Not Found\r\n").as_deref(),
        Some("HTTP/1.0 404 Not Found")
    );
    assert_eq!(
        http_first_line(b"HTTP/1.1 204\r\n").as_deref(),
        Some("HTTP/1.1 204")
    );
    assert_eq!(
        http_first_line(b"POST /echo HTTP/1.1\r\n").as_deref(),
        Some("POST /echo HTTP/1.1")
    );
    assert_eq!(http_first_line(b"hello world\r\n"), None);
    assert_eq!(http_first_line(b"GET / HTTP/1.1"), None, "no line end");
    assert_eq!(http_first_line(b"get / HTTP/1.1\r\n"), None);
    assert_eq!(http_first_line(b"HTTP/1.1 2x0 OK\r\n"), None);
    assert_eq!(http_first_line(b"\xff\xfe\r\n"), None);
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(200));
    let line = http_first_line(long.as_bytes()).unwrap();
    assert_eq!(line.chars().count(), 72);
    assert!(line.ends_with('…'));
}

#[test]
fn from_pcap_reads_a_capture_and_reports_a_cut() {
    use crate::link::pcap::PcapWriter;
    use std::time::UNIX_EPOCH;
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    let syn = Segment {
        src_port: CPORT,
        dst_port: SPORT,
        seq: SeqNum(CI),
        flags: flags("S"),
        ..Segment::default()
    };
    let pkt = crate::ip::ipv4::emit(CLIENT, SERVER, PROTO_TCP, 64, 1, &syn.emit(CLIENT, SERVER));
    w.write_packet(UNIX_EPOCH + Duration::from_secs(10), &pkt)
        .unwrap();
    w.write_packet(UNIX_EPOCH + Duration::from_secs(11), &[0x60, 0, 0, 0])
        .unwrap();
    w.write_packet(UNIX_EPOCH + Duration::from_secs(12), &pkt)
        .unwrap();
    let mut bytes = w.into_inner();
    bytes.truncate(bytes.len() - 1);
    let d = Diagram::from_pcap(&bytes).unwrap();
    assert_eq!(d.connections.len(), 1);
    assert_eq!(d.connections[0].start, Duration::from_secs(10));
    // Four bytes of an IPv6 header: IP, but malformed.
    assert_eq!((d.skipped.not_ipv4, d.skipped.bad_ipv4), (0, 1));
    assert_eq!(d.read_error, Some(PcapError::Truncated { record: 2 }));
    assert!(Diagram::from_pcap(b"not a capture at all, sorry").is_err());
}

/// Random packets never panic the reconstruction.
#[test]
fn random_segments_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    let mut b = DiagramBuilder::new();
    for i in 0..3000 {
        let seg = Segment {
            src_port: if rnd() % 2 == 0 { CPORT } else { SPORT },
            dst_port: if rnd() % 2 == 0 { CPORT } else { SPORT },
            seq: SeqNum((rnd() as u32 % 4).wrapping_add(if rnd() % 50 == 0 {
                u32::MAX - 2
            } else {
                CI
            })),
            ack: SeqNum(rnd() as u32),
            flags: Flags::from_byte(rnd() as u8),
            payload: vec![b'H'; (rnd() % 3) as usize],
            ..Segment::default()
        };
        let (src, dst) = if rnd() % 2 == 0 {
            (CLIENT, SERVER)
        } else {
            (SERVER, CLIENT)
        };
        b.add_segment(
            i,
            Duration::from_micros(rnd() % 1000),
            src,
            dst,
            &seg,
            false,
        );
    }
    let d = b.finish();
    assert!(!d.connections.is_empty());
    let svg = svg::render_svg(&d, &svg::Options::default());
    assert!(svg.starts_with("<?xml"));
}

/// A real capture (`serve --pcap`, a snapshot of a `scripts/docs-figures.sh` run; the
/// figures in docs/img/ come from it): curl for one URL, for two URLs (keep-alive), an
/// HTTP/1.0 client reading to EOF, and a request whose second data segment was dropped
/// once by nftables. Wireshark's analysis of the same file marks packet 61 "TCP Dup ACK" and
/// packet 62 "TCP Retransmission"; we must agree.
#[test]
fn real_curl_capture() {
    let bytes = include_bytes!("../../tests/data/curl-four-connections.pcap");
    let d = Diagram::from_pcap(bytes).unwrap();
    assert_eq!(d.read_error, None);
    assert_eq!(
        d.skipped.total(),
        1,
        "the kernel's IPv6 router solicitation"
    );
    assert_eq!(d.connections.len(), 4);
    let ends: Vec<(State, State)> = d.connections.iter().map(|c| c.last).collect();
    assert_eq!(
        ends,
        vec![
            (State::TimeWait, State::Closed),
            (State::TimeWait, State::Closed),
            (State::Closed, State::TimeWait),
            (State::TimeWait, State::Closed),
        ]
    );
    for c in &d.connections {
        assert!(c.saw_syn);
        assert_eq!(c.server.port(), 80);
        let first = &c.arrows[..3];
        assert_eq!(
            first.iter().map(Arrow::flag_names).collect::<Vec<_>>(),
            ["SYN", "SYN, ACK", "ACK"]
        );
        assert_eq!(
            states(c)[..3],
            [
                pair("SYN-SENT", "SYN-RECEIVED"),
                pair("ESTABLISHED", ""),
                pair("", "ESTABLISHED")
            ]
        );
    }
    let http = |c: &Connection| -> Vec<String> {
        c.arrows.iter().filter_map(|a| a.http.clone()).collect()
    };
    assert_eq!(
        http(&d.connections[0]),
        ["GET / HTTP/1.1", "HTTP/1.1 200 OK"]
    );
    assert_eq!(
        http(&d.connections[1]),
        [
            "GET / HTTP/1.1",
            "HTTP/1.1 200 OK",
            "GET / HTTP/1.1",
            "HTTP/1.1 200 OK"
        ]
    );
    assert_eq!(
        http(&d.connections[2]),
        ["GET / HTTP/1.0", "HTTP/1.1 200 OK"]
    );
    let noted: Vec<(usize, Vec<Note>)> = d
        .connections
        .iter()
        .flat_map(|c| c.arrows.iter())
        .filter(|a| !a.notes.is_empty())
        .map(|a| (a.packet, a.notes.clone()))
        .collect();
    assert_eq!(
        noted,
        vec![
            (61, vec![Note::DuplicateAck { count: 1 }]),
            (62, vec![Note::Retransmission]),
        ]
    );
}

#[test]
fn windows_after_the_handshake_are_shown_scaled() {
    let mut s = Script::new();
    s.wscale = Some(10);
    s.handshake();
    s.window = 63;
    s.c("PA", CI + 1, SI + 1, GET);
    let c = s.one();
    let a = &c.arrows;
    assert_eq!(
        a[1].options,
        vec!["mss 1460".to_string(), "wscale 10".to_string()]
    );
    // The SYNs' windows are never scaled (RFC 7323 §2.2).
    assert_eq!(a[1].numbers(), "seq=0 ack=1 win=64000 len=0");
    assert_eq!(a[2].numbers(), "seq=1 ack=1 win=65536000 (64000<<10) len=0");
    let g = GET.len();
    assert_eq!(
        a[3].numbers(),
        format!("seq=1 ack=1 win=64512 (63<<10) len={g}")
    );
    assert_eq!(a[3].scaled_window(), 64512);
}

#[test]
fn a_window_is_unscaled_unless_both_syns_carry_the_option() {
    let mut s = Script::new();
    s.c("S", CI, 0, &[]);
    s.wscale = Some(7);
    s.s("SA", SI, CI + 1, &[]).c("A", CI + 1, SI + 1, &[]);
    let c = s.one();
    assert_eq!(c.arrows[2].scale, Some(0));
    assert_eq!(c.arrows[2].numbers(), "seq=1 ack=1 win=64000 len=0");
}

#[test]
fn a_window_without_the_syns_is_marked_as_the_field() {
    let mut s = Script::new();
    s.window = 63;
    s.c("A", CI + 1, SI + 1, &[]);
    let c = s.one();
    assert_eq!(c.arrows[0].scale, None);
    let numbers = c.arrows[0].numbers();
    assert!(
        numbers.contains(" win=63 (field, scale unknown) len=0"),
        "{numbers}"
    );
}
