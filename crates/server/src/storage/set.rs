//! The set type (intset / hashtable in Redis 7.0).
//!
//! Owned by the set family; `Value::Set` holds it. The methods below are the contract the
//! rest of the server uses (TYPE, OBJECT ENCODING, DEBUG DIGEST, memory reports).

use std::borrow::Cow;

/// A set of byte strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    members: Vec<Box<[u8]>>,
}

impl Set {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, in unspecified order (integers of an intset are formatted).
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, [u8]>> {
        self.members.iter().map(|m| Cow::Borrowed(&m[..]))
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.members.iter().map(|m| m.len() + 16).sum()
    }
}
