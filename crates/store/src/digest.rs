//! DEBUG DIGEST: a fingerprint of the whole dataset, bit for bit the one Redis computes for
//! the same data, so a Kiln server can be checked against a Redis server (or a replica
//! against its primary) with one command on each.
//!
//! Two ways of folding bytes into a 20-byte digest are used:
//!
//! * [`xor_in`]: `d ^= SHA1(data)`. Commutative, for things without an order: the keys of
//!   a database, the members of a set, the fields of a hash.
//! * [`mix_in`]: `d = SHA1(d ^ SHA1(data))`. Order-sensitive, for sequences: the parts of
//!   one key (name, type, value), the elements of a list.
//!
//! A key contributes `key_digest = mix(name), mix(type id), <value>, xor("!!expire!!") if it
//! has a TTL` (the deadline itself is left out, so servers that loaded the same data at
//! different times agree). The dataset digest starts at zero; each non-empty database mixes
//! in its index (4 bytes, big endian), then every key of it XORs in `SHA1(key_digest)`. An
//! empty dataset therefore digests to 40 zeros.
//!
//! Each data type adds one arm to [`mix_value`]. What Redis does for the types to come:
//! a list mixes each element in order; a set XORs each member into the value digest; a
//! sorted set and a hash build, per member/field, a digest of `mix(member), mix(score as
//! %.17g)` or `mix(field), mix(value)` from zero and XOR it in; a stream mixes each entry's
//! `ms.seq` id and then its fields and values in order.

use sha1::{Digest as _, Sha1};

use crate::entry::{Entry, ValueRef};
use crate::Value;

/// A 20-byte SHA-1 based digest.
pub type Digest = [u8; 20];

/// Redis's object type ids (`OBJ_STRING` ...), mixed in before each value as 4 big-endian
/// bytes.
pub mod type_id {
    pub const STRING: u32 = 0;
    pub const LIST: u32 = 1;
    pub const SET: u32 = 2;
    pub const ZSET: u32 = 3;
    pub const HASH: u32 = 4;
    pub const STREAM: u32 = 6;
}

/// `d ^= SHA1(data)`: order-independent accumulation.
pub fn xor_in(d: &mut Digest, data: &[u8]) {
    let h = Sha1::digest(data);
    for (a, b) in d.iter_mut().zip(h.iter()) {
        *a ^= b;
    }
}

/// `d = SHA1(d ^ SHA1(data))`: order-dependent accumulation.
pub fn mix_in(d: &mut Digest, data: &[u8]) {
    xor_in(d, data);
    *d = Sha1::digest(&d[..]).into();
}

fn mix_type(d: &mut Digest, id: u32) {
    mix_in(d, &id.to_be_bytes());
}

fn mix_str(d: &mut Digest, s: &[u8]) {
    mix_type(d, type_id::STRING);
    // Redis digests integers in their decimal form, which is what Kiln stores.
    mix_in(d, s);
}

/// Mixes a value (its type id, then its contents) into `d`. One arm per data type.
pub fn mix_value(d: &mut Digest, v: ValueRef<'_>) {
    match v {
        ValueRef::Str(s) => mix_str(d, s),
        ValueRef::Other(v) => match v {
            Value::Str(s) => mix_str(d, s),
            Value::List(l) => {
                mix_type(d, type_id::LIST);
                for e in l.iter() {
                    mix_in(d, &e);
                }
            }
            Value::Set(s) => {
                mix_type(d, type_id::SET);
                for m in s.iter() {
                    xor_in(d, &m);
                }
            }
            Value::ZSet(z) => {
                mix_type(d, type_id::ZSET);
                for (m, score) in z.iter() {
                    let mut e = [0u8; 20];
                    mix_in(&mut e, m);
                    mix_in(&mut e, crate::util::fmt_g17(score).as_bytes());
                    xor_in(d, &e);
                }
            }
            Value::Stream(s) => {
                mix_type(d, type_id::STREAM);
                s.digest_into(d);
            }
            Value::Hash(h) => {
                mix_type(d, type_id::HASH);
                for (f, v) in h.iter() {
                    let mut e = [0u8; 20];
                    mix_in(&mut e, f);
                    mix_in(&mut e, v);
                    xor_in(d, &e);
                }
            }
        },
    }
}

