//! Fault injection: make a perfect link behave like a bad network, on purpose and
//! reproducibly, to study and test how the layers above cope.
//!
//! A [`FaultInjector`] sits in one direction of the packet path. Every packet pushed into
//! it meets, with the configured probabilities and a seeded random generator:
//!
//! | fault | what happens | who must cope |
//! |-------|--------------|---------------|
//! | loss | the packet vanishes | TCP retransmission (RFC 6298), fast retransmit |
//! | duplicate | a second copy is sent | TCP discards old data; IP reassembly ignores exact duplicates |
//! | reorder | the packet is held back and released after the next one | TCP's out-of-order queue, duplicate ACKs |
//! | corrupt | one random bit flips | the IPv4 header, TCP and ICMP checksums (RFC 1071) |
//! | delay | released `delay + U(0, jitter)` later | RTT estimation; jitter also reorders, as `tc netem` does |
//!
//! The injector is sans-IO like the protocol core: `push(packet, now)`, then `pop(now)`
//! until `None`, and [`FaultInjector::poll_at`] says when a held packet is next due, so
//! the event loop (or a test in virtual time) knows when to come back.
//!
//! Probabilities are fractions in `0.0..=1.0` here; the command line takes percentages
//! ([`parse_percent`]: `--loss 10` means 10 %).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::time::Instant;

/// The longest a reordered packet waits for a successor before it is released anyway.
pub const DEFAULT_REORDER_HOLD: Duration = Duration::from_millis(10);

/// What to do to packets, as probabilities (fractions, 0.0..=1.0) and delays.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Probability that a packet is sent twice.
    pub duplicate: f64,
    /// Probability that a packet is held back and released after the next one.
    pub reorder: f64,
    /// Probability that one random bit of a packet is flipped.
    pub corrupt: f64,
    /// Fixed delay added to every packet.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// How long a reordered packet waits for a successor at most.
    pub reorder_hold: Duration,
}

impl Default for FaultConfig {
    fn default() -> FaultConfig {
        FaultConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder_hold: DEFAULT_REORDER_HOLD,
        }
    }
}

impl FaultConfig {
    /// True if this configuration never changes anything (the injector can be skipped).
    pub fn is_noop(&self) -> bool {
        self.loss <= 0.0
            && self.duplicate <= 0.0
            && self.reorder <= 0.0
            && self.corrupt <= 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

/// Counters of injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets pushed in.
    pub packets: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Packets held back to be released after their successor.
    pub reordered: u64,
    /// Packets with a flipped bit.
    pub corrupted: u64,
    /// Packets released later than they arrived (delay or jitter).
    pub delayed: u64,
}

impl FaultStats {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &FaultStats) {
        self.packets += other.packets;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
        self.delayed += other.delayed;
    }
}

/// Clamps a probability into `0.0..=1.0` (NaN → 0) so `random_bool` cannot panic.
pub(crate) fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// One direction's fault injector. See the module documentation.
///
/// ```
/// use tunstack::link::fault::{FaultConfig, FaultInjector};
/// use tunstack::time::Instant;
/// use std::time::Duration;
///
/// let config = FaultConfig { delay: Duration::from_millis(5), ..FaultConfig::default() };
/// let mut link = FaultInjector::new(config, 1);
/// let t0 = Instant::from_millis(0);
/// link.push(b"packet".to_vec(), t0);
/// assert_eq!(link.pop(t0), None);                       // not yet
/// assert_eq!(link.poll_at(), Some(Instant::from_millis(5)));
/// assert_eq!(link.pop(Instant::from_millis(5)).as_deref(), Some(&b"packet"[..]));
/// ```
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    rng: StdRng,
    /// Packets on their way: (release time, arrival order, bytes), earliest first.
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// A packet held back for reordering, with the time it is released at the latest.
    held: Option<(Instant, Vec<u8>)>,
    order: u64,
    stats: FaultStats,
}

