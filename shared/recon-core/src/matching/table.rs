//! The matcher's hash tables of candidate indexes, built for batched probing: a table of 4-byte slots (a
//! candidate's index and a tag from its key's hash), open addressing with linear probing, sized once for the
//! candidates it may hold. Unlike a general-purpose table it tells where a hash will be looked for
//! ([`IndexTable::prefetch`]), so the phases hash a batch of keys first, ask the memory for their slots, and
//! probe when the slots have arrived: the probes' cache misses overlap instead of following one another
//! (the phases were waiting on memory, one miss at a time).
//!
//! The table never decides equality: a slot whose hash bits agree is only a candidate, and the caller's
//! `is` compares the keys themselves.

/// An empty slot.
const EMPTY: u32 = u32::MAX;

/// Asks the CPU to bring the cache line holding `r` closer (a hint: nothing is read). A no-op where no hint
/// is available without unstable features (the `match` Lambda's arm64: there the batches still let
/// independent probes overlap, without the hint's head start).
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` is a hint that never dereferences its address (and this one is a live
    // reference's); it needs only SSE, which every x86_64 target has.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch`] of element `i` of `items`, when there is one.
#[inline(always)]
pub(crate) fn prefetch_at<T>(items: &[T], i: usize) {
    if let Some(x) = items.get(i) {
        prefetch(x);
    }
}

/// Candidate indexes by the hash of their key, in 4-byte slots: the index in the low `index_bits` bits (as
/// many as the largest index needs), the rest a tag taken from the hash, so that most slots of other keys
/// are passed over without reading their key (1 in 256 at most is compared in vain up to 16M candidates).
pub(crate) struct IndexTable {
    slots: Vec<u32>,
    len: usize,
    index_bits: u32,
}

/// At most this share of the slots is full (linear probing then reads about five slots for a key that is not
/// there, within one or two cache lines): 6 bytes an index in all.
const LOAD_NUM: usize = 2;
const LOAD_DEN: usize = 3;

/// The largest index width: a tag keeps at least one bit, and no slot of a valid index is all ones ([`EMPTY`]).
const MAX_INDEX_BITS: u32 = 31;

impl IndexTable {
    /// A table for up to `n` indexes (`0..n`, below 2^31 - 1) without growing.
    pub fn with_capacity(n: usize) -> IndexTable {
        // bits to write `n` itself: every index below it leaves at least one zero bit (never all ones)
        let index_bits = (usize::BITS - n.leading_zeros()).clamp(1, MAX_INDEX_BITS);
        IndexTable {
            slots: vec![EMPTY; Self::size_for(n)],
            len: 0,
            index_bits,
        }
    }

    fn size_for(n: usize) -> usize {
        (n.saturating_mul(LOAD_DEN) / LOAD_NUM).max(16)
    }

    /// Where a key of hash `h` is looked for first: its high 32 bits scaled to the table.
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (((h >> 32) * self.slots.len() as u64) >> 32) as usize
    }

    /// The slot bits above the index that a key of hash `h` holds (from the hash's low 32 bits).
    #[inline(always)]
    fn tag(&self, h: u64) -> u32 {
        (h as u32) >> self.index_bits
    }

    #[inline(always)]
    fn next(&self, at: usize) -> usize {
        if at + 1 == self.slots.len() {
            0
        } else {
            at + 1
        }
    }

    /// Asks for the memory a lookup of hash `h` reads first.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        prefetch_at(&self.slots, self.home(h));
    }

    /// The indexes whose slots agree with hash `h`, in the order they were added: candidates whose key may
    /// be the one hashed (the caller compares the keys).
    #[inline]
    pub fn tagged(&self, h: u64) -> impl Iterator<Item = u32> + '_ {
        let tag = self.tag(h);
        let (bits, mask) = (self.index_bits, (1u32 << self.index_bits) - 1);
        let mut at = self.home(h);
        std::iter::from_fn(move || loop {
            let s = *self.slots.get(at)?;
            if s == EMPTY {
                return None;
            }
            at = self.next(at);
            if s >> bits == tag {
                return Some(s & mask);
            }
        })
    }

    /// The first index (in the order added) whose slot agrees with `h` and for which `is` holds.
    #[inline]
    pub fn find(&self, h: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.tagged(h).find(|&j| is(j))
    }

    /// Adds `index` under hash `h`; `rehash(i)` gives the hash of index `i`'s key, should the table grow
    /// (more indexes than it was made for, or a larger one).
    pub fn insert(&mut self, h: u64, index: u32, rehash: impl Fn(u32) -> u64) {
        let full = (self.len + 1).saturating_mul(LOAD_DEN) > self.slots.len().saturating_mul(LOAD_NUM);
        if full || u64::from(index) >= (1u64 << self.index_bits) - 1 {
            self.grow(index, &rehash);
        }
        self.put(h, index);
        self.len += 1;
    }

    /// Writes `index` in the first free slot from its home (the load bound leaves one).
    fn put(&mut self, h: u64, index: u32) {
        let slot = (self.tag(h) << self.index_bits) | index;
        let mut at = self.home(h);
        while self.slots.get(at).is_some_and(|&s| s != EMPTY) {
            at = self.next(at);
        }
        if let Some(s) = self.slots.get_mut(at) {
            *s = slot;
        }
    }

    fn grow(&mut self, index: u32, rehash: &impl Fn(u32) -> u64) {
        let mask = (1u32 << self.index_bits) - 1;
        let mut kept: Vec<u32> = self
            .slots
            .iter()
            .filter(|&&s| s != EMPTY)
            .map(|&s| s & mask)
            .collect();
        let n = (self.len + 1).max(index as usize + 1).saturating_mul(2);
        *self = IndexTable::with_capacity(n);
        // added again in index order: the candidates are added in ascending order, so each chain keeps the
        // order of adding (`find` returns the first)
        kept.sort_unstable();
        for i in kept {
            self.put(rehash(i), i);
            self.len += 1;
        }
    }
}

