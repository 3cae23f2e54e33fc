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
//! the runtime (or a test in virtual time) knows when to come back.
//!
//! [`FaultDevice`] puts one injector in each direction of any [`Device`]: it is middleware,
//! as smoltcp's `phy::FaultInjector` is, and every runtime gets faults by being handed a
//! wrapped device (`serve --loss` builds the chain in [`super::middleware`]).
//!
//! Probabilities are fractions in `0.0..=1.0` here; the command line takes percentages
//! ([`parse_percent`]: `--loss 10` means 10 %).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::offload::{Offloads, RxMeta, TxMeta};
use super::{gso, Device, Medium};
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
}

/// Fault injectors for both directions of a device ([`FaultDevice`] holds one).
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

/// Middleware: a [`Device`] whose packets meet a [`FaultInjector`] in each direction —
/// between the wrapped device and the stack on the way in, between the stack and the
/// device on the way out. Decisions are drawn from the seed, so a run is reproducible.
///
/// **It declines offloads.** Loss, duplication and corruption are about the packets a wire
/// carries: one bit flipped in a 64 KiB super-segment would be one bad segment among
/// forty-four, yet the stack would drop all of it, and a checksum the kernel vouched for or
/// left partial would let a corrupted packet through. So [`Device::offloads`] reports none:
/// the stack builds no super-segment and asks for no checksum offload, and `serve` opens
/// the TUN without offloads when a fault injector is in the chain
/// ([`super::middleware::Middleware::keeps_offloads`]). Should the wrapped device still
/// hand up a super-segment or a checksum it did not verify, it is cut into the wire
/// segments it stands for, with complete checksums ([`gso::wire_view`]), before the faults.
#[derive(Debug)]
pub struct FaultDevice<D> {
    inner: D,
    faults: Faults,
    /// Receive buffer for the wrapped device (its size may exceed what the stack reads:
    /// a super-segment before it is cut).
    scratch: Vec<u8>,
}