impl FaultInjector {
    /// An injector with `config`; `seed` makes its decisions reproducible.
    pub fn new(config: FaultConfig, seed: u64) -> FaultInjector {
        FaultInjector {
            config,
            rng: StdRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            held: None,
            order: 0,
            stats: FaultStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &FaultStats {
        &self.stats
    }

    /// Packets inside the injector (delayed or held).
    pub fn in_flight(&self) -> usize {
        self.queue.len() + usize::from(self.held.is_some())
    }

    /// A packet enters at `now`. Collect what comes out with [`FaultInjector::pop`].
    pub fn push(&mut self, packet: Vec<u8>, now: Instant) {
        self.stats.packets += 1;
        if self.rng.random_bool(probability(self.config.loss)) {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.random_bool(probability(self.config.duplicate)) {
            self.stats.duplicated += 1;
            self.corrupt_and_schedule(packet.clone(), now);
        }
        self.corrupt_and_schedule(packet, now);
    }

    fn corrupt_and_schedule(&mut self, mut packet: Vec<u8>, now: Instant) {
        if !packet.is_empty() && self.rng.random_bool(probability(self.config.corrupt)) {
            // Flip one bit anywhere: header or payload. The checksums must notice.
            let byte = self.rng.random_range(0..packet.len());
            let bit = self.rng.random_range(0..8u8);
            if let Some(b) = packet.get_mut(byte) {
                *b ^= 1 << bit;
            }
            self.stats.corrupted += 1;
        }
        self.schedule(packet, now);
    }

    fn schedule(&mut self, packet: Vec<u8>, now: Instant) {
        let mut release = now + self.config.delay;
        if !self.config.jitter.is_zero() {
            let max = u64::try_from(self.config.jitter.as_micros()).unwrap_or(u64::MAX);
            release += Duration::from_micros(self.rng.random_range(0..=max));
        }
        if release > now {
            self.stats.delayed += 1;
        }
        match self.held.take() {
            Some((_, held)) => {
                // The held packet goes right after this one: a reordering by one.
                self.enqueue(release, packet);
                self.enqueue(release, held);
            }
            None if self.rng.random_bool(probability(self.config.reorder)) => {
                self.stats.reordered += 1;
                self.held = Some((release + self.config.reorder_hold, packet));
            }
            None => self.enqueue(release, packet),
        }
    }

    fn enqueue(&mut self, release: Instant, packet: Vec<u8>) {
        self.order = self.order.wrapping_add(1);
        self.queue.push(Reverse((release, self.order, packet)));
    }

    /// The next packet due at `now`, if any. Call until `None`.
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.as_ref().is_some_and(|(at, _)| *at <= now) {
            // No successor came in time: release the held packet alone.
            if let Some((at, p)) = self.held.take() {
                self.enqueue(at, p);
            }
        }
        match self.queue.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.queue.pop().map(|Reverse((_, _, p))| p),
            _ => None,
        }
    }

    /// When the next held packet is due.
    pub fn poll_at(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let held = self.held.as_ref().map(|(at, _)| *at);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pushes every packet of `packets` at `now` and replaces them with what is due now
    /// (the event loop's hook: a few lines there, the logic here).
    pub fn filter(&mut self, packets: &mut Vec<Vec<u8>>, now: Instant) {
        for p in packets.drain(..) {
            self.push(p, now);
        }
        while let Some(p) = self.pop(now) {
            packets.push(p);
        }
    }
}

/// Fault injectors for both directions of a device, as the event loop uses them.
#[derive(Debug)]
pub struct Faults {
    /// Packets from the link to the stack.
    pub inbound: FaultInjector,
    /// Packets from the stack to the link.
    pub outbound: FaultInjector,
}

impl Faults {
    /// The same configuration in both directions, with seeds derived from `seed`.
    pub fn new(config: FaultConfig, seed: u64) -> Faults {
        Faults {
            inbound: FaultInjector::new(config.clone(), seed),
            outbound: FaultInjector::new(config, seed.wrapping_add(0x9e37_79b9_7f4a_7c15)),
        }
    }

    /// The earlier of the two directions' next release times.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.inbound.poll_at(), self.outbound.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Both directions' counters added up.
    pub fn stats(&self) -> FaultStats {
        let mut s = self.inbound.stats().clone();
        s.add(self.outbound.stats());
        s
    }
}

/// Parses a probability given as a percentage, `0`–`100`, with an optional `%`:
/// `"10"`, `"2.5%"`, `"0.1"` (that is 0.1 %, not 10 %). Returns the fraction.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    let v: f64 = t
        .parse()
        .map_err(|_| format!("{s:?}: expected a percentage such as 10 or 2.5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s:?}: a percentage must be between 0 and 100"));
    }
    Ok(v / 100.0)
}

