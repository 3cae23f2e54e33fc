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
//! allocated once at creation, so writes and acknowledgments never allocate.

/// Unacknowledged outgoing bytes, a fixed-capacity ring buffer whose front is SND.UNA.
#[derive(Clone, Debug)]
pub struct SendBuffer {
    storage: Box<[u8]>,
    /// Index in `storage` of the byte at SND.UNA.
    head: usize,
    /// Bytes held.
    len: usize,
}

impl SendBuffer {
    /// An empty buffer able to hold `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            storage: vec![0; capacity].into_boxed_slice(),
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
        self.storage.len()
    }

    /// Append as much of `data` as fits; returns how many bytes were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let cap = self.capacity();
        if n == 0 {
            return 0;
        }
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
        let cap = self.capacity();
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
        self.head = (self.head + n) % self.capacity();
        self.len -= n;
        if self.len == 0 {
            // Restart at the beginning so small exchanges never straddle the wrap.
            self.head = 0;
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