impl<D: Device> FaultDevice<D> {
    /// Wraps `inner`: `config` in both directions, with seeds derived from `seed`.
    pub fn new(inner: D, config: FaultConfig, seed: u64) -> FaultDevice<D> {
        let scratch = vec![0; inner.recv_buf_len()];
        FaultDevice {
            inner,
            faults: Faults::new(config, seed),
            scratch,
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The injectors (their counters, what they hold).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Sends what the outbound injector releases at `now` to the wrapped device.
    fn release_outbound(&mut self, now: Instant) {
        while let Some(p) = self.faults.outbound.pop(now) {
            if let Err(e) = self.inner.send(&p, TxMeta::default(), now) {
                // A full device queue drops the packet like a congested link; TCP recovers.
                log::debug!("link: device write failed: {e}");
            }
        }
    }
}

impl<D: Device> Device for FaultDevice<D> {
    fn recv(&mut self, buf: &mut [u8], now: Instant) -> std::io::Result<Option<(usize, RxMeta)>> {
        loop {
            if let Some(p) = self.faults.inbound.pop(now) {
                let n = p.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), p.get(..n)) {
                    dst.copy_from_slice(src);
                }
                return Ok(Some((n, RxMeta::default())));
            }
            // Nothing due: take the next packet from the device (what the injector drops
            // or holds back makes us read on, until the device is empty).
            let Some((n, meta)) = self.inner.recv(&mut self.scratch, now)? else {
                return Ok(None);
            };
            let packet = self.scratch.get(..n).unwrap_or_default();
            let (medium, inbound) = (self.inner.medium(), &mut self.faults.inbound);
            gso::wire_view(medium, packet, meta.gso_size, meta.csum_trusted, &mut |p| {
                inbound.push(p.to_vec(), now)
            });
        }
    }

    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) -> std::io::Result<()> {
        let (medium, outbound) = (self.inner.medium(), &mut self.faults.outbound);
        // `meta` is the default: we accepted no offload. Cut anyway if it is not.
        gso::wire_view(medium, packet, meta.gso_size, meta.csum_partial, &mut |p| {
            outbound.push(p.to_vec(), now)
        });
        self.release_outbound(now);
        Ok(())
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.raw_fd()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    /// None: see the type's documentation.
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn poll_at(&self) -> Option<Instant> {
        [self.faults.poll_at(), self.inner.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    fn release(&mut self, now: Instant) -> std::io::Result<()> {
        self.release_outbound(now);
        self.inner.release(now)
    }

    fn fault_stats(&self) -> Option<FaultStats> {
        let mut stats = self.faults.stats();
        if let Some(below) = self.inner.fault_stats() {
            stats.add(&below);
        }
        Some(stats)
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
    fn both_directions_have_their_own_injector() {
        let mut faults = Faults::new(
            FaultConfig {
                loss: 0.5,
                ..FaultConfig::default()
            },
            4,
        );
        for i in 0..100u8 {
            faults.inbound.push(vec![i], t(0));
            faults.outbound.push(vec![i], t(0));
        }
        let batch = drain(&mut faults.inbound, t(0));
        assert!(batch.len() < 80 && batch.len() > 20);
        let out = drain(&mut faults.outbound, t(0));
        assert_eq!(faults.stats().packets, 200);
        assert_eq!(
            faults.stats().dropped,
            200 - batch.len() as u64 - out.len() as u64
        );
        assert_eq!(faults.poll_at(), None);
    }

    /// The wrapper over an in-memory link: what it drops (both ways) is decided by the
    /// seed alone, so the same seed drops the same packets.
    #[test]
    fn device_drops_deterministically_with_a_seed() {
        use crate::link::memory::pair;
        use crate::link::offload::TxMeta;
        let cfg = FaultConfig {
            loss: 0.3,
            ..FaultConfig::default()
        };
        let run = |seed| {
            let (ours, mut peer) = pair().unwrap();
            let mut dev = FaultDevice::new(ours, cfg.clone(), seed);
            assert_eq!(dev.offloads(), Offloads::default(), "declines offloads");
            let mut buf = vec![0u8; dev.recv_buf_len()];
            let (mut out, mut inb) = (Vec::new(), Vec::new());
            for i in 0..100u8 {
                dev.send(&[i], TxMeta::default(), t(0)).unwrap();
                peer.send(&[i], TxMeta::default(), t(0)).unwrap();
            }
            while let Some((n, _)) = peer.recv(&mut buf, t(0)).unwrap() {
                out.push(buf[..n].to_vec());
            }
            while let Some((n, _)) = dev.recv(&mut buf, t(0)).unwrap() {
                inb.push(buf[..n].to_vec());
            }
            let stats = dev.fault_stats().unwrap();
            assert_eq!(stats.packets, 200);
            assert_eq!(stats.dropped, 200 - out.len() as u64 - inb.len() as u64);
            (out, inb)
        };
        let (out, inb) = run(5);
        assert!((50..95).contains(&out.len()), "{}", out.len());
        assert!((50..95).contains(&inb.len()), "{}", inb.len());
        assert_eq!(run(5), (out.clone(), inb), "same seed, same drops");
        assert_ne!(run(6).0, out, "another seed, other drops");
    }

    /// Corruption through the wrapper flips one bit per packet, the same bits for the same
    /// seed; a delayed packet comes out of `recv` only once due, and `poll_at` says when.
    #[test]
    fn device_corrupts_and_delays_deterministically() {
        use crate::link::memory::pair;
        use crate::link::offload::TxMeta;
        let corrupting = FaultConfig {
            corrupt: 1.0,
            ..FaultConfig::default()
        };
        let run = |seed| {
            let (ours, mut peer) = pair().unwrap();
            let mut dev = FaultDevice::new(ours, corrupting.clone(), seed);
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            for _ in 0..20 {
                dev.send(&[0u8; 32], TxMeta::default(), t(0)).unwrap();
                let (n, _) = peer.recv(&mut buf, t(0)).unwrap().unwrap();
                let flipped: u32 = buf[..n].iter().map(|b| b.count_ones()).sum();
                assert_eq!(flipped, 1, "exactly one bit flipped");
                got.push(buf[..n].to_vec());
            }
            assert_eq!(dev.fault_stats().unwrap().corrupted, 20);
            got
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));

        let delaying = FaultConfig {
            delay: Duration::from_millis(40),
            ..FaultConfig::default()
        };
        let (ours, mut peer) = pair().unwrap();
        let mut dev = FaultDevice::new(ours, delaying, 1);
        let mut buf = [0u8; 64];
        peer.send(b"late in", TxMeta::default(), t(0)).unwrap();
        dev.send(b"late out", TxMeta::default(), t(0)).unwrap();
        // The inbound packet is taken from the link at 10 ms: due at 50 ms.
        assert_eq!(dev.recv(&mut buf, t(10)).unwrap(), None, "held");
        assert_eq!(peer.recv(&mut buf, t(10)).unwrap(), None, "held");
        assert_eq!(dev.poll_at(), Some(t(40)));
        dev.release(t(40)).unwrap();
        assert_eq!(peer.recv(&mut buf, t(40)).unwrap().map(|(n, _)| n), Some(8));
        assert_eq!(dev.poll_at(), Some(t(50)));
        assert_eq!(dev.recv(&mut buf, t(49)).unwrap(), None);
        assert_eq!(dev.recv(&mut buf, t(50)).unwrap().map(|(n, _)| n), Some(7));
        assert_eq!(dev.poll_at(), None);
    }

    /// Wrapping composes, and the order decides what a capture shows: outside the fault
    /// injector it records what the stack sent (every packet), inside it records the wire
    /// (only what the injector let through).
    #[test]
    fn composition_order_decides_what_the_capture_sees() {
        use crate::link::memory::pair;
        use crate::link::offload::TxMeta;
        use crate::link::pcap::{PcapDevice, PcapReader, PcapWriter};
        let lossy = FaultConfig {
            loss: 0.5,
            ..FaultConfig::default()
        };
        let recorded = |bytes: &[u8]| PcapReader::new(bytes).unwrap().count();
        // pcap(fault(link)): the capture sees the stack's side.
        let (ours, mut peer) = pair().unwrap();
        let capture = PcapWriter::new(Vec::new()).unwrap();
        let mut outer = PcapDevice::new(FaultDevice::new(ours, lossy.clone(), 9), capture);
        for i in 0..100u8 {
            outer.send(&[i], TxMeta::default(), t(0)).unwrap();
        }
        let dropped = outer.fault_stats().unwrap().dropped;
        assert!(dropped > 0);
        let mut buf = [0u8; 8];
        let mut crossed = 0;
        while peer.recv(&mut buf, t(0)).unwrap().is_some() {
            crossed += 1;
        }
        assert_eq!(crossed, 100 - dropped);
        let (_, w) = outer.into_parts();
        assert_eq!(recorded(w.lock().unwrap().get_ref()), 100);
        // fault(pcap(link)): the capture sees the wire; same seed, same drops.
        let (ours, _peer) = pair().unwrap();
        let capture = PcapWriter::new(Vec::new()).unwrap();
        let mut inner = FaultDevice::new(PcapDevice::new(ours, capture), lossy, 9);
        for i in 0..100u8 {
            inner.send(&[i], TxMeta::default(), t(0)).unwrap();
        }
        assert_eq!(inner.fault_stats().unwrap().dropped, dropped);
        let FaultDevice { inner, .. } = inner;
        let (_, w) = inner.into_parts();
        assert_eq!(recorded(w.lock().unwrap().get_ref()) as u64, 100 - dropped);
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
