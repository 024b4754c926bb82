//! Values of every data type. Each type's data structure lives in its own module next to
//! this one (`list.rs`, `hash.rs`, `set.rs`, `zset.rs`); `Value` is the closed set the
//! keyspace stores. Collections are boxed so a `Value` stays small.

use super::{Hash, List, Set, Stream, ZSet};

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also integers: Redis keeps those as strings with the `int` encoding).
    Str(Vec<u8>),
    List(Box<List>),
    Hash(Box<Hash>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

impl Value {
    /// Redis's `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Redis's `OBJECT ENCODING` name for values that are not inline strings.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(s) => s.encoding(),
        }
    }

    /// Heap bytes owned by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.capacity(),
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::Hash(h) => std::mem::size_of::<Hash>() + h.heap_size(),
            Value::Set(s) => std::mem::size_of::<Set>() + s.heap_size(),
            Value::ZSet(z) => std::mem::size_of::<ZSet>() + z.heap_size(),
            Value::Stream(s) => std::mem::size_of::<Stream>() + s.heap_size(),
        }
    }

    /// Whether a collection has become empty (Redis deletes such keys).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // An empty stream is a valid key in Redis (XADD ... then XDEL everything).
            Value::Stream(_) => false,
        }
    }
}
