//! The executor: runs a parsed script against one [`Tcp`] endpoint on a virtual clock.
//!
//! "We" are the stack under test at 192.168.0.1; the script plays the peer at 192.0.2.1.
//! Inbound lines are injected at their time; time then moves from timer deadline to timer
//! deadline, and every segment the stack sends is queued with the instant it left. An
//! outbound line takes the oldest queued segment and compares it field by field, and its
//! time within the tolerance. System calls act on the endpoint at their time; a call that
//! would block waits, in virtual time, while later lines run (as packetdrill's syscall
//! thread does).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::parse::{EventKind, Expr, IcmpSpec, PacketSpec, Script, Syscall, TcpOpt, TimeKind};
use super::Options;
use crate::ip::icmp::ErrorKind as IcmpKind;
use crate::tcp::{
    Config, CongestionAlgorithm, ConnId, Flags, KeepaliveConfig, ListenerId, Segment, SeqNum,
    State, Tcp, TcpError, TcpOptions,
};
use crate::time::Instant;

/// Our address (the stack under test).
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// The script's address (the peer).
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The port `bind` gives a socket, and the port `connect` reaches.
pub const SERVER_PORT: u16 = 8080;
/// The peer's port when it connects to us.
pub const CLIENT_PORT: u16 = 48_000;
/// The peer's initial sequence number: script sequence numbers are relative to it. Close
/// to 2^32 so every script also crosses the wrap.
pub const PEER_ISN: u32 = u32::MAX - 20_000;

/// Why a script stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The stack did not do what the script says.
    Fail(usize, String),
    /// The script uses something we cannot run.
    Unsupported(usize, String),
    /// The script itself is wrong (runner error).
    Error(usize, String),
}

type Step<T> = Result<T, Stop>;

/// A segment the stack sent, with the instant it left.
#[derive(Clone, Debug)]
struct Sent {
    at: Instant,
    seg: Segment,
}

#[derive(Clone, Debug, Default)]
struct SockOpts {
    nodelay: Option<bool>,
    keepalive: bool,
    keep_idle: Option<u64>,
    keep_intvl: Option<u64>,
    keep_cnt: Option<u32>,
    user_timeout_ms: Option<u64>,
    linger: Option<(bool, u64)>,
    maxseg: Option<u16>,
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
}

#[derive(Clone, Debug)]
enum Kind {
    Fresh,
    /// The listener and its backlog.
    Listener(ListenerId, usize),
    Conn(ConnId),
}

#[derive(Clone, Debug)]
struct Sock {
    kind: Kind,
    nonblock: bool,
    opts: SockOpts,
    rd_shut: bool,
    wr_shut: bool,
    /// SO_ERROR already reported the connection's error.
    error_taken: bool,
    /// connect() already returned 0 (the next one is EISCONN).
    connect_reported: bool,
}

/// A blocking call waiting in virtual time.
struct Pending {
    line: usize,
    call: Syscall,
    /// When it must return (`start...end`), if given.
    end: Option<Instant>,
    progress: usize,
}

enum Attempt {
    Done(Result<i64, &'static str>),
    Block,
}

/// The state of one script run.
pub struct Runner {
    opts: Options,
    /// The script's directory, for the shell files it names.
    base_dir: Option<std::path::PathBuf>,
    /// `--strict_segments`: no joining of our segments into a script's larger one.
    strict_segments: bool,
    config: Config,
    tcp: Option<Tcp>,
    now: Instant,
    start: Instant,
    socks: BTreeMap<i64, Sock>,
    sent: VecDeque<Sent>,
    us: SocketAddrV4,
    them: SocketAddrV4,
    our_isn: Option<u32>,
    /// Script TSval → the TSval we actually sent (packetdrill's ts_val_map).
    ts_map: HashMap<u32, u32>,
    /// The first (script, actual) TSval pair: the baseline of the mapping.
    ts_first: Option<(u32, u32)>,
    pending: Option<Pending>,
    /// What the script asked for that was not run (shell lines, code blocks).
    pub skipped: Vec<String>,
}

fn us_of(d: i64) -> Duration {
    Duration::from_micros(d.max(0) as u64)
}

fn secs(t: Instant, start: Instant) -> String {
    format!("{:.6}", (t - start).as_secs_f64())
}

impl Runner {
    /// A runner with the endpoint's default configuration.
    pub fn new(opts: &Options, base_dir: Option<std::path::PathBuf>) -> Runner {
        let start = Instant::from_secs(1000);
        Runner {
            opts: opts.clone(),
            strict_segments: false,
            base_dir,
            config: Config::default(),
            tcp: None,
            now: start,
            start,
            socks: BTreeMap::new(),
            sent: VecDeque::new(),
            us: SocketAddrV4::new(LOCAL_IP, SERVER_PORT),
            them: SocketAddrV4::new(REMOTE_IP, CLIENT_PORT),
            our_isn: None,
            ts_map: HashMap::new(),
            ts_first: None,
            pending: None,
            skipped: Vec::new(),
        }
    }

    fn tol(&self) -> Duration {
        Duration::from_micros(self.opts.tolerance_usecs)
    }

    /// Run every event; Ok(()) is a pass.
    pub fn run(&mut self, script: &Script) -> Step<()> {
        for (line, k, v) in &script.options {
            self.option(*line, k, v)?;
        }
        // Relative times count from the previous event as it actually happened; two
        // inbound packets in a row are anchored on the script times, as packetdrill does.
        let mut anchor = self.start;
        let mut prev_inbound: Option<Instant> = None;
        for ev in &script.events {
            let inbound = matches!(&ev.kind, EventKind::Packet(p) if p.inbound)
                || matches!(ev.kind, EventKind::Icmp(_));
            let base = match ev.time.kind {
                TimeKind::Absolute => Some(self.start),
                TimeKind::Relative => Some(match prev_inbound {
                    Some(t) if inbound => t,
                    _ => anchor,
                }),
                TimeKind::Any => None,
            };
            let at = base.map(|b| b + us_of(ev.time.start));
            let end = match (base, ev.time.end) {
                (Some(b), Some(e)) => Some(b + us_of(e)),
                _ => None,
            };
            let line = ev.line;
            prev_inbound = None;
            match &ev.kind {
                EventKind::Unsupported(why) => return Err(Stop::Unsupported(line, why.clone())),
                EventKind::Shell(cmd) => {
                    self.advance_to(at)?;
                    self.shell(line, cmd)?;
                    anchor = self.now;
                }
                EventKind::Code(_) => {
                    self.advance_to(at)?;
                    self.skipped
                        .push(format!("line {line}: %{{ }}% code block (tcp_info checks)"));
                    anchor = self.now;
                }
                EventKind::Packet(p) if p.inbound => {
                    self.advance_to(at)?;
                    self.inbound(line, p)?;
                    anchor = at.unwrap_or(self.now);
                    prev_inbound = Some(anchor);
                }
                EventKind::Icmp(i) => {
                    self.advance_to(at)?;
                    self.icmp(line, i)?;
                    anchor = at.unwrap_or(self.now);
                    prev_inbound = Some(anchor);
                }
                EventKind::Packet(p) => {
                    anchor = self.outbound(line, p, at, end)?;
                }
                EventKind::Syscall(c) => {
                    if self.pending.is_some() {
                        self.finish_pending()?;
                    }
                    self.advance_to(at)?;
                    self.syscall(line, c, end)?;
                    anchor = self.now;
                }
            }
        }
        if self.pending.is_some() {
            self.finish_pending()?;
        }
        // Like packetdrill, segments sent after the last outbound line are not checked:
        // an unexpected segment fails the script when a later `>` line meets it first.
        Ok(())
    }

