//! A wide-area link in software: the sans-IO core of the `tunstack-wan` emulator.
//!
//! `tc netem` is the usual way to make a test path look like the Internet, but it needs the
//! `sch_netem` kernel module. This module does the same job in userspace so that the
//! `tunstack-wan` binary can forward packets between two TUN devices through it. One
//! [`WanLink`] is one direction of the path; a packet meets, in this order:
//!
//! ```text
//!  push ─▶ bottleneck queue ─▶ token bucket ─▶ loss ─▶ delay line ─▶ pop
//!          (bounded, tail drop)  (rate)         (random,  (delay + jitter,
//!                                               Gilbert-   FIFO unless reordered)
//!                                               Elliott)
//! ```
//!
//! - **Bottleneck.** With a rate, packets wait in a queue of at most `queue_bytes` and leave
//!   when a [`TokenBucket`] has tokens for them: a link of that rate with that buffer. A
//!   packet that does not fit is dropped at the tail, as a router's drop-tail queue does.
//! - **Loss** after the bottleneck (the packet used the link, then vanished on the wire):
//!   independent random loss, and bursts from a [`GilbertElliott`] two-state chain.
//! - **Delay line.** Every packet is released `delay + U(0, jitter)` after it left the
//!   bottleneck, but never before the packet ahead of it: jitter varies the spacing without
//!   reordering, as on a real path. A packet chosen for reordering waits `reorder_delay`
//!   more and does *not* hold back the ones behind it, so they overtake it.
//!
//! Memory is bounded: the queue by bytes, the delay line by [`WanConfig::max_in_flight`]
//! packets (beyond it packets are dropped and counted). Every random choice comes from a
//! seeded generator, so a run is reproducible given the same arrival times.
//!
//! The link also watches the TCP segments that cross it ([`RetransmitMeter`]): how many
//! payload bytes were sent again below a flow's highest sequence number, and how many payload
//! bytes the link itself dropped. Their ratio says how much a sender retransmitted per byte
//! actually lost, whatever TCP implementation is on either end.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fault::{parse_percent, probability};
use crate::time::Instant;

/// Default bound on the packets in the delay line of one direction.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 20_000;
/// Default buffer of the bottleneck queue, bytes.
pub const DEFAULT_QUEUE_BYTES: usize = 256 * 1024;
/// Most TCP flows the [`RetransmitMeter`] remembers before it starts over.
pub const MAX_FLOWS: usize = 4096;

/// The Gilbert-Elliott burst-loss model: a Markov chain with a good and a bad state, each
/// with its own loss probability; the state changes (or not) once per packet.
///
/// The mean burst (time in the bad state) is `1 / to_good` packets, and the long-run share of
/// packets in the bad state is `to_bad / (to_bad + to_good)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from good to bad, per packet.
    pub to_bad: f64,
    /// Probability of moving from bad to good, per packet.
    pub to_good: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The long-run loss probability of the chain.
    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (probability(self.to_bad), probability(self.to_good));
        if p + r <= 0.0 {
            return probability(self.loss_good);
        }
        let bad = p / (p + r);
        bad * probability(self.loss_bad) + (1.0 - bad) * probability(self.loss_good)
    }
}

/// The chain's state, advanced once per packet.
#[derive(Debug, Clone)]
struct BurstState {
    model: GilbertElliott,
    bad: bool,
}

impl BurstState {
    /// Moves the chain one step and says whether this packet is lost.
    fn lose(&mut self, rng: &mut StdRng) -> bool {
        let flip = if self.bad {
            self.model.to_good
        } else {
            self.model.to_bad
        };
        if rng.random_bool(probability(flip)) {
            self.bad = !self.bad;
        }
        let p = if self.bad {
            self.model.loss_bad
        } else {
            self.model.loss_good
        };
        rng.random_bool(probability(p))
    }
}

/// A token bucket: tokens (bytes) accrue at `rate` up to `burst`; a packet may leave when
/// there are tokens for all of it, and takes them.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second.
    rate: u64,
    /// Most tokens held, bytes.
    burst: u64,
    /// Tokens now, in byte·microseconds per second (bytes × 10⁶), so integer maths is exact.
    tokens: u128,
    last: Instant,
}

