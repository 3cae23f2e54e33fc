//! TCP scenario tests, packetdrill style: scripted segments in, expected segments out, on a
//! virtual clock.
//!
//! Each test drives one [`Tcp`] endpoint as "us" (10.0.0.2) against a scripted peer
//! ("them", 10.0.0.1). Segments are written as tcpdump lines with sequence numbers
//! *relative* to each side's initial sequence number, as packetdrill does:
//!
//! ```text
//!   h.inject("S 0:0(0) win 65535 <mss 1460>");   // they send a SYN
//!   h.expect("S. 0:0(0) ack 1 <mss 1460>");       // we answer SYN-ACK
//!   h.inject(". 1:1(0) ack 1");                  // they ACK: ESTABLISHED
//!   h.inject("P. 1:101(100) ack 1");             // 100 bytes of data
//!   h.expect(". 1:1(0) ack 101");                // acknowledged
//! ```
//!
//! Flags: `S` SYN, `F` FIN, `R` RST, `P` PSH, `.` ACK. `seq:end(len)` is the sequence
//! range; `ack N`, `win N` and `<mss N,wscale N,sackOK,TS val V ecr E,noTS>` are optional
//! (`*` for a TS value not checked). In `expect`, fields
//! that are not written are not checked and PSH is ignored. Injected payload bytes are a
//! deterministic function of their stream offset (see [`pattern`]), so what the
//! application reads can be checked byte for byte.
//!
//! Our ISN is learned from our first SYN or SYN-ACK; the peer's ISN is chosen by the test.
//! "Expect" waits (in virtual time, firing timers) up to [`ACK_SLACK`] for a segment so
//! that a delayed-ACK implementation passes too; `expect_now` does not wait at all.
//!
//! ## Which rule each test checks
//!
//! Scenarios that the packetdrill language can express are `.pkt` scripts in
//! `tests/packetdrill/` (run by `tests/packetdrill.rs`); its README indexes them the
//! same way. The tests here need what a script cannot see: internal state, statistics,
//! many connections, random input.
//!
//! | rule | tests |
//! |------|-------|
//! | RFC 9293 §3.3.2 state diagram: LISTEN → SYN-RCVD → ESTABLISHED | `data_on_the_handshake_ack` |
//! | CLOSED → SYN-SENT → ESTABLISHED | `active_open_data_and_close` |
//! | SYN-SENT → SYN-RCVD (simultaneous open, §3.5) | `simultaneous_open_syn_sent_to_syn_received` |
//! | SYN-RCVD → LISTEN on RST; duplicate SYN; SYN-ACK retransmission | `syn_received_rst_returns_to_listen`, `syn_received_bad_ack_gets_rst`, `data_on_syn_delivered_exactly_once` |
//! | SYN retransmission, backoff, give-up | `half_open_connection_expires_and_frees_the_backlog` |
//! | FIN-WAIT-1 → CLOSING → TIME-WAIT; FIN-WAIT-1 → TIME-WAIT | `fin_wait1_fin_ack_goes_to_time_wait` |
//! | ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED | `out_of_order_fin_waits_for_the_data` |
//! | §3.10.7.1 RST for segments to no connection | `close_listener_resets_half_open_and_refuses_new_syns` |
//! | §3.10.7.4 RST on a connection; RFC 5961 out-of-window RST, challenge ACK | `rst_in_close_wait_and_fin_wait2` |
//! | §3.10.7.4 acceptability: duplicates, out of window, ACK of unsent data, probes | `old_zero_length_probe_is_acked`, `zero_window_probe_with_data_is_acked_not_accepted` |
//! | §3.8.6.3 delayed ACK bounds | `ack_every_second_full_segment_and_delay_bound` |
//! | RFC 1122 §4.2.3.2 / RFC 5681 §4.2 delayed ACKs: timer, every 2nd segment, immediate for out-of-order and gap fill, piggybacked | `delayed_ack_timer_and_every_second_segment`, `delayed_ack_piggybacks_on_the_reply` |
//! | RFC 7323 timestamps: negotiation, echo, MSS − 12, PAWS (§5.3) with the 24-day rule (§5.5), TS.Recent update (§4.3) | `timestamps_negotiated_and_echoed`, `no_timestamps_unless_the_peer_offers_them`, `paws_drops_segments_with_old_timestamps`, `ts_recent_follows_only_in_sequence_segments` |
//! | RFC 1122 §4.2.3.4 Nagle, `set_nodelay` | `nagle_holds_small_segments_until_acked`, `nagle_lets_the_tail_go_with_the_fin` |
//! | RFC 1122 §4.2.3.6 keep-alive | `keepalive_probes_then_reset` |
//! | RFC 5482 / RFC 9293 §3.8.3 user timeout | `user_timeout_gives_up_on_unacknowledged_data`, `user_timeout_restarts_on_progress` |
//! | RFC 4987 §3.6 SYN cookies | `syn_cookie_when_the_syn_queue_is_full`, `syn_cookie_keeps_wscale_and_sack_with_timestamps`, `bad_syn_cookie_is_refused`, `syn_flood_does_not_lock_out_a_real_client` |
//! | RFC 1337 TIME-WAIT assassination | `rst_does_not_end_time_wait` |
//! | RFC 7323 window scaling | `no_window_scaling_without_peer_option`, `window_scale_negotiation_is_consistent` |
//! | §3.7.1 MSS option, default 536 | `tiny_peer_mss_is_survivable` |
//! | RFC 6298 RTO (SRTT + max(4·RTTVAR, min) as Linux), backoff, samples, Karn, give-up | `rto_after_rtt_samples_follows_rfc6298`, `karn_no_rtt_sample_from_retransmission`, `max_retransmits_times_out`, `rto_backoff_is_capped_at_rto_max` |
//! | go-back-N pure ACKs carry SND.MAX | `pure_ack_after_rto_carries_snd_max`, `pure_ack_during_go_back_n_carries_snd_max` |
//! | RFC 6928 / RFC 5681 / RFC 6582 congestion control: IW, slow start, RTO collapse, fast recovery | `slow_start_then_collapse_on_rto`, `fast_recovery_halves_the_window` |
//! | RFC 2018 / RFC 6675 SACK | `sack_blocks_report_held_data_most_recent_first`, `no_sack_blocks_unless_permitted`, `sack_recovery_retransmits_only_the_holes` |
//! | RFC 6675 §5 sending by `pipe`; the scoreboard kept across an RTO, SACKed data never resent | `sack_recovery_sends_by_pipe`, `rto_keeps_the_sack_scoreboard` |
//! | RFC 7323 §4.1 / App. G RTT samples from TSecr (only ACKs advancing SND.UNA, no echo older than a retransmission) | `rtt_samples_from_timestamps_follow_rfc7323_appendix_g` |
//! | §3.8.6 flow control: peer window, persist, window update, shrinking, SWS | `unanswered_zero_window_probes_time_out`, `window_update_after_app_reads`, `advertised_window_shrinks_with_unread_data`, `sender_sws_avoidance_holds_small_segments`, `window_scale_negotiation_is_consistent` |
//! | buffer autotuning (Linux's `tcp_rcv_space_adjust`, `tcp_sndbuf_expand`): the window grows for a fast reader only, its right edge never moves left; the send buffer grows with cwnd | `receive_window_grows_for_a_fast_reader`, `receive_window_does_not_grow_for_a_slow_reader`, `send_buffer_grows_with_cwnd` |
//! | user calls: bounds and errors | `address_in_use`, `listen_backlog_drops_excess_syns`, `connection_table_limit`, `send_after_shutdown_is_an_error`, `send_buffer_bounds_writes`, `events_are_reported_once` |
//! | §3.4 sequence numbers wrap at 2^32 | `our_sequence_numbers_wrap` (the peer's wrap in every test: its ISN is 2^32 - 51) |
//! | nothing panics on hostile input | `random_segments_never_panic` |
//! | RFC 5961 §5.2 ACK bound (SND.UNA − MAX.SND.WND), §7 rate limit of ACKs for SYN-only / FIN-only out-of-window segments | `ack_below_the_max_window_is_challenged_and_its_data_dropped`, `acks_for_out_of_window_syn_and_fin_are_rate_limited` |
//! | RFC 7323 §4.3 TS.Recent only after the ACK check | `ts_recent_is_not_moved_by_a_segment_whose_ack_is_refused` |
//! | send MSS floor of 48 (CVE-2019-11479) | `peer_mss_below_48_is_clamped` |
//! | RFC 6191 TIME-WAIT reuse by timestamp, ISS above the old space | `time_wait_reuse_by_timestamp_with_an_iss_above_the_old_space` |
//! | SYN+FIN to a listener dropped | `syn_fin_to_a_listener_is_dropped` |
//! | SYN queue pruned after a flood (Linux `reqsk_timer_handler`) | `syn_queue_drains_within_seconds_after_a_flood` |
//! | RTO backoff ends with an ACK of new data; RFC 6298 §5.7 3 s RTO after a retransmitted SYN | `rto_backoff_ends_with_an_ack_of_new_data`, `rto_is_three_seconds_after_a_retransmitted_syn` |
//! | window update from any ACK advancing SND.UNA (Linux `tcp_may_update_window`) | `window_update_from_any_ack_that_advances_snd_una` |
//! | RFC 1191 PMTU drop keeps cwnd | `path_mtu_drop_does_not_reset_cwnd` |
//! | RFC 5681 §4.1 restart after idle | `cwnd_restarts_from_the_initial_window_after_idle` |
//! | RFC 6675 §5 RecoveryPoint: no fast recovery right after an RTO | `no_fast_recovery_right_after_an_rto` |
//! | RFC 3708 D-SACK, RFC 3522 Eifel, RFC 4015 undo of a spurious episode | `dsack_of_every_retransmission_undoes_the_reduction`, `eifel_timestamps_undo_a_spurious_fast_retransmit`, `eifel_keeps_the_reduction_when_the_retransmission_was_needed`, `eifel_timestamps_undo_a_spurious_timeout` |
//! | RFC 8985 §6.2 RACK outside recovery: reordering window and timer, D-SACK adaptation | `rack_reordering_timer_marks_una_lost_on_one_duplicate_ack`, `rack_marks_una_lost_when_sent_a_window_before_sacked_data`, `rack_reordering_window_grows_with_dsack` |
//! | RFC 7661 no cwnd growth while application-limited | `cwnd_does_not_grow_while_application_limited` |
//! | out-of-order memory bounded across connections | `out_of_order_memory_is_bounded_across_connections` |
//! | RFC 5682 F-RTO (§3.2 with SACK, §2 without) | `frto_spurious_timeout_goes_on_with_new_data`, `frto_genuine_timeout_falls_back_to_conventional_recovery`, `frto_without_sack_spurious_timeout_skips_go_back_n`, `frto_without_sack_genuine_timeout_goes_back_n` |

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::tcp::{
    Config, CongestionAlgorithm, ConnId, Flags, ListenerId, RttEstimator, Segment, SeqNum, State,
    Tcp, TcpError, TcpOptions,
};
use tunstack::time::Instant;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const THEM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The peer's initial sequence number, close to the wrap so every test crosses 2^32.
const PEER_ISN: u32 = u32::MAX - 50;
/// How long `expect` waits for a segment (RFC 9293 §3.8.6.3: an ACK may be delayed by less
/// than 0.5 s).
const ACK_SLACK: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The payload byte at stream offset `off` (offset 0 is the byte after the SYN).
fn pattern(off: usize) -> u8 {
    ((off as u32).wrapping_mul(2_654_435_761) >> 13) as u8
}

fn pattern_range(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(pattern).collect()
}

/// One parsed trace line.
#[derive(Debug, Clone, Default)]
struct Spec {
    flags: Flags,
    seq: u32,
    len: u32,
    ack: Option<u32>,
    win: Option<u16>,
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_ok: bool,
    /// `TS val V ecr E`; in `expect` a `*` value is not checked.
    ts: Option<(Option<u32>, Option<u32>)>,
    /// `noTS`: (in `expect`) the segment must carry no timestamps option.
    no_ts: bool,
}

/// Parse `FLAGS seq:end(len) [ack N] [win N] [<opt,opt>]`. Test syntax errors panic.
fn spec(line: &str) -> Spec {
    let (main, opts) = match line.split_once('<') {
        Some((m, o)) => (m, Some(o.trim_end().trim_end_matches('>'))),
        None => (line, None),
    };
    let mut s = Spec::default();
    let mut words = main.split_whitespace();
    for c in words.next().expect("flags").chars() {
        match c {
            'S' => s.flags.syn = true,
            'F' => s.flags.fin = true,
            'R' => s.flags.rst = true,
            'P' => s.flags.psh = true,
            'U' => s.flags.urg = true,
            '.' => s.flags.ack = true,
            other => panic!("bad flag {other:?} in {line:?}"),
        }
    }
    let range = words.next().expect("seq range");
    let (start, rest) = range.split_once(':').expect("seq:end(len)");
    let (end, len) = rest.split_once('(').expect("seq:end(len)");
    s.seq = start.parse().expect("seq");
    let end: u32 = end.parse().expect("end");
    s.len = len.trim_end_matches(')').parse().expect("len");
    assert_eq!(
        end.wrapping_sub(s.seq),
        s.len,
        "inconsistent range in {line:?}"
    );
    while let Some(w) = words.next() {
        let v = words
            .next()
            .unwrap_or_else(|| panic!("{w} needs a value in {line:?}"));
        match w {
            "ack" => s.ack = Some(v.parse().expect("ack")),
            "win" => s.win = Some(v.parse().expect("win")),
            other => panic!("unknown field {other:?} in {line:?}"),
        }
    }
    if let Some(opts) = opts {
        for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let mut it = o.split_whitespace();
            match (it.next(), it.next()) {
                (Some("mss"), Some(v)) => s.mss = Some(v.parse().expect("mss")),
                (Some("wscale"), Some(v)) => s.wscale = Some(v.parse().expect("wscale")),
                (Some("sackOK"), None) => s.sack_ok = true,
                (Some("noTS"), None) => s.no_ts = true,
                (Some("TS"), Some("val")) => {
                    let num = |w: Option<&str>| match w {
                        Some("*") => None,
                        Some(v) => Some(v.parse::<u32>().expect("TS value")),
                        None => panic!("TS needs val and ecr in {line:?}"),
                    };
                    let val = num(it.next());
                    assert_eq!(it.next(), Some("ecr"), "TS val V ecr E in {line:?}");
                    s.ts = Some((val, num(it.next())));
                }
                (Some("nop"), None) => {}
                _ => panic!("unknown option {o:?} in {line:?}"),
            }
        }
    }
    s
}

/// One endpoint under test and the scripted peer.
struct H {
    tcp: Tcp,
    now: Instant,
    us: SocketAddrV4,
    them: SocketAddrV4,
    /// Our ISN, learned from our SYN / SYN-ACK (or set to 0 for absolute numbering).
    iss: Option<SeqNum>,
    /// The peer's ISN.
    irs: SeqNum,
    /// Window the peer advertises when a line has no `win`.
    peer_win: u16,
    listener: Option<ListenerId>,
    conn: Option<ConnId>,
}

impl H {
    fn new(config: Config) -> H {
        H {
            tcp: Tcp::new(config, 7),
            now: Instant::from_secs(1000),
            us: SocketAddrV4::new(US, 80),
            them: SocketAddrV4::new(THEM, 40000),
            iss: None,
            irs: SeqNum(PEER_ISN),
            peer_win: 65535,
            listener: None,
            conn: None,
        }
    }

    /// Numbers in lines are absolute on both sides (for segments to no connection).
    fn absolute(mut self) -> H {
        self.iss = Some(SeqNum(0));
        self.irs = SeqNum(0);
        self
    }

    fn conn(&self) -> ConnId {
        self.conn.expect("no connection yet")
    }

    fn state(&self) -> State {
        self.tcp.state(self.conn())
    }

    fn error(&self) -> Option<TcpError> {
        self.tcp.error(self.conn())
    }

    /// Milliseconds since the test's epoch.
    fn t(&self) -> u64 {
        self.now.total_millis()
    }

    /// Build the segment a line describes, from them to us.
    fn build(&self, line: &str) -> Segment {
        let s = spec(line);
        let iss = self.iss.unwrap_or_default();
        // Data on a SYN starts right after it, at stream offset 0.
        let data_off = if s.flags.syn {
            0
        } else {
            s.seq.wrapping_sub(1) as usize
        };
        let payload = if s.len == 0 {
            Vec::new()
        } else {
            pattern_range(data_off, s.len as usize)
        };
        Segment {
            src_port: self.them.port(),
            dst_port: self.us.port(),
            seq: self.irs + s.seq,
            ack: if s.flags.ack {
                iss + s.ack.unwrap_or(0)
            } else {
                SeqNum(0)
            },
            flags: s.flags,
            window: s.win.unwrap_or(self.peer_win),
            urgent: 0,
            options: TcpOptions {
                mss: s.mss,
                window_scale: s.wscale,
                sack_permitted: s.sack_ok,
                timestamps: s.ts.map(|(v, e)| (v.unwrap_or(0), e.unwrap_or(0))),
                ..TcpOptions::default()
            },
            payload,
        }
    }

