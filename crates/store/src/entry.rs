//! One key and its value, laid out to keep small keys cheap.
//!
//! A string key whose key and value together fit in [`INLINE_CAP`] bytes is stored entirely
//! inside the 32-byte [`Entry`] that sits in the hash table: no heap allocation at all (Redis
//! spends a dictEntry, an sds key and a robj on the same key). Anything larger, and every
//! non-string value, moves to a boxed [`Object`].
//!
//! Entries carry Redis's per-object metadata: a 24-bit LRU clock (OBJECT IDLETIME), a flag that
//! the key has a TTL (so reads skip the expires table for keys that have none), and a flag that
//! a string was mutated in place (APPEND/SETRANGE), which Redis reports as the `raw` encoding.

use super::value::Value;

/// Bytes of key + value that fit inline.
pub const INLINE_CAP: usize = 25;

/// Redis stores strings up to this length as `embstr`.
const EMBSTR_MAX: usize = 44;

/// Entry has a TTL in its shard's expires table.
pub const META_EXPIRE: u8 = 1;
/// String value was modified in place: OBJECT ENCODING reports `raw`.
pub const META_RAW: u8 = 2;
/// A small integer that Redis would hold in its own object rather than a shared one (a COPY
/// duplicates it): OBJECT REFCOUNT reports 1 instead of the shared objects' count. Cleared
/// whenever the value is replaced.
pub const META_UNSHARED: u8 = 4;
/// String value was stored as plain text, never integer-encoded (INCRBYFLOAT's result, which
/// Redis creates without `tryObjectEncoding`): OBJECT ENCODING reports `embstr`/`raw` even
/// for an integer-looking value like `11`. Cleared whenever the value is replaced.
pub const META_NOT_INT: u8 = 8;

/// Snapshot bookkeeping (see `snapshot`): the entry is saved in (or not part of) the
/// snapshot being written when this bit equals its shard's `snap_saved`.
pub const META_SNAP: u8 = 16;

/// A key with its value (see the module docs for the layout).
#[derive(Debug)]
pub enum Entry {
    /// Key and string value packed in `buf` (key first).
    Inline {
        meta: u8,
        klen: u8,
        vlen: u8,
        lru: [u8; 3],
        buf: [u8; INLINE_CAP],
    },
    /// Anything that does not fit inline.
    Boxed(Box<Object>),
}

