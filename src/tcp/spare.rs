//! Ring storage that drained send and receive buffers give back, for the next buffer that
//! needs one on the same thread.
//!
//! Both buffers free their ring as soon as they are empty, so that an idle connection holds
//! no buffer memory. A keep-alive connection serving small requests empties both once per
//! request, and allocating the next ring meant zeroing it again (`vec![0; n]`): two 4 KiB
//! `calloc`s per request, the largest single cost of a small request in user space. Rings
//! of the smallest size are kept here instead, a few per thread (the event loop serves
//! connections one after the other, so a few dozen are enough for all of them). A reused ring
//! holds the bytes of an earlier connection, never read: a buffer reads only what it wrote.

use std::cell::RefCell;

/// The ring size kept: the smallest a buffer allocates.
pub(crate) const MIN_ALLOCATION: usize = 4096;
/// Most spare rings per thread (256 KiB): as many as the connections of a busy moment hold
/// at once (with 16, under 50 clients opening a connection per request, a third of the rings
/// still came from the allocator, zeroed).
const MAX_SPARE: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A ring of `size` bytes: a spare one if `size` is the size kept, else a new one.
pub(crate) fn take(size: usize) -> Vec<u8> {
    if size == MIN_ALLOCATION {
        if let Some(ring) = SPARE.with(|s| s.borrow_mut().pop()) {
            return ring;
        }
    }
    vec![0; size]
}

/// Give back a ring that is no longer needed (kept if it has the size kept and there is
/// room, else freed).
pub(crate) fn give(ring: Vec<u8>) {
    if ring.len() == MIN_ALLOCATION {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARE {
                s.push(ring);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_given_back_is_the_next_one_taken() {
        // Each test runs on its own thread: the stock starts empty.
        let ring = take(MIN_ALLOCATION);
        assert_eq!(ring.len(), MIN_ALLOCATION);
        let at = ring.as_ptr();
        give(ring);
        let again = take(MIN_ALLOCATION);
        assert_eq!(again.as_ptr(), at, "the same allocation, not a new one");
        assert_eq!(again.len(), MIN_ALLOCATION);
        // Other sizes are neither kept nor served from the stock.
        give(vec![0; 2 * MIN_ALLOCATION]);
        assert_eq!(take(2 * MIN_ALLOCATION).len(), 2 * MIN_ALLOCATION);
        assert!(SPARE.with(|s| s.borrow().is_empty()));
        // The stock is bounded.
        for _ in 0..MAX_SPARE + 5 {
            give(vec![0; MIN_ALLOCATION]);
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), MAX_SPARE);
    }
}
