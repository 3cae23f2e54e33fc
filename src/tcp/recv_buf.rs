//! The receive buffer: in-order bytes waiting for the application, plus out-of-order
//! bytes held until the gap before them is filled (reassembly).
//!
//! Memory is allocated lazily: the ring grows (doubling) up to the capacity as data needs
//! it and is freed whenever the application has read everything and nothing is held, so
//! an idle connection costs no buffer memory.

use super::spare::{self, MIN_ALLOCATION};

/// How many separate out-of-order ranges are tracked; a segment that would create one
/// more is dropped (the peer retransmits it), so a peer cannot make us keep unbounded
/// state (smoltcp bounds its assembler the same way; Linux bounds its out-of-order queue
/// by the buffer's memory). Large: a window of megabytes through an overflowing drop-tail
/// queue loses every other segment of a burst, and each range dropped here is data the
/// sender must send again although it arrived.
pub const MAX_HELD_RANGES: usize = 256;

/// In-order data for the application and out-of-order data held for reassembly, in one
/// bounded ring buffer. Offsets in the API count from RCV.NXT.
///
/// RFC 9293 §3.3.1 receive sequence space:
///
/// ```text
///                        1          2          3
///                    ----------|----------|----------
///                           RCV.NXT    RCV.NXT
///                                     +RCV.WND
///
///         1 - old sequence numbers that have been acknowledged
///         2 - sequence numbers allowed for new reception
///         3 - future sequence numbers that are not yet allowed
/// ```
///
/// How the buffer maps onto it:
///
/// ```text
///   storage (ring, `capacity` bytes)
///   +-----------------+------------------------------------------------+
///   | readable        |  window = capacity - readable                  |
///   | (acked, unread) |  [gap][held][gap][held]........                |
///   +-----------------+------------------------------------------------+
///   ^ head            ^ offset 0 = RCV.NXT                             ^ RCV.NXT+RCV.WND
/// ```
///
/// Bytes that arrive at offset 0 become readable at once, together with any held range
/// they now touch; RCV.NXT advances by that amount. Held ranges are a small sorted list
/// (like smoltcp's `Assembler`), bounded so a peer cannot make us track unbounded state.
///
#[derive(Clone, Debug)]
pub struct RecvBuffer {
    /// The ring; its length is what is allocated now (at most `capacity`).
    storage: Vec<u8>,
    /// The most bytes the buffer holds: the largest window it offers.
    capacity: usize,
    /// Index in `storage` of the first unread byte.
    head: usize,
    /// In-order bytes not yet read by the application.
    readable: usize,
    /// Held out-of-order ranges `[start, end)` relative to RCV.NXT: sorted, disjoint, not
    /// touching each other, and never starting at 0 (that data would be readable).
    held: Vec<(usize, usize)>,
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes (the largest window it can offer).
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            storage: Vec::new(),
            capacity,
            head: 0,
            readable: 0,
            held: Vec::new(),
        }
    }

    /// Total size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Let the buffer hold up to `capacity` bytes (receive autotuning). Never smaller than
    /// now: the window already offered stays covered (RFC 9293 §3.8.6: the right edge is
    /// not moved left). Memory is not allocated here, only as data arrives.
    pub fn grow_capacity(&mut self, capacity: usize) {
        self.capacity = self.capacity.max(capacity);
    }

    /// Bytes of memory allocated for the ring now (grows on demand up to `capacity`).
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Store `data` that starts `offset` bytes past RCV.NXT. Bytes at or beyond
    /// [`window`](Self::window) are dropped; overlaps with held data are fine (the newer
    /// copy wins, TCP guarantees they are equal). Returns how many bytes became
    /// contiguous, i.e. how far RCV.NXT advances.
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> usize {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return 0;
        }
        let end = offset.saturating_add(data.len()).min(window);
        let data = &data[..end - offset];

        // Bound the bookkeeping: a range that would be a new separate entry is refused
        // when the list is full (RFC 9293 §3.10.7.4 allows dropping out-of-order data).
        let touches = self.held.iter().any(|&(s, e)| offset <= e && s <= end);
        if offset != 0 && !touches && self.held.len() >= MAX_HELD_RANGES {
            log::debug!("reassembly: {MAX_HELD_RANGES} ranges held, dropping {offset}..{end}");
            return 0;
        }

        if self.readable + end > self.storage.len() {
            self.grow(self.readable + end);
        }
        self.copy_in(self.readable + offset, data);
        self.add_range(offset, end);

        // Data at RCV.NXT: the first range becomes readable.
        match self.held.first().copied() {
            Some((0, adv)) => {
                self.held.remove(0);
                for r in &mut self.held {
                    r.0 -= adv;
                    r.1 -= adv;
                }
                self.readable += adv;
                adv
            }
            _ => 0,
        }
    }

    /// Copy in-order bytes into `out`; returns how many (0 when nothing is readable).
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.readable);
        if n == 0 {
            return 0;
        }
        let cap = self.storage.len();
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.storage[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.storage[..n - first]);
        self.head = (self.head + n) % cap;
        self.readable -= n;
        if self.readable == 0 && self.held.is_empty() {
            // Nothing stored: give the memory back and restart at the beginning.
            spare::give(std::mem::take(&mut self.storage));
            self.head = 0;
        }
        n
    }

    /// In-order bytes the application can read now.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Free space from RCV.NXT, `capacity - readable`: the window to advertise.
    pub fn window(&self) -> usize {
        self.capacity() - self.readable
    }

    /// Bytes of out-of-order data held (above a gap).
    pub fn out_of_order_bytes(&self) -> usize {
        self.held.iter().map(|&(s, e)| e - s).sum()
    }

    /// Whether any out-of-order data is held.
    pub fn has_out_of_order(&self) -> bool {
        !self.held.is_empty()
    }

    /// Held out-of-order ranges as `(start, end)` offsets relative to RCV.NXT, sorted (for
    /// SACK blocks, RFC 2018).
    pub fn out_of_order_ranges(&self) -> Vec<(usize, usize)> {
        self.held.clone()
    }

    /// How many separate out-of-order ranges are held.
    pub fn out_of_order_count(&self) -> usize {
        self.held.len()
    }

    /// The held ranges, as [`out_of_order_ranges`](Self::out_of_order_ranges) without
    /// copying them (up to [`MAX_HELD_RANGES`] on every ACK).
    pub fn out_of_order_iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.held.iter().copied()
    }

    /// Reallocate the ring to at least `need` bytes (doubling, at most `capacity`),
    /// moving its contents so that `head` is at the start; offsets relative to `head`
    /// (readable bytes, held ranges) stay valid.
    fn grow(&mut self, need: usize) {
        let size = need
            .checked_next_power_of_two()
            .unwrap_or(need)
            .max(self.storage.len().saturating_mul(2))
            .max(MIN_ALLOCATION)
            .min(self.capacity);
        let mut storage = spare::take(size);
        let old = self.storage.len();
        let first = old - self.head;
        storage[..first].copy_from_slice(&self.storage[self.head..]);
        storage[first..old].copy_from_slice(&self.storage[..self.head]);
        spare::give(std::mem::replace(&mut self.storage, storage));
        self.head = 0;
    }

    /// Copy `data` into the ring starting `pos` bytes past `head` (pos + len <= allocated).
    fn copy_in(&mut self, pos: usize, data: &[u8]) {
        let cap = self.storage.len();
        if cap == 0 || data.is_empty() {
            return;
        }
        let start = (self.head + pos) % cap;
        let first = data.len().min(cap - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Add `[start, end)` to the held list, merging everything it overlaps or touches.
    fn add_range(&mut self, start: usize, end: usize) {
        let (mut s, mut e) = (start, end);
        // Remove every range that overlaps or touches [s, e), widening it.
        self.held.retain(|&(hs, he)| {
            if hs <= e && s <= he {
                s = s.min(hs);
                e = e.max(he);
                false
            } else {
                true
            }
        });
        let at = self.held.partition_point(|&(hs, _)| hs < s);
        self.held.insert(at, (s, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0u8; b.readable()];
        let n = b.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn in_order() {
        let mut b = RecvBuffer::new(10);
        assert_eq!(b.window(), 10);
        assert_eq!(b.insert(0, b"abc"), 3);
        assert_eq!(b.insert(0, b"de"), 2);
        assert_eq!(b.readable(), 5);
        assert_eq!(b.window(), 5);
        let mut out = [0u8; 4];
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        assert_eq!(b.window(), 9);
        assert_eq!(read_all(&mut b), b"e");
        assert_eq!(b.read(&mut out), 0);
        assert!(!b.has_out_of_order());
    }

    #[test]
    fn gap_then_fill() {
        let mut b = RecvBuffer::new(20);
        assert_eq!(b.insert(3, b"def"), 0);
        assert!(b.has_out_of_order());
        assert_eq!(b.out_of_order_ranges(), vec![(3, 6)]);
        assert_eq!(b.readable(), 0);
        // Out-of-order data does not shrink the advertised window.
        assert_eq!(b.window(), 20);
        assert_eq!(b.insert(0, b"abc"), 6);
        assert!(!b.has_out_of_order());
        assert_eq!(read_all(&mut b), b"abcdef");
    }

    #[test]
    fn several_gaps_overlaps_and_duplicates() {
        let mut b = RecvBuffer::new(100);
        let src: Vec<u8> = (0..40u8).collect();
        assert_eq!(b.insert(10, &src[10..15]), 0);
        assert_eq!(b.insert(20, &src[20..25]), 0);
        assert_eq!(b.insert(30, &src[30..40]), 0);
        assert_eq!(b.out_of_order_ranges(), vec![(10, 15), (20, 25), (30, 40)]);
        // Duplicate.
        assert_eq!(b.insert(20, &src[20..25]), 0);
        assert_eq!(b.out_of_order_ranges(), vec![(10, 15), (20, 25), (30, 40)]);
        // Overlapping two held ranges and bridging them.
        assert_eq!(b.insert(13, &src[13..22]), 0);
        assert_eq!(b.out_of_order_ranges(), vec![(10, 25), (30, 40)]);
        // Touching (adjacent) merges too.
        assert_eq!(b.insert(25, &src[25..30]), 0);
        assert_eq!(b.out_of_order_ranges(), vec![(10, 40)]);
        // Fill the start, partially overlapping the held range.
        assert_eq!(b.insert(0, &src[0..12]), 40);
        assert_eq!(read_all(&mut b), src);
    }

    #[test]
    fn offsets_shift_after_advance() {
        let mut b = RecvBuffer::new(100);
        b.insert(10, b"0123456789");
        b.insert(30, b"xyz");
        assert_eq!(b.insert(0, b"ABCDE"), 5);
        // RCV.NXT moved by 5: held ranges are now relative to it.
        assert_eq!(b.out_of_order_ranges(), vec![(5, 15), (25, 28)]);
        assert_eq!(b.insert(0, b"FGHIJ"), 15);
        assert_eq!(b.out_of_order_ranges(), vec![(10, 13)]);
        assert_eq!(read_all(&mut b), b"ABCDEFGHIJ0123456789");
        // Reading does not move RCV.NXT, so held offsets stay.
        assert_eq!(b.out_of_order_ranges(), vec![(10, 13)]);
        assert_eq!(b.insert(0, b"klmnopqrst"), 13);
        assert_eq!(read_all(&mut b), b"klmnopqrstxyz");
    }

    #[test]
    fn out_of_window_is_dropped_or_trimmed() {
        let mut b = RecvBuffer::new(10);
        assert_eq!(b.insert(10, b"zz"), 0);
        assert_eq!(b.insert(100, b"zz"), 0);
        assert!(!b.has_out_of_order());
        // Straddling the right edge: the part inside is kept.
        assert_eq!(b.insert(8, b"89AB"), 0);
        assert_eq!(b.out_of_order_ranges(), vec![(8, 10)]);
        assert_eq!(b.insert(0, b"01234567"), 10);
        assert_eq!(read_all(&mut b), b"0123456789");
        // With unread data the window shrinks and the edge moves with it.
        assert_eq!(b.insert(0, b"abcdef"), 6);
        assert_eq!(b.window(), 4);
        assert_eq!(b.insert(4, b"x"), 0);
        assert!(!b.has_out_of_order());
        assert_eq!(b.insert(0, b"ghijkl"), 4);
        assert_eq!(b.window(), 0);
        assert_eq!(b.insert(0, b"m"), 0);
        assert_eq!(read_all(&mut b), b"abcdefghij");
    }

    #[test]
    fn ring_wraps_with_held_data() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.insert(0, b"012345"), 6);
        let mut out = [0u8; 5];
        assert_eq!(b.read(&mut out), 5); // head at 5, "5" unread, window 7
        assert_eq!(b.insert(3, b"9ab"), 0); // stored across the end of storage
        assert_eq!(b.insert(0, b"678"), 6);
        assert_eq!(read_all(&mut b), b"56789ab");
    }

    #[test]
    fn held_range_limit() {
        let mut b = RecvBuffer::new(10 * MAX_HELD_RANGES + 1000);
        for i in 0..MAX_HELD_RANGES {
            b.insert(10 + i * 10, b"x");
        }
        assert_eq!(b.out_of_order_ranges().len(), MAX_HELD_RANGES);
        // A new separate range is refused...
        let beyond = 10 * MAX_HELD_RANGES + 500;
        assert_eq!(b.insert(beyond, b"y"), 0);
        assert_eq!(b.out_of_order_ranges().len(), MAX_HELD_RANGES);
        assert!(!b.out_of_order_ranges().contains(&(beyond, beyond + 1)));
        // ...but one extending an existing range is taken, and in-order data always is.
        b.insert(11, b"x");
        assert_eq!(b.out_of_order_ranges()[0], (10, 12));
        assert_eq!(b.insert(0, b"0123456789"), 12);
        assert_eq!(b.out_of_order_ranges().len(), MAX_HELD_RANGES - 1);
    }

    #[test]
    fn allocates_lazily_and_frees_when_drained() {
        let mut b = RecvBuffer::new(65_535);
        assert_eq!(b.allocated(), 0, "an idle buffer holds no memory");
        assert_eq!(b.window(), 65_535);
        assert_eq!(b.insert(0, b"abc"), 3);
        assert_eq!(b.allocated(), MIN_ALLOCATION);
        // Out-of-order data far into the window grows the ring to cover it.
        assert_eq!(b.insert(20_000, b"xyz"), 0);
        assert_eq!(b.allocated(), 32_768);
        assert_eq!(b.out_of_order_ranges(), vec![(20_000, 20_003)]);
        assert_eq!(read_all(&mut b), b"abc");
        assert_eq!(b.allocated(), 32_768, "held data keeps the memory");
        let fill = vec![9u8; 20_000];
        assert_eq!(b.insert(0, &fill), 20_003);
        let got = read_all(&mut b);
        assert_eq!(got.len(), 20_003);
        assert_eq!(&got[20_000..], b"xyz");
        assert_eq!(b.allocated(), 0);
        // Never more than the capacity.
        let mut small = RecvBuffer::new(100);
        assert_eq!(small.insert(0, &[1u8; 500]), 100);
        assert_eq!(small.allocated(), 100);
    }

    #[test]
    fn growing_a_wrapped_ring_keeps_data_and_held_ranges() {
        let mut b = RecvBuffer::new(1 << 16);
        let src: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.insert(0, &src[..4000]), 4000);
        let mut tmp = vec![0u8; 3000];
        assert_eq!(b.read(&mut tmp), 3000); // head at 3000 of 4096
        assert_eq!(b.insert(0, &src[4000..5000]), 1000); // wraps: 1000 readable... 2000
        assert_eq!(b.insert(1000, &src[6000..7000]), 0); // held, wrapped
        assert_eq!(b.allocated(), 4096);
        // Grow while wrapped with held data.
        assert_eq!(b.insert(10_000, &src[15_000..16_000]), 0);
        assert!(b.allocated() >= 16_384);
        assert_eq!(b.insert(0, &src[5000..6000]), 2000);
        assert_eq!(b.insert(0, &src[7000..15_000]), 9000);
        assert_eq!(read_all(&mut b), src[3000..16_000].to_vec());
    }

    #[test]
    fn zero_capacity_and_empty_inserts() {
        let mut b = RecvBuffer::new(0);
        assert_eq!(b.insert(0, b"abc"), 0);
        assert_eq!(b.window(), 0);
        let mut r = RecvBuffer::new(4);
        assert_eq!(r.insert(0, b""), 0);
        assert_eq!(r.insert(usize::MAX, b"abc"), 0);
        assert!(!r.has_out_of_order());
    }

    #[test]
    fn random_reassembly_matches_source() {
        // Deliver a stream in shuffled, overlapping, duplicated chunks through a small
        // buffer read in pieces; the output must equal the input.
        let src: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut x: u64 = 42;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let mut b = RecvBuffer::new(512);
        let mut nxt = 0usize; // absolute RCV.NXT
        let mut out = Vec::new();
        while out.len() < src.len() {
            // A chunk somewhere in [nxt - 50, nxt + window + 50).
            let lo = nxt.saturating_sub(50);
            let start = lo + rnd((b.window() + 100) as u64) as usize;
            let len = 1 + rnd(120) as usize;
            let start = start.min(src.len() - 1);
            let end = (start + len).min(src.len());
            if end > nxt {
                let s = start.max(nxt);
                nxt += b.insert(s - nxt, &src[s..end]);
            }
            if rnd(3) == 0 {
                let mut tmp = vec![0u8; rnd(300) as usize];
                let n = b.read(&mut tmp);
                out.extend_from_slice(&tmp[..n]);
            }
            if nxt == src.len() {
                let n = b.readable();
                let mut tmp = vec![0u8; n];
                b.read(&mut tmp);
                out.extend_from_slice(&tmp);
            }
        }
        assert_eq!(out, src);
    }
}