/// The heap form of an entry.
#[derive(Debug)]
pub struct Object {
    pub key: Box<[u8]>,
    pub value: Value,
    pub lru: u32,
    pub meta: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

impl Entry {
    /// A string entry, inline when it fits.
    pub fn string(key: &[u8], val: &[u8], lru: u32) -> Self {
        if key.len() + val.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..key.len()].copy_from_slice(key);
            buf[key.len()..key.len() + val.len()].copy_from_slice(val);
            Entry::Inline {
                meta: 0,
                klen: key.len() as u8,
                vlen: val.len() as u8,
                lru: lru_bytes(lru),
                buf,
            }
        } else {
            Entry::Boxed(Box::new(Object {
                key: key.into(),
                value: Value::Str(val.to_vec()),
                lru: lru & LRU_MASK,
                meta: 0,
            }))
        }
    }

    /// An entry holding any value.
    pub fn new(key: &[u8], value: Value, lru: u32) -> Self {
        match value {
            Value::Str(s) => {
                if key.len() + s.len() <= INLINE_CAP {
                    Self::string(key, &s, lru)
                } else {
                    Entry::Boxed(Box::new(Object {
                        key: key.into(),
                        value: Value::Str(s),
                        lru: lru & LRU_MASK,
                        meta: 0,
                    }))
                }
            }
            value => Entry::Boxed(Box::new(Object {
                key: key.into(),
                value,
                lru: lru & LRU_MASK,
                meta: 0,
            })),
        }
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        match self {
            Entry::Inline { klen, buf, .. } => &buf[..*klen as usize],
            Entry::Boxed(o) => &o.key,
        }
    }

    /// The string value, or `None` if the value is another type.
    #[inline]
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Entry::Inline {
                klen, vlen, buf, ..
            } => Some(&buf[*klen as usize..*klen as usize + *vlen as usize]),
            Entry::Boxed(o) => match &o.value {
                Value::Str(s) => Some(s),
                _ => None,
            },
        }
    }

    /// Borrowed view of the value, whatever its type.
    pub fn value(&self) -> ValueRef<'_> {
        match self {
            Entry::Inline { .. } => ValueRef::Str(self.as_str().unwrap_or_default()),
            Entry::Boxed(o) => match &o.value {
                Value::Str(s) => ValueRef::Str(s),
                other => ValueRef::Other(other),
            },
        }
    }

    /// Mutable access to the value; an inline string moves to the heap first.
    pub fn value_mut(&mut self) -> &mut Value {
        if let Entry::Inline { meta, lru, .. } = self {
            let (meta, lru) = (*meta, lru_from_bytes(*lru));
            let key: Box<[u8]> = self.key().into();
            let val = self.as_str().unwrap_or_default().to_vec();
            *self = Entry::Boxed(Box::new(Object {
                key,
                value: Value::Str(val),
                lru,
                meta,
            }));
        }
        match self {
            Entry::Boxed(o) => &mut o.value,
            Entry::Inline { .. } => unreachable!("converted above"),
        }
    }

    /// Replaces the value with a string, keeping key, TTL flag and LRU; clears `raw`.
    pub fn set_str(&mut self, val: &[u8]) {
        let meta = self.meta() & !(META_RAW | META_UNSHARED | META_NOT_INT);
        // A boxed string that stays too big to inline keeps its allocation (INCR on a
        // long key, SET over a large value): no new box, no key copy.
        if let Entry::Boxed(o) = self {
            if let Value::Str(s) = &mut o.value {
                if o.key.len() + val.len() > INLINE_CAP {
                    s.clear();
                    s.extend_from_slice(val);
                    o.meta = meta;
                    return;
                }
            }
        }
        let lru = self.lru();
        let mut e = Entry::string(self.key(), val, lru);
        e.set_meta(meta);
        *self = e;
    }

    /// Replaces the value, keeping key, TTL flag and LRU.
    pub fn set_value(&mut self, value: Value) {
        let meta = self.meta() & !(META_RAW | META_UNSHARED | META_NOT_INT);
        let lru = self.lru();
        let mut e = Entry::new(self.key(), value, lru);
        e.set_meta(meta);
        *self = e;
    }

    /// The string value for in-place mutation (APPEND, SETRANGE); marks it `raw`.
    /// Returns `None` if the value is not a string.
    pub fn str_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.as_str()?;
        let meta = self.meta();
        self.set_meta(meta | META_RAW);
        match self.value_mut() {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    #[inline]
    pub fn meta(&self) -> u8 {
        match self {
            Entry::Inline { meta, .. } => *meta,
            Entry::Boxed(o) => o.meta,
        }
    }

    #[inline]
    pub fn set_meta(&mut self, m: u8) {
        match self {
            Entry::Inline { meta, .. } => *meta = m,
            Entry::Boxed(o) => o.meta = m,
        }
    }

    /// Reads one byte from each heap block the entry leads to first (the object, the key,
    /// a string value, a collection's header) and returns them combined. A loop of these
    /// over many entries, before a loop that uses them, lets the CPU fetch them in
    /// parallel: the cache misses overlap instead of stalling one entry at a time.
    #[inline]
    pub fn warm(&self) -> u8 {
        match self {
            Entry::Inline { meta, .. } => *meta,
            Entry::Boxed(o) => {
                let v = match &o.value {
                    Value::Str(s) => s.first().copied().unwrap_or(0),
                    other => u8::from(other.is_empty_collection()),
                };
                o.meta ^ o.key.first().copied().unwrap_or(0) ^ v
            }
        }
    }

    #[inline]
    pub fn has_expire(&self) -> bool {
        self.meta() & META_EXPIRE != 0
    }

    #[inline]
    pub fn lru(&self) -> u32 {
        match self {
            Entry::Inline { lru, .. } => lru_from_bytes(*lru),
            Entry::Boxed(o) => o.lru,
        }
    }

    /// Records an access with an access stamp (see [`crate::access`]): the LRU clock, or
    /// a step of the LFU counter.
    #[inline]
    pub fn touch(&mut self, stamp: u32) {
        let field = if stamp & crate::access::LFU == 0 {
            stamp
        } else {
            crate::access::accessed(self.lru(), stamp)
        };
        self.set_lru(field);
    }

    /// Sets the 24-bit access field as it is (RESTORE, loading).
    #[inline]
    pub fn set_lru(&mut self, field: u32) {
        match self {
            Entry::Inline { lru, .. } => *lru = lru_bytes(field),
            Entry::Boxed(o) => o.lru = field & LRU_MASK,
        }
    }

    /// Redis's type name (`TYPE`).
    pub fn type_name(&self) -> &'static str {
        match self.value() {
            ValueRef::Str(_) => "string",
            ValueRef::Other(v) => v.type_name(),
        }
    }

    /// What `OBJECT ENCODING` reports for this value in Redis.
    pub fn encoding(&self) -> &'static str {
        match self.value() {
            ValueRef::Str(s) => {
                if self.meta() & META_RAW != 0 {
                    "raw"
                } else if self.meta() & META_NOT_INT == 0
                    && s.len() <= 20
                    && crate::util::parse_i64(s).is_some()
                {
                    "int"
                } else if s.len() <= EMBSTR_MAX {
                    "embstr"
                } else {
                    "raw"
                }
            }
            ValueRef::Other(v) => v.encoding(),
        }
    }

    /// A deep copy: key, value, LRU clock and metadata (a script's undo record, see
    /// `Shard::save_key`).
    pub fn duplicate(&self) -> Entry {
        match self {
            Entry::Inline {
                meta,
                klen,
                vlen,
                lru,
                buf,
            } => Entry::Inline {
                meta: *meta,
                klen: *klen,
                vlen: *vlen,
                lru: *lru,
                buf: *buf,
            },
            Entry::Boxed(o) => Entry::Boxed(Box::new(Object {
                key: o.key.clone(),
                value: o.value.clone(),
                lru: o.lru,
                meta: o.meta,
            })),
        }
    }

    /// Heap bytes owned by this entry beyond its 32 bytes in the table (for memory reports).
    pub fn heap_size(&self) -> usize {
        match self {
            Entry::Inline { .. } => 0,
            Entry::Boxed(o) => std::mem::size_of::<Object>() + o.key.len() + o.value.heap_size(),
        }
    }
}

