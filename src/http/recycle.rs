//! Memory one request leaves behind, kept for the next request on the same thread.
//!
//! A keep-alive request through [`HttpConn`](super::HttpConn) needs the same few buffers
//! every time: the strings of the parsed head (method, target, field text and list), the
//! decoded path, and the output buffer its response is written into. Allocating and freeing
//! them per request was a tenth of the event loop's user time. A connection cannot keep them
//! itself — an idle connection must stay small (thousands of them sit between requests) — so
//! they go back to a small per-thread stock instead: the event loop answers one request at a
//! time, so a stock of a few serves all of its connections. What is too large to keep goes
//! back to the allocator.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::parse::RequestHead;
use super::request::{Headers, Version};

/// Most spare requests and most spare output buffers kept per thread.
const MAX_SPARE: usize = 4;
/// Largest heap footprint of a spare request or capacity of a spare buffer kept.
const MAX_KEEP: usize = 16 * 1024;

/// The parts of a finished request whose memory the next one reuses.
pub(crate) struct SpareRequest {
    /// The head to parse into (`parse::parse_request_head_into`).
    pub head: RequestHead,
    /// The decoded path (`request::split_target_into`).
    pub path: String,
    /// The query.
    pub query: Option<String>,
}

impl SpareRequest {
    fn new() -> Self {
        SpareRequest {
            head: RequestHead {
                method: String::new(),
                target: String::new(),
                version: Version::Http11,
                headers: Headers::new(),
            },
            path: String::new(),
            query: None,
        }
    }

    /// Bytes of heap this request holds.
    fn footprint(&self) -> usize {
        self.head.method.capacity()
            + self.head.target.capacity()
            + self.head.headers.heap_bytes()
            + self.path.capacity()
            + self.query.as_ref().map_or(0, String::capacity)
    }
}

/// Smallest request body worth keeping for the next one: below this, the allocator's own
/// free lists serve as well. Above it, a fresh allocation is fresh pages from the kernel,
/// and touching them one page fault at a time was 45 % of the time of a 32 MiB upload.
const BODY_KEEP_MIN: usize = 1024 * 1024;
/// How long a spare body is kept: long enough for the next request of a series of uploads,
/// short enough that an idle server gives the memory back.
const BODY_KEEP_FOR: Duration = Duration::from_secs(2);

thread_local! {
    static REQUESTS: RefCell<Vec<SpareRequest>> = const { RefCell::new(Vec::new()) };
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// One large body buffer and when it was given back.
    static BODY: RefCell<Option<(Vec<u8>, Instant)>> = const { RefCell::new(None) };
}

/// An empty buffer with room for a request body of `len` bytes, if a spare one that large
/// was given back less than [`BODY_KEEP_FOR`] ago (`None`: allocate as usual).
pub(crate) fn take_body(len: usize, now: Instant) -> Option<Vec<u8>> {
    expire_body(now);
    if len < BODY_KEEP_MIN {
        // A small body would hold the large buffer for nothing.
        return None;
    }
    BODY.with(|b| {
        let mut b = b.borrow_mut();
        if b.as_ref().is_some_and(|(buf, _)| buf.capacity() >= len) {
            b.take().map(|(mut buf, _)| {
                buf.clear();
                buf
            })
        } else {
            None
        }
    })
}

/// Keep a large buffer (a request body, or the echo of one once it is sent) for the next
/// large request body on this thread; one is kept, the larger.
pub(crate) fn give_body(buf: Vec<u8>, now: Instant) {
    if buf.capacity() < BODY_KEEP_MIN {
        return;
    }
    BODY.with(|b| {
        let mut b = b.borrow_mut();
        if b.as_ref()
            .is_none_or(|(kept, _)| kept.capacity() <= buf.capacity())
        {
            *b = Some((buf, now));
        }
    });
}

/// Free the spare body if it was kept long enough; returns when the one kept expires, for
/// the caller's timer (an idle server must still give the memory back).
pub(crate) fn expire_body(now: Instant) -> Option<Instant> {
    BODY.with(|b| {
        let mut b = b.borrow_mut();
        let until = b.as_ref().map(|(_, since)| *since + BODY_KEEP_FOR)?;
        if now >= until {
            *b = None;
            return None;
        }
        Some(until)
    })
}

/// When the spare body expires, if one is kept.
pub(crate) fn body_expiry() -> Option<Instant> {
    BODY.with(|b| b.borrow().as_ref().map(|(_, since)| *since + BODY_KEEP_FOR))
}

