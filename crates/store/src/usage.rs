//! What one key costs in Kiln's layout: the estimate MEMORY USAGE reports.
//!
//! A key always holds a 32-byte [`Entry`] slot in its shard's slab and its share of the
//! shard's index (`table.rs`: a `u32` position and a control byte per bucket, at most 7
//! entries per 8 buckets). A small string key lives entirely there. Anything else adds its
//! boxed [`Object`], the key's bytes and the value's heap. A key with a TTL also has a
//! bucket in the shard's expires table and a copy of its name.
//!
//! Every allocation is rounded up to jemalloc's size class, as the allocator does (and as
//! Redis's own figures do). Aggregates whose size is a per-element walk (hash and set
//! tables, whose fields and members may each own an allocation) are sampled as Redis
//! samples: the structure's own bytes exactly, plus the first `samples` elements'
//! allocations scaled to the element count. Compact encodings (listpacks, intsets, list
//! chunks, sorted set and stream nodes) cost a walk of their blocks at most, so they are
//! measured whole whatever `samples` says.

use std::mem::size_of;

use crate::entry::{Entry, Object};
use crate::keyspace::EXPIRE_BUCKET;
use crate::value::Value;
use crate::{Hash, List, Set, Stream, ZSet};

/// Elements sampled when MEMORY USAGE names no count (Redis's default).
pub const DEFAULT_SAMPLES: usize = 5;

/// Bytes of one bucket of a shard's index: a `u32` position and a control byte.
const INDEX_BUCKET: usize = size_of::<u32>() + 1;

/// A bucket's bytes at the index's full load (8 buckets for 7 entries), rounded up.
const fn at_full_load(bucket: usize) -> usize {
    (bucket * 8).div_ceil(7)
}

/// What every key costs in its shard's table: its entry slot and its share of the index.
pub const SLOT: usize = size_of::<Entry>() + at_full_load(INDEX_BUCKET);

/// The size class jemalloc serves a request of `n` bytes from (x86-64 and aarch64 with
/// 16-byte quanta): 8, then multiples of 16 up to 128, then four classes per doubling.
pub fn size_class(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.next_multiple_of(16),
        _ => {
            let lg = usize::BITS - 1 - (n - 1).leading_zeros();
            n.next_multiple_of(1 << (lg - 2))
        }
    }
}

/// MEMORY USAGE of `entry`: the bytes it costs, sampling at most `samples` elements of an
/// aggregate (0: every element). O(samples) for hash and set tables, O(blocks) for the
/// other aggregates, O(1) otherwise.
pub fn key_usage(entry: &Entry, samples: usize) -> usize {
    let samples = if samples == 0 { usize::MAX } else { samples };
    let ttl = if entry.has_expire() {
        at_full_load(EXPIRE_BUCKET) + size_class(entry.key().len())
    } else {
        0
    };
    let boxed = match entry {
        Entry::Inline { .. } => 0,
        Entry::Boxed(o) => {
            size_class(size_of::<Object>())
                + size_class(o.key.len())
                + value_usage(&o.value, samples)
        }
    };
    SLOT + ttl + boxed
}

/// Heap bytes of a boxed value, sampling at most `samples` (>= 1) elements of a table.
fn value_usage(value: &Value, samples: usize) -> usize {
    match value {
        Value::Str(s) => size_class(s.capacity()),
        Value::List(l) => size_class(size_of::<List>()) + l.heap_size(),
        Value::Hash(h) => {
            let (fixed, pairs) = h.heap_parts();
            size_class(size_of::<Hash>()) + fixed + sampled(pairs, h.len(), samples)
        }
        Value::Set(s) => {
            let (fixed, members) = s.heap_parts();
            size_class(size_of::<Set>()) + fixed + sampled(members, s.len(), samples)
        }
        Value::ZSet(z) => size_class(size_of::<ZSet>()) + z.heap_size(),
        Value::Stream(s) => size_class(size_of::<Stream>()) + s.heap_size(),
    }
}