    /// They send the segment described by `line`, now.
    fn inject(&mut self, line: &str) {
        let seg = self.build(line);
        self.inject_seg(&seg);
    }

    fn inject_seg(&mut self, seg: &Segment) {
        // Through the wire format, as the stack would see it.
        let bytes = seg.emit(THEM, US);
        let parsed = Segment::parse(THEM, US, &bytes).expect("test segment parses");
        self.tcp.on_segment(THEM, US, &parsed, self.now);
    }

    /// Move the clock forward by `d`, firing timers on the way; returns what was sent,
    /// each with the time it left.
    fn run_for(&mut self, d: Duration) -> Vec<(Instant, Segment)> {
        let end = self.now + d;
        let mut out = Vec::new();
        let mut spins = 0;
        loop {
            while let Some(seg) = self.poll_one() {
                out.push((self.now, seg));
            }
            match self.tcp.poll_at() {
                Some(at) if at <= end => {
                    if at > self.now {
                        self.now = at;
                        spins = 0;
                    } else {
                        spins += 1;
                        assert!(spins < 10_000, "timer at {at:?} never clears");
                    }
                    self.tcp.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.tcp.handle_timeout(self.now);
        while let Some(seg) = self.poll_one() {
            out.push((self.now, seg));
        }
        out
    }

    fn poll_one(&mut self) -> Option<Segment> {
        let t = self.tcp.poll_transmit(self.now)?;
        assert_eq!(
            (t.src, t.dst),
            (US.into(), THEM.into()),
            "addresses of {}",
            t.segment
        );
        assert_eq!(
            (t.segment.src_port, t.segment.dst_port),
            (self.us.port(), self.them.port()),
            "ports of {}",
            t.segment
        );
        Some(t.segment)
    }

    /// The next segment we send, waiting at most `slack` of virtual time (firing timers).
    fn next_within(&mut self, slack: Duration) -> Option<Segment> {
        let deadline = self.now + slack;
        let mut spins = 0;
        loop {
            if let Some(seg) = self.poll_one() {
                return Some(seg);
            }
            match self.tcp.poll_at() {
                Some(at) if at <= deadline => {
                    if at > self.now {
                        self.now = at;
                    } else {
                        spins += 1;
                        assert!(spins < 10_000, "timer at {at:?} never clears");
                    }
                    self.tcp.handle_timeout(self.now);
                }
                _ => return None,
            }
        }
    }

    /// Check `seg` against `line`; learn our ISN from a SYN.
    fn check(&mut self, seg: &Segment, line: &str) {
        let s = spec(line);
        if seg.flags.syn {
            match self.iss {
                Some(iss) if s.seq == 0 => {
                    assert_eq!(seg.seq, iss, "SYN retransmitted with another ISN: {seg}")
                }
                Some(_) => {}
                None => self.iss = Some(seg.seq),
            }
        }
        let iss = self.iss.expect("our ISN is unknown: expect our SYN first");
        let rel_seq = seg.seq.0.wrapping_sub(iss.0);
        let rel_ack = seg.ack.0.wrapping_sub(self.irs.0);
        let shown = format!(
            "{} {}:{}({}) ack {} win {} {}",
            seg.flags,
            rel_seq,
            rel_seq.wrapping_add(seg.payload.len() as u32),
            seg.payload.len(),
            rel_ack,
            seg.window,
            seg.options
        );
        let mut want = s.flags;
        want.psh = seg.flags.psh;
        assert_eq!(seg.flags, want, "flags: expected {line:?}, got {shown}");
        assert_eq!(rel_seq, s.seq, "seq: expected {line:?}, got {shown}");
        assert_eq!(
            seg.payload.len() as u32,
            s.len,
            "len: expected {line:?}, got {shown}"
        );
        if let Some(a) = s.ack {
            assert_eq!(rel_ack, a, "ack: expected {line:?}, got {shown}");
        }
        if let Some(w) = s.win {
            assert_eq!(seg.window, w, "win: expected {line:?}, got {shown}");
        }
        if let Some(m) = s.mss {
            assert_eq!(
                seg.options.mss,
                Some(m),
                "mss: expected {line:?}, got {shown}"
            );
        }
        if let Some(w) = s.wscale {
            assert_eq!(
                seg.options.window_scale,
                Some(w),
                "wscale: expected {line:?}, got {shown}"
            );
        }
        if s.sack_ok {
            assert!(
                seg.options.sack_permitted,
                "sackOK: expected {line:?}, got {shown}"
            );
        }
        if s.no_ts {
            assert_eq!(
                seg.options.timestamps, None,
                "noTS: expected {line:?}, got {shown}"
            );
        }
        if let Some((val, ecr)) = s.ts {
            let Some((got_val, got_ecr)) = seg.options.timestamps else {
                panic!("TS: expected {line:?}, got {shown}");
            };
            if let Some(v) = val {
                assert_eq!(got_val, v, "TS val: expected {line:?}, got {shown}");
            }
            if let Some(e) = ecr {
                assert_eq!(got_ecr, e, "TS ecr: expected {line:?}, got {shown}");
            }
        }
    }

    /// We send a segment matching `line`, within [`ACK_SLACK`].
    fn expect(&mut self, line: &str) -> Segment {
        let at = self.t();
        let seg = self
            .next_within(ACK_SLACK)
            .unwrap_or_else(|| panic!("t={at}ms: expected {line:?}, got nothing"));
        self.check(&seg, line);
        seg
    }

    /// We send a segment matching `line` right now, without any timer firing.
    fn expect_now(&mut self, line: &str) -> Segment {
        let seg = self
            .poll_one()
            .unwrap_or_else(|| panic!("t={}ms: expected {line:?} now, got nothing", self.t()));
        self.check(&seg, line);
        seg
    }

    /// Nothing is sent during the next `d`.
    fn expect_silence(&mut self, d: Duration) {
        let sent = self.run_for(d);
        assert!(
            sent.is_empty(),
            "expected silence, got {:?}",
            sent.iter()
                .map(|(t, s)| format!("{t:?} {s}"))
                .collect::<Vec<_>>()
        );
    }

    /// Nothing is queued to send right now.
    fn expect_nothing_now(&mut self) {
        if let Some(seg) = self.poll_one() {
            panic!("expected nothing now, got {seg}");
        }
    }

    /// Everything the application can read now.
    fn read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.tcp.recv(self.conn(), &mut buf, self.now) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("recv: {e:?}"),
            }
        }
        out
    }

    fn send(&mut self, data: &[u8]) -> usize {
        self.tcp.send(self.conn(), data, self.now).expect("send")
    }

    /// LISTEN → SYN-RECEIVED → ESTABLISHED with the peer's final ACK `rtt` after our
    /// SYN-ACK; `syn` is the peer's SYN line.
    fn passive_open_with(&mut self, syn: &str, rtt: Duration) {
        self.listener = Some(self.tcp.listen(self.us, 8).expect("listen"));
        self.inject(syn);
        self.expect("S. 0:0(0) ack 1");
        self.now += rtt;
        self.inject(". 1:1(0) ack 1");
        let l = self.listener.expect("listener");
        self.conn = Some(self.tcp.accept(l).expect("accept after handshake"));
        assert_eq!(self.state(), State::Established);
    }

    fn passive_open(&mut self) {
        self.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(1));
    }

    /// CLOSED → SYN-SENT → ESTABLISHED; the SYN-ACK arrives `rtt` after the SYN.
    fn active_open_with(&mut self, synack: &str, rtt: Duration) {
        self.us = SocketAddrV4::new(US, 50000);
        self.them = SocketAddrV4::new(THEM, 80);
        self.conn = Some(
            self.tcp
                .connect(self.us, self.them, self.now)
                .expect("connect"),
        );
        assert_eq!(self.state(), State::SynSent);
        self.expect_now("S 0:0(0)");
        self.now += rtt;
        self.inject(synack);
        self.expect(". 1:1(0) ack 1");
        assert_eq!(self.state(), State::Established);
    }

    /// Send `n` bytes and have them acknowledged `rtt` later (one RTT sample).
    fn exchange(&mut self, n: usize, rtt: Duration, sent_so_far: u32) {
        let data = vec![b'x'; n];
        assert_eq!(self.send(&data), n);
        let mut got = 0;
        while got < n {
            let seg = self
                .next_within(Duration::ZERO)
                .expect("data goes out at once");
            got += seg.payload.len();
        }
        self.now += rtt;
        let acked = sent_so_far + 1 + n as u32;
        self.inject(&format!(". 1:1(0) ack {acked}"));
    }
}

/// The configuration most scenarios use: a short MSL, and no tail loss probes so that
/// retransmission timing is exactly RFC 6298's (TLP has its own scenario).
fn config() -> Config {
    Config {
        msl: Duration::from_secs(1),
        tail_loss_probe: false,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------

/// RFC 9293 §3.10.7.4 (SYN-RECEIVED, RST): a reset half-open connection goes away and
/// the listener keeps listening.
#[test]
fn syn_received_rst_returns_to_listen() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 8).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject("R 1:1(0)");
    h.inject(". 1:1(0) ack 1");
    assert_eq!(h.tcp.accept(l), None, "the reset connection is gone");
    // The late ACK of the dead connection is answered with RST (no connection).
    h.expect("R 1:1(0)");
    // A new SYN from another port is served.
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 1");
    assert!(h.tcp.accept(l).is_some());
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// RFC 9293 §3.10.2, §3.10.3, §3.10.7.4: data in both directions, acknowledged.
#[test]
fn data_both_ways() {
    let mut h = H::new(config());
    h.passive_open();
    h.inject("P. 1:101(100) ack 1");
    h.expect(". 1:1(0) ack 101");
    assert!(h.tcp.recv_ready(h.conn()));
    assert_eq!(h.read_all(), pattern_range(0, 100));
    assert!(!h.tcp.recv_ready(h.conn()));

    assert_eq!(h.send(b"hello, peer"), 11);
    let seg = h.expect_now("P. 1:12(11) ack 101");
    assert_eq!(seg.payload, b"hello, peer");
    h.inject(". 101:101(0) ack 12");
    // Everything acknowledged: no retransmission follows.
    h.expect_silence(Duration::from_secs(5));

    // More data in both directions, crossing.
    h.inject("P. 101:301(200) ack 12");
    assert_eq!(h.send(b"more"), 4);
    let mut acked_101_to_301 = false;
    let mut got_more = false;
    while let Some(seg) = h.next_within(ACK_SLACK) {
        if seg.ack == h.irs + 301 {
            acked_101_to_301 = true;
        }
        if seg.payload == b"more" {
            assert_eq!(seg.seq, h.iss.unwrap() + 12);
            got_more = true;
        }
        if acked_101_to_301 && got_more {
            break;
        }
    }
    assert!(acked_101_to_301 && got_more);
    assert_eq!(h.read_all(), pattern_range(100, 200));
}

// ---------------------------------------------------------------------------------------
// Retransmission
// ---------------------------------------------------------------------------------------

/// RFC 6298 (2.2), (2.3): the RTO follows SRTT + 4·RTTVAR from the measured samples.
#[test]
fn rto_after_rtt_samples_follows_rfc6298() {
    let mut h = H::new(Config {
        rto_min: ms(1),
        rto_initial: Duration::from_secs(1),
        ..config()
    });
    // Handshake RTT 100 ms (may or may not be sampled: both are allowed).
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(100));
    h.exchange(10, ms(100), 0);
    h.exchange(10, ms(300), 10);
    assert_eq!(h.send(b"z"), 1);
    h.expect_now("P. 21:22(1) ack 1");
    let t0 = h.now;
    let first = h
        .next_within(Duration::from_secs(5))
        .expect("retransmission");
    h.check(&first, "P. 21:22(1) ack 1");
    let gap = h.now - t0;
    let expected = |samples: &[u64]| {
        let mut e = RttEstimator::new(Duration::from_secs(1), ms(1), Duration::from_secs(60));
        for s in samples {
            e.on_sample(ms(*s));
        }
        e.rto()
    };
    let with_syn = expected(&[100, 100, 300]); // 437.5 ms
    let without = expected(&[100, 300]); // 475 ms
    let close = |a: Duration, b: Duration| a.abs_diff(b) <= ms(2);
    assert!(
        close(gap, with_syn) || close(gap, without),
        "RTO {gap:?}, expected {with_syn:?} (handshake sampled) or {without:?}"
    );
    // And then doubles.
    let t1 = h.now;
    h.next_within(Duration::from_secs(5))
        .expect("second retransmission");
    let gap2 = h.now - t1;
    assert!(close(gap2, gap * 2), "second gap {gap2:?} != 2 × {gap:?}");
}

/// RFC 9293 §3.8.3 (R2): after `max_retransmits` the connection is given up.
#[test]
fn max_retransmits_times_out() {
    let mut h = H::new(Config {
        max_retransmits: 3,
        rto_min: ms(200),
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(b"lost"), 4);
    h.expect_now("P. 11:15(4) ack 1");
    let sent = h.run_for(Duration::from_secs(120));
    let retransmits = sent.iter().filter(|(_, s)| s.payload == b"lost").count();
    assert_eq!(retransmits, 3);
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.error(), Some(TcpError::TimedOut));
    assert!(h.tcp.send(h.conn(), b"more", h.now).is_err());
}

// ---------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------

/// A peer in slow start streams to us for `rounds` round trips of `rtt`, sending each
/// round twice what it sent the last (from ten 1000-byte segments), as far as our window
/// allows; after each round's data the application reads at most `read_per_round` bytes.
/// Checks that the right edge of the window we advertise never moves left (RFC 9293
/// §3.8.6) and returns the largest window advertised. The peer offered window scale 7.
fn stream_to_us(h: &mut H, rtt: Duration, rounds: usize, read_per_round: usize) -> u32 {
    let c = h.conn();
    // Relative sequence numbers of the peer's next byte and of our window's right edge
    // (the SYN-ACK offered 65535, unscaled).
    let mut next: u32 = 1;
    let mut edge: u32 = 1 + 65_535;
    let mut burst: u32 = 10_000;
    let mut max_wnd = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..rounds {
        let end = next + burst.min(edge - next);
        while next < end {
            let len = (end - next).min(1000);
            h.inject(&format!("P. {next}:{}({len}) ack 1", next + len));
            next += len;
        }
        let mut read = 0;
        while read < read_per_round {
            let want = (read_per_round - read).min(buf.len());
            match h.tcp.recv(c, &mut buf[..want], h.now) {
                Ok(n) if n > 0 => read += n,
                _ => break,
            }
        }
        for (_, seg) in h.run_for(rtt) {
            let ack = seg.ack.diff(h.irs) as u32;
            let wnd = u32::from(seg.window) << 7;
            assert!(
                ack + wnd >= edge,
                "the right edge moved left: {ack} + {wnd} < {edge}"
            );
            edge = ack + wnd;
            max_wnd = max_wnd.max(wnd);
        }
        burst *= 2;
    }
    max_wnd
}

/// Receive-buffer autotuning (Linux's dynamic right-sizing): an application that reads
/// everything as it arrives gets a window that grows, round trip by round trip, well past
/// the initial 256 KiB buffer (up to `recv_buffer_max`), so a long path is not
/// window-limited; the right edge never moves left.
#[test]
fn receive_window_grows_for_a_fast_reader() {
    let rtt = ms(50);
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000,wscale 7>", rtt);
    let max_wnd = stream_to_us(&mut h, rtt, 12, usize::MAX);
    assert!(max_wnd > 2 << 20, "largest window {max_wnd}");
    assert!(max_wnd <= 6 << 20, "beyond recv_buffer_max: {max_wnd}");
}

/// Autotuning follows what the application consumes, not what arrives: a reader that
/// takes 20 kB per round trip never gets more than the initial 256 KiB buffer, and the
/// window it has offered is never taken back as the buffer fills.
#[test]
fn receive_window_does_not_grow_for_a_slow_reader() {
    let rtt = ms(50);
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000,wscale 7>", rtt);
    let max_wnd = stream_to_us(&mut h, rtt, 12, 20_000);
    assert!(max_wnd <= 256 * 1024, "largest window {max_wnd}");
    assert!(
        max_wnd > 200 * 1024,
        "the initial buffer is offered: {max_wnd}"
    );
}