/// A request to parse into: a spare one, or a new one (no allocation until used).
pub(crate) fn take_request() -> SpareRequest {
    REQUESTS
        .with(|r| r.borrow_mut().pop())
        .unwrap_or_else(SpareRequest::new)
}

/// Keep `spare` for the next request on this thread, unless the stock is full or it is big.
pub(crate) fn give_request(mut spare: SpareRequest) {
    if spare.footprint() > MAX_KEEP {
        return;
    }
    // Fields a handler added own their text: free it now, not at the next request.
    spare.head.headers.clear();
    REQUESTS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() < MAX_SPARE {
            r.push(spare);
        }
    });
}

/// An empty buffer with room for `want` bytes: a spare one if it is big enough.
pub(crate) fn take_buffer(want: usize) -> Vec<u8> {
    let spare = BUFFERS.with(|b| b.borrow_mut().pop());
    match spare {
        Some(mut buf) => {
            buf.clear();
            buf.reserve(want);
            buf
        }
        None => Vec::with_capacity(want),
    }
}

/// Keep `buf` for the next response on this thread, unless the stock is full or it is big.
pub(crate) fn give_buffer(buf: Vec<u8>) {
    if buf.capacity() > MAX_KEEP || buf.capacity() == 0 {
        return;
    }
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < MAX_SPARE {
            b.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_body_is_kept_briefly_for_the_next_one() {
        BODY.with(|b| *b.borrow_mut() = None);
        let t0 = Instant::now();
        // Small bodies are the allocator's business.
        give_body(Vec::with_capacity(1000), t0);
        assert_eq!(body_expiry(), None);
        let mut big = Vec::with_capacity(4 * BODY_KEEP_MIN);
        big.extend_from_slice(b"previous body");
        let at = big.as_ptr();
        give_body(big, t0);
        assert_eq!(body_expiry(), Some(t0 + BODY_KEEP_FOR));
        // Too small for a larger request: left for another; not wasted on a small one.
        assert!(take_body(5 * BODY_KEEP_MIN, t0).is_none());
        assert!(take_body(100, t0).is_none());
        // Large enough: the same memory, emptied, and no longer kept.
        let again = take_body(3 * BODY_KEEP_MIN, t0 + Duration::from_millis(10)).unwrap();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at);
        assert_eq!(body_expiry(), None);
        // The larger of two is kept.
        give_body(again, t0);
        give_body(Vec::with_capacity(2 * BODY_KEEP_MIN), t0);
        assert_eq!(
            BODY.with(|b| b.borrow().as_ref().map(|(v, _)| v.as_ptr())),
            Some(at)
        );
        // Freed once it has been kept long enough, whether or not anyone asks for it.
        assert_eq!(
            expire_body(t0 + BODY_KEEP_FOR / 2),
            Some(t0 + BODY_KEEP_FOR)
        );
        assert_eq!(expire_body(t0 + BODY_KEEP_FOR), None);
        assert_eq!(body_expiry(), None);
        give_body(Vec::with_capacity(BODY_KEEP_MIN), t0);
        assert!(
            take_body(BODY_KEEP_MIN, t0 + BODY_KEEP_FOR).is_none(),
            "expired first"
        );
    }

    #[test]
    fn buffers_and_requests_come_back_bounded() {
        // Other tests may have run on this thread (`--test-threads=1`).
        BUFFERS.with(|b| b.borrow_mut().clear());
        REQUESTS.with(|r| r.borrow_mut().clear());
        // A buffer given back is the next one taken, emptied, with room for what is asked.
        let mut buf = Vec::with_capacity(2000);
        buf.extend_from_slice(b"old");
        let at = buf.as_ptr();
        give_buffer(buf);
        let again = take_buffer(1500);
        assert!(again.is_empty() && again.capacity() >= 1500);
        assert_eq!(again.as_ptr(), at);
        // Too big to keep: not kept.
        give_buffer(Vec::with_capacity(MAX_KEEP + 1));
        assert!(BUFFERS.with(|b| b.borrow().is_empty()));
        // The stock is bounded.
        for _ in 0..2 * MAX_SPARE {
            give_buffer(Vec::with_capacity(100));
            give_request(SpareRequest::new());
        }
        assert_eq!(BUFFERS.with(|b| b.borrow().len()), MAX_SPARE);
        assert_eq!(REQUESTS.with(|r| r.borrow().len()), MAX_SPARE);
        let mut big = take_request();
        big.path = "x".repeat(MAX_KEEP + 1);
        REQUESTS.with(|r| r.borrow_mut().clear());
        give_request(big);
        assert!(REQUESTS.with(|r| r.borrow().is_empty()));
    }
}
