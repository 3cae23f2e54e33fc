//! The script model and its parser: a script is a list of timed events — inbound and
//! outbound packets, system calls, shell lines and code blocks.
//!
//! Constructs outside the supported subset (ECN marks, UDP, unknown TCP options...) do not
//! stop the parse: they become [`EventKind::Unsupported`] events, so a script runs up to
//! them and ends UNSUPPORTED there, naming the construct.

use super::lexer::{lex, Tok, Token};

/// A parsed script.
#[derive(Clone, Debug)]
pub struct Script {
    /// `--name=value` lines (packetdrill's command-line options, given in the script).
    pub options: Vec<(usize, String, String)>,
    /// The events in script order.
    pub events: Vec<Event>,
}

/// When an event happens.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// `*`: any time.
    Any,
    /// `1.5`: seconds since the script started.
    Absolute,
    /// `+0.1`: seconds after the previous event.
    Relative,
}

/// An event's time: `start` and, for a `start...end` range, `end` (microseconds).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Time {
    /// Any, absolute or relative.
    pub kind: TimeKind,
    /// Start, in microseconds.
    pub start: i64,
    /// End of a `...` range, in microseconds (same base as `start`).
    pub end: Option<i64>,
}

/// One line (or several, for a long call) of a script.
#[derive(Clone, Debug)]
pub struct Event {
    /// Line the event starts on.
    pub line: usize,
    /// When it happens.
    pub time: Time,
    /// What happens.
    pub kind: EventKind,
}

/// What an event does.
#[derive(Clone, Debug)]
pub enum EventKind {
    /// A TCP segment, inbound (`<`, injected) or outbound (`>`, expected).
    Packet(PacketSpec),
    /// An inbound ICMP error quoting one of our segments.
    Icmp(IcmpSpec),
    /// A system call and its expected result.
    Syscall(Syscall),
    /// A backtick shell line (never run).
    Shell(String),
    /// A `%{ }%` code block (Python in packetdrill; never run).
    Code(String),
    /// A construct outside the supported subset, named.
    Unsupported(String),
}

/// A TCP option as a script writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// `mss N`
    Mss(u16),
    /// `wscale N`
    Wscale(u8),
    /// `sackOK`
    SackOk,
    /// `TS val V ecr E`
    Ts(u32, u32),
    /// `sack a:b c:d ...`
    Sack(Vec<(u32, u32)>),
    /// `nop`
    Nop,
    /// `eol`
    Eol,
}

/// A TCP packet line: `< S. 0:0(0) ack 1 win 100 <mss 1460>`.
#[derive(Clone, Debug)]
pub struct PacketSpec {
    /// `<`: from the peer to us.
    pub inbound: bool,
    /// Flag letters (`S`, `F`, `R`, `P`, `.`, `U`).
    pub flags: String,
    /// Relative start sequence number.
    pub seq: u32,
    /// Payload length.
    pub len: u32,
    /// Relative acknowledgment number.
    pub ack: Option<u32>,
    /// Window field; None = not checked (outbound).
    pub win: Option<u32>,
    /// Options; None for `<...>` or no list (outbound: not checked; inbound: none).
    pub options: Option<Vec<TcpOpt>>,
}

/// An ICMP error line: `< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]`.
#[derive(Clone, Debug)]
pub struct IcmpSpec {
    /// `unreachable`, `time_exceeded`, `source_quench`, `parameter_problem`.
    pub kind: String,
    /// The code name, if any (`frag_needed`, `port_unreachable`...).
    pub code: Option<String>,
    /// `mtu N` for frag_needed.
    pub mtu: Option<u16>,
    /// Relative sequence number of the quoted segment.
    pub seq: u32,
}

/// A system-call argument or result.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `...`: anything.
    Ellipsis,
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
    /// A name: `SOL_SOCKET`, `O_NONBLOCK`.
    Ident(String),
    /// `name(args)`.
    Call(String, Vec<Expr>),
    /// `[a, b]`: a pointer to a value or array.
    List(Vec<Expr>),
    /// `{a, b}`: a struct.
    Struct(Vec<Expr>),
    /// `A|B`.
    Or(Vec<Expr>),
    /// `name=value` inside a struct.
    Assign(Box<Expr>, Box<Expr>),
}

