//! TCP segments: validated, typed, parsed once at the edge (RFC 9293 §3.1).
//!
//! etherparse's [`TcpHeaderSlice`] reads the fixed header fields; this module owns the
//! validation (length, data offset, checksum over the IPv4 or IPv6 pseudo-header, option syntax)
//! and turns the bytes into a [`Segment`] the state machine can use without ever looking
//! at raw offsets again. [`Segment::emit`] is the inverse.

use std::fmt;
use std::net::IpAddr;

use etherparse::TcpHeaderSlice;

use super::seq::SeqNum;

/// Length of the fixed TCP header, without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header: data offset 15 words.
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;
/// Largest window-scale shift a peer may use (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// IP protocol number of TCP, for the pseudo-header.
const PROTO_TCP: u8 = 6;

// Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WINDOW_SCALE: u8 = 3;
const OPT_SACK_PERMITTED: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TIMESTAMPS: u8 = 8;

/// The control bits of a segment (RFC 9293 §3.1). ECN bits (CWR, ECE) are not used.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Flags {
    /// FIN: no more data from sender.
    pub fin: bool,
    /// SYN: synchronize sequence numbers.
    pub syn: bool,
    /// RST: reset the connection.
    pub rst: bool,
    /// PSH: push function.
    pub psh: bool,
    /// ACK: the acknowledgment field is significant.
    pub ack: bool,
    /// URG: the urgent pointer field is significant.
    pub urg: bool,
}

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags {
        fin: false,
        syn: false,
        rst: false,
        psh: false,
        ack: false,
        urg: false,
    };
    /// SYN alone (an active open).
    pub const SYN: Flags = Flags {
        syn: true,
        ..Flags::NONE
    };
    /// SYN+ACK (the reply to a SYN).
    pub const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        ..Flags::NONE
    };
    /// A bare ACK.
    pub const ACK: Flags = Flags {
        ack: true,
        ..Flags::NONE
    };
    /// PSH+ACK (data).
    pub const PSH_ACK: Flags = Flags {
        psh: true,
        ack: true,
        ..Flags::NONE
    };
    /// FIN+ACK.
    pub const FIN_ACK: Flags = Flags {
        fin: true,
        ack: true,
        ..Flags::NONE
    };
    /// RST alone.
    pub const RST: Flags = Flags {
        rst: true,
        ..Flags::NONE
    };
    /// RST+ACK.
    pub const RST_ACK: Flags = Flags {
        rst: true,
        ack: true,
        ..Flags::NONE
    };

    /// The flags byte as on the wire (byte 13 of the header).
    pub fn to_byte(self) -> u8 {
        u8::from(self.fin)
            | u8::from(self.syn) << 1
            | u8::from(self.rst) << 2
            | u8::from(self.psh) << 3
            | u8::from(self.ack) << 4
            | u8::from(self.urg) << 5
    }

    /// Flags from the wire byte; CWR/ECE are ignored.
    pub fn from_byte(b: u8) -> Flags {
        Flags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            psh: b & 0x08 != 0,
            ack: b & 0x10 != 0,
            urg: b & 0x20 != 0,
        }
    }
}

impl fmt::Display for Flags {
    /// tcpdump style: `S`, `S.`, `.`, `P.`, `F.`, `R`, `R.`, `FP.`; `.` stands for ACK.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(6);
        if self.syn {
            s.push('S');
        }
        if self.fin {
            s.push('F');
        }
        if self.rst {
            s.push('R');
        }
        if self.psh {
            s.push('P');
        }
        if self.urg {
            s.push('U');
        }
        if self.ack {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        f.write_str(&s)
    }
}

/// The TCP options we understand (RFC 9293 §3.2, RFC 7323, RFC 2018). Unknown options are
/// skipped when parsing.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TcpOptions {
    /// Maximum segment size the sender can receive (only meaningful on SYNs).
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2), clamped to 14 when parsed.
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018 §2), only on SYNs.
    pub sack_permitted: bool,
    /// Timestamps (TSval, TSecr) (RFC 7323 §3).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks as (left edge, right edge) (RFC 2018 §3); at most 4 on the wire.
    pub sack_blocks: Vec<(SeqNum, SeqNum)>,
}

