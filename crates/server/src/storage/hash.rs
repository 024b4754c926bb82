//! The hash type (listpack / hashtable in Redis).
//!
//! Owned by the hash family; `Value::Hash` holds it. The methods below are the contract the
//! rest of the server uses (TYPE, OBJECT ENCODING, DEBUG DIGEST, memory reports).

type Pair = (Box<[u8]>, Box<[u8]>);

/// A map of fields to values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hash {
    pairs: Vec<Pair>,
}

impl Hash {
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every (field, value), in unspecified order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(f, v)| (&f[..], &v[..]))
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.pairs.iter().map(|(f, v)| f.len() + v.len() + 32).sum()
    }
}
