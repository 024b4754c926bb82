//! Kiln's bottom layer, data only: the sharded keyspace, its compact entries and values,
//! the collection types and their encodings, expiry, and the Redis-exact number helpers
//! they share with everything above. Nothing here knows RESP, sockets, the async runtime or
//! the configuration, so the server's concurrency model and protocol can change freely
//! (the server crate re-exports this crate as its `storage` module).

pub mod access;
pub mod digest;
pub mod entry;
pub mod hash;
pub mod keyspace;
pub mod list;
pub mod locks;
pub mod longdouble;
pub mod set;
pub mod slot;
pub mod stream;
mod table;
pub mod usage;
pub mod util;
pub mod value;
pub mod zset;

pub use entry::Entry;
pub use hash::Hash;
pub use keyspace::{Db, Keyspace, Shard, SHARDS};
pub use list::List;
pub use locks::{shard_id, LockSet};
pub use set::Set;
pub use stream::Stream;
pub use value::Value;
pub use zset::ZSet;