impl TokenBucket {
    /// A bucket filling at `rate_bytes_per_sec` (at least 1) and holding at most `burst`
    /// bytes (at least 1), full at `now`.
    pub fn new(rate_bytes_per_sec: u64, burst: u64, now: Instant) -> TokenBucket {
        let burst = burst.max(1);
        TokenBucket {
            rate: rate_bytes_per_sec.max(1),
            burst,
            tokens: u128::from(burst) * 1_000_000,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = u128::from(now.saturating_duration_since(self.last).as_micros() as u64);
        self.last = self.last.max(now);
        let cap = u128::from(self.burst) * 1_000_000;
        self.tokens = (self.tokens + elapsed * u128::from(self.rate)).min(cap);
    }

    /// When a packet of `len` bytes can leave (now or later). A packet larger than the burst
    /// waits for a full bucket, and then leaves (it would never fit otherwise).
    pub fn ready_at(&mut self, len: usize, now: Instant) -> Instant {
        self.refill(now);
        let need = u128::from(self.burst.min(len as u64)) * 1_000_000;
        if self.tokens >= need {
            return now;
        }
        let missing = need - self.tokens;
        let micros = missing.div_ceil(u128::from(self.rate));
        now + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Takes the tokens for a packet of `len` bytes at `now`, if there are enough.
    pub fn take(&mut self, len: usize, now: Instant) -> bool {
        if self.ready_at(len, now) > now {
            return false;
        }
        let need = u128::from(len as u64) * 1_000_000;
        // A packet larger than the burst empties the bucket (its excess is not charged:
        // it is a rounding error next to a queue's worth of packets).
        self.tokens = self.tokens.saturating_sub(need);
        true
    }
}

/// What one direction of the emulated path does to packets.
#[derive(Debug, Clone, PartialEq)]
pub struct WanConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter` (without reordering).
    pub jitter: Duration,
    /// Independent random loss probability (0.0..=1.0).
    pub loss: f64,
    /// Burst loss, if any.
    pub burst: Option<GilbertElliott>,
    /// Probability that a packet is delayed by `reorder_delay` more and overtaken.
    pub reorder: f64,
    /// Extra delay of a reordered packet.
    pub reorder_delay: Duration,
    /// Bottleneck rate in bits per second; 0 means no rate limit (and no queue).
    pub rate_bps: u64,
    /// Bottleneck buffer, bytes (at least one packet is always accepted into an empty queue).
    pub queue_bytes: usize,
    /// Token bucket depth, bytes: how much may leave back to back after an idle period.
    pub burst_bytes: usize,
    /// Most packets in the delay line.
    pub max_in_flight: usize,
}

impl Default for WanConfig {
    fn default() -> WanConfig {
        WanConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            rate_bps: 0,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            burst_bytes: 2 * 1514,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WanStats {
    /// Packets pushed in.
    pub packets_in: u64,
    /// Bytes pushed in.
    pub bytes_in: u64,
    /// Packets released.
    pub packets_out: u64,
    /// Dropped by the independent random loss.
    pub dropped_random: u64,
    /// Dropped by the Gilbert-Elliott chain.
    pub dropped_burst: u64,
    /// Dropped at the tail of a full bottleneck queue.
    pub dropped_queue: u64,
    /// Dropped because the delay line held `max_in_flight` packets.
    pub dropped_overflow: u64,
    /// Packets delayed extra and overtaken.
    pub reordered: u64,
    /// TCP payload bytes pushed in.
    pub tcp_payload_bytes: u64,
    /// TCP payload bytes below the flow's highest sequence number seen: retransmissions.
    pub tcp_retransmitted_bytes: u64,
    /// TCP payload bytes this link dropped (any cause).
    pub tcp_lost_bytes: u64,
}

impl WanStats {
    /// Every drop, whatever its cause.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_queue + self.dropped_overflow
    }

    /// One line of `key=value` pairs, for scripts.
    pub fn to_line(&self) -> String {
        format!(
            "packets_in={} bytes_in={} packets_out={} dropped={} dropped_random={} \
             dropped_burst={} dropped_queue={} dropped_overflow={} reordered={} \
             tcp_payload_bytes={} tcp_retransmitted_bytes={} tcp_lost_bytes={}",
            self.packets_in,
            self.bytes_in,
            self.packets_out,
            self.dropped(),
            self.dropped_random,
            self.dropped_burst,
            self.dropped_queue,
            self.dropped_overflow,
            self.reordered,
            self.tcp_payload_bytes,
            self.tcp_retransmitted_bytes,
            self.tcp_lost_bytes,
        )
    }
}

/// A flow as the meter tells them apart: source, destination, source port, destination port.
type FlowKey = ([u8; 4], [u8; 4], u16, u16);

/// The TCP payload of an IPv4 packet: flow, sequence number and payload length. `None` for
/// anything else (other protocols, fragments after the first, truncated headers).
fn tcp_segment(packet: &[u8]) -> Option<(FlowKey, u32, u32)> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
    if *packet.get(9)? != 6 || frag != 0 || ihl < 20 || total > packet.len() {
        return None;
    }
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
    let tcp = packet.get(ihl..total)?;
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    let offset = usize::from(*tcp.get(12)? >> 4) * 4;
    let payload = tcp.len().checked_sub(offset)?;
    Some(((src, dst, sport, dport), seq, u32::try_from(payload).ok()?))
}

/// Counts the TCP payload bytes a sender sends again: for each flow, the highest sequence
/// number (end of payload) seen so far; payload below it is a retransmission.
#[derive(Debug, Default)]
pub struct RetransmitMeter {
    highest: HashMap<FlowKey, u32>,
}

impl RetransmitMeter {
    /// Looks at one packet; returns (payload bytes, retransmitted bytes) if it is TCP.
    pub fn observe(&mut self, packet: &[u8]) -> Option<(u64, u64)> {
        let (flow, seq, len) = tcp_segment(packet)?;
        if len == 0 {
            return Some((0, 0));
        }
        let end = seq.wrapping_add(len);
        if self.highest.len() >= MAX_FLOWS && !self.highest.contains_key(&flow) {
            // Bounded memory: forget every flow (their next segments restart the count).
            self.highest.clear();
        }
        let high = self.highest.entry(flow).or_insert(seq);
        // Sequence comparison modulo 2³² (RFC 9293 §3.4).
        let before = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
        let again = if !before(seq, *high) {
            0
        } else if !before(*high, end) {
            len
        } else {
            high.wrapping_sub(seq)
        };
        if before(*high, end) {
            *high = end;
        }
        Some((u64::from(len), u64::from(again)))
    }
}

/// One direction of an emulated path. See the module documentation.
///
/// ```
/// use tunstack::link::wan::{WanConfig, WanLink};
/// use tunstack::time::Instant;
/// use std::time::Duration;
///
/// let config = WanConfig { delay: Duration::from_millis(25), ..WanConfig::default() };
/// let mut link = WanLink::new(config, 7);
/// link.push(b"packet".to_vec(), Instant::ZERO);
/// assert_eq!(link.pop(Instant::from_millis(24)), None);
/// assert_eq!(link.poll_at(), Some(Instant::from_millis(25)));
/// assert_eq!(link.pop(Instant::from_millis(25)).as_deref(), Some(&b"packet"[..]));
/// ```
#[derive(Debug)]
pub struct WanLink {
    config: WanConfig,
    rng: StdRng,
    burst: Option<BurstState>,
    bucket: Option<TokenBucket>,
    /// The bottleneck queue (only with a rate).
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// The delay line: (release time, packet), FIFO; reordered packets go to `late`.
    line: VecDeque<(Instant, Vec<u8>)>,
    /// Reordered packets, which the packets behind them overtake, earliest first.
    late: VecDeque<(Instant, Vec<u8>)>,
    meter: RetransmitMeter,
    stats: WanStats,
}

impl WanLink {
    /// A link with `config`; `seed` makes its random choices reproducible.
    pub fn new(config: WanConfig, seed: u64) -> WanLink {
        let burst = config.burst.map(|model| BurstState { model, bad: false });
        let bucket = (config.rate_bps > 0).then(|| {
            TokenBucket::new(
                config.rate_bps / 8,
                config.burst_bytes as u64,
                Instant::ZERO,
            )
        });
        WanLink {
            config,
            rng: StdRng::seed_from_u64(seed),
            burst,
            bucket,
            queue: VecDeque::new(),
            queued_bytes: 0,
            line: VecDeque::new(),
            late: VecDeque::new(),
            meter: RetransmitMeter::default(),
            stats: WanStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WanConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &WanStats {
        &self.stats
    }

    /// Packets inside the link (queued or on the delay line).
    pub fn in_flight(&self) -> usize {
        self.queue.len() + self.line.len() + self.late.len()
    }

    /// Bytes waiting in the bottleneck queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// A packet enters at `now`. Collect what comes out with [`WanLink::pop`].
    pub fn push(&mut self, packet: Vec<u8>, now: Instant) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += packet.len() as u64;
        if let Some((payload, again)) = self.meter.observe(&packet) {
            self.stats.tcp_payload_bytes += payload;
            self.stats.tcp_retransmitted_bytes += again;
        }
        if self.bucket.is_none() {
            self.transmit(packet, now);
            return;
        }
        // Drop-tail: a packet that does not fit in the buffer is lost (an empty queue takes
        // any packet, so a buffer smaller than the MTU still passes traffic).
        if !self.queue.is_empty() && self.queued_bytes + packet.len() > self.config.queue_bytes {
            self.stats.dropped_queue += 1;
            self.count_lost(&packet);
            return;
        }
        self.queued_bytes += packet.len();
        self.queue.push_back(packet);
        self.drain_queue(now);
    }

    /// Moves packets from the bottleneck queue onto the wire while the bucket allows.
    fn drain_queue(&mut self, now: Instant) {
        while let Some(len) = self.queue.front().map(Vec::len) {
            let Some(bucket) = self.bucket.as_mut() else {
                break;
            };
            if !bucket.take(len, now) {
                break;
            }
            if let Some(p) = self.queue.pop_front() {
                self.queued_bytes -= p.len();
                self.transmit(p, now);
            }
        }
    }

    fn count_lost(&mut self, packet: &[u8]) {
        if let Some((_, _, len)) = tcp_segment(packet) {
            self.stats.tcp_lost_bytes += u64::from(len);
        }
    }

    /// The packet leaves the bottleneck at `now`: loss, then the delay line.
    fn transmit(&mut self, packet: Vec<u8>, now: Instant) {
        if self.rng.random_bool(probability(self.config.loss)) {
            self.stats.dropped_random += 1;
            self.count_lost(&packet);
            return;
        }
        if let Some(burst) = self.burst.as_mut() {
            if burst.lose(&mut self.rng) {
                self.stats.dropped_burst += 1;
                self.count_lost(&packet);
                return;
            }
        }
        if self.line.len() + self.late.len() >= self.config.max_in_flight {
            self.stats.dropped_overflow += 1;
            self.count_lost(&packet);
            return;
        }
        let mut release = now + self.config.delay;
        if !self.config.jitter.is_zero() {
            let max = u64::try_from(self.config.jitter.as_micros()).unwrap_or(u64::MAX);
            release += Duration::from_micros(self.rng.random_range(0..=max));
        }
        if self.rng.random_bool(probability(self.config.reorder)) {
            self.stats.reordered += 1;
            let at = release + self.config.reorder_delay;
            // Keep `late` sorted; it is short (a few packets per reorder_delay).
            let pos = self.late.iter().position(|(t, _)| *t > at);
            match pos {
                Some(i) => self.late.insert(i, (at, packet)),
                None => self.late.push_back((at, packet)),
            }
            return;
        }
        // FIFO: never released before the packet ahead (jitter without reordering).
        if let Some((last, _)) = self.line.back() {
            release = release.max(*last);
        }
        self.line.push_back((release, packet));
    }

    /// The next packet due at `now`, if any. Call until `None`.
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.drain_queue(now);
        let line = self.line.front().map(|(t, _)| *t).filter(|t| *t <= now);
        let late = self.late.front().map(|(t, _)| *t).filter(|t| *t <= now);
        let packet = match (line, late) {
            (Some(a), Some(b)) if b < a => self.late.pop_front(),
            (Some(_), _) => self.line.pop_front(),
            (None, Some(_)) => self.late.pop_front(),
            (None, None) => None,
        }?;
        self.stats.packets_out += 1;
        Some(packet.1)
    }

    /// When something is next due: a packet on the delay line, or the head of the
    /// bottleneck queue getting its tokens.
    pub fn poll_at(&mut self) -> Option<Instant> {
        let line = self.line.front().map(|(t, _)| *t);
        let late = self.late.front().map(|(t, _)| *t);
        let queue = match (self.queue.front(), self.bucket.as_mut()) {
            (Some(p), Some(bucket)) => {
                let last = bucket.last;
                Some(bucket.ready_at(p.len(), last))
            }
            _ => None,
        };
        [line, late, queue].into_iter().flatten().min()
    }
}

/// Parses a duration in milliseconds, fractions allowed: `"25"`, `"0.5"`.
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    let ms: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of milliseconds"))?;
    if !(0.0..=3_600_000.0).contains(&ms) {
        return Err(format!("{s} ms is out of range 0..=3600000"));
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

/// Parses a Gilbert-Elliott model `TO_BAD:TO_GOOD[:LOSS_BAD[:LOSS_GOOD]]`, all percentages:
/// `"1:25"` enters a burst after 1 % of packets, stays 4 packets on average, and loses every
/// packet in it (LOSS_BAD defaults to 100, LOSS_GOOD to 0).
pub fn parse_gilbert_elliott(s: &str) -> Result<GilbertElliott, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(format!(
            "'{s}': expected TO_BAD:TO_GOOD[:LOSS_BAD[:LOSS_GOOD]] (percentages)"
        ));
    }
    let mut v = [0.0, 0.0, 1.0, 0.0];
    for (slot, part) in v.iter_mut().zip(&parts) {
        *slot = parse_percent(part)?;
    }
    Ok(GilbertElliott {
        to_bad: v[0],
        to_good: v[1],
        loss_bad: v[2],
        loss_good: v[3],
    })
}

/// Parses a rate in bits per second with an optional unit: `"100mbit"`, `"1.5gbit"`,
/// `"800kbit"`, `"64000"` (bits). `"0"` means unlimited.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = t.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix("kbit") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("bit") {
        (n, 1.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a rate (e.g. 100mbit)"))?;
    if !(0.0..=1e12).contains(&v) {
        return Err(format!("rate '{s}' out of range"));
    }
    Ok((v * mult).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// A minimal IPv4/TCP packet of the flow 10.1.0.1:1000 → 10.2.0.1:80.
    fn tcp(seq: u32, payload: usize) -> Vec<u8> {
        let total = 40 + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 1]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[32] = 5 << 4;
        p
    }

    /// Everything the link releases up to `until`, stepping 100 µs, with release times.
    fn drain(link: &mut WanLink, from: Instant, until: Instant) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= until {
            while let Some(p) = link.pop(t) {
                out.push((t, p));
            }
            t += Duration::from_micros(100);
        }
        out
    }

