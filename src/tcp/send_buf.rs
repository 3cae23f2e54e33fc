//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//!
//! Offsets given to [`SendBuffer::peek`] count from SND.UNA. The storage is a ring buffer
//! allocated lazily: it grows (doubling) up to the capacity as data is written, and is
//! freed whenever everything has been acknowledged, so ten thousand idle connections cost
//! no buffer memory. In steady streaming it neither grows nor shrinks, so writes and
//! acknowledgments do not allocate.

use super::spare::{self, MIN_ALLOCATION};

/// Unacknowledged outgoing bytes, a bounded ring buffer whose front is SND.UNA.
///
/// Its front is SND.UNA. Bytes before SND.NXT have been sent at least once and are kept
/// for retransmission; bytes after it are waiting for window (RFC 9293 §3.3.1):
///
/// ```text
///                    1         2          3          4
///               ----------|----------|----------|----------
///                      SND.UNA    SND.NXT    SND.UNA
///                                           +SND.WND
///
///         1 - old sequence numbers that have been acknowledged   (already consumed)
///         2 - sequence numbers of unacknowledged data            (buffer offsets 0..)
///         3 - sequence numbers allowed for new data transmission
///         4 - future sequence numbers that are not yet allowed
/// ```
///
#[derive(Clone, Debug)]
pub struct SendBuffer {
    /// The ring; its length is what is allocated now (at most `capacity`).
    storage: Vec<u8>,
    /// The most bytes the buffer holds.
    capacity: usize,
    /// Index in `storage` of the byte at SND.UNA.
    head: usize,
    /// Bytes held.
    len: usize,
}

