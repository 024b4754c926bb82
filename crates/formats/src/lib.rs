//! Kiln's persistence formats, as pure codecs over bytes: the RDB file (also the DUMP
//! payload and the snapshot a primary sends its replicas) and the append-only file's
//! manifest and command framing. Values come from and go to `kiln-store`; what a running
//! server does with them (loading into a live keyspace, writing while clients run,
//! rewriting, fsync policies) is the server's.

pub mod aof;
pub mod rdb;
