//! The list type (quicklist / listpack in Redis).
//!
//! Owned by the list family; `Value::List` holds it. The methods below are the contract the
//! rest of the server uses (TYPE, OBJECT ENCODING, DEBUG DIGEST, memory reports).

use std::collections::VecDeque;

/// A list of byte strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct List {
    items: VecDeque<Box<[u8]>>,
}

impl List {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Elements from head to tail.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().map(|b| &b[..])
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.items.iter().map(|b| b.len()).sum::<usize>()
    }
}
