//! The sorted set type (listpack / skiplist in Redis).
//!
//! Owned by the sorted-set family; `Value::ZSet` holds it. The methods below are the contract
//! the rest of the server uses (TYPE, OBJECT ENCODING, DEBUG DIGEST, memory reports).

/// A set of members ordered by (score, member).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZSet {
    items: Vec<(f64, Box<[u8]>)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every (member, score) in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.items.iter().map(|(s, m)| (&m[..], *s))
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.items.iter().map(|(_, m)| m.len() + 24).sum()
    }
}