/// `name(args) = ret [ERRNO (text)]`.
#[derive(Clone, Debug)]
pub struct Syscall {
    /// The call's name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// The expected return value.
    pub ret: Expr,
    /// The expected errno name, when `ret` is -1.
    pub errno: Option<String>,
}

type PResult<T> = Result<T, (usize, String)>;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Nesting of (), [] and {}: inside them `=` is a field assignment, not the result.
    depth: usize,
}

/// Parse a whole script.
pub fn parse(text: &str) -> PResult<Script> {
    // Option lines are taken out first (keeping line numbers): their values (addresses,
    // names) are not tokens of the event language.
    let mut options = Vec::new();
    let mut rest = String::with_capacity(text.len());
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if let Some(opt) = t.strip_prefix("--") {
            let opt = opt.split("//").next().unwrap_or("").trim();
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            options.push((i + 1, k.trim().to_string(), v.trim().to_string()));
        } else {
            rest.push_str(l);
        }
        rest.push('\n');
    }
    let toks = lex(&rest)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let mut events = Vec::new();
    while p.pos < p.toks.len() {
        events.push(p.event()?);
    }
    Ok(Script { options, events })
}

fn num(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    s.parse().ok()
}

fn int(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    s.parse().ok()
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(0, |t| t.line)
    }

    fn next(&mut self) -> PResult<Tok> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or((self.line(), "unexpected end of script".to_string()))?;
        self.pos += 1;
        Ok(t.tok.clone())
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn expect_punct(&mut self, c: char) -> PResult<()> {
        let line = self.line();
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            other => Err((line, format!("expected '{c}', found {}", show(&other)))),
        }
    }

    fn number(&mut self) -> PResult<f64> {
        let line = self.line();
        match self.next()? {
            Tok::Num(s) => num(&s).ok_or((line, format!("bad number {s}"))),
            other => Err((line, format!("expected a number, found {}", show(&other)))),
        }
    }

    fn u32_num(&mut self) -> PResult<u32> {
        let line = self.line();
        let v = self.number()?;
        if v < 0.0 || v > u32::MAX as f64 || v.fract() != 0.0 {
            return Err((line, format!("{v} is not a 32-bit number")));
        }
        Ok(v as u32)
    }

    /// Skip the rest of the current line (after an unsupported construct).
    fn skip_line(&mut self, line: usize) {
        while self.pos < self.toks.len() && self.toks[self.pos].line == line {
            self.pos += 1;
        }
    }

    fn time(&mut self) -> PResult<Time> {
        let line = self.line();
        if matches!(self.peek(), Some(Tok::Shell(_)) | Some(Tok::Code(_))) {
            // Shell lines and code blocks may come without a time: right away.
            return Ok(Time {
                kind: TimeKind::Relative,
                start: 0,
                end: None,
            });
        }
        if self.is_punct('*') {
            self.pos += 1;
            return Ok(Time {
                kind: TimeKind::Any,
                start: 0,
                end: None,
            });
        }
        let mut kind = TimeKind::Absolute;
        if self.is_punct('+') {
            self.pos += 1;
            kind = TimeKind::Relative;
        }
        if !matches!(self.peek(), Some(Tok::Num(_))) {
            let found = self.peek().map_or("end of script".to_string(), show);
            return Err((line, format!("expected an event time, found {found}")));
        }
        let start = (self.number()? * 1e6).round() as i64;
        let mut end = None;
        // `a...b` for a blocking call's return; `a~b` for a packet in a window of time.
        if self.peek() == Some(&Tok::Ellipsis) || self.is_punct('~') {
            self.pos += 1;
            if self.is_punct('+') {
                self.pos += 1;
            }
            end = Some((self.number()? * 1e6).round() as i64);
        }
        Ok(Time { kind, start, end })
    }

    fn event(&mut self) -> PResult<Event> {
        let time = self.time()?;
        let line = self.line();
        let kind = match self.peek().cloned() {
            Some(Tok::Shell(s)) => {
                self.pos += 1;
                EventKind::Shell(s)
            }
            Some(Tok::Code(s)) => {
                self.pos += 1;
                EventKind::Code(s)
            }
            Some(Tok::Punct(c)) if c == '<' || c == '>' => {
                self.pos += 1;
                self.packet(c == '<', line)?
            }
            Some(Tok::Ident(name)) if self.peek_at(1) == Some(&Tok::Punct('(')) => {
                self.pos += 1;
                EventKind::Syscall(self.syscall(name)?)
            }
            Some(other) => return Err((line, format!("unexpected {}", show(&other)))),
            None => return Err((line, "an event time with no event".into())),
        };
        Ok(Event { line, time, kind })
    }

    fn packet(&mut self, inbound: bool, line: usize) -> PResult<EventKind> {
        match self.peek().cloned() {
            Some(Tok::Ident(w)) if w == "icmp" => {
                self.pos += 1;
                return self.icmp(line);
            }
            Some(Tok::Ident(w)) if w == "udp" => {
                self.skip_line(line);
                return Ok(EventKind::Unsupported("UDP packets".into()));
            }
            Some(Tok::Punct('[')) => {
                self.skip_line(line);
                return Ok(EventKind::Unsupported(
                    "IP-level annotations ([ect0], [noecn]...): ECN is not implemented".into(),
                ));
            }
            _ => {}
        }
        // Flags: letters and dots up to the sequence number.
        let mut flags = String::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Ident(s)) if self.toks[self.pos].line == line => {
                    flags.push_str(&s);
                    self.pos += 1;
                }
                Some(Tok::Punct(c))
                    if (c == '.' || c == '-') && self.toks[self.pos].line == line =>
                {
                    if c == '.' {
                        flags.push('.');
                    }
                    self.pos += 1;
                }
                _ => break,
            }
        }
        if let Some(bad) = flags.chars().find(|c| !"SFRP.U".contains(*c)) {
            self.skip_line(line);
            let why = match bad {
                'E' | 'W' | 'A' => "ECN flags (ECE, CWR, AE): ECN is not implemented".to_string(),
                other => format!("TCP flag {other:?}"),
            };
            return Ok(EventKind::Unsupported(why));
        }
        let seq = self.u32_num()?;
        self.expect_punct(':')?;
        let end = self.u32_num()?;
        self.expect_punct('(')?;
        let len = self.u32_num()?;
        self.expect_punct(')')?;
        if end.wrapping_sub(seq) != len {
            return Err((line, format!("inconsistent range {seq}:{end}({len})")));
        }
        let mut spec = PacketSpec {
            inbound,
            flags,
            seq,
            len,
            ack: None,
            win: None,
            options: None,
        };
        while self.pos < self.toks.len() && self.toks[self.pos].line == line {
            match self.next()? {
                Tok::Ident(w) if w == "ack" => spec.ack = Some(self.u32_num()?),
                Tok::Ident(w) if w == "win" => spec.win = Some(self.u32_num()?),
                Tok::Punct('<') => {
                    if self.peek() == Some(&Tok::Ellipsis) {
                        self.pos += 1;
                        self.expect_punct('>')?;
                        continue;
                    }
                    match self.tcp_options()? {
                        Ok(opts) => spec.options = Some(opts),
                        Err(why) => {
                            self.skip_line(line);
                            return Ok(EventKind::Unsupported(why));
                        }
                    }
                }
                other => {
                    self.skip_line(line);
                    return Ok(EventKind::Unsupported(format!(
                        "packet field {}",
                        show(&other)
                    )));
                }
            }
        }
        if spec.options.is_none() && inbound {
            spec.options = Some(Vec::new());
        }
        Ok(EventKind::Packet(spec))
    }

    /// The option list after `<`, through `>`. The inner Err names an unsupported option.
    fn tcp_options(&mut self) -> PResult<Result<Vec<TcpOpt>, String>> {
        let mut opts = Vec::new();
        if self.is_punct('>') {
            self.pos += 1;
            return Ok(Ok(opts));
        }
        loop {
            let line = self.line();
            let name = match self.next()? {
                Tok::Ident(n) => n,
                other => {
                    return Err((
                        line,
                        format!("expected a TCP option, found {}", show(&other)),
                    ))
                }
            };
            let opt = match name.as_str() {
                "mss" => TcpOpt::Mss(self.u32_num()? as u16),
                "wscale" => TcpOpt::Wscale(self.u32_num()? as u8),
                "sackOK" => TcpOpt::SackOk,
                "nop" => TcpOpt::Nop,
                "eol" => TcpOpt::Eol,
                "TS" => {
                    let mut val = 0;
                    let mut ecr = 0;
                    for _ in 0..2 {
                        match self.next()? {
                            Tok::Ident(w) if w == "val" => val = self.u32_num()?,
                            Tok::Ident(w) if w == "ecr" => ecr = self.u32_num()?,
                            other => {
                                return Err((
                                    line,
                                    format!("TS val V ecr E: found {}", show(&other)),
                                ))
                            }
                        }
                    }
                    TcpOpt::Ts(val, ecr)
                }
                "sack" => {
                    let mut blocks = Vec::new();
                    while matches!(self.peek(), Some(Tok::Num(_))) {
                        let a = self.u32_num()?;
                        self.expect_punct(':')?;
                        let b = self.u32_num()?;
                        blocks.push((a, b));
                    }
                    TcpOpt::Sack(blocks)
                }
                other => {
                    return Ok(Err(format!("TCP option {other:?}")));
                }
            };
            opts.push(opt);
            let line = self.line();
            match self.next()? {
                Tok::Punct(',') => continue,
                Tok::Punct('>') => return Ok(Ok(opts)),
                other => {
                    return Err((line, format!("expected ',' or '>', found {}", show(&other))))
                }
            }
        }
    }

    fn icmp(&mut self, line: usize) -> PResult<EventKind> {
        let mut words = Vec::new();
        let mut mtu = None;
        while let Some(Tok::Ident(w)) = self.peek().cloned() {
            self.pos += 1;
            if w == "mtu" {
                mtu = Some(self.u32_num()? as u16);
            } else {
                words.push(w);
            }
        }
        if !self.is_punct('[') || words.is_empty() {
            self.skip_line(line);
            return Ok(EventKind::Unsupported(
                "ICMP line without a quoted [seq:end(len)]".into(),
            ));
        }
        self.pos += 1;
        if !matches!(self.peek(), Some(Tok::Num(_))) {
            self.skip_line(line);
            return Ok(EventKind::Unsupported(
                "ICMP quoting a non-TCP packet".into(),
            ));
        }
        let seq = self.u32_num()?;
        self.expect_punct(':')?;
        self.u32_num()?;
        self.expect_punct('(')?;
        self.u32_num()?;
        self.expect_punct(')')?;
        self.expect_punct(']')?;
        Ok(EventKind::Icmp(IcmpSpec {
            kind: words[0].clone(),
            code: words.get(1).cloned(),
            mtu,
            seq,
        }))
    }

    fn syscall(&mut self, name: String) -> PResult<Syscall> {
        self.expect_punct('(')?;
        let args = self.args(')')?;
        self.expect_punct('=')?;
        let ret = self.expr()?;
        let mut errno = None;
        if let Some(Tok::Ident(e)) = self.peek().cloned() {
            if e.starts_with('E')
                && e.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                self.pos += 1;
                errno = Some(e);
                if self.is_punct('(') {
                    // The errno's text, e.g. `(Resource temporarily unavailable)`.
                    self.skip_parens()?;
                }
            }
        }
        if errno.is_none() && self.is_punct('(') {
            // A note after the result, e.g. `= 0x2 (flags O_RDWR)`.
            self.skip_parens()?;
        }
        Ok(Syscall {
            name,
            args,
            ret,
            errno,
        })
    }

    /// Skip a balanced `( ... )`.
    fn skip_parens(&mut self) -> PResult<()> {
        let mut depth = 0;
        loop {
            match self.next()? {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Comma-separated expressions through `close`.
    fn args(&mut self, close: char) -> PResult<Vec<Expr>> {
        self.depth += 1;
        let r = self.args_inner(close);
        self.depth -= 1;
        r
    }

    fn args_inner(&mut self, close: char) -> PResult<Vec<Expr>> {
        let mut out = Vec::new();
        if self.is_punct(close) {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            let line = self.line();
            match self.next()? {
                Tok::Punct(',') => {}
                Tok::Punct(c) if c == close => return Ok(out),
                other => {
                    return Err((
                        line,
                        format!("expected ',' or '{close}', found {}", show(&other)),
                    ))
                }
            }
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        let mut parts = vec![self.unary()?];
        while self.is_punct('|') {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        let e = if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Ellipsis)
        } else {
            Expr::Or(parts)
        };
        // `name=value` inside structs; a call's `= ret` is consumed by the caller, which
        // never calls expr() right before it.
        if self.is_punct('=') && self.depth > 0 {
            self.pos += 1;
            let v = self.expr()?;
            return Ok(Expr::Assign(Box::new(e), Box::new(v)));
        }
        Ok(e)
    }

    fn unary(&mut self) -> PResult<Expr> {
        let line = self.line();
        match self.next()? {
            Tok::Punct('-') => match self.unary()? {
                Expr::Int(v) => Ok(Expr::Int(-v)),
                other => Err((line, format!("cannot negate {other:?}"))),
            },
            Tok::Ellipsis => Ok(Expr::Ellipsis),
            Tok::Num(s) => int(&s)
                .map(Expr::Int)
                .ok_or((line, format!("expected an integer, found {s}"))),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Ident(n) => {
                if self.is_punct('(') {
                    self.pos += 1;
                    let args = self.args(')')?;
                    Ok(Expr::Call(n, args))
                } else {
                    Ok(Expr::Ident(n))
                }
            }
            Tok::Punct('[') => Ok(Expr::List(self.args(']')?)),
            Tok::Punct('{') => Ok(Expr::Struct(self.args('}')?)),
            other => Err((
                line,
                format!("unexpected {} in an expression", show(&other)),
            )),
        }
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Num(s) | Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Ellipsis => "'...'".into(),
        Tok::Shell(_) => "a shell command".into(),
        Tok::Code(_) => "a code block".into(),
        Tok::Punct(c) => format!("'{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_calls_and_times() {
        let s = parse(
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
             +0...0.2 accept(3, ..., ...) = 4\n\
             +.1 < S. 0:0(0) ack 1 win 20000 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>\n\
             +0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001 3001:4001>\n\
             +0 read(4, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)\n\
             +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1\n",
        )
        .unwrap();
        assert_eq!(s.events.len(), 6);
        assert_eq!(s.events[1].time.end, Some(200_000));
        let EventKind::Packet(p) = &s.events[2].kind else {
            panic!()
        };
        assert_eq!(p.flags, "S.");
        assert_eq!(p.ack, Some(1));
        assert_eq!(p.win, Some(20000));
        assert_eq!(
            p.options.as_deref().unwrap()[2],
            TcpOpt::Ts(100, 0),
            "{:?}",
            p.options
        );
        let EventKind::Packet(p) = &s.events[3].kind else {
            panic!()
        };
        assert_eq!(
            p.options.as_deref().unwrap()[2],
            TcpOpt::Sack(vec![(1001, 2001), (3001, 4001)])
        );
        let EventKind::Syscall(c) = &s.events[4].kind else {
            panic!()
        };
        assert_eq!(c.ret, Expr::Int(-1));
        assert_eq!(c.errno.as_deref(), Some("EAGAIN"));
        let EventKind::Syscall(c) = &s.events[5].kind else {
            panic!()
        };
        assert!(
            matches!(&c.args[0], Expr::List(l) if matches!(&l[0], Expr::Struct(f) if f.len() == 3))
        );
    }

    #[test]
    fn unsupported_constructs_are_events_not_errors() {
        let s = parse("+0 < [ect0] S 0:0(0) win 1\n+0 < S 0:0(0) win 1 <FO abcd>\n+0 close(3) = 0")
            .unwrap();
        assert!(matches!(s.events[0].kind, EventKind::Unsupported(_)));
        assert!(matches!(s.events[1].kind, EventKind::Unsupported(_)));
        assert!(matches!(s.events[2].kind, EventKind::Syscall(_)));
        assert!(parse("+0 < S 0:5(0) win 1").is_err());
    }
}