/// Send-buffer autotuning (Linux's `tcp_sndbuf_expand`): as cwnd grows in slow start, the
/// application may queue about twice cwnd, past the initial 256 KiB, so the sender is
/// limited by cwnd and the peer's window rather than by its buffer.
#[test]
fn send_buffer_grows_with_cwnd() {
    let rtt = ms(50);
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000,wscale 7>", rtt);
    let c = h.conn();
    h.tcp.set_nodelay(c, true);
    let data = vec![7u8; 1 << 20];
    let iss = h.iss.expect("our ISN");
    let (mut written, mut acked) = (0usize, 0usize);
    let mut most_held = 0;
    for _ in 0..10 {
        while let Ok(n) = h.tcp.send(c, &data, h.now) {
            if n == 0 {
                break;
            }
            written += n;
        }
        most_held = most_held.max(written - acked);
        // What cwnd lets out now, acknowledged a round trip later, every second segment.
        let mut ends = Vec::new();
        while let Some(seg) = h.poll_one() {
            ends.push(seg.seq.diff(iss) as u32 + seg.payload.len() as u32);
        }
        assert!(!ends.is_empty(), "nothing sent");
        h.now += rtt;
        for pair in ends.chunks(2) {
            let ack = pair[pair.len() - 1];
            h.inject(&format!(". 1:1(0) ack {ack}"));
            acked = ack as usize - 1;
        }
    }
    let cwnd = h.tcp.cwnd(c) as usize;
    assert!(most_held > 512 * 1024, "at most {most_held} bytes queued");
    assert!(
        written - acked <= 2 * cwnd,
        "{} bytes queued, cwnd {cwnd}",
        written - acked
    );
}

/// RFC 9293 §3.8.6.2.2, RFC 1122 §4.2.3.3: when the application reads from a full buffer
/// the receiver announces the opened window.
#[test]
fn window_update_after_app_reads() {
    let mut h = H::new(Config {
        recv_buffer: 1000,
        ..config()
    });
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1 win 1000");
    h.inject(". 1:1(0) ack 1");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    h.inject("P. 1:501(500) ack 1");
    h.inject("P. 501:1001(500) ack 1");
    // The last ACK closes the window.
    let mut last = None;
    while let Some(seg) = h.next_within(ACK_SLACK) {
        last = Some(seg);
    }
    let last = last.expect("ACK of the data");
    h.check(&last, ". 1:1(0) ack 1001 win 0");
    // More data is outside the (zero) window: ACKed and dropped.
    h.inject("P. 1001:1101(100) ack 1");
    h.expect_now(". 1:1(0) ack 1001 win 0");
    assert_eq!(h.read_all(), pattern_range(0, 1000));
    h.expect(". 1:1(0) ack 1001 win 1000");
}

/// RFC 9293 §3.8.6: the advertised window is the free buffer space, shrinking as
/// unread data accumulates, down to zero; reading it all opens it again.
#[test]
fn advertised_window_shrinks_with_unread_data() {
    let mut h = H::new(Config {
        recv_buffer: 4000,
        ..config()
    });
    h.passive_open();
    h.inject("P. 1:1001(1000) ack 1");
    h.expect(". 1:1(0) ack 1001 win 3000");
    h.inject("P. 1001:2001(1000) ack 1");
    h.expect(". 1:1(0) ack 2001 win 2000");
    h.inject("P. 2001:3001(1000) ack 1");
    h.expect(". 1:1(0) ack 3001 win 1000");
    h.inject("P. 3001:4001(1000) ack 1");
    h.expect(". 1:1(0) ack 4001 win 0");
    let mut buf = [0u8; 500];
    assert_eq!(h.tcp.recv(h.conn(), &mut buf, h.now), Ok(500));
    assert_eq!(buf.to_vec(), pattern_range(0, 500));
    assert_eq!(h.read_all(), pattern_range(500, 3500));
    h.expect(". 1:1(0) ack 4001 win 4000");
}

// ---------------------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------------------

/// RFC 9293 §3.10.7.4 (FIN-WAIT-1, FIN bit): a FIN that also acknowledges our FIN goes
/// straight to TIME-WAIT.
#[test]
fn fin_wait1_fin_ack_goes_to_time_wait() {
    let mut h = H::new(config());
    h.passive_open();
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1:1(0) ack 1");
    h.inject("F. 1:1(0) ack 2");
    h.expect(". 2:2(0) ack 2");
    assert_eq!(h.state(), State::TimeWait);
}

// ---------------------------------------------------------------------------------------
// Resets on a connection
// ---------------------------------------------------------------------------------------

/// An actively opened connection carries data and closes like a passive one; the peer's
/// smaller MSS in its SYN-ACK is honoured (RFC 9293 §3.7.1).
#[test]
fn active_open_data_and_close() {
    let mut h = H::new(config());
    h.active_open_with("S. 0:0(0) ack 1 win 65535 <mss 1000>", ms(30));
    // Nagle off: the 500-byte tail goes out with the first segment still in flight.
    h.tcp.set_nodelay(h.conn(), true);
    assert_eq!(h.send(&[5u8; 1500]), 1500);
    h.expect_now("P. 1:1001(1000) ack 1");
    h.expect_now("P. 1001:1501(500) ack 1");
    h.inject(". 1:1(0) ack 1501");
    h.inject("P. 1:21(20) ack 1501");
    h.expect(". 1501:1501(0) ack 21");
    assert_eq!(h.read_all(), pattern_range(0, 20));
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1501:1501(0) ack 21");
    h.inject("F. 21:21(0) ack 1502");
    h.expect(". 1502:1502(0) ack 22");
    assert_eq!(h.state(), State::TimeWait);
}

/// After a retransmission timeout pulls SND.NXT back (go-back-N), a segment without data
/// must still carry a sequence number the peer accepts: SND.MAX, as BSD's tcp_output does.
/// With SEQ=SND.NXT a peer that already received everything sees SEG.SEQ < RCV.NXT, drops
/// the segment unprocessed (RFC 9293 §3.10.7.4) and answers with an ACK; when both sides
/// are in that state their ACKs are never processed, they ping-pong forever and the
/// connection times out (found by tcp_simulation, seed 1000; see /work/tcp-notes.md).
#[test]
fn pure_ack_after_rto_carries_snd_max() {
    let mut h = H::new(Config {
        rto_min: ms(200),
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 100>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[3u8; 300]), 300);
    h.expect_now("P. 11:111(100) ack 1");
    h.expect_now("P. 111:211(100) ack 1");
    h.expect_now("P. 211:311(100) ack 1");
    // No ACK arrives: the RTO fires and resends the first segment.
    let rexmit = h.next_within(Duration::from_secs(2)).expect("RTO");
    h.check(&rexmit, "P. 11:111(100) ack 1");
    // The peer (which did get 11..311, its ACK was lost) sends data acknowledging it all.
    // That segment is acceptable and its ACK is processed...
    h.inject("P. 1:11(10) ack 311");
    // ...and our ACK of its data is a pure ACK with SEQ = SND.MAX = 311.
    h.expect(". 311:311(0) ack 11");
    assert_eq!(h.read_all(), pattern_range(0, 10));
}

/// The same situation, but the peer's segment acknowledges only part of what we sent:
/// our pure ACK must still use SND.MAX (not the rewound SND.NXT).
#[test]
fn pure_ack_during_go_back_n_carries_snd_max() {
    let mut h = H::new(Config {
        rto_min: ms(200),
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 100>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[3u8; 300]), 300);
    for _ in 0..3 {
        h.next_within(Duration::ZERO).expect("data");
    }
    let rexmit = h.next_within(Duration::from_secs(2)).expect("RTO");
    h.check(&rexmit, "P. 11:111(100) ack 1");
    // Peer data with no new ACK information: the ACK we owe must not use SEQ=111.
    h.inject("P. 1:11(10) ack 11");
    let ack = h.next_within(ACK_SLACK).expect("ACK of the peer's data");
    let rel = ack.seq.0.wrapping_sub(h.iss.unwrap().0);
    if ack.payload.is_empty() {
        assert_eq!(rel, 311, "pure ACK must carry SND.MAX: {ack}");
    } else {
        // Piggybacked on a retransmission: that carries its own sequence number.
        assert_eq!(rel, 111, "{ack}");
    }
    assert_eq!(ack.ack, h.irs + 11);
}

// ---------------------------------------------------------------------------------------
// The remaining arcs of the state diagram and user-call edge cases
// ---------------------------------------------------------------------------------------

/// RFC 9293 §3.5 figure 8 (simultaneous open): SYN-SENT → SYN-RECEIVED on a SYN, then
/// ESTABLISHED on the ACK of our SYN.
#[test]
fn simultaneous_open_syn_sent_to_syn_received() {
    let mut h = H::new(config());
    h.us = SocketAddrV4::new(US, 50000);
    h.them = SocketAddrV4::new(THEM, 80);
    h.conn = Some(h.tcp.connect(h.us, h.them, h.now).expect("connect"));
    h.expect_now("S 0:0(0) <mss 1460>");
    // Their SYN crosses ours.
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect("S. 0:0(0) ack 1");
    assert_eq!(h.state(), State::SynReceived);
    h.inject(". 1:1(0) ack 1");
    assert_eq!(h.state(), State::Established);
    assert!(h.tcp.is_connected(h.conn()));
}

/// Closing a listener resets its half-open connections; later SYNs get RST.
#[test]
fn close_listener_resets_half_open_and_refuses_new_syns() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 8).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.tcp.close_listener(l, h.now);
    let rst = h
        .next_within(ACK_SLACK)
        .expect("RST for the half-open connection");
    assert!(rst.flags.rst, "{rst}");
    assert_eq!(rst.seq, h.iss.unwrap() + 1, "{rst}");
    h.them = SocketAddrV4::new(THEM, 40001);
    let mut syn = h.build("S 0:0(0) win 65535");
    syn.seq = SeqNum(5000);
    h.inject_seg(&syn);
    let rst = h.poll_one().expect("RST for a SYN to a closed listener");
    assert!(rst.flags.rst && rst.flags.ack, "{rst}");
    assert_eq!(rst.ack, SeqNum(5001));
}

/// Listening twice on a port, or connecting the same 4-tuple twice, is refused.
#[test]
fn address_in_use() {
    let mut h = H::new(config());
    h.tcp.listen(h.us, 8).expect("listen");
    assert_eq!(h.tcp.listen(h.us, 8), Err(TcpError::AddrInUse));
    let local = SocketAddrV4::new(US, 50000);
    h.tcp.connect(local, h.them, h.now).expect("connect");
    assert_eq!(
        h.tcp.connect(local, h.them, h.now),
        Err(TcpError::AddrInUse)
    );
    // Ephemeral ports: two connects to the same peer get different local ports.
    let a = h
        .tcp
        .connect(SocketAddrV4::new(US, 0), h.them, h.now)
        .expect("connect");
    let b = h
        .tcp
        .connect(SocketAddrV4::new(US, 0), h.them, h.now)
        .expect("connect");
    assert_ne!(h.tcp.local_addr(a).port(), h.tcp.local_addr(b).port());
    assert!(h.tcp.local_addr(a).port() >= 49152);
}

/// A full accept queue drops further SYNs (the peer retries); once the application
/// accepts, the next SYN is served.
#[test]
fn listen_backlog_drops_excess_syns() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 1).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 1");
    // Accept queue full (1): a SYN from another port gets nothing.
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_nothing_now();
    assert!(h.tcp.stats().listen_overflows >= 1);
    assert!(h.tcp.accept(l).is_some());
    // Its retransmitted SYN is now answered.
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 1");
    assert!(h.tcp.accept(l).is_some());
}

/// The application sends after CLOSE: an error, nothing on the wire.
#[test]
fn send_after_shutdown_is_an_error() {
    let mut h = H::new(config());
    h.passive_open();
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1:1(0) ack 1");
    assert!(h.tcp.send(h.conn(), b"late", h.now).is_err());
    h.expect_nothing_now();
}

/// A FIN that arrives before the data preceding it waits for the gap to be filled.
#[test]
fn out_of_order_fin_waits_for_the_data() {
    let mut h = H::new(config());
    h.passive_open();
    h.inject("F. 11:11(0) ack 1");
    h.expect_now(". 1:1(0) ack 1");
    assert_eq!(h.state(), State::Established);
    assert_eq!(
        h.tcp.recv(h.conn(), &mut [0u8; 4], h.now),
        Err(TcpError::WouldBlock)
    );
    h.inject("P. 1:11(10) ack 1");
    // The FIN is not necessarily held: if it was dropped the peer retransmits it.
    let ack = h.expect(". 1:1(0)");
    if ack.ack == h.irs + 11 {
        h.inject("F. 11:11(0) ack 1");
        h.expect(". 1:1(0) ack 12");
    } else {
        assert_eq!(ack.ack, h.irs + 12, "{ack}");
    }
    assert_eq!(h.state(), State::CloseWait);
    assert_eq!(h.read_all(), pattern_range(0, 10));
}

/// RFC 9293 §3.10.7.4: RST in CLOSE-WAIT and FIN-WAIT-2 closes with "connection reset".
#[test]
fn rst_in_close_wait_and_fin_wait2() {
    let mut h = H::new(config());
    h.passive_open();
    h.inject("F. 1:1(0) ack 1");
    h.expect(". 1:1(0) ack 2");
    assert_eq!(h.state(), State::CloseWait);
    h.inject("R 2:2(0)");
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.error(), Some(TcpError::ConnectionReset));

    let mut h = H::new(config());
    h.passive_open();
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1:1(0) ack 1");
    h.inject(". 1:1(0) ack 2");
    assert_eq!(h.state(), State::FinWait2);
    h.inject("R 1:1(0)");
    assert_eq!(h.state(), State::Closed);
}

/// The handshake's final ACK may carry data: it is delivered.
#[test]
fn data_on_the_handshake_ack() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 8).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject("P. 1:21(20) ack 1");
    h.conn = Some(h.tcp.accept(l).expect("accept"));
    h.expect(". 1:1(0) ack 21");
    assert_eq!(h.read_all(), pattern_range(0, 20));
}

/// A zero-length segment one below RCV.NXT (a keep-alive or Linux-style window probe) is
/// answered with an ACK carrying the current window.
#[test]
fn old_zero_length_probe_is_acked() {
    let mut h = H::new(Config {
        recv_buffer: 4000,
        ..config()
    });
    h.passive_open();
    h.inject("P. 1:101(100) ack 1");
    h.expect(". 1:1(0) ack 101 win 3900");
    h.inject(". 100:100(0) ack 1");
    h.expect_now(". 1:1(0) ack 101 win 3900");
}

/// With a full receive window, a one-byte probe is not accepted but is answered.
#[test]
fn zero_window_probe_with_data_is_acked_not_accepted() {
    let mut h = H::new(Config {
        recv_buffer: 1000,
        ..config()
    });
    h.passive_open();
    h.inject("P. 1:1001(1000) ack 1");
    h.expect(". 1:1(0) ack 1001 win 0");
    h.inject("P. 1001:1002(1) ack 1");
    h.expect_now(". 1:1(0) ack 1001 win 0");
    assert_eq!(h.read_all(), pattern_range(0, 1000));
}