/// Parses `MS` or `MS:JITTER_MS` (milliseconds, integers) into (delay, jitter).
pub fn parse_delay(s: &str) -> Result<(Duration, Duration), String> {
    let ms = |x: &str| -> Result<Duration, String> {
        x.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{s:?}: expected MS or MS:JITTER_MS (whole milliseconds)"))
    };
    match s.split_once(':') {
        Some((d, j)) => Ok((ms(d)?, ms(j)?)),
        None => Ok((ms(s)?, Duration::ZERO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn drain(f: &mut FaultInjector, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| f.pop(now)).collect()
    }

    #[test]
    fn noop_passes_everything_in_order() {
        let mut f = FaultInjector::new(FaultConfig::default(), 1);
        assert!(f.config().is_noop());
        for i in 0..100u8 {
            f.push(vec![i], t(0));
        }
        let out = drain(&mut f, t(0));
        assert_eq!(out, (0..100u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert_eq!(f.poll_at(), None);
        assert_eq!(f.stats().packets, 100);
        assert_eq!(f.stats().dropped, 0);
    }

    #[test]
    fn loss_rate_is_roughly_right_and_seeded() {
        let cfg = FaultConfig {
            loss: 0.1,
            ..FaultConfig::default()
        };
        let run = |seed| {
            let mut f = FaultInjector::new(cfg.clone(), seed);
            for i in 0..10_000u32 {
                f.push(i.to_be_bytes().to_vec(), t(0));
            }
            (drain(&mut f, t(0)), f.stats().clone())
        };
        let (a, sa) = run(7);
        let (b, _) = run(7);
        let (c, _) = run(8);
        assert_eq!(a, b, "same seed, same losses");
        assert_ne!(a, c);
        assert!((800..1200).contains(&sa.dropped), "{}", sa.dropped);
        assert_eq!(a.len() as u64, 10_000 - sa.dropped);
    }

    #[test]
    fn duplicates_make_copies() {
        let cfg = FaultConfig {
            duplicate: 1.0,
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(cfg, 1);
        f.push(vec![1, 2, 3], t(0));
        assert_eq!(drain(&mut f, t(0)), vec![vec![1, 2, 3], vec![1, 2, 3]]);
        assert_eq!(f.stats().duplicated, 1);
    }

    #[test]
    fn reorder_releases_held_packet_after_the_next() {
        let cfg = FaultConfig {
            reorder: 1.0,
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(cfg, 1);
        f.push(vec![1], t(0));
        assert_eq!(drain(&mut f, t(0)), Vec::<Vec<u8>>::new());
        assert_eq!(f.in_flight(), 1);
        f.push(vec![2], t(1));
        assert_eq!(drain(&mut f, t(1)), vec![vec![2], vec![1]]);
        // Held with no successor: released after the hold time.
        f.push(vec![3], t(2));
        assert_eq!(f.poll_at(), Some(t(2) + DEFAULT_REORDER_HOLD));
        assert!(drain(&mut f, t(3)).is_empty());
        assert_eq!(drain(&mut f, t(2) + DEFAULT_REORDER_HOLD), vec![vec![3]]);
        assert_eq!(f.stats().reordered, 2);
    }

    #[test]
    fn corruption_flips_exactly_one_bit_and_checksums_notice() {
        use crate::ip::ipv4::{self, Ipv4Packet};
        use crate::tcp::Segment;
        use std::net::Ipv4Addr;
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let seg = Segment {
            src_port: 1,
            dst_port: 2,
            payload: vec![0x5a; 100],
            ..Segment::default()
        };
        let pkt = ipv4::emit(a, b, ipv4::PROTO_TCP, 64, 1, &seg.emit(a, b));
        let cfg = FaultConfig {
            corrupt: 1.0,
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(cfg, 3);
        for _ in 0..2000 {
            f.push(pkt.clone(), t(0));
            let out = f.pop(t(0)).unwrap();
            let flipped: u32 = out
                .iter()
                .zip(&pkt)
                .map(|(x, y)| (x ^ y).count_ones())
                .sum();
            assert_eq!(flipped, 1);
            // Either IP rejects it, or TCP's checksum does: never delivered as valid.
            let caught = match Ipv4Packet::parse(&out) {
                Err(_) => true,
                Ok(p) => {
                    Segment::parse(p.src, p.dst, p.payload).is_err() || p.src != a || p.dst != b
                }
            };
            assert!(caught, "a one-bit error went unnoticed");
        }
        assert_eq!(f.stats().corrupted, 2000);
    }

    #[test]
    fn delay_and_jitter() {
        let cfg = FaultConfig {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(cfg, 9);
        for i in 0..100u8 {
            f.push(vec![i], t(0));
        }
        assert!(drain(&mut f, t(49)).is_empty());
        assert!(f.poll_at().unwrap() >= t(50));
        let mut got = drain(&mut f, t(70));
        assert_eq!(got.len(), 100);
        assert_eq!(f.stats().delayed, 100);
        assert_ne!(
            got,
            (0..100u8).map(|i| vec![i]).collect::<Vec<_>>(),
            "jitter reorders"
        );
        got.sort();
        assert_eq!(got, (0..100u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert_eq!(f.poll_at(), None);
    }

    #[test]
    fn filter_and_both_directions() {
        let mut faults = Faults::new(
            FaultConfig {
                loss: 0.5,
                ..FaultConfig::default()
            },
            4,
        );
        let mut batch: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i]).collect();
        faults.inbound.filter(&mut batch, t(0));
        assert!(batch.len() < 80 && batch.len() > 20);
        let mut out: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i]).collect();
        faults.outbound.filter(&mut out, t(0));
        assert_eq!(faults.stats().packets, 200);
        assert_eq!(
            faults.stats().dropped,
            200 - batch.len() as u64 - out.len() as u64
        );
        assert_eq!(faults.poll_at(), None);
    }

    #[test]
    fn parsing_flags() {
        assert_eq!(parse_percent("10"), Ok(0.1));
        assert_eq!(parse_percent("2.5%"), Ok(0.025));
        assert_eq!(parse_percent(" 0 "), Ok(0.0));
        assert_eq!(parse_percent("100"), Ok(1.0));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("ten").is_err());
        assert!(parse_percent("NaN").is_err());
        assert_eq!(
            parse_delay("40"),
            Ok((Duration::from_millis(40), Duration::ZERO))
        );
        assert_eq!(
            parse_delay("40:10"),
            Ok((Duration::from_millis(40), Duration::from_millis(10)))
        );
        assert!(parse_delay("40:").is_err());
        assert!(parse_delay("x").is_err());
    }

    #[test]
    fn odd_probabilities_do_not_panic() {
        let cfg = FaultConfig {
            loss: f64::NAN,
            duplicate: 7.0,
            reorder: -1.0,
            corrupt: 1.0,
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(cfg, 1);
        f.push(Vec::new(), t(0));
        f.push(vec![1], t(0));
        assert_eq!(drain(&mut f, t(0)).len(), 4);
    }
}
