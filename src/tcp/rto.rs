//! The retransmission timeout estimator of RFC 6298.
//!
//! ```text
//!   before any sample:      RTO <- initial (RFC 6298 (2.1): 1 s)
//!   first sample R:         SRTT <- R
//!                           RTTVAR <- R/2
//!                           RTO <- SRTT + max(G, K*RTTVAR, min)          (2.2)*
//!   later samples R':       RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
//!                           SRTT <- (1 - alpha) * SRTT + alpha * R'
//!                           RTO <- SRTT + max(G, K*RTTVAR, min)          (2.3)*
//!                           alpha = 1/8, beta = 1/4, K = 4, G = clock granularity
//!   RTO < min  =>  RTO <- min                                            (2.4)
//!   RTO > max  =>  RTO <- max (at least 60 s is allowed)                 (2.5)
//!   timer expires:          RTO <- RTO * 2  (back off, capped at max)    (5.5)
//! ```
//!
//! (*) The lower bound `min` (200 ms by default) applies to the variance term, not to the
//! whole RTO, as in Linux (`tcp_set_rto`: SRTT + max(mdev, rto_min)): on a path whose RTT
//! is steady the variance term shrinks towards G, and an RTO of barely more than SRTT
//! fires spuriously at the first delay spike or delayed ACK. RFC 6298 (2.4) would round
//! the RTO up to 1 s instead, which costs a second per loss on short paths.
//!
//! After a retransmitted SYN the RTO before any sample is 3 s (RFC 6298 §5.7).
//!
//! Karn's algorithm (RFC 6298 §3) — do not take samples from retransmitted segments — is
//! the caller's job: it decides which acknowledgments yield a sample.

use std::time::Duration;

/// Clock granularity G: our clock ticks in microseconds, but the RFC's G is what the
/// timer can resolve; 1 ms as in Linux.
const GRANULARITY: Duration = Duration::from_millis(1);
/// K in RFC 6298 (2.2).
const K: u32 = 4;

/// RFC 6298 round-trip time estimator and retransmission timeout (RTO).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// Smoothed round-trip time; `None` until the first sample.
    srtt: Option<Duration>,
    /// Round-trip time variation.
    rttvar: Duration,
    /// The RTO computed from the samples (or the initial one), before backoff.
    base: Duration,
    /// How many times the timer has backed off since the last sample or reset.
    backoffs: u32,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    /// An estimator with no samples yet: the RTO is `initial` (RFC 6298 (2.1) suggests
    /// 1 s), never below `min` nor above `max` (RFC 6298 (2.4), (2.5)).
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base: initial.clamp(min, max),
            backoffs: 0,
            min,
            max,
        }
    }

    /// Take a round-trip time measurement (RFC 6298 (2.2), (2.3)). A fresh sample also
    /// ends any backoff: the RTO is the newly computed one (RFC 6298 §5, after (5.7)).
    pub fn on_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                // (2.2) first measurement.
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // (2.3) RTTVAR first, using the old SRTT.
                let err = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar.saturating_mul(3).saturating_add(err) / 4;
                self.srtt = Some(srtt.saturating_mul(7).saturating_add(rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        let var = GRANULARITY.max(self.rttvar.saturating_mul(K)).max(self.min);
        self.base = srtt.saturating_add(var).clamp(self.min, self.max);
        self.backoffs = 0;
    }

    /// RFC 6298 §5.7: the SYN was retransmitted, so the handshake gave no sample; if there
    /// is still none, data transmission begins with an RTO of `fallback` (3 s) and no
    /// backoff.
    pub fn syn_retransmitted_fallback(&mut self, fallback: Duration) {
        if self.srtt.is_none() {
            self.base = fallback.clamp(self.min, self.max);
            self.backoffs = 0;
        }
    }

    /// The current retransmission timeout, including backoff, capped at `max`.
    pub fn rto(&self) -> Duration {
        // Doubling 32 times saturates any Duration we could meet; stop early.
        let factor = 1u32.checked_shl(self.backoffs.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The retransmission timer expired: double the RTO (RFC 6298 (5.5)), up to `max`.
    pub fn backoff(&mut self) {
        if self.rto() < self.max {
            self.backoffs = self.backoffs.saturating_add(1);
        }
    }

    /// Forget the backoff and use the computed RTO again (a connection does this only
    /// through a valid sample, [`RttEstimator::on_sample`], RFC 6298 §5.7).
    pub fn reset_backoff(&mut self) {
        self.backoffs = 0;
    }

    /// The smoothed round-trip time, once there has been a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip time variation (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn est() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(60_000))
    }

    #[test]
    fn initial_rto_before_samples() {
        let e = est();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), Duration::ZERO);
        // Initial below min is raised; above max is capped.
        assert_eq!(RttEstimator::new(ms(10), ms(200), ms(1000)).rto(), ms(200));
        assert_eq!(
            RttEstimator::new(ms(5000), ms(200), ms(1000)).rto(),
            ms(1000)
        );
    }

    #[test]
    fn first_sample_rule() {
        let mut e = est();
        e.on_sample(ms(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 4*50 = 300.
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn subsequent_samples_follow_rfc_6298() {
        let mut e = est();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms
        // SRTT = 7/8*100 + 1/8*200 = 112.5 ms; RTO = 112.5 + 250 = 362.5 ms
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
    }

    #[test]
    fn steady_samples_converge_and_min_bound_applies() {
        let mut e = est();
        for _ in 0..100 {
            e.on_sample(ms(10));
        }
        assert_eq!(e.srtt(), Some(ms(10)));
        assert!(e.rttvar() < Duration::from_micros(10));
        // SRTT + max(G, 4*RTTVAR, min): the 200 ms minimum bounds the variance term, as
        // Linux, so the RTO stays above SRTT by at least that much.
        assert_eq!(e.rto(), ms(210));
    }

    #[test]
    fn granularity_floor_on_variance() {
        // Without a min bound, a zero-variance estimate still adds G = 1 ms.
        let mut e = RttEstimator::new(ms(1000), Duration::ZERO, ms(60_000));
        for _ in 0..200 {
            e.on_sample(ms(50));
        }
        assert_eq!(e.rttvar(), Duration::ZERO);
        assert_eq!(e.rto(), ms(51));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(10_000));
        let mut seen = vec![e.rto()];
        for _ in 0..6 {
            e.backoff();
            seen.push(e.rto());
        }
        assert_eq!(
            seen,
            vec![
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000),
                ms(10_000)
            ]
        );
        // Many more backoffs never overflow.
        for _ in 0..1000 {
            e.backoff();
        }
        assert_eq!(e.rto(), ms(10_000));
        e.reset_backoff();
        assert_eq!(e.rto(), ms(1000));
    }

    #[test]
    fn sample_ends_backoff() {
        let mut e = est();
        e.backoff();
        e.backoff();
        assert_eq!(e.rto(), ms(4000));
        e.on_sample(ms(100));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn huge_sample_is_capped() {
        let mut e = est();
        e.on_sample(Duration::from_secs(1000));
        assert_eq!(e.rto(), ms(60_000));
        e.on_sample(Duration::MAX);
        assert_eq!(e.rto(), ms(60_000));
    }
}