/// Karn's algorithm (RFC 6298 §3): the ACK of a retransmitted segment gives no RTT sample.
#[test]
fn karn_no_rtt_sample_from_retransmission() {
    let mut h = H::new(Config {
        rto_min: ms(1),
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(100));
    h.exchange(10, ms(100), 0);
    let srtt = h.tcp.srtt(h.conn()).expect("sampled");
    assert_eq!(h.send(b"abc"), 3);
    h.expect_now("P. 11:14(3) ack 1");
    let rexmit = h.next_within(Duration::from_secs(5)).expect("RTO");
    h.check(&rexmit, "P. 11:14(3) ack 1");
    // The ACK comes 5 ms after the retransmission: ambiguous, must not be sampled.
    h.now += ms(5);
    h.inject(". 1:1(0) ack 14");
    assert_eq!(h.tcp.srtt(h.conn()), Some(srtt));
}

/// A full send buffer accepts only what fits; ACKs free space again.
#[test]
fn send_buffer_bounds_writes() {
    let mut h = H::new(Config {
        send_buffer: 1000,
        // A fixed bound: no autotuning.
        send_buffer_max: 0,
        ..config()
    });
    h.passive_open();
    let c = h.conn();
    h.tcp.set_nodelay(c, true);
    assert_eq!(h.send(&[1u8; 3000]), 1000);
    assert_eq!(h.tcp.send(c, &[1u8; 10], h.now), Ok(0));
    assert!(!h.tcp.send_ready(c));
    h.expect_now("P. 1:1001(1000) ack 1");
    h.inject(". 1:1(0) ack 501");
    assert!(h.tcp.send_ready(c));
    assert_eq!(h.send(&[2u8; 3000]), 500);
    h.expect_now("P. 1001:1501(500) ack 1");
}

/// take_events reports socket-visible changes once.
#[test]
fn events_are_reported_once() {
    let mut h = H::new(config());
    h.passive_open();
    h.tcp.take_events();
    assert!(!h.tcp.take_events());
    h.inject("P. 1:11(10) ack 1");
    assert!(h.tcp.take_events(), "data arrival is an event");
    assert!(!h.tcp.take_events());
    h.inject("F. 11:11(0) ack 1");
    assert!(h.tcp.take_events(), "EOF is an event");
}

/// RFC 7323 §2.2: window scaling is used only when both SYNs carry the option, and then
/// the peer's window field is shifted. Whatever we decide, we must be consistent.
#[test]
fn window_scale_negotiation_is_consistent() {
    let mut h = H::new(config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1000,wscale 2>");
    let synack = h.expect_now("S. 0:0(0) ack 1");
    // The peer's windows are in units of 4 bytes if we also scale, else bytes.
    let unit = if synack.options.window_scale.is_some() {
        4
    } else {
        1
    };
    h.inject(". 1:1(0) ack 1 win 500");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    assert_eq!(h.send(&[8u8; 5000]), 5000);
    let mut sent = 0;
    while let Some(seg) = h.next_within(Duration::ZERO) {
        sent += seg.payload.len();
    }
    assert_eq!(sent, 500 * unit, "window 500 << {}", unit / 2);

    // Active open: the peer's SYN-ACK without the option means no scaling either way.
    let mut h = H::new(config());
    // (2 × MSS, so sender SWS avoidance does not hold back a partial segment.)
    h.active_open_with("S. 0:0(0) ack 1 win 2920 <mss 1460>", ms(5));
    assert_eq!(h.send(&[8u8; 5000]), 5000);
    let mut sent = 0;
    while let Some(seg) = h.next_within(Duration::ZERO) {
        assert!(seg.window > 0);
        sent += seg.payload.len();
    }
    assert_eq!(sent, 2920);
}

/// RFC 9293 §3.8.6.2.1 (sender SWS avoidance): with data in flight, a usable window
/// smaller than a segment (and than half the peer's largest window) is not used for a
/// tiny segment; the rest goes when the ACK opens a full segment's worth.
#[test]
fn sender_sws_avoidance_holds_small_segments() {
    let mut h = H::new(config());
    h.active_open_with("S. 0:0(0) ack 1 win 2000 <mss 1460>", ms(5));
    assert_eq!(h.send(&[8u8; 5000]), 5000);
    h.expect_now("P. 1:1461(1460) ack 1");
    // 540 bytes of window left: held back.
    h.expect_nothing_now();
    h.inject(". 1:1(0) ack 1461 win 2000");
    h.expect_now("P. 1461:2921(1460) ack 1");
    h.expect_nothing_now();
}

// ---------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------

/// A SYN announcing MSS 0 (or 1) must not make us send empty segments forever or divide by
/// zero: data still flows, in small segments.
#[test]
fn tiny_peer_mss_is_survivable() {
    for mss in [0u16, 1, 8] {
        let mut h = H::new(config());
        h.passive_open_with(&format!("S 0:0(0) win 65535 <mss {mss}>"), ms(1));
        assert_eq!(h.send(&[6u8; 100]), 100);
        let mut got = 0usize;
        let mut segments = 0;
        // Acknowledge whatever arrives until all 100 bytes are through.
        while got < 100 {
            let seg = h
                .next_within(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("mss {mss}: stalled after {got} bytes"));
            segments += 1;
            assert!(segments <= 300, "mss {mss}: too many segments");
            assert!(
                !seg.payload.is_empty(),
                "mss {mss}: an empty data segment: {seg}"
            );
            let end = seg.seq.0.wrapping_sub(h.iss.unwrap().0) as usize - 1 + seg.payload.len();
            got = got.max(end);
            h.inject(&format!(". 1:1(0) ack {}", got + 1));
        }
        assert_eq!(got, 100, "mss {mss}");
    }
}

/// Random segments — any flags, sequence and acknowledgment numbers near and far, odd
/// options, payloads — thrown at a listener and an established connection, mixed with
/// application calls and time passing: nothing panics, every segment we emit survives
/// a parse round trip, and the endpoint keeps answering.
#[test]
fn random_segments_never_panic() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut h = H::new(Config {
            recv_buffer: 2000,
            send_buffer: 3000,
            ..config()
        });
        h.passive_open();
        let iss = h.iss.unwrap();
        for step in 0..3000 {
            let near = |rng: &mut StdRng, base: SeqNum| -> SeqNum {
                match rng.random_range(0..4) {
                    0 => SeqNum(rng.random()),
                    _ => base + rng.random_range(0..6000u32) - 3000,
                }
            };
            let flags = Flags::from_byte(rng.random::<u8>() & 0x3f);
            let mut seg = Segment {
                src_port: if rng.random_bool(0.9) {
                    40000
                } else {
                    rng.random()
                },
                dst_port: if rng.random_bool(0.9) {
                    80
                } else {
                    rng.random()
                },
                seq: near(&mut rng, h.irs + 1),
                ack: near(&mut rng, iss + 1),
                flags,
                window: rng.random(),
                urgent: rng.random(),
                options: TcpOptions::default(),
                payload: vec![0x5a; rng.random_range(0..1600)],
            };
            if rng.random_bool(0.2) {
                seg.options.mss = Some(rng.random());
            }
            if rng.random_bool(0.1) {
                seg.options.window_scale = Some(rng.random_range(0..15));
            }
            if rng.random_bool(0.1) {
                seg.options.sack_permitted = true;
            }
            if rng.random_bool(0.2) {
                let a = near(&mut rng, iss);
                let b = near(&mut rng, iss);
                seg.options.sack_blocks = vec![(a, b), (b, a)];
            }
            if rng.random_bool(0.1) {
                seg.options.timestamps = Some((rng.random(), rng.random()));
            }
            h.inject_seg(&seg);
            match rng.random_range(0..20) {
                0 => {
                    let _ = h.tcp.send(h.conn(), &[1u8; 700], h.now);
                }
                1 => {
                    let _ = h.tcp.recv(h.conn(), &mut [0u8; 900], h.now);
                }
                2 => h.now += ms(rng.random_range(0..3000)),
                3 if step % 500 == 499 => h.tcp.shutdown(h.conn(), h.now),
                _ => {}
            }
            h.tcp.handle_timeout(h.now);
            let mut out = 0;
            while let Some(t) = h.tcp.poll_transmit(h.now) {
                out += 1;
                assert!(out < 1000, "seed {seed}: poll_transmit never runs dry");
                let bytes = t.segment.emit(t.src, t.dst);
                let back = Segment::parse(t.src, t.dst, &bytes).expect("our segment parses");
                assert_eq!(back.payload, t.segment.payload);
                assert_eq!(back.flags, t.segment.flags);
                assert!(t.segment.payload.len() <= 1460, "{}", t.segment);
            }
            let _ = h.tcp.poll_at();
        }
        // Still alive: once the half-open connections the random SYNs created have
        // expired (they may fill the backlog legitimately), a new connection works.
        let end = h.now + Duration::from_secs(600);
        while let Some(at) = h.tcp.poll_at().filter(|&at| at <= end) {
            h.now = h.now.max(at);
            h.tcp.handle_timeout(h.now);
            while h.tcp.poll_transmit(h.now).is_some() {}
        }
        h.now = end;
        h.them = SocketAddrV4::new(THEM, 41000);
        h.iss = None;
        h.inject("S 0:0(0) win 65535 <mss 1460>");
        h.expect("S. 0:0(0) ack 1");
    }
}

/// A half-open connection whose handshake never completes gives up after `syn_retries`
/// SYN-ACKs and frees its backlog slot (otherwise a few spoofed SYNs would disable the
/// listener for good).
#[test]
fn half_open_connection_expires_and_frees_the_backlog() {
    let mut h = H::new(Config {
        syn_retries: 3,
        ..config()
    });
    let l = h.tcp.listen(h.us, 1).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    let sent = h.run_for(Duration::from_secs(600));
    let synacks = sent.iter().filter(|(_, s)| s.flags.syn).count();
    assert_eq!(synacks, 3, "SYN-ACK retransmissions");
    assert_eq!(
        h.tcp.connection_count(),
        0,
        "{:?}",
        h.tcp.connection_states()
    );
    // The slot is free again.
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 1");
    assert!(h.tcp.accept(l).is_some());
}

// ---------------------------------------------------------------------------------------
// Tail loss probe (RFC 8985 §7) and SACK (RFC 2018, RFC 6675)
// ---------------------------------------------------------------------------------------

/// RFC 2018 §4: when SACK was permitted, an ACK for out-of-order data reports the held
/// blocks, the most recently received first.
#[test]
fn sack_blocks_report_held_data_most_recent_first() {
    let mut h = H::new(config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460,sackOK>");
    let synack = h.expect_now("S. 0:0(0) ack 1");
    assert!(
        synack.options.sack_permitted,
        "SACK-permitted answered: {synack}"
    );
    h.inject(". 1:1(0) ack 1");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    let irs = h.irs;
    let blocks = |v: &[(u32, u32)]| -> Vec<(SeqNum, SeqNum)> {
        v.iter().map(|&(l, r)| (irs + l, irs + r)).collect()
    };

    h.inject("P. 101:201(100) ack 1");
    let a = h.expect_now(". 1:1(0) ack 1");
    assert_eq!(a.options.sack_blocks, blocks(&[(101, 201)]));
    h.inject("P. 301:401(100) ack 1");
    let a = h.expect_now(". 1:1(0) ack 1");
    assert_eq!(a.options.sack_blocks, blocks(&[(301, 401), (101, 201)]));
    // Extending the older block makes it the most recent.
    h.inject("P. 201:251(50) ack 1");
    let a = h.expect_now(". 1:1(0) ack 1");
    assert_eq!(a.options.sack_blocks, blocks(&[(101, 251), (301, 401)]));
    h.inject("P. 1:101(100) ack 1");
    let a = h.expect_now(". 1:1(0) ack 251");
    assert_eq!(a.options.sack_blocks, blocks(&[(301, 401)]));
    h.inject("P. 251:301(50) ack 1");
    let a = h.expect_now(". 1:1(0) ack 401");
    assert!(a.options.sack_blocks.is_empty(), "{a}");
    assert_eq!(h.read_all(), pattern_range(0, 400));
}

/// Without SACK-permitted on the peer's SYN, no SACK option is ever sent (RFC 2018 §2).
#[test]
fn no_sack_blocks_unless_permitted() {
    let mut h = H::new(config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    let synack = h.expect_now("S. 0:0(0) ack 1");
    assert!(!synack.options.sack_permitted);
    h.inject(". 1:1(0) ack 1");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    h.inject("P. 101:201(100) ack 1");
    let a = h.expect_now(". 1:1(0) ack 1");
    assert!(a.options.sack_blocks.is_empty(), "{a}");
}

/// RFC 6675: with SACK information the sender retransmits only the holes, not data the
/// receiver already holds, and does so before the RTO.
#[test]
fn sack_recovery_retransmits_only_the_holes() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 100,sackOK>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[4u8; 600]), 600);
    for _ in 0..6 {
        h.next_within(Duration::ZERO).expect("data");
    }
    // Received: 111:211 and 311:611. Holes: 11:111 and 211:311.
    h.now += ms(10);
    let iss = h.iss.unwrap();
    let mut dup = h.build(". 1:1(0) ack 11");
    dup.options.sack_blocks = vec![(iss + 111, iss + 211)];
    h.inject_seg(&dup);
    dup.options.sack_blocks = vec![(iss + 311, iss + 411), (iss + 111, iss + 211)];
    h.inject_seg(&dup);
    dup.options.sack_blocks = vec![(iss + 311, iss + 511), (iss + 111, iss + 211)];
    h.inject_seg(&dup);
    dup.options.sack_blocks = vec![(iss + 311, iss + 611), (iss + 111, iss + 211)];
    h.inject_seg(&dup);
    // Collect what goes out before the RTO could fire (200 ms).
    let sent = h.run_for(ms(150));
    let rel: Vec<(u32, usize)> = sent
        .iter()
        .filter(|(_, s)| !s.payload.is_empty())
        .map(|(_, s)| (s.seq.0.wrapping_sub(iss.0), s.payload.len()))
        .collect();
    assert!(
        rel.contains(&(11, 100)),
        "first hole retransmitted: {rel:?}"
    );
    assert!(
        rel.contains(&(211, 100)),
        "second hole retransmitted: {rel:?}"
    );
    for &(seq, len) in &rel {
        assert!(
            (seq == 11 || seq == 211) && len == 100,
            "only holes are retransmitted, got {seq}:{}: {rel:?}",
            seq as usize + len
        );
    }
    h.inject(". 1:1(0) ack 611");
    h.expect_silence(Duration::from_secs(5));
}

/// RFC 9293 §3.8.6.3 (MUST-58, RFC 5681 §4.2): an ACK may be delayed, but at least every
/// second full-sized segment is acknowledged at once, and no ACK waits 0.5 s or more.
#[test]
fn ack_every_second_full_segment_and_delay_bound() {
    let mut h = H::new(config());
    h.passive_open();
    h.inject("P. 1:1461(1460) ack 1");
    // The first may be delayed (or not).
    let first = h.poll_one();
    h.inject("P. 1461:2921(1460) ack 1");
    let second = h.poll_one();
    let acked: Vec<SeqNum> = first.iter().chain(second.iter()).map(|s| s.ack).collect();
    assert!(
        acked.contains(&(h.irs + 2921)),
        "two full segments must be acknowledged at once: {acked:?}"
    );
    // A lone small segment is acknowledged within 500 ms.
    let t0 = h.now;
    h.inject("P. 2921:2931(10) ack 1");
    let ack = h
        .next_within(ms(499))
        .expect("ACK within 500 ms of a lone segment");
    h.check(&ack, ". 1:1(0) ack 2931");
    assert!(h.now - t0 < ms(500));
    assert_eq!(h.read_all(), pattern_range(0, 2930));
}

/// Our own sequence numbers crossing 2^32 (RFC 9293 §3.4): data, ACK processing,
/// retransmission and FIN all work across the wrap. The peer's side wraps in every test
/// (its ISN is 2^32 - 51); for ours, the test picks the moment of the SYN so that the
/// clock-driven ISN (RFC 6528: ISN = M + F(4-tuple, secret), M a 4 µs timer) lands just
/// below 2^32.
#[test]
fn our_sequence_numbers_wrap() {
    // Learn F for this 4-tuple and seed.
    let mut probe = H::new(config());
    probe.tcp.listen(probe.us, 8).expect("listen");
    probe.inject("S 0:0(0) win 65535 <mss 1460>");
    probe.expect_now("S. 0:0(0) ack 1");
    let iss0 = probe.iss.unwrap();
    let ticks = u64::from((u32::MAX - 1000).wrapping_sub(iss0.0));
    let mut h = H::new(config());
    h.now = probe.now + Duration::from_micros(4 * ticks);
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000>", ms(10));
    let iss = h.iss.unwrap();
    assert!(
        iss.0 > u32::MAX - 3000,
        "the ISN generator changed ({iss}); this test needs an ISN just below 2^32"
    );
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(h.send(&data), 5000);
    let mut stream = Vec::new();
    for i in 0..5u32 {
        let seg = h.expect_now(&format!(
            "P. {}:{}(1000) ack 1",
            1 + i * 1000,
            1001 + i * 1000
        ));
        stream.extend_from_slice(&seg.payload);
    }
    assert_eq!(stream, data);
    assert!(
        (iss + 5001).0 < 5000,
        "the data crossed 2^32: {iss} + 5001 = {}",
        iss + 5001
    );
    // Partial ACK across the wrap, then a retransmission of what is left.
    h.inject(". 1:1(0) ack 2001");
    let rexmit = h.next_within(Duration::from_secs(3)).expect("RTO");
    h.check(&rexmit, "P. 2001:3001(1000) ack 1");
    h.inject(". 1:1(0) ack 5001");
    h.tcp.shutdown(h.conn(), h.now);
    h.expect("F. 5001:5001(0) ack 1");
    h.inject("F. 1:1(0) ack 5002");
    h.expect(". 5002:5002(0) ack 2");
    assert_eq!(h.state(), State::TimeWait);
}

/// RFC 7323 §2.2: if the peer's SYN has no window scale option, neither side scales,
/// whatever our buffer size; the window field never exceeds 65535.
#[test]
fn no_window_scaling_without_peer_option() {
    let mut h = H::new(Config {
        recv_buffer: 1 << 20,
        ..config()
    });
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1000>");
    let synack = h.expect_now("S. 0:0(0) ack 1 win 65535");
    assert_eq!(synack.options.window_scale, None);
    h.inject(". 1:1(0) ack 1 win 3000");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    h.inject("P. 1:1001(1000) ack 1 win 3000");
    // 65535, or 65535 - 1000 if unscaled windows treat the buffer as 64 KiB: both keep
    // the right edge from moving left.
    let ack = h.expect(". 1:1(0) ack 1001");
    assert!((64_535..=65_535).contains(&ack.window), "{ack}");
    assert_eq!(h.send(&[5u8; 5000]), 5000);
    let mut sent = 0;
    while let Some(seg) = h.next_within(Duration::ZERO) {
        sent += seg.payload.len();
    }
    assert_eq!(sent, 3000, "the peer's window is read unscaled");
}

