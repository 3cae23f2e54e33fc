//! Hash tables whose keys the peer does not choose, with an unkeyed hash.
//!
//! The standard `HashMap` hashes with SipHash-1-3 under a random key, so that a peer who
//! picks the keys cannot make them collide (hash flooding). That costs about 200
//! instructions per lookup of a short key, paid on every request by three tables whose
//! keys the peer does not pick: the evented server's connection handles (made by the
//! stack), the router's routes (the operator's) and the file cache's paths. A path enters
//! the cache only when it names a small file that exists under the root, and the cache
//! holds at most 1024, so a peer cannot fill it with keys of its choosing; a path that is
//! only looked up does not change the table. Tables keyed by what the peer sends (TCP's
//! 4-tuples) keep SipHash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`WordHasher`]: only for keys the peer cannot choose (see above).
pub(crate) type OwnKeyMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Multiply-rotate hashing a word at a time (the scheme of rustc's `FxHasher`): a few
/// instructions per 8 bytes, no key, no resistance to chosen collisions.
#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher(u64);

/// An odd constant with well-spread bits (2^64 / π, rounded to odd).
const SEED: u64 = 0x517c_c1b7_2722_0a95;

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length goes in too, so that "a" and "a\0" differ.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The product's high bits are the well-mixed ones; the table takes its bucket from
    /// the low bits, so they are rotated down.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        BuildHasherDefault::<WordHasher>::default().hash_one(t)
    }

    #[test]
    fn word_hasher_separates_near_keys() {
        // Paths that differ in one byte, in length only, or in a byte past the first word.
        let keys = [
            "/",
            "/a",
            "/b",
            "/a\0",
            "/index.html",
            "/index.htm",
            "/index.htmm",
        ];
        let mut seen = std::collections::HashSet::new();
        for k in keys {
            assert!(seen.insert(hash(&k)), "{k:?} collides");
        }
        // Handles differing in index or generation only, spread over the low bits that
        // pick a bucket in a small table.
        let mut buckets = std::collections::HashSet::new();
        for index in 0u32..64 {
            buckets.insert(hash(&(index, 0u32)) & 63);
            assert_ne!(hash(&(index, 0u32)), hash(&(index, 1u32)));
        }
        assert!(
            buckets.len() >= 32,
            "64 handles in {} of 64 buckets",
            buckets.len()
        );
    }

    #[test]
    fn own_key_map_is_a_map() {
        let mut m: OwnKeyMap<String, u32> = OwnKeyMap::default();
        for i in 0..1000u32 {
            m.insert(format!("/file{i}.bin"), i);
        }
        for i in 0..1000u32 {
            assert_eq!(m.get(format!("/file{i}.bin").as_str()), Some(&i));
        }
        assert_eq!(m.get("/file1000.bin"), None);
    }
}