impl SendBuffer {
    /// An empty buffer able to hold `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            storage: Vec::new(),
            capacity,
            head: 0,
            len: 0,
        }
    }

    /// Bytes held (written and not yet acknowledged).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for more writes.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Total size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Change the most bytes the buffer holds (like `SO_SNDBUF` on an open socket). Never
    /// below what it holds now: written data is not dropped.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(self.len);
    }

    /// Bytes of memory allocated for the ring now (grows on demand up to `capacity`).
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Append as much of `data` as fits; returns how many bytes were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        // At most two pieces: up to the end of the storage, then from its start.
        let mut n = 0;
        while n < data.len() {
            let rest = data.get(n..).unwrap_or_default();
            let k = self.write_with(rest.len(), |free| {
                let k = free.len().min(rest.len());
                free[..k].copy_from_slice(&rest[..k]);
                k
            });
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    }

    /// Let `fill` write up to `max` bytes straight into the ring (e.g. a file `read`), so
    /// that they are not copied from a buffer of the caller's first. `fill` gets one
    /// contiguous free piece, which may be shorter than `max` where the ring wraps (call
    /// again for the rest), and returns how many bytes it wrote; that many are appended.
    pub fn write_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let want = max.min(self.free());
        if want == 0 {
            return 0;
        }
        if self.len + want > self.storage.len() {
            self.grow(self.len + want);
        }
        let cap = self.storage.len();
        let tail = (self.head + self.len) % cap;
        let piece = want.min(cap - tail);
        let Some(free) = self.storage.get_mut(tail..tail + piece) else {
            return 0;
        };
        let n = fill(free).min(piece);
        self.len += n;
        n
    }

    /// Copy bytes starting `offset` bytes past SND.UNA into `out`; returns how many were
    /// copied (fewer than `out.len()` near the end, 0 if `offset >= len()`).
    pub fn peek(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let cap = self.storage.len();
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        out[..first].copy_from_slice(&self.storage[start..start + first]);
        out[first..n].copy_from_slice(&self.storage[..n - first]);
        n
    }

    /// Append up to `len` bytes starting `offset` bytes past SND.UNA to `out`; returns how
    /// many were appended. Like [`SendBuffer::peek`], but straight into a packet being
    /// built (no zero-filled scratch space, no intermediate vector).
    pub fn extend_into(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = len.min(self.len - offset);
        let cap = self.storage.len();
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        out.extend_from_slice(&self.storage[start..start + first]);
        out.extend_from_slice(&self.storage[..n - first]);
        n
    }

    /// Up to `len` bytes starting `offset` bytes past SND.UNA, as the (at most two) pieces
    /// of the ring they occupy, without copying: for a device that gathers a packet from
    /// several buffers (`writev`).
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let n = len.min(self.len - offset);
        let cap = self.storage.len();
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        (
            self.storage.get(start..start + first).unwrap_or_default(),
            self.storage.get(..n - first).unwrap_or_default(),
        )
    }

    /// Drop `n` acknowledged bytes from the front (SND.UNA advances by `n`); more than
    /// `len()` just empties the buffer.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        self.head = (self.head + n) % self.storage.len();
        self.len -= n;
        if self.len == 0 {
            // Everything acknowledged: give the memory back (an idle connection holds
            // none) and restart at the beginning.
            spare::give(std::mem::take(&mut self.storage));
            self.head = 0;
        }
    }

    /// Reallocate the ring to hold at least `need` bytes (doubling, at most `capacity`),
    /// moving the held bytes to the start.
    fn grow(&mut self, need: usize) {
        let size = need
            .checked_next_power_of_two()
            .unwrap_or(need)
            .max(self.storage.len().saturating_mul(2))
            .max(MIN_ALLOCATION)
            .min(self.capacity);
        let mut storage = spare::take(size);
        let n = self.peek(0, &mut storage);
        debug_assert_eq!(n, self.len);
        spare::give(std::mem::replace(&mut self.storage, storage));
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_peek_consume() {
        let mut b = SendBuffer::new(10);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 10);
        assert_eq!(b.write(b"hello"), 5);
        assert_eq!(b.len(), 5);
        assert_eq!(b.free(), 5);
        let mut out = [0u8; 3];
        assert_eq!(b.peek(1, &mut out), 3);
        assert_eq!(&out, b"ell");
        assert_eq!(b.peek(4, &mut out), 1);
        assert_eq!(out[0], b'o');
        assert_eq!(b.peek(5, &mut out), 0);
        assert_eq!(b.peek(500, &mut out), 0);
        b.consume(2);
        assert_eq!(b.len(), 3);
        assert_eq!(b.peek(0, &mut out), 3);
        assert_eq!(&out, b"llo");
    }

    #[test]
    fn extend_into_appends_across_the_wrap() {
        let mut b = SendBuffer::new(MIN_ALLOCATION);
        let data: Vec<u8> = (0..MIN_ALLOCATION).map(|i| i as u8).collect();
        assert_eq!(b.write(&data), MIN_ALLOCATION);
        b.consume(MIN_ALLOCATION - 10);
        // 10 bytes at the end of the ring, 20 more from its start.
        let more: Vec<u8> = (0..20u8).map(|i| 200 + i).collect();
        assert_eq!(b.write(&more), 20);
        let mut out = vec![0xee];
        assert_eq!(
            b.extend_into(5, 100, &mut out),
            25,
            "cut at the end of the data"
        );
        let mut expected = vec![0xee];
        expected.extend_from_slice(&data[MIN_ALLOCATION - 5..]);
        expected.extend_from_slice(&more);
        assert_eq!(out, expected, "appended after what was there, in order");
        let mut peeked = vec![0u8; 25];
        assert_eq!(b.peek(5, &mut peeked), 25);
        assert_eq!(out[1..], peeked[..], "the same bytes as peek");
        assert_eq!(b.extend_into(30, 10, &mut out), 0, "past the end: nothing");
        assert_eq!(out.len(), 26);
        // The same bytes in place: the two pieces of the ring, no copy.
        let (first, second) = b.slices(5, 100);
        assert_eq!((first.len(), second.len()), (5, 20), "split at the wrap");
        assert_eq!([first, second].concat(), out[1..]);
        assert_eq!(b.slices(12, 3), (&more[2..5], &[][..]), "within one piece");
        assert_eq!(
            b.slices(30, 10),
            (&[][..], &[][..]),
            "past the end: nothing"
        );
    }

    #[test]
    fn write_with_fills_the_ring_in_place() {
        let mut b = SendBuffer::new(MIN_ALLOCATION);
        assert_eq!(
            b.write_with(100, |buf| {
                assert_eq!(buf.len(), 100);
                buf[..60].fill(7);
                60
            }),
            60,
            "what the filler wrote"
        );
        let mut out = vec![0u8; 60];
        assert_eq!(b.peek(0, &mut out), 60);
        assert!(out.iter().all(|&x| x == 7));
        // At the end of the ring the piece stops at the wrap; the next call gets the rest.
        assert_eq!(
            b.write(&vec![1; MIN_ALLOCATION - 100]),
            MIN_ALLOCATION - 100
        );
        b.consume(60);
        let first = b.write_with(1000, |buf| {
            buf.fill(2);
            buf.len()
        });
        assert_eq!(first, 40, "up to the end of the storage");
        let second = b.write_with(1000, |buf| {
            buf.fill(3);
            buf.len()
        });
        assert_eq!(second, 60, "the rest of the free space, from the start");
        assert_eq!(b.free(), 0);
        assert_eq!(b.write_with(10, |_| unreachable!("no room: not called")), 0);
        assert_eq!(
            b.write_with(10, |_| 99),
            0,
            "a filler claiming more is clamped"
        );
        let mut all = vec![0u8; b.len()];
        b.peek(0, &mut all);
        assert_eq!(
            &all[MIN_ALLOCATION - 100..],
            &[&[2u8; 40][..], &[3u8; 60][..]].concat()[..]
        );
    }

    #[test]
    fn write_accepts_only_free_space() {
        let mut b = SendBuffer::new(4);
        assert_eq!(b.write(b"abcdef"), 4);
        assert_eq!(b.free(), 0);
        assert_eq!(b.write(b"x"), 0);
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.free(), 4);
    }

    #[test]
    fn ring_wraps() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"012345"), 6);
        b.consume(5); // head at 5, one byte "5"
        assert_eq!(b.write(b"6789abc"), 7); // wraps around the end
        assert_eq!(b.len(), 8);
        let mut out = [0u8; 8];
        assert_eq!(b.peek(0, &mut out), 8);
        assert_eq!(&out, b"56789abc");
        let mut mid = [0u8; 4];
        assert_eq!(b.peek(2, &mut mid), 4);
        assert_eq!(&mid, b"789a");
        b.consume(4);
        assert_eq!(b.peek(0, &mut mid), 4);
        assert_eq!(&mid, b"9abc");
    }

    #[test]
    fn allocates_lazily_and_frees_when_acknowledged() {
        let mut b = SendBuffer::new(1 << 20);
        assert_eq!(b.allocated(), 0, "an idle buffer holds no memory");
        assert_eq!(b.write(b"hi"), 2);
        assert_eq!(b.allocated(), MIN_ALLOCATION);
        // Grows by doubling as the data needs it, never beyond the capacity.
        let big = vec![7u8; 10_000];
        assert_eq!(b.write(&big), 10_000);
        assert_eq!(b.allocated(), 16_384);
        assert_eq!(b.len(), 10_002);
        let mut out = vec![0u8; 10_002];
        assert_eq!(b.peek(0, &mut out), 10_002);
        assert_eq!(&out[..2], b"hi");
        assert!(out[2..].iter().all(|&x| x == 7));
        b.consume(10_002);
        assert_eq!(b.allocated(), 0);
        let mut small = SendBuffer::new(100);
        assert_eq!(small.write(&[1u8; 500]), 100);
        assert_eq!(small.allocated(), 100);
    }

    #[test]
    fn growing_a_wrapped_ring_keeps_the_order() {
        let mut b = SendBuffer::new(1 << 16);
        let src: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        // Fill 4000 of the 4096 allocated, consume 3000, write 2000 more: wraps.
        assert_eq!(b.write(&src[..4000]), 4000);
        b.consume(3000);
        assert_eq!(b.write(&src[4000..6000]), 2000);
        assert_eq!(b.allocated(), 4096);
        // Now grow while wrapped.
        assert_eq!(b.write(&src[6000..20_000]), 14_000);
        let mut out = vec![0u8; b.len()];
        assert_eq!(b.peek(0, &mut out), 17_000);
        assert_eq!(out, src[3000..20_000].to_vec());
    }

    #[test]
    fn capacity_changes_keep_the_data() {
        let mut b = SendBuffer::new(5000);
        let src: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.write(&src), 5000);
        b.set_capacity(1000);
        assert_eq!(
            (b.capacity(), b.free()),
            (5000, 0),
            "not below what it holds"
        );
        b.consume(4500);
        b.set_capacity(9000);
        assert_eq!(b.write(&src[5000..]), 4000);
        let mut out = vec![0u8; b.len()];
        assert_eq!(b.peek(0, &mut out), 4500);
        assert_eq!(out, src[4500..].to_vec());
    }

    #[test]
    fn zero_capacity_is_harmless() {
        let mut b = SendBuffer::new(0);
        assert_eq!(b.write(b"abc"), 0);
        let mut out = [0u8; 2];
        assert_eq!(b.peek(0, &mut out), 0);
        b.consume(3);
        assert!(b.is_empty());
    }

    #[test]
    fn long_stream_through_small_ring() {
        // Push 10 000 bytes through a 7-byte ring in odd chunks; the peeked stream must
        // equal what was written.
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut b = SendBuffer::new(7);
        let (mut written, mut got) = (0, Vec::new());
        let mut step = 1;
        while got.len() < src.len() {
            written += b.write(&src[written..(written + step).min(src.len())]);
            let mut out = [0u8; 3];
            let n = b.peek(0, &mut out[..step.min(3)]);
            got.extend_from_slice(&out[..n]);
            b.consume(n);
            step = step % 5 + 1;
        }
        assert_eq!(got, src);
    }
}