impl TcpOptions {
    /// Options encoded as on the wire, padded to a multiple of 4 bytes, at most 40 bytes.
    /// SACK blocks that do not fit are left out (RFC 2018 §3: send as many as fit).
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if let Some(mss) = self.mss {
            out.push(OPT_MSS);
            out.push(4);
            out.extend_from_slice(&mss.to_be_bytes());
        }
        if let Some(ws) = self.window_scale {
            // NOP first keeps the following options 4-byte aligned, as every stack does.
            out.extend_from_slice(&[OPT_NOP, OPT_WINDOW_SCALE, 3, ws]);
        }
        if self.sack_permitted {
            out.extend_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2]);
        }
        if let Some((val, ecr)) = self.timestamps {
            out.extend_from_slice(&[OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10]);
            out.extend_from_slice(&val.to_be_bytes());
            out.extend_from_slice(&ecr.to_be_bytes());
        }
        if !self.sack_blocks.is_empty() {
            let used = out.len() - start;
            // Two NOPs + kind + length, then 8 bytes per block.
            let room = MAX_OPTIONS_LEN.saturating_sub(used + 4) / 8;
            let n = self.sack_blocks.len().min(room).min(4);
            if n > 0 {
                out.extend_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK]);
                // n <= 4, so 2 + 8n <= 34 fits a u8.
                out.push(2 + 8 * n as u8);
                for (l, r) in self.sack_blocks.iter().take(n) {
                    out.extend_from_slice(&l.0.to_be_bytes());
                    out.extend_from_slice(&r.0.to_be_bytes());
                }
            }
        }
        // Pad with End-of-Option-List zeros to a 32-bit boundary (RFC 9293 §3.1).
        while !(out.len() - start).is_multiple_of(4) {
            out.push(OPT_END);
        }
    }

    /// Parse the option bytes of a header (RFC 9293 §3.2): End and NOP are single bytes,
    /// every other option is kind, length, value. Unknown kinds are skipped by their
    /// length; a length that is impossible (< 2, past the end, or wrong for a known kind)
    /// makes the segment invalid (RFC 9293 §3.1, MUST-7: be prepared for illegal lengths).
    /// Every field of `self` is overwritten; its SACK block vector is reused.
    fn parse_into(&mut self, mut bytes: &[u8]) -> Result<(), SegmentError> {
        let opts = self;
        opts.mss = None;
        opts.window_scale = None;
        opts.sack_permitted = false;
        opts.timestamps = None;
        opts.sack_blocks.clear();
        while let Some((&kind, rest)) = bytes.split_first() {
            match kind {
                OPT_END => break,
                OPT_NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.first() else {
                return Err(SegmentError::OptionTruncated { kind });
            };
            let len = usize::from(len);
            if len < 2 {
                return Err(SegmentError::BadOptionLength { kind, len });
            }
            let Some(body) = bytes.get(2..len) else {
                return Err(SegmentError::OptionTruncated { kind });
            };
            let bad = || SegmentError::BadOptionLength { kind, len };
            match kind {
                OPT_MSS => {
                    let v: [u8; 2] = body.try_into().map_err(|_| bad())?;
                    opts.mss = Some(u16::from_be_bytes(v));
                }
                OPT_WINDOW_SCALE => {
                    let [shift]: [u8; 1] = body.try_into().map_err(|_| bad())?;
                    // RFC 7323 §2.3: a shift above 14 is used as 14 (and logged).
                    if shift > MAX_WINDOW_SCALE {
                        log::debug!("window scale {shift} > 14, using 14 (RFC 7323 §2.3)");
                    }
                    opts.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
                }
                OPT_SACK_PERMITTED => {
                    if !body.is_empty() {
                        return Err(bad());
                    }
                    opts.sack_permitted = true;
                }
                OPT_TIMESTAMPS => {
                    let v: [u8; 8] = body.try_into().map_err(|_| bad())?;
                    let (a, b) = v.split_at(4);
                    let val = u32::from_be_bytes(a.try_into().map_err(|_| bad())?);
                    let ecr = u32::from_be_bytes(b.try_into().map_err(|_| bad())?);
                    opts.timestamps = Some((val, ecr));
                }
                OPT_SACK => {
                    if body.is_empty() || body.len() % 8 != 0 || body.len() > 32 {
                        return Err(bad());
                    }
                    opts.sack_blocks.clear();
                    for block in body.chunks_exact(8) {
                        let (l, r) = block.split_at(4);
                        let l = u32::from_be_bytes(l.try_into().map_err(|_| bad())?);
                        let r = u32::from_be_bytes(r.try_into().map_err(|_| bad())?);
                        opts.sack_blocks.push((SeqNum(l), SeqNum(r)));
                    }
                }
                _ => {
                    // Unknown option: skip it by its length (RFC 9293 §3.2, MUST-6).
                }
            }
            bytes = bytes.get(len..).unwrap_or(&[]);
        }
        Ok(())
    }
}

impl fmt::Display for TcpOptions {
    /// tcpdump style: `<mss 1460,nop,wscale 7,sackOK,TS val 1 ecr 0>`-ish (no nops).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = self.mss {
            parts.push(format!("mss {m}"));
        }
        if let Some(w) = self.window_scale {
            parts.push(format!("wscale {w}"));
        }
        if self.sack_permitted {
            parts.push("sackOK".to_string());
        }
        if let Some((v, e)) = self.timestamps {
            parts.push(format!("TS val {v} ecr {e}"));
        }
        if !self.sack_blocks.is_empty() {
            let blocks: Vec<String> = self
                .sack_blocks
                .iter()
                .map(|(l, r)| format!("{{{l}:{r}}}"))
                .collect();
            parts.push(format!("sack {}", blocks.join("")));
        }
        if parts.is_empty() {
            Ok(())
        } else {
            write!(f, "<{}>", parts.join(","))
        }
    }
}