    #[test]
    fn delay_line_releases_after_the_delay_in_order() {
        let config = WanConfig {
            delay: Duration::from_millis(50),
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 1);
        for i in 0..5u8 {
            link.push(vec![i], ms(u64::from(i)));
        }
        assert_eq!(link.pop(ms(49)), None);
        assert_eq!(link.poll_at(), Some(ms(50)));
        let out = drain(&mut link, ms(49), ms(60));
        let got: Vec<(u64, u8)> = out.iter().map(|(t, p)| (t.total_millis(), p[0])).collect();
        assert_eq!(got, vec![(50, 0), (51, 1), (52, 2), (53, 3), (54, 4)]);
        assert_eq!(link.stats().packets_out, 5);
    }

    #[test]
    fn jitter_varies_delay_within_bounds_without_reordering() {
        let config = WanConfig {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 3);
        for i in 0..200u32 {
            link.push(
                i.to_be_bytes().to_vec(),
                Instant::from_micros(u64::from(i) * 200),
            );
        }
        let out = drain(&mut link, ms(0), ms(100));
        assert_eq!(out.len(), 200);
        let mut spread = Vec::new();
        for (n, (t, p)) in out.iter().enumerate() {
            let i = u32::from_be_bytes(p[..4].try_into().unwrap());
            assert_eq!(i as usize, n, "jitter alone must not reorder");
            let sent = Instant::from_micros(u64::from(i) * 200);
            let d = t.saturating_duration_since(sent);
            assert!(d >= Duration::from_millis(20), "{d:?} below the delay");
            // FIFO can add waiting behind a later-jittered packet, but never beyond the
            // largest delay + jitter of a packet sent before (plus the 100 µs step).
            assert!(
                d <= Duration::from_micros(30_100),
                "{d:?} above delay + jitter"
            );
            spread.push(d);
        }
        let (min, max) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
        assert!(
            *max - *min >= Duration::from_millis(5),
            "jitter had no effect"
        );
    }

