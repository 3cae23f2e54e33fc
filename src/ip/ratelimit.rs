//! A token bucket for ICMP error messages (RFC 4443 §2.4(f); RFC 1812 §4.3.2.8 for
//! IPv4): up to `burst` errors at once, then one per `interval`. Sans-IO: the caller
//! passes `now`. Linux uses the same shape (`icmp_ratelimit`, `icmpv6 ratelimit`: one
//! per second with a burst).

use std::time::Duration;

use crate::time::Instant;

/// Default refill interval: one error per 100 ms on average (10 per second).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Default burst.
pub const DEFAULT_BURST: u32 = 10;

/// A token bucket: each allowed message takes a token; tokens come back at one per
/// interval, up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    interval: Duration,
    burst: u32,
    tokens: u32,
    /// When the last token was added (or the bucket created).
    last: Option<Instant>,
    /// Messages refused.
    limited: u64,
}

impl Default for TokenBucket {
    fn default() -> TokenBucket {
        TokenBucket::new(DEFAULT_BURST, DEFAULT_INTERVAL)
    }
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled one per `interval`.
    pub fn new(burst: u32, interval: Duration) -> TokenBucket {
        TokenBucket {
            interval,
            burst,
            tokens: burst,
            last: None,
            limited: 0,
        }
    }

    /// Takes a token if there is one at `now`; `false` means "do not send" (counted).
    pub fn allow(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        if !self.interval.is_zero() {
            let elapsed = now.saturating_duration_since(last);
            let new = elapsed.as_nanos() / self.interval.as_nanos();
            if new > 0 {
                let add = u32::try_from(new).unwrap_or(u32::MAX);
                self.tokens = self.tokens.saturating_add(add).min(self.burst);
                // Keep the remainder so a steady stream gets exactly one per interval.
                let used = self.interval * add.min(u32::MAX / 2);
                self.last = Some(if self.tokens == self.burst {
                    now
                } else {
                    last + used
                });
            }
        }
        if self.tokens == 0 {
            self.limited += 1;
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Messages refused so far.
    pub fn limited(&self) -> u64 {
        self.limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn burst_then_one_per_interval() {
        let mut b = TokenBucket::new(3, Duration::from_millis(100));
        let sent = (0..10).filter(|_| b.allow(t(0))).count();
        assert_eq!(sent, 3);
        assert_eq!(b.limited(), 7);
        assert!(!b.allow(t(99)));
        assert!(b.allow(t(100)));
        assert!(!b.allow(t(150)));
        assert!(b.allow(t(200)));
        // A steady stream every 50 ms gets one message per 100 ms.
        let sent = (0..20).filter(|i| b.allow(t(250 + i * 50))).count();
        assert_eq!(sent, 10);
        // A long quiet time refills only up to the burst.
        let sent = (0..10).filter(|_| b.allow(t(100_000))).count();
        assert_eq!(sent, 3);
    }
}
