//! Data only: the keyspace, its entries and values, and expiry. Nothing here knows RESP,
//! sockets or the async runtime, so the concurrency model above it can change freely.

pub mod entry;
pub mod keyspace;
mod table;
pub mod value;

pub use entry::Entry;
pub use keyspace::{Db, Keyspace, Shard, SHARDS};
pub use value::Value;
