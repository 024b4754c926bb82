//! Data only: the keyspace, its entries and values, and expiry. Nothing here knows RESP,
//! sockets or the async runtime, so the concurrency model above it can change freely.

pub mod entry;
pub mod hash;
pub mod keyspace;
pub mod list;
pub mod locks;
pub mod set;
pub mod stream;
mod table;
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
