//! Congestion control: slow start (the initial one ended by a rising RTT: HyStart, with
//! RFC 9406's detection),
//! congestion avoidance by CUBIC (RFC 9438, the default) or Reno, fast retransmit and
//! NewReno fast recovery (RFC 5681, RFC 6582), with the initial window of RFC 6928.
//!
//! The connection talks to the controller only through [`NewReno::on_round_sample`],
//! [`NewReno::on_ack`], [`NewReno::on_dup_ack`], [`NewReno::on_timeout`] and
//! [`NewReno::cwnd`]; the avoidance rule is chosen by [`Algorithm`].
//!
//! ```text
//!   cwnd
//!    ^            3 dup ACKs: ssthresh = flight/2,        RTO: ssthresh = flight/2,
//!    |     CA     cwnd = ssthresh + 3·MSS (fast recovery) cwnd = 1·MSS (slow start again)
//!    |    /\      /\                                     |
//!    |   /  \    /  \      /                             |
//!    |  / SS \  /    \    /                              |
//!    | /      \/      \__/                               |
//!    +------------------------------------------------------> time
//! ```

use std::time::Duration;

use super::seq::SeqNum;
use crate::time::Instant;

/// Which congestion-avoidance rule the controller follows (`tcp::Config::congestion`).
/// Slow start, fast retransmit / NewReno recovery and the RTO response are shared.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub enum Algorithm {
    /// RFC 5681 congestion avoidance (one MSS per RTT), halving on loss.
    NewReno,
    /// CUBIC (RFC 9438): cwnd follows a cubic function of the time since the last
    /// reduction, reduces by β = 0.7, and is never slower than Reno would be. The default,
    /// as Linux's: after a loss on a long path it regrows on its own clock rather than one
    /// MSS per round trip.
    #[default]
    Cubic,
}

/// RFC 9438 §4.6 multiplicative decrease factor.
const CUBIC_BETA: f64 = 0.7;
/// RFC 9438 §5.1 C, in segments per second cubed.
const CUBIC_C: f64 = 0.4;

/// CUBIC's state (RFC 9438 §4.1), windows in bytes.
#[derive(Clone, Debug, Default)]
struct Cubic {
    /// W_max: the window just before the last reduction.
    w_max: f64,
    /// Start of the current congestion-avoidance epoch, and K (seconds) for it.
    epoch: Option<(Instant, f64)>,
    /// W_est, the Reno-friendly window estimate (§4.3).
    w_est: f64,
    /// The clock and RTT of the ACK being processed.
    now: Instant,
    srtt: Duration,
}

/// RFC 9406 §4.3 constants of HyStart++'s delay-increase detection.
const HYSTART_MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const HYSTART_MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const HYSTART_MIN_RTT_DIVISOR: u32 = 8;
const HYSTART_N_RTT_SAMPLE: u32 = 8;
/// Delay-based exit from the initial slow start (HyStart): when the smallest RTT of a
/// round rises by an eighth of the last round's (4-16 ms), a queue is building at the
/// bottleneck, so slow start ends there (ssthresh = cwnd) instead of doubling on until
/// the queue overflows and a large part of a window is lost at once.
///
/// The rounds, samples and thresholds are RFC 9406's (HyStart++ §4.2, §4.3). What
/// follows the detection is Linux CUBIC's HyStart (`hystart_update`): congestion
/// avoidance at once, not RFC 9406's Conservative Slow Start. CSS grows by a quarter per
/// round for five rounds (3x in all) and resumes slow start when a round's smallest RTT
/// falls below the one that triggered it, which an unpaced sender's bursts make happen:
/// in a simulated 50 ms path with a one-BDP drop-tail queue, CSS still overflowed the
/// queue and the recovery that followed took a series of timeouts, while exiting at the
/// detection lost nothing (RFC 9406 §4.3 leaves such tuning to the implementation).
#[derive(Clone, Debug, Default)]
struct HyStart {
    /// §4.2 windowEnd: SND.MAX when the current round began; the round ends when an
    /// ACK covers it.
    window_end: Option<SeqNum>,
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    rtt_sample_count: u32,
    /// Slow start is over (ended by the delay rise, or a loss): HyStart applies to the
    /// initial slow start only.
    done: bool,
}