/// A borrowed value of any type.
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    Other(&'a Value),
}

/// Access fields are 24 bits, like Redis's (see [`crate::access`]).
pub const LRU_MASK: u32 = crate::access::MASK;

#[inline]
fn lru_bytes(clock: u32) -> [u8; 3] {
    let b = clock.to_le_bytes();
    [b[0], b[1], b[2]]
}

#[inline]
fn lru_from_bytes(b: [u8; 3]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_strings_are_inline() {
        let e = Entry::string(b"key:000000000001", b"xxx", 7);
        assert!(matches!(e, Entry::Inline { .. }));
        assert_eq!(e.key(), b"key:000000000001");
        assert_eq!(e.as_str().unwrap(), b"xxx");
        assert_eq!(e.lru(), 7);
        assert_eq!(e.encoding(), "embstr");
    }

    #[test]
    fn large_strings_are_boxed_and_mutable() {
        let mut e = Entry::string(b"k", &[b'a'; 40], 0);
        assert!(matches!(e, Entry::Boxed(_)));
        e.str_mut().unwrap().extend_from_slice(b"b");
        assert_eq!(e.as_str().unwrap().len(), 41);
        assert_eq!(e.encoding(), "raw");
        e.set_str(b"12");
        assert_eq!(e.encoding(), "int");
        assert!(matches!(e, Entry::Inline { .. }));
    }

    #[test]
    fn meta_survives_value_changes() {
        let mut e = Entry::string(b"k", b"v", 0);
        e.set_meta(META_EXPIRE);
        e.set_str(&[b'x'; 100]);
        assert!(e.has_expire());
        e.touch(0x1234_5678);
        assert_eq!(e.lru(), 0x0034_5678);
    }
}