    /// A `--name=value` line of the script.
    fn option(&mut self, line: usize, k: &str, v: &str) -> Step<()> {
        let n = || -> Step<u64> {
            v.parse()
                .map_err(|_| Stop::Error(line, format!("--{k}: not a number: {v}")))
        };
        match k {
            "tolerance_usecs" => self.opts.tolerance_usecs = n()?,
            "tcp_ts_tick_usecs" => self.opts.tcp_ts_tick_usecs = n()?,
            // TS ecr values are always mapped from a script TSval, or interpolated.
            "tcp_ts_ecr_scaled" => {}
            "strict_segments" => self.strict_segments = true,
            "ip_version" if v == "ipv4" => {}
            "local_ip" | "remote_ip" | "gateway_ip" | "netmask_ip"
                if v.parse::<Ipv4Addr>().is_ok() =>
            {
                // Our addresses are fixed; the script only speaks relative numbers.
            }
            "ip_version" | "local_ip" | "remote_ip" => {
                return Err(Stop::Unsupported(
                    line,
                    format!("--{k}={v}: IPv6 is not implemented"),
                ))
            }
            _ => self
                .skipped
                .push(format!("line {line}: --{k}={v} (no equivalent)")),
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Time.

    fn tcp(&mut self) -> &mut Tcp {
        let config = self.config.clone();
        self.tcp.get_or_insert_with(|| Tcp::new(config, 1))
    }

    /// Queue everything the stack wants to send now.
    fn drain(&mut self) {
        let now = self.now;
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        while let Some(t) = tcp.poll_transmit(now) {
            // Our side's numbers count from the ISN of the latest SYN or SYN-ACK we sent
            // (a retransmission repeats it; a new connection brings its own).
            if t.segment.flags.syn {
                self.our_isn = Some(t.segment.seq.0);
            }
            self.sent.push_back(Sent {
                at: now,
                seg: t.segment,
            });
        }
    }

    /// Queue output and give a waiting blocking call its chance.
    fn settle(&mut self) -> Step<()> {
        self.drain();
        self.try_pending()?;
        self.drain();
        Ok(())
    }

    /// One timer step not beyond `limit`; false when no timer is due by then.
    fn step(&mut self, limit: Instant) -> Step<bool> {
        // The next timer of the stack, or a blocking poll() timing out.
        let poll_timeout = self
            .pending
            .as_ref()
            .filter(|p| p.call.name == "poll" && p.progress > 0)
            .map(|p| Instant::from_micros(p.progress as u64));
        let timer = self.tcp.as_mut().and_then(|t| t.poll_at());
        let Some(at) = [timer, poll_timeout].into_iter().flatten().min() else {
            return Ok(false);
        };
        if at > limit {
            return Ok(false);
        }
        if at > self.now {
            self.now = at;
        }
        let now = self.now;
        if self.tcp.is_some() {
            self.tcp().handle_timeout(now);
        }
        self.settle()?;
        Ok(true)
    }

    /// Move the clock to `at`, firing every timer on the way.
    fn advance_to(&mut self, at: Option<Instant>) -> Step<()> {
        self.settle()?;
        let Some(target) = at else {
            return Ok(());
        };
        let mut spins = 0;
        while self.step(target)? {
            spins += 1;
            if spins > 1_000_000 {
                return Err(Stop::Error(0, "a timer never clears".into()));
            }
        }
        if target > self.now {
            self.now = target;
            if self.tcp.is_some() {
                self.tcp().handle_timeout(target);
            }
            self.settle()?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Packets.

    fn inbound(&mut self, line: usize, p: &PacketSpec) -> Step<()> {
        let flags = flags_of(&p.flags);
        let our = self.our_isn.unwrap_or(0);
        let mut options = TcpOptions::default();
        for o in p.options.iter().flatten() {
            match o {
                TcpOpt::Mss(m) => options.mss = Some(*m),
                TcpOpt::Wscale(w) => options.window_scale = Some(*w),
                TcpOpt::SackOk => options.sack_permitted = true,
                TcpOpt::Ts(val, ecr) => {
                    let ecr = if flags.ack { self.live_ecr(*ecr) } else { *ecr };
                    options.timestamps = Some((*val, ecr));
                }
                TcpOpt::Sack(blocks) => {
                    options.sack_blocks = blocks
                        .iter()
                        .map(|&(a, b)| (SeqNum(our.wrapping_add(a)), SeqNum(our.wrapping_add(b))))
                        .collect()
                }
                TcpOpt::Nop | TcpOpt::Eol => {}
            }
        }
        if p.len > 65_000 {
            return Err(Stop::Error(
                line,
                format!("{} bytes do not fit in one IPv4 packet", p.len),
            ));
        }
        let seg = Segment {
            src_port: self.them.port(),
            dst_port: self.us.port(),
            seq: SeqNum(PEER_ISN.wrapping_add(p.seq)),
            ack: if flags.ack {
                SeqNum(our.wrapping_add(p.ack.unwrap_or(0)))
            } else {
                SeqNum(0)
            },
            flags,
            window: p.win.unwrap_or(65535).min(65535) as u16,
            urgent: 0,
            options,
            payload: vec![0; p.len as usize],
        };
        // Through the wire format, as the stack would see it from a device.
        let bytes = seg.emit(self.them.ip().to_owned(), *self.us.ip());
        let parsed = Segment::parse(*self.them.ip(), *self.us.ip(), &bytes)
            .map_err(|e| Stop::Error(line, format!("inbound packet does not encode: {e}")))?;
        let now = self.now;
        let (src, dst) = (*self.them.ip(), *self.us.ip());
        self.tcp().on_segment(src, dst, &parsed, now);
        self.settle()
    }

    /// packetdrill maps an inbound TS ecr from script space to the TSval we really sent.
    fn live_ecr(&self, ecr: u32) -> u32 {
        if let Some(&v) = self.ts_map.get(&ecr) {
            return v;
        }
        match self.ts_first {
            Some((script, actual)) => actual.wrapping_add(ecr.wrapping_sub(script)),
            None => ecr,
        }
    }

    fn icmp(&mut self, line: usize, i: &IcmpSpec) -> Step<()> {
        let code = i.code.as_deref();
        let kind = match (i.kind.as_str(), code) {
            ("unreachable", Some("frag_needed")) => IcmpKind::FragmentationNeeded {
                next_hop_mtu: i.mtu.unwrap_or(0),
            },
            ("unreachable", c) => IcmpKind::DestUnreachable {
                code: match c {
                    None | Some("net_unreachable") => 0,
                    Some("host_unreachable") => 1,
                    Some("protocol_unreachable") => 2,
                    Some("port_unreachable") => 3,
                    Some("source_route_failed") => 5,
                    Some("net_unknown") => 6,
                    Some("host_unknown") => 7,
                    Some(other) => {
                        return Err(Stop::Unsupported(line, format!("ICMP code {other}")));
                    }
                },
            },
            ("time_exceeded", _) => IcmpKind::TimeExceeded { code: 0 },
            ("source_quench", _) => IcmpKind::SourceQuench,
            ("parameter_problem", _) => IcmpKind::ParameterProblem,
            (other, _) => return Err(Stop::Unsupported(line, format!("ICMP type {other}"))),
        };
        // The quoted datagram: our IPv4 header and the first 8 bytes of our TCP header.
        let mut q = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        q.extend_from_slice(&self.us.ip().octets());
        q.extend_from_slice(&self.them.ip().octets());
        q.extend_from_slice(&self.us.port().to_be_bytes());
        q.extend_from_slice(&self.them.port().to_be_bytes());
        let seq = self.our_isn.unwrap_or(0).wrapping_add(i.seq);
        q.extend_from_slice(&seq.to_be_bytes());
        let now = self.now;
        let src = *self.them.ip();
        self.tcp().on_icmp_error(src, &q, kind, now);
        self.settle()
    }

    /// Wait (up to the line's time plus tolerance) for the next segment and compare.
    /// Returns the instant it left.
    fn outbound(
        &mut self,
        line: usize,
        p: &PacketSpec,
        at: Option<Instant>,
        end: Option<Instant>,
    ) -> Step<Instant> {
        let tol = self.tol();
        let deadline = match at {
            Some(t) => end.unwrap_or(t) + tol,
            None => self.now + Duration::from_secs(3600),
        };
        self.settle()?;
        while self.sent.is_empty() {
            if !self.step(deadline)? {
                if deadline > self.now {
                    self.now = deadline;
                    if self.tcp.is_some() {
                        self.tcp().handle_timeout(deadline);
                    }
                    self.settle()?;
                }
                break;
            }
        }
        let Some(first) = self.sent.pop_front() else {
            // Look a little further, to tell "late" from "never".
            let horizon = self.now + Duration::from_secs(10);
            while self.sent.is_empty() && self.step(horizon)? {}
            let msg = match (self.sent.front(), at) {
                (Some(s), Some(t)) => format!(
                    "timing error: expected {} at {} sec but the next packet left at {} sec: {}",
                    show_spec(p),
                    secs(t, self.start),
                    secs(s.at, self.start),
                    self.show_out(&s.seg)
                ),
                _ => format!("expected {}, got nothing", show_spec(p)),
            };
            return Err(Stop::Fail(line, msg));
        };
        let got = self.coalesce(first, p.len);
        if let Some(field) = self.mismatch(p, &got.seg) {
            return Err(Stop::Fail(
                line,
                format!(
                    "expected {}, got {} ({field})",
                    show_spec(p),
                    self.show_out(&got.seg)
                ),
            ));
        }
        if let Some(t) = at {
            if let Some(msg) = self.timing_error("outbound packet", t, end.unwrap_or(t), got.at) {
                return Err(Stop::Fail(
                    line,
                    format!("{msg}: {}", self.show_out(&got.seg)),
                ));
            }
        }
        Ok(got.at)
    }

    /// packetdrill sees one TSO super-segment where we send several MSS-sized segments
    /// at the same instant: join consecutive contiguous segments of equal size (the last
    /// may be shorter) while the script's line asks for more bytes. Segment boundaries
    /// smaller than the script's are still a mismatch.
    fn coalesce(&mut self, first: Sent, want: u32) -> Sent {
        let mut got = first;
        let part = got.seg.payload.len();
        if self.strict_segments
            || part == 0
            || got.seg.flags.syn
            || got.seg.flags.fin
            || got.seg.flags.rst
        {
            return got;
        }
        while (got.seg.payload.len() as u32) < want
            && got.seg.payload.len().is_multiple_of(part)
            && !got.seg.flags.fin
        {
            let Some(next) = self.sent.front() else { break };
            let contiguous = next.seg.seq.0
                == got.seg.seq.0.wrapping_add(got.seg.payload.len() as u32)
                && next.at == got.at
                && !next.seg.flags.syn
                && !next.seg.flags.rst
                && next.seg.flags.ack == got.seg.flags.ack
                && !next.seg.payload.is_empty()
                && next.seg.payload.len() <= part
                && (got.seg.payload.len() + next.seg.payload.len()) as u32 <= want;
            if !contiguous {
                break;
            }
            let Some(next) = self.sent.pop_front() else {
                break;
            };
            got.seg.payload.extend_from_slice(&next.seg.payload);
            got.seg.flags.psh |= next.seg.flags.psh;
            got.seg.flags.fin |= next.seg.flags.fin;
            got.seg.ack = next.seg.ack;
            got.seg.window = next.seg.window;
            got.seg.options = next.seg.options;
        }
        got
    }

    /// The first field where `seg` differs from the line, or None.
    fn mismatch(&mut self, p: &PacketSpec, seg: &Segment) -> Option<String> {
        let mut want = flags_of(&p.flags);
        if self.opts.ignore_psh {
            want.psh = seg.flags.psh;
        }
        if want != seg.flags {
            return Some("flags".into());
        }
        let our = self.our_isn.unwrap_or(0);
        if seg.seq.0.wrapping_sub(our) != p.seq {
            return Some("seq".into());
        }
        if seg.payload.len() as u32 != p.len {
            return Some("length".into());
        }
        if let Some(a) = p.ack {
            if seg.ack.0.wrapping_sub(PEER_ISN) != a {
                return Some("ack".into());
            }
        }
        if let Some(w) = p.win {
            if u32::from(seg.window) != w {
                return Some("win".into());
            }
        }
        let opts = p.options.as_ref()?;
        let o = &seg.options;
        let mut mss = None;
        let mut ws = None;
        let mut sack_ok = false;
        let mut ts = None;
        let mut sack = Vec::new();
        for opt in opts {
            match opt {
                TcpOpt::Mss(m) => mss = Some(*m),
                TcpOpt::Wscale(w) => ws = Some(*w),
                TcpOpt::SackOk => sack_ok = true,
                TcpOpt::Ts(v, e) => ts = Some((*v, *e)),
                TcpOpt::Sack(b) => sack.clone_from(b),
                TcpOpt::Nop | TcpOpt::Eol => {}
            }
        }
        if o.mss != mss {
            return Some("mss option".into());
        }
        if o.window_scale != ws {
            return Some("wscale option".into());
        }
        if o.sack_permitted != sack_ok {
            return Some("sackOK option".into());
        }
        let got_sack: Vec<(u32, u32)> = o
            .sack_blocks
            .iter()
            .map(|(a, b)| (a.0.wrapping_sub(PEER_ISN), b.0.wrapping_sub(PEER_ISN)))
            .collect();
        if got_sack != sack {
            return Some("sack blocks".into());
        }
        match (ts, o.timestamps) {
            (None, None) => None,
            (Some((sv, se)), Some((av, ae))) => {
                // packetdrill: remember script→actual TSval; the first pair is the
                // baseline; TSval is only checked with --tcp_ts_tick_usecs.
                self.ts_map.insert(sv, av);
                let (s0, a0) = *self.ts_first.get_or_insert((sv, av));
                let mapped = s0.wrapping_add(av.wrapping_sub(a0));
                let tick = self.opts.tcp_ts_tick_usecs;
                if tick > 0
                    && u64::from((mapped.wrapping_sub(sv) as i32).unsigned_abs()) * tick
                        > self.opts.tolerance_usecs
                {
                    return Some("TS val".into());
                }
                (ae != se).then(|| "TS ecr".into())
            }
            _ => Some("timestamps option".into()),
        }
    }

    /// Our segment in script terms, as a `>` line.
    fn show_out(&self, seg: &Segment) -> String {
        let our = self.our_isn.unwrap_or(0);
        let seq = seg.seq.0.wrapping_sub(our);
        let len = seg.payload.len() as u32;
        let mut s = format!("> {} {}:{}({})", seg.flags, seq, seq.wrapping_add(len), len);
        if seg.flags.ack {
            s += &format!(" ack {}", seg.ack.0.wrapping_sub(PEER_ISN));
        }
        s += &format!(" win {}", seg.window);
        let o = &seg.options;
        let mut parts = Vec::new();
        if let Some(m) = o.mss {
            parts.push(format!("mss {m}"));
        }
        if o.sack_permitted {
            parts.push("sackOK".into());
        }
        if let Some((v, e)) = o.timestamps {
            let v = match self.ts_first {
                Some((s0, a0)) => s0.wrapping_add(v.wrapping_sub(a0)),
                None => v,
            };
            parts.push(format!("TS val {v} ecr {e}"));
        }
        if let Some(w) = o.window_scale {
            parts.push(format!("wscale {w}"));
        }
        if !o.sack_blocks.is_empty() {
            let b: Vec<String> = o
                .sack_blocks
                .iter()
                .map(|(a, b)| {
                    format!(
                        "{}:{}",
                        a.0.wrapping_sub(PEER_ISN),
                        b.0.wrapping_sub(PEER_ISN)
                    )
                })
                .collect();
            parts.push(format!("sack {}", b.join(" ")));
        }
        if !parts.is_empty() {
            s += &format!(" <{}>", parts.join(","));
        }
        s
    }

    // ----------------------------------------------------------------------------------
    // Shell lines: a few sysctls map to our configuration; nothing is ever run.

    fn shell(&mut self, line: usize, cmd: &str) -> Step<()> {
        self.shell_lines(line, cmd, true)
    }

    /// Interpret `sysctl` and `set_sysctls.py` commands; a `.sh` file next to the script
    /// (packetdrill's `defaults.sh`) is read, not run, for its sysctl lines.
    fn shell_lines(&mut self, line: usize, cmd: &str, top: bool) -> Step<()> {
        let joined = cmd.replace("\\\n", " ");
        for c in joined.lines().map(str::trim) {
            if c.is_empty() || c.starts_with('#') {
                continue;
            }
            let words = shell_words(c);
            let first = words.first().map_or("", String::as_str);
            if first == "sysctl" || first.ends_with("set_sysctls.py") {
                for w in &words[1..] {
                    if let Some((k, v)) = w.split_once('=') {
                        let k = k.trim_start_matches("/proc/sys/").replace('/', ".");
                        self.sysctl(line, &k, v)?;
                    }
                }
                continue;
            }
            let file = self
                .base_dir
                .as_ref()
                .filter(|_| top && first.ends_with(".sh") && words.len() == 1)
                .map(|d| d.join(first));
            match file.and_then(|f| std::fs::read_to_string(f).ok()) {
                Some(text) => {
                    let before = self.skipped.len();
                    self.shell_lines(line, &text, false)?;
                    let not_mapped: Vec<String> = self.skipped.drain(before..).collect();
                    self.skipped.push(format!(
                        "line {line}: `{c}` read for its sysctls, not run ({} lines without an equivalent)",
                        not_mapped.len()
                    ));
                }
                None => self.skipped.push(format!("line {line}: `{c}` (not run)")),
            }
        }
        Ok(())
    }

    fn sysctl(&mut self, line: usize, key: &str, v: &str) -> Step<()> {
        let name = key.trim_start_matches("net.ipv4.");
        let n: Option<i64> = v.parse().ok();
        let unsupported = |why: &str| Err(Stop::Unsupported(line, format!("{key}={v}: {why}")));
        if self.tcp.is_some() {
            return unsupported("a sysctl after the first socket call");
        }
        match (name, n) {
            ("tcp_timestamps", Some(n)) => self.config.timestamps = n != 0,
            ("tcp_sack", Some(1)) | ("tcp_window_scaling", Some(1)) => {}
            ("tcp_sack", Some(_)) => return unsupported("SACK cannot be turned off"),
            ("tcp_window_scaling", Some(_)) => {
                // No window scale is offered when the buffer fits in 16 bits.
                self.config.recv_buffer = self.config.recv_buffer.min(65535);
            }
            ("tcp_syncookies", Some(0)) => self.config.syn_cookies = false,
            ("tcp_syncookies", Some(1)) => self.config.syn_cookies = true,
            ("tcp_syncookies", Some(_)) => return unsupported("cookies for every SYN"),
            ("tcp_syn_retries", Some(n)) | ("tcp_synack_retries", Some(n)) if n >= 0 => {
                self.config.syn_retries = n as u32
            }
            ("tcp_retries2", Some(n)) if n >= 0 => self.config.max_retransmits = n as u32,
            ("tcp_early_retrans", Some(n)) => self.config.tail_loss_probe = n >= 3,
            ("tcp_rmem", _) | ("tcp_wmem", _) => {
                // Linux starts at the default, autotunes up to the max and derives the
                // window scale from the max: so do we.
                let mut fields = v.split_whitespace().map(|m| m.parse::<usize>().ok());
                let (Some(_), Some(Some(default)), Some(Some(max))) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    return unsupported("expected \"min default max\"");
                };
                if name == "tcp_rmem" {
                    self.config.recv_buffer = default.max(1);
                    self.config.recv_buffer_max = max;
                } else {
                    self.config.send_buffer = default.max(1);
                    self.config.send_buffer_max = max;
                }
            }
            ("tcp_congestion_control", _) => match v {
                "reno" => self.config.congestion = CongestionAlgorithm::NewReno,
                "cubic" => self.config.congestion = CongestionAlgorithm::Cubic,
                _ => return unsupported("congestion control"),
            },
            _ => self
                .skipped
                .push(format!("line {line}: {key}={v} (no equivalent)")),
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // System calls.

    fn syscall(&mut self, line: usize, c: &Syscall, end: Option<Instant>) -> Step<()> {
        let mut progress = 0;
        match self.attempt(line, c, &mut progress)? {
            Attempt::Done(r) => {
                self.check_result(line, c, r)?;
                if let Some(e) = end {
                    self.check_return_time(line, e)?;
                }
                self.settle()
            }
            Attempt::Block => {
                self.pending = Some(Pending {
                    line,
                    call: c.clone(),
                    end,
                    progress,
                });
                if end.is_none() {
                    // Not marked as blocking: the script waits for it here.
                    self.finish_pending()?;
                }
                Ok(())
            }
        }
    }

    fn check_return_time(&self, line: usize, end: Instant) -> Step<()> {
        match self.timing_error("system call return", end, end, self.now) {
            Some(msg) => Err(Stop::Fail(line, msg)),
            None => Ok(()),
        }
    }

    /// packetdrill's time check: `actual` must lie in [from - tolerance, to + tolerance].
    fn timing_error(
        &self,
        what: &str,
        from: Instant,
        to: Instant,
        actual: Instant,
    ) -> Option<String> {
        let tol = self.tol();
        let since = |t: Instant| t.saturating_duration_since(self.start);
        let (lo, hi) = (since(from).saturating_sub(tol), since(to + tol));
        let at = since(actual);
        (at < lo || at > hi).then(|| {
            let when = if from == to {
                format!("at {} sec", secs(from, self.start))
            } else {
                format!(
                    "between {} and {} sec",
                    secs(from, self.start),
                    secs(to, self.start)
                )
            };
            format!(
                "timing error: expected {what} {when} but happened at {} sec; tolerance {:.6} sec",
                secs(actual, self.start),
                tol.as_secs_f64()
            )
        })
    }

    fn try_pending(&mut self) -> Step<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        match self.attempt(p.line, &p.call, &mut p.progress)? {
            Attempt::Done(r) => {
                self.check_result(p.line, &p.call, r)?;
                if let Some(e) = p.end {
                    self.check_return_time(p.line, e)?;
                }
            }
            Attempt::Block => self.pending = Some(p),
        }
        Ok(())
    }

    /// Let time run until the blocking call returns (or is clearly late).
    fn finish_pending(&mut self) -> Step<()> {
        let limit = match self.pending.as_ref().and_then(|p| p.end) {
            Some(e) => e + self.tol(),
            None => self.now + Duration::from_secs(4 * 3600),
        };
        self.settle()?;
        while self.pending.is_some() {
            if !self.step(limit)? {
                break;
            }
        }
        if let Some(p) = self.pending.take() {
            if limit > self.now {
                self.now = limit;
                if self.tcp.is_some() {
                    self.tcp().handle_timeout(limit);
                }
            }
            self.pending = Some(p);
            self.settle()?;
            if let Some(p) = self.pending.take() {
                return Err(Stop::Fail(
                    p.line,
                    format!(
                        "{}() still blocked at {} sec",
                        p.call.name,
                        secs(self.now, self.start)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_result(&self, line: usize, c: &Syscall, r: Result<i64, &'static str>) -> Step<()> {
        let expected = match &c.ret {
            Expr::Ellipsis => return Ok(()),
            e => eval(e)
                .ok_or_else(|| Stop::Error(line, format!("cannot evaluate the result {e:?}")))?,
        };
        let want_errno = c.errno.as_deref().map(normalize_errno);
        let ok = match r {
            Ok(v) => v == expected,
            Err(e) => expected == -1 && want_errno.is_none_or(|w| w == e),
        };
        if ok {
            return Ok(());
        }
        let want = match &c.errno {
            Some(e) => format!("{expected} {e}"),
            None => expected.to_string(),
        };
        let got = match r {
            Ok(v) => v.to_string(),
            Err(e) => format!("-1 {e}"),
        };
        Err(Stop::Fail(
            line,
            format!("{}(): expected result {want}, got {got}", c.name),
        ))
    }

    fn fd(&self, line: usize, c: &Syscall) -> Step<i64> {
        c.args
            .first()
            .and_then(eval)
            .ok_or_else(|| Stop::Error(line, format!("{}(): no file descriptor", c.name)))
    }

    fn sock(&self, fd: i64) -> Option<Sock> {
        self.socks.get(&fd).cloned()
    }

    /// Create the endpoint (once) with the sysctls and this socket's buffer options.
    fn ensure_tcp(&mut self, line: usize, o: &SockOpts) -> Step<()> {
        let mut cfg = self.config.clone();
        if let Some(m) = o.maxseg {
            cfg.mss = m;
        }
        // socket(7): Linux doubles the value (room for its bookkeeping) and the
        // application can fill about that much.
        // A size set by the application is not autotuned (Linux's SOCK_RCVBUF_LOCK,
        // SOCK_SNDBUF_LOCK) and the window scale follows it.
        if let Some(b) = o.rcvbuf {
            cfg.recv_buffer = 2 * b;
            cfg.recv_buffer_max = 0;
        }
        if let Some(b) = o.sndbuf {
            cfg.send_buffer = 2 * b;
            cfg.send_buffer_max = 0;
        }
        if let Some(n) = o.nodelay {
            cfg.nodelay = n;
        }
        match &self.tcp {
            None => {
                self.config = cfg.clone();
                self.tcp = Some(Tcp::new(cfg, 1));
            }
            Some(t) if *t.config() != cfg => {
                return Err(Stop::Unsupported(
                    line,
                    "a second socket with other TCP_MAXSEG/SO_RCVBUF/SO_SNDBUF/TCP_NODELAY than the first".into(),
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// An option that sizes connections, set on a listener: the endpoint is made again
    /// with it, which is only possible while the listener is all it holds.
    fn relisten(&mut self, line: usize, mut s: Sock) -> Step<Sock> {
        let Kind::Listener(l, backlog) = s.kind else {
            return Ok(s);
        };
        let listeners = self
            .socks
            .values()
            .filter(|s| matches!(s.kind, Kind::Listener(..)))
            .count();
        if self.tcp().connection_count() > 0 || listeners > 1 {
            return Err(Stop::Unsupported(
                line,
                "TCP_MAXSEG/SO_RCVBUF/SO_SNDBUF on a listener that has connections".into(),
            ));
        }
        let local = self.tcp().listener_addr(l).unwrap_or(self.us.into());
        self.tcp = None;
        self.ensure_tcp(line, &s.opts)?;
        let l = self
            .tcp()
            .listen(local, backlog)
            .map_err(|e| Stop::Error(line, format!("listen again: {e}")))?;
        s.kind = Kind::Listener(l, backlog);
        Ok(s)
    }

    fn apply_conn_opts(&mut self, id: ConnId, o: &SockOpts) {
        let tcp = self.tcp();
        if let Some(n) = o.nodelay {
            tcp.set_nodelay(id, n);
        }
        let ka = o.keepalive.then(|| KeepaliveConfig {
            idle: Duration::from_secs(o.keep_idle.unwrap_or(7200)),
            interval: Duration::from_secs(o.keep_intvl.unwrap_or(75)),
            count: o.keep_cnt.unwrap_or(9),
        });
        tcp.set_keepalive(id, ka);
        tcp.set_user_timeout(
            id,
            o.user_timeout_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
        );
    }

    fn attempt(&mut self, line: usize, c: &Syscall, progress: &mut usize) -> Step<Attempt> {
        let unsupported = |what: String| Err(Stop::Unsupported(line, what));
        let arg = |i: usize| c.args.get(i).and_then(eval);
        let name = c.name.as_str();
        if name == "socket" {
            let ty = c.args.get(1).and_then(ident);
            if ty.as_deref() != Some("SOCK_STREAM") {
                return unsupported(format!("socket type {:?}", c.args.get(1)));
            }
            let fd = match eval(&c.ret) {
                Some(fd) if fd >= 0 => fd,
                _ => (3..).find(|f| !self.socks.contains_key(f)).unwrap_or(3),
            };
            self.socks.insert(
                fd,
                Sock {
                    kind: Kind::Fresh,
                    nonblock: false,
                    opts: SockOpts::default(),
                    rd_shut: false,
                    wr_shut: false,
                    error_taken: false,
                    connect_reported: false,
                },
            );
            return Ok(Attempt::Done(Ok(fd)));
        }
        let known = [
            "bind",
            "listen",
            "accept",
            "connect",
            "read",
            "recv",
            "write",
            "send",
            "close",
            "shutdown",
            "setsockopt",
            "getsockopt",
            "fcntl",
            "poll",
        ];
        if !known.contains(&name) {
            return unsupported(format!("system call {name}()"));
        }
        if name == "poll" {
            return self.poll(line, c, progress);
        }
        let fd = self.fd(line, c)?;
        let Some(mut s) = self.sock(fd) else {
            return Ok(Attempt::Done(Err("EBADF")));
        };
        let done = |v: i64| Ok(Attempt::Done(Ok(v)));
        let null_buffer = c.args.get(1).and_then(ident).as_deref() == Some("NULL");
        if null_buffer && matches!(name, "read" | "recv" | "write" | "send") {
            return Ok(Attempt::Done(Err("EFAULT")));
        }
        let errno = |e: &'static str| Ok(Attempt::Done(Err(e)));
        match name {
            "bind" => done(0),
            "listen" => {
                let Kind::Fresh = s.kind else {
                    return errno("EINVAL");
                };
                self.ensure_tcp(line, &s.opts)?;
                let backlog = arg(1).unwrap_or(0).max(0) as usize;
                let local = SocketAddrV4::new(LOCAL_IP, SERVER_PORT);
                match self.tcp().listen(local, backlog) {
                    Ok(l) => {
                        self.us = local;
                        self.them = SocketAddrV4::new(REMOTE_IP, CLIENT_PORT);
                        s.kind = Kind::Listener(l, backlog);
                        self.socks.insert(fd, s);
                        done(0)
                    }
                    Err(e) => errno(errno_of(e)),
                }
            }
            "accept" => {
                let Kind::Listener(l, _) = s.kind else {
                    return errno("EINVAL");
                };
                match self.tcp().accept(l) {
                    Some(id) => {
                        let new_fd = match eval(&c.ret) {
                            Some(v) if v >= 0 && !self.socks.contains_key(&v) => v,
                            _ => (3..).find(|f| !self.socks.contains_key(f)).unwrap_or(3),
                        };
                        self.apply_conn_opts(id, &s.opts);
                        self.socks.insert(
                            new_fd,
                            Sock {
                                kind: Kind::Conn(id),
                                nonblock: false,
                                opts: s.opts.clone(),
                                rd_shut: false,
                                wr_shut: false,
                                error_taken: false,
                                connect_reported: true,
                            },
                        );
                        done(new_fd)
                    }
                    None if s.nonblock => errno("EAGAIN"),
                    None => Ok(Attempt::Block),
                }
            }
            "connect" => {
                if let Kind::Conn(id) = s.kind {
                    let tcp = self.tcp();
                    if let Some(e) = tcp.error(id) {
                        return errno(errno_of(e));
                    }
                    if tcp.is_connected(id) {
                        if s.connect_reported {
                            return errno("EISCONN");
                        }
                        s.connect_reported = true;
                        self.socks.insert(fd, s);
                        return done(0);
                    }
                    return if *progress == 1 {
                        Ok(Attempt::Block)
                    } else {
                        errno("EALREADY")
                    };
                }
                self.ensure_tcp(line, &s.opts)?;
                let remote = SocketAddrV4::new(REMOTE_IP, SERVER_PORT);
                let now = self.now;
                match self
                    .tcp()
                    .connect(SocketAddrV4::new(LOCAL_IP, 0), remote, now)
                {
                    Ok(id) => {
                        // Scripts are IPv4 only: the connection's local end is too.
                        if let std::net::SocketAddr::V4(us) = self.tcp().local_addr(id) {
                            self.us = us;
                        }
                        self.them = remote;
                        self.apply_conn_opts(id, &s.opts);
                        s.kind = Kind::Conn(id);
                        let nonblock = s.nonblock;
                        self.socks.insert(fd, s);
                        self.drain();
                        if nonblock {
                            errno("EINPROGRESS")
                        } else {
                            *progress = 1;
                            Ok(Attempt::Block)
                        }
                    }
                    Err(e) => errno(errno_of(e)),
                }
            }
            "read" | "recv" => {
                let Kind::Conn(id) = s.kind else {
                    return errno("ENOTCONN");
                };
                let want = arg(2).unwrap_or(0).max(0) as usize;
                if s.rd_shut {
                    return done(0);
                }
                // No read returns more than the receive buffer holds.
                let mut buf = vec![0u8; want.min(self.config.recv_buffer.max(1))];
                let now = self.now;
                match self.tcp().recv(id, &mut buf, now) {
                    Ok(n) => done(n as i64),
                    Err(TcpError::WouldBlock) if s.nonblock => errno("EAGAIN"),
                    Err(TcpError::WouldBlock) => Ok(Attempt::Block),
                    Err(e) => errno(errno_of(e)),
                }
            }
            "write" | "send" => {
                let Kind::Conn(id) = s.kind else {
                    return errno("EPIPE");
                };
                let want = arg(2).unwrap_or(0).max(0) as usize;
                let connecting =
                    matches!(self.tcp().state(id), State::SynSent | State::SynReceived);
                if connecting && self.tcp().error(id).is_none() {
                    return if s.nonblock {
                        errno("EAGAIN")
                    } else {
                        Ok(Attempt::Block)
                    };
                }
                let now = self.now;
                while *progress < want {
                    let chunk = vec![0u8; (want - *progress).min(64 * 1024)];
                    match self.tcp().send(id, &chunk, now) {
                        Ok(0) => break,
                        Ok(n) => *progress += n,
                        Err(e) if *progress == 0 => return errno(errno_of(e)),
                        Err(_) => return done(*progress as i64),
                    }
                }
                self.drain();
                if *progress == want {
                    done(want as i64)
                } else if s.nonblock {
                    if *progress > 0 {
                        done(*progress as i64)
                    } else {
                        errno("EAGAIN")
                    }
                } else {
                    Ok(Attempt::Block)
                }
            }
            "close" => {
                let now = self.now;
                match s.kind {
                    Kind::Listener(l, _) => self.tcp().close_listener(l, now),
                    Kind::Conn(id) => {
                        if matches!(s.opts.linger, Some((true, 0))) {
                            self.tcp().abort(id, now);
                        } else if matches!(s.opts.linger, Some((true, _))) {
                            return unsupported("close() lingering (SO_LINGER with a time)".into());
                        } else {
                            self.tcp().release(id, now);
                        }
                    }
                    Kind::Fresh => {}
                }
                self.socks.remove(&fd);
                self.drain();
                done(0)
            }
            "shutdown" => {
                let Kind::Conn(id) = s.kind else {
                    return errno("ENOTCONN");
                };
                let how = c.args.get(1).and_then(ident).unwrap_or_default();
                let (rd, wr) = match how.as_str() {
                    "SHUT_RD" => (true, false),
                    "SHUT_WR" => (false, true),
                    "SHUT_RDWR" => (true, true),
                    other => return unsupported(format!("shutdown how {other:?}")),
                };
                if !self.tcp().is_connected(id) && self.tcp().state(id) != State::SynReceived {
                    return errno("ENOTCONN");
                }
                s.rd_shut |= rd;
                if wr && !s.wr_shut {
                    s.wr_shut = true;
                    let now = self.now;
                    self.tcp().shutdown(id, now);
                }
                self.socks.insert(fd, s);
                self.drain();
                done(0)
            }
            "fcntl" => {
                let cmd = c.args.get(1).and_then(ident).unwrap_or_default();
                match cmd.as_str() {
                    "F_SETFL" => {
                        let flags = arg(2).unwrap_or(0);
                        s.nonblock = flags & O_NONBLOCK != 0;
                        self.socks.insert(fd, s);
                        done(0)
                    }
                    "F_GETFL" => done(O_RDWR | if s.nonblock { O_NONBLOCK } else { 0 }),
                    other => unsupported(format!("fcntl {other}")),
                }
            }
            "setsockopt" => self.setsockopt(line, fd, s, c),
            "getsockopt" => self.getsockopt(line, fd, s, c),
            _ => unsupported(format!("system call {name}()")),
        }
    }

    fn setsockopt(&mut self, line: usize, fd: i64, mut s: Sock, c: &Syscall) -> Step<Attempt> {
        let opt = c.args.get(2).and_then(ident).unwrap_or_default();
        let value = c.args.get(3);
        let v = value.and_then(eval);
        let conn = match s.kind {
            Kind::Conn(id) => Some(id),
            _ => None,
        };
        let unsupported = |what: String| Err(Stop::Unsupported(line, what));
        let need = |v: Option<i64>| {
            v.ok_or_else(|| Stop::Error(line, format!("setsockopt {opt}: no integer value")))
        };
        match opt.as_str() {
            "SO_REUSEADDR" | "SO_REUSEPORT" => {}
            "TCP_NODELAY" => s.opts.nodelay = Some(need(v)? != 0),
            "SO_KEEPALIVE" => s.opts.keepalive = need(v)? != 0,
            "TCP_KEEPIDLE" => s.opts.keep_idle = Some(need(v)?.max(1) as u64),
            "TCP_KEEPINTVL" => s.opts.keep_intvl = Some(need(v)?.max(1) as u64),
            "TCP_KEEPCNT" => s.opts.keep_cnt = Some(need(v)?.max(1) as u32),
            "TCP_USER_TIMEOUT" => s.opts.user_timeout_ms = Some(need(v)?.max(0) as u64),
            "SO_LINGER" => {
                let fields = match value {
                    Some(Expr::Struct(f)) => f.clone(),
                    Some(Expr::List(l)) => match l.first() {
                        Some(Expr::Struct(f)) => f.clone(),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                let field = |n: &str| {
                    fields.iter().find_map(|f| match f {
                        Expr::Assign(k, v) if ident(k).as_deref() == Some(n) => eval(v),
                        _ => None,
                    })
                };
                let (Some(on), Some(t)) = (field("onoff"), field("linger")) else {
                    return Err(Stop::Error(
                        line,
                        "SO_LINGER needs {onoff=.., linger=..}".into(),
                    ));
                };
                s.opts.linger = Some((on != 0, t.max(0) as u64));
            }
            "SO_SNDBUF" if conn.is_some() => {
                let b = need(v)?.max(1) as usize;
                s.opts.sndbuf = Some(b);
                if let Some(id) = conn {
                    self.tcp().set_send_buffer(id, 2 * b);
                }
            }
            "TCP_MAXSEG" | "SO_RCVBUF" if conn.is_some() => {
                return unsupported(format!(
                    "setsockopt {opt} on a connected socket (sizes are fixed when a connection opens)"
                ));
            }
            "TCP_MAXSEG" | "SO_RCVBUF" | "SO_SNDBUF" => {
                let v = need(v)?;
                match opt.as_str() {
                    "TCP_MAXSEG" => s.opts.maxseg = Some(v.clamp(88, 65535) as u16),
                    "SO_RCVBUF" => s.opts.rcvbuf = Some(v.max(1) as usize),
                    _ => s.opts.sndbuf = Some(v.max(1) as usize),
                }
                if let Kind::Listener(..) = s.kind {
                    s = self.relisten(line, s)?;
                }
            }
            other => return unsupported(format!("setsockopt {other}")),
        }
        if let Some(id) = conn {
            let o = s.opts.clone();
            self.apply_conn_opts(id, &o);
        }
        self.socks.insert(fd, s);
        self.drain();
        Ok(Attempt::Done(Ok(0)))
    }

    fn getsockopt(&mut self, line: usize, fd: i64, mut s: Sock, c: &Syscall) -> Step<Attempt> {
        let opt = c.args.get(2).and_then(ident).unwrap_or_default();
        let conn = match s.kind {
            Kind::Conn(id) => Some(id),
            _ => None,
        };
        let o = s.opts.clone();
        let value: i64 = match opt.as_str() {
            "SO_ERROR" => {
                let e = conn.and_then(|id| self.tcp().error(id));
                match e {
                    Some(e) if !s.error_taken => {
                        s.error_taken = true;
                        errno_number(errno_of(e))
                    }
                    _ => 0,
                }
            }
            "TCP_MAXSEG" => match conn {
                Some(id) => i64::from(self.tcp().send_mss(id)),
                // Linux: the user's value, or the RFC 9293 §3.7.1 default 536.
                None => i64::from(o.maxseg.unwrap_or(536)),
            },
            "TCP_NODELAY" => i64::from(o.nodelay.unwrap_or(self.config.nodelay)),
            "SO_KEEPALIVE" => i64::from(o.keepalive),
            "TCP_KEEPIDLE" => o.keep_idle.unwrap_or(7200) as i64,
            "TCP_KEEPINTVL" => o.keep_intvl.unwrap_or(75) as i64,
            "TCP_KEEPCNT" => i64::from(o.keep_cnt.unwrap_or(9)),
            "TCP_USER_TIMEOUT" => o.user_timeout_ms.unwrap_or(0) as i64,
            // socket(7): the kernel doubles the value set and getsockopt returns that.
            "SO_SNDBUF" => o.sndbuf.map_or(self.config.send_buffer, |b| 2 * b) as i64,
            "SO_RCVBUF" => o.rcvbuf.map_or(self.config.recv_buffer, |b| 2 * b) as i64,
            other => return Err(Stop::Unsupported(line, format!("getsockopt {other}"))),
        };
        self.socks.insert(fd, s);
        let expected = match c.args.get(3) {
            Some(Expr::List(l)) => l.first().and_then(eval),
            Some(e) => eval(e),
            None => None,
        };
        if let Some(want) = expected {
            if want != value {
                return Err(Stop::Fail(
                    line,
                    format!("getsockopt {opt}: expected [{want}], got [{value}]"),
                ));
            }
        }
        Ok(Attempt::Done(Ok(0)))
    }

    fn revents(&mut self, fd: i64) -> i64 {
        let Some(s) = self.sock(fd) else {
            return POLLNVAL;
        };
        match s.kind {
            Kind::Fresh => POLLOUT | POLLHUP,
            Kind::Listener(l, _) => {
                if self.tcp().listener_ready(l) {
                    POLLIN | POLLRDNORM
                } else {
                    0
                }
            }
            Kind::Conn(id) => {
                let tcp = self.tcp();
                let state = tcp.state(id);
                let err = tcp.error(id).is_some();
                let peer_fin = matches!(
                    state,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                );
                let rcv_shut = peer_fin || s.rd_shut || err;
                let mut m = 0;
                if tcp.recv_ready(id) || rcv_shut {
                    m |= POLLIN | POLLRDNORM;
                }
                if rcv_shut && !err {
                    m |= POLLRDHUP;
                }
                let connected = tcp.is_connected(id);
                if (connected && tcp.send_ready(id)) || s.wr_shut || err {
                    m |= POLLOUT | POLLWRNORM;
                }
                if err && !s.error_taken {
                    m |= POLLERR;
                }
                if err || state == State::Closed || (rcv_shut && s.wr_shut) {
                    m |= POLLHUP;
                }
                m
            }
        }
    }

    /// `progress` keeps the instant (µs) a blocking poll times out, from its first try.
    fn poll(&mut self, line: usize, c: &Syscall, progress: &mut usize) -> Step<Attempt> {
        let Some(Expr::List(entries)) = c.args.first() else {
            return Err(Stop::Error(
                line,
                "poll: expected [{fd=..., events=...}]".into(),
            ));
        };
        let timeout = c.args.get(2).and_then(eval).unwrap_or(0);
        let mut ready = 0;
        let mut mismatch = None;
        for e in entries {
            let Expr::Struct(fields) = e else {
                return Err(Stop::Error(
                    line,
                    "poll: expected {fd=..., events=...}".into(),
                ));
            };
            let field = |n: &str| {
                fields.iter().find_map(|f| match f {
                    Expr::Assign(k, v) if ident(k).as_deref() == Some(n) => Some((**v).clone()),
                    _ => None,
                })
            };
            let fd = field("fd").as_ref().and_then(eval).unwrap_or(-1);
            let events = field("events").as_ref().and_then(eval).unwrap_or(0);
            let got = self.revents(fd) & (events | POLLERR | POLLHUP | POLLNVAL);
            if got != 0 {
                ready += 1;
            }
            if let Some(want) = field("revents").as_ref().and_then(eval) {
                if want != got && mismatch.is_none() {
                    mismatch = Some(format!(
                        "poll fd {fd}: expected revents={}, got revents={}",
                        poll_names(want),
                        poll_names(got)
                    ));
                }
            }
        }
        if ready == 0 && timeout != 0 {
            if *progress == 0 {
                // A negative timeout waits forever.
                let wait = u64::try_from(timeout).map_or(u64::MAX / 2, |ms| ms * 1000);
                *progress = (self.now.total_micros().saturating_add(wait)) as usize;
            }
            if (self.now.total_micros() as usize) < *progress {
                return Ok(Attempt::Block);
            }
        }
        if let Some(m) = mismatch {
            return Err(Stop::Fail(line, m));
        }
        Ok(Attempt::Done(Ok(ready)))
    }
}

const O_RDWR: i64 = 2;
const O_NONBLOCK: i64 = 0o4000;
const POLLIN: i64 = 0x1;
const POLLPRI: i64 = 0x2;
const POLLOUT: i64 = 0x4;
const POLLERR: i64 = 0x8;
const POLLHUP: i64 = 0x10;
const POLLNVAL: i64 = 0x20;
const POLLRDNORM: i64 = 0x40;
const POLLRDBAND: i64 = 0x80;
const POLLWRNORM: i64 = 0x100;
const POLLWRBAND: i64 = 0x200;
const POLLRDHUP: i64 = 0x2000;

const POLL_NAMES: [(&str, i64); 11] = [
    ("POLLIN", POLLIN),
    ("POLLPRI", POLLPRI),
    ("POLLOUT", POLLOUT),
    ("POLLERR", POLLERR),
    ("POLLHUP", POLLHUP),
    ("POLLNVAL", POLLNVAL),
    ("POLLRDNORM", POLLRDNORM),
    ("POLLRDBAND", POLLRDBAND),
    ("POLLWRNORM", POLLWRNORM),
    ("POLLWRBAND", POLLWRBAND),
    ("POLLRDHUP", POLLRDHUP),
];

fn poll_names(v: i64) -> String {
    let names: Vec<&str> = POLL_NAMES
        .iter()
        .filter(|(_, b)| v & b != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

/// The value of a named constant the scripts use.
fn constant(name: &str) -> Option<i64> {
    if let Some((_, v)) = POLL_NAMES.iter().find(|(n, _)| *n == name) {
        return Some(*v);
    }
    Some(match name {
        "O_RDWR" => O_RDWR,
        "O_NONBLOCK" => O_NONBLOCK,
        "O_RDONLY" => 0,
        "O_WRONLY" => 1,
        "AF_INET" | "PF_INET" => 2,
        "SOCK_STREAM" => 1,
        "IPPROTO_TCP" | "SOL_TCP" => 6,
        "SOL_SOCKET" => 1,
        "SHUT_RD" => 0,
        "SHUT_WR" => 1,
        "SHUT_RDWR" => 2,
        "MSG_DONTWAIT" => 0x40,
        e if e.starts_with('E') => match errno_number(e) {
            0 => return None,
            n => n,
        },
        _ => return None,
    })
}

/// An integer expression: a number, a known constant, `A|B`, or `[x]`.
fn eval(e: &Expr) -> Option<i64> {
    match e {
        Expr::Int(v) => Some(*v),
        Expr::Ident(n) => constant(n),
        Expr::Or(parts) => parts.iter().try_fold(0, |acc, p| Some(acc | eval(p)?)),
        Expr::List(l) if l.len() == 1 => eval(&l[0]),
        _ => None,
    }
}

fn ident(e: &Expr) -> Option<String> {
    match e {
        Expr::Ident(n) => Some(n.clone()),
        _ => None,
    }
}

fn normalize_errno(e: &str) -> &str {
    match e {
        "EWOULDBLOCK" => "EAGAIN",
        other => other,
    }
}

fn errno_of(e: TcpError) -> &'static str {
    match e {
        TcpError::ConnectionReset => "ECONNRESET",
        TcpError::ConnectionRefused => "ECONNREFUSED",
        TcpError::ConnectionAborted => "ECONNABORTED",
        TcpError::TimedOut => "ETIMEDOUT",
        TcpError::AddrInUse => "EADDRINUSE",
        TcpError::AddrNotAvailable => "EADDRNOTAVAIL",
        TcpError::NotConnected => "ENOTCONN",
        TcpError::WouldBlock => "EAGAIN",
        TcpError::BrokenPipe => "EPIPE",
        TcpError::TooManyConnections => "ENOBUFS",
        TcpError::InvalidHandle => "EBADF",
    }
}

/// Linux errno numbers, for SO_ERROR.
fn errno_number(e: &str) -> i64 {
    match e {
        "EPIPE" => 32,
        "ECONNABORTED" => 103,
        "ECONNRESET" => 104,
        "ENOBUFS" => 105,
        "ENOTCONN" => 107,
        "ETIMEDOUT" => 110,
        "ECONNREFUSED" => 111,
        "EADDRINUSE" => 98,
        "EADDRNOTAVAIL" => 99,
        "EAGAIN" | "EWOULDBLOCK" => 11,
        "EFAULT" => 14,
        "EBADF" => 9,
        "EINVAL" => 22,
        "EINPROGRESS" => 115,
        "EALREADY" => 114,
        "EISCONN" => 106,
        _ => 0,
    }
}

fn flags_of(s: &str) -> Flags {
    Flags {
        syn: s.contains('S'),
        fin: s.contains('F'),
        rst: s.contains('R'),
        psh: s.contains('P'),
        ack: s.contains('.'),
        urg: s.contains('U'),
    }
}

/// A script packet line, as written.
fn show_spec(p: &PacketSpec) -> String {
    let mut s = format!(
        "{} {} {}:{}({})",
        if p.inbound { '<' } else { '>' },
        flags_of(&p.flags),
        p.seq,
        p.seq.wrapping_add(p.len),
        p.len
    );
    if let Some(a) = p.ack {
        s += &format!(" ack {a}");
    }
    if let Some(w) = p.win {
        s += &format!(" win {w}");
    }
    if let Some(opts) = &p.options {
        let parts: Vec<String> = opts
            .iter()
            .map(|o| match o {
                TcpOpt::Mss(m) => format!("mss {m}"),
                TcpOpt::Wscale(w) => format!("wscale {w}"),
                TcpOpt::SackOk => "sackOK".into(),
                TcpOpt::Ts(v, e) => format!("TS val {v} ecr {e}"),
                TcpOpt::Sack(b) => {
                    let b: Vec<String> = b.iter().map(|(x, y)| format!("{x}:{y}")).collect();
                    format!("sack {}", b.join(" "))
                }
                TcpOpt::Nop => "nop".into(),
                TcpOpt::Eol => "eol".into(),
            })
            .collect();
        s += &format!(" <{}>", parts.join(","));
    }
    s
}

/// Split a shell command into words: double quotes group, `$((a*b))` products are
/// evaluated (the only arithmetic the sysctl lines of scripts use).
fn shell_words(c: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in c.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
        .into_iter()
        .map(|w| {
            let mut out = w.clone();
            while let Some(a) = out.find("$((") {
                let Some(len) = out[a..].find("))") else {
                    break;
                };
                let expr = &out[a + 3..a + len];
                let product = expr
                    .split('*')
                    .map(|f| f.trim().parse::<u64>().ok())
                    .try_fold(1u64, |acc, f| Some(acc.saturating_mul(f?)));
                match product {
                    Some(p) => out.replace_range(a..a + len + 2, &p.to_string()),
                    None => break,
                }
            }
            out
        })
        .collect()
}