/// What the connection must do after the controller saw an ACK.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum AckAction {
    /// Nothing special: send what the (possibly larger) window allows.
    None,
    /// Retransmit the first unacknowledged segment now (fast retransmit on the third
    /// duplicate ACK, RFC 5681 §3.2, or a partial ACK in NewReno recovery, RFC 6582 §3.2).
    Retransmit,
}

/// Reno congestion control with the NewReno modification to fast recovery.
#[derive(Clone, Debug)]
pub struct NewReno {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged since cwnd last grew in congestion avoidance (RFC 5681 §3.1,
    /// the "appropriate byte counting" variant).
    bytes_acked: u32,
    /// Consecutive duplicate ACKs seen.
    dup_acks: u32,
    /// RFC 6582 `recover`, kept as SND.MAX (one past the highest sequence number sent)
    /// when recovery began.
    recover: SeqNum,
    in_recovery: bool,
    /// Recovery sends by RFC 6675's `pipe` (both sides SACK-permitted): cwnd is set to
    /// ssthresh on entry and neither inflated by duplicate ACKs nor deflated by partial
    /// ones — the scoreboard, not the window, accounts for what left the network.
    pipe_recovery: bool,
    /// Some when the CUBIC rule is selected.
    cubic: Option<Cubic>,
    hystart: HyStart,
    /// The window before the reduction of the current loss episode, restored by
    /// [`NewReno::undo`] when the reduction proves unnecessary.
    prior: Option<Prior>,
    /// RFC 7661 non-validated phase: the sender has not used half of cwnd in the last
    /// RTT, so ACKs do not grow cwnd ([`NewReno::set_app_limited`]).
    app_limited: bool,
}

/// What a congestion response changed, kept so it can be undone (RFC 4015 §3; Linux's
/// `prior_cwnd` and `prior_ssthresh`, and CUBIC's W_max as `bictcp_undo_cwnd` keeps it).
#[derive(Copy, Clone, Debug)]
struct Prior {
    cwnd: u32,
    ssthresh: u32,
    w_max: f64,
}

impl NewReno {
    /// A controller for a connection with sender MSS `mss`, whose initial send sequence
    /// number is `iss`. The initial window follows RFC 6928:
    /// `min(10·MSS, max(2·MSS, 14600))`.
    pub fn new(mss: u16, iss: SeqNum) -> NewReno {
        let mss = u32::from(mss.max(1));
        NewReno {
            mss,
            cwnd: Self::initial_window(mss),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            dup_acks: 0,
            recover: iss,
            in_recovery: false,
            pipe_recovery: false,
            cubic: None,
            hystart: HyStart::default(),
            prior: None,
            app_limited: false,
        }
    }

    /// Select the congestion-avoidance rule.
    pub fn set_algorithm(&mut self, algorithm: Algorithm) {
        self.cubic = (algorithm == Algorithm::Cubic).then(Cubic::default);
    }

    /// Recover by RFC 6675's `pipe` (the connection keeps a SACK scoreboard) instead of
    /// RFC 6582's window inflation.
    pub fn set_pipe_recovery(&mut self, on: bool) {
        self.pipe_recovery = on;
    }

    /// The rule in use.
    pub fn algorithm(&self) -> Algorithm {
        if self.cubic.is_some() {
            Algorithm::Cubic
        } else {
            Algorithm::NewReno
        }
    }

    /// Tell the controller the time and smoothed RTT before an ACK (CUBIC grows with time).
    pub fn set_clock(&mut self, now: Instant, srtt: Option<Duration>) {
        if let Some(c) = self.cubic.as_mut() {
            c.now = now;
            c.srtt = srtt.unwrap_or(Duration::from_millis(100));
        }
    }