    #[test]
    fn random_loss_matches_its_rate_and_is_reproducible() {
        let run = |seed| {
            let config = WanConfig {
                loss: 0.03,
                ..WanConfig::default()
            };
            let mut link = WanLink::new(config, seed);
            for _ in 0..20_000 {
                link.push(vec![0; 100], ms(0));
                while link.pop(ms(0)).is_some() {}
            }
            link.stats().clone()
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same drops");
        assert!(a.dropped_random > 450 && a.dropped_random < 750, "{a:?}");
        assert_eq!(a.packets_out + a.dropped_random, 20_000);
        assert_ne!(a.dropped_random, run(43).dropped_random);
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_at_its_mean_rate() {
        let model = GilbertElliott {
            to_bad: 0.01,
            to_good: 0.25,
            loss_bad: 1.0,
            loss_good: 0.0,
        };
        let config = WanConfig {
            burst: Some(model),
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 9);
        let n = 100_000u32;
        let mut delivered = vec![false; n as usize];
        for i in 0..n {
            link.push(i.to_be_bytes().to_vec(), ms(0));
            while let Some(p) = link.pop(ms(0)) {
                delivered[u32::from_be_bytes(p[..4].try_into().unwrap()) as usize] = true;
            }
        }
        let lost = delivered.iter().filter(|d| !**d).count() as f64;
        let mean = model.mean_loss();
        assert!((mean - 0.0385).abs() < 0.001);
        assert!((lost / f64::from(n) - mean).abs() < 0.01, "loss {lost}");
        // Bursts: mean run of consecutive losses ≈ 1 / to_good = 4 (independent loss at
        // the same rate would give runs of about 1.04).
        let runs = delivered.windows(2).filter(|w| w[0] && !w[1]).count() as f64;
        let mean_run = lost / runs;
        assert!(mean_run > 3.0 && mean_run < 5.0, "mean burst {mean_run}");
        assert_eq!(link.stats().dropped_burst, lost as u64);
    }

    #[test]
    fn token_bucket_paces_at_its_rate() {
        // 1 MB/s, burst 1500 bytes: a 1500-byte packet every 1.5 ms once the bucket is empty.
        let mut b = TokenBucket::new(1_000_000, 1500, ms(0));
        assert!(b.take(1500, ms(0)));
        assert!(!b.take(1500, ms(0)));
        assert_eq!(b.ready_at(1500, ms(0)), Instant::from_micros(1500));
        assert!(!b.take(1500, Instant::from_micros(1499)));
        assert!(b.take(1500, Instant::from_micros(1500)));
        // Idle time fills the bucket only up to the burst.
        assert!(b.take(1500, ms(100)));
        assert!(!b.take(1, ms(100)));
    }

    #[test]
    fn bottleneck_limits_the_rate_and_drops_at_the_tail_of_its_queue() {
        // 8 Mbit/s = 1 MB/s; 10 packets of 1000 bytes in the queue at most.
        let config = WanConfig {
            rate_bps: 8_000_000,
            queue_bytes: 10_000,
            burst_bytes: 1000,
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 1);
        // 30 packets at once: 1 leaves at once, 10 wait, 19 are dropped.
        for i in 0..30u8 {
            let mut p = vec![0u8; 1000];
            p[0] = i;
            link.push(p, ms(0));
        }
        assert_eq!(link.stats().dropped_queue, 19);
        assert_eq!(link.queued_bytes(), 10_000);
        let out = drain(&mut link, ms(0), ms(20));
        let firsts: Vec<u8> = out.iter().map(|(_, p)| p[0]).collect();
        assert_eq!(firsts, (0..11).collect::<Vec<u8>>());
        // One packet per millisecond: the 11th leaves at 10 ms.
        let times: Vec<u64> = out.iter().map(|(t, _)| t.total_micros()).collect();
        assert_eq!(times[0], 0);
        assert_eq!(times[10], 10_000);
        assert_eq!(link.poll_at(), None);
        assert_eq!(link.in_flight(), 0);
    }

    #[test]
    fn poll_at_reports_when_the_queue_head_gets_its_tokens() {
        let config = WanConfig {
            rate_bps: 8_000_000,
            burst_bytes: 1000,
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 1);
        link.push(vec![0; 1000], ms(0));
        link.push(vec![1; 1000], ms(0));
        assert!(link.pop(ms(0)).is_some());
        assert_eq!(link.poll_at(), Some(ms(1)));
    }

    #[test]
    fn reordered_packets_are_overtaken() {
        let config = WanConfig {
            delay: Duration::from_millis(10),
            reorder: 0.2,
            reorder_delay: Duration::from_millis(3),
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 5);
        for i in 0..100u8 {
            link.push(vec![i], ms(u64::from(i)));
        }
        let out = drain(&mut link, ms(0), ms(200));
        assert_eq!(out.len(), 100, "reordering must not lose packets");
        let order: Vec<u8> = out.iter().map(|(_, p)| p[0]).collect();
        let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
        let reordered = link.stats().reordered;
        assert!(reordered > 5, "{reordered}");
        assert!(inversions > 0 && inversions as u64 <= reordered);
    }

    #[test]
    fn delay_line_is_bounded() {
        let config = WanConfig {
            delay: Duration::from_secs(1),
            max_in_flight: 10,
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 1);
        for _ in 0..25 {
            link.push(tcp(1, 100), ms(0));
        }
        assert_eq!(link.in_flight(), 10);
        assert_eq!(link.stats().dropped_overflow, 15);
        assert_eq!(link.stats().tcp_lost_bytes, 1500);
    }

    #[test]
    fn meter_counts_retransmitted_and_lost_payload() {
        let mut m = RetransmitMeter::default();
        assert_eq!(m.observe(&tcp(1000, 100)), Some((100, 0)));
        assert_eq!(m.observe(&tcp(1100, 100)), Some((100, 0)));
        assert_eq!(m.observe(&tcp(1000, 100)), Some((100, 100)), "resent");
        assert_eq!(m.observe(&tcp(1150, 100)), Some((100, 50)), "half new");
        assert_eq!(m.observe(&tcp(1250, 0)), Some((0, 0)), "pure ACK");
        assert_eq!(m.observe(b"\x60not ipv4"), None);
        assert_eq!(m.observe(&tcp(1000, 100)[..30]), None, "truncated");
        // Across the 2³² wrap.
        let mut w = RetransmitMeter::default();
        assert_eq!(w.observe(&tcp(u32::MAX - 49, 100)), Some((100, 0)));
        assert_eq!(w.observe(&tcp(50, 100)), Some((100, 0)));
        assert_eq!(w.observe(&tcp(u32::MAX - 49, 100)), Some((100, 100)));

        let config = WanConfig {
            loss: 1.0,
            ..WanConfig::default()
        };
        let mut link = WanLink::new(config, 1);
        link.push(tcp(1, 300), ms(0));
        link.push(tcp(1, 300), ms(1));
        let s = link.stats();
        assert_eq!(
            (
                s.tcp_payload_bytes,
                s.tcp_retransmitted_bytes,
                s.tcp_lost_bytes
            ),
            (600, 300, 600)
        );
    }

    #[test]
    fn parsers_accept_units_and_reject_nonsense() {
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("64000"), Ok(64_000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_millis("0.5"), Ok(Duration::from_micros(500)));
        assert!(parse_millis("-1").is_err());
        let ge = parse_gilbert_elliott("1:25").unwrap();
        assert_eq!(
            (ge.to_bad, ge.to_good, ge.loss_bad, ge.loss_good),
            (0.01, 0.25, 1.0, 0.0)
        );
        assert!(parse_gilbert_elliott("1").is_err());
        assert!(parse_gilbert_elliott("1:2:3:4:5").is_err());
    }
}