/// Why a segment was dropped at the edge. One variant per reason, for counters and logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SegmentError {
    /// Fewer than 20 bytes: not even a fixed header.
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// More bytes than an IPv4 packet can carry; the pseudo-header length would overflow.
    TooLong {
        /// Bytes received.
        len: usize,
    },
    /// Data offset below 5 words, or pointing past the end of the segment.
    BadDataOffset {
        /// Data offset in 32-bit words.
        offset: u8,
        /// Bytes received.
        len: usize,
    },
    /// Checksum over pseudo-header, header and data does not verify (RFC 9293 §3.1).
    BadChecksum {
        /// Checksum field as received.
        got: u16,
        /// Checksum we computed.
        expected: u16,
    },
    /// An option whose length byte is missing or runs past the header.
    OptionTruncated {
        /// Option kind.
        kind: u8,
    },
    /// An option length that is impossible (< 2) or wrong for its kind.
    BadOptionLength {
        /// Option kind.
        kind: u8,
        /// Length byte.
        len: usize,
    },
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SegmentError::TooShort { len } => {
                write!(f, "segment too short: {len} bytes < {HEADER_LEN}")
            }
            SegmentError::TooLong { len } => write!(f, "segment too long: {len} bytes"),
            SegmentError::BadDataOffset { offset, len } => write!(
                f,
                "bad data offset {offset} words ({} bytes) for a {len}-byte segment",
                usize::from(offset) * 4
            ),
            SegmentError::BadChecksum { got, expected } => {
                write!(f, "bad checksum {got:#06x}, expected {expected:#06x}")
            }
            SegmentError::OptionTruncated { kind } => write!(f, "option {kind} truncated"),
            SegmentError::BadOptionLength { kind, len } => {
                write!(f, "option {kind} has bad length {len}")
            }
        }
    }
}

impl std::error::Error for SegmentError {}

/// What [`Segment::parse_inner`] does with the checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// Reject a segment whose checksum does not verify (the stack).
    Verify,
    /// Accept it but report the mismatch (capture readers).
    Report,
    /// Do not compute it: the device vouched for it.
    Trusted,
}

/// A validated TCP segment: the header's meaning plus the payload (RFC 9293 §3.1).
///
/// ```text
///     0                   1                   2                   3
///     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |          Source Port          |       Destination Port        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                        Sequence Number                        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                    Acknowledgment Number                      |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |  Data |       |C|E|U|A|P|R|S|F|                               |
///    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
///    |       |       |R|E|G|K|H|T|N|N|                               |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |           Checksum            |         Urgent Pointer        |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                           [Options]                           |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///    |                                                               :
///    :                             Data                              :
///    :                                                               |
///    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Segment {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEG.SEQ: first sequence number of this segment (the SYN's, if SYN is set).
    pub seq: SeqNum,
    /// SEG.ACK: next sequence number the sender expects (valid when `flags.ack`).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// SEG.WND as on the wire (unscaled).
    pub window: u16,
    /// Urgent pointer (valid when `flags.urg`).
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Data.
    pub payload: Vec<u8>,
}