    /// HyStart (see [`HyStart`]; RFC 9406 §4.2) for an ACK of new data up to `ack`,
    /// before [`on_ack`](Self::on_ack): `snd_max` is one past the highest sequence number
    /// sent (the end of the next round), `rtt` the RTT sample the ACK gave, if any.
    pub fn on_round_sample(&mut self, ack: SeqNum, snd_max: SeqNum, rtt: Option<Duration>) {
        let h = &mut self.hystart;
        if h.done || self.ssthresh != u32::MAX || self.in_recovery {
            h.done = true;
            return;
        }
        if h.window_end.is_none_or(|end| ack.ge(end)) {
            // A new round.
            h.window_end = Some(snd_max);
            h.last_round_min_rtt = h.current_round_min_rtt.take();
            h.rtt_sample_count = 0;
        }
        let Some(rtt) = rtt else {
            return;
        };
        h.current_round_min_rtt = Some(h.current_round_min_rtt.map_or(rtt, |m| m.min(rtt)));
        h.rtt_sample_count += 1;
        if h.rtt_sample_count < HYSTART_N_RTT_SAMPLE {
            return;
        }
        let (Some(current), Some(last)) = (h.current_round_min_rtt, h.last_round_min_rtt) else {
            return;
        };
        let thresh =
            (last / HYSTART_MIN_RTT_DIVISOR).clamp(HYSTART_MIN_RTT_THRESH, HYSTART_MAX_RTT_THRESH);
        if current >= last + thresh {
            log::debug!(
                "slow start ends at cwnd {}: round min RTT {current:?}, last {last:?}",
                self.cwnd
            );
            self.ssthresh = self.cwnd;
            h.done = true;
        }
    }

    /// A congestion event: the new ssthresh from `flight` (RFC 5681: flight/2; RFC 9438
    /// §4.6: cwnd·β), remembering W_max for CUBIC (with §4.7 fast convergence).
    fn reduce(&mut self, flight: u32) -> u32 {
        // A loss ends the initial slow start, and HyStart with it.
        self.hystart.done = true;
        let min = 2 * self.mss;
        let cwnd = self.cwnd;
        match self.cubic.as_mut() {
            None => (flight / 2).max(min),
            Some(c) => {
                let w = f64::from(cwnd);
                c.w_max = if w < c.w_max {
                    w * (1.0 + CUBIC_BETA) / 2.0
                } else {
                    w
                };
                c.epoch = None;
                ((f64::from(flight) * CUBIC_BETA) as u32).max(min)
            }
        }
    }

    /// CUBIC congestion avoidance for `acked` bytes (RFC 9438 §4.2 - §4.4).
    fn cubic_avoidance(&mut self, acked: u32) {
        let mss = f64::from(self.mss);
        let cwnd = f64::from(self.cwnd);
        let Some(c) = self.cubic.as_mut() else {
            return;
        };
        let (start, k) = match c.epoch {
            Some(e) => e,
            None => {
                // A new epoch (§4.2): K = cbrt((W_max − cwnd) / C) in segments; with no
                // reduction yet (cwnd above W_max) the curve starts here (K = 0).
                c.w_max = c.w_max.max(cwnd);
                c.w_est = cwnd;
                let k = ((c.w_max - cwnd) / mss / CUBIC_C).cbrt();
                c.epoch = Some((c.now, k));
                (c.now, k)
            }
        };
        // §4.2: the target one RTT ahead.
        let t = c.now.saturating_duration_since(start).as_secs_f64() + c.srtt.as_secs_f64();
        let w_cubic = CUBIC_C * (t - k).powi(3) * mss + c.w_max;
        // §4.3 Reno-friendly region: α = 3(1 − β)/(1 + β) segments per RTT.
        let alpha = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);
        c.w_est += alpha * mss * f64::from(acked) / cwnd.max(1.0);
        let new = if w_cubic < c.w_est {
            c.w_est
        } else {
            // §4.4: grow by (target − cwnd)/cwnd per segment acknowledged, target capped
            // at 1.5·cwnd.
            let target = w_cubic.clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd.max(1.0) * f64::from(acked)
        };
        if new.is_finite() {
            self.cwnd = new.clamp(cwnd, f64::from(u32::MAX / 2)) as u32;
        }
    }

    fn initial_window(mss: u32) -> u32 {
        // RFC 6928 §2.
        (10 * mss).min((2 * mss).max(14600))
    }

    /// Change the MSS (once the peer's MSS option is known); resets the initial window.
    pub fn set_mss(&mut self, mss: u16) {
        self.mss = u32::from(mss.max(1));
        self.cwnd = Self::initial_window(self.mss);
    }