/// Mixes a key's value and TTL flag into `d`: the part shared by DEBUG DIGEST and
/// DEBUG DIGEST-VALUE.
fn mix_entry_value(d: &mut Digest, e: &Entry) {
    mix_value(d, e.value());
    if e.has_expire() {
        xor_in(d, b"!!expire!!");
    }
}

/// What DEBUG DIGEST-VALUE reports for one key: its value and whether it has a TTL.
pub fn value_digest(e: &Entry) -> Digest {
    let mut d = [0; 20];
    mix_entry_value(&mut d, e);
    d
}

/// One key's term of the dataset digest: its name, value and whether it has a TTL.
pub fn key_digest(e: &Entry) -> Digest {
    let mut d = [0; 20];
    mix_in(&mut d, e.key());
    mix_entry_value(&mut d, e);
    d
}

/// Builds the dataset digest: call [`DatasetDigest::begin_db`] for each non-empty database
/// in ascending order, then [`DatasetDigest::add`] for each of its keys, in any order.
#[derive(Default)]
pub struct DatasetDigest {
    d: Digest,
}

impl DatasetDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts database `db`, so the same keys in another database digest differently.
    pub fn begin_db(&mut self, db: usize) {
        mix_in(&mut self.d, &(db as u32).to_be_bytes());
    }

    /// Adds one key of the current database.
    pub fn add(&mut self, e: &Entry) {
        xor_in(&mut self.d, &key_digest(e));
    }

    pub fn finish(self) -> Digest {
        self.d
    }
}

/// Lowercase hex, as DEBUG DIGEST prints it.
pub fn hex(d: &Digest) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(40);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::META_EXPIRE;

    fn entry(k: &[u8], v: &[u8], ttl: bool) -> Entry {
        let mut e = Entry::string(k, v, 0);
        if ttl {
            e.set_meta(e.meta() | META_EXPIRE);
        }
        e
    }

    // The expected values below were produced by redis-server 7.0 for the same data.

    #[test]
    fn value_digests_match_redis() {
        assert_eq!(
            hex(&value_digest(&entry(b"a", b"1", false))),
            "b4fc66738120fba0b5aa500ab5c2bf89cea1c5da"
        );
        assert_eq!(
            hex(&value_digest(&entry(b"b", b"hello", false))),
            "36b23a1456b2dce2c3ed252c456761301dba8060"
        );
        assert_eq!(
            hex(&value_digest(&entry(b"b", b"hello", true))),
            "d037c4eb8a8b36b602fbced4000daeab0714c1e3"
        );
    }

    #[test]
    fn dataset_digests_match_redis_whatever_the_key_order() {
        let a = entry(b"a", b"1", false);
        let b = entry(b"b", b"hello", false);
        for order in [[&a, &b], [&b, &a]] {
            let mut d = DatasetDigest::new();
            d.begin_db(0);
            for e in order {
                d.add(e);
            }
            assert_eq!(hex(&d.finish()), "2539797405e828ad7a3aa48c536b3eaf2803a421");
        }
        let mut d = DatasetDigest::new();
        d.begin_db(0);
        d.add(&a);
        d.add(&entry(b"b", b"hello", true));
        assert_eq!(hex(&d.finish()), "669dc7955c0119edb82e7cfeb40ea4a28f89f902");
    }

    #[test]
    fn the_database_index_changes_the_digest() {
        let a = entry(b"a", b"1", false);
        let mut d0 = DatasetDigest::new();
        d0.begin_db(0);
        d0.add(&a);
        let mut d1 = DatasetDigest::new();
        d1.begin_db(1);
        d1.add(&a);
        assert_eq!(
            hex(&d0.finish()),
            "943d800368fb9c0e951138f1bc0e313ac769d91f"
        );
        assert_eq!(
            hex(&d1.finish()),
            "8c8a6be2ca87c2882fea78af15ce43b8c3792dad"
        );
    }

    #[test]
    fn an_empty_dataset_digests_to_zeros() {
        assert_eq!(hex(&DatasetDigest::new().finish()), "0".repeat(40));
    }
}
