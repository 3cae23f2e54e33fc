//! TCP sequence numbers (RFC 9293 §3.4).
//!
//! Sequence numbers live in a space of 2³² values that wraps around: after `4294967295`
//! comes `0`. They are compared "modulo 2³²": `a < b` means `b` is ahead of `a` by less
//! than half the space, which is what the RFC's `=<` and `<` mean in its acceptability
//! tests. [`SeqNum`] makes this the only way to compare them, so the state machine never
//! does raw `u32` arithmetic that would break at the wrap.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A 32-bit TCP sequence (or acknowledgment) number with wrapping arithmetic and
/// comparisons by signed distance (RFC 9293 §3.4).
///
/// It deliberately does not implement `Ord`: sequence space is circular, so there is no
/// total order. Use [`SeqNum::lt`] and friends, which are correct for any two numbers less
/// than 2³¹ apart.
///
/// ```text
///               half the space ahead          half the space behind
///         <------------- 2^31 ------------><------------ 2^31 ------------>
///  ... ---+---------------------------------+--------------------------------+--- ...
///         a                                 a + 2^31                     a + 2^32 = a
///         b is "greater than" a when (b - a) mod 2^32 lies in (0, 2^31)
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self - other` as a signed distance: positive when `self` is ahead of `other`.
    pub fn diff(self, other: SeqNum) -> i32 {
        // Reinterpreting the wrapped difference as i32 is exactly the RFC's "modulo 2^32"
        // comparison; the cast is the point.
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self < other` in sequence space.
    pub fn lt(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }

    /// `self =< other` in sequence space.
    pub fn le(self, other: SeqNum) -> bool {
        self.diff(other) <= 0
    }

    /// `self > other` in sequence space.
    pub fn gt(self, other: SeqNum) -> bool {
        self.diff(other) > 0
    }

    /// `self >= other` in sequence space.
    pub fn ge(self, other: SeqNum) -> bool {
        self.diff(other) >= 0
    }

    /// The later of the two numbers in sequence space.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.ge(other) {
            self
        } else {
            other
        }
    }

    /// The earlier of the two numbers in sequence space.
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self.le(other) {
            self
        } else {
            other
        }
    }

    /// `lo =< self < hi` in sequence space (an empty range when `lo == hi`).
    ///
    /// This is the shape of most of the RFC's tests, e.g. the receive-window check
    /// `RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND` (RFC 9293 §3.10.7.4).
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        // Measure both from `lo` so the range may straddle the wrap.
        let off = self.0.wrapping_sub(lo.0);
        let len = hi.0.wrapping_sub(lo.0);
        off < len
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: u32 = u32::MAX;

    #[test]
    fn plain_comparisons() {
        let a = SeqNum(100);
        let b = SeqNum(200);
        assert!(a.lt(b) && a.le(b) && !a.gt(b) && !a.ge(b));
        assert!(b.gt(a) && b.ge(a) && !b.lt(a) && !b.le(a));
        assert!(a.le(a) && a.ge(a) && !a.lt(a) && !a.gt(a));
        assert_eq!(b.diff(a), 100);
        assert_eq!(a.diff(b), -100);
    }

    #[test]
    fn comparisons_across_the_wrap() {
        let before = SeqNum(TOP - 5);
        let after = SeqNum(10);
        assert!(before.lt(after), "2^32-6 is before 10 after wrapping");
        assert!(after.gt(before));
        assert_eq!(after.diff(before), 16);
        assert_eq!(before.diff(after), -16);
        assert_eq!(before.max(after), after);
        assert_eq!(after.max(before), after);
        assert_eq!(before.min(after), before);
        assert_eq!(after.min(before), before);
    }

    #[test]
    fn arithmetic_wraps() {
        assert_eq!(SeqNum(TOP) + 1, SeqNum(0));
        assert_eq!(SeqNum(TOP - 1) + 10, SeqNum(8));
        assert_eq!(SeqNum(3) - 5, SeqNum(TOP - 1));
        let mut s = SeqNum(TOP);
        s += 2;
        assert_eq!(s, SeqNum(1));
        assert_eq!((SeqNum(TOP) + 1).diff(SeqNum(TOP)), 1);
    }

    #[test]
    fn half_space_boundary() {
        let a = SeqNum(0);
        // 2^31 - 1 ahead is still "greater".
        assert!(SeqNum(0x7fff_ffff).gt(a));
        // Exactly 2^31 apart is ambiguous; the signed difference calls it "less".
        assert!(SeqNum(0x8000_0000).lt(a));
        assert_eq!(SeqNum(0x8000_0000).diff(a), i32::MIN);
    }

    #[test]
    fn in_range_plain_and_wrapped() {
        assert!(SeqNum(5).in_range(SeqNum(5), SeqNum(10)));
        assert!(SeqNum(9).in_range(SeqNum(5), SeqNum(10)));
        assert!(!SeqNum(10).in_range(SeqNum(5), SeqNum(10)));
        assert!(!SeqNum(4).in_range(SeqNum(5), SeqNum(10)));
        // Empty range contains nothing.
        assert!(!SeqNum(5).in_range(SeqNum(5), SeqNum(5)));
        // Range straddling 2^32.
        let lo = SeqNum(TOP - 2);
        let hi = SeqNum(3);
        for v in [TOP - 2, TOP - 1, TOP, 0, 1, 2] {
            assert!(SeqNum(v).in_range(lo, hi), "{v} in [{lo}, {hi})");
        }
        for v in [TOP - 3, 3, 4, 1000] {
            assert!(!SeqNum(v).in_range(lo, hi), "{v} not in [{lo}, {hi})");
        }
    }

    #[test]
    fn display_is_the_plain_number() {
        assert_eq!(SeqNum(4_294_967_295).to_string(), "4294967295");
        assert_eq!(SeqNum::default().to_string(), "0");
    }
}