/// RFC 9293 §3.10.7.2: data on a SYN may be queued until ESTABLISHED (or dropped and
/// retransmitted by the peer); either way the application gets it exactly once.
#[test]
fn data_on_syn_delivered_exactly_once() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 8).expect("listen");
    // "S 0:10(10)": SYN at 0, data 1..11.
    let mut syn = h.build("S 0:0(0) win 65535 <mss 1460>");
    syn.payload = pattern_range(0, 10);
    h.inject_seg(&syn);
    let synack = h.expect_now("S. 0:0(0)");
    let queued = synack.ack == h.irs + 11;
    assert!(
        queued || synack.ack == h.irs + 1,
        "SYN-ACK acknowledges the SYN (and maybe its data): {synack}"
    );
    let ack_line = if queued {
        ". 11:11(0) ack 1"
    } else {
        ". 1:1(0) ack 1"
    };
    h.inject(ack_line);
    h.conn = Some(h.tcp.accept(l).expect("accept"));
    if !queued {
        // The peer retransmits the data it was not acknowledged for.
        h.inject("P. 1:11(10) ack 1");
        h.expect(". 1:1(0) ack 11");
    }
    assert_eq!(h.read_all(), pattern_range(0, 10));
    // A retransmission of the data changes nothing.
    h.inject("P. 1:11(10) ack 1");
    h.expect_now(". 1:1(0) ack 11");
    assert!(h.read_all().is_empty());
}

/// RFC 9293 §3.10.7.4 (SYN-RECEIVED, ACK not acceptable): `<SEQ=SEG.ACK><CTL=RST>`, and
/// the half-open connection stays, completing with a correct ACK later.
#[test]
fn syn_received_bad_ack_gets_rst() {
    let mut h = H::new(config());
    let l = h.tcp.listen(h.us, 8).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 5000");
    h.expect_now("R 5000:5000(0)");
    assert_eq!(h.tcp.accept(l), None);
    h.inject(". 1:1(0) ack 1");
    assert!(h.tcp.accept(l).is_some());
}

/// RFC 9293 §3.8.6.1: a zero window may last forever while the peer answers probes, but a
/// peer that stops answering is given up like any unacknowledged retransmission.
#[test]
fn unanswered_zero_window_probes_time_out() {
    let mut h = H::new(Config {
        max_retransmits: 4,
        ..config()
    });
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.now += ms(10);
    h.inject(". 1:1(0) ack 1 win 0");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    assert_eq!(h.send(&[9u8; 100]), 100);
    let sent = h.run_for(Duration::from_secs(3600));
    assert!(sent.len() >= 4, "probes were sent: {}", sent.len());
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.error(), Some(TcpError::TimedOut));
}

// ---------------------------------------------------------------------------------------
// Congestion control (RFC 5681, RFC 6928)
// ---------------------------------------------------------------------------------------

/// RFC 6928 initial window, RFC 5681 §3.1 slow start (cwnd grows by one SMSS per ACK of
/// new data) and the collapse to one segment on a retransmission timeout.
#[test]
fn slow_start_then_collapse_on_rto() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 100>", ms(10));
    let c = h.conn();
    // IW = min(10·MSS, max(2·MSS, 14600)) = 1000 bytes.
    assert_eq!(h.tcp.cwnd(c), 1000);
    assert_eq!(h.send(&[1u8; 20_000]), 20_000);
    let mut flight = 0;
    while h.next_within(Duration::ZERO).is_some() {
        flight += 1;
    }
    assert_eq!(flight, 10, "the initial window is 10 segments");
    // One ACK per segment: each grows cwnd by one MSS and frees one, so two go out.
    h.now += ms(10);
    let mut second = 0;
    for i in 1..=10u32 {
        h.inject(&format!(". 1:1(0) ack {}", 1 + i * 100));
        while h.next_within(Duration::ZERO).is_some() {
            second += 1;
        }
    }
    assert_eq!(h.tcp.cwnd(c), 2000);
    assert_eq!(second, 20, "slow start doubles the flight per RTT");
    // Nothing acknowledged any more: the RTO fires and cwnd collapses to one segment.
    let rexmit = h.next_within(Duration::from_secs(3)).expect("RTO");
    h.check(&rexmit, "P. 1001:1101(100) ack 1");
    assert_eq!(
        h.tcp.cwnd(c),
        100,
        "RFC 5681 (5): cwnd = 1 SMSS after an RTO"
    );
    h.expect_nothing_now();
}