/// How many steps ahead a loop over candidates asks for a partner's memory.
pub(crate) const AHEAD: usize = 8;

/// How many candidates are prepared (their keys hashed, their slots asked for) before the first of them is
/// handled: enough misses in flight to cover the memory's latency, few enough for the slots to stay cached.
pub(crate) const BATCH: usize = 32;

/// Handles the candidates `from..to` in order and in batches of `batch_size` ([`BATCH`]; tests vary it):
/// `prepare(state, i, batch)` pushes what candidate `i` needs (its keys' hashes, after asking for their slots)
/// for a whole batch, then `handle(state, entry)` takes each entry in the order pushed (the tables it fills
/// are in `state`). The result is that of preparing and handling one candidate after another.
pub(crate) fn in_batches<S, T>(
    from: usize,
    to: usize,
    batch_size: usize,
    state: &mut S,
    mut prepare: impl FnMut(&S, usize, &mut Vec<T>),
    mut handle: impl FnMut(&mut S, T),
) {
    let mut batch: Vec<T> = Vec::with_capacity(4 * batch_size);
    let mut start = from;
    while start < to {
        let end = start.saturating_add(batch_size.max(1)).min(to);
        for i in start..end {
            prepare(state, i, &mut batch);
        }
        for t in batch.drain(..) {
            handle(state, t);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A hash whose home is `home_bits` (scaled) and whose low half is `tag` in its top byte (the tag of
    /// every table of fewer than 2^24 indexes).
    fn h(home_bits: u32, tag: u8) -> u64 {
        (u64::from(home_bits) << 32) | (u64::from(tag) << 24)
    }

    #[test]
    fn keys_sharing_a_home_or_a_tag_are_told_apart_by_the_callers_compare() {
        let mut t = IndexTable::with_capacity(4);
        let keys = ["a", "b", "c", "d"];
        // a and b: same home, different tags; c: same home and tag as a; d: elsewhere
        let hashes = [h(7, 1), h(7, 2), h(7, 1), h(u32::MAX, 9)];
        for (i, &hv) in hashes.iter().enumerate() {
            t.insert(hv, i as u32, |j| hashes[j as usize]);
        }
        for (i, (&k, &hv)) in keys.iter().zip(&hashes).enumerate() {
            assert_eq!(t.find(hv, |j| keys[j as usize] == k), Some(i as u32), "{k}");
        }
        assert_eq!(t.tagged(h(7, 1)).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(t.find(h(7, 1), |j| keys[j as usize] == "z"), None);
        assert_eq!(t.tagged(h(3, 5)).count(), 0);
    }

    #[test]
    fn a_chain_that_reaches_the_last_slot_goes_on_at_the_first() {
        let mut t = IndexTable::with_capacity(0);
        let size = t.slots.len();
        let last = h(u32::MAX, 1);
        assert_eq!(t.home(last), size - 1);
        for i in 0..3u32 {
            t.insert(last, i, |_| last);
        }
        assert_eq!(t.tagged(last).collect::<Vec<_>>(), [0, 1, 2]);
        assert_ne!(t.slots[0], EMPTY, "the chain wrapped around");
    }

    proptest! {
        /// Any keys, added when not present (as the phases do), hashed well or badly: every lookup answers
        /// what a map from key to its first index answers, through growth and collisions.
        #[test]
        fn the_table_finds_what_a_map_finds(
            keys in prop::collection::vec("[a-e]{0,3}", 0..300),
            capacity in 0usize..40,
            hash_bits in prop::sample::select(vec![0u32, 2, 64]),
        ) {
            let hash = |k: &str| {
                let full = crate::matching::hash_bytes(k.as_bytes());
                match hash_bits {
                    64 => full,
                    0 => 42,
                    b => full & ((1 << b) - 1) | (full << 62),
                }
            };
            let mut t = IndexTable::with_capacity(capacity);
            let mut map: HashMap<&str, u32> = HashMap::new();
            let mut added: Vec<&str> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let i = i as u32;
                let found = t.find(hash(k), |j| added.get(j as usize) == Some(&k.as_str()));
                prop_assert_eq!(found, map.get(k.as_str()).copied());
                added.push(k);
                if found.is_none() {
                    t.insert(hash(k), i, |j| hash(added[j as usize]));
                    map.insert(k, i);
                }
            }
            for k in ["", "a", "ab", "zzz"] {
                let found = t.find(hash(k), |j| added.get(j as usize) == Some(&k));
                prop_assert_eq!(found, map.get(k).copied());
            }
        }
    }
}