impl Segment {
    /// Validate and parse the TCP part of an IPv4 or IPv6 packet from `src` to `dst`.
    ///
    /// Checks, in order: at least 20 bytes; data offset between 5 and the segment length;
    /// the checksum over the pseudo-header of either family (RFC 9293 §3.1, RFC 8200 §8.1); option syntax (unknown
    /// options skipped, malformed lengths rejected). Never panics, whatever the bytes.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &[u8],
    ) -> Result<Segment, SegmentError> {
        Segment::parse_inner(src.into(), dst.into(), bytes, Checksum::Verify)
            .map(|(segment, _)| segment)
    }

    /// Like [`Segment::parse`], but the checksum is neither computed nor checked: for a
    /// segment whose checksum the device vouched for or left partial on purpose
    /// ([`crate::link::offload::RxMeta::csum_trusted`], e.g. a 64 KiB GRO super-segment
    /// from the local kernel, which never crossed a wire). Every other check is the same.
    pub fn parse_trusted(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &[u8],
    ) -> Result<Segment, SegmentError> {
        Segment::parse_inner(src.into(), dst.into(), bytes, Checksum::Trusted)
            .map(|(segment, _)| segment)
    }

    /// Like [`Segment::parse`], but a bad checksum does not reject the segment: it is
    /// returned as the second value. For tools that read captures (`tunstack diagram`),
    /// where packets recorded on the sending host often carry a checksum the NIC was to
    /// fill in later (checksum offload). The stack itself must use [`Segment::parse`].
    pub fn parse_lenient(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &[u8],
    ) -> Result<(Segment, Option<SegmentError>), SegmentError> {
        Segment::parse_inner(src.into(), dst.into(), bytes, Checksum::Report)
    }

    /// Like [`Segment::parse`] (or [`Segment::parse_trusted`] when `trusted`), but into
    /// `self`, reusing its payload and SACK block vectors: the receive path parses every
    /// packet into one scratch segment instead of allocating a payload per segment. On an
    /// error `self` holds unspecified (valid) values.
    pub fn parse_into(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &[u8],
        trusted: bool,
    ) -> Result<(), SegmentError> {
        let (src, dst) = (src.into(), dst.into());
        let mode = if trusted {
            Checksum::Trusted
        } else {
            Checksum::Verify
        };
        self.fill(src, dst, bytes, mode).map(|_| ())
    }

    /// The parsers; [`Checksum::Verify`] rejects a bad checksum before the options are
    /// looked at.
    fn parse_inner(
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        mode: Checksum,
    ) -> Result<(Segment, Option<SegmentError>), SegmentError> {
        let mut segment = Segment::default();
        let bad_checksum = segment.fill(src, dst, bytes, mode)?;
        Ok((segment, bad_checksum))
    }

    /// Validate `bytes` and overwrite every field of `self` with what they say; a bad
    /// checksum that `mode` lets through is returned.
    fn fill(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        mode: Checksum,
    ) -> Result<Option<SegmentError>, SegmentError> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(SegmentError::TooShort { len });
        }
        if len > usize::from(u16::MAX) {
            return Err(SegmentError::TooLong { len });
        }
        // Data offset is the high nibble of byte 12; check it before etherparse does so
        // that the reason is ours and precise.
        let offset = bytes.get(12).map_or(0, |b| b >> 4);
        let header_len = usize::from(offset) * 4;
        if header_len < HEADER_LEN || header_len > len {
            return Err(SegmentError::BadDataOffset { offset, len });
        }
        let got = bytes
            .get(16..18)
            .and_then(|c| <[u8; 2]>::try_from(c).ok())
            .map_or(0, u16::from_be_bytes);
        let sum = match mode {
            Checksum::Trusted => 0,
            Checksum::Verify | Checksum::Report => checksum(src, dst, bytes),
        };
        let bad_checksum = (sum != 0).then(|| {
            // Recompute what the sender should have put there, for the log.
            let expected = checksum_with_zeroed_field(src, dst, bytes);
            SegmentError::BadChecksum { got, expected }
        });
        if let (Checksum::Verify, Some(e)) = (mode, bad_checksum) {
            return Err(e);
        }
        let header = TcpHeaderSlice::from_slice(bytes)
            .map_err(|_| SegmentError::BadDataOffset { offset, len })?;
        self.options.parse_into(header.options())?;
        self.payload.clear();
        self.payload
            .extend_from_slice(bytes.get(header_len..).unwrap_or(&[]));
        self.src_port = header.source_port();
        self.dst_port = header.destination_port();
        self.seq = SeqNum(header.sequence_number());
        self.ack = SeqNum(header.acknowledgment_number());
        self.flags = Flags {
            fin: header.fin(),
            syn: header.syn(),
            rst: header.rst(),
            psh: header.psh(),
            ack: header.ack(),
            urg: header.urg(),
        };
        self.window = header.window_size();
        self.urgent = header.urgent_pointer();
        Ok(bad_checksum)
    }

    /// The segment as bytes: header, options (padded to 4 bytes), payload, with a correct
    /// checksum over the pseudo-header from `src` to `dst`.
    pub fn emit(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN + self.payload.len());
        self.emit_into(&mut out, src, dst);
        out
    }

    /// Like [`emit`](Self::emit), but appends to `out` (e.g. right after an IP header the
    /// caller already wrote), avoiding an allocation. The checksum covers only the
    /// appended TCP bytes.
    pub fn emit_into(&self, out: &mut Vec<u8>, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let base = out.len();
        out.reserve(MAX_HEADER_LEN + self.payload.len());
        self.write_tcp(out, base, src.into(), dst.into());
    }

    /// Header, options and payload appended to `out` from index `base`, checksummed.
    fn write_tcp(&self, out: &mut Vec<u8>, base: usize, src: IpAddr, dst: IpAddr) {
        self.write_header(out, base);
        out.extend_from_slice(&self.payload);
        finish_checksum(out, base, src, dst, false);
    }

    /// Header and options appended to `out` (which ends at `base`), checksum field zero.
    fn write_header(&self, out: &mut Vec<u8>, base: usize) {
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.seq.0.to_be_bytes());
        out.extend_from_slice(&self.ack.0.to_be_bytes());
        out.extend_from_slice(&[0, self.flags.to_byte()]); // data offset patched below
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // checksum, computed once the payload is in
        out.extend_from_slice(&self.urgent.to_be_bytes());
        self.options.encode(out);
        // At most 60 bytes of header, so the word count fits in 4 bits.
        let words = ((out.len() - base) / 4) as u8;
        if let Some(b) = out.get_mut(base + 12) {
            *b = words << 4;
        }
    }

    /// Appends the segment to `out` with the payload produced by `payload`, which appends
    /// it straight to `out` (e.g. from a send buffer), so a segment is built in the
    /// packet buffer without a payload vector of its own; `self.payload` is ignored.
    ///
    /// With `partial` the checksum field gets only the folded sum of the
    /// pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) over the segment's whole length, not complemented:
    /// what Linux expects of a `CHECKSUM_PARTIAL` packet (`__tcp_v4_send_check`:
    /// `th->check = ~tcp_v4_check(len, saddr, daddr, 0)`), which the kernel completes —
    /// and, for a super-segment, adjusts to each piece's length when it cuts it
    /// (`tcp_gso_segment`). Otherwise the checksum is complete.
    pub fn emit_with_payload(
        &self,
        out: &mut Vec<u8>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        partial: bool,
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        let base = out.len();
        self.write_header(out, base);
        payload(out);
        finish_checksum(out, base, src.into(), dst.into(), partial);
    }

    /// Appends the segment's header and options to `out`, for a payload of `payload_len`
    /// bytes the caller sends right behind it from elsewhere (a gathered write), with the
    /// partial checksum of [`emit_with_payload`](Self::emit_with_payload) over the
    /// segment's whole length: the payload itself is never read.
    pub fn emit_header_partial(
        &self,
        out: &mut Vec<u8>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        payload_len: usize,
    ) {
        let base = out.len();
        self.write_header(out, base);
        let sum = partial_checksum(src.into(), dst.into(), out.len() - base + payload_len);
        put_checksum(out, base, sum);
    }

    /// SEG.LEN: the sequence space the segment occupies — payload bytes, plus one for SYN
    /// and one for FIN (RFC 9293 §3.4).
    pub fn seg_len(&self) -> u32 {
        let data = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        data.saturating_add(u32::from(self.flags.syn))
            .saturating_add(u32::from(self.flags.fin))
    }
}