/// RFC 5681 §3.2: on the third duplicate ACK, ssthresh = max(FlightSize / 2, 2·SMSS) and
/// cwnd = ssthresh + 3·SMSS; a full ACK ends recovery with cwnd deflated (RFC 6582).
#[test]
fn fast_recovery_halves_the_window() {
    // RFC 5681's halving; CUBIC (the default) reduces by β = 0.7 instead.
    let mut h = H::new(Config {
        congestion: CongestionAlgorithm::NewReno,
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 100>", ms(10));
    let c = h.conn();
    assert_eq!(h.send(&[1u8; 1000]), 1000);
    for _ in 0..10 {
        h.next_within(Duration::ZERO).expect("IW");
    }
    h.now += ms(10);
    for _ in 0..3 {
        h.inject(". 1:1(0) ack 1");
    }
    h.expect_now("P. 1:101(100) ack 1");
    // FlightSize 1000 → ssthresh 500, cwnd 500 + 300.
    assert_eq!(h.tcp.cwnd(c), 800);
    h.inject(". 1:1(0) ack 1001");
    // RFC 6582 §3.2 step 3, full ACK: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)
    // = min(500, 0 + 100 + 100) = 200 (option 1, avoids a burst) or ssthresh = 500.
    let cwnd = h.tcp.cwnd(c);
    assert!(cwnd == 200 || cwnd == 500, "cwnd {cwnd} after the full ACK");
}

/// Bounded everything (docs/architecture.md, principle 7): with `max_connections` live TCBs, a new
/// connect fails with TooManyConnections and a new SYN is not answered — unless a
/// released connection is only lingering in TIME-WAIT, which is reclaimed.
#[test]
fn connection_table_limit() {
    let mut h = H::new(Config {
        max_connections: 2,
        ..config()
    });
    let l = h.tcp.listen(h.us, 8).expect("listen");
    let mut conns = Vec::new();
    for port in [40000u16, 40001] {
        h.them = SocketAddrV4::new(THEM, port);
        h.iss = None;
        h.inject("S 0:0(0) win 65535 <mss 1460>");
        h.expect_now("S. 0:0(0) ack 1");
        h.inject(". 1:1(0) ack 1");
        conns.push(h.tcp.accept(l).expect("accept"));
    }
    assert_eq!(h.tcp.connection_count(), 2);
    assert_eq!(
        h.tcp.connect(SocketAddrV4::new(US, 0), h.them, h.now),
        Err(TcpError::TooManyConnections)
    );
    h.them = SocketAddrV4::new(THEM, 40002);
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    assert!(
        h.poll_one().is_none_or(|s| !s.flags.syn),
        "no SYN-ACK beyond the limit"
    );
    // The first connection closes actively and is released: TIME-WAIT, reclaimable.
    h.them = SocketAddrV4::new(THEM, 40000);
    h.tcp.shutdown(conns[0], h.now);
    let fin = h.poll_one().expect("FIN");
    assert!(fin.flags.fin);
    let mut ack = h.build("F. 1:1(0) ack 1");
    ack.ack = fin.seq + 1;
    h.inject_seg(&ack);
    let _ = h.poll_one();
    assert_eq!(h.tcp.state(conns[0]), State::TimeWait);
    h.tcp.release(conns[0], h.now);
    let c = h
        .tcp
        .connect(SocketAddrV4::new(US, 0), SocketAddrV4::new(THEM, 9), h.now)
        .expect("the TIME-WAIT TCB is reclaimed for a new connection");
    assert_eq!(h.tcp.state(c), State::SynSent);
    assert!(h.tcp.connection_count() <= 2);
}

/// RFC 9293 §3.8.6: retransmissions too stay inside the peer's window. With a 1000-byte
/// window and a 1460-byte MSS, the segment resent at SND.UNA (fast / early retransmit,
/// RTO) must not grow to a full MSS of data the window never allowed (found by the
/// simulation's window monitor, seed 1038; see /work/tcp-notes.md).
#[test]
fn retransmission_respects_peer_window() {
    let mut h = H::new(config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.now += ms(10);
    h.inject(". 1:1(0) ack 1 win 1000");
    h.conn = Some(h.tcp.accept(h.listener.unwrap()).expect("accept"));
    assert_eq!(h.send(&[7u8; 5000]), 5000);
    h.expect_now("P. 1:1001(1000) ack 1");
    h.expect_nothing_now();
    let iss = h.iss.unwrap();
    let within = |seg: &Segment| {
        let end = seg.seq.0.wrapping_sub(iss.0) as usize + seg.payload.len();
        end <= 1001
    };
    // Duplicate ACKs (e.g. from a duplicated segment) may trigger a fast or early
    // retransmit; whatever goes out stays within the window.
    for dup in 1..=3 {
        h.inject(". 1:1(0) ack 1 win 1000");
        while let Some(seg) = h.poll_one() {
            assert!(
                within(&seg),
                "after duplicate ACK {dup}: beyond the 1000-byte window: {seg}"
            );
        }
    }
    // And the RTO's retransmission too.
    let rto = h.next_within(Duration::from_secs(5)).expect("RTO");
    assert!(within(&rto), "beyond the 1000-byte window: {rto}");
}

/// RFC 6298 (2.5), (5.5): the backed-off RTO stops growing at `rto_max`.
#[test]
fn rto_backoff_is_capped_at_rto_max() {
    let mut h = H::new(Config {
        rto_min: ms(200),
        rto_max: ms(1000),
        max_retransmits: 8,
        ..config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(b"x"), 1);
    h.expect_now("P. 11:12(1) ack 1");
    let t0 = h.now;
    let times: Vec<u64> = h
        .run_for(Duration::from_secs(8))
        .iter()
        .map(|(t, _)| (*t - t0).as_millis() as u64)
        .collect();
    let gaps: Vec<u64> = std::iter::once(times[0])
        .chain(times.windows(2).map(|w| w[1] - w[0]))
        .collect();
    assert_eq!(
        &gaps[..6],
        &[210, 420, 840, 1000, 1000, 1000],
        "gaps {gaps:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Timestamps (RFC 7323), delayed ACKs, Nagle, keep-alive, user timeout, SYN cookies
// ---------------------------------------------------------------------------------------

/// The defaults a Linux peer meets: timestamps, SACK and window scaling.
fn real_config() -> Config {
    Config {
        msl: Duration::from_secs(1),
        tail_loss_probe: false,
        ..Config::default()
    }
}

/// RFC 7323 §3.2: TSopt answered on the SYN-ACK (echoing the SYN's TSval), then on every
/// segment; the MSS shrinks by the 12 option bytes (RFC 6691); with the default 256 KiB
/// buffer the window scale is 3 (RFC 7323 §2.2).
#[test]
fn timestamps_negotiated_and_echoed() {
    let mut h = H::new(real_config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,wscale 7>");
    h.expect_now("S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val * ecr 100,wscale 7>");
    h.inject(". 1:1(0) ack 1 win 512 <TS val 101 ecr *>");
    h.conn = h.tcp.accept(h.listener.unwrap());
    assert_eq!(h.state(), State::Established);
    assert_eq!(h.tcp.send_mss(h.conn()), 1448);
    h.inject("P. 1:101(100) ack 1 win 512 <TS val 150 ecr *>");
    h.expect(". 1:1(0) ack 101 <TS val * ecr 150>");
    assert_eq!(h.read_all(), pattern_range(0, 100));
}

/// RFC 7323 §3.2: no TSopt from the peer, none from us (and nothing else changes).
#[test]
fn no_timestamps_unless_the_peer_offers_them() {
    let mut h = H::new(real_config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(1));
    assert_eq!(h.tcp.send_mss(h.conn()), 1460);
    h.inject("P. 1:11(10) ack 1");
    h.expect(". 1:1(0) ack 11 <noTS>");
}

/// RFC 7323 §5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent is dropped and
/// answered with an ACK, though its sequence numbers are fine; after 24 days idle
/// (§5.5) TS.Recent is invalid and the same segment is accepted.
#[test]
fn paws_drops_segments_with_old_timestamps() {
    let mut h = H::new(real_config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,TS val 1000 ecr 0>", ms(1));
    h.inject("P. 1:11(10) ack 1 <TS val 2000 ecr *>");
    h.expect(". 1:1(0) ack 11 <TS val * ecr 2000>");
    // An old duplicate from a previous incarnation, with in-window sequence numbers.
    h.inject("P. 11:21(10) ack 1 <TS val 1500 ecr *>");
    h.expect_now(". 1:1(0) ack 11 <TS val * ecr 2000>");
    assert_eq!(h.tcp.stats().paws_rejected, 1);
    assert_eq!(
        h.read_all(),
        pattern_range(0, 10),
        "the old segment was not delivered"
    );
    // 25 days later the old TS.Recent no longer counts.
    h.now += Duration::from_secs(25 * 24 * 3600);
    h.inject("P. 11:21(10) ack 1 <TS val 1500 ecr *>");
    h.expect(". 1:1(0) ack 21 <TS val * ecr 1500>");
    assert_eq!(h.read_all(), pattern_range(10, 10));
}

/// RFC 7323 §4.3: TS.Recent only follows segments at or before Last.ACK.sent, so the
/// duplicate ACK for out-of-order data echoes the last in-sequence TSval, and the ACK
/// for the segment filling the gap echoes that segment's TSval.
#[test]
fn ts_recent_follows_only_in_sequence_segments() {
    let mut h = H::new(Config {
        delayed_ack: Duration::ZERO,
        ..real_config()
    });
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,TS val 100 ecr 0>", ms(1));
    h.inject("P. 1:11(10) ack 1 <TS val 200 ecr *>");
    h.expect(". 1:1(0) ack 11 <TS val * ecr 200>");
    h.inject("P. 21:31(10) ack 1 <TS val 300 ecr *>");
    h.expect_now(". 1:1(0) ack 11 <TS val * ecr 200>");
    h.inject("P. 11:21(10) ack 1 <TS val 250 ecr *>");
    h.expect_now(". 1:1(0) ack 31 <TS val * ecr 250>");
}

/// RFC 1122 §4.2.3.2 / RFC 5681 §4.2: one full-sized segment is ACKed after the
/// delayed-ACK timeout (40 ms), the second at once; out-of-order data at once.
#[test]
fn delayed_ack_timer_and_every_second_segment() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.inject("P. 1:1461(1460) ack 1");
    h.expect_silence(ms(39));
    h.expect(". 1:1(0) ack 1461");
    assert_eq!(h.tcp.stats().delayed_acks, 1);
    h.inject("P. 1461:2921(1460) ack 1");
    h.expect_nothing_now();
    h.inject("P. 2921:4381(1460) ack 1");
    h.expect_now(". 1:1(0) ack 4381");
    // Out of order: an immediate duplicate ACK.
    h.inject("P. 5841:7301(1460) ack 1");
    h.expect_now(". 1:1(0) ack 4381");
    // Filling the gap: immediate too.
    h.inject("P. 4381:5841(1460) ack 1");
    h.expect_now(". 1:1(0) ack 7301");
}

/// The delayed ACK rides on the reply if the application answers within the timeout.
#[test]
fn delayed_ack_piggybacks_on_the_reply() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.inject("P. 1:101(100) ack 1");
    h.expect_silence(ms(10));
    h.send(b"reply");
    h.expect_now("P. 1:6(5) ack 101");
    h.expect_silence(ms(100));
}

/// RFC 1122 §4.2.3.4 (Nagle): with data in flight a small segment waits for the ACK;
/// a full segment does not; `set_nodelay(true)` sends at once.
#[test]
fn nagle_holds_small_segments_until_acked() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.send(&[1u8; 100]);
    h.expect_now("P. 1:101(100) ack 1");
    h.send(&[2u8; 100]);
    h.expect_nothing_now();
    h.send(&[3u8; 1400]);
    // 1500 bytes queued: one full segment goes, the 40-byte rest waits.
    h.expect_now(". 101:1561(1460) ack 1");
    h.expect_nothing_now();
    h.inject(". 1:1(0) ack 1561");
    h.expect_now("P. 1561:1601(40) ack 1");
    // Nagle off.
    h.tcp.set_nodelay(h.conn(), true);
    h.send(&[4u8; 10]);
    h.expect_now("P. 1601:1611(10) ack 1");
    h.send(&[5u8; 10]);
    h.expect_now("P. 1611:1621(10) ack 1");
}

/// Nagle never holds the last piece when the FIN follows it.
#[test]
fn nagle_lets_the_tail_go_with_the_fin() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.send(&[1u8; 100]);
    h.expect_now("P. 1:101(100) ack 1");
    h.send(&[2u8; 50]);
    h.expect_nothing_now();
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("FP. 101:151(50) ack 1");
}

/// RFC 1122 §4.2.3.6: after the idle time a probe with SEG.SEQ = SND.UNA − 1 and no data;
/// an answer restarts the idle period; `count` unanswered probes reset the connection.
#[test]
fn keepalive_probes_then_reset() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.tcp.set_keepalive(
        h.conn(),
        Some(tunstack::tcp::KeepaliveConfig {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            count: 3,
        }),
    );
    h.expect_silence(Duration::from_millis(9_990));
    h.expect(". 0:0(0) ack 1");
    // The peer answers: quiet for another idle period.
    h.inject(". 1:1(0) ack 1");
    h.expect_silence(Duration::from_millis(9_990));
    h.expect(". 0:0(0) ack 1");
    let t0 = h.now;
    let sent = h.run_for(Duration::from_millis(3500));
    let shown: Vec<(u64, String)> = sent
        .iter()
        .map(|(t, s)| ((*t - t0).as_millis() as u64, format!("{}", s.flags)))
        .collect();
    // Two more probes one interval apart, then (the third unanswered) a RST.
    assert_eq!(sent.len(), 3, "{shown:?}");
    assert_eq!(
        (shown[0].0, shown[1].0, shown[2].0),
        (1000, 2000, 3000),
        "{shown:?}"
    );
    assert!(sent[0].1.flags.ack && sent[1].1.payload.is_empty() && sent[2].1.flags.rst);
    assert_eq!(h.error(), Some(TcpError::TimedOut));
    assert_eq!(h.tcp.stats().keepalive_probes, 4);
}

/// RFC 5482 / RFC 9293 §3.8.3: the user timeout ends the connection when sent data goes
/// unacknowledged that long, well before `max_retransmits` would.
#[test]
fn user_timeout_gives_up_on_unacknowledged_data() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.tcp
        .set_user_timeout(h.conn(), Some(Duration::from_secs(3)));
    h.send(b"hello");
    h.expect_now("P. 1:6(5) ack 1");
    let sent = h.run_for(Duration::from_secs(4));
    let rst = sent
        .iter()
        .find(|(_, s)| s.flags.rst)
        .expect("a RST when the user timeout expires");
    assert_eq!((rst.0 - Instant::from_secs(1000)).as_millis() as u64, 3001);
    assert_eq!(h.error(), Some(TcpError::TimedOut));
}

/// Progress restarts the user timeout.
#[test]
fn user_timeout_restarts_on_progress() {
    let mut h = H::new(real_config());
    h.passive_open();
    h.tcp
        .set_user_timeout(h.conn(), Some(Duration::from_secs(3)));
    h.send(&[1u8; 100]);
    h.expect_now("P. 1:101(100) ack 1");
    h.now += Duration::from_secs(2);
    h.send(&[1u8; 100]);
    h.inject(". 1:1(0) ack 101");
    h.expect_now("P. 101:201(100) ack 1");
    h.run_for(Duration::from_secs(2));
    assert_eq!(
        h.state(),
        State::Established,
        "2 s after progress: still alive"
    );
}

/// RFC 4987 §3.6: with the SYN queue full, a SYN is answered by a stateless SYN cookie;
/// the returning ACK creates the connection directly in ESTABLISHED with the MSS from
/// the cookie's table (1400 → 1300) — and without timestamps no window scale or SACK.
#[test]
fn syn_cookie_when_the_syn_queue_is_full() {
    let mut h = H::new(real_config());
    let l = h.tcp.listen(h.us, 1).expect("listen");
    h.listener = Some(l);
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    assert_eq!(h.tcp.connection_count(), 1);
    // The queue (backlog 1) is full: the next client gets a cookie, and no TCB.
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1400,sackOK,wscale 7>");
    let synack = h.expect_now("S. 0:0(0) ack 1 <mss 1460>");
    assert_eq!(synack.options.window_scale, None);
    assert!(!synack.options.sack_permitted);
    assert_eq!(h.tcp.connection_count(), 1);
    assert_eq!(h.tcp.stats().syn_cookies_sent, 1);
    h.inject("P. 1:11(10) ack 1 win 1000");
    let c = h.tcp.accept(l).expect("the cookie connection is accepted");
    h.conn = Some(c);
    assert_eq!(h.state(), State::Established);
    assert_eq!(h.tcp.send_mss(c), 1300);
    assert_eq!(h.read_all(), pattern_range(0, 10));
    h.expect(". 1:1(0) ack 11");
    h.send(b"hi");
    h.expect_now("P. 1:3(2) ack 11");
    assert_eq!(h.tcp.stats().syn_cookies_validated, 1);
}

/// With timestamps the cookie keeps window scaling and SACK in the TSval's low bits.
#[test]
fn syn_cookie_keeps_wscale_and_sack_with_timestamps() {
    let mut h = H::new(real_config());
    let l = h.tcp.listen(h.us, 1).expect("listen");
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460,sackOK,TS val 5000 ecr 0,wscale 7>");
    let synack = h.expect_now("S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 5000,wscale 7>");
    let (tsval, _) = synack.options.timestamps.expect("TS");
    h.inject(&format!(". 1:1(0) ack 1 win 8 <TS val 5001 ecr {tsval}>"));
    let c = h.tcp.accept(l).expect("accepted");
    h.conn = Some(c);
    assert_eq!(h.tcp.send_mss(c), 1448);
    // The peer's window is scaled by 7: 8 << 7 = 1024 bytes may go out.
    h.tcp.set_nodelay(c, true);
    h.send(&[1u8; 3000]);
    h.expect_now(". 1:1025(1024) ack 1 <TS val * ecr 5001>");
    h.expect_nothing_now();
    // SACK is on: out-of-order data is reported.
    h.inject("P. 11:21(10) ack 1 win 8 <TS val 5002 ecr *>");
    let ack = h.expect_now(". 1025:1025(0) ack 1");
    assert_eq!(ack.options.sack_blocks.len(), 1);
}

/// A forged or stale cookie is refused with a RST.
#[test]
fn bad_syn_cookie_is_refused() {
    let mut h = H::new(real_config()).absolute();
    let l = h.tcp.listen(h.us, 1).expect("listen");
    h.inject(". 100:100(0) ack 12345");
    h.expect_now("R 12345:12345(0)");
    assert!(h.tcp.accept(l).is_none());
    assert_eq!(h.tcp.stats().syn_cookies_failed, 1);
}

/// Under a SYN flood (10,000 SYNs from random ports, backlog 16) a real client that
/// completes its handshake still gets in, and no TCB is kept for the flood.
#[test]
fn syn_flood_does_not_lock_out_a_real_client() {
    let mut h = H::new(real_config());
    let l = h.tcp.listen(h.us, 16).expect("listen");
    for i in 0..10_000u32 {
        h.them = SocketAddrV4::new(
            Ipv4Addr::new(10, 9, (i >> 8) as u8, i as u8),
            1024 + (i % 60000) as u16,
        );
        let seg = h.build("S 0:0(0) win 65535 <mss 1460>");
        h.inject_seg(&seg);
        while h.tcp.poll_transmit(h.now).is_some() {}
        if i % 100 == 0 {
            h.now += ms(1);
        }
    }
    assert!(
        h.tcp.connection_count() <= 16,
        "{}",
        h.tcp.connection_count()
    );
    // The real client, in the middle of the flood.
    h.them = SocketAddrV4::new(THEM, 40000);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
    for i in 0..1000u32 {
        let them = h.them;
        h.them = SocketAddrV4::new(Ipv4Addr::new(10, 8, (i >> 8) as u8, i as u8), 2000);
        let seg = h.build("S 0:0(0) win 65535 <mss 1460>");
        h.inject_seg(&seg);
        while h.tcp.poll_transmit(h.now).is_some() {}
        h.them = them;
    }
    h.now += ms(50);
    h.inject(". 1:1(0) ack 1");
    let c = h.tcp.accept(l).expect("the real client got in");
    h.conn = Some(c);
    assert_eq!(h.state(), State::Established);
    assert!(h.tcp.stats().syn_cookies_sent >= 10_000);
}

/// RFC 1337 (TIME-WAIT assassination, fix F1): an acceptable RST does not end TIME-WAIT
/// early; the 2·MSL timer still runs to its end.
#[test]
fn rst_does_not_end_time_wait() {
    let mut h = H::new(config());
    h.passive_open();
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1:1(0) ack 1");
    h.inject("F. 1:1(0) ack 2");
    h.expect(". 2:2(0) ack 2");
    assert_eq!(h.state(), State::TimeWait);
    h.inject("R 2:2(0)");
    assert_eq!(h.state(), State::TimeWait, "the RST was ignored");
    h.run_for(Duration::from_millis(1900));
    assert_eq!(h.state(), State::TimeWait);
    h.run_for(Duration::from_millis(200));
    assert_eq!(h.state(), State::Closed, "2·MSL (MSL 1 s) later");
}

// ---------------------------------------------------------------------------------------
// Hardening against blind attacks and broken peers
// ---------------------------------------------------------------------------------------

/// RFC 5961 §5.2: an ACK below SND.UNA − MAX.SND.WND is unacceptable: the segment, its
/// data too, is dropped and answered with a challenge ACK. An old ACK within the bound is
/// only ignored and the data is taken.
#[test]
fn ack_below_the_max_window_is_challenged_and_its_data_dropped() {
    let mut h = H::new(config());
    h.passive_open();
    // SND.UNA is 1, MAX.SND.WND 65535: 70,000 below is out.
    h.inject(&format!("P. 1:101(100) ack {}", 1u32.wrapping_sub(70_000)));
    h.expect_now(". 1:1(0) ack 1");
    assert!(h.read_all().is_empty(), "the data was dropped");
    assert_eq!(
        h.tcp.stats().drops["ACK below SND.UNA - MAX.SND.WND (challenge ACK)"],
        1
    );
    h.inject(&format!("P. 1:101(100) ack {}", 1u32.wrapping_sub(1000)));
    h.expect(". 1:1(0) ack 101");
    assert_eq!(h.read_all(), pattern_range(0, 100));
}

/// RFC 7323 §4.3 with RFC 5961: TS.Recent moves only with a segment that passed the RST,
/// SYN and ACK checks. A segment at RCV.NXT with a far-future TSval whose ACK is refused
/// must not poison it, or PAWS would then drop every genuine segment.
#[test]
fn ts_recent_is_not_moved_by_a_segment_whose_ack_is_refused() {
    let mut h = H::new(real_config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,TS val 1000 ecr 0>", ms(1));
    // An ACK of data we never sent: answered and dropped.
    h.inject("P. 1:11(10) ack 5000 <TS val 2000000000 ecr 0>");
    h.expect_now(". 1:1(0) ack 1");
    // The genuine peer, with its own clock: accepted, and its TSval echoed.
    h.inject("P. 1:11(10) ack 1 <TS val 1010 ecr *>");
    h.expect(". 1:1(0) ack 11 <TS val * ecr 1010>");
    assert_eq!(h.tcp.stats().paws_rejected, 0);
    assert_eq!(h.read_all(), pattern_range(0, 10));
}

/// CVE-2019-11479: an MSS option of 1 does not make us send 1-byte segments; the send MSS
/// is at least 48 bytes (Linux `tcp_min_snd_mss`).
#[test]
fn peer_mss_below_48_is_clamped() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1>", ms(1));
    assert_eq!(h.tcp.send_mss(h.conn()), 48);
    assert_eq!(h.send(&[7u8; 200]), 200);
    h.expect_now("P. 1:49(48) ack 1");
    h.expect_now(". 49:97(48) ack 1");
}

/// RFC 6191 §2: in TIME-WAIT, with timestamps on both sides, a SYN whose TSval is newer
/// than TS.Recent starts a new incarnation even though its sequence number is below
/// RCV.NXT, and the new ISS is above the old incarnation's SND.NXT (by 65537, as Linux);
/// a SYN with an older TSval is an old duplicate, even with a higher sequence number.
#[test]
fn time_wait_reuse_by_timestamp_with_an_iss_above_the_old_space() {
    let mut h = H::new(real_config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,TS val 1000 ecr 0>", ms(1));
    let l = h.listener.unwrap();
    h.inject("P. 1:11(10) ack 1 <TS val 1100 ecr *>");
    h.expect(". 1:1(0) ack 11");
    h.tcp.shutdown(h.conn(), h.now);
    h.expect_now("F. 1:1(0) ack 11");
    h.inject("F. 11:11(0) ack 2 <TS val 1200 ecr *>");
    h.expect(". 2:2(0) ack 12");
    assert_eq!(h.state(), State::TimeWait);
    let old = h.conn();
    h.now += ms(100);
    // Higher sequence number, older TSval: an old duplicate, answered by TIME-WAIT.
    h.inject("S 100000:100000(0) win 65535 <mss 1460,TS val 900 ecr 0>");
    h.expect_now(". 2:2(0) ack 12");
    assert_eq!(h.state(), State::TimeWait);
    // Lower sequence number, newer TSval: a new incarnation. Our SND.NXT was 2.
    h.inject("S 5:5(0) win 65535 <mss 1460,TS val 1300 ecr 0>");
    h.expect_now("S. 65539:65539(0) ack 6 <TS val * ecr 1300>");
    h.iss = Some(h.iss.unwrap() + 65539);
    h.irs += 5;
    h.inject(". 1:1(0) ack 1 <TS val 1301 ecr *>");
    let new = h.tcp.accept(l).expect("the new incarnation is accepted");
    assert_ne!(new, old);
    h.conn = Some(new);
    assert_eq!(h.state(), State::Established);
}

/// A SYN that also carries FIN, sent to a listener, is dropped and counted, as Linux does
/// (RFC 9293 leaves the case open); a plain SYN afterwards is answered.
#[test]
fn syn_fin_to_a_listener_is_dropped() {
    let mut h = H::new(config());
    h.listener = Some(h.tcp.listen(h.us, 8).expect("listen"));
    h.inject("SF 0:0(0) win 65535 <mss 1460>");
    h.expect_silence(ms(100));
    assert_eq!(h.tcp.connection_count(), 0);
    assert_eq!(h.tcp.stats().drops["SYN+FIN to a listener"], 1);
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect_now("S. 0:0(0) ack 1");
}

/// RFC 5961 §7: the ACKs that answer out-of-window segments without data — SYN-only and
/// FIN-only ones too — are rate-limited.
#[test]
fn acks_for_out_of_window_syn_and_fin_are_rate_limited() {
    let mut h = H::new(config());
    h.passive_open();
    h.inject("F. 100000:100000(0) ack 1");
    h.expect_now(". 1:1(0) ack 1");
    h.inject("F. 100000:100000(0) ack 1");
    h.expect_nothing_now();
    h.inject("S 100000:100000(0) win 65535");
    h.expect_nothing_now();
    assert_eq!(h.tcp.stats().acks_rate_limited, 2);
    h.now += ms(600);
    h.inject("S 100000:100000(0) win 65535");
    h.expect_now(". 1:1(0) ack 1");
    // Out-of-window data is still answered every time.
    h.inject("P. 100000:100010(10) ack 1");
    h.expect_now(". 1:1(0) ack 1");
    assert_eq!(h.state(), State::Established);
}

/// After a SYN flood that filled the SYN queue (backlog 16) with handshakes that never
/// complete, the queue is pruned as Linux does (over half full of entries whose SYN-ACK
/// already timed out: at most two SYN-ACK retransmissions each, until half the queue is
/// free), so within seconds of the flood's end a new client gets a real SYN-ACK — window
/// scaling and SACK — instead of a SYN cookie without them.
#[test]
fn syn_queue_drains_within_seconds_after_a_flood() {
    let mut h = H::new(real_config());
    h.listener = Some(h.tcp.listen(h.us, 16).expect("listen"));
    let real = h.them;
    for i in 0..200u32 {
        h.them = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, i as u8), 1024 + i as u16);
        let seg = h.build("S 0:0(0) win 65535 <mss 1460,sackOK,wscale 7>");
        h.inject_seg(&seg);
        while h.tcp.poll_transmit(h.now).is_some() {}
    }
    assert_eq!(h.tcp.connection_count(), 16);
    assert!(h.tcp.stats().syn_cookies_sent > 0);
    // The flood stops. 8 s later (SYN-ACKs at 0, 1 and 3 s; expiry at 7 s) the old
    // entries are pruned down to half the queue, which stays free for new clients; with
    // the full six retries the queue would stay full for 127 s.
    for _ in 0..80 {
        h.now += ms(100);
        h.tcp.handle_timeout(h.now);
        while h.tcp.poll_transmit(h.now).is_some() {}
    }
    assert_eq!(h.tcp.connection_count(), 8);
    assert_eq!(h.tcp.stats().syn_queue_pruned, 8);
    h.them = real;
    h.inject("S 0:0(0) win 65535 <mss 1460,sackOK,wscale 7>");
    h.expect_now("S. 0:0(0) ack 1 <mss 1460,sackOK,wscale 7>");
}

// ---------------------------------------------------------------------------------------
// RTT, RTO and the send window
// ---------------------------------------------------------------------------------------

/// An ACK of new data ends the RTO backoff, even when it acknowledges a retransmission
/// (which gives no RTT sample, by Karn's rule): we time one segment per flight and take no
/// samples from timestamps, so a backoff kept until the next sample compounds over
/// successive losses on a lossy path (see `Connection::on_new_ack`).
#[test]
fn rto_backoff_ends_with_an_ack_of_new_data() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(b"0123456789"), 10);
    h.expect_now("P. 11:21(10) ack 1");
    let t0 = h.now;
    h.expect("P. 11:21(10) ack 1");
    assert_eq!(h.now - t0, ms(210), "first RTO: SRTT 10 + 200 ms");
    h.now += ms(10);
    h.inject(". 1:1(0) ack 21");
    assert_eq!(h.send(b"abcdefghij"), 10);
    h.expect_now("P. 21:31(10) ack 1");
    let t1 = h.now;
    let rxt = h.next_within(Duration::from_secs(1)).expect("RTO");
    h.check(&rxt, "P. 21:31(10) ack 1");
    assert_eq!(
        h.now - t1,
        ms(210),
        "the backoff ended with the ACK of new data"
    );
}