/// The allocations of `len` elements estimated from the first `samples` of them (their
/// size classes' average times `len`), as Redis extrapolates.
fn sampled(allocs: impl Iterator<Item = usize>, len: usize, samples: usize) -> usize {
    let (mut n, mut sum) = (0usize, 0usize);
    for a in allocs.take(samples) {
        n += 1;
        sum += size_class(a);
    }
    if n == 0 || n == len {
        return sum;
    }
    (sum as f64 / n as f64 * len as f64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::META_EXPIRE;
    use crate::hash::Limits;

    #[test]
    fn size_classes_are_jemallocs() {
        let classes = [
            (0, 0),
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (100, 112),
            (128, 128),
            (129, 160),
            (192, 192),
            (257, 320),
            (1000, 1024),
            (1025, 1280),
            (14337, 16384),
            (16385, 20480),
            (1 << 20, 1 << 20),
        ];
        for (n, class) in classes {
            assert_eq!(size_class(n), class, "size_class({n})");
        }
    }

    #[test]
    fn a_small_string_costs_its_slot_only() {
        let e = Entry::string(b"k", b"v", 0);
        assert_eq!(key_usage(&e, DEFAULT_SAMPLES), SLOT);
        assert_eq!(SLOT, 32 + 6);
    }

    #[test]
    fn a_ttl_costs_an_expires_bucket_and_a_key_copy() {
        let mut e = Entry::string(b"k", b"v", 0);
        e.set_meta(META_EXPIRE);
        assert_eq!(key_usage(&e, 5), SLOT + at_full_load(EXPIRE_BUCKET) + 8);
    }

    #[test]
    fn a_boxed_string_grows_with_its_value() {
        let mid = Entry::string(b"key", &[b'x'; 100], 0);
        let big = Entry::string(b"key", &[b'x'; 10_000], 0);
        let small = Entry::string(b"key", b"x", 0);
        let (s, m, b) = (key_usage(&small, 5), key_usage(&mid, 5), key_usage(&big, 5));
        assert!(s < m && m < b, "{s} {m} {b}");
        assert_eq!(
            m,
            SLOT + size_class(size_of::<Object>()) + size_class(3) + size_class(100)
        );
        assert!(b >= 10_000);
    }

    /// A hash key of `fields` pairs, the i-th value `value_len(i)` bytes (a table: the
    /// listpack limit is 64-byte values).
    fn hash_key(fields: usize, value_len: impl Fn(usize) -> usize) -> Entry {
        let lim = Limits {
            entries: 128,
            value: 64,
        };
        let mut h = Hash::new();
        for i in 0..fields {
            h.set(
                format!("field:{i}").as_bytes(),
                &vec![b'v'; value_len(i)],
                lim,
            );
        }
        Entry::new(b"h", Value::Hash(Box::new(h)), 0)
    }

    #[test]
    fn uniform_tables_sample_to_the_exact_figure() {
        // Every pair owns the same allocation: five samples predict the rest exactly.
        let e = hash_key(1000, |_| 40);
        let Entry::Boxed(o) = &e else { unreachable!() };
        assert_eq!(o.value.encoding(), "hashtable");
        assert_eq!(key_usage(&e, 5), key_usage(&e, 0));
        assert_eq!(key_usage(&e, 1), key_usage(&e, 1000));
    }

    #[test]
    fn sampling_all_sees_the_big_elements_a_few_samples_miss() {
        let e = hash_key(200, |i| if i < 10 { 1 } else { 1000 });
        let (few, all) = (key_usage(&e, 5), key_usage(&e, 0));
        assert!(all > few * 10, "{few} {all}");
        assert!(all > 190 * 1000);
    }

    #[test]
    fn sampled_parts_add_up_to_the_heap_size() {
        let e = hash_key(700, |_| 50);
        let Entry::Boxed(o) = &e else { unreachable!() };
        let Value::Hash(h) = &o.value else {
            unreachable!()
        };
        let (fixed, pairs) = h.heap_parts();
        assert_eq!(fixed + pairs.sum::<usize>(), h.heap_size());
        let mut s = Set::new();
        for i in 0..600 {
            s.add(format!("member-number-{i:020}").as_bytes(), 512);
        }
        let (fixed, members) = s.heap_parts();
        assert_eq!(fixed + members.sum::<usize>(), s.heap_size());
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn every_type_costs_more_than_its_slot() {
        let mut l = List::new();
        l.push_back(b"a");
        let lim = crate::zset::Limits {
            entries: 128,
            value: 64,
        };
        let mut z = ZSet::new(1, lim);
        z.insert(b"m", 1.0, lim);
        let values = [
            Value::List(Box::new(l)),
            Value::ZSet(Box::new(z)),
            Value::Set(Box::new(Set::for_member(b"1"))),
            Value::Stream(Box::default()),
        ];
        for v in values {
            let name = v.type_name();
            let e = Entry::new(b"key", v, 0);
            assert!(key_usage(&e, 5) > SLOT + size_of::<Object>(), "{name}");
        }
    }
}
