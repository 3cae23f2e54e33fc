//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//!
//! Its front is SND.UNA. Bytes before SND.NXT have been sent at least once and are kept
//! for retransmission; bytes after it are waiting for window (RFC 9293 §3.3.1):
//!
//! ```text
//!                    1         2          3          4
//!               ----------|----------|----------|----------
//!                      SND.UNA    SND.NXT    SND.UNA
//!                                           +SND.WND
//!
//!         1 - old sequence numbers that have been acknowledged   (already consumed)
//!         2 - sequence numbers of unacknowledged data            (buffer offsets 0..)
//!         3 - sequence numbers allowed for new data transmission
//!         4 - future sequence numbers that are not yet allowed
//! ```
//!
//! Offsets given to [`SendBuffer::peek`] count from SND.UNA. The storage is a ring buffer
//! that grows on demand (doubling) up to the configured capacity and is given back when a
//! large one empties, so an idle connection costs a few bytes instead of the whole
//! capacity (10,000 idle connections × 256 KiB would be 2.5 GiB).

/// Smallest allocation once something is written.
const MIN_STORAGE: usize = 2048;
/// An emptied ring larger than this is freed (a small one is kept for the next write).
const KEEP_STORAGE: usize = 16 * 1024;

/// Unacknowledged outgoing bytes, a bounded ring buffer whose front is SND.UNA.
#[derive(Clone, Debug)]
pub struct SendBuffer {
    /// The ring; its length grows up to `limit`.
    storage: Vec<u8>,
    /// Size of the last ring freed when it emptied: a busy connection that drains its
    /// buffer often gets it back in one allocation instead of a chain of doublings.
    last_size: usize,
    /// Most bytes held at once.
    limit: usize,
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
            last_size: 0,
            limit: capacity,
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
        self.limit
    }

    /// Bytes allocated now (at most [`capacity`](Self::capacity)).
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Make the ring at least `need` bytes long, moving the held bytes to its start.
    fn grow(&mut self, need: usize) {
        let old = self.storage.len();
        let new = need
            .max(old.saturating_mul(2))
            .max(MIN_STORAGE)
            .max(std::mem::take(&mut self.last_size))
            .min(self.limit);
        let mut storage = vec![0u8; new];
        let first = self.len.min(old - self.head);
        storage[..first].copy_from_slice(&self.storage[self.head..self.head + first]);
        storage[first..self.len].copy_from_slice(&self.storage[..self.len - first]);
        self.storage = storage;
        self.head = 0;
    }

    /// Append as much of `data` as fits; returns how many bytes were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.len + n > self.storage.len() {
            self.grow(self.len + n);
        }
        let cap = self.storage.len();
        let tail = (self.head + self.len) % cap;
        // At most two copies: up to the end of the storage, then from its start.
        let first = n.min(cap - tail);
        self.storage[tail..tail + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
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
            // Restart at the beginning so small exchanges never straddle the wrap.
            self.head = 0;
            if self.storage.len() > KEEP_STORAGE {
                self.last_size = self.storage.len();
                self.storage = Vec::new();
            }
        }
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
    fn grows_on_demand_and_frees_when_empty() {
        let mut b = SendBuffer::new(100_000);
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.write(b"abc"), 3);
        assert_eq!(b.allocated(), MIN_STORAGE);
        b.consume(2); // head at 2: the next growth must keep the order
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert_eq!(b.write(&big), 5000);
        assert!(b.allocated() >= 5001);
        let mut out = vec![0u8; 5001];
        assert_eq!(b.peek(0, &mut out), 5001);
        assert_eq!(out[0], b'c');
        assert_eq!(&out[1..], &big[..]);
        let huge = vec![7u8; 200_000];
        assert_eq!(b.write(&huge), 100_000 - 5001);
        assert_eq!(b.allocated(), 100_000);
        b.consume(100_000);
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.free(), 100_000);
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