/// RFC 6298 §5.7: after a retransmitted SYN (no RTT sample, by Karn's rule) data
/// transmission starts with an RTO of 3 s.
#[test]
fn rto_is_three_seconds_after_a_retransmitted_syn() {
    let mut h = H::new(config());
    h.us = SocketAddrV4::new(US, 50000);
    h.them = SocketAddrV4::new(THEM, 80);
    h.conn = Some(h.tcp.connect(h.us, h.them, h.now).expect("connect"));
    h.expect_now("S 0:0(0)");
    // The SYN is lost; it is sent again after the 1 s initial RTO.
    h.expect_silence(ms(999));
    h.expect("S 0:0(0)");
    h.now += ms(50);
    h.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>");
    h.expect(". 1:1(0) ack 1");
    assert_eq!(h.send(b"0123456789"), 10);
    h.expect_now("P. 1:11(10) ack 1");
    h.expect_silence(ms(2999));
    h.expect("P. 1:11(10) ack 1");
}

/// Linux's `tcp_may_update_window`: any ACK that advances SND.UNA updates the send
/// window. Here the peer's pure ACK carried a sequence number ahead of its data (its
/// SND.MAX after a go-back-N), so SND.WL1 is ahead of the data segment that then
/// acknowledges ours and opens the window; by the RFC's SND.WL1 test alone the window
/// would stay at 2920 bytes.
#[test]
fn window_update_from_any_ack_that_advances_snd_una() {
    let mut h = H::new(config());
    h.peer_win = 2920;
    h.passive_open_with("S 0:0(0) win 2920 <mss 1460>", ms(1));
    assert_eq!(h.send(&[5u8; 20_000]), 20_000);
    h.expect_now(". 1:1461(1460) ack 1");
    h.expect_now(". 1461:2921(1460) ack 1");
    h.expect_nothing_now();
    // A pure ACK from the peer with its SND.MAX (1001): acceptable, moves SND.WL1. (Its
    // window differs, so it is no duplicate ACK, RFC 5681 §2.)
    h.inject(". 1001:1001(0) ack 1 win 2900");
    // The peer resends its data from 1, acknowledging all of ours and opening to 8760.
    h.inject("P. 1:1001(1000) ack 2921 win 8760");
    let sent: usize = h.run_for(ms(5)).iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(sent, 8760, "the new window is used");
}

/// RFC 1191: a lower path MTU is no congestion signal; the congestion window keeps what
/// it learned (the same number of now smaller segments, as Linux) instead of going back
/// to the initial window.
#[test]
fn path_mtu_drop_does_not_reset_cwnd() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(1));
    assert_eq!(h.send(&[5u8; 100_000]), 100_000);
    let mut acked = 1u32;
    for _ in 0..3 {
        acked = ack_the_flight(&mut h, acked);
    }
    let before = h.tcp.cwnd(h.conn());
    assert!(before > 14600, "slow start grew cwnd: {before}");
    h.run_for(ms(1));
    // "Fragmentation needed" quoting our segment at SND.UNA, next-hop MTU 1000.
    let mut quoted = vec![0u8; 28];
    quoted[0] = 0x45;
    quoted[9] = 6;
    quoted[12..16].copy_from_slice(&US.octets());
    quoted[16..20].copy_from_slice(&THEM.octets());
    quoted[20..22].copy_from_slice(&h.us.port().to_be_bytes());
    quoted[22..24].copy_from_slice(&h.them.port().to_be_bytes());
    let una = h.iss.unwrap() + acked;
    quoted[24..28].copy_from_slice(&una.0.to_be_bytes());
    h.tcp.on_icmp_error(
        THEM,
        &quoted,
        tunstack::ip::icmp::ErrorKind::FragmentationNeeded { next_hop_mtu: 1000 },
        h.now,
    );
    assert_eq!(h.tcp.send_mss(h.conn()), 960);
    assert_eq!(h.tcp.cwnd(h.conn()), before / 1460 * 960);
}

/// RFC 5681 §4.1: after more than an RTO without sending, new data starts again from the
/// initial window (10 segments), not from the window the connection had grown to.
#[test]
fn cwnd_restarts_from_the_initial_window_after_idle() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460>", ms(1));
    assert_eq!(h.send(&[5u8; 60_000]), 60_000);
    let mut acked = 1u32;
    while acked < 60_001 {
        acked = ack_the_flight(&mut h, acked);
    }
    assert!(h.tcp.cwnd(h.conn()) > 14600, "cwnd grew");
    // One second idle (the RTO is about 200 ms), then a large write.
    h.expect_silence(Duration::from_secs(1));
    assert_eq!(h.send(&[6u8; 60_000]), 60_000);
    let first: usize = h.run_for(ms(1)).iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(
        first, 14600,
        "the first flight after idle is the initial window"
    );
}

/// RFC 6675 §5 / RFC 6582 §3.2 (RecoveryPoint): after a retransmission timeout, duplicate
/// ACKs whose SACK blocks show the flight the timeout already dealt with as lost do not
/// start a fast recovery (a second window reduction) before SND.UNA passes the point the
/// timeout recorded.
#[test]
fn no_fast_recovery_right_after_an_rto() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,sackOK>", ms(1));
    assert_eq!(h.send(&[5u8; 14600]), 14600);
    let flight: usize = h.run_for(ms(1)).iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(flight, 14600);
    // Nothing comes back: the RTO resends the first segment.
    h.expect("P. 1:1461(1460) ack 1");
    h.expect_nothing_now();
    assert_eq!(h.tcp.stats().rto_expirations, 1);
    // Now ACKs of the first segment arrive, SACKing most of the rest: 1461..4381 missing.
    let irs = h.irs;
    let iss = h.iss.unwrap();
    for _ in 0..4 {
        let mut ack = h.build(". 1:1(0) ack 1461");
        ack.options.sack_blocks = vec![(iss + 4381, iss + 14601)];
        assert_eq!(ack.seq, irs + 1);
        h.inject_seg(&ack);
    }
    assert_eq!(
        h.tcp.stats().fast_retransmits,
        0,
        "no fast recovery below the RTO's recovery point"
    );
}

/// Let out what we send within 1 ms and acknowledge all of it at once; `acked` is the
/// relative ACK so far, the new one is returned.
fn ack_the_flight(h: &mut H, acked: u32) -> u32 {
    let flight: u32 = h
        .run_for(ms(1))
        .iter()
        .map(|(_, s)| s.payload.len() as u32)
        .sum();
    let acked = acked + flight;
    h.inject(&format!(". 1:1(0) ack {acked}"));
    acked
}

/// Ten segments of 1000 bytes from relative sequence number 11 (after a 10-byte exchange
/// that gives a 10 ms RTT sample), with SACK on.
fn ten_segments_with_sack(h: &mut H) {
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000,sackOK>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[4u8; 10000]), 10000);
    let flight: usize = h.run_for(ms(1)).iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(flight, 10000, "the initial window");
}

/// A duplicate ACK "ack 11" from them carrying the SACK blocks `blocks` (relative
/// sequence numbers of our data).
fn dup_ack_with_sack(h: &mut H, blocks: &[(u32, u32)]) {
    let iss = h.iss.expect("our ISN");
    let mut dup = h.build(". 1:1(0) ack 11");
    dup.options.sack_blocks = blocks.iter().map(|&(l, r)| (iss + l, iss + r)).collect();
    h.inject_seg(&dup);
}

/// The (relative sequence number, length) of every data segment in `sent`.
fn data_ranges(h: &H, sent: &[(Instant, Segment)]) -> Vec<(u32, usize)> {
    let iss = h.iss.expect("our ISN");
    sent.iter()
        .filter(|(_, s)| !s.payload.is_empty())
        .map(|(_, s)| (s.seq.0.wrapping_sub(iss.0), s.payload.len()))
        .collect()
}

/// RFC 6675 §5 (C): in SACK recovery the sender sends while cwnd − pipe leaves room,
/// not one segment per duplicate ACK. One duplicate ACK that SACKs four ranges shows four
/// holes lost (IsLost: more than 2·SMSS SACKed above each): all four are resent at once,
/// the SACKed data never.
#[test]
fn sack_recovery_sends_by_pipe() {
    let mut h = H::new(config());
    ten_segments_with_sack(&mut h);
    // Received: 1011:2011, 3011:4011, 5011:6011, 7011:10011. Lost: 11, 2011, 4011, 6011.
    dup_ack_with_sack(
        &mut h,
        &[(7011, 10011), (5011, 6011), (3011, 4011), (1011, 2011)],
    );
    let sent = h.run_for(ms(1));
    let rel = data_ranges(&h, &sent);
    assert_eq!(
        rel,
        vec![(11, 1000), (2011, 1000), (4011, 1000), (6011, 1000)],
        "every lost hole at once, nothing SACKed"
    );
    assert_eq!(h.tcp.stats().fast_retransmits, 1);
}

/// RFC 6675 §5.1 lets a sender discard the scoreboard at a timeout; like Linux's
/// `tcp_enter_loss` we keep it: only the data not SACKed is marked lost and resent as
/// the restarted slow start allows; SACKed data is never sent again, even when later
/// ACKs no longer carry its block.
#[test]
fn rto_keeps_the_sack_scoreboard() {
    let mut h = H::new(config());
    ten_segments_with_sack(&mut h);
    // 8011:10011 arrived; one duplicate ACK is not enough for fast retransmit. It comes
    // 208 ms after the flight, so the RTO (210 ms) fires before RACK's reordering timer
    // (2.5 ms) would.
    h.now += ms(208);
    dup_ack_with_sack(&mut h, &[(8011, 10011)]);
    assert_eq!(h.tcp.stats().fast_retransmits, 0);
    // The RTO resends the first segment; from there each round is acknowledged in full.
    h.expect(". 11:1011(1000) ack 1");
    assert_eq!(h.tcp.stats().rto_expirations, 1);
    let mut acked = 1011;
    let mut resent = vec![(11, 1000)];
    while acked < 8011 {
        h.now += ms(10);
        h.inject(&format!(". 1:1(0) ack {acked}"));
        let sent = h.run_for(ms(1));
        let rel = data_ranges(&h, &sent);
        assert!(!rel.is_empty(), "slow start goes on after ack {acked}");
        acked = rel
            .iter()
            .map(|&(s, l)| s + l as u32)
            .max()
            .unwrap_or(acked);
        resent.extend(rel);
    }
    assert_eq!(acked, 8011, "resent up to the SACKed data: {resent:?}");
    h.now += ms(10);
    h.inject(". 1:1(0) ack 8011");
    let sent = h.run_for(ms(100));
    let rel = data_ranges(&h, &sent);
    assert!(
        rel.is_empty(),
        "8011:10011 was SACKed before the timeout: not resent, got {rel:?}"
    );
    h.inject(". 1:1(0) ack 10011");
    h.expect_silence(Duration::from_secs(2));
}

/// The TSval we put on `seg`.
fn our_tsval(seg: &Segment) -> u32 {
    seg.options.timestamps.expect("timestamps in effect").0
}

/// RFC 7323 §4.1 RTTM with Appendix G's rules: a segment that was retransmitted cannot
/// be timed on our clock (Karn), but the timestamp its ACK echoes says which
/// transmission arrived. The echo of the retransmission itself gives a sample; an echo
/// older than the retransmission (the original arrived late) would count the recovery
/// time and gives none; nor does an ACK that does not advance SND.UNA.
#[test]
fn rtt_samples_from_timestamps_follow_rfc7323_appendix_g() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1460,TS val 1000 ecr 0>", ms(100));
    h.exchange(10, ms(100), 0);
    let srtt = h.tcp.srtt(h.conn()).expect("sampled");
    assert_eq!(srtt, ms(100));
    assert_eq!(h.send(b"abc"), 3);
    let first = our_tsval(&h.expect_now("P. 11:14(3) ack 1"));
    let rexmit = h.next_within(Duration::from_secs(5)).expect("RTO");
    h.check(&rexmit, "P. 11:14(3) ack 1");
    let again = our_tsval(&rexmit);
    // An ACK that does not move SND.UNA (a window update) echoing the retransmission.
    h.now += ms(20);
    h.inject(&format!(
        ". 1:1(0) ack 11 win 60000 <TS val 2000 ecr {again}>"
    ));
    assert_eq!(
        h.tcp.srtt(h.conn()),
        Some(srtt),
        "no sample without new data acked"
    );
    // The ACK of the data echoes the first transmission: older than the retransmission.
    h.inject(&format!(". 1:1(0) ack 14 <TS val 2001 ecr {first}>"));
    assert_eq!(
        h.tcp.srtt(h.conn()),
        Some(srtt),
        "no sample from a stale echo"
    );
    // The next segment is retransmitted too, and its ACK echoes the retransmission,
    // 20 ms after it left: a sample of 20 ms.
    assert_eq!(h.send(b"def"), 3);
    h.expect_now("P. 14:17(3) ack 1");
    let rexmit = h.next_within(Duration::from_secs(5)).expect("RTO");
    h.check(&rexmit, "P. 14:17(3) ack 1");
    let again = our_tsval(&rexmit);
    h.now += ms(20);
    h.inject(&format!(". 1:1(0) ack 17 <TS val 2002 ecr {again}>"));
    // RFC 6298 (2.3): SRTT = 7/8 · 100 ms + 1/8 · 20 ms.
    assert_eq!(h.tcp.srtt(h.conn()), Some(ms(90)));
}

// ---------------------------------------------------------------------------------------
// Spurious retransmissions: D-SACK (RFC 3708), Eifel (RFC 3522), F-RTO (RFC 5682), undo
// (RFC 4015)
// ---------------------------------------------------------------------------------------

/// The (relative sequence number, length) of the data segments we send within 1 ms.
fn sent_ranges(h: &mut H) -> Vec<(u32, usize)> {
    let sent = h.run_for(ms(1));
    data_ranges(h, &sent)
}

/// A duplicate ACK "ack `ack`" from them with SACK blocks `blocks` (relative sequence
/// numbers of our data), the first one a D-SACK block when it lies below `ack`.
fn ack_with_sack(h: &mut H, ack: u32, blocks: &[(u32, u32)]) {
    let iss = h.iss.expect("our ISN");
    let mut seg = h.build(&format!(". 1:1(0) ack {ack}"));
    seg.options.sack_blocks = blocks.iter().map(|&(l, r)| (iss + l, iss + r)).collect();
    h.inject_seg(&seg);
}

/// RFC 2883 / RFC 3708: the segment at SND.UNA was only delayed. Three duplicate ACKs
/// start a fast retransmit and halve the window; the original then arrives (the ACK
/// covers everything), and the retransmission arrives as a duplicate, which the peer
/// reports with a D-SACK block. Every retransmission of the episode was spurious: the
/// window and threshold go back to their values before it (RFC 4015, Linux's undo). A
/// D-SACK for data that was never retransmitted (the network duplicated it) proves
/// nothing.
#[test]
fn dsack_of_every_retransmission_undoes_the_reduction() {
    let mut h = H::new(config());
    ten_segments_with_sack(&mut h);
    let c = h.conn();
    let before = h.tcp.cwnd(c);
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(1011, 2011)]);
    dup_ack_with_sack(&mut h, &[(1011, 3011)]);
    dup_ack_with_sack(&mut h, &[(1011, 4011)]);
    h.expect_now(". 11:1011(1000) ack 1");
    assert_eq!(h.tcp.stats().fast_retransmits, 1);
    assert!(h.tcp.cwnd(c) < before, "fast recovery reduced the window");
    // The delayed original arrives: everything is acknowledged, the window stays reduced.
    h.inject(". 1:1(0) ack 10011");
    let reduced = h.tcp.cwnd(c);
    assert!(reduced < before);
    // A duplicate of a segment that was never retransmitted: no undo.
    ack_with_sack(&mut h, 10011, &[(2011, 3011)]);
    assert_eq!(h.tcp.stats().dsacks_received, 1);
    assert_eq!(h.tcp.stats().undos, 0);
    assert_eq!(h.tcp.cwnd(c), reduced);
    // The D-SACK of the retransmission: it was spurious, and it was the only one.
    ack_with_sack(&mut h, 10011, &[(11, 1011)]);
    assert_eq!(h.tcp.stats().dsacks_received, 2);
    assert_eq!(h.tcp.stats().undos, 1);
    assert_eq!(h.tcp.cwnd(c), before, "cwnd restored");
    // The restored window is used: a full window of new data goes at once.
    assert_eq!(h.send(&[6u8; 20_000]), 20_000);
    let sent: usize = h.run_for(ms(1)).iter().map(|(_, s)| s.payload.len()).sum();
    assert_eq!(sent, 10_000);
}