    /// The path MTU shrank mid-connection (RFC 1191): the MSS becomes `mss`. A smaller
    /// MTU is no sign of congestion, so the window keeps what it learned — as Linux,
    /// whose window counts segments, the same number of (smaller) segments — instead of
    /// starting over from the initial window.
    pub fn on_pmtu_change(&mut self, mss: u16) {
        let old = u64::from(self.mss);
        let new = u64::from(mss.max(1));
        let scale = |v: u32| (u64::from(v) * new / old.max(1)).min(u64::from(u32::MAX / 2)) as u32;
        self.cwnd = scale(self.cwnd).max(new as u32);
        if self.ssthresh != u32::MAX {
            self.ssthresh = scale(self.ssthresh).max(2 * new as u32);
        }
        self.mss = new as u32;
    }

    /// RFC 5681 §4.1: the connection was idle for more than an RTO; cwnd goes back to at
    /// most the initial (restart) window. As Linux, ssthresh keeps three quarters of the
    /// old window, so slow start quickly regains what the path took before.
    pub fn restart_after_idle(&mut self) {
        let rw = Self::initial_window(self.mss);
        if self.cwnd <= rw {
            return;
        }
        if self.ssthresh != u32::MAX {
            self.ssthresh = self.ssthresh.max(self.cwnd / 4 * 3);
        }
        self.cwnd = rw;
        self.bytes_acked = 0;
        if let Some(c) = self.cubic.as_mut() {
            c.epoch = None;
        }
    }

    /// The congestion window in bytes.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The slow-start threshold in bytes (`u32::MAX` until the first loss).
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// True during NewReno fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }

    /// An ACK advanced SND.UNA to `ack`, acknowledging `acked` new bytes.
    pub fn on_ack(&mut self, ack: SeqNum, acked: u32, flight_after: u32) -> AckAction {
        self.dup_acks = 0;
        if self.in_recovery {
            if ack.ge(self.recover) {
                // RFC 6582 §3.2 step 3, full acknowledgment (`recover` is one past the
                // highest byte sent when recovery began): deflate the window.
                self.cwnd = self.ssthresh.min(flight_after.max(self.mss) + self.mss);
                self.in_recovery = false;
                self.bytes_acked = 0;
                return AckAction::None;
            }
            if self.pipe_recovery {
                // RFC 6675 §5: cwnd stays at ssthresh; `pipe` shrinks with the ACK.
                return AckAction::Retransmit;
            }
            // Partial acknowledgment: retransmit the next hole, deflate by the amount
            // acknowledged, add back one MSS if that was at least one MSS.
            self.cwnd = self.cwnd.saturating_sub(acked);
            if acked >= self.mss {
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
            self.cwnd = self.cwnd.max(self.mss);
            return AckAction::Retransmit;
        }
        if self.app_limited {
            // RFC 7661 §4.3: in the non-validated phase cwnd is not increased — it would
            // grow to a size the path never carried.
            return AckAction::None;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start (with RFC 3465 L = 2·SMSS).
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * self.mss));
        } else if self.cubic.is_some() {
            self.cubic_avoidance(acked);
        } else {
            // Congestion avoidance: about one MSS per RTT.
            self.bytes_acked = self.bytes_acked.saturating_add(acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
        AckAction::None
    }

    /// Extra bytes the sender may have outstanding beyond cwnd: RFC 3042 limited transmit
    /// allows one new segment for each of the first two duplicate ACKs.
    pub fn limited_transmit(&self) -> u32 {
        if self.in_recovery {
            0
        } else {
            self.dup_acks.min(2) * self.mss
        }
    }

    /// A duplicate ACK (RFC 5681 §2 definition) arrived. `snd_una` is the cumulative ACK,
    /// `snd_max` the highest sequence number sent, `flight` the bytes outstanding.
    /// `dupthresh` is normally 3; RFC 5827 early retransmit lowers it when fewer than four
    /// segments are outstanding and no new data can be sent. `sack_lost` says the SACK
    /// scoreboard proves SND.UNA lost (RFC 6675 IsLost), which removes the ambiguity
    /// `recover` guards against.
    pub fn on_dup_ack(
        &mut self,
        snd_una: SeqNum,
        snd_max: SeqNum,
        flight: u32,
        dupthresh: u32,
    ) -> AckAction {
        self.dup_acks = self.dup_acks.saturating_add(1);
        if self.in_recovery {
            // RFC 5681 §3.2 step 4: inflate for each segment that left the network (with
            // SACK, RFC 6675's `pipe` counts them instead).
            if !self.pipe_recovery {
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
            return AckAction::None;
        }
        if self.dup_acks >= dupthresh.clamp(1, 3) {
            // RFC 6582 §3.2 step 2, RFC 6675 §5 (RecoveryPoint): only enter recovery if
            // the ACK covers more than `recover` — here one past the highest sequence
            // number sent, so SND.UNA ≥ `recover` — so that losses of the flight a
            // timeout already dealt with do not start a second reduction right after it,
            // however many bytes SACKs show missing.
            // (`recover` starts at the ISS, so a lost first data segment still counts.)
            if snd_una.ge(self.recover) {
                // Entering recovery always starts a new episode: remember what to undo.
                self.prior = Some(self.snapshot());
                self.ssthresh = self.reduce(flight);
                // RFC 6675 §5 (4.2): cwnd = ssthresh; RFC 5681 §3.2 step 3 adds the three
                // segments the duplicate ACKs showed to have left.
                self.cwnd = if self.pipe_recovery {
                    self.ssthresh
                } else {
                    self.ssthresh.saturating_add(3 * self.mss)
                };
                self.recover = snd_max;
                self.in_recovery = true;
                return AckAction::Retransmit;
            }
        }
        AckAction::None
    }

    /// Duplicate ACKs counted since the last new ACK (or timeout).
    pub fn dup_acks(&self) -> u32 {
        self.dup_acks
    }

    /// The retransmission timer expired with `flight` bytes outstanding (RFC 5681 §3.1,
    /// equation 4; RFC 6582 §3.2 step 4).
    /// The window before the first reduction of the episode is kept for [`NewReno::undo`]
    /// (a repeated timeout, or one during fast recovery, belongs to the same episode; the
    /// connection calls [`NewReno::forget_prior`] when a new one begins).
    pub fn on_timeout(&mut self, flight: u32, snd_max: SeqNum) {
        if self.prior.is_none() {
            self.prior = Some(self.snapshot());
        }
        self.ssthresh = self.reduce(flight);
        self.cwnd = self.mss;
        self.bytes_acked = 0;
        self.dup_acks = 0;
        self.in_recovery = false;
        self.recover = snd_max;
    }
}

impl NewReno {
    fn snapshot(&self) -> Prior {
        Prior {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.cubic.as_ref().map_or(0.0, |c| c.w_max),
        }
    }

    /// The reduction of the current episode proved unnecessary (every retransmission
    /// spurious: RFC 3522 timestamps, RFC 3708 D-SACK, RFC 5682 F-RTO): restore the
    /// window and threshold from before it, as RFC 4015 §3 and Linux's
    /// `tcp_undo_cwnd_reduction` (never below what they are now, which the ACKs since may
    /// have grown), and leave recovery. False when there is nothing to undo.
    pub fn undo(&mut self) -> bool {
        let Some(p) = self.prior.take() else {
            return false;
        };
        self.cwnd = self.cwnd.max(p.cwnd);
        self.ssthresh = self.ssthresh.max(p.ssthresh);
        self.in_recovery = false;
        self.dup_acks = 0;
        self.bytes_acked = 0;
        if let Some(c) = self.cubic.as_mut() {
            c.w_max = c.w_max.max(p.w_max);
            c.epoch = None;
        }
        true
    }

    /// The episode is over without an undo: its prior window is no longer restorable.
    pub fn forget_prior(&mut self) {
        self.prior = None;
    }

    /// RFC 5682 §3.2 step 3 (a): F-RTO found the timeout genuine and the window goes
    /// on from at most `bytes` with the conventional RTO recovery.
    pub fn limit_cwnd(&mut self, bytes: u32) {
        self.cwnd = self.cwnd.min(bytes.max(self.mss));
    }

    /// RFC 7661: whether the connection is in the non-validated phase (it used less than
    /// half of cwnd over the last RTT, limited by the application or the peer's window).
    pub fn set_app_limited(&mut self, limited: bool) {
        self.app_limited = limited;
    }

    /// The sender MSS in bytes.
    pub fn mss(&self) -> u32 {
        self.mss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_rfc6928() {
        assert_eq!(NewReno::new(1460, SeqNum(0)).cwnd(), 14600);
        assert_eq!(NewReno::new(536, SeqNum(0)).cwnd(), 5360);
        assert_eq!(NewReno::new(9000, SeqNum(0)).cwnd(), 18000);
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mut cc = NewReno::new(1000, SeqNum(0));
        let w0 = cc.cwnd();
        cc.on_ack(SeqNum(1001), 1000, 0);
        assert_eq!(cc.cwnd(), w0 + 1000);
        cc.on_timeout(20_000, SeqNum(5000));
        assert_eq!(cc.cwnd(), 1000);
        assert_eq!(cc.ssthresh(), 10_000);
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows_to_w_max_in_k_seconds() {
        let mut cc = NewReno::new(1000, SeqNum(0));
        cc.set_algorithm(Algorithm::Cubic);
        let t0 = Instant::from_secs(100);
        let rtt = Some(Duration::from_millis(10));
        // Slow start to 100 segments, then a loss.
        cc.set_clock(t0, rtt);
        for i in 0..90u32 {
            cc.on_ack(SeqNum(1 + i * 1000), 1000, 0);
        }
        assert_eq!(cc.cwnd(), 100_000);
        cc.on_timeout(100_000, SeqNum(200_000));
        assert_eq!(cc.ssthresh(), 70_000, "β = 0.7");
        // Back in congestion avoidance at ssthresh: K = cbrt(30 / 0.4) ≈ 4.2 s to W_max.
        cc.cwnd = 70_000;
        let mut now = t0;
        let mut at_w_max = None;
        for step in 0..1000u32 {
            now += Duration::from_millis(10);
            cc.set_clock(now, rtt);
            let w = cc.cwnd();
            cc.on_ack(SeqNum(step), w / 10, w);
            if at_w_max.is_none() && cc.cwnd() >= 99_000 {
                at_w_max = Some(now.saturating_duration_since(t0));
            }
        }
        // W(t) = C·(t − K)³ + W_max is within one segment of W_max from t ≈ K − 1.4 s.
        let t = at_w_max.expect("cwnd regrows to W_max").as_secs_f64();
        assert!((2.5..4.5).contains(&t), "W_max reached after {t} s");
        assert!(cc.cwnd() > 100_000, "then probes beyond it");
    }

    /// Slow start for `rounds` rounds of ACKs of 1000 bytes each, the RTT samples of
    /// round `r` being `rtt(r)`; returns (cwnd, ssthresh) after each round.
    fn slow_start_rounds(
        cc: &mut NewReno,
        rounds: u32,
        rtt: impl Fn(u32) -> Duration,
    ) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut acked = 0u32;
        for r in 0..rounds {
            // This round's data: what cwnd let out when it began.
            let end = acked + cc.cwnd();
            while acked < end {
                acked += 1000;
                let ack = SeqNum(1 + acked);
                cc.on_round_sample(ack, SeqNum(1 + end + cc.cwnd()), Some(rtt(r)));
                cc.on_ack(ack, 1000, end - acked);
            }
            out.push((cc.cwnd(), cc.ssthresh()));
        }
        out
    }

    #[test]
    fn hystart_ends_slow_start_when_the_rtt_rises() {
        // RFC 9406 §4.2 detection: from round 4 on the RTT is 20 ms above the 100 ms base
        // (more than the 12.5 ms threshold), and slow start ends there: ssthresh = cwnd,
        // then congestion avoidance.
        let mut cc = NewReno::new(1000, SeqNum(0));
        let rounds = slow_start_rounds(&mut cc, 8, |r| ms(if r < 4 { 100 } else { 120 }));
        assert_eq!(rounds[3], (160_000, u32::MAX), "{rounds:?}");
        let (cwnd, ssthresh) = rounds[4];
        assert!((160_000..320_000).contains(&ssthresh), "{rounds:?}");
        assert!(cwnd < 2 * ssthresh, "{rounds:?}");
        // Congestion avoidance: far from doubling per round.
        assert!(rounds[7].0 < 2 * rounds[4].0, "{rounds:?}");
    }

    #[test]
    fn hystart_keeps_slow_start_while_the_rtt_rises_less_than_the_threshold() {
        // A flat RTT: classic slow start, doubling per round.
        let mut cc = NewReno::new(1000, SeqNum(0));
        let rounds = slow_start_rounds(&mut cc, 8, |_| ms(100));
        assert!(rounds.iter().all(|&(_, ss)| ss == u32::MAX), "{rounds:?}");
        assert_eq!(rounds[7].0, 10_000 << 8);
        // 10 ms above 100: below the threshold of 100/8 = 12.5 ms.
        let mut cc = NewReno::new(1000, SeqNum(0));
        let rounds = slow_start_rounds(&mut cc, 8, |r| ms(if r < 4 { 100 } else { 110 }));
        assert!(rounds.iter().all(|&(_, ss)| ss == u32::MAX), "{rounds:?}");
        // No detection in a slow start after a timeout: HyStart is for the initial one.
        let mut cc = NewReno::new(1000, SeqNum(0));
        cc.on_timeout(1_000_000, SeqNum(100_000));
        let ssthresh = cc.ssthresh();
        slow_start_rounds(&mut cc, 4, |r| ms(100 + 50 * u64::from(r)));
        assert_eq!(cc.ssthresh(), ssthresh);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fast_retransmit_and_newreno_recovery() {
        let mut cc = NewReno::new(1000, SeqNum(0));
        let una = SeqNum(1001);
        let max = SeqNum(10_001);
        assert_eq!(cc.on_dup_ack(una, max, 9000, 3), AckAction::None);
        assert_eq!(cc.on_dup_ack(una, max, 9000, 3), AckAction::None);
        assert_eq!(cc.on_dup_ack(una, max, 9000, 3), AckAction::Retransmit);
        assert!(cc.in_recovery());
        assert_eq!(cc.ssthresh(), 4500);
        assert_eq!(cc.cwnd(), 7500);
        // Partial ACK: retransmit the next hole, stay in recovery.
        assert_eq!(cc.on_ack(SeqNum(2001), 1000, 8000), AckAction::Retransmit);
        assert!(cc.in_recovery());
        // Full ACK: leave recovery with cwnd <= ssthresh.
        assert_eq!(cc.on_ack(SeqNum(10_001), 8000, 0), AckAction::None);
        assert!(!cc.in_recovery());
        assert!(cc.cwnd() <= 4500);
    }

    #[test]
    fn undo_restores_the_window_before_the_episode() {
        let mut cc = NewReno::new(1000, SeqNum(0));
        for i in 0..10u32 {
            cc.on_ack(SeqNum(1 + i * 1000), 1000, 0);
        }
        let (cwnd, ssthresh) = (cc.cwnd(), cc.ssthresh());
        assert_eq!(cwnd, 20_000);
        assert!(!cc.undo(), "nothing to undo before a reduction");
        // A timeout, then a second one in the same episode: undo goes back to before the
        // first.
        cc.on_timeout(20_000, SeqNum(30_000));
        cc.on_timeout(1000, SeqNum(30_000));
        assert_eq!(cc.cwnd(), 1000);
        assert!(cc.undo());
        assert_eq!((cc.cwnd(), cc.ssthresh()), (cwnd, ssthresh));
        assert!(!cc.undo(), "undone once");
        // Fast recovery: undo leaves it with the window from before.
        let una = SeqNum(30_001);
        for _ in 0..3 {
            cc.on_dup_ack(una, SeqNum(50_000), 20_000, 3);
        }
        assert!(cc.in_recovery());
        assert_eq!(cc.cwnd(), 13_000, "ssthresh 10000 + 3 segments");
        assert!(cc.undo());
        assert!(!cc.in_recovery());
        assert_eq!(cc.cwnd(), cwnd);
        // An episode that ended without undo is forgotten.
        cc.on_timeout(20_000, SeqNum(60_000));
        cc.forget_prior();
        assert!(!cc.undo());
        assert_eq!(cc.cwnd(), 1000);
    }
}