impl fmt::Display for Segment {
    /// tcpdump style: `1234 > 80: S. 100:100(0) ack 1 win 65535 <mss 1460>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.seq + u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        write!(
            f,
            "{} > {}: {} {}:{}({})",
            self.src_port,
            self.dst_port,
            self.flags,
            self.seq,
            end,
            self.payload.len()
        )?;
        if self.flags.ack {
            write!(f, " ack {}", self.ack)?;
        }
        write!(f, " win {}", self.window)?;
        let opts = self.options.to_string();
        if !opts.is_empty() {
            write!(f, " {opts}")?;
        }
        Ok(())
    }
}

/// Ones' complement sum (RFC 1071) of the pseudo-header and `tcp`, folded and
/// complemented. Over a segment whose checksum field is filled in, a correct segment
/// gives 0; over one with a zeroed field it gives the value to put there.
///
/// ```text
///   IPv4 (RFC 9293 §3.1)                  IPv6 (RFC 8200 §8.1)
///   +--------+--------+--------+--------+ +--------+--------+--------+--------+
///   |           Source Address          | |     Source Address (16 bytes)     |
///   +--------+--------+--------+--------+ +--------+--------+--------+--------+
///   |         Destination Address       | |  Destination Address (16 bytes)   |
///   +--------+--------+--------+--------+ +--------+--------+--------+--------+
///   |  zero  |  PTCL  |    TCP Length   | |    Upper-Layer Packet Length (32) |
///   +--------+--------+--------+--------+ +--------+--------+--------+--------+
///                                         |      zero (24 bits)     |Next Hdr |
///                                         +--------+--------+--------+--------+
/// ```
fn checksum(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> u16 {
    // Callers bound `tcp` to 65535 bytes; saturate anyway rather than wrap.
    let len = u32::try_from(tcp.len()).unwrap_or(u32::MAX);
    let sum = u64::from(crate::ip::pseudo_header_sum_ip(src, dst, PROTO_TCP, len));
    !fold(sum + ones_sum(tcp))
}

/// Fill in the checksum field of the TCP segment that starts at `out[base]` and runs to the
/// end of `out`: complete, or (`partial`) the folded pseudo-header sum only (see
/// [`Segment::emit_with_payload`]).
fn finish_checksum(out: &mut [u8], base: usize, src: IpAddr, dst: IpAddr, partial: bool) {
    let tcp = out.get(base..).unwrap_or(&[]);
    let sum = if partial {
        partial_checksum(src, dst, tcp.len())
    } else {
        checksum(src, dst, tcp)
    };
    put_checksum(out, base, sum);
}

/// The folded pseudo-header sum of a segment of `tcp_len` bytes, not complemented: the
/// partial checksum a device completes (see [`Segment::emit_with_payload`]).
fn partial_checksum(src: IpAddr, dst: IpAddr, tcp_len: usize) -> u16 {
    // Callers bound segments to 65535 bytes; saturate anyway.
    let len = u32::try_from(tcp_len).unwrap_or(u32::MAX);
    fold(u64::from(crate::ip::pseudo_header_sum_ip(
        src, dst, PROTO_TCP, len,
    )))
}

/// Store `sum` in the checksum field of the segment at `out[base]`.
fn put_checksum(out: &mut [u8], base: usize, sum: u16) {
    if let Some(c) = out.get_mut(base + 16..base + 18) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
}

/// The checksum the sender should have written, with the field treated as zero.
fn checksum_with_zeroed_field(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> u16 {
    let mut copy = tcp.to_vec();
    if let Some(c) = copy.get_mut(16..18) {
        c.fill(0);
    }
    checksum(src, dst, &copy)
}

fn ones_sum(data: &[u8]) -> u64 {
    // The checksum is on every segment in and out (MSS-sized ones in a bulk transfer):
    // the shared fast sum (native-endian wide words, RFC 1071 §2).
    u64::from(crate::ip::ipv4::ones_sum(data))
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn syn() -> Segment {
        Segment {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(0xdead_beef),
            ack: SeqNum(0),
            flags: Flags::SYN,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((12345, 0)),
                sack_blocks: vec![],
            },
            payload: vec![],
        }
    }

    fn data(len: usize) -> Segment {
        Segment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum(u32::MAX - 3),
            ack: SeqNum(7),
            flags: Flags::PSH_ACK,
            window: 1000,
            urgent: 0,
            options: TcpOptions::default(),
            payload: (0..len).map(|i| (i * 7 + 3) as u8).collect(),
        }
    }

    #[test]
    fn parse_into_overwrites_every_field_and_reuses_the_vectors() {
        let mut scratch = syn();
        scratch.payload = vec![9; 5000];
        scratch.options.sack_blocks = vec![(SeqNum(1), SeqNum(2)); 3];
        let capacity = scratch.payload.capacity();
        for seg in [data(1000), data(0), syn()] {
            let bytes = seg.emit(A, B);
            scratch.parse_into(A, B, &bytes, false).unwrap();
            assert_eq!(scratch, Segment::parse(A, B, &bytes).unwrap());
            assert_eq!(
                scratch.payload.capacity(),
                capacity,
                "no new payload vector"
            );
        }
        let mut bad = data(100).emit(A, B);
        bad[20] ^= 1;
        assert!(scratch.parse_into(A, B, &bad, false).is_err());
        scratch.parse_into(A, B, &bad, true).unwrap();
        assert_eq!(
            scratch.payload.len(),
            100,
            "trusted: the checksum is not looked at"
        );
    }

    #[test]
    fn emit_with_payload_matches_emit() {
        let seg = data(1000);
        let header = Segment {
            payload: Vec::new(),
            ..seg.clone()
        };
        let mut out = vec![1, 2, 3];
        header.emit_with_payload(&mut out, A, B, false, |p| p.extend_from_slice(&seg.payload));
        assert_eq!(out[..3], [1, 2, 3], "appended after what was there");
        assert_eq!(out[3..], seg.emit(A, B)[..]);
    }

    #[test]
    fn partial_checksum_is_the_pseudo_header_sum_and_completes() {
        // 3 × 1000 bytes: a super-segment whose checksum the device completes.
        let seg = data(3000);
        let mut out = Vec::new();
        let header = Segment {
            payload: Vec::new(),
            ..seg.clone()
        };
        header.emit_with_payload(&mut out, A, B, true, |p| p.extend_from_slice(&seg.payload));
        let len = out.len() as u16;
        let pseudo = crate::ip::ipv4::pseudo_header_sum(A, B, PROTO_TCP, len) as u16;
        assert_eq!(u16::from_be_bytes([out[16], out[17]]), pseudo);
        assert!(
            Segment::parse(A, B, &out).is_err(),
            "not a complete checksum"
        );
        assert_eq!(Segment::parse_trusted(A, B, &out).unwrap(), seg);
        // What the kernel does with CHECKSUM_PARTIAL: sum from csum_start to the end, the
        // field included, and store the complement at csum_offset.
        let full = crate::ip::checksum(&out);
        out[16..18].copy_from_slice(&full.to_be_bytes());
        assert_eq!(Segment::parse(A, B, &out).unwrap(), seg);
        // The header alone, for a payload gathered from elsewhere: the same bytes as the
        // header part of the whole segment with its partial checksum.
        let mut whole = Vec::new();
        header.emit_with_payload(&mut whole, A, B, true, |p| {
            p.extend_from_slice(&seg.payload)
        });
        let mut head = Vec::new();
        header.emit_header_partial(&mut head, A, B, seg.payload.len());
        assert_eq!(head[..], whole[..whole.len() - seg.payload.len()]);
    }

    #[test]
    fn round_trip_syn_with_options() {
        let s = syn();
        let bytes = s.emit(A, B);
        assert_eq!(bytes.len() % 4, 0);
        // mss 4 + nop/ws 4 + sackOK 4 + TS 12 = 24 option bytes.
        assert_eq!(bytes.len(), 20 + 24);
        assert_eq!(bytes[12] >> 4, 11);
        let back = Segment::parse(A, B, &bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.seg_len(), 1);
    }

    #[test]
    fn round_trip_data_odd_length_and_flags() {
        for len in [0, 1, 2, 3, 1459, 1460] {
            let mut s = data(len);
            s.flags.fin = true;
            s.flags.urg = true;
            s.urgent = 9;
            let bytes = s.emit(B, A);
            assert_eq!(bytes.len(), 20 + len);
            let back = Segment::parse(B, A, &bytes).unwrap();
            assert_eq!(back, s);
            assert_eq!(back.seg_len(), len as u32 + 1);
        }
    }

    #[test]
    fn round_trip_sack_blocks_and_truncation_to_fit() {
        let mut s = data(10);
        s.options.sack_blocks = vec![(SeqNum(10), SeqNum(20)), (SeqNum(30), SeqNum(40))];
        let back = Segment::parse(B, A, &s.emit(B, A)).unwrap();
        assert_eq!(back, s);

        // With timestamps only 3 blocks fit in 40 option bytes (12 + 4 + 24 = 40).
        s.options.timestamps = Some((1, 2));
        s.options.sack_blocks = (0..5u32)
            .map(|i| (SeqNum(i * 100), SeqNum(i * 100 + 50)))
            .collect();
        let bytes = s.emit(B, A);
        assert_eq!(bytes.len(), 60 + 10);
        let back = Segment::parse(B, A, &bytes).unwrap();
        assert_eq!(
            back.options.sack_blocks,
            s.options.sack_blocks[..3].to_vec()
        );

        // Without timestamps, 4 blocks (4 + 32 = 36 bytes).
        s.options.timestamps = None;
        let back = Segment::parse(B, A, &s.emit(B, A)).unwrap();
        assert_eq!(
            back.options.sack_blocks,
            s.options.sack_blocks[..4].to_vec()
        );
    }

    #[test]
    fn wide_ones_sum_equals_the_16_bit_sum() {
        // Every length 0..=70 (all remainders of the 16-byte loop) and varied bytes.
        let data: Vec<u8> = (0..70u32)
            .map(|i| (i.wrapping_mul(197) ^ 0xa5) as u8)
            .collect();
        for len in 0..=data.len() {
            let d = &data[..len];
            let mut naive: u64 = 0;
            for (i, b) in d.iter().enumerate() {
                naive += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
            }
            assert_eq!(fold(ones_sum(d)), fold(naive), "length {len}");
        }
    }

    #[test]
    fn emit_into_appends_after_existing_bytes() {
        let d = data(33);
        let mut out = vec![0xee; 20]; // say, an IP header
        d.emit_into(&mut out, A, B);
        assert_eq!(&out[..20], &[0xee; 20]);
        assert_eq!(&out[20..], &d.emit(A, B)[..]);
        assert_eq!(Segment::parse(A, B, &out[20..]).unwrap(), d);
    }

    #[test]
    fn checksum_matches_etherparse() {
        let s = syn();
        let bytes = s.emit(A, B);
        let hdr = TcpHeaderSlice::from_slice(&bytes).unwrap();
        let expected = hdr
            .calc_checksum_ipv4_raw(A.octets(), B.octets(), &[])
            .unwrap();
        assert_eq!(hdr.checksum(), expected);

        let d = data(333);
        let bytes = d.emit(B, A);
        let hdr = TcpHeaderSlice::from_slice(&bytes).unwrap();
        let expected = hdr
            .calc_checksum_ipv4_raw(B.octets(), A.octets(), &bytes[20..])
            .unwrap();
        assert_eq!(hdr.checksum(), expected);
    }

    const A6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    #[test]
    fn ipv6_checksum_matches_etherparse_and_binds_the_addresses() {
        // RFC 8200 §8.1: the pseudo-header has both 128-bit addresses, a 32-bit length
        // and the next header.
        for d in [syn(), data(333), data(1)] {
            let bytes = d.emit(A6, B6);
            let hdr = TcpHeaderSlice::from_slice(&bytes).unwrap();
            let payload = &bytes[hdr.slice().len()..];
            let expected = hdr
                .calc_checksum_ipv6_raw(A6.octets(), B6.octets(), payload)
                .unwrap();
            assert_eq!(hdr.checksum(), expected);
            assert_eq!(Segment::parse(A6, B6, &bytes).unwrap(), d);
            // Another address, or the same segment read as IPv4, fails the checksum.
            let c6 = std::net::Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1);
            assert!(matches!(
                Segment::parse(c6, B6, &bytes),
                Err(SegmentError::BadChecksum { .. })
            ));
            assert!(matches!(
                Segment::parse(A, B, &bytes),
                Err(SegmentError::BadChecksum { .. })
            ));
        }
        // The partial checksum a device completes is the IPv6 pseudo-header's sum.
        let d = data(100);
        let mut out = Vec::new();
        d.emit_with_payload(&mut out, A6, B6, true, |p| p.extend_from_slice(&d.payload));
        let len = u32::try_from(out.len()).unwrap();
        let pseudo = crate::ip::ipv6::pseudo_header_sum(A6, B6, 6, len);
        assert_eq!(u32::from(u16::from_be_bytes([out[16], out[17]])), pseudo);
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let bytes = data(17).emit(A, B);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                match Segment::parse(A, B, &b) {
                    Err(SegmentError::BadChecksum { .. })
                    | Err(SegmentError::BadDataOffset { .. }) => {}
                    other => panic!("byte {i} bit {bit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn wrong_pseudo_header_is_a_checksum_error() {
        let bytes = data(5).emit(A, B);
        let err = Segment::parse(A, Ipv4Addr::new(10, 0, 0, 3), &bytes).unwrap_err();
        assert!(matches!(err, SegmentError::BadChecksum { .. }), "{err}");
        // Swapped addresses sum the same (ones' complement is commutative): accepted.
        assert!(Segment::parse(B, A, &bytes).is_ok());
    }

    #[test]
    fn lenient_parse_reports_a_bad_checksum_instead_of_failing() {
        let good = data(5);
        let mut bytes = good.emit(A, B);
        assert_eq!(
            Segment::parse_lenient(A, B, &bytes).unwrap(),
            (good.clone(), None)
        );
        bytes[16] ^= 0xff;
        let (seg, bad) = Segment::parse_lenient(A, B, &bytes).unwrap();
        assert_eq!(seg, good);
        assert!(
            matches!(bad, Some(SegmentError::BadChecksum { .. })),
            "{bad:?}"
        );
        assert!(Segment::parse(A, B, &bytes).is_err());
        // Structural errors still fail.
        assert!(Segment::parse_lenient(A, B, &bytes[..19]).is_err());
    }

    /// Builds a segment with raw option bytes and a valid checksum.
    fn with_raw_options(opts: &[u8]) -> Vec<u8> {
        let mut b = data(4).emit(A, B);
        let payload = b.split_off(20);
        b.extend_from_slice(opts);
        b[12] = ((b.len() / 4) as u8) << 4;
        b.extend_from_slice(&payload);
        b[16] = 0;
        b[17] = 0;
        let sum = checksum(A.into(), B.into(), &b);
        b[16..18].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn unknown_options_are_skipped() {
        // kind 30 (MPTCP) len 6, then MSS; then EOL stops parsing the garbage after it.
        let b = with_raw_options(&[30, 6, 1, 2, 3, 4, 2, 4, 0x05, 0xb4, 0, 0xff]);
        let s = Segment::parse(A, B, &b).unwrap();
        assert_eq!(s.options.mss, Some(1460));
        assert_eq!(s.payload.len(), 4);
    }

    #[test]
    fn malformed_options_are_rejected() {
        let cases: &[(&[u8], SegmentError)] = &[
            (
                &[2, 0, 0, 0],
                SegmentError::BadOptionLength { kind: 2, len: 0 },
            ),
            (
                &[30, 1, 0, 0],
                SegmentError::BadOptionLength { kind: 30, len: 1 },
            ),
            (
                &[2, 5, 0, 0, 0, 0, 0, 0],
                SegmentError::BadOptionLength { kind: 2, len: 5 },
            ),
            (&[1, 1, 1, 2], SegmentError::OptionTruncated { kind: 2 }),
            (&[30, 8, 0, 0], SegmentError::OptionTruncated { kind: 30 }),
            (
                &[4, 3, 0, 0],
                SegmentError::BadOptionLength { kind: 4, len: 3 },
            ),
            (
                &[5, 6, 0, 0, 0, 0, 0, 0],
                SegmentError::BadOptionLength { kind: 5, len: 6 },
            ),
            (
                &[8, 8, 0, 0, 0, 0, 0, 0],
                SegmentError::BadOptionLength { kind: 8, len: 8 },
            ),
        ];
        for (opts, want) in cases {
            let b = with_raw_options(opts);
            assert_eq!(Segment::parse(A, B, &b), Err(*want), "options {opts:?}");
        }
    }

    #[test]
    fn window_scale_is_clamped_to_14() {
        let b = with_raw_options(&[1, 3, 3, 20]);
        let s = Segment::parse(A, B, &b).unwrap();
        assert_eq!(s.options.window_scale, Some(14));
    }

    #[test]
    fn short_and_bad_offset() {
        let bytes = data(0).emit(A, B);
        for n in 0..20 {
            assert_eq!(
                Segment::parse(A, B, &bytes[..n]),
                Err(SegmentError::TooShort { len: n })
            );
        }
        let mut b = bytes.clone();
        b[12] = 4 << 4;
        assert_eq!(
            Segment::parse(A, B, &b),
            Err(SegmentError::BadDataOffset { offset: 4, len: 20 })
        );
        b[12] = 6 << 4;
        assert_eq!(
            Segment::parse(A, B, &b),
            Err(SegmentError::BadDataOffset { offset: 6, len: 20 })
        );
    }

    #[test]
    fn garbage_and_truncations_never_panic() {
        // A tiny xorshift so the test needs no rng crate and is deterministic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let len = (next() % 100) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Segment::parse(A, B, &b);
            // Make the checksum right so option parsing is exercised on garbage too.
            if b.len() >= 20 {
                let off = (5 + next() % 11) as u8;
                b[12] = off << 4;
                b[16] = 0;
                b[17] = 0;
                let sum = checksum(A.into(), B.into(), &b);
                b[16..18].copy_from_slice(&sum.to_be_bytes());
                if let Ok(s) = Segment::parse(A, B, &b) {
                    // Whatever parsed must re-emit and parse to the same meaning.
                    let again = Segment::parse(A, B, &s.emit(A, B)).unwrap();
                    assert_eq!(again.payload, s.payload);
                    assert_eq!(again.flags, s.flags);
                }
            }
        }
        let full = syn().emit(A, B);
        for n in 0..full.len() {
            let _ = Segment::parse(A, B, &full[..n]);
        }
    }

    #[test]
    fn flags_display_like_tcpdump() {
        assert_eq!(Flags::SYN.to_string(), "S");
        assert_eq!(Flags::SYN_ACK.to_string(), "S.");
        assert_eq!(Flags::ACK.to_string(), ".");
        assert_eq!(Flags::PSH_ACK.to_string(), "P.");
        assert_eq!(Flags::FIN_ACK.to_string(), "F.");
        assert_eq!(Flags::RST.to_string(), "R");
        assert_eq!(Flags::RST_ACK.to_string(), "R.");
        for b in 0..64u8 {
            assert_eq!(Flags::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn segment_display() {
        let s = syn();
        assert_eq!(
            s.to_string(),
            "40000 > 80: S 3735928559:3735928559(0) win 65535 <mss 1460,wscale 7,sackOK,TS val 12345 ecr 0>"
        );
        let d = data(3);
        assert_eq!(
            d.to_string(),
            "80 > 40000: P. 4294967292:4294967295(3) ack 7 win 1000"
        );
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            SegmentError::TooShort { len: 3 }.to_string(),
            "segment too short: 3 bytes < 20"
        );
        assert!(SegmentError::BadChecksum {
            got: 1,
            expected: 2
        }
        .to_string()
        .contains("bad checksum"));
    }
}