/// RFC 3522 Eifel detection with timestamps: the first ACK after the fast retransmit
/// echoes the TSval of the original transmission, older than the retransmission's, so
/// the original arrived and the reduction is undone at once (no D-SACK needed).
#[test]
fn eifel_timestamps_undo_a_spurious_fast_retransmit() {
    let mut h = H::new(config());
    h.passive_open_with(
        "S 0:0(0) win 65535 <mss 1012,sackOK,TS val 100 ecr 0>",
        ms(10),
    );
    h.exchange(10, ms(10), 0);
    let c = h.conn();
    let before = h.tcp.cwnd(c);
    assert_eq!(h.send(&[4u8; 10000]), 10000);
    let sent = h.run_for(ms(1));
    assert_eq!(data_ranges(&h, &sent).len(), 10);
    let first = our_tsval(&sent[0].1);
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(1011, 2011)]);
    dup_ack_with_sack(&mut h, &[(1011, 3011)]);
    dup_ack_with_sack(&mut h, &[(1011, 4011)]);
    let rexmit = h.expect_now(". 11:1011(1000) ack 1");
    assert!(our_tsval(&rexmit) > first);
    assert!(h.tcp.cwnd(c) < before);
    h.now += ms(5);
    h.inject(&format!(". 1:1(0) ack 10011 <TS val 200 ecr {first}>"));
    assert_eq!(h.tcp.stats().undos, 1);
    // Restored, then the ACK counted in slow start (ssthresh is back to infinity).
    assert_eq!(h.tcp.cwnd(c), before + 2000);
}

/// The echo of the retransmission itself means the original was lost: no undo.
#[test]
fn eifel_keeps_the_reduction_when_the_retransmission_was_needed() {
    let mut h = H::new(config());
    h.passive_open_with(
        "S 0:0(0) win 65535 <mss 1012,sackOK,TS val 100 ecr 0>",
        ms(10),
    );
    h.exchange(10, ms(10), 0);
    let c = h.conn();
    let before = h.tcp.cwnd(c);
    assert_eq!(h.send(&[4u8; 10000]), 10000);
    h.run_for(ms(1));
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(1011, 2011)]);
    dup_ack_with_sack(&mut h, &[(1011, 3011)]);
    dup_ack_with_sack(&mut h, &[(1011, 4011)]);
    let again = our_tsval(&h.expect_now(". 11:1011(1000) ack 1"));
    h.now += ms(10);
    h.inject(&format!(". 1:1(0) ack 10011 <TS val 200 ecr {again}>"));
    assert_eq!(h.tcp.stats().undos, 0);
    assert!(h.tcp.cwnd(c) < before);
}

/// Ten segments of 1000 bytes in flight from relative sequence number 11, twenty more
/// queued, SACK on (and timestamps with `ts`); returns the congestion window then and
/// the TSval of the first segment (0 without timestamps).
fn flight_with_more_queued(h: &mut H, ts: bool) -> (u32, u32) {
    let syn = if ts {
        "S 0:0(0) win 65535 <mss 1012,sackOK,TS val 100 ecr 0>"
    } else {
        "S 0:0(0) win 65535 <mss 1000,sackOK>"
    };
    h.passive_open_with(syn, ms(10));
    h.exchange(10, ms(10), 0);
    let cwnd = h.tcp.cwnd(h.conn());
    assert_eq!(h.send(&[4u8; 30_000]), 30_000);
    let sent = h.run_for(ms(1));
    assert_eq!(
        data_ranges(h, &sent),
        (0..10u32)
            .map(|i| (11 + i * 1000, 1000))
            .collect::<Vec<_>>()
    );
    let first = if ts { our_tsval(&sent[0].1) } else { 0 };
    (cwnd, first)
}

/// RFC 5682 §3.2 (F-RTO with SACK): a delay spike fires the RTO, which resends only the
/// first segment. The ACK of that segment (step 2) lets two *new* segments out instead
/// of resending the rest; the next ACK acknowledges originals that were never resent
/// (step 3 (b)): the timeout was spurious, normal transmission goes on with the window
/// from before it (RFC 4015), and nothing sent before the timeout is sent again.
#[test]
fn frto_spurious_timeout_goes_on_with_new_data() {
    let mut h = H::new(config());
    let (before, _) = flight_with_more_queued(&mut h, false);
    let c = h.conn();
    h.expect(". 11:1011(1000) ack 1");
    assert_eq!(h.tcp.stats().rto_expirations, 1);
    h.expect_nothing_now();
    assert_eq!(h.tcp.cwnd(c), 1000);
    // Step 2: the delayed ACK of the first two originals.
    h.inject(". 1:1(0) ack 2011");
    let rel = sent_ranges(&mut h);
    assert_eq!(rel, vec![(10011, 1000), (11011, 1000)], "two new segments");
    // Step 3: more originals acknowledged.
    h.inject(". 1:1(0) ack 4011");
    assert_eq!(h.tcp.stats().spurious_rtos, 1);
    assert_eq!(h.tcp.stats().undos, 1);
    assert!(h.tcp.cwnd(c) >= before, "cwnd restored");
    let rel = sent_ranges(&mut h);
    assert_eq!(
        rel.first(),
        Some(&(12011, 1000)),
        "new data goes on: {rel:?}"
    );
    for ack in [6011, 8011, 10011, 12011] {
        h.inject(&format!(". 1:1(0) ack {ack}"));
        let rel = sent_ranges(&mut h);
        assert!(rel.iter().all(|&(s, _)| s >= 12011), "resent {rel:?}");
    }
    assert_eq!(h.tcp.stats().retransmits, 1, "only the timeout's segment");
}

/// RFC 5682 §3.2 step 3 (a): after the two new segments, a duplicate ACK that SACKs
/// only them (nothing below RecoveryPoint arrived) shows the timeout genuine: cwnd at
/// most 3·MSS, and the conventional recovery resends the holes.
#[test]
fn frto_genuine_timeout_falls_back_to_conventional_recovery() {
    let mut h = H::new(config());
    flight_with_more_queued(&mut h, false);
    let c = h.conn();
    h.expect(". 11:1011(1000) ack 1");
    // Step 2: only the retransmission arrived.
    h.inject(". 1:1(0) ack 1011");
    let rel = sent_ranges(&mut h);
    assert_eq!(rel, vec![(10011, 1000), (11011, 1000)]);
    // Step 3: the first new segment arrived, nothing of the old flight.
    ack_with_sack(&mut h, 1011, &[(10011, 11011)]);
    assert_eq!(h.tcp.stats().spurious_rtos, 0);
    // Slow start had grown cwnd to 2 segments; 11011:12011 is still in flight.
    assert_eq!(h.tcp.cwnd(c), 2000);
    let rel = sent_ranges(&mut h);
    assert_eq!(
        rel,
        vec![(1011, 1000)],
        "the first hole, as cwnd − pipe allows"
    );
    // Each ACK from there resends the next holes.
    ack_with_sack(&mut h, 2011, &[(10011, 11011)]);
    let rel = sent_ranges(&mut h);
    assert_eq!(rel.first(), Some(&(2011, 1000)), "{rel:?}");
    assert_eq!(h.tcp.stats().undos, 0);
}

/// RFC 3522 on a timeout: the ACK of the retransmission echoes the first transmission's
/// TSval — it was the original that arrived, late. The reduction (and the backoff) are
/// undone at once and the rest of the flight is not resent (RFC 4015).
#[test]
fn eifel_timestamps_undo_a_spurious_timeout() {
    let mut h = H::new(config());
    let (before, first) = flight_with_more_queued(&mut h, true);
    let c = h.conn();
    h.expect(". 11:1011(1000) ack 1");
    h.now += ms(1);
    h.inject(&format!(". 1:1(0) ack 2011 <TS val 200 ecr {first}>"));
    assert_eq!(h.tcp.stats().undos, 1);
    assert!(h.tcp.cwnd(c) >= before);
    let rel = sent_ranges(&mut h);
    assert!(
        !rel.is_empty() && rel.iter().all(|&(s, _)| s >= 10011),
        "{rel:?}"
    );
    assert_eq!(h.tcp.stats().retransmits, 1);
}

/// RFC 5682 §2 (F-RTO without SACK): the same decision from cumulative ACKs alone — a
/// new ACK after the two new segments shows the timeout spurious, and instead of going
/// back to SND.UNA (go-back-N) transmission goes on after SND.MAX; a duplicate ACK
/// instead would have sent it back.
#[test]
fn frto_without_sack_spurious_timeout_skips_go_back_n() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[4u8; 30_000]), 30_000);
    assert_eq!(sent_ranges(&mut h).len(), 10);
    h.expect(". 11:1011(1000) ack 1");
    h.expect_nothing_now();
    h.inject(". 1:1(0) ack 2011");
    assert_eq!(sent_ranges(&mut h), vec![(10011, 1000), (11011, 1000)]);
    h.inject(". 1:1(0) ack 3011");
    assert_eq!(h.tcp.stats().spurious_rtos, 1);
    let rel = sent_ranges(&mut h);
    assert_eq!(rel.first(), Some(&(12011, 1000)), "{rel:?}");
    assert_eq!(h.tcp.stats().retransmits, 1);
}

/// RFC 5682 §2 step 3 (a) without SACK: a duplicate ACK after the two new segments
/// means the timeout was genuine: go-back-N from SND.UNA.
#[test]
fn frto_without_sack_genuine_timeout_goes_back_n() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[4u8; 30_000]), 30_000);
    assert_eq!(sent_ranges(&mut h).len(), 10);
    h.expect(". 11:1011(1000) ack 1");
    h.inject(". 1:1(0) ack 1011");
    assert_eq!(sent_ranges(&mut h), vec![(10011, 1000), (11011, 1000)]);
    h.inject(". 1:1(0) ack 1011");
    assert_eq!(h.tcp.stats().spurious_rtos, 0);
    let rel = sent_ranges(&mut h);
    assert_eq!(rel.first(), Some(&(1011, 1000)), "go-back-N: {rel:?}");
}

// ---------------------------------------------------------------------------------------
// RACK time-based loss detection outside recovery (RFC 8985 §6.2)
// ---------------------------------------------------------------------------------------

/// RFC 8985 §6.2 steps 4 and 5: a single duplicate ACK SACKs a segment sent together
/// with SND.UNA (same transmission time). Three duplicate ACKs will not come (the rest
/// of the flight is lost too) and the SACKed bytes are below RFC 6675's threshold, but
/// RACK's reordering timer marks SND.UNA lost once min_RTT/4 (10 ms / 4) has passed
/// without it, long before the RTO.
#[test]
fn rack_reordering_timer_marks_una_lost_on_one_duplicate_ack() {
    let mut h = H::new(config());
    ten_segments_with_sack(&mut h);
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(1011, 2011)]);
    h.expect_nothing_now();
    let at = h.now;
    let rexmit = h.next_within(ms(5)).expect("RACK marks SND.UNA lost");
    h.check(&rexmit, ". 11:1011(1000) ack 1");
    assert_eq!(
        h.now.saturating_duration_since(at),
        Duration::from_micros(2500)
    );
    assert_eq!(h.tcp.stats().fast_retransmits, 1);
    assert_eq!(h.tcp.stats().rto_expirations, 0);
}

/// RFC 8985 §6.2 step 5: SND.UNA left 20 ms (more than the reordering window) before a
/// segment that has been SACKed: it is lost on that one duplicate ACK.
#[test]
fn rack_marks_una_lost_when_sent_a_window_before_sacked_data() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000,sackOK>", ms(10));
    h.exchange(10, ms(10), 0);
    assert_eq!(h.send(&[4u8; 1000]), 1000);
    h.expect_now(". 11:1011(1000) ack 1");
    h.now += ms(20);
    assert_eq!(h.send(&[4u8; 3000]), 3000);
    assert_eq!(sent_ranges(&mut h).len(), 3);
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(2011, 3011)]);
    h.expect_now(". 11:1011(1000) ack 1");
    assert_eq!(h.tcp.stats().fast_retransmits, 1);
}

/// RFC 8985 §6.2 step 4: a D-SACK (a spurious retransmission seen by the peer) widens
/// the reordering window to 2 · min_RTT/4 for the rounds after it.
#[test]
fn rack_reordering_window_grows_with_dsack() {
    let mut h = H::new(config());
    ten_segments_with_sack(&mut h);
    // The peer reports the first 10 bytes (acknowledged long ago) received twice.
    ack_with_sack(&mut h, 11, &[(1, 11)]);
    assert_eq!(h.tcp.stats().dsacks_received, 1);
    h.now += ms(10);
    dup_ack_with_sack(&mut h, &[(1011, 2011)]);
    h.expect_silence(ms(4));
    let rexmit = h.next_within(ms(2)).expect("after 5 ms");
    h.check(&rexmit, ". 11:1011(1000) ack 1");
}

// ---------------------------------------------------------------------------------------
// Out-of-order memory across connections
// ---------------------------------------------------------------------------------------

/// Out-of-order data is bounded across all connections of the endpoint, not only per
/// connection: once the budget is held, a second connection's out-of-order segment is
/// dropped (counted, and answered with an ACK of what it has), while in-order data is
/// always taken; when the first connection's gap fills, the budget is free again.
#[test]
fn out_of_order_memory_is_bounded_across_connections() {
    let mut h = H::new(config());
    h.tcp.set_out_of_order_budget(3000);
    h.passive_open();
    let (a, a_iss, a_them) = (h.conn(), h.iss, h.them);
    h.inject("P. 1001:3001(2000) ack 1");
    h.expect(". 1:1(0) ack 1");
    assert_eq!(h.tcp.out_of_order_bytes(), 2000);
    // A second connection, from another port.
    h.them = SocketAddrV4::new(THEM, 40001);
    h.iss = None;
    h.inject("S 0:0(0) win 65535 <mss 1460>");
    h.expect("S. 0:0(0) ack 1");
    h.inject(". 1:1(0) ack 1");
    let b = h
        .tcp
        .accept(h.listener.unwrap())
        .expect("second connection");
    let (b_iss, b_them) = (h.iss, h.them);
    h.conn = Some(b);
    h.inject("P. 1001:3001(2000) ack 1");
    h.expect(". 1:1(0) ack 1");
    let budget_drops = |h: &H| {
        h.tcp
            .stats()
            .drops
            .get("out-of-order memory budget")
            .copied()
    };
    assert_eq!(budget_drops(&h), Some(1));
    assert_eq!(h.tcp.out_of_order_bytes(), 2000);
    // In-order data is taken whatever the budget.
    h.inject("P. 1:1001(1000) ack 1");
    assert_eq!(h.read_all(), pattern_range(0, 1000));
    // The first connection's gap fills: its held data is delivered, the budget frees.
    (h.conn, h.iss, h.them) = (Some(a), a_iss, a_them);
    h.inject("P. 1:1001(1000) ack 1");
    assert_eq!(h.read_all(), pattern_range(0, 3000));
    assert_eq!(h.tcp.out_of_order_bytes(), 0);
    (h.conn, h.iss, h.them) = (Some(b), b_iss, b_them);
    h.inject("P. 2001:3001(1000) ack 1");
    assert_eq!(h.tcp.out_of_order_bytes(), 1000);
    assert_eq!(budget_drops(&h), Some(1));
    // A connection freed with data still held gives its share back.
    h.tcp.abort(b, h.now);
    h.tcp.release(b, h.now);
    assert_eq!(h.tcp.out_of_order_bytes(), 0);
}

// ---------------------------------------------------------------------------------------
// Congestion window validation (RFC 7661)
// ---------------------------------------------------------------------------------------

/// RFC 7661 §4.3: an application that never has more than two segments in flight
/// (well under half of the 10-segment window) is rate-limited; the ACKs of what it sends
/// do not grow cwnd to a size the path never carried. Once it sends enough to use the
/// window, slow start grows it again.
#[test]
fn cwnd_does_not_grow_while_application_limited() {
    let mut h = H::new(config());
    h.passive_open_with("S 0:0(0) win 65535 <mss 1000>", ms(10));
    let c = h.conn();
    let iw = h.tcp.cwnd(c);
    assert_eq!(iw, 10_000);
    let mut acked = 1u32;
    for _ in 0..20 {
        assert_eq!(h.send(&[7u8; 2000]), 2000);
        h.now += ms(10);
        acked = ack_the_flight(&mut h, acked);
    }
    assert_eq!(acked, 40_001);
    assert_eq!(h.tcp.cwnd(c), iw, "not grown by rate-limited ACKs");
    // A bulk write uses the window: the next ACKs grow it.
    assert_eq!(h.send(&[8u8; 30_000]), 30_000);
    for _ in 0..2 {
        h.now += ms(10);
        acked = ack_the_flight(&mut h, acked);
    }
    assert!(h.tcp.cwnd(c) > iw, "cwnd {}", h.tcp.cwnd(c));
}
