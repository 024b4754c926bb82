//! Kiln's persistence and wire formats, as pure codecs over bytes: the RDB file (also the
//! DUMP payload and the snapshot a primary sends its replicas), the append-only file's
//! manifest and command framing, and Redis Cluster's bus messages and `nodes.conf`.
//! Values come from and go to `kiln-store`; what a running server does with them (loading
//! into a live keyspace, writing while clients run, rewriting, fsync policies, running a
//! cluster) is the server's.

pub mod aof;
pub mod cluster;
pub mod rdb;
